//! rdaxfs: a DAX filesystem for persistent memory.
//!
//! File data is served straight from the pmem device through the kernel's
//! DAX/iomap machinery, with no page cache. See README.md for the design and
//! `lock_order.rs` for the lock hierarchy.

use kernel::prelude::*;
use kernel::{c_str, str::CStr};

mod glue;

module! {
    type: RdaxfsModule,
    name: "rdaxfs",
    author: "rdaxfs developers",
    description: "DAX filesystem for persistent memory",
    license: "GPL",
}

static FS_TYPE: glue::fs::FsType = glue::fs::FsType::new();

struct Rdaxfs;

impl glue::fs::FileSystem for Rdaxfs {
    const NAME: &'static CStr = c_str!("rdaxfs");

    fn fill_super(sb: &mut glue::fs::NewSuperBlock<'_>) -> Result {
        pr_err!("{}: mount is not implemented yet\n", sb.id());
        Err(EINVAL)
    }
}

struct RdaxfsModule {
    _fs: glue::fs::Registration,
}

impl kernel::Module for RdaxfsModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let fs = FS_TYPE.register::<Rdaxfs>(module)?;
        pr_info!("filesystem type rdaxfs registered\n");
        Ok(Self { _fs: fs })
    }
}
