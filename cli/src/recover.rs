//! `wahooks recover`: re-publish what the stream mapping gave up on. Each message on the
//! on-failure queue (`stream-failures`) names a shard and a sequence range of the events
//! table's stream; the records of that range are read back from the stream (it keeps them
//! 24 hours) and published once each through the same fanout code, with the same event ids and
//! FIFO deduplication ids, and the failure message is deleted.
//!
//! A record that fails every retry keeps its failure message on the queue; `--skip` leaves it
//! out and `--park` sends it to the parked queue (the note the fanout writes for a record it
//! can never publish), so the rest of its range is published and the message deleted.

use std::process::ExitCode;

use wahooks::fanout::SqsPublisher;
use wahooks::recover::{RecoverOptions, SetAside};

/// Arguments of `wahooks recover`.
#[derive(clap::Args)]
pub struct RecoverArgs {
    /// The on-failure queue (default: `WAHOOKS_STREAM_FAILURES_URL`, else `<prefix>-stream-failures`).
    #[arg(long)]
    failures_url: Option<String>,
    /// Do not publish the stream record with this sequence number (repeatable); its failure
    /// record is deleted once the rest of its range is published.
    #[arg(long, value_name = "SEQUENCE_NUMBER", value_parser = sequence_number)]
    skip: Vec<String>,
    /// Park the stream record with this sequence number instead of publishing it (repeatable):
    /// a note with its pointer goes to the parked queue, as the fanout writes one.
    #[arg(long, value_name = "SEQUENCE_NUMBER", value_parser = sequence_number)]
    park: Vec<String>,
    /// The parked queue, for `--park` (default: `WAHOOKS_PARKED_URL`, else `<prefix>-parked`).
    #[arg(long)]
    parked_url: Option<String>,
    /// Name prefix of the queues and table when `WAHOOKS_*` variables are not set.
    #[arg(long, default_value = "wahooks")]
    prefix: String,
}

/// A stream sequence number: decimal digits, as the stream, the failure record and a parked
/// note print it.
fn sequence_number(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{s}` is not a stream sequence number (decimal digits)"));
    }
    Ok(s.to_owned())
}

/// Recover; exit 1 if a failure record could not be fully recovered (it stays on its queue), or
/// a sequence number given to `--skip`/`--park` was in no range.
pub async fn run(args: RecoverArgs) -> ExitCode {
    match recover(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn recover(args: RecoverArgs) -> anyhow::Result<bool> {
    let stack = crate::stack::load(&args.prefix).await?;
    let url = args
        .failures_url
        .or(stack.failures_url.clone())
        .ok_or_else(|| anyhow::anyhow!("no failures queue: pass --failures-url or set WAHOOKS_STREAM_FAILURES_URL"))?;
    let parked_url = args.parked_url.or(stack.config.parked_url.clone());
    anyhow::ensure!(
        args.park.is_empty() || parked_url.is_some(),
        "--park needs the parked queue: pass --parked-url or set WAHOOKS_PARKED_URL"
    );
    let options = RecoverOptions {
        skip: args.skip.into_iter().collect(),
        park: args.park.into_iter().collect(),
        parked_url,
    };
    let fanout = wahooks::lambda::with_bucket(
        wahooks::lambda::fanout_with(&stack.config, SqsPublisher::new(aws_sdk_sqs::Client::new(&stack.sdk))).await?,
        &stack.config,
        &stack.sdk,
    );
    // The work is `wahooks::recover`'s; the ranges are read by the shard id each failure record
    // names: Lambda's on a deployed stack, the local stream driver's on `make run`'s.
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let done = wahooks::recover::recover_with(
        &wahooks::recover::SqsFailureQueue::new(sqs.clone(), &url),
        &wahooks::stream_driver::LocalRanges::new(&stack.sdk),
        &SqsPublisher::new(sqs),
        &fanout,
        &options,
    )
    .await?;
    println!(
        "{} failure record(s): {} stream record(s) re-published as {} message(s)",
        done.batches, done.records, done.messages
    );
    let line = |r: &SetAside| format!("{} (event {}, {})", r.sequence_number, r.event_id, r.pk);
    for r in &done.skipped {
        println!("skipped: {}", line(r));
    }
    for r in &done.parked {
        println!(
            "parked: {} on {}",
            line(r),
            options.parked_url.as_deref().unwrap_or_default()
        );
    }
    for seq in &done.not_found {
        println!("not found: {seq} is in no range of the failure records read");
    }
    for left in &done.left {
        println!("left on the queue: {left}");
    }
    Ok(done.left.is_empty() && done.not_found.is_empty())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: super::RecoverArgs,
    }

    fn parse(args: &[&str]) -> Result<super::RecoverArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("recover").chain(args.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn skip_and_park_are_repeatable_sequence_numbers() {
        let a = parse(&[
            "--skip",
            "4900000000000000000001",
            "--skip",
            "17",
            "--park",
            "4900000000000000000002",
            "--parked-url",
            "http://q/parked",
        ])
        .expect("parsed");
        assert_eq!(a.skip, ["4900000000000000000001", "17"]);
        assert_eq!(a.park, ["4900000000000000000002"]);
        assert_eq!(a.parked_url.as_deref(), Some("http://q/parked"));
        let none = parse(&[]).expect("parsed");
        assert!(none.skip.is_empty() && none.park.is_empty() && none.parked_url.is_none());
    }

    #[test]
    fn a_value_that_is_not_a_sequence_number_is_refused() {
        for bad in ["", "abc", "12a", "-1", "E#0123"] {
            assert!(parse(&["--skip", bad]).is_err(), "{bad}");
            assert!(parse(&["--park", bad]).is_err(), "{bad}");
        }
    }
}
