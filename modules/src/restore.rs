//! `etcd_restore`: rebuild a member's data dir from a snapshot after quorum
//! loss (the runbooks' `etcdctl snapshot restore` step), without ever
//! deleting data.
//!
//! Order of work, so that every early exit leaves the host as it was: the
//! snapshot's sha256 trailer is checked first; the restore tool then writes
//! into a fresh temporary directory beside `data_dir`; only a complete
//! restore is moved into place, an existing `data_dir` being renamed to
//! `<data_dir>.bak-<UTC timestamp>` first. A marker file beside the data
//! dir (`<data_dir>.etcd-restore.json`, not inside it: etcd logs "found
//! invalid file/dir" for every unknown entry of its data dir at each start)
//! records what the directory was restored from and which directory
//! (device and inode) it describes, which makes a second run with the same
//! inputs a no-op. Markers that earlier versions wrote inside the data dir
//! are still recognised, and moved out.
//!
//! Check mode and the real run share one validation ([`plan`]): check mode
//! refuses exactly what the real run would refuse. The restore tool runs
//! with `PR_SET_PDEATHSIG`, so a killed module leaves no tool writing.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::etcd_version::{query_version, EtcdVersion};
use crate::fsutil::{id_text, lock_file, resolve_group, resolve_user, sync_dir};
use crate::protocol::lenient::{Bool, List};
use crate::protocol::{
    ArgType, Context, Failure, Module, NoSharedOptions, OptionDoc, Outcome, ReturnDoc,
};
use crate::restore_versions::refusal;
use crate::snapshot_file::{inspect, utc_stamp, SnapshotInfo};

/// Suffix of the marker file beside a restored data dir: `<data_dir>.etcd-restore.json`.
pub const MARKER_SUFFIX: &str = ".etcd-restore.json";
/// Where earlier versions put the marker: inside the data dir.
pub const LEGACY_MARKER: &str = ".etcd-restore.json";
/// Marker key naming the data dir it describes (`<device>:<inode>`).
const MARKER_DIR_ID: &str = "data_dir_id";
/// Lock file inside a temporary restore directory, held while it is in use.
const TEMP_LOCK: &str = ".etcd-restore.lock";

/// Arguments of `etcd_restore`. Defaults are filled in by the protocol
/// from [`Restore::OPTIONS`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreArgs {
    /// Snapshot file to restore from.
    pub snapshot: PathBuf,
    /// The member's data directory to (re)create.
    pub data_dir: PathBuf,
    /// The member's name (`--name`).
    pub name: String,
    /// `--initial-cluster`: a string or a name -> peer URL(s) mapping.
    pub initial_cluster: Value,
    /// `--initial-cluster-token` (empty: etcd's default).
    pub initial_cluster_token: String,
    /// `--initial-advertise-peer-urls`.
    #[serde(default)]
    pub initial_advertise_peer_urls: Option<List>,
    /// Accept a snapshot without (or with a wrong) sha256 trailer.
    pub skip_hash_check: Bool,
    /// Owner of the restored data dir.
    #[serde(default)]
    pub owner: Option<Value>,
    /// Group of the restored data dir.
    #[serde(default)]
    pub group: Option<Value>,
    /// Path of etcdctl (etcd 3.4's restore tool).
    #[serde(default)]
    pub etcdctl_path: Option<PathBuf>,
    /// Path of etcdutl (the restore tool from etcd 3.5 on).
    #[serde(default)]
    pub etcdutl_path: Option<PathBuf>,
    /// Path of the etcd server that will run on the restored data dir.
    #[serde(default)]
    pub etcd_path: Option<PathBuf>,
}

/// The `etcd_restore` module.
pub struct Restore;

impl Module for Restore {
    const NAME: &'static str = "etcd_restore";
    const SHORT_DESCRIPTION: &'static str =
        "Rebuild an etcd member's data directory from a snapshot";
    const DESCRIPTION: &'static [&'static str] = &[
        "Restores O(snapshot) into O(data_dir) for a new cluster, as in the quorum-loss recovery runbooks: runs C(etcdutl snapshot restore) when etcdutl is available (O(etcdutl_path) or on PATH), otherwise etcd 3.4's C(etcdctl snapshot restore) with ETCDCTL_API=3. Run it on every member with the same snapshot, O(initial_cluster) and O(initial_cluster_token), then start etcd on the restored directories.",
        "Checks the snapshot's sha256 trailer before touching anything: a truncated or corrupt file fails with a clear message and changes nothing (O(skip_hash_check) accepts a bare C(member/snap/db) copy).",
        "Never deletes data: the tool writes into a new directory beside O(data_dir), an existing O(data_dir) is renamed to C(<data_dir>.bak-<UTC timestamp>) (returned as C(backup_dir)), then the new directory is renamed into place. Refuses while an etcd process holds the existing database open.",
        "Idempotent: the restore is recorded beside the data directory in C(<data_dir>.etcd-restore.json) (snapshot sha256, name, initial cluster, token, peer URLs, and the directory's device and inode), not inside it, where etcd would log C(found invalid file/dir) at every start; a data dir already restored with the same values is left alone, even after etcd has run on it. A marker left inside the data dir by earlier versions is recognised and moved out.",
        "Refuses, in check mode as in a real run and before changing anything, a O(data_dir) that names no replaceable directory (C(/), C(.), C(..)), an existing O(data_dir) that is not a directory or holds anything etcd does not keep there (only C(member/) is expected), a parent it cannot write in, and a restore tool that is not an executable file.",
        "The restore tool is killed with the module (a killed module leaves no tool writing into its temporary directory). When the tool fails, the message shows its panic and error lines first, not its goroutine stack.",
        "Version aware: the etcd server that will run on the restored directory (O(etcd_path), default C(etcd) on PATH) is asked its version. With etcd 3.6 or later, etcdutl is required (etcd 3.6 removed C(etcdctl snapshot restore), and a directory restored by etcdctl does not start under it): without etcdutl the module fails and says so. A restore tool newer (major.minor) than the server is refused, since etcd refuses data written by a newer version. Both checks run before anything is changed, in check mode too; the versions are returned as C(server_version) and C(tool_version).",
        "Does not contact etcd.",
    ];
    const OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::new(
            "snapshot",
            ArgType::Path,
            "Snapshot file (from etcd_snapshot or etcdctl snapshot save) on the host.",
        )
        .required(),
        OptionDoc::new(
            "data_dir",
            ArgType::Path,
            "The member's data directory (etcd --data-dir). Created if missing; an existing one is moved aside, never deleted.",
        )
        .required(),
        OptionDoc::new("name", ArgType::Str, "The member's name (etcd --name).").required(),
        OptionDoc::new(
            "initial_cluster",
            ArgType::Raw,
            "All members of the new cluster: a string C(name=peer_url,...) as for etcd --initial-cluster, or a mapping of name to peer URL (or list of URLs). Must contain O(name).",
        )
        .required(),
        OptionDoc::new(
            "initial_cluster_token",
            ArgType::Str,
            "Token of the new cluster (etcd --initial-cluster-token); use the same on every member, and preferably a new one so that old members cannot join.",
        )
        .default("\"etcd-cluster\""),
        OptionDoc::new(
            "initial_advertise_peer_urls",
            ArgType::List,
            "This member's peer URLs; default: its URLs in O(initial_cluster). Must match them.",
        ),
        OptionDoc::new(
            "skip_hash_check",
            ArgType::Bool,
            "Restore a snapshot that has no valid sha256 trailer (e.g. a copied member/snap/db).",
        )
        .default("false"),
        OptionDoc::new(
            "owner",
            ArgType::Str,
            "Owner (name or uid) given to the restored data directory and everything in it (e.g. etcd).",
        ),
        OptionDoc::new(
            "group",
            ArgType::Str,
            "Group (name or gid) given to the restored data directory and everything in it.",
        ),
        OptionDoc::new(
            "etcdctl_path",
            ArgType::Path,
            "etcdctl to use for the restore (etcd 3.4); default: etcdctl on PATH when no etcdutl is found.",
        ),
        OptionDoc::new(
            "etcdutl_path",
            ArgType::Path,
            "etcdutl to use for the restore (etcd 3.5 and later); default: etcdutl on PATH if present. Takes precedence over etcdctl_path. Required (given or on PATH) when the server is etcd 3.6 or later.",
        ),
        OptionDoc::new(
            "etcd_path",
            ArgType::Path,
            "The etcd server binary the member runs; its C(etcd --version) decides which restore tool fits. Default: etcd on PATH; when none is found the versions are not checked.",
        ),
    ];
    const EXAMPLES: &'static str = r#"
- name: Restore every member from last night's snapshot
  etcd_restore:
    snapshot: /tmp/etcd.snap
    data_dir: /var/lib/etcd
    name: "{{ inventory_hostname }}"
    initial_cluster: "{% for h in groups['etcd'] %}{{ h }}=https://{{ hostvars[h].ip }}:2380{{ '' if loop.last else ',' }}{% endfor %}"
    initial_cluster_token: etcd-restored-{{ ansible_date_time.date }}
    owner: etcd
    group: etcd
  register: restored

- name: The same with a mapping
  etcd_restore:
    snapshot: /tmp/etcd.snap
    data_dir: /var/lib/etcd
    name: etcd1
    initial_cluster:
      etcd1: https://10.0.0.1:2380
      etcd2: https://10.0.0.2:2380
      etcd3: https://10.0.0.3:2380
    initial_cluster_token: etcd-restored
"#;
    const RETURNS: &'static [ReturnDoc] = &[
        ReturnDoc {
            name: "data_dir",
            description: "The restored data directory.",
            returned: "success",
            ty: "str",
        },
        ReturnDoc {
            name: "backup_dir",
            description: "Where the previous data directory was moved (would be, in check mode); null if there was none.",
            returned: "success",
            ty: "str",
        },
        ReturnDoc {
            name: "snapshot_sha256",
            description: "sha256 of the snapshot file.",
            returned: "success",
            ty: "str",
        },
        ReturnDoc {
            name: "revision",
            description: "Revision held by the snapshot (etcdctl snapshot status: revision).",
            returned: "success",
            ty: "int",
        },
        ReturnDoc {
            name: "key_count",
            description: "etcdctl snapshot status's totalKey of the snapshot.",
            returned: "success",
            ty: "int",
        },
        ReturnDoc {
            name: "initial_cluster",
            description: "The normalized --initial-cluster used.",
            returned: "success",
            ty: "str",
        },
        ReturnDoc {
            name: "tool",
            description: "The restore command that ran (or would run): program and arguments.",
            returned: "when a restore ran or would run",
            ty: "list",
        },
        ReturnDoc {
            name: "marker",
            description: "Contents of the marker <data_dir>.etcd-restore.json after the run (before it, in check mode).",
            returned: "success",
            ty: "dict",
        },
        ReturnDoc {
            name: "marker_file",
            description: "Path of the marker file, <data_dir>.etcd-restore.json.",
            returned: "success",
            ty: "str",
        },
        ReturnDoc {
            name: "marker_migrated",
            description: "Whether a marker left inside the data dir by an earlier version was moved out (would be, in check mode).",
            returned: "when the data dir was already restored",
            ty: "bool",
        },
        ReturnDoc {
            name: "server_version",
            description: "Version of the etcd server (O(etcd_path) or etcd on PATH); null if none was found.",
            returned: "when a restore ran or would run",
            ty: "str",
        },
        ReturnDoc {
            name: "tool_version",
            description: "Version the restore tool reports (C(etcdutl version) / C(etcdctl version)); null if it printed none.",
            returned: "when a restore ran or would run",
            ty: "str",
        },
        ReturnDoc {
            name: "stderr_lines",
            description: "The restore tool's meaningful stderr lines (panic and error lines first, no goroutine stack).",
            returned: "when the restore tool failed",
            ty: "list",
        },
    ];
    type Args = RestoreArgs;
    type Shared = NoSharedOptions;

    async fn run(args: RestoreArgs, ctx: &Context) -> Result<Outcome, Failure> {
        restore(args, ctx)
    }
}

/// What a restored data dir was made from; the compared part of the marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// sha256 of the snapshot file.
    pub snapshot_sha256: String,
    /// `--name`.
    pub name: String,
    /// Normalized `--initial-cluster`.
    pub initial_cluster: String,
    /// `--initial-cluster-token`.
    pub initial_cluster_token: String,
    /// `--initial-advertise-peer-urls`, comma-separated.
    pub initial_advertise_peer_urls: String,
}

/// Parses `--initial-cluster` (string or mapping) into sorted (name, url) pairs.
fn parse_initial_cluster(value: &Value) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    match value {
        Value::String(s) => {
            for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                let (name, url) = item.split_once('=').ok_or_else(|| {
                    format!("initial_cluster entry {item:?} is not name=peer_url")
                })?;
                pairs.push((name.trim().to_string(), url.trim().to_string()));
            }
        }
        Value::Object(map) => {
            for (name, urls) in map {
                let urls: Vec<String> = match urls {
                    Value::String(s) => s
                        .split(',')
                        .map(|u| u.trim().to_string())
                        .filter(|u| !u.is_empty())
                        .collect(),
                    Value::Array(items) => items
                        .iter()
                        .map(|u| {
                            u.as_str().map(|u| u.trim().to_string()).ok_or_else(|| {
                                format!("initial_cluster: URL {u} of {name} is not a string")
                            })
                        })
                        .collect::<Result<_, _>>()?,
                    other => {
                        return Err(format!(
                            "initial_cluster: {name} maps to {other}, not a URL or list of URLs"
                        ))
                    }
                };
                pairs.extend(urls.into_iter().map(|u| (name.clone(), u)));
            }
        }
        other => {
            return Err(format!(
                "initial_cluster must be a string or a mapping, got {other}"
            ))
        }
    }
    for (name, url) in &pairs {
        if name.is_empty() || !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "initial_cluster entry {name}={url} needs a name and an http(s) peer URL"
            ));
        }
    }
    if pairs.is_empty() {
        return Err("initial_cluster is empty".into());
    }
    pairs.sort();
    pairs.dedup();
    Ok(pairs)
}

/// Which restore program to run.
#[derive(Debug, Clone)]
struct Tool {
    program: PathBuf,
    is_etcdutl: bool,
}

/// Finds `name` on PATH (plus the usual system directories: Ansible may
/// run modules with a minimal PATH).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            [
                "/usr/local/bin",
                "/usr/bin",
                "/bin",
                "/usr/local/sbin",
                "/usr/sbin",
            ]
            .iter()
            .map(PathBuf::from),
        )
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The restore tool: O(etcdutl_path), O(etcdctl_path), etcdutl on PATH,
/// etcdctl on PATH, in that order; for a server of 3.6 or later only
/// etcdutl (given or on PATH) qualifies.
fn choose_tool(args: &RestoreArgs, server: Option<&Server>) -> Result<Tool, Failure> {
    if let Some(p) = &args.etcdutl_path {
        return Ok(Tool {
            program: p.clone(),
            is_etcdutl: true,
        });
    }
    if let Some(server) = server.filter(|s| s.version.needs_etcdutl()) {
        return find_program("etcdutl")
            .map(|p| Tool {
                program: p,
                is_etcdutl: true,
            })
            .ok_or_else(|| {
                Failure::new(format!(
                    "etcdutl is required: the server {} is etcd {}, which has no `etcdctl snapshot restore` (removed in 3.6; a data dir restored by etcdctl does not start under it), and no etcdutl was found on PATH; install etcdutl or set etcdutl_path; nothing was changed",
                    server.path.display(),
                    server.version
                ))
                .with("server_version", server.version.to_string())
            });
    }
    if let Some(p) = &args.etcdctl_path {
        return Ok(Tool {
            program: p.clone(),
            is_etcdutl: false,
        });
    }
    if let Some(p) = find_program("etcdutl") {
        return Ok(Tool {
            program: p,
            is_etcdutl: true,
        });
    }
    find_program("etcdctl")
        .map(|p| Tool {
            program: p,
            is_etcdutl: false,
        })
        .ok_or_else(|| {
            Failure::new(
                "neither etcdutl nor etcdctl was found on PATH: install etcd's tools or set etcdutl_path / etcdctl_path",
            )
        })
}

fn tool_argv(
    tool: &Tool,
    snapshot: &Path,
    data_dir: &Path,
    origin: &Origin,
    skip: bool,
) -> Vec<String> {
    let mut argv = vec![
        tool.program.display().to_string(),
        "snapshot".into(),
        "restore".into(),
        snapshot.display().to_string(),
        "--name".into(),
        origin.name.clone(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--initial-cluster".into(),
        origin.initial_cluster.clone(),
        "--initial-cluster-token".into(),
        origin.initial_cluster_token.clone(),
        "--initial-advertise-peer-urls".into(),
        origin.initial_advertise_peer_urls.clone(),
    ];
    if skip {
        argv.push("--skip-hash-check".into());
    }
    argv
}

/// A version as returned to the user (null when unknown).
fn version_text(version: &Option<EtcdVersion>) -> Option<String> {
    version.as_ref().map(ToString::to_string)
}

/// A JSON file, if it exists and parses.
fn read_json(path: &Path) -> Option<Value> {
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Where the marker of `data_dir` lives: beside it, in its parent.
pub fn marker_path(data_dir: &Path) -> PathBuf {
    let name = data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_of(data_dir).join(format!("{name}{MARKER_SUFFIX}"))
}

/// Device and inode of a directory: ties a marker beside it to this very
/// directory (a data dir replaced by hand does not inherit the marker).
fn dir_identity(dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir).ok()?;
    meta.is_dir()
        .then(|| format!("{}:{}", meta.dev(), meta.ino()))
}

/// The marker that describes `data_dir` as it is now: the one beside it
/// when it names this directory, else an old one inside it (written by
/// earlier versions). The flag tells whether it is the old, inside one.
fn current_marker(data_dir: &Path) -> Option<(Value, bool)> {
    if let Some(marker) = read_json(&marker_path(data_dir)) {
        let id = marker.get(MARKER_DIR_ID).and_then(Value::as_str);
        if id.is_some() && id == dir_identity(data_dir).as_deref() {
            return Some((marker, false));
        }
    }
    read_json(&data_dir.join(LEGACY_MARKER)).map(|m| (m, true))
}

fn marker_origin(marker: &Value) -> Option<Origin> {
    serde_json::from_value(marker.clone()).ok()
}

/// Fails if an etcd process has the data dir's database open: bbolt holds
/// an exclusive `flock` on `member/snap/db` while etcd runs.
fn ensure_not_in_use(data_dir: &Path) -> Result<(), Failure> {
    let db = data_dir.join("member/snap/db");
    let Ok(file) = File::open(&db) else {
        return Ok(());
    };
    match lock_file(&file, false) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Failure::new(format!(
            "{} is locked: an etcd process is running on {}; stop it before restoring",
            db.display(),
            data_dir.display()
        ))),
        Err(e) => Err(Failure::new(format!("cannot lock {}: {e}", db.display()))),
    }
}

/// Whether `dir` exists (as anything: a file in the way counts too).
fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}

/// `<data_dir>.bak-<stamp>`, with `-2`, `-3`... if taken.
fn backup_name(data_dir: &Path, stamp: &str) -> PathBuf {
    let base = format!("{}.bak-{stamp}", data_dir.display());
    let mut candidate = PathBuf::from(&base);
    let mut n = 2;
    while exists(&candidate) {
        candidate = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    candidate
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Removes temporary restore directories of runs that died (their lock
/// file is unlocked). Only directories carrying our lock file qualify.
fn remove_stale_temps(parent: &Path, prefix: &str) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(parent) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(|n| n.starts_with(prefix)) {
            continue;
        }
        let Ok(lock) = File::open(entry.path().join(TEMP_LOCK)) else {
            continue;
        };
        if lock_file(&lock, false).unwrap_or(false) && std::fs::remove_dir_all(entry.path()).is_ok()
        {
            removed.push(entry.path().display().to_string());
        }
    }
    removed
}

/// chown -R without following symlinks.
fn chown_tree(path: &Path, uid: Option<u32>, gid: Option<u32>) -> Result<(), Failure> {
    std::os::unix::fs::lchown(path, uid, gid)
        .map_err(|e| Failure::new(format!("cannot chown {}: {e}", path.display())))?;
    let meta = path
        .symlink_metadata()
        .map_err(|e| Failure::new(format!("cannot stat {}: {e}", path.display())))?;
    if meta.is_dir() {
        let entries = std::fs::read_dir(path)
            .map_err(|e| Failure::new(format!("cannot list {}: {e}", path.display())))?;
        for entry in entries {
            let entry = entry.map_err(|e| Failure::new(e.to_string()))?;
            chown_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Writes `marker` to `path` atomically (temp file in the same directory,
/// fsync, rename, fsync of the directory), mode 0600.
fn write_marker(
    path: &Path,
    marker: &Value,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<(), Failure> {
    let dir = parent_of(path);
    let fail =
        |e: &dyn std::fmt::Display| Failure::new(format!("cannot write {}: {e}", path.display()));
    let prefix = format!(
        ".{}.tmp-",
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    let mut temp = tempfile::Builder::new()
        .prefix(&prefix)
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(&dir)
        .map_err(|e| fail(&e))?;
    let text = serde_json::to_string_pretty(marker).map_err(|e| fail(&e))?;
    temp.write_all(text.as_bytes())
        .and_then(|_| temp.write_all(b"\n"))
        .and_then(|_| temp.as_file().sync_all())
        .map_err(|e| fail(&e))?;
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::fchown(temp.as_file(), uid, gid).map_err(|e| fail(&e))?;
    }
    temp.persist(path).map_err(|e| fail(&e.error))?;
    sync_dir(&dir)?;
    Ok(())
}

/// A command whose process gets SIGKILL when this process dies
/// (`PR_SET_PDEATHSIG`), so that a killed module leaves no restore tool
/// writing behind it. The kernel ties the signal to the spawning thread:
/// modules run on a current-thread runtime, so that is the main thread.
fn command_dying_with_us(program: &Path) -> Command {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(program);
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls (prctl, getppid).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The module may have died between fork and prctl.
            if libc::getppid() != parent {
                return Err(std::io::Error::other(
                    "the module exited before the restore started",
                ));
            }
            Ok(())
        });
    }
    command
}

/// The lines of a failed tool's stderr worth showing: the panic, fatal and
/// error lines first (Go's `panic:` line, capnslog's `C |`/`E |` lines,
/// zap's JSON error entries), never the goroutine stack; if there are none,
/// the last lines before the stack.
pub fn stderr_digest(stderr: &str) -> Vec<String> {
    const MAX_LINE: usize = 500;
    let clip = |line: &str| -> String {
        let line = line.trim();
        if line.len() <= MAX_LINE {
            return line.to_string();
        }
        let mut end = MAX_LINE;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &line[..end])
    };
    // Everything from the first goroutine header on is a stack trace.
    let lines: Vec<&str> = stderr
        .lines()
        .take_while(|l| !l.starts_with("goroutine "))
        .filter(|l| !l.trim().is_empty())
        .collect();
    let mut first = Vec::new();
    let mut then = Vec::new();
    for line in &lines {
        let t = line.trim();
        if t.starts_with("panic:") || t.starts_with("fatal error:") {
            first.push(clip(t));
        } else if t.starts_with("Error:")
            || t.starts_with("error:")
            || t.contains(" C | ")
            || t.contains(" E | ")
            || t.contains(" F | ")
        {
            then.push(clip(t));
        } else if t.starts_with('{') {
            let Ok(entry) = serde_json::from_str::<Value>(t) else {
                continue;
            };
            let level = entry["level"].as_str().unwrap_or("");
            if matches!(level, "error" | "dpanic" | "panic" | "fatal") {
                let mut text = format!("{level}: {}", entry["msg"].as_str().unwrap_or(""));
                if let Some(error) = entry["error"].as_str() {
                    text.push_str(&format!(" ({error})"));
                }
                if level == "error" {
                    then.push(clip(&text));
                } else {
                    first.push(clip(&text));
                }
            }
        }
    }
    first.extend(then);
    let mut seen = std::collections::HashSet::new();
    first.retain(|l| seen.insert(l.clone()));
    if first.is_empty() {
        let skip = lines.len().saturating_sub(10);
        first = lines[skip..].iter().map(|l| clip(l)).collect();
    }
    first.truncate(10);
    first
}

/// The parent directory and last component of a `data_dir`, refusing
/// paths that name no replaceable directory (`/`, `.`, `..`).
fn data_dir_parts(path: &Path) -> Result<(PathBuf, String), Failure> {
    use std::path::Component;
    let refuse = |why: &str| {
        Failure::new(format!(
            "data_dir {:?} {why}; nothing was changed",
            path.display().to_string()
        ))
    };
    match path.components().next_back() {
        Some(Component::Normal(name)) => {
            let name = name
                .to_str()
                .ok_or_else(|| refuse("is not valid UTF-8"))?
                .to_string();
            Ok((parent_of(path), name))
        }
        Some(Component::RootDir) => Err(refuse(
            "is the root directory: it cannot be moved aside and replaced; give the member's own data directory (e.g. /var/lib/etcd)",
        )),
        Some(_) => Err(refuse(
            "must end in a directory name (not ., .. or a prefix)",
        )),
        None => Err(refuse("is empty")),
    }
}

/// The nearest existing ancestor of `dir` (itself included) must be a
/// directory this process can create entries in.
fn check_parent_writable(dir: &Path) -> Result<(), Failure> {
    use std::os::unix::ffi::OsStrExt;
    let mut at = dir.to_path_buf();
    while !exists(&at) {
        at = match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
    }
    if !at.is_dir() {
        return Err(Failure::new(format!(
            "{} is not a directory: cannot create {} in it; nothing was changed",
            at.display(),
            dir.display()
        )));
    }
    let c_path = std::ffi::CString::new(at.as_os_str().as_bytes())
        .map_err(|_| Failure::new(format!("{} contains a NUL byte", at.display())))?;
    // SAFETY: access(2) on a NUL-terminated path we own.
    if unsafe { libc::access(c_path.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(Failure::new(format!(
            "cannot create entries in {}: {e}; nothing was changed",
            at.display()
        )));
    }
    Ok(())
}

/// Entries etcd itself keeps in a data dir (plus the marker older
/// versions of this module wrote there). A directory holding anything
/// else is not an etcd data dir and is never moved aside.
const DATA_DIR_ENTRIES: &[&str] = &["member", "proxy", LEGACY_MARKER];

/// The names in an existing `data_dir` that etcd would not have put there.
fn foreign_entries(data_dir: &Path) -> Result<Vec<String>, Failure> {
    let entries = std::fs::read_dir(data_dir).map_err(|e| {
        Failure::new(format!(
            "cannot list {}: {e}; nothing was changed",
            data_dir.display()
        ))
    })?;
    let mut foreign: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !DATA_DIR_ENTRIES.contains(&n.as_str()))
        .collect();
    foreign.sort();
    Ok(foreign)
}

/// The etcd server that will run on the restored data dir.
#[derive(Debug, Clone)]
struct Server {
    path: PathBuf,
    version: EtcdVersion,
}

/// O(etcd_path) (which must answer `--version`), else `etcd` on PATH if it
/// answers; `None` when there is no server to ask.
fn find_server(args: &RestoreArgs) -> Result<Option<Server>, Failure> {
    match &args.etcd_path {
        Some(path) => {
            let runnable = path
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
            if !runnable {
                return Err(Failure::new(format!(
                    "etcd_path {} is not an executable file; nothing was changed",
                    path.display()
                )));
            }
            let version = query_version(path, &["--version"], "etcd").map_err(|e| {
                Failure::new(format!(
                    "cannot tell the version of etcd_path: {e}; nothing was changed"
                ))
            })?;
            Ok(Some(Server {
                path: path.clone(),
                version,
            }))
        }
        None => Ok(find_program("etcd").and_then(|path| {
            query_version(&path, &["--version"], "etcd")
                .ok()
                .map(|version| Server { path, version })
        })),
    }
}

fn check_tool(tool: &Tool) -> Result<(), Failure> {
    let ok = tool
        .program
        .metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if ok {
        Ok(())
    } else {
        Err(Failure::new(format!(
            "{} {} is not an executable file; nothing was changed",
            if tool.is_etcdutl {
                "etcdutl"
            } else {
                "etcdctl"
            },
            tool.program.display()
        )))
    }
}

/// Directories a run created for `data_dir`'s parent; removed again
/// (only while empty) unless the run succeeds, so that a failed run leaves
/// the host as it found it.
struct CreatedDirs(Vec<PathBuf>);

impl CreatedDirs {
    fn create(dir: &Path) -> Result<CreatedDirs, Failure> {
        let mut missing = Vec::new();
        let mut at = dir.to_path_buf();
        while !exists(&at) {
            missing.push(at.clone());
            match at.parent() {
                Some(p) if !p.as_os_str().is_empty() => at = p.to_path_buf(),
                _ => break,
            }
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::new(format!("cannot create {}: {e}", dir.display())))?;
        Ok(CreatedDirs(missing))
    }

    fn keep(&mut self) {
        self.0.clear();
    }
}

impl Drop for CreatedDirs {
    fn drop(&mut self) {
        // Deepest first; remove_dir refuses anything not empty.
        for dir in &self.0 {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Everything a run decides before changing anything. Check mode and the
/// real run both build it, so check mode refuses exactly what the real
/// run refuses.
struct Plan {
    skip_hash: bool,
    origin: Origin,
    uid: Option<u32>,
    gid: Option<u32>,
    info: SnapshotInfo,
    /// `data_dir`, normalized to `<parent>/<dir_name>`.
    data_dir: PathBuf,
    parent: PathBuf,
    dir_name: String,
    /// The marker describing the current data dir, and whether it is an
    /// old one inside it.
    before: Option<(Value, bool)>,
    /// The data dir already holds this restore: nothing to do.
    up_to_date: bool,
    /// The restore tool (None when up to date: not needed).
    tool: Option<Tool>,
    /// Version of the etcd server, if one was found.
    server_version: Option<EtcdVersion>,
    /// Version the restore tool reports, if it did.
    tool_version: Option<EtcdVersion>,
    data_dir_exists: bool,
    will_back_up: bool,
}

/// The declared default of `initial_cluster_token` (etcd's own default),
/// also used for an empty token.
fn declared_default_token() -> String {
    Restore::OPTIONS
        .iter()
        .find(|o| o.name == "initial_cluster_token")
        .and_then(|o| o.default_value().as_str().map(str::to_string))
        .unwrap_or_default()
}

fn plan(args: &RestoreArgs) -> Result<Plan, Failure> {
    let skip_hash = args.skip_hash_check.0;
    if args.name.trim().is_empty() {
        return Err(Failure::new("name must not be empty"));
    }
    let pairs = parse_initial_cluster(&args.initial_cluster)?;
    let own_urls: Vec<String> = pairs
        .iter()
        .filter(|(n, _)| *n == args.name)
        .map(|(_, u)| u.clone())
        .collect();
    if own_urls.is_empty() {
        return Err(Failure::new(format!(
            "initial_cluster has no entry for name {:?}",
            args.name
        )));
    }
    let peer_urls = match &args.initial_advertise_peer_urls {
        Some(List(urls)) => {
            let mut given = urls.clone();
            given.sort();
            given.dedup();
            if given != own_urls {
                return Err(Failure::new(format!(
                    "initial_advertise_peer_urls ({}) differ from {}'s URLs in initial_cluster ({})",
                    given.join(","),
                    args.name,
                    own_urls.join(",")
                )));
            }
            given
        }
        None => own_urls,
    };
    let uid = match args.owner.as_ref().and_then(id_text) {
        Some(o) => Some(resolve_user(&o)?),
        None => None,
    };
    let gid = match args.group.as_ref().and_then(id_text) {
        Some(g) => Some(resolve_group(&g)?),
        None => None,
    };
    let (parent, dir_name) = data_dir_parts(&args.data_dir)?;
    let data_dir = parent.join(&dir_name);

    // Before touching anything: the snapshot must be intact.
    let info: SnapshotInfo = inspect(&args.snapshot, !skip_hash).map_err(|e| {
        Failure::new(format!("{e}; nothing was changed"))
            .with("data_dir", data_dir.display().to_string())
    })?;
    let origin = Origin {
        snapshot_sha256: info.sha256.clone(),
        name: args.name.clone(),
        initial_cluster: pairs
            .iter()
            .map(|(n, u)| format!("{n}={u}"))
            .collect::<Vec<_>>()
            .join(","),
        initial_cluster_token: match args.initial_cluster_token.as_str() {
            "" => declared_default_token(),
            token => token.into(),
        },
        initial_advertise_peer_urls: peer_urls.join(","),
    };

    let before = current_marker(&data_dir);
    let up_to_date = data_dir.join("member").is_dir()
        && before.as_ref().and_then(|(m, _)| marker_origin(m)).as_ref() == Some(&origin);
    let data_dir_exists = exists(&data_dir);
    let mut plan = Plan {
        skip_hash,
        origin,
        uid,
        gid,
        info,
        data_dir,
        parent,
        dir_name,
        before,
        up_to_date,
        tool: None,
        server_version: None,
        tool_version: None,
        data_dir_exists,
        will_back_up: false,
    };
    if up_to_date {
        return Ok(plan);
    }

    check_parent_writable(&plan.parent)?;
    let server = find_server(args)?;
    let tool = choose_tool(args, server.as_ref())?;
    check_tool(&tool)?;
    let tool_version = query_version(
        &tool.program,
        &["version"],
        if tool.is_etcdutl {
            "etcdutl"
        } else {
            "etcdctl"
        },
    )
    .ok();
    if let Some(server) = &server {
        if let Some(why) = refusal(&server.version, tool.is_etcdutl, tool_version.as_ref()) {
            return Err(Failure::new(format!(
                "refusing to restore with {}: {why}; nothing was changed",
                tool.program.display()
            ))
            .with("server_version", server.version.to_string())
            .with("tool_version", tool_version.map(|v| v.to_string())));
        }
    }
    plan.server_version = server.map(|s| s.version);
    plan.tool_version = tool_version;
    plan.tool = Some(tool);
    if data_dir_exists {
        let dir = &plan.data_dir;
        if !dir.is_dir() {
            return Err(Failure::new(format!(
                "data_dir {} exists and is not a directory; nothing was changed",
                dir.display()
            )));
        }
        let foreign = foreign_entries(dir)?;
        if !foreign.is_empty() {
            let shown: Vec<&str> = foreign.iter().take(5).map(String::as_str).collect();
            return Err(Failure::new(format!(
                "data_dir {} is not an etcd data directory: it holds {}{} (etcd keeps only member/ there); refusing to move it aside; nothing was changed",
                dir.display(),
                shown.join(", "),
                if foreign.len() > shown.len() { ", ..." } else { "" }
            )));
        }
        ensure_not_in_use(dir)?;
        plan.will_back_up = std::fs::read_dir(dir).is_ok_and(|mut e| e.next().is_some());
    }
    Ok(plan)
}

fn restore(args: RestoreArgs, ctx: &Context) -> Result<Outcome, Failure> {
    let plan = plan(&args)?;
    let data_dir = plan.data_dir.clone();
    let marker_file = marker_path(&data_dir);
    let base = |o: Outcome| {
        o.with("data_dir", data_dir.display().to_string())
            .with("snapshot_sha256", plan.info.sha256.clone())
            .with("revision", plan.info.db.revision)
            .with("key_count", plan.info.db.total_keys)
            .with("initial_cluster", plan.origin.initial_cluster.clone())
    };
    let before_value = plan.before.as_ref().map(|(m, _)| m.clone());

    if plan.up_to_date {
        let mut msg = format!(
            "{} was already restored from this snapshot with the same cluster settings",
            data_dir.display()
        );
        let mut marker = before_value.clone().unwrap_or(Value::Null);
        let legacy = plan.before.as_ref().is_some_and(|(_, inside)| *inside);
        if legacy {
            // Markers of earlier versions lived inside the data dir, where
            // etcd logs "found invalid file/dir" at every start: move it out.
            if ctx.check_mode {
                msg.push_str(&format!(
                    "; would move its marker out of the data dir to {}",
                    marker_file.display()
                ));
            } else {
                if let (Some(id), Some(object)) = (dir_identity(&data_dir), marker.as_object_mut())
                {
                    object.insert(MARKER_DIR_ID.into(), Value::String(id));
                }
                write_marker(&marker_file, &marker, plan.uid, plan.gid)?;
                let inside = data_dir.join(LEGACY_MARKER);
                std::fs::remove_file(&inside).map_err(|e| {
                    Failure::new(format!(
                        "cannot remove the old marker {}: {e}",
                        inside.display()
                    ))
                })?;
                sync_dir(&data_dir)?;
                msg.push_str(&format!(
                    "; its marker was moved out of the data dir to {}",
                    marker_file.display()
                ));
            }
        }
        return Ok(base(Outcome::new(false, msg))
            .with("backup_dir", Value::Null)
            .with("marker_file", marker_file.display().to_string())
            .with("marker_migrated", legacy)
            .with("marker", marker));
    }
    let tool = plan.tool.clone().expect("planned a restore without a tool");

    let stamp = utc_stamp(SystemTime::now());
    let marker = {
        let mut m = serde_json::to_value(&plan.origin).expect("origin serializes");
        let extra = json!({
            "snapshot": args.snapshot.display().to_string(),
            "revision": plan.info.db.revision,
            "restored_at": stamp,
        });
        m.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        m
    };
    let diff = json!({
        "before": before_value.clone().unwrap_or_else(|| json!({})),
        "after": marker.clone(),
    });

    if ctx.check_mode {
        let backup = plan
            .will_back_up
            .then(|| backup_name(&data_dir, &stamp).display().to_string());
        let mut outcome = base(Outcome::new(
            true,
            format!(
                "would restore {} into {}{}",
                args.snapshot.display(),
                data_dir.display(),
                backup
                    .as_ref()
                    .map(|b| format!(", moving the current data dir to {b}"))
                    .unwrap_or_default()
            ),
        ))
        .with("backup_dir", backup)
        .with("marker_file", marker_file.display().to_string())
        .with("marker", before_value.unwrap_or(Value::Null))
        .with("server_version", version_text(&plan.server_version))
        .with("tool_version", version_text(&plan.tool_version))
        .with(
            "tool",
            tool_argv(
                &tool,
                &args.snapshot,
                &data_dir,
                &plan.origin,
                plan.skip_hash,
            ),
        );
        outcome.diff = Some(diff);
        return Ok(outcome);
    }

    let parent = plan.parent.clone();
    let mut created = CreatedDirs::create(&parent)?;
    let temp_prefix = format!("{}.restore-tmp-", plan.dir_name);
    let stale = remove_stale_temps(&parent, &temp_prefix);
    let temp = tempfile::Builder::new()
        .prefix(&temp_prefix)
        .tempdir_in(&parent)
        .map_err(|e| {
            Failure::new(format!(
                "cannot create a directory in {}: {e}",
                parent.display()
            ))
        })?;
    let lock = File::create(temp.path().join(TEMP_LOCK))
        .map_err(|e| Failure::new(format!("cannot create a lock file: {e}")))?;
    lock_file(&lock, true).map_err(|e| Failure::new(format!("cannot lock: {e}")))?;

    // The tools refuse an existing --data-dir: restore into a fresh subdirectory.
    let restored = temp.path().join("data");
    let argv = tool_argv(
        &tool,
        &args.snapshot,
        &restored,
        &plan.origin,
        plan.skip_hash,
    );
    let mut command = command_dying_with_us(&tool.program);
    command.args(&argv[1..]).current_dir(temp.path());
    if !tool.is_etcdutl {
        command.env("ETCDCTL_API", "3");
    }
    let output = command
        .output()
        .map_err(|e| Failure::new(format!("cannot run {}: {e}", argv[0])))?;
    if !output.status.success() {
        let digest = stderr_digest(&String::from_utf8_lossy(&output.stderr));
        let program = if tool.is_etcdutl {
            "etcdutl"
        } else {
            "etcdctl"
        };
        return Err(Failure::new(format!(
            "{program} snapshot restore failed ({}); nothing was changed: {}",
            output.status,
            if digest.is_empty() {
                "it printed nothing on stderr".to_string()
            } else {
                digest.join("\n")
            }
        ))
        .with("stderr_lines", digest)
        .with("tool", argv));
    }
    if !restored.join("member").is_dir() {
        return Err(Failure::new(format!(
            "{} succeeded but wrote no member directory; nothing was changed",
            argv.join(" ")
        )));
    }
    std::fs::set_permissions(&restored, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Failure::new(format!("cannot chmod {}: {e}", restored.display())))?;
    if plan.uid.is_some() || plan.gid.is_some() {
        chown_tree(&restored, plan.uid, plan.gid)?;
    }
    sync_dir(&restored)?;

    let mut backup_dir = None;
    if plan.data_dir_exists {
        // Checked again right before the move: etcd may have been started meanwhile.
        ensure_not_in_use(&data_dir)?;
        if plan.will_back_up {
            let backup = backup_name(&data_dir, &stamp);
            std::fs::rename(&data_dir, &backup).map_err(|e| {
                Failure::new(format!(
                    "cannot move {} aside to {}: {e}; nothing was changed",
                    data_dir.display(),
                    backup.display()
                ))
            })?;
            backup_dir = Some(backup);
        } else {
            // An empty directory holds no data; rmdir refuses if that changed.
            std::fs::remove_dir(&data_dir).map_err(|e| {
                Failure::new(format!(
                    "cannot replace empty {}: {e}; nothing was changed",
                    data_dir.display()
                ))
            })?;
        }
    }
    if let Err(e) = std::fs::rename(&restored, &data_dir) {
        let mut msg = format!(
            "cannot move the restored directory into {}: {e}",
            data_dir.display()
        );
        if let Some(backup) = &backup_dir {
            match std::fs::rename(backup, &data_dir) {
                Ok(()) => msg.push_str("; the previous data dir was put back"),
                Err(e2) => msg.push_str(&format!(
                    "; the previous data dir is at {} (moving it back failed: {e2})",
                    backup.display()
                )),
            }
        }
        return Err(Failure::new(msg));
    }
    sync_dir(&parent)?;
    drop(lock);
    drop(temp);
    created.keep();

    // The marker goes beside the data dir, tied to it by device and inode,
    // and only once the directory is in place: a crash before this point
    // leaves no marker claiming a restore that did not happen.
    let mut marker = marker;
    if let (Some(id), Some(object)) = (dir_identity(&data_dir), marker.as_object_mut()) {
        object.insert(MARKER_DIR_ID.into(), Value::String(id));
    }
    write_marker(&marker_file, &marker, plan.uid, plan.gid)?;

    let mut outcome = base(Outcome::new(
        true,
        format!(
            "restored {} (revision {}) into {}{}",
            args.snapshot.display(),
            plan.info.db.revision,
            data_dir.display(),
            backup_dir
                .as_ref()
                .map(|b| format!("; the previous data dir is now {}", b.display()))
                .unwrap_or_default()
        ),
    ))
    .with("backup_dir", backup_dir.map(|b| b.display().to_string()))
    .with("server_version", version_text(&plan.server_version))
    .with("tool_version", version_text(&plan.tool_version))
    .with("tool", argv)
    .with("marker_file", marker_file.display().to_string())
    .with("marker", marker);
    if !stale.is_empty() {
        outcome = outcome.with("removed_temp_dirs", stale);
    }
    outcome.diff = Some(diff);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_cluster_string_and_mapping_normalize_alike() {
        let s = parse_initial_cluster(&json!("b=http://h2:2380, a=http://h1:2380")).unwrap();
        let m = parse_initial_cluster(&json!({"a": "http://h1:2380", "b": ["http://h2:2380"]}))
            .unwrap();
        assert_eq!(s, m);
        assert_eq!(s[0], ("a".into(), "http://h1:2380".into()));
        assert!(parse_initial_cluster(&json!("a")).is_err());
        assert!(parse_initial_cluster(&json!({"a": 1})).is_err());
    }

    /// etcdctl 3.4's stderr for a database bbolt refuses (captured from a
    /// real run): the panic line must lead, the goroutine stack must go.
    const PANIC_STDERR: &str = r#"{"level":"info","ts":1796304198.073656,"caller":"snapshot/v3_snapshot.go:296","msg":"restoring snapshot","path":"trash.db","wal-dir":"r/member/wal","data-dir":"r","snap-dir":"r/member/snap"}
2026-12-03 13:23:18.074140 C | mvcc/backend: cannot open database at r/member/snap/db (invalid database)
panic: cannot open database at r/member/snap/db (invalid database)

goroutine 1 [running]:
github.com/coreos/pkg/capnslog.(*PackageLogger).Panicf(0xc0001a2960?, {0xd6e38f?, 0xc00016cff0?}, {0xc00016d040?, 0xc00016cff0?, 0x9abe66?})
	github.com/coreos/pkg/capnslog/pkg_logger.go:83 +0xbb
go.etcd.io/etcd/mvcc/backend.newBackend({{0xc0001a2960, 0x16}, 0x5f5e100, 0x2710, {0x0, 0x0}, 0x280000000, 0x0, 0x0})
	go.etcd.io/etcd/mvcc/backend/backend.go:164 +0x3fd
go.etcd.io/etcd/etcdctl/ctlv3.Start()
	go.etcd.io/etcd/etcdctl/ctlv3/ctl_nocov.go:26 +0x97
main.main()
	go.etcd.io/etcd/etcdctl/main.go:35 +0x65
"#;

    #[test]
    fn stderr_digest_leads_with_the_panic_line_and_drops_the_stack() {
        let lines = stderr_digest(PANIC_STDERR);
        assert_eq!(
            lines,
            vec![
                "panic: cannot open database at r/member/snap/db (invalid database)",
                "2026-12-03 13:23:18.074140 C | mvcc/backend: cannot open database at r/member/snap/db (invalid database)",
            ]
        );
        let fatal = r#"{"level":"info","msg":"restoring snapshot"}
{"level":"fatal","msg":"failed to unmarshal mvccpb.KeyValue","error":"proto: wrong wireType = 7 for field Key","stacktrace":"go.etcd.io/etcd/mvcc.restoreChunk\n\tgo.etcd.io/etcd/mvcc/kvstore.go:538"}"#;
        assert_eq!(
            stderr_digest(fatal),
            vec!["fatal: failed to unmarshal mvccpb.KeyValue (proto: wrong wireType = 7 for field Key)"]
        );
        // Nothing recognisable: the last lines, still without a stack.
        assert_eq!(
            stderr_digest("one\ntwo\ngoroutine 1 [running]:\nmain.main()\n"),
            vec!["one", "two"]
        );
        assert!(stderr_digest("").is_empty());
    }

    #[test]
    fn data_dirs_that_name_no_directory_are_refused() {
        for bad in ["/", "", "..", "/var/lib/..", "."] {
            assert!(data_dir_parts(Path::new(bad)).is_err(), "{bad:?}");
        }
        let (parent, name) = data_dir_parts(Path::new("/var/lib/etcd/")).unwrap();
        assert_eq!(
            (parent.as_path(), name.as_str()),
            (Path::new("/var/lib"), "etcd")
        );
        assert_eq!(
            marker_path(&parent.join(&name)),
            Path::new("/var/lib/etcd.etcd-restore.json")
        );
    }
}
