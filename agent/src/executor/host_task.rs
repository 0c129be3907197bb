//! One task on one host, as a short sequence of phases: `when`, then preparing the action
//! (module, delegation, connection, arguments, become, environment, limits), the fork slot,
//! the attempts, and the final status with `ignore_errors`.

use super::args;
use super::attempt::ActionPlan;
use super::delegation;
use super::environment;
use super::host_job::{HostJob, HostOutcome};
use super::limits::Limits;
use super::outcome::{failed, ignores_errors, status};
use super::privilege;
use super::retry::{self, Attempts, Ended};
use super::shared::Shared;
use super::when::{self, Gate};
use crate::builtins;
use crate::modules::Action;
use crate::output::Status;
use crate::playbook::Task;
use minijinja::Value as JValue;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Runs the job to completion; never panics on bad input, errors become failed results.
///
/// `forks` bounds how many hosts run the action at once. The slot is taken only after the
/// host's connection is open: SSH handshakes of all hosts overlap, as Ansible's forks would
/// not let them, while no more than `forks` actions run at a time.
pub async fn run(shared: Arc<Shared>, job: HostJob, forks: Option<Arc<Semaphore>>) -> HostOutcome {
    let _timed = crate::timing::span(crate::timing::Phase::HostTask);
    let task = job.task.clone();
    let ctx = job.ctx.clone();
    let mut out = run_task(shared.clone(), job, forks).await;
    // whatever failed it (a template, the module, failed_when), as in Ansible
    out.ignored = match out.status {
        Status::Failed => ignores_errors(&shared, &task, &ctx),
        Status::Unreachable => super::outcome::ignores_unreachable(&shared, &task, &ctx),
        _ => false,
    };
    out
}

/// The phases of one task on one host, each ending the job early when it fails.
async fn run_task(
    shared: Arc<Shared>,
    mut job: HostJob,
    forks: Option<Arc<Semaphore>>,
) -> HostOutcome {
    delegation::add_delegated_vars(&shared, &mut job);
    let vars = job.ctx.value();
    let deprecations = match when::gate(&shared.templar, &job.task, &vars) {
        Gate::Run(deprecations) => deprecations,
        Gate::Skip(result) => return HostOutcome::new(&job, Status::Skipped, result, None),
        Gate::Fail(msg) => return HostOutcome::new(&job, Status::Failed, failed(msg), None),
    };
    let (plan, delegated_to) = match prepare(&shared, &job, &vars) {
        Ok(prepared) => prepared,
        Err(stop) => {
            return HostOutcome::new(&job, Status::Failed, failed(stop.msg), stop.delegated_to)
        }
    };
    let _fork_slot = take_fork_slot(&shared, &plan, forks).await;
    let attempts = retry::run(&shared, &job.task, &job.ctx, &plan).await;
    let mut outcome = finish(&job, attempts, delegated_to);
    if !deprecations.is_empty() {
        // the `when` form's deprecations join the action's own
        let list = outcome
            .result
            .entry("deprecations")
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let serde_json::Value::Array(list) = list {
            list.extend(deprecations);
        }
    }
    outcome
}

/// Why preparing the action stopped the job, and the delegation target known by then.
struct Stopped {
    /// The failure message.
    msg: String,
    /// The `delegate_to` target, once templated.
    delegated_to: Option<String>,
}

/// Prepares the action: the module, the delegation target and how to reach the host the
/// action runs on, the arguments, become, environment, check/diff and limits. Returns the
/// plan and the delegation target.
fn prepare(
    shared: &Shared,
    job: &HostJob,
    vars: &JValue,
) -> Result<(ActionPlan, Option<String>), Stopped> {
    let task = &job.task;
    let templar = &shared.templar;
    let before_delegation = |msg| Stopped {
        msg,
        delegated_to: None,
    };
    let (action, module) = resolve_action(shared, task, vars).map_err(before_delegation)?;
    let delegated_to = delegation::target(templar, task, vars).map_err(before_delegation)?;
    let stop = |msg| Stopped {
        msg,
        delegated_to: delegated_to.clone(),
    };
    let conn_vars = delegation::conn_vars(shared, job, delegated_to.as_deref());
    let conn_spec =
        delegation::conn_spec(shared, job, delegated_to.as_deref(), &conn_vars).map_err(stop)?;
    let task_args = args::template(templar, task, &module, vars).map_err(stop)?;
    let escalation =
        privilege::escalation(shared, job, &conn_vars, &conn_spec, vars).map_err(stop)?;
    let env = environment::render(
        templar,
        job.play_env.as_ref(),
        task.environment.as_ref(),
        vars,
    )
    .map_err(stop)?;
    let check = task.check_mode.unwrap_or(shared.opts.check);
    let diff = task.diff.unwrap_or(shared.opts.diff);
    let limits = Limits::of(shared, task, &job.ctx).map_err(stop)?;
    let plan = ActionPlan {
        action,
        module,
        args: task_args.args,
        raw_args: task_args.raw_args,
        check,
        diff,
        escalation,
        env,
        conn_spec,
        limits,
    };
    Ok((plan, delegated_to))
}

/// What runs the task, and the module's short name.
/// A templated action name (`action: {module: "{{ m }}"}`) is rendered for the host first.
fn resolve_action(shared: &Shared, task: &Task, vars: &JValue) -> Result<(Action, String), String> {
    let written = if crate::jinja::value::is_template(&task.action) {
        let name = shared
            .templar
            .render_str(&task.action, vars)
            .map(|v| crate::jinja::value::scalar_string(&v))
            .map_err(|e| format!("Task failed: the action name {:?}: {e:#}", task.action))?;
        if crate::jinja::value::is_template(&name) || name.trim().is_empty() {
            return Err(format!(
                "the action name {:?} must name a module",
                task.action
            ));
        }
        name.trim().to_string()
    } else {
        task.action.clone()
    };
    if let Some(role) = &task.role {
        shared.modules.add_role(&role.path);
    }
    let action = shared.modules.resolve_in(&written, &task.collections)?;
    let module = match &action {
        Action::Builtin(name) => name.clone(),
        Action::Binary(m) => m.name.clone(),
        // `_ansible_module_name` is the action as written, as Ansible sends it
        Action::Ansible(_) => written.clone(),
    };
    Ok((action, module))
}

/// Opens the connection of an action that uses its target, then waits for a fork slot
/// (none without `forks`: a loop item runs in its host's slot).
async fn take_fork_slot(
    shared: &Shared,
    plan: &ActionPlan,
    forks: Option<Arc<Semaphore>>,
) -> Option<OwnedSemaphorePermit> {
    let uses_target = match &plan.action {
        Action::Binary(_) | Action::Ansible(_) => true,
        Action::Builtin(name) => builtins::uses_target(name),
    };
    if forks.is_some() && uses_target {
        let timed = crate::timing::span(crate::timing::Phase::ConnectWait);
        // an open failure is remembered by the pool and reported by the action itself
        let conn = shared.pool.get(&plan.conn_spec).await;
        drop(timed);
        if let (Action::Binary(module), Ok(conn)) = (&plan.action, conn) {
            stage_module(shared, &conn, module).await;
        }
    }
    let _timed = crate::timing::span(crate::timing::Phase::ForkWait);
    match forks {
        Some(sem) => sem.acquire_owned().await.ok(),
        None => None,
    }
}

/// Gets the host's build of a binary module ready on its connection before the fork slot:
/// the remote shell started, the module found in the host's cache or uploaded (or recorded
/// there by an earlier run over the same kept master: see `transport/cache.rs`). That is
/// connection setup, as the handshake is: with it outside the slot, a fork runs only the
/// module (at most twice `forks` hosts stage at once). A failure here is left for the action,
/// which meets it again and reports it.
async fn stage_module(
    shared: &Shared,
    conn: &crate::transport::Connection,
    module: &crate::module_arch::ArchModule,
) {
    let Ok(_permit) = shared.staging.acquire().await else {
        return;
    };
    // a new remote shell looks for the builds in the host's cache as it starts
    conn.look_for_in_cache(module.builds.iter().map(|b| &b.file));
    let Ok(arch) = conn.arch().await else {
        return;
    };
    if let Ok(build) = module.pick(&arch) {
        // one the host's cache had in a run over this kept master is run from there at once
        if conn.recorded_module(build).await.is_none() {
            let _ = conn.ensure_module(build).await;
        }
    }
}

/// The job's outcome from how its attempts ended.
fn finish(job: &HostJob, attempts: Attempts, delegated_to: Option<String>) -> HostOutcome {
    let (status, result) = match attempts.end {
        Ended::Unreachable(result) => (Status::Unreachable, result),
        Ended::Finished(result) => (status(&result), result),
    };
    let mut outcome = HostOutcome::new(job, status, result, delegated_to);
    outcome.retries = attempts.retries;
    outcome
}
