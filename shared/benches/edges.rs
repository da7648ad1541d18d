//! The edges of what a receiver accepts (issue #27): the widest webhooks (a Z-API status of
//! `MAX_EVENTS_PER_WEBHOOK` ids, a Meta batch of as many statuses, each to its own chat) and the
//! largest (an Evolution `messages.upsert` with ~4.5 MB of incompressible inline media, a ~3 MB
//! Meta coexistence `history` chunk), each through the whole receiver in process: the API
//! Gateway request event as Lambda hands it over (JSON text), `lambda_http`'s conversion,
//! endpoint lookup, authentication, parse, normalise, item building (zstd, SHA-256), the claim
//! check (body items, the in-memory bucket) and the answer, with the Lambdas' JSON log layer
//! formatting every line (into a sink). Every request is a first delivery: a fresh store and
//! bucket for each.
//!
//! Time: criterion (few samples), and the median of a few timed requests for the table.
//!
//! Peak memory: the workspace forbids unsafe code (`unsafe_code = "forbid"`, which an
//! `#![allow]` cannot relax), and a counting `#[global_allocator]` needs `unsafe impl
//! GlobalAlloc`; so the bench measures resident memory instead. For each body it re-executes
//! itself (`WAHOOKS_EDGES_CHILD=<file of the request event>`): the fresh child builds its
//! runtime and receiver, notes VmRSS (idle), reads the request event from the file (as the
//! Lambda runtime holds the invocation), resets the high-water mark (`5` to
//! `/proc/self/clear_refs`), handles one request and reports VmHWM from `/proc/self/status`.
//! The table prints the process peak and the peak over the idle process (what one request adds:
//! the invocation bytes, its parse, items, compression, the stored copies).
//!
//! Prints a table for docs/performance.md.

// criterion_group! makes an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use wahooks::bucket::MemoryBucket;
use wahooks::endpoint::{Auth, Endpoint};
use wahooks::http::Receiver;
use wahooks::registry::MemoryRegistry;
use wahooks::store::{MemoryEventStore, MAX_EVENTS_PER_WEBHOOK};
use wahooks::{Provider, Route};

const TOKEN: &str = "bench-token-0123456789abcdefghijklmnopqrstu";
/// Set in a child: the file holding the request event to handle once, measuring memory.
const CHILD_ENV: &str = "WAHOOKS_EDGES_CHILD";
/// The receivers' configuration (infra/template.yaml) and the time their AWS calls may take.
const LAMBDA_MEMORY_MB: f64 = 256.0;
const LAMBDA_TIMEOUT_S: f64 = 10.0;
const AWS_BUDGET_S: f64 = 7.0;
/// A 256 MB Lambda gets about 1/7 of a vCPU (a full one at 1,769 MB).
const LAMBDA_CPU_FACTOR: f64 = 7.0;

/// One edge: a body and what it must turn into.
struct Edge {
    name: &'static str,
    provider: Provider,
    body: Vec<u8>,
    events: usize,
}

/// A Z-API status naming `n` message ids.
fn zapi_status(n: usize) -> Vec<u8> {
    let ids: Vec<String> = (0..n).map(|i| format!("3EB0{i:016X}")).collect();
    serde_json::to_vec(&serde_json::json!({
        "type": "MessageStatusCallback", "instanceId": "I", "status": "READ", "ids": ids,
        "momment": 1757390383000u64, "phone": "5511999999999"
    }))
    .expect("json")
}

/// A Meta webhook batching `n` statuses, each to its own recipient (with the pricing block
/// Meta sends on `delivered`).
fn meta_statuses(n: usize) -> Vec<u8> {
    let statuses: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "id": format!("wamid.STATUS{i:06}"), "status": "delivered", "timestamp": "1757390383",
                "recipient_id": format!("5511{i:09}"),
                "pricing": {"billable": true, "pricing_model": "PMP", "category": "marketing"}
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": "PNID"},
            "statuses": statuses
        }}]}]
    }))
    .expect("json")
}

/// Evolution's `messages.upsert` with `webhook_base64`: the image inline, `media` characters
/// of base64.
fn evolution_media(media: usize) -> Vec<u8> {
    wahooks::testkit::evolution_inline_media("inst", "3EB0", media).into_bytes()
}

fn edges() -> Vec<Edge> {
    vec![
        Edge {
            name: "widest: Z-API status, 1,000 ids",
            provider: Provider::Zapi,
            body: zapi_status(MAX_EVENTS_PER_WEBHOOK),
            events: MAX_EVENTS_PER_WEBHOOK,
        },
        Edge {
            name: "widest: Meta, 1,000 statuses",
            provider: Provider::Meta,
            body: meta_statuses(MAX_EVENTS_PER_WEBHOOK),
            events: MAX_EVENTS_PER_WEBHOOK,
        },
        Edge {
            name: "largest: Evolution, 4.5 MB media",
            provider: Provider::Evolution,
            body: evolution_media(4_500_000),
            events: 1,
        },
        Edge {
            name: "largest: Meta history, 3 MB",
            provider: Provider::Meta,
            body: wahooks::testkit::meta_history(3 * 1024 * 1024),
            events: 1,
        },
    ]
}

/// The API Gateway (HTTP API, v2) request event of a POST of `body` to `provider`'s endpoint,
/// as JSON text: what the Lambda runtime hands `lambda_http`.
fn invocation(provider: Provider, body: &[u8]) -> String {
    let path = format!("/v1/hooks/{TOKEN}-{provider}/any");
    serde_json::json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {"accountId": "0", "apiId": "b", "domainName": "b", "domainPrefix": "b",
            "requestId": "b", "routeKey": "$default", "stage": "$default", "time": "t", "timeEpoch": 0,
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "b"}},
        "isBase64Encoded": false,
        "body": std::str::from_utf8(body).expect("the bodies are UTF-8"),
    })
    .to_string()
}

/// A receiver over a fresh in-memory store with a bucket (an endpoint per provider), and the
/// store and bucket to look into.
fn receiver() -> (Receiver, MemoryEventStore, MemoryBucket) {
    let registry = MemoryRegistry::default();
    for p in Provider::ALL {
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
    let bucket = MemoryBucket::new();
    let store = MemoryEventStore::with_bucket(bucket.clone());
    let receiver = Receiver::new(Arc::new(registry), Arc::new(store.clone()));
    (receiver, store, bucket)
}

/// Handle one request event: `lambda_http`'s conversion, then the receiver. The status.
fn handle(runtime: &tokio::runtime::Runtime, receiver: &Receiver, event: &str) -> u16 {
    let req = lambda_http::request::from_str(event).expect("a request event");
    runtime.block_on(receiver.handle(Route::Any, req)).status().as_u16()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
}

/// The Lambdas' log layer (`wahooks::config::init_tracing`: JSON, INFO), into a sink: a
/// request pays for formatting its lines (one per stored event) as in Lambda.
fn init_logs() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = tracing_subscriber::registry()
        .with(wahooks::config::log_filter(""))
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(false)
                .without_time()
                .with_target(false)
                .with_writer(std::io::sink),
        )
        .try_init();
}

/// A `/proc/self/status` field in kB (VmRSS, VmHWM).
fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux)");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// The child: one request, its memory. Prints `idle_kb loaded_kb peak_kb reset cold_us status`.
fn child(path: &str) {
    init_logs();
    let runtime = runtime();
    let (receiver, _store, _bucket) = receiver();
    let idle = status_kb("VmRSS");
    let event = std::fs::read_to_string(path).expect("the request event");
    let loaded = status_kb("VmRSS");
    // Peak RSS back to the current RSS (Linux ≥ 4.0): the peak below is this request's.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let start = Instant::now();
    let status = handle(&runtime, &receiver, &event);
    let cold = start.elapsed();
    let peak = status_kb("VmHWM");
    black_box(&event);
    println!("{idle} {loaded} {peak} {reset} {} {status}", cold.as_micros());
}

/// What a child measured.
struct Memory {
    idle_kb: u64,
    peak_kb: u64,
    reset: bool,
    cold: Duration,
}

/// Handle `event` once in a fresh process of this bench; its memory.
fn measure_in_child(name: &str, event: &str) -> Memory {
    let file = std::env::temp_dir().join(format!(
        "wahooks-edges-{}-{}.json",
        std::process::id(),
        name.chars().filter(char::is_ascii_alphanumeric).collect::<String>()
    ));
    std::fs::write(&file, event).expect("write the request event");
    let out = Command::new(std::env::current_exe().expect("this bench"))
        .env(CHILD_ENV, &file)
        .output()
        .expect("run the child");
    let _ = std::fs::remove_file(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{name}: child failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fields: Vec<&str> = stdout.split_whitespace().collect();
    let [idle, _loaded, peak, reset, cold, status] = fields[..] else {
        panic!("{name}: unexpected child output {stdout:?}");
    };
    assert_eq!(status, "200", "{name}: the child's answer");
    let n = |s: &str| s.parse::<u64>().expect("a number");
    Memory {
        idle_kb: n(idle),
        peak_kb: n(peak),
        reset: reset == "true",
        cold: Duration::from_micros(n(cold)),
    }
}

/// Check an edge answers 200 and stores all its events (the full work, every time).
fn check(runtime: &tokio::runtime::Runtime, edge: &Edge, event: &str) -> (usize, usize) {
    let (r, store, bucket) = receiver();
    assert_eq!(handle(runtime, &r, event), 200, "{}: answered 200", edge.name);
    assert_eq!(store.len(), edge.events, "{}: every event stored", edge.name);
    // A redelivery is a duplicate: only a fresh store does the whole work again.
    (store.body_items(), bucket.len())
}

fn bench(c: &mut Criterion) {
    init_logs();
    let runtime = runtime();
    let edges = edges();
    let events: Vec<String> = edges.iter().map(|e| invocation(e.provider, &e.body)).collect();
    let kept: Vec<(usize, usize)> = edges
        .iter()
        .zip(&events)
        .map(|(e, ev)| check(&runtime, e, ev))
        .collect();

    let mut group = c.benchmark_group("edges");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for (edge, event) in edges.iter().zip(&events) {
        group.throughput(Throughput::Bytes(edge.body.len() as u64));
        let id = edge.name.replace([':', ','], "").replace(' ', "_");
        group.bench_function(id, |b| {
            b.iter_batched(
                receiver,
                |(r, store, bucket)| {
                    let status = handle(&runtime, &r, event);
                    (status, store, bucket)
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();

    // The table: the median of a few timed requests (fresh store each), and a child's memory.
    let profile = std::env::var("WAHOOKS_BENCH_PROFILE").unwrap_or_else(|_| "bench".into());
    println!();
    println!(
        "edges ({profile} profile; one core here; Lambda: {LAMBDA_MEMORY_MB:.0} MB, {LAMBDA_TIMEOUT_S:.0} s timeout, \
         {AWS_BUDGET_S:.0} s for AWS calls, ~1/{LAMBDA_CPU_FACTOR:.0} vCPU)"
    );
    println!(
        "| body | bytes | events | kept apart | time/request, median (fastest) | ×{LAMBDA_CPU_FACTOR:.0} (Lambda est.) | first request in a fresh process | peak RSS (process) | peak over idle process |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|---:|---:|");
    let mut resets = true;
    for ((edge, event), (body_items, objects)) in edges.iter().zip(&events).zip(&kept) {
        let mut times: Vec<Duration> = (0..11)
            .map(|_| {
                let (r, store, bucket) = receiver();
                let start = Instant::now();
                let status = handle(&runtime, &r, event);
                let t = start.elapsed();
                assert_eq!(status, 200);
                drop((r, store, bucket));
                t
            })
            .collect();
        times.sort();
        let (fastest, median) = (times[0], times[times.len() / 2]);
        let memory = measure_in_child(edge.name, event);
        resets &= memory.reset;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mb = |kb: u64| kb as f64 / 1024.0;
        println!(
            "| {} | {} | {} | {body_items} body item(s), {objects} S3 object(s) | {:.1} ms ({:.1}) | {:.0} ms | {:.1} ms | {:.1} MB | {:.1} MB |",
            edge.name,
            edge.body.len(),
            edge.events,
            ms(median),
            ms(fastest),
            ms(median) * LAMBDA_CPU_FACTOR,
            ms(memory.cold),
            mb(memory.peak_kb),
            mb(memory.peak_kb.saturating_sub(memory.idle_kb)),
        );
    }
    println!(
        "time/request: median and fastest of 11 (API Gateway event JSON → response; in-memory store, no AWS latency). \
         Peak RSS: VmHWM of a fresh process handling one request{}; over idle: minus its VmRSS before reading the request event.",
        if resets { " (high-water mark reset just before it)" } else { " (no reset: the process's whole life)" }
    );
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        child(&path);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
