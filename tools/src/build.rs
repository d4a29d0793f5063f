//! Building a filesystem in userspace: what mkfs (and tests that need
//! particular layouts) use. Keeps both bitmaps in memory and writes them,
//! with the superblocks, in [`Builder::finish`].

use std::collections::HashMap;
use std::io::Read;

use crate::dev::Dev;
use crate::format::*;
use crate::fs::{err, zero_block, Fs, Result};

/// Ownership and times for a new inode.
#[derive(Clone, Copy, Debug, Default)]
pub struct Meta {
    /// Permission bits (file type bits are added by the builder).
    pub perm: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Access time.
    pub atime: Timespec,
    /// Modification time.
    pub mtime: Timespec,
    /// Change time.
    pub ctime: Timespec,
}

/// A filesystem under construction.
pub struct Builder<D: Dev> {
    /// The image being written.
    pub fs: Fs<D>,
    /// Inode bitmap (bit i = inode i + 1).
    pub ibm: Vec<u8>,
    /// Block bitmap (bit b = block b).
    pub bbm: Vec<u8>,
    inode_hint: u64,
    block_hint: u64,
    dir_last_block: HashMap<u64, u64>,
}

impl<D: Dev> Builder<D> {
    /// Lays out a new filesystem on `dev` (using `sb` from
    /// [`Superblock::new_geometry`]) and creates the root directory.
    /// Only metadata is written; data blocks are left as they are.
    pub fn format(dev: D, sb: Superblock, root: Meta) -> Result<Self> {
        let mut ibm = vec![0u8; (sb.inode_bitmap_blocks as usize) * BLOCK_SIZE];
        let mut bbm = vec![0u8; (sb.block_bitmap_blocks as usize) * BLOCK_SIZE];
        bits_set_range(&mut bbm, 0, sb.data_start)?;
        bit_set(&mut bbm, sb.backup_block())?;
        bit_set(&mut ibm, sb.root_ino - 1)?;
        let mut b = Self {
            fs: Fs { dev, sb },
            ibm,
            bbm,
            inode_hint: 0,
            block_hint: sb.data_start,
            dir_last_block: HashMap::new(),
        };
        // An empty journal: no committed transaction to replay.
        b.fs.write_block(sb.journal_start, &zero_block()[..])?;
        let root_ino = sb.root_ino;
        let mut inode = new_inode(S_IFDIR | (root.perm & 0o7777), root);
        inode.nlink = 2;
        inode.parent = root_ino;
        b.fs.write_inode(root_ino, &inode)?;
        b.add_dir_block(root_ino)?;
        Ok(b)
    }

    /// Allocates an inode number.
    pub fn alloc_inode(&mut self) -> Result<u64> {
        let n = self.fs.sb.inode_count;
        let Some(bit) = find_free(&self.ibm, 0, n, self.inode_hint) else {
            return err("out of inodes");
        };
        bit_set(&mut self.ibm, bit)?;
        self.inode_hint = bit + 1;
        Ok(bit + 1)
    }

    /// Allocates up to `want` blocks by the format's policy and marks them.
    pub fn alloc_blocks(&mut self, want: u64, hint: u64, large_file: bool) -> Result<(u64, u64)> {
        self.alloc_file_blocks(want, hint, large_file, None)
    }

    /// As [`Builder::alloc_blocks`], for blocks a file maps at its logical
    /// block `logical` (`Some`): the kernel's policy for file data
    /// (`choose_file_blocks`), so mkfs -d lays files out as rdaxfs would.
    pub fn alloc_file_blocks(
        &mut self,
        want: u64,
        hint: u64,
        large_file: bool,
        logical: Option<u64>,
    ) -> Result<(u64, u64)> {
        let (lo, hi) = (self.fs.sb.data_start, self.fs.sb.data_end());
        let req = AllocRequest {
            want,
            hint: if hint == 0 { self.block_hint } else { hint },
            large_file,
        };
        let got = match logical {
            Some(l) => choose_file_blocks(&self.bbm, lo, hi, req, l),
            None => choose_blocks(&self.bbm, lo, hi, req),
        };
        let Some((s, n)) = got else {
            return err("out of space");
        };
        bits_set_range(&mut self.bbm, s, n)?;
        if !large_file && want < HUGE_BLOCKS {
            self.block_hint = s + n;
        }
        Ok((s, n))
    }

    /// Stores `exts` as the extent list of `inode` (inline plus a new
    /// overflow chain) and writes the inode. `inode.blocks` becomes the
    /// data blocks plus the overflow blocks.
    pub fn set_extents(&mut self, ino: u64, inode: &mut Inode, exts: &[Extent]) -> Result<()> {
        let data: u64 = exts.iter().map(|e| u64::from(e.len)).sum();
        inode.extents = [Extent::default(); INLINE_EXTENTS];
        let ninline = exts.len().min(INLINE_EXTENTS);
        inode.extents[..ninline].copy_from_slice(&exts[..ninline]);
        inode.extent_count = exts.len() as u32;
        let rest = &exts[ninline..];
        let chunks: Vec<&[Extent]> = rest.chunks(EXTENT_BLOCK_CAPACITY).collect();
        let mut blocks = Vec::with_capacity(chunks.len());
        for _ in &chunks {
            blocks.push(self.alloc_blocks(1, 0, false)?.0);
        }
        for (i, chunk) in chunks.iter().enumerate() {
            let next = blocks.get(i + 1).copied().unwrap_or(0);
            let mut b = zero_block();
            extent_block_encode(&mut b[..], next, ino, chunk)?;
            self.fs.write_block(blocks[i], &b[..])?;
        }
        inode.overflow = blocks.first().copied().unwrap_or(0);
        inode.blocks = data + blocks.len() as u64;
        self.fs.write_inode(ino, inode)
    }

    /// Writes `size` bytes from `r` as the contents of a new file inode.
    pub fn write_data(
        &mut self,
        ino: u64,
        inode: &mut Inode,
        r: &mut dyn Read,
        size: u64,
    ) -> Result<()> {
        let nblocks = size.div_ceil(BLOCK_SIZE_U64);
        let mut exts: Vec<Extent> = Vec::new();
        let mut done = 0u64;
        let mut buf = vec![0u8; 256 * BLOCK_SIZE];
        while done < nblocks {
            let hint = exts.last().and_then(|e| e.physical_end()).unwrap_or(0);
            let (start, n) = self.alloc_file_blocks(
                (nblocks - done).min(u64::from(u32::MAX)),
                hint,
                done >= HUGE_BLOCKS,
                Some(done),
            )?;
            self.copy_run(r, &mut buf, start, n, size - done * BLOCK_SIZE_U64)?;
            let e = Extent {
                logical: done,
                physical: start,
                len: n as u32,
            };
            let len = exts.len();
            exts.push(Extent::default());
            let new_len = extents_insert(&mut exts, len, e)?;
            exts.truncate(new_len);
            done += n;
        }
        inode.size = size;
        self.set_extents(ino, inode, &exts)
    }

    fn copy_run(
        &mut self,
        r: &mut dyn Read,
        buf: &mut [u8],
        start: u64,
        n: u64,
        left: u64,
    ) -> Result<()> {
        let mut off = 0u64;
        let bytes = (n * BLOCK_SIZE_U64).min(left);
        while off < bytes {
            let chunk = (bytes - off).min(buf.len() as u64) as usize;
            let rounded = chunk.div_ceil(BLOCK_SIZE) * BLOCK_SIZE;
            buf[..rounded].fill(0);
            r.read_exact(&mut buf[..chunk])?;
            self.fs
                .dev
                .write_at(start * BLOCK_SIZE_U64 + off, &buf[..rounded])?;
            off += chunk as u64;
        }
        Ok(())
    }

    /// Appends an empty directory block to directory `dir`.
    fn add_dir_block(&mut self, dir: u64) -> Result<u64> {
        let mut inode = self.fs.read_inode(dir)?;
        let (mut exts, _) = self.fs.extents(dir, &inode)?;
        let lblk = inode.size / BLOCK_SIZE_U64;
        let hint = exts.last().and_then(|e| e.physical_end()).unwrap_or(0);
        let (blk, _) = self.alloc_blocks(1, hint, false)?;
        let mut b = zero_block();
        dir_init(&mut b[..])?;
        self.fs.write_block(blk, &b[..])?;
        let len = exts.len();
        exts.push(Extent::default());
        let e = Extent {
            logical: lblk,
            physical: blk,
            len: 1,
        };
        let new_len = extents_insert(&mut exts, len, e)?;
        exts.truncate(new_len);
        inode.size += BLOCK_SIZE_U64;
        // Free the old overflow chain; set_extents writes a new one.
        let (_, chain) = self.fs.extents(dir, &inode)?;
        for c in chain {
            bit_clear(&mut self.bbm, c)?;
        }
        self.set_extents(dir, &mut inode, &exts)?;
        self.dir_last_block.insert(dir, blk);
        Ok(blk)
    }

    /// Adds entry `name -> ino` to directory `dir` (no duplicate check).
    pub fn add_entry(&mut self, dir: u64, name: &[u8], ino: u64, file_type: u8) -> Result<()> {
        validate_name(name)?;
        let blk = match self.dir_last_block.get(&dir) {
            Some(&b) => b,
            None => {
                let inode = self.fs.read_inode(dir)?;
                match self.fs.dir_blocks(dir, &inode)?.last() {
                    Some(&b) => b,
                    None => self.add_dir_block(dir)?,
                }
            }
        };
        let mut b = self.fs.read_block(blk)?;
        let blk = if dir_count_used(&b[..]) >= DIR_SLOTS {
            let nb = self.add_dir_block(dir)?;
            b = self.fs.read_block(nb)?;
            nb
        } else {
            blk
        };
        dir_insert(&mut b[..], ino, name, file_type)?;
        self.fs.write_block(blk, &b[..])
    }

    /// Creates a directory `name` in `parent`.
    pub fn mkdir(&mut self, parent: u64, name: &[u8], meta: Meta) -> Result<u64> {
        let ino = self.alloc_inode()?;
        let mut inode = new_inode(S_IFDIR | (meta.perm & 0o7777), meta);
        inode.nlink = 2;
        inode.parent = parent;
        self.fs.write_inode(ino, &inode)?;
        self.add_dir_block(ino)?;
        self.add_entry(parent, name, ino, DT_DIR)?;
        let mut p = self.fs.read_inode(parent)?;
        p.nlink += 1;
        self.fs.write_inode(parent, &p)?;
        Ok(ino)
    }

    /// Creates a regular file `name` in `parent` with `size` bytes from `r`.
    pub fn create_file(
        &mut self,
        parent: u64,
        name: &[u8],
        meta: Meta,
        r: &mut dyn Read,
        size: u64,
    ) -> Result<u64> {
        let ino = self.alloc_inode()?;
        let mut inode = new_inode(S_IFREG | (meta.perm & 0o7777), meta);
        inode.nlink = 1;
        self.write_data(ino, &mut inode, r, size)?;
        self.add_entry(parent, name, ino, DT_REG)?;
        Ok(ino)
    }

    /// Creates a symlink `name -> target` in `parent` (target in one block).
    pub fn symlink(&mut self, parent: u64, name: &[u8], target: &[u8], meta: Meta) -> Result<u64> {
        if target.is_empty() || target.len() >= BLOCK_SIZE {
            return err("symlink target must be 1..4095 bytes");
        }
        let ino = self.alloc_inode()?;
        let mut inode = new_inode(S_IFLNK | 0o777, meta);
        inode.nlink = 1;
        self.write_data(ino, &mut inode, &mut &target[..], target.len() as u64)?;
        self.add_entry(parent, name, ino, DT_LNK)?;
        Ok(ino)
    }

    /// Creates a device node, FIFO or socket (`mode` includes the type).
    pub fn mknod(
        &mut self,
        parent: u64,
        name: &[u8],
        mode: u32,
        rdev: u32,
        meta: Meta,
    ) -> Result<u64> {
        let ft = dt_from_mode(mode)?;
        if ft == DT_DIR || ft == DT_REG || ft == DT_LNK {
            return err("mknod: not a special file type");
        }
        let ino = self.alloc_inode()?;
        let mut inode = new_inode(mode, meta);
        inode.nlink = 1;
        inode.rdev = rdev;
        self.fs.write_inode(ino, &inode)?;
        self.add_entry(parent, name, ino, ft)?;
        Ok(ino)
    }

    /// Adds a hard link `name -> ino` in `parent` and bumps the link count.
    pub fn link(&mut self, parent: u64, name: &[u8], ino: u64) -> Result<()> {
        let mut inode = self.fs.read_inode(ino)?;
        if inode.is_dir() {
            return err("cannot hard-link a directory");
        }
        self.add_entry(parent, name, ino, dt_from_mode(inode.mode)?)?;
        inode.nlink += 1;
        self.fs.write_inode(ino, &inode)
    }

    /// Writes bitmaps, exact free counts and both superblocks; returns the
    /// finished image.
    pub fn finish(mut self) -> Result<Fs<D>> {
        let sb = &mut self.fs.sb;
        let used_data = bits_count(&self.bbm, sb.data_start, sb.data_end());
        sb.free_blocks = sb.data_blocks() - used_data;
        sb.free_inodes = sb.inode_count - bits_count(&self.ibm, 0, sb.inode_count);
        sb.state = STATE_CLEAN;
        let (is, bs) = (sb.inode_bitmap_start, sb.block_bitmap_start);
        self.fs.write_area(is, &self.ibm)?;
        self.fs.write_area(bs, &self.bbm)?;
        self.fs.write_superblocks()?;
        self.fs.dev.sync()?;
        Ok(self.fs)
    }
}

/// A fresh inode with `mode` and the ownership and times of `meta`.
pub fn new_inode(mode: u32, meta: Meta) -> Inode {
    Inode {
        mode,
        uid: meta.uid,
        gid: meta.gid,
        atime: meta.atime,
        mtime: meta.mtime,
        ctime: meta.ctime,
        ..Inode::default()
    }
}
