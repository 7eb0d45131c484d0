//! Bandwidth limits on block data, each way: a block served waits for its bytes' turn before it
//! is queued for the peer, a block received waits before its stream is read further (so the
//! sender's TCP window closes). Limits change at run time; totals and the current rate are kept
//! for `node_info` and `/metrics`, and totals per peer for `node_peers`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Credit a direction may bank while idle: a short burst, not a second's worth.
const BURST: Duration = Duration::from_millis(100);
/// The current rate is measured over windows this long.
const WINDOW: Duration = Duration::from_secs(1);
/// Peers whose totals are kept; past it, the peer that moved the fewest bytes is forgotten.
pub const MAX_PEERS_COUNTED: usize = 4096;

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

/// Block bytes one peer took from us and gave us.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PeerTotals {
    pub up: u64,
    pub down: u64,
}

/// Totals per peer, at most [`MAX_PEERS_COUNTED`] of them. Pure.
#[derive(Debug, Default)]
struct PerPeer(HashMap<libp2p::PeerId, PeerTotals>);

impl PerPeer {
    fn add(&mut self, peer: libp2p::PeerId, up: u64, down: u64) {
        if !self.0.contains_key(&peer) && self.0.len() >= MAX_PEERS_COUNTED {
            let least = self.0.iter().min_by_key(|(_, t)| t.up + t.down).map(|(p, _)| *p);
            if let Some(least) = least {
                self.0.remove(&least);
            }
        }
        let t = self.0.entry(peer).or_default();
        t.up += up;
        t.down += down;
    }
}

/// Both directions; cheap to clone.
#[derive(Clone, Debug)]
pub struct Bandwidth {
    up: Arc<Direction>,
    down: Arc<Direction>,
    per_peer: Arc<Mutex<PerPeer>>,
}

impl Bandwidth {
    /// Limits in bytes/s, 0 for none.
    pub fn new(max_upload_rate: u64, max_download_rate: u64) -> Self {
        Self {
            up: Arc::new(Direction::new(max_upload_rate)),
            down: Arc::new(Direction::new(max_download_rate)),
            per_peer: Arc::default(),
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

    /// Waits until `n` bytes of blocks may be sent to `peer`.
    pub async fn upload(&self, peer: libp2p::PeerId, n: usize) {
        self.up.pay(n as u64).await;
        self.per_peer.lock().unwrap_or_else(|p| p.into_inner()).add(peer, n as u64, 0);
    }

    /// Waits until `n` bytes of blocks received from `peer` may be taken in.
    pub async fn download(&self, peer: libp2p::PeerId, n: usize) {
        self.down.pay(n as u64).await;
        if n > 0 {
            self.per_peer.lock().unwrap_or_else(|p| p.into_inner()).add(peer, 0, n as u64);
        }
    }

    /// Block bytes `peer` took from us and gave us (zero for a peer not counted).
    pub fn peer(&self, peer: &libp2p::PeerId) -> PeerTotals {
        self.per_peer.lock().unwrap_or_else(|p| p.into_inner()).0.get(peer).copied().unwrap_or_default()
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
    fn per_peer_totals_are_bounded_and_forget_the_smallest() {
        let mut t = PerPeer::default();
        let peers: Vec<_> = (0..MAX_PEERS_COUNTED + 1).map(|_| libp2p::PeerId::random()).collect();
        for (i, p) in peers.iter().enumerate().take(MAX_PEERS_COUNTED) {
            t.add(*p, i as u64 + 1, 1);
        }
        t.add(peers[0], 0, 5);
        assert_eq!(t.0[&peers[0]], PeerTotals { up: 1, down: 6 });
        // A newcomer past the bound takes the place of the peer that moved the fewest bytes.
        t.add(peers[MAX_PEERS_COUNTED], 0, 1);
        assert_eq!(t.0.len(), MAX_PEERS_COUNTED);
        assert!(!t.0.contains_key(&peers[1]), "2 bytes, the fewest");
        assert!(t.0.contains_key(&peers[0]) && t.0.contains_key(&peers[MAX_PEERS_COUNTED]));
    }

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
        let (b, peer) = (Bandwidth::new(0, 0), libp2p::PeerId::random());
        b.upload(peer, 100).await;
        b.set_limits(Some(1_000_000), None);
        b.upload(peer, 100).await;
        b.download(peer, 7).await;
        let (up, down) = b.usage();
        assert_eq!((up.limit, up.total), (1_000_000, 200));
        assert_eq!((down.limit, down.total), (0, 7));
        assert_eq!(b.peer(&peer), PeerTotals { up: 200, down: 7 });
        assert_eq!(b.peer(&libp2p::PeerId::random()), PeerTotals::default());
    }
}
