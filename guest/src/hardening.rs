//! hardening-misc: link counts from a crafted image (0 reached from a
//! directory entry, above the maximum) are rejected as corruption; link(2)
//! stops at the maximum; fallocate drops set-id bits and honours
//! RLIMIT_FSIZE; after errors=remount-ro forces the mount read-only,
//! writes, fallocate and write faults fail; a signal during break-layouts'
//! wait restarts the truncate (ERESTARTSYS) instead of failing it (EINTR).

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};

use rdaxfs_format::{inode_location, Inode, INODE_SIZE};

use crate::ensure;
use crate::remount::disk_sb;
use crate::util::*;

/// Largest link count rdaxfs accepts (as ext4's EXT4_LINK_MAX).
const LINK_MAX: u32 = 65_000;

pub fn hardening_misc() -> TestResult {
    let _fx = Fixture::new()?;
    run_steps(
        "hardening-misc",
        &[
            ("nlink-zero", nlink_zero),
            ("nlink-huge", nlink_huge),
            ("link-max", link_max),
            ("fallocate-privs", fallocate_privs),
            ("forced-ro", forced_ro),
            ("layouts-signal", layouts_signal),
        ],
    )
}

/// Makes a fresh filesystem with file `name` (8 KiB), unmounts it and
/// returns the file's inode number.
fn with_file(name: &str) -> Result<u64, String> {
    fresh_mount()?;
    let p = format!("{MNT}/{name}");
    ctx(fs::write(&p, vec![1u8; 8192]), &p)?;
    let ino = ctx(fs::metadata(&p), &p)?.ino();
    ctx(umount(MNT), "umount")?;
    Ok(ino)
}

/// Rewrites inode `ino`'s on-disk record through `f` (unmounted).
fn patch_inode(ino: u64, f: impl FnOnce(&mut Inode)) -> TestResult {
    let sb = disk_sb()?;
    let (blk, off) = inode_location(&sb, ino).map_err(|e| format!("inode {ino}: {e:?}"))?;
    let mut b = dev_read_block(PMEM, blk)?;
    let rec = &mut b[off..off + INODE_SIZE];
    let mut d = Inode::decode(rec, ino).map_err(|e| format!("inode {ino}: {e:?}"))?;
    f(&mut d);
    d.encode(rec, ino)
        .map_err(|e| format!("inode {ino}: {e:?}"))?;
    dev_write_block(PMEM, blk, &b)
}

/// Mounts, stats `name` (must fail with EUCLEAN and a message), unmounts.
fn expect_corrupt(name: &str, what: &str) -> TestResult {
    ctx(mount(PMEM, MNT, "rdaxfs", ""), "mount")?;
    let mark = dmesg_mark("hardening");
    let r = fs::metadata(format!("{MNT}/{name}"));
    let lines = dmesg_since(&mark);
    no_oops(&lines)?;
    if let Ok(md) = &r {
        return Err(format!(
            "{what}: stat succeeded (nlink {}), expected EUCLEAN",
            md.nlink()
        ));
    }
    expect_errno(r, libc::EUCLEAN, what)?;
    ensure!(
        lines.iter().any(|l| l.contains("corrupt")),
        "{what}: refused without a kernel message:\n{}",
        lines.join("\n")
    );
    ctx(umount(MNT), "umount")?;
    Ok(())
}

fn nlink_zero() -> TestResult {
    let ino = with_file("a")?;
    patch_inode(ino, |d| d.nlink = 0)?;
    expect_corrupt("a", "directory entry to an inode with link count 0")
}

fn nlink_huge() -> TestResult {
    let ino = with_file("a")?;
    patch_inode(ino, |d| d.nlink = u32::MAX)?;
    expect_corrupt("a", "inode with link count 2^32-1")
}

fn link_max() -> TestResult {
    let ino = with_file("a")?;
    patch_inode(ino, |d| d.nlink = LINK_MAX)?;
    ctx(mount(PMEM, MNT, "rdaxfs", ""), "mount")?;
    let md = ctx(fs::metadata(format!("{MNT}/a")), "stat a")?;
    ensure!(
        md.nlink() == u64::from(LINK_MAX),
        "nlink {} expected {LINK_MAX}",
        md.nlink()
    );
    expect_errno(
        fs::hard_link(format!("{MNT}/a"), format!("{MNT}/b")),
        libc::EMLINK,
        "link(2) to an inode with the maximum link count",
    )?;
    ctx(umount(MNT), "umount")?;
    Ok(())
}

/// Runs `f` in a child that is an unprivileged user (uid/gid 65534, so
/// no CAP_FSETID: root keeps set-id bits on write) with SIGXFSZ ignored;
/// the child's exit code is `f`'s.
fn as_nobody(f: impl FnOnce() -> i32) -> Result<libc::c_int, String> {
    fork_wait(|| {
        // SAFETY: plain syscalls in the child.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setresgid(65534, 65534, 65534) != 0
                || libc::setresuid(65534, 65534, 65534) != 0
            {
                return 3;
            }
        }
        f()
    })
}

fn fallocate_privs() -> TestResult {
    fresh_mount()?;
    let p = format!("{MNT}/suid");
    let f = create_rw(std::path::Path::new(&p))?;
    ctx(
        fs::set_permissions(&p, fs::Permissions::from_mode(0o6777)),
        "chmod 6777",
    )?;
    let fd = f.as_raw_fd();
    let mut fails = Vec::new();
    // A write by a user without CAP_FSETID drops suid and sgid (sgid with
    // group-exec); fallocate changes the file as much and must too.
    let st = as_nobody(|| match fallocate(fd, 0, 0, 4096) {
        Ok(()) => 0,
        Err(_) => 1,
    })?;
    ensure!(
        libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0,
        "fallocate as uid 65534: {}",
        describe_status(st)
    );
    let mode = ctx(f.metadata(), "stat")?.mode();
    if mode & 0o6000 != 0 {
        fails.push(format!(
            "fallocate by an unprivileged user left the set-id bits: mode {mode:o} (write(2) drops them)"
        ));
    }
    // RLIMIT_FSIZE: growing past it is EFBIG (SIGXFSZ ignored).
    let st = as_nobody(|| {
        let lim = libc::rlimit {
            rlim_cur: 1 << 20,
            rlim_max: 1 << 20,
        };
        // SAFETY: plain syscall in the child.
        unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &lim) };
        match fallocate(fd, 0, 0, 2 << 20) {
            Err(libc::EFBIG) => 0,
            Ok(()) => 1,
            Err(_) => 2,
        }
    })?;
    if !(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0) {
        fails.push(format!(
            "fallocate past RLIMIT_FSIZE: {} (exit 1: it succeeded; 2: wrong errno)",
            describe_status(st)
        ));
    }
    let len = ctx(f.metadata(), "stat")?.len();
    if len > 1 << 20 {
        fails.push(format!(
            "fallocate past RLIMIT_FSIZE grew the file to {len}"
        ));
    }
    drop(f);
    ctx(umount(MNT), "umount")?;
    ensure!(fails.is_empty(), "{}", fails.join("; "));
    Ok(())
}

/// errors=remount-ro: once corruption forces the mount read-only, an
/// already open file can no longer be written, by write(2), fallocate or
/// a store through a shared mapping (SIGBUS, as at ENOSPC).
fn forced_ro() -> TestResult {
    fresh_mount()?;
    let p = format!("{MNT}/good");
    let f = create_rw(std::path::Path::new(&p))?;
    ctx(f.write_all_at(&[2u8; 8192], 0), "write good")?;
    ctx(f.set_len(4 * 4096), "grow good (blocks 2, 3: holes)")?;
    drop(f);
    ctx(fs::write(format!("{MNT}/bad"), b"x"), "create bad")?;
    let bad = ctx(fs::metadata(format!("{MNT}/bad")), "stat bad")?.ino();
    ctx(umount(MNT), "umount")?;
    // A checksum error in bad's record.
    let sb = disk_sb()?;
    let (blk, off) = inode_location(&sb, bad).map_err(|e| format!("{e:?}"))?;
    let mut b = dev_read_block(PMEM, blk)?;
    b[off + 40] ^= 0xff;
    dev_write_block(PMEM, blk, &b)?;

    ctx(
        mount(PMEM, MNT, "rdaxfs", "errors=remount-ro"),
        "mount errors=remount-ro",
    )?;
    let f = ctx(
        fs::OpenOptions::new().read(true).write(true).open(&p),
        "open good",
    )?;
    let m = ctx(Mapping::shared(f.as_raw_fd(), 4 * 4096), "mmap good")?;
    m.set(1, 3); // mapped block, writable before the error
    let mark = dmesg_mark("forced-ro");
    let r = fs::metadata(format!("{MNT}/bad"));
    ensure!(r.is_err(), "stat of the corrupt inode succeeded");
    let lines = dmesg_since(&mark);
    ensure!(
        lines.iter().any(|l| l.contains("read-only")),
        "no forced read-only after corruption with errors=remount-ro:\n{}",
        lines.join("\n")
    );
    let mut fails = Vec::new();
    match f.write_at(b"late", 100) {
        Err(e) if e.raw_os_error() == Some(libc::EROFS) => {}
        r => fails.push(format!(
            "write(2) after the forced read-only: {r:?}, expected EROFS"
        )),
    }
    match fallocate(f.as_raw_fd(), 0, 0, 8 * 4096) {
        Err(libc::EROFS) => {}
        r => fails.push(format!(
            "fallocate after the forced read-only: {r:?}, expected EROFS"
        )),
    }
    // A store into a hole needs a write fault (pages already mapped
    // writable before the error keep their mapping, as on ext4).
    let st = fork_wait(|| {
        m.set(2 * 4096 + 5, 9);
        0
    })?;
    if !(libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGBUS) {
        fails.push(format!(
            "store into a hole after the forced read-only: child {}, expected SIGBUS",
            describe_status(st)
        ));
    }
    drop(m);
    drop(f);
    no_oops(&dmesg_since(&mark))?;
    ctx(umount(MNT), "umount")?;
    ensure!(fails.is_empty(), "{}", fails.join("; "));
    Ok(())
}

extern "C" fn on_usr1(_: libc::c_int) {}

/// Truncates a file while O_DIRECT reads from the slow null_blk device
/// keep its pages pinned (break-layouts waits), with SIGUSR1 (handler
/// installed with SA_RESTART) hitting the truncating thread all along.
/// The wait must end with ERESTARTSYS, which the kernel turns into a
/// transparent restart: ftruncate never returns EINTR.
fn layouts_signal() -> TestResult {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};
    const BLOCKS: usize = 16;
    fresh_mount()?;
    let nullb = nullb_open()?;
    let p = format!("{MNT}/dma");
    let f = create_rw(std::path::Path::new(&p))?;
    ctx(f.write_all_at(&vec![1u8; BLOCKS * 4096], 0), "write")?;
    let fd = f.as_raw_fd();
    let map = ctx(Mapping::shared(fd, BLOCKS * 4096), "mmap")?;
    // SAFETY: installs a handler that does nothing, for this process.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_usr1 as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
    }
    let before = Counters::debugfs("pmem0").map_or(0, |c| c.layout_waits);
    let stop = AtomicBool::new(false);
    let tid = AtomicU64::new(0);
    let (eintr, other, truncs) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let nfd = nullb.as_raw_fd();
    let base = map.ptr as usize;
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                // 200 ms with pages 0..3 pinned (EFAULT when they are gone).
                let _ = nullb_pread(nfd, base as *mut u8, 4 * 4096, 0);
            }
        });
        s.spawn(|| {
            // SAFETY: pthread_self has no preconditions.
            tid.store(unsafe { libc::pthread_self() } as u64, Ordering::Relaxed);
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(30));
                match ftruncate(fd, 0) {
                    Ok(()) => {
                        truncs.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(libc::EINTR) => {
                        eintr.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        other.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let _ = ftruncate(fd, (BLOCKS * 4096) as u64);
            }
        });
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(3) {
            let t = tid.load(Ordering::Relaxed);
            if t != 0 {
                // SAFETY: the thread runs until `stop`, set only below.
                unsafe { libc::pthread_kill(t as libc::pthread_t, libc::SIGUSR1) };
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let waits = Counters::debugfs("pmem0").map_or(0, |c| c.layout_waits) - before;
    let (eintr, other, truncs) = (eintr.into_inner(), other.into_inner(), truncs.into_inner());
    println!(
        "hardening-misc: layouts-signal: {truncs} truncates, {eintr} EINTR, {other} other errors, {waits} layout waits"
    );
    drop(map);
    drop(f);
    ctx(umount(MNT), "umount")?;
    ensure!(
        waits > 0,
        "no break-layouts wait happened: the test proves nothing"
    );
    ensure!(
        eintr == 0 && other == 0,
        "ftruncate failed {eintr} times with EINTR and {other} times otherwise while break-layouts waited (a SA_RESTART signal must restart it)"
    );
    Ok(())
}
