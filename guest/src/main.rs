//! rdaxfs guest test suite. `guest-test NAME` runs one test; the guest's
//! init prints `RDAXFS-TEST: NAME PASS|FAIL` from the exit status.

mod basic;
mod util;

use util::TestResult;

type Test = fn() -> TestResult;

/// Every test, by name, in the order `all` runs them.
const TESTS: &[(&str, Test)] = &[
    ("module-load", basic::module_load),
    ("pmem-present", basic::pmem_present),
];

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
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
