//! The command line: `playbook`, `inventory` and `adhoc` subcommands, mirroring Ansible's flags.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// The version line `--version` prints (every subcommand takes it too, as `ansible-playbook`,
/// `ansible` and `ansible-inventory` do).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (Ansible-compatible runner, ansible-core 2.19 playbooks)"
);

/// Runs Ansible playbooks over multiplexed OpenSSH.
#[derive(Debug, Parser)]
#[command(name = "etcd-agent", version = VERSION, propagate_version = true, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a playbook (like `ansible-playbook`).
    #[command(display_name = "etcd-agent playbook")]
    Playbook(PlaybookArgs),
    /// Show the inventory (like `ansible-inventory`).
    #[command(display_name = "etcd-agent inventory")]
    Inventory(InventoryArgs),
    /// Run one module on hosts matching a pattern (like `ansible`).
    #[command(display_name = "etcd-agent adhoc")]
    Adhoc(AdhocArgs),
}

/// Options shared by commands that run tasks.
#[derive(Debug, Args, Clone, Default)]
pub struct RunOpts {
    /// Inventory source (file, directory or `host1,host2,`); may repeat.
    #[arg(short = 'i', long = "inventory")]
    pub inventory: Vec<String>,
    /// Further limit selected hosts with a pattern (or `@file`).
    #[arg(short = 'l', long = "limit")]
    pub limit: Option<String>,
    /// Extra variables `k=v ...`, JSON/YAML text, or `@file`; may repeat.
    #[arg(short = 'e', long = "extra-vars")]
    pub extra_vars: Vec<String>,
    /// Check mode: change nothing, report what would change.
    #[arg(short = 'C', long = "check")]
    pub check: bool,
    /// Show differences for modules that support it.
    #[arg(short = 'D', long = "diff")]
    pub diff: bool,
    /// Parallel hosts (default 5 or ansible.cfg `forks`).
    #[arg(short = 'f', long = "forks")]
    pub forks: Option<usize>,
    /// Remote user.
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// SSH private key file.
    #[arg(long = "private-key", alias = "key-file")]
    pub private_key: Option<PathBuf>,
    /// Connection type for every host whose variables do not set `ansible_connection`
    /// (`ssh`, `smart`, `local`).
    #[arg(short = 'c', long = "connection")]
    pub connection: Option<String>,
    /// Run operations with become.
    #[arg(short = 'b', long = "become")]
    pub r#become: bool,
    /// Privilege escalation method (`sudo`, `su`).
    #[arg(long = "become-method")]
    pub become_method: Option<String>,
    /// Run operations as this user (default `root`).
    #[arg(long = "become-user")]
    pub become_user: Option<String>,
    /// Ask for the privilege escalation password.
    #[arg(short = 'K', long = "ask-become-pass")]
    pub ask_become_pass: bool,
    /// A file holding the privilege escalation password (run when executable: its stdout is
    /// the password; `-` reads it from stdin).
    #[arg(long = "become-password-file", alias = "become-pass-file")]
    pub become_password_file: Option<PathBuf>,
    /// Arguments for every ssh invocation (`sftp`, `scp` and `ssh` in Ansible), unless a
    /// host's `ansible_ssh_common_args` sets them.
    #[arg(long = "ssh-common-args", allow_hyphen_values = true)]
    pub ssh_common_args: Option<String>,
    /// Extra arguments for ssh, unless a host's `ansible_ssh_extra_args` sets them.
    #[arg(long = "ssh-extra-args", allow_hyphen_values = true)]
    pub ssh_extra_args: Option<String>,
    /// More output (-v results, -vvv logs).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Extra module directories (`:`-separated); may repeat.
    #[arg(short = 'M', long = "module-path")]
    pub module_path: Vec<String>,
    /// SSH connect timeout in seconds.
    #[arg(short = 'T', long = "timeout")]
    pub timeout: Option<u64>,
    /// A vault identity `[label@]source` (a password file, a script or `prompt`); may repeat.
    #[arg(long = "vault-id")]
    pub vault_id: Vec<String>,
    /// A vault password file (run when executable: its stdout is the password); may repeat.
    #[arg(long = "vault-password-file", alias = "vault-pass-file")]
    pub vault_password_file: Vec<String>,
    /// Ask for the vault password.
    #[arg(short = 'J', long = "ask-vault-password", alias = "ask-vault-pass")]
    pub ask_vault_pass: bool,
}

/// `etcd-agent playbook`.
#[derive(Debug, Args)]
pub struct PlaybookArgs {
    /// Shared run options.
    #[command(flatten)]
    pub run: RunOpts,
    /// Print one JSON document (ansible.posix.json shape) instead of text.
    #[arg(long = "json")]
    pub json: bool,
    /// List the hosts each play would run on, and stop.
    #[arg(long = "list-hosts")]
    pub list_hosts: bool,
    /// List the tasks of each play, and stop.
    #[arg(long = "list-tasks")]
    pub list_tasks: bool,
    /// Parse the playbook and stop.
    #[arg(long = "syntax-check")]
    pub syntax_check: bool,
    /// Only run tasks tagged with these tags (comma-separated, repeatable).
    #[arg(short = 't', long = "tags")]
    pub tags: Vec<String>,
    /// Skip tasks tagged with these tags (comma-separated, repeatable).
    #[arg(long = "skip-tags")]
    pub skip_tags: Vec<String>,
    /// List the tags of each play and its tasks, and stop.
    #[arg(long = "list-tags")]
    pub list_tags: bool,
    /// Start the playbook at the first task whose name matches (a glob).
    #[arg(long = "start-at-task")]
    pub start_at_task: Option<String>,
    /// Ask before each task (`(N)o/(y)es/(c)ontinue`, read from stdin).
    #[arg(long = "step")]
    pub step: bool,
    /// Run handlers even on hosts that failed after they were notified.
    #[arg(long = "force-handlers")]
    pub force_handlers: bool,
    /// Clear the fact cache of every host in the inventory.
    #[arg(long = "flush-cache")]
    pub flush_cache: bool,
    /// The playbook file(s).
    #[arg(required = true)]
    pub playbooks: Vec<PathBuf>,
}

/// `etcd-agent inventory`.
#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// Inventory source; may repeat.
    #[arg(short = 'i', long = "inventory")]
    pub inventory: Vec<String>,
    /// Print the whole inventory as JSON.
    #[arg(long = "list", group = "action")]
    pub list: bool,
    /// Print the group tree (optionally from GROUP).
    #[arg(long = "graph", group = "action", num_args = 0..=1, default_missing_value = "all")]
    pub graph: Option<String>,
    /// Print one host's variables as JSON.
    #[arg(long = "host", group = "action")]
    pub host: Option<String>,
    /// Limit the hosts listed.
    #[arg(short = 'l', long = "limit")]
    pub limit: Option<String>,
    /// YAML instead of JSON (`--list`, `--host`).
    #[arg(short = 'y', long = "yaml")]
    pub yaml: bool,
    /// Show variables in the `--graph` output.
    #[arg(long = "vars")]
    pub vars: bool,
    /// `--list`: variables where they are set (group variables in their groups) rather than
    /// flattened per host.
    #[arg(long = "export")]
    pub export: bool,
    /// Write the `--list`/`--host` document to this file instead of stdout.
    #[arg(long = "output")]
    pub output: Option<PathBuf>,
}

/// `etcd-agent adhoc`.
#[derive(Debug, Args)]
pub struct AdhocArgs {
    /// Host pattern.
    pub pattern: String,
    /// Shared run options.
    #[command(flatten)]
    pub run: RunOpts,
    /// Module name (default `command`).
    #[arg(short = 'm', long = "module-name", default_value = "command")]
    pub module: String,
    /// Module arguments (`k=v ...` or free form).
    #[arg(short = 'a', long = "args", default_value = "")]
    pub args: String,
    /// Print one JSON document instead of text.
    #[arg(long = "json")]
    pub json: bool,
    /// List the hosts the pattern matches, and stop.
    #[arg(long = "list-hosts")]
    pub list_hosts: bool,
}
