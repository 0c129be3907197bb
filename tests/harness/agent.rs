//! The `etcd-agent` binary for end-to-end tests: built once per test
//! process, run with a clean environment.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::paths::repo_root;

/// Builds `etcd-agent` (debug) once per test process and returns its path.
/// `scripts/test` builds the workspace first, so this is normally a no-op.
pub fn agent_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = repo_root();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args(["build", "-q", "-p", "etcd-agent"])
            .current_dir(&root)
            .output()
            .expect("run cargo build -p etcd-agent");
        assert!(
            out.status.success(),
            "cargo build -p etcd-agent failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"))
            .join("debug")
            .join("etcd-agent")
    })
}

/// A command running the agent in `dir` with `ANSIBLE_CONFIG` set to
/// `ansible_config` (a missing file means none), no inherited `ANSIBLE_*`
/// or `RUST_LOG` settings, and no stdin.
pub fn agent_command(dir: &Path, ansible_config: &Path) -> Command {
    let mut cmd = Command::new(agent_binary());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ANSIBLE_") {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(dir)
        .env("ANSIBLE_CONFIG", ansible_config)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}
