//! Pure partitioning: time windows and byte-capped chunks (status-go's rules).

/// Largest summed `len(payload) + len(sig)` of one archive (status-go's cap).
pub const CHUNK_CAP_BYTES: usize = crate::message::ARCHIVE_CHUNK_CAP_BYTES;
/// Default window length: 7 days.
pub const DEFAULT_PARTITION_SECS: u64 = 7 * 24 * 3600;

/// The windows `[from, to)` that cover `[start, end)`: `to = min(from + partition, end)`.
///
/// `partition` must be positive (callers validate user input); 0 yields no window.
pub fn windows(start: u64, end: u64, partition: u64) -> impl Iterator<Item = (u64, u64)> {
    let mut from = start;
    std::iter::from_fn(move || {
        if partition == 0 || from >= end {
            return None;
        }
        let to = from.saturating_add(partition).min(end);
        let w = (from, to);
        from = to;
        Some(w)
    })
}

/// What the chunker decided for one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Goes into the current chunk.
    Current,
    /// Closes the current chunk and starts a new one with this message.
    NewChunk,
    /// Bigger than the cap alone: dropped.
    Dropped,
}

/// Splits a stream of message weights into chunks of at most `cap` summed bytes.
#[derive(Clone, Debug)]
pub struct Chunker {
    cap: usize,
    /// Summed weight of the current chunk; `None` before the first message.
    current: Option<usize>,
}

impl Chunker {
    /// A chunker with the given cap.
    pub fn new(cap: usize) -> Self {
        Self { cap, current: None }
    }

    /// Places one message of `weight` bytes.
    pub fn push(&mut self, weight: usize) -> Decision {
        if weight > self.cap {
            return Decision::Dropped;
        }
        match self.current {
            Some(sum) if sum + weight <= self.cap => {
                self.current = Some(sum + weight);
                Decision::Current
            }
            _ => {
                self.current = Some(weight);
                Decision::NewChunk
            }
        }
    }
}

/// Groups message indices into chunks; returns (chunks, dropped indices). For tests and tools.
pub fn plan_chunks(weights: &[usize], cap: usize) -> (Vec<Vec<usize>>, Vec<usize>) {
    let mut chunker = Chunker::new(cap);
    let mut chunks: Vec<Vec<usize>> = Vec::new();
    let mut dropped = Vec::new();
    for (i, w) in weights.iter().enumerate() {
        match chunker.push(*w) {
            Decision::Dropped => dropped.push(i),
            Decision::NewChunk => chunks.push(vec![i]),
            Decision::Current => chunks.last_mut().expect("a chunk was started").push(i),
        }
    }
    (chunks, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn windows_cover_the_range() {
        let w: Vec<_> = windows(0, 25, 10).collect();
        assert_eq!(w, vec![(0, 10), (10, 20), (20, 25)]);
        assert_eq!(windows(5, 5, 10).count(), 0);
        assert_eq!(windows(0, 10, 0).count(), 0);
        assert_eq!(windows(u64::MAX - 1, u64::MAX, 10).collect::<Vec<_>>(), vec![(u64::MAX - 1, u64::MAX)]);
    }

    #[test]
    fn oversize_is_dropped_and_cap_is_inclusive() {
        let (chunks, dropped) = plan_chunks(&[5, 5, 11, 1, 10], 10);
        assert_eq!(chunks, vec![vec![0, 1], vec![3], vec![4]]);
        assert_eq!(dropped, vec![2]);
    }

    proptest! {
        #[test]
        fn windows_partition_every_timestamp(start in 0u64..10_000, len in 0u64..10_000, p in 1u64..3_000, ts in proptest::collection::vec(0u64..30_000, 0..50)) {
            let end = start + len;
            let ws: Vec<_> = windows(start, end, p).collect();
            for t in ts {
                let n = ws.iter().filter(|(f, to)| *f <= t && t < *to).count();
                prop_assert_eq!(n, usize::from(start <= t && t < end));
            }
            for (f, t) in &ws {
                prop_assert!(f < t && t - f <= p);
            }
        }

        #[test]
        fn chunks_respect_the_cap_and_keep_every_fitting_message(weights in proptest::collection::vec(0usize..120, 0..200), cap in 1usize..200) {
            let (chunks, dropped) = plan_chunks(&weights, cap);
            let mut placed: Vec<usize> = chunks.iter().flatten().copied().collect();
            for c in &chunks {
                prop_assert!(!c.is_empty());
                prop_assert!(c.iter().map(|i| weights[*i]).sum::<usize>() <= cap);
            }
            placed.extend(&dropped);
            placed.sort();
            prop_assert_eq!(placed, (0..weights.len()).collect::<Vec<_>>());
            for d in dropped {
                prop_assert!(weights[d] > cap);
            }
        }
    }
}
