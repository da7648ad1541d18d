//! The `timers` function: the timers queue (the fanout's notes of inbound messages and instance
//! traffic, and its own delayed timers) → conversation turns, silent and resumed instances,
//! stored once in the events table (partial batch failures reported).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    wahooks::lambda::run_timers().await
}
