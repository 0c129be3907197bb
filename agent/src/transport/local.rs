//! The local transport: commands run as `/bin/sh -c` child processes.

use super::{ExecOutput, TransportError};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

/// Runs `cmd` with `/bin/sh -c`, writing `stdin` if given, and waits for it.
pub async fn exec(cmd: &str, stdin: Option<&[u8]>) -> Result<ExecOutput, TransportError> {
    let mut child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| TransportError::Failed(format!("cannot run /bin/sh: {e}")))?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let data = data.to_vec();
        tokio::spawn(async move {
            let _ = pipe.write_all(&data).await;
            let _ = pipe.shutdown().await;
        });
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| TransportError::Failed(format!("waiting for /bin/sh: {e}")))?;
    Ok(ExecOutput {
        rc: exit_code(&out.status),
        stdout: out.stdout,
        stderr: out.stderr,
    })
}

/// Exit code, or minus the signal number.
pub fn exit_code(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| -status.signal().unwrap_or(1))
}
