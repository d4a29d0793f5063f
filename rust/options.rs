//! Mount options.

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
}

/// Applies one `key=value` option.
pub(crate) fn parse(opts: &mut Options, key: &[u8], val: &[u8]) -> Result {
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
