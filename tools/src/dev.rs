//! Byte-addressed devices: files (images or block devices) and memory.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Something that holds an rdaxfs image.
pub trait Dev {
    /// Reads exactly `buf.len()` bytes at `off`; fails past the end.
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes all of `buf` at `off`.
    fn write_at(&mut self, off: u64, buf: &[u8]) -> io::Result<()>;
    /// Size in bytes.
    fn size(&mut self) -> io::Result<u64>;
    /// Makes writes durable.
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An image file or block device.
pub struct FileDev {
    file: File,
    writable: bool,
}

impl FileDev {
    /// Opens `path`, read-only unless `writable`.
    pub fn open(path: &Path, writable: bool) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(writable).open(path)?;
        Ok(Self { file, writable })
    }

    /// Wraps an already open file.
    pub fn from_file(file: File, writable: bool) -> Self {
        Self { file, writable }
    }
}

impl Dev for FileDev {
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, off)
    }

    fn write_at(&mut self, off: u64, buf: &[u8]) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "device opened read-only",
            ));
        }
        self.file.write_all_at(buf, off)
    }

    fn size(&mut self) -> io::Result<u64> {
        // Works for regular files and block devices alike.
        self.file.seek(SeekFrom::End(0))
    }

    fn sync(&mut self) -> io::Result<()> {
        if self.writable {
            self.file.sync_all()?;
        }
        Ok(())
    }
}

/// An image held in memory (tests, fuzzing).
#[derive(Clone, Default)]
pub struct MemDev(pub Vec<u8>);

impl Dev for MemDev {
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(off).map_err(|_| eof())?;
        let end = start.checked_add(buf.len()).ok_or_else(eof)?;
        buf.copy_from_slice(self.0.get(start..end).ok_or_else(eof)?);
        Ok(())
    }

    fn write_at(&mut self, off: u64, buf: &[u8]) -> io::Result<()> {
        let start = usize::try_from(off).map_err(|_| eof())?;
        let end = start.checked_add(buf.len()).ok_or_else(eof)?;
        if end > self.0.len() {
            self.0.resize(end, 0);
        }
        self.0[start..end].copy_from_slice(buf);
        Ok(())
    }

    fn size(&mut self) -> io::Result<u64> {
        Ok(self.0.len() as u64)
    }
}

fn eof() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "read past end of device")
}

/// A sparse in-memory image: only written blocks take memory, the rest
/// reads as zero. Cheap to clone for tests and fuzzing of large images.
#[derive(Clone, Default)]
pub struct SparseDev {
    /// Written blocks by block number (4 KiB each).
    pub blocks: std::collections::BTreeMap<u64, Box<[u8; 4096]>>,
    /// Device size in bytes.
    pub size: u64,
}

impl SparseDev {
    /// An all-zero device of `size` bytes.
    pub fn new(size: u64) -> Self {
        Self {
            blocks: Default::default(),
            size,
        }
    }

    fn span(&self, off: u64, len: usize) -> io::Result<u64> {
        let end = off.checked_add(len as u64).ok_or_else(eof)?;
        if end > self.size {
            return Err(eof());
        }
        Ok(end)
    }
}

impl Dev for SparseDev {
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        self.span(off, buf.len())?;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = off + done as u64;
            let (blk, within) = (pos / 4096, (pos % 4096) as usize);
            let n = (4096 - within).min(buf.len() - done);
            match self.blocks.get(&blk) {
                Some(b) => buf[done..done + n].copy_from_slice(&b[within..within + n]),
                None => buf[done..done + n].fill(0),
            }
            done += n;
        }
        Ok(())
    }

    fn write_at(&mut self, off: u64, buf: &[u8]) -> io::Result<()> {
        self.span(off, buf.len())?;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = off + done as u64;
            let (blk, within) = (pos / 4096, (pos % 4096) as usize);
            let n = (4096 - within).min(buf.len() - done);
            let b = self
                .blocks
                .entry(blk)
                .or_insert_with(|| Box::new([0u8; 4096]));
            b[within..within + n].copy_from_slice(&buf[done..done + n]);
            done += n;
        }
        Ok(())
    }

    fn size(&mut self) -> io::Result<u64> {
        Ok(self.size)
    }
}

impl<T: Dev + ?Sized> Dev for &mut T {
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_at(off, buf)
    }

    fn write_at(&mut self, off: u64, buf: &[u8]) -> io::Result<()> {
        (**self).write_at(off, buf)
    }

    fn size(&mut self) -> io::Result<u64> {
        (**self).size()
    }

    fn sync(&mut self) -> io::Result<()> {
        (**self).sync()
    }
}
