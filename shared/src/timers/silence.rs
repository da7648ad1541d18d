//! Silent and disconnected instances: the state machine only (no I/O, time given).
//!
//! The instance's state (`S#activity` in its partition, the chat `-`) counts its traffic: the
//! fanout sends one activity note per instance per stream batch (how many events, the latest
//! receive time, the last connection change), never one per event. Its window is the
//! endpoint's, or derived from its own traffic: [`DERIVED_FACTOR`] times the average gap
//! between its notes, within [`MIN_DERIVED_S`] and [`MAX_DERIVED_S`], once it has had
//! [`MIN_NOTES`] notes (an instance that rarely receives anything is never called silent by
//! default).
//!
//! Checks are a chain of SQS-delayed timers: one pending at a time, numbered (`seq`); a check
//! whose number is not the state's is a duplicate or an old chain and does nothing. A check
//! that finds the window passed makes `whatsapp.instance.silent` and the `SilentInstances`
//! metric; the next activity makes `whatsapp.instance.resumed`. A disconnection that lasts past
//! its window gives the `DisconnectedInstances` metric (an alarm, docs/operations.md), again at
//! every check until the instance connects. SQS delays at most 15 minutes: a longer wait is
//! several checks.

use serde::{Deserialize, Serialize};

use crate::endpoint::{SilenceWindow, Timing};
use crate::event::{CloudEvent, EventData, EventType, Silence};

use super::{millis_to_time, ActivityNote, Note, Outcome, Scope};

/// Notes an instance must have had before its window is derived from them.
pub const MIN_NOTES: u64 = 20;
/// A derived window is this many average gaps.
pub const DERIVED_FACTOR: f64 = 30.0;
/// The shortest derived window: 30 minutes.
pub const MIN_DERIVED_S: u64 = 30 * 60;
/// The longest derived window: a day.
pub const MAX_DERIVED_S: u64 = 24 * 3600;
/// While silent, or disconnected past its window, the instance is checked this often, so the
/// metric (and its alarm) stays up until it is back.
pub const REPEAT_S: u64 = 300;
/// SQS's longest message delay: a check further away is reached in several steps.
pub const MAX_DELAY_S: u64 = 900;
/// A pending check this far past its time is taken for lost (a crash between the state's write
/// and the timer's send cannot lose it, but an expired or purged queue can): the next activity
/// starts a new chain.
pub const LOST_AFTER_MS: i64 = 120_000;
/// The state key of an instance's activity.
pub const STATE_KIND: &str = "activity";

/// An instance's activity, as stored (JSON in the state item).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActivityState {
    /// Events counted.
    #[serde(default)]
    pub events: u64,
    /// Activity notes counted.
    #[serde(default)]
    pub notes: u64,
    /// When its latest event was received, epoch ms.
    #[serde(default)]
    pub last_ms: i64,
    /// The average gap between notes, ms (exponentially weighted).
    #[serde(default)]
    pub gap_ms: f64,
    /// When it was declared silent (until traffic returns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_since_ms: Option<i64>,
    /// The window of the current silence, and whether it was derived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_window: Option<(u64, bool)>,
    /// How many times it went silent.
    #[serde(default)]
    pub silences: u64,
    /// Since when it is disconnected (its last connection change was a disconnection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnected_since_ms: Option<i64>,
    /// The time of the last connection change counted (an older one arriving late is ignored).
    #[serde(default)]
    pub connection_at_ms: i64,
    /// The pending check's number.
    #[serde(default)]
    pub check_seq: u64,
    /// When the pending check is due (none pending: `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_at_ms: Option<i64>,
}

impl ActivityState {
    /// The silence window in seconds and whether it is derived (`None`: never silent).
    pub fn window(&self, timing: &Timing) -> Option<(u64, bool)> {
        match timing.silence() {
            SilenceWindow::Off => None,
            SilenceWindow::Fixed(s) => Some((s, false)),
            SilenceWindow::Derived => {
                if self.notes < MIN_NOTES {
                    return None;
                }
                let s = (self.gap_ms * DERIVED_FACTOR / 1000.0) as u64;
                Some((s.clamp(MIN_DERIVED_S, MAX_DERIVED_S), true))
            }
        }
    }

    /// When the next check is due (`None`: nothing to watch).
    fn next_due(&self, timing: &Timing, now_ms: i64) -> Option<i64> {
        let repeat = now_ms + (REPEAT_S * 1000) as i64;
        let silence = match (self.silent_since_ms, self.window(timing)) {
            (Some(_), _) => Some(repeat),
            (None, Some((s, _))) if self.last_ms > 0 => Some(self.last_ms + (s * 1000) as i64),
            _ => None,
        };
        let disconnected = match (self.disconnected_since_ms, timing.disconnected_after_s()) {
            // Past its window: again every REPEAT_S, so the metric stays up.
            (Some(since), Some(s)) => {
                let at = since + (s * 1000) as i64;
                Some(if at <= now_ms { repeat } else { at })
            }
            _ => None,
        };
        let due = match (silence, disconnected) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }?;
        // Not in the past: a due time already passed is checked now.
        Some(due.max(now_ms))
    }

    /// Arm the next check from `now`: a new number, its time, and the timer to send.
    fn arm(&mut self, scope: &Scope, timing: &Timing, now_ms: i64) -> Option<(Note, u64)> {
        let Some(due) = self.next_due(timing, now_ms) else {
            self.check_at_ms = None;
            return None;
        };
        self.check_seq += 1;
        // A check beyond SQS's longest delay is reached in steps: it re-arms when it fires.
        let delay_ms = (due - now_ms).clamp(0, (MAX_DELAY_S * 1000) as i64);
        self.check_at_ms = Some(now_ms + delay_ms);
        let note = Note::Check {
            scope: scope.clone(),
            seq: self.check_seq,
        };
        Some((note, delay_ms as u64))
    }
}

/// The instance's traffic: counted; a silence ends; a check is armed if none is pending.
pub fn on_activity(
    mut state: ActivityState,
    note: &ActivityNote,
    timing: &Timing,
    now_ms: i64,
) -> Outcome<ActivityState> {
    let scope = &note.scope;
    state.notes += 1;
    state.events += note.events;
    if note.last_ms > state.last_ms {
        if state.last_ms > 0 {
            let gap = (note.last_ms - state.last_ms) as f64;
            state.gap_ms = if state.gap_ms == 0.0 {
                gap
            } else {
                0.8 * state.gap_ms + 0.2 * gap
            };
        }
        state.last_ms = note.last_ms;
    }
    if let Some(change) = &note.connection {
        if change.at_ms >= state.connection_at_ms {
            state.connection_at_ms = change.at_ms;
            state.disconnected_since_ms = if change.connected {
                None
            } else {
                state.disconnected_since_ms.or(Some(change.at_ms))
            };
        }
    }
    let mut events = Vec::new();
    if let Some(since) = state.silent_since_ms.take() {
        let (window, derived) = state.silent_window.take().unwrap_or_default();
        events.push(silence_event(
            scope,
            &state,
            EventType::InstanceResumed,
            window,
            derived,
            Some(since),
            now_ms,
        ));
    }
    // A pending check is kept unless it is lost, or something is now due before it (a
    // disconnection with a shorter window): then a new chain, and the old check finds itself
    // outnumbered.
    let due = state.next_due(timing, now_ms);
    let keep = state
        .check_at_ms
        .is_some_and(|at| now_ms <= at + LOST_AFTER_MS && !matches!(due, Some(d) if d + 1000 < at));
    let schedule = if keep { None } else { state.arm(scope, timing, now_ms) };
    Outcome::changed(state, events).with_schedule(schedule)
}

/// A check fired: is the instance silent, still disconnected? Then the next check.
pub fn on_check(
    mut state: ActivityState,
    scope: &Scope,
    seq: u64,
    timing: &Timing,
    now_ms: i64,
) -> Outcome<ActivityState> {
    if seq != state.check_seq || state.check_at_ms.is_none() {
        return Outcome::unchanged(state);
    }
    let mut events = Vec::new();
    let mut metrics = Vec::new();
    match (state.silent_since_ms, state.window(timing)) {
        (None, Some((window, derived))) if state.last_ms > 0 && now_ms >= state.last_ms + (window * 1000) as i64 => {
            state.silences += 1;
            state.silent_since_ms = Some(now_ms);
            state.silent_window = Some((window, derived));
            events.push(silence_event(
                scope,
                &state,
                EventType::InstanceSilent,
                window,
                derived,
                None,
                now_ms,
            ));
            metrics.push("SilentInstances");
        }
        (Some(_), Some(_)) => metrics.push("SilentInstances"),
        // The window was turned off during a silence: it ends quietly.
        (Some(_), None) => {
            state.silent_since_ms = None;
            state.silent_window = None;
        }
        _ => {}
    }
    if let (Some(since), Some(s)) = (state.disconnected_since_ms, timing.disconnected_after_s()) {
        if now_ms >= since + (s * 1000) as i64 {
            metrics.push("DisconnectedInstances");
        }
    }
    let schedule = state.arm(scope, timing, now_ms);
    let mut outcome = Outcome::changed(state, events).with_schedule(schedule);
    outcome.metrics = metrics;
    outcome
}

/// `whatsapp.instance.silent` or `whatsapp.instance.resumed`: its id is fixed by the instance
/// and the silence's number, so a check or an activity handled twice stores one event.
fn silence_event(
    scope: &Scope,
    state: &ActivityState,
    event_type: EventType,
    window_seconds: u64,
    window_derived: bool,
    silent_since_ms: Option<i64>,
    now_ms: i64,
) -> CloudEvent {
    let number = state.silences.to_string();
    let id = crate::identity::event_id(scope.provider, &scope.instance, event_type, None, &["silence", &number]);
    let data = EventData {
        silence: Some(Silence {
            last_event_at: millis_to_time(state.last_ms).into(),
            window_seconds,
            window_derived,
            silent_since: silent_since_ms.map(|ms| millis_to_time(ms).into()),
        }),
        ..EventData::default()
    };
    let now = millis_to_time(now_ms);
    CloudEvent::new(
        id,
        scope.provider,
        &scope.instance,
        event_type,
        None,
        now,
        &scope.endpoint,
        now,
        data,
    )
}
