//! `wahooks contact <alias>`: who a phone number, a LID or a Meta user id is, as the receivers
//! learned them: the person's conversation key (the `chat.key` of their events: one partition
//! and one FIFO group), every alias known, and the conversations found to be theirs.

use std::process::ExitCode;

use anyhow::Context;
use wahooks::event::{Alias, AliasKind, Aliased, Contact};
use wahooks::Provider;

/// Arguments of `wahooks contact`.
#[derive(clap::Args)]
pub struct ContactArgs {
    /// The alias: a phone number (`5511999999999`, `+55 11 99999-9999`, a JID), a LID
    /// (`…@lid`), a business-scoped user id (`US.…`, `US.ENT.…`), or `kind:value`.
    alias: String,
    /// The provider.
    #[arg(long)]
    provider: Provider,
    /// The provider's instance (Z-API `instanceId`, Meta's phone number id, the session…).
    #[arg(long)]
    instance: String,
    /// Print the contact as JSON.
    #[arg(long)]
    json: bool,
    /// Name prefix of the queues when `WAHOOKS_*` variables are not set (the endpoints table is
    /// `WAHOOKS_ENDPOINTS_TABLE`).
    #[arg(long, default_value = "wahooks")]
    prefix: String,
}

/// Run it: exit 0 with the contact, 1 when the alias was never seen or on an error.
pub async fn run(args: ContactArgs) -> ExitCode {
    match contact(&args).await {
        Ok(Some(contact)) => {
            print!("{}", shown(&contact, args.json));
            ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!(
                "{}: never seen on {} instance {}",
                args.alias, args.provider, args.instance
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn contact(args: &ContactArgs) -> anyhow::Result<Option<Contact>> {
    let alias = Alias::parse(&args.alias).with_context(|| {
        format!(
            "`{}` is not a phone number, a LID (…@lid) or a user id (US.…); usernames are not looked up",
            args.alias
        )
    })?;
    anyhow::ensure!(
        alias.kind != AliasKind::Username,
        "usernames are shown, never joined on: look up a phone, a LID or a user id"
    );
    let stack = crate::stack::load(&args.prefix).await?;
    let dynamo = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let table = &stack.config.endpoints_table;
    wahooks::event::contact::lookup(&dynamo, table, args.provider.as_str(), &args.instance, &alias)
        .await
        .map_err(|e| anyhow::anyhow!(e))
        .with_context(|| format!("reading {table}"))
}

/// The contact for a person (`key:` first), or as JSON.
fn shown(c: &Contact, json: bool) -> String {
    if json {
        return format!("{}\n", serde_json::to_string_pretty(c).unwrap_or_default());
    }
    let mut out = format!("key: {}\n", c.key);
    for kind in AliasKind::ALL {
        if let Some(v) = c.alias(kind) {
            out.push_str(&format!("{}: {v}\n", kind.as_str()));
        }
    }
    out.push_str(&format!("aliases: {}\n", c.aliases.join(" ")));
    if !c.merged.is_empty() {
        out.push_str(&format!("merged: {}\n", c.merged.join(" ")));
    }
    if let Some(first) = chrono::DateTime::from_timestamp_millis(c.first_seen_ms) {
        out.push_str(&format!("first seen: {}\n", wahooks::event::rfc3339_ms(first)));
    }
    out
}
