//! The `fanout` function: the events table's stream (NEW_IMAGE) → SQS queues by event type,
//! partial batch failures reported so only failed records are retried.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    wahooks::lambda::run_fanout().await
}
