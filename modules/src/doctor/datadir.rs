//! The data dir's own history: the names of a member's WAL and snapshot
//! files, and the rule that tells a data dir put back from an older copy
//! even after the member caught up with the cluster.
//!
//! etcd names WAL segments `<seq>-<index>.wal` (16 hex digits each; the
//! sequence grows by one at every cut, the index is the raft index the
//! segment starts after) and snapshot files `<term>-<index>.snap`. In one
//! data dir, files are only ever added with a higher sequence or index, and
//! only the oldest are purged (5 of each are kept by default). So a name
//! recorded as the newest on an earlier run must, later, either still be
//! there or be older than every file there now (purged). Anything else (the
//! newest now is older than the recorded one, or the recorded one is gone
//! from inside the window of files now present) means the files were
//! replaced by another history: the data dir went back in time, whatever
//! the raft figures say after the member caught up. Purging keeps
//! [`RETAINED`] files, so with fewer than that a missing recorded name is
//! never explained by a purge (a restored copy that caught up through a
//! snapshot from the leader holds one newer snapshot file and nothing else).
//! A member run with `--max-snapshots` or `--max-wals` below 5 would look
//! restored after its first purge; those flags are left at their default
//! in this project.
//!
//! Limit: it only sees a copy older than a file boundary. A copy taken after
//! the newest snapshot and WAL cut of the earlier run leaves the same names.

use serde::{Deserialize, Serialize};

/// How many files of each kind etcd keeps when it purges (its
/// `--max-wals` and `--max-snapshots` defaults). Purging only brings the
/// count down to this, so a dir with fewer files was never purged and must
/// still hold every file it ever had.
pub const RETAINED: usize = 5;

/// A WAL segment or snapshot file name, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileMark {
    /// The WAL sequence, or the snapshot's raft term.
    pub first: u64,
    /// The raft index in the name.
    pub index: u64,
}

/// Which kind of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `member/wal/<seq>-<index>.wal`.
    Wal,
    /// `member/snap/<term>-<index>.snap`.
    Snap,
}

impl Kind {
    fn suffix(self) -> &'static str {
        match self {
            Kind::Wal => ".wal",
            Kind::Snap => ".snap",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Wal => "WAL file",
            Kind::Snap => "snapshot file",
        }
    }

    /// The order in which files of this kind are created: a WAL by its
    /// sequence, a snapshot by its index (the term never goes back either).
    fn key(self, m: &FileMark) -> (u64, u64) {
        match self {
            Kind::Wal => (m.first, m.index),
            Kind::Snap => (m.index, m.first),
        }
    }
}

/// Parses `<16 hex>-<16 hex>.wal|.snap` (a path or a bare name); `None`
/// for anything else (`db`, `*.snap.db`, `*.broken`, temp files).
pub fn parse(path: &str, kind: Kind) -> Option<FileMark> {
    let name = path.trim().rsplit('/').next()?;
    let stem = name.strip_suffix(kind.suffix())?;
    let (a, b) = stem.split_once('-')?;
    if a.len() != 16 || b.len() != 16 {
        return None;
    }
    Some(FileMark {
        first: u64::from_str_radix(a, 16).ok()?,
        index: u64::from_str_radix(b, 16).ok()?,
    })
}

/// The file name etcd gives a mark.
pub fn name(m: &FileMark, kind: Kind) -> String {
    format!("{:016x}-{:016x}{}", m.first, m.index, kind.suffix())
}

/// The WAL and snapshot files of one data dir, as listed on its host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirFiles {
    /// WAL segments.
    pub wal: Vec<FileMark>,
    /// Snapshot files.
    pub snap: Vec<FileMark>,
}

impl DirFiles {
    /// From a listing, one path or name a line; other files are ignored.
    pub fn from_listing(listing: &str) -> DirFiles {
        let mut files = DirFiles::default();
        for line in listing.lines() {
            if let Some(m) = parse(line, Kind::Wal) {
                files.wal.push(m);
            } else if let Some(m) = parse(line, Kind::Snap) {
                files.snap.push(m);
            }
        }
        files
    }

    fn of(&self, kind: Kind) -> &[FileMark] {
        match kind {
            Kind::Wal => &self.wal,
            Kind::Snap => &self.snap,
        }
    }

    fn newest(&self, kind: Kind) -> Option<FileMark> {
        self.of(kind).iter().copied().max_by_key(|m| kind.key(m))
    }

    /// The newest names, to remember for the next run.
    pub fn marks(&self) -> DirMarks {
        DirMarks {
            wal: self.newest(Kind::Wal).map(|m| name(&m, Kind::Wal)),
            snap: self.newest(Kind::Snap).map(|m| name(&m, Kind::Snap)),
        }
    }
}

/// What a run remembers of a data dir: its newest WAL and snapshot names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirMarks {
    /// Newest `member/wal/*.wal` name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal: Option<String>,
    /// Newest `member/snap/*.snap` name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snap: Option<String>,
}

impl DirMarks {
    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.wal.is_none() && self.snap.is_none()
    }

    /// These marks, each replaced by `newer`'s where it has one.
    pub fn updated(&self, newer: &DirMarks) -> DirMarks {
        DirMarks {
            wal: newer.wal.clone().or_else(|| self.wal.clone()),
            snap: newer.snap.clone().or_else(|| self.snap.clone()),
        }
    }
}

/// How the files now contradict the names recorded earlier, one sentence
/// per kind; empty when they do not.
pub fn went_back(recorded: &DirMarks, now: &DirFiles) -> Vec<String> {
    let mut out = Vec::new();
    for (kind, old) in [(Kind::Wal, &recorded.wal), (Kind::Snap, &recorded.snap)] {
        let Some(old) = old.as_deref().and_then(|n| parse(n, kind)) else {
            continue;
        };
        if let Some(why) = contradicts(kind, &old, now.of(kind)) {
            out.push(why);
        }
    }
    out
}

fn contradicts(kind: Kind, old: &FileMark, files: &[FileMark]) -> Option<String> {
    if files.contains(old) {
        return None;
    }
    let old_name = name(old, kind);
    let Some(oldest) = files.iter().min_by_key(|m| kind.key(m)) else {
        // Every data dir has a WAL; a listing without one says nothing.
        // Snapshot files are purged down to a few, never to none.
        return (kind == Kind::Snap).then(|| {
            format!(
                "the newest {} at the last run was {old_name}; now there is none",
                kind.label()
            )
        });
    };
    if kind.key(old) < kind.key(oldest) && files.len() >= RETAINED {
        return None; // purged as the files moved on
    }
    let newest = files.iter().max_by_key(|m| kind.key(m)).unwrap_or(oldest);
    let how = if kind.key(newest) < kind.key(old) {
        "the newest now is older".to_string()
    } else if kind.key(old) >= kind.key(oldest) {
        "it is gone while older files are still there".to_string()
    } else {
        format!("it is gone, yet with fewer than {RETAINED} files none was ever purged")
    };
    Some(format!(
        "the newest {} at the last run was {old_name}; {how} ({} .. {})",
        kind.label(),
        name(oldest, kind),
        name(newest, kind)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal(seq: u64, index: u64) -> String {
        name(&FileMark { first: seq, index }, Kind::Wal)
    }

    fn snap(term: u64, index: u64) -> String {
        name(&FileMark { first: term, index }, Kind::Snap)
    }

    fn files(names: &[String]) -> DirFiles {
        DirFiles::from_listing(&names.join("\n"))
    }

    #[test]
    fn names_parse_as_etcd_writes_them() {
        let listing = "/d/member/wal/0000000000000001-00000000000003e8.wal\n/d/member/wal/0.tmp\n/d/member/snap/0000000000000002-0000000000000064.snap\n/d/member/snap/db\n/d/member/snap/0000000000000002-0000000000000064.snap.db\nx-y.wal";
        let f = DirFiles::from_listing(listing);
        assert_eq!(
            f.wal,
            vec![FileMark {
                first: 1,
                index: 1000
            }]
        );
        assert_eq!(
            f.snap,
            vec![FileMark {
                first: 2,
                index: 100
            }]
        );
        assert_eq!(f.marks().wal.as_deref(), Some(wal(1, 1000).as_str()));
        assert_eq!(parse(&snap(7, 9), Kind::Wal), None);
    }

    #[test]
    fn the_newest_snapshot_is_the_highest_index_and_the_newest_wal_the_highest_sequence() {
        let f = files(&[
            snap(3, 500),
            snap(4, 700),
            snap(5, 600),
            wal(0, 0),
            wal(2, 90),
        ]);
        let m = f.marks();
        assert_eq!(m.snap, Some(snap(4, 700)));
        assert_eq!(m.wal, Some(wal(2, 90)));
    }

    #[test]
    fn a_dir_that_moved_forward_or_purged_is_fine() {
        let recorded = files(&[wal(3, 300), snap(2, 400)]).marks();
        // Still there, with newer files.
        let later = files(&[wal(3, 300), wal(4, 900), snap(2, 400), snap(2, 500)]);
        assert!(went_back(&recorded, &later).is_empty());
        // Purged: every file now is newer, and as many are kept as etcd keeps.
        let purged = files(&[
            wal(5, 1000),
            wal(6, 2000),
            wal(7, 2100),
            wal(8, 2200),
            wal(9, 2300),
            snap(3, 800),
            snap(3, 900),
            snap(3, 1000),
            snap(3, 1100),
            snap(3, 1200),
        ]);
        assert!(went_back(&recorded, &purged).is_empty());
        // Fewer than etcd keeps: never purged, so the recorded ones are gone.
        let fewer = files(&[wal(5, 1000), snap(3, 800)]);
        assert_eq!(went_back(&recorded, &fewer).len(), 2);
        // A copy that caught up through the leader's snapshot: one newer file.
        let from_leader = files(&[wal(3, 300), snap(3, 700)]);
        let why = went_back(&recorded, &from_leader);
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(why[0].contains(&snap(2, 400)), "{why:?}");
        // Nothing recorded, or an unreadable dir: nothing to say about WALs.
        assert!(went_back(&DirMarks::default(), &purged).is_empty());
        let no_wal = DirMarks {
            wal: Some(wal(3, 300)),
            snap: None,
        };
        assert!(went_back(&no_wal, &DirFiles::default()).is_empty());
    }

    #[test]
    fn a_dir_put_back_from_an_older_copy_is_named() {
        let recorded = files(&[wal(3, 300), snap(2, 400)]).marks();
        // The copy stops before the recorded files.
        let copy = files(&[wal(1, 100), wal(2, 200), snap(2, 300)]);
        let why = went_back(&recorded, &copy);
        assert_eq!(why.len(), 2, "{why:?}");
        assert!(
            why[0].contains(&wal(3, 300)) && why[0].contains("older"),
            "{why:?}"
        );
        // The copy caught up and snapshotted at other indexes: the recorded
        // snapshot is missing from inside the window.
        let caught_up = files(&[wal(1, 100), snap(2, 310), snap(3, 420), snap(3, 530)]);
        let why = went_back(
            &DirMarks {
                wal: None,
                ..recorded.clone()
            },
            &caught_up,
        );
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(why[0].contains("gone"), "{why:?}");
        // The same WAL sequence started at another index: another history.
        let other = files(&[wal(2, 200), wal(3, 350), snap(2, 400)]);
        let why = went_back(&recorded, &other);
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(why[0].contains(&wal(3, 300)), "{why:?}");
        // A snapshot recorded, none now.
        let none = files(&[wal(3, 300)]);
        assert_eq!(went_back(&recorded, &none).len(), 1);
    }

    #[test]
    fn marks_update_only_what_was_seen() {
        let old = DirMarks {
            wal: Some(wal(1, 1)),
            snap: Some(snap(1, 1)),
        };
        let seen = DirMarks {
            wal: Some(wal(2, 2)),
            snap: None,
        };
        let next = old.updated(&seen);
        assert_eq!(next.wal, Some(wal(2, 2)));
        assert_eq!(next.snap, Some(snap(1, 1)));
    }
}
