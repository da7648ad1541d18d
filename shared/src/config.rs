//! Configuration, read once from the environment (the same variables for the Lambdas, the CLI
//! and the local stack), and the AWS clients built from it.

use std::time::Duration;

use crate::store::DEFAULT_RETENTION_DAYS;

/// Typed configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `WAHOOKS_EVENTS_TABLE` (default `wahooks-events`).
    pub events_table: String,
    /// `WAHOOKS_ENDPOINTS_TABLE` (default `wahooks-endpoints`).
    pub endpoints_table: String,
    /// `WAHOOKS_RETENTION_DAYS`: TTL of stored events (default 30).
    pub retention_days: i64,
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
        }
    }
}

/// The shared AWS configuration: region and credentials from the usual chain, and
/// `AWS_ENDPOINT_URL` (the local stand-in) honoured by the SDK itself. Timeouts are short so a
/// dead DynamoDB becomes a 503 well inside API Gateway's 30 s, not a hung request.
pub async fn aws_config() -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(8))
        .build();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await
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
