//! The differences between the kernels rdaxfs builds against: 6.12 (LTS) and
//! 7.3 (`--cfg rdaxfs_k73`, set by Kbuild from the kernel version). Code
//! above the glue names these items and never the kernel crate's paths
//! that moved; trampolines whose C signature changed have both versions
//! next to each other in their own file.

use super::bindings;

/// Reference-counted kernel objects: `kernel::types` in 6.12,
/// `kernel::sync::aref` in 7.3.
#[cfg(rdaxfs_k73)]
pub(crate) use kernel::sync::aref::{ARef, AlwaysRefCounted};
/// Reference-counted kernel objects: `kernel::types` in 6.12,
/// `kernel::sync::aref` in 7.3.
#[cfg(not(rdaxfs_k73))]
pub(crate) use kernel::types::{ARef, AlwaysRefCounted};

/// The pfn `dax_iomap_fault` hands back for `dax_finish_sync_fault`: a
/// `pfn_t` in 6.12, a plain `unsigned long` since 6.17 (pfn_t is gone).
#[cfg(not(rdaxfs_k73))]
pub(crate) type Pfn = bindings::pfn_t;
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
