//! A deterministic tree that the guest writes to pmem and the host reads
//! back from the NVDIMM backing file after the guest has stopped: the data
//! (written by write(2) and by stores through mappings) must be on the
//! device, and the image must be consistent (fsck.rdaxfs -n).

/// Number of files in the tree.
pub const FILES: usize = 40;

/// Path of file `i`, relative to the filesystem root.
pub fn path(i: usize) -> String {
    format!("export/d{}/f{i}", i % 5)
}

/// Size of file `i`: block-boundary cases and multi-MiB files.
pub fn len(i: usize) -> usize {
    const SIZES: [usize; 8] = [0, 1, 4095, 4096, 4097, 65_553, 1 << 20, 3 << 20];
    SIZES[i % SIZES.len()] + if i.is_multiple_of(8) { 0 } else { i }
}

/// Byte `off` of file `i`.
pub fn byte(i: usize, off: usize) -> u8 {
    (off.wrapping_mul(31) ^ i.wrapping_mul(7) ^ (off >> 12)) as u8
}

/// The whole content of file `i`.
pub fn content(i: usize) -> Vec<u8> {
    (0..len(i)).map(|o| byte(i, o)).collect()
}

/// Whether file `i` is written through a shared mapping (else write(2)).
pub fn via_mmap(i: usize) -> bool {
    i.is_multiple_of(3) && len(i) > 0
}
