//! Vector operations the 6.12 kernel crate lacks (it has no truncate or
//! remove): done by copying, which is fine for how rarely rdaxfs needs them.

use kernel::alloc::{Allocator, Vec};
use kernel::prelude::*;

/// Shortens `v` to `n` elements.
pub(crate) fn truncate<T: Copy, A: Allocator>(v: &mut Vec<T, A>, n: usize) -> Result {
    if n < v.len() {
        let mut w = Vec::<T, A>::with_capacity(n, GFP_KERNEL)?;
        w.extend_from_slice(&v[..n], GFP_KERNEL)?;
        *v = w;
    }
    Ok(())
}

/// Removes and returns element `i`.
pub(crate) fn remove<T: Copy, A: Allocator>(v: &mut Vec<T, A>, i: usize) -> Result<T> {
    let x = *v.get(i).ok_or(EINVAL)?;
    let mut w = Vec::<T, A>::with_capacity(v.len() - 1, GFP_KERNEL)?;
    w.extend_from_slice(&v[..i], GFP_KERNEL)?;
    w.extend_from_slice(&v[i + 1..], GFP_KERNEL)?;
    *v = w;
    Ok(x)
}
