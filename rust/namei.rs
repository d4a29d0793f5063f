//! Namespace operations: lookup, create (files, directories, symlinks,
//! special files), link, unlink, rmdir, rename.
//!
//! The VFS holds the i_rwsem of every directory involved (and of the
//! victims), so a directory's entries and link count only change here under
//! that lock. Ordering for crash consistency: a new inode is written before
//! the entry naming it; an entry is removed before the inode it named is
//! freed (at eviction, through the orphan list if it is still open).

use crate::dir;
use crate::format::{self, AllocRequest, Extent, BLOCK_SIZE_U64, S_IFDIR, S_IFLNK, S_IFMT};
use crate::glue::inode::{iget as vfs_iget, Iget, InodeParams};
use crate::glue::{bugs, code};
use crate::inode::{iget, orphan_add, persist, RInode};
use kernel::prelude::*;
use kernel::types::ARef;

const RENAME_NOREPLACE: u32 = 1;
const RENAME_EXCHANGE: u32 = 2;

fn is_dir(i: &RInode) -> bool {
    i.mode() & S_IFMT == S_IFDIR
}

fn dtype(mode: u32) -> u8 {
    format::dt_from_mode(mode).unwrap_or(format::DT_UNKNOWN)
}

/// Looks `name` up in `dir`.
pub(crate) fn lookup(dir: &RInode, name: &[u8]) -> Result<Option<ARef<RInode>>> {
    if name.len() > format::NAME_MAX {
        return Err(code::enametoolong());
    }
    match dir::find(dir, name)? {
        Some((ino, _)) => Ok(Some(iget(dir.sb(), ino)?)),
        None => Ok(None),
    }
}

/// Creates an inode of `mode` named `name` in `dir`.
pub(crate) fn create(
    dir: &RInode,
    name: &[u8],
    mode: u32,
    symlink: Option<&[u8]>,
    rdev: u32,
) -> Result<ARef<RInode>> {
    if name.len() > format::NAME_MAX {
        return Err(code::enametoolong());
    }
    if symlink.is_some_and(|t| t.is_empty() || t.len() >= format::BLOCK_SIZE) {
        return Err(code::enametoolong());
    }
    let sb = dir.sb();
    let info = sb.info();
    let ino = info.inodes.lock().alloc_one(&info.dax, 0)? + 1;
    // TEST ONLY (bug_dirent_before_inode): publish the entry before the
    // inode it names is written, breaking the ordering rule; the
    // crash-state explorer must catch it. A failure after this point
    // leaves the entry dangling (fsck -y clears it).
    let early = bugs::dirent_before_inode();
    if early {
        dir::add(dir, name, ino, dtype(mode))?;
    }
    let inode = match new_inode(dir, ino, mode, symlink, rdev) {
        Ok(i) => i,
        Err(e) => {
            // Nothing names it yet: give the number back.
            let _ = info.inodes.lock().free_range(&info.dax, ino - 1, 1);
            return Err(e);
        }
    };
    let added = if early {
        Ok(())
    } else {
        dir::add(dir, name, ino, dtype(mode))
    };
    if let Err(e) = added {
        // Drop the new inode: with no links, eviction frees it.
        inode.set_nlink(0);
        return Err(e);
    }
    if is_dir(&inode) {
        dir.set_nlink(dir.nlink() + 1);
    }
    dir.touch_cmtime();
    dir.mark_dirty();
    Ok(inode)
}

/// Sets up inode `ino` in memory and on pmem.
fn new_inode(
    dir: &RInode,
    ino: u64,
    mode: u32,
    symlink: Option<&[u8]>,
    rdev: u32,
) -> Result<ARef<RInode>> {
    let sb = dir.sb();
    let info = sb.info();
    let Iget::New(new) = vfs_iget(sb, ino)? else {
        // The number was free in the bitmap but an inode is cached: corrupt.
        return Err(info.corrupt(sb, "inode bitmap", ino));
    };
    let (mode, uid, gid) = new.init_owner(dir, mode);
    let times = new.now();
    let mut size = 0;
    let mut link = None;
    {
        let mut fm = new.info().map.lock();
        if mode & S_IFMT == S_IFDIR {
            fm.parent = dir.ino();
        }
        if let Some(t) = symlink {
            let req = AllocRequest {
                want: 1,
                hint: 0,
                large_file: false,
            };
            let (phys, _) = info.blocks.lock().alloc_blocks(&info.dax, req)?;
            info.dax.zero_blocks(phys, 1)?;
            info.dax.write(phys * BLOCK_SIZE_U64, t)?;
            info.dax.fence();
            fm.insert(Extent {
                logical: 0,
                physical: phys,
                len: 1,
            })?;
            fm.link.extend_from_slice(t, GFP_KERNEL)?;
            fm.link.push(0, GFP_KERNEL)?;
            link = Some(fm.link.as_ptr());
            size = t.len() as u64;
        }
    }
    let nlink = if mode & S_IFMT == S_IFDIR { 2 } else { 1 };
    let blocks = u64::from(mode & S_IFMT == S_IFLNK);
    let inode = new.init(
        InodeParams {
            mode,
            size,
            nlink,
            uid,
            gid,
            times,
            blocks,
            rdev,
            generation: 0,
        },
        link,
    );
    let mut fm = inode.info().map.lock();
    persist(&inode, &mut fm)?;
    drop(fm);
    Ok(inode)
}

/// Adds a hard link.
pub(crate) fn link(inode: &RInode, dir: &RInode, name: &[u8]) -> Result {
    if inode.nlink() >= u32::MAX - 1 {
        return Err(EMLINK);
    }
    dir::add(dir, name, inode.ino(), dtype(inode.mode()))?;
    inode.set_nlink(inode.nlink() + 1);
    inode.touch_ctime();
    inode.mark_dirty();
    dir.touch_cmtime();
    dir.mark_dirty();
    Ok(())
}

/// Drops one link of `inode`; the last one puts it on the orphan list.
fn drop_link(inode: &RInode) -> Result {
    let n = inode.nlink().saturating_sub(1);
    inode.set_nlink(n);
    inode.touch_ctime();
    inode.mark_dirty();
    if n == 0 {
        orphan_add(inode)?;
    }
    Ok(())
}

/// Removes `name` from `dir`.
pub(crate) fn unlink(dir: &RInode, name: &[u8], inode: &RInode) -> Result {
    let (_, at) = dir::find(dir, name)?.ok_or(ENOENT)?;
    dir::remove(dir, at)?;
    dir.touch_cmtime();
    dir.mark_dirty();
    drop_link(inode)
}

/// Removes the empty directory `inode`.
pub(crate) fn rmdir(dir: &RInode, name: &[u8], inode: &RInode) -> Result {
    if !dir::is_empty(inode)? {
        return Err(code::enotempty());
    }
    let (_, at) = dir::find(dir, name)?.ok_or(ENOENT)?;
    dir::remove(dir, at)?;
    dir.set_nlink(dir.nlink().saturating_sub(1));
    dir.touch_cmtime();
    dir.mark_dirty();
    inode.set_nlink(1);
    drop_link(inode)
}

fn set_parent(inode: &RInode, parent: u64) -> Result {
    let mut fm = inode.info().map.lock();
    fm.parent = parent;
    persist(inode, &mut fm)
}

/// rename(2), including RENAME_NOREPLACE (the VFS already refused an
/// existing target) and RENAME_EXCHANGE.
pub(crate) fn rename(
    old_dir: &RInode,
    old_name: &[u8],
    old: &RInode,
    new_dir: &RInode,
    new_name: &[u8],
    new: Option<&RInode>,
    flags: u32,
) -> Result {
    if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0 {
        return Err(EINVAL);
    }
    let (_, old_at) = dir::find(old_dir, old_name)?.ok_or(ENOENT)?;
    let moving_dir = is_dir(old);
    let cross = old_dir.ino() != new_dir.ino();
    if flags & RENAME_EXCHANGE != 0 {
        let new = new.ok_or(ENOENT)?;
        let (_, new_at) = dir::find(new_dir, new_name)?.ok_or(ENOENT)?;
        dir::retarget(old_dir, old_at, new.ino(), dtype(new.mode()))?;
        dir::retarget(new_dir, new_at, old.ino(), dtype(old.mode()))?;
        if cross {
            if moving_dir {
                set_parent(old, new_dir.ino())?;
            }
            if is_dir(new) {
                set_parent(new, old_dir.ino())?;
            }
            match (moving_dir, is_dir(new)) {
                (true, false) => {
                    old_dir.set_nlink(old_dir.nlink() - 1);
                    new_dir.set_nlink(new_dir.nlink() + 1);
                }
                (false, true) => {
                    old_dir.set_nlink(old_dir.nlink() + 1);
                    new_dir.set_nlink(new_dir.nlink() - 1);
                }
                _ => {}
            }
        }
        for i in [old, new, old_dir, new_dir] {
            i.touch_ctime();
            i.mark_dirty();
        }
        return Ok(());
    }
    match new {
        Some(victim) => {
            if is_dir(victim) && !dir::is_empty(victim)? {
                return Err(code::enotempty());
            }
            let (_, new_at) = dir::find(new_dir, new_name)?.ok_or(ENOENT)?;
            dir::retarget(new_dir, new_at, old.ino(), dtype(old.mode()))?;
            if is_dir(victim) {
                // The victim's ".." link to new_dir goes with it.
                new_dir.set_nlink(new_dir.nlink().saturating_sub(1));
                victim.set_nlink(1);
            }
            drop_link(victim)?;
        }
        None => dir::add(new_dir, new_name, old.ino(), dtype(old.mode()))?,
    }
    dir::remove(old_dir, old_at)?;
    if moving_dir && cross {
        set_parent(old, new_dir.ino())?;
        old_dir.set_nlink(old_dir.nlink().saturating_sub(1));
        new_dir.set_nlink(new_dir.nlink() + 1);
    }
    old.touch_ctime();
    old.mark_dirty();
    for d in [old_dir, new_dir] {
        d.touch_cmtime();
        d.mark_dirty();
    }
    Ok(())
}
