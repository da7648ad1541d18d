//! The `social` function: AWS End User Messaging Social's events, from the SQS queue subscribed
//! to its SNS topic → decoded → parsed as Meta's webhook → stored once (partial batch failures
//! reported, so only what could not be attributed or stored is retried).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    wahooks::lambda::run_social().await
}
