//! The block and inode allocators: an in-memory copy of an on-disk bitmap,
//! searched in memory and written through to pmem bit range by bit range.

use crate::format::{self, AllocRequest, BLOCK_SIZE_U64};
use crate::glue::dax::DaxDev;
use kernel::alloc::KVVec;
use kernel::prelude::*;

/// A bitmap whose bits `lo..hi` are allocatable.
pub(crate) struct Bitmap {
    map: KVVec<u8>,
    /// First block of the bitmap on the device.
    start_block: u64,
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
        Ok(Self {
            map,
            start_block,
            lo,
            hi,
            free,
        })
    }

    /// Free bits.
    pub(crate) fn free(&self) -> u64 {
        self.free
    }

    /// Whether bit `i` is set.
    pub(crate) fn test(&self, i: u64) -> bool {
        format::bit_test(&self.map, i)
    }

    /// Writes the bytes holding bits `first..first + n` to pmem.
    fn persist(&self, dax: &DaxDev, first: u64, n: u64) -> Result {
        let a = (first / 8) as usize;
        let b = (first + n).div_ceil(8) as usize;
        let bytes = self.map.get(a..b).ok_or(EIO)?;
        dax.write(self.start_block * BLOCK_SIZE_U64 + a as u64, bytes)?;
        dax.fence();
        Ok(())
    }

    /// Allocates blocks by the format's policy: `(start, len)` with
    /// `1 <= len <= req.want`, or `ENOSPC`.
    pub(crate) fn alloc_blocks(&mut self, dax: &DaxDev, req: AllocRequest) -> Result<(u64, u64)> {
        let (s, n) = format::choose_blocks(&self.map, self.lo, self.hi, req).ok_or(ENOSPC)?;
        format::bits_set_range(&mut self.map, s, n).map_err(|_| EIO)?;
        self.free -= n;
        self.persist(dax, s, n)?;
        Ok((s, n))
    }

    /// Allocates one bit at or after `hint`; returns its index, or `ENOSPC`.
    pub(crate) fn alloc_one(&mut self, dax: &DaxDev, hint: u64) -> Result<u64> {
        let i = format::find_free(&self.map, self.lo, self.hi, hint).ok_or(ENOSPC)?;
        format::bit_set(&mut self.map, i).map_err(|_| EIO)?;
        self.free -= 1;
        self.persist(dax, i, 1)?;
        Ok(i)
    }

    /// Frees bits `start..start + n`. Freeing a free bit means the caller's
    /// metadata is corrupt: it is reported, and the count stays right.
    pub(crate) fn free_range(&mut self, dax: &DaxDev, start: u64, n: u64) -> Result {
        if start < self.lo || start.checked_add(n).map_or(true, |e| e > self.hi) {
            return Err(EIO);
        }
        let mut was_free = 0;
        for i in start..start + n {
            if !format::bit_clear(&mut self.map, i).map_err(|_| EIO)? {
                was_free += 1;
            }
        }
        self.free += n - was_free;
        self.persist(dax, start, n)?;
        if was_free != 0 {
            pr_err!("freed {} already-free bits at {}\n", was_free, start);
            return Err(EIO);
        }
        Ok(())
    }
}
