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
