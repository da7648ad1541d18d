//! `wahooks endpoint …` against a real local DynamoDB (moto), as a user runs it.

use std::process::Output;

use crate::moto;

fn wahooks(moto: &moto::Moto, args: &[&str]) -> Output {
    let env = [
        ("WAHOOKS_ENDPOINTS_TABLE", "endpoints-cli"),
        ("WAHOOKS_BASE_URL", "https://hooks.example.test"),
    ];
    crate::wahooks_on(moto, &env, args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Whether a zapi-token endpoint's auth takes `secret` in its `z-api-token` header.
fn accepts(auth: &wahooks::endpoint::Auth, secret: &str) -> bool {
    let mut headers = http::HeaderMap::new();
    headers.insert("z-api-token", http::HeaderValue::from_str(secret).expect("value"));
    wahooks::auth::authenticate(auth, &headers, b"{}", 0).is_ok()
}

#[tokio::test]
async fn create_list_rotate_remove_and_disable_an_endpoint() {
    let moto = moto::Moto::start();
    let dynamo = moto.dynamo().await;
    wahooks::schema::create_endpoints_table(&dynamo, "endpoints-cli")
        .await
        .expect("table");

    let created = wahooks(
        &moto,
        &["endpoint", "create", "--provider", "zapi", "--scheme", "zapi-token"],
    );
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let out = stdout(&created);
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("endpoint: "))
        .expect("id line")
        .to_owned();
    for route in [
        "message-received",
        "message-sent",
        "message-status",
        "connected",
        "disconnected",
        "presence",
        "any",
    ] {
        assert!(
            out.contains(&format!("/{route}")) && out.contains("https://hooks.example.test/v1/hooks/"),
            "{route}: {out}"
        );
    }
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret (shown once): "))
        .expect("generated secret")
        .to_owned();
    assert_eq!(secret.len(), 64);

    let token = out
        .lines()
        .find(|l| l.contains("/any"))
        .and_then(|l| l.split("/v1/hooks/").nth(1))
        .expect("url");
    let token = token.trim_end_matches("/any").to_owned();
    let registry = wahooks::registry::DynamoRegistry::new(dynamo.clone(), "endpoints-cli");
    let scan = dynamo.scan().table_name("endpoints-cli").send().await.expect("scan");
    let stored = format!("{:?}", scan.items());
    assert!(!stored.contains(&token), "the URL token itself is never stored");
    assert!(!stored.contains(&secret), "nor the zapi-token secret: its digest only");

    let listed = stdout(&wahooks(&moto, &["endpoint", "list"]));
    assert!(listed.contains(&id) && listed.contains("zapi-token"), "{listed}");
    assert!(!listed.contains(&secret), "list never shows secrets");

    let rotated = wahooks(&moto, &["endpoint", "rotate-secret", &id, "--secret", "the-new-secret"]);
    assert!(rotated.status.success());
    use wahooks::registry::EndpointRegistry;
    let e = registry.lookup(&token).await.expect("lookup").expect("exists");
    assert_eq!(e.auth.secret_count(), 2, "old and new both valid");
    assert!(accepts(&e.auth, &secret) && accepts(&e.auth, "the-new-secret"));

    assert!(wahooks(&moto, &["endpoint", "remove-secret", &id]).status.success());
    let e = registry.lookup(&token).await.expect("lookup").expect("exists");
    assert_eq!(e.auth.secret_count(), 1);
    assert!(
        accepts(&e.auth, "the-new-secret") && !accepts(&e.auth, &secret),
        "the oldest (index 0) was removed"
    );
    assert_eq!(
        wahooks(&moto, &["endpoint", "remove-secret", &id]).status.code(),
        Some(1),
        "the last secret stays"
    );

    // A new URL token: both work until the old ones are retired.
    let rotated = wahooks(&moto, &["endpoint", "rotate-token", &id]);
    assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));
    let new_token = stdout(&rotated)
        .lines()
        .find(|l| l.contains("/any"))
        .and_then(|l| l.split("/v1/hooks/").nth(1))
        .map(|t| t.trim_end_matches("/any").to_owned())
        .expect("the new URLs");
    assert_ne!(new_token, token);
    assert!(
        registry.lookup(&token).await.expect("lookup").is_some(),
        "old URL still works"
    );
    let fresh = registry
        .lookup(&new_token)
        .await
        .expect("lookup")
        .expect("new URL works");
    assert_eq!(fresh.id, id);
    assert_eq!(fresh.auth.secret_count(), 1, "the same endpoint, secrets and all");
    let listed = stdout(&wahooks(&moto, &["endpoint", "list"]));
    assert_eq!(listed.matches(id.as_str()).count(), 1, "listed once: {listed}");

    // Disable and enable reach every token.
    assert!(wahooks(&moto, &["endpoint", "disable", &id]).status.success());
    assert!(!registry.lookup(&token).await.expect("lookup").expect("exists").enabled);
    assert!(
        !registry
            .lookup(&new_token)
            .await
            .expect("lookup")
            .expect("exists")
            .enabled
    );
    assert!(wahooks(&moto, &["endpoint", "enable", &id]).status.success());
    assert!(
        registry
            .lookup(&new_token)
            .await
            .expect("lookup")
            .expect("exists")
            .enabled
    );

    let retired = wahooks(&moto, &["endpoint", "retire-tokens", &id]);
    assert!(
        stdout(&retired).contains("1 old URL token removed"),
        "{}",
        stdout(&retired)
    );
    assert!(
        registry.lookup(&token).await.expect("lookup").is_none(),
        "the old URL is gone"
    );
    assert!(registry.lookup(&new_token).await.expect("lookup").is_some());

    assert!(wahooks(&moto, &["endpoint", "delete", &id]).status.success());
    assert!(registry.lookup(&new_token).await.expect("lookup").is_none(), "deleted");
    assert_eq!(wahooks(&moto, &["endpoint", "delete", &id]).status.code(), Some(1));

    assert_eq!(
        wahooks(&moto, &["endpoint", "disable", "ep_nope"]).status.code(),
        Some(1)
    );
}

#[tokio::test]
async fn create_picks_each_providers_verified_scheme_unless_asked() {
    let moto = moto::Moto::start();
    let dynamo = moto.dynamo().await;
    // Without the secrets key a signing scheme's endpoint cannot be stored, and the command
    // says which key to give it.
    wahooks::schema::create_endpoints_table(&dynamo, "endpoints-cli")
        .await
        .expect("table");
    let keyless = wahooks(&moto, &["endpoint", "create", "--provider", "meta"]);
    let err = String::from_utf8_lossy(&keyless.stderr);
    assert_eq!(keyless.status.code(), Some(1), "{err}");
    assert!(
        err.contains("alias/wahooks-secrets") && err.contains("WAHOOKS_SECRETS_KEY"),
        "{err}"
    );
    assert!(
        !stdout(&keyless).contains("secret (shown once)"),
        "no secret handed out for nothing"
    );
    moto.keyring().await;
    dynamo
        .delete_table()
        .table_name("endpoints-cli")
        .send()
        .await
        .expect("reset");
    wahooks::schema::create_endpoints_table(&dynamo, "endpoints-cli")
        .await
        .expect("table");
    for (provider, scheme, generated) in [
        ("meta", "hub-signature-256", 64),
        ("waha", "waha-hmac", 64),
        ("hubmessage", "hubmessage-hmac", 64),
        ("zapi", "zapi-token", 64),
        ("evolution", "evolution-jwt", 64),
        ("wwa", "url-token", 0),
    ] {
        let out = wahooks(&moto, &["endpoint", "create", "--provider", provider]);
        assert!(
            out.status.success(),
            "{provider}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = stdout(&out);
        assert!(text.contains(&format!("scheme: {scheme}")), "{provider}: {text}");
        let secret = text.lines().find_map(|l| l.strip_prefix("secret (shown once): "));
        assert_eq!(secret.map_or(0, str::len), generated, "{provider}: {text}");
        if scheme == "hubmessage-hmac" {
            assert!(
                secret.is_some_and(|s| s.bytes().all(|b| b.is_ascii_hexdigit())),
                "{text}"
            );
        }
    }
    // The URL token alone only when asked for.
    let out = wahooks(
        &moto,
        &["endpoint", "create", "--provider", "zapi", "--scheme", "url-token"],
    );
    assert!(stdout(&out).contains("scheme: url-token"), "{}", stdout(&out));
    let listed = stdout(&wahooks(&moto, &["endpoint", "list"]));
    for scheme in [
        "hub-signature-256",
        "waha-hmac",
        "hubmessage-hmac",
        "zapi-token",
        "evolution-jwt",
        "url-token",
    ] {
        assert!(listed.contains(scheme), "list shows each scheme: {listed}");
    }
    // An End User Messaging Social source: no URL, listed as `sns`, one per WABA, nothing to
    // rotate.
    let sns = wahooks(
        &moto,
        &[
            "endpoint",
            "create-sns",
            "--waba",
            "102290129340398",
            "--account",
            "123456789012",
        ],
    );
    let out = stdout(&sns);
    assert!(sns.status.success(), "{}", String::from_utf8_lossy(&sns.stderr));
    assert!(!out.contains("/v1/hooks/") && out.contains("no URL"), "{out}");
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("endpoint: "))
        .expect("id")
        .to_owned();
    assert!(stdout(&wahooks(&moto, &["endpoint", "list"])).contains("sns"));
    let again = wahooks(
        &moto,
        &[
            "endpoint",
            "create-sns",
            "--waba",
            "102290129340398",
            "--account",
            "123456789012",
        ],
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("already has a source"));
    let rotate = wahooks(&moto, &["endpoint", "rotate-token", &id]);
    assert_eq!(rotate.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&rotate.stderr).contains("no URL to rotate"));
    let bad = wahooks(&moto, &["endpoint", "create-sns", "--waba", "x", "--account", "1"]);
    assert_eq!(bad.status.code(), Some(1), "a WABA id is digits, an account 12 digits");
}

#[tokio::test]
async fn upgrade_rewrites_records_from_before_the_digests_and_counts_them() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let moto = moto::Moto::start();
    let dynamo = moto.dynamo().await;
    wahooks::schema::create_endpoints_table(&dynamo, "endpoints-cli")
        .await
        .expect("table");
    let keyring = moto.keyring().await;
    // Two items (two URL tokens) of one api-key endpoint and one Meta endpoint (its app
    // secret as it is), as an older version stored them, and one already in the current form.
    let legacy = |id: &str, auth: serde_json::Value| {
        serde_json::json!({"id": id, "provider": "zapi", "auth": auth, "enabled": true, "created_at": "2026-01-01T00:00:00Z"})
            .to_string()
    };
    let items = [
        (
            "EP#a1",
            "ep_legacy",
            legacy(
                "ep_legacy",
                serde_json::json!({"scheme": "api-key", "header": "x-api-key", "secrets": ["zz-legacy-key"]}),
            ),
        ),
        (
            "EP#a2",
            "ep_legacy",
            legacy(
                "ep_legacy",
                serde_json::json!({"scheme": "api-key", "header": "x-api-key", "secrets": ["zz-legacy-key"]}),
            ),
        ),
        (
            "EP#b1",
            "ep_meta",
            legacy(
                "ep_meta",
                serde_json::json!({"scheme": "hub-signature256", "secrets": ["zz-legacy-app-secret"], "verify_token": "zz-legacy-verify"}),
            ),
        ),
        (
            "EP#c1",
            "ep_current",
            legacy("ep_current", serde_json::json!({"scheme": "url-token", "secrets": []})),
        ),
    ];
    for (pk, id, json) in &items {
        dynamo
            .put_item()
            .table_name("endpoints-cli")
            .item("pk", AttributeValue::S((*pk).to_owned()))
            .item("endpoint_id", AttributeValue::S((*id).to_owned()))
            .item("endpoint", AttributeValue::S(json.clone()))
            .item("token_added_at", AttributeValue::N("1".into()))
            .send()
            .await
            .expect("put");
    }
    let scan = || async {
        let out = dynamo.scan().table_name("endpoints-cli").send().await.expect("scan");
        format!("{:?}", out.items())
    };
    assert!(scan().await.contains("zz-legacy"));
    let out = wahooks(&moto, &["endpoint", "upgrade"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("2 of 3 endpoints rewritten"), "{}", stdout(&out));
    let stored = scan().await;
    assert!(!stored.contains("zz-legacy"), "no secret left at rest: {stored}");
    assert!(
        stored.contains("secret_digests")
            && stored.contains("verify_token_digest")
            && stored.contains("sealed_secrets"),
        "{stored}"
    );
    let again = wahooks(&moto, &["endpoint", "upgrade"]);
    assert!(
        stdout(&again).contains("0 of 3 endpoints rewritten"),
        "{}",
        stdout(&again)
    );
    // The rewritten endpoint still takes its key, under both URL tokens' items.
    let registry = wahooks::registry::DynamoRegistry::new(dynamo.clone(), "endpoints-cli");
    let (_, e) = registry.find_by_id("ep_legacy").await.expect("found");
    let mut headers = http::HeaderMap::new();
    headers.insert("x-api-key", http::HeaderValue::from_static("zz-legacy-key"));
    assert!(wahooks::auth::authenticate(&e.auth, &headers, b"{}", 0).is_ok());
    // The sealed app secret opens with the receivers' keyring and signs as before.
    let (_, mut meta) = registry.find_by_id("ep_meta").await.expect("found");
    assert_eq!(meta.auth.locked().len(), 1, "read back sealed");
    wahooks::keyring::open_auth(&*keyring, "ep_meta", &mut meta.auth)
        .await
        .expect("opens for its endpoint");
    let app = wahooks::endpoint::Auth::new(
        wahooks::endpoint::Scheme::HubSignature256,
        vec![wahooks::endpoint::Secret::new("zz-legacy-app-secret")],
        None,
    )
    .expect("auth");
    let signed = wahooks::auth::sign(&app, b"{}", 0);
    let mut headers = http::HeaderMap::new();
    for (k, v) in &signed {
        headers.insert(
            http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            http::HeaderValue::from_str(v).expect("value"),
        );
    }
    assert!(wahooks::auth::authenticate(&meta.auth, &headers, b"{}", 0).is_ok());
    // An item that does not validate is named, left alone, and fails the command.
    dynamo
        .put_item()
        .table_name("endpoints-cli")
        .item("pk", AttributeValue::S("EP#bad".into()))
        .item("endpoint_id", AttributeValue::S("ep_bad".into()))
        .item(
            "endpoint",
            AttributeValue::S(legacy(
                "ep_bad",
                serde_json::json!({"scheme": "bearer", "secrets": "zz-not-a-list"}),
            )),
        )
        .item("token_added_at", AttributeValue::N("1".into()))
        .send()
        .await
        .expect("put");
    let bad = wahooks(&moto, &["endpoint", "upgrade"]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{err}");
    assert!(
        err.contains("EP#bad") && !err.contains("zz-not-a-list"),
        "named, its values not quoted: {err}"
    );
    // One damaged record never hides the others from `list`: they are listed, it is named.
    let listed = wahooks(&moto, &["endpoint", "list"]);
    let (out, err) = (stdout(&listed), String::from_utf8_lossy(&listed.stderr).into_owned());
    assert!(listed.status.success(), "{err}");
    assert!(out.contains("ep_legacy") && out.contains("ep_meta"), "{out}");
    assert!(err.contains("EP#bad") && !err.contains("zz-not-a-list"), "{err}");
}

#[tokio::test]
async fn timing_shows_sets_and_refuses_an_endpoints_windows() {
    let moto = moto::Moto::start();
    let dynamo = moto.dynamo().await;
    wahooks::schema::create_endpoints_table(&dynamo, "endpoints-cli")
        .await
        .expect("table");
    let created = wahooks(
        &moto,
        &["endpoint", "create", "--provider", "zapi", "--scheme", "url-token"],
    );
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let id = stdout(&created)
        .lines()
        .find_map(|l| l.strip_prefix("endpoint: "))
        .expect("id line")
        .to_owned();
    let shown = wahooks(&moto, &["endpoint", "timing", &id]);
    assert!(shown.status.success());
    assert!(
        stdout(&shown).contains("a turn after 3000 ms of quiet (default)"),
        "{}",
        stdout(&shown)
    );
    let set = wahooks(
        &moto,
        &[
            "endpoint",
            "timing",
            &id,
            "--turn-window",
            "1500ms",
            "--silence-after",
            "2h",
            "--disconnected-after",
            "off",
        ],
    );
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    let out = stdout(&set);
    assert!(out.contains("a turn after 1500 ms of quiet;"), "{out}");
    assert!(out.contains("silent after 7200 s without traffic"), "{out}");
    assert!(out.contains("no disconnection alarm"), "{out}");
    // What the timers function reads: the version record.
    let registry = wahooks::registry::DynamoRegistry::new(dynamo.clone(), "endpoints-cli");
    let timing = registry.timing_of(&id).await.expect("read");
    assert_eq!(timing.turn_window_ms, Some(1_500));
    assert_eq!(timing.silence_after_s, Some(7_200));
    assert_eq!(timing.disconnected_after_s, Some(0));
    // Past the maximum, or not a window: refused with what is wrong, nothing changed.
    for (flag, value, says) in [
        ("--turn-window", "2m", "at most 60 s"),
        ("--silence-after", "soon", "not a window"),
        ("--silence-after", "30s", "at least 120 s"),
    ] {
        let refused = wahooks(&moto, &["endpoint", "timing", &id, flag, value]);
        assert!(!refused.status.success());
        let err = String::from_utf8_lossy(&refused.stderr).into_owned();
        assert!(err.contains(says), "{err}");
    }
    assert_eq!(registry.timing_of(&id).await.expect("read"), timing);
    let back = wahooks(&moto, &["endpoint", "timing", &id, "--turn-window", "default"]);
    assert!(stdout(&back).contains("(default)"), "{}", stdout(&back));

    // Which media files it archives: all by default, some kinds, none; kept on the version
    // record, which the archiver reads.
    let shown = wahooks(&moto, &["endpoint", "media", &id]);
    assert!(
        stdout(&shown).contains("every media file archived (default)"),
        "{}",
        stdout(&shown)
    );
    let some = wahooks(&moto, &["endpoint", "media", &id, "--kinds", "image,document"]);
    assert!(
        stdout(&some).contains("media archived: image, document"),
        "{}",
        stdout(&some)
    );
    let switch = registry.media_of(&id).await.expect("read");
    assert!(
        switch.archives(wahooks::event::ContentKind::Image) && !switch.archives(wahooks::event::ContentKind::Audio)
    );
    let wrong = wahooks(&moto, &["endpoint", "media", &id, "--kinds", "text"]);
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("not a media kind"));
    let off = wahooks(&moto, &["endpoint", "media", &id, "--off"]);
    assert!(stdout(&off).contains("no media archived"));
    assert!(!registry
        .media_of(&id)
        .await
        .expect("read")
        .archives(wahooks::event::ContentKind::Image));
    assert_eq!(
        registry.timing_of(&id).await.expect("read").turn_window_ms,
        None,
        "the windows kept"
    );

    // A media token: sealed under the secrets key, never printed or stored in clear.
    let keyless = wahooks(&moto, &["endpoint", "media", &id, "--token", "zz-media-token"]);
    assert!(!keyless.status.success(), "no secrets key: refused");
    assert!(String::from_utf8_lossy(&keyless.stderr).contains("sealing the token"));
    moto.keyring().await;
    let sealed = wahooks(&moto, &["endpoint", "media", &id, "--all", "--token", "zz-media-token"]);
    assert!(sealed.status.success(), "{}", String::from_utf8_lossy(&sealed.stderr));
    assert!(stdout(&sealed).contains("a token (sealed)"), "{}", stdout(&sealed));
    assert!(!stdout(&sealed).contains("zz-media-token"));
    let stored = format!(
        "{:?}",
        dynamo
            .scan()
            .table_name("endpoints-cli")
            .send()
            .await
            .expect("scan")
            .items()
    );
    assert!(!stored.contains("zz-media-token"), "never stored in clear");
    let switch = registry.media_of(&id).await.expect("read");
    let token = switch.token.expect("kept, sealed");
    let kms = wahooks::keyring::KmsKeyring::new(aws_sdk_kms::Client::new(&moto.sdk().await), None);
    let opened = wahooks::keyring::open(&kms, &id, &token)
        .await
        .expect("opens for this endpoint");
    assert_eq!(opened.expose(), "zz-media-token");
    assert!(
        wahooks::keyring::open(&kms, "ep_other", &token).await.is_err(),
        "and for no other"
    );
    let removed = wahooks(&moto, &["endpoint", "media", &id, "--remove-token"]);
    assert!(stdout(&removed).contains("no token"));
    assert!(registry.media_of(&id).await.expect("read").token.is_none());
}
