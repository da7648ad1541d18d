//! The publishing port ([`Publisher`]: one batch to one queue) and its adapters: SQS, with
//! every batch checked against SQS's documented rules before it is sent, and an in-memory one
//! for unit tests and benches.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::message::{attributes_size, OutMessage};
use super::routing::Queue;
use crate::sqs_rules::{check_batch, Entry, RuleViolation};

/// A batch send that failed as a whole (every entry is to be retried).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// SQS would refuse the batch: checked before sending, since the stand-in takes anything.
    #[error("SQS would refuse this batch")]
    Refused(#[from] RuleViolation),
    /// The queue could not be reached, or refused the request.
    #[error("queue unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl PublishError {
    /// The queue is unavailable, because of `cause`.
    pub fn unavailable(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        PublishError::Unavailable(cause.into())
    }
}

/// The port: send one batch (≤ 10 entries) to one queue.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// Send `batch` to `queue`; returns the entry ids SQS refused (the rest were accepted).
    async fn send_batch(&self, queue: &Queue, batch: &[OutMessage]) -> Result<Vec<String>, PublishError>;
}

/// The SQS adapter.
#[derive(Clone)]
pub struct SqsPublisher {
    client: aws_sdk_sqs::Client,
}

impl SqsPublisher {
    /// An adapter over `client`.
    pub fn new(client: aws_sdk_sqs::Client) -> Self {
        SqsPublisher { client }
    }

    /// Read a queue's `MaximumMessageSize` (once, at init); why not, if it cannot be read.
    pub async fn max_message_size(&self, url: &str) -> Result<usize, PublishError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::MaximumMessageSize)
            .send()
            .await
            .map_err(PublishError::unavailable)?;
        out.attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::MaximumMessageSize))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| PublishError::unavailable("the queue has no MaximumMessageSize"))
    }
}

#[async_trait]
impl Publisher for SqsPublisher {
    async fn send_batch(&self, queue: &Queue, batch: &[OutMessage]) -> Result<Vec<String>, PublishError> {
        use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
        // What SQS would refuse is refused here, before the request (the stand-in takes anything).
        check_batch(&entries_of(batch), queue.fifo, queue.max_bytes)?;
        let attr = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .map_err(PublishError::unavailable)
        };
        let mut entries = Vec::with_capacity(batch.len());
        for m in batch {
            let entry = SendMessageBatchRequestEntry::builder()
                .id(&m.entry_id)
                .message_body(&m.body)
                .message_attributes("id", attr(&m.event_id)?)
                .message_attributes("type", attr(m.event_type.as_str())?)
                .set_message_group_id(m.group_id.clone())
                .set_message_deduplication_id(m.dedup_id.clone())
                .build()
                .map_err(PublishError::unavailable)?;
            entries.push(entry);
        }
        let out = self
            .client
            .send_message_batch()
            .queue_url(&queue.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(PublishError::unavailable)?;
        Ok(out.failed().iter().map(|f| f.id().to_owned()).collect())
    }
}

/// A batch as SQS sees it, for [`check_batch`].
pub fn entries_of(batch: &[OutMessage]) -> Vec<Entry<'_>> {
    batch
        .iter()
        .map(|m| Entry {
            id: &m.entry_id,
            body: &m.body,
            attributes_bytes: attributes_size(&m.event_id, m.event_type),
            group_id: m.group_id.as_deref(),
            dedup_id: m.dedup_id.as_deref(),
        })
        .collect()
}

/// An in-memory publisher for unit tests and benches: records every message and request, with
/// an outage switch.
#[derive(Default, Clone)]
pub struct MemoryPublisher {
    sent: Arc<Mutex<Vec<(String, OutMessage)>>>,
    requests: Arc<Mutex<usize>>,
    down: Arc<Mutex<bool>>,
    refused: Arc<Mutex<HashSet<String>>>,
}

impl MemoryPublisher {
    /// An empty publisher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every (queue name, message) sent, in order.
    pub fn sent(&self) -> Vec<(String, OutMessage)> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many `SendMessageBatch` requests were made.
    pub fn requests(&self) -> usize {
        *self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forget what was sent.
    pub fn clear(&self) {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clear();
        *self.requests.lock().unwrap_or_else(|p| p.into_inner()) = 0;
    }

    /// Refuse the entries of these event ids (a partial batch failure).
    pub fn refuse(&self, event_ids: &[&str]) {
        let mut r = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        r.clear();
        r.extend(event_ids.iter().map(|s| (*s).to_owned()));
    }

    /// Simulate an SQS outage, or end it.
    pub fn set_down(&self, down: bool) {
        *self.down.lock().unwrap_or_else(|p| p.into_inner()) = down;
    }
}

#[async_trait]
impl Publisher for MemoryPublisher {
    async fn send_batch(&self, queue: &Queue, batch: &[OutMessage]) -> Result<Vec<String>, PublishError> {
        *self.requests.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        if *self.down.lock().unwrap_or_else(|p| p.into_inner()) {
            return Err(PublishError::unavailable("the in-memory queue is down"));
        }
        check_batch(&entries_of(batch), queue.fifo, queue.max_bytes)?;
        let refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let mut failed = Vec::new();
        for m in batch {
            if refused.contains(&m.event_id) {
                failed.push(m.entry_id.clone());
            } else {
                sent.push((queue.name.clone(), m.clone()));
            }
        }
        Ok(failed)
    }
}
