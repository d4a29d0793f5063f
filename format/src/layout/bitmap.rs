//! Inode and block bitmaps, and the block allocation policy.
//!
//! Bit `i` is bit `i % 8` of byte `i / 8`. In the block bitmap bit `b` is
//! physical block `b`; in the inode bitmap bit `i` is inode `i + 1`.
//! Every search takes an explicit bit range, so bits past the end of the
//! filesystem (padding in the last bitmap block) are never handed out.

use super::{FormatError, HUGE_BLOCKS};

fn byte_index(i: u64) -> Option<(usize, u8)> {
    let byte = usize::try_from(i / 8).ok()?;
    Some((byte, 1u8 << (i % 8)))
}

/// True if bit `i` is set (false if `i` is past the slice).
pub fn bit_test(bm: &[u8], i: u64) -> bool {
    byte_index(i)
        .and_then(|(b, m)| bm.get(b).map(|v| v & m != 0))
        .unwrap_or(false)
}

/// Sets bit `i`; returns its previous value.
pub fn bit_set(bm: &mut [u8], i: u64) -> Result<bool, FormatError> {
    let (b, m) = byte_index(i).ok_or(FormatError::OutOfRange)?;
    let v = bm.get_mut(b).ok_or(FormatError::OutOfRange)?;
    let old = *v & m != 0;
    *v |= m;
    Ok(old)
}

/// Clears bit `i`; returns its previous value.
pub fn bit_clear(bm: &mut [u8], i: u64) -> Result<bool, FormatError> {
    let (b, m) = byte_index(i).ok_or(FormatError::OutOfRange)?;
    let v = bm.get_mut(b).ok_or(FormatError::OutOfRange)?;
    let old = *v & m != 0;
    *v &= !m;
    Ok(old)
}

/// Sets bits `start .. start + len`.
pub fn bits_set_range(bm: &mut [u8], start: u64, len: u64) -> Result<(), FormatError> {
    let end = start.checked_add(len).ok_or(FormatError::OutOfRange)?;
    (start..end).try_for_each(|i| bit_set(bm, i).map(|_| ()))
}

/// Clears bits `start .. start + len`.
pub fn bits_clear_range(bm: &mut [u8], start: u64, len: u64) -> Result<(), FormatError> {
    let end = start.checked_add(len).ok_or(FormatError::OutOfRange)?;
    (start..end).try_for_each(|i| bit_clear(bm, i).map(|_| ()))
}

/// Number of set bits among `lo .. hi` (bits past the slice count as clear).
pub fn bits_count(bm: &[u8], lo: u64, hi: u64) -> u64 {
    let mut n = 0u64;
    let mut i = lo;
    while i < hi {
        if i.is_multiple_of(8) && hi - i >= 8 {
            let byte = byte_index(i).and_then(|(b, _)| bm.get(b)).copied();
            n += u64::from(byte.unwrap_or(0).count_ones());
            i += 8;
        } else {
            n += u64::from(bit_test(bm, i));
            i += 1;
        }
    }
    n
}

/// First bit in `from .. to` whose value is `want`, skipping whole bytes.
fn first_with(bm: &[u8], from: u64, to: u64, want: bool) -> Option<u64> {
    let skip = if want { 0x00 } else { 0xff };
    let mut i = from;
    while i < to {
        if i.is_multiple_of(8) && to - i >= 8 {
            let byte = byte_index(i).and_then(|(b, _)| bm.get(b)).copied();
            if byte.unwrap_or(0) == skip {
                i += 8;
                continue;
            }
        }
        if bit_test(bm, i) == want {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// First set bit in `from .. to`.
pub fn find_set(bm: &[u8], from: u64, to: u64) -> Option<u64> {
    first_with(bm, from, to, true)
}

/// First clear bit in `from .. to`.
pub fn find_clear(bm: &[u8], from: u64, to: u64) -> Option<u64> {
    first_with(bm, from, to, false)
}

/// First clear bit in `lo .. hi`, searching from `hint` and wrapping.
pub fn find_free(bm: &[u8], lo: u64, hi: u64, hint: u64) -> Option<u64> {
    let h = hint.clamp(lo, hi);
    find_clear(bm, h, hi).or_else(|| find_clear(bm, lo, h))
}

/// True if bits `start .. start + len` are all clear and below `hi`.
pub fn run_is_free(bm: &[u8], start: u64, len: u64, hi: u64) -> bool {
    match start.checked_add(len) {
        Some(end) if end <= hi => find_set(bm, start, end).is_none(),
        _ => false,
    }
}

/// First run of `len` clear bits starting in `from .. hi` whose start is a
/// multiple of `align` (1 = any), fully inside `.. hi`.
fn find_run_from(bm: &[u8], from: u64, hi: u64, len: u64, align: u64) -> Option<u64> {
    let mut pos = from;
    loop {
        let s = super::round_up(find_clear(bm, pos, hi)?, align.max(1))?;
        let end = s.checked_add(len)?;
        if end > hi {
            return None;
        }
        match find_set(bm, s, end) {
            None => return Some(s),
            Some(used) => pos = used + 1,
        }
    }
}

/// First run of `len` clear bits in `lo .. hi`, first-fit from `hint`,
/// wrapping around to `lo`.
pub fn find_free_run(bm: &[u8], lo: u64, hi: u64, hint: u64, len: u64) -> Option<u64> {
    if len == 0 {
        return None;
    }
    let h = hint.clamp(lo, hi);
    find_run_from(bm, h, hi, len, 1).or_else(|| {
        let wrap_hi = h.saturating_add(len - 1).min(hi);
        find_run_from(bm, lo, wrap_hi, len, 1)
    })
}

/// First run of `len` clear bits in `lo .. hi` whose start is a multiple
/// of `align` (e.g. `HUGE_BLOCKS` for 2 MiB), searching from `hint` and
/// wrapping.
pub fn find_aligned_run(
    bm: &[u8],
    lo: u64,
    hi: u64,
    hint: u64,
    len: u64,
    align: u64,
) -> Option<u64> {
    if len == 0 {
        return None;
    }
    let h = hint.clamp(lo, hi);
    find_run_from(bm, h, hi, len, align).or_else(|| find_run_from(bm, lo, hi, len, align))
}

/// Length of the clear run starting at `start`, capped at `max` and `hi`.
pub fn free_run_len(bm: &[u8], start: u64, hi: u64, max: u64) -> u64 {
    let end = start.saturating_add(max).min(hi);
    match find_set(bm, start, end) {
        Some(used) => used.saturating_sub(start),
        None => end.saturating_sub(start),
    }
}

/// An allocation request for the block allocator policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocRequest {
    /// Blocks wanted.
    pub want: u64,
    /// Preferred first block (usually just past the file's last extent).
    pub hint: u64,
    /// The file is already at least 2 MiB long.
    pub large_file: bool,
}

/// Picks blocks for `req` in the data area `lo .. hi`; returns
/// `(start, len)` with `1 <= len <= want`, or `None` if the area is full.
/// The caller marks the blocks used and calls again for the remainder.
///
/// Policy: (1) contiguous growth at `hint` if the whole run is free (for a
/// big request of a file not yet 2 MiB long, only if `hint` is aligned);
/// (2) for requests `>= HUGE_BLOCKS` or large files, a 2 MiB-aligned run
/// of `want` blocks, then a single aligned 2 MiB run; (3) first fit of
/// `want` blocks from `hint`; (4) the first free fragment from `hint`.
pub fn choose_blocks(bm: &[u8], lo: u64, hi: u64, req: AllocRequest) -> Option<(u64, u64)> {
    let want = req.want;
    if want == 0 || lo >= hi {
        return None;
    }
    let big = want >= HUGE_BLOCKS || req.large_file;
    let grow_ok = !big || req.large_file || req.hint.is_multiple_of(HUGE_BLOCKS);
    if req.hint >= lo && grow_ok && run_is_free(bm, req.hint, want, hi) {
        return Some((req.hint, want));
    }
    if big {
        if let Some(s) = find_aligned_run(bm, lo, hi, req.hint, want, HUGE_BLOCKS) {
            return Some((s, want));
        }
        if want > HUGE_BLOCKS {
            if let Some(s) = find_aligned_run(bm, lo, hi, req.hint, HUGE_BLOCKS, HUGE_BLOCKS) {
                return Some((s, HUGE_BLOCKS));
            }
        }
    }
    if let Some(s) = find_free_run(bm, lo, hi, req.hint, want) {
        return Some((s, want));
    }
    let s = find_free(bm, lo, hi, req.hint)?;
    Some((s, free_run_len(bm, s, hi, want)))
}
