//! Shared helpers of the tools integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use rdaxfs_tools::fsck::{check, Options, Report};
use rdaxfs_tools::{Dev, Fs};

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("rdaxfs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn fsck_n<D: Dev>(dev: &mut D) -> Report {
    check(
        dev,
        Options {
            repair: false,
            verbose: false,
        },
    )
    .unwrap()
}

pub fn fsck_y<D: Dev>(dev: &mut D) -> Report {
    check(
        dev,
        Options {
            repair: true,
            verbose: false,
        },
    )
    .unwrap()
}

pub fn messages(r: &Report) -> String {
    r.problems.iter().map(|p| format!("{}\n", p.msg)).collect()
}

/// Runs `f` on the opened filesystem and gives the device back.
pub fn edit<D: Dev, T>(dev: D, f: impl FnOnce(&mut Fs<D>) -> T) -> (D, T) {
    let mut fs = Fs::open(dev).unwrap();
    let t = f(&mut fs);
    (fs.dev, t)
}
