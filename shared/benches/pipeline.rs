//! The whole receiver in process: an API Gateway v2 request event in (built by `lambda_http`
//! from JSON, as in Lambda), endpoint lookup, authentication, parse, normalise, item building
//! (zstd, SHA-256) and the in-memory store, response out; over the fixture mix. Prints
//! ns/request and requests/s next to the parse-only figure, and the stored item sizes the
//! cost note of `docs/receiving.md` uses.

// criterion_group! makes an undocumented public function.
#![allow(missing_docs)]

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use criterion::{criterion_group, Criterion, Throughput};
use wahooks::endpoint::{Auth, Endpoint};
use wahooks::http::Receiver;
use wahooks::local::apigw_request;
use wahooks::providers::{parse_verified, ParseContext};
use wahooks::registry::MemoryRegistry;
use wahooks::store::{event_item, item_size, write_units, MemoryEventStore};
use wahooks::Route;

const TOKEN: &str = "bench-token-0123456789abcdefghijklmnopqrstu";

fn receiver() -> Receiver {
    let registry = MemoryRegistry::default();
    for p in wahooks::Provider::ALL {
        registry.insert(
            &format!("{TOKEN}-{p}"),
            Endpoint {
                id: format!("ep_{p}"),
                provider: p,
                auth: Auth::url_token(),
                enabled: true,
                created_at: Utc::now().to_rfc3339(),
                tenant: None,
                source: None,
                timing: Default::default(),
                media: Default::default(),
            },
        );
    }
    Receiver::new(Arc::new(registry), Arc::new(MemoryEventStore::new()))
}

/// One API Gateway request JSON per fixture (the event as Lambda receives it, as text).
fn requests() -> Vec<String> {
    common::fixture_mix()
        .into_iter()
        .map(|(p, body)| {
            let path = format!("/v1/hooks/{TOKEN}-{p}/any");
            let headers = [("content-type".to_owned(), "application/json".to_owned())];
            // The same request the local server builds parses (a sanity check of the JSON below).
            let _ = apigw_request("POST", &path, "", &headers, &body);
            serde_json::json!({
                "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
                "headers": {"content-type": "application/json"},
                "requestContext": {"accountId": "0", "apiId": "b", "domainName": "b", "domainPrefix": "b",
                    "requestId": "b", "routeKey": "$default", "stage": "$default", "time": "t", "timeEpoch": 0,
                    "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "b"}},
                "isBase64Encoded": false,
                "body": String::from_utf8(body).expect("fixtures are UTF-8"),
            })
            .to_string()
        })
        .collect()
}

fn run_all(runtime: &tokio::runtime::Runtime, events: &[String]) -> usize {
    // A fresh store each round: every request is a first delivery.
    let r = receiver();
    events
        .iter()
        .map(|e| {
            let req = lambda_http::request::from_str(e).expect("event");
            runtime.block_on(r.handle(Route::Any, req)).status().as_u16() as usize
        })
        .sum()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let events = requests();
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("apigw_event_to_response_fixture_mix", |b| {
        b.iter(|| black_box(run_all(&runtime, &events)))
    });
    group.finish();

    let rounds = 100;
    let start = Instant::now();
    for _ in 0..rounds {
        black_box(run_all(&runtime, &events));
    }
    let ns = start.elapsed().as_nanos() as f64 / (rounds * events.len()) as f64;
    // `make bench` runs this twice: with the bench profile, and with the release profile the
    // Lambdas ship with (opt-level "s", LTO), saying which.
    let profile = std::env::var("WAHOOKS_BENCH_PROFILE").unwrap_or_else(|_| "bench".into());
    println!(
        "pipeline ({profile} profile): {} requests: {:.1} µs/request, {:.0} requests/s (one core, in-memory store)",
        events.len(),
        ns / 1000.0,
        1e9 / ns
    );

    // Stored item sizes (the cost note): bytes, and write units: the item, plus one write for
    // its message-index entry (keys only).
    let now = Utc::now();
    let (mut n, mut bytes, mut base, mut index, mut entries) = (0usize, 0usize, 0usize, 0usize, 0usize);
    for (p, body) in common::fixture_mix() {
        for event in parse_verified(
            &ParseContext::new(p, "ep_bench", now),
            &wahooks::auth::Verified::trusted(&body),
        )
        .unwrap_or_default()
        {
            let item = event_item(&event, 30);
            let (b, i) = write_units(&item);
            n += 1;
            bytes += item_size(&item);
            base += b;
            index += i;
            entries += usize::from(i > 0);
        }
    }
    println!(
        "items: {n} events, {:.0} bytes/item on average, {:.2} write units/event ({:.2} table + {:.2} index; {:.2} index entries/event)",
        bytes as f64 / n as f64,
        (base + index) as f64 / n as f64,
        base as f64 / n as f64,
        index as f64 / n as f64,
        entries as f64 / n as f64,
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
