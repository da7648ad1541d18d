//! `wahooks tail`: print CloudEvents as they reach the queues, one JSON document per line (or
//! pretty). It is a consumer: what it prints is acknowledged (deleted) from the queue.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wahooks_consumer::{CloudEvent, Worker};

/// Arguments of `wahooks tail`.
#[derive(clap::Args)]
pub struct TailArgs {
    /// Queue names (messages, statuses, instance, presence, unrouted…); every queue by default.
    queues: Vec<String>,
    /// Pretty-print each event under a `queue · type · id` line.
    #[arg(long)]
    pretty: bool,
    /// Stop after this many events.
    #[arg(long)]
    count: Option<usize>,
    /// Stop when every queue is empty instead of waiting for more.
    #[arg(long)]
    once: bool,
    /// Name prefix of the queues to find when `WAHOOKS_QUEUE_*` is not set.
    #[arg(long, default_value = "wahooks")]
    prefix: String,
}

/// An event as `tail` prints it: one JSON line, or (`pretty`) a header naming its queue, then
/// the event indented.
fn shown(queue: &str, e: &CloudEvent, pretty: bool) -> String {
    if pretty {
        format!(
            "── {queue} · {} · {}\n{}",
            e.event_type,
            e.id,
            serde_json::to_string_pretty(e).unwrap_or_default()
        )
    } else {
        e.to_json()
    }
}

/// Run until Ctrl-C, `--count` events, or (`--once`) empty queues.
pub async fn run(args: TailArgs) -> ExitCode {
    let stack = match crate::stack::load(&args.prefix).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut queues = stack.config.queues.clone();
    if !args.queues.is_empty() {
        queues.retain(|(n, _)| args.queues.contains(n));
    }
    if queues.is_empty() {
        eprintln!("error: no queues found (is `make run` running? set AWS_ENDPOINT_URL, or WAHOOKS_QUEUE_<NAME>)");
        return ExitCode::FAILURE;
    }
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let printed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let out = Arc::new(Mutex::new(()));
    let mut tasks = Vec::new();
    for (name, url) in queues {
        let worker = Worker::new(sqs.clone(), url).wait(Duration::from_secs(if args.once { 0 } else { 2 }));
        let (printed, stop, out) = (printed.clone(), stop.clone(), out.clone());
        let (pretty, count, once) = (args.pretty, args.count, args.once);
        tasks.push(tokio::spawn(async move {
            let print = |e: CloudEvent| {
                let _guard = out.lock().unwrap_or_else(|p| p.into_inner());
                if stop.load(Ordering::SeqCst) {
                    // Enough printed: leave this one on the queue.
                    return std::future::ready(Err("stopping"));
                }
                if writeln!(std::io::stdout().lock(), "{}", shown(&name, &e, pretty)).is_err() {
                    // stdout closed (e.g. piped into `head`): stop, and leave this one on the queue.
                    stop.store(true, Ordering::SeqCst);
                    return std::future::ready(Err("stdout closed"));
                }
                let n = printed.fetch_add(1, Ordering::SeqCst) + 1;
                if count.is_some_and(|c| n >= c) {
                    stop.store(true, Ordering::SeqCst);
                }
                std::future::ready(Ok(()))
            };
            while !stop.load(Ordering::SeqCst) {
                match worker.poll_once(&print).await {
                    Ok(s) if s.received == 0 && once => return,
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("{name}: {}", aws_sdk_sqs::error::DisplayErrorContext(&e));
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }));
    }
    let all = futures::future::join_all(tasks);
    tokio::select! {
        _ = all => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    ExitCode::SUCCESS
}
