//! The event's model: the envelope (`CloudEvent`) and its data.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::{Chat, Content, EventType, MessageStatus, Provider, Sender, Time};

/// An error the provider reported (failed sends, disconnections).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct EventError {
    /// The provider's error code, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The provider's message.
    pub message: String,
}

/// The normalised facts of an event plus the provider's JSON (`raw`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct EventData {
    /// The WhatsApp message id this event is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<Chat>,
    /// The sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<Sender>,
    /// Whether the connected number sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_me: Option<bool>,
    /// The content of a message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// The message this one replies to, reacts to, votes on or pins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// The state of a sent message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<MessageStatus>,
    /// Where the status stands in a message's life (pending 0, sent 1, delivered 2, read 3,
    /// played 4, failed and deleted 5): keep the highest when statuses arrive out of order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_rank: Option<u8>,
    /// In groups: who acted (sent, read, played).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<String>,
    /// Presence in lower case: available, unavailable, composing, paused, recording (the
    /// provider's word, lower-cased: new values may appear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "json-schema", schemars(schema_with = "presence_schema"))]
    pub presence: Option<String>,
    /// The notification's name, e.g. `REVOKE`, `GROUP_PARTICIPANT_ADD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<String>,
    /// The notification's parameters, as the provider sent them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// An error reported by the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<EventError>,
    /// The provider's JSON, untouched (insignificant whitespace removed, nothing else).
    /// Absent when it is stored once for several events or is too large to travel with the event
    /// (then `raw_pointer` says where it is), or when a queue message was too large to carry it
    /// (then `stored_item` points at the whole event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "json-schema", schemars(with = "Option<serde_json::Value>"))]
    pub raw: Option<Arc<RawValue>>,
    /// Where `raw` is kept when the event does not carry it: a webhook's body is stored once,
    /// whatever the number of events it holds, and a body too large for a DynamoDB item is kept
    /// in S3 (docs/events.md, `raw`). Since schema 1.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_pointer: Option<RawPointer>,
    /// Where the full event is stored, when `raw` was left out to fit a queue message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_item: Option<StoredItemPointer>,
    /// A conversation turn's messages (`whatsapp.conversation.turn`). Since schema 1.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<Turn>,
    /// An instance's silence (`whatsapp.instance.silent`, `whatsapp.instance.resumed`). Since
    /// schema 1.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence: Option<Silence>,
    /// A message's media file, archived or not (`whatsapp.media.archived`,
    /// `whatsapp.media.failed`). Since schema 1.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaFile>,
}

/// Where a message's media file is kept, or why it could not be (docs/events.md, "Media").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct MediaFile {
    /// The message's event id (the `whatsapp.message.received` or `.sent` it belongs to).
    pub event_id: String,
    /// The WhatsApp message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The S3 bucket holding the file (archived).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The object's key (archived): `media/<event id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Its size in bytes (archived).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Its content type, as the provider served it or named it (archived).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// SHA-256 of the file, 64 hex digits (archived).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Why it could not be archived (failed): e.g. `expired` (the provider answered 404, 403 or
    /// 410), `too_large`, `not_allowed` (a host off the allow-list, a private address),
    /// `checksum` (Meta's `sha256` did not match), `unavailable` (retries exhausted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What went wrong, in words (failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// How many times it was tried.
    pub attempts: u32,
}

/// The inbound messages of one burst in a chat, once the chat has been quiet for the endpoint's
/// window: what a bot answers once (docs/events.md, "Turns").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct Turn {
    /// The chat's turns so far, this one included (1 for the first).
    pub number: u64,
    /// How long the chat was quiet before the turn closed, in milliseconds (the endpoint's window).
    pub window_ms: u64,
    /// The turn's messages, in the order they were sent (their `time`, then arrival).
    pub messages: Vec<TurnMessage>,
}

/// One message of a turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct TurnMessage {
    /// The message's event id (the `whatsapp.message.received` published before this turn).
    pub event_id: String,
    /// The WhatsApp message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The message's time.
    pub time: Time,
    /// Its text (or caption), when it has one: at most 4,096 bytes, cut at a character boundary
    /// (`text_truncated` then says so; the message's own event has it whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Set when `text` was cut.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub text_truncated: bool,
}

/// An instance gone silent, or back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct Silence {
    /// When the instance's last event before the silence was received.
    pub last_event_at: Time,
    /// The window that was exceeded, in seconds.
    pub window_seconds: u64,
    /// Whether the window was derived from the instance's own traffic (not set on its endpoint).
    pub window_derived: bool,
    /// When the silence was declared (on `whatsapp.instance.resumed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_since: Option<Time>,
}

impl EventData {
    /// Empty data around `raw`.
    pub fn new(raw: Arc<RawValue>) -> Self {
        EventData {
            message_id: None,
            chat: None,
            sender: None,
            from_me: None,
            content: None,
            reply_to: None,
            status: None,
            status_rank: None,
            participant: None,
            presence: None,
            notification: None,
            parameters: None,
            error: None,
            raw: Some(raw),
            raw_pointer: None,
            stored_item: None,
            turn: None,
            silence: None,
            media: None,
        }
    }
}

/// Where an event's `raw` is kept when the event does not carry it: in a body item of the
/// events table (`table`, `pk`, `sk`; its `body` attribute is the JSON, zstd-compressed) or in an
/// S3 object (`bucket`, `key`; the object is the JSON as is). Either way the text is exactly what
/// `data.raw` would hold: check it against `sha256` before use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct RawPointer {
    /// SHA-256 of the raw JSON text (64 hex digits): the body's name wherever it is kept.
    #[cfg_attr(feature = "json-schema", schemars(regex(pattern = "^[0-9a-f]{64}$")))]
    pub sha256: String,
    /// Its length in bytes.
    pub bytes: u64,
    /// The events table, when the body is a body item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// The body item's partition key (`B#<sha256>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pk: Option<String>,
    /// The body item's sort key (`B`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sk: Option<String>,
    /// The S3 bucket, when the body is an object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The object's key (`bodies/<sha256>.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Where an event lives in DynamoDB (sent instead of `raw` when a queue message would be too big).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct StoredItemPointer {
    /// The events table.
    pub table: String,
    /// The item's partition key.
    pub pk: String,
    /// The item's sort key.
    pub sk: String,
}

/// The URI of the schema events of this version follow (`dataschema`): `schema/wahooks-event.schema.json`'s
/// `$id`. Its last part is the schema's `major.minor` version.
pub const DATASCHEMA: &str = "urn:wahooks:schema:event:1.3";

/// One canonical event, serialised as a CloudEvents 1.0 structured JSON document.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct CloudEvent {
    /// Always `1.0` (the CloudEvents version).
    #[cfg_attr(feature = "json-schema", schemars(extend("const" = "1.0")))]
    pub specversion: String,
    /// The event id: 32 hex digits, the same for every delivery of the same event (dedupe on it).
    #[cfg_attr(feature = "json-schema", schemars(regex(pattern = "^[0-9a-f]{32}$")))]
    pub id: String,
    /// `wahooks/<provider>/<instance>`.
    pub source: String,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The chat id, verbatim from the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// When it happened: the provider's time where it has one, else when we received it.
    pub time: Time,
    /// Always `application/json`.
    #[cfg_attr(feature = "json-schema", schemars(extend("const" = "application/json")))]
    pub datacontenttype: String,
    /// The URI of the schema this event follows, whose last part is the schema's version
    /// (a minor version only adds; see the compatibility policy of docs/events.md). Empty in events
    /// stored before wahooks set it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dataschema: String,
    /// Extension: the provider.
    pub provider: Provider,
    /// Extension: the provider's instance (Z-API `instanceId`, Meta phone number id…).
    pub instance: String,
    /// Extension: the wahooks endpoint that received it.
    pub endpoint: String,
    /// Extension: when wahooks received it.
    pub receivedat: Time,
    /// The normalised fields and the raw provider JSON.
    pub data: EventData,
    /// For state events without an id or a time of their own (presence, some connection
    /// events): the state they report. Their id is fixed when they are stored, from how many
    /// times this state has changed (`wahooks::identity::state_event_id`). Not serialised.
    #[serde(skip)]
    pub state: Option<StateChange>,
    /// The natural key the receiver hashed into `id` (`wahooks::identity`), kept so the id can
    /// be hashed again over the chat's conversation key. Not serialised.
    #[serde(skip)]
    pub natural_key: Option<String>,
}

/// The state a state event reports, and which of its scope's states it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// Which state of the chat (or instance): `presence`, `connection`.
    pub kind: &'static str,
    /// Its value, e.g. `composing`, `connected`.
    pub value: String,
}

impl CloudEvent {
    /// Build an event; `id` is computed by the caller from the natural key.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        provider: Provider,
        instance: &str,
        event_type: EventType,
        subject: Option<String>,
        time: DateTime<Utc>,
        endpoint: &str,
        received_at: DateTime<Utc>,
        mut data: EventData,
    ) -> Self {
        data.status_rank = data.status.map(MessageStatus::rank);
        // Provider strings that reach the envelope, the keys or the FIFO group are bounded (the
        // originals stay in `raw`): a queue message without `raw` then always fits its queue.
        let instance = bounded_text(instance);
        let subject = subject.map(bounded_owned);
        data.message_id = data.message_id.map(bounded_owned);
        if let Some(chat) = data.chat.as_mut() {
            chat.id = bounded_owned(std::mem::take(&mut chat.id));
        }
        CloudEvent {
            specversion: "1.0".to_owned(),
            id,
            source: format!("wahooks/{provider}/{instance}"),
            event_type,
            subject,
            time: Time::from(time),
            datacontenttype: "application/json".to_owned(),
            dataschema: DATASCHEMA.to_owned(),
            provider,
            instance: instance.into_owned(),
            endpoint: endpoint.to_owned(),
            receivedat: Time::from(received_at),
            data,
            state: None,
            natural_key: None,
        }
    }

    /// This event as a state event reporting `value` of `kind` (its id is then provisional
    /// until it is stored).
    pub fn with_state(mut self, kind: &'static str, value: impl Into<String>) -> Self {
        self.state = Some(StateChange {
            kind,
            value: value.into(),
        });
        self
    }

    /// The event time in epoch milliseconds (for sort keys).
    pub fn time_ms(&self) -> i64 {
        self.time.millis()
    }

    /// The chat id used to partition, group and order this event: the chat's conversation key
    /// (`data.chat.key`: one per person whichever alias the body used), else `subject`, else `-`.
    pub fn chat_key(&self) -> &str {
        self.data
            .chat
            .as_ref()
            .and_then(|c| c.key.as_deref())
            .or(self.subject.as_deref())
            .unwrap_or("-")
    }

    /// The key a downstream worker dedupes on: the event id (stable across redeliveries).
    pub fn dedup_key(&self) -> &str {
        &self.id
    }

    /// One JSON line.
    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail: every map key is a string.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The longest provider string kept verbatim in the envelope (`instance`, `source`, `subject`),
/// `data.message_id` and `data.chat.id`, in bytes. Real ones are far shorter (a JID is ~30
/// bytes, a Meta message id ~60, a WAHA serialized id ~100); a longer one is replaced by
/// [`bounded_text`]'s digest form and stays whole only in `raw`.
pub const MAX_ENVELOPE_TEXT: usize = 256;

/// `text` itself when it is at most [`MAX_ENVELOPE_TEXT`] bytes, else `~` and 64 hex digits of
/// its SHA-256: the same text always gets the same form, so ids, keys and FIFO groups built
/// from it stay stable.
pub fn bounded_text(text: &str) -> std::borrow::Cow<'_, str> {
    use sha2::Digest;
    if text.len() <= MAX_ENVELOPE_TEXT {
        std::borrow::Cow::Borrowed(text)
    } else {
        std::borrow::Cow::Owned(format!("~{}", hex::encode(sha2::Sha256::digest(text.as_bytes()))))
    }
}

fn bounded_owned(text: String) -> String {
    match bounded_text(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(digest) => digest,
    }
}

/// `data.presence`: the known words as an enum, and any other lower-case word a provider adds.
#[cfg(feature = "json-schema")]
fn presence_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Presence in lower case: available, unavailable, composing, paused, recording (the provider's word, lower-cased: new values may appear).",
        "anyOf": [
            {"enum": ["available", "unavailable", "composing", "paused", "recording"]},
            {"type": "string"}
        ]
    })
}

/// The JSON Schema (2020-12) of the event as wahooks emits it, generated from these types:
/// `schema/wahooks-event.schema.json` is this, and a test fails when the two differ.
#[cfg(feature = "json-schema")]
pub fn json_schema() -> Value {
    let mut schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<CloudEvent>();
    schema.insert("$id".to_owned(), Value::String(DATASCHEMA.to_owned()));
    schema.insert("title".to_owned(), Value::String("WahooksEvent".to_owned()));
    schema.to_value()
}

#[cfg(test)]
mod tests {
    use crate::*;
    use chrono::Utc;
    use serde_json::value::RawValue;
    use std::sync::Arc;

    #[test]
    fn long_provider_strings_reach_the_envelope_as_a_digest() {
        let long = "A".repeat(600_000);
        let mut data = EventData::new(Arc::from(RawValue::from_string("{}".to_owned()).expect("json")));
        data.message_id = Some(long.clone());
        data.chat = Some(Chat::new(long.clone(), ChatKind::Direct));
        let e = CloudEvent::new(
            "0".repeat(32),
            Provider::Zapi,
            &long,
            EventType::MessageReceived,
            Some(long.clone()),
            Utc::now(),
            "ep",
            Utc::now(),
            data,
        );
        let digest = bounded_text(&long).into_owned();
        assert_eq!(digest.len(), 65);
        assert!(digest.starts_with('~'));
        assert_eq!(e.instance, digest);
        assert_eq!(e.subject.as_deref(), Some(digest.as_str()));
        assert_eq!(e.data.message_id.as_deref(), Some(digest.as_str()));
        assert_eq!(e.data.chat.as_ref().map(|c| c.id.as_str()), Some(digest.as_str()));
        assert!(e.to_json().len() < 2_000, "{}", e.to_json().len());
        assert_eq!(bounded_text("5511999999999"), "5511999999999");
        assert_eq!(bounded_text(&"é".repeat(128)).len(), 256, "at the limit: kept");
    }
}
