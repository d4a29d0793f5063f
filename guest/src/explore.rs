//! The crash-state explorer, run inside the guest (`crash-explore`).
//!
//! For each generated workload (1-3 operations over a small tree, the ACE
//! idea of CrashMonkey/Chipmunk): build the image in memory and write it to
//! the first 16 MiB of /dev/pmem0, start the module's pmem store trace,
//! mount, run the operations with "begin N"/"end N" markers around each,
//! unmount, stop the trace; then [`rdaxfs_tools::crashstate::explore`]
//! builds every crash state the trace allows and checks the oracle on it
//! (recovery succeeds, fsck -n clean, namespace equal to the one before or
//! after the interrupted syscall, the final image equal to what the
//! workload saw, what an fsync returned for durable).
//!
//! Environment: RDAXFS_EXPLORE_N workloads (300), RDAXFS_EXPLORE_SEED,
//! RDAXFS_EXPLORE_STATES states per crash point at most (8, a seeded sample
//! beyond), RDAXFS_EXPLORE_BUDGET states checked per workload about (40, a
//! seeded sample over all its crash points; 0 = all), RDAXFS_EXPLORE_TORN
//! (1), RDAXFS_EXPLORE_DATA_MIX (1), RDAXFS_EXPLORE_ATOMIC_STORES (0),
//! RDAXFS_EXPLORE_THREADS (CPUs), RDAXFS_EXPLORE_ONLY (operation names,
//! comma-separated: draw only from those), RDAXFS_EXPLORE_STRICT:
//! 1 fails the test on any violation; 0 (the default until the journal
//! lands: without it a power cut can leak blocks and tear inode records)
//! reports the counts and fails only on operational errors.
//!
//! Teeth (`crash-explore-teeth-fence`, `crash-explore-teeth-dirent`): the
//! same explorer, on create-heavy workloads, with `bug_drop_commit_fence`
//! or `bug_dirent_before_inode` set, must find corruption (recovery
//! failures or fsck corruption) that the same workloads without the switch
//! do not have.

use crate::util::*;
use rdaxfs_tools::crashstate::{self, Config, Entry, Namespace, Outcome};
use rdaxfs_tools::dev::SparseDev;
use rdaxfs_tools::format::*;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Instant;

const CTL: &str = "/sys/kernel/debug/rdaxfs/trace_ctl";
const TRACE: &str = "/sys/kernel/debug/rdaxfs/trace";
const FS_BYTES: u64 = 16 << 20;

fn ctl(cmd: &str) -> TestResult {
    fs::write(CTL, cmd).map_err(|e| format!("write {cmd:?} to {CTL}: {e}"))
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

/// The tree every workload starts from:
/// A/ {foo 16 KiB, bar 100 B}, B/ {baz 5000 B}, C/ (empty), D/ (empty).
fn initial_image() -> Result<SparseDev, String> {
    use rdaxfs_tools::build::{Builder, Meta};
    let sb = Superblock::new_geometry(FS_BYTES, None).map_err(|e| e.msg().to_string())?;
    let mut b = Builder::format(SparseDev::new(FS_BYTES), sb, Meta::default())
        .map_err(|e| format!("format: {e}"))?;
    let meta = |perm| Meta {
        perm,
        ..Meta::default()
    };
    let e = |e: rdaxfs_tools::Error| format!("initial tree: {e}");
    let root = b.fs.sb.root_ino;
    let a = b.mkdir(root, b"A", meta(0o755)).map_err(e)?;
    let bb = b.mkdir(root, b"B", meta(0o755)).map_err(e)?;
    b.mkdir(root, b"C", meta(0o755)).map_err(e)?;
    b.mkdir(root, b"D", meta(0o755)).map_err(e)?;
    for (dir, name, len, seed) in [
        (a, &b"foo"[..], 16384, 1),
        (a, b"bar", 100, 2),
        (bb, b"baz", 5000, 3),
    ] {
        let data = pattern(len, seed);
        b.create_file(dir, name, meta(0o644), &mut &data[..], len as u64)
            .map_err(e)?;
    }
    Ok(b.finish().map_err(e)?.dev)
}

/// Writes the image's blocks to the first 16 MiB of the pmem device.
fn write_image(img: &SparseDev) -> TestResult {
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(PMEM)
        .map_err(|e| format!("open {PMEM}: {e}"))?;
    for (b, data) in &img.blocks {
        f.write_all_at(&data[..], b * 4096)
            .map_err(|e| format!("write {PMEM} block {b}: {e}"))?;
    }
    f.sync_all().map_err(|e| format!("sync {PMEM}: {e}"))
}

/// One operation of a workload.
#[derive(Clone, Copy, Debug)]
enum Op {
    Create,
    Mkdir,
    MknodFifo,
    MknodChr,
    Symlink,
    Link,
    Unlink,
    Rmdir,
    RenamePlain,
    RenameAcross,
    RenameOverFile,
    RenameDirOverEmpty,
    RenameDirAcross,
    RenameNoreplace,
    RenameExchange,
    RenameExchangeDir,
    Chmod,
    Chown,
    Utimes,
    TruncShrink,
    TruncGrow,
    Falloc,
    FallocKeep,
    Punch,
    ZeroRange,
    Collapse,
    Insert,
    Append,
    Overwrite,
    WriteAlloc,
    WriteNew,
    WriteFsync,
    Tmpfile,
    TmpfileLink,
    RenameWhiteout,
}

const OPS: [Op; 35] = [
    Op::Create,
    Op::Mkdir,
    Op::MknodFifo,
    Op::MknodChr,
    Op::Symlink,
    Op::Link,
    Op::Unlink,
    Op::Rmdir,
    Op::RenamePlain,
    Op::RenameAcross,
    Op::RenameOverFile,
    Op::RenameDirOverEmpty,
    Op::RenameDirAcross,
    Op::RenameNoreplace,
    Op::RenameExchange,
    Op::RenameExchangeDir,
    Op::Chmod,
    Op::Chown,
    Op::Utimes,
    Op::TruncShrink,
    Op::TruncGrow,
    Op::Falloc,
    Op::FallocKeep,
    Op::Punch,
    Op::ZeroRange,
    Op::Collapse,
    Op::Insert,
    Op::Append,
    Op::Overwrite,
    Op::WriteAlloc,
    Op::WriteNew,
    Op::WriteFsync,
    Op::Tmpfile,
    Op::TmpfileLink,
    Op::RenameWhiteout,
];

/// Namespace operations that create inodes: the teeth workloads.
const CREATES: [Op; 4] = [Op::Create, Op::Mkdir, Op::Symlink, Op::MknodFifo];

/// Numbers the syscalls of a workload and writes "begin N"/"end N" to the
/// trace around each one that may change the filesystem.
struct Marker {
    labels: BTreeMap<u64, String>,
    err: Option<String>,
}

impl Marker {
    fn new() -> Self {
        Self {
            labels: BTreeMap::new(),
            err: None,
        }
    }

    /// Runs syscall `f` between markers, labelled `what`.
    fn sys<T>(&mut self, what: &str, f: impl FnOnce() -> T) -> T {
        let n = self.labels.len() as u64;
        self.labels.insert(n, what.to_string());
        if let Err(e) = ctl(&format!("begin {n}")) {
            self.err.get_or_insert(e);
        }
        let r = f();
        if let Err(e) = ctl(&format!("end {n}")) {
            self.err.get_or_insert(e);
        }
        r
    }
}

fn m(p: &str) -> String {
    format!("{MNT}/{p}")
}

fn c(p: &str) -> CString {
    CString::new(m(p)).expect("no NUL")
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn rc(r: libc::c_int) -> Result<(), i32> {
    if r == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

fn open_rw(p: &str) -> Result<fs::File, i32> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m(p))
        .map_err(|e| e.raw_os_error().unwrap_or(0))
}

fn renameat2(from: &str, to: &str, flags: u32) -> Result<(), i32> {
    let (f, t) = (c(from), c(to));
    // SAFETY: valid NUL-terminated paths for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            flags,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// open(`dir`, O_TMPFILE | O_RDWR).
fn open_tmpfile(dir: &str) -> Result<fs::File, i32> {
    use std::os::fd::FromRawFd;
    // SAFETY: a valid path; the descriptor is owned by the File.
    let fd = unsafe { libc::open(c(dir).as_ptr(), libc::O_TMPFILE | libc::O_RDWR, 0o640) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { fs::File::from_raw_fd(fd) })
}

fn falloc(p: &str, mode: i32, off: u64, len: u64, l: &str, mk: &mut Marker) -> Result<(), i32> {
    use std::os::fd::AsRawFd;
    let f = open_rw(p)?;
    mk.sys(l, || fallocate(f.as_raw_fd(), mode, off, len))
}

/// Runs `op` (the `i`-th of its workload, for unique names). The result is
/// reported, not judged: an operation may fail because an earlier one
/// removed what it works on.
fn run_op(op: Op, i: usize, mk: &mut Marker) -> Result<(), i32> {
    use std::os::fd::AsRawFd;
    let io = |e: std::io::Error| e.raw_os_error().unwrap_or(0);
    let l = format!("{op:?}");
    // SAFETY (every libc call below): valid NUL-terminated paths.
    match op {
        Op::Create => mk.sys(&l, || {
            fs::File::create(m(&format!("A/new{i}")))
                .map(drop)
                .map_err(io)
        }),
        Op::Mkdir => mk.sys(&l, || {
            rc(unsafe { libc::mkdir(c(&format!("B/d{i}")).as_ptr(), 0o755) })
        }),
        Op::MknodFifo => mk.sys(&l, || {
            rc(unsafe { libc::mknod(c(&format!("C/p{i}")).as_ptr(), libc::S_IFIFO | 0o644, 0) })
        }),
        Op::MknodChr => mk.sys(&l, || {
            rc(unsafe {
                libc::mknod(
                    c(&format!("D/c{i}")).as_ptr(),
                    libc::S_IFCHR | 0o600,
                    libc::makedev(1, 3),
                )
            })
        }),
        Op::Symlink => {
            let t = CString::new("foo").expect("no NUL");
            mk.sys(&l, || {
                rc(unsafe { libc::symlink(t.as_ptr(), c(&format!("A/s{i}")).as_ptr()) })
            })
        }
        Op::Link => mk.sys(&l, || {
            rc(unsafe { libc::link(c("A/foo").as_ptr(), c(&format!("B/l{i}")).as_ptr()) })
        }),
        Op::Unlink => mk.sys(&l, || rc(unsafe { libc::unlink(c("A/bar").as_ptr()) })),
        Op::Rmdir => mk.sys(&l, || rc(unsafe { libc::rmdir(c("C").as_ptr()) })),
        Op::RenamePlain => mk.sys(&l, || renameat2("A/bar", &format!("A/bar{i}"), 0)),
        Op::RenameAcross => mk.sys(&l, || renameat2("A/foo", &format!("B/foo{i}"), 0)),
        Op::RenameOverFile => mk.sys(&l, || renameat2("A/bar", "B/baz", 0)),
        Op::RenameDirOverEmpty => mk.sys(&l, || renameat2("D", "C", 0)),
        Op::RenameDirAcross => mk.sys(&l, || renameat2("D", &format!("A/D{i}"), 0)),
        Op::RenameNoreplace => mk.sys(&l, || renameat2("B/baz", &format!("A/nr{i}"), 1)),
        Op::RenameExchange => mk.sys(&l, || renameat2("A/foo", "B/baz", 2)),
        Op::RenameExchangeDir => mk.sys(&l, || renameat2("A/bar", "D", 2)),
        Op::Chmod => mk.sys(&l, || {
            fs::set_permissions(m("A/foo"), fs::Permissions::from_mode(0o600)).map_err(io)
        }),
        Op::Chown => mk.sys(&l, || {
            rc(unsafe { libc::chown(c("B/baz").as_ptr(), 1000, 1001) })
        }),
        Op::Utimes => mk.sys(&l, || {
            set_times(Path::new(&m("A/bar")), (1000, 5), (2000, 7)).map_err(io)
        }),
        Op::TruncShrink => {
            let f = open_rw("A/foo")?;
            mk.sys(&l, || ftruncate(f.as_raw_fd(), 3000))
        }
        Op::TruncGrow => {
            let f = open_rw("A/bar")?;
            mk.sys(&l, || ftruncate(f.as_raw_fd(), 20000))
        }
        Op::Falloc => falloc("B/baz", 0, 4096, 16384, &l, mk),
        Op::FallocKeep => falloc("A/bar", libc::FALLOC_FL_KEEP_SIZE, 0, 12288, &l, mk),
        Op::Punch => falloc(
            "A/foo",
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            4096,
            4096,
            &l,
            mk,
        ),
        Op::ZeroRange => falloc("A/foo", libc::FALLOC_FL_ZERO_RANGE, 1000, 6000, &l, mk),
        Op::Collapse => falloc("A/foo", libc::FALLOC_FL_COLLAPSE_RANGE, 4096, 4096, &l, mk),
        Op::Insert => falloc("A/foo", libc::FALLOC_FL_INSERT_RANGE, 4096, 4096, &l, mk),
        Op::Append => {
            let f = fs::OpenOptions::new()
                .append(true)
                .open(m("A/bar"))
                .map_err(io)?;
            let data = pattern(300, i as u8);
            mk.sys(&l, || std::io::Write::write_all(&mut &f, &data).map_err(io))
        }
        Op::Overwrite => {
            let f = open_rw("A/foo")?;
            let data = pattern(2000, 50 + i as u8);
            mk.sys(&l, || f.write_all_at(&data, 5000).map_err(io))
        }
        Op::WriteAlloc => {
            let f = open_rw("B/baz")?;
            let data = pattern(3000, 90 + i as u8);
            mk.sys(&l, || f.write_all_at(&data, 20000).map_err(io))
        }
        Op::WriteNew => {
            let f = mk.sys("WriteNew(create)", || {
                fs::File::create(m(&format!("B/w{i}"))).map_err(io)
            })?;
            let data = pattern(6000, 120 + i as u8);
            mk.sys("WriteNew(write)", || f.write_all_at(&data, 0).map_err(io))
        }
        Op::Tmpfile | Op::TmpfileLink => {
            // An O_TMPFILE file, written; then either closed without a
            // name (its last close frees it) or given one with linkat.
            let f = mk.sys("Tmpfile(open)", || open_tmpfile("A"))?;
            let data = pattern(6000, 150 + i as u8);
            mk.sys("Tmpfile(write)", || f.write_all_at(&data, 0).map_err(io))?;
            if let Op::Tmpfile = op {
                return mk.sys("Tmpfile(close)", || {
                    drop(f);
                    Ok(())
                });
            }
            let (e, t) = (CString::new("").expect("no NUL"), c(&format!("B/t{i}")));
            mk.sys("TmpfileLink(linkat)", || {
                rc(unsafe {
                    libc::linkat(
                        f.as_raw_fd(),
                        e.as_ptr(),
                        libc::AT_FDCWD,
                        t.as_ptr(),
                        libc::AT_EMPTY_PATH,
                    )
                })
            })?;
            mk.sys("TmpfileLink(close)", || {
                drop(f);
                Ok(())
            })
        }
        Op::RenameWhiteout => mk.sys(&l, || renameat2("A/bar", &format!("C/w{i}"), 4)),
        Op::WriteFsync => {
            let f = open_rw("A/foo")?;
            let data = pattern(4096, 200 + i as u8);
            mk.sys("WriteFsync(write)", || {
                f.write_all_at(&data, 8192).map_err(io)
            })?;
            mk.sys("WriteFsync(fsync)", || f.sync_all().map_err(io))
        }
    }
}

/// `rdev` as the module stores it (`new_encode_dev`).
fn encode_dev(rdev: u64) -> u32 {
    let (ma, mi) = (libc::major(rdev), libc::minor(rdev));
    (mi & 0xff) | (ma << 8) | ((mi & !0xff) << 12)
}

/// What the VFS shows for one path.
fn vfs_entry(p: &Path) -> Result<Entry, String> {
    let md = fs::symlink_metadata(p).map_err(|e| format!("stat {}: {e}", p.display()))?;
    let ft = md.file_type();
    let data = if ft.is_file() {
        let mut v = Vec::new();
        fs::File::open(p)
            .and_then(|mut f| f.read_to_end(&mut v))
            .map_err(|e| format!("read {}: {e}", p.display()))?;
        v
    } else if ft.is_symlink() {
        fs::read_link(p)
            .map_err(|e| format!("readlink {}: {e}", p.display()))?
            .as_os_str()
            .as_bytes()
            .to_vec()
    } else {
        Vec::new()
    };
    Ok(Entry {
        mode: md.mode(),
        uid: md.uid(),
        gid: md.gid(),
        size: if ft.is_dir() { 0 } else { md.size() },
        data,
        rdev: encode_dev(md.rdev()),
    })
}

/// The namespace under /mnt as the VFS shows it.
fn vfs_namespace() -> Result<Namespace, String> {
    let mut out = Namespace::new();
    let mut todo = vec![String::new()];
    while let Some(rel) = todo.pop() {
        let dir = if rel.is_empty() {
            MNT.to_string()
        } else {
            m(&rel)
        };
        for ent in fs::read_dir(&dir).map_err(|e| format!("readdir {dir}: {e}"))? {
            let ent = ent.map_err(|e| format!("readdir {dir}: {e}"))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            let p = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let e = vfs_entry(&ent.path())?;
            if e.mode & S_IFMT == S_IFDIR {
                todo.push(p.clone());
            }
            out.insert(p, e);
        }
    }
    Ok(out)
}

/// Runs one traced workload and explores it.
/// A workload run under the trace, ready to explore.
struct Traced {
    trace: crashstate::Trace,
    labels: BTreeMap<u64, String>,
    visible: Namespace,
    desc: String,
}

/// Runs one workload under the trace.
fn trace_workload(ops: &[Op], img: &SparseDev) -> Result<Traced, String> {
    write_image(img)?;
    ctl("start")?;
    let mut mk = Marker::new();
    let res = (|| -> Result<(String, Namespace), String> {
        let mut desc = Vec::new();
        mk.sys("mount", || mount(PMEM, MNT, "rdaxfs", ""))
            .map_err(|e| format!("mount: {e}"))?;
        for (i, op) in ops.iter().enumerate() {
            let r = run_op(*op, i + 1, &mut mk);
            desc.push(match r {
                Ok(()) => format!("{op:?}"),
                Err(e) => format!("{op:?}={}", errno_name(e)),
            });
        }
        let vis = vfs_namespace();
        let u = mk.sys("umount", || umount(MNT));
        let vis = vis?;
        u.map_err(|e| format!("umount: {e}"))?;
        Ok((desc.join(" "), vis))
    })();
    ctl("stop")?;
    let (desc, vis) = res?;
    if let Some(e) = mk.err {
        return Err(e);
    }
    let raw = fs::read(TRACE).map_err(|e| format!("read {TRACE}: {e}"))?;
    let trace = crashstate::parse(&raw)?;
    Ok(Traced {
        trace,
        labels: mk.labels,
        visible: vis,
        desc,
    })
}

/// The generated workloads: `n` sequences of 1-3 operations; the first
/// operation walks the whole catalog in turn so every operation is covered,
/// the rest are seeded draws.
fn workloads(n: u64, seed: u64, catalog: &[Op]) -> Vec<Vec<Op>> {
    let mut rng = Rng::new(seed);
    (0..n as usize)
        .map(|i| {
            let len = 1 + i % 3;
            let mut w = vec![catalog[i % catalog.len()]];
            for _ in 1..len {
                w.push(catalog[rng.below(catalog.len() as u64) as usize]);
            }
            w
        })
        .collect()
}

struct Run {
    total: Outcome,
    workloads: u64,
    bad_workloads: u64,
}

fn run_all(tag: &str, ws: &[Vec<Op>], cfg: &Config, verbose: usize) -> Result<Run, String> {
    use std::sync::{mpsc, Mutex};
    let img = initial_image()?;
    let t0 = Instant::now();
    // The workloads run one at a time (one trace buffer, one device); their
    // explorations run on worker threads meanwhile.
    let threads = env_u64(
        "RDAXFS_EXPLORE_THREADS",
        std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
    )
    .max(1);
    let explore_ns = std::sync::atomic::AtomicU64::new(0);
    let (work_tx, work_rx) = mpsc::sync_channel::<(usize, Traced)>(threads as usize * 2);
    let work_rx = Mutex::new(work_rx);
    let (res_tx, res_rx) = mpsc::channel::<(usize, String, Result<Outcome, String>)>();
    let traced: Result<(), String> = std::thread::scope(|s| {
        for _ in 0..threads {
            let (work_rx, res_tx, img, explore_ns) = (&work_rx, res_tx.clone(), &img, &explore_ns);
            s.spawn(move || loop {
                let job = work_rx
                    .lock()
                    .map_err(|_| ())
                    .and_then(|r| r.recv().map_err(|_| ()));
                let Ok((i, t)) = job else { return };
                // The mount is the same in every workload: explore it once.
                let cfg = Config {
                    first_op: u64::from(i > 0),
                    ..cfg.clone()
                };
                let start = Instant::now();
                let o = crashstate::explore(img, &t.trace, &t.labels, Some(&t.visible), &cfg);
                explore_ns.fetch_add(
                    start.elapsed().as_nanos() as u64,
                    std::sync::atomic::Ordering::Relaxed,
                );
                let _ = res_tx.send((i, t.desc, o));
            });
        }
        drop(res_tx);
        let r = (|| {
            for (i, w) in ws.iter().enumerate() {
                let t = trace_workload(w, &img).map_err(|e| format!("{tag} workload {i}: {e}"))?;
                work_tx
                    .send((i, t))
                    .map_err(|_| "explorer threads gone".to_string())?;
                if (i + 1) % 50 == 0 {
                    println!(
                        "{tag}: {} workloads run, {:.0} s",
                        i + 1,
                        t0.elapsed().as_secs_f64()
                    );
                }
            }
            Ok(())
        })();
        drop(work_tx);
        r
    });
    traced?;
    let mut results: Vec<_> = res_rx.iter().collect();
    results.sort_by_key(|r| r.0);
    let mut total = Outcome::default();
    let mut bad = 0u64;
    for (i, desc, o) in results {
        let mut o = o.map_err(|e| format!("{tag} workload {i} [{desc}]: {e}"))?;
        if o.violations > 0 {
            if (bad as usize) < verbose {
                println!(
                    "{tag}: workload {i} [{desc}]: {} violation(s) in {} states",
                    o.violations, o.states_checked
                );
                for e in &o.examples {
                    println!("  {e}");
                }
            }
            bad += 1;
        }
        for e in o.kind_examples.values_mut() {
            *e = format!("workload {i} [{desc}]: {e}");
        }
        total.add(&o, 0);
    }
    println!(
        "{tag}: {} workloads, {} states checked, {:.0} s ({:.0} s exploring on {threads} threads)",
        ws.len(),
        total.states_checked,
        t0.elapsed().as_secs_f64(),
        explore_ns.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e9
    );
    Ok(Run {
        total,
        workloads: ws.len() as u64,
        bad_workloads: bad,
    })
}

fn summary(tag: &str, r: &Run) {
    let o = &r.total;
    println!(
        "{tag}: workloads {} crash points {} states generated {} distinct {} checked {} violations {} \
         (recovery failed {}, fsck corruption {}, fsck leaks only {}, namespace neither \
         before nor after {}, final image differs {}) in {} workloads",
        r.workloads,
        o.crash_points,
        o.states_generated,
        o.states_distinct,
        o.states_checked,
        o.violations,
        o.recover_failed,
        o.fsck_corrupt,
        o.fsck_leak,
        o.namespace,
        u64::from(o.final_mismatch),
        r.bad_workloads
    );
    let mut kinds: Vec<_> = o.kinds.iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(a.1));
    for (k, n) in kinds.iter().take(12) {
        println!("{tag}:   {n:6} x {k}");
    }
    println!("{tag}: one example of each kind of violation:");
    for (k, e) in &o.kind_examples {
        println!("{tag}:   [{}] {e}", k.chars().take(40).collect::<String>());
    }
}

fn config() -> Config {
    Config {
        max_states_per_point: env_u64("RDAXFS_EXPLORE_STATES", 8) as usize,
        torn: env_u64("RDAXFS_EXPLORE_TORN", 1) != 0,
        seed: env_u64("RDAXFS_EXPLORE_SEED", 1),
        max_examples: 3,
        data_mix: env_u64("RDAXFS_EXPLORE_DATA_MIX", 1) != 0,
        atomic_stores: env_u64("RDAXFS_EXPLORE_ATOMIC_STORES", 0) != 0,
        max_states_per_workload: env_u64("RDAXFS_EXPLORE_BUDGET", 40) as usize,
        first_op: 0,
    }
}

fn setup() -> TestResult {
    load_module(&[])?;
    umount_all(MNT);
    if !Path::new(CTL).exists() {
        return Err(format!(
            "{CTL} missing: is debugfs mounted and rdaxfs loaded?"
        ));
    }
    Ok(())
}

/// The operations to draw from: all of them, or those named (by their
/// `Debug` names, comma-separated) in RDAXFS_EXPLORE_ONLY.
fn catalog_from_env() -> Result<Vec<Op>, String> {
    let Ok(only) = std::env::var("RDAXFS_EXPLORE_ONLY") else {
        return Ok(OPS.to_vec());
    };
    let mut v = Vec::new();
    for name in only.split(',').filter(|n| !n.is_empty()) {
        let op = OPS
            .iter()
            .find(|o| format!("{o:?}") == name)
            .ok_or_else(|| format!("RDAXFS_EXPLORE_ONLY: unknown operation {name:?}"))?;
        v.push(*op);
    }
    if v.is_empty() {
        return Err("RDAXFS_EXPLORE_ONLY names no operation".to_string());
    }
    println!("crash-explore: operations {v:?}");
    Ok(v)
}

/// `crash-explore`: >= 300 generated workloads over every operation.
pub fn crash_explore() -> TestResult {
    setup()?;
    let n = env_u64("RDAXFS_EXPLORE_N", 300);
    let strict = env_u64("RDAXFS_EXPLORE_STRICT", 0) != 0;
    let cfg = config();
    println!(
        "crash-explore: {n} workloads, seed {}, at most {} states per crash point and about {} \
         per workload (sampled), torn {}, strict {strict}",
        cfg.seed, cfg.max_states_per_point, cfg.max_states_per_workload, cfg.torn
    );
    let catalog = catalog_from_env()?;
    let ws = workloads(n, cfg.seed, &catalog);
    let r = run_all("crash-explore", &ws, &cfg, 6)?;
    summary("crash-explore", &r);
    if strict && r.total.violations > 0 {
        return Err(format!(
            "{} crash states break the oracle (RDAXFS_EXPLORE_STRICT=1)",
            r.total.violations
        ));
    }
    if !strict && r.total.violations > 0 {
        println!("crash-explore: reporting only (RDAXFS_EXPLORE_STRICT=0): not failing");
    }
    Ok(())
}

/// Runs the create workloads with `switch` off and on; passes only if the
/// switch adds corruption the explorer finds.
fn teeth(tag: &str, switch: &str, values: &[&str]) -> TestResult {
    setup()?;
    // Whole stores persist (the ordering-rules model): without a journal
    // torn records are expected, and would hide what the switch adds.
    let cfg = Config {
        torn: false,
        atomic_stores: true,
        max_states_per_point: 32,
        max_states_per_workload: 0,
        ..config()
    };
    let ws = workloads(8, 7, &CREATES);
    let base = run_all(&format!("{tag} (off)"), &ws, &cfg, 0)?;
    summary(&format!("{tag} (off)"), &base);
    // Caught: the switch produces a kind of corruption (recovery failure or
    // fsck corruption, by message) the same workloads without it never
    // show. Counting alone would not do while the code without a journal
    // already tears superblocks and inode records.
    let known = base.total.corruption_kinds();
    let mut new_kinds = Vec::new();
    let mut states = 0;
    for v in values {
        set_param(switch, v)?;
        let r = run_all(&format!("{tag} ({switch}={v})"), &ws, &cfg, 1);
        set_param(switch, "0")?;
        let r = r?;
        summary(&format!("{tag} ({switch}={v})"), &r);
        for k in r.total.corruption_kinds() {
            if !known.contains(&k) {
                states += r.total.kinds[k];
                new_kinds.push(format!("{switch}={v}: {k}"));
            }
        }
    }
    if new_kinds.is_empty() {
        return Err(format!(
            "the explorer did not catch {switch}: no kind of corruption beyond the {} the same \
             workloads show without it",
            known.len()
        ));
    }
    println!(
        "{tag}: {switch} caught: {states} crash states with {} new kind(s) of corruption:",
        new_kinds.len()
    );
    for k in &new_kinds {
        println!("{tag}:   {k}");
    }
    Ok(())
}

/// `crash-explore-teeth-fence`: dropping the fence after the commit header
/// (in-place stores may then persist before the transaction commits) is
/// caught.
pub fn teeth_fence() -> TestResult {
    teeth("crash-explore-teeth-fence", "bug_drop_commit_fence", &["1"])
}

/// `crash-explore-teeth-dirent`: an entry published before its inode is caught.
pub fn teeth_dirent() -> TestResult {
    teeth(
        "crash-explore-teeth-dirent",
        "bug_dirent_before_inode",
        &["1"],
    )
}
