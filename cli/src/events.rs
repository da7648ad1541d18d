//! `wahooks events`: a chat's timeline (the chat's partition of the events table) or a
//! message's lifecycle (`gsi1`, keys-only, then the events themselves), oldest first.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use wahooks::store::keys;
use wahooks::{CloudEvent, Provider};

/// Arguments of `wahooks events`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["chat", "message"])))]
pub struct EventsArgs {
    /// A chat id as the provider sends it (the events' `subject`), or any alias of the person a
    /// direct chat is with (a phone, a LID, a Meta user id): with `--instance`, the person's
    /// whole conversation, conversations merged into it included.
    #[arg(long)]
    chat: Option<String>,
    /// A WhatsApp message id (`data.message_id`).
    #[arg(long)]
    message: Option<String>,
    /// The provider instance (Z-API instanceId, Meta phone number id…). With it, the events are
    /// read with a Query; without it every instance is searched (a table scan: fine locally,
    /// slow on a big table).
    #[arg(long)]
    instance: Option<String>,
    /// The provider of the instance (with `--instance`; default: every provider).
    #[arg(long)]
    provider: Option<Provider>,
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

/// Every item whose `key` is `value`, from the table or an index.
async fn query(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    index: Option<&str>,
    key: &str,
    value: String,
) -> anyhow::Result<Vec<Item>> {
    dynamo
        .query()
        .table_name(table)
        .set_index_name(index.map(str::to_owned))
        .key_condition_expression("#k = :v")
        .expression_attribute_names("#k", key)
        .expression_attribute_values(":v", AttributeValue::S(value))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .with_context(|| format!("Query on {}", index.unwrap_or("the table")))
}

/// Every item whose `key` ends with `#<suffix>` (any provider and instance): a scan.
async fn scan_suffix(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
    suffix: String,
) -> anyhow::Result<Vec<Item>> {
    let items: Vec<Item> = dynamo
        .scan()
        .table_name(table)
        .filter_expression("contains(#k, :s)")
        .expression_attribute_names("#k", key)
        .expression_attribute_values(":s", AttributeValue::S(suffix.clone()))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .context("Scan")?;
    Ok(items.into_iter().filter(|i| s(i, key).ends_with(&suffix)).collect())
}

/// The items the keys of an index listing name (`gsi1` is keys-only), 100 keys per request.
async fn fetch(dynamo: &aws_sdk_dynamodb::Client, table: &str, listed: &[Item]) -> anyhow::Result<Vec<Item>> {
    let mut out = Vec::new();
    for chunk in listed.chunks(100) {
        let mut keys: Vec<HashMap<String, AttributeValue>> = chunk
            .iter()
            .map(|i| {
                ["pk", "sk"]
                    .iter()
                    .filter_map(|k| i.get(*k).map(|v| ((*k).to_owned(), v.clone())))
                    .collect()
            })
            .collect();
        // BatchGetItem may answer part of the keys: ask again for the rest.
        while !keys.is_empty() {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut keys)))
                .build()
                .context("the BatchGetItem request")?;
            let got = dynamo
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .context("BatchGetItem")?;
            if let Some(items) = got.responses().and_then(|r| r.get(table)) {
                out.extend(items.iter().cloned());
            }
            if let Some(rest) = got.unprocessed_keys().and_then(|u| u.get(table)) {
                keys = rest.keys().to_vec();
            }
        }
    }
    Ok(out)
}

/// The partitions of the person `chat` names (their conversation key, and the keys merged into
/// it: the identity map in the endpoints table `table`), or of `chat` itself when it is no alias
/// the map knows.
async fn conversation_keys(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    provider: Provider,
    instance: &str,
    chat: &str,
) -> anyhow::Result<Vec<String>> {
    let Some(alias) = wahooks::event::Alias::parse(chat) else {
        return Ok(vec![chat.to_owned()]);
    };
    let contact = wahooks::event::contact::lookup(dynamo, table, provider.as_str(), instance, &alias)
        .await
        .map_err(|e| anyhow::anyhow!(e))
        .context("reading the identity map")?;
    Ok(match contact {
        Some(c) => std::iter::once(c.key).chain(c.merged).collect(),
        None => vec![chat.to_owned()],
    })
}

/// The items `args` asks for: a chat's partition (by instance, or found by its suffix), or a
/// message's events (through the message index).
async fn items_of(
    args: &EventsArgs,
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    endpoints: &str,
) -> anyhow::Result<Vec<HashMap<String, AttributeValue>>> {
    let providers: Vec<Provider> = match args.provider {
        Some(p) => vec![p],
        None => Provider::ALL.to_vec(),
    };
    match (&args.chat, &args.message, &args.instance) {
        (Some(chat), _, Some(instance)) => {
            let mut items = Vec::new();
            for p in &providers {
                for key in conversation_keys(dynamo, endpoints, *p, instance, chat).await? {
                    let pk = keys::chat_partition(p.as_str(), instance, &key);
                    items.extend(query(dynamo, table, None, "pk", pk).await?);
                }
            }
            Ok(items)
        }
        (Some(chat), _, None) => scan_suffix(dynamo, table, "pk", format!("#{}", keys::part(chat))).await,
        (None, Some(msg), Some(instance)) => {
            let mut listed = Vec::new();
            for p in &providers {
                let key = keys::message_key(p.as_str(), instance, wahooks::identity::message_identity(*p, msg));
                listed.extend(query(dynamo, table, Some("gsi1"), "gsi1pk", key).await?);
            }
            fetch(dynamo, table, &listed).await
        }
        (None, Some(msg), None) => {
            // A WAHA serialized id is indexed by its inner id.
            let msg = wahooks::identity::message_identity(wahooks::Provider::Waha, msg);
            scan_suffix(dynamo, table, "gsi1pk", format!("#{}", keys::part(msg))).await
        }
        (None, None, _) => Err(anyhow::anyhow!("--chat or --message")),
    }
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
    let items = match items_of(&args, &dynamo, &table, &stack.config.endpoints_table).await {
        Ok(items) => items,
        Err(e) => {
            eprintln!("error: {table}: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    // An event over an item even without its body is kept in the bucket: read it there.
    let s3 = wahooks::bucket::s3_client(&stack.sdk);
    let mut events: Vec<Result<CloudEvent, String>> = Vec::new();
    for i in items.iter().filter(|i| keys::is_event_sk(s(i, "sk"))) {
        let read = wahooks::store::read_sdk_item(i, &s3).await;
        events.push(
            read.map(|(_, e)| e)
                .map_err(|e| format!("{}: unreadable event ({e})", s(i, "sk"))),
        );
    }
    events.sort_by_cached_key(|e| match e {
        Ok(e) => (e.time_ms(), e.receivedat.millis(), e.id.clone()),
        Err(_) => (0, 0, String::new()),
    });
    if events.is_empty() {
        eprintln!("no events");
    }
    let mut out = std::io::stdout().lock();
    for event in events {
        let line = match event {
            Ok(mut e) if args.json => {
                e.data.raw = None;
                e.to_json()
            }
            Ok(e) => summary(&e),
            Err(e) => e,
        };
        if writeln!(out, "{line}").is_err() {
            // stdout closed (e.g. piped into `head`): nothing more to do.
            break;
        }
    }
    ExitCode::SUCCESS
}
