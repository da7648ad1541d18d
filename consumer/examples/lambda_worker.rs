//! An example Lambda worker with an SQS trigger ("Writing a worker" in `docs/workers.md`): failed
//! messages are reported in `batchItemFailures` (enable `ReportBatchItemFailures`).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};
use wahooks_consumer::{handle_sqs_event, CloudEvent};

async fn handle(event: CloudEvent) -> Result<(), String> {
    // event.dedup_key() is the id to dedupe on; event.data has the normalised fields.
    println!("{} {} {:?}", event.event_type, event.id, event.subject);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(|e: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, lambda_runtime::Error>(handle_sqs_event(e.payload, handle).await)
    }))
    .await
}
