//! A task's `when` conditions for one host: run, skip, or fail on a condition that cannot
//! be evaluated.

use super::outcome::skipped;
use crate::builtins::ResultMap;
use crate::jinja::{Templar, Untrusted};
use crate::playbook::Task;
use minijinja::Value as JValue;

/// What a task's `when` conditions say for a host.
pub enum Gate {
    /// Every condition holds (or there is none); the deprecations its forms earned (see
    /// [`Templar::condition_noting`]), for the task's result.
    Run(Vec<serde_json::Value>),
    /// A condition is false: the skipped result.
    Skip(ResultMap),
    /// A condition could not be evaluated: the failure message.
    Fail(String),
}

/// Evaluates the task's `when` conditions in order, in the host's variables `vars`; the first
/// false or broken one decides.
pub fn gate(templar: &Templar, task: &Task, vars: &JValue) -> Gate {
    let mut deprecations = Vec::new();
    for cond in &task.when {
        match templar.condition_noting(cond, vars, &mut deprecations) {
            Ok(true) => {}
            Ok(false) => {
                let mut result = skipped(cond);
                if !deprecations.is_empty() {
                    result.insert("deprecations".into(), deprecations.into());
                }
                return Gate::Skip(result);
            }
            Err(e) if e.is::<Untrusted>() => return Gate::Fail(format!("Task failed: {e}")),
            Err(e) => return Gate::Fail(format!("Task failed: {}", condition_error(&e))),
        }
    }
    Gate::Run(deprecations)
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
