//! Mount and unmount, the on-disk superblock, statfs.

use crate::alloc::Bitmap;
use crate::format::{self, Superblock, BLOCK_SIZE, STATE_CLEAN, STATE_DIRTY};
use crate::glue::code;
use crate::glue::dax::DaxDev;
use crate::glue::fs::{NewSuperBlock, StatFs, SuperBlock};
use crate::options::{Errors, LiveOptions, Options};
use crate::stats;
use crate::{inode, Rdaxfs};
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::Mutex;

/// Magic number reported by statfs (the on-disk magic).
pub(crate) const MAGIC: u32 = format::SB_MAGIC;

/// The part of the on-disk superblock that changes while mounted.
pub(crate) struct SbState {
    /// The superblock as last written.
    pub(crate) sb: Superblock,
    /// Inodes with no links that are still open, in on-disk chain order.
    pub(crate) orphans: KVec<u64>,
}

/// Per-mount state.
#[pin_data]
pub(crate) struct SbInfo {
    /// The pmem device.
    pub(crate) dax: DaxDev,
    /// Geometry (immutable while mounted).
    pub(crate) geo: Superblock,
    /// Block bitmap (`rdaxfs:balloc`).
    #[pin]
    pub(crate) blocks: Mutex<Bitmap>,
    /// Inode bitmap (`rdaxfs:ialloc`).
    #[pin]
    pub(crate) inodes: Mutex<Bitmap>,
    /// The on-disk superblock (`rdaxfs:sb_state`).
    #[pin]
    pub(crate) state: Mutex<SbState>,
    /// Mount options (`errors=` changes on remount).
    pub(crate) opts: LiveOptions,
    /// Counters (debugfs).
    #[pin]
    pub(crate) stats: stats::Stats,
    /// Whether the orphans found at mount have been reclaimed (at a
    /// read-write mount, or at the first remount read-write). After that,
    /// orphans on the list are unlinked files still open, freed at their
    /// last close.
    orphans_reclaimed: AtomicBool,
}

type Sb = SuperBlock<Rdaxfs>;

/// Reads and checks the superblock, loads the allocators, marks the
/// filesystem in use and reclaims orphans a crash left behind.
pub(crate) fn fill_super(
    nsb: &NewSuperBlock<'_, Rdaxfs>,
    opts: &Options,
) -> Result<Pin<KBox<SbInfo>>> {
    let id = nsb.id();
    let Some(dax) = nsb.dax_device() else {
        pr_err!("{}: not a DAX-capable device; rdaxfs needs an fsdax pmem namespace (ndctl create-namespace -m fsdax)\n", id);
        return Err(EINVAL);
    };
    nsb.set_max_links(inode::LINK_MAX);
    let mut buf = KVec::from_elem(0u8, BLOCK_SIZE, GFP_KERNEL)?;
    dax.read(0, &mut buf)?;
    let sb = match Superblock::decode(&buf) {
        Ok(sb) => sb,
        Err(e) => {
            pr_err!("{}: bad superblock: {}; run fsck.rdaxfs\n", id, e.msg());
            return Err(EINVAL);
        }
    };
    if let Err(e) = sb.validate(nsb.device_bytes()) {
        pr_err!(
            "{}: superblock geometry invalid: {}; run fsck.rdaxfs\n",
            id,
            e.msg()
        );
        return Err(EINVAL);
    }
    match sb.check_features() {
        Err(e) => {
            pr_err!(
                "{}: {} (incompat features {:#x})\n",
                id,
                e.msg(),
                sb.incompat
            );
            return Err(EINVAL);
        }
        Ok(true) if !nsb.read_only() => {
            pr_err!(
                "{}: unknown read-only-compatible features; mount read-only\n",
                id
            );
            return Err(EROFS);
        }
        Ok(_) => {}
    }
    if sb.state != STATE_CLEAN {
        pr_warn!(
            "{}: was not cleanly unmounted; fsck.rdaxfs -y is recommended\n",
            id
        );
    }
    let blocks = Bitmap::load(
        &dax,
        sb.block_bitmap_start,
        sb.block_bitmap_blocks,
        sb.data_start,
        sb.data_end(),
    )?;
    let inodes = Bitmap::load(
        &dax,
        sb.inode_bitmap_start,
        sb.inode_bitmap_blocks,
        0,
        sb.inode_count,
    )?;
    let geo = sb;
    let ondisk = sb;
    let info = KBox::pin_init(
        try_pin_init!(SbInfo {
            dax,
            geo,
            blocks <- new_mutex!(blocks, "rdaxfs:balloc"),
            inodes <- new_mutex!(inodes, "rdaxfs:ialloc"),
            state <- new_mutex!(SbState { sb: ondisk, orphans: KVec::new() }, "rdaxfs:sb_state"),
            opts: LiveOptions::new(opts),
            stats <- stats::new(),
            orphans_reclaimed: AtomicBool::new(!nsb.read_only()),
        }),
        GFP_KERNEL,
    )?;
    info.stats.publish(id);
    if !nsb.read_only() {
        let mut st = info.state.lock();
        st.sb.state = STATE_DIRTY;
        st.sb.mount_count = st.sb.mount_count.wrapping_add(1);
        write_sb(&info, &mut st)?;
    }
    pr_info!(
        "{}: mounted ({} blocks, {} free; {} inodes, {} free)\n",
        id,
        geo.data_blocks(),
        info.blocks.lock().free(),
        geo.inode_count,
        info.inodes.lock().free()
    );
    Ok(info)
}

/// Writes the superblock (primary, then backup). Free counts are advisory
/// (fsck recomputes them); [`SbInfo::counts`] refreshes them first.
pub(crate) fn write_sb(info: &SbInfo, st: &mut SbState) -> Result {
    let mut buf = KVec::from_elem(0u8, format::SB_SIZE, GFP_KERNEL)?;
    st.sb.encode(&mut buf).map_err(|_| EIO)?;
    info.dax.write(0, &buf)?;
    info.dax.fence();
    info.dax
        .write(info.geo.backup_block() * BLOCK_SIZE as u64, &buf)?;
    info.dax.fence();
    Ok(())
}

impl SbInfo {
    /// Free blocks and inodes, read before taking `state` (lock order).
    pub(crate) fn counts(&self) -> (u64, u64) {
        let b = self.blocks.lock().free();
        let i = self.inodes.lock().free();
        (b, i)
    }

    /// Reports corrupt metadata and applies `errors=`.
    pub(crate) fn corrupt(&self, sb: &Sb, what: &str, ino: u64) -> Error {
        pr_err!(
            "{}: corrupt {} (inode {}); run fsck.rdaxfs\n",
            sb.id(),
            what,
            ino
        );
        match self.opts.get().errors {
            Errors::Continue => {}
            Errors::RemountRo => {
                pr_err!("{}: remounting read-only\n", sb.id());
                sb.force_read_only();
            }
            Errors::Panic => panic!("rdaxfs: corrupt metadata and errors=panic"),
        }
        code::euclean()
    }
}

/// Unmount: the superblock records the free counts and a clean state.
pub(crate) fn put_super(sb: &Sb) {
    let info = sb.info();
    if sb.read_only() {
        return;
    }
    let (b, i) = info.counts();
    let mut st = info.state.lock();
    (st.sb.free_blocks, st.sb.free_inodes) = (b, i);
    st.sb.state = STATE_CLEAN;
    if let Err(e) = write_sb(info, &mut st) {
        pr_err!(
            "{}: writing the superblock at unmount failed: {:?}\n",
            sb.id(),
            e
        );
    }
    drop(st);
    if let Err(e) = sb.flush_device() {
        pr_err!("{}: device flush at unmount failed: {:?}\n", sb.id(), e);
    }
    pr_info!(
        "{}: unmounted; blocks allocated {}, bytes zeroed {}, pte faults {}, pmd faults {} ({} fallbacks), layout waits {}\n",
        sb.id(),
        info.stats.get(stats::BLOCKS_ALLOCATED),
        info.stats.get(stats::BYTES_ZEROED),
        info.stats.get(stats::PTE_FAULTS),
        info.stats.get(stats::PMD_FAULTS),
        info.stats.get(stats::PMD_FALLBACKS),
        info.stats.get(stats::LAYOUT_WAITS),
    );
}

/// sync(2): all metadata is written through; record the counts, then
/// flush the device (what ext4_sync_fs does with its barrier).
pub(crate) fn sync_fs(sb: &Sb) -> Result {
    let info = sb.info();
    info.dax.fence();
    if !sb.read_only() {
        let (b, i) = info.counts();
        let mut st = info.state.lock();
        (st.sb.free_blocks, st.sb.free_inodes) = (b, i);
        write_sb(info, &mut st)?;
    }
    sb.flush_device()
}

/// Writes the superblock with the current free counts and `state`.
fn write_state(info: &SbInfo, state: u32, count_mount: bool) -> Result {
    let (b, i) = info.counts();
    let mut st = info.state.lock();
    (st.sb.free_blocks, st.sb.free_inodes) = (b, i);
    st.sb.state = state;
    if count_mount {
        st.sb.mount_count = st.sb.mount_count.wrapping_add(1);
    }
    write_sb(info, &mut st)
}

/// `mount -o remount`: the checks and state changes of mount (ro -> rw)
/// and unmount (rw -> ro), and the new `errors=`. The VFS has checked that
/// no file is open for writing (rw -> ro) and synced the filesystem.
pub(crate) fn reconfigure(sb: &Sb, opts: &Options, ro_change: Option<bool>) -> Result {
    let info = sb.info();
    match ro_change {
        Some(false) => {
            if !matches!(info.geo.check_features(), Ok(false)) {
                pr_err!(
                    "{}: unknown read-only-compatible features (ro_compat {:#x}); cannot remount read-write\n",
                    sb.id(),
                    info.geo.ro_compat
                );
                return Err(EROFS);
            }
            if info.state.lock().sb.state != STATE_CLEAN {
                pr_warn!(
                    "{}: remounting read-write a filesystem that was not cleanly unmounted; fsck.rdaxfs -y is recommended\n",
                    sb.id()
                );
            }
            write_state(info, STATE_DIRTY, true)?;
            sb.flush_device()?;
            // Only a mount that has been read-only all along still holds
            // the orphans a crash left; later ones are files still open.
            if !info.orphans_reclaimed.load(Ordering::Relaxed) {
                reclaim_listed_orphans(sb)?;
                info.orphans_reclaimed.store(true, Ordering::Relaxed);
            }
        }
        Some(true) => {
            write_state(info, STATE_CLEAN, false)?;
            sb.flush_device()?;
        }
        None => {}
    }
    info.opts.update(opts);
    Ok(())
}

/// Frees the orphans a read-only mount found on the list (and kept: a
/// read-only mount frees nothing), now that the mount becomes writable.
fn reclaim_listed_orphans(sb: &Sb) -> Result {
    let info = sb.info();
    loop {
        let Some(ino) = info.state.lock().orphans.first().copied() else {
            return Ok(());
        };
        pr_info!("{}: reclaiming orphan inode {}\n", sb.id(), ino);
        // The last reference evicts it: link count 0 frees it.
        drop(inode::iget(sb, ino)?);
        if info.state.lock().orphans.first() == Some(&ino) {
            return Err(info.corrupt(sb, "orphan inode", ino));
        }
    }
}

/// statfs(2).
pub(crate) fn statfs(sb: &Sb) -> Result<StatFs> {
    let info = sb.info();
    Ok(StatFs {
        magic: MAGIC,
        bsize: BLOCK_SIZE as u32,
        blocks: info.geo.data_blocks(),
        bfree: info.blocks.lock().free(),
        files: info.geo.inode_count,
        ffree: info.inodes.lock().free(),
        namelen: format::NAME_MAX as u32,
    })
}

/// The root directory.
pub(crate) fn root(sb: &Sb) -> Result<ARef<crate::glue::inode::Inode<Rdaxfs>>> {
    let root = inode::iget(sb, sb.info().geo.root_ino)?;
    if root.mode() & format::S_IFMT != format::S_IFDIR {
        return Err(sb.info().corrupt(sb, "root directory", root.ino()));
    }
    inode::reclaim_orphans(sb)?;
    Ok(root)
}

use kernel::types::ARef;
