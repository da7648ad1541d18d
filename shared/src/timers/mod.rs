//! Events made from time passing: conversation turns ([`turns`]) and silent or disconnected
//! instances ([`silence`]). Why this design and what it costs: docs/architecture.md ("Events in
//! time") and docs/performance.md.
//!
//! - The fanout, after publishing a stream batch, sends the `timers` queue (standard SQS) one
//!   [`Note::Message`] per inbound message and one [`Note::Activity`] per instance of the batch
//!   ([`Feed`]).
//! - The `timers` function ([`TimersHandler`]) keeps one state item per chat (`S#turn`) and per
//!   instance (`S#activity`) in the events table, changed only by conditional writes on a version
//!   (read, apply the pure state machine, write if unchanged since, else again): concurrent
//!   notes never lose a change.
//! - Waiting is SQS's: a note that must be looked at again later is sent back to the same queue
//!   with a delay ([`Note::TurnDue`], [`Note::Check`]); each names the state it expects
//!   (generation, check number), so an old or doubled timer does nothing. No table is polled.
//! - A timer is sent *before* the state that expects it is written: a crash between the two
//!   leaves a timer that finds nothing to do, never a state waiting for a timer that will not
//!   come (the note being handled is not deleted, so it is handled again).
//! - The events made (the turn, silent, resumed) are written in the same transaction as the
//!   state that made them, in the chat's (instance's) partition: the stream publishes them like
//!   any event, in their FIFO group, after the messages they follow.

pub mod silence;
pub mod turns;

mod adapters;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::endpoint::Timing;
use crate::event::{Chat, ChatKind, CloudEvent, EventType, Provider};
use crate::store::{keys, StoreError};

pub use adapters::{
    delay_seconds, CachedTimings, DynamoTimerStore, MemoryScheduler, MemoryTimerStore, MemoryTimings, SqsScheduler,
};

/// Where a note is about: an instance's chat (`chat: None`: the instance itself), on an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// The provider.
    pub provider: Provider,
    /// The instance.
    pub instance: String,
    /// The chat (as the event's `subject`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<String>,
    /// The endpoint that received the events (its windows apply).
    pub endpoint: String,
}

impl Scope {
    /// The partition of the state and of the events made: the chat's (the instance's: `-`).
    pub fn pk(&self) -> String {
        keys::chat_partition(
            self.provider.as_str(),
            &self.instance,
            self.chat.as_deref().unwrap_or("-"),
        )
    }
}

/// An inbound message, for its chat's turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageNote {
    /// Its chat.
    pub scope: Scope,
    /// The chat as the event describes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<Box<Chat>>,
    /// The message's event id.
    pub event_id: String,
    /// The WhatsApp message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The message's time, epoch ms.
    pub time_ms: i64,
    /// Its text or caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// An instance's traffic in one stream batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityNote {
    /// The instance.
    pub scope: Scope,
    /// How many of its events the batch held.
    pub events: u64,
    /// When the latest was received, epoch ms.
    pub last_ms: i64,
    /// The batch's latest connection change, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionNote>,
    /// The event id of the batch's last event of this instance (what a retried batch sends
    /// again is recognised by it).
    pub last_event_id: String,
}

/// A connection change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionNote {
    /// Connected (else disconnected).
    pub connected: bool,
    /// When, epoch ms.
    pub at_ms: i64,
}

/// A message of the `timers` queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "note", rename_all = "snake_case")]
pub enum Note {
    /// An inbound message (from the fanout).
    Message(MessageNote),
    /// A chat's turn may be over, if its generation is still `gen` (a timer).
    TurnDue {
        /// The chat.
        scope: Scope,
        /// The generation that set it.
        gen: u64,
    },
    /// An instance's traffic (from the fanout).
    Activity(ActivityNote),
    /// An instance's check is due, if its number is still `seq` (a timer).
    Check {
        /// The instance.
        scope: Scope,
        /// The check's number.
        seq: u64,
    },
}

impl Note {
    /// The chat or instance it is about.
    pub fn scope(&self) -> &Scope {
        match self {
            Note::Message(n) => &n.scope,
            Note::TurnDue { scope, .. } | Note::Check { scope, .. } => scope,
            Note::Activity(n) => &n.scope,
        }
    }

    /// Its state's kind (the state item is `S#<kind>` in the scope's partition).
    pub fn kind(&self) -> &'static str {
        match self {
            Note::Message(_) | Note::TurnDue { .. } => turns::STATE_KIND,
            Note::Activity(_) | Note::Check { .. } => silence::STATE_KIND,
        }
    }

    /// The note as the queue's message body, with the characters SQS refuses in a body escaped
    /// (a message's text may hold U+FFFE), as an event's body is.
    pub fn to_json(&self) -> String {
        // Plain strings and numbers: serialising cannot fail.
        crate::sqs_rules::escape_body(serde_json::to_string(self).unwrap_or_default())
    }
}

/// What handling a note does: the state after it, whether it changed (then it is written), the
/// events made (written with it), the timer to send first, and metrics to emit once written.
#[derive(Debug)]
pub struct Outcome<S> {
    /// The state after the note.
    pub state: S,
    /// Whether it is to be written.
    pub changed: bool,
    /// Events made.
    pub events: Vec<CloudEvent>,
    /// A note to send back to the queue, and its delay in ms.
    pub schedule: Option<(Note, u64)>,
    /// CloudWatch metrics to count once (EMF).
    pub metrics: Vec<&'static str>,
}

impl<S> Outcome<S> {
    fn unchanged(state: S) -> Self {
        Outcome {
            state,
            changed: false,
            events: Vec::new(),
            schedule: None,
            metrics: Vec::new(),
        }
    }

    fn changed(state: S, events: Vec<CloudEvent>) -> Self {
        Outcome {
            state,
            changed: true,
            events,
            schedule: None,
            metrics: Vec::new(),
        }
    }

    fn then_schedule(self, note: Option<Note>, delay_ms: u64) -> Self {
        self.with_schedule(note.map(|n| (n, delay_ms)))
    }

    fn with_schedule(mut self, schedule: Option<(Note, u64)>) -> Self {
        self.schedule = schedule;
        self
    }
}

/// Epoch ms as a time (the epoch for one out of range).
pub(crate) fn millis_to_time(ms: i64) -> DateTime<Utc> {
    crate::event::from_millis(ms).unwrap_or_default()
}

/// Why a state could not be written (the note is retried).
#[derive(Debug, thiserror::Error)]
pub enum TimerError {
    /// The events table or the queue failed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A stored state or a note that does not read.
    #[error("unreadable: {0}")]
    Corrupt(String),
    /// Other writers changed the state at every attempt.
    #[error("the state of {0} changed at every attempt")]
    Contended(String),
}

impl From<StoreError> for TimerError {
    fn from(e: StoreError) -> Self {
        TimerError::Unavailable(crate::error_chain(&e))
    }
}

/// Whether a conditional commit was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Written.
    Done,
    /// The state changed since it was read: read it again.
    Conflict,
}

/// The port over the state items and the events they make.
#[async_trait]
pub trait TimerStore: Send + Sync {
    /// The state of `kind` in partition `pk` (JSON) and its version (0: none yet).
    async fn load(&self, pk: &str, kind: &str) -> Result<(Option<String>, u64), StoreError>;
    /// Write the state as version `version + 1` if it is still at `version`, with `events`
    /// (each stored once: one already stored is not written again), all or nothing.
    async fn commit(
        &self,
        pk: &str,
        kind: &str,
        state: &str,
        version: u64,
        events: &[CloudEvent],
    ) -> Result<Commit, StoreError>;
}

/// The port that sends a note back to the queue after a delay.
#[async_trait]
pub trait Scheduler: Send + Sync {
    /// Send `note` to be received `delay_ms` from now (SQS: in whole seconds, at most 900).
    async fn schedule(&self, note: &Note, delay_ms: u64) -> Result<(), String>;
}

/// The port that reads an endpoint's windows.
#[async_trait]
pub trait TimingSource: Send + Sync {
    /// The windows of endpoint `id` (the defaults for one without any).
    async fn timing(&self, id: &str) -> Result<Timing, String>;
}

/// How many times a note's state is read again when another writer got there first.
const ATTEMPTS: usize = 8;

/// A clock in epoch ms.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The `timers` function: notes in, states written, events made, timers sent.
#[derive(Clone)]
pub struct TimersHandler {
    store: Arc<dyn TimerStore>,
    scheduler: Arc<dyn Scheduler>,
    timings: Arc<dyn TimingSource>,
    clock: Clock,
    /// The latest generation this container saw of each chat's turn: a timer older than it is
    /// known stale without a read (generations only grow). Lost with the container: then read.
    generations: Arc<std::sync::Mutex<crate::bounded::BoundedMap<String, u64>>>,
}

/// How many chats' generations a container remembers.
const REMEMBERED_CHATS: usize = 10_000;

impl TimersHandler {
    /// A handler over its ports, on the system clock.
    pub fn new(store: Arc<dyn TimerStore>, scheduler: Arc<dyn Scheduler>, timings: Arc<dyn TimingSource>) -> Self {
        TimersHandler {
            store,
            scheduler,
            timings,
            clock: Arc::new(|| Utc::now().timestamp_millis()),
            generations: Arc::new(std::sync::Mutex::new(crate::bounded::BoundedMap::new(REMEMBERED_CHATS))),
        }
    }

    /// Whether a turn's timer is known stale: this container saw a later generation of its chat.
    fn known_stale(&self, pk: &str, note: &Note) -> bool {
        let Note::TurnDue { gen, .. } = note else {
            return false;
        };
        let seen = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(&pk.to_owned()).is_some_and(|latest| latest > gen)
    }

    /// Remember the generation of a chat's turn state (its JSON, as read or written).
    fn remember_generation(&self, pk: &str, note: &Note, state: Option<&str>) {
        if note.kind() != turns::STATE_KIND {
            return;
        }
        let Some(gen) = state
            .and_then(|s| serde_json::from_str::<turns::TurnState>(s).ok())
            .map(|s| s.gen)
        else {
            return;
        };
        let mut seen = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        if !matches!(seen.get(&pk.to_owned()), Some(g) if *g >= gen) {
            seen.insert(pk.to_owned(), gen);
        }
    }

    /// The same handler on another clock (tests, the simulation).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Handle one SQS batch: the notes that could not be handled are reported, to come back.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for record in event.records {
            let body = record.body.as_deref().unwrap_or_default();
            let handled = match serde_json::from_str::<Note>(body) {
                Ok(note) => self.apply(&note).await.map(|_| ()),
                Err(e) => Err(TimerError::Corrupt(format!("not a timers note: {e}"))),
            };
            if let Err(e) = handled {
                tracing::warn!(message_id = record.message_id.as_deref().unwrap_or("-"), error = %e, "timers note not handled; it will come back");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = record.message_id.unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    /// Handle one note; how many events it made.
    pub async fn apply(&self, note: &Note) -> Result<usize, TimerError> {
        let scope = note.scope();
        let timing = self
            .timings
            .timing(&scope.endpoint)
            .await
            .map_err(TimerError::Unavailable)?;
        let (pk, kind) = (scope.pk(), note.kind());
        // Turns off on this endpoint: its messages are not gathered (no read, no write).
        let turns_off = matches!(note, Note::Message(_)) && timing.turn_window_ms().is_none();
        if turns_off || self.known_stale(&pk, note) {
            return Ok(0);
        }
        for _ in 0..ATTEMPTS {
            let now = (self.clock)();
            let (json, version) = self.store.load(&pk, kind).await?;
            self.remember_generation(&pk, note, json.as_deref());
            let step = match note {
                Note::Message(_) | Note::TurnDue { .. } => step(json.as_deref(), |s| turn_step(s, note, &timing, now))?,
                Note::Activity(_) | Note::Check { .. } => {
                    step(json.as_deref(), |s| activity_step(s, note, &timing, now))?
                }
            };
            let Some((state, events, schedule, metrics)) = step else {
                return Ok(0);
            };
            // The timer first: a crash before the write leaves a timer with nothing to do.
            if let Some((next, delay_ms)) = &schedule {
                self.scheduler
                    .schedule(next, *delay_ms)
                    .await
                    .map_err(TimerError::Unavailable)?;
            }
            let Some(state) = state else {
                return Ok(0);
            };
            if self.store.commit(&pk, kind, &state, version, &events).await? == Commit::Conflict {
                continue;
            }
            self.remember_generation(&pk, note, Some(&state));
            for e in &events {
                tracing::info!(event_id = %e.id, r#type = %e.event_type, instance = %e.instance, "event made");
            }
            for metric in metrics {
                tracing::warn!(metric, provider = %scope.provider, instance = %scope.instance, "instance needs attention");
                crate::metrics::emit_metric(|| crate::metrics::emf_count(metric, &[], now));
            }
            return Ok(events.len());
        }
        Err(TimerError::Contended(pk))
    }
}

/// A state change: the state to write (`None`: unchanged), the events, the timer, the metrics.
type Step = (Option<String>, Vec<CloudEvent>, Option<(Note, u64)>, Vec<&'static str>);

/// Read the stored state (default when none), apply `f`, write it back as JSON.
fn step<S, F>(json: Option<&str>, f: F) -> Result<Option<Step>, TimerError>
where
    S: Default + Serialize + for<'de> Deserialize<'de>,
    F: FnOnce(S) -> Option<Outcome<S>>,
{
    let state: S = match json {
        Some(j) => serde_json::from_str(j).map_err(|e| TimerError::Corrupt(format!("state: {e}")))?,
        None => S::default(),
    };
    let Some(out) = f(state) else {
        return Ok(None);
    };
    let written = if out.changed {
        Some(serde_json::to_string(&out.state).map_err(|e| TimerError::Corrupt(e.to_string()))?)
    } else {
        None
    };
    Ok(Some((written, out.events, out.schedule, out.metrics)))
}

fn turn_step(state: turns::TurnState, note: &Note, timing: &Timing, now: i64) -> Option<Outcome<turns::TurnState>> {
    match note {
        // Turns off on this endpoint: the message is not gathered.
        Note::Message(n) => Some(turns::on_message(state, n, timing.turn_window_ms()?, now)),
        // A turn open when its window was turned off still closes.
        Note::TurnDue { scope, gen } => Some(turns::on_due(
            state,
            scope,
            *gen,
            timing.turn_window_ms().unwrap_or_default(),
            now,
        )),
        _ => None,
    }
}

fn activity_step(
    state: silence::ActivityState,
    note: &Note,
    timing: &Timing,
    now: i64,
) -> Option<Outcome<silence::ActivityState>> {
    match note {
        Note::Activity(n) => Some(silence::on_activity(state, n, timing, now)),
        Note::Check { scope, seq } => Some(silence::on_check(state, scope, *seq, timing, now)),
        _ => None,
    }
}

/// What the fanout tells the timers about one stream batch: a note per inbound message of a
/// direct or group chat, and one activity note per instance (the events wahooks makes itself
/// are not traffic). Each note remembers its record, so a note not sent fails that record.
#[derive(Debug, Default)]
pub struct Feed {
    notes: Vec<(usize, Note)>,
    activity: HashMap<(Provider, String, String), usize>,
}

impl Feed {
    /// Count the event of record `record`.
    pub fn add(&mut self, record: usize, event: &CloudEvent) {
        if event.event_type.is_derived() {
            return;
        }
        let scope = |chat: Option<String>| Scope {
            provider: event.provider,
            instance: event.instance.clone(),
            chat,
            endpoint: event.endpoint.clone(),
        };
        // A chat's turns are its person's, whichever alias each message came under.
        let chat = event.subject.as_ref().map(|_| event.chat_key().to_owned());
        if let Some(note) = message_note(event, scope(chat)) {
            self.notes.push((record, Note::Message(note)));
        }
        let received = event.receivedat.millis();
        let connection = match event.event_type {
            EventType::InstanceConnected => Some(true),
            EventType::InstanceDisconnected => Some(false),
            _ => None,
        }
        .map(|connected| ConnectionNote {
            connected,
            at_ms: event.time_ms(),
        });
        let key = (event.provider, event.instance.clone(), event.endpoint.clone());
        match self.activity.get(&key).and_then(|i| self.notes.get_mut(*i)) {
            Some((last_record, Note::Activity(n))) => {
                *last_record = record;
                n.events += 1;
                n.last_ms = n.last_ms.max(received);
                n.last_event_id.clone_from(&event.id);
                if connection
                    .as_ref()
                    .is_some_and(|c| !matches!(&n.connection, Some(o) if c.at_ms < o.at_ms))
                {
                    n.connection = connection;
                }
            }
            _ => {
                self.activity.insert(key, self.notes.len());
                self.notes.push((
                    record,
                    Note::Activity(ActivityNote {
                        scope: scope(None),
                        events: 1,
                        last_ms: received,
                        connection,
                        last_event_id: event.id.clone(),
                    }),
                ));
            }
        }
    }

    /// The notes with their records, in the order they were made.
    pub fn into_notes(self) -> Vec<(usize, Note)> {
        self.notes
    }
}

/// The note of an inbound message of a direct or group chat (`None` for anything else).
pub fn message_note(event: &CloudEvent, scope: Scope) -> Option<MessageNote> {
    if event.event_type != EventType::MessageReceived || event.data.from_me == Some(true) || scope.chat.is_none() {
        return None;
    }
    let kind = event.data.chat.as_ref().map(|c| c.kind);
    if !matches!(kind, None | Some(ChatKind::Direct) | Some(ChatKind::Group)) {
        return None;
    }
    let content = event.data.content.as_ref();
    // A turn keeps at most MAX_TEXT_BYTES of a text; the note carries a few bytes more, so the
    // turn still knows it was cut, and a note stays small whatever the message.
    let text = content
        .and_then(|c| c.text.as_deref().or(c.caption.as_deref()))
        .map(|t| turns::bounded_text_to(t, turns::MAX_TEXT_BYTES + 4).0);
    Some(MessageNote {
        scope,
        chat: event.data.chat.clone().map(Box::new),
        event_id: event.id.clone(),
        message_id: event.data.message_id.clone(),
        time_ms: event.time_ms(),
        text,
    })
}

#[cfg(test)]
mod tests;
