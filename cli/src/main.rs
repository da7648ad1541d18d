//! `wahooks`: the command line of wahooks. Each subcommand lives in its own module.

mod parse;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Parse(args) => parse::run(args),
    }
}
