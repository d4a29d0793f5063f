//! Helpers shared by the guest tests: module loading, mkfs, mount, checks.

use std::ffi::CString;
use std::fs;
use std::io;
use std::process::Command;

/// Result of a test step: `Err` carries what went wrong.
pub type TestResult = Result<(), String>;

/// Where the initramfs puts the module.
pub const MODULE: &str = "/lib/rdaxfs.ko";
/// The fsdax pmem device.
pub const PMEM: &str = "/dev/pmem0";
/// Default mount point.
pub const MNT: &str = "/mnt";

/// Fails with `msg` unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!("{}:{}: {}", file!(), line!(), format!($($fmt)+)));
        }
    };
}

/// Runs a command, returning its stdout; fails with stderr if it fails.
pub fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command and returns its exit code without failing.
#[allow(dead_code)] // a general helper no current test needs
pub fn run_status(cmd: &str, args: &[&str]) -> i32 {
    Command::new(cmd)
        .args(args)
        .status()
        .map(|s| s.code().unwrap_or(-1))
        .unwrap_or(-1)
}

/// True if `name` is listed in /proc/filesystems.
pub fn fs_registered(name: &str) -> bool {
    fs::read_to_string("/proc/filesystems")
        .map(|s| s.lines().any(|l| l.split_whitespace().last() == Some(name)))
        .unwrap_or(false)
}

/// True if the rdaxfs module is loaded.
pub fn module_loaded() -> bool {
    fs::read_to_string("/proc/modules")
        .map(|s| s.lines().any(|l| l.starts_with("rdaxfs ")))
        .unwrap_or(false)
}

/// Loads the module (with `params`) unless it is loaded.
pub fn load_module(params: &[&str]) -> TestResult {
    if module_loaded() {
        return Ok(());
    }
    let mut args = vec![MODULE];
    args.extend_from_slice(params);
    run("insmod", &args).map(|_| ())
}

/// Unloads the module if it is loaded.
pub fn unload_module() -> TestResult {
    if !module_loaded() {
        return Ok(());
    }
    run("rmmod", &["rdaxfs"]).map(|_| ())
}

/// Sets a module parameter (a test-only switch) at run time.
pub fn set_param(name: &str, value: &str) -> TestResult {
    fs::write(format!("/sys/module/rdaxfs/parameters/{name}"), value)
        .map_err(|e| format!("set parameter {name}={value}: {e}"))
}

/// mount(2); returns the errno on failure.
pub fn mount(dev: &str, dir: &str, fstype: &str, opts: &str) -> Result<(), io::Error> {
    let c = |s: &str| CString::new(s).expect("no NUL in path");
    let (d, m, t, o) = (c(dev), c(dir), c(fstype), c(opts));
    // SAFETY: all pointers are valid NUL-terminated strings for the call.
    let r = unsafe { libc::mount(d.as_ptr(), m.as_ptr(), t.as_ptr(), 0, o.as_ptr().cast()) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// umount(2).
pub fn umount(dir: &str) -> Result<(), io::Error> {
    let d = CString::new(dir).expect("no NUL in path");
    // SAFETY: `d` is a valid NUL-terminated string.
    if unsafe { libc::umount(d.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Last `n` lines of the kernel log.
pub fn dmesg_tail(n: usize) -> String {
    let all = run("dmesg", &[]).unwrap_or_default();
    let lines: Vec<&str> = all.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// mkfs.rdaxfs in the guest.
pub const MKFS: &str = "/bin/mkfs.rdaxfs";
/// fsck.rdaxfs in the guest.
pub const FSCK: &str = "/bin/fsck.rdaxfs";
/// Block size of rdaxfs.
pub const BLOCK: usize = 4096;

/// `path` as a C string (paths in tests never contain NUL).
pub fn cstr<P: AsRef<std::path::Path>>(path: P) -> CString {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_ref().as_os_str().as_bytes()).expect("no NUL in path")
}

/// Name of an errno value, for messages.
pub fn errno_name(e: i32) -> String {
    let name = match e {
        0 => "success",
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EUCLEAN => "EUCLEAN",
        _ => return format!("errno {e}"),
    };
    name.to_string()
}

/// Fails unless `res` is an error with `want` as its errno.
pub fn expect_errno<T>(res: io::Result<T>, want: i32, what: &str) -> TestResult {
    match res {
        Ok(_) => Err(format!("{what}: succeeded, expected {}", errno_name(want))),
        Err(e) if e.raw_os_error() == Some(want) => Ok(()),
        Err(e) => Err(format!(
            "{what}: failed with {} ({e}), expected {}",
            errno_name(e.raw_os_error().unwrap_or(0)),
            errno_name(want)
        )),
    }
}

/// Turns a libc return value (`-1` = failure) into an `io::Result`.
pub fn check_rc(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Adds `what` to an I/O error.
pub fn ctx<T>(res: io::Result<T>, what: impl std::fmt::Display) -> Result<T, String> {
    res.map_err(|e| format!("{what}: {e}"))
}

/// statfs(2) of `path`.
pub fn statfs<P: AsRef<std::path::Path>>(path: P) -> Result<libc::statfs, String> {
    let c = cstr(path.as_ref());
    // SAFETY: zeroed statfs is a valid out-buffer; `c` is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(format!(
            "statfs {}: {}",
            path.as_ref().display(),
            io::Error::last_os_error()
        ));
    }
    Ok(st)
}

/// Free blocks and free inodes reported by statfs.
pub fn free_counts<P: AsRef<std::path::Path>>(path: P) -> Result<(u64, u64), String> {
    let st = statfs(path)?;
    Ok((st.f_bfree, st.f_ffree))
}

/// Runs a command and returns its exit code (-1 if killed or not started)
/// and its combined stdout and stderr.
pub fn run_output(cmd: &str, args: &[&str]) -> (i32, String) {
    match Command::new(cmd).args(args).output() {
        Ok(out) => (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ),
        Err(e) => (-1, format!("{cmd}: {e}")),
    }
}

/// mkfs.rdaxfs `dev` --force `extra...`.
pub fn mkfs(dev: &str, extra: &[&str]) -> TestResult {
    let mut args = vec![dev, "--force"];
    args.extend_from_slice(extra);
    run(tool(MKFS), &args).map(|_| ())
}

/// `path` if it exists, else its cargo-built twin (`mkfs-rdaxfs` for
/// `mkfs.rdaxfs`) if that exists, else `path` (to fail with its name).
fn tool(path: &'static str) -> &'static str {
    if std::path::Path::new(path).exists() {
        return path;
    }
    match path {
        MKFS if std::path::Path::new("/bin/mkfs-rdaxfs").exists() => "/bin/mkfs-rdaxfs",
        FSCK if std::path::Path::new("/bin/fsck-rdaxfs").exists() => "/bin/fsck-rdaxfs",
        _ => path,
    }
}

/// Runs fsck.rdaxfs `args... dev`; returns exit code and output.
pub fn fsck(dev: &str, args: &[&str]) -> (i32, String) {
    let mut a = args.to_vec();
    a.push(dev);
    run_output(tool(FSCK), &a)
}

/// Fails unless `fsck.rdaxfs -n dev` exits 0.
pub fn fsck_clean(dev: &str) -> TestResult {
    let (code, out) = fsck(dev, &["-n"]);
    if code != 0 {
        return Err(format!(
            "fsck.rdaxfs -n {dev} exited {code}, expected 0 (clean):\n{out}"
        ));
    }
    println!("fsck.rdaxfs -n {dev}: clean");
    Ok(())
}

/// The /proc/mounts line for mount point `dir`, if mounted.
pub fn mount_entry(dir: &str) -> Option<String> {
    let all = fs::read_to_string("/proc/mounts").ok()?;
    all.lines()
        .rfind(|l| l.split_whitespace().nth(1) == Some(dir))
        .map(str::to_string)
}

/// Unmounts `dir` while anything is mounted there; a busy mount is
/// detached lazily so the next test starts clean.
pub fn umount_all(dir: &str) {
    for _ in 0..8 {
        if mount_entry(dir).is_none() {
            return;
        }
        if let Err(e) = umount(dir) {
            eprintln!("cleanup: umount {dir}: {e}; detaching");
            let d = cstr(dir);
            // SAFETY: `d` is a valid NUL-terminated string.
            unsafe { libc::umount2(d.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Formats PMEM and mounts it on MNT as rdaxfs.
pub fn fresh_mount() -> TestResult {
    umount_all(MNT);
    mkfs(PMEM, &[])?;
    mount(PMEM, MNT, "rdaxfs", "").map_err(|e| format!("mount -t rdaxfs {PMEM} {MNT}: {e}"))
}

/// Per-test environment: loads the module, and on drop undoes what the
/// test did (unmounts MNT, resets parameters it set, unloads the module if
/// it was not loaded before), also when the test fails half-way.
pub struct Fixture {
    was_loaded: bool,
    params: Vec<String>,
}

impl Fixture {
    /// Loads the module (recording whether it was loaded already).
    pub fn new() -> Result<Self, String> {
        let was_loaded = module_loaded();
        load_module(&[])?;
        Ok(Self {
            was_loaded,
            params: Vec::new(),
        })
    }

    /// Sets a module parameter; it is reset to 0 when the fixture drops.
    pub fn set_param(&mut self, name: &str, value: &str) -> TestResult {
        if !self.params.iter().any(|p| p == name) {
            self.params.push(name.to_string());
        }
        set_param(name, value)
    }

    /// Resets every parameter set through the fixture to 0.
    pub fn reset_params(&mut self) -> TestResult {
        let mut res = Ok(());
        for p in self.params.drain(..) {
            if let Err(e) = set_param(&p, "0") {
                res = Err(e);
            }
        }
        res
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        umount_all(MNT);
        umount_all("/mnt2");
        if let Err(e) = self.reset_params() {
            eprintln!("cleanup: {e}");
        }
        if !self.was_loaded {
            if let Err(e) = unload_module() {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// Deterministic test data: byte `off` of stream `seed`. Never the same
/// for neighbouring streams at the same offset.
pub fn pattern_byte(seed: u64, off: u64) -> u8 {
    let x = off
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(seed.wrapping_mul(0xD1B5_4A32_D192_ED03));
    ((x >> 56) as u8) ^ (off as u8) ^ (seed as u8).rotate_left(3)
}

/// Fills `buf` with stream `seed` starting at file offset `off`.
pub fn fill_pattern(buf: &mut [u8], seed: u64, off: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(seed, off + i as u64);
    }
}

/// First offset where `buf` (read at file offset `off`) differs from
/// stream `seed`, as a message.
pub fn check_pattern(buf: &[u8], seed: u64, off: u64) -> Option<String> {
    buf.iter().enumerate().find_map(|(i, &b)| {
        let want = pattern_byte(seed, off + i as u64);
        (b != want).then(|| {
            format!(
                "byte at offset {} is {b:#04x}, expected {want:#04x}",
                off + i as u64
            )
        })
    })
}

/// CRC-32C (Castagnoli), bitwise; used to re-seal patched superblocks.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// Writes a marker to the kernel log; [`dmesg_since`] returns what follows.
pub fn dmesg_mark(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let mark = format!(
        "guest-test mark {tag} {}",
        N.fetch_add(1, Ordering::Relaxed)
    );
    if let Err(e) = fs::write("/dev/kmsg", format!("{mark}\n")) {
        eprintln!("/dev/kmsg: {e}");
    }
    mark
}

/// Kernel log lines after the marker `mark` (the whole log if the marker
/// scrolled away).
pub fn dmesg_since(mark: &str) -> Vec<String> {
    let all = run("dmesg", &[]).unwrap_or_default();
    let lines: Vec<&str> = all.lines().collect();
    let start = lines
        .iter()
        .rposition(|l| l.contains(mark))
        .map_or(0, |i| i + 1);
    lines[start..].iter().map(|s| s.to_string()).collect()
}

/// Fails if the kernel log lines contain an oops, BUG or warning.
pub fn no_oops(lines: &[String]) -> TestResult {
    const BAD: &[&str] = &[
        "Oops",
        "BUG:",
        "kernel BUG",
        "WARNING:",
        "Call Trace",
        "general protection",
        "rust_panic",
        "panicked",
    ];
    match lines.iter().find(|l| BAD.iter().any(|b| l.contains(b))) {
        Some(l) => Err(format!("kernel log shows a problem: {l}")),
        None => Ok(()),
    }
}

/// A field of /proc/meminfo, in KiB.
pub fn meminfo_kib(field: &str) -> Option<u64> {
    let all = fs::read_to_string("/proc/meminfo").ok()?;
    all.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Opens `path` with raw `open(2)` flags and mode.
pub fn open_raw<P: AsRef<std::path::Path>>(
    path: P,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<fs::File> {
    use std::os::fd::FromRawFd;
    let c = cstr(path.as_ref());
    // SAFETY: `c` is NUL-terminated; the returned fd is owned by the File.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            flags | libc::O_CLOEXEC,
            libc::c_uint::from(mode),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { fs::File::from_raw_fd(fd) })
}

/// utimensat(2): sets atime and mtime of `p` to (seconds, nanoseconds).
pub fn set_times(p: &std::path::Path, atime: (i64, i64), mtime: (i64, i64)) -> io::Result<()> {
    let c = cstr(p);
    let ts = [
        libc::timespec {
            tv_sec: atime.0,
            tv_nsec: atime.1,
        },
        libc::timespec {
            tv_sec: mtime.0,
            tv_nsec: mtime.1,
        },
    ];
    // SAFETY: a valid path and two timespecs.
    let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ts.as_ptr(), 0) };
    check_rc(r.into()).map(|_| ())
}

/// A 4 KiB-aligned heap buffer for O_DIRECT.
pub struct Aligned {
    ptr: *mut u8,
    len: usize,
}

impl Aligned {
    /// A zeroed buffer of `len` bytes aligned to 4 KiB.
    pub fn new(len: usize) -> Self {
        let layout = std::alloc::Layout::from_size_align(len, BLOCK).expect("layout");
        // SAFETY: non-zero size layout.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory");
        Self { ptr, len }
    }
    /// The buffer.
    pub fn buf(&mut self) -> &mut [u8] {
        // SAFETY: an allocation of `len` bytes this value owns.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.len, BLOCK).expect("layout");
        // SAFETY: allocated above with this layout.
        unsafe { std::alloc::dealloc(self.ptr, layout) };
    }
}

/// A shared mapping of a file, unmapped on drop.
pub struct Mapping {
    /// Start of the mapping.
    pub ptr: *mut u8,
    /// Length in bytes.
    pub len: usize,
}

impl Mapping {
    /// mmap(MAP_SHARED, PROT_READ|PROT_WRITE) of `len` bytes of `fd` at 0.
    pub fn shared(fd: libc::c_int, len: usize) -> io::Result<Self> {
        // SAFETY: a fresh mapping chosen by the kernel; no aliasing.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { ptr: p.cast(), len })
    }

    /// Reads byte `i` of the mapping (volatile: the file can change it).
    pub fn get(&self, i: usize) -> u8 {
        assert!(i < self.len);
        // SAFETY: in bounds of a live mapping.
        unsafe { self.ptr.add(i).read_volatile() }
    }

    /// Stores `v` at byte `i` of the mapping.
    pub fn set(&self, i: usize, v: u8) {
        assert!(i < self.len);
        // SAFETY: in bounds of a live, writable mapping.
        unsafe { self.ptr.add(i).write_volatile(v) }
    }

    /// msync(MS_SYNC) of the whole mapping.
    pub fn sync(&self) -> io::Result<()> {
        // SAFETY: the range is exactly this mapping.
        let r = unsafe { libc::msync(self.ptr.cast(), self.len, libc::MS_SYNC) };
        check_rc(r.into()).map(|_| ())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping this value owns.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Forks; the child runs `f` and exits with its return value. Returns the
/// raw wait status. `f` must only make async-signal-safe calls (the parent
/// may have other threads).
pub fn fork_wait(f: impl FnOnce() -> i32) -> Result<libc::c_int, String> {
    // SAFETY: the child only runs `f` (async-signal-safe by contract) and
    // then `_exit`s.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", io::Error::last_os_error()));
    }
    if pid == 0 {
        let code = f();
        // SAFETY: leaving the child without running parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        return Err(format!("waitpid: {}", io::Error::last_os_error()));
    }
    Ok(status)
}

/// Describes a wait status.
pub fn describe_status(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("wait status {status:#x}")
    }
}

/// Reads block `block` of device `dev` with O_DIRECT (bypassing the
/// block device's page cache, which the filesystem does not keep
/// coherent when it writes through DAX).
pub fn dev_read_block(dev: &str, block: u64) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::FileExt;
    let f = ctx(open_raw(dev, libc::O_RDONLY | libc::O_DIRECT, 0), dev)?;
    let mut a = Aligned::new(BLOCK);
    ctx(
        f.read_exact_at(a.buf(), block * BLOCK as u64),
        format!("read block {block} of {dev}"),
    )?;
    Ok(a.buf().to_vec())
}

/// Writes block `block` of device `dev` with O_DIRECT and fsyncs.
pub fn dev_write_block(dev: &str, block: u64, data: &[u8]) -> TestResult {
    use std::os::unix::fs::FileExt;
    let f = ctx(open_raw(dev, libc::O_RDWR | libc::O_DIRECT, 0), dev)?;
    let mut a = Aligned::new(BLOCK);
    a.buf().copy_from_slice(data);
    ctx(
        f.write_all_at(a.buf(), block * BLOCK as u64),
        format!("write block {block} of {dev}"),
    )?;
    ctx(f.sync_all(), format!("fsync {dev}"))
}

/// Kernel log lines after `mark` that show a warning, BUG or oops (see
/// [`no_oops`] for the patterns), all of them.
pub fn kernel_problems(mark: &str) -> Vec<String> {
    problem_lines(&dmesg_since(mark))
}

/// The lines of `lines` that show a warning, BUG or oops.
pub fn problem_lines(lines: &[String]) -> Vec<String> {
    const BAD: &[&str] = &[
        "Oops",
        "BUG:",
        "kernel BUG",
        "WARNING:",
        "Call Trace",
        "general protection",
        "rust_panic",
        "panicked",
    ];
    lines
        .iter()
        .filter(|l| BAD.iter().any(|b| l.contains(b)))
        .cloned()
        .collect()
}

/// rdaxfs per-mount counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Data blocks allocated.
    pub blocks_allocated: u64,
    /// Bytes zeroed in new blocks.
    pub bytes_zeroed: u64,
    /// PTE faults.
    pub pte_faults: u64,
    /// PMD faults that mapped 2 MiB.
    pub pmd_faults: u64,
    /// PMD faults that fell back to PTEs.
    pub pmd_fallbacks: u64,
    /// Break-layouts waits on pinned pages.
    pub layout_waits: u64,
}

impl Counters {
    /// The live counters of the mount of `dev` (e.g. "pmem0") from
    /// debugfs, if the module exports them there.
    pub fn debugfs(dev: &str) -> Option<Self> {
        let dir = format!("/sys/kernel/debug/rdaxfs/{dev}");
        let get = |n: &str| -> Option<u64> {
            fs::read_to_string(format!("{dir}/{n}"))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        Some(Self {
            blocks_allocated: get("blocks_allocated")?,
            bytes_zeroed: get("bytes_zeroed")?,
            pte_faults: get("pte_faults")?,
            pmd_faults: get("pmd_faults")?,
            pmd_fallbacks: get("pmd_fallbacks")?,
            layout_waits: get("layout_waits")?,
        })
    }

    /// Parses rdaxfs's unmount line for `dev`: "DEV: unmounted; blocks
    /// allocated N, bytes zeroed N, pte faults N, pmd faults N (N
    /// fallbacks), layout waits N", then the journal's "transactions N (N
    /// bytes logged)" (not kept here).
    pub fn parse_unmount(line: &str, dev: &str) -> Option<Self> {
        let key = format!("{dev}: unmounted;");
        let rest = &line[line.find(&key)? + key.len()..];
        let nums: Vec<u64> = rest
            .split(|c: char| !c.is_ascii_digit())
            .filter(|t| !t.is_empty())
            .filter_map(|t| t.parse().ok())
            .collect();
        let [blocks_allocated, bytes_zeroed, pte_faults, pmd_faults, pmd_fallbacks, layout_waits, ..] =
            nums[..]
        else {
            return None;
        };
        Some(Self {
            blocks_allocated,
            bytes_zeroed,
            pte_faults,
            pmd_faults,
            pmd_fallbacks,
            layout_waits,
        })
    }

    /// `self - before`, counter by counter (saturating).
    pub fn since(&self, before: &Self) -> Self {
        Self {
            blocks_allocated: self
                .blocks_allocated
                .saturating_sub(before.blocks_allocated),
            bytes_zeroed: self.bytes_zeroed.saturating_sub(before.bytes_zeroed),
            pte_faults: self.pte_faults.saturating_sub(before.pte_faults),
            pmd_faults: self.pmd_faults.saturating_sub(before.pmd_faults),
            pmd_fallbacks: self.pmd_fallbacks.saturating_sub(before.pmd_fallbacks),
            layout_waits: self.layout_waits.saturating_sub(before.layout_waits),
        }
    }
}

/// Unmounts `dir` (rdaxfs on `dev`, e.g. "pmem0") and returns the
/// counters of that whole mount: from the unmount line in the kernel log,
/// else from debugfs as read just before the unmount.
pub fn umount_counters(dir: &str, dev: &str) -> Result<Counters, String> {
    let live = Counters::debugfs(dev);
    let mark = dmesg_mark("umount-counters");
    ctx(umount(dir), format!("umount {dir}"))?;
    let lines = dmesg_since(&mark);
    if let Some(c) = lines
        .iter()
        .rev()
        .find_map(|l| Counters::parse_unmount(l, dev))
    {
        return Ok(c);
    }
    live.ok_or_else(|| {
        format!("no rdaxfs counters: no \"{dev}: unmounted; ...\" line after umount and no /sys/kernel/debug/rdaxfs/{dev}")
    })
}

/// Live counters if debugfs has them, else `None` (callers fall back to
/// [`umount_counters`]).
pub fn counters_now(dev: &str) -> Option<Counters> {
    Counters::debugfs(dev)
}

/// Integer environment variable, or `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Small deterministic PRNG (xorshift64*), for reproducible random tests.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `[0, n)` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// Uniform in `[lo, hi]`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

/// A seed from the clock and pid, for tests that print the seed they use.
pub fn clock_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 32)
}

/// 2 MiB: the PMD size on x86-64.
pub const PMD: usize = 2 << 20;

impl Mapping {
    /// mmap(MAP_SHARED, PROT_READ|PROT_WRITE) of `len` bytes of `fd` at
    /// file offset 0, at a virtual address aligned to `align` (a power of
    /// two), so that PMD faults are possible.
    pub fn shared_aligned(fd: libc::c_int, len: usize, align: usize) -> io::Result<Self> {
        let span = len + align;
        // SAFETY: reserving fresh address space the kernel chooses.
        let res = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                span,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if res == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = res as usize;
        let start = (base + align - 1) & !(align - 1);
        // SAFETY: [start, start + len) lies inside our own reservation.
        let p = unsafe {
            libc::mmap(
                start as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            // SAFETY: unmapping our own reservation.
            unsafe { libc::munmap(res, span) };
            return Err(e);
        }
        // SAFETY: trimming the unused head and tail of our reservation.
        unsafe {
            if start > base {
                libc::munmap(res, start - base);
            }
            let end = start + len;
            if base + span > end {
                libc::munmap(end as *mut libc::c_void, base + span - end);
            }
        }
        Ok(Self {
            ptr: start as *mut u8,
            len,
        })
    }

    /// Copies `data` into the mapping at byte `off`.
    pub fn write_at(&self, off: usize, data: &[u8]) {
        assert!(off + data.len() <= self.len);
        // SAFETY: in bounds of a live, writable mapping.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(off), data.len()) }
    }

    /// Copies bytes of the mapping at `off` into `out`.
    pub fn read_at(&self, off: usize, out: &mut [u8]) {
        assert!(off + out.len() <= self.len);
        // SAFETY: in bounds of a live mapping.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(off), out.as_mut_ptr(), out.len()) }
    }
}

/// The slow-DMA block device (null_blk with timer completion).
pub const NULLB: &str = "/dev/nullb0";

/// Opens /dev/nullb0 for O_DIRECT reads; fails clearly if the guest
/// kernel has no null_blk device.
pub fn nullb_open() -> Result<fs::File, String> {
    if !std::path::Path::new("/sys/block/nullb0").exists() {
        return Err(
            "/sys/block/nullb0 missing: the guest kernel needs CONFIG_BLK_DEV_NULL_BLK=y and \
             null_blk.irqmode=2 null_blk.completion_nsec=200000000 null_blk.nr_devices=1 on its \
             command line"
                .into(),
        );
    }
    ctx(open_raw(NULLB, libc::O_RDONLY | libc::O_DIRECT, 0), NULLB)
}

/// One O_DIRECT read of `len` bytes at device offset `off` from `fd`
/// (/dev/nullb0) into `dst`: the pages of `dst` stay pinned until the
/// device completes. `dst` may be a mapping of an rdaxfs file whose
/// blocks go away meanwhile, so the call reports the errno (EFAULT) instead
/// of asserting. Returns bytes read or the errno.
pub fn nullb_pread(fd: libc::c_int, dst: *mut u8, len: usize, off: u64) -> Result<usize, i32> {
    // SAFETY: the kernel validates `dst` (a bad address gives EFAULT);
    // callers pass memory that is mapped or was mapped by them.
    let n = unsafe { libc::pread(fd, dst.cast(), len, off as libc::off_t) };
    if n < 0 {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(n as usize)
    }
}

/// fallocate(2) on `fd`; returns the errno on failure.
pub fn fallocate(fd: libc::c_int, mode: libc::c_int, off: u64, len: u64) -> Result<(), i32> {
    // SAFETY: plain syscall on a descriptor.
    let r = unsafe { libc::fallocate(fd, mode, off as libc::off_t, len as libc::off_t) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// ftruncate(2) on `fd`; returns the errno on failure.
pub fn ftruncate(fd: libc::c_int, size: u64) -> Result<(), i32> {
    // SAFETY: plain syscall on a descriptor.
    if unsafe { libc::ftruncate(fd, size as libc::off_t) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// Minor plus major page faults of this process so far.
pub fn page_faults() -> u64 {
    // SAFETY: zeroed rusage is a valid out-buffer.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    (ru.ru_minflt + ru.ru_majflt) as u64
}

/// A scratch directory for host tests, removed on drop.
#[cfg(test)]
pub struct TempDir(pub std::path::PathBuf);

#[cfg(test)]
impl TempDir {
    /// Creates a fresh directory under the system temp dir.
    pub fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "rdaxfs-guest-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("create temp dir");
        Self(p)
    }
}

#[cfg(test)]
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Creates (or truncates) `p` and opens it for reading and writing.
pub fn create_rw(p: &std::path::Path) -> Result<std::fs::File, String> {
    ctx(
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(p),
        p.display(),
    )
}

/// renameat2(2) with `flags` (RENAME_NOREPLACE, RENAME_EXCHANGE, ...).
pub fn renameat2(
    from: &std::path::Path,
    to: &std::path::Path,
    flags: libc::c_uint,
) -> io::Result<()> {
    let (a, b) = (cstr(from), cstr(to));
    // SAFETY: valid NUL-terminated paths relative to AT_FDCWD.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            flags,
        )
    };
    check_rc(r).map(|_| ())
}

/// One step of a [`run_steps`] test.
pub type StepFn = fn() -> TestResult;

/// A test made of independent steps: runs every step (unmounting MNT
/// after each), prints `TEST: step: ok|FAILED: why`, and fails naming
/// every step that failed.
pub fn run_steps(test: &str, steps: &[(&str, StepFn)]) -> TestResult {
    let mut fails = Vec::new();
    for (name, step) in steps {
        match step() {
            Ok(()) => println!("{test}: {name}: ok"),
            Err(e) => {
                println!("{test}: {name}: FAILED: {e}");
                fails.push(format!("{name}: {e}"));
            }
        }
        umount_all(MNT);
    }
    if fails.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{} step(s) failed:\n{}",
        fails.len(),
        fails.join("\n")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_reference() {
        // The standard check value of CRC-32C.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn unmount_line_parses() {
        let l = "[   12.345678] rdaxfs: pmem0: unmounted; blocks allocated 10, bytes zeroed 40960, pte faults 3, pmd faults 4 (5 fallbacks), layout waits 6, transactions 7 (8 bytes logged)";
        let c = Counters::parse_unmount(l, "pmem0").unwrap();
        assert_eq!(
            c,
            Counters {
                blocks_allocated: 10,
                bytes_zeroed: 40960,
                pte_faults: 3,
                pmd_faults: 4,
                pmd_fallbacks: 5,
                layout_waits: 6
            }
        );
        assert!(Counters::parse_unmount(l, "pmem1").is_none());
        assert!(
            Counters::parse_unmount("rdaxfs: pmem0: unmounted; blocks allocated 1", "pmem0")
                .is_none()
        );
        assert!(problem_lines(&[l.to_string()]).is_empty());
        let w =
            "[    1.0] WARNING: CPU: 1 PID: 7 at fs/dax.c:390 dax_disassociate_entry".to_string();
        assert_eq!(problem_lines(&[l.to_string(), w.clone()]), vec![w]);
    }

    #[test]
    fn aligned_mapping_is_aligned() {
        let t = TempDir::new("align");
        let p = t.0.join("f");
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        f.set_len(3 * PMD as u64).unwrap();
        use std::os::fd::AsRawFd;
        let m = Mapping::shared_aligned(f.as_raw_fd(), 3 * PMD, PMD).unwrap();
        assert_eq!(m.ptr as usize % PMD, 0);
        m.write_at(PMD + 5, b"abc");
        let mut b = [0u8; 3];
        m.read_at(PMD + 5, &mut b);
        assert_eq!(&b, b"abc");
    }

    #[test]
    fn rng_is_deterministic() {
        let (mut a, mut b) = (Rng::new(5), Rng::new(5));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut r = Rng::new(1);
        assert!((0..1000).all(|_| (3..=7).contains(&r.range(3, 7))));
    }

    #[test]
    fn pattern_round_trip() {
        let mut buf = vec![0u8; 5000];
        fill_pattern(&mut buf, 7, 123);
        assert!(check_pattern(&buf, 7, 123).is_none());
        assert!(check_pattern(&buf, 8, 123).is_some());
        buf[4999] ^= 1;
        assert!(check_pattern(&buf, 7, 123).unwrap().contains("5122"));
    }
}
