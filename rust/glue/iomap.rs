//! The iomap callbacks through which DAX reads, writes and faults ask the
//! filesystem where file bytes live.

use super::bindings;
use super::dax::DaxDev;
use super::fs::FileSystem;
use super::inode::{Inode, InodeSharedGuard};
use core::marker::PhantomData;
use kernel::error::{from_result, to_result};
use kernel::ffi;
use kernel::prelude::*;

/// The mapping an iomap begin callback fills in.
pub(crate) struct Iomap<'a, T: FileSystem> {
    raw: &'a mut bindings::iomap,
    /// A DAX access (IOMAP_DAX): addresses include the partition offset.
    /// Reports (FIEMAP, SEEK_DATA) get filesystem addresses.
    dax: bool,
    _p: PhantomData<T>,
}

impl<T: FileSystem> Iomap<'_, T> {
    /// `[offset, offset + length)` of the file is at device byte `addr`
    /// (a filesystem address; for DAX accesses the partition offset is
    /// added here, as ext4 adds `s_dax_part_off` only under IOMAP_DAX).
    pub(crate) fn set_mapped(&mut self, dax: &DaxDev, offset: u64, length: u64, addr: u64) {
        self.raw.type_ = bindings::IOMAP_MAPPED as u16;
        self.raw.offset = offset as i64;
        self.raw.length = length;
        self.raw.addr = if self.dax {
            addr + dax.part_off()
        } else {
            addr
        };
        self.raw.dax_dev = dax.raw();
    }

    /// `[offset, offset + length)` of the file is a hole (reads as zeros).
    pub(crate) fn set_hole(&mut self, dax: &DaxDev, offset: u64, length: u64) {
        self.raw.type_ = bindings::IOMAP_HOLE as u16;
        self.raw.offset = offset as i64;
        self.raw.length = length;
        self.raw.addr = bindings::IOMAP_NULL_ADDR;
        self.raw.dax_dev = dax.raw();
    }

    /// The extent was allocated by this call (already zeroed): DAX drops
    /// zero-page mappings of the range that earlier read faults installed.
    pub(crate) fn set_new(&mut self) {
        self.raw.flags |= bindings::IOMAP_F_NEW as u16;
    }

    /// Metadata must be flushed for O_DSYNC / MAP_SYNC.
    pub(crate) fn set_dirty(&mut self) {
        self.raw.flags |= bindings::IOMAP_F_DIRTY as u16;
    }
}

pub(crate) struct IomapOps<T>(PhantomData<T>);

impl<T: FileSystem> IomapOps<T> {
    pub(crate) const OPS: bindings::iomap_ops = bindings::iomap_ops {
        iomap_begin: Some(iomap_begin::<T>),
        iomap_end: None,
        #[cfg(rdaxfs_k73)]
        iomap_next: None,
    };
}

/// # Safety
/// Called by iomap with a live inode of type `T` (with the locks its caller
/// documents: i_rwsem for read/write, the invalidate lock for faults) and a
/// zeroed `iomap` to fill in.
unsafe extern "C" fn iomap_begin<T: FileSystem>(
    inode: *mut bindings::inode,
    pos: bindings::loff_t,
    length: bindings::loff_t,
    flags: ffi::c_uint,
    iomap: *mut bindings::iomap,
    _srcmap: *mut bindings::iomap,
) -> ffi::c_int {
    from_result(|| {
        // SAFETY: per this function's contract.
        let (inode, raw) = unsafe { (Inode::<T>::from_raw(inode), &mut *iomap) };
        let mut map = Iomap {
            raw,
            dax: flags & bindings::IOMAP_DAX != 0,
            _p: PhantomData,
        };
        T::iomap_begin(inode, pos, length, flags, &mut map)?;
        Ok(0)
    })
}

/// `lseek(SEEK_DATA)` (`data`) or `lseek(SEEK_HOLE)` from `offset` of a
/// regular file, through the filesystem's read mapping (IOMAP_REPORT):
/// the new position, or `ENXIO` at or past EOF (and for SEEK_DATA when
/// only holes follow). i_rwsem is held shared (`_locked` proves it), so
/// the size and the extent map do not change under the walk.
pub(crate) fn seek_data_hole<T: FileSystem>(
    inode: &Inode<T>,
    _locked: &InodeSharedGuard<'_, T>,
    offset: i64,
    data: bool,
) -> Result<i64> {
    let ops = &IomapOps::<T>::OPS;
    // SAFETY: a live regular-file inode of type `T`; i_rwsem held, as the
    // iomap seek helpers expect of their callers (ext4, xfs).
    let r = unsafe {
        if data {
            bindings::iomap_seek_data(inode.raw(), offset, ops)
        } else {
            bindings::iomap_seek_hole(inode.raw(), offset, ops)
        }
    };
    if r < 0 {
        Err(Error::from_errno(r as i32))
    } else {
        Ok(r)
    }
}

/// The FS_IOC_FIEMAP request a `fiemap` inode operation is handed.
pub(crate) struct Fiemap(*mut bindings::fiemap_extent_info);

impl Fiemap {
    /// Reports the extents of `[start, start + len)` of `inode` through
    /// the filesystem's read mapping (`iomap_fiemap`: holes skipped, the
    /// last extent flagged FIEMAP_EXTENT_LAST, flags and range checked by
    /// `fiemap_prep`). i_rwsem held shared (`_locked`).
    pub(crate) fn fill<T: FileSystem>(
        &mut self,
        inode: &Inode<T>,
        _locked: &InodeSharedGuard<'_, T>,
        start: u64,
        len: u64,
    ) -> Result {
        // SAFETY: `self.0` is the live request of the current fiemap call
        // on `inode` (see the trampoline); i_rwsem is held.
        to_result(unsafe {
            bindings::iomap_fiemap(inode.raw(), self.0, start, len, &IomapOps::<T>::OPS)
        })
    }
}

/// # Safety
/// VFS `fiemap` contract: a live inode of type `T` and the request of the
/// current FS_IOC_FIEMAP call.
pub(crate) unsafe extern "C" fn fiemap<T: FileSystem>(
    inode: *mut bindings::inode,
    fi: *mut bindings::fiemap_extent_info,
    start: u64,
    len: u64,
) -> ffi::c_int {
    // SAFETY: per this function's contract.
    let inode = unsafe { Inode::<T>::from_raw(inode) };
    let mut f = Fiemap(fi);
    from_result(|| T::fiemap(inode, &mut f, start, len).map(|()| 0))
}
