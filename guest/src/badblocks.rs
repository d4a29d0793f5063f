//! badblocks: media errors on pmem hit only what lies on the bad blocks.
//!
//! Bad ranges are written into /sys/block/pmem0/badblocks (the pmem
//! driver then refuses DAX access to them, as it does for poison found by
//! an address range scrub). With a bad data block of one file and bad
//! metadata blocks (a directory block, an inode-table block):
//! - the filesystem still mounts;
//! - the file over the bad data block gives EIO (SIGBUS through mmap), the
//!   others read fine;
//! - the directory / inode over bad metadata gives EIO and the kernel names
//!   the block and the inode; nothing else is affected;
//! - rewriting the bad block (a page-aligned write: DAX recovery write)
//!   clears the poison and the file reads back the new data; truncating
//!   and refilling a file whose block was bad also reads back fine (blocks
//!   are zeroed through the driver when allocated, which clears poison);
//! - no Oops/BUG/WARNING.
//!
//! QEMU's NFIT NVDIMM cannot clear poison (no Clear Error command), so on
//! it the rewrite checks are skipped (a probe in the unused journal area
//! finds out). The bad-block list is dropped afterwards by rebinding the
//! pmem driver, so later tests in the boot see a clean device.

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use rdaxfs_tools::dev::FileDev;
use rdaxfs_tools::fs::Fs;

use crate::ensure;
use crate::util::*;

const BADBLOCKS: &str = "/sys/block/pmem0/badblocks";
const FILE_BYTES: usize = 64 * 1024;

/// A block of the (reserved, unused) journal area, where a bad block left
/// behind harms nothing.
const PROBE_BLOCK: u64 = 200;

pub fn badblocks() -> TestResult {
    let _fx = Fixture::new()?;
    let clears = can_clear_poison()?;
    if !clears {
        println!(
            "badblocks: {PMEM} cannot clear poison (a write over bad block {PROBE_BLOCK} failed; QEMU's NFIT NVDIMM has no Clear Error command): the rewrite checks are skipped"
        );
        rebind()?;
    }
    let res = run_badblocks(clears);
    // Whatever happened, leave no bad blocks behind: rebinding the pmem
    // driver starts a fresh list (from the platform's scrub results: none
    // under QEMU).
    umount_all(MNT);
    let left = fs::read_to_string(BADBLOCKS).unwrap_or_default();
    if !left.trim().is_empty() {
        if let Err(e) = rebind() {
            eprintln!("cleanup: {e}");
        }
    }
    if let Err(e) = mkfs(PMEM, &[]) {
        eprintln!("cleanup: {e}");
    }
    res
}

fn run_badblocks(clears: bool) -> TestResult {
    ensure!(
        fs::read_to_string(BADBLOCKS).is_ok_and(|s| s.trim().is_empty()),
        "{BADBLOCKS} is not empty before the test"
    );
    fresh_mount()?;
    let m = Path::new(MNT);
    for (i, name) in ["a", "b", "c", "e"].iter().enumerate() {
        write_file(&m.join(name), i as u64)?;
    }
    ctx(fs::create_dir(m.join("d")), "mkdir d")?;
    write_file(&m.join("d/x"), 10)?;
    // Enough inodes that some live in the second inode-table block.
    ctx(fs::create_dir(m.join("many")), "mkdir many")?;
    for i in 0..24 {
        ctx(
            fs::write(m.join(format!("many/f{i}")), [i as u8; 100]),
            "create many/f",
        )?;
    }
    let ino = |p: &str| fs::metadata(m.join(p)).map(|md| md.ino());
    let (ib, ie, id) = (
        ctx(ino("b"), "stat b")?,
        ctx(ino("e"), "stat e")?,
        ctx(ino("d"), "stat d")?,
    );
    // An inode of many/ in the second inode-table block (ino >= 17).
    let mut far = None;
    for i in 0..24 {
        let n = ctx(ino(&format!("many/f{i}")), "stat many/f")?;
        if n >= 17 && far.is_none() {
            far = Some((format!("many/f{i}"), n));
        }
    }
    let (far_name, far_ino) = far.ok_or("no inode of many/ past inode 16")?;
    ctx(umount(MNT), "umount")?;

    // Where those live on the device (drop the block device's stale cache
    // first: the filesystem wrote through DAX).
    ctx(fs::write("/proc/sys/vm/drop_caches", "3"), "drop_caches")?;
    let dev = ctx(FileDev::open(Path::new(PMEM), false), PMEM)?;
    let mut img = Fs::open(dev).map_err(|e| format!("read {PMEM}: {e}"))?;
    let data_block = |img: &mut Fs<FileDev>, ino: u64, lblk: u64| -> Result<u64, String> {
        let i = img.read_inode(ino).map_err(|e| e.to_string())?;
        let (exts, _) = img.extents(ino, &i).map_err(|e| e.to_string())?;
        exts.iter()
            .find(|x| x.logical <= lblk && lblk < x.logical + u64::from(x.len))
            .map(|x| x.physical + lblk - x.logical)
            .ok_or(format!("inode {ino} has no block {lblk}"))
    };
    let b_bad = data_block(&mut img, ib, 3)?;
    let e_bad = data_block(&mut img, ie, 0)?;
    let d_bad = data_block(&mut img, id, 0)?;
    let itable_bad = img.sb.inode_table_start + (far_ino - 1) / 16;
    drop(img);
    println!(
        "badblocks: bad blocks: b(ino {ib}) block 3 at {b_bad}, e(ino {ie}) block 0 at {e_bad}, directory d(ino {id}) at {d_bad}, inode table block {itable_bad} ({far_name} = ino {far_ino})"
    );
    for blk in [b_bad, e_bad, d_bad, itable_bad] {
        ctx(
            fs::write(BADBLOCKS, format!("{} 8\n", blk * 8)),
            format!("add bad block {blk}"),
        )?;
    }
    println!(
        "badblocks: {BADBLOCKS}: {}",
        fs::read_to_string(BADBLOCKS)
            .unwrap_or_default()
            .replace('\n', "; ")
    );

    let mark = dmesg_mark("badblocks mount");
    mount(PMEM, MNT, "rdaxfs", "").map_err(|e| {
        format!(
            "mount with bad blocks away from the superblock failed: {e}\n{}",
            dmesg_since(&mark).join("\n")
        )
    })?;
    // Good files read fine; b gives EIO on its bad block only.
    for (i, name) in ["a", "c"].iter().enumerate() {
        let seed = if i == 0 { 0 } else { 2 };
        check_file(&m.join(name), seed)?;
    }
    let f = ctx(
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(m.join("b")),
        "open b",
    )?;
    let mut buf = vec![0u8; BLOCK];
    ctx(f.read_exact_at(&mut buf, 0), "read b block 0 (good)")?;
    ensure!(check_pattern(&buf, 1, 0).is_none(), "b block 0 differs");
    expect_errno(
        f.read_exact_at(&mut buf, 3 * BLOCK as u64),
        libc::EIO,
        "read b block 3 (bad)",
    )?;
    let r = fs::read(m.join("b"));
    ensure!(
        r.as_ref().err().and_then(|e| e.raw_os_error()) == Some(libc::EIO),
        "reading all of b: expected EIO, got {:?}",
        r.map(|v| v.len())
    );
    // A load from a mapping of the bad block: SIGBUS, not an oops; the
    // good block of the same mapping reads fine.
    let map = ctx(Mapping::shared(f.as_raw_fd(), FILE_BYTES), "mmap b")?;
    ensure!(
        map.get(0) == pattern_byte(1, 0),
        "b block 0 via mmap differs"
    );
    let status = fork_wait(|| {
        let _ = map.get(3 * BLOCK);
        0
    })?;
    ensure!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGBUS,
        "a load from b's bad block through mmap: child {}, expected SIGBUS",
        describe_status(status)
    );
    drop(map);
    drop(f);
    ctx(fs::metadata(m.join("b")), "stat b")?;
    // Bad metadata: the directory and the inode give EIO with a message.
    let mark2 = dmesg_mark("badblocks metadata");
    let r = fs::read_dir(m.join("d")).and_then(|rd| rd.collect::<Result<Vec<_>, _>>());
    ensure!(
        r.as_ref().err().and_then(|e| e.raw_os_error()) == Some(libc::EIO),
        "readdir of d over a bad block: expected EIO, got {:?}",
        r.map(|v| v.len())
    );
    let r = fs::metadata(m.join(&far_name));
    ensure!(
        r.as_ref().err().and_then(|e| e.raw_os_error()) == Some(libc::EIO),
        "stat {far_name} (inode over a bad block): expected EIO, got {r:?}"
    );
    let lines = dmesg_since(&mark2);
    for (what, words) in [
        (
            "directory block",
            vec![format!("bad block {d_bad}"), format!("inode {id}")],
        ),
        (
            "inode-table block",
            vec![
                format!("bad block {itable_bad}"),
                format!("inode {far_ino}"),
            ],
        ),
    ] {
        for w in &words {
            ensure!(
                lines.iter().any(|l| l.contains(w.as_str())),
                "no kernel message naming {w} for the bad {what}; log:\n{}",
                lines.join("\n")
            );
        }
    }
    for l in lines.iter().filter(|l| l.contains("rdaxfs")) {
        println!("badblocks: kernel: {}", l.trim());
    }
    // The rest of the namespace is untouched.
    ctx(fs::metadata(m.join("many/f0")), "stat many/f0")?;
    ctx(fs::read_dir(m.join("many")), "readdir many")?;

    if !clears {
        ctx(umount(MNT), "umount")?;
        let p = kernel_problems(&mark);
        ensure!(p.is_empty(), "kernel problems:\n{}", p.join("\n"));
        return Ok(());
    }
    // Rewriting the bad block of b (a whole page) clears the poison.
    let f = ctx(
        fs::OpenOptions::new().write(true).open(m.join("b")),
        "open b rw",
    )?;
    let mut new = vec![0u8; BLOCK];
    fill_pattern(&mut new, 99, 0);
    ctx(
        f.write_all_at(&new, 3 * BLOCK as u64),
        "rewrite b block 3 (recovery write)",
    )?;
    drop(f);
    let got = ctx(fs::read(m.join("b")), "read b after the rewrite")?;
    ensure!(
        got.len() == FILE_BYTES,
        "b is {} bytes after the rewrite",
        got.len()
    );
    ensure!(
        got[3 * BLOCK..4 * BLOCK] == new[..],
        "b block 3 does not read back what was rewritten"
    );
    // e: truncated to 0 and written again; its freed bad block is zeroed
    // through the driver when it is allocated again.
    let f = ctx(
        fs::OpenOptions::new().write(true).open(m.join("e")),
        "open e rw",
    )?;
    ctx(f.set_len(0), "truncate e")?;
    let mut data = vec![0u8; FILE_BYTES];
    fill_pattern(&mut data, 7, 0);
    ctx(f.write_all_at(&data, 0), "rewrite e")?;
    ctx(f.sync_all(), "fsync e")?;
    drop(f);
    let got = ctx(fs::read(m.join("e")), "read e after truncate and rewrite")?;
    ensure!(got == data, "e reads back wrong after truncate and rewrite");
    ctx(umount(MNT), "umount")?;
    let left = fs::read_to_string(BADBLOCKS).unwrap_or_default();
    println!(
        "badblocks: after the rewrites {BADBLOCKS}: {}",
        left.replace('\n', "; ")
    );
    ensure!(
        !left.contains(&format!("{} 8", b_bad * 8)),
        "b's bad block {b_bad} is still listed after the rewrite"
    );
    println!(
        "badblocks: e's old bad block {e_bad} {} after truncate and rewrite",
        if left.contains(&format!("{} 8", e_bad * 8)) {
            "is still listed (not reallocated)"
        } else {
            "was reallocated, zeroed and cleared"
        }
    );
    let p = kernel_problems(&mark);
    ensure!(p.is_empty(), "kernel problems:\n{}", p.join("\n"));
    Ok(())
}

/// Marks the probe block bad and writes over it: true if that cleared it
/// (legacy e820 pmem "clears" by dropping the record; an NVDIMM needs the
/// platform's Clear Error command).
fn can_clear_poison() -> Result<bool, String> {
    ctx(
        fs::write(BADBLOCKS, format!("{} 8\n", PROBE_BLOCK * 8)),
        "add the probe bad block",
    )?;
    let wrote = dev_write_block(PMEM, PROBE_BLOCK, &[0u8; BLOCK]).is_ok();
    let left = fs::read_to_string(BADBLOCKS).unwrap_or_default();
    Ok(wrote && left.trim().is_empty())
}

fn write_file(p: &Path, seed: u64) -> TestResult {
    let mut data = vec![0u8; FILE_BYTES];
    fill_pattern(&mut data, seed, 0);
    ctx(fs::write(p, &data), p.display())
}

fn check_file(p: &Path, seed: u64) -> TestResult {
    let got = ctx(fs::read(p), p.display())?;
    ensure!(
        got.len() == FILE_BYTES,
        "{}: {} bytes",
        p.display(),
        got.len()
    );
    match check_pattern(&got, seed, 0) {
        None => Ok(()),
        Some(m) => Err(format!("{}: {m}", p.display())),
    }
}

/// Unbinds and rebinds the pmem driver of /dev/pmem0, which drops its
/// bad-block list, and waits for the device to come back.
fn rebind() -> TestResult {
    let link = ctx(
        fs::read_link("/sys/block/pmem0/device"),
        "/sys/block/pmem0/device",
    )?;
    let dev = link
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("no nd device behind pmem0")?
        .to_string();
    let drv = "/sys/bus/nd/drivers/nd_pmem";
    ctx(
        fs::write(format!("{drv}/unbind"), &dev),
        format!("unbind {dev}"),
    )?;
    ctx(
        fs::write(format!("{drv}/bind"), &dev),
        format!("bind {dev}"),
    )?;
    for _ in 0..50 {
        if Path::new(PMEM).exists() && fs::read_to_string(BADBLOCKS).is_ok() {
            let left = fs::read_to_string(BADBLOCKS).unwrap_or_default();
            ensure!(
                left.trim().is_empty(),
                "{BADBLOCKS} after rebinding {dev}: {left}"
            );
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Err(format!("{PMEM} did not come back after rebinding {dev}"))
}
