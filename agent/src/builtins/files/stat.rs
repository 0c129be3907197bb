//! `stat`: what Ansible's stat module reports about a path (mode bits, owner, type, link
//! target, inode, device, times, SHA-1 checksum).

use super::remote::{fail, info_checked, remote_digest, sh, R};
use crate::builtins::spec::{Arg, Check};
use crate::builtins::ActionCtx;
use crate::builtins::Params;
use crate::transport::quote;
use serde_json::{Map, Value};

/// `stat`'s argument spec (the agent computes SHA-1 checksums; file attributes are not
/// reported, which `get_attributes` only asks for).
pub const ARGS: Check = Check::Spec {
    name: None,
    args: &[
        Arg::str("checksum_algorithm")
            .aliases(&["checksum", "checksum_algo"])
            .default_str("sha1")
            .choices(&["md5", "sha1", "sha224", "sha256", "sha384", "sha512"])
            .only(&["sha1"]),
        Arg::bool("follow", false),
        Arg::bool("get_attributes", true).aliases(&["attr", "attributes"]),
        Arg::bool("get_checksum", true),
        Arg::bool("get_mime", true).aliases(&["mime", "mime_type", "mime-type"]),
        Arg::path("path").aliases(&["dest", "name"]).required(),
    ],
    common: &[],
    exclusive: &[],
};

/// `stat`.
pub async fn run(ctx: &ActionCtx<'_>, p: &Params) -> R {
    let Some(path) = p.str("path") else {
        return fail("path is required");
    };
    let mut st = Map::new();
    // `follow`: what a symlink points to is described (os.stat), under the name given
    let looked_at = if p.bool("follow") {
        let out = sh(ctx, &format!("readlink -m {}", quote(&path)), None).await?;
        let real = out.stdout_text().trim_end_matches('\n').to_string();
        if out.rc == 0 && !real.is_empty() {
            real
        } else {
            path.clone()
        }
    } else {
        path.clone()
    };
    let found = match info_checked(ctx, &looked_at).await? {
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
            // inode, device and times (lstat's, as Ansible's with follow off): seconds as
            // floats, with the fractional part Python's os.stat gives
            let times = sh(
                ctx,
                &format!(
                    "stat -c '%i|%d|%.9X|%.9Y|%.9Z|%b|%B|%r' {}",
                    quote(&looked_at)
                ),
                None,
            )
            .await?;
            let text = times.stdout_text();
            let f: Vec<&str> = text.trim_end().split('|').collect();
            if times.rc == 0 && f.len() == 8 {
                let int = |s: &str| s.parse::<u64>().map(Value::from).unwrap_or(Value::Null);
                let float = |s: &str| {
                    s.parse::<f64>()
                        .ok()
                        .and_then(|x| serde_json::Number::from_f64(x).map(Value::Number))
                        .unwrap_or(Value::Null)
                };
                st.insert("inode".into(), int(f[0]));
                st.insert("dev".into(), int(f[1]));
                st.insert("atime".into(), float(f[2]));
                st.insert("mtime".into(), float(f[3]));
                st.insert("ctime".into(), float(f[4]));
                st.insert("blocks".into(), int(f[5]));
                st.insert("block_size".into(), int(f[6]));
                st.insert("device_type".into(), int(f[7]));
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
            // `get_mime`: what the `file` utility says, "unknown" without it (as Ansible)
            if p.bool("get_mime") {
                let q = quote(&looked_at);
                let out = sh(
                    ctx,
                    &format!("file -b --mime-type {q} && file -b --mime-encoding {q}"),
                    None,
                )
                .await?;
                let text = out.stdout_text();
                let mut lines = text.lines();
                let (mime, charset) = match (out.rc, lines.next(), lines.next()) {
                    (0, Some(m), Some(c)) => (m.to_string(), c.to_string()),
                    _ => ("unknown".to_string(), "unknown".to_string()),
                };
                st.insert("mimetype".into(), mime.into());
                st.insert("charset".into(), charset.into());
            }
            let want_checksum = p.bool("get_checksum");
            if i.is_reg() && want_checksum {
                if let Some(c) = remote_digest(ctx, "sha1sum", &looked_at).await? {
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
