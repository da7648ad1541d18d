//! The SQS model: the fanout's queues behind its [`Publisher`] port, and what workers receive.
//!
//! What it keeps of AWS's documented semantics:
//! - every batch is checked by [`check_batch`] (entries, ids, bodies, sizes, group and
//!   deduplication ids), as the SQS adapter does before each request;
//! - FIFO: messages of a group are received in the order they were sent, and none of a group
//!   while one of its messages is in flight; a deduplication id accepted in the last
//!   5 minutes is accepted again but not enqueued;
//! - a received message not deleted comes back when its visibility timeout (60 s, the
//!   template's) ends; received 5 times (`maxReceiveCount`), it moves to the queue's DLQ;
//! - faults: the queue unavailable (an outage), an entry refused in a batch that otherwise
//!   succeeds, a batch that was sent but whose answer was lost (the caller sees an error).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use sha2::{Digest, Sha256};
use wahooks::event::EventType;
use wahooks::fanout::{entries_of, OutMessage, PublishError, Publisher, Queue};
use wahooks::sqs_rules::check_batch;

use super::dice::{Clock, Dice, Faults};

/// SQS FIFO's deduplication interval.
pub const DEDUP_WINDOW_MS: i64 = 5 * 60 * 1000;
/// The template's `VisibilityTimeout`.
pub const VISIBILITY_MS: i64 = 60_000;
/// The template's `maxReceiveCount`.
pub const MAX_RECEIVE_COUNT: u32 = 5;
/// At most this many messages per `ReceiveMessage`.
pub const MAX_RECEIVE: usize = 10;

/// What can go wrong in SQS, switched by the run.
#[derive(Debug, Default, Clone, Copy)]
pub struct QueueFaults {
    /// Every request fails.
    pub down: bool,
    /// Chance that one entry of a batch is refused (`InternalError` for that entry).
    pub entry_refused: f64,
    /// Chance that a batch is sent but its answer lost.
    pub lost_answer: f64,
}

#[derive(Debug, Clone)]
struct Message {
    id: u64,
    event_id: String,
    event_type: EventType,
    group: Option<String>,
    body: String,
    receives: u32,
    /// In flight until then (epoch ms); 0 when never received.
    invisible_until: i64,
    /// Sent by `recover` (older events re-sent: docs/workers.md allows them out of order).
    recovered: bool,
}

#[derive(Default)]
struct OneQueue {
    name: String,
    fifo: bool,
    /// Messages by group (a standard queue has one group, ""), in send order.
    groups: BTreeMap<String, VecDeque<Message>>,
    /// Deduplication id → when it was accepted.
    dedup: HashMap<String, i64>,
    /// Event id → when its first copy was enqueued.
    first_enqueued: HashMap<String, i64>,
    dead: Vec<Message>,
}

#[derive(Default)]
struct State {
    queues: Vec<OneQueue>,
    by_url: HashMap<String, usize>,
    next_id: u64,
    /// Every enqueue, in order, hashed: two runs of one seed give the same digest.
    digest: Sha256,
    stats: QueueStats,
    /// While set, enqueued messages are marked as re-sent by `recover`.
    recovering: bool,
    /// A planted crash: fail every request after this many more.
    crash_after: Option<usize>,
    /// (queue, event id) of refused entries a later entry of their group overtook in the same
    /// batch: they reach the queue after it, as SQS documents.
    late: std::collections::HashSet<(usize, String)>,
}

/// What the queues saw.
#[derive(Debug, Default, Clone)]
pub struct QueueStats {
    /// Messages enqueued.
    pub enqueued: u64,
    /// Re-sends SQS dropped (their deduplication id accepted within 5 minutes).
    pub deduplicated: u64,
    /// Second copies of an event enqueued more than 5 minutes after its first (documented:
    /// same id, the worker dedupes).
    pub resent_past_window: u64,
    /// Second copies of an event enqueued within 5 minutes of its first: SQS FIFO
    /// deduplication should have made that impossible (a deduplication id that changed).
    pub doubled: u64,
    /// Batches refused by SQS's rules.
    pub refused_batches: u64,
    /// Messages received again after a visibility timeout.
    pub redelivered: u64,
    /// Messages moved to a DLQ.
    pub dead_lettered: u64,
    /// Refused entries that a later entry of their group overtook in the same batch.
    pub overtaken: u64,
}

/// Every queue of the run.
#[derive(Clone)]
pub struct SimQueues {
    state: Arc<Mutex<State>>,
    switches: Arc<Mutex<QueueFaults>>,
    dice: Dice,
    faults: Faults,
    clock: Clock,
}

/// One message as a worker sees it, and where it came from.
pub struct Received {
    /// The queue's index.
    pub queue: usize,
    /// The message id.
    pub id: u64,
    /// Its event id.
    pub event_id: String,
    /// Its group.
    pub group: Option<String>,
    /// Sent by `recover`.
    pub recovered: bool,
    /// Overtaken in its batch by a later message of its group (see [`QueueStats::overtaken`]).
    pub overtaken: bool,
}

impl SimQueues {
    /// Queues for `queues` (FIFO when their URL ends in `.fifo`).
    pub fn new(queues: &[Queue], dice: Dice, faults: Faults, clock: Clock) -> SimQueues {
        let mut state = State::default();
        for (i, q) in queues.iter().enumerate() {
            state.queues.push(OneQueue {
                name: q.name.clone(),
                fifo: q.fifo,
                ..OneQueue::default()
            });
            state.by_url.insert(q.url.clone(), i);
        }
        SimQueues {
            state: Arc::new(Mutex::new(state)),
            switches: Arc::new(Mutex::new(QueueFaults::default())),
            dice,
            faults,
            clock,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Switch the faults.
    pub fn set_faults(&self, f: QueueFaults) {
        *self.switches.lock().unwrap_or_else(|p| p.into_inner()) = f;
    }

    /// Mark what is sent from now on as re-sent by `recover` (or stop).
    pub fn set_recovering(&self, on: bool) {
        self.state().recovering = on;
    }

    /// A function crash: every request after the next `n` fails.
    pub fn crash_after(&self, n: Option<usize>) {
        self.state().crash_after = n;
    }

    /// The index of the queue named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.state().queues.iter().position(|q| q.name == name)
    }

    /// The queue names, by index.
    pub fn names(&self) -> Vec<String> {
        self.state().queues.iter().map(|q| q.name.clone()).collect()
    }

    /// Whether event `id` was ever enqueued on queue `q`.
    pub fn enqueued(&self, q: usize, id: &str) -> bool {
        self.state().queues[q].first_enqueued.contains_key(id)
    }

    /// Messages still held (visible or in flight), over every queue.
    pub fn held(&self) -> usize {
        self.state()
            .queues
            .iter()
            .map(|q| q.groups.values().map(VecDeque::len).sum::<usize>())
            .sum()
    }

    /// Event ids on queue `q`'s DLQ.
    pub fn dead_letters(&self, q: usize) -> Vec<String> {
        self.state().queues[q].dead.iter().map(|m| m.event_id.clone()).collect()
    }

    /// The counts so far.
    pub fn stats(&self) -> QueueStats {
        self.state().stats.clone()
    }

    /// The digest of every enqueue so far.
    pub fn digest(&self) -> String {
        hex::encode(self.state().digest.clone().finalize())
    }

    /// One `ReceiveMessage` on queue `q`: up to 10 visible messages, a FIFO group's in order
    /// and none of a group with one in flight; each becomes invisible for the visibility
    /// timeout. A message past `maxReceiveCount` goes to the DLQ instead.
    pub fn receive(&self, q: usize) -> Vec<Received> {
        let now = self.clock.now();
        let mut state = self.state();
        let State {
            queues, stats, late, ..
        } = &mut *state;
        let queue = &mut queues[q];
        let fifo = queue.fifo;
        let mut out = Vec::new();
        let mut emptied = Vec::new();
        for (group, messages) in queue.groups.iter_mut() {
            if out.len() >= MAX_RECEIVE {
                break;
            }
            if fifo && messages.front().is_some_and(|m| m.invisible_until > now) {
                continue;
            }
            let mut i = 0;
            while i < messages.len() && out.len() < MAX_RECEIVE {
                let m = &mut messages[i];
                if m.invisible_until > now {
                    if fifo {
                        break;
                    }
                    i += 1;
                    continue;
                }
                if m.receives >= MAX_RECEIVE_COUNT {
                    if let Some(dead) = messages.remove(i) {
                        stats.dead_lettered += 1;
                        queue.dead.push(dead);
                    }
                    continue;
                }
                if m.receives > 0 {
                    stats.redelivered += 1;
                }
                m.receives += 1;
                m.invisible_until = now + VISIBILITY_MS;
                out.push(Received {
                    queue: q,
                    id: m.id,
                    event_id: m.event_id.clone(),
                    group: m.group.clone(),
                    recovered: m.recovered,
                    overtaken: late.contains(&(q, m.event_id.clone())),
                });
                i += 1;
            }
            if messages.is_empty() {
                emptied.push(group.clone());
            }
        }
        for g in emptied {
            queue.groups.remove(&g);
        }
        out
    }

    /// The Lambda event of received messages (what `wahooks_consumer::handle_sqs_event` takes).
    pub fn sqs_event(&self, received: &[Received]) -> SqsEvent {
        let state = self.state();
        let mut event = SqsEvent::default();
        for r in received {
            let queue = &state.queues[r.queue];
            let key = r.group.clone().unwrap_or_default();
            let Some(m) = queue.groups.get(&key).and_then(|g| g.iter().find(|m| m.id == r.id)) else {
                continue;
            };
            let mut msg = SqsMessage::default();
            msg.message_id = Some(m.id.to_string());
            msg.body = Some(m.body.clone());
            if let Some(g) = &m.group {
                msg.attributes.insert("MessageGroupId".into(), g.clone());
            }
            msg.attributes
                .insert("ApproximateReceiveCount".into(), m.receives.to_string());
            msg.attributes.insert("type".into(), m.event_type.as_str().into());
            event.records.push(msg);
        }
        event
    }

    /// `DeleteMessage`: the message is done.
    pub fn delete(&self, r: &Received) {
        let mut state = self.state();
        let queue = &mut state.queues[r.queue];
        let key = r.group.clone().unwrap_or_default();
        if let Some(group) = queue.groups.get_mut(&key) {
            if let Some(i) = group.iter().position(|m| m.id == r.id) {
                group.remove(i);
            }
            if group.is_empty() {
                queue.groups.remove(&key);
            }
        }
    }

    fn enqueue(&self, q: usize, m: &OutMessage) {
        let now = self.clock.now();
        let mut state = self.state();
        let recovering = state.recovering;
        let id = state.next_id;
        state.next_id += 1;
        let State {
            queues, stats, digest, ..
        } = &mut *state;
        let queue = &mut queues[q];
        if let Some(dedup) = &m.dedup_id {
            if queue.fifo {
                if queue.dedup.get(dedup).is_some_and(|at| now - at < DEDUP_WINDOW_MS) {
                    stats.deduplicated += 1;
                    return;
                }
                queue.dedup.insert(dedup.clone(), now);
            }
        }
        match queue.first_enqueued.get(&m.event_id) {
            Some(first) if now - first < DEDUP_WINDOW_MS => stats.doubled += 1,
            Some(_) => stats.resent_past_window += 1,
            None => {
                queue.first_enqueued.insert(m.event_id.clone(), now);
            }
        }
        stats.enqueued += 1;
        digest.update(queue.name.as_bytes());
        digest.update(b"|");
        digest.update(m.event_id.as_bytes());
        digest.update(b"\n");
        let group = if queue.fifo { m.group_id.clone() } else { None };
        queue
            .groups
            .entry(group.clone().unwrap_or_default())
            .or_default()
            .push_back(Message {
                id,
                event_id: m.event_id.clone(),
                event_type: m.event_type,
                group,
                body: m.body.clone(),
                receives: 0,
                invisible_until: 0,
                recovered: recovering,
            });
    }
}

#[async_trait]
impl Publisher for SimQueues {
    async fn send_batch(&self, queue: &Queue, batch: &[OutMessage]) -> Result<Vec<String>, PublishError> {
        let f = *self.switches.lock().unwrap_or_else(|p| p.into_inner());
        {
            let mut state = self.state();
            match &mut state.crash_after {
                Some(0) => return Err(PublishError::unavailable("the function crashed")),
                Some(n) => *n -= 1,
                None => {}
            }
        }
        if f.down {
            self.faults.count("sqs unavailable");
            return Err(PublishError::unavailable("injected SQS outage"));
        }
        if let Err(e) = check_batch(&entries_of(batch), queue.fifo, queue.max_bytes) {
            self.state().stats.refused_batches += 1;
            return Err(e.into());
        }
        let q = self
            .state()
            .by_url
            .get(&queue.url)
            .copied()
            .ok_or_else(|| PublishError::unavailable(format!("no queue at {}", queue.url)))?;
        let mut refused = Vec::new();
        let mut refused_groups: Vec<(Option<&str>, &str)> = Vec::new();
        for m in batch {
            if self.dice.chance(f.entry_refused) {
                self.faults.count("sqs entry refused");
                refused.push(m.entry_id.clone());
                refused_groups.push((m.group_id.as_deref(), &m.event_id));
            } else {
                // SQS enqueues a batch's messages in order and reports each entry apart: a later
                // message of a refused entry's group goes ahead of it (docs/workers.md, ordering).
                let overtaken: Vec<&str> = refused_groups
                    .iter()
                    .filter(|(g, _)| g.is_some() && *g == m.group_id.as_deref())
                    .map(|(_, id)| *id)
                    .collect();
                if !overtaken.is_empty() {
                    let mut state = self.state();
                    state.stats.overtaken += overtaken.len() as u64;
                    state.late.extend(overtaken.iter().map(|id| (q, (*id).to_owned())));
                }
                self.enqueue(q, m);
            }
        }
        if self.dice.chance(f.lost_answer) {
            self.faults.count("sqs answer lost after the send");
            return Err(PublishError::unavailable("injected timeout after the batch was sent"));
        }
        Ok(refused)
    }
}
