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

/// Writes `data` to `dest` atomically (temp file beside it, then `mv`).
pub(crate) async fn write_remote(
    ctx: &ActionCtx<'_>,
    dest: &str,
    data: &[u8],
) -> Result<(), TransportError> {
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
    Ok(())
}
