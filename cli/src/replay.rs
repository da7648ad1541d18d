//! `wahooks replay`: re-publish stored events to their queues, through the same fanout code
//! the stream uses (routing, FIFO groups, size fallback). The event ids are unchanged, so
//! consumers dedupe on them; FIFO deduplication ids get a `#replay-<ms>` suffix so SQS does not
//! drop a replay sent within its 5-minute deduplication window.

use std::process::ExitCode;

use anyhow::Context;
use aws_lambda_events::event::dynamodb::EventRecord;
use aws_sdk_dynamodb::types::AttributeValue;
use wahooks::fanout::SqsPublisher;
use wahooks::EventType;

/// Arguments of `wahooks replay`.
#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Events received at or after this time: RFC 3339 (`2026-11-22T10:00:00Z`) or an age
    /// (`30m`, `6h`, `2d`).
    #[arg(long)]
    since: String,
    /// Events received before this time (same forms; default: now).
    #[arg(long)]
    until: Option<String>,
    /// Only these types (repeatable), e.g. `message.received` or `whatsapp.message.status`.
    #[arg(long = "type")]
    types: Vec<EventType>,
    /// Count what would be replayed, send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Name prefix of the queues and table when `WAHOOKS_*` variables are not set.
    #[arg(long, default_value = "wahooks")]
    prefix: String,
}

/// RFC 3339, or an age like `30m` / `6h` / `2d` / `45s` before `now` → RFC 3339 with ms.
pub fn parse_time(s: &str, now: chrono::DateTime<chrono::Utc>) -> Result<String, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(wahooks::event::rfc3339_ms(t.with_timezone(&chrono::Utc)));
    }
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = n
        .parse()
        .map_err(|_| format!("`{s}`: expected RFC 3339 or an age like 30m, 6h, 2d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("`{s}`: the unit of an age is s, m, h or d")),
    };
    Ok(wahooks::event::rfc3339_ms(now - chrono::Duration::seconds(secs)))
}

type Item = std::collections::HashMap<String, AttributeValue>;

async fn scan(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    since: &str,
    until: &str,
    types: &[EventType],
) -> anyhow::Result<Vec<Item>> {
    let ms = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| t.timestamp_millis().to_string())
            .with_context(|| format!("`{t}` is not an RFC 3339 time"))
    };
    let mut filter = "begins_with(sk, :evt) AND received_at >= :since AND received_at < :until".to_owned();
    let mut names = vec![];
    let mut values = vec![
        (":evt".to_owned(), AttributeValue::S("E#".into())),
        (":since".to_owned(), AttributeValue::N(ms(since)?)),
        (":until".to_owned(), AttributeValue::N(ms(until)?)),
    ];
    if !types.is_empty() {
        let keys: Vec<String> = (0..types.len()).map(|i| format!(":t{i}")).collect();
        filter.push_str(&format!(" AND #type IN ({})", keys.join(", ")));
        names.push(("#type".to_owned(), "type".to_owned()));
        values.extend(
            keys.into_iter()
                .zip(types)
                .map(|(k, t)| (k, AttributeValue::S(t.as_str().into()))),
        );
    }
    let mut items: Vec<Item> = dynamo
        .scan()
        .table_name(table)
        .filter_expression(&filter)
        .set_expression_attribute_names((!names.is_empty()).then(|| names.into_iter().collect()))
        .set_expression_attribute_values(Some(values.into_iter().collect()))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .with_context(|| format!("scanning {table}"))?;
    // Oldest first, so each chat's events are re-sent in order.
    items.sort_by_cached_key(|i| {
        wahooks::store::event_of_sdk_item(i)
            .map(|e| (e.time_ms(), e.receivedat.millis(), e.id))
            .unwrap_or_default()
    });
    Ok(items)
}

/// Replay; exit 1 if any event could not be re-published after retries.
pub async fn run(args: ReplayArgs) -> ExitCode {
    match replay(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn replay(args: ReplayArgs) -> anyhow::Result<bool> {
    let now = chrono::Utc::now();
    let since = parse_time(&args.since, now).map_err(anyhow::Error::msg)?;
    let until = match &args.until {
        Some(u) => parse_time(u, now).map_err(anyhow::Error::msg)?,
        None => wahooks::event::rfc3339_ms(now + chrono::Duration::seconds(1)),
    };
    let stack = crate::stack::load(&args.prefix).await?;
    let dynamo = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let items = scan(&dynamo, &stack.config.events_table, &since, &until, &args.types).await?;
    println!("{} event(s) received in [{since}, {until})", items.len());
    if args.dry_run || items.is_empty() {
        return Ok(true);
    }
    let fanout = wahooks::lambda::with_bucket(
        wahooks::lambda::fanout_with(&stack.config, SqsPublisher::new(aws_sdk_sqs::Client::new(&stack.sdk))).await?,
        &stack.config,
        &stack.sdk,
    )
    .for_replay(format!("replay-{}", now.timestamp_millis()));
    let bar = indicatif::ProgressBar::new(items.len() as u64);
    let mut failed = 0;
    let mut messages = 0;
    for chunk in items.chunks(100) {
        // The same records the stream would deliver for these items.
        let records: Vec<EventRecord> = chunk
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let mut r = EventRecord::default();
                r.event_name = "INSERT".into();
                r.change.new_image = serde_dynamo::Item::from(item.clone());
                r.change.sequence_number = Some(format!("{i:021}"));
                r
            })
            .collect();
        let (refused, sent) = fanout
            .handle_retrying(records, 3, std::time::Duration::from_millis(500))
            .await;
        messages += sent;
        failed += refused.len();
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    println!(
        "replayed {} event(s) as {messages} message(s); {failed} could not be sent",
        items.len() - failed
    );
    Ok(failed == 0)
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_are_rfc3339_or_ages() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        assert_eq!(
            parse_time("2026-11-22T09:00:00+01:00", now).as_deref(),
            Ok("2026-11-22T08:00:00.000Z")
        );
        assert_eq!(parse_time("30m", now).as_deref(), Ok("2026-11-22T09:30:00.000Z"));
        assert_eq!(parse_time("2d", now).as_deref(), Ok("2026-11-20T10:00:00.000Z"));
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("5w", now).is_err());
    }
}
