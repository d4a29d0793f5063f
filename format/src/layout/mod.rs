//! The rdaxfs on-disk layout.
//!
//! Everything here is `core`-only, panic-free on any input and shared byte
//! for byte between the kernel module and the userspace tools. The kernel
//! includes this directory with `#[path = ".../layout/mod.rs"]`, so the
//! submodules refer to each other through `super::` only.
//!
//! All multi-byte fields are little-endian. See `docs/format.md` for the
//! layout and the crash-ordering rules.
#![deny(missing_docs)]

mod bitmap;
mod codec;
mod crc;
mod dir;
mod error;
mod extent;
mod inode;
mod journal;
mod superblock;

// Glob re-exports: a user (the kernel) may not need every part yet.
#[allow(unused_imports)]
pub use self::bitmap::*;
#[allow(unused_imports)]
pub use self::crc::*;
#[allow(unused_imports)]
pub use self::dir::*;
#[allow(unused_imports)]
pub use self::error::*;
#[allow(unused_imports)]
pub use self::extent::*;
#[allow(unused_imports)]
pub use self::inode::*;
#[allow(unused_imports)]
pub use self::journal::*;
#[allow(unused_imports)]
pub use self::superblock::*;

/// Size of every block, in bytes.
pub const BLOCK_SIZE: usize = 4096;
/// `BLOCK_SIZE` as a `u64`, for block arithmetic.
pub const BLOCK_SIZE_U64: u64 = 4096;
/// log2 of `BLOCK_SIZE`.
pub const BLOCK_SHIFT: u32 = 12;
/// Blocks per 2 MiB huge page (the PMD size on x86-64).
pub const HUGE_BLOCKS: u64 = 512;

const _: () = assert!(1 << BLOCK_SHIFT == BLOCK_SIZE);
const _: () = assert!(BLOCK_SIZE as u64 == BLOCK_SIZE_U64);
const _: () = assert!(HUGE_BLOCKS * BLOCK_SIZE_U64 == 2 * 1024 * 1024);
