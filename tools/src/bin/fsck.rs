//! fsck.rdaxfs: check and repair an rdaxfs filesystem.
//! Exit codes per fsck(8): 0 clean, 1 errors corrected, 4 errors left
//! uncorrected, 8 operational error, 16 usage error.

use std::path::PathBuf;
use std::process::exit;

use rdaxfs_tools::fsck::{check, Class, Options};
use rdaxfs_tools::FileDev;

const USAGE: &str = "usage: fsck.rdaxfs [-n] [-y] [-f] [-v] DEVICE|IMAGE";

fn main() {
    let mut opts = Options::default();
    let mut target = None;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "-n" => opts.repair = false,
            "-y" | "-p" | "-a" => opts.repair = true,
            "-f" => {} // every run is a full check
            "-v" => opts.verbose = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                exit(0);
            }
            s if s.starts_with('-') => {
                eprintln!("fsck.rdaxfs: unknown option '{s}'\n{USAGE}");
                exit(16);
            }
            _ => target = Some(PathBuf::from(a)),
        }
    }
    let Some(target) = target else {
        eprintln!("{USAGE}");
        exit(16);
    };
    let mut dev = match FileDev::open(&target, opts.repair) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("fsck.rdaxfs: {}: {e}", target.display());
            exit(8);
        }
    };
    let rep = match check(&mut dev, opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fsck.rdaxfs: {}: I/O error: {e}", target.display());
            exit(8);
        }
    };
    for n in &rep.notes {
        if opts.verbose {
            println!("note: {n}");
        }
    }
    for p in &rep.problems {
        let class = if p.class == Class::Leak {
            "leak"
        } else {
            "error"
        };
        let fixed = if p.fixed { " [fixed]" } else { "" };
        println!("{class}: {}{fixed}", p.msg);
    }
    let code = rep.exit_code();
    let verdict = match code {
        0 => "clean",
        1 => "errors corrected",
        _ => "errors left uncorrected",
    };
    println!(
        "{}: {verdict}, {} inodes ({} directories), {} data blocks used",
        target.display(),
        rep.inodes,
        rep.dirs,
        rep.blocks_used
    );
    exit(code);
}
