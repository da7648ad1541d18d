//! What the providers send: the fixture mix made into many chats' messages, with redeliveries
//! drawn from the seed (exact, or differing only in their timestamp), each body rebuilt on
//! demand from a few numbers so a million deliveries take little memory.

use std::collections::BTreeSet;
use std::path::Path;

use wahooks::auth::Verified;
use wahooks::providers::{parse_verified, ParseContext};
use wahooks::Provider;

use crate::load::{templates, Template};

/// How many instances each fixture's messages are spread over (each instance one chat per
/// fixture): the chats whose order is checked.
pub const INSTANCES_PER_FIXTURE: usize = 12;

/// A fixture ready to make deliveries.
pub struct Fixture {
    template: Template,
    /// Its message ids can be renamed: each delivery is another message of one of
    /// [`INSTANCES_PER_FIXTURE`] chats. Otherwise (state events, whose ids count changes of
    /// state) each delivery gets an instance of its own.
    renames: bool,
    /// Its timestamp can be moved without changing its events' ids (a provider's redelivery
    /// that differs only in its timestamp).
    moves: bool,
    /// Its events' ids do not depend on when it arrives: it can be redelivered.
    redelivers: bool,
    /// It can be redelivered under another alias of its chat, which the identity rules join.
    aliases: bool,
}

/// One distinct delivery: the fixture, the chat, the message number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Distinct {
    /// The fixture's index.
    pub fixture: u32,
    /// The instance among the fixture's (for renaming fixtures).
    pub instance: u32,
    /// The delivery's number (unique).
    pub number: u64,
}

/// How a delivery relates to its distinct message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryKind {
    /// The first delivery.
    First,
    /// An exact redelivery.
    Exact,
    /// A redelivery whose timestamp moved.
    Moved,
    /// A redelivery naming the chat by another alias as well (see [`aliased`]).
    Alias,
}

/// The fixture mix, ready to make bodies.
pub struct Traffic {
    fixtures: Vec<Fixture>,
}

impl Traffic {
    /// The fixtures under `dir` that can be multiplied (see [`Fixture`]), and the large body.
    pub fn load(dir: &Path) -> anyhow::Result<Traffic> {
        let mut fixtures: Vec<Fixture> = templates(dir)?.into_iter().filter_map(Fixture::of).collect();
        anyhow::ensure!(!fixtures.is_empty(), "no fixtures under {} to simulate", dir.display());
        let large = Fixture::of(large_media()).filter(|f| f.renames && f.moves);
        fixtures.push(large.ok_or_else(|| anyhow::anyhow!("the large body no longer parses as messages"))?);
        Ok(Traffic { fixtures })
    }

    /// A fixture for a new delivery: one in [`LARGE_EVERY`] is the large body, the rest are
    /// drawn evenly from the mix.
    pub fn pick(&self, dice: &super::dice::Dice) -> usize {
        if dice.chance(1.0 / LARGE_EVERY as f64) {
            self.fixtures.len() - 1
        } else {
            dice.below(self.fixtures.len() - 1)
        }
    }

    /// How many fixtures.
    pub fn len(&self) -> usize {
        self.fixtures.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.fixtures.is_empty()
    }

    /// How many fixtures make several messages per chat.
    pub fn renaming(&self) -> usize {
        self.fixtures.iter().filter(|f| f.renames).count()
    }

    /// Whether delivery `d` can be redelivered (its ids do not depend on its arrival).
    pub fn redelivers(&self, d: Distinct) -> bool {
        self.fixtures[d.fixture as usize].redelivers
    }

    /// A new distinct delivery number `number` of fixture `fixture`, in chat `instance`.
    pub fn distinct(&self, fixture: usize, instance: usize, number: u64) -> Distinct {
        Distinct {
            fixture: fixture as u32,
            instance: instance as u32,
            number,
        }
    }

    /// The provider and the body of a delivery.
    pub fn body(&self, d: Distinct, copy: DeliveryKind) -> (Provider, String) {
        let f = &self.fixtures[d.fixture as usize];
        (f.template.provider, f.body(d, self.effective(d, copy)))
    }

    /// The redelivery `copy` of `d` can be: an exact one where its fixture cannot move its
    /// timestamp or name another alias.
    pub fn effective(&self, d: Distinct, copy: DeliveryKind) -> DeliveryKind {
        let f = &self.fixtures[d.fixture as usize];
        match copy {
            DeliveryKind::Moved if !f.moves => DeliveryKind::Exact,
            DeliveryKind::Alias if !f.aliases => DeliveryKind::Exact,
            other => other,
        }
    }
}

impl Fixture {
    /// `template` as a fixture, if two of its deliveries are two messages (their events' ids
    /// disjoint; state events' ids, which count changes in the store, are apart by their
    /// instance).
    fn of(template: Template) -> Option<Fixture> {
        let mut f = Fixture {
            template,
            renames: true,
            moves: false,
            redelivers: true,
            aliases: false,
        };
        let one = Distinct {
            fixture: 0,
            instance: 0,
            number: 1,
        };
        let two = Distinct { number: 2, ..one };
        let first = |f: &Fixture| f.ids(one, DeliveryKind::First);
        let distinct = |f: &Fixture| first(f).is_disjoint(&f.ids(two, DeliveryKind::First));
        f.renames = !f.template.message_ids.is_empty() && !first(&f).is_empty() && distinct(&f);
        if !f.renames && !distinct(&f) {
            return None;
        }
        // A body without a time of its own is keyed to the minute it arrives in
        // (docs/guarantees.md): its redeliveries are new events, so it is not redelivered.
        let later = chrono::Utc::now() + chrono::TimeDelta::minutes(10);
        f.redelivers = ids_at(f.template.provider, &f.body(one, DeliveryKind::First), later) == first(&f);
        f.moves = f.renames
            && moved_timestamp(&f.body(one, DeliveryKind::First)).is_some()
            && f.ids(one, DeliveryKind::Moved) == first(&f);
        // Under another alias the ids are the first delivery's once the identity map has
        // learned it (WAHA's phone chat, Meta's user id alone), or as parsed (Evolution, Z-API).
        f.aliases = f.renames
            && aliased(&f.body(one, DeliveryKind::First)).is_some()
            && learned_ids(
                f.template.provider,
                &[&f.body(one, DeliveryKind::First), &f.body(one, DeliveryKind::Alias)],
            )
            .windows(2)
            .all(|w| w[0] == w[1]);
        Some(f)
    }

    fn ids(&self, d: Distinct, kind: DeliveryKind) -> BTreeSet<String> {
        ids_of(self.template.provider, &self.body(d, kind))
    }

    fn body(&self, d: Distinct, copy: DeliveryKind) -> String {
        let t = &self.template;
        let instance = if self.renames {
            format!("{}-f{}-c{}", t.instance, d.fixture, d.instance)
        } else {
            format!("{}-f{}-u{}", t.instance, d.fixture, d.number)
        };
        let mut body = t
            .body
            .replace(&format!("\"{}\"", t.instance), &format!("\"{instance}\""));
        if self.renames {
            for m in &t.message_ids {
                body = body.replace(&format!("\"{m}\""), &format!("\"{m}-{}\"", d.number));
            }
        }
        match copy {
            DeliveryKind::Moved => moved_timestamp(&body).unwrap_or(body),
            DeliveryKind::Alias => aliased(&body).unwrap_or(body),
            _ => body,
        }
    }
}

/// The event ids of `bodies` delivered one after the other, each chat keyed by its person as
/// the receiver keys it (an identity map that learns from each body in turn).
fn learned_ids(provider: Provider, bodies: &[&str]) -> Vec<BTreeSet<String>> {
    let store = wahooks::registry::MemoryRegistry::default();
    let cache = wahooks::contacts::Cache::default();
    let ctx = ParseContext::new(provider, "sim", chrono::Utc::now());
    bodies
        .iter()
        .map(|body| {
            let mut events = parse_verified(&ctx, &Verified::trusted(body.as_bytes())).unwrap_or_default();
            let learned = futures::executor::block_on(wahooks::contacts::resolve(&store, &cache, &mut events, 0));
            match learned {
                Ok(()) => events.into_iter().filter(|e| e.state.is_none()).map(|e| e.id).collect(),
                Err(_) => BTreeSet::new(),
            }
        })
        .collect()
}

/// The body with its direct chat named by another alias, as providers send once WhatsApp knows
/// both: Evolution's older versions put the LID in `remoteJid` and the phone JID in
/// `remoteJidAlt`; Z-API adds `chatLid` next to `phone`; WAHA delivers a message under its
/// phone chat too (GOWS and NOWEB, WAHA #1564); Meta names a user by their business-scoped id
/// alone once they hide their number. One person is one conversation across these
/// (docs/events.md, "Aliases and the conversation key"). `None` when the body has no such shape.
pub fn aliased(body: &str) -> Option<String> {
    if let Some(other) = waha_or_meta_alias(body) {
        return Some(other);
    }
    let lid = |digits: &str| format!("{}7@lid", digits.chars().rev().collect::<String>());
    for (key, alt) in [
        ("\"remoteJid\": \"", "remoteJidAlt"),
        ("\"remoteJid\":\"", "remoteJidAlt"),
        ("\"phone\": \"", "chatLid"),
        ("\"phone\":\"", "chatLid"),
    ] {
        if body.contains(&format!("\"{alt}\"")) {
            continue;
        }
        let Some(at) = body.find(key) else { continue };
        let start = at + key.len();
        let digits: String = body[start..].chars().take_while(|c| c.is_ascii_digit()).collect();
        let rest = &body[start + digits.len()..];
        if digits.len() < 8 {
            continue;
        }
        return Some(if alt == "remoteJidAlt" {
            let Some(tail) = rest.strip_prefix("@s.whatsapp.net\"") else {
                continue;
            };
            format!(
                "{}{}\", \"remoteJidAlt\": \"{digits}@s.whatsapp.net\"{tail}",
                &body[..start],
                lid(&digits)
            )
        } else {
            let Some(tail) = rest.strip_prefix('"') else { continue };
            format!("{}{digits}\", \"chatLid\": \"{}\"{tail}", &body[..start], lid(&digits))
        });
    }
    None
}

/// WAHA's message under its phone chat (the LID chat's `SenderAlt` as `from`, and in the
/// serialized id), or Meta's message from a user by their business-scoped id alone (no `from`,
/// no `wa_id`).
fn waha_or_meta_alias(body: &str) -> Option<String> {
    let mut v: serde_json::Value = serde_json::from_str(body).ok()?;
    let payload = &mut v["payload"];
    if let Some(alt) = payload["_data"]["Info"]["SenderAlt"]
        .as_str()
        .filter(|a| a.ends_with("@s.whatsapp.net"))
    {
        let phone = format!("{}@c.us", alt.split('@').next()?);
        let from = payload["from"].as_str().filter(|f| f.ends_with("@lid"))?.to_owned();
        let id = payload["id"].as_str()?.replace(&from, &phone);
        payload["from"] = phone.into();
        payload["id"] = id.into();
        return serde_json::to_string(&v).ok();
    }
    let value = v["entry"].get_mut(0)?["changes"].get_mut(0)?.get_mut("value")?;
    let message = value["messages"].get_mut(0)?.as_object_mut()?;
    if !(message.contains_key("from_user_id") && message.contains_key("from")) {
        return None;
    }
    message.remove("from");
    if let Some(contact) = value["contacts"].get_mut(0).and_then(serde_json::Value::as_object_mut) {
        contact.remove("wa_id");
    }
    serde_json::to_string(&v).ok()
}

/// One new delivery in this many is an Evolution message with 450 KB of inline media
/// (`webhook_base64`): too large for a DynamoDB item, its body goes to the bucket.
pub const LARGE_EVERY: usize = 2_000;

/// The large body: Evolution's `messages.upsert` with an image inline, incompressible.
fn large_media() -> Template {
    Template {
        provider: Provider::Evolution,
        // 450 KB of noise as base64: the same bytes on every run.
        body: wahooks::testkit::evolution_inline_media("sim-large", "3EB0LARGE0001", 600_000),
        instance: "sim-large".into(),
        message_ids: vec!["3EB0LARGE0001".into()],
    }
}

/// The event ids a body gives (state events' ids aside, which need the store).
fn ids_of(provider: Provider, body: &str) -> BTreeSet<String> {
    ids_at(provider, body, chrono::Utc::now())
}

/// The event ids a body received at `now` gives.
fn ids_at(provider: Provider, body: &str, now: chrono::DateTime<chrono::Utc>) -> BTreeSet<String> {
    let ctx = ParseContext::new(provider, "sim", now);
    parse_verified(&ctx, &Verified::trusted(body.as_bytes()))
        .map(|events| events.into_iter().filter(|e| e.state.is_none()).map(|e| e.id).collect())
        .unwrap_or_default()
}

/// The body with its first provider timestamp (`momment`, `messageTimestamp`, `timestamp`;
/// a number or a quoted number) moved 1.5 s (or 2 s) later; `None` when it has none.
pub fn moved_timestamp(body: &str) -> Option<String> {
    for key in ["\"momment\":", "\"messageTimestamp\":", "\"timestamp\":"] {
        let Some(at) = body.find(key) else { continue };
        let start = at + key.len();
        let rest = &body[start..];
        let skip = rest.len() - rest.trim_start().len();
        let quoted = rest[skip..].starts_with('"');
        let from = start + skip + usize::from(quoted);
        let digits: String = body[from..].chars().take_while(|c| c.is_ascii_digit()).collect();
        let Ok(value) = digits.parse::<i64>() else { continue };
        // Milliseconds (13 digits) move 1.5 s, seconds 2 s.
        let moved = if digits.len() >= 13 { value + 1500 } else { value + 2 };
        return Some(format!("{}{}{}", &body[..from], moved, &body[from + digits.len()..]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_moves_as_a_number_or_a_quoted_number() {
        assert_eq!(
            moved_timestamp(r#"{"momment": 1757387334000}"#).as_deref(),
            Some(r#"{"momment": 1757387335500}"#)
        );
        assert_eq!(
            moved_timestamp(r#"{"timestamp":"1757387334"}"#).as_deref(),
            Some(r#"{"timestamp":"1757387336"}"#)
        );
        assert_eq!(moved_timestamp(r#"{"t":1}"#), None);
    }

    #[test]
    fn an_alias_names_the_chat_by_its_lid_too() {
        assert_eq!(
            aliased(r#"{"key":{"remoteJid":"5511900000001@s.whatsapp.net","id":"X"}}"#).as_deref(),
            Some(
                r#"{"key":{"remoteJid":"10000000911557@lid", "remoteJidAlt": "5511900000001@s.whatsapp.net","id":"X"}}"#
            )
        );
        assert_eq!(
            aliased(r#"{"phone": "5544999999999", "x": 1}"#).as_deref(),
            Some(r#"{"phone": "5544999999999", "chatLid": "99999999944557@lid", "x": 1}"#)
        );
        assert_eq!(aliased(r#"{"phone": "5544999999999", "chatLid": "1@lid"}"#), None);
        assert_eq!(aliased(r#"{"remoteJid": "120363141381952108@g.us"}"#), None);
    }

    #[test]
    fn the_fixture_mix_makes_distinct_messages_in_shared_chats() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        let traffic = Traffic::load(&dir).expect("fixtures");
        assert!(
            traffic.renaming() * 2 > traffic.len(),
            "most fixtures make chats of many messages"
        );
        let f = (0..traffic.len())
            .find(|&i| traffic.fixtures[i].renames)
            .expect("a renaming fixture");
        let (p, one) = traffic.body(traffic.distinct(f, 0, 1), DeliveryKind::First);
        let (_, two) = traffic.body(traffic.distinct(f, 0, 2), DeliveryKind::First);
        assert!(ids_of(p, &one).is_disjoint(&ids_of(p, &two)));
        let (_, again) = traffic.body(traffic.distinct(f, 0, 1), DeliveryKind::Moved);
        assert_eq!(ids_of(p, &one), ids_of(p, &again), "a moved timestamp keeps the ids");
        let joined = traffic.fixtures.iter().filter(|f| f.aliases).count();
        assert!(
            joined >= 10,
            "Z-API and Evolution messages come again under a LID: {joined}"
        );
        // WAHA and Meta come again under another alias too: one event once the identity map has
        // learned the first delivery, two without it.
        for provider in [Provider::Waha, Provider::Meta] {
            let f = traffic
                .fixtures
                .iter()
                .find(|f| f.aliases && f.template.provider == provider)
                .unwrap_or_else(|| panic!("a {provider} fixture redelivered under another alias"));
            let one = Distinct {
                fixture: 0,
                instance: 0,
                number: 1,
            };
            let (first, other) = (f.body(one, DeliveryKind::First), f.body(one, DeliveryKind::Alias));
            assert_ne!(first, other);
            let learned = learned_ids(provider, &[&first, &other]);
            assert_eq!(learned[0], learned[1], "{provider}: one event across the aliases");
            assert_ne!(
                ids_of(provider, &first),
                ids_of(provider, &other),
                "{provider}: the map joins them"
            );
        }
    }

    #[test]
    fn waha_and_meta_name_a_person_by_another_alias() {
        let waha = r#"{"payload":{"id":"false_382@lid_3AC2","from":"382@lid","_data":{"Info":{"SenderAlt":"5585738@s.whatsapp.net"}}}}"#;
        let v: serde_json::Value = serde_json::from_str(&aliased(waha).expect("the phone chat")).expect("JSON");
        assert_eq!(v["payload"]["from"], "5585738@c.us");
        assert_eq!(v["payload"]["id"], "false_5585738@c.us_3AC2");
        let meta = r#"{"entry":[{"changes":[{"value":{"contacts":[{"wa_id":"972","user_id":"US.1"}],"messages":[{"from":"972","from_user_id":"US.1","id":"wamid.x"}]}}]}]}"#;
        let v: serde_json::Value = serde_json::from_str(&aliased(meta).expect("by the user id")).expect("JSON");
        let value = &v["entry"][0]["changes"][0]["value"];
        assert!(value["messages"][0].get("from").is_none() && value["contacts"][0].get("wa_id").is_none());
        assert_eq!(value["messages"][0]["from_user_id"], "US.1");
    }
}
