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

/// The log filter of a `RUST_LOG`-style spec; `info` when empty or unreadable.
pub fn log_filter(spec: &str) -> tracing_subscriber::filter::Targets {
    let info = || tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO);
    if spec.trim().is_empty() {
        return info();
    }
    let Ok(parsed) = spec.trim().parse::<tracing_subscriber::filter::Targets>() else {
        return info();
    };
    if parsed.default_level().is_some() {
        parsed
    } else {
        parsed.with_default(tracing::Level::INFO)
    }
}
