//! Authentication: every scheme as a pure function of (endpoint auth, headers, raw body bytes,
//! now). Secrets are compared in constant time (`Mac::verify_slice`, or `subtle` over SHA-256
//! digests so lengths don't leak); the clock is passed in.
//!
//! The only way to get a [`Verified`] body is [`authenticate`]: the parser and the store take
//! `Verified`, so unauthenticated bytes cannot reach them by mistake.

use std::borrow::Cow;
use std::io::Read;

use base64::Engine;
use flate2::read::GzDecoder;
use hmac::{Hmac, Mac};
use http::header::{AsHeaderName, HeaderName, CONTENT_ENCODING};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use smallvec::SmallVec;
use subtle::ConstantTimeEq;

use crate::endpoint::{Auth, Scheme};

use crate::endpoint::{mac, MacKeys};

/// Signed timestamps may be this far from now, either way (Hub Message, Standard Webhooks).
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 300;

/// The largest body we accept, after gzip is inflated (Lambda's own request limit is 6 MB).
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

/// Why a request is not authentic. The HTTP layer answers 401 with [`AuthError::code`] and
/// the message, which never contains a secret or the expected signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A header the scheme needs is absent.
    #[error("missing header `{0}`")]
    MissingHeader(String),
    /// A header the scheme reads was sent more than once.
    #[error("header `{0}` was sent more than once")]
    DuplicateHeader(String),
    /// A header is present but not of the scheme's form.
    #[error("malformed header `{header}`: {reason}")]
    MalformedHeader {
        /// The header.
        header: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A static credential (token, password, key, header value) does not match.
    #[error("the credentials in `{0}` do not match")]
    BadCredentials(String),
    /// The signature does not match the body.
    #[error("the signature in `{0}` does not match the body")]
    BadSignature(String),
    /// The signed timestamp is older than the tolerance.
    #[error(
        "the signed timestamp is {age_secs} s old (more than {TIMESTAMP_TOLERANCE_SECS} s): a replay or a slow clock"
    )]
    TimestampTooOld {
        /// How old it is.
        age_secs: i64,
    },
    /// The signed timestamp is ahead of now by more than the tolerance.
    #[error("the signed timestamp is {ahead_secs} s in the future (more than {TIMESTAMP_TOLERANCE_SECS} s)")]
    TimestampInFuture {
        /// How far ahead.
        ahead_secs: i64,
    },
    /// A GET that is not Meta's subscription handshake, or whose verify token is wrong.
    #[error("subscription handshake refused: {0}")]
    Subscription(&'static str),
    /// Meta's subscription handshake with a wrong verify token (403, as Meta's examples answer).
    #[error("subscription handshake refused: hub.verify_token does not match")]
    WrongVerifyToken,
}

impl AuthError {
    /// A short machine-readable code for HTTP bodies.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingHeader(_) => "missing_header",
            AuthError::DuplicateHeader(_) => "duplicate_header",
            AuthError::MalformedHeader { .. } => "malformed_header",
            AuthError::BadCredentials(_) => "bad_credentials",
            AuthError::BadSignature(_) => "bad_signature",
            AuthError::TimestampTooOld { .. } => "timestamp_too_old",
            AuthError::TimestampInFuture { .. } => "timestamp_in_future",
            AuthError::Subscription(_) => "subscription_refused",
            AuthError::WrongVerifyToken => "wrong_verify_token",
        }
    }
}

/// Why a body could not be read (before it is parsed).
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Over [`MAX_BODY_BYTES`], compressed or inflated (a gzip bomb stops here).
    #[error("the body is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// `Content-Encoding: gzip` but the bytes are not valid gzip.
    #[error("the body is not valid gzip")]
    BadGzip(#[source] std::io::Error),
    /// A content encoding we don't inflate.
    #[error("unsupported content-encoding `{0}` (only gzip and identity)")]
    UnsupportedEncoding(String),
}

/// A request that failed before it reached the parser.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Not authentic.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Unreadable body.
    #[error(transparent)]
    Body(#[from] BodyError),
}

/// An authenticated body: the bytes the provider signed (inflated if it was gzipped), plus the
/// provider's delivery id when the scheme carries one. Only [`authenticate`] builds it from a
/// request ([`Verified::trusted`] wraps bytes that need none); it borrows the request's body and
/// headers unless the body had to be inflated.
#[derive(Debug, Clone)]
pub struct Verified<'a> {
    body: Cow<'a, [u8]>,
    delivery_id: Option<&'a str>,
}

impl<'a> Verified<'a> {
    /// The authenticated body bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The provider's delivery id (`x-idempotency-key`, `webhook-id`), if any.
    pub fn delivery_id(&self) -> Option<&'a str> {
        self.delivery_id
    }

    /// The authenticated body, owned (copied only if it is still the request's).
    pub fn into_body(self) -> Vec<u8> {
        self.body.into_owned()
    }

    /// Bytes trusted without a request to authenticate: a file of your own (`wahooks parse`), a
    /// body that was authenticated when it was received and kept (`wahooks quarantine
    /// reparse`), a test's or a harness's. What no request can produce: the receivers only ever
    /// get a `Verified` from [`authenticate`].
    pub fn trusted(body: &'a [u8]) -> Verified<'a> {
        Verified {
            body: Cow::Borrowed(body),
            delivery_id: None,
        }
    }
}

/// Authenticate a request. `raw` is the body exactly as the provider sent it (API Gateway's
/// base64 already undone, nothing re-serialised); `now` is unix seconds.
///
/// Header-only schemes are checked before the body is touched; signature schemes sign the
/// uncompressed body (Hub Message gzips bodies ≥ 1 KiB and signs them uncompressed), so a gzip
/// body is inflated, with a hard cap, first.
pub fn authenticate<'a>(
    auth: &Auth,
    headers: &'a HeaderMap,
    raw: &'a [u8],
    now: i64,
) -> Result<Verified<'a>, RequestError> {
    match auth.scheme() {
        Scheme::UrlToken => {}
        Scheme::Bearer => check_static(auth, headers, "authorization", |v| {
            strip_prefix_ci(v, "bearer ").map(Cow::Borrowed)
        })?,
        Scheme::Basic => check_static(auth, headers, "authorization", |v| {
            let encoded = strip_prefix_ci(v, "basic ")?;
            let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
            String::from_utf8(decoded).ok().map(Cow::Owned)
        })?,
        Scheme::ApiKey | Scheme::CustomHeader | Scheme::ZapiToken => {
            let header = auth.header().unwrap_or("z-api-token");
            check_static(auth, headers, header, |v| Some(Cow::Borrowed(v)))?
        }
        Scheme::EvolutionJwt => verify_evolution_jwt(auth, headers, now)?,
        Scheme::HubmessageHmac | Scheme::StandardWebhooks | Scheme::HubSignature256 | Scheme::WahaHmac => {}
    }
    let body = inflate(headers, raw)?;
    let delivery_id = match auth.scheme() {
        Scheme::HubmessageHmac => Some(verify_hubmessage(auth.mac_keys(), headers, &body, now)?),
        Scheme::StandardWebhooks => Some(verify_standard_webhooks(auth.mac_keys(), headers, &body, now)?),
        Scheme::HubSignature256 => {
            verify_hub_signature(auth.mac_keys(), headers, &body)?;
            None
        }
        Scheme::WahaHmac => {
            verify_waha(auth, headers, &body, now)?;
            None
        }
        _ => None,
    };
    Ok(Verified { body, delivery_id })
}

/// Meta's GET subscription handshake: `hub.mode=subscribe`, `hub.verify_token` equal (in
/// constant time) to the endpoint's verify token; returns `hub.challenge` to echo.
pub fn verify_subscription(auth: &Auth, query: &[(String, String)]) -> Result<String, AuthError> {
    let get = |k: &str| query.iter().find(|(name, _)| name == k).map(|(_, v)| v.as_str());
    if get("hub.mode") != Some("subscribe") {
        return Err(AuthError::Subscription("hub.mode is not `subscribe`"));
    }
    let expected = auth
        .verify_token_digest()
        .ok_or(AuthError::Subscription("this endpoint has no verify token"))?;
    let token = get("hub.verify_token").ok_or(AuthError::Subscription("hub.verify_token is missing"))?;
    // Only the token's digest is kept: compare digests (constant time, lengths don't leak).
    if !bool::from(expected.ct_matches(&Sha256::digest(token.as_bytes()).into())) {
        return Err(AuthError::WrongVerifyToken);
    }
    get("hub.challenge")
        .map(str::to_owned)
        .ok_or(AuthError::Subscription("hub.challenge is missing"))
}

/// The single value of a header; absent and repeated headers are errors. `name` is a
/// `HeaderName` constant for the schemes' fixed headers (no parsing per request).
fn one_header<N>(headers: &HeaderMap, name: N) -> Result<&str, AuthError>
where
    N: AsHeaderName + AsRef<str> + Copy,
{
    let mut values = headers.get_all(name).iter();
    let first = values
        .next()
        .ok_or_else(|| AuthError::MissingHeader(name.as_ref().to_owned()))?;
    if values.next().is_some() {
        return Err(AuthError::DuplicateHeader(name.as_ref().to_owned()));
    }
    first
        .to_str()
        .map(str::trim_ascii)
        .map_err(|_| AuthError::MalformedHeader {
            header: name.as_ref().to_owned(),
            reason: "not visible ASCII",
        })
}

fn strip_prefix_ci<'v>(value: &'v str, prefix: &str) -> Option<&'v str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| value[prefix.len()..].trim_ascii())
}

/// A static credential in `header`, extracted by `extract`, equal to one of the secrets: its
/// SHA-256 compared in constant time with each stored digest (so lengths don't leak either, and
/// the endpoints table needs only the digests).
fn check_static<'h>(
    auth: &Auth,
    headers: &'h HeaderMap,
    header: &str,
    extract: impl Fn(&'h str) -> Option<Cow<'h, str>>,
) -> Result<(), AuthError> {
    let value = one_header(headers, header)?;
    let presented = extract(value).ok_or_else(|| AuthError::MalformedHeader {
        header: header.to_owned(),
        reason: match auth.scheme() {
            Scheme::Bearer => "expected `Bearer <token>`",
            Scheme::Basic => "expected `Basic <base64 of user:password>`",
            _ => "unreadable value",
        },
    })?;
    // Check every digest (no early exit), so timing doesn't tell which one matched.
    let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let matched = auth
        .secret_digests()
        .iter()
        .fold(subtle::Choice::from(0), |acc, d| acc | d.ct_matches(&presented));
    if bool::from(matched) {
        Ok(())
    } else {
        Err(AuthError::BadCredentials(header.to_owned()))
    }
}

/// Undo `Content-Encoding: gzip` with a hard cap on the inflated size. An identity body is
/// borrowed as it is.
fn inflate<'a>(headers: &HeaderMap, raw: &'a [u8]) -> Result<Cow<'a, [u8]>, BodyError> {
    if raw.len() > MAX_BODY_BYTES {
        return Err(BodyError::TooLarge { limit: MAX_BODY_BYTES });
    }
    let encoding = headers
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("(not visible ASCII)").trim_ascii())
        .unwrap_or_default();
    if encoding.is_empty() || encoding.eq_ignore_ascii_case("identity") {
        return Ok(Cow::Borrowed(raw));
    }
    if !(encoding.eq_ignore_ascii_case("gzip") || encoding.eq_ignore_ascii_case("x-gzip")) {
        return Err(BodyError::UnsupportedEncoding(encoding.to_ascii_lowercase()));
    }
    let mut out = Vec::with_capacity(raw.len() * 4);
    // Read one byte past the cap to tell "exactly at the cap" from "over it".
    GzDecoder::new(raw)
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(BodyError::BadGzip)?;
    if out.len() > MAX_BODY_BYTES {
        return Err(BodyError::TooLarge { limit: MAX_BODY_BYTES });
    }
    Ok(Cow::Owned(out))
}

fn check_window(t: i64, now: i64) -> Result<(), AuthError> {
    check_age(t, now, TIMESTAMP_TOLERANCE_SECS)
}

/// `t` at most `max_age` seconds before `now` and at most [`TIMESTAMP_TOLERANCE_SECS`] after it.
/// Overflow-free whatever the two are (`abs_diff`): a signed `i64::MIN` is too old, not a panic
/// in a debug build or a wrapped difference that passes in a release one.
fn check_age(t: i64, now: i64, max_age: i64) -> Result<(), AuthError> {
    let gap = now.abs_diff(t);
    let secs = i64::try_from(gap).unwrap_or(i64::MAX);
    if t < now && gap > max_age.unsigned_abs() {
        Err(AuthError::TimestampTooOld { age_secs: secs })
    } else if t > now && gap > TIMESTAMP_TOLERANCE_SECS.unsigned_abs() {
        Err(AuthError::TimestampInFuture { ahead_secs: secs })
    } else {
        Ok(())
    }
}

const HUB_SIGNATURE: HeaderName = HeaderName::from_static("x-webhook-signature");
const HUB_IDEMPOTENCY: HeaderName = HeaderName::from_static("x-idempotency-key");

/// `topic:partition:offset`, split on the last two colons (the topic may contain colons).
fn split_idempotency_key(key: &str) -> Option<(&str, &str, &str)> {
    let (rest, offset) = key.rsplit_once(':')?;
    let (topic, partition) = rest.rsplit_once(':')?;
    (!topic.is_empty() && !partition.is_empty() && !offset.is_empty()).then_some((topic, partition, offset))
}

/// What Hub Message signs, `t\ntopic\npartition\noffset\nbody`, as a short prefix (on the
/// stack) and the body, fed to the MAC one after the other (the body is never copied). The
/// prefix is the idempotency key with its last two colons turned into line breaks.
fn hubmessage_prefix(t: &str, key: &str) -> Option<SmallVec<[u8; 128]>> {
    let (topic, partition, _) = split_idempotency_key(key)?;
    let mut prefix = SmallVec::<[u8; 128]>::new();
    prefix.extend_from_slice(t.as_bytes());
    prefix.push(b'\n');
    let start = prefix.len();
    prefix.extend_from_slice(key.as_bytes());
    prefix.push(b'\n');
    prefix[start + topic.len()] = b'\n';
    prefix[start + topic.len() + 1 + partition.len()] = b'\n';
    Some(prefix)
}

/// 64 hex digits (either case) → 32 bytes.
fn hex32(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    // Checked without a branch per digit: digits and letters come in random order, and a
    // mispredicted branch per digit cost more than the rest of the decoding.
    let all_hex = digits.iter().fold(true, |ok, &d| {
        ok & ((d.wrapping_sub(b'0') < 10) | ((d | 0x20).wrapping_sub(b'a') < 6))
    });
    if digits.len() != 64 || !all_hex {
        return None;
    }
    // The low four bits of `0-9`, `a-f` and `A-F` are 0-9 and 1-6; letters (0x4_, 0x6_) add 9.
    let nibble = |d: u8| (d & 0x0f) + (d >> 6) * 9;
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = nibble(pair[0]) << 4 | nibble(pair[1]);
    }
    Some(out)
}

/// The signatures a header carries: one or two in practice, kept off the heap.
type Signatures = SmallVec<[[u8; 32]; 2]>;

fn verify_hubmessage<'h>(keys: &MacKeys, headers: &'h HeaderMap, body: &[u8], now: i64) -> Result<&'h str, AuthError> {
    let sig = one_header(headers, &HUB_SIGNATURE)?;
    let key = one_header(headers, &HUB_IDEMPOTENCY)?;
    let malformed = |header: &HeaderName, reason| AuthError::MalformedHeader {
        header: header.as_str().to_owned(),
        reason,
    };
    let (mut t, mut signatures) = (None, Signatures::new());
    for item in sig.split(',') {
        match item.trim_ascii().split_once('=') {
            Some(("t", value)) => t = Some(value.trim_ascii()),
            Some(("v1", value)) => signatures.push(
                hex32(value.trim_ascii()).ok_or_else(|| malformed(&HUB_SIGNATURE, "`v1=` is not 64 hex digits"))?,
            ),
            _ => {}
        }
    }
    let t = t.ok_or_else(|| malformed(&HUB_SIGNATURE, "no `t=` timestamp"))?;
    let t_secs: i64 = t
        .parse()
        .map_err(|_| malformed(&HUB_SIGNATURE, "`t=` is not an integer"))?;
    if signatures.is_empty() {
        return Err(malformed(&HUB_SIGNATURE, "no `v1=` signature"));
    }
    let prefix =
        hubmessage_prefix(t, key).ok_or_else(|| malformed(&HUB_IDEMPOTENCY, "expected `topic:partition:offset`"))?;
    check_window(t_secs, now)?;
    // The key is the 64-hex secret's ASCII text, not its decoded bytes.
    any_mac_matches(keys, &[&prefix, body], &signatures)
        .then_some(key)
        .ok_or_else(|| AuthError::BadSignature(HUB_SIGNATURE.as_str().to_owned()))
}

/// Whether any key's HMAC over the concatenated `parts` equals any of the signatures. Every
/// key and signature is tried (no early exit) and each comparison is constant-time.
fn any_mac_matches(keys: &MacKeys, parts: &[&[u8]], signatures: &[[u8; 32]]) -> bool {
    let mut matched = subtle::Choice::from(0);
    for key in &keys.0 {
        let mut m = key.clone();
        for part in parts {
            m.update(part);
        }
        let expected = words(&m.finalize().into_bytes().into());
        for sig in signatures {
            matched |= expected.ct_eq(&words(sig));
        }
    }
    matched.into()
}

/// A MAC as four words, so the constant-time comparison takes four steps rather than 32.
fn words(mac: &[u8; 32]) -> [u64; 4] {
    std::array::from_fn(|i| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&mac[i * 8..i * 8 + 8]);
        u64::from_ne_bytes(word)
    })
}

const SW_ID: HeaderName = HeaderName::from_static("webhook-id");
const SW_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const SW_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

fn verify_standard_webhooks<'h>(
    keys: &MacKeys,
    headers: &'h HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<&'h str, AuthError> {
    let id = one_header(headers, &SW_ID)?;
    let ts = one_header(headers, &SW_TIMESTAMP)?;
    let sig = one_header(headers, &SW_SIGNATURE)?;
    let malformed = |header: &HeaderName, reason| AuthError::MalformedHeader {
        header: header.as_str().to_owned(),
        reason,
    };
    let t: i64 = ts.parse().map_err(|_| malformed(&SW_TIMESTAMP, "not an integer"))?;
    // A space-separated list; only `v1` (HMAC-SHA256) entries are ours to check.
    let (mut signatures, mut any_v1) = (Signatures::new(), false);
    for entry in sig.split(' ').filter(|e| !e.is_empty()) {
        let (version, b64) = entry
            .split_once(',')
            .ok_or_else(|| malformed(&SW_SIGNATURE, "expected `v1,<base64>`"))?;
        if version == "v1" {
            any_v1 = true;
            // Room for any 32-byte encoding; a longer one cannot be an HMAC-SHA256 and never matches.
            let mut buf = [0u8; 48];
            match base64::engine::general_purpose::STANDARD.decode_slice(b64, &mut buf) {
                Ok(32) => signatures.push(<[u8; 32]>::try_from(&buf[..32]).unwrap_or_default()),
                Ok(_) | Err(base64::DecodeSliceError::OutputSliceTooSmall) => {}
                Err(base64::DecodeSliceError::DecodeError(_)) => {
                    return Err(malformed(&SW_SIGNATURE, "the signature is not base64"))
                }
            }
        }
    }
    if !any_v1 {
        return Err(malformed(&SW_SIGNATURE, "no `v1,` signature"));
    }
    check_window(t, now)?;
    let signed = [id.as_bytes(), b".", ts.as_bytes(), b".", body];
    any_mac_matches(keys, &signed, &signatures)
        .then_some(id)
        .ok_or_else(|| AuthError::BadSignature(SW_SIGNATURE.as_str().to_owned()))
}

const HUB_SIGNATURE_256: HeaderName = HeaderName::from_static("x-hub-signature-256");

fn verify_hub_signature(keys: &MacKeys, headers: &HeaderMap, body: &[u8]) -> Result<(), AuthError> {
    let value = one_header(headers, &HUB_SIGNATURE_256)?;
    let malformed = |reason| AuthError::MalformedHeader {
        header: HUB_SIGNATURE_256.as_str().to_owned(),
        reason,
    };
    let hex_sig = strip_prefix_ci(value, "sha256=").ok_or_else(|| malformed("expected `sha256=<hex>`"))?;
    let sig = hex32(hex_sig).ok_or_else(|| malformed("expected 64 hex digits"))?;
    any_mac_matches(keys, &[body], &[sig])
        .then_some(())
        .ok_or_else(|| AuthError::BadSignature(HUB_SIGNATURE_256.as_str().to_owned()))
}

const WAHA_HMAC: HeaderName = HeaderName::from_static("x-webhook-hmac");
const WAHA_ALGORITHM: HeaderName = HeaderName::from_static("x-webhook-hmac-algorithm");
const WAHA_TIMESTAMP: HeaderName = HeaderName::from_static("x-webhook-timestamp");

/// How old WAHA's `X-Webhook-Timestamp` may be. WAHA retries with the same headers for as long
/// as its retry policy says (15 × 2 s by default, about 36 h with `exponential`), so a
/// five-minute window would refuse its own late retries (and WAHA keeps retrying a 401). The
/// header is not signed, so the window only bounds naive replays; a replayed authentic body is
/// answered as the duplicate it is anyway.
pub const WAHA_MAX_AGE_SECS: i64 = 48 * 3600;

/// WAHA: `X-Webhook-Hmac` = hex HMAC-SHA512 of the raw body with the session's key (its UTF-8
/// text); `X-Webhook-Hmac-Algorithm`, when sent, must be `sha512`; `X-Webhook-Timestamp`, when
/// sent, at most [`WAHA_MAX_AGE_SECS`] old and not over five minutes ahead.
fn verify_waha(auth: &Auth, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), AuthError> {
    type HmacSha512 = Hmac<sha2::Sha512>;
    let malformed = |header: &HeaderName, reason| AuthError::MalformedHeader {
        header: header.as_str().to_owned(),
        reason,
    };
    if headers.contains_key(&WAHA_ALGORITHM) {
        let algorithm = one_header(headers, &WAHA_ALGORITHM)?;
        if !algorithm.eq_ignore_ascii_case("sha512") {
            return Err(malformed(&WAHA_ALGORITHM, "only sha512 is WAHA's"));
        }
    }
    let value = one_header(headers, &WAHA_HMAC)?;
    let sig = hex::decode(value).map_err(|_| malformed(&WAHA_HMAC, "expected hex"))?;
    if sig.len() != 64 {
        return Err(malformed(&WAHA_HMAC, "expected 128 hex digits (HMAC-SHA512)"));
    }
    // Every secret is tried (no early exit); `verify_slice` compares in constant time.
    let matched = auth.secrets().iter().fold(false, |acc, secret| {
        let mut m = <HmacSha512 as Mac>::new_from_slice(secret.expose().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        m.update(body);
        acc | m.verify_slice(&sig).is_ok()
    });
    if !matched {
        return Err(AuthError::BadSignature(WAHA_HMAC.as_str().to_owned()));
    }
    // WAHA's `X-Webhook-Timestamp` is when the event was made (ms), the same on every retry.
    if headers.contains_key(&WAHA_TIMESTAMP) {
        let ms: i64 = one_header(headers, &WAHA_TIMESTAMP)?
            .parse()
            .map_err(|_| malformed(&WAHA_TIMESTAMP, "not an integer (ms)"))?;
        check_age(ms / 1000, now, WAHA_MAX_AGE_SECS)?;
    }
    Ok(())
}

/// How long after its `exp` an Evolution JWT is still taken. Evolution makes one token per
/// emission, valid ten minutes, and reuses it on every retry of that emission (about 20 minutes
/// of back-off plus timeouts by default); refusing an expired one would answer its late retries
/// 401, which Evolution does not retry: the event would be lost. The token does not sign the
/// body (Evolution signs nothing), so the grace costs nothing the URL token does not already
/// guard.
pub const EVOLUTION_JWT_GRACE_SECS: i64 = 3600;

/// Evolution's `jwt_key`: `Authorization: Bearer <header>.<payload>.<signature>`, HS256 with the
/// key's text, the payload `{iat, exp, app: "evolution", action: "webhook"}`.
fn verify_evolution_jwt(auth: &Auth, headers: &HeaderMap, now: i64) -> Result<(), AuthError> {
    let header = "authorization";
    let value = one_header(headers, header)?;
    let malformed = |reason| AuthError::MalformedHeader {
        header: header.to_owned(),
        reason,
    };
    let token = strip_prefix_ci(value, "bearer ").ok_or_else(|| malformed("expected `Bearer <JWT>`"))?;
    let mut parts = token.split('.');
    let (Some(head), Some(payload), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(malformed("expected a JWT (three base64url parts)"));
    };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut signature = [0u8; 48];
    let signature = match b64.decode_slice(sig, &mut signature) {
        Ok(32) => <[u8; 32]>::try_from(&signature[..32]).unwrap_or_default(),
        _ => return Err(malformed("the signature is not an HS256 one")),
    };
    let header_json = b64
        .decode(head)
        .map_err(|_| malformed("the JWT header is not base64url"))?;
    #[derive(serde::Deserialize)]
    struct JwtHeader {
        alg: String,
    }
    let alg = serde_json::from_slice::<JwtHeader>(&header_json).map_err(|_| malformed("the JWT header is not JSON"))?;
    if alg.alg != "HS256" {
        return Err(malformed("only HS256 is Evolution's"));
    }
    if !any_mac_matches(
        auth.mac_keys(),
        &[head.as_bytes(), b".", payload.as_bytes()],
        &[signature],
    ) {
        return Err(AuthError::BadSignature(header.to_owned()));
    }
    #[derive(serde::Deserialize)]
    struct Claims {
        exp: Option<i64>,
        iat: Option<i64>,
        app: Option<String>,
        action: Option<String>,
    }
    let claims = b64
        .decode(payload)
        .ok()
        .and_then(|p| serde_json::from_slice::<Claims>(&p).ok())
        .ok_or_else(|| malformed("the JWT payload is not JSON"))?;
    if claims.app.as_deref() != Some("evolution") || claims.action.as_deref() != Some("webhook") {
        return Err(malformed("not an Evolution webhook token (app/action)"));
    }
    // Evolution always sets `exp` (ten minutes): a token without one would be good forever to
    // whoever saw it once (a proxy, an APM, a copied curl), so it is refused.
    let exp = claims
        .exp
        .ok_or_else(|| malformed("the JWT has no `exp`: a token that never expires is refused"))?;
    if exp < now && now.abs_diff(exp) > EVOLUTION_JWT_GRACE_SECS.unsigned_abs() {
        return Err(AuthError::TimestampTooOld {
            age_secs: i64::try_from(now.abs_diff(exp)).unwrap_or(i64::MAX),
        });
    }
    if let Some(iat) = claims.iat {
        if iat > now && iat.abs_diff(now) > TIMESTAMP_TOLERANCE_SECS.unsigned_abs() {
            return Err(AuthError::TimestampInFuture {
                ahead_secs: i64::try_from(iat.abs_diff(now)).unwrap_or(i64::MAX),
            });
        }
    }
    Ok(())
}

/// The headers a provider would send with `body` under `scheme` and `secret` at `now`
/// (`wahooks sign`, `wahooks send` and the tests use it). `header` is the header of `api-key`
/// and `custom-header`. One arm per scheme, read side by side with `verify`'s: long on purpose.
pub fn sign(auth: &Auth, body: &[u8], now: i64) -> Vec<(String, String)> {
    let Some(secret) = auth.secrets().last() else {
        return Vec::new();
    };
    let s = secret.expose();
    // With the newest secret's prepared key, the one verification tries last. (A stored
    // `whsec_` secret that does not decode has no key: an empty one signs, and nothing verifies.)
    let mac_of = |parts: &[&[u8]]| {
        let mut m = auth.mac_keys().0.last().cloned().unwrap_or_else(|| mac(&[]));
        for part in parts {
            m.update(part);
        }
        m.finalize().into_bytes()
    };
    match auth.scheme() {
        Scheme::UrlToken => Vec::new(),
        Scheme::Bearer => vec![("Authorization".into(), format!("Bearer {s}"))],
        Scheme::Basic => vec![(
            "Authorization".into(),
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(s)),
        )],
        Scheme::ApiKey | Scheme::CustomHeader | Scheme::ZapiToken => {
            vec![(auth.header().unwrap_or("z-api-token").to_owned(), s.to_owned())]
        }
        Scheme::HubmessageHmac => {
            // A Kafka-style coordinate like Hub's own, one per body as Hub's are per record: the
            // offset is the second and a digest of the body, so two bodies signed in the same
            // second never share a key (the same body again is a redelivery, as with Hub).
            let digest = Sha256::digest(body);
            let tag = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
            let key = format!("wahooks.sign:0:{now}{tag:010}");
            let t = now.to_string();
            let prefix = hubmessage_prefix(&t, &key).unwrap_or_default();
            vec![
                (
                    HUB_SIGNATURE.as_str().into(),
                    format!("t={t},v1={}", hex::encode(mac_of(&[&prefix, body]))),
                ),
                (HUB_IDEMPOTENCY.as_str().into(), key),
            ]
        }
        Scheme::StandardWebhooks => {
            let digest = Sha256::digest([body, now.to_string().as_bytes()].concat());
            let id = format!("msg_{}", &hex::encode(digest)[..24]);
            let sig =
                base64::engine::general_purpose::STANDARD.encode(mac_of(&[format!("{id}.{now}.").as_bytes(), body]));
            vec![
                (SW_ID.as_str().into(), id),
                (SW_TIMESTAMP.as_str().into(), now.to_string()),
                (SW_SIGNATURE.as_str().into(), format!("v1,{sig}")),
            ]
        }
        Scheme::HubSignature256 => {
            vec![(
                "X-Hub-Signature-256".into(),
                format!("sha256={}", hex::encode(mac_of(&[body]))),
            )]
        }
        Scheme::WahaHmac => {
            let mut m = <Hmac<sha2::Sha512> as Mac>::new_from_slice(s.as_bytes())
                .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
            m.update(body);
            vec![
                ("content-type".into(), "application/json".into()),
                (WAHA_HMAC.as_str().into(), hex::encode(m.finalize().into_bytes())),
                (WAHA_ALGORITHM.as_str().into(), "sha512".into()),
                (WAHA_TIMESTAMP.as_str().into(), (now * 1000).to_string()),
            ]
        }
        Scheme::EvolutionJwt => {
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let head = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
            let claims = format!(
                r#"{{"iat":{now},"exp":{},"app":"evolution","action":"webhook"}}"#,
                now + 600
            );
            let payload = b64.encode(claims.as_bytes());
            let sig = b64.encode(mac_of(&[head.as_bytes(), b".", payload.as_bytes()]));
            vec![("Authorization".into(), format!("Bearer {head}.{payload}.{sig}"))]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Secret;
    use http::HeaderValue;

    pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn idempotency_key_splits_on_the_last_two_colons() {
        assert_eq!(split_idempotency_key("a:b:c:0:12"), Some(("a:b:c", "0", "12")));
        assert_eq!(
            split_idempotency_key("webhook.delivery.event:0:539402"),
            Some(("webhook.delivery.event", "0", "539402"))
        );
        assert_eq!(split_idempotency_key("nocolons"), None);
        assert_eq!(split_idempotency_key(":0:1"), None);
    }

    #[test]
    fn hubmessage_prefix_is_t_then_the_key_split_on_its_last_two_colons() {
        let prefix = hubmessage_prefix("1789474359", "a:b.c:0:539402").expect("a key");
        assert_eq!(&prefix[..], b"1789474359\na:b.c\n0\n539402\n");
        assert!(hubmessage_prefix("1", "nocolons").is_none());
    }

    #[test]
    fn hex32_reads_64_hex_digits_in_either_case_and_nothing_else() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 37 + 5) as u8);
        assert_eq!(hex32(&hex::encode(bytes)), Some(bytes));
        assert_eq!(hex32(&hex::encode_upper(bytes)), Some(bytes));
        assert_eq!(hex32(&hex::encode(&bytes[..31])), None);
        assert_eq!(hex32(&format!("{}g", &hex::encode(bytes)[..63])), None);
        assert_eq!(hex32(&format!("+{}", &hex::encode(bytes)[1..])), None);
    }

    #[test]
    fn a_gzip_bomb_is_too_large_not_out_of_memory() {
        use flate2::write::GzEncoder;
        use std::io::Write;
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..16 {
            enc.write_all(&zeros).expect("write");
        }
        let bomb = enc.finish().expect("gzip");
        assert!(bomb.len() < 64 * 1024, "16 MiB of zeros compresses small");
        let h = headers(&[("content-encoding", "gzip")]);
        assert!(matches!(
            inflate(&h, &bomb),
            Err(BodyError::TooLarge { limit: MAX_BODY_BYTES })
        ));
    }

    /// An Evolution-style JWT over `claims`, signed with `key`.
    fn jwt(key: &str, claims: &str) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let head = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = b64.encode(claims.as_bytes());
        let mut m = mac(key.as_bytes());
        m.update(format!("{head}.{payload}").as_bytes());
        format!("{head}.{payload}.{}", b64.encode(m.finalize().into_bytes()))
    }

    #[test]
    fn extreme_timestamps_are_refused_without_overflow() {
        let (min, max) = (i64::MIN, i64::MAX);
        for (t, now) in [
            (min, 0),
            (min, max),
            (max, min),
            (max, 0),
            (0, min),
            (0, max),
            (min, 1_789_474_359),
            // Wrapped, `now - t` would be small and pass: it is the oldest a timestamp can be.
            (min + 1_789_474_359, 1_789_474_359),
        ] {
            assert!(check_window(t, now).is_err(), "{t} at {now}");
            assert!(check_age(t, now, WAHA_MAX_AGE_SECS).is_err(), "{t} at {now}");
        }
        assert_eq!(
            check_window(min, max),
            Err(AuthError::TimestampTooOld { age_secs: i64::MAX })
        );
        assert_eq!(
            check_window(max, min),
            Err(AuthError::TimestampInFuture { ahead_secs: i64::MAX })
        );
        assert_eq!(check_window(min, min), Ok(()));
        assert_eq!(check_window(max, max), Ok(()));
        assert_eq!(check_window(max - 300, max), Ok(()));
        assert_eq!(check_window(min + 300, min), Ok(()));

        // Through the signed headers: refused before the MAC, never a panic.
        let hub = Auth::new(Scheme::HubmessageHmac, vec![Secret::new("ab".repeat(32))], None).expect("auth");
        let sw = Auth::new(
            Scheme::StandardWebhooks,
            vec![Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")],
            None,
        )
        .expect("auth");
        let waha = Auth::new(Scheme::WahaHmac, vec![Secret::new("waha-key")], None).expect("auth");
        for t in [min, max] {
            for now in [min, 0, max] {
                let (sig, ts) = (format!("t={t},v1={}", "0".repeat(64)), t.to_string());
                let h = headers(&[
                    ("x-webhook-signature", sig.as_str()),
                    ("x-idempotency-key", "topic:0:1"),
                ]);
                assert!(authenticate(&hub, &h, b"{}", now).is_err(), "hub {t} at {now}");
                let h = headers(&[
                    ("webhook-id", "msg_1"),
                    ("webhook-timestamp", ts.as_str()),
                    ("webhook-signature", "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
                ]);
                assert!(
                    authenticate(&sw, &h, b"{}", now).is_err(),
                    "standard webhooks {t} at {now}"
                );
                let mut signed = sign(&waha, b"{}", 0);
                signed.retain(|(k, _)| k != WAHA_TIMESTAMP.as_str());
                signed.push((WAHA_TIMESTAMP.as_str().to_owned(), t.to_string()));
                let pairs: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                assert!(
                    authenticate(&waha, &headers(&pairs), b"{}", now).is_err(),
                    "waha {t} at {now}"
                );
            }
        }
    }

    #[test]
    fn an_evolution_jwt_needs_exp_and_extreme_claims_do_not_overflow() {
        let key = "evolution-key";
        let auth = Auth::new(Scheme::EvolutionJwt, vec![Secret::new(key)], None).expect("auth");
        let check = |claims: &str, now: i64| {
            let value = format!("Bearer {}", jwt(key, claims));
            authenticate(&auth, &headers(&[("authorization", value.as_str())]), b"{}", now).map(|_| ())
        };
        let now = 1_758_262_300;
        assert!(check(
            r#"{"iat":1758262260,"exp":1758262860,"app":"evolution","action":"webhook"}"#,
            now
        )
        .is_ok());
        // No `exp`: good forever to whoever saw it once, so refused (401, malformed_header).
        let err = check(r#"{"iat":1758262260,"app":"evolution","action":"webhook"}"#, now).expect_err("no exp");
        let RequestError::Auth(e) = err else {
            panic!("an auth error")
        };
        assert_eq!(e.code(), "malformed_header");
        assert!(e.to_string().contains("`exp`"), "{e}");
        let (min, max) = (i64::MIN, i64::MAX);
        for now in [min, 0, max] {
            for (exp, iat) in [(min, min), (min, max), (max, min), (max, max)] {
                let claims = format!(r#"{{"iat":{iat},"exp":{exp},"app":"evolution","action":"webhook"}}"#);
                let outcome = check(&claims, now);
                if exp < now && now.abs_diff(exp) > 3600 || iat > now && iat.abs_diff(now) > 300 {
                    assert!(outcome.is_err(), "exp {exp} iat {iat} at {now}");
                }
            }
        }
        assert!(matches!(
            check(
                r#"{"exp":-9223372036854775808,"app":"evolution","action":"webhook"}"#,
                max
            ),
            Err(RequestError::Auth(AuthError::TimestampTooOld { age_secs: i64::MAX }))
        ));
    }

    #[test]
    fn unsupported_encodings_and_broken_gzip_are_named() {
        assert!(matches!(
            inflate(&headers(&[("content-encoding", "br")]), b"x"),
            Err(BodyError::UnsupportedEncoding(_))
        ));
        assert!(matches!(
            inflate(&headers(&[("content-encoding", "gzip")]), b"not gzip"),
            Err(BodyError::BadGzip(_))
        ));
    }
}
