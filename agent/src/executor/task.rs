//! Running one task on a play's active hosts: its displayed name, its fork limit
//! (`--forks`, `throttle`), one host job per host, and reporting each host's outcome in host
//! order as soon as every earlier host's is in.

use super::host_job::HostOutcome;
use super::job_vars::Scope;
use super::{host_task, loops, Engine};
use crate::output::{Status, TaskInfo};
use crate::playbook::blocks::Extra;
use crate::playbook::{Play, Task};
use minijinja::Value as JValue;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

impl Engine {
    /// Runs a task on the active hosts; returns how many hosts newly failed. `batch`: the
    /// hosts of the play's batch, which a `run_once` task's facts and register reach.
    pub(super) async fn run_task(
        &mut self,
        play: &Play,
        task: &Arc<Task>,
        active: &mut Vec<String>,
        (play_hosts, batch): (&[String], &[String]),
        extra: Option<&Extra>,
    ) -> usize {
        let run_once = task.run_once || crate::builtins::bypasses_host_loop(task.module());
        let targets: Vec<String> = if run_once {
            active.iter().take(1).cloned().collect()
        } else {
            active.clone()
        };
        let hostvars = self.hostvars();
        let scope = Scope {
            play_hosts,
            active,
            hostvars: &hostvars,
        };
        let info = self.task_info(play, task, extra, targets.first(), &scope);
        self.reporter.task_start(&info, targets.len());
        let outcomes = self
            .run_hosts(play, task, extra, &targets, &scope, &info)
            .await;
        // a register reaches every host only under `run_once`; an action that bypasses the
        // host loop (`pause`, `add_host`) runs once but registers on its host alone, as
        // Ansible's `get_task_hosts` has it
        // as ansible-core's strategy: every host of the batch but the unreachable ones, not
        // only those the task ran for (the hosts of an include, say)
        let run_once_to: Option<Vec<String>> = task.run_once.then(|| {
            batch
                .iter()
                .filter(|h| self.stats.get(*h).is_none_or(|s| s.unreachable == 0))
                .cloned()
                .collect()
        });
        self.record(task, &outcomes, active, run_once_to.as_deref())
    }

    /// The task as announced: its name, templated (when it is a template) with the variables
    /// of the first host it runs on.
    fn task_info(
        &self,
        play: &Play,
        task: &Arc<Task>,
        extra: Option<&Extra>,
        first: Option<&String>,
        scope: &Scope<'_>,
    ) -> TaskInfo {
        let mut info = TaskInfo {
            name: task.display_name(),
            origin: Some(task.origin.clone()),
            handler: extra.is_some_and(|x| x.handler),
        };
        if let (Some(first), true) = (first, crate::jinja::value::is_template(&info.name)) {
            // Ansible templates task names with the variables it has (not host facts)
            let job = self.job(play, task, first, scope);
            if let Ok(v) = self.shared.templar.render_str(&info.name, &job.ctx.value()) {
                info.name = crate::jinja::value::scalar_string(&v);
            }
        }
        info
    }

    /// How many hosts run the task at once: `--forks`, lowered by a positive `throttle`
    /// (templated with `vars`, the first host's). A throttle that is not an integer is an error,
    /// as in Ansible ("Failed to convert the throttle value to an integer").
    fn task_forks(&self, extra: Option<&Extra>, vars: Option<&JValue>) -> Result<usize, String> {
        let mut forks = self.shared.opts.forks.max(1);
        let Some(t) = extra.and_then(|x| x.throttle.as_ref()) else {
            return Ok(forks);
        };
        let value = match (t, vars) {
            (Value::String(s), Some(vars)) if crate::jinja::value::is_template(s) => {
                self.shared.templar.render_str(s, vars).map_err(|e| {
                    format!("Failed to convert the throttle value to an integer: {e:#}")
                })?
            }
            (other, _) => other.clone(),
        };
        let n = match &value {
            Value::Number(n) => n.as_i64(),
            Value::Bool(b) => Some(i64::from(*b)),
            other => crate::jinja::value::scalar_string(other)
                .trim()
                .parse()
                .ok(),
        }
        .ok_or_else(|| {
            format!(
                "Failed to convert the throttle value to an integer: invalid literal for int() \
                 with base 10: '{}'",
                crate::jinja::value::scalar_string(&value)
            )
        })?;
        if n > 0 {
            forks = forks.min(n as usize);
        }
        Ok(forks)
    }

    /// Applies an add_host/group_by result to the inventory; then, as ansible-core does after
    /// changing it, evaluates the task's `changed_when` again with the result (its `changed`
    /// now saying whether the inventory changed) registered. Loop results keep the values
    /// their items evaluated.
    fn settle_and_reevaluate(
        &mut self,
        task: &Task,
        o: &mut HostOutcome,
        ctx: Option<&super::vars::Context>,
    ) {
        let inventory_result =
            o.result.contains_key("add_host") || o.result.contains_key("add_group");
        let (Some(conds), Some(ctx), true) = (&task.changed_when, ctx, inventory_result) else {
            self.settle_groups(o, task.changed_when.is_some());
            return;
        };
        self.settle_groups(o, false);
        if !matches!(o.status, Status::Ok | Status::Changed) {
            return;
        }
        let mut seen = ctx.clone();
        if let Some(name) = &task.register {
            seen.set(name, &Value::Object(o.result.clone()));
        }
        let vars = seen.value();
        let mut changed = true;
        for c in conds {
            match self.shared.templar.condition(c, &vars) {
                Ok(true) => {}
                Ok(false) => {
                    changed = false;
                    break;
                }
                // the first evaluation already judged it; keep what it said
                Err(_) => return,
            }
        }
        o.result.insert("changed".into(), Value::Bool(changed));
        o.status = if changed { Status::Changed } else { Status::Ok };
    }

    /// Runs one host job per target, at most `task_forks` at a time, settles `group_by` and
    /// reports each outcome in host order; returns the outcomes in host order.
    async fn run_hosts(
        &mut self,
        play: &Play,
        task: &Arc<Task>,
        extra: Option<&Extra>,
        targets: &[String],
        scope: &Scope<'_>,
        info: &TaskInfo,
    ) -> Vec<HostOutcome> {
        let first_vars = targets
            .first()
            .map(|h| self.job(play, task, h, scope).ctx.value());
        let forks = match self.task_forks(extra, first_vars.as_ref()) {
            Ok(f) => f,
            Err(msg) => {
                // every host fails the task, loudly (Ansible stops the run here)
                let mut outcomes = Vec::new();
                for host in targets {
                    let job = self.job(play, task, host, scope);
                    let mut result = crate::builtins::failed(format!("Task failed: {msg}"));
                    result.insert("changed".into(), Value::Bool(false));
                    let mut o = HostOutcome::new(&job, Status::Failed, result, None);
                    o.ignored = super::outcome::ignores_errors(&self.shared, task, &job.ctx);
                    self.report(info, task, &o);
                    outcomes.push(o);
                }
                return outcomes;
            }
        };
        let looped = extra.filter(|x| x.loop_items.is_some()).cloned();
        // under the free strategy the run's forks are shared by every host's lane, and a
        // throttle counts the hosts running this task in any lane
        let (sem, throttle) = match &self.free {
            Some(free) => {
                let throttled = forks < self.shared.opts.forks.max(1);
                (
                    free.forks.clone(),
                    throttled.then(|| free.throttle(task, forks)),
                )
            }
            None => (Arc::new(tokio::sync::Semaphore::new(forks)), None),
        };
        let mut set = tokio::task::JoinSet::new();
        let mut order = HashMap::new();
        // `changed_when` on add_host/group_by is evaluated again once the inventory changed
        let mut contexts = HashMap::new();
        for (i, host) in targets.iter().enumerate() {
            order.insert(host.clone(), i);
            let job = self.job(play, task, host, scope);
            if task.changed_when.is_some() && looped.is_none() {
                contexts.insert(host.clone(), job.ctx.clone());
            }
            let shared = self.shared.clone();
            let sem = sem.clone();
            let looped = looped.clone();
            let throttle = throttle.clone();
            set.spawn(async move {
                let _throttled = match throttle {
                    Some(t) => t.acquire_owned().await.ok(),
                    None => None,
                };
                match looped {
                    Some(extra) => {
                        let _permit = sem.acquire_owned().await;
                        loops::run(shared, job, extra).await
                    }
                    // takes its fork slot once its connection is open
                    None => host_task::run(shared, job, Some(sem)).await,
                }
            });
        }
        // Results are reported in host order as soon as all earlier hosts are done, so output
        // is deterministic yet streams.
        let mut pending: HashMap<usize, HostOutcome> = HashMap::new();
        let mut next = 0usize;
        let mut outcomes: Vec<HostOutcome> = Vec::new();
        while let Some(joined) = set.join_next().await {
            let outcome = match joined {
                Ok(o) => o,
                Err(e) => {
                    tracing::error!("host job crashed: {e}");
                    continue;
                }
            };
            let idx = order.get(&outcome.host).copied().unwrap_or(usize::MAX);
            pending.insert(idx, outcome);
            while let Some(mut o) = pending.remove(&next) {
                let ctx = contexts.get(&o.host).cloned();
                self.settle_and_reevaluate(task, &mut o, ctx.as_ref());
                let reporting = crate::timing::span(crate::timing::Phase::Report);
                self.report(info, task, &o);
                drop(reporting);
                outcomes.push(o);
                next += 1;
            }
        }
        let mut rest: Vec<(usize, HostOutcome)> = pending.into_iter().collect();
        rest.sort_by_key(|(i, _)| *i);
        for (_, mut o) in rest {
            let ctx = contexts.get(&o.host).cloned();
            self.settle_and_reevaluate(task, &mut o, ctx.as_ref());
            self.report(info, task, &o);
            outcomes.push(o);
        }
        outcomes.sort_by_key(|o| order.get(&o.host).copied().unwrap_or(usize::MAX));
        outcomes
    }
}
