//! Well-known paths: the repository root, built module binaries, and the
//! executables installed on the machine: ssh, and the etcd under test
//! (`ETCD_VERSION=3.4|3.5|3.6` or `ETCD_BIN_DIR`, see [`etcd_under_test`]).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Version of etcd tested when neither `ETCD_VERSION` nor `ETCD_BIN_DIR` is set.
pub const DEFAULT_ETCD_VERSION: &str = "3.4";
/// Where etcd 3.4 (Debian packages `etcd-server`, `etcd-client`) lives.
const SYSTEM_BIN_DIR: &str = "/usr/bin";

/// The etcd under test: server and client binaries of one version.
#[derive(Debug, Clone)]
pub struct EtcdUnderTest {
    /// What was asked for: `3.4`, `3.5`, `3.6`, a full version, or `dir:<path>`.
    pub label: String,
    /// Directory holding `etcd` and `etcdctl` (and `etcdutl` from 3.5 on).
    pub bin_dir: PathBuf,
    /// `(major, minor)` of the server, from `etcd --version`.
    pub minor: (u32, u32),
    /// Full server version, e.g. `3.6.15`.
    pub version: String,
}

/// Directory of the pinned binaries of `version` (e.g. `3.5.30`) installed
/// by `scripts/install-etcd-versions`.
pub fn deps_bin_dir(version: &str) -> PathBuf {
    repo_root()
        .join(".deps")
        .join("etcd")
        .join(version)
        .join("bin")
}

/// The pinned full version a short `ETCD_VERSION` selects.
fn pinned(version: &str) -> &str {
    match version {
        "3.5" => "3.5.30",
        "3.6" => "3.6.15",
        full => full,
    }
}

/// `(major, minor)` and the full version of `etcd --version` of `etcd`.
/// Panics with the command's output if it does not say.
pub fn etcd_version_of(etcd: &Path) -> ((u32, u32), String) {
    let out = std::process::Command::new(etcd)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("run {} --version: {e}", etcd.display()));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let full = text
        .lines()
        .find_map(|l| l.strip_prefix("etcd Version:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("{} --version printed no version: {text}", etcd.display()));
    let mut parts = full.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => ((major, minor), full),
        _ => panic!("{} --version: cannot parse {full:?}", etcd.display()),
    }
}

/// Resolves the etcd under test from `ETCD_BIN_DIR` (a directory holding
/// `etcd` and `etcdctl`) or `ETCD_VERSION` (`3.4` default: `/usr/bin`;
/// `3.5`, `3.6` or a full version: `.deps/etcd/<version>/bin`). Panics
/// with a hint when the binaries are not installed.
fn resolve() -> EtcdUnderTest {
    let dir_var = std::env::var("ETCD_BIN_DIR").ok().filter(|d| !d.is_empty());
    let version_var = std::env::var("ETCD_VERSION").ok().filter(|v| !v.is_empty());
    let (label, bin_dir) = match (dir_var, version_var) {
        (Some(dir), _) => (format!("dir:{dir}"), PathBuf::from(dir)),
        (None, Some(v)) if v == "3.4" => (v, PathBuf::from(SYSTEM_BIN_DIR)),
        (None, Some(v)) => {
            let dir = deps_bin_dir(pinned(&v));
            (v, dir)
        }
        (None, None) => (
            DEFAULT_ETCD_VERSION.to_string(),
            PathBuf::from(SYSTEM_BIN_DIR),
        ),
    };
    for tool in ["etcd", "etcdctl"] {
        let path = bin_dir.join(tool);
        if !path.is_file() {
            panic!(
                "etcd under test ({label}): {} is not installed; run scripts/install-etcd-versions \
                 (ETCD_VERSION=3.4|3.5|3.6, or ETCD_BIN_DIR=<dir with etcd and etcdctl>)",
                path.display()
            );
        }
    }
    let (minor, version) = etcd_version_of(&bin_dir.join("etcd"));
    EtcdUnderTest {
        label,
        bin_dir,
        minor,
        version,
    }
}

/// The etcd under test, resolved once per test process (see [`resolve`]).
pub fn etcd_under_test() -> &'static EtcdUnderTest {
    static CHOSEN: OnceLock<EtcdUnderTest> = OnceLock::new();
    CHOSEN.get_or_init(resolve)
}

/// Leaks a path as a `&'static str` (resolved once, used everywhere).
fn static_path(path: PathBuf) -> &'static str {
    Box::leak(path.display().to_string().into_boxed_str())
}

/// The etcd server binary under test.
pub fn etcd_bin() -> &'static str {
    static BIN: OnceLock<&'static str> = OnceLock::new();
    BIN.get_or_init(|| static_path(etcd_under_test().bin_dir.join("etcd")))
}

/// The etcdctl of the etcd under test.
pub fn etcdctl_bin() -> &'static str {
    static BIN: OnceLock<&'static str> = OnceLock::new();
    BIN.get_or_init(|| static_path(etcd_under_test().bin_dir.join("etcdctl")))
}

/// The etcdutl of the etcd under test; `None` for 3.4 (which has none).
pub fn etcdutl_bin() -> Option<&'static str> {
    static BIN: OnceLock<Option<&'static str>> = OnceLock::new();
    *BIN.get_or_init(|| {
        let path = etcd_under_test().bin_dir.join("etcdutl");
        path.is_file().then(|| static_path(path))
    })
}

/// True if the server under test is at least `major.minor`.
pub fn etcd_at_least(major: u32, minor: u32) -> bool {
    etcd_under_test().minor >= (major, minor)
}

/// A `PATH` value that finds the tools of the etcd under test first, then
/// the system directories (for module runs that look tools up on PATH).
pub fn etcd_tools_path() -> String {
    format!(
        "{}:/usr/local/bin:/usr/bin:/bin",
        etcd_under_test().bin_dir.display()
    )
}

/// Inventory variables naming the etcd under test's binaries to playbooks
/// and modules (`etcd_path`, `etcdctl_path`, and `etcdutl_path` when it has
/// one), as `key=value` INI words.
pub fn etcd_inventory_vars() -> Vec<String> {
    let mut vars = vec![
        format!("etcd_path={}", etcd_bin()),
        format!("etcdctl_path={}", etcdctl_bin()),
    ];
    if let Some(etcdutl) = etcdutl_bin() {
        vars.push(format!("etcdutl_path={etcdutl}"));
    }
    vars
}

/// The OpenSSH server binary.
pub const SSHD_BIN: &str = "/usr/sbin/sshd";
/// The OpenSSH client binary.
pub const SSH_BIN: &str = "/usr/bin/ssh";
/// The OpenSSH key generator.
pub const SSH_KEYGEN_BIN: &str = "/usr/bin/ssh-keygen";

/// Root of the workspace (the `CARGO_MANIFEST_DIR` of the root package).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Directory where `scripts/build-modules` installs the module binaries
/// (`<repo>/playbooks/library`); also used as `ANSIBLE_LIBRARY`.
pub fn module_library_dir() -> PathBuf {
    repo_root().join("playbooks").join("library")
}

/// Path of the built Ansible module binary `name` in `playbooks/library`.
///
/// Panics with a hint to run `scripts/build-modules` if it does not exist.
pub fn module_binary(name: &str) -> PathBuf {
    let path = module_library_dir().join(name);
    if !path.is_file() {
        panic!(
            "module binary {} not found: run scripts/build-modules first",
            path.display()
        );
    }
    path
}

/// The last `lines` lines of the text file at `path`, for panic messages.
/// Returns a placeholder text if the file cannot be read.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            all[start..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}
