//! `fetch`: copies a remote file to the controller (in chunks for large files), verifying
//! its SHA-1.

use super::remote::{fail, info, remote_digest, sh, R};
use super::transfer::{progress, CHUNK};
use crate::builtins::digest::{md5_hex, sha1_hex};
use crate::builtins::spec::{Arg, Check};
use crate::builtins::ActionCtx;
use crate::builtins::Params;
use crate::transport::quote;
use serde_json::{Map, Value};

use std::path::{Path, PathBuf};

/// `fetch`'s arguments: its action reads these and, as Ansible's, ignores other keys.
pub const ARGS: Check = Check::Any(&[
    Arg::str("dest"),
    Arg::bool("fail_on_missing", true),
    Arg::bool("flat", false),
    Arg::str("src"),
    Arg::bool("validate_checksum", true).unimplemented(),
]);

/// `fetch`: copies a remote file to the controller, verifying its SHA-1.
pub async fn run(ctx: &ActionCtx<'_>, p: &Params) -> R {
    let (Some(src), Some(dest)) = (p.str("src"), p.str("dest")) else {
        return fail("src and dest are required");
    };
    let flat = p.bool("flat");
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
        if p.bool("fail_on_missing") {
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
