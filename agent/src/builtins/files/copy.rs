//! `copy`: `content`, a controller-side `src`, or `remote_src` (a file already on the
//! target), with Ansible's copy result fields.

use super::content::{local_source, put_content};
use super::remote::{
    add_path_info, fail, info, mode_arg, remote_digest, set_attrs_mode, sh, Info, R,
};
use crate::builtins::spec::{Arg, Check, FILE_COMMON};
use crate::builtins::ActionCtx;
use crate::builtins::Params;
use crate::transport::{quote, TransportError};
use serde_json::{Map, Value};

use std::path::Path;

/// `copy`'s argument spec (the module's, which reports unknown keys; `decrypt` is the
/// action's).
pub const ARGS: Check = Check::Spec {
    name: Some("ansible.legacy.copy"),
    args: &[
        Arg::str("_original_basename").unimplemented(),
        Arg::bool("backup", false),
        Arg::str("checksum").unimplemented(),
        Arg::path("dest"),
        Arg::raw("directory_mode").unimplemented(),
        Arg::bool("follow", false),
        Arg::bool("force", true),
        Arg::str("validate"),
        Arg::raw("content"),
        Arg::bool("local_follow", true).unimplemented(),
        Arg::bool("remote_src", false),
        Arg::path("src"),
        Arg::bool("decrypt", true).unimplemented().action_only(),
    ],
    common: FILE_COMMON,
    exclusive: &[],
};

/// `copy`.
pub async fn run(ctx: &ActionCtx<'_>, p: &Params) -> R {
    let Some(dest) = p.str("dest") else {
        return fail("dest is required");
    };
    if let Some(content) = p.raw("content") {
        let text = match content {
            Value::String(s) => s.clone(),
            other => crate::jinja::value::python_compact(other),
        };
        return put_content(ctx, p, &dest, text.as_bytes(), None).await;
    }
    let Some(src) = p.str("src") else {
        return fail("src (or content) is required");
    };
    if p.bool("remote_src") {
        if let Some(name) = ["backup", "follow"].into_iter().find(|n| p.bool(n)) {
            return fail(format!(
                "copy: {name} with remote_src is not supported by etcd-agent"
            ));
        }
        if !p.bool("force") || p.has("validate") {
            return fail(
                "copy: force=no and validate with remote_src are not supported by etcd-agent",
            );
        }
        return copy_remote(ctx, p, &src, &dest).await;
    }
    let Some(path) = local_source(ctx, &src, "files") else {
        return fail(format!(
            "Could not find or access '{src}' on the Ansible Controller."
        ));
    };
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) => return fail(format!("cannot read {}: {e}", path.display())),
    };
    put_content(ctx, p, &dest, &data, Some(&path)).await
}

/// `copy` with `remote_src: true`: a file already on the target (the module's own path; a
/// source directory is outside the subset).
async fn copy_remote(ctx: &ActionCtx<'_>, p: &Params, src: &str, dest: &str) -> R {
    let qs = quote(src);
    let probe = format!(
        "if [ ! -e {qs} ]; then echo missing; elif [ ! -r {qs} ]; then echo unreadable; \
         elif [ -d {qs} ]; then echo dir; elif [ -f {qs} ]; then echo file; else echo other; fi"
    );
    let kind = sh(ctx, &probe, None)
        .await?
        .stdout_text()
        .trim()
        .to_string();
    match kind.as_str() {
        "missing" => return fail(format!("Source {src} not found")),
        "unreadable" => return fail(format!("Source {src} not readable")),
        "dir" => {
            return fail("copy: remote_src with a source directory is not supported by etcd-agent")
        }
        "other" => return fail(format!("Cannot copy invalid source '{src}': not a file")),
        _ => {}
    }
    let checksum = remote_digest(ctx, "sha1sum", src).await?;
    let md5 = remote_digest(ctx, "md5sum", src).await?;
    let mut dest = dest.to_string();
    let src_name = Path::new(src)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut before = info(ctx, &dest).await?;
    if before.as_ref().is_some_and(|i| i.dir_follow) {
        dest = format!("{}/{src_name}", dest.trim_end_matches('/'));
        before = info(ctx, &dest).await?;
    }
    let parent = Path::new(&dest)
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let qp = quote(&parent);
    let checksum_dest = match &before {
        Some(i) if i.exists && i.is_reg() && i.readable => {
            remote_digest(ctx, "sha1sum", &dest).await?
        }
        Some(_) => None,
        None => {
            let probe = format!(
                "if [ ! -e {qp} ]; then \
                 if stat {qp} 2>&1 >/dev/null | grep -q 'Permission denied'; then echo denied; else echo missing; fi; fi"
            );
            match sh(ctx, &probe, None).await?.stdout_text().trim() {
                "denied" => {
                    return fail(format!("Destination directory {parent} is not accessible"))
                }
                "missing" => return fail(format!("Destination directory {parent} does not exist")),
                _ => None,
            }
        }
    };
    if sh(ctx, &format!("[ -w {qp} ]"), None).await?.rc != 0 {
        return fail(format!("Destination {parent} not writable"));
    }
    let is_link = before.as_ref().is_some_and(Info::is_link);
    let mut changed = false;
    if checksum != checksum_dest || is_link {
        changed = true;
        if !ctx.check {
            // a copy beside the destination, then renamed; as the module's atomic_move without
            // keep_dest_attrs: a replaced file gets the source's mode (copystat), a new one
            // the umask's
            let tmp = quote(&format!("{dest}.etcd-agent.tmp"));
            let put = if before.is_some() {
                format!("cp --preserve=mode,timestamps {qs} {tmp}")
            } else {
                format!("rm -f {tmp} && : > {tmp} && cat {qs} > {tmp} && touch -r {qs} {tmp}")
            };
            let cmd = format!(
                "{put} && mv -f {tmp} {} || {{ rm -f {tmp}; exit 1; }}",
                quote(&dest)
            );
            let out = sh(ctx, &cmd, None).await?;
            if out.rc != 0 {
                return fail(format!(
                    "Failed to copy '{src}' to '{dest}': {}",
                    out.stderr_text().trim()
                ));
            }
        }
    }
    let now = if ctx.check {
        before.clone()
    } else {
        info(ctx, &dest).await?
    };
    let mode = match mode_arg(p).as_deref() {
        Some("preserve") => {
            let si = info(ctx, src).await?;
            si.map(|i| i.mode())
        }
        other => other.map(str::to_string),
    };
    match set_attrs_mode(ctx, p, &dest, now.as_ref(), mode).await {
        Ok(c) => changed |= c,
        Err(TransportError::Failed(msg)) => return fail(msg),
        Err(e) => return Err(e),
    }
    let mut m = Map::new();
    m.insert("changed".into(), Value::Bool(changed));
    m.insert(
        "checksum".into(),
        checksum.map_or(Value::Null, Value::String),
    );
    m.insert("dest".into(), dest.into());
    m.insert("md5sum".into(), md5.map_or(Value::Null, Value::String));
    m.insert("src".into(), src.into());
    add_path_info(ctx, m).await
}
