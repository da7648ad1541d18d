//! Writing a media file to S3 as it streams: parts of [`PART_BYTES`] (S3's smallest part is
//! 5 MiB, but for the last), never the whole file in memory; a file smaller than one part is one
//! `PutObject`. Its size and SHA-256 are counted on the way; an upload that fails is aborted (no
//! parts left to bill).

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use sha2::{Digest, Sha256};

use super::FetchError;

/// The size of each part but the last: 8 MiB (S3 takes 5 MiB to 5 GiB, and at most 10,000
/// parts: 100 MB is 13 parts).
pub const PART_BYTES: usize = 8 * 1024 * 1024;

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Bytes.
    pub bytes: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// One object being written.
pub struct Upload<'a> {
    s3: &'a aws_sdk_s3::Client,
    bucket: &'a str,
    key: &'a str,
    content_type: String,
    buffer: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    hasher: Sha256,
    bytes: u64,
}

fn unavailable(e: impl std::error::Error + 'static) -> FetchError {
    FetchError::Transient(format!("S3: {}", crate::error_chain(&e)))
}

impl<'a> Upload<'a> {
    /// An object `key` in `bucket`, of `content_type`.
    pub fn new(s3: &'a aws_sdk_s3::Client, bucket: &'a str, key: &'a str, content_type: &str) -> Self {
        Upload {
            s3,
            bucket,
            key,
            content_type: content_type.to_owned(),
            buffer: Vec::new(),
            upload_id: None,
            parts: Vec::new(),
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Take the next piece of the file.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), FetchError> {
        self.hasher.update(chunk);
        self.bytes += chunk.len() as u64;
        self.buffer.extend_from_slice(chunk);
        while self.buffer.len() >= PART_BYTES {
            let rest = self.buffer.split_off(PART_BYTES);
            let part = std::mem::replace(&mut self.buffer, rest);
            self.upload_part(part).await?;
        }
        Ok(())
    }

    async fn upload_part(&mut self, part: Vec<u8>) -> Result<(), FetchError> {
        let id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let out = self
                    .s3
                    .create_multipart_upload()
                    .bucket(self.bucket)
                    .key(self.key)
                    .content_type(&self.content_type)
                    .send()
                    .await
                    .map_err(unavailable)?;
                let id = out.upload_id().unwrap_or_default().to_owned();
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = i32::try_from(self.parts.len() + 1).unwrap_or(i32::MAX);
        let out = self
            .s3
            .upload_part()
            .bucket(self.bucket)
            .key(self.key)
            .upload_id(&id)
            .part_number(number)
            .body(ByteStream::from(part))
            .send()
            .await
            .map_err(unavailable)?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_owned))
                .build(),
        );
        Ok(())
    }

    /// Write what is left and finish the object.
    pub async fn finish(mut self) -> Result<Written, FetchError> {
        let written = Written {
            bytes: self.bytes,
            sha256: hex::encode(self.hasher.clone().finalize()),
        };
        if self.upload_id.is_none() {
            let body = std::mem::take(&mut self.buffer);
            self.s3
                .put_object()
                .bucket(self.bucket)
                .key(self.key)
                .content_type(&self.content_type)
                .metadata("sha256", &written.sha256)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(unavailable)?;
            return Ok(written);
        }
        if !self.buffer.is_empty() {
            let last = std::mem::take(&mut self.buffer);
            self.upload_part(last).await?;
        }
        let id = self.upload_id.clone().unwrap_or_default();
        self.s3
            .complete_multipart_upload()
            .bucket(self.bucket)
            .key(self.key)
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(std::mem::take(&mut self.parts)))
                    .build(),
            )
            .send()
            .await
            .map_err(unavailable)?;
        Ok(written)
    }

    /// Give up: abort a multipart upload begun (its parts are not kept or billed).
    pub async fn abort(self) {
        if let Some(id) = &self.upload_id {
            let _ = self
                .s3
                .abort_multipart_upload()
                .bucket(self.bucket)
                .key(self.key)
                .upload_id(id)
                .send()
                .await;
        }
    }
}

/// An object already written: its size, content type and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// What was written.
    pub written: Written,
    /// Its content type.
    pub content_type: Option<String>,
}

/// Whether `key` is already in `bucket` (a note handled twice, a retry after the file was
/// written): what it holds. Its SHA-256 is its metadata's (one `PutObject`), else read back
/// (streamed: a multipart object, written before its SHA-256 was known).
pub async fn existing(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Option<Kept>, FetchError> {
    let head = match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(out) => out,
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => return Ok(None),
        Err(e) => return Err(unavailable(e)),
    };
    let bytes = head.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
    let content_type = head.content_type().map(str::to_owned);
    let sha256 = match head.metadata().and_then(|m| m.get("sha256")).cloned() {
        Some(sha) => sha,
        None => {
            let mut body = s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(unavailable)?
                .body;
            let mut hasher = Sha256::new();
            while let Some(chunk) = body.try_next().await.map_err(unavailable)? {
                hasher.update(&chunk);
            }
            hex::encode(hasher.finalize())
        }
    };
    Ok(Some(Kept {
        written: Written { bytes, sha256 },
        content_type,
    }))
}
