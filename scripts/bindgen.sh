#!/usr/bin/env bash
# Generate Rust bindings for the headers rdaxfs needs beyond kernel::bindings
# (linux/iomap.h, linux/dax.h, fs_context, ...) with the kernel's own bindgen
# invocation: the options and clang flags are taken from the command the
# kernel recorded for rust/bindings/bindings_generated.rs, so the layout of
# every struct matches what the C compiler sees.
# Usage: bindgen.sh HEADER OUT [KERNEL-OBJTREE]
# (the objtree defaults to the cwd: 6.12 runs module builds there; 7.3 runs
# them in the module's directory and Kbuild passes $(objtree)).
set -euo pipefail
header=$(realpath "$1") out=$(realpath -m "$2")
# The recorded flags hold paths relative to the objtree: run from there.
cd "${3:-.}"
cmdfile=rust/bindings/.bindings_generated.rs.cmd
[ -f "$cmdfile" ] || { echo "bindgen.sh: $PWD/$cmdfile missing: is this a built Rust-enabled kernel tree?" >&2; exit 1; }
saved=$(sed -n 's/^savedcmd_[^ ]* := //p' "$cmdfile")
# "<bindgen> <kheader> <options> -o <kout> -- <clang flags> ; <post-processing>"
bindgen_bin=$(awk '{print $1}' <<<"$saved")
opts=$(sed -E 's/^[^ ]+ [^ ]+ (.*) -o [^ ]+ -- .*$/\1/' <<<"$saved")
# 7.3 tags a few enums with CFI encodings ('$(pound)[cfi_encoding=..]', a
# make variable, and a feature the module crate does not enable): rdaxfs
# needs none of them, and the kernel it runs on has no CFI.
opts=$(sed -E "s/--with-attribute-custom-enum=[^ ]+//g" <<<"$opts")
cflags=$(sed -E 's/^.* -o [^ ]+ -- (.*)$/\1/; s/ ;.*$//' <<<"$saved")
# Drop the dependency-file and per-object defines of the kernel's own target.
cflags=$(sed -E "s/-Wp,-MMD,[^ ]+//; s/-DKBUILD_[A-Z]+='[^']*'//g; s/-D__KBUILD_MODNAME=[^ ]+//" <<<"$cflags")
dir=$(dirname "$header")
allow=(
  --blocklist-item 'IOMAP_NULL_ADDR'
  --allowlist-function 'rdaxfs_.*'
  --allowlist-function 'dax_.*|fs_dax_.*|fs_put_dax'
  --allowlist-function 'iomap_.*'
  --allowlist-function 'get_tree_bdev|kill_block_super|register_filesystem|unregister_filesystem'
  --allowlist-function 'inode_init_once|iget_locked|unlock_new_inode|iget_failed|iput|ihold|new_inode|insert_inode_hash|inode_init_owner|init_special_inode|inode_nohighmem|clear_inode|mark_inode_dirty|__mark_inode_dirty|set_nlink|inc_nlink|drop_nlink|clear_nlink|inode_set_ctime_current|current_time|is_bad_inode|make_bad_inode|inode_needs_sync|inode_newsize_ok|generic_fillattr|setattr_prepare|setattr_copy|inode_dio_wait|file_remove_privs|file_update_time|file_modified|touch_atime'
  --allowlist-function 'd_make_root|d_instantiate|d_instantiate_new|d_splice_alias|d_tmpfile|dput|dget_parent'
  --allowlist-function 'generic_.*|simple_.*|noop_.*|page_get_link|page_symlink|vfs_setpos|dir_emit.*|fs_param_.*|fs_parse|fs_umode_to_dtype'
  --allowlist-function 'truncate_.*|unmap_mapping_range|filemap_.*|file_write_and_wait_range|sync_inode_metadata|write_inode_now'
  --allowlist-function 'copy_splice_read|iter_file_splice_write|invalidate_inode_pages2_range'
  --allowlist-function 'bdev_.*|sb_set_blocksize|sb_min_blocksize|super_setup_bdi|deactivate_locked_super'
  --allowlist-function 'blkdev_issue_flush|sync_filesystem'
  --allowlist-function 'thp_get_unmapped_area|vmf_insert_.*|arch_wb_cache_pmem|memcpy_flushcache|__memset|memset'
  --allowlist-function 'nop_mnt_idmap|seq_.*|kobject_.*|debugfs_.*|schedule|msleep|usleep_range_state|fatal_signal_pending|ktime_get.*'
  --allowlist-type 'iomap|iomap_ops|iomap_iter|file_system_type|fs_context_operations|super_operations|inode_operations|file_operations|address_space_operations|vm_operations_struct|fs_parameter_spec|dentry_operations|kstatfs|kstat|iattr'
  --allowlist-var 'rdaxfs_trace_enabled|nop_mnt_idmap|RUST_CONST_HELPER_.*|IOMAP_.*|FALLOC_FL_.*|S_IF.*|DT_.*|FS_REQUIRES_DEV|FS_.*|SB_.*|MS_.*|I_NEW|I_DIRTY_SYNC|ATTR_.*|VM_FAULT_.*|FMODE_.*|FOP_.*|STATX_.*|RENAME_.*|MAX_LFS_FILESIZE|PAGE_SIZE|PMD_ORDER|PAGE_SHIFT|O_.*|IOCB_.*|SEEK_.*|VM_.*|S_DAX|S_.*'
)
# shellcheck disable=SC2086
eval "$bindgen_bin" "$header" "$opts" "${allow[@]@Q}" -o "$out.tmp" -- "$cflags" -I"$dir" -DMODULE
sed -Ei 's/pub const RUST_CONST_HELPER_([a-zA-Z0-9_]*)/pub const \1/g' "$out.tmp"
mv "$out.tmp" "$out"
