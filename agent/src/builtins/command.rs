//! `command` and `shell`: run a command line on the target and report rc/stdout/stderr.

use super::command_result::{ended, timestamp};
use super::spec::{Arg, Check, Kind};
use super::Params;
use super::{ActionCtx, ResultMap};
use crate::transport::{quote, TransportError};
use serde_json::{Map, Value};

/// `command`'s argument spec (`shell` runs the same module: Ansible names it
/// `ansible.legacy.command` for both).
pub const ARGS: Check = Check::Spec {
    name: Some("ansible.legacy.command"),
    args: &[
        Arg::str("_raw_params"),
        Arg::bool("_uses_shell", false).unimplemented(),
        Arg::str("cmd"),
        Arg::new("argv", Kind::List),
        Arg::path("chdir"),
        Arg::str("executable"),
        Arg::bool("expand_argument_vars", true),
        Arg::path("creates"),
        Arg::path("removes"),
        Arg::str("stdin"),
        Arg::bool("stdin_add_newline", true),
        Arg::bool("strip_empty_ends", true),
    ],
    common: &[],
    exclusive: &[&["_raw_params", "cmd", "argv"]],
};

/// Runs `command` or `shell`.
pub async fn run(ctx: &ActionCtx<'_>, p: &Params) -> Result<ResultMap, TransportError> {
    let shell = ctx.module == "shell";
    if shell && ctx.args.contains_key("expand_argument_vars") {
        // the shell action's own refusal
        return Ok(super::failed(
            "Unsupported parameters for (shell) module: expand_argument_vars",
        ));
    }
    let raw = p
        .str("_raw_params")
        .filter(|r| !r.is_empty())
        .or_else(|| p.str("cmd"));
    if raw.is_none() && p.raw("argv").is_none() {
        // the command module's required_one_of, in its words (shell is the same module)
        return Ok(super::failed(
            "one of the following is required: _raw_params, cmd, argv",
        ));
    }
    let argv: Option<Vec<String>> = match p.raw("argv") {
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(crate::jinja::value::scalar_string)
                .collect(),
        ),
        _ => None,
    };
    let (cmd_value, line) = if shell {
        let Some(raw) = raw.clone() else {
            return Ok(super::failed("no command given"));
        };
        let exe = p.str("executable").unwrap_or_else(|| "/bin/sh".into());
        (
            Value::String(raw.clone()),
            format!("{} -c {}", quote(&exe), quote(&raw)),
        )
    } else {
        let words = match (argv, raw.clone()) {
            (Some(a), _) => a,
            (None, Some(raw)) => match shlex::split(&raw) {
                Some(w) => w,
                None => return Ok(super::failed(format!("cannot split command line {raw:?}"))),
            },
            (None, None) => return Ok(super::failed("no command given")),
        };
        if words.is_empty() {
            return Ok(super::failed("no command given"));
        }
        let expand = p.bool("expand_argument_vars");
        let line = words
            .iter()
            .map(|w| if expand { expanded_word(w) } else { quote(w) })
            .collect::<Vec<_>>()
            .join(" ");
        (
            Value::Array(words.into_iter().map(Value::String).collect()),
            line,
        )
    };
    let mut m = Map::new();
    if let (false, Some(exe)) = (shell, p.str("executable")) {
        m.insert(
            "warnings".into(),
            Value::Array(vec![Value::String(format!(
                "As of Ansible 2.4, the parameter 'executable' is no longer supported with the 'command' module. Not using '{exe}'."
            ))]),
        );
    }
    if let Some(path) = p.str("creates") {
        if path_exists(ctx, &path).await? {
            return Ok(skipped_since(
                cmd_value,
                &format!("{path} exists"),
                ctx.check,
            ));
        }
    }
    if let Some(path) = p.str("removes") {
        if !path_exists(ctx, &path).await? {
            return Ok(skipped_since(
                cmd_value,
                &format!("{path} does not exist"),
                ctx.check,
            ));
        }
    }
    if ctx.check {
        // like Ansible, the target is still contacted (an unreachable host is reported)
        ctx.connection().await?;
        // with creates/removes the module can tell: it would have run (changed); without,
        // it skips
        let guarded = p.str("creates").is_some() || p.str("removes").is_some();
        m.insert("changed".into(), Value::Bool(guarded));
        m.insert("cmd".into(), cmd_value);
        m.insert("delta".into(), Value::Null);
        m.insert("end".into(), Value::Null);
        m.insert(
            "msg".into(),
            "Command would have run if not in check mode".into(),
        );
        m.insert("rc".into(), 0.into());
        if !guarded {
            m.insert("skipped".into(), Value::Bool(true));
        }
        m.insert("start".into(), Value::Null);
        m.insert("stderr".into(), "".into());
        m.insert("stderr_lines".into(), Value::Array(vec![]));
        m.insert("stdout".into(), "".into());
        m.insert("stdout_lines".into(), Value::Array(vec![]));
        return Ok(m);
    }
    let mut full = line;
    if let Some(dir) = p.str("chdir") {
        if !can_enter(ctx, &dir).await? {
            // the module's own failure, before anything runs
            let mut r = Map::new();
            r.insert("changed".into(), Value::Bool(false));
            r.insert("failed".into(), Value::Bool(true));
            r.insert("cmd".into(), cmd_value);
            r.insert(
                "msg".into(),
                "Unable to change directory before execution.".into(),
            );
            for k in ["rc", "start", "end", "delta"] {
                r.insert(k.into(), Value::Null);
            }
            r.insert("stdout".into(), "".into());
            r.insert("stderr".into(), "".into());
            return Ok(r);
        }
        // os.chdir: the physical directory, as `$PWD` then shows it
        full = format!("cd -P {} && {full}", quote(&dir));
    }
    let stdin = p.str("stdin").map(|mut s| {
        if p.bool("stdin_add_newline") {
            s.push('\n');
        }
        s.into_bytes()
    });
    let conn = ctx.connection().await?;
    if let (true, Some(secs)) = (ctx.background, ctx.kill_after) {
        // `async` with `poll: 0`: started in the background, the task goes on
        let meta = serde_json::json!({ "cmd": cmd_value, "strip": p.bool("strip_empty_ends") });
        let mut started =
            super::async_job::start(ctx, &conn, &full, stdin.as_deref(), secs, meta).await?;
        started.extend(m);
        return Ok(started);
    }
    let start = chrono::Local::now();
    let out = ctx.exec(&conn, &full, stdin.as_deref()).await?;
    let end = chrono::Local::now();
    if !shell && out.rc == 127 {
        // the module runs the program itself: one that cannot be found is its own error,
        // not a shell's "not found"
        let program = match &cmd_value {
            Value::Array(words) => words.first().map(crate::jinja::value::scalar_string),
            _ => None,
        }
        .unwrap_or_default();
        let mut probe = format!("command -v -- {} >/dev/null 2>&1", quote(&program));
        if let Some(dir) = p.str("chdir") {
            probe = format!("cd -P {} && {probe}", quote(&dir));
        }
        if ctx.exec(&conn, &probe, None).await?.rc != 0 {
            let mut r = Map::new();
            r.insert("changed".into(), Value::Bool(false));
            r.insert("cmd".into(), raw.clone().unwrap_or(program).into());
            r.insert("failed".into(), Value::Bool(true));
            r.insert("msg".into(), "Error executing command.".into());
            r.insert("rc".into(), 2.into());
            for k in ["stdout", "stderr"] {
                r.insert(k.into(), "".into());
                r.insert(format!("{k}_lines"), Value::Array(Vec::new()));
            }
            return Ok(r);
        }
    }
    let done = ended(
        cmd_value,
        i64::from(out.rc),
        (out.stdout_text(), out.stderr_text()),
        (&timestamp(start), &timestamp(end)),
        p.bool("strip_empty_ends"),
    );
    m.extend(done);
    Ok(m)
}

/// `word` as one shell word that the target's shell expands as the command module's
/// `expand_argument_vars` does (Python's `os.path.expanduser(os.path.expandvars(word))`):
/// `$NAME` and `${NAME}` become the variable's value when it is set and stay as written
/// otherwise, a leading `~` or `~/` becomes `$HOME`; everything else is literal.
fn expanded_word(word: &str) -> String {
    let is_name = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::new();
    let mut literal = String::new();
    let flush = |out: &mut String, literal: &mut String| {
        if !literal.is_empty() {
            out.push_str(&quote(literal));
            literal.clear();
        }
    };
    let mut rest = word;
    if rest == "~" || rest.starts_with("~/") {
        out.push_str("\"$HOME\"");
        rest = &rest[1..];
    }
    while let Some(at) = rest.find('$') {
        literal.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, written, len) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], format!("${{{}}}", &inner[..end]), end + 2),
                None => ("", String::new(), 0),
            }
        } else {
            let end = after.find(|c: char| !is_name(c)).unwrap_or(after.len());
            (&after[..end], format!("${}", &after[..end]), end)
        };
        let valid = !name.is_empty() && name.chars().all(is_name);
        if len == 0 || !valid {
            literal.push('$');
            rest = after;
            continue;
        }
        flush(&mut out, &mut literal);
        let fallback = written.replace('$', "\\$").replace('}', "\\}");
        out.push_str(&format!("\"${{{name}-{fallback}}}\""));
        rest = &after[len..];
    }
    literal.push_str(rest);
    flush(&mut out, &mut literal);
    if out.is_empty() {
        out.push_str("''");
    }
    out
}

/// Whether the command could `cd` into `dir` on the target (as the become user).
async fn can_enter(ctx: &ActionCtx<'_>, dir: &str) -> Result<bool, TransportError> {
    let conn = ctx.connection().await?;
    let out = ctx
        .exec(&conn, &format!("cd {} 2>/dev/null", quote(dir)), None)
        .await?;
    Ok(out.rc == 0)
}

/// Whether anything matches the glob pattern `path` on the target (Python's `glob.glob`, as
/// the command module tests `creates`/`removes`).
async fn path_exists(ctx: &ActionCtx<'_>, path: &str) -> Result<bool, TransportError> {
    let conn = ctx.connection().await?;
    let cmd = format!(
        "for f in {}; do if [ -e \"$f\" ] || [ -L \"$f\" ]; then exit 0; fi; done; exit 1",
        glob_word(path)
    );
    let out = ctx.exec(&conn, &cmd, None).await?;
    Ok(out.rc == 0)
}

/// `pattern` as one shell word that globs: `*`, `?` and `[...]` bare, everything else quoted.
fn glob_word(pattern: &str) -> String {
    let mut out = String::new();
    let mut literal = String::new();
    for c in pattern.chars() {
        if matches!(c, '*' | '?' | '[' | ']') {
            if !literal.is_empty() {
                out.push_str(&quote(&literal));
                literal.clear();
            }
            out.push(c);
        } else {
            literal.push(c);
        }
    }
    if !literal.is_empty() || out.is_empty() {
        out.push_str(&quote(&literal));
    }
    out
}

/// The result of a command that `creates`/`removes` kept from running ("Would not" in
/// check mode).
fn skipped_since(cmd: Value, why: &str, check: bool) -> ResultMap {
    let mut m = Map::new();
    let shoulda = if check { "Would" } else { "Did" };
    let text = format!(
        "{shoulda} not run command since '{}'",
        why.trim_end_matches(" exists")
            .trim_end_matches(" does not exist")
    );
    let msg = if why.ends_with("does not exist") {
        format!("{text} does not exist")
    } else {
        format!("{text} exists")
    };
    m.insert("changed".into(), Value::Bool(false));
    m.insert("cmd".into(), cmd);
    m.insert("delta".into(), Value::Null);
    m.insert("end".into(), Value::Null);
    m.insert("msg".into(), msg.clone().into());
    m.insert("rc".into(), 0.into());
    m.insert("start".into(), Value::Null);
    m.insert("stderr".into(), "".into());
    m.insert("stderr_lines".into(), Value::Array(vec![]));
    m.insert("stdout".into(), format!("skipped, since {why}").into());
    m.insert(
        "stdout_lines".into(),
        Value::Array(vec![format!("skipped, since {why}").into()]),
    );
    m
}

#[cfg(test)]
mod tests {
    use super::expanded_word;

    /// What `sh` makes of the word, with TEST=z set and UNSET unset.
    fn sh(word: &str) -> String {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("unset UNSET; TEST=z HOME=/h; printf %s {word}"))
            .output()
            .expect("sh runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn words_expand_as_pythons_expandvars_and_expanduser() {
        for (word, want) in [
            ("plain", "plain"),
            ("a b", "a b"),
            ("$TEST", "z"),
            ("${TEST}x", "zx"),
            ("\\$TEST", "\\z"),
            ("echo \"\\$TEST\"", "echo \"\\z\""),
            ("$UNSET", "$UNSET"),
            ("${UNSET}", "${UNSET}"),
            ("$", "$"),
            ("a$-b", "a$-b"),
            ("${", "${"),
            ("~", "/h"),
            ("~/x$TEST", "/h/xz"),
            ("~user", "~user"),
            ("'q'", "'q'"),
            ("", ""),
        ] {
            assert_eq!(sh(&expanded_word(word)), want, "{word:?}");
        }
    }
}
