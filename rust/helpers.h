/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rdaxfs C helpers: static inline kernel functions and macros have no symbol
 * for Rust to call, so each gets a one-line exported-to-Rust wrapper here.
 * Module parameters (the test-only bug switches) live here too.
 */
#ifndef RDAXFS_HELPERS_H
#define RDAXFS_HELPERS_H

#include <linux/fs.h>
#include <linux/mm.h>

struct dax_device;

void rdaxfs_inode_lock(struct inode *inode);
void rdaxfs_inode_unlock(struct inode *inode);
void rdaxfs_inode_lock_shared(struct inode *inode);
void rdaxfs_inode_unlock_shared(struct inode *inode);
void rdaxfs_invalidate_lock(struct address_space *mapping);
void rdaxfs_invalidate_unlock(struct address_space *mapping);
void rdaxfs_invalidate_lock_shared(struct address_space *mapping);
void rdaxfs_invalidate_unlock_shared(struct address_space *mapping);
loff_t rdaxfs_i_size_read(const struct inode *inode);
void rdaxfs_i_size_write(struct inode *inode, loff_t size);
void rdaxfs_sb_start_pagefault(struct super_block *sb);
void rdaxfs_sb_end_pagefault(struct super_block *sb);
void rdaxfs_sb_start_write(struct super_block *sb);
void rdaxfs_sb_end_write(struct super_block *sb);

/*
 * Wait until @page's refcount is back to 1 (no DMA pin), dropping and
 * retaking @mapping's invalidate lock around the sleep. Returns 0 when the
 * page is idle, -ERESTARTSYS on a signal.
 */
int rdaxfs_wait_dax_page_idle(struct page *page, struct address_space *mapping);

/*
 * The first page of @mapping in [@start, @end] (bytes; @end == LLONG_MAX: to
 * the end of the file) that has an elevated refcount (pinned for DMA), after
 * unmapping the range from every process; NULL if none.
 *
 * A copy of 6.12's dax_layout_busy_page_range() without its
 * `!mapping_mapped(mapping)` shortcut: a page pinned through a mapping that
 * was unmapped since (munmap while an O_DIRECT read into it is in flight)
 * keeps its DAX entry and its extra reference, and 6.12's function never
 * finds it (upstream closed that hole in 6.15). The caller holds the
 * invalidate lock exclusive, or evicts the inode (no user left).
 */
struct page *rdaxfs_dax_busy_page_range(struct address_space *mapping, loff_t start, loff_t end);

/*
 * Wait, uninterruptibly and without any lock, until @page's refcount is back
 * to 1. For eviction, which cannot fail and has no user left that could
 * need a lock to let the pin go.
 */
void rdaxfs_wait_dax_page_idle_final(struct page *page);

/*
 * TEST ONLY (bug_busy_scan_mapped_only): 6.12's dax_layout_busy_page_range(),
 * which finds nothing once no process maps the file.
 */
struct page *rdaxfs_dax_busy_page_range_mapped_only(struct address_space *mapping, loff_t start,
						    loff_t end);

/*
 * Eviction, after rdaxfs waited for every pinned page: 7.3's
 * dax_break_layout_final() (drops the DAX entries); nothing on 6.12.
 */
void rdaxfs_dax_break_layout_final(struct inode *inode);

/* Test-only switches that put historical DAX bugs back (off by default). */
bool rdaxfs_bug_zero_outside_lock(void);
bool rdaxfs_bug_skip_break_layouts(void);
bool rdaxfs_bug_break_layouts_once(void);
bool rdaxfs_bug_drop_commit_fence(void);
bool rdaxfs_bug_busy_scan_mapped_only(void);
bool rdaxfs_bug_evict_skip_wait(void);
unsigned int rdaxfs_bug_delay_us(void);
unsigned int rdaxfs_test_commit_delay_us(void);
/* Fault injection: fail every Nth transaction before it commits (0: off). */
unsigned int rdaxfs_inject_tx_error(void);

#endif

/* Inline accessors. */
struct kiocb;
struct iov_iter;
struct vm_fault;
struct dir_context;
struct file;
struct vm_area_struct;
struct seq_file;
unsigned int rdaxfs_i_uid_read(const struct inode *inode);
unsigned int rdaxfs_i_gid_read(const struct inode *inode);
void rdaxfs_i_uid_write(struct inode *inode, unsigned int uid);
void rdaxfs_i_gid_write(struct inode *inode, unsigned int gid);
void rdaxfs_inode_get_times(const struct inode *inode, s64 *sec, u32 *nsec);
void rdaxfs_inode_set_times(struct inode *inode, const s64 *sec, const u32 *nsec);
struct inode *rdaxfs_file_inode(const struct file *file);
struct inode *rdaxfs_d_inode(const struct dentry *dentry);
bool rdaxfs_dir_emit(struct dir_context *ctx, const char *name, int len, u64 ino, unsigned int type);
void rdaxfs_file_accessed(struct file *file);
unsigned long rdaxfs_mapping_next_entry(struct address_space *mapping, unsigned long first, unsigned long last);
ssize_t rdaxfs_generic_write_sync(struct kiocb *iocb, ssize_t count);
size_t rdaxfs_iov_iter_count(const struct iov_iter *i);
void rdaxfs_iov_iter_truncate(struct iov_iter *i, u64 count);
bool rdaxfs_is_sync_mapping(struct vm_area_struct *vma);
struct file *rdaxfs_vmf_file(const struct vm_fault *vmf);
bool rdaxfs_vmf_write(const struct vm_fault *vmf);
void rdaxfs_vma_set_dax(struct vm_area_struct *vma);
void rdaxfs_seq_puts(struct seq_file *m, const char *s);
void rdaxfs_pmem_copy_to(void *dst, const void *src, size_t len);
/* Zeroes @len bytes (a multiple of PAGE_SIZE) at @dst with cache-bypassing
 * stores, as the pmem driver zeroes a page (memcpy_flushcache of the zero page). */
void rdaxfs_pmem_zero(void *dst, size_t len);
void rdaxfs_pmem_copy_from(void *dst, const void *src, size_t len);
void rdaxfs_pmem_fence(void);
unsigned long rdaxfs_copy_mc(void *dst, const void *src, size_t len);
void rdaxfs_delay_us(unsigned int us);
void rdaxfs_set_dax_inode(struct inode *inode);
bool rdaxfs_dir_emit_dots(struct file *file, struct dir_context *ctx);
u64 rdaxfs_bdev_nr_bytes(struct block_device *bdev);
void rdaxfs_touch_cmtime(struct inode *inode);
/* The name of @d (d_name; its layout differs between 6.12 and 7.3). */
const unsigned char *rdaxfs_dentry_name(const struct dentry *d, u32 *len);
/* A symlink's target, kept by the filesystem for the inode's lifetime. */
void rdaxfs_set_inode_link(struct inode *inode, char *link);
/* Whether iget_locked() just allocated @inode (I_NEW). */
bool rdaxfs_inode_is_new(struct inode *inode);

/* debugfs: /sys/kernel/debug/rdaxfs/<device>/<counter>. */
void rdaxfs_debugfs_init(void);
void rdaxfs_debugfs_exit(void);
struct dentry *rdaxfs_debugfs_add(const char *dev, u64 *vals, const char *const *names, unsigned int n);
void rdaxfs_debugfs_remove(struct dentry *dir);
bool rdaxfs_mmap_supported(struct vm_area_struct *vma, struct dax_device *dax_dev);
void rdaxfs_cond_resched(void);
/* Monotonic clock in nanoseconds (ktime_get_mono_fast_ns: no seqcount
 * retry loop or lock tracking, cheap enough for per-transaction timing). */
u64 rdaxfs_ktime_ns(void);
/* Opens @file on the dentry it was created with (finish_open_simple). */
int rdaxfs_finish_open_simple(struct file *file);

/* TEST ONLY: the pmem store trace of the crash-state explorer (helpers.c). */
extern bool rdaxfs_trace_enabled;
void rdaxfs_trace_store(u64 off, const void *src, u32 len, bool data);
void rdaxfs_trace_zero(u64 off, u64 len);
void rdaxfs_trace_fence(void);
void rdaxfs_trace_init(void);
void rdaxfs_trace_exit(void);
bool rdaxfs_bug_dirent_before_inode(void);
