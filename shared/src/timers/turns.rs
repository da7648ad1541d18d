//! Conversation turns: a chat's inbound messages gathered until the chat has been quiet for the
//! endpoint's window, then one `whatsapp.conversation.turn` event. The state machine only: no
//! I/O, time given ([`super::TimersHandler`] loads, applies and commits).
//!
//! The chat's state (`S#turn` in the chat's partition) holds the open turn's messages and a
//! generation `gen` that every new message steps. Each new message schedules a timer carrying
//! the generation it made, `window` later; a timer whose generation is still the state's closes
//! the turn, any older one finds a later message and does nothing (that message's timer will
//! come). So a turn closes once, after the last message of its burst plus the window, whatever
//! the number of timers, their duplicates or the function's restarts.
//!
//! A message is in a turn at most once: its event id is looked up in the open turn and in the
//! ids of the last closed turns, so a note sent again (a retried fanout batch, SQS delivering a
//! message twice) neither doubles it nor, after its turn, opens a new one.

use serde::{Deserialize, Serialize};

use crate::event::{Chat, CloudEvent, EventData, EventType, Turn, TurnMessage};

use super::{millis_to_time, MessageNote, Note, Outcome, Scope};

/// The most messages one turn holds: the next one closes it and opens the next turn (a state
/// item and a turn event then stay far below DynamoDB's and SQS's size limits).
pub const MAX_TURN_MESSAGES: usize = 50;

/// The most bytes of a message's text a turn carries (WhatsApp's own limit on a text sent
/// through the API); a longer text is cut at a character boundary and flagged.
pub const MAX_TEXT_BYTES: usize = 4_096;

/// How many event ids of closed turns the state remembers, to know a note sent again (a note is
/// sent again within seconds: a retried fanout batch, SQS delivering twice).
pub const REMEMBERED_IDS: usize = 32;

/// The part of an event id a closed turn remembers: 16 of its 32 hex digits (64 bits: two of a
/// chat's last messages never share them), so the state item stays under one write unit.
fn remembered(event_id: &str) -> &str {
    event_id.get(..16).unwrap_or(event_id)
}

/// A chat's turn state, as stored (JSON in the state item).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TurnState {
    /// Stepped by every message added: a timer closes the turn only if it still names it.
    #[serde(default)]
    pub gen: u64,
    /// Turns closed so far.
    #[serde(default)]
    pub closed: u64,
    /// The open turn's messages, in arrival order.
    #[serde(default)]
    pub open: Vec<Entry>,
    /// The chat, as the first message of the open turn named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<Chat>,
    /// The event ids of the last closed turns' messages, shortened (at most [`REMEMBERED_IDS`],
    /// newest first).
    #[serde(default)]
    pub recent: Vec<String>,
}

/// One message of the open turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The message's event id.
    pub event_id: String,
    /// The WhatsApp message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The message's time, epoch ms.
    pub time_ms: i64,
    /// Its text or caption, at most [`MAX_TEXT_BYTES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Whether the text was cut.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl TurnState {
    fn knows(&self, event_id: &str) -> bool {
        self.open.iter().any(|e| e.event_id == event_id) || self.recent.iter().any(|id| id == remembered(event_id))
    }

    /// Close the open turn: its event, and the state without it.
    fn close(&mut self, scope: &Scope, window_ms: u64, now_ms: i64) -> Option<CloudEvent> {
        if self.open.is_empty() {
            return None;
        }
        let mut entries = std::mem::take(&mut self.open);
        // The order they were sent in; arrival order among equal times (a stable sort).
        entries.sort_by_key(|e| e.time_ms);
        self.closed += 1;
        let mut recent: Vec<String> = entries
            .iter()
            .rev()
            .map(|e| remembered(&e.event_id).to_owned())
            .collect();
        recent.append(&mut self.recent);
        recent.truncate(REMEMBERED_IDS);
        self.recent = recent;
        let chat = self.chat.take();
        let first = entries.first().map(|e| e.event_id.clone()).unwrap_or_default();
        let turn = Turn {
            number: self.closed,
            window_ms,
            messages: entries
                .into_iter()
                .map(|e| TurnMessage {
                    event_id: e.event_id,
                    message_id: e.message_id,
                    time: millis_to_time(e.time_ms).into(),
                    text: e.text,
                    text_truncated: e.truncated,
                })
                .collect(),
        };
        Some(turn_event(scope, chat, turn, &first, now_ms))
    }
}

/// The turn event of `scope`'s chat: its id is fixed by the chat, the turn's number and its
/// first message, so a close that is retried stores the same event.
fn turn_event(scope: &Scope, chat: Option<Chat>, turn: Turn, first: &str, now_ms: i64) -> CloudEvent {
    let number = turn.number.to_string();
    let id = crate::identity::event_id(
        scope.provider,
        &scope.instance,
        EventType::ConversationTurn,
        scope.chat.as_deref(),
        &["turn", &number, first],
    );
    let data = EventData {
        chat,
        turn: Some(turn),
        ..EventData::default()
    };
    let now = millis_to_time(now_ms);
    CloudEvent::new(
        id,
        scope.provider,
        &scope.instance,
        EventType::ConversationTurn,
        scope.chat.clone(),
        now,
        &scope.endpoint,
        now,
        data,
    )
}

/// `text` cut to at most [`MAX_TEXT_BYTES`] at a character boundary, and whether it was cut.
pub fn bounded_text(text: &str) -> (String, bool) {
    bounded_text_to(text, MAX_TEXT_BYTES)
}

/// `text` cut to at most `max` bytes at a character boundary, and whether it was cut.
pub fn bounded_text_to(text: &str, max: usize) -> (String, bool) {
    if text.len() <= max {
        return (text.to_owned(), false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text[..end].to_owned(), true)
}

/// A message arrived (`window_ms`: the endpoint's window).
pub fn on_message(mut state: TurnState, note: &MessageNote, window_ms: u64, now_ms: i64) -> Outcome<TurnState> {
    let scope = &note.scope;
    if state.knows(&note.event_id) {
        // Sent again. If its turn is still open, its timer may never have been sent (a crash
        // between the two): schedule the current one again; a duplicate timer is harmless.
        let schedule = (!state.open.is_empty()).then(|| Note::TurnDue {
            scope: scope.clone(),
            gen: state.gen,
        });
        return Outcome::unchanged(state).then_schedule(schedule, window_ms);
    }
    let mut events = Vec::new();
    if state.open.len() >= MAX_TURN_MESSAGES {
        events.extend(state.close(scope, window_ms, now_ms));
    }
    if state.open.is_empty() {
        state.chat = note.chat.as_deref().cloned();
    }
    let (text, truncated) = match note.text.as_deref().map(bounded_text) {
        Some((t, cut)) => (Some(t), cut),
        None => (None, false),
    };
    state.open.push(Entry {
        event_id: note.event_id.clone(),
        message_id: note.message_id.clone(),
        time_ms: note.time_ms,
        text,
        truncated,
    });
    state.gen += 1;
    let due = Note::TurnDue {
        scope: scope.clone(),
        gen: state.gen,
    };
    Outcome::changed(state, events).then_schedule(Some(due), window_ms)
}

/// A turn's timer fired: close the turn if no message came since it was set.
pub fn on_due(mut state: TurnState, scope: &Scope, gen: u64, window_ms: u64, now_ms: i64) -> Outcome<TurnState> {
    if gen != state.gen || state.open.is_empty() {
        return Outcome::unchanged(state);
    }
    let events: Vec<CloudEvent> = state.close(scope, window_ms, now_ms).into_iter().collect();
    Outcome::changed(state, events)
}

/// The state key of a chat's turns.
pub const STATE_KIND: &str = "turn";
