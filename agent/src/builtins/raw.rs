//! `raw`: a command line handed to the target's shell as it is (no module, no Python), as
//! Ansible's `raw` action runs it through the connection.

use super::spec::{Arg, Check};
use super::Params;
use super::{ActionCtx, ResultMap};
use crate::transport::{quote, TransportError};
use serde_json::{Map, Value};

/// `raw`'s valid arguments (its action's `_VALID_ARGS`).
pub const ARGS: Check = Check::ValidArgs(&[Arg::raw("_raw_params"), Arg::raw("executable")]);

/// Runs `raw`: skipped in check mode; `changed` always; a non-zero rc fails the task with
/// "non-zero return code". Over ssh its output is as a terminal gives it, as in ansible-core
/// ([`super::terminal_command`]).
pub async fn run(ctx: &ActionCtx<'_>, p: &Params) -> Result<ResultMap, TransportError> {
    let mut m = Map::new();
    if ctx.check {
        m.insert("skipped".into(), Value::Bool(true));
        return Ok(m);
    }
    let cmd = p.str("_raw_params").unwrap_or_default();
    let line = match p.str("executable").filter(|e| !e.is_empty()) {
        Some(exe) => format!("{} -c {}", quote(&exe), quote(&cmd)),
        None => cmd,
    };
    let line = super::terminal_command(ctx, &line);
    let conn = ctx.connection().await?;
    // the line as it is, with become but not the task's environment or `async`
    let out = match &ctx.escalation {
        Some(e) => {
            let stdin = e.stdin(None);
            let out = conn.exec(&e.wrap(&line), stdin.as_deref(), None).await?;
            if let Some(msg) = e.failure(&out) {
                return Err(TransportError::Failed(msg));
            }
            out
        }
        None => conn.exec(&line, None, None).await?,
    };
    Ok(super::terminal_result(ctx, &out))
}
