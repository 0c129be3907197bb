//! `assert`: every condition in `that` must hold.

use super::{ActionCtx, ResultMap};
use serde_json::{Map, Value};

/// Runs `assert`.
pub fn run(ctx: &ActionCtx<'_>) -> ResultMap {
    let that = match ctx.raw_args.get("that") {
        Some(Value::Array(items)) => items.clone(),
        Some(Value::Null) | None => return super::failed("missing required argument: that"),
        Some(other) => vec![other.clone()],
    };
    let quiet = ctx.arg_bool("quiet").unwrap_or(false);
    let mut m = Map::new();
    m.insert("changed".into(), Value::Bool(false));
    for cond in &that {
        match ctx.templar.condition(cond, ctx.vars) {
            Ok(true) => {}
            Ok(false) => {
                let msg = ctx
                    .args
                    .get("fail_msg")
                    .or_else(|| ctx.args.get("msg"))
                    .cloned()
                    .unwrap_or(Value::String("Assertion failed".into()));
                m.insert("failed".into(), Value::Bool(true));
                m.insert("_ansible_verbose_always".into(), Value::Bool(true));
                m.insert("evaluated_to".into(), Value::Bool(false));
                m.insert("assertion".into(), cond.clone());
                m.insert("msg".into(), msg);
                return m;
            }
            Err(e) => {
                return super::failed(format!(
                    "The conditional check '{}' failed. The error was: {e:#}",
                    crate::jinja::value::scalar_string(cond)
                ))
            }
        }
    }
    let msg = ctx
        .args
        .get("success_msg")
        .cloned()
        .unwrap_or(Value::String("All assertions passed".into()));
    if !quiet {
        m.insert("_ansible_verbose_always".into(), Value::Bool(true));
    }
    m.insert("msg".into(), msg);
    m
}
