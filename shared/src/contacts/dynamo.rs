//! The identity map in DynamoDB: one item per alias in the endpoints table
//! (`pk = A#<provider>#<instance>#<alias>`; the contact as JSON in `contact`, and `version`),
//! read with `GetItem`, written with a conditional `PutItem` (one item) or `TransactWriteItems`
//! (several: all or none). The endpoints table has no stream: alias items are never published
//! (and moto, the local stand-in, loses the stream records that follow a cancelled transaction
//! on a table that has one).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};

use crate::event::{Alias, Provider};
use crate::registry::{ContactBook, ContactWrite, DynamoRegistry, StoredContact};
use crate::store::{classify, keys, Classified, StoreError};

/// An alias item's key.
fn key(provider: Provider, instance: &str, alias: &Alias) -> HashMap<String, AttributeValue> {
    HashMap::from([(
        "pk".to_owned(),
        AttributeValue::S(keys::alias_pk(provider.as_str(), instance, alias)),
    )])
}

/// An alias item as read, `None` when it does not hold a contact (never written by us).
fn stored(item: &HashMap<String, AttributeValue>) -> Option<StoredContact> {
    let contact = serde_json::from_str(item.get("contact")?.as_s().ok()?).ok()?;
    let version = item.get("version")?.as_n().ok()?.parse().ok()?;
    Some(StoredContact { contact, version })
}

/// One alias item to write, with its condition.
fn put(table: &str, provider: Provider, instance: &str, w: &ContactWrite) -> Result<Put, StoreError> {
    let mut item = key(provider, instance, &w.alias);
    let json = serde_json::to_string(&w.contact).map_err(|e| StoreError::Rejected(e.to_string()))?;
    item.insert("contact".to_owned(), AttributeValue::S(json));
    item.insert(
        "version".to_owned(),
        AttributeValue::N(w.expect.map_or(1, |v| v + 1).to_string()),
    );
    let put = Put::builder().table_name(table).set_item(Some(item));
    let put = match w.expect {
        None => put.condition_expression("attribute_not_exists(pk)"),
        Some(v) => put
            .condition_expression("version = :v")
            .expression_attribute_values(":v", AttributeValue::N(v.to_string())),
    };
    put.build().map_err(|e| StoreError::Rejected(e.to_string()))
}

#[async_trait]
impl ContactBook for DynamoRegistry {
    async fn read_contacts(
        &self,
        provider: Provider,
        instance: &str,
        aliases: &[Alias],
        consistent: bool,
    ) -> Result<Vec<(Alias, StoredContact)>, StoreError> {
        let reads = aliases.iter().map(|alias| async move {
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(key(provider, instance, alias)))
                .consistent_read(consistent)
                .send()
                .await
                .map_err(StoreError::unavailable)?;
            Ok::<_, StoreError>(out.item().and_then(stored).map(|s| (alias.clone(), s)))
        });
        let found = futures::future::join_all(reads).await;
        found.into_iter().filter_map(Result::transpose).collect()
    }

    async fn write_contacts(
        &self,
        provider: Provider,
        instance: &str,
        writes: &[ContactWrite],
    ) -> Result<bool, StoreError> {
        super::transaction_keys(provider, instance, writes)?;
        let puts = writes
            .iter()
            .map(|w| put(&self.table, provider, instance, w))
            .collect::<Result<Vec<Put>, StoreError>>()?;
        // One item: a conditional put (a transaction costs twice the write units).
        if let [single] = puts.as_slice() {
            let sent = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(single.item().clone()))
                .set_condition_expression(Some(single.condition_expression().unwrap_or_default().to_owned()))
                .set_expression_attribute_values(single.expression_attribute_values().cloned())
                .send()
                .await;
            return match sent {
                Ok(_) => Ok(true),
                Err(e) => match classify(e) {
                    Classified::ConditionFailed => Ok(false),
                    Classified::Error(e) => Err(e),
                },
            };
        }
        let items = puts
            .into_iter()
            .map(|p| TransactWriteItem::builder().put(p).build())
            .collect();
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(e) => {
                // A condition that failed cancels the transaction: someone wrote first.
                use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
                let conflict = match e.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(c)) => c
                        .cancellation_reasons()
                        .iter()
                        .any(|r| r.code() == Some("ConditionalCheckFailed")),
                    _ => false,
                };
                if conflict {
                    return Ok(false);
                }
                match classify(e) {
                    Classified::ConditionFailed => Ok(false),
                    Classified::Error(e) => Err(e),
                }
            }
        }
    }
}
