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
pub(crate) struct FileMap {
    /// Extents, sorted by logical block, non-overlapping.
    pub(crate) ext: KVec<Extent>,
    /// Overflow extent blocks, in chain order.
    pub(crate) overflow: KVec<u64>,
    /// Parent directory (directories only).
    pub(crate) parent: u64,
    /// Symlink target, NUL-terminated (symlinks only; never changes).
    pub(crate) link: KVec<u8>,
}

impl FileMap {
    fn empty() -> Self {
        Self {
            ext: KVec::new(),
            overflow: KVec::new(),
            parent: 0,
            link: KVec::new(),
        }
    }

    /// Data blocks mapped.
    pub(crate) fn data_blocks(&self) -> u64 {
        self.ext.iter().map(|e| u64::from(e.len)).sum()
    }

    /// Physical block and run length (blocks) mapping logical block `l`.
    pub(crate) fn lookup(&self, l: u64) -> Option<(u64, u64)> {
        format::extent_lookup(&self.ext, l).map(|(p, n)| (p, u64::from(n)))
    }

    /// Number of unmapped blocks from `l` up to the next extent (capped).
    pub(crate) fn hole_len(&self, l: u64, cap: u64) -> u64 {
        let next = self.ext.iter().map(|e| e.logical).filter(|&s| s > l).min();
        next.map_or(cap, |s| (s - l).min(cap))
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
        self.ext.push(Extent::default(), GFP_KERNEL)?;
        let len = self.ext.len() - 1;
        let n = format::extents_insert(&mut self.ext, len, e).map_err(|_| EIO)?;
        crate::vecs::truncate(&mut self.ext, n)
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
        let e = self.ext[i];
        let head = (l - e.logical) as u32;
        self.ext[i].len = head;
        let tail = Extent {
            logical: l,
            physical: e.physical + u64::from(head),
            len: e.len - head,
        };
        let mut w = KVec::with_capacity(self.ext.len() + 1, GFP_KERNEL)?;
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
        for e in self.ext.iter_mut().filter(|e| e.logical >= from) {
            e.logical = e.logical.checked_add_signed(delta).ok_or(EINVAL)?;
        }
        Ok(())
    }

    /// Unmaps logical blocks `start..start + count`, calling `freed` for each
    /// physical range that no longer belongs to the file.
    pub(crate) fn remove(&mut self, start: u64, count: u64, freed: impl FnMut(u64, u32)) -> Result {
        // Splitting an extent can add one entry.
        self.ext.push(Extent::default(), GFP_KERNEL)?;
        let len = self.ext.len() - 1;
        let n = format::extents_remove_range(&mut self.ext, len, start, count, freed)
            .map_err(|_| EIO)?;
        crate::vecs::truncate(&mut self.ext, n)
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
fn record_offset(info: &SbInfo, ino: u64) -> Result<u64> {
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

fn write_record(info: &SbInfo, ino: u64, d: &format::Inode) -> Result {
    let mut buf = [0u8; INODE_SIZE];
    d.encode(&mut buf, ino).map_err(|_| bad())?;
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
        next = h.next;
    }
    if fm.ext.len() != total {
        return Err(bad());
    }
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
    {
        let mut fm = new.info().map.lock();
        load_extents(info, ino, &d, &mut fm).map_err(|e| load_error(sb, "extent list", ino, e))?;
        fm.parent = d.parent;
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
            rdev: d.rdev,
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
/// allocating or freeing chain blocks as needed, and writes it.
fn write_overflow(info: &SbInfo, ino: u64, fm: &mut FileMap) -> Result {
    let rest = fm.ext.len().saturating_sub(INLINE_EXTENTS);
    let need = rest.div_ceil(EXTENT_BLOCK_CAPACITY);
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
    let mut buf = KVec::from_elem(0u8, BLOCK_SIZE, GFP_KERNEL)?;
    for (i, chunk) in fm
        .ext
        .get(INLINE_EXTENTS..)
        .unwrap_or(&[])
        .chunks(EXTENT_BLOCK_CAPACITY)
        .enumerate()
    {
        let next = fm.overflow.get(i + 1).copied().unwrap_or(0);
        buf.fill(0);
        format::extent_block_encode(&mut buf, next, ino, chunk).map_err(|_| EIO)?;
        info.dax.write(fm.overflow[i] * BLOCK_SIZE_U64, &buf)?;
    }
    info.dax.fence();
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
    fm.ext = KVec::new();
    fm.overflow = KVec::new();
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
