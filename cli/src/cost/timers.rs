//! What the events made from time passing cost (turns, silence): the `timers` function's reads,
//! writes and SQS requests, counted at its ports while the fixture mix goes through the local
//! stack with the default windows (a turn after 3 s of quiet).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_sqs::types::QueueAttributeName;
use wahooks::local::LocalStack;
use wahooks::store::{event_item, item_size, write_units, StoreError};
use wahooks::timers::{
    CachedTimings, Commit, DynamoTimerStore, Note, Scheduler, SqsScheduler, TimerStore, TimersHandler,
};
use wahooks::CloudEvent;

/// The timers' work, counted.
#[derive(Debug, Default)]
pub(super) struct TimerCounts {
    /// State reads (`GetItem`, strongly consistent).
    pub(super) loads: AtomicUsize,
    /// Read units of those reads (one per started 4 KB).
    pub(super) read_units: AtomicUsize,
    /// Commits: plain conditional puts of a state item.
    pub(super) puts: AtomicUsize,
    /// Commits that also made events: one transaction each.
    pub(super) transactions: AtomicUsize,
    /// Write units billed (a transaction's items twice, as DynamoDB bills them).
    pub(super) write_units: AtomicUsize,
    /// Timers sent back to the queue (`SendMessage` with a delay).
    pub(super) timers: AtomicUsize,
}

/// The DynamoDB adapter, counted.
struct Counting {
    inner: DynamoTimerStore,
    retention_days: i64,
    counts: Arc<TimerCounts>,
}

#[async_trait]
impl TimerStore for Counting {
    async fn load(&self, pk: &str, kind: &str) -> Result<(Option<String>, u64), StoreError> {
        let (state, version) = self.inner.load(pk, kind).await?;
        let size = self
            .inner
            .state_item(pk, kind, state.as_deref().unwrap_or("{}"), version);
        self.counts.loads.fetch_add(1, Ordering::Relaxed);
        self.counts
            .read_units
            .fetch_add(item_size(&size).div_ceil(4096).max(1), Ordering::Relaxed);
        Ok((state, version))
    }

    async fn commit(
        &self,
        pk: &str,
        kind: &str,
        state: &str,
        version: u64,
        events: &[CloudEvent],
    ) -> Result<Commit, StoreError> {
        let (state_units, _) = write_units(&self.inner.state_item(pk, kind, state, version));
        let event_units: usize = events
            .iter()
            .map(|e| {
                let (base, index) = write_units(&event_item(e, self.retention_days));
                base + index
            })
            .sum();
        let units = if events.is_empty() {
            self.counts.puts.fetch_add(1, Ordering::Relaxed);
            state_units
        } else {
            self.counts.transactions.fetch_add(1, Ordering::Relaxed);
            2 * (state_units + event_units)
        };
        self.counts.write_units.fetch_add(units, Ordering::Relaxed);
        self.inner.commit(pk, kind, state, version, events).await
    }
}

/// The SQS scheduler, counted.
struct CountingScheduler {
    inner: SqsScheduler,
    counts: Arc<TimerCounts>,
}

#[async_trait]
impl Scheduler for CountingScheduler {
    async fn schedule(&self, note: &Note, delay_ms: u64) -> Result<(), String> {
        self.counts.timers.fetch_add(1, Ordering::Relaxed);
        self.inner.schedule(note, delay_ms).await
    }
}

/// Give `stack` a `timers` handler whose ports count their work.
pub(super) fn counted(stack: &mut LocalStack) -> anyhow::Result<Arc<TimerCounts>> {
    let url = stack
        .config
        .timers_url
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the local stack has no timers queue"))?;
    let counts = Arc::new(TimerCounts::default());
    let config = &stack.config;
    stack.timers = Some(TimersHandler::new(
        Arc::new(Counting {
            inner: DynamoTimerStore::new(stack.dynamo.clone(), &config.events_table, config.retention_days),
            retention_days: config.retention_days,
            counts: counts.clone(),
        }),
        Arc::new(CountingScheduler {
            inner: SqsScheduler::new(stack.sqs.clone(), &url),
            counts: counts.clone(),
        }),
        Arc::new(CachedTimings::new(stack.registry.clone())),
    ));
    Ok(counts)
}

/// How long the turns take to close: the default window, SQS's rounding up to a second, and a
/// margin.
const TURNS_SETTLE: Duration = Duration::from_millis(wahooks::endpoint::Timing::DEFAULT_TURN_WINDOW_MS + 2_000);

/// Play the timers queue and the stream until every turn is made: nothing is left to receive
/// and the turns' window has passed. The instances' checks stay delayed in the queue (a
/// disconnection's is 15 minutes away): they are what a deployment pays for too, counted as sent.
/// How many notes were taken.
pub(super) async fn settle(
    stack: &LocalStack,
    driver: &mut wahooks::stream_driver::StreamDriver,
) -> anyhow::Result<usize> {
    let url = stack.config.timers_url.clone().unwrap_or_default();
    let started = Instant::now();
    let mut notes = 0;
    while started.elapsed() < Duration::from_secs(120) {
        notes += stack.drain_timers().await.map_err(|e| anyhow::anyhow!(e))?;
        driver
            .drain(&stack.fanout, Duration::from_secs(60))
            .await
            .map_err(|e| anyhow::anyhow!(e).context("the stream"))?;
        let attrs = stack
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await?;
        let left: u64 = [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .filter_map(|a| {
            attrs
                .attributes()
                .and_then(|m| m.get(a))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum();
        if left == 0 && started.elapsed() >= TURNS_SETTLE {
            return Ok(notes);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    anyhow::bail!("the timers queue still had notes to take after two minutes")
}
