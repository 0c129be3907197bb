//! The `command` module's result for a command that ended (its fields, Ansible's timestamps
//! and durations), shared by `command`/`shell` and `async_status`.

use super::lines;
use serde_json::{Map, Value};

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

/// The module's result for a command that ended with `rc` and `(stdout, stderr)`, run from
/// `start` to `end` (as [`timestamp`] writes them); `strip`: `strip_empty_ends`, trailing
/// newlines go (the module's default). Also `async_status`'s for a job that ended.
pub fn ended(
    cmd: Value,
    rc: i64,
    (stdout, stderr): (String, String),
    (start, end): (&str, &str),
    strip: bool,
) -> Map<String, Value> {
    let ends = |s: String| if strip { strip_ends(s) } else { s };
    let (stdout, stderr) = (ends(stdout), ends(stderr));
    let parse = |t: &str| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f").ok();
    let took = match (parse(start), parse(end)) {
        (Some(s), Some(e)) => Value::String(delta(e - s)),
        _ => Value::Null,
    };
    let mut m = Map::new();
    m.insert("changed".into(), Value::Bool(true));
    m.insert("cmd".into(), cmd);
    m.insert("delta".into(), took);
    m.insert("end".into(), end.into());
    m.insert(
        "msg".into(),
        if rc != 0 { "non-zero return code" } else { "" }.into(),
    );
    m.insert("rc".into(), rc.into());
    m.insert("start".into(), start.into());
    m.insert("stderr_lines".into(), lines(&stderr));
    m.insert("stderr".into(), stderr.into());
    m.insert("stdout_lines".into(), lines(&stdout));
    m.insert("stdout".into(), stdout.into());
    if rc != 0 {
        m.insert("failed".into(), Value::Bool(true));
    }
    m
}
