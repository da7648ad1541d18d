//! The receivers against a real local DynamoDB (moto server), through the same SDK code and
//! the same API Gateway v2 events as in Lambda.

use crate::common;

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use common::apigw::request;
use common::moto::Moto;
use common::s;
use http::Response;
use lambda_http::Body;
use serde_json::Value;

use wahooks::auth::sign;
use wahooks::endpoint::{Auth, Endpoint, Scheme, Secret};
use wahooks::http::Receiver;
use wahooks::registry::{new_endpoint, new_token, DynamoRegistry};
use wahooks::schema::{create_endpoints_table, create_events_table};
use wahooks::store::{event_of_sdk_item, keys, DynamoEventStore, EventStore, PutOutcome, Quarantined, StoreError};
use wahooks::CloudEvent;
use wahooks::{Provider, Route};

struct Stack {
    moto: Moto,
    dynamo: aws_sdk_dynamodb::Client,
    events_table: String,
    receiver: Receiver,
    registry: DynamoRegistry,
    /// The secrets key's keyring (moto's KMS): signing secrets are sealed with it.
    keyring: Arc<wahooks::keyring::KmsKeyring>,
}

impl Stack {
    async fn start() -> Stack {
        let moto = Moto::start();
        let dynamo = moto.dynamo().await;
        let events_table = "events-test".to_owned();
        create_events_table(&dynamo, &events_table).await.expect("events table");
        create_endpoints_table(&dynamo, "endpoints-test")
            .await
            .expect("endpoints table");
        let keyring = moto.keyring().await;
        let registry = DynamoRegistry::new(dynamo.clone(), "endpoints-test").with_keyring(keyring.clone());
        // The claim-check bucket, as every stack has one (moto's S3).
        let s3 = wahooks::bucket::s3_client(&moto.sdk().await);
        wahooks::schema::create_bucket(&s3, "bodies-test")
            .await
            .expect("bucket");
        let store = DynamoEventStore::new(dynamo.clone(), &events_table, 30)
            .with_bucket(Arc::new(wahooks::bucket::S3Bucket::new(s3, "bodies-test")));
        let receiver = Receiver::new(Arc::new(registry.clone()), Arc::new(store));
        Stack {
            moto,
            dynamo,
            events_table,
            receiver,
            registry,
            keyring,
        }
    }

    fn with_store(&self, store: Arc<dyn EventStore>) -> Receiver {
        Receiver {
            store,
            ..self.receiver.clone()
        }
    }

    async fn endpoint(&self, provider: Provider, auth: Auth) -> (String, Endpoint) {
        let token = new_token();
        let endpoint = new_endpoint(provider, auth);
        self.registry.create(&token, &endpoint).await.expect("endpoint stored");
        (token, endpoint)
    }

    async fn items(&self) -> Vec<std::collections::HashMap<String, AttributeValue>> {
        common::table_items(&self.dynamo, &self.events_table).await
    }

    async fn event_items(&self) -> Vec<std::collections::HashMap<String, AttributeValue>> {
        self.items()
            .await
            .into_iter()
            .filter(|i| keys::is_event_sk(s(i, "sk")))
            .collect()
    }
}

async fn post(
    receiver: &Receiver,
    route: Route,
    token: &str,
    headers: &[(String, String)],
    body: &[u8],
    base64: bool,
) -> (u16, Value) {
    let path = format!("/v1/hooks/{token}/{}", route.as_str());
    let response = receiver
        .handle(route, request("POST", &path, "", headers, body, base64))
        .await;
    decode(response)
}

fn decode(response: Response<Body>) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null);
    (status, body)
}

fn ids(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn json_headers() -> Vec<(String, String)> {
    vec![("content-type".into(), "application/json".into())]
}

/// The route a Z-API fixture belongs on, from its name.
fn zapi_route(name: &str) -> Route {
    match name {
        n if n.starts_with("received-") || n.starts_with("notification-") => Route::MessageReceived,
        n if n.starts_with("delivery") => Route::MessageSent,
        n if n.starts_with("message-status") => Route::MessageStatus,
        n if n.starts_with("presence") => Route::Presence,
        n if n.starts_with("disconnected") => Route::Disconnected,
        n if n.starts_with("connected") => Route::Connected,
        _ => Route::Any,
    }
}

#[tokio::test]
async fn every_fixture_is_stored_once_plain_then_as_a_base64_redelivery() {
    let stack = Stack::start().await;
    let mut expected_ids = HashSet::new();
    for provider in Provider::ALL {
        let (token, _) = stack.endpoint(provider, Auth::url_token()).await;
        for (name, body) in common::payloads(provider) {
            let route = if provider == Provider::Zapi {
                zapi_route(&name)
            } else {
                Route::Any
            };
            let (status, first) = post(&stack.receiver, route, &token, &json_headers(), &body, false).await;
            assert_eq!(status, 200, "{provider}/{name}: {first}");
            let accepted = ids(&first, "accepted");
            // A presence/connection body may repeat an earlier fixture's natural key within the minute.
            assert!(!accepted.is_empty() || !ids(&first, "duplicates").is_empty(), "{name}");
            expected_ids.extend(accepted.iter().cloned());
            // The same bytes again, base64-encoded by API Gateway: all duplicates.
            let (status, again) = post(&stack.receiver, route, &token, &[], &body, true).await;
            assert_eq!(status, 200, "{name}");
            assert!(ids(&again, "accepted").is_empty(), "{name}: {again}");
            assert_eq!(
                ids(&again, "duplicates").len(),
                accepted.len() + ids(&first, "duplicates").len(),
                "{name}"
            );
        }
    }
    let items = stack.event_items().await;
    assert_eq!(
        items.len(),
        expected_ids.len(),
        "one item per accepted event, nothing twice"
    );
    for item in &items {
        let id = keys::event_id_of_sk(s(item, "sk")).expect("an event key").to_owned();
        assert!(expected_ids.contains(&id));
        let event: CloudEvent = event_of_sdk_item(item).expect("the item's body is the CloudEvent");
        assert_eq!(event.id, id);
        // With its raw body, or (a body several events share) a pointer to the one body item.
        match &event.data.raw_pointer {
            None => assert!(event.data.raw.is_some(), "the CloudEvent is stored with raw"),
            Some(p) => {
                assert!(event.data.raw.is_none());
                let body = stack
                    .items()
                    .await
                    .into_iter()
                    .find(|i| Some(s(i, "pk")) == p.pk.as_deref() && s(i, "sk") == keys::BODY_SK)
                    .expect("the body item it points at");
                let text = wahooks::store::decompress(body["body"].as_b().expect("bytes").as_ref()).expect("zstd");
                assert_eq!(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&text)), p.sha256);
            }
        }
        assert_eq!(s(item, "pk"), keys::event_pk(&event), "partitioned by chat");
        assert_eq!(s(item, "type"), event.event_type.as_str());
        assert!(item["expires_at"].as_n().expect("ttl").parse::<i64>().expect("number") > Utc::now().timestamp());
        assert!(item["received_at"].as_n().is_ok());
        assert_eq!(
            item.contains_key("gsi1pk"),
            event.data.message_id.is_some(),
            "{id}: the message index is sparse"
        );
    }
}

#[tokio::test]
async fn the_same_webhook_sent_five_times_concurrently_is_one_item_and_five_200s() {
    let stack = Stack::start().await;
    let (token, _) = stack.endpoint(Provider::Zapi, Auth::url_token()).await;
    let body = std::fs::read(common::provider_dir(Provider::Zapi).join("received-text.zapi-docs.json")).expect("f");
    let headers = json_headers();
    let sends = (0..5).map(|_| post(&stack.receiver, Route::MessageReceived, &token, &headers, &body, false));
    let results = futures::future::join_all(sends).await;
    assert!(results.iter().all(|(status, _)| *status == 200), "{results:?}");
    let accepted: usize = results.iter().map(|(_, v)| ids(v, "accepted").len()).sum();
    let duplicates: usize = results.iter().map(|(_, v)| ids(v, "duplicates").len()).sum();
    assert_eq!((accepted, duplicates), (1, 4));
    assert_eq!(stack.event_items().await.len(), 1);
}

/// The real DynamoDB adapter, made to fail once after its first event (as a throttled or
/// dropped second write would).
struct FailsAfterFirst {
    inner: DynamoEventStore,
    failed: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl EventStore for FailsAfterFirst {
    async fn put_if_absent(&self, events: &[CloudEvent]) -> Result<Vec<PutOutcome>, StoreError> {
        if !self.failed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.inner.put_if_absent(&events[..1]).await?;
            return Err(StoreError::unavailable("injected: second write failed"));
        }
        self.inner.put_if_absent(events).await
    }
    async fn quarantine(&self, item: Quarantined) -> Result<(), StoreError> {
        self.inner.quarantine(item).await
    }
    async fn state_sequence(
        &self,
        event: &CloudEvent,
        change: &wahooks::event::StateChange,
    ) -> Result<u64, StoreError> {
        self.inner.state_sequence(event, change).await
    }
}

#[tokio::test]
async fn a_status_with_three_ids_whose_second_write_fails_is_stored_whole_on_retry() {
    let stack = Stack::start().await;
    let (token, _) = stack.endpoint(Provider::Zapi, Auth::url_token()).await;
    let flaky = Arc::new(FailsAfterFirst {
        inner: DynamoEventStore::new(stack.dynamo.clone(), &stack.events_table, 30),
        failed: Default::default(),
    });
    let receiver = stack.with_store(flaky);
    let body = std::fs::read(
        common::provider_dir(Provider::Zapi).join("message-status-group-read-multi-ids.zedaapi-capture.json"),
    )
    .expect("fixture");
    let (status, _) = post(&receiver, Route::MessageStatus, &token, &json_headers(), &body, false).await;
    assert_eq!(status, 503, "a partial write is not acknowledged");
    assert_eq!(stack.event_items().await.len(), 1, "the first event made it");
    let (status, retry) = post(&receiver, Route::MessageStatus, &token, &json_headers(), &body, false).await;
    assert_eq!(status, 200);
    assert_eq!((ids(&retry, "accepted").len(), ids(&retry, "duplicates").len()), (2, 1));
    assert_eq!(stack.event_items().await.len(), 3, "exactly the three, nothing twice");
}

#[tokio::test]
async fn unknown_and_disabled_endpoints_are_404_without_a_hint() {
    let stack = Stack::start().await;
    let body = br#"{"type":"ReceivedCallback"}"#;
    let (status, v) = post(&stack.receiver, Route::Any, &new_token(), &[], body, false).await;
    assert_eq!((status, v["code"].as_str()), (404, Some("not_found")));
    let (token, mut endpoint) = stack.endpoint(Provider::Zapi, Auth::url_token()).await;
    endpoint.enabled = false;
    stack.registry.update(&endpoint).await.expect("disable");
    let (status, v2) = post(&stack.receiver, Route::Any, &token, &[], body, false).await;
    assert_eq!(status, 404);
    assert_eq!(v, v2, "disabled looks exactly like unknown");
    let (status, _) = post(&stack.receiver, Route::Any, "../../etc/passwd", &[], body, false).await;
    assert_eq!(status, 404);
    assert!(stack.items().await.is_empty());
}

#[tokio::test]
async fn a_forged_signature_is_401_with_the_reason_and_nothing_is_stored() {
    let stack = Stack::start().await;
    let auth = Auth::new(Scheme::HubSignature256, vec![Secret::new("app-secret")], None).expect("auth");
    let (token, _) = stack.endpoint(Provider::Meta, auth.clone()).await;
    let body = std::fs::read(common::provider_dir(Provider::Meta).join("meta-cloud-text-message.json")).expect("f");
    let now = Utc::now().timestamp();
    let (status, ok) = post(
        &stack.receiver,
        Route::Any,
        &token,
        &sign(&auth, &body, now),
        &body,
        false,
    )
    .await;
    assert_eq!(status, 200, "{ok}");
    let mut forged = body.clone();
    forged[10] ^= 1;
    let (status, v) = post(
        &stack.receiver,
        Route::Any,
        &token,
        &sign(&auth, &body, now),
        &forged,
        false,
    )
    .await;
    assert_eq!((status, v["code"].as_str()), (401, Some("bad_signature")));
    assert!(v["detail"].as_str().expect("detail").contains("x-hub-signature-256"));
    assert!(!v.to_string().contains("app-secret"));
    let (status, v) = post(&stack.receiver, Route::Any, &token, &[], &body, false).await;
    assert_eq!((status, v["code"].as_str()), (401, Some("missing_header")));
    assert_eq!(stack.event_items().await.len(), 1, "only the authentic one");
}

#[tokio::test]
async fn every_meta_field_is_accepted_signed_through_the_any_route_and_stored() {
    let stack = Stack::start().await;
    let auth = Auth::new(Scheme::HubSignature256, vec![Secret::new("app-secret")], None).expect("auth");
    let (token, _) = stack.endpoint(Provider::Meta, auth.clone()).await;
    let mut ids = std::collections::BTreeSet::new();
    for (name, body) in common::payloads(Provider::Meta) {
        let ctx = wahooks::providers::ParseContext::new(Provider::Meta, "x", Utc::now());
        for e in wahooks::providers::parse_verified(&ctx, &wahooks::auth::Verified::trusted(&body)).expect("json") {
            assert_ne!(e.event_type, wahooks::EventType::Unknown, "{name}");
            ids.insert(e.id);
        }
        let (status, v) = post(
            &stack.receiver,
            Route::Any,
            &token,
            &sign(&auth, &body, Utc::now().timestamp()),
            &body,
            false,
        )
        .await;
        assert_eq!(status, 200, "{name}: {v}");
    }
    assert_eq!(
        stack.event_items().await.len(),
        ids.len(),
        "one item per distinct event of every body"
    );
}

#[tokio::test]
async fn an_undecodable_authenticated_body_is_400_and_quarantined() {
    let stack = Stack::start().await;
    let (token, _) = stack.endpoint(Provider::Zapi, Auth::url_token()).await;
    let (status, v) = post(&stack.receiver, Route::Any, &token, &[], b"{\"type\": \"Recei", false).await;
    assert_eq!((status, v["code"].as_str()), (400, Some("truncated_json")));
    let items = stack.items().await;
    assert_eq!(items.len(), 1);
    assert!(keys::is_quarantine_pk(s(&items[0], "pk")));
    assert!(s(&items[0], "reason").contains("truncated"));
}

#[tokio::test]
async fn a_body_over_an_item_is_kept_in_the_bucket_and_without_one_is_413() {
    let stack = Stack::start().await;
    let (token, _) = stack.endpoint(Provider::Zapi, Auth::url_token()).await;
    // 800 KB of text that does not compress below ~470 KB: over DynamoDB's 400 KB item limit
    // even though the item holds the event compressed (its text alone is over it too).
    let noise = wahooks::testkit::noise_letters(800_000, wahooks::testkit::SEED);
    let body = format!(
        r#"{{"type":"ReceivedCallback","instanceId":"I","messageId":"M","phone":"1","text":{{"message":"{noise}"}}}}"#
    );
    // Without a bucket (WAHOOKS_BODY_BUCKET unset) it cannot be kept anywhere: 413, nothing stored.
    let bare = stack.with_store(Arc::new(DynamoEventStore::new(
        stack.dynamo.clone(),
        &stack.events_table,
        30,
    )));
    let (status, v) = post(&bare, Route::MessageReceived, &token, &[], body.as_bytes(), false).await;
    assert_eq!((status, v["code"].as_str()), (413, Some("too_large")), "{v}");
    assert!(stack.items().await.is_empty());
    // With the stack's bucket: stored, the item pointing at the event's object.
    let (status, v) = post(
        &stack.receiver,
        Route::MessageReceived,
        &token,
        &[],
        body.as_bytes(),
        false,
    )
    .await;
    assert_eq!((status, ids(&v, "accepted").len()), (200, 1), "{v}");
    let items = stack.event_items().await;
    assert_eq!(items.len(), 1);
    assert!(
        s(&items[0], "body_object").starts_with("s3://bodies-test/events/"),
        "{:?}",
        items[0].keys()
    );
    let s3 = wahooks::bucket::s3_client(&stack.moto.sdk().await);
    let (_, event) = wahooks::store::read_sdk_item(&items[0], &s3).await.expect("read back");
    assert_eq!(event.data.content.and_then(|c| c.text).map(|t| t.len()), Some(800_000));
    assert!(event
        .data
        .raw_pointer
        .is_some_and(|p| p.bucket.as_deref() == Some("bodies-test")));
}

#[tokio::test]
async fn when_dynamodb_is_down_the_answer_is_503_so_the_provider_retries() {
    let mut stack = Stack::start().await;
    let (token, _) = stack.endpoint(Provider::Zapi, Auth::url_token()).await;
    // Cache the endpoint lookup the way a warm container would, then lose DynamoDB.
    let cached = Receiver {
        registry: Arc::new(wahooks::registry::CachedRegistry::new(
            stack.registry.clone(),
            std::time::Duration::from_secs(60),
        )),
        ..stack.receiver.clone()
    };
    let body = std::fs::read(common::provider_dir(Provider::Zapi).join("received-image.zapi-docs.json")).expect("f");
    let (status, _) = post(&cached, Route::Any, &token, &[], b"{}", false).await;
    assert_eq!(status, 200);
    stack.moto.stop();
    let started = std::time::Instant::now();
    let (status, v) = post(&cached, Route::MessageReceived, &token, &[], &body, false).await;
    assert_eq!((status, v["code"].as_str()), (503, Some("unavailable")), "{v}");
    assert!(!v.to_string().contains("127.0.0.1"), "no internals in the body");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "answers well inside API Gateway's 30 s"
    );
    // An uncached endpoint lookup fails the same way.
    let (status, _) = post(&stack.receiver, Route::Any, &token, &[], &body, false).await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn meta_get_handshake_echoes_the_challenge_through_the_any_route() {
    let stack = Stack::start().await;
    let auth = Auth::new(Scheme::HubSignature256, vec![Secret::new("app-secret")], None)
        .expect("auth")
        .with_verify_token(Secret::new("verify-me"))
        .expect("token");
    let (token, _) = stack.endpoint(Provider::Meta, auth).await;
    let path = format!("/v1/hooks/{token}");
    let ok = stack
        .receiver
        .handle(
            Route::Any,
            request(
                "GET",
                &path,
                "hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444",
                &[],
                b"",
                false,
            ),
        )
        .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.body().as_ref(), b"1158201444");
    let bad = stack
        .receiver
        .handle(
            Route::Any,
            request(
                "GET",
                &path,
                "hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1",
                &[],
                b"",
                false,
            ),
        )
        .await;
    assert_eq!(
        bad.status(),
        403,
        "a wrong verify token is forbidden, as Meta's examples answer"
    );
    let not_a_handshake = stack
        .receiver
        .handle(Route::Any, request("GET", &path, "hub.mode=other", &[], b"", false))
        .await;
    assert_eq!(not_a_handshake.status(), 401);
    let put = stack
        .receiver
        .handle(Route::Any, request("PUT", &path, "", &[], b"{}", false))
        .await;
    assert_eq!(put.status(), 405);
}

#[tokio::test]
async fn a_payload_on_the_wrong_route_is_stored_under_its_real_type() {
    let stack = Stack::start().await;
    let (token, _) = stack.endpoint(Provider::Zapi, Auth::url_token()).await;
    let body =
        std::fs::read(common::provider_dir(Provider::Zapi).join("presence-composing.zedaapi-capture.json")).expect("f");
    let (status, v) = post(&stack.receiver, Route::MessageStatus, &token, &[], &body, false).await;
    assert_eq!(status, 200, "{v}");
    let items = stack.event_items().await;
    assert_eq!(s(&items[0], "type"), "whatsapp.chat.presence");
}

#[tokio::test]
async fn the_lambda_sdk_configuration_reaches_dynamodb_and_sqs_with_env_credentials_only() {
    let moto = Moto::start();
    let url = moto.url();
    let env = |k: &str| match k {
        "AWS_REGION" => Some("us-east-1".to_owned()),
        "AWS_ACCESS_KEY_ID" => Some("test".to_owned()),
        "AWS_SECRET_ACCESS_KEY" => Some("test".to_owned()),
        "AWS_SESSION_TOKEN" => Some("session".to_owned()),
        "AWS_ENDPOINT_URL" => Some(url.clone()),
        _ => None,
    };
    let sdk = wahooks::config::lambda_sdk_config(env);
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    create_events_table(&dynamo, "lambda-config")
        .await
        .expect("a table through the Lambda config");
    assert!(dynamo
        .list_tables()
        .send()
        .await
        .expect("list")
        .table_names()
        .contains(&"lambda-config".to_owned()));
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    sqs.create_queue()
        .queue_name("lambda-config")
        .send()
        .await
        .expect("a queue");

    // Unreachable: an error within the configured timeouts (retries need a sleep: it has one).
    let dead = wahooks::config::lambda_sdk_config(|k| match k {
        "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:9".to_owned()),
        "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => Some("test".to_owned()),
        _ => None,
    });
    let started = std::time::Instant::now();
    let err = aws_sdk_dynamodb::Client::new(&dead).list_tables().send().await;
    assert!(err.is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn a_stalled_dynamodb_is_answered_with_our_503_inside_the_function_timeout() {
    let stack = Stack::start().await;
    let (token, _) = stack.endpoint(Provider::Zapi, Auth::url_token()).await;
    let body = std::fs::read(common::provider_dir(Provider::Zapi).join("received-text.zapi-docs.json")).expect("f");
    let pid = stack.moto.pid().expect("moto runs").to_string();
    let signal = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill runs");
    };
    signal("-STOP");
    let started = std::time::Instant::now();
    let (status, v) = post(
        &stack.receiver,
        Route::MessageReceived,
        &token,
        &json_headers(),
        &body,
        false,
    )
    .await;
    let took = started.elapsed();
    signal("-CONT");
    assert_eq!((status, v["code"].as_str()), (503, Some("unavailable")), "{v}");
    // The functions' timeout is 10 s: past it API Gateway would answer with its own 5xx.
    assert!(
        took < std::time::Duration::from_secs(10),
        "answered after {took:?}, inside the function timeout"
    );
    let (status, _) = post(
        &stack.receiver,
        Route::MessageReceived,
        &token,
        &json_headers(),
        &body,
        false,
    )
    .await;
    assert_eq!(status, 200, "the retry once DynamoDB is back stores it");
}

#[tokio::test]
async fn provider_ids_of_any_length_stay_inside_dynamodbs_key_limits() {
    let stack = Stack::start().await;
    let (token, _) = stack.endpoint(Provider::Meta, Auth::url_token()).await;
    let long = "w".repeat(3000);
    let body = serde_json::json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages", "value": {
        "metadata": {"phone_number_id": long}, "messages": [{"from": long, "id": long, "timestamp": "1757390383", "type": "text", "text": {"body": "hi"}}]
    }}]}]});
    let bytes = serde_json::to_vec(&body).expect("json");
    let (status, v) = post(&stack.receiver, Route::Any, &token, &json_headers(), &bytes, false).await;
    assert_eq!(status, 200, "a 3,000-character id is stored, not refused: {v}");
    let items = stack.event_items().await;
    assert_eq!(items.len(), 1);
    assert!(s(&items[0], "pk").len() < 200 && s(&items[0], "gsi1pk").len() < 200);
    let (_, again) = post(&stack.receiver, Route::Any, &token, &json_headers(), &bytes, false).await;
    assert_eq!(ids(&again, "duplicates").len(), 1, "and still stored once");
}

#[tokio::test]
async fn every_hub_message_body_signed_in_the_same_second_is_its_own_event() {
    let stack = Stack::start().await;
    let secret = "a7f3c81e9d2b4605f1a8c3e7b9d40f6218273645a8b9c0d1e2f3041526374859";
    let auth = Auth::new(Scheme::HubmessageHmac, vec![Secret::new(secret)], None).expect("auth");
    let (token, _) = stack.endpoint(Provider::Hubmessage, auth.clone()).await;
    let now = Utc::now().timestamp();
    let mut expected = 0;
    for (name, body) in common::payloads(Provider::Hubmessage) {
        let (status, v) = post(
            &stack.receiver,
            Route::Any,
            &token,
            &sign(&auth, &body, now),
            &body,
            false,
        )
        .await;
        assert_eq!(status, 200, "{name}: {v}");
        assert!(ids(&v, "duplicates").is_empty(), "{name}: nothing merged: {v}");
        expected += ids(&v, "accepted").len();
    }
    assert!(expected >= 9);
    assert_eq!(stack.event_items().await.len(), expected);
}

#[tokio::test]
async fn evolutions_apikey_never_reaches_the_table() {
    let stack = Stack::start().await;
    let (token, _) = stack.endpoint(Provider::Evolution, Auth::url_token()).await;
    let body = std::fs::read_to_string(
        common::provider_dir(Provider::Evolution).join("messages-upsert-text-with-contextinfo.json"),
    )
    .expect("fixture")
    .replace("\"REDACTED\"", "\"live-instance-token-123\"");
    assert!(body.contains("live-instance-token-123"));
    let (status, v) = post(
        &stack.receiver,
        Route::Any,
        &token,
        &json_headers(),
        body.as_bytes(),
        false,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    // Not JSON once cut short: quarantined, with the credential masked there too.
    let cut = &body.as_bytes()[..body.find("live-instance-token-123").expect("apikey") + 10];
    let (status, _) = post(&stack.receiver, Route::Any, &token, &json_headers(), cut, false).await;
    assert_eq!(status, 400);
    let items = stack.items().await;
    assert_eq!(items.len(), 2);
    for item in &items {
        let stored = match item.get("body").or(item.get("raw")).and_then(|b| b.as_b().ok()) {
            Some(blob) => wahooks::store::decompress(blob.as_ref()).expect("zstd"),
            None => panic!("an item without a body: {item:?}"),
        };
        let text = String::from_utf8_lossy(&stored);
        assert!(!text.contains("live-instance-token"), "{text}");
        assert!(
            text.contains("\"***\""),
            "the credential is masked, not dropped: {text}"
        );
    }
}

#[tokio::test]
async fn a_body_naming_another_tenants_instance_is_refused_and_the_owners_delivery_is_stored() {
    let stack = Stack::start().await;
    // Two Z-API endpoints of two tenants (two customers, or a leaked URL of a weaker one).
    let (owner_token, owner) = stack.endpoint(Provider::Zapi, Auth::url_token()).await;
    let (other_token, other) = stack.endpoint(Provider::Zapi, Auth::url_token()).await;
    assert_ne!(
        owner.tenant, other.tenant,
        "one tenant per endpoint unless told otherwise"
    );
    assert_eq!(
        stack
            .registry
            .bind(Provider::Zapi, "VICTIM", owner.tenant_id(), &owner.id)
            .await
            .expect("bound"),
        wahooks::registry::Claim::Owned
    );
    let message = |text: &str| {
        serde_json::to_vec(&serde_json::json!({
            "type": "ReceivedCallback", "instanceId": "VICTIM", "messageId": "3EB0CHOSEN", "phone": "5511999999999",
            "fromMe": false, "momment": 1757390383000u64, "text": {"message": text}
        }))
        .expect("json")
    };
    let headers = json_headers();
    // The forged body first: refused, kept, nothing stored in the victim's chat.
    let (status, answer) = post(
        &stack.receiver,
        Route::MessageReceived,
        &other_token,
        &headers,
        &message("forged"),
        false,
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (403, Some("instance_not_owned")),
        "{answer}"
    );
    assert!(
        answer["detail"].as_str().unwrap_or_default().contains("VICTIM"),
        "{answer}"
    );
    assert!(stack.event_items().await.is_empty(), "nothing stored");
    let quarantined: Vec<_> = stack
        .items()
        .await
        .into_iter()
        .filter(|i| keys::is_quarantine_pk(s(i, "pk")))
        .collect();
    assert_eq!(quarantined.len(), 1, "kept for the operator");
    assert_eq!(s(&quarantined[0], "endpoint"), other.id);
    // The genuine delivery that follows is stored: not answered as a duplicate.
    let (status, answer) = post(
        &stack.receiver,
        Route::MessageReceived,
        &owner_token,
        &headers,
        &message("genuine"),
        false,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (ids(&answer, "accepted").len(), ids(&answer, "duplicates").len()),
        (1, 0)
    );
    let stored = stack.event_items().await;
    assert_eq!(stored.len(), 1);
    let event = event_of_sdk_item(&stored[0]).expect("event");
    assert_eq!(event.endpoint, owner.id);
    assert!(event.data.raw.expect("raw").get().contains("genuine"));

    // An instance no one owns is bound to the first tenant that delivers for it.
    let (status, _) = post(
        &stack.receiver,
        Route::MessageReceived,
        &other_token,
        &headers,
        &String::from_utf8(message("mine"))
            .expect("utf8")
            .replace("VICTIM", "OTHER")
            .into_bytes(),
        false,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        stack.registry.instances_of(other.tenant_id()).await.expect("listed"),
        [("zapi".to_owned(), "OTHER".to_owned())]
    );
    let (status, answer) = post(
        &stack.receiver,
        Route::MessageReceived,
        &owner_token,
        &headers,
        &String::from_utf8(message("x"))
            .expect("utf8")
            .replace("VICTIM", "OTHER")
            .into_bytes(),
        false,
    )
    .await;
    assert_eq!((status, answer["code"].as_str()), (403, Some("instance_not_owned")));
}

#[tokio::test]
async fn two_tenants_bodies_without_an_instance_never_share_an_id_or_a_partition() {
    let stack = Stack::start().await;
    let (a_token, _) = stack.endpoint(Provider::Wwa, Auth::url_token()).await;
    let (b_token, _) = stack.endpoint(Provider::Wwa, Auth::url_token()).await;
    // A WhatsApp Web API message names no instance.
    let body = br#"{"message":"oi","messageSent":"Message sent by you","number":"5511999999999","messageId":"SAME"}"#;
    let headers = json_headers();
    let (_, a) = post(&stack.receiver, Route::MessageSent, &a_token, &headers, body, false).await;
    let (_, b) = post(&stack.receiver, Route::MessageSent, &b_token, &headers, body, false).await;
    assert_eq!(ids(&a, "accepted").len(), 1, "{a}");
    assert_eq!(
        ids(&b, "accepted").len(),
        1,
        "the other tenant's is its own event, not a duplicate: {b}"
    );
    assert_ne!(ids(&a, "accepted"), ids(&b, "accepted"));
    let partitions: HashSet<String> = stack
        .event_items()
        .await
        .iter()
        .map(|i| s(i, "pk").to_owned())
        .collect();
    assert_eq!(partitions.len(), 2);
}

/// Every attribute value of every item of the endpoints table, as text.
async fn endpoint_items_text(stack: &Stack) -> String {
    format!("{:?}", common::table_items(&stack.dynamo, "endpoints-test").await)
}

/// A WhatsApp Web API message (it names no instance) with its own id.
fn wwa_message(id: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "message": "oi", "messageSent": "Message sent by you", "number": "5511999999999", "messageId": id
    }))
    .expect("json")
}

#[tokio::test]
async fn static_scheme_secrets_are_stored_only_as_digests_and_still_authenticate() {
    let stack = Stack::start().await;
    let schemes = [
        (Scheme::Bearer, "zz-known-bearer-secret-41f7"),
        (Scheme::Basic, "zz-known-user:zz-known-basic-password-41f7"),
        (Scheme::ApiKey, "zz-known-api-key-41f7"),
        (Scheme::CustomHeader, "zz-known-custom-value-41f7"),
        (Scheme::ZapiToken, "zz-known-zapi-instance-token-41f7"),
    ];
    let auth_of = |scheme: Scheme, secret: &str| {
        let header = (scheme == Scheme::CustomHeader).then_some("X-Shared-Key");
        Auth::new(scheme, vec![Secret::new(secret)], header).expect("auth")
    };
    let mut endpoints = Vec::new();
    for (scheme, secret) in schemes {
        let (token, _) = stack.endpoint(Provider::Wwa, auth_of(scheme, secret)).await;
        endpoints.push((scheme, secret, token));
    }
    // Meta's verify token is kept as a digest too (its app secret is sealed: the next test).
    let meta = Auth::new(
        Scheme::HubSignature256,
        vec![Secret::new("zz-known-app-secret-41f7")],
        None,
    )
    .expect("auth")
    .with_verify_token(Secret::new("zz-known-verify-token-41f7"))
    .expect("token");
    let (meta_token, _) = stack.endpoint(Provider::Meta, meta).await;

    let stored = endpoint_items_text(&stack).await;
    assert!(
        !stored.contains("zz-known"),
        "no static secret or verify token at rest: {stored}"
    );
    for (scheme, secret, _) in &endpoints {
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(secret.as_bytes()));
        assert!(stored.contains(&digest), "{scheme}: its digest is what is stored");
    }

    // Read back from the table (digests only), each still takes its secret and nothing else.
    for (n, (scheme, secret, token)) in endpoints.iter().enumerate() {
        let body = wwa_message(&format!("DIGEST-{n}"));
        let right = sign(&auth_of(*scheme, secret), &body, Utc::now().timestamp());
        let (status, v) = post(&stack.receiver, Route::MessageSent, token, &right, &body, false).await;
        assert_eq!(status, 200, "{scheme}: {v}");
        let wrong_secret = if *scheme == Scheme::Basic {
            "zz-known-user:nope"
        } else {
            "nope"
        };
        let wrong = sign(&auth_of(*scheme, wrong_secret), &body, Utc::now().timestamp());
        let (status, v) = post(&stack.receiver, Route::MessageSent, token, &wrong, &body, false).await;
        assert_eq!(
            (status, v["code"].as_str()),
            (401, Some("bad_credentials")),
            "{scheme}: {v}"
        );
        let (status, _) = post(&stack.receiver, Route::MessageSent, token, &[], &body, false).await;
        assert_eq!(status, 401, "{scheme}: no credential");
    }

    // Rotation on a read-back endpoint works on its digests, through the registry's update.
    use wahooks::registry::EndpointRegistry;
    let (_, secret, token) = &endpoints[4];
    let mut e = (*stack.registry.lookup(token).await.expect("lookup").expect("exists")).clone();
    assert!(e.auth.secrets().is_empty() && e.auth.secret_count() == 1);
    e.auth.add_secret(Secret::new("zz-known-rotated-41f7")).expect("rotate");
    stack.registry.update(&e).await.expect("update");
    let old = sign(&auth_of(Scheme::ZapiToken, secret), b"{}", 0);
    let new = sign(&auth_of(Scheme::ZapiToken, "zz-known-rotated-41f7"), b"{}", 0);
    for (id, headers) in [("ROT-OLD", &old), ("ROT-NEW", &new)] {
        let (status, v) = post(
            &stack.receiver,
            Route::MessageSent,
            token,
            headers,
            &wwa_message(id),
            false,
        )
        .await;
        assert_eq!(status, 200, "{id}: both valid during the rotation: {v}");
    }
    e.auth.remove_secret(0).expect("remove the old");
    stack.registry.update(&e).await.expect("update");
    let (status, _) = post(
        &stack.receiver,
        Route::MessageSent,
        token,
        &old,
        &wwa_message("ROT-OLD-2"),
        false,
    )
    .await;
    assert_eq!(status, 401, "the removed one is refused");
    let (status, _) = post(
        &stack.receiver,
        Route::MessageSent,
        token,
        &new,
        &wwa_message("ROT-NEW-2"),
        false,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        !endpoint_items_text(&stack).await.contains("zz-known"),
        "nor after a rotation"
    );

    // The handshake compares the verify token's digest.
    let handshake = |token: &str| {
        stack.receiver.handle(
            Route::Any,
            request(
                "GET",
                &format!("/v1/hooks/{token}"),
                "hub.mode=subscribe&hub.verify_token=zz-known-verify-token-41f7&hub.challenge=42",
                &[],
                b"",
                false,
            ),
        )
    };
    let ok = handshake(&meta_token).await;
    assert_eq!((ok.status().as_u16(), ok.body().as_ref()), (200, &b"42"[..]));
}

#[tokio::test]
async fn signing_keys_are_sealed_under_kms_open_once_per_container_and_only_for_their_endpoint() {
    use wahooks::registry::{EndpointRegistry, RegistryError};
    let stack = Stack::start().await;
    // Each signing scheme with a key we can look for in the table (Hub Message's is 64 hex
    // digits, Standard Webhooks' the base64 after `whsec_`).
    let hub_key = format!("{}c0fe41f7", "5eca1ed0".repeat(7));
    let webhooks_b64 = "enota25vd24tc3RhbmRhcmQtd2ViaG9va3Mta2V5LTQxZjc=";
    let schemes = [
        (
            Scheme::HubSignature256,
            "zz-known-meta-app-secret".to_owned(),
            "zz-known-meta-app-secret".to_owned(),
        ),
        (
            Scheme::WahaHmac,
            "zz-known-waha-key".to_owned(),
            "zz-known-waha-key".to_owned(),
        ),
        (
            Scheme::EvolutionJwt,
            "zz-known-evolution-jwt-key".to_owned(),
            "zz-known-evolution-jwt-key".to_owned(),
        ),
        (Scheme::HubmessageHmac, hub_key.clone(), hub_key.clone()),
        (
            Scheme::StandardWebhooks,
            format!("whsec_{webhooks_b64}"),
            webhooks_b64.to_owned(),
        ),
    ];
    let auth_of = |scheme: Scheme, secret: &str| Auth::new(scheme, vec![Secret::new(secret)], None).expect("auth");
    let mut endpoints = Vec::new();
    for (scheme, secret, findable) in &schemes {
        let (token, endpoint) = stack.endpoint(Provider::Wwa, auth_of(*scheme, secret)).await;
        endpoints.push((*scheme, secret.clone(), findable.clone(), token, endpoint));
    }
    let stored = endpoint_items_text(&stack).await;
    for (scheme, _, findable, _, _) in &endpoints {
        assert!(
            !stored.contains(findable.as_str()),
            "{scheme}: its key is not in the table: {stored}"
        );
    }
    assert_eq!(stored.matches("sealed_secrets").count(), endpoints.len(), "{stored}");
    assert_eq!(stack.keyring.decrypt_calls(), 0, "sealing needs no decrypt");

    // Each key opens (one KMS Decrypt per key, the first time), signs, and refuses another key.
    for round in 0..2 {
        for (n, (scheme, secret, _, token, _)) in endpoints.iter().enumerate() {
            let body = wwa_message(&format!("SEALED-{round}-{n}"));
            let right = sign(&auth_of(*scheme, secret), &body, Utc::now().timestamp());
            let (status, v) = post(&stack.receiver, Route::MessageSent, token, &right, &body, false).await;
            assert_eq!(status, 200, "{scheme}: {v}");
            let other = endpoints[(n + 1) % endpoints.len()].1.clone();
            let other = if *scheme == Scheme::HubmessageHmac {
                "ab".repeat(32)
            } else if *scheme == Scheme::StandardWebhooks {
                "whsec_b3RoZXItc3RhbmRhcmQta2V5LTAwMDA=".into()
            } else {
                other
            };
            let wrong = sign(&auth_of(*scheme, &other), &body, Utc::now().timestamp());
            let (status, v) = post(&stack.receiver, Route::MessageSent, token, &wrong, &body, false).await;
            assert_eq!(status, 401, "{scheme}: {v}");
        }
        // The registry reads the table on every request here (no endpoint cache), and still
        // no second Decrypt: the container keeps the data keys it opened.
        assert_eq!(stack.keyring.decrypt_calls(), endpoints.len(), "round {round}");
    }

    // A sealed record copied under another endpoint id does not open: a 503 and an alarmed
    // metric, never a key that works for the copy.
    let (_, _, _, _, original) = &endpoints[0];
    let item = common::table_items(&stack.dynamo, "endpoints-test")
        .await
        .into_iter()
        .find(|i| s(i, "endpoint_id") == original.id)
        .expect("the item");
    let mut copy: Value = serde_json::from_str(s(&item, "endpoint")).expect("json");
    copy["id"] = Value::String("ep_copy".into());
    let copy_token = new_token();
    stack
        .dynamo
        .put_item()
        .table_name("endpoints-test")
        .item("pk", AttributeValue::S(wahooks::registry::token_key(&copy_token)))
        .item("endpoint_id", AttributeValue::S("ep_copy".into()))
        .item("endpoint", AttributeValue::S(copy.to_string()))
        .item("token_added_at", AttributeValue::N("0".into()))
        .send()
        .await
        .expect("put");
    assert!(matches!(
        stack.registry.lookup(&copy_token).await,
        Err(RegistryError::Corrupt(_))
    ));
    let body = wwa_message("COPIED");
    let signed = sign(&auth_of(endpoints[0].0, &endpoints[0].1), &body, Utc::now().timestamp());
    let (status, _) = post(&stack.receiver, Route::MessageSent, &copy_token, &signed, &body, false).await;
    assert_eq!(status, 503);

    // A receiver without the keyring cannot use a sealed key: 503, never "accept anything".
    let keyless = Receiver::new(
        Arc::new(DynamoRegistry::new(stack.dynamo.clone(), "endpoints-test")),
        stack.receiver.store.clone(),
    );
    let (scheme, secret, _, token, _) = &endpoints[1];
    let body = wwa_message("KEYLESS");
    let signed = sign(&auth_of(*scheme, secret), &body, Utc::now().timestamp());
    let (status, _) = post(&keyless, Route::MessageSent, token, &signed, &body, false).await;
    assert_eq!(status, 503);

    // A record from before the seals (the key as it is) still works until `wahooks endpoint
    // upgrade` seals it (cli/tests/cli_endpoint.rs), and rotating a sealed endpoint's key seals
    // the new one without opening the others.
    let (scheme, secret, findable, token, endpoint) = &endpoints[1];
    let mut e = endpoint.clone();
    let locked: Endpoint = serde_json::from_value(
        serde_json::to_value(&stack.registry.find_by_id(&e.id).await.expect("found").1).expect("json"),
    )
    .expect("reads");
    assert_eq!(locked.auth.locked().len(), 1, "an operator reads it sealed");
    e = locked;
    e.auth
        .add_secret(Secret::new("zz-known-rotated-waha-key"))
        .expect("rotate");
    let before = stack.keyring.decrypt_calls();
    stack.registry.update(&e).await.expect("update");
    assert_eq!(stack.keyring.decrypt_calls(), before, "sealing the new key opens none");
    let stored = endpoint_items_text(&stack).await;
    assert!(
        !stored.contains("zz-known-rotated") && !stored.contains(findable.as_str()),
        "{stored}"
    );
    for (id, key) in [("ROT-A", secret.as_str()), ("ROT-B", "zz-known-rotated-waha-key")] {
        let body = wwa_message(id);
        let signed = sign(&auth_of(*scheme, key), &body, Utc::now().timestamp());
        let (status, v) = post(&stack.receiver, Route::MessageSent, token, &signed, &body, false).await;
        assert_eq!(status, 200, "{id}: {v}");
    }
}

#[tokio::test]
async fn a_stored_endpoint_record_that_does_not_validate_is_a_503_never_a_200() {
    let stack = Stack::start().await;
    let template = serde_json::to_value(new_endpoint(Provider::Wwa, Auth::url_token())).expect("json");
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"x"));
    let tampered = [
        // An empty key would have matched an empty `x-api-key` header.
        serde_json::json!({"scheme": "api-key", "header": "x-api-key", "secrets": [""]}),
        serde_json::json!({"scheme": "api-key", "header": "x-api-key", "secret_digests": [""]}),
        serde_json::json!({"scheme": "bearer", "secret_digests": ["0123"]}),
        serde_json::json!({"scheme": "custom-header", "secret_digests": [digest]}),
        serde_json::json!({"scheme": "no-such-scheme", "secrets": ["x"]}),
        serde_json::json!({"scheme": "zapi-token", "secrets": []}),
    ];
    for auth in tampered {
        let token = new_token();
        let mut endpoint = template.clone();
        endpoint["auth"] = auth.clone();
        stack
            .dynamo
            .put_item()
            .table_name("endpoints-test")
            .item("pk", AttributeValue::S(wahooks::registry::token_key(&token)))
            .item("endpoint_id", AttributeValue::S("ep_tampered".into()))
            .item("endpoint", AttributeValue::S(endpoint.to_string()))
            .item("token_added_at", AttributeValue::N("0".into()))
            .send()
            .await
            .expect("put");
        use wahooks::registry::{EndpointRegistry, RegistryError};
        assert!(
            matches!(stack.registry.lookup(&token).await, Err(RegistryError::Corrupt(_))),
            "{auth}"
        );
        let body = wwa_message("TAMPERED");
        for headers in [
            vec![("x-api-key".to_owned(), String::new())],
            vec![],
            vec![("authorization".to_owned(), "Bearer x".to_owned())],
        ] {
            let (status, v) = post(&stack.receiver, Route::MessageSent, &token, &headers, &body, false).await;
            assert_eq!(
                (status, &v),
                (
                    503,
                    &serde_json::json!({"code": "unavailable", "detail": "temporarily unavailable, retry later"})
                ),
                "{auth}"
            );
        }
        let get = stack
            .receiver
            .handle(
                Route::Any,
                request(
                    "GET",
                    &format!("/v1/hooks/{token}"),
                    "hub.mode=subscribe",
                    &[],
                    b"",
                    false,
                ),
            )
            .await;
        assert_eq!(get.status(), 503, "{auth}");
    }
    assert!(stack.event_items().await.is_empty(), "nothing stored");
}

#[tokio::test]
async fn a_state_redelivery_reads_its_count_in_the_same_call_that_refused_it() {
    let stack = Stack::start().await;
    let store = DynamoEventStore::new(stack.dynamo.clone(), &stack.events_table, 30);
    let body = |state: &str| {
        format!(
            r#"{{"type":"PresenceChatCallback","phone":"5511","status":"{state}","lastSeen":null,"instanceId":"I"}}"#
        )
    };
    let event = |state: &str| {
        wahooks::providers::parse_verified(
            &wahooks::providers::ParseContext::new(Provider::Zapi, "ep", Utc::now()),
            &wahooks::auth::Verified::trusted(body(state).as_bytes()),
        )
        .expect("parses")
        .remove(0)
    };
    let mut counts = Vec::new();
    for state in ["COMPOSING", "COMPOSING", "PAUSED", "PAUSED", "COMPOSING"] {
        let e = event(state);
        let change = e.state.clone().expect("a state event");
        counts.push(store.state_sequence(&e, &change).await.expect("counted"));
    }
    // A redelivery keeps the count (read from the refused update itself: no second read that a
    // racing change could move), a change adds one.
    assert_eq!(counts, [1, 1, 2, 2, 3]);
}

#[tokio::test]
async fn endpoint_updates_are_versioned_and_written_under_every_token_at_once() {
    use wahooks::registry::{RegistryError, MAX_TRANSACTION_ITEMS};
    let stack = Stack::start().await;
    let (token, endpoint) = stack.endpoint(Provider::Zapi, Auth::url_token()).await;
    let id = endpoint.id.clone();
    assert_eq!(
        stack.registry.version_of(&id).await.expect("version"),
        1,
        "created at 1"
    );
    let second = new_token();
    stack.registry.add_token(&id, &second).await.expect("a second token");

    // Two commands read the endpoint; the first to write wins, the second is refused and
    // undoes nothing.
    let (mut a, seen_a) = stack.registry.find_versioned(&id).await.expect("read");
    let (mut b, seen_b) = stack.registry.find_versioned(&id).await.expect("read");
    assert_eq!((seen_a, seen_b), (2, 2));
    a.enabled = false;
    stack.registry.update_if(&a, seen_a).await.expect("first write");
    b.tenant = Some("tn_other".into());
    let refused = stack.registry.update_if(&b, seen_b).await.expect_err("stale");
    assert!(
        matches!(refused, RegistryError::Conflict(ref e) if e == &id),
        "{refused}"
    );
    assert!(refused.to_string().contains("run it again"), "{refused}");
    use wahooks::registry::EndpointRegistry;
    for t in [&token, &second] {
        let e = stack.registry.lookup(t).await.expect("lookup").expect("exists");
        assert!(
            !e.enabled && e.tenant == endpoint.tenant,
            "both tokens hold the first write"
        );
    }

    // A token added after an update read the endpoint makes that update stale too: no token
    // is left with an older copy.
    let (mut c, seen_c) = stack.registry.find_versioned(&id).await.expect("read");
    let third = new_token();
    stack.registry.add_token(&id, &third).await.expect("a third token");
    c.enabled = true;
    assert!(matches!(
        stack.registry.update_if(&c, seen_c).await,
        Err(RegistryError::Conflict(_))
    ));

    // An endpoint stored before versions (no ID# record) updates once from version 0.
    stack
        .dynamo
        .delete_item()
        .table_name("endpoints-test")
        .key("pk", AttributeValue::S(wahooks::registry::version_key(&id)))
        .send()
        .await
        .expect("delete the version record");
    let (mut d, seen_d) = stack.registry.find_versioned(&id).await.expect("read");
    assert_eq!(seen_d, 0);
    d.enabled = true;
    stack.registry.update_if(&d, seen_d).await.expect("from 0");
    assert!(matches!(
        stack.registry.update_if(&d, 0).await,
        Err(RegistryError::Conflict(_))
    ));

    // DynamoDB's 100 actions a transaction: an endpoint with more tokens than one update can
    // rewrite is refused with what to do, not half written.
    let (_, many) = stack.endpoint(Provider::Wwa, Auth::url_token()).await;
    for _ in 0..MAX_TRANSACTION_ITEMS - 1 {
        stack.registry.add_token(&many.id, &new_token()).await.expect("token");
    }
    let too_many = stack.registry.update(&many).await.expect_err("101 actions");
    assert!(
        matches!(too_many, RegistryError::TooManyTokens { tokens: 100, .. }),
        "{too_many}"
    );
    assert!(too_many.to_string().contains("retire-tokens"), "{too_many}");
    stack.registry.retire_tokens(&many.id).await.expect("retire");
    stack.registry.update(&many).await.expect("one token left");
}

// ------------------------------------------------------- one person, one conversation (#30)

/// The stored event of `id`, and its partition key.
async fn stored_event(stack: &Stack, id: &str) -> (CloudEvent, String) {
    let item = stack
        .event_items()
        .await
        .into_iter()
        .find(|i| keys::event_id_of_sk(s(i, "sk")) == Some(id))
        .unwrap_or_else(|| panic!("event {id} is stored"));
    let pk = s(&item, "pk").to_owned();
    (event_of_sdk_item(&item).expect("an event"), pk)
}

/// Post `body` and the one event it was stored as (or is a duplicate of).
async fn one_event(stack: &Stack, token: &str, body: &Value) -> (u16, Vec<String>, Vec<String>) {
    let (status, answer) = post(
        &stack.receiver,
        Route::Any,
        token,
        &[],
        body.to_string().as_bytes(),
        false,
    )
    .await;
    (status, ids(&answer, "accepted"), ids(&answer, "duplicates"))
}

fn fixture_json(provider: Provider, name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(common::provider_dir(provider).join(name)).expect("fixture")).expect("JSON")
}

#[tokio::test]
async fn one_person_is_one_conversation_whichever_alias_a_body_names_them_by() {
    let stack = Stack::start().await;

    // Z-API, real traffic: the phone and the LID together (`phone`, `chatLid`); then the same
    // person by the LID alone (Z-API: `phone` may be the number or the `@lid`, en/tips/lid.mdx).
    let (zapi, _) = stack.endpoint(Provider::Zapi, Auth::url_token()).await;
    let both = fixture_json(Provider::Zapi, "received-live-location.zedaapi-capture.json");
    let (status, first, _) = one_event(&stack, &zapi, &both).await;
    assert_eq!((status, first.len()), (200, 1));
    let mut lid_only = both.clone();
    lid_only["phone"] = both["chatLid"].clone();
    lid_only["chatLid"] = Value::Null;
    lid_only["messageId"] = "A5B796C1B67754F23ED3A8992295C581".into();
    lid_only["momment"] = (both["momment"].as_i64().expect("momment") + 60_000).into();
    let (status, later, _) = one_event(&stack, &zapi, &lid_only).await;
    assert_eq!((status, later.len()), (200, 1));
    let (a, a_pk) = stored_event(&stack, &first[0]).await;
    let (b, b_pk) = stored_event(&stack, &later[0]).await;
    assert_eq!(a_pk, b_pk, "one partition");
    assert_eq!(
        wahooks::fanout::group_id(&a),
        wahooks::fanout::group_id(&b),
        "one FIFO group"
    );
    let chat = b.data.chat.as_ref().expect("chat");
    assert_eq!(chat.id, "260249891368176@lid", "the chat id as sent");
    assert_eq!(
        chat.key.as_deref(),
        Some("559534380655"),
        "the key it was first seen under"
    );
    assert_eq!(chat.phone.as_deref(), Some("559534380655"), "the phone, learned");
    assert_eq!(chat.learned, vec![wahooks::event::AliasKind::Phone]);
    assert!(
        a.data.chat.as_ref().is_some_and(|c| c.learned.is_empty()),
        "the first body showed both"
    );

    // Meta (pywa's capture-shaped fixture): `wa_id` with `user_id`; then the same user by the
    // business-scoped id alone, as Meta sends once a user hides their number behind a username.
    let (meta_token, _) = stack.endpoint(Provider::Meta, Auth::url_token()).await;
    let with_phone = fixture_json(Provider::Meta, "pywa-callback-button-quick-reply-without-context.json");
    let mut without_phone = with_phone.clone();
    let value = &mut without_phone["entry"][0]["changes"][0]["value"];
    value["contacts"][0].as_object_mut().expect("contact").remove("wa_id");
    value["contacts"][0]["profile"]["username"] = "@testname".into();
    value["messages"][0].as_object_mut().expect("message").remove("from");
    value["messages"][0]["id"] = "wamid.later".into();
    let mut meta_ids = Vec::new();
    for body in [&with_phone, &without_phone] {
        let (status, accepted, _) = one_event(&stack, &meta_token, body).await;
        assert_eq!((status, accepted.len()), (200, 1));
        meta_ids.extend(accepted);
    }
    let (a, a_pk) = stored_event(&stack, &meta_ids[0]).await;
    let (b, b_pk) = stored_event(&stack, &meta_ids[1]).await;
    assert_eq!(a_pk, b_pk);
    assert_eq!(wahooks::fanout::group_id(&a), wahooks::fanout::group_id(&b));
    let chat = b.data.chat.as_ref().expect("chat");
    assert_eq!(chat.id, "US.13491208655302741918");
    assert_eq!(chat.key.as_deref(), Some("972987654321"));
    assert_eq!(chat.phone.as_deref(), Some("972987654321"));
    assert_eq!(chat.parent_user_id.as_deref(), Some("US.ENT.11815799212886844830"));
    assert_eq!(chat.learned, vec![wahooks::event::AliasKind::Phone]);
    assert_eq!(chat.username.as_deref(), Some("@testname"));

    // WAHA GOWS, real traffic: a message in its LID chat (with `SenderAlt`); then the same
    // message under its phone chat, as GOWS 2025.11 and NOWEB deliver it (WAHA #1564, #1627).
    let (waha, _) = stack.endpoint(Provider::Waha, Auth::url_token()).await;
    let lid_chat = fixture_json(Provider::Waha, "message-text-direct-lid-gows.json");
    let mut phone_chat = lid_chat.clone();
    phone_chat["id"] = "evt_01kf3swbqgyssk8qevwzhf3ajx".into();
    phone_chat["payload"]["id"] = "false_558500000738@c.us_3AC22AE73E797638455D".into();
    phone_chat["payload"]["from"] = "558500000738@c.us".into();
    let (status, stored, _) = one_event(&stack, &waha, &lid_chat).await;
    assert_eq!((status, stored.len()), (200, 1));
    let (status, again, duplicates) = one_event(&stack, &waha, &phone_chat).await;
    assert_eq!(status, 200);
    assert!(again.is_empty(), "not a second event");
    assert_eq!(duplicates, stored, "one event per message across its aliases");
    let (event, _) = stored_event(&stack, &stored[0]).await;
    assert_eq!(
        event.data.message_id.as_deref(),
        Some("false_38203818037365@lid_3AC22AE73E797638455D"),
        "the id WAHA's API takes"
    );
    let chat = event.data.chat.as_ref().expect("chat");
    assert_eq!(
        (chat.lid.as_deref(), chat.phone.as_deref()),
        (Some("38203818037365@lid"), Some("558500000738"))
    );
    // The map itself: one alias item per alias, in the endpoints table (no stream: never
    // published), none in the events table.
    let aliases: Vec<String> = common::table_items(&stack.dynamo, "endpoints-test")
        .await
        .iter()
        .map(|i| s(i, "pk").to_owned())
        .filter(|pk| pk.starts_with("A#"))
        .collect();
    assert!(!stack.items().await.iter().any(|i| s(i, "pk").starts_with("A#")));
    for alias in [
        "phone:559534380655",
        "lid:260249891368176@lid",
        "user_id:US.13491208655302741918",
        "phone:558500000738",
    ] {
        assert!(aliases.iter().any(|pk| pk.ends_with(alias)), "{alias} in {aliases:?}");
    }
    assert!(
        !aliases.iter().any(|pk| pk.contains("username")),
        "usernames are never keys"
    );
    // A worker asks the same through the consumer crate.
    let lid = wahooks::event::Alias::parse("260249891368176@lid").expect("a LID");
    let instance = both["instanceId"].as_str().expect("instance");
    let contact = wahooks_consumer::contact(&stack.dynamo, "endpoints-test", "zapi", instance, &lid)
        .await
        .expect("read")
        .expect("known");
    assert_eq!(contact.key, "559534380655");
    assert_eq!(contact.phone.as_deref(), Some("559534380655"));
    let stranger = wahooks::event::Alias::parse("5511000000000").expect("a phone");
    let unknown = wahooks_consumer::contact(&stack.dynamo, "endpoints-test", "zapi", instance, &stranger).await;
    assert!(unknown.expect("read").is_none());
}
