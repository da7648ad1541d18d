//! An example worker: long-polls one queue, logs each event once and acknowledges it.
//!
//! ```sh
//! AWS_ENDPOINT_URL=http://127.0.0.1:4566 cargo run -p wahooks-consumer --example worker -- <queue-url>
//! ```
//! The queue URL can also come from `WAHOOKS_QUEUE_URL`. Ctrl-C stops it.

use std::sync::Mutex;

use wahooks_consumer::{CloudEvent, RecentIds, Worker};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().json().without_time().init();
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("WAHOOKS_QUEUE_URL").ok())
        .ok_or("usage: worker <queue-url> (or set WAHOOKS_QUEUE_URL)")?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    // Events too large for the queue arrive as a pointer: the worker reads the whole event.
    let worker =
        Worker::new(aws_sdk_sqs::Client::new(&sdk), url).resolving_pointers(wahooks_consumer::Pointers::from_sdk(&sdk));
    let seen = Mutex::new(RecentIds::new(10_000));
    let handler = |event: CloudEvent| {
        let first = seen.lock().map(|mut s| s.first_time(event.dedup_key())).unwrap_or(true);
        async move {
            if first {
                // A conversation turn: a bot answers once, for all the messages of the burst.
                if let Some(turn) = &event.data.turn {
                    let ids: Vec<&str> = turn
                        .messages
                        .iter()
                        .map(|m| m.message_id.as_deref().unwrap_or(&m.event_id))
                        .collect();
                    tracing::info!(turn = turn.number, messages = ?ids, "turn");
                }
                // A silent (or resumed) instance: how long it may stay quiet.
                if let Some(silence) = &event.data.silence {
                    tracing::info!(window_seconds = silence.window_seconds, last = %silence.last_event_at, "silence");
                }
                tracing::info!(
                    id = %event.id,
                    r#type = %event.event_type,
                    subject = event.subject.as_deref().unwrap_or("-"),
                    instance = %event.instance,
                    "event"
                );
            } else {
                tracing::info!(id = %event.id, "duplicate, acknowledged without handling");
            }
            Ok::<(), std::convert::Infallible>(())
        }
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    worker.run(handler, shutdown).await;
    Ok(())
}
