//! `assert`: every condition in `that` must hold.

use super::spec::{Arg, Check, Default, Kind};
use super::Params;
use super::{ActionCtx, ResultMap};
use serde_json::{Map, Value};

/// `assert`'s argument spec (its action validates as a module does).
pub const ARGS: Check = Check::Spec {
    name: None,
    args: &[
        Arg::raw("fail_msg")
            .aliases(&["msg"])
            .default(Default::Str("Assertion failed")),
        Arg::raw("success_msg").default(Default::Str("All assertions passed")),
        Arg::bool("quiet", false),
        Arg::new("that", Kind::ListStrict).required(),
    ],
    common: &[],
    exclusive: &[],
};

/// Runs `assert`.
pub fn run(ctx: &ActionCtx<'_>, p: &Params) -> ResultMap {
    // `that` is required, as written (untemplated), and a list after validation
    // written as one string that is one template of a list: that list (see
    // `Templar::conditions_list`)
    let written_list = match ctx.raw_args.get("that") {
        Some(Value::String(text)) => ctx.templar.conditions_list(text, ctx.vars),
        _ => None,
    };
    let mut that = match (written_list, p.raw("that")) {
        (Some(items), _) => items,
        (None, Some(Value::Array(items))) => items.clone(),
        (None, Some(other)) => vec![other.clone()],
        (None, None) => Vec::new(),
    };
    // `that` made by a template (the task's arguments given as one, `assert: "{{ item }}"`):
    // each text keeps its trust, as in ansible-core (see `jinja::trust`)
    if !ctx.raw_args.contains_key("that") {
        that = that
            .into_iter()
            .map(|c| crate::jinja::template::untrusted_as_unsafe(c, false))
            .collect();
    }
    let quiet = p.bool("quiet");
    let mut m = Map::new();
    m.insert("changed".into(), Value::Bool(false));
    let mut deprecations = Vec::new();
    for cond in &that {
        let outcome = ctx
            .templar
            .condition_noting(cond, ctx.vars, &mut deprecations);
        if !deprecations.is_empty() {
            m.insert("deprecations".into(), Value::Array(deprecations.clone()));
        }
        match outcome {
            Ok(true) => {}
            Ok(false) => {
                let msg = p
                    .value("fail_msg")
                    .unwrap_or(Value::String("Assertion failed".into()));
                m.insert("failed".into(), Value::Bool(true));
                m.insert("_ansible_verbose_always".into(), Value::Bool(true));
                m.insert("evaluated_to".into(), Value::Bool(false));
                m.insert("assertion".into(), cond.clone());
                m.insert("msg".into(), msg);
                return m;
            }
            Err(e) if e.is::<crate::jinja::Untrusted>() => {
                return super::failed(format!("Task failed: {e}"))
            }
            Err(e) => {
                return super::failed(format!(
                    "Task failed: {}",
                    crate::executor::condition_error(&e)
                ))
            }
        }
    }
    let msg = p
        .value("success_msg")
        .unwrap_or(Value::String("All assertions passed".into()));
    if !quiet {
        m.insert("_ansible_verbose_always".into(), Value::Bool(true));
    }
    m.insert("msg".into(), msg);
    m
}
