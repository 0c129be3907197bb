//! `--json`: one document shaped like the `ansible.posix.json` stdout callback
//! (`plays` -> `tasks` -> `hosts`, then `stats`).

use super::{HostResult, HostStats, Reporter, Status, TaskInfo};
use crate::jinja::value::python_indented;
use crate::yaml::TaskOrigin;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Collects everything and prints one JSON document at the recap.
#[derive(Default)]
pub struct JsonReporter {
    plays: Vec<Value>,
    ids: u64,
}

fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

impl JsonReporter {
    /// A new, empty reporter.
    pub fn new() -> Self {
        Self::default()
    }

    fn id(&mut self) -> String {
        self.ids += 1;
        format!(
            "{:08x}-0000-0000-0000-{:012x}",
            std::process::id(),
            self.ids
        )
    }

    fn close_task(&mut self) {
        if let Some(task) = self
            .plays
            .last_mut()
            .and_then(|p| p["tasks"].as_array_mut())
            .and_then(|t| t.last_mut())
        {
            if task["task"]["duration"].get("end").is_none() {
                task["task"]["duration"]["end"] = Value::String(now());
            }
        }
    }

    fn close_play(&mut self) {
        self.close_task();
        if let Some(play) = self.plays.last_mut() {
            if play["play"]["duration"].get("end").is_none() {
                play["play"]["duration"]["end"] = Value::String(now());
            }
        }
    }
}

impl Reporter for JsonReporter {
    fn play_start(&mut self, name: &str, origin: &TaskOrigin) {
        self.close_play();
        let id = self.id();
        self.plays.push(json!({
            "play": {
                "duration": {"start": now()},
                "id": id,
                "name": name,
                "path": format!("{}:{}", origin.file.display(), origin.line),
            },
            "tasks": [],
        }));
    }

    fn no_hosts(&mut self) {}

    fn task_start(&mut self, task: &TaskInfo, _hosts: usize) {
        self.close_task();
        let id = self.id();
        let path = task
            .origin
            .as_ref()
            .map(|o| format!("{}:{}", o.file.display(), o.line))
            .unwrap_or_default();
        if let Some(tasks) = self
            .plays
            .last_mut()
            .and_then(|p| p["tasks"].as_array_mut())
        {
            tasks.push(json!({
                "hosts": {},
                "task": {"duration": {"start": now()}, "id": id, "name": task.name, "path": path},
            }));
        }
    }

    fn host_result(&mut self, _task: &TaskInfo, r: &HostResult) {
        let mut res: Map<String, Value> = r
            .result
            .iter()
            .filter(|(k, _)| !k.starts_with("_ansible") || k.as_str() == "_ansible_no_log")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        res.insert("action".into(), Value::String(r.action.clone()));
        if r.ignored && r.status == Status::Failed {
            res.insert("ignore_errors".into(), Value::Bool(true));
        }
        if let Some(d) = &r.delegated_to {
            res.insert("_ansible_delegated_vars".into(), json!({"ansible_host": d}));
        }
        if let Some(task) = self
            .plays
            .last_mut()
            .and_then(|p| p["tasks"].as_array_mut())
            .and_then(|t| t.last_mut())
        {
            task["hosts"][&r.host] = Value::Object(res);
        }
    }

    fn retry(&mut self, _t: &TaskInfo, _h: &str, _left: u32, _r: &Map<String, Value>) {}

    fn no_more_hosts(&mut self) {}

    fn recap(&mut self, stats: &BTreeMap<String, HostStats>) {
        self.close_play();
        let mut s = Map::new();
        for (host, st) in stats {
            s.insert(
                host.clone(),
                json!({
                    "changed": st.changed, "failures": st.failed, "ignored": st.ignored,
                    "ok": st.ok, "rescued": st.rescued, "skipped": st.skipped,
                    "unreachable": st.unreachable,
                }),
            );
        }
        let doc = json!({
            "custom_stats": {},
            "global_custom_stats": {},
            "plays": self.plays,
            "stats": s,
        });
        println!("{}", python_indented(&doc));
    }

    fn warning(&mut self, msg: &str) {
        eprintln!("[WARNING]: {msg}");
    }
}
