//! The DAX device under a mounted filesystem: byte access to metadata on
//! pmem, durable zeroing of data blocks, and busy-page lookups.

use super::bindings;
use kernel::prelude::*;

const PAGE_SHIFT: u32 = 12;

/// The fsdax device of a mount, mapped for the kernel once at mount.
pub(crate) struct DaxDev {
    dev: *mut bindings::dax_device,
    /// Byte offset of the block device (partition) within the DAX device.
    part_off: u64,
    /// Kernel mapping of the whole block device.
    kaddr: *mut u8,
    /// Bytes reachable through `kaddr`.
    len: u64,
}

// SAFETY: the DAX device is refcounted and usable from any thread; the
// mapping is plain memory, and concurrent access to the same metadata bytes
// is serialised by the filesystem's locks.
unsafe impl Send for DaxDev {}
// SAFETY: as above.
unsafe impl Sync for DaxDev {}

/// A page the mapping still references with an elevated refcount.
pub(crate) struct BusyPage(pub(crate) *mut bindings::page);

impl DaxDev {
    /// Looks up and maps the DAX device of `bdev`; `None` if the device
    /// cannot do DAX or cannot be mapped whole.
    ///
    /// # Safety
    /// `bdev` is an open block device that outlives the returned value.
    pub(crate) unsafe fn open(bdev: *mut bindings::block_device, bytes: u64) -> Option<Self> {
        let mut part_off = 0u64;
        // SAFETY: per the contract `bdev` is open.
        let dev = unsafe {
            bindings::fs_dax_get_by_bdev(
                bdev,
                &mut part_off,
                core::ptr::null_mut(),
                core::ptr::null(),
            )
        };
        if dev.is_null() {
            return None;
        }
        let mut d = Self {
            dev,
            part_off,
            kaddr: core::ptr::null_mut(),
            len: 0,
        };
        let pages = (bytes >> PAGE_SHIFT) as isize;
        let mut kaddr: *mut ffi::c_void = core::ptr::null_mut();
        // SAFETY: `dev` is a live DAX device; the read lock keeps it from
        // going away during the call.
        let got = unsafe {
            let id = bindings::dax_read_lock();
            let r = bindings::dax_direct_access(
                dev,
                (part_off >> PAGE_SHIFT) as usize,
                pages,
                bindings::dax_access_mode_DAX_ACCESS,
                &mut kaddr,
                core::ptr::null_mut(),
            );
            bindings::dax_read_unlock(id);
            r
        };
        if got < pages || kaddr.is_null() {
            pr_err!("DAX device maps {} of {} pages contiguously\n", got, pages);
            return None; // `d` drops the device reference
        }
        d.kaddr = kaddr.cast();
        d.len = bytes;
        Some(d)
    }

    pub(crate) fn raw(&self) -> *mut bindings::dax_device {
        self.dev
    }

    /// Offset to add to a filesystem byte address for iomap's `addr`.
    pub(crate) fn part_off(&self) -> u64 {
        self.part_off
    }

    fn check(&self, off: u64, len: usize) -> Result {
        match off.checked_add(len as u64) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(EIO),
        }
    }

    /// Copies `buf.len()` bytes at device offset `off` into `buf`.
    pub(crate) fn read(&self, off: u64, buf: &mut [u8]) -> Result {
        self.check(off, buf.len())?;
        // SAFETY: the range is inside the mapping (checked); `buf` is ours.
        unsafe {
            let id = bindings::dax_read_lock();
            bindings::rdaxfs_pmem_copy_from(
                buf.as_mut_ptr().cast(),
                self.kaddr.add(off as usize).cast(),
                buf.len(),
            );
            bindings::dax_read_unlock(id);
        }
        Ok(())
    }

    /// Writes `buf` at device offset `off` with cache-bypassing stores.
    /// Durable once [`DaxDev::fence`] returns.
    pub(crate) fn write(&self, off: u64, buf: &[u8]) -> Result {
        self.check(off, buf.len())?;
        if trace::on() {
            trace::store(off, buf, false);
        }
        // SAFETY: the range is inside the mapping (checked); callers hold the
        // lock that owns these metadata bytes.
        unsafe {
            let id = bindings::dax_read_lock();
            bindings::rdaxfs_pmem_copy_to(
                self.kaddr.add(off as usize).cast(),
                buf.as_ptr().cast(),
                buf.len(),
            );
            bindings::dax_read_unlock(id);
        }
        Ok(())
    }

    /// Orders all earlier pmem writes before any later one (and makes them
    /// durable on platforms with ADR).
    pub(crate) fn fence(&self) {
        if trace::on() && !trace::fence() {
            return; // TEST ONLY: `bug_drop_commit_fence` dropped this one
        }
        // SAFETY: a store fence has no preconditions.
        unsafe { bindings::rdaxfs_pmem_fence() };
    }

    /// Zeroes `count` 4 KiB blocks from block `block` through the DAX
    /// device (which also clears poison), durably.
    pub(crate) fn zero_blocks(&self, block: u64, count: u64) -> Result {
        self.check(block << PAGE_SHIFT, (count << PAGE_SHIFT) as usize)?;
        if trace::on() {
            trace::zero(block << PAGE_SHIFT, count << PAGE_SHIFT);
        }
        let first = (self.part_off >> PAGE_SHIFT) + block;
        for pg in first..first + count {
            // SAFETY: the page is inside the device (checked above);
            // dax_zero_page_range zeroes one page per call in 6.12.
            let r = unsafe {
                let id = bindings::dax_read_lock();
                let r = bindings::dax_zero_page_range(self.dev, pg as usize, 1);
                bindings::dax_read_unlock(id);
                r
            };
            kernel::error::to_result(r)?;
        }
        self.fence();
        Ok(())
    }
}

impl DaxDev {
    /// TEST ONLY: while the store trace is on, records the current bytes of
    /// `[off, off + len)` (file data DAX has just copied there) as a data
    /// store, so that crash states carry file contents.
    pub(crate) fn trace_data(&self, off: u64, len: usize) -> Result {
        if !trace::on() {
            return Ok(());
        }
        let mut buf = KVec::from_elem(0u8, len, GFP_KERNEL)?;
        self.read(off, &mut buf)?;
        trace::store(off, &buf, true);
        Ok(())
    }
}

/// TEST ONLY: the pmem store trace read by the crash-state explorer
/// (rust/helpers.c has the buffer and the debugfs files
/// /sys/kernel/debug/rdaxfs/trace and trace_ctl). Every DaxDev store,
/// zeroing and fence is recorded while it is on; off, the cost is one load
/// and a predictable branch.
pub(crate) mod trace {
    use super::bindings;

    /// Whether the trace is on.
    #[inline(always)]
    pub(crate) fn on() -> bool {
        // SAFETY: a plain bool the C side flips with WRITE_ONCE; a racy read
        // only decides whether one store is recorded.
        unsafe { core::ptr::read_volatile(&raw const bindings::rdaxfs_trace_enabled) }
    }

    /// Records a store of `buf` at device offset `off` (`data`: file data).
    pub(crate) fn store(off: u64, buf: &[u8], data: bool) {
        for (i, c) in buf.chunks(1 << 20).enumerate() {
            let at = off + ((i as u64) << 20);
            // SAFETY: `c` is valid for `c.len()` bytes; the C side copies it.
            unsafe { bindings::rdaxfs_trace_store(at, c.as_ptr().cast(), c.len() as u32, data) };
        }
    }

    /// Records that `[off, off + len)` was zeroed.
    pub(crate) fn zero(off: u64, len: u64) {
        // SAFETY: records two numbers.
        unsafe { bindings::rdaxfs_trace_zero(off, len) };
    }

    /// Records a fence; `false` if the test-only switch drops this fence.
    pub(crate) fn fence() -> bool {
        // SAFETY: records a fence under the trace lock.
        unsafe { bindings::rdaxfs_trace_fence() }
    }
}

impl Drop for DaxDev {
    fn drop(&mut self) {
        // SAFETY: drops the reference `fs_dax_get_by_bdev` took.
        unsafe { bindings::fs_put_dax(self.dev, core::ptr::null_mut()) };
    }
}

use kernel::ffi;
