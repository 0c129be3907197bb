//! The etcd snapshot file format, shared by `etcd_snapshot` and `etcd_restore`.
//!
//! A snapshot as etcd streams it (and as `etcdctl snapshot save` writes it)
//! is the member's bbolt database followed by the 32-byte sha256 of the
//! bytes before it. The database is a whole number of pages (a multiple of
//! 512 bytes), so a file with a trailer has `size % 512 == 32`; that is how
//! `etcdctl snapshot restore` tells a snapshot from a bare `member/snap/db`.
//!
//! [`StreamHasher`] checks that trailer in one pass while the bytes go by,
//! and [`inspect`] checks an existing file the same way, then reads the
//! revision and key count out of the database with a minimal read-only
//! bbolt reader (page by page with `pread`, so memory stays flat).

/// Streaming SHA-256 from the `sha2` crate, with the one-call `finalize`
/// the snapshot code wants. The root Cargo.toml builds `sha2` at opt-level 3
/// even in the size-optimised release profile: at `"s"` its SHA-NI helper is
/// not inlined and hashing runs about 4x slower than the snapshot stream.
#[derive(Clone, Default)]
pub struct Sha256(sha2::Sha256);

impl Sha256 {
    /// A new hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Hashes `data`.
    pub fn update(&mut self, data: &[u8]) {
        sha2::Digest::update(&mut self.0, data);
    }

    /// The digest of everything hashed.
    pub fn finalize(self) -> [u8; 32] {
        sha2::Digest::finalize(self.0).into()
    }
}
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Length of the sha256 trailer etcd appends to the database.
pub const HASH_LEN: usize = 32;

/// Size of the buffer used to hash a file (flat memory, few syscalls).
const READ_CHUNK: usize = 1 << 20;

/// Hashes a snapshot stream incrementally.
///
/// The last 32 bytes seen so far are held back, because they may be the
/// trailer. Their hash state is shared: the database is a whole number of
/// pages (a multiple of sha256's 64-byte block), so the state after the
/// database gives both the database's digest (to compare with the
/// trailer) and, fed the trailer, the whole file's digest: one pass.
#[derive(Clone, Default)]
pub struct StreamHasher {
    hasher: Sha256,
    tail: Vec<u8>,
    len: u64,
}

/// What [`StreamHasher::finish`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// Bytes seen.
    pub len: u64,
    /// sha256 of everything (the file's sha256, as `sha256sum` prints it).
    pub file_sha256: String,
    /// Whether the size is that of a database plus a trailer (`len % 512 == 32`).
    pub has_trailer: bool,
    /// Whether the trailer equals the sha256 of the bytes before it.
    pub trailer_matches: bool,
}

impl StreamHasher {
    /// A hasher that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes of the stream.
    pub fn update(&mut self, data: &[u8]) {
        self.len += data.len() as u64;
        if data.len() >= HASH_LEN {
            self.hasher.update(&self.tail);
            self.tail.clear();
            let (body, tail) = data.split_at(data.len() - HASH_LEN);
            self.hasher.update(body);
            self.tail.extend_from_slice(tail);
        } else {
            let total = self.tail.len() + data.len();
            if total > HASH_LEN {
                let spill = total - HASH_LEN;
                self.hasher.update(&self.tail[..spill]);
                self.tail.drain(..spill);
            }
            self.tail.extend_from_slice(data);
        }
    }

    /// Bytes seen so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was seen.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Finishes both digests.
    pub fn finish(self) -> Digests {
        let body_digest = self.hasher.clone().finalize();
        let mut whole = self.hasher;
        whole.update(&self.tail);
        let has_trailer = self.len % 512 == HASH_LEN as u64;
        Digests {
            len: self.len,
            file_sha256: hex(&whole.finalize()),
            has_trailer,
            trailer_matches: has_trailer && self.tail.as_slice() == body_digest.as_slice(),
        }
    }
}

impl Digests {
    /// `Ok` when the stream is a complete snapshot, else why not.
    pub fn check(&self) -> Result<(), String> {
        if !self.has_trailer {
            return Err(format!(
                "it is truncated or has no sha256 trailer: its size ({} bytes) is not a whole \
                 number of database pages plus 32 bytes",
                self.len
            ));
        }
        if !self.trailer_matches {
            return Err(
                "its sha256 trailer does not match its contents: the file is corrupt".into(),
            );
        }
        Ok(())
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a snapshot file holds, as `etcdctl snapshot status` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// File size in bytes.
    pub size: u64,
    /// sha256 of the whole file.
    pub sha256: String,
    /// Whether the file ends with etcd's sha256 trailer and it matches.
    pub hash_verified: bool,
    /// The database's statistics.
    pub db: DbStats,
}

/// Reads `path` once: hashes it (and, with `check_hash`, fails unless the
/// trailer matches, as `etcdctl snapshot restore` would), then reads the
/// database's statistics. Without `check_hash` a bare bbolt file (no
/// trailer) is accepted, like `--skip-hash-check`.
pub fn inspect(path: &Path, check_hash: bool) -> Result<SnapshotInfo, String> {
    let shown = path.display();
    let mut file = File::open(path).map_err(|e| format!("cannot open {shown}: {e}"))?;
    let mut hasher = StreamHasher::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read {shown}: {e}")),
        };
        hasher.update(&buf[..n]);
    }
    drop(buf);
    let digests = hasher.finish();
    if check_hash {
        digests
            .check()
            .map_err(|why| format!("snapshot {shown} failed its integrity check: {why}"))?;
    }
    // The same rule as etcdctl's restore: a trailer is present iff size % 512 == 32.
    let db_len = if digests.has_trailer {
        digests.len - HASH_LEN as u64
    } else {
        digests.len
    };
    let db = db_stats(&file, db_len)
        .map_err(|why| format!("{shown} is not a readable etcd database: {why}"))?;
    Ok(SnapshotInfo {
        size: digests.len,
        sha256: digests.file_sha256,
        hash_verified: digests.trailer_matches,
        db,
    })
}

/// Statistics of a bbolt database, computed exactly as
/// `etcdctl snapshot status` does (etcd 3.4 `snapshot.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbStats {
    /// Main revision of the last entry of the `key` bucket (`revision`).
    pub revision: u64,
    /// Entries in all buckets together (`totalKey`: etcd's own buckets included).
    pub total_keys: u64,
    /// Entries of the `key` bucket alone (every stored revision of every key).
    pub key_bucket_entries: u64,
    /// Database size: high-water page id times page size (`totalSize`).
    pub total_size: u64,
}

// bbolt on-disk layout (go.etcd.io/bbolt page.go / db.go), little-endian.
const PAGE_HEADER: usize = 16;
const ELEMENT: usize = 16;
const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const META_PAGE: u16 = 0x04;
const BUCKET_LEAF: u32 = 0x01;
const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const META_LEN: usize = 64;
/// Deeper than any real B+tree of a few TB; stops loops in corrupt files.
const MAX_DEPTH: u32 = 64;
/// What the walk says when the page graph is not a tree.
const DEPTH_ERROR: &str =
    "the page tree is deeper than any valid database (a cycle of branch pages)";

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(b[off..off + 2].try_into().expect("2 bytes"))
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    page_size: u64,
    root: u64,
    high_water: u64,
    txid: u64,
}

/// Parses a meta page (`buf` starts at the page), checking its fnv64a checksum.
fn parse_meta(buf: &[u8]) -> Option<Meta> {
    if buf.len() < PAGE_HEADER + META_LEN || u16_at(buf, 8) & META_PAGE == 0 {
        return None;
    }
    let m = &buf[PAGE_HEADER..PAGE_HEADER + META_LEN];
    let mut sum: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in &m[..56] {
        sum ^= u64::from(b);
        sum = sum.wrapping_mul(0x0100_0000_01b3);
    }
    let page_size = u64::from(u32_at(m, 8));
    let valid = u32_at(m, 0) == MAGIC
        && u32_at(m, 4) == VERSION
        && u64_at(m, 56) == sum
        && page_size.is_power_of_two()
        && (512..=1 << 20).contains(&page_size);
    valid.then(|| Meta {
        page_size,
        root: u64_at(m, 16),
        high_water: u64_at(m, 40),
        txid: u64_at(m, 48),
    })
}

struct Db<'a> {
    file: &'a File,
    len: u64,
    meta: Meta,
    /// Tree pages already walked: in a valid database every page belongs to
    /// exactly one tree, once, so a second visit means a cycle or a shared
    /// subtree, which a crafted file could use to make the walk exponential.
    visited: std::cell::RefCell<std::collections::HashSet<u64>>,
}

/// A page's header.
struct Header {
    flags: u16,
    count: usize,
}

impl Db<'_> {
    fn read_at(&self, off: u64, n: usize) -> Result<Vec<u8>, String> {
        if off.checked_add(n as u64).is_none_or(|end| end > self.len) {
            return Err(format!(
                "a page reference points past the end of the database (offset {off})"
            ));
        }
        let mut buf = vec![0u8; n];
        self.file
            .read_exact_at(&mut buf, off)
            .map_err(|e| format!("read at offset {off}: {e}"))?;
        Ok(buf)
    }

    fn page_offset(&self, pgid: u64) -> Result<u64, String> {
        if pgid < 2 || pgid >= self.meta.high_water {
            return Err(format!(
                "page id {pgid} is outside the database (high-water mark {})",
                self.meta.high_water
            ));
        }
        Ok(pgid * self.meta.page_size)
    }

    /// Reads the first `n` bytes of page `pgid` and checks the header's page id.
    fn read_page_prefix(&self, pgid: u64, n: usize) -> Result<Vec<u8>, String> {
        let buf = self.read_at(self.page_offset(pgid)?, n)?;
        if u64_at(&buf, 0) != pgid {
            return Err(format!(
                "page {pgid} has id {} in its header",
                u64_at(&buf, 0)
            ));
        }
        Ok(buf)
    }

    fn header(buf: &[u8]) -> Header {
        Header {
            flags: u16_at(buf, 8),
            count: usize::from(u16_at(buf, 10)),
        }
    }

    /// Records that the walk enters page `pgid`; fails on a second visit.
    fn visit(&self, pgid: u64) -> Result<(), String> {
        if self.visited.borrow_mut().insert(pgid) {
            Ok(())
        } else {
            Err(format!(
                "page {pgid} is referenced more than once (the page graph has a cycle or a shared subtree)"
            ))
        }
    }

    /// Reads the whole of page `pgid` (overflow pages included).
    fn read_page(&self, pgid: u64) -> Result<Vec<u8>, String> {
        let head = self.read_page_prefix(pgid, PAGE_HEADER)?;
        let overflow = u64::from(u32_at(&head, 12));
        let size = (overflow + 1)
            .checked_mul(self.meta.page_size)
            .filter(|s| *s <= self.len)
            .ok_or_else(|| format!("page {pgid} claims {overflow} overflow pages"))?;
        self.read_page_prefix(pgid, size as usize)
    }

    /// Child page ids of a branch page, in key order.
    fn children(&self, pgid: u64, count: usize) -> Result<Vec<u64>, String> {
        let buf = self.read_page_prefix(pgid, PAGE_HEADER + count * ELEMENT)?;
        Ok((0..count)
            .map(|i| u64_at(&buf, PAGE_HEADER + i * ELEMENT + 8))
            .collect())
    }

    /// Entries in the tree rooted at `pgid`. Leaves only need their header
    /// (entry count), so each costs one 16-byte read.
    fn count_entries(&self, pgid: u64, depth: u32) -> Result<u64, String> {
        if depth > MAX_DEPTH {
            return Err(DEPTH_ERROR.into());
        }
        self.visit(pgid)?;
        let head = Self::header(&self.read_page_prefix(pgid, PAGE_HEADER)?);
        match head.flags {
            LEAF_PAGE => Ok(head.count as u64),
            BRANCH_PAGE => {
                let mut total = 0;
                for child in self.children(pgid, head.count)? {
                    total += self.count_entries(child, depth + 1)?;
                }
                Ok(total)
            }
            other => Err(format!(
                "page {pgid} has type {other:#x} where a tree page was expected"
            )),
        }
    }

    /// The last (greatest) key of the tree rooted at `pgid`.
    fn last_key(&self, pgid: u64, depth: u32) -> Result<Option<Vec<u8>>, String> {
        if depth > MAX_DEPTH {
            return Err(DEPTH_ERROR.into());
        }
        // Only the rightmost path: at most MAX_DEPTH pages, no visited set
        // (the same pages were or will be counted by `count_entries`).
        let page = self.read_page(pgid)?;
        let head = Self::header(&page);
        match head.flags {
            LEAF_PAGE => {
                leaf_entries(&page).map(|entries| entries.last().map(|(_, key, _)| key.to_vec()))
            }
            BRANCH_PAGE => match self.children(pgid, head.count)?.last() {
                Some(&child) => self.last_key(child, depth + 1),
                None => Ok(None),
            },
            other => Err(format!(
                "page {pgid} has type {other:#x} where a tree page was expected"
            )),
        }
    }

    /// Calls `f(flags, key, value)` for every entry of the tree at `pgid`, in order.
    fn for_each(&self, pgid: u64, depth: u32, f: &mut EntryVisitor<'_>) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(DEPTH_ERROR.into());
        }
        self.visit(pgid)?;
        let page = self.read_page(pgid)?;
        let head = Self::header(&page);
        match head.flags {
            LEAF_PAGE => {
                for (flags, key, value) in leaf_entries(&page)? {
                    f(flags, key, value)?;
                }
                Ok(())
            }
            BRANCH_PAGE => {
                for child in self.children(pgid, head.count)? {
                    self.for_each(child, depth + 1, f)?;
                }
                Ok(())
            }
            other => Err(format!(
                "page {pgid} has type {other:#x} where a tree page was expected"
            )),
        }
    }
}

type LeafEntry<'p> = (u32, &'p [u8], &'p [u8]);

/// Called with (flags, key, value) of each leaf entry.
type EntryVisitor<'f> = dyn FnMut(u32, &[u8], &[u8]) -> Result<(), String> + 'f;

/// The entries of a leaf page held in `page` (also an inline bucket's page).
fn leaf_entries(page: &[u8]) -> Result<Vec<LeafEntry<'_>>, String> {
    if page.len() < PAGE_HEADER {
        return Err("a leaf page is shorter than its header".into());
    }
    let count = usize::from(u16_at(page, 10));
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let at = PAGE_HEADER + i * ELEMENT;
        if at + ELEMENT > page.len() {
            return Err("a leaf page's elements overrun the page".into());
        }
        let flags = u32_at(page, at);
        let pos = u32_at(page, at + 4) as usize;
        let ksize = u32_at(page, at + 8) as usize;
        let vsize = u32_at(page, at + 12) as usize;
        let kstart = at + pos;
        let vend = kstart
            .checked_add(ksize)
            .and_then(|k| k.checked_add(vsize))
            .filter(|end| *end <= page.len())
            .ok_or("a leaf entry overruns its page")?;
        out.push((
            flags,
            &page[kstart..kstart + ksize],
            &page[kstart + ksize..vend],
        ));
    }
    Ok(out)
}

/// Reads the statistics of the bbolt database in the first `db_len` bytes of `file`.
pub fn db_stats(file: &File, db_len: u64) -> Result<DbStats, String> {
    let mut first = vec![0u8; 4096.min(db_len as usize)];
    file.read_exact_at(&mut first, 0)
        .map_err(|e| format!("cannot read its first page: {e}"))?;
    let meta0 = parse_meta(&first);
    let page_size = meta0.map_or(4096, |m| m.page_size);
    let mut second = vec![0u8; PAGE_HEADER + META_LEN];
    let meta1 = if page_size + second.len() as u64 <= db_len {
        file.read_exact_at(&mut second, page_size)
            .map_err(|e| format!("cannot read its second page: {e}"))?;
        parse_meta(&second)
    } else {
        None
    };
    // Like bbolt: the valid meta page with the highest transaction id wins.
    let meta = match (meta0, meta1) {
        (Some(a), Some(b)) => {
            if b.txid > a.txid {
                b
            } else {
                a
            }
        }
        (Some(m), None) | (None, Some(m)) => m,
        (None, None) => return Err("no valid bbolt meta page (not a bbolt database)".into()),
    };
    let total_size = meta.high_water * meta.page_size;
    if total_size > db_len {
        return Err(format!(
            "the database claims {total_size} bytes but the file holds {db_len}: it is truncated"
        ));
    }
    let db = Db {
        file,
        len: db_len,
        meta,
        visited: Default::default(),
    };

    let mut stats = DbStats {
        revision: 0,
        total_keys: 0,
        key_bucket_entries: 0,
        total_size,
    };
    let walked = db.for_each(meta.root, 0, &mut |flags, name, value| {
        if flags & BUCKET_LEAF == 0 || value.len() < 16 {
            return Err(format!(
                "top-level entry {:?} is not a bucket",
                String::from_utf8_lossy(name)
            ));
        }
        let root = u64_at(value, 0);
        let (entries, last) = if root == 0 {
            // An inline bucket: its single leaf page follows the bucket header.
            let entries = leaf_entries(&value[16..])?;
            let last = entries.last().map(|(_, k, _)| k.to_vec());
            (entries.len() as u64, last)
        } else {
            let last = if name == b"key" {
                db.last_key(root, 1)?
            } else {
                None
            };
            (db.count_entries(root, 1)?, last)
        };
        stats.total_keys += entries;
        if name == b"key" {
            stats.key_bucket_entries = entries;
            // etcd's revision key: 8-byte big-endian main revision, '_', sub revision.
            if let Some(key) = last.filter(|k| k.len() >= 8) {
                stats.revision = u64::from_be_bytes(key[..8].try_into().expect("8 bytes"));
            }
        }
        Ok(())
    });
    walked.map_err(|why| format!("the database is corrupt: {why}"))?;
    Ok(stats)
}

/// A UTC timestamp as used in file names: `20261123T120000Z`.
pub fn utc_stamp(at: std::time::SystemTime) -> String {
    let secs = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Seconds since the epoch of a [`utc_stamp`] string, `None` if malformed.
pub fn parse_stamp(stamp: &str) -> Option<u64> {
    let b = stamp.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u64> {
        let s = stamp.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (y, mo, d) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (h, mi, s) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(y as i64, mo as u32, d as u32);
    u64::try_from(days)
        .ok()
        .map(|days| days * 86_400 + h * 3600 + mi * 60 + s)
}

// Howard Hinnant's civil calendar algorithms (proleptic Gregorian, UTC).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A file mode from Ansible's `mode`: an octal string (`"0600"`, `"600"`)
/// or a number (YAML reads an unquoted `0600` as octal, i.e. 384).
pub fn parse_mode(value: &serde_json::Value) -> Result<u32, String> {
    let mode = match value {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        serde_json::Value::String(s) => {
            let s = s.trim();
            let digits = s.strip_prefix("0o").unwrap_or(s);
            u32::from_str_radix(digits, 8).ok()
        }
        _ => None,
    };
    mode.filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("mode {value} is not an octal file mode such as \"0600\""))
}

/// A user or group given by name or number, as a string (YAML may give a number).
pub fn id_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Resolves `owner` to a uid (a number, or a name looked up with getpwnam_r).
pub fn resolve_user(owner: &str) -> Result<u32, String> {
    if let Ok(uid) = owner.parse() {
        return Ok(uid);
    }
    let name = std::ffi::CString::new(owner).map_err(|_| format!("bad user name {owner:?}"))?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: getpwnam_r writes into `pwd` and `buf`, both live and sized as passed.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        );
        if rc == 0 && !found.is_null() {
            return Ok(pwd.pw_uid);
        }
    }
    Err(format!("user {owner:?} does not exist on this host"))
}

/// Resolves `group` to a gid (a number, or a name looked up with getgrnam_r).
pub fn resolve_group(group: &str) -> Result<u32, String> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    let name = std::ffi::CString::new(group).map_err(|_| format!("bad group name {group:?}"))?;
    let mut buf = vec![0 as libc::c_char; 64 * 1024];
    // SAFETY: getgrnam_r writes into `grp` and `buf`, both live and sized as passed.
    unsafe {
        let mut grp: libc::group = std::mem::zeroed();
        let mut found: *mut libc::group = std::ptr::null_mut();
        let rc = libc::getgrnam_r(
            name.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        );
        if rc == 0 && !found.is_null() {
            return Ok(grp.gr_gid);
        }
    }
    Err(format!("group {group:?} does not exist on this host"))
}

/// fsyncs a directory, so a rename inside it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<(), String> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot fsync directory {}: {e}", dir.display()))
}

/// Takes an exclusive `flock` on `file`; with `wait == false` returns
/// `Ok(false)` instead of waiting when someone else holds it.
pub fn lock_file(file: &File, wait: bool) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let op = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// A global allocator for the `etcd_snapshot` binary: the system allocator
/// plus a small cache of freed medium-sized blocks.
///
/// Why: musl's malloc (the modules are static musl binaries) returns freed
/// blocks of a few tens of KiB to the kernel at once, and a snapshot
/// stream allocates and frees several such buffers per 32 KiB message, so
/// each message cost a dozen fresh page faults (>100k per 200 MB, most of
/// the module's CPU time). Reusing the last freed blocks of the same size
/// removes that. Bounded: at most [`CACHE_SLOTS`] blocks and
/// [`CACHE_BYTES`] bytes are held.
pub struct ChunkCache {
    locked: std::sync::atomic::AtomicBool,
    state: std::cell::UnsafeCell<CacheState>,
}

/// Blocks kept for reuse at most.
pub const CACHE_SLOTS: usize = 32;
/// Bytes kept for reuse at most.
pub const CACHE_BYTES: usize = 4 << 20;

struct CacheState {
    slots: [(usize, *mut u8); CACHE_SLOTS],
    bytes: usize,
}

// SAFETY: the state is only touched with `locked` held.
unsafe impl Sync for ChunkCache {}

impl Default for ChunkCache {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkCache {
    /// An empty cache (usable in a `static`).
    pub const fn new() -> Self {
        ChunkCache {
            locked: std::sync::atomic::AtomicBool::new(false),
            state: std::cell::UnsafeCell::new(CacheState {
                slots: [(0, std::ptr::null_mut()); CACHE_SLOTS],
                bytes: 0,
            }),
        }
    }

    fn cacheable(layout: std::alloc::Layout) -> bool {
        // Alignment up to 16 is what malloc gives every block, so a cached
        // block fits any such request of the same size.
        layout.align() <= 16 && (4096..=(1 << 20)).contains(&layout.size())
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut CacheState) -> T) -> T {
        use std::sync::atomic::Ordering;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        // SAFETY: we hold the lock.
        let out = f(unsafe { &mut *self.state.get() });
        self.locked.store(false, Ordering::Release);
        out
    }
}

// SAFETY: every block handed out comes from `System` with a layout of the
// same size and an alignment it satisfies; blocks go back to `System` or
// into the cache, never both.
unsafe impl std::alloc::GlobalAlloc for ChunkCache {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if Self::cacheable(layout) {
            let size = layout.size();
            let cached = self.with_state(|st| {
                let slot = st
                    .slots
                    .iter_mut()
                    .find(|(s, p)| *s == size && !p.is_null())?;
                let ptr = std::mem::replace(slot, (0, std::ptr::null_mut())).1;
                st.bytes -= size;
                Some(ptr)
            });
            if let Some(ptr) = cached {
                return ptr;
            }
        }
        // SAFETY: forwarded as is.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        if Self::cacheable(layout) {
            let size = layout.size();
            let kept = self.with_state(|st| {
                if st.bytes + size > CACHE_BYTES {
                    return false;
                }
                match st.slots.iter_mut().find(|(_, p)| p.is_null()) {
                    Some(slot) => {
                        *slot = (size, ptr);
                        st.bytes += size;
                        true
                    }
                    None => false,
                }
            });
            if kept {
                return;
            }
        }
        // SAFETY: `ptr` came from `System` (directly or via the cache) with this size.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        // Growing buffers (h2 and tonic read buffers) go through here once
        // per message: route them through the cache too.
        // SAFETY: the caller guarantees new_size is valid for layout's alignment.
        let new_layout =
            unsafe { std::alloc::Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !Self::cacheable(layout) && !Self::cacheable(new_layout) {
            // SAFETY: forwarded as is.
            return unsafe { std::alloc::System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: a fresh block for the new layout, the old one's bytes
        // copied (the smaller of both sizes), then the old one released.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        sha2::Sha256::digest(data).to_vec()
    }

    #[test]
    fn stream_hasher_checks_the_trailer_whatever_the_chunking() {
        let body: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut file = body.clone();
        file.extend_from_slice(&sha(&body));
        for chunk in [1, 5, 31, 32, 33, 64, 1000, 5000] {
            let mut h = StreamHasher::new();
            for piece in file.chunks(chunk) {
                h.update(piece);
            }
            let d = h.finish();
            assert!(d.check().is_ok(), "chunk {chunk}: {d:?}");
            assert_eq!(d.file_sha256, hex(&sha(&file)));
        }
        let mut flipped = file.clone();
        flipped[100] ^= 1;
        let mut h = StreamHasher::new();
        h.update(&flipped);
        assert!(h.finish().check().unwrap_err().contains("corrupt"));
        let mut h = StreamHasher::new();
        h.update(&file[..file.len() - 1]);
        assert!(h.finish().check().unwrap_err().contains("truncated"));
    }

    /// A 32 KiB bbolt file (8 pages of 4 KiB): meta pages 0 and 1, root
    /// leaf page 3 holding one bucket `bucket` whose root is page 4, and
    /// page 4 (and 5) built by `branch`. Returns the database bytes.
    fn crafted_db(bucket: &[u8], branch: &dyn Fn(&mut [u8])) -> Vec<u8> {
        const PS: usize = 4096;
        let mut db = vec![0u8; 8 * PS];
        for id in 0..2u64 {
            let page = &mut db[id as usize * PS..(id as usize + 1) * PS];
            page[0..8].copy_from_slice(&id.to_le_bytes());
            page[8..10].copy_from_slice(&META_PAGE.to_le_bytes());
            let m = &mut page[PAGE_HEADER..PAGE_HEADER + META_LEN];
            m[0..4].copy_from_slice(&MAGIC.to_le_bytes());
            m[4..8].copy_from_slice(&VERSION.to_le_bytes());
            m[8..12].copy_from_slice(&(PS as u32).to_le_bytes());
            m[16..24].copy_from_slice(&3u64.to_le_bytes()); // root bucket's page
            m[32..40].copy_from_slice(&2u64.to_le_bytes()); // freelist
            m[40..48].copy_from_slice(&8u64.to_le_bytes()); // high-water mark
            m[48..56].copy_from_slice(&id.to_le_bytes()); // txid
            let mut sum: u64 = 0xcbf2_9ce4_8422_2325;
            for &b in &m[..56] {
                sum ^= u64::from(b);
                sum = sum.wrapping_mul(0x0100_0000_01b3);
            }
            m[56..64].copy_from_slice(&sum.to_le_bytes());
        }
        // Page 3: a leaf with one bucket entry whose value is {root: 4, sequence: 0}.
        let leaf = &mut db[3 * PS..4 * PS];
        leaf[0..8].copy_from_slice(&3u64.to_le_bytes());
        leaf[8..10].copy_from_slice(&LEAF_PAGE.to_le_bytes());
        leaf[10..12].copy_from_slice(&1u16.to_le_bytes());
        let e = PAGE_HEADER;
        leaf[e..e + 4].copy_from_slice(&BUCKET_LEAF.to_le_bytes());
        leaf[e + 4..e + 8].copy_from_slice(&(ELEMENT as u32).to_le_bytes());
        leaf[e + 8..e + 12].copy_from_slice(&(bucket.len() as u32).to_le_bytes());
        leaf[e + 12..e + 16].copy_from_slice(&16u32.to_le_bytes());
        let k = e + ELEMENT;
        leaf[k..k + bucket.len()].copy_from_slice(bucket);
        leaf[k + bucket.len()..k + bucket.len() + 8].copy_from_slice(&4u64.to_le_bytes());
        branch(&mut db);
        db
    }

    /// Makes page `id` a branch page whose `count` children are `child(i)`.
    fn branch_page(db: &mut [u8], id: u64, count: u16, child: &dyn Fn(usize) -> u64) {
        let page = &mut db[id as usize * 4096..(id as usize + 1) * 4096];
        page[0..8].copy_from_slice(&id.to_le_bytes());
        page[8..10].copy_from_slice(&BRANCH_PAGE.to_le_bytes());
        page[10..12].copy_from_slice(&count.to_le_bytes());
        for i in 0..usize::from(count) {
            let e = PAGE_HEADER + i * ELEMENT;
            page[e + 8..e + 16].copy_from_slice(&child(i).to_le_bytes());
        }
    }

    #[test]
    fn a_cyclic_page_graph_is_corrupt_and_the_walk_ends_quickly() {
        type Craft = Box<dyn Fn(&mut [u8])>;
        // Branch pages 4 -> 5 -> 6 -> 7 -> 2, each listing the next 255
        // times, over leaf page 3: a DAG of 255^5 paths in 32 KiB, which a
        // walk without a visited set follows for hours.
        let fan_out = |db: &mut [u8]| {
            for (page, next) in [(4, 5), (5, 6), (6, 7), (7, 2), (2, 3)] {
                branch_page(db, page, 255, &|_| next);
            }
        };
        let cases: Vec<(&[u8], Craft)> = vec![
            (b"members", Box::new(fan_out)),
            (b"key", Box::new(fan_out)),
            // A branch page listing itself.
            (b"lease", Box::new(|db| branch_page(db, 4, 200, &|_| 4))),
            // Two branch pages pointing at each other.
            (
                b"alarm",
                Box::new(|db| {
                    branch_page(db, 4, 100, &|_| 5);
                    branch_page(db, 5, 100, &|_| 4);
                }),
            ),
        ];
        for (bucket, craft) in cases {
            let db = crafted_db(bucket, &*craft);
            let mut file = tempfile::tempfile().unwrap();
            std::io::Write::write_all(&mut file, &db).unwrap();
            std::io::Write::write_all(&mut file, &sha(&db)).unwrap();
            let started = std::time::Instant::now();
            let err = db_stats(&file, db.len() as u64).unwrap_err();
            assert!(err.contains("corrupt"), "{err}");
            // And through `inspect`, which state=verified and etcd_restore's
            // pre-check call: the trailer matches, the walk still fails.
            let mut named = tempfile::NamedTempFile::new().unwrap();
            std::io::Write::write_all(&mut named, &db).unwrap();
            std::io::Write::write_all(&mut named, &sha(&db)).unwrap();
            let err = inspect(named.path(), true).unwrap_err();
            assert!(err.contains("corrupt"), "{err}");
            assert!(started.elapsed() < std::time::Duration::from_secs(5));
        }
    }

    #[test]
    fn stamps_round_trip() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_435_200);
        let stamp = utc_stamp(t);
        assert_eq!(stamp, "20261123T120000Z");
        assert_eq!(parse_stamp(&stamp), Some(1_795_435_200));
        assert_eq!(utc_stamp(std::time::UNIX_EPOCH), "19700101T000000Z");
        assert_eq!(parse_stamp("20240229T235959Z"), Some(1_709_251_199));
        assert_eq!(parse_stamp("2024022xT235959Z"), None);
    }

    #[test]
    fn chunk_cache_reuses_blocks_and_keeps_contents_on_realloc() {
        use std::alloc::{GlobalAlloc, Layout};
        let cache = ChunkCache::new();
        let layout = Layout::from_size_align(32 * 1024, 8).unwrap();
        // SAFETY: blocks are used within their layouts and released once.
        unsafe {
            let a = cache.alloc(layout);
            a.write_bytes(0xAB, layout.size());
            cache.dealloc(a, layout);
            let b = cache.alloc(layout);
            assert_eq!(a, b, "a freed block of the same size is reused");
            let grown = cache.realloc(b, layout, 64 * 1024);
            assert_eq!(
                *grown.add(32 * 1024 - 1),
                0xAB,
                "contents survive a realloc"
            );
            let big = Layout::from_size_align(64 * 1024, 8).unwrap();
            let small = cache.realloc(grown, big, 100);
            assert_eq!(*small.add(99), 0xAB);
            cache.dealloc(small, Layout::from_size_align(100, 8).unwrap());
            // Never more than CACHE_BYTES held: the rest goes back to the system.
            let huge = Layout::from_size_align(1 << 20, 16).unwrap();
            let blocks: Vec<*mut u8> = (0..8).map(|_| cache.alloc(huge)).collect();
            for p in blocks {
                cache.dealloc(p, huge);
            }
            assert!(cache.with_state(|st| st.bytes) <= CACHE_BYTES);
        }
    }

    #[test]
    fn modes_parse_like_ansible() {
        use serde_json::json;
        assert_eq!(parse_mode(&json!("0600")), Ok(0o600));
        assert_eq!(parse_mode(&json!("640")), Ok(0o640));
        assert_eq!(parse_mode(&json!(384)), Ok(0o600));
        assert!(parse_mode(&json!("u+rw")).is_err());
    }
}
