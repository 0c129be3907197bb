//! `etcd_snapshot`: the runbooks' nightly `etcdctl snapshot save`, as a module.
//!
//! Streams the snapshot from one member into a temporary file beside the
//! destination, hashing as it goes; only a complete stream whose sha256
//! trailer matches is fsynced and renamed into place (then the directory
//! is fsynced). Any failure, a SIGKILL included, leaves nothing under the
//! final name. Temporary files are `flock`ed while written, so a later run
//! can tell a dead run's leftovers from a live one's and remove them.
//!
//! Revision and key count are read from the written file itself (see
//! [`crate::snapshot_file`]) so they are exactly what `etcdctl snapshot
//! status` reports, whatever happened on the cluster meanwhile.

use etcd_client::{Client, SnapshotResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio::task::JoinSet;

use crate::bbolt::db_stats;
use crate::connection::{describe, member_id_hex, Connection, ConnectionArgs};
use crate::fsutil::{id_text, lock_file, parse_mode, resolve_group, resolve_user, sync_dir};
use crate::protocol::lenient::{Int, Seconds};
use crate::protocol::{
    ArgType, Choice, Context, Failure, Module, OptionDoc, Outcome, ReturnDoc, Rule,
};
use crate::snapshot_file::{inspect, parse_stamp, utc_stamp, Digests, StreamHasher, HASH_LEN};

/// File names this module writes in `dir`: `etcd-snapshot-<stamp>.db`.
const NAME_PREFIX: &str = "etcd-snapshot-";
const NAME_SUFFIX: &str = ".db";
/// Temporary files: `.etcd-snapshot-XXXXXX.part`, locked while being written.
const TEMP_PREFIX: &str = ".etcd-snapshot-";
const TEMP_SUFFIX: &str = ".part";
/// Snapshot chunks buffered between the receiver and the writer thread.
const IN_FLIGHT: usize = 32;

crate::choices! {
    /// What `etcd_snapshot` does.
    pub enum State {
        /// Take a snapshot.
        Present = "present",
        /// Check an existing snapshot file.
        Verified = "verified",
        /// Apply `keep` to `dir` without taking a snapshot.
        Pruned = "pruned",
    }
}

/// Arguments of `etcd_snapshot` (plus the shared connection options).
/// Defaults are filled in by the protocol from [`Snapshot::OPTIONS`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotArgs {
    /// What to do.
    pub state: State,
    /// Exact destination file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Directory for timestamped snapshots.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Keep only the newest N timestamped snapshots in `dir`.
    #[serde(default)]
    pub keep: Option<Int>,
    /// Skip when the newest snapshot is younger than this.
    #[serde(default)]
    pub max_age: Option<Seconds>,
    /// File mode of the written file.
    pub mode: FileMode,
    /// Owner of the written file.
    #[serde(default)]
    pub owner: Option<Value>,
    /// Group of the written file.
    #[serde(default)]
    pub group: Option<Value>,
}

/// A file mode given as an octal string (`"0600"`) or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        parse_mode(&value)
            .map(FileMode)
            .map_err(serde::de::Error::custom)
    }
}

/// The `etcd_snapshot` module.
pub struct Snapshot;

impl Module for Snapshot {
    const NAME: &'static str = "etcd_snapshot";
    const SHORT_DESCRIPTION: &'static str = "Take (or verify) an etcd snapshot file";
    const DESCRIPTION: &'static [&'static str] = &[
        "Streams a snapshot of the database from the first endpoint whose member answers and sees a leader (falling back, in endpoint order, to any member that answers), like C(etcdctl snapshot save). The file is byte-for-byte what etcd sends, so C(etcdctl snapshot status) and C(etcdctl snapshot restore) accept it.",
        "Writes to a temporary file in the destination directory, checks the sha256 that etcd appends to the stream, fsyncs, renames into place and fsyncs the directory: a failure at any point (even the module being killed) leaves no file under the final name and older snapshots untouched. Leftover temporary files of killed runs are removed by the next run. Memory use does not depend on the database size.",
        "With O(dir) the file is named C(etcd-snapshot-<UTC timestamp>.db); O(keep) removes the oldest such files (never any other file) and O(max_age) skips the snapshot while the newest one is recent enough.",
        "Retention and O(max_age) only count good copies: files that verify (a database plus etcd's sha256 trailer, trailer matching) and are not stamped later than now. A file that does not verify or is stamped in the future (clock skew, a copied file) is never removed, never counted toward O(keep), never taken as the newest snapshot, and is listed in RV(skipped_files) with the reason. The file this run wrote is never removed.",
        "The destination is checked before anything is streamed (an empty, missing, too long or unwritable O(path) or O(dir) fails at once, creating nothing); a local write error (disk full, read-only file system) fails the run without trying other endpoints.",
        "The returned O(revision) and O(key_count) are read from the written file, as C(etcdctl snapshot status) computes them (C(key_count) is its C(totalKey): entries of every bucket, etcd's internal ones included, and every stored revision of a key).",
        "O(state=verified) checks an existing file's sha256 trailer and database structure without contacting etcd.",
        "O(state=pruned) applies O(keep) to O(dir) without contacting etcd (for example on the controller, after fetching a snapshot there), by the same rules; O(path), if given, is the snapshot just made: it must verify, counts as the newest good copy and is never removed.",
    ];
    const OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::new(
            "state",
            ArgType::Str,
            "C(present) takes a snapshot; C(verified) only checks the existing snapshot at O(path) (or the newest in O(dir)) and fails if it is truncated or corrupt; C(pruned) only applies O(keep) to O(dir).",
        )
        .default("\"present\"")
        .choices(State::NAMES),
        OptionDoc::new(
            "path",
            ArgType::Path,
            "Destination file (replaced atomically if it exists). With O(state=present) or O(state=verified), exactly one of O(path) and O(dir).",
        ),
        OptionDoc::new(
            "dir",
            ArgType::Path,
            "Directory receiving C(etcd-snapshot-<UTC timestamp>.db) files (created with mode 0700 if missing). With O(state=present) or O(state=verified), exactly one of O(path) and O(dir).",
        ),
        OptionDoc::new(
            "keep",
            ArgType::Int,
            "With O(dir): after a successful snapshot keep only the newest N good copies (files that verify and are not stamped in the future, the new snapshot included), removing older good copies. Files that do not verify, files stamped in the future and other files are never touched.",
        ),
        OptionDoc::new(
            "max_age",
            ArgType::Raw,
            "Do nothing (changed=false) if the newest good snapshot (the newest timestamped file in O(dir) that verifies and is not stamped in the future, or O(path) if it verifies and its modification time is not in the future) is younger than this: seconds, or a string such as C(24h), C(90m). A file stamped in the future never stops a backup.",
        ),
        OptionDoc::new(
            "mode",
            ArgType::Raw,
            "Mode of the written file, as an octal string (quote it in YAML).",
        )
        .default("\"0600\""),
        OptionDoc::new(
            "owner",
            ArgType::Str,
            "Owner (name or uid) of the written file; default the user running the module.",
        ),
        OptionDoc::new(
            "group",
            ArgType::Str,
            "Group (name or gid) of the written file; default the user's group.",
        ),
    ];
    const RULES: &'static [Rule] = &[
        Rule::required_if_any("state", "present", &["path", "dir"]),
        Rule::required_if_any("state", "verified", &["path", "dir"]),
        Rule::required_if("state", "pruned", &["dir", "keep"]),
        Rule::only_if(
            "state",
            &["present", "verified"],
            &["max_age", "mode", "owner", "group"],
        ),
    ];
    const EXAMPLES: &'static str = r#"
- name: Nightly backup, keeping a week of snapshots
  etcd_snapshot:
    endpoints: "https://{{ ip }}:2379"
    ca_cert: /etc/ssl/etcd/ssl/ca.pem
    client_cert: "/etc/ssl/etcd/ssl/member-{{ inventory_hostname }}.pem"
    client_key: "/etc/ssl/etcd/ssl/member-{{ inventory_hostname }}-key.pem"
    dir: /var/backups/etcd
    keep: 7
    max_age: 20h
  register: backup

- name: Snapshot to a fixed file, as `etcdctl snapshot save /tmp/etcd.snap`
  etcd_snapshot:
    endpoints: http://127.0.0.1:2379
    path: /tmp/etcd.snap

- name: Check a copied snapshot before restoring from it
  etcd_snapshot:
    state: verified
    path: /tmp/etcd.snap
"#;
    const RETURNS: &'static [ReturnDoc] = &[
        ReturnDoc {
            name: "path",
            description: "The snapshot file written (or, when skipped or verified, the one examined).",
            returned: "success",
            ty: "str",
        },
        ReturnDoc {
            name: "size",
            description: "File size in bytes (the database plus etcd's 32-byte sha256 trailer).",
            returned: "when a file was written or verified",
            ty: "int",
        },
        ReturnDoc {
            name: "sha256",
            description: "sha256 of the whole file, as sha256sum prints it.",
            returned: "when a file was written or verified",
            ty: "str",
        },
        ReturnDoc {
            name: "revision",
            description: "The etcd revision the snapshot holds (etcdctl snapshot status: revision).",
            returned: "when a file was written or verified",
            ty: "int",
        },
        ReturnDoc {
            name: "key_count",
            description: "etcdctl snapshot status's totalKey: entries in all buckets of the database.",
            returned: "when a file was written or verified",
            ty: "int",
        },
        ReturnDoc {
            name: "db_size",
            description: "Size of the database inside the file (etcdctl snapshot status: totalSize).",
            returned: "when a file was written or verified",
            ty: "int",
        },
        ReturnDoc {
            name: "member",
            description: "The member the snapshot came from (or would come from in check mode): id (hex), name, endpoint.",
            returned: "when etcd was contacted",
            ty: "dict",
        },
        ReturnDoc {
            name: "removed",
            description: "Old snapshots removed by keep (would be removed, in check mode), and leftover temporary files of killed runs.",
            returned: "state=present",
            ty: "list",
        },
        ReturnDoc {
            name: "skipped_files",
            description: "Timestamped files (or O(path)) left alone and not counted as good copies, each as C(path) and C(reason): C(does not verify ...) or C(stamped in the future ...). Also reported as warnings.",
            returned: "success",
            ty: "list",
        },
        ReturnDoc {
            name: "skipped_reason",
            description: "Why no snapshot was taken (max_age), or absent.",
            returned: "when skipped",
            ty: "str",
        },
    ];
    type Args = SnapshotArgs;
    type Shared = ConnectionArgs;

    async fn run(args: SnapshotArgs, ctx: &Context<ConnectionArgs>) -> Result<Outcome, Failure> {
        match args.state {
            State::Present => take(Target::from_args(&args)?, args, ctx).await,
            State::Verified => verify(Target::from_args(&args)?),
            State::Pruned => prune_only(&args, ctx.check_mode),
        }
    }
}

/// Where snapshots go.
enum Target {
    /// An exact file.
    Path(PathBuf),
    /// Timestamped files in a directory.
    Dir(PathBuf),
}

impl Target {
    fn from_args(args: &SnapshotArgs) -> Result<Target, Failure> {
        match (&args.path, &args.dir) {
            (Some(p), None) => Ok(Target::Path(p.clone())),
            (None, Some(d)) => Ok(Target::Dir(d.clone())),
            // The declared rules require one of them for these states.
            _ => Err(Failure::new("parameters are mutually exclusive: path|dir")),
        }
    }

    fn dir(&self) -> PathBuf {
        match self {
            Target::Dir(d) => d.clone(),
            Target::Path(p) => match p.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
                _ => PathBuf::from("."),
            },
        }
    }
}

/// Whether `name` is one of this module's timestamped snapshots; returns its time.
fn snapshot_stamp(name: &str) -> Option<u64> {
    parse_stamp(name.strip_prefix(NAME_PREFIX)?.strip_suffix(NAME_SUFFIX)?)
}

/// This module's snapshots in `dir`, oldest first.
fn list_snapshots(dir: &Path) -> Result<Vec<(u64, PathBuf)>, Failure> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Failure::new(format!("cannot list {}: {e}", dir.display()))),
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(stamp) = name.to_str().and_then(snapshot_stamp) else {
            continue;
        };
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            found.push((stamp, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

fn verify(target: Target) -> Result<Outcome, Failure> {
    let mut skipped = Vec::new();
    let path = match target {
        Target::Path(p) => p,
        Target::Dir(d) => {
            // The newest by its stamp, not counting files stamped in the future.
            let now = unix_secs(SystemTime::now());
            let mut found = list_snapshots(&d)?;
            let current = found.partition_point(|(stamp, _)| *stamp <= now);
            for (stamp, path) in found.split_off(current).into_iter().rev() {
                skipped.push(
                    Skipped {
                        reason: format!(
                            "stamped in the future ({} is later than the current time {}): not taken as the newest snapshot",
                            stamp_text(stamp),
                            stamp_text(now)
                        ),
                        path,
                    }
                    .json(),
                );
            }
            match found.pop() {
                Some((_, p)) => p,
                None => {
                    return Err(Failure::new(format!(
                        "no etcd-snapshot-*.db file stamped at or before now in {}",
                        d.display()
                    ))
                    .with("skipped_files", skipped))
                }
            }
        }
    };
    let info = inspect(&path, true).map_err(|e| {
        Failure::new(e)
            .with("valid", false)
            .with("path", path.display().to_string())
            .with("skipped_files", skipped.clone())
    })?;
    Ok(Outcome::new(
        false,
        format!(
            "snapshot {} is intact: revision {}, {} keys, sha256 {}",
            path.display(),
            info.db.revision,
            info.db.total_keys,
            info.sha256
        ),
    )
    .with("valid", true)
    .with("path", path.display().to_string())
    .with("size", info.size)
    .with("sha256", info.sha256)
    .with("revision", info.db.revision)
    .with("key_count", info.db.total_keys)
    .with("db_size", info.db.total_size)
    .with("skipped_files", skipped))
}

/// Mode and ownership to give the written file.
struct FileAttrs {
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
}

impl FileAttrs {
    fn from_args(args: &SnapshotArgs) -> Result<FileAttrs, Failure> {
        let mode = args.mode.0;
        let uid = match args.owner.as_ref().and_then(id_text) {
            Some(o) => Some(resolve_user(&o)?),
            None => None,
        };
        let gid = match args.group.as_ref().and_then(id_text) {
            Some(g) => Some(resolve_group(&g)?),
            None => None,
        };
        Ok(FileAttrs { mode, uid, gid })
    }

    fn apply(&self, file: &File) -> Result<(), Failure> {
        if self.uid.is_some() || self.gid.is_some() {
            std::os::unix::fs::fchown(file, self.uid, self.gid)
                .map_err(|e| Failure::new(format!("cannot set owner/group: {e}")))?;
        }
        // After chown: chown clears setuid/setgid bits.
        file.set_permissions(std::fs::Permissions::from_mode(self.mode))
            .map_err(|e| Failure::new(format!("cannot set mode {:o}: {e}", self.mode)))
    }
}

/// Removes temporary files of runs that died (their lock is free).
fn remove_stale_temps(dir: &Path) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !(name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX)) {
            continue;
        }
        let Ok(file) = File::open(entry.path()) else {
            continue;
        };
        // A live run holds the lock for as long as its file exists.
        if lock_file(&file, false).unwrap_or(false) && std::fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path().display().to_string());
        }
    }
    removed
}

/// A timestamped file that retention and `max_age` leave alone, and why.
struct Skipped {
    path: PathBuf,
    reason: String,
}

impl Skipped {
    fn json(&self) -> Value {
        json!({ "path": self.path.display().to_string(), "reason": self.reason })
    }
}

/// The timestamped files of `dir` as retention and `max_age` see them.
///
/// Only good copies count: files that verify (size of a database plus
/// trailer, sha256 trailer matching, readable database) and whose stamp
/// is not later than now. The others are never counted toward `keep`,
/// never taken as "the newest snapshot", and never removed: a file
/// stamped in the future (clock skew, a clock stepped back, a copied
/// file) would otherwise outrank every new snapshot, and a file that does
/// not verify is not a backup but may be someone's only evidence.
#[derive(Default)]
struct Survey {
    /// Good copies, oldest first.
    good: Vec<(u64, PathBuf)>,
    /// Files neither counted nor removed.
    skipped: Vec<Skipped>,
}

impl Survey {
    fn of(dir: &Path, now: u64) -> Result<Survey, Failure> {
        let mut survey = Survey::default();
        for (stamp, path) in list_snapshots(dir)? {
            if stamp > now {
                survey.skipped.push(Skipped {
                    reason: format!(
                        "stamped in the future ({} is later than the current time {}): \
                         not counted as a newer snapshot, not removed",
                        stamp_text(stamp),
                        stamp_text(now)
                    ),
                    path,
                });
                continue;
            }
            match inspect(&path, true) {
                Ok(_) => survey.good.push((stamp, path)),
                Err(why) => survey.skipped.push(Skipped {
                    reason: format!(
                        "does not verify, so it is not counted as a good copy and not removed: {why}"
                    ),
                    path,
                }),
            }
        }
        Ok(survey)
    }

    /// The good copies `keep` removes; with `new_written`, the file this
    /// run wrote (never in the survey, never removed) counts as the newest.
    fn prune_plan(&self, keep: u64, new_written: bool) -> Vec<PathBuf> {
        let keep_old = if new_written {
            keep.saturating_sub(1)
        } else {
            keep
        };
        let excess = self
            .good
            .len()
            .saturating_sub(usize::try_from(keep_old).unwrap_or(usize::MAX));
        self.good[..excess].iter().map(|(_, p)| p.clone()).collect()
    }

    fn skipped_json(&self) -> Vec<Value> {
        self.skipped.iter().map(Skipped::json).collect()
    }

    fn warnings(&self) -> Vec<String> {
        self.skipped
            .iter()
            .map(|s| format!("left {} alone: {}", s.path.display(), s.reason))
            .collect()
    }
}

fn stamp_text(secs: u64) -> String {
    utc_stamp(std::time::UNIX_EPOCH + Duration::from_secs(secs))
}

fn unix_secs(at: SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// For `max_age` with `path`: the file's age, if it is a good copy. A file
/// modified in the future or that does not verify does not stop a backup.
fn path_age(path: &Path, now: SystemTime, skipped: &mut Vec<Skipped>) -> Option<Duration> {
    let meta = std::fs::metadata(path).ok()?;
    let modified = meta.modified().ok()?;
    let Ok(age) = now.duration_since(modified) else {
        skipped.push(Skipped {
            path: path.to_path_buf(),
            reason: format!(
                "modified in the future ({} is later than the current time {}): not taken as a recent snapshot",
                stamp_text(unix_secs(modified)),
                stamp_text(unix_secs(now))
            ),
        });
        return None;
    };
    if let Err(why) = inspect(path, true) {
        skipped.push(Skipped {
            path: path.to_path_buf(),
            reason: format!("does not verify, so it is not taken as a recent snapshot: {why}"),
        });
        return None;
    }
    Some(age)
}

/// Checks the destination before anything is created or streamed: a clear
/// error when it cannot hold a snapshot. A missing `dir` must be creatable
/// (it is created later, just before the snapshot is written). Returns
/// the directory the file goes in.
fn check_destination(target: &Target) -> Result<PathBuf, Failure> {
    use std::io::ErrorKind::NotFound;
    match target {
        Target::Dir(d) => {
            if d.as_os_str().is_empty() {
                return Err(Failure::new(
                    "dir must not be empty: give the directory that receives the snapshots",
                ));
            }
            match std::fs::metadata(d) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(Failure::new(format!(
                        "dir {} exists and is not a directory",
                        d.display()
                    )))
                }
                Err(e) if e.kind() == NotFound => check_creatable(d)?,
                Err(e) => return Err(Failure::new(format!("cannot use dir {}: {e}", d.display()))),
            }
            Ok(d.clone())
        }
        Target::Path(p) => {
            if p.as_os_str().is_empty() {
                return Err(Failure::new(
                    "path must not be empty: give the snapshot file to write",
                ));
            }
            use std::os::unix::ffi::OsStrExt;
            if p.file_name().is_none() || p.as_os_str().as_bytes().ends_with(b"/") {
                return Err(Failure::new(format!(
                    "path {} names a directory, not a file (use dir for timestamped snapshots)",
                    p.display()
                )));
            }
            let parent = target.dir();
            match std::fs::metadata(&parent) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(Failure::new(format!(
                        "cannot write {}: {} is not a directory",
                        p.display(),
                        parent.display()
                    )))
                }
                Err(e) if e.kind() == NotFound => {
                    return Err(Failure::new(format!(
                        "cannot write {}: directory {} does not exist",
                        p.display(),
                        parent.display()
                    )))
                }
                Err(e) => {
                    return Err(Failure::new(format!(
                        "cannot write {}: {}: {e}",
                        p.display(),
                        parent.display()
                    )))
                }
            }
            // Also catches a name too long for the file system (ENAMETOOLONG).
            match std::fs::metadata(p) {
                Ok(meta) if meta.is_dir() => Err(Failure::new(format!(
                    "path {} is a directory (use dir for timestamped snapshots)",
                    p.display()
                ))),
                Ok(_) => Ok(parent),
                Err(e) if e.kind() == NotFound => Ok(parent),
                Err(e) => Err(Failure::new(format!(
                    "cannot use path {}: {e}",
                    p.display()
                ))),
            }
        }
    }
}

/// Whether a missing `dir` can be created (its nearest existing ancestor
/// is a writable directory).
fn check_creatable(dir: &Path) -> Result<(), Failure> {
    let mut ancestor = dir.parent();
    while let Some(a) = ancestor {
        let shown = if a.as_os_str().is_empty() {
            Path::new(".")
        } else {
            a
        };
        match std::fs::metadata(shown) {
            Ok(meta) if meta.is_dir() => return check_writable(shown),
            Ok(_) => {
                return Err(Failure::new(format!(
                    "cannot create dir {}: {} is not a directory",
                    dir.display(),
                    shown.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ancestor = a.parent(),
            Err(e) => {
                return Err(Failure::new(format!(
                    "cannot create dir {}: {}: {e}",
                    dir.display(),
                    shown.display()
                )))
            }
        }
    }
    Ok(())
}

/// Whether files can be created in `dir` (access(2), which also reports a
/// read-only file system).
fn check_writable(dir: &Path) -> Result<(), Failure> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| Failure::new(format!("{} contains a NUL byte", dir.display())))?;
    // SAFETY: access reads the NUL-terminated path only.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } == 0 {
        Ok(())
    } else {
        Err(Failure::new(format!(
            "cannot create a file in {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        )))
    }
}

async fn take(
    target: Target,
    args: SnapshotArgs,
    ctx: &Context<ConnectionArgs>,
) -> Result<Outcome, Failure> {
    let keep = args.keep.map(|k| k.0);
    if keep.is_some() && !matches!(target, Target::Dir(_)) {
        return Err(Failure::new(
            "keep only applies to dir (timestamped snapshots)",
        ));
    }
    if keep == Some(0) {
        return Err(Failure::new(
            "keep must be at least 1 (it counts the new snapshot)",
        ));
    }
    let attrs = FileAttrs::from_args(&args)?;
    let dir = check_destination(&target)?;
    // Every argument is checked before anything on disk changes.
    let connection = ctx.shared.connect_settings()?;
    let now = SystemTime::now();
    let mut removed = Vec::new();
    if !ctx.check_mode {
        removed = remove_stale_temps(&dir);
    }
    let before = snapshot_names(&target);
    let mut survey = match &target {
        Target::Dir(d) if keep.is_some() || args.max_age.is_some() => {
            Survey::of(d, unix_secs(now))?
        }
        _ => Survey::default(),
    };

    if let Some(max_age) = args.max_age {
        let newest = match &target {
            Target::Dir(_) => survey.good.last().map(|(stamp, p)| {
                (
                    p.clone(),
                    Duration::from_secs(unix_secs(now).saturating_sub(*stamp)),
                )
            }),
            Target::Path(p) => path_age(p, now, &mut survey.skipped).map(|age| (p.clone(), age)),
        };
        if let Some((newest, age)) = newest.filter(|(_, age)| *age < max_age.0) {
            let mut pruned = Vec::new();
            if let Some(keep) = keep {
                pruned = prune(survey.prune_plan(keep, false), ctx.check_mode, &mut survey)?;
            }
            removed.extend(pruned.iter().cloned());
            let why = format!(
                "newest good snapshot {} is {}s old, younger than max_age ({}s)",
                newest.display(),
                age.as_secs(),
                max_age.0.as_secs()
            );
            let mut outcome = Outcome::new(!removed.is_empty(), why.clone())
                .with("path", newest.display().to_string())
                .with("skipped_reason", why)
                .with("removed", removed)
                .with("skipped_files", survey.skipped_json());
            if !survey.skipped.is_empty() {
                outcome = outcome.with("warnings", survey.warnings());
            }
            outcome.diff = Some(diff(&before, None, &pruned));
            return Ok(outcome);
        }
    }

    let destination = match &target {
        Target::Path(p) => p.clone(),
        Target::Dir(d) => d.join(format!("{NAME_PREFIX}{}{NAME_SUFFIX}", utc_stamp(now))),
    };
    // The file is created (and given its mode and owner) before any byte
    // is streamed: an unwritable destination fails here, once.
    let temp = if ctx.check_mode {
        if dir.is_dir() {
            check_writable(&dir)?;
        }
        None
    } else {
        if let Target::Dir(d) = &target {
            create_dir(d)?;
        }
        let temp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .suffix(TEMP_SUFFIX)
            .tempfile_in(&dir)
            .map_err(|e| {
                Failure::new(format!("cannot create a file in {}: {e}", dir.display()))
                    .with("removed", removed.clone())
            })?;
        lock_file(temp.as_file(), true)
            .map_err(|e| Failure::new(format!("cannot lock {}: {e}", temp.path().display())))?;
        attrs.apply(temp.as_file())?;
        Some(temp)
    };
    let candidates = candidates(&connection).await?;
    let plan = match keep {
        Some(keep) => survey.prune_plan(keep, true),
        None => Vec::new(),
    };

    let Some(temp) = temp else {
        let source = &candidates[0];
        let pruned = prune(plan, true, &mut survey)?;
        removed.extend(pruned.iter().cloned());
        let mut outcome = Outcome::new(
            true,
            format!(
                "would write a snapshot of member {} ({}) to {}",
                source.name,
                member_id_hex(source.id),
                destination.display()
            ),
        )
        .with("path", destination.display().to_string())
        .with("member", source.json())
        .with("removed", removed)
        .with("skipped_files", survey.skipped_json());
        if !survey.skipped.is_empty() {
            outcome = outcome.with("warnings", survey.warnings());
        }
        outcome.diff = Some(diff(&before, Some(&destination), &pruned));
        return Ok(outcome);
    };

    let idle = connection.dial_timeout + connection.command_timeout;
    let mut errors = Vec::new();
    let mut written = None;
    for source in &candidates {
        match save_from(&connection, source, &temp, idle).await {
            Ok(done) => {
                written = Some((source, done));
                break;
            }
            Err(Attempt::Remote(e)) => {
                errors.push(format!("{}: {}", source.endpoint, e.msg));
                if let Err(e) = reset(&temp) {
                    return Err(e.with("removed", removed));
                }
            }
            // Disk full, read-only, permissions: no other member can help.
            Err(Attempt::Local(e)) => {
                errors.push(format!("{}: {}", source.endpoint, e.msg));
                return Err(Failure::new(format!(
                    "no snapshot could be taken: {}",
                    errors.join("; ")
                ))
                .with("removed", removed));
            }
        }
    }
    let Some((source, saved)) = written else {
        return Err(
            Failure::new(format!("no snapshot could be taken: {}", errors.join("; ")))
                .with("removed", removed),
        );
    };
    persist(temp, &destination, &dir, &attrs).map_err(|e| e.with("removed", removed.clone()))?;

    let pruned = prune(plan, false, &mut survey)?;
    removed.extend(pruned.iter().cloned());
    let mut warnings = errors;
    warnings.extend(survey.warnings());
    let mut outcome = Outcome::new(
        true,
        format!(
            "wrote snapshot {} ({} bytes, revision {}) from member {} ({})",
            destination.display(),
            saved.size,
            saved.revision,
            source.name,
            member_id_hex(source.id)
        ),
    )
    .with("path", destination.display().to_string())
    .with("size", saved.size)
    .with("sha256", saved.sha256)
    .with("revision", saved.revision)
    .with("key_count", saved.key_count)
    .with("db_size", saved.db_size)
    .with("member", source.json())
    .with("removed", removed)
    .with("skipped_files", survey.skipped_json());
    if !warnings.is_empty() {
        outcome = outcome.with("warnings", warnings);
    }
    outcome.diff = Some(diff(&before, Some(&destination), &pruned));
    Ok(outcome)
}

/// `state: pruned`: retention alone, by the rules `keep` follows after a
/// snapshot. `path`, the snapshot the caller just made (fetched into `dir`,
/// say), must verify; it counts as the newest good copy and is never removed,
/// whatever its stamp says.
fn prune_only(args: &SnapshotArgs, check_mode: bool) -> Result<Outcome, Failure> {
    // The declared rule (required_if state=pruned) has checked both already.
    let Some(dir) = &args.dir else {
        return Err(Failure::new("state=pruned needs dir"));
    };
    let Some(keep) = args.keep.map(|k| k.0) else {
        return Err(Failure::new("state=pruned needs keep"));
    };
    if keep == 0 {
        return Err(Failure::new(
            "keep must be at least 1 (it counts the newest snapshot)",
        ));
    }
    if !dir.is_dir() {
        return Err(Failure::new(format!(
            "dir {} is not a directory",
            dir.display()
        )));
    }
    let newest = match &args.path {
        Some(path) => {
            let same_dir = path
                .parent()
                .and_then(|parent| std::fs::canonicalize(parent).ok())
                .is_some_and(|parent| std::fs::canonicalize(dir).is_ok_and(|d| d == parent));
            if !same_dir {
                return Err(Failure::new(format!(
                    "path {} is not a file directly in dir {}",
                    path.display(),
                    dir.display()
                )));
            }
            inspect(path, true).map_err(|e| {
                Failure::new(format!(
                    "the new snapshot does not verify, so nothing is pruned against it: {e}"
                ))
            })?;
            Some(path.clone())
        }
        None => None,
    };
    let before = snapshot_names(&Target::Dir(dir.clone()));
    let mut survey = Survey::of(dir, unix_secs(SystemTime::now()))?;
    if let Some(newest) = &newest {
        let name = newest.file_name();
        survey.good.retain(|(_, p)| p.file_name() != name);
        survey.skipped.retain(|s| s.path.file_name() != name);
    }
    let plan = survey.prune_plan(keep, newest.is_some());
    let pruned = prune(plan, check_mode, &mut survey)?;
    let warnings = survey.warnings();
    let mut outcome = Outcome::new(
        !pruned.is_empty(),
        format!(
            "kept the newest {keep} good snapshots in {}; removed {}",
            dir.display(),
            pruned.len()
        ),
    )
    .with("removed", pruned.clone())
    .with("skipped_files", survey.skipped_json());
    if !warnings.is_empty() {
        outcome = outcome.with("warnings", warnings);
    }
    outcome.diff = Some(diff(&before, None, &pruned));
    Ok(outcome)
}

fn create_dir(dir: &Path) -> Result<(), Failure> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", dir.display())))
}

/// Removes the planned files (or only reports them in check mode). A file
/// that cannot be removed is reported as skipped: the snapshot is taken.
fn prune(
    plan: Vec<PathBuf>,
    check_mode: bool,
    survey: &mut Survey,
) -> Result<Vec<String>, Failure> {
    let mut done = Vec::new();
    for path in plan {
        if !check_mode {
            if let Err(e) = std::fs::remove_file(&path) {
                survey.skipped.push(Skipped {
                    reason: format!("keep would remove it but it cannot be removed: {e}"),
                    path,
                });
                continue;
            }
        }
        done.push(path.display().to_string());
    }
    Ok(done)
}

fn snapshot_names(target: &Target) -> Vec<String> {
    match target {
        Target::Dir(d) => list_snapshots(d)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, p)| p.display().to_string())
            .collect(),
        Target::Path(p) => {
            if p.exists() {
                vec![p.display().to_string()]
            } else {
                Vec::new()
            }
        }
    }
}

fn diff(before: &[String], new: Option<&Path>, pruned: &[String]) -> Value {
    let new = new.map(|n| n.display().to_string());
    let mut after: Vec<String> = before
        .iter()
        .filter(|p| !pruned.contains(p) && Some(*p) != new.as_ref())
        .cloned()
        .collect();
    after.extend(new);
    after.sort();
    json!({
        "before": { "snapshots": before },
        "after": { "snapshots": after },
    })
}

/// A member that answered its status request.
struct Source {
    endpoint: String,
    id: u64,
    name: String,
    has_leader: bool,
}

impl Source {
    fn json(&self) -> Value {
        json!({ "id": member_id_hex(self.id), "name": self.name, "endpoint": self.endpoint })
    }
}

/// Members to stream from, best first: those that see a leader, in
/// endpoint order, then (after quorum loss a snapshot of a survivor is the
/// best one can get) those that answer without a leader.
async fn candidates(connection: &Connection) -> Result<Vec<Source>, Failure> {
    let mut tasks = JoinSet::new();
    for (index, endpoint) in connection.endpoints.iter().enumerate() {
        let conn = connection.clone();
        let endpoint = endpoint.clone();
        tasks.spawn(async move { (index, probe(&conn, endpoint).await) });
    }
    let mut answers = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        answers.push(joined.map_err(|e| Failure::new(format!("internal error: {e}")))?);
    }
    answers.sort_by_key(|(index, _)| *index);
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for (_, answer) in answers {
        match answer {
            Ok(source) => sources.push(source),
            Err(e) => errors.push(e.msg),
        }
    }
    if sources.is_empty() {
        return Err(Failure::new(format!(
            "no etcd endpoint answered ({}): {}",
            connection.endpoints.join(", "),
            errors.join("; ")
        )));
    }
    sources.sort_by_key(|s| !s.has_leader);
    Ok(sources)
}

async fn probe(conn: &Connection, endpoint: String) -> Result<Source, Failure> {
    let mut client = conn.client_for(&endpoint).await?;
    let status = conn
        .bounded(&format!("status of {endpoint}"), client.status())
        .await?;
    let id = status.header().map_or(0, |h| h.member_id());
    // The name is only for the report: a failure here is not fatal.
    let name = conn
        .bounded(&format!("member list via {endpoint}"), client.member_list())
        .await
        .ok()
        .and_then(|list| {
            list.members()
                .iter()
                .find(|m| m.id() == id)
                .map(|m| m.name().to_string())
        })
        .unwrap_or_default();
    Ok(Source {
        endpoint,
        id,
        name,
        has_leader: status.leader() != 0,
    })
}

/// A snapshot that is complete in its temporary file.
struct Saved {
    size: u64,
    sha256: String,
    revision: u64,
    key_count: u64,
    db_size: u64,
}

/// Why one member's attempt failed.
enum Attempt {
    /// The member or the network: the next endpoint may do better.
    Remote(Failure),
    /// This host (disk full, read-only file system, permissions): no
    /// other member can help, and retrying would only stream again.
    Local(Failure),
}

/// Empties the temporary file for the next member's attempt.
fn reset(temp: &tempfile::NamedTempFile) -> Result<(), Failure> {
    use std::io::Seek;
    let mut file = temp.as_file();
    file.set_len(0)
        .and_then(|_| file.rewind())
        .map_err(|e| Failure::new(format!("cannot truncate {}: {e}", temp.path().display())))
}

/// Streams a snapshot from `source` into `temp` and checks it.
async fn save_from(
    conn: &Connection,
    source: &Source,
    temp: &tempfile::NamedTempFile,
    idle: Duration,
) -> Result<Saved, Attempt> {
    let client = conn
        .client_for(&source.endpoint)
        .await
        .map_err(Attempt::Remote)?;
    let digests = stream(conn, client, &source.endpoint, temp.as_file(), idle).await?;
    digests.check().map_err(|why| {
        Attempt::Remote(Failure::new(format!(
            "the snapshot stream from {} was incomplete: {why}",
            source.endpoint
        )))
    })?;

    let file = temp.as_file();
    file.sync_all().map_err(|e| {
        Attempt::Local(Failure::new(format!(
            "cannot fsync {}: {e}",
            temp.path().display()
        )))
    })?;
    let db = db_stats(file, digests.len - HASH_LEN as u64).map_err(|why| {
        Attempt::Remote(Failure::new(format!(
            "the snapshot from {} is not a readable etcd database: {why}",
            source.endpoint
        )))
    })?;
    Ok(Saved {
        size: digests.len,
        sha256: digests.file_sha256,
        revision: db.revision,
        key_count: db.total_keys,
        db_size: db.total_size,
    })
}

/// Gives the complete temporary file its final mode and owner and moves it
/// to `destination`, then fsyncs the directory.
fn persist(
    temp: tempfile::NamedTempFile,
    destination: &Path,
    dir: &Path,
    attrs: &FileAttrs,
) -> Result<(), Failure> {
    // Again after writing: writes may clear setuid/setgid bits.
    attrs.apply(temp.as_file())?;
    let is_timestamped = destination
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(snapshot_stamp)
        .is_some();
    // A timestamped name must never replace an existing snapshot; a fixed
    // `path` is meant to be replaced (atomically).
    let persisted = if is_timestamped {
        temp.persist_noclobber(destination).map(|_| ())
    } else {
        temp.persist(destination).map(|_| ())
    };
    persisted.map_err(|e| {
        Failure::new(format!(
            "cannot move the snapshot to {}: {}",
            destination.display(),
            e.error
        ))
    })?;
    sync_dir(dir).map_err(Failure::new)
}

/// Copies the snapshot stream into `out`, hashing it; each message must
/// arrive within `idle` (a frozen member would otherwise hang us forever,
/// and a whole-stream deadline would cap the database size).
///
/// Hashing and writing run on their own thread, so they overlap with
/// receiving: sha256 costs about as much CPU as the transfer itself. The
/// bounded channel keeps at most [`IN_FLIGHT`] chunks (etcd sends 32 KiB
/// each) in memory whatever the database size.
async fn stream(
    conn: &Connection,
    mut client: Client,
    endpoint: &str,
    out: &File,
    idle: Duration,
) -> Result<Digests, Attempt> {
    let mut messages = conn
        .bounded(
            &format!("starting snapshot on {endpoint}"),
            client.snapshot(),
        )
        .await
        .map_err(Attempt::Remote)?;
    let mut file = out.try_clone().map_err(|e| {
        Attempt::Local(Failure::new(format!(
            "cannot duplicate the file handle: {e}"
        )))
    })?;
    let (chunks, mut receiver) = tokio::sync::mpsc::channel::<SnapshotResponse>(IN_FLIGHT);
    let writer = std::thread::spawn(move || -> Result<Digests, String> {
        let mut hasher = StreamHasher::new();
        while let Some(message) = receiver.blocking_recv() {
            let chunk = message.blob();
            hasher.update(chunk);
            file.write_all(chunk)
                .map_err(|e| format!("cannot write the snapshot: {e}"))?;
        }
        Ok(hasher.finish())
    });
    let mut received = 0u64;
    let streamed: Result<(), Failure> = loop {
        let message = match tokio::time::timeout(idle, messages.message()).await {
            Err(_) => {
                break Err(Failure::new(format!(
                    "snapshot stream from {endpoint} stalled: no data for {:.1}s after {received} bytes",
                    idle.as_secs_f64(),
                )))
            }
            Ok(Err(e)) => {
                break Err(Failure::new(format!(
                    "snapshot stream from {endpoint} failed after {received} bytes: {}",
                    describe(&e)
                )))
            }
            Ok(Ok(None)) => break Ok(()),
            Ok(Ok(Some(message))) => message,
        };
        received += message.blob().len() as u64;
        // The message itself moves to the writer: no copy, no extra allocation.
        // A send error means the writer stopped (write error): its result says why.
        if chunks.send(message).await.is_err() {
            break Ok(());
        }
    };
    drop(chunks);
    // A write error (disk full, read-only) is this host's, whatever the stream did.
    let digests = writer
        .join()
        .map_err(|_| Attempt::Local(Failure::new("the snapshot writer thread panicked")))?
        .map_err(|e| Attempt::Local(Failure::new(e)))?;
    streamed.map_err(Attempt::Remote)?;
    Ok(digests)
}
