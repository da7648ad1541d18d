//! `wahooks serve`: the whole system on one machine (what `make run` starts).
//!
//! It starts moto server on 127.0.0.1 (unless `--aws-endpoint` names a running stand-in),
//! creates the tables and queues from the same definitions as `infra/`, creates one demo
//! endpoint per provider, serves every receiver route on one port with the production paths
//! (each HTTP request becomes the API Gateway v2 event the Lambda gets, handled by the same
//! code), runs the stream driver into the fanout handler, and prints the URLs, tokens and a
//! ready-to-paste `curl` per provider. Ctrl-C (or SIGTERM) stops everything it started.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use wahooks::auth::sign;
use wahooks::config::Config;
use wahooks::endpoint::{Auth, Endpoint, Scheme, Secret};
use wahooks::local::LocalStack;
use wahooks::registry::{new_endpoint, new_token};
use wahooks::{Provider, Route};

use crate::front::{serve_http, Server, DEMO_GRAPH_PREFIX, DEMO_META_TOKEN};
use crate::inspector::{Inspector, Recording};
use crate::standin::{local_sdk, port_free, spawn_moto};

/// Arguments of `wahooks serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// The port the receivers listen on (127.0.0.1).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// The port moto server listens on (127.0.0.1).
    #[arg(long, default_value_t = 4566)]
    aws_port: u16,
    /// Use this running AWS stand-in instead of starting moto.
    #[arg(long)]
    aws_endpoint: Option<String>,
    /// The moto server executable.
    #[arg(long, env = "WAHOOKS_MOTO_SERVER", default_value = ".venv/bin/moto_server")]
    moto: PathBuf,
    /// Prefix of the tables and queues (`<prefix>-events`, `<prefix>-messages.fifo`…).
    #[arg(long, default_value = "wahooks")]
    prefix: String,
    /// Where to write `env` (the variables the other commands need) and `demo.json`.
    #[arg(long, default_value = ".wahooks")]
    state_dir: PathBuf,
    /// How many requests the inspector page keeps (the oldest are forgotten).
    #[arg(long, env = "WAHOOKS_INSPECTOR_CAPACITY", default_value_t = 500)]
    inspector_capacity: usize,
}

/// One demo endpoint: what `make run` prints and `demo.json` records.
struct Demo {
    provider: Provider,
    token: String,
    endpoint: Endpoint,
    /// The secret to print (never logged elsewhere).
    secret: Option<String>,
    /// A fixture to send in the printed curl.
    fixture: &'static str,
    route: Route,
}

/// One endpoint per provider, chosen so each printed `curl` works as it is for as long as the
/// stack runs: not `endpoint create`'s defaults. Z-API's takes the URL token alone (the
/// quickstart's first curl needs no header; `create --provider zapi` makes a `zapi-token` one),
/// Hub Message's a bearer token (its HMAC signs a timestamp good for five minutes). Static
/// secrets are stored as digests here too: the curls are signed with the secrets in memory.
fn demo_endpoints() -> anyhow::Result<Vec<Demo>> {
    let mk = |provider, auth: Auth, secret: Option<String>, fixture, route| Demo {
        provider,
        token: new_token(),
        endpoint: new_endpoint(provider, auth),
        secret,
        fixture,
        route,
    };
    let hub_secret = format!("demo-{}", &new_token()[..24]);
    let meta_secret = format!("demo-{}", &new_token()[..24]);
    let waha_secret = format!("demo-{}", &new_token()[..24]);
    Ok(vec![
        mk(
            Provider::Zapi,
            Auth::url_token(),
            None,
            "tests/fixtures/zapi/received-text.zapi-docs.json",
            Route::MessageReceived,
        ),
        mk(
            Provider::Hubmessage,
            Auth::new(Scheme::Bearer, vec![Secret::new(hub_secret.clone())], None)?,
            Some(hub_secret),
            "tests/fixtures/hubmessage/hubmessage-default-text.json",
            Route::Any,
        ),
        mk(
            Provider::Wwa,
            Auth::url_token(),
            None,
            "tests/fixtures/wwa/apiwhatsappweb-received.json",
            Route::MessageReceived,
        ),
        mk(
            Provider::Meta,
            Auth::new(Scheme::HubSignature256, vec![Secret::new(meta_secret.clone())], None)?
                .with_verify_token(Secret::new("demo-verify-token"))?,
            Some(meta_secret),
            "tests/fixtures/meta/meta-cloud-text-message.json",
            Route::Any,
        ),
        // Evolution signs no body; its global webhook sends no headers, so the URL token carries
        // the trust (an instance webhook's default, evolution-jwt, makes tokens that expire).
        mk(
            Provider::Evolution,
            Auth::url_token(),
            None,
            "tests/fixtures/evolution/messages-upsert-text-with-contextinfo.json",
            Route::Any,
        ),
        mk(
            Provider::Waha,
            Auth::new(Scheme::WahaHmac, vec![Secret::new(waha_secret.clone())], None)?,
            Some(waha_secret),
            "tests/fixtures/waha/message-text-group-webjs.json",
            Route::Any,
        ),
    ])
}

async fn start_moto(args: &ServeArgs) -> anyhow::Result<tokio::process::Child> {
    if !port_free(args.aws_port) {
        bail!(
            "port {} is in use (another `make run`?): stop it or pass --aws-port",
            args.aws_port
        );
    }
    std::fs::create_dir_all(&args.state_dir)?;
    spawn_moto(&args.moto, args.aws_port, &args.state_dir.join("moto.log")).await
}

fn write_state(
    dir: &Path,
    endpoint: &str,
    stack: &LocalStack,
    demos: &[Demo],
    base: &str,
    social_topic: &str,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut env = format!(
        "# Written by `wahooks serve`: the configuration of the running local stack.\n\
         export AWS_ENDPOINT_URL={endpoint}\nexport AWS_REGION=us-east-1\n\
         export AWS_ACCESS_KEY_ID=test\nexport AWS_SECRET_ACCESS_KEY=test\n\
         export WAHOOKS_EVENTS_TABLE={}\nexport WAHOOKS_ENDPOINTS_TABLE={}\nexport WAHOOKS_BASE_URL={base}\n",
        stack.config.events_table, stack.config.endpoints_table
    );
    for (name, url) in &stack.config.queues {
        env.push_str(&format!("export {}={url}\n", wahooks::fanout::queue_env_var(name)));
    }
    if let Some(url) = &stack.failures_url {
        env.push_str(&format!("export WAHOOKS_STREAM_FAILURES_URL={url}\n"));
    }
    if let Some(url) = &stack.config.parked_url {
        env.push_str(&format!("export WAHOOKS_PARKED_URL={url}\n"));
    }
    if let Some(key) = &stack.config.secrets_key {
        env.push_str(&format!("export WAHOOKS_SECRETS_KEY={key}\n"));
    }
    if let Some(url) = &stack.config.timers_url {
        env.push_str(&format!("export WAHOOKS_TIMERS_URL={url}\n"));
    }
    if let Some(url) = &stack.config.media.url {
        env.push_str(&format!("export WAHOOKS_MEDIA_URL={url}\n"));
    }
    if let Some(bucket) = &stack.config.body_bucket {
        env.push_str(&format!("export WAHOOKS_BODY_BUCKET={bucket}\n"));
    }
    env.push_str(&format!(
        "export WAHOOKS_SOCIAL_TOPIC_ARN={social_topic}\nexport WAHOOKS_SOCIAL_ACCOUNT={LOCAL_ACCOUNT}\n"
    ));
    write_private(&dir.join("env"), &env)?;
    let demo: Vec<_> = demos
        .iter()
        .map(|d| {
            json!({
                "provider": d.provider.as_str(),
                "endpoint": d.endpoint.id,
                "token": d.token,
                "scheme": d.endpoint.auth.scheme().as_str(),
                "secret": d.secret,
                "url": format!("{base}/v1/hooks/{}", d.token),
            })
        })
        .collect();
    write_private(
        &dir.join("demo.json"),
        &serde_json::to_string_pretty(&json!({ "base_url": base, "aws_endpoint": endpoint, "endpoints": demo }))?,
    )?;
    Ok(())
}

/// Write `contents` to `path`, readable and writable by its owner only (mode 0600 on Unix):
/// `demo.json` holds the demo endpoints' tokens and secrets. A file an older run left is
/// narrowed too.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(contents.as_bytes())
}

fn curl_for(d: &Demo, base: &str) -> String {
    let url = format!("{base}/v1/hooks/{}/{}", d.token, d.route.as_str());
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    if let (Ok(body), Scheme::Bearer | Scheme::HubSignature256 | Scheme::WahaHmac) =
        (std::fs::read(d.fixture), d.endpoint.auth.scheme())
    {
        headers.extend(sign(&d.endpoint.auth, &body, chrono::Utc::now().timestamp()));
    }
    let h: String = headers.iter().map(|(k, v)| format!(" -H '{k}: {v}'")).collect();
    format!("curl -sS -X POST '{url}'{h} --data-binary @{}", d.fixture)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Run the local stack until Ctrl-C.
pub async fn run(args: ServeArgs) -> ExitCode {
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if !port_free(args.port) {
        bail!(
            "port {} is in use (another `make run`?): stop it or pass --port",
            args.port
        );
    }
    let mut moto = None;
    let endpoint = match &args.aws_endpoint {
        Some(e) => e.clone(),
        None => {
            moto = Some(start_moto(&args).await?);
            format!("http://127.0.0.1:{}", args.aws_port)
        }
    };
    let result = serve_with(&args, &endpoint).await;
    if let Some(mut child) = moto {
        let _ = child.kill().await;
        let _ = child.wait().await;
    }
    result
}

async fn serve_with(args: &ServeArgs, endpoint: &str) -> anyhow::Result<()> {
    let (mut stack, demos, social) = provision_demo(args, endpoint).await?;
    let base = format!("http://127.0.0.1:{}", args.port);
    write_state(&args.state_dir, endpoint, &stack, &demos, &base, &social.topic_arn)?;
    // The inspector sees what the fanout publishes through a recording wrapper of its adapter.
    let inspector = Inspector::new(args.inspector_capacity);
    record_fanout(&mut stack, &inspector).await?;
    let listener = TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("listening on 127.0.0.1:{}", args.port))?;
    print_banner(&stack, &demos, &base, endpoint, &args.state_dir);
    println!(
        "End User Messaging Social: topic {} (WABA {DEMO_WABA}, account {LOCAL_ACCOUNT}), e.g.\n    \
         wahooks publish-sns tests/fixtures/meta/meta-cloud-text-message.json   (after `source {}/env`)\n",
        social.topic_arn,
        args.state_dir.display()
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let (driver, queue_driver) = spawn_drivers(&stack, &stop_rx);
    let server = Arc::new(Server {
        receiver: stack.receiver.clone(),
        registry: Arc::new(stack.registry.clone()),
        inspector: Some(inspector),
        log: true,
        base: base.clone(),
    });
    let server = tokio::spawn(serve_http(listener, server, stop_rx.clone()));
    shutdown_signal().await;
    println!("\nstopping: the stream driver, the receivers and moto server");
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), driver).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), queue_driver).await;
    Ok(())
}

/// The local stack on the stand-in at `endpoint`, with one demo endpoint per provider (the
/// Meta demo's media token sealed on it) and End User Messaging Social's stand-in.
async fn provision_demo(args: &ServeArgs, endpoint: &str) -> anyhow::Result<(LocalStack, Vec<Demo>, SocialStandIn)> {
    let sdk = local_sdk(endpoint).await;
    let mut config = Config {
        events_table: format!("{}-events", args.prefix),
        endpoints_table: format!("{}-endpoints", args.prefix),
        queues: Vec::new(),
        ..Config::from_env()
    };
    // Meta's media ids are looked up on this server's stand-in for the Graph API.
    if config.media.graph_url.is_none() {
        config.media.graph_url = Some(format!(
            "http://127.0.0.1:{}{}",
            args.port,
            DEMO_GRAPH_PREFIX.trim_end_matches('/')
        ));
    }
    let stack = LocalStack::provision(sdk, config, &args.prefix)
        .await
        .map_err(|e| anyhow::anyhow!(e).context(format!("provisioning the local stack at {endpoint}")))?;
    let demos = demo_endpoints()?;
    for d in &demos {
        stack
            .registry
            .create(&d.token, &d.endpoint)
            .await
            .map_err(|e| anyhow::anyhow!(e).context("creating the demo endpoints"))?;
    }
    demo_media_token(&stack, &demos)
        .await
        .context("the Meta demo's media token")?;
    let social = social_stand_in(&stack, &args.prefix, &demos)
        .await
        .context("the End User Messaging Social stand-in (SNS topic, source)")?;
    Ok((stack, demos, social))
}

/// The stack's fanout, publishing through a wrapper that shows the inspector every message,
/// with the bucket and the timers as the Lambda has them.
async fn record_fanout(stack: &mut LocalStack, inspector: &Arc<Inspector>) -> anyhow::Result<()> {
    let sqs = wahooks::fanout::SqsPublisher::new(stack.sqs.clone());
    let fanout = wahooks::lambda::fanout_through(
        &stack.config,
        &sqs,
        Arc::new(Recording {
            inner: Arc::new(sqs.clone()),
            inspector: inspector.clone(),
        }),
    )
    .await
    .map_err(|e| anyhow::anyhow!(e).context("the fanout's routing"))?;
    let fanout = wahooks::lambda::with_bucket(fanout, &stack.config, &stack.sdk);
    stack.fanout = wahooks::lambda::with_timers(fanout, &stack.config);
    Ok(())
}

/// The event sources, until `stop`: the stream driver into the fanout, and the `social`,
/// `timers` and `media` queues drained as Lambda polls them (a delayed timer waits in its
/// queue for its time, as in AWS).
fn spawn_drivers(
    stack: &LocalStack,
    stop: &watch::Receiver<bool>,
) -> (tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>) {
    let driver = {
        let stack = stack.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let mut driver = stack.stream_driver();
            driver
                .run(&stack.fanout, Duration::from_millis(200), async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
        })
    };
    let queues = {
        let stack = stack.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = stack.drain_social().await {
                    eprintln!("social queue: {e}");
                }
                if let Err(e) = stack.drain_timers().await {
                    eprintln!("timers queue: {e}");
                }
                if let Err(e) = stack.drain_media().await {
                    eprintln!("media queue: {e}");
                }
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        })
    };
    (driver, queues)
}

/// Seal a media token on the Meta demo endpoint, as `wahooks endpoint media --token` does, so
/// its media ids are looked up (on the demo Graph API) with a bearer.
async fn demo_media_token(stack: &LocalStack, demos: &[Demo]) -> anyhow::Result<()> {
    let Some(meta) = demos.iter().find(|d| d.provider == Provider::Meta) else {
        return Ok(());
    };
    let keyring =
        wahooks::keyring::KmsKeyring::new(aws_sdk_kms::Client::new(&stack.sdk), stack.config.secrets_key.clone());
    let mut endpoint = meta.endpoint.clone();
    endpoint.media.token = Some(wahooks::keyring::seal(&keyring, &endpoint.id, &Secret::new(DEMO_META_TOKEN)).await?);
    stack.registry.update(&endpoint).await?;
    Ok(())
}

/// The account moto runs as (what the local documents' `aws_account_id` names).
const LOCAL_ACCOUNT: &str = "123456789012";

/// The WABA of the Meta demo's fixture: the local source's.
const DEMO_WABA: &str = "102290129340398";

/// The local End User Messaging Social source.
struct SocialStandIn {
    topic_arn: String,
}

/// The topic standing in for a WABA's event destination (`<prefix>-social-events`), subscribed
/// to the social queue as the template subscribes it (raw message delivery), and the source of
/// the Meta demo's WABA, in the Meta demo endpoint's tenant (the two share event ids).
async fn social_stand_in(stack: &LocalStack, prefix: &str, demos: &[Demo]) -> anyhow::Result<SocialStandIn> {
    let sns = aws_sdk_sns::Client::new(&stack.sdk);
    let topic_arn = sns
        .create_topic()
        .name(format!("{prefix}-social-events"))
        .send()
        .await?
        .topic_arn()
        .unwrap_or_default()
        .to_owned();
    let queue = stack.social_url.clone().context("no social queue")?;
    let queue_arn = stack
        .sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn).cloned())
        .context("the social queue's ARN")?;
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await?;
    if let Some(meta) = demos.iter().find(|d| d.provider == Provider::Meta) {
        // The WABA of the Meta demo's fixture (tests/fixtures/meta/meta-cloud-text-message.json).
        let waba = DEMO_WABA.to_owned();
        let source = wahooks::endpoint::Endpoint {
            tenant: meta.endpoint.tenant.clone(),
            source: Some(wahooks::endpoint::SnsSource {
                account: LOCAL_ACCOUNT.into(),
                waba: waba.clone(),
                topic_arn: Some(topic_arn.clone()),
            }),
            ..new_endpoint(Provider::Meta, Auth::url_token())
        };
        match stack
            .registry
            .create(&wahooks::endpoint::SnsSource::token(&waba), &source)
            .await
        {
            // A stand-in that already has it (`--aws-endpoint`, a second run).
            Ok(()) | Err(wahooks::registry::RegistryError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(SocialStandIn { topic_arn })
}

fn print_banner(stack: &LocalStack, demos: &[Demo], base: &str, endpoint: &str, state: &Path) {
    println!("wahooks local stack is up (Ctrl-C stops it)\n");
    println!("  inspector      {base}/  (every request, live: headers, body, auth, events, queues)");
    println!("  receivers      {base}/v1/hooks/{{token}}/{{route}}");
    println!("                 routes: {}", Route::ALL.map(|r| r.as_str()).join(", "));
    println!("  AWS stand-in   {endpoint} (moto server)");
    println!("  events table   {}", stack.config.events_table);
    for (name, url) in &stack.config.queues {
        println!("  queue {name:<9}{url}");
    }
    println!("\nDemo endpoints (recorded in {}/demo.json):", state.display());
    for d in demos {
        let secret = d.secret.as_deref().map(|s| format!(", secret {s}")).unwrap_or_default();
        println!(
            "\n  {} — {} ({}{secret})",
            d.provider,
            d.endpoint.id,
            d.endpoint.auth.scheme().as_str()
        );
        println!("    {base}/v1/hooks/{}/{}", d.token, d.route.as_str());
        println!("    {}", curl_for(d, base));
    }
    println!(
        "\nIn another terminal: `make tail` shows events as they reach the queues; \
         `source {}/env` configures `wahooks send|tail|events|replay` for this stack.\n",
        state.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn state_files_are_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("demo.json");
        std::fs::write(&path, "old").expect("an older file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        write_private(&path, "{}").expect("written");
        let mode = std::fs::metadata(&path).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{}");
    }

    #[test]
    fn demo_fixtures_exist_in_the_repo() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for d in demo_endpoints().expect("demo endpoints") {
            assert!(root.join(d.fixture).exists(), "{}", d.fixture);
        }
    }
}
