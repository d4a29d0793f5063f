//! remount: `mount -o remount` runs the checks and state changes of mount
//! and unmount. ro->rw refuses unknown read-only-compatible features,
//! marks the filesystem in use and reclaims orphans; rw->ro records a
//! clean state; `errors=` can be changed; bad options are refused.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

use rdaxfs_format::{Superblock, STATE_CLEAN, STATE_DIRTY};

use crate::ensure;
use crate::util::*;

pub fn remount() -> TestResult {
    let _fx = Fixture::new()?;
    run_steps(
        "remount",
        &[
            ("state", state_on_remount),
            ("ro-compat", ro_compat_refused),
            ("orphans", orphans_reclaimed),
            ("open-orphan", open_orphan_kept),
            ("options", options_on_remount),
        ],
    )
}

/// mount(2) with MS_REMOUNT (plus MS_RDONLY for `ro`) and `data`.
pub fn remount_with(ro: bool, data: &str) -> io::Result<()> {
    let (d, m, t, o) = (cstr(PMEM), cstr(MNT), cstr("rdaxfs"), cstr(data));
    let flags = libc::MS_REMOUNT | if ro { libc::MS_RDONLY } else { 0 };
    // SAFETY: valid NUL-terminated strings for the call.
    let r = unsafe { libc::mount(d.as_ptr(), m.as_ptr(), t.as_ptr(), flags, o.as_ptr().cast()) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The primary superblock as it is on the device now.
pub fn disk_sb() -> Result<Superblock, String> {
    let b = dev_read_block(PMEM, 0)?;
    Superblock::decode(&b).map_err(|e| format!("decoding the on-disk superblock: {e:?}"))
}

/// Writes `sb` to the primary and the backup superblock (unmounted).
pub fn write_sb(sb: &Superblock) -> TestResult {
    for blk in [0, sb.backup_block()] {
        let mut b = dev_read_block(PMEM, blk)?;
        sb.encode(&mut b)
            .map_err(|e| format!("encoding the superblock: {e:?}"))?;
        dev_write_block(PMEM, blk, &b)?;
    }
    Ok(())
}

fn state_name(s: u32) -> &'static str {
    match s {
        STATE_CLEAN => "clean",
        STATE_DIRTY => "dirty",
        _ => "unknown",
    }
}

/// rw -> ro writes the clean state and the free counts; ro -> rw marks
/// the filesystem in use again.
fn state_on_remount() -> TestResult {
    fresh_mount()?;
    ctx(
        fs::write(format!("{MNT}/f"), vec![7u8; 64 << 10]),
        "write /mnt/f",
    )?;
    let sb = disk_sb()?;
    ensure!(
        sb.state == STATE_DIRTY,
        "mounted read-write but the on-disk state is {}",
        state_name(sb.state)
    );
    let mounts = sb.mount_count;
    ctx(remount_with(true, ""), "mount -o remount,ro")?;
    let sb = disk_sb()?;
    let st = statfs(MNT)?;
    ensure!(
        sb.state == STATE_CLEAN,
        "after remount,ro the on-disk state is {} (expected clean: nothing writes any more)",
        state_name(sb.state)
    );
    ensure!(
        sb.free_blocks == st.f_bfree,
        "after remount,ro the superblock says {} free blocks, statfs {}",
        sb.free_blocks,
        st.f_bfree
    );
    expect_errno(
        fs::write(format!("{MNT}/g"), b"x"),
        libc::EROFS,
        "create on a remount,ro filesystem",
    )?;
    ctx(remount_with(false, ""), "mount -o remount,rw")?;
    let sb = disk_sb()?;
    ensure!(
        sb.state == STATE_DIRTY,
        "after remount,rw the on-disk state is {} (expected dirty while writable)",
        state_name(sb.state)
    );
    ensure!(
        sb.mount_count == mounts.wrapping_add(1),
        "mount count {} after remount,rw, expected {}",
        sb.mount_count,
        mounts.wrapping_add(1)
    );
    ctx(
        fs::write(format!("{MNT}/g"), b"x"),
        "create after remount,rw",
    )?;
    ctx(umount(MNT), "umount")?;
    ensure!(disk_sb()?.state == STATE_CLEAN, "not clean after umount");
    fsck_clean(PMEM)
}

/// Unknown read-only-compatible features: a read-only mount is fine, a
/// remount read-write must be refused like a read-write mount is.
fn ro_compat_refused() -> TestResult {
    umount_all(MNT);
    mkfs(PMEM, &[])?;
    let mut sb = disk_sb()?;
    sb.ro_compat |= 0x8000_0000;
    write_sb(&sb)?;
    expect_errno(
        mount(PMEM, MNT, "rdaxfs", ""),
        libc::EROFS,
        "read-write mount with an unknown ro_compat feature",
    )?;
    let (d, m, t, o) = (cstr(PMEM), cstr(MNT), cstr("rdaxfs"), cstr(""));
    // SAFETY: valid NUL-terminated strings for the call.
    let r = unsafe {
        libc::mount(
            d.as_ptr(),
            m.as_ptr(),
            t.as_ptr(),
            libc::MS_RDONLY,
            o.as_ptr().cast(),
        )
    };
    ensure!(
        r == 0,
        "read-only mount with an unknown ro_compat feature: {}",
        io::Error::last_os_error()
    );
    let mark = dmesg_mark("remount-ro-compat");
    let res = remount_with(false, "");
    let after = disk_sb()?;
    let lines = dmesg_since(&mark);
    no_oops(&lines)?;
    expect_errno(
        res,
        libc::EROFS,
        "remount,rw with an unknown ro_compat feature",
    )?;
    ensure!(
        lines.iter().any(|l| l.contains("read-only")),
        "remount,rw refused without a kernel message saying why:\n{}",
        lines.join("\n")
    );
    ensure!(
        after.state == sb.state && after.mount_count == sb.mount_count,
        "the refused remount,rw changed the superblock (state {} count {} -> state {} count {})",
        state_name(sb.state),
        sb.mount_count,
        state_name(after.state),
        after.mount_count
    );
    expect_errno(
        fs::write(format!("{MNT}/g"), b"x"),
        libc::EROFS,
        "create after the refused remount,rw",
    )?;
    ctx(umount(MNT), "umount")?;
    sb.ro_compat &= !0x8000_0000;
    write_sb(&sb)
}

/// Reads blocks `0..n` of the device (O_DIRECT).
fn read_blocks(n: u64) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::FileExt;
    let f = ctx(open_raw(PMEM, libc::O_RDONLY | libc::O_DIRECT, 0), PMEM)?;
    let mut a = Aligned::new(n as usize * BLOCK);
    ctx(f.read_exact_at(a.buf(), 0), "read the metadata blocks")?;
    Ok(a.buf().to_vec())
}

/// Writes `data` at block 0 of the device (O_DIRECT) and fsyncs.
fn write_blocks(data: &[u8]) -> TestResult {
    use std::os::unix::fs::FileExt;
    let f = ctx(open_raw(PMEM, libc::O_RDWR | libc::O_DIRECT, 0), PMEM)?;
    let mut a = Aligned::new(data.len());
    a.buf().copy_from_slice(data);
    ctx(f.write_all_at(a.buf(), 0), "write the metadata blocks")?;
    ctx(f.sync_all(), "fsync the device")
}

/// An orphan left by a crash, mounted read-only (kept), then remounted
/// read-write: the remount reclaims it, as a read-write mount would.
fn orphans_reclaimed() -> TestResult {
    fresh_mount()?;
    let p = format!("{MNT}/orphan");
    let f = create_rw(std::path::Path::new(&p))?;
    ctx(
        std::os::unix::fs::FileExt::write_all_at(&f, &vec![0x5a; 1 << 20], 0),
        "write the file",
    )?;
    let ino = ctx(f.metadata(), "stat")?.ino();
    ctx(fs::remove_file(&p), "unlink the open file")?;
    // The on-disk state a power cut now would leave: the metadata blocks
    // (superblock, bitmaps, inode table) with the open unlinked file on
    // the orphan list. Data blocks do not matter for the orphan.
    let sb = disk_sb()?;
    ensure!(
        sb.orphan_head == ino,
        "orphan list head {} after unlinking open inode {ino}",
        sb.orphan_head
    );
    let meta = read_blocks(sb.data_start)?;
    let backup = dev_read_block(PMEM, sb.backup_block())?;
    drop(f);
    ctx(umount(MNT), "umount")?;
    write_blocks(&meta)?;
    dev_write_block(PMEM, sb.backup_block(), &backup)?;

    let (d, m, t, o) = (cstr(PMEM), cstr(MNT), cstr("rdaxfs"), cstr(""));
    // SAFETY: valid NUL-terminated strings for the call.
    let r = unsafe {
        libc::mount(
            d.as_ptr(),
            m.as_ptr(),
            t.as_ptr(),
            libc::MS_RDONLY,
            o.as_ptr().cast(),
        )
    };
    ensure!(r == 0, "mount -o ro: {}", io::Error::last_os_error());
    let ro_free = statfs(MNT)?.f_bfree;
    let mark = dmesg_mark("remount-orphans");
    ctx(remount_with(false, ""), "mount -o remount,rw")?;
    let lines = dmesg_since(&mark);
    no_oops(&lines)?;
    let rw_free = statfs(MNT)?.f_bfree;
    ensure!(
        rw_free >= ro_free + 256,
        "remount,rw did not reclaim the orphan's 1 MiB: {ro_free} free blocks before, {rw_free} after"
    );
    ensure!(
        lines.iter().any(|l| l.contains("orphan")),
        "no kernel message about the reclaimed orphan:\n{}",
        lines.join("\n")
    );
    ensure!(
        disk_sb()?.orphan_head == 0,
        "orphan list not empty on disk after remount,rw"
    );
    ctx(umount(MNT), "umount")?;
    fsck_clean(PMEM)
}

/// An unlinked file still open when errors=remount-ro forces the mount
/// read-only, then `remount,rw`: that orphan is in use, not a crash
/// leftover; remount,rw must leave it alone (its last close frees it).
/// (A plain remount,ro is refused while such files exist.)
fn open_orphan_kept() -> TestResult {
    fresh_mount()?;
    ctx(fs::write(format!("{MNT}/bad"), b"x"), "create bad")?;
    let bad = ctx(fs::metadata(format!("{MNT}/bad")), "stat bad")?.ino();
    ctx(umount(MNT), "umount")?;
    // A checksum error in bad's record, to force the read-only mount.
    let sb = disk_sb()?;
    let (blk, off) =
        rdaxfs_format::inode_location(&sb, bad).map_err(|e| format!("inode {bad}: {e:?}"))?;
    let mut b = dev_read_block(PMEM, blk)?;
    b[off + 40] ^= 0xff;
    dev_write_block(PMEM, blk, &b)?;
    ctx(
        mount(PMEM, MNT, "rdaxfs", "errors=remount-ro"),
        "mount errors=remount-ro",
    )?;
    let p = format!("{MNT}/open-orphan");
    ctx(fs::write(&p, vec![0x6bu8; 1 << 20]), "write the file")?;
    let f = ctx(fs::File::open(&p), "open read-only")?;
    ctx(fs::remove_file(&p), "unlink the open file")?;
    let with_file = statfs(MNT)?.f_bfree;
    ensure!(
        fs::metadata(format!("{MNT}/bad")).is_err(),
        "stat of the corrupt inode succeeded"
    );
    ensure!(
        fs::write(format!("{MNT}/x"), b"x").is_err(),
        "still writable after the corruption with errors=remount-ro"
    );
    let mark = dmesg_mark("remount-open-orphan");
    let r = remount_with(false, "");
    no_oops(&dmesg_since(&mark))?;
    ctx(r, "mount -o remount,rw with an open unlinked file")?;
    let mut b = vec![0u8; 4096];
    ctx(
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut b, 4096),
        "read the open unlinked file",
    )?;
    ensure!(
        b.iter().all(|&x| x == 0x6b),
        "open unlinked file lost its data"
    );
    drop(f);
    let after = statfs(MNT)?.f_bfree;
    ensure!(
        after >= with_file + 256,
        "last close did not free the file: {with_file} free blocks before, {after} after"
    );
    ctx(umount(MNT), "umount")?;
    Ok(())
}

fn mount_opts() -> Result<String, String> {
    let e = mount_entry(MNT).ok_or("not mounted")?;
    Ok(e.split_whitespace().nth(3).unwrap_or("").to_string())
}

/// errors= changes on remount and sticks when a later remount omits it;
/// unknown options and bad values are refused with a message.
fn options_on_remount() -> TestResult {
    fresh_mount()?;
    ensure!(
        mount_opts()?.split(',').any(|o| o == "errors=continue"),
        "fresh mount options {:?}",
        mount_opts()?
    );
    ctx(
        remount_with(false, "errors=remount-ro"),
        "mount -o remount,errors=remount-ro",
    )?;
    let o = mount_opts()?;
    ensure!(
        o.split(',').any(|o| o == "errors=remount-ro"),
        "after remount,errors=remount-ro the options are {o:?}"
    );
    ctx(
        remount_with(false, "dax=always"),
        "mount -o remount,dax=always",
    )?;
    let o = mount_opts()?;
    ensure!(
        o.split(',').any(|o| o == "errors=remount-ro"),
        "a remount without errors= reset it: options {o:?}"
    );
    for bad in ["errors=sideways", "dax=never", "bogus=1", "nodax"] {
        let mark = dmesg_mark("remount-bad-option");
        let r = remount_with(false, bad);
        let lines = dmesg_since(&mark);
        expect_errno(r, libc::EINVAL, &format!("mount -o remount,{bad}"))?;
        let key = bad.split('=').next().unwrap_or(bad);
        ensure!(
            lines.iter().any(|l| l.contains(key)),
            "remount,{bad} refused without a kernel message naming {key:?}:\n{}",
            lines.join("\n")
        );
    }
    let o = mount_opts()?;
    ensure!(
        o.split(',').any(|o| o == "errors=remount-ro"),
        "refused remounts changed the options to {o:?}"
    );
    // Still writable after the refusals.
    let f = create_rw(std::path::Path::new(&format!("{MNT}/w")))?;
    ensure!(f.as_raw_fd() >= 0, "open");
    drop(f);
    ctx(umount(MNT), "umount")?;
    Ok(())
}
