//! Breaking DAX layouts before blocks leave a file.
//!
//! With DAX the page a device DMAs into *is* the filesystem block. Before
//! truncate, punch, zero-range, collapse or insert frees or moves blocks,
//! every page of the range that is pinned (get_user_pages for O_DIRECT or
//! RDMA) must be released, or the block could be reused while the device
//! still writes into it.
//!
//! The caller holds i_rwsem and the invalidate lock exclusive. Then:
//! 1. `dax_layout_busy_page_range` unmaps the range from every process, so
//!    a new pin must fault, and the fault waits for the invalidate lock;
//!    it returns a page whose refcount is still elevated, if any.
//! 2. We sleep until that page's refcount drops back to 1, dropping the
//!    invalidate lock while asleep (the pin holder may need to fault).
//! 3. We start over: while the lock was dropped other pages may have been
//!    pinned, and other pages may have been busy all along. Only a pass
//!    that finds no busy page at all ends the loop. Stopping after one
//!    wait, or after a page whose count dropped before we waited, leaves
//!    pinned pages behind (the ext4/xfs bug fixed in 2018).
//!
//! The scan looks at the mapping's DAX entries whether or not a process
//! still maps the file: a page pinned through a mapping that was unmapped
//! since (munmap while the O_DIRECT read is in flight) keeps its entry and
//! its pin. 6.12's `dax_layout_busy_page_range` returns nothing at once
//! for an unmapped file (fixed upstream in 6.15), so rdaxfs uses its own
//! copy of it without that shortcut (`rdaxfs_dax_busy_page_range`).
//!
//! On 7.3 (DAX pages are refcounted folios since 6.15) the glue uses the
//! kernel's own `dax_layout_busy_page_range`, which scans unmapped files
//! too, idle means a refcount of 0, and a page that is faulted back in while
//! the lock is dropped holds a mapping reference: the wait there is bounded
//! (100 ms) and the loop above simply scans again (rust/helpers.c).
//!
//! Eviction (the last close of an unlinked file, or unmount) drops every
//! DAX entry and may free every block: it first waits for every pinned
//! page too ([`break_layouts_final`]), before the mapping is truncated.

use crate::glue::bugs;
use crate::glue::inode::{Evicting, InvalidateGuard};
use crate::inode::RInode;
use crate::Rdaxfs;
use kernel::prelude::*;

/// Waits until no page of `inode` in `[start, end]` (bytes) is pinned.
/// A signal ends the wait with `ERESTARTSYS` (restarted transparently
/// under SA_RESTART, else `EINTR`); nothing has been changed.
pub(crate) fn break_layouts(
    inode: &RInode,
    inv: &InvalidateGuard<'_, Rdaxfs>,
    start: u64,
    end: u64,
) -> Result {
    if bugs::skip_break_layouts() {
        return Ok(());
    }
    let stats = &inode.sb().info().stats;
    loop {
        let busy = if bugs::busy_scan_mapped_only() {
            // TEST ONLY: 6.12's scan, blind once the file is unmapped.
            inv.busy_page_mapped_only(start, end)
        } else {
            inv.busy_page(start, end)
        };
        let Some(page) = busy else {
            return Ok(());
        };
        stats.add(crate::stats::LAYOUT_WAITS, 1);
        inv.wait_page_idle(page)?;
        if bugs::break_layouts_once() {
            // TEST ONLY: the pre-2018 loop that gave up after one page.
            return Ok(());
        }
    }
}

/// Eviction: waits until no page of the file is pinned, before its DAX
/// entries are dropped and its blocks freed (unlinked file) or the
/// filesystem goes away (unmount). Cannot fail: the wait is uninterruptible
/// and ends when the DMA completes (fsdax refuses long-term pins).
pub(crate) fn break_layouts_final(ev: &Evicting<'_, Rdaxfs>) {
    if bugs::evict_skip_wait() {
        // TEST ONLY: 6.12's behaviour, entries dropped under DMA.
        return;
    }
    let stats = &ev.inode().sb().info().stats;
    while let Some(page) = ev.busy_page() {
        stats.add(crate::stats::LAYOUT_WAITS, 1);
        ev.wait_page_idle(page);
    }
}
