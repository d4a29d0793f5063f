//! Module load/unload and filesystem registration.

use crate::ensure;
use crate::util::*;

/// insmod registers `rdaxfs` in /proc/filesystems; rmmod removes it.
pub fn module_load() -> TestResult {
    unload_module()?;
    ensure!(!fs_registered("rdaxfs"), "rdaxfs registered before insmod");
    load_module(&[])?;
    ensure!(
        fs_registered("rdaxfs"),
        "rdaxfs not in /proc/filesystems after insmod"
    );
    println!("insmod: rdaxfs listed in /proc/filesystems");
    unload_module()?;
    ensure!(
        !fs_registered("rdaxfs"),
        "rdaxfs still registered after rmmod"
    );
    println!("rmmod: rdaxfs gone from /proc/filesystems");
    // A second cycle catches state left behind by the first.
    load_module(&[])?;
    ensure!(
        fs_registered("rdaxfs"),
        "second insmod did not register rdaxfs"
    );
    unload_module()?;
    ensure!(
        !fs_registered("rdaxfs"),
        "second rmmod left rdaxfs registered"
    );
    Ok(())
}

/// The pmem device the guest booted with is an fsdax device.
pub fn pmem_present() -> TestResult {
    let meta = std::fs::metadata(PMEM).map_err(|e| format!("{PMEM}: {e}"))?;
    use std::os::unix::fs::FileTypeExt;
    ensure!(
        meta.file_type().is_block_device(),
        "{PMEM} is not a block device"
    );
    let dax = std::fs::read_to_string("/sys/block/pmem0/queue/dax").unwrap_or_default();
    ensure!(
        dax.trim() == "1",
        "/sys/block/pmem0/queue/dax is {:?}, want 1",
        dax.trim()
    );
    let size: u64 = std::fs::read_to_string("/sys/block/pmem0/size")
        .map_err(|e| e.to_string())?
        .trim()
        .parse()
        .map_err(|e| format!("size: {e}"))?;
    println!("{PMEM}: {} MiB, dax=1", size * 512 >> 20);
    Ok(())
}
