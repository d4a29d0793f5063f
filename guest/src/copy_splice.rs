//! copy-splice: copy_file_range(2), sendfile(2) and splice(2) with rdaxfs
//! files on either side: rdaxfs to rdaxfs (same and different files),
//! rdaxfs to tmpfs and back, across holes, from and past EOF. On a DAX file
//! the kernel serves all three through splice (`copy_splice_read` and
//! `iter_file_splice_write`); without `splice_read`/`splice_write` they
//! fail with EINVAL.
//!
//! Also the syscall wrappers other tests (fsx, map-coherence) use.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::ensure;
use crate::util::*;

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// One copy_file_range(2) call: `len` bytes from `off_in` of `fd_in` to
/// `off_out` of `fd_out`. Returns the bytes copied or the errno.
pub fn copy_range(
    fd_in: libc::c_int,
    off_in: u64,
    fd_out: libc::c_int,
    off_out: u64,
    len: usize,
) -> Result<usize, i32> {
    let (mut i, mut o) = (off_in as libc::loff_t, off_out as libc::loff_t);
    // SAFETY: plain syscall; the offsets are valid for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_copy_file_range,
            fd_in,
            &mut i as *mut libc::loff_t,
            fd_out,
            &mut o as *mut libc::loff_t,
            len,
            0u32,
        )
    };
    if r < 0 {
        return Err(errno());
    }
    let n = r as u64;
    if i as u64 != off_in + n || o as u64 != off_out + n {
        // The kernel must advance both offsets by what it copied.
        return Err(-1);
    }
    Ok(n as usize)
}

/// copy_file_range(2) until `len` bytes are copied or a call copies
/// nothing (EOF of the source). Returns the total or the errno.
pub fn copy_range_all(
    fd_in: libc::c_int,
    off_in: u64,
    fd_out: libc::c_int,
    off_out: u64,
    len: usize,
) -> Result<usize, i32> {
    let mut done = 0;
    while done < len {
        let n = copy_range(
            fd_in,
            off_in + done as u64,
            fd_out,
            off_out + done as u64,
            len - done,
        )?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}

/// sendfile(2) of up to `len` bytes from `off_in` of `fd_in` to `fd_out`
/// at `off_out` (set with lseek: sendfile writes at the file position),
/// looping over short counts until EOF. Returns the total or the errno.
pub fn sendfile_all(
    fd_in: libc::c_int,
    off_in: u64,
    fd_out: libc::c_int,
    off_out: u64,
    len: usize,
) -> Result<usize, i32> {
    // SAFETY: plain syscall on a descriptor.
    if unsafe { libc::lseek(fd_out, off_out as libc::off_t, libc::SEEK_SET) } < 0 {
        return Err(errno());
    }
    let mut off = off_in as libc::off_t;
    let mut done = 0;
    while done < len {
        // SAFETY: plain syscall; `off` is valid for the call.
        let r = unsafe { libc::sendfile(fd_out, fd_in, &mut off, len - done) };
        if r < 0 {
            return Err(errno());
        }
        if r == 0 {
            break;
        }
        done += r as usize;
    }
    if off as u64 != off_in + done as u64 {
        return Err(-1);
    }
    Ok(done)
}

/// A pipe, closed on drop.
struct Pipe(libc::c_int, libc::c_int);

impl Pipe {
    fn new() -> Result<Self, i32> {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for two descriptors.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(errno());
        }
        Ok(Self(fds[0], fds[1]))
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // SAFETY: closing our own descriptors.
        unsafe {
            libc::close(self.0);
            libc::close(self.1);
        }
    }
}

/// splice(2) from `fd_in` at `off_in` into a pipe and from the pipe to
/// `fd_out` at `off_out`, up to `len` bytes, until EOF. Returns the total
/// or the errno.
pub fn splice_all(
    fd_in: libc::c_int,
    off_in: u64,
    fd_out: libc::c_int,
    off_out: u64,
    len: usize,
) -> Result<usize, i32> {
    let p = Pipe::new()?;
    let (mut i, mut o) = (off_in as libc::loff_t, off_out as libc::loff_t);
    let mut done = 0;
    while done < len {
        // SAFETY: plain syscall; the offset is valid for the call.
        let n = unsafe {
            libc::splice(
                fd_in,
                &mut i,
                p.1,
                std::ptr::null_mut(),
                (len - done).min(1 << 16),
                0,
            )
        };
        if n < 0 {
            return Err(errno());
        }
        if n == 0 {
            break;
        }
        let mut left = n as usize;
        while left > 0 {
            // SAFETY: as above.
            let m = unsafe { libc::splice(p.0, std::ptr::null_mut(), fd_out, &mut o, left, 0) };
            if m <= 0 {
                return Err(if m < 0 { errno() } else { -1 });
            }
            left -= m as usize;
        }
        done += n as usize;
    }
    Ok(done)
}

/// A file and what it must contain.
struct Model {
    file: fs::File,
    data: Vec<u8>,
    name: String,
}

impl Model {
    fn create(p: &Path) -> Result<Self, String> {
        Ok(Self {
            file: create_rw(p)?,
            data: Vec::new(),
            name: p.display().to_string(),
        })
    }
    fn fd(&self) -> libc::c_int {
        self.file.as_raw_fd()
    }
    fn pwrite(&mut self, off: u64, len: usize, seed: u64) -> TestResult {
        let mut b = vec![0u8; len];
        fill_pattern(&mut b, seed, off);
        ctx(
            self.file.write_all_at(&b, off),
            format!("pwrite {}", self.name),
        )?;
        self.put(off, &b);
        Ok(())
    }
    fn truncate(&mut self, size: u64) -> TestResult {
        ftruncate(self.fd(), size)
            .map_err(|e| format!("ftruncate {}: {}", self.name, errno_name(e)))?;
        self.data.resize(size as usize, 0);
        Ok(())
    }
    /// Records that `b` now lies at `off` (the file grows if needed).
    fn put(&mut self, off: u64, b: &[u8]) {
        let end = off as usize + b.len();
        if end > self.data.len() {
            self.data.resize(end, 0);
        }
        self.data[off as usize..end].copy_from_slice(b);
    }
    /// Reads the whole file and compares it with the model.
    fn check(&self, after: &str) -> TestResult {
        let size = ctx(self.file.metadata(), "fstat")?.len();
        ensure!(
            size == self.data.len() as u64,
            "after {after}: {} is {size} bytes, expected {}",
            self.name,
            self.data.len()
        );
        let mut got = vec![0u8; size as usize];
        ctx(
            self.file.read_exact_at(&mut got, 0),
            format!("pread {}", self.name),
        )?;
        if let Some(i) = got.iter().zip(&self.data).position(|(a, b)| a != b) {
            return Err(format!(
                "after {after}: {} byte {i} (block {}) reads {:#04x}, expected {:#04x}",
                self.name,
                i / BLOCK,
                got[i],
                self.data[i]
            ));
        }
        Ok(())
    }
}

/// Which call moves the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum How {
    CopyFileRange,
    Sendfile,
    Splice,
}

fn xfer(
    how: How,
    from: &Model,
    off_in: u64,
    to: &Model,
    off_out: u64,
    len: usize,
) -> Result<usize, i32> {
    match how {
        How::CopyFileRange => copy_range_all(from.fd(), off_in, to.fd(), off_out, len),
        How::Sendfile => sendfile_all(from.fd(), off_in, to.fd(), off_out, len),
        How::Splice => splice_all(from.fd(), off_in, to.fd(), off_out, len),
    }
}

/// Copies with `how` and updates `to`'s model with what the source holds
/// there (up to its EOF); checks the count and the destination.
fn copy_checked(
    how: How,
    from: &Model,
    off_in: u64,
    to: &mut Model,
    off_out: u64,
    len: usize,
) -> TestResult {
    let what = format!(
        "{how:?} {}[{off_in:#x}+{len:#x}] -> {}[{off_out:#x}]",
        from.name, to.name
    );
    let n = xfer(how, from, off_in, to, off_out, len)
        .map_err(|e| format!("{what}: {}", errno_name(e)))?;
    let avail = (from.data.len() as u64)
        .saturating_sub(off_in)
        .min(len as u64) as usize;
    ensure!(n == avail, "{what}: moved {n} bytes, expected {avail}");
    if n > 0 {
        let src = from.data[off_in as usize..off_in as usize + n].to_vec();
        to.put(off_out, &src);
    }
    to.check(&what)
}

/// A sparse source: data, a hole, data, a hole, data up to an EOF in the
/// middle of a block.
fn make_source(m: &mut Model, seed: u64) -> TestResult {
    m.pwrite(0, 70_000, seed)?;
    m.pwrite(1 << 20, 100_000, seed + 1)?;
    m.truncate((3 << 20) + 1234)?;
    m.pwrite(3 << 20, 1234, seed + 2)?;
    m.check("setting up the source")
}

/// Runs every case with `a_dir` as "rdaxfs" and `t_dir` as the other
/// filesystem (tmpfs); returns what failed.
pub fn cases(a_dir: &Path, t_dir: &Path) -> Result<Vec<String>, String> {
    let mut bad = Vec::new();
    let mut note = |r: TestResult| {
        if let Err(e) = r {
            println!("copy-splice: FAILED: {e}");
            bad.push(e);
        }
    };
    let mut a = Model::create(&a_dir.join("cs-src"))?;
    make_source(&mut a, 1)?;
    let size_a = a.data.len() as u64;
    let mut t = Model::create(&t_dir.join("cs-src-tmpfs"))?;
    make_source(&mut t, 5)?;

    for how in [How::CopyFileRange, How::Sendfile, How::Splice] {
        let tag = format!("{how:?}").to_lowercase();
        let mut b = Model::create(&a_dir.join(format!("cs-{tag}-b")))?;
        // Whole file, asking for more than there is: stops at EOF.
        note(copy_checked(how, &a, 0, &mut b, 0, size_a as usize + 5000));
        // Unaligned, across a hole, into existing data.
        note(copy_checked(how, &a, 5000, &mut b, (1 << 20) + 3, 2 << 20));
        // From just before EOF, to past the destination's EOF (leaves a hole).
        let past = b.data.len() as u64 + 8192 + 17;
        note(copy_checked(how, &a, size_a - 10, &mut b, past, 100));
        // At and past EOF: nothing to move.
        note(copy_checked(how, &a, size_a, &mut b, 0, 100));
        note(copy_checked(how, &a, size_a + 4096, &mut b, 0, 100));
        // From a hole only.
        note(copy_checked(how, &a, 200_000, &mut b, 4096, 8192));
        // Same file, ranges apart.
        let mut a2 = Model::create(&a_dir.join(format!("cs-{tag}-self")))?;
        note(copy_checked(how, &a, 0, &mut a2, 0, 300_000));
        let same = Model {
            file: ctx(a2.file.try_clone(), "dup")?,
            data: a2.data.clone(),
            name: a2.name.clone(),
        };
        note(copy_checked(how, &same, 0, &mut a2, 500_000, 70_000));
        // rdaxfs -> tmpfs and tmpfs -> rdaxfs. copy_file_range across
        // filesystems that have no ->copy_file_range is EXDEV on 6.12
        // (ext4 likewise); callers fall back to read/write.
        let mut tt = Model::create(&t_dir.join(format!("cs-{tag}-t")))?;
        let mut at = Model::create(&a_dir.join(format!("cs-{tag}-from-tmpfs")))?;
        if how == How::CopyFileRange {
            for (from, to) in [(&a, &mut tt), (&t, &mut at)] {
                match copy_range(from.fd(), 0, to.fd(), 0, 4096) {
                    Err(libc::EXDEV) => println!(
                        "copy-splice: copy_file_range {} -> {}: EXDEV (cross-filesystem)",
                        from.name, to.name
                    ),
                    Ok(n) => {
                        to.put(0, &from.data[..n]);
                        note(to.check("cross-filesystem copy_file_range"));
                    }
                    Err(e) => note(Err(format!(
                        "copy_file_range {} -> {}: {}, expected success or EXDEV",
                        from.name,
                        to.name,
                        errno_name(e)
                    ))),
                }
            }
        } else {
            note(copy_checked(how, &a, 0, &mut tt, 0, size_a as usize));
            note(copy_checked(how, &a, 1_000_000, &mut tt, 7, 300_000));
            note(copy_checked(how, &t, 0, &mut at, 0, size_a as usize + 1));
            note(copy_checked(
                how,
                &t,
                60_000,
                &mut at,
                (2 << 20) + 100,
                1 << 20,
            ));
            note(copy_checked(how, &t, size_a, &mut at, 0, 10));
        }
        for f in [&b, &a2, &tt, &at] {
            note(f.check("all copies"));
        }
    }
    // Overlapping ranges of one file are refused.
    let mut o = Model::create(&a_dir.join("cs-overlap"))?;
    o.pwrite(0, 20_000, 9)?;
    match copy_range(o.fd(), 0, o.fd(), 4096, 8192) {
        Err(libc::EINVAL) => {}
        r => note(Err(format!(
            "copy_file_range of overlapping ranges of one file: {r:?}, expected EINVAL"
        ))),
    }
    note(o.check("an overlapping copy_file_range"));
    a.check("all copies (the source)")?;
    Ok(bad)
}

/// The copy-splice test on rdaxfs, with tmpfs as the other filesystem.
pub fn copy_splice() -> TestResult {
    let _fx = Fixture::new()?;
    fresh_mount()?;
    let mark = dmesg_mark("copy-splice");
    let t = Path::new("/mnt2");
    ctx(fs::create_dir_all(t), "mkdir /mnt2")?;
    ctx(mount("tmpfs", "/mnt2", "tmpfs", ""), "mount tmpfs on /mnt2")?;
    let bad = cases(Path::new(MNT), t)?;
    ctx(umount("/mnt2"), "umount /mnt2")?;
    ensure!(
        bad.is_empty(),
        "{} case(s) failed:\n  {}",
        bad.len(),
        bad.join("\n  ")
    );
    ctx(umount(MNT), "umount")?;
    let k = kernel_problems(&mark);
    ensure!(k.is_empty(), "kernel log shows:\n{}", k.join("\n"));
    fsck_clean(PMEM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_splice_on_host_fs() {
        let a = TempDir::new("cs-a");
        let b = TempDir::new("cs-b");
        assert_eq!(cases(&a.0, &b.0).unwrap(), Vec::<String>::new());
    }
}
