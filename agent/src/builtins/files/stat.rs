//! `stat`: what Ansible's stat module reports about a path (mode bits, owner, type, link
//! target, SHA-1 checksum).

use super::remote::{fail, info_checked, remote_digest, sh, R};
use crate::builtins::spec::{Arg, Check};
use crate::builtins::ActionCtx;
use crate::builtins::Params;
use crate::transport::quote;
use serde_json::{Map, Value};

/// `stat`'s argument spec (the agent computes SHA-1 checksums; attributes and MIME types are
/// not reported, which `get_attributes`/`get_mime` only ask for).
pub const ARGS: Check = Check::Spec {
    name: None,
    args: &[
        Arg::str("checksum_algorithm")
            .aliases(&["checksum", "checksum_algo"])
            .default_str("sha1")
            .choices(&["md5", "sha1", "sha224", "sha256", "sha384", "sha512"])
            .only(&["sha1"]),
        Arg::bool("follow", false).unimplemented(),
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
            let want_checksum = p.bool("get_checksum");
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
