//! namespace-index: the module's in-memory directory index (name hash ->
//! slot) against a model, where it could go wrong: names whose hashes
//! collide (found by a birthday search over CRC-32C), a directory of
//! thousands of entries churned by random creates, unlinks, renames in
//! and out, links and mkdir/rmdir, lookups of present and absent names
//! after every step, and remounts (the index is rebuilt from pmem) in
//! between. Every present name must stat as its own file (each holds its
//! name), every absent one must give ENOENT, and readdir must list exactly
//! the model.

use crate::ensure;
use crate::util::*;
use rdaxfs_format::name_hash;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Up to `want` pairs of distinct names with the same stored hash: a
/// birthday search over random 12-character names (72 bits each), which
/// finds a pair per ~90,000 names on average.
fn colliding_pairs(want: usize, rng: &mut Rng) -> Vec<(String, String)> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    let mut name = || -> String {
        let x = rng.next_u64() as u128 | (rng.next_u64() as u128) << 64;
        (0..12)
            .map(|k| ALPHABET[(x >> (6 * k)) as usize & 63] as char)
            .collect()
    };
    let mut seen: HashMap<u32, String> = HashMap::new();
    let mut pairs = Vec::new();
    for _ in 0..1_000_000 {
        let n = name();
        if let Some(other) = seen.insert(name_hash(n.as_bytes()), n.clone()) {
            if other != n {
                pairs.push((other, n));
                if pairs.len() == want {
                    break;
                }
            }
        }
    }
    pairs
}

/// What a directory holds: name -> (content tag, is a directory).
type Model = BTreeMap<String, (String, bool)>;

/// Checks that every name of the model is found with its content, that
/// each of `absent` is not, and (with `list`) that readdir gives the model.
fn verify(dir: &Path, model: &Model, absent: &[String], list: bool, when: &str) -> TestResult {
    for (n, (tag, is_dir)) in model {
        let p = dir.join(n);
        if *is_dir {
            let m = ctx(fs::metadata(&p), format!("{when}: stat {n}"))?;
            ensure!(m.is_dir(), "{when}: {n} is not a directory");
            ctx(fs::metadata(p.join(tag)), format!("{when}: stat {n}/{tag}"))?;
        } else {
            let got = ctx(fs::read_to_string(&p), format!("{when}: read {n}"))?;
            ensure!(&got == tag, "{when}: {n} holds {got:?}, expected {tag:?}");
        }
    }
    for n in absent {
        if model.contains_key(n) {
            continue;
        }
        match fs::symlink_metadata(dir.join(n)) {
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{when}: lookup of absent {n}: {e}")),
            Ok(m) => return Err(format!("{when}: absent {n} found (inode {})", m.ino())),
        }
    }
    if list {
        let mut got = Vec::new();
        for e in ctx(fs::read_dir(dir), format!("{when}: readdir"))? {
            got.push(
                ctx(e, "readdir entry")?
                    .file_name()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        got.sort();
        let want: Vec<&String> = model.keys().collect();
        ensure!(
            got.iter().collect::<Vec<_>>() == want,
            "{when}: readdir lists {} names, the model {} (first difference near {:?})",
            got.len(),
            want.len(),
            got.iter().zip(&want).find(|(a, b)| a != *b)
        );
    }
    Ok(())
}

fn remount() -> TestResult {
    umount(MNT).map_err(|e| format!("umount: {e}"))?;
    mount(PMEM, MNT, "rdaxfs", "").map_err(|e| format!("mount: {e}"))
}

pub fn namespace_index() -> TestResult {
    let _fx = Fixture::new()?;
    fresh_mount()?;
    let seed = env_u64("RDAXFS_INDEX_SEED", clock_seed());
    let ops = env_u64("RDAXFS_INDEX_OPS", 3000);
    println!("namespace-index: seed {seed}, {ops} operations");
    let mut rng = Rng::new(seed);
    let d = Path::new(MNT).join("d");
    let other = Path::new(MNT).join("other");
    ctx(fs::create_dir(&d), "mkdir d")?;
    ctx(fs::create_dir(&other), "mkdir other")?;
    let mut model = Model::new();

    // Colliding names: both of each pair present, then one of each gone,
    // then the other way round.
    let pairs = colliding_pairs(6, &mut rng);
    ensure!(!pairs.is_empty(), "no two names with the same hash found");
    for (a, b) in &pairs {
        ensure!(
            name_hash(a.as_bytes()) == name_hash(b.as_bytes()),
            "no collision"
        );
    }
    let mut pool: Vec<String> = pairs
        .iter()
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .collect();
    for n in &pool {
        ctx(fs::write(d.join(n), n), format!("create {n}"))?;
        model.insert(n.clone(), (n.clone(), false));
    }
    verify(&d, &model, &pool, true, "colliding names created")?;
    for (a, _) in &pairs {
        ctx(fs::remove_file(d.join(a)), format!("unlink {a}"))?;
        model.remove(a);
    }
    verify(&d, &model, &pool, true, "first of each pair removed")?;
    remount()?;
    verify(&d, &model, &pool, true, "after remount")?;
    for (a, b) in &pairs {
        ctx(fs::rename(d.join(b), d.join(a)), format!("rename {b} {a}"))?;
        let v = model.remove(b).ok_or("model")?;
        model.insert(a.clone(), v);
    }
    verify(&d, &model, &pool, true, "renamed onto their twins' names")?;

    // Fillers, so the directory spans a few hundred blocks.
    for i in 0..2000 {
        pool.push(format!("f{i}-{}", "x".repeat(i % 50)));
    }
    for _ in 0..100 {
        pool.push(format!("absent-{}", rng.next_u64()));
    }
    let filler_start = pairs.len() * 2;
    for n in &pool[filler_start..filler_start + 2000] {
        ctx(fs::write(d.join(n), n), format!("create {n}"))?;
        model.insert(n.clone(), (n.clone(), false));
    }
    verify(&d, &model, &pool, true, "2000 fillers created")?;

    let mut counter = 0u64;
    let pick = |rng: &mut Rng, pool: &[String]| pool[rng.below(pool.len() as u64) as usize].clone();
    for op in 0..ops {
        let n = pick(&mut rng, &pool);
        let p = d.join(&n);
        let present = model.get(&n).cloned();
        counter += 1;
        let when = format!("op {op}");
        match (rng.below(7), present) {
            (0 | 1, None) => {
                let tag = format!("{n}#{counter}");
                ctx(fs::write(&p, &tag), format!("{when}: create {n}"))?;
                model.insert(n.clone(), (tag, false));
            }
            (0, Some((_, false))) | (2, Some((_, false))) => {
                ctx(fs::remove_file(&p), format!("{when}: unlink {n}"))?;
                model.remove(&n);
            }
            (1 | 2, Some((tag, true))) => {
                ctx(
                    fs::remove_file(p.join(&tag)),
                    format!("{when}: unlink in {n}"),
                )?;
                ctx(fs::remove_dir(&p), format!("{when}: rmdir {n}"))?;
                model.remove(&n);
            }
            (3, Some(v)) => {
                // Rename within the directory, maybe over another name.
                let to = pick(&mut rng, &pool);
                // (Two names of one file: rename(2) does nothing.)
                let skip = model.get(&to).is_some_and(|t| t.1 || v.1 || t.0 == v.0);
                if to != n && !skip {
                    ctx(
                        fs::rename(&p, d.join(&to)),
                        format!("{when}: rename {n} {to}"),
                    )?;
                    model.remove(&n);
                    model.insert(to, v);
                }
            }
            (4, Some((tag, false))) => {
                // Out to the other directory and back under a new name.
                let to = pick(&mut rng, &pool);
                if !model.get(&to).is_some_and(|t| t.1 || t.0 == tag) {
                    let tmp = other.join("t");
                    ctx(fs::rename(&p, &tmp), format!("{when}: rename out {n}"))?;
                    model.remove(&n);
                    ctx(
                        fs::rename(&tmp, d.join(&to)),
                        format!("{when}: rename in {to}"),
                    )?;
                    model.insert(to, (tag, false));
                }
            }
            (5, Some((tag, false))) => {
                let to = pick(&mut rng, &pool);
                if let Entry::Vacant(e) = model.entry(to) {
                    let to = e.key();
                    ctx(
                        fs::hard_link(&p, d.join(to)),
                        format!("{when}: link {n} {to}"),
                    )?;
                    e.insert((tag, false));
                }
            }
            (6, None) => {
                let tag = format!("in{counter}");
                ctx(fs::create_dir(&p), format!("{when}: mkdir {n}"))?;
                ctx(
                    fs::write(p.join(&tag), b""),
                    format!("{when}: create in {n}"),
                )?;
                model.insert(n.clone(), (tag, true));
            }
            _ => {}
        }
        // The name just touched and a few random ones, present or not.
        let mut probe = vec![n.clone()];
        for _ in 0..3 {
            probe.push(pick(&mut rng, &pool));
        }
        let sub: Model = probe
            .iter()
            .filter_map(|k| model.get(k).map(|v| (k.clone(), v.clone())))
            .collect();
        verify(&d, &sub, &probe, false, &when)?;
        if op % 1000 == 999 {
            verify(&d, &model, &pool, true, &format!("{when}, full check"))?;
            remount()?;
            verify(&d, &model, &pool, true, &format!("{when}, after remount"))?;
        }
    }
    verify(&d, &model, &pool, true, "end")?;
    let entries = model.len();
    ctx(fs::remove_dir_all(&d), "rm -r d")?;
    umount(MNT).map_err(|e| format!("umount: {e}"))?;
    fsck_clean(PMEM)?;
    println!(
        "namespace-index: {} colliding pairs, {ops} operations over {} names, {entries} at the end: all lookups and listings matched",
        pairs.len(),
        pool.len()
    );
    Ok(())
}
