//! The event's vocabulary: providers, types, chat and content kinds, message statuses.
//! Each wire name is written once (the `vocabulary!` macro gives serde's name and `as_str`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// An enum of the wire vocabulary with each variant's wire name written once: serde reads and
/// writes it, and `as_str` returns it (so the two can never disagree). The receivers' routes use
/// it too (`wahooks::route`); the enum must derive serde's traits.
#[doc(hidden)]
#[macro_export]
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
    /// A chat went quiet after inbound messages: the burst's messages, in order (`data.turn`).
    /// Made by wahooks, after the messages it lists. Since schema 1.2.
    ConversationTurn = "whatsapp.conversation.turn",
    /// An instance that usually receives traffic has received nothing for its window
    /// (`data.silence`). Made by wahooks. Since schema 1.2.
    InstanceSilent = "whatsapp.instance.silent",
    /// A silent instance received traffic again (`data.silence`). Made by wahooks. Since schema 1.2.
    InstanceResumed = "whatsapp.instance.resumed",
    /// A message's media file is kept in S3 (`data.media`). Made by wahooks. Since schema 1.2.
    MediaArchived = "whatsapp.media.archived",
    /// A message's media file could not be archived, and why (`data.media`). Made by wahooks.
    /// Since schema 1.2.
    MediaFailed = "whatsapp.media.failed",
    /// Valid JSON of a shape we don't recognise: still stored and published. A worker built
    /// today also reads any type a later wahooks adds as this one (new types may appear).
    #[serde(other)]
    Unknown = "whatsapp.unknown",
}
}

impl EventType {
    /// Every type.
    pub const ALL: [EventType; 17] = [
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
        EventType::ConversationTurn,
        EventType::InstanceSilent,
        EventType::InstanceResumed,
        EventType::MediaArchived,
        EventType::MediaFailed,
        EventType::Unknown,
    ];

    /// Whether wahooks makes events of this type itself (from time passing, or from a message's
    /// media), rather than parsing them from a provider's body: they are not a provider's traffic.
    pub fn is_derived(self) -> bool {
        matches!(
            self,
            EventType::ConversationTurn
                | EventType::InstanceSilent
                | EventType::InstanceResumed
                | EventType::MediaArchived
                | EventType::MediaFailed
        )
    }
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

vocabulary! {
/// The kind of a message's content. New values may appear in a later version (a worker reads
/// one it does not know as `other`).
// Each value is described in docs/events.md: a description per value would change the
// published schema (and the workers' types generated from it).
#[allow(missing_docs)]
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

vocabulary! {
/// The state of a sent message, mapped from each provider's words.
/// New values may appear in a later version (a worker reads one it does not know as `other`).
// Each value is described in docs/events.md: a description per value would change the
// published schema (and the workers' types generated from it).
#[allow(missing_docs)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn types_round_trip_through_their_names() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
            assert_eq!(serde_json::to_value(t).expect("ser"), Value::String(t.as_str().into()));
        }
    }
}
