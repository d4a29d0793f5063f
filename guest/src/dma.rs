//! dma-truncate: O_DIRECT reads from a slow device (null_blk, 200 ms per
//! I/O) into a shared DAX mapping of an rdaxfs file keep the file's own
//! pmem blocks pinned, while other threads truncate, punch and zero the
//! file. rdaxfs must break layouts first: wait until no page of the range
//! is pinned (seed 002). Freeing a pinned block makes the kernel warn in
//! `dax_disassociate_entry` ("WARNING: ... fs/dax.c").
//!
//! `dma-truncate-teeth` runs the same workload with
//! `bug_skip_break_layouts=1` and passes only if the kernel warns.
//!
//! Environment: `RDAXFS_DMA_SECS` (workload time, default 10).

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ensure;
use crate::util::*;

/// Blocks of the file DMA targets.
const FILE_BLOCKS: usize = 64;
/// DMA threads.
const DMA_THREADS: usize = 3;
/// Threads changing the file's layout.
const MUTATORS: usize = 2;
/// DMA threads start one read per slot, all within its first part, so
/// that every slot ends with a moment where no page is pinned and a
/// waiting truncate can finish.
const SLOT: Duration = Duration::from_millis(450);
/// Window at the start of a slot in which DMA reads start.
const SLOT_START_MS: u64 = 120;
/// Size of the sidecar file that must stay intact.
const SIDECAR: usize = 1 << 20;
const SIDECAR_SEED: u64 = 0x51DE;
const FILE_SEED: u64 = 0xD3A;

/// What the workload did.
#[derive(Debug, Default)]
pub struct DmaStats {
    /// DMA reads that completed.
    pub dma_ok: u64,
    /// DMA reads that failed with EFAULT (their pages were truncated away).
    pub dma_efault: u64,
    /// DMA reads that failed otherwise.
    pub dma_other: u64,
    /// First other DMA error.
    pub dma_other_first: Option<String>,
    /// Longest DMA read, ms.
    pub dma_max_ms: u64,
    /// Shortest successful DMA read, ms.
    pub dma_min_ms: u64,
    /// Truncate-down (and back up) cycles.
    pub truncates: u64,
    /// PUNCH_HOLE calls.
    pub punches: u64,
    /// ZERO_RANGE calls.
    pub zeroes: u64,
    /// Full rewrites.
    pub rewrites: u64,
    /// Longest layout change, ms.
    pub op_max_ms: u64,
}

fn file_data() -> Vec<u8> {
    let mut v = vec![0u8; FILE_BLOCKS * BLOCK];
    fill_pattern(&mut v, FILE_SEED, 0);
    v
}

/// Runs DMA threads and mutators on `file` (mapped as `map`) for `secs`.
fn workload(file: &fs::File, map: &Mapping, secs: u64) -> Result<DmaStats, String> {
    let nullb = nullb_open()?;
    let nfd = nullb.as_raw_fd();
    let fd = file.as_raw_fd();
    let stop = AtomicBool::new(false);
    let err: Mutex<Option<String>> = Mutex::new(None);
    let stats = Mutex::new(DmaStats {
        dma_min_ms: u64::MAX,
        ..Default::default()
    });
    let (dma_ok, dma_efault, dma_other) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let base = map.ptr as usize;
    let data = file_data();
    let t0 = Instant::now();
    let seed = clock_seed();
    println!("dma: seed {seed:#x}, {DMA_THREADS} DMA threads, {MUTATORS} mutators, {secs}s");

    std::thread::scope(|s| {
        for t in 0..DMA_THREADS {
            let (stop, stats) = (&stop, &stats);
            let (dma_ok, dma_efault, dma_other) = (&dma_ok, &dma_efault, &dma_other);
            s.spawn(move || {
                let mut rng = Rng::new(seed ^ ((t as u64 + 1) * 0x1234_5678));
                while !stop.load(Ordering::Relaxed) {
                    // Start inside the first part of the next slot.
                    let el = t0.elapsed();
                    let slot = el.as_millis() as u64 / SLOT.as_millis() as u64 + 1;
                    let at = Duration::from_millis(
                        slot * SLOT.as_millis() as u64 + rng.below(SLOT_START_MS),
                    );
                    std::thread::sleep(at.saturating_sub(t0.elapsed()));
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let page = rng.below(FILE_BLOCKS as u64) as usize;
                    let pages = rng.range(1, 16).min((FILE_BLOCKS - page) as u64) as usize;
                    let dev_off = rng.below(1024) * 65536;
                    let start = Instant::now();
                    let r = nullb_pread(
                        nfd,
                        (base + page * BLOCK) as *mut u8,
                        pages * BLOCK,
                        dev_off,
                    );
                    let ms = start.elapsed().as_millis() as u64;
                    let mut st = stats.lock().unwrap_or_else(|p| p.into_inner());
                    st.dma_max_ms = st.dma_max_ms.max(ms);
                    match r {
                        Ok(_) => {
                            dma_ok.fetch_add(1, Ordering::Relaxed);
                            st.dma_min_ms = st.dma_min_ms.min(ms);
                        }
                        Err(libc::EFAULT) => {
                            dma_efault.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            dma_other.fetch_add(1, Ordering::Relaxed);
                            st.dma_other_first.get_or_insert(format!(
                                "pread {} pages into page {page}: {}",
                                pages,
                                errno_name(e)
                            ));
                        }
                    }
                }
            });
        }
        for t in 0..MUTATORS {
            let (stop, stats, err, data) = (&stop, &stats, &err, &data);
            s.spawn(move || {
                let mut rng = Rng::new(seed ^ ((t as u64 + 101) * 0x8765_4321));
                let res = (|| -> TestResult {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(rng.range(10, 150)));
                        let size = (FILE_BLOCKS * BLOCK) as u64;
                        let start = Instant::now();
                        let op = rng.below(4);
                        match op {
                            0 => {
                                // Down (sometimes to an unaligned size), up, rewrite.
                                let down = if rng.below(3) == 0 {
                                    rng.below(size)
                                } else {
                                    rng.below(FILE_BLOCKS as u64) * BLOCK as u64
                                };
                                ftruncate(fd, down).map_err(|e| {
                                    format!("ftruncate down to {down}: {}", errno_name(e))
                                })?;
                                ftruncate(fd, size).map_err(|e| {
                                    format!("ftruncate up to {size}: {}", errno_name(e))
                                })?;
                                ctx(file.write_all_at(data, 0), "rewrite after truncate")?;
                            }
                            1 | 2 => {
                                let off = rng.below(size - 1);
                                let len = rng.range(1, (size - off).min(16 * BLOCK as u64));
                                let (mode, what) = if op == 1 {
                                    (
                                        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                                        "PUNCH_HOLE",
                                    )
                                } else {
                                    (libc::FALLOC_FL_ZERO_RANGE, "ZERO_RANGE")
                                };
                                fallocate(fd, mode, off, len).map_err(|e| {
                                    format!("fallocate {what} {off}+{len}: {}", errno_name(e))
                                })?;
                            }
                            _ => ctx(file.write_all_at(data, 0), "rewrite")?,
                        }
                        let ms = start.elapsed().as_millis() as u64;
                        let mut st = stats.lock().unwrap_or_else(|p| p.into_inner());
                        st.op_max_ms = st.op_max_ms.max(ms);
                        match op {
                            0 => st.truncates += 1,
                            1 => st.punches += 1,
                            2 => st.zeroes += 1,
                            _ => st.rewrites += 1,
                        }
                    }
                    Ok(())
                })();
                if let Err(e) = res {
                    err.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert(e);
                    stop.store(true, Ordering::Relaxed);
                }
            });
        }
        while t0.elapsed() < Duration::from_secs(secs) && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::Relaxed);
    });
    if let Some(e) = err.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let mut st = stats.into_inner().unwrap_or_else(|p| p.into_inner());
    st.dma_ok = dma_ok.into_inner();
    st.dma_efault = dma_efault.into_inner();
    st.dma_other = dma_other.into_inner();
    println!(
        "dma: {:.1}s: DMA reads {} ok, {} EFAULT, {} other{} (ok reads took {}..{} ms); \
         {} truncates, {} punches, {} zero-ranges, {} rewrites (slowest {} ms)",
        t0.elapsed().as_secs_f64(),
        st.dma_ok,
        st.dma_efault,
        st.dma_other,
        st.dma_other_first
            .as_deref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default(),
        if st.dma_min_ms == u64::MAX {
            0
        } else {
            st.dma_min_ms
        },
        st.dma_max_ms,
        st.truncates,
        st.punches,
        st.zeroes,
        st.rewrites,
        st.op_max_ms
    );
    Ok(st)
}

/// Creates the sidecar and the DMA target, maps the target, runs the
/// workload; returns its stats and the sidecar path.
fn setup_and_run(secs: u64) -> Result<DmaStats, String> {
    let side = Path::new(MNT).join("sidecar");
    let mut sd = vec![0u8; SIDECAR];
    fill_pattern(&mut sd, SIDECAR_SEED, 0);
    ctx(fs::write(&side, &sd), "write sidecar")?;
    let p = Path::new(MNT).join("dma-target");
    let f = create_rw(&p)?;
    ctx(f.write_all_at(&file_data(), 0), "write target")?;
    let map = ctx(
        Mapping::shared(f.as_raw_fd(), FILE_BLOCKS * BLOCK),
        "mmap target",
    )?;
    // Fault every page in so DMA finds them mapped.
    for i in 0..FILE_BLOCKS {
        let _ = map.get(i * BLOCK);
    }
    let st = workload(&f, &map, secs)?;
    ensure!(
        st.dma_ok + st.dma_efault > 0,
        "no DMA read completed at all"
    );
    ensure!(
        st.dma_ok == 0 || st.dma_min_ms >= 100,
        "a DMA read from {NULLB} finished in {} ms: the device is not slow (expected ~200 ms; \
         null_blk.irqmode=2 null_blk.completion_nsec=200000000 missing?)",
        st.dma_min_ms
    );
    ensure!(
        st.truncates + st.punches + st.zeroes > 0,
        "no layout change ran in {secs}s"
    );
    Ok(st)
}

fn check_sidecar() -> TestResult {
    let side = Path::new(MNT).join("sidecar");
    let got = ctx(fs::read(&side), "read sidecar")?;
    ensure!(
        got.len() == SIDECAR,
        "sidecar is {} bytes, expected {SIDECAR}",
        got.len()
    );
    if let Some(m) = check_pattern(&got, SIDECAR_SEED, 0) {
        return Err(format!("sidecar file damaged: {m}"));
    }
    Ok(())
}

fn reset_bugs(fx: &mut Fixture) -> TestResult {
    for p in [
        "bug_skip_break_layouts",
        "bug_break_layouts_once",
        "bug_delay_us",
    ] {
        if Path::new(&format!("/sys/module/rdaxfs/parameters/{p}")).exists() {
            fx.set_param(p, "0")?;
        }
    }
    Ok(())
}

/// Truncate/punch/zero racing DMA into the file's own pages: no warning,
/// sidecar intact, layout waits happened, fsck clean.
pub fn dma_truncate() -> TestResult {
    let mut fx = Fixture::new()?;
    reset_bugs(&mut fx)?;
    nullb_open()?;
    fresh_mount()?;
    let mark = dmesg_mark("dma-truncate");
    setup_and_run(env_u64("RDAXFS_DMA_SECS", 10))?;
    let bad = kernel_problems(&mark);
    ensure!(
        bad.is_empty(),
        "kernel log after the marker shows {} problem line(s), expected none (a pinned page was freed?):\n{}",
        bad.len(),
        bad.join("\n")
    );
    check_sidecar()?;
    let c = umount_counters(MNT, "pmem0")?;
    println!("dma-truncate: counters {c:?}");
    ensure!(
        c.layout_waits > 0,
        "layout waits = 0: no truncate/punch ever waited for a pinned page (expected > 0)"
    );
    fsck_clean(PMEM)?;
    ctx(mount(PMEM, MNT, "rdaxfs", ""), "remount")?;
    check_sidecar()?;
    ctx(umount(MNT), "umount")?;
    fx.reset_params()
}

/// With break-layouts skipped, the workload must make the kernel warn.
pub fn dma_truncate_teeth() -> TestResult {
    let mut fx = Fixture::new()?;
    reset_bugs(&mut fx)?;
    nullb_open()?;
    fresh_mount()?;
    let mark = dmesg_mark("dma-truncate-teeth");
    fx.set_param("bug_skip_break_layouts", "1")?;
    let res = setup_and_run(env_u64("RDAXFS_DMA_SECS", 10));
    // Blocks were freed and reused under DMA: page refcounts may stay
    // elevated for good, and unmount's wait for idle pages would never end
    // (a hung guest instead of a result). The DMA threads are done; drop
    // the entries without that wait.
    let skip = fx.set_param("bug_evict_skip_wait", "1");
    umount_all(MNT);
    fx.reset_params()?;
    skip?;
    let st = res?;
    let bad = kernel_problems(&mark);
    // The filesystem may be inconsistent now: start over.
    mkfs(PMEM, &[])?;
    ensure!(
        !bad.is_empty(),
        "with bug_skip_break_layouts=1 the kernel log shows no WARNING/BUG after {} truncates, \
         {} punches, {} zero-ranges and {} DMA reads: the reproducer has no teeth",
        st.truncates,
        st.punches,
        st.zeroes,
        st.dma_ok + st.dma_efault
    );
    println!(
        "dma-truncate-teeth: the reintroduced bug was seen ({} line(s)); first:\n  {}",
        bad.len(),
        bad.iter().take(4).cloned().collect::<Vec<_>>().join("\n  ")
    );
    Ok(())
}
