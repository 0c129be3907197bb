//! `wait_for`: waits on the target until a TCP port opens/closes or a file appears/disappears
//! (optionally containing `search_regex`). Runs as one polling shell loop on the target.

use super::spec::{Arg, Check, Default, Kind};
use super::Params;
use super::{ActionCtx, ResultMap};
use crate::transport::{quote, TransportError};
use serde_json::{Map, Value};

/// `wait_for`'s argument spec.
pub const ARGS: Check = Check::Spec {
    name: None,
    args: &[
        Arg::new("active_connection_states", Kind::List)
            .default(Default::List(&[
                "ESTABLISHED",
                "FIN_WAIT1",
                "FIN_WAIT2",
                "SYN_RECV",
                "SYN_SENT",
                "TIME_WAIT",
            ]))
            .unimplemented(),
        Arg::int("connect_timeout").default_int(5).unimplemented(),
        Arg::int("delay").default_int(0),
        Arg::new("exclude_hosts", Kind::List).unimplemented(),
        Arg::str("host").default_str("127.0.0.1"),
        Arg::str("msg"),
        Arg::path("path"),
        Arg::int("port"),
        Arg::str("search_regex"),
        Arg::int("sleep").default_int(1),
        Arg::str("state")
            .default_str("started")
            .choices(&["absent", "drained", "present", "started", "stopped"])
            .only(&["absent", "present", "started", "stopped"]),
        Arg::int("timeout").default_int(300),
    ],
    common: &[],
    exclusive: &[],
};

/// Runs `wait_for`.
pub async fn run(ctx: &ActionCtx<'_>, p: &Params) -> Result<ResultMap, TransportError> {
    let host = p.str("host").unwrap_or_else(|| "127.0.0.1".into());
    let port = p.int("port").map(|p| p.clamp(0, 65535) as u32);
    let path = p.str("path");
    let state = p.str("state").unwrap_or_else(|| "started".into());
    let timeout = p.int("timeout").unwrap_or(300).max(0) as u64;
    let delay = p.int("delay").unwrap_or(0).max(0) as f64;
    let sleep = p.int("sleep").unwrap_or(1).max(0) as f64;
    let regex = p.str("search_regex");
    let (check, what) = match (port, &path) {
        (Some(p), None) => (
            format!(
                "if command -v nc >/dev/null 2>&1; then nc -z -w 1 {h} {p}; else timeout 2 bash -c 'exec 3<>/dev/tcp/'{h}'/'{p}; fi",
                h = quote(&host)
            ),
            format!("{host}:{p}"),
        ),
        (None, Some(path)) => {
            let test = match &regex {
                Some(re) => format!("grep -Eq {} {}", quote(re), quote(path)),
                None => format!("test -e {}", quote(path)),
            };
            (test, format!("file {path}"))
        }
        (None, None) if delay > 0.0 || p.has("timeout") => {
            // plain sleep, as wait_for with only timeout does
            let secs = if delay > 0.0 { delay } else { timeout as f64 };
            tokio::time::sleep(std::time::Duration::from_secs_f64(secs)).await;
            let mut m = Map::new();
            m.insert("changed".into(), Value::Bool(false));
            m.insert("elapsed".into(), (secs as u64).into());
            return Ok(m);
        }
        _ => return Ok(super::failed("wait_for needs exactly one of port or path")),
    };
    let want_present = matches!(state.as_str(), "started" | "present");
    if !matches!(state.as_str(), "started" | "present" | "stopped" | "absent") {
        return Ok(super::failed(format!(
            "state {state} is not supported (started, stopped, present, absent)"
        )));
    }
    let cond = if want_present {
        format!("( {check} ) >/dev/null 2>&1")
    } else {
        format!("! ( {check} ) >/dev/null 2>&1")
    };
    // The deadline is a background `sleep`: `date +%s` counts whole seconds, so a deadline
    // from it could come up to a second early.
    let script = format!(
        "s=$(date +%s%N); sleep {delay}; sleep {timeout} & t=$!; while :; do if {cond}; then kill $t 2>/dev/null; echo $(( ($(date +%s%N) - s) / 1000000000 )); exit 0; fi; if ! kill -0 $t 2>/dev/null; then echo $(( ($(date +%s%N) - s) / 1000000000 )); exit 1; fi; sleep {sleep}; done"
    );
    let conn = ctx.connection().await?;
    let start = std::time::Instant::now();
    let out = ctx
        .exec_then(
            &conn,
            &script,
            None,
            None,
            Some(std::time::Duration::from_secs_f64(
                timeout as f64 + delay + 30.0,
            )),
        )
        .await?;
    // the whole seconds the target counted (as the module counts them there), else ours
    let elapsed = out
        .stdout_text()
        .trim()
        .parse::<u64>()
        .unwrap_or_else(|_| start.elapsed().as_secs());
    let mut m = Map::new();
    m.insert("changed".into(), Value::Bool(false));
    m.insert("elapsed".into(), elapsed.into());
    m.insert("state".into(), state.clone().into());
    if let Some(p) = port {
        m.insert("port".into(), p.into());
    }
    if let Some(p) = &path {
        m.insert("path".into(), p.clone().into());
    }
    if out.rc != 0 {
        m.insert("failed".into(), Value::Bool(true));
        let suffix = if want_present { "" } else { " to stop" };
        let msg = p
            .str("msg")
            .unwrap_or_else(|| format!("Timeout when waiting for {what}{suffix}"));
        m.insert("msg".into(), msg.into());
    }
    Ok(m)
}
