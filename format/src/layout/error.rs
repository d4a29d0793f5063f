//! The error type of every decoder and checker in the format.

/// What is wrong with a piece of on-disk data, or why an operation on it
/// could not be done. Small and `Copy` so the kernel can return it cheaply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// A buffer is shorter than the structure it should hold.
    Truncated,
    /// The magic number does not match.
    BadMagic,
    /// The stored checksum does not match the contents.
    BadChecksum,
    /// The format version is not one this code understands.
    BadVersion,
    /// The block size field is not `BLOCK_SIZE`.
    BadBlockSize,
    /// The superblock carries incompatible features this code lacks.
    UnsupportedFeature,
    /// The device is smaller than `MIN_DEVICE_BYTES` or than the superblock says.
    DeviceTooSmall,
    /// A geometry field points outside the device.
    GeometryOutOfRange,
    /// Two metadata areas overlap, or are not in the required order.
    GeometryOverlap,
    /// A metadata area is too small for the counts it must hold.
    GeometryTooSmall,
    /// A free count exceeds its total.
    CountMismatch,
    /// The state field is neither clean nor dirty.
    BadState,
    /// The root inode number is not valid.
    BadRoot,
    /// An inode number is zero or past `inode_count`.
    BadInodeNumber,
    /// An inode's mode has no valid file type.
    BadMode,
    /// An inode's size is impossible for its type.
    BadSize,
    /// An extent has zero length, wraps around, or leaves the data area.
    ExtentOutOfRange,
    /// Two extents overlap or are not sorted by logical block.
    ExtentOverlap,
    /// An extent array has no room for one more extent.
    ExtentFull,
    /// An extent block's owner field names another inode.
    BadOwner,
    /// A count field exceeds its capacity.
    BadCount,
    /// A file name is empty, too long, `.`/`..`, or holds `/` or NUL.
    BadName,
    /// A directory entry has an invalid file type.
    BadFileType,
    /// A directory block has no free slot.
    DirFull,
    /// A directory already holds the name.
    Exists,
    /// A slot or bit index is past the end of its structure.
    OutOfRange,
    /// A transaction does not fit in the journal area.
    JournalFull,
    /// A committed journal transaction holds a malformed record.
    BadJournal,
}

impl FormatError {
    /// A short, human-readable description (printed by the kernel and tools).
    pub fn msg(&self) -> &'static str {
        match self {
            Self::Truncated => "buffer too short for the structure",
            Self::BadMagic => "bad magic number",
            Self::BadChecksum => "checksum mismatch",
            Self::BadVersion => "unsupported format version",
            Self::BadBlockSize => "unsupported block size",
            Self::UnsupportedFeature => "unsupported incompatible feature",
            Self::DeviceTooSmall => "device too small",
            Self::GeometryOutOfRange => "geometry field outside the device",
            Self::GeometryOverlap => "metadata areas overlap or are out of order",
            Self::GeometryTooSmall => "metadata area too small for its count",
            Self::CountMismatch => "free count larger than total",
            Self::BadState => "invalid filesystem state",
            Self::BadRoot => "invalid root inode number",
            Self::BadInodeNumber => "inode number out of range",
            Self::BadMode => "invalid inode mode",
            Self::BadSize => "invalid size for the inode type",
            Self::ExtentOutOfRange => "extent outside the data area or empty",
            Self::ExtentOverlap => "extents overlap or are unsorted",
            Self::ExtentFull => "no room for another extent",
            Self::BadOwner => "extent block belongs to another inode",
            Self::BadCount => "count field exceeds capacity",
            Self::BadName => "invalid file name",
            Self::BadFileType => "invalid directory entry file type",
            Self::DirFull => "directory block full",
            Self::Exists => "name already exists",
            Self::OutOfRange => "index out of range",
            Self::JournalFull => "transaction larger than the journal",
            Self::BadJournal => "malformed journal record",
        }
    }
}

impl core::fmt::Display for FormatError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.msg())
    }
}
