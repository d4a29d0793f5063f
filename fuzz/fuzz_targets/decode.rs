//! Every decoder and pure operation of the format crate on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdaxfs_format::*;

fuzz_target!(|data: &[u8]| {
    let mut block = [0u8; BLOCK_SIZE];
    let n = data.len().min(BLOCK_SIZE);
    block[..n].copy_from_slice(&data[..n]);
    let size = data.len() as u64 * 1_000_003;
    if let Ok(sb) = Superblock::decode(data) {
        let _ = sb.validate(size);
        let _ = sb.check_features();
        let _ = inode_location(&sb, size);
    }
    let _ = Superblock::decode(&block);
    if let Ok(i) = Inode::decode(data, 7) {
        let _ = i.check();
        let _ = extents_validate(i.inline_extents(), 512, size);
        let _ = extent_lookup(i.inline_extents(), size);
    }
    let _ = ExtentBlockHeader::decode(&block, 3);
    let mut exts = [Extent::default(); 16];
    let mut len = 0;
    for i in 0..EXTENT_BLOCK_CAPACITY {
        if let Ok(e) = extent_block_entry(&block, i) {
            if let Ok(l) = extents_insert(&mut exts, len, e) {
                len = l;
            }
        }
    }
    let _ = extent_lookup(&exts[..len], size);
    let _ = extents_remove_range(&mut exts, len, size % 4096, size % 777, |_, _| {});
    let _ = dir_check(&block);
    for s in 0..DIR_SLOTS {
        let _ = dir_entry(&block, s);
    }
    let _ = dir_find(&block, data.get(..n.min(300)).unwrap_or(&[]));
    let _ = dir_insert(&mut block, 9, data.get(..n.min(255)).unwrap_or(b"x"), DT_REG);
    let _ = dir_remove(&mut block, (size % 16) as usize);
    let bits = (n as u64) * 8;
    let req = AllocRequest { want: size % 1100, hint: size % (bits + 1), large_file: size & 1 == 0 };
    let _ = choose_blocks(&block, size % 64, bits, req);
    let _ = find_aligned_run(&block, 0, bits, size % 97, size % 600, 512);
});
