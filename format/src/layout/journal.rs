//! The metadata journal: a redo log of one transaction at a time.
//!
//! Every metadata change is made all-or-nothing across a power cut by
//! logging it first. The journal area (`journal_start`, `journal_blocks`)
//! holds at most one transaction: a 64-byte header followed by records.
//!
//! Commit protocol (the kernel, under its journal lock):
//! 1. write the records after the header; fence;
//! 2. write the header (magic, sequence, length, count, CRC-32C over the
//!    header and the records); fence. The transaction is now committed:
//!    a header whose checksum matches is the only commit mark, so a torn
//!    header or torn records simply read as "no transaction";
//! 3. apply every record in place; fence;
//! 4. clear the header's first 8 bytes (one atomic store); fence.
//!
//! Recovery (mount, fsck, crash tests) reads the header; if it is valid it
//! applies the records again (redo is idempotent: a record carries new
//! bytes, or sets/clears a bit range) and clears the header. At most one
//! transaction is ever pending, so recovery reads at most the journal area,
//! whatever the size of the filesystem.
//!
//! Records (each 8-byte aligned):
//!
//! | off | size | `BYTES` | `SET_BITS` / `CLEAR_BITS` |
//! |---|---|---|---|
//! | 0 | 4 | kind 1 | kind 2 / 3 |
//! | 4 | 4 | data length | 0 |
//! | 8 | 8 | device byte offset | byte offset of the bitmap |
//! | 16 | .. | data, padded to 8 | first bit (u64), bit count (u64) |

use super::codec::{rd_u32, rd_u64, sub, sub_mut, wr_u32, wr_u64};
use super::{crc32c, crc32c_update, FormatError, Superblock, BLOCK_SIZE_U64};

/// Journal header magic: "RDXJ" read as a little-endian `u32`.
pub const JOURNAL_MAGIC: u32 = 0x4A58_4452;
/// Bytes of the journal header; records start right after it.
pub const JOURNAL_HEADER: usize = 64;
/// Record kind: new bytes at a device offset.
pub const REC_BYTES: u32 = 1;
/// Record kind: set a range of bitmap bits.
pub const REC_SET_BITS: u32 = 2;
/// Record kind: clear a range of bitmap bits.
pub const REC_CLEAR_BITS: u32 = 3;
/// Bytes of a record header (and of a whole bit-range record minus 16).
const REC_HEAD: usize = 16;
/// Bytes of a bit-range record.
const REC_BITS_LEN: usize = 32;

mod off {
    pub const MAGIC: usize = 0;
    pub const FLAGS: usize = 4;
    pub const SEQ: usize = 8;
    pub const LEN: usize = 16;
    pub const COUNT: usize = 20;
    pub const CRC: usize = 24;
}

/// A journal record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// Store `data` at device byte offset `off`.
    Bytes {
        /// Device byte offset.
        off: u64,
        /// The new bytes.
        data: &'a [u8],
    },
    /// Set (`set`) or clear bits `first..first + count` of the bitmap that
    /// starts at device byte offset `base`.
    Bits {
        /// Set rather than clear.
        set: bool,
        /// Device byte offset of the bitmap's first byte.
        base: u64,
        /// First bit.
        first: u64,
        /// Number of bits.
        count: u64,
    },
}

/// Builds a transaction in a buffer laid out like the journal area.
pub struct JournalWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
    count: u32,
}

impl<'a> JournalWriter<'a> {
    /// Starts an empty transaction in `buf` (the journal area's size at most).
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self {
            buf,
            pos: JOURNAL_HEADER,
            count: 0,
        }
    }

    /// Number of records so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Bytes used so far, header included.
    pub fn len(&self) -> usize {
        self.pos
    }

    /// Whether no record was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes still free for records.
    pub fn room(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The records written so far (after the header).
    pub fn records(&self) -> &[u8] {
        self.buf.get(JOURNAL_HEADER..self.pos).unwrap_or(&[])
    }

    /// Header and records as they go to the journal area (the header is
    /// valid after [`JournalWriter::finish`]).
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.pos).unwrap_or(&[])
    }

    /// Logs `data` to be stored at device offset `off`.
    pub fn bytes(&mut self, off: u64, data: &[u8]) -> Result<(), FormatError> {
        let padded = data.len().next_multiple_of(8);
        let total = REC_HEAD + padded;
        if total > self.room() || data.len() > u32::MAX as usize {
            return Err(FormatError::JournalFull);
        }
        let p = self.pos;
        wr_u32(self.buf, p, REC_BYTES)?;
        wr_u32(self.buf, p + 4, data.len() as u32)?;
        wr_u64(self.buf, p + 8, off)?;
        let body = sub_mut(self.buf, p + REC_HEAD, p + total)?;
        body.fill(0);
        body.get_mut(..data.len())
            .ok_or(FormatError::Truncated)?
            .copy_from_slice(data);
        self.pos += total;
        self.count += 1;
        Ok(())
    }

    /// Logs setting (`set`) or clearing bits `first..first + count` of the
    /// bitmap at device byte offset `base`.
    pub fn bits(
        &mut self,
        set: bool,
        base: u64,
        first: u64,
        count: u64,
    ) -> Result<(), FormatError> {
        if REC_BITS_LEN > self.room() {
            return Err(FormatError::JournalFull);
        }
        let p = self.pos;
        let kind = if set { REC_SET_BITS } else { REC_CLEAR_BITS };
        wr_u32(self.buf, p, kind)?;
        wr_u32(self.buf, p + 4, 0)?;
        wr_u64(self.buf, p + 8, base)?;
        wr_u64(self.buf, p + 16, first)?;
        wr_u64(self.buf, p + 24, count)?;
        self.pos += REC_BITS_LEN;
        self.count += 1;
        Ok(())
    }

    /// Logs the 8-byte words of `new` that differ from `old` (same length,
    /// both the image of the bytes at device offset `off`, which must be
    /// 8-byte aligned). Runs of changed words a few words apart share one
    /// record. Logs nothing when they are equal.
    pub fn diff(&mut self, off: u64, old: &[u8], new: &[u8]) -> Result<(), FormatError> {
        if old.len() != new.len() || !off.is_multiple_of(8) {
            return Err(FormatError::OutOfRange);
        }
        let words = new.len().div_ceil(8);
        let mut i = 0;
        while i < words {
            if word(old, i) == word(new, i) {
                i += 1;
                continue;
            }
            // A run of changed words; it absorbs gaps of up to 2 equal
            // words (cheaper than a second 16-byte record header).
            let start = i;
            let mut end = i + 1;
            let mut j = end;
            while j < words && j <= end + 2 {
                if word(old, j) != word(new, j) {
                    end = j + 1;
                }
                j += 1;
            }
            let lo = start * 8;
            let hi = (end * 8).min(new.len());
            self.bytes(off + lo as u64, sub(new, lo, hi)?)?;
            i = end;
        }
        Ok(())
    }

    /// Writes the header for sequence number `seq`; returns the bytes to
    /// store (header included). The records (`buf[JOURNAL_HEADER..len]`)
    /// must be durable before the header is stored.
    pub fn finish(&mut self, seq: u64) -> Result<usize, FormatError> {
        let len = (self.pos - JOURNAL_HEADER) as u32;
        let h = sub_mut(self.buf, 0, JOURNAL_HEADER)?;
        h.fill(0);
        wr_u32(h, off::MAGIC, JOURNAL_MAGIC)?;
        wr_u32(h, off::FLAGS, 0)?;
        wr_u64(h, off::SEQ, seq)?;
        wr_u32(h, off::LEN, len)?;
        wr_u32(h, off::COUNT, self.count)?;
        let crc = header_crc(self.buf, len as usize)?;
        wr_u32(self.buf, off::CRC, crc)?;
        Ok(self.pos)
    }

    /// Forgets every record.
    pub fn clear(&mut self) {
        self.pos = JOURNAL_HEADER;
        self.count = 0;
    }
}

/// The `i`-th 8-byte word of `b` (the last one may be short).
fn word(b: &[u8], i: usize) -> Option<&[u8]> {
    b.get(i * 8..((i + 1) * 8).min(b.len()))
}

fn header_crc(area: &[u8], len: usize) -> Result<u32, FormatError> {
    let c = crc32c(sub(area, 0, off::CRC)?);
    let end = JOURNAL_HEADER
        .checked_add(len)
        .ok_or(FormatError::Truncated)?;
    Ok(crc32c_update(c, sub(area, JOURNAL_HEADER, end)?))
}

/// A committed transaction found in the journal area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalTx<'a> {
    /// Its sequence number.
    pub seq: u64,
    /// Number of records.
    pub count: u32,
    /// Bytes of records.
    pub len: u32,
    records: &'a [u8],
}

/// Reads the journal area: `Ok(Some(tx))` if it holds a committed
/// transaction, `Ok(None)` if not (empty, cleared, or torn before its
/// commit completed). Only a header with the magic and a matching checksum
/// commits; anything else is "no transaction".
pub fn journal_read(area: &[u8]) -> Result<Option<JournalTx<'_>>, FormatError> {
    if rd_u32(area, off::MAGIC)? != JOURNAL_MAGIC {
        return Ok(None);
    }
    let len = rd_u32(area, off::LEN)? as usize;
    let count = rd_u32(area, off::COUNT)?;
    if rd_u32(area, off::FLAGS)? != 0 || len > area.len().saturating_sub(JOURNAL_HEADER) {
        return Ok(None);
    }
    if header_crc(area, len)? != rd_u32(area, off::CRC)? {
        return Ok(None);
    }
    Ok(Some(JournalTx {
        seq: rd_u64(area, off::SEQ)?,
        count,
        len: len as u32,
        records: sub(area, JOURNAL_HEADER, JOURNAL_HEADER + len)?,
    }))
}

impl<'a> JournalTx<'a> {
    /// The records, in order. A malformed record (which a matching
    /// checksum makes a bug, not a tear) ends the iteration with an error.
    pub fn records(&self) -> Records<'a> {
        Records {
            buf: self.records,
            pos: 0,
            left: self.count,
        }
    }
}

/// Iterator over a transaction's records.
pub struct Records<'a> {
    buf: &'a [u8],
    pos: usize,
    left: u32,
}

impl<'a> Records<'a> {
    fn decode(&mut self) -> Result<Record<'a>, FormatError> {
        let p = self.pos;
        let kind = rd_u32(self.buf, p)?;
        let n = rd_u32(self.buf, p + 4)? as usize;
        let base = rd_u64(self.buf, p + 8)?;
        match kind {
            REC_BYTES => {
                let end = (p + REC_HEAD)
                    .checked_add(n.next_multiple_of(8))
                    .ok_or(FormatError::Truncated)?;
                let data = sub(self.buf, p + REC_HEAD, p + REC_HEAD + n)?;
                if end > self.buf.len() {
                    return Err(FormatError::Truncated);
                }
                self.pos = end;
                Ok(Record::Bytes { off: base, data })
            }
            REC_SET_BITS | REC_CLEAR_BITS => {
                let first = rd_u64(self.buf, p + 16)?;
                let count = rd_u64(self.buf, p + 24)?;
                self.pos = p + REC_BITS_LEN;
                Ok(Record::Bits {
                    set: kind == REC_SET_BITS,
                    base,
                    first,
                    count,
                })
            }
            _ => Err(FormatError::BadJournal),
        }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let r = self.decode();
        if r.is_err() {
            self.left = 0;
        }
        Some(r)
    }
}

/// Checks that `r` only touches metadata of the filesystem `sb` describes:
/// bytes inside the device but outside the journal area, bit ranges inside
/// the inode or block bitmap. Recovery refuses a transaction that fails.
pub fn journal_record_check(sb: &Superblock, r: &Record<'_>) -> Result<(), FormatError> {
    let dev = sb.block_count.saturating_mul(BLOCK_SIZE_U64);
    let j0 = sb.journal_start.saturating_mul(BLOCK_SIZE_U64);
    let j1 = j0.saturating_add(sb.journal_blocks.saturating_mul(BLOCK_SIZE_U64));
    match *r {
        Record::Bytes { off, data } => {
            let end = off
                .checked_add(data.len() as u64)
                .ok_or(FormatError::OutOfRange)?;
            if end > dev || (off < j1 && end > j0) {
                return Err(FormatError::OutOfRange);
            }
        }
        Record::Bits {
            base, first, count, ..
        } => {
            let limit = if base == sb.inode_bitmap_start.saturating_mul(BLOCK_SIZE_U64) {
                sb.inode_count
            } else if base == sb.block_bitmap_start.saturating_mul(BLOCK_SIZE_U64) {
                sb.block_count
            } else {
                return Err(FormatError::OutOfRange);
            };
            if first.checked_add(count).is_none_or(|e| e > limit) {
                return Err(FormatError::OutOfRange);
            }
        }
    }
    Ok(())
}

/// Sets (`set`) or clears bits `first..first + count` of `bm`, where `bm`
/// holds the bitmap bytes from byte `first / 8` on (so a caller can pass
/// just the bytes the range covers).
pub fn bits_apply_window(
    bm: &mut [u8],
    set: bool,
    first: u64,
    count: u64,
) -> Result<(), FormatError> {
    let base = first / 8 * 8;
    for i in first..first.checked_add(count).ok_or(FormatError::OutOfRange)? {
        let rel = i - base;
        let b = bm
            .get_mut((rel / 8) as usize)
            .ok_or(FormatError::OutOfRange)?;
        let m = 1u8 << (rel % 8);
        if set {
            *b |= m;
        } else {
            *b &= !m;
        }
    }
    Ok(())
}

/// Where recovery reads and writes: the device (or an image of it).
pub trait JournalTarget {
    /// Reads `buf.len()` bytes at device offset `off`.
    fn read(&mut self, off: u64, buf: &mut [u8]) -> Result<(), FormatError>;
    /// Writes `data` at device offset `off`.
    fn write(&mut self, off: u64, data: &[u8]) -> Result<(), FormatError>;
}

/// Applies one record to `t` (bit ranges by read-modify-write of the bytes
/// they cover, a bounded chunk at a time).
pub fn journal_apply<T: JournalTarget>(t: &mut T, r: &Record<'_>) -> Result<(), FormatError> {
    match *r {
        Record::Bytes { off, data } => t.write(off, data),
        Record::Bits {
            set,
            base,
            first,
            count,
        } => {
            const CHUNK_BITS: u64 = 8 * 512;
            let mut buf = [0u8; 512];
            let mut i = first;
            let end = first.checked_add(count).ok_or(FormatError::OutOfRange)?;
            while i < end {
                // Up to the end of the chunk that starts at i's byte.
                let byte = i / 8;
                let n = (end - i).min(CHUNK_BITS - (i % 8));
                let bytes = (i + n).div_ceil(8) - byte;
                let w = buf
                    .get_mut(..bytes as usize)
                    .ok_or(FormatError::OutOfRange)?;
                let at = base.checked_add(byte).ok_or(FormatError::OutOfRange)?;
                t.read(at, w)?;
                bits_apply_window(w, set, i, n)?;
                t.write(at, w)?;
                i += n;
            }
            Ok(())
        }
    }
}

/// Replays the committed transaction in `area` (the journal area's bytes)
/// onto `t` after checking every record against `sb`. Returns the
/// transaction replayed, if any. The caller then makes the stores durable
/// and clears the header.
pub fn journal_replay<'a, T: JournalTarget>(
    sb: &Superblock,
    area: &'a [u8],
    t: &mut T,
) -> Result<Option<JournalTx<'a>>, FormatError> {
    let Some(tx) = journal_read(area)? else {
        return Ok(None);
    };
    for r in tx.records() {
        journal_record_check(sb, &r?)?;
    }
    for r in tx.records() {
        journal_apply(t, &r?)?;
    }
    Ok(Some(tx))
}
