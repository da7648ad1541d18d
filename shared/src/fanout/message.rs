//! From a stream record to a queue message: the stored event read back from its item, the
//! body for a queue (whole, or slimmed to a pointer when too large for it), the FIFO group (one
//! per chat) and the message's size as SQS counts it.

use std::collections::HashMap;

use serde_dynamo::AttributeValue;
use serde_json::Value;

use super::routing::Queue;
use crate::event::{CloudEvent, EventType, StoredItemPointer};
use crate::sqs_rules::{escape_body, GroupId};
use crate::store::{keys, stored_json_of_item};

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
    /// The event is kept in the bucket and the fanout cannot read it now (no bucket configured,
    /// or S3 unavailable): worth a retry, never a park.
    #[error("the event's object cannot be read now")]
    ObjectUnavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl RecordError {
    /// Whether a retry may read it (else no retry ever will: the record is parked).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            RecordError::ObjectUnavailable(_) | RecordError::BadBody(crate::store::ItemError::ObjectUnavailable(..))
        )
    }
}

/// An item's `body_object`, when its event is kept in the bucket.
pub(super) fn object_of_image(image: &HashMap<String, AttributeValue>) -> Option<&str> {
    match image.get("body_object") {
        Some(AttributeValue::S(uri)) => Some(uri),
        _ => None,
    }
}

/// An event item read back from a stream record: the event's JSON exactly as stored, the
/// typed event read from it (for routing, the FIFO group and the ids), and the item's keys
/// (for a pointer).
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// The JSON the receiver stored. What the queues carry: a field or a value a later wahooks
    /// wrote (during a deploy, or replayed by an older fanout) reaches the workers unchanged,
    /// where the typed event would have dropped the field and read the value as a catch-all.
    pub json: String,
    /// The event, as this version reads it.
    pub event: CloudEvent,
    /// The item's keys (the table is the fanout's).
    pub pointer: StoredItemPointer,
}

/// The stored event of a new event item (from a stream NEW_IMAGE), `data.raw` included, with
/// the item's keys. `None` for items that are not events (quarantine).
pub fn event_from_image(image: &HashMap<String, AttributeValue>) -> Result<Option<StoredEvent>, RecordError> {
    event_from_image_with(image, None)
}

/// [`event_from_image`], with the event's JSON already read from the bucket when the item keeps
/// it there (`body_object`).
pub fn event_from_image_with(
    image: &HashMap<String, AttributeValue>,
    object: Option<(String, CloudEvent)>,
) -> Result<Option<StoredEvent>, RecordError> {
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
    let (json, event) = match object {
        Some(read) => read,
        None => {
            let body = match image.get("body") {
                Some(AttributeValue::B(b)) => Some(b.as_slice()),
                _ => None,
            };
            stored_json_of_item(body)?
        }
    };
    Ok(Some(StoredEvent {
        json,
        event,
        pointer: StoredItemPointer {
            table: String::new(),
            pk,
            sk,
        },
    }))
}

/// The message body for `queue` of an event built in memory: the whole event, or, when that is
/// too large for the queue, the event without `data.raw` and with a pointer to its item (and,
/// if even that is too large, only the pointer and the ids a worker needs to fetch it).
/// SQS refuses some characters in a body; escaped, the JSON reads back the same.
pub fn body_for(event: &CloudEvent, queue: &Queue, pointer: &StoredItemPointer) -> String {
    let room = room_for(event, queue);
    let full = escape_body(event.to_json());
    if full.len() <= room {
        return full;
    }
    slim_event(event, room, pointer)
}

/// The message body for `queue` of a stored event, as [`body_for`] builds it but from the JSON
/// as stored: fields this version does not know are kept, slimmed or not.
pub fn body_for_stored(stored: &StoredEvent, queue: &Queue) -> String {
    let room = room_for(&stored.event, queue);
    let full = escape_body(stored.json.clone());
    if full.len() <= room {
        return full;
    }
    // The JSON was read as this event, so it is an object with a `data` object; the typed
    // event stays the fallback all the same (a body SQS refuses would block its shard).
    slim_json(&stored.json, room, &stored.pointer).unwrap_or_else(|| slim_event(&stored.event, room, &stored.pointer))
}

/// The bytes a body may take on `queue`, next to the event's attributes.
fn room_for(event: &CloudEvent, queue: &Queue) -> usize {
    queue
        .max_bytes
        .saturating_sub(attributes_size(&event.id, event.event_type))
}

/// The slim body, else the bare one, edited in the stored JSON.
fn slim_json(json: &str, room: usize, pointer: &StoredItemPointer) -> Option<String> {
    let mut doc: Value = serde_json::from_str(json).ok()?;
    let data = doc.get_mut("data")?.as_object_mut()?;
    data.remove("raw");
    data.insert("stored_item".to_owned(), serde_json::to_value(pointer).ok()?);
    let body = escape_body(doc.to_string());
    if body.len() <= room {
        return Some(body);
    }
    doc.get_mut("data")?
        .as_object_mut()?
        .retain(|k, _| k == "message_id" || k == "stored_item");
    // Still too large (an envelope a version before the bounded envelope stored): the typed
    // event's bounded forms below.
    Some(escape_body(doc.to_string())).filter(|body| body.len() <= room)
}

/// The slim body, else the bare one, built from the typed event.
fn slim_event(event: &CloudEvent, room: usize, pointer: &StoredItemPointer) -> String {
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
    let body = escape_body(bare.to_json());
    if body.len() <= room {
        return body;
    }
    // The least a worker needs to fetch the event, every provider string bounded: it fits any
    // queue whatever an item holds (a property test checks it).
    let bounded = |s: &str| crate::event::bounded_text(s).into_owned();
    bare.instance = bounded(&bare.instance);
    bare.source = format!("wahooks/{}/{}", bare.provider, bare.instance);
    bare.subject = bare.subject.as_deref().map(bounded);
    bare.id = bounded(&bare.id);
    bare.endpoint = bounded(&bare.endpoint);
    bare.dataschema = bounded(&bare.dataschema);
    bare.specversion = bounded(&bare.specversion);
    bare.datacontenttype = bounded(&bare.datacontenttype);
    bare.data.message_id = bare.data.message_id.as_deref().map(bounded);
    bare.data.stored_item = Some(StoredItemPointer {
        table: bounded(&pointer.table),
        pk: bounded(&pointer.pk),
        sk: bounded(&pointer.sk),
    });
    escape_body(bare.to_json())
}

/// The FIFO group of an event: one per chat of an instance, so each chat's events stay in
/// order (SQS FIFO orders messages within a group), valid whatever the chat id holds.
pub fn group_id(event: &CloudEvent) -> String {
    GroupId::for_chat(&event.instance, event.chat_key()).as_str().to_owned()
}

/// The message that parks a record no retry can publish: why, and where the event is (its item,
/// the stream record's sequence number, the queue that would refuse it), in a bounded body.
pub fn parked_message(
    record: &aws_lambda_events::event::dynamodb::EventRecord,
    table: &str,
    queue: Option<&str>,
    reason: &str,
) -> OutMessage {
    let key = |k: &str| match record.change.keys.inner().get(k) {
        Some(AttributeValue::S(s)) => crate::event::bounded_text(s).into_owned(),
        _ => String::new(),
    };
    let (pk, sk) = (key("pk"), key("sk"));
    let event_id = keys::event_id_of_sk(&sk).unwrap_or("-").to_owned();
    let mut reason = reason.to_owned();
    if reason.len() > 4096 {
        let mut end = 4096;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    let body = serde_json::json!({
        "parked": reason,
        "event_id": event_id,
        "queue": queue,
        "sequence_number": record.change.sequence_number.as_deref().map(crate::event::bounded_text),
        "stored_item": {"table": table, "pk": pk, "sk": sk},
    });
    OutMessage {
        entry_id: "p0".to_owned(),
        body: escape_body(body.to_string()),
        event_id: crate::event::bounded_text(&event_id).into_owned(),
        dedup_id: None,
        event_type: EventType::Unknown,
        group_id: None,
    }
}
