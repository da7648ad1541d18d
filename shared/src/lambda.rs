//! Lambda wiring shared by every function's `main.rs`: config, clients built once during init
//! (with the DynamoDB connection opened then), the receivers' `lambda_http` loop and the
//! fanout's `lambda_runtime` loop.

use std::sync::Arc;

use lambda_http::{service_fn, Error, Request};

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use lambda_runtime::LambdaEvent;

use crate::bucket::{s3_client, S3Bucket};
use crate::config::{init_tracing, lambda_sdk_config_from_env, Config};
use crate::fanout::{Fanout, Queue, Routing, RoutingError, SqsPublisher};
use crate::http::Receiver;
use crate::keyring::KmsKeyring;
use crate::registry::{CachedRegistry, DynamoRegistry, CACHE_TTL};
use crate::route::Route;
use crate::store::DynamoEventStore;

/// Build the production receiver from the environment.
pub async fn receiver_from_env() -> Receiver {
    let config = Config::from_env();
    let sdk = lambda_sdk_config_from_env();
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let mut store = DynamoEventStore::new(dynamo.clone(), &config.events_table, config.retention_days);
    if let Some(bucket) = &config.body_bucket {
        store = store.with_bucket(Arc::new(S3Bucket::new(s3_client(&sdk), bucket)));
    }
    // Signing secrets are sealed under the secrets key: opened once per container.
    let keyring = KmsKeyring::new(aws_sdk_kms::Client::new(&sdk), config.secrets_key.clone());
    let registry = DynamoRegistry::new(dynamo, &config.endpoints_table).with_keyring(Arc::new(keyring));
    // Open the connection (DNS + TLS) during init, so the first request doesn't pay for it.
    registry.warm_up().await;
    Receiver::new(Arc::new(CachedRegistry::new(registry, CACHE_TTL)), Arc::new(store))
        .with_retention(config.retention_days)
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

/// Build the production fanout from the environment: one SQS client, each routed queue's
/// `MaximumMessageSize` read once (which proves the queue exists and the role may reach it),
/// the routing checked. A queue it cannot reach stops the function at init with what to fix,
/// instead of failing every batch.
pub async fn fanout_from_env() -> Result<Fanout, RoutingError> {
    let config = Config::from_env();
    let sdk = lambda_sdk_config_from_env();
    let publisher = SqsPublisher::new(aws_sdk_sqs::Client::new(&sdk));
    let fanout = with_bucket(fanout_with(&config, publisher).await?, &config, &sdk);
    Ok(with_timers(fanout, &config))
}

/// The fanout telling the configured timers queue (`WAHOOKS_TIMERS_URL`) of inbound messages and
/// traffic, and the media queue (`WAHOOKS_MEDIA_URL`) of messages with a media file.
pub fn with_timers(fanout: Fanout, config: &Config) -> Fanout {
    let fanout = match &config.timers_url {
        Some(url) => fanout.feeding_timers(url),
        None => fanout,
    };
    match &config.media.url {
        Some(url) => fanout.feeding_media(url),
        None => fanout,
    }
}

/// The fanout reading events kept in the configured bucket (`WAHOOKS_BODY_BUCKET`).
pub fn with_bucket(fanout: Fanout, config: &Config, sdk: &aws_config::SdkConfig) -> Fanout {
    match &config.body_bucket {
        Some(bucket) => fanout.reading_objects_from(Arc::new(S3Bucket::new(s3_client(sdk), bucket))),
        None => fanout,
    }
}

/// Build a fanout for `config` over `publisher` (the local stack and tests use this too).
pub async fn fanout_with(config: &Config, publisher: SqsPublisher) -> Result<Fanout, RoutingError> {
    let sizes = publisher.clone();
    fanout_through(config, &sizes, Arc::new(publisher)).await
}

/// Build a fanout for `config` that reads the queues' limits through `sqs` and sends through
/// `publisher` (the load harness wraps SQS in a fault injector).
pub async fn fanout_through(
    config: &Config,
    sqs: &SqsPublisher,
    publisher: Arc<dyn crate::fanout::Publisher>,
) -> Result<Fanout, RoutingError> {
    let overrides = Routing::parse_overrides(&config.routes)?;
    let routes = Routing::routes_with(&overrides);
    let mut queues = Vec::new();
    for (name, url) in &config.queues {
        let routed = routes.iter().any(|(_, q)| q == name) || name == "unrouted";
        let max = match sqs.max_message_size(url).await {
            Ok(max) => max,
            Err(detail) if routed => {
                return Err(RoutingError::Unreachable {
                    queue: name.clone(),
                    env: crate::fanout::queue_env_var(name),
                    cause: detail,
                })
            }
            // Not routed to: nothing is sent there, so nothing needs checking.
            Err(_) => 256 * 1024,
        };
        queues.push(Queue::new(name, url, max));
    }
    let routing = Routing::new(queues, &routes)?;
    let fanout = Fanout::new(routing, publisher, &config.events_table);
    Ok(match &config.parked_url {
        Some(url) => fanout.parking_to(url),
        None => fanout,
    })
}

/// Run the fanout Lambda (DynamoDB stream → SQS, partial batch failures reported).
pub async fn run_fanout() -> Result<(), Error> {
    init_tracing();
    let fanout = fanout_from_env().await.inspect_err(|e| {
        tracing::error!(error = %crate::error_chain(e), "the fanout cannot start");
    })?;
    lambda_runtime::run(lambda_runtime::service_fn(move |e: LambdaEvent<StreamEvent>| {
        let fanout = fanout.clone();
        async move {
            let (response, stats) = fanout.handle(&e.payload).await;
            tracing::info!(
                events = stats.events,
                messages = stats.messages,
                slimmed = stats.slimmed,
                ignored = stats.ignored,
                failed = stats.failed,
                "fanout batch"
            );
            Ok::<DynamoDbEventResponse, Error>(response)
        }
    }))
    .await
}

/// Build the End User Messaging Social handler from the environment: the receivers' pipeline
/// (the same registry, keyring and store), fed from the SNS topic's queue.
pub async fn social_from_env() -> crate::social::SocialHandler {
    let receiver = receiver_from_env().await;
    let registry = receiver.registry.clone();
    crate::social::SocialHandler::new(receiver, registry)
}

/// Run the End User Messaging Social Lambda (its SQS queue → the store, partial batch failures
/// reported).
pub async fn run_social() -> Result<(), Error> {
    init_tracing();
    let handler = social_from_env().await;
    run_sqs("social", handler, |h, event| async move { h.handle(event).await }).await
}

/// Run a Lambda fed by an SQS queue: each batch through `handle` (with a clone of `handler`),
/// its partial batch failures reported, and a log line per batch naming `what`.
async fn run_sqs<H, F, Fut>(what: &'static str, handler: H, handle: F) -> Result<(), Error>
where
    H: Clone + Send + Sync + 'static,
    F: Fn(H, SqsEvent) -> Fut + Copy + Send + Sync + 'static,
    Fut: std::future::Future<Output = SqsBatchResponse> + Send,
{
    lambda_runtime::run(lambda_runtime::service_fn(move |e: LambdaEvent<SqsEvent>| {
        let handler = handler.clone();
        async move {
            let received = e.payload.records.len();
            // Boxed: the handlers' futures are deep, and the runtime's nests them further.
            let response = Box::pin(handle(handler, e.payload)).await;
            tracing::info!(received, retried = response.batch_item_failures.len(), "{what} batch");
            Ok::<SqsBatchResponse, Error>(response)
        }
    }))
    .await
}

/// The `timers` handler for `config` over these clients, its timers sent to the queue at `url`
/// and the endpoints' windows read through `registry` (the local stack uses this too).
pub fn timers_with(
    config: &Config,
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    url: &str,
    registry: DynamoRegistry,
) -> crate::timers::TimersHandler {
    use crate::timers::{CachedTimings, DynamoTimerStore, SqsScheduler, TimersHandler};
    TimersHandler::new(
        Arc::new(DynamoTimerStore::new(
            dynamo,
            &config.events_table,
            config.retention_days,
        )),
        Arc::new(SqsScheduler::new(sqs, url)),
        Arc::new(CachedTimings::new(registry)),
    )
}

/// Run the `timers` Lambda (its SQS queue → turn, silence and resume events; partial batch
/// failures reported, so only the notes not handled come back).
pub async fn run_timers() -> Result<(), Error> {
    init_tracing();
    let config = Config::from_env();
    let Some(url) = config.timers_url.clone() else {
        tracing::error!("the timers function cannot start: WAHOOKS_TIMERS_URL is not set");
        return Err("WAHOOKS_TIMERS_URL is not set".into());
    };
    let sdk = lambda_sdk_config_from_env();
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    // Only the windows are read (the version record): no keyring, no secret.
    let registry = DynamoRegistry::new(dynamo.clone(), &config.endpoints_table);
    let handler = timers_with(&config, dynamo, aws_sdk_sqs::Client::new(&sdk), &url, registry);
    run_sqs("timers", handler, |h, event| async move { h.handle(event).await }).await
}

/// The media archiver for `config` over these clients, fetching under `policy` (the local stack
/// uses this too, with loopback allowed).
#[cfg(feature = "media")]
pub fn archiver_with(
    config: &Config,
    sdk: &aws_config::SdkConfig,
    policy: crate::media::fetch::FetchPolicy,
) -> Result<crate::media::Archiver, String> {
    let url = config.media.url.clone().ok_or("WAHOOKS_MEDIA_URL is not set")?;
    let bucket = config.body_bucket.clone().ok_or("WAHOOKS_BODY_BUCKET is not set")?;
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let s3 = s3_client(sdk);
    let store = DynamoEventStore::new(dynamo.clone(), &config.events_table, config.retention_days);
    let fetcher = crate::media::fetch::SafeFetcher::new(policy).map_err(|e| e.to_string())?;
    // Which files each endpoint archives, and the token it fetches them with (sealed, opened
    // with the secrets key as the receivers open signing keys): its version record, cached.
    let switches: Arc<dyn crate::media::MediaSwitches> = Arc::new(crate::media::CachedSwitches::new(
        DynamoRegistry::new(dynamo.clone(), &config.endpoints_table),
    ));
    let keyring = KmsKeyring::new(aws_sdk_kms::Client::new(sdk), config.secrets_key.clone());
    let tokens = crate::media::EndpointTokens::new(switches.clone(), Arc::new(keyring));
    let archiver = crate::media::Archiver::new(
        dynamo,
        &config.events_table,
        Arc::new(store),
        s3,
        bucket,
        fetcher,
        aws_sdk_sqs::Client::new(sdk),
        url,
    )
    .with_switches(switches)
    .with_credentials(Arc::new(tokens));
    Ok(match &config.media.graph_url {
        Some(g) => archiver.with_graph_url(g),
        None => archiver,
    })
}

/// Run the `media-archiver` Lambda (the media queue → files in S3, archived and failed events;
/// partial batch failures reported).
#[cfg(feature = "media")]
pub async fn run_media_archiver() -> Result<(), Error> {
    init_tracing();
    let config = Config::from_env();
    let mut hosts: Vec<String> = crate::media::DEFAULT_HOSTS.iter().map(|h| (*h).to_owned()).collect();
    hosts.extend(config.media.hosts.iter().cloned());
    let sdk = lambda_sdk_config_from_env();
    let archiver = archiver_with(&config, &sdk, crate::media::fetch::FetchPolicy::deployed(hosts)).map_err(|e| {
        tracing::error!(error = %e, "the media archiver cannot start");
        Error::from(e)
    })?;
    run_sqs("media", archiver, |a, event| async move { a.handle(event).await }).await
}
