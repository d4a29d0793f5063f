//! pmd-punch: punch holes of many shapes inside PMD-mapped (2 MiB), dirty
//! DAX ranges of a file, keep storing through the mapping, then check every
//! byte after a remount (seed 004: punching inside a PMD mapping hit a BUG
//! and could drop dirty data of the rest of the PMD).

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::ensure;
use crate::util::*;

const LEN: usize = 8 << 20;
const MIB: usize = 1 << 20;

/// One step: punch `(off, len)` or store stream `seed` at `(off, len)`
/// through the mapping.
#[derive(Debug, Clone, Copy)]
enum Step {
    Punch(usize, usize),
    Store(usize, usize, u64),
}

fn steps() -> Vec<Step> {
    use Step::*;
    vec![
        Punch(4096, 4096),                // one page inside PMD 0
        Punch(2 * MIB + 5 * 4096, 12288), // three pages at an odd page of PMD 1
        Punch(4 * MIB + 256 * 1024, MIB), // 1 MiB inside PMD 2
        Store(2 * MIB + MIB, 65536, 2),   // the rest of PMD 1 stays writable
        Store(4096 + 100, 1800, 3),       // refill part of the first hole
        Punch(2 * MIB - 4096, 4096),      // last page of PMD 0
        Punch(6 * MIB - 8192, 16384),     // across the PMD 2 / PMD 3 boundary
        Store(6 * MIB + 100 * 1024, 8192, 4),
        Store(100 * 1024, 4096, 5),           // PMD 0 after two punches
        Punch(7 * MIB + 1000, 100),           // 100 bytes inside one block
        Store(4 * MIB + 512 * 1024, 4096, 6), // into the 1 MiB hole
        Punch(7 * MIB + 4096 * 3 + 17, 5000), // unaligned, two partial blocks
    ]
}

fn first_diff(got: &[u8], want: &[u8]) -> Option<String> {
    let i = got.iter().zip(want).position(|(a, b)| a != b)?;
    let end = (i..got.len().min(want.len()))
        .find(|&j| got[j] == want[j])
        .unwrap_or(got.len());
    Some(format!(
        "bytes {i}..{end} differ (PMD {} offset {:#x}): read {:#04x}, expected {:#04x}",
        i / PMD,
        i % PMD,
        got[i],
        want[i]
    ))
}

/// Runs the steps on `dir`; `pmd_check`: counters are checked on rdaxfs.
pub fn punch_in(dir: &Path) -> Result<(), String> {
    let p = dir.join("pmd");
    let f = create_rw(&p)?;
    let fd = f.as_raw_fd();
    fallocate(fd, 0, 0, LEN as u64).map_err(|e| format!("fallocate 8 MiB: {}", errno_name(e)))?;
    let map = ctx(Mapping::shared_aligned(fd, LEN, PMD), "mmap 8 MiB aligned")?;
    let mut model = vec![0u8; LEN];
    fill_pattern(&mut model, 1, 0);
    let before = counters_now("pmem0");
    for off in (0..LEN).step_by(MIB) {
        map.write_at(off, &model[off..off + MIB]);
    }
    if let (Some(b), Some(a)) = (before, counters_now("pmem0")) {
        let d = a.since(&b);
        println!(
            "pmd-punch: filling 8 MiB through the mapping: {} pmd faults, {} fallbacks, {} pte faults",
            d.pmd_faults, d.pmd_fallbacks, d.pte_faults
        );
        ensure!(
            d.pmd_faults > 0,
            "filling a 2 MiB-aligned mapping of a fallocated 8 MiB file made no PMD fault ({d:?})"
        );
    }
    let mut seen = vec![0u8; LEN];
    map.read_at(0, &mut seen);
    if let Some(m) = first_diff(&seen, &model) {
        return Err(format!("after filling, through the mapping: {m}"));
    }
    for (i, s) in steps().into_iter().enumerate() {
        match s {
            Step::Punch(off, len) => {
                fallocate(
                    fd,
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    off as u64,
                    len as u64,
                )
                .map_err(|e| format!("step {i}: punch {off:#x}+{len}: {}", errno_name(e)))?;
                model[off..off + len].fill(0);
            }
            Step::Store(off, len, seed) => {
                let mut b = vec![0u8; len];
                fill_pattern(&mut b, seed, off as u64);
                map.write_at(off, &b);
                model[off..off + len].copy_from_slice(&b);
            }
        }
        map.read_at(0, &mut seen);
        if let Some(m) = first_diff(&seen, &model) {
            return Err(format!("after step {i} {s:?}, through the mapping: {m}"));
        }
        let mut rd = vec![0u8; LEN];
        ctx(f.read_exact_at(&mut rd, 0), "pread")?;
        if let Some(m) = first_diff(&rd, &model) {
            return Err(format!("after step {i} {s:?}, through pread: {m}"));
        }
    }
    ctx(map.sync(), "msync")?;
    ctx(f.sync_all(), "fsync")?;
    drop(map);
    drop(f);
    Ok(())
}

fn verify(dir: &Path) -> TestResult {
    let p = dir.join("pmd");
    let got = ctx(fs::read(&p), "read back")?;
    ensure!(
        got.len() == LEN,
        "size {} after remount, expected {LEN}",
        got.len()
    );
    let mut model = vec![0u8; LEN];
    fill_pattern(&mut model, 1, 0);
    for s in steps() {
        match s {
            Step::Punch(off, len) => model[off..off + len].fill(0),
            Step::Store(off, len, seed) => {
                fill_pattern(&mut model[off..off + len], seed, off as u64)
            }
        }
    }
    if let Some(m) = first_diff(&got, &model) {
        return Err(format!("after remount: {m}"));
    }
    Ok(())
}

/// Punches inside PMD mappings keep the rest, durably.
pub fn pmd_punch() -> TestResult {
    let _fx = Fixture::new()?;
    fresh_mount()?;
    let mark = dmesg_mark("pmd-punch");
    punch_in(Path::new(MNT))?;
    let c = umount_counters(MNT, "pmem0")?;
    println!(
        "pmd-punch: mount counters: {} pmd faults ({} fallbacks), {} pte faults",
        c.pmd_faults, c.pmd_fallbacks, c.pte_faults
    );
    ensure!(
        c.pmd_faults > 0,
        "no PMD fault in the whole test (expected the 8 MiB fill to map 2 MiB pages): {c:?}"
    );
    ctx(mount(PMEM, MNT, "rdaxfs", ""), "remount")?;
    verify(Path::new(MNT))?;
    ctx(umount(MNT), "umount")?;
    let bad = kernel_problems(&mark);
    ensure!(bad.is_empty(), "kernel log shows:\n{}", bad.join("\n"));
    fsck_clean(PMEM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punch_steps_on_host_fs() {
        let t = TempDir::new("pmd");
        punch_in(&t.0).unwrap();
        verify(&t.0).unwrap();
    }
}
