//! Small builtins: `fail`, `set_fact`, `ping`.

use super::{ActionCtx, ResultMap};
use crate::transport::TransportError;
use serde_json::{json, Map, Value};

/// `fail`: always fails with `msg`.
pub fn fail(ctx: &ActionCtx<'_>) -> ResultMap {
    let msg = ctx
        .args
        .get("msg")
        .cloned()
        .unwrap_or(Value::String("Failed as requested from task".into()));
    let mut m = Map::new();
    m.insert("changed".into(), Value::Bool(false));
    m.insert("failed".into(), Value::Bool(true));
    m.insert("msg".into(), msg);
    m
}

/// `set_fact`: the templated arguments become host facts (`cacheable` is accepted).
pub fn set_fact(ctx: &ActionCtx<'_>) -> ResultMap {
    let mut facts = Map::new();
    for (k, v) in &ctx.args {
        if k == "cacheable" {
            continue;
        }
        if k == "_raw_params" {
            continue;
        }
        facts.insert(k.clone(), v.clone());
    }
    let mut m = Map::new();
    m.insert("ansible_facts".into(), Value::Object(facts));
    m.insert("changed".into(), Value::Bool(false));
    m
}

/// `ping`: checks the target answers a trivial command.
pub async fn ping(ctx: &ActionCtx<'_>) -> Result<ResultMap, TransportError> {
    let conn = ctx.connection().await?;
    let out = conn.exec(&ctx.wrap("true"), None, None).await?;
    if out.rc != 0 {
        return Ok(super::failed(format!(
            "ping failed: {}",
            out.stderr_text().trim()
        )));
    }
    let data = ctx.arg_str("data").unwrap_or_else(|| "pong".into());
    if data == "crash" {
        return Ok(super::failed("boom"));
    }
    Ok(json!({"changed": false, "ping": data})
        .as_object()
        .cloned()
        .unwrap_or_default())
}
