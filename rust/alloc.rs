//! The block and inode allocators: an in-memory copy of an on-disk bitmap,
//! searched and reserved in memory. The pmem bitmaps change only through
//! journal transactions (`journal.rs`), which set the bits of committed
//! allocations and clear the bits of committed frees.

use crate::format::{self, AllocRequest, BLOCK_SIZE_U64};
use crate::glue::dax::DaxDev;
use kernel::alloc::KVVec;
use kernel::prelude::*;

/// A bitmap whose bits `lo..hi` are allocatable.
pub(crate) struct Bitmap {
    map: KVVec<u8>,
    lo: u64,
    hi: u64,
    free: u64,
}

impl Bitmap {
    /// Reads `blocks` blocks of bitmap at `start_block`.
    pub(crate) fn load(
        dax: &DaxDev,
        start_block: u64,
        blocks: u64,
        lo: u64,
        hi: u64,
    ) -> Result<Self> {
        let bytes = (blocks * BLOCK_SIZE_U64) as usize;
        let mut map = KVVec::from_elem(0u8, bytes, GFP_KERNEL)?;
        dax.read(start_block * BLOCK_SIZE_U64, &mut map)?;
        let used = format::bits_count(&map, lo, hi);
        let free = (hi - lo).saturating_sub(used);
        Ok(Self { map, lo, hi, free })
    }

    /// Free bits.
    pub(crate) fn free(&self) -> u64 {
        self.free
    }

    /// Whether bit `i` is set.
    pub(crate) fn test(&self, i: u64) -> bool {
        format::bit_test(&self.map, i)
    }

    /// Reserves blocks by the format's policy: `(start, len)` with
    /// `1 <= len <= req.want`, or `ENOSPC`. They become allocated on pmem
    /// when a transaction commits `Tx::alloc_blocks`; until then (or if
    /// it fails, after [`Bitmap::release`]) pmem still has them free.
    pub(crate) fn alloc_blocks(&mut self, req: AllocRequest) -> Result<(u64, u64)> {
        let got = format::choose_blocks(&self.map, self.lo, self.hi, req);
        self.take(got)
    }

    /// As [`Bitmap::alloc_blocks`], for blocks a file maps at its logical
    /// block `logical`: the policy keeps the file's 2 MiB logical ranges
    /// on 2 MiB-aligned physical regions (`format::choose_file_blocks`).
    pub(crate) fn alloc_file_blocks(
        &mut self,
        req: AllocRequest,
        logical: u64,
    ) -> Result<(u64, u64)> {
        let got = format::choose_file_blocks(&self.map, self.lo, self.hi, req, logical);
        self.take(got)
    }

    /// Reserves the run the policy chose.
    fn take(&mut self, got: Option<(u64, u64)>) -> Result<(u64, u64)> {
        let (s, n) = got.ok_or(ENOSPC)?;
        format::bits_set_range(&mut self.map, s, n).map_err(|_| EIO)?;
        self.free -= n;
        Ok((s, n))
    }

    /// Reserves one bit at or after `hint`; returns its index, or `ENOSPC`.
    pub(crate) fn alloc_one(&mut self, hint: u64) -> Result<u64> {
        let i = format::find_free(&self.map, self.lo, self.hi, hint).ok_or(ENOSPC)?;
        format::bit_set(&mut self.map, i).map_err(|_| EIO)?;
        self.free -= 1;
        Ok(i)
    }

    /// Makes bits `start..start + n` available again: a reservation that
    /// was not committed, or bits a committed transaction freed. Releasing
    /// a free bit means the caller's metadata is corrupt: it is reported
    /// and the count stays right.
    pub(crate) fn release(&mut self, start: u64, n: u64) {
        if start < self.lo || !matches!(start.checked_add(n), Some(e) if e <= self.hi) {
            pr_err!(
                "release of bits {}+{} outside {}..{}\n",
                start,
                n,
                self.lo,
                self.hi
            );
            return;
        }
        let mut was_free = 0;
        for i in start..start + n {
            if !format::bit_clear(&mut self.map, i).unwrap_or(false) {
                was_free += 1;
            }
        }
        self.free += n - was_free;
        if was_free != 0 {
            pr_err!("freed {} already-free bits at {}\n", was_free, start);
        }
    }
}
