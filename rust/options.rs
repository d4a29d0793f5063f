//! Mount options.

use core::sync::atomic::{AtomicU8, Ordering};
use kernel::prelude::*;

/// What to do when rdaxfs finds corrupt metadata on a mounted filesystem.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Errors {
    /// Report and fail the operation, keep going.
    #[default]
    Continue,
    /// Report and make the mount read-only.
    RemountRo,
    /// Report and panic.
    Panic,
}

/// Parsed mount options.
#[derive(Clone, Copy, Default)]
pub(crate) struct Options {
    /// `errors=`.
    pub(crate) errors: Errors,
    /// Whether `errors=` was given (a remount without it keeps the old one).
    pub(crate) errors_set: bool,
}

/// The options of a mounted filesystem; `errors=` can change on remount
/// while other threads read it.
pub(crate) struct LiveOptions {
    errors: AtomicU8,
}

impl Errors {
    fn code(self) -> u8 {
        match self {
            Errors::Continue => 0,
            Errors::RemountRo => 1,
            Errors::Panic => 2,
        }
    }

    fn from_code(c: u8) -> Self {
        match c {
            1 => Errors::RemountRo,
            2 => Errors::Panic,
            _ => Errors::Continue,
        }
    }
}

impl LiveOptions {
    /// The options a mount starts with.
    pub(crate) fn new(o: &Options) -> Self {
        Self {
            errors: AtomicU8::new(o.errors.code()),
        }
    }

    /// The options now in force.
    pub(crate) fn get(&self) -> Options {
        Options {
            errors: Errors::from_code(self.errors.load(Ordering::Relaxed)),
            errors_set: true,
        }
    }

    /// Applies the options a remount gave (those not given stay).
    pub(crate) fn update(&self, o: &Options) {
        if o.errors_set {
            self.errors.store(o.errors.code(), Ordering::Relaxed);
        }
    }
}

/// Applies one `key=value` option.
pub(crate) fn parse(opts: &mut Options, key: &[u8], val: &[u8]) -> Result {
    if key == b"errors" {
        opts.errors_set = true;
    }
    match (key, val) {
        // DAX is the only mode rdaxfs has; accept the spellings users type.
        (b"dax", b"" | b"always") => Ok(()),
        (b"errors", b"continue") => {
            opts.errors = Errors::Continue;
            Ok(())
        }
        (b"errors", b"remount-ro") => {
            opts.errors = Errors::RemountRo;
            Ok(())
        }
        (b"errors", b"panic") => {
            opts.errors = Errors::Panic;
            Ok(())
        }
        (b"dax" | b"errors", _) => Err(EINVAL),
        // Not ours: the VFS handles `source` and the generic flags.
        _ => Err(ENOPARAM),
    }
}

/// The options as /proc/mounts shows them.
pub(crate) fn show(opts: &Options) -> &'static CStr {
    match opts.errors {
        Errors::Continue => c_str!(",dax=always,errors=continue"),
        Errors::RemountRo => c_str!(",dax=always,errors=remount-ro"),
        Errors::Panic => c_str!(",dax=always,errors=panic"),
    }
}

use kernel::c_str;
use kernel::str::CStr;
