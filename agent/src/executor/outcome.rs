//! Turning an action's result into a status: Ansible's defaults (`failed` from `rc`,
//! `changed` false), `changed_when`/`failed_when`, the status the flags give, and whether
//! `ignore_errors` holds.

use super::shared::Shared;
use super::vars::Context;
use crate::builtins::{self, ResultMap};
use crate::jinja::Templar;
use crate::output::Status;
use crate::playbook::Task;
use serde_json::{Map, Value};

/// A failed, unchanged result with `msg`.
pub fn failed(msg: String) -> ResultMap {
    let mut m = builtins::failed(msg);
    m.insert("changed".into(), Value::Bool(false));
    // every failed result carries it in ansible-core 2.19 (shown from -vvv, registered)
    m.insert("exception".into(), TRACEBACK_UNAVAILABLE.into());
    m
}

/// The result of a task whose `when` condition `cond` is false.
pub fn skipped(cond: &Value) -> ResultMap {
    let mut m = Map::new();
    m.insert("changed".into(), Value::Bool(false));
    m.insert("false_condition".into(), cond.clone());
    m.insert("skip_reason".into(), "Conditional result was False".into());
    m.insert("skipped".into(), Value::Bool(true));
    m
}

/// Whether flag `key` of a result is set (by Python truth).
fn flag(m: &ResultMap, key: &str) -> bool {
    m.get(key)
        .map(crate::jinja::value::python_truth)
        .unwrap_or(false)
}

/// The status a final result's flags give: failed, else skipped, else changed, else ok.
pub fn status(result: &ResultMap) -> Status {
    if flag(result, "failed") {
        Status::Failed
    } else if flag(result, "skipped") {
        Status::Skipped
    } else if flag(result, "changed") {
        Status::Changed
    } else {
        Status::Ok
    }
}

/// Whether the task's `ignore_errors` (templated for the host) holds.
pub fn ignores_errors(shared: &Shared, task: &Task, ctx: &Context) -> bool {
    keyword_holds(shared, &task.ignore_errors, ctx)
}

/// Whether the task's `ignore_unreachable` (templated for the host, or the loop item) holds.
pub fn ignores_unreachable(shared: &Shared, task: &Task, ctx: &Context) -> bool {
    keyword_holds(shared, &task.ignore_unreachable, ctx)
}

/// A boolean task keyword's value for the host, as ansible-core reads a `bool` field: the
/// value templated, then Ansible's boolean (`yes`, `on`, `1`... are true); a template that
/// fails to render is false.
fn keyword_holds(shared: &Shared, value: &Value, ctx: &Context) -> bool {
    match value {
        Value::String(s) if crate::jinja::value::is_template(s) => shared
            .templar
            .render_value(value, &ctx.value())
            .is_ok_and(|v| crate::jinja::value::ansible_boolean(&v)),
        other => crate::jinja::value::ansible_boolean(other),
    }
}

/// Sets `failed` from `rc` when missing and defaults `changed` to false, as Ansible does.
pub fn normalize(result: &mut ResultMap) {
    if !result.contains_key("failed") {
        let rc_failed = match result.get("rc") {
            Some(Value::Number(n)) => n.as_i64() != Some(0),
            Some(Value::String(s)) => s != "0",
            _ => false,
        };
        result.insert("failed".into(), Value::Bool(rc_failed));
    }
    if !result.contains_key("changed") {
        result.insert("changed".into(), Value::Bool(false));
    }
}

/// Applies `changed_when` and `failed_when` (in `ctx`, which holds the registered result) to
/// a result that was not skipped. A condition that cannot be evaluated fails the task and
/// keeps the module's result, its error under `changed_when_result`/`failed_when_result`,
/// as ansible-core 2.19 does. Every failed result then carries `exception` (the module's, or
/// 2.19's "(traceback unavailable)"), moved to `failed_when_suppressed_exception` when
/// `failed_when` turned the failure off.
pub fn apply_overrides(task: &Task, result: &mut ResultMap, ctx: &Context, templar: &Templar) {
    if flag(result, "skipped") {
        return;
    }
    let jv = ctx.value();
    let all = |conds: &Vec<Value>| -> Result<bool, String> {
        for c in conds {
            if !templar
                .condition(c, &jv)
                .map_err(|e| format!("Error while evaluating conditional: {e:#}"))?
            {
                return Ok(false);
            }
        }
        Ok(true)
    };
    let broken = |result: &mut ResultMap, key: &str, why: String| {
        result.insert(key.into(), Value::String(why));
        result.insert("failed".into(), Value::Bool(true));
        result
            .entry("msg")
            .or_insert_with(|| Value::String(String::new()));
        result.insert("exception".into(), TRACEBACK_UNAVAILABLE.into());
    };
    if let Some(conds) = &task.changed_when {
        match all(conds) {
            Ok(changed) => {
                result.insert("changed".into(), Value::Bool(changed));
            }
            Err(why) => return broken(result, "changed_when_result", why),
        }
    }
    let was_failed = flag(result, "failed");
    if was_failed && !result.contains_key("exception") {
        result.insert("exception".into(), TRACEBACK_UNAVAILABLE.into());
    }
    if let Some(conds) = &task.failed_when {
        let failed = match all(conds) {
            Ok(failed) => failed,
            Err(why) => return broken(result, "failed_when_result", why),
        };
        if !failed {
            // Ansible 2.19 notes the failure it suppressed (tracebacks are off by default)
            if let Some(e) = result.remove("exception") {
                result.insert("failed_when_suppressed_exception".into(), e);
            }
        } else if !result.contains_key("exception") {
            result.insert("exception".into(), TRACEBACK_UNAVAILABLE.into());
        }
        result.insert("failed_when_result".into(), Value::Bool(failed));
        result.insert("failed".into(), Value::Bool(failed));
    }
}

/// ansible-core 2.19's `exception` of a failed result when tracebacks are not displayed.
pub const TRACEBACK_UNAVAILABLE: &str = "(traceback unavailable)";
