//! Filesystem type registration and the mount entry points.

use super::bindings;
use kernel::error::{from_result, to_result};
use kernel::ffi;
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::types::Opaque;

/// What a filesystem implements to be mountable through [`FsType`].
pub(crate) trait FileSystem {
    /// The name shown in /proc/filesystems and used with `mount -t`.
    const NAME: &'static CStr;
    /// Checks the device behind a new superblock and reads the filesystem.
    fn fill_super(sb: &mut NewSuperBlock<'_>) -> Result;
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

    /// Fills in and registers the filesystem type.
    pub(crate) fn register<T: FileSystem>(
        &'static self,
        module: &'static ThisModule,
    ) -> Result<Registration> {
        let fst = self.0.get();
        // SAFETY: `fst` points to static storage that is not registered, so
        // nothing else reads or writes it; an all-zero struct is valid.
        unsafe {
            fst.write(bindings::file_system_type::default());
            (*fst).owner = module.as_ptr().cast();
            (*fst).name = T::NAME.as_char_ptr();
            (*fst).init_fs_context = Some(init_fs_context::<T>);
            (*fst).kill_sb = Some(bindings::kill_block_super);
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

/// A superblock being set up by `fill_super`.
pub(crate) struct NewSuperBlock<'a> {
    sb: &'a mut bindings::super_block,
}

impl NewSuperBlock<'_> {
    /// The block device's name, for messages.
    pub(crate) fn id(&self) -> &CStr {
        // SAFETY: `s_id` is a NUL-terminated string set by the VFS.
        unsafe { CStr::from_char_ptr(self.sb.s_id.as_ptr()) }
    }
}

/// # Safety
/// Called by the VFS with a valid, exclusively owned `fs_context`.
unsafe extern "C" fn init_fs_context<T: FileSystem>(fc: *mut bindings::fs_context) -> ffi::c_int {
    // SAFETY: per this function's contract `fc` is valid and ours to set up.
    unsafe { (*fc).ops = &Ctx::<T>::OPS };
    0
}

struct Ctx<T>(core::marker::PhantomData<T>);

impl<T: FileSystem> Ctx<T> {
    const OPS: bindings::fs_context_operations = bindings::fs_context_operations {
        get_tree: Some(get_tree::<T>),
        // SAFETY: an all-zero `fs_context_operations` is valid (no callbacks).
        ..unsafe { core::mem::zeroed() }
    };
}

/// # Safety
/// Called by the VFS with a valid `fs_context` whose `ops` are ours.
unsafe extern "C" fn get_tree<T: FileSystem>(fc: *mut bindings::fs_context) -> ffi::c_int {
    // SAFETY: `fc` is valid per this function's contract.
    unsafe { bindings::get_tree_bdev(fc, Some(fill_super::<T>)) }
}

/// # Safety
/// Called by `get_tree_bdev` with a new, locked superblock owned by this call.
unsafe extern "C" fn fill_super<T: FileSystem>(
    sb: *mut bindings::super_block,
    _fc: *mut bindings::fs_context,
) -> ffi::c_int {
    from_result(|| {
        // SAFETY: the superblock is valid and exclusively ours during fill_super.
        let mut nsb = NewSuperBlock { sb: unsafe { &mut *sb } };
        T::fill_super(&mut nsb)?;
        Ok(0)
    })
}
