//! namespace: create/lookup/unlink/rename/link/symlink/readdir/attributes
//! and the errors POSIX requires, on a fresh rdaxfs.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::ensure;
use crate::util::*;

/// The namespace test on a freshly made and mounted rdaxfs.
pub fn namespace() -> TestResult {
    let _fx = Fixture::new()?;
    fresh_mount()?;
    namespace_in(Path::new(MNT), true)?;
    ctx(umount(MNT), "umount")
}

fn nlink(p: &Path) -> Result<u64, String> {
    Ok(ctx(fs::symlink_metadata(p), p.display())?.nlink())
}

fn names(dir: &Path) -> Result<BTreeSet<String>, String> {
    let mut set = BTreeSet::new();
    for e in ctx(fs::read_dir(dir), dir.display())? {
        let e = ctx(e, "readdir")?;
        let n = e.file_name().to_string_lossy().into_owned();
        ensure!(
            set.insert(n.clone()),
            "readdir of {dir:?} returned {n:?} twice"
        );
    }
    Ok(set)
}

fn set_of<I: IntoIterator<Item = S>, S: Into<String>>(it: I) -> BTreeSet<String> {
    it.into_iter().map(Into::into).collect()
}

fn diff(got: &BTreeSet<String>, want: &BTreeSet<String>) -> String {
    let missing: Vec<_> = want.difference(got).take(5).collect();
    let extra: Vec<_> = got.difference(want).take(5).collect();
    format!(
        "{} entries, expected {}; missing {missing:?}, unexpected {extra:?}",
        got.len(),
        want.len()
    )
}

/// Every namespace check inside `dir` (an empty directory). The EACCES
/// check needs `root` (it drops to uid 65534 in a child).
pub fn namespace_in(dir: &Path, root: bool) -> TestResult {
    create_and_errors(dir)?;
    dirs_and_nlink(dir)?;
    renames(dir)?;
    links(dir)?;
    big_dir(dir)?;
    attributes(dir, root)?;
    if root {
        eacces_as_nobody(dir)?;
    }
    let left = names(dir)?;
    ensure!(left.is_empty(), "{dir:?} not empty at the end: {left:?}");
    println!("namespace: all checks passed in {}", dir.display());
    Ok(())
}

fn create_and_errors(dir: &Path) -> TestResult {
    let f = dir.join("f");
    let mut oo = fs::OpenOptions::new();
    oo.write(true).create_new(true);
    ctx(oo.open(&f), "create f with O_CREAT|O_EXCL")?;
    expect_errno(oo.open(&f), libc::EEXIST, "O_CREAT|O_EXCL on existing f")?;
    ensure!(nlink(&f)? == 1, "new file nlink {} expected 1", nlink(&f)?);
    ensure!(
        ctx(fs::metadata(&f), "stat f")?.len() == 0,
        "new file not empty"
    );
    // Plain O_CREAT on an existing file opens it.
    ctx(
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&f),
        "O_CREAT on existing f",
    )?;

    let missing = dir.join("missing");
    expect_errno(fs::File::open(&missing), libc::ENOENT, "open missing")?;
    expect_errno(fs::remove_file(&missing), libc::ENOENT, "unlink missing")?;
    expect_errno(
        fs::metadata(missing.join("x")),
        libc::ENOENT,
        "stat missing/x",
    )?;
    expect_errno(
        fs::create_dir(missing.join("x")),
        libc::ENOENT,
        "mkdir missing/x",
    )?;
    expect_errno(
        fs::rename(&missing, dir.join("y")),
        libc::ENOENT,
        "rename missing",
    )?;

    expect_errno(fs::File::open(f.join("x")), libc::ENOTDIR, "open f/x")?;
    expect_errno(fs::create_dir(f.join("x")), libc::ENOTDIR, "mkdir f/x")?;
    expect_errno(fs::remove_dir(&f), libc::ENOTDIR, "rmdir on a file")?;
    expect_errno(
        open_raw(&f, libc::O_RDONLY | libc::O_DIRECTORY, 0),
        libc::ENOTDIR,
        "open(f, O_DIRECTORY)",
    )?;
    expect_errno(fs::create_dir(&f), libc::EEXIST, "mkdir over a file")?;

    let d = dir.join("d");
    ctx(fs::create_dir(&d), "mkdir d")?;
    expect_errno(fs::create_dir(&d), libc::EEXIST, "mkdir existing d")?;
    expect_errno(
        fs::OpenOptions::new().write(true).open(&d),
        libc::EISDIR,
        "open dir for writing",
    )?;
    expect_errno(fs::remove_file(&d), libc::EISDIR, "unlink a directory")?;
    expect_errno(
        fs::hard_link(&d, dir.join("dl")),
        libc::EPERM,
        "link a directory",
    )?;

    // Names: 255 bytes is the limit, 256 is too long.
    let n255 = "n".repeat(255);
    let n256 = "n".repeat(256);
    ctx(fs::write(dir.join(&n255), b"x"), "create 255-byte name")?;
    ensure!(
        names(dir)?.contains(&n255),
        "255-byte name not listed by readdir"
    );
    expect_errno(
        fs::write(dir.join(&n256), b"x"),
        libc::ENAMETOOLONG,
        "create 256-byte name",
    )?;
    expect_errno(
        fs::create_dir(dir.join(&n256)),
        libc::ENAMETOOLONG,
        "mkdir 256-byte name",
    )?;
    expect_errno(
        fs::metadata(dir.join(&n256)),
        libc::ENAMETOOLONG,
        "stat 256-byte name",
    )?;
    ctx(fs::remove_file(dir.join(&n255)), "unlink 255-byte name")?;

    ctx(fs::remove_file(&f), "unlink f")?;
    expect_errno(fs::metadata(&f), libc::ENOENT, "stat f after unlink")?;
    ctx(fs::remove_dir(&d), "rmdir d")?;
    expect_errno(fs::metadata(&d), libc::ENOENT, "stat d after rmdir")?;
    Ok(())
}

fn dirs_and_nlink(dir: &Path) -> TestResult {
    let base = nlink(dir)?;
    let a = dir.join("a");
    ctx(fs::create_dir(&a), "mkdir a")?;
    ensure!(nlink(&a)? == 2, "new dir nlink {} expected 2", nlink(&a)?);
    ensure!(
        nlink(dir)? == base + 1,
        "parent nlink {} after mkdir, expected {}",
        nlink(dir)?,
        base + 1
    );
    let b = a.join("b");
    ctx(fs::create_dir(&b), "mkdir a/b")?;
    ensure!(
        nlink(&a)? == 3,
        "a nlink {} with one subdir, expected 3",
        nlink(&a)?
    );
    ctx(fs::write(a.join("file"), b"data"), "create a/file")?;
    ensure!(
        nlink(&a)? == 3,
        "a nlink {} after creating a file, expected 3",
        nlink(&a)?
    );
    expect_errno(fs::remove_dir(&a), libc::ENOTEMPTY, "rmdir non-empty a")?;
    ctx(fs::remove_dir(&b), "rmdir a/b")?;
    ensure!(
        nlink(&a)? == 2,
        "a nlink {} after rmdir b, expected 2",
        nlink(&a)?
    );
    expect_errno(
        fs::remove_dir(&a),
        libc::ENOTEMPTY,
        "rmdir a holding a file",
    )?;
    ctx(fs::remove_file(a.join("file")), "unlink a/file")?;
    // `..` resolves to the parent.
    let dotdot = ctx(fs::metadata(a.join("..")), "stat a/..")?;
    let parent = ctx(fs::metadata(dir), "stat dir")?;
    ensure!(
        dotdot.ino() == parent.ino(),
        "a/.. is inode {}, parent is {}",
        dotdot.ino(),
        parent.ino()
    );
    ensure!(
        names(&a)?.is_empty(),
        "empty dir lists {:?} (readdir must not return . and ..)",
        names(&a)?
    );
    ctx(fs::remove_dir(&a), "rmdir a")?;
    ensure!(
        nlink(dir)? == base,
        "parent nlink {} after rmdir, expected {base}",
        nlink(dir)?
    );
    Ok(())
}

fn renames(dir: &Path) -> TestResult {
    let (s, t) = (dir.join("s"), dir.join("t"));
    ctx(fs::create_dir(&s), "mkdir s")?;
    ctx(fs::create_dir(&t), "mkdir t")?;
    let base = nlink(dir)?;
    ctx(fs::write(s.join("one"), b"first"), "create s/one")?;
    let ino = ctx(fs::metadata(s.join("one")), "stat")?.ino();

    // Same directory.
    ctx(
        fs::rename(s.join("one"), s.join("two")),
        "rename s/one s/two",
    )?;
    ensure!(
        names(&s)? == set_of(["two"]),
        "s after rename: {:?}",
        names(&s)?
    );
    ensure!(
        ctx(fs::metadata(s.join("two")), "stat")?.ino() == ino,
        "rename changed the inode"
    );
    // Across directories.
    ctx(
        fs::rename(s.join("two"), t.join("three")),
        "rename s/two t/three",
    )?;
    ensure!(names(&s)?.is_empty(), "s after move: {:?}", names(&s)?);
    ensure!(
        names(&t)? == set_of(["three"]),
        "t after move: {:?}",
        names(&t)?
    );
    ensure!(
        ctx(fs::read(t.join("three")), "read t/three")? == b"first",
        "content changed by rename"
    );
    // Over an existing file: the target is replaced, its inode dropped.
    ctx(fs::write(t.join("victim"), b"second"), "create t/victim")?;
    ctx(
        fs::rename(t.join("three"), t.join("victim")),
        "rename over t/victim",
    )?;
    ensure!(
        names(&t)? == set_of(["victim"]),
        "t after rename-over: {:?}",
        names(&t)?
    );
    ensure!(
        ctx(fs::read(t.join("victim")), "read")? == b"first",
        "rename-over kept old content"
    );
    ensure!(
        ctx(fs::metadata(t.join("victim")), "stat")?.ino() == ino,
        "rename-over: wrong inode"
    );

    // RENAME_NOREPLACE and RENAME_EXCHANGE.
    ctx(fs::write(t.join("other"), b"other"), "create t/other")?;
    expect_errno(
        renameat2(&t.join("victim"), &t.join("other"), libc::RENAME_NOREPLACE),
        libc::EEXIST,
        "RENAME_NOREPLACE onto an existing name",
    )?;
    ensure!(
        ctx(fs::read(t.join("other")), "read")? == b"other",
        "NOREPLACE clobbered target"
    );
    ctx(
        renameat2(&t.join("victim"), &t.join("fresh"), libc::RENAME_NOREPLACE),
        "RENAME_NOREPLACE onto a free name",
    )?;
    ctx(
        renameat2(&t.join("fresh"), &t.join("other"), libc::RENAME_EXCHANGE),
        "RENAME_EXCHANGE",
    )?;
    ensure!(
        ctx(fs::read(t.join("fresh")), "read")? == b"other",
        "exchange: fresh has wrong data"
    );
    ensure!(
        ctx(fs::read(t.join("other")), "read")? == b"first",
        "exchange: other has wrong data"
    );
    expect_errno(
        renameat2(&t.join("fresh"), &t.join("nothere"), libc::RENAME_EXCHANGE),
        libc::ENOENT,
        "RENAME_EXCHANGE with a missing target",
    )?;
    // Exchange a file and a directory across directories.
    ctx(fs::create_dir(s.join("sub")), "mkdir s/sub")?;
    ctx(
        renameat2(&s.join("sub"), &t.join("fresh"), libc::RENAME_EXCHANGE),
        "RENAME_EXCHANGE dir <-> file across dirs",
    )?;
    ensure!(
        ctx(fs::metadata(t.join("fresh")), "stat")?.is_dir(),
        "t/fresh is not the dir"
    );
    ensure!(
        ctx(fs::read(s.join("sub")), "read s/sub")? == b"other",
        "s/sub is not the file"
    );
    ensure!(
        nlink(&t)? == 3,
        "t nlink {} after gaining a subdir by exchange, expected 3",
        nlink(&t)?
    );
    ensure!(
        nlink(&s)? == 2,
        "s nlink {} after losing its subdir by exchange, expected 2",
        nlink(&s)?
    );
    let dd = ctx(fs::metadata(t.join("fresh").join("..")), "stat t/fresh/..")?.ino();
    ensure!(
        dd == ctx(fs::metadata(&t), "stat t")?.ino(),
        "exchanged dir's .. is not t"
    );
    ctx(fs::remove_file(s.join("sub")), "unlink s/sub")?;
    ctx(fs::remove_dir(t.join("fresh")), "rmdir t/fresh")?;

    // Directory renames: parent link counts follow, `..` follows.
    let sd = s.join("dir");
    ctx(fs::create_dir(&sd), "mkdir s/dir")?;
    ctx(fs::write(sd.join("inside"), b"in"), "create s/dir/inside")?;
    ensure!(nlink(&s)? == 3, "s nlink {} with a subdir", nlink(&s)?);
    ctx(fs::rename(&sd, t.join("dir")), "rename dir s -> t")?;
    ensure!(
        nlink(&s)? == 2,
        "s nlink {} after moving its subdir out, expected 2",
        nlink(&s)?
    );
    ensure!(
        nlink(&t)? == 3,
        "t nlink {} after gaining a subdir, expected 3",
        nlink(&t)?
    );
    let dd = ctx(fs::metadata(t.join("dir").join("..")), "stat t/dir/..")?.ino();
    ensure!(
        dd == ctx(fs::metadata(&t), "stat t")?.ino(),
        "moved dir's .. is not t"
    );
    ensure!(
        ctx(fs::read(t.join("dir/inside")), "read")? == b"in",
        "file inside moved dir lost"
    );
    // Dir over non-empty dir, file over dir, dir over file.
    ctx(fs::create_dir(t.join("full")), "mkdir")?;
    ctx(fs::write(t.join("full/x"), b""), "create")?;
    expect_errno(
        fs::rename(t.join("dir"), t.join("full")),
        libc::ENOTEMPTY,
        "rename dir over non-empty dir",
    )?;
    expect_errno(
        fs::rename(t.join("other"), t.join("full")),
        libc::EISDIR,
        "rename file over dir",
    )?;
    expect_errno(
        fs::rename(t.join("dir"), t.join("other")),
        libc::ENOTDIR,
        "rename dir over file",
    )?;
    expect_errno(
        fs::rename(&t, t.join("dir/loop")),
        libc::EINVAL,
        "rename dir into itself",
    )?;
    // Dir over an empty dir replaces it.
    ctx(fs::create_dir(t.join("empty")), "mkdir")?;
    ctx(
        fs::rename(t.join("dir"), t.join("empty")),
        "rename dir over empty dir",
    )?;
    ensure!(
        nlink(&t)? == 4,
        "t nlink {} with subdirs full, empty; expected 4",
        nlink(&t)?
    );
    ensure!(
        names(&t)? == set_of(["empty", "full", "other"]),
        "t: {}",
        diff(&names(&t)?, &set_of(["empty", "full", "other"]))
    );

    ctx(fs::remove_dir_all(&s), "rm -r s")?;
    ctx(fs::remove_dir_all(&t), "rm -r t")?;
    ensure!(
        nlink(dir)? == base - 2,
        "dir nlink {} after removing s and t",
        nlink(dir)?
    );
    Ok(())
}

fn links(dir: &Path) -> TestResult {
    let (f, g) = (dir.join("orig"), dir.join("hard"));
    ctx(fs::write(&f, b"linked"), "create orig")?;
    ctx(fs::hard_link(&f, &g), "link orig hard")?;
    ensure!(
        nlink(&f)? == 2 && nlink(&g)? == 2,
        "nlink after link: {} {}",
        nlink(&f)?,
        nlink(&g)?
    );
    expect_errno(
        fs::hard_link(&f, &g),
        libc::EEXIST,
        "link onto existing name",
    )?;
    let sub = dir.join("ldir");
    ctx(fs::create_dir(&sub), "mkdir")?;
    ctx(fs::hard_link(&f, sub.join("third")), "link into subdir")?;
    ensure!(nlink(&f)? == 3, "nlink {} with three names", nlink(&f)?);
    ensure!(
        ctx(fs::metadata(&g), "stat")?.ino() == ctx(fs::metadata(sub.join("third")), "stat")?.ino(),
        "hard links have different inodes"
    );
    ctx(fs::remove_file(&f), "unlink orig")?;
    ensure!(
        nlink(&g)? == 2,
        "nlink {} after unlinking one name",
        nlink(&g)?
    );
    ensure!(
        ctx(fs::read(&g), "read")? == b"linked",
        "data lost after unlink of one name"
    );
    // Renaming one hard link onto another is a no-op (both stay).
    ctx(fs::hard_link(&g, &f), "relink")?;
    ctx(fs::rename(&f, &g), "rename link onto its twin")?;
    ensure!(
        fs::symlink_metadata(&f).is_ok() && nlink(&g)? == 3,
        "rename between hard links of one inode must do nothing (nlink {})",
        nlink(&g)?
    );
    ctx(fs::remove_file(&f), "unlink")?;
    ctx(fs::remove_file(sub.join("third")), "unlink")?;
    ctx(fs::remove_dir(&sub), "rmdir")?;
    ensure!(nlink(&g)? == 1, "nlink {} with one name left", nlink(&g)?);

    // Symlinks: short, medium and the longest target (4095 bytes).
    let long = format!("{}/end", "x".repeat(4091));
    for (i, target) in ["hard", "some/where/../over/there", long.as_str()]
        .iter()
        .enumerate()
    {
        let l = dir.join(format!("sym{i}"));
        ctx(
            std::os::unix::fs::symlink(target, &l),
            format!("symlink of {} bytes", target.len()),
        )?;
        let got = ctx(fs::read_link(&l), "readlink")?;
        ensure!(
            got.as_os_str() == *target,
            "readlink of {}-byte target gave {} bytes",
            target.len(),
            got.as_os_str().len()
        );
        let m = ctx(fs::symlink_metadata(&l), "lstat")?;
        ensure!(m.file_type().is_symlink(), "lstat: not a symlink");
        ensure!(
            m.len() == target.len() as u64,
            "symlink size {} expected {}",
            m.len(),
            target.len()
        );
        expect_errno(
            std::os::unix::fs::symlink("x", &l),
            libc::EEXIST,
            "symlink onto existing",
        )?;
    }
    ensure!(
        ctx(fs::read(dir.join("sym0")), "read through symlink")? == b"linked",
        "symlink does not resolve"
    );
    expect_errno(
        fs::read(dir.join("sym1")),
        libc::ENOENT,
        "follow dangling symlink",
    )?;
    expect_errno(
        fs::read_link(&g),
        libc::EINVAL,
        "readlink on a regular file",
    )?;
    let too_long = "y".repeat(4096);
    expect_errno(
        std::os::unix::fs::symlink(&too_long, dir.join("symlong")),
        libc::ENAMETOOLONG,
        "symlink with 4096-byte target",
    )?;
    for i in 0..3 {
        ctx(
            fs::remove_file(dir.join(format!("sym{i}"))),
            "unlink symlink",
        )?;
    }
    ensure!(nlink(&g)? == 1, "unlinking symlinks changed target nlink");
    ctx(fs::remove_file(&g), "unlink hard")
}

fn big_dir(dir: &Path) -> TestResult {
    let big = dir.join("big");
    ctx(fs::create_dir(&big), "mkdir big")?;
    let name = |i: usize| format!("entry-{i:04}-{}", "z".repeat(i % 40));
    let mut want = BTreeSet::new();
    for i in 0..500 {
        let n = name(i);
        if i % 10 == 0 {
            ctx(fs::create_dir(big.join(&n)), format!("mkdir {n}"))?;
        } else {
            ctx(fs::write(big.join(&n), []), format!("create {n}"))?;
        }
        want.insert(n);
    }
    let got = names(&big)?;
    ensure!(got == want, "500-entry dir: {}", diff(&got, &want));
    ensure!(
        nlink(&big)? == 52,
        "big nlink {} with 50 subdirs, expected 52",
        nlink(&big)?
    );
    // Every name is found by lookup too.
    for n in want.iter().step_by(7) {
        ctx(fs::symlink_metadata(big.join(n)), format!("lookup {n}"))?;
    }
    // Remove every third entry (holes in many blocks), list again.
    for i in (0..500).step_by(3) {
        let n = name(i);
        if i % 10 == 0 {
            ctx(fs::remove_dir(big.join(&n)), format!("rmdir {n}"))?;
        } else {
            ctx(fs::remove_file(big.join(&n)), format!("unlink {n}"))?;
        }
        want.remove(&n);
    }
    let got = names(&big)?;
    ensure!(
        got == want,
        "after removing 167 entries: {}",
        diff(&got, &want)
    );
    // Refill some of the holes with new names.
    for i in 0..60 {
        let n = format!("new-{i}");
        ctx(fs::write(big.join(&n), []), format!("create {n}"))?;
        want.insert(n);
    }
    let got = names(&big)?;
    ensure!(got == want, "after refilling: {}", diff(&got, &want));
    let subdirs = (0..500).filter(|i| i % 10 == 0 && i % 3 != 0).count() as u64;
    ensure!(
        nlink(&big)? == 2 + subdirs,
        "big nlink {} expected {}",
        nlink(&big)?,
        2 + subdirs
    );
    let count = want.len();
    ctx(fs::remove_dir_all(&big), "rm -r big")?;
    println!("namespace: 500-entry directory listed correctly ({count} after churn)");
    Ok(())
}

fn attributes(dir: &Path, root: bool) -> TestResult {
    let f = dir.join("attr");
    ctx(fs::write(&f, b"0123456789"), "create attr")?;
    let m0 = ctx(fs::metadata(&f), "stat")?;

    ctx(
        fs::set_permissions(&f, fs::Permissions::from_mode(0o640)),
        "chmod 640",
    )?;
    let m = ctx(fs::metadata(&f), "stat")?;
    ensure!(
        m.mode() & 0o7777 == 0o640,
        "mode {:o} after chmod 640",
        m.mode() & 0o7777
    );
    ensure!(
        m.mode() & libc::S_IFMT == libc::S_IFREG,
        "chmod changed the file type"
    );
    ctx(
        fs::set_permissions(&f, fs::Permissions::from_mode(0o4755)),
        "chmod 4755",
    )?;
    ensure!(
        ctx(fs::metadata(&f), "stat")?.mode() & 0o7777 == 0o4755,
        "setuid bit not kept by chmod"
    );
    ensure!(
        ctx(fs::metadata(&f), "stat")?.ctime() >= m0.ctime(),
        "ctime went backwards on chmod"
    );

    if root {
        ctx(
            std::os::unix::fs::chown(&f, Some(1234), Some(5678)),
            "chown 1234:5678",
        )?;
        let m = ctx(fs::metadata(&f), "stat")?;
        ensure!(
            m.uid() == 1234 && m.gid() == 5678,
            "owner {}:{} after chown 1234:5678",
            m.uid(),
            m.gid()
        );
        ensure!(
            m.mode() & 0o6000 == 0,
            "chown by root kept setuid: mode {:o}",
            m.mode()
        );
        ctx(std::os::unix::fs::chown(&f, None, Some(42)), "chgrp 42")?;
        let m = ctx(fs::metadata(&f), "stat")?;
        ensure!(
            m.uid() == 1234 && m.gid() == 42,
            "owner {}:{} after chgrp 42",
            m.uid(),
            m.gid()
        );
    }

    set_times(
        &f,
        (1_000_000_000, 123_456_789),
        (1_500_000_000, 987_654_321),
    )
    .map_err(|e| format!("utimensat: {e}"))?;
    let m = ctx(fs::metadata(&f), "stat")?;
    ensure!(
        (m.atime(), m.atime_nsec(), m.mtime(), m.mtime_nsec())
            == (1_000_000_000, 123_456_789, 1_500_000_000, 987_654_321),
        "times after utimensat: atime {}.{} mtime {}.{}",
        m.atime(),
        m.atime_nsec(),
        m.mtime(),
        m.mtime_nsec()
    );
    // Negative (pre-1970) times survive too.
    set_times(&f, (-1000, 5), (-2000, 7)).map_err(|e| format!("utimensat negative: {e}"))?;
    let m = ctx(fs::metadata(&f), "stat")?;
    ensure!(
        (m.atime(), m.mtime()) == (-1000, -2000),
        "pre-1970 times read back as atime {} mtime {}",
        m.atime(),
        m.mtime()
    );

    // Truncate up (zeros), down, up again (the cut part reads as zeros).
    let file = ctx(
        fs::OpenOptions::new().read(true).write(true).open(&f),
        "open",
    )?;
    ctx(file.set_len(3 * BLOCK as u64 + 5), "truncate up")?;
    let data = ctx(fs::read(&f), "read")?;
    ensure!(
        data.len() == 3 * BLOCK + 5,
        "size {} after truncate up",
        data.len()
    );
    ensure!(
        &data[..10] == b"0123456789",
        "truncate up changed existing data"
    );
    ensure!(
        data[10..].iter().all(|&b| b == 0),
        "truncate up: tail not zero"
    );
    let mt = ctx(fs::metadata(&f), "stat")?.mtime();
    ensure!(mt > 1_500_000_000, "truncate did not update mtime ({mt})");
    ctx(file.set_len(4), "truncate down")?;
    ensure!(
        ctx(fs::read(&f), "read")? == b"0123",
        "content after truncate to 4"
    );
    ctx(file.set_len(2 * BLOCK as u64), "truncate up again")?;
    let data = ctx(fs::read(&f), "read")?;
    ensure!(&data[..4] == b"0123", "head lost after truncate down/up");
    ensure!(
        data[4..].iter().all(|&b| b == 0),
        "bytes cut by truncate reappeared after truncate up (first non-zero at {})",
        data[4..].iter().position(|&b| b != 0).unwrap_or(0) + 4
    );
    ctx(file.set_len(0), "truncate to 0")?;
    let m = ctx(fs::metadata(&f), "stat")?;
    ensure!(
        m.len() == 0 && m.blocks() == 0,
        "size {} blocks {} after truncate 0",
        m.len(),
        m.blocks()
    );
    drop(file);
    ctx(fs::remove_file(&f), "unlink attr")
}

/// A child running as 65534:65534 cannot create in a root-owned 0755 dir.
fn eacces_as_nobody(dir: &Path) -> TestResult {
    let d = dir.join("rootonly");
    ctx(fs::create_dir(&d), "mkdir rootonly")?;
    ctx(
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)),
        "chmod 755",
    )?;
    ctx(std::os::unix::fs::chown(&d, Some(0), Some(0)), "chown 0:0")?;
    ctx(fs::write(d.join("existing"), b"x"), "create existing")?;
    let target = cstr(d.join("new"));
    let existing = cstr(d.join("existing"));
    let sub = cstr(d.join("subdir"));
    // Child exit codes: 0 all as expected, 10+n step n wrong.
    let status = fork_wait(|| {
        // SAFETY: only async-signal-safe libc calls on prepared strings.
        unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return 9;
            }
            let fd = libc::open(target.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644);
            if fd >= 0 || *libc::__errno_location() != libc::EACCES {
                return 10;
            }
            if libc::mkdir(sub.as_ptr(), 0o755) == 0 || *libc::__errno_location() != libc::EACCES {
                return 11;
            }
            if libc::unlink(existing.as_ptr()) == 0 || *libc::__errno_location() != libc::EACCES {
                return 12;
            }
            let fd = libc::open(existing.as_ptr(), libc::O_WRONLY);
            if fd >= 0 || *libc::__errno_location() != libc::EACCES {
                return 13;
            }
            // Reading is allowed.
            let fd = libc::open(existing.as_ptr(), libc::O_RDONLY);
            if fd < 0 {
                return 14;
            }
            0
        }
    })?;
    let what = [
        "",
        "setgroups/setgid/setuid(65534) failed",
        "open(O_CREAT) as nobody: not EACCES",
        "mkdir as nobody: not EACCES",
        "unlink as nobody: not EACCES",
        "open(O_WRONLY) of a 0644 root file as nobody: not EACCES",
        "open(O_RDONLY) of a 0644 root file as nobody failed",
    ];
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            0
        };
        let idx = if (9..=14).contains(&code) {
            (code - 8) as usize
        } else {
            0
        };
        return Err(format!(
            "EACCES check as uid 65534: child {}: {}",
            describe_status(status),
            what[idx]
        ));
    }
    expect_errno(
        fs::metadata(d.join("new")),
        libc::ENOENT,
        "file created by nobody",
    )?;
    ctx(fs::remove_dir_all(&d), "rm -r rootonly")?;
    println!("namespace: uid 65534 gets EACCES creating in a 0755 root dir");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_on_host_fs() {
        let t = TempDir::new("ns");
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        namespace_in(&t.0, root).unwrap();
    }
}
