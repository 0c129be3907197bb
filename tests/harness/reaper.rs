//! Run a program under a small subreaper wrapper (`reaper.py`).
//!
//! PID 1 on the test machines does not reap orphans, so any process that
//! daemonizes (ssh `ControlPersist` masters spawned by Ansible, processes a
//! test starts in the background over ssh) would leave a zombie forever.
//! The wrapper adopts such orphans and kills + reaps them all when the
//! wrapped program exits. The wrapper itself is a [`guarded_command`].

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::guarded_command;

/// Source of the wrapper script, written next to whoever needs it.
const REAPER_PY: &str = include_str!("reaper.py");

/// Python used for the wrapper: Debian's, independent of pyenv shims.
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Writes the wrapper script into `dir` (if not there yet); returns its path.
pub fn install_reaper(dir: &Path) -> PathBuf {
    let path = dir.join("reaper.py");
    if !path.exists() {
        std::fs::write(&path, REAPER_PY)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
    path
}

/// A guarded [`Command`] that runs `program` under the subreaper wrapper
/// stored in `scratch_dir`. Signals sent to the returned child's pid
/// (`SIGTERM`, `SIGINT`, `SIGHUP`) are forwarded to `program`; when `program`
/// exits, every leftover descendant is killed, and the wrapper exits with
/// `program`'s status (`128+N` if it died of signal N).
pub fn reaped_command(scratch_dir: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let script = install_reaper(scratch_dir);
    let mut cmd = guarded_command(python());
    cmd.arg("-S").arg(script).arg(program);
    cmd
}
