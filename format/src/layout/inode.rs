//! Inodes: 256-byte records in the inode table, numbered from 1.

use super::codec::{rd_i64, rd_u32, rd_u64, sub, wr_i64, wr_u32, wr_u64};
use super::{crc32c_update, Extent, FormatError, Superblock, BLOCK_SIZE, EXTENT_SIZE};

/// Size of one on-disk inode.
pub const INODE_SIZE: usize = 256;
/// Inodes per inode-table block.
pub const INODES_PER_BLOCK: u64 = (BLOCK_SIZE / INODE_SIZE) as u64;
/// Extents stored inside the inode; more go to overflow extent blocks.
pub const INLINE_EXTENTS: usize = 6;
/// Offset of the inode checksum: CRC-32C of the inode number (8 bytes LE)
/// followed by bytes `0..INODE_CRC_OFF`.
pub const INODE_CRC_OFF: usize = INODE_SIZE - 4;
/// Largest file size rdaxfs accepts (2^50 bytes, far below u64 block overflow).
pub const MAX_FILE_SIZE: u64 = 1 << 50;

/// File type mask of `mode`.
pub const S_IFMT: u32 = 0o170_000;
/// Socket.
pub const S_IFSOCK: u32 = 0o140_000;
/// Symbolic link.
pub const S_IFLNK: u32 = 0o120_000;
/// Regular file.
pub const S_IFREG: u32 = 0o100_000;
/// Block device.
pub const S_IFBLK: u32 = 0o060_000;
/// Directory.
pub const S_IFDIR: u32 = 0o040_000;
/// Character device.
pub const S_IFCHR: u32 = 0o020_000;
/// FIFO.
pub const S_IFIFO: u32 = 0o010_000;

/// Directory-entry type: unknown (never stored by rdaxfs).
pub const DT_UNKNOWN: u8 = 0;
/// Directory-entry type: FIFO.
pub const DT_FIFO: u8 = 1;
/// Directory-entry type: character device.
pub const DT_CHR: u8 = 2;
/// Directory-entry type: directory.
pub const DT_DIR: u8 = 4;
/// Directory-entry type: block device.
pub const DT_BLK: u8 = 6;
/// Directory-entry type: regular file.
pub const DT_REG: u8 = 8;
/// Directory-entry type: symbolic link.
pub const DT_LNK: u8 = 10;
/// Directory-entry type: socket.
pub const DT_SOCK: u8 = 12;

mod off {
    pub const MODE: usize = 0;
    pub const UID: usize = 4;
    pub const GID: usize = 8;
    pub const FLAGS: usize = 12;
    pub const SIZE: usize = 16;
    pub const NLINK: usize = 24;
    pub const GENERATION: usize = 28;
    pub const ATIME: usize = 32;
    pub const MTIME: usize = 40;
    pub const CTIME: usize = 48;
    pub const ATIME_NS: usize = 56;
    pub const MTIME_NS: usize = 60;
    pub const CTIME_NS: usize = 64;
    pub const EXTENT_COUNT: usize = 68;
    pub const BLOCKS: usize = 72;
    pub const NEXT_ORPHAN: usize = 80;
    pub const PARENT: usize = 88;
    pub const OVERFLOW: usize = 96;
    pub const EXTENTS: usize = 104;
    pub const RDEV: usize = 248;
}
const _: () = assert!(off::EXTENTS + INLINE_EXTENTS * EXTENT_SIZE == off::RDEV);
const _: () = assert!(off::RDEV + 4 == INODE_CRC_OFF);
const _: () = assert!(BLOCK_SIZE.is_multiple_of(INODE_SIZE));

/// A timestamp: seconds since the epoch plus nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Timespec {
    /// Seconds since 1970-01-01 UTC.
    pub sec: i64,
    /// Nanoseconds, `< 1_000_000_000`.
    pub nsec: u32,
}

/// A decoded inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Inode {
    /// Linux mode: `S_IF*` type bits and permission bits.
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Inode flags (none defined yet; must be 0).
    pub flags: u32,
    /// Size in bytes.
    pub size: u64,
    /// Hard-link count (directories: 2 + subdirectories).
    pub nlink: u32,
    /// Generation number for NFS-style handles.
    pub generation: u32,
    /// Last access time.
    pub atime: Timespec,
    /// Last modification time.
    pub mtime: Timespec,
    /// Last status-change time.
    pub ctime: Timespec,
    /// Total extents (inline plus overflow blocks).
    pub extent_count: u32,
    /// Blocks owned: data blocks plus overflow extent blocks.
    pub blocks: u64,
    /// Next inode on the orphan list (0 = end).
    pub next_orphan: u64,
    /// Parent directory (directories only; root's parent is root).
    pub parent: u64,
    /// First overflow extent block (0 = none).
    pub overflow: u64,
    /// Device number for character/block devices (Linux `new_encode_dev`).
    pub rdev: u32,
    /// The first `min(extent_count, INLINE_EXTENTS)` extents.
    pub extents: [Extent; INLINE_EXTENTS],
}

impl Inode {
    /// Decodes inode number `ino` from its 256-byte record, verifying the
    /// checksum. Semantic checks are in [`Inode::check`].
    pub fn decode(buf: &[u8], ino: u64) -> Result<Self, FormatError> {
        let body = sub(buf, 0, INODE_CRC_OFF)?;
        let crc = crc32c_update(crc32c_update(0, &ino.to_le_bytes()), body);
        if crc != rd_u32(buf, INODE_CRC_OFF)? {
            return Err(FormatError::BadChecksum);
        }
        let mut inode = Self::decode_fields(buf)?;
        for (i, e) in inode.extents.iter_mut().enumerate() {
            *e = Extent::decode(sub(buf, ext_off(i), ext_off(i + 1))?)?;
        }
        Ok(inode)
    }

    fn decode_fields(b: &[u8]) -> Result<Self, FormatError> {
        Ok(Self {
            mode: rd_u32(b, off::MODE)?,
            uid: rd_u32(b, off::UID)?,
            gid: rd_u32(b, off::GID)?,
            flags: rd_u32(b, off::FLAGS)?,
            size: rd_u64(b, off::SIZE)?,
            nlink: rd_u32(b, off::NLINK)?,
            generation: rd_u32(b, off::GENERATION)?,
            atime: rd_time(b, off::ATIME, off::ATIME_NS)?,
            mtime: rd_time(b, off::MTIME, off::MTIME_NS)?,
            ctime: rd_time(b, off::CTIME, off::CTIME_NS)?,
            extent_count: rd_u32(b, off::EXTENT_COUNT)?,
            blocks: rd_u64(b, off::BLOCKS)?,
            next_orphan: rd_u64(b, off::NEXT_ORPHAN)?,
            parent: rd_u64(b, off::PARENT)?,
            overflow: rd_u64(b, off::OVERFLOW)?,
            rdev: rd_u32(b, off::RDEV)?,
            extents: [Extent::default(); INLINE_EXTENTS],
        })
    }

    /// Encodes inode number `ino` into its 256-byte record with checksum.
    pub fn encode(&self, buf: &mut [u8], ino: u64) -> Result<(), FormatError> {
        let b = buf.get_mut(..INODE_SIZE).ok_or(FormatError::Truncated)?;
        self.encode_fields(b)?;
        for (i, e) in self.extents.iter().enumerate() {
            let s = b
                .get_mut(ext_off(i)..ext_off(i + 1))
                .ok_or(FormatError::Truncated)?;
            e.encode(s)?;
        }
        let body = sub(b, 0, INODE_CRC_OFF)?;
        let crc = crc32c_update(crc32c_update(0, &ino.to_le_bytes()), body);
        wr_u32(b, INODE_CRC_OFF, crc)
    }

    fn encode_fields(&self, b: &mut [u8]) -> Result<(), FormatError> {
        wr_u32(b, off::MODE, self.mode)?;
        wr_u32(b, off::UID, self.uid)?;
        wr_u32(b, off::GID, self.gid)?;
        wr_u32(b, off::FLAGS, self.flags)?;
        wr_u64(b, off::SIZE, self.size)?;
        wr_u32(b, off::NLINK, self.nlink)?;
        wr_u32(b, off::GENERATION, self.generation)?;
        wr_time(b, off::ATIME, off::ATIME_NS, self.atime)?;
        wr_time(b, off::MTIME, off::MTIME_NS, self.mtime)?;
        wr_time(b, off::CTIME, off::CTIME_NS, self.ctime)?;
        wr_u32(b, off::EXTENT_COUNT, self.extent_count)?;
        wr_u64(b, off::BLOCKS, self.blocks)?;
        wr_u64(b, off::NEXT_ORPHAN, self.next_orphan)?;
        wr_u64(b, off::PARENT, self.parent)?;
        wr_u64(b, off::OVERFLOW, self.overflow)?;
        wr_u32(b, off::RDEV, self.rdev)
    }

    /// The file type bits of `mode`.
    pub fn file_type(&self) -> u32 {
        self.mode & S_IFMT
    }

    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.file_type() == S_IFDIR
    }

    /// True for a regular file.
    pub fn is_reg(&self) -> bool {
        self.file_type() == S_IFREG
    }

    /// True for a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.file_type() == S_IFLNK
    }

    /// The inline extents actually in use.
    pub fn inline_extents(&self) -> &[Extent] {
        let n = (self.extent_count as usize).min(INLINE_EXTENTS);
        self.extents.get(..n).unwrap_or(&[])
    }

    /// Semantic checks: valid type, flags, nanoseconds, size for the type,
    /// and an overflow pointer exactly when extents exceed the inline ones.
    pub fn check(&self) -> Result<(), FormatError> {
        dt_from_mode(self.mode)?;
        if self.flags != 0 {
            return Err(FormatError::BadMode);
        }
        let ns_ok = |t: Timespec| t.nsec < 1_000_000_000;
        if !(ns_ok(self.atime) && ns_ok(self.mtime) && ns_ok(self.ctime)) {
            return Err(FormatError::BadSize);
        }
        self.check_size()?;
        let overflowing = self.extent_count as usize > INLINE_EXTENTS;
        if overflowing != (self.overflow != 0) {
            return Err(FormatError::BadCount);
        }
        Ok(())
    }

    fn check_size(&self) -> Result<(), FormatError> {
        let ok = match self.file_type() {
            S_IFDIR => self.size.is_multiple_of(BLOCK_SIZE as u64) && self.size <= MAX_FILE_SIZE,
            S_IFLNK => self.size > 0 && self.size < BLOCK_SIZE as u64,
            S_IFREG => self.size <= MAX_FILE_SIZE,
            _ => self.size == 0 && self.extent_count == 0,
        };
        if ok {
            Ok(())
        } else {
            Err(FormatError::BadSize)
        }
    }
}

fn ext_off(i: usize) -> usize {
    off::EXTENTS + i * EXTENT_SIZE
}

fn rd_time(b: &[u8], s: usize, ns: usize) -> Result<Timespec, FormatError> {
    Ok(Timespec {
        sec: rd_i64(b, s)?,
        nsec: rd_u32(b, ns)?,
    })
}

fn wr_time(b: &mut [u8], s: usize, ns: usize, t: Timespec) -> Result<(), FormatError> {
    wr_i64(b, s, t.sec)?;
    wr_u32(b, ns, t.nsec)
}

/// The `DT_*` directory-entry type for a mode, or `BadMode`.
pub fn dt_from_mode(mode: u32) -> Result<u8, FormatError> {
    match mode & S_IFMT {
        S_IFSOCK => Ok(DT_SOCK),
        S_IFLNK => Ok(DT_LNK),
        S_IFREG => Ok(DT_REG),
        S_IFBLK => Ok(DT_BLK),
        S_IFDIR => Ok(DT_DIR),
        S_IFCHR => Ok(DT_CHR),
        S_IFIFO => Ok(DT_FIFO),
        _ => Err(FormatError::BadMode),
    }
}

/// Where inode `ino` lives: (inode-table block, byte offset in that block).
pub fn inode_location(sb: &Superblock, ino: u64) -> Result<(u64, usize), FormatError> {
    if ino == 0 || ino > sb.inode_count {
        return Err(FormatError::BadInodeNumber);
    }
    let idx = ino - 1;
    let block = sb
        .inode_table_start
        .checked_add(idx / INODES_PER_BLOCK)
        .ok_or(FormatError::BadInodeNumber)?;
    let offset = (idx % INODES_PER_BLOCK) as usize * INODE_SIZE;
    Ok((block, offset))
}
