//! `debug`: prints `msg` or the value of `var`; `verbosity` hides it below that `-v` level.

use super::{ActionCtx, ResultMap};
use serde_json::{Map, Value};

/// Runs `debug`.
pub fn run(ctx: &ActionCtx<'_>) -> ResultMap {
    let mut m = Map::new();
    let needed = ctx.arg_f64("verbosity").unwrap_or(0.0) as u8;
    if ctx.verbosity < needed {
        m.insert("changed".into(), Value::Bool(false));
        m.insert("skipped".into(), Value::Bool(true));
        m.insert(
            "skipped_reason".into(),
            "Verbosity threshold not met.".into(),
        );
        return m;
    }
    if ctx.args.contains_key("msg") && ctx.args.contains_key("var") {
        return super::failed("'msg' and 'var' are incompatible options");
    }
    if let Some(var) = ctx.raw_args.get("var") {
        let name = crate::jinja::value::scalar_string(var);
        let expr = name
            .trim()
            .trim_start_matches("{{")
            .trim_end_matches("}}")
            .trim()
            .to_string();
        let value = match ctx.templar.eval(&expr, ctx.vars) {
            Ok(v) => match v {
                // a variable holding a template is shown templated, as Ansible does
                Value::String(s) if crate::jinja::value::is_template(&s) => ctx
                    .templar
                    .render_str(&s, ctx.vars)
                    .unwrap_or(Value::String(s)),
                other => other,
            },
            Err(_) => Value::String("VARIABLE IS NOT DEFINED!".into()),
        };
        m.insert(name, value);
    } else {
        let msg = ctx
            .args
            .get("msg")
            .cloned()
            .unwrap_or(Value::String("Hello world!".into()));
        m.insert("msg".into(), msg);
    }
    m.insert("changed".into(), Value::Bool(false));
    m.insert("_ansible_verbose_always".into(), Value::Bool(true));
    m
}
