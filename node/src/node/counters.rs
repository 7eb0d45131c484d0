//! What a node refused, and why: one counter per reason, shown in `/metrics`; and what a
//! lagging subscriber missed.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Counters of refused messages, by reason (a fixed set of `&'static str` reasons, so the map
/// stays small).
#[derive(Debug, Default)]
pub struct Counters {
    refused: Mutex<BTreeMap<&'static str, u64>>,
    /// Network notices (peer connected, ...) a slow subscriber missed.
    notices_missed: std::sync::atomic::AtomicU64,
}

impl Counters {
    /// Counts one message refused for `reason`.
    pub fn refused(&self, reason: &'static str) {
        *self.refused.lock().unwrap_or_else(|p| p.into_inner()).entry(reason).or_default() += 1;
    }

    /// Counts network notices missed by a lagging subscriber.
    pub fn notices_missed(&self, n: u64) {
        self.notices_missed.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Network notices missed so far.
    pub fn missed(&self) -> u64 {
        self.notices_missed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every reason seen, with its count.
    pub fn refusals(&self) -> Vec<(&'static str, u64)> {
        self.refused.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (*k, *v)).collect()
    }
}
