//! `export`: writes the tree of `export.rs` and unmounts cleanly, for the
//! host to verify from the NVDIMM backing file after the guest stops.

use crate::export;
use crate::util::*;
use std::fs::{self, File};
use std::os::unix::io::AsRawFd;
use std::path::Path;

fn write_mmap(path: &Path, data: &[u8]) -> TestResult {
    let f = create_rw(path)?;
    ctx(f.set_len(data.len() as u64), "ftruncate")?;
    let m = ctx(Mapping::shared(f.as_raw_fd(), data.len()), "mmap")?;
    // SAFETY: `m` maps `data.len()` writable bytes that nothing else aliases.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), m.ptr, data.len()) };
    ctx(m.sync(), "msync")?;
    drop(m);
    ctx(f.sync_all(), "fsync")
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
