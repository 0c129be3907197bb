//! The executor: plays, `serial` batches, forks, per-task state (registered results, facts,
//! failed hosts) and exit codes. Output only observes what the executor reports.

mod conn;
mod flow;
mod host_task;
mod hostvars;
mod loops;
mod vars;

pub use vars::OMIT;

use crate::inventory::{pattern, Inventory, Vars};
use crate::jinja::Templar;
use crate::modules::ModuleFinder;
use crate::output::{HostResult, HostStats, Reporter, Status, TaskInfo};
use crate::playbook::role::Role;
use crate::playbook::{Play, Playbook, Serial, Task};
use crate::transport::ConnectionPool;
use host_task::{HostJob, HostOutcome};
use minijinja::Value as JValue;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

/// Run-wide options (command line merged with ansible.cfg).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// `--check`.
    pub check: bool,
    /// `--diff`.
    pub diff: bool,
    /// `--forks`.
    pub forks: usize,
    /// `-v` count.
    pub verbosity: u8,
    /// `-e` variables.
    pub extra_vars: Vars,
    /// `--limit`.
    pub limit: Option<String>,
    /// `-u` / `remote_user`.
    pub remote_user: Option<String>,
    /// `--private-key` / `private_key_file`.
    pub private_key: Option<PathBuf>,
    /// `--become`.
    pub r#become: bool,
    /// SSH connect timeout (seconds).
    pub timeout: u64,
    /// `host_key_checking`.
    pub host_key_checking: bool,
    /// Directory of the playbook (`playbook_dir`).
    pub playbook_dir: PathBuf,
    /// `[ssh_connection] ssh_args` words, before each host's own ssh arguments.
    pub ssh_args: Vec<String>,
    /// Where persistent connections keep their control sockets.
    pub control_path_dir: PathBuf,
}

/// State shared with host jobs.
pub struct Shared {
    /// Run options.
    pub opts: RunOptions,
    /// Template engine.
    pub templar: Templar,
    /// Connections.
    pub pool: ConnectionPool,
    /// Module lookup.
    pub modules: ModuleFinder,
    /// Inventory variables per host (recomputed for the hosts of a group that `group_by`
    /// changes, so the group's `group_vars` apply from the next task on).
    inv_vars: std::sync::RwLock<HashMap<String, Vars>>,
}

impl Shared {
    /// Connection variables for a delegation target.
    /// The variables that say how to reach a `delegate_to` host: its own inventory variables,
    /// templated in its own context (with `-e` on top), as Ansible takes them.
    fn delegate_vars(&self, host: &str) -> Map<String, Value> {
        let raw = {
            let inv_vars = self.inv_vars.read().unwrap_or_else(|e| e.into_inner());
            match inv_vars.get(host) {
                Some(v) => v.clone(),
                None if matches!(host, "localhost" | "127.0.0.1" | "::1") => {
                    let mut m = Map::new();
                    m.insert("ansible_connection".into(), "local".into());
                    m
                }
                None => Map::new(),
            }
        };
        let empty = Vars::new();
        let layers = vars::Layers {
            role_defaults: &[],
            inventory: &raw,
            play: &empty,
            role_vars: &[],
            task: &empty,
            facts: &empty,
            extra: &self.opts.extra_vars,
        };
        let magic = [
            ("inventory_hostname", JValue::from(host)),
            (
                "playbook_dir",
                JValue::from(self.opts.playbook_dir.display().to_string()),
            ),
        ];
        vars::build(&layers, &magic, &self.templar).0
    }
}

/// Which hosts a task sees (for magic variables).
struct Scope<'a> {
    play_hosts: &'a [String],
    active: &'a [String],
    hostvars: &'a JValue,
}

/// Runs playbooks and keeps run state.
pub struct Engine {
    inv: Arc<Inventory>,
    shared: Arc<Shared>,
    reporter: Box<dyn Reporter>,
    facts: HashMap<String, Vars>,
    stats: BTreeMap<String, HostStats>,
    dead: HashSet<String>,
    any_failed: bool,
    any_unreachable: bool,
    groups: JValue,
    /// Status per host of the last task run (for notify, include and rescue).
    last: Vec<(String, Status)>,
    /// Result per host of the last task run, for hosts that failed it.
    last_results: HashMap<String, Map<String, Value>>,
    /// Hosts ended by `meta: end_host`/`end_play` in the current play.
    ended: HashSet<String>,
    /// Roles run with `include_role` `public: true` in the current play (for any host):
    /// their defaults and vars are every host's from then on, as in Ansible.
    public_roles: Vec<Arc<Role>>,
}

/// Splits hosts into `serial` batches.
pub fn batches(hosts: &[String], serial: &[Serial]) -> Vec<Vec<String>> {
    if serial.is_empty() {
        return vec![hosts.to_vec()];
    }
    let total = hosts.len();
    let mut out = Vec::new();
    let mut i = 0;
    let mut idx = 0;
    while i < total {
        let spec = &serial[idx.min(serial.len() - 1)];
        let size = match spec {
            Serial::Count(0) => total,
            Serial::Count(n) => *n,
            Serial::Percent(p) => ((total as f64) * p / 100.0).floor().max(1.0) as usize,
        };
        let end = (i + size).min(total);
        out.push(hosts[i..end].to_vec());
        i = end;
        idx += 1;
    }
    out
}

impl Engine {
    /// Prepares a run over `inv`.
    pub fn new(
        inv: Inventory,
        opts: RunOptions,
        modules: ModuleFinder,
        reporter: Box<dyn Reporter>,
    ) -> anyhow::Result<Self> {
        let mut inv = inv;
        inv.ensure_implicit_localhost();
        let mut inv_vars = HashMap::new();
        for h in inv.hosts() {
            inv_vars.insert(h.name.clone(), inv.host_vars_for_tasks(&h.name));
        }
        let mut groups = Map::new();
        for g in inv.groups() {
            let hosts = inv.group_hosts(&g.name);
            groups.insert(g.name.clone(), Value::from(hosts));
        }
        // handshakes run ahead of the forks that use them, but not unboundedly: on a busy
        // controller they are CPU-bound and would all finish late together
        let pool =
            ConnectionPool::new(opts.control_path_dir.clone(), 2 * opts.forks).map_err(|e| {
                anyhow::anyhow!("cannot create a directory for ssh control sockets: {e}")
            })?;
        Ok(Engine {
            inv: Arc::new(inv),
            shared: Arc::new(Shared {
                opts,
                templar: Templar::new(),
                pool,
                modules,
                inv_vars: std::sync::RwLock::new(inv_vars),
            }),
            reporter,
            facts: HashMap::new(),
            stats: BTreeMap::new(),
            dead: HashSet::new(),
            any_failed: false,
            any_unreachable: false,
            groups: JValue::from_serialize(&groups),
            last: Vec::new(),
            last_results: HashMap::new(),
            ended: HashSet::new(),
            public_roles: Vec::new(),
        })
    }

    /// The state shared with host jobs (for shutting connections down on interrupt).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Hosts a play runs on: its pattern, intersected with `--limit`, in inventory order.
    pub fn play_hosts(&self, play: &Play) -> anyhow::Result<Vec<String>> {
        play_hosts(&self.inv, &play.hosts, self.shared.opts.limit.as_deref())
    }

    /// Runs every play, prints the recap, closes connections; returns the exit code.
    pub async fn run(&mut self, playbook: &Playbook) -> i32 {
        for play in &playbook.plays {
            if !self.run_play(play).await {
                break;
            }
        }
        self.reporter.recap(&self.stats);
        let uploads = self.shared.pool.upload_count().await;
        tracing::info!(target: "etcd_agent::transport", uploads, "module uploads this run");
        self.shared.pool.close_all().await;
        if self.any_unreachable {
            4
        } else if self.any_failed {
            2
        } else {
            0
        }
    }

    /// Runs one play; false stops the playbook.
    async fn run_play(&mut self, play: &Play) -> bool {
        self.reporter.play_start(&play.name, &play.origin);
        self.public_roles.clear();
        let hosts = match self.play_hosts(play) {
            Ok(h) => h,
            Err(e) => {
                self.reporter.warning(&format!("{e:#}"));
                Vec::new()
            }
        };
        if hosts.is_empty() {
            for term in pattern::split(&play.hosts) {
                let bare = term.trim_start_matches(['&', '!']);
                if pattern::resolve(&self.inv, bare)
                    .map(|h| h.is_empty())
                    .unwrap_or(true)
                    && bare != "localhost"
                {
                    self.reporter.warning(&format!(
                        "Could not match supplied host pattern, ignoring: {bare}"
                    ));
                }
            }
        }
        let all_hosts = hosts.clone();
        let hosts: Vec<String> = hosts
            .into_iter()
            .filter(|h| !self.dead.contains(h))
            .collect();
        if hosts.is_empty() {
            self.reporter.no_hosts();
            return true;
        }
        self.ended.clear();
        let mut body: Vec<crate::playbook::blocks::Item> = Vec::new();
        if play.gather_facts {
            body.push(crate::playbook::blocks::Item::Task(
                crate::playbook::blocks::Step {
                    task: Arc::new(Task::synthetic(
                        "setup",
                        "Gathering Facts",
                        play.origin.clone(),
                    )),
                    extra: Default::default(),
                },
            ));
        }
        body.extend(play.body.iter().cloned());
        for (i, batch) in batches(&hosts, &play.serial).into_iter().enumerate() {
            if i > 0 {
                // Ansible announces the play again for every serial batch
                self.reporter.play_start(&play.name, &play.origin);
            }
            let mut active = batch.clone();
            let mut run = flow::PlayRun::new(&all_hosts, &batch);
            let flow = self.run_items(play, &body, &mut active, &mut run).await;
            // hosts failed by another host's run_once task stay failed for the run
            for h in &run.collateral_all {
                self.dead.insert(h.clone());
                self.any_failed = true;
            }
            match flow {
                flow::Flow::Continue => {}
                flow::Flow::EndPlay => return true,
                flow::Flow::Abort => return false,
            }
            if batch.iter().all(|h| self.dead.contains(h)) {
                self.reporter.no_more_hosts();
                return false;
            }
        }
        true
    }

    /// Builds the per-host job (variables and context).
    fn job(&self, play: &Play, task: &Arc<Task>, host: &str, scope: &Scope<'_>) -> HostJob {
        let (play_hosts, active, hostvars) = (scope.play_hosts, scope.active, scope.hostvars);
        let empty = Vars::new();
        let inv_vars = self
            .shared
            .inv_vars
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let mut inventory = inv_vars.get(host).unwrap_or(&empty);
        // the `connection` keyword (the task's, else the play's), below any
        // `ansible_connection` variable
        let connection_keyword = task.connection.clone().or_else(|| play.connection.clone());
        let with_connection;
        if let Some(c) = &connection_keyword {
            if !inventory.contains_key("ansible_connection") {
                let mut vars = inventory.clone();
                vars.insert("ansible_connection".into(), c.as_str().into());
                with_connection = vars;
                inventory = &with_connection;
            }
        }
        let facts = self.facts.get(host).unwrap_or(&empty);
        let short = host.split('.').next().unwrap_or(host).to_string();
        let opts = &self.shared.opts;
        let mut magic: Vec<(&str, JValue)> = vec![
            ("inventory_hostname", JValue::from(host)),
            ("inventory_hostname_short", JValue::from(short)),
            (
                "group_names",
                JValue::from_serialize(self.inv.group_names(host)),
            ),
            ("groups", self.groups.clone()),
            ("hostvars", hostvars.clone()),
            ("play_hosts", JValue::from_serialize(active)),
            ("ansible_play_hosts", JValue::from_serialize(active)),
            ("ansible_play_batch", JValue::from_serialize(active)),
            ("ansible_play_hosts_all", JValue::from_serialize(play_hosts)),
            ("ansible_play_name", JValue::from(play.name.clone())),
            (
                "playbook_dir",
                JValue::from(opts.playbook_dir.display().to_string()),
            ),
            ("ansible_check_mode", JValue::from(opts.check)),
            ("ansible_diff_mode", JValue::from(opts.diff)),
            ("ansible_verbosity", JValue::from(opts.verbosity)),
            ("ansible_forks", JValue::from(opts.forks)),
            (
                "ansible_version",
                JValue::from_serialize(vars::ansible_version()),
            ),
            ("omit", JValue::from(OMIT)),
        ];
        if let Some(role) = &task.role {
            magic.push(("role_name", JValue::from(role.name.clone())));
            magic.push(("role_path", JValue::from(role.path.display().to_string())));
        }
        // role defaults and vars: every role's of the play (and those made public so far),
        // then the task's own role's on top
        let roles: Vec<&Arc<Role>> = play
            .roles
            .iter()
            .chain(&self.public_roles)
            .chain(task.role.iter())
            .collect();
        let role_defaults: Vec<&Vars> = roles.iter().map(|r| &r.defaults).collect();
        let role_vars: Vec<&Vars> = roles.iter().map(|r| &r.vars).collect();
        let layers = vars::Layers {
            role_defaults: &role_defaults,
            inventory,
            play: &play.vars,
            role_vars: &role_vars,
            task: &task.vars,
            facts,
            extra: &opts.extra_vars,
        };
        let (merged, ctx) = vars::build(&layers, &magic, &self.shared.templar);
        HostJob {
            host: host.to_string(),
            task: task.clone(),
            vars: merged,
            ctx,
            play_become: play.r#become,
            play_user: play.remote_user.clone(),
            connection_keyword,
            play_env: play.environment.clone(),
        }
    }

    /// `hostvars`: every host's inventory variables and facts, templated lazily in that
    /// host's context (see [`hostvars::HostVars`]).
    fn hostvars(&self) -> JValue {
        let inv_vars = self
            .shared
            .inv_vars
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let hosts: Vec<(String, Vars)> = inv_vars
            .iter()
            .map(|(h, v)| {
                let mut m = v.clone();
                if let Some(f) = self.facts.get(h) {
                    crate::inventory::merge(&mut m, f);
                }
                m.entry("ansible_facts")
                    .or_insert_with(|| Value::Object(Map::new()));
                m.insert("inventory_hostname".into(), Value::String(h.clone()));
                m.insert("group_names".into(), Value::from(self.inv.group_names(h)));
                (h.clone(), m)
            })
            .collect();
        let opts = &self.shared.opts;
        let shared: std::collections::BTreeMap<String, JValue> = [
            ("groups", self.groups.clone()),
            (
                "playbook_dir",
                JValue::from(opts.playbook_dir.display().to_string()),
            ),
            (
                "ansible_version",
                JValue::from_serialize(vars::ansible_version()),
            ),
            ("ansible_check_mode", JValue::from(opts.check)),
            ("omit", JValue::from(OMIT)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        hostvars::HostVars::value(hosts, shared, &self.shared.templar)
    }

    /// Runs a task on the active hosts; returns how many hosts newly failed.
    async fn run_task(
        &mut self,
        play: &Play,
        task: &Arc<Task>,
        active: &mut Vec<String>,
        play_hosts: &[String],
        extra: Option<&crate::playbook::blocks::Extra>,
    ) -> usize {
        let info = TaskInfo {
            name: task.display_name(),
            origin: Some(task.origin.clone()),
            handler: extra.is_some_and(|x| x.handler),
        };
        let run_once = task.run_once || task.module() == "pause";
        let targets: Vec<String> = if run_once {
            active.iter().take(1).cloned().collect()
        } else {
            active.clone()
        };
        let hostvars = self.hostvars();
        let mut info = info;
        if let (Some(first), true) = (
            targets.first(),
            crate::jinja::value::is_template(&info.name),
        ) {
            // Ansible templates task names with the variables it has (not host facts)
            let scope = Scope {
                play_hosts,
                active,
                hostvars: &hostvars,
            };
            let job = self.job(play, task, first, &scope);
            if let Ok(v) = self.shared.templar.render_str(&info.name, &job.ctx.value()) {
                info.name = crate::jinja::value::scalar_string(&v);
            }
        }
        self.reporter.task_start(&info, targets.len());
        let mut forks = self.shared.opts.forks.max(1);
        let looped = extra.filter(|x| x.loop_items.is_some()).cloned();
        if let Some(t) = extra.and_then(|x| x.throttle.as_ref()) {
            let n = match t {
                Value::Number(n) => n.as_u64(),
                other => crate::jinja::value::scalar_string(other)
                    .trim()
                    .parse()
                    .ok(),
            };
            if let Some(n) = n.filter(|n| *n > 0) {
                forks = forks.min(n as usize);
            }
        }
        let sem = Arc::new(tokio::sync::Semaphore::new(forks));
        let mut set = tokio::task::JoinSet::new();
        let mut order = HashMap::new();
        for (i, host) in targets.iter().enumerate() {
            order.insert(host.clone(), i);
            let scope = Scope {
                play_hosts,
                active,
                hostvars: &hostvars,
            };
            let job = self.job(play, task, host, &scope);
            let shared = self.shared.clone();
            let sem = sem.clone();
            let looped = looped.clone();
            set.spawn(async move {
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
                self.settle_groups(&mut o);
                self.report(&info, task, &o);
                outcomes.push(o);
                next += 1;
            }
        }
        let mut rest: Vec<(usize, HostOutcome)> = pending.into_iter().collect();
        rest.sort_by_key(|(i, _)| *i);
        for (_, mut o) in rest {
            self.settle_groups(&mut o);
            self.report(&info, task, &o);
            outcomes.push(o);
        }
        outcomes.sort_by_key(|o| order.get(&o.host).copied().unwrap_or(usize::MAX));
        let mut newly_failed = 0;
        self.last = outcomes
            .iter()
            .map(|o| (o.host.clone(), o.status))
            .collect();
        self.last_results.clear();
        for o in &outcomes {
            if o.status == Status::Failed && !o.ignored {
                self.last_results.insert(o.host.clone(), o.result.clone());
            }
        }
        for o in &outcomes {
            let apply_to: Vec<String> = if run_once {
                active.clone()
            } else {
                vec![o.host.clone()]
            };
            if !matches!(
                o.status,
                Status::Failed | Status::Unreachable | Status::Skipped
            ) {
                if let Some(role) = &task.exposes {
                    if !self.public_roles.iter().any(|r| r.path == role.path) {
                        self.public_roles.push(role.clone());
                    }
                }
                // a loop's facts come item by item (set_fact in a loop), each to its own
                // delegated host under `delegate_facts`
                let items: Vec<(&Map<String, Value>, Option<&String>)> =
                    match o.result.get("results") {
                        Some(Value::Array(list)) if !o.item_delegates.is_empty() => list
                            .iter()
                            .zip(&o.item_delegates)
                            .filter_map(|(r, d)| Some((r.as_object()?, d.as_ref())))
                            .collect(),
                        _ => vec![(&o.result, o.delegated_to.as_ref())],
                    };
                for (item, delegate) in items {
                    let Some(Value::Object(f)) = item.get("ansible_facts") else {
                        continue;
                    };
                    let targets = match delegate {
                        Some(d) if task.delegate_facts => std::slice::from_ref(d),
                        _ => &apply_to[..],
                    };
                    for h in targets {
                        self.add_facts(h, f);
                    }
                }
            }
            for h in &apply_to {
                let facts = self.facts.entry(h.clone()).or_default();
                if let Some(name) = &task.register {
                    let mut reg = o.result.clone();
                    reg.retain(|k, _| !k.starts_with("_ansible"));
                    if o.status != Status::Skipped && !reg.contains_key("failed") {
                        reg.insert("failed".into(), Value::Bool(false));
                    }
                    facts.insert(name.clone(), Value::Object(reg));
                }
            }
            match o.status {
                Status::Failed if !o.ignored => {
                    newly_failed += 1;
                    self.any_failed = true;
                    self.dead.insert(o.host.clone());
                    active.retain(|h| h != &o.host);
                }
                Status::Unreachable if !task.ignore_unreachable => {
                    newly_failed += 1;
                    self.any_unreachable = true;
                    self.dead.insert(o.host.clone());
                    active.retain(|h| h != &o.host);
                }
                _ => {}
            }
        }
        newly_failed
    }

    /// Adds facts an action returned to `host`'s, also under `ansible_facts` without the
    /// `ansible_` prefix.
    fn add_facts(&mut self, host: &str, new: &Map<String, Value>) {
        let facts = self.facts.entry(host.to_string()).or_default();
        let mut af = match facts.get("ansible_facts") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        for (k, v) in new {
            facts.insert(k.clone(), v.clone());
            af.insert(
                k.strip_prefix("ansible_").unwrap_or(k).to_string(),
                v.clone(),
            );
        }
        facts.insert("ansible_facts".into(), Value::Object(af));
    }

    /// Applies the `group_by` results of a host (also per loop item) to the inventory before
    /// they are reported; like Ansible, `changed` then says whether the inventory changed.
    fn settle_groups(&mut self, o: &mut HostOutcome) {
        if matches!(
            o.status,
            Status::Failed | Status::Unreachable | Status::Skipped
        ) {
            return;
        }
        let mut any = false;
        if o.result.contains_key("add_group") {
            any |= self.add_group(&o.host, &mut o.result);
        }
        if let Some(Value::Array(items)) = o.result.get_mut("results") {
            let mut items = std::mem::take(items);
            for item in items.iter_mut().filter_map(Value::as_object_mut) {
                let bad = item
                    .get("failed")
                    .is_some_and(crate::jinja::value::python_truth)
                    || item
                        .get("skipped")
                        .is_some_and(crate::jinja::value::python_truth);
                if !bad && item.contains_key("add_group") {
                    any |= self.add_group(&o.host, item);
                }
            }
            o.result.insert("results".into(), Value::Array(items));
        }
        if any {
            o.result.insert("changed".into(), Value::Bool(true));
            if o.status == Status::Ok {
                o.status = Status::Changed;
            }
        }
    }

    /// Applies a `group_by` result (`add_group`, `parent_groups`) to the run's inventory, as
    /// Ansible's strategy does, so later plays and `groups` see the group; sets and returns
    /// the result's `changed` (whether the inventory changed).
    fn add_group(&mut self, host: &str, result: &mut Map<String, Value>) -> bool {
        let Some(Value::String(group)) = result.get("add_group").cloned() else {
            return false;
        };
        let parents: Vec<String> = match result.get("parent_groups") {
            Some(Value::Array(a)) => a.iter().map(crate::jinja::value::scalar_string).collect(),
            _ => vec!["all".to_string()],
        };
        let inv = Arc::make_mut(&mut self.inv);
        let changed = match inv.add_dynamic_group(host, &group, &parents) {
            Ok((created, changed)) => {
                for _ in created.iter().filter(|g| invalid_group_name(g)) {
                    self.reporter.warning(
                        "Invalid characters were found in group names but not replaced, use -vvvv to see details",
                    );
                }
                changed
            }
            Err(e) => {
                self.reporter.warning(&format!("{e:#}"));
                false
            }
        };
        result.insert("changed".into(), Value::Bool(changed));
        if changed {
            // the group's hosts (through its descendants) now see its group vars, and those of
            // any parent it was put under, from the next task on, as Ansible's do
            let mut inv_vars = self
                .shared
                .inv_vars
                .write()
                .unwrap_or_else(|e| e.into_inner());
            for h in self.inv.group_hosts(&group) {
                inv_vars.insert(h.clone(), self.inv.host_vars_for_tasks(&h));
            }
        }
        let mut groups = Map::new();
        for g in self.inv.groups() {
            groups.insert(g.name.clone(), Value::from(self.inv.group_hosts(&g.name)));
        }
        self.groups = JValue::from_serialize(&groups);
        changed
    }

    fn report(&mut self, info: &TaskInfo, task: &Task, o: &HostOutcome) {
        for (left, r) in &o.retries {
            self.reporter.retry(info, &o.host, *left, r);
        }
        let stats = self.stats.entry(o.host.clone()).or_default();
        let changed = o
            .result
            .get("changed")
            .map(crate::jinja::value::python_truth)
            .unwrap_or(false);
        match o.status {
            Status::Ok => stats.ok += 1,
            Status::Changed => {
                stats.ok += 1;
                stats.changed += 1;
            }
            Status::Skipped => stats.skipped += 1,
            Status::Unreachable => {
                // Ansible 2.19 counts an ignored unreachable host as ok and ignored
                if task.ignore_unreachable {
                    stats.ok += 1;
                    stats.ignored += 1;
                } else {
                    stats.unreachable += 1;
                }
            }
            Status::Failed => {
                if o.ignored {
                    stats.ok += 1;
                    stats.ignored += 1;
                    if changed {
                        stats.changed += 1;
                    }
                } else {
                    stats.failed += 1;
                }
            }
        }
        let result = if task.no_log {
            let mut m = Map::new();
            m.insert(
                "censored".into(),
                "the output has been hidden due to the fact that 'no_log: true' was specified for this result".into(),
            );
            m.insert("changed".into(), Value::Bool(changed));
            for keep in [
                "_ansible_verbose_always",
                "attempts",
                "retries",
                "skipped",
                "failed",
            ] {
                if let Some(v) = o.result.get(keep) {
                    m.insert(keep.into(), v.clone());
                }
            }
            m
        } else {
            let mut r = o.result.clone();
            // diffs are shown only in diff mode
            if !task.diff.unwrap_or(self.shared.opts.diff) {
                r.remove("diff");
            }
            r
        };
        let hr = HostResult {
            host: o.host.clone(),
            delegated_to: o.delegated_to.clone(),
            status: o.status,
            ignored: o.ignored,
            result,
            action: task.module().to_string(),
        };
        self.reporter.host_result(info, &hr);
    }
}

/// True when Ansible would warn about a group name (`^[\d\W]|[^\w]`: not a Python identifier).
fn invalid_group_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_bad = chars
        .next()
        .is_some_and(|c| c.is_ascii_digit() || !(c.is_alphanumeric() || c == '_'));
    first_bad || name.chars().any(|c| !(c.is_alphanumeric() || c == '_'))
}

/// Resolves a play's hosts: pattern ∩ limit (empty pattern result is not an error here).
pub fn play_hosts(
    inv: &Inventory,
    hosts: &str,
    limit: Option<&str>,
) -> anyhow::Result<Vec<String>> {
    let mut matched = pattern::resolve(inv, hosts)?;
    if matched.is_empty() && matches!(hosts.trim(), "localhost" | "127.0.0.1") {
        matched = vec!["localhost".to_string()];
    }
    if let Some(limit) = limit {
        let allowed = pattern::resolve(inv, limit)?;
        let allowed_local = allowed.is_empty() && matches!(limit.trim(), "localhost");
        matched.retain(|h| allowed.contains(h) || (allowed_local && h == "localhost"));
    }
    Ok(matched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_batches() {
        let hosts: Vec<String> = (1..=5).map(|i| format!("h{i}")).collect();
        assert_eq!(batches(&hosts, &[]).len(), 1);
        let b = batches(&hosts, &[Serial::Count(2)]);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        let b = batches(&hosts, &[Serial::Count(1), Serial::Percent(50.0)]);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), [1, 2, 2]);
    }
}
