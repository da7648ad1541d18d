//! Configuration, read once from the environment (the same variables for the Lambdas, the CLI
//! and the local stack), and the AWS clients built from it.

use std::time::Duration;

use crate::store::DEFAULT_RETENTION_DAYS;

#[cfg(test)]
mod tests {
    #[test]
    fn log_levels_and_directives_are_read_and_nonsense_means_info() {
        use tracing::level_filters::LevelFilter;
        assert_eq!(super::log_filter("debug").default_level(), Some(LevelFilter::DEBUG));
        assert_eq!(
            super::log_filter("warn,wahooks=trace").default_level(),
            Some(LevelFilter::WARN)
        );
        assert_eq!(super::log_filter("").default_level(), Some(LevelFilter::INFO));
        assert_eq!(super::log_filter("%%%").default_level(), Some(LevelFilter::INFO));
    }

    #[test]
    fn dependencies_that_print_requests_never_log_below_debug() {
        use tracing::Level;
        let printers = [
            "aws_smithy_runtime::client::orchestrator",
            "aws_smithy_runtime_api::http::request",
            "aws_smithy_http_client::hyper_legacy",
            "aws_sigv4::http_request::sign",
            "aws_sdk_dynamodb::operation::get_item",
            "aws_sdk_sqs::config",
            "aws_config::imds",
            "hyper::proto::h1::io",
            "hyper_util::client::legacy::pool",
            "h2::codec::framed_write",
            "rustls::client::hs",
            "lambda_runtime::layers::api_response",
            "lambda_runtime_api_client",
        ];
        for spec in [
            "trace",
            "debug,wahooks=trace",
            "warn,wahooks=trace,aws_smithy_runtime=trace",
            "aws=trace,h=trace,lambda=trace",
            "off,aws_smithy_runtime::client::orchestrator=trace,lambda_runtime::layers=trace",
            "hyper=trace,h2=trace,rustls=trace,hyper_util::client=trace",
        ] {
            let filter = super::log_filter(spec);
            for target in printers {
                assert!(!filter.would_enable(target, &Level::TRACE), "{spec}: {target} at trace");
            }
        }
        // `trace` still reaches our own crates, and the dependencies at `debug`.
        let filter = super::log_filter("trace");
        assert!(filter.would_enable("wahooks::http", &Level::TRACE));
        assert!(filter.would_enable("message_received", &Level::TRACE));
        assert!(filter.would_enable("aws_smithy_runtime::client::orchestrator", &Level::DEBUG));
        assert!(filter.would_enable("lambda_runtime::runtime", &Level::DEBUG));
        // A level under the cap is kept as asked, explicit or by default.
        let filter = super::log_filter("warn,wahooks=trace,hyper=error");
        assert!(filter.would_enable("wahooks::registry", &Level::TRACE));
        assert!(!filter.would_enable("aws_smithy_runtime", &Level::INFO));
        assert!(filter.would_enable("aws_smithy_runtime", &Level::WARN));
        assert!(!filter.would_enable("hyper::proto", &Level::WARN));
        assert!(!super::log_filter("info,aws_sdk_dynamodb=off").would_enable("aws_sdk_dynamodb", &Level::ERROR));
        assert!(!super::log_filter("%%%").would_enable("aws_smithy_runtime", &Level::DEBUG));
        assert!(super::log_filter("").would_enable("aws_smithy_runtime", &Level::INFO));
    }

    #[test]
    fn queue_variables_become_names() {
        let vars = [
            ("WAHOOKS_QUEUE_MESSAGES", "http://q/m.fifo"),
            ("WAHOOKS_QUEUE_AUDIT_LOG", "http://q/a"),
            ("WAHOOKS_QUEUE_EMPTY", ""),
            ("OTHER", "x"),
            ("WAHOOKS_EXTRA_QUEUES", "crm=http://q/c.fifo, =x,bad"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let q = super::queues_from(vars.into_iter());
        assert_eq!(
            q,
            [
                ("audit-log".to_owned(), "http://q/a".to_owned()),
                ("crm".to_owned(), "http://q/c.fifo".to_owned()),
                ("messages".to_owned(), "http://q/m.fifo".to_owned())
            ]
        );
    }
}

/// Typed configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `WAHOOKS_EVENTS_TABLE` (default `wahooks-events`).
    pub events_table: String,
    /// `WAHOOKS_ENDPOINTS_TABLE` (default `wahooks-endpoints`).
    pub endpoints_table: String,
    /// `WAHOOKS_RETENTION_DAYS`: TTL of stored events (default 30).
    pub retention_days: i64,
    /// `WAHOOKS_QUEUE_<NAME>=<url>`: the fanout's queues by name (`messages`, `statuses`,
    /// `instance`, `presence`, `unrouted`, and any extra queue a route names).
    pub queues: Vec<(String, String)>,
    /// `WAHOOKS_ROUTES`: overrides of the default routing, e.g.
    /// `message.received=messages+audit,chat.presence=unrouted`.
    pub routes: String,
    /// `WAHOOKS_BODY_BUCKET`: the claim-check bucket (bodies too large for a DynamoDB item;
    /// quarantined bodies too large for the table). Without it such bodies are refused (413).
    pub body_bucket: Option<String>,
    /// `WAHOOKS_PARKED_URL`: the queue of stream records the fanout can never publish (without
    /// it such a record is retried like any failure).
    pub parked_url: Option<String>,
    /// `WAHOOKS_SECRETS_KEY`: the KMS key (id, ARN or `alias/…`) signing secrets are sealed
    /// under (the stack's SecretsKeyArn output). Opening needs no id: the sealed data key names
    /// its key.
    pub secrets_key: Option<String>,
    /// `WAHOOKS_TIMERS_URL`: the `timers` queue (turns, silence: docs/architecture.md, "Events
    /// in time"). The fanout tells it of inbound messages and traffic; the `timers` function
    /// sends its timers to it. Without it there are no turns and no silence events.
    pub timers_url: Option<String>,
    /// The media archiver's settings.
    pub media: MediaConfig,
}

/// The media archiver's settings (docs/architecture.md, "Media").
#[derive(Debug, Clone, Default)]
pub struct MediaConfig {
    /// `WAHOOKS_MEDIA_URL`: the `media` queue. The fanout tells it of messages with a media
    /// file; the `media-archiver` function sends its retries to it. Unset: nothing is archived.
    pub url: Option<String>,
    /// `WAHOOKS_MEDIA_HOSTS`: hosts fetched besides the providers' own (comma-separated; a name
    /// takes its subdomains): a self-hosted gateway's, its S3 or MinIO.
    pub hosts: Vec<String>,
    /// `WAHOOKS_GRAPH_URL`: the Graph API's base URL (Meta's media lookup).
    pub graph_url: Option<String>,
}
impl Config {
    /// Read the environment.
    pub fn from_env() -> Config {
        let var = |k: &str, d: &str| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| d.to_owned())
        };
        Config {
            events_table: var("WAHOOKS_EVENTS_TABLE", "wahooks-events"),
            endpoints_table: var("WAHOOKS_ENDPOINTS_TABLE", "wahooks-endpoints"),
            retention_days: var("WAHOOKS_RETENTION_DAYS", "")
                .parse()
                .unwrap_or(DEFAULT_RETENTION_DAYS),
            queues: queues_from(std::env::vars()),
            routes: var("WAHOOKS_ROUTES", ""),
            body_bucket: Some(var("WAHOOKS_BODY_BUCKET", "")).filter(|b| !b.is_empty()),
            parked_url: Some(var("WAHOOKS_PARKED_URL", "")).filter(|u| !u.is_empty()),
            secrets_key: Some(var("WAHOOKS_SECRETS_KEY", "")).filter(|k| !k.is_empty()),
            timers_url: Some(var("WAHOOKS_TIMERS_URL", "")).filter(|u| !u.is_empty()),
            media: MediaConfig {
                url: Some(var("WAHOOKS_MEDIA_URL", "")).filter(|u| !u.is_empty()),
                hosts: var("WAHOOKS_MEDIA_HOSTS", "")
                    .split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(str::to_owned)
                    .collect(),
                graph_url: Some(var("WAHOOKS_GRAPH_URL", "")).filter(|u| !u.is_empty()),
            },
        }
    }
}

/// `WAHOOKS_QUEUE_<NAME>=<url>` pairs, and `WAHOOKS_EXTRA_QUEUES=<name>=<url>[,…]` (what the
/// template's extra-queue parameters set) → (name in lower case with `-`, url), sorted by name.
pub fn queues_from(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut queues: Vec<(String, String)> = Vec::new();
    for (k, v) in vars.filter(|(_, v)| !v.is_empty()) {
        if k == "WAHOOKS_EXTRA_QUEUES" {
            queues.extend(
                v.split(',')
                    .filter_map(|pair| pair.trim().split_once('='))
                    .filter(|(n, u)| !n.trim().is_empty() && !u.trim().is_empty())
                    .map(|(n, u)| (n.trim().to_ascii_lowercase().replace('_', "-"), u.trim().to_owned())),
            );
        } else if let Some(name) = k.strip_prefix("WAHOOKS_QUEUE_") {
            queues.push((name.to_ascii_lowercase().replace('_', "-"), v));
        }
    }
    queues.sort();
    queues.dedup_by(|a, b| a.0 == b.0);
    queues
}

/// The shared AWS configuration: region and credentials from the usual chain, and
/// `AWS_ENDPOINT_URL` (the local stand-in) honoured by the SDK itself. Timeouts are short so a
/// dead DynamoDB becomes a 503 well inside API Gateway's 30 s, not a hung request.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts())
        .load()
        .await
}

/// The Lambdas' AWS configuration, built straight from the environment Lambda provides (the
/// region, the role's credentials in `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/
/// `AWS_SESSION_TOKEN`, and `AWS_ENDPOINT_URL` when set), with the same timeouts. The SDK's
/// full default chain (profiles, SSO, STS web identity, IMDS) finds the same credentials in
/// Lambda but links all of that code into every bootstrap; this keeps them smaller. `var`
/// reads a variable (`std::env::var` in Lambda; a map in tests).
pub fn lambda_sdk_config(var: impl Fn(&str) -> Option<String>) -> aws_config::SdkConfig {
    let region = var("AWS_REGION")
        .or_else(|| var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".to_owned());
    let credentials = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => Some(aws_sdk_dynamodb::config::Credentials::new(
            id,
            secret,
            var("AWS_SESSION_TOKEN"),
            None,
            "lambda-environment",
        )),
        _ => None,
    };
    let mut builder = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region))
        .timeout_config(timeouts());
    if let Some(c) = credentials {
        builder = builder.credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(c));
    }
    if let Some(url) = var("AWS_ENDPOINT_URL").filter(|u| !u.is_empty()) {
        builder = builder.endpoint_url(url);
    }
    builder.build()
}

/// [`lambda_sdk_config`] from the process environment.
pub fn lambda_sdk_config_from_env() -> aws_config::SdkConfig {
    lambda_sdk_config(|k| std::env::var(k).ok())
}

/// Connect 2 s, attempt 3 s, operation (with the SDK's retries) 6 s. A receiver's calls also
/// share one 7 s budget (`http::REQUEST_BUDGET`) inside the functions' 10 s timeout, so however
/// the calls add up, a stalled DynamoDB is answered with our 503, never API Gateway's own 5xx.
pub fn timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(6))
        .build()
}

/// Structured JSON logs (CloudWatch-friendly); `RUST_LOG` / `WAHOOKS_LOG_LEVEL` set the level:
/// a level (`info`) or `target=level` directives (`info,wahooks=debug`), without regexes (the
/// regex engine of a full `EnvFilter` would add to every bootstrap). An unreadable value means
/// `info`.
pub fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let spec = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("WAHOOKS_LOG_LEVEL"))
        .unwrap_or_default();
    let _ = tracing_subscriber::registry()
        .with(log_filter(&spec))
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(false)
                .without_time()
                .with_target(false),
        )
        .try_init();
}

/// The dependencies that print what they send and receive at `trace`, so they are never logged
/// below `debug`, whatever level is asked: aws-smithy-runtime prints whole requests (the signed
/// headers, `x-amz-security-token` among them) and responses (`GetItem` bodies: endpoint
/// records with their secrets); aws-sigv4 the request it signs; lambda_runtime the raw
/// invocation event (the URL token in the path, `Authorization`, signatures, the body); the
/// HTTP stack its frames. A directive names a target prefix (`hyper` also covers `hyper_util`
/// and `hyper_rustls`; `lambda_runtime` covers `lambda_runtime_api_client`), but each crate is
/// named so a rename shows here.
pub const CAPPED_TARGETS: [&str; 25] = [
    "aws_config",
    "aws_credential_types",
    "aws_runtime",
    "aws_sdk_dynamodb",
    "aws_sdk_kms",
    "aws_sdk_s3",
    "aws_sdk_sqs",
    "aws_sdk_sso",
    "aws_sdk_ssooidc",
    "aws_sdk_sts",
    "aws_sigv4",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_types",
    "h2",
    "hyper",
    "hyper_rustls",
    "hyper_util",
    "lambda_http",
    "lambda_runtime",
    "reqwest",
    "rustls",
    "tower",
];

/// The log filter of a `RUST_LOG`-style spec; `info` when empty or unreadable. Whatever it
/// asks, [`CAPPED_TARGETS`] stay at `debug` or less (`trace` still reaches `wahooks` and the
/// functions' own crates).
pub fn log_filter(spec: &str) -> tracing_subscriber::filter::Targets {
    let info = || tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO);
    let spec = spec.trim();
    let asked = match spec.parse::<tracing_subscriber::filter::Targets>() {
        _ if spec.is_empty() => info(),
        Ok(parsed) if parsed.default_level().is_some() => parsed,
        Ok(parsed) => parsed.with_default(tracing::Level::INFO),
        Err(_) => info(),
    };
    cap_dependencies(asked)
}

/// `asked` with every [`CAPPED_TARGETS`] directive, asked or implied, at `debug` at most.
fn cap_dependencies(asked: tracing_subscriber::filter::Targets) -> tracing_subscriber::filter::Targets {
    use tracing::level_filters::LevelFilter;
    let cap = |level: LevelFilter| level.min(LevelFilter::DEBUG);
    let capped_target = |target: &str| CAPPED_TARGETS.iter().any(|c| target.starts_with(c));
    let mut filter = tracing_subscriber::filter::Targets::new();
    if let Some(default) = asked.default_level() {
        filter = filter.with_default(default);
    }
    // What was asked, less verbose for the capped crates (`aws_smithy_runtime::client=trace`).
    for (target, level) in &asked {
        filter = filter.with_target(target, if capped_target(target) { cap(level) } else { level });
    }
    // Each capped crate at what `asked` gives it (a wider directive, `aws=trace`, or the default),
    // capped: the more specific directive wins.
    for target in CAPPED_TARGETS {
        let levels = [
            tracing::Level::TRACE,
            tracing::Level::DEBUG,
            tracing::Level::INFO,
            tracing::Level::WARN,
            tracing::Level::ERROR,
        ];
        let effective = levels
            .into_iter()
            .find(|level| asked.would_enable(target, level))
            .map_or(LevelFilter::OFF, LevelFilter::from_level);
        filter = filter.with_target(target, cap(effective));
    }
    filter
}
