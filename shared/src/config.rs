//! Configuration, read once from the environment (the same variables for the Lambdas, the CLI
//! and the local stack), and the AWS clients built from it.

use std::time::Duration;

use crate::store::DEFAULT_RETENTION_DAYS;

#[cfg(test)]
mod tests {
    #[test]
    fn queue_variables_become_names() {
        let vars = [
            ("WAHOOKS_QUEUE_MESSAGES", "http://q/m.fifo"),
            ("WAHOOKS_QUEUE_AUDIT_LOG", "http://q/a"),
            ("WAHOOKS_QUEUE_EMPTY", ""),
            ("OTHER", "x"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let q = super::queues_from(vars.into_iter());
        assert_eq!(
            q,
            [
                ("audit-log".to_owned(), "http://q/a".to_owned()),
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
        }
    }
}

/// `WAHOOKS_QUEUE_<NAME>=<url>` pairs → (name in lower case with `-`, url), sorted by name.
pub fn queues_from(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut queues: Vec<(String, String)> = vars
        .filter(|(_, v)| !v.is_empty())
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("WAHOOKS_QUEUE_")?;
            Some((name.to_ascii_lowercase().replace('_', "-"), v))
        })
        .collect();
    queues.sort();
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

/// Connect 2 s, attempt 3 s, operation 8 s.
pub fn timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(8))
        .build()
}

/// Structured JSON logs (CloudWatch-friendly); `RUST_LOG` / `WAHOOKS_LOG_LEVEL` set the level.
pub fn init_tracing() {
    let filter = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("WAHOOKS_LOG_LEVEL"))
        .unwrap_or_else(|_| "info".to_owned());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_current_span(false)
        .without_time()
        .with_target(false)
        .try_init();
}
