//! `malloc::tune` in a process of its own: glibc's settings are process-wide, and buffers
//! other tests free concurrently would be reused for the ones this test allocates.

/// glibc puts a mapped chunk's 16-byte header at the start of a page: its data starts 16 bytes
/// in. A heap chunk lands there by chance once in 256.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn after_tuning_buffers_over_the_threshold_get_their_own_mapping_even_after_a_larger_was_freed() {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
        return;
    }
    archive_node::malloc::tune();
    // Freeing a mapped 8 MiB buffer is what raises glibc's moving threshold to 8 MiB.
    drop(std::hint::black_box(vec![1u8; 8 << 20]));
    let bufs: Vec<Vec<u8>> = (0..4).map(|i| vec![i as u8 + 1; 512 * 1024 + i * 4096]).collect();
    for b in &bufs {
        assert_eq!(b.as_ptr() as usize % 4096, 16, "a 512 KiB buffer came from the heap");
    }
}
