//! max-size: writes, truncates, fallocate, INSERT_RANGE, copy_file_range
//! and mapped stores at and around the largest file size the on-disk
//! format holds (`MAX_FILE_SIZE`, 2^50). What fits must work and read
//! back after the inode is dropped from memory (drop_caches + stat +
//! read); what does not must fail with EFBIG before anything reaches the
//! disk. A write at 2^51 used to succeed and leave an inode the next
//! lookup rejected as corrupt (EUCLEAN). Also RLIMIT_FSIZE: writes,
//! truncates and size-changing fallocates past it fail with EFBIG.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::copy_splice::copy_range;
use crate::ensure;
use crate::util::*;

const MAX: u64 = rdaxfs_format::MAX_FILE_SIZE;
const K: u64 = 4096;

fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// The outcome of one call: bytes or errno.
type Res = Result<u64, i32>;

fn pwrite(f: &fs::File, b: &[u8], off: u64) -> Res {
    f.write_at(b, off)
        .map(|n| n as u64)
        .map_err(|e| errno_of(&e))
}

fn unit(r: Result<(), i32>) -> Res {
    r.map(|()| 0)
}

fn show(r: Res) -> String {
    match r {
        Ok(n) => format!("succeeded ({n})"),
        Err(e) => errno_name(e),
    }
}

/// Collects what went wrong in one case.
struct Cx {
    name: &'static str,
    fails: Vec<String>,
}

impl Cx {
    fn want(&mut self, what: &str, got: Res, want: Res) {
        if got != want {
            self.fails.push(format!(
                "{}: {what}: {}, expected {}",
                self.name,
                show(got),
                show(want)
            ));
        }
    }
}

/// What the file must look like after the inode is read back from pmem.
struct Expect {
    size: u64,
    bytes: Vec<(u64, u8)>,
}

type Case = fn(&fs::File, &mut Cx) -> Expect;

fn no_bytes(size: u64) -> Expect {
    Expect {
        size,
        bytes: Vec::new(),
    }
}

fn cases() -> Vec<(&'static str, Case)> {
    vec![
        ("pwrite at 2^51", |f, cx| {
            cx.want(
                "pwrite 1 byte at 2^51",
                pwrite(f, b"X", 1 << 51),
                Err(libc::EFBIG),
            );
            no_bytes(0)
        }),
        ("pwrite at the limit", |f, cx| {
            cx.want(
                "pwrite 1 byte at MAX",
                pwrite(f, b"X", MAX),
                Err(libc::EFBIG),
            );
            cx.want("pwrite 1 byte at MAX-1", pwrite(f, b"Y", MAX - 1), Ok(1));
            cx.want(
                "pwrite 2 bytes at MAX-1 (short)",
                pwrite(f, b"ZW", MAX - 1),
                Ok(1),
            );
            no_bytes(MAX).with(MAX - 1, b'Z')
        }),
        ("pwrite the last block", |f, cx| {
            let b = vec![0xA5u8; K as usize];
            cx.want("pwrite 4 KiB at MAX-4K", pwrite(f, &b, MAX - K), Ok(K));
            cx.want(
                "pwrite 4 KiB at MAX-2K (short)",
                pwrite(f, &[0x5A; 4096], MAX - K / 2),
                Ok(K / 2),
            );
            no_bytes(MAX).with(MAX - K, 0xA5).with(MAX - 1, 0x5A)
        }),
        ("ftruncate", |f, cx| {
            let fd = f.as_raw_fd();
            cx.want(
                "ftruncate 2^51",
                unit(ftruncate(fd, 1 << 51)),
                Err(libc::EFBIG),
            );
            cx.want(
                "ftruncate MAX+1",
                unit(ftruncate(fd, MAX + 1)),
                Err(libc::EFBIG),
            );
            cx.want("ftruncate MAX", unit(ftruncate(fd, MAX)), Ok(0));
            cx.want("pwrite 1 byte at MAX-1", pwrite(f, b"T", MAX - 1), Ok(1));
            no_bytes(MAX).with(MAX - 1, b'T').with(MAX - 2, 0)
        }),
        ("fallocate", |f, cx| {
            let fd = f.as_raw_fd();
            let fa = |m, o, l| unit(fallocate(fd, m, o, l));
            cx.want(
                "fallocate 0 MAX-4K+8K",
                fa(0, MAX - K, 2 * K),
                Err(libc::EFBIG),
            );
            cx.want(
                "fallocate KEEP_SIZE 2^51",
                fa(libc::FALLOC_FL_KEEP_SIZE, 1 << 51, K),
                Err(libc::EFBIG),
            );
            cx.want("fallocate 0 MAX-8K+8K", fa(0, MAX - 2 * K, 2 * K), Ok(0));
            cx.want("pwrite at MAX-5", pwrite(f, b"F", MAX - 5), Ok(1));
            cx.want(
                "ZERO_RANGE MAX-4K+4K",
                fa(libc::FALLOC_FL_ZERO_RANGE, MAX - K, K),
                Ok(0),
            );
            no_bytes(MAX).with(MAX - 5, 0).with(MAX - 2 * K, 0)
        }),
        ("INSERT_RANGE", |f, cx| {
            let fd = f.as_raw_fd();
            let fa = |m, o, l| unit(fallocate(fd, m, o, l));
            cx.want("pwrite 8K at 0", pwrite(f, &[7; 8192], 0), Ok(8192));
            // A block kept past EOF at the very end of the range.
            cx.want(
                "fallocate KEEP_SIZE MAX-4K+4K",
                fa(libc::FALLOC_FL_KEEP_SIZE, MAX - K, K),
                Ok(0),
            );
            cx.want(
                "INSERT_RANGE 0+4K (a block past EOF would move past MAX)",
                fa(libc::FALLOC_FL_INSERT_RANGE, 0, K),
                Err(libc::EFBIG),
            );
            // Truncating down frees the block kept past EOF (a punch past
            // EOF does nothing, as on ext4).
            cx.want("ftruncate 8K-1", unit(ftruncate(fd, 2 * K - 1)), Ok(0));
            cx.want("ftruncate MAX-4K", unit(ftruncate(fd, MAX - K)), Ok(0));
            cx.want("pwrite at MAX-4K-1", pwrite(f, b"I", MAX - K - 1), Ok(1));
            cx.want(
                "INSERT_RANGE 0+8K (size past MAX)",
                fa(libc::FALLOC_FL_INSERT_RANGE, 0, 2 * K),
                Err(libc::EFBIG),
            );
            cx.want(
                "INSERT_RANGE 0+4K",
                fa(libc::FALLOC_FL_INSERT_RANGE, 0, K),
                Ok(0),
            );
            no_bytes(MAX).with(0, 0).with(K, 7).with(MAX - 1, b'I')
        }),
        ("copy_file_range", |f, cx| {
            let Ok(src) = fs::File::open(MNT_SRC) else {
                cx.fails.push(format!("{}: open {MNT_SRC}", cx.name));
                return no_bytes(0);
            };
            let (si, fo) = (src.as_raw_fd(), f.as_raw_fd());
            let cp = |o, l| copy_range(si, 0, fo, o, l).map(|n| n as u64);
            cx.want(
                "copy_file_range 2 bytes to MAX",
                cp(MAX, 2),
                Err(libc::EFBIG),
            );
            cx.want(
                "copy_file_range 2 bytes to MAX-1 (short)",
                cp(MAX - 1, 2),
                Ok(1),
            );
            no_bytes(MAX).with(MAX - 1, b'S')
        }),
        ("mapped store in the last page", |f, cx| {
            cx.want("ftruncate MAX", unit(ftruncate(f.as_raw_fd(), MAX)), Ok(0));
            // SAFETY: a fresh shared mapping of the file's last page.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    K as usize,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    f.as_raw_fd(),
                    (MAX - K) as libc::off_t,
                )
            };
            if p == libc::MAP_FAILED {
                cx.fails.push(format!(
                    "{}: mmap at MAX-4K: {}",
                    cx.name,
                    io::Error::last_os_error()
                ));
                return no_bytes(MAX);
            }
            // SAFETY: inside the mapping, which is then synced and unmapped.
            unsafe {
                p.cast::<u8>().add(K as usize - 1).write_volatile(b'M');
                libc::msync(p, K as usize, libc::MS_SYNC);
                libc::munmap(p, K as usize);
            }
            no_bytes(MAX).with(MAX - 1, b'M')
        }),
    ]
}

/// Source of the copy_file_range case: "S" repeated.
const MNT_SRC: &str = "/mnt/max-size-src";

impl Expect {
    fn with(mut self, off: u64, b: u8) -> Self {
        self.bytes.push((off, b));
        self
    }
}

fn drop_caches() -> TestResult {
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
    ctx(fs::write("/proc/sys/vm/drop_caches", "2"), "drop_caches")
}

/// After the case's file is closed: the inode must come back from pmem.
fn verify(p: &Path, e: &Expect) -> TestResult {
    drop_caches()?;
    let m = fs::metadata(p).map_err(|err| {
        format!(
            "stat after drop_caches: {} ({err})",
            errno_name(errno_of(&err))
        )
    })?;
    ensure!(
        m.len() == e.size,
        "after drop_caches the size is {:#x}, expected {:#x}",
        m.len(),
        e.size
    );
    let f = ctx(fs::File::open(p), "open after drop_caches")?;
    for &(off, want) in &e.bytes {
        let mut b = [0u8; 1];
        ctx(f.read_exact_at(&mut b, off), format!("pread at {off:#x}"))?;
        ensure!(
            b[0] == want,
            "byte {off:#x} reads {:#04x}, expected {want:#04x}",
            b[0]
        );
    }
    let mut b = [0u8; 1];
    let n = ctx(f.read_at(&mut b, e.size), "pread at EOF")?;
    ensure!(n == 0, "pread at EOF {:#x} returned {n} bytes", e.size);
    Ok(())
}

/// RLIMIT_FSIZE: writes and size changes past the limit fail with EFBIG
/// (SIGXFSZ ignored); inside it they work.
fn rlimit_case(dir: &Path) -> Vec<String> {
    const LIM: u64 = 1 << 20;
    let mut cx = Cx {
        name: "RLIMIT_FSIZE 1 MiB",
        fails: Vec::new(),
    };
    let p = dir.join("max-size-rlimit");
    let f = match create_rw(&p) {
        Ok(f) => f,
        Err(e) => return vec![e],
    };
    // SAFETY: plain libc calls on this process's own signal and limits.
    let old = unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let mut old: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_FSIZE, &mut old);
        let new = libc::rlimit {
            rlim_cur: LIM,
            rlim_max: old.rlim_max,
        };
        libc::setrlimit(libc::RLIMIT_FSIZE, &new);
        old
    };
    let fd = f.as_raw_fd();
    let fa = |m, o, l| unit(fallocate(fd, m, o, l));
    cx.want(
        "pwrite at the limit",
        pwrite(&f, b"x", LIM),
        Err(libc::EFBIG),
    );
    cx.want(
        "pwrite across the limit (short)",
        pwrite(&f, &[1; 10], LIM - 5),
        Ok(5),
    );
    cx.want(
        "ftruncate past the limit",
        unit(ftruncate(fd, 2 * LIM)),
        Err(libc::EFBIG),
    );
    cx.want(
        "fallocate 0 past the limit",
        fa(0, 0, 2 * LIM),
        Err(libc::EFBIG),
    );
    cx.want(
        "ZERO_RANGE past the limit",
        fa(libc::FALLOC_FL_ZERO_RANGE, 0, 2 * LIM),
        Err(libc::EFBIG),
    );
    cx.want(
        "fallocate KEEP_SIZE past the limit",
        fa(libc::FALLOC_FL_KEEP_SIZE, 0, 2 * LIM),
        Ok(0),
    );
    cx.want(
        "INSERT_RANGE past the limit",
        fa(libc::FALLOC_FL_INSERT_RANGE, 0, K),
        Err(libc::EFBIG),
    );
    // SAFETY: restoring what was saved above.
    unsafe {
        libc::setrlimit(libc::RLIMIT_FSIZE, &old);
        libc::signal(libc::SIGXFSZ, libc::SIG_DFL);
    }
    drop(f);
    if let Err(e) = verify(&p, &no_bytes(LIM).with(LIM - 1, 1)) {
        cx.fails.push(format!("{}: {e}", cx.name));
    }
    let _ = fs::remove_file(&p);
    cx.fails
}

/// Runs every case in `dir` (on rdaxfs: MNT); returns the failures.
pub fn run_cases(dir: &Path) -> Result<Vec<String>, String> {
    ctx(fs::write(MNT_SRC, b"SSSS"), "write the copy source")?;
    let mut bad = Vec::new();
    for (i, (name, case)) in cases().into_iter().enumerate() {
        let p = dir.join(format!("max-size-{i}"));
        let f = create_rw(&p)?;
        let mut cx = Cx {
            name,
            fails: Vec::new(),
        };
        let e = case(&f, &mut cx);
        drop(f);
        if let Err(err) = verify(&p, &e) {
            cx.fails.push(format!("{name}: {err}"));
        }
        for l in &cx.fails {
            println!("max-size: FAILED {l}");
        }
        bad.extend(cx.fails);
        // A file the kernel cannot read back cannot be removed either.
        let _ = fs::remove_file(&p);
    }
    bad.extend(rlimit_case(dir));
    Ok(bad)
}

/// max-size on rdaxfs.
pub fn max_size() -> TestResult {
    let _fx = Fixture::new()?;
    fresh_mount()?;
    let mark = dmesg_mark("max-size");
    let bad = run_cases(Path::new(MNT))?;
    ensure!(
        bad.is_empty(),
        "{} check(s) failed:\n  {}",
        bad.len(),
        bad.join("\n  ")
    );
    ctx(umount(MNT), "umount")?;
    let k = kernel_problems(&mark);
    ensure!(k.is_empty(), "kernel log shows:\n{}", k.join("\n"));
    fsck_clean(PMEM)
}
