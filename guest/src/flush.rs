//! flush: fsync, fdatasync, msync, syncfs and unmount must flush the pmem
//! device (a REQ_PREFLUSH bio, which the pmem driver turns into
//! nvdimm_flush: write-pending-queue flush hints, virtio-pmem's host
//! flush). rdaxfs itself never sends a bio (its I/O is DAX), so every
//! write request the block layer counts for pmem0 while the test runs is
//! such a flush.

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use crate::ensure;
use crate::util::*;

/// Write requests completed on pmem0 (field 5 of /sys/block/pmem0/stat).
fn write_ios() -> Result<u64, String> {
    let s = ctx(
        fs::read_to_string("/sys/block/pmem0/stat"),
        "/sys/block/pmem0/stat",
    )?;
    s.split_whitespace()
        .nth(4)
        .and_then(|v| v.parse().ok())
        .ok_or(format!("cannot parse /sys/block/pmem0/stat: {s:?}"))
}

pub fn flush() -> TestResult {
    let _fx = Fixture::new()?;
    // pmem is bio-based and counts I/O only with iostats on.
    let _ = fs::write("/sys/block/pmem0/queue/iostats", "1");
    fresh_mount()?;
    let p = format!("{MNT}/f");
    let f = create_rw(std::path::Path::new(&p))?;
    ctx(f.write_all_at(&vec![3u8; 64 << 10], 0), "write")?;

    let mut fails = Vec::new();
    let mut step = |what: &str, op: &dyn Fn() -> Result<(), String>| -> TestResult {
        let before = write_ios()?;
        op()?;
        let after = write_ios()?;
        println!("flush: {what}: {} flush request(s)", after - before);
        if after == before {
            fails.push(format!("{what} sent no flush to the device"));
        }
        Ok(())
    };
    step("fsync", &|| ctx(f.sync_all(), "fsync"))?;
    step("fdatasync", &|| ctx(f.sync_data(), "fdatasync"))?;
    step("msync(MS_SYNC)", &|| {
        let m = ctx(Mapping::shared(f.as_raw_fd(), 64 << 10), "mmap")?;
        m.set(5, 9);
        ctx(m.sync(), "msync")
    })?;
    step("syncfs", &|| {
        // SAFETY: plain syscall on an open descriptor.
        let r = unsafe { libc::syncfs(f.as_raw_fd()) };
        ensure!(r == 0, "syncfs: {}", std::io::Error::last_os_error());
        Ok(())
    })?;
    drop(f);
    step("umount", &|| ctx(umount(MNT), "umount"))?;
    ensure!(fails.is_empty(), "{}", fails.join("; "));
    Ok(())
}
