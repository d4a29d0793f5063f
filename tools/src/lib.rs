//! Userspace access to rdaxfs images: block devices, image files and
//! in-memory images, shared by `mkfs.rdaxfs`, `fsck.rdaxfs`,
//! `dump.rdaxfs`, the host tests and guest test programs.

pub mod build;
pub mod crashstate;
pub mod dev;
pub mod fs;
pub mod fsck;
pub mod mkfs;
pub mod recover;

pub use rdaxfs_format as format;

pub use dev::{Dev, FileDev, MemDev, SparseDev};
pub use fs::{Error, Fs, Result};

pub mod testutil;
