//! Helpers for tests and fuzzing: a seeded PRNG and random file trees.

use std::collections::BTreeMap;

use crate::build::{Builder, Meta};
use crate::dev::Dev;
use crate::format::*;
use crate::fs::{Fs, Result};

/// xorshift64* PRNG: deterministic, seedable, no dependencies.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is remapped).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

/// What a test expects to find in an image, by path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A directory.
    Dir,
    /// A regular file with these contents.
    File(Vec<u8>),
    /// A symlink to this target.
    Symlink(Vec<u8>),
}

/// A deterministic pseudo-random name.
pub fn random_name(rng: &mut Rng, i: usize) -> String {
    let len = 1 + rng.below(40) as usize;
    let mut s = format!("n{i}_");
    for _ in 0..len {
        s.push((b'a' + rng.below(26) as u8) as char);
    }
    s
}

/// Builds a random tree of about `files` entries directly with the
/// builder; returns the expected contents by path.
pub fn random_tree<D: Dev>(
    b: &mut Builder<D>,
    rng: &mut Rng,
    files: usize,
    max_file: u64,
) -> Result<BTreeMap<String, Node>> {
    let mut expect = BTreeMap::new();
    let root = b.fs.sb.root_ino;
    let mut dirs = vec![(root, String::new())];
    let meta = Meta {
        perm: 0o644,
        ..Meta::default()
    };
    for i in 0..files {
        let (parent, ppath) = dirs[rng.below(dirs.len() as u64) as usize].clone();
        let name = random_name(rng, i);
        let path = format!("{ppath}/{name}");
        match rng.below(10) {
            0..=1 => {
                let ino = b.mkdir(parent, name.as_bytes(), meta)?;
                dirs.push((ino, path.clone()));
                expect.insert(path, Node::Dir);
            }
            2 => {
                let t = format!("target/{}", random_name(rng, i));
                b.symlink(parent, name.as_bytes(), t.as_bytes(), meta)?;
                expect.insert(path, Node::Symlink(t.into_bytes()));
            }
            _ => {
                let mut data = vec![0u8; rng.below(max_file + 1) as usize];
                rng.fill(&mut data);
                b.create_file(
                    parent,
                    name.as_bytes(),
                    meta,
                    &mut &data[..],
                    data.len() as u64,
                )?;
                expect.insert(path, Node::File(data));
            }
        }
    }
    Ok(expect)
}

/// Checks that every expected path is in the image with the right
/// contents and that nothing else is.
pub fn verify_tree<D: Dev>(fs: &mut Fs<D>, expect: &BTreeMap<String, Node>) -> Result<()> {
    let mut found = BTreeMap::new();
    collect(fs, fs.sb.root_ino, String::new(), &mut found)?;
    if found.len() != expect.len() {
        return crate::fs::err(format!(
            "image holds {} entries, expected {}",
            found.len(),
            expect.len()
        ));
    }
    for (path, want) in expect {
        if found.get(path) != Some(want) {
            return crate::fs::err(format!("{path}: contents differ"));
        }
    }
    Ok(())
}

fn collect<D: Dev>(
    fs: &mut Fs<D>,
    dir: u64,
    prefix: String,
    out: &mut BTreeMap<String, Node>,
) -> Result<()> {
    for e in fs.read_dir(dir)? {
        let path = format!("{prefix}/{}", String::from_utf8_lossy(&e.name));
        let node = match e.file_type {
            DT_DIR => {
                collect(fs, e.ino, path.clone(), out)?;
                Node::Dir
            }
            DT_LNK => Node::Symlink(fs.read_file(e.ino)?),
            _ => Node::File(fs.read_file(e.ino)?),
        };
        out.insert(path, node);
    }
    Ok(())
}

/// A 16 MiB in-memory image holding a random tree (seeded).
pub fn small_image(seed: u64) -> crate::dev::SparseDev {
    let dev = crate::dev::SparseDev::new(MIN_DEVICE_BYTES);
    let sb = Superblock::new_geometry(MIN_DEVICE_BYTES, Some(256)).expect("geometry");
    let mut b = Builder::format(
        dev,
        sb,
        Meta {
            perm: 0o755,
            ..Meta::default()
        },
    )
    .expect("format");
    let mut rng = Rng::new(seed);
    random_tree(&mut b, &mut rng, 60, 20_000).expect("tree");
    // A fragmented file with an overflow extent chain.
    let ino = b.alloc_inode().expect("inode");
    let mut inode = crate::build::new_inode(S_IFREG | 0o600, Meta::default());
    inode.nlink = 1;
    let mut gaps = Vec::new();
    let exts: Vec<Extent> = (0..20)
        .map(|i| {
            let (p, _) = b.alloc_blocks(1, 0, false).expect("blocks");
            gaps.push(b.alloc_blocks(1, 0, false).expect("gap").0);
            Extent {
                logical: i * 2,
                physical: p,
                len: 1,
            }
        })
        .collect();
    for g in gaps {
        bit_clear(&mut b.bbm, g).expect("gap");
    }
    inode.size = 40 * BLOCK_SIZE_U64;
    b.set_extents(ino, &mut inode, &exts).expect("extents");
    let root = b.fs.sb.root_ino;
    b.add_entry(root, b"fragmented", ino, DT_REG)
        .expect("entry");
    b.finish().expect("finish").dev
}

/// Applies fuzzer/test mutations to the metadata-bearing (written) blocks
/// of a sparse image: each 5-byte record picks a written block, an offset
/// and a byte to XOR in; a record with the top bit of its first byte set
/// writes the byte instead.
pub fn mutate(dev: &mut crate::dev::SparseDev, data: &[u8]) {
    let keys: Vec<u64> = dev.blocks.keys().copied().collect();
    if keys.is_empty() {
        return;
    }
    for r in data.chunks_exact(5) {
        let which = u16::from_le_bytes([r[0], r[1]]) as usize % keys.len();
        let off = u16::from_le_bytes([r[2], r[3]]) as usize % BLOCK_SIZE;
        if let Some(b) = dev.blocks.get_mut(&keys[which]) {
            if r[0] & 0x80 != 0 {
                b[off] = r[4];
            } else {
                b[off] ^= r[4];
            }
        }
    }
}
