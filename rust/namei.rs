//! Namespace operations: lookup, create (files, directories, symlinks,
//! special files), link, unlink, rmdir, rename.
//!
//! The VFS holds the i_rwsem of every directory involved (and of the
//! victims), so a directory's entries and link count only change here under
//! that lock. Each operation is one journal transaction: the entries, the
//! link counts, the parent pointer, the orphan list and the bitmaps change
//! together or not at all, and an error leaves the namespace as it was.
//! The VFS inodes are updated only after the transaction has committed.

use crate::dir::{self, Adder};
use crate::format::{self, AllocRequest, Extent, BLOCK_SIZE, S_IFDIR, S_IFLNK, S_IFMT};
use crate::glue::code;
use crate::glue::compat::ARef;
use crate::glue::inode::{iget as vfs_iget, Iget, InodeParams};
use crate::inode::{iget, new_record, set_attrs, RInode};
use crate::journal::{transact, Tx};
use kernel::prelude::*;

const RENAME_NOREPLACE: u32 = 1;
const RENAME_EXCHANGE: u32 = 2;

/// Largest link count (as ext4's `EXT4_LINK_MAX`): link(2) and mkdir stop
/// there with EMLINK, and a larger count on pmem is corruption.
pub(crate) const LINK_MAX: u32 = 65_000;

fn is_dir(i: &RInode) -> bool {
    i.mode() & S_IFMT == S_IFDIR
}

fn dtype(mode: u32) -> u8 {
    format::dt_from_mode(mode).unwrap_or(format::DT_UNKNOWN)
}

/// Stages `inode`'s record with link count `nlink`, times from the VFS.
fn stage_links(tx: &mut Tx<'_>, inode: &RInode, nlink: u32) -> Result {
    tx.update_inode(inode.ino(), |d| {
        set_attrs(d, inode);
        d.nlink = nlink;
    })
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

/// Creates an inode of `mode` named `name` in `dir`: the inode number, the
/// record (and a symlink's target block), the entry and the parent's link
/// count commit together.
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
    if symlink.is_some_and(|t| t.is_empty() || t.len() >= BLOCK_SIZE) {
        return Err(code::enametoolong());
    }
    let new_is_dir = mode & S_IFMT == S_IFDIR;
    if new_is_dir && dir.nlink() >= LINK_MAX {
        return Err(EMLINK);
    }
    let sb = dir.sb();
    let info = sb.info();
    let ino = info.inodes.lock().alloc_one(0)? + 1;
    let inode = match new_inode(dir, ino, mode, symlink, rdev) {
        Ok(i) => i,
        Err(e) => {
            // No VFS inode holds it: give the number back.
            info.inodes.lock().release(ino - 1, 1);
            return Err(e);
        }
    };
    // The new inode's record, before the directory's allocation lock may
    // be taken (one inode's map lock at a time).
    let mut d = new_record(&inode, &inode.info().map.lock());
    let mut adder = match Adder::new(dir, name) {
        Ok(a) => a,
        Err(e) => {
            info.inodes.lock().release(ino - 1, 1);
            inode.set_nlink(0);
            return Err(e);
        }
    };
    dir.touch_cmtime();
    let dir_nlink = dir.nlink() + u32::from(new_is_dir);
    if crate::glue::bugs::dirent_before_inode() {
        // TEST ONLY (bug_dirent_before_inode): the entry commits in a
        // transaction of its own, before the inode it names is written.
        let r = transact(info, |tx| {
            tx.alloc_inode(ino)?;
            adder.stage(tx, name, ino, dtype(mode))
        });
        adder.finish(r.is_ok());
        adder = Adder::staged(dir);
        if let Err(e) = r {
            inode.set_nlink(0);
            return Err(e);
        }
    }
    let res = transact(info, |tx| {
        if !crate::glue::bugs::dirent_before_inode() {
            tx.alloc_inode(ino)?;
        }
        if let Some(t) = symlink {
            let req = AllocRequest {
                want: 1,
                hint: 0,
                large_file: false,
            };
            let (phys, _) = tx.reserve_blocks(req)?;
            let mut blk = KVec::from_elem(0u8, BLOCK_SIZE, GFP_KERNEL)?;
            blk[..t.len()].copy_from_slice(t);
            tx.write_new(phys, &blk)?;
            d.extents[0] = Extent {
                logical: 0,
                physical: phys,
                len: 1,
            };
            d.extent_count = 1;
            d.blocks = 1;
        }
        tx.set_inode(ino, &d)?;
        adder.stage(tx, name, ino, dtype(mode))?;
        stage_links(tx, dir, dir_nlink)
    });
    adder.finish(res.is_ok());
    if let Err(e) = res {
        // Nothing committed; the transaction gave the number and blocks
        // back. Dropping the inode (no links, not on pmem) frees nothing.
        inode.set_nlink(0);
        return Err(e);
    }
    {
        let mut fm = inode.info().map.lock();
        if d.extent_count == 1 {
            fm.insert(d.extents[0])?;
        }
        crate::inode::committed(&inode, &mut fm, KVec::new());
    }
    dir.set_nlink(dir_nlink);
    Ok(inode)
}

/// Sets up inode `ino` in memory (the caller commits it).
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
            fm.link.extend_from_slice(t, GFP_KERNEL)?;
            fm.link.push(0, GFP_KERNEL)?;
            link = Some(fm.link.as_ptr());
            size = t.len() as u64;
        }
    }
    let nlink = if mode & S_IFMT == S_IFDIR { 2 } else { 1 };
    let blocks = u64::from(mode & S_IFMT == S_IFLNK);
    Ok(new.init(
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
    ))
}

/// Adds a hard link: entry and link count together.
pub(crate) fn link(inode: &RInode, dir: &RInode, name: &[u8]) -> Result {
    if inode.nlink() >= LINK_MAX {
        return Err(EMLINK);
    }
    let info = dir.sb().info();
    let mut adder = Adder::new(dir, name)?;
    let n = inode.nlink() + 1;
    inode.touch_ctime();
    dir.touch_cmtime();
    let res = transact(info, |tx| {
        adder.stage(tx, name, inode.ino(), dtype(inode.mode()))?;
        stage_links(tx, inode, n)?;
        stage_links(tx, dir, dir.nlink())
    });
    adder.finish(res.is_ok());
    res?;
    inode.set_nlink(n);
    Ok(())
}

/// Stages dropping `inode`'s links to `n`; at 0 it goes on the orphan list
/// (its blocks are freed when the last user closes it, or at the next
/// mount after a crash).
fn stage_unlinked(tx: &mut Tx<'_>, inode: &RInode, n: u32) -> Result {
    stage_links(tx, inode, n)?;
    if n == 0 {
        tx.orphan_add(inode.ino())?;
    }
    Ok(())
}

/// Removes `name` from `dir`.
pub(crate) fn unlink(dir: &RInode, name: &[u8], inode: &RInode) -> Result {
    let info = dir.sb().info();
    let (_, at) = dir::find(dir, name)?.ok_or(ENOENT)?;
    let n = inode.nlink().saturating_sub(1);
    inode.touch_ctime();
    dir.touch_cmtime();
    transact(info, |tx| {
        dir::remove(tx, at)?;
        stage_links(tx, dir, dir.nlink())?;
        stage_unlinked(tx, inode, n)
    })?;
    inode.set_nlink(n);
    Ok(())
}

/// Removes the empty directory `inode`.
pub(crate) fn rmdir(dir: &RInode, name: &[u8], inode: &RInode) -> Result {
    if !dir::is_empty(inode)? {
        return Err(code::enotempty());
    }
    let info = dir.sb().info();
    let (_, at) = dir::find(dir, name)?.ok_or(ENOENT)?;
    let dn = dir.nlink().saturating_sub(1);
    inode.touch_ctime();
    dir.touch_cmtime();
    transact(info, |tx| {
        dir::remove(tx, at)?;
        stage_links(tx, dir, dn)?;
        stage_unlinked(tx, inode, 0)
    })?;
    dir.set_nlink(dn);
    inode.set_nlink(0);
    Ok(())
}

/// New link counts of the (one or two) parent directories of a rename.
struct Parents {
    old: u32,
    new: u32,
}

impl Parents {
    fn of(old_dir: &RInode, new_dir: &RInode) -> Self {
        Self {
            old: old_dir.nlink(),
            new: new_dir.nlink(),
        }
    }

    /// A subdirectory moves from the old parent to the new one.
    fn move_subdir(&mut self, towards_new: bool) {
        if towards_new {
            self.old = self.old.saturating_sub(1);
            self.new += 1;
        } else {
            self.new = self.new.saturating_sub(1);
            self.old += 1;
        }
    }

    fn stage(&self, tx: &mut Tx<'_>, old_dir: &RInode, new_dir: &RInode) -> Result {
        if old_dir.ino() == new_dir.ino() {
            return stage_links(tx, old_dir, self.old.min(self.new));
        }
        stage_links(tx, old_dir, self.old)?;
        stage_links(tx, new_dir, self.new)
    }

    fn publish(&self, old_dir: &RInode, new_dir: &RInode) {
        if old_dir.ino() == new_dir.ino() {
            old_dir.set_nlink(self.old.min(self.new));
        } else {
            old_dir.set_nlink(self.old);
            new_dir.set_nlink(self.new);
        }
    }
}

fn stage_parent(tx: &mut Tx<'_>, inode: &RInode, parent: u64) -> Result {
    tx.update_inode(inode.ino(), |d| {
        set_attrs(d, inode);
        d.parent = parent;
    })
}

fn set_parent(inode: &RInode, parent: u64) {
    inode.info().map.lock().parent = parent;
}

/// rename(2), including RENAME_NOREPLACE (the VFS already refused an
/// existing target) and RENAME_EXCHANGE: one transaction.
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
    let info = old_dir.sb().info();
    let (_, old_at) = dir::find(old_dir, old_name)?.ok_or(ENOENT)?;
    let moving_dir = is_dir(old);
    let cross = old_dir.ino() != new_dir.ino();
    let mut parents = Parents::of(old_dir, new_dir);
    for i in [Some(old), new, Some(old_dir), Some(new_dir)]
        .into_iter()
        .flatten()
    {
        i.touch_ctime();
    }
    old_dir.touch_cmtime();
    new_dir.touch_cmtime();
    if flags & RENAME_EXCHANGE != 0 {
        let new = new.ok_or(ENOENT)?;
        let (_, new_at) = dir::find(new_dir, new_name)?.ok_or(ENOENT)?;
        let new_is_dir = is_dir(new);
        if cross && moving_dir != new_is_dir {
            parents.move_subdir(moving_dir);
        }
        transact(info, |tx| {
            dir::retarget(tx, old_at, new.ino(), dtype(new.mode()))?;
            dir::retarget(tx, new_at, old.ino(), dtype(old.mode()))?;
            if cross && moving_dir {
                stage_parent(tx, old, new_dir.ino())?;
            }
            if cross && new_is_dir {
                stage_parent(tx, new, old_dir.ino())?;
            }
            parents.stage(tx, old_dir, new_dir)?;
            stage_links(tx, old, old.nlink())?;
            stage_links(tx, new, new.nlink())
        })?;
        if cross && moving_dir {
            set_parent(old, new_dir.ino());
        }
        if cross && new_is_dir {
            set_parent(new, old_dir.ino());
        }
        parents.publish(old_dir, new_dir);
        return Ok(());
    }
    if moving_dir && cross {
        if new_dir.nlink() >= LINK_MAX {
            return Err(EMLINK);
        }
        parents.move_subdir(true);
    }
    match new {
        Some(victim) => {
            let victim_dir = is_dir(victim);
            if victim_dir && !dir::is_empty(victim)? {
                return Err(code::enotempty());
            }
            let (_, new_at) = dir::find(new_dir, new_name)?.ok_or(ENOENT)?;
            // A directory victim takes its ".." link to new_dir with it.
            let left = if victim_dir {
                parents.new = parents.new.saturating_sub(1);
                0
            } else {
                victim.nlink().saturating_sub(1)
            };
            transact(info, |tx| {
                dir::retarget(tx, new_at, old.ino(), dtype(old.mode()))?;
                dir::remove(tx, old_at)?;
                stage_unlinked(tx, victim, left)?;
                if moving_dir && cross {
                    stage_parent(tx, old, new_dir.ino())?;
                }
                stage_links(tx, old, old.nlink())?;
                parents.stage(tx, old_dir, new_dir)
            })?;
            victim.set_nlink(left);
        }
        None => {
            let mut adder = Adder::new(new_dir, new_name)?;
            let res = transact(info, |tx| {
                adder.stage(tx, new_name, old.ino(), dtype(old.mode()))?;
                dir::remove(tx, old_at)?;
                if moving_dir && cross {
                    stage_parent(tx, old, new_dir.ino())?;
                }
                stage_links(tx, old, old.nlink())?;
                parents.stage(tx, old_dir, new_dir)
            });
            adder.finish(res.is_ok());
            res?;
        }
    }
    if moving_dir && cross {
        set_parent(old, new_dir.ino());
    }
    parents.publish(old_dir, new_dir);
    Ok(())
}
