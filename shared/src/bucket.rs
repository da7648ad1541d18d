//! The claim-check bucket: the `BodyBucket` port (put and get one object), its S3 adapter and an
//! in-memory adapter for unit tests. What goes there is decided in [`crate::store`]: a webhook
//! body too large for a DynamoDB item (`bodies/<sha256>.json`, the JSON as `data.raw` would hold
//! it) and a quarantined body too large for the table (`quarantine/<sha256>`, the bytes as
//! received). Objects are named by their content, so writing one twice is harmless and a
//! redelivery, a replay or a recovery never makes a second copy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

/// S3's longest object key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// S3's largest object written by one `PutObject` (5 GiB); ours are at most 6 MiB.
pub const MAX_PUT_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// The object key of a webhook body kept in the bucket.
pub fn body_key(sha256_hex: &str) -> String {
    format!("bodies/{sha256_hex}.json")
}

/// The object key of an event kept in the bucket (over an item even without its body).
pub fn event_key(event_id: &str) -> String {
    format!("events/{}.json", crate::event::bounded_text(event_id))
}

pub use crate::event::item::{object_uri, parse_object_uri};

/// The object key of a quarantined body kept in the bucket.
pub fn quarantine_key(sha256_hex: &str) -> String {
    format!("quarantine/{sha256_hex}")
}

/// Why the bucket could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    /// S3 would refuse the request itself (checked here: the stand-in may take it).
    #[error("S3 would refuse this object: {0}")]
    Refused(String),
    /// S3 is unreachable, throttling, failing, or the role may not use the bucket.
    #[error("the body bucket is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The port: keep a body, read it back.
#[async_trait]
pub trait BodyBucket: Send + Sync {
    /// The bucket's name (what pointers name).
    fn name(&self) -> &str;
    /// Write `bytes` under `key` (replacing what is there: keys name their content).
    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), BucketError>;
    /// The object under `key`, `None` when there is none.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BucketError>;
}

/// S3's rules for one `PutObject` of ours: a key of 1 to 1,024 bytes, at most 5 GiB.
pub fn check_put(key: &str, size: u64) -> Result<(), BucketError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(BucketError::Refused(format!(
            "an object key is 1 to {MAX_KEY_BYTES} bytes, not {}",
            key.len()
        )));
    }
    if size > MAX_PUT_BYTES {
        return Err(BucketError::Refused(format!(
            "one PutObject holds at most {MAX_PUT_BYTES} bytes, not {size}"
        )));
    }
    Ok(())
}

pub use crate::event::item::s3_client;

/// The S3 adapter.
#[derive(Clone)]
pub struct S3Bucket {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Bucket {
    /// An adapter for `bucket`.
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        S3Bucket {
            client,
            bucket: bucket.into(),
        }
    }
}

#[async_trait]
impl BodyBucket for S3Bucket {
    fn name(&self) -> &str {
        &self.bucket
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), BucketError> {
        check_put(key, bytes.len() as u64)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(aws_sdk_s3::primitives::ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| BucketError::Unavailable(e.into()))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BucketError> {
        crate::event::item::get_object(&self.client, &self.bucket, key)
            .await
            .map_err(BucketError::Unavailable)
    }
}

/// An object's bytes and content type.
type Object = (Vec<u8>, String);

/// An in-memory bucket for unit tests and benches, with S3's key and size rules and an outage
/// switch.
#[derive(Default, Clone)]
pub struct MemoryBucket {
    objects: Arc<Mutex<HashMap<String, Object>>>,
    puts: Arc<Mutex<usize>>,
    down: Arc<Mutex<bool>>,
}

impl MemoryBucket {
    /// An empty bucket.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many objects it holds.
    pub fn len(&self) -> usize {
        self.objects.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many `put`s were made (a rewrite counts).
    pub fn puts(&self) -> usize {
        *self.puts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The keys, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    /// Simulate an outage, or end it.
    pub fn set_down(&self, down: bool) {
        *self.down.lock().unwrap_or_else(|p| p.into_inner()) = down;
    }

    fn check_up(&self) -> Result<(), BucketError> {
        if *self.down.lock().unwrap_or_else(|p| p.into_inner()) {
            return Err(BucketError::Unavailable("the in-memory bucket is down".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl BodyBucket for MemoryBucket {
    fn name(&self) -> &str {
        "memory"
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), BucketError> {
        self.check_up()?;
        check_put(key, bytes.len() as u64)?;
        *self.puts.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_owned(), (bytes, content_type.to_owned()));
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BucketError> {
        self.check_up()?;
        Ok(self
            .objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .map(|(b, _)| b.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_s3s_limits() {
        assert!(check_put(&body_key(&"a".repeat(64)), 6 * 1024 * 1024).is_ok());
        assert!(check_put("", 1).is_err());
        assert!(check_put(&"k".repeat(1025), 1).is_err());
        assert!(check_put("k", MAX_PUT_BYTES + 1).is_err());
        assert_eq!(
            parse_object_uri(&object_uri("b", "events/x.json")),
            Some(("b", "events/x.json"))
        );
        assert_eq!(parse_object_uri("s3://b"), None);
    }
}
