//! `bench`: throughput of rdaxfs against ext4 -o dax on the same pmem, in
//! the same boot. Prints figures and ratios; asserts only that every
//! workload completed with the right data (timings under TCG are for
//! comparison, not for pass/fail).

use crate::util::*;
use std::fs;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::time::Instant;

const MIB: usize = 1 << 20;
const FILE_MIB: usize = 32;
const SMALL_FILES: usize = 300;

/// MiB/s or ops/s of each workload, in the order of `NAMES`.
type Figures = [f64; 4];
const NAMES: [&str; 4] = [
    "sequential write (MiB/s)",
    "sequential read (MiB/s)",
    "mmap store + msync (MiB/s)",
    "create+write+unlink 4 KiB (files/s)",
];

fn rate(units: f64, t: Instant) -> f64 {
    units / t.elapsed().as_secs_f64().max(1e-9)
}

fn workloads(dir: &str) -> Result<Figures, String> {
    let chunk: Vec<u8> = (0..MIB).map(|i| (i * 7 + 3) as u8).collect();
    let path = format!("{dir}/seq");
    let f = create_rw(path.as_ref())?;
    let t = Instant::now();
    for i in 0..FILE_MIB {
        ctx(f.write_all_at(&chunk, (i * MIB) as u64), "pwrite")?;
    }
    ctx(f.sync_all(), "fsync")?;
    let w = rate(FILE_MIB as f64, t);
    let mut buf = vec![0u8; MIB];
    let t = Instant::now();
    for i in 0..FILE_MIB {
        ctx(f.read_exact_at(&mut buf, (i * MIB) as u64), "pread")?;
        crate::ensure!(buf == chunk, "read back differs at MiB {i}");
    }
    let r = rate(FILE_MIB as f64, t);
    drop(f);

    let path = format!("{dir}/mapped");
    let f = create_rw(path.as_ref())?;
    ctx(f.set_len((FILE_MIB * MIB) as u64), "ftruncate")?;
    let m = ctx(Mapping::shared(f.as_raw_fd(), FILE_MIB * MIB), "mmap")?;
    let t = Instant::now();
    for i in 0..FILE_MIB * MIB / 64 {
        m.set(i * 64, (i % 251) as u8);
    }
    ctx(m.sync(), "msync")?;
    let mm = rate(FILE_MIB as f64, t);
    crate::ensure!(m.get(64 * 1000) == (1000 % 251) as u8, "mapped store lost");
    drop(m);

    let small = vec![0x5au8; 4096];
    let t = Instant::now();
    for i in 0..SMALL_FILES {
        ctx(fs::write(format!("{dir}/s{i}"), &small), "small write")?;
    }
    for i in 0..SMALL_FILES {
        ctx(fs::remove_file(format!("{dir}/s{i}")), "small unlink")?;
    }
    let s = rate(SMALL_FILES as f64, t);
    Ok([w, r, mm, s])
}

fn on(fstype: &str, mkfs: &[&str], opts: &str) -> Result<Figures, String> {
    umount_all(MNT);
    run(mkfs[0], &mkfs[1..])?;
    mount(PMEM, MNT, fstype, opts).map_err(|e| format!("mount {fstype}: {e}"))?;
    let r = workloads(MNT);
    umount(MNT).map_err(|e| format!("umount {fstype}: {e}"))?;
    r
}

/// Runs the workloads on rdaxfs and on ext4-DAX and prints the ratios.
pub fn bench() -> TestResult {
    load_module(&[])?;
    let rd = on("rdaxfs", &["/bin/mkfs.rdaxfs", PMEM, "--force"], "")?;
    let ext4 = if std::path::Path::new("/sbin/mkfs.ext4").exists() {
        Some(on(
            "ext4",
            &["/sbin/mkfs.ext4", "-F", "-q", "-b", "4096", PMEM],
            "dax",
        )?)
    } else {
        println!("bench: /sbin/mkfs.ext4 not available; ext4-DAX figures skipped");
        None
    };
    println!("bench: {FILE_MIB} MiB files, {SMALL_FILES} small files, same pmem, same boot");
    println!(
        "bench: {:<38} {:>10} {:>10} {:>8}",
        "workload", "rdaxfs", "ext4-dax", "ratio"
    );
    for (i, name) in NAMES.iter().enumerate() {
        match ext4 {
            Some(e) => println!(
                "bench: {name:<38} {:>10.1} {:>10.1} {:>8.2}",
                rd[i],
                e[i],
                rd[i] / e[i].max(1e-9)
            ),
            None => println!("bench: {name:<38} {:>10.1} {:>10} {:>8}", rd[i], "-", "-"),
        }
    }
    // Leave an rdaxfs filesystem for the tests that follow.
    run("/bin/mkfs.rdaxfs", &[PMEM, "--force"]).map(|_| ())
}

/// One filesystem the metadata and fault benchmarks run on: rdaxfs as
/// built, optionally an older rdaxfs module with its own mkfs (the
/// initramfs gets `/lib/rdaxfs-old.ko` and `/bin/mkfs-old.rdaxfs` from
/// scripts/bench-journal.sh), and ext4 -o dax.
struct Variant {
    name: &'static str,
    ko: Option<&'static str>,
    mkfs: &'static [&'static str],
    fstype: &'static str,
    opts: &'static str,
}

const OLD_KO: &str = "/lib/rdaxfs-old.ko";

fn variants() -> Vec<Variant> {
    let mut v = vec![Variant {
        name: "rdaxfs",
        ko: Some(MODULE),
        mkfs: &["/bin/mkfs.rdaxfs", PMEM, "--force"],
        fstype: "rdaxfs",
        opts: "",
    }];
    if std::path::Path::new(OLD_KO).exists() {
        v.push(Variant {
            name: "rdaxfs-old",
            ko: Some(OLD_KO),
            mkfs: &["/bin/mkfs-old.rdaxfs", PMEM, "--force"],
            fstype: "rdaxfs",
            opts: "",
        });
    }
    if std::path::Path::new("/sbin/mkfs.ext4").exists() {
        v.push(Variant {
            name: "ext4-dax",
            ko: None,
            mkfs: &["/sbin/mkfs.ext4", "-F", "-q", "-b", "4096", PMEM],
            fstype: "ext4",
            opts: "dax",
        });
    }
    v
}

/// Makes and mounts `v` on `MNT` (loading its module in place of the
/// other rdaxfs module if needed).
fn mount_variant(v: &Variant) -> TestResult {
    umount_all(MNT);
    if let Some(ko) = v.ko {
        // Which module file is loaded: a tmpfs marker (none: the built one).
        let current = fs::read_to_string("/tmp/bench-ko").unwrap_or_else(|_| MODULE.into());
        if !module_loaded() || current != ko {
            unload_module()?;
            run("insmod", &[ko])?;
            ctx(fs::write("/tmp/bench-ko", ko), "/tmp/bench-ko")?;
        }
    }
    run(v.mkfs[0], &v.mkfs[1..])?;
    mount(PMEM, MNT, v.fstype, v.opts).map_err(|e| format!("mount {}: {e}", v.name))
}

/// Median, min and max.
pub(crate) fn stats(xs: &[f64]) -> (f64, f64, f64) {
    let mut s = xs.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = s.len();
    let med = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    (med, s[0], s[n - 1])
}

/// Rounds of alternating runs: `RDAXFS_BENCH_ROUNDS`, default 3.
fn rounds() -> usize {
    env_u64("RDAXFS_BENCH_ROUNDS", 3).max(1) as usize
}

/// Prints the table of medians (and min..max) per workload and variant,
/// and the ratios of rdaxfs to each other variant.
fn report(tag: &str, names: &[&str], vs: &[Variant], figs: &[Vec<Vec<f64>>]) {
    println!(
        "{tag}: medians of {} alternating rounds (min..max), ops/s unless stated",
        figs[0][0].len()
    );
    let mut head = format!("{tag}: {:<30}", "workload");
    for v in vs {
        head += &format!(" {:>24}", v.name);
    }
    for v in &vs[1..] {
        head += &format!(" {:>14}", format!("/{}", v.name));
    }
    println!("{head}");
    for (w, name) in names.iter().enumerate() {
        let mut line = format!("{tag}: {name:<30}");
        let meds: Vec<f64> = figs.iter().map(|f| stats(&f[w]).0).collect();
        for f in figs {
            let (m, lo, hi) = stats(&f[w]);
            line += &format!(" {:>24}", format!("{m:.0} ({lo:.0}..{hi:.0})"));
        }
        for m in &meds[1..] {
            line += &format!(" {:>14.2}", meds[0] / m.max(1e-9));
        }
        println!("{line}");
    }
}

/// Ops per iteration of each metadata workload.
const META_N: usize = 150;

const META_NAMES: [&str; 9] = [
    "create+write 4K+unlink",
    "create+write 4K+fsync",
    "mkdir+rmdir",
    "rename (2 dirs)",
    "link+unlink",
    "write 16K+truncate 0",
    "fallocate 64K+truncate 0",
    "append 4K+fsync",
    "stat",
];

/// The metadata workloads, in `META_NAMES` order (ops/s).
fn meta_workloads(dir: &str) -> Result<Vec<f64>, String> {
    let block = vec![0x5au8; 4096];
    let mut out = Vec::new();
    let d = format!("{dir}/m");
    ctx(fs::create_dir(&d), &d)?;

    let t = Instant::now();
    for i in 0..META_N {
        ctx(fs::write(format!("{d}/s{i}"), &block), "create")?;
    }
    for i in 0..META_N {
        ctx(fs::remove_file(format!("{d}/s{i}")), "unlink")?;
    }
    out.push(rate(META_N as f64, t));

    let t = Instant::now();
    for i in 0..META_N {
        let f = create_rw(format!("{d}/y{i}").as_ref())?;
        ctx(f.write_all_at(&block, 0), "write")?;
        ctx(f.sync_all(), "fsync")?;
    }
    out.push(rate(META_N as f64, t));
    for i in 0..META_N {
        ctx(fs::remove_file(format!("{d}/y{i}")), "unlink")?;
    }

    let t = Instant::now();
    for i in 0..META_N {
        ctx(fs::create_dir(format!("{d}/d{i}")), "mkdir")?;
    }
    for i in 0..META_N {
        ctx(fs::remove_dir(format!("{d}/d{i}")), "rmdir")?;
    }
    out.push(rate(META_N as f64, t));

    ctx(fs::create_dir(format!("{d}/ra")), "mkdir")?;
    ctx(fs::create_dir(format!("{d}/rb")), "mkdir")?;
    for i in 0..20 {
        ctx(fs::write(format!("{d}/ra/r{i}"), b"x"), "create")?;
    }
    let t = Instant::now();
    for k in 0..META_N * 2 {
        let i = k % 20;
        let (from, to) = if (k / 20) % 2 == 0 {
            (format!("{d}/ra/r{i}"), format!("{d}/rb/q{i}"))
        } else {
            (format!("{d}/rb/q{i}"), format!("{d}/ra/r{i}"))
        };
        ctx(fs::rename(&from, &to), "rename")?;
    }
    out.push(rate((META_N * 2) as f64, t));

    let src = format!("{d}/linked");
    ctx(fs::write(&src, b"x"), "create")?;
    let t = Instant::now();
    for i in 0..META_N {
        ctx(fs::hard_link(&src, format!("{d}/h{i}")), "link")?;
    }
    for i in 0..META_N {
        ctx(fs::remove_file(format!("{d}/h{i}")), "unlink")?;
    }
    out.push(rate(META_N as f64, t));

    let big = vec![0x33u8; 16384];
    let f = create_rw(format!("{d}/trunc").as_ref())?;
    let t = Instant::now();
    for _ in 0..META_N {
        ctx(f.write_all_at(&big, 0), "write")?;
        ctx(f.set_len(0), "ftruncate")?;
    }
    out.push(rate(META_N as f64, t));

    let t = Instant::now();
    for _ in 0..META_N {
        fallocate(f.as_raw_fd(), 0, 0, 65536)
            .map_err(|e| format!("fallocate: {}", errno_name(e)))?;
        ctx(f.set_len(0), "ftruncate")?;
    }
    out.push(rate(META_N as f64, t));
    drop(f);

    let f = create_rw(format!("{d}/append").as_ref())?;
    let t = Instant::now();
    for i in 0..META_N {
        ctx(f.write_all_at(&block, (i * 4096) as u64), "append")?;
        ctx(f.sync_all(), "fsync")?;
    }
    out.push(rate(META_N as f64, t));
    drop(f);

    for i in 0..20 {
        ctx(fs::write(format!("{d}/st{i}"), b"x"), "create")?;
    }
    let t = Instant::now();
    for k in 0..META_N * 10 {
        ctx(fs::metadata(format!("{d}/st{}", k % 20)), "stat")?;
    }
    out.push(rate((META_N * 10) as f64, t));
    Ok(out)
}

/// The variants' order in round `r`: reversed every other round, so drift
/// in host load hits every variant alike.
pub(crate) fn round_order(r: usize, variants: usize) -> Vec<usize> {
    if r.is_multiple_of(2) {
        (0..variants).collect()
    } else {
        (0..variants).rev().collect()
    }
}

/// `bench-meta`: the metadata workloads on every variant, in alternating
/// rounds in one boot; medians and spread.
pub fn bench_meta() -> TestResult {
    let vs = variants();
    let n = rounds();
    let mut figs = vec![vec![Vec::new(); META_NAMES.len()]; vs.len()];
    for r in 0..n {
        let order = round_order(r, vs.len());
        for &i in &order {
            mount_variant(&vs[i])?;
            let mark = dmesg_mark("bench-meta");
            let res = meta_workloads(MNT);
            umount(MNT).map_err(|e| format!("umount {}: {e}", vs[i].name))?;
            if r == 0 {
                for l in dmesg_since(&mark)
                    .iter()
                    .filter(|l| l.contains(": journal time:") || l.contains(": unmounted;"))
                {
                    println!("bench-meta: {}: {l}", vs[i].name);
                }
            }
            let res = res.map_err(|e| format!("{}: {e}", vs[i].name))?;
            println!(
                "bench-meta: round {r} {:<10} {}",
                vs[i].name,
                res.iter()
                    .map(|x| format!("{x:.0}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            for (w, x) in res.into_iter().enumerate() {
                figs[i][w].push(x);
            }
        }
    }
    report("bench-meta", &META_NAMES, &vs, &figs);
    restore_rdaxfs()
}

/// Leaves the built module loaded and an rdaxfs filesystem on pmem for
/// the tests that follow.
fn restore_rdaxfs() -> TestResult {
    umount_all(MNT);
    if fs::read_to_string("/tmp/bench-ko").is_ok_and(|k| k != MODULE) {
        unload_module()?;
        let _ = fs::remove_file("/tmp/bench-ko");
    }
    load_module(&[])?;
    run("/bin/mkfs.rdaxfs", &[PMEM, "--force"]).map(|_| ())
}

/// Size of each file the fault benchmark maps.
const FAULT_MIB: usize = 16;

/// Allocating write faults: `threads` threads, each on its own sparse
/// file of `FAULT_MIB` MiB mapped without huge pages, one store per 4 KiB
/// page. Returns faults per second over all threads.
fn alloc_faults(dir: &str, threads: usize) -> Result<f64, String> {
    let len = FAULT_MIB * MIB;
    let mut files = Vec::new();
    for t in 0..threads {
        let f = create_rw(format!("{dir}/fault{t}").as_ref())?;
        ctx(f.set_len(len as u64), "ftruncate")?;
        files.push(f);
    }
    let barrier = std::sync::Barrier::new(threads + 1);
    let res: Result<f64, String> = std::thread::scope(|s| {
        let hs: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(t, f)| {
                let barrier = &barrier;
                s.spawn(move || -> TestResult {
                    let m = map_4k(f.as_raw_fd(), len);
                    // Every thread reaches the barrier, also after an error.
                    barrier.wait();
                    let m = m?;
                    for p in 0..len / BLOCK {
                        m.set(p * BLOCK + t, (p % 251) as u8 + 1);
                    }
                    crate::ensure!(m.get(BLOCK * 7 + t) == 8, "store lost");
                    Ok(())
                })
            })
            .collect();
        barrier.wait();
        let t0 = Instant::now();
        for h in hs {
            h.join()
                .map_err(|_| "fault thread panicked".to_string())??;
        }
        Ok(rate((threads * len / BLOCK) as f64, t0))
    });
    for t in 0..threads {
        ctx(fs::remove_file(format!("{dir}/fault{t}")), "unlink")?;
    }
    res
}

/// A shared mapping of `len` bytes of `fd` at an address 4 KiB past a
/// 2 MiB boundary: no PMD fault can map it, so each 4 KiB page takes its
/// own fault (the guest kernel has no madvise(MADV_NOHUGEPAGE)).
pub(crate) fn map_4k(fd: libc::c_int, len: usize) -> Result<Mapping, String> {
    const PMD: usize = 2 * MIB;
    // Reserve room, then place the file mapping inside it.
    let room = len + 2 * PMD;
    // SAFETY: a fresh anonymous reservation chosen by the kernel.
    let r = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            room,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if r == libc::MAP_FAILED {
        return Err(format!("mmap reserve: {}", std::io::Error::last_os_error()));
    }
    let at = (r as usize).next_multiple_of(PMD) + BLOCK;
    // SAFETY: MAP_FIXED inside our own reservation (nothing else lives there).
    let p = unsafe {
        libc::mmap(
            at as *mut libc::c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_FIXED,
            fd,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(format!("mmap: {}", std::io::Error::last_os_error()));
    }
    // The rest of the reservation goes; the file mapping stays.
    let lo = at - r as usize;
    // SAFETY: unmaps only reservation pages outside the file mapping.
    unsafe {
        if lo > 0 {
            libc::munmap(r, lo);
        }
        libc::munmap((at + len) as *mut libc::c_void, room - lo - len);
    }
    Ok(Mapping { ptr: p.cast(), len })
}

const FAULT_NAMES: [&str; 2] = ["alloc faults, 1 thread", "alloc faults, 4 threads"];

/// The transactions count of rdaxfs's unmount line ("transactions N").
fn unmount_transactions(lines: &[String]) -> Option<u64> {
    let l = lines.iter().rev().find(|l| l.contains(": unmounted;"))?;
    let rest = &l[l.find("transactions ")? + "transactions ".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// `bench-faults`: allocating page faults on every variant (1 and 4
/// threads, different files), alternating rounds; faults/s, and for
/// rdaxfs what a fault costs in transactions and zeroing.
pub fn bench_faults() -> TestResult {
    let vs = variants();
    let n = rounds();
    let mut figs = vec![vec![Vec::new(); FAULT_NAMES.len()]; vs.len()];
    for r in 0..n {
        let order = round_order(r, vs.len());
        for &i in &order {
            let v = &vs[i];
            let mut res = Vec::new();
            for (w, threads) in [1usize, 4].into_iter().enumerate() {
                mount_variant(v)?;
                let mark = dmesg_mark("bench-faults");
                let x = alloc_faults(MNT, threads).map_err(|e| format!("{}: {e}", v.name));
                umount(MNT).map_err(|e| format!("umount {}: {e}", v.name))?;
                let x = x?;
                if v.fstype == "rdaxfs" && r == 0 {
                    let lines = dmesg_since(&mark);
                    let faults = (threads * FAULT_MIB * MIB / BLOCK) as u64;
                    if let Some(c) = lines
                        .iter()
                        .rev()
                        .find_map(|l| l.split(": unmounted;").nth(1).map(|s| s.to_string()))
                    {
                        println!(
                            "bench-faults: {} {threads} thread(s), {faults} faults: {} transactions;{c}",
                            v.name,
                            unmount_transactions(&lines).map_or("?".into(), |t| t.to_string()),
                        );
                    }
                }
                if v.fstype == "rdaxfs" && r == 0 {
                    for l in dmesg_since(&mark)
                        .iter()
                        .filter(|l| l.contains(": journal time:"))
                    {
                        println!("bench-faults: {} {threads} thread(s): {l}", v.name);
                    }
                }
                figs[i][w].push(x);
                res.push(x);
            }
            println!(
                "bench-faults: round {r} {:<10} {}",
                v.name,
                res.iter()
                    .map(|x| format!("{x:.0}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
    }
    report("bench-faults", &FAULT_NAMES, &vs, &figs);
    restore_rdaxfs()
}
