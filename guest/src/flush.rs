//! flush: fsync, fdatasync, msync, syncfs and unmount must flush the pmem
//! device (a REQ_PREFLUSH bio, which the pmem driver turns into
//! nvdimm_flush: write-pending-queue flush hints, virtio-pmem's host
//! flush).
//!
//! What is counted is the block layer's own record of the flush: the
//! `block:block_bio_complete` trace event for pmem0 with the PREFLUSH flag
//! (rwbs starting with `F`) and no error. The block layer traces a bio's
//! completion only once it was queued to the driver (past
//! submit_bio_noacct's filter, which drops flushes to a device without a
//! write cache), so every such event is a flush pmem_submit_bio handled,
//! on 6.12 and on 7.3 alike. (The disk statistics are no such record: 7.3's
//! pmem_submit_bio accounts only bios that carry data, so an empty flush
//! bio leaves /sys/block/pmem0/stat unchanged there; they are printed for
//! information.)

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use crate::ensure;
use crate::util::*;

const TRACEFS: &str = "/sys/kernel/tracing";

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

/// The block_bio_complete event, enabled while it lives, on pmem0.
struct BioTrace {
    /// "major,minor" of pmem0 as the event prints it.
    dev: String,
}

impl BioTrace {
    fn start() -> Result<Self, String> {
        if !std::path::Path::new(&format!("{TRACEFS}/events")).exists() {
            ctx(
                mount("tracefs", TRACEFS, "tracefs", ""),
                format!("mount tracefs on {TRACEFS} (the guest kernel needs CONFIG_TRACING)"),
            )?;
        }
        let dev = ctx(
            fs::read_to_string("/sys/block/pmem0/dev"),
            "/sys/block/pmem0/dev",
        )?
        .trim()
        .replace(':', ",");
        let t = BioTrace { dev };
        t.write("events/enable", "0")?;
        t.write("events/block/block_bio_complete/enable", "1")?;
        t.write("tracing_on", "1")?;
        Ok(t)
    }

    fn write(&self, file: &str, what: &str) -> TestResult {
        ctx(
            fs::write(format!("{TRACEFS}/{file}"), what),
            format!("write {what:?} to {TRACEFS}/{file}"),
        )
    }

    /// Empties the trace buffer.
    fn clear(&self) -> TestResult {
        self.write("trace", "")
    }

    /// Completed, error-free PREFLUSH bios on pmem0 since the last clear.
    fn flushes(&self) -> Result<u64, String> {
        let s = ctx(
            fs::read_to_string(format!("{TRACEFS}/trace")),
            format!("{TRACEFS}/trace"),
        )?;
        // "... block_bio_complete: 259,0 FWS 0 + 0 [0]"
        let n = s
            .lines()
            .filter_map(|l| l.split_once("block_bio_complete: ").map(|(_, r)| r))
            .filter(|r| {
                let f: Vec<&str> = r.split_whitespace().collect();
                f.len() >= 6 && f[0] == self.dev && f[1].starts_with('F') && f[5] == "[0]"
            })
            .count();
        Ok(n as u64)
    }
}

impl Drop for BioTrace {
    fn drop(&mut self) {
        let _ = self.write("events/block/block_bio_complete/enable", "0");
        let _ = self.clear();
    }
}

pub fn flush() -> TestResult {
    let _fx = Fixture::new()?;
    // pmem is bio-based and counts I/O only with iostats on.
    let _ = fs::write("/sys/block/pmem0/queue/iostats", "1");
    fresh_mount()?;
    let trace = BioTrace::start()?;
    let p = format!("{MNT}/f");
    let f = create_rw(std::path::Path::new(&p))?;
    ctx(f.write_all_at(&vec![3u8; 64 << 10], 0), "write")?;

    let mut fails = Vec::new();
    let mut step = |what: &str, op: &dyn Fn() -> Result<(), String>| -> TestResult {
        trace.clear()?;
        let before = write_ios()?;
        op()?;
        let stat = write_ios()? - before;
        let n = trace.flushes()?;
        println!(
            "flush: {what}: {n} flush bio(s) completed by pmem0 (disk stat write ios +{stat})"
        );
        if n == 0 {
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
    drop(trace);
    ensure!(fails.is_empty(), "{}", fails.join("; "));
    Ok(())
}
