//! Meta WhatsApp Cloud API: `entry[].changes[].value.messages[]` and `statuses[]`; one webhook
//! can carry many events, each becomes its own.

use super::json::Json;

use super::{f64_of, i64_of, str_of, Body, ParseContext};
use crate::event::{
    from_epoch_guess, Chat, ChatKind, CloudEvent, Content, ContentKind, EventError, EventType, MessageStatus, Sender,
};
use crate::identity::without_natural_key;

/// Parse a Cloud API webhook body.
pub(crate) fn parse(ctx: &ParseContext<'_>, body: &Body<'_>) -> Vec<CloudEvent> {
    let mut events = Vec::new();
    let entries = body.value.get("entry").and_then(Json::as_array).unwrap_or_default();
    for entry in entries {
        let changes = entry.get("changes").and_then(Json::as_array).unwrap_or_default();
        for change in changes {
            let value = &change["value"];
            let instance = str_of(&value["metadata"], "phone_number_id")
                .or_else(|| str_of(entry, "id"))
                .unwrap_or_else(|| "-".to_owned());
            let field = str_of(change, "field").unwrap_or_default();
            let before = events.len();
            for m in value.get("messages").and_then(Json::as_array).into_iter().flatten() {
                events.push(message(ctx, body, &instance, value, m));
            }
            for s in value.get("statuses").and_then(Json::as_array).into_iter().flatten() {
                events.push(status(ctx, body, &instance, s));
            }
            if events.len() == before && field.contains("template") {
                events.push(template(ctx, body, &instance, &field, value, events.len()));
            }
        }
    }
    events
}

fn time_of(ctx: &ParseContext<'_>, v: &Json<'_>) -> chrono::DateTime<chrono::Utc> {
    // Meta's `timestamp` is epoch seconds as a string.
    ctx.event_time(i64_of(v, "timestamp").and_then(from_epoch_guess))
}

fn message(ctx: &ParseContext<'_>, body: &Body<'_>, instance: &str, value: &Json<'_>, m: &Json<'_>) -> CloudEvent {
    let mut data = body.data();
    let from = str_of(m, "from");
    data.message_id = str_of(m, "id");
    data.from_me = Some(false);
    data.chat = match str_of(m, "group_id") {
        Some(group) => Some(Chat {
            id: group,
            kind: ChatKind::Group,
            lid: None,
        }),
        None => from.clone().map(|id| Chat {
            id,
            kind: ChatKind::Direct,
            lid: None,
        }),
    };
    let name = value
        .get("contacts")
        .and_then(Json::as_array)
        .and_then(|cs| cs.iter().find(|c| str_of(c, "wa_id") == from))
        .and_then(|c| str_of(&c["profile"], "name"));
    data.sender = Some(Sender {
        phone: from.clone(),
        lid: None,
        name,
    });
    if data.chat.as_ref().is_some_and(|c| c.kind == ChatKind::Group) {
        data.participant = from;
    }
    data.reply_to = str_of(&m["context"], "id").or_else(|| str_of(&m["reaction"], "message_id"));
    let content = content_of(m);
    let subject = data.chat.as_ref().map(|c| c.id.clone());
    let natural = [
        data.participant.as_deref().unwrap_or("-"),
        content.wire_kind.as_deref().unwrap_or("-"),
        // A changed reaction reuses the message id.
        &str_of(&m["reaction"], "emoji").unwrap_or_default(),
    ]
    .join("\u{1f}");
    let key = match &data.message_id {
        Some(id) => format!("{id}\u{1f}{natural}"),
        None => without_natural_key(ctx, format!("{natural}\u{1f}{}", super::fingerprint_without(m, &[]))),
    };
    data.content = Some(content);
    super::event(
        ctx,
        instance,
        EventType::MessageReceived,
        subject,
        &key,
        time_of(ctx, m),
        data,
    )
}

fn content_of(m: &Json<'_>) -> Content {
    let wire = str_of(m, "type").unwrap_or_else(|| "unknown".to_owned());
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
        "interactive" => match m["interactive"]["type"].as_str() {
            Some("list_reply") => ContentKind::ListReply,
            Some("button_reply") => ContentKind::ButtonReply,
            _ => ContentKind::Interactive,
        },
        _ => ContentKind::Other,
    };
    let mut content = Content::new(kind);
    let inner = &m[wire.as_str()];
    match kind {
        ContentKind::Text => content.text = str_of(inner, "body"),
        ContentKind::Image | ContentKind::Audio | ContentKind::Video | ContentKind::Document | ContentKind::Sticker => {
            // Meta sends a media id to download with the Graph API, not a URL.
            content.media_url = str_of(inner, "url").or_else(|| str_of(inner, "id"));
            content.mime_type = str_of(inner, "mime_type");
            content.caption = str_of(inner, "caption");
            content.file_name = str_of(inner, "filename");
        }
        ContentKind::Location => {
            content.latitude = f64_of(inner, "latitude");
            content.longitude = f64_of(inner, "longitude");
            content.title = str_of(inner, "name");
            content.text = str_of(inner, "address");
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
        _ => {}
    }
    content.wire_kind = Some(wire);
    content
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

fn status(ctx: &ParseContext<'_>, body: &Body<'_>, instance: &str, s: &Json<'_>) -> CloudEvent {
    let mut data = body.data();
    let word = str_of(s, "status").unwrap_or_default();
    data.message_id = str_of(s, "id");
    data.status = map_status(&word);
    data.from_me = Some(true);
    data.chat = match str_of(s, "recipient_type").as_deref() {
        Some("group") => str_of(s, "recipient_id").map(|id| Chat {
            id,
            kind: ChatKind::Group,
            lid: None,
        }),
        _ => str_of(s, "recipient_id").map(|id| Chat {
            id,
            kind: ChatKind::Direct,
            lid: None,
        }),
    };
    data.participant = str_of(s, "recipient_participant_id");
    data.error = s
        .get("errors")
        .and_then(Json::as_array)
        .and_then(|e| e.first())
        .map(|e| EventError {
            code: str_of(e, "code"),
            message: str_of(e, "message").or_else(|| str_of(e, "title")).unwrap_or_default(),
        });
    let subject = data.chat.as_ref().map(|c| c.id.clone());
    let natural = [&word, data.participant.as_deref().unwrap_or("-")].join("\u{1f}");
    let key = match &data.message_id {
        Some(id) => format!("{id}\u{1f}{natural}"),
        None => without_natural_key(ctx, format!("{natural}\u{1f}{}", super::fingerprint_without(s, &[]))),
    };
    super::event(
        ctx,
        instance,
        EventType::MessageStatus,
        subject,
        &key,
        time_of(ctx, s),
        data,
    )
}

fn template(
    ctx: &ParseContext<'_>,
    body: &Body<'_>,
    instance: &str,
    field: &str,
    value: &Json<'_>,
    index: usize,
) -> CloudEvent {
    let mut data = body.data();
    data.notification = Some(field.to_owned());
    data.parameters = Some(value.to_value());
    let key = format!("{}\u{1f}{index}", super::fingerprint_without(value, &[]));
    super::event(
        ctx,
        instance,
        EventType::TemplateUpdated,
        None,
        &key,
        ctx.received_at,
        data,
    )
}
