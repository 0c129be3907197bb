//! `async` with `poll: 0` for the command modules, and `async_status`.
//!
//! The command is started on the target detached from the connection (`setsid`, its input,
//! output and errors in files), under `timeout -s KILL <async>` as ansible-core's async
//! wrapper limits it, and the task goes on with ansible-core's result for a started job
//! (`ansible_job_id`, `started: true`, `finished: false`, `results_file`). Its files are in the
//! target's `async_dir` (`ansible_async_dir`, `ANSIBLE_ASYNC_DIR`, else `~/.ansible_async`,
//! as the user the command runs as): `<jid>.meta` (what the
//! result needs: the command as written, whether trailing newlines go), `<jid>.out`,
//! `<jid>.err`, `<jid>.start`, `<jid>.end` and `<jid>.rc`, the last written when it ended.
//! `async_status` reads them: not ended, `finished: false`; ended, the command module's result
//! (a killed command: "Timeout exceeded"), also written as JSON to `<jid>` (the
//! `results_file`); `mode: cleanup` removes them.

use super::spec::{Arg, Check};
use super::Params;
use super::{ActionCtx, ResultMap};
use crate::transport::{quote, Connection, TransportError};
use serde_json::{json, Map, Value};

/// The job directory as a shell word (a leading `~` is the target user's home).
fn dir_word(dir: &str) -> String {
    match dir.strip_prefix('~') {
        Some("") => "\"$HOME\"".into(),
        Some(rest) if rest.starts_with('/') => format!("\"$HOME\"{}", quote(rest)),
        _ => quote(dir),
    }
}

/// `async_status`'s argument spec.
pub const ARGS: Check = Check::Spec {
    name: None,
    args: &[
        Arg::str("jid").required(),
        Arg::str("mode")
            .default_str("status")
            .choices(&["cleanup", "status"]),
        Arg::str("_async_dir").unimplemented(),
    ],
    common: &[],
    exclusive: &[],
};

/// A job id like ansible-core's (`j<digits>.<digits>`), unique enough per target.
fn new_jid() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "j{}{:03}.{}",
        nanos % 1_000_000_000_000,
        n % 1000,
        std::process::id()
    )
}

/// Starts `line` (a `/bin/sh` command line, with the task's environment and become applied
/// by `ctx`) in the background, limited to `secs`, `stdin` as its input; `meta` is kept for
/// the result. Returns ansible-core's result for a started job.
pub async fn start(
    ctx: &ActionCtx<'_>,
    conn: &Connection,
    line: &str,
    stdin: Option<&[u8]>,
    secs: u64,
    meta: Value,
) -> Result<ResultMap, TransportError> {
    let jid = new_jid();
    let meta = serde_json::to_string(&meta).unwrap_or_default();
    let stamp = "date '+%Y-%m-%d %H:%M:%S.%6N'";
    let job = format!(
        "{stamp} > \"$f.start\"; timeout -s KILL {secs} /bin/sh -c {cmd} < \"$f.in\" > \"$f.out\" 2> \"$f.err\"; \
         rc=$?; {stamp} > \"$f.end\"; echo $rc > \"$f.rc.tmp\" && mv \"$f.rc.tmp\" \"$f.rc\"",
        cmd = quote(line)
    );
    let script = [
        format!(
            "d={}; mkdir -p \"$d\" && chmod 700 \"$d\" || exit 1",
            dir_word(&ctx.async_dir)
        ),
        format!("f=\"$d\"/{}", quote(&jid)),
        format!("printf '%s' {} > \"$f.meta\" || exit 1", quote(&meta)),
        "cat > \"$f.in\" || exit 1".to_string(),
        format!(
            "f=\"$f\" setsid /bin/sh -c {} < /dev/null > /dev/null 2>&1 &",
            quote(&job)
        ),
        "printf '%s' \"$d\"".to_string(),
    ]
    .join("\n");
    // the job limits itself: no `timeout` around the start
    let mut now = ctx.with_args(ctx.args.clone());
    now.kill_after = None;
    let out = now.exec(conn, &script, Some(stdin.unwrap_or(&[]))).await?;
    if out.rc != 0 {
        return Ok(super::failed(format!(
            "could not start the job: {}",
            out.stderr_text().trim()
        )));
    }
    let dir = out.stdout_text();
    let mut m = Map::new();
    m.insert("ansible_job_id".into(), Value::String(jid.clone()));
    m.insert("changed".into(), Value::Bool(true));
    m.insert("finished".into(), Value::Bool(false));
    m.insert(
        "results_file".into(),
        Value::String(format!("{}/{jid}", dir.trim())),
    );
    m.insert("started".into(), Value::Bool(true));
    Ok(m)
}

/// Reads a job file (`None` when missing).
async fn read(
    ctx: &ActionCtx<'_>,
    conn: &Connection,
    jid: &str,
    ext: &str,
) -> Result<Option<String>, TransportError> {
    let cmd = format!(
        "cat {}/{}",
        dir_word(&ctx.async_dir),
        quote(&format!("{jid}.{ext}"))
    );
    let out = ctx.exec(conn, &cmd, None).await?;
    Ok((out.rc == 0).then(|| out.stdout_text()))
}

/// `async_status`: a job's state, or its result once it ended; `mode: cleanup` removes its
/// files.
pub async fn status(ctx: &ActionCtx<'_>, p: &Params) -> Result<ResultMap, TransportError> {
    let jid = p.str("jid").unwrap_or_default();
    if jid.is_empty() || jid.contains('/') {
        return Ok(super::failed(format!("invalid job id {jid:?}")));
    }
    let conn = ctx.connection().await?;
    let dir = dir_word(&ctx.async_dir);
    let home = ctx.exec(&conn, &format!("printf '%s' {dir}"), None).await?;
    let results_file = format!("{}/{jid}", home.stdout_text());
    let mut m = Map::new();
    m.insert("ansible_job_id".into(), Value::String(jid.clone()));
    if p.str("mode").as_deref() == Some("cleanup") {
        let files: Vec<String> = ["", ".meta", ".in", ".out", ".err", ".start", ".end", ".rc"]
            .iter()
            .map(|e| format!("{dir}/{}", quote(&format!("{jid}{e}"))))
            .collect();
        ctx.exec(&conn, &format!("rm -f {}", files.join(" ")), None)
            .await?;
        // ansible-core's result for a cleanup
        m.insert("changed".into(), Value::Bool(false));
        m.insert("erased".into(), Value::String(results_file));
        m.insert("finished".into(), Value::Bool(false));
        m.insert("started".into(), Value::Bool(false));
        for k in ["stdout", "stderr"] {
            m.insert(k.into(), "".into());
            m.insert(format!("{k}_lines"), Value::Array(Vec::new()));
        }
        return Ok(m);
    }
    let Some(meta) = read(ctx, &conn, &jid, "meta").await? else {
        m.insert("failed".into(), Value::Bool(true));
        m.insert("finished".into(), Value::Bool(true));
        m.insert("msg".into(), Value::String("could not find job".into()));
        m.insert("started".into(), Value::Bool(true));
        return Ok(m);
    };
    m.insert("results_file".into(), Value::String(results_file.clone()));
    m.insert("started".into(), Value::Bool(true));
    let Some(rc) = read(ctx, &conn, &jid, "rc").await? else {
        m.insert("changed".into(), Value::Bool(false));
        m.insert("finished".into(), Value::Bool(false));
        return Ok(m);
    };
    let meta: Value = serde_json::from_str(&meta).unwrap_or(Value::Null);
    let rc: i64 = rc.trim().parse().unwrap_or(-1);
    let text = |ext: &'static str| read(ctx, &conn, &jid, ext);
    let stdout = text("out").await?.unwrap_or_default();
    let stderr = text("err").await?.unwrap_or_default();
    let start = text("start").await?.unwrap_or_default();
    let end = text("end").await?.unwrap_or_default();
    let mut result = if rc == 137 {
        // killed at its limit: the async wrapper's failure
        let mut r = super::failed("Timeout exceeded");
        for k in ["stdout", "stderr"] {
            r.insert(k.into(), "".into());
            r.insert(format!("{k}_lines"), Value::Array(Vec::new()));
        }
        r
    } else {
        super::command_result::ended(
            meta.get("cmd").cloned().unwrap_or(Value::Null),
            rc,
            (stdout, stderr),
            (start.trim(), end.trim()),
            meta.get("strip").and_then(Value::as_bool).unwrap_or(true),
        )
    };
    result.extend(m);
    result.insert("finished".into(), Value::Bool(true));
    // the results file ansible-core's wrapper would have written
    let json = serde_json::to_string(&json!(result)).unwrap_or_default();
    let write = format!("cat > {dir}/{}", quote(&jid));
    ctx.exec(&conn, &write, Some(json.as_bytes())).await?;
    Ok(result)
}
