//! Reporting one host's outcome of a task: the recap's counters (ok, changed, ignored...)
//! and the result shown, censored under `no_log` and without its diff outside diff mode.

use super::host_job::HostOutcome;
use super::Engine;
use crate::output::{HostResult, Status, TaskInfo};
use crate::playbook::Task;
use serde_json::{Map, Value};

impl Engine {
    /// Counts `o` in its host's stats and hands it to the reporter.
    pub(super) fn report(&mut self, info: &TaskInfo, task: &Task, o: &HostOutcome) {
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
                if o.ignored {
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
