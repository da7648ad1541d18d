//! The `media-archiver` function's handler: a note in, the file fetched into S3 once, the
//! archived or failed event stored, or the note sent back to the queue for later.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use base64::Engine;

use super::fetch::SafeFetcher;
use super::{retry_delay_seconds, sha_matches, sink, source_of, FetchError, MediaNote, Source, MAX_ATTEMPTS};
use crate::event::{CloudEvent, EventData, EventType, MediaFile, Provider};
use crate::store::EventStore;

/// The port that gives a fetch its credentials: an endpoint's media token (Meta's access token
/// as a bearer, WAHA's `X-Api-Key`).
#[async_trait::async_trait]
pub trait MediaCredentials: Send + Sync {
    /// The headers to send to `provider` for endpoint `endpoint`'s media.
    async fn headers(&self, endpoint: &str, provider: Provider) -> Result<Vec<(&'static str, String)>, String>;
}

/// The port that says which of an endpoint's files are archived.
#[async_trait::async_trait]
pub trait MediaSwitches: Send + Sync {
    /// Endpoint `endpoint`'s switch.
    async fn switch(&self, endpoint: &str) -> Result<crate::endpoint::MediaSwitch, String>;
}

/// Every file of every endpoint (the tests', and a stack without an endpoints table).
pub struct ArchiveAll;

#[async_trait::async_trait]
impl MediaSwitches for ArchiveAll {
    async fn switch(&self, _: &str) -> Result<crate::endpoint::MediaSwitch, String> {
        Ok(Default::default())
    }
}

/// Switches read from the endpoints' version records, cached per container.
pub struct CachedSwitches {
    registry: crate::registry::DynamoRegistry,
    cache: crate::registry::SettingsCache<crate::endpoint::MediaSwitch>,
}

impl CachedSwitches {
    /// Switches read through `registry`.
    pub fn new(registry: crate::registry::DynamoRegistry) -> Self {
        CachedSwitches {
            registry,
            cache: Default::default(),
        }
    }
}

#[async_trait::async_trait]
impl MediaSwitches for CachedSwitches {
    async fn switch(&self, endpoint: &str) -> Result<crate::endpoint::MediaSwitch, String> {
        self.cache
            .get(endpoint, || self.registry.media_of(endpoint))
            .await
            .map_err(|e| crate::error_chain(&e))
    }
}

/// The endpoint's media token, opened with the keyring (cached per container by the keyring):
/// Meta's as `Authorization: Bearer`, WAHA's as `X-Api-Key`; none for the providers whose links
/// need no credentials, or an endpoint without a token.
pub struct EndpointTokens {
    switches: Arc<dyn MediaSwitches>,
    keyring: Arc<dyn crate::keyring::Keyring>,
}

impl EndpointTokens {
    /// Tokens read with `switches` (the version record), opened with `keyring`.
    pub fn new(switches: Arc<dyn MediaSwitches>, keyring: Arc<dyn crate::keyring::Keyring>) -> Self {
        EndpointTokens { switches, keyring }
    }
}

#[async_trait::async_trait]
impl MediaCredentials for EndpointTokens {
    async fn headers(&self, endpoint: &str, provider: Provider) -> Result<Vec<(&'static str, String)>, String> {
        let name = match provider {
            Provider::Meta => "authorization",
            Provider::Waha => "x-api-key",
            _ => return Ok(Vec::new()),
        };
        let Some(sealed) = self.switches.switch(endpoint).await?.token else {
            return Ok(Vec::new());
        };
        let token = crate::keyring::open(self.keyring.as_ref(), endpoint, &sealed)
            .await
            .map_err(|e| crate::error_chain(&e))?;
        let value = match provider {
            Provider::Meta => format!("Bearer {}", token.expose()),
            _ => token.expose().to_owned(),
        };
        Ok(vec![(name, value)])
    }
}

/// No credentials (the tests', a stack without a secrets key).
pub struct NoCredentials;

#[async_trait::async_trait]
impl MediaCredentials for NoCredentials {
    async fn headers(&self, _: &str, _: Provider) -> Result<Vec<(&'static str, String)>, String> {
        Ok(Vec::new())
    }
}

/// The `media-archiver` function.
#[derive(Clone)]
pub struct Archiver {
    dynamo: aws_sdk_dynamodb::Client,
    table: String,
    store: Arc<dyn EventStore>,
    s3: aws_sdk_s3::Client,
    bucket: String,
    fetcher: SafeFetcher,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    graph_url: String,
    credentials: Arc<dyn MediaCredentials>,
    switches: Arc<dyn MediaSwitches>,
}

/// What archiving one note came to.
#[derive(Debug)]
pub enum Archived {
    /// The event made (archived or failed).
    Made(Box<CloudEvent>),
    /// Sent back to the queue to be tried again later.
    Retrying(u32),
    /// Nothing: the endpoint does not archive this kind of file (`wahooks endpoint media`).
    Skipped,
}

impl Archiver {
    /// An archiver writing to `bucket`, storing its events through `store`, its notes sent back
    /// to the queue at `queue_url`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dynamo: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        store: Arc<dyn EventStore>,
        s3: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        fetcher: SafeFetcher,
        sqs: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
    ) -> Self {
        Archiver {
            dynamo,
            table: table.into(),
            store,
            s3,
            bucket: bucket.into(),
            fetcher,
            sqs,
            queue_url: queue_url.into(),
            graph_url: super::DEFAULT_GRAPH_URL.to_owned(),
            credentials: Arc::new(NoCredentials),
            switches: Arc::new(ArchiveAll),
        }
    }

    /// Archive only what each endpoint's switch asks for.
    pub fn with_switches(mut self, switches: Arc<dyn MediaSwitches>) -> Self {
        self.switches = switches;
        self
    }

    /// Look Meta's media ids up at `url` (the Graph API, or a stand-in).
    pub fn with_graph_url(mut self, url: impl Into<String>) -> Self {
        self.graph_url = url.into().trim_end_matches('/').to_owned();
        self
    }

    /// Fetch with these credentials.
    pub fn with_credentials(mut self, credentials: Arc<dyn MediaCredentials>) -> Self {
        self.credentials = credentials;
        self
    }

    /// Handle one SQS batch: a note that could not be handled (the table or the queue failed) is
    /// reported, to come back.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for record in event.records {
            let body = record.body.as_deref().unwrap_or_default();
            let done = match serde_json::from_str::<MediaNote>(body) {
                Ok(note) => self.archive(&note).await.map(|_| ()),
                Err(e) => Err(format!("not a media note: {e}")),
            };
            if let Err(e) = done {
                tracing::warn!(message_id = record.message_id.as_deref().unwrap_or("-"), error = %e, "media note not handled; it will come back");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = record.message_id.unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    /// Archive one message's file; `Err` only when the note must come back as is (the table
    /// unreadable, the event not storable, the queue unreachable).
    pub async fn archive(&self, note: &MediaNote) -> Result<Archived, String> {
        let event = self.read_event(note).await?;
        let kind = event.data.content.as_ref().map(|c| c.kind);
        let switch = self.switches.switch(&event.endpoint).await?;
        if !kind.is_some_and(|k| switch.archives(k)) {
            return Ok(Archived::Skipped);
        }
        let key = format!("media/{}", note.event_id);
        let attempts = note.attempt + 1;
        let result = match sink::existing(&self.s3, &self.bucket, &key).await {
            Ok(Some(kept)) => Ok((kept.written, kept.content_type)),
            Ok(None) => self.fetch_into(&event, &key).await,
            Err(e) => Err(e),
        };
        let made = match result {
            Ok((written, content_type)) => archived_event(&event, &self.bucket, &key, &written, content_type, attempts),
            Err(FetchError::Transient(detail)) if attempts < MAX_ATTEMPTS => {
                let next = MediaNote {
                    attempt: attempts,
                    ..note.clone()
                };
                let delay = retry_delay_seconds(attempts);
                self.sqs
                    .send_message()
                    .queue_url(&self.queue_url)
                    .message_body(next.to_json())
                    .delay_seconds(delay)
                    .send()
                    .await
                    .map_err(|e| crate::error_chain(&e))?;
                tracing::warn!(event_id = %note.event_id, attempt = attempts, delay, %detail, "media not fetched; tried again later");
                return Ok(Archived::Retrying(attempts));
            }
            Err(FetchError::Transient(detail)) => failed_event(&event, "unavailable", &detail, attempts),
            Err(FetchError::Permanent { reason, detail }) => failed_event(&event, reason, &detail, attempts),
        };
        self.store
            .put_if_absent(std::slice::from_ref(&made))
            .await
            .map_err(|e| crate::error_chain(&e))?;
        if made.event_type == EventType::MediaFailed {
            tracing::warn!(event_id = %note.event_id, reason = ?made.data.media.as_ref().and_then(|m| m.reason.clone()), "media not archived");
            crate::metrics::emit_metric(|| {
                crate::metrics::emf_count(
                    "MediaFailed",
                    &[("Provider", event.provider.as_str())],
                    chrono::Utc::now().timestamp_millis(),
                )
            });
        }
        Ok(Archived::Made(Box::new(made)))
    }

    /// The message's event, its body resolved (Evolution's inline file is in it).
    async fn read_event(&self, note: &MediaNote) -> Result<CloudEvent, String> {
        let out = self
            .dynamo
            .get_item()
            .table_name(&self.table)
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(note.pk.clone()))
            .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(note.sk.clone()))
            .send()
            .await
            .map_err(|e| crate::error_chain(&e))?;
        let item = out.item().ok_or_else(|| format!("no item {} {}", note.pk, note.sk))?;
        let (_, mut event) = crate::store::read_sdk_item(item, &self.s3)
            .await
            .map_err(|e| crate::error_chain(&e))?;
        if event.data.raw.is_none() {
            if let Some(pointer) = event.data.raw_pointer.clone() {
                event.data.raw = Some(self.read_raw(&pointer).await?);
            }
        }
        Ok(event)
    }

    /// A body kept apart: a body item of the table, or an object in the bucket.
    async fn read_raw(&self, p: &crate::event::RawPointer) -> Result<Arc<serde_json::value::RawValue>, String> {
        let text = if let (Some(pk), Some(sk)) = (&p.pk, &p.sk) {
            let out = self
                .dynamo
                .get_item()
                .table_name(p.table.as_deref().unwrap_or(&self.table))
                .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.clone()))
                .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(sk.clone()))
                .send()
                .await
                .map_err(|e| crate::error_chain(&e))?;
            let body = out
                .item()
                .and_then(|i| i.get("body"))
                .and_then(|b| b.as_b().ok())
                .ok_or_else(|| format!("no body item {pk}"))?;
            crate::store::decompress(body.as_ref()).map_err(|e| e.to_string())?
        } else if let (Some(bucket), Some(key)) = (&p.bucket, &p.key) {
            let out = self
                .s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| crate::error_chain(&e))?;
            out.body
                .collect()
                .await
                .map_err(|e| crate::error_chain(&e))?
                .into_bytes()
                .to_vec()
        } else {
            return Err("a raw pointer naming nothing".into());
        };
        let text = String::from_utf8(text).map_err(|e| e.to_string())?;
        serde_json::value::RawValue::from_string(text)
            .map(Arc::from)
            .map_err(|e| e.to_string())
    }

    /// Fetch the file into `key`: what was written and its content type.
    async fn fetch_into(&self, event: &CloudEvent, key: &str) -> Result<(sink::Written, Option<String>), FetchError> {
        let declared = event.data.content.as_ref().and_then(|c| c.mime_type.clone());
        let headers = self
            .credentials
            .headers(&event.endpoint, event.provider)
            .await
            .map_err(FetchError::Transient)?;
        let (url, expected_sha) = match source_of(event)? {
            Source::Inline(b64) => {
                let content_type = declared.unwrap_or_else(|| "application/octet-stream".into());
                return Ok((self.keep_inline(&b64, key, &content_type).await?, Some(content_type)));
            }
            Source::Url(url) => (url, None),
            Source::MetaId(id) => self.look_up_meta(event, &id, &headers).await?,
        };
        let mut fetching = self.fetcher.get(&url, &headers).await?;
        let content_type = fetching
            .content_type
            .clone()
            .or(declared)
            .unwrap_or_else(|| "application/octet-stream".into());
        let mut upload = sink::Upload::new(&self.s3, &self.bucket, key, &content_type);
        let streamed: Result<(), FetchError> = async {
            while let Some(chunk) = fetching.chunk().await? {
                upload.write(&chunk).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = streamed {
            upload.abort().await;
            return Err(e);
        }
        let written = upload.finish().await?;
        if let Some(expected) = expected_sha {
            if !sha_matches(&expected, &written.sha256) {
                let _ = self.s3.delete_object().bucket(&self.bucket).key(key).send().await;
                return Err(FetchError::permanent(
                    "checksum",
                    format!("the file's SHA-256 is {}, Meta said {expected}", written.sha256),
                ));
            }
        }
        Ok((written, Some(content_type)))
    }
}

impl Archiver {
    /// An inline file (base64 in the body): decoded, within the size cap, uploaded to `key`.
    async fn keep_inline(&self, b64: &str, key: &str, content_type: &str) -> Result<sink::Written, FetchError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| FetchError::permanent("unreadable", format!("the inline file is not base64: {e}")))?;
        if bytes.len() as u64 > self.fetcher.policy().max_bytes {
            return Err(FetchError::permanent("too_large", format!("{} bytes", bytes.len())));
        }
        let mut upload = sink::Upload::new(&self.s3, &self.bucket, key, content_type);
        upload.write(&bytes).await?;
        upload.finish().await
    }

    /// Meta's media `id` looked up on the Graph API with the endpoint's bearer: the file's URL
    /// and the SHA-256 to check it against (the lookup's, else the webhook's).
    async fn look_up_meta(
        &self,
        event: &CloudEvent,
        id: &str,
        headers: &[(&'static str, String)],
    ) -> Result<(String, Option<String>), FetchError> {
        if !headers.iter().any(|(h, _)| *h == "authorization") {
            return Err(FetchError::permanent(
                "not_configured",
                "the endpoint has no Meta access token to look the media id up with",
            ));
        }
        let lookup = self
            .fetcher
            .get_json(&format!("{}/{id}", self.graph_url), headers)
            .await?;
        let url = lookup["url"]
            .as_str()
            .ok_or_else(|| FetchError::permanent("unreadable", format!("the media lookup has no url: {lookup}")))?
            .to_owned();
        let sha = lookup["sha256"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| event.data.content.as_ref().and_then(|c| c.sha256.clone()));
        Ok((url, sha))
    }
}

fn media_event(event: &CloudEvent, event_type: EventType, media: MediaFile) -> CloudEvent {
    let id = crate::identity::event_id(
        event.provider,
        &event.instance,
        event_type,
        event.subject.as_ref().map(|_| event.chat_key()),
        &["media", &event.id],
    );
    let now = chrono::Utc::now();
    let data = EventData {
        message_id: event.data.message_id.clone(),
        chat: event.data.chat.clone(),
        media: Some(media),
        ..EventData::default()
    };
    CloudEvent::new(
        id,
        event.provider,
        &event.instance,
        event_type,
        event.subject.clone(),
        now,
        &event.endpoint,
        now,
        data,
    )
}

fn archived_event(
    event: &CloudEvent,
    bucket: &str,
    key: &str,
    written: &sink::Written,
    content_type: Option<String>,
    attempts: u32,
) -> CloudEvent {
    media_event(
        event,
        EventType::MediaArchived,
        MediaFile {
            event_id: event.id.clone(),
            message_id: event.data.message_id.clone(),
            bucket: Some(bucket.to_owned()),
            key: Some(key.to_owned()),
            bytes: Some(written.bytes),
            content_type,
            sha256: Some(written.sha256.clone()),
            reason: None,
            detail: None,
            attempts,
        },
    )
}

fn failed_event(event: &CloudEvent, reason: &str, detail: &str, attempts: u32) -> CloudEvent {
    media_event(
        event,
        EventType::MediaFailed,
        MediaFile {
            event_id: event.id.clone(),
            message_id: event.data.message_id.clone(),
            bucket: None,
            key: None,
            bytes: None,
            content_type: None,
            sha256: None,
            reason: Some(reason.to_owned()),
            detail: Some(detail.to_owned()),
            attempts,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::{MediaSwitch, Secret};

    struct Switch(MediaSwitch);

    #[async_trait::async_trait]
    impl MediaSwitches for Switch {
        async fn switch(&self, _: &str) -> Result<MediaSwitch, String> {
            Ok(self.0.clone())
        }
    }

    #[tokio::test]
    async fn an_endpoint_token_goes_to_meta_as_a_bearer_and_to_waha_as_its_api_key() {
        let keyring = Arc::new(crate::keyring::MemoryKeyring::default());
        let sealed = crate::keyring::seal(keyring.as_ref(), "ep_1", &Secret::new("tok"))
            .await
            .expect("sealed");
        let switch = MediaSwitch {
            token: Some(sealed),
            ..MediaSwitch::default()
        };
        let tokens = EndpointTokens::new(Arc::new(Switch(switch)), keyring.clone());
        assert_eq!(
            tokens.headers("ep_1", Provider::Meta).await.expect("meta"),
            vec![("authorization", "Bearer tok".to_owned())]
        );
        assert_eq!(
            tokens.headers("ep_1", Provider::Waha).await.expect("waha"),
            vec![("x-api-key", "tok".to_owned())]
        );
        assert!(
            tokens.headers("ep_1", Provider::Zapi).await.expect("zapi").is_empty(),
            "public links"
        );
        assert!(
            tokens.headers("ep_2", Provider::Meta).await.is_err(),
            "sealed for another endpoint"
        );
        let none = EndpointTokens::new(Arc::new(Switch(MediaSwitch::default())), keyring);
        assert!(none.headers("ep_1", Provider::Meta).await.expect("none").is_empty());
    }
}
