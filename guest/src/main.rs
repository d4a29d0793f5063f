//! rdaxfs guest test suite. `guest-test NAME` runs one test; the guest's
//! init prints `RDAXFS-TEST: NAME PASS|FAIL` from the exit status.

// basic.rs belongs to another area; its one clippy finding is theirs to fix.
#[allow(clippy::precedence)]
mod basic;
mod bench;
mod copy_splice;
mod crash;
mod data;
mod demo;
mod dma;
mod enospc;
mod enospc_faults;
mod export;
mod export_test;
mod fsx;
mod layouts_retry;
mod map_coherence;
mod max_size;
mod mmap_modes;
mod mount;
mod namespace;
mod persist;
mod pmd_punch;
mod pmd_ratio;
mod refusals;
mod unlinked;
mod util;
mod zero_race;

use util::TestResult;

type Test = fn() -> TestResult;

/// Every test, by name, in the order `all` runs them.
const TESTS: &[(&str, Test)] = &[
    ("module-load", basic::module_load),
    ("export", export_test::export),
    ("bench", bench::bench),
    ("crash-prepare", crash::prepare),
    ("crash-recover", crash::recover),
    ("mmap-modes", mmap_modes::mmap_modes),
    ("pmem-present", basic::pmem_present),
    ("mount-basic", mount::mount_basic),
    ("namespace", namespace::namespace),
    ("data", data::data),
    ("unlinked-open", unlinked::unlinked_open),
    ("zero-race", zero_race::zero_race),
    ("zero-race-teeth", zero_race::zero_race_teeth),
    ("persist", persist::persist),
    ("enospc", enospc::enospc),
    ("refusals", refusals::refusals),
    ("dma-truncate", dma::dma_truncate),
    ("dma-truncate-teeth", dma::dma_truncate_teeth),
    ("layouts-retry", layouts_retry::layouts_retry),
    ("layouts-retry-teeth", layouts_retry::layouts_retry_teeth),
    ("pmd-punch", pmd_punch::pmd_punch),
    ("enospc-faults", enospc_faults::enospc_faults),
    ("fsx", fsx::fsx),
    ("map-coherence", map_coherence::map_coherence),
    ("max-size", max_size::max_size),
    ("copy-splice", copy_splice::copy_splice),
    ("pmd-ratio", pmd_ratio::pmd_ratio),
];

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    if name == "demo" {
        if let Err(e) = demo::demo() {
            eprintln!("demo: {e}");
            std::process::exit(1);
        }
        return;
    }
    if name == "list" {
        for (n, _) in TESTS {
            println!("{n}");
        }
        return;
    }
    let Some((_, test)) = TESTS.iter().find(|(n, _)| *n == name) else {
        eprintln!("guest-test: unknown test {name:?}; `guest-test list` shows them");
        std::process::exit(2);
    };
    if let Err(e) = test() {
        eprintln!("FAIL {name}: {e}");
        eprintln!("--- last kernel messages ---\n{}", util::dmesg_tail(15));
        std::process::exit(1);
    }
}
