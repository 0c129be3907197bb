//! Scratch directories: `$TMPDIR/etcd-agent-<kind>-p<pid>-XXXXXX`.
//!
//! Removed on drop like any [`TempDir`]. A test process killed with
//! `SIGKILL` cannot run destructors, so the first scratch dir a process
//! creates also removes leftovers of processes (pid in the name) that no
//! longer exist.

use std::sync::Once;

use tempfile::TempDir;

use crate::process::pid_alive;

/// Name prefix of every harness scratch dir.
pub const SCRATCH_PREFIX: &str = "etcd-agent-";

static CLEAN_STALE: Once = Once::new();

/// Creates a scratch dir for `kind` (e.g. `cluster-s1`, `sshd`, `ansible`).
pub fn scratch_dir(kind: &str) -> TempDir {
    CLEAN_STALE.call_once(remove_stale);
    tempfile::Builder::new()
        .prefix(&format!("{SCRATCH_PREFIX}{kind}-p{}-", std::process::id()))
        .tempdir()
        .unwrap_or_else(|e| panic!("create scratch dir for {kind}: {e}"))
}

/// Owner pid encoded in a scratch dir name (`...-p<pid>-...`).
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(SCRATCH_PREFIX)?;
    rest.split('-')
        .filter_map(|part| part.strip_prefix('p'))
        .find_map(|pid| pid.parse::<u32>().ok())
}

fn remove_stale() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = owner_pid(&name) {
            if pid != std::process::id() && !pid_alive(pid) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}
