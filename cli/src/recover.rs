//! `wahooks recover`: re-publish what the stream mapping gave up on. Each message on the
//! on-failure queue (`stream-failures`) names a shard and a sequence range of the events
//! table's stream; the records of that range are read back from the stream (it keeps them
//! 24 hours) and published once each through the same fanout code, with the same event ids and
//! FIFO deduplication ids, and the failure message is deleted.

use std::process::ExitCode;

use wahooks::fanout::SqsPublisher;

/// Arguments of `wahooks recover`.
#[derive(clap::Args)]
pub struct RecoverArgs {
    /// The on-failure queue (default: `WAHOOKS_STREAM_FAILURES_URL`, else `<prefix>-stream-failures`).
    #[arg(long)]
    failures_url: Option<String>,
    /// Name prefix of the queues and table when `WAHOOKS_*` variables are not set.
    #[arg(long, default_value = "wahooks")]
    prefix: String,
}

/// Recover; exit 1 if a failure record could not be fully recovered (it stays on its queue).
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
    let fanout = wahooks::lambda::with_bucket(
        wahooks::lambda::fanout_with(&stack.config, SqsPublisher::new(aws_sdk_sqs::Client::new(&stack.sdk))).await?,
        &stack.config,
        &stack.sdk,
    );
    let done = wahooks::stream_driver::recover(&stack.sdk, &url, &fanout).await?;
    println!(
        "{} failure record(s): {} stream record(s) re-published as {} message(s)",
        done.batches, done.records, done.messages
    );
    for left in &done.left {
        println!("left on the queue: {left}");
    }
    Ok(done.left.is_empty())
}
