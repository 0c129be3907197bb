//! `debug`: prints `msg` or the value of `var`; `verbosity` hides it below that `-v` level.

use super::spec::{Arg, Check, Default, Kind};
use super::Params;
use super::{ActionCtx, ResultMap};
use serde_json::{Map, Value};

/// `debug`'s argument spec (its action validates as a module does).
pub const ARGS: Check = Check::Spec {
    name: None,
    args: &[
        Arg::raw("msg").default(Default::Str("Hello world!")),
        Arg::new("var", Kind::StrStrict),
        Arg::int("verbosity").default_int(0),
    ],
    common: &[],
    exclusive: &[&["msg", "var"]],
};

/// Runs `debug`.
pub fn run(ctx: &ActionCtx<'_>, p: &Params) -> ResultMap {
    let mut m = Map::new();
    let needed = p.int("verbosity").unwrap_or(0);
    if i64::from(ctx.verbosity) < needed {
        m.insert("changed".into(), Value::Bool(false));
        m.insert("skipped".into(), Value::Bool(true));
        m.insert(
            "skipped_reason".into(),
            "Verbosity threshold not met.".into(),
        );
        return m;
    }
    // `var` and `msg` are mutually exclusive (refused before the run)
    if let Some(name) = p.str("var") {
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
        let msg = p
            .value("msg")
            .unwrap_or(Value::String("Hello world!".into()));
        m.insert("msg".into(), msg);
    }
    m.insert("changed".into(), Value::Bool(false));
    m.insert("_ansible_verbose_always".into(), Value::Bool(true));
    m
}
