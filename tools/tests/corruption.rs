//! The corruption catalog: each fault is found by fsck (non-zero exit, a
//! message naming it), `-y` repairs it (exit 1) and a second check is
//! clean (exit 0). Plus thousands of random mutations without a panic.

mod common;

use common::*;
use rdaxfs_tools::build::{Builder, Meta};
use rdaxfs_tools::format::*;
use rdaxfs_tools::testutil::{mutate, small_image, Rng};
use rdaxfs_tools::{Fs, SparseDev};

const MIB: u64 = 1 << 20;

struct Inos {
    a: u64,
    b: u64,
    dir: u64,
    sub: u64,
    c: u64,
}

fn catalog_image() -> (SparseDev, Inos) {
    let sb = Superblock::new_geometry(32 * MIB, Some(512)).unwrap();
    let meta = Meta {
        perm: 0o644,
        ..Meta::default()
    };
    let mut bld = Builder::format(SparseDev::new(32 * MIB), sb, meta).unwrap();
    let root = bld.fs.sb.root_ino;
    let data = vec![0x5a; 20_000];
    let a = bld
        .create_file(root, b"a", meta, &mut &data[..], data.len() as u64)
        .unwrap();
    let b = bld.alloc_inode().unwrap();
    let mut bi = rdaxfs_tools::build::new_inode(S_IFREG | 0o644, meta);
    bi.nlink = 1;
    bi.size = 4 * 4096;
    let (p1, _) = bld.alloc_blocks(2, 0, false).unwrap();
    let (p2, _) = bld.alloc_blocks(2, p1 + 10, false).unwrap();
    let exts = [
        Extent {
            logical: 0,
            physical: p1,
            len: 2,
        },
        Extent {
            logical: 2,
            physical: p2,
            len: 2,
        },
    ];
    bld.set_extents(b, &mut bi, &exts).unwrap();
    bld.add_entry(root, b"b", b, DT_REG).unwrap();
    let dir = bld.mkdir(root, b"dir", meta).unwrap();
    let sub = bld.mkdir(dir, b"sub", meta).unwrap();
    let c = bld
        .create_file(sub, b"c", meta, &mut &b"cc"[..], 2)
        .unwrap();
    let dev = bld.finish().unwrap().dev;
    (dev, Inos { a, b, dir, sub, c })
}

fn inode_edit(dev: SparseDev, ino: u64, f: impl FnOnce(&mut Inode)) -> SparseDev {
    edit(dev, |fs| {
        let mut i = fs.read_inode(ino).unwrap();
        f(&mut i);
        fs.write_inode(ino, &i).unwrap();
    })
    .0
}

fn bitmap_edit(
    dev: SparseDev,
    inode_bitmap: bool,
    f: impl FnOnce(&mut Vec<u8>, &Superblock),
) -> SparseDev {
    edit(dev, |fs| {
        let sb = fs.sb;
        let (start, mut bm) = if inode_bitmap {
            (sb.inode_bitmap_start, fs.read_inode_bitmap().unwrap())
        } else {
            (sb.block_bitmap_start, fs.read_block_bitmap().unwrap())
        };
        f(&mut bm, &sb);
        fs.write_area(start, &bm).unwrap();
    })
    .0
}

fn xor_byte(dev: &mut SparseDev, off: u64) {
    let mut b = [0u8; 1];
    rdaxfs_tools::Dev::read_at(dev, off, &mut b).unwrap();
    b[0] ^= 0x40;
    rdaxfs_tools::Dev::write_at(dev, off, &b).unwrap();
}

/// Detected with `want` in a message, repaired with exit 1, then clean.
fn expect_repaired(name: &str, mut dev: SparseDev, want: &str) {
    let before = dev.clone();
    let r = fsck_n(&mut dev);
    let msgs = messages(&r);
    assert_eq!(r.exit_code(), 4, "{name}: -n exit code; {msgs}");
    assert!(msgs.contains(want), "{name}: no '{want}' in:\n{msgs}");
    assert!(dev.blocks == before.blocks, "{name}: -n wrote to the image");
    let r = fsck_y(&mut dev);
    assert_eq!(r.exit_code(), 1, "{name}: -y exit code; {}", messages(&r));
    let r = fsck_n(&mut dev);
    assert_eq!(r.exit_code(), 0, "{name}: after -y: {}", messages(&r));
    // The image still opens and the root lists.
    let mut fs = Fs::open(dev).unwrap();
    fs.read_dir(fs.sb.root_ino).unwrap();
}

#[test]
fn fresh_catalog_image_is_clean() {
    let (mut dev, _) = catalog_image();
    let r = fsck_n(&mut dev);
    assert!(r.is_clean(), "{}", messages(&r));
    assert_eq!(r.dirs, 3);
}

#[test]
fn double_owned_block() {
    let (dev, i) = catalog_image();
    let (dev, pa) = edit(dev, |fs| fs.read_inode(i.a).unwrap().extents[0].physical);
    let dev = inode_edit(dev, i.b, |b| b.extents[0].physical = pa);
    expect_repaired("double-owned", dev, "owned twice");
}

#[test]
fn bitmap_leaked_block() {
    let (dev, _) = catalog_image();
    let dev = bitmap_edit(dev, false, |bm, sb| {
        bit_set(bm, sb.data_end() - 10).unwrap();
    });
    let mut d2 = dev.clone();
    assert!(fsck_n(&mut d2).crash_consistent());
    expect_repaired("leaked block", dev, "leaked");
}

#[test]
fn bitmap_missing_block() {
    let (dev, i) = catalog_image();
    let (dev, pa) = edit(dev, |fs| fs.read_inode(i.a).unwrap().extents[0].physical);
    let dev = bitmap_edit(dev, false, |bm, _| {
        bit_clear(bm, pa + 1).unwrap();
    });
    expect_repaired(
        "missing block",
        dev,
        &format!("block {} in use by inode {}", pa + 1, i.a),
    );
}

#[test]
fn leaked_inode() {
    let (dev, _) = catalog_image();
    let dev = bitmap_edit(dev, true, |bm, _| {
        bit_set(bm, 100).unwrap();
    });
    expect_repaired("leaked inode", dev, "inode 101 allocated but unreachable");
}

#[test]
fn bad_superblock_checksum() {
    let (mut dev, _) = catalog_image();
    xor_byte(&mut dev, 100);
    expect_repaired("bad sb", dev, "primary superblock: checksum mismatch");
}

#[test]
fn bad_backup_superblock() {
    let (mut dev, _) = catalog_image();
    xor_byte(&mut dev, 32 * MIB - 4096 + 80);
    expect_repaired("bad backup sb", dev, "backup superblock");
}

#[test]
fn bad_inode_checksum() {
    let (mut dev, i) = catalog_image();
    let sb = Fs::open(&mut dev).unwrap().sb;
    let (blk, off) = inode_location(&sb, i.c).unwrap();
    xor_byte(&mut dev, blk * 4096 + off as u64 + 20);
    expect_repaired(
        "bad inode crc",
        dev,
        &format!(
            "inode {} (entry 'c' in directory {}): checksum mismatch",
            i.c, i.sub
        ),
    );
}

#[test]
fn out_of_range_extent() {
    let (dev, i) = catalog_image();
    let dev = inode_edit(dev, i.a, |a| a.extents[0].physical = 32 * MIB / 4096 + 100);
    expect_repaired("out-of-range extent", dev, "outside data area");
}

#[test]
fn extent_in_metadata_area() {
    let (dev, i) = catalog_image();
    let dev = inode_edit(dev, i.a, |a| a.extents[0].physical = 3);
    expect_repaired("extent over metadata", dev, "outside data area");
}

#[test]
fn overlapping_extents() {
    let (dev, i) = catalog_image();
    let dev = inode_edit(dev, i.b, |b| b.extents[1].logical = 1);
    expect_repaired("overlapping extents", dev, "overlaps the previous extent");
}

#[test]
fn dangling_directory_entry() {
    let (dev, i) = catalog_image();
    let dev = bitmap_edit(dev, true, |bm, _| {
        bit_clear(bm, i.c - 1).unwrap();
    });
    expect_repaired(
        "dangling entry",
        dev,
        &format!("dangling entry 'c' in directory {}", i.sub),
    );
}

#[test]
fn wrong_link_count() {
    let (dev, i) = catalog_image();
    let dev = inode_edit(dev, i.a, |a| a.nlink = 5);
    expect_repaired(
        "nlink high",
        dev,
        &format!("inode {}: link count 5 but 1 references", i.a),
    );
    let (dev, i) = catalog_image();
    let dev = inode_edit(dev, i.dir, |d| d.nlink = 2);
    expect_repaired(
        "dir nlink low",
        dev,
        &format!("inode {}: link count 2 but 3 references", i.dir),
    );
}

#[test]
fn wrong_parent() {
    let (dev, i) = catalog_image();
    let dev = inode_edit(dev, i.sub, |d| d.parent = 1);
    expect_repaired(
        "parent",
        dev,
        &format!(
            "directory {}: parent field 1 but linked from {}",
            i.sub, i.dir
        ),
    );
}

#[test]
fn directory_cycle() {
    let (dev, i) = catalog_image();
    let (dev, ()) = edit(dev, |fs| {
        let inode = fs.read_inode(i.sub).unwrap();
        let blk = fs.dir_blocks(i.sub, &inode).unwrap()[0];
        let mut b = fs.read_block(blk).unwrap();
        dir_insert(&mut b[..], i.dir, b"loop", DT_DIR).unwrap();
        fs.write_block(blk, &b[..]).unwrap();
    });
    expect_repaired(
        "cycle",
        dev,
        &format!("directory {} already linked (directory cycle", i.dir),
    );
}

#[test]
fn bad_directory_block() {
    let (dev, i) = catalog_image();
    let (mut dev, blk) = edit(dev, |fs| {
        let inode = fs.read_inode(i.sub).unwrap();
        fs.dir_blocks(i.sub, &inode).unwrap()[0]
    });
    xor_byte(&mut dev, blk * 4096 + 300);
    expect_repaired(
        "dir block crc",
        dev,
        &format!(
            "directory {} block 0 (block {blk}): checksum mismatch",
            i.sub
        ),
    );
}

#[test]
fn bad_file_type_and_name() {
    let (dev, i) = catalog_image();
    let (dev, ()) = edit(dev, |fs| {
        let inode = fs.read_inode(1).unwrap();
        let blk = fs.dir_blocks(1, &inode).unwrap()[0];
        let mut b = fs.read_block(blk).unwrap();
        let slot = dir_find(&b[..], b"a").unwrap();
        dir_set_ino(&mut b[..], slot, i.a, DT_DIR).unwrap();
        let slot = dir_find(&b[..], b"b").unwrap();
        let off = DIR_HEADER_SIZE + slot * DIR_SLOT_SIZE + 16;
        b[off] = b'/';
        dir_seal(&mut b[..]).unwrap();
        fs.write_block(blk, &b[..]).unwrap();
    });
    expect_repaired("bad dirent", dev, "file type 4 but inode");
}

#[test]
fn orphan_reclaim() {
    let (dev, i) = catalog_image();
    let (dev, ()) = edit(dev, |fs| {
        let inode = fs.read_inode(1).unwrap();
        let blk = fs.dir_blocks(1, &inode).unwrap()[0];
        let mut b = fs.read_block(blk).unwrap();
        let slot = dir_find(&b[..], b"a").unwrap();
        dir_remove(&mut b[..], slot).unwrap();
        fs.write_block(blk, &b[..]).unwrap();
        let mut a = fs.read_inode(i.a).unwrap();
        a.nlink = 0;
        fs.write_inode(i.a, &a).unwrap();
        fs.sb.orphan_head = i.a;
        fs.sb.state = STATE_DIRTY;
        fs.write_superblocks().unwrap();
    });
    // Orphans are recovered as mount recovers them: freed, with a note;
    // -n does that in memory only.
    let mut dev = dev;
    let before = dev.clone();
    let r = fsck_n(&mut dev);
    assert!(r.is_clean(), "{}", messages(&r));
    assert!(
        r.notes.iter().any(|n| n.contains("orphans: freed 1")),
        "{:?}",
        r.notes
    );
    assert!(dev.blocks == before.blocks, "-n wrote to the image");
    let r = fsck_y(&mut dev);
    assert_eq!(r.exit_code(), 0, "{}", messages(&r));
    let mut fs = Fs::open(&mut dev).unwrap();
    assert_eq!(fs.sb.orphan_head, 0);
    let ibm = fs.read_inode_bitmap().unwrap();
    assert!(!bit_test(&ibm, i.a - 1), "orphan inode still allocated");
}

#[test]
fn truncated_image_is_reported_and_not_repairable() {
    let (mut dev, _) = catalog_image();
    dev.size -= 4 * MIB;
    dev.blocks.retain(|&b, _| b < dev.size / 4096);
    let r = fsck_n(&mut dev);
    assert_eq!(r.exit_code(), 4);
    assert!(messages(&r).contains("image truncated"), "{}", messages(&r));
    let r = fsck_y(&mut dev);
    assert_eq!(r.exit_code(), 4);
}

#[test]
fn random_mutations_never_panic_and_repair_converges() {
    let base = small_image(7);
    let r = fsck_n(&mut base.clone());
    assert!(r.is_clean(), "{}", messages(&r));
    let mut rng = Rng::new(99);
    let mut detected = 0;
    let mut repaired_clean = 0;
    let rounds = 2500;
    for round in 0..rounds {
        let mut dev = base.clone();
        let mut data = vec![0u8; 5 * (1 + rng.below(8) as usize)];
        rng.fill(&mut data);
        mutate(&mut dev, &data);
        let first = fsck_n(&mut dev);
        if !first.is_clean() {
            detected += 1;
        }
        let _ = fsck_y(&mut dev);
        let after = fsck_n(&mut dev);
        // -y converges: afterwards the image is clean, or it was beyond
        // repair (no usable superblock or root).
        assert!(
            after.fatal || after.is_clean(),
            "round {round}: after -y: {}",
            messages(&after)
        );
        if !after.fatal {
            repaired_clean += 1;
        }
    }
    // Mutations land in any written block, file data included (not
    // checksummed) and unused inode slots; a good share must still show.
    assert!(
        detected > rounds / 5,
        "only {detected} of {rounds} mutations detected"
    );
    assert!(repaired_clean > rounds * 9 / 10, "{repaired_clean}");
}

#[test]
fn random_bytes_in_metadata_blocks_never_panic() {
    let base = small_image(3);
    let mut rng = Rng::new(5);
    let keys: Vec<u64> = base.blocks.keys().copied().collect();
    for _ in 0..600 {
        let mut dev = base.clone();
        let k = keys[rng.below(keys.len() as u64) as usize];
        let b = dev.blocks.get_mut(&k).unwrap();
        let start = rng.below(4096) as usize;
        let len = (1 + rng.below(512) as usize).min(4096 - start);
        rng.fill(&mut b[start..start + len]);
        let _ = fsck_n(&mut dev);
        let _ = fsck_y(&mut dev);
        let _ = fsck_n(&mut dev);
    }
}

#[test]
fn bad_overflow_extent_block() {
    let (mut dev, (ino, ovf)) = edit(small_image(1), |fs| {
        let ino = fs.resolve("/fragmented").unwrap();
        (ino, fs.read_inode(ino).unwrap().overflow)
    });
    assert_ne!(ovf, 0);
    xor_byte(&mut dev, ovf * 4096 + 100);
    expect_repaired(
        "overflow block",
        dev,
        &format!("inode {ino}: extent block {ovf}: checksum mismatch"),
    );
}

#[test]
fn wrong_block_count() {
    let (dev, i) = catalog_image();
    let dev = inode_edit(dev, i.a, |a| a.blocks += 3);
    expect_repaired(
        "blocks",
        dev,
        &format!("inode {}: block count 8 but 5 blocks owned", i.a),
    );
}
