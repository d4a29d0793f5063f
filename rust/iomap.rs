//! The iomap begin callback: where file bytes live, allocating and zeroing
//! blocks for writes.
//!
//! Allocation, zeroing and publication of new blocks happen atomically
//! under the inode's allocation lock (`InodeInfo::map`): a block becomes
//! visible in the extent list only after it has been zeroed durably, and
//! the extent list is only read under that lock. So when two write faults
//! (or a fault and a write) race on a hole, the loser of the lock finds the
//! winner's published, zeroed extent and maps it; nobody zeroes a block
//! someone may already have written. DAX is never handed an unwritten
//! extent: rdaxfs has none.

use crate::format::{
    AllocRequest, Extent, BLOCK_SHIFT, BLOCK_SIZE_U64, HUGE_BLOCKS, S_IFMT, S_IFREG,
};
use crate::glue::bindings::{IOMAP_FAULT, IOMAP_WRITE, IOMAP_ZERO};
use crate::glue::bugs;
use crate::glue::iomap::{Fiemap, Iomap};
use crate::inode::{persist_with, FileMap, RInode};
use crate::stats;
use crate::Rdaxfs;
use kernel::prelude::*;
use kernel::sync::lock::mutex::MutexBackend;
use kernel::sync::lock::Guard;

/// Longest run one allocation hands out: the largest multiple of 2 MiB
/// that fits an extent's u32 length.
const MAX_RUN: u64 = u32::MAX as u64 / HUGE_BLOCKS * HUGE_BLOCKS;

/// Maps `[pos, pos + len)` of `inode` for DAX.
pub(crate) fn begin(
    inode: &RInode,
    pos: i64,
    len: i64,
    flags: u32,
    map: &mut Iomap<'_, Rdaxfs>,
) -> Result {
    if pos < 0 || len <= 0 {
        return Err(EINVAL);
    }
    let info = inode.sb().info();
    let first = (pos as u64) >> BLOCK_SHIFT;
    let last = (pos as u64 + len as u64 - 1) >> BLOCK_SHIFT;
    let count = last - first + 1;
    let allocate = flags & IOMAP_WRITE != 0 && flags & IOMAP_ZERO == 0;
    if flags & IOMAP_WRITE != 0 && (pos as u64 + len as u64) > inode.size() {
        map.set_dirty();
    }

    if allocate && inode.sb().read_only() {
        // Forced read-only (errors=remount-ro): no new blocks.
        return Err(EROFS);
    }
    let fm = inode.info().map.lock();
    if let Some((phys, run)) = fm.lookup(first) {
        let n = run.min(count);
        map.set_mapped(
            &info.dax,
            first << BLOCK_SHIFT,
            n << BLOCK_SHIFT,
            phys << BLOCK_SHIFT,
        );
        return Ok(());
    }
    let hole = fm.hole_len(first, count);
    if !allocate {
        map.set_hole(&info.dax, first << BLOCK_SHIFT, hole << BLOCK_SHIFT);
        return Ok(());
    }

    // A hole under a write: allocate, zero, publish; all under `fm`.
    let large = flags & IOMAP_FAULT != 0 && hole >= HUGE_BLOCKS;
    // Blocks wholly past EOF under write(2) (i_rwsem held, so the size
    // stays): nobody else can reach them until the size grows, and the
    // allocation commits with the new size after the data copy (one
    // transaction per extending write instead of two).
    let defer = flags & IOMAP_FAULT == 0 && (first << BLOCK_SHIFT) >= inode.size();
    let want = fault_ahead(inode, &fm, flags, first, count).unwrap_or(hole);
    let (phys, n) = alloc_zeroed(inode, fm, first, want, large, defer)?;
    map.set_mapped(
        &info.dax,
        first << BLOCK_SHIFT,
        n << BLOCK_SHIFT,
        phys << BLOCK_SHIFT,
    );
    map.set_new();
    Ok(())
}

/// Blocks a sequential page fault allocates at once: the rest of a
/// 64 KiB-aligned chunk.
const FAULT_CHUNK: u64 = 16;

/// A page fault into a hole right after a mapped block (a file being
/// filled through a mapping, front to back) allocates the rest of its
/// 64 KiB-aligned chunk below EOF, not just its page: one allocation and
/// one transaction per 16 faults instead of one each, as a stream of
/// writes gets from preallocation. The extra blocks are zeroed and
/// published under the same lock as the faulting one, so later faults
/// there just map them. A fault with no mapped block before it (random
/// access) allocates its page only. `None`: not such a fault.
///
/// The run stops at the first page that has a DAX entry: a zero page a
/// read fault mapped over the hole would stay mapped over the new block
/// (a later write(2) there finds the block allocated and invalidates
/// nothing), and a fault in progress there holds its entry locked while
/// it waits for this allocation lock. A fault inserts that locked entry
/// before it asks for blocks, so one that comes later finds these.
fn fault_ahead(inode: &RInode, fm: &FileMap, flags: u32, first: u64, count: u64) -> Option<u64> {
    if flags & IOMAP_FAULT == 0 || count != 1 || first == 0 || bugs::zero_outside_lock() {
        return None;
    }
    fm.lookup(first - 1)?;
    let eof = inode.size().div_ceil(BLOCK_SIZE_U64);
    let end = ((first / FAULT_CHUNK + 1) * FAULT_CHUNK).min(eof);
    if end <= first + 1 {
        return None;
    }
    let end = inode.first_dax_entry(first + 1, end - 1).min(end);
    Some(fm.hole_len(first, end - first))
}

/// Allocates up to `want` blocks for logical block `first` (a hole),
/// zeroes them durably and publishes them in the extent list and on-disk
/// inode (one journal transaction), with the allocation lock held throughout (`fm` is its guard,
/// consumed so that the test-only late zeroing can run after dropping it).
/// Returns the physical start and the number of blocks mapped. With
/// `defer`, nothing commits here: the blocks join `fm.pending` and commit
/// with the next transaction of the file's extent list (write(2) past EOF
/// makes that the one with its new size).
pub(crate) fn alloc_zeroed(
    inode: &RInode,
    mut fm: Guard<'_, FileMap, MutexBackend>,
    first: u64,
    want: u64,
    large: bool,
    defer: bool,
) -> Result<(u64, u64)> {
    let info = inode.sb().info();
    let large = large || inode.size() >= HUGE_BLOCKS * BLOCK_SIZE_U64;
    // An extent's length is a u32: cap the run (at a 2 MiB multiple, so
    // the next run of a large file stays PMD-aligned). Callers loop.
    let want = want.min(MAX_RUN);
    let req = AllocRequest {
        want,
        hint: fm.hint(first),
        large_file: large,
    };
    let (phys, n) = info.blocks.lock().alloc_file_blocks(req, first)?;
    info.stats.add(stats::BLOCKS_ALLOCATED, n);
    let zero_late = bugs::zero_outside_lock();
    if !zero_late {
        if let Err(e) = info.dax.zero_blocks(phys, n) {
            info.blocks.lock().release(phys, n);
            return Err(e);
        }
        info.stats.add(stats::BYTES_ZEROED, n << BLOCK_SHIFT);
    }
    let ext = Extent {
        logical: first,
        physical: phys,
        len: n as u32,
    };
    if let Err(e) = fm.insert(ext) {
        info.blocks.lock().release(phys, n);
        return Err(e);
    }
    if defer && !zero_late {
        if let Err(e) = fm.pending.push(ext, GFP_KERNEL) {
            let _ = fm.reload(info, inode.ino());
            info.blocks.lock().release(phys, n);
            return Err(e.into());
        }
        return Ok((phys, n));
    }
    // One transaction allocates the blocks and maps them; if it fails it
    // gives them back and the map is re-read.
    persist_with(inode, &mut fm, |tx| tx.alloc_blocks(phys, n))?;
    drop(fm);
    if zero_late {
        // TEST ONLY (bug_zero_outside_lock): the 2015 xfs/DAX race. The
        // extent is already visible; another writer can map it and store
        // data that this late zeroing then wipes.
        bugs::delay();
        info.dax.zero_blocks(phys, n)?;
    }
    Ok((phys, n))
}

/// FS_IOC_FIEMAP: the extents of a regular file, through [`begin`] with
/// IOMAP_REPORT (which maps nothing new). Every extent is reported as
/// plain data: rdaxfs has no unwritten extents (fallocate hands out
/// zeroed blocks), so FIEMAP_EXTENT_UNWRITTEN is never set. Directories,
/// symlinks and special files have no FIEMAP (EOPNOTSUPP, as on xfs).
pub(crate) fn fiemap(inode: &RInode, fi: &mut Fiemap, start: u64, len: u64) -> Result {
    if inode.mode() & S_IFMT != S_IFREG {
        return Err(crate::glue::code::eopnotsupp());
    }
    // Shared i_rwsem: no write, truncate or punch changes the map (or
    // the size) while the walk reports it.
    let locked = inode.lock_shared();
    fi.fill(inode, &locked, start, len)
}

/// `lseek(SEEK_DATA / SEEK_HOLE)` on a regular file: data is every mapped
/// block below EOF (fallocated blocks included, being zeroed and
/// mapped), a hole every unmapped one, with the virtual hole at EOF.
pub(crate) fn seek_data_hole(inode: &RInode, offset: i64, data: bool) -> Result<i64> {
    let locked = inode.lock_shared();
    crate::glue::iomap::seek_data_hole(inode, &locked, offset, data)
}
