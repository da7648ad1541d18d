//! `wahooks quarantine list|show|reparse` against a real local DynamoDB (moto), as an operator
//! runs it: one body that now parses is stored and leaves quarantine, one that still does not
//! stays, with its reason.

use std::process::Output;

use wahooks::store::{keys, DynamoEventStore, EventStore, Quarantined};

use crate::moto;

fn wahooks(moto: &moto::Moto, args: &[&str]) -> Output {
    let env = [
        ("WAHOOKS_EVENTS_TABLE", "events-q"),
        ("WAHOOKS_QUEUE_MESSAGES", "http://unused/q.fifo"),
    ];
    crate::wahooks_on(moto, &env, args)
}

fn q(body: &[u8], reason: &str, at: i64) -> Quarantined {
    Quarantined {
        endpoint: "ep_quarantine".into(),
        provider: "zapi".into(),
        route: "message-received".into(),
        delivery_id: None,
        tenant: None,
        reason: reason.into(),
        raw: body.to_vec(),
        received_at_ms: at,
    }
}

#[tokio::test]
async fn quarantined_bodies_are_listed_shown_and_reparsed_into_the_table() {
    let moto = moto::Moto::start();
    let dynamo = moto.dynamo().await;
    wahooks::schema::create_events_table(&dynamo, "events-q")
        .await
        .expect("table");
    let store = DynamoEventStore::new(dynamo.clone(), "events-q", 30);
    let good = br#"{"type":"ReceivedCallback","instanceId":"I","messageId":"M1","phone":"5511","fromMe":false,"momment":1757390383000,"text":{"message":"oi"}}"#;
    let bad = b"{\"type\": \"Recei";
    store
        .quarantine(q(good, "DynamoDB refused the event: test", 1_757_390_383_000))
        .await
        .expect("q");
    store
        .quarantine(q(bad, "the JSON is truncated", 1_757_390_384_000))
        .await
        .expect("q");

    let list = wahooks(&moto, &["quarantine", "list"]);
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    let lines = String::from_utf8_lossy(&list.stdout).into_owned();
    assert_eq!(lines.lines().count(), 2, "{lines}");
    assert!(
        lines.contains("truncated") && lines.contains("zapi ep_quarantine  /message-received"),
        "{lines}"
    );

    let sha = wahooks::identity::sha256_hex(good);
    let show = wahooks(&moto, &["quarantine", "show", &sha[..12]]);
    assert!(show.status.success());
    assert_eq!(show.stdout, good, "the body exactly as received");

    let all = wahooks(&moto, &["quarantine", "reparse", "--all"]);
    let out = String::from_utf8_lossy(&all.stdout).into_owned();
    assert!(!all.status.success(), "one body still does not parse: {out}");
    assert!(
        out.contains("1 event(s) stored") && out.contains("still not stored: the JSON is truncated"),
        "{out}"
    );

    let items = dynamo.scan().table_name("events-q").send().await.expect("scan");
    let sks: Vec<String> = items
        .items()
        .iter()
        .filter_map(|i| i.get("sk").and_then(|v| v.as_s().ok()).cloned())
        .collect();
    assert_eq!(sks.iter().filter(|s| keys::is_event_sk(s)).count(), 1, "{sks:?}");
    let left: Vec<_> = items
        .items()
        .iter()
        .filter(|i| {
            i.get("pk")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|p| keys::is_quarantine_pk(p))
        })
        .collect();
    assert_eq!(left.len(), 1, "only the unparseable body stays");

    let again = wahooks(&moto, &["quarantine", "reparse", &sha[..12]]);
    assert!(!again.status.success(), "it left quarantine");
}

#[tokio::test]
async fn a_quarantined_body_too_large_for_an_item_is_read_from_the_bucket_shown_and_reparsed() {
    let moto = moto::Moto::start();
    let dynamo = moto.dynamo().await;
    wahooks::schema::create_events_table(&dynamo, "events-q")
        .await
        .expect("table");
    // The local bucket `wahooks` finds for its default prefix.
    let s3 = wahooks::bucket::s3_client(&moto.sdk().await);
    let bucket = wahooks::schema::local_bucket_name("wahooks");
    wahooks::schema::create_bucket(&s3, &bucket).await.expect("bucket");
    let store = DynamoEventStore::new(dynamo.clone(), "events-q", 30)
        .with_bucket(std::sync::Arc::new(wahooks::bucket::S3Bucket::new(s3.clone(), &bucket)));
    // A message whose body is 600 KB of incompressible text: ~450 KB compressed, over an item.
    let body = serde_json::to_vec(&serde_json::json!({
        "type": "ReceivedCallback", "instanceId": "I", "messageId": "BIG", "phone": "5511",
        "fromMe": false, "momment": 1_757_390_383_000u64,
        "text": {"message": wahooks::testkit::incompressible_base64(600 * 1024)}
    }))
    .expect("json");
    store
        .quarantine(q(&body, "DynamoDB refused the event: test", 1_757_390_383_000))
        .await
        .expect("quarantined to the bucket");
    let sha = wahooks::identity::sha256_hex(&body);
    let items = dynamo.scan().table_name("events-q").send().await.expect("scan");
    let item = items.items().first().expect("the quarantine item");
    assert!(item.get("raw").is_none(), "the body is not in the item");
    assert_eq!(
        item.get("raw_object").and_then(|v| v.as_s().ok()).map(String::as_str),
        Some(format!("s3://{bucket}/quarantine/{sha}").as_str())
    );

    let list = wahooks(&moto, &["quarantine", "list"]);
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    let lines = String::from_utf8_lossy(&list.stdout).into_owned();
    assert_eq!(lines.lines().count(), 1, "{lines}");
    assert!(lines.contains(&format!("{} B (S3)", body.len())), "{lines}");

    let show = wahooks(&moto, &["quarantine", "show", &sha[..12]]);
    assert!(show.status.success(), "{}", String::from_utf8_lossy(&show.stderr));
    assert!(show.stdout == body, "the body exactly as received, from the bucket");

    let reparse = wahooks(&moto, &["quarantine", "reparse", &sha[..12]]);
    let out = String::from_utf8_lossy(&reparse.stdout).into_owned();
    assert!(
        reparse.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&reparse.stderr)
    );
    assert!(out.contains("1 event(s) stored"), "{out}");
    let items = dynamo.scan().table_name("events-q").send().await.expect("scan");
    let pks: Vec<&str> = items
        .items()
        .iter()
        .filter_map(|i| i.get("pk").and_then(|v| v.as_s().ok()).map(String::as_str))
        .collect();
    assert!(
        !pks.iter().any(|p| keys::is_quarantine_pk(p)),
        "it left quarantine: {pks:?}"
    );
    let events = items
        .items()
        .iter()
        .filter(|i| {
            i.get("sk")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|s| keys::is_event_sk(s))
        })
        .count();
    assert_eq!(events, 1, "{pks:?}");
    // Its body, too large for the table, was stored once in the bucket.
    let objects = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("bodies/")
        .send()
        .await
        .expect("list");
    assert_eq!(objects.contents().len(), 1, "{objects:?}");
}

#[tokio::test]
async fn media_retry_sends_the_archiver_the_messages_whose_files_failed() {
    let moto = moto::Moto::start();
    let dynamo = moto.dynamo().await;
    wahooks::schema::create_events_table(&dynamo, "events-q")
        .await
        .expect("table");
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk().await);
    let media_url = wahooks::schema::create_media_queue(&sqs, "retry").await.expect("queue");
    // A message with an image, and the failed event the archiver stored for it.
    let now = chrono::Utc::now();
    let message = {
        let data = wahooks::event::EventData {
            message_id: Some("M1".into()),
            ..Default::default()
        };
        wahooks::CloudEvent::new(
            "a".repeat(32),
            wahooks::Provider::Zapi,
            "I",
            wahooks::EventType::MessageReceived,
            Some("5511".into()),
            now,
            "ep",
            now,
            data,
        )
    };
    let failed = {
        let data = wahooks::event::EventData {
            media: Some(wahooks::event::MediaFile {
                event_id: message.id.clone(),
                message_id: Some("M1".into()),
                bucket: None,
                key: None,
                bytes: None,
                content_type: None,
                sha256: None,
                reason: Some("not_allowed".into()),
                detail: Some("host not on the allow-list".into()),
                attempts: 1,
            }),
            ..Default::default()
        };
        wahooks::CloudEvent::new(
            "b".repeat(32),
            wahooks::Provider::Zapi,
            "I",
            wahooks::EventType::MediaFailed,
            Some("5511".into()),
            now,
            "ep",
            now,
            data,
        )
    };
    let store = DynamoEventStore::new(dynamo.clone(), "events-q", 30);
    store.put_if_absent(&[message.clone(), failed]).await.expect("stored");
    let retry = |args: &[&str]| {
        let env = [
            ("WAHOOKS_EVENTS_TABLE", "events-q"),
            ("WAHOOKS_QUEUE_MESSAGES", "http://unused/q.fifo"),
            ("WAHOOKS_MEDIA_URL", media_url.as_str()),
        ];
        crate::wahooks_on(&moto, &env, args)
    };
    let dry = retry(&["media", "retry", "--since", "1h", "--dry-run"]);
    assert!(dry.status.success(), "{}", String::from_utf8_lossy(&dry.stderr));
    assert!(String::from_utf8_lossy(&dry.stdout).contains(&message.id));
    let sent = retry(&["media", "retry", "--since", "1h", "--event", &message.id]);
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));
    assert!(
        String::from_utf8_lossy(&sent.stdout).contains("1 file(s) sent"),
        "one note, not two"
    );
    let got = sqs
        .receive_message()
        .queue_url(&media_url)
        .max_number_of_messages(10)
        .send()
        .await
        .expect("receive");
    assert_eq!(got.messages().len(), 1);
    let note: wahooks::media::MediaNote =
        serde_json::from_str(got.messages()[0].body().expect("body")).expect("a media note");
    assert_eq!(note.event_id, message.id);
    assert_eq!(note.pk, keys::event_pk(&message), "the message's own item");
    assert_eq!(note.sk, keys::event_sk(&message.id));
    assert_eq!(note.attempt, 0, "a fresh set of attempts");
    let unknown = retry(&["media", "retry", "--event", &"f".repeat(32)]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no stored event"));
}
