//! wahooks: receive WhatsApp provider webhooks on AWS, store each event exactly once in
//! DynamoDB and fan it out through SQS.
//!
//! Where things live:
//! - [`event`]: the canonical event (CloudEvents 1.0);
//! - [`identity`]: event ids, the one place that decides when two deliveries are one event;
//! - [`providers`]: where each provider's payload is parsed (`zapi`, `hubmessage`, `wwa`, `meta`,
//!   `evolution`, `waha`);
//! - [`endpoint`]: endpoints, schemes and their (wrapped) secrets;
//! - [`auth`]: where a request is authenticated (every scheme, constant-time, clock injected);
//! - [`registry`]: where endpoints are looked up (hash of the URL token, cached);
//! - [`store`]: where an event is stored (DynamoDB conditional puts; the claim check that keeps
//!   each body once);
//! - [`bucket`]: the claim-check bucket (S3) for bodies too large for an item;
//! - [`sqs_rules`]: SQS's documented limits (ids, bodies, batches), enforced before every send;
//! - [`fanout`]: where an event is published (the stream → SQS outbox, routing, batching);
//! - [`http`]: the receiver pipeline and the one mapping of errors to statuses;
//! - [`keyring`]: signing keys at rest (sealed under KMS, opened once per container);
//! - [`social`]: AWS End User Messaging Social's SNS documents, read as Meta's webhook;
//! - [`timers`]: events made from time passing (conversation turns, silent instances): per-chat
//!   and per-instance state with conditional writes, timers on SQS delays;
//! - [`lambda`], [`config`]: wiring, environment;
//! - only with the `local` feature (the CLI and the tests; never in a Lambda): `local` (the
//!   local stack, the API Gateway event of an HTTP request), `stream_driver` (the stand-in for
//!   Lambda's stream event-source mapping), `schema` (provisioning from the template's
//!   definitions);
//! - [`bounded`]: a map and a set that forget their oldest entries.
//!
//! `docs/architecture.md` in the repository says what each module owns and why.

pub mod auth;
#[cfg(feature = "aws")]
pub mod bucket;
#[cfg(feature = "aws")]
pub mod config;
#[cfg(feature = "aws")]
pub mod contacts;
pub mod endpoint;
#[cfg(feature = "aws")]
pub mod fanout;
#[cfg(feature = "aws")]
pub mod http;
pub mod identity;
#[cfg(feature = "aws")]
pub mod keyring;
#[cfg(feature = "aws")]
pub mod lambda;
#[cfg(feature = "local")]
pub mod local;
#[cfg(feature = "aws")]
pub mod media;
pub mod metrics;
pub mod providers;
#[cfg(feature = "operator")]
pub mod recover;
#[cfg(feature = "aws")]
pub mod registry;
pub mod route;
#[cfg(feature = "local")]
pub mod schema;
#[cfg(feature = "aws")]
pub mod social;
pub mod sqs_rules;
#[cfg(feature = "aws")]
pub mod store;
#[cfg(feature = "local")]
pub mod stream_driver;
#[cfg(any(test, feature = "test-util"))]
pub mod testkit;
#[cfg(feature = "aws")]
pub mod timers;

/// The canonical event, its vocabulary, its times and the stored item's codec: the
/// `wahooks-event` crate, which workers take without the rest.
pub use wahooks_event as event;
pub use wahooks_event::{bounded, error_chain};

pub use event::{CloudEvent, EventType, Provider};
pub use route::Route;
