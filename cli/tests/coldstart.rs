//! `wahooks-dev coldstart` as a user runs it, on a real receiver bootstrap: the `message-received`
//! binary started against the harness's Lambda Runtime API and its own moto. Every invocation
//! must come back a 200 that stored its event, and the figures must be real durations.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `target/<profile>/message-received`, built (or found fresh) by cargo, beside this test.
fn bootstrap() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .current_dir(root())
        .args(["build", "--workspace", "--locked", "--bin", "message-received"])
        .status()
        .expect("cargo runs");
    assert!(built.success(), "cargo build --bin message-received failed");
    // This test runs from target/<profile>/deps/; the binary is in target/<profile>/.
    let exe = std::env::current_exe().expect("the test's path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    profile_dir.join("message-received")
}

#[test]
fn a_receiver_bootstrap_starts_answers_and_stores_through_the_runtime_api() {
    let moto = std::env::var("WAHOOKS_MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join(".venv/bin/moto_server"));
    assert!(moto.exists(), "run `make test`: it installs moto into .venv");
    let bootstrap = bootstrap();
    assert!(bootstrap.is_file(), "{} was built", bootstrap.display());
    let out = Command::new(env!("CARGO_BIN_EXE_wahooks-dev"))
        .current_dir(root())
        .args(["coldstart", "--json", "--runs", "2", "--warm", "3", "--moto"])
        .arg(&moto)
        .arg("--bootstrap")
        .arg(&bootstrap)
        .output()
        .expect("wahooks-dev coldstart runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["runs"], 2, "{v}");
    // 2 processes × (1 first + 3 warm), each a first delivery the table holds.
    assert_eq!(v["stored"], 8, "{v}");
    for figure in ["init", "first_request", "warm_request"] {
        let f = &v[figure];
        let (median, min, max) = (
            f["median_ms"].as_f64().unwrap_or(-1.0),
            f["min_ms"].as_f64().unwrap_or(-1.0),
            f["max_ms"].as_f64().unwrap_or(-1.0),
        );
        assert!(min > 0.0 && min <= median && median <= max, "{figure}: {f}");
    }
    assert!(v["bootstrap_bytes"].as_u64().unwrap_or(0) > 100_000, "{v}");
}

#[test]
fn only_a_receiver_is_measured() {
    let out = Command::new(env!("CARGO_BIN_EXE_wahooks-dev"))
        .current_dir(root())
        .args(["coldstart", "--bootstrap", "Cargo.toml"])
        .output()
        .expect("wahooks-dev coldstart runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Cargo.toml is not a receiver"), "{err}");
}

/// Issue #28: nothing a receiver prints at `trace` holds a secret, a URL token or the role's
/// session token. A receiver bootstrap runs at `RUST_LOG=trace` over signed requests (a
/// hub-signature-256 endpoint, then a bearer one, each with a known secret, URL token and session
/// token) and everything it printed, stdout and stderr, is scanned.
#[test]
fn a_receiver_at_trace_prints_no_secret_url_token_or_session_token() {
    let moto = std::env::var("WAHOOKS_MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join(".venv/bin/moto_server"));
    assert!(moto.exists(), "run `make test`: it installs moto into .venv");
    let bootstrap = bootstrap();
    let logs = tempfile::tempdir().expect("a temporary folder");
    let session_token = "IQoJb3JpZ2luSessionTokenMarker9f2c";
    let endpoints = [
        (
            "hub-signature-256",
            "s3cr3t-marker-hmac-5d1e7a",
            "UrlTokenMarkerHub0123456789abcdef",
        ),
        (
            "bearer",
            "s3cr3t-marker-bearer-8b2c4f",
            "UrlTokenMarkerBearer0123456789abcd",
        ),
    ];
    let mut printed = String::new();
    for (scheme, secret, token) in endpoints {
        let dir = logs.path().join(scheme);
        let out = Command::new(env!("CARGO_BIN_EXE_wahooks-dev"))
            .current_dir(root())
            .args([
                "coldstart",
                "--json",
                "--runs",
                "1",
                "--warm",
                "2",
                "--log-level",
                "trace",
            ])
            .args(["--scheme", scheme, "--secret", secret, "--token", token])
            .args(["--session-token", session_token])
            .arg("--moto")
            .arg(&moto)
            .arg("--bootstrap")
            .arg(&bootstrap)
            .arg("--logs")
            .arg(&dir)
            .output()
            .expect("wahooks-dev coldstart runs");
        assert!(
            out.status.success(),
            "{scheme}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        // Every invocation a 200 that stored its event: the signed requests were authenticated.
        assert_eq!(v["stored"], 3, "{scheme}: {v}");
        let log = std::fs::read_to_string(dir.join("bootstrap-0.log")).expect("the bootstrap's output");
        // Each request counted for its endpoint (EMF `Requests`, dimension `Endpoint`).
        let counted = log
            .lines()
            .filter(|l| l.contains(r#""Requests":1"#) && l.contains(r#""Endpoint":"ep_"#))
            .count();
        assert_eq!(counted, 3, "{scheme}: {log}");
        printed.push_str(&log);
    }
    // The bootstrap really logged below info (its own debug lines and the SDK's, capped at debug).
    let verbose = printed
        .lines()
        .filter(|l| l.contains(r#""level":"DEBUG""#) || l.contains(r#""level":"TRACE""#))
        .count();
    assert!(verbose >= 10, "only {verbose} debug/trace lines:\n{printed}");
    // The hub-signature-256 key is sealed: the receiver opened it through KMS, whose answer
    // (the data key, `Plaintext`) is never printed either.
    assert!(
        printed.contains("kms") || printed.contains("KMS"),
        "the receiver called KMS"
    );
    let mut markers = vec![session_token, "Plaintext"];
    for (_, secret, token) in endpoints {
        markers.extend([secret, token]);
    }
    for marker in markers {
        if let Some(line) = printed.lines().find(|l| l.contains(marker)) {
            let shown: String = line.chars().take(600).collect();
            panic!("{marker} was printed at trace: {shown}");
        }
    }
}
