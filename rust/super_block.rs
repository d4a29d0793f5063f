//! Mount and unmount, the on-disk superblock, statfs.

use crate::alloc::Bitmap;
use crate::format::{
    self, Superblock, BLOCK_SIZE, BLOCK_SIZE_U64, INCOMPAT_JOURNAL, STATE_CLEAN, STATE_DIRTY,
};
use crate::glue::dax::DaxDev;
use crate::glue::fs::{NewSuperBlock, StatFs, SuperBlock};
use crate::glue::{self, code};
use crate::journal::{self, transact, Journal};
use crate::options::{Errors, LiveOptions, Options};
use crate::stats;
use crate::{inode, Rdaxfs};
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::Mutex;

/// Magic number reported by statfs (the on-disk magic).
pub(crate) const MAGIC: u32 = format::SB_MAGIC;

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
    /// The journal and the committed superblock (`rdaxfs:journal`).
    #[pin]
    pub(crate) journal: Mutex<Journal>,
    /// Orphans already evicted that had no blocks (`rdaxfs:deferred`):
    /// their records and numbers are freed by one transaction per
    /// `journal::FREE_BATCH` of them (see `inode::evict`), or sooner when
    /// something needs the counts right (`inode::free_deferred`). Until
    /// then they stay on the orphan list, so a crash leaves them for mount
    /// to reclaim. Its own lock, so that an eviction never waits for
    /// another thread's transaction.
    #[pin]
    pub(crate) deferred: Mutex<KVec<u64>>,
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
    /// When mount started and the bytes of log it replayed, for the mount
    /// line `root` prints once the orphans are reclaimed.
    mount_start: u64,
    replayed: u32,
}

type Sb = SuperBlock<Rdaxfs>;

/// Reads and checks the superblock, loads the allocators, marks the
/// filesystem in use and reclaims orphans a crash left behind.
pub(crate) fn fill_super(
    nsb: &NewSuperBlock<'_, Rdaxfs>,
    opts: &Options,
) -> Result<Pin<KBox<SbInfo>>> {
    let mount_start = glue::now_ns();
    let id = nsb.id();
    let Some(dax) = nsb.dax_device() else {
        pr_err!("{}: not a DAX-capable device; rdaxfs needs an fsdax pmem namespace (ndctl create-namespace -m fsdax)\n", id);
        return Err(EINVAL);
    };
    nsb.set_max_links(crate::namei::LINK_MAX);
    let (mut sb, mut from_backup) = read_superblock(&dax, id, nsb.device_bytes())?;
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
    let rw = !nsb.read_only();
    let mut replayed = 0;
    if sb.incompat & INCOMPAT_JOURNAL != 0 {
        // Before anything else is read: a committed transaction a crash
        // left unapplied is part of the filesystem.
        if let Some((seq, bytes)) = journal::recover(&dax, &sb)? {
            pr_info!(
                "{}: journal: replayed transaction {} ({} bytes of log)\n",
                id,
                seq,
                bytes
            );
            replayed = bytes;
            // The transaction may have changed the superblock (the orphan
            // list head, counts, state): what was read before the replay
            // is stale, and an orphan walk from a stale head finds inodes
            // the transaction already freed. Read it again.
            if !from_backup {
                (sb, from_backup) = read_superblock(&dax, id, nsb.device_bytes())?;
            }
        }
        if from_backup {
            sb = restore_primary(&dax, id, sb, rw)?;
        }
    } else if rw {
        // Made before the journal existed: start one. The superblock with
        // the feature bit is durable before any transaction is logged.
        journal::init_area(&dax, &sb)?;
        sb.incompat |= INCOMPAT_JOURNAL;
        write_sb_direct(&dax, &sb)?;
        pr_info!("{}: journal started in the reserved area\n", id);
    } else {
        pr_err!(
            "{}: no journal yet; mount read-write once to start it\n",
            id
        );
        return Err(EINVAL);
    }
    if sb.state != STATE_CLEAN {
        pr_info!(
            "{}: was not cleanly unmounted; recovered from the journal\n",
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
            journal <- new_mutex!(Journal::new(ondisk)?, "rdaxfs:journal"),
            deferred <- new_mutex!(KVec::new(), "rdaxfs:deferred"),
            opts: LiveOptions::new(opts),
            stats <- stats::new(),
            orphans_reclaimed: AtomicBool::new(!nsb.read_only()),
            mount_start,
            replayed,
        }),
        GFP_KERNEL,
    )?;
    info.stats.publish(id);
    if rw {
        transact(&info, |tx| {
            let sb = tx.sb();
            sb.state = STATE_DIRTY;
            sb.mount_count = sb.mount_count.wrapping_add(1);
            Ok(())
        })?;
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

/// Reads the primary superblock, or the backup in the device's last block
/// when the primary fails its checksum or checks. Returns it and whether
/// it is the backup.
fn read_superblock(dax: &DaxDev, id: &CStr, device_bytes: u64) -> Result<(Superblock, bool)> {
    let mut buf = KVec::from_elem(0u8, format::SB_SIZE, GFP_KERNEL)?;
    dax.read(0, &mut buf)?;
    let primary = Superblock::decode(&buf).and_then(|sb| sb.validate(device_bytes).map(|()| sb));
    let err = match primary {
        Ok(sb) => return Ok((sb, false)),
        Err(e) => e,
    };
    let last = (device_bytes / BLOCK_SIZE_U64).saturating_sub(1);
    dax.read(last * BLOCK_SIZE_U64, &mut buf)?;
    let backup = Superblock::decode(&buf).and_then(|sb| sb.validate(device_bytes).map(|()| sb));
    match backup {
        Ok(sb) => {
            pr_warn!(
                "{}: primary superblock unusable ({}); using the backup in block {}\n",
                id,
                err.msg(),
                last
            );
            Ok((sb, true))
        }
        Err(b) => {
            pr_err!(
                "{}: bad superblock: {}; backup: {}; run fsck.rdaxfs\n",
                id,
                err.msg(),
                b.msg()
            );
            Err(EINVAL)
        }
    }
}

/// After journal replay: if the primary is still unusable, rewrite it from
/// the backup. The backup's runtime fields may be stale: its orphan list
/// head cannot be trusted, so orphans are left to fsck.
fn restore_primary(dax: &DaxDev, id: &CStr, backup: Superblock, rw: bool) -> Result<Superblock> {
    let mut buf = KVec::from_elem(0u8, format::SB_SIZE, GFP_KERNEL)?;
    dax.read(0, &mut buf)?;
    if let Ok(sb) = Superblock::decode(&buf) {
        if sb.validate(backup.block_count * BLOCK_SIZE_U64).is_ok() {
            pr_info!("{}: journal replay repaired the primary superblock\n", id);
            return Ok(sb);
        }
    }
    let mut sb = backup;
    if sb.orphan_head != 0 {
        pr_warn!(
            "{}: the backup's orphan list is not trusted; run fsck.rdaxfs -y to reclaim orphans\n",
            id
        );
        sb.orphan_head = 0;
    }
    if rw {
        sb.state = STATE_DIRTY;
        write_sb_direct(dax, &sb)?;
        pr_info!("{}: primary superblock rewritten from the backup\n", id);
    }
    Ok(sb)
}

/// Writes the primary superblock outside a transaction (durably), at mount
/// when no transaction can be pending: starting the journal on an older
/// image, or restoring the primary from the backup. A torn store here
/// leaves the backup to fall back on again.
fn write_sb_direct(dax: &DaxDev, sb: &Superblock) -> Result {
    let mut buf = KVec::from_elem(0u8, format::SB_SIZE, GFP_KERNEL)?;
    sb.encode(&mut buf).map_err(|_| EIO)?;
    dax.write(0, &buf)?;
    dax.fence();
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

/// Unmount: the superblock records the free counts and a clean state,
/// and the backup copy is refreshed.
pub(crate) fn put_super(sb: &Sb) {
    let info = sb.info();
    if sb.read_only() {
        return;
    }
    inode::free_deferred(info);
    let (b, i) = info.counts();
    // Then the backup copy, in a transaction of its own: at any moment at
    // most one of the two superblocks is being written, so recovery can
    // always find the journal through the other.
    let res = transact(info, |tx| {
        let s = tx.sb();
        (s.free_blocks, s.free_inodes) = (b, i);
        s.state = STATE_CLEAN;
        Ok(*s)
    })
    .and_then(|img| {
        transact(info, |tx| {
            let backup = tx.bytes(img.backup_block() * BLOCK_SIZE_U64, format::SB_SIZE)?;
            img.encode(backup).map_err(|_| EIO)
        })
    });
    if let Err(e) = res {
        pr_err!(
            "{}: writing the superblock at unmount failed: {:?}\n",
            sb.id(),
            e
        );
    }
    let (commits, logged, ns) = {
        let j = info.journal.lock();
        (j.commits, j.logged, j.ns)
    };
    if let Err(e) = sb.flush_device() {
        pr_err!("{}: device flush at unmount failed: {:?}\n", sb.id(), e);
    }
    pr_info!(
        "{}: unmounted; blocks allocated {}, bytes zeroed {}, pte faults {}, pmd faults {} ({} fallbacks), layout waits {}, transactions {} ({} bytes logged)\n",
        sb.id(),
        info.stats.get(stats::BLOCKS_ALLOCATED),
        info.stats.get(stats::BYTES_ZEROED),
        info.stats.get(stats::PTE_FAULTS),
        info.stats.get(stats::PMD_FAULTS),
        info.stats.get(stats::PMD_FALLBACKS),
        info.stats.get(stats::LAYOUT_WAITS),
        commits,
        logged,
    );
    pr_info!(
        "{}: journal time: {} transactions; us waiting for the lock {}, staging {}, logging and committing {}, applying {}\n",
        sb.id(),
        commits,
        ns[0] / 1000,
        ns[1] / 1000,
        ns[2] / 1000,
        ns[3] / 1000,
    );
}

/// sync(2): every metadata change is durable when its transaction
/// returns; record the free counts, then flush the device (what
/// ext4_sync_fs does with its barrier).
pub(crate) fn sync_fs(sb: &Sb) -> Result {
    let info = sb.info();
    info.dax.fence();
    if !sb.read_only() {
        inode::free_deferred(info);
        let (b, i) = info.counts();
        transact(info, |tx| {
            let s = tx.sb();
            (s.free_blocks, s.free_inodes) = (b, i);
            Ok(())
        })?;
    }
    sb.flush_device()
}

/// Writes the superblock with the current free counts and `state`.
fn write_state(info: &SbInfo, state: u32, count_mount: bool) -> Result {
    let (b, i) = info.counts();
    transact(info, |tx| {
        let s = tx.sb();
        (s.free_blocks, s.free_inodes) = (b, i);
        s.state = state;
        if count_mount {
            s.mount_count = s.mount_count.wrapping_add(1);
        }
        Ok(())
    })
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
            if info.journal.lock().sb.state != STATE_CLEAN {
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
    inode::reclaim_listed(sb).map(|_| ())
}

/// statfs(2).
pub(crate) fn statfs(sb: &Sb) -> Result<StatFs> {
    let info = sb.info();
    inode::free_deferred(info);
    Ok(StatFs {
        magic: MAGIC,
        bsize: BLOCK_SIZE as u32,
        blocks: info.geo.data_blocks(),
        bfree: info.blocks.lock().free(),
        files: info.geo.inode_count,
        ffree: info.inodes.lock().free(),
        namelen: format::NAME_MAX as u32,
        fsid: fsid(&info.geo.uuid),
    })
}

/// `f_fsid` from the volume's uuid: the xor of its two little-endian
/// halves, as ext4 derives it (stable across mounts, distinct per mkfs).
fn fsid(uuid: &[u8; 16]) -> u64 {
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&uuid[..8]);
    hi.copy_from_slice(&uuid[8..]);
    u64::from_le_bytes(lo) ^ u64::from_le_bytes(hi)
}

/// The root directory.
pub(crate) fn root(sb: &Sb) -> Result<ARef<crate::glue::inode::Inode<Rdaxfs>>> {
    let root = inode::iget(sb, sb.info().geo.root_ino)?;
    if root.mode() & format::S_IFMT != format::S_IFDIR {
        return Err(sb.info().corrupt(sb, "root directory", root.ino()));
    }
    let orphans = inode::reclaim_orphans(sb)?;
    // One line with what recovery cost: none of it depends on the number
    // of files (mount reads the superblock, the journal area, both bitmaps
    // (sized by the device) and the root inode, and walks the orphan list).
    let info = sb.info();
    let us = glue::now_ns().saturating_sub(info.mount_start) / 1000;
    pr_info!(
        "{}: mount: log replay {} bytes, {} orphans reclaimed, {}.{:03} ms\n",
        sb.id(),
        info.replayed,
        orphans,
        us / 1000,
        us % 1000
    );
    Ok(root)
}

use crate::glue::compat::ARef;
use kernel::str::CStr;
