//! The model of Lambda's DynamoDB event-source mapping, over the table model's stream, with the
//! template's settings ([`MappingSettings::DEPLOYED`]) and the rules the local stream driver
//! follows (`shared/src/stream_driver.rs`), on the simulated clock:
//! - one invocation at a time per shard, a batch of at most `batch_size` records that pass the
//!   template's filter ([`passes_filter`]), oldest first;
//! - `ReportBatchItemFailures`: the shard resumes at the lowest failed sequence number; a batch
//!   that fails at its first record counts a retry;
//! - a function error (a crash mid-batch) retries the whole batch, bisected
//!   (`BisectBatchOnFunctionError`: half the batch at a time until one succeeds);
//! - past `max_retry_attempts` or `max_record_age`, the batch's metadata (`DDBStreamBatchInfo`)
//!   goes to the on-failure destination and the shard moves on;
//! - at least once: a batch can be delivered again after it succeeded (drawn from the seed).
//!
//! The on-failure destination ([`SimFailures`]) and the stream's ranges ([`SimRanges`]) are the
//! model's adapters of `wahooks::recover`'s ports: the simulation's operator runs the real
//! `recover_with`.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use serde_json::json;
use wahooks::recover::{
    passes_filter, FailedBatch, FailureMessage, FailureQueue, ReadError, RecoverError, StreamRanges,
};
use wahooks::stream_driver::MappingSettings;

use super::dice::Clock;
use super::table::{seq_of, sequence_number, SimTable, StreamRecord};

/// The stream's ARN in failure records.
pub const STREAM_ARN: &str = "arn:aws:dynamodb:us-east-1:000000000000:table/events/stream/sim";

/// One shard's place in the stream.
#[derive(Debug, Clone, Default)]
pub struct ShardCursor {
    /// The next record index of the shard to deliver.
    pub next: usize,
    /// Retries of the batch at the head.
    pub retries: u32,
    /// The batch size now (halved by a function error, back to full after a success).
    pub limit: usize,
}

/// A batch handed to the function: the records and the index after the last one.
pub struct Batch {
    /// The stream records (log indexes and Lambda's form).
    pub records: Vec<(usize, StreamRecord, EventRecord)>,
}

impl Batch {
    /// The Lambda event.
    pub fn event(&self) -> StreamEvent {
        let mut event = StreamEvent::default();
        event.records = self.records.iter().map(|(_, _, r)| r.clone()).collect();
        event
    }
}

/// How an invocation ended.
pub enum Invocation<'a> {
    /// The function answered.
    Answered(&'a DynamoDbEventResponse),
    /// The function failed (crashed): no answer.
    Crashed,
}

/// What the mapping did with a batch's outcome.
#[derive(Debug, PartialEq, Eq)]
pub enum Settled {
    /// Every record done.
    Done,
    /// Some records to retry.
    Retrying,
    /// Given up: the failure record for the on-failure destination.
    GivenUp(String, usize),
}

/// The mapping over one table's stream.
pub struct Mapping {
    /// The settings.
    pub settings: MappingSettings,
    /// Each shard's place.
    pub cursors: Vec<ShardCursor>,
}

impl Mapping {
    /// A mapping with `settings` over `shards` shards, from the start of each.
    pub fn new(settings: MappingSettings, shards: usize) -> Mapping {
        Mapping {
            settings,
            cursors: vec![
                ShardCursor {
                    limit: settings.batch_size,
                    ..ShardCursor::default()
                };
                shards
            ],
        }
    }

    /// Skip the records the filter drops at the head of shard `k` (they never invoke the
    /// function) and return the next batch, if any.
    pub fn next_batch(&mut self, table: &SimTable, k: usize) -> Option<Batch> {
        let cursor = &mut self.cursors[k];
        let len = table.shard_len(k);
        let mut records = Vec::new();
        let mut i = cursor.next;
        while i < len && records.len() < cursor.limit.max(1) {
            let Some(r) = table.record(k, i) else { break };
            let rec = table.lambda_record(&r);
            if passes_filter(&rec) {
                records.push((i, r, rec));
            } else if records.is_empty() {
                cursor.next = i + 1;
            }
            i += 1;
        }
        (!records.is_empty()).then_some(Batch { records })
    }

    /// The creation time of shard `k`'s oldest waiting record that passes the filter, if any.
    pub fn oldest_waiting(&self, table: &SimTable, k: usize) -> Option<i64> {
        let len = table.shard_len(k);
        (self.cursors[k].next..len)
            .filter_map(|i| table.record(k, i))
            .find(|r| r.sk.starts_with("E#"))
            .map(|r| r.created_ms)
    }

    /// Apply an invocation's outcome to shard `k`, as Lambda does (see the module's rules).
    pub fn settle(&mut self, k: usize, batch: &Batch, outcome: Invocation<'_>, now_ms: i64) -> Settled {
        let settings = self.settings;
        let cursor = &mut self.cursors[k];
        let n = batch.records.len();
        let failed_at = match outcome {
            Invocation::Crashed => {
                cursor.retries += 1;
                if settings.bisect_on_error {
                    cursor.limit = (n / 2).max(1);
                }
                Some(0)
            }
            Invocation::Answered(response) => {
                let lowest = response
                    .batch_item_failures
                    .iter()
                    .filter_map(|f| f.item_identifier.as_deref())
                    .filter_map(|s| batch.records.iter().position(|(_, r, _)| sequence_number(r.seq) == s))
                    .min();
                match lowest {
                    None => {
                        cursor.next = batch.records[n - 1].0 + 1;
                        cursor.retries = 0;
                        cursor.limit = settings.batch_size;
                        None
                    }
                    Some(i) => {
                        cursor.next = batch.records[i].0;
                        if i == 0 {
                            cursor.retries += 1;
                        } else {
                            cursor.retries = 0;
                        }
                        Some(i)
                    }
                }
            }
        };
        let Some(i) = failed_at else {
            return Settled::Done;
        };
        let rest = &batch.records[i..];
        let oldest = rest[0].1.created_ms;
        let condition = match (settings.max_retry_attempts, settings.max_record_age) {
            (Some(max), _) if cursor.retries > max => "RetryAttemptsExhausted",
            (_, Some(age)) if now_ms - oldest > age.as_millis() as i64 => "RecordAgeExceeded",
            _ => return Settled::Retrying,
        };
        let info = failure_record(condition, cursor.retries + 1, rest, k);
        cursor.next = rest[rest.len() - 1].0 + 1;
        cursor.retries = 0;
        cursor.limit = settings.batch_size;
        Settled::GivenUp(info, rest.len())
    }

    /// Whether every shard has delivered everything.
    pub fn drained(&self, table: &SimTable) -> bool {
        (0..self.cursors.len()).all(|k| self.oldest_waiting(table, k).is_none())
    }
}

/// The message Lambda sends to the on-failure destination: the batch's shard and range.
fn failure_record(condition: &str, attempts: u32, rest: &[(usize, StreamRecord, EventRecord)], k: usize) -> String {
    let first = &rest[0].1;
    let last = &rest[rest.len() - 1].1;
    json!({
        "requestContext": {"condition": condition, "approximateInvokeCount": attempts},
        "DDBStreamBatchInfo": {
            "shardId": format!("shardId-{k:08}"),
            "startSequenceNumber": sequence_number(first.seq),
            "endSequenceNumber": sequence_number(last.seq),
            "approximateArrivalOfFirstRecord": first.created_ms,
            "approximateArrivalOfLastRecord": last.created_ms,
            "batchSize": rest.len(),
            "streamArn": STREAM_ARN,
        }
    })
    .to_string()
}

/// The on-failure destination on the model: an SQS queue's receive, visibility and delete.
#[derive(Clone)]
pub struct SimFailures {
    messages: Arc<Mutex<Vec<Held>>>,
    clock: Clock,
    next: Arc<Mutex<u64>>,
}

struct Held {
    id: String,
    body: String,
    invisible_until: i64,
}

impl SimFailures {
    /// An empty destination.
    pub fn new(clock: Clock) -> SimFailures {
        SimFailures {
            messages: Arc::default(),
            clock,
            next: Arc::default(),
        }
    }

    /// Lambda sends a failure record.
    pub fn send(&self, body: String) {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        *next += 1;
        self.messages.lock().unwrap_or_else(|p| p.into_inner()).push(Held {
            id: format!("failure-{next}"),
            body,
            invisible_until: 0,
        });
    }

    /// How many failure records it holds.
    pub fn len(&self) -> usize {
        self.messages.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl FailureQueue for SimFailures {
    async fn receive(&self) -> Result<Vec<FailureMessage>, RecoverError> {
        let now = self.clock.now();
        let mut messages = self.messages.lock().unwrap_or_else(|p| p.into_inner());
        Ok(messages
            .iter_mut()
            .filter(|m| m.invisible_until <= now)
            .take(10)
            .map(|m| {
                m.invisible_until = now + super::queues::VISIBILITY_MS;
                FailureMessage {
                    id: m.id.clone(),
                    receipt_handle: Some(m.id.clone()),
                    body: Some(m.body.clone()),
                }
            })
            .collect())
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), RecoverError> {
        self.messages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|m| m.id != receipt_handle);
        Ok(())
    }
}

/// A failed batch's records from the table model's stream, by the shard ids the model reports.
pub struct SimRanges(pub SimTable);

#[async_trait]
impl StreamRanges for SimRanges {
    async fn records_of(&self, batch: &FailedBatch) -> Result<Vec<EventRecord>, ReadError> {
        let shard = batch
            .shard_id
            .strip_prefix("shardId-")
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|k| *k < self.0.shard_count())
            .ok_or_else(|| ReadError::ShardId(batch.shard_id.clone()))?;
        let (Some(start), Some(end)) = (seq_of(&batch.start), seq_of(&batch.end)) else {
            return Err(ReadError::ShardId(batch.shard_id.clone()));
        };
        Ok(self
            .0
            .records_between(shard, start, end)
            .iter()
            .map(|r| self.0.lambda_record(r))
            .filter(passes_filter)
            .collect())
    }
}
