//! Filesystem type registration, the mount entry points and the superblock.

use super::bindings;
use super::compat::{cstr_bytes, ARef};
use super::dax::DaxDev;
use super::inode::{Iattr, Inode, InodeBox};
use super::{DirEmitter, Kiocb, SeqFile, VmFault};
use core::marker::PhantomData;
use kernel::error::{from_result, to_result};
use kernel::ffi;
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::types::Opaque;

/// `statfs` figures, in blocks and inodes.
pub(crate) struct StatFs {
    /// Filesystem magic number.
    pub(crate) magic: u32,
    /// Block size in bytes.
    pub(crate) bsize: u32,
    /// Total data blocks.
    pub(crate) blocks: u64,
    /// Free data blocks.
    pub(crate) bfree: u64,
    /// Total inodes.
    pub(crate) files: u64,
    /// Free inodes.
    pub(crate) ffree: u64,
    /// Longest name.
    pub(crate) namelen: u32,
    /// Filesystem id (`f_fsid`), from the volume's uuid.
    pub(crate) fsid: u64,
}

/// What a filesystem implements to be mountable through [`FsType`]. The
/// methods are called from the VFS, iomap and mm callbacks in this module's
/// siblings, with the locks their documentation names already held.
pub(crate) trait FileSystem: Sized + Send + Sync + 'static {
    /// The name shown in /proc/filesystems and used with `mount -t`.
    const NAME: &'static CStr;
    /// Magic number reported by statfs.
    const MAGIC: u32;
    /// Largest file size the on-disk format holds (`s_maxbytes`): the VFS
    /// refuses writes, truncates and fallocates past it with EFBIG.
    const MAX_FILE_SIZE: u64;
    /// Per-mount state, owned by the superblock.
    type SbInfo: Send + Sync;
    /// Per-inode state, allocated with every VFS inode.
    type InodeInfo: Send + Sync;
    /// Mount options.
    type Options: Default + Send;

    /// Applies one mount option `key=val` (`val` empty for flags).
    fn parse_option(opts: &mut Self::Options, key: &[u8], val: &[u8]) -> Result;
    /// Checks the device and reads the filesystem; returns the mount state.
    fn fill_super(
        sb: &NewSuperBlock<'_, Self>,
        opts: &Self::Options,
    ) -> Result<Pin<KBox<Self::SbInfo>>>;
    /// The DAX device of a mounted filesystem.
    fn dax_dev(sb: &SuperBlock<Self>) -> &DaxDev;
    /// Returns the root directory of a superblock `fill_super` accepted.
    fn root(sb: &SuperBlock<Self>) -> Result<ARef<Inode<Self>>>;
    /// Initialiser for the state of a newly allocated inode.
    fn inode_info() -> impl PinInit<Self::InodeInfo, Error>;
    /// The superblock is going away: make everything durable.
    fn put_super(sb: &SuperBlock<Self>);
    /// `sync(2)`, `syncfs(2)`: make everything durable.
    fn sync_fs(sb: &SuperBlock<Self>) -> Result;
    /// `mount -o remount`: apply `opts` (only the options given) and, for
    /// `ro_change` `Some(true)` (rw -> ro, already synced) or `Some(false)`
    /// (ro -> rw), the state change. The superblock's read-only flag still
    /// has its old value; an error leaves the mount as it was.
    fn reconfigure(sb: &SuperBlock<Self>, opts: &Self::Options, ro_change: Option<bool>) -> Result;
    /// `statfs(2)`.
    fn statfs(sb: &SuperBlock<Self>) -> Result<StatFs>;
    /// Mount options for /proc/mounts, each starting with a comma.
    fn show_options(sb: &SuperBlock<Self>, out: &mut SeqFile);
    /// The VFS inode changed (times, mode, owner, nlink, size): persist it.
    fn write_inode(inode: &Inode<Self>) -> Result;
    /// Last reference to the inode is gone; free it on disk if unlinked.
    fn evict_inode(inode: &Inode<Self>);
    /// Called first in eviction, before the mapping's DAX entries are
    /// dropped and before `evict_inode`: wait until no page of the file is
    /// pinned for DMA. The default does nothing.
    fn evict_break_layouts(inode: &super::inode::Evicting<'_, Self>) {
        let _ = inode;
    }

    /// Looks `name` up in `dir` (i_rwsem of `dir` held shared).
    fn lookup(dir: &Inode<Self>, name: &[u8]) -> Result<Option<ARef<Inode<Self>>>>;
    /// Creates `name` in `dir` (i_rwsem of `dir` held). `symlink` is the
    /// target of a new symlink; `rdev` the device of a special file.
    fn create(
        dir: &Inode<Self>,
        name: &[u8],
        mode: u32,
        symlink: Option<&[u8]>,
        rdev: u32,
    ) -> Result<ARef<Inode<Self>>>;
    /// Adds a hard link `name` in `dir` to `inode`.
    fn link(inode: &Inode<Self>, dir: &Inode<Self>, name: &[u8]) -> Result;
    /// Removes `name` (an entry for `inode`) from `dir`.
    fn unlink(dir: &Inode<Self>, name: &[u8], inode: &Inode<Self>) -> Result;
    /// Removes the empty directory `inode`, named `name` in `dir`.
    fn rmdir(dir: &Inode<Self>, name: &[u8], inode: &Inode<Self>) -> Result;
    /// rename(2) with `flags` (RENAME_NOREPLACE, RENAME_EXCHANGE).
    #[allow(clippy::too_many_arguments)]
    fn rename(
        old_dir: &Inode<Self>,
        old_name: &[u8],
        old: &Inode<Self>,
        new_dir: &Inode<Self>,
        new_name: &[u8],
        new: Option<&Inode<Self>>,
        flags: u32,
    ) -> Result;
    /// Emits directory entries from the emitter's position on.
    fn readdir(dir: &Inode<Self>, out: &mut DirEmitter) -> Result;
    /// Changes the size of a regular file (i_rwsem held exclusive).
    fn set_size(inode: &Inode<Self>, size: u64) -> Result;
    /// Applies a validated attribute change other than size.
    fn setattr(inode: &Inode<Self>, attr: &Iattr) -> Result {
        let _ = attr;
        Self::write_inode(inode)
    }

    /// read(2) family on a regular file.
    fn read_iter(iocb: &mut Kiocb<'_, Self>) -> Result<usize>;
    /// write(2) family on a regular file.
    fn write_iter(iocb: &mut Kiocb<'_, Self>) -> Result<usize>;
    /// fsync(2) for `[start, end]`.
    fn fsync(inode: &Inode<Self>, start: i64, end: i64, datasync: bool) -> Result;
    /// fallocate(2).
    fn fallocate(
        file: &super::file::OpenFile<'_, Self>,
        mode: i32,
        offset: i64,
        len: i64,
    ) -> Result;
    /// A page fault of `order` (0 for PTE, PMD_ORDER for PMD) on a mapping.
    fn fault(vmf: &VmFault<'_, Self>, order: u32) -> u32;
    /// The iomap begin callback: map `[pos, pos + len)`.
    fn iomap_begin(
        inode: &Inode<Self>,
        pos: i64,
        len: i64,
        flags: u32,
        map: &mut super::iomap::Iomap<'_, Self>,
    ) -> Result;
    /// FS_IOC_FIEMAP on `inode` for `[start, start + len)`. The default
    /// refuses (EOPNOTSUPP).
    fn fiemap(inode: &Inode<Self>, fi: &mut super::iomap::Fiemap, start: u64, len: u64) -> Result {
        let _ = (inode, fi, start, len);
        Err(super::code::eopnotsupp())
    }
    /// `lseek(SEEK_DATA)` (`data`) or `lseek(SEEK_HOLE)` from `offset` on
    /// a regular file: the new position.
    fn seek_data_hole(inode: &Inode<Self>, offset: i64, data: bool) -> Result<i64>;
    /// `open(O_TMPFILE)` in `dir` (i_rwsem of `dir` held): a new regular
    /// file of `mode` with no name. The returned inode has a VFS link
    /// count of 1, which `d_tmpfile` drops to the 0 it has on disk.
    fn tmpfile(dir: &Inode<Self>, mode: u32) -> Result<ARef<Inode<Self>>> {
        let _ = (dir, mode);
        Err(super::code::eopnotsupp())
    }
}

/// A `struct file_system_type` in static storage (its embedded lockdep keys
/// must be static), registered by [`FsType::register`].
pub(crate) struct FsType(Opaque<bindings::file_system_type>);

// SAFETY: the C struct is written once, in `register`, before the VFS can
// see it; afterwards only the VFS (with its own locking) touches it.
unsafe impl Sync for FsType {}

impl FsType {
    /// An unregistered filesystem type, for a `static`.
    pub(crate) const fn new() -> Self {
        Self(Opaque::uninit())
    }

    /// Fills in and registers the filesystem type. Must be called at most
    /// once at a time per `FsType`: the returned [`Registration`]
    /// unregisters it when dropped.
    pub(crate) fn register<T: FileSystem>(
        &'static self,
        module: &'static ThisModule,
    ) -> Result<Registration> {
        let fst = self.0.get();
        // SAFETY: `fst` points to static storage that is not registered (the
        // caller keeps at most one `Registration` alive), so nothing else
        // reads or writes it; an all-zero `file_system_type` is valid.
        unsafe {
            fst.write(bindings::file_system_type::default());
            (*fst).owner = module.as_ptr().cast();
            (*fst).name = T::NAME.as_char_ptr();
            (*fst).init_fs_context = Some(init_fs_context::<T>);
            (*fst).kill_sb = Some(kill_sb::<T>);
            (*fst).fs_flags = bindings::FS_REQUIRES_DEV as i32;
        }
        // SAFETY: `fst` is fully initialised and lives forever.
        to_result(unsafe { bindings::register_filesystem(fst) })?;
        Ok(Registration(self))
    }
}

/// Keeps a filesystem type registered; unregisters it on drop.
pub(crate) struct Registration(&'static FsType);

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: `self.0` was registered by `FsType::register`.
        unsafe { bindings::unregister_filesystem(self.0 .0.get()) };
    }
}

/// A superblock being set up by `fill_super`: its device is open, nothing
/// else is set.
pub(crate) struct NewSuperBlock<'a, T: FileSystem> {
    sb: *mut bindings::super_block,
    _p: PhantomData<&'a T>,
}

impl<T: FileSystem> NewSuperBlock<'_, T> {
    /// The block device's name, for messages.
    pub(crate) fn id(&self) -> &CStr {
        // SAFETY: `s_id` is a NUL-terminated string set by the VFS.
        unsafe { CStr::from_char_ptr((*self.sb).s_id.as_ptr()) }
    }

    /// Size of the block device in bytes.
    pub(crate) fn device_bytes(&self) -> u64 {
        // SAFETY: `s_bdev` is the open device of a block superblock.
        unsafe { bindings::rdaxfs_bdev_nr_bytes((*self.sb).s_bdev) }
    }

    /// Whether the mount is read-only.
    pub(crate) fn read_only(&self) -> bool {
        // SAFETY: `s_flags` is readable; fill_super runs single-threaded.
        unsafe { (*self.sb).s_flags & bindings::SB_RDONLY != 0 }
    }

    /// Sets the largest link count the VFS lets link(2) and mkdir reach
    /// (`EMLINK` beyond it).
    pub(crate) fn set_max_links(&self, n: u32) {
        // SAFETY: the superblock is exclusively ours during fill_super.
        unsafe { (*self.sb).s_max_links = n };
    }

    /// The DAX device behind the block device, or `None` if it has none.
    pub(crate) fn dax_device(&self) -> Option<DaxDev> {
        // SAFETY: `s_bdev` is open for the lifetime of the superblock.
        unsafe { DaxDev::open((*self.sb).s_bdev, self.device_bytes()) }
    }
}

/// A mounted superblock, as filesystem callbacks see it.
#[repr(transparent)]
pub(crate) struct SuperBlock<T: FileSystem>(Opaque<bindings::super_block>, PhantomData<T>);

impl<T: FileSystem> SuperBlock<T> {
    /// # Safety
    /// `sb` is a live superblock of type `T` whose `s_fs_info` is set, and
    /// outlives `'a`.
    pub(crate) unsafe fn from_raw<'a>(sb: *mut bindings::super_block) -> &'a Self {
        // SAFETY: `Self` is a transparent wrapper of `super_block`.
        unsafe { &*sb.cast() }
    }

    pub(crate) fn raw(&self) -> *mut bindings::super_block {
        self.0.get()
    }

    /// The per-mount state `fill_super` returned.
    pub(crate) fn info(&self) -> &T::SbInfo {
        // SAFETY: `s_fs_info` is set to a `KBox<T::SbInfo>` before any
        // `SuperBlock` is handed out and freed only in `kill_sb`.
        unsafe { &*(*self.raw()).s_fs_info.cast::<T::SbInfo>() }
    }

    /// Whether the mount is read-only.
    pub(crate) fn read_only(&self) -> bool {
        // SAFETY: reading a flag word of a live superblock.
        unsafe { (*self.raw()).s_flags & bindings::SB_RDONLY != 0 }
    }

    /// The block device's name, for messages.
    pub(crate) fn id(&self) -> &CStr {
        // SAFETY: `s_id` is a NUL-terminated string set by the VFS.
        unsafe { CStr::from_char_ptr((*self.raw()).s_id.as_ptr()) }
    }

    /// Flushes the device's volatile write path (a REQ_PREFLUSH bio: for
    /// pmem, `nvdimm_flush`, i.e. the flush hints or virtio-pmem's host
    /// flush), as ext4 does at fsync, syncfs and unmount. Sleeps.
    pub(crate) fn flush_device(&self) -> Result {
        // SAFETY: `s_bdev` is open for the lifetime of a block superblock.
        to_result(unsafe { bindings::blkdev_issue_flush((*self.raw()).s_bdev) })
    }

    /// Makes the mount read-only after an error (errors=remount-ro).
    pub(crate) fn force_read_only(&self) {
        // SAFETY: setting SB_RDONLY is how filesystems (ext2_error) do it.
        unsafe { (*self.raw()).s_flags |= bindings::SB_RDONLY };
    }
}

/// # Safety
/// Called by the VFS with a valid, exclusively owned `fs_context`.
unsafe extern "C" fn init_fs_context<T: FileSystem>(fc: *mut bindings::fs_context) -> ffi::c_int {
    from_result(|| {
        let opts = KBox::new(T::Options::default(), GFP_KERNEL)?;
        // SAFETY: per this function's contract `fc` is valid and ours to set
        // up; `free_fc` releases `fs_private`.
        unsafe {
            (*fc).fs_private = KBox::into_raw(opts).cast();
            (*fc).ops = &Ctx::<T>::OPS;
        }
        Ok(0)
    })
}

/// # Safety
/// Called by the VFS when a context set up by `init_fs_context::<T>` dies.
unsafe extern "C" fn free_fc<T: FileSystem>(fc: *mut bindings::fs_context) {
    // SAFETY: `fs_private` is null or the box `init_fs_context` made.
    unsafe {
        let p = (*fc).fs_private.cast::<T::Options>();
        if !p.is_null() {
            drop(KBox::from_raw(p));
            (*fc).fs_private = core::ptr::null_mut();
        }
    }
}

/// The options stored in a context of type `T`.
///
/// # Safety
/// `fc` was set up by `init_fs_context::<T>` and is live for `'a`.
unsafe fn fc_options<'a, T: FileSystem>(fc: *mut bindings::fs_context) -> &'a mut T::Options {
    // SAFETY: per the contract `fs_private` is our options box.
    unsafe { &mut *(*fc).fs_private.cast::<T::Options>() }
}

struct Ctx<T>(PhantomData<T>);

impl<T: FileSystem> Ctx<T> {
    const OPS: bindings::fs_context_operations = bindings::fs_context_operations {
        get_tree: Some(get_tree::<T>),
        parse_param: Some(parse_param::<T>),
        free: Some(free_fc::<T>),
        reconfigure: Some(reconfigure::<T>),
        // SAFETY: an all-zero `fs_context_operations` is valid (no callbacks).
        ..unsafe { core::mem::zeroed() }
    };

    const SOPS: bindings::super_operations = bindings::super_operations {
        alloc_inode: Some(alloc_inode::<T>),
        free_inode: Some(free_inode::<T>),
        dirty_inode: Some(dirty_inode::<T>),
        evict_inode: Some(evict_inode::<T>),
        put_super: Some(put_super::<T>),
        sync_fs: Some(sync_fs::<T>),
        statfs: Some(statfs::<T>),
        show_options: Some(show_options::<T>),
        // SAFETY: an all-zero `super_operations` is valid (no callbacks).
        ..unsafe { core::mem::zeroed() }
    };
}

/// Accepts the options rdaxfs knows; anything else is an error.
///
/// # Safety
/// Called by the VFS with a valid `fs_context` and parameter.
unsafe extern "C" fn parse_param<T: FileSystem>(
    fc: *mut bindings::fs_context,
    param: *mut bindings::fs_parameter,
) -> ffi::c_int {
    // SAFETY: `param` and its key are valid for this call.
    let key = unsafe { CStr::from_char_ptr((*param).key) };
    // SAFETY: for string parameters `string` is a NUL-terminated value.
    let val = unsafe {
        let s = (*param).__bindgen_anon_1.string;
        if s.is_null() {
            kernel::c_str!("")
        } else {
            CStr::from_char_ptr(s)
        }
    };
    // SAFETY: `fc` is a context of type `T`.
    let opts = unsafe { fc_options::<T>(fc) };
    match T::parse_option(opts, cstr_bytes(key), cstr_bytes(val)) {
        Ok(()) => 0,
        Err(e) if e == ENOPARAM => e.to_errno(),
        Err(e) => {
            pr_err!("bad mount option {}={}\n", key, val);
            e.to_errno()
        }
    }
}

/// # Safety
/// Called by the VFS with a valid `fs_context` whose `ops` are ours.
unsafe extern "C" fn get_tree<T: FileSystem>(fc: *mut bindings::fs_context) -> ffi::c_int {
    // SAFETY: `fc` is valid per this function's contract.
    unsafe { bindings::get_tree_bdev(fc, Some(fill_super::<T>)) }
}

/// # Safety
/// Called by `reconfigure_super` with a context of type `T` for a live
/// superblock (`fc->root`), `s_umount` held exclusive.
unsafe extern "C" fn reconfigure<T: FileSystem>(fc: *mut bindings::fs_context) -> ffi::c_int {
    from_result(|| {
        // SAFETY: per this function's contract `fc` and its root are live.
        let (sb, flags, mask) =
            unsafe { ((*(*fc).root).d_sb, (*fc).sb_flags, (*fc).sb_flags_mask) };
        // SAFETY: `sb` is a mounted superblock of type `T`.
        let sbr = unsafe { SuperBlock::<T>::from_raw(sb) };
        let rdonly = bindings::SB_RDONLY as ffi::c_uint;
        let ro_change = match (mask & rdonly != 0, flags & rdonly != 0) {
            (true, want) if want != sbr.read_only() => Some(want),
            _ => None,
        };
        if ro_change == Some(true) {
            // SAFETY: `s_umount` is held, as sync_filesystem requires; it
            // writes back dirty DAX mappings (CPU cache flush) and calls
            // sync_fs.
            to_result(unsafe { bindings::sync_filesystem(sb) })?;
        }
        // SAFETY: `fc` is a context of type `T`.
        let opts = unsafe { fc_options::<T>(fc) };
        T::reconfigure(sbr, opts, ro_change)?;
        Ok(0)
    })
}

/// # Safety
/// Called by `get_tree_bdev` with a new, locked superblock owned by this call.
unsafe extern "C" fn fill_super<T: FileSystem>(
    sb: *mut bindings::super_block,
    fc: *mut bindings::fs_context,
) -> ffi::c_int {
    from_result(|| {
        // SAFETY: `fc` is the context of type `T` that get_tree_bdev runs.
        let opts = unsafe { fc_options::<T>(fc) };
        // SAFETY: the superblock is exclusively ours during fill_super.
        unsafe {
            (*sb).s_op = &Ctx::<T>::SOPS;
            (*sb).s_magic = T::MAGIC as usize;
            (*sb).s_maxbytes = T::MAX_FILE_SIZE.min(bindings::MAX_LFS_FILESIZE as u64) as i64;
            (*sb).s_time_gran = 1;
            (*sb).s_flags |= bindings::SB_NOSEC;
            if bindings::sb_set_blocksize(sb, 4096) == 0 {
                pr_err!("device does not support 4096-byte blocks\n");
                return Err(EINVAL);
            }
        }
        let nsb = NewSuperBlock::<T> {
            sb,
            _p: PhantomData,
        };
        let info = T::fill_super(&nsb, opts)?;
        // SAFETY: from here on `kill_sb` frees `s_fs_info` (in place, so the
        // pinned value never moves), also if the rest of fill_super fails
        // (get_tree_bdev then kills the superblock).
        unsafe { (*sb).s_fs_info = KBox::into_raw(Pin::into_inner_unchecked(info)).cast() };
        // SAFETY: `s_fs_info` is set, the superblock is live.
        let sbr = unsafe { SuperBlock::<T>::from_raw(sb) };
        let root = T::root(sbr)?;
        // SAFETY: `d_make_root` takes over the inode reference, also on failure.
        let dentry = unsafe { bindings::d_make_root(ARef::into_raw(root).as_ptr().cast()) };
        if dentry.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: the superblock is exclusively ours during fill_super.
        unsafe { (*sb).s_root = dentry };
        Ok(0)
    })
}

/// # Safety
/// Called by the VFS when the last reference to a superblock of type `T`
/// goes away.
unsafe extern "C" fn kill_sb<T: FileSystem>(sb: *mut bindings::super_block) {
    // SAFETY: `sb` is valid; `s_fs_info` is null or our box.
    unsafe {
        let info = (*sb).s_fs_info.cast::<T::SbInfo>();
        bindings::kill_block_super(sb);
        if !info.is_null() {
            drop(KBox::from_raw(info));
        }
    }
}

/// # Safety
/// Called by the VFS for a superblock of type `T`.
unsafe extern "C" fn alloc_inode<T: FileSystem>(
    _sb: *mut bindings::super_block,
) -> *mut bindings::inode {
    InodeBox::<T>::alloc().unwrap_or(core::ptr::null_mut())
}

/// # Safety
/// Called by the VFS (after an RCU grace period) for an inode that
/// `alloc_inode::<T>` returned.
unsafe extern "C" fn free_inode<T: FileSystem>(inode: *mut bindings::inode) {
    // SAFETY: per this function's contract.
    unsafe { InodeBox::<T>::free(inode) };
}

/// # Safety
/// Called by the VFS with a live inode of a superblock of type `T`.
unsafe extern "C" fn dirty_inode<T: FileSystem>(inode: *mut bindings::inode, _flags: ffi::c_int) {
    // SAFETY: per this function's contract.
    let inode = unsafe { Inode::<T>::from_raw(inode) };
    if let Err(e) = T::write_inode(inode) {
        pr_err!("writing inode {} failed: {:?}\n", inode.ino(), e);
    }
}

/// # Safety
/// Called by the VFS with an inode of type `T` that has no users left.
unsafe extern "C" fn evict_inode<T: FileSystem>(inode: *mut bindings::inode) {
    // SAFETY: per this function's contract.
    let i = unsafe { Inode::<T>::from_raw(inode) };
    // SAFETY: the VFS is evicting `i` and its mapping is still intact.
    T::evict_break_layouts(&unsafe { super::inode::Evicting::new(i) });
    if !super::bugs::evict_skip_wait() {
        // SAFETY: as above; 7.3's dax_break_layout_final (a no-op on 6.12),
        // which finds no pinned page left after the filesystem's wait.
        unsafe { bindings::rdaxfs_dax_break_layout_final(inode) };
    }
    // SAFETY: drops the DAX entries of the mapping, as every DAX
    // filesystem's evict_inode does first.
    unsafe { bindings::truncate_inode_pages_final(&mut (*inode).i_data) };
    T::evict_inode(i);
    // SAFETY: as ext2_evict_inode does, after the filesystem is done with it.
    unsafe { bindings::clear_inode(inode) };
}

/// # Safety
/// Called by the VFS on unmount, superblock of type `T` fully set up.
unsafe extern "C" fn put_super<T: FileSystem>(sb: *mut bindings::super_block) {
    // SAFETY: `s_fs_info` is set when put_super can be called.
    T::put_super(unsafe { SuperBlock::from_raw(sb) });
}

/// # Safety
/// Called by the VFS for a mounted superblock of type `T`.
unsafe extern "C" fn sync_fs<T: FileSystem>(
    sb: *mut bindings::super_block,
    _wait: ffi::c_int,
) -> ffi::c_int {
    // SAFETY: per this function's contract.
    from_result(|| T::sync_fs(unsafe { SuperBlock::from_raw(sb) }).map(|()| 0))
}

/// # Safety
/// Called by the VFS with a dentry of a mounted superblock of type `T`.
unsafe extern "C" fn statfs<T: FileSystem>(
    dentry: *mut bindings::dentry,
    buf: *mut bindings::kstatfs,
) -> ffi::c_int {
    from_result(|| {
        // SAFETY: per this function's contract the dentry is live.
        let sb = unsafe { SuperBlock::<T>::from_raw((*dentry).d_sb) };
        let s = T::statfs(sb)?;
        // SAFETY: `buf` is valid for writes for this call.
        let b = unsafe { &mut *buf };
        b.f_type = s.magic as isize;
        b.f_bsize = s.bsize as isize;
        b.f_blocks = s.blocks;
        b.f_bfree = s.bfree;
        b.f_bavail = s.bfree;
        b.f_files = s.files;
        b.f_ffree = s.ffree;
        b.f_namelen = s.namelen as isize;
        b.f_frsize = s.bsize as isize;
        // As the kernel's u64_to_fsid.
        b.f_fsid.val = [s.fsid as u32 as i32, (s.fsid >> 32) as u32 as i32];
        Ok(0)
    })
}

/// # Safety
/// Called by the VFS with a seq_file and the root of a mount of type `T`.
unsafe extern "C" fn show_options<T: FileSystem>(
    m: *mut bindings::seq_file,
    root: *mut bindings::dentry,
) -> ffi::c_int {
    // SAFETY: per this function's contract.
    let sb = unsafe { SuperBlock::<T>::from_raw((*root).d_sb) };
    let mut out = SeqFile::new(m);
    T::show_options(sb, &mut out);
    0
}
