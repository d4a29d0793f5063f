//! The thin layer between rdaxfs and the kernel's C APIs.
//!
//! Every `unsafe` block of rdaxfs lives below this module: `extern "C"`
//! trampolines with a `# Safety` section saying what the caller (the VFS,
//! iomap, DAX or mm code) guarantees, and typed wrappers whose safe methods
//! keep those guarantees. The filesystem modules above it are safe Rust.

pub(crate) mod bindings;
pub(crate) mod compat;
pub(crate) mod dax;
pub(crate) mod debugfs;
pub(crate) mod file;
pub(crate) mod fs;
pub(crate) mod inode;
pub(crate) mod iomap;

pub(crate) use file::{DirEmitter, Kiocb, VmFault};
use kernel::str::CStr;
#[cfg(rdaxfs_k73)]
use kernel::str::CStrExt as _; // `as_char_ptr` is a trait method in 7.3

/// The name of a dentry, as bytes.
///
/// # Safety
/// `d` is a live dentry whose name is stable for `'a` (the VFS holds the
/// parent's i_rwsem in every callback that passes one).
pub(crate) unsafe fn dentry_name<'a>(d: *mut bindings::dentry) -> &'a [u8] {
    let mut len = 0u32;
    // SAFETY: per the contract `d` is live; the helper returns `d_name`,
    // which points to `len` valid bytes.
    unsafe {
        let name = bindings::rdaxfs_dentry_name(d, &mut len);
        core::slice::from_raw_parts(name, len as usize)
    }
}

pub(crate) use compat::{vec_extend_from_within, vec_truncate};

/// Yields the CPU if a reschedule is due (`cond_resched`). Only where
/// sleeping is allowed.
pub(crate) fn cond_resched() {
    // SAFETY: the callers may sleep (no spinlock held, not atomic).
    unsafe { bindings::rdaxfs_cond_resched() };
}

/// Nanoseconds of the monotonic clock (`ktime_get_ns`).
pub(crate) fn now_ns() -> u64 {
    // SAFETY: reads the clock; callable in any context.
    unsafe { bindings::rdaxfs_ktime_ns() }
}

/// The output of show_options.
pub(crate) struct SeqFile(*mut bindings::seq_file);

impl SeqFile {
    pub(crate) fn new(m: *mut bindings::seq_file) -> Self {
        Self(m)
    }

    /// Appends `s`.
    pub(crate) fn puts(&mut self, s: &CStr) {
        // SAFETY: a live seq_file during show_options; `s` is NUL-terminated.
        unsafe { bindings::rdaxfs_seq_puts(self.0, s.as_char_ptr()) };
    }
}

/// Test-only switches (module parameters) that put historical DAX bugs back.
pub(crate) mod bugs {
    use super::bindings;

    /// Zero new blocks after dropping the allocation lock.
    pub(crate) fn zero_outside_lock() -> bool {
        // SAFETY: reads a module parameter.
        unsafe { bindings::rdaxfs_bug_zero_outside_lock() }
    }
    /// Free blocks without breaking layouts.
    pub(crate) fn skip_break_layouts() -> bool {
        // SAFETY: reads a module parameter.
        unsafe { bindings::rdaxfs_bug_skip_break_layouts() }
    }
    /// Stop break-layouts after one busy page.
    pub(crate) fn break_layouts_once() -> bool {
        // SAFETY: reads a module parameter.
        unsafe { bindings::rdaxfs_bug_break_layouts_once() }
    }
    /// Leave out the fence between a transaction's header and its in-place
    /// stores.
    pub(crate) fn drop_commit_fence() -> bool {
        // SAFETY: reads a module parameter.
        unsafe { bindings::rdaxfs_bug_drop_commit_fence() }
    }
    /// Fault injection: every this many transactions, one fails (0: none).
    pub(crate) fn inject_tx_error() -> u32 {
        // SAFETY: reads a module parameter.
        unsafe { bindings::rdaxfs_inject_tx_error() }
    }
    /// Look for pinned pages only while the file is mapped (6.12's scan).
    pub(crate) fn busy_scan_mapped_only() -> bool {
        // SAFETY: reads a module parameter.
        unsafe { bindings::rdaxfs_bug_busy_scan_mapped_only() }
    }
    /// Evict inodes (unlink, unmount) without waiting for pinned pages.
    pub(crate) fn evict_skip_wait() -> bool {
        // SAFETY: reads a module parameter.
        unsafe { bindings::rdaxfs_bug_evict_skip_wait() }
    }
    /// Create writes the directory entry before the inode it names
    /// (crash-state explorer teeth).
    pub(crate) fn dirent_before_inode() -> bool {
        // SAFETY: reads a module parameter.
        unsafe { bindings::rdaxfs_bug_dirent_before_inode() }
    }
    /// Sleeps between a transaction's durable commit and its in-place
    /// stores for `test_commit_delay_us` (0: not at all), so that a power
    /// cut likely finds a committed transaction to replay (make mount-time).
    pub(crate) fn commit_delay() {
        // SAFETY: reads a module parameter and sleeps (the journal lock
        // is a mutex: sleeping under it is allowed).
        unsafe { bindings::rdaxfs_delay_us(bindings::rdaxfs_test_commit_delay_us()) };
    }
    /// Sleeps for the configured racy-window delay (0: no delay).
    pub(crate) fn delay() {
        // SAFETY: reads a module parameter and sleeps.
        unsafe { bindings::rdaxfs_delay_us(bindings::rdaxfs_bug_delay_us()) };
    }
}

/// Error codes the kernel crate of 6.12 does not name.
pub(crate) mod code {
    use kernel::bindings as k;
    use kernel::error::Error;

    fn e(n: u32) -> Error {
        Error::from_errno(-(n as i32))
    }
    /// Directory not empty.
    pub(crate) fn enotempty() -> Error {
        e(k::ENOTEMPTY)
    }
    /// File name too long.
    pub(crate) fn enametoolong() -> Error {
        e(k::ENAMETOOLONG)
    }
    /// Operation not supported.
    pub(crate) fn eopnotsupp() -> Error {
        e(k::EOPNOTSUPP)
    }
    /// Structure needs cleaning (corrupt metadata).
    pub(crate) fn euclean() -> Error {
        e(k::EUCLEAN)
    }
}
