//! `pause`: waits `seconds`/`minutes` (prompts are not supported: the agent is non-interactive).

use super::{ActionCtx, ResultMap};
use serde_json::{Map, Value};

/// Runs `pause`.
pub async fn run(ctx: &ActionCtx<'_>) -> ResultMap {
    let secs = ctx
        .arg_f64("seconds")
        .or_else(|| ctx.arg_f64("minutes").map(|m| m * 60.0));
    let Some(secs) = secs else {
        return super::failed(
            "pause without seconds/minutes waits for a prompt, which etcd-agent does not support",
        );
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
    m.insert("start".into(), super::command::timestamp(start).into());
    m.insert("stop".into(), super::command::timestamp(stop).into());
    m.insert(
        "stdout".into(),
        format!("Paused for {} seconds", fmt_secs(secs)).into(),
    );
    m.insert("user_input".into(), "".into());
    m
}

fn fmt_secs(s: f64) -> String {
    if s.fract() == 0.0 {
        format!("{}", s as i64)
    } else {
        format!("{s}")
    }
}
