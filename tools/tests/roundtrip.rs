//! mkfs / fsck on fresh images of many sizes, and random trees read back.

mod common;

use common::*;
use rdaxfs_tools::build::{Builder, Meta};
use rdaxfs_tools::format::*;
use rdaxfs_tools::mkfs::{mkfs, open_target, MkfsOptions};
use rdaxfs_tools::testutil::{random_tree, verify_tree, Rng};
use rdaxfs_tools::{FileDev, Fs, SparseDev};

const MIB: u64 = 1 << 20;

#[test]
fn fresh_images_from_minimum_to_64gib_are_clean() {
    let tmp = TempDir::new("fresh");
    let sizes = [
        16 * MIB,
        16 * MIB + 4095,
        17 * MIB + 8192,
        100 * MIB,
        1 << 30,
        10 << 30,
        64 << 30,
    ];
    for size in sizes {
        let img = tmp.0.join(format!("img-{size}"));
        let opts = MkfsOptions {
            size: Some(size),
            ..MkfsOptions::default()
        };
        let dev = open_target(&img, &opts).unwrap();
        let fs = mkfs(dev, &opts, 1_700_000_000).unwrap();
        assert_eq!(fs.sb.data_start % HUGE_BLOCKS, 0);
        assert_eq!(fs.sb.block_count, size / 4096);
        let mut dev = FileDev::open(&img, false).unwrap();
        let rep = fsck_n(&mut dev);
        assert!(rep.is_clean(), "{size}: {}", messages(&rep));
        // Only metadata was written: the image stays sparse.
        let used = std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&img).unwrap()) * 512;
        assert!(used < 16 * MIB, "{size}: {used} bytes allocated");
        std::fs::remove_file(&img).unwrap();
    }
}

#[test]
fn below_minimum_size_is_refused() {
    let mut dev = SparseDev::new(16 * MIB - 4096);
    let err = mkfs(&mut dev, &MkfsOptions::default(), 0).err().unwrap();
    assert!(err.to_string().contains("at least"), "{err}");
}

#[test]
fn existing_filesystems_are_not_overwritten_without_force() {
    let tmp = TempDir::new("force");
    let img = tmp.0.join("img");
    let opts = MkfsOptions {
        size: Some(32 * MIB),
        ..MkfsOptions::default()
    };
    mkfs(open_target(&img, &opts).unwrap(), &opts, 0).unwrap();
    let e = open_target(&img, &opts).err().unwrap();
    assert!(e.to_string().contains("rdaxfs"), "{e}");
    let forced = MkfsOptions {
        force: true,
        ..opts.clone()
    };
    assert!(open_target(&img, &forced).is_ok());
    // ext4 magic at byte 1080.
    let mut first = vec![0u8; 4096];
    first[1080] = 0x53;
    first[1081] = 0xEF;
    std::fs::write(&img, &first).unwrap();
    let e = open_target(&img, &opts).err().unwrap();
    assert!(e.to_string().contains("ext2/3/4"), "{e}");
}

fn random_image(
    seed: u64,
    files: usize,
    max_file: u64,
) -> (
    SparseDev,
    std::collections::BTreeMap<String, rdaxfs_tools::testutil::Node>,
) {
    let size = 64 * MIB;
    let sb = Superblock::new_geometry(size, Some(4096)).unwrap();
    let mut b = Builder::format(
        SparseDev::new(size),
        sb,
        Meta {
            perm: 0o755,
            ..Meta::default()
        },
    )
    .unwrap();
    let mut rng = Rng::new(seed);
    let expect = random_tree(&mut b, &mut rng, files, max_file).unwrap();
    (b.finish().unwrap().dev, expect)
}

#[test]
fn random_trees_round_trip_and_check_clean() {
    for seed in 1..=12u64 {
        let (mut dev, expect) = random_image(seed, 50 + seed as usize * 40, 3 * 4096 + seed * 1000);
        let rep = fsck_n(&mut dev);
        assert!(rep.is_clean(), "seed {seed}: {}", messages(&rep));
        let mut fs = Fs::open(dev).unwrap();
        verify_tree(&mut fs, &expect).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}

#[test]
fn fragmented_file_with_overflow_chain_round_trips() {
    let size = 64 * MIB;
    let sb = Superblock::new_geometry(size, Some(1024)).unwrap();
    let mut b = Builder::format(SparseDev::new(size), sb, Meta::default()).unwrap();
    let ino = b.alloc_inode().unwrap();
    let mut inode = rdaxfs_tools::build::new_inode(S_IFREG | 0o644, Meta::default());
    inode.nlink = 1;
    // 400 one-block extents with gaps: inline + 3 overflow blocks.
    let mut exts = Vec::new();
    let mut data = Vec::new();
    let mut gaps = Vec::new();
    for i in 0..400u64 {
        let (p, _) = b.alloc_blocks(1, 0, false).unwrap();
        gaps.push(b.alloc_blocks(1, 0, false).unwrap().0);
        let block = vec![(i % 251) as u8; 4096];
        b.fs.write_block(p, &block).unwrap();
        data.extend_from_slice(&block);
        exts.push(Extent {
            logical: i,
            physical: p,
            len: 1,
        });
    }
    for g in gaps {
        bit_clear(&mut b.bbm, g).unwrap();
    }
    inode.size = data.len() as u64;
    b.set_extents(ino, &mut inode, &exts).unwrap();
    let root = b.fs.sb.root_ino;
    b.add_entry(root, b"frag", ino, DT_REG).unwrap();
    let mut fs = b.finish().unwrap();
    let i = fs.read_inode(ino).unwrap();
    let (got, chain) = fs.extents(ino, &i).unwrap();
    assert_eq!(got, exts);
    assert_eq!(chain.len(), 3);
    assert_eq!(fs.read_file(ino).unwrap(), data);
    let rep = fsck_n(&mut fs.dev);
    assert!(rep.is_clean(), "{}", messages(&rep));
}

#[test]
fn large_directory_spans_many_blocks() {
    let size = 64 * MIB;
    let sb = Superblock::new_geometry(size, Some(4096)).unwrap();
    let mut b = Builder::format(SparseDev::new(size), sb, Meta::default()).unwrap();
    let root = b.fs.sb.root_ino;
    for i in 0..1500 {
        b.create_file(
            root,
            format!("file-{i:05}").as_bytes(),
            Meta::default(),
            &mut &b""[..],
            0,
        )
        .unwrap();
    }
    let mut fs = b.finish().unwrap();
    let ents = fs.read_dir(root).unwrap();
    assert_eq!(ents.len(), 1500);
    assert_eq!(fs.read_inode(root).unwrap().size, 100 * 4096);
    assert!(fs.lookup(root, b"file-01499").unwrap().is_some());
    assert!(fsck_n(&mut fs.dev).is_clean());
}

#[test]
fn random_host_trees_through_mkfs_d() {
    for seed in 1..=6u64 {
        let tmp = TempDir::new(&format!("host-{seed}"));
        let src = tmp.0.join("src");
        std::fs::create_dir(&src).unwrap();
        let mut rng = Rng::new(seed);
        random_host_tree(&mut rng, &src, 150 + 50 * seed as usize);
        let opts = MkfsOptions {
            populate: Some(src.clone()),
            inodes: Some(2048),
            ..MkfsOptions::default()
        };
        let dev = SparseDev::new(64 * MIB);
        let mut fs = mkfs(dev, &opts, 1_700_000_000).unwrap();
        let rep = fsck_n(&mut fs.dev);
        assert!(rep.is_clean(), "seed {seed}: {}", messages(&rep));
        let mut checked = 0;
        compare(&mut fs, &src, "", &mut checked);
        assert!(checked >= 150, "seed {seed}: {checked}");
    }
}

/// fstests' conventions: `yes | mkfs -t rdaxfs -- DEV` overwrites (the answer
/// comes from a pipe, no prompt on stderr), end of input or "n" refuses, and
/// `fsck -t rdaxfs -n DEV` exits 0 on a clean filesystem.
#[test]
fn mkfs_takes_its_answer_from_stdin_and_fsck_n_exits_0_when_clean() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let tmp = TempDir::new("yes");
    let img = tmp.0.join("img");
    let mkfs_bin = env!("CARGO_BIN_EXE_mkfs-rdaxfs");
    let run = |input: &str| {
        let mut c = Command::new(mkfs_bin)
            .arg(&img)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // mkfs may exit before reading (nothing to overwrite): ignore EPIPE.
        let _ = c.stdin.take().unwrap().write_all(input.as_bytes());
        c.wait_with_output().unwrap()
    };
    let opts = MkfsOptions {
        size: Some(32 * MIB),
        ..MkfsOptions::default()
    };
    mkfs(open_target(&img, &opts).unwrap(), &opts, 0).unwrap();
    let out = run("");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not overwritten"), "{err}");
    let out = run("n\n");
    assert_eq!(out.status.code(), Some(1));
    let out = run("y\ny\ny\n");
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "a prompt on stderr: {out:?}");
    let fsck = Command::new(env!("CARGO_BIN_EXE_fsck-rdaxfs"))
        .args(["-n".as_ref(), img.as_os_str()])
        .output()
        .unwrap();
    assert_eq!(fsck.status.code(), Some(0), "{fsck:?}");
}
