//! The local stream driver: what Lambda's DynamoDB event-source mapping does in AWS, on one
//! machine, with the mapping's documented semantics rather than kinder ones.
//!
//! It reads the events table's stream from the local stand-in (`aws-sdk-dynamodbstreams`),
//! spreads the records over [`LOCAL_SHARDS`] shards by partition key (as DynamoDB spreads
//! partitions over shards: order holds within a shard only, and shards are processed at the
//! same time), turns each shard's next batch into exactly the JSON event Lambda delivers, and
//! calls the same [`Fanout`] handler. The [`MappingSettings`] are the template's
//! ([`MappingSettings::DEPLOYED`], compared with `infra/template.yaml` by a test):
//! - batches of at most `batch_size` records of one shard, oldest first;
//! - `ReportBatchItemFailures` with `BisectBatchOnFunctionError`: the batch is split at the
//!   lowest failed sequence number and only the records from it on are retried;
//! - retries end when `max_retry_attempts` is reached or the oldest record of the batch is
//!   older than `max_record_age`; then the batch's metadata (not its records) goes to the
//!   on-failure destination, as Lambda sends it (`DDBStreamBatchInfo`), and the shard moves on.
//!
//! [`recover`] reads those failure records back and re-publishes exactly the records they
//! name, once each; [`recover_with`] also skips or parks the records an operator names.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use base64::Engine;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::fanout::{Fanout, FanoutStats};

/// How many shards the local stream has (the stand-in has one; AWS has one per partition).
pub const LOCAL_SHARDS: usize = 4;

/// The event-source mapping's settings that decide delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappingSettings {
    /// `BatchSize`.
    pub batch_size: usize,
    /// `BisectBatchOnFunctionError`.
    pub bisect_on_error: bool,
    /// `MaximumRetryAttempts` (`None` = -1, until the record's age ends it).
    pub max_retry_attempts: Option<u32>,
    /// `MaximumRecordAgeInSeconds` (`None` = -1, until the stream trims the record at 24 h).
    pub max_record_age: Option<Duration>,
}

impl MappingSettings {
    /// What `infra/template.yaml` deploys: batches of 100, bisect on error, retries without a
    /// count, for up to 12 hours of record age. An SQS outage of up to 12 h is absorbed by
    /// retrying; longer, the batch's metadata reaches `stream-failures`, and the records are
    /// still in the stream (it keeps 24 h) for `wahooks recover` for another 12 h.
    pub const DEPLOYED: MappingSettings = MappingSettings {
        batch_size: 100,
        bisect_on_error: true,
        max_retry_attempts: None,
        max_record_age: Some(Duration::from_secs(12 * 3600)),
    };
}

/// The mapping's `FilterCriteria` in `infra/template.yaml` (`eventName` `INSERT`, a sort key
/// starting `E#`): only new events invoke the fanout, never TTL expiries, state, body or
/// quarantine items. Lambda drops the rest before batching; so does the driver.
pub fn passes_filter(record: &EventRecord) -> bool {
    let sk = match record.change.keys.inner().get("sk") {
        Some(serde_dynamo::AttributeValue::S(sk)) => sk.as_str(),
        _ => "",
    };
    record.event_name == "INSERT" && sk.starts_with("E#")
}

/// An error with its cause, kept for the log.
type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why the driver stopped.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The stand-in could not be reached, or refused a stream call.
    #[error("stream of table `{table}`: {call} failed")]
    Stream {
        /// The table.
        table: String,
        /// The call that failed (`DescribeTable`, `GetRecords`, …).
        call: &'static str,
        /// The SDK's error.
        #[source]
        cause: Cause,
    },
    /// The table has no stream to read (the template enables one: `NEW_IMAGE`).
    #[error("table `{table}` has no stream")]
    NoStream {
        /// The table.
        table: String,
    },
}

/// A record waiting in a shard, with when the driver first saw it (its age).
struct Waiting {
    record: EventRecord,
    seen: Instant,
    created: chrono::DateTime<chrono::Utc>,
    /// The shard id Lambda would report: the stand-in's shard and this local shard.
    shard_id: String,
}

#[derive(Default)]
struct LocalShard {
    waiting: VecDeque<Waiting>,
    /// Retries of the batch now at the head.
    retries: u32,
    /// A give-up whose failure record could not be sent yet: the batch's size and why, kept so
    /// the record names the same range when it is sent again. Lambda does not invoke the
    /// function with a batch it gave up on: neither does the driver.
    giving_up: Option<(usize, &'static str)>,
}

/// Totals over a driver's life.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DriveStats {
    /// Handler invocations.
    pub invocations: usize,
    /// Records acknowledged (delivered, or ignored as not new events).
    pub acknowledged: usize,
    /// Records reported failed (each retry counts again).
    pub failed: usize,
    /// Batches given up on and sent to the on-failure destination.
    pub given_up: usize,
    /// Records in those batches.
    pub given_up_records: usize,
    /// The handler's own totals, summed.
    pub fanout: FanoutStats,
}

/// Reads one table's stream into a fanout handler.
pub struct StreamDriver {
    streams: aws_sdk_dynamodbstreams::Client,
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    table: String,
    region: String,
    stream_arn: Option<String>,
    settings: MappingSettings,
    on_failure: Option<String>,
    /// The stand-in's shards: their iterators, and whether they are closed and drained.
    source: BTreeMap<String, (Option<String>, bool)>,
    shards: Vec<LocalShard>,
    stats: DriveStats,
}

impl StreamDriver {
    /// A driver for `table`'s stream, starting at its oldest record (TRIM_HORIZON), with the
    /// deployed settings and no on-failure destination.
    pub fn new(sdk: &aws_config::SdkConfig, table: impl Into<String>) -> StreamDriver {
        StreamDriver {
            streams: aws_sdk_dynamodbstreams::Client::new(sdk),
            dynamo: aws_sdk_dynamodb::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            table: table.into(),
            region: region_of(sdk),
            stream_arn: None,
            settings: MappingSettings::DEPLOYED,
            on_failure: None,
            source: BTreeMap::new(),
            shards: (0..LOCAL_SHARDS).map(|_| LocalShard::default()).collect(),
            stats: DriveStats::default(),
        }
    }

    /// Other mapping settings (a test's shorter record age, say).
    pub fn with_settings(mut self, settings: MappingSettings) -> StreamDriver {
        self.settings = settings;
        self
    }

    /// The on-failure destination: a standard SQS queue URL.
    pub fn on_failure(mut self, queue_url: impl Into<String>) -> StreamDriver {
        self.on_failure = Some(queue_url.into());
        self
    }

    /// Totals so far.
    pub fn stats(&self) -> &DriveStats {
        &self.stats
    }

    /// A failed stream call, with its cause.
    fn failed(&self, call: &'static str, cause: impl Into<Cause>) -> DriverError {
        DriverError::Stream {
            table: self.table.clone(),
            call,
            cause: cause.into(),
        }
    }

    async fn discover(&mut self) -> Result<String, DriverError> {
        if let Some(arn) = &self.stream_arn {
            return Ok(arn.clone());
        }
        let table = self
            .dynamo
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| self.failed("DescribeTable", e))?;
        let arn = table
            .table()
            .and_then(|t| t.latest_stream_arn())
            .ok_or_else(|| DriverError::NoStream {
                table: self.table.clone(),
            })?
            .to_owned();
        self.stream_arn = Some(arn.clone());
        Ok(arn)
    }

    /// Read what is new in the stand-in's stream into the local shards.
    async fn read_source(&mut self, arn: &str) -> Result<(), DriverError> {
        for id in self.source_shards(arn).await? {
            let Some(iterator) = self.iterator_of(arn, &id).await? else {
                continue;
            };
            let out = self
                .streams
                .get_records()
                .shard_iterator(&iterator)
                .limit(1000)
                .send()
                .await
                .map_err(|e| self.failed("GetRecords", e))?;
            let next = out.next_shard_iterator().map(str::to_owned);
            let closed = next.is_none();
            self.source.insert(id.clone(), (next, closed));
            self.spread(&id, out.records(), arn);
        }
        Ok(())
    }

    /// The stand-in's shards of the stream.
    async fn source_shards(&self, arn: &str) -> Result<Vec<String>, DriverError> {
        let described = self
            .streams
            .describe_stream()
            .stream_arn(arn)
            .send()
            .await
            .map_err(|e| self.failed("DescribeStream", e))?;
        Ok(described
            .stream_description()
            .map(|d| {
                d.shards()
                    .iter()
                    .filter_map(|s| s.shard_id().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Where to read a stand-in shard next: the iterator the last read left, or its oldest
    /// record (TRIM_HORIZON) the first time; `None` once the shard is closed and drained.
    async fn iterator_of(&self, arn: &str, id: &str) -> Result<Option<String>, DriverError> {
        match self.source.get(id) {
            Some((_, true)) => Ok(None),
            Some((Some(it), false)) => Ok(Some(it.clone())),
            _ => Ok(Some(
                self.streams
                    .get_shard_iterator()
                    .stream_arn(arn)
                    .shard_id(id)
                    .shard_iterator_type(ShardIteratorType::TrimHorizon)
                    .send()
                    .await
                    .map_err(|e| self.failed("GetShardIterator", e))?
                    .shard_iterator()
                    .unwrap_or_default()
                    .to_owned(),
            )),
        }
    }

    /// Each record of stand-in shard `id` to the back of its local shard (by partition key).
    fn spread(&mut self, id: &str, records: &[Record], arn: &str) {
        for r in records {
            match lambda_record(r, arn, &self.region) {
                Ok(rec) if !passes_filter(&rec) => {}
                Ok(rec) => {
                    let k = local_shard_of(&rec, LOCAL_SHARDS);
                    let created = rec.change.approximate_creation_date_time;
                    self.shards[k].waiting.push_back(Waiting {
                        record: rec,
                        seen: Instant::now(),
                        created,
                        // The shard id names the local shard too (see [`records_of`]).
                        shard_id: format!("{id}{LOCAL_SHARD_MARK}{k}of{LOCAL_SHARDS}"),
                    });
                }
                Err(e) => tracing::error!(error = %e, "stream record could not be converted"),
            }
        }
    }

    /// One round: read what is new, then hand every local shard's next batch to `fanout`, the
    /// shards at the same time. Returns how many records were handed over (0 = nothing to do).
    pub async fn poll_once(&mut self, fanout: &Fanout) -> Result<usize, DriverError> {
        let arn = self.discover().await?;
        self.read_source(&arn).await?;
        let batches = self.next_batches();
        let handed = batches.iter().map(|(_, e)| e.records.len()).sum();
        let results = futures::future::join_all(batches.iter().map(|(_, event)| fanout.handle(event))).await;
        for ((k, event), (response, stats)) in batches.iter().zip(results) {
            self.stats.invocations += 1;
            add(&mut self.stats.fanout, &stats);
            let failed = self.settle(*k, event, &response);
            if failed {
                self.give_up_if_due(*k, &arn).await;
            }
        }
        self.resend_give_ups(&arn).await;
        Ok(handed)
    }

    /// Each local shard's next batch (at most `batch_size` of its oldest records), for the
    /// shards that have records and are not being given up on.
    fn next_batches(&self) -> Vec<(usize, StreamEvent)> {
        let batch_size = self.settings.batch_size.max(1);
        self.shards
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.waiting.is_empty() && s.giving_up.is_none())
            .map(|(k, s)| {
                let mut event = StreamEvent::default();
                event.records = s.waiting.iter().take(batch_size).map(|w| w.record.clone()).collect();
                (k, event)
            })
            .collect()
    }

    /// Apply the handler's answer to shard `k`, as Lambda does: it resumes from the lowest
    /// failed sequence number (with bisect on, it splits the batch there and retries only the
    /// rest). The records before it are done; a batch that failed at its first record counts a
    /// retry. Returns whether anything failed.
    fn settle(&mut self, k: usize, event: &StreamEvent, response: &DynamoDbEventResponse) -> bool {
        let n = event.records.len();
        let shard = &mut self.shards[k];
        match first_failed(event, response) {
            None => {
                self.stats.acknowledged += n;
                shard.waiting.drain(..n);
                shard.retries = 0;
                false
            }
            Some(i) => {
                self.stats.acknowledged += i;
                self.stats.failed += n - i;
                shard.waiting.drain(..i);
                if i > 0 {
                    shard.retries = 0;
                } else {
                    shard.retries += 1;
                }
                true
            }
        }
    }

    /// Give-ups whose failure record could not be sent: send it again (same range).
    async fn resend_give_ups(&mut self, arn: &str) {
        for k in 0..self.shards.len() {
            if self.shards[k].giving_up.is_some() {
                self.give_up_if_due(k, arn).await;
            }
        }
    }

    /// After a failed attempt: past the retry count or the record age, send the batch's
    /// metadata to the on-failure destination and move the shard past it, as Lambda does.
    async fn give_up_if_due(&mut self, k: usize, arn: &str) {
        let settings = self.settings;
        let shard = &self.shards[k];
        let Some(oldest) = shard.waiting.front() else { return };
        let (n, condition) = match shard.giving_up {
            Some(pending) => pending,
            None => {
                let condition = match (settings.max_retry_attempts, settings.max_record_age) {
                    (Some(max), _) if shard.retries > max => "RetryAttemptsExhausted",
                    (_, Some(age)) if oldest.seen.elapsed() > age => "RecordAgeExceeded",
                    _ => return,
                };
                (shard.waiting.len().min(settings.batch_size.max(1)), condition)
            }
        };
        let batch: Vec<&Waiting> = shard.waiting.iter().take(n).collect();
        let info = failure_record(arn, condition, shard.retries + 1, &batch);
        match &self.on_failure {
            Some(url) => {
                if let Err(e) = self
                    .sqs
                    .send_message()
                    .queue_url(url)
                    .message_body(info.to_string())
                    .send()
                    .await
                {
                    // Lambda would retry the destination; so does the next round, for the same batch.
                    tracing::error!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "on-failure destination unavailable");
                    self.shards[k].giving_up = Some((n, condition));
                    return;
                }
            }
            None => tracing::error!(records = n, "records discarded: no on-failure destination"),
        }
        tracing::warn!(
            shard = k,
            records = n,
            condition,
            "stream batch given up; its metadata went to the on-failure destination"
        );
        let shard = &mut self.shards[k];
        shard.waiting.drain(..n);
        shard.retries = 0;
        shard.giving_up = None;
        self.stats.given_up += 1;
        self.stats.given_up_records += n;
    }

    /// Whether records are waiting to be retried or handed over.
    pub fn has_pending(&self) -> bool {
        self.shards.iter().any(|s| !s.waiting.is_empty())
    }

    /// Poll until a round finds nothing new and nothing pending, or `timeout` passes (then
    /// `false`). Failed records are retried every 200 ms.
    pub async fn drain(&mut self, fanout: &Fanout, timeout: Duration) -> Result<bool, DriverError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let handed = self.poll_once(fanout).await?;
            if handed == 0 && !self.has_pending() {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            if self.has_pending() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// Run until `shutdown` resolves, polling every `interval` when idle (the local stack).
    pub async fn run(&mut self, fanout: &Fanout, interval: Duration, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let idle = match self.poll_once(fanout).await {
                Ok(0) => true,
                Ok(_) => self.has_pending(),
                Err(e) => {
                    tracing::warn!(error = %crate::error_chain(&e), "stream driver: will retry");
                    true
                }
            };
            if idle {
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(interval) => {}
                }
            }
        }
    }
}

/// The position in `event` of the lowest sequence number the handler reported failed.
fn first_failed(event: &StreamEvent, response: &DynamoDbEventResponse) -> Option<usize> {
    response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.as_deref())
        .filter_map(|seq| {
            event
                .records
                .iter()
                .position(|r| r.change.sequence_number.as_deref() == Some(seq))
        })
        .min()
}

/// The region records name (the SDK's, else the stand-in's default).
fn region_of(sdk: &aws_config::SdkConfig) -> String {
    sdk.region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "us-east-1".into())
}

/// Marks a local shard in a shard id: `<stand-in shard>#local-<k>of<n>`.
const LOCAL_SHARD_MARK: &str = "#local-";

/// The local shard of a record: its partition key's hash, so a partition (a chat) always
/// lands on the same shard, as in DynamoDB.
fn local_shard_of(r: &EventRecord, shards: usize) -> usize {
    let pk = match r.change.keys.inner().get("pk") {
        Some(serde_dynamo::AttributeValue::S(s)) => s.clone(),
        _ => String::new(),
    };
    let digest = Sha256::digest(pk.as_bytes());
    (u64::from_be_bytes(digest[..8].try_into().unwrap_or_default()) % shards as u64) as usize
}

/// The message Lambda sends to an on-failure destination for a DynamoDB stream batch: the
/// invocation's context and the batch's shard and sequence range, not its records.
fn failure_record(arn: &str, condition: &str, invocations: u32, batch: &[&Waiting]) -> Value {
    let first = batch.first().map(|w| &w.record);
    let last = batch.last().map(|w| &w.record);
    let seq = |r: Option<&EventRecord>| r.and_then(|r| r.change.sequence_number.clone()).unwrap_or_default();
    let arrival = |w: Option<&&Waiting>| w.map(|w| crate::event::rfc3339_ms(w.created)).unwrap_or_default();
    let shard_id = batch.first().map(|w| w.shard_id.clone()).unwrap_or_default();
    json!({
        "requestContext": {
            "requestId": uuid_like(&shard_id, &seq(first)),
            "functionArn": "arn:aws:lambda:local:000000000000:function:fanout",
            "condition": condition,
            "approximateInvokeCount": invocations,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": null},
        "version": "1.0",
        "timestamp": crate::event::rfc3339_ms(chrono::Utc::now()),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": seq(first),
            "endSequenceNumber": seq(last),
            "approximateArrivalOfFirstRecord": arrival(batch.first()),
            "approximateArrivalOfLastRecord": arrival(batch.last()),
            "batchSize": batch.len(),
            "streamArn": arn,
        }
    })
}

fn uuid_like(a: &str, b: &str) -> String {
    let h = hex::encode(Sha256::digest(format!("{a}{b}").as_bytes()));
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

fn add(total: &mut FanoutStats, s: &FanoutStats) {
    total.events += s.events;
    total.messages += s.messages;
    total.slimmed += s.slimmed;
    total.ignored += s.ignored;
    total.failed += s.failed;
    total.parked += s.parked;
}

/// A batch that reached the on-failure destination, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedBatch {
    /// The stream.
    pub stream_arn: String,
    /// The shard (for the local driver: the stand-in's shard and the local shard).
    pub shard_id: String,
    /// The first record's sequence number.
    pub start: String,
    /// The last record's sequence number.
    pub end: String,
    /// How many records the batch held.
    pub size: usize,
}

impl FailedBatch {
    /// Read an on-failure destination message (`DDBStreamBatchInfo`); `None` if it is not one.
    pub fn from_message(body: &str) -> Option<FailedBatch> {
        let v: Value = serde_json::from_str(body).ok()?;
        let info = v.get("DDBStreamBatchInfo")?;
        let s = |k: &str| info.get(k).and_then(Value::as_str).map(str::to_owned);
        Some(FailedBatch {
            stream_arn: s("streamArn")?,
            shard_id: s("shardId")?,
            start: s("startSequenceNumber")?,
            end: s("endSequenceNumber")?,
            size: info.get("batchSize").and_then(Value::as_u64).unwrap_or_default() as usize,
        })
    }
}

/// Sequence numbers are decimal strings of growing length: compare them as numbers.
fn seq_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The records a failed batch names, read from the stream: those of its shard from its first
/// to its last sequence number (for a local shard, only the records that shard held). `Err`
/// when the stream no longer has them (it keeps 24 hours).
pub async fn records_of(
    streams: &aws_sdk_dynamodbstreams::Client,
    batch: &FailedBatch,
    region: &str,
) -> Result<Vec<EventRecord>, ReadError> {
    let (shard, local) = shard_of(&batch.shard_id)?;
    let mut iterator = streams
        .get_shard_iterator()
        .stream_arn(&batch.stream_arn)
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .sequence_number(&batch.start)
        .send()
        .await
        .map_err(read_error)?
        .shard_iterator()
        .map(str::to_owned);
    let mut out = Vec::new();
    while let Some(it) = iterator {
        let page = streams
            .get_records()
            .shard_iterator(&it)
            .limit(1000)
            .send()
            .await
            .map_err(read_error)?;
        if page.records().is_empty() {
            break;
        }
        for r in page.records() {
            let seq = r.dynamodb().and_then(|d| d.sequence_number()).unwrap_or_default();
            if seq_cmp(seq, &batch.end).is_gt() {
                return Ok(out);
            }
            let rec = lambda_record(r, &batch.stream_arn, region)?;
            // What the mapping's filter let through is what the batch held.
            if passes_filter(&rec) && local.is_none_or(|(k, n)| local_shard_of(&rec, n) == k) {
                out.push(rec);
            }
        }
        iterator = page.next_shard_iterator().map(str::to_owned);
    }
    Ok(out)
}

/// A local shard: the `k`th of `n`.
type LocalShardOf = (usize, usize);

/// A failure record's shard id → the stream's shard and, for the local driver's, the local
/// shard it names (`<shard>#local-<k>of<n>`).
fn shard_of(shard_id: &str) -> Result<(&str, Option<LocalShardOf>), ReadError> {
    let Some((shard, local)) = shard_id.split_once(LOCAL_SHARD_MARK) else {
        return Ok((shard_id, None));
    };
    let unreadable = || ReadError::ShardId(shard_id.to_owned());
    let (k, n) = local.split_once("of").ok_or_else(unreadable)?;
    let k: usize = k.parse().map_err(|_| unreadable())?;
    let n: usize = n.parse().map_err(|_| unreadable())?;
    Ok((shard, Some((k, n))))
}

/// What [`recover`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Failure records read.
    pub batches: usize,
    /// Stream records re-published.
    pub records: usize,
    /// Messages the queues accepted.
    pub messages: usize,
    /// Failure records left on their queue (their records could not all be published, or the
    /// stream no longer has them), with why.
    pub left: Vec<String>,
    /// Records not published because [`RecoverOptions::skip`] names them.
    pub skipped: Vec<SetAside>,
    /// Records parked because [`RecoverOptions::park`] names them.
    pub parked: Vec<SetAside>,
    /// Sequence numbers given to skip or park that no record of any range read in this run
    /// has (a typo, another shard's record, or a failure record already gone).
    pub not_found: Vec<String>,
}

/// A stream record [`recover_with`] did not publish, on the operator's word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    /// Its stream sequence number.
    pub sequence_number: String,
    /// Its event id (`-` when the item is not an event's).
    pub event_id: String,
    /// Its item's partition key.
    pub pk: String,
}

/// The reason a note on the parked queue gives for a record parked by [`recover_with`].
pub const OPERATOR_PARK_REASON: &str = "parked by an operator (wahooks recover --park)";

/// What [`recover_with`] does besides publishing: the records an operator sets aside, by
/// stream sequence number, so that a failure record whose range holds one that can never be
/// published (a record that fails every retry) can still be recovered and deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoverOptions {
    /// Records not to publish at all.
    pub skip: BTreeSet<String>,
    /// Records to park instead: the note the fanout writes for a record it can never publish
    /// ([`crate::fanout::parked_message`], reason [`OPERATOR_PARK_REASON`]) goes to
    /// `parked_url`.
    pub park: BTreeSet<String>,
    /// The parked queue (required when `park` is not empty).
    pub parked_url: Option<String>,
}

/// Why [`recover`] stopped: the failures queue itself could not be used, or the options
/// contradict themselves.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// `ReceiveMessage` or `DeleteMessage` on the failures queue failed.
    #[error("the failures queue `{url}`: {call} failed")]
    Queue {
        /// The queue.
        url: String,
        /// The call.
        call: &'static str,
        /// The SDK's error.
        #[source]
        cause: Cause,
    },
    /// Records to park, but no parked queue to park them on.
    #[error("records to park, but no parked queue")]
    NoParkedQueue,
    /// A sequence number given both to skip and to park.
    #[error("sequence number {0} is given both to skip and to park")]
    SkipAndPark(String),
}

/// Re-publish what reached the on-failure destination: for each failure record on
/// `failures_url`, the stream records of its shard range, once each and nothing else, through
/// `fanout` (the event ids and FIFO deduplication ids of the first attempt); a failure record
/// is deleted once all its records are published.
pub async fn recover(
    sdk: &aws_config::SdkConfig,
    failures_url: &str,
    fanout: &Fanout,
) -> Result<Recovered, RecoverError> {
    recover_with(sdk, failures_url, fanout, &RecoverOptions::default()).await
}

/// [`recover`], except that the records `options` names are skipped (not published) or parked
/// (a note on the parked queue, not published); a failure record is deleted once every other
/// record of its range is published and those are skipped or parked. Sequence numbers that no
/// range read holds are listed in [`Recovered::not_found`].
pub async fn recover_with(
    sdk: &aws_config::SdkConfig,
    failures_url: &str,
    fanout: &Fanout,
    options: &RecoverOptions,
) -> Result<Recovered, RecoverError> {
    if let Some(both) = options.skip.intersection(&options.park).next() {
        return Err(RecoverError::SkipAndPark(both.clone()));
    }
    if !options.park.is_empty() && options.parked_url.is_none() {
        return Err(RecoverError::NoParkedQueue);
    }
    let mut recovery = Recovery {
        sqs: aws_sdk_sqs::Client::new(sdk),
        streams: aws_sdk_dynamodbstreams::Client::new(sdk),
        region: region_of(sdk),
        url: failures_url.to_owned(),
        options: options.clone(),
        done: Recovered::default(),
        seen: HashSet::new(),
        ranges: HashSet::new(),
        published: HashSet::new(),
        found: HashSet::new(),
    };
    loop {
        let messages = recovery.receive().await?;
        if messages.is_empty() {
            let mut done = recovery.done;
            done.not_found = options
                .skip
                .iter()
                .chain(&options.park)
                .filter(|s| !recovery.found.contains(*s))
                .cloned()
                .collect();
            return Ok(done);
        }
        for m in &messages {
            recovery.recover_one(m, fanout).await?;
        }
    }
}

/// One [`recover`] run: what it has done and what it has seen.
struct Recovery {
    sqs: aws_sdk_sqs::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    region: String,
    url: String,
    options: RecoverOptions,
    done: Recovered,
    /// Failure-record message ids already handled in this run (a message comes back when its
    /// visibility ends).
    seen: HashSet<String>,
    /// The destination is at least once (Lambda, or our driver, may send a record twice): a
    /// range already re-published is only deleted.
    ranges: HashSet<(String, String, String)>,
    /// And two records naming overlapping ranges publish each stream record once (keys from
    /// [`record_key`]); skipped and parked records count as published.
    published: HashSet<String>,
    /// The sequence numbers of `options` met in a range read.
    found: HashSet<String>,
}

impl Recovery {
    fn queue_failed(&self, call: &'static str, cause: impl Into<Cause>) -> RecoverError {
        RecoverError::Queue {
            url: self.url.clone(),
            call,
            cause: cause.into(),
        }
    }

    async fn receive(&self) -> Result<Vec<aws_sdk_sqs::types::Message>, RecoverError> {
        let got = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .send()
            .await
            .map_err(|e| self.queue_failed("ReceiveMessage", e))?;
        Ok(got.messages().to_vec())
    }

    /// One failure record: read its range, publish what was not published yet, delete it once
    /// all is published; otherwise leave it on the queue and say why.
    async fn recover_one(&mut self, m: &aws_sdk_sqs::types::Message, fanout: &Fanout) -> Result<(), RecoverError> {
        let id = m.message_id().unwrap_or_default().to_owned();
        if !self.seen.insert(id.clone()) {
            return Ok(());
        }
        let Some(batch) = m.body().and_then(FailedBatch::from_message) else {
            self.done.left.push(format!("{id}: not a stream batch failure record"));
            return Ok(());
        };
        let range = (batch.shard_id.clone(), batch.start.clone(), batch.end.clone());
        if self.ranges.contains(&range) {
            return self.delete(m.receipt_handle()).await;
        }
        self.done.batches += 1;
        let records = match self.read_range(&batch).await {
            Ok(r) => r,
            Err(e) if e.is_retryable() => {
                let why = crate::error_chain(&e);
                self.done.left.push(format!("{id}: {why}; run recover again"));
                return Ok(());
            }
            Err(e) => {
                let why = crate::error_chain(&e);
                self.done.left.push(format!(
                    "{id}: records {}..{}: {why}; use `wahooks replay --since/--until` around the failure",
                    batch.start, batch.end
                ));
                return Ok(());
            }
        };
        let table = table_of_stream(&batch.stream_arn);
        let mut fresh: Vec<EventRecord> = Vec::with_capacity(records.len());
        let mut unparked = 0;
        for r in records {
            let seq = r.change.sequence_number.as_deref().unwrap_or_default();
            let (skip, park) = (self.options.skip.contains(seq), self.options.park.contains(seq));
            if skip || park {
                self.found.insert(seq.to_owned());
            }
            let key = record_key(&r);
            if self.published.contains(&key) {
                continue;
            }
            if skip {
                self.done.skipped.push(set_aside(&r));
                self.published.insert(key);
            } else if park {
                if self.park(&r, table).await {
                    self.done.parked.push(set_aside(&r));
                    self.published.insert(key);
                } else {
                    unparked += 1;
                }
            } else {
                fresh.push(r);
            }
        }
        let total = fresh.len();
        let keys: Vec<String> = fresh.iter().map(record_key).collect();
        let (refused, messages) = fanout.handle_retrying(fresh, 5, Duration::from_millis(300)).await;
        self.done.messages += messages;
        self.done.records += total - refused.len();
        let still: HashSet<String> = refused.iter().map(record_key).collect();
        self.published.extend(keys.into_iter().filter(|k| !still.contains(k)));
        if refused.is_empty() && unparked == 0 {
            self.ranges.insert(range);
            self.delete(m.receipt_handle()).await
        } else {
            let mut why = Vec::new();
            if !refused.is_empty() {
                // Their sequence numbers, for `--skip`/`--park` when one fails every run.
                let mut seqs: Vec<&str> = refused
                    .iter()
                    .take(10)
                    .map(|r| r.change.sequence_number.as_deref().unwrap_or("-"))
                    .collect();
                if refused.len() > seqs.len() {
                    seqs.push("…");
                }
                why.push(format!(
                    "{} record(s) still refused (sequence numbers {})",
                    refused.len(),
                    seqs.join(", ")
                ));
            }
            if unparked > 0 {
                why.push(format!(
                    "{unparked} record(s) not parked (the parked queue refused them)"
                ));
            }
            self.done
                .left
                .push(format!("{id}: {}; run recover again", why.join(", ")));
            Ok(())
        }
    }

    /// Send the parked note of `record` (the fanout's, with [`OPERATOR_PARK_REASON`]) to the
    /// parked queue, with a few tries; whether it was accepted.
    async fn park(&self, record: &EventRecord, table: &str) -> bool {
        use crate::fanout::Publisher;
        let Some(url) = &self.options.parked_url else {
            return false;
        };
        let queue = crate::fanout::Queue::new("parked", url, crate::sqs_rules::MAX_BATCH_BYTES);
        let note = crate::fanout::parked_message(record, table, None, OPERATOR_PARK_REASON);
        let publisher = crate::fanout::SqsPublisher::new(self.sqs.clone());
        for attempt in 1..=3u64 {
            match publisher.send_batch(&queue, std::slice::from_ref(&note)).await {
                Ok(refused) if refused.is_empty() => return true,
                Ok(_) => tracing::warn!(url = %url, "the parked queue refused a note"),
                Err(e) => {
                    tracing::warn!(url = %url, error = %crate::error_chain(&e), "the parked queue is unavailable")
                }
            }
            if attempt < 3 {
                tokio::time::sleep(Duration::from_millis(300 * attempt)).await;
            }
        }
        false
    }

    /// The batch's records, with a few tries while the stream is unreachable.
    async fn read_range(&self, batch: &FailedBatch) -> Result<Vec<EventRecord>, ReadError> {
        let mut read = records_of(&self.streams, batch, &self.region).await;
        for attempt in 1..5u64 {
            match &read {
                Err(e) if e.is_retryable() => {
                    tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
                    read = records_of(&self.streams, batch, &self.region).await;
                }
                _ => break,
            }
        }
        read
    }

    async fn delete(&self, handle: Option<&str>) -> Result<(), RecoverError> {
        if let Some(handle) = handle {
            self.sqs
                .delete_message()
                .queue_url(&self.url)
                .receipt_handle(handle)
                .send()
                .await
                .map_err(|e| self.queue_failed("DeleteMessage", e))?;
        }
        Ok(())
    }
}

/// A stream record's identity for [`recover`]: its sequence number and its item's keys (moto,
/// unlike DynamoDB, can give two concurrent writes the same sequence number).
fn record_key(r: &EventRecord) -> String {
    let key = |k: &str| match r.change.keys.inner().get(k) {
        Some(serde_dynamo::AttributeValue::S(s)) => s.clone(),
        _ => String::new(),
    };
    format!(
        "{}|{}|{}",
        r.change.sequence_number.as_deref().unwrap_or("-"),
        key("pk"),
        key("sk")
    )
}

/// A record set aside by [`recover_with`], as [`Recovered`] lists it.
fn set_aside(r: &EventRecord) -> SetAside {
    let key = |k: &str| match r.change.keys.inner().get(k) {
        Some(serde_dynamo::AttributeValue::S(s)) => s.clone(),
        _ => String::new(),
    };
    SetAside {
        sequence_number: r.change.sequence_number.clone().unwrap_or_default(),
        event_id: crate::store::keys::event_id_of_sk(&key("sk")).unwrap_or("-").to_owned(),
        pk: key("pk"),
    }
}

/// The table of a stream ARN (`arn:aws:dynamodb:<region>:<account>:table/<table>/stream/<time>`);
/// empty when it is not one.
fn table_of_stream(stream_arn: &str) -> &str {
    stream_arn
        .split_once(":table/")
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap_or_default()
}

/// Why a failed batch's records could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The failure record's shard id is not one Lambda or the local driver writes.
    #[error("unreadable shard id `{0}`")]
    ShardId(String),
    /// The stream no longer has them (trimmed after 24 h), or the shard or iterator is unknown.
    #[error("the stream no longer has the records")]
    Gone(#[source] Cause),
    /// A record could not be turned into the record Lambda delivers.
    #[error("a stream record could not be converted")]
    Unconvertible(#[from] serde_json::Error),
    /// The stream could not be reached now.
    #[error("the stream could not be read")]
    Unavailable(#[source] Cause),
}

impl ReadError {
    /// Whether trying again later can succeed (only an outage; the rest is final).
    pub fn is_retryable(&self) -> bool {
        matches!(self, ReadError::Unavailable(_))
    }
}

fn read_error<E, R>(e: aws_sdk_dynamodbstreams::error::SdkError<E, R>) -> ReadError
where
    E: aws_sdk_dynamodbstreams::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let gone = matches!(
        e.as_service_error().and_then(|s| s.code()),
        Some("TrimmedDataAccessException" | "ResourceNotFoundException" | "ExpiredIteratorException")
    );
    if gone {
        ReadError::Gone(e.into())
    } else {
        ReadError::Unavailable(e.into())
    }
}

/// One record from `GetRecords` → the record Lambda delivers (the same JSON, deserialised by
/// the same `aws_lambda_events` types the fanout Lambda uses).
pub fn lambda_record(r: &Record, stream_arn: &str, region: &str) -> Result<EventRecord, serde_json::Error> {
    let mut change = Map::new();
    if let Some(d) = r.dynamodb() {
        if let Some(t) = d.approximate_creation_date_time() {
            change.insert("ApproximateCreationDateTime".into(), json!(t.secs()));
        }
        if let Some(k) = d.keys() {
            change.insert("Keys".into(), image(k));
        }
        if let Some(n) = d.new_image() {
            change.insert("NewImage".into(), image(n));
        }
        if let Some(o) = d.old_image() {
            change.insert("OldImage".into(), image(o));
        }
        change.insert("SequenceNumber".into(), json!(d.sequence_number()));
        change.insert("SizeBytes".into(), json!(d.size_bytes().unwrap_or_default()));
        if let Some(v) = d.stream_view_type() {
            change.insert("StreamViewType".into(), json!(v.as_str()));
        }
    }
    serde_json::from_value(json!({
        "eventID": r.event_id().unwrap_or_default(),
        "eventName": r.event_name().map(|n| n.as_str()).unwrap_or_default(),
        "eventVersion": r.event_version().unwrap_or("1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": r.aws_region().unwrap_or(region),
        "eventSourceARN": stream_arn,
        "dynamodb": change,
    }))
}

fn image(item: &std::collections::HashMap<String, AttributeValue>) -> Value {
    Value::Object(item.iter().map(|(k, v)| (k.clone(), attribute(v))).collect())
}

/// An SDK attribute value → DynamoDB JSON (`{"S": …}`, binary as base64), as Lambda sends it.
fn attribute(v: &AttributeValue) -> Value {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b.as_ref()) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(n) => json!({ "NULL": n }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::Bs(v) => json!({ "BS": v.iter().map(|b| b64(b.as_ref())).collect::<Vec<_>>() }),
        AttributeValue::L(v) => json!({ "L": v.iter().map(attribute).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": image(m) }),
        _ => json!({ "NULL": true }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(seq_cmp("9", "10").is_lt());
        assert!(seq_cmp("100", "099").is_gt());
        assert!(seq_cmp("42", "42").is_eq());
    }

    #[test]
    fn shard_ids_name_the_stream_shard_and_the_local_one() {
        assert_eq!(shard_of("shardId-1").expect("a stream shard"), ("shardId-1", None));
        assert_eq!(
            shard_of("shardId-1#local-2of4").expect("a local shard"),
            ("shardId-1", Some((2, 4)))
        );
        for bad in ["shardId-1#local-2", "shardId-1#local-xof4", "shardId-1#local-2ofy"] {
            assert!(
                matches!(shard_of(bad), Err(ReadError::ShardId(id)) if id == bad),
                "{bad}"
            );
        }
    }

    #[test]
    fn failure_records_read_back() {
        let msg = r#"{"requestContext":{"condition":"RecordAgeExceeded"},"version":"1.0","DDBStreamBatchInfo":{"shardId":"s#local-1of4","startSequenceNumber":"10","endSequenceNumber":"20","batchSize":3,"streamArn":"arn:x"}}"#;
        let b = FailedBatch::from_message(msg).expect("a failure record");
        assert_eq!(
            (b.shard_id.as_str(), b.start.as_str(), b.end.as_str(), b.size),
            ("s#local-1of4", "10", "20", 3)
        );
        assert!(FailedBatch::from_message("{}").is_none());
    }

    #[test]
    fn a_stream_arn_names_its_table() {
        assert_eq!(
            table_of_stream(
                "arn:aws:dynamodb:us-east-1:123456789012:table/wahooks-events/stream/2026-12-05T18:00:00.000"
            ),
            "wahooks-events"
        );
        assert_eq!(table_of_stream("arn:x"), "");
    }
}
