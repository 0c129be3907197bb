//! The `free` strategy (and `host_pinned`, the same here): each host of a batch goes through
//! the play at its own pace, as ansible-core's free strategy runs them, instead of every
//! host finishing a task before the next starts.
//!
//! Each host runs in a lane: an [`Engine`] of its own for the batch (a copy of the run's
//! state) whose task list is the play's, all lanes at once. What they share: the run's
//! forks (at most `forks` hosts run an action at a time), a task's `throttle` (counted over
//! the hosts running that task), the output (a task's banner is printed before a result of
//! another task than the last one shown, as ansible-core's default callback does for these
//! strategies) and `meta: end_play`/`end_batch` (they end the play or batch for every lane).
//! When the lanes are done, each host's state (facts, statistics, failures, roles run) goes
//! back to the run.
//!
//! As in ansible-core: `run_once` runs for every host (with its warning), `any_errors_fatal`
//! and `max_fail_percentage` only warn, and an action that bypasses the host loop
//! (`add_host`, `pause`) stops the run. `group_by` (a change of the run's inventory from one
//! lane) is refused; `--step` with this strategy is refused before the play.

use super::flow::{Flow, PlayRun};
use super::Engine;
use crate::output::{HostResult, HostStats, Reporter, TaskInfo};
use crate::playbook::blocks::Item;
use crate::playbook::Play;
use crate::yaml::TaskOrigin;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// What the lanes of a batch share.
pub(super) struct FreeShared {
    /// The run's forks, over every lane.
    pub forks: Arc<Semaphore>,
    /// Per throttled task (by identity), the hosts that may run it at once.
    throttles: Mutex<HashMap<usize, Arc<Semaphore>>>,
    /// A lane ran `meta: end_batch` (1) or `end_play` (2): every lane stops.
    ended: std::sync::atomic::AtomicU8,
    /// Warnings already shown (ansible-core shows each once).
    warned: Mutex<HashSet<String>>,
}

impl FreeShared {
    /// The semaphore of a task throttled to `limit` hosts at once.
    pub fn throttle(&self, task: &crate::playbook::Task, limit: usize) -> Arc<Semaphore> {
        let key = task as *const _ as usize;
        let mut map = self.throttles.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key)
            .or_insert_with(|| Arc::new(Semaphore::new(limit.max(1))))
            .clone()
    }

    /// How a lane ended the batch for all: `Some(Flow::Continue)` for the batch (the play
    /// goes on with the next), `Some(Flow::EndPlay)` for the play.
    pub fn ended(&self) -> Option<Flow> {
        match self.ended.load(std::sync::atomic::Ordering::SeqCst) {
            0 => None,
            1 => Some(Flow::Continue),
            _ => Some(Flow::EndPlay),
        }
    }

    /// Ends the batch (`play`: the play) for every lane.
    pub fn end(&self, play: bool) {
        self.ended.fetch_max(
            if play { 2 } else { 1 },
            std::sync::atomic::Ordering::SeqCst,
        );
    }

    /// True the first time `msg` is to be shown.
    pub fn first_warning(&self, msg: &str) -> bool {
        let mut w = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        w.insert(msg.to_string())
    }
}

/// ansible-core's warning for `run_once` under the free strategy.
pub(super) const RUN_ONCE_WARNING: &str = "Using run_once with the free strategy is not currently supported. This task will still be executed for every host in the inventory list.";

/// ansible-core's warning for `any_errors_fatal` under the free strategy.
pub(super) const FATAL_WARNING: &str = "Using any_errors_fatal with the free strategy is not supported, as tasks are executed independently on each host";

/// The banner last shown: a task's name and where it is written.
type BannerKey = (String, Option<(String, usize)>, bool);

fn banner_key(task: &TaskInfo) -> BannerKey {
    (
        task.name.clone(),
        task.origin
            .as_ref()
            .map(|o: &TaskOrigin| (o.file.display().to_string(), o.line)),
        task.handler,
    )
}

/// The run's reporter, with the banner last shown.
struct Output {
    inner: Box<dyn Reporter>,
    banner: Option<BannerKey>,
}

/// A lane's reporter: its events go to the run's reporter; a task's banner is shown before
/// its first result that follows another task's.
struct LaneReporter {
    out: Arc<Mutex<Output>>,
}

impl LaneReporter {
    fn with<T>(&self, f: impl FnOnce(&mut Output) -> T) -> T {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut out)
    }
}

impl Reporter for LaneReporter {
    fn play_start(&mut self, name: &str, origin: &TaskOrigin) {
        self.with(|o| o.inner.play_start(name, origin));
    }

    fn no_hosts(&mut self) {}

    fn task_start(&mut self, _task: &TaskInfo, _hosts: usize) {}

    fn host_result(&mut self, task: &TaskInfo, result: &HostResult) {
        self.with(|o| {
            let key = banner_key(task);
            if o.banner.as_ref() != Some(&key) {
                o.inner.task_start(task, 1);
                o.banner = Some(key);
            }
            o.inner.host_result(task, result);
        });
    }

    fn retry(
        &mut self,
        task: &TaskInfo,
        host: &str,
        retries_left: u32,
        result: &Map<String, Value>,
    ) {
        self.with(|o| o.inner.retry(task, host, retries_left, result));
    }

    fn no_more_hosts(&mut self) {}

    fn recap(&mut self, _stats: &BTreeMap<String, HostStats>) {}

    fn warning(&mut self, msg: &str) {
        self.with(|o| o.inner.warning(msg));
    }

    fn verbose_line(&mut self, level: u8, msg: &str) {
        self.with(|o| o.inner.verbose_line(level, msg));
    }
}

/// Reports nothing: the run's reporter while lanes hold it.
struct Silent;

impl Reporter for Silent {
    fn play_start(&mut self, _: &str, _: &TaskOrigin) {}
    fn no_hosts(&mut self) {}
    fn task_start(&mut self, _: &TaskInfo, _: usize) {}
    fn host_result(&mut self, _: &TaskInfo, _: &HostResult) {}
    fn retry(&mut self, _: &TaskInfo, _: &str, _: u32, _: &Map<String, Value>) {}
    fn no_more_hosts(&mut self) {}
    fn recap(&mut self, _: &BTreeMap<String, HostStats>) {}
    fn warning(&mut self, _: &str) {}
}

/// Whether `play`'s templated strategy is `free` or `host_pinned`.
pub(super) fn is_free(play: &Play) -> bool {
    play.strategy.as_deref().is_some_and(|s| {
        matches!(
            s.strip_prefix("ansible.builtin.").unwrap_or(s),
            "free" | "host_pinned"
        )
    })
}

impl Engine {
    /// ansible-core's free strategy on a task about to run in a lane: an action that
    /// bypasses the host loop stops the run (its error); `run_once` and `any_errors_fatal`
    /// warn (once). `None`: the task runs.
    pub(super) fn free_checks(
        &mut self,
        play: &Play,
        step: &crate::playbook::blocks::Step,
    ) -> Option<Flow> {
        let free = self.free.clone()?;
        let task = &step.task;
        let module = task.module();
        if crate::builtins::bypasses_host_loop(module) {
            eprintln!(
                "[ERROR]: The '{}' module bypasses the host loop, which is currently not supported in the free strategy and would instead execute for every host in the inventory list.",
                task.action
            );
            self.fatal = Some(1);
            free.end(true);
            return Some(Flow::Abort);
        }
        if module == "group_by" {
            eprintln!(
                "[ERROR]: group_by under the free strategy is not supported by etcd-agent (the inventory is shared by every host's lane)"
            );
            self.fatal = Some(1);
            free.end(true);
            return Some(Flow::Abort);
        }
        if task.run_once && free.first_warning(RUN_ONCE_WARNING) {
            self.reporter.warning(RUN_ONCE_WARNING);
        }
        let fatal = task.any_errors_fatal.unwrap_or(play.any_errors_fatal);
        if fatal && free.first_warning(FATAL_WARNING) {
            self.reporter.warning(FATAL_WARNING);
        }
        None
    }

    /// Runs `body` for `batch` under the free strategy: a lane per host, all at once; then
    /// every host's state back into the run. Returns how the batch ended and the hosts
    /// another host's `run_once` failed (none here: `run_once` runs for every host).
    pub(super) async fn run_free(
        &mut self,
        play: &Play,
        body: &[Item],
        batch: &[String],
        all_hosts: &[String],
    ) -> (Flow, HashSet<String>) {
        if play.max_fail_percentage.is_some() {
            self.reporter.warning("Using max_fail_percentage with the free strategy is not supported, as tasks are executed independently on each host");
        }
        let free = Arc::new(FreeShared {
            forks: Arc::new(Semaphore::new(self.shared.opts.forks.max(1))),
            throttles: Mutex::new(HashMap::new()),
            ended: Default::default(),
            warned: Mutex::new(HashSet::new()),
        });
        let out = Arc::new(Mutex::new(Output {
            inner: std::mem::replace(&mut self.reporter, Box::new(Silent)),
            banner: None,
        }));
        let mut lanes: Vec<Engine> = batch
            .iter()
            .map(|_| {
                let mut lane = self.lane(Box::new(LaneReporter { out: out.clone() }));
                lane.free = Some(free.clone());
                lane
            })
            .collect();
        let runs = lanes.iter_mut().zip(batch).map(|(lane, host)| async move {
            let mut active = vec![host.clone()];
            let one = std::slice::from_ref(host);
            let mut run = PlayRun::new(all_hosts, one);
            let flow = lane.run_items(play, body, &mut active, &mut run).await;
            (flow, run.collateral_all)
        });
        let ended: Vec<(Flow, HashSet<String>)> = join_all(runs.collect()).await;
        for (lane, host) in lanes.into_iter().zip(batch) {
            self.merge_lane(lane, host);
        }
        let Ok(out) = Arc::try_unwrap(out) else {
            unreachable!("every lane and its reporter were merged")
        };
        self.reporter = out.into_inner().unwrap_or_else(|e| e.into_inner()).inner;
        let mut flow = Flow::Continue;
        let mut collateral = HashSet::new();
        for (f, c) in ended {
            collateral.extend(c);
            flow = match (flow, f) {
                (Flow::Abort, _) | (_, Flow::Abort) => Flow::Abort,
                (Flow::EndPlay, _) | (_, Flow::EndPlay) => Flow::EndPlay,
                _ => Flow::Continue,
            };
        }
        (flow, collateral)
    }

    /// A lane: this run's state, copied, with its own reporter.
    fn lane(&self, reporter: Box<dyn Reporter>) -> Engine {
        Engine {
            inv: self.inv.clone(),
            shared: self.shared.clone(),
            reporter,
            facts: self.facts.clone(),
            fact_cache: self.fact_cache.clone(),
            included_vars: self.included_vars.clone(),
            stats: self.stats.clone(),
            dead: self.dead.clone(),
            any_failed: false,
            any_unreachable: false,
            groups: self.groups.clone(),
            last: Vec::new(),
            last_results: HashMap::new(),
            last_includes: Vec::new(),
            ended: self.ended.clone(),
            cleared: self.cleared.clone(),
            unreachable_at: HashMap::new(),
            revived: Vec::new(),
            roles_done: self.roles_done.clone(),
            roles_ended: self.roles_ended.clone(),
            roles_ran: self.roles_ran.clone(),
            vars_files: self.vars_files.clone(),
            public_roles: self.public_roles.clone(),
            opening_next: Vec::new(),
            start_at: None,
            step: Default::default(),
            fatal: None,
            free: None,
            dynamic: self.dynamic.clone(),
        }
    }

    /// Takes back what `lane` (the lane of `host`) changed: the host's facts, registered
    /// results, included vars and statistics, facts it set on other hosts
    /// (`delegate_facts`), its failure, the roles it completed, the roles it made public.
    fn merge_lane(&mut self, lane: Engine, host: &str) {
        let mut hosts: HashSet<String> = lane.facts.keys().cloned().collect();
        hosts.extend(lane.fact_cache.hosts().cloned());
        hosts.extend(lane.included_vars.keys().cloned());
        for h in &hosts {
            if lane.facts.get(h) != self.facts.get(h) {
                match lane.facts.get(h) {
                    Some(f) => self.facts.insert(h.clone(), f.clone()),
                    None => self.facts.remove(h),
                };
            }
            if lane.included_vars.get(h) != self.included_vars.get(h) {
                if let Some(v) = lane.included_vars.get(h) {
                    self.included_vars.insert(h.clone(), v.clone());
                }
            }
            self.fact_cache.adopt(&lane.fact_cache, h);
        }
        if let Some(s) = lane.stats.get(host) {
            self.stats.insert(host.to_string(), s.clone());
        }
        if lane.dead.contains(host) {
            self.dead.insert(host.to_string());
        }
        if lane.ended.contains(host) {
            self.ended.insert(host.to_string());
        }
        if lane.cleared.contains(host) {
            self.cleared.insert(host.to_string());
        }
        self.any_failed |= lane.any_failed;
        self.any_unreachable |= lane.any_unreachable;
        for (id, done) in lane.roles_done {
            self.roles_done.entry(id).or_default().extend(done);
        }
        for (id, ended) in lane.roles_ended {
            self.roles_ended.entry(id).or_default().extend(ended);
        }
        for (id, ran) in lane.roles_ran {
            self.roles_ran.entry(id).or_default().extend(ran);
        }
        for role in lane.public_roles {
            if !self.public_roles.iter().any(|r| r.path == role.path) {
                self.public_roles.push(role);
            }
        }
        if self.fatal.is_none() {
            self.fatal = lane.fatal;
        }
    }
}

/// Runs every future at once on this task, polling each until it is done; their outputs in
/// order.
async fn join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    use std::task::Poll;
    let mut futs: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut outs: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futs.iter_mut().zip(outs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outs.into_iter().flatten().collect()
}
