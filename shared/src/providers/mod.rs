//! Provider adapters: raw body bytes in, canonical events out. Pure functions, no I/O.
//!
//! Each provider has its own module (`zapi`, `hubmessage`, `wwa`, `meta`, `evolution`, `waha`). They read the body
//! as a JSON tree ([`json::Json`]) rather than typed wire structs on purpose: real traffic
//! carries duplicate keys (legacy Z-API examples), numbers sent as strings, unknown kinds and
//! fields that appear without notice; a permissive reader keeps every one of those events
//! instead of rejecting it, and the untouched body travels along in `data.raw`.

pub mod evolution;
pub mod hubmessage;
mod json;
pub mod meta;
pub mod waha;
pub mod wwa;
pub mod zapi;

use std::sync::Arc;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::value::RawValue;

use self::json::Json;

use crate::event::{AliasKind, Chat, ChatKind, CloudEvent, EventData, EventType, Provider};
use crate::identity::{event_id, sha256_hex, Key, UNKNOWN};
use crate::route::Route;

/// What is known about a request besides its body.
#[derive(Debug, Clone, Copy)]
pub struct ParseContext<'a> {
    /// Which provider's format to read.
    pub provider: Provider,
    /// The route the body arrived on (a hint for shapes that carry no type).
    pub route: Option<Route>,
    /// The wahooks endpoint id.
    pub endpoint: &'a str,
    /// When wahooks received the request.
    pub received_at: DateTime<Utc>,
    /// A delivery id sent by the provider (Hub `x-idempotency-key`, Standard Webhooks
    /// `webhook-id`); when present it keys the event ids.
    pub delivery_id: Option<&'a str>,
    /// The endpoint's tenant (`None` for the default tenant): a body that names no instance is
    /// the tenant's unnamed instance, `-<tenant>`, so two tenants' such events never share an
    /// id, a partition or a FIFO group.
    pub tenant: Option<&'a str>,
}

impl<'a> ParseContext<'a> {
    /// A context for `provider` with no route hint and no delivery id.
    pub fn new(provider: Provider, endpoint: &'a str, received_at: DateTime<Utc>) -> Self {
        ParseContext {
            provider,
            route: None,
            endpoint,
            received_at,
            delivery_id: None,
            tenant: None,
        }
    }

    /// The instance an event is filed under: the body's, or, when it names none (`-`), the
    /// tenant's unnamed one, `-<tenant>`. A body's own instance that starts with `-` gets one
    /// more, so no body can name another tenant's unnamed instance (`-tn_x` → `--tn_x`).
    /// Endpoints of the default tenant (stored before tenants) keep every instance as it was.
    pub fn instance_of(&self, instance: &str) -> String {
        match self.tenant {
            Some(tenant) if instance == "-" => format!("-{tenant}"),
            Some(_) if instance.starts_with('-') => format!("-{instance}"),
            _ => instance.to_owned(),
        }
    }

    /// The event's time: the provider's when it has a believable one, else the receipt. A
    /// time more than a day after the receipt, or before WhatsApp existed, is a unit or data
    /// error (Z-API's Connected example reads as the year 2798), not when the event happened.
    pub fn event_time(&self, provider_time: Option<DateTime<Utc>>) -> DateTime<Utc> {
        let earliest = DateTime::from_timestamp(1_230_768_000, 0).unwrap_or(DateTime::UNIX_EPOCH); // 2009-01-01
        provider_time
            .filter(|t| *t >= earliest && *t <= self.received_at + TimeDelta::days(1))
            .unwrap_or(self.received_at)
    }
}

/// Why a body could not be decoded into events (it is not JSON we can read).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body is empty.
    #[error("the body is empty")]
    Empty,
    /// The body ends before the JSON value does.
    #[error("the JSON is truncated")]
    Truncated(#[source] serde_json::Error),
    /// The body is not JSON.
    #[error("the body is not JSON")]
    NotJson(#[source] serde_json::Error),
    /// The body is JSON but neither an object nor an array.
    #[error("the JSON is not an object or an array")]
    NotObjectOrArray,
}

impl DecodeError {
    /// A short machine-readable code for HTTP bodies.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::Empty => "empty_body",
            DecodeError::Truncated(_) => "truncated_json",
            DecodeError::NotJson(_) => "not_json",
            DecodeError::NotObjectOrArray => "not_object_or_array",
        }
    }
}

/// The public door to the parser: an authenticated (or trusted) body's events. Only a
/// [`Verified`](crate::auth::Verified) body is ever parsed: the receivers get one from
/// `authenticate`, the CLI and the tests from `Verified::trusted`.
pub fn parse_verified(
    ctx: &ParseContext<'_>,
    verified: &crate::auth::Verified<'_>,
) -> Result<Vec<CloudEvent>, DecodeError> {
    parse(ctx, verified.body())
}

/// Decode a body (already authenticated and inflated) into one or more canonical events.
///
/// Valid JSON of an unknown shape becomes one `whatsapp.unknown` event, never an error.
pub(crate) fn parse(ctx: &ParseContext<'_>, body: &[u8]) -> Result<Vec<CloudEvent>, DecodeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError::Empty);
    }
    let decode_error = |e: serde_json::Error| {
        if e.is_eof() {
            DecodeError::Truncated(e)
        } else {
            DecodeError::NotJson(e)
        }
    };
    // The JSON is validated once. Compact bodies (what providers send) are checked in one pass
    // that allocates nothing; that text becomes `data.raw` as is, and the tree is read from it
    // without a second UTF-8 check. Indented bodies are read into the tree directly and then
    // have their whitespace removed for `data.raw`.
    let (value, raw) = if has_line_breaks(body) {
        let value: Json<'_> = serde_json::from_slice(body).map_err(decode_error)?;
        (value, strip_valid(body).map_err(decode_error)?)
    } else {
        let text: &RawValue = serde_json::from_slice(body).map_err(decode_error)?;
        (
            Json::parse(text.get()).map_err(decode_error)?,
            Arc::from(text.to_owned()),
        )
    };
    if !value.is_object() && value.as_array().is_none() {
        return Err(DecodeError::NotObjectOrArray);
    }
    let raw = match storable(ctx.provider, raw.get().as_bytes()) {
        std::borrow::Cow::Owned(masked) => String::from_utf8(masked)
            .ok()
            .and_then(|t| RawValue::from_string(t).ok())
            .map(Arc::from)
            .unwrap_or(raw),
        std::borrow::Cow::Borrowed(_) => raw,
    };
    let body = Body {
        value: &value,
        raw,
        bytes: body,
    };
    let events = match ctx.provider {
        Provider::Zapi => zapi::parse(ctx, &body),
        Provider::Hubmessage => hubmessage::parse(ctx, &body),
        Provider::Wwa => wwa::parse(ctx, &body),
        Provider::Meta => meta::parse(ctx, &body),
        Provider::Evolution => evolution::parse(ctx, &body),
        Provider::Waha => waha::parse(ctx, &body),
        // Not a provider of this version (only ever read from a stored event): nothing to parse.
        Provider::Other => Vec::new(),
    };
    Ok(if events.is_empty() {
        vec![unknown(ctx, &body, "-")]
    } else {
        events
    })
}

/// What of a `provider`'s body may be kept (in an event's `raw`, in quarantine, in a log): the
/// body, but Evolution's with its credentials masked (it puts the instance's API token, a live
/// credential, in every body: it never reaches the table, the logs or the queues). The one
/// masking step every path goes through.
pub fn storable(provider: Provider, body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match provider {
        Provider::Evolution => mask_credentials(body),
        _ => std::borrow::Cow::Borrowed(body),
    }
}

/// The top-level members that hold credentials in a gateway's body: Evolution's `apikey` (the
/// instance token) and `api_key` (the global key, in its error webhook).
const CREDENTIAL_KEYS: [&[u8]; 2] = [b"apikey", b"api_key"];

/// `body` with the string value of each top-level credential member replaced by `"***"` (a
/// value already empty is left alone). Works on the bytes, so it also masks a body that is not
/// valid JSON (before it is quarantined); `Borrowed` when there was nothing to mask.
pub fn mask_credentials(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let (mut depth, mut i, mut out): (i32, usize, Option<Vec<u8>>) = (0, 0, None);
    let mut copied = 0;
    // The end (exclusive) of the string starting at `start` (a `"`).
    let string_end = |start: usize| {
        let mut j = start + 1;
        while j < body.len() {
            match body[j] {
                b'\\' => j += 2,
                b'"' => return j + 1,
                _ => j += 1,
            }
        }
        body.len()
    };
    while i < body.len() {
        match body[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            b'"' => {
                let end = string_end(i);
                let key = &body[(i + 1).min(end)..end.saturating_sub(1).max(i + 1).min(body.len())];
                let mut j = end;
                while j < body.len() && body[j].is_ascii_whitespace() {
                    j += 1;
                }
                if depth == 1 && body.get(j) == Some(&b':') && CREDENTIAL_KEYS.contains(&key) {
                    j += 1;
                    while j < body.len() && body[j].is_ascii_whitespace() {
                        j += 1;
                    }
                    if body.get(j) == Some(&b'"') {
                        let value_end = string_end(j);
                        if value_end > j + 2 {
                            let o = out.get_or_insert_with(|| Vec::with_capacity(body.len()));
                            o.extend_from_slice(&body[copied..j]);
                            o.extend_from_slice(b"\"***\"");
                            copied = value_end.min(body.len());
                        }
                        i = value_end;
                        continue;
                    }
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    match out {
        Some(mut o) => {
            o.extend_from_slice(&body[copied..]);
            std::borrow::Cow::Owned(o)
        }
        None => std::borrow::Cow::Borrowed(body),
    }
}

/// A decoded body as the adapters see it.
pub(crate) struct Body<'a> {
    /// The parsed JSON.
    pub value: &'a Json<'a>,
    /// The JSON text with insignificant whitespace removed, for `data.raw`.
    pub raw: Arc<RawValue>,
    /// The bytes as received.
    pub bytes: &'a [u8],
}

impl Body<'_> {
    /// Fresh event data carrying the raw JSON.
    pub(crate) fn data(&self) -> EventData {
        EventData::new(self.raw.clone())
    }
}

/// The body's JSON on one line for `data.raw`, with nothing else changed: key order, duplicate
/// keys, number spellings and string escapes stay exactly as sent. Providers send compact JSON
/// (Z-API's `content-length` is the compact length), which is taken as is; a body with line
/// breaks has the whitespace between its tokens removed. An error if the body is not JSON.
pub fn compact_raw(body: &[u8]) -> Result<Arc<RawValue>, serde_json::Error> {
    if has_line_breaks(body) {
        // The body as sent must be JSON: removing whitespace could join `1 2` into `12`.
        serde_json::from_slice::<serde::de::IgnoredAny>(body)?;
        strip_valid(body)
    } else {
        serde_json::from_slice::<&RawValue>(body).map(|text| Arc::from(text.to_owned()))
    }
}

/// [`compact_raw`] of a body already known to be JSON.
fn strip_valid(body: &[u8]) -> Result<Arc<RawValue>, serde_json::Error> {
    let text = String::from_utf8(strip_whitespace(body)).map_err(|_| serde::de::Error::custom("invalid UTF-8"))?;
    RawValue::from_string(text).map(Arc::from)
}

fn has_line_breaks(body: &[u8]) -> bool {
    body.iter().any(|&b| b == b'\n' || b == b'\r')
}

/// Remove the whitespace outside strings (inside a valid JSON string there is no raw line break).
/// Copies whole runs between the bytes that matter rather than byte by byte.
fn strip_whitespace(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    loop {
        // Outside a string: copy up to the next whitespace or quote.
        let Some(at) = rest
            .iter()
            .position(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t' | b'"'))
        else {
            out.extend_from_slice(rest);
            return out;
        };
        out.extend_from_slice(&rest[..at]);
        if rest[at] != b'"' {
            rest = &rest[at + 1..];
            continue;
        }
        // Inside a string: copy through the closing quote, skipping escaped characters.
        let mut end = at + 1;
        loop {
            match rest[end..].iter().position(|b| matches!(b, b'"' | b'\\')) {
                Some(i) if rest[end + i] == b'\\' => end += i + 2,
                Some(i) => {
                    end += i + 1;
                    break;
                }
                None => {
                    end = rest.len();
                    break;
                }
            }
            if end >= rest.len() {
                end = rest.len();
                break;
            }
        }
        out.extend_from_slice(&rest[at..end]);
        rest = &rest[end..];
    }
}

/// An event of `event_type` in chat `subject` (`None`: the instance itself) whose natural key is
/// `key`: the one way adapters build events, so the id is always hashed over the same instance,
/// type and chat the event carries (see [`crate::identity`]).
pub(crate) fn event(
    ctx: &ParseContext<'_>,
    instance: &str,
    event_type: EventType,
    subject: Option<String>,
    key: &str,
    time: DateTime<Utc>,
    data: EventData,
) -> CloudEvent {
    let instance = ctx.instance_of(instance);
    let mut event = CloudEvent::new(
        event_id(ctx.provider, &instance, event_type, subject.as_deref(), &[key]),
        ctx.provider,
        &instance,
        event_type,
        subject,
        time,
        ctx.endpoint,
        ctx.received_at,
        data,
    );
    // Kept to hash the id again over the chat's conversation key (`crate::contacts`).
    event.natural_key = Some(key.to_owned());
    event
}

/// The catch-all: valid JSON we can't classify, stored and published as `whatsapp.unknown`.
pub(crate) fn unknown(ctx: &ParseContext<'_>, body: &Body<'_>, instance: &str) -> CloudEvent {
    let key = Key::of(&UNKNOWN, sha256_hex(body.bytes)).without_natural_key(ctx.delivery_id);
    event(
        ctx,
        instance,
        EventType::Unknown,
        None,
        &key,
        ctx.received_at,
        body.data(),
    )
}

/// A fingerprint of a JSON object without the fields that change between redeliveries
/// (the canonical text has sorted keys, so equal objects serialise equally).
pub(crate) fn fingerprint_without(value: &Json<'_>, volatile: &[&str]) -> String {
    sha256_hex(value.canonical_without(volatile).as_bytes())
}

/// The receive time to the minute: the natural key of events that carry neither an id nor a
/// time of their own (presence, some connection events), so a redelivery within the same
/// minute is a duplicate while the same state a minute later is a new event.
pub(crate) fn minute_bucket(ctx: &ParseContext<'_>) -> String {
    ctx.received_at
        .duration_trunc(TimeDelta::minutes(1))
        .map(|t| t.timestamp().to_string())
        .unwrap_or_default()
}

/// A WhatsApp JID as a chat: its kind from the suffix (`@g.us` group, `@newsletter` channel,
/// `status@broadcast` Status, `@broadcast` broadcast list, anything else one-to-one), a device
/// suffix (`5511…:24@s.whatsapp.net`) removed so one chat keeps one id, and the LID when the JID
/// is one (`…@lid`). Evolution and WAHA both address chats this way.
pub(crate) fn jid_chat(jid: &str) -> Chat {
    let id = strip_device(jid);
    let kind = if id == "status@broadcast" {
        ChatKind::Status
    } else if id.ends_with("@g.us") {
        ChatKind::Group
    } else if id.ends_with("@newsletter") {
        ChatKind::Newsletter
    } else if id.ends_with("@broadcast") {
        ChatKind::Broadcast
    } else {
        ChatKind::Direct
    };
    let mut chat = Chat::new(id, kind);
    if kind == ChatKind::Direct {
        chat.lid = alias(AliasKind::Lid, &chat.id);
        chat.phone = alias(AliasKind::Phone, &chat.id);
    }
    chat
}

/// `text` as an alias of `kind`, normalised (`crate::event::Alias::of`), when it is one.
pub(crate) fn alias(kind: AliasKind, text: &str) -> Option<String> {
    crate::event::Alias::of(kind, text).map(|a| a.value)
}

/// `5511…:24@s.whatsapp.net` → `5511…@s.whatsapp.net` (the device a message came from is not
/// part of the chat).
pub(crate) fn strip_device(jid: &str) -> String {
    match jid.split_once('@') {
        Some((user, server)) => match user.split_once(':') {
            Some((number, _device)) => format!("{number}@{server}"),
            None => jid.to_owned(),
        },
        None => jid.to_owned(),
    }
}

/// The phone number of a user JID (`5511…@s.whatsapp.net`, `…@c.us`), `None` for LIDs, groups.
pub(crate) fn jid_phone(jid: &str) -> Option<String> {
    let id = strip_device(jid);
    let (user, server) = id.split_once('@')?;
    (matches!(server, "s.whatsapp.net" | "c.us") && user.bytes().all(|b| b.is_ascii_digit())).then(|| user.to_owned())
}

/// A string field; numbers are accepted and rendered as strings (providers mix the two).
pub(crate) fn str_of(v: &Json<'_>, key: &str) -> Option<String> {
    match v.get(key)? {
        Json::String(s) if !s.is_empty() => Some(s.as_ref().to_owned()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A boolean field; `"true"`/`"false"` strings are accepted.
pub(crate) fn bool_of(v: &Json<'_>, key: &str) -> Option<bool> {
    match v.get(key)? {
        Json::Bool(b) => Some(*b),
        Json::String(s) if s == "true" => Some(true),
        Json::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

/// An integer field; numeric strings are accepted.
pub(crate) fn i64_of(v: &Json<'_>, key: &str) -> Option<i64> {
    match v.get(key)? {
        Json::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A float field; numeric strings are accepted.
pub(crate) fn f64_of(v: &Json<'_>, key: &str) -> Option<f64> {
    match v.get(key)? {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|f: &f64| f.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ParseContext<'static> {
        ParseContext::new(Provider::Zapi, "ep", Utc::now())
    }

    #[test]
    fn a_body_can_never_name_another_tenants_unnamed_instance() {
        let mine = ParseContext {
            tenant: Some("tn_a"),
            ..ctx()
        };
        assert_eq!(mine.instance_of("-"), "-tn_a");
        assert_eq!(mine.instance_of("-tn_b"), "--tn_b");
        assert_eq!(mine.instance_of("--tn_b"), "---tn_b");
        assert_eq!(mine.instance_of("I"), "I");
        assert_eq!(ctx().instance_of("-"), "-", "the default tenant as before");
        assert_eq!(ctx().instance_of("-x"), "-x");
    }

    #[test]
    fn compact_raw_removes_only_whitespace_between_tokens() {
        let raw = compact_raw(b"{ \"a\" : [1, 2.50],\n \"b\": \"x y\\\" z\" }").expect("valid");
        assert_eq!(raw.get(), r#"{"a":[1,2.50],"b":"x y\" z"}"#);
    }

    #[test]
    fn compact_raw_refuses_what_only_becomes_json_without_whitespace() {
        assert!(compact_raw(b"[1 \n 2]").is_err());
        assert!(compact_raw(b"[tr\nue]").is_err());
        assert!(compact_raw(b"[1,\n 2]").is_ok());
    }

    /// The byte-at-a-time definition `strip_whitespace` must agree with.
    fn strip_whitespace_reference(body: &[u8]) -> Vec<u8> {
        let (mut out, mut in_string, mut escaped) = (Vec::new(), false, false);
        for &b in body {
            if in_string {
                out.push(b);
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
            } else if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                in_string = b == b'"';
                out.push(b);
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn strip_whitespace_matches_its_byte_at_a_time_definition(
            body in proptest::collection::vec(proptest::sample::select(b" \n\r\t\"\\ab{}:,".to_vec()), 0..64)
        ) {
            proptest::prop_assert_eq!(strip_whitespace(&body), strip_whitespace_reference(&body));
        }
    }

    #[test]
    fn provider_times_far_ahead_of_the_receipt_or_before_2009_are_not_believed() {
        let ctx = ctx();
        let at = |s: i64| DateTime::from_timestamp(s, 0);
        let now = ctx.received_at.timestamp();
        assert_eq!(
            ctx.event_time(at(now - 86_400 * 365)),
            at(now - 86_400 * 365).expect("t")
        );
        assert_eq!(ctx.event_time(at(now + 60)), at(now + 60).expect("t"));
        assert_eq!(ctx.event_time(at(26_151_515_154)), ctx.received_at);
        assert_eq!(ctx.event_time(at(1_000_000_000)), ctx.received_at);
        assert_eq!(ctx.event_time(None), ctx.received_at);
    }

    #[test]
    fn empty_truncated_and_scalar_bodies_are_named() {
        assert!(matches!(parse(&ctx(), b"  "), Err(DecodeError::Empty)));
        assert!(matches!(parse(&ctx(), b"{\"type\":"), Err(DecodeError::Truncated(_))));
        assert!(matches!(parse(&ctx(), b"nope"), Err(DecodeError::NotJson(_))));
        assert!(matches!(parse(&ctx(), b"42"), Err(DecodeError::NotObjectOrArray)));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let body = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(parse(&ctx(), body.as_bytes()), Err(DecodeError::NotJson(_))));
    }

    #[test]
    fn unknown_shapes_become_one_unknown_event_with_raw_intact() {
        let events = parse(&ctx(), b"{\"hello\":\n  \"world\"}").expect("valid json");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_type, EventType::Unknown);
        assert_eq!(
            events[0].data.raw.as_ref().map(|r| r.get()),
            Some(r#"{"hello":"world"}"#)
        );
    }

    #[test]
    fn credentials_at_the_top_level_are_masked_and_nothing_else_changes() {
        let body = br#"{"event":"x","data":{"apikey":"inner"},"apikey" : "tok\"en","api_key":"G","k":"apikey"}"#;
        let masked = mask_credentials(body);
        assert_eq!(
            std::str::from_utf8(&masked).expect("utf8"),
            r#"{"event":"x","data":{"apikey":"inner"},"apikey" : "***","api_key":"***","k":"apikey"}"#
        );
        assert!(matches!(
            mask_credentials(br#"{"apikey":null,"a":""}"#),
            std::borrow::Cow::Borrowed(_)
        ));
        assert!(matches!(
            mask_credentials(br#"{"apikey":""}"#),
            std::borrow::Cow::Borrowed(_)
        ));
        // Truncated bodies are masked as far as they go.
        assert_eq!(
            &mask_credentials(br#"{"apikey":"secret","x":"#)[..],
            br#"{"apikey":"***","x":"#
        );
    }

    #[test]
    fn lenient_field_readers_accept_numbers_as_strings() {
        let v = Json::parse(r#"{"a":"12","b":12,"c":"true","d":"x"}"#).unwrap_or(Json::Null);
        assert_eq!(i64_of(&v, "a"), Some(12));
        assert_eq!(str_of(&v, "b").as_deref(), Some("12"));
        assert_eq!(bool_of(&v, "c"), Some(true));
        assert_eq!(f64_of(&v, "d"), None);
    }
}
