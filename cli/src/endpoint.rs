//! `wahooks endpoint …`: create, list, disable, rotate and remove secrets of endpoints in the
//! endpoints table (real AWS, or the local stand-in with `AWS_ENDPOINT_URL`).

use std::process::ExitCode;

use base64::Engine;
use rand::RngCore;
use wahooks::config::{aws_config, Config};
use wahooks::endpoint::{Auth, Scheme, Secret};
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
        /// standard-webhooks, hub-signature-256, waha-hmac or evolution-jwt.
        #[arg(long, default_value = "url-token")]
        scheme: String,
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
    },
    /// List endpoints (never their secrets).
    List,
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
    DynamoRegistry::new(
        aws_sdk_dynamodb::Client::new(&aws_config().await),
        config.endpoints_table,
    )
}

async fn execute(command: EndpointCommand) -> anyhow::Result<()> {
    match command {
        EndpointCommand::Create {
            provider,
            scheme,
            secret,
            header_name,
            verify_token,
            base_url,
        } => {
            create(
                provider,
                &scheme,
                secret,
                header_name.as_deref(),
                verify_token,
                &base_url,
            )
            .await
        }
        EndpointCommand::List => list().await,
        EndpointCommand::Disable { id } => set_enabled(&id, false).await,
        EndpointCommand::Enable { id } => set_enabled(&id, true).await,
        EndpointCommand::Delete { id } => delete(&id).await,
        EndpointCommand::RotateToken { id, base_url } => rotate_token(&id, &base_url).await,
        EndpointCommand::RetireTokens { id } => retire_tokens(&id).await,
        EndpointCommand::RotateSecret { id, secret } => rotate_secret(&id, secret).await,
        EndpointCommand::RemoveSecret { id, index } => remove_secret(&id, index).await,
    }
}

/// `create`: the endpoint, its URLs, and what was generated (shown once).
async fn create(
    provider: Provider,
    scheme: &str,
    secret: Option<String>,
    header_name: Option<&str>,
    verify_token: Option<String>,
    base_url: &str,
) -> anyhow::Result<()> {
    let scheme: Scheme = scheme.parse()?;
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
    let endpoint = new_endpoint(provider, auth);
    registry().await.create(&token, &endpoint).await?;
    println!("endpoint: {}", endpoint.id);
    println!("provider: {provider}  scheme: {scheme}");
    print_urls(base_url, &token);
    if generated {
        println!("secret (shown once): {}", secrets[0]);
    }
    if let Some(v) = printed_verify {
        println!("verify token (Meta's \"Verify token\" field): {v}");
    }
    Ok(())
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
        "{:<20} {:<11} {:<18} {:<8} {:<8} {:<7} created",
        "id", "provider", "scheme", "enabled", "secrets", "tokens"
    );
    for (e, tokens) in registry().await.list_endpoints().await? {
        println!(
            "{:<20} {:<11} {:<18} {:<8} {:<8} {:<7} {}",
            e.id,
            e.provider,
            e.auth.scheme(),
            e.enabled,
            e.auth.secrets().len(),
            tokens,
            e.created_at
        );
    }
    Ok(())
}

/// `enable` / `disable`.
async fn set_enabled(id: &str, enabled: bool) -> anyhow::Result<()> {
    let registry = registry().await;
    let (_, mut e) = registry.find_by_id(id).await?;
    e.enabled = enabled;
    registry.update(&e).await?;
    println!("{id} {}", if enabled { "enabled" } else { "disabled" });
    Ok(())
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
    let token = new_token();
    registry().await.add_token(id, &token).await?;
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
    let (_, mut e) = registry.find_by_id(id).await?;
    let generated = secret.is_none();
    let new = secret.unwrap_or_else(|| generate_secret(e.auth.scheme()));
    e.auth.add_secret(Secret::new(new.clone()))?;
    registry.update(&e).await?;
    println!(
        "{id}: {} secrets accepted; remove the old one with `wahooks endpoint remove-secret {id}`",
        e.auth.secrets().len()
    );
    if generated {
        println!("new secret (shown once): {new}");
    }
    Ok(())
}

/// `remove-secret`: secret `index` (never the last one).
async fn remove_secret(id: &str, index: usize) -> anyhow::Result<()> {
    let registry = registry().await;
    let (_, mut e) = registry.find_by_id(id).await?;
    e.auth
        .remove_secret(index)
        .map_err(|_| anyhow::anyhow!("{id}: no secret #{index} to remove, or it is the last one"))?;
    registry.update(&e).await?;
    println!("{id}: secret #{index} removed; {} left", e.auth.secrets().len());
    Ok(())
}
