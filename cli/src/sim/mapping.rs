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

use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use serde_json::json;
use wahooks::fanout::Fanout;
use wahooks::stream_driver::{passes_filter, FailedBatch, MappingSettings};

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

/// `wahooks recover` on the model: each failure record read back (the same reader,
/// [`FailedBatch::from_message`]), its range's records read from the stream, those not
/// re-published yet sent once through the fanout ([`Fanout::handle_retrying`], as the command
/// does); a failure record stays until all its records are published.
pub async fn recover(
    table: &SimTable,
    failures: &mut Vec<String>,
    fanout: &Fanout,
    published: &mut std::collections::HashSet<u64>,
) -> RecoverPass {
    let mut pass = RecoverPass::default();
    let mut left = Vec::new();
    for message in failures.drain(..) {
        let Some(batch) = FailedBatch::from_message(&message) else {
            pass.unreadable += 1;
            continue;
        };
        let shard = batch
            .shard_id
            .strip_prefix("shardId-")
            .and_then(|s| s.parse::<usize>().ok());
        let (Some(k), Some(start), Some(end)) = (shard, seq_of(&batch.start), seq_of(&batch.end)) else {
            pass.unreadable += 1;
            continue;
        };
        let fresh: Vec<EventRecord> = table
            .records_between(k, start, end)
            .into_iter()
            .filter(|r| !published.contains(&r.seq))
            .map(|r| table.lambda_record(&r))
            .filter(passes_filter)
            .collect();
        let seqs: Vec<u64> = fresh
            .iter()
            .filter_map(|r| r.change.sequence_number.as_deref().and_then(seq_of))
            .collect();
        let (refused, messages) = fanout.handle_retrying(fresh, 5, std::time::Duration::ZERO).await;
        pass.messages += messages;
        let still: std::collections::HashSet<u64> = refused
            .iter()
            .filter_map(|r| r.change.sequence_number.as_deref().and_then(seq_of))
            .collect();
        for s in seqs {
            if !still.contains(&s) {
                published.insert(s);
                pass.records += 1;
            }
        }
        if still.is_empty() {
            pass.batches += 1;
        } else {
            left.push(message);
        }
    }
    *failures = left;
    pass
}

/// What one recover pass did.
#[derive(Debug, Default, Clone, Copy)]
pub struct RecoverPass {
    /// Failure records settled.
    pub batches: usize,
    /// Records re-published.
    pub records: usize,
    /// Messages the queues accepted.
    pub messages: usize,
    /// Failure records that could not be read.
    pub unreadable: usize,
}
