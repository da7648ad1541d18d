//! The canonical wahooks event: one vocabulary for every provider, serialised as a CloudEvents
//! 1.0 structured-mode JSON document (field by field: `docs/events.md`).
//!
//! What the receivers write and every worker reads, and nothing else: the envelope and its data
//! ([`CloudEvent`], [`EventData`]), the vocabulary ([`Provider`], [`EventType`], the kinds and
//! statuses: each wire name written once), times ([`Time`]), and the stored item's codec
//! ([`item`]: how the events table and the claim-check bucket keep an event). A worker takes
//! this crate (through `wahooks-consumer`) without the receivers' pipeline.

pub mod bounded;
pub mod contact;
mod content;
pub mod item;
mod model;
mod time;
mod vocab;

pub use contact::{Alias, AliasKind, Aliased, Contact};
pub use content::*;
pub use model::*;
pub use time::*;
pub use vocab::*;

/// An error and its sources, `: `-separated, for a log line or a message to a person (errors
/// keep their cause as `source()`; this is where it is printed).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
