/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel headers whose bindings rdaxfs needs and the kernel crate lacks (6.12, 7.3).
 * scripts/bindgen.sh turns this into rust/glue/bindings_generated.rs with the
 * kernel's own bindgen flags; only the items it allowlists are emitted.
 */
#include <linux/blkdev.h>
#include <linux/dax.h>
#include <linux/debugfs.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/huge_mm.h>
#include <linux/iomap.h>
#include <linux/mm.h>
#include <linux/namei.h>
#include <linux/pagemap.h>
#include <linux/version.h>
#if LINUX_VERSION_CODE < KERNEL_VERSION(7, 3, 0)
#include <linux/pfn_t.h> /* gone in 7.3: DAX faults return a plain pfn */
#endif
#include <linux/statfs.h>
#include <linux/uio.h>
#include "helpers.h"

/* Macros with casts that bindgen cannot evaluate (same trick as the kernel's
 * own bindings_helper.h: scripts/bindgen.sh strips the prefix). */
const fop_flags_t RUST_CONST_HELPER_FOP_MMAP_SYNC = FOP_MMAP_SYNC;
const loff_t RUST_CONST_HELPER_MAX_LFS_FILESIZE = MAX_LFS_FILESIZE;
const u64 RUST_CONST_HELPER_IOMAP_NULL_ADDR = IOMAP_NULL_ADDR;
const vm_fault_t RUST_CONST_HELPER_VM_FAULT_SIGBUS = VM_FAULT_SIGBUS;
const vm_fault_t RUST_CONST_HELPER_VM_FAULT_NEEDDSYNC = VM_FAULT_NEEDDSYNC;
const vm_fault_t RUST_CONST_HELPER_VM_FAULT_FALLBACK = VM_FAULT_FALLBACK;
const vm_fault_t RUST_CONST_HELPER_VM_FAULT_NOPAGE = VM_FAULT_NOPAGE;
const unsigned int RUST_CONST_HELPER_FAULT_FLAG_WRITE = FAULT_FLAG_WRITE;
const unsigned long RUST_CONST_HELPER_SB_RDONLY = SB_RDONLY;
const unsigned long RUST_CONST_HELPER_SB_NOSEC = SB_NOSEC;
