//! Hub Message (and Omni Z-API): the `DEFAULT` channel format (`{message, messageEventType}`),
//! template webhooks (a JSON array in Meta's shape) and the `Z_API` format (Z-API bodies).

use super::json::Json;

use super::{fingerprint_without, i64_of, str_of, zapi, Body, ParseContext};
use crate::event::{
    from_epoch_guess, Chat, ChatKind, CloudEvent, Content, ContentKind, EventType, MessageStatus, Sender,
};
use crate::identity::{Key, HUB_MESSAGE, HUB_TEMPLATE};
use crate::route::Route;

/// Parse a Hub Message body in whichever of its formats it arrived.
pub(crate) fn parse(ctx: &ParseContext<'_>, body: &Body<'_>) -> Vec<CloudEvent> {
    let v = body.value;
    if let Some(items) = v.as_array() {
        return templates(ctx, body, items);
    }
    if zapi::is_zapi_shape(v) {
        // The `Z_API` payload format: the same bodies as Z-API itself.
        return zapi::parse(ctx, body);
    }
    match v.get("message") {
        Some(m) if m.is_object() => vec![channel_message(ctx, body, m)],
        _ => Vec::new(),
    }
}

/// Template webhooks: `[{field, identifier, type, value{…}, waba_id}]`, one event per item.
fn templates(ctx: &ParseContext<'_>, body: &Body<'_>, items: &[Json<'_>]) -> Vec<CloudEvent> {
    items
        .iter()
        .enumerate()
        .filter(|(_, item)| item.get("field").is_some() || item.get("waba_id").is_some())
        .map(|(index, item)| {
            let instance = str_of(item, "waba_id").unwrap_or_else(|| "-".to_owned());
            let mut data = body.data();
            data.notification = str_of(item, "type").or_else(|| str_of(item, "field"));
            data.parameters = item.get("value").map(Json::to_value);
            let key = match str_of(item, "identifier") {
                Some(identifier) => Key::of(&HUB_TEMPLATE, identifier).build(),
                None => Key::of(&HUB_TEMPLATE, index)
                    .part(fingerprint_without(item, &[]))
                    .without_natural_key(ctx.delivery_id),
            };
            super::event(
                ctx,
                &instance,
                EventType::TemplateUpdated,
                None,
                &key,
                ctx.received_at,
                data,
            )
        })
        .collect()
}

/// Hub's state names (`state_items[].state.name`) → ours. Only `PENDING` is documented.
fn map_state(name: &str) -> Option<MessageStatus> {
    Some(match name.to_ascii_uppercase().as_str() {
        "PENDING" => MessageStatus::Pending,
        "SENT" => MessageStatus::Sent,
        "DELIVERED" | "RECEIVED" => MessageStatus::Delivered,
        "READ" | "VIEWED" => MessageStatus::Read,
        "PLAYED" => MessageStatus::Played,
        "FAILED" | "ERROR" => MessageStatus::Failed,
        "DELETED" => MessageStatus::Deleted,
        _ => return None,
    })
}

/// Which event a `DEFAULT` channel body is. The body says it where it can: a known
/// `messageEventType`; `metadata.from_me: false` (a customer's message: received); a message of
/// ours whose last `state_items[].state.name` is past sending (delivered, read, played, failed,
/// deleted: a status). What the body cannot tell apart, a message of ours that is only pending
/// or sent (Hub's `MESSAGE_DELIVERY`, or one sent from the phone), the route decides:
/// `message-received` → received, otherwise sent. Without `from_me` the route decides all.
fn classify(
    ctx: &ParseContext<'_>,
    event_type_field: Option<&str>,
    from_me: Option<bool>,
    status: Option<MessageStatus>,
) -> EventType {
    match event_type_field {
        Some("MESSAGE_RECEIVED") => return EventType::MessageReceived,
        Some("MESSAGE_DELIVERY") => return EventType::MessageSent,
        Some("MESSAGE_STATUS") | Some("RECEIVED_STATUS") => return EventType::MessageStatus,
        _ => {}
    }
    let past_sending = status.is_some_and(|s| s.rank() >= MessageStatus::Delivered.rank());
    match (from_me, ctx.route) {
        (Some(false), _) => EventType::MessageReceived,
        (Some(true), _) if past_sending => EventType::MessageStatus,
        (Some(true), Some(Route::MessageReceived)) => EventType::MessageReceived,
        (Some(true), _) => EventType::MessageSent,
        (None, Some(Route::MessageSent)) => EventType::MessageSent,
        (None, Some(Route::MessageStatus)) => EventType::MessageStatus,
        (None, _) => EventType::MessageReceived,
    }
}

/// A channel webhook message, classified by [`classify`].
fn channel_message(ctx: &ParseContext<'_>, body: &Body<'_>, m: &Json<'_>) -> CloudEvent {
    let instance = str_of(m, "channel_id").unwrap_or_else(|| "-".to_owned());
    let meta = &m["metadata"];
    let from_me = super::bool_of(meta, "from_me");
    let item = first_item(m);
    let state = item
        .and_then(|i| i.get("state_items"))
        .and_then(Json::as_array)
        .and_then(|states| states.last())
        .and_then(|s| str_of(&s["state"], "name"));
    let event_type = classify(
        ctx,
        body.value.get("messageEventType").and_then(Json::as_str),
        from_me,
        state.as_deref().and_then(map_state),
    );

    let mut data = body.data();
    data.message_id = str_of(m, "_id");
    data.from_me = from_me;
    // The customer is the recipient of what we send and the sender of what we receive.
    let counterpart = if from_me == Some(true) {
        &m["recipient"]
    } else {
        &m["sender"]
    };
    // Hub documents no alias of a customer (its identifiers may be Instagram's): the chat's id only.
    data.chat = str_of(counterpart, "identifier").map(|id| Chat::new(id, ChatKind::Direct));
    data.sender = Some(Sender {
        phone: str_of(&m["sender"], "identifier"),
        lid: None,
        name: str_of(&m["sender"], "name"),
        ..Sender::default()
    });
    data.content = Some(item.map(content_of).unwrap_or_else(|| Content::new(ContentKind::Other)));
    data.status = state.as_deref().and_then(map_state);

    let subject = data.chat.as_ref().map(|c| c.id.clone());
    let key = match &data.message_id {
        Some(id) => Key::of(&HUB_MESSAGE, id).or_dash(state.as_deref()).build(),
        None => Key::of(&HUB_MESSAGE, fingerprint_without(body.value, &[])).without_natural_key(ctx.delivery_id),
    };
    let time = ctx.event_time(
        i64_of(meta, "moment")
            .or_else(|| i64_of(m, "created"))
            .and_then(from_epoch_guess),
    );
    super::event(ctx, &instance, event_type, subject, &key, time, data)
}

/// The message's first content or attachment.
fn first_item<'j, 'a>(m: &'j Json<'a>) -> Option<&'j Json<'a>> {
    ["contents", "attachments"]
        .iter()
        .filter_map(|k| m.get(k).and_then(Json::as_array))
        .find_map(|items| items.first())
}

fn content_of(item: &Json<'_>) -> Content {
    let wire = str_of(item, "type").unwrap_or_default();
    let kind = match wire.as_str() {
        "TEXT" => ContentKind::Text,
        "IMAGE" => ContentKind::Image,
        "AUDIO" => ContentKind::Audio,
        "VIDEO" => ContentKind::Video,
        "STICKER" => ContentKind::Sticker,
        "DOCUMENT" => ContentKind::Document,
        "LOCATION" => ContentKind::Location,
        "CONTACT_ARRAY" | "CONTACT" => ContentKind::Contact,
        "TEMPLATE" => ContentKind::Template,
        w if w.starts_with("INTERACTIVE") => ContentKind::Interactive,
        _ => ContentKind::Other,
    };
    let mut content = Content::new(kind);
    content.wire_kind = (!wire.is_empty()).then_some(wire);
    content.text = str_of(item, "message");
    content.caption = str_of(item, "caption");
    content.media_url = str_of(item, "url");
    content.mime_type = str_of(item, "mime_type").or_else(|| str_of(item, "mimeType"));
    content.file_name = str_of(item, "file_name").or_else(|| str_of(item, "fileName"));
    if kind == ContentKind::Contact {
        content.options = item
            .get("contacts")
            .and_then(Json::as_array)
            .map(|cs| cs.iter().filter_map(|c| str_of(c, "name")).collect())
            .unwrap_or_default();
    }
    content
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Provider;

    fn ctx(route: Option<Route>) -> ParseContext<'static> {
        ParseContext {
            route,
            ..ParseContext::new(Provider::Hubmessage, "ep", chrono::Utc::now())
        }
    }

    #[test]
    fn default_bodies_are_classified_from_the_body_where_it_can_tell() {
        let any = ctx(Some(Route::Any));
        let read = Some(MessageStatus::Read);
        let pending = Some(MessageStatus::Pending);
        assert_eq!(classify(&any, None, Some(false), None), EventType::MessageReceived);
        assert_eq!(classify(&any, None, Some(true), read), EventType::MessageStatus);
        assert_eq!(
            classify(&any, None, Some(true), Some(MessageStatus::Failed)),
            EventType::MessageStatus
        );
        assert_eq!(classify(&any, None, Some(true), pending), EventType::MessageSent);
        assert_eq!(
            classify(&ctx(Some(Route::MessageReceived)), None, Some(true), pending),
            EventType::MessageReceived,
            "only the route tells an echo from a send"
        );
        assert_eq!(
            classify(&ctx(Some(Route::MessageStatus)), None, Some(false), None),
            EventType::MessageReceived,
            "the body outranks the route"
        );
        assert_eq!(
            classify(&any, Some("MESSAGE_STATUS"), Some(true), pending),
            EventType::MessageStatus
        );
        assert_eq!(
            classify(&ctx(Some(Route::MessageSent)), None, None, None),
            EventType::MessageSent
        );
    }
}
