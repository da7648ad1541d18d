//! Where endpoints are kept and looked up: the `endpoints` table, keyed by the SHA-256 of the
//! URL token (the token itself is never stored; signing secrets sealed, `keyring`), with a short
//! per-container cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use rand::RngCore;

use crate::endpoint::Endpoint;
use crate::keyring::{self, Keyring, KeyringError};

/// How long a container trusts its cached copy of an endpoint (a disabled endpoint or a
/// removed secret takes at most this long to take effect).
pub const CACHE_TTL: Duration = Duration::from_secs(30);

/// Which change of an endpoint a read saw: the `version` of its `ID#<id>` record (0: none
/// recorded, an endpoint stored before versions).
pub type Version = u64;

/// DynamoDB's limit on the actions of one `TransactWriteItems` (an endpoint's version record and
/// one put per URL token; a person's alias items: one with more aliases is not learned further).
pub const MAX_TRANSACTION_ITEMS: usize = 100;

// The endpoints table's keys are built in `store::keys`, with every other key shape.
pub use crate::store::keys::{instance_key, token_key, version_key};

/// A new unguessable URL token: 32 random bytes, URL-safe base64 (43 characters, 256 bits).
pub fn new_token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A new public endpoint id, safe to log.
pub fn new_endpoint_id() -> String {
    let mut bytes = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("ep_{}", hex::encode(bytes))
}

/// A new enabled endpoint with a fresh id, created now, in a tenant of its own.
pub fn new_endpoint(provider: crate::Provider, auth: crate::endpoint::Auth) -> Endpoint {
    Endpoint {
        id: new_endpoint_id(),
        provider,
        auth,
        enabled: true,
        created_at: chrono::Utc::now().to_rfc3339(),
        tenant: Some(new_tenant_id()),
        source: None,
        timing: Default::default(),
        media: Default::default(),
    }
}

/// A new tenant id, safe to log.
pub fn new_tenant_id() -> String {
    let mut bytes = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("tn_{}", hex::encode(bytes))
}

/// Whether a path segment can be a token (anything else is a 404 without a lookup).
pub fn plausible_token(token: &str) -> bool {
    (16..=128).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Why the registry failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// DynamoDB unreachable or throttling.
    #[error("the endpoints table is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No endpoint with that id.
    #[error("no endpoint `{0}`")]
    NotFound(String),
    /// A stored item we could not read (or an endpoint we could not write as one), or a sealed
    /// secret that does not open for its endpoint.
    #[error("endpoint item is corrupt")]
    Corrupt(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The endpoint changed (or a token item with its id already exists) since it was read: a
    /// concurrent command; read it again and retry.
    #[error("endpoint `{0}` changed while this command ran (or the URL token exists): run it again")]
    Conflict(String),
    /// More URL tokens than one transaction can rewrite.
    #[error("endpoint `{id}` has {tokens} URL tokens, more than one transaction rewrites: retire the old ones (`wahooks endpoint retire-tokens`)")]
    TooManyTokens {
        /// The endpoint.
        id: String,
        /// How many it has.
        tokens: usize,
    },
    /// The secrets key could not seal or open a signing secret (KMS unreachable or refusing,
    /// or no key configured to seal with).
    #[error("the endpoint's signing secrets: {0}")]
    Secrets(#[source] KeyringError),
}

impl From<KeyringError> for RegistryError {
    fn from(e: KeyringError) -> RegistryError {
        match e {
            KeyringError::Invalid(_) => RegistryError::Corrupt(Box::new(e)),
            e => RegistryError::Secrets(e),
        }
    }
}

/// Who owns an instance, as [`EndpointRegistry::claim`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The tenant that asked owns it (now, or already).
    Owned,
    /// Another tenant does (its id).
    Foreign(String),
}

/// An alias item as read: the contact it leads to and the item's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredContact {
    /// The person.
    pub contact: crate::event::Contact,
    /// How many times the item was written.
    pub version: u64,
}

/// One alias item to write: `alias` now leads to `contact`. Written only if the item still
/// holds version `expect` (or, for `None`, does not exist yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactWrite {
    /// The alias (the item's key).
    pub alias: crate::event::Alias,
    /// What it leads to.
    pub contact: crate::event::Contact,
    /// The version read, `None` when there was no item.
    pub expect: Option<u64>,
}

/// The port of the identity map (`crate::contacts`): the alias items of one provider instance,
/// kept in the endpoints table (no stream, so never published; the receivers already read and
/// write it per instance).
#[async_trait]
pub trait ContactBook: Send + Sync {
    /// The alias items of `aliases` that exist (strongly consistent reads when `consistent`).
    async fn read_contacts(
        &self,
        provider: crate::Provider,
        instance: &str,
        aliases: &[crate::event::Alias],
        consistent: bool,
    ) -> Result<Vec<(crate::event::Alias, StoredContact)>, crate::store::StoreError>;

    /// Write every one of `writes` or none; `Ok(false)` when an item no longer holds what was
    /// read (another receiver learned first: read again).
    async fn write_contacts(
        &self,
        provider: crate::Provider,
        instance: &str,
        writes: &[ContactWrite],
    ) -> Result<bool, crate::store::StoreError>;
}

/// The port.
#[async_trait]
pub trait EndpointRegistry: Send + Sync {
    /// The identity map kept with the endpoints ([`ContactBook`]); `None` for a registry without
    /// one (a test double): chats are then keyed by their ids as sent.
    fn contact_book(&self) -> Option<&dyn ContactBook> {
        None
    }

    /// The endpoint for a URL token, if any (shared: a cache hands out the same copy).
    async fn lookup(&self, token: &str) -> Result<Option<Arc<Endpoint>>, RegistryError>;

    /// Whether `tenant` owns `instance` of `provider`, binding it to `tenant` when no one does
    /// yet (the endpoint's first authentic delivery): an instance belongs to one tenant of its
    /// provider.
    async fn claim(
        &self,
        provider: crate::Provider,
        instance: &str,
        tenant: &str,
        endpoint_id: &str,
    ) -> Result<Claim, RegistryError>;
}

/// The endpoints table.
#[derive(Clone)]
pub struct DynamoRegistry {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
    /// Seals signing secrets before they are written, opens them when an endpoint is looked up.
    keyring: Option<Arc<dyn Keyring>>,
}

impl DynamoRegistry {
    /// An adapter for `table` (without a keyring: endpoints with signing secrets can be neither
    /// written nor used; see [`DynamoRegistry::with_keyring`]).
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoRegistry {
            client,
            table: table.into(),
            keyring: None,
        }
    }

    /// The same registry through another client (one that counts its requests, for `make cost`).
    pub fn with_client(mut self, client: aws_sdk_dynamodb::Client) -> Self {
        self.client = client;
        self
    }

    /// Seal signing secrets with `keyring` when writing, open them with it in [`lookup`].
    ///
    /// [`lookup`]: EndpointRegistry::lookup
    pub fn with_keyring(mut self, keyring: Arc<dyn Keyring>) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// `endpoint` with every signing secret sealed (what is written).
    async fn sealed(&self, endpoint: &Endpoint) -> Result<Endpoint, RegistryError> {
        let mut endpoint = endpoint.clone();
        if !endpoint.auth.unsealed().is_empty() {
            let keyring = self.keyring.as_deref().ok_or(KeyringError::NoKey)?;
            keyring::seal_auth(keyring, &endpoint.id, &mut endpoint.auth).await?;
        }
        Ok(endpoint)
    }

    /// Store a new endpoint under its token's hash (and its version record, version 1).
    pub async fn create(&self, token: &str, endpoint: &Endpoint) -> Result<(), RegistryError> {
        let endpoint = self.sealed(endpoint).await?;
        let now = chrono::Utc::now().timestamp_millis();
        self.transact(
            &endpoint.id,
            vec![
                self.version_step(&endpoint, 0)?,
                self.put_item(&token_key(token), &endpoint, "attribute_not_exists(pk)", now)?,
            ],
        )
        .await
    }

    /// The version of endpoint `id`: how many changes were recorded (0: none, an endpoint
    /// stored before versions). Read it before the endpoint, and give it to
    /// [`DynamoRegistry::update_if`].
    pub async fn version_of(&self, id: &str) -> Result<Version, RegistryError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(version_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| RegistryError::Unavailable(e.into()))?;
        Ok(out
            .item()
            .and_then(|i| i.get("version"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }

    /// The windows of endpoint `id` (turns, silence), from its version record: the defaults
    /// when it has none (an endpoint written before timings, or deleted since).
    pub async fn timing_of(&self, id: &str) -> Result<crate::endpoint::Timing, RegistryError> {
        self.version_setting(id, "timing").await
    }

    /// Which media files endpoint `id` archives, from its version record: all when it has
    /// none.
    pub async fn media_of(&self, id: &str) -> Result<crate::endpoint::MediaSwitch, RegistryError> {
        self.version_setting(id, "media").await
    }

    /// A setting kept as JSON in attribute `name` of endpoint `id`'s version record (what the
    /// functions other than the receivers read by id: one item, never a sealed key); its
    /// default when the record has none.
    async fn version_setting<T: serde::de::DeserializeOwned + Default>(
        &self,
        id: &str,
        name: &str,
    ) -> Result<T, RegistryError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(version_key(id)))
            .send()
            .await
            .map_err(|e| RegistryError::Unavailable(e.into()))?;
        match out.item().and_then(|i| i.get(name)).and_then(|v| v.as_s().ok()) {
            Some(json) => serde_json::from_str(json).map_err(|e| RegistryError::Corrupt(e.into())),
            None => Ok(T::default()),
        }
    }

    /// The endpoint with this id and the version it was read at (for
    /// [`DynamoRegistry::update_if`]: a read-modify-write that loses no concurrent change).
    pub async fn find_versioned(&self, id: &str) -> Result<(Endpoint, Version), RegistryError> {
        // The version first: a change landing between the two reads moves it, and the update
        // that follows is refused rather than undoing that change.
        let version = self.version_of(id).await?;
        let (_, endpoint) = self.find_by_id(id).await?;
        Ok((endpoint, version))
    }

    /// Replace an endpoint (found by id) under every URL token it has, at the version read now.
    pub async fn update(&self, endpoint: &Endpoint) -> Result<(), RegistryError> {
        let version = self.version_of(&endpoint.id).await?;
        self.update_if(endpoint, version).await
    }

    /// Replace an endpoint under every URL token it has, in one transaction, if its version is
    /// still `seen` ([`RegistryError::Conflict`] otherwise: something changed it since it was
    /// read; read it again).
    pub async fn update_if(&self, endpoint: &Endpoint, seen: Version) -> Result<(), RegistryError> {
        let items = self.items_of(&endpoint.id).await?;
        if items.is_empty() {
            return Err(RegistryError::NotFound(endpoint.id.clone()));
        }
        let endpoint = self.sealed(endpoint).await?;
        let mut writes = vec![self.version_step(&endpoint, seen)?];
        for (key, added_at) in items {
            writes.push(self.put_item(&key, &endpoint, "attribute_exists(pk)", added_at)?);
        }
        self.transact(&endpoint.id, writes).await
    }

    /// Give an existing endpoint one more URL token: the old ones keep working until
    /// [`DynamoRegistry::retire_tokens`] removes them (a rotation without a gap).
    pub async fn add_token(&self, id: &str, token: &str) -> Result<Endpoint, RegistryError> {
        let (endpoint, version) = self.find_versioned(id).await?;
        let endpoint = self.sealed(&endpoint).await?;
        let added_at = chrono::Utc::now().timestamp_millis();
        // With the version step: an update that read the tokens before this one was added is
        // refused, so no token is left behind with an older copy of the endpoint.
        self.transact(
            id,
            vec![
                self.version_step(&endpoint, version)?,
                self.put_item(&token_key(token), &endpoint, "attribute_not_exists(pk)", added_at)?,
            ],
        )
        .await?;
        Ok(endpoint)
    }

    /// The version record's step from `seen` to `seen + 1`, conditional on `seen`. The record
    /// also keeps the endpoint's [`Timing`](crate::endpoint::Timing) (no secret), so the `timers`
    /// function reads it by id in one `GetItem` ([`DynamoRegistry::timing_of`]).
    fn version_step(&self, endpoint: &Endpoint, seen: Version) -> Result<TransactWriteItem, RegistryError> {
        let id = endpoint.id.as_str();
        let timing = serde_json::to_string(&endpoint.timing).map_err(|e| RegistryError::Corrupt(e.into()))?;
        let media = serde_json::to_string(&endpoint.media).map_err(|e| RegistryError::Corrupt(e.into()))?;
        let condition = if seen == 0 {
            "attribute_not_exists(version)"
        } else {
            "version = :seen"
        };
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(version_key(id)))
            .update_expression("SET version = :next, timing = :timing, media = :media")
            .condition_expression(condition)
            .expression_attribute_values(":next", AttributeValue::N((seen + 1).to_string()))
            .expression_attribute_values(":timing", AttributeValue::S(timing))
            .expression_attribute_values(":media", AttributeValue::S(media));
        if seen != 0 {
            update = update.expression_attribute_values(":seen", AttributeValue::N(seen.to_string()));
        }
        let update = update.build().map_err(|e| RegistryError::Corrupt(e.into()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// One endpoint item (a URL token's) as a transaction's put.
    fn put_item(
        &self,
        key: &str,
        endpoint: &Endpoint,
        condition: &str,
        token_added_at: i64,
    ) -> Result<TransactWriteItem, RegistryError> {
        let json = serde_json::to_string(endpoint).map_err(|e| RegistryError::Corrupt(e.into()))?;
        let put = Put::builder()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(key.to_owned()))
            .item("endpoint_id", AttributeValue::S(endpoint.id.clone()))
            .item("endpoint", AttributeValue::S(json))
            .item("token_added_at", AttributeValue::N(token_added_at.to_string()))
            .condition_expression(condition)
            .build()
            .map_err(|e| RegistryError::Corrupt(e.into()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Write `items` of endpoint `id` all or none. DynamoDB takes at most
    /// [`MAX_TRANSACTION_ITEMS`] actions a transaction: an endpoint with more URL tokens is
    /// refused (retire old tokens first). A failed condition is a [`RegistryError::Conflict`].
    async fn transact(&self, id: &str, items: Vec<TransactWriteItem>) -> Result<(), RegistryError> {
        if items.len() > MAX_TRANSACTION_ITEMS {
            return Err(RegistryError::TooManyTokens {
                id: id.to_owned(),
                tokens: items.len() - 1,
            });
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(|e| {
                let conflict = e
                    .as_service_error()
                    .and_then(|se| match se {
                        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(t) => Some(t),
                        _ => None,
                    })
                    .is_some_and(|t| {
                        t.cancellation_reasons()
                            .iter()
                            .any(|r| r.code() == Some("ConditionalCheckFailed"))
                    });
                if conflict {
                    RegistryError::Conflict(id.to_owned())
                } else {
                    RegistryError::Unavailable(e.into())
                }
            })?;
        Ok(())
    }

    /// Remove every URL token of endpoint `id` but the newest; how many were removed.
    pub async fn retire_tokens(&self, id: &str) -> Result<usize, RegistryError> {
        let mut items = self.items_of(id).await?;
        items.sort_by_key(|(_, added_at)| *added_at);
        items.pop();
        for (key, _) in &items {
            self.delete_key(key).await?;
        }
        Ok(items.len())
    }

    /// Delete endpoint `id` under every token; how many tokens it had.
    pub async fn delete(&self, id: &str) -> Result<usize, RegistryError> {
        let items = self.items_of(id).await?;
        if items.is_empty() {
            return Err(RegistryError::NotFound(id.to_owned()));
        }
        for (key, _) in &items {
            self.delete_key(key).await?;
        }
        self.delete_key(&version_key(id)).await?;
        Ok(items.len())
    }

    async fn delete_key(&self, key: &str) -> Result<(), RegistryError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_owned()))
            .send()
            .await
            .map_err(|e| RegistryError::Unavailable(e.into()))?;
        Ok(())
    }

    /// The table keys of endpoint `id` (one per URL token) with when each token was added.
    async fn items_of(&self, id: &str) -> Result<Vec<(String, i64)>, RegistryError> {
        Ok(self
            .scan(Some(id))
            .await?
            .iter()
            .map(|item| {
                let key = item.get("pk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                let added_at = item
                    .get("token_added_at")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                (key, added_at)
            })
            .collect())
    }

    /// Every item of one kind: endpoints (`EP#`, one per URL token) or instance records (`IN#`).
    async fn scan_kind(&self, prefix: &str) -> Result<Vec<HashMap<String, AttributeValue>>, RegistryError> {
        let mut items = self.scan(None).await?;
        items.retain(|i| {
            i.get("pk")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|pk| pk.starts_with(prefix))
        });
        Ok(items)
    }

    /// Every item of the table (of endpoint `id` only, when given), all pages.
    async fn scan(&self, id: Option<&str>) -> Result<Vec<HashMap<String, AttributeValue>>, RegistryError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            // Consistent: a `delete` or `disable` run right after `rotate-token` must see the new
            // token's item, or that URL would stay live.
            let mut request = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start);
            if let Some(id) = id {
                request = request
                    .filter_expression("endpoint_id = :id")
                    .expression_attribute_values(":id", AttributeValue::S(id.to_owned()));
            }
            let page = request.send().await.map_err(|e| RegistryError::Unavailable(e.into()))?;
            out.extend(page.items().iter().cloned());
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        Ok(out)
    }

    /// Every endpoint, once per URL token (a scan: the table holds one item per token, and one
    /// per bound instance).
    /// Items that do not read as an endpoint are left out (see [`DynamoRegistry::unreadable`]):
    /// one damaged record never hides the others.
    pub async fn list(&self) -> Result<Vec<(String, Endpoint)>, RegistryError> {
        Ok(self.scan_endpoints().await?.0)
    }

    /// The keys of endpoint items that do not read as an endpoint (they answer 503 until fixed
    /// or deleted).
    pub async fn unreadable(&self) -> Result<Vec<String>, RegistryError> {
        Ok(self.scan_endpoints().await?.1)
    }

    /// Every endpoint item: those that read (oldest first), and the keys of those that do not.
    async fn scan_endpoints(&self) -> Result<(Vec<(String, Endpoint)>, Vec<String>), RegistryError> {
        let (mut out, mut unreadable) = (Vec::new(), Vec::new());
        for item in self.scan_kind(crate::store::keys::ENDPOINT_PREFIX).await? {
            match decode(&item) {
                Ok(read) => out.push(read),
                Err(_) => unreadable.push(item.get("pk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()),
            }
        }
        out.sort_by(|a, b| a.1.created_at.cmp(&b.1.created_at));
        Ok((out, unreadable))
    }

    /// Every endpoint once, with how many URL tokens it has.
    pub async fn list_endpoints(&self) -> Result<Vec<(Endpoint, usize)>, RegistryError> {
        let mut out: Vec<(Endpoint, usize)> = Vec::new();
        for (_, e) in self.list().await? {
            match out.iter_mut().find(|(seen, _)| seen.id == e.id) {
                Some((_, n)) => *n += 1,
                None => out.push((e, 1)),
            }
        }
        Ok(out)
    }

    /// The table key and endpoint with this id.
    pub async fn find_by_id(&self, id: &str) -> Result<(String, Endpoint), RegistryError> {
        self.list()
            .await?
            .into_iter()
            .find(|(_, e)| e.id == id)
            .ok_or_else(|| RegistryError::NotFound(id.to_owned()))
    }

    /// Bind `instance` of `provider` to `tenant` (`wahooks endpoint create --instance`, `bind`):
    /// refused when another tenant owns it.
    pub async fn bind(
        &self,
        provider: crate::Provider,
        instance: &str,
        tenant: &str,
        endpoint_id: &str,
    ) -> Result<Claim, RegistryError> {
        self.claim(provider, instance, tenant, endpoint_id).await
    }

    /// Release `instance` of `provider` from `tenant` (a later first delivery binds it again).
    pub async fn unbind(&self, provider: crate::Provider, instance: &str, tenant: &str) -> Result<bool, RegistryError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(instance_key(provider, instance)))
            .condition_expression("tenant = :t")
            .expression_attribute_values(":t", AttributeValue::S(tenant.to_owned()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(RegistryError::Unavailable(e.into())),
        }
    }

    /// Every instance bound to `tenant`, as (provider, instance), sorted.
    pub async fn instances_of(&self, tenant: &str) -> Result<Vec<(String, String)>, RegistryError> {
        let mut out: Vec<(String, String)> = self
            .scan_kind(crate::store::keys::INSTANCE_PREFIX)
            .await?
            .iter()
            .filter(|i| i.get("tenant").and_then(|v| v.as_s().ok()).map(String::as_str) == Some(tenant))
            .map(|i| {
                let s = |k: &str| i.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                (s("provider"), s("instance"))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Open the connection now.
    pub async fn warm_up(&self) {
        // A GetItem of a key no endpoint has: the one read a receiver's role allows.
        let _ = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S("EP#warm-up".into()))
            .send()
            .await;
    }
}

fn decode(item: &HashMap<String, AttributeValue>) -> Result<(String, Endpoint), RegistryError> {
    let key = item.get("pk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
    let json = item
        .get("endpoint")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| RegistryError::Corrupt("the item has no `endpoint` attribute".into()))?;
    let endpoint = serde_json::from_str(json).map_err(|e| RegistryError::Corrupt(e.into()))?;
    Ok((key, endpoint))
}

#[async_trait]
impl EndpointRegistry for DynamoRegistry {
    fn contact_book(&self) -> Option<&dyn ContactBook> {
        Some(self)
    }

    async fn lookup(&self, token: &str) -> Result<Option<Arc<Endpoint>>, RegistryError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(token_key(token)))
            .send()
            .await
            .map_err(|e| RegistryError::Unavailable(e.into()))?;
        let Some((_, mut endpoint)) = out.item().map(decode).transpose()? else {
            return Ok(None);
        };
        // Signing secrets are stored sealed: opened here, once per container and record (the
        // keyring keeps the data keys it opened).
        if !endpoint.auth.locked().is_empty() {
            let keyring = self.keyring.as_deref().ok_or(KeyringError::Unavailable(
                "the endpoint's signing secrets are sealed and this function has no keyring".into(),
            ))?;
            keyring::open_auth(keyring, &endpoint.id, &mut endpoint.auth).await?;
        }
        Ok(Some(Arc::new(endpoint)))
    }

    async fn claim(
        &self,
        provider: crate::Provider,
        instance: &str,
        tenant: &str,
        endpoint_id: &str,
    ) -> Result<Claim, RegistryError> {
        let key = instance_key(provider, instance);
        // Bound already (to this tenant or another): one read.
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| RegistryError::Unavailable(e.into()))?;
        if let Some(owner) = out.item().and_then(|i| i.get("tenant")).and_then(|v| v.as_s().ok()) {
            return Ok(owned_by(owner, tenant));
        }
        // Not bound: this tenant takes it, unless another tenant's delivery got there first.
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(key.clone()))
            .item("tenant", AttributeValue::S(tenant.to_owned()))
            .item("provider", AttributeValue::S(provider.as_str().to_owned()))
            .item("instance", AttributeValue::S(instance.to_owned()))
            .item("bound_by", AttributeValue::S(endpoint_id.to_owned()))
            .item("bound_at", AttributeValue::S(chrono::Utc::now().to_rfc3339()))
            .condition_expression("attribute_not_exists(pk) OR tenant = :t")
            .expression_attribute_values(":t", AttributeValue::S(tenant.to_owned()))
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match put {
            Ok(_) => Ok(Claim::Owned),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c)) => {
                    let owner = c
                        .item()
                        .and_then(|i| i.get("tenant"))
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default();
                    Ok(owned_by(&owner, tenant))
                }
                _ => Err(RegistryError::Unavailable(e.into())),
            },
        }
    }
}

fn owned_by(owner: &str, tenant: &str) -> Claim {
    if owner == tenant {
        Claim::Owned
    } else {
        Claim::Foreign(owner.to_owned())
    }
}

/// When a token was looked up, and what was found (a miss is cached too).
type CacheEntry = (Instant, Option<Arc<Endpoint>>);

/// A per-container cache in front of a registry (hits and misses both cached for [`CACHE_TTL`]).
pub struct CachedRegistry<R> {
    inner: R,
    ttl: Duration,
    entries: Mutex<HashMap<String, CacheEntry>>,
    claims: Mutex<HashMap<(String, String), (Instant, Claim)>>,
}

impl<R: EndpointRegistry> CachedRegistry<R> {
    /// Cache `inner` for `ttl`.
    pub fn new(inner: R, ttl: Duration) -> Self {
        CachedRegistry {
            inner,
            ttl,
            entries: Mutex::new(HashMap::new()),
            claims: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl<R: EndpointRegistry> EndpointRegistry for CachedRegistry<R> {
    fn contact_book(&self) -> Option<&dyn ContactBook> {
        self.inner.contact_book()
    }

    async fn lookup(&self, token: &str) -> Result<Option<Arc<Endpoint>>, RegistryError> {
        let key = token_key(token);
        if let Some((at, hit)) = self.entries.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            if at.elapsed() < self.ttl {
                return Ok(hit.clone());
            }
        }
        let fresh = self.inner.lookup(token).await?;
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // Bound the cache: random tokens from scanners must not grow it without limit.
        if entries.len() > 10_000 {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), fresh.clone()));
        Ok(fresh)
    }

    async fn claim(
        &self,
        provider: crate::Provider,
        instance: &str,
        tenant: &str,
        endpoint_id: &str,
    ) -> Result<Claim, RegistryError> {
        // An instance's owner never changes while it is bound (unbinding is an operator's act):
        // a warm container asks DynamoDB once per instance and TTL.
        let key = (instance_key(provider, instance), tenant.to_owned());
        if let Some((at, claim)) = self.claims.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            if at.elapsed() < self.ttl {
                return Ok(claim.clone());
            }
        }
        let fresh = self.inner.claim(provider, instance, tenant, endpoint_id).await?;
        let mut claims = self.claims.lock().unwrap_or_else(|p| p.into_inner());
        if claims.len() > 10_000 {
            claims.clear();
        }
        claims.insert(key, (Instant::now(), fresh.clone()));
        Ok(fresh)
    }
}

/// An in-memory registry for unit tests.
#[derive(Default, Clone)]
pub struct MemoryRegistry {
    endpoints: Arc<Mutex<HashMap<String, Endpoint>>>,
    owners: Arc<Mutex<HashMap<String, String>>>,
    /// Alias items (the identity map) by key: the contact's JSON and the version.
    pub(crate) contacts: Arc<Mutex<HashMap<String, (String, u64)>>>,
}

impl MemoryRegistry {
    /// Add an endpoint under a token.
    pub fn insert(&self, token: &str, endpoint: Endpoint) {
        self.endpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token_key(token), endpoint);
    }
}

#[async_trait]
impl EndpointRegistry for MemoryRegistry {
    fn contact_book(&self) -> Option<&dyn ContactBook> {
        Some(self)
    }

    async fn lookup(&self, token: &str) -> Result<Option<Arc<Endpoint>>, RegistryError> {
        Ok(self
            .endpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&token_key(token))
            .cloned()
            .map(Arc::new))
    }

    async fn claim(
        &self,
        provider: crate::Provider,
        instance: &str,
        tenant: &str,
        _endpoint_id: &str,
    ) -> Result<Claim, RegistryError> {
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        let owner = owners
            .entry(instance_key(provider, instance))
            .or_insert_with(|| tenant.to_owned());
        Ok(owned_by(owner, tenant))
    }
}

/// What endpoints' version records say (their windows, their media switch), kept per container
/// for [`SettingsCache::TTL`], as the receivers keep endpoints: a change reaches the functions
/// that read it by id within that time.
pub struct SettingsCache<T> {
    cache: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, T)>>,
}

impl<T: Clone> Default for SettingsCache<T> {
    fn default() -> Self {
        SettingsCache {
            cache: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }
}

impl<T: Clone> SettingsCache<T> {
    /// How long a read is kept.
    pub const TTL: Duration = Duration::from_secs(30);

    /// Endpoint `id`'s value, from the cache or else `read` (then kept).
    pub async fn get<F, Fut>(&self, id: &str, read: F) -> Result<T, RegistryError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, RegistryError>>,
    {
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, value)) = cache.get(id) {
                if at.elapsed() < Self::TTL {
                    return Ok(value.clone());
                }
            }
        }
        let value = read().await?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(id.to_owned(), (std::time::Instant::now(), value.clone()));
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_url_safe_and_hashed_for_storage() {
        let t = new_token();
        assert!(plausible_token(&t), "{t}");
        assert_eq!(t.len(), 43);
        assert!(!token_key(&t).contains(&t));
        assert!(!plausible_token("../../etc/passwd"));
        assert!(!plausible_token("short"));
    }
}
