//! Unclean shutdown with an unlinked-but-open file (two boots on the same
//! NVDIMM backing file).
//!
//! `crash-prepare` leaves rdaxfs mounted with a 4 MiB file that is unlinked
//! but held open by a background process; the guest then powers off
//! without unmounting. `crash-recover`, in the next boot, mounts: the
//! orphan must be reclaimed (free counts back to what they were without
//! it), the kept file intact, and after unmount fsck clean.

use crate::ensure;
use crate::util::*;
use std::fs;
use std::process::{Command, Stdio};

const KEEP: &str = "/mnt/keep";
const EXPECT: &str = "/mnt/expect";
const ORPHAN: &str = "/mnt/orphan";

fn keep_data() -> Vec<u8> {
    (0..1 << 20).map(|i: usize| (i * 13 + 5) as u8).collect()
}

/// Boot 1: leaves an orphan on a mounted filesystem.
pub fn prepare() -> TestResult {
    load_module(&[])?;
    fresh_mount()?;
    ctx(fs::write(KEEP, keep_data()), "write keep")?;
    // Fixed-width record so rewriting it does not change block usage.
    ctx(
        fs::write(EXPECT, format!("{:>20} {:>20}\n", 0, 0)),
        "write expect",
    )?;
    let (blocks, inodes) = free_counts(MNT)?;
    ctx(
        fs::write(EXPECT, format!("{blocks:>20} {inodes:>20}\n")),
        "rewrite expect",
    )?;
    ctx(fs::write(ORPHAN, vec![0xa5u8; 4 << 20]), "write orphan")?;
    // A process keeps the file open across the "crash".
    Command::new("sh")
        .args(["-c", &format!("exec 3<{ORPHAN}; sleep 100000")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn holder: {e}"))?;
    std::thread::sleep(std::time::Duration::from_millis(500));
    ctx(fs::remove_file(ORPHAN), "unlink orphan")?;
    let (b, i) = free_counts(MNT)?;
    ensure!(
        b + 1024 <= blocks && i < inodes,
        "the open orphan's blocks/inode were freed early: {b}/{i} free, {blocks}/{inodes} before"
    );
    // Dirty metadata reaches pmem write-through; the superblock says dirty.
    println!("crash-prepare: orphan of 4 MiB held open; free without it: {blocks} blocks, {inodes} inodes; powering off mounted");
    Ok(())
}

/// Boot 2: mounting reclaims the orphan.
pub fn recover() -> TestResult {
    load_module(&[])?;
    let mark = dmesg_mark("crash-recover");
    mount(PMEM, MNT, "rdaxfs", "").map_err(|e| format!("mount after unclean shutdown: {e}"))?;
    let log = dmesg_since(&mark);
    no_oops(&log)?;
    ensure!(
        log.iter().any(|l| l.contains("reclaiming orphan inode")),
        "no orphan reclaimed at mount; log: {log:?}"
    );
    let expect = ctx(fs::read_to_string(EXPECT), "read expect")?;
    let want: Vec<u64> = expect
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    ensure!(want.len() == 2, "expect file unreadable: {expect:?}");
    let (b, i) = free_counts(MNT)?;
    ensure!(
        b == want[0] && i == want[1],
        "after recovery {b} blocks/{i} inodes free, want {}/{} (orphan leaked?)",
        want[0],
        want[1]
    );
    ensure!(
        ctx(fs::read(KEEP), "read keep")? == keep_data(),
        "kept file changed across the unclean shutdown"
    );
    ensure!(
        fs::metadata(ORPHAN).is_err(),
        "the unlinked file is visible again"
    );
    umount(MNT).map_err(|e| format!("umount: {e}"))?;
    fsck_clean(PMEM)?;
    println!(
        "crash-recover: orphan reclaimed at mount, free counts {b}/{i} as before it, fsck clean"
    );
    Ok(())
}
