//! Directory blocks: a 16-byte header and 15 fixed 272-byte slots.
//!
//! `.` and `..` are not stored: `..` is the directory inode's `parent`.
//! Readdir positions: 0 = `.`, 1 = `..`, then `2 + block * 15 + slot`.

use super::codec::{rd_u16, rd_u32, rd_u64, rd_u8, sub, sub_mut, wr_u16, wr_u32, wr_u64, wr_u8};
use super::{crc32c, crc32c_patch, crc32c_update, FormatError, BLOCK_SIZE, DT_BLK, DT_CHR, DT_DIR};
use super::{DT_FIFO, DT_LNK, DT_REG, DT_SOCK};

/// Magic of a directory block ("RDXD" little-endian).
pub const DIR_MAGIC: u32 = 0x4458_4452;
/// Size of the directory block header.
pub const DIR_HEADER_SIZE: usize = 16;
/// Size of one directory slot.
pub const DIR_SLOT_SIZE: usize = 272;
/// Slots per directory block.
pub const DIR_SLOTS: usize = 15;
/// Longest file name, in bytes.
pub const NAME_MAX: usize = 255;
/// Offset of the header checksum: CRC-32C of bytes `0..12` then `16..4096`.
pub const DIR_CRC_OFF: usize = 12;
/// First readdir position after `.` (0) and `..` (1).
pub const DIR_POS_FIRST: u64 = 2;

const _: () = assert!(DIR_HEADER_SIZE + DIR_SLOTS * DIR_SLOT_SIZE == BLOCK_SIZE);
const _: () = assert!(8 + 4 + 1 + 1 + 2 + NAME_MAX + 1 == DIR_SLOT_SIZE);

mod off {
    pub const INO: usize = 0;
    pub const HASH: usize = 8;
    pub const NAME_LEN: usize = 12;
    pub const FILE_TYPE: usize = 13;
    pub const NAME: usize = 16;
}

/// A directory entry borrowed from a directory block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirEntry<'a> {
    /// Target inode (never 0 for a used slot).
    pub ino: u64,
    /// Stored name hash (`name_hash(name)` when valid).
    pub hash: u32,
    /// `DT_*` type of the target.
    pub file_type: u8,
    /// The name, `name_len` bytes.
    pub name: &'a [u8],
}

/// The name hash stored in each slot: CRC-32C of the name bytes.
pub fn name_hash(name: &[u8]) -> u32 {
    crc32c(name)
}

/// Checks a file name: 1..=255 bytes, no `/` or NUL, not `.` or `..`.
pub fn validate_name(name: &[u8]) -> Result<(), FormatError> {
    if name.is_empty() || name.len() > NAME_MAX || name == b"." || name == b".." {
        return Err(FormatError::BadName);
    }
    if name.iter().any(|&c| c == b'/' || c == 0) {
        return Err(FormatError::BadName);
    }
    Ok(())
}

/// True for a `DT_*` value rdaxfs stores.
pub fn valid_file_type(t: u8) -> bool {
    matches!(
        t,
        DT_FIFO | DT_CHR | DT_DIR | DT_BLK | DT_REG | DT_LNK | DT_SOCK
    )
}

fn slot_off(slot: usize) -> usize {
    DIR_HEADER_SIZE + slot * DIR_SLOT_SIZE
}

fn dir_crc(buf: &[u8]) -> Result<u32, FormatError> {
    let head = sub(buf, 0, DIR_CRC_OFF)?;
    let tail = sub(buf, DIR_HEADER_SIZE, BLOCK_SIZE)?;
    Ok(crc32c_update(crc32c_update(0, head), tail))
}

/// Recomputes and stores the block checksum.
pub fn dir_seal(buf: &mut [u8]) -> Result<(), FormatError> {
    let crc = dir_crc(buf)?;
    wr_u32(buf, DIR_CRC_OFF, crc)
}

/// Formats an empty directory block.
pub fn dir_init(buf: &mut [u8]) -> Result<(), FormatError> {
    buf.get_mut(..BLOCK_SIZE)
        .ok_or(FormatError::Truncated)?
        .fill(0);
    wr_u32(buf, 0, DIR_MAGIC)?;
    dir_seal(buf)
}

/// Verifies magic and checksum; returns the used-slot count from the header.
pub fn dir_check(buf: &[u8]) -> Result<u16, FormatError> {
    if rd_u32(buf, 0)? != DIR_MAGIC {
        return Err(FormatError::BadMagic);
    }
    if dir_crc(buf)? != rd_u32(buf, DIR_CRC_OFF)? {
        return Err(FormatError::BadChecksum);
    }
    let used = rd_u16(buf, 4)?;
    if used as usize > DIR_SLOTS {
        return Err(FormatError::BadCount);
    }
    Ok(used)
}

/// Byte offset of slot `slot` in its directory block.
pub fn dir_slot_offset(slot: usize) -> Result<usize, FormatError> {
    if slot >= DIR_SLOTS {
        return Err(FormatError::OutOfRange);
    }
    Ok(slot_off(slot))
}

/// Decodes slot `slot`: `Ok(None)` if free, the entry if used, an error if
/// the slot is malformed (bad length, name or type).
pub fn dir_entry(buf: &[u8], slot: usize) -> Result<Option<DirEntry<'_>>, FormatError> {
    let base = dir_slot_offset(slot)?;
    dir_slot_entry(sub(buf, base, base + DIR_SLOT_SIZE)?)
}

/// Decodes one slot's [`DIR_SLOT_SIZE`] bytes on their own (what
/// [`dir_entry`] does inside a block): a lookup that knows where a name is
/// reads only that slot.
pub fn dir_slot_entry(slot: &[u8]) -> Result<Option<DirEntry<'_>>, FormatError> {
    let ino = rd_u64(slot, off::INO)?;
    if ino == 0 {
        return Ok(None);
    }
    let name_len = rd_u8(slot, off::NAME_LEN)? as usize;
    let name = sub(slot, off::NAME, off::NAME + name_len)?;
    validate_name(name)?;
    let file_type = rd_u8(slot, off::FILE_TYPE)?;
    if !valid_file_type(file_type) {
        return Err(FormatError::BadFileType);
    }
    let hash = rd_u32(slot, off::HASH)?;
    Ok(Some(DirEntry {
        ino,
        hash,
        file_type,
        name,
    }))
}

/// Finds `name`: compares hashes first, then names. Malformed slots are
/// skipped.
pub fn dir_find(buf: &[u8], name: &[u8]) -> Option<usize> {
    let h = name_hash(name);
    (0..DIR_SLOTS).find(|&s| {
        let base = slot_off(s);
        rd_u64(buf, base + off::INO).is_ok_and(|ino| ino != 0)
            && rd_u32(buf, base + off::HASH).is_ok_and(|sh| sh == h)
            && matches!(dir_entry(buf, s), Ok(Some(e)) if e.name == name)
    })
}

/// Stores an entry in the first free slot, updating the used count and
/// checksum. Returns the slot. Does not check for duplicates (use
/// `dir_find` over every block of the directory first).
pub fn dir_insert(
    buf: &mut [u8],
    ino: u64,
    name: &[u8],
    file_type: u8,
) -> Result<usize, FormatError> {
    validate_name(name)?;
    if ino == 0 {
        return Err(FormatError::BadInodeNumber);
    }
    if !valid_file_type(file_type) {
        return Err(FormatError::BadFileType);
    }
    let used = dir_check(buf)?;
    let slot = (0..DIR_SLOTS)
        .find(|&s| rd_u64(buf, slot_off(s)).is_ok_and(|i| i == 0))
        .ok_or(FormatError::DirFull)?;
    write_slot(buf, slot, ino, name, file_type)?;
    wr_u16(buf, 4, used.saturating_add(1))?;
    dir_seal(buf)?;
    Ok(slot)
}

fn write_slot(
    buf: &mut [u8],
    slot: usize,
    ino: u64,
    name: &[u8],
    ft: u8,
) -> Result<(), FormatError> {
    let base = slot_off(slot);
    write_slot_bytes(sub_mut(buf, base, base + DIR_SLOT_SIZE)?, ino, name, ft)
}

/// Fills one slot's bytes with an entry.
fn write_slot_bytes(s: &mut [u8], ino: u64, name: &[u8], ft: u8) -> Result<(), FormatError> {
    s.get_mut(..DIR_SLOT_SIZE)
        .ok_or(FormatError::Truncated)?
        .fill(0);
    wr_u64(s, off::INO, ino)?;
    wr_u32(s, off::HASH, name_hash(name))?;
    wr_u8(s, off::NAME_LEN, name.len() as u8)?;
    wr_u8(s, off::FILE_TYPE, ft)?;
    sub_mut(s, off::NAME, off::NAME + name.len())?.copy_from_slice(name);
    Ok(())
}

/// Frees slot `slot` (zeroing it), updating the used count and checksum.
pub fn dir_remove(buf: &mut [u8], slot: usize) -> Result<(), FormatError> {
    if slot >= DIR_SLOTS {
        return Err(FormatError::OutOfRange);
    }
    let base = slot_off(slot);
    if rd_u64(buf, base + off::INO)? == 0 {
        return Err(FormatError::OutOfRange);
    }
    sub_mut(buf, base, base + DIR_SLOT_SIZE)?.fill(0);
    let used = rd_u16(buf, 4)?;
    wr_u16(buf, 4, used.saturating_sub(1))?;
    dir_seal(buf)
}

/// Re-points slot `slot` at another inode (rename over an existing name).
pub fn dir_set_ino(
    buf: &mut [u8],
    slot: usize,
    ino: u64,
    file_type: u8,
) -> Result<(), FormatError> {
    if slot >= DIR_SLOTS || ino == 0 || !valid_file_type(file_type) {
        return Err(FormatError::OutOfRange);
    }
    let base = slot_off(slot);
    wr_u64(buf, base + off::INO, ino)?;
    wr_u8(buf, base + off::FILE_TYPE, file_type)?;
    dir_seal(buf)
}

/// The used slots of a block as a mask (bit `s` for slot `s`), counted
/// from the slots themselves.
pub fn dir_used_mask(buf: &[u8]) -> u16 {
    (0..DIR_SLOTS)
        .filter(|&s| rd_u64(buf, slot_off(s)).is_ok_and(|i| i != 0))
        .fold(0, |m, s| m | 1 << s)
}

// Changing one slot without the rest of its block: a directory change
// touches one 272-byte slot and the 16-byte header (used count and
// checksum), so a transaction stages and logs only those. The checksum is
// patched from the change (`crc32c_patch`), which gives exactly the value
// `dir_seal` would compute over the whole block.

/// Updates the block checksum in `head` (the block's first
/// [`DIR_HEADER_SIZE`] bytes) for `old` becoming `new` at block offset `at`.
fn patch_crc(head: &mut [u8], at: usize, old: &[u8], new: &[u8]) -> Result<(), FormatError> {
    // The checksummed message is bytes 0..12 then 16..4096.
    let pos = if at + old.len() <= DIR_CRC_OFF {
        at
    } else if at >= DIR_HEADER_SIZE {
        at - (DIR_HEADER_SIZE - DIR_CRC_OFF)
    } else {
        return Err(FormatError::OutOfRange);
    };
    let len = BLOCK_SIZE - (DIR_HEADER_SIZE - DIR_CRC_OFF);
    let after = len
        .checked_sub(pos + old.len())
        .ok_or(FormatError::OutOfRange)? as u64;
    let crc = rd_u32(head, DIR_CRC_OFF)?;
    wr_u32(head, DIR_CRC_OFF, crc32c_patch(crc, old, new, after))
}

/// Sets the used count in `head` to `f(count)`, patching the checksum.
fn set_used(head: &mut [u8], f: impl FnOnce(u16) -> u16) -> Result<(), FormatError> {
    if rd_u32(head, 0)? != DIR_MAGIC {
        return Err(FormatError::BadMagic);
    }
    let old = rd_u16(head, 4)?;
    let new = f(old);
    wr_u16(head, 4, new)?;
    patch_crc(head, 4, &old.to_le_bytes(), &new.to_le_bytes())
}

/// Checks the views of a slot change: `head` a directory block header,
/// `s` slot `slot`'s bytes.
fn slot_views(head: &[u8], slot: usize, s: &[u8]) -> Result<usize, FormatError> {
    if head.len() != DIR_HEADER_SIZE || s.len() != DIR_SLOT_SIZE {
        return Err(FormatError::Truncated);
    }
    if rd_u32(head, 0)? != DIR_MAGIC {
        return Err(FormatError::BadMagic);
    }
    dir_slot_offset(slot)
}

/// [`dir_insert`] into the free slot `slot`, given only the block's header
/// `head` and the slot's bytes `s`.
pub fn dir_slot_insert(
    head: &mut [u8],
    slot: usize,
    s: &mut [u8],
    ino: u64,
    name: &[u8],
    file_type: u8,
) -> Result<(), FormatError> {
    validate_name(name)?;
    if ino == 0 {
        return Err(FormatError::BadInodeNumber);
    }
    if !valid_file_type(file_type) {
        return Err(FormatError::BadFileType);
    }
    let at = slot_views(head, slot, s)?;
    if rd_u64(s, off::INO)? != 0 || usize::from(rd_u16(head, 4)?) >= DIR_SLOTS {
        return Err(FormatError::DirFull);
    }
    let mut old = [0u8; DIR_SLOT_SIZE];
    old.copy_from_slice(s);
    write_slot_bytes(s, ino, name, file_type)?;
    patch_crc(head, at, &old, s)?;
    set_used(head, |u| u.saturating_add(1))
}

/// [`dir_remove`] of slot `slot`, given only the header and the slot.
pub fn dir_slot_remove(head: &mut [u8], slot: usize, s: &mut [u8]) -> Result<(), FormatError> {
    let at = slot_views(head, slot, s)?;
    if rd_u64(s, off::INO)? == 0 {
        return Err(FormatError::OutOfRange);
    }
    let mut old = [0u8; DIR_SLOT_SIZE];
    old.copy_from_slice(s);
    s.fill(0);
    patch_crc(head, at, &old, s)?;
    set_used(head, |u| u.saturating_sub(1))
}

/// [`dir_set_ino`] of slot `slot`, given only the header and the slot.
pub fn dir_slot_set_ino(
    head: &mut [u8],
    slot: usize,
    s: &mut [u8],
    ino: u64,
    file_type: u8,
) -> Result<(), FormatError> {
    if ino == 0 || !valid_file_type(file_type) {
        return Err(FormatError::OutOfRange);
    }
    let at = slot_views(head, slot, s)?;
    if rd_u64(s, off::INO)? == 0 {
        return Err(FormatError::OutOfRange);
    }
    let mut old = [0u8; DIR_SLOT_SIZE];
    old.copy_from_slice(s);
    wr_u64(s, off::INO, ino)?;
    wr_u8(s, off::FILE_TYPE, file_type)?;
    patch_crc(head, at, &old, s)
}

/// Number of used slots, counted (not the header field).
pub fn dir_count_used(buf: &[u8]) -> usize {
    (0..DIR_SLOTS)
        .filter(|&s| rd_u64(buf, slot_off(s)).is_ok_and(|i| i != 0))
        .count()
}

/// Iterates the well-formed used entries of a block as `(slot, entry)`,
/// starting at `from_slot`. Malformed slots are skipped.
pub fn dir_iter(buf: &[u8], from_slot: usize) -> impl Iterator<Item = (usize, DirEntry<'_>)> {
    (from_slot..DIR_SLOTS).filter_map(move |s| match dir_entry(buf, s) {
        Ok(Some(e)) => Some((s, e)),
        _ => None,
    })
}

/// Readdir position of slot `slot` in directory block `block`.
pub fn dir_pos(block: u64, slot: usize) -> u64 {
    block
        .saturating_mul(DIR_SLOTS as u64)
        .saturating_add(slot as u64)
        .saturating_add(DIR_POS_FIRST)
}

/// Splits a readdir position `>= 2` into (directory block, slot).
pub fn dir_pos_split(pos: u64) -> Option<(u64, usize)> {
    let p = pos.checked_sub(DIR_POS_FIRST)?;
    Some((p / DIR_SLOTS as u64, (p % DIR_SLOTS as u64) as usize))
}
