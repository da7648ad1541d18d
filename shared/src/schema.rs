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

/// The attributes the GSIs carry besides the keys: what a timeline needs (`wahooks events`
/// reads `event`), not the stored body. Every GSI entry is a write of its own, billed per KB:
/// without `raw` an entry fits in one write unit, where a copy of the whole item took two.
pub const GSI_ATTRIBUTES: [&str; 3] = ["event", "type", "occurred_at"];

fn gsi(name: &str, pk: &str, sk: &str) -> GlobalSecondaryIndex {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(pk, KeyType::Hash))
        .key_schema(key(sk, KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::Include)
                .set_non_key_attributes(Some(GSI_ATTRIBUTES.map(str::to_owned).to_vec()))
                .build(),
        )
        .build()
        .expect("index complete")
}

/// Create the `events` table: pk/sk, gsi1 (chat timeline), gsi2 (message lifecycle), stream
/// NEW_IMAGE, on-demand.
pub async fn create_events_table(client: &Client, name: &str) -> Result<(), aws_sdk_dynamodb::Error> {
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .set_attribute_definitions(Some(
            ["pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"].map(attr).to_vec(),
        ))
        .global_secondary_indexes(gsi("gsi1", "gsi1pk", "gsi1sk"))
        .global_secondary_indexes(gsi("gsi2", "gsi2pk", "gsi2sk"))
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
