//! `wahooks-dev cost`: what a million events cost, measured on the local stack.
//!
//! Starts its own moto server, sends every fixture body in `tests/fixtures` through the
//! receiver (as API Gateway would hand it over), drains the table's stream through the fanout
//! into the queues, then reads back what the events table holds and counts:
//! - write units per event as DynamoDB bills them (one per started KB of each item, one per
//!   started KB of each index entry; a state item's update counts like a put), split into the
//!   base table and `gsi1`;
//! - the body items (`B#<sha256>`, sk `B`: a webhook's body kept once for its several events):
//!   every unconditional `PutItem` the receiver makes of one, redeliveries included, counted on
//!   the way to DynamoDB (an SDK interceptor) with the same `write_units`, and their stored bytes
//!   read back;
//! - stored bytes per event (items and index entries);
//! - requests per event and `SendMessageBatch` calls per event (counted at the SQS adapter);
//! - the claim-check bucket's `PutObject` and `GetObject` requests (counted at the `BodyBucket`
//!   adapter the receiver and the fanout share) and the bytes it holds at the end.
//!
//! It prints those measurements and the per-million price table built from them and AWS's
//! us-east-1 list prices (constants below, with what each one is). Two inputs are assumptions,
//! not measurements, and are printed as such: the receivers' duration (one DynamoDB round trip
//! in the region) and the log volume per request.

mod identity;
mod media;
mod timers;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wahooks::local::LocalStack;

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept};
use aws_sdk_dynamodb::operation::put_item::PutItemInput;
use serde_json::json;
use wahooks::bucket::{BodyBucket, BucketError, S3Bucket};
use wahooks::fanout::{OutMessage, PublishError, Publisher, Queue, SqsPublisher};
use wahooks::local::apigw_request;
use wahooks::store::{item_size, keys, write_units, DynamoEventStore};
use wahooks::{Provider, Route};

/// us-east-1 list prices (check yours).
mod price {
    /// API Gateway HTTP API, per request (first 300 M a month).
    pub(super) const HTTP_API_REQUEST: f64 = 1.00 / 1e6;
    /// Lambda, per request.
    pub(super) const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
    /// Lambda arm64, per GB-second.
    pub(super) const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
    /// DynamoDB on-demand, per write request unit.
    pub(super) const WRITE_UNIT: f64 = 0.625 / 1e6;
    /// DynamoDB standard storage, per GB-month.
    pub(super) const STORAGE_GB_MONTH: f64 = 0.25;
    /// SQS FIFO, per request (64 KB chunk).
    pub(super) const SQS_FIFO_REQUEST: f64 = 0.50 / 1e6;
    /// CloudWatch Logs ingestion, per GB.
    pub(super) const LOGS_GB: f64 = 0.50;
    /// S3 Standard, per `PutObject` request ($0.005 per 1,000: eight write units).
    pub(super) const S3_PUT: f64 = 0.005 / 1e3;
    /// S3 Standard, per `GetObject` request ($0.0004 per 1,000).
    pub(super) const S3_GET: f64 = 0.0004 / 1e3;
    /// S3 Standard storage, per GB-month (first 50 TB).
    pub(super) const S3_GB_MONTH: f64 = 0.023;
    /// SQS standard, per request (the timers queue).
    pub(super) const SQS_STANDARD_REQUEST: f64 = 0.40 / 1e6;
    /// DynamoDB on-demand, per read request unit (a strongly consistent read of ≤ 4 KB).
    pub(super) const READ_UNIT: f64 = 0.125 / 1e6;
}

/// The total per million events that docs/performance.md and README.md gave before the claim
/// check (body items and the bucket): the table says whether the cost rose since.
const BEFORE_CLAIM_CHECK: f64 = 3.21;

/// How far, in cents per million events, two runs of the same mix differ: each run's receipt
/// times compress a byte or two differently, and an item near 1 KB crosses it or not (measured:
/// 40 to 42 of 223 items over 1 KB, ±$0.006). A rise within it is no rise.
const JITTER_CENTS: f64 = 1.0;

/// Assumptions (not measurable without AWS), printed with the table.
mod assume {
    /// A receiver's billed duration: one DynamoDB round trip in the region, plus microseconds of CPU.
    pub(super) const RECEIVER_SECONDS: f64 = 0.010;
    /// The receivers' memory.
    pub(super) const RECEIVER_GB: f64 = 0.25;
    /// A fanout invocation of 100 records: ~15 SendMessageBatch round trips.
    pub(super) const FANOUT_SECONDS: f64 = 0.150;
    /// Log lines per request (Lambda's START/END/REPORT and ours), bytes.
    pub(super) const LOG_BYTES_PER_REQUEST: f64 = 500.0;
    /// A worker's ReceiveMessage and DeleteMessageBatch per message, amortised over batches of 10.
    pub(super) const WORKER_REQUESTS_PER_EVENT: f64 = 0.2;
    /// Records per fanout invocation (the mapping's batch size).
    pub(super) const RECORDS_PER_FANOUT: f64 = 100.0;
    /// A `timers` invocation of a batch of notes: a read, a write and maybe a send per note.
    pub(super) const TIMERS_SECONDS: f64 = 0.050;
    /// Notes per `timers` invocation (the queue mapping's batch size).
    pub(super) const NOTES_PER_TIMERS: f64 = 10.0;
    /// A `media-archiver` invocation for a 200 KB file: the CDN's download and S3's upload.
    pub(super) const MEDIA_SECONDS: f64 = 0.300;
}

/// Arguments of `wahooks-dev cost`.
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

/// Counts `SendMessageBatch` calls on the way to SQS: to the workers' queues, and the notes to
/// the timers queue apart.
struct CountingSqs {
    inner: SqsPublisher,
    batches: Arc<AtomicUsize>,
    notes: Arc<AtomicUsize>,
    media_notes: Arc<AtomicUsize>,
}

#[async_trait]
impl Publisher for CountingSqs {
    async fn send_batch(&self, queue: &Queue, batch: &[OutMessage]) -> Result<Vec<String>, PublishError> {
        let counter = match queue.name.as_str() {
            "timers" => &self.notes,
            "media" => &self.media_notes,
            _ => &self.batches,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.inner.send_batch(queue, batch).await
    }
}

/// The body items' writes, counted on the way to DynamoDB: every `PutItem` of an item whose
/// sort key is `B` (the receiver writes one unconditionally for each webhook that needs it).
#[derive(Debug, Default)]
struct BodyItemWrites {
    puts: AtomicUsize,
    units: AtomicUsize,
}

/// The SDK interceptor that counts them.
#[derive(Debug, Clone)]
struct CountingBodyItems(Arc<BodyItemWrites>);

impl Intercept for CountingBodyItems {
    fn name(&self) -> &'static str {
        "CountingBodyItems"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let item = context.input().downcast_ref::<PutItemInput>().and_then(|p| p.item());
        if let Some(item) = item.filter(|i| {
            i.get("sk")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|sk| sk == keys::BODY_SK)
        }) {
            let (base, index) = write_units(item);
            self.0.puts.fetch_add(1, Ordering::Relaxed);
            self.0.units.fetch_add(base + index, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Counts the claim-check bucket's requests (the receiver's puts, the fanout's gets).
struct CountingBucket {
    inner: S3Bucket,
    puts: AtomicUsize,
    put_bytes: AtomicUsize,
    gets: AtomicUsize,
}

#[async_trait]
impl BodyBucket for CountingBucket {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), BucketError> {
        self.puts.fetch_add(1, Ordering::Relaxed);
        self.put_bytes.fetch_add(bytes.len(), Ordering::Relaxed);
        self.inner.put(key, bytes, content_type).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BucketError> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        self.inner.get(key).await
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
    /// Bodies that carried more than one event (each needs a body item, or an object).
    multi_event_bodies: usize,
    events: usize,
    state_items: usize,
    base_units: usize,
    index_units: usize,
    /// Items and index entries, body items included, each with DynamoDB's 100 bytes.
    stored_bytes: usize,
    batches: usize,
    items_over_1kb: usize,
    item_bytes: usize,
    /// Events of redelivered bodies: their conditional puts fail, and are billed all the same.
    duplicates: usize,
    /// Body items in the table at the end, and their bytes (DynamoDB's size of each).
    body_items: usize,
    body_item_bytes: usize,
    /// Body-item puts of webhooks that stored at least one new event, and their write units.
    body_puts: usize,
    body_units: usize,
    /// Body-item puts of redeliveries (every event a duplicate: the body is rewritten all the
    /// same), and their write units.
    redelivered_body_puts: usize,
    redelivered_body_units: usize,
    /// `PutObject` calls the receiver made, and their bytes.
    s3_puts: usize,
    s3_put_bytes: usize,
    /// `GetObject` calls the fanout made (events kept as objects).
    s3_fanout_gets: usize,
    /// Events whose `data.raw_pointer` names an object: a worker resolving it reads it once.
    s3_worker_gets: usize,
    /// The bucket at the end: objects and bytes.
    s3_objects: usize,
    s3_bytes: usize,
    /// The events made from time passing, and what making them cost.
    made: Made,
    /// The media sample: what archiving a file costs.
    media: media::MediaMeasured,
    /// The identity map's reads and writes.
    identity: identity::IdentityMeasured,
}

/// What the timers did for the mix (turns, silence), apart from the providers' events.
#[derive(Debug, Default)]
struct Made {
    /// `SendMessageBatch` of notes from the fanout to the timers queue.
    note_batches: usize,
    /// Notes the `timers` function took (the fanout's and its own timers).
    notes: usize,
    /// Its counted work.
    loads: usize,
    read_units: usize,
    puts: usize,
    transactions: usize,
    write_units: usize,
    timers: usize,
    /// The events it made, by kind, and their bytes stored (items and index entries).
    turns: usize,
    silences: usize,
    bytes: usize,
    /// `SendMessageBatch` that published them to the workers' queues.
    publish_batches: usize,
    /// State items (`S#turn`, `S#activity`) at the end.
    state_items: usize,
}

async fn report(args: CostArgs) -> anyhow::Result<()> {
    let m = measure(&args).await?;
    let f = Figures::of(&m);
    if args.json {
        println!("{}", f.json(&m));
    } else {
        f.print(&m);
    }
    Ok(())
}

/// A part of the bill: its name, what it is made of, dollars per event.
type Row = (&'static str, String, f64);

/// The figures derived from a measurement, per event.
struct Figures {
    /// Events measured (the denominator).
    ev: f64,
    /// API Gateway requests (and receiver invocations) per event.
    requests: f64,
    /// Write units of refused conditional puts (redeliveries), in total.
    refused: f64,
    /// Write units of the items stored, per event.
    stored_wru: f64,
    /// Write units of body items rewritten by redeliveries, per event.
    redelivered_body: f64,
    /// Every write unit, per event.
    wru: f64,
    /// `GetObject` requests (the fanout's and the workers').
    s3_gets: usize,
    /// The bill, part by part.
    rows: Vec<Row>,
    /// The whole bill, its timers' part and its identity map's, per event.
    total: f64,
    made: f64,
    identity: f64,
    /// GB stored per million events, in DynamoDB and in S3.
    storage_gb: f64,
    s3_storage_gb: f64,
    /// The bill without the timers, and before the claim check, in cents per million events.
    now_cents: f64,
    before_cents: f64,
}

impl Figures {
    fn of(m: &Measured) -> Figures {
        let ev = m.events as f64;
        let per = |x: usize| x as f64 / ev;
        let requests = per(m.bodies);
        // A refused conditional put (a redelivery) costs what the item would have cost.
        let refused = m.duplicates as f64 * per(m.base_units);
        let stored_wru = per(m.base_units + m.index_units + m.body_units);
        let redelivered_body = per(m.redelivered_body_units);
        let mut f = Figures {
            ev,
            requests,
            refused,
            stored_wru,
            redelivered_body,
            wru: stored_wru + refused / ev + redelivered_body,
            s3_gets: m.s3_fanout_gets + m.s3_worker_gets,
            rows: Vec::new(),
            total: 0.0,
            // The claim check's promise is about storing and publishing the providers' events:
            // compared without what turns and silence add (a feature of its own, its row says
            // what it costs).
            made: made_row(m).2,
            identity: identity::row(m).2,
            storage_gb: per(m.stored_bytes) * 1e6 / 1e9,
            s3_storage_gb: per(m.s3_bytes) * 1e6 / 1e9,
            now_cents: 0.0,
            before_cents: (BEFORE_CLAIM_CHECK * 100.0).round(),
        };
        f.rows = f.bill(m);
        f.total = f.rows.iter().map(|r| r.2).sum();
        // Compared in cents, as both figures are printed: what storing and publishing cost,
        // without the features of their own (turns and silence, the identity map).
        f.now_cents = ((f.total - f.made - f.identity) * 1e8).round();
        f
    }

    /// Whether the bill without the timers and the identity map rose since the claim check, by
    /// more than a run's own jitter ([`JITTER_CENTS`]).
    fn rose(&self) -> bool {
        self.now_cents > self.before_cents + JITTER_CENTS
    }

    /// The bill, one row per part (a table: long, and read as one).
    fn bill(&self, m: &Measured) -> Vec<Row> {
        let (ev, requests, refused, redelivered_body, wru, s3_gets) = (
            self.ev,
            self.requests,
            self.refused,
            self.redelivered_body,
            self.wru,
            self.s3_gets,
        );
        let per = |x: usize| x as f64 / ev;
        let s3_what = if m.s3_puts + s3_gets == 0 {
            "none on this mix: no body and no event is too large for a DynamoDB item".to_owned()
        } else {
            format!(
                "{:.3} `PutObject` per event ({} of {} bytes), {:.3} `GetObject` ({} by the fanout, {} by workers following pointers)",
                per(m.s3_puts),
                m.s3_puts,
                m.s3_put_bytes,
                per(s3_gets),
                m.s3_fanout_gets,
                m.s3_worker_gets
            )
        };
        vec![        (
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
                "{wru:.2} write units per event: {:.2} for the event and state items ({:.0} bytes on average; {} of {} items over 1 KB), {:.2} for `gsi1` entries, {:.2} for body items ({} puts of {} items of {:.0} bytes on average, for the {} bodies carrying several events) and {:.2} for the redeliveries (refused conditional puts {:.2}, body items rewritten {:.2}), $0.625/M",
                per(m.base_units),
                m.item_bytes as f64 / (m.events + m.state_items) as f64,
                m.items_over_1kb,
                m.events + m.state_items,
                per(m.index_units),
                per(m.body_units),
                m.body_puts,
                m.body_items,
                m.body_item_bytes as f64 / m.body_items.max(1) as f64,
                m.multi_event_bodies,
                refused / ev + redelivered_body,
                refused / ev,
                redelivered_body
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
            "S3 requests (claim-check bucket; PUT $0.005/1,000, GET $0.0004/1,000)",
            s3_what,
            per(m.s3_puts) * price::S3_PUT + per(s3_gets) * price::S3_GET,
        ),
        made_row(m),
        identity::row(m),
        (
            "CloudWatch Logs",
            format!("~{:.1} KB per request, $0.50/GB", assume::LOG_BYTES_PER_REQUEST / 1e3),
            requests * assume::LOG_BYTES_PER_REQUEST / 1e9 * price::LOGS_GB,
        ),
        ]
    }

    /// The measurement and the bill as one JSON document (`--json`).
    fn json(&self, m: &Measured) -> serde_json::Value {
        let (requests, refused, redelivered_body, wru, stored_wru, s3_gets) = (
            self.requests,
            self.refused,
            self.redelivered_body,
            self.wru,
            self.stored_wru,
            self.s3_gets,
        );
        let (ev, total, made, rose) = (self.ev, self.total, self.made, self.rose());
        let (storage_gb, s3_storage_gb, rows) = (self.storage_gb, self.s3_storage_gb, &self.rows);
        let per = |x: usize| x as f64 / ev;
        let d = &m.made;
        let timers = json!({
            "note_batches": d.note_batches, "notes": d.notes,
            "loads": d.loads, "read_units": d.read_units,
            "puts": d.puts, "transactions": d.transactions,
            "write_units": d.write_units, "timers": d.timers,
            "turns": d.turns, "silences": d.silences,
            "publish_batches": d.publish_batches, "state_items": d.state_items,
            "bytes": d.bytes,
            "dollars_per_million_events": made * 1e6,
        });
        let (_, media_dollars, media_storage) = media_cost(&m.media);
        let media_json = json!({
            "files": m.media.files, "archived": m.media.archived,
            "s3_puts": m.media.s3_puts, "s3_parts": m.media.s3_parts, "s3_heads": m.media.s3_heads,
            "gets": m.media.gets, "puts": m.media.puts, "write_units": m.media.write_units,
            "note_batches": m.media.note_batches,
            "dollars_per_million_files": media_dollars,
            "storage_dollars_per_million_files_month": media_storage,
        });
        let i = &m.identity;
        let identity_json = json!({
            "reads": i.reads, "read_units": i.read_halves as f64 / 2.0,
            "puts": i.puts, "transactions": i.transactions,
            "write_units": i.write_units, "items": i.items, "bytes": i.bytes,
            "dollars_per_million_events": self.identity * 1e6,
        });
        json!({
            "bodies": m.bodies, "events": m.events, "state_items": m.state_items,
            "multi_event_bodies": m.multi_event_bodies,
            "write_units_per_event": wru, "stored_write_units_per_event": stored_wru,
            "refused_write_units_per_event": refused / ev, "duplicates": m.duplicates,
            "redelivered_body_write_units_per_event": redelivered_body,
            "base_write_units_per_event": per(m.base_units),
            "index_write_units_per_event": per(m.index_units),
            "body_write_units_per_event": per(m.body_units),
            "body_items": m.body_items, "body_item_bytes": m.body_item_bytes,
            "body_item_puts": m.body_puts, "redelivered_body_item_puts": m.redelivered_body_puts,
            "stored_bytes_per_event": per(m.stored_bytes), "items_over_1kb": m.items_over_1kb,
            "send_message_batch_per_event": per(m.batches), "requests_per_event": requests,
            "s3_puts": m.s3_puts, "s3_put_bytes": m.s3_put_bytes,
            "s3_gets": s3_gets, "s3_fanout_gets": m.s3_fanout_gets, "s3_worker_gets": m.s3_worker_gets,
            "s3_objects": m.s3_objects, "s3_bytes": m.s3_bytes,
            "s3_storage_gb_per_million_events": s3_storage_gb,
            "dollars_per_million_events": total * 1e6,
            "dollars_per_million_events_without_timers": (total - made) * 1e6,
            "dollars_per_million_events_before_claim_check": BEFORE_CLAIM_CHECK,
            "rose": rose,
            "storage_gb_per_million_events": storage_gb,
            "timers": timers,
            "media": media_json,
            "identity": identity_json,
            "rows": rows.iter().map(|(p, what, cost)| json!({"part": p, "what": what, "dollars_per_million": cost * 1e6})).collect::<Vec<_>>(),
        })
    }

    /// The bill as the Markdown table of docs/performance.md, and what it was measured on.
    fn print(&self, m: &Measured) {
        let (ev, total, made, rose) = (self.ev, self.total, self.made, self.rose());
        let (storage_gb, s3_storage_gb, rows) = (self.storage_gb, self.s3_storage_gb, &self.rows);
        let (now_cents, before_cents) = (self.now_cents, self.before_cents);
        let per = |x: usize| x as f64 / ev;
        let d = &m.made;
        let (media_what, media_dollars, media_storage) = media_cost(&m.media);
        println!("| part | for one million events | cost |");
        println!("|---|---|---|");
        for (part, what, cost) in rows {
            println!("| {part} | {what} | ${:.2} |", cost * 1e6);
        }
        println!(
            "| DynamoDB storage | {storage_gb:.2} GB ({:.0} bytes per event, items, body items and index entries), $0.25/GB-month, kept by TTL (deletes are free) | ${:.2} per month retained |",
            per(m.stored_bytes),
            storage_gb * price::STORAGE_GB_MONTH
        );
        println!(
            "| S3 storage | {s3_storage_gb:.2} GB ({:.0} bytes per event: {} objects, {} bytes), $0.023/GB-month, expired with the retention | ${:.2} per month retained |",
            per(m.s3_bytes),
            m.s3_objects,
            m.s3_bytes,
            s3_storage_gb * price::S3_GB_MONTH
        );
        let change = if rose {
            format!("rose by ${:.2}", (now_cents - before_cents) / 100.0)
        } else if now_cents < before_cents - JITTER_CENTS {
            format!("fell by ${:.2}", (before_cents - now_cents) / 100.0)
        } else {
            "unchanged, within a run's jitter".to_owned()
        };
        println!(
            "| **total** | | **≈ ${:.2} per million events**, turns, silence and the identity map included (${:.2} without them: {change} from ${BEFORE_CLAIM_CHECK:.2} before the claim check), plus storage while retained |",
            total * 1e6,
            (total - made - self.identity) * 1e6
        );
        println!(
            "\n**One archived media file** (`media-archiver`): ${media_dollars:.2} per million files, plus ${media_storage:.2} a month per million files kept (S3 Standard, until the retention expires them). {media_what}.\n\nMeasured on the local stack: {} fixture bodies ({} of them carrying several events), {} events, {} state items, {} body items, {} S3 objects; the timers took {} notes and made {} turns and {} silences ({} state items, {} bytes stored). Assumed: a receiver's duration ({:.0} ms), a fanout invocation's ({:.0} ms), a timers invocation's ({:.0} ms), {:.1} KB of logs per request.",
            m.bodies,
            m.multi_event_bodies,
            m.events,
            m.state_items,
            m.body_items,
            m.s3_objects,
            d.notes,
            d.turns,
            d.silences,
            d.state_items,
            d.bytes,
            assume::RECEIVER_SECONDS * 1e3,
            assume::FANOUT_SECONDS * 1e3,
            assume::TIMERS_SECONDS * 1e3,
            assume::LOG_BYTES_PER_REQUEST / 1e3
        );
    }
}

/// What one archived media file costs, per million files: (what it is made of, dollars, S3
/// storage dollars per month retained).
fn media_cost(m: &media::MediaMeasured) -> (String, f64, f64) {
    let files = m.archived.max(1) as f64;
    let per = |x: usize| x as f64 / files;
    // The mapping receives and deletes each note (one file per invocation).
    let sqs = per(m.note_batches) + 2.0;
    let lambda = price::LAMBDA_REQUEST + assume::MEDIA_SECONDS * 0.5 * price::LAMBDA_GB_SECOND;
    let s3 = per(m.s3_puts + m.s3_parts) * price::S3_PUT + per(m.s3_heads) * price::S3_GET;
    let dynamo = per(m.gets) * price::READ_UNIT + per(m.write_units) * price::WRITE_UNIT;
    let cost = sqs * price::SQS_STANDARD_REQUEST + lambda + s3 + dynamo;
    let gb = media::FILE_BYTES as f64 / 1e9;
    let what = format!(
        "{} files of {} KB archived of {}: per file {:.2} `SendMessageBatch` of notes, a receive and a delete; {:.2} `PutObject` ({:.2} parts), {:.2} `HeadObject`; {:.2} `GetItem` and {:.2} write units (the archived event); one invocation (~{:.0} ms at 512 MB)",
        m.archived,
        media::FILE_BYTES / 1024,
        m.files,
        per(m.note_batches),
        per(m.s3_puts),
        per(m.s3_parts),
        per(m.s3_heads),
        per(m.gets),
        per(m.write_units),
        assume::MEDIA_SECONDS * 1e3
    );
    (what, cost * 1e6, gb * 1e6 * price::S3_GB_MONTH)
}

/// The row of the events made from time passing (turns, silence), per provider event.
fn made_row(m: &Measured) -> (&'static str, String, f64) {
    let d = &m.made;
    let per = |x: usize| x as f64 / m.events as f64;
    let invocations = per(d.notes) / assume::NOTES_PER_TIMERS;
    // The queue mapping receives and deletes each batch of notes: two requests per invocation.
    let sqs = per(d.note_batches) + per(d.timers) + 2.0 * invocations;
    let cost = sqs * price::SQS_STANDARD_REQUEST
        + per(d.read_units) * price::READ_UNIT
        + per(d.write_units) * price::WRITE_UNIT
        + invocations * (price::LAMBDA_REQUEST + assume::TIMERS_SECONDS * 0.25 * price::LAMBDA_GB_SECOND)
        + (per(d.publish_batches) + per(d.turns + d.silences) * assume::WORKER_REQUESTS_PER_EVENT)
            * price::SQS_FIFO_REQUEST;
    (
        "timers: turns and silence (`timers` function, standard queue $0.40/M)",
        format!(
            "{:.3} note `SendMessageBatch` + {:.3} delayed timers + the mapping's receive and delete per event; {:.2} state reads ({:.2} read units, $0.125/M) and {:.2} write units ({} state puts, {} transactions with the {} turns and {} silences they made, a transaction's items billed twice); {:.3} invocations (~{:.0} ms); {:.3} `SendMessageBatch` to publish what it made",
            per(d.note_batches),
            per(d.timers),
            per(d.loads),
            per(d.read_units),
            per(d.write_units),
            d.puts,
            d.transactions,
            d.turns,
            d.silences,
            invocations,
            assume::TIMERS_SECONDS * 1e3,
            per(d.publish_batches)
        ),
        cost,
    )
}

async fn measure(args: &CostArgs) -> anyhow::Result<Measured> {
    let moto = crate::standin::PrivateMoto::start(&args.moto, "cost").await?;
    let measured = measure_on(args, &moto.endpoint).await?;
    moto.finish().await;
    Ok(measured)
}

async fn measure_on(args: &CostArgs, endpoint: &str) -> anyhow::Result<Measured> {
    let Counted {
        stack,
        aliases,
        bucket,
        body_writes,
        batches,
        notes,
        media_notes,
        timer_counts,
    } = counted_stack(endpoint).await?;
    let sent = send_fixtures(args, &stack, &body_writes).await?;
    let mut driver = stack.stream_driver();
    driver
        .drain(&stack.fanout, Duration::from_secs(300))
        .await
        .map_err(|e| anyhow::anyhow!(e).context("the stream"))?;
    // The providers' events are published; now the windows pass and the timers make theirs.
    let provider_batches = batches.load(Ordering::Relaxed);
    let notes_taken = timers::settle(&stack, &mut driver).await?;
    let media = media::measure(&stack, &mut driver, &media_notes).await?;
    let c = |a: &AtomicUsize| a.load(Ordering::Relaxed);
    let made = Made {
        note_batches: c(&notes),
        notes: notes_taken,
        loads: c(&timer_counts.loads),
        read_units: c(&timer_counts.read_units),
        puts: c(&timer_counts.puts),
        transactions: c(&timer_counts.transactions),
        write_units: c(&timer_counts.write_units),
        timers: c(&timer_counts.timers),
        publish_batches: c(&batches) - provider_batches,
        ..Made::default()
    };
    let mut m = Measured {
        bodies: sent.bodies,
        multi_event_bodies: sent.multi_event_bodies,
        events: 0,
        state_items: 0,
        base_units: 0,
        index_units: 0,
        stored_bytes: 0,
        batches: provider_batches,
        items_over_1kb: 0,
        item_bytes: 0,
        duplicates: sent.duplicates,
        body_items: 0,
        body_item_bytes: 0,
        body_puts: sent.body_puts,
        body_units: sent.body_units,
        redelivered_body_puts: sent.redelivered_body_puts,
        redelivered_body_units: sent.redelivered_body_units,
        s3_puts: bucket.puts.load(Ordering::Relaxed),
        s3_put_bytes: bucket.put_bytes.load(Ordering::Relaxed),
        s3_fanout_gets: bucket.gets.load(Ordering::Relaxed),
        s3_worker_gets: 0,
        s3_objects: 0,
        s3_bytes: 0,
        made,
        media,
        identity: aliases.measured(),
    };
    count_table(&stack, &mut m).await?;
    identity::count_items(&stack, &mut m).await?;
    count_bucket(&stack, &mut m).await?;
    anyhow::ensure!(m.events > 0, "no events were stored");
    Ok(m)
}

/// The harness stack with every write and send the cost table prices counted.
struct Counted {
    stack: LocalStack,
    aliases: Arc<identity::AliasCounts>,
    bucket: Arc<CountingBucket>,
    body_writes: Arc<BodyItemWrites>,
    batches: Arc<AtomicUsize>,
    notes: Arc<AtomicUsize>,
    media_notes: Arc<AtomicUsize>,
    timer_counts: Arc<timers::TimerCounts>,
}

/// A harness stack on the stand-in at `endpoint` whose store, bucket, fanout and timers count
/// what they do.
async fn counted_stack(endpoint: &str) -> anyhow::Result<Counted> {
    let mut stack = crate::standin::harness_stack(endpoint, "cost").await?;
    let bucket_name = stack
        .config
        .body_bucket
        .clone()
        .context("the local stack has no body bucket")?;
    let s3 = wahooks::bucket::s3_client(&stack.sdk);
    // The receiver's store and the fanout share one counted bucket; the store's DynamoDB client
    // counts the body items it puts.
    let bucket = Arc::new(CountingBucket {
        inner: S3Bucket::new(s3.clone(), &bucket_name),
        puts: AtomicUsize::new(0),
        put_bytes: AtomicUsize::new(0),
        gets: AtomicUsize::new(0),
    });
    let body_writes = Arc::new(BodyItemWrites::default());
    let aliases = Arc::new(identity::AliasCounts::default());
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&stack.sdk)
            .interceptor(CountingBodyItems(body_writes.clone()))
            .interceptor(identity::CountingAliasItems(aliases.clone()))
            .build(),
    );
    stack.receiver.store = Arc::new(
        DynamoEventStore::new(dynamo.clone(), &stack.config.events_table, stack.config.retention_days)
            .with_bucket(bucket.clone()),
    );
    // The identity map's alias items, in the endpoints table, through the counting client too.
    stack.receiver.registry = Arc::new(stack.registry.clone().with_client(dynamo));
    let (batches, notes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let media_notes = Arc::new(AtomicUsize::new(0));
    let sqs = SqsPublisher::new(stack.sqs.clone());
    let fanout = wahooks::lambda::fanout_through(
        &stack.config,
        &sqs,
        Arc::new(CountingSqs {
            inner: sqs.clone(),
            batches: batches.clone(),
            notes: notes.clone(),
            media_notes: media_notes.clone(),
        }),
    )
    .await?
    .reading_objects_from(bucket.clone());
    stack.fanout = wahooks::lambda::with_timers(fanout, &stack.config);
    let timer_counts = timers::counted(&mut stack)?;

    Ok(Counted {
        stack,
        aliases,
        bucket,
        body_writes,
        batches,
        notes,
        media_notes,
        timer_counts,
    })
}

/// What sending the fixtures did.
#[derive(Default)]
struct Sent {
    bodies: usize,
    duplicates: usize,
    multi_event_bodies: usize,
    body_puts: usize,
    body_units: usize,
    redelivered_body_puts: usize,
    redelivered_body_units: usize,
}

/// Every fixture through the receiver once, each provider on an endpoint of its own, with the
/// body items each write made (first deliveries and redeliveries apart).
async fn send_fixtures(args: &CostArgs, stack: &LocalStack, body_writes: &BodyItemWrites) -> anyhow::Result<Sent> {
    let mut sent = Sent::default();
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
            let (puts_before, units_before) = (
                body_writes.puts.load(Ordering::Relaxed),
                body_writes.units.load(Ordering::Relaxed),
            );
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
            sent.bodies += 1;
            let answer: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap_or_default();
            let count = |k: &str| answer[k].as_array().map_or(0, Vec::len);
            sent.duplicates += count("duplicates");
            if count("accepted") + count("duplicates") > 1 {
                sent.multi_event_bodies += 1;
            }
            let puts = body_writes.puts.load(Ordering::Relaxed) - puts_before;
            let units = body_writes.units.load(Ordering::Relaxed) - units_before;
            if count("accepted") > 0 {
                sent.body_puts += puts;
                sent.body_units += units;
            } else {
                sent.redelivered_body_puts += puts;
                sent.redelivered_body_units += units;
            }
        }
    }
    Ok(sent)
}

/// Read the events table back: each item's size, write units and kind into `m`.
async fn count_table(stack: &LocalStack, m: &mut Measured) -> anyhow::Result<()> {
    let s3 = wahooks::bucket::s3_client(&stack.sdk);
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
            count_item(item, &s3, m).await?;
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    Ok(())
}

/// One item of the events table into `m`: a body item, a state item, an event (the timers'
/// and the media sample's apart).
async fn count_item(item: &wahooks::store::Item, s3: &aws_sdk_s3::Client, m: &mut Measured) -> anyhow::Result<()> {
    let sk = item
        .get("sk")
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .unwrap_or_default();
    if sk == keys::BODY_SK {
        // Its writes were counted as they were made (a redelivery rewrites it).
        m.body_items += 1;
        m.body_item_bytes += item_size(item);
        m.stored_bytes += item_size(item) + 100;
        return Ok(());
    }
    let (base, index) = write_units(item);
    // The timers' state and the events they made are counted apart.
    if sk == keys::state_sk(wahooks::timers::turns::STATE_KIND)
        || sk == keys::state_sk(wahooks::timers::silence::STATE_KIND)
    {
        m.made.state_items += 1;
        return Ok(());
    }
    match sk.get(..2) {
        Some("E#") => {
            let (_, event) = wahooks::store::read_sdk_item(item, s3)
                .await
                .map_err(|e| anyhow::anyhow!(e).context("reading an event back"))?;
            // The media sample is counted apart (cost/media.rs).
            if event.instance == "COST-MEDIA" {
                return Ok(());
            }
            if event.event_type.is_derived() {
                if event.event_type == wahooks::EventType::ConversationTurn {
                    m.made.turns += 1;
                } else {
                    m.made.silences += 1;
                }
                m.made.bytes += item_size(item) + 100;
                return Ok(());
            }
            m.events += 1;
            if event.data.raw_pointer.is_some_and(|p| p.bucket.is_some()) {
                m.s3_worker_gets += 1;
            }
        }
        Some("S#") => m.state_items += 1,
        _ => return Ok(()),
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
    Ok(())
}

/// The body bucket's objects (the archived media aside) into `m`.
async fn count_bucket(stack: &LocalStack, m: &mut Measured) -> anyhow::Result<()> {
    let s3 = wahooks::bucket::s3_client(&stack.sdk);
    let bucket_name = stack
        .config
        .body_bucket
        .clone()
        .context("the local stack has no body bucket")?;
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(&bucket_name)
            .set_continuation_token(token)
            .send()
            .await
            .context("listing the body bucket")?;
        // The archived media (the media sample's files) are counted apart.
        for object in page
            .contents()
            .iter()
            .filter(|o| !o.key().is_some_and(|k| k.starts_with("media/")))
        {
            m.s3_objects += 1;
            m.s3_bytes += usize::try_from(object.size().unwrap_or(0)).unwrap_or(0);
        }
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    Ok(())
}
