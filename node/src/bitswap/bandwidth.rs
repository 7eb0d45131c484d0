//! Bandwidth limits on block data, each way: a block served waits for its bytes' turn before it
//! is queued for the peer, a block received waits before its stream is read further (so the
//! sender's TCP window closes). Limits change at run time; totals and the current rate are kept
//! for `node_info` and `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Credit a direction may bank while idle: a short burst, not a second's worth.
const BURST: Duration = Duration::from_millis(100);
/// The current rate is measured over windows this long.
const WINDOW: Duration = Duration::from_secs(1);

/// When bytes may go: a virtual clock that advances `n / rate` per `n` bytes and lags at most
/// [`BURST`] behind real time (GCRA). Pure; the caller sleeps.
#[derive(Debug, Default)]
struct Pacer {
    paid_until: Option<Instant>,
}

impl Pacer {
    /// Books `n` bytes at `rate` bytes/s at `now`; returns how long to wait before sending them.
    fn book(&mut self, n: u64, rate: u64, now: Instant) -> Duration {
        if rate == 0 {
            self.paid_until = None;
            return Duration::ZERO;
        }
        let floor = now.checked_sub(BURST).unwrap_or(now);
        let start = self.paid_until.map_or(floor, |p| p.max(floor));
        let end = start + Duration::from_secs_f64(n as f64 / rate as f64);
        self.paid_until = Some(end);
        end.saturating_duration_since(now)
    }
}

/// Bytes in the current one-second window, and in the last full one (the current rate).
#[derive(Debug)]
struct Meter {
    start: Instant,
    bytes: u64,
    last: u64,
}

impl Meter {
    fn record(&mut self, n: u64, now: Instant) {
        self.advance(now);
        self.bytes += n;
    }

    /// Moves to the window holding `now`; a window with nothing after it reads as idle.
    fn advance(&mut self, now: Instant) {
        let windows = (now.saturating_duration_since(self.start).as_nanos() / WINDOW.as_nanos()) as u32;
        if windows == 0 {
            return;
        }
        self.last = if windows == 1 { self.bytes } else { 0 };
        self.bytes = 0;
        self.start += WINDOW * windows;
    }

    /// Bytes per second over the last full window.
    fn rate(&mut self, now: Instant) -> u64 {
        self.advance(now);
        self.last
    }
}

/// One direction's limit, total and meter.
#[derive(Debug)]
struct Direction {
    limit: AtomicU64,
    total: AtomicU64,
    pacer: Mutex<Pacer>,
    meter: Mutex<Meter>,
}

impl Direction {
    fn new(limit: u64) -> Self {
        Self {
            limit: AtomicU64::new(limit),
            total: AtomicU64::new(0),
            pacer: Mutex::new(Pacer::default()),
            meter: Mutex::new(Meter { start: Instant::now(), bytes: 0, last: 0 }),
        }
    }

    async fn pay(&self, n: u64) {
        let now = Instant::now();
        let wait = self.pacer.lock().unwrap_or_else(|p| p.into_inner()).book(
            n,
            self.limit.load(Ordering::Relaxed),
            now,
        );
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        self.total.fetch_add(n, Ordering::Relaxed);
        self.meter.lock().unwrap_or_else(|p| p.into_inner()).record(n, Instant::now());
    }

    fn usage(&self) -> Usage {
        Usage {
            limit: self.limit.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
            rate: self.meter.lock().unwrap_or_else(|p| p.into_inner()).rate(Instant::now()),
        }
    }
}

/// What `node_info.bandwidth` shows of one direction, bytes and bytes/s (limit 0: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    pub limit: u64,
    pub total: u64,
    pub rate: u64,
}

/// Both directions; cheap to clone.
#[derive(Clone, Debug)]
pub struct Bandwidth {
    up: Arc<Direction>,
    down: Arc<Direction>,
}

impl Bandwidth {
    /// Limits in bytes/s, 0 for none.
    pub fn new(max_upload_rate: u64, max_download_rate: u64) -> Self {
        Self {
            up: Arc::new(Direction::new(max_upload_rate)),
            down: Arc::new(Direction::new(max_download_rate)),
        }
    }

    /// Sets either limit (bytes/s, 0 for none); `None` leaves it.
    pub fn set_limits(&self, up: Option<u64>, down: Option<u64>) {
        if let Some(r) = up {
            self.up.limit.store(r, Ordering::Relaxed);
        }
        if let Some(r) = down {
            self.down.limit.store(r, Ordering::Relaxed);
        }
    }

    /// Waits until `n` bytes of blocks may be sent.
    pub async fn upload(&self, n: usize) {
        self.up.pay(n as u64).await
    }

    /// Waits until `n` bytes of blocks received may be taken in.
    pub async fn download(&self, n: usize) {
        self.down.pay(n as u64).await
    }

    /// (upload, download).
    pub fn usage(&self) -> (Usage, Usage) {
        (self.up.usage(), self.down.usage())
    }
}

impl Default for Bandwidth {
    fn default() -> Self {
        Self::new(0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn no_limit_never_waits() {
        let (mut p, now) = (Pacer::default(), Instant::now());
        for _ in 0..1000 {
            assert_eq!(p.book(1 << 20, 0, now), Duration::ZERO);
        }
    }

    proptest! {
        /// Whatever the sizes, n bytes sent back to back take n / rate, less at most the burst.
        #[test]
        fn back_to_back_bytes_go_at_the_rate(sizes in proptest::collection::vec(1u64..2_000_000, 1..50), rate in 10_000u64..100_000_000) {
            let (mut p, start) = (Pacer::default(), Instant::now());
            let mut now = start;
            let mut sent = 0u64;
            for n in sizes {
                now += p.book(n, rate, now);
                sent += n;
            }
            // The last booking ends `sent / rate` after the start, less the credit of BURST.
            let ideal = Duration::from_secs_f64(sent as f64 / rate as f64);
            let took = now.duration_since(start);
            let slack = Duration::from_millis(1);
            prop_assert!(took + BURST + slack >= ideal, "{took:?} vs {ideal:?}");
            prop_assert!(took <= ideal + slack, "{took:?} vs {ideal:?}");
        }
    }

    #[test]
    fn idle_time_banks_only_a_burst() {
        let (mut p, start) = (Pacer::default(), Instant::now());
        p.book(1000, 1000, start); // one second of bytes
        let later = start + Duration::from_secs(60);
        // After a minute idle, a second's worth waits a second, less the burst.
        assert_eq!(p.book(1000, 1000, later), Duration::from_secs(1) - BURST);
    }

    #[test]
    fn the_meter_reports_the_last_full_window_and_zero_when_idle() {
        let start = Instant::now();
        let mut m = Meter { start, bytes: 0, last: 0 };
        m.record(500, start);
        m.record(500, start + Duration::from_millis(500));
        m.record(10, start + Duration::from_millis(1000));
        assert_eq!(m.rate(start + Duration::from_millis(1100)), 1000);
        assert_eq!(m.rate(start + Duration::from_secs(5)), 0);
    }

    #[tokio::test]
    async fn limits_change_at_run_time_and_totals_count() {
        let b = Bandwidth::new(0, 0);
        b.upload(100).await;
        b.set_limits(Some(1_000_000), None);
        b.upload(100).await;
        let (up, down) = b.usage();
        assert_eq!((up.limit, up.total), (1_000_000, 200));
        assert_eq!((down.limit, down.total), (0, 0));
    }
}
