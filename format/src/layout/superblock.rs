//! The superblock (block 0, backup copy in the last block of the device).

use super::codec::{rd_bytes, rd_i64, rd_u32, rd_u64, sub, wr_bytes, wr_i64, wr_u32, wr_u64};
use super::{crc32c, FormatError, BLOCK_SIZE, BLOCK_SIZE_U64, HUGE_BLOCKS, INODES_PER_BLOCK};

/// Superblock magic: "RDAX" read as a little-endian `u32`.
pub const SB_MAGIC: u32 = 0x5841_4452;
/// The on-disk format version written by this code.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of block 0 (and of the backup block) the superblock occupies.
pub const SB_SIZE: usize = 512;
/// Offset of the superblock checksum (CRC-32C of bytes `0..SB_CRC_OFF`).
pub const SB_CRC_OFF: usize = SB_SIZE - 4;
/// Smallest device mkfs accepts, in bytes (16 MiB).
pub const MIN_DEVICE_BYTES: u64 = 16 * 1024 * 1024;
/// Journal area reserved by mkfs, in blocks (1 MiB).
pub const DEFAULT_JOURNAL_BLOCKS: u64 = 256;
/// Default bytes of device per inode chosen by mkfs.
pub const DEFAULT_BYTES_PER_INODE: u64 = 16 * 1024;
/// Bits held by one bitmap block.
pub const BITS_PER_BLOCK: u64 = BLOCK_SIZE_U64 * 8;
/// Inode number of the root directory.
pub const ROOT_INO: u64 = 1;

/// Compat feature: a journal area is reserved (journal_start/journal_blocks).
pub const COMPAT_JOURNAL_AREA: u32 = 1 << 0;
/// Incompat feature: metadata changes go through the journal area, which
/// must be replayed before the filesystem is read (see `journal.rs`).
pub const INCOMPAT_JOURNAL: u32 = 1 << 0;
/// Incompat features this code understands.
pub const SUPPORTED_INCOMPAT: u32 = INCOMPAT_JOURNAL;
/// Read-only-compat features this code understands.
pub const SUPPORTED_RO_COMPAT: u32 = 0;

/// `state` value: cleanly unmounted.
pub const STATE_CLEAN: u32 = 1;
/// `state` value: mounted, or not cleanly unmounted.
pub const STATE_DIRTY: u32 = 2;

/// Superblock offsets; the checksum sits at `SB_CRC_OFF`.
mod off {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 4;
    pub const COMPAT: usize = 8;
    pub const INCOMPAT: usize = 12;
    pub const RO_COMPAT: usize = 16;
    pub const BLOCK_SIZE: usize = 20;
    pub const UUID: usize = 24;
    pub const LABEL: usize = 40;
    pub const BLOCK_COUNT: usize = 72;
    pub const INODE_COUNT: usize = 80;
    pub const FREE_BLOCKS: usize = 88;
    pub const FREE_INODES: usize = 96;
    pub const JOURNAL_START: usize = 104;
    pub const JOURNAL_BLOCKS: usize = 112;
    pub const IBM_START: usize = 120;
    pub const IBM_BLOCKS: usize = 128;
    pub const BBM_START: usize = 136;
    pub const BBM_BLOCKS: usize = 144;
    pub const ITABLE_START: usize = 152;
    pub const ITABLE_BLOCKS: usize = 160;
    pub const DATA_START: usize = 168;
    pub const ROOT_INO: usize = 176;
    pub const ORPHAN_HEAD: usize = 184;
    pub const STATE: usize = 192;
    pub const MOUNT_COUNT: usize = 196;
    pub const MKFS_TIME: usize = 200;
    pub const MOUNT_TIME: usize = 208;
    pub const WRITE_TIME: usize = 216;
    pub const END: usize = 224;
}
const _: () = assert!(off::END <= SB_CRC_OFF);
const _: () = assert!(SB_SIZE <= BLOCK_SIZE);

/// The decoded superblock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Superblock {
    /// Format version (`FORMAT_VERSION`).
    pub version: u32,
    /// Compatible feature flags (`COMPAT_*`).
    pub compat: u32,
    /// Incompatible feature flags (`INCOMPAT_*`): unknown ones refuse mount.
    pub incompat: u32,
    /// Read-only-compatible flags: unknown ones allow a read-only mount.
    pub ro_compat: u32,
    /// Filesystem UUID.
    pub uuid: [u8; 16],
    /// Volume label, NUL padded.
    pub label: [u8; 32],
    /// Blocks in the filesystem, including the backup superblock.
    pub block_count: u64,
    /// Inodes in the inode table (numbers `1..=inode_count`).
    pub inode_count: u64,
    /// Free data blocks (advisory at runtime, exact after unmount/fsck).
    pub free_blocks: u64,
    /// Free inodes (advisory at runtime, exact after unmount/fsck).
    pub free_inodes: u64,
    /// First block of the reserved journal area.
    pub journal_start: u64,
    /// Blocks in the reserved journal area.
    pub journal_blocks: u64,
    /// First block of the inode bitmap.
    pub inode_bitmap_start: u64,
    /// Blocks in the inode bitmap.
    pub inode_bitmap_blocks: u64,
    /// First block of the block bitmap.
    pub block_bitmap_start: u64,
    /// Blocks in the block bitmap.
    pub block_bitmap_blocks: u64,
    /// First block of the inode table.
    pub inode_table_start: u64,
    /// Blocks in the inode table.
    pub inode_table_blocks: u64,
    /// First data block (2 MiB aligned when made by mkfs).
    pub data_start: u64,
    /// Inode number of the root directory.
    pub root_ino: u64,
    /// First inode on the orphan list (0 = empty).
    pub orphan_head: u64,
    /// `STATE_CLEAN` or `STATE_DIRTY`.
    pub state: u32,
    /// Number of mounts since mkfs.
    pub mount_count: u32,
    /// mkfs time, seconds since the epoch.
    pub mkfs_time: i64,
    /// Last mount time, seconds since the epoch.
    pub mount_time: i64,
    /// Last superblock write time, seconds since the epoch.
    pub write_time: i64,
}

impl Superblock {
    /// Decodes and verifies magic, checksum, version and block size.
    /// Geometry is checked separately by [`Superblock::validate`].
    pub fn decode(buf: &[u8]) -> Result<Self, FormatError> {
        if rd_u32(buf, off::MAGIC)? != SB_MAGIC {
            return Err(FormatError::BadMagic);
        }
        if crc32c(sub(buf, 0, SB_CRC_OFF)?) != rd_u32(buf, SB_CRC_OFF)? {
            return Err(FormatError::BadChecksum);
        }
        let sb = Self::decode_fields(buf)?;
        if sb.version != FORMAT_VERSION {
            return Err(FormatError::BadVersion);
        }
        if rd_u32(buf, off::BLOCK_SIZE)? != BLOCK_SIZE as u32 {
            return Err(FormatError::BadBlockSize);
        }
        Ok(sb)
    }

    fn decode_fields(b: &[u8]) -> Result<Self, FormatError> {
        Ok(Self {
            version: rd_u32(b, off::VERSION)?,
            compat: rd_u32(b, off::COMPAT)?,
            incompat: rd_u32(b, off::INCOMPAT)?,
            ro_compat: rd_u32(b, off::RO_COMPAT)?,
            uuid: rd_bytes(b, off::UUID)?,
            label: rd_bytes(b, off::LABEL)?,
            block_count: rd_u64(b, off::BLOCK_COUNT)?,
            inode_count: rd_u64(b, off::INODE_COUNT)?,
            free_blocks: rd_u64(b, off::FREE_BLOCKS)?,
            free_inodes: rd_u64(b, off::FREE_INODES)?,
            journal_start: rd_u64(b, off::JOURNAL_START)?,
            journal_blocks: rd_u64(b, off::JOURNAL_BLOCKS)?,
            inode_bitmap_start: rd_u64(b, off::IBM_START)?,
            inode_bitmap_blocks: rd_u64(b, off::IBM_BLOCKS)?,
            block_bitmap_start: rd_u64(b, off::BBM_START)?,
            block_bitmap_blocks: rd_u64(b, off::BBM_BLOCKS)?,
            inode_table_start: rd_u64(b, off::ITABLE_START)?,
            inode_table_blocks: rd_u64(b, off::ITABLE_BLOCKS)?,
            data_start: rd_u64(b, off::DATA_START)?,
            root_ino: rd_u64(b, off::ROOT_INO)?,
            orphan_head: rd_u64(b, off::ORPHAN_HEAD)?,
            state: rd_u32(b, off::STATE)?,
            mount_count: rd_u32(b, off::MOUNT_COUNT)?,
            mkfs_time: rd_i64(b, off::MKFS_TIME)?,
            mount_time: rd_i64(b, off::MOUNT_TIME)?,
            write_time: rd_i64(b, off::WRITE_TIME)?,
        })
    }

    /// Encodes into the first `SB_SIZE` bytes of `buf` (zeroing the rest of
    /// those bytes) and stores the checksum.
    pub fn encode(&self, buf: &mut [u8]) -> Result<(), FormatError> {
        let b = buf.get_mut(..SB_SIZE).ok_or(FormatError::Truncated)?;
        b.fill(0);
        self.encode_ids(b)?;
        self.encode_geometry(b)?;
        self.encode_runtime(b)?;
        let crc = crc32c(sub(b, 0, SB_CRC_OFF)?);
        wr_u32(b, SB_CRC_OFF, crc)
    }

    fn encode_ids(&self, b: &mut [u8]) -> Result<(), FormatError> {
        wr_u32(b, off::MAGIC, SB_MAGIC)?;
        wr_u32(b, off::VERSION, self.version)?;
        wr_u32(b, off::COMPAT, self.compat)?;
        wr_u32(b, off::INCOMPAT, self.incompat)?;
        wr_u32(b, off::RO_COMPAT, self.ro_compat)?;
        wr_u32(b, off::BLOCK_SIZE, BLOCK_SIZE as u32)?;
        wr_bytes(b, off::UUID, self.uuid)?;
        wr_bytes(b, off::LABEL, self.label)
    }

    fn encode_geometry(&self, b: &mut [u8]) -> Result<(), FormatError> {
        wr_u64(b, off::BLOCK_COUNT, self.block_count)?;
        wr_u64(b, off::INODE_COUNT, self.inode_count)?;
        wr_u64(b, off::JOURNAL_START, self.journal_start)?;
        wr_u64(b, off::JOURNAL_BLOCKS, self.journal_blocks)?;
        wr_u64(b, off::IBM_START, self.inode_bitmap_start)?;
        wr_u64(b, off::IBM_BLOCKS, self.inode_bitmap_blocks)?;
        wr_u64(b, off::BBM_START, self.block_bitmap_start)?;
        wr_u64(b, off::BBM_BLOCKS, self.block_bitmap_blocks)?;
        wr_u64(b, off::ITABLE_START, self.inode_table_start)?;
        wr_u64(b, off::ITABLE_BLOCKS, self.inode_table_blocks)?;
        wr_u64(b, off::DATA_START, self.data_start)?;
        wr_u64(b, off::ROOT_INO, self.root_ino)
    }

    fn encode_runtime(&self, b: &mut [u8]) -> Result<(), FormatError> {
        wr_u64(b, off::FREE_BLOCKS, self.free_blocks)?;
        wr_u64(b, off::FREE_INODES, self.free_inodes)?;
        wr_u64(b, off::ORPHAN_HEAD, self.orphan_head)?;
        wr_u32(b, off::STATE, self.state)?;
        wr_u32(b, off::MOUNT_COUNT, self.mount_count)?;
        wr_i64(b, off::MKFS_TIME, self.mkfs_time)?;
        wr_i64(b, off::MOUNT_TIME, self.mount_time)?;
        wr_i64(b, off::WRITE_TIME, self.write_time)
    }

    /// Computes the layout mkfs writes for a device of `device_bytes`.
    /// `inode_count` of `None` picks one inode per `DEFAULT_BYTES_PER_INODE`.
    /// Free counts are set for an empty filesystem with only the root
    /// directory (one inode, one directory block).
    pub fn new_geometry(device_bytes: u64, inode_count: Option<u64>) -> Result<Self, FormatError> {
        if device_bytes < MIN_DEVICE_BYTES {
            return Err(FormatError::DeviceTooSmall);
        }
        let block_count = device_bytes / BLOCK_SIZE_U64;
        let inodes = match inode_count {
            Some(n) => n,
            None => device_bytes / DEFAULT_BYTES_PER_INODE,
        };
        let inodes = round_up(inodes.max(16), INODES_PER_BLOCK).ok_or(FormatError::BadCount)?;
        let mut sb = Self {
            version: FORMAT_VERSION,
            compat: COMPAT_JOURNAL_AREA,
            incompat: INCOMPAT_JOURNAL,
            block_count,
            inode_count: inodes,
            journal_start: 1,
            journal_blocks: DEFAULT_JOURNAL_BLOCKS,
            root_ino: ROOT_INO,
            state: STATE_CLEAN,
            ..Self::default()
        };
        sb.inode_bitmap_start = 1 + DEFAULT_JOURNAL_BLOCKS;
        sb.inode_bitmap_blocks = div_ceil(inodes, BITS_PER_BLOCK);
        sb.block_bitmap_start = sb.inode_bitmap_start + sb.inode_bitmap_blocks;
        sb.block_bitmap_blocks = div_ceil(block_count, BITS_PER_BLOCK);
        sb.inode_table_start = sb.block_bitmap_start + sb.block_bitmap_blocks;
        sb.inode_table_blocks = inodes / INODES_PER_BLOCK;
        let it_end = sb
            .inode_table_start
            .checked_add(sb.inode_table_blocks)
            .ok_or(FormatError::GeometryOutOfRange)?;
        sb.data_start = round_up(it_end, HUGE_BLOCKS).ok_or(FormatError::GeometryOutOfRange)?;
        // Data area must keep room for the root directory and some files.
        if sb.data_start.saturating_add(HUGE_BLOCKS) >= block_count {
            return Err(FormatError::DeviceTooSmall);
        }
        sb.free_blocks = sb.data_blocks().saturating_sub(1);
        sb.free_inodes = inodes - 1;
        Ok(sb)
    }

    /// Blocks in the data area: `data_start .. block_count - 1` (the last
    /// block holds the backup superblock).
    pub fn data_blocks(&self) -> u64 {
        self.block_count
            .saturating_sub(1)
            .saturating_sub(self.data_start)
    }

    /// First block past the data area (the backup superblock's block).
    pub fn data_end(&self) -> u64 {
        self.block_count.saturating_sub(1)
    }

    /// Block number of the backup superblock.
    pub fn backup_block(&self) -> u64 {
        self.block_count.saturating_sub(1)
    }

    /// Checks incompat features: `Err(UnsupportedFeature)` if any is unknown.
    /// Returns `true` if only a read-only mount is allowed.
    pub fn check_features(&self) -> Result<bool, FormatError> {
        if self.incompat & !SUPPORTED_INCOMPAT != 0 {
            return Err(FormatError::UnsupportedFeature);
        }
        Ok(self.ro_compat & !SUPPORTED_RO_COMPAT != 0)
    }

    /// Validates the geometry against a device of `device_bytes`: every
    /// area inside the device, in order and non-overlapping, exactly the
    /// size its count needs, and free counts not above totals.
    pub fn validate(&self, device_bytes: u64) -> Result<(), FormatError> {
        if self.block_count < MIN_DEVICE_BYTES / BLOCK_SIZE_U64 {
            return Err(FormatError::DeviceTooSmall);
        }
        if device_bytes / BLOCK_SIZE_U64 < self.block_count {
            return Err(FormatError::DeviceTooSmall);
        }
        self.validate_areas()?;
        self.validate_counts()
    }

    fn validate_areas(&self) -> Result<(), FormatError> {
        let areas = [
            (self.journal_start, self.journal_blocks),
            (self.inode_bitmap_start, self.inode_bitmap_blocks),
            (self.block_bitmap_start, self.block_bitmap_blocks),
            (self.inode_table_start, self.inode_table_blocks),
        ];
        let mut next = 1u64;
        for (start, len) in areas {
            let end = start
                .checked_add(len)
                .ok_or(FormatError::GeometryOutOfRange)?;
            if start < next {
                return Err(FormatError::GeometryOverlap);
            }
            if end > self.block_count {
                return Err(FormatError::GeometryOutOfRange);
            }
            next = end;
        }
        if self.data_start < next {
            return Err(FormatError::GeometryOverlap);
        }
        if self.data_start >= self.data_end() {
            return Err(FormatError::GeometryOutOfRange);
        }
        Ok(())
    }

    fn validate_counts(&self) -> Result<(), FormatError> {
        if self.inode_count == 0 || !self.inode_count.is_multiple_of(INODES_PER_BLOCK) {
            return Err(FormatError::BadCount);
        }
        let it_need = self.inode_count / INODES_PER_BLOCK;
        let ibm_need = div_ceil(self.inode_count, BITS_PER_BLOCK);
        let bbm_need = div_ceil(self.block_count, BITS_PER_BLOCK);
        if self.inode_table_blocks != it_need
            || self.inode_bitmap_blocks != ibm_need
            || self.block_bitmap_blocks != bbm_need
        {
            return Err(FormatError::GeometryTooSmall);
        }
        if self.root_ino == 0 || self.root_ino > self.inode_count {
            return Err(FormatError::BadRoot);
        }
        if self.orphan_head > self.inode_count {
            return Err(FormatError::BadInodeNumber);
        }
        if self.state != STATE_CLEAN && self.state != STATE_DIRTY {
            return Err(FormatError::BadState);
        }
        if self.free_blocks > self.data_blocks() || self.free_inodes > self.inode_count {
            return Err(FormatError::CountMismatch);
        }
        Ok(())
    }

    /// The label as bytes, up to the first NUL.
    pub fn label_bytes(&self) -> &[u8] {
        let n = self
            .label
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(self.label.len());
        self.label.get(..n).unwrap_or(&[])
    }
}

/// `ceil(a / b)` for `b > 0`; returns 0 when `b == 0`.
pub fn div_ceil(a: u64, b: u64) -> u64 {
    match (a.checked_div(b), a.checked_rem(b)) {
        (Some(q), Some(r)) => q + u64::from(r != 0),
        _ => 0,
    }
}

/// Rounds `a` up to a multiple of `m` (`m > 0`); `None` on overflow.
pub fn round_up(a: u64, m: u64) -> Option<u64> {
    let r = a.checked_rem(m)?;
    if r == 0 {
        Some(a)
    } else {
        a.checked_add(m - r)
    }
}
