//! Reading and writing a formatted image: blocks, inodes, extents,
//! directories, files and paths.

use std::fmt;
use std::io;

use crate::dev::Dev;
use crate::format::*;

/// Errors of the tools library.
#[derive(Debug)]
pub enum Error {
    /// I/O on the device failed.
    Io(io::Error),
    /// On-disk data failed a format check.
    Format(FormatError),
    /// Anything else, with a message.
    Msg(String),
}

/// Result alias of the tools library.
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Format(e) => write!(f, "{}", e.msg()),
            Error::Msg(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<FormatError> for Error {
    fn from(e: FormatError) -> Self {
        Error::Format(e)
    }
}

/// Builds an `Error::Msg`.
pub fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Msg(msg.into()))
}

/// A block-sized buffer.
pub type Block = Box<[u8; BLOCK_SIZE]>;

/// A fresh zeroed block buffer.
pub fn zero_block() -> Block {
    Box::new([0u8; BLOCK_SIZE])
}

/// A mounted-in-userspace image: the device and its superblock.
pub struct Fs<D: Dev> {
    /// The device.
    pub dev: D,
    /// The (primary) superblock in use.
    pub sb: Superblock,
}

/// One directory entry, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEnt {
    /// Name bytes.
    pub name: Vec<u8>,
    /// Target inode.
    pub ino: u64,
    /// `DT_*` type.
    pub file_type: u8,
}

impl<D: Dev> Fs<D> {
    /// Opens an image: decodes and validates the primary superblock.
    pub fn open(mut dev: D) -> Result<Self> {
        let mut b = zero_block();
        dev.read_at(0, &mut b[..])?;
        let sb = Superblock::decode(&b[..])?;
        sb.validate(dev.size()?)?;
        sb.check_features()?;
        Ok(Self { dev, sb })
    }

    /// Reads block `n` into `buf`.
    pub fn read_block_into(&mut self, n: u64, buf: &mut [u8]) -> Result<()> {
        if n >= self.sb.block_count {
            return err(format!("block {n} past end of filesystem"));
        }
        self.dev
            .read_at(n * BLOCK_SIZE_U64, &mut buf[..BLOCK_SIZE])?;
        Ok(())
    }

    /// Reads block `n`.
    pub fn read_block(&mut self, n: u64) -> Result<Block> {
        let mut b = zero_block();
        self.read_block_into(n, &mut b[..])?;
        Ok(b)
    }

    /// Writes block `n`.
    pub fn write_block(&mut self, n: u64, buf: &[u8]) -> Result<()> {
        if n >= self.sb.block_count {
            return err(format!("block {n} past end of filesystem"));
        }
        self.dev.write_at(n * BLOCK_SIZE_U64, &buf[..BLOCK_SIZE])?;
        Ok(())
    }

    /// Reads `blocks` consecutive blocks from `start` (a bitmap).
    pub fn read_area(&mut self, start: u64, blocks: u64) -> Result<Vec<u8>> {
        let mut v = vec![0u8; (blocks as usize) * BLOCK_SIZE];
        self.dev.read_at(start * BLOCK_SIZE_U64, &mut v)?;
        Ok(v)
    }

    /// Writes a multi-block area at `start`.
    pub fn write_area(&mut self, start: u64, data: &[u8]) -> Result<()> {
        self.dev.write_at(start * BLOCK_SIZE_U64, data)?;
        Ok(())
    }

    /// Writes the superblock to block 0 and to the backup block.
    pub fn write_superblocks(&mut self) -> Result<()> {
        let mut b = zero_block();
        self.sb.encode(&mut b[..])?;
        self.write_block(0, &b[..])?;
        let backup = self.sb.backup_block();
        self.write_block(backup, &b[..])
    }

    /// Reads and decodes inode `ino` (checksum verified).
    pub fn read_inode(&mut self, ino: u64) -> Result<Inode> {
        let (blk, off) = inode_location(&self.sb, ino)?;
        let mut b = [0u8; INODE_SIZE];
        self.dev
            .read_at(blk * BLOCK_SIZE_U64 + off as u64, &mut b)?;
        Ok(Inode::decode(&b, ino)?)
    }

    /// Encodes and writes inode `ino`.
    pub fn write_inode(&mut self, ino: u64, inode: &Inode) -> Result<()> {
        let (blk, off) = inode_location(&self.sb, ino)?;
        let mut b = [0u8; INODE_SIZE];
        inode.encode(&mut b, ino)?;
        self.dev.write_at(blk * BLOCK_SIZE_U64 + off as u64, &b)?;
        Ok(())
    }

    /// All extents of an inode (inline, then the overflow chain), plus the
    /// overflow blocks visited. Fails on a malformed chain.
    pub fn extents(&mut self, ino: u64, inode: &Inode) -> Result<(Vec<Extent>, Vec<u64>)> {
        let mut exts = inode.inline_extents().to_vec();
        let mut chain = Vec::new();
        let total = inode.extent_count as usize;
        let mut next = inode.overflow;
        while exts.len() < total {
            if next == 0 || chain.len() > total || chain.contains(&next) {
                return err(format!("inode {ino}: extent chain broken"));
            }
            if next < self.sb.data_start || next >= self.sb.data_end() {
                return err(format!("inode {ino}: extent block {next} out of range"));
            }
            let b = self.read_block(next)?;
            let hdr = ExtentBlockHeader::decode(&b[..], ino)?;
            chain.push(next);
            for i in 0..hdr.count as usize {
                exts.push(extent_block_entry(&b[..], i)?);
            }
            next = hdr.next;
        }
        if exts.len() != total || next != 0 {
            return err(format!("inode {ino}: extent count mismatch"));
        }
        Ok((exts, chain))
    }

    /// The whole contents of a regular file or symlink (holes read as zero).
    pub fn read_file(&mut self, ino: u64) -> Result<Vec<u8>> {
        let inode = self.read_inode(ino)?;
        let (exts, _) = self.extents(ino, &inode)?;
        let size = usize::try_from(inode.size).map_err(|_| Error::Msg("file too big".into()))?;
        let mut out = vec![0u8; size];
        for e in exts {
            let start = e.logical * BLOCK_SIZE_U64;
            if start >= inode.size {
                continue;
            }
            let end = (e
                .logical_end()
                .unwrap_or(u64::MAX)
                .saturating_mul(BLOCK_SIZE_U64))
            .min(inode.size);
            let dst = &mut out[start as usize..end as usize];
            self.dev.read_at(e.physical * BLOCK_SIZE_U64, dst)?;
        }
        Ok(out)
    }

    /// The physical blocks of a directory, in logical order.
    pub fn dir_blocks(&mut self, ino: u64, inode: &Inode) -> Result<Vec<u64>> {
        let (exts, _) = self.extents(ino, inode)?;
        let mut v = Vec::new();
        for e in exts {
            v.extend((0..u64::from(e.len)).map(|i| e.physical + i));
        }
        Ok(v)
    }

    /// Lists a directory (without `.` and `..`).
    pub fn read_dir(&mut self, ino: u64) -> Result<Vec<DirEnt>> {
        let inode = self.read_inode(ino)?;
        if !inode.is_dir() {
            return err(format!("inode {ino} is not a directory"));
        }
        let mut out = Vec::new();
        for blk in self.dir_blocks(ino, &inode)? {
            let b = self.read_block(blk)?;
            dir_check(&b[..])?;
            for (_, e) in dir_iter(&b[..], 0) {
                out.push(DirEnt {
                    name: e.name.to_vec(),
                    ino: e.ino,
                    file_type: e.file_type,
                });
            }
        }
        Ok(out)
    }

    /// Looks `name` up in directory `dir`.
    pub fn lookup(&mut self, dir: u64, name: &[u8]) -> Result<Option<u64>> {
        let inode = self.read_inode(dir)?;
        for blk in self.dir_blocks(dir, &inode)? {
            let b = self.read_block(blk)?;
            if let Some(slot) = dir_find(&b[..], name) {
                if let Ok(Some(e)) = dir_entry(&b[..], slot) {
                    return Ok(Some(e.ino));
                }
            }
        }
        Ok(None)
    }

    /// Resolves an absolute or root-relative path (no symlink following).
    pub fn resolve(&mut self, path: &str) -> Result<u64> {
        let mut ino = self.sb.root_ino;
        for comp in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
            if comp == ".." {
                ino = self.read_inode(ino)?.parent;
                continue;
            }
            ino = match self.lookup(ino, comp.as_bytes())? {
                Some(i) => i,
                None => return err(format!("{path}: no such file or directory")),
            };
        }
        Ok(ino)
    }

    /// Reads the inode bitmap.
    pub fn read_inode_bitmap(&mut self) -> Result<Vec<u8>> {
        self.read_area(self.sb.inode_bitmap_start, self.sb.inode_bitmap_blocks)
    }

    /// Reads the block bitmap.
    pub fn read_block_bitmap(&mut self) -> Result<Vec<u8>> {
        self.read_area(self.sb.block_bitmap_start, self.sb.block_bitmap_blocks)
    }
}
