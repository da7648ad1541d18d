//! AWS End User Messaging Social as a source: WhatsApp events that AWS publishes to an SNS topic
//! (one per WhatsApp Business Account), delivered to an SQS queue subscribed to it, taken here in
//! batches.
//!
//! Each SNS message is a JSON document whose `whatsAppWebhookEntry` is a *string* holding one
//! Meta webhook `entry`, next to `context` (the WABA's and phone numbers' Meta and AWS ids) and
//! `aws_account_id`. The entry is decoded and wrapped as the webhook Meta would have posted
//! (`{"object":"whatsapp_business_account","entry":[entry]}`), then parsed, owned, stored and
//! answered by the receiver exactly as a Meta webhook: the same instance (the phone number id),
//! chat and ids, so moving from Meta's webhook to this source, or running both for a while in one
//! tenant, never doubles an event. SNS standard topics neither order nor deduplicate: the store
//! deduplicates, and the fanout's per-chat FIFO groups keep each chat in the order stored.
//!
//! Which tenant a message belongs to: the source endpoint (`wahooks endpoint create --provider
//! meta --sns-waba <id> --sns-account <account>`), stored under [`SnsSource::token`] of its WABA
//! id. The messages are authenticated by AWS (IAM: only the topic may send to the queue); each
//! is also checked against its source's account (and topic, when the subscription is not raw and
//! the SNS envelope names it).
//!
//! A message that cannot be attributed to a source (undecodable, an unknown or disabled WABA, the
//! wrong account or topic) is failed back to SQS, which retries it and then moves it to the
//! queue's DLQ (alarmed): nothing is lost, and it can be redriven once the source exists. A
//! message of a known source that does not parse is quarantined like any authentic body.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use serde::Deserialize;

use crate::endpoint::{Endpoint, SnsSource};
use crate::http::{Failure, Receiver};
use crate::metrics::{emf_count, emit_metric};
use crate::registry::EndpointRegistry;

/// Why a message could not be attributed to a source (it is failed back to SQS).
#[derive(Debug, thiserror::Error)]
pub enum SocialError {
    /// Not an End User Messaging Social document.
    #[error("not an End User Messaging Social message: {0}")]
    Malformed(String),
    /// No enabled source for the message's WABA.
    #[error("no enabled source for WABA `{0}`: create one (`wahooks endpoint create --provider meta --sns-waba {0} --sns-account <account>`), then redrive the DLQ")]
    UnknownSource(String),
    /// The message names another account (or topic) than its source expects.
    #[error("WABA `{waba}`: the message's {what} `{got}` is not the source's")]
    Foreign {
        /// The WABA.
        waba: String,
        /// `account` or `topic`.
        what: &'static str,
        /// What the message named.
        got: String,
    },
    /// The endpoints table or the store is unavailable (retry).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// One decoded message: who sent it, and the Meta webhook it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The topic, when the message came in an SNS envelope (not raw delivery).
    pub topic_arn: Option<String>,
    /// `aws_account_id`.
    pub account: String,
    /// The Meta WABA id (`context.MetaWabaIds[0].wabaId`, else the entry's `id`).
    pub waba: String,
    /// AWS's id of the message (`messageId`), when it has one.
    pub message_id: Option<String>,
    /// The webhook Meta would have posted: `{"object":"whatsapp_business_account","entry":[…]}`.
    pub webhook: Vec<u8>,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "TopicArn")]
    topic_arn: Option<String>,
    #[serde(rename = "Message")]
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    #[serde(default)]
    context: Context,
    whats_app_webhook_entry: String,
    #[serde(rename = "aws_account_id")]
    aws_account_id: String,
    #[serde(default)]
    message_id: Option<String>,
}

#[derive(Default, Deserialize)]
struct Context {
    #[serde(rename = "MetaWabaIds", default)]
    meta_waba_ids: Vec<WabaId>,
}

#[derive(Deserialize)]
struct WabaId {
    #[serde(rename = "wabaId")]
    waba_id: String,
}

/// Decode one SQS body: the End User Messaging Social document (raw delivery), or an SNS
/// envelope holding it; then the entry inside it, a JSON string.
pub fn decode(body: &str) -> Result<Delivery, SocialError> {
    let malformed = |why: String| SocialError::Malformed(why);
    let (topic_arn, text) = match serde_json::from_str::<Envelope>(body) {
        Ok(envelope) if envelope.kind == "Notification" => (envelope.topic_arn, envelope.message),
        _ => (None, body.to_owned()),
    };
    let doc: Document = serde_json::from_str(&text).map_err(|e| malformed(e.to_string()))?;
    let entry: serde_json::Value = serde_json::from_str(&doc.whats_app_webhook_entry)
        .map_err(|e| malformed(format!("whatsAppWebhookEntry: {e}")))?;
    if !entry.is_object() {
        return Err(malformed("whatsAppWebhookEntry is not a JSON object".into()));
    }
    let waba = doc
        .context
        .meta_waba_ids
        .first()
        .map(|w| w.waba_id.clone())
        .or_else(|| entry.get("id").and_then(|v| v.as_str()).map(str::to_owned))
        .filter(|w| !w.is_empty())
        .ok_or_else(|| malformed("no WABA id (context.MetaWabaIds, entry.id)".into()))?;
    let webhook = serde_json::to_vec(&serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [entry],
    }))
    .map_err(|e| malformed(e.to_string()))?;
    Ok(Delivery {
        topic_arn,
        account: doc.aws_account_id,
        waba,
        message_id: doc.message_id,
        webhook,
    })
}

/// The documents End User Messaging Social publishes for a Meta webhook: one per `entry`, with
/// the context AWS adds (the WABA and phone number ids; AWS's own ids made up), in account
/// `account`. The inverse of [`decode`]: what `wahooks publish-sns` and the tests publish to a
/// topic standing in for the WABA's event destination.
pub fn documents_of(webhook: &[u8], account: &str) -> Result<Vec<String>, SocialError> {
    let malformed = |why: &str| SocialError::Malformed(why.to_owned());
    let webhook: serde_json::Value =
        serde_json::from_slice(webhook).map_err(|e| SocialError::Malformed(e.to_string()))?;
    let entries = webhook["entry"]
        .as_array()
        .ok_or_else(|| malformed("not a Meta webhook (no `entry` list)"))?;
    Ok(entries
        .iter()
        .enumerate()
        .map(|(n, entry)| {
            let waba = entry["id"].as_str().unwrap_or_default();
            let phones: Vec<serde_json::Value> = entry["changes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["value"]["metadata"]["phone_number_id"].as_str())
                .map(|id| serde_json::json!({
                    "metaPhoneNumberId": id,
                    "arn": format!("arn:aws:social-messaging:us-east-1:{account}:phone-number-id/{id}"),
                }))
                .collect();
            serde_json::json!({
                "context": {
                    "MetaWabaIds": [{"wabaId": waba, "arn": format!("arn:aws:social-messaging:us-east-1:{account}:waba/{waba}")}],
                    "MetaPhoneNumberIds": phones,
                },
                "whatsAppWebhookEntry": entry.to_string(),
                "aws_account_id": account,
                "message_timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                "messageId": format!("{:08x}-0000-4000-8000-{:012x}", rand::random::<u32>(), n),
            })
            .to_string()
        })
        .collect())
}

/// Whether `delivery` is what `source` expects (its account, and its topic when named).
fn check(source: &SnsSource, delivery: &Delivery) -> Result<(), SocialError> {
    let foreign = |what, got: &str| SocialError::Foreign {
        waba: delivery.waba.clone(),
        what,
        got: got.to_owned(),
    };
    if delivery.account != source.account {
        return Err(foreign("account", &delivery.account));
    }
    if let (Some(expected), Some(got)) = (&source.topic_arn, &delivery.topic_arn) {
        if expected != got {
            return Err(foreign("topic", got));
        }
    }
    Ok(())
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored (events accepted or duplicates), or kept in quarantine: delete it from the queue.
    Done(u16),
    /// Not attributed to a source, or unavailable: leave it to SQS (retry, then the DLQ).
    Retry(String),
}

/// The source's Lambda handler: the receiver's pipeline fed from the SQS queue.
#[derive(Clone)]
pub struct SocialHandler {
    receiver: Receiver,
    registry: Arc<dyn EndpointRegistry>,
}

impl SocialHandler {
    /// A handler storing through `receiver`, finding sources in `registry`.
    pub fn new(receiver: Receiver, registry: Arc<dyn EndpointRegistry>) -> Self {
        SocialHandler { receiver, registry }
    }

    /// One SQS body.
    pub async fn handle_body(&self, body: &str) -> Outcome {
        match self.try_handle(body).await {
            Ok(status) => Outcome::Done(status),
            Err(e) => {
                let metric = match e {
                    SocialError::Unavailable(_) => None,
                    _ => Some("UnattributedSocialMessages"),
                };
                if let Some(metric) = metric {
                    emit_metric(|| emf_count(metric, &[], chrono::Utc::now().timestamp_millis()));
                    tracing::warn!(metric, reason = %e, "End User Messaging Social message left to the queue");
                } else {
                    tracing::error!(reason = %e, "End User Messaging Social message left to the queue");
                }
                Outcome::Retry(e.to_string())
            }
        }
    }

    async fn try_handle(&self, body: &str) -> Result<u16, SocialError> {
        let delivery = decode(body)?;
        let endpoint: Arc<Endpoint> = self
            .registry
            .lookup(&SnsSource::token(&delivery.waba))
            .await
            .map_err(|e| SocialError::Unavailable(crate::error_chain(&e)))?
            .filter(|e| e.enabled)
            .ok_or_else(|| SocialError::UnknownSource(delivery.waba.clone()))?;
        let source = endpoint
            .source
            .as_ref()
            .ok_or_else(|| SocialError::UnknownSource(delivery.waba.clone()))?;
        check(source, &delivery)?;
        match self.receiver.accept_from_source(&endpoint, &delivery.webhook).await {
            Ok(response) => Ok(response.status().as_u16()),
            // Retrying may store it: leave it to SQS.
            Err(Failure::Unavailable(cause)) => Err(SocialError::Unavailable(crate::error_chain(cause.as_ref()))),
            // Kept in quarantine (or refused for good): said in the log, done with.
            Err(failure) => {
                tracing::warn!(endpoint = %endpoint.id, status = failure.status(), code = failure.code(), "End User Messaging Social message refused");
                Ok(failure.status())
            }
        }
    }

    /// An SQS batch: every message handled (concurrently: one chat's order is the store's, kept
    /// by the fanout's FIFO groups), the ones to retry reported as partial batch failures.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let outcomes = futures::future::join_all(event.records.iter().map(|m: &SqsMessage| async move {
            let outcome = match &m.body {
                Some(body) => self.handle_body(body).await,
                None => Outcome::Retry("an empty message".into()),
            };
            (m.message_id.clone().unwrap_or_default(), outcome)
        }))
        .await;
        let mut response = SqsBatchResponse::default();
        for (id, outcome) in outcomes {
            if let Outcome::Retry(_) = outcome {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(entry: &serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "context": {
                "MetaWabaIds": [{"wabaId": "102290129340398", "arn": "arn:aws:social-messaging:us-east-1:123456789012:waba/abc"}],
                "MetaPhoneNumberIds": [{"metaPhoneNumberId": "106540352242922", "arn": "arn:aws:social-messaging:us-east-1:123456789012:phone-number-id/def"}]
            },
            "whatsAppWebhookEntry": entry.to_string(),
            "aws_account_id": "123456789012",
            "message_timestamp": "2025-01-08T23:30:43.271279391Z",
            "messageId": "6d69f07a-c317-4278-9d5c-6a84078419ec"
        })
    }

    #[test]
    fn a_document_is_decoded_twice_into_the_webhook_meta_would_post() {
        let entry = serde_json::json!({"id": "102290129340398", "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp"}}]});
        let raw = document(&entry).to_string();
        let d = decode(&raw).expect("decodes");
        assert_eq!(d.account, "123456789012");
        assert_eq!(d.waba, "102290129340398");
        assert_eq!(d.topic_arn, None);
        assert_eq!(d.message_id.as_deref(), Some("6d69f07a-c317-4278-9d5c-6a84078419ec"));
        let webhook: serde_json::Value = serde_json::from_slice(&d.webhook).expect("json");
        assert_eq!(
            webhook,
            serde_json::json!({"object": "whatsapp_business_account", "entry": [entry]})
        );
        // The same in an SNS envelope (a subscription without raw delivery) names its topic.
        let envelope = serde_json::json!({"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Message": raw});
        let e = decode(&envelope.to_string()).expect("decodes");
        assert_eq!(e.topic_arn.as_deref(), Some("arn:aws:sns:us-east-1:123456789012:t"));
        assert_eq!(e.webhook, d.webhook);
        // Without context, the entry's id names the WABA.
        let mut bare = document(&entry);
        bare.as_object_mut().expect("object").remove("context");
        assert_eq!(decode(&bare.to_string()).expect("decodes").waba, "102290129340398");
    }

    #[test]
    fn the_documents_of_a_webhook_decode_back_to_it_entry_by_entry() {
        let webhook = serde_json::json!({"object": "whatsapp_business_account", "entry": [
            {"id": "1", "changes": [{"field": "messages", "value": {"metadata": {"phone_number_id": "11"}}}]},
            {"id": "2", "changes": [{"field": "messages", "value": {"metadata": {"phone_number_id": "22"}}}]}
        ]});
        let docs = documents_of(webhook.to_string().as_bytes(), "123456789012").expect("documents");
        assert_eq!(docs.len(), 2);
        for (doc, entry) in docs.iter().zip(webhook["entry"].as_array().expect("entries")) {
            let d = decode(doc).expect("decodes");
            assert_eq!(
                (d.account.as_str(), d.waba.as_str()),
                ("123456789012", entry["id"].as_str().expect("id"))
            );
            let back: serde_json::Value = serde_json::from_slice(&d.webhook).expect("json");
            assert_eq!(back["entry"][0], *entry);
        }
        assert!(documents_of(b"{}", "1").is_err());
    }

    #[tokio::test]
    async fn events_aws_generates_and_kinds_nobody_knows_are_stored_never_refused() {
        use crate::endpoint::Auth;
        use crate::registry::MemoryRegistry;
        use crate::store::MemoryEventStore;
        let registry = Arc::new(MemoryRegistry::default());
        let source = Endpoint {
            source: Some(SnsSource {
                account: "123456789012".into(),
                waba: "102290129340398".into(),
                topic_arn: None,
            }),
            ..crate::registry::new_endpoint(crate::Provider::Meta, Auth::url_token())
        };
        registry.insert(&SnsSource::token("102290129340398"), source);
        let store = MemoryEventStore::new();
        let receiver = Receiver::new(registry.clone(), Arc::new(store.clone()));
        let handler = SocialHandler::new(receiver, registry);
        let metadata = serde_json::json!({"display_phone_number": "15550783881", "phone_number_id": "106540352242922"});
        // The outcome of an asynchronous send (a failed status, as AWS generates it), and a
        // change of a kind no adapter knows.
        for (n, value, field) in [
            (
                1,
                serde_json::json!({"messaging_product": "whatsapp", "metadata": metadata, "statuses": [{
                    "id": "wamid.GENERATED", "status": "failed", "timestamp": "1749416390", "recipient_id": "16505551234",
                    "errors": [{"code": 131026, "title": "Message undeliverable"}]
                }]}),
                "messages",
            ),
            (
                2,
                serde_json::json!({"messaging_product": "whatsapp", "metadata": metadata, "something_new": {"x": 1}}),
                "a_field_from_the_future",
            ),
        ] {
            let entry = serde_json::json!({"id": "102290129340398", "changes": [{"field": field, "value": value}]});
            let outcome = handler.handle_body(&document(&entry).to_string()).await;
            assert_eq!(outcome, Outcome::Done(200), "{field}");
            assert_eq!(store.len(), n, "{field}: stored");
        }
        // Nobody's WABA, or another account's: left to the queue.
        let stranger = serde_json::json!({"id": "1", "changes": []});
        let mut doc = document(&stranger);
        doc["context"]["MetaWabaIds"][0]["wabaId"] = "1".into();
        assert!(
            matches!(handler.handle_body(&doc.to_string()).await, Outcome::Retry(why) if why.contains("no enabled source"))
        );
        let mut foreign = document(&serde_json::json!({"id": "102290129340398", "changes": []}));
        foreign["aws_account_id"] = "999999999999".into();
        assert!(
            matches!(handler.handle_body(&foreign.to_string()).await, Outcome::Retry(why) if why.contains("account"))
        );
        assert_eq!(store.len(), 2);
        // In a batch, only what is left to the queue is reported (partial batch failures).
        let record = |id: &str, body: String| {
            let mut m = SqsMessage::default();
            m.message_id = Some(id.into());
            m.body = Some(body);
            m
        };
        let mut batch = SqsEvent::default();
        batch.records = vec![
            record(
                "ok",
                document(&serde_json::json!({"id": "102290129340398", "changes": []})).to_string(),
            ),
            record("foreign", foreign.to_string()),
            record("garbage", "not json".into()),
        ];
        let response = handler.handle(batch).await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, vec!["foreign", "garbage"]);
    }

    #[test]
    fn what_is_not_a_document_says_why() {
        for (body, why) in [
            ("not json", "expected"),
            (r#"{"aws_account_id":"1"}"#, "whatsAppWebhookEntry"),
            (
                r#"{"aws_account_id":"1","whatsAppWebhookEntry":"[1]"}"#,
                "not a JSON object",
            ),
            (
                r#"{"aws_account_id":"1","whatsAppWebhookEntry":"{\"changes\":[]}"}"#,
                "no WABA id",
            ),
        ] {
            let e = decode(body).expect_err(body);
            assert!(matches!(e, SocialError::Malformed(_)), "{body}");
            assert!(e.to_string().contains(why), "{body}: {e}");
        }
    }

    #[test]
    fn a_message_is_checked_against_its_source() {
        let source = SnsSource {
            account: "123456789012".into(),
            waba: "1".into(),
            topic_arn: Some("arn:aws:sns:us-east-1:123456789012:t".into()),
        };
        let mut d = Delivery {
            topic_arn: None,
            account: "123456789012".into(),
            waba: "1".into(),
            message_id: None,
            webhook: Vec::new(),
        };
        assert!(check(&source, &d).is_ok(), "raw delivery names no topic");
        d.topic_arn = source.topic_arn.clone();
        assert!(check(&source, &d).is_ok());
        d.topic_arn = Some("arn:aws:sns:us-east-1:123456789012:other".into());
        assert!(matches!(
            check(&source, &d),
            Err(SocialError::Foreign { what: "topic", .. })
        ));
        d.topic_arn = None;
        d.account = "999999999999".into();
        let e = check(&source, &d).expect_err("another account");
        assert!(e.to_string().contains("account `999999999999`"), "{e}");
    }
}
