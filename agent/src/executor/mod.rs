//! The executor: plays, `serial` batches, forks, per-task state (registered results, facts,
//! failed hosts) and exit codes. Output only observes what the executor reports.
//!
//! This file holds the [`Engine`] and its run state; each part of running lives in its own
//! file: `play` (one play), `flow` (a play's task tree), `task` (one task on the hosts),
//! `host_task` (one task on one host, in phases), `record`/`groups`/`report` (what outcomes
//! change and show).

mod args;
mod attempt;
mod batches;
mod conn;
mod delegation;
mod environment;
mod fact_cache;
mod flow;
mod force_handlers;
mod free;
mod groups;
mod host_job;
mod host_task;
mod hosts;
mod hostvars;
mod job_vars;
mod limits;
mod loops;
mod options;
mod outcome;
mod play;
mod play_pattern;
mod privilege;
mod record;
mod report;
mod retry;
mod shared;
mod start_at;
mod step;
mod task;
mod vars;
mod when;

pub use batches::batches;
pub use hosts::{play_hosts, unmatched_terms};
pub use options::RunOptions;
pub use shared::Shared;
pub use vars::OMIT;
pub use when::condition_error;

use crate::inventory::{Inventory, Vars};
use crate::jinja::Templar;
use crate::modules::ModuleFinder;
use crate::output::{HostStats, Reporter, Status};
use crate::playbook::role::Role;
use crate::playbook::{Play, Playbook};
use crate::transport::ConnectionPool;
use minijinja::Value as JValue;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// Runs playbooks and keeps run state.
pub struct Engine {
    inv: Arc<Inventory>,
    shared: Arc<Shared>,
    reporter: Box<dyn Reporter>,
    /// `set_fact` results and registered variables per host: high precedence, for the run
    /// (ansible-core's non-persistent facts).
    facts: HashMap<String, Vars>,
    /// Facts modules returned (gathered ones, `set_fact` with `cacheable`): low precedence,
    /// kept by the cache plugin.
    fact_cache: fact_cache::FactCache,
    /// Variables `include_vars` set per host: below facts and registered results in
    /// precedence, above task vars, as in ansible-core (its `vars_cache`).
    included_vars: HashMap<String, Vars>,
    stats: BTreeMap<String, HostStats>,
    dead: HashSet<String>,
    any_failed: bool,
    any_unreachable: bool,
    groups: JValue,
    /// Status per host of the last task run (for notify, include and rescue).
    last: Vec<(String, Status)>,
    /// Result per host of the last task run, for hosts that failed it.
    last_results: HashMap<String, Map<String, Value>>,
    /// Result per host of the last `include_tasks` run (the files each host includes).
    last_includes: Vec<(String, Map<String, Value>)>,
    /// Hosts ended by `meta: end_host`/`end_play` in the current play.
    ended: HashSet<String>,
    /// Hosts whose failure `meta: clear_host_errors` cleared (see `run_block`'s `always`).
    cleared: HashSet<String>,
    /// Per host unreachable in the current play, the task it became so on, by address (an
    /// identity only, compared with the play's tasks, which live as long as the play; see
    /// `revived`).
    unreachable_at: HashMap<String, usize>,
    /// Hosts `meta: clear_host_errors` brought back after they became unreachable, with that
    /// task: as in ansible-core's linear strategy, once the play's hosts are through its
    /// tasks, they run the rest of them from the task after it (see `play.rs`).
    revived: Vec<(String, usize)>,
    /// Per role reference run once per host (`Task::role_instance`), the hosts that
    /// completed it (ids are unique in the run, so no play sees another's).
    roles_done: HashMap<usize, HashSet<String>>,
    /// Per run of a role (`Task::role_run`), the hosts `meta: end_role` ended it for: they
    /// skip the rest of its tasks.
    roles_ended: HashMap<usize, HashSet<String>>,
    /// Per such role reference, the hosts a task of it ran for (a host completes the
    /// reference only then).
    roles_ran: HashMap<usize, HashSet<String>>,
    /// The current play's templated `vars_files`, read per host when it started.
    vars_files: HashMap<String, Map<String, Value>>,
    /// Roles run with `include_role` `public: true` in the current play (for any host):
    /// their defaults and vars are every host's from then on, as in Ansible.
    public_roles: Vec<Arc<Role>>,
    /// Background opening of the next `serial` batch's connections (awaited before the
    /// pool closes).
    opening_next: Vec<tokio::task::JoinHandle<()>>,
    /// `--start-at-task` until a task matched (see `start_at`).
    start_at: Option<String>,
    /// `--step` in the current play (see `step`).
    step: step::StepMode,
    /// The run ended before its end (stdin closed under `--step`): the exit code, no recap.
    fatal: Option<i32>,
    /// In a lane of the `free` strategy: what the lanes share (see `free.rs`).
    free: Option<Arc<free::FreeShared>>,
    /// What `add_host` and `group_by` changed in the inventory, in order: kept over
    /// `meta: refresh_inventory` (see `groups.rs`).
    dynamic: Vec<groups::Dynamic>,
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
        inv.ensure_implicit_localhost_with(
            crate::ansible_modules::controller_python().ok().as_deref(),
        );
        let mut reporter = reporter;
        let mut fact_cache =
            fact_cache::FactCache::new(&opts.fact_caching, opts.inject_facts_as_vars)?;
        for h in inv.hosts() {
            let warning = if opts.flush_cache {
                fact_cache.flush(&h.name)
            } else {
                fact_cache.load(&h.name)
            };
            if let Some(w) = warning {
                reporter.warning(&w);
            }
        }
        let opts_start_at = opts.start_at_task.clone();
        let opts_forks = opts.forks.max(1);
        let allow_broken = opts.allow_broken_conditionals;
        let settings = opts.settings.clone();
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
        let (templar, warning) = Templar::new()
            .allow_broken_conditionals(allow_broken)
            .with_settings(&settings)
            .with_python_plugins(&plugin_dirs(&opts.playbook_dir));
        if let Some(w) = warning {
            reporter.warning(&w);
        }
        Ok(Engine {
            inv: Arc::new(inv),
            shared: Arc::new(Shared {
                opts,
                templar,
                pool,
                modules,
                staging: tokio::sync::Semaphore::new(2 * opts_forks),
                inv_vars: std::sync::RwLock::new(inv_vars),
            }),
            reporter,
            facts: HashMap::new(),
            fact_cache,
            included_vars: HashMap::new(),
            stats: BTreeMap::new(),
            dead: HashSet::new(),
            any_failed: false,
            any_unreachable: false,
            groups: JValue::from_serialize(&groups),
            last: Vec::new(),
            last_results: HashMap::new(),
            last_includes: Vec::new(),
            ended: HashSet::new(),
            cleared: HashSet::new(),
            unreachable_at: HashMap::new(),
            revived: Vec::new(),
            roles_done: HashMap::new(),
            roles_ended: HashMap::new(),
            roles_ran: HashMap::new(),
            vars_files: HashMap::new(),
            public_roles: Vec::new(),
            opening_next: Vec::new(),
            start_at: opts_start_at,
            step: Default::default(),
            fatal: None,
            free: None,
            dynamic: Vec::new(),
        })
    }

    /// The `--start-at-task` name when no task of the run matched it (yet).
    pub fn start_at_unmatched(&self) -> Option<&str> {
        self.start_at.as_deref()
    }

    /// The state shared with host jobs (for shutting connections down on interrupt).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Hosts a play runs on: its pattern, intersected with `--limit`, in inventory order.
    pub fn play_hosts(&self, play: &Play) -> anyhow::Result<Vec<String>> {
        play_hosts(&self.inv, &play.hosts, self.shared.opts.limit.as_deref())
    }

    /// Announces a playbook (`path` as given) before [`Engine::run`] runs it.
    pub fn playbook_start(&mut self, path: &str, plays: usize) {
        self.reporter.playbook_start(path, plays);
    }

    /// Runs every play, prints the recap, closes connections; returns the exit code.
    pub async fn run(&mut self, playbook: &Playbook) -> i32 {
        let mut pattern_error = false;
        for play in &playbook.plays {
            let play = match play_pattern::templated(
                play,
                &self.shared.opts.extra_vars,
                &self.groups,
                &self.shared.templar,
            ) {
                Ok(p) => p,
                Err(e) => {
                    // Ansible stops the run here, before the play starts
                    eprintln!("[ERROR]: {e}");
                    pattern_error = true;
                    break;
                }
            };
            if let Err(e) = self.check_strategy(&play) {
                eprintln!("[ERROR]: {e}");
                pattern_error = true;
                break;
            }
            if !self.run_play(&play).await {
                break;
            }
        }
        if self.fatal.is_none() {
            self.reporter.recap(&self.stats);
        }
        let uploads = self.shared.pool.upload_count().await;
        tracing::info!(target: "etcd_agent::transport", uploads, "module uploads this run");
        for opening in std::mem::take(&mut self.opening_next) {
            let _ = opening.await;
        }
        let closing = crate::timing::span(crate::timing::Phase::Close);
        self.shared.pool.close_all().await;
        drop(closing);
        if let Some(code) = self.fatal {
            code
        } else if self.any_unreachable || pattern_error {
            4
        } else if self.any_failed {
            2
        } else {
            0
        }
    }
}

/// The directories Python filter and test plugins are read from: the configured plugin paths
/// (`ANSIBLE_FILTER_PLUGINS`, `ANSIBLE_TEST_PLUGINS`), then `filter_plugins/` and
/// `test_plugins/` beside the playbook and in every role the run can find (`roles/` beside the
/// playbook, the roles path, the playbook's directory). A role's plugins are known before it runs: a superset of
/// ansible-core's, which loads them with the role.
fn plugin_dirs(playbook_dir: &std::path::Path) -> crate::jinja::python_filters::PluginDirs {
    let mut dirs = crate::jinja::python_filters::PluginDirs::default();
    for (var, list) in [
        ("ANSIBLE_FILTER_PLUGINS", &mut dirs.filters),
        ("ANSIBLE_TEST_PLUGINS", &mut dirs.tests),
    ] {
        if let Some(paths) = std::env::var_os(var) {
            list.extend(std::env::split_paths(&paths).filter(|p| p.is_dir()));
        }
    }
    dirs.add_beside(playbook_dir);
    // roles are found in `roles/`, in the roles path, and beside the playbook itself
    let mut role_parents = vec![playbook_dir.join("roles"), playbook_dir.to_path_buf()];
    role_parents.extend(crate::config::roles_path());
    for parent in role_parents {
        let Ok(entries) = std::fs::read_dir(&parent) else {
            continue;
        };
        let mut roles: Vec<std::path::PathBuf> = entries.flatten().map(|e| e.path()).collect();
        roles.sort();
        for role in roles.iter().filter(|r| r.is_dir()) {
            dirs.add_beside(role);
        }
    }
    dirs
}
