//! fsx: seeded random file operations checked against an in-memory model
//! (bytes + size): pwrite, pread, mmap read/write (also past EOF in the
//! last page, which must never reach the file), ftruncate, fallocate
//! (allocate, KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE with and without
//! KEEP_SIZE, COLLAPSE_RANGE, INSERT_RANGE and their EINVAL cases),
//! copy_file_range, sendfile and splice between ranges of the file, fsync,
//! and umount+mount every ~200 operations.
//!
//! Environment: `RDAXFS_FSX_SEED` (default: from the clock; always
//! printed), `RDAXFS_FSX_OPS` (default 3000), `RDAXFS_FSX_SECS` (time
//! bound, default 40); `RDAXFS_FSX_SKIP=Collapse,Insert,...` leaves out
//! op kinds by name (debugging only; kernel command-line `KEY=VALUE` words reach the
//! guest init as environment).

use std::collections::VecDeque;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::copy_splice::{copy_range_all, sendfile_all, splice_all};
use crate::util::*;

/// Offsets of writes and most ranges stay below this.
const SPAN: u64 = 4 << 20;
/// The file never grows past this (inserts are limited by it).
const CAP: u64 = 8 << 20;
/// Longest ordinary I/O.
const MAXIO: u64 = 256 << 10;
const B: u64 = BLOCK as u64;

/// Operation kinds; `Kind::ALL` lists them with weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Write,
    Read,
    MapRead,
    MapWrite,
    MapWritePastEof,
    Truncate,
    Alloc,
    AllocKeep,
    Punch,
    Zero,
    ZeroKeep,
    Collapse,
    Insert,
    BadCollapseInsert,
    Fsync,
    CopyRange,
    Sendfile,
    Splice,
}

impl Kind {
    const ALL: &'static [(Kind, u32)] = &[
        (Kind::Write, 14),
        (Kind::Read, 8),
        (Kind::MapRead, 5),
        (Kind::MapWrite, 7),
        (Kind::MapWritePastEof, 2),
        (Kind::Truncate, 6),
        (Kind::Alloc, 4),
        (Kind::AllocKeep, 3),
        (Kind::Punch, 6),
        (Kind::Zero, 4),
        (Kind::ZeroKeep, 4),
        (Kind::Collapse, 5),
        (Kind::Insert, 5),
        (Kind::BadCollapseInsert, 2),
        (Kind::Fsync, 2),
        (Kind::CopyRange, 4),
        (Kind::Sendfile, 2),
        (Kind::Splice, 2),
    ];
    /// Fallocate-based kinds a host filesystem may not support.
    fn optional(self) -> bool {
        matches!(
            self,
            Kind::Zero
                | Kind::ZeroKeep
                | Kind::Collapse
                | Kind::Insert
                | Kind::BadCollapseInsert
                | Kind::Punch
                | Kind::MapWritePastEof
        )
    }
}

/// How the run is set up.
pub struct Opts<'a> {
    /// Seed of the operation stream.
    pub seed: u64,
    /// Operations to run.
    pub ops: u64,
    /// Time bound.
    pub limit: Duration,
    /// Called with the file closed every ~200 ops (umount + mount).
    pub remount: Option<&'a mut dyn FnMut() -> TestResult>,
    /// Every op kind must work; else kinds that fail with EOPNOTSUPP
    /// (or whose check cannot hold on this fs) are dropped from the mix.
    pub strict: bool,
    /// Compare full contents every this many ops.
    pub check_every: u64,
    /// Leave out mmap stores past EOF (tmpfs lets them reach the file
    /// when it grows again).
    pub no_past_eof: bool,
    /// Op kinds to leave out, by name (debugging only).
    pub skip: Vec<String>,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct FsxStats {
    /// Operations run.
    pub ops: u64,
    /// Remounts.
    pub remounts: u64,
    /// Per-kind counts.
    pub per_kind: Vec<(String, u64)>,
    /// Kinds dropped as unsupported (only without `strict`).
    pub dropped: Vec<String>,
}

struct Fsx {
    path: PathBuf,
    file: Option<fs::File>,
    model: Vec<u8>,
    rng: Rng,
    log: VecDeque<String>,
    seed: u64,
    op: u64,
    disabled: Vec<Kind>,
    /// A store went past EOF in the last page and the size has not
    /// changed since: those bytes may read back through a mapping.
    eof_dirty: bool,
}

fn mode_name(mode: libc::c_int) -> &'static str {
    match mode {
        0 => "0",
        libc::FALLOC_FL_KEEP_SIZE => "KEEP_SIZE",
        m if m == libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE => "PUNCH_HOLE|KEEP_SIZE",
        libc::FALLOC_FL_ZERO_RANGE => "ZERO_RANGE",
        m if m == libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE => "ZERO_RANGE|KEEP_SIZE",
        libc::FALLOC_FL_COLLAPSE_RANGE => "COLLAPSE_RANGE",
        libc::FALLOC_FL_INSERT_RANGE => "INSERT_RANGE",
        _ => "?",
    }
}

/// Result of one op: Ok, a kind to drop (unsupported on a lenient run),
/// or a failure message.
enum Outcome {
    Ok,
    Unsupported,
}

impl Fsx {
    fn fd(&self) -> libc::c_int {
        self.file.as_ref().expect("file open").as_raw_fd()
    }
    fn size(&self) -> u64 {
        self.model.len() as u64
    }
    fn fail(&self, what: String) -> String {
        let mut s = format!(
            "fsx: seed {} (RDAXFS_FSX_SEED={}), op #{}: {what}\nlast {} ops:",
            self.seed,
            self.seed,
            self.op,
            self.log.len()
        );
        for l in &self.log {
            s.push_str("\n  ");
            s.push_str(l);
        }
        s
    }
    fn note(&mut self, s: String) {
        if self.log.len() == 20 {
            self.log.pop_front();
        }
        self.log.push_back(format!("#{} {s}", self.op));
    }
    /// A random offset below `lim`: block aligned half the time.
    fn off(&mut self, lim: u64) -> u64 {
        if lim == 0 {
            return 0;
        }
        let o = self.rng.below(lim);
        if self.rng.below(2) == 0 {
            o / B * B
        } else {
            o
        }
    }
    /// A random length in `1..=max`: often a block multiple, sometimes large.
    fn len(&mut self, max: u64) -> u64 {
        let max = max.max(1);
        let cap = if self.rng.below(8) == 0 {
            max
        } else {
            max.min(MAXIO)
        };
        let l = self.rng.range(1, cap);
        if self.rng.below(2) == 0 && l >= B {
            l / B * B
        } else {
            l
        }
    }
    fn data(&self, len: u64, off: u64) -> Vec<u8> {
        let mut b = vec![0u8; len as usize];
        fill_pattern(&mut b, self.seed ^ (self.op << 20), off);
        b
    }
    fn resize(&mut self, size: u64) {
        self.eof_dirty = false;
        self.model.resize(size as usize, 0);
    }

    fn check_size(&self) -> TestResult {
        let m = self
            .file
            .as_ref()
            .expect("file open")
            .metadata()
            .map_err(|e| self.fail(format!("fstat: {e}")))?;
        if m.size() != self.size() {
            return Err(self.fail(format!("size is {}, model says {}", m.size(), self.size())));
        }
        Ok(())
    }

    fn check_all(&self) -> TestResult {
        let mut got = vec![0u8; self.model.len()];
        let f = self.file.as_ref().expect("file open");
        let mut done = 0;
        while done < got.len() {
            match f.read_at(&mut got[done..], done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) => return Err(self.fail(format!("full read at {done}: {e}"))),
            }
        }
        if done != got.len() {
            return Err(self.fail(format!(
                "full read returned {done} bytes, size is {}",
                got.len()
            )));
        }
        self.compare(&got, 0, "full read")
    }

    fn compare(&self, got: &[u8], off: u64, how: &str) -> TestResult {
        let want = &self.model[off as usize..off as usize + got.len()];
        if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
            let end = (i..got.len())
                .find(|&j| got[j] == want[j])
                .unwrap_or(got.len());
            return Err(self.fail(format!(
                "{how}: bytes {}..{} differ: read {:#04x}, model {:#04x} (block {})",
                off + i as u64,
                off + end as u64,
                got[i],
                want[i],
                (off + i as u64) / B
            )));
        }
        Ok(())
    }

    fn falloc(&mut self, mode: libc::c_int, off: u64, len: u64) -> Result<Option<i32>, String> {
        self.note(format!("fallocate {} {off:#x}+{len:#x}", mode_name(mode)));
        match fallocate(self.fd(), mode, off, len) {
            Ok(()) => Ok(None),
            Err(e) => Ok(Some(e)),
        }
    }

    fn expect_ok(&self, r: Option<i32>, strict: bool, what: &str) -> Result<Outcome, String> {
        match r {
            None => Ok(Outcome::Ok),
            Some(libc::EOPNOTSUPP) if !strict => Ok(Outcome::Unsupported),
            Some(e) => Err(self.fail(format!(
                "{what} failed with {}, expected success",
                errno_name(e)
            ))),
        }
    }

    fn step(&mut self, k: Kind, strict: bool) -> Result<Outcome, String> {
        let size = self.size();
        match k {
            Kind::Write => {
                let off = self.off(SPAN);
                let len = self.len(SPAN - off);
                self.note(format!("pwrite {off:#x}+{len:#x}"));
                let d = self.data(len, off);
                let f = self.file.as_ref().expect("file open");
                f.write_all_at(&d, off)
                    .map_err(|e| self.fail(format!("pwrite: {e}")))?;
                if off + len > size {
                    self.resize(off + len);
                }
                self.model[off as usize..(off + len) as usize].copy_from_slice(&d);
            }
            Kind::Read => {
                let off = self.off(size + B);
                let len = self.len(MAXIO);
                self.note(format!("pread {off:#x}+{len:#x}"));
                let mut b = vec![0u8; len as usize];
                let f = self.file.as_ref().expect("file open");
                let n = f
                    .read_at(&mut b, off)
                    .map_err(|e| self.fail(format!("pread: {e}")))?;
                let want = size.saturating_sub(off).min(len) as usize;
                if n != want {
                    return Err(self.fail(format!("pread returned {n}, expected {want}")));
                }
                if n > 0 {
                    self.compare(&b[..n], off, "pread")?;
                }
            }
            Kind::MapRead | Kind::MapWrite | Kind::MapWritePastEof => {
                if size == 0 {
                    self.note("mmap op skipped: empty file".into());
                    return Ok(Outcome::Ok);
                }
                let maplen = size.div_ceil(B) * B;
                let map = Mapping::shared(self.fd(), maplen as usize)
                    .map_err(|e| self.fail(format!("mmap {maplen}: {e}")))?;
                match k {
                    Kind::MapRead => {
                        let off = self.off(size);
                        let len = self.len(size - off);
                        self.note(format!("mapread {off:#x}+{len:#x}"));
                        let mut b = vec![0u8; len as usize];
                        map.read_at(off as usize, &mut b);
                        self.compare(&b, off, "mmap read")?;
                        // Past EOF in the last page reads zeros.
                        if maplen > size && !self.eof_dirty {
                            let mut t = vec![0u8; (maplen - size) as usize];
                            map.read_at(size as usize, &mut t);
                            if let Some(i) = t.iter().position(|&x| x != 0) {
                                return Err(self.fail(format!(
                                    "mmap read past EOF: byte {} is {:#04x}, expected 0",
                                    size + i as u64,
                                    t[i]
                                )));
                            }
                        }
                    }
                    Kind::MapWrite => {
                        let off = self.off(size);
                        let len = self.len(size - off);
                        self.note(format!("mapwrite {off:#x}+{len:#x} + msync"));
                        let d = self.data(len, off);
                        map.write_at(off as usize, &d);
                        map.sync().map_err(|e| self.fail(format!("msync: {e}")))?;
                        self.model[off as usize..(off + len) as usize].copy_from_slice(&d);
                    }
                    _ => {
                        if maplen == size {
                            self.note("mapwrite past EOF skipped: size block aligned".into());
                        } else {
                            self.note(format!(
                                "mapwrite past EOF {size:#x}..{maplen:#x} (must not reach the file)"
                            ));
                            map.write_at(size as usize, &vec![0xEE; (maplen - size) as usize]);
                            map.sync().map_err(|e| self.fail(format!("msync: {e}")))?;
                            self.eof_dirty = true;
                        }
                    }
                }
            }
            Kind::Truncate => {
                let ns = if self.rng.below(4) == 0 {
                    self.rng.below(size + 1)
                } else {
                    self.off(SPAN + 1)
                };
                self.note(format!("ftruncate {size:#x} -> {ns:#x}"));
                ftruncate(self.fd(), ns)
                    .map_err(|e| self.fail(format!("ftruncate: {}", errno_name(e))))?;
                self.resize(ns);
            }
            Kind::Alloc | Kind::AllocKeep => {
                let off = self.off(SPAN);
                let len = self.len(SPAN - off);
                let mode = if k == Kind::Alloc {
                    0
                } else {
                    libc::FALLOC_FL_KEEP_SIZE
                };
                let r = self.falloc(mode, off, len)?;
                let o = self.expect_ok(r, strict, "fallocate")?;
                if k == Kind::Alloc && off + len > size {
                    self.resize(off + len);
                }
                return Ok(o);
            }
            Kind::Punch | Kind::Zero | Kind::ZeroKeep => {
                let off = self.off(size.max(1) + B);
                let len = self.len(SPAN);
                let mode = match k {
                    Kind::Punch => libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    Kind::Zero => libc::FALLOC_FL_ZERO_RANGE,
                    _ => libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
                };
                let r = self.falloc(mode, off, len)?;
                let o = self.expect_ok(r, strict, mode_name(mode))?;
                if let Outcome::Unsupported = o {
                    return Ok(o);
                }
                if k == Kind::Zero && off + len > size {
                    self.resize(off + len);
                }
                let end = (off + len).min(self.size());
                if off < end {
                    self.model[off as usize..end as usize].fill(0);
                }
            }
            Kind::Collapse => {
                // off + len < size, block aligned.
                let last = size.saturating_sub(1) / B;
                if last < 1 {
                    self.note("collapse skipped: file under 2 blocks".into());
                    return Ok(Outcome::Ok);
                }
                let end_b = self.rng.range(1, last);
                let off_b = self.rng.below(end_b);
                let (off, len) = (off_b * B, (end_b - off_b) * B);
                let r = self.falloc(libc::FALLOC_FL_COLLAPSE_RANGE, off, len)?;
                let o = self.expect_ok(r, strict, "COLLAPSE_RANGE")?;
                if let Outcome::Ok = o {
                    // The EOF block moves, bytes past EOF and all: a
                    // store past EOF may still show through a mapping.
                    self.model.drain(off as usize..(off + len) as usize);
                }
                return Ok(o);
            }
            Kind::Insert => {
                if size == 0 || size + B > CAP {
                    self.note("insert skipped: empty or full file".into());
                    return Ok(Outcome::Ok);
                }
                let off = self.rng.below(size.div_ceil(B)) * B;
                let room = (CAP - size) / B;
                let len = self.rng.range(1, room.min(128)) * B;
                if off >= size {
                    // off < size always holds for off = k * B, k < ceil(size / B).
                    return Err(self.fail(format!("internal: insert at {off} >= {size}")));
                }
                let r = self.falloc(libc::FALLOC_FL_INSERT_RANGE, off, len)?;
                let o = self.expect_ok(r, strict, "INSERT_RANGE")?;
                if let Outcome::Ok = o {
                    let at = off as usize;
                    self.model
                        .splice(at..at, std::iter::repeat_n(0u8, len as usize));
                }
                return Ok(o);
            }
            Kind::BadCollapseInsert => {
                // Each must fail with EINVAL and change nothing.
                let cases: [(libc::c_int, u64, u64, &str); 4] = [
                    (libc::FALLOC_FL_COLLAPSE_RANGE, 512, B, "unaligned offset"),
                    (libc::FALLOC_FL_INSERT_RANGE, 0, B + 100, "unaligned length"),
                    (
                        libc::FALLOC_FL_COLLAPSE_RANGE,
                        size / B * B,
                        B,
                        "offset + length >= size",
                    ),
                    (
                        libc::FALLOC_FL_INSERT_RANGE,
                        size.div_ceil(B) * B,
                        B,
                        "offset >= size",
                    ),
                ];
                let (mode, off, len, why) = cases[self.rng.below(4) as usize];
                let r = self.falloc(mode, off, len)?;
                match r {
                    Some(libc::EINVAL) => {}
                    Some(libc::EOPNOTSUPP) if !strict => return Ok(Outcome::Unsupported),
                    Some(e) => {
                        return Err(self.fail(format!(
                            "{} {off:#x}+{len:#x} ({why}): {}, expected EINVAL",
                            mode_name(mode),
                            errno_name(e)
                        )))
                    }
                    None => {
                        return Err(self.fail(format!(
                            "{} {off:#x}+{len:#x} ({why}) succeeded, expected EINVAL",
                            mode_name(mode)
                        )))
                    }
                }
            }
            Kind::CopyRange | Kind::Sendfile | Kind::Splice => {
                // Source (possibly at or past EOF) and destination ranges
                // of the same file, apart (copy_file_range refuses
                // overlapping ranges of one file).
                let src = self.off(size + B);
                let mut len = self.len(MAXIO);
                let dst = self.off(SPAN);
                if src < size && src + len > size && dst + len > size {
                    // The copy would grow the file while its source runs
                    // into EOF: the kernel's splice loop then reads on into
                    // the new bytes, in chunks the model cannot predict.
                    len = size - src;
                }
                let name = match k {
                    Kind::CopyRange => "copy_file_range",
                    Kind::Sendfile => "sendfile",
                    _ => "splice",
                };
                if dst < src + len && src < dst + len {
                    self.note(format!("{name} skipped: ranges overlap"));
                    return Ok(Outcome::Ok);
                }
                self.note(format!("{name} {src:#x}+{len:#x} -> {dst:#x}"));
                let fd = self.fd();
                let l = len as usize;
                let r = match k {
                    Kind::CopyRange => copy_range_all(fd, src, fd, dst, l),
                    Kind::Sendfile => sendfile_all(fd, src, fd, dst, l),
                    _ => splice_all(fd, src, fd, dst, l),
                };
                let n = r.map_err(|e| {
                    self.fail(format!(
                        "{name} failed with {}, expected success",
                        errno_name(e)
                    ))
                })? as u64;
                let want = size.saturating_sub(src).min(len);
                if n != want {
                    return Err(self.fail(format!("{name} moved {n} bytes, expected {want}")));
                }
                if n > 0 {
                    let d = self.model[src as usize..(src + n) as usize].to_vec();
                    if dst + n > size {
                        self.resize(dst + n);
                    }
                    self.model[dst as usize..(dst + n) as usize].copy_from_slice(&d);
                }
            }
            Kind::Fsync => {
                self.note("fsync".into());
                let f = self.file.as_ref().expect("file open");
                f.sync_all().map_err(|e| self.fail(format!("fsync: {e}")))?;
            }
        }
        Ok(Outcome::Ok)
    }

    fn pick(&mut self) -> Kind {
        let live: Vec<(Kind, u32)> = Kind::ALL
            .iter()
            .copied()
            .filter(|(k, _)| !self.disabled.contains(k))
            .collect();
        let total: u32 = live.iter().map(|(_, w)| w).sum();
        let mut x = self.rng.below(u64::from(total)) as u32;
        for (k, w) in live {
            if x < w {
                return k;
            }
            x -= w;
        }
        Kind::Write
    }
}

fn open(path: &Path) -> Result<fs::File, String> {
    ctx(
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path),
        path.display(),
    )
}

/// Runs fsx on a new file `dir/fsx`.
pub fn run(dir: &Path, mut o: Opts<'_>) -> Result<FsxStats, String> {
    let path = dir.join("fsx");
    let _ = fs::remove_file(&path);
    let mut x = Fsx {
        file: Some(open(&path)?),
        path,
        model: Vec::new(),
        rng: Rng::new(o.seed),
        log: VecDeque::new(),
        seed: o.seed,
        op: 0,
        disabled: Kind::ALL
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| {
                (o.no_past_eof && *k == Kind::MapWritePastEof)
                    || o.skip.iter().any(|n| *n == format!("{k:?}"))
            })
            .collect(),
        eof_dirty: false,
    };
    let mut st = FsxStats::default();
    let mut counts: Vec<(Kind, u64)> = Kind::ALL.iter().map(|(k, _)| (*k, 0)).collect();
    let t0 = Instant::now();
    let mut next_remount = 200 + x.rng.below(50);
    while x.op < o.ops && t0.elapsed() < o.limit {
        let k = x.pick();
        match x.step(k, o.strict)? {
            Outcome::Ok => {
                if let Some(c) = counts.iter_mut().find(|(kk, _)| *kk == k) {
                    c.1 += 1;
                }
            }
            Outcome::Unsupported => {
                x.note(format!("{k:?} unsupported here: dropped"));
                x.disabled.push(k);
                st.dropped.push(format!("{k:?}"));
                if !k.optional() {
                    return Err(x.fail(format!("{k:?} is not supported")));
                }
            }
        }
        x.check_size()?;
        if x.op.is_multiple_of(o.check_every) {
            x.check_all()?;
        }
        x.op += 1;
        if x.op == next_remount {
            if let Some(r) = o.remount.as_mut() {
                x.note("umount + mount".into());
                x.file = None;
                r().map_err(|e| x.fail(format!("remount: {e}")))?;
                x.file = Some(open(&x.path)?);
                x.check_size()?;
                x.check_all()?;
                st.remounts += 1;
            }
            next_remount = x.op + 150 + x.rng.below(100);
        }
    }
    x.check_all()?;
    st.ops = x.op;
    st.per_kind = counts
        .into_iter()
        .map(|(k, n)| (format!("{k:?}"), n))
        .collect();
    drop(x.file.take());
    ctx(fs::remove_file(&x.path), "unlink fsx file")?;
    Ok(st)
}

/// Ways to move EOF up past a partial last block.
const EXTENDERS: &[&str] = &[
    "ftruncate up",
    "pwrite past EOF",
    "fallocate 0 past EOF",
    "ZERO_RANGE past EOF",
    "pwrite across EOF",
];

/// Deterministic check of each extender: a store through a mapping past
/// EOF (in the last page) must not become file data when EOF moves up,
/// nor stay past the new EOF when that is still in the same block (a
/// mapping would read it there, and INSERT_RANGE carries it along).
/// Returns one message per extender that exposed the stored bytes.
pub fn eof_tail_checks(dir: &Path) -> Result<Vec<String>, String> {
    const SIZE: u64 = 1000;
    let mut bad = Vec::new();
    for (i, how) in EXTENDERS.iter().enumerate() {
        let p = dir.join(format!("eof-tail-{i}"));
        let _ = fs::remove_file(&p);
        let f = open(&p)?;
        ctx(f.write_all_at(&[0x11; SIZE as usize], 0), "pwrite")?;
        let map = ctx(Mapping::shared(f.as_raw_fd(), BLOCK), "mmap")?;
        map.write_at(SIZE as usize, &[0xEE; BLOCK - SIZE as usize]);
        ctx(map.sync(), "msync")?;
        drop(map);
        let fd = f.as_raw_fd();
        let r = match i {
            0 => ftruncate(fd, 3 * B),
            1 => f
                .write_all_at(&[0x22; 10], 3 * B)
                .map_err(|e| e.raw_os_error().unwrap_or(0)),
            2 => fallocate(fd, 0, 2 * B, B),
            3 => fallocate(fd, libc::FALLOC_FL_ZERO_RANGE, 2 * B, B),
            _ => f
                .write_all_at(&[0x22; 100], SIZE - 50)
                .map_err(|e| e.raw_os_error().unwrap_or(0)),
        };
        if let Err(e) = r {
            if !(i == 3 && e == libc::EOPNOTSUPP) {
                return Err(format!("{how}: {}", errno_name(e)));
            }
            drop(f);
            let _ = fs::remove_file(&p);
            continue;
        }
        if i == 4 {
            // The new EOF (SIZE + 50) is in the same block: past it, a
            // mapping must read zeros.
            let end = SIZE + 50;
            let map = ctx(Mapping::shared(f.as_raw_fd(), BLOCK), "mmap")?;
            let mut t = vec![0u8; (B - end) as usize];
            map.read_at(end as usize, &mut t);
            if let Some(j) = t.iter().position(|&x| x != 0) {
                bad.push(format!(
                    "{how}: after a mapped store past EOF (size {SIZE}) and a write to {end}, a mapping reads {:#04x} at byte {} past the new EOF, expected 0",
                    t[j],
                    end + j as u64
                ));
            }
            drop(map);
            drop(f);
            ctx(fs::remove_file(&p), "unlink")?;
            continue;
        }
        let mut b = vec![0u8; (B - SIZE) as usize];
        ctx(f.read_exact_at(&mut b, SIZE), "pread")?;
        if let Some(j) = b.iter().position(|&x| x != 0) {
            let n = b.iter().filter(|&&x| x != 0).count();
            bad.push(format!(
                "{how}: after a mapped store past EOF (size {SIZE}), {n} bytes of the old last block past the old EOF read non-zero once the file grew (first: byte {} = {:#04x}, expected 0)",
                SIZE + j as u64,
                b[j]
            ));
        }
        drop(f);
        ctx(fs::remove_file(&p), "unlink")?;
    }
    Ok(bad)
}

fn seed_from_env() -> u64 {
    std::env::var("RDAXFS_FSX_SEED")
        .ok()
        .and_then(|v| {
            v.strip_prefix("0x")
                .map_or_else(|| v.parse().ok(), |h| u64::from_str_radix(h, 16).ok())
        })
        .unwrap_or_else(|| clock_seed() % 1_000_000_007)
}

/// fsx on rdaxfs, every op kind required.
pub fn fsx() -> TestResult {
    let _fx = Fixture::new()?;
    fresh_mount()?;
    let mark = dmesg_mark("fsx");
    let seed = seed_from_env();
    let ops = env_u64("RDAXFS_FSX_OPS", 3000);
    let secs = env_u64("RDAXFS_FSX_SECS", 40);
    println!("fsx: seed {seed} (rerun with RDAXFS_FSX_SEED={seed}), {ops} ops, {secs}s bound");
    let skip: Vec<String> = std::env::var("RDAXFS_FSX_SKIP")
        .unwrap_or_default()
        .split(',')
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect();
    if !skip.is_empty() {
        println!("fsx: RDAXFS_FSX_SKIP: leaving out {skip:?} (debugging only)");
    }
    if skip.iter().any(|k| k == "MapWritePastEof") {
        println!("fsx: EOF-tail checks left out with MapWritePastEof");
    } else {
        let tail = eof_tail_checks(Path::new(MNT))?;
        crate::ensure!(
            tail.is_empty(),
            "bytes stored past EOF through a mapping became file data when EOF moved up:\n  {}",
            tail.join("\n  ")
        );
        println!("fsx: EOF-tail checks passed ({})", EXTENDERS.join(", "));
    }
    let mut remount = || -> TestResult {
        ctx(umount(MNT), "umount")?;
        ctx(mount(PMEM, MNT, "rdaxfs", ""), "mount")
    };
    let st = run(
        Path::new(MNT),
        Opts {
            seed,
            ops,
            limit: Duration::from_secs(secs),
            remount: Some(&mut remount),
            strict: true,
            check_every: 7,
            no_past_eof: false,
            skip,
        },
    )?;
    println!(
        "fsx: seed {seed}: {} ops, {} remounts; {:?}",
        st.ops, st.remounts, st.per_kind
    );
    ctx(umount(MNT), "umount")?;
    let bad = kernel_problems(&mark);
    crate::ensure!(bad.is_empty(), "kernel log shows:\n{}", bad.join("\n"));
    fsck_clean(PMEM)?;
    crate::ensure!(
        st.ops >= 500,
        "only {} ops ran within {secs}s (expected >= 500)",
        st.ops
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(dir: &Path, seed: u64, ops: u64) -> FsxStats {
        let st = run(
            dir,
            Opts {
                seed,
                ops,
                limit: Duration::from_secs(60),
                remount: None,
                strict: false,
                check_every: 3,
                no_past_eof: statfs(dir).map(|s| s.f_type == 0x0102_1994).unwrap_or(true),
                skip: Vec::new(),
            },
        )
        .unwrap();
        eprintln!("host fsx seed {seed}: {st:?}");
        st
    }

    #[test]
    fn fsx_model_matches_host_fs() {
        let t = TempDir::new("fsx");
        for seed in 1..4 {
            let st = host(&t.0, seed, 600);
            assert_eq!(st.ops, 600);
        }
    }

    /// On a filesystem with collapse/insert (ext4, xfs), e.g.
    /// `RDAXFS_SCRATCH_DIR=/mnt/ext4 cargo test -- --ignored fsx`.
    #[test]
    #[ignore = "needs a scratch ext4/xfs in RDAXFS_SCRATCH_DIR"]
    fn fsx_model_on_scratch_fs() {
        let dir = std::env::var("RDAXFS_SCRATCH_DIR").expect("RDAXFS_SCRATCH_DIR");
        let st = host(Path::new(&dir), 7, 3000);
        assert!(st.dropped.is_empty(), "dropped {:?}", st.dropped);
    }

    #[test]
    fn eof_tail_on_host_fs() {
        let t = TempDir::new("fsx-tail");
        assert_eq!(eof_tail_checks(&t.0).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn fsx_catches_a_wrong_model() {
        // A run whose model is corrupted must fail on the next full check.
        let t = TempDir::new("fsx-bad");
        let path = t.0.join("f");
        let mut x = Fsx {
            file: Some(open(&path).unwrap()),
            path,
            model: Vec::new(),
            rng: Rng::new(3),
            log: VecDeque::new(),
            seed: 3,
            op: 0,
            disabled: Vec::new(),
            eof_dirty: false,
        };
        while x.size() < 100 {
            x.step(Kind::Write, false).map(|_| ()).unwrap();
            x.op += 1;
        }
        x.check_all().unwrap();
        x.model[50] ^= 1;
        let e = x.check_all().unwrap_err();
        assert!(e.contains("seed 3") && e.contains("bytes 50..51"), "{e}");
    }
}
