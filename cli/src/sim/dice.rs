//! The one source of chance of a run: a seeded generator every model draws from, in the order
//! the run asks (one thread, a deterministic executor), so a seed replays its run exactly; and
//! the tally of the faults it injected.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rand::{Rng, SeedableRng};

/// The seeded generator, shared by every model of a run.
#[derive(Clone)]
pub struct Dice(Arc<Mutex<rand::rngs::StdRng>>);

impl Dice {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Dice {
        Dice(Arc::new(Mutex::new(rand::rngs::StdRng::seed_from_u64(seed))))
    }

    fn with<T>(&self, f: impl FnOnce(&mut rand::rngs::StdRng) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// `true` with probability `p` (no draw when `p` is 0, so a fault turned off costs nothing
    /// and does not shift the run).
    pub fn chance(&self, p: f64) -> bool {
        p > 0.0 && self.with(|r| r.gen::<f64>() < p)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&self, n: usize) -> usize {
        self.with(|r| r.gen_range(0..n.max(1)))
    }

    /// A number in `lo..=hi`.
    pub fn between(&self, lo: i64, hi: i64) -> i64 {
        self.with(|r| r.gen_range(lo..=hi.max(lo)))
    }
}

/// The faults a run injected, by kind (a sorted map: the report lists them in a fixed order).
#[derive(Clone, Default)]
pub struct Faults(Arc<Mutex<BTreeMap<&'static str, u64>>>);

impl Faults {
    /// Count one fault of `kind`.
    pub fn count(&self, kind: &'static str) {
        *self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(kind)
            .or_default() += 1;
    }

    /// The counts so far.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The simulated clock, epoch milliseconds, shared by the models and the receivers.
#[derive(Clone)]
pub struct Clock(Arc<std::sync::atomic::AtomicI64>);

impl Clock {
    /// A clock at `start_ms`.
    pub fn at(start_ms: i64) -> Clock {
        Clock(Arc::new(std::sync::atomic::AtomicI64::new(start_ms)))
    }

    /// Now, epoch ms.
    pub fn now(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Move on by `ms`.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}
