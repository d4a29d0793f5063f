//! Shared helpers of the tools integration tests.
#![allow(dead_code)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

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

/// Compares a host tree with the image, entry by entry; counts entries.
pub fn compare<D: Dev>(fs: &mut Fs<D>, host: &Path, path: &str, checked: &mut usize) {
    for e in std::fs::read_dir(host).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        let hp = e.path();
        let ip = format!("{path}/{name}");
        let hm = std::fs::symlink_metadata(&hp).unwrap();
        let ino = fs.resolve(&ip).unwrap_or_else(|err| panic!("{ip}: {err}"));
        let inode = fs.read_inode(ino).unwrap();
        assert_eq!(inode.mode, hm.mode(), "{ip}: mode");
        assert_eq!((inode.uid, inode.gid), (hm.uid(), hm.gid()), "{ip}: owner");
        assert_eq!(
            (inode.mtime.sec, inode.mtime.nsec as i64),
            (hm.mtime(), hm.mtime_nsec()),
            "{ip}: mtime"
        );
        *checked += 1;
        if hm.is_dir() {
            compare(fs, &hp, &ip, checked);
        } else if hm.file_type().is_symlink() {
            let t = std::fs::read_link(&hp).unwrap();
            assert_eq!(
                fs.read_file(ino).unwrap(),
                t.as_os_str().as_encoded_bytes(),
                "{ip}: target"
            );
        } else if !hm.file_type().is_file() {
            assert_eq!(inode.size, 0, "{ip}: special file size");
        } else {
            assert_eq!(inode.nlink as u64, hm.nlink(), "{ip}: nlink");
            assert!(
                fs.read_file(ino).unwrap() == std::fs::read(&hp).unwrap(),
                "{ip}: contents"
            );
        }
    }
}

/// Writes a random host tree of `n` entries under `root`.
pub fn random_host_tree(rng: &mut rdaxfs_tools::testutil::Rng, root: &Path, n: usize) {
    use std::os::unix::fs::PermissionsExt;
    let mut dirs = vec![root.to_path_buf()];
    let mut files = Vec::new();
    for i in 0..n {
        let parent = dirs[rng.below(dirs.len() as u64) as usize].clone();
        let p = parent.join(rdaxfs_tools::testutil::random_name(rng, i));
        match rng.below(12) {
            0..=2 => {
                std::fs::create_dir(&p).unwrap();
                dirs.push(p);
            }
            3 => std::os::unix::fs::symlink(format!("../x/{i}"), &p).unwrap(),
            4 if !files.is_empty() => {
                let f: &PathBuf = &files[rng.below(files.len() as u64) as usize];
                std::fs::hard_link(f, &p).unwrap();
            }
            _ => {
                let len = match rng.below(20) {
                    0 => 0,
                    1 => 4096 * (1 + rng.below(600)),
                    _ => rng.below(9000),
                };
                let mut data = vec![0u8; len as usize];
                rng.fill(&mut data);
                std::fs::write(&p, &data).unwrap();
                let mode = 0o400 | (rng.below(0o400) as u32);
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
                files.push(p);
            }
        }
    }
}
