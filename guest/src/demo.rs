//! `make run`: shows rdaxfs working, step by step, on the guest's pmem.

use crate::util::*;
use std::fs;

fn show(cmd: &str, args: &[&str]) -> TestResult {
    println!("\n# {cmd} {}", args.join(" "));
    print!("{}", run(cmd, args)?);
    Ok(())
}

/// mkfs, mount, files through write(2) and mmap, stats, counters, fsck.
pub fn demo() -> TestResult {
    show("insmod", &[MODULE])?;
    show("/bin/mkfs.rdaxfs", &[PMEM, "--force", "--label", "demo"])?;
    show("mount", &["-t", "rdaxfs", PMEM, MNT])?;
    show("grep", &["rdaxfs", "/proc/mounts"])?;
    fs::create_dir_all("/mnt/docs").map_err(|e| e.to_string())?;
    fs::write("/mnt/docs/hello.txt", b"hello from persistent memory\n")
        .map_err(|e| e.to_string())?;
    show(
        "dd",
        &["if=/dev/urandom", "of=/mnt/random.bin", "bs=1M", "count=8"],
    )?;
    show("ln", &["-s", "docs/hello.txt", "/mnt/link"])?;
    show("ls", &["-lR", MNT])?;
    show("cat", &["/mnt/link"])?;
    show("df", &["-h", MNT])?;
    println!("\n# per-mount counters (/sys/kernel/debug/rdaxfs/pmem0)");
    for c in [
        "blocks_allocated",
        "bytes_zeroed",
        "pte_faults",
        "pmd_faults",
        "pmd_fallbacks",
        "layout_waits",
    ] {
        let v =
            fs::read_to_string(format!("/sys/kernel/debug/rdaxfs/pmem0/{c}")).unwrap_or_default();
        println!("{c:>18}: {}", v.trim());
    }
    show("umount", &[MNT])?;
    show("/bin/fsck.rdaxfs", &["-n", PMEM])?;
    show("mount", &["-t", "rdaxfs", PMEM, MNT])?;
    show("cat", &["/mnt/docs/hello.txt"])?;
    show("umount", &[MNT])?;
    println!("\nrdaxfs demo done: the data survived unmount and fsck is clean.");
    Ok(())
}
