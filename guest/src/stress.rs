//! stress: a long-running, seeded, multi-threaded workload of size and
//! layout changes checked byte for byte against in-memory models.
//!
//! `guest-test stress --seconds N --dir DIR [--threads T] [--seed S]`
//! runs it in DIR (any mounted rdaxfs directory); the `stress-short` test
//! runs it for 25 s on a fresh rdaxfs (`RDAXFS_STRESS_SECS`,
//! `RDAXFS_STRESS_THREADS`, `RDAXFS_STRESS_SEED` change that, e.g. a
//! 5-minute run: `scripts/guest.sh ... --tests stress-short --env
//! RDAXFS_STRESS_SECS=300`).
//!
//! Every worker thread
//! - owns two files, each with a byte model, a long-lived PMD-aligned
//!   shared mapping of the largest size the file may reach (kept across
//!   every other operation; touched only below the current size) and an
//!   O_DIRECT descriptor; it runs pwrite/pread (unaligned, block and 2 MiB
//!   aligned), O_DIRECT reads and writes, mapped stores and loads,
//!   truncate up and down, fallocate (0, KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE
//!   with and without KEEP_SIZE, COLLAPSE_RANGE, INSERT_RANGE and their
//!   EINVAL cases), fsync, fdatasync and msync, and verifies through
//!   pread, the mapping and O_DIRECT after the operations that change
//!   data or layout;
//! - owns one region of a file shared by all threads (region borders are
//!   not block aligned, so neighbours share blocks) and runs the
//!   operations that keep the size there;
//! - creates, renames (also RENAME_NOREPLACE), unlinks, opens and lists
//!   small self-checking files in a directory shared by all threads.
//!
//! ENOSPC is expected (the model is reconciled with what the call did),
//! as are the EINVAL/ENOENT/EEXIST the operation was built to provoke;
//! they are counted apart. Any other errno, a wrong size or a byte that
//! differs from the model is an error, printed with the file, offset,
//! expected and read bytes and the last 20 operations on that file.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::util::*;

const B: u64 = BLOCK as u64;
const PMD64: u64 = PMD as u64;
/// Largest size of a thread's own file.
const MAX_CAP: u64 = 8 << 20;
/// Bytes of the shared file each thread owns (not a block multiple, so
/// neighbouring regions share a block).
const REGION: u64 = (2 << 20) - 1000;
/// Names in the shared directory.
const NS_NAMES: u64 = 16;
/// Longest O_DIRECT transfer.
const MAX_DIRECT: usize = 2 << 20;

/// Set while the ballast of `stress-short` fills the device (it takes
/// seconds, so a statfs before a mapped store would not see it coming).
static PRESSURE: AtomicBool = AtomicBool::new(false);

/// What `guest-test stress` runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Run time.
    pub seconds: u64,
    /// Working directory (created if missing).
    pub dir: PathBuf,
    /// Worker threads.
    pub threads: usize,
    /// Seed of every thread's operation stream.
    pub seed: u64,
}

/// Operation counters shown in the progress line.
#[derive(Clone, Copy)]
enum C {
    Fallocate,
    Punch,
    Zero,
    Collapse,
    Insert,
    Truncate,
    Write,
    Odirect,
    Mmap,
    Verify,
}
const C_NAMES: [&str; 10] = [
    "fallocate",
    "punch",
    "zero",
    "collapse",
    "insert",
    "truncate",
    "write",
    "odirect",
    "mmap",
    "verify",
];

/// Expected errnos, counted apart from errors.
const EXPECTED: [i32; 4] = [libc::ENOSPC, libc::EINVAL, libc::ENOENT, libc::EEXIST];

/// State shared by all threads.
struct Shared {
    ops: AtomicU64,
    counts: [AtomicU64; 10],
    expected: [AtomicU64; 4],
    errors: AtomicU64,
    stop: AtomicBool,
    print: Mutex<()>,
    dir: PathBuf,
    start: Instant,
}

impl Shared {
    fn count(&self, c: C) {
        self.counts[c as usize].fetch_add(1, Relaxed);
    }
    fn expect(&self, errno: i32) {
        if let Some(i) = EXPECTED.iter().position(|&e| e == errno) {
            self.expected[i].fetch_add(1, Relaxed);
        }
    }
    /// Counts and prints an error (the first 20 in full).
    fn error(&self, msg: &str) {
        let n = self.errors.fetch_add(1, Relaxed);
        let _g = self.print.lock().unwrap_or_else(|p| p.into_inner());
        if n < 20 {
            let t = self.start.elapsed().as_secs_f64();
            // One write, so that progress lines cannot cut into it.
            let line = format!("stress: ERROR t={t:.1}s {msg}\n");
            let _ = io::Write::write_all(&mut io::stderr().lock(), line.as_bytes());
        } else if n == 20 {
            eprintln!("stress: more errors follow; only counted from here on");
        }
    }
    fn progress(&self, t: u64) -> String {
        let mut s = format!("stress: t={t}s ops={} (", self.ops.load(Relaxed));
        for (i, n) in C_NAMES.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(&format!("{n}={}", self.counts[i].load(Relaxed)));
        }
        s.push_str(&format!(") errors={}", self.errors.load(Relaxed)));
        s
    }
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn pread_fd(fd: i32, buf: &mut [u8], off: u64) -> Result<usize, i32> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the rest of `buf` is valid for writes.
        let n = unsafe {
            libc::pread(
                fd,
                buf[done..].as_mut_ptr().cast(),
                buf.len() - done,
                (off + done as u64) as libc::off_t,
            )
        };
        if n < 0 {
            return Err(errno());
        }
        if n == 0 {
            break;
        }
        done += n as usize;
    }
    Ok(done)
}

fn pwrite_fd(fd: i32, buf: &[u8], off: u64) -> Result<usize, i32> {
    // SAFETY: `buf` is valid for reads.
    let n = unsafe { libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), off as libc::off_t) };
    if n < 0 {
        Err(errno())
    } else {
        Ok(n as usize)
    }
}

fn fstat_size(fd: i32) -> Result<u64, i32> {
    // SAFETY: a zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and out-buffer.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(errno());
    }
    Ok(st.st_size as u64)
}

/// Bytes available to unprivileged users on `dir`'s filesystem.
#[allow(clippy::unnecessary_cast)] // the field types differ between libcs
fn free_bytes(dir: &Path) -> Result<u64, String> {
    statfs(dir).map(|s| s.f_bavail as u64 * s.f_bsize as u64)
}

/// A long-lived shared mapping used by several threads, each on its own
/// byte range.
struct SharedMap(Mapping);
// SAFETY: the mapping stays valid until it is dropped after every thread
// ended; threads only copy bytes of their own ranges in and out of it.
unsafe impl Sync for SharedMap {}
// SAFETY: as above.
unsafe impl Send for SharedMap {}

fn map_read(ptr: *mut u8, off: u64, out: &mut [u8]) {
    // SAFETY: callers pass ranges below the file size inside a live
    // mapping of at least that length.
    unsafe { std::ptr::copy_nonoverlapping(ptr.add(off as usize), out.as_mut_ptr(), out.len()) }
}

fn map_write(ptr: *mut u8, off: u64, data: &[u8]) {
    // SAFETY: as map_read; the range is owned by the calling thread.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), ptr.add(off as usize), data.len()) }
}

fn fmode(mode: i32) -> &'static str {
    const PK: i32 = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    const ZK: i32 = libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE;
    match mode {
        0 => "0",
        libc::FALLOC_FL_KEEP_SIZE => "KEEP_SIZE",
        PK => "PUNCH_HOLE|KEEP_SIZE",
        libc::FALLOC_FL_ZERO_RANGE => "ZERO_RANGE",
        ZK => "ZERO_RANGE|KEEP_SIZE",
        libc::FALLOC_FL_COLLAPSE_RANGE => "COLLAPSE_RANGE",
        libc::FALLOC_FL_INSERT_RANGE => "INSERT_RANGE",
        _ => "?",
    }
}

/// One file (or one thread's region of the shared file) and its model.
struct Target {
    path: PathBuf,
    fd: i32,
    dfd: i32,
    map: *mut u8,
    /// File offset of model byte 0 (0 for a thread's own file).
    base: u64,
    /// Contents below the size (own file) or of the region.
    model: Vec<u8>,
    /// Largest size (own file) or the region's length.
    cap: u64,
    /// Own file: every operation; region: only size-preserving ones.
    resizable: bool,
    /// The fixed size of the shared file (region only).
    fixed_size: u64,
    log: VecDeque<String>,
    tid: usize,
    op: u64,
}

impl Target {
    fn size(&self) -> u64 {
        self.model.len() as u64
    }
    /// The size (own file) or the bounds of the region (shared file).
    fn extent(&self) -> String {
        if self.resizable {
            format!("size {}", self.size())
        } else {
            format!("region [{}, {})", self.base, self.base + self.size())
        }
    }
    fn note(&mut self, s: String) {
        if self.log.len() == 20 {
            self.log.pop_front();
        }
        self.log.push_back(format!("#{} {s}", self.op));
    }
    fn trace(&self) -> String {
        let mut s = format!("  last {} ops on this file:", self.log.len());
        for l in &self.log {
            s.push_str("\n    ");
            s.push_str(l);
        }
        s
    }
    fn error(&self, sh: &Shared, what: String) {
        sh.error(&format!(
            "thread {} file {} op #{}: {what}\n{}",
            self.tid,
            self.path.display(),
            self.op,
            self.trace()
        ));
    }
    /// Compares `got` (read at model offset `off` through `via`) with the
    /// model; on a difference reports it and adopts what was read.
    fn check(&mut self, sh: &Shared, via: &str, off: u64, got: &[u8]) -> bool {
        let o = off as usize;
        let want = &self.model[o..o + got.len()];
        let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) else {
            return true;
        };
        let n = got.iter().zip(want).filter(|(a, b)| a != b).count();
        let last = got.iter().zip(want).rposition(|(a, b)| a != b).unwrap_or(i);
        let hex = |s: &[u8]| s.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let e = (i + 16).min(got.len());
        self.error(
            sh,
            format!(
                "data mismatch via {via}: file offset {} ({:#x}): expected {} got {} \
                 ({n} bytes differ in file range [{}, {}]; read [{}, +{}); {})",
                self.base + off + i as u64,
                self.base + off + i as u64,
                hex(&want[i..e]),
                hex(&got[i..e]),
                self.base + off + i as u64,
                self.base + off + last as u64,
                self.base + off,
                got.len(),
                self.extent()
            ),
        );
        self.model[o..o + got.len()].copy_from_slice(got);
        false
    }
    /// The file size must be what the model says.
    fn check_size(&mut self, sh: &Shared, after: &str) {
        let want = if self.resizable {
            self.size()
        } else {
            self.fixed_size
        };
        match fstat_size(self.fd) {
            Ok(s) if s == want => {}
            Ok(s) => {
                self.error(sh, format!("size {s} after {after}, expected {want}"));
                if self.resizable {
                    self.model.resize(s.min(self.cap) as usize, 0);
                }
            }
            Err(e) => self.error(sh, format!("fstat after {after}: {}", errno_name(e))),
        }
    }
    /// Verifies `[off, off + len)` (clipped to the size) through pread.
    fn verify_pread(&mut self, sh: &Shared, off: u64, len: u64, why: &str) {
        let end = (off + len).min(self.size());
        if off >= end {
            return;
        }
        let mut buf = vec![0u8; (end - off) as usize];
        sh.count(C::Verify);
        match pread_fd(self.fd, &mut buf, self.base + off) {
            Ok(n) if n == buf.len() => {
                self.check(sh, &format!("pread after {why}"), off, &buf);
            }
            Ok(n) => self.error(
                sh,
                format!(
                    "pread of {} at {} after {why} returned {n} below the size",
                    buf.len(),
                    self.base + off
                ),
            ),
            Err(e) => self.error(
                sh,
                format!(
                    "pread at {} after {why}: {}",
                    self.base + off,
                    errno_name(e)
                ),
            ),
        }
    }
    /// Verifies `[off, off + len)` (clipped to the size) through the mapping.
    fn verify_map(&mut self, sh: &Shared, off: u64, len: u64, why: &str) {
        let end = (off + len).min(self.size());
        if off >= end {
            return;
        }
        let mut buf = vec![0u8; (end - off) as usize];
        sh.count(C::Mmap);
        map_read(self.map, self.base + off, &mut buf);
        self.check(sh, &format!("mapping after {why}"), off, &buf);
    }
    /// After an ENOSPC: every byte of `[off, off + len)` must hold the
    /// model's value or zero (partly done), the rest the model's; the
    /// model takes what the file holds and the size the file has.
    fn reconcile(&mut self, sh: &Shared, off: u64, len: u64, why: &str) {
        if self.resizable {
            match fstat_size(self.fd) {
                Ok(s) if s <= self.cap => self.model.resize(s as usize, 0),
                Ok(s) => self.error(sh, format!("size {s} after {why} is past {}", self.cap)),
                Err(e) => self.error(sh, format!("fstat after {why}: {}", errno_name(e))),
            }
        }
        let size = self.size();
        let mut buf = vec![0u8; size as usize];
        match pread_fd(self.fd, &mut buf, self.base) {
            Ok(n) if n == buf.len() => {}
            r => {
                self.error(sh, format!("pread of the file after {why}: {r:?}"));
                return;
            }
        }
        let end = (off + len).min(size);
        for i in off.min(end)..end {
            let i = i as usize;
            if buf[i] == 0 {
                self.model[i] = 0;
            }
        }
        self.check(sh, &format!("pread after {why}"), 0, &buf);
    }
}

/// Fills `buf` with data of a fresh stream for file offset `off`.
fn fill(rng: &mut Rng, buf: &mut [u8], off: u64) {
    fill_pattern(buf, rng.next_u64(), off);
    // pattern_byte may yield zeros; make the data tell holes apart.
    for b in buf.iter_mut() {
        *b |= 0x10;
    }
}

/// A length: a few bytes, some blocks, up to 256 KiB, or one PMD.
fn pick_len(rng: &mut Rng, max: u64) -> u64 {
    // Mostly small: under TCG every byte costs; big ones stay in the mix.
    let l = match rng.below(12) {
        0..=3 => rng.range(1, 300),
        4..=7 => B * rng.range(1, 16),
        8..=9 => rng.range(1, 64 << 10),
        10 => rng.range(1, 256 << 10),
        _ => PMD64,
    };
    l.min(max).max(1)
}

/// An offset in `[0, lim]`: unaligned, block or PMD aligned.
fn pick_off(rng: &mut Rng, lim: u64) -> u64 {
    let o = rng.range(0, lim);
    match rng.below(8) {
        0..=3 => o,
        4..=6 => o / B * B,
        _ => o / PMD64 * PMD64,
    }
}

/// Operation kinds with weights; the shared file only runs those that
/// keep the size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Write,
    Read,
    DirectWrite,
    DirectRead,
    MapStore,
    MapLoad,
    Truncate,
    Alloc,
    AllocKeep,
    Punch,
    Zero,
    ZeroKeep,
    Collapse,
    Insert,
    Sync,
    Full,
}

const OPS: &[(Op, u64)] = &[
    (Op::Write, 14),
    (Op::Read, 8),
    (Op::DirectWrite, 5),
    (Op::DirectRead, 4),
    (Op::MapStore, 8),
    (Op::MapLoad, 5),
    (Op::Truncate, 5),
    (Op::Alloc, 3),
    (Op::AllocKeep, 3),
    (Op::Punch, 6),
    (Op::Zero, 3),
    (Op::ZeroKeep, 3),
    (Op::Collapse, 4),
    (Op::Insert, 4),
    (Op::Sync, 2),
    (Op::Full, 1),
];

impl Op {
    fn keeps_size(self) -> bool {
        !matches!(
            self,
            Op::Truncate | Op::Alloc | Op::Zero | Op::Collapse | Op::Insert
        )
    }
}

/// One worker thread.
struct Worker<'a> {
    sh: &'a Shared,
    tid: usize,
    rng: Rng,
    abuf: Aligned,
    ns_gen: u64,
    ns_log: VecDeque<String>,
}

impl Worker<'_> {
    fn op(&mut self, t: &mut Target) {
        let total: u64 = OPS
            .iter()
            .filter(|(o, _)| t.resizable || o.keeps_size())
            .map(|(_, w)| w)
            .sum();
        let mut r = self.rng.below(total);
        let mut op = Op::Write;
        for &(o, w) in OPS.iter().filter(|(o, _)| t.resizable || o.keeps_size()) {
            if r < w {
                op = o;
                break;
            }
            r -= w;
        }
        t.op += 1;
        match op {
            Op::Write => self.write(t),
            Op::Read => {
                let len = pick_len(&mut self.rng, t.cap);
                let off = pick_off(&mut self.rng, t.size());
                t.note(format!("pread off={} len={len}", t.base + off));
                self.read_check(t, off, len);
            }
            Op::DirectWrite => self.direct_write(t),
            Op::DirectRead => self.direct_read(t),
            Op::MapStore => self.map_store(t),
            Op::MapLoad => {
                if t.size() > 0 {
                    let off = pick_off(&mut self.rng, t.size() - 1);
                    let len = pick_len(&mut self.rng, t.size() - off);
                    t.note(format!("map load off={} len={len}", t.base + off));
                    t.verify_map(self.sh, off, len, "map load");
                }
            }
            Op::Truncate => self.truncate(t),
            Op::Alloc => self.falloc(t, 0),
            Op::AllocKeep => self.falloc(t, libc::FALLOC_FL_KEEP_SIZE),
            Op::Punch => self.falloc(t, libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE),
            Op::Zero => self.falloc(t, libc::FALLOC_FL_ZERO_RANGE),
            Op::ZeroKeep => self.falloc(t, libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE),
            Op::Collapse => self.shift(t, false),
            Op::Insert => self.shift(t, true),
            Op::Sync => self.sync(t),
            Op::Full => {
                t.note("full verify".into());
                let s = t.size();
                t.verify_pread(self.sh, 0, s, "full verify");
                t.verify_map(self.sh, 0, s, "full verify");
            }
        }
        self.sh.ops.fetch_add(1, Relaxed);
    }

    fn read_check(&mut self, t: &mut Target, off: u64, len: u64) {
        let mut buf = vec![0u8; len as usize];
        self.sh.count(C::Verify);
        match pread_fd(t.fd, &mut buf, t.base + off) {
            Ok(n) => {
                let want = t.size().saturating_sub(off).min(len) as usize;
                // The shared file goes on past a region: a read may too.
                let n = if t.resizable { n } else { n.min(want) };
                if n != want {
                    t.error(
                        self.sh,
                        format!(
                            "pread of {len} at {} returned {n}, expected {want} (size {})",
                            t.base + off,
                            t.size()
                        ),
                    );
                }
                let n = n.min(want);
                t.check(self.sh, "pread", off, &buf[..n]);
            }
            Err(e) => t.error(
                self.sh,
                format!("pread at {}: {}", t.base + off, errno_name(e)),
            ),
        }
    }

    /// A random verification of `[off, off + len)` after `why`.
    fn after(&mut self, t: &mut Target, off: u64, len: u64, why: &str) {
        // Include a little around the range (partial blocks, neighbours).
        let (o, l) = (off.saturating_sub(B), len + 2 * B);
        match self.rng.below(4) {
            0 => {}
            1 => t.verify_pread(self.sh, o, l, why),
            2 => t.verify_map(self.sh, o, l, why),
            _ => {
                t.verify_map(self.sh, o, l, why);
                t.verify_pread(self.sh, o, l, why);
            }
        }
    }

    fn write(&mut self, t: &mut Target) {
        let (off, len) = if self.rng.below(16) == 0 && t.cap >= PMD64 && t.resizable {
            (PMD64 * self.rng.below(t.cap / PMD64), PMD64)
        } else {
            let len = pick_len(&mut self.rng, t.cap);
            let lim = if t.resizable {
                (t.size() + (1 << 20)).min(t.cap - len)
            } else {
                t.cap - len
            };
            (pick_off(&mut self.rng, lim), len)
        };
        let mut buf = vec![0u8; len as usize];
        fill(&mut self.rng, &mut buf, t.base + off);
        t.note(format!("pwrite off={} len={len}", t.base + off));
        self.sh.count(C::Write);
        let r = pwrite_fd(t.fd, &buf, t.base + off);
        let n = match r {
            Ok(n) => n,
            Err(libc::ENOSPC) => {
                self.sh.expect(libc::ENOSPC);
                t.note("  -> ENOSPC".into());
                0
            }
            Err(e) => {
                t.error(self.sh, format!("pwrite: {}", errno_name(e)));
                return;
            }
        };
        if n < buf.len() && r.is_ok() {
            // Only a full device may cut a write short.
            t.note(format!("  -> short write {n}"));
            self.sh.expect(libc::ENOSPC);
        }
        let end = (off + n as u64) as usize;
        // Nothing written (ENOSPC) leaves the size alone.
        if n > 0 && end > t.model.len() {
            t.model.resize(end, 0);
        }
        t.model[off as usize..end].copy_from_slice(&buf[..n]);
        t.check_size(self.sh, "pwrite");
        self.after(t, off, len, "pwrite");
    }

    /// An aligned block range for O_DIRECT: whole blocks of the file inside
    /// the target's part of it, within `[0, lim)` of the model.
    fn direct_range(&mut self, t: &Target, lim: u64) -> Option<(u64, u64)> {
        let lo = t.base.div_ceil(B) * B - t.base;
        let hi = ((t.base + lim) / B * B).saturating_sub(t.base);
        if hi < lo + B {
            return None;
        }
        let blocks = (hi - lo) / B;
        let n = if self.rng.below(6) == 0 && blocks >= 512 && lo.is_multiple_of(PMD64) {
            512
        } else {
            self.rng.range(1, blocks.min(64))
        };
        let mut first = self.rng.below(blocks - n + 1);
        if n == 512 {
            first = first / 512 * 512;
        }
        Some((lo + first * B, n * B))
    }

    fn direct_write(&mut self, t: &mut Target) {
        let lim = if t.resizable {
            (t.size() + (1 << 20)).min(t.cap)
        } else {
            t.cap
        };
        let Some((off, len)) = self.direct_range(t, lim) else {
            return;
        };
        let buf = &mut self.abuf.buf()[..len as usize];
        fill(&mut self.rng, buf, t.base + off);
        t.note(format!("O_DIRECT pwrite off={} len={len}", t.base + off));
        self.sh.count(C::Odirect);
        let n = match pwrite_fd(t.dfd, buf, t.base + off) {
            Ok(n) => n,
            Err(libc::ENOSPC) => {
                self.sh.expect(libc::ENOSPC);
                0
            }
            Err(e) => {
                t.error(self.sh, format!("O_DIRECT pwrite: {}", errno_name(e)));
                return;
            }
        };
        let end = (off + n as u64) as usize;
        // Nothing written (ENOSPC) leaves the size alone.
        if n > 0 && end > t.model.len() {
            t.model.resize(end, 0);
        }
        let data = self.abuf.buf()[..n].to_vec();
        t.model[off as usize..end].copy_from_slice(&data);
        t.check_size(self.sh, "O_DIRECT pwrite");
        self.after(t, off, len, "O_DIRECT pwrite");
    }

    fn direct_read(&mut self, t: &mut Target) {
        let Some((off, len)) = self.direct_range(t, t.size()) else {
            return;
        };
        t.note(format!("O_DIRECT pread off={} len={len}", t.base + off));
        self.sh.count(C::Odirect);
        let buf = &mut self.abuf.buf()[..len as usize];
        match pread_fd(t.dfd, buf, t.base + off) {
            Ok(n) if n == buf.len() => {
                let got = buf.to_vec();
                t.check(self.sh, "O_DIRECT pread", off, &got);
            }
            r => t.error(self.sh, format!("O_DIRECT pread of {len}: {r:?}")),
        }
    }

    fn map_store(&mut self, t: &mut Target) {
        if t.size() == 0 {
            return;
        }
        let (off, len) = if self.rng.below(12) == 0 && t.size() >= PMD64 && t.resizable {
            (PMD64 * self.rng.below(t.size() / PMD64), PMD64)
        } else {
            let off = pick_off(&mut self.rng, t.size() - 1);
            (off, pick_len(&mut self.rng, t.size() - off))
        };
        let mut buf = vec![0u8; len as usize];
        fill(&mut self.rng, &mut buf, t.base + off);
        t.note(format!("map store off={} len={len}", t.base + off));
        // Checked right before the store: the device may fill any time.
        let low_space =
            PRESSURE.load(Relaxed) || free_bytes(&self.sh.dir).map_or(true, |f| f < (64 << 20));
        if low_space {
            // A store into a hole of a full device gets SIGBUS: allocate
            // the blocks first (data unchanged), skip the store on ENOSPC.
            match fallocate(t.fd, libc::FALLOC_FL_KEEP_SIZE, t.base + off, len) {
                Ok(()) => t.note("  (blocks allocated first: low space)".into()),
                Err(libc::ENOSPC) => {
                    self.sh.expect(libc::ENOSPC);
                    t.note("  -> skipped: ENOSPC allocating its blocks".into());
                    return;
                }
                Err(e) => {
                    t.error(
                        self.sh,
                        format!("fallocate KEEP_SIZE before a map store: {}", errno_name(e)),
                    );
                    return;
                }
            }
        }
        self.sh.count(C::Mmap);
        map_write(t.map, t.base + off, &buf);
        t.model[off as usize..(off + len) as usize].copy_from_slice(&buf);
        // Stored through the mapping: read back through the file.
        t.verify_pread(self.sh, off.saturating_sub(B), len + 2 * B, "map store");
    }

    fn truncate(&mut self, t: &mut Target) {
        let size = t.size();
        let new = match self.rng.below(8) {
            0 => 0,
            1..=3 => self.rng.range(0, size),
            4 => self.rng.range(0, size) / B * B,
            _ => self.rng.range(size, t.cap),
        };
        t.note(format!("truncate {size} -> {new}"));
        self.sh.count(C::Truncate);
        match ftruncate(t.fd, new) {
            Ok(()) => t.model.resize(new as usize, 0),
            Err(libc::ENOSPC) => {
                self.sh.expect(libc::ENOSPC);
                t.reconcile(
                    self.sh,
                    new.min(size),
                    size.abs_diff(new),
                    "truncate (ENOSPC)",
                );
            }
            Err(e) => t.error(self.sh, format!("ftruncate to {new}: {}", errno_name(e))),
        }
        t.check_size(self.sh, "truncate");
        // The block holding the new EOF and a little past the old one.
        self.after(t, new / B * B, B, "truncate");
    }

    fn falloc(&mut self, t: &mut Target, mode: i32) {
        let keep = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
        let len = pick_len(&mut self.rng, t.cap);
        let lim = if t.resizable {
            (t.size() + (1 << 20)).min(t.cap - len)
        } else {
            t.cap - len
        };
        let off = pick_off(&mut self.rng, lim);
        let end = off + len;
        let size = t.size();
        t.note(format!(
            "fallocate {} off={} len={len} (size {size})",
            fmode(mode),
            t.base + off
        ));
        let punch = mode & libc::FALLOC_FL_PUNCH_HOLE != 0;
        let zero = mode & libc::FALLOC_FL_ZERO_RANGE != 0;
        self.sh.count(if punch {
            C::Punch
        } else if zero {
            C::Zero
        } else {
            C::Fallocate
        });
        match fallocate(t.fd, mode, t.base + off, len) {
            Ok(()) => {
                if punch || zero {
                    let stop = end.min(size) as usize;
                    if (off as usize) < stop {
                        t.model[off as usize..stop].fill(0);
                    }
                }
                if !keep && end > size {
                    t.model.resize(end as usize, 0);
                }
            }
            Err(libc::ENOSPC) => {
                self.sh.expect(libc::ENOSPC);
                t.note("  -> ENOSPC".into());
                t.reconcile(self.sh, off, len, "fallocate (ENOSPC)");
            }
            Err(e) => t.error(
                self.sh,
                format!("fallocate {}: {}", fmode(mode), errno_name(e)),
            ),
        }
        t.check_size(self.sh, fmode(mode));
        self.after(t, off, len, fmode(mode));
    }

    /// COLLAPSE_RANGE or INSERT_RANGE: mostly valid ones (block or PMD
    /// aligned), sometimes ones that must fail with EINVAL.
    fn shift(&mut self, t: &mut Target, insert: bool) {
        let size = t.size();
        let mode = if insert {
            libc::FALLOC_FL_INSERT_RANGE
        } else {
            libc::FALLOC_FL_COLLAPSE_RANGE
        };
        // Blocks below which a valid range must start (collapse: end).
        let whole = size.saturating_sub(1) / B;
        let room = (t.cap - size) / B;
        let valid = self.rng.below(8) != 0 && whole >= 1 && (!insert || room >= 1);
        let (off, len) = if valid {
            let pmd = self.rng.below(4) == 0;
            let unit = if pmd && whole >= 2 * 512 && (!insert || room >= 512) {
                512
            } else {
                1
            };
            if insert {
                let ob = self.rng.range(0, whole / unit) * unit;
                let lb = self.rng.range(1, (room / unit).clamp(1, 64 / unit + 1)) * unit;
                (ob * B, lb * B)
            } else {
                let lb = self.rng.range(1, (whole / unit).clamp(1, 64 / unit + 1)) * unit;
                let ob = self.rng.range(0, (whole - lb) / unit) * unit;
                (ob * B, lb * B)
            }
        } else {
            match self.rng.below(3) {
                0 => (self.rng.range(1, B - 1), B),
                1 => (0, self.rng.range(1, B - 1)),
                // At or past EOF.
                _ => {
                    let o = size.div_ceil(B) * B;
                    if insert {
                        (o, B)
                    } else {
                        (o.saturating_sub(B), B)
                    }
                }
            }
        };
        let aligned = off % B == 0 && len % B == 0;
        let fits = if insert {
            off < size && size + len <= t.cap
        } else {
            off + len < size
        };
        let ok = aligned && fits;
        let name = fmode(mode);
        t.note(format!(
            "fallocate {name} off={off} len={len} (size {size}){}",
            if ok { "" } else { " expect EINVAL" }
        ));
        self.sh.count(if insert { C::Insert } else { C::Collapse });
        match (fallocate(t.fd, mode, off, len), ok) {
            (Ok(()), true) => {
                let (o, l) = (off as usize, len as usize);
                if insert {
                    t.model.splice(o..o, std::iter::repeat_n(0, l));
                } else {
                    t.model.drain(o..o + l);
                }
            }
            (Err(libc::EINVAL), false) => self.sh.expect(libc::EINVAL),
            (Err(libc::ENOSPC), _) => {
                self.sh.expect(libc::ENOSPC);
                t.note("  -> ENOSPC".into());
                t.reconcile(self.sh, off, len, &format!("{name} (ENOSPC)"));
            }
            (Ok(()), false) => {
                t.error(
                    self.sh,
                    format!("{name} off={off} len={len} size={size} succeeded, expected EINVAL"),
                );
                t.reconcile(self.sh, 0, 0, name);
            }
            (Err(e), _) => t.error(
                self.sh,
                format!("{name} off={off} len={len}: {}", errno_name(e)),
            ),
        }
        t.check_size(self.sh, name);
        if ok {
            // Everything from `off` on moved: check some through the
            // mapping (stale PTEs would show the old data) and the file.
            let l = 256 << 10;
            t.verify_map(self.sh, off.saturating_sub(B), l, name);
            t.verify_pread(self.sh, off.saturating_sub(B), l, name);
        }
    }

    fn sync(&mut self, t: &mut Target) {
        let how = self.rng.below(3);
        t.note(["fsync", "fdatasync", "msync"][how as usize].into());
        // SAFETY: plain syscalls on a descriptor / our own mapping range.
        let r = unsafe {
            match how {
                0 => libc::fsync(t.fd),
                1 => libc::fdatasync(t.fd),
                _ => {
                    let (a, l) = (t.base / 4096 * 4096, t.size() + t.base % 4096);
                    if l == 0 {
                        0
                    } else {
                        libc::msync(t.map.add(a as usize).cast(), l as usize, libc::MS_SYNC)
                    }
                }
            }
        };
        if r != 0 {
            t.error(self.sh, format!("sync: {}", io::Error::last_os_error()));
        }
    }

    // --- the shared directory ---

    fn ns_note(&mut self, s: String) {
        if self.ns_log.len() == 20 {
            self.ns_log.pop_front();
        }
        self.ns_log.push_back(s);
    }

    fn ns_error(&self, what: String) {
        let mut s = format!(
            "thread {} directory {}: {what}\n  last {} ops of this thread there:",
            self.tid,
            self.sh.dir.join("ns").display(),
            self.ns_log.len()
        );
        for l in &self.ns_log {
            s.push_str("\n    ");
            s.push_str(l);
        }
        self.sh.error(&s);
    }

    /// A self-checking file body: magic, writer, generation, length,
    /// payload, CRC-32C of all before it.
    fn ns_body(&mut self) -> Vec<u8> {
        self.ns_gen += 1;
        let plen = self.rng.below(6000) as usize;
        let mut v = Vec::with_capacity(24 + plen);
        v.extend_from_slice(b"RDXS");
        v.extend_from_slice(&(self.tid as u32).to_le_bytes());
        v.extend_from_slice(&self.ns_gen.to_le_bytes());
        v.extend_from_slice(&(plen as u32).to_le_bytes());
        let mut p = vec![0u8; plen];
        fill_pattern(&mut p, self.ns_gen ^ ((self.tid as u64) << 40), 0);
        v.extend_from_slice(&p);
        let c = crc32c(&v);
        v.extend_from_slice(&c.to_le_bytes());
        v
    }

    fn ns_valid(body: &[u8]) -> Result<(), String> {
        if body.len() < 24 || &body[..4] != b"RDXS" {
            return Err(format!("{} bytes without the header", body.len()));
        }
        let plen = u32::from_le_bytes(body[16..20].try_into().unwrap()) as usize;
        if body.len() != 24 + plen {
            return Err(format!("{} bytes, header says {}", body.len(), 24 + plen));
        }
        let c = u32::from_le_bytes(body[20 + plen..].try_into().unwrap());
        if crc32c(&body[..20 + plen]) != c {
            return Err("checksum mismatch".into());
        }
        Ok(())
    }

    fn ns_op(&mut self) {
        let ns = self.sh.dir.join("ns");
        let name = |k: u64| ns.join(format!("n{k}"));
        let tmp = ns.join(format!("t{}", self.tid));
        let k = self.rng.below(NS_NAMES);
        self.sh.ops.fetch_add(1, Relaxed);
        match self.rng.below(6) {
            0 | 1 => {
                let body = self.ns_body();
                let noreplace = self.rng.below(2) == 0;
                self.ns_note(format!(
                    "create t{} ({} bytes) -> n{k}{}",
                    self.tid,
                    body.len(),
                    if noreplace { " NOREPLACE" } else { "" }
                ));
                if let Err(e) = fs::write(&tmp, &body) {
                    if e.raw_os_error() == Some(libc::ENOSPC) {
                        self.sh.expect(libc::ENOSPC);
                    } else {
                        self.ns_error(format!("write {}: {e}", tmp.display()));
                    }
                    let _ = fs::remove_file(&tmp);
                    return;
                }
                let flags = if noreplace { libc::RENAME_NOREPLACE } else { 0 };
                match renameat2(&tmp, &name(k), flags) {
                    Ok(()) => {}
                    Err(e) if noreplace && e.raw_os_error() == Some(libc::EEXIST) => {
                        self.sh.expect(libc::EEXIST);
                        if let Err(e) = fs::remove_file(&tmp) {
                            self.ns_error(format!("unlink {}: {e}", tmp.display()));
                        }
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                        self.sh.expect(libc::ENOSPC);
                        let _ = fs::remove_file(&tmp);
                    }
                    Err(e) => self.ns_error(format!("rename t{} -> n{k}: {e}", self.tid)),
                }
            }
            2 => {
                self.ns_note(format!("unlink n{k}"));
                match fs::remove_file(name(k)) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                        self.sh.expect(libc::ENOENT)
                    }
                    Err(e) => self.ns_error(format!("unlink n{k}: {e}")),
                }
            }
            3 => {
                let j = self.rng.below(NS_NAMES);
                self.ns_note(format!("rename n{k} -> n{j}"));
                match fs::rename(name(k), name(j)) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                        self.sh.expect(libc::ENOENT)
                    }
                    Err(e) => self.ns_error(format!("rename n{k} -> n{j}: {e}")),
                }
            }
            4 => {
                self.ns_note(format!("open+read n{k}"));
                self.sh.count(C::Verify);
                match fs::File::open(name(k)) {
                    Ok(f) => {
                        let md = f.metadata();
                        let mut body = Vec::new();
                        let r = std::io::Read::read_to_end(&mut &f, &mut body);
                        match (md, r) {
                            (Ok(md), Ok(_)) => {
                                if !md.is_file() || md.nlink() > 1 || md.len() != body.len() as u64
                                {
                                    self.ns_error(format!(
                                        "n{k}: mode {:o} nlink {} size {} but read {} bytes",
                                        md.mode(),
                                        md.nlink(),
                                        md.len(),
                                        body.len()
                                    ));
                                } else if let Err(e) = Self::ns_valid(&body) {
                                    self.ns_error(format!("n{k}: bad contents: {e}"));
                                }
                            }
                            (a, b) => self.ns_error(format!(
                                "n{k}: fstat {:?} / read {:?}",
                                a.err(),
                                b.err()
                            )),
                        }
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                        self.sh.expect(libc::ENOENT)
                    }
                    Err(e) => self.ns_error(format!("open n{k}: {e}")),
                }
            }
            _ => {
                self.ns_note("readdir".into());
                self.sh.count(C::Verify);
                let rd = match fs::read_dir(&ns) {
                    Ok(rd) => rd,
                    Err(e) => return self.ns_error(format!("readdir: {e}")),
                };
                let mut seen = std::collections::HashSet::new();
                for ent in rd {
                    let ent = match ent {
                        Ok(e) => e,
                        Err(e) => return self.ns_error(format!("readdir entry: {e}")),
                    };
                    let n = ent.file_name().to_string_lossy().into_owned();
                    let ok = n
                        .strip_prefix('n')
                        .or_else(|| n.strip_prefix('t'))
                        .and_then(|d| d.parse::<u64>().ok())
                        .is_some();
                    if !ok || !seen.insert(n.clone()) {
                        self.ns_error(format!("readdir returned {n:?} (unknown or twice)"));
                        continue;
                    }
                    match fs::symlink_metadata(ent.path()) {
                        Ok(md) if md.is_file() && md.nlink() == 1 => {}
                        Ok(md) => {
                            self.ns_error(format!("{n}: mode {:o} nlink {}", md.mode(), md.nlink()))
                        }
                        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                            self.sh.expect(libc::ENOENT)
                        }
                        Err(e) => self.ns_error(format!("stat {n}: {e}")),
                    }
                }
            }
        }
    }
}

/// Opens (creates) `p` for reading and writing, plain and O_DIRECT.
fn open_pair(p: &Path) -> Result<(fs::File, fs::File), String> {
    let f = create_rw(p)?;
    let d = ctx(
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(p),
        format!("{} (O_DIRECT)", p.display()),
    )?;
    Ok((f, d))
}

/// One thread's own file.
struct Own {
    _f: fs::File,
    _d: fs::File,
    _map: Mapping,
    t: Target,
}

fn own_file(dir: &Path, tid: usize, k: usize, cap: u64) -> Result<Own, String> {
    let path = dir.join(format!("s{tid}-{k}"));
    let (f, d) = open_pair(&path)?;
    let map = ctx(
        Mapping::shared_aligned(f.as_raw_fd(), cap as usize, PMD),
        format!("mmap {}", path.display()),
    )?;
    let t = Target {
        path,
        fd: f.as_raw_fd(),
        dfd: d.as_raw_fd(),
        map: map.ptr,
        base: 0,
        model: Vec::new(),
        cap,
        resizable: true,
        fixed_size: 0,
        log: VecDeque::new(),
        tid,
        op: 0,
    };
    Ok(Own {
        _f: f,
        _d: d,
        _map: map,
        t,
    })
}

fn worker(
    sh: &Shared,
    cfg: &Config,
    tid: usize,
    cap: u64,
    shared: (i32, i32, usize),
) -> TestResult {
    let mut own = Vec::new();
    for k in 0..2 {
        own.push(own_file(&cfg.dir, tid, k, cap)?);
    }
    let mut region = Target {
        path: cfg.dir.join("shared"),
        fd: shared.0,
        dfd: shared.1,
        map: shared.2 as *mut u8,
        base: tid as u64 * REGION,
        model: vec![0; REGION as usize],
        cap: REGION,
        resizable: false,
        fixed_size: cfg.threads as u64 * REGION,
        log: VecDeque::new(),
        tid,
        op: 0,
    };
    let mut w = Worker {
        sh,
        tid,
        rng: Rng::new(cfg.seed ^ (tid as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F)),
        abuf: Aligned::new(MAX_DIRECT),
        ns_gen: 0,
        ns_log: VecDeque::new(),
    };
    while !sh.stop.load(Relaxed) {
        match w.rng.below(100) {
            0..=79 => {
                let k = w.rng.below(2) as usize;
                w.op(&mut own[k].t);
            }
            80..=91 => w.op(&mut region),
            _ => w.ns_op(),
        }
    }
    // A last full check of everything this thread owns.
    for o in own.iter_mut() {
        let s = o.t.size();
        o.t.note("final verify".into());
        o.t.verify_pread(sh, 0, s, "final verify");
        o.t.verify_map(sh, 0, s, "final verify");
    }
    region.note("final verify".into());
    region.verify_pread(sh, 0, REGION, "final verify");
    region.verify_map(sh, 0, REGION, "final verify");
    Ok(())
}

/// Runs the workload; returns the number of errors.
pub fn run(cfg: &Config) -> Result<u64, String> {
    let dir = &cfg.dir;
    ctx(fs::create_dir_all(dir.join("ns")), dir.display())?;
    let free = free_bytes(dir)?;
    let t = cfg.threads as u64;
    // Own files plus the shared one stay well below the free space.
    let cap = ((free * 2 / 5).saturating_sub(t * REGION) / (2 * t) / PMD64 * PMD64).min(MAX_CAP);
    if cap < PMD64 {
        return Err(format!(
            "{}: {free} bytes free are too few for {t} threads (each needs ~15 MiB); \
             use fewer threads or a larger device",
            dir.display()
        ));
    }
    println!(
        "stress: seed={} threads={t} seconds={} dir={} file-cap={} free={free}",
        cfg.seed,
        cfg.seconds,
        dir.display(),
        cap
    );
    let sp = dir.join("shared");
    let (sf, sd) = open_pair(&sp)?;
    let ssize = t * REGION;
    ctx(sf.set_len(ssize), format!("truncate {}", sp.display()))?;
    let smap = SharedMap(ctx(
        Mapping::shared_aligned(sf.as_raw_fd(), ssize as usize, PMD),
        format!("mmap {}", sp.display()),
    )?);
    let sh = Shared {
        ops: AtomicU64::new(0),
        counts: Default::default(),
        expected: Default::default(),
        errors: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        print: Mutex::new(()),
        dir: dir.clone(),
        start: Instant::now(),
    };
    let start = sh.start;
    let limit = Duration::from_secs(cfg.seconds);
    let shared = (sf.as_raw_fd(), sd.as_raw_fd(), smap.0.ptr as usize);
    let failed: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        let mut hs = Vec::new();
        for tid in 0..cfg.threads {
            let (sh, failed, smap) = (&sh, &failed, &smap);
            hs.push(s.spawn(move || {
                let _keep = smap;
                if let Err(e) = worker(sh, cfg, tid, cap, shared) {
                    sh.error(&format!("thread {tid}: {e}"));
                    failed.lock().unwrap().push(e);
                }
            }));
        }
        let mut next = 5;
        while start.elapsed() < limit && !hs.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(250));
            let el = start.elapsed().as_secs();
            if el >= next {
                let _g = sh.print.lock().unwrap_or_else(|p| p.into_inner());
                println!("{}", sh.progress(el));
                next = el + 5;
            }
        }
        sh.stop.store(true, Relaxed);
    });
    let el = start.elapsed().as_secs();
    println!("{}", sh.progress(el));
    let exp: Vec<String> = EXPECTED
        .iter()
        .zip(&sh.expected)
        .map(|(&e, n)| format!("{}={}", errno_name(e), n.load(Relaxed)))
        .collect();
    println!("stress: expected errnos (not errors): {}", exp.join(" "));
    let errors = sh.errors.load(Relaxed);
    drop(smap);
    drop((sf, sd));
    if errors == 0 {
        let _ = fs::remove_dir_all(dir.join("ns"));
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let own = n
                .strip_prefix('s')
                .and_then(|r| r.split_once('-'))
                .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && (b == "0" || b == "1"));
            if n == "shared" || own {
                let _ = fs::remove_file(e.path());
            }
        }
    } else {
        println!("stress: files left in {} for inspection", dir.display());
    }
    println!(
        "stress: done seconds={el} ops={} errors={errors}",
        sh.ops.load(Relaxed)
    );
    Ok(errors)
}

const USAGE: &str = "usage: guest-test stress --seconds N --dir DIR [--threads T] [--seed S]";

/// `guest-test stress ...`: returns the exit code.
pub fn cli(args: &[String]) -> i32 {
    let mut cfg = Config {
        seconds: 0,
        dir: PathBuf::new(),
        threads: 4,
        seed: clock_seed(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next();
        let ok = match (a.as_str(), v) {
            ("--seconds", Some(v)) => v.parse().map(|n| cfg.seconds = n).is_ok(),
            ("--dir", Some(v)) => {
                cfg.dir = PathBuf::from(v);
                true
            }
            ("--threads", Some(v)) => v.parse().map(|n| cfg.threads = n).is_ok(),
            ("--seed", Some(v)) => v.parse().map(|n| cfg.seed = n).is_ok(),
            _ => false,
        };
        if !ok {
            eprintln!("stress: bad argument {a:?} {v:?}\n{USAGE}");
            return 2;
        }
    }
    if cfg.seconds == 0 || cfg.dir.as_os_str().is_empty() || cfg.threads == 0 {
        eprintln!("{USAGE}");
        return 2;
    }
    match run(&cfg) {
        Ok(0) => 0,
        Ok(_) => 1,
        Err(e) => {
            eprintln!("stress: {e}");
            1
        }
    }
}

/// The bounded guest test: the workload for `RDAXFS_STRESS_SECS` (25) s
/// on a fresh rdaxfs, then an unmount, fsck -n and a clean kernel log.
pub fn stress_short() -> TestResult {
    let _fx = Fixture::new()?;
    fresh_mount()?;
    let mark = dmesg_mark("stress-short");
    let cfg = Config {
        seconds: env_u64("RDAXFS_STRESS_SECS", 25),
        dir: Path::new(MNT).join("stress"),
        threads: env_u64("RDAXFS_STRESS_THREADS", 4) as usize,
        seed: env_u64("RDAXFS_STRESS_SEED", clock_seed()),
    };
    // RDAXFS_STRESS_BALLAST=1: another file takes all but 1 MiB of the
    // free space for 3 s out of every 6 (ENOSPC paths, as when other
    // workloads share the device).
    let stop = AtomicBool::new(false);
    let errors = std::thread::scope(|s| {
        if env_u64("RDAXFS_STRESS_BALLAST", 0) != 0 {
            s.spawn(|| ballast(Path::new(MNT), &stop));
        }
        let r = run(&cfg);
        stop.store(true, Relaxed);
        r
    })?;
    crate::ensure!(
        errors == 0,
        "stress found {errors} errors (seed {}; rerun with RDAXFS_STRESS_SEED={})",
        cfg.seed,
        cfg.seed
    );
    ctx(umount(MNT), "umount")?;
    fsck_clean(PMEM)?;
    let bad = kernel_problems(&mark);
    crate::ensure!(bad.is_empty(), "kernel log: {}", bad.join("\n"));
    Ok(())
}

/// Fills `dir`'s device but for 1 MiB for 3 s out of every 6, until `stop`.
fn ballast(dir: &Path, stop: &AtomicBool) {
    let p = dir.join("ballast");
    let nap = |secs: u64| {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(secs) && !stop.load(Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    nap(3);
    while !stop.load(Relaxed) {
        PRESSURE.store(true, Relaxed);
        // Mapped stores that started before the flag was set end meanwhile.
        std::thread::sleep(Duration::from_millis(200));
        if let (Ok(f), Ok(free)) = (create_rw(&p), free_bytes(dir)) {
            let want = free.saturating_sub(1 << 20);
            match fallocate(f.as_raw_fd(), 0, 0, want.max(1)) {
                Ok(()) => println!("stress: ballast: {want} of {free} free bytes taken"),
                Err(e) => println!("stress: ballast: fallocate {want}: {}", errno_name(e)),
            }
            nap(3);
        }
        let _ = fs::remove_file(&p);
        PRESSURE.store(false, Relaxed);
        nap(3);
    }
    let _ = fs::remove_file(&p);
}
