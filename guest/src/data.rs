//! data: pread/pwrite, holes, O_APPEND, O_DIRECT, truncate, a large file,
//! the sync calls and shared mmap coherence with read()/write().

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::ensure;
use crate::util::*;

/// Size of the large file written and verified (MiB).
const BIG_MIB: usize = 32;

/// The data test on a freshly made and mounted rdaxfs.
pub fn data() -> TestResult {
    let _fx = Fixture::new()?;
    fresh_mount()?;
    data_in(Path::new(MNT), BIG_MIB, true)?;
    ctx(umount(MNT), "umount")
}

fn rw(path: &Path) -> Result<fs::File, String> {
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

fn read_all(path: &Path) -> Result<Vec<u8>, String> {
    ctx(fs::read(path), path.display())
}

/// Every data check in `dir`; `big_mib` sizes the large file. `direct`:
/// O_DIRECT must be accepted (tmpfs on older hosts refuses it).
pub fn data_in(dir: &Path, big_mib: usize, direct: bool) -> TestResult {
    odd_offsets(dir)?;
    sparse(dir)?;
    append(dir)?;
    if direct {
        o_direct(dir)?;
    }
    truncate_read(dir)?;
    large(dir, big_mib)?;
    syncs(dir)?;
    mmap_coherence(dir)?;
    println!("data: all checks passed in {}", dir.display());
    Ok(())
}

/// pwrite/pread at offsets and lengths that straddle block boundaries,
/// checked against a model of the file.
fn odd_offsets(dir: &Path) -> TestResult {
    let p = dir.join("odd");
    let f = rw(&p)?;
    let mut model: Vec<u8> = Vec::new();
    let ops: &[(u64, usize)] = &[
        (0, 1),
        (1, 4094),
        (4095, 2),
        (8191, 4097),
        (3, 10),
        (12_287, 1),
        (20_000, 333),
        (16_380, 8),
        (40_961, 8191),
        (5, 40_000),
    ];
    for (n, &(off, len)) in ops.iter().enumerate() {
        let mut buf = vec![0u8; len];
        fill_pattern(&mut buf, 100 + n as u64, off);
        ctx(f.write_all_at(&buf, off), format!("pwrite {len} at {off}"))?;
        let end = off as usize + len;
        if model.len() < end {
            model.resize(end, 0);
        }
        model[off as usize..end].copy_from_slice(&buf);
        // The bytes just written, through pread at the same odd offset.
        let mut back = vec![0u8; len];
        ctx(
            f.read_exact_at(&mut back, off),
            format!("pread {len} at {off}"),
        )?;
        ensure!(
            back == buf,
            "pread {len} at {off} differs from what pwrite wrote"
        );
    }
    let size = ctx(f.metadata(), "fstat")?.len();
    ensure!(
        size == model.len() as u64,
        "size {size} expected {}",
        model.len()
    );
    let all = read_all(&p)?;
    if let Some(i) = (0..model.len()).find(|&i| all[i] != model[i]) {
        return Err(format!(
            "odd-offset file differs at byte {i}: {:#04x} expected {:#04x}",
            all[i], model[i]
        ));
    }
    // Reads crossing EOF are short; reads past EOF return 0.
    let mut buf = vec![0u8; 100];
    let n = ctx(f.read_at(&mut buf, size - 10), "pread across EOF")?;
    ensure!(n == 10, "pread of 100 at EOF-10 returned {n}, expected 10");
    let n = ctx(f.read_at(&mut buf, size + 5000), "pread past EOF")?;
    ensure!(n == 0, "pread past EOF returned {n}, expected 0");
    drop(f);
    ctx(fs::remove_file(&p), "unlink odd")
}

/// Holes read as zeros; writing past EOF extends; sizes and block counts.
fn sparse(dir: &Path) -> TestResult {
    let p = dir.join("sparse");
    let f = rw(&p)?;
    let far = 64 * BLOCK as u64 + 100;
    ctx(f.write_all_at(b"tail", far), "pwrite past EOF")?;
    let m = ctx(f.metadata(), "fstat")?;
    ensure!(
        m.len() == far + 4,
        "size {} after write at {far}, expected {}",
        m.len(),
        far + 4
    );
    ensure!(
        m.blocks() * 512 <= 4 * BLOCK as u64,
        "sparse file with one written block uses {} bytes",
        m.blocks() * 512
    );
    let all = read_all(&p)?;
    ensure!(all.len() as u64 == far + 4, "read {} bytes", all.len());
    if let Some(i) = all[..far as usize].iter().position(|&b| b != 0) {
        return Err(format!("hole reads non-zero at byte {i}: {:#04x}", all[i]));
    }
    ensure!(&all[far as usize..] == b"tail", "data after hole wrong");
    // Fill a block in the middle of the hole: neighbours stay zero.
    ctx(
        f.write_all_at(b"mid", 10 * BLOCK as u64 + 7),
        "pwrite into hole",
    )?;
    let all = read_all(&p)?;
    ensure!(
        &all[10 * BLOCK + 7..10 * BLOCK + 10] == b"mid",
        "write into hole lost"
    );
    let nz = all
        .iter()
        .enumerate()
        .filter(|&(i, &b)| {
            b != 0 && !(10 * BLOCK + 7..10 * BLOCK + 10).contains(&i) && (i as u64) < far
        })
        .count();
    ensure!(
        nz == 0,
        "{nz} non-zero bytes in holes after writing into one"
    );
    // Extending with ftruncate then writing beyond keeps zeros between.
    ctx(f.set_len(far + 3 * BLOCK as u64), "ftruncate up")?;
    ctx(
        f.write_all_at(b"end", far + 5 * BLOCK as u64),
        "pwrite beyond",
    )?;
    let all = read_all(&p)?;
    ensure!(
        all.len() as u64 == far + 5 * BLOCK as u64 + 3,
        "size {} after extending writes",
        all.len()
    );
    ensure!(
        all[far as usize + 4..all.len() - 3].iter().all(|&b| b == 0),
        "gap between old EOF and new write is not zero"
    );
    drop(f);
    ctx(fs::remove_file(&p), "unlink sparse")
}

fn append(dir: &Path) -> TestResult {
    let p = dir.join("append");
    ctx(fs::write(&p, b"start"), "create")?;
    let mut a = ctx(
        fs::OpenOptions::new().append(true).open(&p),
        "open O_APPEND",
    )?;
    let other = rw(&p)?;
    let mut want = b"start".to_vec();
    for i in 0..50u8 {
        let chunk = vec![i + 1; 37 + i as usize * 11];
        // Another writer extends the file between appends: O_APPEND must
        // still go to the (new) end.
        if i % 10 == 5 {
            ctx(
                other.write_all_at(b"XY", want.len() as u64),
                "pwrite at EOF",
            )?;
            want.extend_from_slice(b"XY");
        }
        ctx(a.write_all(&chunk), "append")?;
        want.extend_from_slice(&chunk);
    }
    let pos = ctx(a.stream_position(), "tell")?;
    ensure!(
        pos == want.len() as u64,
        "O_APPEND fd position {pos} expected {}",
        want.len()
    );
    // On Linux pwrite on an O_APPEND fd appends, ignoring the offset.
    ctx(a.write_all_at(b"PW", 0), "pwrite on O_APPEND fd")?;
    want.extend_from_slice(b"PW");
    let got = read_all(&p)?;
    ensure!(
        got.len() == want.len(),
        "O_APPEND file is {} bytes, expected {}",
        got.len(),
        want.len()
    );
    ensure!(got == want, "O_APPEND file content differs");
    drop((a, other));
    ctx(fs::remove_file(&p), "unlink append")
}

fn o_direct(dir: &Path) -> TestResult {
    let p = dir.join("direct");
    let f = ctx(
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(&p),
        "open O_DIRECT",
    )?;
    let len = 4 * BLOCK;
    let mut w = Aligned::new(len);
    fill_pattern(w.buf(), 55, BLOCK as u64);
    ctx(f.write_all_at(w.buf(), BLOCK as u64), "O_DIRECT pwrite")?;
    let mut r = Aligned::new(len);
    ctx(f.read_exact_at(r.buf(), BLOCK as u64), "O_DIRECT pread")?;
    if let Some(e) = check_pattern(r.buf(), 55, BLOCK as u64) {
        return Err(format!("O_DIRECT read back: {e}"));
    }
    // The same data through a buffered descriptor; the first block is a hole.
    let all = read_all(&p)?;
    ensure!(all.len() == 5 * BLOCK, "O_DIRECT file size {}", all.len());
    ensure!(
        all[..BLOCK].iter().all(|&b| b == 0),
        "hole before O_DIRECT write not zero"
    );
    if let Some(e) = check_pattern(&all[BLOCK..], 55, BLOCK as u64) {
        return Err(format!("buffered read of O_DIRECT data: {e}"));
    }
    drop(f);
    ctx(fs::remove_file(&p), "unlink direct")
}

fn truncate_read(dir: &Path) -> TestResult {
    let p = dir.join("trunc");
    let mut data = vec![0u8; 10 * BLOCK + 77];
    fill_pattern(&mut data, 9, 0);
    ctx(fs::write(&p, &data), "write trunc")?;
    let f = rw(&p)?;
    for &cut in &[8 * BLOCK + 1, 5 * BLOCK, 4097, 100, 0] {
        ctx(f.set_len(cut as u64), format!("ftruncate {cut}"))?;
        let got = read_all(&p)?;
        ensure!(
            got.len() == cut,
            "size {} after truncate to {cut}",
            got.len()
        );
        ensure!(
            got[..] == data[..cut],
            "data before the cut at {cut} changed"
        );
    }
    // Growing again must expose zeros, not the old bytes.
    ctx(f.set_len(data.len() as u64), "ftruncate back up")?;
    let got = read_all(&p)?;
    ensure!(
        got.iter().all(|&b| b == 0),
        "old data visible after truncate 0 + extend"
    );
    // Partial block cut, then a write past it: bytes after the cut are zero.
    ctx(f.write_all_at(&data[..3 * BLOCK], 0), "rewrite")?;
    ctx(f.set_len(BLOCK as u64 + 10), "cut mid-block")?;
    ctx(f.write_all_at(b"Z", 3 * BLOCK as u64), "write past cut")?;
    let got = read_all(&p)?;
    ensure!(
        got[..BLOCK + 10] == data[..BLOCK + 10],
        "data before mid-block cut changed"
    );
    ensure!(
        got[BLOCK + 10..3 * BLOCK].iter().all(|&b| b == 0),
        "bytes after a mid-block truncate reappeared"
    );
    drop(f);
    ctx(fs::remove_file(&p), "unlink trunc")
}

fn large(dir: &Path, mib: usize) -> TestResult {
    let p = dir.join("large");
    let chunk = 1 << 20;
    let mut buf = vec![0u8; chunk];
    let start = std::time::Instant::now();
    {
        let mut f = ctx(fs::File::create(&p), "create large")?;
        for i in 0..mib {
            fill_pattern(&mut buf, 77, (i * chunk) as u64);
            ctx(f.write_all(&buf), format!("write MiB {i}"))?;
        }
        ctx(f.sync_all(), "fsync large")?;
    }
    let wrote = start.elapsed();
    let m = ctx(fs::metadata(&p), "stat large")?;
    ensure!(
        m.len() == (mib * chunk) as u64,
        "large file size {} expected {}",
        m.len(),
        mib * chunk
    );
    ensure!(
        m.blocks() * 512 >= m.len(),
        "large file has {} bytes allocated for {} bytes of data",
        m.blocks() * 512,
        m.len()
    );
    let mut f = ctx(fs::File::open(&p), "open large")?;
    for i in 0..mib {
        ctx(f.read_exact(&mut buf), format!("read MiB {i}"))?;
        if let Some(e) = check_pattern(&buf, 77, (i * chunk) as u64) {
            return Err(format!("large file: {e}"));
        }
    }
    let mut extra = [0u8; 1];
    ensure!(
        ctx(f.read(&mut extra), "read at EOF")? == 0,
        "read past 32 MiB returned data"
    );
    // Random-offset re-reads.
    for k in 0..64u64 {
        let off = (k * 7_919_993) % (mib * chunk - 4096) as u64;
        let mut b = [0u8; 4096];
        ctx(f.seek(SeekFrom::Start(off)), "seek")?;
        ctx(f.read_exact(&mut b), "read")?;
        if let Some(e) = check_pattern(&b, 77, off) {
            return Err(format!("large file re-read at {off}: {e}"));
        }
    }
    drop(f);
    ctx(fs::remove_file(&p), "unlink large")?;
    println!(
        "data: {mib} MiB file written in {:.1}s and verified",
        wrote.as_secs_f64()
    );
    Ok(())
}

fn syncs(dir: &Path) -> TestResult {
    let p = dir.join("sync");
    let f = rw(&p)?;
    ctx(f.write_all_at(b"sync me", 0), "write")?;
    let fd = f.as_raw_fd();
    // SAFETY: plain syscalls on an open descriptor.
    let (a, b, c) = unsafe { (libc::fsync(fd), libc::fdatasync(fd), libc::syncfs(fd)) };
    ensure!(
        a == 0,
        "fsync returned {a}: {}",
        std::io::Error::last_os_error()
    );
    ensure!(
        b == 0,
        "fdatasync returned {b}: {}",
        std::io::Error::last_os_error()
    );
    ensure!(
        c == 0,
        "syncfs returned {c}: {}",
        std::io::Error::last_os_error()
    );
    let d = ctx(fs::File::open(dir), "open dir")?;
    ctx(d.sync_all(), "fsync directory")?;
    drop(f);
    ctx(fs::remove_file(&p), "unlink sync")
}

fn mmap_coherence(dir: &Path) -> TestResult {
    let p = dir.join("mapped");
    let f = rw(&p)?;
    let len = 6 * BLOCK;
    let mut init = vec![0u8; len];
    fill_pattern(&mut init, 31, 0);
    // Blocks 0-2 written, 3-5 a hole (ftruncate) so the mapping faults in
    // both allocated blocks and holes.
    ctx(f.write_all_at(&init[..3 * BLOCK], 0), "write first half")?;
    ctx(f.set_len(len as u64), "ftruncate")?;
    let map = ctx(Mapping::shared(f.as_raw_fd(), len), "mmap MAP_SHARED")?;
    for i in (0..3 * BLOCK).step_by(97) {
        ensure!(
            map.get(i) == init[i],
            "mmap read at {i}: {:#04x} expected {:#04x}",
            map.get(i),
            init[i]
        );
    }
    for i in (3 * BLOCK..len).step_by(101) {
        ensure!(
            map.get(i) == 0,
            "mmap read of a hole at {i}: {:#04x}",
            map.get(i)
        );
    }
    // Stores through the mapping, into written blocks and holes.
    let mut model = init[..3 * BLOCK].to_vec();
    model.resize(len, 0);
    for i in (5..len).step_by(13) {
        let v = pattern_byte(32, i as u64) | 1;
        map.set(i, v);
        model[i] = v;
    }
    ctx(map.sync(), "msync")?;
    let mut back = vec![0u8; len];
    ctx(f.read_exact_at(&mut back, 0), "pread after mmap stores")?;
    if let Some(i) = (0..len).find(|&i| back[i] != model[i]) {
        return Err(format!(
            "read() after mmap stores: byte {i} is {:#04x}, expected {:#04x}",
            back[i], model[i]
        ));
    }
    // write() is seen by the mapping immediately.
    let mut w = vec![0u8; 2 * BLOCK];
    fill_pattern(&mut w, 33, BLOCK as u64 + 50);
    ctx(
        f.write_all_at(&w, BLOCK as u64 + 50),
        "pwrite into mapped range",
    )?;
    model[BLOCK + 50..3 * BLOCK + 50].copy_from_slice(&w);
    for (i, &want) in model.iter().enumerate() {
        if map.get(i) != want {
            return Err(format!(
                "mmap after write(): byte {i} is {:#04x}, expected {want:#04x}",
                map.get(i)
            ));
        }
    }
    drop(map);
    // And after unmapping, a new open sees it all.
    let all = read_all(&p)?;
    ensure!(
        all == model,
        "file after munmap differs from what was stored"
    );
    drop(f);
    ctx(fs::remove_file(&p), "unlink mapped")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_on_host_fs() {
        let t = TempDir::new("data");
        data_in(&t.0, 4, true).unwrap();
    }
}
