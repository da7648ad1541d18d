//! The outbox end to end on a real local stand-in (moto server): receivers store, the local
//! stream driver reads the table's stream and calls the fanout handler with the event shape
//! Lambda delivers, the fanout sends to SQS, and the consumer crate reads what arrived.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use common::moto::Moto;
use serde_json::Value;

use wahooks::config::Config;
use wahooks::fanout::{Routing, SqsPublisher};
use wahooks::local::{apigw_request, LocalStack};
use wahooks::stream_driver::StreamDriver;
use wahooks::{CloudEvent, EventType, Provider, Route};

fn config() -> Config {
    Config {
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
    }
}

async fn stack(moto: &Moto) -> LocalStack {
    LocalStack::provision(moto.sdk().await, config(), "wahooks")
        .await
        .expect("tables and queues provisioned")
}

async fn endpoint(stack: &LocalStack, provider: Provider) -> String {
    stack.url_token_endpoint(provider).await.expect("endpoint stored")
}

async fn post(stack: &LocalStack, token: &str, body: &[u8]) -> (u16, Value) {
    let path = format!("/v1/hooks/{token}/any");
    let headers = [("content-type".to_owned(), "application/json".to_owned())];
    let response = stack
        .receiver
        .handle(Route::Any, apigw_request("POST", &path, "", &headers, body))
        .await;
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null),
    )
}

fn ids(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// A message as it arrived: the decoded event and its FIFO group.
struct Arrived {
    event: CloudEvent,
    group: Option<String>,
    body_len: usize,
}

/// Receive and delete everything on a queue.
async fn drain_queue(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<Arrived> {
    let mut out = Vec::new();
    let mut empty_rounds = 0;
    while empty_rounds < 2 {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .send()
            .await
            .expect("receive");
        if got.messages().is_empty() {
            empty_rounds += 1;
            continue;
        }
        empty_rounds = 0;
        for m in got.messages() {
            let body = m.body().expect("a body");
            let event = wahooks_consumer::decode(body).expect("the consumer crate reads every message");
            let group = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                .cloned();
            out.push(Arrived {
                event,
                group,
                body_len: body.len(),
            });
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().expect("handle"))
                .send()
                .await
                .expect("delete");
        }
    }
    out
}

async fn drain_all(stack: &LocalStack) -> HashMap<String, Vec<Arrived>> {
    let mut all = HashMap::new();
    for (name, url) in &stack.config.queues {
        all.insert(name.clone(), drain_queue(&stack.sqs, url).await);
    }
    all
}

async fn stored_ids(stack: &LocalStack) -> HashSet<String> {
    common::table_items(&stack.dynamo, &stack.config.events_table)
        .await
        .iter()
        .filter_map(|i| wahooks::store::keys::event_id_of_sk(common::s(i, "sk")).map(str::to_owned))
        .collect()
}

async fn drive(stack: &LocalStack, driver: &mut StreamDriver) {
    // A busy stand-in can time out a stream read (6 s); Lambda's poller would read again, and
    // so does this (the driver keeps its place on an error).
    // A stand-in slowed by a busy machine may need more than one round to drain a wide
    // webhook: the driver keeps its place, so each round goes on where the last stopped (how
    // long it takes is measured by the benches, never asserted here).
    let mut errors = 0;
    for _ in 0..20 {
        match driver.drain(&stack.fanout, Duration::from_secs(120)).await {
            Ok(true) => return,
            Ok(false) => eprintln!("the stream is not drained yet, draining on"),
            Err(e) if errors < 5 => {
                errors += 1;
                eprintln!("stream read failed, reading again: {e}");
            }
            Err(e) => panic!("the stream can be read: {e:?}"),
        }
    }
    panic!("the stream was not drained in 20 rounds of 120 s");
}

#[tokio::test]
async fn every_fixture_reaches_its_queue_exactly_once_with_its_group() {
    let moto = Moto::start();
    let stack = stack(&moto).await;
    let mut accepted = HashSet::new();
    for provider in Provider::ALL {
        let token = endpoint(&stack, provider).await;
        for (name, body) in common::payloads(provider) {
            let (status, answer) = post(&stack, &token, &body).await;
            assert_eq!(status, 200, "{provider}/{name}: {answer}");
            accepted.extend(ids(&answer, "accepted"));
        }
    }
    assert_eq!(stored_ids(&stack).await, accepted, "every accepted event is stored");

    let mut driver = StreamDriver::new(&stack.sdk, &stack.config.events_table);
    drive(&stack, &mut driver).await;
    assert_eq!(driver.stats().failed, 0);

    let routing = stack.fanout.routing();
    let arrived = drain_all(&stack).await;
    let pointers = wahooks_consumer::Pointers::new(stack.dynamo.clone(), wahooks::bucket::s3_client(&stack.sdk));
    let mut shared_bodies = 0;
    let mut seen: HashSet<String> = HashSet::new();
    for (queue, messages) in &arrived {
        let mut on_this_queue = HashSet::new();
        for m in messages {
            let e = &m.event;
            assert!(on_this_queue.insert(e.id.clone()), "{} twice on {queue}", e.id);
            let targets: Vec<_> = routing.targets(e.event_type).map(|q| q.name.as_str()).collect();
            assert_eq!(
                targets,
                [queue.as_str()],
                "{} ({}) routed to {queue}",
                e.id,
                e.event_type
            );
            let fifo = queue_is_fifo(&stack, queue);
            if fifo {
                let group = wahooks::sqs_rules::GroupId::for_chat(&e.instance, e.chat_key());
                assert_eq!(m.group.as_deref(), Some(group.as_str()), "one group per chat");
                assert!(wahooks::sqs_rules::valid_group_or_dedup_id(group.as_str()));
            }
            // Its raw body: in the event, or (a body several events share) where it points.
            let whole = pointers.resolve(e.clone()).await.expect("pointers followed");
            assert!(whole.data.raw.is_some(), "{} carries its raw body", e.id);
            shared_bodies += usize::from(e.data.raw_pointer.is_some());
            seen.insert(e.id.clone());
        }
    }
    assert_eq!(seen, accepted, "every stored event was published, nothing else");
    assert!(
        shared_bodies > 0,
        "the fixtures with several events share one stored body"
    );
    assert!(!arrived["messages"].is_empty() && !arrived["statuses"].is_empty());
    assert!(!arrived["instance"].is_empty() && !arrived["presence"].is_empty());
    assert!(arrived["unrouted"]
        .iter()
        .all(|m| m.event.event_type == EventType::Unknown));
}

fn queue_is_fifo(stack: &LocalStack, name: &str) -> bool {
    stack.queue_url(name).is_some_and(|u| u.ends_with(".fifo"))
}

#[tokio::test]
async fn the_same_webhook_delivered_ten_times_is_one_message() {
    let moto = Moto::start();
    let stack = stack(&moto).await;
    let token = endpoint(&stack, Provider::Zapi).await;
    let body =
        std::fs::read(common::provider_dir(Provider::Zapi).join("received-text.zapi-docs.json")).expect("fixture");
    let mut first = Vec::new();
    for i in 0..10 {
        let (status, answer) = post(&stack, &token, &body).await;
        assert_eq!(status, 200);
        if i == 0 {
            first = ids(&answer, "accepted");
        } else {
            assert_eq!(ids(&answer, "duplicates"), first, "delivery {i} is a duplicate");
        }
    }
    assert_eq!(first.len(), 1);
    let mut driver = StreamDriver::new(&stack.sdk, &stack.config.events_table);
    drive(&stack, &mut driver).await;
    let arrived = drain_all(&stack).await;
    let all: Vec<_> = arrived.values().flatten().map(|m| m.event.id.clone()).collect();
    assert_eq!(all, first, "one message for ten deliveries");
}

#[tokio::test]
async fn when_sqs_is_down_records_are_reported_failed_then_delivered_once() {
    let moto = Moto::start();
    let stack = stack(&moto).await;
    let token = endpoint(&stack, Provider::Zapi).await;
    let mut accepted = HashSet::new();
    for (_, body) in common::payloads(Provider::Zapi).into_iter().take(12) {
        let (status, answer) = post(&stack, &token, &body).await;
        assert_eq!(status, 200);
        accepted.extend(ids(&answer, "accepted"));
    }
    assert!(accepted.len() >= 10);

    // The same fanout, but SQS unreachable: a closed loopback port.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let dead_sdk = stack
        .sdk
        .to_builder()
        .endpoint_url(format!("http://127.0.0.1:{dead_port}"))
        .build();
    let dead_sqs = aws_sdk_sqs::Client::new(&dead_sdk);
    let down = wahooks::lambda::fanout_through(
        &stack.config,
        &SqsPublisher::new(stack.sqs.clone()),
        std::sync::Arc::new(SqsPublisher::new(dead_sqs)),
    )
    .await
    .expect("routing");

    let mut driver = StreamDriver::new(&stack.sdk, &stack.config.events_table);
    let handed = driver.poll_once(&down).await.expect("stream readable");
    assert_eq!(handed, accepted.len());
    assert_eq!(
        driver.stats().fanout.failed,
        accepted.len(),
        "every record reported failed"
    );
    assert!(driver.has_pending(), "the failed records wait to be retried");
    assert!(
        drain_all(&stack).await.values().all(|v| v.is_empty()),
        "nothing was sent"
    );

    // SQS is back: the retry delivers everything, once.
    drive(&stack, &mut driver).await;
    let arrived = drain_all(&stack).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for m in arrived.values().flatten() {
        *counts.entry(m.event.id.clone()).or_default() += 1;
    }
    assert_eq!(
        counts.keys().cloned().collect::<HashSet<_>>(),
        accepted,
        "nothing missing"
    );
    assert!(counts.values().all(|c| *c == 1), "nothing doubled: {counts:?}");
}

#[tokio::test]
async fn an_event_too_large_for_its_queue_is_sent_without_raw_with_its_pointer() {
    let moto = Moto::start();
    let base = stack(&moto).await;
    // A FIFO queue with SQS's smallest limit takes the place of `messages`.
    let small = base
        .sqs
        .create_queue()
        .queue_name("small.fifo")
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
            *url = small.clone();
        }
    }
    let stack = LocalStack::connect(base.sdk.clone(), config).await.expect("stack");
    let messages = stack
        .fanout
        .routing()
        .queues()
        .iter()
        .find(|q| q.name == "messages")
        .expect("messages queue");
    assert_eq!(messages.max_bytes, 1024, "the limit is read from the queue itself");

    let token = endpoint(&stack, Provider::Zapi).await;
    let body = std::fs::read(common::provider_dir(Provider::Zapi).join("received-text-from-ad.zapi-docs.json"))
        .expect("fixture");
    assert!(body.len() > 1024);
    let (status, answer) = post(&stack, &token, &body).await;
    assert_eq!(status, 200, "{answer}");

    let mut driver = StreamDriver::new(&stack.sdk, &stack.config.events_table);
    drive(&stack, &mut driver).await;
    assert_eq!(driver.stats().fanout.slimmed, 1);
    let arrived = drain_queue(&stack.sqs, &small).await;
    assert_eq!(arrived.len(), 1);
    let m = &arrived[0];
    assert!(m.body_len <= 1024);
    assert!(m.event.data.raw.is_none(), "raw left out");
    let pointer = m.event.data.stored_item.as_ref().expect("a pointer to the item");
    assert_eq!(pointer.table, stack.config.events_table);
    let item = stack
        .dynamo
        .get_item()
        .table_name(&pointer.table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pointer.pk.clone()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(pointer.sk.clone()))
        .send()
        .await
        .expect("get")
        .item
        .expect("the pointer leads to the item");
    let stored = wahooks::store::event_of_sdk_item(&item).expect("the item holds the CloudEvent");
    let raw: serde_json::Value = serde_json::from_str(stored.data.raw.expect("with raw").get()).expect("json");
    let sent: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(raw, sent, "the full body is one read away");
}

#[tokio::test]
async fn routing_overrides_fan_one_type_out_to_several_queues() {
    let moto = Moto::start();
    let base = stack(&moto).await;
    let audit = base
        .sqs
        .create_queue()
        .queue_name("audit")
        .send()
        .await
        .expect("queue")
        .queue_url()
        .expect("url")
        .to_owned();
    let mut config = base.config.clone();
    config.queues.push(("audit".into(), audit.clone()));
    config.routes = "message.received=messages+audit".into();
    let stack = LocalStack::connect(base.sdk.clone(), config).await.expect("stack");
    let token = endpoint(&stack, Provider::Zapi).await;
    let body =
        std::fs::read(common::provider_dir(Provider::Zapi).join("received-text.zapi-docs.json")).expect("fixture");
    let (_, answer) = post(&stack, &token, &body).await;
    let id = ids(&answer, "accepted");
    let mut driver = StreamDriver::new(&stack.sdk, &stack.config.events_table);
    drive(&stack, &mut driver).await;
    let on_audit: Vec<_> = drain_queue(&stack.sqs, &audit)
        .await
        .into_iter()
        .map(|m| m.event.id)
        .collect();
    let on_messages: Vec<_> = drain_queue(&stack.sqs, stack.queue_url("messages").expect("url"))
        .await
        .into_iter()
        .map(|m| m.event.id)
        .collect();
    assert_eq!(on_audit, id);
    assert_eq!(on_messages, id);
    assert!(Routing::parse_overrides(&stack.config.routes).is_ok());
}

/// A Meta webhook carrying `n` text messages, of chat `a` and (every third) chat `b`.
fn meta_batch(n: usize, a: &str, b: &str) -> (Vec<u8>, Vec<String>) {
    let mut messages = Vec::new();
    let mut of_a = Vec::new();
    for i in 0..n {
        let from = if i % 3 == 2 { b } else { a };
        let id = format!("wamid.order-{i}");
        if from == a {
            of_a.push(id.clone());
        }
        messages.push(serde_json::json!({
            "from": from, "id": id, "timestamp": "1757390383", "type": "text", "text": {"body": format!("message {i}")}
        }));
    }
    let body = serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": "PNID"},
            "messages": messages
        }}]}]
    });
    (serde_json::to_vec(&body).expect("json"), of_a)
}

#[tokio::test]
async fn one_webhooks_events_reach_their_queue_in_body_order() {
    let moto = Moto::start();
    let stack = stack(&moto).await;
    let token = endpoint(&stack, Provider::Meta).await;
    // Six messages of one chat in one webhook (the order a worker must see), and other chats'
    // webhooks around it, spread over the local stream's shards.
    for k in 0..6 {
        let (other, _) = meta_batch(3, &format!("1555010{k}"), &format!("1555020{k}"));
        assert_eq!(post(&stack, &token, &other).await.0, 200);
    }
    let (body, expected) = meta_batch(9, "15551234567", "15557654321");
    assert_eq!(expected.len(), 6);
    let (status, answer) = post(&stack, &token, &body).await;
    assert_eq!(status, 200, "{answer}");
    let mut driver = stack.stream_driver();
    drive(&stack, &mut driver).await;
    let arrived = drain_queue(&stack.sqs, stack.queue_url("messages").expect("url")).await;
    let order: Vec<String> = arrived
        .iter()
        .filter(|m| m.event.subject.as_deref() == Some("15551234567"))
        .filter_map(|m| m.event.data.message_id.clone())
        .collect();
    assert_eq!(order, expected, "the provider's order, within the chat's FIFO group");
}

#[tokio::test]
async fn chat_ids_of_any_text_and_characters_sqs_refuses_reach_their_queue() {
    let moto = Moto::start();
    let stack = stack(&moto).await;
    let token = endpoint(&stack, Provider::Zapi).await;
    let text = "oi \u{fffe}\u{ffff} 🙂 até já";
    let chats = [
        "Contato São Paulo 1",
        "Contact number",
        "🙂 grupo da família",
        &"9".repeat(300),
    ];
    let mut sent = HashMap::new();
    for (i, chat) in chats.iter().enumerate() {
        let body = serde_json::json!({
            "type": "ReceivedCallback", "instanceId": "INSTANCE", "messageId": format!("M{i}"),
            "phone": chat, "fromMe": false, "momment": 1757390383000u64, "text": {"message": text}
        });
        let (status, answer) = post(&stack, &token, &serde_json::to_vec(&body).expect("json")).await;
        assert_eq!(status, 200, "{answer}");
        // A chat id longer than the envelope's bound arrives as its digest (whole in `raw`).
        sent.insert(format!("M{i}"), wahooks::event::bounded_text(chat).into_owned());
    }
    let mut driver = stack.stream_driver();
    drive(&stack, &mut driver).await;
    assert_eq!(driver.stats().failed, 0, "SQS's rules were met on the first try");
    let arrived = drain_queue(&stack.sqs, stack.queue_url("messages").expect("url")).await;
    assert_eq!(arrived.len(), chats.len());
    let mut groups = HashSet::new();
    for m in &arrived {
        let id = m.event.data.message_id.clone().expect("message id");
        assert_eq!(
            m.event.subject.as_deref(),
            sent.get(&id).map(String::as_str),
            "the chat id as sent"
        );
        let content = m.event.data.content.as_ref().expect("content");
        assert_eq!(content.text.as_deref(), Some(text), "the text read back identically");
        let group = m.group.clone().expect("a FIFO group");
        assert!(wahooks::sqs_rules::valid_group_or_dedup_id(&group), "{group}");
        groups.insert(group);
    }
    assert_eq!(groups.len(), chats.len(), "different chats stay apart");
}

#[tokio::test]
async fn an_sqs_outage_longer_than_the_record_age_is_given_up_then_recovered_exactly_once() {
    let moto = Moto::start();
    let stack = stack(&moto).await;
    let token = endpoint(&stack, Provider::Zapi).await;
    let mut accepted = HashSet::new();
    for (_, body) in common::payloads(Provider::Zapi).into_iter().take(15) {
        let (status, answer) = post(&stack, &token, &body).await;
        assert_eq!(status, 200);
        accepted.extend(ids(&answer, "accepted"));
    }
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let dead = aws_sdk_sqs::Client::new(
        &stack
            .sdk
            .to_builder()
            .endpoint_url(format!("http://127.0.0.1:{dead_port}"))
            .build(),
    );
    let down = wahooks::lambda::fanout_through(
        &stack.config,
        &SqsPublisher::new(stack.sqs.clone()),
        std::sync::Arc::new(SqsPublisher::new(dead)),
    )
    .await
    .expect("routing");
    // The template's settings, with the record age scaled down from 12 h to 1 s.
    let settings = wahooks::stream_driver::MappingSettings {
        max_record_age: Some(Duration::from_secs(1)),
        ..wahooks::stream_driver::MappingSettings::DEPLOYED
    };
    let mut driver = stack.stream_driver().with_settings(settings);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while driver.has_pending() || driver.stats().invocations == 0 {
        driver.poll_once(&down).await.expect("stream");
        assert!(std::time::Instant::now() < deadline, "the batches were given up");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(driver.stats().given_up_records, accepted.len(), "every record given up");
    assert!(
        drain_all(&stack).await.values().all(|v| v.is_empty()),
        "nothing was published"
    );

    // SQS is back: recover, as an operator would, with a fanout of its own.
    let fanout = wahooks::lambda::fanout_with(&stack.config, SqsPublisher::new(stack.sqs.clone()))
        .await
        .expect("routing");
    let failures = stack.failures_url.clone().expect("a failures queue");
    let done = wahooks::stream_driver::recover(&stack.sdk, &failures, &fanout)
        .await
        .expect("recover");
    assert_eq!(done.records, accepted.len(), "{done:?}");
    assert!(done.left.is_empty(), "{done:?}");
    assert_eq!(done.batches, driver.stats().given_up);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for m in drain_all(&stack).await.values().flatten() {
        *counts.entry(m.event.id.clone()).or_default() += 1;
    }
    assert_eq!(
        counts.keys().cloned().collect::<HashSet<_>>(),
        accepted,
        "every event published"
    );
    assert!(counts.values().all(|c| *c == 1), "exactly once: {counts:?}");
    // The failure records are gone: a second recover finds nothing.
    let again = wahooks::stream_driver::recover(&stack.sdk, &failures, &fanout)
        .await
        .expect("recover");
    assert_eq!((again.batches, again.records), (0, 0));
}

#[tokio::test]
async fn a_route_to_a_queue_the_fanout_cannot_reach_stops_it_at_init_with_what_to_fix() {
    let moto = Moto::start();
    let base = stack(&moto).await;
    let mut config = base.config.clone();
    config.queues.push((
        "audit".into(),
        format!("{}/123456789012/no-such-queue.fifo", moto.url()),
    ));
    config.routes = "message.received=messages+audit".into();
    let err = LocalStack::connect(base.sdk.clone(), config)
        .await
        .err()
        .expect("the fanout refuses to start");
    let text = err.to_string();
    assert!(
        text.contains("WAHOOKS_QUEUE_AUDIT") && text.contains("sqs:SendMessage"),
        "{text}"
    );
}

// ------------------------------------------------------------------ the edges (docs/receiving.md)

/// Evolution's `messages.upsert` with `webhook_base64`: the image inline, `media` bytes of it.
fn evolution_media(id: &str, media: usize) -> Vec<u8> {
    wahooks::testkit::evolution_inline_media("inst-edge", id, media).into_bytes()
}

/// A Z-API status naming `n` message ids.
fn zapi_status(n: usize) -> Vec<u8> {
    let ids: Vec<String> = (0..n).map(|i| format!("3EB0{i:016X}")).collect();
    serde_json::to_vec(&serde_json::json!({
        "type": "MessageStatusCallback", "instanceId": "INSTANCE", "status": "READ", "ids": ids,
        "momment": 1757390383000u64, "phone": "5511999999999", "isGroup": false
    }))
    .expect("json")
}

/// A Meta webhook batching `n` statuses, each to its own recipient.
fn meta_statuses(n: usize) -> Vec<u8> {
    let statuses: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "id": format!("wamid.STATUS{i:06}"), "status": "delivered", "timestamp": "1757390383",
                "recipient_id": format!("5511{i:09}"),
                "pricing": {"billable": true, "pricing_model": "PMP", "category": "marketing"}
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": "PNID"},
            "statuses": statuses
        }}]}]
    }))
    .expect("json")
}

/// Post `body` to the endpoint of `token`, run the stream into the fanout, and read every
/// queue: the answer, and each accepted event as it arrived, resolved to the whole event.
async fn through_the_stack(stack: &LocalStack, token: &str, body: &[u8]) -> (u16, Value, Vec<CloudEvent>) {
    let (status, answer) = post(stack, token, body).await;
    let mut driver = stack.stream_driver();
    drive(stack, &mut driver).await;
    // A busy stand-in may fail a send, which is retried; nothing is given up or parked.
    assert_eq!(
        (driver.stats().given_up, driver.stats().fanout.parked),
        (0, 0),
        "no record held back"
    );
    let pointers = wahooks_consumer::Pointers::new(stack.dynamo.clone(), wahooks::bucket::s3_client(&stack.sdk));
    let mut events = Vec::new();
    for (_, arrived) in drain_all(stack).await {
        for m in arrived {
            assert!(m.body_len <= 1024 * 1024);
            events.push(pointers.resolve(m.event).await.expect("pointers followed"));
        }
    }
    (status, answer, events)
}

/// The objects the stack's bucket holds under `prefix`.
async fn objects(stack: &LocalStack, prefix: &str) -> Vec<String> {
    let s3 = wahooks::bucket::s3_client(&stack.sdk);
    let out = s3
        .list_objects_v2()
        .bucket(stack.config.body_bucket.as_deref().expect("a bucket"))
        .prefix(prefix)
        .send()
        .await
        .expect("list");
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

/// The raw JSON a body would have in `data.raw` (what the provider sent, compact).
fn compact(body: &[u8]) -> String {
    wahooks::providers::compact_raw(body).expect("json").get().to_owned()
}

#[tokio::test]
async fn a_600_kb_instance_id_is_stored_published_and_holds_nothing_back() {
    let moto = Moto::start();
    let stack = stack(&moto).await;
    let long = "A".repeat(600_000);
    let body = serde_json::to_vec(&serde_json::json!({
        "type": "ReceivedCallback", "instanceId": long, "messageId": "M-LONG", "phone": "5511999999999",
        "fromMe": false, "momment": 1757390383000u64, "text": {"message": "oi"}
    }))
    .expect("json");
    let (status, answer, events) = through_the_stack(&stack, &endpoint(&stack, Provider::Zapi).await, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(events.len(), 1, "published");
    let e = &events[0];
    assert_eq!(
        e.instance,
        wahooks::event::bounded_text(&long),
        "the envelope holds its digest"
    );
    assert!(e.source.len() < 100);
    let raw: Value = serde_json::from_str(e.data.raw.as_ref().expect("raw").get()).expect("json");
    assert_eq!(
        raw["instanceId"].as_str().map(str::len),
        Some(600_000),
        "the original stays in raw"
    );
}

#[tokio::test]
async fn a_zapi_status_of_a_thousand_ids_is_stored_once_and_a_wider_one_is_kept_in_quarantine() {
    let moto = Moto::start();
    let stack = stack(&moto).await;
    let token = endpoint(&stack, Provider::Zapi).await;
    let body = zapi_status(wahooks::store::MAX_EVENTS_PER_WEBHOOK);
    let (status, answer, events) = through_the_stack(&stack, &token, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(ids(&answer, "accepted").len(), 1000);
    assert_eq!(events.len(), 1000, "every status published, once");
    let items = common::table_items(&stack.dynamo, &stack.config.events_table).await;
    let bodies: Vec<_> = items.iter().filter(|i| common::s(i, "sk") == "B").collect();
    assert_eq!(bodies.len(), 1, "the body stored once for the thousand events");
    assert!(events
        .iter()
        .all(|e| e.data.raw.as_ref().map(|r| r.get().to_owned()) == Some(compact(&body))));

    let wider = zapi_status(wahooks::store::MAX_EVENTS_PER_WEBHOOK + 1);
    let (status, answer) = post(&stack, &token, &wider).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (413, Some("too_many_events")),
        "{answer}"
    );
    assert!(
        answer["detail"].as_str().unwrap_or_default().contains("quarantine"),
        "{answer}"
    );
    let items = common::table_items(&stack.dynamo, &stack.config.events_table).await;
    let quarantined: Vec<_> = items.iter().filter(|i| common::s(i, "pk").starts_with("Q#")).collect();
    assert_eq!(quarantined.len(), 1, "kept whole");
    let kept = wahooks::store::decompress(quarantined[0]["raw"].as_b().expect("raw").as_ref()).expect("zstd");
    assert_eq!(kept, wider);
}

#[tokio::test]
async fn a_meta_webhook_batching_hundreds_of_statuses_is_stored_and_published() {
    let moto = Moto::start();
    let stack = stack(&moto).await;
    let body = meta_statuses(400);
    let (status, answer, events) = through_the_stack(&stack, &endpoint(&stack, Provider::Meta).await, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(events.len(), 400);
    let chats: HashSet<_> = events.iter().map(|e| e.subject.clone()).collect();
    assert_eq!(chats.len(), 400, "one chat each");
    assert!(events
        .iter()
        .all(|e| e.data.raw_pointer.is_some() && e.data.raw.is_some()));
}

#[tokio::test]
async fn incompressible_media_of_450_kb_and_4_5_mb_is_kept_in_the_bucket_and_published() {
    let moto = Moto::start();
    let stack = stack(&moto).await;
    let token = endpoint(&stack, Provider::Evolution).await;
    // 450 KB of media (600 KB of base64: over an item even compressed), and a 4.5 MB body.
    for (id, media) in [("3EB0MEDIA450K", 600_000), ("3EB0MEDIA4M5", 4_500_000)] {
        let body = evolution_media(id, media);
        let (status, answer, events) = through_the_stack(&stack, &token, &body).await;
        assert_eq!(status, 200, "{id}: {answer}");
        assert_eq!(events.len(), 1, "{id}");
        let e = &events[0];
        let pointer = e.data.raw_pointer.as_ref().expect("the body is kept apart");
        assert_eq!(
            pointer.bucket.as_deref(),
            stack.config.body_bucket.as_deref(),
            "{id}: in the bucket"
        );
        assert_eq!(
            e.data.raw.as_ref().map(|r| r.get().len()),
            Some(compact(&body).len()),
            "{id}: whole"
        );
        assert_eq!(e.data.message_id.as_deref(), Some(id));
    }
    assert_eq!(objects(&stack, "bodies/").await.len(), 2);
    // A redelivery stores nothing new and keeps one object.
    let (status, answer) = post(&stack, &token, &evolution_media("3EB0MEDIA450K", 600_000)).await;
    assert_eq!((status, ids(&answer, "duplicates").len()), (200, 1), "{answer}");
    assert_eq!(objects(&stack, "bodies/").await.len(), 2);
}

#[tokio::test]
async fn a_3_mb_meta_history_chunk_is_stored_and_published() {
    let moto = Moto::start();
    let stack = stack(&moto).await;
    let body = wahooks::testkit::meta_history(3 * 1024 * 1024);
    assert!(body.len() >= 3 * 1024 * 1024);
    let (status, answer, events) = through_the_stack(&stack, &endpoint(&stack, Provider::Meta).await, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.data.notification.as_deref(), Some("history"));
    assert_eq!(e.data.raw.as_ref().map(|r| r.get().to_owned()), Some(compact(&body)));
    let threads = e
        .data
        .parameters
        .as_ref()
        .map(|p| p["history"][0]["threads"].as_array().map(Vec::len));
    assert!(
        threads.flatten().unwrap_or_default() > 100,
        "the normalised fields whole too"
    );
}

#[tokio::test]
async fn an_unreadable_stream_record_is_parked_and_the_records_behind_it_are_published() {
    let moto = Moto::start();
    let stack = stack(&moto).await;
    let token = endpoint(&stack, Provider::Zapi).await;
    let message = |id: &str| {
        serde_json::to_vec(&serde_json::json!({
            "type": "ReceivedCallback", "instanceId": "I", "messageId": id, "phone": "5511999999999",
            "fromMe": false, "momment": 1757390383000u64, "text": {"message": id}
        }))
        .expect("json")
    };
    assert_eq!(post(&stack, &token, &message("BEFORE")).await.0, 200);
    // An item no version of wahooks can read, in the same chat (and shard) as the others.
    let pk = wahooks::store::keys::chat_partition("zapi", "I", "5511999999999");
    stack
        .dynamo
        .put_item()
        .table_name(&stack.config.events_table)
        .item("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk))
        .item(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("E#0123456789abcdef0123456789abcdef".into()),
        )
        .item(
            "body",
            aws_sdk_dynamodb::types::AttributeValue::B(b"not zstd".to_vec().into()),
        )
        .send()
        .await
        .expect("put");
    assert_eq!(post(&stack, &token, &message("AFTER")).await.0, 200);
    let mut driver = stack.stream_driver();
    drive(&stack, &mut driver).await;
    assert_eq!(
        driver.stats().failed,
        0,
        "nothing retried: the record is parked, not holding its shard"
    );
    assert_eq!(driver.stats().fanout.parked, 1);
    let arrived = drain_queue(&stack.sqs, stack.queue_url("messages").expect("url")).await;
    let order: Vec<_> = arrived.iter().filter_map(|m| m.event.data.message_id.clone()).collect();
    assert_eq!(order, ["BEFORE", "AFTER"]);
    let parked_url = stack.config.parked_url.clone().expect("a parked queue");
    let got = stack
        .sqs
        .receive_message()
        .queue_url(&parked_url)
        .max_number_of_messages(10)
        .send()
        .await
        .expect("receive");
    assert_eq!(got.messages().len(), 1);
    let note: Value = serde_json::from_str(got.messages()[0].body().expect("body")).expect("json");
    assert_eq!(note["event_id"], "0123456789abcdef0123456789abcdef");
    assert!(note["stored_item"]["pk"]
        .as_str()
        .is_some_and(|pk| pk.starts_with("C#zapi#I#")));
    assert!(note["sequence_number"].is_string());
}

#[tokio::test]
async fn a_given_up_batch_is_recovered_with_one_record_skipped_and_one_parked() {
    let moto = Moto::start();
    let stack = stack(&moto).await;
    let token = endpoint(&stack, Provider::Zapi).await;
    // Six messages of one chat: one shard, one batch, in this order on the stream.
    let mut posted = Vec::new();
    for n in 0..6 {
        let body = serde_json::to_vec(&serde_json::json!({
            "type": "ReceivedCallback", "instanceId": "I", "messageId": format!("M{n}"),
            "phone": "5511999999999", "fromMe": false, "momment": 1757390383000u64 + n,
            "text": {"message": format!("M{n}")}
        }))
        .expect("json");
        let (status, answer) = post(&stack, &token, &body).await;
        assert_eq!(status, 200);
        let accepted = ids(&answer, "accepted");
        assert_eq!(accepted.len(), 1, "{answer}");
        posted.extend(accepted);
    }
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let dead = aws_sdk_sqs::Client::new(
        &stack
            .sdk
            .to_builder()
            .endpoint_url(format!("http://127.0.0.1:{dead_port}"))
            .build(),
    );
    let down = wahooks::lambda::fanout_through(
        &stack.config,
        &SqsPublisher::new(stack.sqs.clone()),
        std::sync::Arc::new(SqsPublisher::new(dead)),
    )
    .await
    .expect("routing");
    let settings = wahooks::stream_driver::MappingSettings {
        max_record_age: Some(Duration::from_secs(1)),
        ..wahooks::stream_driver::MappingSettings::DEPLOYED
    };
    let mut driver = stack.stream_driver().with_settings(settings);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while driver.has_pending() || driver.stats().invocations == 0 {
        driver.poll_once(&down).await.expect("stream");
        assert!(std::time::Instant::now() < deadline, "the batch was given up");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(driver.stats().given_up, 1, "one batch given up");
    assert_eq!(driver.stats().given_up_records, posted.len());

    // The operator reads the failure record (without taking it): its first record is skipped,
    // its last parked.
    let failures = stack.failures_url.clone().expect("a failures queue");
    let peek = stack
        .sqs
        .receive_message()
        .queue_url(&failures)
        .visibility_timeout(0)
        .send()
        .await
        .expect("receive");
    let batch = peek
        .messages()
        .first()
        .and_then(|m| m.body())
        .and_then(wahooks::recover::FailedBatch::from_message)
        .expect("a failure record");
    assert_ne!(batch.start, batch.end);
    let options = wahooks::recover::RecoverOptions {
        skip: [batch.start.clone(), "1".to_owned()].into(),
        park: [batch.end.clone()].into(),
        parked_url: stack.config.parked_url.clone(),
    };
    let fanout = wahooks::lambda::fanout_with(&stack.config, SqsPublisher::new(stack.sqs.clone()))
        .await
        .expect("routing");
    let done = wahooks::stream_driver::recover_with(&stack.sdk, &failures, &fanout, &options)
        .await
        .expect("recover");
    assert!(done.left.is_empty(), "{done:?}");
    assert_eq!(done.records, posted.len() - 2, "{done:?}");
    let (first, last) = (&posted[0], &posted[posted.len() - 1]);
    let set_aside = |v: &[wahooks::recover::SetAside]| -> Vec<(String, String)> {
        v.iter()
            .map(|r| (r.sequence_number.clone(), r.event_id.clone()))
            .collect()
    };
    assert_eq!(set_aside(&done.skipped), [(batch.start.clone(), first.clone())]);
    assert_eq!(set_aside(&done.parked), [(batch.end.clone(), last.clone())]);
    assert_eq!(done.not_found, ["1"], "a sequence number in no range is reported");

    // The others arrived once; the skipped and parked ones did not reach their queue.
    let mut counts: HashMap<String, usize> = HashMap::new();
    for m in drain_all(&stack).await.values().flatten() {
        *counts.entry(m.event.id.clone()).or_default() += 1;
    }
    let expected: HashSet<String> = posted[1..posted.len() - 1].iter().cloned().collect();
    assert_eq!(counts.keys().cloned().collect::<HashSet<_>>(), expected);
    assert!(counts.values().all(|c| *c == 1), "exactly once: {counts:?}");

    // The parked one is on the parked queue, with the fanout's note.
    let parked_url = stack.config.parked_url.clone().expect("a parked queue");
    let got = stack
        .sqs
        .receive_message()
        .queue_url(&parked_url)
        .max_number_of_messages(10)
        .send()
        .await
        .expect("receive");
    assert_eq!(got.messages().len(), 1);
    let note: Value = serde_json::from_str(got.messages()[0].body().expect("body")).expect("json");
    assert_eq!(note["event_id"], last.as_str());
    assert_eq!(note["parked"], wahooks::recover::OPERATOR_PARK_REASON);
    assert_eq!(note["sequence_number"], batch.end.as_str());
    assert_eq!(note["stored_item"]["table"], stack.config.events_table.as_str());
    assert_eq!(note["stored_item"]["sk"], format!("E#{last}"));

    // The failure record was deleted: nothing is left to recover.
    let again = wahooks::stream_driver::recover(&stack.sdk, &failures, &fanout)
        .await
        .expect("recover");
    assert_eq!((again.batches, again.records), (0, 0), "{again:?}");
}

/// The one document End User Messaging Social publishes for a one-entry Meta webhook.
fn social_document(webhook: &Value, account: &str) -> String {
    let mut docs = wahooks::social::documents_of(webhook.to_string().as_bytes(), account).expect("a Meta webhook");
    assert_eq!(docs.len(), 1);
    docs.remove(0)
}

#[tokio::test]
async fn end_user_messaging_events_published_twice_reach_their_queues_once_with_metas_ids() {
    use wahooks::endpoint::{Endpoint, SnsSource};
    let moto = Moto::start();
    let stack = stack(&moto).await;
    let account = "123456789012";

    // The topic standing in for the WABA's event destination, delivering to the social queue
    // as the template subscribes it (raw message delivery).
    let sns = aws_sdk_sns::Client::new(&stack.sdk);
    let topic = sns
        .create_topic()
        .name("wahooks-social-events")
        .send()
        .await
        .expect("topic")
        .topic_arn()
        .expect("arn")
        .to_owned();
    let social_url = stack.social_url.clone().expect("the social queue");
    let queue_arn = stack
        .sqs
        .get_queue_attributes()
        .queue_url(&social_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("attributes")
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("arn");
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .expect("subscription");

    // A message and the status of a message sent in the same chat, as Meta would post them.
    let message: Value = serde_json::from_slice(
        &std::fs::read(common::provider_dir(Provider::Meta).join("meta-cloud-text-message.json")).expect("fixture"),
    )
    .expect("json");
    let mut status = message.clone();
    let value = &mut status["entry"][0]["changes"][0]["value"];
    value.as_object_mut().expect("value").remove("messages");
    value["statuses"] = serde_json::json!([{
        "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI4QjQ2NkE1RTk3QzNDNjdGMDkA",
        "status": "delivered",
        "timestamp": "1749416390",
        "recipient_id": "16505551234"
    }]);
    let waba = message["entry"][0]["id"].as_str().expect("waba").to_owned();

    // Published before any source exists: left to the queue (retried, then its DLQ), not lost.
    sns.publish()
        .topic_arn(&topic)
        .message(social_document(&message, account))
        .send()
        .await
        .expect("publish");
    assert_eq!(stack.drain_social().await.expect("drain"), 0, "no source yet");

    // The source, in a tenant; its Meta webhook endpoint joins the same tenant.
    let source = Endpoint {
        source: Some(SnsSource {
            account: account.into(),
            waba: waba.clone(),
            topic_arn: None,
        }),
        ..wahooks::registry::new_endpoint(Provider::Meta, wahooks::endpoint::Auth::url_token())
    };
    stack
        .registry
        .create(&SnsSource::token(&waba), &source)
        .await
        .expect("source");
    let webhook_token = wahooks::registry::new_token();
    let webhook = Endpoint {
        tenant: source.tenant.clone(),
        ..wahooks::registry::new_endpoint(Provider::Meta, wahooks::endpoint::Auth::url_token())
    };
    stack
        .registry
        .create(&webhook_token, &webhook)
        .await
        .expect("webhook endpoint");
    // No URL reaches the source.
    let (status_code, _) = post(&stack, &SnsSource::token(&waba), b"{}").await;
    assert_eq!(status_code, 404);

    // Each published twice (SNS standard may deliver twice), one from another account too.
    for doc in [&message, &message, &status, &status] {
        sns.publish()
            .topic_arn(&topic)
            .message(social_document(doc, account))
            .send()
            .await
            .expect("publish");
    }
    sns.publish()
        .topic_arn(&topic)
        .message(social_document(&message, "999999999999"))
        .send()
        .await
        .expect("publish");
    // (The early copy waits out its visibility timeout, a minute, before its retry.)
    let mut done = 0;
    for _ in 0..3 {
        done += stack.drain_social().await.expect("drain");
    }
    assert_eq!(
        done, 4,
        "the four from the source's account; the foreign one stays queued"
    );
    let stored = stored_ids(&stack).await;
    assert_eq!(stored.len(), 2, "one message, one status: {stored:?}");

    let mut driver = stack.stream_driver();
    drive(&stack, &mut driver).await;
    let arrived = drain_all(&stack).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for messages in arrived.values() {
        for m in messages {
            *seen.entry(m.event.id.clone()).or_default() += 1;
            assert_eq!(m.event.source, "wahooks/meta/106540352242922", "Meta's instance");
        }
    }
    assert_eq!(seen.keys().cloned().collect::<HashSet<_>>(), stored);
    assert!(seen.values().all(|n| *n == 1), "each once: {seen:?}");

    // Meta's own webhook of the same events, in the same tenant, gets exactly these ids: they
    // are duplicates, never new events.
    let mut via_webhook = HashSet::new();
    for doc in [&message, &status] {
        let (code, v) = post(&stack, &webhook_token, doc.to_string().as_bytes()).await;
        assert_eq!(code, 200, "{v}");
        assert!(ids(&v, "accepted").is_empty(), "{v}");
        via_webhook.extend(ids(&v, "duplicates"));
    }
    assert_eq!(via_webhook, stored);
}

/// Drive the stream and the timers queue until `done` holds (or a minute passes): what the
/// stream mapping and the `timers` function's queue mapping do in AWS.
async fn run_until<F: Fn(&HashSet<String>) -> bool>(
    stack: &LocalStack,
    timers: &LocalStack,
    driver: &mut StreamDriver,
    what: &str,
    done: F,
) {
    for _ in 0..240 {
        drive(stack, driver).await;
        timers.drain_timers().await.expect("timers drained");
        drive(stack, driver).await;
        let stored = stored_types(stack).await;
        if done(&stored) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{what}: not reached within a minute");
}

/// Every stored event id with its type.
async fn stored_types(stack: &LocalStack) -> HashSet<String> {
    common::table_items(&stack.dynamo, &stack.config.events_table)
        .await
        .iter()
        .filter(|i| wahooks::store::keys::is_event_sk(common::s(i, "sk")))
        .map(|i| format!("{}:{}", common::s(i, "type"), common::s(i, "sk")))
        .collect()
}

fn count(stored: &HashSet<String>, t: EventType) -> usize {
    stored
        .iter()
        .filter(|s| s.starts_with(&format!("{}:", t.as_str())))
        .count()
}

#[tokio::test]
async fn bursts_give_one_turn_after_their_messages_and_a_silent_instance_resumes() {
    let moto = Moto::start();
    let stack = stack(&moto).await;
    let token = endpoint(&stack, Provider::Zapi).await;
    // Short windows: a turn after 1 s of quiet, silence after 3 s without traffic.
    let mut ep = {
        use wahooks::registry::EndpointRegistry;
        (*stack.registry.lookup(&token).await.expect("lookup").expect("exists")).clone()
    };
    ep.timing = wahooks::endpoint::Timing {
        turn_window_ms: Some(1_000),
        silence_after_s: Some(3),
        ..Default::default()
    };
    stack.registry.update(&ep).await.expect("timing set");
    // Windows of seconds: the fanout tells of the instance's traffic at every batch.
    let mut stack = stack;
    stack.fanout = stack.fanout.clone().activity_every(Duration::ZERO);
    assert_eq!(
        stack.registry.timing_of(&ep.id).await.expect("read back"),
        ep.timing,
        "kept on the version record"
    );
    let message = |chat: &str, id: &str, n: u64| {
        serde_json::to_vec(&serde_json::json!({
            "type": "ReceivedCallback", "instanceId": "I", "messageId": id, "phone": chat,
            "fromMe": false, "momment": 1757390383000u64 + n, "text": {"message": format!("text {id}")}
        }))
        .expect("json")
    };
    // Two chats interleaved: three messages to A, two to B, within a second; one redelivered.
    for (chat, id, n) in [
        ("5511A", "A1", 1),
        ("5511B", "B1", 2),
        ("5511A", "A2", 3),
        ("5511B", "B2", 4),
        ("5511A", "A3", 5),
    ] {
        assert_eq!(post(&stack, &token, &message(chat, id, n)).await.0, 200);
    }
    assert_eq!(
        post(&stack, &token, &message("5511A", "A2", 3)).await.0,
        200,
        "a redelivery"
    );
    let mut driver = stack.stream_driver();
    drive(&stack, &mut driver).await;
    // The timers function restarts mid-window: a new handler over the same table and queue.
    let restarted = LocalStack::connect(stack.sdk.clone(), stack.config.clone())
        .await
        .expect("a new container");
    run_until(&stack, &restarted, &mut driver, "two turns", |s| {
        count(s, EventType::ConversationTurn) >= 2
    })
    .await;
    let arrived = drain_queue(&stack.sqs, stack.queue_url("messages").expect("url")).await;
    for (chat, ids) in [("5511A", vec!["A1", "A2", "A3"]), ("5511B", vec!["B1", "B2"])] {
        let in_chat: Vec<&Arrived> = arrived
            .iter()
            .filter(|m| m.event.subject.as_deref() == Some(chat))
            .collect();
        let kinds: Vec<EventType> = in_chat.iter().map(|m| m.event.event_type).collect();
        let mut expected = vec![EventType::MessageReceived; ids.len()];
        expected.push(EventType::ConversationTurn);
        assert_eq!(kinds, expected, "{chat}: the messages, then one turn, in one group");
        let turn = in_chat.last().and_then(|m| m.event.data.turn.clone()).expect("a turn");
        let listed: Vec<String> = turn.messages.iter().filter_map(|m| m.message_id.clone()).collect();
        assert_eq!(listed, ids, "{chat}");
        let message_events: Vec<String> = in_chat.iter().take(ids.len()).map(|m| m.event.id.clone()).collect();
        let turn_events: Vec<String> = turn.messages.iter().map(|m| m.event_id.clone()).collect();
        assert_eq!(
            turn_events, message_events,
            "{chat}: the turn names the events published"
        );
        assert_eq!(
            turn.messages[0].text.as_deref(),
            Some(format!("text {}", ids[0]).as_str())
        );
        assert!(in_chat.iter().all(|m| m.group == in_chat[0].group));
    }
    // The instance goes quiet past its window: silent; a message brings it back: resumed.
    run_until(&stack, &restarted, &mut driver, "silence", |s| {
        count(s, EventType::InstanceSilent) == 1
    })
    .await;
    assert_eq!(post(&stack, &token, &message("5511A", "A4", 6)).await.0, 200);
    run_until(&stack, &restarted, &mut driver, "resumed and a third turn", |s| {
        count(s, EventType::InstanceResumed) == 1 && count(s, EventType::ConversationTurn) == 3
    })
    .await;
    let instance = drain_queue(&stack.sqs, stack.queue_url("instance").expect("url")).await;
    let kinds: Vec<EventType> = instance.iter().map(|m| m.event.event_type).collect();
    assert_eq!(
        kinds[..2],
        [EventType::InstanceSilent, EventType::InstanceResumed],
        "{kinds:?}"
    );
    let silence = instance[0].event.data.silence.clone().expect("silence");
    assert_eq!(silence.window_seconds, 3);
    assert!(!silence.window_derived);
    let stored = stored_types(&stack).await;
    assert_eq!(
        count(&stored, EventType::MessageReceived),
        6,
        "the redelivery stored nothing"
    );
    assert_eq!(
        count(&stored, EventType::ConversationTurn),
        3,
        "exactly one turn per burst"
    );
}

/// A stand-in for the providers' CDNs and Meta's Graph API on loopback: each path answers a
/// status, a content type and a body; every request is counted.
struct Cdn {
    base: String,
    hits: std::sync::Arc<std::sync::Mutex<HashMap<String, usize>>>,
}

impl Cdn {
    async fn start(files: HashMap<String, (u16, &'static str, Vec<u8>)>) -> Cdn {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let hits = std::sync::Arc::new(std::sync::Mutex::new(HashMap::new()));
        let files = std::sync::Arc::new(files);
        let counted = hits.clone();
        let own = base.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (files, counted, own) = (files.clone(), counted.clone(), own.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request).into_owned();
                    let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let authorized = text.to_ascii_lowercase().contains("authorization: bearer meta-token");
                    *counted.lock().expect("hits").entry(path.clone()).or_default() += 1;
                    let (status, kind, body) = match files.get(&path) {
                        Some((_, _, _)) if path.starts_with("/graph") && !authorized => {
                            (401, "text/plain", b"no token".to_vec())
                        }
                        // A JSON answer may name the stand-in itself: `{BASE}`.
                        Some((s, k, b)) if *k == "application/json" => {
                            (*s, *k, String::from_utf8_lossy(b).replace("{BASE}", &own).into_bytes())
                        }
                        Some((s, k, b)) => (*s, *k, b.clone()),
                        None => (404, "text/plain", b"not found".to_vec()),
                    };
                    // A `redirect` answers 302 to the URL its body names.
                    let (status, body, location) = if kind == "redirect" {
                        (
                            302,
                            Vec::new(),
                            format!("location: {}\r\n", String::from_utf8_lossy(&body)),
                        )
                    } else {
                        (status, body, String::new())
                    };
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: {kind}\r\n{location}content-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(&body).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Cdn { base, hits }
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().expect("hits").get(path).copied().unwrap_or(0)
    }
}

#[tokio::test]
async fn media_of_each_provider_reaches_s3_once_and_is_announced_after_its_message_and_refusals_say_why() {
    use base64::Engine;
    use sha2::Digest;
    let moto = Moto::start();
    let stack = stack(&moto).await;
    let small = wahooks::testkit::noise(300_000, 7);
    let large = wahooks::testkit::noise(10 * 1024 * 1024, 9);
    let meta_file = wahooks::testkit::noise(50_000, 11);
    let (hub_file, wwa_file) = (wahooks::testkit::noise(20_000, 17), wahooks::testkit::noise(30_000, 19));
    let meta_sha = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&meta_file));
    // The Graph API's answer names the file on the same stand-in, with Meta's base64 SHA-256.
    let lookup = serde_json::json!({"url": "{BASE}/meta-file", "mime_type": "image/png", "sha256": meta_sha});
    let cdn = Cdn::start(HashMap::from([
        ("/zapi.jpg".to_owned(), (200, "image/jpeg", small.clone())),
        ("/waha.mp4".to_owned(), (200, "video/mp4", large.clone())),
        ("/meta-file".to_owned(), (200, "image/png", meta_file.clone())),
        (
            "/graph/v21.0/MEDIA1".to_owned(),
            (200, "application/json", serde_json::to_vec(&lookup).expect("json")),
        ),
        (
            "/huge.bin".to_owned(),
            (
                200,
                "application/octet-stream",
                wahooks::testkit::noise(2 * 1024 * 1024, 13),
            ),
        ),
        ("/flaky.jpg".to_owned(), (503, "text/plain", b"busy".to_vec())),
        (
            "/expired.jpg".to_owned(),
            (403, "text/plain", b"Request has expired".to_vec()),
        ),
        // A redirect to the instance metadata service: refused on the hop.
        (
            "/to-metadata.jpg".to_owned(),
            (302, "redirect", b"http://169.254.169.254/latest/meta-data/".to_vec()),
        ),
        ("/image.png".to_owned(), (200, "image/png", hub_file.clone())),
        ("/wwa.jpg".to_owned(), (200, "image/jpeg", wwa_file.clone())),
    ]))
    .await;
    // The archiver as the stack runs it (loopback allowed: the CDN is local), a 1 MB cap, Meta's
    // token, the Graph API on the stand-in.
    let policy = wahooks::media::fetch::FetchPolicy {
        max_bytes: 12 * 1024 * 1024,
        ..wahooks::media::fetch::FetchPolicy::local()
    };
    let archiver = wahooks::lambda::archiver_with(&stack.config, &stack.sdk, policy)
        .expect("archiver")
        .with_graph_url(format!("{}/graph/v21.0", cdn.base));
    let mut stack = stack;
    stack.media = Some(archiver);

    let zapi = endpoint(&stack, Provider::Zapi).await;
    let image = |id: &str, url: &str| {
        serde_json::to_vec(&serde_json::json!({
            "type": "ReceivedCallback", "instanceId": "I", "messageId": id, "phone": "5511999999999",
            "fromMe": false, "momment": 1757390383000u64,
            "image": {"imageUrl": url, "mimeType": "image/jpeg", "caption": id}
        }))
        .expect("json")
    };
    let zapi_url = format!("{}/zapi.jpg", cdn.base);
    for body in [
        image("Z1", &zapi_url),
        image("Z1", &zapi_url),
        image("GONE", &format!("{}/gone.jpg", cdn.base)),
    ] {
        assert_eq!(post(&stack, &zapi, &body).await.0, 200);
    }
    // WAHA's file on its gateway (the fixture, pointed at the stand-in); Evolution's inline
    // base64; Meta's media id.
    let waha = endpoint(&stack, Provider::Waha).await;
    let waha_body = String::from_utf8(
        std::fs::read(common::provider_dir(Provider::Waha).join("message-image-caption.json")).expect("fixture"),
    )
    .expect("utf-8")
    .replace(
        "http://localhost:3000/api/files/true_11111111111@c.us_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.jpg",
        &format!("{}/waha.mp4", cdn.base),
    );
    assert_eq!(post(&stack, &waha, waha_body.as_bytes()).await.0, 200);
    let evolution = endpoint(&stack, Provider::Evolution).await;
    let evolution_body =
        std::fs::read(common::provider_dir(Provider::Evolution).join("messages-upsert-image-base64.json"))
            .expect("fixture");
    assert_eq!(post(&stack, &evolution, &evolution_body).await.0, 200);
    let inline: serde_json::Value = serde_json::from_slice(&evolution_body).expect("json");
    let inline = base64::engine::general_purpose::STANDARD
        .decode(inline["data"]["message"]["base64"].as_str().expect("base64"))
        .expect("bytes");
    // Hub Message's attachment URL and WhatsApp Web API's photo, their fixtures pointed at the
    // stand-in.
    let hub = endpoint(&stack, Provider::Hubmessage).await;
    let hub_body = String::from_utf8(
        std::fs::read(common::provider_dir(Provider::Hubmessage).join("hubmessage-default-image.json"))
            .expect("fixture"),
    )
    .expect("utf-8")
    .replace("https://example.com", &cdn.base);
    assert_eq!(post(&stack, &hub, hub_body.as_bytes()).await.0, 200);
    let wwa = endpoint(&stack, Provider::Wwa).await;
    let wwa_body = String::from_utf8(
        std::fs::read(common::provider_dir(Provider::Wwa).join("apiwhatsappweb-received.json")).expect("fixture"),
    )
    .expect("utf-8")
    .replace("\"Photo\"", &format!("\"{}/wwa.jpg\"", cdn.base))
    .replace("\"Video\"", "null");
    assert_eq!(post(&stack, &wwa, wwa_body.as_bytes()).await.0, 200);
    let meta = endpoint(&stack, Provider::Meta).await;
    // Meta's access token, sealed under the stack's secrets key as `wahooks endpoint media
    // --token` seals it; the archiver opens it with KMS and sends it as a bearer.
    let mut meta_endpoint = {
        use wahooks::registry::EndpointRegistry;
        (*stack.registry.lookup(&meta).await.expect("lookup").expect("exists")).clone()
    };
    let keyring =
        wahooks::keyring::KmsKeyring::new(aws_sdk_kms::Client::new(&stack.sdk), stack.config.secrets_key.clone());
    meta_endpoint.media.token = Some(
        wahooks::keyring::seal(
            &keyring,
            &meta_endpoint.id,
            &wahooks::endpoint::Secret::new("meta-token"),
        )
        .await
        .expect("sealed"),
    );
    stack.registry.update(&meta_endpoint).await.expect("token kept");
    let record = format!(
        "{:?}",
        stack
            .dynamo
            .scan()
            .table_name(&stack.config.endpoints_table)
            .send()
            .await
            .expect("scan")
            .items()
    );
    assert!(!record.contains("meta-token"), "the token is never stored in clear");
    let meta_body = serde_json::to_vec(&serde_json::json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": "PN1"},
        "contacts": [{"wa_id": "16505551234", "profile": {"name": "A"}}],
        "messages": [{"from": "16505551234", "id": "wamid.M1", "timestamp": "1739321024", "type": "image",
                      "image": {"id": "MEDIA1", "mime_type": "image/png", "sha256": meta_sha}}]}}]}]}))
    .expect("json");
    assert_eq!(post(&stack, &meta, &meta_body).await.0, 200);

    // An endpoint whose media is switched off: its file is never fetched.
    let quiet = endpoint(&stack, Provider::Zapi).await;
    let mut quiet_endpoint = {
        use wahooks::registry::EndpointRegistry;
        (*stack.registry.lookup(&quiet).await.expect("lookup").expect("exists")).clone()
    };
    quiet_endpoint.media.off = true;
    stack.registry.update(&quiet_endpoint).await.expect("switched off");
    let quiet_body = serde_json::to_vec(&serde_json::json!({
        "type": "ReceivedCallback", "instanceId": "I2", "messageId": "Q1", "phone": "5511999999999",
        "fromMe": false, "momment": 1757390383000u64,
        "image": {"imageUrl": format!("{}/quiet.jpg", cdn.base), "mimeType": "image/jpeg"}
    }))
    .expect("json");
    assert_eq!(post(&stack, &quiet, &quiet_body).await.0, 200);

    let mut driver = stack.stream_driver();
    for _ in 0..20 {
        drive(&stack, &mut driver).await;
        stack.drain_media().await.expect("media drained");
        drive(&stack, &mut driver).await;
        let stored = stored_types(&stack).await;
        if count(&stored, EventType::MediaArchived) >= 6 && count(&stored, EventType::MediaFailed) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let bucket = stack.config.body_bucket.clone().expect("bucket");
    let s3 = wahooks::bucket::s3_client(&stack.sdk);
    let arrived = drain_queue(&stack.sqs, stack.queue_url("messages").expect("url")).await;
    let archived: Vec<&Arrived> = arrived
        .iter()
        .filter(|m| m.event.event_type == EventType::MediaArchived)
        .collect();
    assert_eq!(
        archived.len(),
        6,
        "Z-API, Hub Message, WhatsApp Web API, WAHA, Evolution, Meta: {:?}",
        arrived.iter().map(|m| m.event.event_type).collect::<Vec<_>>()
    );
    for m in &archived {
        let media = m.event.data.media.clone().expect("data.media");
        let key = media.key.clone().expect("key");
        let object = s3
            .get_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .expect("the object");
        let bytes = object.body.collect().await.expect("body").into_bytes().to_vec();
        let expected = match m.event.provider {
            Provider::Zapi => &small,
            Provider::Waha => &large,
            Provider::Evolution => &inline,
            Provider::Meta => &meta_file,
            Provider::Hubmessage => &hub_file,
            Provider::Wwa => &wwa_file,
            other => panic!("{other}"),
        };
        assert!(bytes == *expected, "{}: byte for byte", m.event.provider);
        assert_eq!(media.bytes, Some(expected.len() as u64));
        assert_eq!(
            media.sha256.as_deref(),
            Some(hex::encode(sha2::Sha256::digest(expected)).as_str())
        );
        // After the message it belongs to, in its chat's group.
        let message = arrived
            .iter()
            .position(|a| a.event.id == media.event_id)
            .expect("its message arrived");
        let here = arrived.iter().position(|a| a.event.id == m.event.id).expect("here");
        assert!(
            message < here,
            "{}: the media event follows its message",
            m.event.provider
        );
        assert_eq!(arrived[message].group, m.group);
    }
    assert_eq!(
        cdn.hits("/zapi.jpg"),
        1,
        "the redelivered webhook is one event: fetched once"
    );
    assert_eq!(cdn.hits("/quiet.jpg"), 0, "an endpoint with media off");
    assert!(
        arrived
            .iter()
            .all(|m| m.event.instance != "I2" || !m.event.event_type.is_derived()),
        "and no media event for it"
    );
    assert_eq!(cdn.hits("/waha.mp4"), 1);
    assert_eq!(
        cdn.hits("/graph/v21.0/MEDIA1"),
        1,
        "Meta's id looked up with the bearer"
    );
    let failed: Vec<&Arrived> = arrived
        .iter()
        .filter(|m| m.event.event_type == EventType::MediaFailed)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0].event.data.media.as_ref().and_then(|m| m.reason.as_deref()),
        Some("expired"),
        "a 404"
    );

    // A note handled again (a replay, a recovery) fetches nothing.
    let again = wahooks::media::MediaNote {
        event_id: archived[0].event.data.media.as_ref().expect("media").event_id.clone(),
        pk: arrived
            .iter()
            .find(|a| a.event.id == archived[0].event.data.media.as_ref().expect("m").event_id)
            .map(|a| wahooks::store::keys::event_pk(&a.event))
            .expect("pk"),
        sk: wahooks::store::keys::event_sk(&archived[0].event.data.media.as_ref().expect("m").event_id),
        attempt: 0,
    };
    let hits_before: usize = ["/zapi.jpg", "/waha.mp4", "/meta-file"]
        .iter()
        .map(|p| cdn.hits(p))
        .sum();
    let done = stack
        .media
        .as_ref()
        .expect("archiver")
        .archive(&again)
        .await
        .expect("archived");
    assert!(
        matches!(done, wahooks::media::Archived::Made(e) if e.id == archived[0].event.id),
        "the same event"
    );
    let hits_after: usize = ["/zapi.jpg", "/waha.mp4", "/meta-file"]
        .iter()
        .map(|p| cdn.hits(p))
        .sum();
    assert_eq!(hits_before, hits_after, "nothing fetched twice");

    // Each refusal gives the failed event with why: too large, a private address (deployed
    // policy), a server failing now (retried later, on its own clock, then failed).
    let mut notes = HashMap::new();
    for (id, url) in [
        ("HUGE", format!("{}/huge.bin", cdn.base)),
        (
            "PRIVATE",
            format!("{}/zapi.jpg", cdn.base.replace("http://", "https://")),
        ),
        ("FLAKY", format!("{}/flaky.jpg", cdn.base)),
        ("EXPIRED", format!("{}/expired.jpg", cdn.base)),
        ("REDIRECTED", format!("{}/to-metadata.jpg", cdn.base)),
    ] {
        let (status, answer) = post(&stack, &zapi, &image(id, &url)).await;
        assert_eq!(status, 200);
        let event_id = ids(&answer, "accepted").remove(0);
        notes.insert(
            id,
            wahooks::media::MediaNote {
                pk: wahooks::store::keys::chat_partition("zapi", "I", "5511999999999"),
                sk: wahooks::store::keys::event_sk(&event_id),
                event_id,
                attempt: 0,
            },
        );
    }
    let note_of = |id: &str| notes[id].clone();
    drive(&stack, &mut driver).await;
    // (Their notes are handled here, by hand, under each policy.)
    stack
        .sqs
        .purge_queue()
        .queue_url(stack.config.media.url.as_deref().expect("media queue"))
        .send()
        .await
        .expect("purge");
    let capped = wahooks::lambda::archiver_with(
        &stack.config,
        &stack.sdk,
        wahooks::media::fetch::FetchPolicy {
            max_bytes: 1024 * 1024,
            ..wahooks::media::fetch::FetchPolicy::local()
        },
    )
    .expect("archiver");
    let deployed = wahooks::lambda::archiver_with(
        &stack.config,
        &stack.sdk,
        wahooks::media::fetch::FetchPolicy::deployed(vec!["127.0.0.1".into()]),
    )
    .expect("archiver");
    let reason = |made: wahooks::media::Archived| match made {
        wahooks::media::Archived::Made(e) => e.data.media.and_then(|m| m.reason).unwrap_or_default(),
        other => format!("{other:?}"),
    };
    assert_eq!(
        reason(capped.archive(&note_of("HUGE")).await.expect("done")),
        "too_large"
    );
    assert_eq!(
        reason(deployed.archive(&note_of("PRIVATE")).await.expect("done")),
        "not_allowed"
    );
    assert_eq!(
        reason(capped.archive(&note_of("EXPIRED")).await.expect("done")),
        "expired",
        "a link past its time (403)"
    );
    assert_eq!(
        reason(capped.archive(&note_of("REDIRECTED")).await.expect("done")),
        "not_allowed",
        "a redirect to a link-local address is refused on the hop"
    );
    let flaky = note_of("FLAKY");
    let first = capped.archive(&flaky).await.expect("done");
    assert!(matches!(first, wahooks::media::Archived::Retrying(1)), "{first:?}");
    let last = wahooks::media::MediaNote {
        attempt: wahooks::media::MAX_ATTEMPTS - 1,
        ..flaky
    };
    assert_eq!(
        reason(capped.archive(&last).await.expect("done")),
        "unavailable",
        "retries exhausted"
    );
}
