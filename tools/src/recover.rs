//! Crash recovery of an image: what the kernel does at mount before it
//! trusts any metadata (replay the journal's committed transaction, if
//! any), done in userspace for fsck and the crash-state tests. Both sides
//! run the same replay code from the format crate.

use crate::dev::Dev;
use crate::fs::Fs;
use rdaxfs_format::{
    inode_location, journal_apply, journal_read, journal_replay, FormatError, JournalTarget,
    Record, Superblock, BLOCK_SIZE_U64, INCOMPAT_JOURNAL, INODE_SIZE, SB_SIZE,
};
use std::collections::BTreeMap;
use std::io;

/// What recovery did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// A committed transaction was replayed (its sequence number).
    pub replayed: Option<u64>,
    /// Bytes of log records replayed.
    pub log_bytes: u64,
    /// The primary superblock was unreadable and the backup was used.
    pub used_backup: bool,
    /// Orphans (unlinked inodes a crash left allocated) freed.
    pub orphans: u64,
}

/// Reads the superblock recovery works from: the primary, or the backup in
/// the device's last block when the primary fails its checks.
pub fn read_superblock<D: Dev>(dev: &mut D) -> Result<(Superblock, bool), String> {
    let size = dev.size().map_err(|e| format!("size: {e}"))?;
    let mut buf = vec![0u8; SB_SIZE];
    dev.read_at(0, &mut buf).map_err(|e| format!("read: {e}"))?;
    let prim = Superblock::decode(&buf).and_then(|sb| sb.validate(size).map(|()| sb));
    match prim {
        Ok(sb) => Ok((sb, false)),
        Err(e) => {
            let last = (size / BLOCK_SIZE_U64).saturating_sub(1) * BLOCK_SIZE_U64;
            dev.read_at(last, &mut buf)
                .map_err(|e| format!("read: {e}"))?;
            let b = Superblock::decode(&buf).and_then(|sb| sb.validate(size).map(|()| sb));
            b.map(|sb| (sb, true))
                .map_err(|b| format!("primary superblock: {}; backup: {}", e.msg(), b.msg()))
        }
    }
}

struct Target<'a, D: Dev>(&'a mut D);

impl<D: Dev> JournalTarget for Target<'_, D> {
    fn read(&mut self, off: u64, buf: &mut [u8]) -> Result<(), FormatError> {
        self.0.read_at(off, buf).map_err(|_| FormatError::Truncated)
    }
    fn write(&mut self, off: u64, data: &[u8]) -> Result<(), FormatError> {
        self.0
            .write_at(off, data)
            .map_err(|_| FormatError::Truncated)
    }
}

fn journal_area<D: Dev>(dev: &mut D, sb: &Superblock) -> Result<Vec<u8>, String> {
    let mut area = vec![0u8; (sb.journal_blocks * BLOCK_SIZE_U64) as usize];
    dev.read_at(sb.journal_start * BLOCK_SIZE_U64, &mut area)
        .map_err(|e| format!("reading the journal: {e}"))?;
    Ok(area)
}

/// Whether the journal holds a committed transaction recovery would replay.
pub fn pending<D: Dev>(dev: &mut D) -> Result<Option<u64>, String> {
    let (sb, _) = read_superblock(dev)?;
    if sb.incompat & INCOMPAT_JOURNAL == 0 {
        return Ok(None);
    }
    let area = journal_area(dev, &sb)?;
    Ok(journal_read(&area)
        .map_err(|e| format!("journal: {}", e.msg()))?
        .map(|tx| tx.seq))
}

/// Brings `dev` to the state the kernel's mount-time recovery produces:
/// replays a committed journal transaction, clears the journal header and
/// frees the inodes on the orphan list.
/// The image is modified in place (use [`Overlay`] to leave it alone).
pub fn recover<D: Dev>(dev: &mut D) -> Result<Recovered, String> {
    let (sb, used_backup) = read_superblock(dev)?;
    let mut out = Recovered {
        used_backup,
        ..Recovered::default()
    };
    if sb.incompat & INCOMPAT_JOURNAL == 0 {
        return Ok(out);
    }
    let area = journal_area(dev, &sb)?;
    let tx = journal_replay(&sb, &area, &mut Target(dev))
        .map_err(|e| format!("journal replay: {}", e.msg()))?;
    if let Some(tx) = tx {
        out.replayed = Some(tx.seq);
        out.log_bytes = u64::from(tx.len);
        dev.write_at(sb.journal_start * BLOCK_SIZE_U64, &[0u8; 8])
            .map_err(|e| format!("clearing the journal: {e}"))?;
    }
    if !used_backup {
        out.orphans = reclaim_orphans(dev)?;
    }
    dev.sync().map_err(|e| format!("sync: {e}"))?;
    Ok(out)
}

/// Frees every inode on the orphan list, as mount does: its data and
/// overflow blocks, its record and its inode number; then empties the list.
fn reclaim_orphans<D: Dev>(dev: &mut D) -> Result<u64, String> {
    let mut fs = Fs::open(&mut *dev).map_err(|e| format!("orphans: {e}"))?;
    let sb = fs.sb;
    let mut ino = sb.orphan_head;
    let mut n = 0u64;
    let bbm = sb.block_bitmap_start * BLOCK_SIZE_U64;
    let ibm = sb.inode_bitmap_start * BLOCK_SIZE_U64;
    while ino != 0 {
        if n >= sb.inode_count {
            return Err("orphan list loops".into());
        }
        let d = fs
            .read_inode(ino)
            .map_err(|e| format!("orphan inode {ino}: {e}"))?;
        let (exts, chain) = fs
            .extents(ino, &d)
            .map_err(|e| format!("orphan inode {ino}: {e}"))?;
        let mut t = Target(&mut fs.dev);
        let clear = |t: &mut Target<'_, &mut D>, base, first, count| {
            let r = Record::Bits {
                set: false,
                base,
                first,
                count,
            };
            journal_apply(t, &r).map_err(|e| format!("orphan inode {ino}: {}", e.msg()))
        };
        for e in &exts {
            clear(&mut t, bbm, e.physical, u64::from(e.len))?;
        }
        for &b in &chain {
            clear(&mut t, bbm, b, 1)?;
        }
        clear(&mut t, ibm, ino - 1, 1)?;
        let (blk, off) = inode_location(&sb, ino).map_err(|e| e.msg().to_string())?;
        fs.dev
            .write_at(blk * BLOCK_SIZE_U64 + off as u64, &[0u8; INODE_SIZE])
            .map_err(|e| format!("orphan inode {ino}: {e}"))?;
        ino = d.next_orphan;
        n += 1;
    }
    if n != 0 {
        fs.sb.orphan_head = 0;
        let mut buf = vec![0u8; SB_SIZE];
        fs.sb.encode(&mut buf).map_err(|e| e.msg().to_string())?;
        fs.dev
            .write_at(0, &buf)
            .map_err(|e| format!("superblock: {e}"))?;
    }
    Ok(n)
}

/// Whether recovery has anything to do: a committed journal transaction
/// or orphans on the list.
pub fn needed<D: Dev>(dev: &mut D) -> Result<bool, String> {
    if pending(dev)?.is_some() {
        return Ok(true);
    }
    let (sb, backup) = read_superblock(dev)?;
    Ok(!backup && sb.orphan_head != 0)
}

/// A copy-on-write view of a device: reads see the writes made through it,
/// the device underneath is never written (fsck -n on a journal that
/// needs replay, crash-state checks).
pub struct Overlay<'a, D: Dev> {
    dev: &'a mut D,
    blocks: BTreeMap<u64, Vec<u8>>,
}

impl<'a, D: Dev> Overlay<'a, D> {
    /// A view of `dev` with no changes yet.
    pub fn new(dev: &'a mut D) -> Self {
        Self {
            dev,
            blocks: BTreeMap::new(),
        }
    }
}

impl<D: Dev> Dev for Overlay<'_, D> {
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        self.dev.read_at(off, buf)?;
        let (first, end) = (
            off / BLOCK_SIZE_U64,
            (off + buf.len() as u64).div_ceil(BLOCK_SIZE_U64),
        );
        for (&b, data) in self.blocks.range(first..end) {
            let bs = b * BLOCK_SIZE_U64;
            let lo = bs.max(off);
            let hi = (bs + BLOCK_SIZE_U64).min(off + buf.len() as u64);
            buf[(lo - off) as usize..(hi - off) as usize]
                .copy_from_slice(&data[(lo - bs) as usize..(hi - bs) as usize]);
        }
        Ok(())
    }

    fn write_at(&mut self, off: u64, data: &[u8]) -> io::Result<()> {
        let mut pos = off;
        let end = off + data.len() as u64;
        while pos < end {
            let b = pos / BLOCK_SIZE_U64;
            let bs = b * BLOCK_SIZE_U64;
            if !self.blocks.contains_key(&b) {
                let mut blk = vec![0u8; BLOCK_SIZE_U64 as usize];
                self.dev.read_at(bs, &mut blk)?;
                self.blocks.insert(b, blk);
            }
            let hi = (bs + BLOCK_SIZE_U64).min(end);
            let blk = self.blocks.get_mut(&b).expect("inserted above");
            blk[(pos - bs) as usize..(hi - bs) as usize]
                .copy_from_slice(&data[(pos - off) as usize..(hi - off) as usize]);
            pos = hi;
        }
        Ok(())
    }

    fn size(&mut self) -> io::Result<u64> {
        self.dev.size()
    }
}
