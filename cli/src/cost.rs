//! `wahooks cost`: what a million events cost, measured on the local stack.
//!
//! Starts its own moto server, sends every fixture body in `tests/fixtures` through the
//! receiver (as API Gateway would hand it over), drains the table's stream through the fanout
//! into the queues, then reads back what the events table holds and counts:
//! - write units per event as DynamoDB bills them (one per started KB of each item, one per
//!   started KB of each index entry; a state item's update counts like a put), split into the
//!   base table and `gsi1`;
//! - stored bytes per event (items and index entries);
//! - requests per event and `SendMessageBatch` calls per event (counted at the SQS adapter).
//!
//! It prints those measurements and the per-million price table built from them and AWS's
//! us-east-1 list prices (constants below, with what each one is). Two inputs are assumptions,
//! not measurements, and are printed as such: the receivers' duration (one DynamoDB round trip
//! in the region) and the log volume per request.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use serde_json::json;
use wahooks::fanout::{OutMessage, PublishError, Publisher, Queue, SqsPublisher};
use wahooks::local::apigw_request;
use wahooks::store::{item_size, write_units};
use wahooks::{Provider, Route};

/// us-east-1 list prices (check yours).
mod price {
    /// API Gateway HTTP API, per request (first 300 M a month).
    pub const HTTP_API_REQUEST: f64 = 1.00 / 1e6;
    /// Lambda, per request.
    pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
    /// Lambda arm64, per GB-second.
    pub const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
    /// DynamoDB on-demand, per write request unit.
    pub const WRITE_UNIT: f64 = 0.625 / 1e6;
    /// DynamoDB standard storage, per GB-month.
    pub const STORAGE_GB_MONTH: f64 = 0.25;
    /// SQS FIFO, per request (64 KB chunk).
    pub const SQS_FIFO_REQUEST: f64 = 0.50 / 1e6;
    /// CloudWatch Logs ingestion, per GB.
    pub const LOGS_GB: f64 = 0.50;
}

/// Assumptions (not measurable without AWS), printed with the table.
mod assume {
    /// A receiver's billed duration: one DynamoDB round trip in the region, plus microseconds of CPU.
    pub const RECEIVER_SECONDS: f64 = 0.010;
    /// The receivers' memory.
    pub const RECEIVER_GB: f64 = 0.25;
    /// A fanout invocation of 100 records: ~15 SendMessageBatch round trips.
    pub const FANOUT_SECONDS: f64 = 0.150;
    /// Log lines per request (Lambda's START/END/REPORT and ours), bytes.
    pub const LOG_BYTES_PER_REQUEST: f64 = 500.0;
    /// A worker's ReceiveMessage and DeleteMessageBatch per message, amortised over batches of 10.
    pub const WORKER_REQUESTS_PER_EVENT: f64 = 0.2;
    /// Records per fanout invocation (the mapping's batch size).
    pub const RECORDS_PER_FANOUT: f64 = 100.0;
}

/// Arguments of `wahooks cost`.
#[derive(clap::Args)]
pub struct CostArgs {
    /// The fixture bodies to send (one folder per provider).
    #[arg(long, default_value = "tests/fixtures")]
    fixtures: PathBuf,
    /// The moto server executable.
    #[arg(long, env = "WAHOOKS_MOTO_SERVER", default_value = ".venv/bin/moto_server")]
    moto: PathBuf,
    /// Print the measurements as JSON instead of the table.
    #[arg(long)]
    json: bool,
}

/// Counts `SendMessageBatch` calls on the way to SQS.
struct CountingSqs {
    inner: SqsPublisher,
    batches: Arc<AtomicUsize>,
}

#[async_trait]
impl Publisher for CountingSqs {
    async fn send_batch(&self, queue: &Queue, batch: &[OutMessage]) -> Result<Vec<String>, PublishError> {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.inner.send_batch(queue, batch).await
    }
}

/// Run the report.
pub async fn run(args: CostArgs) -> ExitCode {
    match report(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What was measured.
struct Measured {
    bodies: usize,
    events: usize,
    state_items: usize,
    base_units: usize,
    index_units: usize,
    stored_bytes: usize,
    batches: usize,
    items_over_1kb: usize,
    item_bytes: usize,
    /// Events of redelivered bodies: their conditional puts fail, and are billed all the same.
    duplicates: usize,
}

async fn report(args: CostArgs) -> anyhow::Result<()> {
    let m = measure(&args).await?;
    let ev = m.events as f64;
    let per = |x: usize| x as f64 / ev;
    let requests = per(m.bodies);
    // A refused conditional put (a redelivery) costs what the item would have cost.
    let refused = m.duplicates as f64 * per(m.base_units);
    let wru = per(m.base_units + m.index_units) + refused / ev;
    let rows = [
        (
            "API Gateway HTTP API",
            format!(
                "{requests:.3} requests per event ({} bodies, some of them redeliveries, carry {} distinct events), $1.00/M",
                m.bodies, m.events
            ),
            requests * price::HTTP_API_REQUEST,
        ),
        (
            "receiver Lambdas (arm64, 256 MB)",
            format!(
                "{requests:.3} requests × ($0.20/M + {:.0} ms × {} GB × $0.0000133334/GB-s)",
                assume::RECEIVER_SECONDS * 1e3,
                assume::RECEIVER_GB
            ),
            requests
                * (price::LAMBDA_REQUEST + assume::RECEIVER_SECONDS * assume::RECEIVER_GB * price::LAMBDA_GB_SECOND),
        ),
        (
            "DynamoDB writes (on-demand)",
            format!(
                "{wru:.2} write units per event: {:.2} for the items ({:.0} bytes on average; {} of {} items over 1 KB), {:.2} for `gsi1` entries and {:.2} for the redeliveries' refused conditional puts, $0.625/M",
                per(m.base_units),
                m.item_bytes as f64 / (m.events + m.state_items) as f64,
                m.items_over_1kb,
                m.events + m.state_items,
                per(m.index_units),
                refused / ev
            ),
            wru * price::WRITE_UNIT,
        ),
        (
            "stream → fanout Lambda",
            format!(
                "stream reads are free; 1 invocation per {:.0} records, ~{:.0} ms × 0.25 GB",
                assume::RECORDS_PER_FANOUT,
                assume::FANOUT_SECONDS * 1e3
            ),
            (price::LAMBDA_REQUEST + assume::FANOUT_SECONDS * 0.25 * price::LAMBDA_GB_SECOND) / assume::RECORDS_PER_FANOUT,
        ),
        (
            "SQS (FIFO, $0.50/M)",
            format!(
                "{:.3} `SendMessageBatch` per event + the workers' receive and delete (~{})",
                per(m.batches),
                assume::WORKER_REQUESTS_PER_EVENT
            ),
            (per(m.batches) + assume::WORKER_REQUESTS_PER_EVENT) * price::SQS_FIFO_REQUEST,
        ),
        (
            "CloudWatch Logs",
            format!("~{:.1} KB per request, $0.50/GB", assume::LOG_BYTES_PER_REQUEST / 1e3),
            requests * assume::LOG_BYTES_PER_REQUEST / 1e9 * price::LOGS_GB,
        ),
    ];
    let total: f64 = rows.iter().map(|r| r.2).sum();
    let storage_gb = per(m.stored_bytes) * 1e6 / 1e9;
    if args.json {
        println!(
            "{}",
            json!({
                "bodies": m.bodies, "events": m.events, "state_items": m.state_items,
                "write_units_per_event": wru, "stored_write_units_per_event": per(m.base_units + m.index_units),
                "refused_write_units_per_event": refused / ev, "duplicates": m.duplicates,
                "base_write_units_per_event": per(m.base_units),
                "index_write_units_per_event": per(m.index_units),
                "stored_bytes_per_event": per(m.stored_bytes), "items_over_1kb": m.items_over_1kb,
                "send_message_batch_per_event": per(m.batches), "requests_per_event": requests,
                "dollars_per_million_events": total * 1e6,
                "storage_gb_per_million_events": storage_gb,
                "rows": rows.iter().map(|(p, what, cost)| json!({"part": p, "what": what, "dollars_per_million": cost * 1e6})).collect::<Vec<_>>(),
            })
        );
        return Ok(());
    }
    println!("| part | for one million events | cost |");
    println!("|---|---|---|");
    for (part, what, cost) in &rows {
        println!("| {part} | {what} | ${:.2} |", cost * 1e6);
    }
    println!(
        "| DynamoDB storage | {storage_gb:.2} GB ({:.0} bytes per event, items and index entries), $0.25/GB-month, kept by TTL (deletes are free) | ${:.2} per month retained |",
        per(m.stored_bytes),
        storage_gb * price::STORAGE_GB_MONTH
    );
    println!(
        "| **total** | | **≈ ${:.2} per million events**, plus storage while retained |",
        total * 1e6
    );
    println!(
        "\nMeasured on the local stack: {} fixture bodies, {} events, {} state items. Assumed: a receiver's duration ({:.0} ms), a fanout invocation's ({:.0} ms), {:.1} KB of logs per request.",
        m.bodies,
        m.events,
        m.state_items,
        assume::RECEIVER_SECONDS * 1e3,
        assume::FANOUT_SECONDS * 1e3,
        assume::LOG_BYTES_PER_REQUEST / 1e3
    );
    Ok(())
}

async fn measure(args: &CostArgs) -> anyhow::Result<Measured> {
    let moto = crate::serve::PrivateMoto::start(&args.moto, "cost").await?;
    let measured = measure_on(args, &moto.endpoint).await?;
    moto.finish().await;
    Ok(measured)
}

async fn measure_on(args: &CostArgs, endpoint: &str) -> anyhow::Result<Measured> {
    let mut stack = crate::serve::harness_stack(endpoint, "cost").await?;
    let batches = Arc::new(AtomicUsize::new(0));
    let sqs = SqsPublisher::new(stack.sqs.clone());
    stack.fanout = wahooks::lambda::with_bucket(
        wahooks::lambda::fanout_through(
            &stack.config,
            &sqs,
            Arc::new(CountingSqs {
                inner: sqs.clone(),
                batches: batches.clone(),
            }),
        )
        .await?,
        &stack.config,
        &stack.sdk,
    );

    let (mut bodies, mut duplicates) = (0, 0);
    for provider in Provider::ALL {
        let dir = args.fixtures.join(provider.as_str());
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("http-headers."))
            })
            .collect();
        files.sort();
        let token = stack.url_token_endpoint(provider).await.context("endpoint")?;
        let path = format!("/v1/hooks/{token}/any");
        let headers = [("content-type".to_owned(), "application/json".to_owned())];
        for file in files {
            let body = std::fs::read(&file)?;
            let response = stack
                .receiver
                .handle(Route::Any, apigw_request("POST", &path, "", &headers, &body))
                .await;
            anyhow::ensure!(
                response.status() == 200,
                "{}: answered {}",
                file.display(),
                response.status()
            );
            bodies += 1;
            let answer: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap_or_default();
            duplicates += answer["duplicates"].as_array().map_or(0, Vec::len);
        }
    }
    let mut driver = stack.stream_driver();
    driver
        .drain(&stack.fanout, Duration::from_secs(300))
        .await
        .map_err(|e| anyhow::anyhow!(e).context("the stream"))?;

    let mut m = Measured {
        bodies,
        events: 0,
        state_items: 0,
        base_units: 0,
        index_units: 0,
        stored_bytes: 0,
        batches: batches.load(Ordering::Relaxed),
        items_over_1kb: 0,
        item_bytes: 0,
        duplicates,
    };
    let mut start = None;
    loop {
        let page = stack
            .dynamo
            .scan()
            .table_name(&stack.config.events_table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .context("reading the events table back")?;
        for item in page.items() {
            let sk = item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
                .unwrap_or_default();
            let (base, index) = write_units(item);
            match sk.get(..2) {
                Some("E#") => m.events += 1,
                Some("S#") => m.state_items += 1,
                _ => continue,
            }
            m.base_units += base;
            m.index_units += index;
            // DynamoDB's storage: each item plus 100 bytes, each index entry (its keys and the
            // table's) plus 100 bytes.
            let keys: usize = ["pk", "sk", "gsi1pk", "gsi1sk"]
                .iter()
                .filter_map(|k| item.get(*k).and_then(|v| v.as_s().ok()).map(|v| k.len() + v.len()))
                .sum();
            m.item_bytes += item_size(item);
            m.stored_bytes += item_size(item) + 100 + if index > 0 { keys + 100 } else { 0 };
            if base > 1 {
                m.items_over_1kb += 1;
            }
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    anyhow::ensure!(m.events > 0, "no events were stored");
    Ok(m)
}
