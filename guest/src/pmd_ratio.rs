//! pmd-ratio (measurement): first-touch stores, one per 4 KiB, into a
//! 2 MiB-aligned shared mapping of a fresh sparse 64 MiB file; how many of
//! them were served by 2 MiB (PMD) mappings, on rdaxfs and, for
//! comparison, on ext4 -o dax on the same pmem device in the same boot.
//! Asserts only what rdaxfs controls: its PMD share is >= 99%.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::ensure;
use crate::util::*;

const LEN: usize = 64 << 20;
const PAGES: u64 = (LEN / BLOCK) as u64;

/// One run's figures.
#[derive(Debug, Clone, Copy)]
pub struct Ratio {
    /// Page faults counted by getrusage over the stores.
    pub faults: u64,
    /// PMD share estimated from the fault count.
    pub pmd_share: f64,
}

/// Share of the 4 KiB pages mapped by PMD faults, from `faults` page
/// faults for PAGES first touches: each PMD fault saves 511 faults.
pub fn share_from_faults(faults: u64) -> f64 {
    let pmds = PAGES.saturating_sub(faults) as f64 / 511.0;
    (pmds * 512.0 / PAGES as f64).clamp(0.0, 1.0)
}

/// Runs the workload on a new file in `dir`.
pub fn touch_in(dir: &Path) -> Result<Ratio, String> {
    let p = dir.join("ratio");
    let f = create_rw(&p)?;
    ctx(f.set_len(LEN as u64), "ftruncate 64 MiB")?;
    let map = ctx(
        Mapping::shared_aligned(f.as_raw_fd(), LEN, PMD),
        "mmap 64 MiB",
    )?;
    let before = page_faults();
    for i in 0..LEN / BLOCK {
        map.set(i * BLOCK, (i as u8) | 1);
    }
    let faults = page_faults() - before;
    for i in (0..LEN / BLOCK).step_by(97) {
        let v = map.get(i * BLOCK);
        ensure!(v == (i as u8) | 1, "byte {} reads {v:#04x}", i * BLOCK);
    }
    drop(map);
    drop(f);
    ctx(fs::remove_file(&p), "unlink")?;
    Ok(Ratio {
        faults,
        pmd_share: share_from_faults(faults),
    })
}

fn mkfs_ext4() -> Option<&'static str> {
    ["/sbin/mkfs.ext4", "/usr/sbin/mkfs.ext4", "/bin/mkfs.ext4"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// The measurement.
pub fn pmd_ratio() -> TestResult {
    let fx = Fixture::new()?;
    fresh_mount()?;
    let mark = dmesg_mark("pmd-ratio");
    let r = touch_in(Path::new(MNT))?;
    let c = umount_counters(MNT, "pmem0")?;
    let by_counter = if c.pmd_faults + c.pte_faults > 0 {
        (c.pmd_faults * 512) as f64 / (c.pmd_faults * 512 + c.pte_faults) as f64
    } else {
        0.0
    };
    println!(
        "pmd-ratio: rdaxfs: {} faults, pmd-mapped {:.2}% (counter: {} pmd, {} pte, {} fallbacks; {:.2}% by counter)",
        r.faults,
        r.pmd_share * 100.0,
        c.pmd_faults,
        c.pte_faults,
        c.pmd_fallbacks,
        by_counter * 100.0
    );
    let bad = kernel_problems(&mark);
    ensure!(bad.is_empty(), "kernel log shows:\n{}", bad.join("\n"));
    ensure!(
        by_counter >= 0.99 || c.pmd_faults + c.pte_faults == 0,
        "rdaxfs counters: {} pmd faults and {} pte faults: {:.2}% PMD-mapped, expected >= 99%",
        c.pmd_faults,
        c.pte_faults,
        by_counter * 100.0
    );
    ensure!(
        r.pmd_share.total_cmp(&0.99).is_ge(),
        "rdaxfs: {} page faults for {PAGES} first touches of a 2 MiB-aligned mapping: {:.2}% PMD-mapped, expected >= 99%",
        r.faults,
        r.pmd_share * 100.0
    );

    let res = ext4_half(r);
    // Later tests expect rdaxfs on the device.
    umount_all(MNT);
    mkfs(PMEM, &[])?;
    drop(fx);
    res
}

fn ext4_half(rd: Ratio) -> TestResult {
    let Some(mk) = mkfs_ext4() else {
        println!("pmd-ratio: ext4: mkfs.ext4 not available");
        return Ok(());
    };
    run(mk, &["-F", "-q", "-b", "4096", PMEM])?;
    if let Err(e) = mount(PMEM, MNT, "ext4", "dax") {
        println!("pmd-ratio: ext4: mount -t ext4 -o dax failed: {e}; skipping the comparison");
        return Ok(());
    }
    let r = touch_in(Path::new(MNT));
    ctx(umount(MNT), "umount ext4")?;
    let r = r?;
    println!(
        "pmd-ratio: ext4-dax: {} faults, pmd-mapped {:.2}%",
        r.faults,
        r.pmd_share * 100.0
    );
    println!(
        "pmd-ratio: rdaxfs/ext4-dax: PMD share {:.2}x, faults {:.3}x",
        if r.pmd_share > 0.0 {
            rd.pmd_share / r.pmd_share
        } else {
            f64::INFINITY
        },
        rd.faults as f64 / r.faults.max(1) as f64
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_estimate() {
        assert_eq!(share_from_faults(PAGES), 0.0);
        assert!((share_from_faults(32) - 1.0).abs() < 1e-9 || share_from_faults(32) == 1.0);
        // Half of the 32 PMDs mapped by PMD faults.
        let f = 16 + 16 * 512;
        assert!((share_from_faults(f) - 0.5).abs() < 0.01);
    }

    #[test]
    fn touch_on_host_fs_counts_faults() {
        let t = TempDir::new("ratio");
        let r = touch_in(&t.0).unwrap();
        // Whatever the host does, every page was touched once.
        assert!(r.faults > 0 && r.faults <= PAGES + 64, "{r:?}");
    }
}
