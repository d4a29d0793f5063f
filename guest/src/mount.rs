//! mount-basic: mkfs, mount, the mount options shown, statfs, a file.

use std::fs;
use std::os::unix::fs::FileExt;

use crate::ensure;
use crate::util::*;

/// mkfs + mount shows `rdaxfs ... dax=always`, statfs is sane, a file
/// written can be read back, umount works.
pub fn mount_basic() -> TestResult {
    let _fx = Fixture::new()?;
    fresh_mount()?;
    let entry = mount_entry(MNT).ok_or(format!("{MNT} not in /proc/mounts after mount"))?;
    let fields: Vec<&str> = entry.split_whitespace().collect();
    ensure!(
        fields.len() >= 4 && fields[0] == PMEM && fields[2] == "rdaxfs",
        "/proc/mounts line {entry:?}: expected `{PMEM} {MNT} rdaxfs ...`"
    );
    ensure!(
        fields[3].split(',').any(|o| o == "dax=always"),
        "mount options {:?} do not include dax=always",
        fields[3]
    );

    let st = statfs(MNT)?;
    let dev_bytes = fs::read_to_string("/sys/block/pmem0/size")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(|sectors| sectors * 512)
        .ok_or("cannot read /sys/block/pmem0/size")?;
    let dev_blocks = dev_bytes / BLOCK as u64;
    ensure!(st.f_bsize == 4096, "f_bsize {} expected 4096", st.f_bsize);
    ensure!(
        st.f_blocks > 0 && st.f_blocks <= dev_blocks,
        "f_blocks {} expected 1..={dev_blocks} (device size)",
        st.f_blocks
    );
    // Metadata of an empty fs is far below half of 512 MiB.
    ensure!(
        st.f_bfree > st.f_blocks / 2 && st.f_bfree <= st.f_blocks,
        "f_bfree {} of f_blocks {}: expected most blocks free on a fresh fs",
        st.f_bfree,
        st.f_blocks
    );
    ensure!(
        st.f_bavail <= st.f_bfree,
        "f_bavail {} > f_bfree {}",
        st.f_bavail,
        st.f_bfree
    );
    ensure!(
        st.f_files >= 16 && st.f_ffree < st.f_files && st.f_ffree + 8 >= st.f_files,
        "f_files {} f_ffree {}: expected all but the root (and a few) inodes free",
        st.f_files,
        st.f_ffree
    );
    ensure!(
        st.f_namelen == 255,
        "f_namelen {} expected 255",
        st.f_namelen
    );

    // A file spanning a block boundary, read back through a new open.
    let path = format!("{MNT}/hello");
    let mut data = vec![0u8; 3 * BLOCK + 123];
    fill_pattern(&mut data, 1, 0);
    {
        let f = ctx(fs::File::create(&path), &path)?;
        ctx(f.write_all_at(&data, 0), "write")?;
        ctx(f.sync_all(), "fsync")?;
    }
    let back = ctx(fs::read(&path), &path)?;
    ensure!(
        back.len() == data.len(),
        "read {} bytes back, expected {}",
        back.len(),
        data.len()
    );
    if let Some(e) = check_pattern(&back, 1, 0) {
        return Err(format!("{path}: {e}"));
    }
    let after = statfs(MNT)?;
    ensure!(
        after.f_bfree + 4 <= st.f_bfree,
        "f_bfree went from {} to {} after writing 4 blocks",
        st.f_bfree,
        after.f_bfree
    );
    ensure!(
        after.f_ffree < st.f_ffree,
        "f_ffree went from {} to {} after creating a file",
        st.f_ffree,
        after.f_ffree
    );
    ctx(umount(MNT), format!("umount {MNT}"))?;
    ensure!(
        mount_entry(MNT).is_none(),
        "{MNT} still mounted after umount"
    );
    println!(
        "mount-basic: opts {}, bsize {}, blocks {} free {} files {} ffree {}, file of {} bytes ok",
        fields[3],
        st.f_bsize,
        st.f_blocks,
        st.f_bfree,
        st.f_files,
        st.f_ffree,
        data.len()
    );
    Ok(())
}
