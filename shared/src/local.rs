//! The local stack's building blocks, shared by `wahooks serve` (`make run`) and the tests:
//! provisioning the tables and queues in the local stand-in from the same definitions as
//! `infra/`, wiring the production receiver and fanout to them, and turning an HTTP request
//! into the API Gateway HTTP API (v2) event a receiver Lambda gets.

use std::sync::Arc;

use base64::Engine;
use lambda_http::Request;

use crate::bucket::{s3_client, S3Bucket};
use crate::config::Config;
use crate::fanout::{Fanout, SqsPublisher};
use crate::http::Receiver;
use crate::keyring::KmsKeyring;
use crate::registry::DynamoRegistry;
use crate::schema::{
    create_bucket, create_endpoints_table, create_events_table, create_failures_queue, create_parked_queue,
    create_queues, create_secrets_key, create_social_queue, create_timers_queue, local_bucket_name,
};
use crate::social::SocialHandler;
use crate::store::DynamoEventStore;
use crate::stream_driver::StreamDriver;
use crate::timers::TimersHandler;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};

/// Errors while provisioning (the stand-in is down, a definition is refused).
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The production receiver and fanout over tables and queues in one AWS endpoint.
#[derive(Clone)]
pub struct LocalStack {
    /// The SDK configuration (pointed at the stand-in).
    pub sdk: aws_config::SdkConfig,
    /// Table names, queue URLs, retention, routing.
    pub config: Config,
    /// DynamoDB client.
    pub dynamo: aws_sdk_dynamodb::Client,
    /// SQS client.
    pub sqs: aws_sdk_sqs::Client,
    /// The endpoints table (create demo endpoints with it).
    pub registry: DynamoRegistry,
    /// The receiver every route is served by.
    pub receiver: Receiver,
    /// The fanout handler the stream driver calls.
    pub fanout: Fanout,
    /// The stream mapping's on-failure destination (`<prefix>-stream-failures`), when provisioned.
    pub failures_url: Option<String>,
    /// The queue End User Messaging Social's topic delivers to (`<prefix>-social`), when
    /// provisioned; [`LocalStack::drain_social`] plays the `social` function's event source.
    pub social_url: Option<String>,
    /// The `social` function's handler over this stack's receiver.
    pub social: SocialHandler,
    /// The `timers` function's handler, when the stack has a timers queue
    /// ([`Config::timers_url`]); [`LocalStack::drain_timers`] plays its event source.
    pub timers: Option<TimersHandler>,
    /// The `media-archiver` function's handler, when the stack has a media queue and a bucket,
    /// fetching under the local policy (loopback and plain http allowed: the tests' and the
    /// demo's stand-ins for the providers' CDNs); [`LocalStack::drain_media`] plays its event
    /// source.
    pub media: Option<crate::media::Archiver>,
}

impl LocalStack {
    /// Create the tables (unless they exist) and the default queues named
    /// `<queue_prefix>-<name>`, then wire the receiver and fanout to them. Safe to run twice.
    pub async fn provision(sdk: aws_config::SdkConfig, mut config: Config, queue_prefix: &str) -> Result<Self, Error> {
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        for (table, create) in [(&config.events_table, true), (&config.endpoints_table, false)] {
            let exists = dynamo.describe_table().table_name(table).send().await.is_ok();
            if !exists {
                if create {
                    create_events_table(&dynamo, table).await?;
                } else {
                    create_endpoints_table(&dynamo, table).await?;
                }
            }
        }
        let mut queues = create_queues(&sqs, queue_prefix).await?;
        // Extra queues already configured (WAHOOKS_QUEUE_*) keep their URLs.
        for (name, url) in std::mem::take(&mut config.queues) {
            queues.retain(|(n, _)| n != &name);
            queues.push((name, url));
        }
        config.queues = queues;
        let failures_url = create_failures_queue(&sqs, queue_prefix).await?;
        if config.parked_url.is_none() {
            config.parked_url = Some(create_parked_queue(&sqs, queue_prefix).await?);
        }
        if config.secrets_key.is_none() {
            let kms = aws_sdk_kms::Client::new(&sdk);
            config.secrets_key = Some(create_secrets_key(&kms, queue_prefix).await?);
        }
        if config.body_bucket.is_none() {
            let bucket = local_bucket_name(queue_prefix);
            create_bucket(&crate::bucket::s3_client(&sdk), &bucket).await?;
            config.body_bucket = Some(bucket);
        }
        let social_url = create_social_queue(&sqs, queue_prefix).await?;
        if config.timers_url.is_none() {
            config.timers_url = Some(create_timers_queue(&sqs, queue_prefix).await?);
        }
        if config.media.url.is_none() {
            config.media.url = Some(crate::schema::create_media_queue(&sqs, queue_prefix).await?);
        }
        let mut stack = Self::connect(sdk, config).await?;
        stack.failures_url = Some(failures_url);
        stack.social_url = Some(social_url);
        Ok(stack)
    }

    /// Wire the receiver and fanout to tables and queues that already exist.
    pub async fn connect(sdk: aws_config::SdkConfig, config: Config) -> Result<Self, Error> {
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let keyring = KmsKeyring::new(aws_sdk_kms::Client::new(&sdk), config.secrets_key.clone());
        let registry = DynamoRegistry::new(dynamo.clone(), &config.endpoints_table).with_keyring(Arc::new(keyring));
        let mut store = DynamoEventStore::new(dynamo.clone(), &config.events_table, config.retention_days);
        if let Some(bucket) = &config.body_bucket {
            store = store.with_bucket(Arc::new(S3Bucket::new(s3_client(&sdk), bucket)));
        }
        let receiver = Receiver::new(Arc::new(registry.clone()), Arc::new(store));
        let social = SocialHandler::new(receiver.clone(), Arc::new(registry.clone()));
        let fanout = crate::lambda::fanout_with(&config, SqsPublisher::new(sqs.clone())).await?;
        let fanout = crate::lambda::with_bucket(fanout, &config, &sdk);
        let fanout = crate::lambda::with_timers(fanout, &config);
        let timers = config
            .timers_url
            .as_ref()
            .map(|url| crate::lambda::timers_with(&config, dynamo.clone(), sqs.clone(), url, registry.clone()));
        let media = match (&config.media.url, &config.body_bucket) {
            (Some(_), Some(_)) => Some(crate::lambda::archiver_with(
                &config,
                &sdk,
                crate::media::fetch::FetchPolicy::local(),
            )?),
            _ => None,
        };
        Ok(LocalStack {
            sdk,
            config,
            dynamo,
            sqs,
            registry,
            receiver,
            fanout,
            failures_url: None,
            social_url: None,
            social,
            timers,
            media,
        })
    }

    /// Take what the social queue holds, as the `social` function's event source does (see
    /// [`LocalStack::drain`]). How many were done with.
    pub async fn drain_social(&self) -> Result<usize, Error> {
        let Some(url) = &self.social_url else {
            return Ok(0);
        };
        self.drain(url, |event| self.social.handle(event)).await
    }

    /// Take what the timers queue holds now (a delayed timer waits for its time, as in AWS), as
    /// the `timers` function's event source does. How many notes were done with.
    pub async fn drain_timers(&self) -> Result<usize, Error> {
        let (Some(url), Some(timers)) = (&self.config.timers_url, &self.timers) else {
            return Ok(0);
        };
        self.drain(url, |event| timers.handle(event)).await
    }

    /// Take what the media queue holds now (a delayed retry waits for its time), as the
    /// `media-archiver` function's event source does. How many notes were done with.
    pub async fn drain_media(&self) -> Result<usize, Error> {
        let (Some(url), Some(media)) = (&self.config.media.url, &self.media) else {
            return Ok(0);
        };
        self.drain(url, |event| media.handle(event)).await
    }

    /// Play an SQS event source over the queue at `url`: batches of up to 10 to `handle`, each
    /// message it is done with deleted, the others left to come back after the visibility
    /// timeout (and to the DLQ in AWS). How many were done with.
    pub async fn drain<F, Fut>(&self, url: &str, handle: F) -> Result<usize, Error>
    where
        F: Fn(SqsEvent) -> Fut,
        Fut: std::future::Future<Output = aws_lambda_events::event::sqs::SqsBatchResponse>,
    {
        let mut done = 0;
        loop {
            let got = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .send()
                .await?;
            if got.messages().is_empty() {
                return Ok(done);
            }
            let mut event = SqsEvent::default();
            event.records = got
                .messages()
                .iter()
                .map(|m| {
                    let mut record = SqsMessage::default();
                    record.message_id = m.message_id().map(str::to_owned);
                    record.receipt_handle = m.receipt_handle().map(str::to_owned);
                    record.body = m.body().map(str::to_owned);
                    record
                })
                .collect();
            let response = handle(event.clone()).await;
            let retried: Vec<&str> = response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect();
            for m in &event.records {
                if retried.contains(&m.message_id.as_deref().unwrap_or_default()) {
                    continue;
                }
                if let Some(handle) = &m.receipt_handle {
                    self.sqs
                        .delete_message()
                        .queue_url(url)
                        .receipt_handle(handle)
                        .send()
                        .await?;
                    done += 1;
                }
            }
            if !retried.is_empty() {
                // What is left waits for its visibility timeout, as in AWS.
                return Ok(done);
            }
        }
    }

    /// A stream driver over the events table with the deployed mapping settings, its failures
    /// going to [`LocalStack::failures_url`].
    pub fn stream_driver(&self) -> StreamDriver {
        let driver = StreamDriver::new(&self.sdk, &self.config.events_table);
        match &self.failures_url {
            Some(url) => driver.on_failure(url),
            None => driver,
        }
    }

    /// A new endpoint of `provider` trusting its URL token alone (what the demos, the harnesses
    /// and the tests post to); returns the token.
    pub async fn url_token_endpoint(
        &self,
        provider: crate::Provider,
    ) -> Result<String, crate::registry::RegistryError> {
        let token = crate::registry::new_token();
        let endpoint = crate::registry::new_endpoint(provider, crate::endpoint::Auth::url_token());
        self.registry.create(&token, &endpoint).await?;
        Ok(token)
    }

    /// The URL of a queue by name.
    pub fn queue_url(&self, name: &str) -> Option<&str> {
        self.config
            .queues
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, u)| u.as_str())
    }
}

/// An HTTP request as the API Gateway HTTP API (payload 2.0) event Lambda receives, turned
/// into a `Request` by the same `lambda_http` code. As API Gateway does, the body is passed as
/// text for text content types (`text/*`, `application/json`, `…+json`, `application/xml`,
/// `application/javascript`) that are UTF-8, and base64-encoded otherwise (gzip, no content
/// type, binary), so any bytes survive; repeated headers are joined with commas.
pub fn apigw_request(method: &str, path: &str, query: &str, headers: &[(String, String)], body: &[u8]) -> Request {
    apigw_request_encoded(method, path, query, headers, body, !sent_as_text(headers, body))
}

/// Whether API Gateway passes this body as text (`isBase64Encoded: false`).
pub fn sent_as_text(headers: &[(String, String)], body: &[u8]) -> bool {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    let encoded = header("content-encoding").is_some_and(|e| !e.trim().is_empty() && e.trim() != "identity");
    let textual = header("content-type").is_some_and(|t| {
        let t = t.split(';').next().unwrap_or_default().trim().to_owned();
        t.starts_with("text/")
            || t == "application/json"
            || t.ends_with("+json")
            || t == "application/xml"
            || t == "application/javascript"
    });
    textual && !encoded && std::str::from_utf8(body).is_ok()
}

/// [`apigw_request`] with the choice of a plain (`isBase64Encoded: false`) body, which must
/// then be UTF-8 (it is replaced lossily otherwise).
pub fn apigw_request_encoded(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
    base64: bool,
) -> Request {
    let mut h = serde_json::Map::new();
    for (k, v) in headers {
        let k = k.to_ascii_lowercase();
        // API Gateway joins repeated headers with a comma.
        let joined = match h.get(&k).and_then(|old| old.as_str()) {
            Some(old) => format!("{old},{v}"),
            None => v.clone(),
        };
        h.insert(k, serde_json::Value::String(joined));
    }
    let mut qs = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        qs.insert(k.to_owned(), serde_json::Value::String(v.to_owned()));
    }
    let body_field = if base64 {
        base64::engine::general_purpose::STANDARD.encode(body)
    } else {
        String::from_utf8_lossy(body).into_owned()
    };
    let event = serde_json::json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": h,
        "queryStringParameters": qs,
        "requestContext": {
            "accountId": "000000000000", "apiId": "local", "domainName": "localhost", "domainPrefix": "localhost",
            "requestId": "local", "routeKey": "$default", "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 0,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "wahooks"}
        },
        "isBase64Encoded": base64,
        "body": body_field,
    });
    // The event is built above from valid parts (valid base64, a JSON object).
    lambda_http::request::from_str(&event.to_string()).unwrap_or_else(|_| Request::default())
}
