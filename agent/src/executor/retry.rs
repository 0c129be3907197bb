//! A host job's attempts: the action, Ansible's result defaults, `changed_when`/`failed_when`
//! (which see the result under its `register` name), and `until` with its retries and delay.

use super::attempt::{self, ActionPlan, Ran};
use super::outcome::{apply_overrides, failed, normalize};
use super::shared::Shared;
use super::vars::Context;
use crate::builtins::ResultMap;
use crate::playbook::Task;
use crate::transport::TransportError;
use serde_json::{Map, Value};
use std::time::Duration;

/// How the attempts ended.
pub enum Ended {
    /// The final result.
    Finished(ResultMap),
    /// The host could not be reached: its unreachable result.
    Unreachable(ResultMap),
}

/// The attempts of a host job.
pub struct Attempts {
    /// How they ended.
    pub end: Ended,
    /// `until` retries: (retries left, result) per failed attempt.
    pub retries: Vec<(u32, ResultMap)>,
}

/// Runs the planned action until it is done (once without `until`); `ctx`: the host's
/// template context.
pub async fn run(shared: &Shared, task: &Task, ctx: &Context, plan: &ActionPlan) -> Attempts {
    let templar = &shared.templar;
    let limits = &plan.limits;
    let mut ctx_template = ctx.clone();
    let mut retries = Vec::new();
    let mut attempt = 0u32;
    let mut result;
    loop {
        attempt += 1;
        let jv_now = ctx_template.value();
        let ran = match attempt::run(shared, task, plan, &jv_now).await {
            Ran::Done(ran) => ran,
            Ran::TimedOut(r) => {
                result = r;
                break;
            }
        };
        result = match ran {
            Ok(r) => r,
            Err(TransportError::Unreachable(msg)) => {
                let mut m = Map::new();
                m.insert("changed".into(), Value::Bool(false));
                m.insert("msg".into(), format!("Task failed: {msg}").into());
                m.insert("unreachable".into(), Value::Bool(true));
                return Attempts {
                    end: Ended::Unreachable(m),
                    retries,
                };
            }
            Err(TransportError::Failed(msg)) => failed(msg),
        };
        normalize(&mut result);
        // changed_when / failed_when see the result under the register name
        if let Some(name) = &task.register {
            ctx_template.set(name, &Value::Object(result.clone()));
        }
        apply_overrides(task, &mut result, &ctx_template, templar);
        if !limits.until {
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
        if attempt >= limits.attempts_max {
            result.insert("failed".into(), Value::Bool(true));
            // Ansible reports `retries` here, not the number of runs
            result.insert("attempts".into(), attempt.saturating_sub(1).max(1).into());
            break;
        }
        retries.push((limits.attempts_max - attempt, result.clone()));
        if limits.delay > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(limits.delay)).await;
        }
    }
    Attempts {
        end: Ended::Finished(result),
        retries,
    }
}
