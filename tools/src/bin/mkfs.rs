//! mkfs.rdaxfs: make an rdaxfs filesystem on a device or image file.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::exit;
use std::time::{SystemTime, UNIX_EPOCH};

use rdaxfs_tools::format::{BLOCK_SIZE_U64, MIN_DEVICE_BYTES};
use rdaxfs_tools::mkfs::{existing_on, mkfs, open_target, parse_size, MkfsOptions};

const USAGE: &str = "usage: mkfs.rdaxfs DEVICE|IMAGE [--size BYTES|N{K,M,G,T}] [--label L] \
[--inodes N] [-d DIR] [--force|-f|-F] [-V]
Over an existing filesystem mkfs asks on stdin (answer y to proceed, as
`yes | mkfs -t rdaxfs DEV` does); --force skips the question.";

fn die(msg: &str) -> ! {
    eprintln!("mkfs.rdaxfs: {msg}");
    exit(1)
}

fn parse_args() -> (PathBuf, MkfsOptions) {
    let mut opts = MkfsOptions::default();
    let mut target = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| {
            args.next()
                .unwrap_or_else(|| die(&format!("{name} needs a value")))
        };
        match a.as_str() {
            "--size" | "-s" => {
                let v = val("--size");
                opts.size = Some(parse_size(&v).unwrap_or_else(|| die(&format!("bad size '{v}'"))));
            }
            "--label" | "-L" => opts.label = val("--label"),
            "--inodes" | "-N" => {
                let v = val("--inodes");
                opts.inodes = Some(
                    v.parse()
                        .unwrap_or_else(|_| die(&format!("bad inode count '{v}'"))),
                );
            }
            "-d" | "--root-dir" => opts.populate = Some(PathBuf::from(val("-d"))),
            "--force" | "-f" | "-F" => opts.force = true,
            "-V" | "--version" => {
                println!("mkfs.rdaxfs {}", env!("CARGO_PKG_VERSION"));
                exit(0);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                exit(0);
            }
            s if s.starts_with('-') => die(&format!("unknown option '{s}'\n{USAGE}")),
            _ if target.is_none() => target = Some(PathBuf::from(a)),
            _ => die(USAGE),
        }
    }
    (target.unwrap_or_else(|| die(USAGE)), opts)
}

/// Asks before destroying what `target` holds, like mke2fs does. The answer
/// is read from stdin even when it is not a terminal (fstests and scripts
/// pipe `yes`); then no prompt is printed, so a caller's captured stderr
/// stays clean. End of input or anything but y/yes keeps the data.
fn confirm_overwrite(target: &Path, what: &str) -> bool {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!(
            "mkfs.rdaxfs: {} contains {what}. Proceed anyway? (y,N) ",
            target.display()
        );
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    let _ = stdin.lock().read_line(&mut line);
    matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
}

fn main() {
    let (target, mut opts) = parse_args();
    if !opts.force {
        match existing_on(&target) {
            Ok(Some(what)) => {
                if !confirm_overwrite(&target, what) {
                    die(&format!(
                        "{} contains {what}; not overwritten (answer y, or use --force)",
                        target.display()
                    ));
                }
                opts.force = true;
            }
            Ok(None) => {}
            Err(e) => die(&format!("{}: {e}", target.display())),
        }
    }
    if opts.size.is_some_and(|s| s < MIN_DEVICE_BYTES) {
        die(&format!(
            "size too small: rdaxfs needs at least {MIN_DEVICE_BYTES} bytes (16 MiB)"
        ));
    }
    let dev = open_target(&target, &opts).unwrap_or_else(|e| die(&e.to_string()));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let fs = mkfs(dev, &opts, now).unwrap_or_else(|e| die(&format!("{}: {e}", target.display())));
    let sb = fs.sb;
    println!(
        "rdaxfs on {}: {} blocks of 4096 bytes ({} MiB)",
        target.display(),
        sb.block_count,
        (sb.block_count * BLOCK_SIZE_U64) >> 20
    );
    println!(
        "  inodes: {} ({} free), inode table at block {} ({} blocks)",
        sb.inode_count, sb.free_inodes, sb.inode_table_start, sb.inode_table_blocks
    );
    println!(
        "  journal area: blocks {}..{} (reserved)",
        sb.journal_start,
        sb.journal_start + sb.journal_blocks
    );
    println!(
        "  data start: block {} (2 MiB aligned), {} data blocks, {} free",
        sb.data_start,
        sb.data_blocks(),
        sb.free_blocks
    );
}
