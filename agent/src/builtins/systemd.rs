//! `systemd`/`service`: start, stop, restart, reload and enable units through `systemctl`.

use super::spec::{Arg, Check, Kind};
use super::Params;
use super::{ActionCtx, ResultMap};
use crate::transport::{quote, TransportError};
use serde_json::{Map, Value};

/// `systemd`'s (`systemd_service`'s) argument spec.
pub const SYSTEMD_ARGS: Check = Check::Spec {
    name: None,
    args: &[
        Arg::bool("daemon_reexec", false)
            .aliases(&["daemon-reexec"])
            .unimplemented(),
        Arg::bool("daemon_reload", false).aliases(&["daemon-reload"]),
        Arg::new("enabled", Kind::Bool),
        Arg::new("force", Kind::Bool).unimplemented(),
        Arg::new("masked", Kind::Bool).unimplemented(),
        Arg::str("name").aliases(&["service", "unit"]),
        Arg::bool("no_block", false).unimplemented(),
        Arg::str("scope")
            .default_str("system")
            .choices(&["system", "user", "global"])
            .unimplemented(),
        Arg::str("state").choices(&["reloaded", "restarted", "started", "stopped"]),
    ],
    common: &[],
    exclusive: &[],
};

/// `service`'s argument spec (Ansible's `service` module; `use` is its action's option, and
/// etcd-agent always drives systemd).
pub const SERVICE_ARGS: Check = Check::Spec {
    name: Some("ansible.legacy.service"),
    args: &[
        Arg::str("arguments")
            .aliases(&["args"])
            .default_str("")
            .unimplemented(),
        Arg::new("enabled", Kind::Bool),
        Arg::str("name").required(),
        Arg::str("pattern").unimplemented(),
        Arg::str("runlevel").default_str("default").unimplemented(),
        Arg::int("sleep").unimplemented(),
        Arg::str("state").choices(&["reloaded", "restarted", "started", "stopped"]),
        Arg::str("use")
            .default_str("auto")
            .only(&["auto", "systemd"])
            .action_only(),
    ],
    common: &[],
    exclusive: &[],
};

/// Runs `systemd`/`service`.
pub async fn run(ctx: &ActionCtx<'_>, p: &Params) -> Result<ResultMap, TransportError> {
    let name = p.str("name");
    let state = p.str("state");
    let enabled = p.opt_bool("enabled");
    // `service` has no daemon_reload (its spec does not declare it)
    let reload = p.has("daemon_reload") && p.bool("daemon_reload");
    let conn = ctx.connection().await?;
    let run = |cmd: String| {
        let conn = conn.clone();
        async move { ctx.exec(&conn, &cmd, None).await }
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
