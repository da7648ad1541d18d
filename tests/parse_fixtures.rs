//! Every fixture parses into the right events with the right key fields. A new fixture file
//! is a new case: the expected type comes from the file name, the facts from the body itself.

use crate::common;

use chrono::{DateTime, Utc};
use serde_json::Value;
use wahooks::event::{ChatKind, ContentKind, MessageStatus};
use wahooks::providers::{compact_raw, parse_verified, ParseContext};
use wahooks::{CloudEvent, EventType, Provider};

fn parse_fixture(provider: Provider, bytes: &[u8]) -> Vec<CloudEvent> {
    let ctx = ParseContext::new(provider, "ep-test", Utc::now());
    parse_verified(&ctx, &wahooks::auth::Verified::trusted(bytes)).expect("fixture is valid JSON")
}

/// Facts every event must satisfy whatever its provider.
fn assert_envelope(name: &str, provider: Provider, bytes: &[u8], e: &CloudEvent) {
    assert_eq!(e.specversion, "1.0", "{name}");
    assert_eq!(e.id.len(), 32, "{name}: id is 32 hex");
    assert!(e.id.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
    assert_eq!(e.source, format!("wahooks/{provider}/{}", e.instance), "{name}");
    assert_eq!(e.provider, provider, "{name}");
    assert_eq!(e.endpoint, "ep-test", "{name}");
    assert_eq!(e.datacontenttype, "application/json");
    for t in [&e.time, &e.receivedat] {
        // As written on the wire.
        let t = serde_json::to_value(t).expect("a time");
        let t = t.as_str().expect("a string");
        assert!(DateTime::parse_from_rfc3339(t).is_ok(), "{name}: {t} is RFC 3339");
        assert!(
            t.ends_with('Z') && t.len() == 24,
            "{name}: {t} is UTC with milliseconds"
        );
    }
    let raw = e.data.raw.as_ref().expect("raw is carried");
    let compact = compact_raw(bytes).expect("valid");
    // Evolution's `apikey` (a live credential) is the one thing masked.
    let expected = match provider {
        Provider::Evolution => {
            String::from_utf8(wahooks::providers::mask_credentials(compact.get().as_bytes()).into_owned())
                .expect("utf8")
        }
        _ => compact.get().to_owned(),
    };
    assert_eq!(raw.get(), expected, "{name}: raw is the body untouched");
    assert_ne!(
        e.event_type,
        EventType::Unknown,
        "{name}: every fixture is a known shape"
    );
    // The serialised event is one line of JSON with the CloudEvents attribute names.
    let line = e.to_json();
    assert!(!line.contains('\n'), "{name}");
    let doc: Value = serde_json::from_str(&line).expect("event JSON");
    assert_eq!(doc["type"], e.event_type.as_str());
    assert!(doc["data"]["raw"].is_object() || doc["data"]["raw"].is_array());
}

fn zapi_content_kind(name: &str) -> ContentKind {
    let kind = name.trim_start_matches("received-");
    let table = [
        ("audio", ContentKind::Audio),
        ("broadcast-list", ContentKind::Text),
        ("button-response", ContentKind::ButtonReply),
        ("buttons-message", ContentKind::Interactive),
        ("carousel", ContentKind::Interactive),
        ("contact", ContentKind::Contact),
        ("document", ContentKind::Document),
        ("event", ContentKind::Event),
        ("gif", ContentKind::Video),
        ("image", ContentKind::Image),
        ("list-response", ContentKind::ListReply),
        ("live-location", ContentKind::LiveLocation),
        ("location", ContentKind::Location),
        ("newsletter-admin-invite", ContentKind::Other),
        ("order-cart", ContentKind::Order),
        ("pin-message", ContentKind::Other),
        ("pix-key", ContentKind::Payment),
        ("poll-vote", ContentKind::PollVote),
        ("poll", ContentKind::Poll),
        ("product", ContentKind::Order),
        ("ptv-fromme", ContentKind::Ptv),
        // The docs show a PTV under `video`; real traffic (above) uses `ptv`.
        ("ptv", ContentKind::Video),
        ("reaction", ContentKind::Reaction),
        ("request-payment", ContentKind::Payment),
        ("review-and-pay", ContentKind::Payment),
        ("review-order", ContentKind::Order),
        ("send-payment", ContentKind::Payment),
        ("status-reply", ContentKind::Text),
        ("sticker", ContentKind::Sticker),
        ("template", ContentKind::Template),
        ("text", ContentKind::Text),
        ("video", ContentKind::Video),
        ("waiting-message", ContentKind::Waiting),
    ];
    table
        .iter()
        .find(|(prefix, _)| kind.starts_with(prefix))
        .map(|(_, k)| *k)
        .unwrap_or_else(|| panic!("{name}: add its content kind to the table"))
}

#[test]
fn every_zapi_fixture_parses_with_the_right_type_and_fields() {
    for (name, bytes) in common::payloads(Provider::Zapi) {
        let body: Value = serde_json::from_slice(&bytes).expect("json");
        let events = parse_fixture(Provider::Zapi, &bytes);
        for e in &events {
            assert_envelope(&name, Provider::Zapi, &bytes, e);
            assert_eq!(e.instance, body["instanceId"].as_str().unwrap_or("-"), "{name}");
            if let Some(phone) = body["phone"].as_str().filter(|_| !name.starts_with("connected")) {
                assert_eq!(
                    e.subject.as_deref(),
                    Some(phone),
                    "{name}: subject is the chat id verbatim"
                );
            }
            if let Some(momment) = body["momment"].as_i64().filter(|m| *m > 1_000_000_000_000) {
                assert_eq!(e.time_ms(), momment, "{name}: time is the provider's momment");
            }
        }
        let first = &events[0];
        if name.starts_with("received-") {
            assert_eq!(events.len(), 1, "{name}");
            assert_eq!(first.event_type, EventType::MessageReceived, "{name}");
            assert_eq!(first.data.message_id.as_deref(), body["messageId"].as_str(), "{name}");
            assert_eq!(first.data.from_me, body["fromMe"].as_bool(), "{name}");
            let content = first.data.content.as_ref().expect("content");
            assert_eq!(content.kind, zapi_content_kind(&name), "{name}");
            if content.kind == ContentKind::Text {
                assert_eq!(content.text.as_deref(), body["text"]["message"].as_str(), "{name}");
            }
            if name.contains("reaction-removed") {
                assert!(content.removed, "{name}: empty emoji = removed");
            }
            if let Some(reference) = body["referenceMessageId"].as_str() {
                if content.kind == ContentKind::Text {
                    assert_eq!(first.data.reply_to.as_deref(), Some(reference), "{name}");
                }
            }
        } else if name.starts_with("notification-") {
            assert_eq!(events.len(), 1, "{name}");
            assert_eq!(first.event_type, EventType::Notification, "{name}");
            assert_eq!(
                first.data.notification.as_deref(),
                body["notification"].as_str(),
                "{name}"
            );
            assert!(first.data.content.is_none(), "{name}");
        } else if name.starts_with("message-status-") {
            let ids: Vec<&str> = body["ids"]
                .as_array()
                .expect("ids")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(events.len(), ids.len(), "{name}: one event per id");
            for (e, id) in events.iter().zip(&ids) {
                assert_eq!(e.event_type, EventType::MessageStatus, "{name}");
                assert_eq!(e.data.message_id.as_deref(), Some(*id), "{name}");
                assert!(e.data.status.is_some(), "{name}: status {} is mapped", body["status"]);
            }
        } else if name.starts_with("presence-") {
            assert_eq!(first.event_type, EventType::ChatPresence, "{name}");
            let want = body["status"].as_str().map(str::to_lowercase);
            assert_eq!(first.data.presence, want, "{name}");
        } else if name.starts_with("connected") {
            assert_eq!(first.event_type, EventType::InstanceConnected, "{name}");
        } else if name.starts_with("disconnected") {
            assert_eq!(first.event_type, EventType::InstanceDisconnected, "{name}");
            assert_eq!(
                first.data.error.as_ref().map(|e| e.message.as_str()),
                body["error"].as_str()
            );
        } else if name.starts_with("delivery") {
            assert_eq!(first.event_type, EventType::MessageSent, "{name}");
            let failed = body.get("error").is_some();
            assert_eq!(first.data.error.is_some(), failed, "{name}");
            let want = if failed {
                MessageStatus::Failed
            } else {
                MessageStatus::Sent
            };
            assert_eq!(first.data.status, Some(want), "{name}");
        } else if name.starts_with("proxy-") {
            assert_eq!(first.event_type, EventType::InstanceProxyFailed, "{name}");
            assert!(first.data.error.is_some(), "{name}");
        } else {
            panic!("{name}: unknown fixture family; add its expectations");
        }
    }
}

#[test]
fn zapi_status_words_map_as_documented() {
    for (file, want) in [
        ("message-status-sent.zapi-docs.json", MessageStatus::Sent),
        (
            "message-status-received.zapi-docs-legacy.json",
            MessageStatus::Delivered,
        ),
        ("message-status-read.zedaapi-capture.json", MessageStatus::Read),
        (
            "message-status-read-by-me.zapi-docs-legacy.json",
            MessageStatus::ReadByMe,
        ),
        ("message-status-played.zapi-docs-legacy.json", MessageStatus::Played),
    ] {
        let bytes = std::fs::read(common::provider_dir(Provider::Zapi).join(file)).expect("fixture");
        let events = parse_fixture(Provider::Zapi, &bytes);
        assert!(events.iter().all(|e| e.data.status == Some(want)), "{file}");
    }
}

#[test]
fn every_hubmessage_fixture_parses() {
    for (name, bytes) in common::payloads(Provider::Hubmessage) {
        let body: Value = serde_json::from_slice(&bytes).expect("json");
        let events = parse_fixture(Provider::Hubmessage, &bytes);
        for e in &events {
            assert_envelope(&name, Provider::Hubmessage, &bytes, e);
        }
        if let Some(items) = body.as_array() {
            assert_eq!(events.len(), items.len(), "{name}: one event per template item");
            for (e, item) in events.iter().zip(items) {
                assert_eq!(e.event_type, EventType::TemplateUpdated, "{name}");
                assert_eq!(e.instance, item["waba_id"].as_str().expect("waba"), "{name}");
            }
        } else {
            let m = &body["message"];
            let e = &events[0];
            assert_eq!(events.len(), 1, "{name}");
            // The body tells: a customer's message is received; one of ours still pending (every
            // documented example) is sent.
            let want = if m["metadata"]["from_me"] == true {
                EventType::MessageSent
            } else {
                EventType::MessageReceived
            };
            assert_eq!(e.event_type, want, "{name}");
            assert_eq!(e.data.message_id.as_deref(), m["_id"].as_str(), "{name}");
            assert_eq!(e.instance, m["channel_id"].as_str().expect("channel"), "{name}");
            assert_eq!(e.data.from_me, m["metadata"]["from_me"].as_bool(), "{name}");
            assert_eq!(e.time_ms(), m["metadata"]["moment"].as_i64().expect("moment"), "{name}");
            let kind = e.data.content.as_ref().expect("content").kind;
            let want = match name.trim_start_matches("hubmessage-default-") {
                n if n.starts_with("contact") => ContentKind::Contact,
                n if n.starts_with("image") => ContentKind::Image,
                n if n.starts_with("video") => ContentKind::Video,
                n if n.starts_with("interactive") => ContentKind::Interactive,
                n if n.starts_with("text") || n.starts_with("instagram-text") => ContentKind::Text,
                n => panic!("{n}: add its content kind"),
            };
            assert_eq!(kind, want, "{name}");
        }
    }
}

#[test]
fn every_wwa_fixture_parses_by_shape() {
    for (name, bytes) in common::payloads(Provider::Wwa) {
        let events = parse_fixture(Provider::Wwa, &bytes);
        assert_eq!(events.len(), 1, "{name}");
        let e = &events[0];
        assert_envelope(&name, Provider::Wwa, &bytes, e);
        let want = match name.as_str() {
            n if n.contains("-sent") => EventType::MessageSent,
            n if n.contains("-received") => EventType::MessageReceived,
            n if n.contains("-disconnected") => EventType::InstanceDisconnected,
            n if n.contains("-connected") => EventType::InstanceConnected,
            n => panic!("{n}: add its expected type"),
        };
        assert_eq!(e.event_type, want, "{name}");
    }
}

/// What a Meta body must become, read from the body by the rules Meta documents (one event per
/// message, echo, status, call, group or user item; one per other change), as
/// (type, notification name, message id).
fn meta_expected(body: &Value) -> Vec<(EventType, Option<String>, Option<String>)> {
    const TEMPLATES: [&str; 4] = [
        "message_template_status_update",
        "message_template_quality_update",
        "message_template_components_update",
        "template_category_update",
    ];
    let s = |v: &Value| v.as_str().map(str::to_owned);
    let mut want = Vec::new();
    for entry in body["entry"].as_array().expect("entry") {
        for change in entry["changes"].as_array().expect("changes") {
            let field = change["field"].as_str().unwrap_or("messages");
            let v = &change["value"];
            let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
            let before = want.len();
            if field == "messages" || field.ends_with("message_echoes") {
                for (m, sent) in list("messages")
                    .iter()
                    .map(|m| (m, false))
                    .chain(list("message_echoes").iter().map(|m| (m, true)))
                {
                    want.push(match m["type"].as_str() {
                        Some("revoke") => (EventType::Notification, Some("REVOKE".to_owned()), s(&m["id"])),
                        Some("system") => (EventType::Notification, s(&m["system"]["type"]), s(&m["id"])),
                        _ if sent => (EventType::MessageSent, None, s(&m["id"])),
                        _ => (EventType::MessageReceived, None, s(&m["id"])),
                    });
                }
                for st in list("statuses") {
                    want.push(if st["type"] == "call" {
                        (EventType::Notification, Some("calls".to_owned()), s(&st["id"]))
                    } else {
                        (EventType::MessageStatus, None, s(&st["id"]))
                    });
                }
                if want.len() > before {
                    continue;
                }
            }
            if TEMPLATES.contains(&field) {
                want.push((EventType::TemplateUpdated, Some(field.to_owned()), None));
                continue;
            }
            let name = if v.get("errors").is_some() && field == "messages" {
                "errors"
            } else {
                field
            };
            for k in ["user_preferences", "calls", "statuses", "groups"] {
                for item in list(k) {
                    want.push((EventType::Notification, Some(name.to_owned()), s(&item["id"])));
                }
            }
            if want.len() == before {
                want.push((EventType::Notification, Some(name.to_owned()), None));
            }
        }
    }
    want
}

#[test]
fn every_meta_fixture_yields_the_documented_events() {
    let fixtures = common::payloads(Provider::Meta);
    assert!(fixtures.len() >= 40, "at least 40 Meta bodies ({})", fixtures.len());
    for (name, bytes) in fixtures {
        let body: Value = serde_json::from_slice(&bytes).expect("json");
        let events = parse_fixture(Provider::Meta, &bytes);
        let got: Vec<_> = events
            .iter()
            .map(|e| {
                let id = e.data.message_id.clone();
                // Only message and call ids are kept as message ids.
                let id = id.or_else(|| {
                    e.data
                        .parameters
                        .as_ref()
                        .and_then(|p| p["id"].as_str())
                        .map(str::to_owned)
                });
                (e.event_type, e.data.notification.clone(), id)
            })
            .collect();
        assert_eq!(got, meta_expected(&body), "{name}");
        for e in &events {
            assert_envelope(&name, Provider::Meta, &bytes, e);
            match e.event_type {
                EventType::Notification | EventType::TemplateUpdated => {
                    assert!(e.data.parameters.is_some(), "{name}: a notification keeps its value")
                }
                _ => assert!(e.data.chat.is_some(), "{name}: every message has a chat"),
            }
        }
    }
}

/// Meta's fields, one by one: what a worker reads from each kind of body.
#[test]
fn meta_messages_keep_their_content() {
    let one = |file: &str| {
        let bytes = std::fs::read(common::provider_dir(Provider::Meta).join(file)).expect("fixture");
        let mut events = parse_fixture(Provider::Meta, &bytes);
        assert_eq!(events.len(), 1, "{file}");
        events.remove(0)
    };
    let content = |e: &CloudEvent| e.data.content.clone().expect("content");

    // Groups: the group is the chat, the sender its participant.
    let g = one("meta-docs-group-text.json");
    let chat = g.data.chat.as_ref().expect("chat");
    assert_eq!(
        (chat.kind, chat.id.as_str()),
        (
            ChatKind::Group,
            "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD"
        )
    );
    assert_eq!(g.subject.as_deref(), Some(chat.id.as_str()));
    assert_eq!(g.data.participant.as_deref(), Some("16505551234"));
    assert_eq!(
        g.data.sender.as_ref().and_then(|s| s.name.as_deref()),
        Some("Sheena Nelson")
    );
    assert_eq!(g.time, "2025-02-12T00:43:44.000Z");

    // A user known only by a business-scoped id: that id is the chat and the sender.
    let b = one("meta-docs-bsuid-text-without-phone.json");
    assert_eq!(b.subject.as_deref(), Some("US.13491208655302741918"));
    let sender = b.data.sender.as_ref().expect("sender");
    assert_eq!(
        (sender.phone.as_deref(), sender.user_id.as_deref()),
        (None, Some("US.13491208655302741918"))
    );
    assert_eq!(sender.username.as_deref(), Some("@sheena"));

    // Echoes: sent by the business, in the user's chat.
    let echo = one("meta-docs-smb-message-echoes-text.json");
    assert_eq!(echo.event_type, EventType::MessageSent);
    assert_eq!(echo.data.from_me, Some(true));
    assert_eq!(echo.subject.as_deref(), Some("+16505551234"));
    assert_eq!(
        content(&echo).text.as_deref(),
        Some("Here's the info you requested! https://www.meta.com/quest/quest-3/")
    );
    let edit = one("pywa-outgoing-message-edit.json");
    assert_eq!(
        (edit.event_type, edit.data.reply_to.as_deref()),
        (EventType::MessageSent, Some("wamid.zzzzzz"))
    );
    assert_eq!(content(&edit).text.as_deref(), Some("Text was edited"));
    assert_eq!(content(&edit).wire_kind.as_deref(), Some("edit"));
    let revoke = one("pywa-outgoing-message-delete.json");
    assert_eq!(revoke.data.reply_to.as_deref(), Some("wamid.zzzzzz"));

    // Flow replies: the answers parsed, the flow's name and token.
    let flow = content(&one("pywa-flow-completion-completion.json"));
    assert_eq!(flow.kind, ContentKind::Interactive);
    assert_eq!(flow.title.as_deref(), Some("flow"));
    assert_eq!(flow.selected_id.as_deref(), Some("AQAAAAACS5FpgQ_cAAAAAD0QI3s."));
    assert_eq!(flow.response.as_ref().expect("response")["delivery_rating"], "4");

    // Orders: every item and the total.
    let order = content(&one("pywa-message-order.json")).order.expect("order");
    assert_eq!(order.catalog_id.as_deref(), Some("354160437058781"));
    assert_eq!(order.items.len(), 3);
    assert_eq!(order.items[0].product_id.as_deref(), Some("HAMBURGER"));
    assert_eq!(
        (order.total, order.currency.as_deref()),
        (Some(3.0 * 30.0 + 2.0 * 35.0 + 2.0 * 10.0), Some("ILS"))
    );

    // Click-to-WhatsApp ads, forwards, reactions, contacts, locations, media.
    let referral = content(&one("pywa-message-referral.json")).referral.expect("referral");
    assert_eq!(
        (referral.click_id.as_deref(), referral.source_id.as_deref()),
        (Some("CTWA_CLID"), Some("ADID"))
    );
    assert!(content(&one("pywa-message-forwarded.json")).forwarded);
    assert!(content(&one("pywa-message-forwarded-many-times.json")).frequently_forwarded);
    for file in [
        "pywa-message-unreaction-empty.json",
        "pywa-message-unreaction-no-emoji.json",
    ] {
        let e = one(file);
        assert!(content(&e).removed, "{file}");
        assert!(e.data.reply_to.is_some(), "{file}: names the message reacted to");
    }
    assert!(!content(&one("pywa-message-reaction.json")).removed);
    let cards = content(&one("pywa-message-contacts.json")).contacts;
    assert_eq!(cards.len(), 3);
    assert_eq!(cards[0].name.as_deref(), Some("Chandler Bing"));
    assert_eq!(cards[0].phones, ["+1 555-555-5555"]);
    let place = content(&one("pywa-message-chosen-location.json"));
    assert_eq!(
        (place.latitude, place.title.as_deref()),
        (Some(37.4611978), Some("Facebook HQ"))
    );
    let image = content(&one("pywa-message-media-with-url.json"));
    assert_eq!(
        (image.media_id.as_deref(), image.sha256.as_deref()),
        (Some("65463453"), Some("4654+8g="))
    );
    assert!(image
        .media_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://lookaside.fbsbx.com/")));
    let plain = content(&one("pywa-message-image.json"));
    assert!(
        plain.media_id.is_some() && plain.media_url.is_none(),
        "a media id is not a URL"
    );

    // Unsupported messages keep Meta's reason; system messages become notifications.
    let unsupported = one("meta-docs-unsupported-poll-update.json");
    assert_eq!(content(&unsupported).wire_kind.as_deref(), Some("unsupported"));
    assert_eq!(
        unsupported.data.error.as_ref().and_then(|e| e.code.as_deref()),
        Some("131051")
    );
    let system = one("meta-docs-system-user-changed-number.json");
    assert_eq!(system.data.notification.as_deref(), Some("user_changed_number"));
    assert_eq!(
        system.data.parameters.as_ref().expect("parameters")["wa_id"],
        "12195555358"
    );
    let identity = one("pywa-system-identity-change.json");
    assert_eq!(
        identity.data.parameters.as_ref().expect("parameters")["identity"]["hash"],
        "xyzxyz"
    );

    // Statuses keep pricing, conversation and the callback data.
    let tracked = one("pywa-message-status-with-tracker.json");
    let extras = tracked.data.parameters.as_ref().expect("parameters");
    assert_eq!(extras["biz_opaque_callback_data"], "some data");
    assert_eq!(extras["pricing"]["category"], "service");
    assert_eq!(extras["conversation"]["origin"]["type"], "service");
    let group_read = one("pywa-message-status-group.json");
    assert_eq!(group_read.data.chat.as_ref().map(|c| c.kind), Some(ChatKind::Group));

    // Every other field: a notification, errors in data.error, the entry's time as its clock.
    let errors = one("meta-docs-errors-rate-limit.json");
    assert_eq!(errors.data.notification.as_deref(), Some("errors"));
    let error = errors.data.error.as_ref().expect("error");
    assert_eq!(error.code.as_deref(), Some("130429"));
    assert!(
        error.message.starts_with("Rate limit hit: Message failed to send"),
        "{}",
        error.message
    );
    let quality = one("meta-docs-phone-number-quality-update.json");
    assert_eq!(
        quality.data.parameters.as_ref().expect("parameters")["event"],
        "FLAGGED"
    );
    assert_eq!(quality.time, "2024-11-14T20:57:11.000Z", "entry[].time");
    let prefs = one("pywa-user-marketing-preferences-resume.json");
    assert_eq!(prefs.subject.as_deref(), Some("16505551234"), "in the user's chat");
    let call = one("pywa-call-connect-business-initiated.json");
    assert_eq!(
        call.data.message_id.as_deref().map(|id| id.starts_with("wacid.")),
        Some(true)
    );
}

#[test]
fn meta_timestamps_as_strings_numbers_or_placeholders() {
    let at = |ts: &str| {
        let body = format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"metadata":{{"phone_number_id":"P"}},"messages":[{{"from":"1555","id":"wamid.A","timestamp":{ts},"type":"text","text":{{"body":"hi"}}}}]}}}}]}}]}}"#
        );
        let ctx = ParseContext::new(
            Provider::Meta,
            "ep",
            DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                .expect("t")
                .to_utc(),
        );
        parse_verified(&ctx, &wahooks::auth::Verified::trusted(body.as_bytes()))
            .expect("json")
            .remove(0)
            .time
    };
    assert_eq!(at(r#""1749416383""#), "2025-06-08T20:59:43.000Z");
    assert_eq!(at("1749416383"), "2025-06-08T20:59:43.000Z");
    assert_eq!(
        at(r#""<WEBHOOK_TRIGGER_TIMESTAMP>""#),
        "2026-01-01T00:00:00.000Z",
        "a placeholder: the receipt time"
    );
    assert_eq!(at("null"), "2026-01-01T00:00:00.000Z");
}

#[test]
fn an_undocumented_meta_field_is_unknown_but_keeps_its_value() {
    let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"W","time":1731617831,"changes":[{"field":"some_future_field","value":{"x":1}}]}]}"#;
    let e = parse_fixture(Provider::Meta, body).remove(0);
    assert_eq!(e.event_type, EventType::Unknown);
    assert_eq!(e.data.notification.as_deref(), Some("some_future_field"));
    assert_eq!(e.data.parameters, Some(serde_json::json!({"x": 1})));
}

#[test]
fn redeliveries_of_one_message_get_the_same_id() {
    let dir = common::provider_dir(Provider::Zapi);
    let one = std::fs::read(dir.join("received-text-group-redelivery-1.zedaapi-capture.json")).expect("fixture");
    let two = std::fs::read(dir.join("received-text-group-redelivery-2.zedaapi-capture.json")).expect("fixture");
    assert_ne!(one, two, "the captures differ (in momment)");
    let a = parse_fixture(Provider::Zapi, &one);
    let b = parse_fixture(Provider::Zapi, &two);
    assert_eq!(a[0].id, b[0].id);
    assert_ne!(a[0].time, b[0].time, "each keeps its own momment");
}

#[test]
fn different_statuses_of_one_message_get_different_ids() {
    let status = |word: &str| {
        let body = format!(
            r#"{{"type":"MessageStatusCallback","instanceId":"I","status":"{word}","ids":["M1"],"momment":1757387334000,"phone":"5511999","isGroup":false}}"#
        );
        parse_fixture(Provider::Zapi, body.as_bytes())[0].id.clone()
    };
    let ids: Vec<_> = ["SENT", "RECEIVED", "READ", "PLAYED"].into_iter().map(status).collect();
    for (i, a) in ids.iter().enumerate() {
        for b in &ids[i + 1..] {
            assert_ne!(a, b);
        }
    }
    assert_eq!(status("READ"), status("READ"), "a repeated status is a duplicate");
}

#[test]
fn event_ids_do_not_depend_on_the_receive_time_for_messages() {
    for (provider, name, bytes) in common::all_payloads() {
        if name.contains("presence") || name.contains("connected") || name.contains("proxy") {
            continue; // these have no natural id and use the receive minute; see providers::minute_bucket
        }
        let early = ParseContext::new(provider, "ep", DateTime::from_timestamp(1_000_000_000, 0).expect("t"));
        let late = ParseContext::new(provider, "ep", DateTime::from_timestamp(1_900_000_000, 0).expect("t"));
        let a: Vec<_> = parse_verified(&early, &wahooks::auth::Verified::trusted(&bytes))
            .expect("ok")
            .into_iter()
            .map(|e| e.id)
            .collect();
        let b: Vec<_> = parse_verified(&late, &wahooks::auth::Verified::trusted(&bytes))
            .expect("ok")
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(a, b, "{provider}/{name}");
    }
}

#[test]
fn duplicate_keys_in_legacy_examples_are_accepted() {
    let bytes = std::fs::read(common::provider_dir(Provider::Zapi).join("connected.zapi-docs-legacy.json")).expect("f");
    let events = parse_fixture(Provider::Zapi, &bytes);
    assert_eq!(events[0].event_type, EventType::InstanceConnected);
    // The raw keeps both `instanceId` keys exactly as sent.
    assert_eq!(
        events[0]
            .data
            .raw
            .as_ref()
            .expect("raw")
            .get()
            .matches("\"instanceId\"")
            .count(),
        2
    );
}

/// What each Evolution fixture must become: (file prefix, type, chat kind, content kind).
const EVOLUTION: &[(&str, EventType, Option<ChatKind>, Option<ContentKind>)] = &[
    ("connection-update-close", EventType::InstanceDisconnected, None, None),
    ("connection-update-open", EventType::InstanceConnected, None, None),
    ("contacts-upsert", EventType::Notification, Some(ChatKind::Direct), None),
    (
        "group-participants-update",
        EventType::Notification,
        Some(ChatKind::Group),
        None,
    ),
    (
        "messages-update",
        EventType::MessageStatus,
        Some(ChatKind::Direct),
        None,
    ),
    (
        "messages-upsert-contact",
        EventType::MessageReceived,
        Some(ChatKind::Direct),
        Some(ContentKind::Contact),
    ),
    (
        "messages-upsert-group-text",
        EventType::MessageReceived,
        Some(ChatKind::Group),
        Some(ContentKind::Text),
    ),
    (
        "messages-upsert-image",
        EventType::MessageReceived,
        Some(ChatKind::Direct),
        Some(ContentKind::Image),
    ),
    (
        "messages-upsert-location",
        EventType::MessageReceived,
        Some(ChatKind::Direct),
        Some(ContentKind::Location),
    ),
    (
        "messages-upsert-poll",
        EventType::MessageReceived,
        Some(ChatKind::Direct),
        Some(ContentKind::Poll),
    ),
    (
        "messages-upsert-reaction",
        EventType::MessageReceived,
        Some(ChatKind::Direct),
        Some(ContentKind::Reaction),
    ),
    (
        "messages-upsert-revoke",
        EventType::Notification,
        Some(ChatKind::Direct),
        None,
    ),
    (
        "messages-upsert-text",
        EventType::MessageReceived,
        Some(ChatKind::Direct),
        Some(ContentKind::Text),
    ),
    (
        "messages-upsert-video",
        EventType::MessageReceived,
        Some(ChatKind::Direct),
        Some(ContentKind::Video),
    ),
];

#[test]
fn every_evolution_fixture_parses_into_its_canonical_fields() {
    for (name, bytes) in common::payloads(Provider::Evolution) {
        let body: Value = serde_json::from_slice(&bytes).expect("json");
        let events = parse_fixture(Provider::Evolution, &bytes);
        let (_, want_type, want_chat, want_kind) = EVOLUTION
            .iter()
            .find(|(prefix, ..)| name.starts_with(prefix))
            .unwrap_or_else(|| panic!("{name}: add it to EVOLUTION"));
        assert!(!events.is_empty(), "{name}");
        for e in &events {
            assert_envelope(&name, Provider::Evolution, &bytes, e);
            assert_eq!(e.event_type, *want_type, "{name}");
            assert_eq!(e.instance, body["instance"].as_str().expect("instance"), "{name}");
            assert_eq!(e.data.chat.as_ref().map(|c| c.kind), *want_chat, "{name}");
            assert_eq!(e.data.content.as_ref().map(|c| c.kind), *want_kind, "{name}");
            let raw = e.data.raw.as_ref().expect("raw").get();
            assert!(!raw.contains("REDACTED"), "{name}: the apikey never reaches the event");
            let key = &body["data"]["key"];
            if e.event_type == EventType::MessageStatus {
                // v1.7/1.8 spread the key into `data` and add the status's own time.
                let data = &body["data"];
                let id = data["keyId"].as_str().or(data["id"].as_str());
                assert_eq!(e.data.message_id.as_deref(), id, "{name}");
                if let Some(ms) = data["datetime"].as_i64() {
                    assert_eq!(e.time_ms(), ms, "{name}: datetime");
                }
            }
            if e.event_type == EventType::MessageReceived {
                assert_eq!(e.data.message_id.as_deref(), key["id"].as_str(), "{name}");
                assert_eq!(e.data.from_me, key["fromMe"].as_bool(), "{name}");
                let chat = &e.data.chat.as_ref().expect("chat").id;
                assert!(!chat.contains(':'), "{name}: no device suffix in {chat}");
                let ts = &body["data"]["messageTimestamp"];
                if let Some(secs) = ts.as_i64() {
                    assert_eq!(e.time_ms(), secs * 1000, "{name}: seconds");
                }
                // Base64 media stays in raw; nothing of it is copied into data.
                let data = serde_json::to_string(&wahooks::event::EventData {
                    raw: None,
                    ..e.data.clone()
                })
                .expect("json");
                assert!(
                    data.len() < 3000,
                    "{name}: data without raw is small ({} bytes)",
                    data.len()
                );
            }
        }
    }
}

/// What each WAHA fixture must become: (file prefix, type, chat kind, content kind).
const WAHA: &[(&str, EventType, Option<ChatKind>, Option<ContentKind>)] = &[
    ("call-received", EventType::Notification, Some(ChatKind::Direct), None),
    ("engine-event", EventType::Notification, None, None),
    ("group-v2", EventType::Notification, Some(ChatKind::Group), None),
    (
        "message-ack-group",
        EventType::MessageStatus,
        Some(ChatKind::Group),
        None,
    ),
    (
        "message-ack-read",
        EventType::MessageStatus,
        Some(ChatKind::Direct),
        None,
    ),
    (
        "message-call-log",
        EventType::MessageReceived,
        Some(ChatKind::Direct),
        Some(ContentKind::Other),
    ),
    (
        "message-document",
        EventType::MessageReceived,
        Some(ChatKind::Direct),
        Some(ContentKind::Document),
    ),
    (
        "message-from-me",
        EventType::MessageReceived,
        Some(ChatKind::Direct),
        Some(ContentKind::Text),
    ),
    (
        "message-image",
        EventType::MessageReceived,
        Some(ChatKind::Direct),
        Some(ContentKind::Image),
    ),
    (
        "message-newsletter",
        EventType::MessageReceived,
        Some(ChatKind::Newsletter),
        Some(ContentKind::Text),
    ),
    (
        "message-reaction",
        EventType::MessageReceived,
        Some(ChatKind::Direct),
        Some(ContentKind::Reaction),
    ),
    (
        "message-reply",
        EventType::MessageReceived,
        Some(ChatKind::Direct),
        Some(ContentKind::Text),
    ),
    ("message-revoked", EventType::Notification, None, None),
    (
        "message-text-direct-lid",
        EventType::MessageReceived,
        Some(ChatKind::Direct),
        Some(ContentKind::Text),
    ),
    (
        "message-text-group",
        EventType::MessageReceived,
        Some(ChatKind::Group),
        Some(ContentKind::Text),
    ),
    (
        "poll-vote",
        EventType::MessageReceived,
        Some(ChatKind::Direct),
        Some(ContentKind::PollVote),
    ),
    ("presence-update", EventType::ChatPresence, Some(ChatKind::Group), None),
    ("session-status-failed", EventType::InstanceDisconnected, None, None),
    ("session-status-stopped", EventType::InstanceDisconnected, None, None),
    ("session-status-working", EventType::InstanceConnected, None, None),
];

#[test]
fn every_waha_fixture_parses_into_its_canonical_fields() {
    for (name, bytes) in common::payloads(Provider::Waha) {
        let body: Value = serde_json::from_slice(&bytes).expect("json");
        let events = parse_fixture(Provider::Waha, &bytes);
        let (_, want_type, want_chat, want_kind) = WAHA
            .iter()
            .find(|(prefix, ..)| name.starts_with(prefix))
            .unwrap_or_else(|| panic!("{name}: add it to WAHA"));
        assert!(!events.is_empty(), "{name}");
        for e in &events {
            assert_envelope(&name, Provider::Waha, &bytes, e);
            assert_eq!(e.event_type, *want_type, "{name}");
            assert_eq!(e.instance, body["session"].as_str().expect("session"), "{name}");
            assert_eq!(e.data.chat.as_ref().map(|c| c.kind), *want_chat, "{name}");
            assert_eq!(e.data.content.as_ref().map(|c| c.kind), *want_kind, "{name}");
            let p = &body["payload"];
            if matches!(e.event_type, EventType::MessageReceived | EventType::MessageStatus) && p["id"].is_string() {
                // The serialized id, as WAHA's API takes it to reply, react or mark as seen.
                let id = e.data.message_id.as_deref().expect("message id");
                assert_eq!(Some(id), p["id"].as_str(), "{name}: the serialized id");
            }
            if e.event_type == EventType::MessageReceived && p["timestamp"].is_i64() {
                assert_eq!(
                    e.time_ms() / 1000,
                    p["timestamp"].as_i64().expect("ts"),
                    "{name}: seconds"
                );
            }
            if e.event_type == EventType::MessageStatus {
                assert_eq!(e.data.status, Some(wahooks::event::MessageStatus::Read), "{name}");
            }
        }
    }
}

#[test]
fn gateway_redeliveries_merge_and_new_facts_do_not() {
    let at = |minutes: i64| Utc::now() + chrono::Duration::minutes(minutes);
    let id_of = |provider: Provider, body: &str, minutes: i64| {
        parse_verified(
            &ParseContext::new(provider, "ep", at(minutes)),
            &wahooks::auth::Verified::trusted(body.as_bytes()),
        )
        .expect("json")[0]
            .id
            .clone()
    };
    // Evolution repeats the identical body.
    let upsert = std::fs::read_to_string(
        common::provider_dir(Provider::Evolution).join("messages-upsert-text-with-contextinfo.json"),
    )
    .expect("fixture");
    assert_eq!(
        id_of(Provider::Evolution, &upsert, 0),
        id_of(Provider::Evolution, &upsert, 30)
    );
    let status = |s: &str| {
        format!(
            r#"{{"event":"messages.update","instance":"I","data":{{"keyId":"K1","remoteJid":"5511@s.whatsapp.net","fromMe":true,"status":"{s}"}},"date_time":"2025-01-01T00:00:00.000Z","apikey":"x"}}"#
        )
    };
    assert_eq!(
        id_of(Provider::Evolution, &status("READ"), 0),
        id_of(Provider::Evolution, &status("READ"), 9)
    );
    assert_ne!(
        id_of(Provider::Evolution, &status("READ"), 0),
        id_of(Provider::Evolution, &status("DELIVERY_ACK"), 0)
    );
    // WAHA: a retry repeats the envelope; `message` and `message.any` of one message, and an
    // engine duplicate with a new envelope id, are one message.
    let message = std::fs::read_to_string(common::provider_dir(Provider::Waha).join("message-text-group-webjs.json"))
        .expect("fixture");
    let any = message.replace("\"event\": \"message\"", "\"event\": \"message.any\"");
    let engine_duplicate = message.replace("evt_01kfmv5p0fme0jnsgbszxymrwm", "evt_01kfmv5p0fme0jnsgbszxymxxx");
    assert_ne!(any, message);
    let first = id_of(Provider::Waha, &message, 0);
    assert_eq!(first, id_of(Provider::Waha, &message, 5));
    assert_eq!(first, id_of(Provider::Waha, &any, 0));
    assert_eq!(first, id_of(Provider::Waha, &engine_duplicate, 0));
    let ack = |n: u8| {
        format!(
            r#"{{"id":"evt_{n}","event":"message.ack","session":"default","payload":{{"id":"true_5511@c.us_ABC","from":"5511@c.us","fromMe":true,"ack":{n}}}}}"#
        )
    };
    assert_ne!(
        id_of(Provider::Waha, &ack(2), 0),
        id_of(Provider::Waha, &ack(3), 0),
        "a new status"
    );
}

#[test]
fn the_fixtures_exercise_every_identity_rule() {
    // Each key function names its rule (`identity::Key::of`); parsing every fixture, once as
    // sent and once with a delivery id, must apply each rule of the table at least once.
    let _ = wahooks::identity::rules_applied();
    for (provider, name, bytes) in common::all_payloads() {
        for delivery in [None, Some("delivery-1")] {
            let mut ctx = ParseContext::new(provider, "ep-test", Utc::now());
            ctx.delivery_id = delivery;
            parse_verified(&ctx, &wahooks::auth::Verified::trusted(&bytes)).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
    // What no fixture holds yet: a body of a shape no adapter knows, and Evolution's
    // `messages.update` (no capture of it: its documented shape, as in
    // `gateway_redeliveries_merge_and_new_facts_do_not`).
    for (provider, body) in [
        (Provider::Zapi, r#"{"never":"seen"}"#),
        (
            Provider::Evolution,
            r#"{"event":"messages.update","instance":"I","data":{"keyId":"K1","remoteJid":"5511@s.whatsapp.net","fromMe":true,"status":"READ"},"apikey":"x"}"#,
        ),
    ] {
        let ctx = ParseContext::new(provider, "ep-test", Utc::now());
        parse_verified(&ctx, &wahooks::auth::Verified::trusted(body.as_bytes())).expect("valid JSON");
    }
    let applied = wahooks::identity::rules_applied();
    // The identity map's rule applies after parsing: `receive_moto`'s
    // `one_person_is_one_conversation_…` and the contacts module's tests apply it.
    let unexercised: Vec<&str> = wahooks::identity::RULES
        .iter()
        .map(|r| r.name)
        .filter(|n| !applied.contains(n) && *n != wahooks::identity::ALIASES.name)
        .collect();
    assert!(unexercised.is_empty(), "rules no fixture exercises: {unexercised:?}");
    let named: Vec<&str> = wahooks::identity::RULES.iter().map(|r| r.name).collect();
    assert!(applied.iter().all(|a| named.contains(a)), "{applied:?}");
}
