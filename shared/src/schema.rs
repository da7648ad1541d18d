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

fn gsi(name: &str, pk: &str, sk: &str) -> GlobalSecondaryIndex {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(pk, KeyType::Hash))
        .key_schema(key(sk, KeyType::Range))
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
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
