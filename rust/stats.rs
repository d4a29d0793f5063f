//! Per-mount counters, in debugfs at /sys/kernel/debug/rdaxfs/<dev>/ and
//! printed at unmount.

use crate::glue::debugfs::Counters;
use kernel::c_str;
use kernel::prelude::PinInit;
use kernel::str::CStr;

/// Data blocks allocated.
pub(crate) const BLOCKS_ALLOCATED: usize = 0;
/// Bytes zeroed in new blocks.
pub(crate) const BYTES_ZEROED: usize = 1;
/// PTE-sized DAX faults.
pub(crate) const PTE_FAULTS: usize = 2;
/// PMD-sized DAX faults that mapped 2 MiB.
pub(crate) const PMD_FAULTS: usize = 3;
/// PMD faults that fell back to PTEs.
pub(crate) const PMD_FALLBACKS: usize = 4;
/// Rounds of break-layouts waiting for a pinned page.
pub(crate) const LAYOUT_WAITS: usize = 5;

const NAMES: [&CStr; 6] = [
    c_str!("blocks_allocated"),
    c_str!("bytes_zeroed"),
    c_str!("pte_faults"),
    c_str!("pmd_faults"),
    c_str!("pmd_fallbacks"),
    c_str!("layout_waits"),
];

/// The counters of one mount.
pub(crate) type Stats = Counters<6>;

/// Fresh counters.
pub(crate) fn new() -> impl PinInit<Stats> {
    Stats::new(NAMES)
}
