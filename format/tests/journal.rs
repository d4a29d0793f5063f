//! The journal codec: commit marks, torn headers and records, diffs, bit
//! ranges and replay.

use rdaxfs_format::*;

const AREA: usize = 64 * 1024;

struct Img(Vec<u8>);

impl JournalTarget for Img {
    fn read(&mut self, off: u64, buf: &mut [u8]) -> Result<(), FormatError> {
        let o = off as usize;
        buf.copy_from_slice(self.0.get(o..o + buf.len()).ok_or(FormatError::Truncated)?);
        Ok(())
    }
    fn write(&mut self, off: u64, data: &[u8]) -> Result<(), FormatError> {
        let o = off as usize;
        self.0
            .get_mut(o..o + data.len())
            .ok_or(FormatError::Truncated)?
            .copy_from_slice(data);
        Ok(())
    }
}

fn geometry() -> Superblock {
    Superblock::new_geometry(16 << 20, None).unwrap()
}

#[test]
fn empty_and_zero_areas_hold_no_transaction() {
    assert_eq!(journal_read(&vec![0u8; AREA]).unwrap(), None);
    let mut area = vec![0u8; AREA];
    let mut w = JournalWriter::new(&mut area);
    let n = w.finish(1).unwrap();
    assert_eq!(n, JOURNAL_HEADER);
    let tx = journal_read(&area).unwrap().unwrap();
    assert_eq!((tx.seq, tx.count, tx.len), (1, 0, 0));
}

#[test]
fn records_round_trip() {
    let mut area = vec![0u8; AREA];
    let mut w = JournalWriter::new(&mut area);
    w.bytes(4096 * 300, b"hello").unwrap();
    w.bits(true, 4096 * 258, 600, 70).unwrap();
    w.bits(false, 4096 * 257, 3, 1).unwrap();
    w.finish(42).unwrap();
    let tx = journal_read(&area).unwrap().unwrap();
    assert_eq!(tx.seq, 42);
    let recs: Vec<_> = tx.records().map(|r| r.unwrap()).collect();
    assert_eq!(
        recs,
        vec![
            Record::Bytes {
                off: 4096 * 300,
                data: b"hello"
            },
            Record::Bits {
                set: true,
                base: 4096 * 258,
                first: 600,
                count: 70
            },
            Record::Bits {
                set: false,
                base: 4096 * 257,
                first: 3,
                count: 1
            },
        ]
    );
}

#[test]
fn any_torn_word_of_header_or_records_uncommits() {
    // Old contents: a cleared earlier transaction; new one written over it.
    let mut old = vec![0u8; AREA];
    let mut w = JournalWriter::new(&mut old);
    w.bytes(8192, &[7u8; 40]).unwrap();
    let len = w.finish(1).unwrap();
    old[..8].fill(0); // cleared after apply
    let mut new = old.clone();
    let mut w = JournalWriter::new(&mut new);
    w.bytes(4096 * 400, &[9u8; 100]).unwrap();
    w.bits(true, 4096 * 258, 10, 5).unwrap();
    let len2 = w.finish(2).unwrap();
    assert!(journal_read(&new).unwrap().is_some());
    // Every single 8-byte word left at its old value must uncommit (or,
    // when old == new for that word, change nothing).
    for i in 0..len.max(len2).div_ceil(8) {
        let mut t = new.clone();
        t[i * 8..i * 8 + 8].copy_from_slice(&old[i * 8..i * 8 + 8]);
        if t == new {
            continue;
        }
        assert_eq!(journal_read(&t).unwrap(), None, "word {i}");
    }
}

#[test]
fn diff_logs_only_changed_words() {
    let old = vec![0u8; 256];
    let mut new = old.clone();
    new[24] = 1; // word 3
    new[252] = 9; // word 31
    let mut area = vec![0u8; AREA];
    let mut w = JournalWriter::new(&mut area);
    w.diff(4096, &old, &new).unwrap();
    assert_eq!(w.count(), 2);
    w.diff(4096, &old, &old).unwrap();
    assert_eq!(w.count(), 2);
    w.finish(5).unwrap();
    let mut img = Img(vec![0u8; 8192]);
    let sb = geometry();
    let _ = sb;
    for r in journal_read(&area).unwrap().unwrap().records() {
        journal_apply(&mut img, &r.unwrap()).unwrap();
    }
    assert_eq!(&img.0[4096..4352], &new[..]);
    // Nearby changes share a record.
    let mut near = old.clone();
    near[0] = 1;
    near[16] = 1;
    let mut w = JournalWriter::new(&mut area);
    w.diff(0, &old, &near).unwrap();
    assert_eq!(w.count(), 1);
    assert!(w.diff(4, &old, &near).is_err());
}

#[test]
fn bit_ranges_apply_across_chunks() {
    let mut img = Img(vec![0u8; 8192]);
    for (first, count) in [(0u64, 1u64), (5, 3), (7, 9), (100, 5000), (13, 40_000)] {
        img.0.fill(0);
        journal_apply(
            &mut img,
            &Record::Bits {
                set: true,
                base: 1024,
                first,
                count,
            },
        )
        .unwrap();
        let bm = &img.0[1024..];
        for i in 0..(7000 * 8u64).min(bm.len() as u64 * 8) {
            assert_eq!(
                bit_test(bm, i),
                i >= first && i < first + count,
                "{first}+{count} bit {i}"
            );
        }
        assert!(img.0[..1024].iter().all(|&b| b == 0));
        journal_apply(
            &mut img,
            &Record::Bits {
                set: false,
                base: 1024,
                first,
                count,
            },
        )
        .unwrap();
        assert!(img.0.iter().all(|&b| b == 0));
    }
}

#[test]
fn replay_checks_records_against_the_geometry() {
    let sb = geometry();
    let dev = (sb.block_count * 4096) as usize;
    let mut area = vec![0u8; AREA];
    let mut w = JournalWriter::new(&mut area);
    w.bytes(sb.journal_start * 4096 + 64, b"x").unwrap(); // inside the journal
    w.finish(3).unwrap();
    let mut img = Img(vec![0u8; dev]);
    assert!(journal_replay(&sb, &area, &mut img).is_err());
    let mut w = JournalWriter::new(&mut area);
    w.bits(true, 12345, 0, 1).unwrap(); // not a bitmap
    w.finish(3).unwrap();
    assert!(journal_replay(&sb, &area, &mut img).is_err());
    let mut w = JournalWriter::new(&mut area);
    w.bits(true, sb.inode_bitmap_start * 4096, sb.inode_count - 1, 2)
        .unwrap(); // past the inode count
    w.finish(3).unwrap();
    assert!(journal_replay(&sb, &area, &mut img).is_err());
    let mut w = JournalWriter::new(&mut area);
    w.bits(true, sb.inode_bitmap_start * 4096, 0, 16).unwrap();
    w.bytes(sb.inode_table_start * 4096, &[1, 2, 3]).unwrap();
    w.finish(4).unwrap();
    let tx = journal_replay(&sb, &area, &mut img).unwrap().unwrap();
    assert_eq!(tx.seq, 4);
    let ib = (sb.inode_bitmap_start * 4096) as usize;
    assert_eq!(&img.0[ib..ib + 3], &[0xff, 0xff, 0]);
    let it = (sb.inode_table_start * 4096) as usize;
    assert_eq!(&img.0[it..it + 3], &[1, 2, 3]);
    // Replaying twice gives the same image (redo is idempotent).
    let snap = img.0.clone();
    journal_replay(&sb, &area, &mut img).unwrap();
    assert_eq!(img.0, snap);
}

#[test]
fn full_journal_is_reported() {
    let mut area = vec![0u8; 256];
    let mut w = JournalWriter::new(&mut area);
    assert_eq!(w.bytes(0, &[0u8; 200]), Err(FormatError::JournalFull));
    w.bytes(0, &[0u8; 150]).unwrap();
    assert_eq!(w.bits(true, 0, 0, 1), Err(FormatError::JournalFull));
}
