//! The smoke test of `make run`: start the stack it starts (`wahooks serve`, which starts its
//! own moto server) in the background on free loopback ports, send every fixture with
//! `wahooks send` to the demo endpoints, check with `wahooks tail` that every stored event
//! arrived on a queue exactly once, then stop everything with SIGTERM and check nothing is
//! left listening.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

fn moto() -> PathBuf {
    std::env::var("WAHOOKS_MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join(".venv/bin/moto_server"))
}

/// The serve process; killed if the test fails half-way.
struct Serve(Option<Child>);

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wahooks(env: &HashMap<String, String>, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wahooks"))
        .current_dir(root())
        .envs(env)
        .args(args)
        .output()
        .expect("wahooks runs")
}

/// `export K=V` lines of the state file.
fn read_env(path: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .expect("env file")
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn make_run_stack_receives_every_fixture_and_publishes_each_event_once() {
    let (port, aws_port) = (free_port(), free_port());
    let scratch = tempdir();
    let state = scratch.path();
    let child = Command::new(env!("CARGO_BIN_EXE_wahooks"))
        .current_dir(root())
        .args([
            "serve",
            "--port",
            &port.to_string(),
            "--aws-port",
            &aws_port.to_string(),
        ])
        .arg("--state-dir")
        .arg(state)
        .arg("--moto")
        .arg(moto())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("wahooks serve starts");
    let mut serve = Serve(Some(child));

    // Ready when the demo endpoints are written and the receivers listen.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(state.join("demo.json").exists() && port_open(port)) {
        assert!(Instant::now() < deadline, "the stack did not come up");
        if let Some(c) = &mut serve.0 {
            assert!(c.try_wait().expect("wait").is_none(), "wahooks serve exited early");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let env = read_env(&state.join("env"));
    assert_eq!(env["AWS_ENDPOINT_URL"], format!("http://127.0.0.1:{aws_port}"));
    let demo: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("demo.json")).expect("demo.json")).expect("json");

    for e in demo["endpoints"].as_array().expect("endpoints") {
        let provider = e["provider"].as_str().expect("provider");
        let url = e["url"].as_str().expect("url");
        let dir = format!("tests/fixtures/{provider}");
        let mut args = vec!["send", "--url", url, "--provider", provider, "--scheme"];
        args.push(e["scheme"].as_str().expect("scheme"));
        if let Some(secret) = e["secret"].as_str() {
            args.extend(["--secret", secret]);
        }
        args.push(&dir);
        let out = wahooks(&env, &args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{provider}: {stdout}");
        assert!(
            stdout.contains(" ×") && !stdout.contains("→"),
            "{provider}: every file 200: {stdout}"
        );
    }

    // AWS End User Messaging Social's stand-in: a Meta message published twice to the local
    // topic is stored once, in the Meta demo's tenant and instance.
    let mut sns_message: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/meta/meta-cloud-text-message.json")).expect("fixture"),
    )
    .expect("json");
    sns_message["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = "wamid.SNS-SMOKE-1".into();
    let sns_file = state.join("sns-message.json");
    std::fs::write(&sns_file, sns_message.to_string()).expect("write");
    let out = wahooks(&env, &["publish-sns", "--times", "2", sns_file.to_str().expect("path")]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("2 message(s) published"), "{said}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let via_sns = loop {
        let out = wahooks(
            &env,
            &[
                "events",
                "--message",
                "wamid.SNS-SMOKE-1",
                "--instance",
                "106540352242922",
                "--json",
            ],
        );
        let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        if !lines.is_empty() || Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(via_sns.len(), 1, "published twice, stored once: {via_sns:?}");

    // What was stored, by event id.
    let stored: HashSet<String> = {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .endpoint_url(&env["AWS_ENDPOINT_URL"])
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("t", "t", None, None, "t"))
                .load()
                .await;
            let out = aws_sdk_dynamodb::Client::new(&sdk)
                .scan()
                .table_name(&env["WAHOOKS_EVENTS_TABLE"])
                .send()
                .await
                .expect("scan");
            out.items()
                .iter()
                .filter_map(|i| i.get("sk").and_then(|v| v.as_s().ok()))
                .filter_map(|sk| sk.strip_prefix("E#").map(str::to_owned))
                .collect()
        })
    };
    assert!(
        stored.len() > 100,
        "the fixtures make over a hundred events: {}",
        stored.len()
    );

    // Everything reaches a queue, once (tail acknowledges what it prints); and once their chats
    // have been quiet for 3 s, the inbound messages' turns follow them.
    let mut published: HashMap<String, usize> = HashMap::new();
    let mut made: HashSet<String> = HashSet::new();
    let mut turns: HashSet<String> = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while (!stored.is_subset(&published.keys().cloned().collect()) || turns.is_empty()) && Instant::now() < deadline {
        let out = wahooks(&env, &["tail", "--once"]);
        assert!(out.status.success());
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let event: Value = serde_json::from_str(line).expect("tail prints one CloudEvent per line");
            let id = event["id"].as_str().expect("id").to_owned();
            let kind: wahooks::EventType = event["type"].as_str().and_then(|t| t.parse().ok()).expect("a type");
            if kind == wahooks::EventType::ConversationTurn {
                assert!(
                    event["data"]["turn"]["messages"]
                        .as_array()
                        .is_some_and(|m| !m.is_empty()),
                    "{event}"
                );
                turns.insert(id.clone());
            }
            // What wahooks makes (turns, archived media) may come after the scan.
            if kind.is_derived() {
                made.insert(id.clone());
            }
            *published.entry(id).or_default() += 1;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let ids: HashSet<String> = published.keys().cloned().collect();
    assert!(stored.is_subset(&ids), "every stored event was published");
    assert!(!turns.is_empty(), "the inbound messages' chats got their turns");
    assert!(
        ids.difference(&stored).all(|id| made.contains(id)),
        "nothing else but what wahooks makes (turns, media) after the scan"
    );
    assert!(published.values().all(|n| *n == 1), "nothing published twice");

    // A message's lifecycle from gsi2: the Z-API group message read by several participants.
    let lifecycle = wahooks(
        &env,
        &[
            "events",
            "--message",
            "3AF111D2AE12E77B2C77",
            "--instance",
            "3E6D06A438D501A5CD70265FDA264287",
        ],
    );
    let lines = String::from_utf8_lossy(&lifecycle.stdout).into_owned();
    assert!(lifecycle.status.success());
    assert!(
        !lines.is_empty() && lines.lines().all(|l| l.contains("msg=3AF111D2AE12E77B2C77")),
        "{lines}"
    );
    assert!(lines.contains("whatsapp.message.status"), "{lines}");

    // Replay the statuses: each comes back once more, same ids.
    let statuses: HashSet<String> = {
        let json = wahooks(&env, &["events", "--message", "3AF111D2AE12E77B2C77", "--json"]);
        String::from_utf8_lossy(&json.stdout)
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).expect("json")["id"]
                    .as_str()
                    .expect("id")
                    .to_owned()
            })
            .collect()
    };
    assert!(!statuses.is_empty());

    // Piped into something that stops reading (`| head`): a quiet exit, not a panic.
    let mut closed = Command::new(env!("CARGO_BIN_EXE_wahooks"))
        .current_dir(root())
        .envs(&env)
        .args(["events", "--message", "3AF111D2AE12E77B2C77", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("wahooks runs");
    drop(closed.stdout.take());
    let closed = closed.wait_with_output().expect("wahooks exits");
    let stderr = String::from_utf8_lossy(&closed.stderr);
    assert!(closed.status.success() && !stderr.contains("panicked"), "{stderr}");

    let replay = wahooks(&env, &["replay", "--since", "1h", "--type", "message.status"]);
    let said = String::from_utf8_lossy(&replay.stdout).into_owned();
    assert!(replay.status.success(), "{said}");
    assert!(said.contains("0 could not be sent"), "{said}");
    let mut replayed: HashMap<String, usize> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !statuses.iter().all(|id| replayed.contains_key(id)) && Instant::now() < deadline {
        let out = wahooks(&env, &["tail", "--once", "statuses"]);
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let event: Value = serde_json::from_str(line).expect("CloudEvent");
            assert_eq!(event["type"], "whatsapp.message.status");
            *replayed
                .entry(event["id"].as_str().expect("id").to_owned())
                .or_default() += 1;
        }
    }
    assert!(statuses.iter().all(|id| replayed.get(id) == Some(&1)), "{replayed:?}");
    assert!(
        replayed.keys().all(|id| stored.contains(id)),
        "a replay re-sends stored ids only"
    );

    // Hostile HTTP does not bring the server down (statuses are checked in tests/hostile.rs).
    let zapi_url = demo["endpoints"][0]["url"].as_str().expect("url").to_owned();
    let zapi_path = zapi_url.trim_start_matches(&format!("http://127.0.0.1:{port}"));
    assert_eq!(
        http(port, "POST", zapi_path, &vec![b'x'; 11 * 1024 * 1024]),
        Some(413),
        "over API Gateway's 10 MB"
    );
    assert_eq!(http(port, "POST", "/v1/hooks/../etc/passwd", b"{}"), Some(404));
    assert_eq!(http(port, "POST", zapi_path, &[0xff, 0x00, 0xfe]), Some(400));
    raw(port, b"GARBAGE / HTTP/9.9\r\n\r\n");
    raw(port, b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n");
    raw(port, b"POST / HTTP/1.1\r\nHost: x\r\nX-Injected: a\rb\r\n\r\n");
    assert_eq!(http(port, "GET", "/", b""), Some(200), "still serving");

    // The inspector's API answers its own name and page only (issue #28: DNS rebinding, CSRF),
    // and the state files holding the demo secrets are the owner's alone.
    let own = format!("127.0.0.1:{port}");
    assert_eq!(
        http_as(port, "evil.example", None, "GET", "/_inspector/requests", b""),
        Some(403)
    );
    assert_eq!(http_as(port, &own, None, "GET", "/_inspector/requests", b""), Some(200));
    let evil = Some("http://evil.example");
    assert_eq!(
        http_as(port, &own, evil, "POST", "/_inspector/replay/1", b""),
        Some(403)
    );
    #[cfg(unix)]
    for file in ["demo.json", "env"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(state.join(file))
            .expect("state file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    if let Some(c) = &mut serve.0 {
        assert!(c.try_wait().expect("wait").is_none(), "still running");
    }

    // Stop it like Ctrl-C would; moto goes with it.
    let mut child = serve.0.take().expect("running");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "serve did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "serve exits cleanly: {status}");
    assert!(!port_open(port), "the receivers stopped");
    assert!(!port_open(aws_port), "moto server stopped");
}

/// One HTTP/1.1 request on a fresh connection; the status code, if an answer came.
fn http(port: u16, method: &str, path: &str, body: &[u8]) -> Option<u16> {
    http_as(port, "localhost", None, method, path, body)
}

/// [`http`] with this `Host` and `Origin`.
fn http_as(port: u16, host: &str, origin: Option<&str>, method: &str, path: &str, body: &[u8]) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let origin = origin.map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{origin}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    let _ = s.write_all(body);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// Bytes that are not a valid request; whatever comes back is ignored.
fn raw(port: u16, bytes: &[u8]) {
    use std::io::{Read, Write};
    if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = s.write_all(bytes);
        let _ = s.read_to_end(&mut Vec::new());
    }
}

/// The stack's state directory, removed when the test ends.
fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("wahooks-smoke-")
        .tempdir()
        .expect("temp dir")
}
