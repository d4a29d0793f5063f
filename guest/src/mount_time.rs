//! Mount time after an unclean shutdown, against the number of files
//! (scripts/mount-time.sh, `make mount-time`). Like the power-cut loop's
//! steps these run only in their own boots:
//!
//! - `mount-time-work`: makes a filesystem holding `RDAXFS_MT_FILES` empty
//!   files (built in tmpfs and copied in by `mkfs.rdaxfs -d`, much faster
//!   under TCG than creating them through the kernel), unless
//!   `RDAXFS_MT_REUSE=1` keeps the filesystem of the previous cut; mounts
//!   it, keeps `ORPHANS` files open after unlinking them (so the cut leaves
//!   orphans) and runs a metadata workload until the host kills QEMU. With
//!   `RDAXFS_MT_COMMIT_DELAY_US` set, every commit waits that long before
//!   its in-place stores (module parameter `test_commit_delay_us`), so the
//!   cut likely leaves a committed transaction to replay.
//! - `mount-time-check`: mounts what the cut left (no fsck first) and
//!   prints the kernel's mount line (log replay bytes, orphans reclaimed,
//!   mount time) as one `MT-RESULT` line, plus the files it can see.

use crate::util::*;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::time::Instant;

/// Files left open after unlink when the power goes.
const ORPHANS: usize = 8;
/// Directories the files are spread over.
const DIRS: usize = 100;

/// The entry points: `None` if `name` is none of them.
pub fn dispatch(name: &str) -> Option<TestResult> {
    Some(match name {
        "mount-time-work" => work(),
        "mount-time-check" => check(),
        _ => return None,
    })
}

/// One line on the serial console, drained before returning (the host
/// kills QEMU soon after it sees it).
fn console(s: &str) -> TestResult {
    let mut f = ctx(
        OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open("/dev/ttyS0"),
        "/dev/ttyS0",
    )?;
    ctx(f.write_all(format!("{s}\n").as_bytes()), "console")?;
    // SAFETY: tcdrain on a descriptor we own.
    unsafe { libc::tcdrain(f.as_raw_fd()) };
    Ok(())
}

/// The tree mkfs copies in: `DIRS` directories, `files` empty files.
fn build_tree(root: &str, files: u64) -> TestResult {
    let _ = fs::remove_dir_all(root);
    ctx(fs::create_dir_all(root), root)?;
    for d in 0..DIRS {
        ctx(fs::create_dir(format!("{root}/d{d:03}")), "mkdir")?;
    }
    for i in 0..files {
        let p = format!("{root}/d{:03}/f{i:06}", i as usize % DIRS);
        ctx(File::create(&p), &p)?;
    }
    Ok(())
}

fn work() -> TestResult {
    let files = env_u64("RDAXFS_MT_FILES", 0);
    load_module(&[])?;
    umount_all(MNT);
    if env_u64("RDAXFS_MT_REUSE", 0) == 0 {
        let t = Instant::now();
        build_tree("/tmp/mt", files)?;
        // Room for the files plus the workload (default: one per 16 KiB).
        let inodes = (files + 40_000).to_string();
        run(
            MKFS,
            &[PMEM, "--force", "--inodes", &inodes, "-d", "/tmp/mt"],
        )?;
        let _ = fs::remove_dir_all("/tmp/mt");
        console(&format!(
            "MT-POPULATED files={files} in {:.1} s",
            t.elapsed().as_secs_f64()
        ))?;
    }
    ctx(mount(PMEM, MNT, "rdaxfs", ""), "mount")?;
    // Each commit waits this long before its in-place stores, so the cut
    // likely leaves a committed transaction for the next mount to replay.
    let delay = env_u64("RDAXFS_MT_COMMIT_DELAY_US", 0);
    if delay > 0 {
        set_param("test_commit_delay_us", &delay.to_string())?;
    }
    let w = format!("{MNT}/w");
    let _ = fs::remove_dir_all(&w);
    ctx(fs::create_dir(&w), &w)?;
    // Orphans: unlinked while open, so the cut leaves them on the list.
    let mut held = Vec::new();
    let block = vec![0x6bu8; BLOCK];
    for i in 0..ORPHANS {
        let p = format!("{w}/orphan{i}");
        let mut f = create_rw(p.as_ref())?;
        ctx(f.write_all(&block), &p)?;
        ctx(fs::remove_file(&p), &p)?;
        held.push(f);
    }
    console(&format!("MT-START files={files} orphans={ORPHANS}"))?;
    // Metadata in flight until the power goes: create+write+fsync, rename,
    // link, unlink, mkdir/rmdir, truncate.
    let mut i: u64 = 0;
    loop {
        let a = format!("{w}/a{i}");
        let mut f = create_rw(a.as_ref())?;
        ctx(f.write_all(&block), &a)?;
        ctx(f.sync_all(), &a)?;
        ctx(f.set_len(0), &a)?;
        drop(f);
        let b = format!("{w}/b{i}");
        ctx(fs::rename(&a, &b), &a)?;
        let l = format!("{w}/l{i}");
        ctx(fs::hard_link(&b, &l), &b)?;
        let d = format!("{w}/d{i}");
        ctx(fs::create_dir(&d), &d)?;
        if i >= 16 {
            let j = i - 16;
            ctx(fs::remove_file(format!("{w}/b{j}")), "unlink")?;
            ctx(fs::remove_file(format!("{w}/l{j}")), "unlink")?;
            ctx(fs::remove_dir(format!("{w}/d{j}")), "rmdir")?;
        }
        i += 1;
    }
}

/// Counts the entries of the `DIRS` directories.
fn count_files() -> u64 {
    (0..DIRS)
        .map(|d| {
            fs::read_dir(format!("{MNT}/d{d:03}"))
                .map(|r| r.count() as u64)
                .unwrap_or(0)
        })
        .sum()
}

fn check() -> TestResult {
    load_module(&[])?;
    umount_all(MNT);
    let mark = dmesg_mark("mount-time-check");
    let t = Instant::now();
    let r = mount(PMEM, MNT, "rdaxfs", "");
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    let lines = dmesg_since(&mark);
    for l in &lines {
        if l.contains("rdaxfs") || l.contains("pmem0:") {
            println!("MT-KMSG {l}");
        }
    }
    if let Err(e) = r {
        return Err(format!("recovery mount failed: {e}"));
    }
    // "pmem0: mount: log replay B bytes, N orphans reclaimed, M ms"
    let line = lines
        .iter()
        .find(|l| l.contains(": mount: log replay "))
        .ok_or("no mount line in the kernel log")?;
    let words: Vec<&str> = line
        .split(": mount: log replay ")
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let (replay, orphans, kms) = match words[..] {
        [b, "bytes,", n, "orphans", "reclaimed,", m, "ms"] => (b, n, m),
        _ => return Err(format!("mount line not understood: {line}")),
    };
    let files = count_files();
    println!(
        "MT-RESULT files={files} replay={replay} orphans={orphans} kernel_ms={kms} syscall_ms={ms:.1}"
    );
    no_oops(&lines)?;
    Ok(())
}
