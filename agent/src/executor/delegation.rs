//! Where a host job's action runs: the `delegate_to` target (templated), the variables that
//! say how to reach it (the target's own when delegated), and the connection spec from them.

use super::conn;
use super::host_job::HostJob;
use super::shared::Shared;
use crate::jinja::value::scalar_string;
use crate::jinja::Templar;
use crate::playbook::Task;
use crate::transport::ConnSpec;
use minijinja::Value as JValue;
use serde_json::{Map, Value};

/// The task's `delegate_to` target templated in `vars`; `None` without delegation.
pub fn target(templar: &Templar, task: &Task, vars: &JValue) -> Result<Option<String>, String> {
    match &task.delegate_to {
        Some(d) => match templar.render_str(d, vars) {
            Ok(v) => Ok(Some(scalar_string(&v))),
            Err(e) => Err(format!("Task failed: delegate_to: {e:#}")),
        },
        None => Ok(None),
    }
}

/// A delegated task's `ansible_delegated_vars` (`{target: its variables}`), as ansible-core
/// defines it for the task's conditions, arguments and handlers: the target's inventory
/// variables (with `-e`) and its `inventory_hostname`. Nothing when the target cannot be
/// templated yet (the task reports that error when it runs).
pub fn add_delegated_vars(shared: &Shared, job: &mut HostJob) {
    if job.task.delegate_to.is_none() {
        return;
    }
    let Ok(Some(d)) = target(&shared.templar, &job.task, &job.ctx.value()) else {
        return;
    };
    let mut vars = shared.delegate_vars(&d);
    vars.insert("inventory_hostname".into(), Value::String(d.clone()));
    let mut by_host = Map::new();
    by_host.insert(d, Value::Object(vars));
    job.ctx
        .set("ansible_delegated_vars", &Value::Object(by_host));
}

/// The connection variables of the host the action runs on: the delegation target's (with
/// the `connection` keyword when it has no `ansible_connection`), else the job's own.
pub fn conn_vars(shared: &Shared, job: &HostJob, delegated_to: Option<&str>) -> Map<String, Value> {
    match delegated_to {
        Some(d) if d != job.host => {
            let mut vars = shared.delegate_vars(d);
            // the `connection` keyword applies to a delegation target without its own
            if let Some(c) = &job.connection_keyword {
                vars.entry("ansible_connection")
                    .or_insert(c.as_str().into());
            }
            vars
        }
        _ => job.vars.clone(),
    }
}

/// How to reach the host the action runs on (the delegation target, else the job's host),
/// from its connection variables `conn_vars`.
pub fn conn_spec(
    shared: &Shared,
    job: &HostJob,
    delegated_to: Option<&str>,
    conn_vars: &Map<String, Value>,
) -> Result<ConnSpec, String> {
    let conn_host = delegated_to.unwrap_or(&job.host);
    conn::spec_for(conn_host, conn_vars, job.play_user.as_deref(), &shared.opts)
}
