//! The lock hierarchy of rdaxfs, outermost first. Every path takes locks in
//! this order and never the reverse; lockdep checks it in the guest suite.
//!
//! 1. `sb_start_write` / `sb_start_pagefault` (freeze protection, VFS).
//! 2. `i_rwsem` of directories, then of the inode (VFS; rename takes two
//!    directories in `lock_rename` order).
//! 3. `mapping->invalidate_lock` (VFS; exclusive for truncate, punch and
//!    the other layout changes, shared in page faults). Break-layouts drops
//!    and retakes it while it waits for DMA pins to drop. Eviction waits for
//!    DMA pins (`layouts::break_layouts_final`) holding no rdaxfs lock at
//!    all, before it takes any.
//! 4. `InodeInfo::dir` (`rdaxfs:dir_index`): a directory's in-memory
//!    index (`dir_index.rs`), under the directory's i_rwsem. Building it
//!    reads the directory's blocks, taking that directory's map lock
//!    inside; it is never taken with a map lock held, and only one
//!    directory's index lock is held at a time.
//! 5. `InodeInfo::map` (`rdaxfs:inode_map`, a `kernel::sync::Mutex`): the
//!    allocation lock. It protects one inode's extent list and its on-disk
//!    inode, and is held across allocate, zero and publish in iomap begin,
//!    so a second fault or write on the same range finds the published,
//!    zeroed extent. Only one inode's map lock is ever held at a time.
//! 6. `SbInfo::journal` (`rdaxfs:journal`): the journal, the committed
//!    superblock (orphan list head, counts, clean flag) and the in-memory
//!    orphan list. Held only while one transaction commits (staging,
//!    logging, applying), never while blocks are zeroed or a directory is
//!    searched; see `journal.rs`.
//! 7. `SbInfo::blocks` (`rdaxfs:balloc`), `SbInfo::inodes`
//!    (`rdaxfs:ialloc`) and `SbInfo::deferred` (`rdaxfs:deferred`): the
//!    in-memory block and inode bitmaps, and the evicted orphans whose
//!    records are not freed yet (eviction adds to it under the map lock; a
//!    transaction takes it whole under the journal lock). Innermost; never
//!    two of them at once.
//! 8. `rdaxfs_trace_lock` (a C spinlock in rust/helpers.c, test-only pmem
//!    store trace): taken inside any of the above by `DaxDev` calls while
//!    the trace is on; nothing is taken or slept on under it.
//!
//! No rdaxfs lock is held while calling back into the VFS in a way that can
//! take a lock above it (`mark_inode_dirty` ends in `write_inode`, which
//! takes the map lock: it is never called with a map lock held).
