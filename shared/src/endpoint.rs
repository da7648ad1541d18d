//! Endpoints: who may post to a URL token, in which format, authenticated how. Secrets are
//! wrapped so `Debug` and logs never show them, and are checked when the endpoint is built.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::auth::MacKeys;
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
}

/// The authentication an endpoint requires: a scheme and its secrets (several at once, so a
/// secret rotates without downtime).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "AuthRecord", into = "AuthRecord")]
pub struct Auth {
    scheme: Scheme,
    header: Option<String>,
    secrets: Vec<Secret>,
    verify_token: Option<Secret>,
    /// Each secret's HMAC key, set up once rather than on every request (signature schemes).
    keys: MacKeys,
}

/// Two `Auth`s are equal when what they were built from is: the scheme, the header, the secrets
/// and the verify token. The HMAC keys are derived from those, so they are not compared.
impl PartialEq for Auth {
    fn eq(&self, other: &Auth) -> bool {
        (self.scheme, &self.header, &self.secrets, &self.verify_token)
            == (other.scheme, &other.header, &other.secrets, &other.verify_token)
    }
}

impl Eq for Auth {}

/// [`Auth`] as stored in the endpoints table and printed by the CLI (no derived keys).
#[derive(Serialize, Deserialize)]
struct AuthRecord {
    scheme: Scheme,
    /// The header read by `api-key` and `custom-header` (lower case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    header: Option<String>,
    secrets: Vec<Secret>,
    /// Meta's subscription verify token (`hub-signature-256` endpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    verify_token: Option<Secret>,
}

impl From<AuthRecord> for Auth {
    fn from(r: AuthRecord) -> Auth {
        Auth {
            keys: MacKeys::new(r.scheme, &r.secrets),
            scheme: r.scheme,
            header: r.header,
            secrets: r.secrets,
            verify_token: r.verify_token,
        }
    }
}

impl From<Auth> for AuthRecord {
    fn from(a: Auth) -> AuthRecord {
        AuthRecord {
            scheme: a.scheme,
            header: a.header,
            secrets: a.secrets,
            verify_token: a.verify_token,
        }
    }
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
        let header = match scheme {
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
        };
        Ok(Auth {
            keys: MacKeys::new(scheme, &secrets),
            scheme,
            header,
            secrets,
            verify_token: None,
        })
    }

    /// The URL token only.
    pub fn url_token() -> Auth {
        Auth {
            scheme: Scheme::UrlToken,
            header: None,
            secrets: Vec::new(),
            verify_token: None,
            keys: MacKeys::default(),
        }
    }

    /// Set Meta's verify token (checked on the GET subscription handshake).
    pub fn with_verify_token(mut self, token: Secret) -> Result<Auth, EndpointError> {
        if token.expose().is_empty() {
            return Err(EndpointError::EmptySecret {
                scheme: self.scheme,
                index: 0,
            });
        }
        self.verify_token = Some(token);
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

    /// The accepted secrets, newest last.
    pub fn secrets(&self) -> &[Secret] {
        &self.secrets
    }

    /// Meta's verify token.
    pub fn verify_token(&self) -> Option<&Secret> {
        self.verify_token.as_ref()
    }

    /// The secrets' HMAC keys, set up (signature schemes only; in the order of `secrets`).
    pub(crate) fn mac_keys(&self) -> &MacKeys {
        &self.keys
    }

    /// Accept one more secret (rotation: old and new are both valid until the old is removed).
    pub fn add_secret(&mut self, secret: Secret) -> Result<(), EndpointError> {
        check_secret(self.scheme, self.secrets.len() + 1, &secret)?;
        self.secrets.push(secret);
        self.keys = MacKeys::new(self.scheme, &self.secrets);
        Ok(())
    }

    /// Stop accepting the secret at `index` (0-based); the last one cannot be removed.
    pub fn remove_secret(&mut self, index: usize) -> Result<(), EndpointError> {
        if index >= self.secrets.len() || self.secrets.len() == 1 {
            return Err(EndpointError::MissingSecret(self.scheme));
        }
        self.secrets.remove(index);
        self.keys = MacKeys::new(self.scheme, &self.secrets);
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
}
