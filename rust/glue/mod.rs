//! The thin layer between rdaxfs and the kernel's C APIs.
//!
//! Every `unsafe` block of rdaxfs lives below this module: `extern "C"`
//! trampolines with a `# Safety` section saying what the caller (the VFS,
//! iomap or DAX code) guarantees, and typed wrappers whose safe methods keep
//! those guarantees. The filesystem modules above it are safe Rust.

pub(crate) mod bindings;
pub(crate) mod fs;
