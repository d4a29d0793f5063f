//! The checker behind fsck.rdaxfs, usable in-process on any [`Dev`].
//!
//! One pass walks the tree from the root, claiming every block an inode
//! owns (data and overflow extent blocks) in an interval map, so a block
//! owned twice is found with both owners. The orphan list is walked too.
//! The bitmaps are then compared with what was found reachable. With
//! `repair`, what is safe is fixed: bad entries are cleared, bad extents
//! dropped, link counts and parents set, orphans reclaimed, bitmaps and
//! free counts rewritten, the primary superblock restored from the backup.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;

use crate::dev::Dev;
use crate::format::*;
use crate::fs::{zero_block, Block};

/// Checker options.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Repair what is safe (`-y`); otherwise never write (`-n`).
    pub repair: bool,
    /// Print progress notes.
    pub verbose: bool,
}

/// How serious a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Expected after a power cut under the ordering rules (leaked blocks
    /// or inodes, link counts too high, pending orphans, stale counts).
    Leak,
    /// Real corruption: the ordering rules cannot produce it.
    Corruption,
}

/// One finding.
#[derive(Clone, Debug)]
pub struct Problem {
    /// Seriousness.
    pub class: Class,
    /// Message naming the inode/block at fault.
    pub msg: String,
    /// Whether it was repaired.
    pub fixed: bool,
}

/// The result of a check.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Every problem found.
    pub problems: Vec<Problem>,
    /// Informational notes (dirty state, progress).
    pub notes: Vec<String>,
    /// The check could not be completed (no usable superblock, truncated).
    pub fatal: bool,
    /// Reachable inodes.
    pub inodes: u64,
    /// Reachable directories.
    pub dirs: u64,
    /// Data-area blocks in use.
    pub blocks_used: u64,
}

impl Report {
    /// No problems at all.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && !self.fatal
    }

    /// Only problems a power cut may legitimately leave.
    pub fn crash_consistent(&self) -> bool {
        !self.fatal && self.problems.iter().all(|p| p.class == Class::Leak)
    }

    /// fsck(8) exit code: 0 clean, 1 all corrected, 4 left uncorrected.
    pub fn exit_code(&self) -> i32 {
        if self.fatal || self.problems.iter().any(|p| !p.fixed) {
            4
        } else if self.problems.is_empty() {
            0
        } else {
            1
        }
    }
}

/// What the walk learned about one inode.
struct Node {
    inode: Inode,
    exts: Vec<Extent>,
    chain: Vec<u64>,
    dirty: bool,
}

struct Checker<'a, D: Dev> {
    dev: &'a mut D,
    opts: Options,
    sb: Superblock,
    rep: Report,
    ibm: Vec<u8>,
    bbm: Vec<u8>,
    used: Vec<u8>,
    owners: BTreeMap<u64, (u64, u64)>,
    nodes: HashMap<u64, Node>,
    bad: HashSet<u64>,
    refs: HashMap<u64, u32>,
    subdirs: HashMap<u64, u32>,
    parent: HashMap<u64, u64>,
    orphans: Vec<u64>,
    sb_dirty: bool,
}

/// Checks (and with `opts.repair`, repairs) the image on `dev`. `Err` is
/// an operational error (I/O); findings are in the report.
pub fn check<D: Dev>(dev: &mut D, opts: Options) -> io::Result<Report> {
    // A committed journal transaction and the orphan list are part of the
    // filesystem's state: the kernel replays the one and frees the other at
    // mount. Check the state after that recovery (in a copy-on-write view
    // with -n, on the device with -y).
    if !crate::recover::needed(dev).unwrap_or(false) {
        return check_image(dev, opts);
    }
    let (done, mut rep) = if opts.repair {
        let done = crate::recover::recover(dev).map_err(io::Error::other)?;
        (done, check_image(dev, opts)?)
    } else {
        let mut view = crate::recover::Overlay::new(dev);
        let done = crate::recover::recover(&mut view).map_err(io::Error::other)?;
        (done, check_image(&mut view, opts)?)
    };
    let how = if opts.repair { "" } else { " (in memory: -n)" };
    if let Some(seq) = done.replayed {
        rep.notes.insert(
            0,
            format!("journal: replayed committed transaction {seq}{how}"),
        );
    }
    if done.orphans != 0 {
        rep.notes.insert(
            0,
            format!("orphans: freed {} unlinked inode(s){how}", done.orphans),
        );
    }
    Ok(rep)
}

fn check_image<D: Dev>(dev: &mut D, opts: Options) -> io::Result<Report> {
    let mut rep = Report::default();
    let Some((sb, sb_dirty)) = load_superblock(dev, opts, &mut rep)? else {
        rep.fatal = true;
        return Ok(rep);
    };
    let ibm = read_area(dev, sb.inode_bitmap_start, sb.inode_bitmap_blocks)?;
    let bbm = read_area(dev, sb.block_bitmap_start, sb.block_bitmap_blocks)?;
    let used = vec![0u8; bbm.len()];
    let mut c = Checker {
        dev,
        opts,
        sb,
        rep,
        ibm,
        bbm,
        used,
        owners: BTreeMap::new(),
        nodes: HashMap::new(),
        bad: HashSet::new(),
        refs: HashMap::new(),
        subdirs: HashMap::new(),
        parent: HashMap::new(),
        orphans: Vec::new(),
        sb_dirty,
    };
    c.run()?;
    Ok(c.rep)
}

fn read_area<D: Dev>(dev: &mut D, start: u64, blocks: u64) -> io::Result<Vec<u8>> {
    let mut v = vec![0u8; blocks as usize * BLOCK_SIZE];
    dev.read_at(start * BLOCK_SIZE_U64, &mut v)?;
    Ok(v)
}

fn problem(rep: &mut Report, class: Class, fixed: bool, msg: String) {
    rep.problems.push(Problem { class, msg, fixed });
}

fn same_geometry(a: &Superblock, b: &Superblock) -> bool {
    let strip = |s: &Superblock| Superblock {
        free_blocks: 0,
        free_inodes: 0,
        orphan_head: 0,
        state: 0,
        mount_count: 0,
        mount_time: 0,
        write_time: 0,
        ..*s
    };
    strip(a) == strip(b)
}

fn decode_valid(buf: &[u8], size: u64) -> Result<Superblock, FormatError> {
    let sb = Superblock::decode(buf)?;
    sb.validate(size)?;
    Ok(sb)
}

/// Finds a usable superblock; `None` if there is none (fatal).
fn load_superblock<D: Dev>(
    dev: &mut D,
    opts: Options,
    rep: &mut Report,
) -> io::Result<Option<(Superblock, bool)>> {
    let size = dev.size()?;
    let mut prim = zero_block();
    if size < BLOCK_SIZE_U64 {
        problem(
            rep,
            Class::Corruption,
            false,
            format!("device of {size} bytes holds no superblock"),
        );
        return Ok(None);
    }
    dev.read_at(0, &mut prim[..])?;
    let backup_at = (size / BLOCK_SIZE_U64).saturating_sub(1);
    let mut backup = zero_block();
    dev.read_at(backup_at * BLOCK_SIZE_U64, &mut backup[..])?;
    let sb = match decode_valid(&prim[..], size) {
        Ok(sb) => sb,
        Err(e) => return recover_primary(opts, rep, &prim, &backup, e, size),
    };
    if let Err(e) = sb.check_features() {
        problem(
            rep,
            Class::Corruption,
            false,
            format!("superblock: {}", e.msg()),
        );
        return Ok(None);
    }
    let mut dirty = false;
    let mut bk = zero_block();
    dev.read_at(sb.backup_block() * BLOCK_SIZE_U64, &mut bk[..])?;
    match Superblock::decode(&bk[..]) {
        Ok(b) if same_geometry(&b, &sb) => {}
        Ok(_) => {
            problem(
                rep,
                Class::Corruption,
                opts.repair,
                format!(
                    "backup superblock (block {}) differs from primary",
                    sb.backup_block()
                ),
            );
            dirty = true;
        }
        Err(e) => {
            problem(
                rep,
                Class::Corruption,
                opts.repair,
                format!(
                    "backup superblock (block {}): {}",
                    sb.backup_block(),
                    e.msg()
                ),
            );
            dirty = true;
        }
    }
    Ok(Some((sb, dirty)))
}

fn recover_primary(
    opts: Options,
    rep: &mut Report,
    prim: &Block,
    backup: &Block,
    e: FormatError,
    size: u64,
) -> io::Result<Option<(Superblock, bool)>> {
    if e == FormatError::DeviceTooSmall {
        if let Ok(sb) = Superblock::decode(&prim[..]) {
            problem(
                rep,
                Class::Corruption,
                false,
                format!(
                    "image truncated: superblock says {} blocks ({} bytes), device holds {} bytes",
                    sb.block_count,
                    sb.block_count.saturating_mul(BLOCK_SIZE_U64),
                    size
                ),
            );
            return Ok(None);
        }
    }
    let sb = match decode_valid(&backup[..], size) {
        Ok(sb) => sb,
        Err(be) => {
            problem(
                rep,
                Class::Corruption,
                false,
                format!(
                    "primary superblock: {}; backup superblock: {}; no usable superblock",
                    e.msg(),
                    be.msg()
                ),
            );
            return Ok(None);
        }
    };
    problem(
        rep,
        Class::Corruption,
        opts.repair,
        format!(
            "primary superblock: {}; using backup from block {}",
            e.msg(),
            sb.backup_block()
        ),
    );
    if sb.check_features().is_err() {
        problem(
            rep,
            Class::Corruption,
            false,
            "backup superblock: unsupported feature".into(),
        );
        return Ok(None);
    }
    Ok(Some((sb, true)))
}

impl<D: Dev> Checker<'_, D> {
    fn run(&mut self) -> io::Result<()> {
        self.claim_metadata();
        self.collect_orphans()?;
        self.walk_tree()?;
        self.settle_orphans()?;
        self.check_unreachable();
        self.check_links();
        self.write_inodes()?;
        self.compare_bitmaps();
        self.check_counts();
        self.write_back()
    }

    fn report(&mut self, class: Class, msg: String) {
        let fixed = self.opts.repair;
        problem(&mut self.rep, class, fixed, msg);
    }

    fn claim_metadata(&mut self) {
        let _ = bits_set_range(&mut self.used, 0, self.sb.data_start);
        let _ = bit_set(&mut self.used, self.sb.backup_block());
    }

    fn read_block(&mut self, n: u64) -> io::Result<Block> {
        let mut b = zero_block();
        self.dev.read_at(n * BLOCK_SIZE_U64, &mut b[..])?;
        Ok(b)
    }

    fn write_block(&mut self, n: u64, b: &[u8]) -> io::Result<()> {
        if self.opts.repair {
            self.dev.write_at(n * BLOCK_SIZE_U64, b)?;
        }
        Ok(())
    }

    /// Claims `start..start+len` for `ino`; returns the first conflict.
    fn claim(&mut self, start: u64, len: u64, ino: u64) -> Option<(u64, u64)> {
        let end = start + len;
        if let Some((&s, &(e, o))) = self.owners.range(..end).next_back() {
            if e > start {
                return Some((s.max(start), o));
            }
        }
        self.owners.insert(start, (end, ino));
        let _ = bits_set_range(&mut self.used, start, len);
        None
    }

    fn unclaim(&mut self, start: u64) {
        if let Some((end, _)) = self.owners.remove(&start) {
            let _ = bits_clear_range(&mut self.used, start, end - start);
        }
    }

    /// Loads, checks and claims inode `ino` once; false if unusable.
    fn load(&mut self, ino: u64, what: &str) -> io::Result<bool> {
        if self.nodes.contains_key(&ino) {
            return Ok(true);
        }
        if self.bad.contains(&ino) {
            return Ok(false);
        }
        let inode = match self.decode_inode(ino)? {
            Ok(i) => i,
            Err(e) => {
                self.report(
                    Class::Corruption,
                    format!("inode {ino} ({what}): {}", e.msg()),
                );
                self.bad.insert(ino);
                return Ok(false);
            }
        };
        let mut node = Node {
            inode,
            exts: Vec::new(),
            chain: Vec::new(),
            dirty: false,
        };
        self.load_extents(ino, &mut node)?;
        self.claim_extents(ino, &mut node);
        self.check_shape(ino, &mut node);
        self.nodes.insert(ino, node);
        Ok(true)
    }

    fn decode_inode(&mut self, ino: u64) -> io::Result<Result<Inode, FormatError>> {
        let (blk, off) = match inode_location(&self.sb, ino) {
            Ok(l) => l,
            Err(e) => return Ok(Err(e)),
        };
        let mut b = [0u8; INODE_SIZE];
        self.dev
            .read_at(blk * BLOCK_SIZE_U64 + off as u64, &mut b)?;
        Ok(Inode::decode(&b, ino).and_then(|i| i.check().map(|_| i)))
    }

    fn load_extents(&mut self, ino: u64, node: &mut Node) -> io::Result<()> {
        let total = node.inode.extent_count as usize;
        node.exts = node.inode.inline_extents().to_vec();
        let mut next = node.inode.overflow;
        while node.exts.len() < total {
            if let Err(m) = self.chain_ok(next, node) {
                self.report(
                    Class::Corruption,
                    format!("inode {ino}: extent block {next}: {m}; extents past it dropped"),
                );
                node.dirty = true;
                return Ok(());
            }
            let b = self.read_block(next)?;
            let hdr = match ExtentBlockHeader::decode(&b[..], ino) {
                Ok(h) if h.count > 0 => h,
                Ok(_) => {
                    self.chain_bad(ino, next, FormatError::BadCount, node);
                    return Ok(());
                }
                Err(e) => {
                    self.chain_bad(ino, next, e, node);
                    return Ok(());
                }
            };
            node.chain.push(next);
            for i in 0..hdr.count as usize {
                node.exts.extend(extent_block_entry(&b[..], i).ok());
            }
            next = hdr.next;
        }
        if node.exts.len() != total || next != 0 {
            self.report(
                Class::Corruption,
                format!(
                    "inode {ino}: extent count {total} does not match the {} extents stored",
                    node.exts.len()
                ),
            );
            node.dirty = true;
        }
        Ok(())
    }

    fn chain_ok(&self, next: u64, node: &Node) -> Result<(), &'static str> {
        if next == 0 {
            return Err("missing");
        }
        if next < self.sb.data_start || next >= self.sb.data_end() {
            return Err("outside the data area");
        }
        if node.chain.contains(&next) {
            return Err("chain loops");
        }
        Ok(())
    }

    fn chain_bad(&mut self, ino: u64, blk: u64, e: FormatError, node: &mut Node) {
        self.report(
            Class::Corruption,
            format!(
                "inode {ino}: extent block {blk}: {}; extents past it dropped",
                e.msg()
            ),
        );
        node.dirty = true;
    }

    fn claim_extents(&mut self, ino: u64, node: &mut Node) {
        let mut chain = std::mem::take(&mut node.chain);
        chain.retain(|&b| match self.claim(b, 1, ino) {
            None => true,
            Some((blk, o)) => {
                self.report(
                    Class::Corruption,
                    format!("block {blk} owned twice: extent block of inode {ino} and inode {o}"),
                );
                node.dirty = true;
                false
            }
        });
        node.chain = chain;
        let (lo, hi) = (self.sb.data_start, self.sb.data_end());
        let mut prev_end = 0u64;
        let exts = std::mem::take(&mut node.exts);
        for (i, e) in exts.into_iter().enumerate() {
            let why = if extent_validate(&e, lo, hi).is_err() {
                Some(format!(
                    "extent #{i} (logical {}, physical {}, {} blocks) outside data area {lo}..{hi}",
                    e.logical, e.physical, e.len
                ))
            } else if e.logical < prev_end {
                Some(format!(
                    "extent #{i} (logical {}, {} blocks) overlaps the previous extent",
                    e.logical, e.len
                ))
            } else if let Some((blk, o)) = self.claim(e.physical, u64::from(e.len), ino) {
                Some(format!(
                    "block {blk} owned twice: inode {ino} (extent #{i}) and inode {o}"
                ))
            } else {
                None
            };
            match why {
                Some(m) => {
                    self.report(
                        Class::Corruption,
                        format!("inode {ino}: {m}; extent dropped"),
                    );
                    node.dirty = true;
                }
                None => {
                    prev_end = e.logical + u64::from(e.len);
                    node.exts.push(e);
                }
            }
        }
    }

    /// Per-type shape rules: directories and symlinks have no holes.
    fn check_shape(&mut self, ino: u64, node: &mut Node) {
        let inode = &node.inode;
        if inode.is_dir() || inode.is_symlink() {
            let contiguous = node
                .exts
                .iter()
                .scan(0u64, |next, e| {
                    let ok = e.logical == *next;
                    *next = e.logical + u64::from(e.len);
                    Some(ok)
                })
                .take_while(|&ok| ok)
                .count();
            for e in node.exts.drain(contiguous..).collect::<Vec<_>>() {
                self.report(
                    Class::Corruption,
                    format!(
                        "inode {ino}: hole before logical block {}; later blocks dropped",
                        e.logical
                    ),
                );
                self.unclaim(e.physical);
                node.dirty = true;
            }
            let mapped = node.exts.last().map_or(0, |e| e.logical + u64::from(e.len));
            let want = if inode.is_dir() {
                inode.size / BLOCK_SIZE_U64
            } else {
                1
            };
            if mapped != want {
                self.report(
                    Class::Corruption,
                    format!(
                        "inode {ino}: size {} but {mapped} blocks mapped",
                        inode.size
                    ),
                );
                node.dirty = true;
                if inode.is_dir() {
                    node.inode.size = mapped * BLOCK_SIZE_U64;
                }
            }
        }
        let owned =
            node.exts.iter().map(|e| u64::from(e.len)).sum::<u64>() + node.chain.len() as u64;
        if owned != node.inode.blocks && !node.dirty {
            self.report(
                Class::Corruption,
                format!(
                    "inode {ino}: block count {} but {owned} blocks owned",
                    node.inode.blocks
                ),
            );
            node.dirty = true;
        }
    }

    fn collect_orphans(&mut self) -> io::Result<()> {
        let mut ino = self.sb.orphan_head;
        let mut seen = HashSet::new();
        while ino != 0 {
            let why = if !seen.insert(ino) {
                Some("orphan list loops".to_string())
            } else if ino > self.sb.inode_count || !bit_test(&self.ibm, ino - 1) {
                Some(format!("orphan list names free or invalid inode {ino}"))
            } else {
                match self.decode_inode(ino)? {
                    Ok(i) if i.nlink == 0 => {
                        self.orphans.push(ino);
                        ino = i.next_orphan;
                        continue;
                    }
                    Ok(i) => Some(format!(
                        "inode {ino} on orphan list has link count {}",
                        i.nlink
                    )),
                    Err(e) => Some(format!("orphan inode {ino}: {}", e.msg())),
                }
            };
            if let Some(m) = why {
                self.report(Class::Corruption, format!("{m}; orphan list cut there"));
                self.sb_dirty = true;
            }
            break;
        }
        Ok(())
    }

    fn walk_tree(&mut self) -> io::Result<()> {
        let root = self.sb.root_ino;
        let root_ok = bit_test(&self.ibm, root - 1)
            && self.load(root, "root")?
            && self.nodes.get(&root).is_some_and(|n| n.inode.is_dir());
        if !root_ok {
            problem(
                &mut self.rep,
                Class::Corruption,
                false,
                format!("root inode {root} is not a valid directory"),
            );
            self.rep.fatal = true;
            return Ok(());
        }
        self.parent.insert(root, root);
        let mut queue = std::collections::VecDeque::from([root]);
        while let Some(dir) = queue.pop_front() {
            self.rep.dirs += 1;
            let blocks: Vec<Extent> = self
                .nodes
                .get(&dir)
                .map(|n| n.exts.clone())
                .unwrap_or_default();
            for e in blocks {
                for i in 0..u64::from(e.len) {
                    self.check_dir_block(dir, e.logical + i, e.physical + i, &mut queue)?;
                }
            }
        }
        Ok(())
    }

    fn check_dir_block(
        &mut self,
        dir: u64,
        lblk: u64,
        pblk: u64,
        queue: &mut std::collections::VecDeque<u64>,
    ) -> io::Result<()> {
        let mut b = self.read_block(pblk)?;
        let mut changed = false;
        if let Err(e) = dir_check(&b[..]) {
            self.report(
                Class::Corruption,
                format!(
                    "directory {dir} block {lblk} (block {pblk}): {}; block emptied",
                    e.msg()
                ),
            );
            let _ = dir_init(&mut b[..]);
            self.write_block(pblk, &b[..])?;
            return Ok(());
        }
        for slot in 0..DIR_SLOTS {
            let verdict = match dir_entry(&b[..], slot) {
                Ok(None) => continue,
                Ok(Some(e)) => {
                    let (ino, ft, hash, name) = (
                        e.ino,
                        e.file_type,
                        e.hash,
                        String::from_utf8_lossy(e.name).into_owned(),
                    );
                    let ok_hash = hash == name_hash(e.name);
                    self.check_entry(dir, ino, ft, ok_hash, &name, queue)?
                }
                Err(e) => Verdict::Clear(format!(
                    "directory {dir} block {lblk} slot {slot}: {}",
                    e.msg()
                )),
            };
            match verdict {
                Verdict::Keep => {}
                Verdict::Clear(m) => {
                    self.report(Class::Corruption, format!("{m}; entry cleared"));
                    let _ = dir_remove(&mut b[..], slot);
                    changed = true;
                }
                Verdict::Retype(ino, ft, m) => {
                    self.report(Class::Corruption, m);
                    let _ = dir_set_ino(&mut b[..], slot, ino, ft);
                    changed = true;
                }
            }
        }
        let counted = dir_count_used(&b[..]) as u16;
        if dir_check(&b[..]).is_ok_and(|u| u != counted) {
            self.report(
                Class::Corruption,
                format!("directory {dir} block {lblk}: used count wrong"),
            );
            b[4..6].copy_from_slice(&counted.to_le_bytes());
            let _ = dir_seal(&mut b[..]);
            changed = true;
        }
        if changed {
            self.write_block(pblk, &b[..])?;
        }
        Ok(())
    }

    fn check_entry(
        &mut self,
        dir: u64,
        ino: u64,
        ft: u8,
        ok_hash: bool,
        name: &str,
        queue: &mut std::collections::VecDeque<u64>,
    ) -> io::Result<Verdict> {
        let at = format!("entry '{name}' in directory {dir}");
        if !ok_hash {
            return Ok(Verdict::Clear(format!("{at}: name hash mismatch")));
        }
        if ino > self.sb.inode_count {
            return Ok(Verdict::Clear(format!("{at}: inode {ino} out of range")));
        }
        if !bit_test(&self.ibm, ino - 1) {
            return Ok(Verdict::Clear(format!(
                "dangling {at}: inode {ino} is free in the inode bitmap"
            )));
        }
        if self.orphans.contains(&ino) {
            return Ok(Verdict::Clear(format!(
                "{at}: inode {ino} is on the orphan list"
            )));
        }
        if !self.load(ino, &at)? {
            return Ok(Verdict::Clear(format!("{at}: inode {ino} is unusable")));
        }
        let Some(node) = self.nodes.get(&ino) else {
            return Ok(Verdict::Keep);
        };
        let real = dt_from_mode(node.inode.mode).unwrap_or(DT_UNKNOWN);
        let is_dir = node.inode.is_dir();
        if is_dir {
            if ino == self.sb.root_ino || self.parent.contains_key(&ino) {
                return Ok(Verdict::Clear(format!("{at}: directory {ino} already linked (directory cycle or hard-linked directory)")));
            }
            self.parent.insert(ino, dir);
            *self.subdirs.entry(dir).or_default() += 1;
            queue.push_back(ino);
        }
        *self.refs.entry(ino).or_default() += 1;
        if real != ft {
            return Ok(Verdict::Retype(
                ino,
                real,
                format!("{at}: file type {ft} but inode {ino} has type {real}"),
            ));
        }
        Ok(Verdict::Keep)
    }

    fn settle_orphans(&mut self) -> io::Result<()> {
        for ino in self.orphans.clone() {
            if self.opts.repair {
                self.report(Class::Leak, format!("orphan inode {ino}: reclaimed"));
                continue;
            }
            self.report(
                Class::Leak,
                format!("orphan inode {ino}: unlinked, not yet reclaimed"),
            );
            self.load(ino, "orphan")?;
        }
        if self.opts.repair && self.sb.orphan_head != 0 {
            self.sb_dirty = true;
            self.orphans.clear();
        }
        Ok(())
    }

    fn check_unreachable(&mut self) {
        let n = self.sb.inode_count;
        let mut i = 0;
        while let Some(bit) = find_set(&self.ibm, i, n) {
            let ino = bit + 1;
            if !self.nodes.contains_key(&ino) && !self.orphans.contains(&ino) {
                self.report(
                    Class::Leak,
                    format!("inode {ino} allocated but unreachable (leaked); freed"),
                );
            }
            i = bit + 1;
        }
    }

    fn check_links(&mut self) {
        let mut inos: Vec<u64> = self.nodes.keys().copied().collect();
        inos.sort_unstable();
        for ino in inos {
            if self.orphans.contains(&ino) {
                continue;
            }
            let refs = self.refs.get(&ino).copied().unwrap_or(0);
            let Some(node) = self.nodes.get_mut(&ino) else {
                continue;
            };
            let want = if node.inode.is_dir() {
                2 + self.subdirs.get(&ino).copied().unwrap_or(0)
            } else {
                refs
            };
            let mut msgs = Vec::new();
            if node.inode.nlink != want {
                let class = if node.inode.nlink > want {
                    Class::Leak
                } else {
                    Class::Corruption
                };
                msgs.push((
                    class,
                    format!(
                        "inode {ino}: link count {} but {want} references",
                        node.inode.nlink
                    ),
                ));
                node.inode.nlink = want;
                node.dirty = true;
            }
            if node.inode.is_dir() {
                let p = self.parent.get(&ino).copied().unwrap_or(0);
                if node.inode.parent != p {
                    msgs.push((
                        Class::Corruption,
                        format!(
                            "directory {ino}: parent field {} but linked from {p}",
                            node.inode.parent
                        ),
                    ));
                    node.inode.parent = p;
                    node.dirty = true;
                }
            }
            for (c, m) in msgs {
                self.report(c, m);
            }
        }
    }

    /// Rewrites inodes whose fields or extents were repaired, reusing
    /// their own overflow blocks (repairs only ever drop extents).
    fn write_inodes(&mut self) -> io::Result<()> {
        let dirty: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.dirty)
            .map(|(&i, _)| i)
            .collect();
        for ino in dirty {
            let Some(mut node) = self.nodes.remove(&ino) else {
                continue;
            };
            let need = node
                .exts
                .len()
                .saturating_sub(INLINE_EXTENTS)
                .div_ceil(EXTENT_BLOCK_CAPACITY);
            for &b in node.chain.iter().skip(need) {
                self.unclaim(b);
            }
            node.chain.truncate(need);
            let rest: Vec<Extent> = node.exts.iter().skip(INLINE_EXTENTS).copied().collect();
            for (i, chunk) in rest.chunks(EXTENT_BLOCK_CAPACITY).enumerate() {
                let next = node.chain.get(i + 1).copied().unwrap_or(0);
                let mut b = zero_block();
                let _ = extent_block_encode(&mut b[..], next, ino, chunk);
                if let Some(&blk) = node.chain.get(i) {
                    self.write_block(blk, &b[..])?;
                }
            }
            let i = &mut node.inode;
            i.extents = [Extent::default(); INLINE_EXTENTS];
            for (d, s) in i.extents.iter_mut().zip(node.exts.iter()) {
                *d = *s;
            }
            i.extent_count = node.exts.len() as u32;
            i.overflow = node.chain.first().copied().unwrap_or(0);
            i.blocks =
                node.exts.iter().map(|e| u64::from(e.len)).sum::<u64>() + node.chain.len() as u64;
            self.write_inode(ino, &node.inode)?;
            self.nodes.insert(ino, node);
        }
        Ok(())
    }

    fn write_inode(&mut self, ino: u64, inode: &Inode) -> io::Result<()> {
        if !self.opts.repair {
            return Ok(());
        }
        if let Ok((blk, off)) = inode_location(&self.sb, ino) {
            let mut b = [0u8; INODE_SIZE];
            let _ = inode.encode(&mut b, ino);
            self.dev.write_at(blk * BLOCK_SIZE_U64 + off as u64, &b)?;
        }
        Ok(())
    }

    fn computed_ibm(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.ibm.len()];
        for &ino in self.nodes.keys().chain(self.orphans.iter()) {
            let _ = bit_set(&mut v, ino - 1);
        }
        v
    }

    fn compare_bitmaps(&mut self) {
        let n = self.sb.block_count;
        let (mut leaked, mut first_leak) = (0u64, None);
        let mut i = 0;
        while i < n {
            let (a, b) = (bit_test(&self.bbm, i), bit_test(&self.used, i));
            if a && !b {
                leaked += 1;
                first_leak.get_or_insert(i);
            } else if b && !a {
                let owner = self
                    .owners
                    .range(..=i)
                    .next_back()
                    .map_or(0, |(_, &(_, o))| o);
                let who = if i < self.sb.data_start || i == self.sb.backup_block() {
                    "metadata".to_string()
                } else {
                    format!("inode {owner}")
                };
                self.report(
                    Class::Corruption,
                    format!("block {i} in use by {who} but free in the block bitmap"),
                );
            }
            i += 1;
        }
        if let Some(f) = first_leak {
            self.report(
                Class::Leak,
                format!("{leaked} blocks marked used but owned by nothing (leaked), first {f}"),
            );
        }
        let want = self.computed_ibm();
        let m = self.sb.inode_count;
        for bit in 0..m {
            if bit_test(&want, bit) && !bit_test(&self.ibm, bit) {
                self.report(
                    Class::Corruption,
                    format!("inode {} in use but free in the inode bitmap", bit + 1),
                );
            }
        }
    }

    fn check_counts(&mut self) {
        let sb = &self.sb;
        let free_b = sb.data_blocks() - bits_count(&self.used, sb.data_start, sb.data_end());
        let used_i = bits_count(&self.computed_ibm(), 0, sb.inode_count);
        let free_i = sb.inode_count - used_i;
        self.rep.inodes = used_i;
        self.rep.blocks_used = sb.data_blocks() - free_b;
        if sb.state == STATE_DIRTY {
            self.rep
                .notes
                .push("filesystem was not cleanly unmounted".into());
        }
        if (sb.free_blocks, sb.free_inodes) != (free_b, free_i) {
            let m = format!(
                "free counts {} blocks / {} inodes, actual {free_b} / {free_i}",
                sb.free_blocks, sb.free_inodes
            );
            if sb.state == STATE_DIRTY {
                self.rep.notes.push(format!("{m} (advisory while mounted)"));
            } else {
                self.report(Class::Leak, m);
            }
        }
        self.sb.free_blocks = free_b;
        self.sb.free_inodes = free_i;
    }

    fn write_back(&mut self) -> io::Result<()> {
        if !self.opts.repair || self.rep.fatal {
            return Ok(());
        }
        let want = self.computed_ibm();
        if want != self.ibm {
            self.dev
                .write_at(self.sb.inode_bitmap_start * BLOCK_SIZE_U64, &want)?;
        }
        if self.used != self.bbm {
            self.dev
                .write_at(self.sb.block_bitmap_start * BLOCK_SIZE_U64, &self.used)?;
        }
        self.sb.orphan_head = 0;
        self.sb.state = STATE_CLEAN;
        let mut b = zero_block();
        let _ = self.sb.encode(&mut b[..]);
        self.dev.write_at(0, &b[..])?;
        self.dev
            .write_at(self.sb.backup_block() * BLOCK_SIZE_U64, &b[..])?;
        self.dev.sync()
    }
}

enum Verdict {
    Keep,
    Clear(String),
    Retype(u64, u8, String),
}
