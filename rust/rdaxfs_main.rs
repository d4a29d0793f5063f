//! rdaxfs: a DAX filesystem for persistent memory.
//!
//! File data is served straight from the pmem device through the kernel's
//! DAX/iomap code, with no page cache. The module is split like ext2: one
//! concept per file. `glue` is the only place with `unsafe`; `lock_order`
//! documents the lock hierarchy.

use glue::compat::ARef;
use kernel::prelude::*;
use kernel::{c_str, str::CStr};

mod alloc;
mod dir;
mod dir_index;
mod file;
mod glue;
mod inode;
mod iomap;
mod journal;
mod layouts;
#[allow(dead_code)]
mod lock_order;
mod namei;
mod options;
mod stats;
mod super_block;
mod vecs;

/// The on-disk format, the same source the userspace tools compile.
#[allow(unreachable_pub, dead_code, clippy::all)]
#[path = "../format/src/layout/mod.rs"]
mod format;

use glue::fs::{FileSystem, NewSuperBlock, StatFs, SuperBlock};
use glue::inode::Inode;
use glue::{DirEmitter, Kiocb, SeqFile, VmFault};

glue::compat::declare_module! {
    type: RdaxfsModule,
    name: "rdaxfs",
    author: "rdaxfs developers",
    description: "DAX filesystem for persistent memory",
    license: "GPL",
}

static FS_TYPE: glue::fs::FsType = glue::fs::FsType::new();

/// The filesystem type: each method hands off to the module for its concept.
pub(crate) struct Rdaxfs;

impl FileSystem for Rdaxfs {
    const NAME: &'static CStr = c_str!("rdaxfs");
    const MAGIC: u32 = super_block::MAGIC;
    const MAX_FILE_SIZE: u64 = format::MAX_FILE_SIZE;
    type SbInfo = super_block::SbInfo;
    type InodeInfo = inode::InodeInfo;
    type Options = options::Options;

    fn parse_option(opts: &mut options::Options, key: &[u8], val: &[u8]) -> Result {
        options::parse(opts, key, val)
    }
    fn fill_super(
        sb: &NewSuperBlock<'_, Self>,
        opts: &options::Options,
    ) -> Result<Pin<KBox<Self::SbInfo>>> {
        super_block::fill_super(sb, opts)
    }
    fn root(sb: &SuperBlock<Self>) -> Result<ARef<Inode<Self>>> {
        super_block::root(sb)
    }
    fn inode_info() -> impl PinInit<Self::InodeInfo, Error> {
        inode::InodeInfo::new()
    }
    fn dax_dev(sb: &SuperBlock<Self>) -> &glue::dax::DaxDev {
        &sb.info().dax
    }
    fn put_super(sb: &SuperBlock<Self>) {
        super_block::put_super(sb)
    }
    fn sync_fs(sb: &SuperBlock<Self>) -> Result {
        super_block::sync_fs(sb)
    }
    fn reconfigure(
        sb: &SuperBlock<Self>,
        opts: &options::Options,
        ro_change: Option<bool>,
    ) -> Result {
        super_block::reconfigure(sb, opts, ro_change)
    }
    fn statfs(sb: &SuperBlock<Self>) -> Result<StatFs> {
        super_block::statfs(sb)
    }
    fn show_options(sb: &SuperBlock<Self>, out: &mut SeqFile) {
        out.puts(options::show(&sb.info().opts.get()));
    }
    fn write_inode(inode: &Inode<Self>) -> Result {
        inode::write_inode(inode)
    }
    fn evict_inode(inode: &Inode<Self>) {
        inode::evict(inode)
    }
    fn evict_break_layouts(inode: &glue::inode::Evicting<'_, Self>) {
        layouts::break_layouts_final(inode)
    }
    fn lookup(dir: &Inode<Self>, name: &[u8]) -> Result<Option<ARef<Inode<Self>>>> {
        namei::lookup(dir, name)
    }
    fn create(
        dir: &Inode<Self>,
        name: &[u8],
        mode: u32,
        symlink: Option<&[u8]>,
        rdev: u32,
    ) -> Result<ARef<Inode<Self>>> {
        namei::create(dir, name, mode, symlink, rdev)
    }
    fn link(inode: &Inode<Self>, dir: &Inode<Self>, name: &[u8]) -> Result {
        namei::link(inode, dir, name)
    }
    fn unlink(dir: &Inode<Self>, name: &[u8], inode: &Inode<Self>) -> Result {
        namei::unlink(dir, name, inode)
    }
    fn rmdir(dir: &Inode<Self>, name: &[u8], inode: &Inode<Self>) -> Result {
        namei::rmdir(dir, name, inode)
    }
    fn rename(
        old_dir: &Inode<Self>,
        old_name: &[u8],
        old: &Inode<Self>,
        new_dir: &Inode<Self>,
        new_name: &[u8],
        new: Option<&Inode<Self>>,
        flags: u32,
    ) -> Result {
        namei::rename(old_dir, old_name, old, new_dir, new_name, new, flags)
    }
    fn readdir(dir: &Inode<Self>, out: &mut DirEmitter) -> Result {
        dir::readdir(dir, out)
    }
    fn set_size(inode: &Inode<Self>, size: u64) -> Result {
        file::set_size(inode, size)
    }
    fn read_iter(iocb: &mut Kiocb<'_, Self>) -> Result<usize> {
        file::read_iter(iocb)
    }
    fn write_iter(iocb: &mut Kiocb<'_, Self>) -> Result<usize> {
        file::write_iter(iocb)
    }
    fn fsync(inode: &Inode<Self>, start: i64, end: i64, _datasync: bool) -> Result {
        file::fsync(inode, start, end)
    }
    fn fallocate(
        file: &glue::file::OpenFile<'_, Self>,
        mode: i32,
        offset: i64,
        len: i64,
    ) -> Result {
        file::fallocate(file, mode, offset, len)
    }
    fn fault(vmf: &VmFault<'_, Self>, order: u32) -> u32 {
        file::fault(vmf, order)
    }
    fn iomap_begin(
        inode: &Inode<Self>,
        pos: i64,
        len: i64,
        flags: u32,
        map: &mut glue::iomap::Iomap<'_, Self>,
    ) -> Result {
        iomap::begin(inode, pos, len, flags, map)
    }
    fn fiemap(inode: &Inode<Self>, fi: &mut glue::iomap::Fiemap, start: u64, len: u64) -> Result {
        iomap::fiemap(inode, fi, start, len)
    }
    fn seek_data_hole(inode: &Inode<Self>, offset: i64, data: bool) -> Result<i64> {
        iomap::seek_data_hole(inode, offset, data)
    }
    fn tmpfile(dir: &Inode<Self>, mode: u32) -> Result<ARef<Inode<Self>>> {
        namei::tmpfile(dir, mode)
    }
}

struct RdaxfsModule {
    _fs: glue::fs::Registration,
}

impl Drop for RdaxfsModule {
    fn drop(&mut self) {
        // Every mount is gone (the module is not busy), so are their files.
        glue::debugfs::exit();
    }
}

impl kernel::Module for RdaxfsModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        glue::debugfs::init();
        let fs = FS_TYPE.register::<Rdaxfs>(module)?;
        pr_info!("filesystem type rdaxfs registered\n");
        Ok(Self { _fs: fs })
    }
}
