//! A host job: everything one task on one host needs (owned, to run on its own tokio task),
//! and what it gives back.

use super::vars::Context;
use crate::builtins::ResultMap;
use crate::output::Status;
use crate::playbook::Task;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Everything a host job needs, owned so it can run on its own tokio task.
pub struct HostJob {
    /// Inventory host name.
    pub host: String,
    /// The task.
    pub task: Arc<Task>,
    /// Merged variables (for connection settings).
    pub vars: Map<String, Value>,
    /// Template context.
    pub ctx: Context,
    /// Play `become`.
    pub play_become: Option<bool>,
    /// Play `become_method`.
    pub play_become_method: Option<String>,
    /// Play `remote_user`.
    pub play_user: Option<String>,
    /// The task's `connection` keyword, else the play's.
    pub connection_keyword: Option<String>,
    /// Play `environment`.
    pub play_env: Option<Value>,
}

/// What happened.
pub struct HostOutcome {
    /// Inventory host name.
    pub host: String,
    /// Final status.
    pub status: Status,
    /// Failure ignored by `ignore_errors`, or unreachable host by `ignore_unreachable`.
    pub ignored: bool,
    /// Delegated target, if any.
    pub delegated_to: Option<String>,
    /// The result dict (what `register` stores).
    pub result: ResultMap,
    /// `until` retries: (retries left, result) per failed attempt.
    pub retries: Vec<(u32, ResultMap)>,
    /// For a loop: each item's delegated target, in the order of `result["results"]`.
    pub item_delegates: Vec<Option<String>>,
}

impl HostOutcome {
    /// The outcome of `job` with `status` and `result`, not ignored, without retries.
    pub fn new(
        job: &HostJob,
        status: Status,
        result: ResultMap,
        delegated_to: Option<String>,
    ) -> Self {
        HostOutcome {
            host: job.host.clone(),
            status,
            ignored: false,
            delegated_to,
            result,
            retries: Vec::new(),
            item_delegates: Vec::new(),
        }
    }
}
