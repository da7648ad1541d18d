//! `wahooks parse` as a user runs it: real binary, real files.

use std::path::{Path, PathBuf};
use std::process::Output;

fn wahooks(args: &[&str], stdin: Option<&[u8]>) -> Output {
    crate::wahooks(args, &[], stdin)
}

fn fixture(rel: &str) -> String {
    let p: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(rel);
    p.to_string_lossy().into_owned()
}

fn lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON event"))
        .collect()
}

#[test]
fn parse_prints_one_cloudevent_per_line_and_exits_zero() {
    let out = wahooks(
        &[
            "parse",
            "--provider",
            "zapi",
            &fixture("zapi/message-status-group-read-multi-ids.zedaapi-capture.json"),
        ],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events = lines(&out);
    assert_eq!(events.len(), 3);
    assert!(events
        .iter()
        .all(|e| e["type"] == "whatsapp.message.status" && e["specversion"] == "1.0"));
}

#[test]
fn parse_reads_stdin_with_a_dash() {
    let body = std::fs::read(fixture("meta/meta-cloud-text-message.json")).expect("fixture");
    let out = wahooks(&["parse", "--provider", "meta", "-"], Some(&body));
    assert!(out.status.success());
    assert_eq!(lines(&out)[0]["type"], "whatsapp.message.received");
}

#[test]
fn invalid_input_exits_one_naming_the_file_and_what_is_wrong() {
    let dir = std::env::temp_dir().join(format!("wahooks-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let cases = [
        ("not-json.json", "hello", "not JSON"),
        ("cut.json", "{\"type\": \"Rec", "truncated"),
        ("num.json", "42", "not an object or an array"),
    ];
    for (name, body, reason) in cases {
        let path = dir.join(name);
        std::fs::write(&path, body).expect("write");
        let out = wahooks(&["parse", "--provider", "zapi", &path.to_string_lossy()], None);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert!(out.stdout.is_empty(), "{name}: nothing printed for a bad file");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(name) && err.contains(reason), "{name}: {err}");
    }
    // A good file next to a bad one is still printed.
    let good = fixture("zapi/received-text.zapi-docs.json");
    let out = wahooks(
        &[
            "parse",
            "--provider",
            "zapi",
            &dir.join("cut.json").to_string_lossy(),
            &good,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(lines(&out).len(), 1);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn valid_json_of_an_unknown_shape_is_an_unknown_event() {
    let out = wahooks(&["parse", "--provider", "wwa", "-"], Some(br#"{"something":"else"}"#));
    assert!(out.status.success());
    assert_eq!(lines(&out)[0]["type"], "whatsapp.unknown");
}

#[test]
fn route_hint_classifies_hub_message_bodies() {
    let out = wahooks(
        &[
            "parse",
            "--provider",
            "hubmessage",
            "--route",
            "message-sent",
            &fixture("hubmessage/hubmessage-default-text.json"),
        ],
        None,
    );
    assert!(out.status.success());
    assert_eq!(lines(&out)[0]["type"], "whatsapp.message.sent");
}
