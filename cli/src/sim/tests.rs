//! The simulation's own tests: its models keep AWS's rules, a seed replays its run, and a
//! planted bug is caught.

use std::path::Path;

use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use wahooks::fanout::{OutMessage, Publisher, Queue};
use wahooks::EventType;

use super::dice::{Clock, Dice, Faults};
use super::mapping::{Invocation, Mapping, Settled};
use super::queues::{SimQueues, DEDUP_WINDOW_MS, MAX_RECEIVE_COUNT, VISIBILITY_MS};
use super::table::{sequence_number, SimBucket, SimTable};
use super::*;

fn args(n: usize, seed: u64) -> SimArgs {
    SimArgs {
        n,
        seed: Some(seed),
        rate: 50,
        shards: 4,
        no_faults: false,
        plant: None,
        json: true,
        fixtures: Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures"),
    }
}

fn message(id: &str, group: &str) -> OutMessage {
    OutMessage {
        entry_id: "e0".into(),
        body: format!(r#"{{"id":"{id}"}}"#),
        event_id: id.into(),
        dedup_id: Some(id.into()),
        event_type: EventType::MessageReceived,
        group_id: Some(group.into()),
    }
}

fn fifo() -> (SimQueues, Queue, Clock) {
    let queue = Queue::new("messages", "https://sqs.sim/messages.fifo", 262_144);
    let clock = Clock::at(0);
    let queues = SimQueues::new(
        std::slice::from_ref(&queue),
        Dice::new(1),
        Faults::default(),
        clock.clone(),
    );
    (queues, queue, clock)
}

#[tokio::test]
async fn fifo_deduplicates_for_five_minutes_only_and_counts_a_later_copy_as_documented() {
    let (queues, queue, clock) = fifo();
    queues.send_batch(&queue, &[message("a", "g")]).await.expect("sent");
    clock.advance(DEDUP_WINDOW_MS - 1);
    queues.send_batch(&queue, &[message("a", "g")]).await.expect("sent");
    assert_eq!(
        queues.stats().deduplicated,
        1,
        "within the window: accepted, not enqueued"
    );
    clock.advance(2);
    queues.send_batch(&queue, &[message("a", "g")]).await.expect("sent");
    let s = queues.stats();
    assert_eq!((s.enqueued, s.resent_past_window, s.doubled), (2, 1, 0));
    // An event sent again under another deduplication id within the window is a double.
    queues.send_batch(&queue, &[message("b", "g")]).await.expect("sent");
    let mut other = message("b", "g");
    other.dedup_id = Some("b#other".into());
    queues.send_batch(&queue, &[other]).await.expect("sent");
    assert_eq!(queues.stats().doubled, 1);
}

#[tokio::test]
async fn fifo_holds_a_group_while_a_message_is_in_flight_and_dead_letters_after_five_receives() {
    let (queues, queue, clock) = fifo();
    for id in ["a", "b"] {
        queues.send_batch(&queue, &[message(id, "g")]).await.expect("sent");
    }
    queues.send_batch(&queue, &[message("c", "h")]).await.expect("sent");
    let first = queues.receive(0);
    assert_eq!(
        first.iter().map(|r| r.event_id.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c"],
        "a group's messages in order"
    );
    assert!(queues.receive(0).is_empty(), "nothing while in flight");
    queues.delete(&first[2]);
    clock.advance(VISIBILITY_MS);
    for _ in 1..MAX_RECEIVE_COUNT {
        let again = queues.receive(0);
        assert_eq!(again[0].event_id, "a", "the head comes back first");
        clock.advance(VISIBILITY_MS);
    }
    assert!(queues.receive(0).is_empty(), "received 5 times: both moved to the DLQ");
    assert_eq!(queues.dead_letters(0), ["a", "b"]);
    // SQS's rules: an oversized message is refused as a batch.
    let mut big = message("d", "g");
    big.body = "x".repeat(262_145);
    assert!(queues.send_batch(&queue, &[big]).await.is_err());
}

fn table_with(records: usize) -> (SimTable, Clock) {
    let clock = Clock::at(0);
    let faults = Faults::default();
    let table = SimTable::new(1, Dice::new(1), faults.clone(), clock.clone(), SimBucket::new(faults));
    let ctx = wahooks::providers::ParseContext::new(wahooks::Provider::Zapi, "ep", chrono::Utc::now());
    for i in 0..records {
        let body = format!(
            r#"{{"type":"ReceivedCallback","instanceId":"I","messageId":"m{i}","phone":"5511","fromMe":false,"momment":{},"text":{{"message":"hi"}}}}"#,
            1_757_000_000_000i64 + i as i64
        );
        let events = wahooks::providers::parse_verified(&ctx, &wahooks::auth::Verified::trusted(body.as_bytes()))
            .expect("parses");
        futures::executor::block_on(wahooks::store::EventStore::put_if_absent(&table, &events)).expect("stored");
    }
    (table, clock)
}

#[test]
fn the_mapping_resumes_at_the_lowest_failure_bisects_a_crash_and_gives_up_past_the_record_age() {
    let (table, clock) = table_with(6);
    let settings = MappingSettings {
        batch_size: 4,
        ..MappingSettings::DEPLOYED
    };
    let mut mapping = Mapping::new(settings, 1);
    let batch = mapping.next_batch(&table, 0).expect("a batch");
    assert_eq!(batch.records.len(), 4);
    let mut response = DynamoDbEventResponse::default();
    let mut f = DynamoDbBatchItemFailure::default();
    f.item_identifier = Some(sequence_number(batch.records[2].1.seq));
    response.batch_item_failures.push(f);
    assert_eq!(
        mapping.settle(0, &batch, Invocation::Answered(&response), clock.now()),
        Settled::Retrying
    );
    let batch = mapping.next_batch(&table, 0).expect("the rest");
    assert_eq!(batch.records.len(), 4, "from the failed record on");
    assert_eq!(
        mapping.settle(0, &batch, Invocation::Crashed, clock.now()),
        Settled::Retrying
    );
    assert_eq!(mapping.next_batch(&table, 0).expect("bisected").records.len(), 2);
    clock.advance(12 * 3600 * 1000 + 1);
    let batch = mapping.next_batch(&table, 0).expect("still there");
    match mapping.settle(0, &batch, Invocation::Crashed, clock.now()) {
        Settled::GivenUp(info, n) => {
            assert_eq!(n, 2);
            let failed = wahooks::recover::FailedBatch::from_message(&info).expect("Lambda's record");
            assert_eq!(failed.size, 2);
        }
        other => panic!("expected a give-up, got {other:?}"),
    }
    let last = mapping.next_batch(&table, 0).expect("the shard moved on");
    assert_eq!(last.records.len(), 2);
    assert_eq!(
        mapping.settle(0, &last, Invocation::Answered(&Default::default()), clock.now()),
        Settled::Done
    );
    assert!(mapping.drained(&table));
}

#[tokio::test]
async fn a_seed_replays_its_run_exactly() {
    let one = simulate(args(1_500, 42)).await.expect("runs");
    let two = simulate(args(1_500, 42)).await.expect("runs");
    let other = simulate(args(1_500, 43)).await.expect("runs");
    assert_eq!(one["ok"], true, "{one:#}");
    assert_eq!(one["digest"], two["digest"]);
    for key in [
        "events_stored",
        "messages_enqueued",
        "faults",
        "http_attempts",
        "batches_given_up",
    ] {
        assert_eq!(one[key], two[key], "{key}");
    }
    assert_ne!(one["digest"], other["digest"], "another seed, another run");
}

#[tokio::test]
async fn a_short_run_with_a_fresh_seed_keeps_every_promise_under_every_fault() {
    let mut a = args(TEST_DELIVERIES, 0);
    a.seed = None;
    let r = simulate(a).await.expect("runs");
    eprintln!(
        "sim seed {} (replay: make sim N={TEST_DELIVERIES} SEED={})",
        r["seed"], r["seed"]
    );
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!((r["lost"].as_u64(), r["doubled"].as_u64()), (Some(0), Some(0)));
    assert_eq!(r["events_acknowledged"], r["events_stored"]);
    assert_eq!(r["events_stored"], r["events_published"]);
    assert!(
        r["batches_given_up"].as_u64() > Some(0),
        "the long outage gave batches up"
    );
    assert_eq!(
        r["records_given_up"], r["records_recovered"],
        "recover re-published them all"
    );
    for fault in [
        "episode: dynamodb throttling",
        "episode: s3 outage",
        "episode: sqs outage",
        "episode: sqs outage past the record age",
        "sqs unavailable",
    ] {
        assert!(r["faults"][fault].as_u64() > Some(0), "{fault} injected: {r:#}");
    }
}

#[tokio::test]
async fn a_planted_acknowledgement_before_the_write_is_caught() {
    let mut a = args(1_500, 7);
    a.plant = Some(Plant::AckBeforeWrite);
    let r = simulate(a).await.expect("runs");
    assert_eq!(r["ok"], false);
    assert!(r["lost_unstored"].as_u64() > Some(0), "{r:#}");
}

#[tokio::test]
async fn a_planted_fanout_that_forgets_its_failures_is_caught() {
    let mut a = args(1_500, 7);
    a.plant = Some(Plant::ForgetFailures);
    let r = simulate(a).await.expect("runs");
    assert_eq!(r["ok"], false);
    assert!(r["lost_unpublished"].as_u64() > Some(0), "{r:#}");
}
