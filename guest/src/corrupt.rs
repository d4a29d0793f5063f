//! corrupt-mount: the kernel's own parsing against corrupted images.
//!
//! A populated 16 MiB image (random tree, a multi-block directory, a file
//! with an overflow extent chain, a symlink, a two-inode orphan chain) is
//! built in memory with the tools crate. Each round copies it, applies one
//! or two seeded mutations to one metadata structure (superblock, inode
//! bitmap, block bitmap, an inode record, a directory block, an overflow
//! extent block, an orphan inode or the orphan head), writes it to
//! /dev/pmem0 and mounts it. An image that mounts is walked (readdir
//! everything, stat, read every file and link, then create, mkdir, write,
//! truncate, rename and unlink a few) and unmounted. Every round must leave
//! no Oops/BUG/WARNING/panic in the kernel log, every refused mount must
//! have logged why, and so must every walk that met an error.
//!
//! Mutations: raw byte flips (the checksums must catch them), field sets to
//! boundary values with the checksum recomputed (the validation behind the
//! checksum must catch them), random bytes with the checksum recomputed,
//! and bitmap bit flips (bitmaps carry no checksum).
//!
//! Environment: `RDAXFS_CORRUPT_N` images (default 150, the fast subset of
//! `make check`; `make corrupt-mount N=2000` runs more),
//! `RDAXFS_CORRUPT_SEED` (default 1; each image's seed is printed in the
//! kernel log before it is mounted, so a hang names its image),
//! `RDAXFS_CORRUPT_MAX` (mutations per image: default 2, i.e. one, or two
//! in a quarter of the images; above 2, 1 to that many).

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rdaxfs_format::{bit_clear, Extent, Superblock, DT_DIR, MIN_DEVICE_BYTES, S_IFLNK, S_IFREG};
use rdaxfs_tools::build::{new_inode, Builder, Meta};
use rdaxfs_tools::dev::SparseDev;
use rdaxfs_tools::fs::Fs;
use rdaxfs_tools::testutil::{random_tree, Rng as TreeRng};

use crate::ensure;
use crate::util::*;

const BS: usize = 4096;
const INODE: usize = 256;

/// Where the metadata of the base image lives.
struct Layout {
    sb: Superblock,
    /// Inode numbers in use (reachable from the root), without orphans.
    inodes: Vec<u64>,
    /// The orphan chain, head first.
    orphans: Vec<u64>,
    dir_blocks: Vec<u64>,
    overflow_blocks: Vec<u64>,
}

/// The structure one mutation hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Super,
    InodeBitmap,
    BlockBitmap,
    Inode,
    Dir,
    Overflow,
    Orphan,
}

const TARGETS: [Target; 7] = [
    Target::Super,
    Target::InodeBitmap,
    Target::BlockBitmap,
    Target::Inode,
    Target::Dir,
    Target::Overflow,
    Target::Orphan,
];

pub fn corrupt_mount() -> TestResult {
    let n = env_u64("RDAXFS_CORRUPT_N", 150);
    let seed = env_u64("RDAXFS_CORRUPT_SEED", 1);
    let max_mut = env_u64("RDAXFS_CORRUPT_MAX", 2);
    let _fx = Fixture::new()?;
    umount_all(MNT);
    let (base, lay) = base_image(seed)?;
    check_seals(&base, &lay)?;
    let dev = ctx(open_raw(PMEM, libc::O_RDWR | libc::O_DIRECT, 0), PMEM)?;
    // The metadata area starts zeroed, so free inode slots and unused
    // bitmap padding read the same in every round.
    let zero = Aligned::new(lay.sb.data_start as usize * BS);
    let mut zero = zero;
    ctx(dev.write_all_at(zero.buf(), 0), "zero the metadata area")?;

    // The unmutated image must mount and walk cleanly: the baseline.
    write_image(&dev, &base)?;
    let mark = dmesg_mark("corrupt-mount baseline");
    ctx(mount(PMEM, MNT, "rdaxfs", ""), "mount the unmutated image")?;
    let w = walk(Path::new(MNT));
    ctx(umount(MNT), "umount the unmutated image")?;
    ensure!(
        w.errors == 0,
        "the unmutated image walks with {} errors: {:?}",
        w.errors,
        w.first_error
    );
    let p = kernel_problems(&mark);
    ensure!(p.is_empty(), "baseline: kernel problems:\n{}", p.join("\n"));
    println!(
        "corrupt-mount: base image: {} inodes, {} orphans, {} dir blocks, {} overflow blocks; baseline walk {} entries",
        lay.inodes.len(),
        lay.orphans.len(),
        lay.dir_blocks.len(),
        lay.overflow_blocks.len(),
        w.entries
    );

    let started = std::time::Instant::now();
    let mut mounted = 0u64;
    let mut refused: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_target: BTreeMap<Target, (u64, u64)> = BTreeMap::new();
    let mut silent = Vec::new();
    let mut walk_errors = 0u64;
    let mut quiet_walks = Vec::new();
    for i in 0..n {
        let iseed = seed.wrapping_mul(1_000_003).wrapping_add(i);
        let mut rng = Rng::new(iseed);
        let mut img = base.clone();
        let (target, mut desc) = mutate(&mut img, &lay, &mut rng);
        let more = if max_mut > 2 {
            rng.below(max_mut)
        } else {
            u64::from(rng.below(4) == 0)
        };
        for _ in 0..more {
            let (_, d2) = mutate(&mut img, &lay, &mut rng);
            desc = format!("{desc} + {d2}");
        }
        write_image(&dev, &img)?;
        let what = format!("corrupt-mount image {i} seed {iseed}: {desc}");
        let mark = dmesg_mark(&what);
        let slot = per_target.entry(target).or_default();
        match mount(PMEM, MNT, "rdaxfs", "") {
            Ok(()) => {
                mounted += 1;
                slot.0 += 1;
                let w = walk(Path::new(MNT));
                walk_errors += w.errors;
                if let Err(e) = umount(MNT) {
                    umount_all(MNT);
                    return Err(format!("{what}: umount failed: {e}"));
                }
                // A walk that hit errors must find the reason in the log
                // (beyond the mount/unmount/orphan lines).
                if w.errors > 0 {
                    let said = dmesg_since(&mark).iter().any(|l| {
                        l.contains("rdaxfs")
                            && !l.contains(": mounted (")
                            && !l.contains(": unmounted;")
                            && !l.contains(": journal time:")
                            && !l.contains(": mount: log replay")
                            && !l.contains("reclaiming orphan")
                    });
                    if !said {
                        quiet_walks.push(format!(
                            "{what}: {}",
                            w.first_error.clone().unwrap_or_default()
                        ));
                    }
                }
            }
            Err(e) => {
                slot.1 += 1;
                *refused
                    .entry(errno_name(e.raw_os_error().unwrap_or(0)))
                    .or_default() += 1;
                ensure!(
                    mount_entry(MNT).is_none(),
                    "{what}: {MNT} is mounted after a failed mount"
                );
                let lines = dmesg_since(&mark);
                if !lines.iter().any(|l| l.contains("rdaxfs")) {
                    silent.push(format!(
                        "{what} ({})",
                        errno_name(e.raw_os_error().unwrap_or(0))
                    ));
                }
            }
        }
        let p = kernel_problems(&mark);
        ensure!(
            p.is_empty(),
            "{what}: kernel problems:\n{}\n--- log ---\n{}",
            p.join("\n"),
            dmesg_since(&mark).join("\n")
        );
    }
    let secs = started.elapsed().as_secs_f64();
    let nref: u64 = refused.values().sum();
    println!(
        "corrupt-mount: {n} images in {secs:.1}s: {mounted} mounted and walked ({walk_errors} errors seen by the walks), {nref} refused {refused:?}; 0 kernel problems"
    );
    for (t, (m, r)) in &per_target {
        println!("corrupt-mount:   {t:?}: {m} mounted, {r} refused");
    }
    println!(
        "corrupt-mount: {} mounted images gave errors to the walk with no kernel message{}",
        quiet_walks.len(),
        if quiet_walks.is_empty() {
            ""
        } else {
            ", e.g.:"
        }
    );
    for q in quiet_walks.iter().take(10) {
        println!("corrupt-mount:   {q}");
    }
    ensure!(
        quiet_walks.is_empty(),
        "{} mounted images gave the walk errors with no kernel message",
        quiet_walks.len()
    );
    ensure!(
        silent.is_empty(),
        "{} refused mounts left no kernel message:\n{}",
        silent.len(),
        silent.join("\n")
    );
    // Leave the device with a fresh filesystem for the tests after this one.
    drop(dev);
    mkfs(PMEM, &[])
}

/// The populated image every round starts from.
fn base_image(seed: u64) -> Result<(SparseDev, Layout), String> {
    let e = |e: rdaxfs_tools::Error| format!("build base image: {e}");
    let sb = Superblock::new_geometry(MIN_DEVICE_BYTES, Some(256)).map_err(|e| format!("{e:?}"))?;
    let mut b = Builder::format(
        SparseDev::new(MIN_DEVICE_BYTES),
        sb,
        Meta {
            perm: 0o755,
            ..Meta::default()
        },
    )
    .map_err(e)?;
    let mut trng = TreeRng::new(seed);
    random_tree(&mut b, &mut trng, 40, 12_000).map_err(e)?;
    let root = b.fs.sb.root_ino;
    let meta = Meta {
        perm: 0o644,
        ..Meta::default()
    };
    // A directory of two blocks.
    let big = b.mkdir(root, b"bigdir", meta).map_err(e)?;
    for i in 0..20 {
        let data = vec![i as u8; 100 + i * 50];
        b.create_file(
            big,
            format!("f{i}").as_bytes(),
            meta,
            &mut &data[..],
            data.len() as u64,
        )
        .map_err(e)?;
    }
    b.symlink(root, b"link", b"bigdir/f1", meta).map_err(e)?;
    // A fragmented file: 20 one-block extents, 14 of them in an overflow
    // extent block.
    let ino = b.alloc_inode().map_err(e)?;
    let mut inode = new_inode(S_IFREG | 0o600, Meta::default());
    inode.nlink = 1;
    let mut gaps = Vec::new();
    let mut exts = Vec::new();
    for i in 0..20u64 {
        let (p, _) = b.alloc_blocks(1, 0, false).map_err(e)?;
        gaps.push(b.alloc_blocks(1, 0, false).map_err(e)?.0);
        exts.push(Extent {
            logical: i * 2,
            physical: p,
            len: 1,
        });
    }
    for g in gaps {
        bit_clear(&mut b.bbm, g).map_err(|e| format!("{e:?}"))?;
    }
    inode.size = 40 * BS as u64;
    b.set_extents(ino, &mut inode, &exts).map_err(e)?;
    b.add_entry(root, b"fragmented", ino, rdaxfs_format::DT_REG)
        .map_err(e)?;
    // Two unlinked-but-open files left by a crash: the orphan chain.
    let mut orphans = Vec::new();
    let mut next = 0;
    for _ in 0..2 {
        let o = b.alloc_inode().map_err(e)?;
        let mut oi = new_inode(S_IFREG | 0o600, Meta::default());
        oi.nlink = 0;
        oi.size = 2 * BS as u64;
        oi.next_orphan = next;
        let (p, n) = b.alloc_blocks(2, 0, false).map_err(e)?;
        b.set_extents(
            o,
            &mut oi,
            &[Extent {
                logical: 0,
                physical: p,
                len: n as u32,
            }],
        )
        .map_err(e)?;
        orphans.insert(0, o);
        next = o;
    }
    let mut fs = b.finish().map_err(e)?;
    fs.sb.orphan_head = next;
    fs.write_superblocks().map_err(e)?;

    // Find every reachable inode and its metadata blocks.
    let mut lay = Layout {
        sb: fs.sb,
        inodes: Vec::new(),
        orphans,
        dir_blocks: Vec::new(),
        overflow_blocks: Vec::new(),
    };
    collect(&mut fs, root, &mut lay).map_err(e)?;
    Ok((fs.dev, lay))
}

fn collect(fs: &mut Fs<SparseDev>, ino: u64, lay: &mut Layout) -> rdaxfs_tools::Result<()> {
    lay.inodes.push(ino);
    let inode = fs.read_inode(ino)?;
    let (_, overflow) = fs.extents(ino, &inode)?;
    lay.overflow_blocks.extend(overflow);
    if inode.is_dir() {
        lay.dir_blocks.extend(fs.dir_blocks(ino, &inode)?);
        for d in fs.read_dir(ino)? {
            if d.file_type == DT_DIR {
                collect(fs, d.ino, lay)?;
            } else if !lay.inodes.contains(&d.ino) {
                lay.inodes.push(d.ino);
                let i = fs.read_inode(d.ino)?;
                lay.overflow_blocks.extend(fs.extents(d.ino, &i)?.1);
            }
        }
    }
    Ok(())
}

/// Block and offset of inode `ino`'s record.
fn inode_at(sb: &Superblock, ino: u64) -> (u64, usize) {
    (
        sb.inode_table_start + (ino - 1) / 16,
        ((ino - 1) % 16) as usize * INODE,
    )
}

fn block(img: &mut SparseDev, n: u64) -> &mut [u8; BS] {
    img.blocks.entry(n).or_insert_with(|| Box::new([0u8; BS]))
}

fn seal_super(b: &mut [u8]) {
    let c = crc32c(&b[..508]);
    b[508..512].copy_from_slice(&c.to_le_bytes());
}

fn seal_inode(rec: &mut [u8], ino: u64) {
    let mut v = ino.to_le_bytes().to_vec();
    v.extend_from_slice(&rec[..252]);
    let c = crc32c(&v);
    rec[252..256].copy_from_slice(&c.to_le_bytes());
}

/// Directory blocks (`crc_off` 12) and overflow extent blocks (28): the
/// checksum covers the block without its own four bytes.
fn seal_block(b: &mut [u8], crc_off: usize) {
    let mut v = b[..crc_off].to_vec();
    v.extend_from_slice(&b[crc_off + 4..]);
    let c = crc32c(&v);
    b[crc_off..crc_off + 4].copy_from_slice(&c.to_le_bytes());
}

/// The seal functions must reproduce the base image's checksums, or the
/// "recomputed checksum" mutations would test nothing.
fn check_seals(base: &SparseDev, lay: &Layout) -> TestResult {
    let mut img = base.clone();
    let b = block(&mut img, 0);
    let before = b.to_vec();
    seal_super(&mut b[..]);
    ensure!(
        b[..] == before[..],
        "superblock re-seal changes the checksum"
    );
    for &ino in lay.inodes.iter().chain(&lay.orphans) {
        let (blk, off) = inode_at(&lay.sb, ino);
        let b = block(&mut img, blk);
        let before = b[off..off + INODE].to_vec();
        seal_inode(&mut b[off..off + INODE], ino);
        ensure!(
            b[off..off + INODE] == before[..],
            "inode {ino} re-seal differs"
        );
    }
    for (&blk, off) in lay
        .dir_blocks
        .iter()
        .map(|b| (b, 12))
        .chain(lay.overflow_blocks.iter().map(|b| (b, 28)))
    {
        let b = block(&mut img, blk);
        let before = b.to_vec();
        seal_block(&mut b[..], off);
        ensure!(b[..] == before[..], "block {blk} re-seal differs");
    }
    Ok(())
}

/// A boundary value for a field of `width` bytes in an image with this
/// geometry.
fn interesting(rng: &mut Rng, sb: &Superblock, width: usize) -> u64 {
    let v = match rng.below(16) {
        0 => 0,
        1 => 1,
        2 => 2,
        3 => u64::MAX,
        4 => u64::MAX / 2 + 1,
        5 => sb.block_count,
        6 => sb.block_count - 1,
        7 => sb.data_start - 1,
        8 => sb.data_start,
        9 => sb.inode_count,
        10 => sb.inode_count + 1,
        11 => 1 << 50,
        12 => 6 + rng.below(3),
        13 => 168 + rng.below(3),
        14 => rng.below(4096),
        _ => rng.next_u64(),
    };
    if width == 8 {
        v
    } else {
        v & ((1u64 << (8 * width)) - 1)
    }
}

fn put(buf: &mut [u8], off: usize, width: usize, v: u64) {
    buf[off..off + width].copy_from_slice(&v.to_le_bytes()[..width]);
}

/// Field (offset, width) lists of each structure, from docs/format.md.
const SB_FIELDS: &[(usize, usize)] = &[
    (0, 4),
    (4, 4),
    (8, 4),
    (12, 4),
    (16, 4),
    (20, 4),
    (72, 8),
    (80, 8),
    (88, 8),
    (96, 8),
    (104, 8),
    (112, 8),
    (120, 8),
    (128, 8),
    (136, 8),
    (144, 8),
    (152, 8),
    (160, 8),
    (168, 8),
    (176, 8),
    (184, 8),
    (192, 4),
    (196, 4),
];

const INODE_FIELDS: &[(usize, usize)] = &[
    (0, 4),
    (4, 4),
    (12, 4),
    (16, 8),
    (24, 4),
    (32, 8),
    (56, 4),
    (68, 4),
    (72, 8),
    (80, 8),
    (88, 8),
    (96, 8),
    (248, 4),
];

/// A field of a random one of the first `count` extents at `base` (inline
/// extents of an inode, or the extents of an overflow block).
fn extent_field(rng: &mut Rng, base: usize, count: u64) -> (usize, usize) {
    let off = base + rng.below(count) as usize * 24;
    match rng.below(4) {
        0 => (off, 8),
        1 => (off + 8, 8),
        2 => (off + 16, 4),
        _ => (off + 20, 4),
    }
}

/// Applies one mutation to `img`; returns what it hit and a description.
fn mutate(img: &mut SparseDev, lay: &Layout, rng: &mut Rng) -> (Target, String) {
    let sb = &lay.sb;
    let target = TARGETS[rng.below(TARGETS.len() as u64) as usize];
    let mode = rng.below(3); // 0 raw flips, 1 field + seal, 2 random bytes + seal
    let pick = |rng: &mut Rng, v: &[u64]| v[rng.below(v.len() as u64) as usize];
    match target {
        Target::Super => {
            let b = &mut block(img, 0)[..];
            let d = match mode {
                0 => flip(rng, &mut b[..512]),
                1 => {
                    let (off, w) = SB_FIELDS[rng.below(SB_FIELDS.len() as u64) as usize];
                    let v = interesting(rng, sb, w);
                    put(b, off, w, v);
                    format!("field @{off} = {v:#x}")
                }
                _ => flip(rng, &mut b[..508]),
            };
            if mode != 0 {
                seal_super(b);
            }
            (target, format!("superblock {d}"))
        }
        Target::InodeBitmap | Target::BlockBitmap => {
            let (start, bits) = if target == Target::InodeBitmap {
                (sb.inode_bitmap_start, sb.inode_count)
            } else {
                (sb.block_bitmap_start, sb.block_count)
            };
            let b = &mut block(img, start)[..];
            let d = match mode {
                0 => {
                    // Clear a set bit (an in-use inode or block looks free).
                    let set: Vec<u64> = (0..bits)
                        .filter(|&i| b[i as usize / 8] & (1 << (i % 8)) != 0)
                        .collect();
                    let i = pick(rng, &set);
                    b[i as usize / 8] &= !(1 << (i % 8));
                    format!("bit {i} cleared")
                }
                1 => {
                    let i = rng.below(bits);
                    b[i as usize / 8] |= 1 << (i % 8);
                    format!("bit {i} set")
                }
                _ => flip(rng, &mut b[..(bits as usize).div_ceil(8)]),
            };
            (target, format!("{target:?} {d}"))
        }
        Target::Inode | Target::Orphan => {
            if target == Target::Orphan && rng.below(3) == 0 {
                // The head pointer rather than the records.
                let b = &mut block(img, 0)[..];
                let v = match rng.below(4) {
                    0 => pick(rng, &lay.inodes),
                    1 => sb.root_ino,
                    2 => sb.inode_count + rng.below(3),
                    _ => 1 + rng.below(sb.inode_count),
                };
                put(b, 184, 8, v);
                seal_super(b);
                return (target, format!("orphan head = {v}"));
            }
            let ino = if target == Target::Orphan {
                pick(rng, &lay.orphans)
            } else {
                pick(rng, &lay.inodes)
            };
            let (blk, off) = inode_at(sb, ino);
            let rec = &mut block(img, blk)[off..off + INODE];
            let d = match mode {
                0 => flip(rng, rec),
                1 => {
                    let (f, w) = if rng.below(3) == 0 {
                        extent_field(rng, 104, 6)
                    } else if target == Target::Orphan && rng.below(2) == 0 {
                        (80, 8) // next_orphan
                    } else {
                        INODE_FIELDS[rng.below(INODE_FIELDS.len() as u64) as usize]
                    };
                    let v = match (f, rng.below(3)) {
                        (80, 0) => pick(rng, &lay.orphans),
                        (80, 1) => pick(rng, &lay.inodes),
                        (0, 0) => u64::from(
                            [
                                S_IFLNK, S_IFREG, 0o040_000, 0o020_000, 0o010_000, 0o170_000, 0,
                            ][rng.below(7) as usize]
                                | 0o644,
                        ),
                        _ => interesting(rng, sb, w),
                    };
                    put(rec, f, w, v);
                    format!("field @{f} = {v:#x}")
                }
                _ => flip(rng, &mut rec[..252]),
            };
            if mode != 0 {
                seal_inode(rec, ino);
            }
            (target, format!("{target:?} inode {ino} {d}"))
        }
        Target::Dir | Target::Overflow => {
            let (list, crc_off) = if target == Target::Dir {
                (&lay.dir_blocks, 12)
            } else {
                (&lay.overflow_blocks, 28)
            };
            let blk = pick(rng, list);
            let b = &mut block(img, blk)[..];
            let d = match mode {
                0 => flip(rng, b),
                1 if target == Target::Dir => {
                    let (f, w) = if rng.below(4) == 0 {
                        [(0, 4), (4, 2), (6, 2), (8, 4)][rng.below(4) as usize]
                    } else {
                        let s = 16 + rng.below(15) as usize * 272;
                        [
                            (s, 8),
                            (s + 8, 4),
                            (s + 12, 1),
                            (s + 13, 1),
                            (s + 14, 2),
                            (s + 16, 1),
                        ][rng.below(6) as usize]
                    };
                    let v = if w == 8 && rng.below(2) == 0 {
                        pick(rng, &lay.inodes)
                    } else if f >= 16 && (f - 16) % 272 == 16 {
                        [0u64, b'/' as u64, b'.' as u64, 0xff][rng.below(4) as usize]
                    } else {
                        interesting(rng, sb, w)
                    };
                    put(b, f, w, v);
                    format!("field @{f} = {v:#x}")
                }
                1 => {
                    let (f, w) = if rng.below(2) == 0 {
                        [(0, 4), (4, 4), (8, 8), (16, 8), (24, 4)][rng.below(5) as usize]
                    } else {
                        extent_field(rng, 32, 16)
                    };
                    let v = if f == 8 && rng.below(2) == 0 {
                        pick(rng, list)
                    } else {
                        interesting(rng, sb, w)
                    };
                    put(b, f, w, v);
                    format!("field @{f} = {v:#x}")
                }
                _ => flip(rng, b),
            };
            if mode != 0 {
                seal_block(b, crc_off);
            }
            (target, format!("{target:?} block {blk} {d}"))
        }
    }
}

/// Flips or overwrites 1..4 random bytes of `b`.
fn flip(rng: &mut Rng, b: &mut [u8]) -> String {
    let n = 1 + rng.below(4);
    let mut offs = Vec::new();
    for _ in 0..n {
        let off = rng.below(b.len() as u64) as usize;
        let v = rng.next_u64() as u8;
        if rng.below(2) == 0 {
            b[off] ^= v | 1;
        } else {
            b[off] = v;
        }
        offs.push(off);
    }
    format!("bytes {offs:?}")
}

/// Writes every block of `img` to the device (O_DIRECT) and syncs.
fn write_image(dev: &fs::File, img: &SparseDev) -> TestResult {
    let mut a = Aligned::new(BS);
    for (&n, data) in &img.blocks {
        a.buf().copy_from_slice(&data[..]);
        ctx(
            dev.write_all_at(a.buf(), n * BS as u64),
            format!("write block {n} of {PMEM}"),
        )?;
    }
    ctx(dev.sync_all(), format!("fsync {PMEM}"))
}

#[derive(Default)]
struct Walk {
    entries: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Walk {
    fn err(&mut self, what: impl std::fmt::Display, e: std::io::Error) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{what}: {e}"));
        }
    }
}

/// Reads everything under `root` (bounded: corrupt directories may loop or
/// claim huge files), then changes a few things.
fn walk(root: &Path) -> Walk {
    let mut w = Walk::default();
    let mut files: Vec<PathBuf> = Vec::new();
    let mut dirs: Vec<(PathBuf, u32)> = vec![(root.to_path_buf(), 0)];
    let mut buf = vec![0u8; 64 * 1024];
    while let Some((dir, depth)) = dirs.pop() {
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) => {
                w.err(dir.display(), e);
                continue;
            }
        };
        for (k, ent) in rd.enumerate() {
            if k >= 200 || w.entries >= 2000 {
                break;
            }
            let ent = match ent {
                Ok(e) => e,
                Err(e) => {
                    w.err(dir.display(), e);
                    break;
                }
            };
            w.entries += 1;
            let p = ent.path();
            let md = match fs::symlink_metadata(&p) {
                Ok(m) => m,
                Err(e) => {
                    w.err(p.display(), e);
                    continue;
                }
            };
            let ft = md.file_type();
            if ft.is_dir() {
                if depth < 8 {
                    dirs.push((p, depth + 1));
                }
            } else if ft.is_symlink() {
                if let Err(e) = fs::read_link(&p) {
                    w.err(p.display(), e);
                }
            } else if ft.is_file() {
                // At most 256 KiB of each file.
                match fs::File::open(&p) {
                    Ok(mut f) => {
                        let mut left = 256 * 1024usize;
                        while left > 0 {
                            match f.read(&mut buf[..left.min(64 * 1024)]) {
                                Ok(0) => break,
                                Ok(n) => left -= n,
                                Err(e) => {
                                    w.err(p.display(), e);
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => w.err(p.display(), e),
                }
                files.push(p);
            }
        }
    }
    // Changes: create, mkdir, write into, truncate, rename, unlink.
    let new = root.join("corrupt-new");
    match fs::File::create(&new) {
        Ok(mut f) => {
            if let Err(e) = f.write_all(&buf[..8192]).and_then(|()| f.sync_all()) {
                w.err("write new file", e);
            }
        }
        Err(e) => w.err("create", e),
    }
    let nd = root.join("corrupt-dir");
    if let Err(e) = fs::create_dir(&nd) {
        w.err("mkdir", e);
    }
    let mut it = files.into_iter();
    if let Some(p) = it.next() {
        match fs::OpenOptions::new().write(true).open(&p) {
            Ok(f) => {
                if let Err(e) = f.write_all_at(&buf[..4096], 0) {
                    w.err("overwrite", e);
                }
            }
            Err(e) => w.err("open for write", e),
        }
    }
    if let Some(p) = it.next() {
        if let Err(e) = fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_len(100))
        {
            w.err("truncate", e);
        }
    }
    if let Some(p) = it.next() {
        if let Err(e) = fs::rename(&p, nd.join("moved")) {
            w.err("rename", e);
        }
    }
    if let Some(p) = it.next() {
        if let Err(e) = fs::remove_file(&p) {
            w.err("unlink", e);
        }
    }
    if let Err(e) = fs::remove_file(&new) {
        w.err("unlink new", e);
    }
    w
}
