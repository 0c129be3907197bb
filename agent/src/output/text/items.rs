//! Text output of loops (one line per item, as Ansible's default callback prints them) and of
//! `include_tasks` (`included: FILE for HOSTS`, one line per file).

use super::TextReporter;
use crate::output::{HostResult, Status, TaskInfo};
use serde_json::Value;

/// An `include_tasks` line waiting for the task's other hosts.
#[derive(Default)]
pub(super) struct PendingInclude {
    file: String,
    /// ` => (item=...)` for a looped include.
    item: String,
    hosts: Vec<String>,
}

fn label_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => crate::jinja::value::python_repr(other),
    }
}

/// How a loop item's result is named in `(item=...)`: its label, else its loop variable.
fn item_label(m: &serde_json::Map<String, Value>) -> String {
    let var = m
        .get("ansible_loop_var")
        .and_then(Value::as_str)
        .unwrap_or("item");
    m.get("_ansible_item_label")
        .or_else(|| m.get(var))
        .map(label_text)
        .unwrap_or_default()
}

impl TextReporter {
    /// Prints the pending `included:` lines, if any.
    pub(super) fn flush_include(&mut self) {
        for p in std::mem::take(&mut self.pending_include) {
            self.line(&format!(
                "included: {} for {}{}",
                p.file,
                p.hosts.join(", "),
                p.item
            ));
        }
    }

    /// Handles an `include_tasks` result; true when it was one. A looped include names each
    /// item's file, hosts that included the same file for the same item on one line.
    pub(super) fn include_result(&mut self, task: &TaskInfo, r: &HostResult) -> bool {
        let role = r.action == "include_role";
        if !(r.action == "include_tasks" || role) || r.status != Status::Ok {
            return false;
        }
        let entries: Vec<(&serde_json::Map<String, Value>, String)> = match r.result.get("results")
        {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_object)
                .filter(|m| m.contains_key("include"))
                .map(|m| {
                    let label = item_label(m);
                    (m, format!(" => (item={label})"))
                })
                .collect(),
            _ => vec![(&r.result, String::new())],
        };
        for (m, item) in entries {
            let rel = m
                .get("include")
                .map(crate::jinja::value::scalar_string)
                .unwrap_or_default();
            // `included: ROLE for HOSTS`, or the tasks file's full path
            let file = match task.origin.as_ref().and_then(|o| o.file.parent()) {
                _ if role => rel,
                Some(dir) if !rel.starts_with('/') => {
                    let p = dir.join(&rel);
                    std::fs::canonicalize(&p).unwrap_or(p).display().to_string()
                }
                _ => rel,
            };
            match self
                .pending_include
                .iter_mut()
                .find(|p| p.file == file && p.item == item && !p.hosts.contains(&r.host))
            {
                Some(p) => p.hosts.push(r.host.clone()),
                None => self.pending_include.push(PendingInclude {
                    file,
                    item,
                    hosts: vec![r.host.clone()],
                }),
            }
        }
        true
    }

    /// Prints one line per loop item; true when the result was a loop result, except for an
    /// unreachable one, whose `fatal` line follows its items.
    pub(super) fn loop_result(&mut self, task: &TaskInfo, r: &HostResult, host: &str) -> bool {
        let Some(Value::Array(items)) = r.result.get("results") else {
            return false;
        };
        if items.is_empty() || !items.iter().all(|i| i.get("ansible_loop_var").is_some()) {
            return false;
        }
        for item in items {
            let Value::Object(m) = item else { continue };
            let flag = |k: &str| m.get(k).and_then(Value::as_bool).unwrap_or(false);
            let label = item_label(m);
            let status = if flag("failed") || flag("unreachable") {
                Status::Failed
            } else if flag("skipped") {
                Status::Skipped
            } else if flag("changed") {
                Status::Changed
            } else {
                Status::Ok
            };
            let one = HostResult {
                host: r.host.clone(),
                delegated_to: r.delegated_to.clone(),
                status,
                ignored: false,
                result: m.clone(),
                action: r.action.clone(),
            };
            match status {
                Status::Ok | Status::Changed => {
                    let word = if status == Status::Ok {
                        "ok"
                    } else {
                        "changed"
                    };
                    let mut line = format!("{word}: {host} => (item={label})");
                    if self.verbose(&one) {
                        line.push_str(&format!(" => {}", self.dump(&one)));
                    }
                    self.line(&line);
                }
                Status::Skipped => self.line(&format!("skipping: {host} => (item={label}) ")),
                _ => {
                    let what = match m.get("msg").map(crate::jinja::value::scalar_string) {
                        Some(x) if x.starts_with("Task failed") => x,
                        Some(x) if x.is_empty() => "Task failed: Action failed.".to_string(),
                        Some(x) if crate::builtins::is_controller_only(&r.action) => {
                            format!("Task failed: Action failed: {x}")
                        }
                        Some(x) => format!("Task failed: Module failed: {x}"),
                        None => "Task failed: Action failed.".to_string(),
                    };
                    self.error_origin(&what, &task.origin);
                    self.line(&format!(
                        "failed: {host} (item={label}) => {}",
                        self.dump(&one)
                    ));
                }
            }
        }
        if r.status == Status::Failed && r.ignored {
            self.line("...ignoring");
        }
        // an unreachable loop is then reported whole, as any unreachable result
        r.status != Status::Unreachable
    }
}
