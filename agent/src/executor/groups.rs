//! `group_by` results applied to the run's inventory: new groups, their parents, the group
//! variables their hosts see from the next task on, and `groups` as templates read it.

use super::host_job::HostOutcome;
use super::Engine;
use crate::output::Status;
use minijinja::Value as JValue;
use serde_json::{Map, Value};
use std::sync::Arc;

impl Engine {
    /// Applies the `group_by` and `add_host` results of a host (also per loop item) to the
    /// inventory before they are reported; like Ansible, `changed` then says whether the
    /// inventory changed, unless the task has `changed_when`, which Ansible evaluates again
    /// after the change (the value evaluated before is kept: the same unless the condition
    /// reads the result's own `changed`).
    pub(super) fn settle_groups(&mut self, o: &mut HostOutcome, changed_when: bool) {
        if matches!(
            o.status,
            Status::Failed | Status::Unreachable | Status::Skipped
        ) {
            return;
        }
        let mut any = false;
        let keep = |r: &Map<String, Value>| r.get("changed").cloned();
        let restore = |r: &mut Map<String, Value>, kept: Option<Value>| {
            if let (true, Some(v)) = (changed_when, kept) {
                r.insert("changed".into(), v);
            }
        };
        let kept = keep(&o.result);
        if o.result.contains_key("add_group") {
            any |= self.add_group(&o.host, &mut o.result);
        }
        if o.result.contains_key("add_host") {
            any |= self.add_dynamic_host(&mut o.result);
        }
        restore(&mut o.result, kept);
        if let Some(Value::Array(items)) = o.result.get_mut("results") {
            let mut items = std::mem::take(items);
            for item in items.iter_mut().filter_map(Value::as_object_mut) {
                let bad = item
                    .get("failed")
                    .is_some_and(crate::jinja::value::python_truth)
                    || item
                        .get("skipped")
                        .is_some_and(crate::jinja::value::python_truth);
                let kept = keep(item);
                if !bad && item.contains_key("add_group") {
                    any |= self.add_group(&o.host, item);
                }
                if !bad && item.contains_key("add_host") {
                    any |= self.add_dynamic_host(item);
                }
                restore(item, kept);
            }
            o.result.insert("results".into(), Value::Array(items));
        }
        if any && !changed_when {
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
        self.dynamic.push(Dynamic::Group {
            host: host.to_string(),
            group: group.clone(),
            parents: parents.clone(),
        });
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
            let hosts = self.inv.group_hosts(&group);
            self.refresh_host_vars(&hosts);
        }
        self.refresh_groups();
        changed
    }
}

impl Engine {
    /// Applies an `add_host` result (`host_name`, `groups`, `host_vars`) to the run's
    /// inventory, as Ansible's strategy does: later tasks and plays see the host, its groups
    /// and its variables; sets and returns the result's `changed` (whether the inventory
    /// changed).
    fn add_dynamic_host(&mut self, result: &mut Map<String, Value>) -> bool {
        let Some(Value::Object(spec)) = result.get("add_host").cloned() else {
            return false;
        };
        let Some(name) = spec.get("host_name").and_then(Value::as_str) else {
            return false;
        };
        let groups: Vec<String> = match spec.get("groups") {
            Some(Value::Array(a)) => a.iter().map(crate::jinja::value::scalar_string).collect(),
            _ => Vec::new(),
        };
        let vars = match spec.get("host_vars") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        self.dynamic.push(Dynamic::Host {
            name: name.to_string(),
            groups: groups.clone(),
            vars: vars.clone(),
        });
        let changed = Arc::make_mut(&mut self.inv).add_dynamic_host(name, &groups, &vars);
        result.insert("changed".into(), Value::Bool(changed));
        if changed {
            let mut hosts: Vec<String> = groups
                .iter()
                .flat_map(|g| self.inv.group_hosts(g))
                .collect();
            hosts.push(name.to_string());
            self.refresh_host_vars(&hosts);
            self.refresh_groups();
        }
        changed
    }

    /// `meta: refresh_inventory`: the inventory sources read again (and the playbook's
    /// `group_vars`/`host_vars`), then what `add_host` and `group_by` did replayed on it, as
    /// ansible-core keeps hosts and groups added at run time (a `group_by` of a host the
    /// sources no longer have is not). Later tasks and plays see the new inventory.
    pub(super) fn refresh_inventory(&mut self) -> anyhow::Result<()> {
        let opts = &self.shared.opts;
        let mut inv = crate::inventory::Inventory::load(&opts.inventory_sources)?;
        inv.add_playbook_dir(&opts.playbook_dir)?;
        inv.ensure_implicit_localhost_with(
            crate::ansible_modules::controller_python().ok().as_deref(),
        );
        let added: Vec<&str> = self
            .dynamic
            .iter()
            .filter_map(|d| match d {
                Dynamic::Host { name, .. } => Some(name.as_str()),
                Dynamic::Group { .. } => None,
            })
            .collect();
        for d in &self.dynamic {
            match d {
                Dynamic::Host { name, groups, vars } => {
                    inv.add_dynamic_host(name, groups, vars);
                }
                Dynamic::Group {
                    host,
                    group,
                    parents,
                } if inv.host(host).is_some() || added.contains(&host.as_str()) => {
                    let _ = inv.add_dynamic_group(host, group, parents);
                }
                Dynamic::Group { .. } => {}
            }
        }
        self.inv = Arc::new(inv);
        let mut inv_vars = self
            .shared
            .inv_vars
            .write()
            .unwrap_or_else(|e| e.into_inner());
        inv_vars.clear();
        for h in self.inv.hosts() {
            inv_vars.insert(h.name.clone(), self.inv.host_vars_for_tasks(&h.name));
        }
        drop(inv_vars);
        self.refresh_groups();
        Ok(())
    }

    /// The inventory variables tasks see on `hosts`, read again after the inventory changed.
    fn refresh_host_vars(&self, hosts: &[String]) {
        let mut inv_vars = self
            .shared
            .inv_vars
            .write()
            .unwrap_or_else(|e| e.into_inner());
        for h in hosts {
            inv_vars.insert(h.clone(), self.inv.host_vars_for_tasks(h));
        }
    }

    /// `groups` as templates read it, from the run's inventory.
    fn refresh_groups(&mut self) {
        let mut groups = Map::new();
        for g in self.inv.groups() {
            groups.insert(g.name.clone(), Value::from(self.inv.group_hosts(&g.name)));
        }
        self.groups = JValue::from_serialize(&groups);
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

/// A change `add_host` or `group_by` made to the run's inventory.
#[derive(Debug, Clone)]
pub(super) enum Dynamic {
    /// `add_host`: the host, its groups and variables.
    Host {
        name: String,
        groups: Vec<String>,
        vars: Map<String, Value>,
    },
    /// `group_by`: the host put in the group under its parents.
    Group {
        host: String,
        group: String,
        parents: Vec<String>,
    },
}
