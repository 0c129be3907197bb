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
    let var = match p.str("var") {
        Some(written) => match var_expression(ctx, &written) {
            Ok(expr) => expr,
            Err(msg) => return super::failed(msg),
        },
        None => None,
    };
    if let Some(name) = var {
        // the value is shown as it is: text in it that looks like a template is data (it may
        // come from a host), never templated again, as in ansible-core 2.19
        let value = match ctx.templar.eval(&name, ctx.vars) {
            Ok(v) if v.as_str() == Some(crate::executor::OMIT) => {
                m.insert(
                    "warnings".into(),
                    Value::Array(vec![Value::String(
                        "The result of the `var` expression could not be omitted; a placeholder was used instead.".into(),
                    )]),
                );
                Value::String("<<Omit>>".into())
            }
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

/// The expression `var` names, by ansible-core 2.19's rule: written plainly, it is the
/// expression; written as a template, it is rendered first (omitted: no `var` at all) and the
/// text it gives is an expression only when trusted: the template is one expression and its
/// text is the author's (see `jinja::trust`), not a host's output or a template's. `!unsafe` is
/// never evaluated.
fn var_expression(ctx: &ActionCtx<'_>, written: &str) -> Result<Option<String>, String> {
    let untrusted = || {
        format!(
            "Task failed: Error while resolving `var` expression: {}",
            crate::jinja::Untrusted
        )
    };
    let written = written.trim();
    if crate::jinja::value::unsafe_text(written).is_some() {
        return Err(untrusted());
    }
    if !crate::jinja::value::is_template(written) {
        return Ok(Some(written.to_string()));
    }
    let rendered = ctx
        .templar
        .render_str(written, ctx.vars)
        .map_err(|e| format!("Task failed: Error while resolving `var` expression: {e:#}"))?;
    match rendered {
        Value::String(s) if s == crate::executor::OMIT => Ok(None),
        Value::String(s) if ctx.templar.is_trusted_result(written, &s, ctx.vars) => Ok(Some(s)),
        Value::String(_) => Err(untrusted()),
        other => Err(format!(
            "argument 'var' is of type {} and we were unable to convert to _check_type_str_no_conversion: '{}' is not a string and conversion is not allowed",
            crate::jinja::value::python_type(&minijinja::Value::from_serialize(&other)),
            crate::jinja::value::python_repr(&other)
        )),
    }
}
