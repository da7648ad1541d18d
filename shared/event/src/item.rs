//! The stored item's codec: how the events table and the claim-check bucket keep an event, and
//! how a reader gets it back exactly as it was written.
//!
//! An event item keeps the CloudEvent as JSON, zstd-compressed, in its `body` binary attribute;
//! an event too large for an item is kept whole in the bucket as plain JSON, and the item's
//! `body_object` names it (`s3://<bucket>/<key>`). The receivers write both forms (the `wahooks`
//! crate's `store`); the fanout, the CLI and the workers read them here. With the `sdk` feature,
//! [`read_sdk_item`] reads an item as the AWS SDK returns it, following `body_object` with S3.

use crate::CloudEvent;

/// A stored frame larger than this (the receivers store at most 6 MiB) is decompressed as a
/// stream rather than into a buffer of the size the frame claims.
pub const PREALLOCATE_UP_TO: usize = 6 * 1024 * 1024;

/// zstd level for stored bodies: small JSON documents gain little past this.
const COMPRESSION_LEVEL: i32 = 9;

/// Above this size a body is compressed at [`FAST_COMPRESSION_LEVEL`]: level 9 runs at tens of
/// MB/s, so a 4.5 MB body would take most of a 256 MB function's second; level 3 runs about ten
/// times faster and loses a few percent.
const FAST_ABOVE_BYTES: usize = 256 * 1024;

/// zstd level for large bodies.
const FAST_COMPRESSION_LEVEL: i32 = 3;

thread_local! {
    // One compression context per thread: creating one per body cost more than compressing.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        std::cell::RefCell::new(zstd::bulk::Compressor::new(COMPRESSION_LEVEL).ok());
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        std::cell::RefCell::new(zstd::bulk::Decompressor::new().ok());
}

/// Compress bytes for a `body`/`raw` attribute (zstd, a self-describing frame).
pub fn compress(raw: &[u8]) -> Vec<u8> {
    if raw.len() > FAST_ABOVE_BYTES {
        return zstd::bulk::compress(raw, FAST_COMPRESSION_LEVEL)
            .unwrap_or_else(|_| zstd::encode_all(raw, FAST_COMPRESSION_LEVEL).unwrap_or_default());
    }
    COMPRESSOR
        .with(|c| c.borrow_mut().as_mut().and_then(|c| c.compress(raw).ok()))
        .unwrap_or_else(|| zstd::encode_all(raw, COMPRESSION_LEVEL).unwrap_or_default())
}

/// Decompress a stored `body`/`raw` attribute.
pub fn decompress(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    // The frame records its size (we wrote it).
    let size = zstd::zstd_safe::get_frame_content_size(bytes)
        .ok()
        .flatten()
        .filter(|s| *s <= PREALLOCATE_UP_TO as u64);
    match size {
        Some(size) => DECOMPRESSOR.with(|d| match d.borrow_mut().as_mut() {
            Some(d) => d.decompress(bytes, size as usize),
            None => zstd::decode_all(bytes),
        }),
        None => zstd::decode_all(bytes),
    }
}

/// The longest provider string kept verbatim in a key of the events table. DynamoDB allows
/// 2,048 bytes in a partition key and 1,024 in a sort key (index keys too); a longer part, or
/// one holding the `#` separator, is replaced by `~` and 32 hex digits of its SHA-256, so a key
/// stays within the limits and unambiguous whatever the provider sends.
pub const MAX_VERBATIM_PART: usize = 200;

/// A key part: the provider's text, or `~<hash>` when it is too long or holds `#`.
pub fn key_part(text: &str) -> String {
    use sha2::Digest;
    if text.len() <= MAX_VERBATIM_PART && !text.contains('#') && !text.starts_with('~') {
        text.to_owned()
    } else {
        format!("~{}", &hex::encode(sha2::Sha256::digest(text.as_bytes()))[..32])
    }
}

/// `s3://<bucket>/<key>`: how an item names an object.
pub fn object_uri(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

/// The bucket and key of an `s3://<bucket>/<key>` URI.
pub fn parse_object_uri(uri: &str) -> Option<(&str, &str)> {
    let (bucket, key) = uri.strip_prefix("s3://")?.split_once('/')?;
    (!bucket.is_empty() && !key.is_empty()).then_some((bucket, key))
}

/// Why an item could not be read back into an event.
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    /// The item has no `body` binary attribute.
    #[error("the item has no `body` attribute")]
    NoBody,
    /// The event is kept in the bucket (`body_object`), and the object could not be read now.
    #[error("the event's object `{0}` could not be read")]
    ObjectUnavailable(String, #[source] Box<dyn std::error::Error + Send + Sync>),
    /// The event is kept in the bucket, and the object is not there (expired?).
    #[error("the event's object `{0}` is missing")]
    ObjectMissing(String),
    /// `body` is not a zstd frame.
    #[error("the item's body is not zstd")]
    NotZstd(#[source] std::io::Error),
    /// `body` is not UTF-8 text.
    #[error("the item's body is not UTF-8")]
    NotUtf8(#[source] std::string::FromUtf8Error),
    /// `body` is not a CloudEvent.
    #[error("the item's body is not a CloudEvent")]
    NotAnEvent(#[source] serde_json::Error),
}

/// The CloudEvent stored in an event item's `body`.
pub fn event_of_item(body: Option<&[u8]>) -> Result<CloudEvent, ItemError> {
    stored_json_of_item(body).map(|(_, event)| event)
}

/// The JSON stored in an event item's `body`, exactly as it was written, and the CloudEvent read
/// from it. The JSON can hold more than this version's CloudEvent knows (a field or a value a
/// later wahooks wrote): what is published is this text, not the event written out again.
pub fn stored_json_of_item(body: Option<&[u8]>) -> Result<(String, CloudEvent), ItemError> {
    let bytes = decompress(body.ok_or(ItemError::NoBody)?).map_err(ItemError::NotZstd)?;
    stored_json_of_object(bytes)
}

/// The JSON of an event kept as an object (plain JSON, not compressed), and the CloudEvent.
pub fn stored_json_of_object(bytes: Vec<u8>) -> Result<(String, CloudEvent), ItemError> {
    let json = String::from_utf8(bytes).map_err(ItemError::NotUtf8)?;
    let event = serde_json::from_str(&json).map_err(ItemError::NotAnEvent)?;
    Ok((json, event))
}

#[cfg(feature = "sdk")]
mod sdk {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::types::AttributeValue;

    use super::{parse_object_uri, stored_json_of_item, stored_json_of_object, ItemError};
    use crate::CloudEvent;

    /// The CloudEvent of an item read with the SDK, whose event is in its `body` (not an object:
    /// see [`read_sdk_item`]).
    pub fn event_of_sdk_item(item: &HashMap<String, AttributeValue>) -> Result<CloudEvent, ItemError> {
        super::event_of_item(body_of(item))
    }

    fn body_of(item: &HashMap<String, AttributeValue>) -> Option<&[u8]> {
        item.get("body").and_then(|b| b.as_b().ok()).map(|b| b.as_ref())
    }

    /// The stored JSON and CloudEvent of an item read with the SDK, wherever its event is kept:
    /// its `body`, or the object `body_object` names (read with `s3`).
    pub async fn read_sdk_item(
        item: &HashMap<String, AttributeValue>,
        s3: &aws_sdk_s3::Client,
    ) -> Result<(String, CloudEvent), ItemError> {
        let Some(uri) = item.get("body_object").and_then(|v| v.as_s().ok()) else {
            return stored_json_of_item(body_of(item));
        };
        let (bucket, key) = parse_object_uri(uri).ok_or_else(|| ItemError::ObjectMissing(uri.to_owned()))?;
        let bytes = get_object(s3, bucket, key)
            .await
            .map_err(|e| ItemError::ObjectUnavailable(uri.to_owned(), e))?
            .ok_or_else(|| ItemError::ObjectMissing(uri.to_owned()))?;
        stored_json_of_object(bytes)
    }

    /// An S3 client for `sdk`: path-style addressing when an endpoint is configured (a local
    /// stand-in on loopback has no per-bucket host names), virtual-hosted in AWS.
    pub fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// The bytes of the object `key` in `bucket`, `None` when there is none (S3's `NoSuchKey`).
    pub async fn get_object(
        s3: &aws_sdk_s3::Client,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, Box<dyn std::error::Error + Send + Sync>> {
        let out = match s3.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let bytes = out.body.collect().await?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }
}

#[cfg(feature = "sdk")]
pub use sdk::{event_of_sdk_item, get_object, read_sdk_item, s3_client};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_through_zstd() {
        for body in [&b""[..], b"{}", &[b'x'; 100_000][..]] {
            let z = compress(body);
            assert_eq!(decompress(&z).expect("frame"), body);
        }
        // A frame without a recorded size (a streaming writer) still decodes.
        let mut streamed = Vec::new();
        {
            let mut w = zstd::stream::Encoder::new(&mut streamed, 3).expect("encoder");
            std::io::Write::write_all(&mut w, b"{\"a\":1}").expect("write");
            w.finish().expect("finish");
        }
        assert_eq!(decompress(&streamed).expect("frame"), b"{\"a\":1}");
        assert!(decompress(b"not zstd").is_err());
    }

    #[test]
    fn object_uris_name_a_bucket_and_a_key() {
        let uri = object_uri("b", "events/x.json");
        assert_eq!(parse_object_uri(&uri), Some(("b", "events/x.json")));
        assert_eq!(parse_object_uri("s3://b/"), None);
        assert_eq!(parse_object_uri("s3:///k"), None);
        assert_eq!(parse_object_uri("https://b/k"), None);
    }

    #[test]
    fn a_body_reads_back_as_written() {
        let json = r#"{"specversion":"1.0","id":"00000000000000000000000000000000","source":"wahooks/zapi/i","type":"whatsapp.message.received","time":"2025-01-01T00:00:00.000Z","datacontenttype":"application/json","provider":"zapi","instance":"i","endpoint":"e","receivedat":"2025-01-01T00:00:01.000Z","data":{"later_field":1}}"#;
        let (text, event) = stored_json_of_item(Some(&compress(json.as_bytes()))).expect("an event");
        assert_eq!(text, json, "the stored text, later fields and all");
        assert_eq!(event.receivedat, "2025-01-01T00:00:01.000Z");
        assert!(matches!(event_of_item(None), Err(ItemError::NoBody)));
        assert!(matches!(event_of_item(Some(b"not zstd")), Err(ItemError::NotZstd(_))));
        assert!(matches!(
            event_of_item(Some(&compress(b"{}"))),
            Err(ItemError::NotAnEvent(_))
        ));
        let big = vec![b'x'; PREALLOCATE_UP_TO + 1];
        assert_eq!(decompress(&compress(&big)).expect("streamed"), big);
    }
}
