//! `script`: a script of the controller (the role's or playbook's `files/`) copied to a
//! temp dir on the target, run there with its arguments, and removed, as ansible-core's
//! `script` action does: `creates`/`removes` guard it, `chdir` (absolute) is where it runs,
//! `executable` runs it (else its shebang); the result is the command's rc, stdout and
//! stderr (over ssh as a terminal gives them, see [`super::terminal_command`]), always
//! `changed`, failed with "non-zero return code".

use super::files::content::local_source;
use super::spec::{Arg, Check};
use super::Params;
use super::{ActionCtx, ResultMap};
use crate::transport::{quote, TransportError};
use serde_json::{Map, Value};

/// `script`'s argument spec (its action validates as a module does). `decrypt` is read from
/// the task's arguments by the action itself.
pub const ARGS: Check = Check::Spec {
    name: None,
    args: &[
        Arg::str("_raw_params"),
        Arg::str("cmd"),
        Arg::str("creates"),
        Arg::str("removes"),
        Arg::str("chdir"),
        Arg::str("executable"),
        Arg::bool("decrypt", true).action_only(),
    ],
    common: &[],
    exclusive: &[&["_raw_params", "cmd"]],
};

/// A skipped result with Ansible's reason.
fn skipped(msg: String) -> ResultMap {
    let mut m = Map::new();
    m.insert("changed".into(), Value::Bool(false));
    m.insert("skipped".into(), Value::Bool(true));
    m.insert("msg".into(), Value::String(msg));
    m
}

/// Whether `path` exists on the target (as the become user).
async fn exists(ctx: &ActionCtx<'_>, path: &str) -> Result<bool, TransportError> {
    let conn = ctx.connection().await?;
    let out = ctx
        .exec(&conn, &format!("[ -e {} ]", quote(path)), None)
        .await?;
    Ok(out.rc == 0)
}

/// Runs `script`.
pub async fn run(ctx: &ActionCtx<'_>, p: &Params) -> Result<ResultMap, TransportError> {
    let raw = p
        .str("_raw_params")
        .filter(|r| !r.trim().is_empty())
        .or_else(|| p.str("cmd"));
    let Some(raw) = raw else {
        return Ok(super::failed(
            "one of the following is required: _raw_params, cmd",
        ));
    };
    if let Some(path) = p.str("creates") {
        if exists(ctx, &path).await? {
            return Ok(skipped(format!("{path} exists, matching creates option")));
        }
    }
    if let Some(path) = p.str("removes") {
        if !exists(ctx, &path).await? {
            return Ok(skipped(format!(
                "{path} does not exist, matching removes option"
            )));
        }
    }
    let chdir = p.str("chdir");
    if let Some(dir) = chdir.as_deref().filter(|d| !d.starts_with('/')) {
        return Ok(super::failed(format!(
            "chdir {dir} must be an absolute path for a Unix-aware remote node"
        )));
    }
    let Some(parts) = shlex::split(raw.trim()).filter(|w| !w.is_empty()) else {
        return Ok(super::failed(format!(
            "cannot split the script line {raw:?}"
        )));
    };
    let source = &parts[0];
    let Some(local) = local_source(ctx, source, "files") else {
        return Ok(super::failed(format!(
            "Could not find or access '{source}' on the Ansible Controller."
        )));
    };
    if ctx.check {
        // check mode: with creates/removes the guard has decided; otherwise unknown
        if p.str("creates").is_some() || p.str("removes").is_some() {
            let mut m = Map::new();
            m.insert("changed".into(), Value::Bool(true));
            return Ok(m);
        }
        return Ok(skipped("Check mode is not supported for this task.".into()));
    }
    let data = match std::fs::read(&local) {
        Ok(bytes) if p.bool("decrypt") && bytes.starts_with(b"$ANSIBLE_VAULT") => {
            match crate::vault::decrypt_file_text(String::from_utf8_lossy(&bytes).into(), &local) {
                Ok(plain) => plain.into_bytes(),
                Err(e) => return Ok(super::failed(format!("{e:#}"))),
            }
        }
        Ok(bytes) => bytes,
        Err(e) => {
            return Ok(super::failed(format!(
                "Could not find or access '{source}' on the Ansible Controller: {e}"
            )))
        }
    };
    let name = local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "script".into());
    let conn = ctx.connection().await?;
    // the upload, as the login user, into a temp dir of its own (0700); a become user
    // other than root is given read and execute through an ACL, as ansible-core does
    let upload = format!(
        "umask 077 && d=$(mktemp -d \"${{TMPDIR:-/tmp}}/etcd-agent-script.XXXXXXXX\") && cat > \"$d\"/{n} && chmod 0700 \"$d\"/{n} && printf '%s' \"$d\"",
        n = quote(&name)
    );
    let out = conn.exec(&upload, Some(&data), None).await?;
    if out.rc != 0 {
        return Ok(super::failed(format!(
            "cannot upload the script: {}",
            out.stderr_text().trim()
        )));
    }
    let dir = out.stdout_text();
    let remote = format!("{dir}/{name}");
    let cleanup = format!("rm -rf {}", quote(&dir));
    if let Some(user) = ctx.become_user().filter(|u| *u != "root") {
        let acl = format!(
            "setfacl -m u:{u}:rx {d} {f}",
            u = quote(user),
            d = quote(&dir),
            f = quote(&remote)
        );
        if conn.exec(&acl, None, None).await?.rc != 0 {
            let _ = conn.exec(&cleanup, None, None).await;
            return Ok(super::failed(format!(
                "Failed to set permissions on the temporary files Ansible needs to create when becoming an unprivileged user ({user}): setfacl failed"
            )));
        }
    }
    // every occurrence of the script's name in the line becomes its remote path (Python's
    // str.replace, as ansible-core rewrites the line, keeping the arguments' quoting)
    let target = raw.trim().replace(source.as_str(), &quote(&remote));
    let mut line = match p.str("executable").filter(|e| !e.is_empty()) {
        Some(exe) => format!("{exe} {target}"),
        None => target,
    };
    if let Some(dir) = &chdir {
        line = format!("cd {} && {line}", quote(dir));
    }
    // over ssh, as a terminal gives the output (ansible-core runs it with `ssh -tt`)
    let line = super::terminal_command(ctx, &line);
    let out = ctx
        .exec_then(&conn, &line, Some(&cleanup), None, None)
        .await?;
    Ok(super::terminal_result(ctx, &out))
}
