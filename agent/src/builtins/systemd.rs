//! `systemd`/`service`: start, stop, restart, reload and enable units through `systemctl`.

use super::{ActionCtx, ResultMap};
use crate::transport::{quote, TransportError};
use serde_json::{Map, Value};

/// Runs `systemd`/`service`.
pub async fn run(ctx: &ActionCtx<'_>) -> Result<ResultMap, TransportError> {
    let name = ctx.arg_str("name").or_else(|| ctx.arg_str("unit"));
    let state = ctx.arg_str("state");
    let enabled = ctx.arg_bool("enabled");
    let reload = ctx.arg_bool("daemon_reload").unwrap_or(false)
        || ctx.arg_bool("daemon-reload").unwrap_or(false);
    let conn = ctx.connection().await?;
    let run = |cmd: String| {
        let conn = conn.clone();
        let full = ctx.wrap(&cmd);
        async move { conn.exec(&full, None, None).await }
    };
    let mut m = Map::new();
    let mut changed = false;
    if reload && !ctx.check {
        let out = run("systemctl daemon-reload".into()).await?;
        if out.rc != 0 {
            return Ok(super::failed(format!(
                "failure {} during daemon-reload: {}",
                out.rc,
                out.stderr_text().trim()
            )));
        }
    }
    let Some(name) = name else {
        if reload {
            m.insert("changed".into(), Value::Bool(false));
            return Ok(m);
        }
        return Ok(super::failed("missing required argument: name"));
    };
    let unit = quote(&name);
    m.insert("name".into(), name.clone().into());
    if let Some(want) = enabled {
        let out = run(format!("systemctl is-enabled {unit}")).await?;
        let is = out.rc == 0;
        if is != want {
            changed = true;
            if !ctx.check {
                let verb = if want { "enable" } else { "disable" };
                let out = run(format!("systemctl {verb} {unit}")).await?;
                if out.rc != 0 {
                    return Ok(super::failed(format!(
                        "Unable to {verb} service {name}: {}",
                        out.stderr_text().trim()
                    )));
                }
            }
        }
        m.insert("enabled".into(), Value::Bool(want));
    }
    if let Some(state) = state {
        let active = run(format!("systemctl is-active {unit}")).await?.rc == 0;
        let verb = match state.as_str() {
            "started" => (!active).then_some("start"),
            "stopped" => active.then_some("stop"),
            "restarted" => Some("restart"),
            "reloaded" => Some(if active { "reload" } else { "start" }),
            other => return Ok(super::failed(format!("value of state must be one of: reloaded, restarted, started, stopped, got: {other}"))),
        };
        if let Some(verb) = verb {
            changed = true;
            if !ctx.check {
                let out = run(format!("systemctl {verb} {unit}")).await?;
                if out.rc != 0 {
                    return Ok(super::failed(format!(
                        "Unable to {verb} service {name}: {}",
                        out.stderr_text().trim()
                    )));
                }
            }
        }
        m.insert("state".into(), state.into());
    }
    m.insert("changed".into(), Value::Bool(changed));
    Ok(m)
}
