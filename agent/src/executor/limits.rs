//! A task's time and retry keywords for one host: `until` with `retries`/`delay`, `timeout`,
//! and `async` (`poll: 0`, leaving an action in the background, is refused).

use super::shared::Shared;
use super::vars::Context;
use crate::playbook::Task;
use serde_json::Value;

/// How often and how long a host job's action may run.
pub struct Limits {
    /// The task has `until`: the action repeats until it holds.
    pub until: bool,
    /// How many times the action runs at most.
    pub attempts_max: u32,
    /// Seconds between attempts.
    pub delay: f64,
    /// `timeout`: seconds after which the task fails.
    pub timeout: Option<u64>,
    /// `async`: seconds after which remote commands are killed.
    pub async_secs: Option<u64>,
    /// `async` with `poll: 0`: the command is left running in the background.
    pub background: bool,
}

/// A keyword's value as a number, templated in `ctx`; `None` when missing or not a number.
fn number(v: &Option<Value>, shared: &Shared, ctx: &Context) -> Option<f64> {
    let v = v.as_ref()?;
    let rendered = shared.templar.render_value(v, &ctx.value()).ok()?;
    match rendered {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl Limits {
    /// The limits of `task` in the host's context `ctx` (defaults: 3 retries, 5 s delay).
    pub fn of(shared: &Shared, task: &Task, ctx: &Context) -> Result<Limits, String> {
        let until = !task.until.is_empty();
        let attempts_max: u32 = if until {
            match number(&task.retries, shared, ctx) {
                Some(r) if r <= 0.0 => 1,
                Some(r) => r as u32 + 1,
                None => 4,
            }
        } else {
            1
        };
        let delay = number(&task.delay, shared, ctx).unwrap_or(5.0).max(0.0);
        let timeout = number(&task.timeout, shared, ctx)
            .filter(|t| *t >= 1.0)
            .map(|t| t as u64);
        let async_secs = number(&task.async_secs, shared, ctx)
            .filter(|t| *t >= 1.0)
            .map(|t| t as u64);
        let background = async_secs.is_some() && number(&task.poll, shared, ctx) == Some(0.0);
        if background && !matches!(task.module(), "command" | "shell") {
            return Err(
                "poll: 0 (an action left running in the background) is supported by etcd-agent for command and shell only"
                    .into(),
            );
        }
        Ok(Limits {
            until,
            attempts_max,
            delay,
            timeout,
            async_secs,
            background,
        })
    }
}
