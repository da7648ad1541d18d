//! SQS's documented rules, in one place, so our adapter refuses what SQS would refuse (moto,
//! the local stand-in, accepts far more: any group id, any body).
//!
//! From the SQS API reference (`SendMessageBatch`, `SendMessage`, `SendMessageBatchRequestEntry`):
//! - `MessageGroupId` and `MessageDeduplicationId`: 1–128 characters, each an ASCII letter,
//!   digit or punctuation ``!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~`` (no space, nothing else);
//! - a batch entry `Id`: 1–80 characters, letters, digits, `-` and `_`, unique in its batch;
//! - a message body: at least one character, only `#x9 | #xA | #xD | #x20–#xD7FF |
//!   #xE000–#xFFFD | #x10000–#x10FFFF`;
//! - a batch: 1–10 entries, and at most 1 MiB in all (bodies and attributes);
//! - a message: at most the queue's `MaximumMessageSize` (1 MiB at most);
//! - FIFO queues need a group id, and a deduplication id unless content-based deduplication is on
//!   (ours never is: the event id is the deduplication id).
//!
//! [`GroupId`] can only be built valid; [`escape_body`] turns any JSON text into a body SQS
//! takes; [`check_batch`] is an independent check of every rule, which the SQS adapter runs
//! before each request (a test fails where AWS would, whatever the stand-in accepts).

use sha2::{Digest, Sha256};

/// SQS's limit on entries per `SendMessageBatch`.
pub const MAX_BATCH_ENTRIES: usize = 10;

/// SQS's limit on a whole `SendMessageBatch` request (and on any message).
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// The longest group or deduplication id.
pub const MAX_ID_CHARS: usize = 128;

/// The longest per-message delay (`DelaySeconds`): 15 minutes. (FIFO queues take none per
/// message: the timers' queue is a standard one.)
pub const MAX_DELAY_SECONDS: u64 = 900;

/// Whether `c` may appear in a group or deduplication id: printable ASCII, no space.
fn id_char(c: char) -> bool {
    c.is_ascii_graphic()
}

/// Whether `s` is a valid `MessageGroupId` / `MessageDeduplicationId`.
pub fn valid_group_or_dedup_id(s: &str) -> bool {
    (1..=MAX_ID_CHARS).contains(&s.len()) && s.chars().all(id_char)
}

/// Whether `c` may appear in a message body.
pub fn body_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{a}' | '\u{d}' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

/// A FIFO message group: the same chat always gets the same group, different chats different
/// groups, and every group is valid for SQS whatever the chat id holds (spaces, accents, emoji,
/// any length).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupId(String);

impl GroupId {
    /// The group of `chat` in `instance`: `<instance>#<chat>` when that is a valid id (so it
    /// stays readable), else `~` and 64 hex digits of its SHA-256. A readable id always holds
    /// `#` and a hashed one never does, so the two forms cannot collide.
    pub fn for_chat(instance: &str, chat: &str) -> GroupId {
        let readable = format!("{instance}#{chat}");
        if valid_group_or_dedup_id(&readable) {
            GroupId(readable)
        } else {
            GroupId(format!("~{}", hex::encode(Sha256::digest(readable.as_bytes()))))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A JSON text as a message body SQS accepts: every character SQS refuses (U+FFFE and U+FFFF
/// in practice; serde_json already escapes control characters) becomes a `\uXXXX` escape.
/// Outside strings valid JSON holds none of them, so the result is the same JSON value.
pub fn escape_body(json: String) -> String {
    if json.chars().all(body_char) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 12);
    for c in json.chars() {
        if body_char(c) {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// One entry as SQS sees it.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The batch entry id.
    pub id: &'a str,
    /// The body.
    pub body: &'a str,
    /// Bytes of the message attributes (name, type and value of each).
    pub attributes_bytes: usize,
    /// `MessageGroupId`.
    pub group_id: Option<&'a str>,
    /// `MessageDeduplicationId`.
    pub dedup_id: Option<&'a str>,
}

/// A rule SQS would enforce, broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleViolation {
    /// 0 or more than 10 entries.
    #[error("a batch holds 1 to 10 entries, not {0}")]
    BatchEntries(usize),
    /// Over 1 MiB in all.
    #[error("the batch is {0} bytes, over SQS's 1 MiB")]
    BatchTooLarge(usize),
    /// An entry id SQS refuses or repeats.
    #[error("batch entry id `{0}` is not 1-80 letters, digits, - or _, or is repeated")]
    EntryId(String),
    /// A message over the queue's limit.
    #[error("entry `{id}` is {size} bytes, over the queue's {limit}")]
    MessageTooLarge {
        /// The entry.
        id: String,
        /// Its size.
        size: usize,
        /// The queue's `MaximumMessageSize`.
        limit: usize,
    },
    /// A body with a character SQS refuses, or empty.
    #[error("entry `{0}` has an empty body or a character SQS refuses")]
    Body(String),
    /// A missing or invalid group id on a FIFO queue, or an invalid one anywhere.
    #[error("entry `{0}` has no valid MessageGroupId (1-128 printable ASCII characters)")]
    GroupId(String),
    /// A missing or invalid deduplication id on a FIFO queue.
    #[error("entry `{0}` has no valid MessageDeduplicationId (1-128 printable ASCII characters)")]
    DedupId(String),
}

/// Check a batch for a queue (FIFO or not, with its `MaximumMessageSize`) against every rule.
pub fn check_batch(entries: &[Entry<'_>], fifo: bool, max_message_bytes: usize) -> Result<(), RuleViolation> {
    if entries.is_empty() || entries.len() > MAX_BATCH_ENTRIES {
        return Err(RuleViolation::BatchEntries(entries.len()));
    }
    let mut total = 0;
    let mut seen = std::collections::HashSet::new();
    for e in entries {
        let id_ok = (1..=80).contains(&e.id.len())
            && e.id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok || !seen.insert(e.id) {
            return Err(RuleViolation::EntryId(e.id.to_owned()));
        }
        let size = e.body.len() + e.attributes_bytes;
        let limit = max_message_bytes.min(MAX_BATCH_BYTES);
        if size > limit {
            return Err(RuleViolation::MessageTooLarge {
                id: e.id.to_owned(),
                size,
                limit,
            });
        }
        total += size;
        if e.body.is_empty() || !e.body.chars().all(body_char) {
            return Err(RuleViolation::Body(e.id.to_owned()));
        }
        match e.group_id {
            Some(g) if !valid_group_or_dedup_id(g) => return Err(RuleViolation::GroupId(e.id.to_owned())),
            None if fifo => return Err(RuleViolation::GroupId(e.id.to_owned())),
            _ => {}
        }
        match e.dedup_id {
            Some(d) if !valid_group_or_dedup_id(d) => return Err(RuleViolation::DedupId(e.id.to_owned())),
            None if fifo => return Err(RuleViolation::DedupId(e.id.to_owned())),
            _ => {}
        }
    }
    if total > MAX_BATCH_BYTES {
        return Err(RuleViolation::BatchTooLarge(total));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_follow_the_documented_charset_and_length() {
        assert!(valid_group_or_dedup_id("I#5511999999999"));
        assert!(valid_group_or_dedup_id(r##"!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~"##));
        assert!(!valid_group_or_dedup_id(""));
        assert!(!valid_group_or_dedup_id(&"a".repeat(129)));
        assert!(valid_group_or_dedup_id(&"a".repeat(128)));
        for bad in ["a b", "São", "x\u{1f600}", "tab\t", "new\nline"] {
            assert!(!valid_group_or_dedup_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_chat_with_spaces_accents_or_emoji_gets_a_valid_stable_group() {
        for chat in ["Contato São Paulo 1", "Contact number", "🙂 família", &"9".repeat(300)] {
            let g = GroupId::for_chat("I", chat);
            assert!(valid_group_or_dedup_id(g.as_str()), "{chat}: {g:?}");
            assert_eq!(g, GroupId::for_chat("I", chat), "stable");
            assert_ne!(g, GroupId::for_chat("J", chat), "instances stay apart");
        }
        assert_eq!(
            GroupId::for_chat("I", "5511").as_str(),
            "I#5511",
            "readable when it can be"
        );
        assert_ne!(
            GroupId::for_chat("I", "Contato São Paulo 1"),
            GroupId::for_chat("I", "Contato Sao Paulo 1")
        );
    }

    #[test]
    fn bodies_with_noncharacters_are_escaped_and_read_back_identically() {
        let text = "a\u{fffe}b\u{ffff}c 🙂";
        let json = serde_json::to_string(&serde_json::json!({ "text": text })).expect("json");
        assert!(!json.chars().all(body_char), "serde_json leaves U+FFFE/U+FFFF raw");
        let body = escape_body(json);
        assert!(body.chars().all(body_char), "{body}");
        let back: serde_json::Value = serde_json::from_str(&body).expect("still JSON");
        assert_eq!(back["text"], text);
    }

    fn entry<'a>(id: &'a str, body: &'a str, group: Option<&'a str>) -> Entry<'a> {
        Entry {
            id,
            body,
            attributes_bytes: 0,
            group_id: group,
            dedup_id: group,
        }
    }

    #[test]
    fn batches_are_checked_like_sqs_does() {
        let ok = entry("m0", "{}", Some("g"));
        assert_eq!(check_batch(&[ok], true, 1024), Ok(()));
        assert_eq!(check_batch(&[], true, 1024), Err(RuleViolation::BatchEntries(0)));
        let eleven: Vec<_> = (0..11).map(|_| ok).collect();
        assert_eq!(check_batch(&eleven, true, 1024), Err(RuleViolation::BatchEntries(11)));
        assert!(matches!(
            check_batch(&[ok, ok], true, 1024),
            Err(RuleViolation::EntryId(_))
        ));
        assert!(matches!(
            check_batch(&[entry("m0", "{}", None)], true, 1024),
            Err(RuleViolation::GroupId(_))
        ));
        assert_eq!(check_batch(&[entry("m0", "{}", None)], false, 1024), Ok(()));
        assert!(matches!(
            check_batch(&[entry("m0", "{}", Some("a b"))], true, 1024),
            Err(RuleViolation::GroupId(_))
        ));
        assert!(matches!(
            check_batch(&[entry("m0", "\u{ffff}", Some("g"))], true, 1024),
            Err(RuleViolation::Body(_))
        ));
        let big = "x".repeat(2000);
        assert!(matches!(
            check_batch(&[entry("m0", &big, Some("g"))], true, 1024),
            Err(RuleViolation::MessageTooLarge { .. })
        ));
        let half = "x".repeat(600 * 1024);
        assert!(matches!(
            check_batch(
                &[entry("m0", &half, Some("g")), entry("m1", &half, Some("g"))],
                true,
                MAX_BATCH_BYTES
            ),
            Err(RuleViolation::BatchTooLarge(_))
        ));
    }

    proptest! {
        #[test]
        fn any_chat_id_makes_a_valid_group(instance in ".{0,40}", chat in ".{0,200}") {
            let g = GroupId::for_chat(&instance, &chat);
            prop_assert!(valid_group_or_dedup_id(g.as_str()));
        }

        #[test]
        fn any_text_makes_a_body_sqs_takes(text in ".*", extra in proptest::sample::select(vec!['\u{fffe}', '\u{ffff}', 'a'])) {
            let value = serde_json::json!({ "t": format!("{text}{extra}") });
            let body = escape_body(serde_json::to_string(&value).expect("json"));
            prop_assert!(body.chars().all(body_char));
            let back: serde_json::Value = serde_json::from_str(&body).expect("json");
            prop_assert_eq!(back, value);
        }
    }
}
