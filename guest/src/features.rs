//! Features fstests probes for and a DAX filesystem is expected to have:
//! FIEMAP, SEEK_DATA/SEEK_HOLE, O_TMPFILE, RENAME_WHITEOUT and the statfs
//! figures (`f_type`, `f_fsid`, `f_namelen`, block sizes) with the mount
//! options in /proc/mounts.
//!
//! Each layout below is built by a list of operations whose effect on the
//! file's block map is known exactly (rdaxfs has no unwritten extents:
//! fallocate hands out zeroed blocks, which read as data), so FIEMAP and
//! lseek answers are checked against the map the test computed, byte for
//! byte of the device for written blocks.

use std::collections::BTreeSet;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::Path;

use crate::ensure;
use crate::util::*;

const B: u64 = BLOCK as u64;

/// `FS_IOC_FIEMAP` = `_IOWR('f', 11, struct fiemap)` (32-byte header).
const FS_IOC_FIEMAP: libc::Ioctl = 0xC020_660Bu32 as libc::Ioctl;
const FIEMAP_FLAG_SYNC: u32 = 0x1;
const FIEMAP_FLAG_XATTR: u32 = 0x2;
const FIEMAP_EXTENT_LAST: u32 = 0x1;
const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x800;
const EXTENT_SIZE: usize = 56;
const HEADER: usize = 32;
const EBADR: i32 = 53;
const RENAME_NOREPLACE: libc::c_uint = 1;
const RENAME_EXCHANGE: libc::c_uint = 2;
const RENAME_WHITEOUT: libc::c_uint = 4;

/// One extent FIEMAP reported.
#[derive(Clone, Copy, Debug)]
struct Fext {
    logical: u64,
    physical: u64,
    len: u64,
    flags: u32,
}

/// One FIEMAP call: `(fm_flags after the call, mapped count, extents)`, or
/// the errno (and the returned `fm_flags`, which the kernel sets to the
/// unsupported flags on `EBADR`).
fn fiemap_raw(
    fd: libc::c_int,
    start: u64,
    len: u64,
    flags: u32,
    count: u32,
) -> Result<(u32, u32, Vec<Fext>), (i32, u32)> {
    let mut buf = vec![0u64; (HEADER + EXTENT_SIZE * count as usize).div_ceil(8)];
    buf[0] = start;
    buf[1] = len;
    buf[2] = u64::from(flags);
    buf[3] = u64::from(count);
    // SAFETY: `buf` holds a struct fiemap with room for `count` extents.
    let r = unsafe { libc::ioctl(fd, FS_IOC_FIEMAP, buf.as_mut_ptr()) };
    let out_flags = buf[2] as u32;
    if r < 0 {
        return Err((io_errno(), out_flags));
    }
    let mapped = (buf[2] >> 32) as u32;
    let mut v = Vec::new();
    for i in 0..mapped.min(count) as usize {
        let w = (HEADER + i * EXTENT_SIZE) / 8;
        v.push(Fext {
            logical: buf[w],
            physical: buf[w + 1],
            len: buf[w + 2],
            flags: buf[w + 5] as u32,
        });
    }
    Ok((out_flags, mapped, v))
}

fn io_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Every extent of `[0, ∞)`, fetched `per` at a time (as filefrag does).
fn fiemap_all(fd: libc::c_int, per: u32) -> Result<Vec<Fext>, String> {
    let mut all: Vec<Fext> = Vec::new();
    let mut start = 0u64;
    loop {
        let (_, _, v) = fiemap_raw(fd, start, u64::MAX - start, FIEMAP_FLAG_SYNC, per)
            .map_err(|(e, _)| format!("FIEMAP from {start}: {}", errno_name(e)))?;
        let Some(last) = v.last().copied() else {
            return Ok(all);
        };
        all.extend_from_slice(&v);
        if last.flags & FIEMAP_EXTENT_LAST != 0 {
            return Ok(all);
        }
        start = last.logical + last.len;
    }
}

/// A file's expected block map: the set of logical blocks with data.
#[derive(Default)]
struct Model {
    data: BTreeSet<u64>,
    size: u64,
}

/// What a layout step does.
enum Op {
    /// Write `len` bytes of pattern at `off`.
    Write(u64, u64),
    /// fallocate(mode 0 or KEEP_SIZE) of `[off, off + len)`.
    Falloc(u64, u64, bool),
    /// Punch `[off, off + len)` (block aligned).
    Punch(u64, u64),
    /// ftruncate to `size`.
    Truncate(u64),
}

fn blocks(off: u64, len: u64) -> std::ops::Range<u64> {
    off / B..(off + len).div_ceil(B)
}

impl Model {
    fn apply(&mut self, f: &fs::File, op: &Op, seed: u64) -> TestResult {
        let fd = f.as_raw_fd();
        match *op {
            Op::Write(off, len) => {
                let mut buf = vec![0u8; len as usize];
                fill_pattern(&mut buf, seed, off);
                ctx(f.write_all_at(&buf, off), format!("write {len} at {off}"))?;
                self.data.extend(blocks(off, len));
                self.size = self.size.max(off + len);
            }
            Op::Falloc(off, len, keep) => {
                let mode = if keep { libc::FALLOC_FL_KEEP_SIZE } else { 0 };
                fallocate(fd, mode, off, len)
                    .map_err(|e| format!("fallocate {off}+{len}: {}", errno_name(e)))?;
                self.data.extend(blocks(off, len));
                if !keep {
                    self.size = self.size.max(off + len);
                }
            }
            Op::Punch(off, len) => {
                let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
                fallocate(fd, mode, off, len)
                    .map_err(|e| format!("punch {off}+{len}: {}", errno_name(e)))?;
                for b in blocks(off, len) {
                    self.data.remove(&b);
                }
            }
            Op::Truncate(size) => {
                ftruncate(fd, size).map_err(|e| format!("truncate {size}: {}", errno_name(e)))?;
                let keep = size.div_ceil(B);
                self.data.retain(|&b| b < keep);
                self.size = size;
            }
        }
        Ok(())
    }

    /// Runs of data blocks: `(first, count)`.
    fn runs(&self) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = Vec::new();
        for &b in &self.data {
            match v.last_mut() {
                Some((s, n)) if *s + *n == b => *n += 1,
                _ => v.push((b, 1)),
            }
        }
        v
    }
}

/// The layouts every FIEMAP/SEEK check runs on: name and operations.
fn layouts() -> Vec<(&'static str, Vec<Op>)> {
    const K: u64 = 1024;
    vec![
        ("empty", vec![]),
        ("sparse-only", vec![Op::Truncate(1024 * K)]),
        ("one-block", vec![Op::Write(0, 100)]),
        (
            "holes",
            vec![
                Op::Write(0, 4 * K),
                Op::Write(64 * K, 4 * K),
                Op::Write(200 * K + 17, 5000),
                Op::Truncate(1024 * K),
            ],
        ),
        ("hole-first", vec![Op::Write(512 * K, 8 * K)]),
        (
            "falloc",
            vec![
                Op::Falloc(0, 64 * K, false),
                Op::Write(128 * K, 4 * K),
                Op::Falloc(256 * K, 32 * K, false),
                Op::Falloc(1024 * K, 64 * K, true),
            ],
        ),
        (
            "punched",
            vec![
                Op::Write(0, 256 * K),
                Op::Punch(64 * K, 64 * K),
                Op::Punch(200 * K, 4 * K),
                Op::Punch(252 * K, 4 * K),
            ],
        ),
        (
            "truncated",
            vec![
                Op::Write(0, 300 * K),
                Op::Truncate(100 * K + 5),
                Op::Truncate(400 * K),
            ],
        ),
    ]
}

/// Builds `ops` in a new file `name` under MNT.
fn build(name: &str, ops: &[Op], seed: u64) -> Result<(fs::File, Model), String> {
    let f = create_rw(&Path::new(MNT).join(name))?;
    let mut m = Model::default();
    for op in ops {
        m.apply(&f, op, seed)?;
    }
    Ok((f, m))
}

/// Checks FIEMAP of `f` against `m`: coverage, flags, physical blocks
/// (distinct, inside the device, holding the file's data).
fn check_fiemap(what: &str, f: &fs::File, m: &Model, per: u32, dev_check: bool) -> TestResult {
    let ext = fiemap_all(f.as_raw_fd(), per)?;
    let mut got: Vec<(u64, u64)> = Vec::new();
    let mut phys = BTreeSet::new();
    for (i, e) in ext.iter().enumerate() {
        ensure!(
            e.logical % B == 0 && e.len % B == 0 && e.len > 0 && e.physical % B == 0,
            "{what}: extent {i} {e:?} not block aligned"
        );
        ensure!(
            e.flags & FIEMAP_EXTENT_UNWRITTEN == 0,
            "{what}: extent {i} {e:?} flagged unwritten; rdaxfs has no unwritten extents"
        );
        let last = i + 1 == ext.len();
        ensure!(
            (e.flags & FIEMAP_EXTENT_LAST != 0) == last,
            "{what}: extent {i} of {} {e:?}: FIEMAP_EXTENT_LAST wrong",
            ext.len()
        );
        for k in 0..e.len / B {
            ensure!(
                phys.insert(e.physical / B + k),
                "{what}: physical block {} reported twice",
                e.physical / B + k
            );
        }
        let (s, n) = (e.logical / B, e.len / B);
        match got.last_mut() {
            Some((ps, pn)) if *ps + *pn == s => *pn += n,
            Some((ps, pn)) if *ps + *pn > s => {
                return Err(format!("{what}: extent {i} {e:?} overlaps or goes back"))
            }
            _ => got.push((s, n)),
        }
    }
    let want = m.runs();
    ensure!(
        got == want,
        "{what}: FIEMAP data runs (block, count) {got:?}, expected {want:?}"
    );
    if dev_check {
        // The reported physical blocks hold the file's bytes: compare
        // the first and last block of every extent with the device.
        for e in &ext {
            for lb in [e.logical / B, (e.logical + e.len) / B - 1] {
                let pb = e.physical / B + (lb - e.logical / B);
                let dev = dev_read_block(PMEM, pb)?;
                let mut file = vec![0u8; BLOCK];
                ctx(f.read_at(&mut file, lb * B), "read")?;
                ensure!(
                    dev == file,
                    "{what}: file block {lb} differs from device block {pb} FIEMAP names"
                );
            }
        }
    }
    Ok(())
}

/// The expected `lseek(off, SEEK_DATA)` / `SEEK_HOLE` of a model, or the
/// errno (ENXIO at or past EOF, and for SEEK_DATA with no data after off).
fn expect_seek(m: &Model, off: u64, data: bool) -> Result<u64, i32> {
    if off >= m.size {
        return Err(libc::ENXIO);
    }
    let mut pos = off;
    while pos < m.size {
        let is_data = m.data.contains(&(pos / B));
        if is_data == data {
            return Ok(pos);
        }
        pos = (pos / B + 1) * B;
    }
    if data {
        Err(libc::ENXIO)
    } else {
        Ok(m.size)
    }
}

fn seek(fd: libc::c_int, off: u64, whence: libc::c_int) -> Result<u64, i32> {
    // SAFETY: plain syscall on an open descriptor.
    let r = unsafe { libc::lseek(fd, off as i64, whence) };
    if r < 0 {
        Err(io_errno())
    } else {
        Ok(r as u64)
    }
}

fn check_seek(what: &str, f: &fs::File, m: &Model) -> TestResult {
    let fd = f.as_raw_fd();
    let mut offs: BTreeSet<u64> = BTreeSet::new();
    let end = m.size.max(m.data.last().map_or(0, |b| (b + 1) * B)) + 2 * B;
    let mut o = 0;
    while o <= end {
        offs.extend([o, o + 1, o + B / 2, o + B - 1]);
        o += B;
    }
    offs.extend([m.size.saturating_sub(1), m.size, m.size + 1]);
    let mut bad = Vec::new();
    for &off in &offs {
        for (data, whence, name) in [
            (true, libc::SEEK_DATA, "SEEK_DATA"),
            (false, libc::SEEK_HOLE, "SEEK_HOLE"),
        ] {
            let want = expect_seek(m, off, data);
            let got = seek(fd, off, whence);
            if got != want {
                bad.push(format!("{name}({off}) = {got:?}, expected {want:?}"));
            } else if let Ok(p) = got {
                // The file position moved there.
                let cur = seek(fd, 0, libc::SEEK_CUR);
                if cur != Ok(p) {
                    bad.push(format!(
                        "{name}({off}) returned {p} but position is {cur:?}"
                    ));
                }
            }
        }
    }
    ensure!(
        bad.is_empty(),
        "{what} (size {}, data runs {:?}): {} wrong answers, first: {:?}",
        m.size,
        m.runs(),
        bad.len(),
        &bad[..bad.len().min(6)]
    );
    Ok(())
}

/// A big sparse file: `n` single-block extents, one every other block.
fn sparse_many(n: u64) -> Result<(fs::File, Model), String> {
    let ops: Vec<Op> = (0..n).map(|i| Op::Write(2 * i * B, B)).collect();
    build("many", &ops, 9)
}

/// features-fiemap.
pub fn features_fiemap() -> TestResult {
    let _fx = Fixture::new()?;
    fresh_mount()?;
    for (i, (name, ops)) in layouts().iter().enumerate() {
        let (f, m) = build(name, ops, i as u64 + 1)?;
        check_fiemap(name, &f, &m, 64, true)?;
        check_fiemap(&format!("{name} (1 per call)"), &f, &m, 1, false)?;
        println!("fiemap {name}: {:?} ok", m.runs());
    }
    // Many extents: the count-only call, then pages of 100.
    let (f, m) = sparse_many(1500)?;
    let fd = f.as_raw_fd();
    let (_, mapped, _) = fiemap_raw(fd, 0, u64::MAX, 0, 0)
        .map_err(|(e, _)| format!("FIEMAP count: {}", errno_name(e)))?;
    ensure!(
        mapped == 1500,
        "FIEMAP counts {mapped} extents, expected 1500"
    );
    check_fiemap("many", &f, &m, 100, false)?;
    // A window in the middle: the extents overlapping [100 blocks, 110).
    let (_, n, v) = fiemap_raw(fd, 100 * B + 10, 10 * B - 10, 0, 20)
        .map_err(|(e, _)| format!("FIEMAP window: {}", errno_name(e)))?;
    let logicals: Vec<u64> = v.iter().map(|e| e.logical / B).collect();
    ensure!(
        n == 5 && logicals == [100, 102, 104, 106, 108],
        "FIEMAP window [100, 110) blocks: {n} extents at {logicals:?}"
    );
    println!("fiemap many: 1500 extents ok");

    // Errors, as xfs (iomap) returns them.
    let e = fiemap_raw(fd, 0, u64::MAX, 0x4000_0000, 10);
    ensure!(
        matches!(e, Err((EBADR, 0x4000_0000))),
        "FIEMAP with an unknown flag: {e:?}, expected EBADR with fm_flags = the bad flag"
    );
    let e = fiemap_raw(fd, 0, u64::MAX, FIEMAP_FLAG_XATTR, 10);
    ensure!(
        matches!(e, Err((EBADR, FIEMAP_FLAG_XATTR))),
        "FIEMAP_FLAG_XATTR (no xattrs): {e:?}, expected EBADR"
    );
    let e = fiemap_raw(fd, 0, 0, 0, 10);
    ensure!(
        matches!(e, Err((libc::EINVAL, _))),
        "FIEMAP of length 0: {e:?}, expected EINVAL"
    );
    let e = fiemap_raw(fd, 1 << 62, B, 0, 10);
    ensure!(
        matches!(e, Err((libc::EFBIG, _))),
        "FIEMAP past s_maxbytes: {e:?}, expected EFBIG"
    );
    let d = ctx(
        open_raw(MNT, libc::O_RDONLY | libc::O_DIRECTORY, 0),
        "open mnt",
    )?;
    let e = fiemap_raw(d.as_raw_fd(), 0, u64::MAX, 0, 10);
    ensure!(
        matches!(e, Err((libc::EOPNOTSUPP, _))),
        "FIEMAP on a directory: {e:?}, expected EOPNOTSUPP (as xfs)"
    );
    drop((f, d));
    ctx(umount(MNT), "umount")?;
    fsck_clean(PMEM)
}

/// features-seek.
pub fn features_seek() -> TestResult {
    let _fx = Fixture::new()?;
    fresh_mount()?;
    for (i, (name, ops)) in layouts().iter().enumerate() {
        let (f, m) = build(name, ops, i as u64 + 1)?;
        check_seek(name, &f, &m)?;
        println!("seek {name}: {:?} size {} ok", m.runs(), m.size);
    }
    let (f, m) = sparse_many(300)?;
    check_seek("many", &f, &m)?;
    println!("seek many: 300 extents ok");
    // Data written through a mapping of a hole becomes data.
    let (f2, mut m2) = build("mapped", &[Op::Truncate(64 * B)], 3)?;
    let map = ctx(Mapping::shared(f2.as_raw_fd(), 64 * BLOCK), "mmap")?;
    map.set(10 * BLOCK + 3, 7);
    map.set(40 * BLOCK, 9);
    m2.data.extend([10, 40]);
    check_seek("mapped", &f2, &m2)?;
    drop((map, f, f2));
    ctx(umount(MNT), "umount")?;
    fsck_clean(PMEM)
}

fn open_tmpfile(dir: &Path, extra: libc::c_int) -> Result<fs::File, i32> {
    let d = cstr(dir);
    // SAFETY: a valid path; the descriptor is owned by the File below.
    let fd = unsafe { libc::open(d.as_ptr(), libc::O_TMPFILE | libc::O_RDWR | extra, 0o600) };
    if fd < 0 {
        return Err(io_errno());
    }
    // SAFETY: `fd` is a fresh descriptor we own.
    Ok(unsafe { fs::File::from_raw_fd(fd) })
}

/// Gives an open tmpfile a name: linkat(fd, "", AT_FDCWD, to, AT_EMPTY_PATH).
fn link_fd(f: &fs::File, to: &Path) -> Result<(), i32> {
    let (e, t) = (cstr(""), cstr(to));
    // SAFETY: valid strings and descriptor.
    let r = unsafe {
        libc::linkat(
            f.as_raw_fd(),
            e.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    if r < 0 {
        Err(io_errno())
    } else {
        Ok(())
    }
}

fn tmpfile(dir: &Path) -> Result<fs::File, String> {
    open_tmpfile(dir, 0)
        .map_err(|e| format!("open({}, O_TMPFILE): {}", dir.display(), errno_name(e)))
}

fn names(dir: &Path) -> Result<Vec<String>, String> {
    let mut v = Vec::new();
    for e in ctx(fs::read_dir(dir), "readdir")? {
        v.push(
            ctx(e, "readdir")?
                .file_name()
                .to_string_lossy()
                .into_owned(),
        );
    }
    v.sort();
    Ok(v)
}

fn remount() -> TestResult {
    ctx(umount(MNT), "umount")?;
    fsck_clean(PMEM)?;
    ctx(mount(PMEM, MNT, "rdaxfs", ""), "mount")
}

/// features-tmpfile.
pub fn features_tmpfile() -> TestResult {
    let _fx = Fixture::new()?;
    fresh_mount()?;
    let mnt = Path::new(MNT);
    let (free0, ifree0) = free_counts(mnt)?;
    let names0 = names(mnt)?;

    // write/read/mmap, then close without a name: everything comes back.
    let len = 256 * BLOCK;
    {
        let f = tmpfile(mnt)?;
        let mut buf = vec![0u8; len];
        fill_pattern(&mut buf, 21, 0);
        ctx(f.write_all_at(&buf, 0), "write tmpfile")?;
        let mut back = vec![0u8; len];
        ctx(f.read_exact_at(&mut back, 0), "read tmpfile")?;
        ensure!(back == buf, "tmpfile reads back other data");
        let md = ctx(f.metadata(), "fstat tmpfile")?;
        ensure!(
            md.nlink() == 0 && md.len() == len as u64 && md.file_type().is_file(),
            "tmpfile fstat: nlink {} size {} mode {:o}",
            md.nlink(),
            md.len(),
            md.mode()
        );
        let map = ctx(Mapping::shared(f.as_raw_fd(), len), "mmap tmpfile")?;
        ensure!(
            map.get(len - 1) == buf[len - 1],
            "tmpfile mapping reads wrong"
        );
        map.set(5, 0xAB);
        ctx(map.sync(), "msync")?;
        let mut one = [0u8; 1];
        ctx(f.read_exact_at(&mut one, 5), "read")?;
        ensure!(one[0] == 0xAB, "store through the mapping not seen by read");
        let (free1, ifree1) = free_counts(mnt)?;
        ensure!(
            free1 + 256 <= free0 && ifree1 + 1 == ifree0,
            "tmpfile in use: free blocks {free0} -> {free1}, free inodes {ifree0} -> {ifree1}"
        );
        ensure!(
            names(mnt)? == names0,
            "tmpfile shows in readdir: {:?}",
            names(mnt)?
        );
        drop(map);
    }
    let (free2, ifree2) = free_counts(mnt)?;
    ensure!(
        (free2, ifree2) == (free0, ifree0),
        "closed tmpfile not freed: free blocks {free0} -> {free2}, inodes {ifree0} -> {ifree2}"
    );
    remount()?;
    ensure!(
        free_counts(mnt)? == (free0, ifree0),
        "after remount the counts changed"
    );

    // Link it into the namespace; it persists across unmount/mount.
    {
        let f = tmpfile(mnt)?;
        let mut buf = vec![0u8; 8 * BLOCK];
        fill_pattern(&mut buf, 22, 0);
        ctx(f.write_all_at(&buf, 0), "write")?;
        link_fd(&f, &mnt.join("named"))
            .map_err(|e| format!("linkat(AT_EMPTY_PATH) of a tmpfile: {}", errno_name(e)))?;
        let md = ctx(f.metadata(), "fstat")?;
        ensure!(md.nlink() == 1, "linked tmpfile nlink {}", md.nlink());
        // A second name works too.
        link_fd(&f, &mnt.join("named2"))
            .map_err(|e| format!("second linkat: {}", errno_name(e)))?;
        ctx(fs::remove_file(mnt.join("named2")), "unlink named2")?;
    }
    remount()?;
    let got = ctx(fs::read(mnt.join("named")), "read named after remount")?;
    let mut want = vec![0u8; 8 * BLOCK];
    fill_pattern(&mut want, 22, 0);
    ensure!(got == want, "linked tmpfile's data lost across remount");
    ensure!(
        names(mnt)? == ["named"],
        "namespace after remount: {:?}",
        names(mnt)?
    );

    // O_EXCL: never linkable.
    {
        let f = open_tmpfile(mnt, libc::O_EXCL)
            .map_err(|e| format!("O_TMPFILE|O_EXCL: {}", errno_name(e)))?;
        let r = link_fd(&f, &mnt.join("excl"));
        ensure!(
            r == Err(libc::ENOENT),
            "linkat of an O_EXCL tmpfile: {r:?}, expected ENOENT"
        );
    }

    // Many at once.
    let (free3, ifree3) = free_counts(mnt)?;
    {
        let mut v = Vec::new();
        for i in 0..300u64 {
            let f = tmpfile(mnt)?;
            ctx(f.write_all_at(&i.to_le_bytes(), i * 8), "write")?;
            v.push(f);
        }
        let (_, ifree4) = free_counts(mnt)?;
        ensure!(
            ifree4 + 300 == ifree3,
            "300 tmpfiles: free inodes {ifree3} -> {ifree4}"
        );
        for (i, f) in v.iter().enumerate().step_by(37) {
            link_fd(f, &mnt.join(format!("t{i}")))
                .map_err(|e| format!("linkat t{i}: {}", errno_name(e)))?;
        }
        for (i, f) in v.iter().enumerate() {
            let mut b = [0u8; 8];
            ctx(f.read_exact_at(&mut b, i as u64 * 8), "read")?;
            ensure!(
                u64::from_le_bytes(b) == i as u64,
                "tmpfile {i} data mixed up"
            );
        }
    }
    let (free5, ifree5) = free_counts(mnt)?;
    ensure!(
        ifree5 + 9 == ifree3 && free5 <= free3,
        "after closing 300 tmpfiles (9 linked): free inodes {ifree3} -> {ifree5}"
    );
    for i in (0..300).step_by(37) {
        ctx(fs::remove_file(mnt.join(format!("t{i}"))), "unlink")?;
    }

    // In a directory that is removed while the tmpfile is open.
    let dir = mnt.join("gone");
    ctx(fs::create_dir(&dir), "mkdir")?;
    {
        let f = tmpfile(&dir)?;
        ctx(fs::remove_dir(&dir), "rmdir with a tmpfile open in it")?;
        ctx(f.write_all_at(b"orphaned dir", 0), "write")?;
        let r = link_fd(&f, &dir.join("x"));
        ensure!(r == Err(libc::ENOENT), "link into removed dir: {r:?}");
        link_fd(&f, &mnt.join("rescued"))
            .map_err(|e| format!("linkat into root: {}", errno_name(e)))?;
    }
    remount()?;
    let got = ctx(fs::read(mnt.join("rescued")), "read rescued")?;
    ensure!(got == b"orphaned dir", "rescued tmpfile reads {got:?}");
    ctx(fs::remove_file(mnt.join("rescued")), "unlink")?;
    ctx(fs::remove_file(mnt.join("named")), "unlink")?;
    ctx(umount(MNT), "umount")?;
    fsck_clean(PMEM)?;
    ctx(mount(PMEM, MNT, "rdaxfs", ""), "mount")?;
    // Every inode back; blocks too, but for the root directory's own
    // entry blocks, which stay allocated once grown.
    let (free6, ifree6) = free_counts(mnt)?;
    ensure!(
        ifree6 == ifree0 && free6 + 2 >= free0,
        "space not all returned: free blocks {free0} -> {free6}, inodes {ifree0} -> {ifree6}"
    );
    ctx(umount(MNT), "umount")
}

fn is_whiteout(p: &Path) -> Result<bool, String> {
    let m = ctx(fs::symlink_metadata(p), p.display())?;
    Ok(m.file_type().is_char_device() && m.rdev() == 0)
}

/// features-whiteout.
pub fn features_whiteout() -> TestResult {
    let _fx = Fixture::new()?;
    fresh_mount()?;
    let mnt = Path::new(MNT);
    let p = |n: &str| mnt.join(n);
    let (_, ifree0) = free_counts(mnt)?;

    ctx(fs::write(p("a"), b"alpha"), "create a")?;
    renameat2(&p("a"), &p("b"), RENAME_WHITEOUT)
        .map_err(|e| format!("renameat2(a, b, RENAME_WHITEOUT): {e}"))?;
    ensure!(is_whiteout(&p("a"))?, "a is not a whiteout (chardev 0:0)");
    ensure!(ctx(fs::read(p("b")), "read b")? == b"alpha", "b content");
    let (_, ifree1) = free_counts(mnt)?;
    ensure!(
        ifree1 + 2 == ifree0,
        "whiteout inode not allocated: {ifree0} -> {ifree1}"
    );

    // Over an existing target: the victim is freed.
    ctx(fs::write(p("c"), b"charlie"), "c")?;
    ctx(fs::write(p("d"), b"delta"), "d")?;
    renameat2(&p("c"), &p("d"), RENAME_WHITEOUT).map_err(|e| format!("c -> d: {e}"))?;
    ensure!(is_whiteout(&p("c"))?, "c is not a whiteout");
    ensure!(ctx(fs::read(p("d")), "read d")? == b"charlie", "d content");

    // Directories, across directories (link counts stay right).
    ctx(fs::create_dir_all(p("d1/sub/deep")), "mkdir")?;
    ctx(fs::create_dir(p("d2")), "mkdir d2")?;
    ctx(fs::write(p("d1/f"), b"f"), "d1/f")?;
    renameat2(&p("d1/f"), &p("d2/g"), RENAME_WHITEOUT).map_err(|e| format!("d1/f: {e}"))?;
    renameat2(&p("d1/sub"), &p("d2/sub"), RENAME_WHITEOUT).map_err(|e| format!("d1/sub: {e}"))?;
    ensure!(
        is_whiteout(&p("d1/f"))? && is_whiteout(&p("d1/sub"))?,
        "d1 whiteouts"
    );
    let nl = |q: &str| fs::metadata(p(q)).map(|m| m.nlink()).unwrap_or(0);
    ensure!(
        nl("d1") == 2 && nl("d2") == 3 && nl("d2/sub") == 3,
        "link counts d1 {} d2 {} d2/sub {}",
        nl("d1"),
        nl("d2"),
        nl("d2/sub")
    );
    ensure!(
        fs::metadata(p("d2/sub/deep")).is_ok(),
        "moved directory lost its child"
    );

    // Flag combinations the VFS and rdaxfs refuse.
    ctx(fs::write(p("e"), b"e"), "e")?;
    let r = renameat2(&p("e"), &p("d"), RENAME_WHITEOUT | RENAME_NOREPLACE);
    expect_errno(r, libc::EEXIST, "WHITEOUT|NOREPLACE onto an existing name")?;
    let r = renameat2(&p("e"), &p("d"), RENAME_WHITEOUT | RENAME_EXCHANGE);
    expect_errno(r, libc::EINVAL, "WHITEOUT|EXCHANGE")?;
    renameat2(&p("e"), &p("e2"), RENAME_WHITEOUT | RENAME_NOREPLACE)
        .map_err(|e| format!("WHITEOUT|NOREPLACE to a new name: {e}"))?;
    ensure!(is_whiteout(&p("e"))?, "e is not a whiteout");

    // Whiteouts persist, and are plain names to unlink.
    remount()?;
    for w in ["a", "c", "e", "d1/f", "d1/sub"] {
        ensure!(is_whiteout(&p(w))?, "{w} is not a whiteout after remount");
    }
    ensure!(
        ctx(fs::read(p("d2/g")), "read")? == b"f",
        "d2/g content after remount"
    );
    for w in ["a", "c", "e", "d1/f", "d1/sub"] {
        ctx(fs::remove_file(p(w)), format!("unlink whiteout {w}"))?;
    }
    ctx(fs::remove_dir(p("d1")), "rmdir d1 (whiteouts gone)")?;
    ctx(umount(MNT), "umount")?;
    fsck_clean(PMEM)
}

/// `f_fsid` as the kernel's `u64_to_fsid` built it.
fn fsid_of(s: &libc::statfs) -> u64 {
    // SAFETY: `fsid_t` is two C ints.
    let v: [i32; 2] = unsafe { std::mem::transmute(s.f_fsid) };
    u64::from(v[0] as u32) | (u64::from(v[1] as u32) << 32)
}

/// features-statfs.
pub fn features_statfs() -> TestResult {
    let _fx = Fixture::new()?;
    fresh_mount()?;
    let s = statfs(MNT)?;
    let sb = dev_read_block(PMEM, 0)?;
    let sb =
        rdaxfs_format::Superblock::decode(&sb).map_err(|e| format!("superblock decode: {e:?}"))?;
    let u = sb.uuid;
    let lo = u64::from_le_bytes(u[..8].try_into().unwrap());
    let hi = u64::from_le_bytes(u[8..].try_into().unwrap());
    let fsid = lo ^ hi;
    let got = fsid_of(&s);
    let mut bad = Vec::new();
    // f_type is u64 on musl, i64 on glibc.
    #[allow(clippy::unnecessary_cast)]
    let f_type = s.f_type as u64;
    if f_type != u64::from(rdaxfs_format::SB_MAGIC) {
        bad.push(format!("f_type {:#x}", s.f_type));
    }
    if got != fsid || got == 0 {
        bad.push(format!(
            "f_fsid {got:#x}, expected {fsid:#x} (uuid halves xored)"
        ));
    }
    if s.f_namelen as usize != rdaxfs_format::NAME_MAX {
        bad.push(format!("f_namelen {}", s.f_namelen));
    }
    if s.f_bsize != 4096 || s.f_frsize != 4096 {
        bad.push(format!("f_bsize {} f_frsize {}", s.f_bsize, s.f_frsize));
    }
    if s.f_blocks == 0 || s.f_bfree > s.f_blocks || s.f_bavail != s.f_bfree {
        bad.push(format!(
            "blocks {} bfree {} bavail {}",
            s.f_blocks, s.f_bfree, s.f_bavail
        ));
    }
    let line = mount_entry(MNT).unwrap_or_default();
    if !line.contains("dax=always") || !line.contains("errors=") || !line.contains("rw") {
        bad.push(format!("/proc/mounts: {line}"));
    }
    // Remount with another errors= mode: /proc/mounts follows.
    let d = cstr(MNT);
    let o = cstr("errors=remount-ro");
    let t = cstr("rdaxfs");
    let src = cstr(PMEM);
    // SAFETY: valid strings.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            d.as_ptr(),
            t.as_ptr(),
            libc::MS_REMOUNT | libc::MS_RDONLY,
            o.as_ptr().cast(),
        )
    };
    if r != 0 {
        bad.push(format!("remount ro: {}", errno_name(io_errno())));
    }
    let line = mount_entry(MNT).unwrap_or_default();
    if !line.contains("errors=remount-ro") || !line.contains(" ro,") {
        bad.push(format!("/proc/mounts after remount: {line}"));
    }
    let s2 = statfs(MNT)?;
    // SAFETY: as above.
    let got2: [i32; 2] = unsafe { std::mem::transmute(s2.f_fsid) };
    if got2 != unsafe { std::mem::transmute::<libc::fsid_t, [i32; 2]>(s.f_fsid) } {
        bad.push("f_fsid changed across remount".to_string());
    }
    println!(
        "statfs: type {:#x} fsid {got:#x} namelen {} bsize {}; {line}",
        s.f_type, s.f_namelen, s.f_bsize
    );
    ensure!(bad.is_empty(), "statfs/show_options: {bad:?}");
    ctx(umount(MNT), "umount")
}
