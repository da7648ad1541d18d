//! wahooks: receive WhatsApp provider webhooks on AWS, store each event exactly once in
//! DynamoDB and fan it out through SQS.
//!
//! Where things live:
//! - [`event`]: the canonical event (CloudEvents 1.0);
//! - [`identity`]: event ids, the one place that decides when two deliveries are one event;
//! - [`providers`]: where each provider's payload is parsed (`zapi`, `hubmessage`, `wwa`, `meta`);
//! - [`endpoint`]: endpoints, schemes and their (wrapped) secrets;
//! - [`auth`]: where a request is authenticated (every scheme, constant-time, clock injected);
//! - [`registry`]: where endpoints are looked up (hash of the URL token, cached);
//! - [`store`]: where an event is stored (DynamoDB conditional puts);
//! - [`sqs_rules`]: SQS's documented limits (ids, bodies, batches), enforced before every send;
//! - [`fanout`]: where an event is published (the stream → SQS outbox, routing, batching);
//! - [`http`]: the receiver pipeline and the one mapping of errors to statuses;
//! - [`local`]: the local stack (provisioning, the API Gateway event of an HTTP request);
//! - [`stream_driver`]: the local stand-in for Lambda's stream event-source mapping;
//! - [`lambda`], [`config`], [`schema`]: wiring, environment, table definitions.

pub mod auth;
#[cfg(feature = "aws")]
pub mod config;
pub mod endpoint;
pub mod event;
#[cfg(feature = "aws")]
pub mod fanout;
#[cfg(feature = "aws")]
pub mod http;
pub mod identity;
#[cfg(feature = "aws")]
pub mod lambda;
#[cfg(feature = "aws")]
pub mod local;
pub mod providers;
#[cfg(feature = "aws")]
pub mod registry;
#[cfg(feature = "aws")]
pub mod schema;
pub mod sqs_rules;
#[cfg(feature = "aws")]
pub mod store;
#[cfg(feature = "aws")]
pub mod stream_driver;

pub use event::{CloudEvent, EventType, Provider, Route};
