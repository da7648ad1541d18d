//! The published schema is the types' schema, and every event wahooks makes from every fixture
//! validates against it with a validator we did not write (Python's `jsonschema`).
//! `WAHOOKS_BLESS=1 cargo test --test it schema::` rewrites `schema/wahooks-event.schema.json`.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use chrono::Utc;
use serde_json::Value;
use wahooks::event::{json_schema, StoredItemPointer, DATASCHEMA};
use wahooks::providers::{parse_verified, ParseContext};
use wahooks::Provider;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn schema_file() -> PathBuf {
    root().join("schema/wahooks-event.schema.json")
}

#[test]
fn the_checked_in_schema_is_the_one_the_types_generate() {
    let generated = json_schema();
    if std::env::var("WAHOOKS_BLESS").is_ok_and(|v| v == "1") {
        let text = serde_json::to_string_pretty(&generated).expect("json") + "\n";
        std::fs::write(schema_file(), text).expect("write the schema");
    }
    let checked_in: Value =
        serde_json::from_slice(&std::fs::read(schema_file()).expect("schema file")).expect("schema is JSON");
    assert_eq!(
        checked_in, generated,
        "schema/wahooks-event.schema.json is out of date: run `WAHOOKS_BLESS=1 cargo test --test it schema::`"
    );
    assert_eq!(checked_in["$id"], DATASCHEMA);
    assert_eq!(checked_in["$schema"], "https://json-schema.org/draft/2020-12/schema");
}

/// Run `schema/validate.py` over `docs` (one JSON document per line): (exit ok, its output).
fn validate(docs: &[String]) -> (bool, String) {
    let python = root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make test` (it installs jsonschema into .venv)",
        python.display()
    );
    let dir = tempfile::Builder::new()
        .prefix("wahooks-schema-")
        .tempdir()
        .expect("temp dir");
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, docs.join("\n")).expect("write events");
    let out = Command::new(python)
        .arg(root().join("schema/validate.py"))
        .arg(schema_file())
        .arg(&file)
        .output()
        .expect("run the validator");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn every_event_of_every_fixture_validates() {
    let mut docs = Vec::new();
    for provider in Provider::ALL {
        for (name, bytes) in common::payloads(provider) {
            let ctx = ParseContext::new(provider, "ep-test", Utc::now());
            let Ok(events) = parse_verified(&ctx, &wahooks::auth::Verified::trusted(&bytes)) else {
                panic!("{name}: every fixture is JSON")
            };
            for e in events {
                assert_eq!(e.dataschema, DATASCHEMA, "{name}");
                docs.push(e.to_json());
                // The same event as a queue message too large for `raw`: the pointer instead.
                let mut slim = e.clone();
                slim.data.raw = None;
                slim.data.stored_item = Some(StoredItemPointer {
                    table: "wahooks-events".into(),
                    pk: "C#zapi#I#5511".into(),
                    sk: format!("E#{}", e.id),
                });
                docs.push(slim.to_json());
            }
        }
    }
    assert!(docs.len() > 400, "{} events", docs.len());
    let (ok, out) = validate(&docs);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("{} valid", docs.len())), "{out}");
}

#[test]
fn the_validator_refuses_what_the_schema_does_not_promise() {
    let ctx = ParseContext::new(Provider::Zapi, "ep", Utc::now());
    let (_, body) = common::payloads(Provider::Zapi)
        .into_iter()
        .find(|(name, _)| name.starts_with("received-text"))
        .expect("a Z-API text fixture");
    let good: Value = serde_json::from_str(
        &parse_verified(&ctx, &wahooks::auth::Verified::trusted(&body)).expect("json")[0].to_json(),
    )
    .expect("event");
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        v.to_string()
    };
    let docs = vec![
        broken(&|v| v["type"] = "whatsapp.bogus".into()),
        broken(&|v| {
            v.as_object_mut().expect("object").remove("id");
        }),
        broken(&|v| v["time"] = "yesterday".into()),
        broken(&|v| v["data"]["chat"] = serde_json::json!({"id": "x", "kind": "channel"})),
    ];
    let (ok, out) = validate(&docs);
    assert!(!ok, "{out}");
    assert!(out.contains("4 of 4 invalid"), "{out}");
}
