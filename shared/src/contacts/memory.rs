//! The identity map in memory (unit tests, benches, the simulation), with DynamoDB's rules for
//! it: conditions on each item, all or none, and the transaction's own rules (at most 100 items,
//! none twice: `transaction_keys`, as the DynamoDB adapter checks them).

use async_trait::async_trait;

use crate::event::{Alias, Provider};
use crate::registry::{ContactBook, ContactWrite, MemoryRegistry, StoredContact};
use crate::store::{keys, StoreError};

#[async_trait]
impl ContactBook for MemoryRegistry {
    async fn read_contacts(
        &self,
        provider: Provider,
        instance: &str,
        aliases: &[Alias],
        _consistent: bool,
    ) -> Result<Vec<(Alias, StoredContact)>, StoreError> {
        let items = self.contacts.lock().unwrap_or_else(|p| p.into_inner());
        Ok(aliases
            .iter()
            .filter_map(|a| {
                let (json, version) = items.get(&keys::alias_pk(provider.as_str(), instance, a))?;
                let contact = serde_json::from_str(json).ok()?;
                Some((
                    a.clone(),
                    StoredContact {
                        contact,
                        version: *version,
                    },
                ))
            })
            .collect())
    }

    async fn write_contacts(
        &self,
        provider: Provider,
        instance: &str,
        writes: &[ContactWrite],
    ) -> Result<bool, StoreError> {
        let pks = super::transaction_keys(provider, instance, writes)?;
        let mut items = self.contacts.lock().unwrap_or_else(|p| p.into_inner());
        let holds = |pk: &String, expect: Option<u64>| match (items.get(pk), expect) {
            (None, None) => true,
            (Some((_, v)), Some(e)) => *v == e,
            _ => false,
        };
        if !pks.iter().zip(writes).all(|(pk, w)| holds(pk, w.expect)) {
            return Ok(false);
        }
        for (pk, w) in pks.into_iter().zip(writes) {
            let json = serde_json::to_string(&w.contact).map_err(|e| StoreError::Rejected(e.to_string()))?;
            items.insert(pk, (json, w.expect.map_or(1, |v| v + 1)));
        }
        Ok(true)
    }
}
