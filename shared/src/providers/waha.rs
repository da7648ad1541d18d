//! WAHA (WhatsApp HTTP API, any engine: WEBJS, NOWEB, GOWS): the envelope `{id, timestamp,
//! event, session, me, payload, engine, environment}` and each event's `payload` (see the
//! WAHA row of `docs/events.md` and tests/fixtures/waha/SOURCES.md). WAHA sends every event to one URL.
//!
//! What WAHA repeats on a redelivery: the whole request, envelope `id` (`evt_…`) included; an
//! engine-level duplicate of a message gets a new envelope id. So messages are keyed on what
//! identifies the message (the session, `fromMe` and the bare WhatsApp id: `message` and
//! `message.any` of one message, and engine duplicates, merge), statuses on the id, the ack and
//! the participant, and everything else on the envelope id.

use super::json::Json;

use super::{alias, fingerprint_without, i64_of, jid_chat, jid_phone, str_of, Body, ParseContext};
use crate::event::{AliasKind, Chat, ChatKind, CloudEvent, Content, ContentKind, EventType, MessageStatus, Sender};
use crate::identity::{Key, Rule, WAHA_ACK, WAHA_MESSAGE, WAHA_OTHER, WAHA_SESSION};

/// Parse a WAHA webhook body.
pub(crate) fn parse(ctx: &ParseContext<'_>, body: &Body<'_>) -> Vec<CloudEvent> {
    let v = body.value;
    let Some(event) = v.get("event").and_then(Json::as_str) else {
        return Vec::new();
    };
    let session = str_of(v, "session").unwrap_or_else(|| "-".to_owned());
    let p = &v["payload"];
    match event {
        "message" | "message.any" | "message.waiting" => message(ctx, body, &session, p, event).into_iter().collect(),
        "message.reaction" => message(ctx, body, &session, p, event).into_iter().collect(),
        "message.ack" | "message.ack.group" => vec![ack(ctx, body, &session, p)],
        "session.status" => vec![session_status(ctx, body, &session, p)],
        "presence.update" => presences(ctx, body, &session, p),
        "poll.vote" => vec![poll_vote(ctx, body, &session, p)],
        _ => vec![notification(ctx, body, &session, event, p)],
    }
}

/// The envelope id, repeated on every retry of one delivery (absent before 2025), as a key
/// following `rule`.
fn envelope_key(rule: &'static Rule, ctx: &ParseContext<'_>, body: &Body<'_>) -> String {
    match str_of(body.value, "id") {
        Some(id) => Key::of(rule, format_args!("envelope:{id}")).build(),
        None => Key::of(rule, fingerprint_without(body.value, &[])).without_natural_key(ctx.delivery_id),
    }
}

/// A serialised message id `{fromMe}_{chat}_{waId}[_{participant}]` → (chat, bare id); a bare
/// id is returned as it is.
fn split_message_id(id: &str) -> (Option<String>, String) {
    match crate::identity::waha_serialized(id) {
        Some((chat, inner)) => (Some(chat.to_owned()), inner.to_owned()),
        None => (None, id.to_owned()),
    }
}

/// A payload's own time: epoch seconds, sometimes fractional (WEBJS reactions, GOWS calls), or
/// milliseconds (GOWS `poll.vote`, `senderTimestampMS`), told apart as `from_epoch_guess` does.
fn seconds(v: &Json<'_>, key: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let t = super::f64_of(v, key)?;
    let ms = if t < 100_000_000_000.0 { t * 1000.0 } else { t };
    chrono::DateTime::from_timestamp_millis(ms as i64)
}

/// The other form of a JID the engine adds (`@lid` for a phone JID, or the reverse): GOWS
/// `_data.Info.SenderAlt` (the sender's; `RecipientAlt`, the recipient's, on what we sent), NOWEB
/// `_data.key.remoteJidAlt` (the chat's) and `participantAlt` (a group message's sender).
fn alt_jids(p: &Json<'_>, from_me: bool, group: bool) -> Vec<String> {
    let (info, key) = (&p["_data"]["Info"], &p["_data"]["key"]);
    let found = if group {
        [str_of(key, "participantAlt"), str_of(info, "SenderAlt")]
    } else if from_me {
        [str_of(info, "RecipientAlt"), str_of(key, "remoteJidAlt")]
    } else {
        [str_of(info, "SenderAlt"), str_of(key, "remoteJidAlt")]
    };
    found.into_iter().flatten().filter(|j| j.contains('@')).collect()
}

/// The LID and the phone among `jids`, in that order of preference (the first of each).
fn lid_and_phone<'j>(jids: impl IntoIterator<Item = &'j String> + Clone) -> (Option<String>, Option<String>) {
    (
        jids.clone().into_iter().find_map(|j| alias(AliasKind::Lid, j)),
        jids.into_iter().find_map(|j| jid_phone(j)),
    )
}

fn content_of(p: &Json<'_>, event: &str) -> Content {
    if event == "message.reaction" {
        let mut c = Content::new(ContentKind::Reaction);
        c.wire_kind = Some("reaction".to_owned());
        c.text = str_of(&p["reaction"], "text");
        c.removed = p["reaction"].get("text").and_then(Json::as_str) == Some("");
        return c;
    }
    // The engine's own name for it: WEBJS `_data.type`, GOWS `_data.Info.MediaType`/`Type`.
    let engine_kind = str_of(&p["_data"], "type")
        .or_else(|| str_of(&p["_data"]["Info"], "MediaType"))
        .or_else(|| str_of(&p["_data"]["Info"], "Type"));
    let media = &p["media"];
    let mime = str_of(media, "mimetype");
    let kind = if event == "message.waiting" {
        ContentKind::Waiting
    } else if p.get("location").is_some_and(Json::is_object) {
        ContentKind::Location
    } else if p.get("vCards").and_then(Json::as_array).is_some_and(|c| !c.is_empty()) {
        ContentKind::Contact
    } else if super::bool_of(p, "hasMedia") == Some(true) || mime.is_some() {
        match (mime.as_deref().unwrap_or_default(), engine_kind.as_deref()) {
            (_, Some("sticker")) | ("image/webp", _) => ContentKind::Sticker,
            (m, _) if m.starts_with("image/") => ContentKind::Image,
            (_, Some("image")) => ContentKind::Image,
            (m, _) if m.starts_with("video/") => ContentKind::Video,
            (m, _) if m.starts_with("audio/") => ContentKind::Audio,
            (_, Some("ptt" | "audio")) => ContentKind::Audio,
            _ => ContentKind::Document,
        }
    } else if engine_kind.as_deref() == Some("call_log") || p["_data"]["message"].get("call").is_some() {
        ContentKind::Other
    } else {
        ContentKind::Text
    };
    let mut c = Content::new(kind);
    c.wire_kind = engine_kind.or_else(|| Some(kind.as_str().to_owned()));
    match kind {
        ContentKind::Text => c.text = str_of(p, "body"),
        ContentKind::Location => {
            let l = &p["location"];
            c.latitude = super::f64_of(l, "latitude");
            c.longitude = super::f64_of(l, "longitude");
            c.title = str_of(l, "name").or_else(|| str_of(l, "description"));
            c.text = str_of(l, "address");
        }
        ContentKind::Contact => {
            c.text = p["vCards"]
                .as_array()
                .and_then(|v| v.first())
                .and_then(|x| x.as_str())
                .map(str::to_owned)
        }
        ContentKind::Waiting | ContentKind::Other => {}
        _ => {
            c.caption = str_of(p, "body");
            c.media_url = str_of(media, "url");
            c.mime_type = mime;
            c.file_name = str_of(media, "filename");
        }
    }
    c
}

/// `message` (received), `message.any` (every message, ours too), `message.waiting`,
/// `message.reaction`.
fn message(ctx: &ParseContext<'_>, body: &Body<'_>, session: &str, p: &Json<'_>, event: &str) -> Option<CloudEvent> {
    let serialized = str_of(p, "id").unwrap_or_default();
    let (id_chat, bare) = split_message_id(&serialized);
    let from_me = super::bool_of(p, "fromMe");
    // The id's chat part is the chat whatever the engine; `from`/`to` say it otherwise.
    let chat_jid = id_chat
        .or_else(|| {
            if from_me == Some(true) {
                str_of(p, "to")
            } else {
                str_of(p, "from")
            }
        })
        .or_else(|| str_of(p, "from"));
    let mut chat = chat_jid.map(|j| jid_chat(&j));
    let mut data = body.data();
    // What WAHA's API takes to reply to, react to or mark this message (the inner id stays the
    // identity: one message under its LID and its phone chat is one event).
    data.message_id = (!serialized.is_empty()).then(|| serialized.clone());
    data.from_me = from_me;
    let group = chat.as_ref().is_some_and(|c| c.kind != ChatKind::Direct);
    data.participant = str_of(p, "participant").filter(|_| group);
    data.sender = Some(parties(body, p, chat.as_mut(), from_me, data.participant.as_deref()));
    let content = content_of(p, event);
    data.reply_to = match event {
        "message.reaction" => str_of(&p["reaction"], "messageId").map(|id| split_message_id(&id).1),
        _ => str_of(&p["replyTo"], "id").map(|id| split_message_id(&id).1),
    };
    let subject = chat.as_ref().map(|c| c.id.clone());
    data.chat = chat;
    let key = if bare.is_empty() {
        envelope_key(&WAHA_MESSAGE, ctx, body)
    } else {
        Key::of(&WAHA_MESSAGE, &bare)
            .from_me(from_me)
            .part(
                content
                    .wire_kind
                    .as_deref()
                    .filter(|_| content.kind == ContentKind::Reaction)
                    .unwrap_or("message"),
            )
            .part(content.reaction_emoji())
            .build()
    };
    data.content = Some(content);
    let time = ctx.event_time(seconds(p, "timestamp"));
    Some(super::event(
        ctx,
        session,
        EventType::MessageReceived,
        subject,
        &key,
        time,
        data,
    ))
}

/// The aliases of the people of a message: the other form of a direct chat's JID (into `chat`),
/// and the sender (the participant in a group, the connected number's `me` when it sent it, else
/// the chat), each with the forms the engine's `_data` adds.
fn parties(
    body: &Body<'_>,
    p: &Json<'_>,
    chat: Option<&mut Chat>,
    from_me: Option<bool>,
    participant: Option<&str>,
) -> Sender {
    let group = chat.as_ref().is_some_and(|c| c.kind != ChatKind::Direct);
    let alts = alt_jids(p, from_me == Some(true), group);
    let mut chat_id = None;
    if let Some(c) = chat {
        if c.kind == ChatKind::Direct {
            let (lid, phone) = lid_and_phone(std::iter::once(&c.id).chain(&alts));
            (c.lid, c.phone) = (lid, phone);
        }
        chat_id = Some(c.id.clone());
    }
    let author = match (participant, from_me) {
        (Some(a), _) => Some(a.to_owned()),
        (None, Some(true)) => str_of(&body.value["me"], "id"),
        (None, _) => chat_id,
    };
    let mut jids: Vec<String> = author.into_iter().collect();
    if from_me == Some(true) && participant.is_none() {
        jids.extend(["lid", "jid"].iter().filter_map(|k| str_of(&body.value["me"], k)));
    } else if group {
        jids.extend(alts);
    }
    let (lid, phone) = lid_and_phone(&jids);
    Sender {
        phone,
        lid,
        name: str_of(&p["_data"], "notifyName").or_else(|| str_of(&p["_data"]["Info"], "PushName")),
        ..Sender::default()
    }
}

/// WAHA's ack → ours: -1 ERROR, 0 PENDING, 1 SERVER, 2 DEVICE, 3 READ, 4 PLAYED.
fn map_ack(ack: Option<i64>, name: Option<&str>) -> Option<MessageStatus> {
    let by_name = |n: &str| match n {
        "ERROR" => Some(MessageStatus::Failed),
        "PENDING" => Some(MessageStatus::Pending),
        "SERVER" => Some(MessageStatus::Sent),
        "DEVICE" => Some(MessageStatus::Delivered),
        "READ" => Some(MessageStatus::Read),
        "PLAYED" => Some(MessageStatus::Played),
        _ => None,
    };
    match ack {
        Some(-1) => Some(MessageStatus::Failed),
        Some(0) => Some(MessageStatus::Pending),
        Some(1) => Some(MessageStatus::Sent),
        Some(2) => Some(MessageStatus::Delivered),
        Some(3) => Some(MessageStatus::Read),
        Some(4) => Some(MessageStatus::Played),
        _ => name.and_then(by_name),
    }
}

/// `message.ack` / `message.ack.group`: a status of one of our messages.
fn ack(ctx: &ParseContext<'_>, body: &Body<'_>, session: &str, p: &Json<'_>) -> CloudEvent {
    let serialized = str_of(p, "id").unwrap_or_default();
    let (id_chat, bare) = split_message_id(&serialized);
    let chat = id_chat
        .or_else(|| str_of(p, "to"))
        .or_else(|| str_of(p, "from"))
        .map(|j| jid_chat(&j));
    let mut data = body.data();
    let ack_name = str_of(p, "ackName");
    data.status = map_ack(i64_of(p, "ack"), ack_name.as_deref());
    // The serialized id, as the message's own event has it (the inner id is the identity).
    data.message_id = (!serialized.is_empty()).then(|| serialized.clone());
    data.from_me = super::bool_of(p, "fromMe");
    data.participant = str_of(p, "participant").filter(|_| chat.as_ref().is_some_and(|c| c.kind != ChatKind::Direct));
    let subject = chat.as_ref().map(|c| c.id.clone());
    data.chat = chat;
    let key = Key::of(&WAHA_ACK, &bare)
        .or_dash(data.status.map(MessageStatus::as_str))
        .or_dash(data.participant.as_deref())
        .build();
    super::event(
        ctx,
        session,
        EventType::MessageStatus,
        subject,
        &key,
        ctx.received_at,
        data,
    )
}

/// `session.status`: `WORKING` connected, `FAILED`/`STOPPED` disconnected, the rest a
/// notification; keyed on the status and when it changed.
fn session_status(ctx: &ParseContext<'_>, body: &Body<'_>, session: &str, p: &Json<'_>) -> CloudEvent {
    let status = str_of(p, "status").unwrap_or_default();
    let event_type = match status.as_str() {
        "WORKING" => EventType::InstanceConnected,
        "FAILED" | "STOPPED" => EventType::InstanceDisconnected,
        _ => EventType::Notification,
    };
    let changed_at = p
        .get("statuses")
        .and_then(Json::as_array)
        .and_then(|s| s.last())
        .and_then(|s| i64_of(s, "timestamp"))
        .or_else(|| i64_of(body.value, "timestamp"));
    let mut data = body.data();
    match event_type {
        EventType::Notification => {
            data.notification = Some("session.status".to_owned());
            data.parameters = Some(p.to_value());
        }
        EventType::InstanceDisconnected => {
            data.error = Some(crate::event::EventError {
                code: None,
                message: format!("session {status}"),
            })
        }
        _ => {}
    }
    let key = match changed_at {
        Some(t) => Key::of(&WAHA_SESSION, &status).part(t).build(),
        None => envelope_key(&WAHA_SESSION, ctx, body),
    };
    let time = ctx.event_time(changed_at.and_then(crate::event::from_millis));
    super::event(ctx, session, event_type, None, &key, time, data)
}

/// `presence.update`: one event per entry of `presences`.
fn presences(ctx: &ParseContext<'_>, body: &Body<'_>, session: &str, p: &Json<'_>) -> Vec<CloudEvent> {
    let chat = str_of(p, "id").map(|j| jid_chat(&j));
    let subject = chat.as_ref().map(|c| c.id.clone());
    let base = envelope_key(&WAHA_OTHER, ctx, body);
    p.get("presences")
        .and_then(Json::as_array)
        .unwrap_or_default()
        .iter()
        .map(|entry| {
            let mut data = body.data();
            data.chat = chat.clone();
            data.presence = str_of(entry, "lastKnownPresence").map(|s| s.to_ascii_lowercase());
            data.participant = str_of(entry, "participant");
            let key = Key::of(&WAHA_OTHER, &base).or_dash(data.participant.as_deref()).build();
            super::event(
                ctx,
                session,
                EventType::ChatPresence,
                subject.clone(),
                &key,
                ctx.received_at,
                data,
            )
        })
        .collect()
}

/// `poll.vote`: a vote on a poll, as a received `poll_vote`.
fn poll_vote(ctx: &ParseContext<'_>, body: &Body<'_>, session: &str, p: &Json<'_>) -> CloudEvent {
    let vote = &p["vote"];
    let (id_chat, bare) = split_message_id(&str_of(vote, "id").unwrap_or_default());
    let chat = id_chat.or_else(|| str_of(vote, "to")).map(|j| jid_chat(&j));
    let mut data = body.data();
    data.message_id = (!bare.is_empty()).then(|| bare.clone());
    data.from_me = super::bool_of(vote, "fromMe");
    data.participant = str_of(vote, "participant");
    data.reply_to = str_of(&p["poll"], "id").map(|id| split_message_id(&id).1);
    let mut content = Content::new(ContentKind::PollVote);
    content.wire_kind = Some("poll.vote".to_owned());
    content.options = vote
        .get("selectedOptions")
        .and_then(Json::as_array)
        .map(|o| o.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    data.content = Some(content);
    let subject = chat.as_ref().map(|c| c.id.clone());
    data.chat = chat;
    let key = if bare.is_empty() {
        envelope_key(&WAHA_MESSAGE, ctx, body)
    } else {
        Key::of(&WAHA_MESSAGE, &bare).part("vote").build()
    };
    super::event(
        ctx,
        session,
        EventType::MessageReceived,
        subject,
        &key,
        ctx.event_time(seconds(vote, "timestamp")),
        data,
    )
}

/// Every other event (revokes, edits, groups, calls, labels, chats, engine events): a
/// notification named as WAHA names it, with its payload.
fn notification(ctx: &ParseContext<'_>, body: &Body<'_>, session: &str, event: &str, p: &Json<'_>) -> CloudEvent {
    let mut data = body.data();
    data.notification = Some(event.to_owned());
    data.parameters = Some(p.to_value());
    let chat_jid = str_of(&p["group"], "id")
        .or_else(|| str_of(p, "from").filter(|j| j.contains('@')))
        .or_else(|| str_of(p, "chatId"))
        .or_else(|| str_of(p, "id").filter(|j| j.contains('@') && !j.contains('_')));
    data.chat = chat_jid.map(|j| jid_chat(&j));
    data.reply_to = str_of(p, "revokedMessageId")
        .or_else(|| str_of(p, "editedMessageId"))
        .map(|id| split_message_id(&id).1);
    let subject = data.chat.as_ref().map(|c| c.id.clone());
    let key = envelope_key(&WAHA_OTHER, ctx, body);
    super::event(
        ctx,
        session,
        EventType::Notification,
        subject,
        &key,
        ctx.event_time(seconds(p, "timestamp")),
        data,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialised_ids_give_their_chat_and_bare_id() {
        assert_eq!(
            split_message_id("false_120363404882958348@g.us_3EB01C0FDFD037F51A4DEF_24610246492311@lid"),
            (
                Some("120363404882958348@g.us".to_owned()),
                "3EB01C0FDFD037F51A4DEF".to_owned()
            )
        );
        assert_eq!(split_message_id("3EB0ABC"), (None, "3EB0ABC".to_owned()));
    }

    #[test]
    fn a_payload_time_is_seconds_or_milliseconds() {
        let at = |v: &str| seconds(&Json::parse(v).expect("json"), "t").map(|t| t.timestamp_millis());
        assert_eq!(at(r#"{"t":1768580591}"#), Some(1768580591000), "NOWEB, WEBJS: seconds");
        assert_eq!(
            at(r#"{"t":1710481111.853}"#),
            Some(1710481111853),
            "WEBJS reactions: fractional"
        );
        assert_eq!(at(r#"{"t":1768580591344}"#), Some(1768580591344), "GOWS poll votes: ms");
    }
}
