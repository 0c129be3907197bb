//! Shared end-to-end test harness for etcd-agent.
//!
//! Real processes only: etcd clusters on loopback ([`Cluster`]), a private
//! sshd ([`Sshd`]) and a sandboxed `ansible-playbook` ([`Ansible`]).
//! Everything lives in temp dirs, every process is killed and reaped on
//! drop (and gets `SIGKILL` if the test process dies), and parallel clusters
//! are bounded by address slots ([`slots`]).

#![warn(missing_docs)]

pub mod agent;
pub mod ansible;
pub mod clean_env;
pub mod cluster;
pub mod etcdctl;
pub mod files;
pub mod member;
pub mod module;
pub mod paths;
pub mod poll;
pub mod process;
pub mod reaper;
pub mod run;
pub mod scratch;
pub mod service;
pub mod slots;
pub mod sshd;
pub mod tls;

pub use agent::{agent_binary, agent_command, Agent, NO_CONFIG};
pub use ansible::{Ansible, AnsibleOutput};
pub use cluster::{Cluster, ClusterOptions};
pub use etcdctl::{Etcdctl, MemberInfo};
pub use files::{make_executable, write_executable, write_file};
pub use member::{Member, MemberStart, CLIENT_PORT, PEER_PORT};
pub use module::{expect_not_failed, run_module, run_module_with_path, ModuleRun};
pub use paths::{
    etcd_at_least, etcd_bin, etcd_inventory_vars, etcd_tools_path, etcd_under_test, etcdctl_bin,
    etcdutl_bin, log_tail, module_binary, module_library_dir, repo_root, EtcdUnderTest,
};
pub use poll::{poll_until, wait_until, DEFAULT_TIMEOUT, POLL_INTERVAL};
pub use process::pid_alive;
pub use run::{run, run_with_stdin, RunOutput};
pub use service::{
    process_start_ticks, Engine, ServiceCluster, ServiceOptions, SvcMember, Writer, WriterReport,
};
pub use slots::{Slot, MAX_MEMBERS};
pub use sshd::Sshd;
pub use tls::TlsFiles;
