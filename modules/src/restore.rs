//! `etcd_restore`: rebuild a member's data dir from a snapshot after quorum
//! loss (the runbooks' `etcdctl snapshot restore` step), without ever
//! deleting data.
//!
//! Order of work, so that every early exit leaves the host as it was: the
//! snapshot's sha256 trailer is checked first; the restore tool then writes
//! into a fresh temporary directory beside `data_dir`; only a complete
//! restore is moved into place, an existing `data_dir` being renamed to
//! `<data_dir>.bak-<UTC timestamp>` first. A marker file
//! (`<data_dir>/.etcd-restore.json`, beside `member/`; etcd 3.4 only warns
//! about unknown entries in a data dir) records what the directory was
//! restored from, which makes a second run with the same inputs a no-op.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::protocol::lenient::{Bool, List};
use crate::protocol::{ArgType, Context, Failure, Module, OptionDoc, Outcome, ReturnDoc};
use crate::snapshot_file::{
    id_text, inspect, lock_file, resolve_group, resolve_user, sync_dir, utc_stamp, SnapshotInfo,
};

/// The marker file inside a restored data dir.
pub const MARKER: &str = ".etcd-restore.json";
/// Lock file inside a temporary restore directory, held while it is in use.
const TEMP_LOCK: &str = ".etcd-restore.lock";
/// etcd's default `--initial-cluster-token`.
const DEFAULT_TOKEN: &str = "etcd-cluster";

/// Arguments of `etcd_restore`.
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
    /// `--initial-cluster-token`.
    #[serde(default)]
    pub initial_cluster_token: Option<String>,
    /// `--initial-advertise-peer-urls`.
    #[serde(default)]
    pub initial_advertise_peer_urls: Option<List>,
    /// Accept a snapshot without (or with a wrong) sha256 trailer.
    #[serde(default)]
    pub skip_hash_check: Option<Bool>,
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
        "Idempotent: the restored directory records its origin in C(<data_dir>/.etcd-restore.json) (snapshot sha256, name, initial cluster, token, peer URLs); a data dir already restored with the same values is left alone, even after etcd has run on it.",
        "Does not contact etcd.",
    ];
    const USES_CONNECTION: bool = false;
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
            "etcdutl to use for the restore (etcd 3.5 and later); default: etcdutl on PATH if present. Takes precedence over etcdctl_path.",
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
            description: "Contents of <data_dir>/.etcd-restore.json after the run.",
            returned: "success",
            ty: "dict",
        },
    ];
    type Args = RestoreArgs;

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

fn choose_tool(args: &RestoreArgs) -> Result<Tool, Failure> {
    if let Some(p) = &args.etcdutl_path {
        return Ok(Tool {
            program: p.clone(),
            is_etcdutl: true,
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

/// The marker of an existing data dir, if it has a readable one.
fn read_marker(data_dir: &Path) -> Option<Value> {
    let text = std::fs::read(data_dir.join(MARKER)).ok()?;
    serde_json::from_slice(&text).ok()
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

fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
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

fn write_marker(dir: &Path, marker: &Value) -> Result<(), Failure> {
    let path = dir.join(MARKER);
    let mut file = File::create(&path)
        .map_err(|e| Failure::new(format!("cannot write {}: {e}", path.display())))?;
    let text = serde_json::to_string_pretty(marker).expect("marker serializes");
    file.write_all(text.as_bytes())
        .and_then(|_| file.write_all(b"\n"))
        .and_then(|_| file.sync_all())
        .map_err(|e| Failure::new(format!("cannot write {}: {e}", path.display())))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Failure::new(format!("cannot chmod {}: {e}", path.display())))
}

fn restore(args: RestoreArgs, ctx: &Context) -> Result<Outcome, Failure> {
    let skip_hash = args.skip_hash_check.is_some_and(|b| b.0);
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
    let origin = Origin {
        snapshot_sha256: String::new(),
        name: args.name.clone(),
        initial_cluster: pairs
            .iter()
            .map(|(n, u)| format!("{n}={u}"))
            .collect::<Vec<_>>()
            .join(","),
        initial_cluster_token: args
            .initial_cluster_token
            .clone()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| DEFAULT_TOKEN.into()),
        initial_advertise_peer_urls: peer_urls.join(","),
    };
    let uid = match args.owner.as_ref().and_then(id_text) {
        Some(o) => Some(resolve_user(&o)?),
        None => None,
    };
    let gid = match args.group.as_ref().and_then(id_text) {
        Some(g) => Some(resolve_group(&g)?),
        None => None,
    };

    // Before touching anything: the snapshot must be intact.
    let info: SnapshotInfo = inspect(&args.snapshot, !skip_hash).map_err(|e| {
        Failure::new(format!("{e}; nothing was changed"))
            .with("data_dir", args.data_dir.display().to_string())
    })?;
    let origin = Origin {
        snapshot_sha256: info.sha256.clone(),
        ..origin
    };
    let data_dir = args.data_dir.clone();
    let before = read_marker(&data_dir);
    let data_dir_exists = exists(&data_dir);
    let base = |o: Outcome| {
        o.with("data_dir", data_dir.display().to_string())
            .with("snapshot_sha256", info.sha256.clone())
            .with("revision", info.db.revision)
            .with("key_count", info.db.total_keys)
            .with("initial_cluster", origin.initial_cluster.clone())
    };

    if data_dir.join("member").is_dir()
        && before.as_ref().and_then(marker_origin).as_ref() == Some(&origin)
    {
        return Ok(base(Outcome::new(
            false,
            format!(
                "{} was already restored from this snapshot with the same cluster settings",
                data_dir.display()
            ),
        ))
        .with("backup_dir", Value::Null)
        .with("marker", before.unwrap_or(Value::Null)));
    }
    if data_dir_exists {
        ensure_not_in_use(&data_dir)?;
    }

    let stamp = utc_stamp(SystemTime::now());
    let marker = {
        let mut m = serde_json::to_value(&origin).expect("origin serializes");
        let extra = json!({
            "snapshot": args.snapshot.display().to_string(),
            "revision": info.db.revision,
            "restored_at": stamp,
        });
        m.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        m
    };
    let will_back_up = data_dir_exists && !is_empty_dir(&data_dir);
    let diff = json!({
        "before": before.clone().unwrap_or_else(|| json!({})),
        "after": marker.clone(),
    });
    let tool = choose_tool(&args);

    if ctx.check_mode {
        let backup = will_back_up.then(|| backup_name(&data_dir, &stamp).display().to_string());
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
        .with("marker", before.unwrap_or(Value::Null));
        if let Ok(tool) = &tool {
            outcome = outcome.with(
                "tool",
                tool_argv(tool, &args.snapshot, &data_dir, &origin, skip_hash),
            );
        }
        outcome.diff = Some(diff);
        return Ok(outcome);
    }
    let tool = tool?;

    let parent = parent_of(&data_dir);
    let dir_name = data_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Failure::new("data_dir must name a directory"))?
        .to_string();
    std::fs::create_dir_all(&parent)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", parent.display())))?;
    let temp_prefix = format!("{dir_name}.restore-tmp-");
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
    let argv = tool_argv(&tool, &args.snapshot, &restored, &origin, skip_hash);
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]).current_dir(temp.path());
    if !tool.is_etcdutl {
        command.env("ETCDCTL_API", "3");
    }
    let output = command
        .output()
        .map_err(|e| Failure::new(format!("cannot run {}: {e}", argv[0])))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(10).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(Failure::new(format!(
            "{} failed ({}); nothing was changed: {}",
            argv.join(" "),
            output.status,
            tail.join("\n")
        ))
        .with("tool", argv));
    }
    if !restored.join("member").is_dir() {
        return Err(Failure::new(format!(
            "{} succeeded but wrote no member directory; nothing was changed",
            argv.join(" ")
        )));
    }
    write_marker(&restored, &marker)?;
    std::fs::set_permissions(&restored, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Failure::new(format!("cannot chmod {}: {e}", restored.display())))?;
    if uid.is_some() || gid.is_some() {
        chown_tree(&restored, uid, gid)?;
    }
    sync_dir(&restored)?;

    let mut backup_dir = None;
    if data_dir_exists {
        if will_back_up {
            // Checked again right before the move: etcd may have been started meanwhile.
            ensure_not_in_use(&data_dir)?;
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

    let mut outcome = base(Outcome::new(
        true,
        format!(
            "restored {} (revision {}) into {}{}",
            args.snapshot.display(),
            info.db.revision,
            data_dir.display(),
            backup_dir
                .as_ref()
                .map(|b| format!("; the previous data dir is now {}", b.display()))
                .unwrap_or_default()
        ),
    ))
    .with("backup_dir", backup_dir.map(|b| b.display().to_string()))
    .with("tool", argv)
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
}
