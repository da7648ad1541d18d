//! What a message holds: its chat, its sender and its content (text, media, contacts, orders,
//! referrals), in one vocabulary for every provider.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AliasKind, ChatKind, ContentKind};

/// The chat: the provider's id verbatim, its kind, the conversation key, and the aliases of the
/// person a direct chat is with (docs/events.md, "Aliases and the conversation key").
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
    /// The conversation key of a direct chat, when it is not `id`: the same whichever alias the
    /// body used (the chat id the person was first seen under). A chat's events share one
    /// partition and one FIFO group under `key`, else `id`. Since schema 1.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The person's phone number (digits), when known. Since schema 1.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// The person's business-scoped user id (Meta), when known. Since schema 1.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The person's parent business-scoped user id (Meta), when known. Since schema 1.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_user_id: Option<String>,
    /// The person's username, when known. Since schema 1.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Which of the aliases above this body did not show: learned from earlier bodies. Since
    /// schema 1.3.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub learned: Vec<AliasKind>,
    /// Keys of conversations found to be this person after they had begun apart: their earlier
    /// events stay under those keys. Since schema 1.3.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged: Vec<String>,
    /// Aliases the body says the person had before (Meta's change of number or of user id):
    /// learned as theirs, shown nowhere. Not serialised.
    #[serde(skip)]
    pub former: Vec<crate::Alias>,
}

impl Chat {
    /// A chat of `kind` named `id`, nothing else known.
    pub fn new(id: String, kind: ChatKind) -> Chat {
        Chat {
            id,
            kind,
            lid: None,
            key: None,
            phone: None,
            user_id: None,
            parent_user_id: None,
            username: None,
            learned: Vec::new(),
            merged: Vec::new(),
            former: Vec::new(),
        }
    }
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
    /// A parent business-scoped user id (Meta's `parent_user_id`), when known. Since schema 1.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_user_id: Option<String>,
    /// The sender's conversation key (the key of their direct chat) in a chat that is not theirs
    /// (a group); in their own direct chat it is the chat's. Since schema 1.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Which of the aliases above this body did not show: learned from earlier bodies. Since
    /// schema 1.3.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub learned: Vec<AliasKind>,
}

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
    /// A reaction's emoji (empty when it was removed), and nothing for any other kind: what
    /// tells a changed reaction apart in a natural key, since it reuses the message id.
    pub fn reaction_emoji(&self) -> &str {
        self.text
            .as_deref()
            .filter(|_| self.kind == ContentKind::Reaction)
            .unwrap_or_default()
    }

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
