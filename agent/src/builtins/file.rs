//! `file`: directory, file, touch, absent, link and hard states, mode, owner, group and
//! recurse, with plain POSIX tools on the target and Ansible's result fields and messages.

use super::files::{add_path_info, fail, info, mode_arg, set_attrs, sh, Info, R};
use super::spec::{Arg, Check, FILE_COMMON};
use super::Params;
use super::{ActionCtx, ResultMap};
use crate::transport::{quote, TransportError};
use serde_json::{Map, Value};
use std::path::Path;

/// `file`'s argument spec.
pub const ARGS: Check = Check::Spec {
    name: None,
    args: &[
        Arg::str("_diff_peek").unimplemented(),
        Arg::str("_original_basename").unimplemented(),
        Arg::str("access_time").unimplemented(),
        Arg::str("access_time_format")
            .default_str("%Y%m%d%H%M.%S")
            .unimplemented(),
        Arg::bool("follow", true),
        Arg::bool("force", false),
        Arg::str("modification_time").unimplemented(),
        Arg::str("modification_time_format")
            .default_str("%Y%m%d%H%M.%S")
            .unimplemented(),
        Arg::path("path").aliases(&["dest", "name"]).required(),
        Arg::bool("recurse", false),
        Arg::path("src"),
        Arg::str("state").choices(&["absent", "directory", "file", "hard", "link", "touch"]),
    ],
    common: FILE_COMMON,
    exclusive: &[],
};

/// A failed file-module result; `path` (and its fields, as `add_path_info` adds them) when given.
fn file_fail(msg: impl Into<String>, keys: &[(&str, &str)]) -> ResultMap {
    let mut f = super::failed(msg);
    f.insert("changed".into(), Value::Bool(false));
    for (k, v) in keys {
        f.insert((*k).into(), (*v).into());
    }
    f
}

/// Whether `path` exists, links followed.
async fn exists(ctx: &ActionCtx<'_>, path: &str) -> Result<bool, TransportError> {
    let out = sh(ctx, &format!("[ -e {} ]", quote(path)), None).await?;
    Ok(out.rc == 0)
}

/// Runs a command that changes the target; its stderr is the error.
async fn run_change(ctx: &ActionCtx<'_>, cmd: &str) -> Result<Result<(), String>, TransportError> {
    let out = sh(ctx, cmd, None).await?;
    Ok(if out.rc == 0 {
        Ok(())
    } else {
        Err(out.stderr_text().trim().to_string())
    })
}

/// `file`.
pub async fn run(ctx: &ActionCtx<'_>, p: &Params) -> R {
    let Some(mut path) = p.str("path") else {
        return fail("path is required");
    };
    let src = p.str("src");
    let force = p.bool("force");
    let recurse = p.bool("recurse");
    let follow = p.bool("follow");
    let state_arg = p.str("state");
    let mut before = info(ctx, &path).await?;
    // additional_parameter_handling: a directory path means the file inside it
    if !matches!(state_arg.as_deref(), Some("link" | "absent"))
        && before.as_ref().is_some_and(|i| i.dir_follow)
    {
        if let Some(name) = src.as_deref().and_then(|s| Path::new(s).file_name()) {
            path = format!("{path}/{}", name.to_string_lossy());
            before = info(ctx, &path).await?;
        }
    }
    let prev = before.as_ref().map_or("absent", Info::state);
    let state = state_arg.unwrap_or_else(|| {
        if prev != "absent" {
            prev.to_string()
        } else if recurse {
            "directory".into()
        } else {
            "file".into()
        }
    });
    if recurse && state != "directory" {
        let f = file_fail(
            "recurse option requires state to be 'directory'",
            &[("path", &path)],
        );
        return add_path_info(ctx, f).await;
    }
    if src.is_some() && !matches!(state.as_str(), "link" | "hard") {
        let f = file_fail(
            "src option requires state to be 'link' or 'hard'",
            &[("path", &path)],
        );
        return add_path_info(ctx, f).await;
    }
    let q = quote(&path);
    let mut m = Map::new();
    match state.as_str() {
        "absent" => {
            let changed = before.is_some();
            if changed && !ctx.check {
                let out = sh(ctx, &format!("rm -rf {q}"), None).await?;
                if out.rc != 0 {
                    return fail(format!("rmtree failed: {}", out.stderr_text().trim()));
                }
            }
            m.insert("changed".into(), Value::Bool(changed));
            m.insert("path".into(), path.into());
            m.insert("state".into(), "absent".into());
        }
        "directory" => {
            let mut changed = false;
            match &before {
                Some(i) if i.is_dir() => {}
                Some(i) => {
                    let f = file_fail(
                        format!("{path} already exists as a {}", i.state()),
                        &[("path", &path)],
                    );
                    return add_path_info(ctx, f).await;
                }
                None => {
                    changed = true;
                    if !ctx.check {
                        if let Some(msg) = make_dirs(ctx, &path).await? {
                            return Ok(file_fail(msg, &[("path", &path)]));
                        }
                    }
                }
            }
            let now = if ctx.check {
                before.clone()
            } else {
                info(ctx, &path).await?
            };
            match set_attrs(ctx, p, &path, now.as_ref()).await {
                Ok(c) => changed |= c,
                Err(TransportError::Failed(msg)) => return attr_fail(ctx, p, msg, &path).await,
                Err(e) => return Err(e),
            }
            if recurse && (now.is_some() || !ctx.check) {
                match recurse_attrs(ctx, p, &path).await? {
                    Ok(c) => changed |= c,
                    Err(msg) => return attr_fail(ctx, p, msg, &path).await,
                }
            }
            m.insert("changed".into(), Value::Bool(changed));
            m.insert("path".into(), path.clone().into());
        }
        "touch" => {
            if !ctx.check {
                let out = sh(ctx, &format!("touch {q}"), None).await?;
                if out.rc != 0 {
                    return fail(out.stderr_text().trim().to_string());
                }
            }
            let now = info(ctx, &path).await?;
            if let Err(e) = set_attrs(ctx, p, &path, now.as_ref()).await {
                return match e {
                    TransportError::Failed(msg) => attr_fail(ctx, p, msg, &path).await,
                    e => Err(e),
                };
            }
            m.insert("changed".into(), Value::Bool(true));
            m.insert("dest".into(), path.clone().into());
        }
        "file" => {
            let Some(i) = &before else {
                return fail(format!("file ({path}) is absent, cannot continue"));
            };
            let changed = match set_attrs(ctx, p, &path, Some(i)).await {
                Ok(c) => c,
                Err(TransportError::Failed(msg)) => return attr_fail(ctx, p, msg, &path).await,
                Err(e) => return Err(e),
            };
            m.insert("changed".into(), Value::Bool(changed));
            m.insert("path".into(), path.clone().into());
        }
        "link" => return symlink(ctx, p, &path, src, before.as_ref(), force, follow).await,
        "hard" => return hardlink(ctx, p, &path, src, before.as_ref(), force, follow).await,
        other => {
            return fail(format!(
                "value of state must be one of: absent, directory, file, hard, link, touch, got: {other}"
            ))
        }
    }
    add_path_info(ctx, m).await
}

/// A failed chown/chgrp/chmod in the module's words (`chown failed: failed to look up user x`).
async fn attr_fail(ctx: &ActionCtx<'_>, p: &Params, msg: String, path: &str) -> R {
    let text = if msg.contains("invalid user") {
        format!(
            "chown failed: failed to look up user {}",
            p.str("owner").unwrap_or_default()
        )
    } else if msg.contains("invalid group") {
        format!(
            "chgrp failed: failed to look up group {}",
            p.str("group").unwrap_or_default()
        )
    } else {
        msg
    };
    add_path_info(ctx, file_fail(text, &[("path", path)])).await
}

/// `recurse: true`: owner, group and mode of everything under `path` (links themselves for
/// owner and group, as `lchown`; their targets are not followed). True when anything changed.
async fn recurse_attrs(
    ctx: &ActionCtx<'_>,
    p: &Params,
    path: &str,
) -> Result<Result<bool, String>, TransportError> {
    let q = quote(path);
    let owner = p.str("owner");
    let group = p.str("group");
    let mode = mode_arg(p);
    let numeric_mode = mode
        .as_deref()
        .filter(|m| m.chars().all(|c| c.is_ascii_digit()));
    // the differing entries, as find tests
    let mut tests = Vec::new();
    if let Some(o) = &owner {
        tests.push(format!("! -user {}", quote(o)));
    }
    if let Some(g) = &group {
        tests.push(format!("! -group {}", quote(g)));
    }
    if let Some(m) = numeric_mode {
        tests.push(format!("\\( ! -type l ! -perm {} \\)", quote(m)));
    }
    let symbolic = mode.is_some() && numeric_mode.is_none();
    if tests.is_empty() && !symbolic {
        return Ok(Ok(false));
    }
    let snapshot = format!("find {q} -mindepth 1 -printf '%p %m %U %G\\n' | cksum");
    if ctx.check {
        if symbolic {
            // what chmod would do, measured on a copy of the modes is not cheap: say changed
            return Ok(Ok(true));
        }
        let out = sh(
            ctx,
            &format!(
                "find {q} -mindepth 1 \\( {} \\) -print | head -n 1",
                tests.join(" -o ")
            ),
            None,
        )
        .await?;
        if out.rc != 0 {
            return Ok(Err(out.stderr_text().trim().to_string()));
        }
        return Ok(Ok(!out.stdout.is_empty()));
    }
    let mut cmds = vec![format!("a=$({snapshot})")];
    if let Some(o) = &owner {
        cmds.push(format!("chown -R -h {} {q}", quote(o)));
    }
    if let Some(g) = &group {
        cmds.push(format!("chgrp -R -h {} {q}", quote(g)));
    }
    if let Some(m) = &mode {
        cmds.push(format!("chmod -R {} {q}", quote(m)));
    }
    cmds.push(format!("b=$({snapshot})"));
    cmds.push("[ \"$a\" = \"$b\" ] && echo same || echo changed".into());
    let out = sh(ctx, &cmds.join(" && "), None).await?;
    if out.rc != 0 {
        return Ok(Err(out.stderr_text().trim().to_string()));
    }
    Ok(Ok(out.stdout_text().trim() == "changed"))
}

/// `state: link` (the module's `ensure_symlink`).
async fn symlink(
    ctx: &ActionCtx<'_>,
    p: &Params,
    path: &str,
    mut src: Option<String>,
    before: Option<&Info>,
    force: bool,
    follow: bool,
) -> R {
    let prev = before.map_or("absent", Info::state);
    if src.is_none() && follow && before.is_some_and(|i| i.exists) {
        src = before.and_then(|i| i.link_target.clone());
    }
    let relpath = match before {
        Some(i) if !i.is_link() && i.dir_follow => path.to_string(),
        _ => Path::new(path)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    };
    if let Some(s) = &src {
        let absrc = if s.starts_with('/') || relpath.is_empty() {
            s.clone()
        } else {
            format!("{}/{s}", relpath.trim_end_matches('/'))
        };
        if !force && !exists(ctx, &absrc).await? {
            return Ok(file_fail(
                format!(
                    "src file does not exist, use 'force=yes' if you really want to create the link: {absrc}"
                ),
                &[("path", path), ("src", s)],
            ));
        }
    }
    if prev == "directory" {
        if !force {
            let f = file_fail(
                format!("refusing to convert from directory to symlink for {path}"),
                &[("path", path)],
            );
            return add_path_info(ctx, f).await;
        }
        let out = sh(ctx, &format!("ls -A {} | head -n 1", quote(path)), None).await?;
        if !out.stdout.is_empty() {
            let f = file_fail(
                format!("the directory {path} is not empty, refusing to convert it"),
                &[("path", path)],
            );
            return add_path_info(ctx, f).await;
        }
    } else if matches!(prev, "file" | "hard") && !force {
        let f = file_fail(
            format!("refusing to convert from {prev} to symlink for {path}"),
            &[("path", path)],
        );
        return add_path_info(ctx, f).await;
    }
    let mut changed = false;
    if prev == "link" {
        if let Some(s) = &src {
            changed = before.and_then(|i| i.link_target.as_deref()) != Some(s.as_str());
        }
    } else {
        if src.is_none() {
            return fail("src is required for creating new symlinks");
        }
        changed = true;
    }
    let q = quote(path);
    let s = quote(src.as_deref().unwrap_or_default());
    let cmd = if prev == "directory" {
        format!("rmdir {q} && ln -s {s} {q}")
    } else {
        format!("ln -sfT {s} {q}")
    };
    let what = if prev == "absent" {
        "linking"
    } else {
        "replacing"
    };
    let mut m = match link_step(ctx, path, &src, changed, &cmd, what).await? {
        Ok(m) => m,
        Err(done) => return Ok(done),
    };
    // owner, group and mode go to what the link points to (follow), when it exists
    let now = info(ctx, path).await?;
    if now.as_ref().is_some_and(|i| i.exists)
        && (mode_arg(p).is_some() || p.str("owner").is_some() || p.str("group").is_some())
    {
        let target = if follow && now.as_ref().is_some_and(Info::is_link) {
            let out = sh(ctx, &format!("readlink -f {q}"), None).await?;
            out.stdout_text().trim_end_matches('\n').to_string()
        } else {
            path.to_string()
        };
        let ti = info(ctx, &target).await?;
        match set_attrs(ctx, p, &target, ti.as_ref()).await {
            Ok(c) => changed |= c,
            Err(TransportError::Failed(msg)) => return attr_fail(ctx, p, msg, &target).await,
            Err(e) => return Err(e),
        }
    }
    m.insert("changed".into(), Value::Bool(changed));
    add_path_info(ctx, m).await
}

/// `state: hard` (the module's `ensure_hardlink`).
async fn hardlink(
    ctx: &ActionCtx<'_>,
    p: &Params,
    path: &str,
    src: Option<String>,
    before: Option<&Info>,
    force: bool,
    follow: bool,
) -> R {
    let prev = before.map_or("absent", Info::state);
    if prev != "hard" && src.is_none() {
        return fail("src is required for creating new hardlinks");
    }
    if let Some(s) = &src {
        if !exists(ctx, s).await? {
            let f = file_fail("src does not exist", &[("dest", path), ("src", s)]);
            return add_path_info(ctx, f).await;
        }
    }
    let q = quote(path);
    let same_inode = |s: &str| format!("[ {} -ef {q} ]", quote(s));
    let mut changed = false;
    let refuse = |msg: &str| {
        file_fail(
            msg,
            &[("dest", path), ("src", src.as_deref().unwrap_or_default())],
        )
    };
    match (prev, &src) {
        ("absent", _) => changed = true,
        ("link", Some(s)) => changed = before.and_then(|i| i.link_target.as_deref()) != Some(s),
        ("hard", Some(s)) => {
            let differs = sh(ctx, &same_inode(s), None).await?.rc != 0;
            if differs {
                changed = true;
                if !force {
                    let f = refuse("Cannot link, different hard link exists at destination");
                    return add_path_info(ctx, f).await;
                }
            }
        }
        ("file", _) => {
            changed = true;
            if !force {
                return add_path_info(ctx, refuse("Cannot link, file exists at destination")).await;
            }
        }
        ("directory", _) => {
            let f = refuse("Cannot link: different hard link exists at destination");
            return add_path_info(ctx, f).await;
        }
        _ => {}
    }
    let s = quote(src.as_deref().unwrap_or_default());
    let (cmd, what) = if prev == "absent" {
        let deref = if follow { "-L " } else { "" };
        (format!("ln {deref}{s} {q}"), "linking")
    } else {
        (format!("ln -fT {s} {q}"), "replacing")
    };
    let mut m = match link_step(ctx, path, &src, changed, &cmd, what).await? {
        Ok(m) => m,
        Err(done) => return Ok(done),
    };
    let now = if ctx.check && changed {
        before.cloned()
    } else {
        info(ctx, path).await?
    };
    match set_attrs(ctx, p, path, now.as_ref()).await {
        Ok(c) => changed |= c,
        Err(TransportError::Failed(msg)) => return attr_fail(ctx, p, msg, path).await,
        Err(e) => return Err(e),
    }
    m.insert("changed".into(), Value::Bool(changed));
    add_path_info(ctx, m).await
}

/// What `state: link` and `state: hard` share once their command is known: run it when
/// something changes (not in check mode), then start the result with `dest` and `src`.
/// `Err` is the finished result: the command failed, or check mode on a path not there yet.
async fn link_step(
    ctx: &ActionCtx<'_>,
    path: &str,
    src: &Option<String>,
    changed: bool,
    cmd: &str,
    what: &str,
) -> Result<Result<ResultMap, ResultMap>, TransportError> {
    if changed && !ctx.check {
        if let Err(e) = run_change(ctx, cmd).await? {
            let f = file_fail(format!("Error while {what}: {e}"), &[("path", path)]);
            return Ok(Err(add_path_info(ctx, f).await?));
        }
    }
    let mut m = Map::new();
    m.insert("dest".into(), path.into());
    m.insert("src".into(), src.clone().map_or(Value::Null, Value::String));
    if ctx.check && !exists(ctx, path).await? {
        m.insert("changed".into(), Value::Bool(changed));
        return Ok(Err(m));
    }
    Ok(Ok(m))
}

/// Creates `path` and its missing parents one at a time as the file module does; on failure,
/// the module's message (`There was an issue creating <first failing dir> as requested: ...`).
/// A directory that another host or process created meanwhile is fine, as in the module; the
/// second `mkdir` only reports why the first failed.
async fn make_dirs(ctx: &ActionCtx<'_>, path: &str) -> Result<Option<String>, TransportError> {
    let mut cur = String::new();
    let mut steps = Vec::new();
    for part in path.trim_matches('/').split('/') {
        cur = format!("{cur}/{part}");
        if !path.starts_with('/') {
            cur = cur.trim_start_matches('/').to_string();
        }
        steps.push(quote(&cur));
    }
    let script = format!(
        "for d in {}; do [ -e \"$d\" ] || mkdir \"$d\" 2>/dev/null || [ -d \"$d\" ] || mkdir \"$d\" || {{ printf '%s\\n' \"$d\"; exit 1; }}; done",
        steps.join(" ")
    );
    let out = sh(ctx, &script, None).await?;
    if out.rc == 0 {
        return Ok(None);
    }
    let failed_at = out.stdout_text().trim_end_matches('\n').to_string();
    let stderr = out.stderr_text();
    let reason = stderr.trim().rsplit(": ").next().unwrap_or("").to_string();
    if failed_at.is_empty() {
        return Ok(Some(stderr.trim().to_string()));
    }
    let error = match errno_of(&reason) {
        Some(n) => format!("[Errno {n}] {reason}: {}", py_bytes_repr(&failed_at)),
        None => reason,
    };
    Ok(Some(format!(
        "There was an issue creating {failed_at} as requested: {error}"
    )))
}

/// Linux errno of a `strerror` text (the ones a mkdir or write can meet).
fn errno_of(text: &str) -> Option<u32> {
    Some(match text {
        "Operation not permitted" => 1,
        "No such file or directory" => 2,
        "Permission denied" => 13,
        "File exists" => 17,
        "Not a directory" => 20,
        "No space left on device" => 28,
        "Read-only file system" => 30,
        "File name too long" => 36,
        "Too many levels of symbolic links" => 40,
        "Disk quota exceeded" => 122,
        _ => return None,
    })
}

/// Python's `repr()` of a bytes path (`b'/x'`), as an `OSError` message shows it.
fn py_bytes_repr(s: &str) -> String {
    let quote_char = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = format!("b{quote_char}");
    for b in s.bytes() {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b if b == quote_char as u8 => {
                out.push('\\');
                out.push(quote_char);
            }
            0x20..=0x7e => out.push(b as char),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote_char);
    out
}

#[cfg(test)]
mod tests {
    use super::{errno_of, py_bytes_repr};

    #[test]
    fn os_errors_read_as_python_prints_them() {
        assert_eq!(errno_of("Permission denied"), Some(13));
        assert_eq!(errno_of("something else"), None);
        assert_eq!(py_bytes_repr("/tmp/a b"), "b'/tmp/a b'");
        assert_eq!(py_bytes_repr("/x'y"), "b\"/x'y\"");
        assert_eq!(py_bytes_repr("/x'y\"z"), "b'/x\\'y\"z'");
        assert_eq!(py_bytes_repr("/é\n"), "b'/\\xc3\\xa9\\n'");
    }
}
