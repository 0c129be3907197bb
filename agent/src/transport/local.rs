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
    let stdout = Collector::start(child.stdout.take());
    let stderr = Collector::start(child.stderr.take());
    let status = child
        .wait()
        .await
        .map_err(|e| TransportError::Failed(format!("waiting for /bin/sh: {e}")))?;
    // a process the command left running in the background may hold its output open: as
    // Ansible's run_command, stop reading once the command has exited and the output has
    // been quiet for a moment
    let (stdout, stderr) = Collector::finish(stdout, stderr).await;
    std::mem::forget(group);
    drop(held);
    Ok(ExecOutput {
        rc: super::watch::exit_code(&status),
        stdout,
        stderr,
    })
}

/// Reads one output pipe of a command into a buffer, in the background.
struct Collector {
    data: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Collector {
    fn start<R: tokio::io::AsyncRead + Unpin + Send + 'static>(pipe: Option<R>) -> Self {
        let data = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let task = pipe.map(|mut pipe| {
            let data = data.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = pipe.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut d) = data.lock() {
                        d.extend_from_slice(&buf[..n]);
                    }
                }
            })
        });
        Collector { data, task }
    }

    fn len(&self) -> usize {
        self.data.lock().map(|d| d.len()).unwrap_or(0)
    }

    fn done(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    fn take(self) -> Vec<u8> {
        if let Some(t) = self.task {
            t.abort();
        }
        std::mem::take(&mut *self.data.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Both pipes' output once they closed, or once neither grew for [`QUIET`].
    async fn finish(out: Collector, err: Collector) -> (Vec<u8>, Vec<u8>) {
        const QUIET: std::time::Duration = std::time::Duration::from_millis(500);
        let mut seen = (out.len(), err.len());
        let mut quiet_since = std::time::Instant::now();
        while !(out.done() && err.done()) {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            let now = (out.len(), err.len());
            if now != seen {
                seen = now;
                quiet_since = std::time::Instant::now();
            } else if quiet_since.elapsed() >= QUIET {
                break;
            }
        }
        (out.take(), err.take())
    }
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
