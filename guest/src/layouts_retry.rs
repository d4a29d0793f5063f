//! layouts-retry: several pages of a file pinned at once by O_DIRECT reads
//! from the slow device, released one after another; a truncate to 0
//! started while they are pinned must not return before the last pin is
//! released (seed 003: the break-layouts loop retries until no page is
//! busy, not just once).
//!
//! `layouts-retry-teeth` sets `bug_break_layouts_once=1` (the pre-2018
//! loop) and passes only if the truncate returns early or the kernel warns.

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::ensure;
use crate::util::*;

/// Pinning threads.
const K: usize = 4;
/// Delay between the starts of the pins.
const STAGGER_MS: u64 = 40;
/// When the truncate starts, after the first pin.
const TRUNC_AT_MS: u64 = 50;
/// Each read completes this long after it is submitted, so a pin taken
/// at `start` is held until at least `start + PIN_MS`.
const PIN_MS: u64 = 200;
/// Timer and clock slack: a correct truncate returns no earlier than
/// `last pin start + PIN_MS - SLACK_MS`. (The pread return times are only
/// printed: under host load the reader may wake well after the unpin
/// that let the truncate go.)
const SLACK_MS: u64 = 30;
const ROUNDS: usize = 5;
const FILE_BLOCKS: usize = 16;

/// One round's figures, in ms since the round started.
#[derive(Debug)]
struct Round {
    /// (start, end, result) of each pin's pread.
    pins: Vec<(u64, u64, Result<usize, i32>)>,
    trunc_start: u64,
    trunc_end: u64,
    layout_waits: u64,
    problems: Vec<String>,
}

impl Round {
    /// Earliest possible release of the last successful pin: its start
    /// plus the device's completion time.
    fn last_release(&self) -> Option<u64> {
        self.pins
            .iter()
            .filter(|p| p.2.is_ok())
            .map(|p| p.0 + PIN_MS)
            .max()
    }
    fn early(&self) -> bool {
        self.last_release()
            .is_some_and(|l| self.trunc_end + SLACK_MS < l)
    }
    fn show(&self, i: usize) -> String {
        let pins: Vec<String> = self
            .pins
            .iter()
            .map(|(s, e, r)| match r {
                Ok(_) => format!("{s}..{e}"),
                Err(er) => format!("{s}..{e} {}", errno_name(*er)),
            })
            .collect();
        format!(
            "round {i}: pins [{}] ms; truncate {}..{} ms; last pin held until >= {:?} ms; layout waits {}",
            pins.join(", "),
            self.trunc_start,
            self.trunc_end,
            self.last_release(),
            self.layout_waits
        )
    }
}

fn round(i: usize) -> Result<Round, String> {
    let p = Path::new(MNT).join(format!("pinned-{i}"));
    let f = create_rw(&p)?;
    let mut data = vec![0u8; FILE_BLOCKS * BLOCK];
    fill_pattern(&mut data, i as u64, 0);
    ctx(f.write_all_at(&data, 0), "write file")?;
    let map = ctx(Mapping::shared(f.as_raw_fd(), FILE_BLOCKS * BLOCK), "mmap")?;
    for b in 0..FILE_BLOCKS {
        let _ = map.get(b * BLOCK);
    }
    let nullb = nullb_open()?;
    let before = counters_now("pmem0");
    let mark = dmesg_mark("layouts-retry");
    let barrier = Barrier::new(K + 1);
    let base = map.ptr as usize;
    let nfd = nullb.as_raw_fd();
    let (pins, trunc_start, trunc_end, tr) = std::thread::scope(|s| {
        let hs: Vec<_> = (0..K)
            .map(|k| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let t0 = Instant::now();
                    std::thread::sleep(Duration::from_millis(STAGGER_MS * k as u64));
                    let st = t0.elapsed().as_millis() as u64;
                    // Distinct, non-adjacent pages.
                    let page = 1 + 3 * k;
                    let r = nullb_pread(
                        nfd,
                        (base + page * BLOCK) as *mut u8,
                        BLOCK,
                        (k as u64) << 20,
                    );
                    (st, t0.elapsed().as_millis() as u64, r)
                })
            })
            .collect();
        barrier.wait();
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_millis(TRUNC_AT_MS));
        let ts = t0.elapsed().as_millis() as u64;
        let tr = ftruncate(f.as_raw_fd(), 0);
        let te = t0.elapsed().as_millis() as u64;
        let pins: Vec<_> = hs
            .into_iter()
            .map(|h| h.join().unwrap_or((0, 0, Err(-1))))
            .collect();
        (pins, ts, te, tr)
    });
    tr.map_err(|e| format!("round {i}: ftruncate to 0: {}", errno_name(e)))?;
    drop(map);
    drop(f);
    let problems = kernel_problems(&mark);
    let layout_waits = match (before, counters_now("pmem0")) {
        (Some(b), Some(a)) => a.since(&b).layout_waits,
        _ => {
            // No debugfs: this round ran on its own mount.
            let c = umount_counters(MNT, "pmem0")?;
            ctx(mount(PMEM, MNT, "rdaxfs", ""), "remount")?;
            c.layout_waits
        }
    };
    ctx(fs::remove_file(&p), "unlink")?;
    Ok(Round {
        pins,
        trunc_start,
        trunc_end,
        layout_waits,
        problems,
    })
}

fn rounds(fx: &mut Fixture, bug: bool) -> Result<Vec<Round>, String> {
    for p in [
        "bug_skip_break_layouts",
        "bug_break_layouts_once",
        "bug_delay_us",
    ] {
        if Path::new(&format!("/sys/module/rdaxfs/parameters/{p}")).exists() {
            fx.set_param(p, "0")?;
        }
    }
    nullb_open()?;
    fresh_mount()?;
    if bug {
        fx.set_param("bug_break_layouts_once", "1")?;
    }
    let mut out = Vec::new();
    for i in 0..ROUNDS {
        let r = round(i);
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                fx.reset_params()?;
                return Err(e);
            }
        };
        println!("layouts-retry: {}", r.show(i));
        out.push(r);
    }
    fx.reset_params()?;
    Ok(out)
}

/// The truncate waits for every pin; break-layouts retried.
pub fn layouts_retry() -> TestResult {
    let mut fx = Fixture::new()?;
    let rs = rounds(&mut fx, false)?;
    for (i, r) in rs.iter().enumerate() {
        ensure!(
            r.problems.is_empty(),
            "{}: kernel log shows:\n{}",
            r.show(i),
            r.problems.join("\n")
        );
        let ok = r.pins.iter().filter(|p| p.2.is_ok()).count();
        ensure!(
            ok == K,
            "{}: only {ok} of {K} pinning reads succeeded (expected all: each started before the truncate could finish)",
            r.show(i)
        );
        let first = r
            .pins
            .iter()
            .filter(|p| p.2.is_ok())
            .map(|p| p.1 - p.0)
            .min()
            .unwrap_or(0);
        ensure!(
            first >= PIN_MS - SLACK_MS,
            "{}: a read from {NULLB} took {first} ms; expected ~200 (slow device not configured?)",
            r.show(i)
        );
        ensure!(
            !r.early(),
            "{}: ftruncate returned at {} ms, before the last pin could be released (>= {:?} ms, slack {SLACK_MS} ms): break-layouts stopped early",
            r.show(i),
            r.trunc_end,
            r.last_release()
        );
        ensure!(
            r.layout_waits >= 2,
            "{}: layout waits increased by {}, expected >= 2 (several pinned pages)",
            r.show(i),
            r.layout_waits
        );
    }
    ctx(umount(MNT), "umount")?;
    fsck_clean(PMEM)
}

/// With the one-wait loop, the truncate must return early or the kernel warn.
pub fn layouts_retry_teeth() -> TestResult {
    let mut fx = Fixture::new()?;
    let rs = rounds(&mut fx, true)?;
    let early = rs.iter().filter(|r| r.early()).count();
    let warned = rs.iter().filter(|r| !r.problems.is_empty()).count();
    umount_all(MNT);
    mkfs(PMEM, &[])?;
    println!(
        "layouts-retry-teeth: {early} of {ROUNDS} rounds returned before the last pin was released; {warned} round(s) with kernel warnings"
    );
    if let Some(r) = rs.iter().find(|r| !r.problems.is_empty()) {
        println!(
            "layouts-retry-teeth: kernel log:\n  {}",
            r.problems
                .iter()
                .take(4)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }
    ensure!(
        early + warned > 0,
        "with bug_break_layouts_once=1 every truncate waited for the last pin and nothing warned: the reproducer has no teeth"
    );
    Ok(())
}
