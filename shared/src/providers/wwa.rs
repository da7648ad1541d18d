//! WhatsApp Web API (apiwhatsappweb.com): send, receive, connected, disconnected. Its bodies
//! carry no type field, no timestamp and no delivery id: the shape decides, the route helps.

use super::json::Json;

use super::{fingerprint_without, str_of, Body, ParseContext};
use crate::event::{Chat, ChatKind, CloudEvent, Content, ContentKind, EventType, MessageStatus, Sender};
use crate::identity::{Key, WWA_INSTANCE, WWA_MESSAGE};
use crate::route::Route;

/// Parse a WhatsApp Web API body.
pub(crate) fn parse(ctx: &ParseContext<'_>, body: &Body<'_>) -> Vec<CloudEvent> {
    let v = body.value;
    if !v.is_object() {
        return Vec::new();
    }
    let instance = str_of(v, "instanceId").unwrap_or_else(|| "-".to_owned());
    let Some(event_type) = event_type_of(ctx, v) else {
        return Vec::new();
    };

    let mut data = body.data();
    data.message_id = str_of(v, "messageId");
    data.chat = str_of(v, "number").map(|id| {
        let mut chat = Chat::new(id, ChatKind::Direct);
        chat.phone = super::alias(crate::event::AliasKind::Phone, &chat.id);
        chat
    });
    match event_type {
        EventType::MessageSent => {
            data.from_me = Some(true);
            data.status = Some(MessageStatus::Sent);
            let mut content = Content::new(ContentKind::Text);
            content.text = str_of(v, "message");
            data.content = Some(content);
        }
        EventType::MessageReceived => {
            data.from_me = Some(false);
            data.sender = Some(Sender {
                phone: str_of(v, "number"),
                lid: None,
                name: str_of(v, "senderName"),
                ..Sender::default()
            });
            data.content = Some(received_content(v));
        }
        _ => {}
    }

    let subject = data.chat.as_ref().map(|c| c.id.clone());
    // Connection events carry nothing natural, not even a time: they are state events (their id
    // is fixed when stored, from the instance's connection changes).
    let connection = match event_type {
        EventType::InstanceConnected => Some("connected"),
        EventType::InstanceDisconnected => Some("disconnected"),
        _ => None,
    };
    let key = match (&data.message_id, connection) {
        (Some(id), _) => Key::of(&WWA_MESSAGE, id).build(),
        (None, Some(state)) => Key::of(&WWA_INSTANCE, state)
            .part("state")
            .without_natural_key(ctx.delivery_id),
        (None, None) => Key::of(&WWA_MESSAGE, fingerprint_without(v, &[])).without_natural_key(ctx.delivery_id),
    };
    let event = super::event(ctx, &instance, event_type, subject, &key, ctx.received_at, data);
    vec![match (&event.data.message_id, connection) {
        (None, Some(state)) => event.with_state("connection", state),
        _ => event,
    }]
}

/// What a body says it is: by its shape, else by its route when that names one kind; `None`
/// for neither.
fn event_type_of(ctx: &ParseContext<'_>, v: &Json<'_>) -> Option<EventType> {
    let state = str_of(&v["whatsappStatus"], "message").or_else(|| str_of(v, "status"));
    Some(match state.as_deref().map(str::to_ascii_lowercase).as_deref() {
        _ if v.get("messageSent").is_some() => EventType::MessageSent,
        Some("received") => EventType::MessageReceived,
        Some("connected") => EventType::InstanceConnected,
        Some("disconnected") => EventType::InstanceDisconnected,
        // No shape matched: trust the route if it names one kind.
        _ => match ctx.route {
            Some(Route::MessageSent) if v.get("messageId").is_some() => EventType::MessageSent,
            Some(Route::MessageReceived) if v.get("messageId").is_some() => EventType::MessageReceived,
            Some(Route::Connected) => EventType::InstanceConnected,
            Some(Route::Disconnected) => EventType::InstanceDisconnected,
            _ => return None,
        },
    })
}

/// `photo` / `video` are null unless the message is one; otherwise it is text.
fn received_content(v: &Json<'_>) -> Content {
    let status = &v["whatsappStatus"];
    let (kind, media) = if let Some(url) = str_of(v, "photo") {
        (ContentKind::Image, Some(url))
    } else if let Some(url) = str_of(v, "video") {
        (ContentKind::Video, Some(url))
    } else {
        (ContentKind::Text, None)
    };
    let mut content = Content::new(kind);
    content.media_url = media.or_else(|| str_of(status, "url"));
    if kind == ContentKind::Text {
        content.text = str_of(v, "message");
    } else {
        content.caption = str_of(v, "message");
    }
    content.title = str_of(status, "title");
    content
}
