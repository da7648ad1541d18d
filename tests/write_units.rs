//! What the storage layout costs, measured on the fixture mix: every fixture of every provider
//! parsed as the receivers parse it, each event's item built as the DynamoDB adapter builds it,
//! and its write units counted as DynamoDB bills them (one per started KB of the item, one per
//! started KB of each index entry).

use crate::common;

use wahooks::providers::{parse_verified, ParseContext};
use wahooks::store::{event_item, item_size, write_units};

#[test]
fn the_fixture_mix_costs_at_most_2_2_write_units_per_event() {
    let now = chrono::Utc::now();
    let (mut events, mut base, mut index, mut bytes, mut over_1kb) = (0usize, 0usize, 0usize, 0usize, 0usize);
    for (provider, name, body) in common::all_payloads() {
        for e in parse_verified(
            &ParseContext::new(provider, "ep_0123456789abcdef", now),
            &wahooks::auth::Verified::trusted(&body),
        )
        .unwrap_or_default()
        {
            let item = event_item(&e, 30);
            let (b, i) = write_units(&item);
            events += 1;
            base += b;
            index += i;
            bytes += item_size(&item);
            if b > 1 {
                over_1kb += 1;
                eprintln!("{provider}/{name}: {} bytes", item_size(&item));
            }
        }
    }
    let per_event = (base + index) as f64 / events as f64;
    println!(
        "{events} events: {per_event:.2} write units/event ({:.2} table + {:.2} index), {:.0} bytes/item, {over_1kb} items over 1 KB",
        base as f64 / events as f64,
        index as f64 / events as f64,
        bytes as f64 / events as f64,
    );
    assert!(events > 100, "the whole mix: {events}");
    assert!(per_event <= 2.2, "{per_event:.2} write units per event");
}
