//! A minimal read-only reader of bbolt databases (etcd's backend file),
//! enough to compute what `etcdctl snapshot status` reports. It reads page by
//! page with `pread`, so memory stays flat, and it refuses a page graph that
//! is not a tree (each page visited once, a depth limit) as corrupt.

use std::fs::File;
use std::os::unix::fs::FileExt;

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
pub(crate) const PAGE_HEADER: usize = 16;
pub(crate) const ELEMENT: usize = 16;
pub(crate) const BRANCH_PAGE: u16 = 0x01;
pub(crate) const LEAF_PAGE: u16 = 0x02;
pub(crate) const META_PAGE: u16 = 0x04;
pub(crate) const BUCKET_LEAF: u32 = 0x01;
pub(crate) const MAGIC: u32 = 0xED0C_DAED;
pub(crate) const VERSION: u32 = 2;
pub(crate) const META_LEN: usize = 64;
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
