//! The outbox end to end on a real local stand-in (moto server): receivers store, the local
//! stream driver reads the table's stream and calls the fanout handler with the event shape
//! Lambda delivers, the fanout sends to SQS, and the consumer crate reads what arrived.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use common::moto::Moto;
use serde_json::Value;
use sha2::{Digest, Sha256};
use wahooks::config::Config;
use wahooks::endpoint::{Auth, PayloadFormat};
use wahooks::fanout::{Routing, SqsPublisher};
use wahooks::local::{apigw_request, LocalStack};
use wahooks::registry::{new_endpoint, new_token};
use wahooks::stream_driver::StreamDriver;
use wahooks::{CloudEvent, EventType, Provider, Route};

fn config() -> Config {
    Config {
        events_table: "events".into(),
        endpoints_table: "endpoints".into(),
        retention_days: 30,
        queues: Vec::new(),
        routes: String::new(),
    }
}

async fn stack(moto: &Moto) -> LocalStack {
    LocalStack::provision(moto.sdk().await, config(), "wahooks")
        .await
        .expect("tables and queues provisioned")
}

async fn endpoint(stack: &LocalStack, provider: Provider) -> String {
    let token = new_token();
    let endpoint = new_endpoint(provider, PayloadFormat::Default, Auth::url_token());
    stack.registry.create(&token, &endpoint).await.expect("endpoint stored");
    token
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
        .filter_map(|i| common::s(i, "pk").strip_prefix("EVT#").map(str::to_owned))
        .collect()
}

async fn drive(stack: &LocalStack, driver: &mut StreamDriver) {
    let drained = driver
        .drain(&stack.fanout, Duration::from_secs(60))
        .await
        .expect("the stream can be read");
    assert!(drained, "the stream was drained");
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
                assert_eq!(
                    m.group.as_deref(),
                    Some(format!("{}#{}", e.instance, e.chat_key()).as_str())
                );
            }
            assert!(e.data.raw.is_some(), "{} carries its raw body", e.id);
            seen.insert(e.id.clone());
        }
    }
    assert_eq!(seen, accepted, "every stored event was published, nothing else");
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
    let down = wahooks::lambda::fanout_with(&stack.config, SqsPublisher::new(dead_sqs))
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
    let raw = wahooks::store::decompress_raw(item["raw"].as_b().expect("blob").as_ref()).expect("zstd");
    assert_eq!(
        Sha256::digest(&raw),
        Sha256::digest(&body),
        "the full body is one read away"
    );
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
