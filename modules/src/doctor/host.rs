//! What the playbook gathered on one inventory host and hands to the
//! module: the member it should run, its service state and its log tail.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::datadir::DirFiles;

/// One inventory host, as the playbook describes it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HostFacts {
    /// Inventory host name.
    pub host: String,
    /// The member's etcd name (`etcd_member_name`, default the host name).
    #[serde(default)]
    pub name: Option<String>,
    /// The member's peer URL as the inventory configures it.
    pub peer_url: String,
    /// Exit code of `etcd_status_command` (0: running), as a number or a
    /// numeric string; absent when the command could not run.
    #[serde(default)]
    pub service_rc: Option<Value>,
    /// Its output.
    #[serde(default)]
    pub service_output: Option<String>,
    /// The last lines of the member's log (`etcd_log_command`).
    #[serde(default)]
    pub log: Option<String>,
    /// The command that starts etcd there (`etcd_start_command`).
    #[serde(default)]
    pub start_command: Option<String>,
    /// The member's data dir (`etcd_data_dir`).
    #[serde(default)]
    pub data_dir: Option<String>,
    /// The WAL and snapshot files of the data dir, one path a line
    /// (`find <data_dir>/member/wal <data_dir>/member/snap`).
    #[serde(default)]
    pub data_files: Option<String>,
    /// Exit code of that listing; the listing counts only when it is 0.
    #[serde(default)]
    pub data_files_rc: Option<Value>,
}

impl HostFacts {
    /// The etcd name the member should have.
    pub fn member_name(&self) -> &str {
        self.name
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(&self.host)
    }

    /// Whether the status command said the service runs: `None` when it
    /// did not say (no exit code).
    pub fn service_active(&self) -> Option<bool> {
        Some(exit_code(self.service_rc.as_ref()?)? == 0)
    }

    /// The data dir's WAL and snapshot files, when the listing succeeded.
    pub fn dir_files(&self) -> Option<DirFiles> {
        if exit_code(self.data_files_rc.as_ref()?)? != 0 {
            return None;
        }
        Some(DirFiles::from_listing(self.data_files.as_deref()?))
    }

    /// The log tail (empty when none was gathered).
    pub fn log_text(&self) -> &str {
        self.log.as_deref().unwrap_or("")
    }
}

/// An exit code given as a number or a numeric string.
fn exit_code(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A peer URL compared the way etcd lists them (no trailing slash, lower case).
pub fn same_url(a: &str, b: &str) -> bool {
    a.trim()
        .trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim().trim_end_matches('/'))
}
