//! wahooks: receive WhatsApp provider webhooks on AWS, store each event exactly once in
//! DynamoDB and fan it out through SQS.
//!
//! Where things live:
//! - [`event`]: the canonical event (CloudEvents 1.0) and event ids;
//! - [`providers`]: where each provider's payload is parsed (`zapi`, `hubmessage`, `wwa`, `meta`);
//! - [`endpoint`]: endpoints, schemes and their (wrapped) secrets;
//! - [`auth`]: where a request is authenticated (every scheme, constant-time, clock injected);

pub mod auth;
pub mod endpoint;
pub mod event;
pub mod providers;

pub use event::{CloudEvent, EventType, Provider, Route};
