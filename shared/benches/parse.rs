//! Parse + normalise over the whole fixture mix, next to the floor: `serde_json::from_slice`
//! into a `Value` on the same bytes. Prints ns/event, events/s and the ratio to the floor.

// criterion_group! makes an undocumented public function.
#![allow(missing_docs)]

mod common;

use std::hint::black_box;

use chrono::Utc;
use criterion::{criterion_group, Criterion, Throughput};
use wahooks::providers::{parse_verified, ParseContext};
use wahooks::Provider;

use common::{fixture_mix, interleaved, pretty_fixture_mix, Interleaved};

fn parse_all(mix: &[(Provider, Vec<u8>)]) -> usize {
    let now = Utc::now();
    mix.iter()
        .map(|(p, bytes)| {
            parse_verified(
                &ParseContext::new(*p, "bench", now),
                &wahooks::auth::Verified::trusted(bytes),
            )
            .map(|e| e.len())
            .unwrap_or(0)
        })
        .sum()
}

fn floor_all(mix: &[(Provider, Vec<u8>)]) -> usize {
    mix.iter()
        .map(|(_, bytes)| {
            serde_json::from_slice::<serde_json::Value>(bytes)
                .map(|v| v.is_object() as usize)
                .unwrap_or(0)
        })
        .sum()
}

fn bench(c: &mut Criterion) {
    let mix = fixture_mix();
    let events = parse_all(&mix) as u64;
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(events));
    group.bench_function("parse_and_normalise_fixture_mix", |b| {
        b.iter(|| parse_all(black_box(&mix)))
    });
    group.bench_function("floor_serde_json_value_fixture_mix", |b| {
        b.iter(|| floor_all(black_box(&mix)))
    });
    let pretty = pretty_fixture_mix();
    group.bench_function("parse_and_normalise_indented_fixtures", |b| {
        b.iter(|| parse_all(black_box(&pretty)))
    });
    group.bench_function("floor_serde_json_value_indented_fixtures", |b| {
        b.iter(|| floor_all(black_box(&pretty)))
    });
    group.finish();
}

/// A plain timed summary after criterion's own report, in the units docs/performance.md quotes.
fn summary() {
    for (label, mix) in [
        ("wire (compact)", fixture_mix()),
        ("indented files", pretty_fixture_mix()),
    ] {
        summarise(label, &mix);
    }
}

/// Parse and floor measured in alternating rounds (median of each, and of their ratio), which
/// cancels the drift of a shared machine that separate runs pick up.
fn summarise(label: &str, mix: &[(Provider, Vec<u8>)]) {
    let events = parse_all(mix);
    let Interleaved {
        ours_ns: parse_ns,
        floor_ns,
        ratio,
    } = interleaved(201, 10, || parse_all(mix), || floor_all(mix));
    println!(
        "\nfixture mix, {label}: {} bodies, {} events, {} bytes",
        mix.len(),
        events,
        mix.iter().map(|(_, b)| b.len()).sum::<usize>()
    );
    println!(
        "parse+normalise: {:.0} ns/event, {:.0} events/s",
        parse_ns / events as f64,
        1e9 * events as f64 / parse_ns
    );
    println!(
        "floor (serde_json::Value): {:.0} ns/event-equivalent",
        floor_ns / events as f64
    );
    println!("ratio parse/floor (median of 201 interleaved rounds): {ratio:.2}x (target <= 2.0x)");
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
