//! `environment` for a host job: the play's, then the task's on top, templated, as the
//! variables the action's commands run with.

use crate::jinja::value::scalar_string;
use crate::jinja::Templar;
use minijinja::Value as JValue;
use serde_json::Value;

/// The environment from `play_env` and `task_env` (a later key replaces an earlier one and
/// moves to the end; one set to `{{ omit }}` is left out); a value that is not a dict adds
/// nothing.
pub fn render(
    templar: &Templar,
    play_env: Option<&Value>,
    task_env: Option<&Value>,
    vars: &JValue,
) -> Result<Vec<(String, String)>, String> {
    let mut env = Vec::new();
    for source in [play_env, task_env].into_iter().flatten() {
        match templar.render_value(source, vars) {
            Ok(Value::Object(m)) => {
                for (k, v) in m {
                    // `{{ omit }}` drops the variable from this dict, as for module arguments
                    if v.as_str() == Some(super::vars::OMIT) {
                        continue;
                    }
                    env.retain(|(ek, _): &(String, String)| ek != &k);
                    env.push((k, scalar_string(&v)));
                }
            }
            Ok(_) => {}
            Err(e) => return Err(format!("Task failed: environment: {e:#}")),
        }
    }
    Ok(env)
}
