//! Regular files: read/write through DAX, fsync, size changes, fallocate
//! and page faults.

use crate::format::{BLOCK_SHIFT, BLOCK_SIZE_U64, HUGE_BLOCKS, MAX_LOGICAL_BLOCK};
use crate::glue::bindings::{
    FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE,
    FALLOC_FL_ZERO_RANGE, VM_FAULT_FALLBACK, VM_FAULT_NEEDDSYNC, VM_FAULT_SIGBUS,
};
use crate::glue::code;
use crate::glue::file::{dax_writeback, OpenFile};
use crate::glue::inode::InvalidateGuard;
use crate::glue::{Kiocb, VmFault};
use crate::inode::{persist, persist_with, unmap_range, RInode, FREE_CHUNK};
use crate::layouts::break_layouts;
use crate::{iomap, Rdaxfs};
use kernel::prelude::*;

/// Largest file offset rdaxfs maps.
const MAX_BYTES: u64 = crate::format::MAX_FILE_SIZE;

/// read(2): straight from pmem, no page cache.
pub(crate) fn read_iter(k: &mut Kiocb<'_, Rdaxfs>) -> Result<usize> {
    if k.count() == 0 {
        return Ok(0);
    }
    let inode = k.inode();
    let _l = inode.lock_shared();
    let n = k.dax_rw()?;
    k.accessed();
    Ok(n)
}

/// write(2): straight to pmem. At ENOSPC a write that copied anything
/// returns the short count, else ENOSPC; there is no buffered fallback.
pub(crate) fn write_iter(k: &mut Kiocb<'_, Rdaxfs>) -> Result<usize> {
    let inode = k.inode();
    let _l = inode.lock();
    // errors=remount-ro may have made the mount read-only under files
    // already open for writing.
    if inode.sb().read_only() {
        return Err(EROFS);
    }
    if k.write_checks()? == 0 {
        return Ok(0);
    }
    k.file_modified()?;
    let old = inode.size();
    // Only a write reaching past EOF grows the file or maps blocks past it
    // (`FileMap::pending`): an overwrite inside EOF commits nothing.
    let past_eof = k.pos() + k.count() as u64 > old;
    if past_eof {
        // The write may end past EOF: whatever a mapped store left past
        // the old EOF in its block must read as zeros, both in a gap the
        // write leaves and past the write's end (the new EOF).
        zero_tail(inode, old)?;
    }
    let start = k.pos();
    let n = k.dax_rw();
    let traced = match (&n, crate::glue::dax::trace::on()) {
        (Ok(n), true) => trace_written(inode, start, *n as u64),
        _ => Ok(()),
    };
    // DAX copied with cache-bypassing stores: make them durable before the
    // write returns (and before a new size can commit).
    inode.sb().info().dax.fence();
    let grew = n.is_ok() && k.pos() > inode.size();
    let mut fm = past_eof.then(|| inode.info().map.lock());
    if let Some(fm) = fm.as_mut().filter(|fm| grew || !fm.pending.is_empty()) {
        // The data is durable; the new size commits after it, with the
        // blocks the write mapped past the old EOF (`FileMap::pending`;
        // a failed copy still commits those it mapped, as a write inside
        // EOF would have).
        if grew {
            inode.set_size(k.pos());
        }
        if let Err(e) = persist(inode, fm) {
            crate::inode::drop_pending(inode, fm);
            if grew {
                inode.set_size(old);
            }
            return Err(e);
        }
    }
    drop(fm);
    let n = n?;
    traced?;
    drop(_l);
    k.write_sync(n)
}

/// TEST ONLY (store trace on): records the bytes write(2) just copied to
/// `[start, start + n)` as stores to their physical blocks, so that the
/// crash-state explorer sees file data (DAX copies it, not DaxDev).
fn trace_written(inode: &RInode, start: u64, n: u64) -> Result {
    let info = inode.sb().info();
    let mut pos = start;
    while pos < start + n {
        let within = pos % BLOCK_SIZE_U64;
        let len = (BLOCK_SIZE_U64 - within).min(start + n - pos);
        let phys = inode.info().map.lock().lookup(pos >> BLOCK_SHIFT);
        if let Some((p, _)) = phys {
            info.dax
                .trace_data(p * BLOCK_SIZE_U64 + within, len as usize)?;
        }
        pos += len;
    }
    Ok(())
}

/// Zeroes the bytes of the block holding `size` that lie past it, so that
/// extending the file exposes zeros (an mmap store may have left data past
/// EOF in the last page).
fn zero_tail(inode: &RInode, size: u64) -> Result {
    zero_bytes(inode, size, size.next_multiple_of(BLOCK_SIZE_U64))
}

/// fsync(2): every metadata change is durable when its transaction
/// returns; data stored via mappings is flushed from the CPU caches here.
pub(crate) fn fsync(inode: &RInode, start: i64, end: i64) -> Result {
    dax_writeback(inode, start, end)?;
    inode.sb().info().dax.fence();
    // The device may buffer writes past the CPU caches (flush hints,
    // virtio-pmem): flush it, as ext4_sync_file does with its barrier.
    inode.sb().flush_device()
}

/// Before a range of the file loses or moves blocks, flushes CPU caches
/// for dirty DAX entries around it. The kernel drops a whole 2 MiB (PMD)
/// entry even when only part of it goes away, so the flush covers the PMD
/// neighbourhood: the part that stays keeps its data durable.
fn flush_around(inode: &RInode, start: u64, end: u64) -> Result {
    const PMD: u64 = HUGE_BLOCKS * BLOCK_SIZE_U64;
    let s = start / PMD * PMD;
    let e = end.div_ceil(PMD).saturating_mul(PMD).min(i64::MAX as u64);
    dax_writeback(inode, s as i64, e as i64)
}

/// Frees (unmaps) the file's blocks in `[from_blk, to_blk)`, after
/// breaking layouts; the caller holds i_rwsem and `inv`. The file's size
/// and times as set in memory commit with it.
fn unmap_blocks(inode: &RInode, from_blk: u64, to_blk: u64) -> Result {
    let mut fm = inode.info().map.lock();
    if to_blk <= from_blk {
        return persist(inode, &mut fm);
    }
    unmap_range(inode, &mut fm, from_blk, to_blk, |_| Ok(()))
}

/// Changes a regular file's size (truncate); i_rwsem held exclusive.
pub(crate) fn set_size(inode: &RInode, size: u64) -> Result {
    if size > MAX_BYTES {
        return Err(EFBIG);
    }
    let old = inode.size();
    inode.dio_wait();
    let inv = inode.invalidate_lock();
    if size >= old {
        zero_tail(inode, old)?;
        inode.set_size(size);
    } else {
        // No page of the cut-off range may be pinned when its block goes.
        break_layouts(inode, &inv, size, i64::MAX as u64)?;
        flush_around(inode, size, old)?;
        inode.set_size(size);
        inode.truncate_pagecache(size);
        inode.touch_cmtime();
        // The smaller size and the freed blocks commit together.
        unmap_blocks(
            inode,
            size.div_ceil(BLOCK_SIZE_U64),
            u64::MAX >> BLOCK_SHIFT,
        )?;
        return zero_tail(inode, size);
    }
    inode.touch_cmtime();
    let mut fm = inode.info().map.lock();
    persist(inode, &mut fm)
}

/// Allocates zeroed blocks for every hole in `[first, first + count)`;
/// the caller holds i_rwsem and `inv`.
///
/// A read fault on a hole maps a zero page. Once the hole has blocks, a
/// write(2) there finds them mapped and stores into pmem, and DAX only
/// unmaps zero pages for blocks iomap reports as new: so each filled hole
/// is invalidated here, or a mapping would go on showing zeros where
/// read(2) shows the data (ext4 and xfs report their unwritten extents as
/// new when a write converts them).
fn allocate(inode: &RInode, inv: &InvalidateGuard<'_, Rdaxfs>, first: u64, count: u64) -> Result {
    let mut l = first;
    while l < first + count {
        let fm = inode.info().map.lock();
        if let Some((_, run)) = fm.lookup(l) {
            l += run;
            continue;
        }
        let hole = fm.hole_len(l, first + count - l);
        let (_, n) = iomap::alloc_zeroed(inode, fm, l, hole, hole >= HUGE_BLOCKS, false)?;
        inv.invalidate_range(l << BLOCK_SHIFT, ((l + n) << BLOCK_SHIFT) - 1);
        l += n;
    }
    Ok(())
}

/// Zeroes bytes `[start, end)` that lie inside one block, if mapped.
fn zero_bytes(inode: &RInode, start: u64, end: u64) -> Result {
    if start >= end {
        return Ok(());
    }
    let info = inode.sb().info();
    let phys = inode
        .info()
        .map
        .lock()
        .lookup(start >> BLOCK_SHIFT)
        .map(|(p, _)| p);
    if let Some(p) = phys {
        let zeros = KVec::from_elem(0u8, (end - start) as usize, GFP_KERNEL)?;
        info.dax
            .write(p * BLOCK_SIZE_U64 + start % BLOCK_SIZE_U64, &zeros)?;
        info.dax.fence();
    }
    Ok(())
}

/// Punches `[off, end)`: whole blocks are freed, partial ones zeroed.
fn punch(inode: &RInode, inv: &InvalidateGuard<'_, Rdaxfs>, off: u64, end: u64) -> Result {
    break_layouts(inode, inv, off, end - 1)?;
    flush_around(inode, off, end)?;
    inode.truncate_pagecache_range(off, end - 1);
    let first_full = off.div_ceil(BLOCK_SIZE_U64);
    let last_full = end / BLOCK_SIZE_U64;
    if first_full > last_full {
        // Inside one block.
        return zero_bytes(inode, off, end);
    }
    zero_bytes(inode, off, first_full * BLOCK_SIZE_U64)?;
    zero_bytes(inode, last_full * BLOCK_SIZE_U64, end)?;
    unmap_blocks(inode, first_full, last_full)
}

/// COLLAPSE_RANGE and INSERT_RANGE: remove or open a block-aligned gap
/// at `off`, moving every later block by `len`.
fn shift_range(file: &OpenFile<'_, Rdaxfs>, off: u64, len: u64, insert: bool) -> Result {
    let inode = file.inode();
    if off % BLOCK_SIZE_U64 != 0 || len % BLOCK_SIZE_U64 != 0 {
        return Err(EINVAL);
    }
    let _l = inode.lock();
    let size = inode.size();
    if (insert && off >= size) || (!insert && off + len >= size) {
        return Err(EINVAL);
    }
    if insert {
        // The size limit and RLIMIT_FSIZE, as for truncate (xfs does too).
        inode.newsize_ok(size + len)?;
    }
    file.modified(&_l)?;
    inode.dio_wait();
    let inv = inode.invalidate_lock();
    // Every block from `off` on moves: no page of it may stay pinned or
    // mapped at its old file offset.
    break_layouts(inode, &inv, off, i64::MAX as u64)?;
    flush_around(inode, off, size)?;
    inode.truncate_pagecache_range(off, i64::MAX as u64);
    let (b, n) = (off >> BLOCK_SHIFT, len >> BLOCK_SHIFT);
    inode.touch_cmtime();
    let mut fm = inode.info().map.lock();
    if insert {
        // Blocks kept past EOF (fallocate KEEP_SIZE) move too: none may
        // end up past the largest offset the format maps.
        let map_end = fm.ext.iter().map(|e| e.logical + u64::from(e.len)).max();
        if map_end.is_some_and(|e| e + n > MAX_LOGICAL_BLOCK) {
            return Err(EFBIG);
        }
        fm.split_at(b)?;
        fm.shift(b, n as i64)?;
        inode.set_size(size + len);
        persist(inode, &mut fm)?;
    } else {
        // Very many extents in the range: free all but the first chunk
        // ahead (the range reads as a hole if the power fails meanwhile).
        let cut = fm.chunk_end(b, b + n, FREE_CHUNK);
        if cut < b + n {
            unmap_range(inode, &mut fm, cut, b + n, |_| Ok(()))?;
        }
        // The rest of the range, the shift and the size: one transaction.
        let mut freed = KVec::<(u64, u32)>::new();
        let mut oom = false;
        fm.remove(b, n, |p, c| oom |= freed.push((p, c), GFP_KERNEL).is_err())?;
        if oom {
            let _ = fm.reload(inode.sb().info(), inode.ino());
            return Err(ENOMEM);
        }
        fm.shift(b + n, -(n as i64))?;
        inode.set_size(size - len);
        persist_with(inode, &mut fm, |tx| {
            for &(p, c) in freed.iter() {
                tx.free_blocks(p, c.into())?;
            }
            Ok(())
        })?;
    }
    drop(fm);
    drop(inv);
    Ok(())
}

/// fallocate(2): allocate (mode 0, KEEP_SIZE), PUNCH_HOLE, ZERO_RANGE,
/// COLLAPSE_RANGE, INSERT_RANGE.
pub(crate) fn fallocate(file: &OpenFile<'_, Rdaxfs>, mode: i32, offset: i64, len: i64) -> Result {
    let inode = file.inode();
    let mode = mode as u32;
    if offset < 0 || len <= 0 {
        return Err(EINVAL);
    }
    let (off, end) = (offset as u64, offset as u64 + len as u64);
    if end > MAX_BYTES {
        return Err(EFBIG);
    }
    if inode.sb().read_only() {
        return Err(EROFS);
    }
    if mode == FALLOC_FL_COLLAPSE_RANGE || mode == FALLOC_FL_INSERT_RANGE {
        return shift_range(file, off, len as u64, mode == FALLOC_FL_INSERT_RANGE);
    }
    if mode & !(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE) != 0 {
        return Err(code::eopnotsupp());
    }
    if mode & FALLOC_FL_PUNCH_HOLE != 0
        && (mode & FALLOC_FL_KEEP_SIZE == 0 || mode & FALLOC_FL_ZERO_RANGE != 0)
    {
        return Err(code::eopnotsupp());
    }
    let _l = inode.lock();
    if mode & FALLOC_FL_KEEP_SIZE == 0 && end > inode.size() {
        // RLIMIT_FSIZE (EFBIG and SIGXFSZ), as a write growing the file.
        inode.newsize_ok(end)?;
    }
    // As a write: drop suid/sgid, update the times.
    file.modified(&_l)?;
    inode.dio_wait();
    let inv = inode.invalidate_lock();
    if mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE) != 0 {
        let stop = end.min(inode.size().max(if mode & FALLOC_FL_ZERO_RANGE != 0 {
            end
        } else {
            0
        }));
        if off < stop {
            punch(inode, &inv, off, stop)?;
        }
    }
    if mode & FALLOC_FL_KEEP_SIZE == 0 && end > inode.size() {
        // Growing the file exposes the old last block's tail: zero what
        // mapped stores may have left past EOF there.
        zero_tail(inode, inode.size())?;
    }
    if mode & FALLOC_FL_PUNCH_HOLE == 0 {
        let first = off >> BLOCK_SHIFT;
        allocate(inode, &inv, first, end.div_ceil(BLOCK_SIZE_U64) - first)?;
        if mode & FALLOC_FL_KEEP_SIZE == 0 && end > inode.size() {
            inode.set_size(end);
        }
    }
    drop(inv);
    inode.touch_cmtime();
    let mut fm = inode.info().map.lock();
    persist(inode, &mut fm)
}

/// A page fault: PTE (order 0) or PMD (order 9) through DAX, with the
/// invalidate lock shared so that no layout change runs underneath.
pub(crate) fn fault(vmf: &VmFault<'_, Rdaxfs>, order: u32) -> u32 {
    let inode = vmf.inode();
    let stats = &inode.sb().info().stats;
    if vmf.is_write() && inode.sb().read_only() {
        // Forced read-only (errors=remount-ro) under a shared writable
        // mapping: nothing may be written or allocated any more.
        return VM_FAULT_SIGBUS;
    }
    let _pf = vmf.is_write().then(|| vmf.start_pagefault());
    let inv = inode.invalidate_lock_shared();
    let r = vmf.dax_fault(order);
    drop(inv);
    match (order, r.ret & VM_FAULT_FALLBACK != 0) {
        (0, _) => stats.add(crate::stats::PTE_FAULTS, 1),
        (_, false) => stats.add(crate::stats::PMD_FAULTS, 1),
        (_, true) => stats.add(crate::stats::PMD_FALLBACKS, 1),
    }
    if r.ret & VM_FAULT_NEEDDSYNC != 0 {
        vmf.finish_sync(order, &r)
    } else {
        r.ret
    }
}

use kernel::error::code::{EFBIG, EINVAL, EROFS};
