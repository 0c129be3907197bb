//! `template`: renders a controller-side Jinja file (Ansible's `trim_blocks`) and puts it on
//! the target as `copy` does.

use super::content::{local_source, put_content};
use super::remote::{fail, R};
use crate::builtins::spec::{Arg, Check, Default, Kind, FILE_COMMON};
use crate::builtins::ActionCtx;
use crate::builtins::Params;
use crate::jinja::file_template::{self, Overrides};
use std::path::PathBuf;

/// `template`'s arguments: its action's own options, then those of the `copy` module it runs
/// (which reports unknown keys).
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
        Arg::raw("content").unimplemented(),
        Arg::bool("local_follow", true).unimplemented(),
        Arg::bool("remote_src", false).unimplemented(),
        Arg::path("src"),
        Arg::str("block_start_string")
            .default_str("{%")
            .action_only(),
        Arg::str("block_end_string").default_str("%}").action_only(),
        Arg::str("comment_start_string").action_only(),
        Arg::str("comment_end_string").action_only(),
        Arg::str("variable_start_string")
            .default_str("{{")
            .action_only(),
        Arg::str("variable_end_string")
            .default_str("}}")
            .action_only(),
        Arg::bool("lstrip_blocks", false).action_only(),
        Arg::bool("trim_blocks", true).action_only(),
        Arg::str("newline_sequence")
            .default(Default::Str("\\n"))
            .action_only(),
        Arg::str("output_encoding")
            .default_str("utf-8")
            .action_only(),
        Arg::new("state", Kind::Raw).unimplemented().action_only(),
    ],
    common: FILE_COMMON,
    exclusive: &[],
};

/// The template options that are [`Overrides`] of the same name.
const OVERRIDE_ARGS: [&str; 9] = [
    "block_start_string",
    "block_end_string",
    "variable_start_string",
    "variable_end_string",
    "comment_start_string",
    "comment_end_string",
    "trim_blocks",
    "lstrip_blocks",
    "newline_sequence",
];

/// `template`: renders a controller-side Jinja file with the task's variables (its options
/// and `#jinja2:` line as overrides, its includes found on the template search path) and
/// puts it on the target as `copy` does.
pub async fn run(ctx: &ActionCtx<'_>, p: &Params) -> R {
    let (Some(src), Some(dest)) = (p.str("src"), p.str("dest")) else {
        return fail("src and dest are required");
    };
    let mut overrides = Overrides::default();
    for name in OVERRIDE_ARGS {
        if let Some(v) = p.value(name) {
            if let Err(e) = overrides.set(name, &v) {
                return fail(format!("{e:#}"));
            }
        }
    }
    let encoding = match p.str("output_encoding").filter(|e| !e.is_empty()) {
        None => None,
        Some(label) => match output_encoding(&label) {
            Ok(e) => Some(e),
            Err(msg) => return fail(msg),
        },
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
    // the variables Ansible's template action adds for the file being rendered (they win over
    // the task's own, as in Ansible)
    let full = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
    let mtime = std::fs::metadata(&path)
        .ok()
        .and_then(|m| m.modified().ok());
    let template_vars = minijinja::context! {
        template_path => path.display().to_string(),
        template_fullpath => full.display().to_string(),
        template_destpath => dest.clone(),
        template_host => controller_hostname(),
        template_mtime => mtime.map(python_datetime),
        template_uid => file_owner(&path),
        template_run_date => python_datetime(std::time::SystemTime::now()),
    };
    // the template's variables win over the task's, as ansible-core updates the task's with
    // them (`merge_maps`: the first map that has a key gives it)
    let with_task = minijinja::value::merge_maps([template_vars.clone(), ctx.vars.clone()]);
    // `ansible_managed` unless the task's variables set it (ansible-core does not clobber it)
    let managed = match ctx.vars.get_attr("ansible_managed") {
        Ok(v) if !v.is_undefined() => None,
        _ => match managed_text(&crate::config::managed_str(), mtime) {
            Some(text) => match ctx.templar.render_str(&text, &with_task) {
                Ok(v) => Some(crate::jinja::value::scalar_string(&v)),
                Err(e) => return fail(format!("ansible_managed: {e:#}")),
            },
            None => {
                return fail("ansible_managed: the configured text has an invalid strftime code")
            }
        },
    };
    let managed = match managed {
        Some(text) => minijinja::context! { ansible_managed => text },
        None => minijinja::context! {},
    };
    let vars = minijinja::value::merge_maps([template_vars, managed, ctx.vars.clone()]);
    // includes: the task's search path, the playbook's directory, the template's own
    let mut search: Vec<PathBuf> = match ctx.vars.get_attr("ansible_search_path") {
        Ok(v) => v
            .try_iter()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(PathBuf::from))
            .collect(),
        Err(_) => Vec::new(),
    };
    if let Some(dir) = ctx
        .vars
        .get_attr("playbook_dir")
        .ok()
        .and_then(|v| v.as_str().map(PathBuf::from))
    {
        search.push(dir);
    }
    search.extend(path.parent().map(std::path::Path::to_path_buf));
    let dirs = file_template::include_path(&search);
    let rendered = match ctx.templar.render_file(&text, &vars, &overrides, dirs) {
        Ok(text) => text,
        // a template that does not parse: ansible-core's words, without the path
        Err(e) if e.is::<file_template::SyntaxError>() => return fail(format!("Task failed: {e}")),
        Err(e) => return fail(format!("{}: {e:#}", path.display())),
    };
    let bytes = match encoding {
        None => rendered.into_bytes(),
        Some(enc) => {
            let (bytes, _, unmappable) = enc.encode(&rendered);
            if unmappable {
                return fail(format!(
                    "{}: the rendered text cannot be encoded as {}",
                    path.display(),
                    enc.name()
                ));
            }
            bytes.into_owned()
        }
    };
    put_content(ctx, p, &dest, &bytes, Some(&path)).await
}

/// The encoding `output_encoding` names (Python's codec names that the WHATWG labels share:
/// `utf-8`, `windows-1252`, `iso-8859-2`, `shift_jis`, ...). UTF-16 is refused (encoding_rs
/// does not write it).
fn output_encoding(label: &str) -> Result<&'static encoding_rs::Encoding, String> {
    let lower = label.to_ascii_lowercase().replace('_', "-");
    let label = match lower.as_str() {
        "utf8" => "utf-8",
        "cp1252" => "windows-1252",
        "latin-1" | "latin1" => "iso-8859-1",
        other => other,
    };
    match encoding_rs::Encoding::for_label(label.as_bytes()) {
        Some(e) if e.output_encoding() == e => Ok(e),
        _ => Err(format!(
            "template: output_encoding {label:?} is not supported by etcd-agent"
        )),
    }
}

/// The text of `ansible_managed` from the configured one, as ansible-core makes it: `{file}`,
/// `{host}` and `{uid}` become expressions of the template's variables (never the values
/// themselves: a file name is not a template), `{{`/`}}` single braces (Python's `format`),
/// then strftime codes take the template's modification time. The result is then rendered
/// as a template. `None` for a strftime code chrono does not know.
fn managed_text(configured: &str, mtime: Option<std::time::SystemTime>) -> Option<String> {
    let mut formatted = String::with_capacity(configured.len());
    let mut rest = configured;
    while let Some(c) = rest.chars().next() {
        let (piece, len): (&str, usize) = if rest.starts_with("{{") {
            ("{", 2)
        } else if rest.starts_with("}}") {
            ("}", 2)
        } else if rest.starts_with("{file}") {
            ("{{ template_path }}", 6)
        } else if rest.starts_with("{host}") {
            ("{{ template_host }}", 6)
        } else if rest.starts_with("{uid}") {
            ("{{ template_uid }}", 5)
        } else {
            (&rest[..c.len_utf8()], c.len_utf8())
        };
        formatted.push_str(piece);
        rest = &rest[len..];
    }
    let local: chrono::DateTime<chrono::Local> =
        mtime.unwrap_or_else(std::time::SystemTime::now).into();
    let mut out = String::new();
    use std::fmt::Write;
    write!(out, "{}", local.format(&formatted)).ok()?;
    Some(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansible_managed_text_keeps_names_out_of_the_template() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(86_400 * 365);
        let text =
            managed_text("Managed: {file} by {uid} on {host} ({{{{x}}}}) %Y", Some(t)).unwrap();
        assert_eq!(
            text,
            "Managed: {{ template_path }} by {{ template_uid }} on {{ template_host }} ({{x}}) 1971"
        );
        assert_eq!(
            managed_text("Ansible managed", None).unwrap(),
            "Ansible managed"
        );
        assert!(managed_text("bad %Q", None).is_none());
    }
}
