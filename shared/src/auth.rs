//! Authentication: every scheme as a pure function of (endpoint auth, headers, raw body bytes,
//! now). Secrets are compared in constant time (`Mac::verify_slice`, or `subtle` over SHA-256
//! digests so lengths don't leak); the clock is passed in.
//!
//! The only way to get a [`Verified`] body is [`authenticate`]: the parser and the store take
//! `Verified`, so unauthenticated bytes cannot reach them by mistake.

use std::io::Read;

use base64::Engine;
use flate2::read::GzDecoder;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::endpoint::{standard_webhooks_key, Auth, Scheme, Secret};

type HmacSha256 = Hmac<Sha256>;

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
    /// The endpoint's scheme is not known to this build.
    #[error("unknown scheme `{0}`")]
    UnknownScheme(String),
    /// A GET that is not Meta's subscription handshake, or whose verify token is wrong.
    #[error("subscription handshake refused: {0}")]
    Subscription(&'static str),
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
            AuthError::UnknownScheme(_) => "unknown_scheme",
            AuthError::Subscription(_) => "subscription_refused",
        }
    }
}

/// Why a body could not be read (before it is parsed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Over [`MAX_BODY_BYTES`], compressed or inflated (a gzip bomb stops here).
    #[error("the body is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// `Content-Encoding: gzip` but the bytes are not valid gzip.
    #[error("the body is not valid gzip: {0}")]
    BadGzip(String),
    /// A content encoding we don't inflate.
    #[error("unsupported content-encoding `{0}` (only gzip and identity)")]
    UnsupportedEncoding(String),
}

/// A request that failed before it reached the parser.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Not authentic.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Unreadable body.
    #[error(transparent)]
    Body(#[from] BodyError),
}

/// An authenticated body: the bytes the provider signed (inflated if it was gzipped), plus the
/// provider's delivery id when the scheme carries one. Only [`authenticate`] builds it.
#[derive(Debug, Clone)]
pub struct Verified {
    body: Vec<u8>,
    delivery_id: Option<String>,
}

impl Verified {
    /// The authenticated body bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The provider's delivery id (`x-idempotency-key`, `webhook-id`), if any.
    pub fn delivery_id(&self) -> Option<&str> {
        self.delivery_id.as_deref()
    }
}

/// Authenticate a request. `raw` is the body exactly as the provider sent it (API Gateway's
/// base64 already undone, nothing re-serialised); `now` is unix seconds.
///
/// Header-only schemes are checked before the body is touched; signature schemes sign the
/// uncompressed body (Hub Message gzips bodies ≥ 1 KiB and signs them uncompressed), so a gzip
/// body is inflated, with a hard cap, first.
pub fn authenticate(auth: &Auth, headers: &HeaderMap, raw: &[u8], now: i64) -> Result<Verified, RequestError> {
    match auth.scheme() {
        Scheme::UrlToken => {}
        Scheme::Bearer => check_static(auth, headers, "authorization", |v| strip_prefix_ci(v, "bearer "))?,
        Scheme::Basic => check_static(auth, headers, "authorization", |v| {
            let encoded = strip_prefix_ci(v, "basic ")?;
            let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
            String::from_utf8(decoded).ok()
        })?,
        Scheme::ApiKey | Scheme::CustomHeader | Scheme::ZapiToken => {
            let header = auth.header().unwrap_or("z-api-token").to_owned();
            check_static(auth, headers, &header, |v| Some(v.to_owned()))?
        }
        Scheme::HubmessageHmac | Scheme::StandardWebhooks | Scheme::HubSignature256 => {}
    }
    let body = inflate(headers, raw)?;
    let delivery_id = match auth.scheme() {
        Scheme::HubmessageHmac => Some(verify_hubmessage(auth.secrets(), headers, &body, now)?),
        Scheme::StandardWebhooks => Some(verify_standard_webhooks(auth.secrets(), headers, &body, now)?),
        Scheme::HubSignature256 => {
            verify_hub_signature(auth.secrets(), headers, &body)?;
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
        .verify_token()
        .ok_or(AuthError::Subscription("this endpoint has no verify token"))?;
    let token = get("hub.verify_token").ok_or(AuthError::Subscription("hub.verify_token is missing"))?;
    if !ct_eq_str(token, expected.expose()) {
        return Err(AuthError::Subscription("hub.verify_token does not match"));
    }
    get("hub.challenge")
        .map(str::to_owned)
        .ok_or(AuthError::Subscription("hub.challenge is missing"))
}

/// The single value of a header; absent and repeated headers are errors.
fn one_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, AuthError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next().ok_or_else(|| AuthError::MissingHeader(name.to_owned()))?;
    if values.next().is_some() {
        return Err(AuthError::DuplicateHeader(name.to_owned()));
    }
    first.to_str().map(str::trim).map_err(|_| AuthError::MalformedHeader {
        header: name.to_owned(),
        reason: "not visible ASCII",
    })
}

fn strip_prefix_ci(value: &str, prefix: &str) -> Option<String> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| value[prefix.len()..].trim().to_owned())
}

/// Constant-time string equality that does not leak the length either: compare digests.
fn ct_eq_str(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes()).ct_eq(&Sha256::digest(b.as_bytes())).into()
}

/// A static credential in `header`, extracted by `extract`, equal to one of the secrets.
fn check_static(
    auth: &Auth,
    headers: &HeaderMap,
    header: &str,
    extract: impl Fn(&str) -> Option<String>,
) -> Result<(), AuthError> {
    let value = one_header(headers, header)?;
    let presented = extract(value).ok_or(AuthError::MalformedHeader {
        header: header.to_owned(),
        reason: match auth.scheme() {
            Scheme::Bearer => "expected `Bearer <token>`",
            Scheme::Basic => "expected `Basic <base64 of user:password>`",
            _ => "unreadable value",
        },
    })?;
    // Check every secret (no early exit), so timing doesn't tell which one matched.
    let matched = auth
        .secrets()
        .iter()
        .fold(false, |acc, s| acc | ct_eq_str(&presented, s.expose()));
    if matched {
        Ok(())
    } else {
        Err(AuthError::BadCredentials(header.to_owned()))
    }
}

/// Undo `Content-Encoding: gzip` with a hard cap on the inflated size.
fn inflate(headers: &HeaderMap, raw: &[u8]) -> Result<Vec<u8>, BodyError> {
    if raw.len() > MAX_BODY_BYTES {
        return Err(BodyError::TooLarge { limit: MAX_BODY_BYTES });
    }
    let encoding = headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match encoding.as_str() {
        "" | "identity" => Ok(raw.to_vec()),
        "gzip" | "x-gzip" => {
            let mut out = Vec::with_capacity(raw.len() * 4);
            // Read one byte past the cap to tell "exactly at the cap" from "over it".
            GzDecoder::new(raw)
                .take(MAX_BODY_BYTES as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| BodyError::BadGzip(e.to_string()))?;
            if out.len() > MAX_BODY_BYTES {
                return Err(BodyError::TooLarge { limit: MAX_BODY_BYTES });
            }
            Ok(out)
        }
        other => Err(BodyError::UnsupportedEncoding(other.to_owned())),
    }
}

fn check_window(t: i64, now: i64) -> Result<(), AuthError> {
    if now - t > TIMESTAMP_TOLERANCE_SECS {
        Err(AuthError::TimestampTooOld { age_secs: now - t })
    } else if t - now > TIMESTAMP_TOLERANCE_SECS {
        Err(AuthError::TimestampInFuture { ahead_secs: t - now })
    } else {
        Ok(())
    }
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length: this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

const HUB_SIGNATURE: &str = "x-webhook-signature";
const HUB_IDEMPOTENCY: &str = "x-idempotency-key";

/// `topic:partition:offset`, split on the last two colons (the topic may contain colons).
fn split_idempotency_key(key: &str) -> Option<(&str, &str, &str)> {
    let (rest, offset) = key.rsplit_once(':')?;
    let (topic, partition) = rest.rsplit_once(':')?;
    (!topic.is_empty() && !partition.is_empty() && !offset.is_empty()).then_some((topic, partition, offset))
}

/// The bytes Hub Message signs: `t\ntopic\npartition\noffset\nbody`.
fn hubmessage_signed(t: &str, key: &str, body: &[u8]) -> Option<Vec<u8>> {
    let (topic, partition, offset) = split_idempotency_key(key)?;
    let mut msg = Vec::with_capacity(body.len() + key.len() + 24);
    for part in [t, topic, partition, offset] {
        msg.extend_from_slice(part.as_bytes());
        msg.push(b'\n');
    }
    msg.extend_from_slice(body);
    Some(msg)
}

fn verify_hubmessage(secrets: &[Secret], headers: &HeaderMap, body: &[u8], now: i64) -> Result<String, AuthError> {
    let sig = one_header(headers, HUB_SIGNATURE)?;
    let key = one_header(headers, HUB_IDEMPOTENCY)?;
    let malformed = |header: &str, reason| AuthError::MalformedHeader {
        header: header.to_owned(),
        reason,
    };
    let (mut t, mut v1) = (None, Vec::new());
    for item in sig.split(',') {
        match item.trim().split_once('=') {
            Some(("t", value)) => t = Some(value.trim()),
            Some(("v1", value)) => v1.push(value.trim()),
            _ => {}
        }
    }
    let t = t.ok_or(malformed(HUB_SIGNATURE, "no `t=` timestamp"))?;
    let t_secs: i64 = t
        .parse()
        .map_err(|_| malformed(HUB_SIGNATURE, "`t=` is not an integer"))?;
    if v1.is_empty() {
        return Err(malformed(HUB_SIGNATURE, "no `v1=` signature"));
    }
    let signatures = v1
        .iter()
        .map(|s| hex::decode(s).ok().filter(|b| b.len() == 32))
        .collect::<Option<Vec<_>>>()
        .ok_or(malformed(HUB_SIGNATURE, "`v1=` is not 64 hex digits"))?;
    let signed =
        hubmessage_signed(t, key, body).ok_or(malformed(HUB_IDEMPOTENCY, "expected `topic:partition:offset`"))?;
    check_window(t_secs, now)?;
    // The key is the 64-hex secret's ASCII text, not its decoded bytes.
    any_mac_matches(
        secrets.iter().map(|s| s.expose().as_bytes().to_vec()),
        &signed,
        &signatures,
    )
    .then(|| key.to_owned())
    .ok_or(AuthError::BadSignature(HUB_SIGNATURE.to_owned()))
}

/// Whether any key's HMAC over `msg` equals any of the signatures (`verify_slice` is
/// constant-time).
fn any_mac_matches(keys: impl Iterator<Item = Vec<u8>>, msg: &[u8], signatures: &[Vec<u8>]) -> bool {
    let mut matched = false;
    for key in keys {
        let mut m = mac(&key);
        m.update(msg);
        for sig in signatures {
            matched |= m.clone().verify_slice(sig).is_ok();
        }
    }
    matched
}

const SW_ID: &str = "webhook-id";
const SW_TIMESTAMP: &str = "webhook-timestamp";
const SW_SIGNATURE: &str = "webhook-signature";

fn verify_standard_webhooks(
    secrets: &[Secret],
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<String, AuthError> {
    let id = one_header(headers, SW_ID)?;
    let ts = one_header(headers, SW_TIMESTAMP)?;
    let sig = one_header(headers, SW_SIGNATURE)?;
    let malformed = |header: &str, reason| AuthError::MalformedHeader {
        header: header.to_owned(),
        reason,
    };
    let t: i64 = ts.parse().map_err(|_| malformed(SW_TIMESTAMP, "not an integer"))?;
    // A space-separated list; only `v1` (HMAC-SHA256) entries are ours to check.
    let mut signatures = Vec::new();
    for entry in sig.split(' ').filter(|e| !e.is_empty()) {
        let (version, b64) = entry
            .split_once(',')
            .ok_or(malformed(SW_SIGNATURE, "expected `v1,<base64>`"))?;
        if version == "v1" {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| malformed(SW_SIGNATURE, "the signature is not base64"))?;
            signatures.push(bytes);
        }
    }
    if signatures.is_empty() {
        return Err(malformed(SW_SIGNATURE, "no `v1,` signature"));
    }
    check_window(t, now)?;
    let mut signed = Vec::with_capacity(id.len() + ts.len() + body.len() + 2);
    signed.extend_from_slice(id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(ts.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    any_mac_matches(secrets.iter().filter_map(standard_webhooks_key), &signed, &signatures)
        .then(|| id.to_owned())
        .ok_or(AuthError::BadSignature(SW_SIGNATURE.to_owned()))
}

const HUB_SIGNATURE_256: &str = "x-hub-signature-256";

fn verify_hub_signature(secrets: &[Secret], headers: &HeaderMap, body: &[u8]) -> Result<(), AuthError> {
    let value = one_header(headers, HUB_SIGNATURE_256)?;
    let malformed = |reason| AuthError::MalformedHeader {
        header: HUB_SIGNATURE_256.to_owned(),
        reason,
    };
    let hex_sig = strip_prefix_ci(value, "sha256=").ok_or(malformed("expected `sha256=<hex>`"))?;
    let sig = hex::decode(hex_sig)
        .ok()
        .filter(|b| b.len() == 32)
        .ok_or(malformed("expected 64 hex digits"))?;
    any_mac_matches(secrets.iter().map(|s| s.expose().as_bytes().to_vec()), body, &[sig])
        .then_some(())
        .ok_or(AuthError::BadSignature(HUB_SIGNATURE_256.to_owned()))
}

/// The headers a provider would send with `body` under `scheme` and `secret` at `now`
/// (`wahooks sign`, `wahooks send` and the tests use it). `header` is the header of `api-key`
/// and `custom-header`.
pub fn sign(auth: &Auth, body: &[u8], now: i64) -> Vec<(String, String)> {
    let Some(secret) = auth.secrets().last() else {
        return Vec::new();
    };
    let s = secret.expose();
    let hmac_hex = |key: &[u8], msg: &[u8]| {
        let mut m = mac(key);
        m.update(msg);
        hex::encode(m.finalize().into_bytes())
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
            // A Kafka-style coordinate like Hub's own; the offset makes it unique per second.
            let key = format!("wahooks.sign:0:{now}");
            let t = now.to_string();
            let signed = hubmessage_signed(&t, &key, body).unwrap_or_default();
            vec![
                (
                    HUB_SIGNATURE.into(),
                    format!("t={t},v1={}", hmac_hex(s.as_bytes(), &signed)),
                ),
                (HUB_IDEMPOTENCY.into(), key),
            ]
        }
        Scheme::StandardWebhooks => {
            let digest = Sha256::digest([body, now.to_string().as_bytes()].concat());
            let id = format!("msg_{}", &hex::encode(digest)[..24]);
            let key = standard_webhooks_key(secret).unwrap_or_default();
            let mut m = mac(&key);
            m.update(format!("{id}.{now}.").as_bytes());
            m.update(body);
            let sig = base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes());
            vec![
                (SW_ID.into(), id),
                (SW_TIMESTAMP.into(), now.to_string()),
                (SW_SIGNATURE.into(), format!("v1,{sig}")),
            ]
        }
        Scheme::HubSignature256 => {
            vec![(
                "X-Hub-Signature-256".into(),
                format!("sha256={}", hmac_hex(s.as_bytes(), body)),
            )]
        }
    }
}

/// A bare HMAC-SHA256 over `body` (the floor the verification bench compares against).
pub fn bare_hmac_sha256(key: &[u8], body: &[u8]) -> [u8; 32] {
    let mut m = mac(key);
    m.update(body);
    m.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(inflate(&h, &bomb), Err(BodyError::TooLarge { limit: MAX_BODY_BYTES }));
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
