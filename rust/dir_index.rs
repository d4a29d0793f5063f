//! The in-memory index of a directory: where each name lives (by its
//! stored hash) and how many slots of each block are used. Built from the
//! directory's blocks the first time a lookup or an insertion needs it and
//! kept up to date by the namespace operations after their transactions
//! commit, so a lookup reads one 272-byte slot instead of every block of
//! the directory, a negative lookup reads nothing, and an insertion finds
//! a free slot without a scan. It is a cache: pmem stays the truth,
//! and anything unexpected (an allocation failure, a transaction that
//! failed, sizes that disagree) drops the index, to be rebuilt from pmem
//! by the next user.
//!
//! Locking: `InodeInfo::dir` (`rdaxfs:dir_index`) guards it; it is taken
//! under the directory's i_rwsem and above its allocation lock (building
//! the index reads blocks through the block map), see `lock_order.rs`.

use crate::format::DIR_SLOTS;
use kernel::alloc::KVVec;
use kernel::prelude::*;

/// Table entry of a free bucket.
const EMPTY: u64 = 0;
/// Table entry of a removed name (probing continues past it).
const TOMB: u64 = u64::MAX;
/// Smallest table.
const MIN_BUCKETS: usize = 64;

/// A slot of a directory: block (logical) and slot.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Loc {
    pub(crate) block: u64,
    pub(crate) slot: usize,
}

impl Loc {
    /// The 32-bit code of a location (never 0 or `u32::MAX`), or `None`
    /// for a directory too large to index.
    fn code(self) -> Option<u32> {
        let c = self
            .block
            .checked_mul(DIR_SLOTS as u64)?
            .checked_add(self.slot as u64 + 1)?;
        u32::try_from(c).ok().filter(|&c| c != u32::MAX)
    }

    fn from_code(c: u32) -> Self {
        let i = u64::from(c - 1);
        Self {
            block: i / DIR_SLOTS as u64,
            slot: (i % DIR_SLOTS as u64) as usize,
        }
    }
}

fn key(hash: u32, loc: u32) -> u64 {
    (u64::from(hash) << 32) | u64::from(loc)
}

/// The index of one directory.
pub(crate) struct DirIndex {
    /// Open addressing with linear probing over `hash << 32 | loc code`.
    table: KVVec<u64>,
    /// Names in the table.
    live: usize,
    /// Buckets not EMPTY (names and tombstones).
    used: usize,
    /// Used slots of each directory block, as a mask (bit `s`: slot `s`).
    used_slots: KVVec<u16>,
    /// No block before this one has a free slot.
    first_free: usize,
}

impl DirIndex {
    /// An empty index of a directory with no blocks.
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            table: KVVec::from_elem(EMPTY, MIN_BUCKETS, GFP_KERNEL)?,
            live: 0,
            used: 0,
            used_slots: KVVec::new(),
            first_free: 0,
        })
    }

    /// Directory blocks the index knows.
    pub(crate) fn blocks(&self) -> u64 {
        self.used_slots.len() as u64
    }

    /// Whether no slot of any block is used.
    pub(crate) fn is_empty(&self) -> bool {
        self.used_slots.iter().all(|&m| m == 0)
    }

    /// Appends a block whose used slots are `mask` (building, or a grown
    /// directory).
    pub(crate) fn push_block(&mut self, mask: u16) -> Result {
        self.used_slots.push(mask, GFP_KERNEL)?;
        Ok(())
    }

    fn mask(&self) -> usize {
        self.table.len() - 1
    }

    /// Calls `f` with each location whose name has hash `hash`, until `f`
    /// returns `Ok(true)`.
    pub(crate) fn candidates(
        &self,
        hash: u32,
        mut f: impl FnMut(Loc) -> Result<bool>,
    ) -> Result<bool> {
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            let e = self.table[i];
            if e == EMPTY {
                return Ok(false);
            }
            if e != TOMB && (e >> 32) as u32 == hash && f(Loc::from_code(e as u32))? {
                return Ok(true);
            }
            i = (i + 1) & mask;
        }
    }

    /// Records the name with hash `hash` at `at` (a slot the block's mask
    /// already has when building; see [`DirIndex::inserted`]).
    pub(crate) fn add(&mut self, hash: u32, at: Loc) -> Result {
        let code = at.code().ok_or(EFBIG)?;
        if (self.used + 1) * 4 > self.table.len() * 3 {
            self.rehash()?;
        }
        let mask = self.mask();
        let mut i = hash as usize & mask;
        while self.table[i] != EMPTY && self.table[i] != TOMB {
            i = (i + 1) & mask;
        }
        if self.table[i] == EMPTY {
            self.used += 1;
        }
        self.table[i] = key(hash, code);
        self.live += 1;
        Ok(())
    }

    /// A committed insertion of the name with hash `hash` at `at`.
    pub(crate) fn inserted(&mut self, hash: u32, at: Loc) -> Result {
        let m = self.used_slots.get_mut(at.block as usize).ok_or(EINVAL)?;
        if *m & (1 << at.slot) != 0 {
            return Err(EINVAL);
        }
        *m |= 1 << at.slot;
        self.add(hash, at)
    }

    /// A committed removal of the name with hash `hash` at `at`.
    pub(crate) fn removed(&mut self, hash: u32, at: Loc) -> Result {
        let code = at.code().ok_or(EINVAL)?;
        let m = self.used_slots.get_mut(at.block as usize).ok_or(EINVAL)?;
        if *m & (1 << at.slot) == 0 {
            return Err(EINVAL);
        }
        *m &= !(1 << at.slot);
        self.first_free = self.first_free.min(at.block as usize);
        let want = key(hash, code);
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            match self.table[i] {
                EMPTY => return Err(EINVAL),
                e if e == want => {
                    self.table[i] = TOMB;
                    self.live -= 1;
                    return Ok(());
                }
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// A free slot, if any (the lowest).
    pub(crate) fn free_slot(&mut self) -> Option<Loc> {
        const FULL: u16 = (1 << DIR_SLOTS) - 1;
        let from = self.first_free.min(self.used_slots.len());
        let i = self.used_slots[from..].iter().position(|&m| m != FULL)?;
        self.first_free = from + i;
        let m = self.used_slots[self.first_free];
        Some(Loc {
            block: self.first_free as u64,
            slot: (!m).trailing_zeros() as usize,
        })
    }

    /// Grows (or, with many tombstones, just cleans) the table.
    fn rehash(&mut self) -> Result {
        let mut n = MIN_BUCKETS;
        while n < (self.live + 1) * 2 {
            n = n.checked_mul(2).ok_or(ENOMEM)?;
        }
        let mut t = KVVec::from_elem(EMPTY, n, GFP_KERNEL)?;
        let mask = n - 1;
        for &e in self.table.iter() {
            if e == EMPTY || e == TOMB {
                continue;
            }
            let mut i = (e >> 32) as usize & mask;
            while t[i] != EMPTY {
                i = (i + 1) & mask;
            }
            t[i] = e;
        }
        self.table = t;
        self.used = self.live;
        Ok(())
    }
}

/// The index of a directory inode, if built.
pub(crate) enum DirState {
    /// Not built (or dropped): the next user builds it.
    Unbuilt,
    /// Up to date with the committed directory.
    Built(DirIndex),
}
