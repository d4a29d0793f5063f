//! `bench-suite`: the fxmark-style workloads of issue 12 on rdaxfs and on
//! ext4 -o dax, on the same pmem in the same boot (scripts/bench.sh,
//! `make bench`).
//!
//! Protocol: `warm-up + reps` repetitions; in each, the raw device limit
//! (O_DIRECT to /dev/pmem0) runs first, then each filesystem is made fresh,
//! mounted and runs every workload, the filesystems' order reversed every
//! other repetition (A B, B A, ...) so that drift in host load hits both
//! alike. The warm-up repetition is not recorded. Every figure of a
//! recorded repetition is printed as one CSV line
//!
//! `BENCH-CSV: workload,threads,fs,rep,value,unit,better`
//!
//! (`better` is `hi` or `lo`), and a table of median [min-max] and the
//! ratio of medians at the end (ratio > 1: rdaxfs better, for `lo`
//! figures too). Mount time (0/10k/100k files) and aged-filesystem PMD
//! coverage run after the repetitions, each filesystem in turn: making a
//! filesystem with 100k files takes too long to remake it per repetition,
//! and coverage is deterministic (fixed seed) so it runs once.
//!
//! Environment: `RDAXFS_BENCH_MODE=full|quick` (default quick: the smoke
//! test of `make check`, 1 warm-up + 3 reps, small counts, 1 and 4
//! threads only),
//! `RDAXFS_BENCH_REPS`, `RDAXFS_BENCH_WARMUP`, `RDAXFS_BENCH_MS` (time per
//! workload and repetition), `RDAXFS_BENCH_MT_FILES` (e.g. `0,10000`).
//! Passes if every figure was produced; timings are not pass/fail.

use crate::bench::stats;
use crate::util::*;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

/// What a run measures and how much.
struct Cfg {
    quick: bool,
    warmup: usize,
    reps: usize,
    /// Time per time-bounded workload, repetition and filesystem.
    dur: Duration,
    /// Size of the sequential-I/O file and of the raw device stream.
    seq_mib: usize,
    /// File size per thread of the allocating PTE-fault and overwrite runs.
    fault_mib: usize,
    /// File size per thread of the PMD-mapping allocating run.
    pmd_mib: usize,
    /// File size per thread of DWOL and DRBL.
    rw_mib: usize,
    /// Entries of each thread's directory for MRDL.
    dir_entries: usize,
    /// Bytes all threads of DWAL may append together.
    append_cap: usize,
    /// Files all threads of MWCL may create together.
    create_cap: usize,
    /// File counts of the mount-time figures.
    mt_files: Vec<u64>,
    /// Device fill of the aging phase, in percent.
    age_fill: u64,
    /// `RDAXFS_BENCH_ONLY`: run only the figures whose name contains one
    /// of these (comma-separated; "mount" and "aged" name the last two
    /// phases). Empty: everything.
    only: Vec<String>,
}

impl Cfg {
    fn from_env() -> Self {
        let quick = std::env::var("RDAXFS_BENCH_MODE").map_or(true, |m| m != "full");
        let mt_default = if quick { "0,1000" } else { "0,10000,100000" };
        let mt_files = std::env::var("RDAXFS_BENCH_MT_FILES")
            .unwrap_or_else(|_| mt_default.into())
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        Self {
            quick,
            warmup: env_u64("RDAXFS_BENCH_WARMUP", 1) as usize,
            reps: env_u64("RDAXFS_BENCH_REPS", if quick { 3 } else { 5 }).max(1) as usize,
            dur: Duration::from_millis(env_u64("RDAXFS_BENCH_MS", if quick { 100 } else { 400 })),
            seq_mib: if quick { 8 } else { 64 },
            fault_mib: if quick { 1 } else { 8 },
            pmd_mib: if quick { 4 } else { 32 },
            rw_mib: if quick { 1 } else { 4 },
            dir_entries: if quick { 100 } else { 1000 },
            append_cap: if quick { 16 * MIB } else { 64 * MIB },
            create_cap: if quick { 2000 } else { 8000 },
            mt_files,
            age_fill: 80,
            only: std::env::var("RDAXFS_BENCH_ONLY")
                .unwrap_or_default()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        }
    }

    /// Whether the figure `name` is to be run.
    fn wants(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| name.contains(o.as_str()))
    }
}

/// A filesystem under test.
struct Fs {
    name: &'static str,
    fstype: &'static str,
    opts: &'static str,
}

const RDAXFS: Fs = Fs {
    name: "rdaxfs",
    fstype: "rdaxfs",
    opts: "",
};
const EXT4: Fs = Fs {
    name: "ext4-dax",
    fstype: "ext4",
    opts: "dax",
};
const MKFS_EXT4: &str = "/sbin/mkfs.ext4";

impl Fs {
    /// Makes the filesystem on pmem, with `inodes` inodes and the tree
    /// `populate` copied in if given.
    fn mkfs(&self, inodes: Option<u64>, populate: Option<&str>) -> TestResult {
        umount_all(MNT);
        let n = inodes.map(|n| n.to_string());
        let mut args: Vec<&str> = Vec::new();
        let cmd = if self.fstype == "rdaxfs" {
            args.extend([PMEM, "--force"]);
            if let Some(n) = &n {
                args.extend(["--inodes", n]);
            }
            if let Some(d) = populate {
                args.extend(["-d", d]);
            }
            MKFS
        } else {
            args.extend(["-F", "-q", "-b", "4096"]);
            if let Some(n) = &n {
                args.extend(["-N", n]);
            }
            if let Some(d) = populate {
                args.extend(["-d", d]);
            }
            args.push(PMEM);
            MKFS_EXT4
        };
        run(cmd, &args).map(|_| ())
    }

    fn mount(&self) -> TestResult {
        mount(PMEM, MNT, self.fstype, self.opts).map_err(|e| format!("mount {}: {e}", self.name))
    }
}

/// Recorded figures: (workload, threads, fs) -> values, plus units.
#[derive(Default)]
struct Figures {
    vals: BTreeMap<(String, usize, String), Vec<f64>>,
    units: BTreeMap<String, (&'static str, &'static str)>,
    order: Vec<(String, usize)>,
}

impl Figures {
    fn record(
        &mut self,
        w: &str,
        unit: &'static str,
        threads: usize,
        fs: &str,
        rep: usize,
        v: f64,
    ) {
        let better = if unit == "ms" { "lo" } else { "hi" };
        println!("BENCH-CSV: {w},{threads},{fs},{rep},{v:.3},{unit},{better}");
        self.units.insert(w.into(), (unit, better));
        if !self.order.contains(&(w.to_string(), threads)) {
            self.order.push((w.to_string(), threads));
        }
        self.vals
            .entry((w.into(), threads, fs.into()))
            .or_default()
            .push(v);
    }
}

/// Runs `f(t)` in `threads` threads released together by a barrier;
/// returns the sum of the units they report per second of wall time.
fn parallel<F>(threads: usize, f: F) -> Result<f64, String>
where
    F: Fn(usize) -> Result<f64, String> + Sync,
{
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let (b, f) = (&barrier, &f);
                s.spawn(move || {
                    b.wait();
                    f(t)
                })
            })
            .collect();
        barrier.wait();
        let t0 = Instant::now();
        let mut units = 0.0;
        let mut err = None;
        for h in hs {
            match h.join() {
                Ok(Ok(u)) => units += u,
                Ok(Err(e)) => err = Some(e),
                Err(_) => err = Some("workload thread panicked".to_string()),
            }
        }
        let secs = t0.elapsed().as_secs_f64().max(1e-9);
        err.map_or(Ok(units / secs), Err)
    })
}

/// Runs `op(i)` for i = 0, 1, ... until `dur` has passed or `cap` ops ran;
/// returns the ops done.
fn until(
    dur: Duration,
    cap: usize,
    mut op: impl FnMut(usize) -> Result<(), String>,
) -> Result<usize, String> {
    let t0 = Instant::now();
    let mut i = 0;
    while i < cap {
        op(i)?;
        i += 1;
        if i % 8 == 0 && t0.elapsed() >= dur {
            break;
        }
    }
    Ok(i)
}

fn wdir(base: &str, t: usize) -> String {
    format!("{base}/t{t}")
}

/// Makes `base` and one private directory per thread.
fn setup_dirs(base: &str, threads: usize) -> TestResult {
    let _ = fs::remove_dir_all(base);
    ctx(fs::create_dir(base), base)?;
    for t in 0..threads {
        ctx(fs::create_dir(wdir(base, t)), "mkdir")?;
    }
    Ok(())
}

/// A private file per thread of `mib` MiB written by write(2), opened
/// read-write.
fn prewritten(base: &str, threads: usize, mib: usize) -> Result<Vec<fs::File>, String> {
    let chunk = vec![0x6bu8; MIB];
    let mut files = Vec::new();
    for t in 0..threads {
        let f = create_rw(format!("{}/f", wdir(base, t)).as_ref())?;
        for i in 0..mib {
            ctx(f.write_all_at(&chunk, (i * MIB) as u64), "pwrite")?;
        }
        ctx(f.sync_all(), "fsync")?;
        files.push(f);
    }
    Ok(files)
}

/// Sparse private files of `mib` MiB per thread.
fn sparse(base: &str, threads: usize, mib: usize) -> Result<Vec<fs::File>, String> {
    let mut files = Vec::new();
    for t in 0..threads {
        let f = create_rw(format!("{}/f", wdir(base, t)).as_ref())?;
        ctx(f.set_len((mib * MIB) as u64), "ftruncate")?;
        files.push(f);
    }
    Ok(files)
}

/// A workload group: figure names with units, the thread counts it runs
/// with, and the function returning one value per name.
type WorkFn = fn(&Cfg, &str, usize) -> Result<Vec<f64>, String>;
struct Group {
    names: &'static [(&'static str, &'static str)],
    threads: &'static [usize],
    f: WorkFn,
}

const T124: &[usize] = &[1, 2, 4];
const T1: &[usize] = &[1];

const GROUPS: &[Group] = &[
    Group {
        names: &[("DWAL append 4K", "ops/s")],
        threads: T124,
        f: dwal,
    },
    Group {
        names: &[("DWOL overwrite 4K", "ops/s")],
        threads: T124,
        f: dwol,
    },
    Group {
        names: &[("DRBL read 4K", "ops/s")],
        threads: T124,
        f: drbl,
    },
    Group {
        names: &[("seq write 1M", "MiB/s"), ("seq read 1M", "MiB/s")],
        threads: T1,
        f: seq,
    },
    Group {
        names: &[("MWCL create", "ops/s"), ("MWUL unlink", "ops/s")],
        threads: T124,
        f: mwcl_mwul,
    },
    Group {
        names: &[("MWRL rename", "ops/s")],
        threads: T124,
        f: mwrl,
    },
    Group {
        names: &[("MRDL readdir", "entries/s")],
        threads: T124,
        f: mrdl,
    },
    Group {
        names: &[("small create+4K+fsync+unlink", "files/s")],
        threads: T124,
        f: small,
    },
    Group {
        names: &[("mmap alloc PTE", "faults/s")],
        threads: T124,
        f: mmap_pte,
    },
    Group {
        names: &[("mmap alloc PMD", "MiB/s")],
        threads: T124,
        f: mmap_pmd,
    },
    Group {
        names: &[("mmap overwrite", "MiB/s")],
        threads: T124,
        f: mmap_overwrite,
    },
    Group {
        names: &[("fallocate+punch mapped 2M", "cycles/s")],
        threads: T124,
        f: falloc_punch,
    },
];

fn dwal(c: &Cfg, base: &str, threads: usize) -> Result<Vec<f64>, String> {
    let files = sparse(base, threads, 0)?;
    let block = vec![0x41u8; BLOCK];
    let cap = c.append_cap / threads / BLOCK;
    let r = parallel(threads, |t| {
        let n = until(c.dur, cap, |i| {
            ctx(files[t].write_all_at(&block, (i * BLOCK) as u64), "append")
        })?;
        Ok(n as f64)
    })?;
    Ok(vec![r])
}

fn dwol(c: &Cfg, base: &str, threads: usize) -> Result<Vec<f64>, String> {
    let files = prewritten(base, threads, c.rw_mib)?;
    let blocks = c.rw_mib * MIB / BLOCK;
    let block = vec![0x42u8; BLOCK];
    let r = parallel(threads, |t| {
        let n = until(c.dur, usize::MAX, |i| {
            let off = ((i * 7) % blocks * BLOCK) as u64;
            ctx(files[t].write_all_at(&block, off), "overwrite")
        })?;
        Ok(n as f64)
    })?;
    Ok(vec![r])
}

fn drbl(c: &Cfg, base: &str, threads: usize) -> Result<Vec<f64>, String> {
    let files = prewritten(base, threads, c.rw_mib)?;
    let blocks = c.rw_mib * MIB / BLOCK;
    let r = parallel(threads, |t| {
        let mut buf = vec![0u8; BLOCK];
        let n = until(c.dur, usize::MAX, |i| {
            let off = ((i * 7) % blocks * BLOCK) as u64;
            ctx(files[t].read_exact_at(&mut buf, off), "pread")?;
            crate::ensure!(buf[100] == 0x6b, "read back {:#x} at {off}", buf[100]);
            Ok(())
        })?;
        Ok(n as f64)
    })?;
    Ok(vec![r])
}

fn seq(c: &Cfg, base: &str, _threads: usize) -> Result<Vec<f64>, String> {
    let chunk: Vec<u8> = (0..MIB).map(|i| (i * 7 + 3) as u8).collect();
    let f = create_rw(format!("{base}/t0/seq").as_ref())?;
    let t = Instant::now();
    for i in 0..c.seq_mib {
        ctx(f.write_all_at(&chunk, (i * MIB) as u64), "pwrite")?;
    }
    ctx(f.sync_all(), "fsync")?;
    let w = c.seq_mib as f64 / t.elapsed().as_secs_f64().max(1e-9);
    let mut buf = vec![0u8; MIB];
    let t = Instant::now();
    for i in 0..c.seq_mib {
        ctx(f.read_exact_at(&mut buf, (i * MIB) as u64), "pread")?;
    }
    let r = c.seq_mib as f64 / t.elapsed().as_secs_f64().max(1e-9);
    crate::ensure!(buf == chunk, "sequential read back differs");
    Ok(vec![w, r])
}

fn mwcl_mwul(c: &Cfg, base: &str, threads: usize) -> Result<Vec<f64>, String> {
    let made: Vec<AtomicUsize> = (0..threads).map(|_| AtomicUsize::new(0)).collect();
    let cap = c.create_cap / threads;
    let create = parallel(threads, |t| {
        let d = wdir(base, t);
        let n = until(c.dur, cap, |i| {
            ctx(fs::File::create(format!("{d}/f{i}")), "create").map(|_| ())
        })?;
        made[t].store(n, Ordering::Relaxed);
        Ok(n as f64)
    })?;
    let unlink = parallel(threads, |t| {
        let d = wdir(base, t);
        let n = made[t].load(Ordering::Relaxed);
        for i in 0..n {
            ctx(fs::remove_file(format!("{d}/f{i}")), "unlink")?;
        }
        Ok(n as f64)
    })?;
    Ok(vec![create, unlink])
}

fn mwrl(c: &Cfg, base: &str, threads: usize) -> Result<Vec<f64>, String> {
    for t in 0..threads {
        let d = wdir(base, t);
        for i in 0..20 {
            ctx(fs::write(format!("{d}/x{i}"), b""), "create")?;
        }
        ctx(fs::write(format!("{d}/r0"), b""), "create")?;
    }
    let r = parallel(threads, |t| {
        let d = wdir(base, t);
        let n = until(c.dur, usize::MAX, |i| {
            ctx(
                fs::rename(format!("{d}/r{i}"), format!("{d}/r{}", i + 1)),
                "rename",
            )
        })?;
        Ok(n as f64)
    })?;
    Ok(vec![r])
}

/// Thread `t`'s MRDL directory: made once per mount and kept for every
/// thread count (filling it is the slow part).
fn mrdl_dir(c: &Cfg, t: usize) -> Result<String, String> {
    let d = format!("{MNT}/mrdl{t}");
    if !std::path::Path::new(&d).exists() {
        ctx(fs::create_dir(&d), "mkdir")?;
        for i in 0..c.dir_entries {
            ctx(fs::File::create(format!("{d}/entry-{i:05}")), "create")?;
        }
    }
    Ok(d)
}

fn mrdl(c: &Cfg, _base: &str, threads: usize) -> Result<Vec<f64>, String> {
    let dirs = (0..threads)
        .map(|t| mrdl_dir(c, t))
        .collect::<Result<Vec<_>, _>>()?;
    let r = parallel(threads, |t| {
        let d = &dirs[t];
        let mut entries = 0usize;
        until(c.dur, usize::MAX, |_| {
            let n = ctx(fs::read_dir(d), "readdir")?.count();
            crate::ensure!(n == c.dir_entries, "readdir saw {n} entries");
            entries += n;
            Ok(())
        })?;
        Ok(entries as f64)
    })?;
    Ok(vec![r])
}

fn small(c: &Cfg, base: &str, threads: usize) -> Result<Vec<f64>, String> {
    let block = vec![0x5au8; BLOCK];
    let r = parallel(threads, |t| {
        let d = wdir(base, t);
        let n = until(c.dur, usize::MAX, |i| {
            let p = format!("{d}/s{i}");
            let f = create_rw(p.as_ref())?;
            ctx(f.write_all_at(&block, 0), "write")?;
            ctx(f.sync_all(), "fsync")?;
            drop(f);
            ctx(fs::remove_file(&p), "unlink")
        })?;
        Ok(n as f64)
    })?;
    Ok(vec![r])
}

fn mmap_pte(c: &Cfg, base: &str, threads: usize) -> Result<Vec<f64>, String> {
    let len = c.fault_mib * MIB;
    let files = sparse(base, threads, c.fault_mib)?;
    let r = parallel(threads, |t| {
        let m = crate::bench::map_4k(files[t].as_raw_fd(), len)?;
        for p in 0..len / BLOCK {
            m.set(p * BLOCK + t, (p % 251) as u8 + 1);
        }
        crate::ensure!(m.get(BLOCK * 7 + t) == 8, "mapped store lost");
        Ok((len / BLOCK) as f64)
    })?;
    Ok(vec![r])
}

fn mmap_pmd(c: &Cfg, base: &str, threads: usize) -> Result<Vec<f64>, String> {
    let len = c.pmd_mib * MIB;
    let files = sparse(base, threads, c.pmd_mib)?;
    let r = parallel(threads, |t| {
        let m = ctx(
            Mapping::shared_aligned(files[t].as_raw_fd(), len, PMD),
            "mmap",
        )?;
        for p in 0..len / BLOCK {
            m.set(p * BLOCK + t, (p % 251) as u8 + 1);
        }
        crate::ensure!(m.get(BLOCK * 7 + t) == 8, "mapped store lost");
        Ok(c.pmd_mib as f64)
    })?;
    Ok(vec![r])
}

fn mmap_overwrite(c: &Cfg, base: &str, threads: usize) -> Result<Vec<f64>, String> {
    let len = c.fault_mib * MIB;
    let files = prewritten(base, threads, c.fault_mib)?;
    let page = vec![0x77u8; BLOCK];
    let r = parallel(threads, |t| {
        let passes = until(c.dur, usize::MAX, |_| {
            // A fresh mapping per pass: the faults (non-allocating) count.
            let m = ctx(
                Mapping::shared_aligned(files[t].as_raw_fd(), len, PMD),
                "mmap",
            )?;
            for p in 0..len / BLOCK {
                m.write_at(p * BLOCK, &page);
            }
            Ok(())
        })?;
        Ok((passes * c.fault_mib) as f64)
    })?;
    Ok(vec![r])
}

fn falloc_punch(c: &Cfg, base: &str, threads: usize) -> Result<Vec<f64>, String> {
    let len = 2 * PMD;
    let files = sparse(base, threads, len / MIB)?;
    let r = parallel(threads, |t| {
        let fd = files[t].as_raw_fd();
        let m = ctx(Mapping::shared_aligned(fd, len, PMD), "mmap")?;
        let n = until(c.dur, usize::MAX, |i| {
            let at = (i % 2) * PMD;
            fallocate(fd, 0, at as u64, PMD as u64)
                .map_err(|e| format!("fallocate: {}", errno_name(e)))?;
            for p in 0..PMD / BLOCK {
                m.set(at + p * BLOCK, 1);
            }
            fallocate(
                fd,
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                at as u64,
                PMD as u64,
            )
            .map_err(|e| format!("punch: {}", errno_name(e)))?;
            crate::ensure!(m.get(at + BLOCK) == 0, "punched range reads data");
            Ok(())
        })?;
        Ok(n as f64)
    })?;
    Ok(vec![r])
}

/// The raw device limit: O_DIRECT 1 MiB writes, then reads, of
/// `seq_mib` MiB of /dev/pmem0 (nothing mounted).
fn raw_device(c: &Cfg) -> Result<(f64, f64), String> {
    umount_all(MNT);
    let f = ctx(
        open_raw(PMEM, libc::O_RDWR | libc::O_DIRECT, 0),
        "open /dev/pmem0 O_DIRECT",
    )?;
    let mut buf = Aligned::new(MIB);
    buf.buf().fill(0x3c);
    let t = Instant::now();
    for i in 0..c.seq_mib {
        ctx(
            f.write_all_at(buf.buf(), (i * MIB) as u64),
            "O_DIRECT write",
        )?;
    }
    ctx(f.sync_data(), "fdatasync /dev/pmem0")?;
    let w = c.seq_mib as f64 / t.elapsed().as_secs_f64().max(1e-9);
    let t = Instant::now();
    for i in 0..c.seq_mib {
        ctx(
            f.read_exact_at(buf.buf(), (i * MIB) as u64),
            "O_DIRECT read",
        )?;
    }
    let r = c.seq_mib as f64 / t.elapsed().as_secs_f64().max(1e-9);
    Ok((w, r))
}

/// Every workload group at every thread count on `fs` (made fresh).
fn run_all(c: &Cfg, fs_: &Fs, rep: Option<usize>, figs: &mut Figures) -> TestResult {
    fs_.mkfs(None, None)?;
    fs_.mount()?;
    let base = format!("{MNT}/b");
    let res = (|| -> TestResult {
        for g in GROUPS
            .iter()
            .filter(|g| g.names.iter().any(|n| c.wants(n.0)))
        {
            // The quick size skips 2 threads (1 and 4 show the contention).
            for &threads in g.threads.iter().filter(|&&t| !(c.quick && t == 2)) {
                setup_dirs(&base, threads)?;
                let v = (g.f)(c, &base, threads).map_err(|e| {
                    format!(
                        "{} ({} threads) on {}: {e}",
                        g.names[0].0, threads, fs_.name
                    )
                })?;
                ctx(fs::remove_dir_all(&base), "cleanup")?;
                if let Some(rep) = rep {
                    for ((name, unit), x) in g.names.iter().zip(v) {
                        figs.record(name, unit, threads, fs_.name, rep, x);
                    }
                }
            }
        }
        Ok(())
    })();
    umount(MNT).map_err(|e| format!("umount {}: {e}", fs_.name))?;
    res
}

/// The tree mkfs copies in for the mount-time figures: 100 directories,
/// `files` empty files.
fn build_tree(root: &str, files: u64) -> TestResult {
    let _ = fs::remove_dir_all(root);
    ctx(fs::create_dir_all(root), root)?;
    for d in 0..100 {
        ctx(fs::create_dir(format!("{root}/d{d:03}")), "mkdir")?;
    }
    for i in 0..files {
        ctx(
            fs::File::create(format!("{root}/d{:03}/f{i:06}", i % 100)),
            "create",
        )?;
    }
    Ok(())
}

/// Mount time of a filesystem holding `files` files, each filesystem in
/// turn (made once with `mkfs -d`), `warmup + reps` mounts each, page
/// cache dropped before every mount.
fn mount_times(c: &Cfg, fss: &[&Fs], figs: &mut Figures) -> TestResult {
    for &files in &c.mt_files {
        let t = Instant::now();
        build_tree("/tmp/bench-mt", files)?;
        for f in fss {
            f.mkfs(Some(files + 2000), Some("/tmp/bench-mt"))?;
            for r in 0..c.warmup + c.reps {
                let _ = fs::write("/proc/sys/vm/drop_caches", "3");
                let t0 = Instant::now();
                f.mount()?;
                let ms = t0.elapsed().as_secs_f64() * 1000.0;
                if r == c.warmup {
                    let n = ctx(fs::read_dir(format!("{MNT}/d000")), "readdir")?.count() as u64;
                    crate::ensure!(
                        n == files.div_ceil(100),
                        "{}: d000 holds {n} files, expected {}",
                        f.name,
                        files.div_ceil(100)
                    );
                }
                umount(MNT).map_err(|e| format!("umount {}: {e}", f.name))?;
                if r >= c.warmup {
                    figs.record(
                        &format!("mount {}k files", files / 1000),
                        "ms",
                        1,
                        f.name,
                        r - c.warmup,
                        ms,
                    );
                }
            }
        }
        let _ = fs::remove_dir_all("/tmp/bench-mt");
        println!(
            "bench-suite: mount time with {files} files done in {:.0} s",
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// `FS_IOC_FIEMAP` = `_IOWR('f', 11, struct fiemap)` (32-byte header).
const FS_IOC_FIEMAP: libc::Ioctl = 0xC020_660Bu32 as libc::Ioctl;
const FIEMAP_FLAG_SYNC: u64 = 0x1;
const FIEMAP_EXTENT_LAST: u32 = 0x1;

/// The extents of `fd` as (logical, physical, length) in bytes, with
/// logically and physically contiguous neighbours merged.
fn extents(fd: libc::c_int) -> Result<Vec<(u64, u64, u64)>, String> {
    const COUNT: usize = 256;
    let mut out: Vec<(u64, u64, u64)> = Vec::new();
    let mut start = 0u64;
    loop {
        // struct fiemap (4 u64 of header) + COUNT extents of 7 u64.
        let mut buf = vec![0u64; 4 + 7 * COUNT];
        buf[0] = start;
        buf[1] = u64::MAX - start;
        buf[2] = FIEMAP_FLAG_SYNC;
        buf[3] = COUNT as u64;
        // SAFETY: `buf` holds a struct fiemap with room for COUNT extents.
        let r = unsafe { libc::ioctl(fd, FS_IOC_FIEMAP, buf.as_mut_ptr()) };
        if r < 0 {
            return Err(format!("FIEMAP: {}", std::io::Error::last_os_error()));
        }
        let mapped = ((buf[2] >> 32) as usize).min(COUNT);
        if mapped == 0 {
            return Ok(out);
        }
        let mut last = false;
        for i in 0..mapped {
            let w = 4 + 7 * i;
            let (l, p, n) = (buf[w], buf[w + 1], buf[w + 2]);
            last = buf[w + 5] as u32 & FIEMAP_EXTENT_LAST != 0;
            match out.last_mut() {
                Some(e) if e.0 + e.2 == l && e.1 + e.2 == p => e.2 += n,
                _ => out.push((l, p, n)),
            }
            start = l + n;
        }
        if last {
            return Ok(out);
        }
    }
}

/// Percentage of the 2 MiB ranges of the first `len` bytes of `fd` that
/// one 2 MiB-aligned physical run backs (what a PMD mapping needs).
fn pmd_coverage(fd: libc::c_int, len: u64) -> Result<f64, String> {
    let ext = extents(fd)?;
    let pmd = PMD as u64;
    let ranges = len / pmd;
    let covered = (0..ranges)
        .filter(|k| {
            let lo = k * pmd;
            ext.iter().any(|&(l, p, n)| {
                l <= lo && l + n >= lo + pmd && (p + (lo - l)).is_multiple_of(pmd)
            })
        })
        .count();
    Ok(100.0 * covered as f64 / ranges as f64)
}

/// Ages the mounted filesystem: fills it to `age_fill`% with files of
/// mixed sizes (4 KiB to 8 MiB, fixed seed), deletes every other one,
/// refills, deletes every other one again.
fn age(c: &Cfg, dir: &str) -> TestResult {
    ctx(fs::create_dir(dir), dir)?;
    let chunk = vec![0x99u8; MIB];
    let mut rng = Rng::new(12);
    let mut files: Vec<String> = Vec::new();
    let mut next = 0usize;
    for _ in 0..2 {
        loop {
            let st = statfs(dir)?;
            let used = (st.f_blocks - st.f_bfree) * 100 / st.f_blocks.max(1);
            if used >= c.age_fill {
                break;
            }
            let size = ((1 + rng.below(4)) as usize * BLOCK) << rng.below(10);
            let p = format!("{dir}/a{next}");
            next += 1;
            let f = create_rw(p.as_ref())?;
            let mut off = 0;
            let mut full = false;
            while off < size {
                let n = (size - off).min(MIB);
                if let Err(e) = f.write_all_at(&chunk[..n], off as u64) {
                    if e.raw_os_error() == Some(libc::ENOSPC) {
                        full = true;
                        break;
                    }
                    return Err(format!("aging write {p}: {e}"));
                }
                off += n;
            }
            files.push(p);
            if full {
                break;
            }
        }
        let mut keep = Vec::new();
        for (i, p) in files.into_iter().enumerate() {
            if i % 2 == 0 {
                ctx(fs::remove_file(&p), "aging unlink")?;
            } else {
                keep.push(p);
            }
        }
        files = keep;
    }
    Ok(())
}

const COVERAGE_LEN: usize = 64 * MIB;

/// PMD coverage of a 64 MiB file allocated by page faults, by fallocate
/// and by write(2) in 1 MiB chunks, on an aged `f` (each file unlinked
/// before the next, so each sees the same aged state).
fn aged_coverage(c: &Cfg, f: &Fs, figs: &mut Figures) -> TestResult {
    f.mkfs(None, None)?;
    f.mount()?;
    let res = (|| -> TestResult {
        age(c, &format!("{MNT}/aged"))?;
        let st = statfs(MNT)?;
        println!(
            "bench-suite: {} aged: {} of {} blocks free",
            f.name, st.f_bfree, st.f_blocks
        );
        let chunk = vec![0x17u8; MIB];
        for how in ["fault", "fallocate", "write"] {
            let p = format!("{MNT}/big");
            let file = create_rw(p.as_ref())?;
            let fd = file.as_raw_fd();
            match how {
                "fault" => {
                    ctx(file.set_len(COVERAGE_LEN as u64), "ftruncate")?;
                    let m = ctx(Mapping::shared_aligned(fd, COVERAGE_LEN, PMD), "mmap")?;
                    for p in 0..COVERAGE_LEN / BLOCK {
                        m.set(p * BLOCK, 1);
                    }
                }
                "fallocate" => fallocate(fd, 0, 0, COVERAGE_LEN as u64)
                    .map_err(|e| format!("fallocate 64 MiB: {}", errno_name(e)))?,
                _ => {
                    for i in 0..COVERAGE_LEN / MIB {
                        ctx(file.write_all_at(&chunk, (i * MIB) as u64), "write 1 MiB")?;
                    }
                }
            }
            ctx(file.sync_all(), "fsync")?;
            let cov = pmd_coverage(fd, COVERAGE_LEN as u64)?;
            drop(file);
            ctx(fs::remove_file(&p), "unlink")?;
            figs.record(
                &format!("aged PMD coverage ({how})"),
                "%",
                1,
                f.name,
                0,
                cov,
            );
        }
        Ok(())
    })();
    umount(MNT).map_err(|e| format!("umount {}: {e}", f.name))?;
    res
}

/// The pmem kind from the kernel command line (`rdaxfs.pmem=`).
fn pmem_kind() -> String {
    let cmd = fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let kind = cmd
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rdaxfs.pmem="))
        .unwrap_or("unknown");
    let sectors: u64 = fs::read_to_string("/sys/block/pmem0/size")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    format!("{kind}, /dev/pmem0 {} MiB", sectors * 512 / MIB as u64)
}

/// `a / b` with two decimals, "inf" for b = 0.
fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "inf".into()
    }
}

/// Prints the table and checks that every figure was produced.
fn report(c: &Cfg, fss: &[&Fs], figs: &Figures) -> TestResult {
    println!(
        "bench-suite: {:<32} {:>3} {:>10} {:>26} {:>26} {:>7}",
        "workload", "thr", "unit", "rdaxfs", "ext4-dax", "ratio"
    );
    let mut missing = Vec::new();
    for (w, threads) in &figs.order {
        let (unit, better) = figs.units[w];
        let cell = |fs: &str| {
            figs.vals
                .get(&(w.clone(), *threads, fs.to_string()))
                .map(|v| stats(v))
        };
        let fmt = |s: Option<(f64, f64, f64)>| {
            s.map_or("-".to_string(), |(m, lo, hi)| {
                format!("{m:.1} [{lo:.1}-{hi:.1}]")
            })
        };
        let (a, b) = (cell("rdaxfs"), cell("ext4-dax"));
        let ratio = match (a, b) {
            (Some(a), Some(b)) if better == "lo" => ratio(b.0, a.0),
            (Some(a), Some(b)) => ratio(a.0, b.0),
            _ => "-".into(),
        };
        let raw = cell("raw-pmem")
            .map(|r| format!("  (raw pmem {:.1})", r.0))
            .unwrap_or_default();
        println!(
            "bench-suite: {w:<32} {threads:>3} {unit:>10} {:>26} {:>26} {ratio:>7}{raw}",
            fmt(a),
            fmt(b)
        );
        let want = if w.starts_with("aged") { 1 } else { c.reps };
        for f in fss {
            let n = figs
                .vals
                .get(&(w.clone(), *threads, f.name.to_string()))
                .map_or(0, |v| {
                    v.iter().filter(|x| x.is_finite() && **x >= 0.0).count()
                });
            if n != want {
                missing.push(format!("{w}/{threads}/{}: {n} of {want}", f.name));
            }
        }
    }
    crate::ensure!(
        missing.is_empty(),
        "figures missing: {}",
        missing.join(", ")
    );
    Ok(())
}

/// `bench-suite`: see the module documentation.
pub fn bench_suite() -> TestResult {
    let c = Cfg::from_env();
    let t_all = Instant::now();
    load_module(&[])?;
    let mut fss: Vec<&Fs> = vec![&RDAXFS];
    if std::path::Path::new(MKFS_EXT4).exists() {
        fss.push(&EXT4);
    } else {
        return Err(format!("{MKFS_EXT4} missing: no ext4-DAX control"));
    }
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "BENCH-META: mode={} cpus={cpus} pmem=\"{}\" warmup={} reps={} ms_per_workload={}",
        if c.quick { "quick" } else { "full" },
        pmem_kind(),
        c.warmup,
        c.reps,
        c.dur.as_millis()
    );
    let mut figs = Figures::default();
    for r in 0..c.warmup + c.reps {
        let t = Instant::now();
        let rep = r.checked_sub(c.warmup);
        let (w, rd) = if c.wants("seq ") {
            raw_device(&c)?
        } else {
            (-1.0, -1.0)
        };
        if let (Some(rep), true) = (rep, w >= 0.0) {
            figs.record("seq write 1M", "MiB/s", 1, "raw-pmem", rep, w);
            figs.record("seq read 1M", "MiB/s", 1, "raw-pmem", rep, rd);
        }
        for i in crate::bench::round_order(r, fss.len()) {
            run_all(&c, fss[i], rep, &mut figs)?;
        }
        println!(
            "bench-suite: repetition {r}{} done in {:.0} s",
            if rep.is_none() { " (warm-up)" } else { "" },
            t.elapsed().as_secs_f64()
        );
    }
    let t = Instant::now();
    if c.wants("mount ") {
        mount_times(&c, &fss, &mut figs)?;
    }
    println!(
        "bench-suite: mount times done in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    for f in fss.iter().filter(|_| c.wants("aged ")) {
        aged_coverage(&c, f, &mut figs)?;
    }
    println!(
        "bench-suite: aged coverage done in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    report(&c, &fss, &figs)?;
    println!(
        "BENCH-META: guest_seconds={:.0}",
        t_all.elapsed().as_secs_f64()
    );
    // Leave an rdaxfs filesystem for the tests that follow.
    umount_all(MNT);
    run(MKFS, &[PMEM, "--force"]).map(|_| ())
}
