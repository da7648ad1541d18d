//! `wahooks-dev`: the developers' harnesses, kept out of the operators' `wahooks` binary. Each
//! runs its own local stack (the simulation, its models): `make load`, `make cost`,
//! `make coldstart` and `make sim` call it.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wahooks_cli::{coldstart, cost, load, sim};

/// The load, cost and cold-start harnesses of wahooks (developers' tools; see docs/performance.md
/// and docs/guarantees.md).
#[derive(Parser)]
#[command(name = "wahooks-dev", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The load and fault harness: its own local stack, N deliveries, a lost/doubled report.
    Load(load::LoadArgs),
    /// What a million events cost, measured on the local stack (the table of `docs/performance.md`).
    Cost(cost::CostArgs),
    /// A receiver bootstrap's cold start, measured against a local Lambda Runtime API.
    Coldstart(coldstart::ColdstartArgs),
    /// The seeded simulation: the whole pipeline against models of AWS, N deliveries, faults.
    Sim(sim::SimArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Load(args) => load::run(args).await,
        Command::Cost(args) => cost::run(args).await,
        Command::Coldstart(args) => coldstart::run(args).await,
        Command::Sim(args) => sim::run(args).await,
    }
}
