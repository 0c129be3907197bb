//! `become` for a host job: as in Ansible, `ansible_become*` variables override the keywords
//! (task, block, play), which override `--become`; all are templated. They are connection
//! variables, so a delegated task takes them from the delegated host.

use super::host_job::HostJob;
use super::shared::Shared;
use crate::jinja::value::scalar_string;
use minijinja::Value as JValue;
use serde_json::{Map, Value};

/// The user to become, `None` when `become` is off (`root` unless set otherwise);
/// `conn_vars`: the connection variables of the host the action runs on.
pub fn become_user(
    shared: &Shared,
    job: &HostJob,
    conn_vars: &Map<String, Value>,
    vars: &JValue,
) -> Result<Option<String>, String> {
    let templar = &shared.templar;
    let task = &job.task;
    let become_var = |name: &str| {
        conn_vars
            .get(name)
            .map(|v| templar.render_value(v, vars).unwrap_or_else(|_| v.clone()))
    };
    let become_on = become_var("ansible_become")
        .map(|v| crate::jinja::value::ansible_boolean(&v))
        .or(task.r#become)
        .or(job.play_become)
        .unwrap_or(shared.opts.r#become);
    if !become_on {
        return Ok(None);
    }
    match become_var("ansible_become_user") {
        Some(v) => Ok(Some(scalar_string(&v))),
        None => match &task.become_user {
            Some(u) => match templar.render_value(&Value::String(u.clone()), vars) {
                Ok(v) => Ok(Some(scalar_string(&v))),
                Err(e) => Err(format!("Task failed: become_user: {e:#}")),
            },
            None => Ok(Some("root".into())),
        },
    }
}
