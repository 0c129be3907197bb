//! Ad-hoc output, as Ansible's `minimal` callback prints it for the `ansible` command:
//! `host | CHANGED | rc=0 >>` plus output for commands, `host | SUCCESS => {...}` otherwise.

use super::{HostResult, HostStats, Reporter, Status, TaskInfo};
use crate::jinja::value::{python_indented, scalar_string};
use crate::yaml::TaskOrigin;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Prints one block per host result; no banners and no recap.
#[derive(Default)]
pub struct AdhocReporter;

fn text(r: &HostResult, key: &str) -> String {
    r.result.get(key).map(scalar_string).unwrap_or_default()
}

impl Reporter for AdhocReporter {
    fn play_start(&mut self, _name: &str, _origin: &TaskOrigin) {}

    fn no_hosts(&mut self) {}

    fn task_start(&mut self, _task: &TaskInfo, _hosts: usize) {}

    fn host_result(&mut self, _task: &TaskInfo, r: &HostResult) {
        let command_like = matches!(r.action.as_str(), "command" | "shell")
            && !r.result.contains_key("module_stderr");
        let caption = match r.status {
            Status::Skipped => {
                println!("{} | SKIPPED", r.host);
                return;
            }
            Status::Unreachable => "UNREACHABLE!",
            Status::Failed if command_like => "FAILED",
            Status::Failed => "FAILED!",
            Status::Changed => "CHANGED",
            Status::Ok => "SUCCESS",
        };
        if command_like && r.status != Status::Unreachable {
            let rc = r
                .result
                .get("rc")
                .map(scalar_string)
                .unwrap_or_else(|| "-1".into());
            println!(
                "{} | {caption} | rc={rc} >>\n{}{}{}",
                r.host,
                text(r, "stdout"),
                text(r, "stderr"),
                text(r, "msg")
            );
            return;
        }
        let mut clean: Map<String, Value> = r
            .result
            .iter()
            .filter(|(k, _)| !k.starts_with("_ansible") && k.as_str() != "failed")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if r.action == "debug" {
            if clean.contains_key("msg") {
                clean.retain(|k, _| k == "msg");
            } else {
                clean.remove("changed");
            }
        }
        println!(
            "{} | {caption} => {}",
            r.host,
            python_indented(&Value::Object(clean))
        );
    }

    fn retry(&mut self, _t: &TaskInfo, _h: &str, _left: u32, _r: &Map<String, Value>) {}

    fn no_more_hosts(&mut self) {}

    fn recap(&mut self, _stats: &BTreeMap<String, HostStats>) {}

    fn warning(&mut self, msg: &str) {
        eprintln!("[WARNING]: {msg}");
    }
}
