//! Per-mount counters, readable as /sys/kernel/debug/rdaxfs/<dev>/<name>.

use super::bindings;
use core::marker::PhantomPinned;
use core::pin::Pin;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use kernel::prelude::*;
use kernel::str::CStr;

/// Creates /sys/kernel/debug/rdaxfs (module init).
pub(crate) fn init() {
    // SAFETY: called once from module init.
    unsafe { bindings::rdaxfs_debugfs_init() };
}

/// Removes /sys/kernel/debug/rdaxfs (module exit, after every unmount).
pub(crate) fn exit() {
    // SAFETY: called once from module exit.
    unsafe { bindings::rdaxfs_debugfs_exit() };
}

/// `N` named counters. Once published, debugfs reads them in place, so they
/// are pinned, and the files go away before the counters do.
#[pin_data(PinnedDrop)]
pub(crate) struct Counters<const N: usize> {
    vals: [AtomicU64; N],
    names: [&'static CStr; N],
    dir: AtomicPtr<bindings::dentry>,
    #[pin]
    _pin: PhantomPinned,
}

impl<const N: usize> Counters<N> {
    /// Zeroed counters with the given file names.
    pub(crate) fn new(names: [&'static CStr; N]) -> impl PinInit<Self> {
        pin_init!(Self {
            vals: [const { AtomicU64::new(0) }; N],
            names,
            dir: AtomicPtr::new(core::ptr::null_mut()),
            _pin: PhantomPinned,
        })
    }

    /// Adds `n` to counter `i`.
    pub(crate) fn add(&self, i: usize, n: u64) {
        if let Some(c) = self.vals.get(i) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Reads counter `i`.
    pub(crate) fn get(&self, i: usize) -> u64 {
        self.vals.get(i).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Publishes the counters under /sys/kernel/debug/rdaxfs/`dev`/.
    ///
    /// Taking `&self` is enough: `Counters` is `!Unpin` and only made by a
    /// pin initialiser, so every value of it is pinned.
    pub(crate) fn publish(&self, dev: &CStr) {
        let names = self.names.map(|n| n.as_char_ptr());
        // SAFETY: the names are static strings; the counters are pinned and
        // outlive the files, which `PinnedDrop` removes first. `AtomicU64`
        // has the layout of `u64`, which debugfs reads racily by design.
        let dir = unsafe {
            bindings::rdaxfs_debugfs_add(
                dev.as_char_ptr(),
                self.vals.as_ptr().cast_mut().cast(),
                names.as_ptr(),
                N as u32,
            )
        };
        let old = self.dir.swap(dir, Ordering::AcqRel);
        // SAFETY: a previous directory of ours (null is accepted).
        unsafe { bindings::rdaxfs_debugfs_remove(old) };
    }
}

#[pinned_drop]
impl<const N: usize> PinnedDrop for Counters<N> {
    fn drop(self: Pin<&mut Self>) {
        let dir = self.dir.swap(core::ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: our directory or null; removed before the counters go.
        unsafe { bindings::rdaxfs_debugfs_remove(dir) };
    }
}
