//! Binary (and other executable) modules from `library/`: the build for the host's CPU
//! uploaded once per host, run with an args file written as Ansible writes it, result parsed as Ansible parses it.

use super::{lines, ActionCtx, ResultMap};
use crate::module_arch::ArchModule;
use crate::transport::{quote, Connection, ExecOutput, TransportError};
use serde_json::{Map, Value};

/// The `ansible-core` version advertised in `_ansible_version`.
pub const ANSIBLE_VERSION: &str = "2.19.0";

/// Builds the args file content: module args plus Ansible's `_ansible_*` keys (`tmpdir` is
/// `None` when becoming an unprivileged user, as Ansible sends it).
pub fn args_file(ctx: &ActionCtx<'_>, tmpdir: Option<&str>) -> Value {
    let mut m = Map::new();
    for (k, v) in &ctx.args {
        m.insert(k.clone(), v.clone());
    }
    let extra: [(&str, Value); 17] = [
        ("_ansible_check_mode", ctx.check.into()),
        ("_ansible_no_log", ctx.no_log.into()),
        ("_ansible_debug", false.into()),
        ("_ansible_diff", ctx.diff.into()),
        ("_ansible_verbosity", (ctx.verbosity as u64).into()),
        ("_ansible_version", ANSIBLE_VERSION.into()),
        ("_ansible_module_name", ctx.module.clone().into()),
        ("_ansible_syslog_facility", "LOG_USER".into()),
        (
            "_ansible_selinux_special_fs",
            Value::Array(
                ["fuse", "nfs", "vboxsf", "ramfs", "9p", "vfat"]
                    .iter()
                    .map(|s| Value::String(s.to_string()))
                    .collect(),
            ),
        ),
        ("_ansible_string_conversion_action", "warn".into()),
        ("_ansible_socket", Value::Null),
        ("_ansible_shell_executable", "/bin/sh".into()),
        ("_ansible_keep_remote_files", false.into()),
        ("_ansible_tmpdir", tmpdir.map_or(Value::Null, Value::from)),
        ("_ansible_remote_tmp", "~/.ansible/tmp".into()),
        ("_ansible_ignore_unknown_opts", false.into()),
        ("_ansible_target_log_info", Value::Null),
    ];
    for (k, v) in extra {
        m.insert(k.to_string(), v);
    }
    Value::Object(m)
}

/// Finds the JSON object in module stdout, skipping junk lines before `{` and after `}`
/// (Ansible's `_filter_non_json_lines`).
pub fn parse_module_output(stdout: &str) -> Option<Map<String, Value>> {
    let start = stdout
        .lines()
        .scan(0usize, |pos, line| {
            let here = *pos;
            *pos += line.len() + 1;
            Some((here, line))
        })
        .find(|(_, l)| l.trim_start().starts_with('{'))
        .map(|(p, _)| p)?;
    let body = &stdout[start..];
    let end = body.rfind('}')?;
    match serde_json::from_str::<Value>(&body[..=end]) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// Picks the build of `module` for the target's CPU, then uploads it (once) and runs it; a
/// target with no build for its CPU fails the task before anything is uploaded.
pub async fn run_binary(
    ctx: &ActionCtx<'_>,
    module: &ArchModule,
) -> Result<ResultMap, TransportError> {
    let conn = ctx.connection().await?;
    let arch = conn.arch().await?;
    let module = match module.pick(&arch) {
        Ok(m) => m,
        Err(e) => {
            let mut m = Map::new();
            m.insert("failed".into(), Value::Bool(true));
            m.insert("msg".into(), format!("host {}: {e}", conn.label).into());
            return Ok(m);
        }
    };
    if ctx.escalation.is_none() {
        // a module that a run over this kept master found in the host's cache: run it from
        // there at once (checked by the command itself, as the login user who owns the cache)
        if let Some(path) = conn.recorded_module(module).await {
            let out = run_as_login_user(ctx, &conn, &path, true).await?;
            let found = !crate::transport::module_not_cached(&out);
            conn.recorded_module_was(module, &path, found).await;
            if found {
                return Ok(module_result(&out));
            }
        }
    }
    let path = conn.ensure_module(module).await?;
    let out = match ctx.become_user().filter(|u| *u != "root") {
        Some(user) => {
            let tmpdir = conn.tmpdir().await?;
            let args = args_file(ctx, None);
            let args_text = serde_json::to_vec(&args).unwrap_or_default();
            // inside the connection's temp dir, so whatever removes that (the remote shell's
            // exit trap, even when the agent is killed) removes this too
            let dir = format!("{tmpdir}/become-{}", unique());
            let name = path.rsplit('/').next().unwrap_or("module");
            if let Err(failed) = become_files(&conn, &path, &dir, name, user, &args_text).await? {
                return Ok(failed);
            }
            let cmd = format!(
                "{m} {a}",
                m = quote(&format!("{dir}/{name}")),
                a = quote(&format!("{dir}/args")),
            );
            let cleanup = format!("rm -rf {}", quote(&dir));
            ctx.exec_then(&conn, &cmd, Some(&cleanup), None, None)
                .await?
        }
        None => run_as_login_user(ctx, &conn, &path, false).await?,
    };
    Ok(module_result(&out))
}

/// Runs the module at `path` (as the login user, or become root) on an args file written
/// in the connection's temp dir, as Ansible writes one (a module may look beside it);
/// `recorded` when the path is a record of the host's cache, not checked this run (the
/// command checks it, see [`crate::transport::module_not_cached`]).
async fn run_as_login_user(
    ctx: &ActionCtx<'_>,
    conn: &Connection,
    path: &str,
    recorded: bool,
) -> Result<ExecOutput, TransportError> {
    let tmpdir = conn.tmpdir().await?;
    let args = args_file(ctx, Some(&tmpdir));
    let args_text = serde_json::to_vec(&args).unwrap_or_default();
    let args_name = format!("args-{}", unique());
    // the compiled remote loop runs it itself (no shell, no helper programs), unless the
    // command would need wrapping (environment, become, async's time limit)
    if ctx.env.is_empty() && ctx.escalation.is_none() && ctx.kill_after.is_none() {
        let _timed = crate::timing::span(crate::timing::Phase::ModuleRun);
        if let Some(out) = conn
            .exec_module_natively(path, recorded, &tmpdir, &args_name, &args_text)
            .await
        {
            return out;
        }
    }
    let run = format!(
        r#"umask 077 && cat > {a} && {{ "$f" {a}; rc=$?; rm -f {a}; exit $rc; }}"#,
        a = quote(&format!("{tmpdir}/{args_name}")),
    );
    let cmd = match recorded {
        true => crate::transport::run_recorded_module(path, &run),
        false => format!("f={}; {run}", quote(path)),
    };
    let _timed = crate::timing::span(crate::timing::Phase::ModuleRun);
    ctx.exec(conn, &cmd, Some(&args_text)).await
}

/// A module's result as Ansible reads it from the module's output: the JSON object (junk
/// around it ignored), internal `_ansible_*` keys removed, `stdout_lines`/`stderr_lines`
/// added; output without JSON is a failure carrying the module's stdout, stderr and rc.
pub fn module_result(out: &ExecOutput) -> ResultMap {
    let stdout = out.stdout_text();
    let mut data = match parse_module_output(&stdout) {
        Some(d) => d,
        None => {
            let mut m = Map::new();
            m.insert("failed".into(), Value::Bool(true));
            m.insert(
                "msg".into(),
                "Module result deserialization failed: No start of json char found".into(),
            );
            m.insert("module_stdout".into(), stdout.into());
            m.insert("module_stderr".into(), out.stderr_text().into());
            m.insert("rc".into(), out.rc.into());
            m.insert("_ansible_parsed".into(), Value::Bool(false));
            return m;
        }
    };
    // remove internal keys, split stdout/stderr lines as Ansible does
    data.retain(|k, _| {
        !k.starts_with("_ansible_") || k == "_ansible_verbose_always" || k == "_ansible_no_log"
    });
    for key in ["stdout", "stderr"] {
        let lines_key = format!("{key}_lines");
        if data.contains_key(key) && !data.contains_key(&lines_key) {
            let text = data
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            data.insert(lines_key, lines(&text));
        }
    }
    data
}

/// Becoming an unprivileged user: the module and its args file go into a directory of their own
/// inside the connection's temp dir, owned by that user, as Ansible chowns its temp files for
/// the become user. The caller removes the directory; if the run dies first, the temp dir's
/// removal takes it along.
pub async fn become_files(
    conn: &Connection,
    module_path: &str,
    dir: &str,
    name: &str,
    user: &str,
    args: &[u8],
) -> Result<Result<(), ResultMap>, TransportError> {
    let d = quote(dir);
    // the temp dir becomes traversable (not readable) so the become user reaches its own
    // directory in it; everything else in it is private to the login user (0600/0700)
    let parent = dir.rsplit_once('/').map_or(".", |(p, _)| p);
    let prep = format!(
        "umask 077 && chmod 711 {p} && mkdir {d} && cp {m} {d}/{n} && cat > {d}/args && chown -R {u} {d} || {{ rc=$?; rm -rf {d}; exit $rc; }}",
        p = quote(parent),
        m = quote(module_path),
        n = quote(name),
        u = quote(user),
    );
    let out = conn.exec(&prep, Some(args), None).await?;
    if out.rc == 0 {
        return Ok(Ok(()));
    }
    let mut m = Map::new();
    m.insert("failed".into(), Value::Bool(true));
    m.insert(
        "msg".into(),
        format!(
            "Failed to set permissions on the temporary files etcd-agent needs to create when becoming an unprivileged user (rc: {}, err: {}).",
            out.rc,
            out.stderr_text().trim()
        )
        .into(),
    );
    Ok(Err(m))
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::parse_module_output;

    #[test]
    fn junk_around_json_is_ignored() {
        let m = parse_module_output("warning: x\n{\"changed\": true}\ntrailer\n").unwrap();
        assert_eq!(m["changed"], true);
        assert!(parse_module_output("not json").is_none());
    }
}
