//! namespace-errors: every namespace operation that fails leaves the
//! namespace exactly as it was.
//!
//! With the test-only `inject_tx_error=N`, every Nth metadata transaction
//! fails with EIO before it commits. A seeded random sequence of create,
//! mkdir, symlink, mknod, link, unlink, rmdir and rename (plain, over a
//! file or an empty directory, NOREPLACE, EXCHANGE, across directories)
//! runs on a small tree. After each call the whole tree (names, inode
//! numbers, types, link counts, sizes) and the free block/inode counts are
//! compared with the snapshot before it: a failed call must have changed
//! nothing, a successful one is taken as the new state. At the end the
//! filesystem is remounted (the tree must be the last snapshot) and fsck
//! must find it clean.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::ensure;
use crate::util::*;

/// (inode, mode, nlink, size) of every path under the root.
type Tree = BTreeMap<String, (u64, u32, u64, u64)>;

fn walk(root: &Path, rel: &str, out: &mut Tree) -> Result<(), String> {
    let dir = root.join(rel);
    for e in fs::read_dir(&dir).map_err(|e| format!("readdir {}: {e}", dir.display()))? {
        let e = e.map_err(|e| format!("readdir entry: {e}"))?;
        let name = format!("{rel}/{}", e.file_name().to_string_lossy());
        let m = fs::symlink_metadata(root.join(&name)).map_err(|e| format!("lstat {name}: {e}"))?;
        out.insert(name.clone(), (m.ino(), m.mode(), m.nlink(), m.size()));
        if m.is_dir() {
            walk(root, &name, out)?;
        }
    }
    Ok(())
}

struct State {
    tree: Tree,
    free: (u64, u64),
}

fn snapshot(root: &Path) -> Result<State, String> {
    let mut tree = Tree::new();
    walk(root, ".", &mut tree)?;
    let root_m = fs::metadata(root).map_err(|e| format!("stat root: {e}"))?;
    tree.insert(
        ".".into(),
        (root_m.ino(), root_m.mode(), root_m.nlink(), root_m.size()),
    );
    Ok(State {
        tree,
        free: free_counts(root)?,
    })
}

fn diff(a: &Tree, b: &Tree) -> String {
    let mut out = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => out.push(format!("-{k}")),
            Some(w) if w != v => out.push(format!("~{k} {v:?} -> {w:?}")),
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        out.push(format!("+{k}"));
    }
    out.join(", ")
}

fn mkfifo(p: &Path) -> std::io::Result<()> {
    let c: CString = cstr(p);
    // SAFETY: valid NUL-terminated path.
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    check_rc(r.into()).map(|_| ())
}

/// One random operation on names in `a/`, `b/` and the root.
fn op(root: &Path, rng: &mut Rng) -> (String, std::io::Result<()>) {
    const DIRS: [&str; 3] = [".", "a", "b"];
    let name = |rng: &mut Rng| {
        let d = DIRS[rng.below(3) as usize];
        root.join(d).join(format!("n{}", rng.below(5)))
    };
    let (p, q) = (name(rng), name(rng));
    let what = rng.below(10);
    let desc = format!("{what} {} {}", p.display(), q.display());
    let r = match what {
        // O_NONBLOCK: the name may be a FIFO (ENXIO instead of waiting).
        0 => fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&p)
            .map(drop),
        1 => fs::create_dir(&p),
        2 => symlink("target", &p),
        3 => mkfifo(&p),
        4 => fs::hard_link(&p, &q),
        5 => fs::remove_file(&p),
        6 => fs::remove_dir(&p),
        7 => fs::rename(&p, &q),
        8 => renameat2(&p, &q, libc::RENAME_NOREPLACE),
        _ => renameat2(&p, &q, libc::RENAME_EXCHANGE),
    };
    (desc, r)
}

fn kmsg(line: &str) {
    let _ = fs::write("/dev/kmsg", line);
}

/// The test.
pub fn namespace_errors() -> TestResult {
    let mut fx = Fixture::new()?;
    fresh_mount()?;
    let root = Path::new(MNT);
    for d in ["a", "b"] {
        ctx(fs::create_dir(root.join(d)), "mkdir")?;
    }
    let ops = env_u64("RDAXFS_NSERR_OPS", 1500);
    let seed = env_u64("RDAXFS_NSERR_SEED", clock_seed());
    println!("seed {seed}, {ops} operations, every 3rd transaction fails");
    kmsg(&format!("namespace-errors: seed {seed}"));
    let mut rng = Rng::new(seed);
    fx.set_param("inject_tx_error", "3")?;
    // A watchdog: a call that never returns is reported in the kernel log
    // with the thread's state, wait channel and syscall.
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    {
        let progress = progress.clone();
        std::thread::spawn(move || {
            let mut last = u64::MAX;
            loop {
                std::thread::sleep(std::time::Duration::from_secs(10));
                let now = progress.load(std::sync::atomic::Ordering::Relaxed);
                if now == last {
                    for f in ["stat", "wchan", "syscall", "stack"] {
                        let s = fs::read_to_string(format!("/proc/self/task/{tid}/{f}"))
                            .unwrap_or_default();
                        kmsg(&format!("namespace-errors: stalled at {now}: {f}: {s}"));
                    }
                }
                last = now;
            }
        });
    }
    let mut state = snapshot(root)?;
    let (mut ok, mut eio, mut other) = (0, 0, 0);
    for i in 0..ops {
        let (desc, r) = op(root, &mut rng);
        if i % 100 == 0 {
            kmsg(&format!("namespace-errors: op {i}: {desc}: {r:?}"));
        }
        progress.store(2 * i + 1, std::sync::atomic::Ordering::Relaxed);
        let now = snapshot(root)?;
        progress.store(2 * i + 2, std::sync::atomic::Ordering::Relaxed);
        match r {
            Ok(()) => ok += 1,
            Err(e) => {
                if e.raw_os_error() == Some(libc::EIO) {
                    eio += 1;
                } else {
                    other += 1;
                }
                ensure!(
                    now.tree == state.tree,
                    "op {i} ({desc}) failed ({e}) but changed the tree: {}",
                    diff(&state.tree, &now.tree)
                );
                ensure!(
                    now.free == state.free,
                    "op {i} ({desc}) failed ({e}) but free (blocks, inodes) went {:?} -> {:?}",
                    state.free,
                    now.free
                );
            }
        }
        state = now;
    }
    fx.reset_params()?;
    println!("{ok} succeeded, {eio} failed with the injected EIO, {other} with other errors; every failure changed nothing");
    ensure!(
        eio > ops / 10,
        "only {eio} injected failures: the switch did not act"
    );
    ctx(umount(MNT), "umount")?;
    ctx(mount(PMEM, MNT, "rdaxfs", ""), "remount")?;
    let after = snapshot(root)?;
    ensure!(
        after.tree == state.tree,
        "the tree changed across remount: {}",
        diff(&state.tree, &after.tree)
    );
    ctx(umount(MNT), "umount")?;
    fsck_clean(PMEM)
}
