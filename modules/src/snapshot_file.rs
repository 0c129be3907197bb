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
//! revision and key count out of the database with the minimal read-only
//! bbolt reader in [`crate::bbolt`]. The UTC stamps of snapshot file names
//! are here too.

/// Streaming SHA-256 from the `sha2` crate, with the one-call `finalize`
/// the snapshot code wants. The root Cargo.toml builds `sha2` at opt-level 3
/// even in the size-optimised release profile: at `"s"` its SHA-NI helper is
/// not inlined and hashing runs about 4x slower than the snapshot stream.
#[derive(Clone, Default)]
pub struct Sha256(sha2::Sha256);

impl Sha256 {
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
use std::path::Path;

use crate::bbolt::{db_stats, DbStats};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bbolt::{
        BRANCH_PAGE, BUCKET_LEAF, ELEMENT, LEAF_PAGE, MAGIC, META_LEN, META_PAGE, PAGE_HEADER,
        VERSION,
    };

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
}
