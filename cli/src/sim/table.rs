//! The DynamoDB model: the events table behind the receivers' [`EventStore`] port, with its
//! stream, and the S3 model behind the [`BodyBucket`] port.
//!
//! What it keeps of AWS's documented semantics:
//! - a put is conditional (`attribute_not_exists`): the first write of a key wins, a later one
//!   is a duplicate and writes nothing;
//! - items over 400 KB and keys over DynamoDB's limits (a partition key of 2,048 bytes, a sort
//!   key of 1,024) are refused (`ValidationException`), the item sizes computed by the same
//!   [`store::place`] and [`store::item_size`] the real adapter uses;
//! - every new item is a stream record (`INSERT`, `NEW_IMAGE`) on the shard of its partition key,
//!   with a sequence number that grows, in write order within the shard;
//! - faults: throttling (nothing written), a timeout after the write succeeded (written, the
//!   caller told it failed), both drawn from the seed, and a yield between items so that
//!   concurrent requests interleave their writes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::EventRecord;
use aws_sdk_dynamodb::types::AttributeValue;
use sha2::{Digest, Sha256};
use wahooks::bucket::{BodyBucket, BucketError, MemoryBucket};
use wahooks::event::{CloudEvent, EventType, StateChange};
use wahooks::store::{self, keys, EventStore, Item, KeptBody, Placed, Places, PutOutcome, Quarantined, StoreError};

use super::dice::{Clock, Dice, Faults};

/// DynamoDB's limit on a partition key value, bytes.
pub const MAX_PK_BYTES: usize = 2048;
/// DynamoDB's limit on a sort key value, bytes.
pub const MAX_SK_BYTES: usize = 1024;

/// What can go wrong in the table, switched by the run.
#[derive(Debug, Default, Clone, Copy)]
pub struct TableFaults {
    /// Chance that one item's write is throttled (nothing written, the call fails).
    pub throttle: f64,
    /// Chance that one item's write succeeds but the call times out.
    pub timeout_after_write: f64,
    /// Chance of a yield between two items (other requests' writes interleave).
    pub interleave: f64,
}

/// One stream record: the item it shows (read from the table when the mapping delivers it:
/// an event item never changes once written) and when it was written.
#[derive(Debug, Clone)]
pub struct StreamRecord {
    /// Its sequence number (grows with every write).
    pub seq: u64,
    /// The item's keys.
    pub pk: Arc<str>,
    /// The item's sort key.
    pub sk: Arc<str>,
    /// When the write happened, epoch ms.
    pub created_ms: i64,
}

/// What the table knows of a stored event, for the checks.
#[derive(Debug, Clone)]
pub struct StoredInfo {
    /// Its write order in the whole table (a chat's order is its events' order here).
    pub write_seq: u64,
    /// Its type (its routes).
    pub event_type: EventType,
    /// Its FIFO group.
    pub group: String,
}

#[derive(Default)]
struct State {
    items: HashMap<(Arc<str>, Arc<str>), Item>,
    states: HashMap<(String, String), (String, u64)>,
    quarantined: usize,
    shards: Vec<Vec<StreamRecord>>,
    next_seq: u64,
    events: HashMap<String, StoredInfo>,
}

/// The events table and its stream.
#[derive(Clone)]
pub struct SimTable {
    state: Arc<Mutex<State>>,
    dice: Dice,
    faults: Faults,
    clock: Clock,
    switches: Arc<Mutex<TableFaults>>,
    bucket: SimBucket,
    /// A planted bug: report a failed write as stored (an acknowledgement before the write).
    swallow_errors: bool,
}

impl SimTable {
    /// An empty table whose stream has `shards` shards, keeping large bodies in `bucket`.
    pub fn new(shards: usize, dice: Dice, faults: Faults, clock: Clock, bucket: SimBucket) -> SimTable {
        SimTable {
            state: Arc::new(Mutex::new(State {
                shards: vec![Vec::new(); shards.max(1)],
                ..State::default()
            })),
            dice,
            faults,
            clock,
            switches: Arc::new(Mutex::new(TableFaults::default())),
            bucket,
            swallow_errors: false,
        }
    }

    /// Plant the bug of a store that reports a failed write as stored.
    pub fn swallowing_errors(mut self) -> SimTable {
        self.swallow_errors = true;
        self
    }

    /// Switch the faults.
    pub fn set_faults(&self, f: TableFaults) {
        *self.switches.lock().unwrap_or_else(|p| p.into_inner()) = f;
    }

    fn switches(&self) -> TableFaults {
        *self.switches.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many shards the stream has.
    pub fn shard_count(&self) -> usize {
        self.state().shards.len()
    }

    /// How many records shard `k` holds so far.
    pub fn shard_len(&self, k: usize) -> usize {
        self.state().shards[k].len()
    }

    /// Record `i` of shard `k`.
    pub fn record(&self, k: usize, i: usize) -> Option<StreamRecord> {
        self.state().shards[k].get(i).cloned()
    }

    /// The records of shard `k` whose sequence numbers are in `start..=end`.
    pub fn records_between(&self, k: usize, start: u64, end: u64) -> Vec<StreamRecord> {
        let state = self.state();
        let shard = &state.shards[k];
        let from = shard.partition_point(|r| r.seq < start);
        shard[from..].iter().take_while(|r| r.seq <= end).cloned().collect()
    }

    /// A stream record as Lambda delivers it (`NEW_IMAGE`).
    pub fn lambda_record(&self, r: &StreamRecord) -> EventRecord {
        let item = self
            .state()
            .items
            .get(&(r.pk.clone(), r.sk.clone()))
            .cloned()
            .unwrap_or_default();
        let mut rec = EventRecord::default();
        rec.event_name = "INSERT".into();
        rec.event_id = format!("{:x}", r.seq);
        rec.aws_region = "us-east-1".into();
        rec.event_source = Some("aws:dynamodb".into());
        rec.table_name = Some("events".into());
        let keys: Item = HashMap::from([
            ("pk".to_owned(), AttributeValue::S(r.pk.to_string())),
            ("sk".to_owned(), AttributeValue::S(r.sk.to_string())),
        ]);
        rec.change.keys = serde_dynamo::Item::from(keys);
        rec.change.new_image = serde_dynamo::Item::from(item);
        rec.change.sequence_number = Some(sequence_number(r.seq));
        rec.change.approximate_creation_date_time =
            chrono::DateTime::from_timestamp_millis(r.created_ms).unwrap_or_default();
        rec
    }

    /// What the table knows of event `id`, if stored.
    pub fn stored(&self, id: &str) -> Option<StoredInfo> {
        self.state().events.get(id).cloned()
    }

    /// Every stored event: id and what is known of it, in write order.
    pub fn stored_events(&self) -> Vec<(String, StoredInfo)> {
        let mut all: Vec<(String, StoredInfo)> = self
            .state()
            .events
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by_key(|(_, info)| info.write_seq);
        all
    }

    /// How many bodies were quarantined.
    pub fn quarantined(&self) -> usize {
        self.state().quarantined
    }

    /// Write `item` if its key is absent, appending its stream record; whether it was written.
    fn insert(&self, item: Item, event: Option<&CloudEvent>) -> Result<bool, StoreError> {
        let key = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        let (pk, sk) = (key("pk"), key("sk"));
        if pk.is_empty() || pk.len() > MAX_PK_BYTES || sk.len() > MAX_SK_BYTES {
            return Err(StoreError::Rejected(format!(
                "key sizes {}/{} bytes are outside DynamoDB's limits",
                pk.len(),
                sk.len()
            )));
        }
        let size = store::item_size(&item);
        if size > store::MAX_ITEM_BYTES {
            return Err(StoreError::TooLarge { size });
        }
        let now = self.clock.now();
        let mut state = self.state();
        let (pk, sk): (Arc<str>, Arc<str>) = (pk.into(), sk.into());
        if state.items.contains_key(&(pk.clone(), sk.clone())) {
            return Ok(false);
        }
        state.items.insert((pk.clone(), sk.clone()), item);
        let seq = state.next_seq;
        state.next_seq += 1;
        let shard = shard_of(&pk, state.shards.len());
        state.shards[shard].push(StreamRecord {
            seq,
            pk,
            sk,
            created_ms: now,
        });
        if let Some(e) = event {
            state.events.insert(
                e.id.clone(),
                StoredInfo {
                    write_seq: seq,
                    event_type: e.event_type,
                    group: wahooks::fanout::group_id(e),
                },
            );
        }
        Ok(true)
    }

    async fn put_all(&self, events: &[CloudEvent]) -> Result<Vec<PutOutcome>, StoreError> {
        let places = Places {
            table: "events",
            bucket: Some(self.bucket.name()),
            retention_days: store::DEFAULT_RETENTION_DAYS,
        };
        let Placed { bodies, items } = store::place(events, places)?;
        let f = self.switches();
        for body in bodies {
            self.before_write(f)?;
            match body {
                KeptBody::Item(item) => {
                    self.insert(item, None)?;
                }
                KeptBody::Object { key, bytes } => self.bucket.put(&key, bytes, "application/json").await?,
            }
        }
        let mut outcomes = Vec::with_capacity(items.len());
        for (item, event) in items.into_iter().zip(events) {
            if self.dice.chance(f.interleave) {
                tokio::task::yield_now().await;
            }
            self.before_write(f)?;
            let written = self.insert(item, Some(event))?;
            outcomes.push(if written {
                PutOutcome::Stored
            } else {
                PutOutcome::Duplicate
            });
            if self.dice.chance(f.timeout_after_write) {
                self.faults.count("dynamodb timeout after a write");
                return Err(StoreError::unavailable("injected timeout after the write succeeded"));
            }
        }
        Ok(outcomes)
    }

    fn before_write(&self, f: TableFaults) -> Result<(), StoreError> {
        if self.dice.chance(f.throttle) {
            self.faults.count("dynamodb throttled");
            return Err(StoreError::unavailable(
                "injected ProvisionedThroughputExceededException",
            ));
        }
        Ok(())
    }
}

/// A sequence number as DynamoDB Streams writes it: a decimal string (21 digits here).
pub fn sequence_number(seq: u64) -> String {
    format!("{:021}", seq + 1)
}

/// A sequence number back to the model's counter.
pub fn seq_of(sequence_number: &str) -> Option<u64> {
    sequence_number.parse::<u64>().ok()?.checked_sub(1)
}

/// The shard of a partition key: a partition's records always share one shard, as in DynamoDB.
pub fn shard_of(pk: &str, shards: usize) -> usize {
    let digest = Sha256::digest(pk.as_bytes());
    (u64::from_be_bytes(digest[..8].try_into().unwrap_or_default()) % shards.max(1) as u64) as usize
}

#[async_trait]
impl EventStore for SimTable {
    async fn put_if_absent(&self, events: &[CloudEvent]) -> Result<Vec<PutOutcome>, StoreError> {
        match self.put_all(events).await {
            Err(StoreError::Unavailable(_)) if self.swallow_errors => Ok(vec![PutOutcome::Stored; events.len()]),
            other => other,
        }
    }

    async fn quarantine(&self, _item: Quarantined) -> Result<(), StoreError> {
        self.before_write(self.switches())?;
        self.state().quarantined += 1;
        Ok(())
    }

    async fn state_sequence(&self, event: &CloudEvent, change: &StateChange) -> Result<u64, StoreError> {
        self.before_write(self.switches())?;
        let mut state = self.state();
        let slot = state
            .states
            .entry((keys::event_pk(event), keys::state_sk(change.kind)))
            .or_insert_with(|| (String::new(), 0));
        if slot.1 == 0 || slot.0 != change.value {
            *slot = (change.value.clone(), slot.1 + 1);
        }
        Ok(slot.1)
    }
}

/// The S3 model: the body bucket with S3's key and size rules ([`MemoryBucket`]) and outages
/// drawn from the seed.
#[derive(Clone, Default)]
pub struct SimBucket {
    inner: MemoryBucket,
    down: Arc<Mutex<bool>>,
    faults: Faults,
}

impl SimBucket {
    /// An empty bucket counting its outages' refusals in `faults`.
    pub fn new(faults: Faults) -> SimBucket {
        SimBucket {
            faults,
            ..SimBucket::default()
        }
    }

    /// Start or end an outage.
    pub fn set_down(&self, down: bool) {
        *self.down.lock().unwrap_or_else(|p| p.into_inner()) = down;
    }

    fn check(&self) -> Result<(), BucketError> {
        if *self.down.lock().unwrap_or_else(|p| p.into_inner()) {
            self.faults.count("s3 unavailable");
            return Err(BucketError::Unavailable("injected S3 outage".into()));
        }
        Ok(())
    }

    /// How many objects it holds.
    pub fn objects(&self) -> usize {
        self.inner.len()
    }
}

#[async_trait]
impl BodyBucket for SimBucket {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), BucketError> {
        self.check()?;
        self.inner.put(key, bytes, content_type).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BucketError> {
        self.check()?;
        self.inner.get(key).await
    }
}
