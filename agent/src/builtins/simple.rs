//! Small builtins: `fail`, `set_fact`, `group_by`, `ping`.

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

/// `group_by`: names the group (`key`) and its parents (`parents`, default `all`) the host
/// joins; the executor changes the inventory from the `add_group` and `parent_groups` keys, as
/// Ansible's strategy does. Spaces become `-` as in Ansible's action.
pub fn group_by(ctx: &ActionCtx<'_>) -> ResultMap {
    let Some(key) = ctx.args.get("key") else {
        let mut m = super::failed("the 'key' param is required when using group_by");
        m.insert("changed".into(), Value::Bool(false));
        return m;
    };
    let name = |v: &Value| crate::jinja::value::scalar_string(v).replace(' ', "-");
    let parents: Vec<Value> = match ctx.args.get("parents") {
        None => vec![Value::String("all".into())],
        Some(Value::Array(a)) => a.iter().map(|v| Value::String(name(v))).collect(),
        Some(v) => vec![Value::String(name(v))],
    };
    let mut m = Map::new();
    m.insert("changed".into(), Value::Bool(false));
    m.insert("add_group".into(), Value::String(name(key)));
    m.insert("parent_groups".into(), Value::Array(parents));
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
