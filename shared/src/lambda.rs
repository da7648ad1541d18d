//! Lambda wiring shared by every receiver's `main.rs`: config, clients built once during init
//! (with the DynamoDB connection opened then), and the `lambda_http` loop.

use std::sync::Arc;

use lambda_http::{service_fn, Error, Request};

use crate::config::{aws_config, init_tracing, Config};
use crate::event::Route;
use crate::http::Receiver;
use crate::registry::{CachedRegistry, DynamoRegistry, CACHE_TTL};
use crate::store::DynamoEventStore;

/// Build the production receiver from the environment.
pub async fn receiver_from_env() -> Receiver {
    let config = Config::from_env();
    let sdk = aws_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let store = DynamoEventStore::new(dynamo.clone(), &config.events_table, config.retention_days);
    let registry = DynamoRegistry::new(dynamo, &config.endpoints_table);
    // Open the connection (DNS + TLS) during init, so the first request doesn't pay for it.
    store.warm_up().await;
    Receiver::new(Arc::new(CachedRegistry::new(registry, CACHE_TTL)), Arc::new(store))
}

/// Run a receiver Lambda for `route`.
pub async fn run_receiver(route: Route) -> Result<(), Error> {
    init_tracing();
    let receiver = receiver_from_env().await;
    lambda_http::run(service_fn(move |req: Request| {
        let receiver = receiver.clone();
        async move { Ok::<_, std::convert::Infallible>(receiver.handle(route, req).await) }
    }))
    .await
}
