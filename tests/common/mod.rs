//! Helpers shared by the integration tests: fixtures, reading a table back, and (in `moto`) the
//! local AWS stand-in.
#![allow(dead_code)]

pub mod apigw;
pub mod moto;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aws_sdk_dynamodb::types::AttributeValue;
use wahooks::Provider;

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// Every item of a table (events, quarantined bodies), as the tests read it back.
pub async fn table_items(dynamo: &aws_sdk_dynamodb::Client, table: &str) -> Vec<Item> {
    let out = dynamo.scan().table_name(table).send().await.expect("scan");
    out.items().to_vec()
}

/// A string attribute of an item, or `""`.
pub fn s<'i>(item: &'i Item, key: &str) -> &'i str {
    item.get(key).and_then(|v| v.as_s().ok()).map_or("", String::as_str)
}

/// `tests/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

/// The fixture folder of a provider.
pub fn provider_dir(provider: Provider) -> PathBuf {
    fixtures_dir().join(provider.as_str())
}

/// Every payload fixture of a provider as (file name, bytes), sorted by name. Header captures
/// (`http-headers.*`) are request headers, not bodies, and are left out.
pub fn payloads(provider: Provider) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(provider_dir(provider))
        .expect("fixture folder exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("http-headers."))
        })
        .map(|p| {
            let name = p.file_name().expect("file").to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("readable fixture"))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures for {provider}");
    files
}

/// Every payload fixture of every provider.
pub fn all_payloads() -> Vec<(Provider, String, Vec<u8>)> {
    Provider::ALL
        .into_iter()
        .flat_map(|p| payloads(p).into_iter().map(move |(n, b)| (p, n, b)))
        .collect()
}
