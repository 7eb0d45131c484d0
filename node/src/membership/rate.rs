//! Per-author message rate limits (pure): a token bucket per author key.

use std::collections::HashMap;

use crate::community::MemberKey;

/// Authors tracked at once: past this, idle buckets (full again) are dropped first, then the
/// longest idle one, so a flood of fresh keys cannot grow the map.
pub const MAX_TRACKED_AUTHORS: usize = 10_000;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last_ms: u64,
}

/// Token buckets: `per_minute` messages a minute on average, bursts of `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    per_ms: f64,
    burst: f64,
    buckets: HashMap<MemberKey, Bucket>,
}

impl RateLimiter {
    /// A limiter; `per_minute = 0` allows everything.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            per_ms: f64::from(per_minute) / 60_000.0,
            burst: f64::from(burst.max(1)),
            buckets: HashMap::new(),
        }
    }

    /// Takes one message of `author` at `now_ms`; false when over its rate.
    pub fn allow(&mut self, author: &MemberKey, now_ms: u64) -> bool {
        if self.per_ms == 0.0 {
            return true;
        }
        if !self.buckets.contains_key(author) && self.buckets.len() >= MAX_TRACKED_AUTHORS {
            self.evict(now_ms);
        }
        let (per_ms, burst) = (self.per_ms, self.burst);
        let b = self.buckets.entry(*author).or_insert(Bucket { tokens: burst, last_ms: now_ms });
        let elapsed = now_ms.saturating_sub(b.last_ms) as f64;
        b.tokens = (b.tokens + elapsed * per_ms).min(burst);
        b.last_ms = b.last_ms.max(now_ms);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn evict(&mut self, now_ms: u64) {
        let (per_ms, burst) = (self.per_ms, self.burst);
        self.buckets.retain(|_, b| b.tokens + now_ms.saturating_sub(b.last_ms) as f64 * per_ms < burst);
        if self.buckets.len() >= MAX_TRACKED_AUTHORS {
            if let Some(oldest) = self.buckets.iter().min_by_key(|(_, b)| b.last_ms).map(|(k, _)| *k) {
                self.buckets.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyPair;

    #[test]
    fn bursts_then_the_average_rate() {
        let k = MemberKey::from_bytes(KeyPair::generate().public());
        let mut r = RateLimiter::new(60, 5); // one a second, bursts of 5
        assert_eq!((0..10).filter(|_| r.allow(&k, 0)).count(), 5);
        assert!(!r.allow(&k, 500));
        assert!(r.allow(&k, 1_000), "one more a second later");
        assert!(!r.allow(&k, 1_100));
        let other = MemberKey::from_bytes(KeyPair::generate().public());
        assert!(r.allow(&other, 1_100), "per author");
        assert!((0..1000).all(|_| RateLimiter::new(0, 1).allow(&k, 0)), "0: unlimited");
    }

    #[test]
    fn the_map_stays_bounded() {
        let mut r = RateLimiter::new(60, 1);
        for i in 0..(MAX_TRACKED_AUTHORS + 50) {
            let k = MemberKey::from_bytes(KeyPair::generate().public());
            r.allow(&k, i as u64);
        }
        assert!(r.buckets.len() <= MAX_TRACKED_AUTHORS);
    }
}
