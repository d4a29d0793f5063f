//! Extents, overflow extent blocks and pure extent-list operations.
//!
//! A file's extents form one list sorted by logical block: the first
//! `INLINE_EXTENTS` live in the inode, the rest in a chain of overflow
//! extent blocks (each holding up to `EXTENT_BLOCK_CAPACITY`).

use super::codec::{rd_u32, rd_u64, sub, sub_mut, wr_u32, wr_u64};
use super::{crc32c_update, FormatError, BLOCK_SIZE, BLOCK_SIZE_U64, MAX_FILE_SIZE};

/// Size of one encoded extent.
pub const EXTENT_SIZE: usize = 24;
/// Magic of an overflow extent block ("RDXE" little-endian).
pub const EXTENT_BLOCK_MAGIC: u32 = 0x4558_4452;
/// Size of the overflow extent block header.
pub const EXTENT_BLOCK_HEADER: usize = 32;
/// Offset of the extent block checksum: CRC-32C of bytes `0..28` then
/// `32..4096`.
pub const EXTENT_BLOCK_CRC_OFF: usize = 28;
/// Extents per overflow extent block.
pub const EXTENT_BLOCK_CAPACITY: usize = (BLOCK_SIZE - EXTENT_BLOCK_HEADER) / EXTENT_SIZE;
/// Largest logical block a file may map (exclusive).
pub const MAX_LOGICAL_BLOCK: u64 = MAX_FILE_SIZE / BLOCK_SIZE_U64;

const _: () = assert!(EXTENT_BLOCK_CAPACITY == 169);
const _: () = assert!(EXTENT_BLOCK_HEADER + EXTENT_BLOCK_CAPACITY * EXTENT_SIZE <= BLOCK_SIZE);

/// A run of `len` blocks: logical `logical..` maps to physical `physical..`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Extent {
    /// First logical block in the file.
    pub logical: u64,
    /// First physical block on the device.
    pub physical: u64,
    /// Number of blocks (never 0 in a valid list).
    pub len: u32,
}

impl Extent {
    /// Decodes 24 bytes: logical u64, physical u64, len u32, pad u32.
    pub fn decode(b: &[u8]) -> Result<Self, FormatError> {
        Ok(Self {
            logical: rd_u64(b, 0)?,
            physical: rd_u64(b, 8)?,
            len: rd_u32(b, 16)?,
        })
    }

    /// Encodes into 24 bytes (pad written as 0).
    pub fn encode(&self, b: &mut [u8]) -> Result<(), FormatError> {
        wr_u64(b, 0, self.logical)?;
        wr_u64(b, 8, self.physical)?;
        wr_u32(b, 16, self.len)?;
        wr_u32(b, 20, 0)
    }

    /// One past the last logical block, or `None` on overflow.
    pub fn logical_end(&self) -> Option<u64> {
        self.logical.checked_add(u64::from(self.len))
    }

    /// One past the last physical block, or `None` on overflow.
    pub fn physical_end(&self) -> Option<u64> {
        self.physical.checked_add(u64::from(self.len))
    }
}

/// Header of an overflow extent block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ExtentBlockHeader {
    /// Extents used in this block.
    pub count: u32,
    /// Next overflow block (0 = end of chain).
    pub next: u64,
    /// Inode that owns this block.
    pub owner: u64,
}

impl ExtentBlockHeader {
    /// Decodes and verifies magic, checksum, owner (`expect_owner`) and count.
    pub fn decode(buf: &[u8], expect_owner: u64) -> Result<Self, FormatError> {
        if rd_u32(buf, 0)? != EXTENT_BLOCK_MAGIC {
            return Err(FormatError::BadMagic);
        }
        if extent_block_crc(buf)? != rd_u32(buf, EXTENT_BLOCK_CRC_OFF)? {
            return Err(FormatError::BadChecksum);
        }
        let hdr = Self {
            count: rd_u32(buf, 4)?,
            next: rd_u64(buf, 8)?,
            owner: rd_u64(buf, 16)?,
        };
        if hdr.owner != expect_owner {
            return Err(FormatError::BadOwner);
        }
        if hdr.count as usize > EXTENT_BLOCK_CAPACITY {
            return Err(FormatError::BadCount);
        }
        Ok(hdr)
    }
}

fn extent_block_crc(buf: &[u8]) -> Result<u32, FormatError> {
    let head = sub(buf, 0, EXTENT_BLOCK_CRC_OFF)?;
    let tail = sub(buf, EXTENT_BLOCK_HEADER, BLOCK_SIZE)?;
    Ok(crc32c_update(crc32c_update(0, head), tail))
}

fn eb_off(i: usize) -> usize {
    EXTENT_BLOCK_HEADER + i * EXTENT_SIZE
}

/// Extent `i` of an overflow extent block (`i < EXTENT_BLOCK_CAPACITY`).
pub fn extent_block_entry(buf: &[u8], i: usize) -> Result<Extent, FormatError> {
    if i >= EXTENT_BLOCK_CAPACITY {
        return Err(FormatError::OutOfRange);
    }
    Extent::decode(sub(buf, eb_off(i), eb_off(i + 1))?)
}

/// Writes a whole overflow extent block holding `exts` (at most
/// `EXTENT_BLOCK_CAPACITY`), chained to `next`, owned by `owner`.
pub fn extent_block_encode(
    buf: &mut [u8],
    next: u64,
    owner: u64,
    exts: &[Extent],
) -> Result<(), FormatError> {
    if exts.len() > EXTENT_BLOCK_CAPACITY {
        return Err(FormatError::BadCount);
    }
    let b = buf.get_mut(..BLOCK_SIZE).ok_or(FormatError::Truncated)?;
    b.fill(0);
    wr_u32(b, 0, EXTENT_BLOCK_MAGIC)?;
    wr_u32(b, 4, exts.len() as u32)?;
    wr_u64(b, 8, next)?;
    wr_u64(b, 16, owner)?;
    for (i, e) in exts.iter().enumerate() {
        e.encode(sub_mut(b, eb_off(i), eb_off(i + 1))?)?;
    }
    let crc = extent_block_crc(b)?;
    wr_u32(b, EXTENT_BLOCK_CRC_OFF, crc)
}

/// Finds logical block `lblk` in a sorted extent list. Returns the
/// physical block and how many blocks the mapping runs on from there.
pub fn extent_lookup(exts: &[Extent], lblk: u64) -> Option<(u64, u32)> {
    let idx = exts.partition_point(|e| e.logical <= lblk);
    let e = exts.get(idx.checked_sub(1)?)?;
    let delta = lblk - e.logical;
    if delta >= u64::from(e.len) {
        return None;
    }
    let phys = e.physical.checked_add(delta)?;
    Some((phys, e.len - delta as u32))
}

/// Checks a whole extent list: non-empty extents, physical blocks inside
/// `lo..hi`, logical blocks below `MAX_LOGICAL_BLOCK`, sorted by logical
/// block and non-overlapping. (Physical overlap between extents is a
/// cross-file question left to the checker's ownership map.)
pub fn extents_validate(exts: &[Extent], lo: u64, hi: u64) -> Result<(), FormatError> {
    let mut prev_end = 0u64;
    for e in exts {
        extent_validate(e, lo, hi)?;
        if e.logical < prev_end {
            return Err(FormatError::ExtentOverlap);
        }
        prev_end = e.logical_end().ok_or(FormatError::ExtentOutOfRange)?;
    }
    Ok(())
}

/// Checks one extent: non-empty, physical inside `lo..hi`, logical in range.
pub fn extent_validate(e: &Extent, lo: u64, hi: u64) -> Result<(), FormatError> {
    let pend = e.physical_end().ok_or(FormatError::ExtentOutOfRange)?;
    let lend = e.logical_end().ok_or(FormatError::ExtentOutOfRange)?;
    if e.len == 0 || e.physical < lo || pend > hi || lend > MAX_LOGICAL_BLOCK {
        return Err(FormatError::ExtentOutOfRange);
    }
    Ok(())
}

/// Inserts `new` into the sorted list `arr[..len]`, merging with a
/// neighbour when both logical and physical blocks are contiguous.
/// Returns the new length. Fails without changing anything on overlap,
/// on an empty/wrapping extent, or when a new slot is needed and
/// `len == arr.len()`.
pub fn extents_insert(arr: &mut [Extent], len: usize, new: Extent) -> Result<usize, FormatError> {
    let list = arr.get(..len).ok_or(FormatError::OutOfRange)?;
    let new_end = new.logical_end().ok_or(FormatError::ExtentOutOfRange)?;
    if new.len == 0 || new.physical_end().is_none() {
        return Err(FormatError::ExtentOutOfRange);
    }
    let pos = list.partition_point(|e| e.logical < new.logical);
    let prev = pos.checked_sub(1).and_then(|i| list.get(i)).copied();
    let next = list.get(pos).copied();
    if let Some(p) = prev {
        if p.logical_end().is_none_or(|pe| pe > new.logical) {
            return Err(FormatError::ExtentOverlap);
        }
    }
    if let Some(n) = next {
        if new_end > n.logical {
            return Err(FormatError::ExtentOverlap);
        }
    }
    if let Some(merged) = prev.and_then(|p| extents_merge(p, new)) {
        return insert_after_merge(arr, len, pos - 1, merged);
    }
    if let Some(merged) = next.and_then(|n| extents_merge(new, n)) {
        let slot = arr.get_mut(pos).ok_or(FormatError::OutOfRange)?;
        *slot = merged;
        return Ok(len);
    }
    if len >= arr.len() {
        return Err(FormatError::ExtentFull);
    }
    arr.copy_within(pos..len, pos + 1);
    let slot = arr.get_mut(pos).ok_or(FormatError::OutOfRange)?;
    *slot = new;
    Ok(len + 1)
}

/// Stores `merged` at `at` and folds the following extent into it if now
/// contiguous.
fn insert_after_merge(
    arr: &mut [Extent],
    len: usize,
    at: usize,
    merged: Extent,
) -> Result<usize, FormatError> {
    let next = arr.get(at + 1).copied().filter(|_| at + 1 < len);
    let (value, remove_next) = match next.and_then(|n| extents_merge(merged, n)) {
        Some(m) => (m, true),
        None => (merged, false),
    };
    *arr.get_mut(at).ok_or(FormatError::OutOfRange)? = value;
    if remove_next {
        arr.copy_within(at + 2..len, at + 1);
        return Ok(len - 1);
    }
    Ok(len)
}

/// `a` followed by `b` as one extent, if contiguous (logically and
/// physically) and the length fits.
pub fn extents_merge(a: Extent, b: Extent) -> Option<Extent> {
    if a.logical_end()? != b.logical || a.physical_end()? != b.physical {
        return None;
    }
    let len = a.len.checked_add(b.len)?;
    Some(Extent { len, ..a })
}

/// Removes logical blocks `start .. start + count` from the sorted list
/// `arr[..len]` (truncate: `count = u64::MAX`), trimming or splitting
/// extents, and reports every freed physical range through `freed`.
/// Returns the new length. Fails with `ExtentFull` (and changes nothing)
/// if a split is needed and the array has no spare slot.
pub fn extents_remove_range<F: FnMut(u64, u32)>(
    arr: &mut [Extent],
    len: usize,
    start: u64,
    count: u64,
    mut freed: F,
) -> Result<usize, FormatError> {
    let end = start.saturating_add(count);
    let list = arr.get(..len).ok_or(FormatError::OutOfRange)?;
    let split = list
        .iter()
        .position(|e| e.logical < start && e.logical_end().is_some_and(|le| le > end));
    if let Some(k) = split {
        return split_extent(arr, len, k, start, end, &mut freed);
    }
    let mut w = 0;
    for r in 0..len {
        let e = *arr.get(r).ok_or(FormatError::OutOfRange)?;
        if let Some(kept) = trim(e, start, end, &mut freed) {
            *arr.get_mut(w).ok_or(FormatError::OutOfRange)? = kept;
            w += 1;
        }
    }
    Ok(w)
}

/// Cuts `start..end` out of extent `e`, which covers it only at one end or
/// entirely (no split). Returns what remains of `e`.
fn trim<F: FnMut(u64, u32)>(e: Extent, start: u64, end: u64, freed: &mut F) -> Option<Extent> {
    let le = e.logical_end()?;
    let lo = start.max(e.logical);
    let hi = end.min(le);
    if lo >= hi {
        return Some(e);
    }
    let cut = (hi - lo) as u32;
    freed(e.physical.saturating_add(lo - e.logical), cut);
    if cut == e.len {
        None
    } else if lo == e.logical {
        Some(Extent {
            logical: hi,
            physical: e.physical.saturating_add(u64::from(cut)),
            len: e.len - cut,
        })
    } else {
        Some(Extent {
            len: e.len - cut,
            ..e
        })
    }
}

fn split_extent<F: FnMut(u64, u32)>(
    arr: &mut [Extent],
    len: usize,
    k: usize,
    start: u64,
    end: u64,
    freed: &mut F,
) -> Result<usize, FormatError> {
    if len >= arr.len() {
        return Err(FormatError::ExtentFull);
    }
    let e = *arr.get(k).ok_or(FormatError::OutOfRange)?;
    let head = (start - e.logical) as u32;
    let hole = (end - start) as u32;
    let tail = e.len - head - hole;
    let hole_phys = e.physical.saturating_add(u64::from(head));
    freed(hole_phys, hole);
    arr.copy_within(k + 1..len, k + 2);
    *arr.get_mut(k).ok_or(FormatError::OutOfRange)? = Extent { len: head, ..e };
    *arr.get_mut(k + 1).ok_or(FormatError::OutOfRange)? = Extent {
        logical: end,
        physical: hole_phys.saturating_add(u64::from(hole)),
        len: tail,
    };
    Ok(len + 1)
}
