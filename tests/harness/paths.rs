//! Well-known paths: the repository root, built module binaries, and the
//! etcd / ssh executables installed on the machine.

use std::path::{Path, PathBuf};

/// The etcd server binary (Debian package `etcd-server`, 3.4.x).
pub const ETCD_BIN: &str = "/usr/bin/etcd";
/// The etcd v3 command-line client (Debian package `etcd-client`).
pub const ETCDCTL_BIN: &str = "/usr/bin/etcdctl";
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
