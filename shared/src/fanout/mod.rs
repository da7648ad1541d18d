//! Where an event is published: the outbox. The `fanout` Lambda receives the events table's
//! stream (NEW_IMAGE), reads each new event back from its item, and sends it to the queue(s)
//! its type routes to. Why an outbox: `docs/architecture.md`.
//!
//! - The message body is the JSON the receiver stored, byte for byte, not the event written
//!   out again: an event a newer version stored keeps its new fields and values on the queue.
//! - Routing is configuration ([`Routing`]): event type → queue names → queue URLs.
//! - FIFO queues (`.fifo`): `MessageGroupId = instance#chat`, `MessageDeduplicationId = event id`.
//!   Every message, FIFO or not, carries the event id and type as message attributes.
//! - Batches of ≤ 10 entries and ≤ 1 MiB; a FIFO queue's batches go out in order, and once an
//!   entry of a group fails, that group's entries in later batches are held back (reported
//!   failed) so they cannot overtake it. (Within one batch SQS decides: a refused entry is rare,
//!   and the consumer can still order a chat by `time`.)
//! - Failures are reported per stream record (`batchItemFailures`, the sequence number), so
//!   Lambda retries only from the first failed record; what this container already sent from
//!   that batch is remembered and not sent again.
//! - An event too large for its queue goes without `data.raw`, with `data.stored_item` pointing
//!   at the item; `MODIFY`/`REMOVE` records (TTL expiry) and quarantine items are ignored.
//!
//! The parts: [`routing`] (where each type goes), [`message`] (a record → a queue message),
//! [`publish`] (the port and its SQS and in-memory adapters), and here the handler that
//! batches, sends, holds back a failed chat's later records and reports what to retry.

mod message;
mod publish;
mod routing;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};

pub use message::{
    body_for, body_for_stored, event_from_image, event_from_image_with, group_id, parked_message, OutMessage,
    RecordError, StoredEvent,
};
pub use publish::{entries_of, MemoryPublisher, PublishError, Publisher, SqsPublisher};
pub use routing::{queue_env_var, Queue, Routing, RoutingError, DEFAULT_QUEUES, DEFAULT_ROUTES};

use crate::bounded::BoundedSet;

pub use crate::sqs_rules::{MAX_BATCH_BYTES, MAX_BATCH_ENTRIES};

/// What one invocation did (for logs and the bench).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FanoutStats {
    /// Events published (once per event, whatever its number of queues).
    pub events: usize,
    /// Messages accepted by the queues.
    pub messages: usize,
    /// Messages sent without `data.raw` because they were too large.
    pub slimmed: usize,
    /// Records ignored (MODIFY/REMOVE, quarantine items).
    pub ignored: usize,
    /// Records reported failed.
    pub failed: usize,
    /// Records parked: they can never be published (see [`Fanout::parking_to`]).
    pub parked: usize,
}

/// The fanout handler: stream records in, messages out, failures reported per record.
#[derive(Clone)]
pub struct Fanout {
    routing: Arc<Routing>,
    publisher: Arc<dyn Publisher>,
    table: String,
    dedup_suffix: Option<String>,
    /// Messages this container sent recently: a retried stream batch (Lambda re-delivers every
    /// record from the first failed one) skips them instead of sending them again.
    recent: Arc<Mutex<RecentlySent>>,
    /// Where records that can never be published go, so they do not hold their shard.
    parked: Option<Queue>,
    /// The claim-check bucket, to read events kept there (`body_object`).
    objects: Option<Arc<dyn crate::bucket::BodyBucket>>,
    /// The `timers` queue: told of inbound messages and each instance's traffic
    /// ([`crate::timers::Feed`]), when turns and silence are on.
    timers: Option<Queue>,
    /// When this container last told the timers of each instance's traffic (epoch ms), and how
    /// often it does at most (see [`Fanout::activity_every`]).
    activity_sent: Arc<Mutex<ActivitySent>>,
    activity_every_ms: i64,
    /// The `media` queue: told of each message with a media file ([`crate::media::MediaNote`]),
    /// when the archiver is on.
    media: Option<Queue>,
}

/// What a batch tells the functions that follow the events: the timers and the media archiver.
#[derive(Default)]
struct Followers {
    timers: crate::timers::Feed,
    media: Vec<(usize, crate::media::MediaNote)>,
}

/// How often a fanout container tells the timers of one instance's traffic at most, unless the
/// traffic holds a connection change: silence windows are minutes long, and a note per batch
/// would cost a read and a write per batch.
pub const ACTIVITY_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// A record that can never be published, and why.
struct Unpublishable {
    record: usize,
    queue: Option<String>,
    reason: String,
}

/// When each (provider, instance, endpoint) was last told of to the timers, epoch ms.
type ActivitySent = crate::bounded::BoundedMap<(crate::Provider, String, String), i64>;

/// How many (queue, deduplication id) pairs a container remembers having sent.
const RECENTLY_SENT: usize = 20_000;

/// The (queue, deduplication id) pairs sent recently, oldest forgotten first.
type RecentlySent = BoundedSet<(usize, String)>;

struct Pending {
    record: usize,
    message: OutMessage,
}

/// The fanout's bucket, checked to be the one an item names.
struct Named(Arc<dyn crate::bucket::BodyBucket>, String);

#[async_trait::async_trait]
impl crate::bucket::BodyBucket for Named {
    fn name(&self) -> &str {
        &self.1
    }
    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), crate::bucket::BucketError> {
        self.0.put(key, bytes, content_type).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, crate::bucket::BucketError> {
        if self.0.name() != self.1 {
            return Err(crate::bucket::BucketError::Unavailable(
                format!(
                    "the item names bucket `{}`, the fanout reads `{}`",
                    self.1,
                    self.0.name()
                )
                .into(),
            ));
        }
        self.0.get(key).await
    }
}

impl Fanout {
    /// A handler publishing through `publisher`; `table` is named in stored-item pointers.
    pub fn new(routing: Routing, publisher: Arc<dyn Publisher>, table: impl Into<String>) -> Fanout {
        Fanout {
            routing: Arc::new(routing),
            publisher,
            table: table.into(),
            dedup_suffix: None,
            recent: Arc::new(Mutex::new(BoundedSet::new(RECENTLY_SENT))),
            parked: None,
            objects: None,
            timers: None,
            activity_sent: Arc::new(Mutex::new(crate::bounded::BoundedMap::new(RECENTLY_SENT))),
            activity_every_ms: ACTIVITY_EVERY.as_millis() as i64,
            media: None,
        }
    }

    /// Tell the `media` queue at `url` of every message with a media file (the archiver's
    /// notes: docs/architecture.md, "Media"). A note that cannot be sent fails its record.
    pub fn feeding_media(mut self, url: impl Into<String>) -> Fanout {
        self.media = Some(Queue::new("media", url, crate::sqs_rules::MAX_BATCH_BYTES));
        self
    }

    /// Tell the timers of an instance's traffic at most once per `every` (default
    /// [`ACTIVITY_EVERY`]; a connection change always goes): silence is then known to within
    /// `every`. Tests with windows of seconds set it to zero.
    pub fn activity_every(mut self, every: std::time::Duration) -> Fanout {
        self.activity_every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
        self
    }

    /// Tell the `timers` queue at `url` of each batch's inbound messages and instances'
    /// traffic (docs/architecture.md, "Events in time"). A note that cannot be sent fails its
    /// record, as a message would; a note sent again is recognised by the timers.
    pub fn feeding_timers(mut self, url: impl Into<String>) -> Fanout {
        self.timers = Some(Queue::new("timers", url, crate::sqs_rules::MAX_BATCH_BYTES));
        self
    }

    /// Read events kept in `bucket` (an event over an item even without its body).
    pub fn reading_objects_from(mut self, bucket: Arc<dyn crate::bucket::BodyBucket>) -> Fanout {
        self.objects = Some(bucket);
        self
    }

    /// The events of `records` kept in the bucket, read (the rest: `None`).
    async fn read_objects(
        &self,
        records: &[EventRecord],
    ) -> Vec<Option<Result<(String, crate::CloudEvent), RecordError>>> {
        let reads = records.iter().map(|r| async move {
            let uri = message::object_of_image(r.change.new_image.inner())?;
            Some(match &self.objects {
                Some(bucket) => crate::store::read_object(uri, |name| Named(bucket.clone(), name.to_owned()))
                    .await
                    .map_err(RecordError::from),
                None => Err(RecordError::ObjectUnavailable(
                    format!("{uri}: the fanout has no bucket (WAHOOKS_BODY_BUCKET)").into(),
                )),
            })
        });
        futures::future::join_all(reads).await
    }

    /// Park records that can never be published (an item that cannot be read, a message SQS
    /// would refuse whatever the retry) on the standard queue at `url`, with their pointer, and
    /// report them done: the shard moves on, the parked queue's alarm calls a person
    /// (docs/operations.md). Without it such a record is retried until the mapping gives it up.
    pub fn parking_to(mut self, url: impl Into<String>) -> Fanout {
        self.parked = Some(Queue::new("parked", url, crate::sqs_rules::MAX_BATCH_BYTES));
        self
    }

    /// A fanout for replays: FIFO deduplication ids become `<event id>#<suffix>`, so SQS does
    /// not drop a replay sent within 5 minutes of the original; the event id (body and `id`
    /// attribute) is unchanged, and consumers dedupe on it.
    pub fn for_replay(mut self, suffix: impl Into<String>) -> Fanout {
        self.dedup_suffix = Some(suffix.into());
        // A replay republishes stored events (turns included): it makes no new turns, and the
        // archiver already has (or had) their files.
        self.timers = None;
        self.media = None;
        self
    }

    /// The routing in use.
    pub fn routing(&self) -> &Routing {
        &self.routing
    }

    /// Handle one stream batch: the response lists the sequence numbers of the records to retry.
    pub async fn handle(&self, event: &StreamEvent) -> (DynamoDbEventResponse, FanoutStats) {
        let mut stats = FanoutStats::default();
        let mut failed_records: HashSet<usize> = HashSet::new();
        let mut unpublishable: Vec<Unpublishable> = Vec::new();
        let mut per_queue: Vec<Vec<Pending>> = self.routing.queues().iter().map(|_| Vec::new()).collect();
        let objects = self.read_objects(&event.records).await;
        let mut followers = Followers::default();
        for ((i, record), object) in event.records.iter().enumerate().zip(objects) {
            match self.messages_for(record, object, &mut per_queue, i, &mut stats, &mut followers) {
                Ok(true) => stats.events += 1,
                Ok(false) => stats.ignored += 1,
                Err(e) if e.is_retryable() => {
                    tracing::warn!(
                        sequence = record.change.sequence_number.as_deref().unwrap_or("-"),
                        error = %crate::error_chain(&e),
                        "stream record not read now; it will be retried"
                    );
                    failed_records.insert(i);
                }
                Err(e) => {
                    let reason = crate::error_chain(&e);
                    tracing::error!(
                        sequence = record.change.sequence_number.as_deref().unwrap_or("-"),
                        error = %reason,
                        "stream record could not be read"
                    );
                    unpublishable.push(Unpublishable {
                        record: i,
                        queue: None,
                        reason,
                    });
                }
            }
        }
        let sends = per_queue
            .into_iter()
            .enumerate()
            .filter(|(_, p)| !p.is_empty())
            .map(|(q, pending)| self.send_queue(q, pending));
        let (sent, to_timers, to_media) = futures::join!(
            futures::future::join_all(sends),
            self.feed_timers(followers.timers),
            self.feed_media(followers.media)
        );
        for (accepted, failed, refused) in sent {
            stats.messages += accepted;
            failed_records.extend(failed);
            unpublishable.extend(refused);
        }
        failed_records.extend(to_timers);
        failed_records.extend(to_media);
        for u in unpublishable {
            if self.park(&event.records, &u).await {
                stats.parked += 1;
            } else {
                failed_records.insert(u.record);
            }
        }
        let mut failed: Vec<usize> = failed_records.into_iter().collect();
        failed.sort_unstable();
        stats.failed = failed.len();
        let mut response = DynamoDbEventResponse::default();
        for i in failed {
            let mut f = DynamoDbBatchItemFailure::default();
            f.item_identifier = event.records.get(i).and_then(|r| r.change.sequence_number.clone());
            response.batch_item_failures.push(f);
        }
        (response, stats)
    }

    /// Handle `records` as one batch, then again only the ones reported failed, for up to
    /// `attempts` rounds, waiting `backoff`, 2 × `backoff`, … between them: what a caller
    /// without Lambda's retries (`replay`, `recover`) does. Returns the records still refused
    /// and the messages sent.
    pub async fn handle_retrying(
        &self,
        mut records: Vec<EventRecord>,
        attempts: u32,
        backoff: std::time::Duration,
    ) -> (Vec<EventRecord>, usize) {
        let mut messages = 0;
        for attempt in 1..=attempts {
            let mut event = StreamEvent::default();
            event.records = std::mem::take(&mut records);
            let (response, stats) = self.handle(&event).await;
            messages += stats.messages;
            let failed: HashSet<String> = response
                .batch_item_failures
                .into_iter()
                .filter_map(|f| f.item_identifier)
                .collect();
            records = event
                .records
                .into_iter()
                .filter(|r| r.change.sequence_number.as_ref().is_some_and(|s| failed.contains(s)))
                .collect();
            if records.is_empty() || attempt == attempts {
                break;
            }
            tokio::time::sleep(backoff * attempt).await;
        }
        (records, messages)
    }

    /// Queue the messages of one record; `Ok(false)` when the record is not a new event.
    fn messages_for(
        &self,
        record: &EventRecord,
        object: Option<Result<(String, crate::CloudEvent), RecordError>>,
        per_queue: &mut [Vec<Pending>],
        index: usize,
        stats: &mut FanoutStats,
        followers: &mut Followers,
    ) -> Result<bool, RecordError> {
        if record.event_name != "INSERT" {
            return Ok(false);
        }
        let object = object.transpose()?;
        let Some(mut stored) = message::event_from_image_with(record.change.new_image.inner(), object)? else {
            return Ok(false);
        };
        stored.pointer.table.clone_from(&self.table);
        let event = &stored.event;
        if self.timers.is_some() {
            followers.timers.add(index, event);
        }
        if self.media.is_some() {
            if let Some(note) = crate::media::media_note(event, &stored.pointer.pk, &stored.pointer.sk) {
                followers.media.push((index, note));
            }
        }
        let queues = self.routing.queues();
        for (q, queue) in queues.iter().enumerate() {
            if !self.routing.targets(event.event_type).any(|t| t == queue) {
                continue;
            }
            let body = body_for_stored(&stored, queue);
            if event.data.raw.is_some() && !body.contains("\"raw\":") {
                stats.slimmed += 1;
                // Workers read such an event's body from the table: worth a metric.
                crate::metrics::emit_metric(|| {
                    crate::metrics::emf_count(
                        "SlimmedMessages",
                        &[
                            ("Provider", event.provider.as_str()),
                            ("Type", event.event_type.as_str()),
                        ],
                        chrono::Utc::now().timestamp_millis(),
                    )
                });
            }
            if let Some(list) = per_queue.get_mut(q) {
                list.push(Pending {
                    record: index,
                    message: OutMessage {
                        entry_id: String::new(),
                        body,
                        event_id: event.id.clone(),
                        dedup_id: queue.fifo.then(|| match &self.dedup_suffix {
                            Some(suffix) => format!("{}#{suffix}", event.id),
                            None => event.id.clone(),
                        }),
                        event_type: event.event_type,
                        group_id: queue.fifo.then(|| group_id(event)),
                    },
                });
            }
        }
        Ok(true)
    }

    /// Park record `u` (see [`Fanout::parking_to`]); whether it is parked (else it is retried).
    async fn park(&self, records: &[EventRecord], u: &Unpublishable) -> bool {
        let Some(parked) = &self.parked else {
            return false;
        };
        let Some(record) = records.get(u.record) else {
            return false;
        };
        let message = message::parked_message(record, &self.table, u.queue.as_deref(), &u.reason);
        let sent = self.publisher.send_batch(parked, std::slice::from_ref(&message)).await;
        let ok = matches!(&sent, Ok(refused) if refused.is_empty());
        if ok {
            tracing::error!(
                sequence = record.change.sequence_number.as_deref().unwrap_or("-"),
                event_id = %message.event_id,
                reason = %u.reason,
                "record parked: it can never be published"
            );
            crate::metrics::emit_metric(|| {
                crate::metrics::emf_count("ParkedRecords", &[], chrono::Utc::now().timestamp_millis())
            });
        }
        ok
    }

    /// Send the batch's notes to the `timers` queue; the records whose notes were not taken.
    async fn feed_timers(&self, feed: crate::timers::Feed) -> Vec<usize> {
        let Some(queue) = &self.timers else {
            return Vec::new();
        };
        let now = chrono::Utc::now().timestamp_millis();
        let notes = feed
            .into_notes()
            .into_iter()
            .filter(|(_, note)| self.activity_due(note, now))
            .map(|(record, note)| {
                let (event_id, event_type) = match &note {
                    crate::timers::Note::Message(m) => (m.event_id.clone(), crate::EventType::MessageReceived),
                    crate::timers::Note::Activity(a) => {
                        (format!("activity:{}", a.last_event_id), crate::EventType::Unknown)
                    }
                    _ => (String::new(), crate::EventType::Unknown),
                };
                (record, note.to_json(), event_id, event_type)
            })
            .collect();
        self.send_notes(queue, usize::MAX, notes, "DroppedTimerNotes").await
    }

    /// Send the batch's media notes to the `media` queue; the records whose notes were not taken.
    async fn feed_media(&self, notes: Vec<(usize, crate::media::MediaNote)>) -> Vec<usize> {
        let Some(queue) = &self.media else {
            return Vec::new();
        };
        let notes = notes
            .into_iter()
            .map(|(record, note)| (record, note.to_json(), note.event_id, crate::EventType::MessageReceived))
            .collect();
        self.send_notes(queue, usize::MAX - 1, notes, "DroppedMediaNotes").await
    }

    /// Send the notes of the functions that follow the events (record, body, event id, type) to
    /// their standard `queue` (`slot` keeps its sends apart in the recent-sends memory); the
    /// records whose notes were not taken, to retry. A note SQS would refuse on every retry
    /// (notes are escaped and bounded: it should not happen) must not hold its shard: it is
    /// dropped, logged and counted as `dropped_metric`.
    async fn send_notes(
        &self,
        queue: &Queue,
        slot: usize,
        notes: Vec<(usize, String, String, crate::EventType)>,
        dropped_metric: &'static str,
    ) -> Vec<usize> {
        if notes.is_empty() {
            return Vec::new();
        }
        let pending = notes
            .into_iter()
            .map(|(record, body, event_id, event_type)| Pending {
                record,
                message: OutMessage {
                    entry_id: String::new(),
                    body,
                    event_id,
                    dedup_id: None,
                    event_type,
                    group_id: None,
                },
            })
            .collect();
        let (_, failed, refused) = self.send_to(queue, slot, pending).await;
        for u in refused {
            tracing::error!(reason = %u.reason, queue = %queue.name, "a note SQS would refuse was dropped");
            crate::metrics::emit_metric(|| {
                crate::metrics::emf_count(dropped_metric, &[], chrono::Utc::now().timestamp_millis())
            });
        }
        failed
    }

    /// Whether `note` goes: every message note; an activity note with a connection change, or
    /// when this container has not told of that instance for [`Fanout::activity_every`].
    fn activity_due(&self, note: &crate::timers::Note, now: i64) -> bool {
        let crate::timers::Note::Activity(a) = note else {
            return true;
        };
        let key = (a.scope.provider, a.scope.instance.clone(), a.scope.endpoint.clone());
        let mut sent = self.activity_sent.lock().unwrap_or_else(|p| p.into_inner());
        let due = a.connection.is_some() || !matches!(sent.get(&key), Some(at) if now - *at < self.activity_every_ms);
        if due {
            sent.insert(key, now);
        }
        due
    }

    /// Send one queue's messages in order, in batches; returns (accepted, failed record indexes,
    /// records no retry can publish).
    async fn send_queue(&self, q: usize, pending: Vec<Pending>) -> (usize, Vec<usize>, Vec<Unpublishable>) {
        let Some(queue) = self.routing.queues().get(q) else {
            return (0, pending.iter().map(|p| p.record).collect(), Vec::new());
        };
        self.send_to(queue, q, pending).await
    }

    /// [`Fanout::send_queue`] to `queue`, remembered as sent under index `q`.
    async fn send_to(&self, queue: &Queue, q: usize, pending: Vec<Pending>) -> (usize, Vec<usize>, Vec<Unpublishable>) {
        let mut accepted = 0;
        let mut failed = Vec::new();
        let mut refused_for_good = Vec::new();
        let mut blocked_groups: HashSet<String> = HashSet::new();
        let key = |m: &OutMessage| (q, m.dedup_id.clone().unwrap_or_else(|| m.event_id.clone()));
        // Already sent by an earlier attempt of this batch in this container: not again.
        let pending: Vec<Pending> = {
            let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            pending
                .into_iter()
                .filter(|p| {
                    let sent = recent.contains(&key(&p.message));
                    accepted += usize::from(sent);
                    !sent
                })
                .collect()
        };
        let mut rest = pending.into_iter().peekable();
        while rest.peek().is_some() {
            let batch = next_batch(&mut rest, &blocked_groups, &mut failed);
            let batch = without_unsendable(batch, queue, &mut refused_for_good);
            if batch.is_empty() {
                continue;
            }
            let messages: Vec<OutMessage> = batch.iter().map(|p| p.message.clone()).collect();
            let refused: HashSet<String> = match self.publisher.send_batch(queue, &messages).await {
                Ok(refused) => refused.into_iter().collect(),
                Err(e) => {
                    tracing::warn!(queue = %queue.name, error = %crate::error_chain(&e), "batch not sent; its records will be retried");
                    messages.iter().map(|m| m.entry_id.clone()).collect()
                }
            };
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            for p in batch {
                if refused.contains(&p.message.entry_id) {
                    if let Some(g) = &p.message.group_id {
                        blocked_groups.insert(g.clone());
                    }
                    failed.push(p.record);
                } else {
                    recent.insert(key(&p.message));
                    accepted += 1;
                }
            }
        }
        (accepted, failed, refused_for_good)
    }
}

/// The next batch of `rest`: ≤ 10 entries, ≤ 1 MiB, each numbered; the records of groups that
/// already failed go to `failed` instead (so they cannot overtake the failed message).
fn next_batch(
    rest: &mut std::iter::Peekable<std::vec::IntoIter<Pending>>,
    blocked_groups: &HashSet<String>,
    failed: &mut Vec<usize>,
) -> Vec<Pending> {
    let mut batch: Vec<Pending> = Vec::new();
    let mut bytes = 0;
    while let Some(p) = rest.peek() {
        let size = p.message.size();
        if batch.len() == MAX_BATCH_ENTRIES || (!batch.is_empty() && bytes + size > MAX_BATCH_BYTES) {
            break;
        }
        let Some(mut p) = rest.next() else { break };
        if p.message.group_id.as_ref().is_some_and(|g| blocked_groups.contains(g)) {
            failed.push(p.record);
            continue;
        }
        p.message.entry_id = format!("m{}", batch.len());
        bytes += size;
        batch.push(p);
    }
    batch
}

/// `batch` less the messages SQS would refuse on any retry (the rules are checked before
/// sending): their records go to `never`, to be parked; the rest of the batch goes.
fn without_unsendable(batch: Vec<Pending>, queue: &Queue, never: &mut Vec<Unpublishable>) -> Vec<Pending> {
    let mut sendable = Vec::with_capacity(batch.len());
    for p in batch {
        let check = crate::sqs_rules::check_batch(
            &entries_of(std::slice::from_ref(&p.message)),
            queue.fifo,
            queue.max_bytes,
        );
        match check {
            Ok(()) => sendable.push(p),
            Err(why) => never.push(Unpublishable {
                record: p.record,
                queue: Some(queue.name.clone()),
                reason: format!("SQS would refuse the message: {why}"),
            }),
        }
    }
    sendable
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{CloudEvent, EventType, StoredItemPointer};
    use crate::providers::compact_raw;

    fn queues() -> Vec<Queue> {
        DEFAULT_QUEUES
            .iter()
            .map(|n| {
                let fifo = *n != "presence";
                let url = format!("http://q/{n}{}", if fifo { ".fifo" } else { "" });
                Queue::new(*n, url, 1024 * 1024)
            })
            .collect()
    }

    #[test]
    fn default_routing_sends_every_type_somewhere() {
        let r = Routing::new(queues(), &Routing::routes_with(&[])).expect("complete");
        for t in EventType::ALL {
            assert_eq!(r.targets(t).count(), 1, "{t}");
        }
        assert_eq!(
            r.targets(EventType::MessageStatus).next().map(|q| q.name.as_str()),
            Some("statuses")
        );
        assert!(r.targets(EventType::MessageStatus).all(|q| q.fifo));
        assert!(
            r.targets(EventType::ChatPresence).all(|q| !q.fifo),
            "this test's presence queue is standard"
        );
    }

    #[test]
    fn overrides_replace_a_types_routes_and_may_fan_out() {
        let mut qs = queues();
        qs.push(Queue::new("audit", "http://q/audit", 1024));
        let o = Routing::parse_overrides("message.received=messages+audit; chat.presence=unrouted").expect("valid");
        let r = Routing::new(qs, &Routing::routes_with(&o)).expect("complete");
        let names: Vec<_> = r.targets(EventType::MessageReceived).map(|q| q.name.clone()).collect();
        assert_eq!(names, ["messages", "audit"]);
        let names: Vec<_> = r.targets(EventType::ChatPresence).map(|q| q.name.clone()).collect();
        assert_eq!(names, ["unrouted"]);
    }

    #[test]
    fn a_route_to_an_unconfigured_queue_is_refused_with_its_variable() {
        let o = Routing::parse_overrides("message.received=audit").expect("valid");
        let err = Routing::new(queues(), &Routing::routes_with(&o)).expect_err("audit has no URL");
        assert!(err.to_string().contains("WAHOOKS_QUEUE_AUDIT"), "{err}");
        assert!(Routing::parse_overrides("nonsense").is_err());
        assert!(Routing::parse_overrides("message.received=").is_err());
        assert!(Routing::parse_overrides("whatsapp.nope=messages").is_err());
    }

    fn event(id: &str, t: EventType, chat: &str, raw: &str) -> CloudEvent {
        let mut e = CloudEvent::new(
            id.into(),
            crate::Provider::Zapi,
            "I",
            t,
            Some(chat.into()),
            chrono::Utc::now(),
            "ep",
            chrono::Utc::now(),
            crate::event::EventData::new(compact_raw(raw.as_bytes()).expect("json")),
        );
        e.data.message_id = Some(format!("M-{id}"));
        e
    }

    /// The stream record Lambda delivers for a new item of `e`, as JSON.
    fn record(seq: usize, name: &str, e: &CloudEvent) -> serde_json::Value {
        use base64::Engine;
        let item = crate::store::event_item(e, 30);
        let s = |k: &str| item[k].as_s().expect("string key").clone();
        let body = base64::engine::general_purpose::STANDARD.encode(item["body"].as_b().expect("body").as_ref());
        serde_json::json!({
            "eventID": format!("e{seq}"), "eventName": name, "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
            "dynamodb": {
                "Keys": {"pk": {"S": s("pk")}, "sk": {"S": s("sk")}},
                "NewImage": {"pk": {"S": s("pk")}, "sk": {"S": s("sk")}, "body": {"B": body}},
                "SequenceNumber": format!("{seq:021}"), "SizeBytes": 100, "StreamViewType": "NEW_IMAGE"
            }
        })
    }

    fn stream(records: Vec<serde_json::Value>) -> StreamEvent {
        serde_json::from_value(serde_json::json!({ "Records": records })).expect("a Lambda stream event")
    }

    fn fanout(publisher: &MemoryPublisher) -> Fanout {
        let r = Routing::new(queues(), &Routing::routes_with(&[])).expect("complete");
        Fanout::new(r, Arc::new(publisher.clone()), "events")
    }

    fn failures(r: &DynamoDbEventResponse) -> Vec<String> {
        r.batch_item_failures
            .iter()
            .filter_map(|f| f.item_identifier.clone())
            .collect()
    }

    #[tokio::test]
    async fn batches_hold_at_most_ten_and_keep_stream_order() {
        let p = MemoryPublisher::new();
        let records = (0..25)
            .map(|i| {
                record(
                    i,
                    "INSERT",
                    &event(&format!("id{i:02}"), EventType::MessageReceived, "C", "{}"),
                )
            })
            .collect();
        let (response, stats) = fanout(&p).handle(&stream(records)).await;
        assert!(failures(&response).is_empty());
        assert_eq!(p.requests(), 3, "25 messages in batches of 10, 10 and 5");
        let ids: Vec<_> = p.sent().into_iter().map(|(_, m)| m.event_id).collect();
        let expected: Vec<_> = (0..25).map(|i| format!("id{i:02}")).collect();
        assert_eq!(ids, expected);
        assert_eq!((stats.events, stats.messages), (25, 25));
        let (queue, first) = &p.sent()[0];
        assert_eq!(queue, "messages");
        assert_eq!(first.group_id.as_deref(), Some("I#C"));
        let body: CloudEvent = serde_json::from_str(&first.body).expect("a CloudEvent");
        assert_eq!(
            body.data.raw.as_ref().map(|r| r.get()),
            Some("{}"),
            "raw restored from the item"
        );
    }

    #[tokio::test]
    async fn a_refused_entry_fails_its_record_and_holds_back_the_rest_of_its_group() {
        let p = MemoryPublisher::new();
        p.refuse(&["a2"]);
        // a1 a2 b1…b9 fill the first batch and the start of the second; a3 comes after.
        let mut evs = vec![("a1".to_owned(), "A"), ("a2".to_owned(), "A")];
        evs.extend((1..=9).map(|i| (format!("b{i}"), "B")));
        evs.push(("a3".to_owned(), "A"));
        let records = evs
            .iter()
            .enumerate()
            .map(|(i, (id, chat))| record(i, "INSERT", &event(id, EventType::MessageReceived, chat, "{}")))
            .collect();
        let f = fanout(&p);
        let (response, _) = f.handle(&stream(records)).await;
        assert_eq!(failures(&response), [format!("{:021}", 1), format!("{:021}", 11)]);
        let sent: Vec<_> = p.sent().into_iter().map(|(_, m)| m.event_id).collect();
        let mut expected = vec!["a1".to_owned()];
        expected.extend((1..=9).map(|i| format!("b{i}")));
        assert_eq!(sent, expected, "a3 is not sent ahead of a2; chat B is not held up");

        // Lambda retries from the first failed record: what was sent is not sent again.
        p.clear();
        p.refuse(&[]);
        let retry = evs
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, (id, chat))| record(i, "INSERT", &event(id, EventType::MessageReceived, chat, "{}")))
            .collect();
        let (response, stats) = f.handle(&stream(retry)).await;
        assert!(failures(&response).is_empty());
        let sent: Vec<_> = p.sent().into_iter().map(|(_, m)| m.event_id).collect();
        assert_eq!(sent, ["a2", "a3"], "only what was not sent before");
        assert_eq!(stats.messages, 11, "the skipped ones count as delivered");
    }

    #[tokio::test]
    async fn an_outage_fails_every_record_and_other_records_are_ignored() {
        let p = MemoryPublisher::new();
        p.set_down(true);
        let e = event("x", EventType::ChatPresence, "C", "{}");
        let mut quarantine = record(3, "INSERT", &e);
        quarantine["dynamodb"]["NewImage"]["pk"] = serde_json::json!({"S": "Q#abc"});
        quarantine["dynamodb"]["NewImage"]["sk"] = serde_json::json!({"S": "Q#1"});
        let mut corrupt = record(4, "INSERT", &event("y", EventType::MessageStatus, "C", "{}"));
        corrupt["dynamodb"]["NewImage"]["body"] = serde_json::json!({"B": "bm90IHpzdGQ="});
        let records = vec![
            record(0, "INSERT", &e),
            record(1, "MODIFY", &e),
            record(2, "REMOVE", &e),
            quarantine,
            corrupt,
        ];
        let (response, stats) = fanout(&p).handle(&stream(records)).await;
        assert_eq!(failures(&response), [format!("{:021}", 0), format!("{:021}", 4)]);
        assert_eq!(stats.ignored, 3);
        assert!(p.sent().is_empty());
    }

    #[test]
    fn too_large_for_the_queue_goes_without_raw_with_a_pointer() {
        let big = format!("{{\"text\":\"{}\"}}", "x".repeat(5000));
        let e = event("big", EventType::MessageReceived, "C", &big);
        let small = Queue::new("messages", "http://q/m.fifo", 2048);
        let pointer = StoredItemPointer {
            table: "events".into(),
            pk: crate::store::keys::event_pk(&e),
            sk: crate::store::keys::event_sk(&e.id),
        };
        let body = body_for(&e, &small, &pointer);
        assert!(body.len() <= 2048);
        let slim: CloudEvent = serde_json::from_str(&body).expect("event");
        assert!(slim.data.raw.is_none());
        let p = slim.data.stored_item.expect("pointer");
        assert_eq!(
            (p.table.as_str(), p.pk.as_str(), p.sk.as_str()),
            ("events", pointer.pk.as_str(), "E#big")
        );
        assert_eq!(slim.data.message_id.as_deref(), Some("M-big"));
        let roomy = Queue::new("messages", "http://q/m.fifo", 1024 * 1024);
        assert!(body_for(&e, &roomy, &pointer).contains("xxxxx"));
    }

    /// What a later wahooks could store: a type and fields this version does not know.
    fn from_a_later_version(e: &CloudEvent, filler: usize) -> String {
        let mut doc: serde_json::Value = serde_json::from_str(&e.to_json()).expect("json");
        doc["type"] = "whatsapp.message.scheduled".into();
        doc["extension"] = "kept".into();
        doc["data"]["hologram"] = serde_json::json!({"depth": 3, "filler": "y".repeat(filler)});
        doc.to_string()
    }

    #[tokio::test]
    async fn an_event_a_later_version_stored_is_published_as_stored() {
        use base64::Engine;
        let e = event("later", EventType::MessageReceived, "C", "{\"a\":1}");
        let json = from_a_later_version(&e, 0);
        let mut r = record(0, "INSERT", &e);
        let body = base64::engine::general_purpose::STANDARD.encode(crate::store::compress(json.as_bytes()));
        r["dynamodb"]["NewImage"]["body"] = serde_json::json!({ "B": body });
        let p = MemoryPublisher::default();
        let (response, stats) = fanout(&p).handle(&stream(vec![r])).await;
        assert!(failures(&response).is_empty());
        assert_eq!(stats.messages, 1);
        let sent = p.sent();
        // Routed as this version reads it (an unknown type: `unrouted`), carried as stored.
        assert_eq!(sent[0].1.event_type, EventType::Unknown);
        assert!(sent[0].0.contains("unrouted"), "{}", sent[0].0);
        assert_eq!(sent[0].1.body, json, "byte for byte");
    }

    #[tokio::test]
    async fn an_event_of_a_provider_this_version_does_not_know_is_published_as_stored() {
        use base64::Engine;
        let e = event("newer", EventType::MessageReceived, "C", "{\"a\":1}");
        let mut doc: serde_json::Value = serde_json::from_str(&e.to_json()).expect("json");
        doc["provider"] = "signalgateway".into();
        let json = doc.to_string();
        let mut r = record(0, "INSERT", &e);
        let body = base64::engine::general_purpose::STANDARD.encode(crate::store::compress(json.as_bytes()));
        r["dynamodb"]["NewImage"]["body"] = serde_json::json!({ "B": body });
        let p = MemoryPublisher::default();
        let (response, stats) = fanout(&p).parking_to("http://q/parked").handle(&stream(vec![r])).await;
        assert!(failures(&response).is_empty());
        assert_eq!((stats.messages, stats.parked), (1, 0), "published, not parked");
        let sent = p.sent();
        assert_eq!(sent[0].0, "messages", "routed by its type");
        assert_eq!(sent[0].1.body, json, "byte for byte");
        assert_eq!(sent[0].1.group_id.as_deref(), Some("I#C"));
    }

    #[test]
    fn a_slimmed_event_keeps_what_this_version_does_not_know() {
        let e = event(
            "later",
            EventType::MessageReceived,
            "C",
            &format!("{{\"text\":\"{}\"}}", "x".repeat(5000)),
        );
        let pointer = StoredItemPointer {
            table: "events".into(),
            pk: crate::store::keys::event_pk(&e),
            sk: crate::store::keys::event_sk(&e.id),
        };
        let small = Queue::new("messages", "http://q/m.fifo", 2048);
        let stored = |filler: usize| {
            let json = from_a_later_version(&e, filler);
            StoredEvent {
                event: serde_json::from_str(&json).expect("this version reads it"),
                json,
                pointer: pointer.clone(),
            }
        };
        // Without raw, with the pointer: the later fields stay.
        let slim: serde_json::Value = serde_json::from_str(&body_for_stored(&stored(0), &small)).expect("json");
        assert!(slim["data"].get("raw").is_none());
        assert_eq!(slim["data"]["stored_item"]["sk"], "E#later");
        assert_eq!(slim["data"]["hologram"]["depth"], 3);
        assert_eq!(
            (slim["type"].as_str(), slim["extension"].as_str()),
            (Some("whatsapp.message.scheduled"), Some("kept"))
        );
        // Still too large: only the ids and the pointer in `data`; the envelope as stored.
        let bare_body = body_for_stored(&stored(4000), &small);
        assert!(bare_body.len() <= 2048);
        let bare: serde_json::Value = serde_json::from_str(&bare_body).expect("json");
        let mut keys: Vec<&String> = bare["data"].as_object().expect("data").keys().collect();
        keys.sort();
        assert_eq!(keys, ["message_id", "stored_item"]);
        assert_eq!(bare["extension"], "kept");
    }

    /// Text of `n` bytes (a multi-byte character when `wide`).
    fn text(n: usize, wide: bool) -> String {
        if wide {
            "é".repeat(n / 2)
        } else {
            "A".repeat(n)
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(24))]
        #[test]
        fn every_events_smallest_message_fits_its_queue_whatever_the_body(
            sizes in proptest::collection::vec(proptest::sample::select(vec![0usize, 7, 300, 70_000, 1_200_000]), 6),
            wide in proptest::bool::ANY,
            max in proptest::sample::select(vec![2048usize, 256 * 1024, 1024 * 1024]),
            stored_before_bounds in proptest::bool::ANY,
        ) {
            let raw = format!("{{\"x\":\"{}\"}}", text(sizes[5], wide));
            let mut e = CloudEvent::new(
                "0123456789abcdef0123456789abcdef".into(),
                crate::Provider::Zapi,
                &text(sizes[0], wide),
                EventType::MessageReceived,
                Some(text(sizes[1], wide)),
                chrono::Utc::now(),
                "ep",
                chrono::Utc::now(),
                crate::event::EventData::new(compact_raw(raw.as_bytes()).expect("json")),
            );
            e.data.message_id = Some(text(sizes[2], wide));
            e.data.content = Some(crate::event::Content {
                text: Some(text(sizes[3], wide)),
                ..crate::event::Content::new(crate::event::ContentKind::Text)
            });
            e.data.notification = Some(text(sizes[4], wide));
            if stored_before_bounds {
                // What a version before the bounded envelope could have stored.
                e.instance = text(sizes[0], wide);
                e.source = format!("wahooks/zapi/{}", e.instance);
                e.subject = Some(text(sizes[1], wide));
                e.data.message_id = Some(text(sizes[2], wide));
            }
            let stored = StoredEvent {
                json: e.to_json(),
                event: e.clone(),
                pointer: StoredItemPointer {
                    table: "events".into(),
                    pk: crate::store::keys::event_pk(&e),
                    sk: crate::store::keys::event_sk(&e.id),
                },
            };
            let queue = Queue::new("messages", "http://q/m.fifo", max);
            for body in [body_for_stored(&stored, &queue), body_for(&e, &queue, &stored.pointer)] {
                let message = OutMessage {
                    entry_id: "m0".into(),
                    body,
                    event_id: e.id.clone(),
                    dedup_id: Some(e.id.clone()),
                    event_type: e.event_type,
                    group_id: Some(group_id(&e)),
                };
                proptest::prop_assert!(message.size() <= max, "{} > {max}", message.size());
                let checked = crate::sqs_rules::check_batch(&entries_of(std::slice::from_ref(&message)), true, max);
                proptest::prop_assert!(checked.is_ok(), "{checked:?}");
                let read: CloudEvent = serde_json::from_str(&message.body).expect("still an event");
                proptest::prop_assert_eq!(read.id, e.id.clone());
            }
        }
    }

    #[tokio::test]
    async fn a_record_no_retry_can_publish_is_parked_and_the_batch_moves_on() {
        let p = MemoryPublisher::new();
        let good = event("good", EventType::MessageReceived, "C", "{}");
        let mut unreadable = record(1, "INSERT", &event("bad", EventType::MessageReceived, "C", "{}"));
        unreadable["dynamodb"]["NewImage"]["body"] = serde_json::json!({"B": "bm90IHpzdGQ="});
        let after = event("after", EventType::MessageReceived, "C", "{}");
        let records = vec![record(0, "INSERT", &good), unreadable, record(2, "INSERT", &after)];
        // Without a parked queue: retried (the old behaviour).
        let (response, _) = fanout(&p).handle(&stream(records.clone())).await;
        assert_eq!(failures(&response), [format!("{:021}", 1)]);
        p.clear();
        let f = fanout(&p).parking_to("http://q/parked");
        let (response, stats) = f.handle(&stream(records)).await;
        assert!(failures(&response).is_empty(), "nothing holds the shard");
        assert_eq!(stats.parked, 1);
        let sent = p.sent();
        let parked: Vec<_> = sent.iter().filter(|(q, _)| q == "parked").collect();
        assert_eq!(parked.len(), 1);
        let note: serde_json::Value = serde_json::from_str(&parked[0].1.body).expect("json");
        assert_eq!(note["event_id"], "bad");
        assert_eq!(note["stored_item"]["sk"], "E#bad");
        assert_eq!(note["sequence_number"], format!("{:021}", 1));
        assert!(note["parked"].as_str().unwrap_or_default().contains("zstd"), "{note}");
        let published: Vec<_> = sent
            .iter()
            .filter(|(q, _)| q == "messages")
            .map(|(_, m)| m.event_id.clone())
            .collect();
        assert_eq!(published, ["good", "after"]);
        // A parked queue that is down: the record is retried, not lost.
        p.clear();
        p.set_down(true);
        let mut unreadable = record(1, "INSERT", &event("bad", EventType::MessageReceived, "C", "{}"));
        unreadable["dynamodb"]["NewImage"]["body"] = serde_json::json!({"B": "bm90IHpzdGQ="});
        let (response, stats) = f.handle(&stream(vec![unreadable])).await;
        assert_eq!((failures(&response).len(), stats.parked), (1, 0));
    }

    #[tokio::test]
    async fn a_message_sqs_would_refuse_on_every_retry_is_parked_not_retried_for_12_hours() {
        let p = MemoryPublisher::new();
        // An id SQS refuses as a deduplication id (an item no version of ours writes).
        let mut odd = event("x", EventType::MessageReceived, "C", "{}");
        odd.id = "i".repeat(200);
        let fine = event("fine", EventType::MessageReceived, "C", "{}");
        let f = fanout(&p).parking_to("http://q/parked");
        let (response, stats) = f
            .handle(&stream(vec![record(0, "INSERT", &odd), record(1, "INSERT", &fine)]))
            .await;
        assert!(failures(&response).is_empty());
        assert_eq!(stats.parked, 1);
        let sent = p.sent();
        assert!(sent.iter().any(|(q, m)| q == "messages" && m.event_id == "fine"));
        let parked = sent.iter().find(|(q, _)| q == "parked").expect("parked");
        assert!(parked.1.body.contains("DeduplicationId"), "{}", parked.1.body);
    }

    #[test]
    fn group_ids_are_valid_for_any_chat_and_readable_when_they_can_be() {
        let raw = compact_raw(b"{}").expect("json");
        let mut e = CloudEvent::new(
            "id".into(),
            crate::Provider::Zapi,
            "I",
            EventType::MessageReceived,
            Some("é".repeat(100)),
            chrono::Utc::now(),
            "ep",
            chrono::Utc::now(),
            crate::event::EventData::new(raw),
        );
        assert!(group_id(&e).len() <= 128);
        e.subject = Some("5511".into());
        assert_eq!(group_id(&e), "I#5511");
    }

    #[tokio::test]
    async fn the_timers_hear_of_inbound_messages_and_traffic_and_a_refused_note_is_retried() {
        let p = MemoryPublisher::new();
        let f = fanout(&p).feeding_timers("http://q/timers");
        let mut inbound = event("in1", EventType::MessageReceived, "C", "{}");
        inbound.data.from_me = Some(false);
        let status = event("st1", EventType::MessageStatus, "C", "{}");
        let records = vec![record(0, "INSERT", &inbound), record(1, "INSERT", &status)];
        let (response, _) = f.handle(&stream(records.clone())).await;
        assert!(failures(&response).is_empty());
        let notes: Vec<crate::timers::Note> = p
            .sent()
            .into_iter()
            .filter(|(q, _)| q == "timers")
            .map(|(_, m)| serde_json::from_str(&m.body).expect("a note"))
            .collect();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(matches!(&notes[0], crate::timers::Note::Message(m) if m.event_id == "in1"));
        assert!(matches!(&notes[1], crate::timers::Note::Activity(a) if a.events == 2));
        // The activity note refused: its record fails, though every message was published.
        let p = MemoryPublisher::new();
        let f = fanout(&p).feeding_timers("http://q/timers");
        p.refuse(&["activity:st1"]);
        let (response, stats) = f.handle(&stream(records.clone())).await;
        assert_eq!(stats.messages, 2, "both events published");
        assert_eq!(failures(&response), vec![format!("{:021}", 1)], "its record is retried");
        // A replay makes no turns: it tells the timers nothing.
        let p = MemoryPublisher::new();
        let f = fanout(&p).feeding_timers("http://q/timers").for_replay("r1");
        f.handle(&stream(records)).await;
        assert!(p.sent().iter().all(|(q, _)| q != "timers"));
    }
}
