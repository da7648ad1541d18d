//! Meta WhatsApp Cloud API. One webhook (`object: whatsapp_business_account`) carries
//! `entry[].changes[]`, each a `field` and its `value`; a change can hold several messages,
//! statuses, echoes, calls or groups, and each becomes its own event:
//!
//! | field | event |
//! |---|---|
//! | `messages`: `messages[]` | `whatsapp.message.received` (a `revoke` or `system` message: `whatsapp.notification`) |
//! | `messages`: `statuses[]` | `whatsapp.message.status` (pricing, conversation and callback data in `parameters`) |
//! | `messages`: only `errors[]` | `whatsapp.notification` `errors`, the error in `data.error` |
//! | `smb_message_echoes`, `message_echoes` | `whatsapp.message.sent` (the same content vocabulary) |
//! | the four template fields | `whatsapp.template.updated` |
//! | every other field in [`NOTIFICATION_FIELDS`] | `whatsapp.notification`, the field in `data.notification`, its value in `data.parameters` |
//! | a field Meta does not document | `whatsapp.unknown`, with the field and value kept the same way |

use serde_json::Value;

use super::json::Json;

use super::{alias, bool_of, f64_of, i64_of, str_of, Body, ParseContext};
use crate::event::{
    from_epoch_guess, Alias, AliasKind, Chat, ChatKind, CloudEvent, Content, ContentKind, EventData, EventError,
    EventType, MessageStatus, Order, OrderItem, Referral, Sender, SharedContact,
};
use crate::identity::{Key, Rule, META_FIELD, META_MESSAGE, META_STATUS};

/// The template fields: each becomes `whatsapp.template.updated`.
pub const TEMPLATE_FIELDS: [&str; 4] = [
    "message_template_status_update",
    "message_template_quality_update",
    "message_template_components_update",
    "template_category_update",
];

/// Every other field Meta documents for the `whatsapp_business_account` object (its webhooks
/// overview, the Groups API and Calling API references, and the override page's list), each a
/// `whatsapp.notification`. `messages` and the echo fields are read message by message.
pub const NOTIFICATION_FIELDS: [&str; 25] = [
    "account_alerts",
    "account_review_update",
    "account_settings_update",
    "account_update",
    "automatic_events",
    "business_capability_update",
    "calls",
    "consumer_profile",
    "flows",
    "group_lifecycle_update",
    "group_participants_update",
    "group_settings_update",
    "group_status_update",
    "history",
    "messaging_handovers",
    "partner_solutions",
    "payment_configuration_update",
    "phone_number_name_update",
    "phone_number_quality_update",
    "security",
    "smb_app_state_sync",
    "tracking_events",
    "user_preferences",
    "business_status_update",
    // A user's new business-scoped user id (Meta's BSUID page; its 2026-08 changelog says the
    // field is not subscribable and the change comes as a `system` message instead).
    "user_id_update",
];

/// The fields whose `message_echoes[]` are messages the business sent.
const ECHO_FIELDS: [&str; 2] = ["smb_message_echoes", "message_echoes"];

/// One change and where it sits: what every event of it shares.
struct Change<'c, 'a> {
    field: String,
    value: &'c Json<'a>,
    instance: String,
    /// `entry[].time`, the clock of fields that carry no other.
    entry_time: Option<i64>,
    /// The change's position in the body, so two identical notifications in one body stay two.
    index: usize,
}

/// Parse a Cloud API webhook body.
pub(crate) fn parse(ctx: &ParseContext<'_>, body: &Body<'_>) -> Vec<CloudEvent> {
    let mut events = Vec::new();
    let mut index = 0;
    for entry in array(body.value, "entry") {
        for change in array(entry, "changes") {
            let value = &change["value"];
            let change = Change {
                field: str_of(change, "field").unwrap_or_else(|| "messages".to_owned()),
                value,
                instance: str_of(&value["metadata"], "phone_number_id")
                    .or_else(|| str_of(value, "phone_number_id"))
                    .or_else(|| str_of(entry, "id"))
                    .unwrap_or_else(|| "-".to_owned()),
                entry_time: i64_of(entry, "time"),
                index,
            };
            index += 1;
            parse_change(ctx, body, &change, &mut events);
        }
    }
    events
}

fn parse_change(ctx: &ParseContext<'_>, body: &Body<'_>, c: &Change<'_, '_>, out: &mut Vec<CloudEvent>) {
    let field = c.field.as_str();
    let before = out.len();
    if field == "messages" || ECHO_FIELDS.contains(&field) {
        // A change-level `errors[]` (Meta could not process one of these messages) belongs to
        // each message it came with.
        let change_error = first_error(c.value);
        for m in array(c.value, "messages") {
            out.push(message(ctx, body, c, m, false, change_error.clone()));
        }
        for m in array(c.value, "message_echoes") {
            out.push(message(ctx, body, c, m, true, change_error.clone()));
        }
        for s in array(c.value, "statuses") {
            out.push(status(ctx, body, c, s));
        }
        if out.len() > before {
            return;
        }
    }
    if TEMPLATE_FIELDS.contains(&field) {
        out.push(notification(
            ctx,
            body,
            c,
            field,
            EventType::TemplateUpdated,
            None,
            c.value,
        ));
        return;
    }
    let message_field = field == "messages" || ECHO_FIELDS.contains(&field);
    let event_type = if message_field || NOTIFICATION_FIELDS.contains(&field) {
        EventType::Notification
    } else {
        EventType::Unknown
    };
    // A `messages` change holding only `errors[]`: Meta could not process something.
    let name = if message_field && c.value.get("errors").is_some() {
        "errors"
    } else {
        field
    };
    // Per-user and per-group lists: one event each, in that user's or group's chat.
    let per_item: [(&str, &str, ChatKind); 5] = [
        ("user_preferences", "wa_id", ChatKind::Direct),
        ("user_id_update", "wa_id", ChatKind::Direct),
        ("calls", "from", ChatKind::Direct),
        ("statuses", "recipient_id", ChatKind::Direct),
        ("groups", "group_id", ChatKind::Group),
    ];
    for (list, chat_key, kind) in per_item {
        for item in array(c.value, list) {
            // A call the business placed is in the callee's chat.
            let chat_key = match item["direction"].as_str() {
                Some("BUSINESS_INITIATED") => "to",
                _ => chat_key,
            };
            let chat = chat_of(item, chat_key, kind);
            out.push(notification(ctx, body, c, name, event_type, chat, item));
        }
    }
    if out.len() == before {
        out.push(notification(ctx, body, c, name, event_type, None, c.value));
    }
}

fn array<'c, 'a>(v: &'c Json<'a>, key: &str) -> &'c [Json<'a>] {
    v.get(key).and_then(Json::as_array).unwrap_or_default()
}

/// The chat an item names under `key` (falling back to its business-scoped user id), with the
/// aliases the item shows of the person a direct chat is with: the phone under `key`, the user
/// id and parent user id (`user_id`, `from_…`, `recipient_…`; `user_id_update`'s `current`, its
/// `previous` a former alias).
fn chat_of(item: &Json<'_>, key: &str, kind: ChatKind) -> Option<Chat> {
    let first = |keys: [&str; 3]| keys.iter().find_map(|k| str_of(item, k));
    let user_id = first(["user_id", "from_user_id", "recipient_user_id"]);
    let mut chat = Chat::new(str_of(item, key).or_else(|| user_id.clone())?, kind);
    if kind == ChatKind::Direct {
        chat.phone = str_of(item, key).and_then(|p| alias(AliasKind::Phone, &p));
        chat.user_id = user_id.or_else(|| str_of(&item["user_id"], "current"));
        chat.parent_user_id = first(["parent_user_id", "from_parent_user_id", "recipient_parent_user_id"])
            .or_else(|| str_of(&item["parent_user_id"], "current"));
        for (field, kind) in [
            ("user_id", AliasKind::UserId),
            ("parent_user_id", AliasKind::ParentUserId),
        ] {
            chat.former
                .extend(str_of(&item[field], "previous").and_then(|v| Alias::of(kind, &v)));
        }
    }
    Some(chat)
}

/// Meta's `timestamp` is epoch seconds, as a string or a number; a placeholder or a missing one
/// falls back to `fallback` (the entry's time), then to the receipt time.
fn time_of(ctx: &ParseContext<'_>, v: &Json<'_>, fallback: Option<i64>) -> chrono::DateTime<chrono::Utc> {
    ctx.event_time(
        i64_of(v, "timestamp")
            .and_then(from_epoch_guess)
            .or_else(|| fallback.and_then(from_epoch_guess)),
    )
}

/// The first of an `errors[]` array, with its details.
fn first_error(v: &Json<'_>) -> Option<EventError> {
    let e = array(v, "errors").first()?;
    let title = str_of(e, "message").or_else(|| str_of(e, "title")).unwrap_or_default();
    Some(EventError {
        code: str_of(e, "code"),
        message: match str_of(&e["error_data"], "details") {
            Some(details) if details != title => format!("{title}: {details}"),
            _ => title,
        },
    })
}

fn message(
    ctx: &ParseContext<'_>,
    body: &Body<'_>,
    c: &Change<'_, '_>,
    m: &Json<'_>,
    echo: bool,
    change_error: Option<EventError>,
) -> CloudEvent {
    let mut data = body.data();
    let wire = str_of(m, "type").unwrap_or_else(|| "unknown".to_owned());
    data.message_id = str_of(m, "id");
    data.from_me = Some(echo);
    parties(&mut data, c, m, echo);
    data.error = first_error(m).or(change_error);
    let event_type = what_it_says(&mut data, &wire, m, echo);
    let natural = Key::of(&META_MESSAGE, data.participant.as_deref().unwrap_or("-"))
        .part(&wire)
        // A changed reaction reuses the message id.
        .part(str_of(&m["reaction"], "emoji").unwrap_or_default())
        .build();
    about_a_message(ctx, c, m, &META_MESSAGE, event_type, &natural, data)
}

/// The event of `v`, a message or a status in change `c`, about the message `data` names:
/// keyed under `rule` on that message's id and `natural` (what tells two events about one
/// message apart), or, without an id, on `v` itself; its subject is the chat.
fn about_a_message(
    ctx: &ParseContext<'_>,
    c: &Change<'_, '_>,
    v: &Json<'_>,
    rule: &'static Rule,
    event_type: EventType,
    natural: &str,
    data: EventData,
) -> CloudEvent {
    let subject = data.chat.as_ref().map(|c| c.id.clone());
    let key = match &data.message_id {
        Some(id) => Key::of(rule, id).part(natural).build(),
        None => Key::of(rule, natural)
            .part(super::fingerprint_without(v, &[]))
            .without_natural_key(ctx.delivery_id),
    };
    super::event(
        ctx,
        &c.instance,
        event_type,
        subject,
        &key,
        time_of(ctx, v, c.entry_time),
        data,
    )
}

/// A change of number or of user id (`system` `user_changed_number`, `user_changed_user_id`):
/// the chat is the user as known before (`from`, else the previous user id), with the new
/// aliases as theirs and the old ones as former aliases, so the identity map keeps one
/// conversation across the change.
fn changed_aliases(data: &mut EventData, system: &Json<'_>) {
    let previous = str_of(system, "previous_user_id");
    if data.chat.is_none() {
        data.chat = previous
            .clone()
            .or_else(|| str_of(system, "user_id"))
            .map(|id| Chat::new(id, ChatKind::Direct));
    }
    let Some(chat) = data.chat.as_mut().filter(|c| c.kind == ChatKind::Direct) else {
        return;
    };
    if let Some(new_phone) = str_of(system, "wa_id").and_then(|p| alias(AliasKind::Phone, &p)) {
        if let Some(old) = chat.phone.take().filter(|old| *old != new_phone) {
            chat.former.extend(Alias::of(AliasKind::Phone, &old));
        }
        chat.phone = Some(new_phone);
    }
    for (now, before, kind) in [
        ("user_id", previous, AliasKind::UserId),
        (
            "parent_user_id",
            str_of(system, "previous_parent_user_id"),
            AliasKind::ParentUserId,
        ),
    ] {
        let slot = if kind == AliasKind::UserId {
            &mut chat.user_id
        } else {
            &mut chat.parent_user_id
        };
        if let Some(now) = str_of(system, now) {
            // The id the message came from (`from_user_id`) is the one before, when it differs.
            if let Some(old) = slot.take().filter(|old| *old != now) {
                chat.former.extend(Alias::of(kind, &old));
            }
            *slot = Some(now);
        }
        chat.former.extend(before.and_then(|b| Alias::of(kind, &b)));
    }
}

/// The chat, the sender and (in a group) the participant. The user is the sender of a
/// message, the recipient of an echo; by phone number, or by business-scoped user id when the
/// user shows only a username.
fn parties(data: &mut EventData, c: &Change<'_, '_>, m: &Json<'_>, echo: bool) {
    let (phone, user_id) = if echo {
        (str_of(m, "to"), str_of(m, "to_user_id"))
    } else {
        (str_of(m, "from"), str_of(m, "from_user_id"))
    };
    let user = phone.clone().or_else(|| user_id.clone());
    let contact = array(c.value, "contacts").iter().find(|k| {
        (phone.is_some() && str_of(k, "wa_id") == phone) || (user_id.is_some() && str_of(k, "user_id") == user_id)
    });
    let user_id = user_id.or_else(|| contact.and_then(|k| str_of(k, "user_id")));
    let parent_user_id = if echo {
        str_of(m, "to_parent_user_id")
    } else {
        str_of(m, "from_parent_user_id")
    }
    .or_else(|| contact.and_then(|k| str_of(k, "parent_user_id")));
    let username = contact.and_then(|k| str_of(&k["profile"], "username"));
    data.chat = match str_of(m, "group_id") {
        Some(group) => Some(Chat::new(group, ChatKind::Group)),
        None => user.clone().map(|id| {
            let mut chat = Chat::new(id, ChatKind::Direct);
            chat.phone = phone.as_deref().and_then(|p| alias(AliasKind::Phone, p));
            chat.user_id = user_id.clone();
            chat.parent_user_id = parent_user_id.clone();
            chat.username = username.clone();
            chat
        }),
    };
    data.sender = Some(if echo {
        Sender {
            phone: str_of(m, "from"),
            ..Sender::default()
        }
    } else {
        Sender {
            phone: phone.clone(),
            name: contact.and_then(|k| str_of(&k["profile"], "name")),
            username,
            user_id,
            parent_user_id,
            ..Sender::default()
        }
    });
    if data.chat.as_ref().is_some_and(|c| c.kind == ChatKind::Group) {
        data.participant = user;
    }
}

/// The message's content, or the notification it is (a deletion, a number or identity
/// change), and so the event's type.
fn what_it_says(data: &mut EventData, wire: &str, m: &Json<'_>, echo: bool) -> EventType {
    match wire {
        // A deleted message: a notification about the message it names.
        "revoke" => {
            data.notification = Some("REVOKE".to_owned());
            data.reply_to = str_of(&m["revoke"], "original_message_id");
            data.parameters = Some(m["revoke"].to_value());
            return EventType::Notification;
        }
        // A number or identity change: a notification in that user's chat.
        "system" => {
            data.notification = str_of(&m["system"], "type").or_else(|| Some("system".to_owned()));
            changed_aliases(data, &m["system"]);
            let mut parameters = m["system"].to_value();
            if let (Value::Object(p), Some(identity)) = (&mut parameters, m.get("identity")) {
                p.insert("identity".to_owned(), identity.to_value());
            }
            data.parameters = Some(parameters);
            return EventType::Notification;
        }
        // An edit: the new content, replying to the message it replaces.
        "edit" => {
            let edited = &m["edit"]["message"];
            let mut content = content_of(edited);
            content.wire_kind = Some("edit".to_owned());
            data.reply_to = str_of(&m["edit"], "original_message_id");
            data.content = Some(content);
        }
        _ => {
            let mut content = content_of(m);
            content.forwarded = bool_of(&m["context"], "forwarded") == Some(true);
            content.frequently_forwarded = bool_of(&m["context"], "frequently_forwarded") == Some(true);
            content.referral = m.get("referral").map(referral_of);
            data.reply_to = str_of(&m["context"], "id").or_else(|| str_of(&m["reaction"], "message_id"));
            data.content = Some(content);
        }
    }
    if echo {
        EventType::MessageSent
    } else {
        EventType::MessageReceived
    }
}

/// A message's content (for an edit: the edited message's). One arm per message type, as Meta's
/// reference lists them.
fn content_of(m: &Json<'_>) -> Content {
    let wire = str_of(m, "type").unwrap_or_else(|| "unknown".to_owned());
    let inner = &m[wire.as_str()];
    let kind = match wire.as_str() {
        "text" => ContentKind::Text,
        "image" => ContentKind::Image,
        "audio" => ContentKind::Audio,
        "video" => ContentKind::Video,
        "document" => ContentKind::Document,
        "sticker" => ContentKind::Sticker,
        "location" => ContentKind::Location,
        "contacts" => ContentKind::Contact,
        "reaction" => ContentKind::Reaction,
        "button" => ContentKind::ButtonReply,
        "order" => ContentKind::Order,
        "interactive" => match inner["type"].as_str() {
            Some("list_reply") => ContentKind::ListReply,
            Some("button_reply") => ContentKind::ButtonReply,
            _ => ContentKind::Interactive,
        },
        // `unsupported`, `unknown` and whatever Meta adds: the wire name says which.
        _ => ContentKind::Other,
    };
    let mut content = Content::new(kind);
    match kind {
        ContentKind::Text => content.text = str_of(inner, "body"),
        ContentKind::Image | ContentKind::Audio | ContentKind::Video | ContentKind::Document | ContentKind::Sticker => {
            // Meta sends a media id to fetch through the Graph API; newer webhooks add a URL.
            content.media_id = str_of(inner, "id");
            content.media_url = str_of(inner, "url");
            content.sha256 = str_of(inner, "sha256");
            content.mime_type = str_of(inner, "mime_type");
            content.caption = str_of(inner, "caption");
            content.file_name = str_of(inner, "filename");
        }
        ContentKind::Location => {
            content.latitude = f64_of(inner, "latitude");
            content.longitude = f64_of(inner, "longitude");
            content.title = str_of(inner, "name");
            content.text = str_of(inner, "address");
            content.media_url = str_of(inner, "url");
        }
        ContentKind::Contact => {
            content.contacts = array(m, "contacts").iter().map(shared_contact).collect();
            content.text = content.contacts.first().and_then(|k| k.name.clone());
        }
        ContentKind::Reaction => {
            content.text = str_of(inner, "emoji");
            content.removed = content.text.is_none();
        }
        ContentKind::ButtonReply if wire == "button" => {
            content.text = str_of(inner, "text");
            content.selected_id = str_of(inner, "payload");
        }
        ContentKind::ButtonReply | ContentKind::ListReply => {
            let reply = &inner[if kind == ContentKind::ListReply {
                "list_reply"
            } else {
                "button_reply"
            }];
            content.text = str_of(reply, "title");
            content.title = str_of(reply, "description");
            content.selected_id = str_of(reply, "id");
        }
        ContentKind::Interactive => interactive(inner, &mut content),
        ContentKind::Order => content.order = Some(order_of(inner, &mut content)),
        _ => {}
    }
    content.wire_kind = Some(match kind {
        ContentKind::Interactive => inner["type"].as_str().map_or(wire.clone(), |t| format!("{wire}.{t}")),
        _ => wire,
    });
    content
}

/// Interactive replies other than buttons and lists: a Flow's answers (`nfm_reply`), a call
/// permission reply, and whatever Meta adds (kept as its JSON in `response`).
fn interactive(inner: &Json<'_>, content: &mut Content) {
    let Some(subtype) = inner["type"].as_str() else {
        return;
    };
    let reply = &inner[subtype];
    match subtype {
        "nfm_reply" => {
            content.text = str_of(reply, "body");
            content.title = str_of(reply, "name");
            // `response_json` is JSON in a string; kept as the string if it is not.
            content.response = reply["response_json"]
                .as_str()
                .map(|s| serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_owned())));
            content.selected_id = content
                .response
                .as_ref()
                .and_then(|r| r.get("flow_token"))
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        _ => {
            content.text = str_of(reply, "response").or_else(|| str_of(reply, "title"));
            content.response = (!reply.is_null()).then(|| reply.to_value());
        }
    }
}

fn shared_contact(k: &Json<'_>) -> SharedContact {
    let phones = array(k, "phones");
    SharedContact {
        name: str_of(&k["name"], "formatted_name").or_else(|| str_of(&k["name"], "first_name")),
        phones: phones.iter().filter_map(|p| str_of(p, "phone")).collect(),
        wa_ids: phones.iter().filter_map(|p| str_of(p, "wa_id")).collect(),
    }
}

fn order_of(inner: &Json<'_>, content: &mut Content) -> Order {
    content.text = str_of(inner, "text");
    let items: Vec<OrderItem> = array(inner, "product_items")
        .iter()
        .map(|i| OrderItem {
            product_id: str_of(i, "product_retailer_id"),
            quantity: f64_of(i, "quantity"),
            item_price: f64_of(i, "item_price"),
            currency: str_of(i, "currency"),
        })
        .collect();
    let currency = items.first().and_then(|i| i.currency.clone());
    let one_currency = items.iter().all(|i| i.currency == currency);
    let total = items
        .iter()
        .map(|i| Some(i.quantity? * i.item_price?))
        .sum::<Option<f64>>()
        .filter(|_| one_currency && !items.is_empty());
    Order {
        catalog_id: str_of(inner, "catalog_id"),
        items,
        total,
        currency: currency.filter(|_| one_currency),
    }
}

fn referral_of(r: &Json<'_>) -> Referral {
    Referral {
        source_type: str_of(r, "source_type"),
        source_id: str_of(r, "source_id"),
        source_url: str_of(r, "source_url"),
        headline: str_of(r, "headline"),
        body: str_of(r, "body"),
        media_type: str_of(r, "media_type"),
        media_url: str_of(r, "image_url")
            .or_else(|| str_of(r, "video_url"))
            .or_else(|| str_of(r, "thumbnail_url")),
        click_id: str_of(r, "ctwa_clid"),
    }
}

fn map_status(word: &str) -> Option<MessageStatus> {
    Some(match word {
        "sent" => MessageStatus::Sent,
        "delivered" => MessageStatus::Delivered,
        "read" => MessageStatus::Read,
        "played" => MessageStatus::Played,
        "failed" => MessageStatus::Failed,
        "deleted" => MessageStatus::Deleted,
        _ => return None,
    })
}

/// What a status carries besides its state: kept in `data.parameters`.
const STATUS_EXTRAS: [&str; 4] = ["pricing", "conversation", "biz_opaque_callback_data", "errors"];

fn status(ctx: &ParseContext<'_>, body: &Body<'_>, c: &Change<'_, '_>, s: &Json<'_>) -> CloudEvent {
    // A call's status (Calling API) is about a call, not a message.
    if s["type"].as_str() == Some("call") {
        let chat = chat_of(s, "recipient_id", ChatKind::Direct);
        return notification(ctx, body, c, "calls", EventType::Notification, chat, s);
    }
    let mut data = body.data();
    let word = str_of(s, "status").unwrap_or_default();
    data.message_id = str_of(s, "id");
    data.status = map_status(&word);
    data.from_me = Some(true);
    let kind = match str_of(s, "recipient_type").as_deref() {
        Some("group") => ChatKind::Group,
        _ => ChatKind::Direct,
    };
    data.chat = chat_of(s, "recipient_id", kind).or_else(|| chat_of(s, "recipient_user_id", kind));
    data.participant = str_of(s, "recipient_participant_id").or_else(|| str_of(s, "recipient_participant_user_id"));
    data.error = first_error(s);
    let extras: serde_json::Map<String, Value> = STATUS_EXTRAS
        .iter()
        .filter_map(|k| Some(((*k).to_owned(), s.get(k)?.to_value())))
        .collect();
    data.parameters = (!extras.is_empty()).then_some(Value::Object(extras));
    let natural = Key::of(&META_STATUS, &word)
        .or_dash(data.participant.as_deref())
        .build();
    about_a_message(ctx, c, s, &META_STATUS, EventType::MessageStatus, &natural, data)
}

/// A notification (or template update, or unknown field): its name (the field's) and the item's
/// value, its first error, in `chat` when it is about one user or group.
fn notification(
    ctx: &ParseContext<'_>,
    body: &Body<'_>,
    c: &Change<'_, '_>,
    name: &str,
    event_type: EventType,
    chat: Option<Chat>,
    item: &Json<'_>,
) -> CloudEvent {
    let mut data: EventData = body.data();
    data.notification = Some(name.to_owned());
    data.parameters = Some(item.to_value());
    data.error = first_error(item);
    data.message_id = str_of(item, "id").filter(|id| id.starts_with("wamid.") || id.starts_with("wacid."));
    data.chat = chat;
    let subject = data.chat.as_ref().map(|c| c.id.clone());
    let key = Key::of(&META_FIELD, &c.field)
        .part(c.index)
        .part(c.entry_time.unwrap_or_default())
        .part(super::fingerprint_without(item, &[]))
        .build();
    super::event(
        ctx,
        &c.instance,
        event_type,
        subject,
        &key,
        time_of(ctx, item, c.entry_time),
        data,
    )
}
