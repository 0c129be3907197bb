//! Output: the run's observers. The executor reports events; reporters only format them.

mod adhoc;
mod deprecation;
mod diff;
pub(crate) mod fatal;
mod json;
mod progress;
pub(crate) mod text;

pub use adhoc::AdhocReporter;
pub use deprecation::deprecation_message;
pub use json::JsonReporter;
pub use progress::Progress;
pub use text::TextReporter;

use crate::yaml::TaskOrigin;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Outcome of one task on one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Ran, nothing changed.
    Ok,
    /// Ran and changed something.
    Changed,
    /// Failed (maybe ignored).
    Failed,
    /// Skipped (`when` false, check mode, ...).
    Skipped,
    /// The host could not be reached.
    Unreachable,
}

/// One host's result for one task, as reported.
#[derive(Debug, Clone)]
pub struct HostResult {
    /// Inventory host name.
    pub host: String,
    /// Host the task was delegated to, if any.
    pub delegated_to: Option<String>,
    /// Outcome.
    pub status: Status,
    /// True when a failure was ignored (`ignore_errors`).
    pub ignored: bool,
    /// The result dict (already censored for `no_log`).
    pub result: Map<String, Value>,
    /// Module short name.
    pub action: String,
}

/// A task as reported.
#[derive(Debug, Clone)]
pub struct TaskInfo {
    /// Display name.
    pub name: String,
    /// Where it was written (None for Gathering Facts).
    pub origin: Option<TaskOrigin>,
    /// A handler (`RUNNING HANDLER [...]`).
    pub handler: bool,
}

/// Per-host recap counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostStats {
    /// ok (includes changed and ignored failures).
    pub ok: u32,
    /// changed.
    pub changed: u32,
    /// unreachable.
    pub unreachable: u32,
    /// failed.
    pub failed: u32,
    /// skipped.
    pub skipped: u32,
    /// rescued (always 0 until blocks exist).
    pub rescued: u32,
    /// ignored failures.
    pub ignored: u32,
}

/// Receives run events in order.
pub trait Reporter: Send {
    /// A playbook with `plays` plays starts (`path` as given on the command line).
    fn playbook_start(&mut self, _path: &str, _plays: usize) {}
    /// A play starts.
    fn play_start(&mut self, name: &str, origin: &TaskOrigin);
    /// The play's pattern matched no host.
    fn no_hosts(&mut self);
    /// A task starts on `hosts` hosts.
    fn task_start(&mut self, task: &TaskInfo, hosts: usize);
    /// One host finished the task.
    fn host_result(&mut self, task: &TaskInfo, result: &HostResult);
    /// `until` will retry.
    fn retry(
        &mut self,
        task: &TaskInfo,
        host: &str,
        retries_left: u32,
        result: &Map<String, Value>,
    );
    /// Every host of the play has failed.
    fn no_more_hosts(&mut self);
    /// The run ends.
    fn recap(&mut self, stats: &BTreeMap<String, HostStats>);
    /// A warning.
    fn warning(&mut self, msg: &str);
    /// A line ansible-playbook shows from `-v` times `level` on (`display.vv`, ...).
    fn verbose_line(&mut self, _level: u8, _msg: &str) {}
    /// `--step` asks `prompt` (shown without a line end; the answer is read from stdin).
    /// Output that is a document (`--json`) keeps it on stderr.
    fn step_prompt(&mut self, prompt: &str) {
        eprint!("{prompt}");
    }
    /// `--step` got its answer to `prompt`: Ansible shows the question again as a banner.
    fn step_answered(&mut self, prompt: &str) {
        eprintln!();
        let msg = prompt.trim();
        let stars = 79usize.saturating_sub(msg.chars().count()).max(3);
        eprintln!("{msg} {}", "*".repeat(stars));
    }
}
