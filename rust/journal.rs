//! The metadata journal: every metadata change is one transaction, made
//! all-or-nothing across a power cut by a redo log (format and protocol:
//! `format/src/layout/journal.rs`, docs/format.md).
//!
//! A transaction stages the metadata it changes (inode records, the header
//! and one slot of a directory block, overflow extent blocks, the
//! superblock) in memory, logs the 8-byte words that differ plus bitmap
//! bit ranges, commits with a
//! checksummed header, applies in place and clears the header. One
//! transaction is in the log at a time; the journal lock is held only for
//! that commit, never for the work that prepares it (zeroing, directory
//! searches), so operations on different files run in parallel and only
//! their commits are ordered. Since every commit applies before the lock
//! is released, the pmem image read under the lock is always the committed
//! state: a transaction edits what it reads there.
//!
//! Allocation and freeing against the in-memory bitmaps: blocks and inode
//! numbers are reserved in memory before the transaction and only become
//! allocated on pmem when it commits (a failed transaction gives them
//! back); bits a transaction frees stay taken in memory until it has
//! committed, so nothing can reuse them while the old owner may still be
//! the committed state.

use crate::format::{
    self, journal_apply, journal_read, FormatError, JournalTarget, JournalWriter, Superblock,
    BLOCK_SIZE_U64, INODE_SIZE, SB_SIZE,
};
use crate::glue::{self, dax::DaxDev};
use crate::super_block::SbInfo;
use kernel::alloc::KVVec;
use kernel::prelude::*;

/// State the journal lock (`rdaxfs:journal`) protects.
pub(crate) struct Journal {
    /// Staging area for one transaction, the journal area's size.
    buf: KVVec<u8>,
    /// Sequence number of the last commit.
    seq: u64,
    /// The superblock as committed (orphan head, counts, state).
    pub(crate) sb: Superblock,
    /// Inodes on the orphan list, oldest first: the last one is the
    /// on-disk head, and each one's `next_orphan` names the one before it.
    pub(crate) orphans: KVec<u64>,
    /// The orphan list as a transaction changes it; it becomes `orphans`
    /// when the transaction commits (the two vectors swap, so neither is
    /// allocated again once grown).
    orphans_next: KVec<u64>,
    /// Buffers every transaction reuses.
    scratch: Scratch,
    /// The last superblock a transaction encoded, and its bytes: the next
    /// one that changes the superblock (orphan list, counts) diffs against
    /// them instead of encoding the old one again, if it is the same.
    sb_enc: (Superblock, [u8; SB_SIZE]),
    /// Transactions attempted since mount (fault injection counts them).
    attempts: u64,
    /// Transactions committed and bytes logged since mount (debugfs).
    pub(crate) commits: u64,
    pub(crate) logged: u64,
    /// Where transactions spent their time since mount, in ns (the
    /// unmount line reports it): waiting for the journal lock, staging
    /// (the caller's closure), logging and committing (computing the
    /// records, steps 1 and 2 of [`Tx::commit`]), applying in place and
    /// clearing (steps 3 and 4).
    pub(crate) ns: [u64; 4],
}

impl Journal {
    /// The journal of a filesystem whose committed superblock is `sb`.
    pub(crate) fn new(sb: Superblock) -> Result<Self> {
        let bytes = (sb.journal_blocks * BLOCK_SIZE_U64) as usize;
        Ok(Self {
            buf: KVVec::from_elem(0u8, bytes, GFP_KERNEL)?,
            seq: 0,
            sb,
            orphans: KVec::new(),
            orphans_next: KVec::new(),
            scratch: Scratch::new(),
            sb_enc: (Superblock::default(), [0; SB_SIZE]),
            attempts: 0,
            commits: 0,
            logged: 0,
            ns: [0; 4],
        })
    }
}

/// Device offset of the journal area.
fn area(info: &SbInfo) -> u64 {
    info.geo.journal_start * BLOCK_SIZE_U64
}

/// Which bitmap a bit range belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bits {
    /// The block bitmap (bit = block number).
    Blocks,
    /// The inode bitmap (bit = inode number - 1).
    Inodes,
}

/// A metadata range staged by a transaction: `len` bytes at device offset
/// `off`, whose committed bytes are at `at` in [`Scratch::bytes`] and the
/// transaction's right after them.
#[derive(Clone, Copy)]
struct Staged {
    off: u64,
    len: usize,
    at: usize,
}

impl Staged {
    /// Where the transaction's copy is in [`Scratch::bytes`].
    fn cur(&self) -> core::ops::Range<usize> {
        self.at + self.len..self.at + 2 * self.len
    }
}

/// What a transaction builds, kept in the journal between transactions so
/// that once the buffers have grown a commit allocates nothing. Emptied at
/// the start of every transaction.
struct Scratch {
    staged: KVec<Staged>,
    /// The staged ranges' bytes (see [`Staged`]).
    bytes: KVVec<u8>,
    freed_blocks: KVec<(u64, u64)>,
    freed_inodes: KVec<u64>,
    taken_blocks: KVec<(u64, u64)>,
    taken_inodes: KVec<u64>,
    /// The deferred orphans a transaction frees ([`Tx::free_deferred`]).
    deferred: KVec<u64>,
}

impl Scratch {
    fn new() -> Self {
        Self {
            staged: KVec::new(),
            bytes: KVVec::new(),
            freed_blocks: KVec::new(),
            freed_inodes: KVec::new(),
            taken_blocks: KVec::new(),
            taken_inodes: KVec::new(),
            deferred: KVec::new(),
        }
    }

    fn clear(&mut self) {
        glue::vec_truncate(&mut self.staged, 0);
        glue::vec_truncate(&mut self.bytes, 0);
        glue::vec_truncate(&mut self.freed_blocks, 0);
        glue::vec_truncate(&mut self.freed_inodes, 0);
        glue::vec_truncate(&mut self.taken_blocks, 0);
        glue::vec_truncate(&mut self.taken_inodes, 0);
        glue::vec_truncate(&mut self.deferred, 0);
    }
}

/// Evicted orphans without blocks freed together (see `SbInfo::deferred`).
pub(crate) const FREE_BATCH: usize = 16;

/// A transaction being built; see [`transact`].
pub(crate) struct Tx<'a> {
    info: &'a SbInfo,
    w: JournalWriter<'a>,
    seq: &'a mut u64,
    attempts: &'a mut u64,
    sb: &'a mut Superblock,
    sb_old: Superblock,
    sb_enc: &'a mut (Superblock, [u8; SB_SIZE]),
    orphans: &'a mut KVec<u64>,
    /// The orphan list as this transaction leaves it, once it changes it.
    orphans_next: &'a mut KVec<u64>,
    orphans_changed: bool,
    s: &'a mut Scratch,
    stats: (&'a mut u64, &'a mut u64),
    ns: &'a mut [u64; 4],
}

/// Nanoseconds since `*t` (0 if the clock went backwards); `*t` becomes
/// now, so consecutive laps share one clock read.
fn lap(t: &mut u64) -> u64 {
    let now = glue::now_ns();
    let d = now.saturating_sub(*t);
    *t = now;
    d
}

fn fe(_: FormatError) -> Error {
    EIO
}

impl Tx<'_> {
    /// Stages the `len` bytes at device offset `off` (read from pmem, the
    /// committed state, the first time); returns their index in `staged`.
    /// A range must be staged with the same bounds every time: one that
    /// overlaps another staged range is refused (the two copies would
    /// disagree about the bytes they share).
    fn stage(&mut self, off: u64, len: usize) -> Result<Staged> {
        let end = off + len as u64;
        for s in self.s.staged.iter() {
            let s_end = s.off + s.len as u64;
            if s.off == off && s.len == len {
                return Ok(*s);
            }
            if off < s_end && s.off < end {
                pr_err!(
                    "journal: staged ranges {}+{} and {}+{} overlap\n",
                    s.off,
                    s.len,
                    off,
                    len
                );
                return Err(EIO);
            }
        }
        let bytes = &mut self.s.bytes;
        let at = bytes.len();
        self.info.dax.read_append(bytes, off, len)?;
        let r = glue::vec_extend_from_within(bytes, at, len)
            .and_then(|()| Ok(self.s.staged.push(Staged { off, len, at }, GFP_KERNEL)?));
        if let Err(e) = r {
            glue::vec_truncate(&mut self.s.bytes, at);
            return Err(e);
        }
        Ok(Staged { off, len, at })
    }

    /// The staged copy of the `len` bytes at device offset `off`.
    pub(crate) fn bytes(&mut self, off: u64, len: usize) -> Result<&mut [u8]> {
        let s = self.stage(off, len)?;
        Ok(&mut self.s.bytes[s.cur()])
    }

    /// The staged copies of two disjoint ranges at once.
    pub(crate) fn bytes2(
        &mut self,
        (off_a, len_a): (u64, usize),
        (off_b, len_b): (u64, usize),
    ) -> Result<(&mut [u8], &mut [u8])> {
        let a = self.stage(off_a, len_a)?.cur();
        let b = self.stage(off_b, len_b)?.cur();
        if a.end <= b.start {
            let (lo, hi) = self.s.bytes.split_at_mut(b.start);
            Ok((&mut lo[a], &mut hi[..b.end - b.start]))
        } else if b.end <= a.start {
            let (lo, hi) = self.s.bytes.split_at_mut(a.start);
            Ok((&mut hi[..a.end - a.start], &mut lo[b]))
        } else {
            Err(EINVAL)
        }
    }

    /// Block `phys` (staged).
    pub(crate) fn block(&mut self, phys: u64) -> Result<&mut [u8]> {
        self.bytes(phys * BLOCK_SIZE_U64, format::BLOCK_SIZE)
    }

    /// Inode `ino`'s record as this transaction sees it.
    pub(crate) fn inode(&mut self, ino: u64) -> Result<format::Inode> {
        let off = crate::inode::record_offset(self.info, ino)?;
        let buf = self.bytes(off, INODE_SIZE)?;
        let d = format::Inode::decode(buf, ino).map_err(fe)?;
        d.check().map_err(fe)?;
        Ok(d)
    }

    /// Sets inode `ino`'s record.
    pub(crate) fn set_inode(&mut self, ino: u64, d: &format::Inode) -> Result {
        let off = crate::inode::record_offset(self.info, ino)?;
        let buf = self.bytes(off, INODE_SIZE)?;
        d.encode(buf, ino).map_err(fe)
    }

    /// Changes inode `ino`'s record with `f`.
    pub(crate) fn update_inode(&mut self, ino: u64, f: impl FnOnce(&mut format::Inode)) -> Result {
        let mut d = self.inode(ino)?;
        f(&mut d);
        self.set_inode(ino, &d)
    }

    /// Clears inode `ino`'s record (a free slot reads as all zero).
    pub(crate) fn clear_inode(&mut self, ino: u64) -> Result {
        let off = crate::inode::record_offset(self.info, ino)?;
        self.bytes(off, INODE_SIZE)?.fill(0);
        Ok(())
    }

    /// Writes a block no committed metadata references yet (a new directory
    /// or overflow block, a symlink target) directly: the commit makes it
    /// durable before the records that link it.
    pub(crate) fn write_new(&mut self, phys: u64, data: &[u8]) -> Result {
        self.info.dax.write(phys * BLOCK_SIZE_U64, data)
    }

    fn bits(&mut self, which: Bits, set: bool, first: u64, count: u64) -> Result {
        let start = match which {
            Bits::Blocks => self.info.geo.block_bitmap_start,
            Bits::Inodes => self.info.geo.inode_bitmap_start,
        };
        self.w
            .bits(set, start * BLOCK_SIZE_U64, first, count)
            .map_err(|_| code_efbig())
    }

    /// Marks blocks the caller reserved in memory as allocated. From here
    /// on the reservation is the transaction's: if it does not commit, it
    /// gives the blocks back.
    pub(crate) fn alloc_blocks(&mut self, first: u64, count: u64) -> Result {
        self.s.taken_blocks.push((first, count), GFP_KERNEL)?;
        self.bits(Bits::Blocks, true, first, count)
    }

    /// Marks blocks the caller reserved in memory as allocated, the
    /// reservation staying the caller's: if this does not commit, the
    /// caller still holds them (a write(2) past EOF, see `FileMap::pending`).
    pub(crate) fn alloc_reserved(&mut self, first: u64, count: u64) -> Result {
        self.bits(Bits::Blocks, true, first, count)
    }

    /// Reserves and allocates blocks by the allocation policy.
    pub(crate) fn reserve_blocks(&mut self, req: format::AllocRequest) -> Result<(u64, u64)> {
        let (s, n) = self.info.blocks.lock().alloc_blocks(req)?;
        self.alloc_blocks(s, n)?;
        Ok((s, n))
    }

    /// Frees blocks; memory gives them out again once this has committed.
    pub(crate) fn free_blocks(&mut self, first: u64, count: u64) -> Result {
        self.bits(Bits::Blocks, false, first, count)?;
        self.s.freed_blocks.push((first, count), GFP_KERNEL)?;
        Ok(())
    }

    /// Marks inode number `ino` (reserved in memory) as allocated; like
    /// [`Tx::alloc_blocks`], an uncommitted transaction gives it back.
    pub(crate) fn alloc_inode(&mut self, ino: u64) -> Result {
        self.s.taken_inodes.push(ino, GFP_KERNEL)?;
        self.bits(Bits::Inodes, true, ino - 1, 1)
    }

    /// Frees inode number `ino` (after this commits).
    pub(crate) fn free_inode(&mut self, ino: u64) -> Result {
        self.bits(Bits::Inodes, false, ino - 1, 1)?;
        self.s.freed_inodes.push(ino, GFP_KERNEL)?;
        Ok(())
    }

    /// The superblock as this transaction will commit it.
    pub(crate) fn sb(&mut self) -> &mut Superblock {
        self.sb
    }

    /// The orphan list as this transaction has changed it so far.
    fn orphan_list(&mut self) -> Result<&mut KVec<u64>> {
        if !self.orphans_changed {
            glue::vec_truncate(self.orphans_next, 0);
            self.orphans_next
                .extend_from_slice(self.orphans, GFP_KERNEL)?;
            self.orphans_changed = true;
        }
        Ok(self.orphans_next)
    }

    /// Puts `ino` (its record already staged or committed) on the orphan
    /// list: it becomes the head and points to the old head.
    pub(crate) fn orphan_add(&mut self, ino: u64) -> Result {
        let mut d = self.inode(ino)?;
        self.orphan_add_to(ino, &mut d)?;
        self.set_inode(ino, &d)
    }

    /// [`Tx::orphan_add`] for a record the caller stages itself: `d`,
    /// `ino`'s record, gets the old head as its `next_orphan`; the caller
    /// then sets it with [`Tx::set_inode`] in this transaction.
    pub(crate) fn orphan_add_to(&mut self, ino: u64, d: &mut format::Inode) -> Result {
        let head = self.sb.orphan_head;
        self.orphan_list()?.push(ino, GFP_KERNEL)?;
        d.next_orphan = head;
        self.sb.orphan_head = ino;
        Ok(())
    }

    /// Takes `ino` off the orphan list, if it is on it: its successor (the
    /// one it points to) takes its place in the record or superblock that
    /// pointed to it. Only that one pointer changes.
    pub(crate) fn orphan_remove(&mut self, ino: u64) -> Result {
        let list = if self.orphans_changed {
            &**self.orphans_next
        } else {
            &**self.orphans
        };
        let Some(i) = list.iter().position(|&o| o == ino) else {
            return Ok(());
        };
        let next = if i == 0 { 0 } else { list[i - 1] };
        match list.get(i + 1).copied() {
            None => self.sb.orphan_head = next,
            Some(newer) => self.update_inode(newer, |d| d.next_orphan = next)?,
        }
        crate::vecs::remove(self.orphan_list()?, i)?;
        Ok(())
    }

    /// Frees the deferred orphans (see `SbInfo::deferred`): off the
    /// orphan list, record cleared, number freed; their blocks were
    /// freed before (they had none). They leave the deferred list now;
    /// if this transaction does not commit, they stay on the orphan list
    /// for the next mount to free. Returns how many there were.
    pub(crate) fn free_deferred(&mut self) -> Result<usize> {
        core::mem::swap(&mut *self.info.deferred.lock(), &mut self.s.deferred);
        for k in 0..self.s.deferred.len() {
            let ino = self.s.deferred[k];
            self.orphan_remove(ino)?;
            self.clear_inode(ino)?;
            self.free_inode(ino)?;
        }
        Ok(self.s.deferred.len())
    }

    /// Logs, commits, applies. Nothing has reached pmem's metadata (other
    /// than [`Tx::write_new`] blocks) before this. `t` is the clock at the
    /// start of the call (and at its end, after).
    fn commit(&mut self, t: &mut u64) -> Result {
        let info = self.info;
        for s in self.s.staged.iter() {
            let (orig, cur) = self.s.bytes[s.at..s.at + 2 * s.len].split_at(s.len);
            self.w.diff(s.off, orig, cur).map_err(|_| code_efbig())?;
        }
        if *self.sb != self.sb_old {
            if self.sb_enc.0 != self.sb_old {
                self.sb_old.encode(&mut self.sb_enc.1).map_err(fe)?;
                self.sb_enc.0 = self.sb_old;
            }
            let mut new = [0u8; SB_SIZE];
            self.sb.encode(&mut new).map_err(fe)?;
            self.w
                .diff(0, &self.sb_enc.1, &new)
                .map_err(|_| code_efbig())?;
            // Kept for the next transaction; if this one does not commit,
            // the next sees another old superblock and encodes it.
            *self.sb_enc = (*self.sb, new);
        }
        *self.attempts += 1;
        let every = u64::from(crate::glue::bugs::inject_tx_error());
        if every != 0 && *self.attempts % every == 0 {
            // TEST ONLY (inject_tx_error): fail as an I/O error before the
            // commit would, to exercise every caller's error path.
            return Err(EIO);
        }
        if self.w.is_empty() {
            // Blocks written with write_new are durable all the same.
            info.dax.fence();
            return Ok(());
        }
        let seq = *self.seq + 1;
        let len = self.w.finish(seq).map_err(fe)?;
        let bytes = self.w.as_bytes();
        let (head, recs) = bytes.split_at(format::JOURNAL_HEADER);
        // 1. Records (and write_new blocks) durable before the header.
        info.dax.write(area(info) + head.len() as u64, recs)?;
        info.dax.fence();
        // 2. The header commits: durable before any in-place store.
        info.dax.write(area(info), head)?;
        if !crate::glue::bugs::drop_commit_fence() {
            info.dax.fence();
        }
        *self.seq = seq;
        *self.stats.0 += 1;
        *self.stats.1 += len as u64;
        self.ns[2] += lap(t);
        // TEST ONLY (test_commit_delay_us): the committed transaction
        // waits here, where a power cut leaves it for mount to replay.
        crate::glue::bugs::commit_delay();
        // 3. Apply in place. An I/O error here leaves the committed log for
        // the next mount to replay; nothing more may be written.
        let tx = journal_read(bytes).map_err(fe)?.ok_or(EIO)?;
        let mut tgt = Target(&info.dax);
        for r in tx.records() {
            journal_apply(&mut tgt, &r.map_err(fe)?).map_err(fe)?;
        }
        info.dax.fence();
        // 4. Clear the commit mark.
        info.dax.write(area(info), &[0u8; 8])?;
        info.dax.fence();
        self.ns[3] += lap(t);
        Ok(())
    }

    /// Publishes the in-memory side of a committed transaction.
    fn finish(&mut self) {
        if self.orphans_changed {
            core::mem::swap(self.orphans, self.orphans_next);
        }
    }
}

/// A transaction that does not fit in the journal: the caller splits it.
fn code_efbig() -> Error {
    E2BIG
}

struct Target<'a>(&'a DaxDev);

impl JournalTarget for Target<'_> {
    fn read(&mut self, off: u64, buf: &mut [u8]) -> core::result::Result<(), FormatError> {
        self.0.read(off, buf).map_err(|_| FormatError::Truncated)
    }
    fn write(&mut self, off: u64, data: &[u8]) -> core::result::Result<(), FormatError> {
        self.0.write(off, data).map_err(|_| FormatError::Truncated)
    }
}

/// Runs `f` as one transaction: everything it stages commits together or
/// (if it fails, or the power fails before the commit) not at all. `f`
/// must not take locks above the journal lock (see `lock_order.rs`); it
/// runs with the journal lock held. The in-memory bitmaps get the bits the
/// transaction freed once it has committed.
pub(crate) fn transact<R>(info: &SbInfo, f: impl FnOnce(&mut Tx<'_>) -> Result<R>) -> Result<R> {
    let mut t = glue::now_ns();
    let mut g = info.journal.lock();
    let j = &mut *g;
    j.ns[0] += lap(&mut t);
    let sb_old = j.sb;
    j.scratch.clear();
    let mut tx = Tx {
        info,
        w: JournalWriter::new(&mut j.buf),
        seq: &mut j.seq,
        attempts: &mut j.attempts,
        sb: &mut j.sb,
        sb_old,
        sb_enc: &mut j.sb_enc,
        orphans: &mut j.orphans,
        orphans_next: &mut j.orphans_next,
        orphans_changed: false,
        s: &mut j.scratch,
        stats: (&mut j.commits, &mut j.logged),
        ns: &mut j.ns,
    };
    let r = f(&mut tx);
    tx.ns[1] += lap(&mut t);
    let r = r.and_then(|r| tx.commit(&mut t).map(|()| r));
    match r {
        Ok(r) => {
            tx.finish();
            // The frees are committed: the allocators may hand them out
            // again (their locks nest inside the journal's).
            release(info, &tx.s.freed_blocks, &tx.s.freed_inodes);
            Ok(r)
        }
        Err(e) => {
            *tx.sb = tx.sb_old;
            release(info, &tx.s.taken_blocks, &tx.s.taken_inodes);
            Err(e)
        }
    }
}

/// Gives committed frees (or uncommitted reservations) back to the
/// in-memory allocators.
fn release(info: &SbInfo, blocks: &[(u64, u64)], inodes: &[u64]) {
    if !blocks.is_empty() {
        let mut bm = info.blocks.lock();
        for &(s, n) in blocks {
            bm.release(s, n);
        }
    }
    if !inodes.is_empty() {
        let mut im = info.inodes.lock();
        for &i in inodes {
            im.release(i - 1, 1);
        }
    }
}

/// Mount: replays a committed transaction left by a crash and clears the
/// journal. Returns the replayed transaction's sequence number and size.
pub(crate) fn recover(dax: &DaxDev, sb: &Superblock) -> Result<Option<(u64, u32)>> {
    let bytes = (sb.journal_blocks * BLOCK_SIZE_U64) as usize;
    let mut area_buf = KVVec::from_elem(0u8, bytes, GFP_KERNEL)?;
    let at = sb.journal_start * BLOCK_SIZE_U64;
    dax.read(at, &mut area_buf)?;
    let tx = match format::journal_replay(sb, &area_buf, &mut Target(dax)) {
        Ok(tx) => tx,
        Err(e) => {
            pr_err!("journal: {}; the filesystem needs fsck.rdaxfs\n", e.msg());
            return Err(code::euclean());
        }
    };
    let Some(tx) = tx else {
        return Ok(None);
    };
    dax.fence();
    dax.write(at, &[0u8; 8])?;
    dax.fence();
    Ok(Some((tx.seq, tx.len)))
}

/// Starts a journal on a filesystem made before it had one: an empty
/// header (the area held nothing meaningful).
pub(crate) fn init_area(dax: &DaxDev, sb: &Superblock) -> Result {
    dax.write(
        sb.journal_start * BLOCK_SIZE_U64,
        &[0u8; format::JOURNAL_HEADER],
    )?;
    dax.fence();
    Ok(())
}

use crate::glue::code;
use kernel::error::code::E2BIG;
