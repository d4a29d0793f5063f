//! The crash-state explorer: from an image taken before a workload and the
//! module's pmem store trace of it (the test-only `trace` in
//! /sys/kernel/debug/rdaxfs), builds the images a power cut could leave and
//! checks each against the oracle.
//!
//! Persistence model (x86 with ADR, what rdaxfs assumes): stores reach pmem
//! in 64-byte cache lines; a fence makes every earlier store durable. So at
//! a crash point, everything before the last fence is durable, and any
//! subset of the cache lines written since may be. A crash point is put
//! just before every fence, at every syscall marker and at the end of the
//! trace. At each one the states are: nothing in flight persisted, every
//! single in-flight line, every pair of them, all of them, and each
//! in-flight line torn at 8-byte granularity (prefixes of its changed
//! words, and each changed word alone). When a crash point has more states
//! than the budget, a seeded sample is checked and the rest counted.
//!
//! Oracle, for every state: recovery ([`crate::recover::recover`], the
//! same replay the kernel does at mount) succeeds; `fsck -n` finds nothing;
//! the namespace (every path with its type, mode, owner, size and contents)
//! equals the one before the syscall the crash interrupted or the one after
//! it. The before/after namespaces are read, through recovery, from the
//! trace itself: all stores up to the marker applied. A crash between
//! syscalls counts against the syscall before it, so whatever a completed
//! fsync/syncfs made durable must be there. The final state (everything
//! persisted) must also equal what the workload saw through the VFS, when
//! given.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};

use crate::dev::{Dev, SparseDev};
use crate::fs::Fs;
use crate::fsck;

const LINE: u64 = 64;
const BLK: u64 = 4096;

/// One trace record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rec {
    /// Bytes stored at a device offset (`data`: file data copied by DAX).
    Store {
        /// Device byte offset.
        off: u64,
        /// The bytes.
        bytes: Vec<u8>,
        /// File data rather than metadata.
        data: bool,
    },
    /// `len` bytes at `off` zeroed.
    Zero {
        /// Device byte offset.
        off: u64,
        /// Length in bytes.
        len: u64,
    },
    /// A store fence: everything before it is durable.
    Fence,
    /// Syscall `n` begins.
    Begin(u64),
    /// Syscall `n` returned.
    End(u64),
}

/// A parsed trace.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// The records in order.
    pub recs: Vec<Rec>,
    /// The kernel's buffer overflowed: the trace is incomplete.
    pub overflow: bool,
}

/// Parses the bytes of /sys/kernel/debug/rdaxfs/trace.
pub fn parse(buf: &[u8]) -> Result<Trace, String> {
    if buf.len() < 16 || &buf[..8] != b"RDXTRACE" {
        return Err("not an rdaxfs trace (no RDXTRACE header): was tracing started?".into());
    }
    let le32 = |b: &[u8]| u32::from_le_bytes(b[..4].try_into().unwrap());
    let le64 = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().unwrap());
    if le32(&buf[8..]) != 1 {
        return Err(format!("trace version {} unknown", le32(&buf[8..])));
    }
    let mut t = Trace {
        overflow: le32(&buf[12..]) & 1 != 0,
        ..Default::default()
    };
    let mut p = 16;
    while p < buf.len() {
        let h = buf
            .get(p..p + 16)
            .ok_or_else(|| format!("trace cut inside a record head at byte {p}"))?;
        let (kind, len, off) = (h[0], le32(&h[4..]), le64(&h[8..]));
        p += 16;
        let rec = match kind {
            1 | 6 => {
                let b = buf
                    .get(p..p + len as usize)
                    .ok_or_else(|| format!("trace cut inside a store at byte {p}"))?;
                p += len as usize;
                Rec::Store {
                    off,
                    bytes: b.to_vec(),
                    data: kind == 6,
                }
            }
            2 => Rec::Fence,
            3 => Rec::Begin(off),
            4 => Rec::End(off),
            5 => Rec::Zero {
                off,
                len: u64::from(len),
            },
            k => return Err(format!("unknown trace record kind {k} at byte {}", p - 16)),
        };
        t.recs.push(rec);
    }
    Ok(t)
}

/// Encodes a trace the way the kernel writes it (host tests, tools).
pub fn encode(t: &Trace) -> Vec<u8> {
    let mut v = b"RDXTRACE".to_vec();
    v.extend(1u32.to_le_bytes());
    v.extend(u32::from(t.overflow).to_le_bytes());
    for r in &t.recs {
        let (kind, len, off, bytes): (u8, u32, u64, &[u8]) = match r {
            Rec::Store { off, bytes, data } => {
                (if *data { 6 } else { 1 }, bytes.len() as u32, *off, bytes)
            }
            Rec::Fence => (2, 0, 0, &[]),
            Rec::Begin(n) => (3, 0, *n, &[]),
            Rec::End(n) => (4, 0, *n, &[]),
            Rec::Zero { off, len } => (5, *len as u32, *off, &[]),
        };
        v.extend([kind, 0, 0, 0]);
        v.extend(len.to_le_bytes());
        v.extend(off.to_le_bytes());
        v.extend(bytes);
    }
    v
}

/// A device made of a shared base image and private changed blocks: one
/// crash state, cheap to build and throw away.
pub struct Overlay<'a> {
    base: &'a SparseDev,
    over: BTreeMap<u64, Box<[u8; 4096]>>,
}

impl<'a> Overlay<'a> {
    /// `base` with nothing changed.
    pub fn new(base: &'a SparseDev) -> Self {
        Self {
            base,
            over: BTreeMap::new(),
        }
    }

    fn block(&self, b: u64) -> Option<&[u8; 4096]> {
        self.over
            .get(&b)
            .or_else(|| self.base.blocks.get(&b))
            .map(|x| &**x)
    }
}

impl Dev for Overlay<'_> {
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> std::io::Result<()> {
        if off.saturating_add(buf.len() as u64) > self.base.size {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "read past end of device",
            ));
        }
        let mut done = 0usize;
        while done < buf.len() {
            let pos = off + done as u64;
            let (b, w) = (pos / BLK, (pos % BLK) as usize);
            let n = (BLK as usize - w).min(buf.len() - done);
            match self.block(b) {
                Some(x) => buf[done..done + n].copy_from_slice(&x[w..w + n]),
                None => buf[done..done + n].fill(0),
            }
            done += n;
        }
        Ok(())
    }

    fn write_at(&mut self, off: u64, buf: &[u8]) -> std::io::Result<()> {
        if off.saturating_add(buf.len() as u64) > self.base.size {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "write past end of device",
            ));
        }
        let mut done = 0usize;
        while done < buf.len() {
            let pos = off + done as u64;
            let (b, w) = (pos / BLK, (pos % BLK) as usize);
            let n = (BLK as usize - w).min(buf.len() - done);
            if !self.over.contains_key(&b) {
                let copy = Box::new(self.block(b).copied().unwrap_or([0u8; 4096]));
                self.over.insert(b, copy);
            }
            self.over.get_mut(&b).unwrap()[w..w + n].copy_from_slice(&buf[done..done + n]);
            done += n;
        }
        Ok(())
    }

    fn size(&mut self) -> std::io::Result<u64> {
        Ok(self.base.size)
    }
}

/// One namespace entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// Mode (type and permission bits).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (directories: 0, their size is not compared).
    pub size: u64,
    /// File contents or symlink target (directories, nodes: empty).
    pub data: Vec<u8>,
    /// Device number of device nodes.
    pub rdev: u32,
}

/// A namespace: every path below the root (root-relative, `/`-separated)
/// with what the oracle compares.
pub type Namespace = BTreeMap<String, Entry>;

/// Reads the namespace of the image on `dev`.
pub fn namespace<D: Dev>(dev: D) -> Result<Namespace, String> {
    let mut fs = Fs::open(dev).map_err(|e| format!("superblock: {e}"))?;
    let mut out = Namespace::new();
    let root = fs.sb.root_ino;
    let mut todo = vec![(String::new(), root)];
    let mut seen = HashSet::new();
    while let Some((path, dir)) = todo.pop() {
        if !seen.insert(dir) {
            return Err(format!("directory inode {dir} reached twice (at {path:?})"));
        }
        let ents = fs
            .read_dir(dir)
            .map_err(|e| format!("directory {path:?} (inode {dir}): {e}"))?;
        for e in ents {
            let name = String::from_utf8_lossy(&e.name).into_owned();
            let p = if path.is_empty() {
                name
            } else {
                format!("{path}/{name}")
            };
            let ino = fs
                .read_inode(e.ino)
                .map_err(|err| format!("{p:?} (inode {}): {err}", e.ino))?;
            let data = if ino.is_reg() || ino.is_symlink() {
                fs.read_file(e.ino)
                    .map_err(|err| format!("{p:?} (inode {}): contents: {err}", e.ino))?
            } else {
                Vec::new()
            };
            if ino.is_dir() {
                todo.push((p.clone(), e.ino));
            }
            out.insert(
                p,
                Entry {
                    mode: ino.mode,
                    uid: ino.uid,
                    gid: ino.gid,
                    size: if ino.is_dir() { 0 } else { ino.size },
                    data,
                    rdev: ino.rdev,
                },
            );
        }
    }
    Ok(out)
}

/// Describes how `got` differs from `want` (a few lines at most).
pub fn ns_diff(want: &Namespace, got: &Namespace) -> String {
    let mut s = String::new();
    let mut n = 0;
    for (p, w) in want {
        match got.get(p) {
            None => {
                let _ = write!(s, " missing {p:?};");
                n += 1;
            }
            Some(g) if g != w => {
                let _ = write!(s, " {p:?}: {};", entry_diff(w, g));
                n += 1;
            }
            _ => {}
        }
        if n >= 4 {
            return s + " ...";
        }
    }
    for p in got.keys().filter(|p| !want.contains_key(*p)) {
        let _ = write!(s, " extra {p:?};");
        n += 1;
        if n >= 4 {
            return s + " ...";
        }
    }
    s
}

fn entry_diff(w: &Entry, g: &Entry) -> String {
    let mut s = String::new();
    if w.mode != g.mode {
        let _ = write!(s, "mode {:o} want {:o} ", g.mode, w.mode);
    }
    if (w.uid, w.gid) != (g.uid, g.gid) {
        let _ = write!(s, "owner {}:{} want {}:{} ", g.uid, g.gid, w.uid, w.gid);
    }
    if w.size != g.size {
        let _ = write!(s, "size {} want {} ", g.size, w.size);
    }
    if w.rdev != g.rdev {
        let _ = write!(s, "rdev {:#x} want {:#x} ", g.rdev, w.rdev);
    }
    if w.data != g.data {
        let at = w.data.iter().zip(&g.data).position(|(a, b)| a != b);
        match at {
            Some(i) => {
                let _ = write!(s, "contents differ from byte {i}");
            }
            None => {
                let _ = write!(s, "contents differ in length");
            }
        }
    }
    s.trim_end().to_string()
}

/// Explorer settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// At most this many states are checked per crash point (a seeded
    /// sample when there are more); 0 = all.
    pub max_states_per_point: usize,
    /// Include torn (8-byte granularity) variants of in-flight lines.
    pub torn: bool,
    /// Seed of the sampling.
    pub seed: u64,
    /// How many violation descriptions to keep.
    pub max_examples: usize,
    /// File data written in place may tear: a state also passes when its
    /// namespace is the one before or after except that regular files'
    /// contents mix old and new 64-byte lines (bytes past the old size may
    /// read zero). write(2) is not atomic on any Linux filesystem.
    pub data_mix: bool,
    /// Persist whole stores (a store = one trace record: an inode record,
    /// a directory block, ...) instead of cache lines, and no torn
    /// variants: the ordering-rules model of docs/format.md, under which
    /// the code without a journal must leave only leaks. The teeth tests
    /// use it, so their baseline has no torn records.
    pub atomic_stores: bool,
    /// At most about this many states are checked per workload (a seeded
    /// sample over all its crash points); 0 = no limit.
    pub max_states_per_workload: usize,
    /// Crash points before syscall marker `first_op` begins are skipped
    /// (1: leave out the mount when it is marker 0 and the same in every
    /// workload).
    pub first_op: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_states_per_point: 64,
            torn: true,
            seed: 1,
            max_examples: 4,
            data_mix: true,
            atomic_stores: false,
            max_states_per_workload: 0,
            first_op: 0,
        }
    }
}

/// What the explorer found.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Crash points visited.
    pub crash_points: u64,
    /// States the model allows (before sampling, after dropping no-op lines).
    pub states_generated: u64,
    /// Distinct states (after sampling per crash point, before the
    /// per-workload budget).
    pub states_distinct: u64,
    /// Distinct states checked.
    pub states_checked: u64,
    /// States that broke the oracle (each counted once).
    pub violations: u64,
    /// ... of which recovery failed.
    pub recover_failed: u64,
    /// ... of which fsck found corruption (more than the ordering rules
    /// allow without a journal).
    pub fsck_corrupt: u64,
    /// ... of which fsck found only leaks (allowed without a journal,
    /// not with one).
    pub fsck_leak: u64,
    /// ... of which the namespace was neither the one before nor after.
    pub namespace: u64,
    /// The final state differs from what the workload saw.
    pub final_mismatch: bool,
    /// The first violations, described.
    pub examples: Vec<String>,
    /// Violations by kind (the message with numbers blanked).
    pub kinds: BTreeMap<String, u64>,
    /// The first violation of each kind, in full (workload, crash point,
    /// state, difference).
    pub kind_examples: BTreeMap<String, String>,
}

impl Outcome {
    /// Adds another workload's counts.
    pub fn add(&mut self, o: &Outcome, max_examples: usize) {
        self.crash_points += o.crash_points;
        self.states_generated += o.states_generated;
        self.states_distinct += o.states_distinct;
        self.states_checked += o.states_checked;
        self.violations += o.violations;
        self.recover_failed += o.recover_failed;
        self.fsck_corrupt += o.fsck_corrupt;
        self.fsck_leak += o.fsck_leak;
        self.namespace += o.namespace;
        self.final_mismatch |= o.final_mismatch;
        for (k, n) in &o.kinds {
            *self.kinds.entry(k.clone()).or_default() += n;
        }
        for (k, e) in &o.kind_examples {
            self.kind_examples
                .entry(k.clone())
                .or_insert_with(|| e.clone());
        }
        for e in &o.examples {
            if self.examples.len() < max_examples {
                self.examples.push(e.clone());
            }
        }
    }

    /// Violations the ordering rules alone forbid (recovery failures and
    /// fsck corruption): what the test-only ordering bugs must produce.
    pub fn corruptions(&self) -> u64 {
        self.recover_failed + self.fsck_corrupt
    }

    /// The kinds of corruption found (recovery failures, fsck corruption).
    pub fn corruption_kinds(&self) -> Vec<&str> {
        self.kinds
            .keys()
            .filter(|k| k.starts_with("recovery") || k.starts_with("fsck corruption"))
            .map(String::as_str)
            .collect()
    }
}

/// Applies a record's bytes to `dev`; returns the byte range touched.
fn apply(dev: &mut SparseDev, r: &Rec) -> Result<Option<(u64, u64)>, String> {
    match r {
        Rec::Store { off, bytes, .. } => {
            dev.write_at(*off, bytes)
                .map_err(|e| format!("store at {off}: {e}"))?;
            Ok(Some((*off, bytes.len() as u64)))
        }
        Rec::Zero { off, len } => {
            let z = vec![0u8; *len as usize];
            dev.write_at(*off, &z)
                .map_err(|e| format!("zero at {off}: {e}"))?;
            Ok(Some((*off, *len)))
        }
        _ => Ok(None),
    }
}

fn read_line(dev: &mut SparseDev, line: u64) -> [u8; 64] {
    let mut b = [0u8; 64];
    let _ = dev.read_at(line * LINE, &mut b);
    b
}

/// The namespace after recovery of `img` (an error string if unreadable).
fn recovered_ns(img: &SparseDev) -> Result<Namespace, String> {
    let mut d = Overlay::new(img);
    crate::recover::recover(&mut d).map_err(|e| format!("recovery: {e}"))?;
    namespace(&mut d)
}

/// One way to persist part of the in-flight lines: `(line, bytes)` patches.
type Patch = Vec<(u64, [u8; 64])>;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The states of one crash point when every store persists whole (see
/// [`Config::atomic_stores`]): none, all, each store, each pair of stores.
fn store_states(
    lines: &[(u64, [u8; 64], [u8; 64], usize)],
    cfg: &Config,
    rng: &mut Rng,
) -> (u64, Vec<(String, Patch)>) {
    let mut units: BTreeMap<usize, Patch> = BTreeMap::new();
    for &(l, _, new, rec) in lines {
        units.entry(rec).or_default().push((l, new));
    }
    let units: Vec<(usize, Patch)> = units.into_iter().collect();
    let n = units.len();
    let mut all: Vec<(String, Patch)> = vec![("no store in flight persisted".into(), Vec::new())];
    if n > 1 {
        let p = units.iter().flat_map(|(_, p)| p.iter().copied()).collect();
        all.push(("every store in flight persisted".into(), p));
    }
    for (r, p) in &units {
        all.push((format!("store of record {r} persisted"), p.clone()));
    }
    for i in 0..n {
        for j in i + 1..n {
            let mut p = units[i].1.clone();
            p.extend(units[j].1.iter().copied());
            all.push((
                format!(
                    "stores of records {} and {} persisted",
                    units[i].0, units[j].0
                ),
                p,
            ));
        }
    }
    let total = all.len() as u64;
    let cap = cfg.max_states_per_point;
    if cap != 0 && all.len() > cap {
        let keep = 1 + usize::from(n > 1);
        let mut rest = all.split_off(keep);
        while all.len() < cap && !rest.is_empty() {
            let k = rng.below(rest.len() as u64) as usize;
            all.push(rest.swap_remove(k));
        }
    }
    (total, all)
}

/// The torn variants of one line going from `old` to `new`.
fn torn_variants(old: &[u8; 64], new: &[u8; 64]) -> Vec<[u8; 64]> {
    let words: Vec<usize> = (0..8)
        .filter(|w| old[w * 8..w * 8 + 8] != new[w * 8..w * 8 + 8])
        .collect();
    let mut out = Vec::new();
    if words.len() < 2 {
        return out;
    }
    let mk = |ws: &[usize]| {
        let mut l = *old;
        for &w in ws {
            l[w * 8..w * 8 + 8].copy_from_slice(&new[w * 8..w * 8 + 8]);
        }
        l
    };
    for k in 1..words.len() {
        out.push(mk(&words[..k]));
    }
    for (i, &w) in words.iter().enumerate() {
        if i != 0 {
            out.push(mk(&[w])); // word 0 alone is the first prefix
        }
    }
    out
}

/// Every state of one crash point (`lines`: in-flight lines with old and
/// new contents), sampled down to `cfg.max_states_per_point`.
fn states(
    lines: &[(u64, [u8; 64], [u8; 64])],
    cfg: &Config,
    rng: &mut Rng,
) -> (u64, Vec<(String, Patch)>) {
    let n = lines.len();
    let torn: Vec<Vec<[u8; 64]>> = if cfg.torn {
        lines.iter().map(|(_, o, w)| torn_variants(o, w)).collect()
    } else {
        vec![Vec::new(); n]
    };
    let torn_total: usize = torn.iter().map(Vec::len).sum();
    let pairs = n * n.saturating_sub(1) / 2;
    // none, all, singles, pairs, torn (all == single when n == 1).
    let total = 1 + usize::from(n > 1) + n + pairs + torn_total;
    let full = |i: usize| (lines[i].0, lines[i].2);
    let nth = |k: usize| -> (String, Patch) {
        let mut k = k;
        if k == 0 {
            return ("none in flight persisted".into(), Vec::new());
        }
        k -= 1;
        if n > 1 {
            if k == 0 {
                return ("all in flight persisted".into(), (0..n).map(full).collect());
            }
            k -= 1;
        }
        if k < n {
            return (
                format!("line {:#x} persisted", lines[k].0 * LINE),
                vec![full(k)],
            );
        }
        k -= n;
        if k < pairs {
            // k-th pair (i < j) in row order.
            let mut i = 0;
            let mut row = n - 1;
            while k >= row {
                k -= row;
                i += 1;
                row -= 1;
            }
            let j = i + 1 + k;
            return (
                format!(
                    "lines {:#x} and {:#x} persisted",
                    lines[i].0 * LINE,
                    lines[j].0 * LINE
                ),
                vec![full(i), full(j)],
            );
        }
        k -= pairs;
        for (i, t) in torn.iter().enumerate() {
            if k < t.len() {
                return (
                    format!("line {:#x} torn (variant {k})", lines[i].0 * LINE),
                    vec![(lines[i].0, t[k])],
                );
            }
            k -= t.len();
        }
        unreachable!("state index past the total")
    };
    let cap = cfg.max_states_per_point;
    let pick: Vec<usize> = if cap == 0 || total <= cap {
        (0..total).collect()
    } else {
        // Always the none/all states, then a seeded sample of the rest.
        let mut v: Vec<usize> = (0..(1 + usize::from(n > 1))).collect();
        let mut set: HashSet<usize> = v.iter().copied().collect();
        while v.len() < cap {
            let k = rng.below(total as u64) as usize;
            if set.insert(k) {
                v.push(k);
            }
        }
        v
    };
    (total as u64, pick.into_iter().map(nth).collect())
}

/// Explores the crash states of one traced workload. `initial` is the
/// image before the trace started (whole device, sparse); `labels` names
/// the syscalls by marker number, for the messages; `visible` is the
/// namespace the workload saw through the VFS at the end, if known.
pub fn explore(
    initial: &SparseDev,
    trace: &Trace,
    labels: &BTreeMap<u64, String>,
    visible: Option<&Namespace>,
    cfg: &Config,
) -> Result<Outcome, String> {
    if trace.overflow {
        return Err("the kernel's trace buffer overflowed: raise trace_buf_mib".into());
    }
    // Pass 1: the namespace at every marker, stores applied in program order.
    let mut prog = initial.clone();
    let init_ns = recovered_ns(&prog).map_err(|e| format!("initial image: {e}"))?;
    let mut before: BTreeMap<u64, Result<Namespace, String>> = BTreeMap::new();
    let mut after: BTreeMap<u64, Result<Namespace, String>> = BTreeMap::new();
    for r in &trace.recs {
        apply(&mut prog, r)?;
        match r {
            Rec::Begin(n) => {
                before.insert(*n, recovered_ns(&prog));
            }
            Rec::End(n) => {
                after.insert(*n, recovered_ns(&prog));
            }
            _ => {}
        }
    }
    let final_ns = recovered_ns(&prog);

    let mut out = Outcome::default();
    if let Some(v) = visible {
        match &final_ns {
            Ok(f) if f == v => {}
            Ok(f) => {
                out.final_mismatch = true;
                out.violations += 1;
                let m = format!(
                    "final image differs from what the workload saw:{}",
                    ns_diff(v, f)
                );
                *out.kinds.entry(kind_of(&m)).or_default() += 1;
                out.examples.push(m);
            }
            Err(e) => {
                out.final_mismatch = true;
                out.violations += 1;
                let m = format!("final image unreadable: {e}");
                *out.kinds.entry(kind_of(&m)).or_default() += 1;
                out.examples.push(m);
            }
        }
    }

    // Pass 2: crash points. With a per-workload budget, a counting run
    // first finds how many distinct states there are, so that the checking
    // run can keep each with the same probability (a seeded sample spread
    // over the whole workload).
    let mut count = Outcome::default();
    let budget = cfg.max_states_per_workload as u64;
    let passes: &[bool] = if budget > 0 { &[true, false] } else { &[false] };
    for &counting in passes {
        let keep = if counting {
            0.0
        } else if budget > 0 && count.states_checked > budget {
            budget as f64 / count.states_checked as f64
        } else {
            1.0
        };
        let mut accept = Rng(cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut rng = Rng(cfg.seed | 1);
        let mut persisted = initial.clone();
        let mut version = 0u64; // bumps whenever `persisted` changes
                                // In-flight lines: new contents and the trace record that wrote them.
        let mut inflight: BTreeMap<u64, ([u8; 64], usize)> = BTreeMap::new();
        let mut prog = initial.clone();
        let mut cur: Option<u64> = None;
        let mut seen: HashSet<u64> = HashSet::new();
        let label = |n: Option<u64>| match n {
            None => "before the first syscall".to_string(),
            Some(n) => format!(
                "in/after syscall {n} ({})",
                labels.get(&n).map_or("?", |s| s.as_str())
            ),
        };
        for (idx, r) in trace.recs.iter().enumerate() {
            if let Some((off, len)) = apply(&mut prog, r)? {
                if len > 0 {
                    for l in off / LINE..=(off + len - 1) / LINE {
                        inflight.insert(l, (read_line(&mut prog, l), idx));
                    }
                }
            }
            let crash_here = matches!(r, Rec::Fence | Rec::Begin(_) | Rec::End(_));
            if crash_here {
                let ctx = Ctx {
                    data_mix: cfg.data_mix,
                    keep,
                    before: &before,
                    after: &after,
                    final_ns: &final_ns,
                    init_ns: &init_ns,
                    cur,
                    at: format!("record {idx} ({r:?}), {}", label(cur)),
                };
                point(
                    &mut persisted,
                    &inflight,
                    version,
                    &ctx,
                    cfg,
                    &mut rng,
                    &mut accept,
                    &mut seen,
                    if keep == 0.0 { &mut count } else { &mut out },
                );
            }
            match r {
                Rec::Fence if !inflight.is_empty() => {
                    for (l, (b, _)) in std::mem::take(&mut inflight) {
                        let _ = persisted.write_at(l * LINE, &b);
                    }
                    version += 1;
                }
                Rec::Begin(n) => cur = Some(*n),
                _ => {}
            }
        }
        let ctx = Ctx {
            data_mix: cfg.data_mix,
            keep,
            before: &before,
            after: &after,
            final_ns: &final_ns,
            init_ns: &init_ns,
            cur,
            at: format!("end of trace, {}", label(cur)),
        };
        point(
            &mut persisted,
            &inflight,
            version,
            &ctx,
            cfg,
            &mut rng,
            &mut accept,
            &mut seen,
            if keep == 0.0 { &mut count } else { &mut out },
        );
    }
    out.states_distinct = if budget > 0 {
        count.states_checked
    } else {
        out.states_checked
    };
    Ok(out)
}

struct Ctx<'a> {
    data_mix: bool,
    /// 0: only count distinct states; else the probability of checking one.
    keep: f64,
    before: &'a BTreeMap<u64, Result<Namespace, String>>,
    after: &'a BTreeMap<u64, Result<Namespace, String>>,
    final_ns: &'a Result<Namespace, String>,
    init_ns: &'a Namespace,
    cur: Option<u64>,
    at: String,
}

impl Ctx<'_> {
    /// The namespaces a crash here may leave.
    fn allowed(&self) -> Vec<&Result<Namespace, String>> {
        match self.cur {
            None => Vec::new(),
            Some(n) => {
                let mut v = Vec::new();
                if let Some(b) = self.before.get(&n) {
                    v.push(b);
                }
                v.push(self.after.get(&n).unwrap_or(self.final_ns));
                v
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn point(
    persisted: &mut SparseDev,
    inflight: &BTreeMap<u64, ([u8; 64], usize)>,
    version: u64,
    ctx: &Ctx<'_>,
    cfg: &Config,
    rng: &mut Rng,
    accept: &mut Rng,
    seen: &mut HashSet<u64>,
    out: &mut Outcome,
) {
    if ctx.cur.is_none_or(|c| c < cfg.first_op) {
        return;
    }
    out.crash_points += 1;
    let lines: Vec<(u64, [u8; 64], [u8; 64], usize)> = inflight
        .iter()
        .map(|(&l, &(new, rec))| (l, read_line(persisted, l), new, rec))
        .filter(|(_, old, new, _)| old != new)
        .collect();
    let (total, picked) = if cfg.atomic_stores {
        store_states(&lines, cfg, rng)
    } else {
        let lines: Vec<_> = lines.iter().map(|&(l, o, n, _)| (l, o, n)).collect();
        states(&lines, cfg, rng)
    };
    out.states_generated += total;
    for (what, patch) in picked {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (version, ctx.cur, &patch).hash(&mut h);
        if !seen.insert(h.finish()) {
            continue;
        }
        if ctx.keep == 0.0 {
            out.states_checked += 1; // counting run
            continue;
        }
        if ctx.keep < 1.0 && (accept.next() >> 11) as f64 / (1u64 << 53) as f64 >= ctx.keep {
            continue;
        }
        out.states_checked += 1;
        if let Some(v) = check_state(persisted, &patch, ctx) {
            out.violations += 1;
            let k = match v.0 {
                Kind::Recover => {
                    out.recover_failed += 1;
                    "recovery"
                }
                Kind::Corrupt => {
                    out.fsck_corrupt += 1;
                    "fsck corruption"
                }
                Kind::Leak => {
                    out.fsck_leak += 1;
                    "fsck leak"
                }
                Kind::Namespace => {
                    out.namespace += 1;
                    "namespace"
                }
            };
            let key = format!("{k}: {}", kind_of(&v.1));
            *out.kinds.entry(key.clone()).or_default() += 1;
            out.kind_examples
                .entry(key)
                .or_insert_with(|| format!("crash at {}, {what}: {}", ctx.at, v.1));
            if out.examples.len() < cfg.max_examples {
                out.examples
                    .push(format!("crash at {}, {what}: {}", ctx.at, v.1));
            }
        }
    }
}

/// Whether `got` is `before` or `after` up to regular files' contents being
/// a per-word (8-byte) mix of the two (see [`Config::data_mix`]).
fn mixed_data_match(before: &Namespace, after: &Namespace, got: &Namespace) -> bool {
    let same_but_data = |x: &Entry, y: &Entry| {
        (x.mode, x.uid, x.gid, x.size, x.rdev) == (y.mode, y.uid, y.gid, y.size, y.rdev)
    };
    [before, after].iter().any(|base| {
        base.len() == got.len()
            && base.iter().all(|(p, want)| {
                let Some(g) = got.get(p) else {
                    return false;
                };
                if !same_but_data(want, g) {
                    return false;
                }
                if want.data == g.data {
                    return true;
                }
                if want.mode & crate::format::S_IFMT != crate::format::S_IFREG {
                    return false;
                }
                let (ob, oa) = (before.get(p), after.get(p));
                // 8-byte words: the unit a torn store keeps or loses.
                g.data.chunks(8).enumerate().all(|(i, ch)| {
                    let at = i * 8;
                    let part = |e: Option<&Entry>| {
                        e.map(|e| {
                            let end = (at + ch.len()).min(e.data.len());
                            let mut v = e.data.get(at..end).unwrap_or(&[]).to_vec();
                            v.resize(ch.len(), 0);
                            v
                        })
                    };
                    part(ob).as_deref() == Some(ch)
                        || part(oa).as_deref() == Some(ch)
                        || ch.iter().all(|&b| b == 0)
                })
            })
    })
}

/// A violation message with numbers blanked and cut short: its kind.
fn kind_of(msg: &str) -> String {
    let mut out = String::new();
    let mut in_num = false;
    for ch in msg.chars() {
        if ch.is_ascii_digit() {
            if !in_num {
                out.push('#');
            }
            in_num = true;
        } else {
            in_num = false;
            out.push(ch);
        }
        if out.len() >= 110 {
            break;
        }
    }
    out
}

enum Kind {
    Recover,
    Corrupt,
    Leak,
    Namespace,
}

/// Checks one state; the first broken part of the oracle, if any.
fn check_state(base: &SparseDev, patch: &Patch, ctx: &Ctx<'_>) -> Option<(Kind, String)> {
    let mut d = Overlay::new(base);
    for (l, b) in patch {
        let _ = d.write_at(l * LINE, b);
    }
    if let Err(e) = crate::recover::recover(&mut d) {
        return Some((Kind::Recover, format!("recovery failed: {e}")));
    }
    let ns = namespace(&mut d);
    let rep = match fsck::check(&mut d, fsck::Options::default()) {
        Ok(r) => r,
        Err(e) => return Some((Kind::Corrupt, format!("fsck -n failed: {e}"))),
    };
    if !rep.is_clean() {
        let kind = if rep.crash_consistent() {
            Kind::Leak
        } else {
            Kind::Corrupt
        };
        let first: Vec<&str> = rep
            .problems
            .iter()
            .take(2)
            .map(|p| p.msg.as_str())
            .collect();
        return Some((
            kind,
            format!(
                "fsck -n: {} problem(s){}: {}",
                rep.problems.len(),
                if rep.fatal { ", fatal" } else { "" },
                first.join("; ")
            ),
        ));
    }
    let ns = match ns {
        Ok(ns) => ns,
        Err(e) => return Some((Kind::Namespace, format!("namespace unreadable: {e}"))),
    };
    let allowed = ctx.allowed();
    if allowed.is_empty() {
        if ns == *ctx.init_ns {
            return None;
        }
        return Some((
            Kind::Namespace,
            format!(
                "namespace is not the initial one:{}",
                ns_diff(ctx.init_ns, &ns)
            ),
        ));
    }
    if allowed.iter().any(|a| a.as_ref().is_ok_and(|a| *a == ns)) {
        return None;
    }
    if ctx.data_mix && allowed.len() == 2 {
        if let (Ok(b), Ok(a)) = (allowed[0], allowed[1]) {
            if mixed_data_match(b, a, &ns) {
                return None;
            }
        }
    }
    let mut msg = String::from("namespace is neither before nor after:");
    let names: &[&str] = if allowed.len() == 2 {
        &["before", "after"]
    } else {
        &["after"]
    };
    for (name, a) in names.iter().zip(allowed.iter()) {
        match a {
            Ok(a) => {
                let _ = write!(msg, " vs {name}:{}", ns_diff(a, &ns));
            }
            Err(e) => {
                let _ = write!(msg, " ({name} unreadable: {e})");
            }
        }
    }
    Some((Kind::Namespace, msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::*;

    fn fresh() -> SparseDev {
        let opts = crate::mkfs::MkfsOptions {
            size: None,
            label: String::new(),
            inodes: None,
            populate: None,
            force: true,
        };
        crate::mkfs::mkfs(SparseDev::new(16 << 20), &opts, 0)
            .unwrap()
            .dev
    }

    #[test]
    fn parse_roundtrip() {
        let t = Trace {
            recs: vec![
                Rec::Begin(1),
                Rec::Store {
                    off: 4096,
                    bytes: vec![1, 2, 3],
                    data: false,
                },
                Rec::Zero {
                    off: 8192,
                    len: 4096,
                },
                Rec::Fence,
                Rec::End(1),
            ],
            overflow: false,
        };
        let p = parse(&encode(&t)).unwrap();
        assert_eq!(p.recs, t.recs);
        assert!(parse(b"garbage").is_err());
        let mut cut = encode(&t);
        cut.truncate(cut.len() - 1);
        assert!(parse(&cut).is_err());
    }

    #[test]
    fn torn_words() {
        let old = [0u8; 64];
        let mut new = [0u8; 64];
        new[0] = 1;
        new[20] = 2;
        new[63] = 3;
        // words 0, 2, 7 change: prefixes {0}, {0,2}; singles {2}, {7}.
        assert_eq!(torn_variants(&old, &new).len(), 4);
        assert!(torn_variants(&old, &old).is_empty());
    }

    #[test]
    fn state_enumeration() {
        let lines: Vec<_> = (0..4).map(|i| (i, [0u8; 64], [1u8; 64])).collect();
        let cfg = Config {
            torn: false,
            max_states_per_point: 0,
            ..Default::default()
        };
        let (total, v) = states(&lines, &cfg, &mut Rng(1));
        // none, all, 4 singles, 6 pairs
        assert_eq!(total, 12);
        assert_eq!(v.len(), 12);
        let pairs: HashSet<Vec<u64>> = v
            .iter()
            .filter(|(_, p)| p.len() == 2)
            .map(|(_, p)| p.iter().map(|x| x.0).collect())
            .collect();
        assert_eq!(pairs.len(), 6);
        let cfg = Config {
            max_states_per_point: 5,
            ..cfg
        };
        let (total, v) = states(&lines, &cfg, &mut Rng(1));
        assert_eq!((total, v.len()), (12, 5));
    }

    /// A synthetic trace of "create file a" done in the rdaxfs order
    /// (inode, fence, then entry) has no violation; the entry first is
    /// caught as corruption.
    fn create_trace(dev: &SparseDev, entry_first: bool) -> Trace {
        let mut fs = Fs::open(dev.clone()).unwrap();
        let sb = fs.sb;
        // Inode 2: bitmap bit, record.
        let mut ibm = fs.read_inode_bitmap().unwrap();
        bit_set(&mut ibm, 1).unwrap();
        let ino = Inode {
            mode: S_IFREG | 0o644,
            nlink: 1,
            ..Default::default()
        };
        let (blk, off) = inode_location(&sb, 2).unwrap();
        let mut rec = [0u8; INODE_SIZE];
        ino.encode(&mut rec, 2).unwrap();
        let root = fs.read_inode(1).unwrap();
        let dblk = fs.dir_blocks(1, &root).unwrap()[0];
        let mut d = fs.read_block(dblk).unwrap();
        dir_insert(&mut d[..], 2, b"a", DT_REG).unwrap();
        let bitmap = Rec::Store {
            off: sb.inode_bitmap_start * BLK,
            bytes: ibm[..64].to_vec(),
            data: false,
        };
        let inode = Rec::Store {
            off: blk * BLK + off as u64,
            bytes: rec.to_vec(),
            data: false,
        };
        let entry = Rec::Store {
            off: dblk * BLK,
            bytes: d.to_vec(),
            data: false,
        };
        let mut recs = vec![Rec::Begin(1), bitmap, Rec::Fence];
        if entry_first {
            recs.extend([entry, Rec::Fence, inode, Rec::Fence]);
        } else {
            recs.extend([inode, Rec::Fence, entry, Rec::Fence]);
        }
        recs.push(Rec::End(1));
        Trace {
            recs,
            overflow: false,
        }
    }

    #[test]
    fn ordered_create_has_only_leaks_and_torn_records() {
        let dev = fresh();
        let t = create_trace(&dev, false);
        let cfg = Config {
            torn: false,
            ..Default::default()
        };
        let o = explore(&dev, &t, &BTreeMap::new(), None, &cfg).unwrap();
        assert!(o.states_checked > 3, "{o:?}");
        assert_eq!(o.corruptions(), 0, "{o:?}");
        assert_eq!(o.namespace, 0, "{o:?}");
        // The inode written but not yet named is a leak.
        assert!(o.fsck_leak > 0, "{o:?}");
    }

    #[test]
    fn entry_before_inode_is_caught() {
        let dev = fresh();
        let t = create_trace(&dev, true);
        let cfg = Config {
            torn: false,
            ..Default::default()
        };
        let o = explore(&dev, &t, &BTreeMap::new(), None, &cfg).unwrap();
        assert!(o.fsck_corrupt > 0, "{o:?}");
        assert!(!o.examples.is_empty());
    }

    #[test]
    fn store_atomic_model() {
        let dev = fresh();
        let cfg = Config {
            torn: false,
            atomic_stores: true,
            ..Default::default()
        };
        let good = create_trace(&dev, false);
        let o = explore(&dev, &good, &BTreeMap::new(), None, &cfg).unwrap();
        assert_eq!(o.corruptions(), 0, "{o:?}");
        assert_eq!(o.namespace, 0, "{o:?}");
        let bad = create_trace(&dev, true);
        let o = explore(&dev, &bad, &BTreeMap::new(), None, &cfg).unwrap();
        assert!(o.fsck_corrupt > 0, "{o:?}");
        assert!(!o.corruption_kinds().is_empty());
        assert_eq!(o.kinds.len(), o.kind_examples.len());
    }

    #[test]
    fn workload_budget_samples() {
        let dev = fresh();
        let t = create_trace(&dev, false);
        let full = explore(&dev, &t, &BTreeMap::new(), None, &Config::default()).unwrap();
        let cfg = Config {
            max_states_per_workload: 3,
            ..Default::default()
        };
        let o = explore(&dev, &t, &BTreeMap::new(), None, &cfg).unwrap();
        assert_eq!(o.states_distinct, full.states_checked);
        assert!(o.states_checked < full.states_checked, "{o:?}");
        assert_eq!(o.crash_points, full.crash_points);
    }

    #[test]
    fn dropped_fence_is_caught() {
        let dev = fresh();
        let mut t = create_trace(&dev, false);
        // Drop the fence between inode and entry: both in flight at once.
        let i = t
            .recs
            .iter()
            .enumerate()
            .filter(|(_, r)| **r == Rec::Fence)
            .map(|(i, _)| i)
            .nth(1)
            .unwrap();
        t.recs.remove(i);
        let cfg = Config {
            torn: false,
            ..Default::default()
        };
        let o = explore(&dev, &t, &BTreeMap::new(), None, &cfg).unwrap();
        assert!(o.fsck_corrupt > 0, "{o:?}");
    }

    #[test]
    fn final_state_checked_against_visible() {
        let dev = fresh();
        let t = create_trace(&dev, false);
        let mut vis = namespace(&mut Overlay::new(&dev)).unwrap();
        let o = explore(&dev, &t, &BTreeMap::new(), Some(&vis), &Config::default()).unwrap();
        assert!(o.final_mismatch);
        vis.insert(
            "a".into(),
            Entry {
                mode: S_IFREG | 0o644,
                uid: 0,
                gid: 0,
                size: 0,
                data: Vec::new(),
                rdev: 0,
            },
        );
        let o = explore(&dev, &t, &BTreeMap::new(), Some(&vis), &Config::default()).unwrap();
        assert!(!o.final_mismatch, "{o:?}");
    }
}
