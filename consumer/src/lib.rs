//! Read wahooks events from SQS.
//!
//! Every message body is one CloudEvents 1.0 JSON document ([`CloudEvent`], `docs/workers.md`'s
//! "Message format"). Delivery is at least once: a worker dedupes on [`CloudEvent::dedup_key`]
//! (the event id, identical across provider redeliveries and wahooks replays).
//!
//! Two shapes of worker:
//! - a Lambda with an SQS trigger: [`handle_sqs_event`] returns the `SQSBatchResponse` so only
//!   the failed messages come back (enable `ReportBatchItemFailures` on the mapping);
//! - a container or EC2 process: [`Worker`] long-polls, calls your handler and deletes what
//!   it handled.
//!
//! On FIFO queues both stop a message group at its first failure (the rest of that group is
//! returned too), so a chat's events are never handled out of order.

use std::collections::HashSet;
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use wahooks_event::bounded::BoundedSet;
use wahooks_event::item::ItemError;

/// The event's types, vocabulary and times, as the receivers write them.
pub use wahooks_event as event;
pub use wahooks_event::{Alias, AliasKind, CloudEvent, Contact, EventType, RawPointer};

/// Who an alias is in a provider's instance, as the receivers learned it: their conversation key
/// (`chat.key` of their events), every alias known, the keys merged into theirs. Parse what a
/// person typed with [`Alias::parse`]; the table is the endpoints table (the template's
/// `WorkerReadPolicy` may read its alias items).
pub use wahooks_event::contact::lookup as contact;

/// A message that is not a wahooks event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body is not a CloudEvent of ours.
    #[error("the message body is not a wahooks CloudEvent")]
    NotAnEvent(#[source] serde_json::Error),
    /// A CloudEvents version we do not speak.
    #[error("unsupported CloudEvents specversion `{0}` (expected 1.0)")]
    Version(String),
    /// The message has no body.
    #[error("the message has no body")]
    Empty,
}

/// Decode one message body into the canonical event.
pub fn decode(body: &str) -> Result<CloudEvent, DecodeError> {
    let event: CloudEvent = serde_json::from_str(body).map_err(DecodeError::NotAnEvent)?;
    if event.specversion != "1.0" {
        return Err(DecodeError::Version(event.specversion));
    }
    Ok(event)
}

/// Why a pointer (`data.stored_item`, `data.raw_pointer`) could not be followed.
#[derive(Debug, thiserror::Error)]
pub enum PointerError {
    /// DynamoDB refused or failed the read.
    #[error("reading the event's item failed: {0}")]
    Read(#[source] Box<aws_sdk_dynamodb::Error>),
    /// S3 refused or failed the read.
    #[error("reading the body from the bucket failed")]
    ReadObject(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No item or object at the pointer (it expired: the table and the bucket keep events for
    /// their retention).
    #[error("nothing at {0} (expired?)")]
    Missing(String),
    /// The item does not hold an event.
    #[error("the item does not hold a wahooks event: {0}")]
    NotAnEvent(#[source] ItemError),
    /// What the pointer names is not the body it describes (its SHA-256 or JSON differs).
    #[error("the body at {0} is not the one the event names")]
    WrongBody(String),
    /// A presigned URL could not be made (an expiry over 7 days, no credentials).
    #[error("cannot presign: {0}")]
    Presign(String),
}

/// The clients that follow a message's pointers: DynamoDB for items (the event's, a body
/// item), S3 for bodies kept in the bucket. A worker needs `dynamodb:GetItem` on the events
/// table and `s3:GetObject` on the bucket (the template's `WorkerReadPolicy`).
#[derive(Debug, Clone)]
pub struct Pointers {
    dynamodb: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
}

impl Pointers {
    /// Follow pointers with these clients ([`wahooks_event::item::s3_client`] builds an S3
    /// client that also works against a local stand-in).
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, s3: aws_sdk_s3::Client) -> Self {
        Pointers { dynamodb, s3 }
    }

    /// Follow pointers with clients made from `sdk` (the S3 one path-style when `sdk` names an
    /// endpoint, as a local stand-in needs).
    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> Self {
        Pointers::new(aws_sdk_dynamodb::Client::new(sdk), wahooks_event::item::s3_client(sdk))
    }

    async fn item(
        &self,
        table: &str,
        pk: &str,
        sk: &str,
    ) -> Result<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>, PointerError> {
        use aws_sdk_dynamodb::types::AttributeValue;
        let out = self
            .dynamodb
            .get_item()
            .table_name(table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| PointerError::Read(Box::new(e.into())))?;
        out.item
            .ok_or_else(|| PointerError::Missing(format!("{table} {pk} {sk}")))
    }

    /// The raw JSON a [`RawPointer`] names, checked against its SHA-256.
    async fn raw(&self, pointer: &RawPointer) -> Result<String, PointerError> {
        let (bytes, place) = match (&pointer.table, &pointer.pk, &pointer.sk, &pointer.bucket, &pointer.key) {
            (Some(table), Some(pk), Some(sk), _, _) => {
                let item = self.item(table, pk, sk).await?;
                let place = format!("{table} {pk} {sk}");
                let body = item
                    .get("body")
                    .and_then(|b| b.as_b().ok())
                    .ok_or_else(|| PointerError::WrongBody(place.clone()))?;
                let bytes = wahooks_event::item::decompress(body.as_ref())
                    .map_err(|_| PointerError::WrongBody(place.clone()))?;
                (bytes, place)
            }
            (_, _, _, Some(bucket), Some(key)) => {
                let place = format!("s3://{bucket}/{key}");
                let bytes = wahooks_event::item::get_object(&self.s3, bucket, key)
                    .await
                    .map_err(PointerError::ReadObject)?
                    .ok_or_else(|| PointerError::Missing(place.clone()))?;
                (bytes, place)
            }
            _ => return Err(PointerError::WrongBody("a pointer that names no place".into())),
        };
        use sha2::Digest;
        if hex::encode(sha2::Sha256::digest(&bytes)) != pointer.sha256 {
            return Err(PointerError::WrongBody(place));
        }
        String::from_utf8(bytes).map_err(|_| PointerError::WrongBody(place))
    }

    /// The whole event: `event` itself; or, when it came without `data.raw` because it was too
    /// large for its queue, the event stored in the item `data.stored_item` names (a consistent
    /// `GetItem`, its zstd `body` decompressed); and in either case, when the event's body is
    /// kept apart (`data.raw_pointer`: one body for several events, or one too large to travel
    /// with its event), that body read back into `data.raw`.
    pub async fn resolve(&self, event: CloudEvent) -> Result<CloudEvent, PointerError> {
        let mut event = match &event.data.stored_item {
            Some(p) => {
                let item = self.item(&p.table, &p.pk, &p.sk).await?;
                // The event is in the item, or (over an item even without its body) in the
                // bucket, where the item's `body_object` names it.
                wahooks_event::item::read_sdk_item(&item, &self.s3)
                    .await
                    .map_err(PointerError::NotAnEvent)?
                    .1
            }
            None => event,
        };
        if event.data.raw.is_none() {
            if let Some(pointer) = &event.data.raw_pointer {
                let text = self.raw(pointer).await?;
                let raw = serde_json::value::RawValue::from_string(text)
                    .map_err(|_| PointerError::WrongBody(pointer.sha256.clone()))?;
                event.data.raw = Some(std::sync::Arc::from(raw));
            }
        }
        Ok(event)
    }
}

/// [`Pointers::resolve`]: the whole event, `data.raw` included, whatever the message carried.
pub async fn resolve_pointer(pointers: &Pointers, event: CloudEvent) -> Result<CloudEvent, PointerError> {
    pointers.resolve(event).await
}

/// The ids a worker has handled recently, to drop redeliveries (at-least-once queues, replays).
/// Keeps the last `capacity` ids; a worker that must dedupe across restarts keeps the
/// [`CloudEvent::dedup_key`] in its own store instead.
#[derive(Debug)]
pub struct RecentIds(BoundedSet<String>);

impl RecentIds {
    /// Remember up to `capacity` ids.
    pub fn new(capacity: usize) -> Self {
        RecentIds(BoundedSet::new(capacity))
    }

    /// `true` the first time `id` is seen (then remembered), `false` for a repeat.
    pub fn first_time(&mut self, id: &str) -> bool {
        self.0.insert(id.to_owned())
    }
}

/// The Lambda SQS handler: decode each record, call `handler`, and report the failures
/// (undecodable bodies included, so they reach the DLQ after the redrive count). On a FIFO
/// queue, once a message group fails its later messages are reported failed without being
/// handled.
pub async fn handle_sqs_event<F, Fut, E>(event: SqsEvent, handler: F) -> SqsBatchResponse
where
    F: Fn(CloudEvent) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let mut response = SqsBatchResponse::default();
    let mut failed_groups: HashSet<String> = HashSet::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let group = record.attributes.get("MessageGroupId").cloned();
        if group.as_ref().is_some_and(|g| failed_groups.contains(g)) {
            response.add_failure(id);
            continue;
        }
        let result = match record.body.as_deref().map(decode) {
            None => Err(DecodeError::Empty.to_string()),
            Some(Err(e)) => Err(wahooks_event::error_chain(&e)),
            Some(Ok(ev)) => handler(ev).await.map_err(|e| e.to_string()),
        };
        if let Err(e) = result {
            tracing::warn!(message_id = %id, error = %e, "message not handled; it will be retried");
            if let Some(g) = group {
                failed_groups.insert(g);
            }
            response.add_failure(id);
        }
    }
    response
}

/// What one poll did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollStats {
    /// Messages received.
    pub received: usize,
    /// Handled and deleted.
    pub handled: usize,
    /// Left on the queue to come back after the visibility timeout.
    pub failed: usize,
}

/// A long-polling worker for one queue (containers, EC2, a laptop).
#[derive(Debug, Clone)]
pub struct Worker {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    wait: Duration,
    max_messages: i32,
    pointers: Option<Pointers>,
}

impl Worker {
    /// A worker on `queue_url` (20 s long polls, 10 messages at a time).
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Worker {
        Worker {
            client,
            queue_url: queue_url.into(),
            wait: Duration::from_secs(20),
            max_messages: 10,
            pointers: None,
        }
    }

    /// Follow pointers (`data.stored_item`, `data.raw_pointer`) before calling the handler (see
    /// [`Pointers::resolve`]), so the handler always gets the whole event, `raw` included.
    pub fn resolving_pointers(mut self, pointers: Pointers) -> Worker {
        self.pointers = Some(pointers);
        self
    }

    /// Change the long-poll wait (0–20 s).
    pub fn wait(mut self, wait: Duration) -> Worker {
        self.wait = wait.min(Duration::from_secs(20));
        self
    }

    /// The queue.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Receive once, handle, delete what was handled.
    pub async fn poll_once<F, Fut, E>(&self, handler: &F) -> Result<PollStats, aws_sdk_sqs::Error>
    where
        F: Fn(CloudEvent) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Display,
    {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.max_messages)
            .wait_time_seconds(self.wait.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .send()
            .await?;
        let mut stats = PollStats::default();
        let mut done = Vec::new();
        let mut failed_groups: HashSet<String> = HashSet::new();
        for m in out.messages() {
            stats.received += 1;
            let group = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                .cloned();
            if group.as_ref().is_some_and(|g| failed_groups.contains(g)) {
                stats.failed += 1;
                continue;
            }
            match self.handle_one(m.body(), handler).await {
                Ok(()) => done.push(m.receipt_handle().unwrap_or_default().to_owned()),
                Err(e) => {
                    tracing::warn!(error = %e, "message not handled; it will come back");
                    if let Some(g) = group {
                        failed_groups.insert(g);
                    }
                    stats.failed += 1;
                }
            }
        }
        stats.handled = done.len();
        self.delete(&done).await?;
        Ok(stats)
    }

    /// Decode one message body, follow its pointers when asked to, and hand it to `handler`;
    /// why not, as text.
    async fn handle_one<F, Fut, E>(&self, body: Option<&str>, handler: &F) -> Result<(), String>
    where
        F: Fn(CloudEvent) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Display,
    {
        let event = match body.map(decode) {
            None => return Err(DecodeError::Empty.to_string()),
            Some(Err(e)) => return Err(e.to_string()),
            Some(Ok(ev)) => ev,
        };
        let event = match &self.pointers {
            Some(pointers) => pointers.resolve(event).await.map_err(|e| e.to_string())?,
            None => event,
        };
        handler(event).await.map_err(|e| e.to_string())
    }

    /// Delete the messages of these receipt handles, ten per request.
    async fn delete(&self, handles: &[String]) -> Result<(), aws_sdk_sqs::Error> {
        for chunk in handles.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, handle)| {
                    aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                        .id(format!("d{i}"))
                        .receipt_handle(handle)
                        .build()
                        .ok()
                })
                .collect();
            self.client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await?;
        }
        Ok(())
    }

    /// Poll until `shutdown` resolves; errors are logged and retried after a pause.
    pub async fn run<F, Fut, E>(&self, handler: F, shutdown: impl Future<Output = ()>)
    where
        F: Fn(CloudEvent) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Display,
    {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                r = self.poll_once(&handler) => if let Err(e) = r {
                    tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "poll failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// The approximate number of messages waiting (visible) on the queue.
    pub async fn depth(&self) -> Result<usize, aws_sdk_sqs::Error> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await?;
        Ok(out
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
            .and_then(|v| v.parse().ok())
            .unwrap_or_default())
    }
}

/// A URL that downloads an archived media file (`whatsapp.media.archived`'s `data.media`) for
/// `expires` (at most 7 days, S3's limit for a presigned URL), signed with the worker's own
/// credentials (it needs `s3:GetObject` on the bucket's `media/` keys). `None` for an event that
/// names no archived file.
pub async fn media_url(
    s3: &aws_sdk_s3::Client,
    media: &wahooks_event::MediaFile,
    expires: Duration,
) -> Result<Option<String>, PointerError> {
    let (Some(bucket), Some(key)) = (&media.bucket, &media.key) else {
        return Ok(None);
    };
    let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires)
        .map_err(|e| PointerError::Presign(e.to_string()))?;
    let request = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .presigned(config)
        .await
        .map_err(|e| PointerError::Presign(wahooks_event::error_chain(&e)))?;
    Ok(Some(request.uri().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::sqs::SqsMessage;

    fn body(id: &str) -> String {
        format!(
            r#"{{"specversion":"1.0","id":"{id}","source":"wahooks/zapi/I","type":"whatsapp.message.received","subject":"5511","time":"2025-01-01T00:00:00.000Z","datacontenttype":"application/json","provider":"zapi","instance":"I","endpoint":"ep","receivedat":"2025-01-01T00:00:00.000Z","data":{{"message_id":"M","raw":{{"a":1}}}}}}"#
        )
    }

    fn record(id: &str, body: &str, group: Option<&str>) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.to_owned());
        m.body = Some(body.to_owned());
        if let Some(g) = group {
            m.attributes.insert("MessageGroupId".into(), g.into());
        }
        m
    }

    #[test]
    fn decodes_an_event_and_refuses_other_json() {
        let e = decode(&body("abc")).expect("event");
        assert_eq!(e.dedup_key(), "abc");
        assert_eq!(e.event_type, EventType::MessageReceived);
        assert_eq!(e.data.raw.as_ref().map(|r| r.get()), Some(r#"{"a":1}"#));
        assert!(matches!(decode("{}"), Err(DecodeError::NotAnEvent(_))));
        let v2 = body("x").replace("\"1.0\"", "\"2.0\"");
        assert!(matches!(decode(&v2), Err(DecodeError::Version(_))));
    }

    #[tokio::test]
    async fn an_archived_file_gets_a_url_that_expires_and_a_failed_one_none() {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_s3::config::Credentials::new("AKID", "secret", None, None, "t"))
                .build(),
        );
        let media = wahooks_event::MediaFile {
            event_id: "e".into(),
            message_id: None,
            bucket: Some("wahooks-bodies".into()),
            key: Some("media/e".into()),
            bytes: Some(1),
            content_type: None,
            sha256: None,
            reason: None,
            detail: None,
            attempts: 1,
        };
        let url = media_url(&s3, &media, Duration::from_secs(600))
            .await
            .expect("presigned")
            .expect("a url");
        assert!(url.contains("wahooks-bodies") && url.contains("media/e"), "{url}");
        assert!(
            url.contains("X-Amz-Expires=600") && url.contains("X-Amz-Signature="),
            "{url}"
        );
        let failed = wahooks_event::MediaFile {
            bucket: None,
            key: None,
            ..media.clone()
        };
        assert!(media_url(&s3, &failed, Duration::from_secs(600))
            .await
            .expect("ok")
            .is_none());
        assert!(
            media_url(&s3, &media, Duration::from_secs(8 * 86_400)).await.is_err(),
            "over 7 days"
        );
    }

    #[test]
    fn reads_the_events_made_from_time_passing() {
        let turn = body("t").replace("whatsapp.message.received", "whatsapp.conversation.turn").replace(
            r#""data":{"message_id":"M","raw":{"a":1}}"#,
            r#""data":{"turn":{"number":2,"window_ms":3000,"messages":[{"event_id":"e1","message_id":"M1","time":"2025-01-01T00:00:00.000Z","text":"hi"},{"event_id":"e2","time":"2025-01-01T00:00:01.000Z"}]}}"#,
        );
        let e = decode(&turn).expect("a turn");
        assert_eq!(e.event_type, EventType::ConversationTurn);
        let t = e.data.turn.expect("data.turn");
        assert_eq!((t.number, t.window_ms, t.messages.len()), (2, 3000, 2));
        assert_eq!(t.messages[0].text.as_deref(), Some("hi"));
        assert!(!t.messages[0].text_truncated && t.messages[1].message_id.is_none());
        let silent = body("s").replace("whatsapp.message.received", "whatsapp.instance.silent").replace(
            r#""data":{"message_id":"M","raw":{"a":1}}"#,
            r#""data":{"silence":{"last_event_at":"2025-01-01T00:00:00.000Z","window_seconds":7200,"window_derived":true}}"#,
        );
        let e = decode(&silent).expect("a silence");
        assert_eq!(e.event_type, EventType::InstanceSilent);
        assert_eq!(
            e.data.silence.map(|s| (s.window_seconds, s.window_derived)),
            Some((7200, true))
        );
    }

    #[test]
    fn a_worker_built_today_reads_tomorrows_types_kinds_and_statuses() {
        let future = body("f")
            .replace("whatsapp.message.received", "whatsapp.message.scheduled")
            .replace(
                r#""message_id":"M""#,
                r#""message_id":"M","chat":{"id":"c","kind":"community"},"content":{"kind":"hologram"},"status":"beamed""#,
            );
        let e = decode(&future).expect("new vocabulary still decodes");
        assert_eq!(e.event_type, EventType::Unknown);
        assert_eq!(
            e.data.chat.as_ref().map(|c| c.kind),
            Some(wahooks_event::ChatKind::Other)
        );
        assert_eq!(
            e.data.content.as_ref().map(|c| c.kind),
            Some(wahooks_event::ContentKind::Other)
        );
        assert_eq!(e.data.status, Some(wahooks_event::MessageStatus::Other));
        assert_eq!(e.data.message_id.as_deref(), Some("M"));
    }

    #[test]
    fn recent_ids_drop_repeats_and_forget_the_oldest() {
        let mut r = RecentIds::new(2);
        assert!(r.first_time("a"));
        assert!(!r.first_time("a"));
        assert!(r.first_time("b"));
        assert!(r.first_time("c"));
        assert!(r.first_time("a"), "a was forgotten when c arrived");
    }

    #[tokio::test]
    async fn lambda_handler_reports_failures_and_holds_back_a_failed_group() {
        let mut event = SqsEvent::default();
        event.records = vec![
            record("1", &body("e1"), Some("I#A")),
            record("2", &body("bad"), Some("I#A")),
            record("3", &body("e3"), Some("I#A")),
            record("4", &body("e4"), Some("I#B")),
            record("5", "not json", None),
        ];
        let handled = std::sync::Mutex::new(Vec::new());
        let response = handle_sqs_event(event, |e: CloudEvent| {
            let ok = e.id != "bad";
            handled.lock().expect("lock").push(e.id.clone());
            async move {
                if ok {
                    Ok(())
                } else {
                    Err("handler said no")
                }
            }
        })
        .await;
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        assert_eq!(failed, ["2", "3", "5"]);
        assert_eq!(
            *handled.lock().expect("lock"),
            ["e1", "bad", "e4"],
            "e3 waits behind its group"
        );
    }
}
