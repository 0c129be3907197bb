//! The shared end of `copy` and `template`: finding a controller-side source file, the
//! `--diff` before/after text, and putting content at the destination unless it is already
//! there (with the copy module's checks and result fields).

use super::remote::{
    fail, info, info_checked, mode_arg, owner_fields, remote_digest, set_attrs_mode, sh, Info, R,
};
use super::transfer::{write_remote, write_remote_validated};
use crate::builtins::digest::{md5_hex, sha1_hex};
use crate::builtins::ActionCtx;
use crate::builtins::Params;
use crate::transport::{quote, TransportError};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// A controller-side file of the playbook: for a role's task the role's `files/` or
/// `templates/`, then the role's dir; then the playbook's `files/`/`templates/`, then its dir.
pub(crate) fn local_source(ctx: &ActionCtx<'_>, src: &str, sub: &str) -> Option<PathBuf> {
    let p = Path::new(src);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_path_buf());
    }
    let dir = |var: &str| {
        ctx.vars
            .get_attr(var)
            .ok()
            .and_then(|v| v.as_str().map(PathBuf::from))
    };
    let playbook = dir("playbook_dir").unwrap_or_else(|| PathBuf::from("."));
    dir("role_path")
        .into_iter()
        .chain([playbook])
        .flat_map(|base| [base.join(sub).join(p), base.join(p)])
        .find(|c| c.is_file())
}

/// Ansible skips diffs of files bigger than this (`max_file_size_for_diff`).
const MAX_DIFF: u64 = 104_448;

/// `--diff` for a file about to be replaced: `before`/`after` text, as Ansible's copy returns it.
async fn content_diff(
    ctx: &ActionCtx<'_>,
    dest: &str,
    before: Option<&Info>,
    data: &[u8],
    after_header: Option<&str>,
) -> Result<Option<Value>, TransportError> {
    let Ok(after) = std::str::from_utf8(data) else {
        return Ok(None);
    };
    if data.len() as u64 > MAX_DIFF || before.is_some_and(|i| i.size > MAX_DIFF) {
        return Ok(None);
    }
    let old = match before {
        Some(i) if i.is_reg() => {
            let out = sh(ctx, &format!("cat {}", quote(dest)), None).await?;
            match String::from_utf8(out.stdout) {
                Ok(t) if out.rc == 0 => t,
                _ => return Ok(None),
            }
        }
        _ => String::new(),
    };
    let mut d = Map::new();
    d.insert("after".into(), after.into());
    d.insert("after_header".into(), after_header.unwrap_or(dest).into());
    d.insert("before".into(), old.into());
    d.insert("before_header".into(), dest.into());
    Ok(Some(Value::Object(d)))
}

/// Shared end of `copy` and `template`: put `data` at `dest` unless it is already there.
pub(crate) async fn put_content(
    ctx: &ActionCtx<'_>,
    p: &Params,
    dest: &str,
    data: &[u8],
    src: Option<&Path>,
) -> R {
    // a directory destination takes the source's name (the template action's
    // `_original_basename`: the template file's)
    let src_name = src
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    let src_name = src_name.as_deref();
    // `mode: preserve`: the controller-side source's mode
    let mode = match mode_arg(p).as_deref() {
        Some("preserve") => match src.map(std::fs::metadata) {
            Some(Ok(meta)) => {
                use std::os::unix::fs::PermissionsExt;
                Some(format!("0{:03o}", meta.permissions().mode() & 0o7777))
            }
            Some(Err(e)) => return fail(format!("mode=preserve: cannot stat the source: {e}")),
            None => return fail("mode=preserve needs a source file (not content)"),
        },
        other => other.map(str::to_string),
    };
    let mut dest = dest.to_string();
    // the copy action stats the destination first and stops if it cannot
    let mut before = match info_checked(ctx, &dest).await? {
        Ok(i) => i,
        Err(e) => {
            return fail(format!(
                "Task failed: Failed to get information on remote file ({dest}): {e}"
            ))
        }
    };
    if before.as_ref().is_some_and(Info::is_dir) || dest.ends_with('/') {
        let Some(name) = src_name else {
            return fail("can not use content with a dir as dest");
        };
        dest = format!("{}/{}", dest.trim_end_matches('/'), name);
        before = info(ctx, &dest).await?;
    }
    // `follow`: a link at the destination is followed, its target written
    if p.bool("follow") && before.as_ref().is_some_and(Info::is_link) {
        let out = sh(ctx, &format!("readlink -f {}", quote(&dest)), None).await?;
        let real = out.stdout_text().trim().to_string();
        if out.rc == 0 && !real.is_empty() {
            dest = real;
            before = info(ctx, &dest).await?;
        }
    }
    // `force: no`: a destination that exists is left as it is (the copy action's answer: the
    // destination and the controller-side source)
    if !p.bool("force") && before.as_ref().is_some_and(|i| i.exists) {
        let mut m = Map::new();
        m.insert("changed".into(), Value::Bool(false));
        m.insert("dest".into(), dest.into());
        if let Some(src) = src {
            m.insert("src".into(), src.display().to_string().into());
        }
        return Ok(m);
    }
    let checksum = sha1_hex(data);
    let same = match &before {
        Some(i) if i.is_reg() => {
            remote_digest(ctx, "sha1sum", &dest).await?.as_deref() == Some(checksum.as_str())
        }
        _ => false,
    };
    let mut m = Map::new();
    if ctx.diff && !same {
        let header = src.map(|p| p.display().to_string());
        if let Some(d) = content_diff(ctx, &dest, before.as_ref(), data, header.as_deref()).await? {
            m.insert("diff".into(), d);
        }
    }
    let mut changed = false;
    let mut staged = None;
    if !same {
        changed = true;
        if !ctx.check {
            let parent = Path::new(&dest)
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            if !parent.is_empty() {
                // the copy module's checks, as the (become) user: the action adds `checksum`
                let qp = quote(&parent);
                let probe = format!(
                    "if [ ! -e {qp} ]; then \
                     if stat {qp} 2>&1 >/dev/null | grep -q 'Permission denied'; then echo denied; else echo missing; fi; \
                     elif [ ! -w {qp} ]; then echo readonly; fi"
                );
                let out = sh(ctx, &probe, None).await?;
                let msg = match out.stdout_text().trim() {
                    "missing" => Some(format!("Destination directory {parent} does not exist")),
                    "denied" => Some(format!("Destination directory {parent} is not accessible")),
                    "readonly" => Some(format!("Destination {parent} not writable")),
                    _ => None,
                };
                if let Some(msg) = msg {
                    let mut f = crate::builtins::failed(msg);
                    f.insert("changed".into(), Value::Bool(false));
                    f.insert("checksum".into(), checksum.into());
                    return Ok(f);
                }
            }
            if p.bool("backup") && before.as_ref().is_some_and(|i| i.exists) {
                match backup_local(ctx, &dest).await? {
                    Ok(path) => {
                        m.insert("backup_file".into(), path.into());
                    }
                    Err(msg) => return fail(msg),
                }
            }
            let written = match p.str("validate") {
                Some(command) if !command.contains("%s") => {
                    let mut f =
                        crate::builtins::failed(format!("validate must contain %s: {command}"));
                    f.insert("changed".into(), Value::Bool(false));
                    f.insert("checksum".into(), checksum.into());
                    return Ok(f);
                }
                Some(command) => match write_remote_validated(ctx, &dest, data, &command).await {
                    Ok(Ok(tmp)) => Ok(tmp),
                    Ok(Err(why)) => {
                        let lines = |t: &str| -> Value {
                            t.lines().map(|l| Value::String(l.into())).collect()
                        };
                        let mut f = crate::builtins::failed("failed to validate");
                        f.insert("changed".into(), Value::Bool(false));
                        f.insert("checksum".into(), checksum.into());
                        f.insert("exit_status".into(), why.rc.into());
                        f.insert("stdout_lines".into(), lines(&why.stdout));
                        f.insert("stdout".into(), why.stdout.into());
                        f.insert("stderr_lines".into(), lines(&why.stderr));
                        f.insert("stderr".into(), why.stderr.into());
                        return Ok(f);
                    }
                    Err(e) => Err(e),
                },
                None => write_remote(ctx, &dest, data).await,
            };
            match written {
                Ok(tmp) => staged = Some(tmp),
                Err(TransportError::Failed(msg)) => return fail(msg),
                Err(e) => return Err(e),
            }
        }
    }
    let now = if ctx.check && changed {
        before.clone()
    } else {
        info(ctx, &dest).await?
    };
    match set_attrs_mode(ctx, p, &dest, now.as_ref(), mode).await {
        Ok(c) => changed |= c,
        Err(TransportError::Failed(msg)) => return fail(msg),
        Err(e) => return Err(e),
    }
    let after = if ctx.check {
        now
    } else {
        info(ctx, &dest).await?
    };
    m.insert("changed".into(), Value::Bool(changed));
    m.insert("checksum".into(), checksum.into());
    m.insert("dest".into(), dest.clone().into());
    if same {
        m.insert("path".into(), dest.clone().into());
    } else {
        m.insert("md5sum".into(), md5_hex(data).into());
    }
    if let Some(tmp) = staged {
        m.insert("src".into(), tmp.into());
    }
    if let Some(i) = &after {
        owner_fields(&mut m, i);
    } else {
        m.insert("size".into(), (data.len() as u64).into());
        m.insert("state".into(), "file".into());
    }
    Ok(m)
}

/// The copy module's `backup_local`: a copy of `dest` beside it named
/// `<dest>.<pid>.<YYYY-MM-DD@HH:MM:SS~>`, keeping its mode, owner and times. The backup's path,
/// or why it could not be made.
async fn backup_local(
    ctx: &ActionCtx<'_>,
    dest: &str,
) -> Result<Result<String, String>, TransportError> {
    let qd = quote(dest);
    let cmd =
        format!("b={qd}.$$.$(date +%Y-%m-%d@%H:%M:%S~) && cp -p {qd} \"$b\" && printf '%s' \"$b\"");
    let out = sh(ctx, &cmd, None).await?;
    Ok(if out.rc == 0 {
        Ok(out.stdout_text().to_string())
    } else {
        Err(format!(
            "Could not make backup of {dest} to {dest}.*: {}",
            out.stderr_text().trim()
        ))
    })
}
