//! The media archiver: every stored message with a media file gets its file copied to S3 once,
//! before the provider's link dies, and a `whatsapp.media.archived` (or `.failed`, with why)
//! event in the message's chat. Why this design: docs/architecture.md ("Media").
//!
//! - The fanout sends the `media` queue (standard SQS) a [`MediaNote`] for each message event
//!   with a media kind: its id and where its item is. The `media-archiver` function reads the
//!   event back (its body through its pointer, for Evolution's inline base64), finds where the
//!   file comes from ([`source_of`]), fetches it under the [`fetch::FetchPolicy`] and streams it
//!   to the bucket ([`sink::Upload`]) as `media/<event id>`.
//! - Once: a note handled twice, a replay or a recovery finds the object already there and
//!   fetches nothing (it only stores the event again, a no-op); a provider's redelivery is one
//!   stored event and never reaches the archiver.
//! - Retries on their own clock: a transient failure (5xx, 429, a timeout, S3 unavailable) sends
//!   the note back to the queue with a growing delay (30 s, 2 min, 8 min, 15 min) and an attempt
//!   count, independently of everything else (a failed download never blocks another); after
//!   [`MAX_ATTEMPTS`], or at once for a permanent failure (the link expired, the file is too
//!   large, a host or an address not allowed, a checksum that does not match), the failed event.

pub mod fetch;
pub mod sink;

use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::event::{CloudEvent, ContentKind, EventData, EventType, MediaFile, Provider};
use crate::store::{keys, EventStore};
use fetch::{FetchError, SafeFetcher};

/// The content kinds whose messages carry a file.
pub const MEDIA_KINDS: [ContentKind; 6] = [
    ContentKind::Image,
    ContentKind::Audio,
    ContentKind::Video,
    ContentKind::Ptv,
    ContentKind::Document,
    ContentKind::Sticker,
];

/// Attempts before a transient failure becomes the failed event.
pub const MAX_ATTEMPTS: u32 = 5;

/// The default Graph API base URL (Meta's media lookup), `WAHOOKS_GRAPH_URL` to change it.
pub const DEFAULT_GRAPH_URL: &str = "https://graph.facebook.com/v21.0";

/// The hosts each provider serves media from, fetched by default (`WAHOOKS_MEDIA_HOSTS` adds
/// more: a self-hosted gateway's own host, its S3 or MinIO).
pub const DEFAULT_HOSTS: [&str; 5] = [
    // Z-API's temporary files.
    "backblazeb2.com",
    "z-api.io",
    // Meta: the Graph API and its lookaside CDN.
    "graph.facebook.com",
    "lookaside.fbsbx.com",
    "whatsapp.net",
];

/// A message with a media file, for the archiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaNote {
    /// The message's event id.
    pub event_id: String,
    /// Its item in the events table.
    pub pk: String,
    /// Its item's sort key.
    pub sk: String,
    /// How many times it was tried already.
    #[serde(default)]
    pub attempt: u32,
}

impl MediaNote {
    /// The note as a queue message body.
    pub fn to_json(&self) -> String {
        crate::sqs_rules::escape_body(serde_json::to_string(self).unwrap_or_default())
    }
}

/// The note of a stored message with a media file (`None` for anything else).
pub fn media_note(event: &CloudEvent, pk: &str, sk: &str) -> Option<MediaNote> {
    if !matches!(event.event_type, EventType::MessageReceived | EventType::MessageSent) {
        return None;
    }
    let content = event.data.content.as_ref()?;
    if !MEDIA_KINDS.contains(&content.kind) {
        return None;
    }
    let has_url = content
        .media_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://") || u.starts_with("http://"));
    // Evolution may carry the file inline, in its body.
    let possible = has_url || content.media_id.is_some() || event.provider == Provider::Evolution;
    possible.then(|| MediaNote {
        event_id: event.id.clone(),
        pk: pk.to_owned(),
        sk: sk.to_owned(),
        attempt: 0,
    })
}

/// Where a message's file comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A URL on the provider's CDN or gateway.
    Url(String),
    /// The file itself, base64, in the body (Evolution's `webhook_base64`).
    Inline(String),
    /// Meta's media id: looked up on the Graph API, then downloaded, both with the bearer.
    MetaId(String),
}

/// Where `event`'s file comes from, read from its content and, for Evolution, its body (`raw`
/// resolved).
pub fn source_of(event: &CloudEvent) -> Result<Source, FetchError> {
    let content = event
        .data
        .content
        .as_ref()
        .ok_or_else(|| FetchError::permanent("unreadable", "the message has no content"))?;
    let url = content
        .media_url
        .as_deref()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"));
    match event.provider {
        Provider::Evolution => {
            let raw: Option<serde_json::Value> =
                event.data.raw.as_ref().and_then(|r| serde_json::from_str(r.get()).ok());
            let inline = raw
                .as_ref()
                .and_then(|r| r.pointer("/data/message/base64"))
                .and_then(|b| b.as_str())
                .filter(|b| !b.is_empty());
            if let Some(b64) = inline {
                return Ok(Source::Inline(b64.to_owned()));
            }
            match url {
                // WhatsApp's own CDN holds the file encrypted (`.enc`, the key in the message):
                // useless without decrypting, which is Evolution's job.
                Some(u) if !u.contains(".whatsapp.net/") => Ok(Source::Url(u.to_owned())),
                _ => Err(FetchError::permanent(
                    "unavailable",
                    "Evolution sent neither the file (webhook_base64) nor a mediaUrl (S3/MinIO): turn one on in Evolution",
                )),
            }
        }
        Provider::Meta => match (&content.media_id, url) {
            (Some(id), _) => Ok(Source::MetaId(id.clone())),
            (None, Some(u)) => Ok(Source::Url(u.to_owned())),
            (None, None) => Err(FetchError::permanent("unavailable", "no media id or link")),
        },
        _ => url
            .map(|u| Source::Url(u.to_owned()))
            .ok_or_else(|| FetchError::permanent("unavailable", "the message names no media URL")),
    }
}

/// The port that gives a fetch its credentials: an endpoint's media token (Meta's access token
/// as a bearer, WAHA's `X-Api-Key`).
#[async_trait::async_trait]
pub trait MediaCredentials: Send + Sync {
    /// The headers to send to `provider` for endpoint `endpoint`'s media.
    async fn headers(&self, endpoint: &str, provider: Provider) -> Result<Vec<(&'static str, String)>, String>;
}

/// No credentials (until an endpoint has a media token: docs/events.md, "Media").
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
}

/// What archiving one note came to.
#[derive(Debug)]
pub enum Archived {
    /// The event made (archived or failed).
    Made(Box<CloudEvent>),
    /// Sent back to the queue to be tried again later.
    Retrying(u32),
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
            graph_url: DEFAULT_GRAPH_URL.to_owned(),
            credentials: Arc::new(NoCredentials),
        }
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
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| FetchError::permanent("unreadable", format!("the inline file is not base64: {e}")))?;
                if bytes.len() as u64 > self.fetcher.policy().max_bytes {
                    return Err(FetchError::permanent("too_large", format!("{} bytes", bytes.len())));
                }
                let content_type = declared.clone().unwrap_or_else(|| "application/octet-stream".into());
                let mut upload = sink::Upload::new(&self.s3, &self.bucket, key, &content_type);
                upload.write(&bytes).await?;
                return Ok((upload.finish().await?, Some(content_type)));
            }
            Source::Url(url) => (url, None),
            Source::MetaId(id) => {
                if !headers.iter().any(|(h, _)| *h == "authorization") {
                    return Err(FetchError::permanent(
                        "not_configured",
                        "the endpoint has no Meta access token to look the media id up with",
                    ));
                }
                let lookup = self
                    .fetcher
                    .get_json(&format!("{}/{id}", self.graph_url), &headers)
                    .await?;
                let url = lookup["url"]
                    .as_str()
                    .ok_or_else(|| {
                        FetchError::permanent("unreadable", format!("the media lookup has no url: {lookup}"))
                    })?
                    .to_owned();
                let sha = lookup["sha256"]
                    .as_str()
                    .map(str::to_owned)
                    .or_else(|| event.data.content.as_ref().and_then(|c| c.sha256.clone()));
                (url, sha)
            }
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

/// Whether Meta's `sha256` (base64, or hex) names this digest (hex).
pub fn sha_matches(expected: &str, hex_digest: &str) -> bool {
    let expected = expected.trim();
    if expected.eq_ignore_ascii_case(hex_digest) {
        return true;
    }
    match hex::decode(hex_digest) {
        Ok(raw) => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
            b64 == expected || b64.trim_end_matches('=') == expected.trim_end_matches('=')
        }
        Err(_) => false,
    }
}

/// The delay before attempt `attempt + 1`, in seconds: 30 s, 2 min, 8 min, then 15 min (SQS's
/// longest delay).
pub fn retry_delay_seconds(attempt: u32) -> i32 {
    let s = 30u64.saturating_mul(4u64.saturating_pow(attempt.saturating_sub(1)));
    i32::try_from(s.min(crate::sqs_rules::MAX_DELAY_SECONDS)).unwrap_or(900)
}

fn media_event(event: &CloudEvent, event_type: EventType, media: MediaFile) -> CloudEvent {
    let id = crate::identity::event_id(
        event.provider,
        &event.instance,
        event_type,
        event.subject.as_deref(),
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

/// The partition key of an event's item (where its media note points).
pub fn item_keys(event: &CloudEvent) -> (String, String) {
    (keys::event_pk(event), keys::event_sk(&event.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Content;

    fn event(provider: Provider, content: Content, raw: &str) -> CloudEvent {
        let now = chrono::Utc::now();
        CloudEvent::new(
            "e".repeat(32),
            provider,
            "I",
            EventType::MessageReceived,
            Some("c".into()),
            now,
            "ep",
            now,
            EventData::new(crate::providers::compact_raw(raw.as_bytes()).expect("json")),
        )
        .with_content(content)
    }

    trait WithContent {
        fn with_content(self, c: Content) -> Self;
    }
    impl WithContent for CloudEvent {
        fn with_content(mut self, c: Content) -> Self {
            self.data.content = Some(c);
            self
        }
    }

    fn image(url: Option<&str>, id: Option<&str>) -> Content {
        Content {
            media_url: url.map(str::to_owned),
            media_id: id.map(str::to_owned),
            ..Content::new(ContentKind::Image)
        }
    }

    #[test]
    fn each_provider_names_where_its_file_is() {
        let zapi = event(
            Provider::Zapi,
            image(Some("https://f004.backblazeb2.com/x.jpg"), None),
            "{}",
        );
        assert_eq!(
            source_of(&zapi).expect("url"),
            Source::Url("https://f004.backblazeb2.com/x.jpg".into())
        );
        let meta = event(Provider::Meta, image(None, Some("1234")), "{}");
        assert_eq!(source_of(&meta).expect("id"), Source::MetaId("1234".into()));
        let inline = event(
            Provider::Evolution,
            image(Some("https://mmg.whatsapp.net/x.enc"), None),
            r#"{"data":{"message":{"imageMessage":{},"base64":"aGk="}}}"#,
        );
        assert_eq!(source_of(&inline).expect("inline"), Source::Inline("aGk=".into()));
        let encrypted = event(
            Provider::Evolution,
            image(Some("https://mmg.whatsapp.net/x.enc"), None),
            "{}",
        );
        assert!(matches!(
            source_of(&encrypted),
            Err(FetchError::Permanent {
                reason: "unavailable",
                ..
            })
        ));
        let minio = event(
            Provider::Evolution,
            image(Some("https://minio.example.com/b/x.jpg"), None),
            "{}",
        );
        assert_eq!(
            source_of(&minio).expect("mediaUrl"),
            Source::Url("https://minio.example.com/b/x.jpg".into())
        );
        let none = event(Provider::Zapi, image(Some("https://"), None).with_url_text(), "{}");
        assert!(source_of(&none).is_err());
    }

    trait UrlText {
        fn with_url_text(self) -> Self;
    }
    impl UrlText for Content {
        fn with_url_text(mut self) -> Self {
            self.media_url = Some("URL da imagem".into());
            self
        }
    }

    #[test]
    fn only_messages_with_a_media_kind_and_a_way_to_the_file_are_noted() {
        let zapi = event(Provider::Zapi, image(Some("https://x/y.jpg"), None), "{}");
        assert!(media_note(&zapi, "pk", "sk").is_some());
        let text = event(Provider::Zapi, Content::new(ContentKind::Text), "{}");
        assert!(media_note(&text, "pk", "sk").is_none());
        let no_url = event(Provider::Zapi, image(Some("Photo"), None), "{}");
        assert!(media_note(&no_url, "pk", "sk").is_none());
        let evolution = event(Provider::Evolution, image(None, None), "{}");
        assert!(media_note(&evolution, "pk", "sk").is_some(), "its file may be inline");
    }

    #[test]
    fn metas_base64_digest_is_compared_with_ours() {
        let hex_digest = hex::encode(sha2::Sha256::digest(b"hello"));
        let b64 = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(b"hello"));
        assert!(sha_matches(&b64, &hex_digest));
        assert!(sha_matches(&hex_digest.to_uppercase(), &hex_digest));
        assert!(!sha_matches("AAAA", &hex_digest));
    }

    #[test]
    fn retries_back_off_within_sqs_longest_delay() {
        assert_eq!(
            (1..=5).map(retry_delay_seconds).collect::<Vec<_>>(),
            vec![30, 120, 480, 900, 900]
        );
    }

    use sha2::Digest;
}
