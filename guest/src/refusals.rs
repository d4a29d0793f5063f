//! refusals: what rdaxfs must refuse to mount (a device without DAX, a
//! corrupt superblock, an unknown format version), rmmod while mounted,
//! and no memory growth over many mount/umount cycles.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;

use crate::ensure;
use crate::util::*;

/// Superblock field offsets (format/src/layout/superblock.rs).
const SB_MAGIC: u32 = 0x5841_4452;
const OFF_VERSION: usize = 4;
const OFF_BLOCK_COUNT: usize = 72;
/// The checksum is CRC-32C of bytes 0..508, stored at 508.
const SB_CRC_OFF: usize = 508;

const LOOP_CTL_GET_FREE: libc::Ioctl = 0x4C82;
const LOOP_SET_FD: libc::Ioctl = 0x4C00;
const LOOP_CLR_FD: libc::Ioctl = 0x4C01;

pub fn refusals() -> TestResult {
    let _fx = Fixture::new()?;
    non_dax()?;
    corrupt_superblock()?;
    bad_version()?;
    rmmod_while_mounted()?;
    mount_cycles()
}

/// A loop device over a file in /tmp (tmpfs), detached on drop.
struct LoopDev {
    path: String,
    dev: Option<fs::File>,
    image: String,
}

impl LoopDev {
    fn new(bytes: u64) -> Result<Self, String> {
        let image = "/tmp/rdaxfs-nodax.img".to_string();
        let backing = ctx(
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&image),
            &image,
        )?;
        ctx(backing.set_len(bytes), "size loop image")?;
        let ctl = ctx(fs::File::open("/dev/loop-control"), "/dev/loop-control")?;
        // SAFETY: LOOP_CTL_GET_FREE takes no argument.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE) };
        ensure!(n >= 0, "LOOP_CTL_GET_FREE: {}", io::Error::last_os_error());
        let path = format!("/dev/loop{n}");
        let mut dev = None;
        for _ in 0..50 {
            match fs::OpenOptions::new().read(true).write(true).open(&path) {
                Ok(f) => {
                    dev = Some(f);
                    break;
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
        let dev = dev.ok_or(format!("{path} did not appear"))?;
        // SAFETY: LOOP_SET_FD takes the backing file descriptor.
        let r = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_SET_FD, backing.as_raw_fd()) };
        ensure!(r == 0, "LOOP_SET_FD {path}: {}", io::Error::last_os_error());
        Ok(Self {
            path,
            dev: Some(dev),
            image,
        })
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        if let Some(d) = self.dev.take() {
            // SAFETY: LOOP_CLR_FD takes no argument.
            unsafe { libc::ioctl(d.as_raw_fd(), LOOP_CLR_FD, 0) };
        }
        let _ = fs::remove_file(&self.image);
    }
}

/// Tries to mount `dev` on MNT; it must fail, leave a kernel message
/// containing every word of `words` (case-insensitive, one line), and no
/// oops. Returns the errno.
fn expect_refused(dev: &str, what: &str, words: &[&str]) -> Result<i32, String> {
    let mark = dmesg_mark(what);
    let res = mount(dev, MNT, "rdaxfs", "");
    let lines = dmesg_since(&mark);
    if res.is_ok() {
        umount_all(MNT);
        return Err(format!(
            "{what}: mount -t rdaxfs {dev} succeeded, expected a refusal"
        ));
    }
    let e = res.err().and_then(|e| e.raw_os_error()).unwrap_or(0);
    ensure!(
        mount_entry(MNT).is_none(),
        "{what}: {MNT} mounted after a failed mount"
    );
    no_oops(&lines).map_err(|m| format!("{what}: {m}"))?;
    let hit = lines.iter().find(|l| {
        let l = l.to_lowercase();
        words.iter().all(|w| l.contains(&w.to_lowercase()))
    });
    match hit {
        Some(l) => {
            println!("refusals: {what}: mount failed with {} and logged: {}", errno_name(e), l.trim());
            Ok(e)
        }
        None => Err(format!(
            "{what}: mount failed with {} but no kernel message mentions {words:?}; log since the attempt:\n{}",
            errno_name(e),
            lines.join("\n")
        )),
    }
}

/// A block device without DAX support is refused, with a message.
fn non_dax() -> TestResult {
    // A loop device (never DAX) big enough for mkfs; /dev/ram0 (4 MiB by
    // default, below mkfs's 16 MiB minimum) only if loop is unavailable.
    let lo = LoopDev::new(32 << 20);
    let dev = match &lo {
        Ok(l) => l.path.clone(),
        Err(e) if fs::metadata("/dev/ram0").is_ok() => {
            println!("refusals: no loop device ({e}); using /dev/ram0");
            "/dev/ram0".to_string()
        }
        Err(e) => return Err(format!("no non-DAX block device: {e}")),
    };
    let dax = fs::read_to_string(format!("/sys/block/{}/queue/dax", &dev[5..])).unwrap_or_default();
    ensure!(dax.trim() != "1", "{dev} claims DAX support");
    // With a valid rdaxfs on it the only reason to refuse is the device.
    match mkfs(&dev, &[]) {
        Ok(()) => println!("refusals: mkfs.rdaxfs on non-DAX {dev} ok"),
        Err(e) => println!("refusals: mkfs.rdaxfs on {dev} failed ({e}); mounting it anyway"),
    }
    expect_refused(&dev, "non-DAX device", &["rdaxfs", "dax"])?;
    drop(lo);
    Ok(())
}

fn le_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn le_u64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// Reads the primary superblock after mkfs and checks our idea of its
/// layout (magic, checksum); returns it and the backup's block number.
fn fresh_superblock() -> Result<(Vec<u8>, u64), String> {
    mkfs(PMEM, &[])?;
    let b = dev_read_block(PMEM, 0)?;
    ensure!(
        le_u32(&b, 0) == SB_MAGIC,
        "block 0 magic {:#x}, expected {SB_MAGIC:#x}",
        le_u32(&b, 0)
    );
    ensure!(
        crc32c(&b[..SB_CRC_OFF]) == le_u32(&b, SB_CRC_OFF),
        "superblock checksum {:#x} is not CRC-32C of bytes 0..{SB_CRC_OFF} ({:#x}): layout changed?",
        le_u32(&b, SB_CRC_OFF),
        crc32c(&b[..SB_CRC_OFF])
    );
    let count = le_u64(&b, OFF_BLOCK_COUNT);
    ensure!(count > 1, "superblock block_count {count}");
    Ok((b, count - 1))
}

/// Garbage over the superblock's first 64 bytes.
fn garbage(b: &mut [u8]) {
    for (i, v) in b[..64].iter_mut().enumerate() {
        *v = (i as u8).wrapping_mul(37) ^ 0xA5;
    }
}

fn corrupt_superblock() -> TestResult {
    // Primary only: the format keeps a backup in the last block. Refusing
    // or mounting from the backup are both acceptable; if it mounts, the
    // filesystem must be the intact one.
    let (mut b, backup) = fresh_superblock()?;
    garbage(&mut b);
    dev_write_block(PMEM, 0, &b)?;
    let mark = dmesg_mark("corrupt-primary");
    match mount(PMEM, MNT, "rdaxfs", "") {
        Ok(()) => {
            let lines = dmesg_since(&mark);
            no_oops(&lines)?;
            let names = ctx(fs::read_dir(MNT), "readdir after backup mount")?.count();
            let st = statfs(MNT)?;
            ctx(umount(MNT), "umount")?;
            ensure!(
                st.f_blocks > 0 && st.f_bfree > st.f_blocks / 2,
                "mounted from backup but statfs is off: {} blocks, {} free",
                st.f_blocks,
                st.f_bfree
            );
            println!(
                "refusals: primary superblock corrupt: mounted using the backup ({names} entries in root)"
            );
        }
        Err(e) => {
            let lines = dmesg_since(&mark);
            no_oops(&lines)?;
            ensure!(
                lines.iter().any(|l| l.to_lowercase().contains("rdaxfs")),
                "corrupt primary refused ({e}) without a kernel message naming rdaxfs:\n{}",
                lines.join("\n")
            );
            println!("refusals: primary superblock corrupt: refused ({e})");
        }
    }
    // Both copies corrupt: must be refused.
    let (mut b, backup2) = fresh_superblock()?;
    ensure!(backup == backup2, "backup block moved between mkfs runs");
    garbage(&mut b);
    dev_write_block(PMEM, 0, &b)?;
    let mut bb = dev_read_block(PMEM, backup)?;
    garbage(&mut bb);
    dev_write_block(PMEM, backup, &bb)?;
    expect_refused(PMEM, "both superblocks corrupt", &["rdaxfs"])?;
    Ok(())
}

/// Sets the version of the superblock in `b` and reseals its checksum.
fn patch_version(b: &mut [u8], version: u32) {
    b[OFF_VERSION..OFF_VERSION + 4].copy_from_slice(&version.to_le_bytes());
    let crc = crc32c(&b[..SB_CRC_OFF]);
    b[SB_CRC_OFF..SB_CRC_OFF + 4].copy_from_slice(&crc.to_le_bytes());
}

fn bad_version() -> TestResult {
    let (mut b, backup) = fresh_superblock()?;
    let v = le_u32(&b, OFF_VERSION);
    ensure!(v == 1, "mkfs wrote format version {v}, expected 1");
    // Both copies say version 2 with valid checksums, so no fallback helps.
    patch_version(&mut b, 2);
    dev_write_block(PMEM, 0, &b)?;
    let mut bb = dev_read_block(PMEM, backup)?;
    if le_u32(&bb, 0) == SB_MAGIC {
        patch_version(&mut bb, 2);
        dev_write_block(PMEM, backup, &bb)?;
    }
    expect_refused(PMEM, "format version 2", &["rdaxfs"])?;
    Ok(())
}

fn delete_module(name: &str) -> io::Result<()> {
    let c = cstr(name);
    // SAFETY: a valid module name; O_NONBLOCK as rmmod passes it.
    let r = unsafe { libc::syscall(libc::SYS_delete_module, c.as_ptr(), libc::O_NONBLOCK) };
    check_rc(r).map(|_| ())
}

fn rmmod_while_mounted() -> TestResult {
    fresh_mount()?;
    match delete_module("rdaxfs") {
        Ok(()) => {
            return Err("rmmod rdaxfs succeeded while mounted".into());
        }
        // The kernel answers EWOULDBLOCK (== EAGAIN) for a module in use
        // with O_NONBLOCK; EBUSY is accepted too.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EAGAIN)) => {
            println!(
                "refusals: rmmod while mounted: {}",
                errno_name(e.raw_os_error().unwrap_or(0))
            );
        }
        Err(e) => {
            return Err(format!(
                "rmmod while mounted failed with {e}, expected EBUSY/EAGAIN"
            ))
        }
    }
    ensure!(module_loaded(), "module gone after a refused rmmod");
    ctx(
        fs::write(format!("{MNT}/alive"), b"yes"),
        "write after refused rmmod",
    )?;
    ensure!(
        ctx(fs::read(format!("{MNT}/alive")), "read")? == b"yes",
        "fs broken after refused rmmod"
    );
    ctx(umount(MNT), "umount")?;
    ctx(delete_module("rdaxfs"), "rmmod after umount")?;
    ensure!(!module_loaded(), "module still listed after rmmod");
    ensure!(
        !fs_registered("rdaxfs"),
        "rdaxfs still registered after rmmod"
    );
    load_module(&[])
}

fn mount_cycles() -> TestResult {
    const CYCLES: usize = 100;
    mkfs(PMEM, &[])?;
    let cycle = |i: usize| -> TestResult {
        ctx(mount(PMEM, MNT, "rdaxfs", ""), format!("mount cycle {i}"))?;
        statfs(MNT)?;
        ctx(umount(MNT), format!("umount cycle {i}"))
    };
    for i in 0..5 {
        cycle(i)?;
    }
    let drop_caches = || {
        let _ = fs::write("/proc/sys/vm/drop_caches", "3");
    };
    drop_caches();
    let free0 = meminfo_kib("MemFree").ok_or("no MemFree in /proc/meminfo")?;
    let slab0 = meminfo_kib("Slab").unwrap_or(0);
    let unrec0 = meminfo_kib("SUnreclaim").unwrap_or(0);
    let t0 = std::time::Instant::now();
    for i in 0..CYCLES {
        cycle(i)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    drop_caches();
    let free1 = meminfo_kib("MemFree").ok_or("no MemFree")?;
    let slab1 = meminfo_kib("Slab").unwrap_or(0);
    let unrec1 = meminfo_kib("SUnreclaim").unwrap_or(0);
    println!(
        "refusals: {CYCLES} mount/umount cycles in {secs:.1}s: MemFree {free0} -> {free1} KiB, Slab {slab0} -> {slab1} KiB, SUnreclaim {unrec0} -> {unrec1} KiB"
    );
    let limit = 8 * 1024;
    ensure!(
        free1 + limit >= free0,
        "MemFree dropped by {} KiB over {CYCLES} mount cycles (limit {limit} KiB)",
        free0 - free1
    );
    ensure!(
        unrec1 <= unrec0 + limit,
        "unreclaimable slab grew by {} KiB over {CYCLES} mount cycles",
        unrec1 - unrec0
    );
    ensure!(mount_entry(MNT).is_none(), "{MNT} left mounted");
    // The fs is still fine after the cycles.
    fsck_clean(PMEM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superblock_patch_keeps_checksum_valid() {
        let mut b = vec![0u8; BLOCK];
        b[..4].copy_from_slice(&SB_MAGIC.to_le_bytes());
        patch_version(&mut b, 1);
        assert_eq!(crc32c(&b[..SB_CRC_OFF]), le_u32(&b, SB_CRC_OFF));
        patch_version(&mut b, 2);
        assert_eq!(le_u32(&b, OFF_VERSION), 2);
        assert_eq!(crc32c(&b[..SB_CRC_OFF]), le_u32(&b, SB_CRC_OFF));
        garbage(&mut b);
        assert_ne!(le_u32(&b, 0), SB_MAGIC);
    }

    /// Needs root and /dev/loop-control: the loop device used as the
    /// non-DAX target attaches, is not DAX, and takes O_DIRECT block I/O.
    #[test]
    #[ignore = "needs root and loop devices"]
    fn loop_device_round_trip() {
        let lo = LoopDev::new(32 << 20).unwrap();
        let dax = fs::read_to_string(format!("/sys/block/{}/queue/dax", &lo.path[5..]))
            .unwrap_or_default();
        assert_ne!(dax.trim(), "1");
        let mut b = vec![0u8; BLOCK];
        garbage(&mut b);
        dev_write_block(&lo.path, 3, &b).unwrap();
        assert_eq!(dev_read_block(&lo.path, 3).unwrap(), b);
        let path = lo.path.clone();
        drop(lo);
        assert_eq!(
            fs::read_to_string(format!("/sys/block/{}/size", &path[5..]))
                .unwrap()
                .trim(),
            "0"
        );
    }
}
