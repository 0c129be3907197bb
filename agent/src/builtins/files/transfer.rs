//! Moving file content to the target: atomic writes (temp file beside the destination, then
//! `mv`), in chunks for large files, with a byte progress bar (indicatif) when stderr is a
//! terminal.

use super::remote::sh;
use crate::builtins::ActionCtx;
use crate::transport::{quote, TransportError};

/// Files at least this big are moved in chunks, with a progress bar on a terminal.
pub(crate) const CHUNK: usize = 4 << 20;

pub(crate) fn progress(total: u64, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() || std::env::var_os("CI").is_some() || total < CHUNK as u64
    {
        return indicatif::ProgressBar::hidden();
    }
    let pb = crate::terminal::bars().add(indicatif::ProgressBar::new(total));
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb.set_message(what.to_string());
    pb
}

/// Writes `data` to `dest` atomically (temp file beside it, then `mv`); the temp file's path.
pub(crate) async fn write_remote(
    ctx: &ActionCtx<'_>,
    dest: &str,
    data: &[u8],
) -> Result<String, TransportError> {
    write_remote_checked(ctx, dest, data, None).await
}

/// A `validate` command that refused the new content (the copy module's "failed to validate").
#[derive(Debug)]
pub(crate) struct Invalid {
    /// The command's exit status.
    pub(crate) rc: i32,
    /// Its standard output.
    pub(crate) stdout: String,
    /// Its standard error.
    pub(crate) stderr: String,
}

/// [`write_remote`], running `validate` (a command line with `%s`, the temp file's quoted
/// path) on the temp file first: when it fails the temp file is removed, `dest` is left as it
/// was and the answer is `Err(Failed)` with the [`Invalid`] details in `invalid`.
pub(crate) async fn write_remote_validated(
    ctx: &ActionCtx<'_>,
    dest: &str,
    data: &[u8],
    validate: &str,
) -> Result<Result<String, Invalid>, TransportError> {
    let mut invalid = None;
    match write_remote_checked(ctx, dest, data, Some((validate, &mut invalid))).await {
        Ok(tmp) => Ok(Ok(tmp)),
        Err(e) => match invalid {
            Some(why) => Ok(Err(why)),
            None => Err(e),
        },
    }
}

async fn write_remote_checked(
    ctx: &ActionCtx<'_>,
    dest: &str,
    data: &[u8],
    validate: Option<(&str, &mut Option<Invalid>)>,
) -> Result<String, TransportError> {
    let tmp = format!("{dest}.etcd-agent.tmp");
    let (qt, qd) = (quote(&tmp), quote(dest));
    let pb = progress(data.len() as u64, &format!("copy {dest}"));
    if data.len() <= CHUNK {
        let out = sh(ctx, &format!("cat > {qt}"), Some(data)).await?;
        if out.rc != 0 {
            return Err(TransportError::Failed(format!(
                "cannot write {dest}: {}",
                out.stderr_text().trim()
            )));
        }
    } else {
        sh(ctx, &format!(": > {qt}"), None).await?;
        for chunk in data.chunks(CHUNK) {
            let out = sh(ctx, &format!("cat >> {qt}"), Some(chunk)).await?;
            if out.rc != 0 {
                let _ = sh(ctx, &format!("rm -f {qt}"), None).await;
                return Err(TransportError::Failed(format!(
                    "cannot write {dest}: {}",
                    out.stderr_text().trim()
                )));
            }
            pb.inc(chunk.len() as u64);
        }
    }
    pb.finish_and_clear();
    if let Some((command, invalid)) = validate {
        let out = sh(ctx, &command.replace("%s", &qt), None).await?;
        if out.rc != 0 {
            let _ = sh(ctx, &format!("rm -f {qt}"), None).await;
            *invalid = Some(Invalid {
                rc: out.rc,
                stdout: out.stdout_text().to_string(),
                stderr: out.stderr_text().to_string(),
            });
            return Err(TransportError::Failed("failed to validate".into()));
        }
    }
    // keep the mode of a file being replaced, as Ansible does
    let out = sh(
        ctx,
        &format!(
            "if [ -e {qd} ]; then chmod --reference={qd} {qt} 2>/dev/null; fi; mv -f {qt} {qd}"
        ),
        None,
    )
    .await?;
    if out.rc != 0 {
        return Err(TransportError::Failed(format!(
            "cannot move into {dest}: {}",
            out.stderr_text().trim()
        )));
    }
    Ok(tmp)
}
