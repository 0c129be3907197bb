//! The local transport: commands run as `/bin/sh -c` child processes, in a process group of
//! their own (`PR_SET_PDEATHSIG` asked, best effort); a command without stdin runs beside
//! a watcher that kills it when the agent goes (see `watch::WATCHED`).

use super::{ExecOutput, TransportError};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

/// Runs `cmd` with `/bin/sh -c`, writing `stdin` if given, and waits for it.
pub async fn exec(cmd: &str, stdin: Option<&[u8]>) -> Result<ExecOutput, TransportError> {
    let parent = std::process::id() as libc::pid_t;
    let mut command = tokio::process::Command::new("/bin/sh");
    match stdin {
        Some(_) => command.arg("-c").arg(cmd),
        // watched as a remote command is: killed when its stdin, held open by the agent
        // until it exits, ends (the run interrupted, or the agent killed)
        None => command
            .arg("-c")
            .arg(super::watch::WATCHED)
            .arg("etcd-agent")
            .arg(cmd),
    };
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // a group of its own, so that an interrupted run kills what the command started too
        .process_group(0);
    // SAFETY: prctl and getppid are async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(move || {
            // best effort: killed with the spawning thread (the watcher is what the tests prove)
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| TransportError::Failed(format!("cannot run /bin/sh: {e}")))?;
    // the watcher (same group as the shell) must outlive the shell to do its work
    let group = GroupGuard(child.id().filter(|_| stdin.is_some()));
    let held = match (stdin, child.stdin.take()) {
        (Some(data), Some(mut pipe)) => {
            let data = data.to_vec();
            tokio::spawn(async move {
                let _ = pipe.write_all(&data).await;
                let _ = pipe.shutdown().await;
            });
            None
        }
        (_, pipe) => pipe,
    };
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| TransportError::Failed(format!("waiting for /bin/sh: {e}")))?;
    std::mem::forget(group);
    drop(held);
    Ok(ExecOutput {
        rc: super::watch::exit_code(&out.status),
        stdout: out.stdout,
        stderr: out.stderr,
    })
}

/// Kills the process group of a command whose wait was dropped (an interrupted run): tokio's
/// `kill_on_drop` reaches the shell only, not what it started.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // SAFETY: plain kill(2) of the group this command leads; it is not reaped yet
            // (the child handle is dropped after this guard), so the id is not reused.
            unsafe {
                libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
            }
        }
    }
}
