//! Signing keys at rest: envelope encryption under the secrets key.
//!
//! A signing scheme's key (an HMAC or JWT key, Meta's app secret) is needed as it is to check a
//! request, so it cannot be kept as a digest. The endpoints table keeps it sealed ([`Sealed`]):
//! KMS makes a data key under the secrets key, with the endpoint id as encryption context; the
//! key is encrypted with it (AES-256-GCM, the endpoint id as associated data) and only KMS's
//! encrypted copy of the data key is kept beside it.
//!
//! - Sealing needs `kms:GenerateDataKey` only (what `wahooks endpoint` runs with), opening needs
//!   `kms:Decrypt`, which the template's key policy grants to the receivers' roles alone.
//! - A seal opens only for the endpoint it was made for: a record copied under another endpoint
//!   id fails (KMS refuses the context, and the data key's associated data differs).
//! - [`KmsKeyring`] keeps each data key it opened for the life of the container: a warm request,
//!   or the registry cache's next read of the same record, makes no KMS call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::Engine;

use crate::endpoint::{Auth, Sealed, Secret};

/// The encryption-context key (and the associated data's name) a seal is bound to.
pub const CONTEXT_KEY: &str = "wahooks:endpoint";

/// At most this many opened data keys kept per container (one per signing key of the endpoints
/// the container served; cleared, not grown, past it).
const CACHE_LIMIT: usize = 4096;

/// Why a key could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// KMS unreachable, throttling, or refusing the caller (try again, or fix the role).
    #[error("the secrets key is unavailable: {0}")]
    Unavailable(String),
    /// The seal does not open: not made for this endpoint, or damaged.
    #[error("a sealed secret does not open for this endpoint: {0}")]
    Invalid(&'static str),
    /// Sealing asked of a keyring that has no key to seal with.
    #[error("no secrets key is configured (WAHOOKS_SECRETS_KEY): signing secrets are stored sealed under it")]
    NoKey,
}

/// A data key: the key itself and KMS's encrypted copy of it.
pub struct DataKey {
    /// The AES-256 key.
    pub plain: [u8; 32],
    /// What KMS returned as `CiphertextBlob` (what is stored).
    pub wrapped: Vec<u8>,
}

/// Where data keys come from and are opened: KMS ([`KmsKeyring`]), or an in-process key for
/// unit tests ([`MemoryKeyring`]).
#[async_trait]
pub trait Keyring: Send + Sync {
    /// A new data key bound to `endpoint_id`.
    async fn data_key(&self, endpoint_id: &str) -> Result<DataKey, KeyringError>;

    /// The data key `wrapped` holds, if it was made for `endpoint_id`.
    async fn open_key(&self, endpoint_id: &str, wrapped: &[u8]) -> Result<[u8; 32], KeyringError>;
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn associated_data(endpoint_id: &str) -> String {
    format!("{CONTEXT_KEY}={endpoint_id}")
}

/// Seal `secret` for `endpoint_id` under a new data key.
pub async fn seal(keyring: &dyn Keyring, endpoint_id: &str, secret: &Secret) -> Result<Sealed, KeyringError> {
    let key = keyring.data_key(endpoint_id).await?;
    let nonce: [u8; 12] = rand::random();
    let aad = associated_data(endpoint_id);
    let data = Aes256Gcm::new(&key.plain.into())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: secret.expose().as_bytes(),
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| KeyringError::Invalid("AES-GCM refused to encrypt"))?;
    Ok(Sealed {
        key: b64().encode(&key.wrapped),
        nonce: b64().encode(nonce),
        data: b64().encode(data),
    })
}

/// Open `sealed`, made for `endpoint_id`.
pub async fn open(keyring: &dyn Keyring, endpoint_id: &str, sealed: &Sealed) -> Result<Secret, KeyringError> {
    let decode = |s: &str| b64().decode(s).map_err(|_| KeyringError::Invalid("not base64"));
    let wrapped = decode(&sealed.key)?;
    let nonce = decode(&sealed.nonce)?;
    if nonce.len() != 12 {
        return Err(KeyringError::Invalid("the nonce is not 12 bytes"));
    }
    let data = decode(&sealed.data)?;
    let key = keyring.open_key(endpoint_id, &wrapped).await?;
    let aad = associated_data(endpoint_id);
    let plain = Aes256Gcm::new(&key.into())
        .decrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &data,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| KeyringError::Invalid("the data does not decrypt under its data key"))?;
    String::from_utf8(plain)
        .map(Secret::new)
        .map_err(|_| KeyringError::Invalid("the key is not UTF-8"))
}

/// Seal every signing key of `auth` that is not sealed yet (before the endpoint is stored).
pub async fn seal_auth(keyring: &dyn Keyring, endpoint_id: &str, auth: &mut Auth) -> Result<(), KeyringError> {
    let pending: Vec<(usize, Secret)> = auth.unsealed().into_iter().map(|(i, s)| (i, s.clone())).collect();
    for (i, secret) in pending {
        let sealed = seal(keyring, endpoint_id, &secret).await?;
        auth.set_sealed(i, sealed);
    }
    Ok(())
}

/// Open every signing key of `auth` held sealed only (before the endpoint checks a request).
pub async fn open_auth(keyring: &dyn Keyring, endpoint_id: &str, auth: &mut Auth) -> Result<(), KeyringError> {
    let locked: Vec<(usize, Sealed)> = auth.locked().into_iter().map(|(i, s)| (i, s.clone())).collect();
    for (i, sealed) in locked {
        let secret = open(keyring, endpoint_id, &sealed).await?;
        auth.set_opened(i, secret)
            .map_err(|_| KeyringError::Invalid("the opened key is not a valid key of its scheme"))?;
    }
    Ok(())
}

/// A KMS error in one line: its code and message, or what kept the request from KMS.
fn kms_error<E, R>(e: &aws_sdk_kms::error::SdkError<E, R>) -> String
where
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    use aws_sdk_kms::error::ProvideErrorMetadata;
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => crate::error_chain(e),
    }
}

/// An opened data key's place in the cache: the endpoint and KMS's encrypted copy.
type OpenedKey = (String, Vec<u8>);

/// The data keys a container opened, by endpoint and encrypted copy.
#[derive(Default)]
struct OpenedKeys(Mutex<HashMap<OpenedKey, [u8; 32]>>);

impl OpenedKeys {
    fn get(&self, endpoint_id: &str, wrapped: &[u8]) -> Option<[u8; 32]> {
        let keys = self.0.lock().unwrap_or_else(|p| p.into_inner());
        keys.get(&(endpoint_id.to_owned(), wrapped.to_vec())).copied()
    }

    fn put(&self, endpoint_id: &str, wrapped: &[u8], key: [u8; 32]) {
        let mut keys = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= CACHE_LIMIT {
            keys.clear();
        }
        keys.insert((endpoint_id.to_owned(), wrapped.to_vec()), key);
    }
}

/// Data keys from AWS KMS: `GenerateDataKey` under the secrets key, `Decrypt` to open (the
/// encrypted copy names its key), both with `{"wahooks:endpoint": <id>}` as encryption context.
pub struct KmsKeyring {
    client: aws_sdk_kms::Client,
    key_id: Option<String>,
    opened: OpenedKeys,
    decrypts: AtomicUsize,
}

impl KmsKeyring {
    /// A keyring sealing under `key_id` (an id, ARN or `alias/…`; `None`: open only).
    pub fn new(client: aws_sdk_kms::Client, key_id: Option<String>) -> Self {
        KmsKeyring {
            client,
            key_id,
            opened: OpenedKeys::default(),
            decrypts: AtomicUsize::new(0),
        }
    }

    /// How many `Decrypt` calls this keyring made (what the per-container cache saves).
    pub fn decrypt_calls(&self) -> usize {
        self.decrypts.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Keyring for KmsKeyring {
    async fn data_key(&self, endpoint_id: &str) -> Result<DataKey, KeyringError> {
        let key_id = self.key_id.as_deref().ok_or(KeyringError::NoKey)?;
        let out = self
            .client
            .generate_data_key()
            .key_id(key_id)
            .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
            .encryption_context(CONTEXT_KEY, endpoint_id)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(se) if se.is_not_found_exception() => KeyringError::Unavailable(format!(
                    "the secrets key `{key_id}` does not exist (WAHOOKS_SECRETS_KEY: the stack's SecretsKeyArn output)"
                )),
                _ => KeyringError::Unavailable(kms_error(&e)),
            })?;
        let plain: [u8; 32] = out
            .plaintext()
            .map(|p| p.as_ref())
            .and_then(|p| p.try_into().ok())
            .ok_or(KeyringError::Invalid("KMS returned no 32-byte data key"))?;
        let wrapped = out
            .ciphertext_blob()
            .map(|b| b.as_ref().to_vec())
            .ok_or(KeyringError::Invalid("KMS returned no encrypted data key"))?;
        Ok(DataKey { plain, wrapped })
    }

    async fn open_key(&self, endpoint_id: &str, wrapped: &[u8]) -> Result<[u8; 32], KeyringError> {
        if let Some(key) = self.opened.get(endpoint_id, wrapped) {
            return Ok(key);
        }
        self.decrypts.fetch_add(1, Ordering::Relaxed);
        let out = self
            .client
            .decrypt()
            .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(wrapped.to_vec()))
            .encryption_context(CONTEXT_KEY, endpoint_id)
            .send()
            .await
            .map_err(|e| {
                use aws_sdk_kms::operation::decrypt::DecryptError as E;
                match e.as_service_error() {
                    // A blob not made under this context, or damaged: the record is wrong, not KMS.
                    Some(E::InvalidCiphertextException(_) | E::IncorrectKeyException(_)) => {
                        KeyringError::Invalid("KMS refused the encrypted data key for this endpoint")
                    }
                    _ => KeyringError::Unavailable(kms_error(&e)),
                }
            })?;
        let key: [u8; 32] = out
            .plaintext()
            .map(|p| p.as_ref())
            .and_then(|p| p.try_into().ok())
            .ok_or(KeyringError::Invalid("the data key is not 32 bytes"))?;
        self.opened.put(endpoint_id, wrapped, key);
        Ok(key)
    }
}

/// Data keys wrapped by a key held in memory (AES-256-GCM, the endpoint id as associated data):
/// what unit tests and in-memory stacks seal with. Never used against AWS.
pub struct MemoryKeyring {
    master: [u8; 32],
    opens: AtomicUsize,
}

impl Default for MemoryKeyring {
    fn default() -> Self {
        MemoryKeyring {
            master: rand::random(),
            opens: AtomicUsize::new(0),
        }
    }
}

impl MemoryKeyring {
    /// How many data keys were opened.
    pub fn opens(&self) -> usize {
        self.opens.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Keyring for MemoryKeyring {
    async fn data_key(&self, endpoint_id: &str) -> Result<DataKey, KeyringError> {
        let plain: [u8; 32] = rand::random();
        let nonce: [u8; 12] = rand::random();
        let aad = associated_data(endpoint_id);
        let mut wrapped = nonce.to_vec();
        wrapped.extend(
            Aes256Gcm::new(&self.master.into())
                .encrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: &plain,
                        aad: aad.as_bytes(),
                    },
                )
                .map_err(|_| KeyringError::Invalid("AES-GCM refused to encrypt"))?,
        );
        Ok(DataKey { plain, wrapped })
    }

    async fn open_key(&self, endpoint_id: &str, wrapped: &[u8]) -> Result<[u8; 32], KeyringError> {
        self.opens.fetch_add(1, Ordering::Relaxed);
        if wrapped.len() < 12 {
            return Err(KeyringError::Invalid("the encrypted data key is too short"));
        }
        let (nonce, data) = wrapped.split_at(12);
        let aad = associated_data(endpoint_id);
        let plain = Aes256Gcm::new(&self.master.into())
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: data,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| KeyringError::Invalid("the data key was not made for this endpoint"))?;
        plain
            .try_into()
            .map_err(|_| KeyringError::Invalid("the data key is not 32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Scheme;

    #[tokio::test]
    async fn a_sealed_key_opens_for_its_endpoint_only() {
        let keyring = MemoryKeyring::default();
        let secret = Secret::new("the-app-secret");
        let sealed = seal(&keyring, "ep_a", &secret).await.expect("seals");
        let text = serde_json::to_string(&sealed).expect("json");
        assert!(!text.contains("the-app-secret"), "{text}");
        assert_eq!(open(&keyring, "ep_a", &sealed).await.expect("opens"), secret);
        let elsewhere = open(&keyring, "ep_b", &sealed).await.expect_err("another endpoint");
        assert!(matches!(elsewhere, KeyringError::Invalid(_)), "{elsewhere}");
        // A seal whose data was swapped for another's does not open either.
        let other = seal(&keyring, "ep_a", &Secret::new("other")).await.expect("seals");
        let mixed = Sealed {
            data: other.data.clone(),
            ..sealed.clone()
        };
        assert!(open(&keyring, "ep_a", &mixed).await.is_err());
        // Two seals of one secret differ (a data key and a nonce each).
        let again = seal(&keyring, "ep_a", &secret).await.expect("seals");
        assert_ne!(again, sealed);
    }

    #[tokio::test]
    async fn an_auth_is_sealed_to_be_stored_and_opened_to_be_used() {
        let keyring = MemoryKeyring::default();
        let mut auth = Auth::new(Scheme::WahaHmac, vec![Secret::new("k1")], None).expect("valid");
        auth.add_secret(Secret::new("k2")).expect("valid");
        seal_auth(&keyring, "ep_x", &mut auth).await.expect("seals");
        let stored = serde_json::to_string(&auth).expect("sealed, so it serialises");
        assert!(!stored.contains("\"k1\"") && !stored.contains("\"k2\""), "{stored}");
        let mut read: Auth = serde_json::from_str(&stored).expect("reads");
        assert_eq!(read.locked().len(), 2);
        assert!(read.secrets().is_empty());
        // A key added while the others stay locked (an operator cannot open them) is sealed on
        // its own, and the rest stay as they were.
        read.add_secret(Secret::new("k3")).expect("valid");
        seal_auth(&keyring, "ep_x", &mut read).await.expect("seals the new key");
        assert_eq!(keyring.opens(), 0, "sealing opens nothing");
        let stored = serde_json::to_string(&read).expect("json");
        let mut back: Auth = serde_json::from_str(&stored).expect("reads");
        open_auth(&keyring, "ep_x", &mut back).await.expect("opens");
        assert_eq!(
            back.secrets(),
            &[Secret::new("k1"), Secret::new("k2"), Secret::new("k3")]
        );
        assert_eq!(keyring.opens(), 3);
        let mut wrong: Auth = serde_json::from_str(&stored).expect("reads");
        assert!(open_auth(&keyring, "ep_y", &mut wrong).await.is_err());
    }
}
