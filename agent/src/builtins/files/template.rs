//! `template`: renders a controller-side Jinja file (Ansible's `trim_blocks`) and puts it on
//! the target as `copy` does.

use super::content::{local_source, put_content};
use super::remote::{fail, R};
use crate::builtins::spec::{Arg, Check, Default, Kind, FILE_COMMON};
use crate::builtins::ActionCtx;
use crate::builtins::Params;

/// `template`'s arguments: its action's own options, then those of the `copy` module it runs
/// (which reports unknown keys).
pub const ARGS: Check = Check::Spec {
    name: Some("ansible.legacy.copy"),
    args: &[
        Arg::str("_original_basename").unimplemented(),
        Arg::bool("backup", false).unimplemented(),
        Arg::str("checksum").unimplemented(),
        Arg::path("dest"),
        Arg::raw("directory_mode").unimplemented(),
        Arg::bool("follow", false).unimplemented(),
        Arg::bool("force", true).unimplemented(),
        Arg::str("validate").unimplemented(),
        Arg::raw("content").unimplemented(),
        Arg::bool("local_follow", true).unimplemented(),
        Arg::bool("remote_src", false).unimplemented(),
        Arg::path("src"),
        Arg::str("block_start_string")
            .default_str("{%")
            .unimplemented()
            .action_only(),
        Arg::str("block_end_string")
            .default_str("%}")
            .unimplemented()
            .action_only(),
        Arg::str("comment_start_string")
            .unimplemented()
            .action_only(),
        Arg::str("comment_end_string").unimplemented().action_only(),
        Arg::str("variable_start_string")
            .default_str("{{")
            .unimplemented()
            .action_only(),
        Arg::str("variable_end_string")
            .default_str("}}")
            .unimplemented()
            .action_only(),
        Arg::bool("lstrip_blocks", false)
            .unimplemented()
            .action_only(),
        Arg::bool("trim_blocks", true).unimplemented().action_only(),
        Arg::str("newline_sequence")
            .default(Default::Str("\\n"))
            .choices(&["\\n", "\\r", "\\r\\n"])
            .unimplemented()
            .action_only(),
        Arg::str("output_encoding")
            .default_str("utf-8")
            .unimplemented()
            .action_only(),
        Arg::new("state", Kind::Raw).unimplemented().action_only(),
    ],
    common: FILE_COMMON,
    exclusive: &[],
};

/// `template`: renders a controller-side Jinja file (Ansible's `trim_blocks`) and copies it.
pub async fn run(ctx: &ActionCtx<'_>, p: &Params) -> R {
    let (Some(src), Some(dest)) = (p.str("src"), p.str("dest")) else {
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
    // the variables Ansible's template action adds for the file being rendered (they win over
    // the task's own, as in Ansible)
    let full = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
    let vars = minijinja::context! {
        ansible_managed => "Ansible managed",
        template_path => path.display().to_string(),
        template_fullpath => full.display().to_string(),
        template_destpath => dest.clone(),
        template_host => controller_hostname(),
        template_mtime => std::fs::metadata(&path).ok().and_then(|m| m.modified().ok()).map(python_datetime),
        template_uid => file_owner(&path),
        template_run_date => python_datetime(std::time::SystemTime::now()),
        ..ctx.vars.clone()
    };
    let rendered = match ctx.templar.render_str(&format!("{trimmed}{{# #}}"), &vars) {
        Ok(v) => crate::jinja::value::scalar_string(&v),
        Err(e) => return fail(format!("{}: {e:#}", path.display())),
    };
    put_content(ctx, p, &dest, rendered.as_bytes(), Some(&path)).await
}

/// The controller's host name, as `template_host` (`platform.node()` in Ansible).
fn controller_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// A time as Python's `str(datetime)` in local time (`2026-12-04 00:31:07.123456`), the
/// form Ansible's `template_mtime` and `template_run_date` render as.
fn python_datetime(t: std::time::SystemTime) -> String {
    let local: chrono::DateTime<chrono::Local> = t.into();
    if local.timestamp_subsec_micros() == 0 {
        local.format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        local.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
    }
}

/// The user name owning `path` on the controller (`template_uid`), else its numeric uid.
fn file_owner(path: &std::path::Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(uid) = std::fs::metadata(path).map(|m| m.uid()) else {
        return String::new();
    };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|pw| {
            pw.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                (f.nth(1)? == uid.to_string()).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}
