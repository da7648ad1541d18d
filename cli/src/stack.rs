//! The configuration every command reads, documented once in `docs/receiving.md` (Configuration): the SDK's usual
//! variables (`AWS_ENDPOINT_URL` for the local stand-in), `WAHOOKS_EVENTS_TABLE`,
//! `WAHOOKS_ENDPOINTS_TABLE`, `WAHOOKS_SECRETS_KEY`, `WAHOOKS_QUEUE_<NAME>`; queues not set are found by name prefix.

use anyhow::Context;
use wahooks::config::{aws_config, Config};

/// The configuration and SDK config, with the queues filled in.
pub struct Stack {
    /// Tables, queues, routing.
    pub config: Config,
    /// The SDK configuration.
    pub sdk: aws_config::SdkConfig,
    /// The stream mapping's on-failure queue (`WAHOOKS_STREAM_FAILURES_URL`, else the queue
    /// named `<prefix>-stream-failures`), when there is one.
    pub failures_url: Option<String>,
}

/// `<prefix>-<name>[.fifo]` → `name`.
fn queue_name(url: &str, prefix: &str) -> Option<String> {
    let last = url.rsplit('/').next()?;
    let name = last.strip_prefix(prefix)?.strip_prefix('-')?;
    Some(name.trim_end_matches(".fifo").to_owned())
}

/// Read the environment; the events table is `<prefix>-events` unless `WAHOOKS_EVENTS_TABLE`
/// is set (the endpoints table `<prefix>-endpoints` unless `WAHOOKS_ENDPOINTS_TABLE` is), and
/// when no `WAHOOKS_QUEUE_*` is set, the queues named `<prefix>-…` are listed (what `make run`
/// creates).
pub async fn load(prefix: &str) -> anyhow::Result<Stack> {
    let mut config = Config::from_env();
    if std::env::var("WAHOOKS_EVENTS_TABLE").is_err() {
        config.events_table = format!("{prefix}-events");
    }
    if std::env::var("WAHOOKS_ENDPOINTS_TABLE").is_err() {
        config.endpoints_table = format!("{prefix}-endpoints");
    }

    let sdk = aws_config().await;
    let mut failures_url = std::env::var("WAHOOKS_STREAM_FAILURES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if config.queues.is_empty() || failures_url.is_none() || config.media.url.is_none() {
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let out = sqs
            .list_queues()
            .queue_name_prefix(prefix)
            .send()
            .await
            .context("listing queues")?;
        let named: Vec<(String, String)> = out
            .queue_urls()
            .iter()
            .filter_map(|u| Some((queue_name(u, prefix)?, u.clone())))
            .collect();
        if failures_url.is_none() {
            failures_url = named
                .iter()
                .find(|(n, _)| n == "stream-failures")
                .map(|(_, u)| u.clone());
        }
        let find = |name: &str| named.iter().find(|(n, _)| n == name).map(|(_, u)| u.clone());
        if config.parked_url.is_none() {
            config.parked_url = find("parked");
        }
        if config.timers_url.is_none() {
            config.timers_url = find("timers");
        }
        if config.media.url.is_none() {
            config.media.url = find("media");
        }
        if config.queues.is_empty() {
            // DLQs, the failures and parked queues, and the functions' own queues are not
            // routed to.
            const NOT_ROUTED: [&str; 5] = ["stream-failures", "parked", "timers", "media", "social"];
            config.queues = named
                .into_iter()
                .filter(|(n, _)| !n.ends_with("-dlq") && !NOT_ROUTED.contains(&n.as_str()))
                .collect();
            config.queues.sort();
        }
    }
    // The claim-check bucket: WAHOOKS_BODY_BUCKET (the stack's BodyBucketName output), else the
    // local stack's `<prefix>-bodies` when there is one.
    if config.body_bucket.is_none() {
        let local = wahooks::schema::local_bucket_name(prefix);
        let s3 = wahooks::bucket::s3_client(&sdk);
        if s3.head_bucket().bucket(&local).send().await.is_ok() {
            config.body_bucket = Some(local);
        }
    }
    Ok(Stack {
        config,
        sdk,
        failures_url,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn queue_urls_give_their_names() {
        assert_eq!(
            super::queue_name("http://h/0/wahooks-messages.fifo", "wahooks").as_deref(),
            Some("messages")
        );
        assert_eq!(
            super::queue_name("http://h/0/wahooks-presence", "wahooks").as_deref(),
            Some("presence")
        );
        assert_eq!(super::queue_name("http://h/0/other", "wahooks"), None);
    }
}
