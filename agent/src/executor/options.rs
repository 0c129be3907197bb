//! Run-wide options: the command line merged with ansible.cfg.

use crate::inventory::Vars;
use crate::secret::Secret;
use crate::transport::BecomeMethod;
use std::path::PathBuf;

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
    /// `--become-user`: the user to become unless the play, task or variables say (`root`).
    pub become_user: Option<String>,
    /// `--tags`, split at commas (`ansible_run_tags`; `["all"]` when none were given).
    pub run_tags: Vec<String>,
    /// `--skip-tags`, split at commas (`ansible_skip_tags`).
    pub skip_tags: Vec<String>,
    /// `become_allow_same_user`: escalate even to the user the connection already is.
    pub become_allow_same_user: bool,
    /// `--become-method`: unless the play, task or variables say.
    pub become_method: BecomeMethod,
    /// `--become-password-file` / `-K`: unless `ansible_become_password` says.
    pub become_password: Option<Secret>,
    /// `-c`: the connection of hosts whose variables and play do not set one (`ssh`).
    pub connection: Option<String>,
    /// `--ssh-common-args`, unless a host's `ansible_ssh_common_args` says.
    pub ssh_common_args: Option<String>,
    /// `--ssh-extra-args`, unless a host's `ansible_ssh_extra_args` says.
    pub ssh_extra_args: Option<String>,
    /// `--force-handlers` (or `force_handlers` in ansible.cfg): notified handlers run on
    /// hosts that failed later in the play, unless the play's keyword says otherwise.
    pub force_handlers: bool,
    /// `--start-at-task`: tasks before the first one whose name matches are not run.
    pub start_at_task: Option<String>,
    /// `--step`: each task is confirmed on the terminal first.
    pub step: bool,
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
    /// The fact cache plugin and its settings.
    pub fact_caching: crate::config::FactCaching,
    /// `inject_facts_as_vars`: cached facts are variables too, not only `ansible_facts`.
    pub inject_facts_as_vars: bool,
    /// `--flush-cache`: the inventory's hosts start without cached facts.
    pub flush_cache: bool,
    /// `allow_broken_conditionals`: conditions may give values that are not booleans.
    pub allow_broken_conditionals: bool,
    /// The settings `lookup('config', ...)` reads, by Ansible's names.
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// The inventory sources, read again by `meta: refresh_inventory`.
    pub inventory_sources: Vec<String>,
    /// `async_dir`: where `poll: 0` jobs keep their files on targets.
    pub async_dir: Option<String>,
}
