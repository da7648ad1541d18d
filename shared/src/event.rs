//! The canonical event: one vocabulary for every provider, serialised as a CloudEvents 1.0
//! structured-mode JSON document (field by field: `docs/events.md`).

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

/// An enum of the wire vocabulary with each variant's wire name written once: serde reads and
/// writes it, and `as_str` returns it (so the two can never disagree).
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $wire:literal,
            )*
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $(
                $(#[$vmeta])*
                #[serde(rename = $wire)]
                $variant,
            )*
        }

        impl $name {
            /// The name on the wire (what serde writes and reads, and what URLs, sources and the
            /// CLI use).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)*
                }
            }
        }
    };
}

vocabulary! {
/// The providers wahooks understands. New providers may appear in a later version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub enum Provider {
    /// Z-API (z-api.io).
    Zapi = "zapi",
    /// Hub Message / Omni Z-API, in its `DEFAULT` or `Z_API` payload format.
    Hubmessage = "hubmessage",
    /// WhatsApp Web API (apiwhatsappweb.com).
    Wwa = "wwa",
    /// Meta's WhatsApp Cloud API.
    Meta = "meta",
    /// Evolution API (the self-hosted gateway).
    Evolution = "evolution",
    /// WAHA, WhatsApp HTTP API (the self-hosted gateway).
    Waha = "waha",
    /// A provider a later wahooks adds, as this version reads it (never parsed, never an
    /// endpoint's): a worker built today reads such an event, and an older fanout publishes it
    /// as stored instead of refusing it (a rollback, a replay by an older version).
    #[serde(other)]
    Other = "other",
}
}

impl Provider {
    /// Every provider, in a stable order.
    pub const ALL: [Provider; 6] = [
        Provider::Zapi,
        Provider::Hubmessage,
        Provider::Wwa,
        Provider::Meta,
        Provider::Evolution,
        Provider::Waha,
    ];
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Provider {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "zapi" | "z-api" => Ok(Provider::Zapi),
            "hubmessage" | "hub" => Ok(Provider::Hubmessage),
            "wwa" | "apiwhatsappweb" => Ok(Provider::Wwa),
            "meta" => Ok(Provider::Meta),
            "evolution" | "evolution-api" => Ok(Provider::Evolution),
            "waha" => Ok(Provider::Waha),
            other => Err(format!(
                "unknown provider `{other}` (expected zapi, hubmessage, wwa, meta, evolution or waha)"
            )),
        }
    }
}

vocabulary! {
/// The URL a provider posted to (`/v1/hooks/{token}/{route}`): a hint, never the truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Route {
    /// `message-received`
    MessageReceived = "message-received",
    /// `message-sent`
    MessageSent = "message-sent",
    /// `message-status`
    MessageStatus = "message-status",
    /// `connected`
    Connected = "connected",
    /// `disconnected`
    Disconnected = "disconnected",
    /// `presence`
    Presence = "presence",
    /// `any` (and the bare `/v1/hooks/{token}`)
    Any = "any",
}
}

impl Route {
    /// Every route, in the order the docs list them.
    pub const ALL: [Route; 7] = [
        Route::MessageReceived,
        Route::MessageSent,
        Route::MessageStatus,
        Route::Connected,
        Route::Disconnected,
        Route::Presence,
        Route::Any,
    ];

    /// The Lambda function that serves this route.
    pub fn function_name(self) -> &'static str {
        match self {
            Route::MessageReceived => "message-received",
            Route::MessageSent => "message-sent",
            Route::MessageStatus => "message-status",
            Route::Connected => "instance-connected",
            Route::Disconnected => "instance-disconnected",
            Route::Presence => "chat-presence",
            Route::Any => "any",
        }
    }

    /// Whether an event of type `t` belongs on this route (used to flag misrouted payloads).
    pub fn expects(self, t: EventType) -> bool {
        use EventType as T;
        match self {
            Route::Any => true,
            Route::MessageReceived => matches!(t, T::MessageReceived | T::Notification),
            Route::MessageSent => matches!(t, T::MessageSent),
            Route::MessageStatus => matches!(t, T::MessageStatus),
            Route::Connected => matches!(t, T::InstanceConnected),
            Route::Disconnected => matches!(t, T::InstanceDisconnected),
            Route::Presence => matches!(t, T::ChatPresence),
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Route {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Route::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown route `{s}`"))
    }
}

vocabulary! {
/// The CloudEvents `type`. New types may appear in a later version: a worker reads one it does
/// not know as `whatsapp.unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub enum EventType {
    /// A message arrived in a chat (or was sent from the phone, with `from_me`).
    MessageReceived = "whatsapp.message.received",
    /// A message sent through the provider's API was handed to WhatsApp (or failed).
    MessageSent = "whatsapp.message.sent",
    /// A sent message changed state (delivered, read, played…).
    MessageStatus = "whatsapp.message.status",
    /// Group changes, calls, revokes, profile changes.
    Notification = "whatsapp.notification",
    /// Typing, recording, online/offline in a chat.
    ChatPresence = "whatsapp.chat.presence",
    /// The instance (phone) connected.
    InstanceConnected = "whatsapp.instance.connected",
    /// The instance (phone) disconnected.
    InstanceDisconnected = "whatsapp.instance.disconnected",
    /// The instance synced its initial data.
    InstanceInitialData = "whatsapp.instance.initial_data",
    /// A contact was blocked.
    ContactBlocked = "whatsapp.contact.blocked",
    /// A message template changed status or category.
    TemplateUpdated = "whatsapp.template.updated",
    /// The provider could not connect the instance through its proxy.
    InstanceProxyFailed = "whatsapp.instance.proxy_failed",
    /// Valid JSON of a shape we don't recognise: still stored and published. A worker built
    /// today also reads any type a later wahooks adds as this one (new types may appear).
    #[serde(other)]
    Unknown = "whatsapp.unknown",
}
}

impl EventType {
    /// Every type.
    pub const ALL: [EventType; 12] = [
        EventType::MessageReceived,
        EventType::MessageSent,
        EventType::MessageStatus,
        EventType::Notification,
        EventType::ChatPresence,
        EventType::InstanceConnected,
        EventType::InstanceDisconnected,
        EventType::InstanceInitialData,
        EventType::ContactBlocked,
        EventType::TemplateUpdated,
        EventType::InstanceProxyFailed,
        EventType::Unknown,
    ];
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EventType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let full = if s.starts_with("whatsapp.") {
            s.to_owned()
        } else {
            format!("whatsapp.{s}")
        };
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == full)
            .ok_or_else(|| format!("unknown event type `{s}`"))
    }
}

/// What kind of chat an event belongs to.
/// New values may appear in a later version (a worker reads one it does not know as `other`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ChatKind {
    /// One-to-one.
    Direct,
    /// A group.
    Group,
    /// A broadcast list.
    Broadcast,
    /// A channel.
    Newsletter,
    /// WhatsApp Status posts (`status@broadcast`).
    Status,
    /// A kind a later wahooks adds, read by a worker built today (never emitted by this one).
    #[serde(other)]
    Other,
}

/// The chat: the provider's id verbatim, its kind, and its LID when the provider gives one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct Chat {
    /// The provider's chat id as sent (Z-API `phone`, e.g. `1203…-group`).
    pub id: String,
    /// direct, group, broadcast, newsletter or status.
    pub kind: ChatKind,
    /// The chat's WhatsApp LID (`…@lid`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lid: Option<String>,
}

/// Who sent a message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct Sender {
    /// Phone number (digits) when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// LID when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lid: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A business-scoped user id (Meta's `user_id`/`from_user_id`, e.g. `US.1349…`): how Meta
    /// names a user who hides their phone number behind a username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The user's WhatsApp username, when the provider sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

vocabulary! {
/// The kind of a message's content. New values may appear in a later version (a worker reads
/// one it does not know as `other`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub enum ContentKind {
    Text = "text",
    Image = "image",
    Audio = "audio",
    Video = "video",
    Ptv = "ptv",
    Document = "document",
    Sticker = "sticker",
    Location = "location",
    LiveLocation = "live_location",
    Contact = "contact",
    Reaction = "reaction",
    Poll = "poll",
    PollVote = "poll_vote",
    ButtonReply = "button_reply",
    ListReply = "list_reply",
    Template = "template",
    Interactive = "interactive",
    Order = "order",
    Payment = "payment",
    Event = "event",
    Waiting = "waiting",
    /// A kind without a canonical name (its wire name is in `wire_kind`); also how a worker
    /// reads a kind a later wahooks adds.
    #[serde(other)]
    Other = "other",
}
}

impl ContentKind {}

/// A message's content in one vocabulary. Only what applies to its kind is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct Content {
    /// What kind of content this is.
    pub kind: ContentKind,
    /// The provider's own name for it (Z-API's content key, Hub's `type`, Meta's `type`),
    /// so nothing is lost when several wire kinds share one canonical kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire_kind: Option<String>,
    /// Message text (text, replies, templates, interactive bodies, reaction emoji).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Media caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// Media URL (often temporary at the provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    /// The provider's media id, when the file is fetched by id rather than by URL (Meta: `GET
    /// /<media_id>` on the Graph API answers a short-lived download URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_id: Option<String>,
    /// The media file's SHA-256, as the provider sent it (Meta: base64), to check a download.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Media MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Document file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Title (documents, list replies, templates, products, events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Latitude (locations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    /// Longitude (locations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    /// Poll options or the options voted for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// The id of the button or list row chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected_id: Option<String>,
    /// A reaction that was removed (Z-API sends an empty emoji).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
    /// The message was forwarded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forwarded: bool,
    /// The message was forwarded many times (WhatsApp's "forwarded many times" label).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frequently_forwarded: bool,
    /// A structured reply's answers as JSON (a WhatsApp Flow's `response_json`, parsed; a call
    /// permission reply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
    /// Shared contacts (vCards), one per contact.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<SharedContact>,
    /// An order placed from a catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Order>,
    /// The ad or post the user came from (click-to-WhatsApp ads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral: Option<Referral>,
}

/// A contact shared in a message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct SharedContact {
    /// The contact's formatted name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its phone numbers, as written in the card.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<String>,
    /// The WhatsApp ids among them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wa_ids: Vec<String>,
}

/// An order: what was picked from which catalog.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct Order {
    /// The catalog the products come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
    /// The products, as ordered.
    #[serde(default)]
    pub items: Vec<OrderItem>,
    /// Sum of quantity × price over the items, when they share one currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<f64>,
    /// That currency (ISO 4217).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// One line of an order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct OrderItem {
    /// The product's id in the catalog (Meta `product_retailer_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    /// How many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<f64>,
    /// Price of one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_price: Option<f64>,
    /// Its currency (ISO 4217).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// Where a user came from when they tapped an ad or a post (Meta's `referral`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct Referral {
    /// `ad` or `post`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    /// The ad's or post's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// Its URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    /// Its headline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headline: Option<String>,
    /// Its body text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// `image` or `video`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The image, video or thumbnail shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    /// The click id to report conversions with (`ctwa_clid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub click_id: Option<String>,
}

impl Content {
    /// Content of `kind` with nothing else set.
    pub fn new(kind: ContentKind) -> Self {
        Content {
            kind,
            wire_kind: None,
            text: None,
            caption: None,
            media_url: None,
            media_id: None,
            sha256: None,
            mime_type: None,
            file_name: None,
            title: None,
            latitude: None,
            longitude: None,
            options: Vec::new(),
            selected_id: None,
            removed: false,
            forwarded: false,
            frequently_forwarded: false,
            response: None,
            contacts: Vec::new(),
            order: None,
            referral: None,
        }
    }
}

vocabulary! {
/// The state of a sent message, mapped from each provider's words.
/// New values may appear in a later version (a worker reads one it does not know as `other`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub enum MessageStatus {
    Pending = "pending",
    Sent = "sent",
    Delivered = "delivered",
    Read = "read",
    ReadByMe = "read_by_me",
    Played = "played",
    Failed = "failed",
    Deleted = "deleted",
    /// A status a later wahooks adds, read by a worker built today (never emitted by this one).
    #[serde(other)]
    Other = "other",
}
}

impl MessageStatus {
    /// Where the status stands in a message's life, so a worker can keep the furthest one when
    /// statuses arrive out of order (providers do not promise their order): pending 0, sent 1,
    /// delivered 2, read and read_by_me 3, played 4, failed and deleted 5 (final).
    pub fn rank(self) -> u8 {
        match self {
            MessageStatus::Pending => 0,
            MessageStatus::Sent => 1,
            MessageStatus::Delivered => 2,
            MessageStatus::Read | MessageStatus::ReadByMe => 3,
            MessageStatus::Played => 4,
            MessageStatus::Failed | MessageStatus::Deleted => 5,
            MessageStatus::Other => 0,
        }
    }
}

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
pub const DATASCHEMA: &str = "urn:wahooks:schema:event:1.1";

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
    #[cfg_attr(feature = "json-schema", schemars(extend("format" = "date-time")))]
    pub time: String,
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
    #[cfg_attr(feature = "json-schema", schemars(extend("format" = "date-time")))]
    pub receivedat: String,
    /// The normalised fields and the raw provider JSON.
    pub data: EventData,
    /// For state events without an id or a time of their own (presence, some connection
    /// events): the state they report. Their id is fixed when they are stored, from how many
    /// times this state has changed (see [`crate::identity::state_event_id`]). Not serialised.
    #[serde(skip)]
    pub state: Option<StateChange>,
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
            time: rfc3339_ms(time),
            datacontenttype: "application/json".to_owned(),
            dataschema: DATASCHEMA.to_owned(),
            provider,
            instance: instance.into_owned(),
            endpoint: endpoint.to_owned(),
            receivedat: rfc3339_ms(received_at),
            data,
            state: None,
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
        DateTime::parse_from_rfc3339(&self.time)
            .map(|t| t.timestamp_millis())
            .unwrap_or_default()
    }

    /// The chat id used to group and order this event (`subject`, or `-` without one).
    pub fn chat_key(&self) -> &str {
        self.subject.as_deref().unwrap_or("-")
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

/// RFC 3339 in UTC with milliseconds, e.g. `2025-09-09T03:59:43.001Z`.
pub fn rfc3339_ms(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Epoch milliseconds → time, `None` when out of range.
pub fn from_millis(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

/// A provider epoch timestamp of unknown unit → time. Values below 10^11 are seconds
/// (that is the year 5138 in seconds and 1973 in milliseconds; Z-API's Disconnected
/// `momment` is seconds while its other `momment`s are milliseconds).
pub fn from_epoch_guess(value: i64) -> Option<DateTime<Utc>> {
    if value <= 0 {
        return None;
    }
    if value < 100_000_000_000 {
        Utc.timestamp_opt(value, 0).single()
    } else {
        from_millis(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_provider_strings_reach_the_envelope_as_a_digest() {
        let long = "A".repeat(600_000);
        let mut data = EventData::new(Arc::from(RawValue::from_string("{}".to_owned()).expect("json")));
        data.message_id = Some(long.clone());
        data.chat = Some(Chat {
            id: long.clone(),
            kind: ChatKind::Direct,
            lid: None,
        });
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

    #[test]
    fn rfc3339_has_milliseconds_and_z() {
        let t = from_millis(1757390383001).expect("in range");
        assert_eq!(rfc3339_ms(t), "2025-09-09T03:59:43.001Z");
    }

    #[test]
    fn epoch_guess_tells_seconds_from_milliseconds() {
        assert_eq!(
            rfc3339_ms(from_epoch_guess(1580163342).expect("s")),
            "2020-01-27T22:15:42.000Z"
        );
        assert_eq!(
            rfc3339_ms(from_epoch_guess(1757390383001).expect("ms")),
            "2025-09-09T03:59:43.001Z"
        );
        assert!(from_epoch_guess(0).is_none());
        assert!(from_epoch_guess(-5).is_none());
    }

    #[test]
    fn types_round_trip_through_their_names() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
            assert_eq!(serde_json::to_value(t).expect("ser"), Value::String(t.as_str().into()));
        }
        for r in Route::ALL {
            assert_eq!(r.as_str().parse::<Route>(), Ok(r));
        }
    }
}
