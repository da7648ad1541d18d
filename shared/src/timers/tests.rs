//! The timers on in-memory adapters and a hand-moved clock: turns, silence, and the faults the
//! design must survive (notes twice, timers twice, out of order, a crash between the timer and
//! the write, a restart).

use std::sync::atomic::{AtomicI64, Ordering};

use super::*;
use crate::event::{Content, ContentKind, EventData};

const T0: i64 = 1_780_000_000_000;

struct Rig {
    now: Arc<AtomicI64>,
    store: MemoryTimerStore,
    scheduler: MemoryScheduler,
    timings: MemoryTimings,
    handler: TimersHandler,
}

impl Rig {
    fn new() -> Rig {
        let now = Arc::new(AtomicI64::new(T0));
        let clock: Clock = {
            let now = now.clone();
            Arc::new(move || now.load(Ordering::SeqCst))
        };
        let store = MemoryTimerStore::new();
        let scheduler = MemoryScheduler::new(clock.clone());
        let timings = MemoryTimings::default();
        let handler = TimersHandler::new(
            Arc::new(store.clone()),
            Arc::new(scheduler.clone()),
            Arc::new(timings.clone()),
        )
        .with_clock(clock);
        Rig {
            now,
            store,
            scheduler,
            timings,
            handler,
        }
    }

    /// The function restarted: a new handler, nothing kept but the store and the queue.
    fn restart(&mut self) {
        let now = self.now.clone();
        self.handler = TimersHandler::new(
            Arc::new(self.store.clone()),
            Arc::new(self.scheduler.clone()),
            Arc::new(self.timings.clone()),
        )
        .with_clock(Arc::new(move || now.load(Ordering::SeqCst)));
    }

    fn advance(&self, ms: i64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }

    fn now(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }

    /// Handle every timer due, and those they set that are due too.
    async fn fire_due(&self) {
        loop {
            let due = self.scheduler.take_due();
            if due.is_empty() {
                return;
            }
            for note in due {
                self.handler.apply(&note).await.expect("timer handled");
            }
        }
    }

    /// Move the clock in steps of 100 ms for `ms`, firing what is due.
    async fn run_for(&self, ms: i64) {
        for _ in 0..ms / 100 {
            self.advance(100);
            self.fire_due().await;
        }
    }

    fn turns(&self) -> Vec<CloudEvent> {
        self.store
            .events()
            .into_iter()
            .filter(|e| e.event_type == EventType::ConversationTurn)
            .collect()
    }

    fn of_type(&self, t: EventType) -> Vec<CloudEvent> {
        self.store.events().into_iter().filter(|e| e.event_type == t).collect()
    }
}

fn scope(chat: Option<&str>) -> Scope {
    Scope {
        provider: Provider::Zapi,
        instance: "inst".into(),
        chat: chat.map(str::to_owned),
        endpoint: "ep_1".into(),
    }
}

fn note(chat: &str, n: u32, time_ms: i64) -> Note {
    Note::Message(MessageNote {
        scope: scope(Some(chat)),
        chat: Some(Box::new(Chat::new(chat.into(), ChatKind::Direct))),
        event_id: format!("{chat}-e{n}"),
        message_id: Some(format!("{chat}-m{n}")),
        time_ms,
        text: Some(format!("part {n}")),
    })
}

fn listed(turn: &CloudEvent) -> Vec<String> {
    turn.data
        .turn
        .as_ref()
        .map(|t| t.messages.iter().map(|m| m.event_id.clone()).collect())
        .unwrap_or_default()
}

async fn burst(rig: &Rig, chat: &str, n: u32) {
    for i in 1..=n {
        rig.handler.apply(&note(chat, i, rig.now())).await.expect("note");
        rig.run_for(200).await;
    }
}

#[tokio::test]
async fn bursts_of_one_three_and_ten_give_one_turn_each_listing_all_in_order() {
    for n in [1u32, 3, 10] {
        let rig = Rig::new();
        burst(&rig, "c", n).await;
        assert!(rig.turns().is_empty(), "no turn while the chat is typing");
        rig.run_for(3_100).await;
        let turns = rig.turns();
        assert_eq!(turns.len(), 1, "burst of {n}");
        let expected: Vec<String> = (1..=n).map(|i| format!("c-e{i}")).collect();
        assert_eq!(listed(&turns[0]), expected);
        let turn = turns[0].data.turn.as_ref().expect("turn");
        assert_eq!(turn.number, 1);
        assert_eq!(turn.window_ms, 3_000);
        assert_eq!(turn.messages[0].text.as_deref(), Some("part 1"));
        assert_eq!(turns[0].subject.as_deref(), Some("c"));
        assert_eq!(
            crate::store::keys::event_pk(&turns[0]),
            scope(Some("c")).pk(),
            "in the chat's partition"
        );
        rig.run_for(10_000).await;
        assert_eq!(rig.turns().len(), 1, "exactly one");
    }
}

#[tokio::test]
async fn a_redelivery_inside_or_after_the_window_changes_nothing() {
    let rig = Rig::new();
    burst(&rig, "c", 2).await;
    rig.handler.apply(&note("c", 1, T0)).await.expect("again, inside");
    rig.run_for(3_100).await;
    assert_eq!(rig.turns().len(), 1);
    assert_eq!(listed(&rig.turns()[0]), vec!["c-e1", "c-e2"]);
    rig.handler.apply(&note("c", 2, T0)).await.expect("again, after");
    rig.run_for(5_000).await;
    assert_eq!(rig.turns().len(), 1, "a note sent again after its turn opens none");
}

#[tokio::test]
async fn a_timer_this_container_knows_is_stale_costs_no_read() {
    let mut rig = Rig::new();
    burst(&rig, "c", 3).await;
    rig.advance(3_000);
    let due = rig.scheduler.take_due();
    assert_eq!(due.len(), 3, "one timer per message");
    let before = rig.store.loads();
    for timer in &due[..2] {
        rig.handler.apply(timer).await.expect("stale");
    }
    assert_eq!(rig.store.loads(), before, "the two older generations are known stale");
    // Another container knows nothing: it reads, and finds them stale all the same.
    rig.restart();
    rig.handler.apply(&due[0]).await.expect("stale, read");
    assert_eq!(rig.store.loads(), before + 1);
    assert!(rig.turns().is_empty());
    rig.handler.apply(&due[2]).await.expect("the current one");
    assert_eq!(rig.turns().len(), 1);
}

#[tokio::test]
async fn a_message_after_the_turn_starts_the_next_one() {
    let rig = Rig::new();
    burst(&rig, "c", 2).await;
    rig.run_for(3_100).await;
    burst(&rig, "c", 0).await;
    rig.handler.apply(&note("c", 3, rig.now())).await.expect("later");
    rig.run_for(3_100).await;
    let turns = rig.turns();
    assert_eq!(turns.len(), 2);
    assert_eq!(listed(&turns[1]), vec!["c-e3"]);
    assert_eq!(turns[1].data.turn.as_ref().map(|t| t.number), Some(2));
    assert_ne!(turns[0].id, turns[1].id);
}

#[tokio::test]
async fn messages_arriving_out_of_order_are_listed_in_the_order_sent() {
    let rig = Rig::new();
    for (n, t) in [(2, T0 + 500), (1, T0), (3, T0 + 900)] {
        rig.handler.apply(&note("c", n, t)).await.expect("note");
    }
    rig.run_for(3_100).await;
    assert_eq!(listed(&rig.turns()[0]), vec!["c-e1", "c-e2", "c-e3"]);
}

#[tokio::test]
async fn two_chats_interleaved_get_a_turn_each() {
    let rig = Rig::new();
    for i in 1..=3 {
        rig.handler.apply(&note("a", i, rig.now())).await.expect("a");
        rig.handler.apply(&note("b", i, rig.now())).await.expect("b");
        rig.run_for(300).await;
    }
    rig.run_for(3_100).await;
    let turns = rig.turns();
    assert_eq!(turns.len(), 2);
    for t in &turns {
        let chat = t.subject.clone().expect("chat");
        assert_eq!(listed(t), (1..=3).map(|i| format!("{chat}-e{i}")).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn a_restart_mid_window_still_gives_one_turn() {
    let mut rig = Rig::new();
    burst(&rig, "c", 2).await;
    rig.restart();
    rig.handler
        .apply(&note("c", 3, rig.now()))
        .await
        .expect("after restart");
    rig.run_for(3_100).await;
    assert_eq!(rig.turns().len(), 1);
    assert_eq!(listed(&rig.turns()[0]), vec!["c-e1", "c-e2", "c-e3"]);
}

#[tokio::test]
async fn a_crash_between_the_timer_and_the_write_loses_nothing_and_doubles_nothing() {
    let rig = Rig::new();
    rig.store.fail_next(1);
    let n = note("c", 1, T0);
    assert!(
        rig.handler.apply(&n).await.is_err(),
        "the write failed: the note comes back"
    );
    assert_eq!(rig.scheduler.pending(), 1, "its timer was already sent");
    rig.handler.apply(&n).await.expect("handled again");
    rig.run_for(3_100).await;
    // The timer sent before the crash names a generation that was never written: it did
    // nothing, the second one closed the turn.
    assert_eq!(rig.turns().len(), 1);
    // A crash while closing: the timer comes back, the turn is written once.
    rig.handler.apply(&note("c", 2, rig.now())).await.expect("next");
    rig.advance(3_000);
    let due = rig.scheduler.take_due();
    assert_eq!(due.len(), 1);
    rig.store.fail_next(1);
    assert!(rig.handler.apply(&due[0]).await.is_err());
    rig.handler.apply(&due[0]).await.expect("again");
    rig.handler.apply(&due[0]).await.expect("and a duplicate");
    assert_eq!(rig.turns().len(), 2);
}

#[tokio::test]
async fn turns_can_be_turned_off_and_bursts_are_bounded() {
    let rig = Rig::new();
    rig.timings.set(
        "ep_1",
        Timing {
            turn_window_ms: Some(0),
            ..Timing::default()
        },
    );
    burst(&rig, "c", 3).await;
    rig.run_for(5_000).await;
    assert!(rig.turns().is_empty(), "off");
    assert_eq!(rig.scheduler.pending(), 0, "no timer either");
    let (state, _) = rig
        .store
        .load(&scope(Some("c")).pk(), turns::STATE_KIND)
        .await
        .expect("load");
    assert!(state.is_none(), "nothing written");
    rig.timings.set("ep_1", Timing::default());
    for i in 1..=(turns::MAX_TURN_MESSAGES as u32 + 1) {
        rig.handler.apply(&note("d", i, T0 + i64::from(i))).await.expect("note");
    }
    rig.run_for(3_100).await;
    let turns = rig.turns();
    assert_eq!(turns.len(), 2);
    assert_eq!(listed(&turns[0]).len(), turns::MAX_TURN_MESSAGES);
    assert_eq!(listed(&turns[1]), vec![format!("d-e{}", turns::MAX_TURN_MESSAGES + 1)]);
}

#[test]
fn a_note_is_a_body_sqs_takes_whatever_the_text() {
    let mut e = event(
        EventType::MessageReceived,
        Some(("a", ChatKind::Direct)),
        Some(false),
        "1",
    );
    let long = format!("oi \u{fffe}\u{ffff} {}", "é".repeat(10_000));
    e.data.content = Some(Content {
        text: Some(long),
        ..Content::new(ContentKind::Text)
    });
    let mut feed = Feed::default();
    feed.add(0, &e);
    let (_, note) = feed.into_notes().remove(0);
    let body = note.to_json();
    assert!(body.chars().all(crate::sqs_rules::body_char), "escaped");
    assert!(body.len() < 2 * turns::MAX_TEXT_BYTES, "bounded: {}", body.len());
    let Note::Message(m) = serde_json::from_str::<Note>(&body).expect("reads back") else {
        unreachable!()
    };
    assert!(m.text.as_deref().is_some_and(|t| t.starts_with("oi \u{fffe}\u{ffff}")));
    let out = turns::on_message(turns::TurnState::default(), &m, 3_000, T0);
    assert!(out.state.open[0].truncated, "the turn still knows the text was cut");
}

#[test]
fn long_texts_are_cut_at_a_character_boundary() {
    let text = "é".repeat(3_000);
    let (cut, truncated) = turns::bounded_text(&text);
    assert!(truncated);
    assert!(cut.len() <= turns::MAX_TEXT_BYTES && cut.len() > turns::MAX_TEXT_BYTES - 2);
    assert_eq!(turns::bounded_text("hi"), ("hi".to_owned(), false));
}

fn activity(last_ms: i64, connection: Option<bool>) -> Note {
    Note::Activity(ActivityNote {
        scope: scope(None),
        events: 2,
        last_ms,
        connection: connection.map(|connected| ConnectionNote {
            connected,
            at_ms: last_ms,
        }),
        last_event_id: format!("e{last_ms}"),
    })
}

#[tokio::test]
async fn an_instance_goes_silent_past_its_window_and_resumes_with_traffic() {
    let rig = Rig::new();
    rig.timings.set(
        "ep_1",
        Timing {
            silence_after_s: Some(60),
            ..Timing::default()
        },
    );
    rig.handler.apply(&activity(rig.now(), None)).await.expect("traffic");
    rig.run_for(30_000).await;
    rig.handler
        .apply(&activity(rig.now(), None))
        .await
        .expect("more traffic");
    rig.run_for(59_000).await;
    assert!(rig.of_type(EventType::InstanceSilent).is_empty(), "inside its window");
    rig.run_for(2_000).await;
    let silent = rig.of_type(EventType::InstanceSilent);
    assert_eq!(silent.len(), 1);
    let s = silent[0].data.silence.as_ref().expect("silence");
    assert_eq!(s.window_seconds, 60);
    assert!(!s.window_derived);
    assert_eq!(silent[0].subject, None, "in the instance's partition");
    rig.run_for(1_000_000).await;
    assert_eq!(rig.of_type(EventType::InstanceSilent).len(), 1, "silent once");
    rig.handler.apply(&activity(rig.now(), None)).await.expect("back");
    rig.handler.apply(&activity(rig.now(), None)).await.expect("and more");
    let resumed = rig.of_type(EventType::InstanceResumed);
    assert_eq!(resumed.len(), 1);
    assert!(resumed[0]
        .data
        .silence
        .as_ref()
        .and_then(|s| s.silent_since.as_ref())
        .is_some());
    // And silent again, a second time: a new event.
    rig.run_for(61_000).await;
    assert_eq!(rig.of_type(EventType::InstanceSilent).len(), 2);
}

#[tokio::test]
async fn a_derived_window_needs_usual_traffic_and_follows_it() {
    let rig = Rig::new();
    for _ in 0..(silence::MIN_NOTES - 1) {
        rig.handler.apply(&activity(rig.now(), None)).await.expect("traffic");
        rig.advance(60_000);
        rig.fire_due().await;
    }
    rig.run_for(3 * 3600 * 1000 / 100 * 100).await;
    assert!(
        rig.of_type(EventType::InstanceSilent).is_empty(),
        "too little traffic to judge"
    );
    rig.handler.apply(&activity(rig.now(), None)).await.expect("traffic");
    let (json, _) = rig
        .store
        .load(&scope(None).pk(), silence::STATE_KIND)
        .await
        .expect("state");
    let state: silence::ActivityState = serde_json::from_str(&json.expect("some")).expect("json");
    let (window, derived) = state.window(&Timing::default()).expect("derived now");
    assert!(derived);
    assert!((silence::MIN_DERIVED_S..=silence::MAX_DERIVED_S).contains(&window));
}

#[test]
fn a_long_disconnection_raises_the_metric_until_it_connects() {
    let timing = Timing {
        silence_after_s: Some(0),
        disconnected_after_s: Some(120),
        ..Timing::default()
    };
    let Note::Activity(disconnected) = activity(T0, Some(false)) else {
        unreachable!()
    };
    let out = silence::on_activity(silence::ActivityState::default(), &disconnected, &timing, T0);
    let (check, delay) = out.schedule.clone().expect("a check");
    assert_eq!(delay, 120_000);
    let Note::Check { seq, .. } = check else { unreachable!() };
    let out = silence::on_check(out.state, &scope(None), seq, &timing, T0 + 120_000);
    assert_eq!(out.metrics, vec!["DisconnectedInstances"]);
    let (Note::Check { seq: next, .. }, delay) = out.schedule.clone().expect("again") else {
        unreachable!()
    };
    assert_eq!(delay, silence::REPEAT_S * 1000);
    // A duplicate of the old check does nothing.
    let stale = silence::on_check(out.state.clone(), &scope(None), seq, &timing, T0 + 121_000);
    assert!(!stale.changed && stale.schedule.is_none());
    let Note::Activity(connected) = activity(T0 + 200_000, Some(true)) else {
        unreachable!()
    };
    let back = silence::on_activity(out.state, &connected, &timing, T0 + 200_000);
    let done = silence::on_check(back.state, &scope(None), next, &timing, T0 + 420_000);
    assert!(done.metrics.is_empty());
    assert!(done.schedule.is_none(), "nothing left to watch");
}

fn event(t: EventType, chat: Option<(&str, ChatKind)>, from_me: Option<bool>, id: &str) -> CloudEvent {
    let data = EventData {
        chat: chat.map(|(id, kind)| Chat::new(id.into(), kind)),
        from_me,
        content: Some(Content {
            text: Some("hello".into()),
            ..Content::new(ContentKind::Text)
        }),
        ..EventData::default()
    };
    let now = Utc::now();
    CloudEvent::new(
        id.into(),
        Provider::Zapi,
        "inst",
        t,
        chat.map(|(id, _)| id.to_owned()),
        now,
        "ep_1",
        now,
        data,
    )
}

#[test]
fn the_feed_notes_inbound_messages_and_one_activity_per_instance() {
    let mut feed = Feed::default();
    let events = [
        event(
            EventType::MessageReceived,
            Some(("a", ChatKind::Direct)),
            Some(false),
            "1",
        ),
        event(
            EventType::MessageReceived,
            Some(("a", ChatKind::Direct)),
            Some(true),
            "2",
        ),
        event(EventType::MessageReceived, Some(("g", ChatKind::Group)), None, "3"),
        event(
            EventType::MessageReceived,
            Some(("status@broadcast", ChatKind::Status)),
            None,
            "4",
        ),
        event(EventType::MessageStatus, Some(("a", ChatKind::Direct)), Some(true), "5"),
        event(EventType::InstanceDisconnected, None, None, "6"),
        event(EventType::ConversationTurn, Some(("a", ChatKind::Direct)), None, "7"),
    ];
    for (i, e) in events.iter().enumerate() {
        feed.add(i, e);
    }
    let notes = feed.into_notes();
    let messages: Vec<&str> = notes
        .iter()
        .filter_map(|(_, n)| match n {
            Note::Message(m) => Some(m.event_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(messages, vec!["1", "3"], "inbound, direct or group");
    let activity: Vec<(usize, &ActivityNote)> = notes
        .iter()
        .filter_map(|(r, n)| match n {
            Note::Activity(a) => Some((*r, a)),
            _ => None,
        })
        .collect();
    assert_eq!(activity.len(), 1, "one per instance");
    assert_eq!(activity[0].0, 5, "attributed to its last record");
    assert_eq!(activity[0].1.events, 6, "the made turn is not traffic");
    assert_eq!(activity[0].1.connection.as_ref().map(|c| c.connected), Some(false));
    let json = notes[0].1.to_json();
    assert_eq!(serde_json::from_str::<Note>(&json).expect("round trip"), notes[0].1);
}

#[tokio::test]
async fn the_handler_reports_what_it_could_not_handle() {
    let rig = Rig::new();
    let mut batch = SqsEvent::default();
    let record = |id: &str, body: String| {
        let mut m = aws_lambda_events::event::sqs::SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body);
        m
    };
    batch.records = vec![record("ok", note("c", 1, T0).to_json()), record("bad", "{}".into())];
    let response = rig.handler.handle(batch).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, vec!["bad"]);
    assert_eq!(rig.scheduler.pending(), 1);
}

#[test]
fn delays_round_up_to_whole_seconds_within_sqs_limit() {
    assert_eq!(delay_seconds(0), 0);
    assert_eq!(delay_seconds(1), 1);
    assert_eq!(delay_seconds(3_000), 3);
    assert_eq!(delay_seconds(3_001), 4);
    assert_eq!(delay_seconds(10_000_000), 900);
}
