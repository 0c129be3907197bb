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
        // an `!unsafe` expression is never evaluated (ansible-core 2.19's message)
        if crate::jinja::value::unsafe_text(name.trim()).is_some() {
            return super::failed(format!(
                "Task failed: Error while resolving `var` expression: {}",
                crate::jinja::Untrusted
            ));
        }
        let expr = name
            .trim()
            .trim_start_matches("{{")
            .trim_end_matches("}}")
            .trim()
            .to_string();
        // the value is shown as it is: text in it that looks like a template is data (it may
        // come from a host), never templated again, as in ansible-core 2.19
        let value = match ctx.templar.eval(&expr, ctx.vars) {
            Ok(v) => v,
            // ansible-core 2.19 shows an undefined value as a numbered error marker and warns
            Err(e) => match e.downcast_ref::<crate::jinja::undefined::UndefinedVariable>() {
                Some(undefined) => {
                    m.insert(
                        "warnings".into(),
                        Value::Array(vec![Value::String(format!(
                            "Encountered 1 template error.\nerror 1 - {undefined}"
                        ))]),
                    );
                    Value::String(format!("<< error 1 - {undefined} >>"))
                }
                None => {
                    return super::failed(format!(
                        "Task failed: Error while resolving `var` expression.: {e:#}"
                    ))
                }
            },
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
