//! What a task's outcomes change in the run's state: the last statuses and failed results
//! (for `notify`, includes and `rescue`), roles made public, facts (also `delegate_facts`),
//! registered variables, and hosts that failed or became unreachable.

use super::host_job::HostOutcome;
use super::Engine;
use crate::output::Status;
use crate::playbook::Task;
use serde_json::{Map, Value};

impl Engine {
    /// Records the outcomes of `task` (in host order) in the run state; a failed or
    /// unreachable host leaves `active`. `run_once_to`: under `run_once`, the hosts the one
    /// outcome's facts and register apply to. Returns how many hosts newly failed.
    pub(super) fn record(
        &mut self,
        task: &Task,
        outcomes: &[HostOutcome],
        active: &mut Vec<String>,
        run_once_to: Option<&[String]>,
    ) -> usize {
        let mut newly_failed = 0;
        self.last = outcomes
            .iter()
            .map(|o| (o.host.clone(), o.status))
            .collect();
        // ansible-core's `_had_task_run`: a role's task ran for a host (ok, changed or
        // failed; not skipped, not unreachable; under run_once only where it ran)
        if let Some(id) = task.role_instance {
            let ran = self.roles_ran.entry(id).or_default();
            for o in outcomes {
                if matches!(o.status, Status::Ok | Status::Changed | Status::Failed) {
                    ran.insert(o.host.clone());
                }
            }
        }
        self.last_results.clear();
        self.last_includes.clear();
        if matches!(task.module(), "include_tasks" | "include_role") {
            self.last_includes = outcomes
                .iter()
                .filter(|o| matches!(o.status, Status::Ok | Status::Changed))
                .map(|o| (o.host.clone(), o.result.clone()))
                .collect();
        }
        for o in outcomes {
            if o.status == Status::Failed && !o.ignored {
                self.last_results.insert(o.host.clone(), o.result.clone());
            }
        }
        for o in outcomes {
            let apply_to: Vec<String> = match run_once_to {
                Some(hosts) => hosts.to_vec(),
                None => vec![o.host.clone()],
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
                // `debug: var=ansible_facts` shows facts, it does not set them
                let debug = task.module() == "debug";
                for (item, delegate) in items {
                    let Some(Value::Object(f)) = item.get("ansible_facts").filter(|_| !debug)
                    else {
                        continue;
                    };
                    let targets = match delegate {
                        Some(d) if task.delegate_facts => std::slice::from_ref(d),
                        _ => &apply_to[..],
                    };
                    // set_fact's are variables of the run, and also facts when cacheable
                    let set_fact = is_set_fact(&task.action);
                    let cacheable = item
                        .get("_ansible_facts_cacheable")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    for h in targets {
                        if is_include_vars(&task.action) {
                            self.included_vars
                                .entry(h.clone())
                                .or_default()
                                .extend(f.iter().map(|(k, v)| (k.clone(), v.clone())));
                            continue;
                        }
                        if set_fact {
                            self.facts
                                .entry(h.clone())
                                .or_default()
                                .extend(f.iter().map(|(k, v)| (k.clone(), v.clone())));
                        }
                        if !set_fact || cacheable {
                            if let Some(w) = self.fact_cache.merge(h, f) {
                                self.reporter.warning(&w);
                            }
                        }
                    }
                }
            }
            for h in &apply_to {
                let facts = self.facts.entry(h.clone()).or_default();
                if let Some(name) = &task.register {
                    let mut reg = o.result.clone();
                    strip_internal_keys(&mut reg);
                    // shown from -vvv on, never registered (ansible-core's strategy drops it)
                    reg.remove("invocation");
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
                Status::Unreachable if !o.ignored => {
                    newly_failed += 1;
                    self.any_unreachable = true;
                    self.unreachable_at
                        .insert(o.host.clone(), task as *const Task as usize);
                    self.dead.insert(o.host.clone());
                    active.retain(|h| h != &o.host);
                }
                _ => {}
            }
        }
        newly_failed
    }
}

/// Removes every `_ansible_` key, at any depth (a loop's `results` too), as ansible-core's
/// `strip_internal_keys` does to a result before it is registered.
fn strip_internal_keys(map: &mut serde_json::Map<String, Value>) {
    map.retain(|k, _| !k.starts_with("_ansible_"));
    for v in map.values_mut() {
        strip_value(v);
    }
}

fn strip_value(v: &mut Value) {
    match v {
        Value::Object(m) => strip_internal_keys(m),
        Value::Array(a) => a.iter_mut().for_each(strip_value),
        _ => {}
    }
}

/// Whether `action` is `set_fact`, whose facts are variables of the run (and cached facts
/// only when `cacheable`).
fn is_set_fact(action: &str) -> bool {
    matches!(
        action,
        "set_fact" | "ansible.builtin.set_fact" | "ansible.legacy.set_fact"
    )
}

/// Whether `action` is `include_vars`, whose variables are not facts.
fn is_include_vars(action: &str) -> bool {
    matches!(
        action,
        "include_vars" | "ansible.builtin.include_vars" | "ansible.legacy.include_vars"
    )
}
