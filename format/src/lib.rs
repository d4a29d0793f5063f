//! rdaxfs on-disk format (shared by the kernel module and userspace tools).
#![no_std]
#![forbid(unsafe_code)]
mod layout;
pub use layout::*;
