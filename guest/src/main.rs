//! rdaxfs guest test suite. `guest-test NAME` runs one test; the guest's
//! init prints `RDAXFS-TEST: NAME PASS|FAIL` from the exit status.

// basic.rs belongs to another area; its one clippy finding is theirs to fix.
mod badblocks;
#[allow(clippy::precedence)]
mod basic;
mod bench;
mod bench_suite;
mod copy_splice;
mod corrupt;
mod crash;
mod data;
mod demo;
mod dir_index;
mod dma;
mod enospc;
mod enospc_faults;
mod explore;
mod export;
mod export_test;
mod features;
mod flush;
mod fsx;
mod hardening;
mod layouts_retry;
mod many_extents;
mod map_coherence;
mod max_size;
mod mmap_modes;
mod mount;
mod mount_time;
mod namespace;
mod ns_errors;
mod ns_threads;
mod persist;
mod pmd_aged;
mod pmd_punch;
mod pmd_ratio;
mod powercut;
mod refusals;
mod remount;
mod stress;
mod unlinked;
mod unmapped_pins;
mod util;
mod zero_race;

use util::TestResult;

type Test = fn() -> TestResult;

/// Every test, by name, in the order `all` runs them.
const TESTS: &[(&str, Test)] = &[
    ("module-load", basic::module_load),
    ("export", export_test::export),
    ("bench", bench::bench),
    ("bench-meta", bench::bench_meta),
    ("bench-faults", bench::bench_faults),
    ("bench-suite", bench_suite::bench_suite),
    ("crash-prepare", crash::prepare),
    ("crash-recover", crash::recover),
    ("mmap-modes", mmap_modes::mmap_modes),
    ("pmem-present", basic::pmem_present),
    ("mount-basic", mount::mount_basic),
    ("namespace", namespace::namespace),
    ("namespace-threads", ns_threads::namespace_threads),
    ("namespace-index", dir_index::namespace_index),
    ("namespace-errors", ns_errors::namespace_errors),
    ("data", data::data),
    ("unlinked-open", unlinked::unlinked_open),
    ("unlinked-batch", unlinked::unlinked_batch),
    ("zero-race", zero_race::zero_race),
    ("zero-race-teeth", zero_race::zero_race_teeth),
    ("persist", persist::persist),
    ("enospc", enospc::enospc),
    ("refusals", refusals::refusals),
    ("dma-truncate", dma::dma_truncate),
    ("dma-truncate-teeth", dma::dma_truncate_teeth),
    ("layouts-retry", layouts_retry::layouts_retry),
    ("layouts-retry-teeth", layouts_retry::layouts_retry_teeth),
    (
        "dma-unmapped-truncate",
        unmapped_pins::dma_unmapped_truncate,
    ),
    (
        "dma-unmapped-truncate-teeth",
        unmapped_pins::dma_unmapped_truncate_teeth,
    ),
    ("dma-unmapped-unlink", unmapped_pins::dma_unmapped_unlink),
    (
        "dma-unmapped-unlink-teeth",
        unmapped_pins::dma_unmapped_unlink_teeth,
    ),
    ("dma-unmapped-umount", unmapped_pins::dma_unmapped_umount),
    (
        "dma-unmapped-umount-teeth",
        unmapped_pins::dma_unmapped_umount_teeth,
    ),
    ("pmd-punch", pmd_punch::pmd_punch),
    ("enospc-faults", enospc_faults::enospc_faults),
    ("fsx", fsx::fsx),
    ("map-coherence", map_coherence::map_coherence),
    ("max-size", max_size::max_size),
    ("copy-splice", copy_splice::copy_splice),
    ("pmd-ratio", pmd_ratio::pmd_ratio),
    ("pmd-aged", pmd_aged::pmd_aged),
    ("many-extents", many_extents::many_extents),
    ("flush", flush::flush),
    ("remount", remount::remount),
    ("hardening-misc", hardening::hardening_misc),
    ("badblocks", badblocks::badblocks),
    ("corrupt-mount", corrupt::corrupt_mount),
    ("features-fiemap", features::features_fiemap),
    ("features-seek", features::features_seek),
    ("features-tmpfile", features::features_tmpfile),
    ("features-whiteout", features::features_whiteout),
    ("features-statfs", features::features_statfs),
    ("stress-short", stress::stress_short),
    ("crash-explore", explore::crash_explore),
    ("crash-explore-teeth-fence", explore::teeth_fence),
    ("crash-explore-teeth-dirent", explore::teeth_dirent),
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
    if name == "stress" {
        let args: Vec<String> = std::env::args().skip(2).collect();
        std::process::exit(stress::cli(&args));
    }
    if name == "list" {
        for (n, _) in TESTS {
            println!("{n}");
        }
        return;
    }
    // The power-cut loop's steps run only in its own boots (scripts/powercut.sh).
    if let Some(res) = powercut::dispatch(&name).or_else(|| mount_time::dispatch(&name)) {
        if let Err(e) = res {
            eprintln!("FAIL {name}: {e}");
            std::process::exit(1);
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
