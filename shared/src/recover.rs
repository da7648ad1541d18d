//! Recovery, an operator's action on any deployed stack (`wahooks recover`): what the stream
//! mapping gave up on, published again. When the fanout cannot publish a batch for longer than
//! the mapping's record age, Lambda sends the batch's metadata (its shard and sequence range,
//! not its records) to the on-failure destination and moves on; the stream keeps the records
//! for 24 hours. [`recover_with`] reads each failure record, reads its range back from the
//! stream, publishes the records not yet published, once each, through the fanout, and deletes
//! the failure record once all are published (or set aside by the operator).
//!
//! The ports: [`FailureQueue`] (the on-failure destination) and [`StreamRanges`] (a failed
//! batch's records); the adapters here speak to SQS ([`SqsFailureQueue`]) and DynamoDB Streams
//! by the shard ids Lambda reports ([`StreamsRanges`]). The local stream driver's own shard ids
//! are its business (`stream_driver::LocalRanges`); the seeded simulation brings its models.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::EventRecord;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::fanout::{Fanout, Publisher};

/// An error with its cause, kept for the log.
type Cause = Box<dyn std::error::Error + Send + Sync>;

/// The mapping's `FilterCriteria` in `infra/template.yaml` (`eventName` `INSERT`, a sort key
/// starting `E#`): only new events invoke the fanout, never TTL expiries, state, body or
/// quarantine items. Lambda drops the rest before batching; so do the local stream driver and
/// [`recover_with`].
pub fn passes_filter(record: &EventRecord) -> bool {
    let sk = match record.change.keys.inner().get("sk") {
        Some(serde_dynamo::AttributeValue::S(sk)) => sk.as_str(),
        _ => "",
    };
    record.event_name == "INSERT" && sk.starts_with("E#")
}

/// A batch that reached the on-failure destination, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedBatch {
    /// The stream.
    pub stream_arn: String,
    /// The shard (for the local stream driver: the stand-in's shard and the local shard).
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

/// One message of the on-failure destination.
#[derive(Debug, Clone, Default)]
pub struct FailureMessage {
    /// Its message id (a message comes back when its visibility ends: it is handled once per
    /// run).
    pub id: String,
    /// What deletes it.
    pub receipt_handle: Option<String>,
    /// Its body (`DDBStreamBatchInfo`).
    pub body: Option<String>,
}

/// The port: the on-failure destination's messages.
#[async_trait]
pub trait FailureQueue: Send + Sync {
    /// The next messages (none when the queue is empty).
    async fn receive(&self) -> Result<Vec<FailureMessage>, RecoverError>;
    /// Delete a handled message.
    async fn delete(&self, receipt_handle: &str) -> Result<(), RecoverError>;
}

/// The port: the records a failed batch names, as Lambda delivered them.
#[async_trait]
pub trait StreamRanges: Send + Sync {
    /// The records of `batch`'s shard from its first to its last sequence number that the
    /// mapping's filter lets through. `Err` when the stream no longer has them (it keeps 24
    /// hours) or cannot be read now ([`ReadError::is_retryable`]).
    async fn records_of(&self, batch: &FailedBatch) -> Result<Vec<EventRecord>, ReadError>;
}

/// The on-failure destination as an SQS queue.
pub struct SqsFailureQueue {
    sqs: aws_sdk_sqs::Client,
    url: String,
}

impl SqsFailureQueue {
    /// The queue at `url`.
    pub fn new(sqs: aws_sdk_sqs::Client, url: impl Into<String>) -> SqsFailureQueue {
        SqsFailureQueue { sqs, url: url.into() }
    }

    fn failed(&self, call: &'static str, cause: impl Into<Cause>) -> RecoverError {
        RecoverError::Queue {
            url: self.url.clone(),
            call,
            cause: cause.into(),
        }
    }
}

#[async_trait]
impl FailureQueue for SqsFailureQueue {
    async fn receive(&self) -> Result<Vec<FailureMessage>, RecoverError> {
        let got = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .send()
            .await
            .map_err(|e| self.failed("ReceiveMessage", e))?;
        Ok(got
            .messages()
            .iter()
            .map(|m| FailureMessage {
                id: m.message_id().unwrap_or_default().to_owned(),
                receipt_handle: m.receipt_handle().map(str::to_owned),
                body: m.body().map(str::to_owned),
            })
            .collect())
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), RecoverError> {
        self.sqs
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|e| self.failed("DeleteMessage", e))?;
        Ok(())
    }
}

/// A failed batch's records from DynamoDB Streams, by the shard id Lambda reports.
pub struct StreamsRanges {
    streams: aws_sdk_dynamodbstreams::Client,
    region: String,
}

impl StreamsRanges {
    /// Reading through `sdk`'s DynamoDB Streams endpoint.
    pub fn new(sdk: &aws_config::SdkConfig) -> StreamsRanges {
        StreamsRanges {
            streams: aws_sdk_dynamodbstreams::Client::new(sdk),
            region: region_of(sdk),
        }
    }

    /// The records of `shard` of `batch`'s stream from its first to its last sequence number
    /// that pass the mapping's filter and `keep`.
    pub async fn read(
        &self,
        batch: &FailedBatch,
        shard: &str,
        keep: impl Fn(&EventRecord) -> bool + Send,
    ) -> Result<Vec<EventRecord>, ReadError> {
        let streams = &self.streams;
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
                let rec = lambda_record(r, &batch.stream_arn, &self.region)?;
                // What the mapping's filter let through is what the batch held.
                if passes_filter(&rec) && keep(&rec) {
                    out.push(rec);
                }
            }
            iterator = page.next_shard_iterator().map(str::to_owned);
        }
        Ok(out)
    }
}

#[async_trait]
impl StreamRanges for StreamsRanges {
    async fn records_of(&self, batch: &FailedBatch) -> Result<Vec<EventRecord>, ReadError> {
        self.read(batch, &batch.shard_id, |_| true).await
    }
}

/// The region records name (the SDK's, else the stand-in's default).
pub fn region_of(sdk: &aws_config::SdkConfig) -> String {
    sdk.region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "us-east-1".into())
}

/// What [`recover_with`] did.
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

/// Why [`recover_with`] stopped: the failures queue itself could not be used, or the options
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

/// Re-publish what reached the on-failure destination: for each message of `failures`, the
/// stream records of its shard range (from `ranges`), once each and nothing else, through
/// `fanout` (the event ids and FIFO deduplication ids of the first attempt); a failure record is
/// deleted once all its records are published. The records `options` names are skipped (not
/// published) or parked (a note through `parker` to the parked queue, not published); a failure
/// record is then deleted once every other record of its range is published. Sequence numbers
/// that no range read holds are listed in [`Recovered::not_found`].
pub async fn recover_with(
    failures: &dyn FailureQueue,
    ranges: &dyn StreamRanges,
    parker: &dyn Publisher,
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
        failures,
        ranges,
        parker,
        options,
        done: Recovered::default(),
        seen: HashSet::new(),
        ranges_done: HashSet::new(),
        published: HashSet::new(),
        found: HashSet::new(),
    };
    loop {
        let messages = failures.receive().await?;
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

/// One [`recover_with`] run: what it has done and what it has seen.
struct Recovery<'a> {
    failures: &'a dyn FailureQueue,
    ranges: &'a dyn StreamRanges,
    parker: &'a dyn Publisher,
    options: &'a RecoverOptions,
    done: Recovered,
    /// Failure-record message ids already handled in this run (a message comes back when its
    /// visibility ends).
    seen: HashSet<String>,
    /// The destination is at least once (Lambda, or our driver, may send a record twice): a
    /// range already re-published is only deleted.
    ranges_done: HashSet<(String, String, String)>,
    /// And two records naming overlapping ranges publish each stream record once (keys from
    /// [`record_key`]); skipped and parked records count as published.
    published: HashSet<String>,
    /// The sequence numbers of `options` met in a range read.
    found: HashSet<String>,
}

impl Recovery<'_> {
    /// One failure record: read its range, publish what was not published yet, delete it once
    /// all is published; otherwise leave it on the queue and say why.
    async fn recover_one(&mut self, m: &FailureMessage, fanout: &Fanout) -> Result<(), RecoverError> {
        let id = m.id.clone();
        if !self.seen.insert(id.clone()) {
            return Ok(());
        }
        let Some(batch) = m.body.as_deref().and_then(FailedBatch::from_message) else {
            self.done.left.push(format!("{id}: not a stream batch failure record"));
            return Ok(());
        };
        let range = (batch.shard_id.clone(), batch.start.clone(), batch.end.clone());
        if self.ranges_done.contains(&range) {
            return self.delete(m).await;
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
        let (fresh, unparked) = self.set_aside(records, table_of_stream(&batch.stream_arn)).await;
        let total = fresh.len();
        let keys: Vec<String> = fresh.iter().map(record_key).collect();
        let (refused, messages) = fanout.handle_retrying(fresh, 5, Duration::from_millis(300)).await;
        self.done.messages += messages;
        self.done.records += total - refused.len();
        let still: HashSet<String> = refused.iter().map(record_key).collect();
        self.published.extend(keys.into_iter().filter(|k| !still.contains(k)));
        if refused.is_empty() && unparked == 0 {
            self.ranges_done.insert(range);
            return self.delete(m).await;
        }
        self.done
            .left
            .push(format!("{id}: {}; run recover again", left_why(&refused, unparked)));
        Ok(())
    }

    /// Of a range's `records`, those to publish now: the ones not published in this run yet,
    /// less those the operator skips or parks (parked here, on the parked queue of `table`'s
    /// stack); and how many could not be parked.
    async fn set_aside(&mut self, records: Vec<EventRecord>, table: &str) -> (Vec<EventRecord>, usize) {
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
        (fresh, unparked)
    }

    /// Send the parked note of `record` (the fanout's, with [`OPERATOR_PARK_REASON`]) to the
    /// parked queue, with a few tries; whether it was accepted.
    async fn park(&self, record: &EventRecord, table: &str) -> bool {
        let Some(url) = &self.options.parked_url else {
            return false;
        };
        let queue = crate::fanout::Queue::new("parked", url, crate::sqs_rules::MAX_BATCH_BYTES);
        let note = crate::fanout::parked_message(record, table, None, OPERATOR_PARK_REASON);
        for attempt in 1..=3u64 {
            match self.parker.send_batch(&queue, std::slice::from_ref(&note)).await {
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
        let mut read = self.ranges.records_of(batch).await;
        for attempt in 1..5u64 {
            match &read {
                Err(e) if e.is_retryable() => {
                    tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
                    read = self.ranges.records_of(batch).await;
                }
                _ => break,
            }
        }
        read
    }

    async fn delete(&self, m: &FailureMessage) -> Result<(), RecoverError> {
        match &m.receipt_handle {
            Some(handle) => self.failures.delete(handle).await,
            None => Ok(()),
        }
    }
}

/// Why a failure record stays: its records still refused (their sequence numbers, for
/// `--skip`/`--park` when one fails every run) and those the parked queue refused.
fn left_why(refused: &[EventRecord], unparked: usize) -> String {
    let mut why = Vec::new();
    if !refused.is_empty() {
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
    why.join(", ")
}

/// A stream record's identity for [`recover_with`]: its sequence number and its item's keys (moto,
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
