//! A task's arguments for its action: templated one by one (so a failure names the
//! argument, as Ansible's does), `omit` dropped, and the ones a builtin evaluates itself
//! (`debug: var`, `assert: that`) kept as written.

use super::vars::OMIT;
use crate::builtins;
use crate::jinja::Templar;
use crate::playbook::Task;
use minijinja::Value as JValue;
use serde_json::{Map, Value};

/// Where the parser keeps a task's `args:` given as one template (`args: "{{ mapping }}"`).
pub const VARIABLE_PARAMS: &str = "_variable_params";

/// Whether `s` is one template expression and nothing else (`"{{ data }}"`).
fn is_all_template(s: &str) -> bool {
    let t = s.trim();
    t.starts_with("{{") && t.ends_with("}}")
}

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
    let fq = || {
        if task.action.contains('.') {
            task.action.clone()
        } else {
            format!("ansible.builtin.{}", task.action)
        }
    };
    // ansible-core 2.19's task-args finalizer: `args: "{{ mapping }}"`, then a free-form value
    // that is one template for an action without raw params, render to mappings under the
    // arguments written out
    let mut layers = vec![raw_args.remove(VARIABLE_PARAMS)];
    if !builtins::takes_raw_params(module)
        && raw_args
            .get("_raw_params")
            .and_then(Value::as_str)
            .is_some_and(is_all_template)
    {
        layers.push(raw_args.remove("_raw_params"));
    }
    let mut args = Map::new();
    for layer in layers.into_iter().flatten() {
        match templar.render_value(&layer, vars) {
            // omitted arguments are dropped before validation; so is an omitted whole
            Ok(Value::Object(m)) => {
                args.extend(m.into_iter().filter(|(_, v)| v.as_str() != Some(OMIT)))
            }
            Ok(v) if v.as_str() == Some(OMIT) => {}
            Ok(other) => {
                return Err(format!(
                    "Task failed: Finalization of task args for '{}' failed: Task args must resolve to a 'dict' not '{}'.",
                    fq(),
                    crate::jinja::value::python_type(&JValue::from_serialize(&other))
                ))
            }
            Err(e) => {
                return Err(format!(
                    "Task failed: Finalization of task args for '{}' failed: {e:#}",
                    fq()
                ))
            }
        }
    }
    let mut to_template = raw_args.clone();
    for key in untemplated {
        to_template.remove(*key);
    }
    for (key, value) in to_template {
        match templar.render_value(&value, vars) {
            Ok(v) if v.as_str() == Some(OMIT) => {}
            // an include_role's own arguments are task arguments too: omitted ones are dropped
            Ok(Value::Object(mut m)) if key == "_include_args" => {
                m.retain(|_, v| v.as_str() != Some(OMIT));
                args.insert(key, Value::Object(m));
            }
            Ok(v) => {
                args.insert(key, v);
            }
            Err(e) => {
                return Err(format!(
                    "Task failed: Finalization of task args for '{}' failed: Error while resolving value for '{key}': {e:#}",
                    fq()
                ));
            }
        }
    }
    raw_args.retain(|k, _| untemplated.contains(&k.as_str()));
    Ok(TaskArgs { args, raw_args })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::TaskOrigin;

    fn task(action: &str, args: Value) -> Task {
        let origin = TaskOrigin {
            file: std::sync::Arc::new("t.yml".into()),
            line: 1,
            col: 1,
        };
        let mut t = Task::synthetic(action, "t", origin);
        t.args = args.as_object().cloned().unwrap_or_default();
        t
    }

    fn vars() -> JValue {
        JValue::from_serialize(serde_json::json!({"x": "ex", "omit": OMIT}))
    }

    #[test]
    fn builtin_keeps_its_untemplated_args_as_written() {
        let t = task(
            "debug",
            serde_json::json!({"var": "{{ x }}", "msg": "{{ x }}", "verbosity": "{{ omit }}"}),
        );
        let a = template(&Templar::new(), &t, "debug", &vars()).expect("templated");
        assert_eq!(
            a.raw_args,
            *serde_json::json!({"var": "{{ x }}"}).as_object().unwrap()
        );
        assert_eq!(
            a.args,
            *serde_json::json!({"msg": "ex"}).as_object().unwrap()
        );
    }

    #[test]
    fn other_modules_template_every_argument() {
        let t = task(
            "command",
            serde_json::json!({"var": "{{ x }}", "that": "{{ x }}"}),
        );
        let a = template(&Templar::new(), &t, "command", &vars()).expect("templated");
        assert!(a.raw_args.is_empty());
        assert_eq!(
            a.args,
            *serde_json::json!({"var": "ex", "that": "ex"})
                .as_object()
                .unwrap()
        );
    }

    #[test]
    fn a_failure_names_the_module_and_the_argument() {
        let t = task("command", serde_json::json!({"cmd": "{{ nope.nope }}"}));
        let Err(e) = template(&Templar::new(), &t, "command", &vars()) else {
            panic!("an undefined variable must fail");
        };
        assert!(e.contains("'ansible.builtin.command'"), "{e}");
        assert!(e.contains("'cmd'"), "{e}");
    }
}
