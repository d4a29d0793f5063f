//! Namespace operations: lookup, create (files, directories, symlinks,
//! special files, O_TMPFILE files), link, unlink, rmdir, rename (with
//! RENAME_NOREPLACE, RENAME_EXCHANGE and RENAME_WHITEOUT).
//!
//! The VFS holds the i_rwsem of every directory involved (and of the
//! victims), so a directory's entries and link count only change here under
//! that lock. Each operation is one journal transaction: the entries, the
//! link counts, the parent pointer, the orphan list and the bitmaps change
//! together or not at all, and an error leaves the namespace as it was.
//! The VFS inodes are updated only after the transaction has committed.

use crate::dir::{self, Adder};
use crate::format::{
    self, AllocRequest, Extent, BLOCK_SIZE, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG,
};
use crate::glue::code;
use crate::glue::compat::ARef;
use crate::glue::inode::{iget as vfs_iget, Iget, InodeParams};
use crate::inode::{iget, new_record, set_attrs, RInode};
use crate::journal::{transact, Tx};
use kernel::prelude::*;

const RENAME_NOREPLACE: u32 = 1;
const RENAME_EXCHANGE: u32 = 2;
const RENAME_WHITEOUT: u32 = 4;

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
    let ino = crate::inode::reserve_ino(info)?;
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

/// `open(O_TMPFILE)`: a regular file with no name. Its number, its record
/// (link count 0) and its place on the orphan list commit in one
/// transaction, so a crash at any point leaves either nothing or an orphan
/// that the next mount frees; the last close frees it like any unlinked
/// open file, unless `link` gave it a name first. The VFS inode comes back
/// with a link count of 1, which `d_tmpfile` drops to 0.
pub(crate) fn tmpfile(dir: &RInode, mode: u32) -> Result<ARef<RInode>> {
    if mode & S_IFMT != S_IFREG {
        return Err(EINVAL);
    }
    let info = dir.sb().info();
    let ino = crate::inode::reserve_ino(info)?;
    let inode = match new_inode(dir, ino, mode, None, 0) {
        Ok(i) => i,
        Err(e) => {
            info.inodes.lock().release(ino - 1, 1);
            return Err(e);
        }
    };
    let mut d = new_record(&inode, &inode.info().map.lock());
    d.nlink = 0;
    let res = transact(info, |tx| {
        tx.alloc_inode(ino)?;
        tx.set_inode(ino, &d)?;
        tx.orphan_add(ino)
    });
    if let Err(e) = res {
        // The transaction gave the number back; nothing is on pmem.
        inode.set_nlink(0);
        return Err(e);
    }
    crate::inode::committed(&inode, &mut inode.info().map.lock(), KVec::new());
    Ok(inode)
}

/// The whiteout RENAME_WHITEOUT leaves at the source name: a character
/// device 0:0 (the kernel's WHITEOUT_MODE and WHITEOUT_DEV), set up in
/// memory before the rename's transaction and committed by it.
struct Whiteout {
    inode: ARef<RInode>,
    ino: u64,
    d: format::Inode,
    /// The transaction took the inode number (it gives it back if it
    /// does not commit).
    staged: bool,
}

impl Whiteout {
    fn new(dir: &RInode) -> Result<Self> {
        let info = dir.sb().info();
        let ino = crate::inode::reserve_ino(info)?;
        let inode = match new_inode(dir, ino, S_IFCHR, None, 0) {
            Ok(i) => i,
            Err(e) => {
                info.inodes.lock().release(ino - 1, 1);
                return Err(e);
            }
        };
        let d = new_record(&inode, &inode.info().map.lock());
        Ok(Self {
            inode,
            ino,
            d,
            staged: false,
        })
    }

    /// Stages the whiteout's number and record and points the source
    /// entry `at` at it (instead of removing the entry). Call first in
    /// the transaction.
    fn stage(&mut self, tx: &mut Tx<'_>, at: dir::Slot) -> Result {
        self.staged = true;
        tx.alloc_inode(self.ino)?;
        tx.set_inode(self.ino, &self.d)?;
        dir::retarget(tx, at, self.ino, format::DT_CHR)
    }

    /// After the rename: publish the whiteout, or forget it.
    fn finish(self, committed: bool) {
        if committed {
            crate::inode::committed(&self.inode, &mut self.inode.info().map.lock(), KVec::new());
            return;
        }
        if !self.staged {
            let info = self.inode.sb().info();
            info.inodes.lock().release(self.ino - 1, 1);
        }
        // Not on pmem: dropping the inode frees nothing.
        self.inode.set_nlink(0);
    }
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
    // An O_TMPFILE file (the VFS allows linking a link count of 0 only
    // for those) leaves the orphan list in the transaction that names it.
    let was_orphan = inode.nlink() == 0;
    inode.touch_ctime();
    dir.touch_cmtime();
    let res = transact(info, |tx| {
        adder.stage(tx, name, inode.ino(), dtype(inode.mode()))?;
        if was_orphan {
            tx.orphan_remove(inode.ino())?;
            tx.update_inode(inode.ino(), |d| d.next_orphan = 0)?;
        }
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
    let ino = inode.ino();
    let mut d = tx.inode(ino)?;
    set_attrs(&mut d, inode);
    d.nlink = n;
    if n == 0 {
        tx.orphan_add_to(ino, &mut d)?;
    }
    tx.set_inode(ino, &d)
}

/// Removes `name` from `dir`.
pub(crate) fn unlink(dir: &RInode, name: &[u8], inode: &RInode) -> Result {
    let info = dir.sb().info();
    let (_, at) = dir::find(dir, name)?.ok_or(ENOENT)?;
    let n = inode.nlink().saturating_sub(1);
    inode.touch_ctime();
    dir.touch_cmtime();
    let res = transact(info, |tx| {
        dir::remove(tx, at)?;
        stage_links(tx, dir, dir.nlink())?;
        stage_unlinked(tx, inode, n)
    });
    dir::removed(dir, at, res.is_ok());
    res?;
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
    let res = transact(info, |tx| {
        dir::remove(tx, at)?;
        stage_links(tx, dir, dn)?;
        stage_unlinked(tx, inode, 0)
    });
    dir::removed(dir, at, res.is_ok());
    res?;
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
/// existing target), RENAME_EXCHANGE and RENAME_WHITEOUT (a whiteout takes
/// the source name; the VFS refuses it with EXCHANGE): one transaction.
pub(crate) fn rename(
    old_dir: &RInode,
    old_name: &[u8],
    old: &RInode,
    new_dir: &RInode,
    new_name: &[u8],
    new: Option<&RInode>,
    flags: u32,
) -> Result {
    if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT) != 0
        || flags & (RENAME_EXCHANGE | RENAME_WHITEOUT) == RENAME_EXCHANGE | RENAME_WHITEOUT
    {
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
    let mut whiteout = match flags & RENAME_WHITEOUT {
        0 => None,
        _ => Some(Whiteout::new(old_dir)?),
    };
    let res = rename_move(
        info,
        (old_dir, old_at, old),
        (new_dir, new_name, new),
        &mut parents,
        &mut whiteout,
    );
    if let Some(w) = whiteout {
        w.finish(res.is_ok());
    }
    res?;
    if moving_dir && cross {
        set_parent(old, new_dir.ino());
    }
    parents.publish(old_dir, new_dir);
    Ok(())
}

/// The entry of a rename's source directory.
type Source<'a> = (&'a RInode, dir::Slot, &'a RInode);
/// The target directory, name and victim of a rename.
type Target<'a> = (&'a RInode, &'a [u8], Option<&'a RInode>);

/// The transaction of a rename that moves `old` (not an exchange): the
/// source entry is removed, or retargeted at `whiteout`.
fn rename_move(
    info: &crate::super_block::SbInfo,
    (old_dir, old_at, old): Source<'_>,
    (new_dir, new_name, new): Target<'_>,
    parents: &mut Parents,
    whiteout: &mut Option<Whiteout>,
) -> Result {
    let moving_dir = is_dir(old);
    let cross = old_dir.ino() != new_dir.ino();
    // A whiteout keeps the source name (retargeted): only a removed
    // source entry changes the source directory's index.
    let removes_source = whiteout.is_none();
    let mut leave_source = |tx: &mut Tx<'_>| match whiteout.as_mut() {
        Some(w) => w.stage(tx, old_at),
        None => dir::remove(tx, old_at),
    };
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
            let res = transact(info, |tx| {
                leave_source(tx)?;
                dir::retarget(tx, new_at, old.ino(), dtype(old.mode()))?;
                stage_unlinked(tx, victim, left)?;
                if moving_dir && cross {
                    stage_parent(tx, old, new_dir.ino())?;
                }
                stage_links(tx, old, old.nlink())?;
                parents.stage(tx, old_dir, new_dir)
            });
            if removes_source {
                dir::removed(old_dir, old_at, res.is_ok());
            }
            res?;
            victim.set_nlink(left);
        }
        None => {
            let mut adder = Adder::new(new_dir, new_name)?;
            let res = transact(info, |tx| {
                leave_source(tx)?;
                adder.stage(tx, new_name, old.ino(), dtype(old.mode()))?;
                if moving_dir && cross {
                    stage_parent(tx, old, new_dir.ino())?;
                }
                stage_links(tx, old, old.nlink())?;
                parents.stage(tx, old_dir, new_dir)
            });
            adder.finish(res.is_ok());
            if removes_source {
                dir::removed(old_dir, old_at, res.is_ok());
            }
            res?;
        }
    }
    Ok(())
}
