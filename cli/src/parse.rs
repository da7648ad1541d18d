//! `wahooks parse`: provider payloads in, one CloudEvent per line out.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;
use wahooks::providers::{parse_verified, ParseContext};
use wahooks::{Provider, Route};

/// Arguments of `wahooks parse`.
#[derive(clap::Args)]
pub struct Args {
    /// The provider whose format the files are in: zapi, hubmessage, wwa, meta, evolution or waha.
    #[arg(long)]
    provider: Provider,
    /// The route the payload arrived on (a hint for shapes without a type field).
    #[arg(long)]
    route: Option<Route>,
    /// The endpoint id to put in the events.
    #[arg(long, default_value = "cli")]
    endpoint: String,
    /// Files to parse; `-` reads standard input.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Parse every file; a bad file is reported on stderr and makes the exit code 1, the others
/// are still printed.
pub fn run(args: Args) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failed = false;
    for file in &args.files {
        let name = file.display().to_string();
        let bytes = match read(file) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{name}: cannot read: {e}");
                failed = true;
                continue;
            }
        };
        let mut ctx = ParseContext::new(args.provider, &args.endpoint, Utc::now());
        ctx.route = args.route;
        match parse_verified(&ctx, &wahooks::auth::Verified::trusted(&bytes)) {
            Ok(events) => {
                for event in events {
                    if writeln!(out, "{}", event.to_json()).is_err() {
                        // stdout closed (e.g. piped into `head`): nothing more to do.
                        return ExitCode::SUCCESS;
                    }
                }
            }
            Err(e) => {
                eprintln!("{name}: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn read(file: &PathBuf) -> std::io::Result<Vec<u8>> {
    if file.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(file)
    }
}
