//! Where an event is published: the outbox. The `fanout` Lambda receives the events table's
//! stream (NEW_IMAGE), rebuilds each new event's CloudEvent from its item, and sends it to the
//! queue(s) its type routes to (DESIGN.md §2 step 6, §5).
//!
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

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde_dynamo::AttributeValue;

use crate::event::{CloudEvent, EventType, StoredItemPointer};
use crate::sqs_rules::{check_batch, escape_body, Entry, GroupId};
use crate::store::{event_of_item, keys};

pub use crate::sqs_rules::{MAX_BATCH_BYTES, MAX_BATCH_ENTRIES};

/// The default routing of DESIGN.md §5: event type → queue name.
pub const DEFAULT_ROUTES: [(EventType, &str); 12] = [
    (EventType::MessageReceived, "messages"),
    (EventType::MessageSent, "messages"),
    (EventType::Notification, "messages"),
    (EventType::MessageStatus, "statuses"),
    (EventType::InstanceConnected, "instance"),
    (EventType::InstanceDisconnected, "instance"),
    (EventType::InstanceInitialData, "instance"),
    (EventType::InstanceProxyFailed, "instance"),
    (EventType::ContactBlocked, "instance"),
    (EventType::TemplateUpdated, "instance"),
    (EventType::ChatPresence, "presence"),
    (EventType::Unknown, "unrouted"),
];

/// The queue names of the default routing, in the README's order.
pub const DEFAULT_QUEUES: [&str; 5] = ["messages", "statuses", "instance", "presence", "unrouted"];

/// One destination queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// The logical name used in routing (`messages`, `statuses`…).
    pub name: String,
    /// The queue URL.
    pub url: String,
    /// Whether it is a FIFO queue (its URL ends in `.fifo`).
    pub fifo: bool,
    /// The queue's `MaximumMessageSize` (body plus attributes).
    pub max_bytes: usize,
}

impl Queue {
    /// A queue; FIFO is read from the URL.
    pub fn new(name: impl Into<String>, url: impl Into<String>, max_bytes: usize) -> Queue {
        let url = url.into();
        Queue {
            name: name.into(),
            fifo: url.ends_with(".fifo"),
            url,
            max_bytes,
        }
    }
}

/// Why a routing configuration is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RoutingError {
    /// A route names a queue that has no URL.
    #[error("event type {event_type} is routed to queue `{queue}`, which has no URL (set WAHOOKS_QUEUE_{env})")]
    MissingQueue {
        /// The type.
        event_type: String,
        /// The queue name.
        queue: String,
        /// The variable to set.
        env: String,
    },
    /// `WAHOOKS_ROUTES` could not be read.
    #[error("WAHOOKS_ROUTES: {0}")]
    BadRoutes(String),
    /// A routed queue cannot be read: it does not exist, or the function may not use it.
    #[error("queue `{queue}` ({env}) cannot be reached: {detail}; check the URL, and grant the fanout sqs:SendMessage and sqs:GetQueueAttributes on it (in the template: the ExtraQueue parameters)")]
    Unreachable {
        /// The queue name.
        queue: String,
        /// Its variable.
        env: String,
        /// What SQS answered.
        detail: String,
    },
}

/// Event type → queues. Every type routes somewhere: a type with no route goes to `unrouted`.
#[derive(Debug, Clone)]
pub struct Routing {
    queues: Vec<Queue>,
    routes: HashMap<EventType, Vec<usize>>,
}

/// The environment variable holding a queue's URL: `WAHOOKS_QUEUE_<NAME>`.
pub fn queue_env_var(name: &str) -> String {
    format!("WAHOOKS_QUEUE_{}", name.to_ascii_uppercase().replace('-', "_"))
}

impl Routing {
    /// Build from queues and (type, queue name) routes. Types without a route go to `unrouted`.
    pub fn new(queues: Vec<Queue>, routes: &[(EventType, String)]) -> Result<Routing, RoutingError> {
        let index: HashMap<&str, usize> = queues.iter().enumerate().map(|(i, q)| (q.name.as_str(), i)).collect();
        let mut table: HashMap<EventType, Vec<usize>> = HashMap::new();
        let mut resolve = |t: EventType, name: &str| -> Result<(), RoutingError> {
            let i = *index.get(name).ok_or_else(|| RoutingError::MissingQueue {
                event_type: t.as_str().to_owned(),
                queue: name.to_owned(),
                env: queue_env_var(name).trim_start_matches("WAHOOKS_QUEUE_").to_owned(),
            })?;
            let targets = table.entry(t).or_default();
            if !targets.contains(&i) {
                targets.push(i);
            }
            Ok(())
        };
        for (t, name) in routes {
            resolve(*t, name)?;
        }
        let unrouted: Vec<EventType> = EventType::ALL
            .into_iter()
            .filter(|t| !routes.iter().any(|(r, _)| r == t))
            .collect();
        for t in unrouted {
            resolve(t, "unrouted")?;
        }
        Ok(Routing { queues, routes: table })
    }

    /// The default routes (DESIGN.md §5) with `overrides` applied: each override replaces
    /// every route of its type.
    pub fn routes_with(overrides: &[(EventType, Vec<String>)]) -> Vec<(EventType, String)> {
        let mut routes: Vec<(EventType, String)> = DEFAULT_ROUTES
            .iter()
            .filter(|(t, _)| !overrides.iter().any(|(o, _)| o == t))
            .map(|(t, q)| (*t, (*q).to_owned()))
            .collect();
        for (t, queues) in overrides {
            routes.extend(queues.iter().map(|q| (*t, q.clone())));
        }
        routes
    }

    /// Read `WAHOOKS_ROUTES`: `type=queue[+queue…]` entries separated by `,` or `;`, e.g.
    /// `message.received=messages+audit,chat.presence=unrouted`.
    pub fn parse_overrides(spec: &str) -> Result<Vec<(EventType, Vec<String>)>, RoutingError> {
        spec.split([',', ';'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|entry| {
                let (t, qs) = entry
                    .split_once('=')
                    .ok_or_else(|| RoutingError::BadRoutes(format!("`{entry}` is not type=queue[+queue]")))?;
                let t: EventType = t.trim().parse().map_err(RoutingError::BadRoutes)?;
                let queues: Vec<String> = qs
                    .split('+')
                    .map(str::trim)
                    .filter(|q| !q.is_empty())
                    .map(str::to_owned)
                    .collect();
                if queues.is_empty() {
                    return Err(RoutingError::BadRoutes(format!("`{entry}` names no queue")));
                }
                Ok((t, queues))
            })
            .collect()
    }

    /// The queues an event type goes to.
    pub fn targets(&self, t: EventType) -> impl Iterator<Item = &Queue> {
        self.routes
            .get(&t)
            .into_iter()
            .flatten()
            .filter_map(|i| self.queues.get(*i))
    }

    /// Every configured queue.
    pub fn queues(&self) -> &[Queue] {
        &self.queues
    }
}

/// One message for a queue.
#[derive(Debug, Clone, PartialEq)]
pub struct OutMessage {
    /// The batch entry id (unique within a batch).
    pub entry_id: String,
    /// The CloudEvent JSON.
    pub body: String,
    /// The event id (the `id` attribute).
    pub event_id: String,
    /// FIFO only: the deduplication id (the event id; `<id>#<replay>` for a replay).
    pub dedup_id: Option<String>,
    /// The event type (the `type` attribute).
    pub event_type: EventType,
    /// FIFO only: `instance#chat`.
    pub group_id: Option<String>,
}

impl OutMessage {
    /// What SQS counts against `MaximumMessageSize`: the body plus each attribute's name, type
    /// and value.
    pub fn size(&self) -> usize {
        self.body.len() + attributes_size(&self.event_id, self.event_type)
    }
}

fn attributes_size(id: &str, t: EventType) -> usize {
    ("id".len() + "String".len() + id.len()) + ("type".len() + "String".len() + t.as_str().len())
}

/// A batch send that failed as a whole (every entry is to be retried).
#[derive(Debug, thiserror::Error)]
#[error("queue unavailable: {0}")]
pub struct PublishError(pub String);

/// The port: send one batch (≤ 10 entries) to one queue.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// Send `batch` to `queue`; returns the entry ids SQS refused (the rest were accepted).
    async fn send_batch(&self, queue: &Queue, batch: &[OutMessage]) -> Result<Vec<String>, PublishError>;
}

/// The SQS adapter.
#[derive(Clone)]
pub struct SqsPublisher {
    client: aws_sdk_sqs::Client,
}

impl SqsPublisher {
    /// An adapter over `client`.
    pub fn new(client: aws_sdk_sqs::Client) -> Self {
        SqsPublisher { client }
    }

    /// Read a queue's `MaximumMessageSize` (once, at init); why not, if it cannot be read.
    pub async fn max_message_size(&self, url: &str) -> Result<usize, String> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::MaximumMessageSize)
            .send()
            .await
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
        out.attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::MaximumMessageSize))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| "the queue has no MaximumMessageSize".to_owned())
    }
}

#[async_trait]
impl Publisher for SqsPublisher {
    async fn send_batch(&self, queue: &Queue, batch: &[OutMessage]) -> Result<Vec<String>, PublishError> {
        use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
        // What SQS would refuse is refused here, before the request (the stand-in takes anything).
        check_batch(&entries_of(batch), queue.fifo, queue.max_bytes)
            .map_err(|v| PublishError(format!("SQS would refuse this batch: {v}")))?;
        let attr = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .map_err(|e| PublishError(e.to_string()))
        };
        let mut entries = Vec::with_capacity(batch.len());
        for m in batch {
            let entry = SendMessageBatchRequestEntry::builder()
                .id(&m.entry_id)
                .message_body(&m.body)
                .message_attributes("id", attr(&m.event_id)?)
                .message_attributes("type", attr(m.event_type.as_str())?)
                .set_message_group_id(m.group_id.clone())
                .set_message_deduplication_id(m.dedup_id.clone())
                .build()
                .map_err(|e| PublishError(e.to_string()))?;
            entries.push(entry);
        }
        let out = self
            .client
            .send_message_batch()
            .queue_url(&queue.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| PublishError(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string()))?;
        Ok(out.failed().iter().map(|f| f.id().to_owned()).collect())
    }
}

/// A batch as SQS sees it, for [`check_batch`].
pub fn entries_of(batch: &[OutMessage]) -> Vec<Entry<'_>> {
    batch
        .iter()
        .map(|m| Entry {
            id: &m.entry_id,
            body: &m.body,
            attributes_bytes: attributes_size(&m.event_id, m.event_type),
            group_id: m.group_id.as_deref(),
            dedup_id: m.dedup_id.as_deref(),
        })
        .collect()
}

/// An in-memory publisher for unit tests and benches: records every message and request, with
/// an outage switch.
#[derive(Default, Clone)]
pub struct MemoryPublisher {
    sent: Arc<Mutex<Vec<(String, OutMessage)>>>,
    requests: Arc<Mutex<usize>>,
    down: Arc<Mutex<bool>>,
    refused: Arc<Mutex<HashSet<String>>>,
}

impl MemoryPublisher {
    /// An empty publisher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every (queue name, message) sent, in order.
    pub fn sent(&self) -> Vec<(String, OutMessage)> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many `SendMessageBatch` requests were made.
    pub fn requests(&self) -> usize {
        *self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forget what was sent.
    pub fn clear(&self) {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clear();
        *self.requests.lock().unwrap_or_else(|p| p.into_inner()) = 0;
    }

    /// Refuse the entries of these event ids (a partial batch failure).
    pub fn refuse(&self, event_ids: &[&str]) {
        let mut r = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        r.clear();
        r.extend(event_ids.iter().map(|s| (*s).to_owned()));
    }

    /// Simulate an SQS outage, or end it.
    pub fn set_down(&self, down: bool) {
        *self.down.lock().unwrap_or_else(|p| p.into_inner()) = down;
    }
}

#[async_trait]
impl Publisher for MemoryPublisher {
    async fn send_batch(&self, queue: &Queue, batch: &[OutMessage]) -> Result<Vec<String>, PublishError> {
        *self.requests.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        if *self.down.lock().unwrap_or_else(|p| p.into_inner()) {
            return Err(PublishError("in-memory queue is down".into()));
        }
        check_batch(&entries_of(batch), queue.fifo, queue.max_bytes)
            .map_err(|v| PublishError(format!("SQS would refuse this batch: {v}")))?;
        let refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let mut failed = Vec::new();
        for m in batch {
            if refused.contains(&m.event_id) {
                failed.push(m.entry_id.clone());
            } else {
                sent.push((queue.name.clone(), m.clone()));
            }
        }
        Ok(failed)
    }
}

/// Why a stream record could not be turned back into an event.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The item's `body` is missing or is not a compressed CloudEvent.
    #[error("the item's body is unreadable")]
    BadBody(#[from] crate::store::ItemError),
}

/// Rebuild the CloudEvent of a new event item (from a stream NEW_IMAGE): the stored event,
/// `data.raw` included, and the item's keys (for a pointer). `None` for items that are not
/// events (quarantine).
pub fn event_from_image(
    image: &HashMap<String, AttributeValue>,
) -> Result<Option<(CloudEvent, StoredItemPointer)>, RecordError> {
    let key = |k: &str| match image.get(k) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    };
    let (Some(pk), Some(sk)) = (key("pk"), key("sk")) else {
        return Ok(None);
    };
    if !keys::is_event_sk(&sk) {
        return Ok(None);
    }
    let body = match image.get("body") {
        Some(AttributeValue::B(b)) => Some(b.as_slice()),
        _ => None,
    };
    let event = event_of_item(body)?;
    Ok(Some((
        event,
        StoredItemPointer {
            table: String::new(),
            pk,
            sk,
        },
    )))
}

/// The message body for `queue`: the whole CloudEvent, or, when that is too large for the
/// queue, the event without `data.raw` and with a pointer to its item (and, if even that is
/// too large, only the pointer and the ids a worker needs to fetch it).
/// SQS refuses some characters in a body; escaped, the JSON reads back the same.
pub fn body_for(event: &CloudEvent, queue: &Queue, pointer: &StoredItemPointer) -> String {
    let room = queue
        .max_bytes
        .saturating_sub(attributes_size(&event.id, event.event_type));
    let full = escape_body(event.to_json());
    if full.len() <= room {
        return full;
    }
    let mut slim = event.clone();
    slim.data.raw = None;
    slim.data.stored_item = Some(pointer.clone());
    let body = escape_body(slim.to_json());
    if body.len() <= room {
        return body;
    }
    let mut bare = slim;
    bare.data = crate::event::EventData {
        message_id: event.data.message_id.clone(),
        stored_item: Some(pointer.clone()),
        ..Default::default()
    };
    escape_body(bare.to_json())
}

/// The FIFO group of an event: one per chat of an instance, so each chat's events stay in
/// order (SQS FIFO orders messages within a group), valid whatever the chat id holds.
pub fn group_id(event: &CloudEvent) -> String {
    GroupId::for_chat(&event.instance, event.chat_key()).as_str().to_owned()
}

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
}

/// A bounded set of (queue, dedup id) pairs, oldest forgotten first.
#[derive(Default)]
struct RecentlySent {
    set: HashSet<(usize, String)>,
    order: std::collections::VecDeque<(usize, String)>,
}

impl RecentlySent {
    const CAPACITY: usize = 20_000;

    fn contains(&self, key: &(usize, String)) -> bool {
        self.set.contains(key)
    }

    fn insert(&mut self, key: (usize, String)) {
        if self.set.insert(key.clone()) {
            self.order.push_back(key);
            if self.order.len() > Self::CAPACITY {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

struct Pending {
    record: usize,
    message: OutMessage,
}

impl Fanout {
    /// A handler publishing through `publisher`; `table` is named in stored-item pointers.
    pub fn new(routing: Routing, publisher: Arc<dyn Publisher>, table: impl Into<String>) -> Fanout {
        Fanout {
            routing: Arc::new(routing),
            publisher,
            table: table.into(),
            dedup_suffix: None,
            recent: Arc::default(),
        }
    }

    /// A fanout for replays: FIFO deduplication ids become `<event id>#<suffix>`, so SQS does
    /// not drop a replay sent within 5 minutes of the original; the event id (body and `id`
    /// attribute) is unchanged, and consumers dedupe on it.
    pub fn for_replay(mut self, suffix: impl Into<String>) -> Fanout {
        self.dedup_suffix = Some(suffix.into());
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
        let mut per_queue: Vec<Vec<Pending>> = self.routing.queues().iter().map(|_| Vec::new()).collect();
        for (i, record) in event.records.iter().enumerate() {
            match self.messages_for(record, &mut per_queue, i, &mut stats) {
                Ok(true) => stats.events += 1,
                Ok(false) => stats.ignored += 1,
                Err(e) => {
                    tracing::error!(
                        sequence = record.change.sequence_number.as_deref().unwrap_or("-"),
                        error = %e,
                        "stream record could not be read"
                    );
                    failed_records.insert(i);
                }
            }
        }
        let sends = per_queue
            .into_iter()
            .enumerate()
            .filter(|(_, p)| !p.is_empty())
            .map(|(q, pending)| self.send_queue(q, pending));
        for (accepted, failed) in futures::future::join_all(sends).await {
            stats.messages += accepted;
            failed_records.extend(failed);
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

    /// Queue the messages of one record; `Ok(false)` when the record is not a new event.
    fn messages_for(
        &self,
        record: &EventRecord,
        per_queue: &mut [Vec<Pending>],
        index: usize,
        stats: &mut FanoutStats,
    ) -> Result<bool, RecordError> {
        if record.event_name != "INSERT" {
            return Ok(false);
        }
        let Some((event, mut pointer)) = event_from_image(record.change.new_image.inner())? else {
            return Ok(false);
        };
        pointer.table.clone_from(&self.table);
        let queues = self.routing.queues();
        for (q, queue) in queues.iter().enumerate() {
            if !self.routing.targets(event.event_type).any(|t| t == queue) {
                continue;
            }
            let body = body_for(&event, queue, &pointer);
            if event.data.raw.is_some() && !body.contains("\"raw\":") {
                stats.slimmed += 1;
                // Workers read such an event's body from the table: worth a metric.
                crate::http::emit_metric(|| {
                    crate::http::emf_count(
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
                        group_id: queue.fifo.then(|| group_id(&event)),
                    },
                });
            }
        }
        Ok(true)
    }

    /// Send one queue's messages in order, in batches; returns (accepted, failed record indexes).
    async fn send_queue(&self, q: usize, pending: Vec<Pending>) -> (usize, Vec<usize>) {
        let Some(queue) = self.routing.queues().get(q) else {
            return (0, pending.iter().map(|p| p.record).collect());
        };
        let mut accepted = 0;
        let mut failed = Vec::new();
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
            // Fill a batch: ≤ 10 entries, ≤ 1 MiB, skipping groups that already failed.
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
            if batch.is_empty() {
                continue;
            }
            let messages: Vec<OutMessage> = batch.iter().map(|p| p.message.clone()).collect();
            let refused: HashSet<String> = match self.publisher.send_batch(queue, &messages).await {
                Ok(refused) => refused.into_iter().collect(),
                Err(e) => {
                    tracing::warn!(queue = %queue.name, error = %e, "batch not sent; its records will be retried");
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
        (accepted, failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
