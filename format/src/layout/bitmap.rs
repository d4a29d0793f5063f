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

/// Smallest `s >= c` with `s % align == phase` (`phase < align`).
fn round_up_phase(c: u64, align: u64, phase: u64) -> Option<u64> {
    let s = (c - c % align).checked_add(phase)?;
    if s >= c {
        Some(s)
    } else {
        s.checked_add(align)
    }
}

/// First run of `len` clear bits starting in `from .. hi` whose start is
/// `phase` modulo `align` (1 = any), fully inside `.. hi`.
fn find_run_from(bm: &[u8], from: u64, hi: u64, len: u64, align: u64, phase: u64) -> Option<u64> {
    let align = align.max(1);
    let phase = phase % align;
    let mut pos = from;
    loop {
        let s = round_up_phase(find_clear(bm, pos, hi)?, align, phase)?;
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
    find_run_from(bm, h, hi, len, 1, 0).or_else(|| {
        let wrap_hi = h.saturating_add(len - 1).min(hi);
        find_run_from(bm, lo, wrap_hi, len, 1, 0)
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
    find_run_from(bm, h, hi, len, align, 0).or_else(|| find_run_from(bm, lo, hi, len, align, 0))
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

/// Requests of at least this many blocks (1 MiB), and every request of a
/// file already 2 MiB long, are placed for PMD mappings: each 2 MiB
/// logical range of the file on one whole 2 MiB-aligned physical region.
/// Smaller ones are small-file allocations, which fill the free space of
/// regions already in use and leave whole free regions to the former.
pub const STREAM_BLOCKS: u64 = HUGE_BLOCKS / 2;

/// How many whole free 2 MiB regions a small allocation skips while it
/// looks for room in regions already in use, before it settles for first
/// fit (bounds the search on a nearly empty filesystem).
const SMALL_SCAN_REGIONS: u32 = 64;

/// Start of the 2 MiB region holding block `b`.
fn region_of(b: u64) -> u64 {
    b - b % HUGE_BLOCKS
}

/// True if the 2 MiB region holding block `b` lies inside `lo .. hi` and
/// none of its blocks is in use: a region a PMD mapping can still get.
fn region_free(bm: &[u8], lo: u64, hi: u64, b: u64) -> bool {
    let s = region_of(b);
    let e = s.saturating_add(HUGE_BLOCKS);
    s >= lo && e <= hi && find_set(bm, s, e).is_none()
}

/// First run of `len` clear bits in `lo .. hi` starting `phase` modulo
/// 2 MiB, searching from `hint` and wrapping.
fn find_congruent_run(bm: &[u8], lo: u64, hi: u64, hint: u64, len: u64, phase: u64) -> Option<u64> {
    let h = hint.clamp(lo, hi);
    find_run_from(bm, h, hi, len, HUGE_BLOCKS, phase)
        .or_else(|| find_run_from(bm, lo, hi, len, HUGE_BLOCKS, phase))
}

/// Small-file policy: `(start, len)` for up to `want` blocks, placed in
/// regions that are already partly used so that whole free 2 MiB regions
/// stay whole. (1) contiguous growth at `hint` unless it would start a
/// whole free region; (2) the first free run of `want` from `hint`
/// (wrapping) that does not lie in a whole free region (a run that would
/// reach into one stops before it), nor in the free tail of a region used
/// from its start up to a 1 MiB multiple (a file streaming into it);
/// (3) such a tail, if (2) found none; (4) after skipping
/// [`SMALL_SCAN_REGIONS`] whole free regions and tails, or if there is no
/// such run, first fit of `want` from `hint`; (5) the first free fragment.
fn choose_small(bm: &[u8], lo: u64, hi: u64, want: u64, hint: u64) -> Option<(u64, u64)> {
    // The part of `s .. s + want` before a whole free region it reaches.
    let clip = |s: u64| -> u64 {
        let last = s + want - 1;
        if region_of(last) != region_of(s) && region_free(bm, lo, hi, last) {
            region_of(last) - s
        } else {
            want
        }
    };
    // A region used from its start up to a multiple of 1 MiB and free
    // from there to its end: most likely a file streaming into it (a
    // write(2) of 1 MiB chunks whose next chunk continues there).
    let streaming = |s: u64| -> bool {
        let (rs, k) = (region_of(s), s % HUGE_BLOCKS);
        let re = rs.saturating_add(HUGE_BLOCKS);
        k != 0
            && k.is_multiple_of(STREAM_BLOCKS)
            && re <= hi
            && find_clear(bm, rs, s).is_none()
            && find_set(bm, s, re).is_none()
    };
    if hint >= lo && run_is_free(bm, hint, want, hi) && !region_free(bm, lo, hi, hint) {
        return Some((hint, clip(hint)));
    }
    let h = hint.clamp(lo, hi);
    let mut skips = 0;
    let mut spare = None;
    for (from, to) in [(h, hi), (lo, h.saturating_add(want - 1).min(hi))] {
        let mut pos = from;
        while skips < SMALL_SCAN_REGIONS {
            let Some(s) = find_run_from(bm, pos, to, want, 1, 0) else {
                break;
            };
            let whole = region_free(bm, lo, hi, s);
            if whole || streaming(s) {
                if !whole && spare.is_none() {
                    spare = Some(s);
                }
                skips += 1;
                pos = region_of(s).saturating_add(HUGE_BLOCKS);
                continue;
            }
            return Some((s, clip(s)));
        }
    }
    if let Some(s) = spare {
        return Some((s, clip(s)));
    }
    if let Some(s) = find_free_run(bm, lo, hi, hint, want) {
        return Some((s, want));
    }
    let s = find_free(bm, lo, hi, hint)?;
    Some((s, free_run_len(bm, s, hi, want)))
}

/// Picks blocks for `req` in the data area `lo .. hi`, for a request that
/// maps them at the file's logical block `logical`; returns `(start, len)`
/// with `1 <= len <= req.want`, or `None` if the area is full. The caller
/// marks the blocks used and calls again for the remainder.
///
/// A request of [`STREAM_BLOCKS`] or more, or of a file already 2 MiB
/// long, keeps the file's 2 MiB logical ranges on whole 2 MiB-aligned
/// physical regions: physical block `p` for logical block `l` with
/// `p % 512 == l % 512`, and the region holding the end of the request
/// free to its end, so that the file's next request (the next write(2) of
/// a file written in 1 MiB chunks) continues it. In order:
/// 1. contiguous growth at `hint` if it is congruent and free to the end
///    of the request's last region; else as far as the last region end
///    the free run at `hint` reaches;
/// 2. a congruent free run elsewhere, free to the end of the last region;
/// 3. a logical range already begun elsewhere (not on a region start)
///    finishes in small-file space (it cannot be PMD-mapped any more);
///    a request on a region start takes one whole free region;
/// 4. with no whole free region left: first fit, then any fragment.
///
/// Smaller requests follow the small-file policy (see [`choose_small`]):
/// they fill partly used regions first.
pub fn choose_file_blocks(
    bm: &[u8],
    lo: u64,
    hi: u64,
    req: AllocRequest,
    logical: u64,
) -> Option<(u64, u64)> {
    let want = req.want;
    if want == 0 || lo >= hi {
        return None;
    }
    if want < STREAM_BLOCKS && !req.large_file {
        return choose_small(bm, lo, hi, want, req.hint);
    }
    let r = HUGE_BLOCKS;
    let off = logical % r;
    // Blocks from `logical` to the end of the request's last region.
    let need = off.checked_add(want)?.checked_next_multiple_of(r)? - off;
    let hint = req.hint;
    if hint >= lo && hint % r == off {
        let run = free_run_len(bm, hint, hi, need);
        if run == need {
            return Some((hint, want));
        }
        // Up to the last region end the free run reaches: those regions
        // are whole (the first one continues the file's own blocks).
        let upto = ((off + run) / r * r).saturating_sub(off);
        if upto > 0 {
            return Some((hint, want.min(upto)));
        }
        if off != 0 && run >= want {
            // This range is broken already: plain contiguous growth.
            return Some((hint, want));
        }
    }
    if let Some(s) = find_congruent_run(bm, lo, hi, hint, need, off) {
        return Some((s, want));
    }
    if off != 0 {
        return choose_small(bm, lo, hi, want.min(r - off), hint);
    }
    if want > r {
        if let Some(s) = find_congruent_run(bm, lo, hi, hint, r, 0) {
            return Some((s, r));
        }
    }
    if let Some(s) = find_free_run(bm, lo, hi, hint, want) {
        return Some((s, want));
    }
    let s = find_free(bm, lo, hi, hint)?;
    Some((s, free_run_len(bm, s, hi, want)))
}

/// Picks blocks for `req` when no file position goes with it (metadata
/// blocks, or a caller that does not know one): as [`choose_file_blocks`]
/// with the request taken to continue its hint (`logical` congruent to
/// `hint`, a region start if there is no hint).
pub fn choose_blocks(bm: &[u8], lo: u64, hi: u64, req: AllocRequest) -> Option<(u64, u64)> {
    let logical = if req.hint >= lo {
        req.hint % HUGE_BLOCKS
    } else {
        0
    };
    choose_file_blocks(bm, lo, hi, req, logical)
}
