//! Little-endian field access on byte slices, bounds-checked.

use super::FormatError;

fn field<const N: usize>(b: &[u8], off: usize) -> Result<[u8; N], FormatError> {
    let end = off.checked_add(N).ok_or(FormatError::Truncated)?;
    let s = b.get(off..end).ok_or(FormatError::Truncated)?;
    s.try_into().map_err(|_| FormatError::Truncated)
}

fn put<const N: usize>(b: &mut [u8], off: usize, v: [u8; N]) -> Result<(), FormatError> {
    let end = off.checked_add(N).ok_or(FormatError::Truncated)?;
    let s = b.get_mut(off..end).ok_or(FormatError::Truncated)?;
    s.copy_from_slice(&v);
    Ok(())
}

/// Reads a `u8` at `off`.
pub(super) fn rd_u8(b: &[u8], off: usize) -> Result<u8, FormatError> {
    b.get(off).copied().ok_or(FormatError::Truncated)
}

/// Reads a little-endian `u16` at `off`.
pub(super) fn rd_u16(b: &[u8], off: usize) -> Result<u16, FormatError> {
    field(b, off).map(u16::from_le_bytes)
}

/// Reads a little-endian `u32` at `off`.
pub(super) fn rd_u32(b: &[u8], off: usize) -> Result<u32, FormatError> {
    field(b, off).map(u32::from_le_bytes)
}

/// Reads a little-endian `u64` at `off`.
pub(super) fn rd_u64(b: &[u8], off: usize) -> Result<u64, FormatError> {
    field(b, off).map(u64::from_le_bytes)
}

/// Reads a little-endian `i64` at `off`.
pub(super) fn rd_i64(b: &[u8], off: usize) -> Result<i64, FormatError> {
    field(b, off).map(i64::from_le_bytes)
}

/// Reads `N` raw bytes at `off`.
pub(super) fn rd_bytes<const N: usize>(b: &[u8], off: usize) -> Result<[u8; N], FormatError> {
    field(b, off)
}

/// Writes a `u8` at `off`.
pub(super) fn wr_u8(b: &mut [u8], off: usize, v: u8) -> Result<(), FormatError> {
    put(b, off, [v])
}

/// Writes a little-endian `u16` at `off`.
pub(super) fn wr_u16(b: &mut [u8], off: usize, v: u16) -> Result<(), FormatError> {
    put(b, off, v.to_le_bytes())
}

/// Writes a little-endian `u32` at `off`.
pub(super) fn wr_u32(b: &mut [u8], off: usize, v: u32) -> Result<(), FormatError> {
    put(b, off, v.to_le_bytes())
}

/// Writes a little-endian `u64` at `off`.
pub(super) fn wr_u64(b: &mut [u8], off: usize, v: u64) -> Result<(), FormatError> {
    put(b, off, v.to_le_bytes())
}

/// Writes a little-endian `i64` at `off`.
pub(super) fn wr_i64(b: &mut [u8], off: usize, v: i64) -> Result<(), FormatError> {
    put(b, off, v.to_le_bytes())
}

/// Writes `N` raw bytes at `off`.
pub(super) fn wr_bytes<const N: usize>(
    b: &mut [u8],
    off: usize,
    v: [u8; N],
) -> Result<(), FormatError> {
    put(b, off, v)
}

/// Returns `b[start..end]` or `Truncated`.
pub(super) fn sub(b: &[u8], start: usize, end: usize) -> Result<&[u8], FormatError> {
    b.get(start..end).ok_or(FormatError::Truncated)
}

/// Returns `&mut b[start..end]` or `Truncated`.
pub(super) fn sub_mut(b: &mut [u8], start: usize, end: usize) -> Result<&mut [u8], FormatError> {
    b.get_mut(start..end).ok_or(FormatError::Truncated)
}
