//! Z-API callbacks (and Hub Message's `Z_API` format): the seven `type`s, every message kind
//! and notification, as real traffic sends them (see tests/fixtures/zapi/SOURCES.md).

use super::json::Json;

use super::{alias, bool_of, f64_of, fingerprint_without, i64_of, minute_bucket, str_of, Body, ParseContext};
use crate::event::{
    from_epoch_guess, AliasKind, Chat, ChatKind, CloudEvent, Content, ContentKind, EventError, EventType,
    MessageStatus, Sender,
};
use crate::identity::{
    Key, ZAPI_DELIVERY, ZAPI_INSTANCE, ZAPI_NOTIFICATION, ZAPI_PRESENCE, ZAPI_RECEIVED, ZAPI_STATUS,
};

/// Whether a JSON object looks like a Z-API callback (`type: "…Callback"`).
pub(crate) fn is_zapi_shape(v: &Json<'_>) -> bool {
    v.get("type")
        .and_then(Json::as_str)
        .and_then(|t| t.len().checked_sub(8).and_then(|start| t.get(start..)))
        .is_some_and(|suffix| suffix.eq_ignore_ascii_case("callback"))
}

/// Parse a Z-API callback body.
pub(crate) fn parse(ctx: &ParseContext<'_>, body: &Body<'_>) -> Vec<CloudEvent> {
    let v = body.value;
    let instance = str_of(v, "instanceId").unwrap_or_else(|| "-".to_owned());
    let kind = v.get("type").and_then(Json::as_str).unwrap_or_default();
    // The docs' attribute table spells it `ReceivedCallBack`: compare without case.
    let is = |name: &str| kind.eq_ignore_ascii_case(name);
    if is("ReceivedCallback") {
        vec![received(ctx, body, &instance)]
    } else if is("MessageStatusCallback") {
        statuses(ctx, body, &instance)
    } else if is("DeliveryCallback") {
        vec![delivery(ctx, body, &instance)]
    } else if is("PresenceChatCallback") {
        vec![presence(ctx, body, &instance)]
    } else if is("ConnectedCallback") || is("DisconnectedCallback") || is("ProxyCallback") {
        vec![instance_event(ctx, body, &instance, kind)]
    } else {
        vec![super::unknown(ctx, body, &instance)]
    }
}

/// The chat of a callback: `phone` verbatim, its kind from the suffix and flags.
fn chat_of(v: &Json<'_>) -> Option<Chat> {
    let id = str_of(v, "phone")?;
    let kind = if id == "status@broadcast" {
        ChatKind::Status
    } else if id.ends_with("-group") || id.ends_with("@g.us") || bool_of(v, "isGroup") == Some(true) {
        ChatKind::Group
    } else if id.ends_with("@newsletter") || bool_of(v, "isNewsletter") == Some(true) {
        ChatKind::Newsletter
    } else if id.ends_with("-broadcast") || id.ends_with("@broadcast") {
        ChatKind::Broadcast
    } else {
        ChatKind::Direct
    };
    let mut chat = Chat::new(id, kind);
    if kind == ChatKind::Direct {
        // Real traffic carries `chatLid`; the docs show `senderLid` instead; `phone` itself may be
        // the LID (Z-API: "`phone` may be the number or the `@lid`"). Groups have neither.
        chat.lid = ["chatLid", "senderLid", "phone"]
            .iter()
            .find_map(|k| str_of(v, k).and_then(|l| alias(AliasKind::Lid, &l)));
        chat.phone = alias(AliasKind::Phone, &chat.id);
    }
    Some(chat)
}

/// The time of a callback: `momment` (ms; the Disconnected example is in s), else receipt.
fn time_of(ctx: &ParseContext<'_>, v: &Json<'_>) -> chrono::DateTime<chrono::Utc> {
    let provider_time = i64_of(v, "momment")
        .or_else(|| i64_of(v, "moment"))
        .and_then(from_epoch_guess);
    ctx.event_time(provider_time)
}

fn received(ctx: &ParseContext<'_>, body: &Body<'_>, instance: &str) -> CloudEvent {
    let v = body.value;
    let mut data = body.data();
    let chat = chat_of(v);
    let from_me = bool_of(v, "fromMe");
    let is_group = chat.as_ref().is_some_and(|c| c.kind == ChatKind::Group);
    let participant = if is_group {
        str_of(v, "participantPhone").or_else(|| str_of(v, "participantLid"))
    } else {
        None
    };
    data.message_id = str_of(v, "messageId");
    data.from_me = from_me;
    data.participant = participant.clone();
    data.reply_to = str_of(v, "referenceMessageId");
    data.sender = Some(sender_of(v, chat.as_ref(), from_me == Some(true)));

    let notification = str_of(v, "notification");
    let rule = if notification.is_some() {
        &ZAPI_NOTIFICATION
    } else {
        &ZAPI_RECEIVED
    };
    let (event_type, what) = match &notification {
        Some(name) => {
            data.notification = Some(name.clone());
            data.parameters = v
                .get("notificationParameters")
                .filter(|p| !p.is_null())
                .map(Json::to_value);
            (EventType::Notification, format!("notification:{name}"))
        }
        None => {
            let content = content_of(v);
            if let Some(r) = content_reference(v) {
                data.reply_to = Some(r);
            }
            let what = content_identity(v, &content);
            data.content = Some(content);
            (EventType::MessageReceived, what)
        }
    };
    data.chat = chat;

    let subject = data.chat.as_ref().map(|c| c.id.clone());
    let key = match &data.message_id {
        // `momment` changes between redeliveries of one message: never part of the key.
        Some(id) => Key::of(rule, id)
            .from_me(from_me)
            .or_dash(participant.as_deref())
            .part(&what)
            .build(),
        // Profile and label notifications carry no message id.
        None => Key::of(rule, &what)
            .part(fingerprint_without(v, &["momment", "moment"]))
            .without_natural_key(ctx.delivery_id),
    };
    let t = time_of(ctx, v);
    super::event(ctx, instance, event_type, subject, &key, t, data)
}

/// Who sent a ReceivedCallback message.
fn sender_of(v: &Json<'_>, chat: Option<&Chat>, from_me: bool) -> Sender {
    let name = str_of(v, "senderName");
    match chat.map(|c| c.kind) {
        Some(ChatKind::Group) | Some(ChatKind::Status) | Some(ChatKind::Newsletter) => {
            let lid = str_of(v, "participantLid");
            // `participantPhone` is sometimes the LID's digits: not a phone then.
            let lid_digits = lid.as_deref().and_then(|l| l.strip_suffix("@lid")).unwrap_or_default();
            Sender {
                phone: str_of(v, "participantPhone").filter(|p| !p.contains('@') && p != lid_digits),
                lid,
                name,
                ..Sender::default()
            }
        }
        _ if from_me => Sender {
            phone: str_of(v, "connectedPhone"),
            lid: None,
            name,
            ..Sender::default()
        },
        _ => Sender {
            phone: str_of(v, "phone").filter(|p| !p.contains('@')),
            lid: chat.and_then(|c| c.lid.clone()),
            name,
            ..Sender::default()
        },
    }
}

/// What distinguishes two events about the same message id: the content kind, plus the
/// reaction's emoji and time (a changed or removed reaction is a new event) and an edit's id.
fn content_identity(v: &Json<'_>, content: &Content) -> String {
    let mut what = content
        .wire_kind
        .clone()
        .unwrap_or_else(|| content.kind.as_str().to_owned());
    if content.kind == ContentKind::Reaction {
        let r = &v["reaction"];
        what.push_str(&format!(
            ":{}:{}",
            str_of(r, "value").unwrap_or_default(),
            str_of(r, "time").unwrap_or_default()
        ));
    }
    if bool_of(v, "isEdit") == Some(true) {
        what.push_str(&format!(":edit:{}", str_of(v, "editMessageId").unwrap_or_default()));
    }
    what
}

/// The message a reaction, vote, pin or event response points at.
fn content_reference(v: &Json<'_>) -> Option<String> {
    str_of(&v["reaction"]["referencedMessage"], "messageId")
        .or_else(|| str_of(&v["pollVote"], "pollMessageId"))
        .or_else(|| str_of(&v["pinMessage"]["referencedMessage"], "messageId"))
        .or_else(|| str_of(&v["eventResponse"]["referencedMessage"], "messageId"))
}

/// The content keys Z-API uses and their canonical kind. Exactly one is present on a message;
/// none on a waiting message or a notification.
fn content_kind_of_key(key: &str) -> Option<ContentKind> {
    Some(match key {
        "text" => ContentKind::Text,
        "image" => ContentKind::Image,
        "audio" => ContentKind::Audio,
        "video" => ContentKind::Video,
        "ptv" => ContentKind::Ptv,
        "document" => ContentKind::Document,
        "sticker" => ContentKind::Sticker,
        "contact" => ContentKind::Contact,
        "location" => ContentKind::Location,
        "liveLocation" => ContentKind::LiveLocation,
        "reaction" => ContentKind::Reaction,
        "poll" => ContentKind::Poll,
        "pollVote" => ContentKind::PollVote,
        "buttonsResponseMessage" => ContentKind::ButtonReply,
        "listResponseMessage" => ContentKind::ListReply,
        "buttonsMessage" | "carouselMessage" => ContentKind::Interactive,
        "hydratedTemplate" => ContentKind::Template,
        "pixKeyMessage" | "requestPayment" | "sendPayment" | "reviewAndPay" => ContentKind::Payment,
        "reviewOrder" | "order" | "product" => ContentKind::Order,
        "event" | "eventResponse" => ContentKind::Event,
        "pinMessage" | "newsletterAdminInvite" => ContentKind::Other,
        _ => return None,
    })
}

/// A ReceivedCallback's content: its one content object read into the canonical fields, or
/// what the body is when it has none (a waiting message, or a kind we don't know yet).
fn content_of(v: &Json<'_>) -> Content {
    let Some((key, kind, c)) = content_object(v) else {
        return content_without_object(v);
    };
    let mut content = Content::new(kind);
    content.wire_kind = Some(key.to_owned());
    match kind {
        ContentKind::Image
        | ContentKind::Video
        | ContentKind::Ptv
        | ContentKind::Audio
        | ContentKind::Sticker
        | ContentKind::Document => media_fields(&mut content, key, c),
        ContentKind::ButtonReply
        | ContentKind::ListReply
        | ContentKind::Interactive
        | ContentKind::Template
        | ContentKind::Payment
        | ContentKind::Order => business_fields(&mut content, key, c),
        _ => message_fields(&mut content, key, c),
    }
    content
}

/// The body's content object: its key, kind and value. One pass over the body's keys (a
/// lookup per known key would be ~30 map searches).
fn content_object<'a, 'v>(v: &'a Json<'v>) -> Option<(&'a str, ContentKind, &'a Json<'v>)> {
    v.entries()
        .filter(|(_, c)| c.is_object())
        .find_map(|(key, c)| content_kind_of_key(key).map(|kind| (key, kind, c)))
}

/// No content object: a waiting message ("waiting for this message"), or an unknown kind,
/// kept with the first unfamiliar object key named (`raw` has the rest).
fn content_without_object(v: &Json<'_>) -> Content {
    if bool_of(v, "waitingMessage") == Some(true) {
        return Content::new(ContentKind::Waiting);
    }
    let mut c = Content::new(ContentKind::Other);
    c.wire_kind = v
        .entries()
        .find(|(k, x)| x.is_object() && !ENVELOPE_OBJECTS.contains(k))
        .map(|(k, _)| k.to_owned());
    c
}

/// Image, video, round video (ptv), audio, sticker, document: each names its URL after itself.
fn media_fields(content: &mut Content, key: &str, c: &Json<'_>) {
    let url_key = match key {
        "image" => "imageUrl",
        "video" => "videoUrl",
        "ptv" => "ptvUrl",
        "audio" => "audioUrl",
        "sticker" => "stickerUrl",
        _ => "documentUrl",
    };
    content.media_url = str_of(c, url_key);
    content.caption = str_of(c, "caption");
    content.mime_type = str_of(c, "mimeType").or_else(|| str_of(c, "mimetype"));
    content.file_name = str_of(c, "fileName");
    content.title = str_of(c, "title");
}

/// What people send each other: text, contact, location, reaction, poll and vote, event,
/// pin, channel invite.
fn message_fields(content: &mut Content, key: &str, c: &Json<'_>) {
    match key {
        "text" => {
            content.text = str_of(c, "message");
            content.title = str_of(c, "title");
            content.media_url = str_of(c, "url");
        }
        "contact" => {
            content.title = str_of(c, "displayName");
            content.text = str_of(c, "vCard");
        }
        "location" | "liveLocation" => {
            content.latitude = f64_of(c, "latitude");
            content.longitude = f64_of(c, "longitude");
            content.title = str_of(c, "name");
            content.text = str_of(c, "address").or_else(|| str_of(c, "caption"));
        }
        "reaction" => {
            content.text = str_of(c, "value");
            // An empty emoji means the reaction was taken back.
            content.removed = c.get("value").and_then(Json::as_str) == Some("");
        }
        "poll" => {
            content.text = str_of(c, "question");
            content.options = option_names(c);
        }
        "pollVote" => content.options = option_names(c),
        "event" => {
            content.title = str_of(c, "name");
            content.text = str_of(c, "description");
        }
        "eventResponse" => content.text = str_of(c, "response"),
        "newsletterAdminInvite" => {
            content.title = str_of(c, "newsletterName");
            content.text = str_of(c, "text");
        }
        _ => {}
    }
}

/// What businesses send and get back: buttons and lists and the replies to them, carousels,
/// templates, products, orders, payments.
fn business_fields(content: &mut Content, key: &str, c: &Json<'_>) {
    match key {
        "buttonsResponseMessage" => {
            content.text = str_of(c, "message");
            content.selected_id = str_of(c, "buttonId");
        }
        "listResponseMessage" => {
            content.text = str_of(c, "message");
            content.title = str_of(c, "title");
            content.selected_id = str_of(c, "selectedRowId");
        }
        "buttonsMessage" => {
            content.text = str_of(c, "message");
            content.media_url = str_of(c, "imageUrl").or_else(|| str_of(c, "videoUrl"));
        }
        "carouselMessage" => content.text = str_of(c, "text"),
        "hydratedTemplate" => {
            content.text = str_of(c, "message");
            content.title = str_of(c, "title");
        }
        "product" => content.title = str_of(c, "title"),
        "order" => {
            content.title = str_of(c, "orderTitle");
            content.text = str_of(c, "message");
        }
        "pixKeyMessage" => content.title = str_of(c, "merchantName"),
        _ => {}
    }
}

/// Objects in a ReceivedCallback that are envelope, not content.
const ENVELOPE_OBJECTS: &[&str] = &["externalAdReply", "statusImage", "statusVideo", "statusAudio"];

fn option_names(c: &Json<'_>) -> Vec<String> {
    c.get("options")
        .and_then(Json::as_array)
        .map(|opts| opts.iter().filter_map(|o| str_of(o, "name")).collect())
        .unwrap_or_default()
}

/// Z-API's status words → ours; older spellings included.
fn map_status(word: &str) -> Option<MessageStatus> {
    let word = word.strip_prefix("MESSAGE_").unwrap_or(word);
    Some(match word {
        "PENDING" => MessageStatus::Pending,
        "SENT" => MessageStatus::Sent,
        "RECEIVED" => MessageStatus::Delivered,
        "READ" => MessageStatus::Read,
        "READ_BY_ME" | "READ-SELF" | "READ_SELF" => MessageStatus::ReadByMe,
        "PLAYED" => MessageStatus::Played,
        "DELETED" => MessageStatus::Deleted,
        "FAILED" | "ERROR" => MessageStatus::Failed,
        _ => return None,
    })
}

/// One `whatsapp.message.status` event per id in `ids`.
fn statuses(ctx: &ParseContext<'_>, body: &Body<'_>, instance: &str) -> Vec<CloudEvent> {
    let v = body.value;
    let word = str_of(v, "status").unwrap_or_default();
    let status = map_status(&word);
    let chat = chat_of(v);
    let subject = chat.as_ref().map(|c| c.id.clone());
    let participant = str_of(v, "participant");
    let t = time_of(ctx, v);
    let ids: Vec<Option<String>> = match v.get("ids").and_then(Json::as_array) {
        Some(ids) if !ids.is_empty() => ids
            .iter()
            .map(|id| match id {
                Json::String(s) => Some(s.as_ref().to_owned()),
                Json::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        _ => vec![None],
    };
    ids.into_iter()
        .map(|message_id| {
            let mut data = body.data();
            data.message_id = message_id.clone();
            data.chat = chat.clone();
            data.status = status;
            data.participant = participant.clone();
            let key = match &message_id {
                Some(id) => Key::of(&ZAPI_STATUS, id)
                    .part(&word)
                    .or_dash(participant.as_deref())
                    .build(),
                None => {
                    Key::of(&ZAPI_STATUS, fingerprint_without(v, &["momment"])).without_natural_key(ctx.delivery_id)
                }
            };
            super::event(ctx, instance, EventType::MessageStatus, subject.clone(), &key, t, data)
        })
        .collect()
}

fn delivery(ctx: &ParseContext<'_>, body: &Body<'_>, instance: &str) -> CloudEvent {
    let v = body.value;
    let mut data = body.data();
    data.message_id = str_of(v, "messageId");
    data.chat = chat_of(v);
    data.from_me = Some(true);
    // Success and failure arrive on the same URL: only `error` tells them apart.
    data.error = str_of(v, "error").map(|message| EventError {
        code: str_of(v, "errorCode"),
        message,
    });
    let failed = data.error.is_some();
    data.status = Some(if failed {
        MessageStatus::Failed
    } else {
        MessageStatus::Sent
    });
    let id = str_of(v, "zaapId")
        .or_else(|| data.message_id.clone())
        .unwrap_or_else(|| {
            Key::of(&ZAPI_DELIVERY, fingerprint_without(v, &["momment"])).without_natural_key(ctx.delivery_id)
        });
    let key = Key::of(&ZAPI_DELIVERY, &id)
        .part(if failed { "failed" } else { "ok" })
        .build();
    let subject = data.chat.as_ref().map(|c| c.id.clone());
    super::event(
        ctx,
        instance,
        EventType::MessageSent,
        subject,
        &key,
        time_of(ctx, v),
        data,
    )
}

fn presence(ctx: &ParseContext<'_>, body: &Body<'_>, instance: &str) -> CloudEvent {
    let v = body.value;
    let mut data = body.data();
    data.chat = chat_of(v);
    data.presence = str_of(v, "status").map(|s| s.to_ascii_lowercase());
    // `lastSeen` is documented as a timestamp but null in every capture.
    let last_seen = i64_of(v, "lastSeen").and_then(from_epoch_guess);
    let subject = data.chat.as_ref().map(|c| c.id.clone());
    let presence = data.presence.clone().unwrap_or_else(|| "-".to_owned());
    let key = match last_seen {
        Some(t) => Key::of(&ZAPI_PRESENCE, &presence).part(t.timestamp_millis()).build(),
        // No time: the id is fixed when stored, from the chat's presence changes (a state event).
        None => Key::of(&ZAPI_PRESENCE, &presence)
            .part("state")
            .without_natural_key(ctx.delivery_id),
    };
    let event = super::event(
        ctx,
        instance,
        EventType::ChatPresence,
        subject,
        &key,
        ctx.received_at,
        data,
    );
    match last_seen {
        Some(_) => event,
        None => event.with_state("presence", presence),
    }
}

/// Connected, Disconnected and Proxy callbacks: instance state, no chat.
fn instance_event(ctx: &ParseContext<'_>, body: &Body<'_>, instance: &str, kind: &str) -> CloudEvent {
    let v = body.value;
    let event_type = if kind.eq_ignore_ascii_case("ConnectedCallback") {
        EventType::InstanceConnected
    } else if kind.eq_ignore_ascii_case("DisconnectedCallback") {
        EventType::InstanceDisconnected
    } else {
        EventType::InstanceProxyFailed
    };
    let mut data = body.data();
    data.error = str_of(v, "error").map(|message| EventError { code: None, message });
    let momment = i64_of(v, "momment");
    // Connection changes without a time are state events (the id is fixed when stored); a proxy
    // failure without one is keyed to its body and minute.
    let connection = match event_type {
        EventType::InstanceConnected => Some("connected"),
        EventType::InstanceDisconnected => Some("disconnected"),
        _ => None,
    };
    let key = match (momment, connection) {
        (Some(m), _) => Key::of(&ZAPI_INSTANCE, m).build(),
        (None, Some(state)) => Key::of(&ZAPI_INSTANCE, state)
            .part("state")
            .without_natural_key(ctx.delivery_id),
        (None, None) => Key::of(&ZAPI_INSTANCE, fingerprint_without(v, &[]))
            .part(minute_bucket(ctx))
            .without_natural_key(ctx.delivery_id),
    };
    let event = super::event(ctx, instance, event_type, None, &key, time_of(ctx, v), data);
    match (momment, connection) {
        (None, Some(state)) => event.with_state("connection", state),
        _ => event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Provider;
    use crate::providers::{parse as parse_body, ParseContext};
    use chrono::Utc;

    fn parse(json: &str) -> Vec<CloudEvent> {
        parse_body(&ParseContext::new(Provider::Zapi, "ep", Utc::now()), json.as_bytes()).expect("valid")
    }

    #[test]
    fn status_callback_with_three_ids_yields_three_events() {
        let events = parse(
            r#"{"type":"MessageStatusCallback","instanceId":"I","status":"READ","ids":["a","b","c"],"momment":1757387334000,"phone":"5511-group","isGroup":true,"participant":"55"}"#,
        );
        let ids: Vec<_> = events
            .iter()
            .map(|e| e.data.message_id.clone().unwrap_or_default())
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert!(events.iter().all(|e| e.data.status == Some(MessageStatus::Read)));
        assert_ne!(events[0].id, events[1].id);
    }

    #[test]
    fn status_words_map_to_canonical_statuses() {
        for (word, want) in [
            ("SENT", "sent"),
            ("RECEIVED", "delivered"),
            ("READ", "read"),
            ("READ_BY_ME", "read_by_me"),
            ("PLAYED", "played"),
            ("READ-SELF", "read_by_me"),
            ("MESSAGE_RECEIVED", "delivered"),
        ] {
            assert_eq!(map_status(word).map(MessageStatus::as_str), Some(want), "{word}");
        }
    }

    #[test]
    fn unknown_content_kind_is_kept_as_other() {
        let e =
            &parse(r#"{"type":"ReceivedCallback","instanceId":"I","messageId":"m","phone":"1","hologram":{"x":1}}"#)[0];
        let content = e.data.content.as_ref().expect("content");
        assert_eq!(content.kind, ContentKind::Other);
        assert_eq!(content.wire_kind.as_deref(), Some("hologram"));
    }

    #[test]
    fn a_changed_reaction_is_a_new_event_but_a_redelivery_is_not() {
        let r = |emoji: &str, momment: u64| {
            parse(&format!(
                r#"{{"type":"ReceivedCallback","instanceId":"I","messageId":"m","phone":"1","momment":{momment},"reaction":{{"value":"{emoji}","time":5}}}}"#
            ))[0]
                .id
                .clone()
        };
        assert_eq!(r("👍", 1757390383001), r("👍", 1757390999000));
        assert_ne!(r("👍", 1757390383001), r("", 1757390383001));
    }
}
