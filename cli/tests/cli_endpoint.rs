//! `wahooks endpoint …` against a real local DynamoDB (moto), as a user runs it.

#[path = "../../tests/common/moto.rs"]
mod moto;

use std::process::{Command, Output};

fn wahooks(moto: &moto::Moto, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wahooks"))
        .args(args)
        .env("AWS_ENDPOINT_URL", moto.url())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("WAHOOKS_ENDPOINTS_TABLE", "endpoints-cli")
        .env("WAHOOKS_BASE_URL", "https://hooks.example.test")
        .output()
        .expect("wahooks runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
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

    let listed = stdout(&wahooks(&moto, &["endpoint", "list"]));
    assert!(listed.contains(&id) && listed.contains("zapi-token"), "{listed}");
    assert!(!listed.contains(&secret), "list never shows secrets");

    let rotated = wahooks(&moto, &["endpoint", "rotate-secret", &id, "--secret", "the-new-secret"]);
    assert!(rotated.status.success());
    use wahooks::registry::EndpointRegistry;
    let e = registry.lookup(&token).await.expect("lookup").expect("exists");
    assert_eq!(e.auth.secrets().len(), 2, "old and new both valid");

    assert!(wahooks(&moto, &["endpoint", "remove-secret", &id]).status.success());
    let e = registry.lookup(&token).await.expect("lookup").expect("exists");
    assert_eq!(
        e.auth.secrets().iter().map(|s| s.expose()).collect::<Vec<_>>(),
        ["the-new-secret"]
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
    assert_eq!(fresh.auth.secrets().len(), 1, "the same endpoint, secrets and all");
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
