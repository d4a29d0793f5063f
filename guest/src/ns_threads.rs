//! namespace-threads: many threads changing one directory and one file at
//! once. Every call must succeed, link counts must come out right, nothing
//! may leak, and fsck must find the filesystem clean afterwards.
//!
//! Phases (each with `RDAXFS_NS_THREADS` threads, default 4, and
//! `RDAXFS_NS_ITERS` iterations each, default 150):
//! 1. create (O_TRUNC) + write 8 KiB + close + unlink, own names;
//! 2. create + write + rename over one shared target name;
//! 3. link + unlink of one shared file under per-thread names;
//! 4. mkdir + rmdir, own names, while another thread lists the directory;
//! 5. open, unlinked files: create + unlink while open + write + close.

use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use crate::ensure;
use crate::util::*;

type Worker = fn(&Path, usize, u64) -> Result<(), String>;

fn run_threads(dir: &Path, threads: usize, iters: u64, what: &str, f: Worker) -> TestResult {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let d = dir.to_path_buf();
            thread::spawn(move || f(&d, t, iters))
        })
        .collect();
    let mut errs = Vec::new();
    for (t, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errs.push(format!("thread {t}: {e}")),
            Err(_) => errs.push(format!("thread {t} panicked")),
        }
    }
    ensure!(errs.is_empty(), "{what}: {}", errs.join("; "));
    println!("{what}: {threads} threads x {iters} iterations, no error");
    Ok(())
}

fn data(t: usize, k: u64) -> Vec<u8> {
    let mut b = vec![0u8; 2 * BLOCK];
    fill_pattern(&mut b, (t as u64) << 32 | k, 0);
    b
}

fn create_write_unlink(dir: &Path, t: usize, iters: u64) -> Result<(), String> {
    for k in 0..iters {
        let p = dir.join(format!("c{t}-{}", k % 8));
        let f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .map_err(|e| format!("iteration {k}: create {}: {e}", p.display()))?;
        f.write_all_at(&data(t, k), 0)
            .map_err(|e| format!("iteration {k}: write: {e}"))?;
        drop(f);
        fs::remove_file(&p).map_err(|e| format!("iteration {k}: unlink {}: {e}", p.display()))?;
    }
    Ok(())
}

fn rename_over(dir: &Path, t: usize, iters: u64) -> Result<(), String> {
    let target = dir.join("target");
    for k in 0..iters {
        let p = dir.join(format!("r{t}"));
        fs::write(&p, data(t, k))
            .map_err(|e| format!("iteration {k}: write {}: {e}", p.display()))?;
        fs::rename(&p, &target).map_err(|e| format!("iteration {k}: rename over target: {e}"))?;
    }
    Ok(())
}

fn link_unlink(dir: &Path, t: usize, iters: u64) -> Result<(), String> {
    let shared = dir.join("shared");
    for k in 0..iters {
        let p = dir.join(format!("l{t}"));
        fs::hard_link(&shared, &p).map_err(|e| format!("iteration {k}: link: {e}"))?;
        fs::remove_file(&p).map_err(|e| format!("iteration {k}: unlink link: {e}"))?;
    }
    Ok(())
}

fn mkdir_rmdir(dir: &Path, t: usize, iters: u64) -> Result<(), String> {
    for k in 0..iters {
        let p = dir.join(format!("d{t}-{}", k % 4));
        fs::create_dir(&p).map_err(|e| format!("iteration {k}: mkdir {}: {e}", p.display()))?;
        fs::write(p.join("f"), b"x")
            .map_err(|e| format!("iteration {k}: create in subdir: {e}"))?;
        fs::remove_file(p.join("f"))
            .map_err(|e| format!("iteration {k}: unlink in subdir: {e}"))?;
        fs::remove_dir(&p).map_err(|e| format!("iteration {k}: rmdir {}: {e}", p.display()))?;
    }
    Ok(())
}

fn open_unlinked(dir: &Path, t: usize, iters: u64) -> Result<(), String> {
    for k in 0..iters {
        let p = dir.join(format!("o{t}"));
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .map_err(|e| format!("iteration {k}: create: {e}"))?;
        fs::remove_file(&p).map_err(|e| format!("iteration {k}: unlink while open: {e}"))?;
        let d = data(t, k);
        f.write_all_at(&d, 0)
            .map_err(|e| format!("iteration {k}: write after unlink: {e}"))?;
        let mut back = vec![0u8; d.len()];
        f.read_exact_at(&mut back, 0)
            .map_err(|e| format!("iteration {k}: read after unlink: {e}"))?;
        if back != d {
            return Err(format!("iteration {k}: unlinked file reads back wrong"));
        }
    }
    Ok(())
}

/// The test: every phase on one directory of a fresh filesystem.
pub fn namespace_threads() -> TestResult {
    let _fx = Fixture::new()?;
    fresh_mount()?;
    let threads = env_u64("RDAXFS_NS_THREADS", 4) as usize;
    let iters = env_u64("RDAXFS_NS_ITERS", 150);
    let dir = PathBuf::from(MNT).join("busy");
    ctx(fs::create_dir(&dir), "mkdir busy")?;
    // The directory's first block stays once it exists (directories do not
    // shrink): allocate it before the free counts are taken.
    ctx(fs::write(dir.join("first"), b""), "create first")?;
    ctx(fs::remove_file(dir.join("first")), "unlink first")?;
    let (free0, ifree0) = free_counts(MNT)?;

    run_threads(
        &dir,
        threads,
        iters,
        "create/write/unlink",
        create_write_unlink,
    )?;
    run_threads(&dir, threads, iters, "rename over one target", rename_over)?;
    let m = ctx(fs::metadata(dir.join("target")), "stat target")?;
    ensure!(m.nlink() == 1, "target has {} links, expected 1", m.nlink());
    ctx(fs::remove_file(dir.join("target")), "unlink target")?;

    ctx(fs::write(dir.join("shared"), b"shared"), "create shared")?;
    run_threads(&dir, threads, iters, "link/unlink of one file", link_unlink)?;
    let m = ctx(fs::metadata(dir.join("shared")), "stat shared")?;
    ensure!(m.nlink() == 1, "shared has {} links, expected 1", m.nlink());
    ctx(fs::remove_file(dir.join("shared")), "unlink shared")?;

    let stop = Arc::new(AtomicBool::new(false));
    let lister = {
        let (d, stop) = (dir.clone(), stop.clone());
        thread::spawn(move || -> Result<u64, String> {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                for e in fs::read_dir(&d).map_err(|e| format!("readdir: {e}"))? {
                    e.map_err(|e| format!("readdir entry: {e}"))?;
                }
                n += 1;
            }
            Ok(n)
        })
    };
    let res = run_threads(
        &dir,
        threads,
        iters / 2,
        "mkdir/rmdir while listing",
        mkdir_rmdir,
    );
    stop.store(true, Ordering::Relaxed);
    let listed = lister.join().map_err(|_| "lister panicked".to_string())??;
    res?;
    println!("listed the directory {listed} times meanwhile");
    let m = ctx(fs::metadata(&dir), "stat busy")?;
    ensure!(
        m.nlink() == 2,
        "busy has {} links after all rmdirs, expected 2",
        m.nlink()
    );

    run_threads(&dir, threads, iters, "open unlinked files", open_unlinked)?;

    let left = ctx(fs::read_dir(&dir), "readdir busy")?.count();
    ensure!(left == 0, "{left} entries left in busy");
    let (free1, ifree1) = free_counts(MNT)?;
    ensure!(
        (free1, ifree1) == (free0, ifree0),
        "leaked: free blocks {free0} -> {free1}, free inodes {ifree0} -> {ifree1}"
    );
    ctx(umount(MNT), "umount")?;
    fsck_clean(PMEM)
}
