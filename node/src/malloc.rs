//! Gives the memory of freed large buffers back to the system.
//!
//! glibc serves an allocation above its mmap threshold (128 KiB at start) with its own
//! mapping, returned when freed, but each such free raises the threshold to the freed size (up
//! to 32 MiB). After the first 1 MiB block or 256 KiB message is freed, later ones come from the
//! heaps of the threads that allocate them, where freed space stays mapped between live
//! allocations. Measured (`scripts/bench.sh memory`): a member catching up a 1 GiB history of
//! 256 KiB messages peaked at 287 MiB RSS with a live heap of about 110 MiB.
//!
//! Fixing the threshold at 128 KiB brought that peak to 129 MiB but cost 27-40 % of the
//! transfer speed (every block a fresh mapping, faulted in page by page: 274 -> 166-199 MB/s
//! in `scripts/bench.sh transfer`). So the threshold stays glibc's, and the importer calls
//! [`trim`] after each batch it stores: `malloc_trim` hands every heap's free pages back
//! (`madvise`), in the middle of a heap too. Not on the fetch path: pages handed back there
//! are faulted in again by the next blocks (measured: 222 against 274 MB/s).

/// Most glibc arenas any command uses (set in `cli::main`). glibc makes up to 8 per core, one per thread that meets
/// contention, and each keeps the pages freed in it between live allocations. Measured
/// (`scripts/bench.sh memory-small`, 1,000,000 small messages): a member peaked at 420 MiB
/// RSS with glibc's default against a live heap of 140 MiB, 272 MiB with 2 arenas.
pub const ARENAS: i32 = 2;

/// Caps glibc's arenas at [`ARENAS`], unless `MALLOC_ARENA_MAX` says otherwise (the operator's
/// word wins). Call before the runtime starts its threads. A no-op off glibc.
pub fn limit_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator settings; called before other threads allocate.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
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
