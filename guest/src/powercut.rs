//! The power-cut loop, guest side (the host side is `scripts/powercut.sh`).
//!
//! Each boot of the loop runs `powercut-check` (except the first, which
//! runs `powercut-mkfs`) and then `powercut-work`, and the host kills QEMU
//! at a random moment while the workload runs.
//!
//! **Durability contract of the loop.** A name and the content of the file
//! it names are durable once `fsync(file)` and then `fsync(parent
//! directory)` have returned (for a rename: the file and both parent
//! directories; for an unlink: the parent directory, and the file if other
//! names of it remain; for mmap stores: `msync(MS_SYNC)` first). From then
//! on, until the next operation touching that name starts, a power cut must
//! not lose or change it; a name durably unlinked must not come back.
//!
//! `powercut-work` forks workers that run a mixed workload (create, write,
//! append, truncate, fallocate in every supported mode, mmap stores with
//! msync, rename, link, unlink) on their own names in shared directories.
//! Each worker writes its history straight to the serial port, one line per
//! event, each ending in " .":
//!
//! ```text
//! PCW <worker> <seq> B <path>...             an operation touching these paths starts
//! PCW <worker> <seq> F <path> <size> <crc> . <path> is durable with this content
//! PCW <worker> <seq> G <path> .              <path> is durably absent
//! ```
//!
//! A `B` line is drained to the host (tcdrain) before its operation starts,
//! so that a killed guest never leaves the host believing an older claim.
//! `guest-test powercut-manifest LOG`, run on the host, turns a console log
//! into the manifest of what must have survived; `powercut-check`, in the
//! next boot, mounts (no fsck first), checks every entry, unmounts, runs
//! `fsck.rdaxfs -n` and reports in `PC-*` lines that the host collects.

use crate::ensure;
use crate::util::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::time::Instant;

/// Where the workload lives on the filesystem.
const ROOT: &str = "/mnt/pc";
/// Shared directories the workers' names are spread over.
const DIRS: usize = 3;
/// Worker processes.
const WORKERS: u64 = 3;
/// Names one worker keeps at most.
const MAX_NAMES: usize = 12;
/// Largest file a worker makes.
const MAX_SIZE: usize = 1 << 20;
/// The manifest the host appends to the initramfs for `powercut-check`.
const MANIFEST: &str = "/manifest";
/// The serial console the host logs.
const CONSOLE: &str = "/dev/ttyS0";

/// Extra entry points of guest-test that are not in the normal test list
/// (the normal boots must not run them): `None` if `name` is none of them.
pub fn dispatch(name: &str) -> Option<TestResult> {
    Some(match name {
        "powercut-mkfs" => mkfs_fresh(),
        "powercut-work" => work(),
        "powercut-check" => check(),
        "powercut-worker" => worker_main(),
        "powercut-manifest" => manifest_main(),
        _ => return None,
    })
}

/// CRC-32C, table driven (files are up to 1 MiB and are summed often).
fn crc32c(data: &[u8]) -> u32 {
    use std::sync::OnceLock;
    static TABLE: OnceLock<[u32; 256]> = OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    let mut c = !0u32;
    for &b in data {
        c = t[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// The serial port, written one whole line per write(2).
struct Console(File);

impl Console {
    fn open() -> Result<Self, String> {
        let f = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(CONSOLE);
        Ok(Self(ctx(f, CONSOLE)?))
    }

    /// Writes `s` and a newline; with `drain`, returns only once the bytes
    /// left the UART (so the host has them even if it kills QEMU next).
    fn line(&mut self, s: &str, drain: bool) -> TestResult {
        let l = format!("{s}\n");
        ctx(self.0.write_all(l.as_bytes()), CONSOLE)?;
        if drain {
            // SAFETY: tcdrain on a descriptor we own.
            if unsafe { libc::tcdrain(self.0.as_raw_fd()) } != 0 {
                return Err(format!(
                    "tcdrain {CONSOLE}: {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
        Ok(())
    }
}

/// `powercut-mkfs`: a fresh filesystem for the first boot of a loop.
fn mkfs_fresh() -> TestResult {
    load_module(&[])?;
    umount_all(MNT);
    mkfs(PMEM, &[])?;
    println!("PC-MKFS ok");
    Ok(())
}

/// fsync of a directory.
fn fsync_dir(dir: &str) -> Result<(), String> {
    let d = ctx(
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(dir),
        format!("open dir {dir}"),
    )?;
    ctx(d.sync_all(), format!("fsync dir {dir}"))
}

fn dir_of(path: &str) -> &str {
    &path[..path.rfind('/').unwrap_or(0)]
}

/// `powercut-work`: mounts, starts the workers, waits (until the host cuts
/// the power). Returns only if every worker stopped, which is a failure.
fn work() -> TestResult {
    load_module(&[])?;
    if mount_entry(MNT).is_none() {
        mount(PMEM, MNT, "rdaxfs", "").map_err(|e| format!("mount {PMEM} {MNT}: {e}"))?;
    }
    let mut made = false;
    for d in std::iter::once(ROOT.to_string()).chain((0..DIRS).map(|i| format!("{ROOT}/d{i}"))) {
        if fs::metadata(&d).is_err() {
            ctx(fs::create_dir(&d), format!("mkdir {d}"))?;
            made = true;
        }
    }
    if made {
        for d in (0..DIRS).map(|i| format!("{ROOT}/d{i}")) {
            fsync_dir(&d)?;
        }
        fsync_dir(ROOT)?;
        fsync_dir(MNT)?;
    }
    let seed = clock_seed();
    let mut con = Console::open()?;
    con.line(&format!("PC-START seed={seed} workers={WORKERS}"), true)?;
    let exe = ctx(std::env::current_exe(), "current_exe")?;
    let mut kids = Vec::new();
    for k in 0..WORKERS {
        let c = std::process::Command::new(&exe)
            .arg("powercut-worker")
            .env("POWERCUT_WORKER", k.to_string())
            .env("POWERCUT_SEED", seed.wrapping_add(k * 7919).to_string())
            .spawn();
        kids.push(ctx(c, "spawn worker")?);
    }
    let mut failed = Vec::new();
    for (k, mut c) in kids.into_iter().enumerate() {
        let st = ctx(c.wait(), "wait worker")?;
        con.line(&format!("PC-WORKER-EXIT {k} {st}"), true)?;
        failed.push(format!("worker {k}: {st}"));
    }
    Err(format!(
        "every worker stopped before the power cut: {failed:?}"
    ))
}

/// One worker's view of its files: names to inode keys, keys to content.
struct Model {
    names: BTreeMap<String, u64>,
    data: BTreeMap<u64, Vec<u8>>,
    next_key: u64,
}

impl Model {
    /// Every name of inode `key`.
    fn names_of(&self, key: u64) -> Vec<String> {
        self.names
            .iter()
            .filter(|(_, &k)| k == key)
            .map(|(n, _)| n.clone())
            .collect()
    }
}

struct Worker {
    id: u64,
    seq: u64,
    rng: Rng,
    con: Console,
    m: Model,
}

fn fill_random(rng: &mut Rng, buf: &mut [u8]) {
    for ch in buf.chunks_mut(8) {
        let v = rng.next_u64().to_le_bytes();
        ch.copy_from_slice(&v[..ch.len()]);
    }
}

impl Worker {
    fn emit(&mut self, body: &str, drain: bool) -> TestResult {
        let l = format!("PCW {} {} {body} .", self.id, self.seq);
        self.seq += 1;
        self.con.line(&l, drain)
    }

    /// Announces that an operation touching `paths` starts (drained).
    fn begin(&mut self, paths: &[String]) -> TestResult {
        self.emit(&format!("B {}", paths.join(" ")), true)
    }

    /// Claims the current state of `path` (after the fsyncs).
    fn claim(&mut self, path: &str) -> TestResult {
        let body = match self.m.names.get(path) {
            Some(k) => {
                let d = &self.m.data[k];
                format!("F {path} {} {:08x}", d.len(), crc32c(d))
            }
            None => format!("G {path}"),
        };
        self.emit(&body, false)
    }

    fn candidate(&mut self) -> String {
        let d = self.rng.below(DIRS as u64);
        let n = self.rng.below(2 * MAX_NAMES as u64);
        format!("{ROOT}/d{d}/w{}-{n}", self.id)
    }

    fn pick_name(&mut self) -> Option<String> {
        if self.m.names.is_empty() {
            return None;
        }
        let i = self.rng.below(self.m.names.len() as u64) as usize;
        self.m.names.keys().nth(i).cloned()
    }

    /// Reads the worker's files back after a boot: they become the model.
    fn scan(&mut self) -> TestResult {
        let mut by_ino: BTreeMap<u64, u64> = BTreeMap::new();
        for d in 0..DIRS {
            let dir = format!("{ROOT}/d{d}");
            for e in ctx(fs::read_dir(&dir), format!("readdir {dir}"))? {
                let e = ctx(e, format!("readdir {dir}"))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if !name.starts_with(&format!("w{}-", self.id)) {
                    continue;
                }
                let path = format!("{dir}/{name}");
                let md = ctx(fs::symlink_metadata(&path), format!("stat {path}"))?;
                if !md.is_file() {
                    continue;
                }
                let key = match by_ino.get(&md.ino()) {
                    Some(&k) => k,
                    None => {
                        let k = self.m.next_key;
                        self.m.next_key += 1;
                        let data = ctx(fs::read(&path), format!("read {path}"))?;
                        self.m.data.insert(k, data);
                        by_ino.insert(md.ino(), k);
                        k
                    }
                };
                self.m.names.insert(path, key);
            }
        }
        // Make what was found durable by the contract, then claim it.
        let names: Vec<String> = self.m.names.keys().cloned().collect();
        for n in &names {
            ctx(ctx(File::open(n), n)?.sync_all(), format!("fsync {n}"))?;
        }
        for d in 0..DIRS {
            fsync_dir(&format!("{ROOT}/d{d}"))?;
        }
        for n in &names {
            self.claim(n)?;
        }
        Ok(())
    }

    /// Reads inode `key` back through `path` and compares with the model.
    fn verify(&self, key: u64, path: &str) -> TestResult {
        let got = ctx(fs::read(path), format!("read back {path}"))?;
        let want = &self.m.data[&key];
        if got.len() != want.len() {
            return Err(format!(
                "{path}: {} bytes, the model has {}",
                got.len(),
                want.len()
            ));
        }
        if let Some(o) = got.iter().zip(want).position(|(a, b)| a != b) {
            return Err(format!(
                "{path}: byte {o} reads {:#04x}, the model has {:#04x}",
                got[o], want[o]
            ));
        }
        Ok(())
    }

    /// One random operation, made durable and claimed.
    fn step(&mut self) -> TestResult {
        let full = self.m.names.len() >= MAX_NAMES;
        let r = self.rng.below(100);
        let op = match r {
            _ if self.m.names.is_empty() => "create",
            0..=11 if !full => "create",
            0..=11 => "unlink",
            12..=29 => "write",
            30..=39 => "append",
            40..=47 => "truncate",
            48..=61 => "fallocate",
            62..=73 => "mmap",
            74..=83 => "rename",
            84..=89 if !full => "link",
            _ => "unlink",
        };
        match op {
            "create" => self.op_create(),
            "rename" => self.op_rename(),
            "link" => self.op_link(),
            "unlink" => self.op_unlink(),
            _ => self.op_data(op),
        }
    }

    fn op_create(&mut self) -> TestResult {
        let path = self.candidate();
        if self.m.names.contains_key(&path) {
            return Ok(());
        }
        let len = if self.rng.below(4) == 0 {
            self.rng.below(MAX_SIZE as u64 + 1) as usize
        } else {
            self.rng.below(3 * BLOCK as u64) as usize
        };
        let mut data = vec![0u8; len];
        fill_random(&mut self.rng, &mut data);
        self.begin(std::slice::from_ref(&path))?;
        let f = create_rw(std::path::Path::new(&path))?;
        ctx(f.write_all_at(&data, 0), format!("write {path}"))?;
        ctx(f.sync_all(), format!("fsync {path}"))?;
        fsync_dir(dir_of(&path))?;
        let key = self.m.next_key;
        self.m.next_key += 1;
        self.m.data.insert(key, data);
        self.m.names.insert(path.clone(), key);
        self.verify(key, &path)?;
        self.claim(&path)
    }

    fn op_link(&mut self) -> TestResult {
        let Some(src) = self.pick_name() else {
            return Ok(());
        };
        let dst = self.candidate();
        if self.m.names.contains_key(&dst) {
            return Ok(());
        }
        let key = self.m.names[&src];
        let mut touched = self.m.names_of(key);
        touched.push(dst.clone());
        self.begin(&touched)?;
        ctx(fs::hard_link(&src, &dst), format!("link {src} {dst}"))?;
        ctx(
            ctx(File::open(&dst), &dst)?.sync_all(),
            format!("fsync {dst}"),
        )?;
        fsync_dir(dir_of(&dst))?;
        self.m.names.insert(dst.clone(), key);
        self.verify(key, &dst)?;
        for p in &touched {
            self.claim(p)?;
        }
        Ok(())
    }

    fn op_unlink(&mut self) -> TestResult {
        let Some(path) = self.pick_name() else {
            return Ok(());
        };
        let key = self.m.names[&path];
        let touched = self.m.names_of(key);
        self.begin(&touched)?;
        ctx(fs::remove_file(&path), format!("unlink {path}"))?;
        fsync_dir(dir_of(&path))?;
        self.m.names.remove(&path);
        let rest = self.m.names_of(key);
        if let Some(other) = rest.first() {
            ctx(
                ctx(File::open(other), other)?.sync_all(),
                format!("fsync {other}"),
            )?;
            self.verify(key, other)?;
        } else {
            self.m.data.remove(&key);
        }
        for p in &touched {
            self.claim(p)?;
        }
        Ok(())
    }

    fn op_rename(&mut self) -> TestResult {
        let Some(src) = self.pick_name() else {
            return Ok(());
        };
        let dst = self.candidate();
        let key = self.m.names[&src];
        if dst == src || self.m.names.get(&dst) == Some(&key) {
            return Ok(());
        }
        let mut touched = self.m.names_of(key);
        let old = self.m.names.get(&dst).copied();
        match old {
            Some(o) => touched.extend(self.m.names_of(o)),
            None => touched.push(dst.clone()),
        }
        self.begin(&touched)?;
        ctx(fs::rename(&src, &dst), format!("rename {src} {dst}"))?;
        ctx(
            ctx(File::open(&dst), &dst)?.sync_all(),
            format!("fsync {dst}"),
        )?;
        fsync_dir(dir_of(&src))?;
        if dir_of(&dst) != dir_of(&src) {
            fsync_dir(dir_of(&dst))?;
        }
        self.m.names.remove(&src);
        self.m.names.insert(dst.clone(), key);
        if let Some(o) = old {
            let rest = self.m.names_of(o);
            if let Some(other) = rest.first() {
                // The replaced inode lost a link: make its count durable.
                ctx(
                    ctx(File::open(other), other)?.sync_all(),
                    format!("fsync {other}"),
                )?;
                self.verify(o, other)?;
            } else {
                self.m.data.remove(&o);
            }
        }
        self.verify(key, &dst)?;
        for p in &touched {
            self.claim(p)?;
        }
        Ok(())
    }

    /// write, append, truncate, fallocate, mmap: content changes of one
    /// inode, seen by all its names.
    fn op_data(&mut self, op: &str) -> TestResult {
        let Some(path) = self.pick_name() else {
            return Ok(());
        };
        let key = self.m.names[&path];
        let size = self.m.data[&key].len();
        let touched = self.m.names_of(key);
        let f = ctx(
            OpenOptions::new().read(true).write(true).open(&path),
            format!("open {path}"),
        )?;
        let fd = f.as_raw_fd();
        let mut new = self.m.data[&key].clone();
        let what;
        match op {
            "write" | "append" => {
                let off = if op == "append" {
                    size
                } else {
                    self.rng.below(size as u64 + 2 * BLOCK as u64) as usize
                };
                let off = off.min(MAX_SIZE - 1);
                let len = (self.rng.range(1, 64 << 10) as usize).min(MAX_SIZE - off);
                let mut buf = vec![0u8; len];
                fill_random(&mut self.rng, &mut buf);
                what = format!("{op} {len} at {off}");
                self.begin(&touched)?;
                ctx(f.write_all_at(&buf, off as u64), format!("{what} {path}"))?;
                if new.len() < off + len {
                    new.resize(off + len, 0);
                }
                new[off..off + len].copy_from_slice(&buf);
            }
            "truncate" => {
                let to = if self.rng.below(2) == 0 {
                    self.rng.below(size as u64 + 1) as usize
                } else {
                    (size + self.rng.below(64 << 10) as usize).min(MAX_SIZE)
                };
                what = format!("truncate to {to}");
                self.begin(&touched)?;
                ftruncate(fd, to as u64)
                    .map_err(|e| format!("{what} {path}: {}", errno_name(e)))?;
                new.resize(to, 0);
            }
            "mmap" => {
                if size == 0 {
                    return Ok(());
                }
                let off = self.rng.below(size as u64) as usize;
                let len = (self.rng.range(1, 16 << 10) as usize).min(size - off);
                let mut buf = vec![0u8; len];
                fill_random(&mut self.rng, &mut buf);
                what = format!("mmap store {len} at {off} + msync");
                self.begin(&touched)?;
                let m = ctx(Mapping::shared(fd, size), format!("mmap {path}"))?;
                m.write_at(off, &buf);
                // SAFETY: msync over the whole live mapping, page aligned
                // start (mmap returned it).
                let r = unsafe { libc::msync(m.ptr.cast(), m.len, libc::MS_SYNC) };
                ctx(check_rc(r.into()), format!("msync {path}"))?;
                drop(m);
                new[off..off + len].copy_from_slice(&buf);
            }
            _ => {
                let (mode, off, len) = self.pick_fallocate(size);
                what = format!("fallocate mode {mode:#x} {len} at {off}");
                self.begin(&touched)?;
                fallocate(fd, mode, off as u64, len as u64)
                    .map_err(|e| format!("{what} {path} (size {size}): {}", errno_name(e)))?;
                apply_fallocate(&mut new, mode, off, len);
            }
        }
        ctx(f.sync_all(), format!("fsync {path}"))?;
        drop(f);
        let mut dirs = BTreeSet::new();
        for p in &touched {
            dirs.insert(dir_of(p).to_string());
        }
        for d in &dirs {
            fsync_dir(d)?;
        }
        self.m.data.insert(key, new);
        self.verify(key, &path)
            .map_err(|e| format!("after {what}: {e}"))?;
        for p in &touched {
            self.claim(p)?;
        }
        Ok(())
    }

    /// A fallocate call valid for a file of `size` bytes: (mode, off, len).
    fn pick_fallocate(&mut self, size: usize) -> (i32, usize, usize) {
        const B: usize = BLOCK;
        let blocks = size / B;
        match self.rng.below(7) {
            // Collapse needs block-aligned off/len with off + len < size.
            0 if blocks >= 2 => {
                let n = self.rng.range(1, (blocks - 1).min(16) as u64) as usize;
                let first = self.rng.below((blocks - n) as u64) as usize;
                (libc::FALLOC_FL_COLLAPSE_RANGE, first * B, n * B)
            }
            // Insert needs block-aligned off < size.
            1 if size > 0 && blocks < MAX_SIZE / B - 16 => {
                let n = self.rng.range(1, 16) as usize;
                let first = self.rng.below(size.div_ceil(B) as u64) as usize;
                (libc::FALLOC_FL_INSERT_RANGE, first * B, n * B)
            }
            r => {
                let mode = match r {
                    2 => libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    3 => libc::FALLOC_FL_ZERO_RANGE,
                    4 => libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
                    5 => libc::FALLOC_FL_KEEP_SIZE,
                    _ => 0,
                };
                let off = self.rng.below((size + 2 * B).min(MAX_SIZE - 1) as u64) as usize;
                let len = (self.rng.range(1, 64 << 10) as usize).min(MAX_SIZE - off);
                (mode, off, len)
            }
        }
    }
}

/// What fallocate(mode, off, len) does to the content `d`.
fn apply_fallocate(d: &mut Vec<u8>, mode: i32, off: usize, len: usize) {
    let end = off + len;
    let size = d.len();
    let keep = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
    if mode == libc::FALLOC_FL_COLLAPSE_RANGE {
        d.drain(off..end);
    } else if mode == libc::FALLOC_FL_INSERT_RANGE {
        d.splice(off..off, std::iter::repeat_n(0u8, len));
    } else {
        if mode & (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE) != 0 && off < size {
            d[off..end.min(size)].fill(0);
        }
        if !keep && end > size {
            d.resize(end, 0);
        }
    }
}

/// `powercut-worker` (spawned by `powercut-work`): runs operations until
/// killed; any failure is printed as a `PCW-ERROR` line.
fn worker_main() -> TestResult {
    let id = env_u64("POWERCUT_WORKER", 0);
    let seed = env_u64("POWERCUT_SEED", 1);
    let mut w = Worker {
        id,
        seq: 0,
        rng: Rng::new(seed),
        con: Console::open()?,
        m: Model {
            names: BTreeMap::new(),
            data: BTreeMap::new(),
            next_key: 0,
        },
    };
    let res = w.scan().and_then(|()| loop {
        w.step()?;
    });
    if let Err(e) = &res {
        let _ = w.con.line(&format!("PCW-ERROR {id}: {e}"), true);
    }
    res
}

/// The durable state a manifest claims for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Claim {
    /// An operation touching it started and did not finish: not checked.
    InFlight,
    /// Exists with this size and CRC-32C.
    File(u64, u32),
    /// Does not exist.
    Gone,
}

/// The manifest of a console log, and figures about how it was made.
#[derive(Debug, Default)]
struct Manifest {
    claims: BTreeMap<String, Claim>,
    /// Sequence gaps (lost or garbled lines): the worker's names went in flight.
    gaps: u64,
    /// Lines that start like a worker line but do not parse.
    malformed: u64,
}

impl Manifest {
    /// Parses the workers' lines of a console log (the last claim of a path
    /// wins; a `B` after it makes the path uncertain).
    fn parse(log: &str) -> Self {
        let mut m = Manifest::default();
        let mut next_seq: BTreeMap<u64, u64> = BTreeMap::new();
        let mut owned: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
        for raw in log.lines() {
            let l = raw.trim_end_matches('\r');
            if !l.starts_with("PCW ") {
                continue;
            }
            let t: Vec<&str> = l.split(' ').collect();
            let parsed = (|| {
                if t.len() < 5 || t[t.len() - 1] != "." {
                    return None;
                }
                let w: u64 = t[1].parse().ok()?;
                let seq: u64 = t[2].parse().ok()?;
                let args = &t[4..t.len() - 1];
                if !args.iter().all(|p| p.starts_with('/')) && t[3] != "F" {
                    return None;
                }
                let ev = match (t[3], args) {
                    ("B", paths) if !paths.is_empty() => paths
                        .iter()
                        .map(|p| (p.to_string(), Claim::InFlight))
                        .collect::<Vec<_>>(),
                    ("F", [p, size, crc])
                        if p.starts_with('/')
                            && crc.len() == 8
                            && size.bytes().all(|b| b.is_ascii_digit()) =>
                    {
                        vec![(
                            p.to_string(),
                            Claim::File(size.parse().ok()?, u32::from_str_radix(crc, 16).ok()?),
                        )]
                    }
                    ("G", [p]) => vec![(p.to_string(), Claim::Gone)],
                    _ => return None,
                };
                Some((w, seq, ev))
            })();
            let Some((w, seq, ev)) = parsed else {
                m.malformed += 1;
                continue;
            };
            let want = next_seq.entry(w).or_insert(0);
            if seq != *want {
                // A line of this worker is missing: any of its paths may
                // have had an operation start that we did not see.
                m.gaps += 1;
                for p in owned.get(&w).into_iter().flatten() {
                    m.claims.insert(p.clone(), Claim::InFlight);
                }
            }
            *want = seq + 1;
            for (p, c) in ev {
                owned.entry(w).or_default().insert(p.clone());
                m.claims.insert(p, c);
            }
        }
        m
    }

    /// The manifest file: `F path size crc` and `G path` lines.
    fn render(&self) -> String {
        let mut s = String::new();
        for (p, c) in &self.claims {
            match c {
                Claim::File(size, crc) => s += &format!("F {p} {size} {crc:08x}\n"),
                Claim::Gone => s += &format!("G {p}\n"),
                Claim::InFlight => {}
            }
        }
        s
    }

    fn count(&self, f: impl Fn(&Claim) -> bool) -> usize {
        self.claims.values().filter(|c| f(c)).count()
    }
}

/// `guest-test powercut-manifest LOG` (on the host): prints the manifest
/// of a console log on stdout and its figures on stderr.
fn manifest_main() -> TestResult {
    let path = std::env::args()
        .nth(2)
        .ok_or("usage: guest-test powercut-manifest CONSOLE-LOG")?;
    let mut raw = Vec::new();
    ctx(ctx(File::open(&path), &path)?.read_to_end(&mut raw), &path)?;
    let m = Manifest::parse(&String::from_utf8_lossy(&raw));
    print!("{}", m.render());
    eprintln!(
        "manifest: {} durable files, {} durably absent, {} in flight (not checked), {} sequence gaps, {} malformed lines",
        m.count(|c| matches!(c, Claim::File(..))),
        m.count(|c| *c == Claim::Gone),
        m.count(|c| *c == Claim::InFlight),
        m.gaps,
        m.malformed
    );
    Ok(())
}

/// Counts of `fsck.rdaxfs` output: (leak lines, error lines).
fn fsck_findings(out: &str) -> (usize, usize) {
    let leaks = out.lines().filter(|l| l.starts_with("leak:")).count();
    let errors = out.lines().filter(|l| l.starts_with("error:")).count();
    (leaks, errors)
}

/// Reads every file under `dir`; returns (files, bytes, errors).
fn walk(dir: &str, acc: &mut (u64, u64, Vec<String>)) {
    let rd = match fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) => {
            acc.2.push(format!("readdir {dir}: {e}"));
            return;
        }
    };
    for e in rd {
        let e = match e {
            Ok(e) => e,
            Err(err) => {
                acc.2.push(format!("readdir {dir}: {err}"));
                return;
            }
        };
        let p = format!("{dir}/{}", e.file_name().to_string_lossy());
        match fs::symlink_metadata(&p) {
            Ok(md) if md.is_dir() => walk(&p, acc),
            Ok(_) => match fs::read(&p) {
                Ok(d) => {
                    acc.0 += 1;
                    acc.1 += d.len() as u64;
                }
                Err(err) => acc.2.push(format!("read {p}: {err}")),
            },
            Err(err) => acc.2.push(format!("stat {p}: {err}")),
        }
    }
}

/// `powercut-check`: recovery mount (no fsck first), every durable file of
/// /manifest, a read of the whole tree, the kernel log, then unmount and
/// `fsck.rdaxfs -n` (and `-y` afterwards if the manifest asks for repair,
/// so the next cut starts from a clean filesystem).
fn check() -> TestResult {
    load_module(&[])?;
    umount_all(MNT);
    let manifest = ctx(fs::read_to_string(MANIFEST), MANIFEST)?;
    let mark = dmesg_mark("powercut-check");
    let t = Instant::now();
    let r = mount(PMEM, MNT, "rdaxfs", "");
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    for l in dmesg_since(&mark) {
        if l.contains("rdaxfs") || l.contains("pmem0:") {
            println!("PC-KMSG {l}");
        }
    }
    if let Err(e) = r {
        println!("PC-MOUNT FAIL {e} ({ms:.1} ms)");
        return Err(format!("recovery mount failed: {e}"));
    }
    println!("PC-MOUNT ok {ms:.1} ms");
    let (mut checked, mut ok, mut lost, mut wrong) = (0, 0, 0, 0);
    let mut repair = false;
    for l in manifest.lines() {
        let t: Vec<&str> = l.split_whitespace().collect();
        match t[..] {
            ["R", v] => repair = v == "1",
            ["F", p, size, crc] => {
                checked += 1;
                let want = (size.parse::<u64>().unwrap_or(u64::MAX), crc);
                match fs::read(p) {
                    Ok(d) => {
                        let got = (d.len() as u64, format!("{:08x}", crc32c(&d)));
                        if got.0 == want.0 && got.1 == want.1 {
                            ok += 1;
                        } else {
                            wrong += 1;
                            println!(
                                "PC-WRONG {p}: {} bytes crc {}, durable was {} bytes crc {}",
                                got.0, got.1, want.0, want.1
                            );
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        lost += 1;
                        println!("PC-LOST {p}: gone, durable was {size} bytes crc {crc}");
                    }
                    Err(e) => {
                        wrong += 1;
                        println!("PC-WRONG {p}: read: {e}");
                    }
                }
            }
            ["G", p] => {
                checked += 1;
                if fs::symlink_metadata(p).is_ok() {
                    wrong += 1;
                    println!("PC-WRONG {p}: exists, was durably removed");
                } else {
                    ok += 1;
                }
            }
            [] => {}
            _ => return Err(format!("{MANIFEST}: bad line {l:?}")),
        }
    }
    let mut acc = (0, 0, Vec::new());
    walk(MNT, &mut acc);
    for e in &acc.2 {
        println!("PC-WALK-ERROR {e}");
    }
    println!(
        "PC-CHECK checked {checked} ok {ok} lost {lost} wrong {wrong} walk {} files {} bytes {} errors",
        acc.0,
        acc.1,
        acc.2.len()
    );
    let problems = kernel_problems(&mark);
    if problems.is_empty() {
        println!("PC-KLOG clean");
    } else {
        for p in &problems {
            println!("PC-KLOG problem {p}");
        }
    }
    if let Err(e) = umount(MNT) {
        println!("PC-UMOUNT FAIL {e}");
        return Err(format!("umount after the check: {e}"));
    }
    let (code, out) = fsck(PMEM, &["-n"]);
    let (leaks, errors) = fsck_findings(&out);
    for l in out.lines() {
        println!("PC-FSCK-OUT {l}");
    }
    println!("PC-FSCK code {code} leaks {leaks} errors {errors}");
    if code != 0 && repair {
        let (c, out) = fsck(PMEM, &["-y"]);
        let (c2, _) = fsck(PMEM, &["-n"]);
        println!(
            "PC-REPAIR fsck -y exited {c}, then fsck -n exited {c2} ({} lines)",
            out.lines().count()
        );
    }
    ensure!(
        lost == 0 && wrong == 0 && acc.2.is_empty() && problems.is_empty(),
        "{lost} durable files lost, {wrong} wrong, {} read errors, {} kernel log problems",
        acc.2.len(),
        problems.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_reference() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), crate::util::crc32c(b""));
    }

    #[test]
    fn last_claim_wins_and_begin_makes_uncertain() {
        let log = "junk\r\n\
            PCW 0 0 F /mnt/pc/d0/w0-1 10 0000abcd .\r\n\
            PCW 0 1 F /mnt/pc/d1/w0-2 5 00000001 .\r\n\
            PCW 0 2 B /mnt/pc/d0/w0-1 .\r\n\
            PCW 1 0 G /mnt/pc/d2/w1-3 .\n\
            PCW 0 3 B /mnt/pc/d1/w0-2 /mnt/pc/d2/w0-4 .\n\
            PCW 0 4 G /mnt/pc/d1/w0-2 .\n\
            PCW 0 5 F /mnt/pc/d2/w0-4 5 00000001 .\n\
            PCW 0 6 F /mnt/pc/d2/w0-5 7 0000";
        let m = Manifest::parse(log);
        assert_eq!(m.claims["/mnt/pc/d0/w0-1"], Claim::InFlight);
        assert_eq!(m.claims["/mnt/pc/d1/w0-2"], Claim::Gone);
        assert_eq!(m.claims["/mnt/pc/d2/w0-4"], Claim::File(5, 1));
        assert_eq!(m.claims["/mnt/pc/d2/w1-3"], Claim::Gone);
        assert!(!m.claims.contains_key("/mnt/pc/d2/w0-5"));
        assert_eq!((m.gaps, m.malformed), (0, 1));
        assert_eq!(
            m.render(),
            "G /mnt/pc/d1/w0-2\nF /mnt/pc/d2/w0-4 5 00000001\nG /mnt/pc/d2/w1-3\n"
        );
    }

    #[test]
    fn a_lost_line_makes_the_workers_paths_uncertain() {
        // Line 1 (a B touching w0-1) was garbled by a kernel message.
        let log = "PCW 0 0 F /mnt/pc/d0/w0-1 10 0000abcd .\n\
            PCW 0 1 B /mnt/pc/d0/w0-1[    5.1] rdaxfs: x\n\
            PCW 1 0 F /mnt/pc/d0/w1-1 3 00000002 .\n\
            PCW 0 2 F /mnt/pc/d0/w0-7 1 00000003 .\n";
        let m = Manifest::parse(log);
        assert_eq!(m.claims["/mnt/pc/d0/w0-1"], Claim::InFlight);
        assert_eq!(m.claims["/mnt/pc/d0/w0-7"], Claim::File(1, 3));
        assert_eq!(m.claims["/mnt/pc/d0/w1-1"], Claim::File(3, 2));
        assert_eq!((m.gaps, m.malformed), (1, 1));
    }

    #[test]
    fn fallocate_model() {
        let base: Vec<u8> = (1..=20).collect();
        let mut d = base.clone();
        apply_fallocate(&mut d, libc::FALLOC_FL_COLLAPSE_RANGE, 4, 8);
        assert_eq!(d, [1, 2, 3, 4, 13, 14, 15, 16, 17, 18, 19, 20]);
        let mut d = base.clone();
        apply_fallocate(&mut d, libc::FALLOC_FL_INSERT_RANGE, 2, 3);
        assert_eq!(&d[..7], &[1, 2, 0, 0, 0, 3, 4]);
        assert_eq!(d.len(), 23);
        let mut d = base.clone();
        apply_fallocate(
            &mut d,
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            18,
            10,
        );
        assert_eq!((d.len(), d[17], d[18], d[19]), (20, 18, 0, 0));
        let mut d = base.clone();
        apply_fallocate(&mut d, libc::FALLOC_FL_ZERO_RANGE, 18, 10);
        assert_eq!((d.len(), d[17], d[18], d[27]), (28, 18, 0, 0));
        let mut d = base.clone();
        apply_fallocate(&mut d, libc::FALLOC_FL_KEEP_SIZE, 18, 10);
        assert_eq!(d, base);
        let mut d = base.clone();
        apply_fallocate(&mut d, 0, 30, 2);
        assert_eq!((d.len(), d[31]), (32, 0));
    }

    #[test]
    fn fsck_lines_are_classified() {
        let out = "leak: 3 blocks marked used but owned by nothing (leaked), first 9\n\
                   error: inode 5: link count 1, 2 names\n/dev/pmem0: errors left uncorrected";
        assert_eq!(fsck_findings(out), (1, 1));
    }
}
