//! Unit tests of the on-disk codecs and pure operations.

use rdaxfs_format::*;

const MIB: u64 = 1 << 20;

fn sample_sb() -> Superblock {
    let mut sb = Superblock::new_geometry(64 * MIB, None).unwrap();
    sb.uuid = [7; 16];
    sb.label[..4].copy_from_slice(b"test");
    sb.mkfs_time = 1_700_000_000;
    sb
}

#[test]
fn crc32c_known_vectors() {
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(crc32c(b""), 0);
    assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    assert_eq!(
        crc32c_update(crc32c(b"1234"), b"56789"),
        crc32c(b"123456789")
    );
}

#[test]
fn superblock_round_trip_and_checksum() {
    let sb = sample_sb();
    let mut buf = [0u8; BLOCK_SIZE];
    sb.encode(&mut buf).unwrap();
    assert_eq!(Superblock::decode(&buf).unwrap(), sb);
    assert_eq!(sb.validate(64 * MIB), Ok(()));
    for bit in [40 * 8, 72 * 8 + 3, 200 * 8 + 7, (SB_CRC_OFF * 8) + 1] {
        let mut b = buf;
        b[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(
            Superblock::decode(&b),
            Err(FormatError::BadChecksum),
            "bit {bit}"
        );
    }
    let mut b = buf;
    b[0] ^= 1;
    assert_eq!(Superblock::decode(&b), Err(FormatError::BadMagic));
    assert_eq!(Superblock::decode(&buf[..100]), Err(FormatError::Truncated));
}

#[test]
fn superblock_geometry_is_aligned_and_validated() {
    for mib in [16u64, 17, 100, 1024, 64 * 1024] {
        let sb = Superblock::new_geometry(mib * MIB + 12345, None).unwrap();
        assert_eq!(sb.data_start % HUGE_BLOCKS, 0, "{mib} MiB");
        sb.validate(mib * MIB + 12345).unwrap();
        assert!(sb.free_blocks < sb.data_blocks());
    }
    assert_eq!(
        Superblock::new_geometry(16 * MIB - 1, None),
        Err(FormatError::DeviceTooSmall)
    );
    let sb = sample_sb();
    assert_eq!(sb.validate(32 * MIB), Err(FormatError::DeviceTooSmall));
    let bad = [
        Superblock {
            inode_table_start: sb.block_bitmap_start,
            ..sb
        },
        Superblock {
            data_start: sb.block_count + 5,
            ..sb
        },
        Superblock {
            inode_table_blocks: 1,
            ..sb
        },
        Superblock { root_ino: 0, ..sb },
        Superblock {
            free_inodes: sb.inode_count + 1,
            ..sb
        },
        Superblock { state: 9, ..sb },
        Superblock {
            journal_start: 0,
            ..sb
        },
        Superblock {
            block_bitmap_start: u64::MAX,
            ..sb
        },
    ];
    for (i, b) in bad.iter().enumerate() {
        assert!(b.validate(64 * MIB).is_err(), "case {i}");
    }
    let mut f = sb;
    f.incompat = INCOMPAT_JOURNAL;
    assert_eq!(f.check_features(), Ok(false));
    f.incompat = 1 << 7;
    assert_eq!(f.check_features(), Err(FormatError::UnsupportedFeature));
}

#[test]
fn inode_round_trip_and_checksum() {
    let mut i = Inode {
        mode: S_IFREG | 0o644,
        uid: 1000,
        gid: 100,
        size: 123_456,
        nlink: 1,
        extent_count: 2,
        blocks: 31,
        mtime: Timespec {
            sec: -5,
            nsec: 999_999_999,
        },
        ..Inode::default()
    };
    i.extents[0] = Extent {
        logical: 0,
        physical: 600,
        len: 30,
    };
    i.extents[1] = Extent {
        logical: 40,
        physical: 700,
        len: 1,
    };
    let mut buf = [0u8; INODE_SIZE];
    i.encode(&mut buf, 42).unwrap();
    let d = Inode::decode(&buf, 42).unwrap();
    assert_eq!(d, i);
    assert_eq!(d.inline_extents().len(), 2);
    d.check().unwrap();
    // The checksum covers the inode number: a misplaced inode is caught.
    assert_eq!(Inode::decode(&buf, 43), Err(FormatError::BadChecksum));
    for byte in [0, 17, 100, 200, 251] {
        let mut b = buf;
        b[byte] ^= 0x10;
        assert_eq!(
            Inode::decode(&b, 42),
            Err(FormatError::BadChecksum),
            "byte {byte}"
        );
    }
    assert_eq!(
        Inode::decode(&[0u8; INODE_SIZE], 1),
        Err(FormatError::BadChecksum)
    );
    let bad_mode = Inode { mode: 0o644, ..i };
    assert_eq!(bad_mode.check(), Err(FormatError::BadMode));
    let bad_link = Inode {
        mode: S_IFLNK | 0o777,
        size: 0,
        ..i
    };
    assert_eq!(bad_link.check(), Err(FormatError::BadSize));
    let bad_ovf = Inode {
        extent_count: 9,
        ..i
    };
    assert_eq!(bad_ovf.check(), Err(FormatError::BadCount));
}

#[test]
fn inode_location_bounds() {
    let sb = sample_sb();
    assert_eq!(inode_location(&sb, 1), Ok((sb.inode_table_start, 0)));
    assert_eq!(inode_location(&sb, 17), Ok((sb.inode_table_start + 1, 0)));
    assert_eq!(inode_location(&sb, 18), Ok((sb.inode_table_start + 1, 256)));
    assert_eq!(inode_location(&sb, 0), Err(FormatError::BadInodeNumber));
    assert_eq!(
        inode_location(&sb, sb.inode_count + 1),
        Err(FormatError::BadInodeNumber)
    );
}

#[test]
fn extent_block_round_trip() {
    let exts: Vec<Extent> = (0..EXTENT_BLOCK_CAPACITY as u64)
        .map(|i| Extent {
            logical: i * 3,
            physical: 1000 + i * 2,
            len: 2,
        })
        .collect();
    let mut buf = [0u8; BLOCK_SIZE];
    extent_block_encode(&mut buf, 77, 5, &exts).unwrap();
    let h = ExtentBlockHeader::decode(&buf, 5).unwrap();
    assert_eq!((h.count as usize, h.next, h.owner), (exts.len(), 77, 5));
    for (i, e) in exts.iter().enumerate() {
        assert_eq!(extent_block_entry(&buf, i).unwrap(), *e);
    }
    assert_eq!(
        ExtentBlockHeader::decode(&buf, 6),
        Err(FormatError::BadOwner)
    );
    let mut b = buf;
    b[2000] ^= 4;
    assert_eq!(
        ExtentBlockHeader::decode(&b, 5),
        Err(FormatError::BadChecksum)
    );
    let too_many = vec![Extent::default(); EXTENT_BLOCK_CAPACITY + 1];
    assert_eq!(
        extent_block_encode(&mut buf, 0, 5, &too_many),
        Err(FormatError::BadCount)
    );
}

fn ext(l: u64, p: u64, n: u32) -> Extent {
    Extent {
        logical: l,
        physical: p,
        len: n,
    }
}

#[test]
fn extent_insert_merges_and_rejects_overlap() {
    let mut a = [Extent::default(); 4];
    let mut n = 0;
    n = extents_insert(&mut a, n, ext(10, 110, 5)).unwrap();
    n = extents_insert(&mut a, n, ext(0, 100, 5)).unwrap();
    assert_eq!(&a[..n], &[ext(0, 100, 5), ext(10, 110, 5)]);
    // Fills the gap contiguously on both sides: three become one.
    n = extents_insert(&mut a, n, ext(5, 105, 5)).unwrap();
    assert_eq!(&a[..n], &[ext(0, 100, 15)]);
    // Logically adjacent but physically not: separate extent.
    n = extents_insert(&mut a, n, ext(15, 500, 1)).unwrap();
    // Merges into the following extent.
    n = extents_insert(&mut a, n, ext(30, 600, 2)).unwrap();
    n = extents_insert(&mut a, n, ext(28, 598, 2)).unwrap();
    assert_eq!(
        &a[..n],
        &[ext(0, 100, 15), ext(15, 500, 1), ext(28, 598, 4)]
    );
    assert_eq!(
        extents_insert(&mut a, n, ext(14, 900, 1)),
        Err(FormatError::ExtentOverlap)
    );
    assert_eq!(
        extents_insert(&mut a, n, ext(27, 900, 2)),
        Err(FormatError::ExtentOverlap)
    );
    assert_eq!(
        extents_insert(&mut a, n, ext(40, 900, 0)),
        Err(FormatError::ExtentOutOfRange)
    );
    n = extents_insert(&mut a, n, ext(50, 900, 1)).unwrap();
    assert_eq!(
        extents_insert(&mut a, n, ext(60, 950, 1)),
        Err(FormatError::ExtentFull)
    );
    assert_eq!(extents_validate(&a[..n], 100, 1000), Ok(()));
    assert_eq!(
        extents_validate(&a[..n], 100, 900),
        Err(FormatError::ExtentOutOfRange)
    );
    assert_eq!(
        extents_validate(&[ext(5, 200, 5), ext(8, 300, 1)], 0, 1000),
        Err(FormatError::ExtentOverlap)
    );
}

#[test]
fn extent_lookup_finds_runs() {
    let a = [ext(0, 100, 10), ext(20, 500, 5)];
    assert_eq!(extent_lookup(&a, 0), Some((100, 10)));
    assert_eq!(extent_lookup(&a, 9), Some((109, 1)));
    assert_eq!(extent_lookup(&a, 10), None);
    assert_eq!(extent_lookup(&a, 22), Some((502, 3)));
    assert_eq!(extent_lookup(&a, 25), None);
    assert_eq!(extent_lookup(&[], 0), None);
    assert_eq!(
        extent_lookup(&[ext(u64::MAX - 1, u64::MAX, 5)], u64::MAX),
        None
    );
}

#[test]
fn extent_remove_trims_splits_and_reports() {
    let mut a = [Extent::default(); 4];
    a[0] = ext(0, 100, 10);
    a[1] = ext(10, 300, 10);
    let mut freed = Vec::new();
    // Punch a hole in the middle of the first extent: split.
    let n = extents_remove_range(&mut a, 2, 3, 2, |p, l| freed.push((p, l))).unwrap();
    assert_eq!(&a[..n], &[ext(0, 100, 3), ext(5, 105, 5), ext(10, 300, 10)]);
    assert_eq!(freed, vec![(103, 2)]);
    freed.clear();
    // Trim across two extents: tail of one, head of the next.
    let n = extents_remove_range(&mut a, n, 8, 4, |p, l| freed.push((p, l))).unwrap();
    assert_eq!(&a[..n], &[ext(0, 100, 3), ext(5, 105, 3), ext(12, 302, 8)]);
    assert_eq!(freed, vec![(108, 2), (300, 2)]);
    freed.clear();
    // Truncate to 4 blocks.
    let n = extents_remove_range(&mut a, n, 4, u64::MAX, |p, l| freed.push((p, l))).unwrap();
    assert_eq!(&a[..n], &[ext(0, 100, 3)]);
    assert_eq!(freed, vec![(105, 3), (302, 8)]);
    // A split with no spare slot fails and changes nothing.
    let mut full = [ext(0, 100, 10)];
    assert_eq!(
        extents_remove_range(&mut full, 1, 2, 2, |_, _| {}),
        Err(FormatError::ExtentFull)
    );
    assert_eq!(full, [ext(0, 100, 10)]);
}

#[test]
fn dir_slot_ops() {
    let mut b = [0u8; BLOCK_SIZE];
    dir_init(&mut b).unwrap();
    assert_eq!(dir_check(&b), Ok(0));
    let s = dir_insert(&mut b, 12, b"hello", DT_REG).unwrap();
    let t = dir_insert(&mut b, 13, b"world", DT_DIR).unwrap();
    assert_eq!((s, t), (0, 1));
    assert_eq!(dir_check(&b), Ok(2));
    assert_eq!(dir_find(&b, b"world"), Some(1));
    assert_eq!(dir_find(&b, b"nope"), None);
    let e = dir_entry(&b, 1).unwrap().unwrap();
    assert_eq!(
        (e.ino, e.file_type, e.name, e.hash),
        (13, DT_DIR, &b"world"[..], name_hash(b"world"))
    );
    dir_remove(&mut b, 0).unwrap();
    assert_eq!(dir_find(&b, b"hello"), None);
    assert_eq!(dir_check(&b), Ok(1));
    assert_eq!(dir_insert(&mut b, 14, b"again", DT_LNK), Ok(0));
    for i in 2..DIR_SLOTS {
        dir_insert(&mut b, 100 + i as u64, format!("f{i}").as_bytes(), DT_REG).unwrap();
    }
    assert_eq!(
        dir_insert(&mut b, 999, b"full", DT_REG),
        Err(FormatError::DirFull)
    );
    assert_eq!(dir_iter(&b, 0).count(), DIR_SLOTS);
    assert_eq!(dir_iter(&b, 10).count(), DIR_SLOTS - 10);
    let long = [b'x'; 255];
    dir_remove(&mut b, 3).unwrap();
    assert_eq!(dir_insert(&mut b, 5, &long, DT_REG), Ok(3));
    assert_eq!(dir_entry(&b, 3).unwrap().unwrap().name, &long[..]);
    let mut c = b;
    c[100] ^= 1;
    assert_eq!(dir_check(&c), Err(FormatError::BadChecksum));
    assert_eq!(dir_pos(0, 0), 2);
    assert_eq!(dir_pos_split(dir_pos(7, 14)), Some((7, 14)));
    assert_eq!(dir_pos_split(1), None);
}

#[test]
fn name_validation() {
    assert!(validate_name(b"a").is_ok());
    assert!(validate_name(&[b'z'; 255]).is_ok());
    for bad in [&b""[..], b".", b"..", b"a/b", b"nul\0", &[b'x'; 256]] {
        assert_eq!(validate_name(bad), Err(FormatError::BadName), "{bad:?}");
    }
    assert!(validate_name(b"...").is_ok());
    assert!(validate_name("ünïcödé".as_bytes()).is_ok());
}

#[test]
fn bitmap_basics() {
    let mut bm = [0u8; 64];
    assert!(!bit_set(&mut bm, 10).unwrap());
    assert!(bit_set(&mut bm, 10).unwrap());
    assert!(bit_test(&bm, 10));
    assert!(bit_clear(&mut bm, 10).unwrap());
    assert!(!bit_test(&bm, 10));
    assert_eq!(bit_set(&mut bm, 512), Err(FormatError::OutOfRange));
    assert!(!bit_test(&bm, 10_000));
    bits_set_range(&mut bm, 3, 20).unwrap();
    assert_eq!(bits_count(&bm, 0, 512), 20);
    assert_eq!(bits_count(&bm, 5, 9), 4);
    assert_eq!(find_free(&bm, 0, 512, 0), Some(0));
    assert_eq!(find_free(&bm, 0, 512, 3), Some(23));
    assert_eq!(find_set(&bm, 0, 512), Some(3));
    assert_eq!(find_free_run(&bm, 0, 512, 0, 4), Some(23));
    assert_eq!(find_free_run(&bm, 0, 512, 0, 3), Some(0));
    assert_eq!(find_free_run(&bm, 0, 30, 25, 10), None);
    // Wraps around to the start.
    bits_set_range(&mut bm, 490, 22).unwrap();
    assert_eq!(find_free_run(&bm, 0, 512, 500, 3), Some(0));
    assert_eq!(find_free(&bm, 0, 512, 495), Some(0));
    bits_clear_range(&mut bm, 490, 22).unwrap();
    assert_eq!(free_run_len(&bm, 0, 512, 100), 3);
    bits_clear_range(&mut bm, 3, 20).unwrap();
    assert_eq!(bits_count(&bm, 0, 512), 0);
}

#[test]
fn bitmap_aligned_runs() {
    let nbits = 4 * HUGE_BLOCKS;
    let mut bm = vec![0u8; (nbits / 8) as usize];
    bit_set(&mut bm, 1).unwrap();
    bit_set(&mut bm, HUGE_BLOCKS + 7).unwrap();
    // 0 and 512 are spoiled; 1024 is the first clean aligned run.
    assert_eq!(
        find_aligned_run(&bm, 0, nbits, 0, HUGE_BLOCKS, HUGE_BLOCKS),
        Some(1024)
    );
    assert_eq!(
        find_aligned_run(&bm, 0, nbits, 0, 2 * HUGE_BLOCKS, HUGE_BLOCKS),
        Some(1024)
    );
    assert_eq!(
        find_aligned_run(&bm, 0, nbits, 0, 3 * HUGE_BLOCKS, HUGE_BLOCKS),
        None
    );
    bit_set(&mut bm, 3 * HUGE_BLOCKS).unwrap();
    assert_eq!(
        find_aligned_run(&bm, 0, nbits, 0, HUGE_BLOCKS, HUGE_BLOCKS),
        Some(1024)
    );
    assert_eq!(
        find_aligned_run(&bm, 0, nbits, 1500, HUGE_BLOCKS, HUGE_BLOCKS),
        Some(1024)
    );
}

#[test]
fn allocation_policy() {
    let (lo, hi) = (HUGE_BLOCKS, 8 * HUGE_BLOCKS);
    let mut bm = vec![0u8; (hi / 8) as usize];
    bits_set_range(&mut bm, 0, lo).unwrap();
    bit_set(&mut bm, lo + 3).unwrap();
    // Small request: first fit from the hint in the region already in
    // use, no 2 MiB waste.
    let small = AllocRequest {
        want: 2,
        hint: lo,
        large_file: false,
    };
    assert_eq!(choose_blocks(&bm, lo, hi, small), Some((lo, 2)));
    // Big request: aligned start even though blocks at lo are free.
    let big = AllocRequest {
        want: HUGE_BLOCKS,
        hint: lo,
        large_file: false,
    };
    assert_eq!(
        choose_blocks(&bm, lo, hi, big),
        Some((2 * HUGE_BLOCKS, HUGE_BLOCKS))
    );
    // Large file growing by a little at logical block 0 of a range: a
    // whole free region.
    let grow = AllocRequest {
        want: 4,
        hint: lo + 1,
        large_file: true,
    };
    assert_eq!(
        choose_file_blocks(&bm, lo, hi, grow, 8 * HUGE_BLOCKS),
        Some((2 * HUGE_BLOCKS, 4))
    );
    // Contiguous, congruent growth at the hint wins when free.
    let cont = AllocRequest {
        want: 4,
        hint: 3 * HUGE_BLOCKS + 4,
        large_file: true,
    };
    assert_eq!(
        choose_blocks(&bm, lo, hi, cont),
        Some((3 * HUGE_BLOCKS + 4, 4))
    );
    // Request larger than any aligned free run: one 2 MiB piece.
    let huge = AllocRequest {
        want: 7 * HUGE_BLOCKS,
        hint: lo,
        large_file: false,
    };
    assert_eq!(
        choose_blocks(&bm, lo, hi, huge),
        Some((2 * HUGE_BLOCKS, HUGE_BLOCKS))
    );
    // Fragmented area: falls back to the first fragment.
    let mut frag = vec![0xAAu8; (hi / 8) as usize];
    frag[..(lo / 8) as usize].fill(0xff);
    let r = choose_blocks(
        &frag,
        lo,
        hi,
        AllocRequest {
            want: 600,
            hint: lo,
            large_file: true,
        },
    );
    assert_eq!(r, Some((lo, 1)));
    let full = vec![0xffu8; (hi / 8) as usize];
    assert_eq!(choose_blocks(&full, lo, hi, small), None);
}

/// A bitmap of `regions` 2 MiB regions with the first one (metadata) used.
fn area(regions: u64) -> (Vec<u8>, u64, u64) {
    let (lo, hi) = (HUGE_BLOCKS, regions * HUGE_BLOCKS);
    let mut bm = vec![0u8; (hi / 8) as usize];
    bits_set_range(&mut bm, 0, lo).unwrap();
    (bm, lo, hi)
}

fn req(want: u64, hint: u64, large_file: bool) -> AllocRequest {
    AllocRequest {
        want,
        hint,
        large_file,
    }
}

#[test]
fn small_allocations_keep_whole_regions_free() {
    let (mut bm, lo, hi) = area(8);
    // Region 2 is partly used; regions 1 and 3.. are whole and free.
    bit_set(&mut bm, 2 * HUGE_BLOCKS + 7).unwrap();
    // A small request with no hint goes to region 2, not to region 1.
    assert_eq!(
        choose_blocks(&bm, lo, hi, req(3, 0, false)),
        Some((2 * HUGE_BLOCKS, 3))
    );
    // Nor does growth at a hint that starts a whole free region.
    assert_eq!(
        choose_blocks(&bm, lo, hi, req(3, 3 * HUGE_BLOCKS, false)),
        Some((2 * HUGE_BLOCKS, 3))
    );
    // Growth inside a partly used region is fine.
    assert_eq!(
        choose_blocks(&bm, lo, hi, req(3, 2 * HUGE_BLOCKS + 8, false)),
        Some((2 * HUGE_BLOCKS + 8, 3))
    );
    // A run that would reach from region 2 into free region 3 stops at
    // the boundary (the caller asks again for the rest).
    bits_set_range(&mut bm, 2 * HUGE_BLOCKS, HUGE_BLOCKS - 10).unwrap();
    assert_eq!(
        choose_blocks(&bm, lo, hi, req(100, 0, false)),
        Some((3 * HUGE_BLOCKS - 10, 10))
    );
    // With no partly used region, a small request takes first fit.
    let (bm, lo, hi) = area(8);
    assert_eq!(choose_blocks(&bm, lo, hi, req(5, 0, false)), Some((lo, 5)));
}

#[test]
fn streaming_writes_stay_congruent() {
    let (mut bm, lo, hi) = area(8);
    // Region 1 partly used (a small file's blocks).
    bits_set_range(&mut bm, lo, 10).unwrap();
    // 1 MiB at logical 0: a whole free region (2), not the free tail of 1.
    let a = choose_file_blocks(&bm, lo, hi, req(256, 0, false), 0).unwrap();
    assert_eq!(a, (2 * HUGE_BLOCKS, 256));
    bits_set_range(&mut bm, a.0, a.1).unwrap();
    // A small file in between goes elsewhere (region 1, partly used).
    let s = choose_blocks(&bm, lo, hi, req(4, 0, false)).unwrap();
    assert_eq!(s, (lo + 10, 4));
    bits_set_range(&mut bm, s.0, s.1).unwrap();
    // The next 1 MiB continues the region.
    let b = choose_file_blocks(&bm, lo, hi, req(256, a.0 + 256, false), 256).unwrap();
    assert_eq!(b, (a.0 + 256, 256));
    bits_set_range(&mut bm, b.0, b.1).unwrap();
    // Region 3 has a used block at its end: logical 512 skips it for 4.
    bit_set(&mut bm, 4 * HUGE_BLOCKS - 1).unwrap();
    let c = choose_file_blocks(&bm, lo, hi, req(256, b.0 + 256, true), 512).unwrap();
    assert_eq!(c, (4 * HUGE_BLOCKS, 256));
    // A file whose range began elsewhere and cannot continue: a
    // congruent tail run, else small-file space.
    let d = choose_file_blocks(&bm, lo, hi, req(256, 0, true), 256).unwrap();
    assert_eq!(d.0 % HUGE_BLOCKS, 256);
    // A fault-sized request (one block of a large file) in the middle of
    // a range gets a congruent block.
    let e = choose_file_blocks(&bm, lo, hi, req(1, 0, true), 5 * HUGE_BLOCKS + 9).unwrap();
    assert_eq!(e.0 % HUGE_BLOCKS, 9);
}

/// Files of an aging workload, as lists of (physical, len) runs.
struct Aged {
    bm: Vec<u8>,
    lo: u64,
    hi: u64,
    files: Vec<Vec<(u64, u64)>>,
}

impl Aged {
    fn used(&self) -> u64 {
        bits_count(&self.bm, self.lo, self.hi)
    }

    /// Allocates a file of `blocks` blocks written in `chunk`-block
    /// requests, as write(2) does through the kernel.
    fn write(&mut self, blocks: u64, chunk: u64) -> Option<Vec<(u64, u64)>> {
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let mut l = 0;
        while l < blocks {
            let want = chunk.min(blocks - l);
            let hint = runs.last().map_or(0, |r| r.0 + r.1);
            let r = req(want, hint, l >= HUGE_BLOCKS);
            let (s, n) = choose_file_blocks(&self.bm, self.lo, self.hi, r, l)?;
            bits_set_range(&mut self.bm, s, n).unwrap();
            runs.push((s, n));
            l += n;
        }
        Some(runs)
    }

    fn delete(&mut self, i: usize) {
        for (s, n) in self.files.swap_remove(i) {
            bits_clear_range(&mut self.bm, s, n).unwrap();
        }
    }
}

/// Share (percent) of `runs`' 2 MiB logical ranges on one aligned region.
fn coverage(runs: &[(u64, u64)]) -> u64 {
    let mut map = Vec::new();
    for &(s, n) in runs {
        map.extend(s..s + n);
    }
    let ranges = map.len() as u64 / HUGE_BLOCKS;
    let good = map
        .chunks_exact(HUGE_BLOCKS as usize)
        .filter(|c| c[0] % HUGE_BLOCKS == 0 && c.windows(2).all(|w| w[1] == w[0] + 1))
        .count() as u64;
    good * 100 / ranges
}

#[test]
fn aged_area_keeps_pmd_regions() {
    // 512 MiB, aged as the guest test pmd-aged does: filled to 80% with
    // files of 4 KiB to 6 MiB written in 1 MiB chunks, a random half
    // deleted, refilled, a random half deleted.
    let (bm, lo, hi) = area(256);
    let mut a = Aged {
        bm,
        lo,
        hi,
        files: Vec::new(),
    };
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let target = (hi - lo) * 8 / 10;
    for _ in 0..2 {
        while a.used() < target {
            let e = 12 + rnd(12);
            let bytes = ((1u64 << e) + rnd((1u64 << e) / 2 * 3)).min(6 << 20);
            let f = a.write(bytes.div_ceil(BLOCK_SIZE_U64), 256).unwrap();
            a.files.push(f);
        }
        let mut i = 0;
        while i < a.files.len() {
            if rnd(2) == 0 {
                a.delete(i);
            } else {
                i += 1;
            }
        }
    }
    let file = 64 * 256;
    let whole = (1..256)
        .filter(|r| find_set(&a.bm, r * HUGE_BLOCKS, (r + 1) * HUGE_BLOCKS).is_none())
        .count();
    eprintln!(
        "aged: {} files, {}% used, {whole} whole free 2 MiB regions",
        a.files.len(),
        a.used() * 100 / (hi - lo)
    );
    let saved = a.bm.clone();
    // write(2) in 1 MiB chunks, fallocate (one request for the whole
    // file, looping) and PMD faults (one region per request).
    for (chunk, what) in [(256, "write"), (file, "fallocate"), (HUGE_BLOCKS, "faults")] {
        a.bm = saved.clone();
        let runs = a.write(file, chunk).unwrap();
        eprintln!("aged: {what}: coverage {}%", coverage(&runs));
        assert!(
            coverage(&runs) >= 99,
            "{what}: coverage {}%",
            coverage(&runs)
        );
    }
}

#[test]
fn decoders_survive_random_bytes() {
    let mut x = 0x1234_5678_9abc_def0u64;
    let mut buf = [0u8; BLOCK_SIZE];
    for round in 0..3000 {
        for c in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&x.to_le_bytes());
        }
        if round % 3 == 0 {
            // Keep magics valid so the deeper paths run too.
            buf[..4].copy_from_slice(&DIR_MAGIC.to_le_bytes());
        }
        let len = (x % (BLOCK_SIZE as u64 + 1)) as usize;
        let data = &buf[..len];
        if let Ok(sb) = Superblock::decode(data) {
            let _ = sb.validate(x);
        }
        if let Ok(i) = Inode::decode(data, x) {
            let _ = i.check();
        }
        let _ = ExtentBlockHeader::decode(data, x);
        let _ = dir_check(data);
        for s in 0..DIR_SLOTS {
            let _ = dir_entry(data, s);
        }
        let _ = dir_find(data, b"abc");
        let mut exts = [Extent::default(); 8];
        for (i, e) in exts.iter_mut().enumerate() {
            *e = extent_block_entry(&buf, i * 9).unwrap_or_default();
        }
        let _ = extent_lookup(&exts, x);
        let _ = extents_insert(&mut exts, 7, ext(x, x >> 3, x as u32));
        let _ = extents_remove_range(&mut exts, 7, x % 1000, x % 77, |_, _| {});
        let req = AllocRequest {
            want: x % 2000,
            hint: x % 40_000,
            large_file: x & 1 == 1,
        };
        let _ = choose_blocks(&buf, x % 100, 32_768, req);
    }
}

/// The header and slot `slot` of a directory block, as two views.
fn split(b: &mut [u8; BLOCK_SIZE], slot: usize) -> (&mut [u8], &mut [u8]) {
    let (head, rest) = b.split_at_mut(DIR_HEADER_SIZE);
    let at = dir_slot_offset(slot).unwrap() - DIR_HEADER_SIZE;
    (head, &mut rest[at..at + DIR_SLOT_SIZE])
}

/// The slot-level directory changes (header + one slot, checksum patched)
/// give exactly the block the whole-block changes give.
#[test]
fn dir_slot_changes_match_whole_block_changes() {
    let mut whole = [0u8; BLOCK_SIZE];
    dir_init(&mut whole).unwrap();
    let mut parts = whole;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..2000u64 {
        let mask = dir_used_mask(&whole);
        let slot = (rnd() % DIR_SLOTS as u64) as usize;
        if mask & (1 << slot) == 0 {
            let free = (0..DIR_SLOTS).find(|&s| mask & (1 << s) == 0).unwrap();
            let len = 1 + (rnd() % 255) as usize;
            let name: Vec<u8> = (0..len)
                .map(|k| b'a' + ((k as u64 + i) % 26) as u8)
                .collect();
            assert_eq!(dir_insert(&mut whole, 10 + i, &name, DT_REG), Ok(free));
            let (h, s) = split(&mut parts, free);
            dir_slot_insert(h, free, s, 10 + i, &name, DT_REG).unwrap();
        } else if rnd() % 2 == 0 {
            dir_remove(&mut whole, slot).unwrap();
            let (h, s) = split(&mut parts, slot);
            dir_slot_remove(h, slot, s).unwrap();
        } else {
            dir_set_ino(&mut whole, slot, 5 + i, DT_DIR).unwrap();
            let (h, s) = split(&mut parts, slot);
            dir_slot_set_ino(h, slot, s, 5 + i, DT_DIR).unwrap();
        }
        assert_eq!(whole[..], parts[..], "after step {i}");
        assert!(dir_check(&parts).is_ok());
        assert_eq!(
            dir_check(&parts).unwrap() as u32,
            dir_used_mask(&parts).count_ones()
        );
    }
    // Refusals: a used slot cannot be inserted into, a free one not
    // removed or retargeted.
    let mut b = [0u8; BLOCK_SIZE];
    dir_init(&mut b).unwrap();
    let (h, s) = split(&mut b, 3);
    assert_eq!(dir_slot_remove(h, 3, s), Err(FormatError::OutOfRange));
    assert_eq!(
        dir_slot_set_ino(h, 3, s, 9, DT_REG),
        Err(FormatError::OutOfRange)
    );
    dir_slot_insert(h, 3, s, 9, b"x", DT_REG).unwrap();
    assert_eq!(
        dir_slot_insert(h, 3, s, 9, b"y", DT_REG),
        Err(FormatError::DirFull)
    );
}

#[test]
fn file_policy_returns_free_runs() {
    // Random bitmaps (runs of used and free blocks) and requests: every
    // answer is free, inside the area and at most `want` long; `None`
    // only when the area is full.
    let mut x = 0x0123_4567_89ab_cdefu64;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for _ in 0..400 {
        let hi = HUGE_BLOCKS * (2 + rnd(10)) + rnd(HUGE_BLOCKS);
        let lo = rnd(2) * HUGE_BLOCKS + rnd(3);
        let mut bm = vec![0u8; hi.div_ceil(8) as usize];
        let mut b = 0;
        while b < hi {
            let span = if rnd(2) == 0 { 8 } else { 700 };
            let n = 1 + rnd(span);
            if rnd(3) != 0 {
                bits_set_range(&mut bm, b, n.min(hi - b)).unwrap();
            }
            b += n;
        }
        for _ in 0..20 {
            let r = req(1 + rnd(1500), rnd(hi + 10), rnd(2) == 0);
            let logical = rnd(1 << 20);
            match choose_file_blocks(&bm, lo, hi, r, logical) {
                Some((s, n)) => {
                    assert!(n >= 1 && n <= r.want, "{r:?} at {logical}: ({s}, {n})");
                    assert!(s >= lo && s + n <= hi, "{r:?}: ({s}, {n}) outside");
                    assert_eq!(find_set(&bm, s, s + n), None, "{r:?}: ({s}, {n}) used");
                }
                None => assert_eq!(find_clear(&bm, lo, hi), None, "{r:?}: None with room"),
            }
        }
    }
}

#[test]
fn small_files_between_streaming_writes() {
    // A 64 MiB file written in 1 MiB chunks with a one-block small file
    // allocated after each chunk, on an area where every other region is
    // partly used (an aged filesystem): the small files go to the partly
    // used regions, not to the free half of the region the big file is
    // streaming into.
    let (mut bm, lo, hi) = area(256);
    for r in (2..200u64).step_by(2) {
        bits_set_range(&mut bm, r * HUGE_BLOCKS + 100, 200).unwrap();
    }
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut l = 0;
    while l < 64 * 256 {
        let hint = runs.last().map_or(0, |r| r.0 + r.1);
        let r = req(256, hint, l >= HUGE_BLOCKS);
        let (s, n) = choose_file_blocks(&bm, lo, hi, r, l).unwrap();
        bits_set_range(&mut bm, s, n).unwrap();
        runs.push((s, n));
        l += n;
        let (a, b) = choose_blocks(&bm, lo, hi, req(1, 0, false)).unwrap();
        assert_ne!(
            a % HUGE_BLOCKS,
            256,
            "small file at {a}, in a streaming region"
        );
        bits_set_range(&mut bm, a, b).unwrap();
    }
    assert_eq!(coverage(&runs), 100);
}
