//! `pause`: waits `seconds`/`minutes` (prompts are not supported: the agent is non-interactive).

use super::spec::{Arg, Check, Kind};
use super::Params;
use super::{ActionCtx, ResultMap};
use serde_json::{Map, Value};

/// `pause`'s argument spec (its action validates as a module does); prompts are not
/// implemented.
pub const ARGS: Check = Check::Spec {
    name: None,
    args: &[
        Arg::bool("echo", true).unimplemented(),
        Arg::new("minutes", Kind::Float),
        Arg::new("seconds", Kind::Float),
        Arg::str("prompt").unimplemented(),
    ],
    common: &[],
    exclusive: &[&["minutes", "seconds"]],
};

/// Runs `pause`.
pub async fn run(
    _ctx: &ActionCtx<'_>,
    p: &Params,
) -> Result<ResultMap, crate::transport::TransportError> {
    let secs = p
        .float("seconds")
        .or_else(|| p.float("minutes").map(|m| m * 60.0));
    let Some(secs) = secs else {
        return Ok(super::failed(
            "pause without seconds/minutes waits for a prompt, which etcd-agent does not support",
        ));
    };
    let start = chrono::Local::now();
    if secs > 0.0 {
        tokio::time::sleep(std::time::Duration::from_secs_f64(secs)).await;
    }
    let stop = chrono::Local::now();
    let mut m = Map::new();
    m.insert("changed".into(), Value::Bool(false));
    m.insert("delta".into(), ((stop - start).num_seconds()).into());
    m.insert("echo".into(), Value::Bool(true));
    m.insert("rc".into(), 0.into());
    m.insert(
        "start".into(),
        super::command_result::timestamp(start).into(),
    );
    m.insert("stop".into(), super::command_result::timestamp(stop).into());
    m.insert(
        "stdout".into(),
        format!("Paused for {} seconds", fmt_secs(secs)).into(),
    );
    m.insert("user_input".into(), "".into());
    Ok(m)
}

fn fmt_secs(s: f64) -> String {
    if s.fract() == 0.0 {
        format!("{}", s as i64)
    } else {
        format!("{s}")
    }
}
