//! VFS inodes: allocation with the filesystem's per-inode state, lookup by
//! number, attribute access, and the inode-operation trampolines.

use super::bindings;
use super::compat::{ARef, AlwaysRefCounted};
use super::fs::{FileSystem, SuperBlock};
use super::{dentry_name, file};
use core::marker::PhantomData;
use core::ptr::NonNull;
use kernel::error::{from_err_ptr, from_result, to_result};
use kernel::ffi;
use kernel::prelude::*;
use kernel::types::Opaque;

/// An inode's times: access, modification, change (seconds, nanoseconds).
#[derive(Clone, Copy, Default)]
pub(crate) struct Times {
    /// Seconds since the epoch: atime, mtime, ctime.
    pub(crate) sec: [i64; 3],
    /// Nanoseconds: atime, mtime, ctime.
    pub(crate) nsec: [u32; 3],
}

/// The VFS inode and the filesystem's state for it, allocated together.
#[pin_data]
pub(crate) struct InodeBox<T: FileSystem> {
    #[pin]
    vfs: Opaque<bindings::inode>,
    #[pin]
    info: T::InodeInfo,
}

impl<T: FileSystem> InodeBox<T> {
    /// Allocates a new inode for `alloc_inode`; returns its VFS part.
    pub(crate) fn alloc() -> Result<*mut bindings::inode> {
        let b = KBox::pin_init(
            try_pin_init!(Self {
                // SAFETY: `inode_init_once` initialises a fresh inode, the
                // way a slab constructor would.
                vfs <- Opaque::ffi_init(|p| unsafe { bindings::inode_init_once(p) }),
                info <- T::inode_info(),
            }),
            GFP_KERNEL,
        )?;
        // SAFETY: the box is never moved out of: `free` rebuilds it in place.
        let raw = KBox::into_raw(unsafe { core::pin::Pin::into_inner_unchecked(b) });
        // SAFETY: `raw` is a valid, initialised `InodeBox`.
        Ok(unsafe { (*raw).vfs.get() })
    }

    /// # Safety
    /// `inode` came from [`InodeBox::alloc`] and the VFS is done with it.
    pub(crate) unsafe fn free(inode: *mut bindings::inode) {
        // SAFETY: per the contract `inode` is the `vfs` field of a boxed
        // `InodeBox<T>`, which `KBox::into_raw` leaked.
        unsafe { drop(KBox::from_raw(Self::container(inode))) };
    }

    fn container(inode: *mut bindings::inode) -> *mut Self {
        let off = core::mem::offset_of!(Self, vfs);
        inode.cast::<u8>().wrapping_sub(off).cast()
    }
}

/// A VFS inode of a filesystem of type `T`.
#[repr(transparent)]
pub(crate) struct Inode<T: FileSystem>(Opaque<bindings::inode>, PhantomData<T>);

// SAFETY: the VFS refcounts inodes with ihold/iput from any thread.
unsafe impl<T: FileSystem> AlwaysRefCounted for Inode<T> {
    fn inc_ref(&self) {
        // SAFETY: the existence of `&self` means the count is non-zero.
        unsafe { bindings::ihold(self.raw()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: per the trait contract the caller owns a reference.
        unsafe { bindings::iput(obj.as_ptr().cast()) };
    }
}

// SAFETY: inodes are shared between threads by the VFS; every mutation here
// goes through the C API or fields the documented locks protect.
unsafe impl<T: FileSystem> Send for Inode<T> {}
// SAFETY: as above.
unsafe impl<T: FileSystem> Sync for Inode<T> {}

impl<T: FileSystem> Inode<T> {
    /// # Safety
    /// `inode` is a live inode of a superblock of type `T`, allocated by
    /// [`InodeBox::alloc`], and stays live for `'a`.
    pub(crate) unsafe fn from_raw<'a>(inode: *mut bindings::inode) -> &'a Self {
        // SAFETY: `Self` is a transparent wrapper of `inode`.
        unsafe { &*inode.cast() }
    }

    pub(crate) fn raw(&self) -> *mut bindings::inode {
        self.0.get()
    }

    fn r(&self) -> &bindings::inode {
        // SAFETY: a live inode; fields read here are stable or read racily
        // by design in the VFS too (i_mode, i_ino, i_sb, i_nlink).
        unsafe { &*self.raw() }
    }

    /// The inode number.
    // `i_ino` is an unsigned long in 6.12, a u64 in 7.3.
    #[allow(clippy::unnecessary_cast)]
    pub(crate) fn ino(&self) -> u64 {
        self.r().i_ino as u64
    }

    /// The filesystem's state for this inode.
    pub(crate) fn info(&self) -> &T::InodeInfo {
        let c = InodeBox::<T>::container(self.raw());
        // SAFETY: every inode of a `T` superblock lives in an `InodeBox<T>`.
        unsafe { &(*c).info }
    }

    /// The superblock this inode belongs to.
    pub(crate) fn sb(&self) -> &SuperBlock<T> {
        // SAFETY: the superblock outlives its inodes.
        unsafe { SuperBlock::from_raw(self.r().i_sb) }
    }

    /// The file type and permission bits.
    pub(crate) fn mode(&self) -> u32 {
        self.r().i_mode.into()
    }

    /// The file size.
    pub(crate) fn size(&self) -> u64 {
        // SAFETY: i_size_read is safe against concurrent writers.
        unsafe { bindings::rdaxfs_i_size_read(self.raw()) as u64 }
    }

    /// Sets the file size; callers hold i_rwsem exclusive.
    pub(crate) fn set_size(&self, size: u64) {
        // SAFETY: per the documented locking.
        unsafe { bindings::rdaxfs_i_size_write(self.raw(), size as i64) };
    }

    /// The link count.
    pub(crate) fn nlink(&self) -> u32 {
        // SAFETY: `i_nlink` is the member of the union the VFS uses.
        unsafe { self.r().__bindgen_anon_1.i_nlink }
    }

    /// Sets the link count.
    pub(crate) fn set_nlink(&self, n: u32) {
        // SAFETY: callers hold the inode's or its directory's i_rwsem.
        unsafe { bindings::set_nlink(self.raw(), n) };
    }

    /// The owner.
    pub(crate) fn uid(&self) -> u32 {
        // SAFETY: reading a live inode's owner.
        unsafe { bindings::rdaxfs_i_uid_read(self.raw()) }
    }

    /// The group.
    pub(crate) fn gid(&self) -> u32 {
        // SAFETY: reading a live inode's group.
        unsafe { bindings::rdaxfs_i_gid_read(self.raw()) }
    }

    /// The device number of a special file.
    pub(crate) fn rdev(&self) -> u32 {
        self.r().i_rdev
    }

    /// The inode's times.
    pub(crate) fn times(&self) -> Times {
        let mut t = Times::default();
        // SAFETY: the helper reads three timespecs into the arrays.
        unsafe {
            bindings::rdaxfs_inode_get_times(self.raw(), t.sec.as_mut_ptr(), t.nsec.as_mut_ptr())
        };
        t
    }

    /// Sets ctime and mtime to now.
    pub(crate) fn touch_cmtime(&self) {
        // SAFETY: a live inode; callers hold i_rwsem.
        unsafe { bindings::rdaxfs_touch_cmtime(self.raw()) };
    }

    /// Sets ctime to now.
    pub(crate) fn touch_ctime(&self) {
        // SAFETY: a live inode; callers hold i_rwsem.
        unsafe { bindings::inode_set_ctime_current(self.raw()) };
    }

    /// Sets the number of 512-byte sectors reported by stat.
    pub(crate) fn set_blocks(&self, fs_blocks: u64) {
        // SAFETY: i_blocks is updated under the filesystem's own locks.
        unsafe { (*self.raw()).i_blocks = fs_blocks * 8 };
    }

    /// The address space (page-cache tree) of the inode; for DAX files it
    /// holds DAX entries.
    pub(crate) fn mapping(&self) -> *mut bindings::address_space {
        self.r().i_mapping
    }

    /// The first page index in `first..=last` that has a DAX entry in the
    /// mapping (a zero page a read fault installed over a hole, or the
    /// entry a fault in progress holds locked), or `last + 1`.
    pub(crate) fn first_dax_entry(&self, first: u64, last: u64) -> u64 {
        // SAFETY: a live inode's mapping; the xarray lookup takes the RCU
        // read lock itself and holds no reference after it returns.
        unsafe {
            bindings::rdaxfs_mapping_next_entry(
                self.mapping(),
                first as ffi::c_ulong,
                last as ffi::c_ulong,
            ) as u64
        }
    }

    /// Whether the file may grow to `size` bytes: RLIMIT_FSIZE (which
    /// also sends SIGXFSZ) and `s_maxbytes`; `EFBIG` if not.
    pub(crate) fn newsize_ok(&self, size: u64) -> Result {
        let size = i64::try_from(size).map_err(|_| EFBIG)?;
        // SAFETY: a live inode.
        to_result(unsafe { bindings::inode_newsize_ok(self.raw(), size) })
    }

    /// Takes i_rwsem exclusive.
    pub(crate) fn lock(&self) -> InodeGuard<'_, T> {
        // SAFETY: a live inode.
        unsafe { bindings::rdaxfs_inode_lock(self.raw()) };
        InodeGuard(self)
    }

    /// Takes the mapping's invalidate lock exclusive: no page fault can map
    /// a block of this file until it is dropped.
    pub(crate) fn invalidate_lock(&self) -> InvalidateGuard<'_, T> {
        // SAFETY: a live inode with a mapping.
        unsafe { bindings::rdaxfs_invalidate_lock(self.mapping()) };
        InvalidateGuard(self)
    }

    /// Takes the invalidate lock shared (page faults).
    pub(crate) fn invalidate_lock_shared(&self) -> InvalidateSharedGuard<'_, T> {
        // SAFETY: a live inode with a mapping.
        unsafe { bindings::rdaxfs_invalidate_lock_shared(self.mapping()) };
        InvalidateSharedGuard(self)
    }

    /// Removes every mapping of file bytes from `start` on from user page
    /// tables (truncate/punch), then drops DAX entries of the range.
    pub(crate) fn truncate_pagecache_range(&self, start: u64, end_inclusive: u64) {
        // SAFETY: a live inode; callers hold the invalidate lock.
        unsafe {
            bindings::truncate_pagecache_range(self.raw(), start as i64, end_inclusive as i64)
        };
    }

    /// Waits for direct I/O in flight on this inode (i_rwsem held).
    pub(crate) fn dio_wait(&self) {
        // SAFETY: a live inode.
        unsafe { bindings::inode_dio_wait(self.raw()) };
    }

    /// The inode generation.
    pub(crate) fn generation(&self) -> u32 {
        self.r().i_generation
    }

    /// Whether iget failed on this inode (it was never set up).
    pub(crate) fn is_bad(&self) -> bool {
        // SAFETY: a live inode.
        unsafe { bindings::is_bad_inode(self.raw()) }
    }

    /// Takes i_rwsem shared.
    pub(crate) fn lock_shared(&self) -> InodeSharedGuard<'_, T> {
        // SAFETY: a live inode.
        unsafe { bindings::rdaxfs_inode_lock_shared(self.raw()) };
        InodeSharedGuard(self)
    }

    /// Truncate: unmaps and drops DAX entries from `size` on.
    pub(crate) fn truncate_pagecache(&self, size: u64) {
        // SAFETY: a live inode; callers hold i_rwsem and the invalidate lock.
        unsafe { bindings::truncate_pagecache(self.raw(), size as i64) };
    }
}

/// i_rwsem held shared.
pub(crate) struct InodeSharedGuard<'a, T: FileSystem>(&'a Inode<T>);
impl<T: FileSystem> Drop for InodeSharedGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: taken in `Inode::lock_shared`.
        unsafe { bindings::rdaxfs_inode_unlock_shared(self.0.raw()) };
    }
}

/// i_rwsem held exclusive.
pub(crate) struct InodeGuard<'a, T: FileSystem>(&'a Inode<T>);
impl<T: FileSystem> Drop for InodeGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: taken in `Inode::lock`.
        unsafe { bindings::rdaxfs_inode_unlock(self.0.raw()) };
    }
}

/// invalidate_lock held exclusive.
pub(crate) struct InvalidateGuard<'a, T: FileSystem>(&'a Inode<T>);
impl<T: FileSystem> Drop for InvalidateGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: taken in `Inode::invalidate_lock`.
        unsafe { bindings::rdaxfs_invalidate_unlock(self.0.mapping()) };
    }
}

/// invalidate_lock held shared.
pub(crate) struct InvalidateSharedGuard<'a, T: FileSystem>(&'a Inode<T>);
impl<T: FileSystem> Drop for InvalidateSharedGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: taken in `Inode::invalidate_lock_shared`.
        unsafe { bindings::rdaxfs_invalidate_unlock_shared(self.0.mapping()) };
    }
}

impl<T: FileSystem> InvalidateGuard<'_, T> {
    /// Waits until `page` (found busy by `dax_layout_busy_page`) has no
    /// extra reference, dropping and retaking the invalidate lock around
    /// each sleep. A signal ends the wait with the helper's
    /// `ERESTARTSYS` (the syscall restarts or returns `EINTR`, as the
    /// signal's disposition says, like ext4's break-layouts).
    pub(crate) fn wait_page_idle(&self, page: super::dax::BusyPage) -> Result {
        // SAFETY: `page` is a DAX page of this mapping, kept alive by the
        // mapping entry; the lock is held, as the helper requires.
        let r = unsafe { bindings::rdaxfs_wait_dax_page_idle(page.0, self.0.mapping()) };
        to_result(r)
    }

    /// Unmaps bytes `[start, end]` from every process and drops the clean
    /// DAX entries there: the zero pages that read faults mapped over a
    /// hole that has just been given blocks. Left mapped, they would keep
    /// showing zeros after a write(2) stores data in the new blocks (DAX
    /// invalidates them itself only for blocks iomap reports as new).
    /// Dirty entries stay (their data is the file's); they are unmapped
    /// and fault back in.
    pub(crate) fn invalidate_range(&self, start: u64, end: u64) {
        if end < start {
            return;
        }
        // SAFETY: a live mapping; the invalidate lock is held exclusive, so
        // no fault maps the range again meanwhile. An -EBUSY return only
        // reports a dirty entry kept, which is what we want.
        unsafe {
            bindings::invalidate_inode_pages2_range(
                self.0.mapping(),
                (start >> bindings::PAGE_SHIFT) as usize,
                (end >> bindings::PAGE_SHIFT) as usize,
            )
        };
    }

    /// The first page of the mapping in `[start, end]` with an elevated
    /// refcount (pinned for DMA), after unmapping the range so that no new
    /// pin can be taken without faulting (and the fault waits for us).
    /// Finds pins taken through mappings that are gone too (munmap while
    /// the DMA is in flight), unlike 6.12's `dax_layout_busy_page_range`.
    pub(crate) fn busy_page(&self, start: u64, end: u64) -> Option<super::dax::BusyPage> {
        // SAFETY: the invalidate lock is held, as the helper requires.
        let p = unsafe {
            bindings::rdaxfs_dax_busy_page_range(self.0.mapping(), start as i64, end as i64)
        };
        (!p.is_null()).then_some(super::dax::BusyPage(p))
    }

    /// TEST ONLY (`bug_busy_scan_mapped_only`): 6.12's own scan, which
    /// returns nothing at once when no process maps the file.
    pub(crate) fn busy_page_mapped_only(
        &self,
        start: u64,
        end: u64,
    ) -> Option<super::dax::BusyPage> {
        // SAFETY: the invalidate lock is held, as the function requires.
        let p = unsafe {
            bindings::rdaxfs_dax_busy_page_range_mapped_only(
                self.0.mapping(),
                start as i64,
                end as i64,
            )
        };
        (!p.is_null()).then_some(super::dax::BusyPage(p))
    }
}

/// An inode the VFS is evicting: no file, mapping or dentry refers to it
/// any more, so nothing can map or pin a new page of it, and no lock is
/// needed to scan its DAX entries. Only the evict trampoline makes one.
pub(crate) struct Evicting<'a, T: FileSystem>(&'a Inode<T>);

impl<'a, T: FileSystem> Evicting<'a, T> {
    /// # Safety
    /// `inode` is being evicted (called from `evict_inode`, before its
    /// mapping is truncated).
    pub(crate) unsafe fn new(inode: &'a Inode<T>) -> Self {
        Self(inode)
    }

    /// The inode.
    pub(crate) fn inode(&self) -> &'a Inode<T> {
        self.0
    }

    /// A page of the file that is still pinned for DMA (the pin was taken
    /// through a mapping that is gone now), if any.
    pub(crate) fn busy_page(&self) -> Option<super::dax::BusyPage> {
        // SAFETY: no user is left (the contract of `new`), which stands in
        // for the invalidate lock the helper otherwise requires.
        let p = unsafe { bindings::rdaxfs_dax_busy_page_range(self.0.mapping(), 0, i64::MAX) };
        (!p.is_null()).then_some(super::dax::BusyPage(p))
    }

    /// Waits, uninterruptibly (eviction cannot fail), until `page` has no
    /// extra reference. The pin holder needs nothing of this inode to let
    /// go, so this ends when the DMA completes.
    pub(crate) fn wait_page_idle(&self, page: super::dax::BusyPage) {
        // SAFETY: `page` is a DAX page of this mapping, kept alive by its
        // mapping entry (the mapping is truncated only after us).
        unsafe { bindings::rdaxfs_wait_dax_page_idle_final(page.0) };
    }
}

/// What a new inode is initialised with.
pub(crate) struct InodeParams {
    /// File type and permissions.
    pub(crate) mode: u32,
    /// Size in bytes.
    pub(crate) size: u64,
    /// Link count.
    pub(crate) nlink: u32,
    /// Owner.
    pub(crate) uid: u32,
    /// Group.
    pub(crate) gid: u32,
    /// atime, mtime, ctime.
    pub(crate) times: Times,
    /// Allocated filesystem blocks.
    pub(crate) blocks: u64,
    /// Device number of a special file.
    pub(crate) rdev: u32,
    /// Inode generation.
    pub(crate) generation: u32,
}

/// An inode that `iget` found not in memory: locked (I_NEW), to be filled
/// in from disk with [`NewInode::init`] or dropped (which marks it failed).
pub(crate) struct NewInode<T: FileSystem>(Option<ARef<Inode<T>>>);

impl<T: FileSystem> NewInode<T> {
    /// The new inode's filesystem state, to fill in before `init`.
    pub(crate) fn info(&self) -> &T::InodeInfo {
        self.0
            .as_ref()
            .map(|i| i.info())
            .expect("NewInode holds an inode")
    }

    /// Owner, group and final mode of a new inode created in `dir` by the
    /// current task (setgid directories, umask already applied by the VFS).
    pub(crate) fn init_owner(&self, dir: &Inode<T>, mode: u32) -> (u32, u32, u32) {
        let i = self.0.as_ref().expect("NewInode holds an inode");
        // SAFETY: the inode is I_NEW and exclusively ours; `dir` is live;
        // `nop_mnt_idmap` is the kernel's identity mapping.
        unsafe {
            bindings::inode_init_owner(
                core::ptr::addr_of_mut!(bindings::nop_mnt_idmap),
                i.raw(),
                dir.raw(),
                mode as u16,
            );
        }
        (i.mode(), i.uid(), i.gid())
    }

    /// The current time, as the new inode's atime, mtime and ctime.
    pub(crate) fn now(&self) -> Times {
        let i = self.0.as_ref().expect("NewInode holds an inode");
        // SAFETY: the inode is I_NEW and exclusively ours.
        unsafe {
            let now = bindings::inode_set_ctime_current(i.raw());
            let t = Times {
                sec: [now.tv_sec; 3],
                nsec: [now.tv_nsec as u32; 3],
            };
            bindings::rdaxfs_inode_set_times(i.raw(), t.sec.as_ptr(), t.nsec.as_ptr());
            t
        }
    }

    /// Fills in the VFS inode, sets its operations by file type, and makes
    /// it visible (unlock_new_inode). `link` is a symlink's NUL-terminated
    /// target, which must stay allocated until the inode is freed (it lives
    /// in the inode's own state).
    pub(crate) fn init(mut self, p: InodeParams, link: Option<*const u8>) -> ARef<Inode<T>> {
        let inode = self.0.take().expect("NewInode holds an inode");
        let raw = inode.raw();
        // SAFETY: the inode is I_NEW and exclusively ours.
        unsafe {
            (*raw).i_mode = p.mode as u16;
            bindings::rdaxfs_i_uid_write(raw, p.uid);
            bindings::rdaxfs_i_gid_write(raw, p.gid);
            bindings::set_nlink(raw, p.nlink);
            bindings::rdaxfs_i_size_write(raw, p.size as i64);
            bindings::rdaxfs_inode_set_times(raw, p.times.sec.as_ptr(), p.times.nsec.as_ptr());
            (*raw).i_blocks = p.blocks.saturating_mul(8);
            (*raw).i_generation = p.generation;
            file::set_ops::<T>(raw, p.mode, p.rdev);
            if let Some(l) = link {
                bindings::rdaxfs_set_inode_link(raw, l.cast_mut().cast());
            }
            bindings::unlock_new_inode(raw);
        }
        inode
    }
}

impl<T: FileSystem> Drop for NewInode<T> {
    fn drop(&mut self) {
        if let Some(i) = self.0.take() {
            // SAFETY: an I_NEW inode we hold a reference to; iget_failed
            // marks it bad, unlocks it and drops our reference.
            unsafe { bindings::iget_failed(ARef::into_raw(i).as_ptr().cast()) };
        }
    }
}

/// What `iget` found.
pub(crate) enum Iget<T: FileSystem> {
    /// Already in memory.
    Cached(ARef<Inode<T>>),
    /// Not in memory: read it from disk and call `init`.
    New(NewInode<T>),
}

/// Finds inode `ino` in the inode cache or allocates it (I_NEW).
pub(crate) fn iget<T: FileSystem>(sb: &SuperBlock<T>, ino: u64) -> Result<Iget<T>> {
    // `ino` is an unsigned long in 6.12, a u64 in 7.3.
    #[allow(clippy::unnecessary_cast)]
    let ino = ino as super::compat::Ino;
    // SAFETY: a live superblock.
    let raw = from_err_ptr(unsafe { bindings::iget_locked(sb.raw(), ino) })?;
    let raw = NonNull::new(raw).ok_or(ENOMEM)?;
    // SAFETY: iget_locked returned a referenced inode of our superblock.
    let inode = unsafe { ARef::from_raw(raw.cast::<Inode<T>>()) };
    // SAFETY: reading i_state of an inode we hold a reference to.
    let new = unsafe { bindings::rdaxfs_inode_is_new(raw.as_ptr()) };
    Ok(if new {
        Iget::New(NewInode(Some(inode)))
    } else {
        Iget::Cached(inode)
    })
}

/// Attribute change handed to setattr.
pub(crate) struct Iattr(*mut bindings::iattr);

impl Iattr {
    /// The new size, if the size changes.
    pub(crate) fn size(&self) -> Option<u64> {
        // SAFETY: `self.0` is valid for the duration of setattr.
        let a = unsafe { &*self.0 };
        (a.ia_valid & bindings::ATTR_SIZE != 0).then_some(a.ia_size as u64)
    }
}

pub(crate) struct Iops<T>(PhantomData<T>);

impl<T: FileSystem> Iops<T> {
    pub(crate) const DIR: bindings::inode_operations = bindings::inode_operations {
        lookup: Some(lookup::<T>),
        create: Some(create::<T>),
        link: Some(link::<T>),
        unlink: Some(unlink::<T>),
        symlink: Some(symlink::<T>),
        mkdir: Some(mkdir::<T>),
        rmdir: Some(rmdir::<T>),
        mknod: Some(mknod::<T>),
        rename: Some(rename::<T>),
        setattr: Some(setattr::<T>),
        tmpfile: Some(tmpfile::<T>),
        // SAFETY: an all-zero `inode_operations` is valid (no callbacks).
        ..unsafe { core::mem::zeroed() }
    };
    pub(crate) const FILE: bindings::inode_operations = bindings::inode_operations {
        setattr: Some(setattr::<T>),
        fiemap: Some(super::iomap::fiemap::<T>),
        // SAFETY: as above.
        ..unsafe { core::mem::zeroed() }
    };
    pub(crate) const SYMLINK: bindings::inode_operations = bindings::inode_operations {
        get_link: Some(bindings::simple_get_link),
        setattr: Some(setattr::<T>),
        // SAFETY: as above.
        ..unsafe { core::mem::zeroed() }
    };
}

/// # Safety
/// Called by the VFS with a live directory of type `T` (i_rwsem held) and a
/// negative dentry in it.
unsafe extern "C" fn lookup<T: FileSystem>(
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    _flags: ffi::c_uint,
) -> *mut bindings::dentry {
    // SAFETY: per this function's contract.
    let (dir, name) = unsafe { (Inode::<T>::from_raw(dir), dentry_name(dentry)) };
    let inode = match T::lookup(dir, name) {
        Ok(Some(i)) => ARef::into_raw(i).as_ptr().cast(),
        Ok(None) => core::ptr::null_mut(),
        Err(e) => return e.to_ptr(),
    };
    // SAFETY: d_splice_alias takes over the inode reference (or NULL).
    unsafe { bindings::d_splice_alias(inode, dentry) }
}

/// Shared tail of create/mkdir/symlink/mknod.
///
/// # Safety
/// `dir` is a live directory of type `T` with i_rwsem held; `dentry` a
/// negative dentry in it.
unsafe fn create_common<T: FileSystem>(
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    mode: u32,
    symlink: Option<&[u8]>,
    rdev: u32,
) -> ffi::c_int {
    from_result(|| {
        // SAFETY: per this function's contract.
        let (d, name) = unsafe { (Inode::<T>::from_raw(dir), dentry_name(dentry)) };
        let inode = T::create(d, name, mode, symlink, rdev)?;
        // SAFETY: d_instantiate takes over our reference to the new inode.
        unsafe { bindings::d_instantiate(dentry, ARef::into_raw(inode).as_ptr().cast()) };
        Ok(0)
    })
}

/// # Safety
/// VFS `create` contract (see `create_common`).
unsafe extern "C" fn create<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    mode: bindings::umode_t,
    #[cfg(not(rdaxfs_k73))] _excl: bool, // gone in 7.3
) -> ffi::c_int {
    // SAFETY: forwarded contract.
    unsafe { create_common::<T>(dir, dentry, u32::from(mode) | bindings::S_IFREG, None, 0) }
}

#[cfg(not(rdaxfs_k73))]
/// # Safety
/// VFS `mkdir` contract (see `create_common`).
unsafe extern "C" fn mkdir<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    mode: bindings::umode_t,
) -> ffi::c_int {
    // SAFETY: forwarded contract.
    unsafe { create_common::<T>(dir, dentry, u32::from(mode) | bindings::S_IFDIR, None, 0) }
}

/// # Safety
/// VFS `mkdir` contract (see `create_common`). 7.3 (since 6.15): returns
/// NULL when `dentry` was instantiated, or an `ERR_PTR`.
#[cfg(rdaxfs_k73)]
unsafe extern "C" fn mkdir<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    mode: bindings::umode_t,
) -> *mut bindings::dentry {
    // SAFETY: forwarded contract.
    match unsafe { create_common::<T>(dir, dentry, u32::from(mode) | bindings::S_IFDIR, None, 0) } {
        0 => core::ptr::null_mut(),
        e => Error::from_errno(e).to_ptr(),
    }
}

/// # Safety
/// VFS `mknod` contract (see `create_common`).
unsafe extern "C" fn mknod<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    mode: bindings::umode_t,
    rdev: bindings::dev_t,
) -> ffi::c_int {
    // SAFETY: forwarded contract.
    unsafe { create_common::<T>(dir, dentry, mode.into(), None, rdev) }
}

/// # Safety
/// VFS `symlink` contract (see `create_common`); `target` is a
/// NUL-terminated string.
unsafe extern "C" fn symlink<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    target: *const ffi::c_char,
) -> ffi::c_int {
    // SAFETY: `target` is NUL-terminated per the contract.
    let t = super::compat::cstr_bytes(unsafe { kernel::str::CStr::from_char_ptr(target) });
    // SAFETY: forwarded contract.
    unsafe { create_common::<T>(dir, dentry, bindings::S_IFLNK | 0o777, Some(t), 0) }
}

/// # Safety
/// VFS `tmpfile` contract: `dir` a live directory of type `T` (i_rwsem
/// held), `file` being opened with a negative, unhashed dentry.
unsafe extern "C" fn tmpfile<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    file: *mut bindings::file,
    mode: bindings::umode_t,
) -> ffi::c_int {
    from_result(|| {
        // SAFETY: per this function's contract.
        let d = unsafe { Inode::<T>::from_raw(dir) };
        let inode = T::tmpfile(d, u32::from(mode) | bindings::S_IFREG)?;
        // SAFETY: d_tmpfile takes over our reference (the VFS link count
        // of 1 drops to 0) and instantiates the file's dentry; then the
        // file is opened on it, as finish_open_simple does.
        unsafe {
            bindings::d_tmpfile(file, ARef::into_raw(inode).as_ptr().cast());
            to_result(bindings::rdaxfs_finish_open_simple(file))?;
        }
        Ok(0)
    })
}

/// # Safety
/// VFS `link` contract: positive `old`, directory `dir` locked, negative `new`.
unsafe extern "C" fn link<T: FileSystem>(
    old: *mut bindings::dentry,
    dir: *mut bindings::inode,
    new: *mut bindings::dentry,
) -> ffi::c_int {
    from_result(|| {
        // SAFETY: per this function's contract.
        let (inode, d, name) = unsafe {
            let i = bindings::rdaxfs_d_inode(old);
            (
                Inode::<T>::from_raw(i),
                Inode::<T>::from_raw(dir),
                dentry_name(new),
            )
        };
        T::link(inode, d, name)?;
        // SAFETY: the new dentry gets its own inode reference.
        unsafe {
            bindings::ihold(inode.raw());
            bindings::d_instantiate(new, inode.raw());
        }
        Ok(0)
    })
}

/// What unlink and rmdir call: the directory, the name and its inode.
type RemoveFn<T> = fn(&Inode<T>, &[u8], &Inode<T>) -> Result;

/// Shared body of unlink and rmdir.
///
/// # Safety
/// `dir` is a live directory of type `T` with i_rwsem held; `dentry` is a
/// positive dentry in it (its inode locked too).
unsafe fn remove_common<T: FileSystem>(
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    f: RemoveFn<T>,
) -> ffi::c_int {
    // SAFETY: per this function's contract.
    let (d, name, i) = unsafe {
        (
            Inode::<T>::from_raw(dir),
            dentry_name(dentry),
            Inode::<T>::from_raw(bindings::rdaxfs_d_inode(dentry)),
        )
    };
    from_result(|| f(d, name, i).map(|()| 0))
}

/// # Safety
/// VFS `unlink` contract (see `remove_common`).
unsafe extern "C" fn unlink<T: FileSystem>(
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
) -> ffi::c_int {
    // SAFETY: forwarded contract.
    unsafe { remove_common::<T>(dir, dentry, T::unlink) }
}

/// # Safety
/// VFS `rmdir` contract (see `remove_common`).
unsafe extern "C" fn rmdir<T: FileSystem>(
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
) -> ffi::c_int {
    // SAFETY: forwarded contract.
    unsafe { remove_common::<T>(dir, dentry, T::rmdir) }
}

/// # Safety
/// VFS `rename` contract: both directories locked (lock_rename), old
/// dentry positive.
unsafe extern "C" fn rename<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    old_dir: *mut bindings::inode,
    old_dentry: *mut bindings::dentry,
    new_dir: *mut bindings::inode,
    new_dentry: *mut bindings::dentry,
    flags: ffi::c_uint,
) -> ffi::c_int {
    from_result(|| {
        // SAFETY: per this function's contract.
        unsafe {
            let new_inode = bindings::rdaxfs_d_inode(new_dentry);
            T::rename(
                Inode::from_raw(old_dir),
                dentry_name(old_dentry),
                Inode::from_raw(bindings::rdaxfs_d_inode(old_dentry)),
                Inode::from_raw(new_dir),
                dentry_name(new_dentry),
                (!new_inode.is_null()).then(|| Inode::from_raw(new_inode)),
                flags,
            )?;
        }
        Ok(0)
    })
}

/// # Safety
/// VFS `setattr` contract: positive dentry, i_rwsem held.
unsafe extern "C" fn setattr<T: FileSystem>(
    idmap: *mut bindings::mnt_idmap,
    dentry: *mut bindings::dentry,
    attr: *mut bindings::iattr,
) -> ffi::c_int {
    from_result(|| {
        // SAFETY: per this function's contract.
        let raw = unsafe { bindings::rdaxfs_d_inode(dentry) };
        // SAFETY: as above.
        let inode = unsafe { Inode::<T>::from_raw(raw) };
        // SAFETY: validating the change against permissions and limits.
        kernel::error::to_result(unsafe { bindings::setattr_prepare(idmap, dentry, attr) })?;
        let a = Iattr(attr);
        if let Some(size) = a.size() {
            if inode.mode() & bindings::S_IFMT == bindings::S_IFREG {
                T::set_size(inode, size)?;
            }
        }
        // SAFETY: copies the validated mode/owner/times into the inode.
        unsafe { bindings::setattr_copy(idmap, raw, attr) };
        T::setattr(inode, &a)?;
        Ok(0)
    })
}
