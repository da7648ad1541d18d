//! `wahooks`: the operators' command line (each subcommand in its own module of the library;
//! the developers' harnesses are `wahooks-dev`).

use wahooks_cli::{
    contact, endpoint, events, media, parse, publish, quarantine, recover, replay, send, serve, sign, tail,
};

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Receive WhatsApp provider webhooks on AWS: parse, sign, verify, manage endpoints, run locally.
#[derive(Parser)]
#[command(name = "wahooks", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse provider payloads into CloudEvents, one JSON document per line.
    Parse(parse::Args),
    /// Print the headers a provider would send with a body (one `Name: value` per line).
    Sign(sign::SignArgs),
    /// Check a body and its headers: prints `ok` (exit 0) or the reason (exit 1).
    Verify(sign::VerifyArgs),
    /// Run the whole system on this machine (what `make run` starts).
    Serve(serve::ServeArgs),
    /// POST payload files to a webhook URL as the provider would (signed when the scheme signs).
    Send(send::SendArgs),
    /// Publish Meta webhook files to an SNS topic as AWS End User Messaging Social does.
    PublishSns(publish::PublishArgs),
    /// Print events as they reach the queues (and acknowledge them).
    Tail(tail::TailArgs),
    /// A chat's timeline or a message's lifecycle from the events table.
    Events(events::EventsArgs),
    /// Who an alias (a phone, a LID, a Meta user id) is: the person's conversation key and
    /// every alias known.
    Contact(contact::ContactArgs),
    /// Re-publish stored events to their queues.
    Replay(replay::ReplayArgs),
    /// Re-publish the stream batches the mapping gave up on (the `stream-failures` queue).
    Recover(recover::RecoverArgs),
    /// The bodies the receivers could not decode or store: list, show, re-parse.
    #[command(subcommand)]
    Quarantine(quarantine::QuarantineCommand),
    /// The media archiver: archive files again once what made them fail is fixed.
    #[command(subcommand)]
    Media(media::MediaCommand),
    /// Manage endpoints (the URLs providers post to).
    #[command(subcommand)]
    Endpoint(endpoint::EndpointCommand),
    /// Print the JSON Schema of the events (what `schema/wahooks-event.schema.json` holds).
    Schema,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Endpoint(command) => endpoint::run(command).await,
        Command::Quarantine(command) => quarantine::run(command).await,
        Command::Media(command) => media::run(command).await,
        Command::Parse(args) => parse::run(args),
        Command::Schema => {
            // Serialising a `Value` cannot fail.
            println!(
                "{}",
                serde_json::to_string_pretty(&wahooks::event::json_schema()).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Command::Serve(args) => serve::run(args).await,
        Command::Send(args) => send::run(args).await,
        Command::PublishSns(args) => publish::run(args).await,
        Command::Tail(args) => tail::run(args).await,
        Command::Events(args) => events::run(args).await,
        Command::Contact(args) => contact::run(args).await,
        Command::Replay(args) => replay::run(args).await,
        Command::Recover(args) => recover::run(args).await,
        Command::Sign(args) => sign::run_sign(args),
        Command::Verify(args) => sign::run_verify(args),
    }
}
