//! Inodes: reading the on-disk inode, the in-memory extent map (guarded by
//! the allocation lock), staging records and extent lists into journal
//! transactions, eviction and the orphan list.
//!
//! Field ownership in transactions: a transaction reads an inode's record
//! as committed and changes only the fields its operation owns, so
//! operations on one inode that hold different locks never undo each
//! other's changes. Extent fields (`extent_count`, `blocks`, `overflow`,
//! inline extents) and `size` belong to holders of the allocation lock;
//! `nlink`, `parent` and `next_orphan` to namespace operations (under the
//! VFS's i_rwsem) and the orphan list; mode, owner and times are copied
//! from the VFS inode by whoever writes the record.

use crate::dir_index::DirState;
use crate::format::{
    self, Extent, ExtentBlockHeader, BLOCK_SIZE, BLOCK_SIZE_U64, EXTENT_BLOCK_CAPACITY,
    INLINE_EXTENTS, INODE_SIZE,
};
use crate::glue::compat::ARef;
use crate::glue::fs::SuperBlock;
use crate::glue::inode::{iget as vfs_iget, Iget, Inode, InodeParams, Times};
use crate::journal::{transact, Tx, FREE_BATCH};
use crate::super_block::SbInfo;
use crate::Rdaxfs;
use kernel::alloc::KVVec;
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::Mutex;

/// An rdaxfs inode as the rest of the module sees it.
pub(crate) type RInode = Inode<Rdaxfs>;
type Sb = SuperBlock<Rdaxfs>;

/// Extents freed per transaction when a huge extent list goes away, so a
/// transaction always fits in the journal (each freed extent logs 32 bytes).
pub(crate) const FREE_CHUNK: usize = 4096;

/// Past this many existing overflow blocks to rewrite, an extent list
/// change writes the changed part of the chain to new blocks instead of
/// logging it.
const COW_BLOCKS: usize = 32;

/// `FileMap::dirty_from` when the committed extent list is up to date.
const CLEAN: usize = usize::MAX;

/// Per-inode state.
#[pin_data]
pub(crate) struct InodeInfo {
    /// The allocation lock (`rdaxfs:inode_map`) and what it protects.
    #[pin]
    pub(crate) map: Mutex<FileMap>,
    /// A directory's index (`rdaxfs:dir_index`, see `dir_index.rs`).
    #[pin]
    pub(crate) dir: Mutex<DirState>,
}

impl InodeInfo {
    /// Initialiser for a freshly allocated inode.
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            map <- new_mutex!(FileMap::empty(), "rdaxfs:inode_map"),
            dir <- new_mutex!(DirState::Unbuilt, "rdaxfs:dir_index"),
        })
    }
}

/// An inode's block map and the on-disk fields the VFS inode lacks.
pub(crate) struct FileMap {
    /// Extents, sorted by logical block, non-overlapping (may be huge:
    /// vmalloc-backed).
    pub(crate) ext: KVVec<Extent>,
    /// Overflow extent blocks, in chain order: block `i` holds extents
    /// `INLINE_EXTENTS + i * EXTENT_BLOCK_CAPACITY ..` (densely packed).
    pub(crate) overflow: KVec<u64>,
    /// Parent directory (directories only).
    pub(crate) parent: u64,
    /// Symlink target, NUL-terminated (symlinks only; never changes).
    pub(crate) link: KVec<u8>,
    /// Lowest index of `ext` changed since the list was last committed.
    dirty_from: usize,
    /// Blocks mapped by `ext` (the sum of the extent lengths).
    mapped: u64,
    /// The inode's record is committed on pmem.
    pub(crate) on_disk: bool,
    /// Extents a write(2) past EOF mapped (blocks reserved in memory and
    /// zeroed) whose allocation commits with the new size, in the
    /// transaction after the data copy: see `write_iter`. Whatever
    /// transaction commits this file's extent list next commits them.
    pub(crate) pending: KVec<Extent>,
}

impl FileMap {
    fn empty() -> Self {
        Self {
            ext: KVVec::new(),
            overflow: KVec::new(),
            parent: 0,
            link: KVec::new(),
            dirty_from: CLEAN,
            mapped: 0,
            on_disk: false,
            pending: KVec::new(),
        }
    }

    fn touch(&mut self, i: usize) {
        self.dirty_from = self.dirty_from.min(i);
    }

    /// Index of the first extent that ends after logical block `l`.
    fn index_after(&self, l: u64) -> usize {
        self.ext
            .partition_point(|e| e.logical + u64::from(e.len) <= l)
    }

    /// Data blocks mapped.
    pub(crate) fn data_blocks(&self) -> u64 {
        self.mapped
    }

    /// Physical block and run length (blocks) mapping logical block `l`.
    pub(crate) fn lookup(&self, l: u64) -> Option<(u64, u64)> {
        let e = self.ext.get(self.index_after(l))?;
        (e.logical <= l).then(|| {
            (
                e.physical + (l - e.logical),
                u64::from(e.len) - (l - e.logical),
            )
        })
    }

    /// Number of unmapped blocks from `l` up to the next extent (capped).
    pub(crate) fn hole_len(&self, l: u64, cap: u64) -> u64 {
        let next = self.ext.get(self.index_after(l)).map(|e| e.logical);
        next.map_or(cap, |s| s.saturating_sub(l).min(cap))
    }

    /// Physical block right after the extent that ends just before `l`, a
    /// good place to allocate `l` to keep the file contiguous.
    pub(crate) fn hint(&self, l: u64) -> u64 {
        self.ext
            .iter()
            .rev()
            .find(|e| e.logical < l)
            .map_or(0, |e| e.physical + (l - e.logical))
    }

    /// Adds an extent (merging with neighbours).
    pub(crate) fn insert(&mut self, e: Extent) -> Result {
        let i = self.index_after(e.logical);
        self.touch(i.saturating_sub(1));
        self.ext.push(Extent::default(), GFP_KERNEL)?;
        let len = self.ext.len() - 1;
        let r = format::extents_insert(&mut self.ext, len, e).map_err(|_| EIO);
        // The spare slot goes in every case (`extents_insert` changes
        // nothing when it fails).
        crate::vecs::truncate(&mut self.ext, *r.as_ref().unwrap_or(&len))?;
        r?;
        self.mapped += u64::from(e.len);
        Ok(())
    }

    /// Splits the extent that spans logical block `l` (if any) at `l`.
    pub(crate) fn split_at(&mut self, l: u64) -> Result {
        let Some(i) = self
            .ext
            .iter()
            .position(|e| e.logical < l && l < e.logical + u64::from(e.len))
        else {
            return Ok(());
        };
        self.touch(i);
        let e = self.ext[i];
        let head = (l - e.logical) as u32;
        self.ext[i].len = head;
        let tail = Extent {
            logical: l,
            physical: e.physical + u64::from(head),
            len: e.len - head,
        };
        let mut w = KVVec::with_capacity(self.ext.len() + 1, GFP_KERNEL)?;
        w.extend_from_slice(&self.ext[..=i], GFP_KERNEL)?;
        w.push(tail, GFP_KERNEL)?;
        w.extend_from_slice(&self.ext[i + 1..], GFP_KERNEL)?;
        self.ext = w;
        Ok(())
    }

    /// Moves every extent at or after logical block `from` by `delta`
    /// blocks (collapse: negative, insert: positive). The caller makes sure
    /// nothing ends up overlapping.
    pub(crate) fn shift(&mut self, from: u64, delta: i64) -> Result {
        let i = self.ext.partition_point(|e| e.logical < from);
        self.touch(i);
        for e in self.ext.iter_mut().filter(|e| e.logical >= from) {
            e.logical = e.logical.checked_add_signed(delta).ok_or(EINVAL)?;
        }
        // A collapse can make the extents on either side of the removed
        // range contiguous again: one extent, as if never split.
        if delta < 0 && i > 0 && i < self.ext.len() {
            if let Some(m) = format::extents_merge(self.ext[i - 1], self.ext[i]) {
                self.touch(i - 1);
                self.ext[i - 1] = m;
                crate::vecs::remove(&mut self.ext, i)?;
            }
        }
        Ok(())
    }

    /// Unmaps logical blocks `start..start + count`, calling `freed` for each
    /// physical range that no longer belongs to the file.
    pub(crate) fn remove(
        &mut self,
        start: u64,
        count: u64,
        mut freed: impl FnMut(u64, u32),
    ) -> Result {
        let i = self.index_after(start);
        self.touch(i);
        // Splitting an extent can add one entry.
        self.ext.push(Extent::default(), GFP_KERNEL)?;
        let len = self.ext.len() - 1;
        let mut gone = 0u64;
        let r = format::extents_remove_range(&mut self.ext, len, start, count, |p, n| {
            gone += u64::from(n);
            freed(p, n)
        })
        .map_err(|_| EIO);
        crate::vecs::truncate(&mut self.ext, *r.as_ref().unwrap_or(&len))?;
        r?;
        self.mapped -= gone;
        Ok(())
    }

    /// Forgets every extent (the inode is gone).
    pub(crate) fn clear(&mut self) {
        self.ext = KVVec::new();
        self.overflow = KVec::new();
        self.mapped = 0;
    }

    /// Logical block where the last `n` extents of those overlapping
    /// `[from, to)` start (`from` if there are at most `n`).
    pub(crate) fn tail_start(&self, from: u64, to: u64, n: usize) -> u64 {
        let lo = self.index_after(from);
        let hi = self.ext.partition_point(|e| e.logical < to);
        if hi.saturating_sub(lo) <= n {
            from
        } else {
            self.ext[hi - n].logical.max(from)
        }
    }

    /// Logical block where the `n`-th extent overlapping `[from, to)`
    /// starts (`to` if there are at most `n`): the end of the first chunk.
    pub(crate) fn chunk_end(&self, from: u64, to: u64, n: usize) -> u64 {
        let lo = self.index_after(from);
        let hi = self.ext.partition_point(|e| e.logical < to);
        if hi.saturating_sub(lo) <= n {
            to
        } else {
            self.ext[lo + n].logical.max(from)
        }
    }

    /// Re-reads the committed extent list (after a failed transaction left
    /// memory ahead of pmem).
    pub(crate) fn reload(&mut self, info: &SbInfo, ino: u64) -> Result {
        let d = read_record(info, ino)?;
        self.clear();
        load_extents(info, ino, &d, self)
    }
}

/// What the record readers below return for metadata that reads fine but
/// fails its checks; EIO from them means the media could not be read.
fn bad() -> Error {
    crate::glue::code::euclean()
}

/// The error for `what` of inode `ino` failing to load with `e`: a media
/// error stays EIO (the DAX layer has logged the block), anything else is
/// reported as corruption.
fn load_error(sb: &Sb, what: &str, ino: u64, e: Error) -> Error {
    if e == EIO {
        pr_err!(
            "{}: inode {}: {} unreadable (media error); returning EIO, run fsck.rdaxfs\n",
            sb.id(),
            ino,
            what
        );
        return EIO;
    }
    sb.info().corrupt(sb, what, ino)
}

/// Byte offset of inode `ino`'s record on the device.
pub(crate) fn record_offset(info: &SbInfo, ino: u64) -> Result<u64> {
    let (blk, off) = format::inode_location(&info.geo, ino).map_err(|_| EIO)?;
    Ok(blk * BLOCK_SIZE_U64 + off as u64)
}

/// Reads and checks inode `ino`'s record.
pub(crate) fn read_record(info: &SbInfo, ino: u64) -> Result<format::Inode> {
    let mut buf = [0u8; INODE_SIZE];
    info.dax.read(record_offset(info, ino)?, &mut buf)?;
    let d = format::Inode::decode(&buf, ino).map_err(|_| bad())?;
    d.check().map_err(|_| bad())?;
    // Counts no inode on this device can reach: a corrupt record, not
    // something to compute with (found by corrupt-mount: an orphan with
    // `blocks` = 0x43b60667b75edd64 overflowed the i_blocks product).
    if d.blocks > info.geo.block_count || u64::from(d.extent_count) > info.geo.block_count {
        return Err(bad());
    }
    Ok(d)
}

/// Reads a whole extent list: inline extents plus the overflow chain.
fn load_extents(info: &SbInfo, ino: u64, d: &format::Inode, fm: &mut FileMap) -> Result {
    for e in d.inline_extents() {
        fm.ext.push(*e, GFP_KERNEL)?;
    }
    let total = d.extent_count as usize;
    let mut next = d.overflow;
    let mut buf = KVec::from_elem(0u8, BLOCK_SIZE, GFP_KERNEL)?;
    let mut dense = true;
    while next != 0 && fm.ext.len() < total {
        if fm.overflow.len() as u64 > info.geo.block_count || next >= info.geo.block_count {
            return Err(bad());
        }
        info.dax.read(next * BLOCK_SIZE_U64, &mut buf)?;
        let h = ExtentBlockHeader::decode(&buf, ino).map_err(|_| bad())?;
        fm.overflow.push(next, GFP_KERNEL)?;
        for i in 0..h.count as usize {
            fm.ext.push(
                format::extent_block_entry(&buf, i).map_err(|_| bad())?,
                GFP_KERNEL,
            )?;
        }
        dense &= h.count as usize == EXTENT_BLOCK_CAPACITY || fm.ext.len() == total;
        next = h.next;
    }
    if fm.ext.len() != total {
        return Err(bad());
    }
    fm.mapped = fm.ext.iter().map(|e| u64::from(e.len)).sum();
    // A chain packed differently (another writer's layout) is rewritten
    // whole the first time it changes.
    fm.dirty_from = if dense { CLEAN } else { 0 };
    format::extents_validate(&fm.ext, info.geo.data_start, info.geo.data_end()).map_err(|_| bad())
}

fn times_of(d: &format::Inode) -> Times {
    Times {
        sec: [d.atime.sec, d.mtime.sec, d.ctime.sec],
        nsec: [d.atime.nsec, d.mtime.nsec, d.ctime.nsec],
    }
}

/// Returns inode `ino`, reading it from pmem if it is not cached.
pub(crate) fn iget(sb: &Sb, ino: u64) -> Result<ARef<RInode>> {
    let info = sb.info();
    if ino == 0 || ino > info.geo.inode_count || !info.inodes.lock().test(ino - 1) {
        return Err(info.corrupt(sb, "directory entry (free inode)", ino));
    }
    let new = match vfs_iget(sb, ino)? {
        Iget::Cached(i) => return Ok(i),
        Iget::New(n) => n,
    };
    let d = read_record(info, ino).map_err(|e| load_error(sb, "inode", ino, e))?;
    if d.nlink > crate::namei::LINK_MAX {
        return Err(info.corrupt(sb, "inode (link count above the maximum)", ino));
    }
    // A link count of 0 is an inode being freed: only an orphan (open
    // when it lost its last name, reclaimed after a crash) is read in that
    // state; one reached through a directory entry is corruption.
    if d.nlink == 0 && !info.journal.lock().orphans.contains(&ino) {
        return Err(info.corrupt(sb, "inode (link count 0 but still named)", ino));
    }
    {
        let mut fm = new.info().map.lock();
        load_extents(info, ino, &d, &mut fm).map_err(|e| load_error(sb, "extent list", ino, e))?;
        fm.parent = d.parent;
        fm.on_disk = true;
        if d.is_symlink() {
            fm.link =
                read_symlink(info, &fm, d.size).map_err(|e| load_error(sb, "symlink", ino, e))?;
        }
    }
    let link = new.info().map.lock().link.as_ptr();
    Ok(new.init(
        InodeParams {
            mode: d.mode,
            size: d.size,
            nlink: d.nlink,
            uid: d.uid,
            gid: d.gid,
            times: times_of(&d),
            blocks: d.blocks,
            rdev: decode_dev(d.rdev),
            generation: d.generation,
        },
        d.is_symlink().then_some(link),
    ))
}

fn read_symlink(info: &SbInfo, fm: &FileMap, size: u64) -> Result<KVec<u8>> {
    let (phys, _) = fm.lookup(0).ok_or_else(bad)?;
    let mut t = KVec::from_elem(0u8, size as usize + 1, GFP_KERNEL)?;
    let n = size as usize;
    info.dax.read(phys * BLOCK_SIZE_U64, &mut t[..n])?;
    if t[..n].contains(&0) {
        return Err(bad());
    }
    Ok(t)
}

/// A device number as the format stores it (Linux `new_encode_dev`:
/// minor low 8 bits, major, then the rest of the minor), from the kernel's
/// `dev_t` (major << 20 | minor).
fn encode_dev(dev: u32) -> u32 {
    let (major, minor) = (dev >> 20, dev & 0xf_ffff);
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

/// The kernel's `dev_t` of a stored device number (`new_decode_dev`).
fn decode_dev(dev: u32) -> u32 {
    let major = (dev & 0xf_ff00) >> 8;
    let minor = (dev & 0xff) | ((dev >> 12) & 0xf_ff00);
    (major << 20) | minor
}

/// Copies mode, owner and times from the VFS inode into a record.
pub(crate) fn set_attrs(d: &mut format::Inode, inode: &RInode) {
    let t = inode.times();
    let ts = |i: usize| format::Timespec {
        sec: t.sec[i],
        nsec: t.nsec[i],
    };
    d.mode = inode.mode();
    d.uid = inode.uid();
    d.gid = inode.gid();
    d.atime = ts(0);
    d.mtime = ts(1);
    d.ctime = ts(2);
}

/// The complete record of a new inode (not yet on pmem).
pub(crate) fn new_record(inode: &RInode, fm: &FileMap) -> format::Inode {
    let mut d = format::Inode {
        size: inode.size(),
        nlink: inode.nlink(),
        generation: inode.generation(),
        parent: fm.parent,
        rdev: encode_dev(inode.rdev()),
        ..format::Inode::default()
    };
    set_attrs(&mut d, inode);
    d
}

/// Stages `fm`'s extent list into record `d` and the overflow chain:
/// only the chain blocks whose contents change are rewritten (logged), or
/// past [`COW_BLOCKS`] written to new blocks; blocks the chain no longer
/// needs are freed. Returns the new chain, which the caller stores in
/// `fm.overflow` once the transaction has committed.
pub(crate) fn stage_extents(
    tx: &mut Tx<'_>,
    ino: u64,
    fm: &FileMap,
    d: &mut format::Inode,
) -> Result<KVec<u64>> {
    let n = fm.ext.len();
    let need = n
        .saturating_sub(INLINE_EXTENTS)
        .div_ceil(EXTENT_BLOCK_CAPACITY);
    let have = fm.overflow.len();
    let keep = have.min(need);
    // Blocks from `dirty` on hold changed extents.
    let dirty = if fm.dirty_from == CLEAN {
        need
    } else {
        fm.dirty_from.saturating_sub(INLINE_EXTENTS) / EXTENT_BLOCK_CAPACITY
    };
    let cow = keep.saturating_sub(dirty) > COW_BLOCKS;
    let mut chain = KVec::with_capacity(need, GFP_KERNEL)?;
    chain.extend_from_slice(&fm.overflow[..keep], GFP_KERNEL)?;
    // New blocks: past the old chain's end, or the copied part of it.
    let fresh_from = if cow { dirty } else { keep };
    let mut hint = chain.last().map_or(0, |b| b + 1);
    for i in fresh_from..need {
        let req = format::AllocRequest {
            want: 1,
            hint,
            large_file: false,
        };
        let (b, _) = tx.reserve_blocks(req)?;
        hint = b + 1;
        match chain.get_mut(i) {
            Some(slot) => *slot = b,
            None => chain.push(b, GFP_KERNEL)?,
        }
    }
    for &b in fm.overflow.get(fresh_from.min(have)..).unwrap_or(&[]) {
        tx.free_blocks(b, 1)?;
    }
    // Rewrite every block whose extents or `next` pointer change: from
    // the first dirty one, or the one before the first new block.
    let mut from = dirty.min(fresh_from.saturating_sub(1));
    if need < have {
        from = from.min(need.saturating_sub(1));
    }
    let rest = fm.ext.get(INLINE_EXTENTS..).unwrap_or(&[]);
    // A block for the new ones (most transactions have none).
    let mut buf = KVec::new();
    if fresh_from < need {
        buf = KVec::from_elem(0u8, BLOCK_SIZE, GFP_KERNEL)?;
    }
    for i in from..need {
        let lo = i * EXTENT_BLOCK_CAPACITY;
        let chunk = &rest[lo..rest.len().min(lo + EXTENT_BLOCK_CAPACITY)];
        let next = chain.get(i + 1).copied().unwrap_or(0);
        if i >= fresh_from {
            buf.fill(0);
            format::extent_block_encode(&mut buf, next, ino, chunk).map_err(|_| EIO)?;
            tx.write_new(chain[i], &buf)?;
        } else {
            let b = tx.block(chain[i])?;
            b.fill(0);
            format::extent_block_encode(b, next, ino, chunk).map_err(|_| EIO)?;
        }
    }
    d.extent_count = n as u32;
    d.blocks = fm.data_blocks() + need as u64;
    d.overflow = chain.first().copied().unwrap_or(0);
    d.extents = [Extent::default(); INLINE_EXTENTS];
    for (slot, e) in d.extents.iter_mut().zip(fm.ext.iter()) {
        *slot = *e;
    }
    Ok(chain)
}

/// Stages a regular file's or directory's record: attributes and size
/// from the VFS inode, the extent list from `fm`. Returns the new overflow
/// chain (see [`stage_extents`]).
pub(crate) fn stage_file(tx: &mut Tx<'_>, inode: &RInode, fm: &FileMap) -> Result<KVec<u64>> {
    let ino = inode.ino();
    let mut d = if fm.on_disk {
        tx.inode(ino)?
    } else {
        new_record(inode, fm)
    };
    set_attrs(&mut d, inode);
    d.size = inode.size();
    let chain = stage_extents(tx, ino, fm, &mut d)?;
    tx.set_inode(ino, &d)?;
    Ok(chain)
}

/// After a transaction that staged `fm` committed: memory matches pmem.
pub(crate) fn committed(inode: &RInode, fm: &mut FileMap, chain: KVec<u64>) {
    fm.overflow = chain;
    fm.dirty_from = CLEAN;
    fm.on_disk = true;
    inode.set_blocks(fm.data_blocks() + fm.overflow.len() as u64);
}

/// Commits `inode`'s size, attributes and extent list as one transaction,
/// plus whatever `more` stages. Called with the map lock held (that is
/// what `fm` proves). If the transaction fails, `fm` is re-read from pmem.
pub(crate) fn persist_with(
    inode: &RInode,
    fm: &mut FileMap,
    more: impl FnOnce(&mut Tx<'_>) -> Result,
) -> Result {
    let info = inode.sb().info();
    // The extent list staged below maps the pending blocks: their
    // allocation commits with it.
    let mut pending = core::mem::take(&mut fm.pending);
    match transact(info, |tx| {
        for e in pending.iter() {
            tx.alloc_reserved(e.physical, e.len.into())?;
        }
        more(tx)?;
        stage_file(tx, inode, fm)
    }) {
        Ok(chain) => {
            committed(inode, fm, chain);
            // Emptied, the vector keeps its buffer for the next write.
            crate::glue::vec_truncate(&mut pending, 0);
            fm.pending = pending;
            Ok(())
        }
        Err(e) => {
            if fm.on_disk {
                let _ = fm.reload(info, inode.ino());
            }
            // The write(2) that mapped pending blocks may still be copying
            // into them: they stay reserved and mapped for its own commit
            // (which gives them back if it fails).
            for p in pending.iter() {
                if fm.insert(*p).is_ok() {
                    let _ = fm.pending.push(*p, GFP_KERNEL);
                }
            }
            Err(e)
        }
    }
}

/// After the commit of a write(2) past EOF failed: forgets the blocks it
/// mapped (reserved in memory, never committed) and gives them back.
pub(crate) fn drop_pending(inode: &RInode, fm: &mut FileMap) {
    if fm.pending.is_empty() {
        return;
    }
    let info = inode.sb().info();
    let pending = core::mem::take(&mut fm.pending);
    let _ = fm.reload(info, inode.ino());
    let mut bm = info.blocks.lock();
    for p in pending.iter() {
        bm.release(p.physical, p.len.into());
    }
}

/// Commits `inode` (size, attributes, extent list).
pub(crate) fn persist(inode: &RInode, fm: &mut FileMap) -> Result {
    persist_with(inode, fm, |_| Ok(()))
}

/// `write_inode`: the VFS changed attributes (mode, owner, times).
pub(crate) fn write_inode(inode: &RInode) -> Result {
    let fm = inode.info().map.lock();
    if !fm.on_disk {
        return Ok(());
    }
    let info = inode.sb().info();
    transact(info, |tx| {
        tx.update_inode(inode.ino(), |d| set_attrs(d, inode))
    })
}

/// Unmaps logical blocks `[from, to)` of `inode` and frees them, as one
/// transaction with whatever `more` stages, or, for a range with very many
/// extents, as a series of transactions from the end of the range (each
/// leaving a consistent file: a prefix of the range still mapped), `more`
/// going with the last. The caller holds the map lock (`fm`).
pub(crate) fn unmap_range(
    inode: &RInode,
    fm: &mut FileMap,
    from: u64,
    to: u64,
    mut more: impl FnMut(&mut Tx<'_>) -> Result,
) -> Result {
    let mut end = to;
    loop {
        let start = fm.tail_start(from, end, FREE_CHUNK);
        let mut freed = KVVec::<(u64, u32)>::new();
        let mut oom = false;
        fm.remove(start, end - start, |p, n| {
            oom |= freed.push((p, n), GFP_KERNEL).is_err();
        })?;
        if oom {
            let _ = fm.reload(inode.sb().info(), inode.ino());
            return Err(ENOMEM);
        }
        let last = start == from;
        persist_with(inode, fm, |tx| {
            for &(p, n) in freed.iter() {
                tx.free_blocks(p, n.into())?;
            }
            if last {
                more(tx)?;
            }
            Ok(())
        })?;
        if last {
            return Ok(());
        }
        end = start;
        crate::glue::cond_resched();
    }
}

/// Reads the orphan list a crash left and frees every inode on it.
pub(crate) fn reclaim_orphans(sb: &Sb) -> Result<usize> {
    let info = sb.info();
    {
        let mut j = info.journal.lock();
        let mut chain = KVec::new();
        let mut ino = j.sb.orphan_head;
        while ino != 0 {
            // More entries than inodes means a loop.
            if chain.len() as u64 >= info.geo.inode_count {
                return Err(info.corrupt(sb, "orphan list", ino));
            }
            let d = read_record(info, ino).map_err(|_| info.corrupt(sb, "orphan inode", ino))?;
            chain.push(ino, GFP_KERNEL)?;
            ino = d.next_orphan;
        }
        // Memory keeps them oldest first.
        chain.reverse();
        j.orphans = chain;
    }
    if sb.read_only() {
        // Kept until the mount becomes writable (see `reconfigure`).
        return Ok(0);
    }
    reclaim_listed(sb)
}

/// Frees every inode on the in-memory orphan list (those a crash left);
/// returns how many.
pub(crate) fn reclaim_listed(sb: &Sb) -> Result<usize> {
    let info = sb.info();
    let mut n = 0;
    loop {
        let Some(ino) = info.journal.lock().orphans.last().copied() else {
            return Ok(n);
        };
        n += 1;
        pr_info!("{}: reclaiming orphan inode {}\n", sb.id(), ino);
        // The last reference evicts it: link count 0 frees it.
        drop(iget(sb, ino)?);
        free_deferred(info);
        // Still listed means eviction could not free it: stop, fsck fixes it.
        if info.journal.lock().orphans.last() == Some(&ino) {
            return Err(info.corrupt(sb, "orphan inode", ino));
        }
    }
}

/// Frees the evicted orphans whose freeing was deferred (see
/// `SbInfo::deferred`), if any: before anything reports or records the
/// free counts, and when inode numbers run out. If that fails they stay on
/// the orphan list until the next mount frees them, as when an eviction
/// fails.
pub(crate) fn free_deferred(info: &SbInfo) {
    if !info.deferred.lock().is_empty() {
        free_all_deferred(info);
    }
}

/// [`free_deferred`], even if the list is empty: the list is only taken
/// inside a transaction (`Tx::free_deferred`) and the numbers it frees
/// return to the allocator before the journal lock is released, so once
/// this transaction has run, every orphan deferred before the call is
/// freed, by it or by the one that took the list first. Returns how many
/// this one freed.
fn free_all_deferred(info: &SbInfo) -> usize {
    transact(info, |tx| tx.free_deferred()).unwrap_or_else(|e| {
        pr_err!(
            "freeing deferred unlinked inodes failed ({:?}); they stay on the orphan list and are freed at the next mount\n",
            e
        );
        0
    })
}

/// A free inode number (1-based), reserved in memory. If there is none,
/// the deferred frees are done first, as often as they free something:
/// other threads may take the numbers freed before this one gets one, and
/// defer more meanwhile.
pub(crate) fn reserve_ino(info: &SbInfo) -> Result<u64> {
    let mut freed = usize::MAX;
    loop {
        match info.inodes.lock().alloc_one(0) {
            Ok(i) => return Ok(i + 1),
            Err(e) if freed == 0 => return Err(e),
            Err(_) => {}
        }
        freed = free_all_deferred(info);
    }
}

/// `evict_inode`: an inode with no links and no users is freed on disk:
/// its blocks (a chunk per transaction for huge files), then, in one last
/// transaction, its remaining blocks, its place on the orphan list, its
/// record and its inode number.
pub(crate) fn evict(inode: &RInode) {
    if inode.is_bad() || inode.nlink() != 0 {
        return;
    }
    let info = inode.sb().info();
    let ino = inode.ino();
    let mut fm = inode.info().map.lock();
    if !fm.on_disk {
        // Never committed (its create failed): its transaction gave back
        // whatever it had reserved.
        return;
    }
    if fm.ext.is_empty() && fm.overflow.is_empty() {
        // Nothing to free but the record and the number: deferred, and
        // freed a batch per transaction (`SbInfo::deferred`).
        let batch = {
            let mut d = info.deferred.lock();
            d.push(ino, GFP_KERNEL).map(|()| d.len())
        };
        if let Ok(n) = batch {
            fm.clear();
            drop(fm);
            if n >= FREE_BATCH {
                free_deferred(info);
            }
            return;
        }
    }
    let res = (|| -> Result {
        if fm.ext.len() > FREE_CHUNK {
            // All but the first FREE_CHUNK extents, a chunk at a time.
            let keep_to = fm.ext[FREE_CHUNK].logical;
            unmap_range(
                inode,
                &mut fm,
                keep_to,
                u64::MAX >> format::BLOCK_SHIFT,
                |_| Ok(()),
            )?;
        }
        transact(info, |tx| {
            for e in fm.ext.iter() {
                tx.free_blocks(e.physical, e.len.into())?;
            }
            for &b in fm.overflow.iter() {
                tx.free_blocks(b, 1)?;
            }
            tx.orphan_remove(ino)?;
            tx.clear_inode(ino)?;
            tx.free_inode(ino)
        })
    })();
    fm.clear();
    if let Err(e) = res {
        pr_err!(
            "freeing inode {} failed ({:?}); it stays on the orphan list and is freed at the next mount\n",
            ino,
            e
        );
    }
}
