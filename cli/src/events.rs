//! `wahooks events`: a chat's timeline (gsi1) or a message's lifecycle (gsi2) from the events
//! table, oldest first.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;

use aws_sdk_dynamodb::types::AttributeValue;
use wahooks::CloudEvent;

/// Arguments of `wahooks events`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["chat", "message"])))]
pub struct EventsArgs {
    /// A chat id as the provider sends it (the events' `subject`).
    #[arg(long)]
    chat: Option<String>,
    /// A WhatsApp message id (`data.message_id`).
    #[arg(long)]
    message: Option<String>,
    /// The provider instance (Z-API instanceId, Meta phone number id…). Without it every
    /// instance is searched (a table scan: fine locally, slow on a big table).
    #[arg(long)]
    instance: Option<String>,
    /// Print each CloudEvent (without `data.raw`) as JSON instead of a summary line.
    #[arg(long)]
    json: bool,
    /// Name prefix of the tables when `WAHOOKS_EVENTS_TABLE` is not set.
    #[arg(long, default_value = "wahooks")]
    prefix: String,
}

type Item = HashMap<String, AttributeValue>;

fn s<'a>(item: &'a Item, k: &str) -> &'a str {
    item.get(k)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .unwrap_or_default()
}

/// One line: time, type, id and what the event says.
pub fn summary(e: &CloudEvent) -> String {
    let d = &e.data;
    let what = if let Some(c) = &d.content {
        let text = c.text.as_deref().or(c.caption.as_deref()).unwrap_or_default();
        let text: String = text.chars().take(60).collect();
        format!("{} {text}", c.kind.as_str())
    } else if let Some(st) = d.status {
        st.as_str().to_owned()
    } else if let Some(p) = &d.presence {
        p.clone()
    } else if let Some(n) = &d.notification {
        n.clone()
    } else {
        String::new()
    };
    let msg = d.message_id.as_deref().unwrap_or("-");
    format!("{}  {:<32} {}  msg={msg}  {what}", e.time, e.event_type.as_str(), e.id)
}

async fn query(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    index: &str,
    key: &str,
    value: String,
) -> Result<Vec<Item>, String> {
    dynamo
        .query()
        .table_name(table)
        .index_name(index)
        .key_condition_expression("#k = :v")
        .expression_attribute_names("#k", key)
        .expression_attribute_values(":v", AttributeValue::S(value))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
}

async fn scan_suffix(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
    prefix: &str,
    suffix: String,
) -> Result<Vec<Item>, String> {
    let items: Vec<Item> = dynamo
        .scan()
        .table_name(table)
        .filter_expression("begins_with(#k, :p) AND contains(#k, :s)")
        .expression_attribute_names("#k", key)
        .expression_attribute_values(":p", AttributeValue::S(prefix.to_owned()))
        .expression_attribute_values(":s", AttributeValue::S(suffix.clone()))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())?;
    Ok(items.into_iter().filter(|i| s(i, key).ends_with(&suffix)).collect())
}

/// Print the events, oldest first.
pub async fn run(args: EventsArgs) -> ExitCode {
    let stack = match crate::stack::load(&args.prefix).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let table = stack.config.events_table.clone();
    let dynamo = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let (index, key, sort, prefix, id) = match (&args.chat, &args.message) {
        (Some(chat), _) => ("gsi1", "gsi1pk", "gsi1sk", "CHAT#", chat.clone()),
        (None, Some(msg)) => ("gsi2", "gsi2pk", "gsi2sk", "MSG#", msg.clone()),
        (None, None) => return ExitCode::from(2),
    };
    let result = match &args.instance {
        Some(instance) => query(&dynamo, &table, index, key, format!("{prefix}{instance}#{id}")).await,
        None => scan_suffix(&dynamo, &table, key, prefix, format!("#{id}")).await,
    };
    let mut items = match result {
        Ok(items) => items,
        Err(e) => {
            eprintln!("error: {table}: {e}");
            return ExitCode::FAILURE;
        }
    };
    items.sort_by(|a, b| s(a, sort).cmp(s(b, sort)));
    if items.is_empty() {
        eprintln!("no events");
    }
    let mut out = std::io::stdout().lock();
    for item in &items {
        let json = s(item, "event");
        let line = if args.json {
            json.to_owned()
        } else {
            match serde_json::from_str::<CloudEvent>(json) {
                Ok(e) => summary(&e),
                Err(e) => format!("{}: unreadable event ({e})", s(item, "pk")),
            }
        };
        if writeln!(out, "{line}").is_err() {
            // stdout closed (e.g. piped into `head`): nothing more to do.
            break;
        }
    }
    ExitCode::SUCCESS
}
