//! The DAX device under a mounted filesystem: byte access to metadata on
//! pmem, durable zeroing of data blocks, and busy-page lookups.

use super::bindings;
use kernel::prelude::*;

const PAGE_SHIFT: u32 = 12;

/// The fsdax device of a mount. Nothing is mapped for good: every access
/// asks the driver for the pages it touches (`dax_direct_access` per range),
/// so a bad block elsewhere on the device (the driver refuses any range that
/// holds one) only fails the accesses that cover it.
pub(crate) struct DaxDev {
    dev: *mut bindings::dax_device,
    /// Byte offset of the block device (partition) within the DAX device.
    part_off: u64,
    /// Bytes of the block device.
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

/// `dax_direct_access` result for a range holding a known bad block.
const HWPOISON: isize = -(kernel::bindings::EHWPOISON as isize);

const PAGE: u64 = 1 << PAGE_SHIFT;

/// How a metadata access failed, for the kernel message.
#[derive(Clone, Copy)]
enum MediaFault {
    /// The driver lists a bad block in the range (badblocks).
    BadBlock,
    /// The copy took a machine check (poison not known to the driver yet).
    MachineCheck,
    /// The driver refused the range for another reason (errno).
    Driver(isize),
}

impl DaxDev {
    /// Looks up the DAX device of `bdev`; `None` if the device cannot do
    /// DAX at all. Bad blocks do not make this fail: they fail only the
    /// accesses that cover them.
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
        let d = Self {
            dev,
            part_off,
            len: bytes,
        };
        // Probe the last page: a device the driver cannot map (other than
        // for a bad block there) cannot be used.
        if bytes >= PAGE {
            let last = (bytes >> PAGE_SHIFT) - 1;
            let r = d.map_pages(last, 1, |_, _| Ok(()));
            if let Err(MediaFault::Driver(e)) = r {
                pr_err!(
                    "DAX device does not map page {} of {} (error {}); cannot mount\n",
                    last,
                    bytes >> PAGE_SHIFT,
                    e
                );
                return None; // `d` drops the device reference
            }
        }
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

    /// Runs `f(kaddr, pages)` over the kernel mappings of device pages
    /// `first .. first + count` (block-device page numbers), in as few
    /// pieces as the driver hands out, under the DAX read lock. A range
    /// holding a bad block fails with [`MediaFault::BadBlock`].
    fn map_pages(
        &self,
        first: u64,
        count: u64,
        mut f: impl FnMut(*mut u8, u64) -> core::result::Result<(), MediaFault>,
    ) -> core::result::Result<(), MediaFault> {
        let (mut pg, end) = (first, first + count);
        while pg < end {
            let mut kaddr: *mut ffi::c_void = core::ptr::null_mut();
            // SAFETY: `dev` is live while `self` is; the read lock keeps the
            // device from going away while `kaddr` is used by `f`.
            let id = unsafe { bindings::dax_read_lock() };
            // SAFETY: as above; the page range is inside the device
            // (callers check it against `len`).
            let got = unsafe {
                bindings::dax_direct_access(
                    self.dev,
                    ((self.part_off >> PAGE_SHIFT) + pg) as usize,
                    (end - pg) as isize,
                    bindings::dax_access_mode_DAX_ACCESS,
                    &mut kaddr,
                    core::ptr::null_mut(),
                )
            };
            let r = if got == HWPOISON {
                Err(MediaFault::BadBlock)
            } else if got <= 0 || kaddr.is_null() {
                Err(MediaFault::Driver(got.min(0)))
            } else {
                let n = (got as u64).min(end - pg);
                let r = f(kaddr.cast(), n);
                pg += n;
                r
            };
            // SAFETY: pairs with the lock above.
            unsafe { bindings::dax_read_unlock(id) };
            r?;
        }
        Ok(())
    }

    /// Logs a media error on metadata at bytes `off .. off + len`.
    fn report(&self, what: &str, off: u64, len: usize, fault: MediaFault) {
        let block = off >> PAGE_SHIFT;
        match fault {
            MediaFault::BadBlock => pr_err!(
                "media error: bad block {} (bytes {}..{}) while {} metadata; returning EIO, run fsck.rdaxfs\n",
                block,
                off,
                off + len as u64,
                what
            ),
            MediaFault::MachineCheck => pr_err!(
                "media error: machine check at block {} (bytes {}..{}) while {} metadata; returning EIO, run fsck.rdaxfs\n",
                block,
                off,
                off + len as u64,
                what
            ),
            MediaFault::Driver(e) => pr_err!(
                "DAX device refused block {} (error {}) while {} metadata; returning EIO\n",
                block,
                e,
                what
            ),
        }
    }

    /// Copies `buf.len()` bytes at device offset `off` into `buf`, with the
    /// machine-check-safe copy: poisoned or bad metadata gives EIO (and a
    /// kernel message naming the block), never a machine check.
    pub(crate) fn read(&self, off: u64, buf: &mut [u8]) -> Result {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
        unsafe { self.read_raw(off, buf.as_mut_ptr(), buf.len()) }
    }

    /// Appends the `len` bytes at `off` to `v` (not zeroed first: the copy
    /// fills them). `v` is unchanged if the read fails.
    pub(crate) fn read_append<A: kernel::alloc::Allocator>(
        &self,
        v: &mut kernel::alloc::Vec<u8, A>,
        off: u64,
        len: usize,
    ) -> Result {
        v.reserve(len, GFP_KERNEL)?;
        // SAFETY: the vector has room for `len` bytes after its end.
        unsafe { self.read_raw(off, v.as_mut_ptr().add(v.len()), len)? };
        // SAFETY: `read_raw` succeeded, so all `len` bytes after the end,
        // within the capacity reserved above, are written.
        unsafe { super::compat::vec_inc_len(v, len) };
        Ok(())
    }

    /// # Safety
    /// `dst` is valid for writes of `len` bytes.
    unsafe fn read_raw(&self, off: u64, dst: *mut u8, len: usize) -> Result {
        self.check(off, len)?;
        if len == 0 {
            return Ok(());
        }
        let first = off >> PAGE_SHIFT;
        let last = (off + len as u64 - 1) >> PAGE_SHIFT;
        let mut done = 0usize;
        let r = self.map_pages(first, last - first + 1, |kaddr, pages| {
            // Bytes of `dst` inside these pages.
            let skip = if done == 0 { off & (PAGE - 1) } else { 0 };
            let n = ((pages << PAGE_SHIFT) - skip).min((len - done) as u64) as usize;
            // SAFETY: `kaddr + skip .. + n` lies in the pages just mapped;
            // `dst[done..done + n]` is writable per the contract.
            let left = unsafe {
                bindings::rdaxfs_copy_mc(dst.add(done).cast(), kaddr.add(skip as usize).cast(), n)
            };
            if left != 0 {
                return Err(MediaFault::MachineCheck);
            }
            done += n;
            Ok(())
        });
        r.map_err(|fault| {
            self.report("reading", off, len, fault);
            EIO
        })
    }

    /// Writes `buf` at device offset `off` with cache-bypassing stores.
    /// Durable once [`DaxDev::fence`] returns. A write of whole pages over
    /// a bad block clears the poison first (as a DAX recovery write does);
    /// a partial write there fails with EIO, since the rest of the page
    /// cannot be read back.
    pub(crate) fn write(&self, off: u64, buf: &[u8]) -> Result {
        self.check(off, buf.len())?;
        if trace::on() {
            trace::store(off, buf, false);
        }
        if buf.is_empty() {
            return Ok(());
        }
        let first = off >> PAGE_SHIFT;
        let last = (off + buf.len() as u64 - 1) >> PAGE_SHIFT;
        let whole = off & (PAGE - 1) == 0 && buf.len() as u64 & (PAGE - 1) == 0;
        let copy = |done: &mut usize, kaddr: *mut u8, pages: u64| {
            let skip = if *done == 0 { off & (PAGE - 1) } else { 0 };
            let n = ((pages << PAGE_SHIFT) - skip).min((buf.len() - *done) as u64) as usize;
            // SAFETY: `kaddr + skip .. + n` lies in the pages just mapped;
            // callers hold the lock that owns these metadata bytes.
            unsafe {
                bindings::rdaxfs_pmem_copy_to(
                    kaddr.add(skip as usize).cast(),
                    buf.as_ptr().add(*done).cast(),
                    n,
                )
            };
            *done += n;
        };
        let mut done = 0usize;
        let mut r = self.map_pages(first, last - first + 1, |k, p| {
            copy(&mut done, k, p);
            Ok(())
        });
        if let (Err(MediaFault::BadBlock), true) = (r, whole) {
            // Clear the poison of the pages not yet written by zeroing them
            // through the driver, then write them.
            let from = first + (done as u64 >> PAGE_SHIFT);
            r = self.zero_pages(from, last + 1 - from).and_then(|()| {
                self.map_pages(from, last + 1 - from, |k, p| {
                    copy(&mut done, k, p);
                    Ok(())
                })
            });
            if r.is_ok() {
                pr_warn!(
                    "cleared media error in metadata blocks {}..={} by rewriting them\n",
                    from,
                    last
                );
            }
        }
        r.map_err(|fault| {
            self.report("writing", off, buf.len(), fault);
            EIO
        })
    }

    /// Zeroes pages `first .. first + count` through the driver, which
    /// clears known poison on them.
    fn zero_pages(&self, first: u64, count: u64) -> core::result::Result<(), MediaFault> {
        let base = self.part_off >> PAGE_SHIFT;
        for pg in base + first..base + first + count {
            // A multi-GiB allocation zeroes for a long time (with the
            // inode's allocation lock held, a sleeping mutex): let others
            // run every 2 MiB.
            if (pg - base - first) % 512 == 511 {
                super::cond_resched();
            }
            // SAFETY: the page is inside the device (callers check);
            // dax_zero_page_range zeroes one page per call in 6.12.
            let r = unsafe {
                let id = bindings::dax_read_lock();
                let r = bindings::dax_zero_page_range(self.dev, pg as usize, 1);
                bindings::dax_read_unlock(id);
                r
            };
            if r != 0 {
                return Err(MediaFault::Driver(r as isize));
            }
        }
        Ok(())
    }

    /// Orders all earlier pmem writes before any later one (and makes them
    /// durable on platforms with ADR).
    pub(crate) fn fence(&self) {
        if trace::on() {
            trace::fence();
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
        self.zero_mapped(block, count)
            .map_err(|fault| match fault {
                MediaFault::Driver(e) => Error::from_errno(e as i32),
                _ => EIO,
            })?;
        self.fence();
        Ok(())
    }

    /// Zeroes pages `first .. first + count` through their kernel mapping,
    /// up to 2 MiB per mapping call; a piece the driver refuses to map
    /// because it holds a bad block is zeroed through the driver instead
    /// ([`DaxDev::zero_pages`], which clears the poison).
    fn zero_mapped(&self, first: u64, count: u64) -> core::result::Result<(), MediaFault> {
        const PIECE: u64 = 512;
        let (mut pg, end) = (first, first + count);
        while pg < end {
            let n = PIECE.min(end - pg);
            let r = self.map_pages(pg, n, |kaddr, pages| {
                // SAFETY: `kaddr` maps `pages` whole pages of the device,
                // blocks the caller owns (just allocated, under its lock).
                unsafe { bindings::rdaxfs_pmem_zero(kaddr.cast(), (pages << PAGE_SHIFT) as usize) };
                Ok(())
            });
            match r {
                Ok(()) => {}
                Err(MediaFault::BadBlock) => self.zero_pages(pg, n)?,
                Err(e) => return Err(e),
            }
            pg += n;
            if pg < end {
                super::cond_resched();
            }
        }
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
    pub(crate) fn fence() {
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
