//! The iomap callbacks through which DAX reads, writes and faults ask the
//! filesystem where file bytes live.

use super::bindings;
use super::dax::DaxDev;
use super::fs::FileSystem;
use super::inode::Inode;
use core::marker::PhantomData;
use kernel::error::from_result;
use kernel::ffi;

/// The mapping an iomap begin callback fills in.
pub(crate) struct Iomap<'a, T: FileSystem> {
    raw: &'a mut bindings::iomap,
    _p: PhantomData<T>,
}

impl<T: FileSystem> Iomap<'_, T> {
    /// `[offset, offset + length)` of the file is at device byte `addr`
    /// (a filesystem address; the partition offset is added here).
    pub(crate) fn set_mapped(&mut self, dax: &DaxDev, offset: u64, length: u64, addr: u64) {
        self.raw.type_ = bindings::IOMAP_MAPPED as u16;
        self.raw.offset = offset as i64;
        self.raw.length = length;
        self.raw.addr = addr + dax.part_off();
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
            _p: PhantomData,
        };
        T::iomap_begin(inode, pos, length, flags, &mut map)?;
        Ok(0)
    })
}
