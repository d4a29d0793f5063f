//! The differences between the kernels rdaxfs builds against: 6.12 (LTS) and
//! 7.3 (`--cfg rdaxfs_k73`, set by Kbuild from the kernel version). Code
//! above the glue names these items and never the kernel crate's paths
//! that moved; trampolines whose C signature changed have both versions
//! next to each other in their own file.

/// Reference-counted kernel objects: `kernel::types` in 6.12,
/// `kernel::sync::aref` in 7.3.
#[cfg(rdaxfs_k73)]
pub(crate) use kernel::sync::aref::{ARef, AlwaysRefCounted};
/// Reference-counted kernel objects: `kernel::types` in 6.12,
/// `kernel::sync::aref` in 7.3.
#[cfg(not(rdaxfs_k73))]
pub(crate) use kernel::types::{ARef, AlwaysRefCounted};

/// The bytes of a C string, without the NUL (`as_bytes` of the kernel's own
/// `CStr` in 6.12, `to_bytes` of `core::ffi::CStr` in 7.3).
pub(crate) fn cstr_bytes(s: &kernel::str::CStr) -> &[u8] {
    #[cfg(not(rdaxfs_k73))]
    return s.as_bytes();
    #[cfg(rdaxfs_k73)]
    return s.to_bytes();
}

/// Shortens `v` to `n` elements (no-op if it is not longer). 7.3's `Vec`
/// has `truncate`; 6.12's has neither that nor a public length setter
/// other than the unsafe `set_len`.
pub(crate) fn vec_truncate<T: Copy, A: kernel::alloc::Allocator>(
    v: &mut kernel::alloc::Vec<T, A>,
    n: usize,
) {
    #[cfg(rdaxfs_k73)]
    v.truncate(n);
    #[cfg(not(rdaxfs_k73))]
    if n < v.len() {
        // SAFETY: `n` is below the length, so the first `n` elements are
        // initialised; the ones cut off are `Copy` and need no drop.
        unsafe { v.set_len(n) };
    }
}

/// Lengthens `v` by `n` elements after the `n` slots past its end were
/// written through its pointer (6.12: `set_len`, 7.3: `inc_len`).
///
/// # Safety
/// `v` has capacity for `n` more elements, and the `n` slots after its
/// last element are initialised.
pub(crate) unsafe fn vec_inc_len<T, A: kernel::alloc::Allocator>(
    v: &mut kernel::alloc::Vec<T, A>,
    n: usize,
) {
    #[cfg(rdaxfs_k73)]
    // SAFETY: per the contract (`n` more initialised within capacity).
    unsafe {
        v.inc_len(n)
    };
    #[cfg(not(rdaxfs_k73))]
    // SAFETY: per the contract.
    unsafe {
        v.set_len(v.len() + n)
    };
}

/// Appends a copy of `v[start..start + n]` to `v` (the kernel crate has no
/// `extend_from_within`).
pub(crate) fn vec_extend_from_within<T: Copy, A: kernel::alloc::Allocator>(
    v: &mut kernel::alloc::Vec<T, A>,
    start: usize,
    n: usize,
) -> kernel::error::Result {
    let len = v.len();
    match start.checked_add(n) {
        Some(end) if end <= len => {}
        _ => return Err(kernel::error::code::EINVAL),
    }
    v.reserve(n, kernel::alloc::flags::GFP_KERNEL)?;
    // SAFETY: `start + n <= len`, so the source is `n` initialised
    // elements; the destination is the `n` slots of spare capacity just
    // reserved after them, which cannot overlap the source.
    unsafe {
        core::ptr::copy_nonoverlapping(v.as_ptr().add(start), v.as_mut_ptr().add(len), n);
        vec_inc_len(v, n);
    }
    Ok(())
}

/// Inode numbers in the VFS: `unsigned long` in 6.12, `u64` in 7.3.
#[cfg(not(rdaxfs_k73))]
pub(crate) type Ino = usize;
/// Inode numbers in the VFS: `unsigned long` in 6.12, `u64` in 7.3.
#[cfg(rdaxfs_k73)]
pub(crate) type Ino = u64;

/// The pfn `dax_iomap_fault` hands back for `dax_finish_sync_fault`: a
/// `pfn_t` in 6.12, a plain `unsigned long` since 6.17 (pfn_t is gone).
#[cfg(not(rdaxfs_k73))]
pub(crate) type Pfn = super::bindings::pfn_t;
/// The pfn `dax_iomap_fault` hands back for `dax_finish_sync_fault`: a
/// `pfn_t` in 6.12, a plain `unsigned long` since 6.17 (pfn_t is gone).
#[cfg(rdaxfs_k73)]
pub(crate) type Pfn = kernel::ffi::c_ulong;

/// `module!` takes `author: "..."` in 6.12 and `authors: ["..."]` in 7.3;
/// rdaxfs_main.rs declares the module through this.
#[cfg(not(rdaxfs_k73))]
macro_rules! declare_module {
    (type: $t:ident, name: $n:tt, author: $a:tt, description: $d:tt, license: $l:tt $(,)?) => {
        kernel::prelude::module! {
            type: $t,
            name: $n,
            author: $a,
            description: $d,
            license: $l,
        }
    };
}
/// `module!` takes `author: "..."` in 6.12 and `authors: ["..."]` in 7.3;
/// rdaxfs_main.rs declares the module through this.
#[cfg(rdaxfs_k73)]
macro_rules! declare_module {
    (type: $t:ident, name: $n:tt, author: $a:tt, description: $d:tt, license: $l:tt $(,)?) => {
        kernel::prelude::module! {
            type: $t,
            name: $n,
            authors: [$a],
            description: $d,
            license: $l,
        }
    };
}
pub(crate) use declare_module;
