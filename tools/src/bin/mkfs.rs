//! mkfs.rdaxfs: make an rdaxfs filesystem on a device or image file.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::exit;
use std::time::{SystemTime, UNIX_EPOCH};

use rdaxfs_tools::format::{BLOCK_SIZE_U64, MIN_DEVICE_BYTES};
use rdaxfs_tools::mkfs::{existing_on, mkfs, open_target, parse_size, MkfsOptions};

const USAGE: &str = "usage: mkfs.rdaxfs DEVICE|IMAGE [--size BYTES|N{K,M,G,T}] [--label L] \
[--inodes N] [-d DIR] [--force|-f|-F] [-V]
Over an existing filesystem mkfs asks on the terminal, or reads the answer
from stdin when that is not a terminal (`yes | mkfs -t rdaxfs DEV`); with
stdin a terminal but stderr not, it refuses. --force skips the question.";

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

/// How mkfs gets its answer before overwriting an existing filesystem.
#[derive(Debug, PartialEq, Eq)]
enum Ask {
    /// Print the question on stderr and read the answer from the terminal.
    Prompt,
    /// Read the answer from stdin without a question (fstests and scripts
    /// pipe `yes`), so a caller's captured stderr stays clean.
    Silently,
    /// Refuse at once: stdin is a terminal but the question would go to a
    /// file or pipe, where nobody sees it (fstests' generic/740 runs
    /// `mkfs -t FSTYP DEV >>full 2>&1` from the terminal check was started
    /// in and expects a refusal, not a wait).
    Refuse,
}

fn how_to_ask(stdin_tty: bool, stderr_tty: bool) -> Ask {
    match (stdin_tty, stderr_tty) {
        (true, true) => Ask::Prompt,
        (true, false) => Ask::Refuse,
        (false, _) => Ask::Silently,
    }
}

/// Asks before destroying what `target` holds, like mke2fs does. End of
/// input or anything but y/yes keeps the data; the error says what to do.
fn confirm_overwrite(target: &Path, what: &str) -> Result<(), &'static str> {
    let stdin = std::io::stdin();
    match how_to_ask(stdin.is_terminal(), std::io::stderr().is_terminal()) {
        Ask::Refuse => {
            return Err("stderr is not a terminal, so nobody saw the question; use --force")
        }
        Ask::Prompt => {
            eprint!(
                "mkfs.rdaxfs: {} contains {what}. Proceed anyway? (y,N) ",
                target.display()
            );
            let _ = std::io::stderr().flush();
        }
        Ask::Silently => {}
    }
    let mut line = String::new();
    let _ = stdin.lock().read_line(&mut line);
    if matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err("answer y, or use --force")
    }
}

fn main() {
    let (target, mut opts) = parse_args();
    if !opts.force {
        match existing_on(&target) {
            Ok(Some(what)) => {
                if let Err(hint) = confirm_overwrite(&target, what) {
                    die(&format!(
                        "{} contains {what}; not overwritten ({hint})",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_only_where_someone_can_answer() {
        assert_eq!(how_to_ask(true, true), Ask::Prompt);
        assert_eq!(how_to_ask(true, false), Ask::Refuse);
        assert_eq!(how_to_ask(false, true), Ask::Silently);
        assert_eq!(how_to_ask(false, false), Ask::Silently);
    }
}
