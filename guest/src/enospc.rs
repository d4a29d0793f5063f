//! enospc: concurrent writers fill the filesystem; every write either
//! completes, is short, or fails with ENOSPC; what was reported written
//! reads back; an mmap store into a hole on the full fs gets SIGBUS;
//! deleting everything gives back exactly the free blocks and inodes of
//! the fresh filesystem, and fsck finds it clean.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::ensure;
use crate::util::*;

const WRITERS: usize = 4;
const CHUNK: usize = 1 << 20;
/// Chunks per file before a writer starts a new file.
const CHUNKS_PER_FILE: usize = 16;
/// Blocks of the file that stays a hole for the SIGBUS check.
const HOLE_BLOCKS: usize = 16;

/// What one file got: its path and the bytes write() reported.
#[derive(Debug, Clone)]
pub struct Written {
    /// The file.
    pub path: PathBuf,
    /// Stream seed of its data.
    pub seed: u64,
    /// Bytes reported written.
    pub bytes: u64,
}

/// Cheap verifiable data: a per-stream base pattern with every 4 KiB
/// block stamped with the stream seed and the block's file offset.
struct Chunks {
    base: Vec<u8>,
}

impl Chunks {
    fn new() -> Self {
        let mut base = vec![0u8; CHUNK];
        fill_pattern(&mut base, 0xC0FFEE, 0);
        Self { base }
    }

    /// The chunk of stream `seed` at file offset `off` (CHUNK aligned).
    fn fill(&self, buf: &mut [u8], seed: u64, off: u64) {
        buf.copy_from_slice(&self.base[..buf.len()]);
        for (i, block) in buf.chunks_mut(BLOCK).enumerate() {
            let stamp_len = block.len().min(16);
            let mut stamp = [0u8; 16];
            stamp[..8].copy_from_slice(&seed.to_le_bytes());
            stamp[8..].copy_from_slice(&(off + (i * BLOCK) as u64).to_le_bytes());
            block[..stamp_len].copy_from_slice(&stamp[..stamp_len]);
        }
    }
}

/// One writer: files `prefix-N` in `dir`, 1 MiB writes until ENOSPC.
/// Returns what each file got, and how many short writes were seen.
fn writer(dir: &Path, t: usize, chunks: &Chunks) -> Result<(Vec<Written>, u64), String> {
    let mut out = Vec::new();
    let mut shorts = 0;
    let mut buf = vec![0u8; CHUNK];
    for n in 0.. {
        let path = dir.join(format!("w{t}-{n:03}"));
        let seed = (t * 10_000 + n) as u64;
        let mut f = match fs::File::create(&path) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return Ok((out, shorts)),
            Err(e) => {
                return Err(format!(
                    "create {}: {e} (expected success or ENOSPC)",
                    path.display()
                ))
            }
        };
        let mut bytes = 0u64;
        let mut full = false;
        for _ in 0..CHUNKS_PER_FILE {
            chunks.fill(&mut buf, seed, bytes);
            match f.write(&buf) {
                Ok(n) if n == CHUNK => bytes += n as u64,
                Ok(0) => {
                    return Err(format!(
                        "{}: write of 1 MiB at {bytes} returned 0 (expected a count or ENOSPC)",
                        path.display()
                    ))
                }
                Ok(n) => {
                    // A short write: the fs is (nearly) full. Keep what it
                    // reported and stop this writer; the chunk stream is
                    // only defined at chunk boundaries.
                    bytes += n as u64;
                    shorts += 1;
                    full = true;
                    break;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                    full = true;
                    break;
                }
                Err(e) => {
                    return Err(format!(
                        "{}: write of 1 MiB at {bytes}: {e} ({}); only a full count, a short count or ENOSPC is allowed",
                        path.display(),
                        errno_name(e.raw_os_error().unwrap_or(0))
                    ))
                }
            }
        }
        out.push(Written { path, seed, bytes });
        if full {
            return Ok((out, shorts));
        }
    }
    Ok((out, shorts))
}

fn verify(w: &Written, chunks: &Chunks) -> TestResult {
    let m = ctx(fs::metadata(&w.path), w.path.display())?;
    ensure!(
        m.len() == w.bytes,
        "{}: size {} but writes reported {} bytes",
        w.path.display(),
        m.len(),
        w.bytes
    );
    let mut f = ctx(fs::File::open(&w.path), w.path.display())?;
    let (mut got, mut want) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let mut off = 0u64;
    while off < w.bytes {
        let n = (w.bytes - off).min(CHUNK as u64) as usize;
        ctx(
            f.read_exact(&mut got[..n]),
            format!("read {} at {off}", w.path.display()),
        )?;
        chunks.fill(&mut want[..n], w.seed, off);
        if got[..n] != want[..n] {
            let i = (0..n).find(|&i| got[i] != want[i]).unwrap_or(0);
            return Err(format!(
                "{}: byte {} reads {:#04x}, wrote {:#04x}",
                w.path.display(),
                off + i as u64,
                got[i],
                want[i]
            ));
        }
        off += n as u64;
    }
    Ok(())
}

/// Writes single blocks to `path` until ENOSPC; returns the blocks written.
fn top_off(path: &Path) -> Result<u64, String> {
    let mut f = match fs::File::create(path) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return Ok(0),
        Err(e) => return Err(format!("create {}: {e}", path.display())),
    };
    let block = [0x5Au8; BLOCK];
    let mut n = 0u64;
    loop {
        match f.write(&block) {
            Ok(k) if k == BLOCK => n += 1,
            Ok(_) => return Ok(n),
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return Ok(n),
            Err(e) => return Err(format!("top-off write: {e} (expected ENOSPC)")),
        }
        ensure!(n < 1 << 20, "top-off wrote 4 GiB without ENOSPC");
    }
}

/// In a child: read a hole of `file` through a shared mapping (must be
/// zero), then store into it. On a full filesystem the store cannot get a
/// block and the child must die of SIGBUS: that is the expected outcome.
fn sigbus_on_hole(file: &fs::File) -> TestResult {
    let map = ctx(
        Mapping::shared(file.as_raw_fd(), HOLE_BLOCKS * BLOCK),
        "mmap hole file",
    )?;
    let status = fork_wait(|| {
        if map.get(5 * BLOCK) != 0 {
            return 3;
        }
        map.set(5 * BLOCK, 0xAB);
        0
    })?;
    drop(map);
    if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGBUS {
        println!("enospc: mmap store into a hole on the full fs: SIGBUS (expected)");
        return Ok(());
    }
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 3 {
        return Err("mmap read of a hole on the full fs was not zero".into());
    }
    Err(format!(
        "mmap store into a hole on the full fs: child {}, expected death by SIGBUS",
        describe_status(status)
    ))
}

/// The enospc test on a freshly made and mounted rdaxfs.
pub fn enospc() -> TestResult {
    let _fx = Fixture::new()?;
    fresh_mount()?;
    let base = free_counts(MNT)?;
    fill_in(Path::new(MNT), Some(base.0))?;
    let after = free_counts(MNT)?;
    ensure!(
        after == base,
        "free (blocks, inodes) {after:?} after deleting everything, {base:?} after mkfs: {} blocks, {} inodes leaked",
        base.0 as i64 - after.0 as i64,
        base.1 as i64 - after.1 as i64
    );
    // The space is usable again.
    let chunks = Chunks::new();
    let again = Path::new(MNT).join("again");
    let mut buf = vec![0u8; CHUNK];
    chunks.fill(&mut buf, 77, 0);
    ctx(
        fs::File::create(&again).and_then(|mut f| f.write_all(&buf)),
        "write after deleting everything",
    )?;
    let w = Written {
        path: again.clone(),
        seed: 77,
        bytes: CHUNK as u64,
    };
    verify(&w, &chunks)?;
    ctx(fs::remove_file(&again), "unlink again")?;
    ctx(umount(MNT), "umount")?;
    fsck_clean(PMEM)?;
    println!("enospc: free (blocks, inodes) back to {base:?}");
    Ok(())
}

/// Fills the filesystem holding `root` from a new directory `root/fill`
/// with concurrent writers, checks the SIGBUS on a hole and every byte
/// reported written, then deletes it all. `free_blocks`: free blocks
/// before the fill, to check the fill really used the space.
pub fn fill_in(root: &Path, free_blocks: Option<u64>) -> TestResult {
    let dir = root.join("fill");
    ctx(fs::create_dir(&dir), "mkdir fill")?;
    // The hole file exists before the fs fills (creating it needs no
    // data block, but a directory block might).
    let hole_path = dir.join("hole");
    let hole = ctx(
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&hole_path),
        "create hole",
    )?;
    ctx(hole.set_len((HOLE_BLOCKS * BLOCK) as u64), "ftruncate hole")?;

    let chunks = Chunks::new();
    let t0 = Instant::now();
    let results: Vec<Result<(Vec<Written>, u64), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|t| {
                let (dir, chunks) = (&dir, &chunks);
                s.spawn(move || writer(dir, t, chunks))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("writer thread panicked".into()))
            })
            .collect()
    });
    let fill_secs = t0.elapsed().as_secs_f64();
    let mut files = Vec::new();
    let mut shorts = 0;
    for r in results {
        let (w, s) = r?;
        files.extend(w);
        shorts += s;
    }
    let written: u64 = files.iter().map(|w| w.bytes).sum();
    let topped = top_off(&dir.join("topoff"))?;
    let full = statfs(root)?;
    println!(
        "enospc: {WRITERS} writers filled {} files with {} MiB in {fill_secs:.1}s ({shorts} short writes), top-off {topped} blocks; now {} blocks free, {} avail",
        files.len(),
        written >> 20,
        full.f_bfree,
        full.f_bavail
    );
    if let Some(free) = free_blocks {
        let used = written / BLOCK as u64 + topped;
        ensure!(
            used + 64 >= free,
            "ENOSPC after only {used} blocks of the {free} free before the fill"
        );
    }

    sigbus_on_hole(&hole)?;
    drop(hole);

    let t1 = Instant::now();
    for w in &files {
        verify(w, &chunks)?;
    }
    println!(
        "enospc: all {written} bytes reported written read back ({:.1}s)",
        t1.elapsed().as_secs_f64()
    );
    for w in &files {
        ctx(fs::remove_file(&w.path), w.path.display())?;
    }
    for p in [dir.join("topoff"), hole_path] {
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("unlink {}: {e}", p.display())),
        }
    }
    ctx(fs::remove_dir(&dir), "rmdir fill")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_stamps_differ_by_stream_and_offset() {
        let c = Chunks::new();
        let (mut a, mut b) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
        c.fill(&mut a, 1, 0);
        c.fill(&mut b, 1, CHUNK as u64);
        assert_ne!(a, b);
        c.fill(&mut b, 2, 0);
        assert_ne!(a, b);
        c.fill(&mut b, 1, 0);
        assert_eq!(a, b);
        // A short tail chunk is a prefix of the full one.
        let mut short = vec![0u8; 5000];
        c.fill(&mut short, 1, 0);
        assert_eq!(&short[..], &a[..5000]);
    }

    #[test]
    fn writer_output_verifies_on_host_fs() {
        // No ENOSPC on the host: write one file's worth by hand through
        // the same stream and check verify() accepts it and catches damage.
        let t = TempDir::new("enospc");
        let c = Chunks::new();
        let p = t.0.join("f");
        let mut buf = vec![0u8; CHUNK];
        let mut f = fs::File::create(&p).unwrap();
        for k in 0..3u64 {
            c.fill(&mut buf, 9, k * CHUNK as u64);
            f.write_all(&buf).unwrap();
        }
        c.fill(&mut buf, 9, 3 * CHUNK as u64);
        f.write_all(&buf[..777]).unwrap();
        drop(f);
        let w = Written {
            path: p.clone(),
            seed: 9,
            bytes: 3 * CHUNK as u64 + 777,
        };
        verify(&w, &c).unwrap();
        let bad = Written {
            bytes: w.bytes - 1,
            ..w.clone()
        };
        assert!(verify(&bad, &c).is_err());
        let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, b"x", 2 * CHUNK as u64 + 100).unwrap();
        assert!(verify(&w, &c).is_err());
    }

    /// Runs the whole fill on a small filesystem the caller mounted, e.g.
    /// `mount -t tmpfs -o size=48m tmpfs /tmp/smallfs;
    /// RDAXFS_SCRATCH_DIR=/tmp/smallfs cargo test -- --ignored`.
    #[test]
    #[ignore = "needs a small scratch filesystem in RDAXFS_SCRATCH_DIR"]
    fn fill_on_small_host_fs() {
        let dir = std::env::var("RDAXFS_SCRATCH_DIR").expect("RDAXFS_SCRATCH_DIR");
        let dir = Path::new(&dir);
        let base = free_counts(dir).unwrap();
        fill_in(dir, Some(base.0)).unwrap();
        assert_eq!(free_counts(dir).unwrap(), base);
    }
}
