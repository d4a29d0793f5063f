//! map-coherence: a mapping kept open across every operation that changes
//! a file's block map must always show what read(2) shows.
//!
//! Each scenario runs twice, with one long-lived shared mapping of the
//! file: 2 MiB-aligned (PMD faults, the huge zero page over 2 MiB holes)
//! or misaligned by a page (PTE faults only, the 4 KiB zero page over
//! holes). One at a time, because a PTE fault in a range a PMD zero entry
//! covers downgrades that entry and so unmaps it from the other mapping
//! too, which would hide a stale huge zero page. After every operation the
//! mapping is compared with pread of the whole file, and pread with a
//! model. Reading a hole through a mapping maps a zero page; an
//! operation that later gives the hole blocks (fallocate, ZERO_RANGE, a
//! write, copy_file_range, ...) must not leave that zero page mapped, or
//! the next write(2) is invisible through the mapping.
//!
//! Scripted scenarios, one per operation, then a seeded random mix
//! per mapping kind (`RDAXFS_MC_SEED`, `RDAXFS_MC_OPS`, default 16).

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::copy_splice::copy_range_all;
use crate::ensure;
use crate::util::*;

const K: u64 = 4096;
const M: u64 = 1 << 20;
const SRC_LEN: u64 = M + 12345;

const KEEP: i32 = libc::FALLOC_FL_KEEP_SIZE;
const PUNCH: i32 = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
const ZERO: i32 = libc::FALLOC_FL_ZERO_RANGE;
const COLLAPSE: i32 = libc::FALLOC_FL_COLLAPSE_RANGE;
const INSERT: i32 = libc::FALLOC_FL_INSERT_RANGE;

/// One operation on the file.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// ftruncate to a size.
    Trunc(u64),
    /// pwrite of pattern data: offset, length.
    Write(u64, u64),
    /// fallocate: mode, offset, length.
    Falloc(i32, u64, u64),
    /// copy_file_range from the source file: destination, source offset,
    /// length.
    Copy(u64, u64, u64),
    /// A store through the mapping: offset, length (inside EOF).
    Store(u64, u64),
}

fn mode_name(m: i32) -> String {
    let names = [
        (KEEP, "KEEP_SIZE"),
        (libc::FALLOC_FL_PUNCH_HOLE, "PUNCH_HOLE"),
        (ZERO, "ZERO_RANGE"),
        (COLLAPSE, "COLLAPSE_RANGE"),
        (INSERT, "INSERT_RANGE"),
    ];
    let v: Vec<&str> = names
        .iter()
        .filter(|(b, _)| m & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if v.is_empty() {
        "0".into()
    } else {
        v.join("|")
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Op::Trunc(s) => write!(f, "ftruncate {s:#x}"),
            Op::Write(o, l) => write!(f, "pwrite {o:#x}+{l:#x}"),
            Op::Falloc(m, o, l) => write!(f, "fallocate {} {o:#x}+{l:#x}", mode_name(m)),
            Op::Copy(d, s, l) => write!(f, "copy_file_range src {s:#x}+{l:#x} -> {d:#x}"),
            Op::Store(o, l) => write!(f, "store through the mapping {o:#x}+{l:#x}"),
        }
    }
}

/// The scenarios' unit of length (see [`scenarios`]).
fn unit(pmd: bool) -> u64 {
    if pmd {
        M
    } else {
        64 * K
    }
}

/// A mapping of `len` bytes of `fd` whose address is one page past a 2 MiB
/// boundary, so that no PMD fault is possible on it.
fn pte_mapping(fd: libc::c_int, len: usize) -> std::io::Result<Mapping> {
    let span = len + 2 * PMD;
    // SAFETY: reserving fresh address space the kernel chooses.
    let res = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            span,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if res == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    let base = res as usize;
    let start = base.next_multiple_of(PMD) + BLOCK;
    // SAFETY: [start, start + len) lies inside our own reservation.
    let p = unsafe {
        libc::mmap(
            start as *mut libc::c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_FIXED,
            fd,
            0,
        )
    };
    let err = std::io::Error::last_os_error();
    // SAFETY: unmapping the unused head and tail of our own reservation.
    unsafe {
        if start > base {
            libc::munmap(res, start - base);
        }
        let end = start + len;
        if base + span > end {
            libc::munmap(end as *mut libc::c_void, base + span - end);
        }
    }
    if p == libc::MAP_FAILED {
        // SAFETY: our own reservation's middle part.
        unsafe { libc::munmap(start as *mut libc::c_void, len) };
        return Err(err);
    }
    Ok(Mapping {
        ptr: start as *mut u8,
        len,
    })
}

/// The file under test, its mapping and its model.
struct Mc<'a> {
    f: fs::File,
    map: Mapping,
    /// "PMD-aligned" or "PTE".
    kind: &'static str,
    /// Length of the mapping; the file stays within it.
    lim: u64,
    model: Vec<u8>,
    src: &'a fs::File,
    src_model: &'a [u8],
    step: u64,
    /// Fail on EOPNOTSUPP (rdaxfs) or skip the op (host filesystems).
    strict: bool,
    log: Vec<String>,
}

fn diff(a: &[u8], b: &[u8]) -> Option<(usize, usize)> {
    if a == b {
        return None;
    }
    let i = a.iter().zip(b).position(|(x, y)| x != y)?;
    let end = (i..a.len()).find(|&j| a[j] == b[j]).unwrap_or(a.len());
    Some((i, end))
}

impl<'a> Mc<'a> {
    fn new(
        p: &Path,
        pmd: bool,
        src: &'a fs::File,
        src_model: &'a [u8],
        strict: bool,
    ) -> Result<Self, String> {
        let f = create_rw(p)?;
        let fd = f.as_raw_fd();
        let lim = 4 * unit(pmd);
        let (map, kind) = if pmd {
            let m = Mapping::shared_aligned(fd, lim as usize, PMD);
            (ctx(m, "mmap (PMD-aligned)")?, "PMD-aligned")
        } else {
            (ctx(pte_mapping(fd, lim as usize), "mmap (PTE)")?, "PTE")
        };
        Ok(Self {
            f,
            map,
            kind,
            lim,
            model: Vec::new(),
            src,
            src_model,
            step: 0,
            strict,
            log: Vec::new(),
        })
    }

    fn fd(&self) -> libc::c_int {
        self.f.as_raw_fd()
    }

    fn size(&self) -> u64 {
        self.model.len() as u64
    }

    fn grow(&mut self, end: u64) {
        if end > self.size() {
            self.model.resize(end as usize, 0);
        }
    }

    fn zero(&mut self, off: u64, end: u64) {
        let end = end.min(self.size());
        if off < end {
            self.model[off as usize..end as usize].fill(0);
        }
    }

    /// Applies `op` to the file and the model. Ok(false): not supported
    /// here (lenient runs only).
    fn apply(&mut self, op: Op) -> Result<bool, String> {
        self.step += 1;
        self.log.push(op.to_string());
        let fd = self.fd();
        let falloc_err = |e: i32| format!("{op}: {}", errno_name(e));
        match op {
            Op::Trunc(s) => {
                ftruncate(fd, s).map_err(falloc_err)?;
                self.model.resize(s as usize, 0);
            }
            Op::Write(o, l) => {
                let mut b = vec![0u8; l as usize];
                fill_pattern(&mut b, self.step, o);
                ctx(self.f.write_all_at(&b, o), op)?;
                self.grow(o + l);
                self.model[o as usize..(o + l) as usize].copy_from_slice(&b);
            }
            Op::Falloc(m, o, l) => {
                match fallocate(fd, m, o, l) {
                    Ok(()) => {}
                    Err(libc::EOPNOTSUPP) if !self.strict => return Ok(false),
                    Err(e) => return Err(falloc_err(e)),
                }
                let end = o + l;
                if m == COLLAPSE {
                    self.model.drain(o as usize..end as usize);
                } else if m == INSERT {
                    let at = o as usize;
                    self.model
                        .splice(at..at, std::iter::repeat_n(0u8, l as usize));
                } else {
                    if m & KEEP == 0 {
                        self.grow(end);
                    }
                    if m & (ZERO | libc::FALLOC_FL_PUNCH_HOLE) != 0 {
                        self.zero(o, end);
                    }
                }
            }
            Op::Copy(d, s, l) => {
                let n = copy_range_all(self.src.as_raw_fd(), s, fd, d, l as usize)
                    .map_err(falloc_err)?;
                let want = (self.src_model.len() as u64).saturating_sub(s).min(l) as usize;
                ensure!(n == want, "{op}: copied {n} bytes, expected {want}");
                if n > 0 {
                    // Nothing copied (source offset at or past its EOF)
                    // leaves the destination as it was.
                    self.grow(d + n as u64);
                    self.model[d as usize..d as usize + n]
                        .copy_from_slice(&self.src_model[s as usize..s as usize + n]);
                }
            }
            Op::Store(o, l) => {
                ensure!(
                    o + l <= self.size(),
                    "internal: {op} past EOF {:#x}",
                    self.size()
                );
                let mut b = vec![0u8; l as usize];
                fill_pattern(&mut b, self.step ^ 0x5555, o);
                self.map.write_at(o as usize, &b);
                self.model[o as usize..(o + l) as usize].copy_from_slice(&b);
            }
        }
        Ok(true)
    }

    /// Both mappings and pread against each other and the model.
    fn check(&self) -> TestResult {
        let size = ctx(self.f.metadata(), "fstat")?.len();
        ensure!(
            size == self.size(),
            "size is {size:#x}, expected {:#x}",
            self.size()
        );
        let n = size.min(self.lim) as usize;
        let mut rd = vec![0u8; size as usize];
        ctx(self.f.read_exact_at(&mut rd, 0), "pread")?;
        if let Some((i, e)) = diff(&rd, &self.model) {
            return Err(format!(
                "read(2) bytes {i:#x}..{e:#x} read {:#04x}, expected {:#04x}",
                rd[i], self.model[i]
            ));
        }
        let mut mb = vec![0u8; n];
        self.map.read_at(0, &mut mb);
        if let Some((i, e)) = diff(&mb, &rd[..n]) {
            return Err(format!(
                "the mapping shows {:#04x} at bytes {i:#x}..{e:#x} (block {}), read(2) shows {:#04x}",
                mb[i],
                i as u64 / K,
                rd[i]
            ));
        }
        Ok(())
    }

    /// Applies each op and checks after each (the checks also map every
    /// hole's zero page before the next op).
    fn run(&mut self, ops: &[Op]) -> TestResult {
        self.check()
            .map_err(|e| format!("before the first op: {e}"))?;
        for &op in ops {
            if !self.apply(op)? {
                self.log.push("  (not supported here: skipped)".into());
                continue;
            }
            self.check()
                .map_err(|e| format!("after {}: {e}", self.log.join(", ")))?;
        }
        Ok(())
    }
}

/// One scenario per operation that changes the block map; `m` is the
/// unit of the larger offsets (1 MiB for the PMD-aligned mapping, so that
/// 2 * m is a PMD, less for the PTE mapping, to keep the test quick).
fn scenarios(m: u64) -> Vec<(&'static str, Vec<Op>)> {
    use Op::*;
    vec![
        (
            // A fault right after a mapped block allocates ahead; pages
            // still mapping the zero page must not be among those blocks
            // (a pwrite there would not replace the zero page).
            "stores front to back over zero pages, then pwrite ahead",
            vec![Trunc(16 * K), Store(0, 1), Store(K, 1), Write(2 * K, 100)],
        ),
        (
            "fallocate 0 over a PTE zero page, then pwrite",
            vec![Trunc(2 * K), Falloc(0, K, K), Write(K, 1)],
        ),
        (
            "fallocate KEEP_SIZE over zero pages, then pwrite",
            vec![
                Trunc(4 * K),
                Falloc(KEEP, K, 2 * K),
                Write(K + 10, 100),
                Write(2 * K, K),
            ],
        ),
        (
            "fallocate 0 past EOF, then pwrite into the old hole",
            vec![
                Write(0, 100),
                Trunc(2 * K),
                Falloc(0, 0, 4 * K),
                Write(K, 10),
                Write(3 * K, 10),
            ],
        ),
        (
            "fallocate over a PMD zero page, then pwrite",
            vec![
                Trunc(4 * m),
                Falloc(0, 0, 2 * m),
                Write(K, 1),
                Write(2 * m - 100, 100),
                Falloc(KEEP, 2 * m + 2 * K, 2 * K),
                Write(2 * m + 2 * K + 1, 1),
            ],
        ),
        (
            "ZERO_RANGE over data and holes, then pwrite",
            vec![
                Write(0, 64 * K),
                Trunc(4 * m),
                Falloc(ZERO, 2 * K, 2 * m + K),
                Write(3 * K, 10),
                Write(m, 10),
                Write(2 * m + 2 * K, 100),
                Falloc(ZERO | KEEP, 3 * m, 2 * m),
                Write(3 * m + 5, 5),
            ],
        ),
        (
            "ZERO_RANGE past EOF, truncate up, then pwrite",
            vec![
                Trunc(2 * K),
                Falloc(ZERO, K, 3 * K),
                Write(3 * K, 1),
                Falloc(ZERO | KEEP, 4 * K, 2 * K),
                Trunc(8 * K),
                Write(5 * K, 1),
            ],
        ),
        (
            "PUNCH_HOLE, then pwrite and stores",
            vec![
                Falloc(0, 0, 4 * m),
                Write(0, 4 * m),
                Falloc(PUNCH, K + 100, 2 * K),
                Write(2 * K + 1, 10),
                Falloc(PUNCH, 2 * m, 2 * m),
                Store(3 * m, 100),
                Write(2 * m + K, 10),
                Store(2 * m + 2 * K, 10),
            ],
        ),
        (
            "COLLAPSE_RANGE, then pwrite",
            vec![
                Falloc(0, 0, 4 * m),
                Write(0, 4 * m),
                Falloc(COLLAPSE, K, K),
                Falloc(COLLAPSE, 0, 2 * m),
                Write(100, 10),
                Trunc(4 * m - 2 * K),
                Write(3 * m, 10),
                Falloc(COLLAPSE, m, m),
                Write(m + 3, 7),
            ],
        ),
        (
            "INSERT_RANGE, then pwrite",
            vec![
                Falloc(0, 0, 2 * m),
                Write(0, m),
                Trunc(2 * m),
                Falloc(INSERT, K, K),
                Write(K + 10, 10),
                Falloc(INSERT, 0, m),
                Write(100, 10),
                Write(m + 2 * K, 10),
            ],
        ),
        (
            "truncate down and up, then pwrite",
            vec![
                Falloc(0, 0, 4 * m),
                Write(0, 3 * m),
                Trunc(5000),
                Trunc(3 * m),
                Write(m, 10),
                Trunc(2 * m + 1),
                Write(2 * m - 10, 100),
                Trunc(4 * m),
                Write(3 * m + 7, 9),
            ],
        ),
        (
            "pwrite into holes",
            vec![
                Trunc(4 * m),
                Write(K, 1),
                Write(2 * m + 5, 3000),
                Write(m - 2, 4),
            ],
        ),
        (
            "copy_file_range into holes and over data",
            vec![
                Trunc(4 * m),
                Copy(K, 0, K),
                Copy(2 * m + 100, 5, 5000),
                Falloc(0, m, 2 * K),
                Copy(m + 1, 7, 100),
                Write(0, 64 * K),
                Copy(10, 9, 1000),
                Copy(3 * m, 0, m),
            ],
        ),
        (
            "stores through the mappings, then read(2)",
            vec![
                Trunc(4 * m),
                Store(K + 10, 100),
                Store(2 * m + 10, 100),
                Store(100, 3),
                Falloc(0, m, m),
                Store(m + 5, 5),
                Write(m + 4, 3),
            ],
        ),
    ]
}

/// A random op that keeps the file within `lim`.
fn random_op(r: &mut Rng, size: u64, lim: u64) -> Op {
    let blk = |r: &mut Rng, lim: u64| r.below(lim / K + 1) * K;
    let off = |r: &mut Rng, lim: u64| {
        if r.below(2) == 0 {
            blk(r, lim)
        } else {
            r.below(lim.max(1))
        }
    };
    let len = |r: &mut Rng, max: u64| {
        let l = if r.below(4) == 0 {
            r.range(1, max.max(1))
        } else {
            r.range(1, max.clamp(1, 64 * K))
        };
        if r.below(2) == 0 && l >= K {
            l / K * K
        } else {
            l
        }
    };
    loop {
        let o = off(r, lim - 1);
        let l = len(r, lim - o);
        let op = match r.below(11) {
            0 => Op::Trunc(off(r, lim)),
            1 | 2 => Op::Write(o, l),
            3 => Op::Falloc(0, o, l),
            4 => Op::Falloc(KEEP, o, l),
            5 => Op::Falloc(PUNCH, o, l),
            6 => Op::Falloc(if r.below(2) == 0 { ZERO } else { ZERO | KEEP }, o, l),
            7 => {
                // Block aligned, off + len < size.
                if size < 2 * K {
                    continue;
                }
                let last = (size - 1) / K;
                let e = r.range(1, last);
                let s = r.below(e);
                Op::Falloc(COLLAPSE, s * K, (e - s) * K)
            }
            8 => {
                if size == 0 || size + K > lim {
                    continue;
                }
                let s = r.below(size.div_ceil(K));
                let n = r.range(1, ((lim - size) / K).min(128));
                Op::Falloc(INSERT, s * K, n * K)
            }
            9 => Op::Copy(o, r.below(SRC_LEN + K), l),
            _ => {
                if size == 0 {
                    continue;
                }
                let so = r.below(size);
                let sl = r.range(1, (size - so).min(64 * K));
                Op::Store(so, sl)
            }
        };
        return op;
    }
}

/// Runs every scenario and `rand_ops` random ops in `dir`; returns the
/// failures (one per scenario at most).
pub fn run_all(dir: &Path, strict: bool, seed: u64, rand_ops: u64) -> Result<Vec<String>, String> {
    let sp = dir.join("mc-src");
    let src = create_rw(&sp)?;
    let mut src_model = vec![0u8; SRC_LEN as usize];
    fill_pattern(&mut src_model[..300_000], 99, 0);
    fill_pattern(&mut src_model[700_000..], 99, 700_000);
    ctx(
        src.write_all_at(&src_model[..300_000], 0),
        "write the source",
    )?;
    ctx(
        src.write_all_at(&src_model[700_000..], 700_000),
        "write the source",
    )?;
    let mut bad = Vec::new();
    for pmd in [true, false] {
        let t0 = std::time::Instant::now();
        for (i, (name, ops)) in scenarios(unit(pmd)).into_iter().enumerate() {
            let p = dir.join(format!("mc-{i}"));
            let mut mc = Mc::new(&p, pmd, &src, &src_model, strict)?;
            if let Err(e) = mc.run(&ops) {
                println!("map-coherence: FAILED ({} mapping) {name}: {e}", mc.kind);
                bad.push(format!("({} mapping) {name}: {e}", mc.kind));
            }
            drop(mc);
            ctx(fs::remove_file(&p), "unlink")?;
        }
        let t1 = std::time::Instant::now();
        let p = dir.join("mc-random");
        let mut mc = Mc::new(&p, pmd, &src, &src_model, strict)?;
        let mut r = Rng::new(seed);
        let mut ops = Vec::new();
        let mut res = mc.check();
        while res.is_ok() && (ops.len() as u64) < rand_ops {
            let op = random_op(&mut r, mc.size(), mc.lim);
            ops.push(op);
            res = mc
                .apply(op)
                .and_then(|done| if done { mc.check() } else { Ok(()) });
        }
        if let Err(e) = res {
            let last: Vec<String> = ops
                .iter()
                .rev()
                .take(8)
                .rev()
                .map(|o| o.to_string())
                .collect();
            let msg = format!(
                "({} mapping) random ops (RDAXFS_MC_SEED={seed}), op #{}: {e}; last ops: {}",
                mc.kind,
                ops.len(),
                last.join(", ")
            );
            println!("map-coherence: FAILED {msg}");
            bad.push(msg);
        }
        println!(
            "map-coherence: {} mapping: scenarios {:.1}s, {} random ops {:.1}s",
            mc.kind,
            (t1 - t0).as_secs_f64(),
            ops.len(),
            t1.elapsed().as_secs_f64()
        );
        drop(mc);
        ctx(fs::remove_file(&p), "unlink")?;
    }
    drop(src);
    ctx(fs::remove_file(&sp), "unlink")?;
    Ok(bad)
}

/// map-coherence on rdaxfs.
pub fn map_coherence() -> TestResult {
    let _fx = Fixture::new()?;
    fresh_mount()?;
    let mark = dmesg_mark("map-coherence");
    let seed = env_u64("RDAXFS_MC_SEED", clock_seed() % 1_000_000_007);
    let ops = env_u64("RDAXFS_MC_OPS", 16);
    println!("map-coherence: seed {seed} (RDAXFS_MC_SEED), {ops} random ops per mapping kind");
    let before = counters_now("pmem0");
    let bad = run_all(Path::new(MNT), true, seed, ops)?;
    if let (Some(b), Some(a)) = (before, counters_now("pmem0")) {
        let d = a.since(&b);
        println!(
            "map-coherence: {} PMD faults ({} fallbacks), {} PTE faults",
            d.pmd_faults, d.pmd_fallbacks, d.pte_faults
        );
        ensure!(
            d.pmd_faults > 0,
            "no PMD fault: the 2 MiB-aligned mapping was not PMD-mapped ({d:?})"
        );
    }
    ensure!(
        bad.is_empty(),
        "{} of {} scenarios failed:\n  {}",
        bad.len(),
        2 * (scenarios(M).len() + 1),
        bad.join("\n  ")
    );
    ctx(umount(MNT), "umount")?;
    let k = kernel_problems(&mark);
    ensure!(k.is_empty(), "kernel log shows:\n{}", k.join("\n"));
    fsck_clean(PMEM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_coherence_on_host_fs() {
        let t = TempDir::new("mc");
        // 301798403 copies from past the source's EOF.
        for seed in [3, 301_798_403] {
            assert_eq!(
                run_all(&t.0, false, seed, 60).unwrap(),
                Vec::<String>::new()
            );
        }
    }
}
