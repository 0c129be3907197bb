//! One task on one host: `when`, argument templating, the action, `until` retries,
//! `changed_when`/`failed_when`, and the final status.

use super::vars::{Context, OMIT};
use super::Shared;
use crate::builtins::{self, ActionCtx, ResultMap};
use crate::jinja::value::scalar_string;
use crate::modules::Action;
use crate::output::Status;
use crate::playbook::Task;
use crate::transport::TransportError;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// Everything a host job needs, owned so it can run on its own tokio task.
pub struct HostJob {
    /// Inventory host name.
    pub host: String,
    /// The task.
    pub task: Arc<Task>,
    /// Merged variables (for connection settings).
    pub vars: Map<String, Value>,
    /// Template context.
    pub ctx: Context,
    /// Play `become`.
    pub play_become: Option<bool>,
    /// Play `remote_user`.
    pub play_user: Option<String>,
    /// The task's `connection` keyword, else the play's.
    pub connection_keyword: Option<String>,
    /// Play `environment`.
    pub play_env: Option<Value>,
}

/// What happened.
pub struct HostOutcome {
    /// Inventory host name.
    pub host: String,
    /// Final status.
    pub status: Status,
    /// Failure ignored by `ignore_errors`.
    pub ignored: bool,
    /// Delegated target, if any.
    pub delegated_to: Option<String>,
    /// The result dict (what `register` stores).
    pub result: ResultMap,
    /// `until` retries: (retries left, result) per failed attempt.
    pub retries: Vec<(u32, ResultMap)>,
    /// For a loop: each item's delegated target, in the order of `result["results"]`.
    pub item_delegates: Vec<Option<String>>,
}

fn skipped(cond: &Value) -> ResultMap {
    let mut m = Map::new();
    m.insert("changed".into(), Value::Bool(false));
    m.insert("false_condition".into(), cond.clone());
    m.insert("skip_reason".into(), "Conditional result was False".into());
    m.insert("skipped".into(), Value::Bool(true));
    m
}

fn failed(msg: String) -> ResultMap {
    let mut m = builtins::failed(msg);
    m.insert("changed".into(), Value::Bool(false));
    m
}

fn flag(m: &ResultMap, key: &str) -> bool {
    m.get(key)
        .map(crate::jinja::value::python_truth)
        .unwrap_or(false)
}

fn outcome(
    job: &HostJob,
    status: Status,
    result: ResultMap,
    delegated_to: Option<String>,
) -> HostOutcome {
    HostOutcome {
        host: job.host.clone(),
        status,
        ignored: false,
        delegated_to,
        result,
        retries: Vec::new(),
        item_delegates: Vec::new(),
    }
}

fn number(v: &Option<Value>, shared: &Shared, ctx: &Context) -> Option<f64> {
    let v = v.as_ref()?;
    let rendered = shared.templar.render_value(v, &ctx.value()).ok()?;
    match rendered {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The result of an attempt that ran past the task's `timeout`, as Ansible 2.19 gives it.
fn timed_out(secs: u64) -> ResultMap {
    let mut m = failed(format!("Task failed: Timed out after {secs} second(s)."));
    m.insert("exception".into(), "(traceback unavailable)".into());
    m.insert(
        "timedout".into(),
        serde_json::json!({
            "frame": "Configure `DISPLAY_TRACEBACK` to see a traceback on timeout errors.",
            "period": secs,
        }),
    );
    m
}

/// Adds what Ansible's async wrapper reports; `timed_out`: the result is the wrapper's
/// "Timeout exceeded" failure.
fn with_async_fields(mut result: ResultMap, timed_out: bool) -> ResultMap {
    if timed_out {
        result = failed("Timeout exceeded".into());
        result.insert("exception".into(), "(traceback unavailable)".into());
        for (k, v) in [("stdout", ""), ("stderr", "")] {
            result.insert(k.into(), v.into());
            result.insert(format!("{k}_lines"), Value::Array(Vec::new()));
        }
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let job_id = format!("j{}.{}", nanos % 1_000_000_000_000, std::process::id());
    result.insert("ansible_job_id".into(), job_id.into());
    result.insert("started".into(), Value::Bool(true));
    result.insert("finished".into(), Value::Bool(true));
    result
}

/// Runs the job to completion; never panics on bad input, errors become failed results.
///
/// `forks` bounds how many hosts run the action at once. The slot is taken only after the
/// host's connection is open: SSH handshakes of all hosts overlap, as Ansible's forks would
/// not let them, while no more than `forks` actions run at a time.
pub async fn run(
    shared: Arc<Shared>,
    job: HostJob,
    forks: Option<Arc<tokio::sync::Semaphore>>,
) -> HostOutcome {
    let task = job.task.clone();
    let ctx = job.ctx.clone();
    let mut out = run_task(shared.clone(), job, forks).await;
    // whatever failed it (a template, the module, failed_when), as in Ansible
    out.ignored = out.status == Status::Failed && ignores_errors(&shared, &task, &ctx);
    out
}

/// Whether the task's `ignore_errors` (templated for the host) holds.
pub fn ignores_errors(shared: &Shared, task: &Task, ctx: &Context) -> bool {
    match &task.ignore_errors {
        Value::String(s) => shared
            .templar
            .condition(&Value::String(s.clone()), &ctx.value())
            .unwrap_or(false),
        other => crate::jinja::value::python_truth(other),
    }
}

async fn run_task(
    shared: Arc<Shared>,
    job: HostJob,
    forks: Option<Arc<tokio::sync::Semaphore>>,
) -> HostOutcome {
    let task = job.task.clone();
    let templar = &shared.templar;
    let jv = job.ctx.value();
    for cond in &task.when {
        match templar.condition(cond, &jv) {
            Ok(true) => {}
            Ok(false) => return outcome(&job, Status::Skipped, skipped(cond), None),
            Err(e) => {
                return outcome(
                    &job,
                    Status::Failed,
                    failed(format!(
                        "Task failed: Conditional evaluation failed: {e:#} (in when: {})",
                        scalar_string(cond)
                    )),
                    None,
                )
            }
        }
    }
    let action = match shared.modules.resolve_in(&task.action, &task.collections) {
        Ok(a) => a,
        Err(e) => return outcome(&job, Status::Failed, failed(e), None),
    };
    let module = match &action {
        Action::Builtin(name) => name.clone(),
        Action::Binary(m) => m.name.clone(),
    };
    // delegate_to
    let delegated_to = match &task.delegate_to {
        Some(d) => match templar.render_str(d, &jv) {
            Ok(v) => Some(scalar_string(&v)),
            Err(e) => {
                return outcome(
                    &job,
                    Status::Failed,
                    failed(format!("Task failed: delegate_to: {e:#}")),
                    None,
                )
            }
        },
        None => None,
    };
    let conn_vars = match &delegated_to {
        Some(d) if d != &job.host => {
            let mut vars = shared.delegate_vars(d);
            // the `connection` keyword applies to a delegation target without its own
            if let Some(c) = &job.connection_keyword {
                vars.entry("ansible_connection")
                    .or_insert(c.as_str().into());
            }
            vars
        }
        _ => job.vars.clone(),
    };
    let conn_host = delegated_to.clone().unwrap_or_else(|| job.host.clone());
    let conn_spec = match super::conn::spec_for(
        &conn_host,
        &conn_vars,
        job.play_user.as_deref(),
        &shared.opts,
    ) {
        Ok(s) => s,
        Err(e) => return outcome(&job, Status::Failed, failed(e), delegated_to),
    };
    // arguments
    let mut raw_args = task.args.clone();
    let mut to_template = raw_args.clone();
    if module == "debug" {
        to_template.remove("var");
    }
    if module == "assert" {
        to_template.remove("that");
    }
    // argument by argument, so that a failure names the argument, as Ansible's does
    let mut args = Map::new();
    for (key, value) in to_template {
        match templar.render_value(&value, &jv) {
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
                return outcome(
                    &job,
                    Status::Failed,
                    failed(format!(
                        "Task failed: Finalization of task args for '{fq}' failed: Error while resolving value for '{key}': {e:#}"
                    )),
                    delegated_to,
                );
            }
        }
    }
    raw_args.retain(|k, _| k == "var" || k == "that");
    // become, environment, check/diff
    // as in Ansible, `ansible_become*` variables override the keywords (task, block, play),
    // which override `--become`; all are templated
    // connection variables, so a delegated task takes them from the delegated host
    let become_var = |name: &str| {
        conn_vars
            .get(name)
            .map(|v| templar.render_value(v, &jv).unwrap_or_else(|_| v.clone()))
    };
    let become_on = become_var("ansible_become")
        .map(|v| crate::jinja::value::ansible_boolean(&v))
        .or(task.r#become)
        .or(job.play_become)
        .unwrap_or(shared.opts.r#become);
    let become_user = match become_on {
        false => None,
        true => match become_var("ansible_become_user") {
            Some(v) => Some(scalar_string(&v)),
            None => match &task.become_user {
                Some(u) => match templar.render_value(&Value::String(u.clone()), &jv) {
                    Ok(v) => Some(scalar_string(&v)),
                    Err(e) => {
                        return outcome(
                            &job,
                            Status::Failed,
                            failed(format!("Task failed: become_user: {e:#}")),
                            delegated_to,
                        )
                    }
                },
                None => Some("root".into()),
            },
        },
    };
    let mut env = Vec::new();
    for source in [&job.play_env, &task.environment].into_iter().flatten() {
        match templar.render_value(source, &jv) {
            Ok(Value::Object(m)) => {
                for (k, v) in m {
                    env.retain(|(ek, _): &(String, String)| ek != &k);
                    env.push((k, scalar_string(&v)));
                }
            }
            Ok(_) => {}
            Err(e) => {
                return outcome(
                    &job,
                    Status::Failed,
                    failed(format!("Task failed: environment: {e:#}")),
                    delegated_to,
                )
            }
        }
    }
    let check = task.check_mode.unwrap_or(shared.opts.check);
    let diff = task.diff.unwrap_or(shared.opts.diff);
    let mut ctx_template = job.ctx.clone();
    let until = !task.until.is_empty();
    let attempts_max: u32 = if until {
        match number(&task.retries, &shared, &job.ctx) {
            Some(r) if r <= 0.0 => 1,
            Some(r) => r as u32 + 1,
            None => 4,
        }
    } else {
        1
    };
    let delay = number(&task.delay, &shared, &job.ctx)
        .unwrap_or(5.0)
        .max(0.0);
    let timeout = number(&task.timeout, &shared, &job.ctx)
        .filter(|t| *t >= 1.0)
        .map(|t| t as u64);
    let async_secs = number(&task.async_secs, &shared, &job.ctx)
        .filter(|t| *t >= 1.0)
        .map(|t| t as u64);
    if async_secs.is_some() && number(&task.poll, &shared, &job.ctx) == Some(0.0) {
        return outcome(
            &job,
            Status::Failed,
            failed(
                "poll: 0 (an action left running in the background) is not supported by etcd-agent"
                    .into(),
            ),
            delegated_to,
        );
    }
    let uses_target = match &action {
        Action::Binary(_) => true,
        Action::Builtin(name) => builtins::uses_target(name),
    };
    if forks.is_some() && uses_target {
        // an open failure is remembered by the pool and reported by the action itself
        let _ = shared.pool.get(&conn_spec).await;
    }
    let _fork_slot = match forks {
        Some(sem) => sem.acquire_owned().await.ok(),
        None => None,
    };
    let mut retries = Vec::new();
    let mut attempt = 0u32;
    let mut result;
    loop {
        attempt += 1;
        let jv_now = ctx_template.value();
        let actx = ActionCtx {
            module: module.clone(),
            args: args.clone(),
            raw_args: raw_args.clone(),
            vars: &jv_now,
            templar,
            check,
            diff,
            no_log: task.no_log,
            verbosity: shared.opts.verbosity,
            become_user: become_user.clone(),
            env: env.clone(),
            conn_spec: conn_spec.clone(),
            kill_after: async_secs,
            pool: &shared.pool,
        };
        let act = async {
            match &action {
                Action::Builtin(_) => builtins::run_builtin(&actx).await,
                Action::Binary(m) => builtins::run_binary(&actx, m).await,
            }
        };
        // `async` is a limit like `timeout`, but the command is killed on the target
        // (ActionCtx::wrap: `timeout -s KILL`, exit 137) and the task fails as Ansible's async
        // wrapper makes it fail
        let act = async {
            let Some(secs) = async_secs else {
                return act.await;
            };
            let backstop = Duration::from_secs(secs + 10);
            match tokio::time::timeout(backstop, act).await {
                Ok(Ok(r)) if r.get("rc").and_then(Value::as_i64) == Some(137) => {
                    Ok(with_async_fields(Map::new(), true))
                }
                Ok(ran) => ran.map(|r| with_async_fields(r, false)),
                Err(_) => Ok(with_async_fields(Map::new(), true)),
            }
        };
        let ran = match timeout {
            Some(secs) => match tokio::time::timeout(Duration::from_secs(secs), act).await {
                Ok(ran) => ran,
                Err(_) => {
                    // Ansible's timeout ends the task: no overrides, no more attempts. The
                    // action is abandoned where it stands (a remote shell left midway knows
                    // it, transport/shell.rs), and the command goes on, as under Ansible.
                    result = timed_out(secs);
                    break;
                }
            },
            None => act.await,
        };
        result = match ran {
            Ok(r) => r,
            Err(TransportError::Unreachable(msg)) => {
                let mut m = Map::new();
                m.insert("changed".into(), Value::Bool(false));
                m.insert("msg".into(), format!("Task failed: {msg}").into());
                m.insert("unreachable".into(), Value::Bool(true));
                let mut o = outcome(&job, Status::Unreachable, m, delegated_to);
                o.retries = retries;
                return o;
            }
            Err(TransportError::Failed(msg)) => failed(msg),
        };
        normalize(&mut result);
        // changed_when / failed_when see the result under the register name
        if let Some(name) = &task.register {
            ctx_template.set(name, &Value::Object(result.clone()));
        }
        if let Err(e) = apply_overrides(&task, &mut result, &ctx_template, templar) {
            result = failed(e);
        }
        if !until {
            break;
        }
        if let Some(name) = &task.register {
            ctx_template.set(name, &Value::Object(result.clone()));
        }
        result.insert("attempts".into(), attempt.into());
        let done = task
            .until
            .iter()
            .map(|c| templar.condition(c, &ctx_template.value()))
            .collect::<Result<Vec<bool>, _>>();
        match done {
            Ok(v) if v.iter().all(|b| *b) => break,
            Ok(_) => {}
            Err(e) => {
                result = failed(format!("Task failed: until condition: {e:#}"));
                break;
            }
        }
        if attempt >= attempts_max {
            result.insert("failed".into(), Value::Bool(true));
            // Ansible reports `retries` here, not the number of runs
            result.insert("attempts".into(), attempt.saturating_sub(1).max(1).into());
            break;
        }
        retries.push((attempts_max - attempt, result.clone()));
        if delay > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(delay)).await;
        }
    }
    let status = if flag(&result, "failed") {
        Status::Failed
    } else if flag(&result, "skipped") {
        Status::Skipped
    } else if flag(&result, "changed") {
        Status::Changed
    } else {
        Status::Ok
    };
    HostOutcome {
        host: job.host.clone(),
        status,
        ignored: false,
        delegated_to,
        result,
        retries,
        item_delegates: Vec::new(),
    }
}

/// Sets `failed` from `rc` when missing and defaults `changed` to false, as Ansible does.
fn normalize(result: &mut ResultMap) {
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

fn apply_overrides(
    task: &Task,
    result: &mut ResultMap,
    ctx: &Context,
    templar: &crate::jinja::Templar,
) -> Result<(), String> {
    if flag(result, "skipped") {
        return Ok(());
    }
    let jv = ctx.value();
    let all = |conds: &Vec<Value>| -> Result<bool, String> {
        for c in conds {
            if !templar.condition(c, &jv).map_err(|e| {
                format!(
                    "Task failed: conditional check '{}' failed: {e:#}",
                    scalar_string(c)
                )
            })? {
                return Ok(false);
            }
        }
        Ok(true)
    };
    if let Some(conds) = &task.changed_when {
        let changed = all(conds)?;
        result.insert("changed".into(), Value::Bool(changed));
    }
    if let Some(conds) = &task.failed_when {
        let failed = all(conds)?;
        if !failed && flag(result, "failed") {
            // Ansible 2.19 notes the failure it suppressed (tracebacks are off by default)
            result.insert(
                "failed_when_suppressed_exception".into(),
                "(traceback unavailable)".into(),
            );
        }
        result.insert("failed_when_result".into(), Value::Bool(failed));
        result.insert("failed".into(), Value::Bool(failed));
    }
    Ok(())
}
