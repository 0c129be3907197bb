//! A task's arguments for its action: templated one by one (so a failure names the
//! argument, as Ansible's does), `omit` dropped, and the ones a builtin evaluates itself
//! (`debug: var`, `assert: that`) kept as written.

use super::vars::OMIT;
use crate::builtins;
use crate::jinja::Templar;
use crate::playbook::Task;
use minijinja::Value as JValue;
use serde_json::{Map, Value};

/// A task's arguments, ready for its action.
pub struct TaskArgs {
    /// Templated arguments, without those that rendered to `omit`.
    pub args: Map<String, Value>,
    /// The arguments `module` takes untemplated, as written.
    pub raw_args: Map<String, Value>,
}

/// Templates the task's arguments for `module` in `vars`.
pub fn template(
    templar: &Templar,
    task: &Task,
    module: &str,
    vars: &JValue,
) -> Result<TaskArgs, String> {
    let untemplated = builtins::untemplated_args(module);
    let mut raw_args = task.args.clone();
    let mut to_template = raw_args.clone();
    for key in untemplated {
        to_template.remove(*key);
    }
    let mut args = Map::new();
    for (key, value) in to_template {
        match templar.render_value(&value, vars) {
            Ok(v) if v.as_str() == Some(OMIT) => {}
            Ok(v) => {
                args.insert(key, v);
            }
            Err(e) => {
                let fq = if task.action.contains('.') {
                    task.action.clone()
                } else {
                    format!("ansible.builtin.{}", task.action)
                };
                return Err(format!(
                    "Task failed: Finalization of task args for '{fq}' failed: Error while resolving value for '{key}': {e:#}"
                ));
            }
        }
    }
    raw_args.retain(|k, _| untemplated.contains(&k.as_str()));
    Ok(TaskArgs { args, raw_args })
}
