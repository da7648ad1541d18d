//! The timers' adapters: state items and made events in DynamoDB (conditional on a version, one
//! transaction), timers on SQS (per-message delay), endpoint windows from the endpoints table
//! (cached); and in-memory ones for unit tests and the simulation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};

use super::{Clock, Commit, Note, Scheduler, TimerStore, TimingSource};
use crate::endpoint::Timing;
use crate::event::CloudEvent;
use crate::store::{event_item, item_size, keys, StoreError, MAX_ITEM_BYTES};

/// The DynamoDB adapter: the state items live in the events table next to the events they make.
#[derive(Clone)]
pub struct DynamoTimerStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    retention_days: i64,
}

impl DynamoTimerStore {
    /// An adapter over the events table; states and events expire after `retention_days`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>, retention_days: i64) -> Self {
        DynamoTimerStore {
            client,
            table: table.into(),
            retention_days,
        }
    }

    /// The state item written as version `version + 1` (what a commit puts; `make cost` sizes it).
    pub fn state_item(&self, pk: &str, kind: &str, state: &str, version: u64) -> HashMap<String, AttributeValue> {
        let expires = chrono::Utc::now().timestamp() + self.retention_days * 86_400;
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
            ("sk".to_owned(), AttributeValue::S(keys::state_sk(kind))),
            ("state".to_owned(), AttributeValue::S(state.to_owned())),
            ("v".to_owned(), AttributeValue::N((version + 1).to_string())),
            ("expires_at".to_owned(), AttributeValue::N(expires.to_string())),
        ])
    }

    async fn exists(&self, event: &CloudEvent) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(keys::event_pk(event)))
            .key("sk", AttributeValue::S(keys::event_sk(&event.id)))
            .projection_expression("pk")
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        Ok(out.item().is_some())
    }

    /// One attempt: the state (and the events) written, or the transaction cancelled.
    async fn try_commit(
        &self,
        state: HashMap<String, AttributeValue>,
        version: u64,
        events: &[CloudEvent],
    ) -> Result<Result<(), ()>, StoreError> {
        let condition = if version == 0 {
            "attribute_not_exists(pk)"
        } else {
            "v = :v"
        };
        let seen = AttributeValue::N(version.to_string());
        if events.is_empty() {
            let mut put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(state))
                .condition_expression(condition);
            if version != 0 {
                put = put.expression_attribute_values(":v", seen);
            }
            return match put.send().await {
                Ok(_) => Ok(Ok(())),
                Err(e) if is_code(&e, "ConditionalCheckFailedException") => Ok(Err(())),
                Err(e) => Err(StoreError::unavailable(e)),
            };
        }
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(state))
            .condition_expression(condition);
        if version != 0 {
            put = put.expression_attribute_values(":v", seen);
        }
        let mut writes = vec![TransactWriteItem::builder()
            .put(put.build().map_err(StoreError::unavailable)?)
            .build()];
        for event in events {
            let item = event_item(event, self.retention_days);
            let size = item_size(&item);
            if size > MAX_ITEM_BYTES {
                return Err(StoreError::TooLarge { size });
            }
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(StoreError::unavailable)?;
            writes.push(TransactWriteItem::builder().put(put).build());
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
        {
            Ok(_) => Ok(Ok(())),
            Err(e) if is_code(&e, "TransactionCanceledException") => Ok(Err(())),
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }
}

fn is_code<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>, code: &str) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error().and_then(|s| s.code()) == Some(code)
}

#[async_trait]
impl TimerStore for DynamoTimerStore {
    async fn load(&self, pk: &str, kind: &str) -> Result<(Option<String>, u64), StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("sk", AttributeValue::S(keys::state_sk(kind)))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        let Some(item) = out.item() else {
            return Ok((None, 0));
        };
        let state = item.get("state").and_then(|v| v.as_s().ok()).cloned();
        let version = item
            .get("v")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Ok((state, version))
    }

    async fn commit(
        &self,
        pk: &str,
        kind: &str,
        state: &str,
        version: u64,
        events: &[CloudEvent],
    ) -> Result<Commit, StoreError> {
        let mut events: Vec<CloudEvent> = events.to_vec();
        // Twice at most: a cancelled transaction is either another writer's change (a conflict)
        // or an event already stored (by an attempt whose answer was lost): then without it.
        for _ in 0..2 {
            if self
                .try_commit(self.state_item(pk, kind, state, version), version, &events)
                .await?
                .is_ok()
            {
                return Ok(Commit::Done);
            }
            let (_, now) = self.load(pk, kind).await?;
            if now != version || events.is_empty() {
                return Ok(Commit::Conflict);
            }
            let mut missing = Vec::new();
            for e in events {
                if !self.exists(&e).await? {
                    missing.push(e);
                }
            }
            events = missing;
        }
        Ok(Commit::Conflict)
    }
}

/// The SQS adapter: the note goes back to the `timers` queue, delayed.
#[derive(Clone)]
pub struct SqsScheduler {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsScheduler {
    /// Notes sent to the queue at `url`.
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        SqsScheduler {
            client,
            url: url.into(),
        }
    }
}

/// SQS's per-message delay: whole seconds (rounded up, so a timer never fires early), at most
/// 900.
pub fn delay_seconds(delay_ms: u64) -> i32 {
    let s = delay_ms.div_ceil(1000).min(crate::sqs_rules::MAX_DELAY_SECONDS);
    i32::try_from(s).unwrap_or(0)
}

#[async_trait]
impl Scheduler for SqsScheduler {
    async fn schedule(&self, note: &Note, delay_ms: u64) -> Result<(), String> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(note.to_json())
            .delay_seconds(delay_seconds(delay_ms))
            .send()
            .await
            .map_err(|e| crate::error_chain(&e))?;
        Ok(())
    }
}

/// Endpoint windows read from the endpoints table, kept for a while per container
/// ([`crate::registry::SettingsCache`]).
pub struct CachedTimings {
    registry: crate::registry::DynamoRegistry,
    cache: crate::registry::SettingsCache<Timing>,
}

impl CachedTimings {
    /// Windows read through `registry`.
    pub fn new(registry: crate::registry::DynamoRegistry) -> Self {
        CachedTimings {
            registry,
            cache: Default::default(),
        }
    }
}

#[async_trait]
impl TimingSource for CachedTimings {
    async fn timing(&self, id: &str) -> Result<Timing, String> {
        self.cache
            .get(id, || self.registry.timing_of(id))
            .await
            .map_err(|e| crate::error_chain(&e))
    }
}

/// In-memory windows: the default unless set.
#[derive(Default, Clone)]
pub struct MemoryTimings(Arc<Mutex<HashMap<String, Timing>>>);

impl MemoryTimings {
    /// Set endpoint `id`'s windows.
    pub fn set(&self, id: &str, timing: Timing) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned(), timing);
    }
}

#[async_trait]
impl TimingSource for MemoryTimings {
    async fn timing(&self, id: &str) -> Result<Timing, String> {
        Ok(self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .copied()
            .unwrap_or_default())
    }
}

/// A state item's key: (partition, kind).
type StateKey = (String, String);

/// In-memory states and made events, with the same version rule, and a switch that makes the
/// next commits fail (a crash between the timer and the write).
#[derive(Default, Clone)]
pub struct MemoryTimerStore {
    states: Arc<Mutex<HashMap<StateKey, (String, u64)>>>,
    events: Arc<Mutex<Vec<CloudEvent>>>,
    failing: Arc<Mutex<usize>>,
    loads: Arc<std::sync::atomic::AtomicUsize>,
}

impl MemoryTimerStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events made, in the order they were written.
    pub fn events(&self) -> Vec<CloudEvent> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many states were read.
    pub fn loads(&self) -> usize {
        self.loads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Make the next `n` commits fail as an outage would.
    pub fn fail_next(&self, n: usize) {
        *self.failing.lock().unwrap_or_else(|p| p.into_inner()) = n;
    }
}

#[async_trait]
impl TimerStore for MemoryTimerStore {
    async fn load(&self, pk: &str, kind: &str) -> Result<(Option<String>, u64), StoreError> {
        self.loads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        Ok(match states.get(&(pk.to_owned(), kind.to_owned())) {
            Some((json, v)) => (Some(json.clone()), *v),
            None => (None, 0),
        })
    }

    async fn commit(
        &self,
        pk: &str,
        kind: &str,
        state: &str,
        version: u64,
        events: &[CloudEvent],
    ) -> Result<Commit, StoreError> {
        {
            let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
            if *failing > 0 {
                *failing -= 1;
                return Err(StoreError::unavailable("the store is down (injected)"));
            }
        }
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let key = (pk.to_owned(), kind.to_owned());
        let current = states.get(&key).map_or(0, |(_, v)| *v);
        if current != version {
            return Ok(Commit::Conflict);
        }
        states.insert(key, (state.to_owned(), version + 1));
        let mut stored = self.events.lock().unwrap_or_else(|p| p.into_inner());
        for e in events {
            if !stored.iter().any(|s| s.id == e.id) {
                stored.push(e.clone());
            }
        }
        Ok(Commit::Done)
    }
}

/// In-memory timers on a given clock: what is due is taken by the test.
#[derive(Clone)]
pub struct MemoryScheduler {
    clock: Clock,
    pending: Arc<Mutex<Vec<(i64, Note)>>>,
}

impl MemoryScheduler {
    /// Timers due on `clock`.
    pub fn new(clock: Clock) -> Self {
        MemoryScheduler {
            clock,
            pending: Arc::default(),
        }
    }

    /// Take the timers due by now, earliest first.
    pub fn take_due(&self) -> Vec<Note> {
        let now = (self.clock)();
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.sort_by_key(|(at, _)| *at);
        let split = pending.iter().take_while(|(at, _)| *at <= now).count();
        pending.drain(..split).map(|(_, n)| n).collect()
    }

    /// How many timers are pending.
    pub fn pending(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[async_trait]
impl Scheduler for MemoryScheduler {
    async fn schedule(&self, note: &Note, delay_ms: u64) -> Result<(), String> {
        // As SQS: whole seconds, rounded up.
        let due = (self.clock)() + i64::from(delay_seconds(delay_ms)) * 1000;
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((due, note.clone()));
        Ok(())
    }
}
