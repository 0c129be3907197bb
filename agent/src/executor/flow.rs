//! Walking a play's task tree for one batch: tasks, `block`/`rescue`/`always`,
//! `include_tasks`, handlers (`notify`, `meta: flush_handlers`, the flush at the end of each
//! section) and `meta: end_play`/`end_host`/`noop`.

use super::job_vars::Scope;
use super::Engine;
use crate::output::{Status, TaskInfo};
use crate::playbook::blocks::{Item, Step};
use crate::playbook::{Play, Task};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// What the rest of the play does after an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    /// Go on.
    Continue,
    /// `meta: end_play`: the play ends, the playbook goes on.
    EndPlay,
    /// `any_errors_fatal`/`max_fail_percentage`: the playbook stops.
    Abort,
}

/// A host's last failed task and its result: `ansible_failed_task` and
/// `ansible_failed_result` in a `rescue`.
pub(super) type FailedTask = (Map<String, Value>, Map<String, Value>);

/// Per-batch state.
pub(super) struct PlayRun<'a> {
    /// Every host of the play (`ansible_play_hosts_all`).
    pub all_hosts: &'a [String],
    /// This batch.
    pub batch: Vec<String>,
    /// Hosts of this batch that failed so far.
    pub batch_failed: usize,
    /// Handler name or topic -> hosts notified, in notification order.
    pub notified: Vec<(String, Vec<String>)>,
    /// Last failed task (name, result) per host, for `rescue`.
    pub failed_task: HashMap<String, FailedTask>,
    /// Depth of blocks that have a `rescue` (failures there do not abort the play).
    pub rescuable: usize,
    /// Hosts failed because another host's `run_once` task failed. ansible-core marks them
    /// failed twice (once for the run_once rule, once for the any_errors_fatal check that
    /// run_once implies), so the innermost block's first failure handler is passed over:
    /// its `rescue` if it has one (its `always` still runs), else its `always`. Outer blocks
    /// handle them as any failed host.
    pub collateral: HashSet<String>,
    /// Every host ever in `collateral` in this batch: ansible-core counts them among the
    /// run's failed hosts even when a rescue takes them on (exit code 2, no later plays), but
    /// not in the recap's `rescued`.
    pub collateral_all: HashSet<String>,
    /// The roles (their directories) whose tasks have run in this play: an `include_role`'s
    /// handlers answer notifications from then on.
    pub roles_reached: HashSet<std::path::PathBuf>,
}

impl<'a> PlayRun<'a> {
    /// State for a new batch.
    pub fn new(all_hosts: &'a [String], batch: &[String]) -> Self {
        PlayRun {
            all_hosts,
            batch: batch.to_vec(),
            batch_failed: 0,
            notified: Vec::new(),
            failed_task: HashMap::new(),
            rescuable: 0,
            collateral: HashSet::new(),
            collateral_all: HashSet::new(),
            roles_reached: HashSet::new(),
        }
    }
}

/// The tasks of a handler that is an `include_tasks`.
enum Included<'p> {
    /// Parsed with the play.
    Parsed(&'p [Item]),
    /// Parsed when notified hosts name their file.
    Deferred(&'p crate::playbook::blocks::Deferred),
}

/// `ansible_failed_task`: the failed task as Ansible serializes it, in part: its own `name`
/// ("" when unnamed, not the "role : name" the output shows), its `action` as written and its
/// arguments.
fn failed_task_fields(task: &Task) -> Map<String, Value> {
    let mut t = Map::new();
    t.insert(
        "name".into(),
        Value::String(task.name.clone().unwrap_or_default()),
    );
    t.insert("action".into(), Value::String(task.action.clone()));
    let args: Map<String, Value> = task
        .args
        .iter()
        .filter(|(k, _)| !k.starts_with("_load"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    t.insert("args".into(), Value::Object(args));
    t
}

fn meta_action(task: &Task) -> String {
    task.args
        .get("_raw_params")
        .map(crate::jinja::value::scalar_string)
        .unwrap_or_default()
        .trim()
        .to_string()
}

impl Engine {
    /// Runs items for the hosts in `active` (failed or ended hosts are removed from it).
    pub(super) async fn run_items(
        &mut self,
        play: &Play,
        items: &[Item],
        active: &mut Vec<String>,
        run: &mut PlayRun<'_>,
    ) -> Flow {
        for item in items {
            // under the free strategy, another host's lane ended the play (or batch)
            if let Some(flow) = self.free.as_ref().and_then(|f| f.ended()) {
                self.end_all(active);
                return flow;
            }
            if active.is_empty() {
                // with forced handlers, failed hosts still reach the section's flush
                if !self.forcing_handlers(play) {
                    break;
                }
                if !matches!(item, Item::Flush) {
                    continue;
                }
            }
            // a role reference a host already completed, or a role run `meta: end_role`
            // ended for it: the host skips its tasks
            let ended = item_role_run(item).and_then(|id| self.roles_ended.get(&id));
            let completed = item_role_instance(item).and_then(|id| self.roles_done.get(&id));
            let skip: HashSet<String> = ended
                .into_iter()
                .chain(completed)
                .flatten()
                .cloned()
                .collect();
            if !skip.is_empty() {
                let done = &skip;
                if active.iter().any(|h| done.contains(h)) {
                    let mut rest: Vec<String> = active
                        .iter()
                        .filter(|h| !done.contains(*h))
                        .cloned()
                        .collect();
                    if !rest.is_empty() {
                        let one = std::slice::from_ref(item);
                        let flow = Box::pin(self.run_items(play, one, &mut rest, run)).await;
                        active.retain(|h| !self.dead.contains(h) && !self.ended.contains(h));
                        if flow != Flow::Continue {
                            return flow;
                        }
                    }
                    continue;
                }
            }
            if let Some(flow) = self.step_gate(item).await {
                if flow == Flow::Continue {
                    continue;
                }
                return flow;
            }
            let flow = match item {
                Item::Task(step) if step.task.module() == "meta" => {
                    self.run_meta(play, step, active, run).await
                }
                Item::Task(step) => self.run_step(play, step, active, run).await,
                Item::Block(b) => Box::pin(self.run_block(play, b, active, run)).await,
                Item::Include { step, items } => {
                    let mut included = active.clone();
                    let flow = self.run_step(play, step, &mut included, run).await;
                    if flow != Flow::Continue {
                        return flow;
                    }
                    let ok: Vec<String> = self
                        .last
                        .iter()
                        .filter(|(_, s)| matches!(s, Status::Ok | Status::Changed))
                        .map(|(h, _)| h.clone())
                        .collect();
                    active.retain(|h| !self.dead.contains(h));
                    let mut inner: Vec<String> =
                        active.iter().filter(|h| ok.contains(h)).cloned().collect();
                    let flow = Box::pin(self.run_items(play, items, &mut inner, run)).await;
                    active.retain(|h| !self.dead.contains(h) && !self.ended.contains(h));
                    flow
                }
                Item::Deferred { step, deferred } => {
                    let mut included = active.clone();
                    let flow = self.run_step(play, step, &mut included, run).await;
                    if flow != Flow::Continue {
                        return flow;
                    }
                    let groups = self.load_included(step, deferred, run);
                    active.retain(|h| !self.dead.contains(h));
                    let mut flow = Flow::Continue;
                    for (hosts, items) in groups {
                        let mut inner: Vec<String> = active
                            .iter()
                            .filter(|h| hosts.contains(h))
                            .cloned()
                            .collect();
                        flow = Box::pin(self.run_items(play, &items, &mut inner, run)).await;
                        if flow != Flow::Continue {
                            break;
                        }
                    }
                    active.retain(|h| !self.dead.contains(h) && !self.ended.contains(h));
                    flow
                }
                Item::Flush => self.flush_section(play, active, run).await,
            };
            if flow != Flow::Continue {
                return flow;
            }
        }
        Flow::Continue
    }

    /// The files a deferred include's hosts named (its last results): per distinct file and
    /// loop item, in the order first named, the hosts that included it and its parsed tasks,
    /// the loop variables set for them, as ansible-core groups its IncludedFiles. A file that
    /// cannot be loaded fails the hosts that named it.
    fn load_included(
        &mut self,
        step: &Step,
        deferred: &crate::playbook::blocks::Deferred,
        run: &mut PlayRun<'_>,
    ) -> Vec<(Vec<String>, Vec<Item>)> {
        let includes = std::mem::take(&mut self.last_includes);
        // (file or role name, the role's rendered tasks_from, loop variables, hosts)
        type Named = (String, Option<String>, Map<String, Value>, Vec<String>);
        let mut named: Vec<Named> = Vec::new();
        for (host, result) in &includes {
            let entries: Vec<&Map<String, Value>> = match result.get("results") {
                Some(Value::Array(list)) => list
                    .iter()
                    .filter_map(Value::as_object)
                    .filter(|r| r.contains_key("include"))
                    .collect(),
                _ => vec![result],
            };
            for r in entries {
                let Some(file) = r.get("include").map(crate::jinja::value::scalar_string) else {
                    continue;
                };
                let tasks_from = r
                    .get("include_args")
                    .and_then(|a| a.get("tasks_from"))
                    .map(crate::jinja::value::scalar_string);
                let mut vars = Map::new();
                if let Some(var) = r.get("ansible_loop_var").and_then(Value::as_str) {
                    for key in [var, "ansible_loop_var"] {
                        if let Some(v) = r.get(key) {
                            vars.insert(key.to_string(), v.clone());
                        }
                    }
                    if let Some(index) = r.get("ansible_index_var").and_then(Value::as_str) {
                        if let Some(v) = r.get(index) {
                            vars.insert(index.to_string(), v.clone());
                            vars.insert("ansible_index_var".into(), index.into());
                        }
                    }
                    if let Some(v) = r.get("ansible_loop") {
                        vars.insert("ansible_loop".into(), v.clone());
                    }
                }
                // ansible-core's IncludedFile: the first equal include that does not have
                // the host yet takes it; a host's second equal include (a loop with the
                // same item twice) is a new one after it, so it runs again
                match named.iter_mut().find(|(f, t, v, hosts)| {
                    *f == file && *t == tasks_from && *v == vars && !hosts.contains(host)
                }) {
                    Some((_, _, _, hosts)) => hosts.push(host.clone()),
                    None => named.push((file, tasks_from, vars, vec![host.clone()])),
                }
            }
        }
        let info = TaskInfo {
            name: step.task.display_name(),
            origin: Some(step.task.origin.clone()),
            handler: step.extra.handler,
        };
        // ansible-core counts one `ok` per file a host included (not one for the include
        // task): the include's own count is corrected to that
        let mut loaded: HashMap<String, i64> =
            includes.iter().map(|(h, _)| (h.clone(), -1)).collect();
        let mut out = Vec::new();
        for (file, tasks_from, vars, hosts) in named {
            match deferred.load(&file, tasks_from.as_deref(), vars) {
                Ok(items) => {
                    for h in &hosts {
                        *loaded.entry(h.clone()).or_default() += 1;
                    }
                    out.push((hosts, items))
                }
                Err(e) => {
                    for h in hosts {
                        if self.dead.contains(&h) {
                            continue;
                        }
                        let mut m = Map::new();
                        m.insert("failed".into(), Value::Bool(true));
                        m.insert("reason".into(), Value::String(format!("{e:#}")));
                        m.insert("msg".into(), Value::String(format!("{e:#}")));
                        self.report_meta(&info, &step.task, &h, Status::Failed, m.clone());
                        self.dead.insert(h.clone());
                        self.any_failed = true;
                        run.failed_task
                            .insert(h, (failed_task_fields(&step.task), m));
                    }
                }
            }
        }
        for (h, delta) in loaded {
            let stats = self.stats.entry(h).or_default();
            stats.ok = (i64::from(stats.ok) + delta).max(0) as u32;
        }
        out
    }

    /// One task (maybe looped) on `active`; records notifications and failures.
    async fn run_step(
        &mut self,
        play: &Play,
        step: &Step,
        active: &mut Vec<String>,
        run: &mut PlayRun<'_>,
    ) -> Flow {
        if let Some(flow) = self.free_checks(play, step) {
            return flow;
        }
        if let Some(role) = &step.task.role {
            if !run.roles_reached.contains(&role.path) {
                run.roles_reached.insert(role.path.clone());
            }
        }
        let mut failed_now = self
            .run_task(
                play,
                &step.task,
                active,
                (run.all_hosts, &run.batch.clone()),
                Some(&step.extra),
            )
            .await;
        let run_once =
            step.task.run_once || crate::builtins::bypasses_host_loop(step.task.module());
        let once_failed = self
            .last
            .iter()
            .any(|(h, s)| *s == Status::Failed && self.dead.contains(h));
        let once_unreachable = self.last.iter().any(|(_, s)| *s == Status::Unreachable);
        let ignore_errors = self
            .last
            .iter()
            .any(|(h, s)| *s == Status::Failed && !self.dead.contains(h))
            || crate::jinja::value::python_truth(&step.task.ignore_errors);
        if run_once && (once_failed || (once_unreachable && !ignore_errors)) {
            // ansible-core's strategy: "if we're using run_once, we have to fail every host"
            // of the play (not counted as failures in the recap: only the host that ran it
            // is). A failure marks them twice (see `collateral`); an unreachable host, through
            // the any_errors_fatal check alone, once.
            for h in active.drain(..) {
                self.dead.insert(h.clone());
                if once_failed {
                    run.collateral.insert(h.clone());
                }
                run.collateral_all.insert(h);
                failed_now += 1;
            }
        }
        let last = std::mem::take(&mut self.last);
        let mut missing_handler = false;
        'hosts: for (host, status) in &last {
            if *status == Status::Changed {
                for name in self.notify_names(play, &step.task, &step.extra.notify, host, run) {
                    // as ansible-core: a changed result's notification must reach a handler
                    // loaded by now (an error that ends the run, or with
                    // `error_on_missing_handler = false` a warning)
                    if !self.reaches_a_handler(play, &name, host, run)
                        && self.missing_handler_ends_run(&name)
                    {
                        missing_handler = true;
                        break 'hosts;
                    }
                    match run.notified.iter_mut().find(|(n, _)| *n == name) {
                        Some((_, hosts)) if !hosts.contains(host) => hosts.push(host.clone()),
                        Some(_) => {}
                        None => run.notified.push((name, vec![host.clone()])),
                    }
                }
            }
            if *status == Status::Failed && self.dead.contains(host) {
                let result = self.last_results.remove(host).unwrap_or_default();
                run.failed_task
                    .insert(host.clone(), (failed_task_fields(&step.task), result));
            }
        }
        self.last = last;
        if missing_handler {
            self.fatal = Some(1);
            return Flow::Abort;
        }
        let fatal = step.task.any_errors_fatal.unwrap_or(play.any_errors_fatal);
        self.after_failures(play, fatal, failed_now, active, run)
    }

    /// Reports a notification that reaches no handler in ansible-core's words: an error when
    /// `error_on_missing_handler` (true: the run ends), else a warning.
    fn missing_handler_ends_run(&mut self, name: &str) -> bool {
        let msg = format!(
            "The requested handler '{name}' was not found in either the main handlers list nor in the listening handlers list"
        );
        if crate::config::error_on_missing_handler() {
            eprintln!("[ERROR]: {msg}");
            return true;
        }
        self.reporter.warning(&msg);
        false
    }

    /// Whether notification `name` of `host` reaches a loaded handler (by its name, templated
    /// for the host, or a `listen` topic).
    /// When it does not, the warnings of handler names that could not be templated come
    /// first, as ansible-core's search gives them.
    fn reaches_a_handler(
        &mut self,
        play: &Play,
        name: &str,
        host: &str,
        run: &PlayRun<'_>,
    ) -> bool {
        let runtime = play.runtime_handlers();
        let (handlers, _) = loaded_handlers(play, &runtime, run);
        let (names, warnings) = self.handler_names(play, &handlers, host, run);
        let found = !notified_handlers(&handlers, &names, name).is_empty();
        if !found {
            for w in warnings {
                self.reporter.warning(&w);
            }
        }
        found
    }

    /// `fatal`: the task's `any_errors_fatal` (its own, a block's, else the play's).
    fn after_failures(
        &mut self,
        play: &Play,
        fatal: bool,
        failed_now: usize,
        active: &mut Vec<String>,
        run: &mut PlayRun<'_>,
    ) -> Flow {
        if failed_now == 0 {
            return Flow::Continue;
        }
        if fatal {
            // ansible-core marks every other host failed at this task: each goes on as a failed
            // host does (its block's `rescue`, else its `always`, then nothing more); they
            // count among the run's failed hosts (exit 2, no later plays), not in the recap
            for h in active.drain(..) {
                if self.dead.insert(h.clone()) {
                    run.collateral_all.insert(h);
                }
            }
            self.any_failed = true;
            return Flow::Continue;
        }
        if run.rescuable > 0 {
            return Flow::Continue;
        }
        run.batch_failed += failed_now;
        if let Some(pct) = play.max_fail_percentage {
            let ratio = 100.0 * run.batch_failed as f64 / run.batch.len().max(1) as f64;
            if ratio > pct {
                self.any_failed = true;
                return Flow::Abort;
            }
        }
        Flow::Continue
    }

    async fn run_block(
        &mut self,
        play: &Play,
        b: &crate::playbook::blocks::Block,
        active: &mut Vec<String>,
        run: &mut PlayRun<'_>,
    ) -> Flow {
        let start = active.clone();
        let mut in_block = active.clone();
        if !b.rescue.is_empty() {
            run.rescuable += 1;
        }
        let mut flow = self.run_items(play, &b.block, &mut in_block, run).await;
        if !b.rescue.is_empty() {
            run.rescuable -= 1;
        }
        let failed: Vec<String> = start
            .iter()
            .filter(|h| self.dead.contains(*h) && !self.ended.contains(*h))
            .cloned()
            .collect();
        let mut survivors: Vec<String> = start
            .iter()
            .filter(|h| in_block.contains(h))
            .cloned()
            .collect();
        let mut skip_always: Vec<String> = Vec::new();
        let collateral: Vec<String> = failed
            .iter()
            .filter(|h| run.collateral.contains(*h))
            .cloned()
            .collect();
        // the innermost block takes the second mark: it passes over its rescue, else its
        // always; outer blocks then see an ordinary failed host
        for h in &collateral {
            run.collateral.remove(h);
        }
        if b.rescue.is_empty() {
            skip_always = collateral.clone();
        }
        let failed: Vec<String> = if b.rescue.is_empty() {
            failed
        } else {
            failed
                .into_iter()
                .filter(|h| !collateral.contains(h))
                .collect()
        };
        if flow == Flow::Continue && !b.rescue.is_empty() && !failed.is_empty() {
            let mut rescued = failed.clone();
            for h in &failed {
                self.dead.remove(h);
                let collateral = run.collateral_all.contains(h) && !run.failed_task.contains_key(h);
                if let Some(s) = self.stats.get_mut(h).filter(|_| !collateral) {
                    s.failed = s.failed.saturating_sub(1);
                    s.rescued += 1;
                }
                if let Some((task, result)) = run.failed_task.get(h) {
                    let facts = self.facts.entry(h.clone()).or_default();
                    facts.insert("ansible_failed_task".into(), Value::Object(task.clone()));
                    facts.insert(
                        "ansible_failed_result".into(),
                        Value::Object(result.clone()),
                    );
                }
            }
            self.any_failed =
                self.stats.values().any(|s| s.failed > 0) || !run.collateral_all.is_empty();
            flow = self.run_items(play, &b.rescue, &mut rescued, run).await;
            survivors.extend(rescued);
        }
        // `always` runs for every host that entered the block and was not ended
        let mut always: Vec<String> = start
            .iter()
            .filter(|h| !self.ended.contains(*h) && !skip_always.contains(*h))
            .cloned()
            .collect();
        if !b.always.is_empty() && flow == Flow::Continue {
            let before_dead: Vec<String> = always
                .iter()
                .filter(|h| self.dead.contains(*h))
                .cloned()
                .collect();
            for h in &before_dead {
                self.dead.remove(h);
            }
            let outer_cleared = std::mem::take(&mut self.cleared);
            flow = self.run_items(play, &b.always, &mut always, run).await;
            // a failed host whose errors `always` cleared goes on after the block
            let cleared_here = std::mem::take(&mut self.cleared);
            for h in before_dead {
                if !cleared_here.contains(&h) {
                    self.dead.insert(h);
                }
            }
            self.cleared = outer_cleared.union(&cleared_here).cloned().collect();
        }
        let order = start.clone();
        active.retain(|h| {
            order.contains(h)
                && !self.dead.contains(h)
                && !self.ended.contains(h)
                && (survivors.contains(h) || always.contains(h))
        });
        flow
    }

    async fn run_meta(
        &mut self,
        play: &Play,
        step: &Step,
        active: &mut Vec<String>,
        run: &mut PlayRun<'_>,
    ) -> Flow {
        let task = &step.task;
        let action = meta_action(task);
        let implicit = task.is_role_complete();
        let info = TaskInfo {
            name: task.display_name(),
            origin: Some(task.origin.clone()),
            handler: step.extra.handler,
        };
        let conditions: Vec<(String, Result<bool, String>)> = {
            let hostvars = self.hostvars();
            let snapshot = active.clone();
            let scope = Scope {
                play_hosts: run.all_hosts,
                active: &snapshot,
                hostvars: &hostvars,
            };
            snapshot
                .iter()
                .map(|h| {
                    let job = self.job(play, task, h, &scope);
                    let jv = job.ctx.value();
                    let mut ok = Ok(true);
                    for c in &task.when {
                        match self.shared.templar.condition(c, &jv) {
                            Ok(true) => {}
                            Ok(false) => {
                                ok = Ok(false);
                                break;
                            }
                            Err(e) => {
                                ok = Err(format!("{e:#}"));
                                break;
                            }
                        }
                    }
                    (h.clone(), ok)
                })
                .collect()
        };
        if action == "role_complete" {
            // implicit and silent: the hosts whose conditions hold and for which a task of
            // the role ran have completed it (ansible-core's `_completed`)
            if let (true, Some(id)) = (implicit, task.role_instance) {
                let ran = self.roles_ran.get(&id).cloned().unwrap_or_default();
                let done = self.roles_done.entry(id).or_default();
                for (h, c) in &conditions {
                    if matches!(c, Ok(true)) && ran.contains(h) {
                        done.insert(h.clone());
                    }
                }
            }
            return Flow::Continue;
        }
        self.reporter.task_start(&info, active.len());
        // the linear strategy runs these once, for the first host, whose condition decides;
        // a false one is reported as that host's skip, in ansible-core's words
        let once = |suffix: &str| -> (bool, Option<(String, String)>) {
            match conditions.first() {
                Some((_, Ok(true))) | None => (true, None),
                Some((h, _)) => (
                    false,
                    Some((
                        h.clone(),
                        format!("{action} conditional evaluated to False{suffix}"),
                    )),
                ),
            }
        };
        // ansible-core shows each meta action's outcome from -vv on
        let meta_line = |engine: &mut Engine, header: &str| {
            engine.reporter.verbose_line(2, &format!("META: {header}"));
        };
        let decide = |engine: &mut Engine, (go, skip): (bool, Option<(String, String)>)| {
            if let Some((h, reason)) = skip {
                meta_line(engine, &reason);
                let mut m = Map::new();
                m.insert("changed".into(), Value::Bool(false));
                m.insert("msg".into(), Value::String(action.clone()));
                m.insert("skipped".into(), Value::Bool(true));
                m.insert("skip_reason".into(), Value::String(reason));
                engine.report_meta(&info, task, &h, Status::Skipped, m);
            }
            go
        };
        match action.as_str() {
            "noop" => {
                meta_line(self, "noop");
                Flow::Continue
            }
            "flush_handlers" => {
                if step.extra.handler && conditions.iter().any(|(_, c)| matches!(c, Ok(true))) {
                    // ansible-core's error, which ends the run
                    eprintln!("[ERROR]: flush_handlers cannot be used as a handler");
                    self.fatal = Some(1);
                    return Flow::Abort;
                }
                for (h, c) in &conditions {
                    if matches!(c, Ok(true)) {
                        meta_line(self, &format!("triggered running handlers for {h}"));
                    }
                }
                if conditions.iter().any(|(_, c)| matches!(c, Ok(true))) {
                    self.flush_handlers(play, active, run).await
                } else {
                    Flow::Continue
                }
            }
            "end_play" => {
                if decide(self, once(", continuing play")) {
                    meta_line(self, "ending play");
                    self.end_all(active);
                    if let Some(free) = &self.free {
                        free.end(true);
                    }
                    Flow::EndPlay
                } else {
                    Flow::Continue
                }
            }
            "clear_host_errors" => {
                // ansible-core: every host of the play is no longer failed or unreachable
                // (the recap keeps its counts); a host already out of this play's task list
                // stays out of it, but later plays and the exit code see it as good
                let first = conditions
                    .first()
                    .map(|(h, _)| h.clone())
                    .unwrap_or_default();
                let suffix = format!(", not clearing host error state for {first}");
                if decide(self, once(&suffix)) {
                    meta_line(self, "cleared host errors");
                    for h in run.all_hosts {
                        // an unreachable host runs the rest of the play's tasks later
                        if let Some(at) = self.unreachable_at.remove(h) {
                            if self.free.is_none() {
                                self.revived.push((h.clone(), at));
                            }
                        }
                        // a host failed before an `always` running this is out of `dead`
                        // only while the `always` runs: `cleared` keeps it out after
                        self.dead.remove(h);
                        self.cleared.insert(h.clone());
                        run.collateral.remove(h);
                        run.collateral_all.remove(h);
                    }
                    run.batch_failed = 0;
                    self.any_failed = !self.dead.is_empty();
                    self.any_unreachable = false;
                }
                Flow::Continue
            }
            "end_role" => {
                // ansible-core's errors: only a role's task may end it, not a handler
                let why = if step.extra.handler {
                    Some("Cannot execute 'end_role' from a handler")
                } else if task.role.is_none() || task.role_run.is_none() {
                    Some("Cannot execute 'end_role' from outside of a role")
                } else {
                    None
                };
                if let Some(why) = why {
                    eprintln!("[ERROR]: {why}");
                    self.fatal = Some(1);
                    return Flow::Abort;
                }
                let (Some(role), Some(id)) = (&task.role, task.role_run) else {
                    return Flow::Continue;
                };
                for (h, c) in &conditions {
                    if matches!(c, Ok(true)) {
                        meta_line(self, &format!("ending role {} for {h}", role.name));
                        self.roles_ended.entry(id).or_default().insert(h.clone());
                        // the role counts as run for the host (a later listing of the same
                        // reference does not run it again)
                        if let Some(instance) = task.role_instance {
                            self.roles_done
                                .entry(instance)
                                .or_default()
                                .insert(h.clone());
                        }
                    }
                }
                Flow::Continue
            }
            "refresh_inventory" => {
                match self.refresh_inventory() {
                    Ok(()) => {
                        meta_line(self, "inventory successfully refreshed");
                        // hosts the sources no longer have leave the play (ansible-core's
                        // hosts left are looked up in the new inventory)
                        let gone: Vec<String> = active
                            .iter()
                            .filter(|h| self.inv.host(h).is_none())
                            .cloned()
                            .collect();
                        active.retain(|h| !gone.contains(h));
                        self.ended.extend(gone);
                    }
                    Err(e) => {
                        let first = conditions.first().map(|(h, _)| h.clone());
                        let mut m = Map::new();
                        m.insert("failed".into(), Value::Bool(true));
                        m.insert("msg".into(), Value::String(format!("{e:#}")));
                        if let Some(h) = first {
                            self.report_meta(&info, task, &h, Status::Failed, m);
                        }
                        self.any_failed = true;
                        return Flow::Abort;
                    }
                }
                Flow::Continue
            }
            "reset_connection" => {
                for (h, c) in &conditions {
                    if !matches!(c, Ok(true)) {
                        continue;
                    }
                    meta_line(self, "reset connection");
                    let hostvars = self.hostvars();
                    let snapshot = active.clone();
                    let scope = Scope {
                        play_hosts: run.all_hosts,
                        active: &snapshot,
                        hostvars: &hostvars,
                    };
                    let job = self.job(play, task, h, &scope);
                    if let Ok(spec) = super::conn::spec_for(
                        h,
                        &job.vars,
                        play.remote_user.as_deref(),
                        &self.shared.opts,
                    ) {
                        self.shared.pool.reset(&spec).await;
                    }
                }
                Flow::Continue
            }
            "end_batch" => {
                // the batch ends for every host; the play goes on with the next batch
                if decide(self, once(", continuing current batch")) {
                    meta_line(self, "ending batch");
                    self.end_all(active);
                    if let Some(free) = &self.free {
                        free.end(false);
                    }
                }
                Flow::Continue
            }
            "end_host" => {
                for (h, c) in conditions {
                    match c {
                        Ok(true) => {
                            meta_line(self, &format!("ending play for {h}"));
                            self.ended.insert(h.clone());
                            active.retain(|x| x != &h);
                        }
                        Ok(false) => {
                            meta_line(
                                self,
                                &format!(
                                    "end_host conditional evaluated to False, continuing execution for {h}"
                                ),
                            );
                            let mut m = Map::new();
                            m.insert("changed".into(), Value::Bool(false));
                            m.insert(
                                "msg".into(),
                                Value::String(format!(
                                    "end_host conditional evaluated to false, continuing execution for {h}"
                                )),
                            );
                            m.insert(
                                "skip_reason".into(),
                                Value::String(format!(
                                    "end_host conditional evaluated to False, continuing execution for {h}"
                                )),
                            );
                            m.insert("skipped".into(), Value::Bool(true));
                            self.report_meta(&info, task, &h, Status::Skipped, m);
                        }
                        Err(e) => {
                            let mut m = Map::new();
                            m.insert("changed".into(), Value::Bool(false));
                            m.insert("failed".into(), Value::Bool(true));
                            m.insert(
                                "msg".into(),
                                Value::String(format!("Error while evaluating conditional: {e}")),
                            );
                            self.report_meta(&info, task, &h, Status::Failed, m);
                            self.dead.insert(h.clone());
                            self.any_failed = true;
                            active.retain(|x| x != &h);
                        }
                    }
                }
                Flow::Continue
            }
            other => {
                // rejected at parse time; never silently ignored
                self.reporter
                    .warning(&format!("meta: {other} is not supported by etcd-agent"));
                Flow::Continue
            }
        }
    }

    /// Ends every host of `active` for this play (`end_play`, `end_batch`).
    fn end_all(&mut self, active: &mut Vec<String>) {
        for h in active.drain(..) {
            self.ended.insert(h);
        }
    }

    fn report_meta(
        &mut self,
        info: &TaskInfo,
        task: &Task,
        host: &str,
        status: Status,
        result: Map<String, Value>,
    ) {
        // meta results are shown but, as in Ansible, not counted in the recap
        if status == Status::Failed {
            self.stats.entry(host.to_string()).or_default().failed += 1;
        }
        let hr = crate::output::HostResult {
            host: host.to_string(),
            delegated_to: None,
            status,
            ignored: false,
            result,
            action: task.module().to_string(),
        };
        self.reporter.host_result(info, &hr);
    }

    /// The variables `task` sees on `host` (as its job would), for templating outside a run.
    fn host_context(
        &self,
        play: &Play,
        task: &Arc<crate::playbook::Task>,
        host: &str,
        run: &PlayRun<'_>,
    ) -> minijinja::Value {
        let hostvars = self.hostvars();
        let hosts = [host.to_string()];
        let scope = Scope {
            play_hosts: run.all_hosts,
            active: &hosts,
            hostvars: &hostvars,
        };
        self.job(play, task, host, &scope).ctx.value()
    }

    /// The handlers `notify` names for `host`: each entry templated with the host's variables
    /// (one giving a list names each item), as ansible-core templates `notify`.
    fn notify_names(
        &self,
        play: &Play,
        task: &Arc<crate::playbook::Task>,
        notify: &[String],
        host: &str,
        run: &PlayRun<'_>,
    ) -> Vec<String> {
        if !notify.iter().any(|n| crate::jinja::value::is_template(n)) {
            return notify.to_vec();
        }
        let jv = self.host_context(play, task, host, run);
        let mut out = Vec::new();
        for n in notify {
            if !crate::jinja::value::is_template(n) {
                out.push(n.clone());
                continue;
            }
            match self
                .shared
                .templar
                .render_value(&Value::String(n.clone()), &jv)
            {
                Ok(Value::Array(items)) => {
                    out.extend(items.iter().map(crate::jinja::value::scalar_string))
                }
                Ok(v) => out.push(crate::jinja::value::scalar_string(&v)),
                // left as written: it names no handler, and says so when the handlers run
                Err(_) => out.push(n.clone()),
            }
        }
        out
    }

    /// The handlers' names as notifications match them: a templated name rendered with the
    /// play's variables (seen from `host`; ansible-core does not support host variables
    /// there), `None` for a handler whose name cannot be rendered (a `listen`er only, else
    /// unusable: ansible-core's warning is returned beside).
    fn handler_names(
        &self,
        play: &Play,
        handlers: &[&Step],
        host: &str,
        run: &PlayRun<'_>,
    ) -> (Vec<Option<String>>, Vec<String>) {
        let mut ctx = None;
        let mut warnings = Vec::new();
        let names = handlers
            .iter()
            .map(|step| {
                let name = step.task.name.clone()?;
                if !crate::jinja::value::is_template(&name) {
                    return Some(name);
                }
                let jv = ctx.get_or_insert_with(|| self.host_context(play, &step.task, host, run));
                match self.shared.templar.render_str(&name, jv) {
                    Ok(v) => Some(crate::jinja::value::scalar_string(&v)),
                    Err(e) => {
                        if step.extra.listen.is_empty() {
                            warnings.push(format!(
                                "Handler '{name}' is unusable because it has no listen topics and the name could not be templated (host-specific variables are not supported in handler names). The error: {e:#}"
                            ));
                        }
                        None
                    }
                }
            })
            .collect();
        (names, warnings)
    }

    /// Runs notified handlers on the notified active hosts: one pass over the handlers in the
    /// order they are defined, as Ansible flushes. A handler notified during the pass runs in it
    /// when it is defined after the one that notified it; otherwise (itself or an earlier one)
    /// it stays notified for the next flush, so handlers notifying each other cannot loop.
    pub(super) async fn flush_handlers(
        &mut self,
        play: &Play,
        active: &mut Vec<String>,
        run: &mut PlayRun<'_>,
    ) -> Flow {
        if run.notified.is_empty() {
            return Flow::Continue;
        }
        let runtime = play.runtime_handlers();
        let (handlers, included) = loaded_handlers(play, &runtime, run);
        let names = match run.notified.first().and_then(|(_, hosts)| hosts.first()) {
            Some(host) => {
                let (names, warnings) = self.handler_names(play, &handlers, &host.clone(), run);
                for w in warnings {
                    self.reporter.warning(&w);
                }
                names
            }
            None => handlers.iter().map(|s| s.task.name.clone()).collect(),
        };
        let notified = |n: &str| notified_handlers(&handlers, &names, n);
        let add = |list: &mut Vec<String>, host: &str| {
            if !list.iter().any(|h| h == host) {
                list.push(host.to_string());
            }
        };
        let mut pending: Vec<Vec<String>> = vec![Vec::new(); handlers.len()];
        for (n, hosts) in std::mem::take(&mut run.notified) {
            // a notification that reaches no handler was reported when it was made
            for j in notified(&n) {
                for h in &hosts {
                    add(&mut pending[j], h);
                }
            }
        }
        let mut carry: Vec<Vec<String>> = vec![Vec::new(); handlers.len()];
        let mut flow = Flow::Continue;
        for (i, step) in handlers.iter().enumerate() {
            let hosts = std::mem::take(&mut pending[i]);
            let mut targets: Vec<String> = active
                .iter()
                .filter(|h| hosts.contains(h))
                .cloned()
                .collect();
            if targets.is_empty() {
                continue;
            }
            if let Some(flow) = self.step_gate_for(step, true).await {
                if flow == Flow::Continue {
                    continue;
                }
                return flow;
            }
            // an included file ansible-core refuses as handlers: its parser error, which ends
            // the run
            if let Some(origin) = &step.extra.handler_file_error {
                eprintln!(
                    "[ERROR]: Using a block as a handler is not supported.\nOrigin: {origin}"
                );
                self.fatal = Some(4);
                return Flow::Abort;
            }
            // a `meta` handler is the executor's, as a `meta` task is
            if step.task.module() == "meta" {
                let flow = Box::pin(self.run_meta(play, step, &mut targets, run)).await;
                if flow != Flow::Continue {
                    return flow;
                }
                continue;
            }
            let handler = Arc::new((*step.task).clone());
            let failed_now = self
                .run_task(
                    play,
                    &handler,
                    &mut targets,
                    (run.all_hosts, &run.batch.clone()),
                    Some(&step.extra),
                )
                .await;
            let notifying: Vec<(String, Status)> = self.last.clone();
            // a failed handler is `ansible_failed_task` in a rescue around the flush
            for (host, status) in &notifying {
                if *status == Status::Failed && self.dead.contains(host) {
                    let result = self.last_results.remove(host).unwrap_or_default();
                    run.failed_task
                        .insert(host.clone(), (failed_task_fields(&step.task), result));
                }
            }
            if let Some(included) = &included[i] {
                let ok: Vec<String> = notifying
                    .iter()
                    .filter(|(_, s)| matches!(s, Status::Ok | Status::Changed))
                    .map(|(h, _)| h.clone())
                    .collect();
                let groups = match included {
                    Included::Parsed(items) => vec![(ok, items.to_vec())],
                    Included::Deferred(deferred) => self.load_included(step, deferred, run),
                };
                for (hosts, mut items) in groups {
                    // a handler's file runs as handlers (`RUNNING HANDLER [...]`)
                    mark_as_handlers(&mut items);
                    let mut inner: Vec<String> = targets
                        .iter()
                        .filter(|h| hosts.contains(h) && !self.dead.contains(*h))
                        .cloned()
                        .collect();
                    // the included tasks record their own failures (`run_step`)
                    let inner_flow = Box::pin(self.run_items(play, &items, &mut inner, run)).await;
                    if inner_flow != Flow::Continue {
                        active.retain(|h| !self.dead.contains(h) && !self.ended.contains(h));
                        return inner_flow;
                    }
                }
            }
            for (host, status) in &notifying {
                if *status != Status::Changed {
                    continue;
                }
                for n in &step.extra.notify {
                    if notified(n).is_empty() && self.missing_handler_ends_run(n) {
                        self.fatal = Some(1);
                        return Flow::Abort;
                    }
                    for j in notified(n) {
                        let list = if j > i {
                            &mut pending[j]
                        } else {
                            &mut carry[j]
                        };
                        add(list, host);
                    }
                }
            }
            active.retain(|h| !self.dead.contains(h));
            let fatal = step.task.any_errors_fatal.unwrap_or(play.any_errors_fatal);
            flow = self.after_failures(play, fatal, failed_now, active, run);
            if flow != Flow::Continue {
                break;
            }
        }
        // handlers notified for a later flush, by name (or their first `listen` topic)
        for (j, hosts) in carry.into_iter().enumerate() {
            if hosts.is_empty() {
                continue;
            }
            let step = handlers[j];
            let Some(key) = step
                .task
                .name
                .clone()
                .or_else(|| step.extra.listen.first().cloned())
            else {
                continue;
            };
            match run.notified.iter_mut().find(|(x, _)| *x == key) {
                Some((_, list)) => {
                    for h in &hosts {
                        add(list, h);
                    }
                }
                None => run.notified.push((key, hosts)),
            }
        }
        flow
    }
}

/// The role reference an item's task came from, when that role runs once per host.
fn item_role_run(item: &Item) -> Option<usize> {
    match item {
        Item::Task(step) | Item::Include { step, .. } | Item::Deferred { step, .. } => {
            step.task.role_run
        }
        Item::Block(_) | Item::Flush => None,
    }
}

fn item_role_instance(item: &Item) -> Option<usize> {
    match item {
        Item::Task(step) | Item::Include { step, .. } | Item::Deferred { step, .. } => {
            step.task.role_instance
        }
        Item::Block(_) | Item::Flush => None,
    }
}

/// Marks the tasks of a handler's included file as handlers.
fn mark_as_handlers(items: &mut [Item]) {
    for item in items {
        match item {
            Item::Task(step) | Item::Deferred { step, .. } => step.extra.handler = true,
            Item::Include { step, items } => {
                step.extra.handler = true;
                mark_as_handlers(items);
            }
            Item::Block(b) => {
                mark_as_handlers(&mut b.block);
                mark_as_handlers(&mut b.rescue);
                mark_as_handlers(&mut b.always);
            }
            Item::Flush => {}
        }
    }
}

/// The play's handlers loaded so far, with the tasks of a handler's file when it is an
/// `include_tasks`: those of the play and of `roles:`, and an `include_role`'s once a task
/// of its role ran.
fn loaded_handlers<'p>(
    play: &'p Play,
    runtime: &'p [Item],
    run: &PlayRun<'_>,
) -> (Vec<&'p Step>, Vec<Option<Included<'p>>>) {
    let reached = &run.roles_reached;
    let loaded = |i: usize, item: &Item| {
        let role = match item {
            Item::Task(s) | Item::Include { step: s, .. } | Item::Deferred { step: s, .. } => {
                s.task.role.as_ref()
            }
            _ => None,
        };
        i < play.include_handlers_at || role.is_some_and(|r| reached.contains(&r.path))
    };
    // then those of roles included while the play runs (see `Play::runtime_handlers`)
    play.handlers
        .iter()
        .enumerate()
        .filter(|(i, item)| loaded(*i, item))
        .map(|(_, item)| item)
        .chain(runtime)
        .filter_map(|item| match item {
            Item::Task(step) => Some((step, None)),
            Item::Include { step, items } => Some((step, Some(Included::Parsed(items)))),
            Item::Deferred { step, deferred } => Some((step, Some(Included::Deferred(deferred)))),
            _ => None,
        })
        .unzip()
}

/// The handlers a notification `n` reaches, as ansible-core's `search_handlers_by_notification`
/// finds them. It looks through the play's handler blocks last first (the play's own
/// `handlers:` section is one block, each role's handlers file another; here a block is the
/// handlers written in one file), each block in order: by name (or `role : name`) the first
/// match only, so a role loaded later wins over the play and an earlier role, and every
/// handler that `listen`s to `n` (one per name).
fn notified_handlers(handlers: &[&Step], names: &[Option<String>], n: &str) -> Vec<usize> {
    let mut blocks: Vec<(&std::path::Path, Vec<usize>)> = Vec::new();
    for (j, step) in handlers.iter().enumerate() {
        let file = step.task.origin.file.as_path();
        match blocks.iter_mut().find(|(f, _)| *f == file) {
            Some((_, list)) => list.push(j),
            None => blocks.push((file, vec![j])),
        }
    }
    let order: Vec<usize> = blocks
        .into_iter()
        .rev()
        .flat_map(|(_, list)| list)
        .collect();
    let mut out: Vec<usize> = order
        .iter()
        .copied()
        .find(|&j| {
            names[j]
                .as_deref()
                .is_some_and(|name| handlers[j].task.answers_to_name(name, n))
        })
        .into_iter()
        .collect();
    let mut seen: Vec<&str> = Vec::new();
    for &j in &order {
        let step = handlers[j];
        if !step.extra.listen.iter().any(|l| l == n) {
            continue;
        }
        if let Some(name) = names[j].as_deref() {
            if seen.contains(&name) {
                continue;
            }
            seen.push(name);
        }
        if !out.contains(&j) {
            out.push(j);
        }
    }
    out
}
