//! The example workers (`examples/python-worker`, `examples/typescript-worker`) and the Rust
//! consumer's pointer resolution, end to end on the local stand-in: receivers store real
//! fixtures, the stream driver runs the fanout, and each worker long-polls the messages queue.
//! Each must handle every event once (a republished copy is a duplicate), read an event of a
//! later wahooks (new type, kinds, status) as the catch-alls, follow the pointers to what a
//! message leaves out (`data.stored_item`: the whole event, for one too large for its queue;
//! `data.raw_pointer`: the body, kept once for a webhook's several events in a body item, or in
//! the S3 bucket when too large for an item), delete what it handled and leave a failure on the
//! queue.

use crate::common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::QueueAttributeName;
use base64::Engine;
use chrono::Utc;
use common::moto::Moto;
use serde_json::Value;

use wahooks::config::Config;
use wahooks::local::{apigw_request, LocalStack};
use wahooks::providers::{parse_verified, ParseContext};
use wahooks::stream_driver::StreamDriver;
use wahooks::{CloudEvent, EventType, Provider, Route};

/// The bodies sent: a Z-API text from an ad (over the test queue's 1 KiB: sent as a pointer),
/// Meta bodies (a text, a group message, an echo, a status) and an Evolution message.
const BODIES: [(Provider, &str); 6] = [
    (Provider::Zapi, "received-text-from-ad.zapi-docs.json"),
    (Provider::Meta, "meta-cloud-text-message.json"),
    (Provider::Meta, "meta-docs-group-text.json"),
    (Provider::Meta, "meta-docs-smb-message-echoes-text.json"),
    (Provider::Meta, "pywa-message-status-read.json"),
    (Provider::Evolution, "messages-upsert-text-lid-addressing.json"),
];

/// A Meta webhook of several events (two messages of one chat, statuses, an account update):
/// its body is stored once, in a body item, and each event carries `data.raw_pointer` to it.
/// Its first message is the Meta text's again: that event is already stored, with its own body.
const SHARED: (Provider, &str) = (Provider::Meta, "meta-docs-batch-several-entries.json");

/// The Evolution image whose `data.message.base64` [`large_body`] replaces.
const LARGE: (Provider, &str) = (Provider::Evolution, "messages-upsert-image-base64.json");

/// The group message is alone in its chat (its FIFO group): failing it blocks nothing else. (The
/// echo is not: it went to `+1650…`, the person of the Meta text, one conversation with it.)
const FAILING: (Provider, &str) = (Provider::Meta, "meta-docs-group-text.json");

/// [`LARGE`] with ~600 KB of base64 of pseudo-random bytes (a fixed seed) as its image: random
/// bytes do not compress, nor does their base64 below ~3/4 of its size, so even zstd-compressed
/// the body is over DynamoDB's 400 KiB item and is kept in the S3 bucket. Its caption makes the
/// event over the test queue's 1 KiB even without its body: it travels as a `stored_item`
/// pointer, and the event read from the item carries the `raw_pointer` (both, chained).
fn large_body() -> Vec<u8> {
    let bytes = wahooks::testkit::noise(450_000, 0x5eed_b0d1_e5f0_0d5e);
    let fixture = std::fs::read(common::provider_dir(LARGE.0).join(LARGE.1)).expect("fixture");
    let mut body: Value = serde_json::from_slice(&fixture).expect("json");
    body["data"]["message"]["base64"] = base64::engine::general_purpose::STANDARD.encode(bytes).into();
    body["data"]["message"]["imageMessage"]["caption"] = "The whole shelf, as promised. ".repeat(40).into();
    serde_json::to_vec(&body).expect("json")
}

struct Published {
    _moto: Moto,
    stack: LocalStack,
    moto_url: String,
    queue: String,
    /// The events the messages queue holds, by id.
    expected: HashMap<String, CloudEvent>,
    /// The id a worker is told to fail on.
    fail_id: String,
    /// The id of the event sent as a pointer.
    pointer_id: String,
    /// The id republished under another deduplication id (a duplicate delivery).
    duplicate_id: String,
    /// The ids of [`SHARED`]'s events on the queue (their body in a body item).
    shared_ids: Vec<String>,
    /// The id of [`large_body`]'s event (its body in the bucket).
    large_id: String,
}

/// The events of a fixture as the receiver made them (each chat keyed by its person).
async fn parse_one(stack: &LocalStack, provider: Provider, file: &str) -> Vec<CloudEvent> {
    let body = std::fs::read(common::provider_dir(provider).join(file)).expect("fixture");
    keyed(stack, parse_body(provider, &body)).await
}

/// `events` keyed by their person, from the identity map the receiver learned.
async fn keyed(stack: &LocalStack, mut events: Vec<CloudEvent>) -> Vec<CloudEvent> {
    if let Some(book) = stack.receiver.registry.contact_book() {
        let cache = wahooks::contacts::Cache::default();
        wahooks::contacts::resolve(book, &cache, &mut events, Utc::now().timestamp_millis())
            .await
            .expect("the identity map");
    }
    events
}

fn parse_body(provider: Provider, body: &[u8]) -> Vec<CloudEvent> {
    parse_verified(
        &ParseContext::new(provider, "ep", Utc::now()),
        &wahooks::auth::Verified::trusted(body),
    )
    .expect("json")
}

/// The events of `body` the messages queue gets.
///
/// As the receiver made them: each chat keyed by its person, from the identity map the
/// receiver learned (a Meta echo to `+1650…` is the chat of `1650…`).
async fn queued(stack: &LocalStack, provider: Provider, body: &[u8]) -> Vec<CloudEvent> {
    keyed(stack, parse_body(provider, body))
        .await
        .into_iter()
        .filter(|e| {
            matches!(
                e.event_type,
                EventType::MessageReceived | EventType::MessageSent | EventType::Notification
            )
        })
        .collect()
}

/// The event `e` as the receiver stored it in its item.
async fn stored(stack: &LocalStack, e: &CloudEvent) -> CloudEvent {
    let item = aws_sdk_dynamodb::Client::new(&stack.sdk)
        .get_item()
        .table_name(&stack.config.events_table)
        .key("pk", AttributeValue::S(wahooks::store::keys::event_pk(e)))
        .key("sk", AttributeValue::S(wahooks::store::keys::event_sk(&e.id)))
        .consistent_read(true)
        .send()
        .await
        .expect("get")
        .item
        .unwrap_or_else(|| panic!("{} stored", e.id));
    wahooks::store::event_of_sdk_item(&item).expect("an event item")
}

async fn published() -> Published {
    let moto = Moto::start();
    let config = Config {
        events_table: "events".into(),
        endpoints_table: "endpoints".into(),
        retention_days: 30,
        queues: Vec::new(),
        routes: String::new(),
        body_bucket: None,
        parked_url: None,
        secrets_key: None,
        timers_url: None,
        media: Default::default(),
    };
    let base = LocalStack::provision(moto.sdk().await, config, "wahooks")
        .await
        .expect("provisioned");
    // A FIFO queue with SQS's smallest size limit takes the place of `messages`.
    let queue = base
        .sqs
        .create_queue()
        .queue_name("small-messages.fifo")
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::MaximumMessageSize, "1024")
        .send()
        .await
        .expect("queue")
        .queue_url()
        .expect("url")
        .to_owned();
    let mut config = base.config.clone();
    for (name, url) in &mut config.queues {
        if name == "messages" {
            *url = queue.clone();
        }
    }
    let stack = LocalStack::connect(base.sdk.clone(), config).await.expect("stack");
    let mut expected = HashMap::new();
    let mut bodies: Vec<(Provider, String, Vec<u8>)> = BODIES
        .into_iter()
        .chain([SHARED])
        .map(|(provider, file)| {
            let body = std::fs::read(common::provider_dir(provider).join(file)).expect("fixture");
            (provider, file.to_owned(), body)
        })
        .collect();
    let large = large_body();
    bodies.push((LARGE.0, format!("{} (large)", LARGE.1), large.clone()));
    // The events each body adds to the queue.
    let mut added: HashMap<String, Vec<CloudEvent>> = HashMap::new();
    // One endpoint (one tenant) per provider: the Meta fixtures share instances, which belong
    // to one tenant.
    let mut tokens: HashMap<Provider, String> = HashMap::new();
    for (provider, file, body) in &bodies {
        let token = match tokens.get(provider) {
            Some(t) => t.clone(),
            None => {
                let t = stack.url_token_endpoint(*provider).await.expect("endpoint");
                tokens.insert(*provider, t.clone());
                t
            }
        };
        let path = format!("/v1/hooks/{token}/any");
        let headers = [("content-type".to_owned(), "application/json".to_owned())];
        let response = stack
            .receiver
            .handle(Route::Any, apigw_request("POST", &path, "", &headers, body))
            .await;
        assert_eq!(response.status().as_u16(), 200, "{file}");
        for e in queued(&stack, *provider, body).await {
            // A message delivered again in another webhook is the same event, stored (and
            // queued) once: the batch repeats the Meta text's first message.
            if let std::collections::hash_map::Entry::Vacant(slot) = expected.entry(e.id.clone()) {
                added.entry(file.clone()).or_default().push(e.clone());
                slot.insert(e);
            }
        }
    }
    // What makes the workers prove they follow `data.raw_pointer`: these events were stored
    // without `raw`, so no message of theirs carries it (slimmed or not), and a worker that
    // skipped the pointer would report `has_raw: false`.
    let shared = added.remove(SHARED.1).unwrap_or_default();
    assert!(
        shared.len() >= 2,
        "several events of one webhook on the queue: {shared:?}"
    );
    let mut shared_sha = Vec::new();
    for e in &shared {
        let s = stored(&stack, e).await;
        let pointer = s.data.raw_pointer.as_ref().expect("a shared body is pointed at");
        assert!(
            s.data.raw.is_none() && pointer.table.is_some() && pointer.bucket.is_none(),
            "{pointer:?}"
        );
        shared_sha.push(pointer.sha256.clone());
    }
    shared_sha.dedup();
    assert_eq!(shared_sha.len(), 1, "one body item for the webhook");
    let [large_event]: [CloudEvent; 1] = queued(&stack, LARGE.0, &large).await.try_into().expect("one event");
    assert!(expected.contains_key(&large_event.id));
    let s = stored(&stack, &large_event).await;
    let pointer = s.data.raw_pointer.as_ref().expect("a large body is pointed at");
    assert!(
        s.data.raw.is_none() && pointer.bucket.is_some() && pointer.table.is_none(),
        "{pointer:?}"
    );
    let mut driver = StreamDriver::new(&stack.sdk, &stack.config.events_table);
    let drained = driver
        .drain(&stack.fanout, Duration::from_secs(60))
        .await
        .expect("stream");
    assert!(drained);
    assert!(driver.stats().fanout.slimmed >= 1, "one event went as a pointer");

    let fail_id = parse_one(&stack, FAILING.0, FAILING.1).await.remove(0).id;
    let pointer_id = parse_one(&stack, BODIES[0].0, BODIES[0].1).await.remove(0).id;
    // A second delivery of the Meta text, as a replay would publish it (its body built as the
    // fanout builds it: over 1 KiB, it goes as a pointer too).
    let duplicate = parse_one(&stack, Provider::Meta, "meta-cloud-text-message.json")
        .await
        .remove(0);
    let pointer = wahooks::event::StoredItemPointer {
        table: stack.config.events_table.clone(),
        pk: wahooks::store::keys::event_pk(&duplicate),
        sk: wahooks::store::keys::event_sk(&duplicate.id),
    };
    let small = wahooks::fanout::Queue::new("messages", queue.clone(), 1024);
    stack
        .sqs
        .send_message()
        .queue_url(&queue)
        .message_body(wahooks::fanout::body_for(&duplicate, &small, &pointer))
        .message_group_id(wahooks::fanout::group_id(&duplicate))
        .message_deduplication_id(format!("{}#again", duplicate.id))
        .send()
        .await
        .expect("duplicate sent");
    // An event from a later wahooks: a provider, type, chat kind, content kind and status this one does
    // not know, and a field it does not have. A worker built today reads them as the catch-alls
    // (the compatibility policy), as the Rust consumer does, and handles the event.
    let mut future: Value = serde_json::from_str(&duplicate.to_json()).expect("event json");
    future["id"] = "f0000000000000000000000000000001".into();
    future["type"] = "whatsapp.message.scheduled".into();
    future["provider"] = "signalgateway".into();
    future["data"]["chat"]["kind"] = "community".into();
    future["data"]["content"]["kind"] = "hologram".into();
    future["data"]["status"] = "beamed".into();
    future["data"]["hologram"] = serde_json::json!({"depth": 3});
    future["data"]["raw"] = serde_json::json!({"from": "a later wahooks"});
    let future = future.to_string();
    let read = wahooks_consumer::decode(&future).expect("the Rust consumer reads it");
    assert_eq!(read.event_type, EventType::Unknown);
    assert_eq!(read.provider, wahooks::Provider::Other);
    stack
        .sqs
        .send_message()
        .queue_url(&queue)
        .message_body(&future)
        .message_group_id("future")
        .message_deduplication_id(&read.id)
        .send()
        .await
        .expect("future event sent");
    expected.insert(read.id.clone(), read);
    // The events wahooks makes from time passing (schema 1.2): a turn over the Meta text and the
    // instance's silence, made by the timers' own state machines and sent as the fanout sends.
    for made in made_events(&duplicate) {
        stack
            .sqs
            .send_message()
            .queue_url(&queue)
            .message_body(made.to_json())
            .message_group_id(wahooks::fanout::group_id(&made))
            .message_deduplication_id(&made.id)
            .send()
            .await
            .expect("made event sent");
        expected.insert(made.id.clone(), made);
    }
    assert!(expected.contains_key(&fail_id) && expected.contains_key(&pointer_id));
    Published {
        moto_url: moto.url(),
        _moto: moto,
        stack,
        queue,
        expected,
        fail_id,
        pointer_id,
        duplicate_id: duplicate.id,
        shared_ids: shared.into_iter().map(|e| e.id).collect(),
        large_id: large_event.id,
    }
}

/// A turn listing `message` and a silence of its instance, as the `timers` function makes them.
fn made_events(message: &CloudEvent) -> Vec<CloudEvent> {
    use wahooks::endpoint::Timing;
    use wahooks::timers::{message_note, silence, turns, ActivityNote, Scope};
    let scope = Scope {
        provider: message.provider,
        instance: message.instance.clone(),
        chat: message.subject.clone(),
        endpoint: message.endpoint.clone(),
    };
    let note = message_note(message, scope.clone()).expect("an inbound message");
    let now = message.time_ms() + 10_000;
    let open = turns::on_message(turns::TurnState::default(), &note, 3_000, now);
    let closed = turns::on_due(open.state, &scope, 1, 3_000, now + 3_000);
    let timing = Timing {
        silence_after_s: Some(60),
        ..Timing::default()
    };
    let instance = Scope { chat: None, ..scope };
    let activity = ActivityNote {
        scope: instance.clone(),
        events: 1,
        last_ms: now,
        connection: None,
        last_event_id: message.id.clone(),
    };
    let armed = silence::on_activity(silence::ActivityState::default(), &activity, &timing, now);
    let seq = armed.state.check_seq;
    let silent = silence::on_check(armed.state, &instance, seq, &timing, now + 61_000);
    let mut made: Vec<CloudEvent> = closed.events.into_iter().chain(silent.events).collect();
    assert_eq!(made.len(), 2, "a turn and a silence");
    // And the archiver's event for the message's file.
    let now = chrono::Utc::now();
    let data = wahooks::event::EventData {
        media: Some(wahooks::event::MediaFile {
            event_id: message.id.clone(),
            message_id: message.data.message_id.clone(),
            bucket: Some("wahooks-bodies".into()),
            key: Some(format!("media/{}", message.id)),
            bytes: Some(1234),
            content_type: Some("image/jpeg".into()),
            sha256: Some("0".repeat(64)),
            reason: None,
            detail: None,
            attempts: 1,
        }),
        ..wahooks::event::EventData::default()
    };
    made.push(CloudEvent::new(
        "a1".repeat(16),
        message.provider,
        &message.instance,
        EventType::MediaArchived,
        message.subject.clone(),
        now,
        &message.endpoint,
        now,
        data,
    ));
    made
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Run a worker to completion against `p`; its JSON output lines.
fn run_worker(p: &Published, mut command: Command) -> Vec<Value> {
    let out = command
        .args(["--queue-url", &p.queue, "--endpoint-url", &p.moto_url])
        .args(["--wait-seconds", "1", "--idle-exit", "2"])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("WORKER_FAIL_ID", &p.fail_id)
        .output()
        .expect("the worker runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "worker failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("a JSON line: {l}")))
        .collect()
}

async fn assert_worked(p: &Published, lines: &[Value], worker: &str) {
    let mut handled: HashMap<String, &Value> = HashMap::new();
    for line in lines.iter().filter(|l| l.get("id").is_some()) {
        assert_eq!(line["worker"], worker);
        let id = line["id"].as_str().expect("id").to_owned();
        assert!(
            handled.insert(id.clone(), line).is_none(),
            "{worker}: {id} handled twice"
        );
    }
    let mut want: Vec<_> = p.expected.keys().filter(|id| **id != p.fail_id).cloned().collect();
    let mut got: Vec<_> = handled.keys().cloned().collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "{worker}: every event but the failing one, once");
    for (id, line) in &handled {
        let e = &p.expected[id];
        assert_eq!(line["type"], e.event_type.as_str(), "{worker}");
        assert_eq!(line["chat"].as_str(), e.subject.as_deref(), "{worker}");
        // Made events carry no provider body.
        let has_raw = !e.event_type.is_derived();
        assert_eq!(
            line["has_raw"], has_raw,
            "{worker}: {id} has its raw (pointer resolved)"
        );
        let text = e.data.content.as_ref().and_then(|c| c.text.as_deref());
        assert_eq!(line["text"].as_str(), text, "{worker}");
        // A turn's messages and a silence's window, read from the typed event.
        let turn: Option<Vec<String>> = e.data.turn.as_ref().map(|t| {
            t.messages
                .iter()
                .map(|m| m.message_id.clone().unwrap_or_else(|| m.event_id.clone()))
                .collect()
        });
        assert_eq!(line["turn"], serde_json::json!(turn), "{worker}: {id}");
        let window = e.data.silence.as_ref().map(|s| s.window_seconds);
        assert_eq!(line["silence_window_s"], serde_json::json!(window), "{worker}: {id}");
        let media_key = e.data.media.as_ref().and_then(|m| m.key.clone());
        assert_eq!(line["media_key"], serde_json::json!(media_key), "{worker}: {id}");
    }
    assert!(handled.contains_key(&p.pointer_id), "{worker}: the pointer event");
    for id in p.shared_ids.iter().chain([&p.large_id]) {
        assert!(
            handled.get(id).is_some_and(|l| l["has_raw"] == true),
            "{worker}: {id}'s body (a body item or an object) read back into raw"
        );
    }
    // The archived file's link: presigned on its bucket and key.
    for (id, e) in p
        .expected
        .iter()
        .filter(|(_, e)| e.event_type == EventType::MediaArchived)
    {
        let key = e.data.media.as_ref().and_then(|m| m.key.clone()).expect("key");
        assert!(
            lines.iter().any(|l| l["presigned"] == id.as_str()
                && l["url"]
                    .as_str()
                    .is_some_and(|u| u.contains(&key) && u.contains("Signature"))),
            "{worker}: a presigned URL for {id}"
        );
    }
    assert!(
        lines.iter().any(|l| l["duplicate"] == p.duplicate_id.as_str()),
        "{worker}: the second delivery is seen as a duplicate"
    );
    assert!(
        lines.iter().any(|l| l.get("failed").is_some()),
        "{worker}: the failure is reported"
    );
    // What was handled is deleted; the failure stays for another attempt.
    let attrs = p
        .stack
        .sqs
        .get_queue_attributes()
        .queue_url(&p.queue)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("attributes");
    let count = |a: QueueAttributeName| {
        attrs
            .attributes()
            .and_then(|m| m.get(&a))
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or_default()
    };
    assert_eq!(
        count(QueueAttributeName::ApproximateNumberOfMessages)
            + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        1,
        "{worker}: only the failed message is left"
    );
}

#[tokio::test]
async fn the_python_worker_handles_every_event_once_and_leaves_failures() {
    let p = published().await;
    let python = root().join(".venv/bin/python");
    assert!(python.exists(), "run `make test`: it creates .venv");
    let mut command = Command::new(python);
    command.arg(root().join("examples/python-worker/worker.py"));
    let lines = run_worker(&p, command);
    assert_worked(&p, &lines, "python").await;
}

#[tokio::test]
async fn the_typescript_worker_handles_every_event_once_and_leaves_failures() {
    let p = published().await;
    let script = root().join("examples/typescript-worker/dist/worker.js");
    assert!(
        script.exists(),
        "{} is missing: run `make test` (it builds the TypeScript worker)",
        script.display()
    );
    let mut command = Command::new("node");
    command.arg(script);
    let lines = run_worker(&p, command);
    assert_worked(&p, &lines, "typescript").await;
}

#[tokio::test]
async fn the_rust_consumer_resolves_a_pointer_to_the_whole_event() {
    let p = published().await;
    let pointers = wahooks_consumer::Pointers::new(
        aws_sdk_dynamodb::Client::new(&p.stack.sdk),
        wahooks::bucket::s3_client(&p.stack.sdk),
    );
    let mut resolved = Vec::new();
    let mut with_raw_pointer = Vec::new();
    let mut read = 0;
    for _ in 0..5 {
        let got = p
            .stack
            .sqs
            .receive_message()
            .queue_url(&p.queue)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        for m in got.messages() {
            read += 1;
            let event = wahooks_consumer::decode(m.body().expect("body")).expect("an event");
            let had_pointer = event.data.stored_item.is_some();
            let had_raw_pointer = event.data.raw.is_none() && event.data.raw_pointer.is_some();
            let whole = wahooks_consumer::resolve_pointer(&pointers, event)
                .await
                .expect("resolved");
            // What wahooks made from time passing has no provider body.
            assert_eq!(whole.data.raw.is_some(), !whole.event_type.is_derived(), "{}", whole.id);
            assert!(whole.data.stored_item.is_none());
            assert_eq!(
                whole.data.raw.as_ref().map(|r| r.get()),
                p.expected[&whole.id].data.raw.as_ref().map(|r| r.get()),
                "{}: the body the webhook brought",
                whole.id
            );
            if had_pointer {
                resolved.push(whole.id.clone());
            }
            if had_raw_pointer {
                with_raw_pointer.push(whole.id.clone());
            }
            p.stack
                .sqs
                .delete_message()
                .queue_url(&p.queue)
                .receipt_handle(m.receipt_handle().expect("handle"))
                .send()
                .await
                .expect("delete");
        }
    }
    assert_eq!(read, p.expected.len() + 1, "every message (and the duplicate) read");
    assert!(
        resolved.contains(&p.pointer_id),
        "the big event's pointer, followed: {resolved:?}"
    );
    // Each pointer on its own and both chained: the batch's events came with a `raw_pointer` to
    // their body item, the large image as a `stored_item` whose event points at the bucket.
    for id in &p.shared_ids {
        assert!(
            with_raw_pointer.contains(id),
            "{id} came with raw_pointer: {with_raw_pointer:?}"
        );
    }
    assert!(
        resolved.contains(&p.large_id),
        "{} came as stored_item: {resolved:?}",
        p.large_id
    );
    // A body that is not the one the pointer describes is refused, not handed over.
    for id in [&p.shared_ids[0], &p.large_id] {
        let mut wrong = stored(&p.stack, &p.expected[id]).await;
        if let Some(pointer) = wrong.data.raw_pointer.as_mut() {
            pointer.sha256 = "0".repeat(64);
        }
        assert!(
            matches!(
                pointers.resolve(wrong).await,
                Err(wahooks_consumer::PointerError::WrongBody(_))
            ),
            "{id}"
        );
    }
}
