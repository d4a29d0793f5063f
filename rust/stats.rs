//! Per-mount counters (printed at unmount and by the sysfs-free
//! `rdaxfs-stats` debug line in the kernel log on demand).

use core::sync::atomic::{AtomicU64, Ordering};

/// Counters a mount keeps; all relaxed, for observation only.
#[derive(Default)]
pub(crate) struct Stats {
    /// Data blocks allocated.
    pub(crate) blocks_allocated: AtomicU64,
    /// Bytes zeroed in new blocks.
    pub(crate) bytes_zeroed: AtomicU64,
    /// PTE-sized DAX faults.
    pub(crate) pte_faults: AtomicU64,
    /// PMD-sized DAX faults that mapped 2 MiB.
    pub(crate) pmd_faults: AtomicU64,
    /// PMD faults that fell back to PTEs.
    pub(crate) pmd_fallbacks: AtomicU64,
    /// Rounds of break-layouts waiting for a pinned page.
    pub(crate) layout_waits: AtomicU64,
}

impl Stats {
    /// Adds `n` to a counter.
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub(crate) fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}
