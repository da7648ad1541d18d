//! `wahooks-dev sim` (`make sim`): the whole pipeline at a million deliveries, seeded.
//!
//! The real receiver ([`Receiver`]), store placement, fanout ([`Fanout`]), routing, recovery
//! ([`wahooks::recover::recover_with`]) and consumer handler
//! ([`wahooks_consumer::handle_sqs_event`]) run against models of DynamoDB and its stream
//! ([`table`]), Lambda's stream mapping and on-failure destination ([`mapping`]), SQS
//! ([`queues`]) and S3, under a
//! simulated clock, on one thread, with every choice (traffic, redeliveries, interleavings,
//! faults) drawn from one seeded generator ([`dice`]): a seed replays its run exactly, and the
//! report ends with a digest of every message enqueued to show it.
//!
//! The invariants are checked all along (an acknowledgement names only stored events, one
//! message is one event whatever its redeliveries, a chat's events reach each queue in the order
//! they were stored, no record waits in its shard past the record age) and at the end (every
//! stored event reached every queue it routes to, no queue holds an event twice within SQS's
//! deduplication window). What the models leave out: docs/guarantees.md.

pub mod dice;
pub mod mapping;
pub mod queues;
pub mod table;
pub mod traffic;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{json, Value};
use wahooks::endpoint::{Auth, Endpoint};
use wahooks::fanout::{Fanout, Queue, Routing, DEFAULT_QUEUES};
use wahooks::http::Receiver;
use wahooks::registry::MemoryRegistry;
use wahooks::stream_driver::MappingSettings;
use wahooks::{CloudEvent, Provider, Route};

use dice::{Clock, Dice, Faults};
use mapping::{Invocation, Mapping, Settled};
use queues::{QueueFaults, SimQueues};
use table::{SimBucket, SimTable, TableFaults};
use traffic::{DeliveryKind, Distinct, Traffic};

/// Arguments of `wahooks-dev sim`.
#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// Deliveries to make (redeliveries included).
    #[arg(long, default_value_t = 1_000_000)]
    pub n: usize,
    /// The seed (a fresh one, printed, when not given).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Deliveries per simulated second.
    #[arg(long, default_value_t = 500)]
    pub rate: usize,
    /// Shards of the events table's stream.
    #[arg(long, default_value_t = 8)]
    pub shards: usize,
    /// Run without injected faults.
    #[arg(long)]
    pub no_faults: bool,
    /// Plant a bug, to see the simulation catch it: `ack-before-write` (a store that reports a
    /// failed write as stored) or `forget-failures` (a fanout that reports no failed record).
    #[arg(long)]
    pub plant: Option<Plant>,
    /// Print the report as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// The fixture folder (one sub-folder per provider).
    #[arg(long, default_value = "tests/fixtures")]
    pub fixtures: PathBuf,
}

/// A bug planted on purpose.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plant {
    /// The store reports a failed write as stored: the receiver acknowledges unstored events.
    AckBeforeWrite,
    /// The fanout reports no failed record: the mapping moves past records never published.
    ForgetFailures,
}

/// The chances of the faults drawn all along (episodes come on top).
#[derive(Debug, Clone, Copy)]
struct Background {
    table: TableFaults,
    queues: QueueFaults,
    crash: f64,
    fanout_recycled: f64,
    receiver_recycled: f64,
    stream_redelivered: f64,
    worker_fails: f64,
    exact_redelivery: f64,
    moved_redelivery: f64,
    alias_redelivery: f64,
}

impl Background {
    fn of(faults: bool) -> Background {
        let on = |p: f64| if faults { p } else { 0.0 };
        Background {
            table: TableFaults {
                throttle: on(0.000_5),
                timeout_after_write: on(0.000_5),
                interleave: on(0.3),
            },
            queues: QueueFaults {
                down: false,
                entry_refused: on(0.001),
                lost_answer: on(0.001),
            },
            crash: on(0.003),
            fanout_recycled: on(0.01),
            receiver_recycled: on(0.001),
            stream_redelivered: on(0.005),
            worker_fails: on(0.03),
            exact_redelivery: 0.10,
            moved_redelivery: 0.05,
            alias_redelivery: 0.03,
        }
    }
}

/// A stretch of simulated time with a fault on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Episode {
    /// DynamoDB throttling and timing out after writes.
    StoreTrouble,
    /// S3 unavailable.
    S3Down,
    /// SQS unavailable for seconds to minutes.
    SqsDown,
    /// SQS unavailable for longer than the mapping's record age: batches are given up, then
    /// `recover` runs. Traffic slows (a night) and the clock moves a minute per step.
    SqsDownPastRecordAge,
}

impl Episode {
    fn name(self) -> &'static str {
        match self {
            Episode::StoreTrouble => "episode: dynamodb throttling",
            Episode::S3Down => "episode: s3 outage",
            Episode::SqsDown => "episode: sqs outage",
            Episode::SqsDownPastRecordAge => "episode: sqs outage past the record age",
        }
    }
}

/// One simulated second.
const STEP_MS: i64 = 1000;
/// One step during a long outage.
const NIGHT_STEP_MS: i64 = 300_000;
/// Receiver containers.
const RECEIVERS: usize = 4;
/// Requests in flight at once.
const CONCURRENCY: usize = 32;
/// A provider's attempts at one delivery before it gives up (it never got a 200).
const PROVIDER_ATTEMPTS: u32 = 12;
/// Invocations per shard per step at most.
const INVOCATIONS_PER_STEP: usize = 4;
/// Steps to drain after the last delivery before the run is declared stuck.
const DRAIN_STEPS: usize = 20_000;
/// Violations kept for the report.
const MAX_VIOLATIONS: usize = 20;

/// A delivery waiting to be attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Attempt {
    due_ms: i64,
    order: u64,
    distinct: u32,
    kind: u8,
    attempt: u32,
}

fn kind_of(k: u8) -> DeliveryKind {
    match k {
        1 => DeliveryKind::Exact,
        2 => DeliveryKind::Moved,
        3 => DeliveryKind::Alias,
        _ => DeliveryKind::First,
    }
}

/// What the run counted.
#[derive(Debug, Default)]
struct Tally {
    deliveries: usize,
    /// Redeliveries by kind ([`DeliveryKind`] as index).
    redeliveries: [usize; 4],
    attempts: usize,
    unavailable: usize,
    other_statuses: BTreeMap<u16, usize>,
    acknowledged_deliveries: usize,
    acknowledged: HashSet<String>,
    provider_gave_up: usize,
    given_up_batches: usize,
    given_up_records: usize,
    recovered_records: usize,
    invocations: usize,
    worker_repeats: usize,
    violations: Vec<String>,
    violation_count: usize,
    lost_unstored: usize,
    stored_twice: usize,
    merged: usize,
    out_of_order: usize,
    held_shard: usize,
}

impl Tally {
    fn violation(&mut self, v: String) {
        self.violation_count += 1;
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(v);
        }
    }
}

/// The run: the models, the real handlers, and what is known so far.
struct World {
    args: SimArgs,
    dice: Dice,
    faults: Faults,
    clock: Clock,
    traffic: Traffic,
    table: SimTable,
    bucket: SimBucket,
    queues: SimQueues,
    queue_list: Vec<Queue>,
    routing: Routing,
    registry: MemoryRegistry,
    receivers: Vec<Receiver>,
    fanouts: Vec<Fanout>,
    mapping: Mapping,
    failures: mapping::SimFailures,
    background: Background,
    episodes: Vec<(i64, i64, Episode)>,
    waiting: BinaryHeap<std::cmp::Reverse<Attempt>>,
    distinct: Vec<Distinct>,
    /// The ids each distinct delivery was first acknowledged with (sorted, hashed).
    expected: Vec<Option<u64>>,
    /// Event id → the distinct delivery that first named it.
    owner: HashMap<String, u32>,
    /// (queue, group) → the write order of the last event a worker handled.
    last_handled: HashMap<(usize, String), u64>,
    /// (queue, event id) handled.
    handled: HashSet<(usize, String)>,
    tally: Tally,
    next_order: u64,
    tokens: HashMap<Provider, String>,
}

const START_MS: i64 = 1_790_000_000_000;

impl World {
    fn new(args: SimArgs, seed: u64) -> anyhow::Result<World> {
        let dice = Dice::new(seed);
        let faults = Faults::default();
        let clock = Clock::at(START_MS);
        let traffic = Traffic::load(&args.fixtures)?;
        let bucket = SimBucket::new(faults.clone());
        let mut table = SimTable::new(args.shards, dice.clone(), faults.clone(), clock.clone(), bucket.clone());
        if args.plant == Some(Plant::AckBeforeWrite) {
            table = table.swallowing_errors();
        }
        let queue_list: Vec<Queue> = DEFAULT_QUEUES
            .iter()
            .map(|name| Queue::new(*name, format!("https://sqs.sim/{name}.fifo"), 262_144))
            .chain([Queue::new("parked", "https://sqs.sim/parked", 262_144)])
            .collect();
        let routing = Routing::new(queue_list[..DEFAULT_QUEUES.len()].to_vec(), &Routing::routes_with(&[]))?;
        let queues = SimQueues::new(&queue_list, dice.clone(), faults.clone(), clock.clone());
        let (registry, tokens) = endpoints();
        let background = Background::of(!args.no_faults);
        let mapping = Mapping::new(MappingSettings::DEPLOYED, args.shards);
        let failures = mapping::SimFailures::new(clock.clone());
        let mut w = World {
            dice,
            faults,
            clock,
            traffic,
            table,
            bucket,
            queues,
            queue_list,
            routing,
            registry,
            receivers: Vec::new(),
            fanouts: Vec::new(),
            mapping,
            failures,
            background,
            episodes: Vec::new(),
            waiting: BinaryHeap::new(),
            distinct: Vec::new(),
            expected: Vec::new(),
            owner: HashMap::new(),
            last_handled: HashMap::new(),
            handled: HashSet::new(),
            tally: Tally::default(),
            next_order: 0,
            tokens,
            args,
        };
        w.receivers = (0..RECEIVERS).map(|_| w.receiver()).collect();
        w.fanouts = (0..w.args.shards).map(|_| w.fanout()).collect();
        w.episodes = w.plan_episodes();
        Ok(w)
    }

    /// A fresh receiver container.
    fn receiver(&self) -> Receiver {
        let mut r = Receiver::new(Arc::new(self.registry.clone()), Arc::new(self.table.clone()));
        let clock = self.clock.clone();
        r.clock = Arc::new(move || chrono::DateTime::from_timestamp_millis(clock.now()).unwrap_or_default());
        // The request budget is wall time, which a seeded run must not depend on (a busy
        // machine would turn answers into 503s); the models have no latency to budget.
        r.budget = std::time::Duration::from_secs(86_400);
        r
    }

    /// A fresh fanout container (its memory of recent sends empty).
    fn fanout(&self) -> Fanout {
        Fanout::new(self.routing.clone(), Arc::new(self.queues.clone()), "events")
            .parking_to(self.queue_list[DEFAULT_QUEUES.len()].url.clone())
            .reading_objects_from(Arc::new(self.bucket.clone()))
    }

    /// The fault episodes of the run, drawn from the seed over the time the traffic takes.
    fn plan_episodes(&self) -> Vec<(i64, i64, Episode)> {
        if self.args.no_faults {
            return Vec::new();
        }
        let span = (self.args.n / self.args.rate.max(1)).max(20) as i64 * STEP_MS;
        let mut out = Vec::new();
        let mut add = |count: usize, lo_s: i64, hi_s: i64, e: Episode| {
            for _ in 0..count {
                let start = START_MS + self.dice.between(span / 10, span * 9 / 10);
                out.push((start, start + self.dice.between(lo_s, hi_s) * 1000, e));
            }
        };
        add(3, 5, 30, Episode::StoreTrouble);
        add(2, 5, 20, Episode::S3Down);
        add(3, 5, 120, Episode::SqsDown);
        let age = MappingSettings::DEPLOYED
            .max_record_age
            .map_or(12 * 3600, |a| a.as_secs() as i64);
        add(1, age + 600, age + 5400, Episode::SqsDownPastRecordAge);
        // The long outage is a night: the episodes planned after its start move past its end,
        // so they meet full traffic.
        if let Some(&(start, end, _)) = out.last() {
            for e in out
                .iter_mut()
                .filter(|e| e.2 != Episode::SqsDownPastRecordAge && e.0 >= start)
            {
                e.0 += end - start;
                e.1 += end - start;
            }
        }
        out.sort_by_key(|(start, _, _)| *start);
        out
    }

    fn active(&self, e: Episode) -> bool {
        let now = self.clock.now();
        self.episodes
            .iter()
            .any(|(s, end, k)| *k == e && (*s..*end).contains(&now))
    }

    /// Switch the models' faults for this step (all off once `calm`).
    fn switch_faults(&mut self, calm: bool) {
        let b = self.background;
        let store = !calm && self.active(Episode::StoreTrouble);
        self.table.set_faults(match (calm, store) {
            (true, _) => TableFaults::default(),
            (false, true) => TableFaults {
                throttle: 0.3,
                timeout_after_write: 0.05,
                interleave: b.table.interleave,
            },
            (false, false) => b.table,
        });
        self.bucket.set_down(!calm && self.active(Episode::S3Down));
        let down = !calm && (self.active(Episode::SqsDown) || self.active(Episode::SqsDownPastRecordAge));
        self.queues.set_faults(if calm {
            QueueFaults::default()
        } else {
            QueueFaults { down, ..b.queues }
        });
        let now = self.clock.now();
        for (start, _, e) in &self.episodes {
            if (now..now + self.step_ms()).contains(start) {
                self.faults.count(e.name());
            }
        }
    }

    fn step_ms(&self) -> i64 {
        if self.active(Episode::SqsDownPastRecordAge) {
            NIGHT_STEP_MS
        } else {
            STEP_MS
        }
    }

    /// This step's new deliveries: first deliveries and redeliveries, drawn.
    fn new_deliveries(&mut self, count: usize) {
        let b = self.background;
        for _ in 0..count {
            if self.tally.deliveries >= self.args.n {
                return;
            }
            self.tally.deliveries += 1;
            let roll = self.dice.below(1000) as f64 / 1000.0;
            let redelivered = b.exact_redelivery + b.moved_redelivery + b.alias_redelivery;
            let again = (!self.distinct.is_empty() && roll < redelivered)
                .then(|| self.dice.below(self.distinct.len()))
                .filter(|&d| self.traffic.redelivers(self.distinct[d]));
            let (distinct, kind) = if let Some(d) = again {
                let kind = if roll < b.exact_redelivery {
                    1
                } else if roll < b.exact_redelivery + b.moved_redelivery {
                    2
                } else {
                    3
                };
                let effective = self.traffic.effective(self.distinct[d], kind_of(kind));
                self.tally.redeliveries[effective as usize] += 1;
                (d as u32, kind)
            } else {
                let fixture = self.traffic.pick(&self.dice);
                let instance = self.dice.below(traffic::INSTANCES_PER_FIXTURE);
                let number = self.distinct.len() as u64 + 1;
                self.distinct.push(self.traffic.distinct(fixture, instance, number));
                self.expected.push(None);
                ((self.distinct.len() - 1) as u32, 0)
            };
            self.push_attempt(distinct, kind, 1, self.clock.now());
        }
    }

    fn push_attempt(&mut self, distinct: u32, kind: u8, attempt: u32, due_ms: i64) {
        self.next_order += 1;
        self.waiting.push(std::cmp::Reverse(Attempt {
            due_ms,
            order: self.next_order,
            distinct,
            kind,
            attempt,
        }));
    }

    /// Every attempt due now, through the receivers, `CONCURRENCY` at a time, their writes
    /// interleaved by the table's yields.
    async fn deliver_due(&mut self) {
        let now = self.clock.now();
        let mut due = Vec::new();
        while self.waiting.peek().is_some_and(|a| a.0.due_ms <= now) {
            if let Some(std::cmp::Reverse(a)) = self.waiting.pop() {
                due.push(a);
            }
        }
        for chunk in due.chunks(CONCURRENCY) {
            if self.dice.chance(self.background.receiver_recycled) {
                let i = self.dice.below(RECEIVERS);
                self.receivers[i] = self.receiver();
                self.faults.count("receiver container recycled");
            }
            let requests: Vec<_> = chunk
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let (provider, body) = self.traffic.body(self.distinct[a.distinct as usize], kind_of(a.kind));
                    let path = format!("/v1/hooks/{}", self.tokens[&provider]);
                    let headers = [("content-type".to_owned(), "application/json".to_owned())];
                    let req = wahooks::local::apigw_request("POST", &path, "", &headers, body.as_bytes());
                    let receiver = self.receivers[i % RECEIVERS].clone();
                    async move { receiver.handle(Route::Any, req).await }
                })
                .collect();
            let answers = futures::future::join_all(requests).await;
            for (a, response) in chunk.iter().zip(answers) {
                self.answered(*a, response.status().as_u16(), response.body().as_ref());
            }
        }
    }

    /// What a provider does with an answer, and the checks an acknowledgement allows.
    fn answered(&mut self, a: Attempt, status: u16, body: &[u8]) {
        self.tally.attempts += 1;
        match status {
            200 => {
                self.tally.acknowledged_deliveries += 1;
                let v: Value = serde_json::from_slice(body).unwrap_or_default();
                let mut ids: Vec<String> = ["accepted", "duplicates"]
                    .iter()
                    .flat_map(|k| v[*k].as_array().cloned().unwrap_or_default())
                    .filter_map(|id| id.as_str().map(str::to_owned))
                    .collect();
                ids.sort();
                self.check_acknowledged(a.distinct, &ids);
            }
            503 => {
                self.tally.unavailable += 1;
                if a.attempt >= PROVIDER_ATTEMPTS {
                    self.tally.provider_gave_up += 1;
                } else {
                    let backoff = 1000 * (1i64 << a.attempt.min(8)) + self.dice.between(0, 999);
                    self.push_attempt(a.distinct, a.kind, a.attempt + 1, self.clock.now() + backoff);
                }
            }
            other => *self.tally.other_statuses.entry(other).or_default() += 1,
        }
    }

    /// An acknowledgement names only stored events; one message is one set of events, whatever
    /// its redeliveries; two messages never share an event.
    fn check_acknowledged(&mut self, distinct: u32, ids: &[String]) {
        for id in ids {
            if self.table.stored(id).is_none() {
                self.tally.lost_unstored += 1;
                self.tally
                    .violation(format!("acknowledged but not stored: event {id} (delivery {distinct})"));
            }
            self.tally.acknowledged.insert(id.clone());
            let owner = *self.owner.entry(id.clone()).or_insert(distinct);
            if owner != distinct {
                self.tally.merged += 1;
                let (a, b) = (self.distinct[owner as usize], self.distinct[distinct as usize]);
                self.tally.violation(format!(
                    "merged: deliveries {owner} and {distinct} are different messages but share event {id} ({a:?}, {b:?})"
                ));
            }
        }
        let hash = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            ids.hash(&mut h);
            h.finish()
        };
        match self.expected[distinct as usize] {
            None => self.expected[distinct as usize] = Some(hash),
            Some(first) if first != hash => {
                self.tally.stored_twice += 1;
                let d = self.distinct[distinct as usize];
                let earlier: Vec<&String> = self
                    .owner
                    .iter()
                    .filter(|(_, o)| **o == distinct)
                    .map(|(id, _)| id)
                    .collect();
                self.tally.violation(format!(
                    "stored twice: a redelivery of delivery {distinct} ({d:?}) was acknowledged with other events ({ids:?}, first {earlier:?})"
                ));
            }
            Some(_) => {}
        }
    }

    /// Each shard's next batches through its fanout container, as the mapping delivers them.
    async fn run_mapping(&mut self) {
        for k in 0..self.args.shards {
            let mut invocations = 0;
            while invocations < INVOCATIONS_PER_STEP {
                invocations += 1;
                let Some(batch) = self.mapping.next_batch(&self.table, k) else {
                    break;
                };
                if self.dice.chance(self.background.fanout_recycled) {
                    self.fanouts[k] = self.fanout();
                    self.faults.count("fanout container recycled");
                }
                self.tally.invocations += 1;
                let event = batch.event();
                let crashed = self.dice.chance(self.background.crash);
                if crashed {
                    self.faults.count("fanout crashed mid-batch");
                    self.queues.crash_after(Some(self.dice.below(3)));
                }
                let (mut response, _) = self.fanouts[k].handle(&event).await;
                self.queues.crash_after(None);
                if self.args.plant == Some(Plant::ForgetFailures) {
                    response.batch_item_failures.clear();
                }
                let outcome = if crashed {
                    self.fanouts[k] = self.fanout();
                    Invocation::Crashed
                } else {
                    Invocation::Answered(&response)
                };
                match self.mapping.settle(k, &batch, outcome, self.clock.now()) {
                    Settled::Done => {
                        if self.dice.chance(self.background.stream_redelivered) {
                            self.faults.count("stream batch delivered again");
                            let _ = self.fanouts[k].handle(&event).await;
                        }
                    }
                    Settled::Retrying => break,
                    Settled::GivenUp(info, n) => {
                        // Lambda goes straight on to the shard's next batch.
                        self.tally.given_up_batches += 1;
                        self.tally.given_up_records += n;
                        self.failures.send(info);
                        invocations -= 1;
                    }
                }
            }
        }
    }

    /// The operator runs `recover` once SQS is back (with a fanout of their own).
    async fn run_recover(&mut self) {
        if self.failures.is_empty() || self.active(Episode::SqsDownPastRecordAge) || self.active(Episode::SqsDown) {
            return;
        }
        let operator = self.fanout();
        self.queues.set_recovering(true);
        let ranges = mapping::SimRanges(self.table.clone());
        let done = wahooks::recover::recover_with(
            &self.failures,
            &ranges,
            &self.queues,
            &operator,
            &wahooks::recover::RecoverOptions::default(),
        )
        .await;
        self.queues.set_recovering(false);
        match done {
            Ok(done) => {
                self.tally.recovered_records += done.records;
                for why in done.left.iter().filter(|w| !w.contains("run recover again")) {
                    self.tally.violation(format!("recover left a failure record: {why}"));
                }
            }
            Err(e) => self.tally.violation(format!("recover failed: {e}")),
        }
    }

    /// Every queue's workers: receive, handle through the consumer's Lambda handler (a worker
    /// failing now and then), delete what succeeded; check each chat's order.
    async fn run_workers(&mut self) {
        for q in 0..self.queue_list.len() {
            for _ in 0..200 {
                let received = self.queues.receive(q);
                if received.is_empty() {
                    break;
                }
                let event = self.queues.sqs_event(&received);
                let outcomes: Arc<Mutex<Vec<String>>> = Arc::default();
                let dice = self.dice.clone();
                let p = self.background.worker_fails;
                let faults = self.faults.clone();
                let seen = outcomes.clone();
                let response = wahooks_consumer::handle_sqs_event(event, |ev: CloudEvent| {
                    let (dice, faults, seen) = (dice.clone(), faults.clone(), seen.clone());
                    async move {
                        if dice.chance(p) {
                            faults.count("worker failed a message");
                            return Err("injected worker failure");
                        }
                        seen.lock().unwrap_or_else(|p| p.into_inner()).push(ev.id);
                        Ok(())
                    }
                })
                .await;
                let failed: HashSet<String> = response
                    .batch_item_failures
                    .iter()
                    .map(|f| f.item_identifier.clone())
                    .collect();
                for r in &received {
                    if !failed.contains(&r.id.to_string()) {
                        self.queues.delete(r);
                        self.worker_handled(r);
                    }
                }
            }
        }
    }

    fn worker_handled(&mut self, r: &queues::Received) {
        if !self.handled.insert((r.queue, r.event_id.clone())) {
            self.tally.worker_repeats += 1;
            return;
        }
        let Some(info) = self.table.stored(&r.event_id) else {
            self.tally
                .violation(format!("a worker got event {} that is not stored", r.event_id));
            return;
        };
        // Documented exceptions (docs/workers.md, ordering): `recover` re-sends older events,
        // and an entry SQS refused comes after the later messages of its batch it let through.
        if r.recovered || r.overtaken || r.group.is_none() {
            return;
        }
        let last = self.last_handled.entry((r.queue, info.group.clone())).or_insert(0);
        if info.write_seq < *last {
            self.tally.out_of_order += 1;
            let v = format!(
                "out of order: event {} of group {} reached a worker after a later event of its chat",
                r.event_id, info.group
            );
            self.tally.violation(v);
        } else {
            *last = info.write_seq;
        }
    }

    /// No record waits in its shard longer than the record age (and a step).
    fn check_shards(&mut self) {
        let Some(age) = self.mapping.settings.max_record_age else {
            return;
        };
        let limit = age.as_millis() as i64 + 2 * NIGHT_STEP_MS;
        let now = self.clock.now();
        for k in 0..self.args.shards {
            if let Some(oldest) = self.mapping.oldest_waiting(&self.table, k) {
                if now - oldest > limit {
                    self.tally.held_shard += 1;
                    let v = format!("shard {k} holds a record {} s old", (now - oldest) / 1000);
                    self.tally.violation(v);
                }
            }
        }
    }

    fn settled(&self) -> bool {
        self.tally.deliveries >= self.args.n
            && self.waiting.is_empty()
            && self.failures.is_empty()
            && self.mapping.drained(&self.table)
            && self.queues.held() == 0
    }

    /// Run to the end: traffic, then faults off and everything drained.
    async fn run(&mut self) {
        let mut drain_steps = 0;
        loop {
            let traffic_done = self.tally.deliveries >= self.args.n && self.waiting.is_empty();
            let calm = traffic_done && self.clock.now() > self.episodes.iter().map(|e| e.1).max().unwrap_or(0);
            self.switch_faults(calm);
            let per_step = if self.active(Episode::SqsDownPastRecordAge) {
                (self.args.rate / 40).max(1)
            } else {
                self.args.rate
            };
            self.new_deliveries(per_step);
            self.deliver_due().await;
            self.run_mapping().await;
            self.run_recover().await;
            self.run_workers().await;
            self.check_shards();
            if self.settled() {
                break;
            }
            if traffic_done {
                drain_steps += 1;
                if drain_steps > DRAIN_STEPS && calm {
                    self.tally
                        .violation("the pipeline did not drain after the last delivery".to_owned());
                    break;
                }
            }
            let step = self.step_ms();
            self.clock.advance(step);
        }
    }

    /// The end checks: every stored event on every queue it routes to; no queue doubled.
    fn final_checks(&mut self) -> (usize, usize, usize) {
        let names = self.queues.names();
        let mut stored = 0;
        let mut published = 0;
        let mut unpublished = 0;
        for (id, info) in self.table.stored_events() {
            stored += 1;
            let mut all = true;
            for q in self.routing.targets(info.event_type) {
                let Some(i) = names.iter().position(|n| *n == q.name) else {
                    continue;
                };
                if !self.queues.enqueued(i, &id) {
                    all = false;
                    self.tally
                        .violation(format!("stored but never published: event {id} to `{}`", q.name));
                }
            }
            if all {
                published += 1;
            } else {
                unpublished += 1;
            }
        }
        let doubled = self.queues.stats().doubled as usize;
        if doubled > 0 {
            self.tally.violation(format!(
                "{doubled} events enqueued twice within SQS's deduplication window"
            ));
        }
        (stored, published, unpublished)
    }
}

/// One endpoint per provider, authenticated by its URL token (the schemes are tested apart),
/// and each provider's token.
fn endpoints() -> (MemoryRegistry, HashMap<Provider, String>) {
    let registry = MemoryRegistry::default();
    let mut tokens = HashMap::new();
    for provider in Provider::ALL {
        let token = format!("tok_simulated_{}_endpoint", provider.as_str().replace('-', "_"));
        registry.insert(
            &token,
            // A fixed id, time and tenant: a seed's run is the same event for event.
            Endpoint {
                id: format!("ep_sim_{}", provider.as_str()),
                created_at: String::new(),
                tenant: None,
                ..wahooks::registry::new_endpoint(provider, Auth::url_token())
            },
        );
        tokens.insert(provider, token);
    }
    (registry, tokens)
}

/// Run a simulation and return its report (`report["ok"]`: no invariant broken).
pub async fn simulate(args: SimArgs) -> anyhow::Result<Value> {
    let seed = args.seed.unwrap_or_else(fresh_seed);
    let started = Instant::now();
    let mut w = World::new(args, seed)?;
    w.run().await;
    let (stored, published, unpublished) = w.final_checks();
    let q = w.queues.stats();
    let t = &w.tally;
    let lost = t.lost_unstored + unpublished;
    let doubled = t.stored_twice + q.doubled as usize;
    let redeliveries = json!({
        "exact": t.redeliveries[DeliveryKind::Exact as usize],
        "timestamp_only": t.redeliveries[DeliveryKind::Moved as usize],
        "under_another_alias": t.redeliveries[DeliveryKind::Alias as usize],
    });
    let mut report = json!({
        "seed": seed,
        "ok": t.violation_count == 0,
        "deliveries": t.deliveries,
        "distinct_messages": w.distinct.len(),
        "redeliveries": redeliveries,
        "http_attempts": t.attempts,
        "unavailable_503": t.unavailable,
        "other_statuses": t.other_statuses,
        "acknowledged_deliveries": t.acknowledged_deliveries,
        "provider_gave_up": t.provider_gave_up,
        "events_acknowledged": t.acknowledged.len(),
        "events_stored": stored,
        "events_published": published,
        "lost": lost,
        "lost_unstored": t.lost_unstored,
        "lost_unpublished": unpublished,
        "doubled": doubled,
        "stored_twice": t.stored_twice,
        "enqueued_twice_within_window": q.doubled,
        "merged": t.merged,
    });
    let more = json!({
        "out_of_order": t.out_of_order,
        "shard_held": t.held_shard,
        "quarantined": w.table.quarantined(),
        "bodies_in_s3": w.bucket.objects(),
        "fanout_invocations": t.invocations,
        "batches_given_up": t.given_up_batches,
        "records_given_up": t.given_up_records,
        "records_recovered": t.recovered_records,
        "messages_enqueued": q.enqueued,
        "resends_deduplicated": q.deduplicated,
        "resent_past_window": q.resent_past_window,
        "refused_batches": q.refused_batches,
        "redelivered_to_workers": q.redelivered,
        "overtaken_in_batch": q.overtaken,
        "worker_repeats": t.worker_repeats,
        "dead_lettered": q.dead_lettered,
        "faults": w.faults.snapshot(),
        "simulated_seconds": (w.clock.now() - START_MS) / 1000,
        "wall_seconds": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        "violations": t.violations,
        "violation_count": t.violation_count,
        "digest": w.queues.digest(),
    });
    if let (Some(report), Value::Object(more)) = (report.as_object_mut(), more) {
        report.extend(more);
    }
    Ok(report)
}

fn fresh_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        % 1_000_000_000
}

/// Run `wahooks-dev sim`; exit 1 when an invariant broke.
pub async fn run(args: SimArgs) -> ExitCode {
    let json_out = args.json;
    let seed = args.seed;
    match simulate(args).await {
        Ok(report) => {
            if json_out {
                println!("{report:#}");
            } else {
                print_report(&report);
            }
            if report["ok"] == true {
                ExitCode::SUCCESS
            } else {
                eprintln!("invariants broken: replay with `make sim N=… SEED={}`", report["seed"]);
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("sim (seed {seed:?}): {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_report(r: &Value) {
    let rows = [
        ("seed", "seed"),
        ("deliveries (redeliveries included)", "deliveries"),
        ("distinct messages", "distinct_messages"),
        (
            "redeliveries: exact / timestamp only / under another alias",
            "redeliveries",
        ),
        ("HTTP attempts (a provider retrying 503)", "http_attempts"),
        ("503 answers", "unavailable_503"),
        ("deliveries acknowledged (200)", "acknowledged_deliveries"),
        (
            "deliveries a provider gave up on (never acknowledged)",
            "provider_gave_up",
        ),
        ("events acknowledged / stored / published", "events_acknowledged"),
        ("fanout invocations", "fanout_invocations"),
        ("batches given up (record age) / records", "batches_given_up"),
        ("records re-published by recover", "records_recovered"),
        ("messages enqueued", "messages_enqueued"),
        ("re-sends dropped by SQS deduplication", "resends_deduplicated"),
        ("re-sent past the 5-minute window (same id)", "resent_past_window"),
        ("redelivered to workers (visibility timeout)", "redelivered_to_workers"),
        ("dead-lettered", "dead_lettered"),
        ("lost", "lost"),
        ("doubled", "doubled"),
        ("merged (two messages, one event)", "merged"),
        ("out of order in a chat", "out_of_order"),
        (
            "refused entries overtaken in their batch (documented)",
            "overtaken_in_batch",
        ),
        ("shards held past the record age", "shard_held"),
        ("simulated time, s", "simulated_seconds"),
        ("wall time, s", "wall_seconds"),
        ("digest of every enqueue", "digest"),
    ];
    for (label, key) in rows {
        let value = match key {
            "events_acknowledged" => format!(
                "{} / {} / {}",
                r["events_acknowledged"], r["events_stored"], r["events_published"]
            ),
            "batches_given_up" => format!("{} / {}", r["batches_given_up"], r["records_given_up"]),
            "redeliveries" => format!(
                "{} / {} / {}",
                r[key]["exact"], r[key]["timestamp_only"], r[key]["under_another_alias"]
            ),
            _ => r[key].to_string(),
        };
        println!("{label:<58} {}", value.trim_matches('"'));
    }
    println!("faults injected:");
    if let Some(faults) = r["faults"].as_object() {
        for (kind, n) in faults {
            println!("  {kind:<56} {n}");
        }
    }
    if let Some(v) = r["violations"].as_array().filter(|v| !v.is_empty()) {
        println!("violations ({} in all, first {}):", r["violation_count"], v.len());
        for line in v {
            println!("  {}", line.as_str().unwrap_or_default());
        }
    }
}

/// The default run's length, for the tests.
pub const TEST_DELIVERIES: usize = 4_000;
