//! Every provider adapter, for every route hint, on arbitrary bytes: an event list or a
//! decode error, never a panic; and every event serialises.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wahooks::providers::{parse_verified, ParseContext};
use wahooks::{Provider, Route};

fuzz_target!(|data: &[u8]| {
    let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    for provider in Provider::ALL {
        for route in [Route::Any, Route::MessageReceived, Route::Presence] {
            let mut ctx = ParseContext::new(provider, "fuzz", now);
            ctx.route = Some(route);
            if let Ok(events) = parse_verified(&ctx, &wahooks::auth::Verified::trusted(data)) {
                for e in events {
                    assert!(!e.to_json().is_empty());
                }
            }
        }
    }
});
