//! Vector operations the 6.12 kernel crate lacks (it has no truncate or
//! remove). Works for `KVec` and the vmalloc-capable `KVVec` alike.

use kernel::alloc::{Allocator, Vec};
use kernel::prelude::*;

/// Shortens `v` to `n` elements, in place (no reallocation).
pub(crate) fn truncate<T: Copy, A: Allocator>(v: &mut Vec<T, A>, n: usize) -> Result {
    crate::glue::vec_truncate(v, n);
    Ok(())
}

/// Removes and returns element `i`, moving the later ones down.
pub(crate) fn remove<T: Copy, A: Allocator>(v: &mut Vec<T, A>, i: usize) -> Result<T> {
    let x = *v.get(i).ok_or(EINVAL)?;
    let len = v.len();
    v.copy_within(i + 1..len, i);
    truncate(v, len - 1)?;
    Ok(x)
}
