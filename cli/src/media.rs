//! `wahooks media retry`: archive media files again, after the cause of their failure is fixed
//! (a host added to `MediaHosts`, a token set, the provider back up). It sends the media queue a
//! note for each message, as the fanout does; the archiver fetches what is not in the bucket yet
//! and stores `whatsapp.media.archived` (a file that fails again is the same failed event).

use std::process::ExitCode;

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use wahooks::media::MediaNote;

/// `wahooks media …`.
#[derive(clap::Subcommand)]
pub enum MediaCommand {
    /// Archive again the files of failed media events received since a time, or of messages by
    /// event id.
    Retry(RetryArgs),
}

/// Arguments of `wahooks media retry`.
#[derive(clap::Args)]
pub struct RetryArgs {
    /// The files whose `whatsapp.media.failed` was received at or after this time: RFC 3339 or
    /// an age (`30m`, `6h`, `2d`).
    #[arg(long, required_unless_present = "event")]
    since: Option<String>,
    /// The message's event id (the `whatsapp.message.received` or `.sent` with the file;
    /// repeatable).
    #[arg(long)]
    event: Vec<String>,
    /// List what would be retried, send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Name prefix of the queues and table when `WAHOOKS_*` variables are not set.
    #[arg(long, default_value = "wahooks")]
    prefix: String,
}

/// Run a `media` command; exit 1 on an error.
pub async fn run(command: MediaCommand) -> ExitCode {
    let MediaCommand::Retry(args) = command;
    match retry(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn retry(args: RetryArgs) -> anyhow::Result<()> {
    let stack = crate::stack::load(&args.prefix).await?;
    let url = stack
        .config
        .media
        .url
        .clone()
        .context("no media queue: set WAHOOKS_MEDIA_URL (the stack's MediaQueueUrl output)")?;
    let dynamo = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let table = &stack.config.events_table;
    let mut notes = Vec::new();
    if let Some(since) = &args.since {
        let since = crate::replay::parse_time(since, chrono::Utc::now()).map_err(anyhow::Error::msg)?;
        let since_ms = chrono::DateTime::parse_from_rfc3339(&since)?.timestamp_millis();
        notes.extend(failed_since(&dynamo, table, since_ms).await?);
    }
    for id in &args.event {
        notes.push(note_of_event(&dynamo, table, id).await?);
    }
    notes.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    notes.dedup_by(|a, b| a.event_id == b.event_id);
    for n in &notes {
        println!("{}", n.event_id);
    }
    if args.dry_run {
        println!("{} file(s) would be archived again", notes.len());
        return Ok(());
    }
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    for n in &notes {
        sqs.send_message()
            .queue_url(&url)
            .message_body(n.to_json())
            .send()
            .await
            .context("sending to the media queue")?;
    }
    println!("{} file(s) sent to the archiver", notes.len());
    Ok(())
}

/// The notes of the messages whose media failed since `since_ms`: the failed event names the
/// message, in the same chat partition.
async fn failed_since(dynamo: &aws_sdk_dynamodb::Client, table: &str, since_ms: i64) -> anyhow::Result<Vec<MediaNote>> {
    let items: Vec<std::collections::HashMap<String, AttributeValue>> = dynamo
        .scan()
        .table_name(table)
        .filter_expression("#type = :failed AND received_at >= :since")
        .expression_attribute_names("#type", "type")
        .expression_attribute_values(
            ":failed",
            AttributeValue::S(wahooks::EventType::MediaFailed.as_str().into()),
        )
        .expression_attribute_values(":since", AttributeValue::N(since_ms.to_string()))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .with_context(|| format!("scanning {table}"))?;
    let mut notes = Vec::new();
    for item in &items {
        let failed = wahooks::store::event_of_sdk_item(item).map_err(|e| anyhow::anyhow!(e))?;
        let pk = wahooks::store::keys::event_pk(&failed);
        let Some(media) = failed.data.media else { continue };
        notes.push(MediaNote {
            pk,
            sk: wahooks::store::keys::event_sk(&media.event_id),
            event_id: media.event_id,
            attempt: 0,
        });
    }
    Ok(notes)
}

/// The note of the message with event id `id`, wherever its chat is (a scan).
async fn note_of_event(dynamo: &aws_sdk_dynamodb::Client, table: &str, id: &str) -> anyhow::Result<MediaNote> {
    let sk = wahooks::store::keys::event_sk(id);
    let items: Vec<std::collections::HashMap<String, AttributeValue>> = dynamo
        .scan()
        .table_name(table)
        .filter_expression("sk = :sk")
        .expression_attribute_values(":sk", AttributeValue::S(sk.clone()))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .with_context(|| format!("scanning {table}"))?;
    let pk = items
        .first()
        .and_then(|i| i.get("pk"))
        .and_then(|v| v.as_s().ok())
        .with_context(|| format!("no stored event {id}"))?;
    Ok(MediaNote {
        event_id: id.to_owned(),
        pk: pk.clone(),
        sk,
        attempt: 0,
    })
}
