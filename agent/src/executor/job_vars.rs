//! What a host job sees: the task's variables for one host by Ansible's precedence (role
//! defaults, inventory, play, role vars, task, facts, `-e`), its magic variables, and the
//! run's `hostvars`.

use super::host_job::HostJob;
use super::vars::{self, OMIT};
use super::{hostvars, Engine};
use crate::inventory::Vars;
use crate::playbook::role::Role;
use crate::playbook::{Play, Task};
use minijinja::Value as JValue;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::sync::Arc;

/// Which hosts a task sees (for magic variables).
pub(super) struct Scope<'a> {
    /// Every host of the play (`ansible_play_hosts_all`).
    pub play_hosts: &'a [String],
    /// The hosts still active (`ansible_play_hosts`, `ansible_play_batch`).
    pub active: &'a [String],
    /// The run's `hostvars`.
    pub hostvars: &'a JValue,
}

impl Engine {
    /// Builds the per-host job (variables and context).
    pub(super) fn job(
        &self,
        play: &Play,
        task: &Arc<Task>,
        host: &str,
        scope: &Scope<'_>,
    ) -> HostJob {
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
        let cached_facts = self.fact_cache.layer(host).unwrap_or(&empty);
        let included = self.included_vars.get(host).unwrap_or(&empty);
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
            ("ansible_run_tags", JValue::from_serialize(&opts.run_tags)),
            ("ansible_skip_tags", JValue::from_serialize(&opts.skip_tags)),
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
        if !task.parent_roles.is_empty() {
            let names: Vec<&str> = task.parent_roles.iter().map(|r| r.name.as_str()).collect();
            let paths: Vec<String> = task
                .parent_roles
                .iter()
                .map(|r| r.path.display().to_string())
                .collect();
            magic.push(("ansible_parent_role_names", JValue::from_serialize(names)));
            magic.push(("ansible_parent_role_paths", JValue::from_serialize(paths)));
        }
        // where lookups of this task look for files (Task.get_search_path): its role's
        // directory, then the directory of the file the task is written in; then, as the
        // task executor adds it, the playbook's directory
        let mut search_path: Vec<String> = task
            .role
            .iter()
            .map(|r| r.path.display().to_string())
            .collect();
        if let Some(dir) = task.origin.file.parent() {
            let dir = dir.display().to_string();
            if !search_path.contains(&dir) {
                search_path.push(dir);
            }
        }
        let base = opts.playbook_dir.display().to_string();
        if !search_path.contains(&base) {
            search_path.push(base);
        }
        magic.push(("ansible_search_path", JValue::from_serialize(search_path)));
        let (play_role_names, dependent_role_names, all_role_names) = role_names(play);
        magic.push(("role_names", JValue::from_serialize(&play_role_names)));
        magic.push((
            "ansible_play_role_names",
            JValue::from_serialize(play_role_names),
        ));
        magic.push((
            "ansible_dependent_role_names",
            JValue::from_serialize(dependent_role_names),
        ));
        magic.push(("ansible_role_names", JValue::from_serialize(all_role_names)));
        // role defaults and vars: every role's of the play (and those made public so far),
        // then those of the roles that included the task's role, then its own on top
        // the roles that included this task's role (outermost first) come before it: their
        // defaults and vars are in its scope too (ansible-core's dependency chain)
        let roles: Vec<&Arc<Role>> = play
            .roles
            .iter()
            .chain(&self.public_roles)
            .chain(task.parent_roles.iter().rev())
            .chain(task.role.iter())
            .collect();
        // the connection's address: the host's name unless a variable sets `ansible_host`
        // (Ansible defines it for the task's host, not in `hostvars`); an inventory
        // `ansible_ssh_host` stays the address
        let mut connection = Vars::new();
        if !inventory.contains_key("ansible_ssh_host") {
            // the implicit localhost's address is 127.0.0.1, as in Ansible
            let address = if host == "localhost" {
                "127.0.0.1"
            } else {
                host
            };
            connection.insert("ansible_host".into(), Value::String(address.to_string()));
        }
        let role_defaults: Vec<&Vars> = std::iter::once(&connection)
            .chain(roles.iter().map(|r| &r.defaults))
            .collect();
        let role_vars: Vec<&Vars> = roles.iter().map(|r| &r.vars).collect();
        // templated `vars_files`, read for this host when the play started
        let with_files;
        let play_vars = match self.vars_files.get(host) {
            Some(files) if !files.is_empty() => {
                let mut v = play.vars.clone();
                v.extend(files.iter().map(|(k, v)| (k.clone(), v.clone())));
                with_files = v;
                &with_files
            }
            _ => &play.vars,
        };
        let layers = vars::Layers {
            role_defaults: &role_defaults,
            inventory,
            cached_facts,
            play: play_vars,
            role_vars: &role_vars,
            task: &task.vars,
            included,
            facts,
            params: &task.params,
            extra: &opts.extra_vars,
        };
        let (merged, ctx) = vars::build(&layers, &magic, &self.shared.templar);
        HostJob {
            host: host.to_string(),
            task: task.clone(),
            vars: merged,
            ctx,
            play_become: play.r#become,
            play_become_method: play.become_method.clone(),
            play_user: play.remote_user.clone(),
            connection_keyword,
            play_env: play.environment.clone(),
        }
    }

    /// `hostvars`: every host's inventory variables and facts, templated lazily in that
    /// host's context (see [`hostvars::HostVars`]).
    pub(super) fn hostvars(&self) -> JValue {
        let inv_vars = self
            .shared
            .inv_vars
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let hosts: Vec<(String, Vars, HashSet<String>)> = inv_vars
            .iter()
            .map(|(h, v)| {
                let mut m = v.clone();
                let mut data = HashSet::new();
                if let Some(cached) = self.fact_cache.layer(h) {
                    crate::inventory::merge(&mut m, cached);
                    data.extend(cached.keys().cloned());
                }
                if let Some(included) = self.included_vars.get(h) {
                    crate::inventory::merge(&mut m, included);
                }
                if let Some(f) = self.facts.get(h) {
                    crate::inventory::merge(&mut m, f);
                    data.extend(f.keys().cloned());
                }
                m.entry("ansible_facts")
                    .or_insert_with(|| Value::Object(Map::new()));
                m.insert("inventory_hostname".into(), Value::String(h.clone()));
                m.insert("group_names".into(), Value::from(self.inv.group_names(h)));
                (h.clone(), m, data)
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
}

/// The play's role names as Ansible's magic variables list them: the roles the play names
/// (`ansible_play_role_names`, `role_names`), those only pulled in as another role's
/// dependency (`ansible_dependent_role_names`), and both (`ansible_role_names`).
fn role_names(play: &Play) -> (Vec<String>, Vec<String>, Vec<String>) {
    let dependency_name = |d: &Value| -> Option<String> {
        match d {
            Value::String(s) => Some(s.clone()),
            Value::Object(m) => m
                .get("role")
                .or_else(|| m.get("name"))
                .map(crate::jinja::value::scalar_string),
            _ => None,
        }
    };
    let dependencies: Vec<String> = play
        .roles
        .iter()
        .flat_map(|r| r.dependencies.iter().filter_map(dependency_name))
        .collect();
    let mut own = Vec::new();
    let mut dependent = Vec::new();
    let mut all = Vec::new();
    for r in &play.roles {
        let list = if dependencies.contains(&r.name) {
            &mut dependent
        } else {
            &mut own
        };
        if !list.contains(&r.name) {
            list.push(r.name.clone());
        }
        if !all.contains(&r.name) {
            all.push(r.name.clone());
        }
    }
    (own, dependent, all)
}
