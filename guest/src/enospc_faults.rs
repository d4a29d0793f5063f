//! enospc-faults: on a full filesystem a write fault into a hole of a
//! shared mapping cannot get a block and must raise SIGBUS (no buffered
//! fallback, seed 001); after space is freed the same store works; other
//! files are untouched; the free count returns to that of the fresh fs.

use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::ensure;
use crate::util::*;

const CHUNK: usize = 1 << 20;
const SPARSE: usize = 1 << 20;
/// Offset of the store into the sparse file.
const STORE_AT: usize = 5 * BLOCK + 123;
const OTHER: usize = 256 * 1024;

/// Writes `path` until ENOSPC: 1 MiB writes until one is short or fails,
/// then single blocks. Returns (bytes, short writes seen).
fn fill(path: &Path) -> Result<(u64, u64), String> {
    let mut f = ctx(fs::File::create(path), path.display())?;
    let buf = vec![0xF1u8; CHUNK];
    let (mut bytes, mut shorts) = (0u64, 0u64);
    let mut step = CHUNK;
    loop {
        match f.write(&buf[..step]) {
            Ok(n) if n == step => bytes += n as u64,
            Ok(0) => return Err(format!("write of {step} returned 0 at {bytes}")),
            Ok(n) => {
                bytes += n as u64;
                shorts += 1;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                if step == BLOCK {
                    return Ok((bytes, shorts));
                }
                step = BLOCK;
            }
            Err(e) => return Err(format!("filler write at {bytes}: {e} (expected ENOSPC)")),
        }
        ensure!(bytes < 4 << 30, "wrote 4 GiB without ENOSPC");
    }
}

/// A child stores through a shared mapping of `file` at STORE_AT and
/// reads it back. Returns the wait status.
fn store_in_child(file: &fs::File, v: u8) -> Result<libc::c_int, String> {
    let map = ctx(Mapping::shared(file.as_raw_fd(), SPARSE), "mmap sparse")?;
    let st = fork_wait(|| {
        if map.get(STORE_AT) != 0 {
            return 3;
        }
        map.set(STORE_AT, v);
        if map.get(STORE_AT) != v {
            return 4;
        }
        0
    })?;
    drop(map);
    Ok(st)
}

pub fn enospc_faults_in(dir: &Path) -> TestResult {
    let base = free_counts(dir)?;
    let other = dir.join("other");
    let mut od = vec![0u8; OTHER];
    fill_pattern(&mut od, 0x07E4, 0);
    ctx(fs::write(&other, &od), "write other")?;
    // Created before the fs fills (a directory entry may need a block).
    let sp = dir.join("sparse");
    let sparse = ctx(
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&sp),
        "create sparse",
    )?;
    let filler = dir.join("filler");
    let (bytes, shorts) = fill(&filler)?;
    let full = statfs(dir)?;
    println!(
        "enospc-faults: filler took {} MiB ({shorts} short writes); {} blocks free, {} available",
        bytes >> 20,
        full.f_bfree,
        full.f_bavail
    );
    ctx(sparse.set_len(SPARSE as u64), "ftruncate sparse to 1 MiB")?;
    let st = store_in_child(&sparse, 0xA5)?;
    ensure!(
        libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGBUS,
        "store into a hole of a mapped file on the full fs: child {}, expected death by SIGBUS (signal {})",
        describe_status(st),
        libc::SIGBUS
    );
    println!("enospc-faults: store into a hole on the full fs: SIGBUS (expected)");
    let mut b = [0u8; 1];
    ctx(
        std::os::unix::fs::FileExt::read_exact_at(&sparse, &mut b, STORE_AT as u64),
        "pread sparse",
    )?;
    ensure!(b[0] == 0, "the failed store left {:#04x} in the file", b[0]);

    ctx(fs::remove_file(&filler), "unlink filler")?;
    let st = store_in_child(&sparse, 0x5A)?;
    ensure!(
        libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0,
        "store into the hole after freeing space: child {}, expected exit 0 (3: hole not zero, 4: store not read back)",
        describe_status(st)
    );
    let mut all = vec![0u8; SPARSE];
    ctx(
        std::os::unix::fs::FileExt::read_exact_at(&sparse, &mut all, 0),
        "read sparse",
    )?;
    for (i, &x) in all.iter().enumerate() {
        let want = if i == STORE_AT { 0x5A } else { 0 };
        ensure!(
            x == want,
            "sparse file byte {i} is {x:#04x}, expected {want:#04x}"
        );
    }
    drop(sparse);
    let got = ctx(fs::read(&other), "read other")?;
    ensure!(
        got.len() == OTHER,
        "other file size {}, expected {OTHER}",
        got.len()
    );
    if let Some(m) = check_pattern(&got, 0x07E4, 0) {
        return Err(format!("other file changed: {m}"));
    }
    ctx(fs::remove_file(&sp), "unlink sparse")?;
    ctx(fs::remove_file(&other), "unlink other")?;
    let after = free_counts(dir)?;
    ensure!(
        after == base,
        "free (blocks, inodes) {after:?} after deleting everything, {base:?} before: {} blocks, {} inodes leaked",
        base.0 as i64 - after.0 as i64,
        base.1 as i64 - after.1 as i64
    );
    println!("enospc-faults: free (blocks, inodes) back to {base:?}");
    Ok(())
}

/// The test on a fresh rdaxfs.
pub fn enospc_faults() -> TestResult {
    let _fx = Fixture::new()?;
    fresh_mount()?;
    let mark = dmesg_mark("enospc-faults");
    enospc_faults_in(Path::new(MNT))?;
    ctx(umount(MNT), "umount")?;
    let bad = kernel_problems(&mark);
    ensure!(bad.is_empty(), "kernel log shows:\n{}", bad.join("\n"));
    fsck_clean(PMEM)
}
