//! Inodes: reading and writing the on-disk inode, the in-memory extent map
//! (guarded by the allocation lock), eviction and the orphan list.

use crate::format::{
    self, AllocRequest, Extent, ExtentBlockHeader, BLOCK_SIZE, BLOCK_SIZE_U64,
    EXTENT_BLOCK_CAPACITY, INLINE_EXTENTS, INODE_SIZE,
};
use crate::glue::fs::SuperBlock;
use crate::glue::inode::{iget as vfs_iget, Iget, Inode, InodeParams, Times};
use crate::super_block::SbInfo;
use crate::Rdaxfs;
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::Mutex;
use kernel::types::ARef;

/// Largest link count (as ext4's `EXT4_LINK_MAX`): link(2) and mkdir stop
/// there (`s_max_links`), and a larger count on pmem is corruption.
pub(crate) const LINK_MAX: u32 = 65_000;

/// An rdaxfs inode as the rest of the module sees it.
pub(crate) type RInode = Inode<Rdaxfs>;
type Sb = SuperBlock<Rdaxfs>;

/// Per-inode state.
#[pin_data]
pub(crate) struct InodeInfo {
    /// The allocation lock (`rdaxfs:inode_map`) and what it protects.
    #[pin]
    pub(crate) map: Mutex<FileMap>,
}

impl InodeInfo {
    /// Initialiser for a freshly allocated inode.
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            map <- new_mutex!(FileMap::empty(), "rdaxfs:inode_map"),
        })
    }
}

/// An inode's block map and the on-disk fields the VFS inode lacks.
///
/// The extent list can grow past what one kmalloc can hold (a file with
/// every other block mapped has one extent per block), so it lives in a
/// vmalloc-capable vector; lookups are binary searches.
pub(crate) struct FileMap {
    /// Extents, sorted by logical block, non-overlapping.
    pub(crate) ext: KVVec<Extent>,
    /// Overflow extent blocks, in chain order.
    pub(crate) overflow: KVVec<u64>,
    /// Parent directory (directories only).
    pub(crate) parent: u64,
    /// Symlink target, NUL-terminated (symlinks only; never changes).
    pub(crate) link: KVec<u8>,
    /// Lowest index of `ext` changed since the overflow chain was last
    /// written (`CLEAN`: none), so that persisting rewrites only the
    /// overflow blocks from there on.
    dirty_from: usize,
    /// Blocks mapped by `ext` (the sum of the extent lengths).
    mapped: u64,
}

/// `FileMap::dirty_from` when the overflow chain on pmem matches `ext`.
const CLEAN: usize = usize::MAX;

impl FileMap {
    fn empty() -> Self {
        Self {
            ext: KVVec::new(),
            overflow: KVVec::new(),
            parent: 0,
            link: KVec::new(),
            dirty_from: CLEAN,
            mapped: 0,
        }
    }

    /// Records that `ext[i..]` may have changed.
    fn touch(&mut self, i: usize) {
        self.dirty_from = self.dirty_from.min(i);
    }

    /// Data blocks mapped.
    pub(crate) fn data_blocks(&self) -> u64 {
        self.mapped
    }

    /// Physical block and run length (blocks) mapping logical block `l`.
    pub(crate) fn lookup(&self, l: u64) -> Option<(u64, u64)> {
        format::extent_lookup(&self.ext, l).map(|(p, n)| (p, u64::from(n)))
    }

    /// Number of unmapped blocks from `l` up to the next extent (capped).
    pub(crate) fn hole_len(&self, l: u64, cap: u64) -> u64 {
        let i = self.ext.partition_point(|e| e.logical <= l);
        let next = self.ext.get(i).map(|e| e.logical);
        next.map_or(cap, |s| (s - l).min(cap))
    }

    /// Physical block right after the extent that ends just before `l`, a
    /// good place to allocate `l` to keep the file contiguous.
    pub(crate) fn hint(&self, l: u64) -> u64 {
        let i = self.ext.partition_point(|e| e.logical < l);
        i.checked_sub(1)
            .and_then(|i| self.ext.get(i))
            .map_or(0, |e| e.physical + (l - e.logical))
    }

    /// Adds an extent (merging with neighbours).
    pub(crate) fn insert(&mut self, e: Extent) -> Result {
        let at = self.ext.partition_point(|x| x.logical < e.logical);
        self.ext.push(Extent::default(), GFP_KERNEL)?;
        let len = self.ext.len() - 1;
        let r = format::extents_insert(&mut self.ext, len, e).map_err(|_| EIO);
        // The spare slot goes in every case (`extents_insert` changes
        // nothing when it fails).
        let n = *r.as_ref().unwrap_or(&len);
        crate::vecs::truncate(&mut self.ext, n)?;
        r?;
        // A merge can change the extent before the insertion point.
        self.touch(at.saturating_sub(1));
        self.mapped += u64::from(e.len);
        Ok(())
    }

    /// Splits the extent that spans logical block `l` (if any) at `l`.
    pub(crate) fn split_at(&mut self, l: u64) -> Result {
        let i = self.ext.partition_point(|e| e.logical < l);
        let Some(i) = i.checked_sub(1) else {
            return Ok(());
        };
        let e = self.ext[i];
        if l >= e.logical + u64::from(e.len) {
            return Ok(());
        }
        let head = (l - e.logical) as u32;
        let tail = Extent {
            logical: l,
            physical: e.physical + u64::from(head),
            len: e.len - head,
        };
        self.ext.push(Extent::default(), GFP_KERNEL)?;
        let len = self.ext.len();
        self.ext.copy_within(i + 1..len - 1, i + 2);
        self.ext[i].len = head;
        self.ext[i + 1] = tail;
        self.touch(i);
        Ok(())
    }

    /// Moves every extent at or after logical block `from` by `delta`
    /// blocks (collapse: negative, insert: positive). The caller makes sure
    /// nothing ends up overlapping.
    pub(crate) fn shift(&mut self, from: u64, delta: i64) -> Result {
        let first = self.ext.partition_point(|e| e.logical < from);
        self.touch(first);
        for e in self.ext[first..].iter_mut() {
            e.logical = e.logical.checked_add_signed(delta).ok_or(EINVAL)?;
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
        let first = self
            .ext
            .partition_point(|e| e.logical + u64::from(e.len) <= start);
        // Splitting an extent can add one entry.
        self.ext.push(Extent::default(), GFP_KERNEL)?;
        let len = self.ext.len() - 1;
        let mut gone = 0u64;
        let r = format::extents_remove_range(&mut self.ext, len, start, count, |p, n| {
            gone += u64::from(n);
            freed(p, n)
        })
        .map_err(|_| EIO);
        let n = *r.as_ref().unwrap_or(&len);
        crate::vecs::truncate(&mut self.ext, n)?;
        r?;
        self.touch(first);
        self.mapped -= gone;
        Ok(())
    }

    /// Forgets every extent and overflow block (they have been freed).
    fn clear(&mut self) {
        self.ext = KVVec::new();
        self.overflow = KVVec::new();
        self.mapped = 0;
        self.dirty_from = CLEAN;
    }
}

/// Byte offset of inode `ino`'s record on the device.
fn record_offset(info: &SbInfo, ino: u64) -> Result<u64> {
    let (blk, off) = format::inode_location(&info.geo, ino).map_err(|_| EIO)?;
    Ok(blk * BLOCK_SIZE_U64 + off as u64)
}

/// Reads and checks inode `ino`'s record.
pub(crate) fn read_record(info: &SbInfo, ino: u64) -> Result<format::Inode> {
    let mut buf = [0u8; INODE_SIZE];
    info.dax.read(record_offset(info, ino)?, &mut buf)?;
    let d = format::Inode::decode(&buf, ino).map_err(|_| EIO)?;
    d.check().map_err(|_| EIO)?;
    Ok(d)
}

fn write_record(info: &SbInfo, ino: u64, d: &format::Inode) -> Result {
    let mut buf = [0u8; INODE_SIZE];
    d.encode(&mut buf, ino).map_err(|_| EIO)?;
    info.dax.write(record_offset(info, ino)?, &buf)?;
    info.dax.fence();
    Ok(())
}

/// Reads a whole extent list: inline extents plus the overflow chain.
fn load_extents(info: &SbInfo, ino: u64, d: &format::Inode, fm: &mut FileMap) -> Result {
    for e in d.inline_extents() {
        fm.ext.push(*e, GFP_KERNEL)?;
    }
    let total = d.extent_count as usize;
    let mut next = d.overflow;
    let mut buf = KVec::from_elem(0u8, BLOCK_SIZE, GFP_KERNEL)?;
    while next != 0 && fm.ext.len() < total {
        if fm.overflow.len() as u64 > info.geo.block_count || next >= info.geo.block_count {
            return Err(EIO);
        }
        info.dax.read(next * BLOCK_SIZE_U64, &mut buf)?;
        let h = ExtentBlockHeader::decode(&buf, ino).map_err(|_| EIO)?;
        fm.overflow.push(next, GFP_KERNEL)?;
        for i in 0..h.count as usize {
            fm.ext.push(
                format::extent_block_entry(&buf, i).map_err(|_| EIO)?,
                GFP_KERNEL,
            )?;
        }
        next = h.next;
    }
    if fm.ext.len() != total {
        return Err(EIO);
    }
    format::extents_validate(&fm.ext, info.geo.data_start, info.geo.data_end()).map_err(|_| EIO)?;
    fm.mapped = fm.ext.iter().map(|e| u64::from(e.len)).sum();
    fm.dirty_from = CLEAN;
    Ok(())
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
    let d = read_record(info, ino).map_err(|_| info.corrupt(sb, "inode", ino))?;
    if d.nlink > LINK_MAX {
        return Err(info.corrupt(sb, "inode (link count above the maximum)", ino));
    }
    // A link count of 0 is an inode being freed: only an orphan (open
    // when it lost its last name, reclaimed after a crash) is read in that
    // state; one reached through a directory entry is corruption.
    if d.nlink == 0 && !info.state.lock().orphans.contains(&ino) {
        return Err(info.corrupt(sb, "inode (link count 0 but still named)", ino));
    }
    {
        let mut fm = new.info().map.lock();
        load_extents(info, ino, &d, &mut fm).map_err(|_| info.corrupt(sb, "extent list", ino))?;
        fm.parent = d.parent;
        if d.is_symlink() {
            fm.link =
                read_symlink(info, &fm, d.size).map_err(|_| info.corrupt(sb, "symlink", ino))?;
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
            rdev: d.rdev,
            generation: d.generation,
        },
        d.is_symlink().then_some(link),
    ))
}

fn read_symlink(info: &SbInfo, fm: &FileMap, size: u64) -> Result<KVec<u8>> {
    let (phys, _) = fm.lookup(0).ok_or(EIO)?;
    let mut t = KVec::from_elem(0u8, size as usize + 1, GFP_KERNEL)?;
    let n = size as usize;
    info.dax.read(phys * BLOCK_SIZE_U64, &mut t[..n])?;
    if t[..n].contains(&0) {
        return Err(EIO);
    }
    Ok(t)
}

/// Builds the on-disk record of `inode` from the VFS inode and `fm`.
fn record(inode: &RInode, fm: &FileMap) -> format::Inode {
    let t = inode.times();
    let ts = |i: usize| format::Timespec {
        sec: t.sec[i],
        nsec: t.nsec[i],
    };
    let mut d = format::Inode {
        mode: inode.mode(),
        uid: inode.uid(),
        gid: inode.gid(),
        flags: 0,
        size: inode.size(),
        nlink: inode.nlink(),
        generation: inode.generation(),
        atime: ts(0),
        mtime: ts(1),
        ctime: ts(2),
        extent_count: fm.ext.len() as u32,
        blocks: fm.data_blocks() + fm.overflow.len() as u64,
        next_orphan: 0,
        parent: fm.parent,
        overflow: fm.overflow.first().copied().unwrap_or(0),
        rdev: inode.rdev(),
        extents: [Extent::default(); INLINE_EXTENTS],
    };
    for (slot, e) in d.extents.iter_mut().zip(fm.ext.iter()) {
        *slot = *e;
    }
    d
}

/// Makes the overflow chain hold the extents past the inline ones,
/// allocating or freeing chain blocks as needed, and writes the blocks
/// that changed: those holding extents from `fm.dirty_from` on, and the
/// block whose `next` link changes when the chain grows or shrinks. (An
/// append rewrites one block, not the whole chain of a 150K-extent file.)
fn write_overflow(info: &SbInfo, ino: u64, fm: &mut FileMap) -> Result {
    let rest = fm.ext.len().saturating_sub(INLINE_EXTENTS);
    let need = rest.div_ceil(EXTENT_BLOCK_CAPACITY);
    let had = fm.overflow.len();
    while fm.overflow.len() < need {
        let hint = fm.overflow.last().map_or(0, |b| b + 1);
        let req = AllocRequest {
            want: 1,
            hint,
            large_file: false,
        };
        let (b, _) = info.blocks.lock().alloc_blocks(&info.dax, req)?;
        fm.overflow.push(b, GFP_KERNEL)?;
    }
    while fm.overflow.len() > need {
        let b = *fm.overflow.last().ok_or(EIO)?;
        let n = fm.overflow.len() - 1;
        crate::vecs::truncate(&mut fm.overflow, n)?;
        info.blocks.lock().free_range(&info.dax, b, 1)?;
    }
    let mut first = match fm.dirty_from {
        CLEAN => need,
        d => d.saturating_sub(INLINE_EXTENTS) / EXTENT_BLOCK_CAPACITY,
    };
    if need != had {
        // The last block of the shorter chain gets a new `next`.
        first = first.min(need.min(had).saturating_sub(1));
    }
    if first < need {
        let mut buf = KVec::from_elem(0u8, BLOCK_SIZE, GFP_KERNEL)?;
        let exts = fm.ext.get(INLINE_EXTENTS..).unwrap_or(&[]);
        for (i, chunk) in exts.chunks(EXTENT_BLOCK_CAPACITY).enumerate().skip(first) {
            let next = fm.overflow.get(i + 1).copied().unwrap_or(0);
            buf.fill(0);
            format::extent_block_encode(&mut buf, next, ino, chunk).map_err(|_| EIO)?;
            info.dax.write(fm.overflow[i] * BLOCK_SIZE_U64, &buf)?;
        }
        info.dax.fence();
    }
    fm.dirty_from = CLEAN;
    Ok(())
}

/// Writes `inode` (VFS fields and `fm`) to pmem. Called with the map lock
/// held (that is what `fm` proves).
pub(crate) fn persist(inode: &RInode, fm: &mut FileMap) -> Result {
    let info = inode.sb().info();
    write_overflow(info, inode.ino(), fm)?;
    inode.set_blocks(fm.data_blocks() + fm.overflow.len() as u64);
    let mut d = record(inode, fm);
    // The orphan link lives in the superblock state; write under its lock
    // so that orphan list updates of this record are never lost.
    let st = info.state.lock();
    d.next_orphan = st.orphan_next(inode.ino());
    write_record(info, inode.ino(), &d)
}

/// `write_inode`: the VFS changed attributes.
pub(crate) fn write_inode(inode: &RInode) -> Result {
    let mut fm = inode.info().map.lock();
    persist(inode, &mut fm)
}

/// Adds `inode` (link count now 0) to the orphan list, so that its blocks
/// are reclaimed after a crash if it is still open at that time.
pub(crate) fn orphan_add(inode: &RInode) -> Result {
    let info = inode.sb().info();
    let mut st = info.state.lock();
    st.orphans.push(inode.ino(), GFP_KERNEL)?;
    st.write_orphans(info)
}

/// Removes `ino` from the orphan list (it is being freed).
pub(crate) fn orphan_remove(info: &SbInfo, ino: u64) -> Result {
    let mut st = info.state.lock();
    if let Some(i) = st.orphans.iter().position(|&o| o == ino) {
        crate::vecs::remove(&mut st.orphans, i)?;
        st.write_orphans(info)?;
    }
    Ok(())
}

impl crate::super_block::SbState {
    /// The orphan following `ino` on the list (0: none or not an orphan).
    pub(crate) fn orphan_next(&self, ino: u64) -> u64 {
        let i = self.orphans.iter().position(|&o| o == ino);
        i.and_then(|i| self.orphans.get(i + 1))
            .copied()
            .unwrap_or(0)
    }

    /// Rewrites the on-disk chain: superblock head, then each orphan's link.
    fn write_orphans(&mut self, info: &SbInfo) -> Result {
        for (i, &ino) in self.orphans.iter().enumerate() {
            let next = self.orphans.get(i + 1).copied().unwrap_or(0);
            let mut d = read_record(info, ino)?;
            if d.next_orphan != next {
                d.next_orphan = next;
                write_record(info, ino, &d)?;
            }
        }
        self.sb.orphan_head = self.orphans.first().copied().unwrap_or(0);
        crate::super_block::write_sb(info, self)
    }
}

/// Reads the orphan list a crash left and frees every inode on it.
pub(crate) fn reclaim_orphans(sb: &Sb) -> Result {
    let info = sb.info();
    {
        let mut st = info.state.lock();
        let mut ino = st.sb.orphan_head;
        while ino != 0 {
            if st.orphans.len() as u64 >= info.geo.inode_count || st.orphans.contains(&ino) {
                return Err(info.corrupt(sb, "orphan list", ino));
            }
            let d = read_record(info, ino).map_err(|_| info.corrupt(sb, "orphan inode", ino))?;
            st.orphans.push(ino, GFP_KERNEL)?;
            ino = d.next_orphan;
        }
    }
    if sb.read_only() {
        return Ok(());
    }
    loop {
        let Some(ino) = info.state.lock().orphans.first().copied() else {
            return Ok(());
        };
        pr_info!("{}: reclaiming orphan inode {}\n", sb.id(), ino);
        // The last reference evicts it: link count 0 frees it.
        drop(iget(sb, ino)?);
        // Still listed means eviction could not free it: stop, fsck fixes it.
        if info.state.lock().orphans.first() == Some(&ino) {
            return Err(info.corrupt(sb, "orphan inode", ino));
        }
    }
}

/// Frees every block of `fm` (data and overflow).
pub(crate) fn free_all(info: &SbInfo, fm: &mut FileMap) -> Result {
    let mut bm = info.blocks.lock();
    let mut res = Ok(());
    for e in fm.ext.iter() {
        if let Err(e) = bm.free_range(&info.dax, e.physical, e.len.into()) {
            res = Err(e);
        }
    }
    for &b in fm.overflow.iter() {
        if let Err(e) = bm.free_range(&info.dax, b, 1) {
            res = Err(e);
        }
    }
    fm.clear();
    res
}

/// `evict_inode`: an inode with no links and no users is freed on disk.
pub(crate) fn evict(inode: &RInode) {
    if inode.is_bad() || inode.nlink() != 0 {
        return;
    }
    let info = inode.sb().info();
    let ino = inode.ino();
    let mut fm = inode.info().map.lock();
    if let Err(e) = free_all(info, &mut fm) {
        pr_err!("freeing the blocks of inode {} failed: {:?}\n", ino, e);
    }
    drop(fm);
    let cleared = write_record(info, ino, &format::Inode::default());
    let unlisted = orphan_remove(info, ino);
    let freed = info.inodes.lock().free_range(&info.dax, ino - 1, 1);
    if cleared.and(unlisted).and(freed).is_err() {
        pr_err!("freeing inode {} failed; run fsck.rdaxfs -y\n", ino);
    }
}
