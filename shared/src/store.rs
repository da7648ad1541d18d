//! Where an event is stored: the `EventStore` port, its DynamoDB adapter (the `events` table of
//! DESIGN.md §4) and an in-memory adapter for unit tests. Each event is one conditional put
//! (`attribute_not_exists(pk)`): the first write wins and a redelivery is a no-op, so a webhook
//! carrying several events can be retried after a partial failure and stores only what is missing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use sha2::{Digest, Sha256};

use crate::event::CloudEvent;

/// DynamoDB's item size limit.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// How long events are kept before DynamoDB's TTL removes them (default; `WAHOOKS_RETENTION_DAYS`).
pub const DEFAULT_RETENTION_DAYS: i64 = 30;

/// One event ready to store: the canonical event plus the body it came from.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// The canonical event (its `data.raw` is not stored again: `raw` below is).
    pub event: CloudEvent,
    /// The request body exactly as authenticated.
    pub raw: Arc<Vec<u8>>,
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
    /// DynamoDB is unreachable, throttling or failing: the provider should retry (503).
    #[error("the event store is unavailable: {0}")]
    Unavailable(String),
    /// The item would exceed DynamoDB's 400 KB limit (413); nothing was written.
    #[error("the event would be a {size}-byte item, over DynamoDB's {MAX_ITEM_BYTES}-byte limit")]
    TooLarge {
        /// The computed item size.
        size: usize,
    },
}

/// The port: store events once, keep undecodable bodies aside.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Store each event if absent. Outcomes are in input order. On error some events may
    /// already be stored: a retry stores the rest and reports those as duplicates.
    async fn put_if_absent(&self, events: &[StoredEvent]) -> Result<Vec<PutOutcome>, StoreError>;

    /// Keep an authenticated body that could not be decoded (a quarantine item).
    async fn quarantine(&self, item: Quarantined) -> Result<(), StoreError>;
}

/// An authenticated body we could not decode, kept for inspection and replay.
#[derive(Debug, Clone)]
pub struct Quarantined {
    /// The endpoint it arrived on.
    pub endpoint: String,
    /// Its provider.
    pub provider: String,
    /// Why it could not be decoded.
    pub reason: String,
    /// The body.
    pub raw: Vec<u8>,
    /// Receive time, epoch ms.
    pub received_at_ms: i64,
}

/// The DynamoDB item of an event, as attribute name → value. Shared by both adapters so the
/// in-memory one checks sizes exactly as the real one.
pub fn event_item(e: &StoredEvent, retention_days: i64) -> HashMap<String, AttributeValue> {
    let ev = &e.event;
    let mut without_raw = ev.clone();
    without_raw.data.raw = None;
    let time_ms = ev.time_ms();
    let received_ms = chrono::DateTime::parse_from_rfc3339(&ev.receivedat)
        .map(|t| t.timestamp_millis())
        .unwrap_or(time_ms);
    let expires_at = received_ms / 1000 + retention_days * 86_400;
    let s = |v: String| AttributeValue::S(v);
    let mut item = HashMap::from([
        ("pk".to_owned(), s(format!("EVT#{}", ev.id))),
        ("sk".to_owned(), s("EVT".to_owned())),
        (
            "gsi1pk".to_owned(),
            s(format!("CHAT#{}#{}", ev.instance, ev.chat_key())),
        ),
        ("gsi1sk".to_owned(), s(format!("{time_ms:013}#{}", ev.id))),
        ("type".to_owned(), s(ev.event_type.as_str().to_owned())),
        ("provider".to_owned(), s(ev.provider.as_str().to_owned())),
        ("instance".to_owned(), s(ev.instance.clone())),
        ("endpoint".to_owned(), s(ev.endpoint.clone())),
        ("occurred_at".to_owned(), s(ev.time.clone())),
        ("received_at".to_owned(), s(ev.receivedat.clone())),
        ("event".to_owned(), s(without_raw.to_json())),
        ("raw".to_owned(), AttributeValue::B(Blob::new(compress_raw(&e.raw)))),
        ("raw_sha256".to_owned(), s(hex::encode(Sha256::digest(&e.raw[..])))),
        ("expires_at".to_owned(), AttributeValue::N(expires_at.to_string())),
    ]);
    if let Some(message_id) = &ev.data.message_id {
        item.insert("gsi2pk".to_owned(), s(format!("MSG#{}#{message_id}", ev.instance)));
        item.insert(
            "gsi2sk".to_owned(),
            s(format!("{time_ms:013}#{}", ev.event_type.as_str())),
        );
    }
    item
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

thread_local! {
    // One compression context per thread: creating one per body cost more than compressing.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        std::cell::RefCell::new(zstd::bulk::Compressor::new(3).ok());
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        std::cell::RefCell::new(zstd::bulk::Decompressor::new().ok());
}

/// Compress a body for the `raw` attribute (zstd level 3, a self-describing frame).
pub fn compress_raw(raw: &[u8]) -> Vec<u8> {
    COMPRESSOR
        .with(|c| c.borrow_mut().as_mut().and_then(|c| c.compress(raw).ok()))
        .unwrap_or_else(|| zstd::encode_all(raw, 3).unwrap_or_default())
}

/// Decompress a stored `raw` attribute.
pub fn decompress_raw(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    // The frame records its size (we wrote it); the bodies we store are at most 6 MiB.
    let size = zstd::zstd_safe::get_frame_content_size(bytes)
        .ok()
        .flatten()
        .filter(|s| *s <= crate::auth::MAX_BODY_BYTES as u64);
    match size {
        Some(size) => DECOMPRESSOR.with(|d| match d.borrow_mut().as_mut() {
            Some(d) => d.decompress(bytes, size as usize),
            None => zstd::decode_all(bytes),
        }),
        None => zstd::decode_all(bytes),
    }
}

/// The DynamoDB adapter.
#[derive(Clone)]
pub struct DynamoEventStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    retention_days: i64,
}

impl DynamoEventStore {
    /// An adapter for `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>, retention_days: i64) -> Self {
        DynamoEventStore {
            client,
            table: table.into(),
            retention_days,
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }
}

/// SDK errors → the store's: everything but a failed condition means "try again later".
fn unavailable<E: std::error::Error + 'static, R: std::fmt::Debug>(e: &SdkError<E, R>) -> StoreError {
    StoreError::Unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
}

#[async_trait]
impl EventStore for DynamoEventStore {
    async fn put_if_absent(&self, events: &[StoredEvent]) -> Result<Vec<PutOutcome>, StoreError> {
        let items: Vec<_> = events.iter().map(|e| event_item(e, self.retention_days)).collect();
        // Refuse before writing anything: a webhook is stored whole or not at all for size.
        if let Some(size) = items.iter().map(item_size).find(|s| *s > MAX_ITEM_BYTES) {
            return Err(StoreError::TooLarge { size });
        }
        let puts = items.into_iter().map(|item| {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .send()
        });
        // One webhook's puts go out together: a 31-id status costs one round trip, not 31.
        let results = futures::future::join_all(puts).await;
        let mut outcomes = Vec::with_capacity(results.len());
        let mut first_error = None;
        for r in results {
            match r {
                Ok(_) => outcomes.push(PutOutcome::Stored),
                Err(SdkError::ServiceError(e))
                    if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) =>
                {
                    outcomes.push(PutOutcome::Duplicate)
                }
                Err(e) => {
                    first_error.get_or_insert_with(|| unavailable(&e));
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
        let compressed = compress_raw(&q.raw);
        if compressed.len() > MAX_ITEM_BYTES - 4096 {
            return Err(StoreError::TooLarge { size: compressed.len() });
        }
        let s = |v: String| AttributeValue::S(v);
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("QUARANTINE#{sha}")))
            .item("sk", s(format!("{}", q.received_at_ms)))
            .item("endpoint", s(q.endpoint))
            .item("provider", s(q.provider))
            .item("reason", s(q.reason))
            .item("raw", AttributeValue::B(Blob::new(compressed)))
            .item("raw_sha256", s(sha))
            .item(
                "expires_at",
                AttributeValue::N((q.received_at_ms / 1000 + self.retention_days * 86_400).to_string()),
            )
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(())
    }
}

/// An in-memory store for unit tests and benches, with the same semantics (first write wins,
/// the same size check) and failure injection.
#[derive(Default, Clone)]
pub struct MemoryEventStore {
    items: Arc<Mutex<HashMap<String, HashMap<String, AttributeValue>>>>,
    quarantined: Arc<Mutex<Vec<Quarantined>>>,
    /// Fail the put of the n-th event (0-based) of the next call, once.
    fail_next_at: Arc<Mutex<Option<usize>>>,
    /// Fail every call (an outage).
    down: Arc<Mutex<bool>>,
}

impl MemoryEventStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
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

    /// The stored event ids.
    pub fn ids(&self) -> Vec<String> {
        let items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        let mut ids: Vec<_> = items.keys().map(|k| k.trim_start_matches("EVT#").to_owned()).collect();
        ids.sort();
        ids
    }

    /// Quarantined bodies.
    pub fn quarantined(&self) -> Vec<Quarantined> {
        self.quarantined.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl EventStore for MemoryEventStore {
    async fn put_if_absent(&self, events: &[StoredEvent]) -> Result<Vec<PutOutcome>, StoreError> {
        if *self.down.lock().unwrap_or_else(|p| p.into_inner()) {
            return Err(StoreError::Unavailable("in-memory store is down".into()));
        }
        let items: Vec<_> = events.iter().map(|e| event_item(e, DEFAULT_RETENTION_DAYS)).collect();
        if let Some(size) = items.iter().map(item_size).find(|s| *s > MAX_ITEM_BYTES) {
            return Err(StoreError::TooLarge { size });
        }
        let fail_at = self.fail_next_at.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut stored = self.items.lock().unwrap_or_else(|p| p.into_inner());
        let mut outcomes = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            if fail_at == Some(i) {
                return Err(StoreError::Unavailable(format!("injected failure at event {i}")));
            }
            let pk = match item.get("pk") {
                Some(AttributeValue::S(pk)) => pk.clone(),
                _ => continue,
            };
            match stored.entry(pk) {
                std::collections::hash_map::Entry::Occupied(_) => outcomes.push(PutOutcome::Duplicate),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(item);
                    outcomes.push(PutOutcome::Stored);
                }
            }
        }
        Ok(outcomes)
    }

    async fn quarantine(&self, item: Quarantined) -> Result<(), StoreError> {
        if *self.down.lock().unwrap_or_else(|p| p.into_inner()) {
            return Err(StoreError::Unavailable("in-memory store is down".into()));
        }
        self.quarantined.lock().unwrap_or_else(|p| p.into_inner()).push(item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_bodies_round_trip_through_zstd() {
        for body in [&b""[..], b"{}", &[b'x'; 100_000][..]] {
            let z = compress_raw(body);
            assert_eq!(decompress_raw(&z).expect("frame"), body);
        }
        // A frame without a recorded size (a streaming writer) still decodes.
        let mut streamed = Vec::new();
        {
            let mut w = zstd::stream::Encoder::new(&mut streamed, 3).expect("encoder");
            std::io::Write::write_all(&mut w, b"{\"a\":1}").expect("write");
            w.finish().expect("finish");
        }
        assert_eq!(decompress_raw(&streamed).expect("frame"), b"{\"a\":1}");
        assert!(decompress_raw(b"not zstd").is_err());
    }
}
