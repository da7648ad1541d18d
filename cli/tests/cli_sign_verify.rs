//! `wahooks sign` output verifies with `wahooks verify` for every scheme; forgeries don't.

use std::io::Write;
use std::process::Output;

fn wahooks(args: &[&str]) -> Output {
    crate::wahooks(args, &[], None)
}

/// `body` in a file of its own, removed when the returned path is dropped.
fn body_file(name: &str, body: &[u8]) -> tempfile::TempPath {
    let mut file = tempfile::Builder::new()
        .prefix("wahooks-sign-")
        .suffix(&format!("-{name}"))
        .tempfile()
        .expect("tmp");
    file.write_all(body).expect("write");
    file.into_temp_path()
}

const SCHEMES: &[(&str, &str)] = &[
    ("bearer", "tok-123"),
    ("basic", "user:pass"),
    ("api-key", "key-123"),
    ("custom-header", "value-123"),
    ("zapi-token", "0123456789abcdef01234567"),
    (
        "hubmessage-hmac",
        "a7f3c81e9d2b4605f1a8c3e7b9d40f6218273645a8b9c0d1e2f3041526374859",
    ),
    ("standard-webhooks", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"),
    ("hub-signature-256", "app-secret"),
];

fn scheme_args<'a>(scheme: &'a str, secret: &'a str, now: &'a str) -> Vec<&'a str> {
    let mut a = vec!["--scheme", scheme, "--secret", secret, "--now", now];
    if scheme == "custom-header" {
        a.extend(["--header-name", "X-Custom"]);
    }
    a
}

#[test]
fn sign_output_verifies_for_every_scheme_and_a_flipped_byte_does_not() {
    let body = br#"{"type":"ReceivedCallback","text":{"message":"oi"}}"#;
    let file = body_file("body.json", body);
    let file = file.to_string_lossy();
    for (scheme, secret) in SCHEMES {
        let mut args = vec!["sign"];
        args.extend(scheme_args(scheme, secret, "1789474359"));
        args.push(&file);
        let out = wahooks(&args);
        assert!(
            out.status.success(),
            "{scheme}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let headers = String::from_utf8(out.stdout).expect("utf8");
        assert!(
            !headers.trim().is_empty() && headers.lines().all(|l| l.contains(": ")),
            "{scheme}: {headers}"
        );

        let mut verify = vec!["verify".to_owned()];
        verify.extend(scheme_args(scheme, secret, "1789474400").into_iter().map(str::to_owned));
        for line in headers.lines() {
            verify.extend(["--header".to_owned(), line.to_owned()]);
        }
        let run = |path: &str| {
            let mut v = verify.clone();
            v.push(path.to_owned());
            wahooks(&v.iter().map(String::as_str).collect::<Vec<_>>())
        };
        let ok = run(&file);
        assert_eq!(
            ok.status.code(),
            Some(0),
            "{scheme}: {}",
            String::from_utf8_lossy(&ok.stdout)
        );
        assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "ok");

        if matches!(*scheme, "hubmessage-hmac" | "standard-webhooks" | "hub-signature-256") {
            let mut forged = body.to_vec();
            forged[5] ^= 1;
            let forged_file = body_file(&format!("forged-{scheme}.json"), &forged);
            let bad = run(&forged_file.to_string_lossy());
            assert_eq!(bad.status.code(), Some(1), "{scheme}");
            assert!(
                String::from_utf8_lossy(&bad.stdout).contains("does not match"),
                "{scheme}"
            );
        }
    }
}

#[test]
fn verify_names_a_stale_timestamp() {
    let file = body_file("stale.json", b"{}");
    let file = file.to_string_lossy();
    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let out = wahooks(&[
        "sign",
        "--scheme",
        "standard-webhooks",
        "--secret",
        secret,
        "--now",
        "1000000000",
        &file,
    ]);
    let mut args = vec![
        "verify",
        "--scheme",
        "standard-webhooks",
        "--secret",
        secret,
        "--now",
        "1000000999",
    ];
    let headers = String::from_utf8(out.stdout).expect("utf8");
    for l in headers.lines() {
        args.extend(["--header", l]);
    }
    args.push(&file);
    let out = wahooks(&args);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("999 s old"));
}

#[test]
fn usage_errors_exit_two() {
    let file = body_file("u.json", b"{}");
    let file = file.to_string_lossy();
    for args in [
        vec!["verify", "--scheme", "nope", "--secret", "x", &file],
        vec!["verify", "--scheme", "basic", "--secret", "nocolon", &file],
        vec![
            "verify",
            "--scheme",
            "bearer",
            "--secret",
            "x",
            "--header",
            "no colon here",
            &file,
        ],
        vec!["verify", "--scheme", "bearer", &file],
    ] {
        assert_eq!(wahooks(&args).status.code(), Some(2), "{args:?}");
    }
}
