//! One etcd member process of a test [`crate::Cluster`].

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::paths::log_tail;

/// Client port of every member (each member has its own loopback address).
pub const CLIENT_PORT: u16 = 2379;
/// Peer port of every member.
pub const PEER_PORT: u16 = 2380;

/// How to (re)start a member; see [`crate::Cluster::start_member_with`].
#[derive(Debug, Clone)]
pub struct MemberStart {
    /// `--initial-cluster-state`: `"new"` (default) or `"existing"`.
    pub initial_cluster_state: String,
    /// `--initial-cluster`; `None` means [`crate::Cluster::initial_cluster`].
    pub initial_cluster: Option<String>,
    /// Data directory to use from now on; `None` keeps the member's current one.
    pub data_dir: Option<PathBuf>,
    /// Extra etcd flags appended to the command line.
    pub extra_args: Vec<String>,
}

impl Default for MemberStart {
    fn default() -> Self {
        MemberStart {
            initial_cluster_state: "new".into(),
            initial_cluster: None,
            data_dir: None,
            extra_args: Vec::new(),
        }
    }
}

impl MemberStart {
    /// Join an existing cluster: `--initial-cluster-state existing` with the
    /// given `--initial-cluster` (which must include the joining member).
    pub fn existing(initial_cluster: impl Into<String>) -> MemberStart {
        MemberStart {
            initial_cluster_state: "existing".into(),
            initial_cluster: Some(initial_cluster.into()),
            ..MemberStart::default()
        }
    }
}

/// A member slot of a cluster: fixed name and address, maybe a running process.
#[derive(Debug)]
pub struct Member {
    /// Index in the cluster (0-based); the address is `127.0.<slot>.(11+index)`.
    pub index: usize,
    /// etcd `--name`, e.g. `m0`.
    pub name: String,
    /// Loopback address the member listens on (client 2379, peer 2380).
    pub ip: Ipv4Addr,
    /// Current data directory (initially `<cluster tmp>/<name>.etcd`).
    pub data_dir: PathBuf,
    /// File receiving the member's stdout+stderr (appended across restarts).
    pub log_path: PathBuf,
    pub(crate) scheme: &'static str,
    pub(crate) child: Mutex<Option<Child>>,
    pub(crate) frozen: AtomicBool,
    pub(crate) last_start: Option<MemberStart>,
}

impl Member {
    /// Client URL, e.g. `http://127.0.1.11:2379` (`https` for TLS clusters).
    pub fn client_url(&self) -> String {
        format!("{}://{}:{CLIENT_PORT}", self.scheme, self.ip)
    }

    /// Peer URL, e.g. `http://127.0.1.11:2380` (`https` for TLS clusters).
    pub fn peer_url(&self) -> String {
        format!("{}://{}:{PEER_PORT}", self.scheme, self.ip)
    }

    /// Pid of the member's etcd process if it is running (frozen counts as
    /// running); `None` if never started, stopped, or exited on its own.
    pub fn pid(&self) -> Option<u32> {
        let mut guard = self.child.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut() {
            Some(child) => match child.try_wait() {
                Ok(None) => Some(child.id()),
                _ => None,
            },
            None => None,
        }
    }

    /// True if the etcd process is running (possibly frozen).
    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// True if the member was frozen with [`crate::Cluster::freeze`] and not thawed.
    pub fn is_frozen(&self) -> bool {
        self.frozen.load(Ordering::SeqCst)
    }

    /// Exit status if the member was started and its process has exited.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        let mut guard = self.child.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Last `lines` lines of the member's log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path, lines)
    }

    /// The member's log file path.
    pub fn log(&self) -> &Path {
        &self.log_path
    }
}
