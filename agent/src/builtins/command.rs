//! `command` and `shell`: run a command line on the target and report rc/stdout/stderr.

use super::spec::{Arg, Check, Kind};
use super::Params;
use super::{lines, ActionCtx, ResultMap};
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
        Arg::bool("expand_argument_vars", true).unimplemented(),
        Arg::path("creates"),
        Arg::path("removes"),
        Arg::str("stdin"),
        Arg::bool("stdin_add_newline", true),
        Arg::bool("strip_empty_ends", true).unimplemented(),
    ],
    common: &[],
    exclusive: &[&["_raw_params", "cmd", "argv"]],
};

/// Local time as Ansible prints `start`/`end`.
pub fn timestamp(t: chrono::DateTime<chrono::Local>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// A duration as Python's `timedelta` prints it (`0:00:00.004378`).
pub fn delta(d: chrono::TimeDelta) -> String {
    let micros = d.num_microseconds().unwrap_or(0).max(0);
    let secs = micros / 1_000_000;
    format!(
        "{}:{:02}:{:02}.{:06}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        micros % 1_000_000
    )
}

fn strip_ends(s: String) -> String {
    s.trim_end_matches(['\r', '\n']).to_string()
}

/// Runs `command` or `shell`.
pub async fn run(ctx: &ActionCtx<'_>, p: &Params) -> Result<ResultMap, TransportError> {
    let shell = ctx.module == "shell";
    let raw = p.str("_raw_params").or_else(|| p.str("cmd"));
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
        let Some(raw) = raw else {
            return Ok(super::failed("no command given"));
        };
        let exe = p.str("executable").unwrap_or_else(|| "/bin/sh".into());
        (
            Value::String(raw.clone()),
            format!("{} -c {}", quote(&exe), quote(&raw)),
        )
    } else {
        let words = match (argv, raw) {
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
        let line = words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
        (
            Value::Array(words.into_iter().map(Value::String).collect()),
            line,
        )
    };
    let mut m = Map::new();
    if let Some(path) = p.str("creates") {
        if path_exists(ctx, &path).await? {
            return Ok(skipped_since(cmd_value, &format!("{path} exists")));
        }
    }
    if let Some(path) = p.str("removes") {
        if !path_exists(ctx, &path).await? {
            return Ok(skipped_since(cmd_value, &format!("{path} does not exist")));
        }
    }
    if ctx.check {
        // like Ansible, the target is still contacted (an unreachable host is reported)
        ctx.connection().await?;
        m.insert("changed".into(), Value::Bool(false));
        m.insert("cmd".into(), cmd_value);
        m.insert("delta".into(), Value::Null);
        m.insert("end".into(), Value::Null);
        m.insert(
            "msg".into(),
            "Command would have run if not in check mode".into(),
        );
        m.insert("rc".into(), 0.into());
        m.insert("skipped".into(), Value::Bool(true));
        m.insert("start".into(), Value::Null);
        m.insert("stderr".into(), "".into());
        m.insert("stderr_lines".into(), Value::Array(vec![]));
        m.insert("stdout".into(), "".into());
        m.insert("stdout_lines".into(), Value::Array(vec![]));
        return Ok(m);
    }
    let mut full = line;
    if let Some(dir) = p.str("chdir") {
        full = format!("cd {} && {full}", quote(&dir));
    }
    let stdin = p.str("stdin").map(|mut s| {
        if p.bool("stdin_add_newline") {
            s.push('\n');
        }
        s.into_bytes()
    });
    let conn = ctx.connection().await?;
    let start = chrono::Local::now();
    let out = ctx.exec(&conn, &full, stdin.as_deref()).await?;
    let end = chrono::Local::now();
    let stdout = strip_ends(out.stdout_text());
    let stderr = strip_ends(out.stderr_text());
    m.insert("changed".into(), Value::Bool(true));
    m.insert("cmd".into(), cmd_value);
    m.insert("delta".into(), delta(end - start).into());
    m.insert("end".into(), timestamp(end).into());
    m.insert(
        "msg".into(),
        if out.rc != 0 {
            "non-zero return code"
        } else {
            ""
        }
        .into(),
    );
    m.insert("rc".into(), out.rc.into());
    m.insert("start".into(), timestamp(start).into());
    m.insert("stderr_lines".into(), lines(&stderr));
    m.insert("stderr".into(), stderr.into());
    m.insert("stdout_lines".into(), lines(&stdout));
    m.insert("stdout".into(), stdout.into());
    if out.rc != 0 {
        m.insert("failed".into(), Value::Bool(true));
    }
    Ok(m)
}

async fn path_exists(ctx: &ActionCtx<'_>, path: &str) -> Result<bool, TransportError> {
    let conn = ctx.connection().await?;
    let out = ctx
        .exec(&conn, &format!("test -e {}", quote(path)), None)
        .await?;
    Ok(out.rc == 0)
}

fn skipped_since(cmd: Value, why: &str) -> ResultMap {
    let mut m = Map::new();
    let text = format!(
        "Did not run command since '{}'",
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
