//! The local stream driver: what Lambda's event-source mapping does in AWS, on one machine.
//! It reads the events table's stream from the local stand-in (`aws-sdk-dynamodbstreams`),
//! shard by shard, turns each batch into exactly the JSON event Lambda delivers, and calls the
//! same [`Fanout`] handler. Partial failures are honoured as Lambda does with
//! `ReportBatchItemFailures`: the batch is retried from the first failed record.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord};
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::fanout::{Fanout, FanoutStats};

/// Lambda's default batch size for DynamoDB streams (also the most GetRecords returns here).
pub const BATCH_SIZE: i32 = 100;

/// Why the driver stopped.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The table has no stream, or the stand-in could not be reached.
    #[error("stream of table `{table}`: {detail}")]
    Stream {
        /// The table.
        table: String,
        /// What went wrong.
        detail: String,
    },
}

#[derive(Default)]
struct Shard {
    iterator: Option<String>,
    /// Records handed to the handler and not yet acknowledged (retried first).
    pending: Vec<EventRecord>,
    /// The shard has been closed and drained.
    done: bool,
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
    /// The handler's own totals, summed.
    pub fanout: FanoutStats,
}

/// Reads one table's stream into a fanout handler.
pub struct StreamDriver {
    streams: aws_sdk_dynamodbstreams::Client,
    dynamo: aws_sdk_dynamodb::Client,
    table: String,
    region: String,
    stream_arn: Option<String>,
    shards: BTreeMap<String, Shard>,
    stats: DriveStats,
}

impl StreamDriver {
    /// A driver for `table`'s stream, starting at its oldest record (TRIM_HORIZON).
    pub fn new(sdk: &aws_config::SdkConfig, table: impl Into<String>) -> StreamDriver {
        StreamDriver {
            streams: aws_sdk_dynamodbstreams::Client::new(sdk),
            dynamo: aws_sdk_dynamodb::Client::new(sdk),
            table: table.into(),
            region: sdk
                .region()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "us-east-1".into()),
            stream_arn: None,
            shards: BTreeMap::new(),
            stats: DriveStats::default(),
        }
    }

    /// Totals so far.
    pub fn stats(&self) -> &DriveStats {
        &self.stats
    }

    fn err(&self, detail: impl std::fmt::Display) -> DriverError {
        DriverError::Stream {
            table: self.table.clone(),
            detail: detail.to_string(),
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
            .map_err(|e| self.err(aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        let arn = table
            .table()
            .and_then(|t| t.latest_stream_arn())
            .ok_or_else(|| self.err("the table has no stream"))?
            .to_owned();
        self.stream_arn = Some(arn.clone());
        Ok(arn)
    }

    /// One round over every shard: retry pending records, else read the next batch, and hand
    /// it to `fanout`. Returns how many records were handed over (0 = nothing to do).
    pub async fn poll_once(&mut self, fanout: &Fanout) -> Result<usize, DriverError> {
        let arn = self.discover().await?;
        let described = self
            .streams
            .describe_stream()
            .stream_arn(&arn)
            .send()
            .await
            .map_err(|e| self.err(aws_sdk_dynamodbstreams::error::DisplayErrorContext(e)))?;
        let shard_ids: Vec<String> = described
            .stream_description()
            .map(|d| {
                d.shards()
                    .iter()
                    .filter_map(|s| s.shard_id().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut handed = 0;
        for id in shard_ids {
            let shard = self.shards.entry(id.clone()).or_default();
            if shard.done {
                continue;
            }
            if shard.pending.is_empty() {
                let iterator = match shard.iterator.clone() {
                    Some(it) => it,
                    None => {
                        let out = self
                            .streams
                            .get_shard_iterator()
                            .stream_arn(&arn)
                            .shard_id(&id)
                            .shard_iterator_type(ShardIteratorType::TrimHorizon)
                            .send()
                            .await
                            .map_err(|e| DriverError::Stream {
                                table: self.table.clone(),
                                detail: aws_sdk_dynamodbstreams::error::DisplayErrorContext(e).to_string(),
                            })?;
                        out.shard_iterator().unwrap_or_default().to_owned()
                    }
                };
                let out = self
                    .streams
                    .get_records()
                    .shard_iterator(&iterator)
                    .limit(BATCH_SIZE)
                    .send()
                    .await
                    .map_err(|e| DriverError::Stream {
                        table: self.table.clone(),
                        detail: aws_sdk_dynamodbstreams::error::DisplayErrorContext(e).to_string(),
                    })?;
                let shard = self.shards.entry(id.clone()).or_default();
                shard.iterator = out.next_shard_iterator().map(str::to_owned);
                if shard.iterator.is_none() {
                    shard.done = true;
                }
                for r in out.records() {
                    match lambda_record(r, &arn, &self.region) {
                        Ok(rec) => shard.pending.push(rec),
                        Err(e) => tracing::error!(error = %e, "stream record could not be converted"),
                    }
                }
            }
            let shard = self.shards.entry(id).or_default();
            if shard.pending.is_empty() {
                continue;
            }
            let mut event = StreamEvent::default();
            event.records = shard.pending.clone();
            handed += event.records.len();
            let (response, stats) = fanout.handle(&event).await;
            self.stats.invocations += 1;
            add(&mut self.stats.fanout, &stats);
            // Lambda resumes from the lowest failed sequence number: keep it and what follows.
            let first_failed = response
                .batch_item_failures
                .iter()
                .filter_map(|f| f.item_identifier.as_deref())
                .filter_map(|seq| {
                    shard
                        .pending
                        .iter()
                        .position(|r| r.change.sequence_number.as_deref() == Some(seq))
                })
                .min();
            match first_failed {
                Some(i) => {
                    self.stats.acknowledged += i;
                    self.stats.failed += shard.pending.len() - i;
                    shard.pending.drain(..i);
                }
                None => {
                    self.stats.acknowledged += shard.pending.len();
                    shard.pending.clear();
                }
            }
        }
        Ok(handed)
    }

    /// Whether records are waiting to be retried.
    pub fn has_pending(&self) -> bool {
        self.shards.values().any(|s| !s.pending.is_empty())
    }

    /// Poll until a round finds nothing new and nothing pending, or `timeout` passes (then
    /// `false`). Failed records are retried every `retry_every`.
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
                    tracing::warn!(error = %e, "stream driver: will retry");
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

fn add(total: &mut FanoutStats, s: &FanoutStats) {
    total.events += s.events;
    total.messages += s.messages;
    total.slimmed += s.slimmed;
    total.ignored += s.ignored;
    total.failed += s.failed;
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
