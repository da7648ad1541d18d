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

#[cfg(feature = "media")]
mod archiver;
#[cfg(feature = "media")]
pub mod fetch;
#[cfg(feature = "media")]
pub mod sink;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::event::{CloudEvent, ContentKind, EventType, Provider};

#[cfg(feature = "media")]
pub use archiver::{
    ArchiveAll, Archived, Archiver, CachedSwitches, EndpointTokens, MediaCredentials, MediaSwitches, NoCredentials,
};

/// Why a file could not be archived: worth retrying later, or never.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The provider, the network or S3 failed now (5xx, 429, a timeout, a reset): try again later.
    #[error("{0}")]
    Transient(String),
    /// No retry can succeed; `reason` is the failed event's `reason`.
    #[error("{detail}")]
    Permanent {
        /// `expired`, `too_large`, `not_allowed`, `checksum`, `unreadable`, `unavailable`,
        /// `not_configured`.
        reason: &'static str,
        /// What went wrong, in words.
        detail: String,
    },
}

impl FetchError {
    /// A permanent failure.
    pub fn permanent(reason: &'static str, detail: impl Into<String>) -> Self {
        FetchError::Permanent {
            reason,
            detail: detail.into(),
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Content, EventData};

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
