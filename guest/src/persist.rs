//! persist: a tree written and fsynced survives umount + mount intact,
//! and fsck finds the filesystem clean afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::ensure;
use crate::util::*;

/// Directories of the tree (parents first) and their modes.
const DIRS: &[(&str, u32)] = &[
    ("a", 0o755),
    ("a/b", 0o700),
    ("a/b/c", 0o750),
    ("d", 0o755),
    ("d/e", 0o711),
    ("d/e/f", 0o755),
];
/// Regular files in the tree.
const FILES: usize = 50;
/// File sizes, cycled through (block edges, holes' worth, up to 1 MiB).
const SIZES: &[usize] = &[
    0,
    1,
    511,
    4095,
    4096,
    4097,
    8195,
    65_536,
    100_000,
    262_161,
    1 << 20,
    (1 << 20) - 1,
    12_288,
    777_777,
];
const MODES: &[u32] = &[0o644, 0o600, 0o755, 0o400, 0o640, 0o1777, 0o2755];
/// The symlink, its target, and the hard link (second name of file 0).
const SYMLINK: (&str, &str) = ("a/link", "b/c/f3");
const HARDLINK: &str = "d/e/hard";

/// Path, size and mode of file `i`.
fn file(i: usize) -> (String, usize, u32) {
    let dir = match i % (DIRS.len() + 1) {
        0 => String::new(),
        k => format!("{}/", DIRS[k - 1].0),
    };
    let name = if i == 3 {
        format!("{dir}f3")
    } else {
        format!("{dir}file-{i:02}")
    };
    (name, SIZES[i % SIZES.len()], MODES[i % MODES.len()])
}

fn mtime(i: usize) -> (i64, i64) {
    (1_600_000_000 + i as i64 * 3601, i as i64 * 1_000_003)
}

/// Writes the tree into `root` (an empty directory) and fsyncs every file
/// and directory. Returns the bytes of file data written.
pub fn write_tree(root: &Path) -> Result<u64, String> {
    for (d, mode) in DIRS {
        let p = root.join(d);
        ctx(fs::create_dir(&p), format!("mkdir {d}"))?;
        ctx(
            fs::set_permissions(&p, fs::Permissions::from_mode(*mode)),
            format!("chmod {d}"),
        )?;
    }
    let mut bytes = 0u64;
    for i in 0..FILES {
        let (name, size, mode) = file(i);
        let p = root.join(&name);
        let mut data = vec![0u8; size];
        fill_pattern(&mut data, 1000 + i as u64, 0);
        let mut f = ctx(fs::File::create(&p), &name)?;
        // Write in uneven pieces so extents are built up incrementally.
        for piece in data.chunks(12_345) {
            ctx(f.write_all(piece), format!("write {name}"))?;
        }
        ctx(
            f.set_permissions(fs::Permissions::from_mode(mode)),
            format!("chmod {name}"),
        )?;
        ctx(f.sync_all(), format!("fsync {name}"))?;
        drop(f);
        ctx(
            set_times(&p, mtime(i), mtime(i)),
            format!("utimensat {name}"),
        )?;
        bytes += size as u64;
    }
    let (first, _, _) = file(0);
    ctx(
        fs::hard_link(root.join(&first), root.join(HARDLINK)),
        "link",
    )?;
    ctx(
        std::os::unix::fs::symlink(SYMLINK.1, root.join(SYMLINK.0)),
        "symlink",
    )?;
    // fsync the inodes whose times changed, then directories bottom-up.
    for i in 0..FILES {
        let p = root.join(file(i).0);
        ctx(
            fs::File::open(&p).and_then(|f| f.sync_all()),
            format!("fsync {}", p.display()),
        )?;
    }
    for (d, _) in DIRS.iter().rev() {
        ctx(
            fs::File::open(root.join(d)).and_then(|f| f.sync_all()),
            format!("fsync dir {d}"),
        )?;
    }
    ctx(
        fs::File::open(root).and_then(|f| f.sync_all()),
        "fsync root",
    )?;
    Ok(bytes)
}

/// Names expected in each directory of the tree ("" is the root).
fn expected_names() -> BTreeMap<String, BTreeSet<String>> {
    let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    m.insert(String::new(), BTreeSet::new());
    let mut add = |path: &str| {
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (d.to_string(), n.to_string()),
            None => (String::new(), path.to_string()),
        };
        m.entry(dir).or_default().insert(name);
    };
    for (d, _) in DIRS {
        add(d);
    }
    for i in 0..FILES {
        add(&file(i).0);
    }
    add(HARDLINK);
    add(SYMLINK.0);
    for (d, _) in DIRS {
        m.entry(d.to_string()).or_default();
    }
    m
}

/// Checks that `root` holds exactly the tree [`write_tree`] wrote.
pub fn verify_tree(root: &Path) -> TestResult {
    let expected = expected_names();
    for (dir, want) in &expected {
        let p = root.join(dir);
        let mut got = BTreeSet::new();
        for e in ctx(fs::read_dir(&p), format!("readdir {dir:?}"))? {
            got.insert(
                ctx(e, "readdir")?
                    .file_name()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        ensure!(
            &got == want,
            "directory {dir:?} lists {got:?}, expected {want:?}"
        );
        let m = ctx(fs::symlink_metadata(&p), format!("stat {dir:?}"))?;
        let subdirs = DIRS
            .iter()
            .filter(|(d, _)| match d.rsplit_once('/') {
                Some((parent, _)) => parent == dir,
                None => dir.is_empty(),
            })
            .count() as u64;
        ensure!(m.is_dir(), "{dir:?} is not a directory");
        ensure!(
            m.nlink() == 2 + subdirs,
            "directory {dir:?} nlink {} expected {}",
            m.nlink(),
            2 + subdirs
        );
        if let Some((_, mode)) = DIRS.iter().find(|(d, _)| d == dir) {
            ensure!(
                m.mode() & 0o7777 == *mode,
                "directory {dir:?} mode {:o} expected {mode:o}",
                m.mode() & 0o7777
            );
        }
    }
    for i in 0..FILES {
        let (name, size, mode) = file(i);
        let p = root.join(&name);
        let m = ctx(fs::symlink_metadata(&p), format!("stat {name}"))?;
        ensure!(m.is_file(), "{name} is not a regular file");
        ensure!(
            m.len() == size as u64,
            "{name}: size {} expected {size}",
            m.len()
        );
        ensure!(
            m.mode() & 0o7777 == mode,
            "{name}: mode {:o} expected {mode:o}",
            m.mode() & 0o7777
        );
        let links = if i == 0 { 2 } else { 1 };
        ensure!(
            m.nlink() == links,
            "{name}: nlink {} expected {links}",
            m.nlink()
        );
        ensure!(
            (m.mtime(), m.mtime_nsec()) == mtime(i),
            "{name}: mtime {}.{:09} expected {}.{:09}",
            m.mtime(),
            m.mtime_nsec(),
            mtime(i).0,
            mtime(i).1
        );
        ensure!(
            m.blocks() * 512 >= size as u64,
            "{name}: {} bytes allocated for {size} bytes",
            m.blocks() * 512
        );
        let data = ctx(fs::read(&p), format!("read {name}"))?;
        ensure!(
            data.len() == size,
            "{name}: read {} bytes, expected {size}",
            data.len()
        );
        if let Some(e) = check_pattern(&data, 1000 + i as u64, 0) {
            return Err(format!("{name}: {e}"));
        }
    }
    let (first, _, _) = file(0);
    let a = ctx(fs::metadata(root.join(&first)), "stat")?;
    let b = ctx(fs::symlink_metadata(root.join(HARDLINK)), "stat hard link")?;
    ensure!(
        a.ino() == b.ino(),
        "{HARDLINK} is inode {}, {first} is inode {}",
        b.ino(),
        a.ino()
    );
    let l = ctx(fs::symlink_metadata(root.join(SYMLINK.0)), "lstat symlink")?;
    ensure!(l.file_type().is_symlink(), "{} is not a symlink", SYMLINK.0);
    let target = ctx(fs::read_link(root.join(SYMLINK.0)), "readlink")?;
    ensure!(
        target.as_os_str() == SYMLINK.1,
        "{} -> {target:?}, expected {}",
        SYMLINK.0,
        SYMLINK.1
    );
    let via = ctx(fs::read(root.join(SYMLINK.0)), "read through symlink")?;
    ensure!(
        check_pattern(&via, 1003, 0).is_none() && via.len() == file(3).1,
        "symlink does not lead to f3's data"
    );
    Ok(())
}

/// Write, fsync, remount, verify, fsck.
pub fn persist() -> TestResult {
    let _fx = Fixture::new()?;
    fresh_mount()?;
    let root = Path::new(MNT);
    let bytes = write_tree(root)?;
    verify_tree(root).map_err(|e| format!("before remount: {e}"))?;
    let before = free_counts(MNT)?;
    ctx(umount(MNT), "umount")?;
    ctx(mount(PMEM, MNT, "rdaxfs", ""), "mount again")?;
    verify_tree(root).map_err(|e| format!("after remount: {e}"))?;
    let after = free_counts(MNT)?;
    ensure!(
        before == after,
        "free (blocks, inodes) {before:?} before umount, {after:?} after mount"
    );
    ctx(umount(MNT), "umount")?;
    fsck_clean(PMEM)?;
    println!(
        "persist: {} dirs, {FILES} files ({bytes} bytes), symlink, hard link survived remount; free (blocks, inodes) {after:?}",
        DIRS.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_round_trip_on_host_fs() {
        assert_eq!(file(3).0, "a/b/c/f3");
        let t = TempDir::new("persist");
        let bytes = write_tree(&t.0).unwrap();
        assert!(bytes > 5 << 20);
        verify_tree(&t.0).unwrap();
        // The verifier notices damage.
        fs::write(t.0.join("a/b/c/f3"), b"changed").unwrap();
        assert!(verify_tree(&t.0).is_err());
    }
}
