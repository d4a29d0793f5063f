//! fsck on a small image (16 MiB, a random tree) with fuzzer-chosen
//! metadata corruption: check, repair, check again.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rdaxfs_tools::fsck::{check, Options};
use rdaxfs_tools::testutil::{mutate, small_image};
use rdaxfs_tools::SparseDev;

static BASE: OnceLock<SparseDev> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let mut dev = BASE.get_or_init(|| small_image(1)).clone();
    mutate(&mut dev, data);
    let _ = check(&mut dev, Options { repair: false, verbose: false });
    let _ = check(&mut dev, Options { repair: true, verbose: false });
    let again = check(&mut dev, Options { repair: false, verbose: false });
    if let Ok(r) = again {
        // After -y the image must never get worse than "fatal" (no usable
        // superblock): every repairable problem must be gone.
        assert!(r.fatal || r.problems.iter().all(|p| p.class == rdaxfs_tools::fsck::Class::Leak) || r.problems.is_empty(), "{:?}", r.problems);
    }
});
