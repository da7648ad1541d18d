//! `wahooks quarantine`: the authenticated bodies the receivers could not decode or store
//! (answered 400 or 422 and kept in `Q#<sha256>` items of the events table): list them, show
//! one, and re-parse them once the cause is fixed (a newer wahooks that reads the shape, a
//! corrected body), storing what now parses and removing it from quarantine. A body too large
//! for an item is kept in the claim-check bucket (`quarantine/<sha256>`, the bytes as received)
//! and its item names it (`raw_object`, `s3://<bucket>/<key>`) instead of holding it (`raw`).

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use wahooks::bucket::{parse_object_uri, s3_client, BodyBucket, S3Bucket};
use wahooks::providers::{parse_verified, ParseContext};
use wahooks::store::{decompress, keys, resolve_state_ids, DynamoEventStore, EventStore, PutOutcome};
use wahooks::{Provider, Route};

/// `wahooks quarantine …`.
#[derive(clap::Subcommand)]
pub enum QuarantineCommand {
    /// One line per quarantined body: id, when, provider, endpoint, route, size, why.
    List(Common),
    /// Print a quarantined body as it was received (its details go to stderr).
    Show {
        /// The body's id (its SHA-256, or a prefix of it, as `list` prints).
        id: String,
        /// Where the stack is.
        #[command(flatten)]
        common: Common,
    },
    /// Parse quarantined bodies again; store the events of those that now parse and remove them
    /// from quarantine (the others stay, with the reason printed).
    Reparse {
        /// The bodies' ids (or prefixes); none with `--all`.
        ids: Vec<String>,
        /// Every quarantined body.
        #[arg(long)]
        all: bool,
        /// Where the stack is.
        #[command(flatten)]
        common: Common,
    },
}

/// What every quarantine command reads.
#[derive(clap::Args)]
pub struct Common {
    /// Name prefix of the table when `WAHOOKS_EVENTS_TABLE` is not set.
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

fn n(item: &Item, k: &str) -> i64 {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_default()
}

fn id_of(item: &Item) -> &str {
    s(item, "pk").strip_prefix("Q#").unwrap_or_default()
}

async fn quarantined(dynamo: &aws_sdk_dynamodb::Client, table: &str) -> anyhow::Result<Vec<Item>> {
    let mut items: Vec<Item> = dynamo
        .scan()
        .table_name(table)
        .filter_expression("begins_with(pk, :q)")
        .expression_attribute_values(":q", AttributeValue::S("Q#".into()))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .with_context(|| format!("scanning {table}"))?;
    items.retain(|i| keys::is_quarantine_pk(s(i, "pk")));
    items.sort_by_key(|i| n(i, "received_at"));
    Ok(items)
}

/// Where a quarantined body is kept.
enum Kept<'a> {
    /// In its item, zstd-compressed (`raw`).
    Item(&'a [u8]),
    /// In the bucket (`raw_object`), as received.
    Object {
        uri: &'a str,
        bucket: &'a str,
        key: &'a str,
    },
}

fn kept(item: &Item) -> anyhow::Result<Kept<'_>> {
    if let Some(blob) = item.get("raw").and_then(|v| v.as_b().ok()) {
        return Ok(Kept::Item(blob.as_ref()));
    }
    let uri = item
        .get("raw_object")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| anyhow::anyhow!("{}: no raw body (neither `raw` nor `raw_object`)", id_of(item)))?;
    let (bucket, key) = parse_object_uri(uri)
        .ok_or_else(|| anyhow::anyhow!("{}: `raw_object` {uri} is not s3://<bucket>/<key>", id_of(item)))?;
    Ok(Kept::Object { uri, bucket, key })
}

/// The body as received, from its item or from the bucket.
async fn raw_of(item: &Item, sdk: &aws_config::SdkConfig) -> anyhow::Result<Vec<u8>> {
    match kept(item)? {
        Kept::Item(blob) => Ok(decompress(blob)?),
        Kept::Object { uri, bucket, key } => S3Bucket::new(s3_client(sdk), bucket)
            .get(key)
            .await
            .with_context(|| format!("{}: reading {uri}", id_of(item)))?
            .ok_or_else(|| anyhow::anyhow!("{}: {uri} is gone (the bucket's retention ended it)", id_of(item))),
    }
}

/// How `list` prints a body's size: the compressed bytes of one in its item, the bytes as
/// received of one in the bucket (a HEAD, not a download).
async fn size_of(item: &Item, sdk: &aws_config::SdkConfig) -> String {
    match kept(item) {
        Ok(Kept::Item(blob)) => format!("{} B (zstd)", blob.len()),
        Ok(Kept::Object { bucket, key, .. }) => {
            let head = s3_client(sdk).head_object().bucket(bucket).key(key).send().await;
            match head.ok().and_then(|h| h.content_length()) {
                Some(n) => format!("{n} B (S3)"),
                None => "in S3".to_owned(),
            }
        }
        Err(_) => "no body".to_owned(),
    }
}

/// Run a quarantine command.
pub async fn run(command: QuarantineCommand) -> ExitCode {
    match execute(command).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn select<'a>(items: &'a [Item], wanted: &[String], all: bool) -> anyhow::Result<Vec<&'a Item>> {
    if all {
        return Ok(items.iter().collect());
    }
    anyhow::ensure!(!wanted.is_empty(), "name the bodies to re-parse, or pass --all");
    wanted
        .iter()
        .map(|w| {
            let matching: Vec<&Item> = items.iter().filter(|i| id_of(i).starts_with(w.as_str())).collect();
            match matching.as_slice() {
                [one] => Ok(*one),
                [] => Err(anyhow::anyhow!("no quarantined body `{w}`")),
                _ => Err(anyhow::anyhow!(
                    "`{w}` names {} bodies: give more of the id",
                    matching.len()
                )),
            }
        })
        .collect()
}

async fn execute(command: QuarantineCommand) -> anyhow::Result<bool> {
    let prefix = match &command {
        QuarantineCommand::List(c)
        | QuarantineCommand::Show { common: c, .. }
        | QuarantineCommand::Reparse { common: c, .. } => c.prefix.clone(),
    };
    let stack = crate::stack::load(&prefix).await?;
    let table = stack.config.events_table.clone();
    let dynamo = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let items = quarantined(&dynamo, &table).await?;
    match command {
        QuarantineCommand::List(_) => {
            list(&items, &stack.sdk).await;
            Ok(true)
        }
        QuarantineCommand::Show { id, .. } => {
            let item = select(&items, &[id], false)?[0];
            eprintln!(
                "{}: {} {} /{} — {}",
                id_of(item),
                s(item, "provider"),
                s(item, "endpoint"),
                s(item, "route"),
                s(item, "reason")
            );
            std::io::stdout().write_all(&raw_of(item, &stack.sdk).await?)?;
            Ok(true)
        }
        QuarantineCommand::Reparse { ids, all, .. } => reparse_each(&stack, &dynamo, select(&items, &ids, all)?).await,
    }
}

/// One line per quarantined body: its id, when, who, where, its size and why.
async fn list(items: &[Item], sdk: &aws_config::SdkConfig) {
    let mut out = std::io::stdout().lock();
    for i in items {
        let when = chrono::DateTime::from_timestamp_millis(n(i, "received_at"))
            .map(wahooks::event::rfc3339_ms)
            .unwrap_or_default();
        let size = size_of(i, sdk).await;
        let line = format!(
            "{}  {when}  {} {}  /{}  {size}  {}",
            &id_of(i)[..16.min(id_of(i).len())],
            s(i, "provider"),
            s(i, "endpoint"),
            s(i, "route"),
            s(i, "reason")
        );
        if writeln!(out, "{line}").is_err() {
            break;
        }
    }
    if items.is_empty() {
        eprintln!("nothing in quarantine");
    }
}

/// Parse and store each of `items` again, removing from quarantine those whose events are all
/// stored; `Ok(false)` when one is still not stored.
async fn reparse_each(
    stack: &crate::stack::Stack,
    dynamo: &aws_sdk_dynamodb::Client,
    items: Vec<&Item>,
) -> anyhow::Result<bool> {
    let table = &stack.config.events_table;
    // With the bucket: a body that was too large for the table stays too large for it.
    let mut store = DynamoEventStore::new(dynamo.clone(), table, stack.config.retention_days);
    if let Some(bucket) = &stack.config.body_bucket {
        store = store.with_bucket(Arc::new(S3Bucket::new(s3_client(&stack.sdk), bucket)));
    }
    let mut clean = true;
    for item in items {
        let id = &id_of(item)[..16.min(id_of(item).len())];
        match reparse(&store, item, &stack.sdk).await {
            Ok((stored, duplicates)) => {
                dynamo
                    .delete_item()
                    .table_name(table)
                    .key("pk", item["pk"].clone())
                    .key("sk", item["sk"].clone())
                    .send()
                    .await
                    .context("removing it from quarantine")?;
                println!("{id}: {stored} event(s) stored, {duplicates} already stored; removed from quarantine");
            }
            Err(why) => {
                clean = false;
                println!("{id}: still not stored: {why}");
            }
        }
    }
    Ok(clean)
}

/// Parse a quarantined body as the receiver would have, and store its events.
async fn reparse(store: &DynamoEventStore, item: &Item, sdk: &aws_config::SdkConfig) -> Result<(usize, usize), String> {
    let provider: Provider = s(item, "provider").parse()?;
    let route: Option<Route> = s(item, "route").parse().ok();
    let raw = raw_of(item, sdk).await.map_err(|e| format!("{e:#}"))?;
    let received_at = chrono::DateTime::from_timestamp_millis(n(item, "received_at")).unwrap_or_else(chrono::Utc::now);
    let delivery = item.get("delivery_id").and_then(|v| v.as_s().ok()).cloned();
    let tenant = item.get("tenant").and_then(|v| v.as_s().ok()).cloned();
    let ctx = ParseContext {
        route,
        delivery_id: delivery.as_deref(),
        tenant: tenant.as_deref(),
        ..ParseContext::new(provider, s(item, "endpoint"), received_at)
    };
    let mut events =
        parse_verified(&ctx, &wahooks::auth::Verified::trusted(&raw)).map_err(|e| wahooks::error_chain(&e))?;
    resolve_state_ids(store, &mut events)
        .await
        .map_err(|e| wahooks::error_chain(&e))?;
    let outcomes = store
        .put_if_absent(&events)
        .await
        .map_err(|e| wahooks::error_chain(&e))?;
    let stored = outcomes.iter().filter(|o| **o == PutOutcome::Stored).count();
    Ok((stored, outcomes.len() - stored))
}
