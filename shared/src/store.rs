//! Where an event is stored: the `EventStore` port, its DynamoDB adapter (the `events` table)
//! and an in-memory adapter for unit tests.
//!
//! The table is partitioned by chat: an event's item is `pk = C#<provider>#<instance>#<chat>`,
//! `sk = E#<event id>` ([`keys`]). A chat's events share a partition, so a chat's timeline is one
//! `Query`, and its records share a stream shard, where DynamoDB Streams keeps write order; a
//! webhook's events are written in body order within each chat for that reason. Each event is
//! one conditional put (`attribute_not_exists(pk)`): the first write wins, a redelivery is a
//! no-op, and a webhook carrying several events can be retried after a partial failure and
//! stores only what is missing. The id always names one chat (it is hashed over the chat, see
//! [`crate::identity`]), so a redelivery always lands on the same item.
//!
//! An item holds only what a key or a filter needs as plain attributes (`type`, `received_at`,
//! `expires_at`, the message index keys) and the CloudEvent itself, `data.raw` included,
//! zstd-compressed in `body`: most items stay under the 1 KB a write unit buys. The one index,
//! `gsi1` (a message's lifecycle), is sparse (events with a message id) and keys-only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use sha2::{Digest, Sha256};

use serde_json::value::RawValue;

use crate::bucket::BodyBucket;
use crate::event::{CloudEvent, RawPointer, StateChange};

/// DynamoDB's item size limit.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// How long events are kept before DynamoDB's TTL removes them (default; `WAHOOKS_RETENTION_DAYS`).
pub const DEFAULT_RETENTION_DAYS: i64 = 30;

/// The keys of the events table: one place that says how an event, a quarantined body and the
/// message index are addressed.
pub mod keys {
    use sha2::{Digest, Sha256};

    use crate::event::CloudEvent;

    // A key part (the provider's text, or `~<hash>` when it is too long or holds `#`) and an
    // alias item's keys are the event crate's: workers address alias items too.
    // The endpoints table's alias items (the identity map): workers address them too.
    pub use crate::event::contact::alias_pk;
    pub use crate::event::item::{key_part as part, MAX_VERBATIM_PART};

    /// The endpoints table's items of URL tokens start with this.
    pub const ENDPOINT_PREFIX: &str = "EP#";
    /// The endpoints table's instance ownership records start with this.
    pub const INSTANCE_PREFIX: &str = "IN#";

    /// The endpoints table's key of a URL token: `EP#<hex sha256(token)>` (the token itself is
    /// never stored).
    pub fn token_key(token: &str) -> String {
        format!("{ENDPOINT_PREFIX}{}", hex::encode(Sha256::digest(token.as_bytes())))
    }

    /// The endpoints table's version record of endpoint `id`: `ID#<id>`.
    pub fn version_key(id: &str) -> String {
        format!("ID#{id}")
    }

    /// The endpoints table's ownership record of an instance: `IN#<provider>#<instance>`.
    pub fn instance_key(provider: crate::Provider, instance: &str) -> String {
        format!("{INSTANCE_PREFIX}{}#{}", provider.as_str(), part(instance))
    }

    /// The partition of a chat: `C#<provider>#<instance>#<chat>` (`-` for events without one).
    pub fn chat_partition(provider: &str, instance: &str, chat: &str) -> String {
        format!("C#{}#{}#{}", part(provider), part(instance), part(chat))
    }

    /// An event's partition key.
    pub fn event_pk(e: &CloudEvent) -> String {
        chat_partition(e.provider.as_str(), &e.instance, e.chat_key())
    }

    /// An event's sort key: `E#<event id>`.
    pub fn event_sk(event_id: &str) -> String {
        format!("E#{event_id}")
    }

    /// Whether a sort key is an event's.
    pub fn is_event_sk(sk: &str) -> bool {
        sk.starts_with("E#")
    }

    /// The event id of an event sort key.
    pub fn event_id_of_sk(sk: &str) -> Option<&str> {
        sk.strip_prefix("E#")
    }

    /// The message index key of an event with a message id: `M#<provider>#<instance>#<message id>`.
    pub fn message_key(provider: &str, instance: &str, message_id: &str) -> String {
        format!("M#{}#{}#{}", part(provider), part(instance), part(message_id))
    }

    /// A body item's partition key: `B#<sha256 of the raw JSON>` (a webhook's body kept once for
    /// several events, or for an event too large to carry it; see [`super::place`]).
    pub fn body_pk(sha256_hex: &str) -> String {
        format!("B#{sha256_hex}")
    }

    /// A body item's sort key.
    pub const BODY_SK: &str = "B";

    /// A quarantined body's partition key: `Q#<sha256 of the body>`.
    pub fn quarantine_pk(sha256_hex: &str) -> String {
        format!("Q#{sha256_hex}")
    }

    /// A quarantined body's sort key: `Q#<when it was received, ms>`.
    pub fn quarantine_sk(received_at_ms: i64) -> String {
        format!("Q#{received_at_ms}")
    }

    /// The sort key of a chat's (or instance's) state of `kind`: `S#<kind>`.
    pub fn state_sk(kind: &str) -> String {
        format!("S#{kind}")
    }

    /// The message index's sort key of an event: `<time, ms, 13 digits>#<event id>` (a
    /// message's events in time order).
    pub fn message_sk(time_ms: i64, event_id: &str) -> String {
        format!("{time_ms:013}#{event_id}")
    }

    /// Whether a partition key is a quarantined body's.
    pub fn is_quarantine_pk(pk: &str) -> bool {
        pk.starts_with("Q#")
    }
}

/// What happened to one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// Stored now.
    Stored,
    /// Already stored by an earlier delivery: nothing written.
    Duplicate,
}

/// Why the store could not take an event.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// DynamoDB is unreachable, throttling, failing or misconfigured (a missing table or
    /// permission is fixed by the operator): the provider should retry (503).
    #[error("the event store is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The item would exceed DynamoDB's 400 KB limit (413); nothing was written.
    #[error("the event would be a {size}-byte item, over DynamoDB's {MAX_ITEM_BYTES}-byte limit")]
    TooLarge {
        /// The computed item size.
        size: usize,
    },
    /// DynamoDB refused the item itself (a `ValidationException`): retrying can never succeed.
    #[error("DynamoDB refused the event: {0}")]
    Rejected(String),
}

impl From<crate::bucket::BucketError> for StoreError {
    fn from(e: crate::bucket::BucketError) -> Self {
        match e {
            crate::bucket::BucketError::Refused(why) => StoreError::Rejected(why),
            crate::bucket::BucketError::Unavailable(cause) => StoreError::Unavailable(cause),
        }
    }
}

impl StoreError {
    /// An outage, with its cause kept for the log.
    pub fn unavailable(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError::Unavailable(cause.into())
    }
}

/// The port: store events once, keep undecodable bodies aside.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Store each event if absent. Outcomes are in input order. A chat's events are written in
    /// input order, one after the other (so its stream records keep that order); different
    /// chats at once. On error some events may already be stored: a retry stores the rest and
    /// reports those as duplicates.
    async fn put_if_absent(&self, events: &[CloudEvent]) -> Result<Vec<PutOutcome>, StoreError>;

    /// Keep an authenticated body that could not be decoded or stored (a quarantine item).
    async fn quarantine(&self, item: Quarantined) -> Result<(), StoreError>;

    /// How many times the state `change.kind` of `event`'s chat (or instance) has changed, this
    /// change included: the same value as the last one leaves the count as it is (a
    /// redelivery), any other value adds one and becomes the last. State events get their id
    /// from it ([`crate::identity::state_event_id`]). Kept in the chat's partition
    /// (`sk = S#<kind>`), so a retry after a failed put finds the same count.
    async fn state_sequence(&self, event: &CloudEvent, change: &StateChange) -> Result<u64, StoreError>;
}

/// Give every state event its id: ask the store for its state's count, then derive the id.
pub async fn resolve_state_ids(store: &dyn EventStore, events: &mut [CloudEvent]) -> Result<(), StoreError> {
    for e in events.iter_mut() {
        if let Some(change) = e.state.clone() {
            let seq = store.state_sequence(e, &change).await?;
            e.id = crate::identity::state_event_id(e, &change, seq);
        }
    }
    Ok(())
}

/// An authenticated body we could not decode or store, kept for inspection and re-parsing.
#[derive(Debug, Clone)]
pub struct Quarantined {
    /// The endpoint it arrived on.
    pub endpoint: String,
    /// Its provider.
    pub provider: String,
    /// The route it arrived on.
    pub route: String,
    /// The provider's delivery id, when the request carried one.
    pub delivery_id: Option<String>,
    /// The endpoint's tenant (a re-parse files the events as the receiver would have).
    pub tenant: Option<String>,
    /// Why it could not be decoded or stored.
    pub reason: String,
    /// The body.
    pub raw: Vec<u8>,
    /// Receive time, epoch ms.
    pub received_at_ms: i64,
}

/// The DynamoDB item of an event, as attribute name → value. Shared by both adapters so the
/// in-memory one checks sizes exactly as the real one.
pub fn event_item(ev: &CloudEvent, retention_days: i64) -> HashMap<String, AttributeValue> {
    let mut item = event_attributes(ev, retention_days);
    item.insert(
        "body".to_owned(),
        AttributeValue::B(Blob::new(compress(ev.to_json().as_bytes()))),
    );
    item
}

/// The item of an event whose JSON is kept in the bucket at `uri` (`s3://bucket/key`): its keys
/// and attributes, and `body_object` instead of `body`.
pub fn event_item_in_object(ev: &CloudEvent, uri: &str, retention_days: i64) -> HashMap<String, AttributeValue> {
    let mut item = event_attributes(ev, retention_days);
    item.insert("body_object".to_owned(), AttributeValue::S(uri.to_owned()));
    item
}

/// An event item's keys and plain attributes (everything but its body).
fn event_attributes(ev: &CloudEvent, retention_days: i64) -> HashMap<String, AttributeValue> {
    let time_ms = ev.time_ms();
    let received_ms = received_ms(ev);
    let expires_at = received_ms / 1000 + retention_days * 86_400;
    let s = |v: String| AttributeValue::S(v);
    let mut item = HashMap::from([
        ("pk".to_owned(), s(keys::event_pk(ev))),
        ("sk".to_owned(), s(keys::event_sk(&ev.id))),
        ("type".to_owned(), s(ev.event_type.as_str().to_owned())),
        ("received_at".to_owned(), AttributeValue::N(received_ms.to_string())),
        ("expires_at".to_owned(), AttributeValue::N(expires_at.to_string())),
    ]);
    if let Some(message_id) = &ev.data.message_id {
        item.insert(
            "gsi1pk".to_owned(),
            s(keys::message_key(
                ev.provider.as_str(),
                &ev.instance,
                crate::identity::message_identity(ev.provider, message_id),
            )),
        );
        item.insert("gsi1sk".to_owned(), s(keys::message_sk(time_ms, &ev.id)));
    }
    item
}

/// Where a webhook's events keep its body: which bodies to write first, then each event's item.
/// The claim check (docs/receiving.md, "Storage"): a body is stored once, whatever the number of
/// events it carries.
/// - One event whose item fits (the common case): `data.raw` stays in the event's item, as
///   before; nothing else is written.
/// - Several events sharing a body, or one event too large for an item with its body: the body
///   is written once, as a body item of the table (`B#<sha256>`, zstd) when it fits one, else as
///   an object in the bucket (`bodies/<sha256>.json`); each event carries `data.raw_pointer`
///   instead of `data.raw`.
/// - An event still over DynamoDB's item limit without its body (normalised fields of hundreds
///   of KB, compressed) cannot be stored: [`StoreError::TooLarge`], and the caller quarantines
///   the body.
#[derive(Debug, Default)]
pub struct Placed {
    /// Bodies to write before the events that point at them.
    pub bodies: Vec<KeptBody>,
    /// The events' items, in the events' order.
    pub items: Vec<Item>,
}

/// A body kept apart from its events.
#[derive(Debug)]
pub enum KeptBody {
    /// A body item of the events table.
    Item(Item),
    /// An object for the bucket: its key and bytes (the raw JSON, as `data.raw` would hold it).
    Object {
        /// `bodies/<sha256>.json`.
        key: String,
        /// The JSON.
        bytes: Vec<u8>,
    },
}

/// Where the store may keep bodies: the events table, and the bucket when there is one.
#[derive(Debug, Clone, Copy)]
pub struct Places<'a> {
    /// The events table (named in pointers).
    pub table: &'a str,
    /// The claim-check bucket, if configured.
    pub bucket: Option<&'a str>,
    /// Retention of items (their TTL).
    pub retention_days: i64,
}

/// Plan the writes of a webhook's events ([`Placed`]). CPU and memory grow with the body plus
/// the events, never the body times the events: a shared body is serialised and compressed once.
pub fn place(events: &[CloudEvent], places: Places<'_>) -> Result<Placed, StoreError> {
    // How many events share each body (the adapters give a webhook's events one `Arc`).
    let mut sharing: HashMap<*const RawValue, usize> = HashMap::new();
    for raw in events.iter().filter_map(|e| e.data.raw.as_ref()) {
        *sharing.entry(Arc::as_ptr(raw)).or_default() += 1;
    }
    let mut placed = Placed::default();
    let mut kept: HashMap<*const RawValue, RawPointer> = HashMap::new();
    for e in events {
        let item = match &e.data.raw {
            Some(raw) => {
                let ptr = Arc::as_ptr(raw);
                let inline = if sharing.get(&ptr).copied().unwrap_or(0) > 1 {
                    None
                } else {
                    Some(event_item(e, places.retention_days)).filter(|i| item_size(i) <= MAX_ITEM_BYTES)
                };
                match inline {
                    Some(item) => item,
                    None => {
                        let pointer = match kept.get(&ptr) {
                            Some(p) => p.clone(),
                            None => {
                                let p = keep_body(raw, e, places, &mut placed.bodies)?;
                                kept.insert(ptr, p.clone());
                                p
                            }
                        };
                        let mut pointed = e.clone();
                        pointed.data.raw = None;
                        pointed.data.raw_pointer = Some(pointer);
                        event_item(&pointed, places.retention_days)
                    }
                }
            }
            None => event_item(e, places.retention_days),
        };
        let size = item_size(&item);
        let item = if size <= MAX_ITEM_BYTES {
            item
        } else {
            // Over an item even without its body (normalised fields of hundreds of KB: a Meta
            // `history` chunk's `parameters`): the event's JSON goes to the bucket and the item
            // keeps its keys and attributes with `body_object` naming it.
            let Some(bucket) = places.bucket else {
                return Err(StoreError::TooLarge { size });
            };
            let mut pointed = e.clone();
            if let Some(raw) = &e.data.raw {
                pointed.data.raw = None;
                pointed.data.raw_pointer = kept.get(&Arc::as_ptr(raw)).cloned();
            }
            let key = crate::bucket::event_key(&e.id);
            let object_item = event_item_in_object(
                &pointed,
                &crate::bucket::object_uri(bucket, &key),
                places.retention_days,
            );
            placed.bodies.push(KeptBody::Object {
                key,
                bytes: pointed.to_json().into_bytes(),
            });
            object_item
        };
        placed.items.push(item);
    }
    Ok(placed)
}

/// Keep `raw` once (a body item when it fits one, else an object) and say where.
fn keep_body(
    raw: &RawValue,
    first: &CloudEvent,
    places: Places<'_>,
    bodies: &mut Vec<KeptBody>,
) -> Result<RawPointer, StoreError> {
    let text = raw.get().as_bytes();
    let sha = hex::encode(Sha256::digest(text));
    let received_ms = received_ms(first);
    let s = |v: String| AttributeValue::S(v);
    let item: Item = HashMap::from([
        ("pk".to_owned(), s(keys::body_pk(&sha))),
        ("sk".to_owned(), s(keys::BODY_SK.to_owned())),
        ("received_at".to_owned(), AttributeValue::N(received_ms.to_string())),
        ("body".to_owned(), AttributeValue::B(Blob::new(compress(text)))),
        (
            "expires_at".to_owned(),
            AttributeValue::N((received_ms / 1000 + places.retention_days * 86_400).to_string()),
        ),
    ]);
    let mut pointer = RawPointer {
        sha256: sha.clone(),
        bytes: text.len() as u64,
        table: None,
        pk: None,
        sk: None,
        bucket: None,
        key: None,
    };
    let size = item_size(&item);
    if size <= MAX_ITEM_BYTES {
        pointer.table = Some(places.table.to_owned());
        pointer.pk = Some(keys::body_pk(&sha));
        pointer.sk = Some(keys::BODY_SK.to_owned());
        bodies.push(KeptBody::Item(item));
    } else if let Some(bucket) = places.bucket {
        let key = crate::bucket::body_key(&sha);
        pointer.bucket = Some(bucket.to_owned());
        pointer.key = Some(key.clone());
        bodies.push(KeptBody::Object {
            key,
            bytes: text.to_vec(),
        });
    } else {
        return Err(StoreError::TooLarge { size });
    }
    Ok(pointer)
}

/// When an event was received, epoch ms.
fn received_ms(ev: &CloudEvent) -> i64 {
    ev.receivedat.millis()
}

// The stored item's codec (compression, reading an item or an object back) lives with the
// event, where the fanout, the CLI and the workers read it; the receivers write with it here.
pub use crate::event::item::{
    compress, decompress, event_of_item, event_of_sdk_item, read_sdk_item, stored_json_of_item, stored_json_of_object,
    ItemError,
};

// A stored body is at most what a request carries: decompressing one never streams.
const _: () = assert!(crate::auth::MAX_BODY_BYTES <= crate::event::item::PREALLOCATE_UP_TO);

/// The event kept in the object `uri` (`s3://bucket/key`), read through the bucket `open` gives.
pub async fn read_object<B: BodyBucket>(
    uri: &str,
    open: impl FnOnce(&str) -> B,
) -> Result<(String, CloudEvent), ItemError> {
    let (bucket, key) = crate::bucket::parse_object_uri(uri).ok_or_else(|| ItemError::ObjectMissing(uri.to_owned()))?;
    let bytes = open(bucket)
        .get(key)
        .await
        .map_err(|e| ItemError::ObjectUnavailable(uri.to_owned(), Box::new(e)))?
        .ok_or_else(|| ItemError::ObjectMissing(uri.to_owned()))?;
    stored_json_of_object(bytes)
}

/// DynamoDB's size of an item: attribute names plus values (numbers counted as their text,
/// a safe upper bound).
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
                    AttributeValue::B(b) => b.as_ref().len(),
                    _ => 16,
                }
        })
        .sum()
}

/// What DynamoDB bills for writing an item: one write unit per started KB of the base item,
/// plus one per started KB of each index entry it creates. `gsi1` is keys-only: its entry is
/// the index keys and the table keys.
pub fn write_units(item: &HashMap<String, AttributeValue>) -> (usize, usize) {
    let base = item_size(item).div_ceil(1024).max(1);
    let index_entry: HashMap<String, AttributeValue> = ["pk", "sk", "gsi1pk", "gsi1sk"]
        .iter()
        .filter_map(|k| item.get(*k).map(|v| ((*k).to_owned(), v.clone())))
        .collect();
    let index = if item.contains_key("gsi1pk") {
        item_size(&index_entry).div_ceil(1024).max(1)
    } else {
        0
    };
    (base, index)
}

/// The DynamoDB adapter, with the claim-check bucket for bodies too large for an item.
#[derive(Clone)]
pub struct DynamoEventStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    retention_days: i64,
    bucket: Option<Arc<dyn BodyBucket>>,
}

/// The most events a webhook may carry: Meta batches at most 1,000 updates per webhook (Graph
/// API webhooks), Z-API at most ~31 ids per status. Above it the body is quarantined and
/// answered 413 `too_many_events` (docs/receiving.md).
pub const MAX_EVENTS_PER_WEBHOOK: usize = 1000;

/// A request's puts in flight at once, across its chats.
const PUTS_IN_FLIGHT: usize = 16;

/// A chat's puts in flight at once within one wave (see [`waves`]): DynamoDB takes at most
/// 1,000 write units a second per partition, and a chat is one partition; four puts of ~5 ms
/// each stay under it.
const PUTS_PER_WAVE: usize = 4;

impl DynamoEventStore {
    /// An adapter for `table` (bodies too large for an item are refused as too large).
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>, retention_days: i64) -> Self {
        DynamoEventStore {
            client,
            table: table.into(),
            retention_days,
            bucket: None,
        }
    }

    /// Keep bodies too large for an item (and quarantined ones) in `bucket`.
    pub fn with_bucket(mut self, bucket: Arc<dyn BodyBucket>) -> Self {
        self.bucket = Some(bucket);
        self
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn places(&self) -> Places<'_> {
        Places {
            table: &self.table,
            bucket: self.bucket.as_ref().map(|b| b.name()),
            retention_days: self.retention_days,
        }
    }

    /// Put one item if its key is absent.
    async fn put_one(&self, item: HashMap<String, AttributeValue>) -> Result<PutOutcome, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(PutOutcome::Stored),
            Err(e) => match classify(e) {
                Classified::ConditionFailed => Ok(PutOutcome::Duplicate),
                Classified::Error(e) => Err(e),
            },
        }
    }

    /// Write the bodies a webhook's events point at, before the events: an item unconditionally
    /// (it is named by its content; a rewrite refreshes its TTL), an object through the bucket.
    async fn write_bodies(&self, bodies: Vec<KeptBody>) -> Result<(), StoreError> {
        let writes = bodies.into_iter().map(|body| async move {
            match body {
                KeptBody::Item(item) => self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| match classify(e) {
                        Classified::ConditionFailed => StoreError::Rejected("unexpected condition".into()),
                        Classified::Error(e) => e,
                    }),
                KeptBody::Object { key, bytes } => match &self.bucket {
                    Some(bucket) => Ok(bucket.put(&key, bytes, "application/json").await?),
                    None => Err(StoreError::Rejected("no bucket for a large body".into())),
                },
            }
        });
        futures::future::try_join_all(writes).await.map(|_| ())
    }
}

pub(crate) enum Classified {
    ConditionFailed,
    Error(StoreError),
}

/// SDK errors → the store's: a failed condition is a duplicate; a `ValidationException` (the
/// item itself is refused: a key or item over a limit) can never succeed; anything else
/// (throttling, 5xx, timeouts, a missing table or permission) is worth retrying.
pub(crate) fn classify<E, R>(e: SdkError<E, R>) -> Classified
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if let SdkError::ServiceError(service) = &e {
        match service.err().code() {
            Some("ConditionalCheckFailedException") => return Classified::ConditionFailed,
            Some("ValidationException") => {
                let message = service.err().message().unwrap_or("ValidationException").to_owned();
                return Classified::Error(StoreError::Rejected(message));
            }
            _ => {}
        }
    }
    Classified::Error(StoreError::unavailable(e))
}

/// Indexes of `items` grouped by partition key, each group in input order.
fn by_partition(items: &[HashMap<String, AttributeValue>]) -> Vec<Vec<usize>> {
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let pk = item.get("pk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        match index.get(&pk) {
            Some(&g) => groups[g].1.push(i),
            None => {
                index.insert(pk.clone(), groups.len());
                groups.push((pk, vec![i]));
            }
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// A chat's events (indexes into `events`, in body order) cut into waves written one after the
/// other. A wave is a run of statuses that report one moment about different messages (the
/// same time, no message id twice), such as the ids of one Z-API status callback or a Meta
/// batch of statuses at the same second: their order carries nothing, so a wave's puts run
/// together. Every other event is a wave of its own (messages of the same second keep the
/// order the body gives them), and so is a new time or the same message again.
pub fn waves(events: &[CloudEvent], chat: &[usize]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut ids: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for &i in chat {
        let e = &events[i];
        let joins = out.last().and_then(|w| w.last()).is_some_and(|&last| {
            let prev = &events[last];
            e.event_type == crate::EventType::MessageStatus
                && prev.event_type == e.event_type
                && prev.time == e.time
                && e.data.message_id.as_deref().is_none_or(|m| !ids.contains(m))
        });
        if !joins {
            out.push(Vec::new());
            ids.clear();
        }
        if let Some(m) = e.data.message_id.as_deref() {
            ids.insert(m);
        }
        if let Some(w) = out.last_mut() {
            w.push(i);
        }
    }
    out
}

#[async_trait]
impl EventStore for DynamoEventStore {
    async fn put_if_absent(&self, events: &[CloudEvent]) -> Result<Vec<PutOutcome>, StoreError> {
        // Refuse before writing anything: a webhook is stored whole or not at all for size.
        let Placed { bodies, items } = place(events, self.places())?;
        self.write_bodies(bodies).await?;
        let groups = by_partition(&items);
        let mut slots: Vec<Option<HashMap<String, AttributeValue>>> = items.into_iter().map(Some).collect();
        let in_flight = tokio::sync::Semaphore::new(PUTS_IN_FLIGHT);
        // A chat's waves one after the other (its stream records then keep body order where it
        // has one); chats at once.
        let chats = groups.into_iter().map(|group| {
            let waves: Vec<Vec<(usize, HashMap<String, AttributeValue>)>> = waves(events, &group)
                .into_iter()
                .map(|w| {
                    w.into_iter()
                        .filter_map(|i| slots[i].take().map(|it| (i, it)))
                        .collect()
                })
                .collect();
            let in_flight = &in_flight;
            async move {
                use futures::StreamExt;
                let mut out = Vec::new();
                for wave in waves {
                    let results: Vec<(usize, Result<PutOutcome, StoreError>)> = futures::stream::iter(wave)
                        .map(|(i, item)| async move {
                            let _permit = in_flight.acquire().await;
                            (i, self.put_one(item).await)
                        })
                        .buffer_unordered(PUTS_PER_WAVE)
                        .collect()
                        .await;
                    let mut error = None;
                    for (i, r) in results {
                        match r {
                            Ok(o) => out.push((i, o)),
                            Err(e) => error = error.or(Some(e)),
                        }
                    }
                    // The rest of this chat waits for the retry: nothing overtakes a failed put.
                    if let Some(e) = error {
                        return (out, Some(e));
                    }
                }
                (out, None)
            }
        });
        let results = futures::future::join_all(chats).await;
        let mut outcomes = vec![PutOutcome::Duplicate; events.len()];
        let mut first_error = None;
        for (done, error) in results {
            for (i, o) in done {
                outcomes[i] = o;
            }
            if let Some(e) = error {
                // A refusal outranks an outage: retrying the webhook cannot store it.
                match (&first_error, &e) {
                    (None, _) | (Some(StoreError::Unavailable(_)), StoreError::Rejected(_)) => first_error = Some(e),
                    _ => {}
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(outcomes),
        }
    }

    async fn quarantine(&self, q: Quarantined) -> Result<(), StoreError> {
        let sha = hex::encode(Sha256::digest(&q.raw));
        let compressed = compress(&q.raw);
        let s = |v: String| AttributeValue::S(v);
        // The body in the item when it fits, else in the bucket with the item pointing at it.
        let (name, body) = if compressed.len() <= MAX_ITEM_BYTES - 4096 {
            ("raw", AttributeValue::B(Blob::new(compressed)))
        } else {
            let Some(bucket) = &self.bucket else {
                return Err(StoreError::TooLarge { size: compressed.len() });
            };
            let key = crate::bucket::quarantine_key(&sha);
            bucket.put(&key, q.raw, "application/octet-stream").await?;
            ("raw_object", s(crate::bucket::object_uri(bucket.name(), &key)))
        };
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::quarantine_pk(&sha)))
            .item("sk", s(keys::quarantine_sk(q.received_at_ms)))
            .item("endpoint", s(q.endpoint))
            .item("provider", s(q.provider))
            .item("route", s(q.route))
            .item("reason", s(q.reason))
            .item("received_at", AttributeValue::N(q.received_at_ms.to_string()))
            .item(name, body)
            .item(
                "expires_at",
                AttributeValue::N((q.received_at_ms / 1000 + self.retention_days * 86_400).to_string()),
            );
        if let Some(d) = q.delivery_id {
            put = put.item("delivery_id", s(d));
        }
        if let Some(t) = q.tenant {
            put = put.item("tenant", s(t));
        }
        put.send().await.map_err(|e| match classify(e) {
            Classified::ConditionFailed => StoreError::Rejected("unexpected condition".into()),
            Classified::Error(e) => e,
        })?;
        Ok(())
    }

    async fn state_sequence(&self, event: &CloudEvent, change: &StateChange) -> Result<u64, StoreError> {
        let (pk, sk) = (keys::event_pk(event), keys::state_sk(change.kind));
        let n = |v: &str| AttributeValue::N(v.to_owned());
        let expires = chrono::Utc::now().timestamp() + self.retention_days * 86_400;
        let changed = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk))
            .key("sk", AttributeValue::S(sk))
            .update_expression("SET #v = :v, #s = if_not_exists(#s, :zero) + :one, expires_at = :exp")
            .condition_expression("attribute_not_exists(#v) OR #v <> :v")
            .expression_attribute_names("#v", "state")
            .expression_attribute_names("#s", "seq")
            .expression_attribute_values(":v", AttributeValue::S(change.value.clone()))
            .expression_attribute_values(":zero", n("0"))
            .expression_attribute_values(":one", n("1"))
            .expression_attribute_values(":exp", n(&expires.to_string()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            // The same state as the last: the count it had when the condition failed, in the
            // same call (a separate read could see a later change's count: a redelivery of A
            // racing B would get B's count and a new id, a phantom A after B).
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        let seq_of = |item: Option<&HashMap<String, AttributeValue>>| {
            item.and_then(|i| i.get("seq"))
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        match changed {
            Ok(out) => Ok(seq_of(out.attributes())),
            Err(e) => {
                if let Some(
                    aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(failed),
                ) = e.as_service_error()
                {
                    return Ok(seq_of(failed.item()));
                }
                match classify(e) {
                    Classified::ConditionFailed => {
                        Err(StoreError::Rejected("a failed condition without the item".into()))
                    }
                    Classified::Error(e) => Err(e),
                }
            }
        }
    }
}

/// An item: attribute name → value.
pub type Item = HashMap<String, AttributeValue>;

/// A state's last value and how many times it changed.
type StateRun = (String, u64);

/// An in-memory store for unit tests and benches, with the same semantics (first write wins,
/// the same size check) and failure injection.
#[derive(Default, Clone)]
pub struct MemoryEventStore {
    items: Arc<Mutex<HashMap<(String, String), Item>>>,
    order: Arc<Mutex<Vec<String>>>,
    quarantined: Arc<Mutex<Vec<Quarantined>>>,
    /// (partition, state kind) → (last value, changes so far).
    states: Arc<Mutex<HashMap<(String, String), StateRun>>>,
    /// Fail the put of the n-th event (0-based) of the next call, once.
    fail_next_at: Arc<Mutex<Option<usize>>>,
    /// Fail every call (an outage).
    down: Arc<Mutex<bool>>,
    /// Body items by partition key.
    bodies: Arc<Mutex<HashMap<String, Item>>>,
    /// The claim-check bucket, if any.
    bucket: Option<crate::bucket::MemoryBucket>,
}

impl MemoryEventStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store keeping bodies too large for an item in `bucket`.
    pub fn with_bucket(bucket: crate::bucket::MemoryBucket) -> Self {
        MemoryEventStore {
            bucket: Some(bucket),
            ..Self::default()
        }
    }

    /// How many body items are stored (bodies shared by several events, or too large to travel
    /// with one).
    pub fn body_items(&self) -> usize {
        self.bodies.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The stored item of an event id (what a fanout would read), if stored.
    pub fn item_of(&self, event_id: &str) -> Option<Item> {
        let sk = keys::event_sk(event_id);
        self.items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|((_, k), _)| *k == sk)
            .map(|(_, item)| item.clone())
    }

    /// Make the next call fail at its `index`-th event (the events before it are stored).
    pub fn fail_next_at(&self, index: usize) {
        *self.fail_next_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(index);
    }

    /// Simulate an outage (every call fails) or end it.
    pub fn set_down(&self, down: bool) {
        *self.down.lock().unwrap_or_else(|p| p.into_inner()) = down;
    }

    /// How many events are stored.
    pub fn len(&self) -> usize {
        self.items.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The stored event ids, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids = self.order.lock().unwrap_or_else(|p| p.into_inner()).clone();
        ids.sort();
        ids
    }

    /// The stored event ids in the order they were written.
    pub fn ids_in_write_order(&self) -> Vec<String> {
        self.order.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Quarantined bodies.
    pub fn quarantined(&self) -> Vec<Quarantined> {
        self.quarantined.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl EventStore for MemoryEventStore {
    async fn put_if_absent(&self, events: &[CloudEvent]) -> Result<Vec<PutOutcome>, StoreError> {
        if *self.down.lock().unwrap_or_else(|p| p.into_inner()) {
            return Err(StoreError::unavailable("in-memory store is down"));
        }
        let places = Places {
            table: "memory",
            bucket: self.bucket.as_ref().map(|b| b.name()),
            retention_days: DEFAULT_RETENTION_DAYS,
        };
        let Placed { bodies, items } = place(events, places)?;
        for body in bodies {
            match body {
                KeptBody::Item(item) => {
                    let pk = item.get("pk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                    self.bodies.lock().unwrap_or_else(|p| p.into_inner()).insert(pk, item);
                }
                KeptBody::Object { key, bytes } => match &self.bucket {
                    Some(bucket) => crate::bucket::BodyBucket::put(bucket, &key, bytes, "application/json").await?,
                    None => return Err(StoreError::Rejected("no bucket for a large body".into())),
                },
            }
        }
        let fail_at = self.fail_next_at.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut stored = self.items.lock().unwrap_or_else(|p| p.into_inner());
        let mut order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        let mut outcomes = Vec::new();
        for (i, (item, event)) in items.into_iter().zip(events).enumerate() {
            if fail_at == Some(i) {
                return Err(StoreError::unavailable(format!("injected failure at event {i}")));
            }
            let key = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            match stored.entry((key("pk"), key("sk"))) {
                std::collections::hash_map::Entry::Occupied(_) => outcomes.push(PutOutcome::Duplicate),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(item);
                    order.push(event.id.clone());
                    outcomes.push(PutOutcome::Stored);
                }
            }
        }
        Ok(outcomes)
    }

    async fn quarantine(&self, item: Quarantined) -> Result<(), StoreError> {
        if *self.down.lock().unwrap_or_else(|p| p.into_inner()) {
            return Err(StoreError::unavailable("in-memory store is down"));
        }
        let compressed = compress(&item.raw).len();
        if compressed > MAX_ITEM_BYTES - 4096 {
            let Some(bucket) = &self.bucket else {
                return Err(StoreError::TooLarge { size: compressed });
            };
            let key = crate::bucket::quarantine_key(&hex::encode(Sha256::digest(&item.raw)));
            crate::bucket::BodyBucket::put(bucket, &key, item.raw.clone(), "application/octet-stream").await?;
        }
        self.quarantined.lock().unwrap_or_else(|p| p.into_inner()).push(item);
        Ok(())
    }

    async fn state_sequence(&self, event: &CloudEvent, change: &StateChange) -> Result<u64, StoreError> {
        if *self.down.lock().unwrap_or_else(|p| p.into_inner()) {
            return Err(StoreError::unavailable("in-memory store is down"));
        }
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let slot = states
            .entry((keys::event_pk(event), keys::state_sk(change.kind)))
            .or_insert_with(|| (String::new(), 0));
        if slot.1 == 0 || slot.0 != change.value {
            *slot = (change.value.clone(), slot.1 + 1);
        }
        Ok(slot.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_events(ids: usize, raw_bytes: usize) -> Vec<CloudEvent> {
        let body = format!(
            r#"{{"type":"MessageStatusCallback","instanceId":"I","status":"READ","ids":[{}],"momment":1757387334000,"phone":"5511","pad":"{}"}}"#,
            (0..ids).map(|i| format!("\"id{i}\"")).collect::<Vec<_>>().join(","),
            "x".repeat(raw_bytes)
        );
        let ctx = crate::providers::ParseContext::new(crate::Provider::Zapi, "ep", chrono::Utc::now());
        crate::providers::parse(&ctx, body.as_bytes()).expect("parses")
    }

    const PLACES: Places<'static> = Places {
        table: "events",
        bucket: Some("bodies"),
        retention_days: 30,
    };

    #[test]
    fn one_event_keeps_its_body_inline_and_several_share_one_body_item() {
        let one = place(&status_events(1, 10), PLACES).expect("placed");
        assert!(one.bodies.is_empty(), "the common case writes nothing more");
        assert!(event_of_item(one.items[0]["body"].as_b().ok().map(|b| b.as_ref()))
            .expect("event")
            .data
            .raw
            .is_some());

        let wide = status_events(500, 10);
        let placed = place(&wide, PLACES).expect("placed");
        assert_eq!(placed.bodies.len(), 1, "the body once, for 500 events");
        let KeptBody::Item(body) = &placed.bodies[0] else {
            panic!("a small body is a body item")
        };
        let raw = wide[0].data.raw.as_ref().expect("raw").get().to_owned();
        assert_eq!(
            decompress(body["body"].as_b().expect("b").as_ref()).expect("zstd"),
            raw.as_bytes()
        );
        for item in &placed.items {
            let e = event_of_item(item["body"].as_b().ok().map(|b| b.as_ref())).expect("event");
            assert!(e.data.raw.is_none());
            let p = e.data.raw_pointer.expect("pointer");
            assert_eq!(p.sha256, hex::encode(Sha256::digest(raw.as_bytes())));
            assert_eq!(
                (p.pk.as_deref(), p.sk.as_deref()),
                (Some(body["pk"].as_s().expect("pk").as_str()), Some("B"))
            );
            assert!(
                item_size(item) < 1024,
                "each event's item stays small: {}",
                item_size(item)
            );
        }
    }

    #[test]
    fn a_body_too_large_for_an_item_goes_to_the_bucket_and_without_one_is_refused() {
        // Incompressible: base64 of pseudo-random bytes, as inline media is (Evolution's
        // `webhook_base64`: the media inline, next to the content).
        let body = crate::testkit::evolution_inline_media("inst", "3EB0", 600_000);
        let ctx = crate::providers::ParseContext::new(crate::Provider::Evolution, "ep", chrono::Utc::now());
        let events = crate::providers::parse(&ctx, body.as_bytes()).expect("parses");
        assert_eq!(events.len(), 1);
        let placed = place(&events, PLACES).expect("placed");
        let KeptBody::Object { key, bytes } = &placed.bodies[0] else {
            panic!("an object")
        };
        assert!(key.starts_with("bodies/") && key.ends_with(".json"), "{key}");
        assert_eq!(
            bytes.as_slice(),
            events[0].data.raw.as_ref().expect("raw").get().as_bytes()
        );
        let e = event_of_item(placed.items[0]["body"].as_b().ok().map(|b| b.as_ref())).expect("event");
        assert_eq!(e.data.raw_pointer.and_then(|p| p.bucket).as_deref(), Some("bodies"));
        let no_bucket = Places { bucket: None, ..PLACES };
        assert!(matches!(place(&events, no_bucket), Err(StoreError::TooLarge { .. })));
    }

    #[test]
    fn a_wave_is_one_moment_about_different_messages() {
        let statuses = status_events(40, 0);
        let all: Vec<usize> = (0..statuses.len()).collect();
        assert_eq!(waves(&statuses, &all).len(), 1, "one Z-API callback: one moment");
        // The same message twice, or a new time, starts a new wave: that order is kept.
        let mut events = status_events(3, 0);
        events[2].data.message_id = events[0].data.message_id.clone();
        events.extend(status_events(2, 0).into_iter().map(|mut e| {
            e.time = "2030-01-01T00:00:00.000Z".parse().expect("a time");
            e
        }));
        let all: Vec<usize> = (0..events.len()).collect();
        assert_eq!(waves(&events, &all), [vec![0, 1], vec![2], vec![3, 4]]);
    }

    #[test]
    fn key_parts_stay_within_dynamodb_limits_and_cannot_collide_through_the_separator() {
        let long = "x".repeat(5000);
        let pk = keys::chat_partition("zapi", &long, &long);
        assert!(pk.len() < 100, "{pk}");
        assert_ne!(
            keys::chat_partition("zapi", "a#b", "c"),
            keys::chat_partition("zapi", "a", "b#c")
        );
        assert_eq!(keys::part("5511999"), "5511999");
        assert_eq!(keys::part("Contato São Paulo 1"), "Contato São Paulo 1");
        assert!(keys::part("~looks-hashed").starts_with('~'));
        assert_ne!(keys::part("~looks-hashed"), "~looks-hashed");
    }
}
