//! The fanout in process: stream batches (100 records, Lambda's default) built from the fixture
//! mix's stored items → routing, message bodies (raw restored from zstd), batching → an
//! in-memory publisher. Prints records/s and the SQS requests per event (batching efficiency).

// criterion_group! makes an undocumented public function.
#![allow(missing_docs)]

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use chrono::Utc;
use criterion::{criterion_group, Criterion, Throughput};
use serde_json::{json, Map, Value};
use wahooks::fanout::{Fanout, MemoryPublisher, Queue, Routing, DEFAULT_QUEUES};
use wahooks::providers::{parse_verified, ParseContext};
use wahooks::schema::is_fifo;
use wahooks::store::event_item;

/// One stream record per event of the fixture mix, as Lambda delivers it.
fn records() -> Vec<Value> {
    let now = Utc::now();
    let mut out = Vec::new();
    for (provider, body) in common::fixture_mix() {
        let events = parse_verified(
            &ParseContext::new(provider, "bench", now),
            &wahooks::auth::Verified::trusted(&body),
        )
        .unwrap_or_default();
        for event in events {
            let item = event_item(&event, 30);
            let image: Map<String, Value> = item
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        AttributeValue::S(s) => json!({ "S": s }),
                        AttributeValue::N(n) => json!({ "N": n }),
                        AttributeValue::B(b) => {
                            json!({ "B": base64::engine::general_purpose::STANDARD.encode(b.as_ref()) })
                        }
                        _ => json!({ "NULL": true }),
                    };
                    (k.clone(), v)
                })
                .collect();
            let seq = out.len();
            out.push(json!({
                "eventID": format!("{seq}"), "eventName": "INSERT", "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": { "NewImage": image, "SequenceNumber": format!("{seq:021}"), "SizeBytes": 1,
                              "StreamViewType": "NEW_IMAGE" }
            }));
        }
    }
    out
}

fn batches(records: &[Value]) -> Vec<StreamEvent> {
    records
        .chunks(100)
        .map(|c| serde_json::from_value(json!({ "Records": c })).expect("stream event"))
        .collect()
}

fn fanout(publisher: &MemoryPublisher) -> Fanout {
    let queues = DEFAULT_QUEUES
        .iter()
        .map(|n| {
            let url = format!("http://q/{n}{}", if is_fifo(n) { ".fifo" } else { "" });
            Queue::new(*n, url, 1024 * 1024)
        })
        .collect();
    let routing = Routing::new(queues, &Routing::routes_with(&[])).expect("routing");
    Fanout::new(routing, Arc::new(publisher.clone()), "events")
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let records = records();
    let batches = batches(&records);
    let publisher = MemoryPublisher::new();
    // A fresh handler per round: one that has sent a record skips it when it comes again.
    let mut group = c.benchmark_group("fanout");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("fanout_fixture_mix_in_memory", |b| {
        b.iter_batched(
            || {
                publisher.clear();
                fanout(&publisher)
            },
            |f| {
                for batch in &batches {
                    black_box(runtime.block_on(f.handle(batch)));
                }
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();

    // The figures docs/performance.md quotes.
    publisher.clear();
    let rounds = 200;
    let mut elapsed = std::time::Duration::ZERO;
    for _ in 0..rounds {
        let f = fanout(&publisher);
        let start = Instant::now();
        for batch in &batches {
            black_box(runtime.block_on(f.handle(batch)));
        }
        elapsed += start.elapsed();
    }
    let n = records.len() * rounds;
    let ns = elapsed.as_nanos() as f64 / n as f64;
    let requests = publisher.requests() as f64 / rounds as f64;
    println!(
        "fanout: {} records in {} stream batches of ≤100: {:.0} ns/record, {:.0} records/s; \
         {:.1} SendMessageBatch requests for {} events = {:.3} requests/event",
        records.len(),
        batches.len(),
        ns,
        1e9 / ns,
        requests,
        records.len(),
        requests / records.len() as f64
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
