//! host-verify: runs on the host after the guest stopped.
//!
//! `host-verify extract BACKING OUT` finds the rdaxfs superblock inside an
//! NVDIMM backing file (the fsdax namespace puts its data after a pfn info
//! area) and copies the filesystem to OUT, for fsck.rdaxfs.
//! `host-verify verify IMAGE` reads the guest's export tree back through
//! the tools library and compares every byte.

#[path = "export.rs"]
mod export;

use rdaxfs_format::Superblock;
use rdaxfs_tools::dev::FileDev;
use rdaxfs_tools::fs::Fs;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::exit;

fn find_offset(f: &File) -> Option<(u64, u64)> {
    let mut buf = vec![0u8; 4096];
    for k in 0..4096u64 {
        let off = k * 4096;
        f.read_exact_at(&mut buf, off).ok()?;
        if let Ok(sb) = Superblock::decode(&buf) {
            return Some((off, sb.block_count * 4096));
        }
    }
    None
}

fn extract(backing: &str, out: &str) -> Result<(), String> {
    let mut f = File::open(backing).map_err(|e| format!("{backing}: {e}"))?;
    let (off, bytes) = find_offset(&f).ok_or("no rdaxfs superblock in the first 16 MiB")?;
    f.seek(SeekFrom::Start(off)).map_err(|e| e.to_string())?;
    let mut o = File::create(out).map_err(|e| format!("{out}: {e}"))?;
    let mut rest = bytes;
    let mut buf = vec![0u8; 1 << 20];
    while rest > 0 {
        let n = (rest as usize).min(buf.len());
        f.read_exact(&mut buf[..n])
            .map_err(|e| format!("read: {e}"))?;
        o.write_all(&buf[..n]).map_err(|e| format!("write: {e}"))?;
        rest -= n as u64;
    }
    println!("host-verify: filesystem at byte {off} of {backing}, {bytes} bytes -> {out}");
    Ok(())
}

fn verify(image: &str) -> Result<(), String> {
    let dev = FileDev::open(Path::new(image), false).map_err(|e| format!("{image}: {e}"))?;
    let mut fs = Fs::open(dev).map_err(|e| format!("{image}: {e}"))?;
    let mut bytes = 0;
    for i in 0..export::FILES {
        let p = export::path(i);
        let ino = fs.resolve(&p).map_err(|e| format!("{p}: {e}"))?;
        let got = fs.read_file(ino).map_err(|e| format!("{p}: {e}"))?;
        let want = export::content(i);
        if got.len() != want.len() {
            return Err(format!(
                "{p}: {} bytes on pmem, guest wrote {}",
                got.len(),
                want.len()
            ));
        }
        if let Some(o) = got.iter().zip(&want).position(|(a, b)| a != b) {
            return Err(format!(
                "{p}: byte {o} is {:#x} on pmem, guest wrote {:#x} (mmap: {})",
                got[o],
                want[o],
                export::via_mmap(i)
            ));
        }
        bytes += got.len();
    }
    println!(
        "host-verify: {} files, {bytes} bytes equal to what the guest wrote",
        export::FILES
    );
    Ok(())
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let r = match a.get(1).map(String::as_str) {
        Some("extract") if a.len() == 4 => extract(&a[2], &a[3]),
        Some("verify") if a.len() == 3 => verify(&a[2]),
        _ => Err("usage: host-verify extract BACKING OUT | host-verify verify IMAGE".into()),
    };
    if let Err(e) = r {
        eprintln!("host-verify: {e}");
        exit(1);
    }
}
