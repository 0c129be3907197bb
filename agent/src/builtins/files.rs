//! File builtins run with plain POSIX tools on the target (no Python): `copy` (content, src,
//! remote_src), `template`, `fetch` (checksum verified) and `stat`, and the path inspection and
//! attribute helpers that `file` and `lineinfile` share. Results carry the fields Ansible's
//! modules return.
//!
//! Copy and fetch move large files in chunks and show a byte progress bar (indicatif) when
//! stderr is a terminal.

use super::digest::{md5_hex, sha1_hex};
use super::{ActionCtx, ResultMap};
use crate::transport::{quote, ExecOutput, TransportError};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Files at least this big are moved in chunks, with a progress bar on a terminal.
const CHUNK: usize = 4 << 20;

pub(super) type R = Result<ResultMap, TransportError>;

pub(super) async fn sh(
    ctx: &ActionCtx<'_>,
    cmd: &str,
    stdin: Option<&[u8]>,
) -> Result<ExecOutput, TransportError> {
    let conn = ctx.connection().await?;
    conn.exec(&ctx.wrap(cmd), stdin, None).await
}

pub(super) fn fail(msg: impl Into<String>) -> R {
    let mut m = super::failed(msg);
    m.insert("changed".into(), Value::Bool(false));
    Ok(m)
}

/// What `stat -L`-less `stat` says about a path.
#[derive(Debug, Clone)]
pub(super) struct Info {
    /// Raw `st_mode`.
    pub(super) raw_mode: u32,
    size: u64,
    pub(super) uid: u64,
    pub(super) gid: u64,
    owner: String,
    group: String,
    readable: bool,
    writeable: bool,
    executable: bool,
    /// Hard link count (of the link itself for a symlink).
    nlink: u64,
    /// The path exists when links are followed (Python's `os.path.exists`).
    pub(super) exists: bool,
    /// The path is a directory when links are followed (`os.path.isdir`).
    pub(super) dir_follow: bool,
    pub(super) link_target: Option<String>,
}

impl Info {
    pub(super) fn kind(&self) -> u32 {
        self.raw_mode & 0o170000
    }
    pub(super) fn is_dir(&self) -> bool {
        self.kind() == 0o040000
    }
    pub(super) fn is_reg(&self) -> bool {
        self.kind() == 0o100000
    }
    pub(super) fn is_link(&self) -> bool {
        self.kind() == 0o120000
    }
    pub(super) fn mode(&self) -> String {
        format!("{:04o}", self.raw_mode & 0o7777)
    }
    /// The file module's `get_state`: a regular file with more than one link is `hard`.
    pub(super) fn state(&self) -> &'static str {
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

pub(super) async fn info(ctx: &ActionCtx<'_>, path: &str) -> Result<Option<Info>, TransportError> {
    Ok(info_checked(ctx, path).await?.unwrap_or(None))
}

/// Like [`info`], but a path that cannot be looked at (`Permission denied` on a parent, `Not a
/// directory`) is an error with the OS message, as Python's `os.lstat` raises it.
async fn info_checked(
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

async fn remote_digest(
    ctx: &ActionCtx<'_>,
    tool: &str,
    path: &str,
) -> Result<Option<String>, TransportError> {
    let out = sh(ctx, &format!("{tool} {} 2>/dev/null", quote(path)), None).await?;
    Ok((out.rc == 0)
        .then(|| {
            out.stdout_text()
                .split_whitespace()
                .next()
                .map(str::to_string)
        })
        .flatten())
}

fn owner_fields(m: &mut ResultMap, i: &Info) {
    m.insert("gid".into(), i.gid.into());
    m.insert("group".into(), i.group.clone().into());
    m.insert("mode".into(), i.mode().into());
    m.insert("owner".into(), i.owner.clone().into());
    m.insert("size".into(), i.size.into());
    m.insert("state".into(), i.state().into());
    m.insert("uid".into(), i.uid.into());
}

/// Octal mode text (`0640`, `640`, `u=rw,g=r`) for chmod; numbers are taken as YAML wrote them.
pub(super) fn mode_arg(ctx: &ActionCtx<'_>) -> Option<String> {
    match ctx.args.get("mode")? {
        Value::Number(n) => n.as_u64().map(|v| format!("{v:o}")),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// chown/chgrp/chmod as asked (the module's order); true when something changed.
pub(super) async fn set_attrs(
    ctx: &ActionCtx<'_>,
    path: &str,
    before: Option<&Info>,
) -> Result<bool, TransportError> {
    set_attrs_mode(ctx, path, before, mode_arg(ctx)).await
}

/// [`set_attrs`] with the mode given (`mode: preserve` resolved by the caller).
async fn set_attrs_mode(
    ctx: &ActionCtx<'_>,
    path: &str,
    before: Option<&Info>,
    mode: Option<String>,
) -> Result<bool, TransportError> {
    let mut cmds = Vec::new();
    if let Some(owner) = ctx.arg_str("owner") {
        if before.is_none_or(|i| i.owner != owner && i.uid.to_string() != owner) {
            cmds.push(format!("chown {} {}", quote(&owner), quote(path)));
        }
    }
    if let Some(group) = ctx.arg_str("group") {
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

fn progress(total: u64, what: &str) -> indicatif::ProgressBar {
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
pub(super) async fn write_remote(
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

/// A controller-side file of the playbook: for a role's task the role's `files/` or
/// `templates/`, then the role's dir; then the playbook's `files/`/`templates/`, then its dir.
fn local_source(ctx: &ActionCtx<'_>, src: &str, sub: &str) -> Option<PathBuf> {
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
async fn put_content(ctx: &ActionCtx<'_>, dest: &str, data: &[u8], src: Option<&Path>) -> R {
    let src_name = src
        .filter(|_| !ctx.module.contains("template"))
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    let src_name = src_name.as_deref();
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
                    let mut f = super::failed(msg);
                    f.insert("changed".into(), Value::Bool(false));
                    f.insert("checksum".into(), checksum.into());
                    return Ok(f);
                }
            }
            if let Err(e) = write_remote(ctx, &dest, data).await {
                return match e {
                    TransportError::Unreachable(_) => Err(e),
                    TransportError::Failed(msg) => fail(msg),
                };
            }
        }
    }
    let now = if ctx.check && changed {
        before.clone()
    } else {
        info(ctx, &dest).await?
    };
    match set_attrs(ctx, &dest, now.as_ref()).await {
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
    if let Some(i) = &after {
        owner_fields(&mut m, i);
    } else {
        m.insert("size".into(), (data.len() as u64).into());
        m.insert("state".into(), "file".into());
    }
    Ok(m)
}

/// `copy`.
pub async fn copy(ctx: &ActionCtx<'_>) -> R {
    let Some(dest) = ctx.arg_str("dest") else {
        return fail("dest is required");
    };
    if ctx.arg_bool("backup") == Some(true) {
        return fail("copy: 'backup' is not supported by etcd-agent");
    }
    if let Some(content) = ctx.args.get("content") {
        let text = match content {
            Value::String(s) => s.clone(),
            other => crate::jinja::value::python_compact(other),
        };
        return put_content(ctx, &dest, text.as_bytes(), None).await;
    }
    let Some(src) = ctx.arg_str("src") else {
        return fail("src (or content) is required");
    };
    if ctx.arg_bool("remote_src") == Some(true) {
        return copy_remote(ctx, &src, &dest).await;
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
    put_content(ctx, &dest, &data, Some(&path)).await
}

/// `copy` with `remote_src: true`: a file already on the target (the module's own path; a
/// source directory is outside the subset).
async fn copy_remote(ctx: &ActionCtx<'_>, src: &str, dest: &str) -> R {
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
    let mode = match mode_arg(ctx).as_deref() {
        Some("preserve") => {
            let si = info(ctx, src).await?;
            si.map(|i| i.mode())
        }
        other => other.map(str::to_string),
    };
    match set_attrs_mode(ctx, &dest, now.as_ref(), mode).await {
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

/// `template`: renders a controller-side Jinja file (Ansible's `trim_blocks`) and copies it.
pub async fn template(ctx: &ActionCtx<'_>) -> R {
    let (Some(src), Some(dest)) = (ctx.arg_str("src"), ctx.arg_str("dest")) else {
        return fail("src and dest are required");
    };
    let Some(path) = local_source(ctx, &src, "templates") else {
        return fail(format!(
            "Could not find or access '{src}' on the Ansible Controller."
        ));
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => return fail(format!("cannot read {}: {e}", path.display())),
    };
    // trim_blocks: the newline right after a block tag goes
    let trimmed = text.replace("%}\r\n", "%}").replace("%}\n", "%}");
    let rendered = match ctx
        .templar
        .render_str(&format!("{trimmed}{{# #}}"), ctx.vars)
    {
        Ok(v) => crate::jinja::value::scalar_string(&v),
        Err(e) => return fail(format!("{}: {e:#}", path.display())),
    };
    put_content(ctx, &dest, rendered.as_bytes(), Some(&path)).await
}

/// `fetch`: copies a remote file to the controller, verifying its SHA-1.
pub async fn fetch(ctx: &ActionCtx<'_>) -> R {
    let (Some(src), Some(dest)) = (ctx.arg_str("src"), ctx.arg_str("dest")) else {
        return fail("src and dest are required");
    };
    let flat = ctx.arg_bool("flat").unwrap_or(false);
    let host = ctx
        .vars
        .get_attr("inventory_hostname")
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let local: PathBuf = if flat {
        if dest.ends_with('/') {
            Path::new(&dest).join(Path::new(&src).file_name().unwrap_or_default())
        } else {
            PathBuf::from(&dest)
        }
    } else {
        Path::new(&dest)
            .join(&host)
            .join(src.trim_start_matches('/'))
    };
    let local_s = local.display().to_string();
    let Some(remote) = remote_digest(ctx, "sha1sum", &src).await? else {
        let mut m = Map::new();
        m.insert("changed".into(), Value::Bool(false));
        m.insert("file".into(), src.clone().into());
        m.insert(
            "msg".into(),
            "the remote file does not exist, not transferring, ignored".into(),
        );
        if ctx.arg_bool("fail_on_missing").unwrap_or(true) {
            m.insert("failed".into(), Value::Bool(true));
        }
        return Ok(m);
    };
    let existing = std::fs::read(&local).ok();
    if let Some(bytes) = &existing {
        if sha1_hex(bytes) == remote {
            let mut m = Map::new();
            m.insert("changed".into(), Value::Bool(false));
            m.insert("checksum".into(), remote.into());
            m.insert("dest".into(), local_s.into());
            m.insert("file".into(), src.into());
            m.insert("md5sum".into(), md5_hex(bytes).into());
            return Ok(m);
        }
    }
    if ctx.check {
        let mut m = Map::new();
        m.insert("changed".into(), Value::Bool(true));
        m.insert("checksum".into(), remote.into());
        m.insert("dest".into(), local_s.into());
        return Ok(m);
    }
    let size = info(ctx, &src).await?.map(|i| i.size).unwrap_or(0);
    let pb = progress(size, &format!("fetch {src}"));
    let mut data = Vec::with_capacity(size as usize);
    if size as usize <= CHUNK {
        let out = sh(ctx, &format!("cat {}", quote(&src)), None).await?;
        if out.rc != 0 {
            return fail(format!("cannot read {src}: {}", out.stderr_text().trim()));
        }
        data = out.stdout;
    } else {
        let mut i = 0u64;
        loop {
            let out = sh(
                ctx,
                &format!(
                    "dd if={} bs={CHUNK} skip={i} count=1 status=none",
                    quote(&src)
                ),
                None,
            )
            .await?;
            if out.rc != 0 {
                return fail(format!("cannot read {src}: {}", out.stderr_text().trim()));
            }
            if out.stdout.is_empty() {
                break;
            }
            pb.inc(out.stdout.len() as u64);
            data.extend_from_slice(&out.stdout);
            i += 1;
        }
    }
    pb.finish_and_clear();
    let got = sha1_hex(&data);
    if got != remote {
        return fail(format!(
            "checksum mismatch: remote {remote}, transferred {got} (the file changed during the transfer?)"
        ));
    }
    if let Some(parent) = local.parent() {
        if let Err(e) = std::fs::create_dir_all(parent) {
            return fail(format!("cannot create {}: {e}", parent.display()));
        }
    }
    let tmp = local.with_extension("etcd-agent.tmp");
    if let Err(e) = std::fs::write(&tmp, &data).and_then(|_| std::fs::rename(&tmp, &local)) {
        return fail(format!("cannot write {local_s}: {e}"));
    }
    let mut m = Map::new();
    m.insert("changed".into(), Value::Bool(true));
    m.insert("checksum".into(), got.into());
    m.insert("dest".into(), local_s.into());
    m.insert("md5sum".into(), md5_hex(&data).into());
    m.insert("remote_checksum".into(), remote.into());
    m.insert("remote_md5sum".into(), Value::Null);
    Ok(m)
}

/// What `AnsibleModule.add_path_info` adds to every result naming a `path` (or `dest`) that
/// exists when links are followed: the `lstat` owner, mode, size and `get_state` of it.
pub(super) async fn add_path_info(ctx: &ActionCtx<'_>, mut m: ResultMap) -> R {
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

/// `stat`.
pub async fn stat(ctx: &ActionCtx<'_>) -> R {
    let Some(path) = ctx.arg_str("path") else {
        return fail("path is required");
    };
    let mut st = Map::new();
    let found = match info_checked(ctx, &path).await? {
        Ok(found) => found,
        Err(e) => return fail(e),
    };
    match found {
        None => {
            st.insert("exists".into(), Value::Bool(false));
        }
        Some(i) => {
            let b = |bit: u32| Value::Bool(i.raw_mode & bit != 0);
            st.insert("exists".into(), Value::Bool(true));
            st.insert("path".into(), path.clone().into());
            st.insert("mode".into(), i.mode().into());
            st.insert("isdir".into(), Value::Bool(i.is_dir()));
            st.insert("ischr".into(), Value::Bool(i.kind() == 0o020000));
            st.insert("isblk".into(), Value::Bool(i.kind() == 0o060000));
            st.insert("isreg".into(), Value::Bool(i.is_reg()));
            st.insert("isfifo".into(), Value::Bool(i.kind() == 0o010000));
            st.insert("islnk".into(), Value::Bool(i.is_link()));
            st.insert("issock".into(), Value::Bool(i.kind() == 0o140000));
            st.insert("uid".into(), i.uid.into());
            st.insert("gid".into(), i.gid.into());
            st.insert("size".into(), i.size.into());
            st.insert("nlink".into(), i.nlink.into());
            st.insert("pw_name".into(), i.owner.clone().into());
            st.insert("gr_name".into(), i.group.clone().into());
            for (k, bit) in [
                ("wusr", 0o200),
                ("rusr", 0o400),
                ("xusr", 0o100),
                ("wgrp", 0o020),
                ("rgrp", 0o040),
                ("xgrp", 0o010),
                ("woth", 0o002),
                ("roth", 0o004),
                ("xoth", 0o001),
                ("isuid", 0o4000),
                ("isgid", 0o2000),
            ] {
                st.insert(k.into(), b(bit));
            }
            st.insert("readable".into(), Value::Bool(i.readable));
            st.insert("writeable".into(), Value::Bool(i.writeable));
            st.insert("executable".into(), Value::Bool(i.executable));
            if i.is_link() {
                if let Some(t) = &i.link_target {
                    // lnk_source is os.path.realpath, lnk_target the raw readlink
                    let out = sh(ctx, &format!("readlink -m {}", quote(&path)), None).await?;
                    let real = out.stdout_text().trim_end_matches('\n').to_string();
                    st.insert("lnk_source".into(), real.into());
                    st.insert("lnk_target".into(), t.clone().into());
                }
            }
            let want_checksum = ctx.arg_bool("get_checksum").unwrap_or(true);
            if i.is_reg() && want_checksum {
                if let Some(c) = remote_digest(ctx, "sha1sum", &path).await? {
                    st.insert("checksum".into(), c.into());
                }
            }
        }
    }
    let mut m = Map::new();
    m.insert("changed".into(), Value::Bool(false));
    m.insert("stat".into(), Value::Object(st));
    Ok(m)
}
