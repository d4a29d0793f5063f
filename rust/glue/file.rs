//! File, directory and mapping operations: the trampolines the VFS and mm
//! call, and the request wrappers (`Kiocb`, `VmFault`, `DirEmitter`) the
//! filesystem sees.

use super::bindings;
use super::fs::FileSystem;
use super::inode::{Inode, Iops};
use super::iomap::IomapOps;
use core::marker::PhantomData;
use kernel::error::{from_result, to_result};
use kernel::ffi;
use kernel::prelude::*;

/// A read or write request: the kiocb and the user buffer iterator.
pub(crate) struct Kiocb<'a, T: FileSystem> {
    iocb: *mut bindings::kiocb,
    iter: *mut bindings::iov_iter,
    _p: PhantomData<&'a T>,
}

impl<'a, T: FileSystem> Kiocb<'a, T> {
    /// The file's inode (live while the request is).
    pub(crate) fn inode(&self) -> &'a Inode<T> {
        // SAFETY: the kiocb's file is open, so its inode is live.
        unsafe { Inode::from_raw(bindings::rdaxfs_file_inode((*self.iocb).ki_filp)) }
    }

    /// The file position of the request.
    pub(crate) fn pos(&self) -> u64 {
        // SAFETY: a live kiocb.
        unsafe { (*self.iocb).ki_pos as u64 }
    }

    /// Bytes left in the user buffer.
    pub(crate) fn count(&self) -> usize {
        // SAFETY: a live iterator.
        unsafe { bindings::rdaxfs_iov_iter_count(self.iter) }
    }

    /// Applies O_APPEND, rlimits and s_maxbytes (i_rwsem held); returns the
    /// number of bytes to write (0: nothing to do).
    pub(crate) fn write_checks(&mut self) -> Result<usize> {
        // SAFETY: a live kiocb and iterator; i_rwsem held by the caller.
        let r = unsafe { bindings::generic_write_checks(self.iocb, self.iter) };
        if r < 0 {
            Err(Error::from_errno(r as i32))
        } else {
            Ok(r as usize)
        }
    }

    /// Drops suid/sgid and updates mtime/ctime before a write.
    pub(crate) fn file_modified(&self) -> Result {
        // SAFETY: a live file.
        to_result(unsafe { bindings::file_modified((*self.iocb).ki_filp) })
    }

    /// Marks the file accessed (atime) after a read.
    pub(crate) fn accessed(&self) {
        // SAFETY: a live file.
        unsafe { bindings::rdaxfs_file_accessed((*self.iocb).ki_filp) };
    }

    /// Copies between the user buffer and pmem through iomap (advances the
    /// position). Returns the bytes done; a short count is not an error.
    pub(crate) fn dax_rw(&mut self) -> Result<usize> {
        // SAFETY: a live kiocb and iterator; the caller holds i_rwsem as
        // dax_iomap_rw requires.
        let r = unsafe { bindings::dax_iomap_rw(self.iocb, self.iter, &IomapOps::<T>::OPS) };
        if r < 0 {
            Err(Error::from_errno(r as i32))
        } else {
            Ok(r as usize)
        }
    }

    /// O_SYNC / O_DSYNC handling after a write of `n` bytes.
    pub(crate) fn write_sync(&self, n: usize) -> Result<usize> {
        // SAFETY: a live kiocb.
        let r = unsafe { bindings::rdaxfs_generic_write_sync(self.iocb, n as isize) };
        if r < 0 {
            Err(Error::from_errno(r as i32))
        } else {
            Ok(r as usize)
        }
    }
}

/// A page fault on a mapping of a file of type `T`.
pub(crate) struct VmFault<'a, T: FileSystem> {
    vmf: *mut bindings::vm_fault,
    _p: PhantomData<&'a T>,
}

/// A DAX fault's result and, for `VM_FAULT_NEEDDSYNC`, the pfn to finish.
pub(crate) struct FaultResult {
    /// The `vm_fault_t` bits.
    pub(crate) ret: u32,
    pfn: super::compat::Pfn,
}

impl<'a, T: FileSystem> VmFault<'a, T> {
    /// The faulting file's inode (live while the fault is).
    pub(crate) fn inode(&self) -> &'a Inode<T> {
        // SAFETY: the vma holds a reference to its open file.
        unsafe {
            Inode::from_raw(bindings::rdaxfs_file_inode(bindings::rdaxfs_vmf_file(
                self.vmf,
            )))
        }
    }

    /// A write fault on a shared mapping.
    pub(crate) fn is_write(&self) -> bool {
        // SAFETY: a live vm_fault.
        unsafe { bindings::rdaxfs_vmf_write(self.vmf) }
    }

    /// Freeze protection for the duration of a write fault.
    pub(crate) fn start_pagefault(&self) -> PagefaultGuard<'_, T> {
        let sb = self.inode().sb().raw();
        // SAFETY: a live superblock; paired with sb_end_pagefault in drop.
        unsafe { bindings::rdaxfs_sb_start_pagefault(sb) };
        // SAFETY: the fault's file is live.
        unsafe { bindings::file_update_time(bindings::rdaxfs_vmf_file(self.vmf)) };
        PagefaultGuard(self.inode())
    }

    /// Maps the faulting page (order 0) or PMD (order 9) through iomap.
    /// The caller holds the invalidate lock shared.
    pub(crate) fn dax_fault(&self, order: u32) -> FaultResult {
        let mut pfn = super::compat::Pfn::default();
        // SAFETY: a live vm_fault on a DAX file, invalidate lock held.
        let ret = unsafe {
            bindings::dax_iomap_fault(
                self.vmf,
                order,
                &mut pfn,
                core::ptr::null_mut(),
                &IomapOps::<T>::OPS,
            )
        };
        FaultResult { ret, pfn }
    }

    /// For MAP_SYNC: makes the metadata durable, then maps the pfn.
    pub(crate) fn finish_sync(&self, order: u32, r: &FaultResult) -> u32 {
        // SAFETY: `r` is the NEEDDSYNC result of `dax_fault` on this fault.
        unsafe { bindings::dax_finish_sync_fault(self.vmf, order, r.pfn) }
    }
}

/// Freeze protection of a write fault.
pub(crate) struct PagefaultGuard<'a, T: FileSystem>(&'a Inode<T>);
impl<T: FileSystem> Drop for PagefaultGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: paired with `start_pagefault`.
        unsafe { bindings::rdaxfs_sb_end_pagefault(self.0.sb().raw()) };
    }
}

/// readdir output: emits entries into the caller's `dir_context`.
pub(crate) struct DirEmitter {
    file: *mut bindings::file,
    ctx: *mut bindings::dir_context,
}

impl DirEmitter {
    /// The position to continue from (0 and 1 are `.` and `..`).
    pub(crate) fn pos(&self) -> u64 {
        // SAFETY: a live dir_context.
        unsafe { (*self.ctx).pos as u64 }
    }

    /// Sets the position the next call continues from.
    pub(crate) fn set_pos(&mut self, pos: u64) {
        // SAFETY: a live dir_context.
        unsafe { (*self.ctx).pos = pos as i64 };
    }

    /// Emits `.` and `..` if the position is before them; false if the
    /// caller's buffer is full.
    pub(crate) fn emit_dots(&mut self) -> bool {
        // SAFETY: a live file and dir_context.
        unsafe { bindings::rdaxfs_dir_emit_dots(self.file, self.ctx) }
    }

    /// Emits one entry at the current position; false if the buffer is full.
    pub(crate) fn emit(&mut self, name: &[u8], ino: u64, dtype: u8) -> bool {
        // SAFETY: `name` is valid for its length for the call.
        unsafe {
            bindings::rdaxfs_dir_emit(
                self.ctx,
                name.as_ptr().cast(),
                name.len() as i32,
                ino,
                dtype.into(),
            )
        }
    }
}

struct Fops<T>(PhantomData<T>);

impl<T: FileSystem> Fops<T> {
    const FILE: bindings::file_operations = bindings::file_operations {
        llseek: Some(llseek::<T>),
        read_iter: Some(read_iter::<T>),
        write_iter: Some(write_iter::<T>),
        mmap: Some(mmap::<T>),
        open: Some(bindings::generic_file_open),
        fsync: Some(fsync::<T>),
        fallocate: Some(fallocate::<T>),
        get_unmapped_area: Some(bindings::thp_get_unmapped_area),
        // splice(2), sendfile(2) and copy_file_range(2) (whose same-sb
        // fallback is a splice). For a DAX file the VFS reads through
        // `copy_splice_read` (a bounce buffer filled by `read_iter`) whatever
        // is set here, but needs a non-null `splice_read`; writes go
        // through `write_iter` with a bvec iterator, as ext4 and xfs do.
        splice_read: Some(bindings::copy_splice_read),
        splice_write: Some(bindings::iter_file_splice_write),
        fop_flags: bindings::FOP_MMAP_SYNC,
        // SAFETY: an all-zero `file_operations` is valid (no callbacks).
        ..unsafe { core::mem::zeroed() }
    };
    const DIR: bindings::file_operations = bindings::file_operations {
        llseek: Some(bindings::generic_file_llseek),
        read: Some(bindings::generic_read_dir),
        iterate_shared: Some(readdir::<T>),
        fsync: Some(fsync::<T>),
        // SAFETY: as above.
        ..unsafe { core::mem::zeroed() }
    };
    const VM: bindings::vm_operations_struct = bindings::vm_operations_struct {
        fault: Some(fault::<T>),
        huge_fault: Some(huge_fault::<T>),
        page_mkwrite: Some(fault::<T>),
        pfn_mkwrite: Some(fault::<T>),
        // SAFETY: an all-zero `vm_operations_struct` is valid.
        ..unsafe { core::mem::zeroed() }
    };
    const AOPS: bindings::address_space_operations = bindings::address_space_operations {
        writepages: Some(writepages::<T>),
        dirty_folio: Some(bindings::noop_dirty_folio),
        direct_IO: Some(bindings::noop_direct_IO),
        // SAFETY: an all-zero `address_space_operations` is valid.
        ..unsafe { core::mem::zeroed() }
    };
}

/// Sets the operation tables of a new inode by file type.
///
/// # Safety
/// `inode` is an I_NEW inode of type `T`, exclusively owned by the caller.
pub(crate) unsafe fn set_ops<T: FileSystem>(inode: *mut bindings::inode, mode: u32, rdev: u32) {
    // SAFETY: per this function's contract.
    unsafe {
        match mode & bindings::S_IFMT {
            bindings::S_IFREG => {
                (*inode).i_op = &Iops::<T>::FILE;
                (*inode).__bindgen_anon_3.i_fop = &Fops::<T>::FILE;
                (*(*inode).i_mapping).a_ops = &Fops::<T>::AOPS;
                bindings::rdaxfs_set_dax_inode(inode);
            }
            bindings::S_IFDIR => {
                (*inode).i_op = &Iops::<T>::DIR;
                (*inode).__bindgen_anon_3.i_fop = &Fops::<T>::DIR;
            }
            bindings::S_IFLNK => {
                (*inode).i_op = &Iops::<T>::SYMLINK;
            }
            _ => {
                (*inode).i_op = &Iops::<T>::FILE;
                bindings::init_special_inode(inode, mode as u16, rdev);
            }
        }
    }
}

/// # Safety
/// VFS llseek contract: an open regular file of type `T`.
unsafe extern "C" fn llseek<T: FileSystem>(
    file: *mut bindings::file,
    offset: bindings::loff_t,
    whence: ffi::c_int,
) -> bindings::loff_t {
    let data = match whence as u32 {
        bindings::SEEK_DATA => true,
        bindings::SEEK_HOLE => false,
        // SAFETY: forwarded contract; SEEK_SET/CUR/END need nothing of us.
        _ => return unsafe { bindings::generic_file_llseek(file, offset, whence) },
    };
    // SAFETY: an open file has a live inode.
    let inode = unsafe { Inode::<T>::from_raw(bindings::rdaxfs_file_inode(file)) };
    match T::seek_data_hole(inode, offset, data) {
        // SAFETY: an open file; its superblock is live. vfs_setpos
        // checks the position against s_maxbytes and sets f_pos.
        Ok(pos) => unsafe { bindings::vfs_setpos(file, pos, (*(*inode.raw()).i_sb).s_maxbytes) },
        Err(e) => e.to_errno().into(),
    }
}

/// # Safety
/// VFS read_iter contract: live kiocb on an open regular file of type `T`.
unsafe extern "C" fn read_iter<T: FileSystem>(
    iocb: *mut bindings::kiocb,
    to: *mut bindings::iov_iter,
) -> isize {
    let mut k = Kiocb::<T> {
        iocb,
        iter: to,
        _p: PhantomData,
    };
    match T::read_iter(&mut k) {
        Ok(n) => n as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// # Safety
/// VFS write_iter contract: live kiocb on an open regular file of type `T`.
unsafe extern "C" fn write_iter<T: FileSystem>(
    iocb: *mut bindings::kiocb,
    from: *mut bindings::iov_iter,
) -> isize {
    let mut k = Kiocb::<T> {
        iocb,
        iter: from,
        _p: PhantomData,
    };
    match T::write_iter(&mut k) {
        Ok(n) => n as isize,
        Err(e) => e.to_errno() as isize,
    }
}

const EOPNOTSUPP_ERRNO: ffi::c_int = -(kernel::bindings::EOPNOTSUPP as ffi::c_int);

/// # Safety
/// VFS mmap contract: an open regular DAX file of type `T` and its new vma.
unsafe extern "C" fn mmap<T: FileSystem>(
    file: *mut bindings::file,
    vma: *mut bindings::vm_area_struct,
) -> ffi::c_int {
    // SAFETY: an open file has a live inode.
    let inode = unsafe { Inode::<T>::from_raw(bindings::rdaxfs_file_inode(file)) };
    // SAFETY: a live vma; MAP_SYNC needs a device whose writes are durable
    // once flushed from the CPU caches (the check fs/ext4 does).
    if !unsafe { bindings::rdaxfs_mmap_supported(vma, T::dax_dev(inode.sb()).raw()) } {
        return EOPNOTSUPP_ERRNO;
    }
    // SAFETY: per this function's contract.
    unsafe {
        bindings::rdaxfs_file_accessed(file);
        (*vma).vm_ops = &Fops::<T>::VM;
        bindings::rdaxfs_vma_set_dax(vma);
    }
    0
}

/// # Safety
/// VFS fsync contract: an open file of type `T`.
unsafe extern "C" fn fsync<T: FileSystem>(
    file: *mut bindings::file,
    start: bindings::loff_t,
    end: bindings::loff_t,
    datasync: ffi::c_int,
) -> ffi::c_int {
    // SAFETY: an open file has a live inode.
    let inode = unsafe { Inode::<T>::from_raw(bindings::rdaxfs_file_inode(file)) };
    from_result(|| T::fsync(inode, start, end, datasync != 0).map(|()| 0))
}

/// An open regular file, as fallocate sees it.
pub(crate) struct OpenFile<'a, T: FileSystem> {
    file: *mut bindings::file,
    inode: &'a Inode<T>,
}

impl<'a, T: FileSystem> OpenFile<'a, T> {
    /// The file's inode.
    pub(crate) fn inode(&self) -> &'a Inode<T> {
        self.inode
    }

    /// Drops suid/sgid and updates mtime/ctime before the file changes,
    /// as a write does; i_rwsem held (the guard proves it).
    pub(crate) fn modified(&self, _locked: &super::inode::InodeGuard<'_, T>) -> Result {
        // SAFETY: a live file; its inode's i_rwsem is held, as
        // file_remove_privs (notify_change) requires.
        to_result(unsafe { bindings::file_modified(self.file) })
    }
}

/// # Safety
/// VFS fallocate contract: an open regular file of type `T`.
unsafe extern "C" fn fallocate<T: FileSystem>(
    file: *mut bindings::file,
    mode: ffi::c_int,
    offset: bindings::loff_t,
    len: bindings::loff_t,
) -> ffi::c_long {
    // SAFETY: an open file has a live inode.
    let inode = unsafe { Inode::<T>::from_raw(bindings::rdaxfs_file_inode(file)) };
    let f = OpenFile { file, inode };
    from_result(|| T::fallocate(&f, mode, offset, len).map(|()| 0i32)) as ffi::c_long
}

/// # Safety
/// VFS iterate_shared contract: an open directory of type `T`, i_rwsem
/// held shared.
unsafe extern "C" fn readdir<T: FileSystem>(
    file: *mut bindings::file,
    ctx: *mut bindings::dir_context,
) -> ffi::c_int {
    // SAFETY: an open file has a live inode.
    let dir = unsafe { Inode::<T>::from_raw(bindings::rdaxfs_file_inode(file)) };
    let mut out = DirEmitter { file, ctx };
    from_result(|| T::readdir(dir, &mut out).map(|()| 0))
}

/// # Safety
/// mm fault contract: a live vm_fault on a mapping with our vm_ops.
unsafe extern "C" fn fault<T: FileSystem>(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
    T::fault(
        &VmFault {
            vmf,
            _p: PhantomData,
        },
        0,
    )
}

/// # Safety
/// mm huge_fault contract, as `fault`.
unsafe extern "C" fn huge_fault<T: FileSystem>(
    vmf: *mut bindings::vm_fault,
    order: ffi::c_uint,
) -> bindings::vm_fault_t {
    T::fault(
        &VmFault {
            vmf,
            _p: PhantomData,
        },
        order,
    )
}

/// # Safety
/// Writeback contract: a live mapping of a regular file of type `T`.
unsafe extern "C" fn writepages<T: FileSystem>(
    mapping: *mut bindings::address_space,
    wbc: *mut bindings::writeback_control,
) -> ffi::c_int {
    // SAFETY: a live mapping has a live host inode.
    let inode = unsafe { Inode::<T>::from_raw((*mapping).host) };
    let dax = T::dax_dev(inode.sb());
    // SAFETY: flushes CPU caches for dirty DAX entries of the mapping.
    unsafe { bindings::dax_writeback_mapping_range(mapping, dax.raw(), wbc) }
}

/// Flushes CPU caches over dirty DAX entries of `inode` (fsync/msync).
pub(crate) fn dax_writeback<T: FileSystem>(inode: &Inode<T>, start: i64, end: i64) -> Result {
    // SAFETY: a live inode's mapping; this calls back into `writepages`.
    to_result(unsafe { bindings::filemap_write_and_wait_range(inode.mapping(), start, end) })
}
