//! dump.rdaxfs: print the superblock, an inode or a directory.

use std::process::exit;

use rdaxfs_tools::format::*;
use rdaxfs_tools::{FileDev, Fs};

const USAGE: &str = "usage: dump.rdaxfs IMAGE [--inode N] [--dir PATH|N]";

fn die(msg: &str) -> ! {
    eprintln!("dump.rdaxfs: {msg}");
    exit(1)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first().filter(|a| !a.starts_with('-')) else {
        die(USAGE)
    };
    let dev = FileDev::open(path.as_ref(), false).unwrap_or_else(|e| die(&format!("{path}: {e}")));
    let mut fs = Fs::open(dev).unwrap_or_else(|e| die(&format!("{path}: {e}")));
    let mut it = args.iter().skip(1);
    let mut did = false;
    while let Some(a) = it.next() {
        let v = it.next().unwrap_or_else(|| die(USAGE));
        match a.as_str() {
            "--inode" | "-i" => dump_inode(
                &mut fs,
                v.parse().unwrap_or_else(|_| die("bad inode number")),
            ),
            "--dir" | "-d" => {
                let ino = v
                    .parse()
                    .ok()
                    .unwrap_or_else(|| fs.resolve(v).unwrap_or_else(|e| die(&e.to_string())));
                dump_dir(&mut fs, ino);
            }
            _ => die(USAGE),
        }
        did = true;
    }
    if !did {
        dump_sb(&fs.sb);
    }
}

fn dump_sb(sb: &Superblock) {
    println!("magic RDAX version {} block size {BLOCK_SIZE}", sb.version);
    println!(
        "label '{}' uuid {}",
        String::from_utf8_lossy(sb.label_bytes()),
        sb.uuid
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    println!(
        "features compat {:#x} incompat {:#x} ro_compat {:#x}",
        sb.compat, sb.incompat, sb.ro_compat
    );
    println!(
        "blocks {} (free {}), inodes {} (free {})",
        sb.block_count, sb.free_blocks, sb.inode_count, sb.free_inodes
    );
    println!(
        "journal       {:>10} +{}",
        sb.journal_start, sb.journal_blocks
    );
    println!(
        "inode bitmap  {:>10} +{}",
        sb.inode_bitmap_start, sb.inode_bitmap_blocks
    );
    println!(
        "block bitmap  {:>10} +{}",
        sb.block_bitmap_start, sb.block_bitmap_blocks
    );
    println!(
        "inode table   {:>10} +{}",
        sb.inode_table_start, sb.inode_table_blocks
    );
    println!("data          {:>10} +{}", sb.data_start, sb.data_blocks());
    println!("backup sb     {:>10}", sb.backup_block());
    let state = if sb.state == STATE_CLEAN {
        "clean"
    } else {
        "dirty"
    };
    println!(
        "root {} orphan head {} state {state} mounts {}",
        sb.root_ino, sb.orphan_head, sb.mount_count
    );
    println!(
        "mkfs time {} mount time {} write time {}",
        sb.mkfs_time, sb.mount_time, sb.write_time
    );
}

fn dump_inode(fs: &mut Fs<FileDev>, ino: u64) {
    let i = fs
        .read_inode(ino)
        .unwrap_or_else(|e| die(&format!("inode {ino}: {e}")));
    println!(
        "inode {ino}: mode {:o} uid {} gid {} size {} nlink {} flags {:#x} gen {}",
        i.mode, i.uid, i.gid, i.size, i.nlink, i.flags, i.generation
    );
    println!(
        "  atime {}.{:09} mtime {}.{:09} ctime {}.{:09}",
        i.atime.sec, i.atime.nsec, i.mtime.sec, i.mtime.nsec, i.ctime.sec, i.ctime.nsec
    );
    println!(
        "  blocks {} extents {} overflow {} parent {} next_orphan {} rdev {:#x}",
        i.blocks, i.extent_count, i.overflow, i.parent, i.next_orphan, i.rdev
    );
    match fs.extents(ino, &i) {
        Ok((exts, chain)) => {
            for (n, e) in exts.iter().enumerate() {
                println!(
                    "  extent {n}: logical {} -> physical {} len {}",
                    e.logical, e.physical, e.len
                );
            }
            if !chain.is_empty() {
                println!("  overflow extent blocks: {chain:?}");
            }
        }
        Err(e) => println!("  extents: {e}"),
    }
}

fn dump_dir(fs: &mut Fs<FileDev>, ino: u64) {
    let ents = fs
        .read_dir(ino)
        .unwrap_or_else(|e| die(&format!("directory {ino}: {e}")));
    let parent = fs.read_inode(ino).map(|i| i.parent).unwrap_or(0);
    println!("{:>10}  {:>3}  .", ino, DT_DIR);
    println!("{:>10}  {:>3}  ..", parent, DT_DIR);
    for e in ents {
        println!(
            "{:>10}  {:>3}  {}",
            e.ino,
            e.file_type,
            String::from_utf8_lossy(&e.name)
        );
    }
}
