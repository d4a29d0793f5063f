//! `export`: writes the tree of `export.rs` and unmounts cleanly, for the
//! host to verify from the NVDIMM backing file after the guest stops.

use crate::export;
use crate::util::*;
use std::fs::{self, File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::Path;

fn write_mmap(path: &Path, data: &[u8]) -> TestResult {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.set_len(data.len() as u64)
        .map_err(|e| format!("ftruncate: {e}"))?;
    // SAFETY: a fresh shared mapping of `data.len()` bytes of an open file.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            data.len(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(format!(
            "mmap {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: `p` maps `data.len()` writable bytes; msync/munmap on it.
    unsafe {
        std::ptr::copy_nonoverlapping(data.as_ptr(), p.cast::<u8>(), data.len());
        let r = libc::msync(p, data.len(), libc::MS_SYNC);
        libc::munmap(p, data.len());
        if r != 0 {
            return Err(format!("msync: {}", std::io::Error::last_os_error()));
        }
    }
    f.sync_all().map_err(|e| format!("fsync: {e}"))
}

/// Writes the export tree on a fresh filesystem and unmounts it.
pub fn export() -> TestResult {
    load_module(&[])?;
    run("/bin/mkfs.rdaxfs", &[PMEM, "--force"])?;
    mount(PMEM, MNT, "rdaxfs", "").map_err(|e| format!("mount: {e}"))?;
    let root = Path::new(MNT);
    let mut bytes = 0;
    for i in 0..export::FILES {
        let p = root.join(export::path(i));
        fs::create_dir_all(p.parent().expect("has a parent")).map_err(|e| format!("mkdir: {e}"))?;
        let data = export::content(i);
        if export::via_mmap(i) {
            write_mmap(&p, &data)?;
        } else {
            fs::write(&p, &data).map_err(|e| format!("{}: {e}", p.display()))?;
            File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(|e| format!("fsync: {e}"))?;
        }
        bytes += data.len();
    }
    umount(MNT).map_err(|e| format!("umount: {e}"))?;
    println!(
        "export: {} files, {bytes} bytes written, unmounted",
        export::FILES
    );
    Ok(())
}
