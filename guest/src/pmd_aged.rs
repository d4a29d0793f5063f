//! pmd-aged: PMD coverage of a 64 MiB file on an aged filesystem.
//!
//! The filesystem is aged first: filled to 80% with files of mixed sizes
//! (4 KiB to 6 MiB, written with write(2)), a random half deleted, filled
//! to 80% again, a random half deleted again. Then a 64 MiB file is
//! allocated three ways, each on that same aged state (the file is
//! deleted after its measurement): by page faults (stores through a
//! 2 MiB-aligned shared mapping of a sparse file), by one fallocate, and
//! by write(2) in 1 MiB chunks extending the file. Coverage is the share of
//! the file's 2 MiB-aligned logical ranges that FIEMAP shows as one
//! physically contiguous run starting on a 2 MiB-aligned device offset
//! (what a PMD fault can map). rdaxfs must reach 99% for each way; ext4
//! -o dax, aged the same way in the same boot, is printed beside it.

use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::ensure;
use crate::util::*;

const FILE_LEN: u64 = 64 << 20;
const CHUNK: usize = 1 << 20;
const PMD_U: u64 = PMD as u64;
/// Share of the device the aging fills.
const FILL: f64 = 0.80;

/// `FS_IOC_FIEMAP` = `_IOWR('f', 11, struct fiemap)` (32-byte header).
const FS_IOC_FIEMAP: libc::Ioctl = 0xC020_660Bu32 as libc::Ioctl;
const FIEMAP_FLAG_SYNC: u32 = 0x1;
const FIEMAP_EXTENT_LAST: u32 = 0x1;
const EXTENT_SIZE: usize = 56;
const HEADER: usize = 32;

/// Every extent of `fd` as `(logical, physical, len)` bytes.
fn extents(fd: libc::c_int) -> Result<Vec<(u64, u64, u64)>, String> {
    const PER: usize = 256;
    let mut all = Vec::new();
    let mut start = 0u64;
    loop {
        let mut buf = vec![0u64; (HEADER + EXTENT_SIZE * PER).div_ceil(8)];
        buf[0] = start;
        buf[1] = u64::MAX - start;
        buf[2] = u64::from(FIEMAP_FLAG_SYNC);
        buf[3] = PER as u64;
        // SAFETY: `buf` holds a struct fiemap with room for PER extents.
        let r = unsafe { libc::ioctl(fd, FS_IOC_FIEMAP, buf.as_mut_ptr()) };
        if r < 0 {
            return Err(format!(
                "FIEMAP from {start}: {}",
                std::io::Error::last_os_error()
            ));
        }
        let mapped = ((buf[2] >> 32) as usize).min(PER);
        if mapped == 0 {
            return Ok(all);
        }
        let mut last = false;
        for i in 0..mapped {
            let w = (HEADER + i * EXTENT_SIZE) / 8;
            all.push((buf[w], buf[w + 1], buf[w + 2]));
            last = buf[w + 5] as u32 & FIEMAP_EXTENT_LAST != 0;
            start = buf[w] + buf[w + 2];
        }
        if last {
            return Ok(all);
        }
    }
}

/// Of the 2 MiB-aligned logical ranges in `[0, len)`: how many map to one
/// contiguous, 2 MiB-aligned physical run, and how many there are.
/// Extents that continue each other logically and physically are merged
/// first (a filesystem may report one run as several extents).
pub fn coverage(ext: &[(u64, u64, u64)], len: u64) -> (u64, u64) {
    let mut runs: Vec<(u64, u64, u64)> = Vec::new();
    for &(l, p, n) in ext {
        match runs.last_mut() {
            Some(r) if r.0 + r.2 == l && r.1 + r.2 == p => r.2 += n,
            _ => runs.push((l, p, n)),
        }
    }
    let total = len / PMD_U;
    let mut good = 0;
    for k in 0..total {
        let lo = k * PMD_U;
        let hit = runs
            .iter()
            .find(|r| r.0 <= lo && lo < r.0 + r.2)
            .is_some_and(|r| r.0 + r.2 >= lo + PMD_U && (r.1 + (lo - r.0)).is_multiple_of(PMD_U));
        good += u64::from(hit);
    }
    (good, total)
}

/// Used and total bytes of the filesystem at `dir`.
fn usage(dir: &Path) -> Result<(u64, u64), String> {
    let s = statfs(dir)?;
    let bs = s.f_bsize as u64;
    Ok(((s.f_blocks - s.f_bfree) * bs, s.f_blocks * bs))
}

/// Writes a file of `size` bytes with write(2), up to 1 MiB per call.
fn write_file(p: &Path, size: u64, buf: &[u8]) -> Result<(), String> {
    let mut f = create_rw(p)?;
    let mut left = size as usize;
    while left > 0 {
        let n = left.min(buf.len());
        ctx(f.write_all(&buf[..n]), p.display())?;
        left -= n;
    }
    Ok(())
}

/// A file size for the aging: mostly small files, some of a few MiB
/// (log-uniform from 4 KiB to 6 MiB), not block-aligned.
fn pick_size(rng: &mut Rng) -> u64 {
    let e = rng.range(12, 23) as u32;
    let base = 1u64 << e;
    (base + rng.below(base / 2 * 3)).min(6 << 20)
}

/// Fills `dir` until the filesystem is FILL full; returns the files made.
fn fill(
    dir: &Path,
    rng: &mut Rng,
    names: &mut Vec<PathBuf>,
    seq: &mut u64,
    buf: &[u8],
) -> TestResult {
    loop {
        let (used, total) = usage(dir)?;
        if used as f64 >= total as f64 * FILL {
            return Ok(());
        }
        let size = pick_size(rng).min((total as f64 * FILL) as u64 - used + BLOCK as u64);
        let p = dir.join(format!("d{}/f{}", *seq % 16, *seq));
        *seq += 1;
        write_file(&p, size, buf)?;
        names.push(p);
    }
}

/// Deletes a random half of `names`.
fn delete_half(rng: &mut Rng, names: &mut Vec<PathBuf>) -> TestResult {
    let mut keep = Vec::with_capacity(names.len());
    for p in names.drain(..) {
        if rng.below(2) == 0 {
            ctx(fs::remove_file(&p), p.display())?;
        } else {
            keep.push(p);
        }
    }
    *names = keep;
    Ok(())
}

/// Ages the filesystem mounted at `dir` (see the module doc).
fn age(dir: &Path, seed: u64) -> TestResult {
    let t = Instant::now();
    let aged = dir.join("aged");
    for i in 0..16 {
        ctx(fs::create_dir_all(aged.join(format!("d{i}"))), "mkdir")?;
    }
    let buf = vec![0x5au8; CHUNK];
    let mut rng = Rng::new(seed);
    let mut names = Vec::new();
    let mut seq = 0u64;
    fill(&aged, &mut rng, &mut names, &mut seq, &buf)?;
    let made = names.len();
    delete_half(&mut rng, &mut names)?;
    fill(&aged, &mut rng, &mut names, &mut seq, &buf)?;
    delete_half(&mut rng, &mut names)?;
    let (used, total) = usage(dir)?;
    println!(
        "pmd-aged: aged: {made} files to 80%, half deleted, refilled ({seq} files in all), half deleted: {} files, {:.1}% used, {:.1} s",
        names.len(),
        used as f64 * 100.0 / total as f64,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// How the 64 MiB file gets its blocks.
#[derive(Clone, Copy)]
enum How {
    Faults,
    Fallocate,
    Write,
}

const HOWS: [(How, &str); 3] = [
    (How::Faults, "page faults"),
    (How::Fallocate, "fallocate"),
    (How::Write, "write(2) 1 MiB"),
];

/// Allocates a 64 MiB file in `dir` by `how`; returns its coverage (good,
/// total) and deletes it.
fn measure(dir: &Path, how: How) -> Result<(u64, u64), String> {
    let p = dir.join("big");
    let mut f = create_rw(&p)?;
    match how {
        How::Faults => {
            ctx(f.set_len(FILE_LEN), "ftruncate 64 MiB")?;
            let map = ctx(
                Mapping::shared_aligned(f.as_raw_fd(), FILE_LEN as usize, PMD),
                "mmap 64 MiB",
            )?;
            for i in (0..FILE_LEN as usize).step_by(BLOCK) {
                map.set(i, (i / BLOCK) as u8 | 1);
            }
            ctx(map.sync(), "msync")?;
        }
        How::Fallocate => {
            fallocate(f.as_raw_fd(), 0, 0, FILE_LEN)
                .map_err(|e| format!("fallocate 64 MiB: {}", errno_name(e)))?;
        }
        How::Write => {
            let buf = vec![0xa5u8; CHUNK];
            for _ in 0..FILE_LEN as usize / CHUNK {
                ctx(f.write_all(&buf), "write 1 MiB")?;
            }
        }
    }
    let ext = extents(f.as_raw_fd())?;
    drop(f);
    ctx(fs::remove_file(&p), "unlink the 64 MiB file")?;
    let mapped: u64 = ext.iter().map(|e| e.2).sum();
    ensure!(
        mapped >= FILE_LEN,
        "FIEMAP maps {mapped} bytes of the 64 MiB file ({} extents)",
        ext.len()
    );
    Ok(coverage(&ext, FILE_LEN))
}

/// Ages the filesystem at MNT and measures the three ways.
fn run_on(fs_name: &str, seed: u64) -> Result<Vec<(u64, u64)>, String> {
    let dir = Path::new(MNT);
    age(dir, seed)?;
    let mut res = Vec::new();
    for (how, name) in HOWS {
        let t = Instant::now();
        let (good, total) = measure(dir, how)?;
        println!(
            "pmd-aged: {fs_name}: {name}: {good}/{total} 2 MiB ranges PMD-mappable, coverage {:.1}% ({:.1} s)",
            good as f64 * 100.0 / total as f64,
            t.elapsed().as_secs_f64()
        );
        res.push((good, total));
    }
    Ok(res)
}

fn mkfs_ext4() -> Option<&'static str> {
    ["/sbin/mkfs.ext4", "/usr/sbin/mkfs.ext4", "/bin/mkfs.ext4"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// The same aging and measurements on ext4 -o dax (figures only).
fn ext4_half() -> Result<Option<Vec<(u64, u64)>>, String> {
    let Some(mk) = mkfs_ext4() else {
        println!("pmd-aged: ext4: mkfs.ext4 not available");
        return Ok(None);
    };
    run(mk, &["-F", "-q", "-b", "4096", PMEM])?;
    if let Err(e) = mount(PMEM, MNT, "ext4", "dax") {
        println!("pmd-aged: ext4: mount -t ext4 -o dax failed: {e}; skipping the comparison");
        return Ok(None);
    }
    let r = run_on("ext4-dax", 12);
    ctx(umount(MNT), "umount ext4")?;
    r.map(Some)
}

/// The test.
pub fn pmd_aged() -> TestResult {
    let fx = Fixture::new()?;
    fresh_mount()?;
    let mark = dmesg_mark("pmd-aged");
    let rd = run_on("rdaxfs", 12);
    umount_all(MNT);
    let rd = rd?;
    fsck_clean(PMEM)?;
    let ext4 = ext4_half();
    // Later tests expect rdaxfs on the device.
    umount_all(MNT);
    mkfs(PMEM, &[])?;
    drop(fx);
    let ext4 = ext4?;
    let pct = |(g, t): (u64, u64)| g as f64 * 100.0 / t as f64;
    let mut line = String::from("pmd-aged: coverage (faults / fallocate / write):");
    line += &format!(
        " rdaxfs {:.0}% / {:.0}% / {:.0}%",
        pct(rd[0]),
        pct(rd[1]),
        pct(rd[2])
    );
    if let Some(e) = &ext4 {
        line += &format!(
            ", ext4-dax {:.0}% / {:.0}% / {:.0}%",
            pct(e[0]),
            pct(e[1]),
            pct(e[2])
        );
    }
    println!("{line}");
    let bad = kernel_problems(&mark);
    ensure!(bad.is_empty(), "kernel log shows:\n{}", bad.join("\n"));
    for ((_, name), c) in HOWS.iter().zip(rd.iter()) {
        ensure!(
            c.0 * 100 >= c.1 * 99,
            "rdaxfs, aged: 64 MiB file allocated by {name}: {}/{} 2 MiB ranges PMD-mappable ({:.1}%), expected >= 99%",
            c.0,
            c.1,
            pct(*c)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_counts_aligned_runs() {
        let m = PMD_U;
        // One aligned run: all of it.
        assert_eq!(coverage(&[(0, 4 * m, 4 * m)], 4 * m), (4, 4));
        // Misaligned by 1 MiB: none.
        assert_eq!(coverage(&[(0, 4 * m + m / 2, 4 * m)], 4 * m), (0, 4));
        // Split extents that continue each other count as one run.
        assert_eq!(
            coverage(&[(0, 2 * m, m / 2), (m / 2, 2 * m + m / 2, m / 2)], m),
            (1, 1)
        );
        // A gap in the middle of a range loses that range only.
        assert_eq!(
            coverage(&[(0, 0, m + 4096), (m + 8192, m + 8192, m - 8192)], 2 * m),
            (1, 2)
        );
        assert_eq!(coverage(&[(0, 0, m), (m, 8 * m, m)], 2 * m), (2, 2));
    }
}
