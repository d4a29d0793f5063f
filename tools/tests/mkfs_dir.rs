//! `mkfs.rdaxfs -d`: a host tree of more than 1,000 files, one of 100 MiB,
//! 25 levels deep, symlinks and a hard link, through the real binaries.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;
use rdaxfs_tools::format::*;
use rdaxfs_tools::testutil::Rng;
use rdaxfs_tools::{FileDev, Fs};

fn run(bin: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(bin).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

const MKFS: &str = env!("CARGO_BIN_EXE_mkfs-rdaxfs");
const FSCK: &str = env!("CARGO_BIN_EXE_fsck-rdaxfs");
const DUMP: &str = env!("CARGO_BIN_EXE_dump-rdaxfs");

fn make_host_tree(root: &Path) -> usize {
    let mut rng = Rng::new(2024);
    let mut count = 0;
    for d in 0..40 {
        let dir = root.join(format!("dir{d:02}"));
        std::fs::create_dir(&dir).unwrap();
        count += 1;
        for f in 0..25 {
            let mut data = vec![0u8; rng.below(12_000) as usize];
            rng.fill(&mut data);
            let p = dir.join(format!("file{f:02}.bin"));
            std::fs::write(&p, &data).unwrap();
            let mode = [0o644, 0o600, 0o755, 0o444][f % 4];
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            count += 1;
        }
    }
    let mut deep = root.to_path_buf();
    for level in 0..25 {
        deep = deep.join(format!("level{level}"));
        std::fs::create_dir(&deep).unwrap();
        std::fs::write(deep.join("marker"), format!("depth {level}")).unwrap();
        count += 2;
    }
    let mut big = vec![0u8; 100 << 20];
    rng.fill(&mut big);
    std::fs::write(root.join("big.bin"), &big).unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    std::os::unix::fs::symlink("dir00/file00.bin", root.join("link")).unwrap();
    std::os::unix::fs::symlink("/a/dangling/target", root.join("dangling")).unwrap();
    std::fs::hard_link(root.join("dir01/file01.bin"), root.join("hardlink")).unwrap();
    let fifo = Command::new("mkfifo").arg(root.join("fifo")).status();
    count + 5 + usize::from(fifo.is_ok_and(|s| s.success()))
}

#[test]
fn mkfs_d_round_trips_a_large_deep_tree() {
    let tmp = TempDir::new("mkfs-d");
    let src = tmp.0.join("src");
    std::fs::create_dir(&src).unwrap();
    let n = make_host_tree(&src);
    assert!(n >= 1000, "{n} entries");
    let img = tmp.0.join("img");
    let img_s = img.to_str().unwrap();
    let (code, out) = run(
        MKFS,
        &[
            img_s,
            "--size",
            "256M",
            "--inodes",
            "4096",
            "-d",
            src.to_str().unwrap(),
            "--label",
            "tree",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("data start"), "{out}");
    let (code, out) = run(FSCK, &["-n", "-f", img_s]);
    assert_eq!(code, 0, "{out}");
    let mut fs = Fs::open(FileDev::open(&img, false).unwrap()).unwrap();
    let mut checked = 0;
    compare(&mut fs, &src, "", &mut checked);
    assert_eq!(checked, n);
    // The 100 MiB file went into 2 MiB-aligned extents.
    let big = fs.resolve("/big.bin").unwrap();
    let inode = fs.read_inode(big).unwrap();
    let (exts, _) = fs.extents(big, &inode).unwrap();
    assert!(
        exts.iter().all(|e| e.physical % HUGE_BLOCKS == 0),
        "{exts:?}"
    );
    let deep = (0..25).map(|l| format!("/level{l}")).collect::<String>() + "/marker";
    let m = fs.resolve(&deep).unwrap();
    assert_eq!(fs.read_file(m).unwrap(), b"depth 24");
    let (code, out) = run(
        DUMP,
        &[img_s, "--dir", "/dir03", "--inode", &big.to_string()],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("file24.bin") && out.contains("extent 0"),
        "{out}"
    );
}

#[test]
fn fsck_binary_exit_codes() {
    let tmp = TempDir::new("exit");
    let img = tmp.0.join("img");
    let img_s = img.to_str().unwrap();
    assert_eq!(run(MKFS, &[img_s, "--size", "15M"]).0, 1);
    let (code, out) = run(MKFS, &[img_s, "--size", "20M"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(run(FSCK, &["-n", img_s]).0, 0);
    // Refuses to format over an existing filesystem.
    let (code, out) = run(MKFS, &[img_s, "--size", "20M"]);
    assert_eq!(code, 1, "{out}");
    let mut b = std::fs::read(&img).unwrap();
    b[90] ^= 1;
    std::fs::write(&img, &b).unwrap();
    let (code, out) = run(FSCK, &["-n", img_s]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("primary superblock"), "{out}");
    assert_eq!(std::fs::read(&img).unwrap(), b, "-n wrote");
    assert_eq!(run(FSCK, &["-y", img_s]).0, 1);
    assert_eq!(run(FSCK, &["-n", img_s]).0, 0);
    assert_eq!(run(FSCK, &["-n", "/nonexistent/image"]).0, 8);
    let (code, _) = run(FSCK, &["-q"]);
    assert_eq!(code, 16);
}
