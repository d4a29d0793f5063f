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
        // After -y the image is clean, unless it was beyond repair (no
        // usable superblock or root directory).
        assert!(r.fatal || r.is_clean(), "{:?}", r.problems);
    }
});
