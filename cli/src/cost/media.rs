//! What one archived media file costs: a sample of Z-API images (served by a stand-in CDN on
//! loopback) through the receivers, the stream, the fanout's notes and the `media-archiver`,
//! its S3, DynamoDB and SQS requests counted on the way (SDK interceptors).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept};
use wahooks::local::{apigw_request, LocalStack};
use wahooks::store::{write_units, DynamoEventStore};
use wahooks::{Provider, Route};

/// Files in the sample, and each one's size.
pub(super) const FILES: usize = 20;
/// 200 KB: a WhatsApp photo.
pub(super) const FILE_BYTES: usize = 200 * 1024;

/// The archiver's requests, counted.
#[derive(Debug, Default)]
pub(super) struct MediaCounts {
    pub(super) s3_puts: AtomicUsize,
    pub(super) s3_heads: AtomicUsize,
    pub(super) s3_parts: AtomicUsize,
    pub(super) gets: AtomicUsize,
    pub(super) puts: AtomicUsize,
    pub(super) write_units: AtomicUsize,
}

/// The interceptor counting them (the same trait for every SDK client).
#[derive(Debug, Clone)]
struct Counting(Arc<MediaCounts>);

impl Intercept for Counting {
    fn name(&self) -> &'static str {
        "CountingMedia"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let input = context.input();
        let c = &self.0;
        if input
            .downcast_ref::<aws_sdk_s3::operation::put_object::PutObjectInput>()
            .is_some()
        {
            c.s3_puts.fetch_add(1, Ordering::Relaxed);
        } else if input
            .downcast_ref::<aws_sdk_s3::operation::head_object::HeadObjectInput>()
            .is_some()
        {
            c.s3_heads.fetch_add(1, Ordering::Relaxed);
        } else if input
            .downcast_ref::<aws_sdk_s3::operation::upload_part::UploadPartInput>()
            .is_some()
        {
            c.s3_parts.fetch_add(1, Ordering::Relaxed);
        } else if input
            .downcast_ref::<aws_sdk_dynamodb::operation::get_item::GetItemInput>()
            .is_some()
        {
            c.gets.fetch_add(1, Ordering::Relaxed);
        } else if let Some(put) = input.downcast_ref::<aws_sdk_dynamodb::operation::put_item::PutItemInput>() {
            c.puts.fetch_add(1, Ordering::Relaxed);
            if let Some(item) = put.item() {
                let (base, index) = write_units(item);
                c.write_units.fetch_add(base + index, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

/// What the sample measured.
#[derive(Debug, Default)]
pub(super) struct MediaMeasured {
    pub(super) files: usize,
    pub(super) archived: usize,
    pub(super) s3_puts: usize,
    pub(super) s3_heads: usize,
    pub(super) s3_parts: usize,
    pub(super) gets: usize,
    pub(super) puts: usize,
    pub(super) write_units: usize,
    /// `SendMessageBatch` calls carrying the fanout's media notes.
    pub(super) note_batches: usize,
}

/// A stand-in CDN on loopback: every path answers the same file.
async fn cdn(file: Arc<Vec<u8>>) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let file = file.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 2048];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: image/jpeg\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    file.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&file).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Ok(base)
}

/// Archive [`FILES`] images through the stack, counting the archiver's requests; `note_batches`
/// counts the fanout's `SendMessageBatch` to the media queue so far.
pub(super) async fn measure(
    stack: &LocalStack,
    driver: &mut wahooks::stream_driver::StreamDriver,
    note_batches: &AtomicUsize,
) -> anyhow::Result<MediaMeasured> {
    let url = stack
        .config
        .media
        .url
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the local stack has no media queue"))?;
    let bucket = stack
        .config
        .body_bucket
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the local stack has no bucket"))?;
    // The mix's own notes name files on hosts this machine cannot reach: not part of the sample.
    stack.sqs.purge_queue().queue_url(&url).send().await?;
    let file: Arc<Vec<u8>> = Arc::new((0..FILE_BYTES).map(|i| (i * 31 % 251) as u8).collect());
    let base = cdn(file).await?;
    let counts = Arc::new(MediaCounts::default());
    let archiver = counted_archiver(stack, &counts, &url, bucket)?;
    let before = note_batches.load(Ordering::Relaxed);
    send_images(stack, &base).await?;
    driver
        .drain(&stack.fanout, Duration::from_secs(120))
        .await
        .map_err(|e| anyhow::anyhow!(e).context("the stream"))?;
    stack
        .drain(&url, |event| {
            let archiver = archiver.clone();
            async move { archiver.handle(event).await }
        })
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let archived = wahooks_archived(stack).await?;
    let c = |a: &AtomicUsize| a.load(Ordering::Relaxed);
    Ok(MediaMeasured {
        files: FILES,
        archived,
        s3_puts: c(&counts.s3_puts),
        s3_heads: c(&counts.s3_heads),
        s3_parts: c(&counts.s3_parts),
        gets: c(&counts.gets),
        puts: c(&counts.puts),
        write_units: c(&counts.write_units),
        note_batches: note_batches.load(Ordering::Relaxed) - before,
    })
}

/// The stack's archiver on clients that count its requests into `counts`.
fn counted_archiver(
    stack: &LocalStack,
    counts: &Arc<MediaCounts>,
    url: &str,
    bucket: String,
) -> anyhow::Result<wahooks::media::Archiver> {
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&stack.sdk)
            .interceptor(Counting(counts.clone()))
            .build(),
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&stack.sdk)
            .force_path_style(true)
            .interceptor(Counting(counts.clone()))
            .build(),
    );
    let store = DynamoEventStore::new(dynamo.clone(), &stack.config.events_table, stack.config.retention_days);
    let fetcher = wahooks::media::fetch::SafeFetcher::new(wahooks::media::fetch::FetchPolicy::local())
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(wahooks::media::Archiver::new(
        dynamo,
        &stack.config.events_table,
        Arc::new(store),
        s3,
        bucket,
        fetcher,
        stack.sqs.clone(),
        url,
    ))
}

/// [`FILES`] Z-API image messages through the receiver, each naming a file on `base`.
async fn send_images(stack: &LocalStack, base: &str) -> anyhow::Result<()> {
    let token = stack.url_token_endpoint(Provider::Zapi).await?;
    let path = format!("/v1/hooks/{token}/message-received");
    let headers = [("content-type".to_owned(), "application/json".to_owned())];
    for i in 0..FILES {
        let body = serde_json::to_vec(&serde_json::json!({
            "type": "ReceivedCallback", "instanceId": "COST-MEDIA", "messageId": format!("IMG{i}"),
            "phone": format!("55119{i:08}"), "fromMe": false, "momment": 1757390383000u64,
            "image": {"imageUrl": format!("{base}/file{i}.jpg"), "mimeType": "image/jpeg"}
        }))?;
        let response = stack
            .receiver
            .handle(
                Route::MessageReceived,
                apigw_request("POST", &path, "", &headers, &body),
            )
            .await;
        anyhow::ensure!(
            response.status() == 200,
            "a sample image answered {}",
            response.status()
        );
    }
    Ok(())
}

/// How many `whatsapp.media.archived` the table holds.
async fn wahooks_archived(stack: &LocalStack) -> anyhow::Result<usize> {
    let out = stack
        .dynamo
        .scan()
        .table_name(&stack.config.events_table)
        .filter_expression("#t = :t")
        .expression_attribute_names("#t", "type")
        .expression_attribute_values(
            ":t",
            aws_sdk_dynamodb::types::AttributeValue::S(wahooks::EventType::MediaArchived.as_str().into()),
        )
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await?;
    Ok(out.len())
}
