//! `wahooks-dev cost` as a user runs it: its own moto, every fixture through the receivers and the
//! fanout, the table read back. The measurements must hold the storage layout's promise.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_cost_report_measures_the_fixture_mix_through_the_local_stack() {
    let moto = std::env::var("WAHOOKS_MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join(".venv/bin/moto_server"));
    assert!(moto.exists(), "run `make test`: it installs moto into .venv");
    let out = Command::new(env!("CARGO_BIN_EXE_wahooks-dev"))
        .current_dir(root())
        .args(["cost", "--json", "--moto"])
        .arg(&moto)
        .output()
        .expect("wahooks-dev cost runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let f = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"));
    assert!(f("events") > 200.0, "the whole mix: {v}");
    // The layout's promise is about what an event's storage costs (redeliveries are the mix's),
    // the body items its multi-event webhooks share included.
    let wru = f("stored_write_units_per_event");
    assert!(wru <= 2.2, "{wru:.2} write units per event");
    assert!(
        (f("base_write_units_per_event") + f("index_write_units_per_event") + f("body_write_units_per_event") - wru)
            .abs()
            < 1e-9,
        "stored = items + index entries + body items"
    );
    assert!(
        (f("write_units_per_event")
            - wru
            - f("refused_write_units_per_event")
            - f("redelivered_body_write_units_per_event"))
        .abs()
            < 1e-9,
        "billed = stored + refused + body items rewritten by redeliveries"
    );
    // The mix has webhooks of several events: each keeps its body once, in a body item put by
    // every delivery of it.
    assert!(f("multi_event_bodies") >= 1.0, "{v}");
    assert!(
        f("body_items") >= 1.0 && f("body_items") <= f("multi_event_bodies"),
        "{v}"
    );
    assert!(
        f("body_item_puts") + f("redelivered_body_item_puts") >= f("body_items"),
        "every body item was put: {v}"
    );
    assert!(f("body_write_units_per_event") > 0.0, "{v}");
    // The bucket holds only what the receiver put there.
    assert!(f("s3_objects") <= f("s3_puts"), "{v}");
    assert!(f("s3_bytes") <= f("s3_put_bytes"), "{v}");
    // The claim check must not make the mix dearer than the figure the docs gave before it.
    assert!(
        v["rose"] == serde_json::json!(false),
        "${:.2} per million events, was ${:.2}",
        f("dollars_per_million_events"),
        f("dollars_per_million_events_before_claim_check")
    );
    assert!(
        f("base_write_units_per_event") >= 1.0,
        "every item costs at least one unit"
    );
    assert!(f("stored_bytes_per_event") > 100.0);
    assert!(f("send_message_batch_per_event") > 0.0, "the fanout published");
    // Turns: the mix's inbound messages made turns once their chats went quiet, each through a
    // transaction, told by the fanout's notes and published after them.
    // The identity map: the mix's people read and learned, each alias item written at least
    // once; what it costs is priced apart from storing and publishing.
    let identity = &v["identity"];
    let i = |k: &str| {
        identity[k]
            .as_f64()
            .unwrap_or_else(|| panic!("identity.{k} in {identity}"))
    };
    assert!(i("items") > 10.0, "the mix names many people: {identity}");
    assert!(i("puts") >= i("items"), "every alias item was written: {identity}");
    assert!(i("reads") > 0.0 && i("read_units") > 0.0, "{identity}");
    assert!(i("dollars_per_million_events") > 0.0, "{identity}");
    // One archived media file: one object, its event, its note.
    let media = &v["media"];
    let h = |k: &str| media[k].as_f64().unwrap_or_else(|| panic!("media.{k} in {media}"));
    assert_eq!(h("archived"), h("files"), "every sample file archived: {media}");
    assert_eq!(h("s3_puts"), h("files"), "one PutObject each (under a part): {media}");
    assert!(h("s3_heads") >= h("files"), "looked for before fetching: {media}");
    assert!(h("write_units") >= h("files"), "an event each: {media}");
    assert!(h("dollars_per_million_files") > 0.0);
    let t = &v["timers"];
    let g = |k: &str| t[k].as_f64().unwrap_or_else(|| panic!("timers.{k} in {t}"));
    assert!(g("turns") >= 1.0, "{t}");
    assert!(g("note_batches") >= 1.0 && g("notes") >= g("turns"), "{t}");
    assert_eq!(
        g("transactions"),
        g("turns") + g("silences"),
        "one transaction per made event: {t}"
    );
    assert!(g("timers") >= g("turns"), "a timer per turn at least: {t}");
    assert!(
        g("write_units") >= 2.0 * g("transactions"),
        "a transaction bills its items twice: {t}"
    );
    assert!(g("publish_batches") >= 1.0, "{t}");
    assert!(g("dollars_per_million_events") > 0.0, "{t}");
    assert!(
        (f("dollars_per_million_events")
            - f("dollars_per_million_events_without_timers")
            - g("dollars_per_million_events"))
        .abs()
            < 1e-6,
        "the timers' row is the difference"
    );
    let rows: f64 = v["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["dollars_per_million"].as_f64().expect("cost"))
        .sum();
    assert!(
        (rows - f("dollars_per_million_events")).abs() < 1e-6,
        "the total is the sum of its parts"
    );
}
