//! `step: host`: what one inventory host says about its member, read on that
//! host in one module run: the service state (the status command's exit
//! code and output), the log tail (the log command's output) and the WAL and
//! snapshot files of the data dir. The result is the [`HostFacts`] the
//! diagnosis takes in `hosts`.
//!
//! Everything here only reads: the two commands are the operator's
//! read-only commands (`systemctl is-active etcd`, `journalctl ...`), run
//! with `/bin/sh -c` and a time limit; the data dir is listed, never opened.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::host::HostFacts;

/// How long one of the host's commands may run before it is killed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The most of a command's output kept (its end: a log's newest lines).
pub const MAX_OUTPUT: usize = 1 << 20;

/// Who the host is, as the inventory says, and how to read its member.
#[derive(Debug, Clone)]
pub struct HostInput {
    /// Inventory host name.
    pub host: String,
    /// The member's etcd name.
    pub member_name: Option<String>,
    /// The member's peer URL.
    pub peer_url: String,
    /// The command that starts etcd there (for the fix commands).
    pub start_command: Option<String>,
    /// The member's data dir.
    pub data_dir: String,
    /// Says whether etcd runs (exit code 0: it does).
    pub status_command: String,
    /// Prints the last lines of the member's log.
    pub log_command: String,
}

/// What a command did: its exit code (none when it could not run or was
/// killed) and its standard output and error, each cut to [`MAX_OUTPUT`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOutput {
    /// The exit code.
    pub rc: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error, or why the command could not run.
    pub stderr: String,
}

/// Runs `command` with `/bin/sh -c`, no input, at most `timeout`; a command that
/// outlasts it is killed with every process it started (its own process group).
pub async fn run_command(command: &str, timeout: Duration) -> CommandOutput {
    let spawned = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            return CommandOutput {
                rc: None,
                stdout: String::new(),
                stderr: format!("cannot run /bin/sh: {e}"),
            }
        }
    };
    let group = child.id();
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let work = async {
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let read_out = async {
            if let Some(s) = out.as_mut() {
                let _ = s.read_to_end(&mut o).await;
            }
        };
        let read_err = async {
            if let Some(s) = err.as_mut() {
                let _ = s.read_to_end(&mut e).await;
            }
        };
        tokio::join!(read_out, read_err);
        let status = child.wait().await;
        (status, o, e)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok((status, o, e)) => {
            let (rc, mut stderr) = match status {
                Ok(s) => (s.code(), tail_text(&e)),
                Err(why) => (None, format!("waiting for the command failed: {why}")),
            };
            if rc.is_none() && stderr.is_empty() {
                stderr = "the command was killed by a signal".into();
            }
            CommandOutput {
                rc,
                stdout: tail_text(&o),
                stderr,
            }
        }
        // the shell and whatever it started (`journalctl`, `tail`): dropping the child
        // (kill_on_drop) then reaps the shell
        Err(_) => {
            if let Some(pgid) = group.and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: kill(2) on the process group this function created
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
            }
            CommandOutput {
                rc: None,
                stdout: String::new(),
                stderr: format!(
                    "the command did not finish in {} s and was killed",
                    timeout.as_secs()
                ),
            }
        }
    }
}

/// The end of `bytes` (at most [`MAX_OUTPUT`]) as text, invalid UTF-8 replaced.
fn tail_text(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(MAX_OUTPUT);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// The regular files directly in `<data_dir>/member/wal` and
/// `<data_dir>/member/snap`, one path a line (as `find DIRS -maxdepth 1 -type f`
/// prints them), and 0 when both directories could be read, 1 otherwise
/// (what could be read is still listed).
pub fn list_data_files(data_dir: &Path) -> (String, i32) {
    let mut lines = Vec::new();
    let mut rc = 0;
    for sub in ["member/wal", "member/snap"] {
        let dir = data_dir.join(sub);
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                let mut names: Vec<String> = entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .map(|e| e.path().display().to_string())
                    .collect();
                names.sort();
                lines.extend(names);
            }
            Err(_) => rc = 1,
        }
    }
    (lines.join("\n"), rc)
}

/// Reads the host: both commands at once, then the data dir.
pub async fn read_host(input: &HostInput) -> HostFacts {
    let (status, log) = tokio::join!(
        run_command(&input.status_command, COMMAND_TIMEOUT),
        run_command(&input.log_command, COMMAND_TIMEOUT),
    );
    let (data_files, data_files_rc) = list_data_files(Path::new(&input.data_dir));
    HostFacts {
        host: input.host.clone(),
        name: input.member_name.clone(),
        peer_url: input.peer_url.clone(),
        service_rc: status.rc.map(Value::from),
        service_output: Some(format!("{}{}", status.stdout, status.stderr)),
        log: Some(format!("{}\n{}", log.stdout, log.stderr)),
        start_command: input.start_command.clone(),
        data_dir: Some(input.data_dir.clone()),
        data_files: Some(data_files),
        data_files_rc: Some(Value::from(data_files_rc)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(command: &str, timeout: Duration) -> CommandOutput {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run_command(command, timeout))
    }

    #[test]
    fn a_command_gives_its_code_and_both_outputs() {
        let out = run(
            "echo active; echo warn >&2; exit 3",
            Duration::from_secs(30),
        );
        assert_eq!(out.rc, Some(3));
        assert_eq!(out.stdout, "active\n");
        assert_eq!(out.stderr, "warn\n");
    }

    #[test]
    fn a_command_that_hangs_is_killed_with_what_it_started_and_has_no_code() {
        // a duration no other process uses, to find the sleep by
        let marker = format!("sleep 9{}", std::process::id());
        let started = std::time::Instant::now();
        // the shell waits on a child that holds the output pipe open
        let out = run(&format!("{marker} & wait"), Duration::from_millis(300));
        assert_eq!(out.rc, None);
        assert!(out.stderr.contains("did not finish"), "{out:?}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not waited for"
        );
        let left = std::process::Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .unwrap();
        assert!(left.stdout.is_empty(), "the sleep survived");
    }

    #[test]
    fn the_listing_has_the_regular_files_of_wal_and_snap_only() {
        let dir = std::env::temp_dir().join(format!("doctor-local-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("member/wal/sub")).unwrap();
        std::fs::write(
            dir.join("member/wal/0000000000000000-0000000000000000.wal"),
            b"",
        )
        .unwrap();
        std::fs::write(dir.join("member/wal/sub/x.wal"), b"").unwrap();
        let (listing, rc) = list_data_files(&dir);
        assert_eq!(rc, 1, "member/snap is missing");
        assert_eq!(
            listing,
            dir.join("member/wal/0000000000000000-0000000000000000.wal")
                .display()
                .to_string()
        );
        std::fs::create_dir_all(dir.join("member/snap")).unwrap();
        std::fs::write(dir.join("member/snap/db"), b"").unwrap();
        let (listing, rc) = list_data_files(&dir);
        assert_eq!(rc, 0);
        assert_eq!(listing.lines().count(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
