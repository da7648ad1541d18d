//! Endpoints: who may post to a URL token, in which format, authenticated how. Secrets are
//! wrapped so `Debug` and logs never show them, and are checked when the endpoint is built and
//! again when it is read back; a static scheme's secrets are stored as SHA-256 digests only.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::Provider;

/// A secret value: never printed by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the code that must use it (MACs, comparisons, storage).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The SHA-256 digest of a static scheme's secret (or of Meta's verify token): what the
/// endpoints table keeps instead of the secret, and what a presented credential's digest is
/// compared with (in constant time). `Debug` shows its first six hex digits only.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretDigest([u8; 32]);

impl SecretDigest {
    /// The digest of `secret`.
    pub fn of(secret: &str) -> SecretDigest {
        SecretDigest(Sha256::digest(secret.as_bytes()).into())
    }

    /// Whether `presented` (the digest of a presented credential) is this one, in constant time.
    pub(crate) fn ct_matches(&self, presented: &[u8; 32]) -> subtle::Choice {
        use subtle::ConstantTimeEq;
        self.0.ct_eq(presented)
    }

    /// As stored: 64 lowercase hexadecimal characters.
    fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    /// A stored digest: 64 hexadecimal characters, and not the digest of the empty string (an
    /// empty secret would accept an empty header). `index` names it in the error (0: the
    /// verify token).
    fn from_stored(scheme: Scheme, index: usize, text: &str) -> Result<SecretDigest, EndpointError> {
        if text.is_empty() {
            return Err(EndpointError::EmptySecret { scheme, index });
        }
        let mut bytes = [0u8; 32];
        if text.len() != 64 || hex::decode_to_slice(text, &mut bytes).is_err() {
            return Err(EndpointError::MalformedSecret {
                scheme,
                index,
                reason: "the stored digest is not 64 hexadecimal characters",
            });
        }
        if SecretDigest(bytes) == SecretDigest::of("") {
            return Err(EndpointError::EmptySecret { scheme, index });
        }
        Ok(SecretDigest(bytes))
    }
}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretDigest({}…)", &hex::encode(&self.0[..3]))
    }
}

/// A signing key as the endpoints table keeps it: envelope-encrypted. A data key of its own,
/// made by KMS under the secrets key with the endpoint id as encryption context, encrypts the
/// key with AES-256-GCM (the endpoint id as associated data); KMS's encrypted copy of the data
/// key is kept beside it. Only a principal the secrets key lets decrypt (the receivers' roles)
/// can open it, and only for the endpoint it was sealed for (`keyring`, docs/receiving.md
/// "Secrets at rest"). Every field is base64.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The data key as KMS encrypted it (its `CiphertextBlob`).
    pub key: String,
    /// The AES-GCM nonce (12 bytes).
    pub nonce: String,
    /// The key encrypted with the data key, with the GCM tag.
    pub data: String,
}

impl Sealed {
    /// Whether the fields decode to what [`Sealed`] holds (a nonce of 12 bytes, a tag at least).
    fn is_well_formed(&self) -> bool {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).ok();
        matches!(b64(&self.key), Some(k) if !k.is_empty())
            && matches!(b64(&self.nonce), Some(n) if n.len() == 12)
            && matches!(b64(&self.data), Some(d) if d.len() > 16)
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealed(…)")
    }
}

/// One key of a signing scheme: the key itself (built from it, or opened), its sealed form (as
/// stored), or both.
#[derive(Clone, Debug)]
struct SigningKey {
    secret: Option<Secret>,
    sealed: Option<Sealed>,
}

/// How a request proves it comes from the provider (beyond the unguessable URL token, which
/// is always required).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// The URL token only.
    UrlToken,
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// `Authorization: Basic base64(user:password)`; secrets are `user:password`.
    Basic,
    /// A static key in a header (default `x-api-key`).
    ApiKey,
    /// A static value in a named header.
    CustomHeader,
    /// The static `z-api-token` header Z-API sends (the instance token).
    ZapiToken,
    /// Hub Message / Omni Z-API HMAC: `x-webhook-signature: t=…,v1=…` + `x-idempotency-key`.
    HubmessageHmac,
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<b64>`.
    StandardWebhooks,
    /// Meta / GitHub style `X-Hub-Signature-256: sha256=<hex>` over the raw body.
    HubSignature256,
    /// WAHA: `X-Webhook-Hmac: <hex HMAC-SHA512 of the raw body>` with the session's HMAC key.
    WahaHmac,
    /// Evolution API's `jwt_key`: `Authorization: Bearer <HS256 JWT>` that Evolution makes per
    /// emission (`app: evolution`, `action: webhook`, valid ten minutes).
    EvolutionJwt,
}

impl Scheme {
    /// Every scheme.
    pub const ALL: [Scheme; 11] = [
        Scheme::UrlToken,
        Scheme::Bearer,
        Scheme::Basic,
        Scheme::ApiKey,
        Scheme::CustomHeader,
        Scheme::ZapiToken,
        Scheme::HubmessageHmac,
        Scheme::StandardWebhooks,
        Scheme::HubSignature256,
        Scheme::WahaHmac,
        Scheme::EvolutionJwt,
    ];

    /// The name used on the command line and in the endpoints table.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::UrlToken => "url-token",
            Scheme::Bearer => "bearer",
            Scheme::Basic => "basic",
            Scheme::ApiKey => "api-key",
            Scheme::CustomHeader => "custom-header",
            Scheme::ZapiToken => "zapi-token",
            Scheme::HubmessageHmac => "hubmessage-hmac",
            Scheme::StandardWebhooks => "standard-webhooks",
            Scheme::HubSignature256 => "hub-signature-256",
            Scheme::WahaHmac => "waha-hmac",
            Scheme::EvolutionJwt => "evolution-jwt",
        }
    }

    /// Whether the scheme needs at least one secret.
    pub fn needs_secret(self) -> bool {
        self != Scheme::UrlToken
    }

    /// The scheme `wahooks endpoint create --provider P` picks without `--scheme`: the strongest
    /// P offers (its signature, or its own token), and the URL token alone only for WhatsApp
    /// Web API, which sends no credential.
    pub fn verified_default(provider: Provider) -> Scheme {
        match provider {
            Provider::Meta => Scheme::HubSignature256,
            Provider::Waha => Scheme::WahaHmac,
            Provider::Hubmessage => Scheme::HubmessageHmac,
            Provider::Zapi => Scheme::ZapiToken,
            // Evolution signs no body; its `jwt_key` token is the strongest it offers (its
            // global webhook sends no headers: `--scheme url-token` there).
            Provider::Evolution => Scheme::EvolutionJwt,
            Provider::Wwa | Provider::Other => Scheme::UrlToken,
        }
    }

    /// Whether the scheme compares a static credential the request carries as it is (bearer,
    /// basic, api-key, custom-header, zapi-token): its secrets are stored as SHA-256 digests
    /// only. The other schemes sign (or need none) and keep the key itself.
    pub fn is_static(self) -> bool {
        matches!(
            self,
            Scheme::Bearer | Scheme::Basic | Scheme::ApiKey | Scheme::CustomHeader | Scheme::ZapiToken
        )
    }

    /// The header the scheme reads when it has a fixed one.
    pub fn default_header(self) -> Option<&'static str> {
        match self {
            Scheme::Bearer | Scheme::Basic | Scheme::EvolutionJwt => Some("authorization"),
            Scheme::ApiKey => Some("x-api-key"),
            Scheme::ZapiToken => Some("z-api-token"),
            _ => None,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scheme {
    type Err = EndpointError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scheme::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| EndpointError::UnknownScheme(s.to_owned()))
    }
}

/// Why an endpoint could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// Not a scheme we know.
    #[error("unknown scheme `{0}` (expected url-token, bearer, basic, api-key, custom-header, zapi-token, hubmessage-hmac, standard-webhooks, hub-signature-256, waha-hmac or evolution-jwt)")]
    UnknownScheme(String),
    /// The scheme needs a secret and none was given.
    #[error("the {0} scheme needs a secret")]
    MissingSecret(Scheme),
    /// An empty secret.
    #[error("secret #{index} of the {scheme} scheme is empty")]
    EmptySecret {
        /// The scheme.
        scheme: Scheme,
        /// Which secret (1-based).
        index: usize,
    },
    /// A secret of the wrong form for its scheme.
    #[error("secret #{index} of the {scheme} scheme is malformed: {reason}")]
    MalformedSecret {
        /// The scheme.
        scheme: Scheme,
        /// Which secret (1-based).
        index: usize,
        /// What is wrong (never the secret itself).
        reason: &'static str,
    },
    /// A header name that HTTP does not allow, or a missing one.
    #[error("header name for the {scheme} scheme: {reason}")]
    BadHeaderName {
        /// The scheme.
        scheme: Scheme,
        /// What is wrong.
        reason: String,
    },
    /// A stored auth record that does not hold together (read from the endpoints table).
    #[error("the stored {scheme} auth does not validate: {reason}")]
    InvalidRecord {
        /// The scheme.
        scheme: Scheme,
        /// What is wrong (never a secret or a digest).
        reason: &'static str,
    },
}

/// The authentication an endpoint requires: a scheme and its secrets (several at once, so a
/// secret rotates without downtime).
///
/// A static scheme ([`Scheme::is_static`]) is checked against its secrets' SHA-256 digests,
/// and only those are stored; an `Auth` built from the secrets themselves ([`Auth::new`])
/// also keeps them in memory (to sign requests with, in `wahooks send` and the tests), one
/// read back from the endpoints table has the digests only. Reading a stored record validates
/// it as [`Auth::new`] does: one that does not validate is an error, never an `Auth` that
/// accepts anything.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "AuthRecord")]
pub struct Auth {
    scheme: Scheme,
    header: Option<String>,
    /// The secrets themselves: a signing scheme's open keys (those of `signing` that hold
    /// one, in order), and a static scheme's only when this `Auth` was built from them (then in
    /// the order of `digests`; never stored).
    secrets: Vec<Secret>,
    /// A signing scheme's keys, oldest first, each open, sealed or both (empty for the other
    /// schemes). Stored sealed only.
    signing: Vec<SigningKey>,
    /// A static scheme's accepted secrets as SHA-256 digests, oldest first (empty for the
    /// other schemes).
    digests: Vec<SecretDigest>,
    /// The digest of Meta's subscription verify token.
    verify_token: Option<SecretDigest>,
    /// Each secret's HMAC key, set up once rather than on every request (signature schemes).
    keys: MacKeys,
}

/// Two `Auth`s are equal when what is stored of them is: the scheme, the header, a static
/// scheme's digests, the verify token's digest, and each signing key (sealed, when both are; the
/// key itself otherwise). An `Auth` read back equals the one that was stored. The HMAC keys are
/// derived, so they are not compared.
impl PartialEq for Auth {
    fn eq(&self, other: &Auth) -> bool {
        let same_key = |a: &SigningKey, b: &SigningKey| match (&a.sealed, &b.sealed) {
            (Some(x), Some(y)) => x == y,
            _ => a.secret.is_some() && a.secret == b.secret,
        };
        self.scheme == other.scheme
            && self.header == other.header
            && self.digests == other.digests
            && self.verify_token == other.verify_token
            && self.signing.len() == other.signing.len()
            && self.signing.iter().zip(&other.signing).all(|(a, b)| same_key(a, b))
    }
}

impl Eq for Auth {}

/// [`Auth`] as stored in the endpoints table (no derived keys).
///
/// A static scheme's secrets are stored as the hex SHA-256 digests `secret_digests`, never as
/// they are; Meta's verify token as `verify_token_digest`. A signing scheme (hubmessage-hmac,
/// standard-webhooks, hub-signature-256, waha-hmac, evolution-jwt) needs the key itself to
/// compute the MAC: its keys are stored as `sealed_secrets`, each envelope-encrypted
/// ([`Sealed`]). Records written before (a static scheme's or a signing scheme's plain
/// `secrets`, a plain `verify_token`) are still read, and `wahooks endpoint upgrade` rewrites
/// them.
#[derive(Serialize, Deserialize)]
struct AuthRecord {
    scheme: Scheme,
    /// The header read by `api-key` and `custom-header` (lower case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    header: Option<String>,
    /// Secrets as they are: only in records from before the digests and the seals (read, never
    /// written, but as the empty list of a url-token record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secrets: Option<Vec<Secret>>,
    /// A static scheme's secrets: 64 hex digits of SHA-256 each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_digests: Option<Vec<String>>,
    /// A signing scheme's keys, envelope-encrypted, oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed_secrets: Option<Vec<Sealed>>,
    /// Meta's verify token, in records older than the digests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    verify_token: Option<Secret>,
    /// Meta's subscription verify token (`hub-signature-256` endpoints): its SHA-256, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    verify_token_digest: Option<String>,
}

/// A stored record is checked as [`Auth::new`] checks what it is given, and then some: an empty
/// or malformed secret, digest or seal, a missing or invalid header name, a header on a scheme
/// that reads a fixed one, no secret where the scheme needs one, a form the scheme does not
/// store, or two forms of the same value are errors (an unknown scheme already fails to
/// deserialise).
impl TryFrom<AuthRecord> for Auth {
    type Error = EndpointError;

    fn try_from(r: AuthRecord) -> Result<Auth, EndpointError> {
        let scheme = r.scheme;
        let invalid = |reason| EndpointError::InvalidRecord { scheme, reason };
        let header = match (scheme, r.header.as_deref()) {
            (Scheme::ApiKey | Scheme::CustomHeader, _) => Auth::new_header(scheme, r.header.as_deref())?,
            (_, Some(_)) => return Err(invalid("a header name on a scheme that reads a fixed header")),
            (_, None) => None,
        };
        let (digests, signing) = if scheme.is_static() {
            if r.sealed_secrets.is_some() {
                return Err(invalid("`sealed_secrets` on a scheme stored as digests"));
            }
            (stored_digests(scheme, r.secrets, r.secret_digests)?, Vec::new())
        } else {
            if r.secret_digests.is_some() {
                return Err(invalid(
                    "`secret_digests` on a scheme that signs with the secret itself",
                ));
            }
            (Vec::new(), stored_signing_keys(scheme, r.secrets, r.sealed_secrets)?)
        };
        if scheme.needs_secret() && signing.is_empty() && digests.is_empty() {
            return Err(EndpointError::MissingSecret(scheme));
        }
        if scheme == Scheme::UrlToken && !signing.is_empty() {
            return Err(invalid("secrets on the url-token scheme"));
        }
        let verify_token = match (r.verify_token, r.verify_token_digest) {
            (Some(_), Some(_)) => return Err(invalid("both `verify_token` and `verify_token_digest`")),
            (Some(plain), None) => Some(verify_token_digest(scheme, &plain)?),
            (None, Some(stored)) => Some(SecretDigest::from_stored(scheme, 0, &stored)?),
            (None, None) => None,
        };
        let mut auth = Auth {
            keys: MacKeys::default(),
            scheme,
            header,
            secrets: Vec::new(),
            signing,
            digests,
            verify_token,
        };
        auth.refresh();
        Ok(auth)
    }
}

/// A static scheme's stored secrets: their digests, or a record from before the digests
/// (plain secrets), checked and kept as digests only.
fn stored_digests(
    scheme: Scheme,
    plain: Option<Vec<Secret>>,
    stored: Option<Vec<String>>,
) -> Result<Vec<SecretDigest>, EndpointError> {
    match (plain, stored) {
        (Some(_), Some(_)) => Err(EndpointError::InvalidRecord {
            scheme,
            reason: "both `secrets` and `secret_digests`",
        }),
        (Some(plain), None) => {
            for (i, s) in plain.iter().enumerate() {
                check_secret(scheme, i + 1, s)?;
            }
            Ok(plain.iter().map(|s| SecretDigest::of(s.expose())).collect())
        }
        (None, Some(stored)) => stored
            .iter()
            .enumerate()
            .map(|(i, d)| SecretDigest::from_stored(scheme, i + 1, d))
            .collect(),
        (None, None) => Ok(Vec::new()),
    }
}

/// A signing scheme's stored keys: sealed, or a record from before the seals (plain secrets),
/// checked, and sealed when it is written again.
fn stored_signing_keys(
    scheme: Scheme,
    plain: Option<Vec<Secret>>,
    sealed: Option<Vec<Sealed>>,
) -> Result<Vec<SigningKey>, EndpointError> {
    let invalid = |reason| EndpointError::InvalidRecord { scheme, reason };
    match (plain, sealed) {
        (Some(plain), Some(_)) if !plain.is_empty() => Err(invalid("both `secrets` and `sealed_secrets`")),
        (_, Some(sealed)) => {
            if sealed.iter().any(|s| !s.is_well_formed()) {
                return Err(invalid("a sealed secret does not decode (key, 12-byte nonce, data)"));
            }
            Ok(sealed
                .into_iter()
                .map(|s| SigningKey {
                    secret: None,
                    sealed: Some(s),
                })
                .collect())
        }
        (plain, None) => {
            let plain = plain.unwrap_or_default();
            for (i, s) in plain.iter().enumerate() {
                check_secret(scheme, i + 1, s)?;
            }
            Ok(plain
                .into_iter()
                .map(|s| SigningKey {
                    secret: Some(s),
                    sealed: None,
                })
                .collect())
        }
    }
}

/// What the endpoints table stores of an `Auth`. A signing key that is not sealed yet cannot be
/// stored: writing it is an error (the registry seals keys before it writes an endpoint).
impl Serialize for Auth {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let sealed = self
            .signing
            .iter()
            .enumerate()
            .map(|(i, k)| {
                k.sealed.clone().ok_or_else(|| {
                    serde::ser::Error::custom(format!(
                        "signing secret #{} of the {} scheme is not sealed: it is never stored as it is",
                        i + 1,
                        self.scheme
                    ))
                })
            })
            .collect::<Result<Vec<_>, S::Error>>()?;
        let record = AuthRecord {
            scheme: self.scheme,
            header: self.header.clone(),
            secrets: (self.scheme == Scheme::UrlToken).then(Vec::new),
            secret_digests: self
                .scheme
                .is_static()
                .then(|| self.digests.iter().map(|d| d.to_hex()).collect()),
            sealed_secrets: (!self.scheme.is_static() && self.scheme != Scheme::UrlToken).then_some(sealed),
            verify_token: None,
            verify_token_digest: self.verify_token.map(SecretDigest::to_hex),
        };
        record.serialize(serializer)
    }
}

/// The digest of a verify token, refused when empty or with control characters.
fn verify_token_digest(scheme: Scheme, token: &Secret) -> Result<SecretDigest, EndpointError> {
    if token.expose().is_empty() {
        return Err(EndpointError::EmptySecret { scheme, index: 0 });
    }
    if token.expose().chars().any(|c| c.is_control()) {
        return Err(EndpointError::MalformedSecret {
            scheme,
            index: 0,
            reason: "the verify token contains control characters",
        });
    }
    Ok(SecretDigest::of(token.expose()))
}

impl Auth {
    /// Build and check an auth configuration. `header` is the header of `api-key` (default
    /// `x-api-key`) and `custom-header` (required).
    pub fn new(scheme: Scheme, secrets: Vec<Secret>, header: Option<&str>) -> Result<Auth, EndpointError> {
        if scheme.needs_secret() && secrets.is_empty() {
            return Err(EndpointError::MissingSecret(scheme));
        }
        for (i, s) in secrets.iter().enumerate() {
            check_secret(scheme, i + 1, s)?;
        }
        let header = Auth::new_header(scheme, header)?;
        let digests = if scheme.is_static() {
            secrets.iter().map(|s| SecretDigest::of(s.expose())).collect()
        } else {
            Vec::new()
        };
        if scheme.is_static() {
            return Ok(Auth {
                keys: MacKeys::default(),
                scheme,
                header,
                secrets,
                signing: Vec::new(),
                digests,
                verify_token: None,
            });
        }
        let mut auth = Auth {
            keys: MacKeys::default(),
            scheme,
            header,
            secrets: Vec::new(),
            signing: secrets
                .into_iter()
                .map(|s| SigningKey {
                    secret: Some(s),
                    sealed: None,
                })
                .collect(),
            digests,
            verify_token: None,
        };
        auth.refresh();
        Ok(auth)
    }

    /// A signing scheme's open keys and their HMAC keys, from `signing`.
    fn refresh(&mut self) {
        if !self.scheme.is_static() {
            self.secrets = self.signing.iter().filter_map(|k| k.secret.clone()).collect();
            self.keys = MacKeys::new(self.scheme, &self.secrets);
        }
    }

    /// A signing scheme's keys that are not sealed yet (index, key): what the registry seals
    /// before it stores the endpoint.
    pub fn unsealed(&self) -> Vec<(usize, &Secret)> {
        self.signing
            .iter()
            .enumerate()
            .filter(|(_, k)| k.sealed.is_none())
            .filter_map(|(i, k)| Some((i, k.secret.as_ref()?)))
            .collect()
    }

    /// Keep the sealed form of signing key `index` (made by the keyring from [`Auth::unsealed`]).
    pub fn set_sealed(&mut self, index: usize, sealed: Sealed) {
        if let Some(k) = self.signing.get_mut(index) {
            k.sealed = Some(sealed);
        }
    }

    /// A signing scheme's keys held sealed only (index, seal): what a receiver's registry opens
    /// before the endpoint checks a request.
    pub fn locked(&self) -> Vec<(usize, &Sealed)> {
        self.signing
            .iter()
            .enumerate()
            .filter(|(_, k)| k.secret.is_none())
            .filter_map(|(i, k)| Some((i, k.sealed.as_ref()?)))
            .collect()
    }

    /// Keep signing key `index` as opened by the keyring (checked as a new secret is).
    pub fn set_opened(&mut self, index: usize, secret: Secret) -> Result<(), EndpointError> {
        check_secret(self.scheme, index + 1, &secret)?;
        if let Some(k) = self.signing.get_mut(index) {
            k.secret = Some(secret);
        }
        self.refresh();
        Ok(())
    }

    /// The header `scheme` keeps: `api-key`'s (default `x-api-key`) and `custom-header`'s
    /// (required), checked and in lower case; none for the others.
    fn new_header(scheme: Scheme, header: Option<&str>) -> Result<Option<String>, EndpointError> {
        Ok(match scheme {
            Scheme::ApiKey => Some(header_name(scheme, header.unwrap_or("x-api-key"))?),
            Scheme::CustomHeader => match header {
                Some(h) => Some(header_name(scheme, h)?),
                None => {
                    return Err(EndpointError::BadHeaderName {
                        scheme,
                        reason: "the custom-header scheme needs a header name".into(),
                    })
                }
            },
            _ => None,
        })
    }

    /// The URL token only.
    pub fn url_token() -> Auth {
        Auth {
            scheme: Scheme::UrlToken,
            header: None,
            secrets: Vec::new(),
            signing: Vec::new(),
            digests: Vec::new(),
            verify_token: None,
            keys: MacKeys::default(),
        }
    }

    /// Set Meta's verify token (checked on the GET subscription handshake; only its digest is
    /// kept).
    pub fn with_verify_token(mut self, token: Secret) -> Result<Auth, EndpointError> {
        self.verify_token = Some(verify_token_digest(self.scheme, &token)?);
        Ok(self)
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The header read by `api-key` / `custom-header`, or the scheme's fixed header.
    pub fn header(&self) -> Option<&str> {
        self.header.as_deref().or(self.scheme.default_header())
    }

    /// The secrets themselves, newest last: a signing scheme's open keys (one read from the
    /// endpoints table has them once the registry opened them); a static scheme's only when this
    /// `Auth` was built from them (see [`Auth::secret_count`]).
    pub fn secrets(&self) -> &[Secret] {
        &self.secrets
    }

    /// How many secrets are accepted (the digests of a static scheme, the keys of the others).
    pub fn secret_count(&self) -> usize {
        if self.scheme.is_static() {
            self.digests.len()
        } else {
            self.signing.len()
        }
    }

    /// A static scheme's accepted secrets as digests, oldest first (what a request is
    /// compared with).
    pub(crate) fn secret_digests(&self) -> &[SecretDigest] {
        &self.digests
    }

    /// Whether a subscription verify token is set (Meta's handshake).
    pub fn has_verify_token(&self) -> bool {
        self.verify_token.is_some()
    }

    /// The digest of Meta's verify token.
    pub(crate) fn verify_token_digest(&self) -> Option<&SecretDigest> {
        self.verify_token.as_ref()
    }

    /// The secrets' HMAC keys, set up (signature schemes only; in the order of `secrets`).
    pub(crate) fn mac_keys(&self) -> &MacKeys {
        &self.keys
    }

    /// Accept one more secret (rotation: old and new are both valid until the old is removed).
    /// A static scheme keeps its digest (and the secret itself only if this `Auth` holds its
    /// other secrets too).
    pub fn add_secret(&mut self, secret: Secret) -> Result<(), EndpointError> {
        check_secret(self.scheme, self.secret_count() + 1, &secret)?;
        if self.scheme.is_static() {
            let all_plain = self.secrets.len() == self.digests.len();
            self.digests.push(SecretDigest::of(secret.expose()));
            if all_plain {
                self.secrets.push(secret);
            }
        } else {
            self.signing.push(SigningKey {
                secret: Some(secret),
                sealed: None,
            });
            self.refresh();
        }
        Ok(())
    }

    /// Stop accepting the secret at `index` (0-based, oldest first, as listed; a static scheme's
    /// digest list); the last one cannot be removed.
    pub fn remove_secret(&mut self, index: usize) -> Result<(), EndpointError> {
        let count = self.secret_count();
        if index >= count || count == 1 {
            return Err(EndpointError::MissingSecret(self.scheme));
        }
        if self.scheme.is_static() {
            self.digests.remove(index);
            if index < self.secrets.len() {
                self.secrets.remove(index);
            }
        } else {
            self.signing.remove(index);
            self.refresh();
        }
        Ok(())
    }
}

fn header_name(scheme: Scheme, name: &str) -> Result<String, EndpointError> {
    let lower = name.trim().to_ascii_lowercase();
    http::HeaderName::from_str(&lower)
        .map(|h| h.as_str().to_owned())
        .map_err(|_| EndpointError::BadHeaderName {
            scheme,
            reason: format!("`{name}` is not a valid HTTP header name"),
        })
}

fn check_secret(scheme: Scheme, index: usize, secret: &Secret) -> Result<(), EndpointError> {
    let s = secret.expose();
    if s.is_empty() {
        return Err(EndpointError::EmptySecret { scheme, index });
    }
    let malformed = |reason| Err(EndpointError::MalformedSecret { scheme, index, reason });
    if s.chars().any(|c| c.is_control()) {
        return malformed("it contains control characters");
    }
    match scheme {
        Scheme::Basic if !s.contains(':') => malformed("expected `user:password`"),
        Scheme::HubmessageHmac if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) => {
            malformed("expected the 64 hexadecimal characters Hub Message returned")
        }
        Scheme::StandardWebhooks => match standard_webhooks_key(secret) {
            Some(key) if key.len() >= 16 => Ok(()),
            Some(_) => malformed("the decoded key is shorter than 16 bytes"),
            None => malformed("expected `whsec_` followed by base64"),
        },
        _ => Ok(()),
    }
}

/// HMAC-SHA256, as every signing scheme but WAHA's uses it.
pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Each secret's HMAC-SHA256 key with the key schedule done (the inner and outer pads
/// hashed), as `ring::hmac::Key` keeps it: a request then only hashes its own bytes. Never
/// printed, and equal whenever the secrets are (it is derived from them).
#[derive(Clone, Default)]
pub struct MacKeys(pub(crate) Vec<HmacSha256>);

impl MacKeys {
    /// The keys of `secrets` under `scheme`: the secret's text for `hubmessage-hmac` (the
    /// 64-hex text itself, not its bytes) and `hub-signature-256`, the base64 after `whsec_`
    /// for `standard-webhooks`; none for the other schemes.
    pub(crate) fn new(scheme: Scheme, secrets: &[Secret]) -> MacKeys {
        MacKeys(match scheme {
            Scheme::HubmessageHmac | Scheme::HubSignature256 | Scheme::EvolutionJwt => {
                secrets.iter().map(|s| mac(s.expose().as_bytes())).collect()
            }
            Scheme::StandardWebhooks => secrets
                .iter()
                .filter_map(standard_webhooks_key)
                .map(|key| mac(&key))
                .collect(),
            _ => Vec::new(),
        })
    }
}

impl std::fmt::Debug for MacKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MacKeys({} × ***)", self.0.len())
    }
}

pub(crate) fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length: this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

/// A Standard Webhooks secret's key: the base64 after `whsec_`.
pub fn standard_webhooks_key(secret: &Secret) -> Option<Vec<u8>> {
    let b64 = secret.expose().strip_prefix("whsec_").unwrap_or(secret.expose());
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// An endpoint: what one URL token accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Public id (safe to log), e.g. `ep_3f9c…`.
    pub id: String,
    /// Which provider posts here.
    pub provider: Provider,
    /// How requests authenticate.
    pub auth: Auth,
    /// A disabled endpoint answers 404.
    pub enabled: bool,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// The tenant it belongs to (`tn_…`): its instances are the tenant's, and no other tenant's
    /// endpoint may write events for them (docs/receiving.md, "Tenants and instances"). `None`
    /// for endpoints stored before tenants: they share the default tenant, as they shared
    /// everything before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Set on a source that is not a URL: AWS End User Messaging Social's SNS topic for one
    /// WhatsApp Business Account (docs/providers.md). Such an endpoint has no URL: the HTTP
    /// receivers never serve it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SnsSource>,
    /// The windows of the events wahooks makes from time passing (turns, silence): the defaults
    /// unless set (`wahooks endpoint timing`).
    #[serde(default, skip_serializing_if = "Timing::is_default")]
    pub timing: Timing,
    /// Which media files the archiver keeps for this endpoint: all unless set
    /// (`wahooks endpoint media`).
    #[serde(default, skip_serializing_if = "MediaSwitch::is_default")]
    pub media: MediaSwitch,
}

/// Which of an endpoint's media files are archived (docs/events.md, "Media").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaSwitch {
    /// None at all.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub off: bool,
    /// Only these content kinds (`image`, `document`…); all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<crate::event::ContentKind>,
    /// The token the archiver fetches this endpoint's files with (Meta's access token, sent as a
    /// bearer; WAHA's API key, as `X-Api-Key`), sealed under the secrets key like a signing key:
    /// never stored, printed or logged in clear (`wahooks endpoint media --token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Sealed>,
}

impl MediaSwitch {
    /// Whether nothing is set (every kind archived).
    pub fn is_default(&self) -> bool {
        *self == MediaSwitch::default()
    }

    /// Whether a file of `kind` is archived.
    pub fn archives(&self, kind: crate::event::ContentKind) -> bool {
        !self.off && (self.kinds.is_empty() || self.kinds.contains(&kind))
    }
}

/// An endpoint's windows for the events made from time passing (docs/events.md, "Turns" and
/// "Silence"). Each is `None` for the default; `Some(0)` turns it off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// How long a chat stays quiet before its inbound messages make a turn, in ms (default
    /// [`Timing::DEFAULT_TURN_WINDOW_MS`], at most [`Timing::MAX_TURN_WINDOW_MS`]; 0: no turns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_window_ms: Option<u64>,
    /// How long an instance may receive nothing before it is silent, in seconds (default: derived
    /// from its own traffic; 0: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence_after_s: Option<u64>,
    /// How long an instance may stay disconnected before the alarm, in seconds (default
    /// [`Timing::DEFAULT_DISCONNECTED_AFTER_S`]; 0: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnected_after_s: Option<u64>,
}

/// How an instance's silence window is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilenceWindow {
    /// Never silent.
    Off,
    /// Derived from the instance's own traffic.
    Derived,
    /// Set on the endpoint, in seconds.
    Fixed(u64),
}

impl Timing {
    /// The turn window unless set: people type a burst within a few seconds.
    pub const DEFAULT_TURN_WINDOW_MS: u64 = 3_000;
    /// The longest turn window (a longer wait is a slow bot, not a burst).
    pub const MAX_TURN_WINDOW_MS: u64 = 60_000;
    /// How long an instance may stay disconnected unless set.
    pub const DEFAULT_DISCONNECTED_AFTER_S: u64 = 900;
    /// The shortest silence window `wahooks endpoint timing` sets: twice the fanout's activity
    /// interval (a minute), so two notes of a busy instance always fall within it.
    pub const MIN_SILENCE_S: u64 = 120;

    /// Whether nothing is set.
    pub fn is_default(&self) -> bool {
        *self == Timing::default()
    }

    /// The turn window in ms (`None`: no turns).
    pub fn turn_window_ms(&self) -> Option<u64> {
        match self.turn_window_ms.unwrap_or(Timing::DEFAULT_TURN_WINDOW_MS) {
            0 => None,
            ms => Some(ms.min(Timing::MAX_TURN_WINDOW_MS)),
        }
    }

    /// How the silence window is chosen.
    pub fn silence(&self) -> SilenceWindow {
        match self.silence_after_s {
            None => SilenceWindow::Derived,
            Some(0) => SilenceWindow::Off,
            Some(s) => SilenceWindow::Fixed(s),
        }
    }

    /// The disconnection window in seconds (`None`: no alarm).
    pub fn disconnected_after_s(&self) -> Option<u64> {
        match self
            .disconnected_after_s
            .unwrap_or(Timing::DEFAULT_DISCONNECTED_AFTER_S)
        {
            0 => None,
            s => Some(s),
        }
    }

    /// A silence window as a person sets it: off (0), or at least [`Timing::MIN_SILENCE_S`].
    pub fn check_silence_after(s: u64) -> Result<u64, String> {
        if s != 0 && s < Timing::MIN_SILENCE_S {
            return Err(format!(
                "a silence window is at least {} s (the fanout tells of an instance's traffic once a minute), or off",
                Timing::MIN_SILENCE_S
            ));
        }
        Ok(s)
    }

    /// A turn window as a person writes it, refused past the maximum.
    pub fn check_turn_window(ms: u64) -> Result<u64, String> {
        if ms > Timing::MAX_TURN_WINDOW_MS {
            return Err(format!(
                "a turn window is at most {} s (0 turns turns off)",
                Timing::MAX_TURN_WINDOW_MS / 1000
            ));
        }
        Ok(ms)
    }
}

/// What an AWS End User Messaging Social source expects of each SNS message: the AWS account the
/// WhatsApp Business Account is in, and its Meta WABA id (the message's
/// `context.MetaWabaIds[].wabaId`, the entry's `id`); and, when the subscription is not raw (the
/// SNS envelope names its topic), the topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnsSource {
    /// The AWS account id (12 digits) the messages' `aws_account_id` must name.
    pub account: String,
    /// The Meta WhatsApp Business Account id.
    pub waba: String,
    /// The topic ARN an SNS envelope must name (checked when a message carries one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_arn: Option<String>,
}

impl SnsSource {
    /// The key a source is stored and looked up under, in place of a URL token (`sns:<waba>`:
    /// never a plausible URL token, so no URL reaches it).
    pub fn token(waba: &str) -> String {
        format!("sns:{waba}")
    }
}

impl Endpoint {
    /// The tenant as the ownership records name it (`""`: the default tenant of endpoints
    /// stored before tenants).
    pub fn tenant_id(&self) -> &str {
        self.tenant.as_deref().unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_secret() {
        let auth = Auth::new(Scheme::Bearer, vec![Secret::new("super-secret-value")], None).expect("valid");
        let printed = format!("{auth:?}");
        assert!(!printed.contains("super-secret-value"), "{printed}");
        assert!(printed.contains("Secret(***)"));
    }

    #[test]
    fn empty_and_malformed_secrets_are_refused_naming_which() {
        assert_eq!(
            Auth::new(Scheme::Bearer, vec![], None),
            Err(EndpointError::MissingSecret(Scheme::Bearer))
        );
        assert_eq!(
            Auth::new(Scheme::Bearer, vec![Secret::new("ok"), Secret::new("")], None),
            Err(EndpointError::EmptySecret {
                scheme: Scheme::Bearer,
                index: 2
            })
        );
        let err = Auth::new(Scheme::Basic, vec![Secret::new("nocolon")], None).expect_err("malformed");
        assert!(err.to_string().contains("user:password"), "{err}");
        let err = Auth::new(Scheme::HubmessageHmac, vec![Secret::new("abc")], None).expect_err("malformed");
        assert!(err.to_string().contains("64 hexadecimal"), "{err}");
        let err = Auth::new(Scheme::StandardWebhooks, vec![Secret::new("whsec_***")], None).expect_err("malformed");
        assert!(err.to_string().contains("whsec_"), "{err}");
        assert!(Auth::new(Scheme::CustomHeader, vec![Secret::new("v")], None).is_err());
        assert!(Auth::new(Scheme::CustomHeader, vec![Secret::new("v")], Some("bad header")).is_err());
    }

    #[test]
    fn rotation_keeps_at_least_one_secret() {
        let mut auth = Auth::new(Scheme::Bearer, vec![Secret::new("old")], None).expect("valid");
        auth.add_secret(Secret::new("new")).expect("valid");
        assert_eq!(auth.secrets().len(), 2);
        auth.remove_secret(0).expect("removable");
        assert_eq!(auth.secrets(), &[Secret::new("new")]);
        assert!(auth.remove_secret(0).is_err(), "the last secret stays");
    }

    const STATIC: [Scheme; 5] = [
        Scheme::Bearer,
        Scheme::Basic,
        Scheme::ApiKey,
        Scheme::CustomHeader,
        Scheme::ZapiToken,
    ];

    fn static_auth(scheme: Scheme, secret: &str) -> Auth {
        let header = (scheme == Scheme::CustomHeader).then_some("X-Shared-Key");
        Auth::new(scheme, vec![Secret::new(secret)], header).expect("valid")
    }

    /// A seal of the right shape (what a keyring makes; its content is not opened here).
    fn sealed_stub() -> Sealed {
        let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![7u8; n]);
        Sealed {
            key: b64(40),
            nonce: b64(12),
            data: b64(32),
        }
    }

    fn read(json: serde_json::Value) -> Result<Auth, serde_json::Error> {
        serde_json::from_value(json)
    }

    #[test]
    fn static_schemes_store_digests_only_and_read_back_equal() {
        for scheme in STATIC {
            let secret = "user:the-plain-secret";
            let auth = static_auth(scheme, secret);
            let stored = serde_json::to_value(&auth).expect("json");
            let text = stored.to_string();
            assert!(!text.contains("the-plain-secret"), "{scheme}: {text}");
            assert!(stored.get("secrets").is_none(), "{scheme}: {text}");
            assert_eq!(
                stored["secret_digests"],
                serde_json::json!([hex::encode(Sha256::digest(secret.as_bytes()))]),
                "{scheme}"
            );
            let back = read(stored).expect("reads");
            assert_eq!(back, auth, "{scheme}");
            assert!(back.secrets().is_empty(), "{scheme}: read back, only digests");
            assert_eq!(back.secret_count(), 1);
            assert_eq!(back.header(), auth.header());
        }
        // A signing scheme's key (the MAC needs it) is stored sealed only: unsealed, it cannot be
        // written at all. The verify token is a digest.
        let mut meta = Auth::new(Scheme::HubSignature256, vec![Secret::new("app-secret")], None)
            .expect("valid")
            .with_verify_token(Secret::new("the-verify-token"))
            .expect("valid");
        let refused = serde_json::to_value(&meta).expect_err("an unsealed key is never written");
        assert!(refused.to_string().contains("not sealed"), "{refused}");
        assert!(!refused.to_string().contains("app-secret"), "{refused}");
        assert_eq!(meta.unsealed().len(), 1);
        meta.set_sealed(0, sealed_stub());
        assert!(meta.unsealed().is_empty());
        let stored = serde_json::to_value(&meta).expect("json");
        assert!(stored.get("secrets").is_none(), "{stored}");
        assert_eq!(
            stored["sealed_secrets"],
            serde_json::json!([serde_json::to_value(sealed_stub()).expect("json")])
        );
        assert!(!stored.to_string().contains("app-secret"), "{stored}");
        assert!(!stored.to_string().contains("the-verify-token"), "{stored}");
        assert_eq!(
            stored["verify_token_digest"],
            serde_json::json!(hex::encode(Sha256::digest(b"the-verify-token")))
        );
        let back = read(stored).expect("reads");
        assert_eq!(back, meta);
        assert!(back.has_verify_token());
        // Read back, the key is locked until a keyring opens it: no key, no MAC.
        assert_eq!(back.locked().len(), 1);
        assert!(back.secrets().is_empty() && back.secret_count() == 1);
        let mut opened = back.clone();
        opened.set_opened(0, Secret::new("app-secret")).expect("valid");
        assert!(opened.locked().is_empty());
        assert_eq!(opened.secrets(), &[Secret::new("app-secret")]);
        assert_eq!(
            serde_json::to_value(Auth::url_token()).expect("json"),
            serde_json::json!({"scheme": "url-token", "secrets": []})
        );
    }

    #[test]
    fn records_from_before_the_digests_are_read_and_rewritten_as_digests() {
        let legacy = serde_json::json!({"scheme": "api-key", "header": "x-api-key", "secrets": ["k-old", "k-new"]});
        let auth = read(legacy).expect("a legacy record reads");
        assert_eq!(auth.secret_count(), 2);
        assert!(auth.secrets().is_empty(), "kept as digests only");
        let mut built = Auth::new(Scheme::ApiKey, vec![Secret::new("k-old")], None).expect("valid");
        built.add_secret(Secret::new("k-new")).expect("valid");
        assert_eq!(auth, built, "the same as one made from the secrets");
        let rewritten = serde_json::to_value(&auth).expect("json");
        assert!(rewritten.get("secrets").is_none() && !rewritten.to_string().contains("k-old"));
        // (The table spells Meta's scheme `hub-signature256`: serde's kebab-case of the variant.)
        let mut meta =
            read(serde_json::json!({"scheme": "hub-signature256", "secrets": ["app"], "verify_token": "vt"}))
                .expect("a legacy Meta record reads");
        assert_eq!(meta.secrets(), &[Secret::new("app")], "a plain key is open");
        assert_eq!(meta.unsealed().len(), 1, "and sealed when written again");
        meta.set_sealed(0, sealed_stub());
        let rewritten = serde_json::to_value(&meta).expect("json");
        assert!(rewritten.get("secrets").is_none(), "{rewritten}");
        assert!(rewritten.get("verify_token").is_none(), "{rewritten}");
        assert_eq!(
            rewritten["verify_token_digest"],
            serde_json::json!(hex::encode(Sha256::digest(b"vt")))
        );
    }

    #[test]
    fn a_record_that_does_not_validate_is_an_error_never_an_open_endpoint() {
        let digest = hex::encode(Sha256::digest(b"s"));
        let empty_digest = hex::encode(Sha256::digest(b""));
        for (record, why) in [
            (
                serde_json::json!({"scheme": "api-key", "header": "x-api-key", "secrets": [""]}),
                "empty",
            ),
            (
                serde_json::json!({"scheme": "custom-header", "header": "x-k", "secrets": [""]}),
                "empty",
            ),
            (serde_json::json!({"scheme": "bearer", "secret_digests": [""]}), "empty"),
            (
                serde_json::json!({"scheme": "bearer", "secret_digests": [empty_digest]}),
                "empty",
            ),
            (
                serde_json::json!({"scheme": "bearer", "secret_digests": ["abc"]}),
                "64 hexadecimal",
            ),
            (
                serde_json::json!({"scheme": "bearer", "secret_digests": ["z".repeat(64)]}),
                "64 hexadecimal",
            ),
            (
                serde_json::json!({"scheme": "bearer", "secret_digests": []}),
                "needs a secret",
            ),
            (serde_json::json!({"scheme": "bearer"}), "needs a secret"),
            (
                serde_json::json!({"scheme": "zapi-token", "secrets": []}),
                "needs a secret",
            ),
            (
                serde_json::json!({"scheme": "hub-signature256", "secrets": []}),
                "needs a secret",
            ),
            (serde_json::json!({"scheme": "waha-hmac", "secrets": [""]}), "empty"),
            (
                serde_json::json!({"scheme": "waha-hmac", "sealed_secrets": [{"key": "AA==", "nonce": "AA==", "data": "AA=="}]}),
                "does not decode",
            ),
            (
                serde_json::json!({"scheme": "waha-hmac", "sealed_secrets": []}),
                "needs a secret",
            ),
            (
                serde_json::json!({"scheme": "waha-hmac", "secrets": ["k"], "sealed_secrets": [serde_json::to_value(sealed_stub()).expect("json")]}),
                "both",
            ),
            (
                serde_json::json!({"scheme": "bearer", "sealed_secrets": [serde_json::to_value(sealed_stub()).expect("json")]}),
                "digests",
            ),
            (
                serde_json::json!({"scheme": "hubmessage-hmac", "secrets": ["abc"]}),
                "64 hexadecimal",
            ),
            (
                serde_json::json!({"scheme": "custom-header", "secret_digests": [digest]}),
                "needs a header name",
            ),
            (
                serde_json::json!({"scheme": "custom-header", "header": "bad header", "secret_digests": [digest]}),
                "not a valid HTTP header",
            ),
            (
                serde_json::json!({"scheme": "zapi-token", "header": "x-other", "secret_digests": [digest]}),
                "fixed header",
            ),
            (
                serde_json::json!({"scheme": "bearer", "secrets": ["s"], "secret_digests": [digest]}),
                "both",
            ),
            (
                serde_json::json!({"scheme": "waha-hmac", "secret_digests": [digest]}),
                "signs with the secret itself",
            ),
            (
                serde_json::json!({"scheme": "hub-signature256", "secrets": ["a"], "verify_token": ""}),
                "empty",
            ),
            (
                serde_json::json!({"scheme": "hub-signature256", "secrets": ["a"], "verify_token_digest": ""}),
                "empty",
            ),
            (
                serde_json::json!({"scheme": "hub-signature256", "secrets": ["a"], "verify_token_digest": "00"}),
                "64 hexadecimal",
            ),
            (
                serde_json::json!({"scheme": "no-such-scheme", "secrets": ["a"]}),
                "unknown variant",
            ),
        ] {
            let err = read(record.clone()).expect_err(&record.to_string());
            assert!(err.to_string().contains(why), "{record}: {err}");
        }
    }

    #[test]
    fn rotation_works_on_digests_read_back() {
        let stored = serde_json::to_value(static_auth(Scheme::ZapiToken, "first")).expect("json");
        let mut auth = read(stored).expect("reads");
        auth.add_secret(Secret::new("second")).expect("valid");
        assert_eq!(auth.secret_count(), 2);
        assert!(auth.secrets().is_empty(), "no secret kept beside digests-only ones");
        assert!(auth.add_secret(Secret::new("")).is_err());
        auth.remove_secret(0).expect("removable");
        assert_eq!(
            auth,
            static_auth(Scheme::ZapiToken, "second"),
            "by index in the digest list"
        );
        assert!(auth.remove_secret(0).is_err(), "the last secret stays");
        assert!(auth.remove_secret(5).is_err());
        let mut built = static_auth(Scheme::ZapiToken, "a");
        built.add_secret(Secret::new("b")).expect("valid");
        built.remove_secret(1).expect("removable");
        assert_eq!(built.secrets(), &[Secret::new("a")], "built ones keep theirs in step");
        assert_eq!(built, static_auth(Scheme::ZapiToken, "a"));
    }

    #[test]
    fn debug_never_shows_a_digest_in_full() {
        let auth = read(serde_json::to_value(static_auth(Scheme::Bearer, "tok")).expect("json")).expect("reads");
        let full = hex::encode(Sha256::digest(b"tok"));
        let printed = format!("{auth:?}");
        assert!(!printed.contains(&full) && !printed.contains("tok\""), "{printed}");
        assert!(printed.contains(&format!("SecretDigest({}…)", &full[..6])), "{printed}");
        let meta = Auth::new(Scheme::HubSignature256, vec![Secret::new("app")], None)
            .expect("valid")
            .with_verify_token(Secret::new("vt"))
            .expect("valid");
        assert!(!format!("{meta:?}").contains(&hex::encode(Sha256::digest(b"vt"))));
    }
}
