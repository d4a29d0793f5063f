// SPDX-License-Identifier: GPL-2.0
/*
 * rdaxfs C helpers: wrappers for static inline functions and macros, and the
 * module parameters. See helpers.h.
 */
#include <linux/dax.h>
#include <linux/delay.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/pagemap.h>
#include <linux/wait_bit.h>
#include <linux/xarray.h>
#include <linux/uaccess.h>
#include <linux/version.h>
#include "helpers.h"

/*
 * rdaxfs builds against 6.12 and 7.3 (the Rust side has the matching
 * `#[cfg(rdaxfs_k73)]`, set by Kbuild from the same version).
 */
#define RDAXFS_K73 (LINUX_VERSION_CODE >= KERNEL_VERSION(7, 3, 0))

void rdaxfs_inode_lock(struct inode *inode) { inode_lock(inode); }
void rdaxfs_inode_unlock(struct inode *inode) { inode_unlock(inode); }
void rdaxfs_inode_lock_shared(struct inode *inode) { inode_lock_shared(inode); }
void rdaxfs_inode_unlock_shared(struct inode *inode) { inode_unlock_shared(inode); }
void rdaxfs_invalidate_lock(struct address_space *m) { filemap_invalidate_lock(m); }
void rdaxfs_invalidate_unlock(struct address_space *m) { filemap_invalidate_unlock(m); }
void rdaxfs_invalidate_lock_shared(struct address_space *m) { filemap_invalidate_lock_shared(m); }
void rdaxfs_invalidate_unlock_shared(struct address_space *m) { filemap_invalidate_unlock_shared(m); }
loff_t rdaxfs_i_size_read(const struct inode *inode) { return i_size_read(inode); }
void rdaxfs_i_size_write(struct inode *inode, loff_t size) { i_size_write(inode, size); }
void rdaxfs_sb_start_pagefault(struct super_block *sb) { sb_start_pagefault(sb); }
void rdaxfs_sb_end_pagefault(struct super_block *sb) { sb_end_pagefault(sb); }
void rdaxfs_sb_start_write(struct super_block *sb) { sb_start_write(sb); }
void rdaxfs_sb_end_write(struct super_block *sb) { sb_end_write(sb); }

#if RDAXFS_K73
/*
 * 7.3 (since 6.15): fsdax pages are refcounted folios whose idle count is 0
 * and whose waker is wake_up_var(page) (mm/memremap.c); fs/dax.c scans
 * unmapped files too. These are the pieces of fs/dax.c's dax_break_layout()
 * and dax_break_layout_final(), which rdaxfs runs as its own loop (it counts
 * the waits and has test-only switches inside it).
 */
static long rdaxfs_wait_dax_page_timeout(struct address_space *mapping, long timeout)
{
	filemap_invalidate_unlock(mapping);
	timeout = schedule_timeout(timeout);
	filemap_invalidate_lock(mapping);
	return timeout;
}

int rdaxfs_wait_dax_page_idle(struct page *page, struct address_space *mapping)
{
	long r;

	/*
	 * fs/dax.c wait_page_idle() with ext4_wait_dax_page() as callback,
	 * bounded: since 6.15 a mapping holds a reference on the folio, so a
	 * page that a DMA thread faults back in while the invalidate lock is
	 * dropped never gets back to 0 (nor wakes us) when its pin goes; it
	 * is idle again only once unmapped. After 100 ms without a wake, return
	 * as if woken: the caller scans again, which unmaps the range anew
	 * (with the lock held) and finds the page busy or not.
	 */
	r = ___wait_var_event(page, ___wait_cond_timeout(dax_page_is_idle(page)),
			      TASK_INTERRUPTIBLE, 0, msecs_to_jiffies(100),
			      __ret = rdaxfs_wait_dax_page_timeout(mapping, __ret));
	return r < 0 ? r : 0;
}

struct page *rdaxfs_dax_busy_page_range(struct address_space *mapping, loff_t start, loff_t end)
{
	struct page *page = dax_layout_busy_page_range(mapping, start, end);

	/*
	 * Nothing pinned: drop the range's DAX entries, as dax_break_layout()
	 * and dax_break_layout_final() do once no page is busy (the truncate
	 * that follows then finds no entry whose folio it would have to put).
	 */
	if (!page && dax_mapping(mapping))
		dax_delete_mapping_range(mapping, start, end);
	return page;
}

struct page *rdaxfs_dax_busy_page_range_mapped_only(struct address_space *mapping, loff_t start,
						    loff_t end)
{
	/* TEST ONLY: 6.12's scan, blind once no process maps the file. */
	if (!mapping_mapped(mapping))
		return NULL;
	return dax_layout_busy_page_range(mapping, start, end);
}

void rdaxfs_wait_dax_page_idle_final(struct page *page)
{
	/* fs/dax.c wait_page_idle_uninterruptible(). */
	___wait_var_event(page, dax_page_is_idle(page), TASK_UNINTERRUPTIBLE, 0, 0, schedule());
}

void rdaxfs_dax_break_layout_final(struct inode *inode)
{
	/* Required at eviction since 6.15; finds nothing busy after our loop. */
	dax_break_layout_final(inode);
}
#else
static void rdaxfs_wait_dax_page(struct address_space *mapping)
{
	filemap_invalidate_unlock(mapping);
	schedule();
	filemap_invalidate_lock(mapping);
}

int rdaxfs_wait_dax_page_idle(struct page *page, struct address_space *mapping)
{
	/* 6.12: an idle fsdax page has refcount 1 (see mm/memremap.c). */
	return ___wait_var_event(&page->_refcount,
				 atomic_read(&page->_refcount) == 1,
				 TASK_INTERRUPTIBLE, 0, 0,
				 rdaxfs_wait_dax_page(mapping));
}
/*
 * The DAX entry encoding of 6.12's fs/dax.c, private there: an XArray value
 * entry holding four flag bits and the pfn above them. Only
 * rdaxfs_dax_busy_page_range() below reads it.
 */
#define RDAXFS_DAX_SHIFT	4
#define RDAXFS_DAX_PMD		(1UL << 1)
#define RDAXFS_DAX_ZERO_PAGE	(1UL << 2)
#define RDAXFS_DAX_EMPTY	(1UL << 3)

/* fs/dax.c dax_busy_page(): a page of @entry with an extra reference. */
static struct page *rdaxfs_dax_entry_busy(void *entry)
{
	unsigned long v = xa_to_value(entry);
	unsigned long pfn = v >> RDAXFS_DAX_SHIFT;
	unsigned long n;

	/* Zero-page and empty (lock-only) entries map no block. */
	if (v & (RDAXFS_DAX_ZERO_PAGE | RDAXFS_DAX_EMPTY))
		return NULL;
	n = (v & RDAXFS_DAX_PMD) ? 1UL << PMD_ORDER : 1;
	for (; n; n--, pfn++) {
		struct page *page = pfn_to_page(pfn);

		if (page_ref_count(page) > 1)
			return page;
	}
	return NULL;
}

struct page *rdaxfs_dax_busy_page_range(struct address_space *mapping, loff_t start, loff_t end)
{
	pgoff_t start_idx = start >> PAGE_SHIFT;
	pgoff_t end_idx = end == LLONG_MAX ? ULONG_MAX : end >> PAGE_SHIFT;
	XA_STATE(xas, &mapping->i_pages, start_idx);
	unsigned int scanned = 0;
	struct page *page = NULL;
	void *entry;

	if (IS_ENABLED(CONFIG_FS_DAX_LIMITED) || !dax_mapping(mapping))
		return NULL;
	/*
	 * As upstream: with the range unmapped from every process a new pin
	 * must fault, and the fault waits for the caller's invalidate lock.
	 * (A no-op when nothing maps the file.)
	 */
	unmap_mapping_pages(mapping, start_idx, end_idx - start_idx + 1, false);

	xas_lock_irq(&xas);
	xas_for_each(&xas, entry, end_idx) {
		if (WARN_ON_ONCE(!xa_is_value(entry)))
			continue;
		/*
		 * A locked entry is read as it is: no fault can change it under
		 * the caller's exclusion, and writeback and memory-failure lock
		 * an entry without changing its pfn.
		 */
		page = rdaxfs_dax_entry_busy(entry);
		if (page)
			break;
		if (++scanned % XA_CHECK_SCHED)
			continue;
		xas_pause(&xas);
		xas_unlock_irq(&xas);
		cond_resched();
		xas_lock_irq(&xas);
	}
	xas_unlock_irq(&xas);
	return page;
}

struct page *rdaxfs_dax_busy_page_range_mapped_only(struct address_space *mapping, loff_t start,
						    loff_t end)
{
	/* TEST ONLY: 6.12's own scan, blind once no process maps the file. */
	return dax_layout_busy_page_range(mapping, start, end);
}

void rdaxfs_wait_dax_page_idle_final(struct page *page)
{
	___wait_var_event(&page->_refcount, atomic_read(&page->_refcount) == 1,
			  TASK_UNINTERRUPTIBLE, 0, 0, schedule());
}

void rdaxfs_dax_break_layout_final(struct inode *inode) { }
#endif /* RDAXFS_K73 */

/*
 * Test-only switches. Each one reintroduces a historical DAX data-loss bug so
 * that the guest suite can prove its reproducer catches it. Never set them on
 * a filesystem whose data matters.
 */
static bool bug_zero_outside_lock;
module_param(bug_zero_outside_lock, bool, 0644);
MODULE_PARM_DESC(bug_zero_outside_lock, "TEST ONLY, loses data: zero new blocks after dropping the allocation lock (xfs 2015 race)");
static bool bug_skip_break_layouts;
module_param(bug_skip_break_layouts, bool, 0644);
MODULE_PARM_DESC(bug_skip_break_layouts, "TEST ONLY, corrupts data: free blocks without waiting for DMA pins");
static bool bug_break_layouts_once;
module_param(bug_break_layouts_once, bool, 0644);
MODULE_PARM_DESC(bug_break_layouts_once, "TEST ONLY, corrupts data: stop break-layouts after one busy page (ext4 2018 bug)");
static bool bug_drop_commit_fence;
module_param(bug_drop_commit_fence, bool, 0644);
MODULE_PARM_DESC(bug_drop_commit_fence, "TEST ONLY, breaks crash consistency: no fence between a transaction's commit header and its in-place stores");
static unsigned int inject_tx_error;
module_param(inject_tx_error, uint, 0644);
MODULE_PARM_DESC(inject_tx_error, "TEST ONLY: fail every Nth metadata transaction with EIO before it commits (0: never)");
static bool bug_busy_scan_mapped_only;
module_param(bug_busy_scan_mapped_only, bool, 0644);
MODULE_PARM_DESC(bug_busy_scan_mapped_only, "TEST ONLY, corrupts data: truncate/punch/collapse/insert look for DMA pins only while the file is mapped (6.12 dax_layout_busy_page_range)");
static bool bug_evict_skip_wait;
module_param(bug_evict_skip_wait, bool, 0644);
MODULE_PARM_DESC(bug_evict_skip_wait, "TEST ONLY, corrupts data: evict inodes (unlink, unmount) without waiting for DMA pins");
static unsigned int bug_delay_us;
module_param(bug_delay_us, uint, 0644);
MODULE_PARM_DESC(bug_delay_us, "TEST ONLY: widen racy windows by this many microseconds");

bool rdaxfs_bug_zero_outside_lock(void) { return READ_ONCE(bug_zero_outside_lock); }
bool rdaxfs_bug_skip_break_layouts(void) { return READ_ONCE(bug_skip_break_layouts); }
bool rdaxfs_bug_break_layouts_once(void) { return READ_ONCE(bug_break_layouts_once); }
bool rdaxfs_bug_drop_commit_fence(void) { return READ_ONCE(bug_drop_commit_fence); }
bool rdaxfs_bug_busy_scan_mapped_only(void) { return READ_ONCE(bug_busy_scan_mapped_only); }
bool rdaxfs_bug_evict_skip_wait(void) { return READ_ONCE(bug_evict_skip_wait); }
unsigned int rdaxfs_bug_delay_us(void) { return READ_ONCE(bug_delay_us); }
static unsigned int test_commit_delay_us;
module_param(test_commit_delay_us, uint, 0644);
MODULE_PARM_DESC(test_commit_delay_us, "TEST ONLY: sleep this long between a transaction's durable commit and its in-place stores (a power cut then likely leaves a transaction to replay)");
unsigned int rdaxfs_test_commit_delay_us(void) { return READ_ONCE(test_commit_delay_us); }
unsigned int rdaxfs_inject_tx_error(void) { return READ_ONCE(inject_tx_error); }


#include <linux/blkdev.h>
#include <linux/dax.h>
#include <linux/libnvdimm.h>
#include <linux/seq_file.h>
#include <linux/uio.h>

unsigned int rdaxfs_i_uid_read(const struct inode *inode) { return i_uid_read(inode); }
unsigned int rdaxfs_i_gid_read(const struct inode *inode) { return i_gid_read(inode); }
void rdaxfs_i_uid_write(struct inode *inode, unsigned int uid) { i_uid_write(inode, uid); }
void rdaxfs_i_gid_write(struct inode *inode, unsigned int gid) { i_gid_write(inode, gid); }

/* Times in the order atime, mtime, ctime. */
void rdaxfs_inode_get_times(const struct inode *inode, s64 *sec, u32 *nsec)
{
	struct timespec64 t[3] = { inode_get_atime(inode), inode_get_mtime(inode), inode_get_ctime(inode) };
	int i;

	for (i = 0; i < 3; i++) {
		sec[i] = t[i].tv_sec;
		nsec[i] = t[i].tv_nsec;
	}
}

void rdaxfs_inode_set_times(struct inode *inode, const s64 *sec, const u32 *nsec)
{
	inode_set_atime(inode, sec[0], nsec[0]);
	inode_set_mtime(inode, sec[1], nsec[1]);
	inode_set_ctime(inode, sec[2], nsec[2]);
}

struct inode *rdaxfs_file_inode(const struct file *file) { return file_inode(file); }
struct inode *rdaxfs_d_inode(const struct dentry *dentry) { return d_inode(dentry); }
bool rdaxfs_dir_emit(struct dir_context *ctx, const char *name, int len, u64 ino, unsigned int type)
{
	return dir_emit(ctx, name, len, ino, type);
}
void rdaxfs_file_accessed(struct file *file) { file_accessed(file); }

/*
 * The index of the first DAX entry of `mapping` in [first, last] (a
 * zero-page entry, or the locked empty entry a fault holds while it asks
 * the filesystem), or last + 1 if there is none.
 */
unsigned long rdaxfs_mapping_next_entry(struct address_space *mapping, unsigned long first, unsigned long last)
{
	unsigned long index = first;

	if (!xa_find(&mapping->i_pages, &index, last, XA_PRESENT))
		return last + 1;
	return index < first ? first : index;
}
ssize_t rdaxfs_generic_write_sync(struct kiocb *iocb, ssize_t count) { return generic_write_sync(iocb, count); }
size_t rdaxfs_iov_iter_count(const struct iov_iter *i) { return iov_iter_count(i); }
void rdaxfs_iov_iter_truncate(struct iov_iter *i, u64 count) { iov_iter_truncate(i, count); }
bool rdaxfs_is_sync_mapping(struct vm_area_struct *vma) { return vma->vm_flags & VM_SYNC; }
struct file *rdaxfs_vmf_file(const struct vm_fault *vmf) { return vmf->vma->vm_file; }
bool rdaxfs_vmf_write(const struct vm_fault *vmf)
{
	return (vmf->flags & FAULT_FLAG_WRITE) && (vmf->vma->vm_flags & VM_SHARED);
}
void rdaxfs_vma_set_dax(struct vm_area_struct *vma) { vm_flags_set(vma, VM_HUGEPAGE); }
void rdaxfs_seq_puts(struct seq_file *m, const char *s) { seq_puts(m, s); }

/* Metadata goes to pmem with cache-bypassing stores, ordered by the fence. */
void rdaxfs_pmem_copy_to(void *dst, const void *src, size_t len) { memcpy_flushcache(dst, src, len); }
void rdaxfs_pmem_zero(void *dst, size_t len)
{
	const void *zero = page_address(ZERO_PAGE(0));
	size_t off;

	for (off = 0; off < len; off += PAGE_SIZE)
		memcpy_flushcache(dst + off, zero, PAGE_SIZE);
}
void rdaxfs_pmem_copy_from(void *dst, const void *src, size_t len) { memcpy(dst, src, len); }
void rdaxfs_pmem_fence(void) { pmem_wmb(); }
/* Metadata reads: a machine check on poison returns the bytes not copied. */
unsigned long rdaxfs_copy_mc(void *dst, const void *src, size_t len) { return copy_mc_to_kernel(dst, src, len); }
void rdaxfs_delay_us(unsigned int us) { if (us) usleep_range(us, us + us / 4 + 1); }
void rdaxfs_set_dax_inode(struct inode *inode) { inode->i_flags |= S_DAX; }
bool rdaxfs_dir_emit_dots(struct file *file, struct dir_context *ctx) { return dir_emit_dots(file, ctx); }
u64 rdaxfs_bdev_nr_bytes(struct block_device *bdev) { return bdev_nr_bytes(bdev); }
const unsigned char *rdaxfs_dentry_name(const struct dentry *d, u32 *len)
{
	*len = d->d_name.len;
	return d->d_name.name;
}
void rdaxfs_set_inode_link(struct inode *inode, char *link) { inode->i_link = link; }
bool rdaxfs_inode_is_new(struct inode *inode)
{
#if RDAXFS_K73
	return inode_state_read_once(inode) & I_NEW; /* i_state is a wrapped type in 7.3 */
#else
	return inode->i_state & I_NEW;
#endif
}
void rdaxfs_touch_cmtime(struct inode *inode) { inode_set_mtime_to_ts(inode, inode_set_ctime_current(inode)); }

#include <linux/debugfs.h>

static struct dentry *rdaxfs_debugfs_root;

void rdaxfs_debugfs_init(void)
{
	rdaxfs_debugfs_root = debugfs_create_dir("rdaxfs", NULL);
	rdaxfs_trace_init();
}

void rdaxfs_debugfs_exit(void)
{
	debugfs_remove_recursive(rdaxfs_debugfs_root);
	rdaxfs_trace_exit();
}

struct dentry *rdaxfs_debugfs_add(const char *dev, u64 *vals, const char *const *names, unsigned int n)
{
	struct dentry *dir = debugfs_create_dir(dev, rdaxfs_debugfs_root);
	unsigned int i;

	for (i = 0; i < n; i++)
		debugfs_create_u64(names[i], 0444, dir, &vals[i]);
	return dir;
}

void rdaxfs_debugfs_remove(struct dentry *dir) { debugfs_remove_recursive(dir); }
bool rdaxfs_mmap_supported(struct vm_area_struct *vma, struct dax_device *dax_dev)
{
#if RDAXFS_K73
	/* daxdev_mapping_supported() takes a vm_area_desc (mmap_prepare) now. */
	if (!(vma->vm_flags & VM_SYNC))
		return true;
	if (!IS_DAX(file_inode(vma->vm_file)))
		return false;
	return dax_synchronous(dax_dev);
#else
	return daxdev_mapping_supported(vma, dax_dev);
#endif
}

void rdaxfs_cond_resched(void) { cond_resched(); }
u64 rdaxfs_ktime_ns(void) { return ktime_get_mono_fast_ns(); }
int rdaxfs_finish_open_simple(struct file *file) { return finish_open_simple(file, 0); }
/*
 * TEST ONLY: the pmem store trace behind the crash-state explorer
 * (tools/src/crashstate.rs). While on, every metadata store, zeroing and
 * fence rdaxfs makes through DaxDev (rust/glue/dax.rs), the bytes write(2)
 * copied through DAX, and the syscall markers a test writes to
 * /sys/kernel/debug/rdaxfs/trace_ctl are appended to one buffer, read back
 * from /sys/kernel/debug/rdaxfs/trace. Off, it costs the filesystem one
 * load and branch per DaxDev call (rdaxfs_trace_enabled).
 *
 * Layout: a 16-byte header ("RDXTRACE", u32 version 1, u32 flags, bit 0 =
 * overflowed), then records of a 16-byte head (u8 kind, 3 pad, u32 len,
 * u64 off) and, for stores and data, len bytes. Kinds: 1 store, 2 fence,
 * 3 begin (off = marker number), 4 end, 5 zero (len bytes at off now read
 * zero), 6 data (a store of file data).
 */
#include <linux/spinlock.h>
#include <linux/unaligned.h>
#include <linux/vmalloc.h>

bool rdaxfs_trace_enabled;
static DEFINE_SPINLOCK(rdaxfs_trace_lock);
static u8 *rdaxfs_trace_buf;
static size_t rdaxfs_trace_len, rdaxfs_trace_cap;
static bool rdaxfs_trace_overflow;
static unsigned int rdaxfs_trace_fences; /* fences since the last begin marker */

static unsigned int trace_buf_mib = 16;
module_param(trace_buf_mib, uint, 0644);
MODULE_PARM_DESC(trace_buf_mib, "TEST ONLY: size of the pmem store trace buffer (allocated when tracing starts)");
static bool bug_dirent_before_inode;
module_param(bug_dirent_before_inode, bool, 0644);
MODULE_PARM_DESC(bug_dirent_before_inode, "TEST ONLY, breaks crash consistency: create publishes the directory entry before writing the inode");

bool rdaxfs_bug_dirent_before_inode(void) { return READ_ONCE(bug_dirent_before_inode); }

#define RDAXFS_TRACE_HDR 16

/* Appends one record; the caller holds rdaxfs_trace_lock. */
static void rdaxfs_trace_put(u8 kind, u64 off, const void *src, u32 len, bool copy)
{
	size_t need = 16 + (copy ? len : 0);
	u8 *p;

	if (!rdaxfs_trace_buf)
		return;
	if (rdaxfs_trace_len + need > rdaxfs_trace_cap) {
		rdaxfs_trace_overflow = true;
		return;
	}
	p = rdaxfs_trace_buf + rdaxfs_trace_len;
	memset(p, 0, 16);
	p[0] = kind;
	put_unaligned_le32(len, p + 4);
	put_unaligned_le64(off, p + 8);
	if (copy)
		memcpy(p + 16, src, len);
	rdaxfs_trace_len += need;
}

void rdaxfs_trace_store(u64 off, const void *src, u32 len, bool data)
{
	spin_lock(&rdaxfs_trace_lock);
	if (READ_ONCE(rdaxfs_trace_enabled))
		rdaxfs_trace_put(data ? 6 : 1, off, src, len, true);
	spin_unlock(&rdaxfs_trace_lock);
}

void rdaxfs_trace_zero(u64 off, u64 len)
{
	spin_lock(&rdaxfs_trace_lock);
	if (READ_ONCE(rdaxfs_trace_enabled))
		rdaxfs_trace_put(5, off, NULL, len, false);
	spin_unlock(&rdaxfs_trace_lock);
}

void rdaxfs_trace_fence(void)
{

	spin_lock(&rdaxfs_trace_lock);
	if (READ_ONCE(rdaxfs_trace_enabled)) {
		rdaxfs_trace_fences++;
		rdaxfs_trace_put(2, 0, NULL, 0, false);
	}
	spin_unlock(&rdaxfs_trace_lock);
}

static ssize_t rdaxfs_trace_read(struct file *f, char __user *ubuf, size_t count, loff_t *ppos)
{
	ssize_t r;

	spin_lock(&rdaxfs_trace_lock);
	if (rdaxfs_trace_buf)
		put_unaligned_le32(rdaxfs_trace_overflow ? 1 : 0, rdaxfs_trace_buf + 12);
	spin_unlock(&rdaxfs_trace_lock);
	/* Read only while tracing is stopped (the test does); len only grows. */
	if (!rdaxfs_trace_buf)
		return 0;
	r = simple_read_from_buffer(ubuf, count, ppos, rdaxfs_trace_buf, READ_ONCE(rdaxfs_trace_len));
	return r;
}

static ssize_t rdaxfs_trace_ctl_write(struct file *f, const char __user *ubuf, size_t count, loff_t *ppos)
{
	char cmd[32];
	size_t n = min(count, sizeof(cmd) - 1);
	unsigned int num;
	u8 *buf;

	if (copy_from_user(cmd, ubuf, n))
		return -EFAULT;
	cmd[n] = 0;
	if (!strncmp(cmd, "start", 5)) {
		if (!rdaxfs_trace_buf) {
			size_t cap = (size_t)clamp(trace_buf_mib, 1U, 1024U) << 20;

			buf = vmalloc(cap);
			if (!buf)
				return -ENOMEM;
			spin_lock(&rdaxfs_trace_lock);
			if (!rdaxfs_trace_buf) {
				rdaxfs_trace_buf = buf;
				rdaxfs_trace_cap = cap;
				buf = NULL;
			}
			spin_unlock(&rdaxfs_trace_lock);
			vfree(buf);
		}
		spin_lock(&rdaxfs_trace_lock);
		memcpy(rdaxfs_trace_buf, "RDXTRACE", 8);
		put_unaligned_le32(1, rdaxfs_trace_buf + 8);
		put_unaligned_le32(0, rdaxfs_trace_buf + 12);
		rdaxfs_trace_len = RDAXFS_TRACE_HDR;
		rdaxfs_trace_overflow = false;
		rdaxfs_trace_fences = 0;
		WRITE_ONCE(rdaxfs_trace_enabled, true);
		spin_unlock(&rdaxfs_trace_lock);
	} else if (!strncmp(cmd, "stop", 4)) {
		WRITE_ONCE(rdaxfs_trace_enabled, false);
		/* Any DaxDev call that saw the flag on finishes under the lock. */
		spin_lock(&rdaxfs_trace_lock);
		spin_unlock(&rdaxfs_trace_lock);
	} else if (sscanf(cmd, "begin %u", &num) == 1) {
		spin_lock(&rdaxfs_trace_lock);
		if (rdaxfs_trace_enabled) {
			rdaxfs_trace_put(3, num, NULL, 0, false);
			rdaxfs_trace_fences = 0;
		}
		spin_unlock(&rdaxfs_trace_lock);
	} else if (sscanf(cmd, "end %u", &num) == 1) {
		spin_lock(&rdaxfs_trace_lock);
		if (rdaxfs_trace_enabled)
			rdaxfs_trace_put(4, num, NULL, 0, false);
		spin_unlock(&rdaxfs_trace_lock);
	} else {
		return -EINVAL;
	}
	return count;
}

static const struct file_operations rdaxfs_trace_fops = {
	.owner = THIS_MODULE,
	.read = rdaxfs_trace_read,
	.llseek = default_llseek,
};

static const struct file_operations rdaxfs_trace_ctl_fops = {
	.owner = THIS_MODULE,
	.write = rdaxfs_trace_ctl_write,
	.llseek = noop_llseek,
};

void rdaxfs_trace_init(void)
{
	debugfs_create_file("trace", 0400, rdaxfs_debugfs_root, NULL, &rdaxfs_trace_fops);
	debugfs_create_file("trace_ctl", 0200, rdaxfs_debugfs_root, NULL, &rdaxfs_trace_ctl_fops);
}

/* Module exit, after the debugfs files are gone. */
void rdaxfs_trace_exit(void)
{
	WRITE_ONCE(rdaxfs_trace_enabled, false);
	vfree(rdaxfs_trace_buf);
	rdaxfs_trace_buf = NULL;
}
