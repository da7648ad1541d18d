//! The two tables' definitions for the local stand-in and the tests. They mirror
//! `infra/template.yaml` (keys, GSIs, stream); a test compares the two.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType,
};
use aws_sdk_dynamodb::Client;

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("name and type set")
}

fn attr(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("name and type set")
}

/// The one index, `gsi1`: a message's lifecycle (`M#<provider>#<instance>#<message id>` /
/// `<time ms>#<event id>`), sparse (only events with a message id have its keys) and keys-only:
/// an entry costs one write unit whatever the event's size, and a listing reads the events it
/// names from the table (`BatchGetItem`). A chat's timeline needs no index: the table is
/// partitioned by chat.
fn gsi(name: &str, pk: &str, sk: &str) -> GlobalSecondaryIndex {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(pk, KeyType::Hash))
        .key_schema(key(sk, KeyType::Range))
        .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
        .build()
        .expect("index complete")
}

/// Create the `events` table: pk (the chat) / sk (the event), gsi1 (message lifecycle),
/// stream NEW_IMAGE, on-demand.
pub async fn create_events_table(client: &Client, name: &str) -> Result<(), aws_sdk_dynamodb::Error> {
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .set_attribute_definitions(Some(["pk", "sk", "gsi1pk", "gsi1sk"].map(attr).to_vec()))
        .global_secondary_indexes(gsi("gsi1", "gsi1pk", "gsi1sk"))
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .expect("stream spec"),
        )
        .send()
        .await?;
    Ok(())
}

/// Create the `endpoints` table: pk only, on-demand.
pub async fn create_endpoints_table(client: &Client, name: &str) -> Result<(), aws_sdk_dynamodb::Error> {
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash))
        .attribute_definitions(attr("pk"))
        .send()
        .await?;
    Ok(())
}

/// Whether a default queue is FIFO: all five are. Per-chat order matters for every kind
/// (typing then paused, sent then read), and FIFO deduplication (the event id) absorbs the
/// re-sends a fanout retry makes, so no queue ever holds an event twice. (The load harness
/// found standard queues doubling events after SQS faults.)
pub fn is_fifo(queue: &str) -> bool {
    crate::fanout::DEFAULT_QUEUES.contains(&queue)
}

/// Create the default queues ([`crate::fanout::DEFAULT_QUEUES`]) named `<prefix>-<name>`
/// (`.fifo` where [`is_fifo`]), each with `MaximumMessageSize` 1 MiB, as `infra/` does.
/// Returns (name, URL) pairs, the shape of [`crate::config::Config::queues`]. Creating an
/// existing queue with the same attributes returns it, so this is safe to run twice.
pub async fn create_queues(
    sqs: &aws_sdk_sqs::Client,
    prefix: &str,
) -> Result<Vec<(String, String)>, aws_sdk_sqs::Error> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let mut out = Vec::new();
    for name in crate::fanout::DEFAULT_QUEUES {
        let fifo = is_fifo(name);
        let mut req = sqs
            .create_queue()
            .queue_name(format!("{prefix}-{name}{}", if fifo { ".fifo" } else { "" }))
            .attributes(A::MaximumMessageSize, crate::fanout::MAX_BATCH_BYTES.to_string());
        if fifo {
            req = req.attributes(A::FifoQueue, "true");
        }
        let url = req.send().await?.queue_url().unwrap_or_default().to_owned();
        out.push((name.to_owned(), url));
    }
    Ok(out)
}

/// Create the on-failure destination of the stream mapping: `<prefix>-stream-failures`, a
/// standard queue (Lambda's destinations cannot be FIFO) keeping messages 14 days, as `infra/`
/// does. Returns its URL.
pub async fn create_failures_queue(sqs: &aws_sdk_sqs::Client, prefix: &str) -> Result<String, aws_sdk_sqs::Error> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = sqs
        .create_queue()
        .queue_name(format!("{prefix}-stream-failures"))
        .attributes(A::MessageRetentionPeriod, "1209600")
        .send()
        .await?;
    Ok(out.queue_url().unwrap_or_default().to_owned())
}

/// Create the queue of stream records the fanout can never publish (`<prefix>-parked`, standard,
/// 14 days, as `infra/template.yaml`'s `ParkedRecordsQueue`); returns its URL.
pub async fn create_parked_queue(sqs: &aws_sdk_sqs::Client, prefix: &str) -> Result<String, aws_sdk_sqs::Error> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = sqs
        .create_queue()
        .queue_name(format!("{prefix}-parked"))
        .attributes(A::MessageRetentionPeriod, "1209600")
        .send()
        .await?;
    Ok(out.queue_url().unwrap_or_default().to_owned())
}

/// Create the queue End User Messaging Social's SNS topic delivers to (`<prefix>-social`,
/// standard: SNS standard topics neither order nor deduplicate), as `infra/template.yaml`'s
/// `SocialQueue` (the template adds its DLQ and the policy that lets the topic send).
pub async fn create_social_queue(sqs: &aws_sdk_sqs::Client, prefix: &str) -> Result<String, aws_sdk_sqs::Error> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = sqs
        .create_queue()
        .queue_name(format!("{prefix}-social"))
        .attributes(A::MessageRetentionPeriod, "1209600")
        // Six times the function's timeout, as AWS advises for a queue a Lambda reads.
        .attributes(A::VisibilityTimeout, "60")
        .send()
        .await?;
    Ok(out.queue_url().unwrap_or_default().to_owned())
}

/// Create the `timers` queue (`<prefix>-timers`), as `infra/template.yaml`'s `TimersQueue`: a
/// standard queue (FIFO queues take no per-message delay), its visibility six times the
/// function's timeout.
pub async fn create_timers_queue(sqs: &aws_sdk_sqs::Client, prefix: &str) -> Result<String, aws_sdk_sqs::Error> {
    create_function_queue(sqs, &format!("{prefix}-timers"), 60).await
}

/// Create the `media` queue (`<prefix>-media`), as `infra/template.yaml`'s `MediaQueue`: standard
/// (its retries are delayed messages), its visibility six times the archiver's timeout.
pub async fn create_media_queue(sqs: &aws_sdk_sqs::Client, prefix: &str) -> Result<String, aws_sdk_sqs::Error> {
    create_function_queue(sqs, &format!("{prefix}-media"), 720).await
}

/// A standard queue a function reads, kept 14 days, visible again after `visibility_seconds`.
async fn create_function_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    visibility_seconds: u32,
) -> Result<String, aws_sdk_sqs::Error> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = sqs
        .create_queue()
        .queue_name(name)
        .attributes(A::MessageRetentionPeriod, "1209600")
        .attributes(A::VisibilityTimeout, visibility_seconds.to_string())
        .send()
        .await?;
    Ok(out.queue_url().unwrap_or_default().to_owned())
}

/// The claim-check bucket's name for a local stack of `prefix`: `<prefix>-bodies`, made a valid
/// S3 bucket name (3-63 lower-case letters, digits and hyphens).
pub fn local_bucket_name(prefix: &str) -> String {
    let mut name: String = format!("{prefix}-bodies")
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    name.truncate(63);
    name.trim_matches('-').to_owned()
}

/// Create the claim-check bucket (unless it exists), as `infra/template.yaml`'s `BodyBucket`
/// (the template adds its policies and lifecycle).
pub async fn create_bucket(s3: &aws_sdk_s3::Client, name: &str) -> Result<(), aws_sdk_s3::Error> {
    if s3.head_bucket().bucket(name).send().await.is_ok() {
        return Ok(());
    }
    s3.create_bucket().bucket(name).send().await?;
    Ok(())
}

/// The local stack's secrets key alias (the template's `SecretsKeyAlias` is
/// `alias/<stack>-secrets`).
pub fn local_secrets_alias(prefix: &str) -> String {
    format!("alias/{prefix}-secrets")
}

/// Create the secrets key signing secrets are sealed under, with its alias, unless the alias
/// exists (as `infra/template.yaml`'s `SecretsKey`, whose key policy adds who may decrypt);
/// returns the alias.
pub async fn create_secrets_key(kms: &aws_sdk_kms::Client, prefix: &str) -> Result<String, aws_sdk_kms::Error> {
    let alias = local_secrets_alias(prefix);
    if kms.describe_key().key_id(&alias).send().await.is_ok() {
        return Ok(alias);
    }
    let key = kms
        .create_key()
        .description("wahooks endpoint signing secrets (local stack)")
        .send()
        .await?;
    let id = key.key_metadata().map(|m| m.key_id().to_owned()).unwrap_or_default();
    kms.create_alias().alias_name(&alias).target_key_id(id).send().await?;
    Ok(alias)
}
