//! Event identity: the one place that decides when two deliveries are the same event.
//!
//! An event id is the first 32 hex digits of SHA-256 over the provider, the instance, the event
//! type, the chat and the event's natural key, each part length-prefixed so no two keys collide
//! by concatenation. The chat is always part of it, so one id always names one chat partition
//! of the events table (`store::keys`): a redelivery lands on the item the first delivery made.
//!
//! [`RULES`] lists every natural key, per provider and event, with what the provider repeats
//! on a redelivery and what changes, each rule a named constant; the adapters build each key
//! with [`Key::of`] naming its rule, from the parts the rule names, and ids only through
//! [`event_id`]. The "Event ids" table of `docs/events.md` is [`markdown_table`] (a test keeps
//! the two equal), and `tests/parse_fixtures.rs` checks that the fixtures apply every rule.

use sha2::{Digest, Sha256};

use crate::event::{EventType, Provider};

/// A natural key, built part by part under its [`Rule`]: what tells two events apart and
/// nothing that changes between redeliveries. Every adapter builds its keys with it, naming the
/// rule the key follows ([`Key::of`]); the parts are joined with U+001F (the unit separator,
/// which no provider's ids hold), and the whole key is one part of [`event_id`]. The rule is
/// not part of the key: it is where a reader of the adapter finds why the key is what it is.
#[derive(Debug, Clone)]
pub struct Key {
    text: String,
    rule: &'static Rule,
}

impl Key {
    /// A key following `rule`, whose first part is `first`.
    pub fn of(rule: &'static Rule, first: impl std::fmt::Display) -> Key {
        Key {
            text: first.to_string(),
            rule,
        }
    }

    /// One more part.
    pub fn part(mut self, part: impl std::fmt::Display) -> Key {
        use std::fmt::Write;
        let _ = write!(self.text, "\u{1f}{part}");
        self
    }

    /// One more part that may be absent (`-` then).
    pub fn or_dash(self, part: Option<&str>) -> Key {
        self.part(part.unwrap_or("-"))
    }

    /// Who sent the message: `from_me` or `from_them` (unknown counts as theirs).
    pub fn from_me(self, from_me: Option<bool>) -> Key {
        self.part(if from_me == Some(true) { "from_me" } else { "from_them" })
    }

    /// The key.
    pub fn build(self) -> String {
        applied(self.rule);
        self.text
    }

    /// The key of an event without a natural one, `self` being its fingerprint (see
    /// [`without_natural_key`]).
    pub fn without_natural_key(self, delivery_id: Option<&str>) -> String {
        without_natural_key(delivery_id, self.build())
    }
}

#[cfg(any(test, feature = "test-util"))]
thread_local! {
    static APPLIED: std::cell::RefCell<std::collections::BTreeSet<&'static str>> = const {
        std::cell::RefCell::new(std::collections::BTreeSet::new())
    };
}

/// Note that `rule` made a key (on this thread, only in tests: see [`rules_applied`]).
pub(crate) fn applied(_rule: &'static Rule) {
    #[cfg(any(test, feature = "test-util"))]
    APPLIED.with(|a| a.borrow_mut().insert(_rule.name));
}

/// The names of the rules that made a key on this thread since the last call (the crate's
/// `test-util` feature): `tests/parse_fixtures.rs` checks that the fixtures exercise every rule.
#[cfg(any(test, feature = "test-util"))]
pub fn rules_applied() -> std::collections::BTreeSet<&'static str> {
    APPLIED.with(|a| std::mem::take(&mut *a.borrow_mut()))
}

/// The event id of an event of `event_type` in `chat` (`None`: the instance itself) whose
/// natural key is `key`.
pub fn event_id(provider: Provider, instance: &str, event_type: EventType, chat: Option<&str>, key: &[&str]) -> String {
    let mut hasher = Sha256::new();
    let mut part = |s: &str| {
        hasher.update((s.len() as u64).to_be_bytes());
        hasher.update(s.as_bytes());
    };
    part(provider.as_str());
    part(instance);
    part(event_type.as_str());
    part(chat.unwrap_or("-"));
    for k in key {
        part(k);
    }
    let digest = hasher.finalize();
    hex::encode(&digest[..16])
}

/// The key of an event without a natural one: its fingerprint (the body without what changes
/// between redeliveries) and, when the request carried one, the provider's delivery id. Two
/// deliveries are then one event only if both agree: a delivery id never merges two different
/// bodies, and an identical body under a new delivery id is a new delivery.
fn without_natural_key(delivery_id: Option<&str>, fingerprint: String) -> String {
    match delivery_id {
        Some(d) => {
            applied(&DELIVERY_ID);
            format!("delivery:{d}\u{1f}{fingerprint}")
        }
        None => fingerprint,
    }
}

/// The id of a state event (presence, a connection change without a time) once the store has
/// told how many times its scope's state changed (`seq`, see `store::EventStore::state_sequence`):
/// the same state again, with no other state in between, is a redelivery (same `seq`, same id);
/// any other state is a new run, whatever the minute.
pub fn state_event_id(e: &crate::event::CloudEvent, change: &crate::event::StateChange, seq: u64) -> String {
    event_id(
        e.provider,
        &e.instance,
        e.event_type,
        e.subject.as_ref().map(|_| e.chat_key()),
        &["state", change.kind, &change.value, &seq.to_string()],
    )
}

/// A WAHA serialized message id, `<fromMe>_<chat>_<id>[_<participant>]`, as its chat and its
/// inner id; `None` for any other text (a bare id).
pub fn waha_serialized(id: &str) -> Option<(&str, &str)> {
    let mut parts = id.splitn(4, '_');
    let (from_me, chat, inner) = (parts.next()?, parts.next()?, parts.next()?);
    (matches!(from_me, "true" | "false") && chat.contains('@') && !inner.is_empty()).then_some((chat, inner))
}

/// The id a message is known by whichever alias of its chat a body used: the message id itself,
/// but WAHA's serialized id names the chat (the same message under its LID and its phone chat
/// has two), so its inner id. What the message lifecycle index (`gsi1`) is keyed on.
pub fn message_identity(provider: Provider, message_id: &str) -> &str {
    match (provider, waha_serialized(message_id)) {
        (Provider::Waha, Some((_, inner))) => inner,
        _ => message_id,
    }
}

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One identity rule: which fields make the natural key of an event, and why.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Its name, e.g. `zapi.received`.
    pub name: &'static str,
    /// The provider (`zapi`, …, or `*` for every provider).
    pub provider: &'static str,
    /// The body it applies to.
    pub body: &'static str,
    /// The event type it yields.
    pub event_type: &'static str,
    /// The natural key's fields.
    pub key: &'static str,
    /// What the provider repeats on a redelivery, and what changes.
    pub why: &'static str,
}

/// Every identity rule, in the order the docs list them. Each key function names its rule
/// ([`Key::of`], [`Key::without_natural_key`]); `tests/parse_fixtures.rs` checks that the fixtures
/// exercise every one.
pub const RULES: &[Rule] = &[
    ZAPI_RECEIVED,
    ZAPI_NOTIFICATION,
    ZAPI_STATUS,
    ZAPI_DELIVERY,
    ZAPI_INSTANCE,
    ZAPI_PRESENCE,
    HUB_MESSAGE,
    HUB_TEMPLATE,
    WWA_MESSAGE,
    WWA_INSTANCE,
    META_MESSAGE,
    META_STATUS,
    META_FIELD,
    EVOLUTION_MESSAGE,
    EVOLUTION_STATUS,
    EVOLUTION_OTHER,
    WAHA_MESSAGE,
    WAHA_ACK,
    WAHA_SESSION,
    WAHA_OTHER,
    UNKNOWN,
    DELIVERY_ID,
    ALIASES,
];

/// The rule for Z-API: `ReceivedCallback` (message).
pub const ZAPI_RECEIVED: Rule = Rule {
    name: "zapi.received",
    provider: "zapi",
    body: "`ReceivedCallback` (message)",
    event_type: "message.received",
    key: "`messageId`, `phone`, `fromMe`, group participant, content key (+ a reaction's emoji and time, an edit's id)",
    why: "a redelivery repeats the message id; `momment` changes between redeliveries, so it is never part of the key; a changed reaction reuses the message id",
};

/// The rule for Z-API: `ReceivedCallback` with `notification`.
pub const ZAPI_NOTIFICATION: Rule = Rule {
    name: "zapi.notification",
    provider: "zapi",
    body: "`ReceivedCallback` with `notification`",
    event_type: "notification",
    key: "`messageId`, `phone`, `fromMe`, participant, notification name; without a message id: the body without `momment`",
    why: "profile and label notifications carry no message id; only `momment` changes on a redelivery",
};

/// The rule for Z-API: `MessageStatusCallback`.
pub const ZAPI_STATUS: Rule = Rule {
    name: "zapi.status",
    provider: "zapi",
    body: "`MessageStatusCallback`",
    event_type: "message.status",
    key: "one event per id in `ids`: the id, `phone`, `status`, `participant`",
    why: "a repeated status is a redelivery; a new status of the same message is a new event",
};

/// The rule for Z-API: `DeliveryCallback`.
pub const ZAPI_DELIVERY: Rule = Rule {
    name: "zapi.delivery",
    provider: "zapi",
    body: "`DeliveryCallback`",
    event_type: "message.sent",
    key: "`zaapId` (else `messageId`), whether it failed",
    why: "a redelivery repeats `zaapId`; success and failure of one send are two events",
};

/// The rule for Z-API: `ConnectedCallback`, `DisconnectedCallback`, `ProxyCallback`.
pub const ZAPI_INSTANCE: Rule = Rule {
    name: "zapi.instance",
    provider: "zapi",
    body: "`ConnectedCallback`, `DisconnectedCallback`, `ProxyCallback`",
    event_type: "instance.*",
    key: "`momment`; without one, the state and how many times the instance's connection changed",
    why: "each connection change has its own `momment`, repeated on a redelivery",
};

/// The rule for Z-API: `PresenceChatCallback`.
pub const ZAPI_PRESENCE: Rule = Rule {
    name: "zapi.presence",
    provider: "zapi",
    body: "`PresenceChatCallback`",
    event_type: "chat.presence",
    key: "`phone`, `status` and `lastSeen` when set; else `status` and how many times the chat's presence changed",
    why: "presence carries no id and (in practice) no time: the same state again right after is a redelivery, another state a new event",
};

/// The rule for Hub Message: `DEFAULT` channel message.
pub const HUB_MESSAGE: Rule = Rule {
    name: "hub.message",
    provider: "hubmessage",
    body: "`DEFAULT` channel message",
    event_type: "message.received / sent / status",
    key: "`message._id`, the chat, the last `state_items[].state.name`",
    why: "a redelivery repeats the message id and its state; a new state is a new event",
};

/// The rule for Hub Message: template webhook (array).
pub const HUB_TEMPLATE: Rule = Rule {
    name: "hub.template",
    provider: "hubmessage",
    body: "template webhook (array)",
    event_type: "template.updated",
    key: "each item's `identifier` (else its position and the item without volatile fields)",
    why: "Meta's template identifier is repeated on a redelivery",
};

/// The rule for WhatsApp Web API: send / receive.
pub const WWA_MESSAGE: Rule = Rule {
    name: "wwa.message",
    provider: "wwa",
    body: "send / receive",
    event_type: "message.sent / received",
    key: "`messageId`, `number`",
    why: "the message id is repeated on a redelivery",
};

/// The rule for WhatsApp Web API: connected / disconnected.
pub const WWA_INSTANCE: Rule = Rule {
    name: "wwa.instance",
    provider: "wwa",
    body: "connected / disconnected",
    event_type: "instance.*",
    key: "the state and how many times the instance's connection changed",
    why: "these bodies carry no id and no time: `Connected → Disconnected → Connected` is three events, a repeated state one",
};

/// The rule for Meta: `messages[]`, `message_echoes[]`.
pub const META_MESSAGE: Rule = Rule {
    name: "meta.message",
    provider: "meta",
    body: "`messages[]`, `message_echoes[]`",
    event_type: "message.received, message.sent",
    key: "the message `id` (wamid), the chat, participant, `type`, a reaction's emoji",
    why: "Meta redelivers the same wamid; a changed reaction reuses the message id",
};

/// The rule for Meta: `statuses[]`.
pub const META_STATUS: Rule = Rule {
    name: "meta.status",
    provider: "meta",
    body: "`statuses[]`",
    event_type: "message.status",
    key: "the message `id`, the chat, `status`, participant",
    why: "a repeated status is a redelivery",
};

/// The rule for Meta: template fields, every other field (one event per call, group or user item).
pub const META_FIELD: Rule = Rule {
    name: "meta.field",
    provider: "meta",
    body: "template fields, every other field (one event per call, group or user item)",
    event_type: "template.updated, notification",
    key: "the field, the change's position, `entry[].time` and the item",
    why: "the value is repeated whole on a redelivery",
};

/// The rule for Evolution: `messages.upsert`, `send.message`.
pub const EVOLUTION_MESSAGE: Rule = Rule {
    name: "evolution.message",
    provider: "evolution",
    body: "`messages.upsert`, `send.message`",
    event_type: "message.received / sent",
    key: "`data.key.id`, `fromMe`, group participant (+ a reaction's emoji)",
    why: "Evolution repeats the identical body and has no delivery id; the same body from a global and an instance webhook is one event",
};

/// The rule for Evolution: `messages.update`, `messages.delete`.
pub const EVOLUTION_STATUS: Rule = Rule {
    name: "evolution.status",
    provider: "evolution",
    body: "`messages.update`, `messages.delete`",
    event_type: "message.status",
    key: "`keyId` (or `id`), `status`, participant",
    why: "a new status of the same message is a new event, the same status again a redelivery",
};

/// The rule for Evolution: `connection.update`, `presence.update`, every other event.
pub const EVOLUTION_OTHER: Rule = Rule {
    name: "evolution.other",
    provider: "evolution",
    body: "`connection.update`, `presence.update`, every other event",
    event_type: "instance.* / chat.presence / notification",
    key: "the body without `apikey` (its `date_time` differs per emission, not per retry)",
    why: "these carry no id; a retry repeats the body byte for byte",
};

/// The rule for WAHA: `message`, `message.any`, `message.reaction`.
pub const WAHA_MESSAGE: Rule = Rule {
    name: "waha.message",
    provider: "waha",
    body: "`message`, `message.any`, `message.reaction`",
    event_type: "message.received",
    key: "the bare WhatsApp id (from `payload.id`), `fromMe` (+ a reaction's emoji)",
    why: "a retry repeats the envelope `id`, an engine duplicate or the same message through `message.any` does not, but all repeat the WhatsApp id",
};

/// The rule for WAHA: `message.ack`, `message.ack.group`.
pub const WAHA_ACK: Rule = Rule {
    name: "waha.ack",
    provider: "waha",
    body: "`message.ack`, `message.ack.group`",
    event_type: "message.status",
    key: "the bare id, the ack, the participant",
    why: "a new ack is a new event; WAHA itself drops repeats within 60 s",
};

/// The rule for WAHA: `session.status`.
pub const WAHA_SESSION: Rule = Rule {
    name: "waha.session",
    provider: "waha",
    body: "`session.status`",
    event_type: "instance.* / notification",
    key: "the status and its `statuses[]` time (else the envelope `id`)",
    why: "each change has its own time, repeated on a retry",
};

/// The rule for WAHA: `presence.update` and every other event.
pub const WAHA_OTHER: Rule = Rule {
    name: "waha.other",
    provider: "waha",
    body: "`presence.update` and every other event",
    event_type: "chat.presence / notification",
    key: "the envelope `id` (+ the participant)",
    why: "the envelope `id` is repeated on every retry of one delivery",
};

/// The rule for any provider: any body of an unknown shape.
pub const UNKNOWN: Rule = Rule {
    name: "unknown",
    provider: "*",
    body: "any body of an unknown shape",
    event_type: "unknown",
    key: "the SHA-256 of the body",
    why: "nothing else is known about it",
};

/// The rule for any provider: a request with a delivery id (Hub `x-idempotency-key`, Standard Webhooks `webhook-id`).
pub const DELIVERY_ID: Rule = Rule {
    name: "delivery.id",
    provider: "*",
    body: "a request with a delivery id (Hub `x-idempotency-key`, Standard Webhooks `webhook-id`)",
    event_type: "(any)",
    key: "added to the key of events that have no natural key (never replaces one)",
    why: "a delivery id is repeated on a redelivery, but it never merges two different bodies",
};

/// The rule for any provider: an event of a direct chat under another alias of its person.
/// Applied by the identity map after parsing (`crate::contacts`), not by a parser.
pub const ALIASES: Rule = Rule {
    name: "aliases",
    provider: "*",
    body: "an event of a direct chat under another alias of its person (WAHA's LID and phone chats, Evolution's LID and phone JIDs, Meta's phone and user id)",
    event_type: "(any)",
    key: "the rule of its body, with the chat's conversation key (`chat.key`: the chat id the person was first seen under) in place of the chat id",
    why: "the identity map joins the aliases a body shows together: a message redelivered under another alias has the same natural key and now the same chat, so it is one event; a new message is not",
};

/// [`RULES`] as the Markdown table of `docs/events.md`.
pub fn markdown_table() -> String {
    let mut out = String::from("| provider | body | type | natural key | why |\n|---|---|---|---|---|\n");
    for r in RULES {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.provider, r.body, r.event_type, r.key, r.why
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_32_hex_and_deterministic() {
        let a = event_id(Provider::Zapi, "I", EventType::MessageReceived, Some("c"), &["m1"]);
        let b = event_id(Provider::Zapi, "I", EventType::MessageReceived, Some("c"), &["m1"]);
        assert_eq!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn parts_cannot_collide_by_concatenation_and_the_chat_and_type_count() {
        let t = EventType::MessageReceived;
        assert_ne!(
            event_id(Provider::Zapi, "I", t, None, &["ab", "c"]),
            event_id(Provider::Zapi, "I", t, None, &["a", "bc"])
        );
        assert_ne!(
            event_id(Provider::Zapi, "I", t, Some("1"), &["m"]),
            event_id(Provider::Zapi, "I", t, Some("2"), &["m"])
        );
        assert_ne!(
            event_id(Provider::Zapi, "I", t, Some("1"), &["m"]),
            event_id(Provider::Zapi, "I", EventType::MessageStatus, Some("1"), &["m"])
        );
    }
}
