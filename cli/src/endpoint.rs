//! `wahooks endpoint …`: create, list, disable, rotate and remove secrets of endpoints in the
//! endpoints table (real AWS, or the local stand-in with `AWS_ENDPOINT_URL`).

use std::process::ExitCode;

use base64::Engine;
use rand::RngCore;
use wahooks::config::{aws_config, Config};
use wahooks::endpoint::{Auth, Scheme, Secret, Timing};
use wahooks::registry::{new_endpoint, new_token, DynamoRegistry};
use wahooks::{Provider, Route};

/// `wahooks endpoint` subcommands.
#[derive(clap::Subcommand)]
pub enum EndpointCommand {
    /// Create an endpoint and print its webhook URLs (and a generated secret, once).
    Create {
        /// zapi, hubmessage, wwa, meta, evolution or waha.
        #[arg(long)]
        provider: Provider,
        /// url-token, bearer, basic, api-key, custom-header, zapi-token, hubmessage-hmac,
        /// standard-webhooks, hub-signature-256, waha-hmac or evolution-jwt. Default: the
        /// provider's verified scheme (meta hub-signature-256, waha waha-hmac, hubmessage
        /// hubmessage-hmac, zapi zapi-token, evolution evolution-jwt, wwa url-token); the URL
        /// token alone only when asked for.
        #[arg(long)]
        scheme: Option<String>,
        /// The secret; generated and printed once when absent.
        #[arg(long)]
        secret: Option<String>,
        /// The header of api-key (default x-api-key) and custom-header.
        #[arg(long)]
        header_name: Option<String>,
        /// Meta's verify token (hub-signature-256); generated when absent.
        #[arg(long)]
        verify_token: Option<String>,
        /// The API's base URL to print the webhook URLs with.
        #[arg(long, env = "WAHOOKS_BASE_URL", default_value = "http://127.0.0.1:3000")]
        base_url: String,
        /// An instance the endpoint receives for (repeatable): bound to its tenant now, so no
        /// other tenant can take it first. Unbound instances are bound on their first delivery.
        #[arg(long = "instance")]
        instances: Vec<String>,
        /// Join this tenant (`tn_…`, e.g. the one of Evolution's other webhook or Z-API's
        /// other per-event URLs) instead of a tenant of its own.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Create the source of one WhatsApp Business Account's AWS End User Messaging Social
    /// events (its SNS topic's queue, the `social` function): Meta's events, in a tenant, with
    /// no URL and no secret (AWS authenticates them; each is checked against this account).
    CreateSns {
        /// The Meta WhatsApp Business Account id (`context.MetaWabaIds[].wabaId`).
        #[arg(long)]
        waba: String,
        /// The AWS account id the WABA is in (each message's `aws_account_id`).
        #[arg(long)]
        account: String,
        /// The SNS topic's ARN, checked when the subscription is not raw (the envelope names it).
        #[arg(long)]
        topic_arn: Option<String>,
        /// A phone number id the WABA receives for (repeatable), bound to the tenant now.
        #[arg(long = "instance")]
        instances: Vec<String>,
        /// Join this tenant (`tn_…`: the one of the Meta webhook endpoint of the same numbers,
        /// so both sources share event ids) instead of a tenant of its own.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// List endpoints (never their secrets).
    List,
    /// The instances an endpoint's tenant owns.
    Instances {
        /// The endpoint id.
        id: String,
    },
    /// Bind an instance to an endpoint's tenant (refused when another tenant owns it).
    Bind {
        /// The endpoint id.
        id: String,
        /// The instance (Z-API instanceId, Meta phone number id, Evolution instance, WAHA session…).
        instance: String,
    },
    /// Release an instance from an endpoint's tenant (its next delivery binds it again).
    Unbind {
        /// The endpoint id.
        id: String,
        /// The instance.
        instance: String,
    },
    /// Disable an endpoint: its URLs answer 404.
    Disable {
        /// The endpoint id (`ep_…`).
        id: String,
    },
    /// Enable a disabled endpoint again.
    Enable {
        /// The endpoint id.
        id: String,
    },
    /// Delete an endpoint under all its URL tokens (no prompt; its events stay stored).
    Delete {
        /// The endpoint id.
        id: String,
    },
    /// Give an endpoint a new URL token and print its URLs; the old URLs keep working until
    /// `retire-tokens` (re-point the provider in between).
    RotateToken {
        /// The endpoint id.
        id: String,
        /// The API's base URL to print the webhook URLs with.
        #[arg(long, env = "WAHOOKS_BASE_URL", default_value = "http://127.0.0.1:3000")]
        base_url: String,
    },
    /// Show or set an endpoint's windows: conversation turns, silent and disconnected instances
    /// (docs/events.md, "Turns" and "Silence"). Without options: show them.
    Timing {
        /// The endpoint id.
        id: String,
        /// How long a chat stays quiet before its inbound messages make one turn: `3s`,
        /// `1500ms`, `off`, or `default` (3 s); at most 60 s.
        #[arg(long)]
        turn_window: Option<String>,
        /// How long an instance may receive nothing before it is silent: `2h`, `45m`, `off`, or
        /// `auto` (derived from its own traffic: the default).
        #[arg(long)]
        silence_after: Option<String>,
        /// How long an instance may stay disconnected before the alarm: `15m` (the default),
        /// `off`, or `default`.
        #[arg(long)]
        disconnected_after: Option<String>,
    },
    /// Show or set which media files of an endpoint are archived to S3 (docs/events.md,
    /// "Media"): all (the default), some kinds, or none. Without options: show it.
    Media {
        /// The endpoint id.
        id: String,
        /// Archive none.
        #[arg(long, conflicts_with_all = ["all", "kinds"])]
        off: bool,
        /// Archive every kind (the default).
        #[arg(long, conflicts_with = "kinds")]
        all: bool,
        /// Archive only these kinds: image, audio, video, ptv, document, sticker (comma-separated).
        #[arg(long, value_delimiter = ',')]
        kinds: Vec<String>,
        /// The token the archiver fetches this endpoint's files with: Meta's access token (a
        /// bearer for the Graph API and its CDN), WAHA's API key (`X-Api-Key`). Stored sealed
        /// under the secrets key, never printed.
        #[arg(long, conflicts_with = "remove_token")]
        token: Option<String>,
        /// Forget the token.
        #[arg(long)]
        remove_token: bool,
    },
    /// Remove every URL token of an endpoint but the newest (after a rotate-token).
    RetireTokens {
        /// The endpoint id.
        id: String,
    },
    /// Add a secret; the old and the new are both valid until the old one is removed.
    RotateSecret {
        /// The endpoint id.
        id: String,
        /// The new secret; generated and printed once when absent.
        #[arg(long)]
        secret: Option<String>,
    },
    /// Remove a secret (default: the oldest). The last secret cannot be removed.
    RemoveSecret {
        /// The endpoint id.
        id: String,
        /// Which secret, 0 = oldest.
        #[arg(long, default_value_t = 0)]
        index: usize,
    },
    /// Rewrite every stored endpoint in the current form (a static scheme's secrets and Meta's
    /// verify token as SHA-256 digests only) and say how many changed; running it again
    /// changes nothing.
    Upgrade,
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::thread_rng().fill_bytes(&mut b);
    b
}

/// A new secret of the form the scheme expects.
fn generate_secret(scheme: Scheme) -> String {
    match scheme {
        Scheme::Basic => format!("wahooks:{}", hex::encode(random_bytes::<16>())),
        Scheme::StandardWebhooks => {
            format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(random_bytes::<32>())
            )
        }
        _ => hex::encode(random_bytes::<32>()),
    }
}

/// Run a subcommand.
pub async fn run(command: EndpointCommand) -> ExitCode {
    match execute(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn registry() -> DynamoRegistry {
    let config = Config::from_env();
    registry_for(&config, &aws_config().await)
}

/// The endpoints table, sealing signing secrets under `WAHOOKS_SECRETS_KEY` (default
/// `alias/wahooks-secrets`: the stack `wahooks`'s, and `make run`'s). Sealing needs
/// `kms:GenerateDataKey` only; no command opens a sealed secret.
fn registry_for(config: &Config, sdk: &aws_config::SdkConfig) -> DynamoRegistry {
    DynamoRegistry::new(aws_sdk_dynamodb::Client::new(sdk), config.endpoints_table.clone())
        .with_keyring(std::sync::Arc::new(keyring_for(config, sdk)))
}

/// The keyring sealing under `WAHOOKS_SECRETS_KEY` (default `alias/wahooks-secrets`).
fn keyring_for(config: &Config, sdk: &aws_config::SdkConfig) -> wahooks::keyring::KmsKeyring {
    let key = config
        .secrets_key
        .clone()
        .unwrap_or_else(|| wahooks::schema::local_secrets_alias("wahooks"));
    wahooks::keyring::KmsKeyring::new(aws_sdk_kms::Client::new(sdk), Some(key))
}

/// One arm per subcommand, each a call to its function.
async fn execute(command: EndpointCommand) -> anyhow::Result<()> {
    match command {
        EndpointCommand::Create {
            provider,
            scheme,
            secret,
            header_name,
            verify_token,
            base_url,
            instances,
            tenant,
        } => {
            let endpoint = create(
                provider,
                scheme.as_deref(),
                secret,
                header_name.as_deref(),
                verify_token,
                &base_url,
                tenant,
            )
            .await?;
            for instance in instances {
                bind(&endpoint.id, &instance).await?;
            }
            Ok(())
        }
        EndpointCommand::CreateSns {
            waba,
            account,
            topic_arn,
            instances,
            tenant,
        } => {
            let endpoint = create_sns(waba, account, topic_arn, tenant).await?;
            for instance in instances {
                bind(&endpoint.id, &instance).await?;
            }
            Ok(())
        }
        EndpointCommand::List => list().await,
        EndpointCommand::Instances { id } => instances(&id).await,
        EndpointCommand::Bind { id, instance } => bind(&id, &instance).await,
        EndpointCommand::Unbind { id, instance } => unbind(&id, &instance).await,
        EndpointCommand::Disable { id } => set_enabled(&id, false).await,
        EndpointCommand::Enable { id } => set_enabled(&id, true).await,
        EndpointCommand::Delete { id } => delete(&id).await,
        EndpointCommand::RotateToken { id, base_url } => rotate_token(&id, &base_url).await,
        EndpointCommand::RetireTokens { id } => retire_tokens(&id).await,
        EndpointCommand::Media {
            id,
            off,
            all,
            kinds,
            token,
            remove_token,
        } => {
            media(
                &id,
                MediaChange {
                    off,
                    all,
                    kinds,
                    token,
                    remove_token,
                },
            )
            .await
        }
        EndpointCommand::Timing {
            id,
            turn_window,
            silence_after,
            disconnected_after,
        } => timing(&id, turn_window, silence_after, disconnected_after).await,
        EndpointCommand::RotateSecret { id, secret } => rotate_secret(&id, secret).await,
        EndpointCommand::RemoveSecret { id, index } => remove_secret(&id, index).await,
        EndpointCommand::Upgrade => upgrade().await,
    }
}

/// `create`: the endpoint, its URLs, and what was generated (shown once).
async fn create(
    provider: Provider,
    scheme: Option<&str>,
    secret: Option<String>,
    header_name: Option<&str>,
    verify_token: Option<String>,
    base_url: &str,
    tenant: Option<String>,
) -> anyhow::Result<wahooks::endpoint::Endpoint> {
    let scheme: Scheme = match scheme {
        Some(s) => s.parse()?,
        None => Scheme::verified_default(provider),
    };
    let generated = secret.is_none() && scheme.needs_secret();
    let secrets = match (scheme.needs_secret(), secret) {
        (false, _) => Vec::new(),
        (true, Some(s)) => vec![s],
        (true, None) => vec![generate_secret(scheme)],
    };
    let mut auth = Auth::new(scheme, secrets.iter().map(Secret::new).collect(), header_name)?;
    let mut printed_verify = None;
    if scheme == Scheme::HubSignature256 {
        let token = verify_token.unwrap_or_else(|| hex::encode(random_bytes::<16>()));
        auth = auth.with_verify_token(Secret::new(token.clone()))?;
        printed_verify = Some(token);
    }
    let token = new_token();
    let mut endpoint = new_endpoint(provider, auth);
    if let Some(tenant) = tenant {
        anyhow::ensure!(
            tenant.starts_with("tn_") || tenant.is_empty(),
            "a tenant id is `tn_…` (see `wahooks endpoint list`), or \"\" for the default tenant"
        );
        endpoint.tenant = Some(tenant).filter(|t| !t.is_empty());
    }
    registry().await.create(&token, &endpoint).await?;
    println!("endpoint: {}", endpoint.id);
    println!(
        "provider: {provider}  scheme: {scheme}  tenant: {}",
        tenant_name(&endpoint)
    );
    print_urls(base_url, &token);
    if generated {
        println!("secret (shown once): {}", secrets[0]);
        if let Some(whose) = provider_made_secret(scheme) {
            println!(
                "note: {whose} makes this secret: give it with --secret, or add it with `wahooks endpoint rotate-secret {} --secret …` and drop this placeholder with `remove-secret {} --index 0`",
                endpoint.id, endpoint.id
            );
        }
    }
    if let Some(v) = printed_verify {
        println!("verify token (Meta's \"Verify token\" field): {v}");
    }
    Ok(endpoint)
}

/// A tenant as printed: its id, or `default` for endpoints stored before tenants.
fn tenant_name(e: &wahooks::endpoint::Endpoint) -> &str {
    e.tenant.as_deref().unwrap_or("default")
}

/// `instances`: what the endpoint's tenant owns.
async fn instances(id: &str) -> anyhow::Result<()> {
    let registry = registry().await;
    let (_, e) = registry.find_by_id(id).await?;
    let owned = registry.instances_of(e.tenant_id()).await?;
    println!("tenant {}: {} instance(s)", tenant_name(&e), owned.len());
    for (provider, instance) in owned {
        println!("  {provider:<11} {instance}");
    }
    Ok(())
}

/// `create-sns`: an End User Messaging Social source, stored under its WABA's key.
async fn create_sns(
    waba: String,
    account: String,
    topic_arn: Option<String>,
    tenant: Option<String>,
) -> anyhow::Result<wahooks::endpoint::Endpoint> {
    anyhow::ensure!(
        !waba.is_empty() && waba.bytes().all(|b| b.is_ascii_digit()),
        "--waba is Meta's WhatsApp Business Account id (digits)"
    );
    anyhow::ensure!(
        account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()),
        "--account is the 12-digit AWS account id"
    );
    let mut endpoint = new_endpoint(Provider::Meta, Auth::url_token());
    if let Some(tenant) = tenant {
        anyhow::ensure!(
            tenant.starts_with("tn_") || tenant.is_empty(),
            "a tenant id is `tn_…` (see `wahooks endpoint list`), or \"\" for the default tenant"
        );
        endpoint.tenant = Some(tenant).filter(|t| !t.is_empty());
    }
    endpoint.source = Some(wahooks::endpoint::SnsSource {
        account,
        waba: waba.clone(),
        topic_arn,
    });
    registry()
        .await
        .create(&wahooks::endpoint::SnsSource::token(&waba), &endpoint)
        .await
        .map_err(|e| match e {
            wahooks::registry::RegistryError::Conflict(_) => {
                anyhow::anyhow!("WABA {waba} already has a source (`wahooks endpoint list`)")
            }
            e => e.into(),
        })?;
    println!("endpoint: {}", endpoint.id);
    println!(
        "provider: meta  source: End User Messaging Social (SNS), WABA {waba}  tenant: {}",
        tenant_name(&endpoint)
    );
    println!("no URL: the `social` function takes this WABA's events from the SNS topic's queue");
    Ok(endpoint)
}

/// `bind`: the instance is the endpoint's tenant's, unless another tenant owns it.
async fn bind(id: &str, instance: &str) -> anyhow::Result<()> {
    let registry = registry().await;
    let (_, e) = registry.find_by_id(id).await?;
    match registry.bind(e.provider, instance, e.tenant_id(), &e.id).await? {
        wahooks::registry::Claim::Owned => {
            println!(
                "{} instance `{instance}` belongs to tenant {}",
                e.provider,
                tenant_name(&e)
            );
            Ok(())
        }
        wahooks::registry::Claim::Foreign(_) => anyhow::bail!(
            "{} instance `{instance}` belongs to another tenant; unbind it there first",
            e.provider
        ),
    }
}

/// `unbind`: release the instance (when this endpoint's tenant owns it).
async fn unbind(id: &str, instance: &str) -> anyhow::Result<()> {
    let registry = registry().await;
    let (_, e) = registry.find_by_id(id).await?;
    if registry.unbind(e.provider, instance, e.tenant_id()).await? {
        println!(
            "{} instance `{instance}` released by tenant {}",
            e.provider,
            tenant_name(&e)
        );
        Ok(())
    } else {
        anyhow::bail!(
            "tenant {} does not own {} instance `{instance}`",
            tenant_name(&e),
            e.provider
        )
    }
}

/// The URL of every route under a token, which is shown only this once.
fn print_urls(base_url: &str, token: &str) {
    println!("webhook URLs (the token in them is shown only now; keep it secret):");
    let base = base_url.trim_end_matches('/');
    for route in Route::ALL {
        println!("  {:<17} {base}/v1/hooks/{token}/{}", route.as_str(), route.as_str());
    }
}

/// `list`: every endpoint, never a secret.
async fn list() -> anyhow::Result<()> {
    println!(
        "{:<20} {:<20} {:<11} {:<18} {:<8} {:<8} {:<7} created",
        "id", "tenant", "provider", "scheme", "enabled", "secrets", "tokens"
    );
    let registry = registry().await;
    for (e, tokens) in registry.list_endpoints().await? {
        println!(
            "{:<20} {:<20} {:<11} {:<18} {:<8} {:<8} {:<7} {}",
            e.id,
            tenant_name(&e),
            e.provider,
            match &e.source {
                Some(_) => "sns".to_owned(),
                None => e.auth.scheme().to_string(),
            },
            e.enabled,
            e.auth.secret_count(),
            tokens,
            e.created_at
        );
    }
    for key in registry.unreadable().await? {
        eprintln!(
            "{key}: does not validate (its URLs answer 503): `wahooks endpoint upgrade` names why; fix or delete it"
        );
    }
    Ok(())
}

/// `enable` / `disable`.
async fn set_enabled(id: &str, enabled: bool) -> anyhow::Result<()> {
    let registry = registry().await;
    let (mut e, version) = registry.find_versioned(id).await?;
    e.enabled = enabled;
    registry.update_if(&e, version).await?;
    println!("{id} {}", if enabled { "enabled" } else { "disabled" });
    Ok(())
}

/// What `wahooks endpoint media` changes.
struct MediaChange {
    off: bool,
    all: bool,
    kinds: Vec<String>,
    token: Option<String>,
    remove_token: bool,
}

/// `media`: show which media files an endpoint archives, or set it.
async fn media(id: &str, change: MediaChange) -> anyhow::Result<()> {
    use wahooks::event::ContentKind;
    let MediaChange {
        off,
        all,
        kinds,
        token,
        remove_token,
    } = change;
    let config = Config::from_env();
    let sdk = aws_config().await;
    let registry = registry_for(&config, &sdk);
    let (mut e, version) = registry.find_versioned(id).await?;
    let mut changed = false;
    if let Some(token) = token {
        let keyring = keyring_for(&config, &sdk);
        let sealed = wahooks::keyring::seal(&keyring, id, &Secret::new(token))
            .await
            .map_err(|err| anyhow::anyhow!(err).context("sealing the token (WAHOOKS_SECRETS_KEY)"))?;
        e.media.token = Some(sealed);
        changed = true;
    }
    if remove_token {
        e.media.token = None;
        changed = true;
    }
    if off || all || !kinds.is_empty() {
        let mut parsed = Vec::new();
        for k in &kinds {
            let kind: ContentKind = serde_json::from_value(serde_json::Value::String(k.trim().to_owned()))
                .ok()
                .filter(|k| wahooks::media::MEDIA_KINDS.contains(k))
                .ok_or_else(|| {
                    anyhow::anyhow!("`{k}` is not a media kind (image, audio, video, ptv, document, sticker)")
                })?;
            parsed.push(kind);
        }
        e.media.off = off;
        e.media.kinds = parsed;
        changed = true;
    }
    if changed {
        registry.update_if(&e, version).await?;
    }
    let what = if e.media.off {
        "no media archived".to_owned()
    } else if e.media.kinds.is_empty() {
        "every media file archived (default)".to_owned()
    } else {
        let names: Vec<&str> = e.media.kinds.iter().map(|k| k.as_str()).collect();
        format!("media archived: {}", names.join(", "))
    };
    let token = if e.media.token.is_some() {
        "a token (sealed)"
    } else {
        "no token"
    };
    println!("{id}: {what}; {token}");
    Ok(())
}

/// `timing`: show an endpoint's windows, or set some and show them all.
async fn timing(
    id: &str,
    turn_window: Option<String>,
    silence_after: Option<String>,
    disconnected_after: Option<String>,
) -> anyhow::Result<()> {
    let registry = registry().await;
    let (mut e, version) = registry.find_versioned(id).await?;
    let ms = |v: &str| parse_window(v, &["default"]);
    if let Some(v) = turn_window {
        e.timing.turn_window_ms = ms(&v)?
            .map(Timing::check_turn_window)
            .transpose()
            .map_err(anyhow::Error::msg)?;
    }
    if let Some(v) = silence_after {
        e.timing.silence_after_s = parse_window(&v, &["auto", "default"])?
            .map(|ms| Timing::check_silence_after(ms.div_ceil(1000)))
            .transpose()
            .map_err(anyhow::Error::msg)?;
    }
    if let Some(v) = disconnected_after {
        e.timing.disconnected_after_s = ms(&v)?.map(|ms| ms.div_ceil(1000));
    }
    registry.update_if(&e, version).await?;
    println!("{id}: {}", describe_timing(&e.timing));
    Ok(())
}

/// A window as a person writes it (`3s`, `1500ms`, `45m`, `2h`, `1d`, `off`) in ms; `None` for
/// one of the `default` words.
fn parse_window(text: &str, default: &[&str]) -> anyhow::Result<Option<u64>> {
    let t = text.trim().to_ascii_lowercase();
    if default.contains(&t.as_str()) {
        return Ok(None);
    }
    if t == "off" || t == "0" {
        return Ok(Some(0));
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| anyhow::anyhow!("`{text}` is not a window (e.g. 3s, 1500ms, 45m, 2h, off)"))?;
    let factor = match unit {
        "ms" => 1,
        "s" | "" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => anyhow::bail!("`{text}`: the unit is ms, s, m, h or d"),
    };
    Ok(Some(n.saturating_mul(factor)))
}

/// An endpoint's windows in words.
fn describe_timing(t: &Timing) -> String {
    let default = |set: bool| if set { "" } else { " (default)" };
    let turns = match t.turn_window_ms() {
        Some(ms) => format!("a turn after {ms} ms of quiet{}", default(t.turn_window_ms.is_some())),
        None => "no turns".to_owned(),
    };
    let silence = match t.silence() {
        wahooks::endpoint::SilenceWindow::Off => "never silent".to_owned(),
        wahooks::endpoint::SilenceWindow::Derived => {
            "silent after a window derived from its traffic (default)".to_owned()
        }
        wahooks::endpoint::SilenceWindow::Fixed(s) => format!("silent after {s} s without traffic"),
    };
    let disconnected = match t.disconnected_after_s() {
        Some(s) => format!(
            "the disconnection alarm after {s} s{}",
            default(t.disconnected_after_s.is_some())
        ),
        None => "no disconnection alarm".to_owned(),
    };
    format!("{turns}; {silence}; {disconnected}")
}

/// `delete`: the endpoint under every token; its events stay.
async fn delete(id: &str) -> anyhow::Result<()> {
    let n = registry().await.delete(id).await?;
    println!(
        "{id} deleted ({n} URL token{}); its stored events are kept",
        if n == 1 { "" } else { "s" }
    );
    Ok(())
}

/// `rotate-token`: one more token (and its URLs); the old ones work until retired.
async fn rotate_token(id: &str, base_url: &str) -> anyhow::Result<()> {
    let registry = registry().await;
    let (_, endpoint) = registry.find_by_id(id).await?;
    anyhow::ensure!(
        endpoint.source.is_none(),
        "{id} is an End User Messaging Social source: it has no URL to rotate"
    );
    let token = new_token();
    registry.add_token(id, &token).await?;
    println!("{id}: a new URL token (the old URLs keep working until `wahooks endpoint retire-tokens {id}`)");
    print_urls(base_url, &token);
    Ok(())
}

/// `retire-tokens`: every token but the newest.
async fn retire_tokens(id: &str) -> anyhow::Result<()> {
    let n = registry().await.retire_tokens(id).await?;
    println!(
        "{id}: {n} old URL token{} removed; only the newest works now",
        if n == 1 { "" } else { "s" }
    );
    Ok(())
}

/// `rotate-secret`: one more accepted secret (generated and shown once when not given).
async fn rotate_secret(id: &str, secret: Option<String>) -> anyhow::Result<()> {
    let registry = registry().await;
    let (mut e, version) = registry.find_versioned(id).await?;
    let generated = secret.is_none();
    let new = secret.unwrap_or_else(|| generate_secret(e.auth.scheme()));
    e.auth.add_secret(Secret::new(new.clone()))?;
    registry.update_if(&e, version).await?;
    println!(
        "{id}: {} secrets accepted; remove the old one with `wahooks endpoint remove-secret {id}`",
        e.auth.secret_count()
    );
    if generated {
        println!("new secret (shown once): {new}");
    }
    Ok(())
}

/// `remove-secret`: secret `index` (never the last one).
async fn remove_secret(id: &str, index: usize) -> anyhow::Result<()> {
    let registry = registry().await;
    let (mut e, version) = registry.find_versioned(id).await?;
    e.auth
        .remove_secret(index)
        .map_err(|_| anyhow::anyhow!("{id}: no secret #{index} to remove, or it is the last one"))?;
    registry.update_if(&e, version).await?;
    println!("{id}: secret #{index} removed; {} left", e.auth.secret_count());
    Ok(())
}

/// Whose secret a scheme checks when the provider, not you, makes it (a generated one is then a
/// placeholder until the provider's is added).
fn provider_made_secret(scheme: Scheme) -> Option<&'static str> {
    match scheme {
        Scheme::ZapiToken => Some("Z-API (the instance token)"),
        Scheme::HubmessageHmac => Some("Hub Message (each webhook's signing secret)"),
        Scheme::HubSignature256 => Some("Meta (the app secret)"),
        _ => None,
    }
}

/// `upgrade`: every endpoint item read and, when its stored form is not the current one (a
/// static scheme's plain `secrets`, a signing scheme's unsealed ones, a plain `verify_token`),
/// written back through the
/// registry's update (under every URL token of the endpoint). An item that does not read is
/// named and left as it is (its URLs answer 503 until it is fixed or deleted).
async fn upgrade() -> anyhow::Result<()> {
    let config = Config::from_env();
    let sdk = aws_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let registry = registry_for(&config, &sdk);
    let mut stale: std::collections::BTreeMap<String, wahooks::endpoint::Endpoint> = Default::default();
    let mut endpoints = std::collections::BTreeSet::new();
    let mut unreadable = 0usize;
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(&config.endpoints_table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await?;
        for item in page.items() {
            // Endpoint items only (`EP#…`; the table also holds other kinds).
            let Some(pk) = item
                .get("pk")
                .and_then(|v| v.as_s().ok())
                .filter(|pk| pk.starts_with(wahooks::store::keys::ENDPOINT_PREFIX))
            else {
                continue;
            };
            match stored_endpoint(item) {
                Ok((raw, endpoint)) => {
                    endpoints.insert(endpoint.id.clone());
                    // A signing key stored as it is cannot even be written back as it is: it
                    // is sealed by the update.
                    let stale_form = !endpoint.auth.unsealed().is_empty()
                        || serde_json::to_value(&endpoint).ok().as_ref() != Some(&raw);
                    if stale_form {
                        stale.insert(endpoint.id.clone(), endpoint);
                    }
                }
                Err(why) => {
                    unreadable += 1;
                    eprintln!("{pk}: does not validate ({why}); left as it is");
                }
            }
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    for endpoint in stale.values() {
        registry.update(endpoint).await?;
        println!("{}: rewritten", endpoint.id);
    }
    println!(
        "{} of {} endpoint{} rewritten in the current form",
        stale.len(),
        endpoints.len(),
        if endpoints.len() == 1 { "" } else { "s" }
    );
    anyhow::ensure!(
        unreadable == 0,
        "{unreadable} item(s) do not validate: fix or delete them (`wahooks endpoint delete`)"
    );
    Ok(())
}

/// An endpoint item's stored JSON and the endpoint it reads as, or why it does not read (with
/// every quoted value redacted: it may be a secret).
fn stored_endpoint(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> Result<(serde_json::Value, wahooks::endpoint::Endpoint), String> {
    let json = item
        .get("endpoint")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| "no `endpoint` attribute".to_owned())?;
    let raw: serde_json::Value = serde_json::from_str(json).map_err(|e| redact_quoted(&e.to_string()))?;
    let endpoint = serde_json::from_value(raw.clone()).map_err(|e| redact_quoted(&e.to_string()))?;
    Ok((raw, endpoint))
}

/// An error text with every double-quoted value replaced (serde quotes the values it could not
/// read, which may be secrets).
fn redact_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, part) in text.split('"').enumerate() {
        if i > 0 {
            out.push('"');
        }
        out.push_str(if i % 2 == 1 { "…" } else { part });
    }
    out
}
