//! Small builtins: `fail`, `set_fact`, `group_by`, `ping`.

use super::spec::{Arg, Check, Default};
use super::Params;
use super::{ActionCtx, ResultMap};
use crate::transport::TransportError;
use serde_json::{json, Map, Value};

/// `fail`'s valid arguments (`_VALID_ARGS`).
pub const FAIL_ARGS: Check =
    Check::ValidArgs(&[Arg::raw("msg").default(Default::Str("Failed as requested from task"))]);

/// `set_fact` takes any key; `cacheable` is its one option.
pub const SET_FACT_ARGS: Check = Check::Any(&[Arg::bool("cacheable", false)]);

/// `group_by`'s valid arguments (`_VALID_ARGS`).
pub const GROUP_BY_ARGS: Check = Check::ValidArgs(&[Arg::raw("key"), Arg::raw("parents")]);

/// `ping`'s argument spec.
pub const PING_ARGS: Check = Check::Spec {
    name: None,
    args: &[Arg::str("data").default(Default::Str("pong"))],
    common: &[],
    exclusive: &[],
};

/// `fail`: always fails with `msg`.
pub fn fail(_ctx: &ActionCtx<'_>, p: &Params) -> ResultMap {
    let msg = p
        .value("msg")
        .unwrap_or(Value::String("Failed as requested from task".into()));
    let mut m = Map::new();
    m.insert("changed".into(), Value::Bool(false));
    m.insert("failed".into(), Value::Bool(true));
    m.insert("msg".into(), msg);
    m
}

/// `set_fact`: the templated arguments become host facts (`cacheable` is accepted).
pub fn set_fact(_ctx: &ActionCtx<'_>, p: &Params) -> ResultMap {
    let mut facts = Map::new();
    for (k, v) in p.given() {
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
pub fn group_by(_ctx: &ActionCtx<'_>, p: &Params) -> ResultMap {
    let Some(key) = p.raw("key") else {
        let mut m = super::failed("the 'key' param is required when using group_by");
        m.insert("changed".into(), Value::Bool(false));
        return m;
    };
    let name = |v: &Value| crate::jinja::value::scalar_string(v).replace(' ', "-");
    let parents: Vec<Value> = match p.raw("parents") {
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
pub async fn ping(ctx: &ActionCtx<'_>, p: &Params) -> Result<ResultMap, TransportError> {
    let conn = ctx.connection().await?;
    let out = conn.exec(&ctx.wrap("true"), None, None).await?;
    if out.rc != 0 {
        return Ok(super::failed(format!(
            "ping failed: {}",
            out.stderr_text().trim()
        )));
    }
    let data = p.str("data").unwrap_or_else(|| "pong".into());
    if data == "crash" {
        return Ok(super::failed("boom"));
    }
    Ok(json!({"changed": false, "ping": data})
        .as_object()
        .cloned()
        .unwrap_or_default())
}
