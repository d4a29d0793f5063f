//! `KVec` operations the 6.12 kernel crate lacks (it has no truncate or
//! remove): done by copying, which is fine for the short lists rdaxfs keeps.

use kernel::prelude::*;

/// Shortens `v` to `n` elements.
pub(crate) fn truncate<T: Copy>(v: &mut KVec<T>, n: usize) -> Result {
    if n < v.len() {
        let mut w = KVec::with_capacity(n, GFP_KERNEL)?;
        w.extend_from_slice(&v[..n], GFP_KERNEL)?;
        *v = w;
    }
    Ok(())
}

/// Removes and returns element `i`.
pub(crate) fn remove<T: Copy>(v: &mut KVec<T>, i: usize) -> Result<T> {
    let x = *v.get(i).ok_or(EINVAL)?;
    let mut w = KVec::with_capacity(v.len() - 1, GFP_KERNEL)?;
    w.extend_from_slice(&v[..i], GFP_KERNEL)?;
    w.extend_from_slice(&v[i + 1..], GFP_KERNEL)?;
    *v = w;
    Ok(x)
}
