//! mkfs.rdaxfs: option parsing helpers, target checks and `-d` population.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::build::{Builder, Meta};
use crate::dev::{Dev, FileDev};
use crate::format::*;
use crate::fs::{err, Error, Fs, Result};

/// What mkfs should do.
#[derive(Clone, Debug, Default)]
pub struct MkfsOptions {
    /// Size for a regular image file (created or extended sparse).
    pub size: Option<u64>,
    /// Volume label (up to 32 bytes).
    pub label: String,
    /// Inode count (default: one per 16 KiB).
    pub inodes: Option<u64>,
    /// Host directory to copy in.
    pub populate: Option<std::path::PathBuf>,
    /// Overwrite an existing filesystem or non-zero first block.
    pub force: bool,
}

/// Parses `123`, `64K`, `16M`, `2G`, `1T` (binary multiples).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1u64 << 10),
        'm' | 'M' => (&s[..s.len() - 1], 1 << 20),
        'g' | 'G' => (&s[..s.len() - 1], 1 << 30),
        't' | 'T' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// Why the first block of a target must not be overwritten, if it must not.
pub fn existing_content(first: &[u8]) -> Option<&'static str> {
    if Superblock::decode(first).is_ok() || first.get(..4) == Some(&SB_MAGIC.to_le_bytes()[..]) {
        return Some("an rdaxfs filesystem");
    }
    if first.get(1080..1082) == Some(&[0x53, 0xEF][..]) {
        return Some("an ext2/3/4 filesystem");
    }
    if first.iter().any(|&b| b != 0) {
        return Some("non-zero data in its first 4 KiB");
    }
    None
}

/// What an existing target holds that mkfs would destroy, if anything:
/// `None` for a missing or empty file, or a first block of zeros.
pub fn existing_on(path: &Path) -> Result<Option<&'static str>> {
    if fs::metadata(path).is_err() {
        return Ok(None);
    }
    let mut dev = FileDev::from_file(OpenOptions::new().read(true).open(path)?, false);
    let cur = dev.size()?;
    if cur == 0 {
        return Ok(None);
    }
    let mut first = vec![0u8; BLOCK_SIZE.min(cur as usize)];
    dev.read_at(0, &mut first)?;
    Ok(existing_content(&first))
}

/// Opens (creating or sizing a regular file as asked) the target.
pub fn open_target(path: &Path, opts: &MkfsOptions) -> Result<FileDev> {
    let meta = fs::metadata(path).ok();
    let is_blk = meta
        .as_ref()
        .is_some_and(|m| m.file_type().is_block_device());
    let file: File = OpenOptions::new()
        .read(true)
        .write(true)
        .create(!is_blk && opts.size.is_some())
        .truncate(false)
        .open(path)?;
    let mut dev = FileDev::from_file(file.try_clone()?, true);
    let cur = dev.size()?;
    if !opts.force && cur > 0 {
        let mut first = vec![0u8; BLOCK_SIZE.min(cur as usize)];
        dev.read_at(0, &mut first)?;
        if let Some(what) = existing_content(&first) {
            return err(format!(
                "{} contains {what}; use --force to overwrite",
                path.display()
            ));
        }
    }
    if let Some(size) = opts.size {
        if is_blk {
            if size > cur {
                return err("--size is larger than the block device");
            }
        } else if size != cur {
            file.set_len(size)?;
        }
    }
    Ok(dev)
}

/// Formats `dev` (whole device, or `opts.size` bytes of it) and populates it.
pub fn mkfs<D: Dev>(mut dev: D, opts: &MkfsOptions, now: i64) -> Result<Fs<D>> {
    let bytes = match opts.size {
        Some(s) => s.min(dev.size()?),
        None => dev.size()?,
    };
    if bytes < MIN_DEVICE_BYTES {
        return err(format!(
            "device is {bytes} bytes; rdaxfs needs at least {MIN_DEVICE_BYTES} bytes (16 MiB)"
        ));
    }
    let mut sb = Superblock::new_geometry(bytes, opts.inodes)?;
    if opts.label.len() > sb.label.len() {
        return err("label longer than 32 bytes");
    }
    sb.label[..opts.label.len()].copy_from_slice(opts.label.as_bytes());
    sb.uuid = make_uuid(now);
    sb.mkfs_time = now;
    sb.write_time = now;
    // A stale primary superblock must not survive a failed mkfs half way.
    dev.write_at(0, &[0u8; BLOCK_SIZE])?;
    let t = Timespec { sec: now, nsec: 0 };
    let root_meta = match &opts.populate {
        Some(dir) => meta_of(&fs::symlink_metadata(dir)?),
        None => Meta {
            perm: 0o755,
            atime: t,
            mtime: t,
            ctime: t,
            ..Meta::default()
        },
    };
    let mut b = Builder::format(dev, sb, root_meta)?;
    if let Some(dir) = &opts.populate {
        let mut links = HashMap::new();
        let root = b.fs.sb.root_ino;
        populate(&mut b, root, dir, &mut links)?;
    }
    b.finish()
}

fn make_uuid(now: i64) -> [u8; 16] {
    let mut seed = (now as u64) ^ (u64::from(std::process::id()) << 32);
    if let Ok(mut f) = File::open("/dev/urandom") {
        let mut r = [0u8; 16];
        if std::io::Read::read_exact(&mut f, &mut r).is_ok() {
            return r;
        }
    }
    let mut u = [0u8; 16];
    for chunk in u.chunks_mut(8) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        chunk.copy_from_slice(&seed.to_le_bytes());
    }
    u
}

/// Ownership, permissions and times of a host file.
pub fn meta_of(m: &fs::Metadata) -> Meta {
    let ts = |sec: i64, nsec: i64| Timespec {
        sec,
        nsec: nsec.clamp(0, 999_999_999) as u32,
    };
    Meta {
        perm: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        atime: ts(m.atime(), m.atime_nsec()),
        mtime: ts(m.mtime(), m.mtime_nsec()),
        ctime: ts(m.ctime(), m.ctime_nsec()),
    }
}

fn encode_rdev(rdev: u64) -> u32 {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    ((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)) as u32
}

/// Copies the host directory `dir` into directory inode `parent`,
/// depth first, in sorted name order. Hard links are preserved.
pub fn populate<D: Dev>(
    b: &mut Builder<D>,
    parent: u64,
    dir: &Path,
    links: &mut HashMap<(u64, u64), u64>,
) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let name = std::os::unix::ffi::OsStrExt::as_bytes(name.as_os_str()).to_vec();
        let path = e.path();
        let m = fs::symlink_metadata(&path)?;
        let meta = meta_of(&m);
        let ft = m.file_type();
        if !ft.is_dir() && m.nlink() > 1 {
            if let Some(&ino) = links.get(&(m.dev(), m.ino())) {
                b.link(parent, &name, ino)?;
                continue;
            }
        }
        let ino = if ft.is_dir() {
            let ino = b.mkdir(parent, &name, meta)?;
            populate(b, ino, &path, links)?;
            ino
        } else if ft.is_file() {
            let mut f = File::open(&path)?;
            b.create_file(parent, &name, meta, &mut f, m.len())?
        } else if ft.is_symlink() {
            let target = fs::read_link(&path)?;
            let t = std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str()).to_vec();
            b.symlink(parent, &name, &t, meta)?
        } else {
            b.mknod(parent, &name, m.mode(), encode_rdev(m.rdev()), meta)
                .map_err(|e| Error::Msg(format!("{}: {e}", path.display())))?
        };
        if !ft.is_dir() && m.nlink() > 1 {
            links.insert((m.dev(), m.ino()), ino);
        }
    }
    Ok(())
}
