//! Gives the memory of freed large buffers back to the system.
//!
//! glibc serves an allocation above its mmap threshold (128 KiB at start) with its own
//! mapping, returned when freed, but each such free raises the threshold to the freed size (up
//! to 32 MiB). After the first 1 MiB block is freed, later large buffers come from the heaps of
//! the threads that allocate them, where freed space stays mapped between live allocations.
//! The largest churn is sled's: a 512 KiB IO buffer per log segment it writes (3855 of them in
//! a catch-up of 1,000,000 small messages, heaptrack), each freed between long-lived nodes.
//!
//! So the threshold is fixed at [`MMAP_THRESHOLD`] (which also stops glibc moving it), and the
//! importer calls [`trim`] as it stores batches. Measured (`scripts/bench.sh memory-small`, one
//! sitting): member peak RSS 196 MiB with glibc's moving threshold, 122 MiB at 256 KiB
//! (2 MiB: 192, 1 MiB: 217 — the 512 KiB buffers must fall above it). The cost is a fresh
//! mapping per received block, faulted in page by page: a loopback fetch of 256 MiB went
//! 398 -> 323 MB/s side by side (alternating order, 4 pairs), still far above any real link and
//! the 283 MB/s floor. `MALLOC_MMAP_THRESHOLD_` in the environment overrides it.
//!
//! Not trimmed on the fetch path: pages handed back there are faulted in again by the next
//! blocks (measured: 222 against 274 MB/s).

/// Allocations of at least this many bytes get their own mapping, returned to the system when
/// freed (see the module's measurements).
pub const MMAP_THRESHOLD: i32 = 256 * 1024;

/// Most glibc arenas any command uses (set in `cli::main`). glibc makes up to 8 per core, one per thread that meets
/// contention, and each keeps the pages freed in it between live allocations. Measured
/// (`scripts/bench.sh memory-small`, 1,000,000 small messages): a member peaked at 420 MiB
/// RSS with glibc's default against a live heap of 140 MiB, 272 MiB with 2 arenas.
pub const ARENAS: i32 = 2;

/// Caps glibc's arenas at [`ARENAS`] and fixes its mmap threshold at [`MMAP_THRESHOLD`],
/// unless `MALLOC_ARENA_MAX` / `MALLOC_MMAP_THRESHOLD_` say otherwise (the operator's word
/// wins). Call before the runtime starts its threads. A no-op off glibc.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator settings; called before other threads allocate.
    unsafe {
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
}

/// Returns the free pages of every heap to the system. A no-op off glibc.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory that is free; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn trimming_leaves_live_memory_alone() {
        let live: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 300 * 1024]).collect();
        drop((0..64).map(|_| vec![0u8; 300 * 1024]).collect::<Vec<_>>());
        super::trim();
        assert!(live.iter().enumerate().all(|(i, v)| v.iter().all(|b| *b == i as u8)));
    }
}
