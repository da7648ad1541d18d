//! `wahooks quarantine list|show|reparse` against a real local DynamoDB (moto), as an operator
//! runs it: one body that now parses is stored and leaves quarantine, one that still does not
//! stays, with its reason.

#[path = "../../tests/common/moto.rs"]
mod moto;

use std::process::{Command, Output};

use wahooks::store::{keys, DynamoEventStore, EventStore, Quarantined};

fn wahooks(moto: &moto::Moto, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wahooks"))
        .args(args)
        .env("AWS_ENDPOINT_URL", moto.url())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("WAHOOKS_EVENTS_TABLE", "events-q")
        .env("WAHOOKS_QUEUE_MESSAGES", "http://unused/q.fifo")
        .output()
        .expect("wahooks runs")
}

fn q(body: &[u8], reason: &str, at: i64) -> Quarantined {
    Quarantined {
        endpoint: "ep_quarantine".into(),
        provider: "zapi".into(),
        route: "message-received".into(),
        delivery_id: None,
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
