//! Evolution API (v1.8 and v2.x): the envelope `{event, instance, data, date_time, sender,
//! server_url, apikey}` and the Baileys-shaped `data` of each event (see `docs/events.md`'s
//! Evolution row and tests/fixtures/evolution/SOURCES.md). The body names its event, so one URL
//! or one per event (`webhook_by_events`, which appends `/messages-upsert`…) reads the same.
//!
//! What Evolution repeats on a redelivery: the identical body (the same `date_time` too); it
//! has no delivery id. Messages are keyed on their WhatsApp id, statuses on the id and the
//! status, and events without an id on their body (so a retry merges, a new emission, with its
//! own `date_time`, does not).

use super::json::Json;

use super::{alias, fingerprint_without, i64_of, jid_chat, jid_phone, str_of, Body, ParseContext};
use crate::event::{
    from_epoch_guess, AliasKind, ChatKind, CloudEvent, Content, ContentKind, EventType, MessageStatus, Sender,
};
use crate::identity::{Key, EVOLUTION_MESSAGE, EVOLUTION_OTHER, EVOLUTION_STATUS};

/// Parse an Evolution API webhook body.
pub(crate) fn parse(ctx: &ParseContext<'_>, body: &Body<'_>) -> Vec<CloudEvent> {
    let v = body.value;
    let Some(event) = v.get("event").and_then(Json::as_str) else {
        return Vec::new();
    };
    let instance = str_of(v, "instance").unwrap_or_else(|| "-".to_owned());
    let data = &v["data"];
    // `data` is one object or, for some events (contacts, chats, history), an array of them.
    let items: Vec<&Json<'_>> = match data.as_array() {
        Some(items) => items.iter().collect(),
        None => vec![data],
    };
    let normalized = event.to_ascii_lowercase().replace('_', ".");
    items
        .into_iter()
        .enumerate()
        .filter_map(|(index, d)| match normalized.as_str() {
            "messages.upsert" => message(ctx, body, &instance, d, EventType::MessageReceived),
            "send.message" => message(ctx, body, &instance, d, EventType::MessageSent),
            "messages.update" => status(ctx, body, &instance, d),
            "messages.delete" => deleted(ctx, body, &instance, d),
            "connection.update" => connection(ctx, body, &instance, d),
            "presence.update" => presence(ctx, body, &instance, d),
            _ => notification(ctx, body, &instance, event, d, index),
        })
        .collect()
}

/// Evolution's status words (`renderStatus`) → ours.
fn map_status(word: &str) -> Option<MessageStatus> {
    Some(match word.to_ascii_uppercase().as_str() {
        "ERROR" => MessageStatus::Failed,
        "PENDING" => MessageStatus::Pending,
        "SERVER_ACK" => MessageStatus::Sent,
        "DELIVERY_ACK" => MessageStatus::Delivered,
        "READ" => MessageStatus::Read,
        "PLAYED" => MessageStatus::Played,
        "DELETED" => MessageStatus::Deleted,
        _ => return None,
    })
}

/// The chat of a message key: `remoteJid`, or its phone form `remoteJidAlt` when the JID is a
/// LID (2.3.7 rewrites `remoteJid` to the phone form itself, older versions do not: one chat id
/// across versions).
///
/// A direct chat also carries every alias of the person the key shows: the LID and the phone
/// form among `remoteJid`, `remoteJidAlt`, and 2.3.1–2.3.4's `senderPn` and `previousRemoteJid`.
fn key_chat(key: &Json<'_>) -> Option<crate::event::Chat> {
    let jid = str_of(key, "remoteJid")?;
    let alt = str_of(key, "remoteJidAlt").filter(|a| !a.ends_with("@lid"));
    let mut chat = jid_chat(alt.as_deref().unwrap_or(&jid));
    if chat.kind == ChatKind::Direct {
        let jids: Vec<String> = ["remoteJid", "remoteJidAlt", "senderPn", "previousRemoteJid"]
            .iter()
            .filter_map(|k| str_of(key, k))
            .collect();
        chat.lid = jids.iter().find_map(|j| alias(AliasKind::Lid, j));
        chat.phone = jids.iter().find_map(|j| jid_phone(j));
    }
    Some(chat)
}

/// The sender of a group message: `participant` and `participantAlt` (one is the LID, the
/// other the phone form, in either order), with both aliases.
fn participant_sender(key: &Json<'_>) -> Sender {
    let jids: Vec<String> = ["participant", "participantAlt"]
        .iter()
        .filter_map(|k| str_of(key, k))
        .collect();
    Sender {
        phone: jids.iter().find_map(|j| jid_phone(j)),
        lid: jids.iter().find_map(|j| alias(AliasKind::Lid, j)),
        ..Sender::default()
    }
}

/// A Baileys timestamp: a number, a numeric string, or a protobuf Long `{low, high}`.
fn seconds(v: &Json<'_>, key: &str) -> Option<i64> {
    i64_of(v, key).or_else(|| {
        let long = v.get(key)?;
        let low = i64_of(long, "low")?;
        let high = i64_of(long, "high").unwrap_or(0);
        Some((high << 32) | (low & 0xffff_ffff))
    })
}

/// Wrappers around the content of a message (disappearing, view-once, edited, captioned).
const WRAPPERS: &[&str] = &[
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
    "editedMessage",
];

/// Keys of `message` that are metadata or our own additions, never the content.
const NOT_CONTENT: &[&str] = &[
    "messageContextInfo",
    "senderKeyDistributionMessage",
    "base64",
    "mediaUrl",
    "speechToText",
];

/// The content of a `message`: unwrapped, its kind from its key, `wire_kind` the key.
fn content_of(message: &Json<'_>, message_type: Option<&str>) -> (Content, Option<String>) {
    let m = unwrapped(message);
    let Some((key, c)) = m.entries().find(|(k, _)| !NOT_CONTENT.contains(k)) else {
        let mut content = Content::new(ContentKind::Other);
        content.wire_kind = message_type.map(str::to_owned);
        return (content, None);
    };
    let mut content = Content::new(kind_of_key(key));
    content.wire_kind = Some(key.to_owned());
    fill_fields(&mut content, key, c, m);
    (content, points_at(key, c))
}

/// The message inside its wrappers (ephemeral, view-once, …: at most four deep).
fn unwrapped<'a, 'v>(message: &'a Json<'v>) -> &'a Json<'v> {
    let mut m = message;
    for _ in 0..4 {
        match WRAPPERS.iter().find_map(|w| m.get(w).map(|inner| &inner["message"])) {
            Some(inner) if inner.is_object() => m = inner,
            _ => break,
        }
    }
    m
}

/// Baileys' message keys and their canonical kind.
fn kind_of_key(key: &str) -> ContentKind {
    match key {
        "conversation" | "extendedTextMessage" => ContentKind::Text,
        "imageMessage" => ContentKind::Image,
        "videoMessage" => ContentKind::Video,
        "ptvMessage" => ContentKind::Ptv,
        "audioMessage" => ContentKind::Audio,
        "documentMessage" => ContentKind::Document,
        "stickerMessage" => ContentKind::Sticker,
        "locationMessage" => ContentKind::Location,
        "liveLocationMessage" => ContentKind::LiveLocation,
        "contactMessage" | "contactsArrayMessage" => ContentKind::Contact,
        "reactionMessage" => ContentKind::Reaction,
        "pollCreationMessage" | "pollCreationMessageV2" | "pollCreationMessageV3" => ContentKind::Poll,
        "pollUpdateMessage" => ContentKind::PollVote,
        "buttonsResponseMessage" | "templateButtonReplyMessage" => ContentKind::ButtonReply,
        "listResponseMessage" => ContentKind::ListReply,
        "templateMessage" => ContentKind::Template,
        "interactiveMessage" | "buttonsMessage" | "listMessage" => ContentKind::Interactive,
        "orderMessage" | "productMessage" => ContentKind::Order,
        "eventMessage" => ContentKind::Event,
        _ => ContentKind::Other,
    }
}

/// The message this one points at: a reaction's or a vote's target, else the quoted one.
fn points_at(key: &str, c: &Json<'_>) -> Option<String> {
    match key {
        "reactionMessage" => str_of(&c["key"], "id"),
        "pollUpdateMessage" => str_of(&c["pollCreationMessageKey"], "id"),
        _ => str_of(&c["contextInfo"], "stanzaId"),
    }
}

/// The content object `c` (under `key` in message `m`) read into the canonical fields.
fn fill_fields(content: &mut Content, key: &str, c: &Json<'_>, m: &Json<'_>) {
    match key {
        "conversation" => content.text = c.as_str().map(str::to_owned),
        "extendedTextMessage" => content.text = str_of(c, "text"),
        "imageMessage" | "videoMessage" | "ptvMessage" | "audioMessage" | "documentMessage" | "stickerMessage" => {
            content.caption = str_of(c, "caption");
            content.mime_type = str_of(c, "mimetype");
            content.file_name = str_of(c, "fileName");
            content.title = str_of(c, "title");
            // With S3 on, Evolution adds a plain URL; else WhatsApp's (encrypted) one.
            content.media_url = str_of(m, "mediaUrl").or_else(|| str_of(c, "url"));
        }
        "locationMessage" | "liveLocationMessage" => {
            content.latitude = super::f64_of(c, "degreesLatitude");
            content.longitude = super::f64_of(c, "degreesLongitude");
            content.title = str_of(c, "name");
            content.text = str_of(c, "address").or_else(|| str_of(c, "caption"));
        }
        "contactMessage" => {
            content.title = str_of(c, "displayName");
            content.text = str_of(c, "vcard");
        }
        "contactsArrayMessage" => {
            content.title = str_of(c, "displayName");
            content.options = names(c.get("contacts"), |x| str_of(x, "displayName"));
        }
        "reactionMessage" => {
            content.text = str_of(c, "text");
            content.removed = c.get("text").and_then(Json::as_str) == Some("");
        }
        "pollCreationMessage" | "pollCreationMessageV2" | "pollCreationMessageV3" => {
            content.text = str_of(c, "name");
            content.options = names(c.get("options"), |x| str_of(x, "optionName"));
        }
        "pollUpdateMessage" => {
            content.options = names(c["vote"].get("selectedOptions"), |x| x.as_str().map(str::to_owned));
        }
        "buttonsResponseMessage" => {
            content.text = str_of(c, "selectedDisplayText");
            content.selected_id = str_of(c, "selectedButtonId");
        }
        "templateButtonReplyMessage" => {
            content.text = str_of(c, "selectedDisplayText");
            content.selected_id = str_of(c, "selectedId");
        }
        "listResponseMessage" => {
            content.text = str_of(c, "title");
            content.selected_id = str_of(&c["singleSelectReply"], "selectedRowId");
        }
        _ => {}
    }
}

/// What `name` reads from each element of a JSON array (nothing when it is not one).
fn names(list: Option<&Json<'_>>, name: impl Fn(&Json<'_>) -> Option<String>) -> Vec<String> {
    list.and_then(Json::as_array)
        .map(|xs| xs.iter().filter_map(name).collect())
        .unwrap_or_default()
}

/// `messages.upsert` (received, and sent from the phone with `fromMe`) and `send.message`
/// (sent through the API).
fn message(
    ctx: &ParseContext<'_>,
    body: &Body<'_>,
    instance: &str,
    d: &Json<'_>,
    event_type: EventType,
) -> Option<CloudEvent> {
    let key = &d["key"];
    let mut data = body.data();
    let chat = key_chat(key);
    let from_me = super::bool_of(key, "fromMe");
    data.message_id = str_of(key, "id");
    data.from_me = from_me;
    let participant = str_of(key, "participantAlt")
        .or_else(|| str_of(key, "participant"))
        .filter(|_| chat.as_ref().is_some_and(|c| c.kind != ChatKind::Direct));
    let (content, reply_to) = content_of(&d["message"], d.get("messageType").and_then(Json::as_str));
    data.reply_to = reply_to.or_else(|| str_of(&d["contextInfo"], "stanzaId"));
    let author = match (&participant, from_me) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(true)) => str_of(body.value, "sender"),
        (None, _) => chat.as_ref().map(|c| c.id.clone()),
    };
    let sender = match &participant {
        Some(_) => participant_sender(key),
        None => Sender {
            phone: author.as_deref().and_then(jid_phone),
            lid: author.filter(|a| a.ends_with("@lid")),
            ..Sender::default()
        },
    };
    data.sender = Some(Sender {
        name: str_of(d, "pushName"),
        ..sender
    });
    data.participant = participant.clone();
    if event_type == EventType::MessageSent {
        data.status = str_of(d, "status").as_deref().and_then(map_status);
    }
    let subject = chat.as_ref().map(|c| c.id.clone());
    data.chat = chat;
    // A revoke inside an upsert (older versions) is a notification about the message it names.
    let (event_type, notification) = match content.wire_kind.as_deref() {
        Some("protocolMessage") => (EventType::Notification, Some("REVOKE")),
        _ => (event_type, None),
    };
    let identity = Key::of(&EVOLUTION_MESSAGE, data.message_id.as_deref().unwrap_or("-"))
        .from_me(from_me)
        .or_dash(participant.as_deref())
        .part(content.reaction_emoji())
        .build();
    let natural = match &data.message_id {
        Some(_) => identity,
        None => Key::of(&EVOLUTION_MESSAGE, fingerprint_without(body.value, &["apikey"]))
            .without_natural_key(ctx.delivery_id),
    };
    match notification {
        Some(name) => {
            data.notification = Some(name.to_owned());
            data.reply_to = str_of(&d["message"]["protocolMessage"]["key"], "id").or(data.reply_to);
        }
        None => data.content = Some(content),
    }
    let time = ctx.event_time(seconds(d, "messageTimestamp").and_then(from_epoch_guess));
    Some(super::event(ctx, instance, event_type, subject, &natural, time, data))
}

/// `messages.update`: a message's status (ack), keyed on its id, status and participant. v2
/// names the message `keyId`; v1.7 and v1.8 spread the message key into `data` (`id`) and add
/// `datetime` (epoch ms), the status's own time.
fn status(ctx: &ParseContext<'_>, body: &Body<'_>, instance: &str, d: &Json<'_>) -> Option<CloudEvent> {
    let mut data = body.data();
    let word = str_of(d, "status").unwrap_or_default();
    data.message_id = str_of(d, "keyId")
        .or_else(|| str_of(&d["key"], "id"))
        .or_else(|| str_of(d, "id"));
    data.status = map_status(&word);
    data.from_me = super::bool_of(d, "fromMe");
    data.chat = str_of(d, "remoteJid").map(|j| jid_chat(&j));
    data.participant =
        str_of(d, "participant").filter(|_| data.chat.as_ref().is_some_and(|c| c.kind != ChatKind::Direct));
    let subject = data.chat.as_ref().map(|c| c.id.clone());
    let key = match &data.message_id {
        Some(id) => Key::of(&EVOLUTION_STATUS, id)
            .part(&word)
            .or_dash(data.participant.as_deref())
            .build(),
        None => Key::of(&EVOLUTION_STATUS, fingerprint_without(body.value, &["apikey"]))
            .without_natural_key(ctx.delivery_id),
    };
    let time = ctx.event_time(i64_of(d, "datetime").and_then(from_epoch_guess));
    Some(super::event(
        ctx,
        instance,
        EventType::MessageStatus,
        subject,
        &key,
        time,
        data,
    ))
}

/// `messages.delete`: the message was deleted for everyone (status `deleted`).
fn deleted(ctx: &ParseContext<'_>, body: &Body<'_>, instance: &str, d: &Json<'_>) -> Option<CloudEvent> {
    let mut data = body.data();
    data.message_id = str_of(d, "id").or_else(|| str_of(&d["key"], "id"));
    data.status = Some(MessageStatus::Deleted);
    data.from_me = super::bool_of(d, "fromMe");
    data.chat = str_of(d, "remoteJid").map(|j| jid_chat(&j));
    let subject = data.chat.as_ref().map(|c| c.id.clone());
    let key = Key::of(&EVOLUTION_STATUS, data.message_id.as_deref().unwrap_or("-"))
        .part("DELETED")
        .build();
    Some(super::event(
        ctx,
        instance,
        EventType::MessageStatus,
        subject,
        &key,
        ctx.received_at,
        data,
    ))
}

/// `connection.update`: `open` connected, `close`/`refused` disconnected, `connecting` a
/// notification. Keyed on the body (each emission has its own `date_time`).
fn connection(ctx: &ParseContext<'_>, body: &Body<'_>, instance: &str, d: &Json<'_>) -> Option<CloudEvent> {
    let state = str_of(d, "state").unwrap_or_default();
    let event_type = match state.as_str() {
        "open" => EventType::InstanceConnected,
        "close" | "refused" => EventType::InstanceDisconnected,
        _ => EventType::Notification,
    };
    let mut data = body.data();
    if event_type == EventType::Notification {
        data.notification = Some("connection.update".to_owned());
        data.parameters = Some(d.to_value());
    }
    if event_type == EventType::InstanceDisconnected {
        data.error = Some(crate::event::EventError {
            code: str_of(d, "statusReason"),
            message: format!("connection {state}"),
        });
    }
    let key =
        Key::of(&EVOLUTION_OTHER, fingerprint_without(body.value, &["apikey"])).without_natural_key(ctx.delivery_id);
    Some(super::event(
        ctx,
        instance,
        event_type,
        None,
        &key,
        ctx.received_at,
        data,
    ))
}

/// `presence.update`: `{id, presences: {<jid>: {lastKnownPresence}}}`, one event per entry.
fn presence(ctx: &ParseContext<'_>, body: &Body<'_>, instance: &str, d: &Json<'_>) -> Option<CloudEvent> {
    let chat = str_of(d, "id").map(|j| jid_chat(&j));
    let subject = chat.as_ref().map(|c| c.id.clone());
    let (who, state) = d["presences"]
        .entries()
        .next()
        .map(|(who, p)| (Some(who.to_owned()), str_of(p, "lastKnownPresence")))
        .unwrap_or((None, None));
    let mut data = body.data();
    data.presence = state.map(|s| s.to_ascii_lowercase());
    data.participant = who.filter(|_| chat.as_ref().is_some_and(|c| c.kind == ChatKind::Group));
    data.chat = chat;
    let key =
        Key::of(&EVOLUTION_OTHER, fingerprint_without(body.value, &["apikey"])).without_natural_key(ctx.delivery_id);
    Some(super::event(
        ctx,
        instance,
        EventType::ChatPresence,
        subject,
        &key,
        ctx.received_at,
        data,
    ))
}

/// Every other event (groups, calls, contacts, chats, labels, QR codes, instance lifecycle): a
/// notification named as Evolution names it, with its `data`.
fn notification(
    ctx: &ParseContext<'_>,
    body: &Body<'_>,
    instance: &str,
    event: &str,
    d: &Json<'_>,
    index: usize,
) -> Option<CloudEvent> {
    let mut data = body.data();
    data.notification = Some(event.to_owned());
    // A QR code is a 13 KB image: the event names it, `raw` keeps it.
    if event != "qrcode.updated" {
        data.parameters = Some(d.to_value());
    }
    let chat_jid = str_of(d, "id")
        .filter(|j| j.contains('@'))
        .or_else(|| str_of(d, "chatId"))
        .or_else(|| str_of(d, "remoteJid"))
        .or_else(|| str_of(d, "from"));
    data.chat = chat_jid.map(|j| jid_chat(&j));
    data.participant = str_of(d, "author");
    let subject = data.chat.as_ref().map(|c| c.id.clone());
    let key = Key::of(&EVOLUTION_OTHER, index)
        .part(fingerprint_without(body.value, &["apikey"]))
        .without_natural_key(ctx.delivery_id);
    Some(super::event(
        ctx,
        instance,
        EventType::Notification,
        subject,
        &key,
        ctx.received_at,
        data,
    ))
}
