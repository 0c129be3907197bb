//! One run of a host job's action: the builtin or binary module with its prepared
//! arguments, under `async` (the command killed on the target, failing as Ansible's async
//! wrapper makes it fail) and `timeout` (the task ends, the action is abandoned).

use super::limits::Limits;
use super::outcome::failed;
use super::shared::Shared;
use crate::builtins::{self, ActionCtx, ResultMap};
use crate::modules::Action;
use crate::playbook::Task;
use crate::transport::{ConnSpec, TransportError};
use minijinja::Value as JValue;
use serde_json::{Map, Value};
use std::time::Duration;

/// A host job's action, ready to run: what every attempt needs.
pub struct ActionPlan {
    /// What runs.
    pub action: Action,
    /// The module's short name.
    pub module: String,
    /// Templated arguments.
    pub args: Map<String, Value>,
    /// Arguments the action takes untemplated.
    pub raw_args: Map<String, Value>,
    /// Check mode.
    pub check: bool,
    /// Diff mode.
    pub diff: bool,
    /// How commands become another user, when `become` is on.
    pub escalation: Option<crate::transport::Escalation>,
    /// `environment`.
    pub env: Vec<(String, String)>,
    /// How to reach the host the action runs on.
    pub conn_spec: ConnSpec,
    /// Retries and time limits.
    pub limits: Limits,
}

/// How an attempt ended.
pub enum Ran {
    /// The action returned (a result, or a transport error).
    Done(Result<ResultMap, TransportError>),
    /// The task's `timeout` passed: the final result, no overrides, no more attempts.
    TimedOut(ResultMap),
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

/// Runs the planned action once with the variables `vars`.
pub async fn run(shared: &Shared, task: &Task, plan: &ActionPlan, vars: &JValue) -> Ran {
    let async_secs = plan.limits.async_secs;
    let actx = ActionCtx {
        module: plan.module.clone(),
        args: plan.args.clone(),
        raw_args: plan.raw_args.clone(),
        vars,
        templar: &shared.templar,
        check: plan.check,
        diff: plan.diff,
        no_log: task.no_log,
        verbosity: shared.opts.verbosity,
        escalation: plan.escalation.clone(),
        env: plan.env.clone(),
        conn_spec: plan.conn_spec.clone(),
        kill_after: async_secs,
        background: plan.limits.background,
        async_dir: vars
            .get_attr("ansible_async_dir")
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .or_else(|| shared.opts.async_dir.clone())
            .unwrap_or_else(|| "~/.ansible_async".into()),
        pool: &shared.pool,
    };
    let act = async {
        match &plan.action {
            Action::Builtin(_) => builtins::run_builtin(&actx).await,
            Action::Binary(m) => builtins::run_binary(&actx, m).await,
            Action::Ansible(m) => crate::ansible_modules::run(&actx, m).await,
        }
    };
    // `async` is a limit like `timeout`, but the command is killed on the target
    // (ActionCtx::wrap: `timeout -s KILL`, exit 137) and the task fails as Ansible's async
    // wrapper makes it fail
    let act = async {
        // `poll: 0`: the result is the started job's (`async_status` reads the rest)
        let Some(secs) = async_secs.filter(|_| !plan.limits.background) else {
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
    match plan.limits.timeout {
        Some(secs) => match tokio::time::timeout(Duration::from_secs(secs), act).await {
            Ok(ran) => Ran::Done(ran),
            // Ansible's timeout ends the task: no overrides, no more attempts. The action is
            // abandoned where it stands (a remote shell left midway knows it,
            // transport/shell.rs), and the command goes on, as under Ansible.
            Err(_) => Ran::TimedOut(timed_out(secs)),
        },
        None => Ran::Done(act.await),
    }
}
