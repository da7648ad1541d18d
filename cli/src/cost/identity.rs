//! What the identity map costs (`crate::cost`'s row "identity map"): the receiver's reads and
//! writes of alias items (`A#…`, sk `A`), counted on the way to DynamoDB by an SDK interceptor.
//! A read is a `GetItem` of one alias item (under 4 KB: half a read unit eventually consistent,
//! one strongly consistent, as the receiver reads before it writes); a write is a `PutItem` (one
//! alias item, a new person seen by one alias) or the puts of a `TransactWriteItems` (twice the
//! write units: DynamoDB bills a transactional write double).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept};
use aws_sdk_dynamodb::operation::get_item::GetItemInput;
use aws_sdk_dynamodb::operation::put_item::PutItemInput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_sdk_dynamodb::types::AttributeValue;
use wahooks::store::write_units;

use super::{price, Measured};

/// The alias items' requests so far.
#[derive(Debug, Default)]
pub(super) struct AliasCounts {
    reads: AtomicUsize,
    /// In halves of a read unit.
    read_halves: AtomicUsize,
    puts: AtomicUsize,
    transactions: AtomicUsize,
    write_units: AtomicUsize,
}

/// What the mix cost the identity map.
#[derive(Debug, Default, Clone)]
pub(super) struct IdentityMeasured {
    /// `GetItem` of alias items.
    pub(super) reads: usize,
    /// Their read units, in halves.
    pub(super) read_halves: usize,
    /// Alias items written (by a `PutItem` or in a transaction).
    pub(super) puts: usize,
    /// `TransactWriteItems` calls.
    pub(super) transactions: usize,
    /// Write units billed for them.
    pub(super) write_units: usize,
    /// Alias items in the endpoints table at the end, and their bytes (DynamoDB's 100 each
    /// included).
    pub(super) items: usize,
    pub(super) bytes: usize,
}

impl AliasCounts {
    pub(super) fn measured(&self) -> IdentityMeasured {
        let c = |a: &AtomicUsize| a.load(Ordering::Relaxed);
        IdentityMeasured {
            reads: c(&self.reads),
            read_halves: c(&self.read_halves),
            puts: c(&self.puts),
            transactions: c(&self.transactions),
            write_units: c(&self.write_units),
            items: 0,
            bytes: 0,
        }
    }
}

/// Whether `item` (or a key) is an alias item's (`A#…` in the endpoints table).
fn is_alias(item: &std::collections::HashMap<String, AttributeValue>) -> bool {
    item.get("pk")
        .and_then(|v| v.as_s().ok())
        .is_some_and(|pk| pk.starts_with("A#"))
}

/// The alias items the endpoints table holds at the end, and their bytes, into `m`.
pub(super) async fn count_items(stack: &wahooks::local::LocalStack, m: &mut Measured) -> anyhow::Result<()> {
    let mut start = None;
    loop {
        let page = stack
            .dynamo
            .scan()
            .table_name(&stack.config.endpoints_table)
            .set_exclusive_start_key(start)
            .send()
            .await?;
        for item in page.items().iter().filter(|i| is_alias(i)) {
            m.identity.items += 1;
            m.identity.bytes += wahooks::store::item_size(item) + 100;
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok(());
        }
    }
}

/// The SDK interceptor that counts them.
#[derive(Debug, Clone)]
pub(super) struct CountingAliasItems(pub(super) Arc<AliasCounts>);

impl Intercept for CountingAliasItems {
    fn name(&self) -> &'static str {
        "CountingAliasItems"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let input = context.input();
        let counts = &self.0;
        if let Some(get) = input.downcast_ref::<GetItemInput>() {
            if get.key().is_some_and(is_alias) {
                counts.reads.fetch_add(1, Ordering::Relaxed);
                let halves = if get.consistent_read() == Some(true) { 2 } else { 1 };
                counts.read_halves.fetch_add(halves, Ordering::Relaxed);
            }
        } else if let Some(put) = input.downcast_ref::<PutItemInput>() {
            if let Some(item) = put.item().filter(|i| is_alias(i)) {
                counts.puts.fetch_add(1, Ordering::Relaxed);
                counts.write_units.fetch_add(write_units(item).0, Ordering::Relaxed);
            }
        } else if let Some(tx) = input.downcast_ref::<TransactWriteItemsInput>() {
            let puts: Vec<_> = tx
                .transact_items()
                .iter()
                .filter_map(|t| t.put())
                .filter(|p| is_alias(p.item()))
                .collect();
            if !puts.is_empty() {
                counts.transactions.fetch_add(1, Ordering::Relaxed);
                counts.puts.fetch_add(puts.len(), Ordering::Relaxed);
                let units: usize = puts.iter().map(|p| 2 * write_units(p.item()).0).sum();
                counts.write_units.fetch_add(units, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

/// The row of the identity map, per provider event.
pub(super) fn row(m: &Measured) -> (&'static str, String, f64) {
    let i = &m.identity;
    let per = |x: usize| x as f64 / m.events as f64;
    let read_units = per(i.read_halves) / 2.0;
    let cost = read_units * price::READ_UNIT + per(i.write_units) * price::WRITE_UNIT;
    (
        "identity map (alias items, DynamoDB on-demand)",
        format!(
            "{:.3} `GetItem` per event ({read_units:.3} read units, $0.125/M: the receiver keeps who it read for a minute), {:.3} alias items written ({:.3} write units, $0.625/M: a person's first sighting, a new alias, a merge; {} in {} transactions); {} alias items of {:.0} bytes on average in the endpoints table",
            per(i.reads),
            per(i.puts),
            per(i.write_units),
            i.puts,
            i.transactions,
            i.items,
            i.bytes as f64 / i.items.max(1) as f64
        ),
        cost,
    )
}
