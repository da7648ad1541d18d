//! From a stream record to a queue message: the stored event read back from its item, the
//! body for a queue (whole, or slimmed to a pointer when too large for it), the FIFO group (one
//! per chat) and the message's size as SQS counts it.

use std::collections::HashMap;

use serde_dynamo::AttributeValue;

use super::routing::Queue;
use crate::event::{CloudEvent, EventType, StoredItemPointer};
use crate::sqs_rules::{escape_body, GroupId};
use crate::store::{event_of_item, keys};

/// One message for a queue.
#[derive(Debug, Clone, PartialEq)]
pub struct OutMessage {
    /// The batch entry id (unique within a batch).
    pub entry_id: String,
    /// The CloudEvent JSON.
    pub body: String,
    /// The event id (the `id` attribute).
    pub event_id: String,
    /// FIFO only: the deduplication id (the event id; `<id>#<replay>` for a replay).
    pub dedup_id: Option<String>,
    /// The event type (the `type` attribute).
    pub event_type: EventType,
    /// FIFO only: `instance#chat`.
    pub group_id: Option<String>,
}

impl OutMessage {
    /// What SQS counts against `MaximumMessageSize`: the body plus each attribute's name, type
    /// and value.
    pub fn size(&self) -> usize {
        self.body.len() + attributes_size(&self.event_id, self.event_type)
    }
}

/// The bytes of a message's two attributes (`id`, `type`), as SQS counts them.
pub(crate) fn attributes_size(id: &str, t: EventType) -> usize {
    ("id".len() + "String".len() + id.len()) + ("type".len() + "String".len() + t.as_str().len())
}

/// Why a stream record could not be turned back into an event.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The item's `body` is missing or is not a compressed CloudEvent.
    #[error("the item's body is unreadable")]
    BadBody(#[from] crate::store::ItemError),
}

/// Rebuild the CloudEvent of a new event item (from a stream NEW_IMAGE): the stored event,
/// `data.raw` included, and the item's keys (for a pointer). `None` for items that are not
/// events (quarantine).
pub fn event_from_image(
    image: &HashMap<String, AttributeValue>,
) -> Result<Option<(CloudEvent, StoredItemPointer)>, RecordError> {
    let key = |k: &str| match image.get(k) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    };
    let (Some(pk), Some(sk)) = (key("pk"), key("sk")) else {
        return Ok(None);
    };
    if !keys::is_event_sk(&sk) {
        return Ok(None);
    }
    let body = match image.get("body") {
        Some(AttributeValue::B(b)) => Some(b.as_slice()),
        _ => None,
    };
    let event = event_of_item(body)?;
    Ok(Some((
        event,
        StoredItemPointer {
            table: String::new(),
            pk,
            sk,
        },
    )))
}

/// The message body for `queue`: the whole CloudEvent, or, when that is too large for the
/// queue, the event without `data.raw` and with a pointer to its item (and, if even that is
/// too large, only the pointer and the ids a worker needs to fetch it).
/// SQS refuses some characters in a body; escaped, the JSON reads back the same.
pub fn body_for(event: &CloudEvent, queue: &Queue, pointer: &StoredItemPointer) -> String {
    let room = queue
        .max_bytes
        .saturating_sub(attributes_size(&event.id, event.event_type));
    let full = escape_body(event.to_json());
    if full.len() <= room {
        return full;
    }
    let mut slim = event.clone();
    slim.data.raw = None;
    slim.data.stored_item = Some(pointer.clone());
    let body = escape_body(slim.to_json());
    if body.len() <= room {
        return body;
    }
    let mut bare = slim;
    bare.data = crate::event::EventData {
        message_id: event.data.message_id.clone(),
        stored_item: Some(pointer.clone()),
        ..Default::default()
    };
    escape_body(bare.to_json())
}

/// The FIFO group of an event: one per chat of an instance, so each chat's events stay in
/// order (SQS FIFO orders messages within a group), valid whatever the chat id holds.
pub fn group_id(event: &CloudEvent) -> String {
    GroupId::for_chat(&event.instance, event.chat_key()).as_str().to_owned()
}
