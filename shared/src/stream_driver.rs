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
//! Recovery (`crate::recover`) reads those failure records back and re-publishes exactly the
//! records they name; [`LocalRanges`] reads a range by the local shard ids this driver reports.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::fanout::{Fanout, FanoutStats};
use crate::recover::{
    lambda_record, passes_filter, region_of, FailedBatch, ReadError, RecoverError, RecoverOptions, Recovered,
    SqsFailureQueue, StreamRanges, StreamsRanges,
};

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

/// A failed batch's records on the local stack: the stand-in's shard range, only the records of
/// the local shard its id names (`<shard>#local-<k>of<n>`); an id without the mark is read as
/// Lambda's. The operators' `wahooks recover` uses it, so one command serves both.
pub struct LocalRanges(StreamsRanges);

impl LocalRanges {
    /// Reading through `sdk`'s DynamoDB Streams endpoint.
    pub fn new(sdk: &aws_config::SdkConfig) -> LocalRanges {
        LocalRanges(StreamsRanges::new(sdk))
    }
}

#[async_trait::async_trait]
impl StreamRanges for LocalRanges {
    async fn records_of(&self, batch: &FailedBatch) -> Result<Vec<EventRecord>, ReadError> {
        let (shard, local) = shard_of(&batch.shard_id)?;
        self.0
            .read(batch, shard, |rec| {
                local.is_none_or(|(k, n)| local_shard_of(rec, n) == k)
            })
            .await
    }
}

/// [`crate::recover::recover_with`] with no record set aside, on the local stack or a deployed
/// one (see [`LocalRanges`]).
pub async fn recover(
    sdk: &aws_config::SdkConfig,
    failures_url: &str,
    fanout: &Fanout,
) -> Result<Recovered, RecoverError> {
    recover_with(sdk, failures_url, fanout, &RecoverOptions::default()).await
}

/// [`crate::recover::recover_with`] through SQS and [`LocalRanges`].
pub async fn recover_with(
    sdk: &aws_config::SdkConfig,
    failures_url: &str,
    fanout: &Fanout,
    options: &RecoverOptions,
) -> Result<Recovered, RecoverError> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let queue = SqsFailureQueue::new(sqs.clone(), failures_url);
    let parker = crate::fanout::SqsPublisher::new(sqs);
    crate::recover::recover_with(&queue, &LocalRanges::new(sdk), &parker, fanout, options).await
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
