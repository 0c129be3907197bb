//! The remote path layer of the file builtins: shell commands on the target, what `stat` says
//! about a path ([`Info`]), digests, owner/group/mode changes and the path fields
//! `AnsibleModule.add_path_info` adds to results. Plain POSIX tools, no Python.

use crate::builtins::Params;
use crate::builtins::{ActionCtx, ResultMap};
use crate::transport::{quote, ExecOutput, TransportError};
use serde_json::Value;

pub(crate) type R = Result<ResultMap, TransportError>;

pub(crate) async fn sh(
    ctx: &ActionCtx<'_>,
    cmd: &str,
    stdin: Option<&[u8]>,
) -> Result<ExecOutput, TransportError> {
    let conn = ctx.connection().await?;
    ctx.exec(&conn, cmd, stdin).await
}

pub(crate) fn fail(msg: impl Into<String>) -> R {
    let mut m = crate::builtins::failed(msg);
    m.insert("changed".into(), Value::Bool(false));
    Ok(m)
}

/// What `stat -L`-less `stat` says about a path.
#[derive(Debug, Clone)]
pub(crate) struct Info {
    /// Raw `st_mode`.
    pub(crate) raw_mode: u32,
    /// Size in bytes.
    pub(crate) size: u64,
    /// Owner id.
    pub(crate) uid: u64,
    /// Group id.
    pub(crate) gid: u64,
    /// Owner name.
    pub(crate) owner: String,
    /// Group name.
    pub(crate) group: String,
    /// Readable by the (become) user.
    pub(crate) readable: bool,
    /// Writable by the (become) user.
    pub(crate) writeable: bool,
    /// Executable by the (become) user.
    pub(crate) executable: bool,
    /// Hard link count (of the link itself for a symlink).
    pub(crate) nlink: u64,
    /// The path exists when links are followed (Python's `os.path.exists`).
    pub(crate) exists: bool,
    /// The path is a directory when links are followed (`os.path.isdir`).
    pub(crate) dir_follow: bool,
    /// The link target (`readlink`), for a symlink.
    pub(crate) link_target: Option<String>,
}

impl Info {
    pub(crate) fn kind(&self) -> u32 {
        self.raw_mode & 0o170000
    }
    pub(crate) fn is_dir(&self) -> bool {
        self.kind() == 0o040000
    }
    pub(crate) fn is_reg(&self) -> bool {
        self.kind() == 0o100000
    }
    pub(crate) fn is_link(&self) -> bool {
        self.kind() == 0o120000
    }
    pub(crate) fn mode(&self) -> String {
        format!("{:04o}", self.raw_mode & 0o7777)
    }
    /// The file module's `get_state`: a regular file with more than one link is `hard`.
    pub(crate) fn state(&self) -> &'static str {
        if self.is_link() {
            "link"
        } else if self.is_dir() {
            "directory"
        } else if self.nlink > 1 {
            "hard"
        } else {
            "file"
        }
    }
}

pub(crate) async fn info(ctx: &ActionCtx<'_>, path: &str) -> Result<Option<Info>, TransportError> {
    Ok(info_checked(ctx, path).await?.unwrap_or(None))
}

/// Like [`info`], but a path that cannot be looked at (`Permission denied` on a parent, `Not a
/// directory`) is an error with the OS message, as Python's `os.lstat` raises it.
pub(crate) async fn info_checked(
    ctx: &ActionCtx<'_>,
    path: &str,
) -> Result<Result<Option<Info>, String>, TransportError> {
    let p = quote(path);
    let cmd = format!(
        "if [ -e {p} ] || [ -L {p} ]; then stat -c '%f|%s|%u|%g|%U|%G|%h' {p} && {{ [ -r {p} ] && echo r || echo -; [ -w {p} ] && echo w || echo -; [ -x {p} ] && echo x || echo -; {{ [ -e {p} ] && printf e; [ -d {p} ] && printf d; echo; }}; readlink {p} || true; }}; \
         else e=$(LC_ALL=C stat -c %f {p} 2>&1 >/dev/null); case \"$e\" in ''|*'No such file or directory') echo absent;; *) echo \"error:${{e##*: }}\";; esac; fi"
    );
    let out = sh(ctx, &cmd, None).await?;
    let text = out.stdout_text();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    if let Some(e) = first.strip_prefix("error:") {
        return Ok(Err(e.to_string()));
    }
    if first == "absent" || out.rc != 0 {
        return Ok(Ok(None));
    }
    let f: Vec<&str> = first.split('|').collect();
    if f.len() < 6 {
        return Ok(Ok(None));
    }
    let flag = |l: Option<&str>, c: &str| l.is_some_and(|x| x == c);
    let has = |l: Option<&str>, c: char| l.is_some_and(|x| x.contains(c));
    let (r, w, x, e) = (lines.next(), lines.next(), lines.next(), lines.next());
    Ok(Ok(Some(Info {
        raw_mode: u32::from_str_radix(f[0], 16).unwrap_or(0),
        size: f[1].parse().unwrap_or(0),
        uid: f[2].parse().unwrap_or(0),
        gid: f[3].parse().unwrap_or(0),
        owner: f[4].to_string(),
        group: f[5].to_string(),
        readable: flag(r, "r"),
        writeable: flag(w, "w"),
        executable: flag(x, "x"),
        nlink: f.get(6).and_then(|n| n.parse().ok()).unwrap_or(1),
        exists: has(e, 'e'),
        dir_follow: has(e, 'd'),
        link_target: lines.next().map(str::to_string).filter(|s| !s.is_empty()),
    })))
}

pub(crate) async fn remote_digest(
    ctx: &ActionCtx<'_>,
    tool: &str,
    path: &str,
) -> Result<Option<String>, TransportError> {
    // the file on stdin: with a name holding `\\` or a newline the tool would escape the
    // line it prints (a leading `\\` before the digest)
    let out = sh(ctx, &format!("{tool} < {} 2>/dev/null", quote(path)), None).await?;
    Ok((out.rc == 0)
        .then(|| {
            out.stdout_text()
                .split_whitespace()
                .next()
                .map(str::to_string)
        })
        .flatten())
}

pub(crate) fn owner_fields(m: &mut ResultMap, i: &Info) {
    m.insert("gid".into(), i.gid.into());
    m.insert("group".into(), i.group.clone().into());
    m.insert("mode".into(), i.mode().into());
    m.insert("owner".into(), i.owner.clone().into());
    m.insert("size".into(), i.size.into());
    m.insert("state".into(), i.state().into());
    m.insert("uid".into(), i.uid.into());
}

/// Octal mode text (`0640`, `640`, `u=rw,g=r`) for chmod; numbers are taken as YAML wrote them.
pub(crate) fn mode_arg(p: &Params) -> Option<String> {
    match p.raw("mode")? {
        Value::Number(n) => n.as_u64().map(|v| format!("{v:o}")),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// chown/chgrp/chmod as asked (the module's order); true when something changed.
pub(crate) async fn set_attrs(
    ctx: &ActionCtx<'_>,
    p: &Params,
    path: &str,
    before: Option<&Info>,
) -> Result<bool, TransportError> {
    set_attrs_mode(ctx, p, path, before, mode_arg(p)).await
}

/// [`set_attrs`] with the mode given (`mode: preserve` resolved by the caller).
pub(crate) async fn set_attrs_mode(
    ctx: &ActionCtx<'_>,
    p: &Params,
    path: &str,
    before: Option<&Info>,
    mode: Option<String>,
) -> Result<bool, TransportError> {
    let mut cmds = Vec::new();
    if let Some(owner) = p.str("owner") {
        if before.is_none_or(|i| i.owner != owner && i.uid.to_string() != owner) {
            cmds.push(format!("chown {} {}", quote(&owner), quote(path)));
        }
    }
    if let Some(group) = p.str("group") {
        if before.is_none_or(|i| i.group != group && i.gid.to_string() != group) {
            cmds.push(format!("chgrp {} {}", quote(&group), quote(path)));
        }
    }
    if let Some(mode) = mode {
        let want_num = u32::from_str_radix(mode.trim_start_matches('0'), 8).ok();
        let same = match (want_num, before) {
            (Some(w), Some(i)) => (i.raw_mode & 0o7777) == w,
            _ => false,
        };
        if !same {
            cmds.push(format!("chmod {} {}", quote(&mode), quote(path)));
        }
    }
    if cmds.is_empty() {
        return Ok(false);
    }
    if ctx.check {
        return Ok(true);
    }
    let out = sh(ctx, &cmds.join(" && "), None).await?;
    if out.rc != 0 {
        return Err(TransportError::Failed(out.stderr_text().trim().to_string()));
    }
    Ok(true)
}

/// What `AnsibleModule.add_path_info` adds to every result naming a `path` (or `dest`) that
/// exists when links are followed: the `lstat` owner, mode, size and `get_state` of it.
pub(crate) async fn add_path_info(ctx: &ActionCtx<'_>, mut m: ResultMap) -> R {
    let path = m
        .get("path")
        .or_else(|| m.get("dest"))
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(p) = path {
        if let Some(i) = info(ctx, &p).await?.filter(|i| i.exists) {
            owner_fields(&mut m, &i);
        }
    }
    Ok(m)
}
