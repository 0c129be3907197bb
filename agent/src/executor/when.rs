//! A task's `when` conditions for one host: run, skip, or fail on a condition that cannot
//! be evaluated.

use super::outcome::skipped;
use crate::builtins::ResultMap;
use crate::jinja::{Templar, Untrusted};
use crate::playbook::Task;
use minijinja::Value as JValue;

/// What a task's `when` conditions say for a host.
pub enum Gate {
    /// Every condition holds (or there is none).
    Run,
    /// A condition is false: the skipped result.
    Skip(ResultMap),
    /// A condition could not be evaluated: the failure message.
    Fail(String),
}

/// Evaluates the task's `when` conditions in order, in the host's variables `vars`; the first
/// false or broken one decides.
pub fn gate(templar: &Templar, task: &Task, vars: &JValue) -> Gate {
    for cond in &task.when {
        match templar.condition(cond, vars) {
            Ok(true) => {}
            Ok(false) => return Gate::Skip(skipped(cond)),
            Err(e) if e.is::<Untrusted>() => return Gate::Fail(format!("Task failed: {e}")),
            Err(e) => return Gate::Fail(format!("Task failed: {}", condition_error(&e))),
        }
    }
    Gate::Run
}

/// ansible-core 2.19's words for a condition that cannot be evaluated: an undefined value is
/// an "Error while evaluating conditional"; other errors are named as they are.
pub fn condition_error(e: &anyhow::Error) -> String {
    let undefined = e
        .chain()
        .any(|c| c.is::<crate::jinja::undefined::UndefinedVariable>());
    if undefined {
        format!("Error while evaluating conditional: {e:#}")
    } else {
        format!("{e:#}")
    }
}
