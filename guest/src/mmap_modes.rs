//! `mmap-modes`: MAP_SYNC and MAP_PRIVATE on rdaxfs.
//!
//! MAP_SYNC (with MAP_SHARED_VALIDATE) must be accepted on rdaxfs (a write
//! fault makes the block's metadata durable before the page is mapped) and
//! refused on a filesystem without DAX; stores through it are file data.
//! MAP_PRIVATE stores are copy-on-write: the file never sees them.

use crate::ensure;
use crate::util::*;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;

const LEN: usize = 1 << 20;
// Not in every libc crate release for musl; values from the kernel uapi.
const MAP_SHARED_VALIDATE: libc::c_int = 0x03;
const MAP_SYNC: libc::c_int = 0x80000;

fn map(fd: libc::c_int, flags: libc::c_int) -> Result<*mut u8, i32> {
    // SAFETY: a fresh mapping chosen by the kernel.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            LEN,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            fd,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(p.cast())
    }
}

fn unmap(p: *mut u8) {
    // SAFETY: `p` is a mapping of LEN bytes made by `map`.
    unsafe { libc::munmap(p.cast(), LEN) };
}

fn store(p: *mut u8, off: usize, v: u8) {
    assert!(off < LEN);
    // SAFETY: in bounds of a live writable mapping.
    unsafe { p.add(off).write_volatile(v) };
}

/// MAP_SYNC accepted on rdaxfs and refused on tmpfs; MAP_PRIVATE is COW.
pub fn mmap_modes() -> TestResult {
    let _fx = Fixture::new()?;
    fresh_mount()?;
    let f = create_rw(std::path::Path::new("/mnt/m"))?;
    ctx(f.set_len(LEN as u64), "ftruncate")?;
    let fd = f.as_raw_fd();

    let p = map(fd, MAP_SHARED_VALIDATE | MAP_SYNC)
        .map_err(|e| format!("MAP_SYNC on rdaxfs refused: {}", errno_name(e)))?;
    for i in 0..LEN / 4096 {
        store(p, i * 4096 + 7, (i % 250) as u8 + 1);
    }
    unmap(p);
    let mut b = [0u8; 1];
    for i in [0usize, 1, 100, 255] {
        ctx(f.read_exact_at(&mut b, (i * 4096 + 7) as u64), "pread")?;
        ensure!(
            b[0] == (i % 250) as u8 + 1,
            "MAP_SYNC store to page {i} not in the file: {}",
            b[0]
        );
    }

    let p = map(fd, libc::MAP_PRIVATE).map_err(|e| format!("MAP_PRIVATE: {}", errno_name(e)))?;
    store(p, 7, 0xee);
    store(p, 8 * 4096, 0xee);
    // SAFETY: in bounds of the live mapping.
    let seen = unsafe { p.add(7).read_volatile() };
    unmap(p);
    ensure!(seen == 0xee, "private store not visible in its own mapping");
    ctx(f.read_exact_at(&mut b, 7), "pread")?;
    ensure!(
        b[0] == 1,
        "MAP_PRIVATE store reached the file: byte 7 is {:#x}",
        b[0]
    );
    ctx(f.read_exact_at(&mut b, 8 * 4096), "pread")?;
    ensure!(
        b[0] == 0,
        "MAP_PRIVATE store reached the file: byte 32768 is {:#x}",
        b[0]
    );
    drop(f);

    // Without DAX the flag must be refused (the kernel validates it).
    let t = create_rw(std::path::Path::new("/tmp/nodax"))?;
    ctx(t.set_len(LEN as u64), "ftruncate tmpfs")?;
    match map(t.as_raw_fd(), MAP_SHARED_VALIDATE | MAP_SYNC) {
        Ok(p) => {
            unmap(p);
            return Err("MAP_SYNC accepted on tmpfs: the check proves nothing".into());
        }
        Err(e) => ensure!(
            e == libc::EOPNOTSUPP,
            "MAP_SYNC on tmpfs: {} (want EOPNOTSUPP)",
            errno_name(e)
        ),
    }
    let _ = std::fs::remove_file("/tmp/nodax");
    println!("mmap-modes: MAP_SYNC stores are file data; MAP_PRIVATE stores stay private; MAP_SYNC refused without DAX");
    Ok(())
}
