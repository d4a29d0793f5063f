//! zero-race: racing first writes to the same new blocks, some through
//! pwrite and some through stores into a shared mapping, must all survive.
//!
//! The historical bug: a newly allocated block was zeroed after the
//! allocation lock was dropped, so a second writer that found the block
//! already allocated could store its bytes before the first writer's
//! zeroing wiped them. `zero-race-teeth` re-enables that bug through the
//! `bug_zero_outside_lock` / `bug_delay_us` module parameters and passes
//! only if this workload detects the loss.
//!
//! Environment: `RDAXFS_ZERO_RACE_SECS` (time bound, default 25) and
//! `RDAXFS_ZERO_RACE_FILES` (files, default 200).

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use crate::ensure;
use crate::util::*;

/// Writer threads: even ones use pwrite, odd ones store through the mapping.
const THREADS: usize = 8;
/// Blocks per file, all holes until the race writes them.
const BLOCKS: usize = 8;
/// Bytes each thread writes in each block.
const SLICE: usize = BLOCK / THREADS;

/// What a run of the workload found.
#[derive(Debug, Default, Clone, Copy)]
pub struct RaceStats {
    /// Files raced on.
    pub files: usize,
    /// Bytes that did not read back as written.
    pub lost_bytes: u64,
    /// Files with at least one such byte.
    pub bad_files: usize,
    /// Blocks with at least one such byte.
    pub bad_blocks: usize,
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The value thread `t` writes at byte `off` of file `file` (never 0, so
/// a wiping zero is always seen).
fn value(file: usize, t: usize, off: usize) -> u8 {
    pattern_byte((file * THREADS + t) as u64, off as u64) | 1
}

/// Runs the race on up to `max_files` fresh files in `dir` for at most
/// `limit`, stopping early once `stop_after_bad` files lost data.
pub fn race_in(
    dir: &Path,
    max_files: usize,
    limit: Duration,
    stop_after_bad: Option<usize>,
) -> Result<RaceStats, String> {
    let start_barrier = Barrier::new(THREADS + 1);
    let done_barrier = Barrier::new(THREADS + 1);
    let stop = AtomicBool::new(false);
    let cur_fd = AtomicI32::new(-1);
    let cur_map = AtomicUsize::new(0);
    let cur_file = AtomicUsize::new(0);
    let error: Mutex<Option<String>> = Mutex::new(None);
    let len = BLOCKS * BLOCK;
    let mut stats = RaceStats::default();
    let t0 = Instant::now();

    std::thread::scope(|s| -> TestResult {
        for t in 0..THREADS {
            let (start_barrier, done_barrier, stop) = (&start_barrier, &done_barrier, &stop);
            let (cur_fd, cur_map, cur_file, error) = (&cur_fd, &cur_map, &cur_file, &error);
            s.spawn(move || {
                let mut buf = [0u8; SLICE];
                loop {
                    start_barrier.wait();
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    let fd = cur_fd.load(Ordering::Acquire);
                    let map = cur_map.load(Ordering::Acquire) as *mut u8;
                    let file = cur_file.load(Ordering::Acquire);
                    for k in 0..BLOCKS {
                        // All threads visit the blocks in the same order so
                        // they meet on each new block; rotate it per file.
                        let b = (k + file) % BLOCKS;
                        let off = b * BLOCK + t * SLICE;
                        for (j, v) in buf.iter_mut().enumerate() {
                            *v = value(file, t, off + j);
                        }
                        if t % 2 == 0 {
                            // SAFETY: `buf` is valid for SLICE bytes.
                            let n = unsafe {
                                libc::pwrite(fd, buf.as_ptr().cast(), SLICE, off as libc::off_t)
                            };
                            if n != SLICE as isize {
                                let e = std::io::Error::last_os_error();
                                let mut g = error.lock().unwrap_or_else(|p| p.into_inner());
                                g.get_or_insert(format!(
                                    "thread {t}: pwrite({SLICE} at {off}) of file {file} returned {n}: {e}"
                                ));
                            }
                        } else {
                            // SAFETY: the main thread keeps `len` bytes
                            // mapped until every thread passed done_barrier;
                            // threads write disjoint ranges.
                            unsafe {
                                std::ptr::copy_nonoverlapping(buf.as_ptr(), map.add(off), SLICE)
                            };
                        }
                    }
                    done_barrier.wait();
                }
            });
        }

        let mut run = || -> TestResult {
            for i in 0..max_files {
                if t0.elapsed() > limit || stop_after_bad.is_some_and(|n| stats.bad_files >= n) {
                    break;
                }
                let p = dir.join(format!("race-{i}"));
                let f = create_rw(&p)?;
                // Size the file first (the blocks stay holes) so the
                // mapping covers them.
                ctx(f.set_len(len as u64), "ftruncate")?;
                let map = ctx(Mapping::shared(f.as_raw_fd(), len), "mmap")?;
                cur_fd.store(f.as_raw_fd(), Ordering::Release);
                cur_map.store(map.ptr as usize, Ordering::Release);
                cur_file.store(i, Ordering::Release);
                start_barrier.wait();
                done_barrier.wait();
                if let Some(e) = error.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    return Err(e);
                }
                drop(map);
                let mut back = vec![0u8; len];
                ctx(f.read_exact_at(&mut back, 0), "read back")?;
                let (lost, blocks) = count_lost(i, &back);
                if lost > 0 {
                    if stats.bad_files < 3 {
                        println!("zero-race: file {i}: {lost} bytes lost in {blocks} blocks");
                    }
                    stats.bad_files += 1;
                    stats.bad_blocks += blocks;
                    stats.lost_bytes += lost;
                }
                stats.files += 1;
                drop(f);
                ctx(fs::remove_file(&p), "unlink")?;
            }
            Ok(())
        };
        let res = run();
        stop.store(true, Ordering::Release);
        start_barrier.wait();
        res
    })?;
    println!(
        "zero-race: {} files x {BLOCKS} blocks x {THREADS} threads in {:.1}s: {} bytes lost in {} blocks of {} files",
        stats.files,
        t0.elapsed().as_secs_f64(),
        stats.lost_bytes,
        stats.bad_blocks,
        stats.bad_files
    );
    Ok(stats)
}

/// Bytes of file `file` (read back as `back`) that differ from what the
/// writers stored, and the number of blocks holding them.
fn count_lost(file: usize, back: &[u8]) -> (u64, usize) {
    let mut lost = 0u64;
    let mut blocks = 0;
    for (b, block) in back.chunks(BLOCK).enumerate() {
        let bad = block
            .iter()
            .enumerate()
            .filter(|&(j, &v)| v != value(file, j / SLICE, b * BLOCK + j))
            .count() as u64;
        lost += bad;
        blocks += usize::from(bad > 0);
    }
    (lost, blocks)
}

fn limits() -> (usize, Duration) {
    (
        env_or("RDAXFS_ZERO_RACE_FILES", 200) as usize,
        Duration::from_secs(env_or("RDAXFS_ZERO_RACE_SECS", 25)),
    )
}

/// No byte of the racing writers may be lost.
pub fn zero_race() -> TestResult {
    let mut fx = Fixture::new()?;
    // Make sure the bug switches are off even if something left them on.
    for p in ["bug_zero_outside_lock", "bug_delay_us"] {
        if Path::new(&format!("/sys/module/rdaxfs/parameters/{p}")).exists() {
            fx.set_param(p, "0")?;
        }
    }
    fresh_mount()?;
    let (files, limit) = limits();
    let st = race_in(Path::new(MNT), files, limit, None)?;
    ensure!(
        st.files >= 20,
        "only {} files raced within {limit:?}",
        st.files
    );
    ensure!(
        st.lost_bytes == 0,
        "{} bytes lost in {} blocks of {} files (racing first writes wiped each other)",
        st.lost_bytes,
        st.bad_blocks,
        st.bad_files
    );
    ctx(umount(MNT), "umount")?;
    fx.reset_params()
}

/// With the historical bug switched back on, the workload must see loss.
pub fn zero_race_teeth() -> TestResult {
    let mut fx = Fixture::new()?;
    fresh_mount()?;
    fx.set_param("bug_zero_outside_lock", "1")?;
    fx.set_param("bug_delay_us", "200")?;
    let (files, limit) = limits();
    let res = race_in(Path::new(MNT), files, limit, Some(5));
    // Switch the bug off before anything else can fail.
    fx.reset_params()?;
    let st = res?;
    ensure!(
        st.lost_bytes > 0,
        "with bug_zero_outside_lock=1 bug_delay_us=200 the workload lost no data in {} files: the reproducer has no teeth",
        st.files
    );
    println!(
        "zero-race-teeth: the reintroduced bug lost {} bytes in {} files: reproducer has teeth",
        st.lost_bytes, st.bad_files
    );
    ctx(umount(MNT), "umount")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn race_workload_on_host_fs_loses_nothing() {
        let t = TempDir::new("race");
        let st = race_in(&t.0, 30, Duration::from_secs(20), None).unwrap();
        assert_eq!(st.files, 30);
        assert_eq!(st.lost_bytes, 0);
    }

    #[test]
    fn race_checker_sees_a_wiped_block() {
        let mut data = vec![0u8; BLOCKS * BLOCK];
        for (off, v) in data.iter_mut().enumerate() {
            *v = value(7, (off % BLOCK) / SLICE, off);
        }
        assert!(data.iter().all(|&b| b != 0));
        assert_eq!(count_lost(7, &data), (0, 0));
        // What the bug does: a late zeroing wipes another writer's slice.
        data[BLOCK + 10..BLOCK + 20].fill(0);
        data[5 * BLOCK + 600] ^= 0x80;
        assert_eq!(count_lost(7, &data), (11, 2));
        assert_eq!(count_lost(8, &data).1, BLOCKS);
    }
}
