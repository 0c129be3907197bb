//! Clusters whose members run under `scripts/etcd-svc`, for playbook tests.
//!
//! A [`ServiceCluster`] starts the `etcd-svc` supervisor daemon (under the
//! subreaper wrapper, so nothing outlives the test) with its own directory:
//! `svc/<name>.env` (the `ETCD_*` configuration etcd reads from its
//! environment), `svc/<name>.log`, `data/<name>.etcd`. The playbooks' service
//! commands (`etcd_start_command` / `etcd_stop_command` =
//! `<repo>/scripts/etcd-svc --dir <dir>/svc start|stop <name>`) then control
//! the very processes the test observes through [`ServiceCluster::pid`] and
//! the etcdctl checkers here.
//!
//! [`Engine`] runs a playbook under `ansible-playbook` or `etcd-agent`, so a
//! scenario test can be written once for both.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::ansible::{Ansible, AnsibleOutput, PLAYBOOK_TIMEOUT};
use crate::etcdctl::{Etcdctl, MemberInfo, TRANSIENT_ERRORS, TXN_BATCH};
use crate::member::{CLIENT_PORT, PEER_PORT};
use crate::paths::{etcd_bin, etcd_inventory_vars, etcdctl_bin, etcdutl_bin, log_tail, repo_root};
use crate::poll::{poll_until, DEFAULT_TIMEOUT};
use crate::process::{guarded_command, kill_and_reap, pid_alive, send_signal, terminate_and_reap};
use crate::reaper::reaped_command;
use crate::scratch::scratch_dir;
use crate::slots::{Slot, MAX_MEMBERS};
use crate::sshd::Sshd;
use crate::tls::TlsFiles;

/// Lines of member log shown in panic messages.
const LOG_LINES: usize = 40;

impl Etcdctl {
    /// Like [`Etcdctl::run`], retried (up to [`DEFAULT_TIMEOUT`]) while the
    /// error is in [`TRANSIENT_ERRORS`]; `Err(output text)` otherwise.
    pub fn retry(
        &self,
        endpoints: &[String],
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, String> {
        let mut last = String::new();
        let done = poll_until(DEFAULT_TIMEOUT, || {
            let out = self.run(endpoints, args, stdin);
            if out.status.success() {
                return Some(Ok(String::from_utf8_lossy(&out.stdout).into_owned()));
            }
            last = format!(
                "etcdctl {args:?} at {endpoints:?} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let lower = last.to_lowercase();
            if TRANSIENT_ERRORS.iter().any(|t| lower.contains(t)) {
                None
            } else {
                Some(Err(last.clone()))
            }
        });
        done.unwrap_or(Err(last))
    }

    /// [`Etcdctl::retry`] with `-w json`, parsed; panics on failure.
    pub fn json(&self, endpoints: &[String], args: &[&str]) -> Value {
        let mut full = vec!["-w", "json"];
        full.extend_from_slice(args);
        let text = self
            .retry(endpoints, &full, None)
            .unwrap_or_else(|e| panic!("{e}"));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("etcdctl {full:?}: bad JSON ({e}): {text}"))
    }

    /// `snapshot status -w json` of a snapshot file (`hash`, `revision`,
    /// `totalKey`, `totalSize`) by the etcd under test's etcdutl (etcdctl
    /// on 3.4, which has no etcdutl); panics if the tool rejects it.
    pub fn snapshot_status(&self, path: &Path) -> Value {
        let out = guarded_command(etcdutl_bin().unwrap_or(etcdctl_bin()))
            .env("ETCDCTL_API", "3")
            .args(["snapshot", "status", "-w", "json"])
            .arg(path)
            .output()
            .expect("run etcdctl snapshot status");
        assert!(
            out.status.success(),
            "etcdctl snapshot status {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("snapshot status JSON")
    }

    /// `endpoint status -w json` of each endpoint separately; an unreachable
    /// endpoint gives `None` (no retry).
    pub fn status_of(&self, endpoint: &str) -> Option<Value> {
        let out = self.run(
            &[endpoint.to_string()],
            &["endpoint", "status", "-w", "json"],
            None,
        );
        if !out.status.success() {
            return None;
        }
        match serde_json::from_slice::<Value>(&out.stdout) {
            Ok(Value::Array(mut a)) if !a.is_empty() => Some(a.remove(0)),
            _ => None,
        }
    }
}

/// How to run a playbook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// The real `ansible-playbook` (sandboxed by [`Ansible`]).
    AnsiblePlaybook,
    /// `etcd-agent playbook` at `path`, in the same sandboxed environment.
    Agent {
        /// The `etcd-agent` binary.
        path: PathBuf,
    },
}

impl Engine {
    /// `target/debug/etcd-agent` (built by `cargo build -p etcd-agent`), if present.
    pub fn agent() -> Option<Engine> {
        let path = repo_root().join("target/debug/etcd-agent");
        path.is_file().then_some(Engine::Agent { path })
    }

    /// [`Engine::agent`], or a panic saying how to build it.
    pub fn agent_required() -> Engine {
        Engine::agent().unwrap_or_else(|| {
            panic!("target/debug/etcd-agent not found: build it with `cargo build -p etcd-agent`")
        })
    }

    /// Short name for messages: `ansible-playbook` or `etcd-agent`.
    pub fn name(&self) -> &'static str {
        match self {
            Engine::AnsiblePlaybook => "ansible-playbook",
            Engine::Agent { .. } => "etcd-agent",
        }
    }

    /// Runs `playbook` against `inventory` with `extra_args` (`-e k=v`, `-C`...).
    /// Never panics on a failed run: check [`AnsibleOutput::status`]. The
    /// agent runs with `--json`: its [`AnsibleOutput::json`] is that document
    /// (same layout as the harness's ansible-playbook record) and its
    /// `stdout` is the JSON text, not the human-readable output.
    pub fn playbook(
        &self,
        ansible: &Ansible,
        inventory: &Path,
        playbook: &Path,
        extra_args: &[&str],
    ) -> AnsibleOutput {
        let start = std::time::Instant::now();
        let out = match self {
            Engine::AnsiblePlaybook => ansible.playbook(inventory, playbook, extra_args),
            Engine::Agent { path } => run_agent(ansible, path, inventory, playbook, extra_args),
        };
        eprintln!(
            "{} {} {}: {} in {:.1} s",
            self.name(),
            playbook.file_name().unwrap_or_default().to_string_lossy(),
            extra_args.join(" "),
            out.status,
            start.elapsed().as_secs_f64()
        );
        out
    }
}

fn run_agent(
    ansible: &Ansible,
    agent: &Path,
    inventory: &Path,
    playbook: &Path,
    extra_args: &[&str],
) -> AnsibleOutput {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, Ordering::SeqCst);
    let out_path = ansible.dir().join(format!("agent-run-{n}.stdout"));
    let err_path = ansible.dir().join(format!("agent-run-{n}.stderr"));
    let create = |p: &Path| {
        std::fs::File::create(p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()))
    };
    let mut child = ansible
        .command(&agent.display().to_string())
        .arg("playbook")
        .arg("--json")
        .arg("-i")
        .arg(inventory)
        .arg(playbook)
        .args(extra_args)
        .stdout(create(&out_path))
        .stderr(create(&err_path))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", agent.display()));
    let status = match poll_until(PLAYBOOK_TIMEOUT, || child.try_wait().ok().flatten()) {
        Some(st) => st,
        None => {
            kill_and_reap(&mut child);
            panic!(
                "etcd-agent {} did not finish within {PLAYBOOK_TIMEOUT:?}",
                playbook.display()
            );
        }
    };
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    let stdout = read(&out_path);
    AnsibleOutput {
        status,
        json: serde_json::from_str(&stdout).ok(),
        stdout,
        stderr: read(&err_path),
    }
}

/// One member slot of a [`ServiceCluster`] (it may not be configured or running).
#[derive(Debug, Clone)]
pub struct SvcMember {
    /// Index in the cluster; the address is `127.0.<slot>.(11+index)`.
    pub index: usize,
    /// etcd name, `m<index>`; also the inventory host name and the etcd-svc name.
    pub name: String,
    /// Loopback address (client port 2379, peer port 2380).
    pub ip: Ipv4Addr,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// `ETCD_DATA_DIR`: `<dir>/data/<name>.etcd`.
    pub data_dir: PathBuf,
    /// The member's etcd-svc configuration, `<dir>/svc/<name>.env`.
    pub env_file: PathBuf,
    /// The member's output, `<dir>/svc/<name>.log` (appended across starts).
    pub log: PathBuf,
}

impl SvcMember {
    /// Client URL, e.g. `http://127.0.1.11:2379`.
    pub fn client_url(&self) -> String {
        format!("{}://{}:{CLIENT_PORT}", self.scheme, self.ip)
    }

    /// Peer URL, e.g. `http://127.0.1.11:2380`.
    pub fn peer_url(&self) -> String {
        format!("{}://{}:{PEER_PORT}", self.scheme, self.ip)
    }

    /// Last `lines` lines of the member's log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }
}

/// How a [`ServiceCluster`] is built.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// Members configured and started initially (0 = only the supervisor,
    /// e.g. for a bootstrap playbook); default 3.
    pub members: usize,
    /// Client-certificate TLS on client and peer URLs (default false).
    pub tls: bool,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            members: 3,
            tls: false,
        }
    }
}

/// An etcd cluster whose members are children of an `etcd-svc` daemon owned
/// by the test. Dropping it stops the daemon (which stops its members; the
/// subreaper wrapper kills whatever is left), prints log tails if the test is
/// panicking, removes the temp dir and releases the slot.
#[derive(Debug)]
pub struct ServiceCluster {
    members: Vec<SvcMember>,
    tls: Option<TlsFiles>,
    token: String,
    etcdctl: Etcdctl,
    daemon: Option<Child>,
    dir: TempDir,
    slot: Slot,
}

static SVC_COUNTER: AtomicUsize = AtomicUsize::new(0);

impl ServiceCluster {
    /// Starts the supervisor and `opts.members` members (`ETCD_INITIAL_CLUSTER_STATE=new`),
    /// then waits until they are healthy. Member slots up to 5 exist
    /// (names `m0..m4`) for members added later.
    pub fn start(opts: ServiceOptions) -> ServiceCluster {
        assert!(opts.members <= MAX_MEMBERS, "at most {MAX_MEMBERS} members");
        let slot = Slot::acquire();
        let dir = scratch_dir(&format!("svc-s{}", slot.number()));
        let ips: Vec<Ipv4Addr> = (0..MAX_MEMBERS).map(|i| slot.member_ip(i)).collect();
        let tls = opts
            .tls
            .then(|| TlsFiles::generate(&dir.path().join("pki"), &ips));
        let scheme = if opts.tls { "https" } else { "http" };
        for sub in ["svc", "data", "backups", "remote-backups"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("create service cluster subdir");
        }
        let members = ips
            .iter()
            .enumerate()
            .map(|(index, &ip)| {
                let name = format!("m{index}");
                SvcMember {
                    index,
                    ip,
                    scheme,
                    data_dir: dir.path().join("data").join(format!("{name}.etcd")),
                    env_file: dir.path().join("svc").join(format!("{name}.env")),
                    log: dir.path().join("svc").join(format!("{name}.log")),
                    name,
                }
            })
            .collect();
        let token = format!(
            "etcd-agent-svc-s{}-p{}-c{}",
            slot.number(),
            std::process::id(),
            SVC_COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut cluster = ServiceCluster {
            members,
            etcdctl: Etcdctl { tls: tls.clone() },
            tls,
            token,
            daemon: None,
            dir,
            slot,
        };
        cluster.start_daemon();
        let initial: Vec<usize> = (0..opts.members).collect();
        let initial_cluster = cluster.initial_cluster_for(&initial);
        for &i in &initial {
            cluster.write_env(i, &initial_cluster, "new");
        }
        for &i in &initial {
            cluster.start_member(i);
        }
        if !initial.is_empty() {
            cluster.wait_healthy(&initial, DEFAULT_TIMEOUT);
        }
        cluster
    }

    /// 3 plain-http members.
    pub fn start3() -> ServiceCluster {
        ServiceCluster::start(ServiceOptions::default())
    }

    /// 3 members with TLS and client-certificate auth.
    pub fn start_tls3() -> ServiceCluster {
        ServiceCluster::start(ServiceOptions {
            tls: true,
            ..ServiceOptions::default()
        })
    }

    fn start_daemon(&mut self) {
        let svc = self.svc_dir();
        let child = reaped_command(self.dir.path(), "/usr/bin/python3")
            .arg(repo_root().join("scripts/etcd-svc"))
            .arg("--dir")
            .arg(&svc)
            .arg("daemon")
            .env("ETCD_BIN", etcd_bin())
            // Not for the members: etcd reads ETCD_* as flags (ETCD_VERSION
            // is --version to etcd 3.4).
            .env_remove("ETCD_VERSION")
            .env_remove("ETCD_BIN_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(self.dir.path().join("etcd-svc.log"))
                    .expect("create etcd-svc.log"),
            )
            .spawn()
            .unwrap_or_else(|e| panic!("spawn etcd-svc daemon: {e}"));
        self.daemon = Some(child);
        let sock = svc.join("svc.sock");
        let up = poll_until(DEFAULT_TIMEOUT, || {
            if let Some(Ok(Some(st))) = self.daemon.as_mut().map(Child::try_wait) {
                panic!(
                    "etcd-svc daemon exited ({st}): {}",
                    log_tail(&self.dir.path().join("etcd-svc.log"), 20)
                );
            }
            (sock.exists() && self.svc("status", "m0").status.code() == Some(3)).then_some(())
        });
        assert!(
            up.is_some(),
            "etcd-svc daemon did not answer within {DEFAULT_TIMEOUT:?}"
        );
    }

    /// The slot number (1..=4).
    pub fn slot(&self) -> u8 {
        self.slot.number()
    }

    /// Scratch directory: `svc/`, `data/`, `backups/`, `remote-backups/`, `pki/`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// etcd-svc's directory (env files, logs, socket).
    pub fn svc_dir(&self) -> PathBuf {
        self.dir.path().join("svc")
    }

    /// Controller-side backup directory given to the playbooks (`etcd_backup_dir`).
    pub fn backup_dir(&self) -> PathBuf {
        self.dir.path().join("backups")
    }

    /// Member-side snapshot directory given to the playbooks (`etcd_backup_remote_dir`).
    pub fn remote_backup_dir(&self) -> PathBuf {
        self.dir.path().join("remote-backups")
    }

    /// The `etcd-snapshot-*.db` files in [`ServiceCluster::backup_dir`], oldest first.
    pub fn backups(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.backup_dir())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        let name = p.file_name().unwrap_or_default().to_string_lossy();
                        name.starts_with("etcd-snapshot-") && name.ends_with(".db")
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// `<data_dir>.bak-*` siblings of member `i`'s data dir (moved aside by a playbook).
    pub fn moved_aside(&self, i: usize) -> Vec<PathBuf> {
        let data = &self.members[i].data_dir;
        let prefix = format!("{}.bak-", data.file_name().unwrap().to_string_lossy());
        let mut found: Vec<PathBuf> = std::fs::read_dir(data.parent().unwrap())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .unwrap()
                            .to_string_lossy()
                            .starts_with(&prefix)
                    })
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
    }

    /// Member slot `i` (0..5).
    pub fn member(&self, i: usize) -> &SvcMember {
        &self.members[i]
    }

    /// All 5 member slots.
    pub fn members(&self) -> &[SvcMember] {
        &self.members
    }

    /// PEM files if this is a TLS cluster.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// The etcdctl runner for this cluster (TLS flags included).
    pub fn etcdctl(&self) -> &Etcdctl {
        &self.etcdctl
    }

    /// `ETCD_INITIAL_CLUSTER_TOKEN` of the initially started members.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `name=peer_url,...` for the given member indices.
    pub fn initial_cluster_for(&self, indices: &[usize]) -> String {
        indices
            .iter()
            .map(|&i| format!("{}={}", self.members[i].name, self.members[i].peer_url()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Client URLs of the given member indices.
    pub fn endpoints(&self, indices: &[usize]) -> Vec<String> {
        indices
            .iter()
            .map(|&i| self.members[i].client_url())
            .collect()
    }

    /// The `ETCD_*` lines of member `i`'s env file.
    pub fn env_contents(&self, i: usize, initial_cluster: &str, state: &str) -> String {
        let m = &self.members[i];
        let mut env = vec![
            format!("ETCD_NAME={}", m.name),
            format!("ETCD_DATA_DIR={}", m.data_dir.display()),
            format!("ETCD_LISTEN_CLIENT_URLS={}", m.client_url()),
            format!("ETCD_ADVERTISE_CLIENT_URLS={}", m.client_url()),
            format!("ETCD_LISTEN_PEER_URLS={}", m.peer_url()),
            format!("ETCD_INITIAL_ADVERTISE_PEER_URLS={}", m.peer_url()),
            format!("ETCD_INITIAL_CLUSTER={initial_cluster}"),
            format!("ETCD_INITIAL_CLUSTER_TOKEN={}", self.token),
            format!("ETCD_INITIAL_CLUSTER_STATE={state}"),
            "ETCD_LOGGER=zap".into(),
            "ETCD_LOG_OUTPUTS=stderr".into(),
        ];
        if let Some(tls) = &self.tls {
            let ca = tls.ca_cert.display();
            let (cert, key) = (tls.member_cert(i).display(), tls.member_key(i).display());
            env.extend([
                "ETCD_CLIENT_CERT_AUTH=true".to_string(),
                format!("ETCD_TRUSTED_CA_FILE={ca}"),
                format!("ETCD_CERT_FILE={cert}"),
                format!("ETCD_KEY_FILE={key}"),
                "ETCD_PEER_CLIENT_CERT_AUTH=true".to_string(),
                format!("ETCD_PEER_TRUSTED_CA_FILE={ca}"),
                format!("ETCD_PEER_CERT_FILE={cert}"),
                format!("ETCD_PEER_KEY_FILE={key}"),
            ]);
        }
        env.join("\n") + "\n"
    }

    /// Writes member `i`'s env file.
    pub fn write_env(&self, i: usize, initial_cluster: &str, state: &str) {
        let path = &self.members[i].env_file;
        std::fs::write(path, self.env_contents(i, initial_cluster, state))
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// `etcd-svc --dir <svc> ACTION NAME`, raw output.
    pub fn svc(&self, action: &str, name: &str) -> Output {
        guarded_command("/usr/bin/python3")
            .arg(repo_root().join("scripts/etcd-svc"))
            .arg("--dir")
            .arg(self.svc_dir())
            .args([action, name])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run etcd-svc: {e}"))
    }

    fn svc_ok(&self, action: &str, i: usize) -> String {
        let out = self.svc(action, &self.members[i].name);
        assert!(
            out.status.success(),
            "etcd-svc {action} {} failed ({}): {}{}\n{}",
            self.members[i].name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.members[i].log_tail(LOG_LINES)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `etcd-svc start` member `i` (its env file must exist). Does not wait for health.
    pub fn start_member(&self, i: usize) {
        self.svc_ok("start", i);
    }

    /// `etcd-svc stop` member `i`: SIGTERM and wait until it exited.
    pub fn stop_member(&self, i: usize) {
        self.svc_ok("stop", i);
    }

    /// Pid of member `i`'s etcd (from `etcd-svc pid`), `None` if not running.
    pub fn pid(&self, i: usize) -> Option<u32> {
        let out = self.svc("pid", &self.members[i].name);
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }

    /// Pids of members `0..n`.
    pub fn pids(&self, n: usize) -> Vec<Option<u32>> {
        (0..n).map(|i| self.pid(i)).collect()
    }

    /// SIGKILL member `i` and wait until the supervisor has reaped it.
    pub fn kill9(&self, i: usize) {
        let pid = self
            .pid(i)
            .unwrap_or_else(|| panic!("kill9({i}): {} is not running", self.members[i].name));
        send_signal(pid, libc::SIGKILL);
        let gone = poll_until(DEFAULT_TIMEOUT, || {
            (!pid_alive(pid) && self.pid(i).is_none()).then_some(())
        });
        assert!(
            gone.is_some(),
            "member {i} (pid {pid}) still there after SIGKILL"
        );
    }

    /// Waits until every member in `indices` answers `endpoint health`; panics
    /// with the last etcdctl output and log tails on timeout.
    pub fn wait_healthy(&self, indices: &[usize], timeout: Duration) {
        let endpoints = self.endpoints(indices);
        let mut last = String::new();
        let ok = poll_until(timeout, || {
            let out = self.etcdctl.run(&endpoints, &["endpoint", "health"], None);
            if out.status.success() {
                return Some(());
            }
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            None
        });
        if ok.is_none() {
            panic!(
                "members {indices:?} not healthy after {timeout:?}:\n{last}\n{}",
                self.log_tails(indices)
            );
        }
    }

    /// True if `etcdctl endpoint health` succeeds on each of `indices` right now.
    pub fn healthy(&self, indices: &[usize]) -> bool {
        self.etcdctl
            .run(&self.endpoints(indices), &["endpoint", "health"], None)
            .status
            .success()
    }

    /// Log tails of the given members, for panic messages.
    pub fn log_tails(&self, indices: &[usize]) -> String {
        indices
            .iter()
            .map(|&i| {
                let m = &self.members[i];
                format!(
                    "--- log tail of {} ({}):\n{}",
                    m.name,
                    m.log.display(),
                    m.log_tail(LOG_LINES)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Indices of members whose etcd is running now.
    pub fn running(&self) -> Vec<usize> {
        (0..MAX_MEMBERS)
            .filter(|&i| self.pid(i).is_some())
            .collect()
    }

    fn live(&self) -> Vec<String> {
        let running = self.running();
        assert!(
            !running.is_empty(),
            "no member of the service cluster is running"
        );
        self.endpoints(&running)
    }

    fn ok(&self, r: Result<String, String>) -> String {
        r.unwrap_or_else(|e| {
            panic!(
                "{e}\n{}",
                self.log_tails(&(0..MAX_MEMBERS).collect::<Vec<_>>())
            )
        })
    }

    /// `etcdctl put` through the running members (retried while transient).
    pub fn put(&self, key: &str, value: &str) {
        let r = self
            .etcdctl
            .retry(&self.live(), &["put", "--", key, value], None);
        self.ok(r);
    }

    /// Value of `key` read through `endpoints` (linearizable), `None` if absent.
    pub fn get_at(&self, endpoints: &[String], key: &str) -> Option<String> {
        let r = self
            .etcdctl
            .retry(endpoints, &["get", "--print-value-only", "--", key], None);
        let text = self.ok(r);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        (!text.is_empty()).then(|| text.to_string())
    }

    /// Number of keys under `prefix`, read through `endpoints`.
    pub fn key_count_at(&self, endpoints: &[String], prefix: &str) -> u64 {
        let v = self.etcdctl.json(
            endpoints,
            &["get", "--prefix", "--keys-only", "--limit=1", "--", prefix],
        );
        v.get("count").and_then(Value::as_u64).unwrap_or(0)
    }

    /// Number of keys under `prefix` (through the running members).
    pub fn key_count(&self, prefix: &str) -> u64 {
        self.key_count_at(&self.live(), prefix)
    }

    /// Number of keys under `prefix` served by member `i` alone, with a
    /// serializable read (the member's own copy of the data).
    pub fn local_key_count(&self, i: usize, prefix: &str) -> u64 {
        let v = self.etcdctl.json(
            &self.endpoints(&[i]),
            &[
                "get",
                "--consistency=s",
                "--prefix",
                "--keys-only",
                "--limit=1",
                "--",
                prefix,
            ],
        );
        v.get("count").and_then(Value::as_u64).unwrap_or(0)
    }

    /// Writes `n` keys `<prefix><i:08>` = `value-<i>`, [`TXN_BATCH`] per `etcdctl txn`.
    pub fn put_many(&self, prefix: &str, n: usize) {
        assert!(!prefix
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\''));
        for start in (0..n).step_by(TXN_BATCH) {
            let ops: String = (start..(start + TXN_BATCH).min(n))
                .map(|i| format!("put {prefix}{i:08} value-{i}\n"))
                .collect();
            let r = self
                .etcdctl
                .retry(&self.live(), &["txn"], Some(&format!("\n{ops}\n\n")));
            let text = self.ok(r);
            assert!(text.starts_with("SUCCESS"), "put_many: txn failed: {text}");
        }
    }

    /// Every key under `prefix`, read (linearizably) through `endpoints`.
    pub fn keys_at(&self, endpoints: &[String], prefix: &str) -> Vec<String> {
        let r = self.etcdctl.retry(
            endpoints,
            &["get", "--prefix", "--keys-only", "--", prefix],
            None,
        );
        self.ok(r)
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }

    /// `member list` through `endpoints`, parsed.
    pub fn member_list_at(&self, endpoints: &[String]) -> Vec<MemberInfo> {
        let v = self.etcdctl.json(endpoints, &["member", "list"]);
        let list = |m: &Value, k: &str| -> Vec<String> {
            m.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        v.get("members")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| {
                let id = m.get("ID").and_then(Value::as_u64).expect("member ID");
                MemberInfo {
                    id,
                    id_hex: format!("{id:x}"),
                    name: m.get("name").and_then(Value::as_str).unwrap_or("").into(),
                    peer_urls: list(m, "peerURLs"),
                    client_urls: list(m, "clientURLs"),
                    is_learner: m.get("isLearner").and_then(Value::as_bool).unwrap_or(false),
                }
            })
            .collect()
    }

    /// `member list` through the running members.
    pub fn member_list(&self) -> Vec<MemberInfo> {
        self.member_list_at(&self.live())
    }

    /// The `member list` entry whose peer URL is member `i`'s.
    pub fn member_info(&self, i: usize) -> Option<MemberInfo> {
        let peer = self.members[i].peer_url();
        self.member_list()
            .into_iter()
            .find(|m| m.peer_urls.contains(&peer))
    }

    /// `endpoint status` of member `i` alone (`Status.header.member_id`,
    /// `Status.leader`, `Status.raftTerm`, `Status.header.revision`...), `None` if unreachable.
    pub fn status(&self, i: usize) -> Option<Value> {
        self.etcdctl.status_of(&self.members[i].client_url())
    }

    /// Index of the leader as reported by the running members, if it is one of them.
    pub fn leader(&self) -> Option<usize> {
        for i in self.running() {
            let Some(s) = self.status(i) else { continue };
            let leader = s
                .pointer("/Status/leader")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            if leader == 0 {
                continue;
            }
            for j in self.running() {
                let id = self.status(j).and_then(|s| {
                    s.pointer("/Status/header/member_id")
                        .and_then(Value::as_u64)
                });
                if id == Some(leader) {
                    return Some(j);
                }
            }
        }
        None
    }

    /// Waits for [`ServiceCluster::leader`].
    pub fn wait_leader(&self) -> usize {
        poll_until(DEFAULT_TIMEOUT, || self.leader()).unwrap_or_else(|| {
            panic!(
                "no leader after {DEFAULT_TIMEOUT:?}\n{}",
                self.log_tails(&self.running())
            )
        })
    }

    /// Highest raft term reported by the given members.
    pub fn raft_term(&self, indices: &[usize]) -> u64 {
        indices
            .iter()
            .filter_map(|&i| self.status(i))
            .filter_map(|s| s.pointer("/Status/raftTerm").and_then(Value::as_u64))
            .max()
            .unwrap_or_else(|| panic!("no raft term from members {indices:?}"))
    }

    /// Waits until the members `indices`, each read locally (serializable),
    /// report the same (revision, key count under `prefix`); returns it.
    /// Panics if they do not agree within [`DEFAULT_TIMEOUT`].
    pub fn wait_agree(&self, indices: &[usize], prefix: &str) -> (i64, u64) {
        let mut last = Vec::new();
        let agreed = poll_until(DEFAULT_TIMEOUT, || {
            last = indices
                .iter()
                .map(|&i| {
                    let v = self.etcdctl.json(
                        &self.endpoints(&[i]),
                        &[
                            "get",
                            "--consistency=s",
                            "--prefix",
                            "--keys-only",
                            "--limit=1",
                            "--",
                            prefix,
                        ],
                    );
                    let rev = v
                        .pointer("/header/revision")
                        .and_then(Value::as_i64)
                        .unwrap_or(-1);
                    let count = v.get("count").and_then(Value::as_u64).unwrap_or(0);
                    (rev, count)
                })
                .collect();
            last.windows(2).all(|w| w[0] == w[1]).then(|| last[0])
        });
        agreed.unwrap_or_else(|| {
            panic!("members {indices:?} disagree on (revision, key count): {last:?}")
        })
    }

    /// Inventory (INI) for the hosts `indices`: `[etcd]` hosts named like the
    /// members with `ip=`, `etcd_member_name=` and the sshd's connection
    /// vars, and `[etcd:vars]` pointing service control, env files, data dirs,
    /// TLS files and backup dirs at this cluster. `extra_vars` lines
    /// (`key=value`) are appended to `[etcd:vars]`.
    pub fn inventory(&self, sshd: &Sshd, indices: &[usize], extra_vars: &[&str]) -> String {
        let mut ini = String::from("[etcd]\n");
        for &i in indices {
            let m = &self.members[i];
            let certs = match &self.tls {
                Some(tls) => format!(
                    "etcd_server_cert={} etcd_server_key={} ",
                    tls.member_cert(i).display(),
                    tls.member_key(i).display()
                ),
                None => String::new(),
            };
            ini.push_str(&format!(
                "{} ip={} etcd_member_name={} {certs}{}\n",
                m.name,
                m.ip,
                m.name,
                sshd.inventory_host_vars()
            ));
        }
        let svc = format!(
            "{} --dir {}",
            repo_root().join("scripts/etcd-svc").display(),
            self.svc_dir().display()
        );
        let d = self.dir.path().display();
        ini.push_str("\n[etcd:vars]\n");
        let mut vars = vec![
            format!("etcd_client_scheme={}", self.members[0].scheme),
            format!("etcd_peer_scheme={}", self.members[0].scheme),
            format!("etcd_svc=\"{svc}\""),
            "etcd_start_command=\"{{ etcd_svc }} start {{ etcd_member_name }}\"".into(),
            "etcd_stop_command=\"{{ etcd_svc }} stop {{ etcd_member_name }}\"".into(),
            format!("etcd_env_file=\"{d}/svc/{{{{ etcd_member_name }}}}.env\""),
            format!("etcd_data_dir=\"{d}/data/{{{{ etcd_member_name }}}}.etcd\""),
            format!("etcd_backup_dir={d}/backups"),
            format!("etcd_backup_remote_dir=\"{d}/remote-backups/{{{{ etcd_member_name }}}}\""),
            format!("etcd_restore_remote_dir=\"{d}/restore/{{{{ etcd_member_name }}}}\""),
            format!("etcd_helpers_dir=\"{d}/bin/{{{{ etcd_member_name }}}}\""),
            format!("etcd_cluster_token={}", self.token),
            "etcd_health_wait_timeout=120".into(),
        ];
        // The binaries of the etcd under test (ETCD_VERSION), for playbooks
        // that run etcdctl or restore with etcdutl.
        vars.extend(etcd_inventory_vars());
        if let Some(tls) = &self.tls {
            vars.push(format!("etcd_ca_cert={}", tls.ca_cert.display()));
            vars.push(format!("etcd_client_cert={}", tls.client_cert.display()));
            vars.push(format!("etcd_client_key={}", tls.client_key.display()));
        }
        vars.extend(extra_vars.iter().map(|s| s.to_string()));
        for v in vars {
            ini.push_str(&v);
            ini.push('\n');
        }
        ini
    }

    /// Writes [`ServiceCluster::inventory`] to `<ansible dir>/<file>`; returns the path.
    pub fn write_inventory(
        &self,
        ansible: &Ansible,
        sshd: &Sshd,
        file: &str,
        indices: &[usize],
        extra_vars: &[&str],
    ) -> PathBuf {
        ansible.write_file(file, &self.inventory(sshd, indices, extra_vars))
    }
}

impl Drop for ServiceCluster {
    fn drop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            // SIGTERM is forwarded to the daemon, which stops its members
            // (30 s grace each); the wrapper then kills anything left.
            let (_, killed) = terminate_and_reap(&mut daemon, Duration::from_secs(60));
            if killed {
                eprintln!("harness: etcd-svc daemon did not exit on SIGTERM; killed it");
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "harness: service cluster in slot {} dropped during a panic; dir {}\n--- etcd-svc log:\n{}\n{}",
                self.slot.number(),
                self.dir.path().display(),
                log_tail(&self.dir.path().join("etcd-svc.log"), 20),
                self.log_tails(&(0..MAX_MEMBERS).collect::<Vec<_>>())
            );
        }
    }
}

/// Start time of process `pid` in clock ticks since boot (`/proc/<pid>/stat`
/// field 22), to order restarts; panics if the process is gone.
pub fn process_start_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/stat: {e}"));
    // After "pid (comm) ": field 3 is the state; starttime is field 22.
    let rest = &stat[stat.rfind(')').expect("comm in stat") + 2..];
    rest.split_whitespace()
        .nth(22 - 3)
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| panic!("no start time in /proc/{pid}/stat: {stat}"))
}

/// What a [`Writer`] saw.
#[derive(Debug, Clone, Default)]
pub struct WriterReport {
    /// Keys whose `put` was acknowledged (first try or the retry).
    pub acked: Vec<String>,
    /// Puts that failed on both endpoints (they may still have been applied).
    pub failed: Vec<String>,
    /// Puts that needed the retry on the second endpoint.
    pub retried: usize,
}

impl WriterReport {
    /// Asserts the writer wrote (more than 10 keys), saw no failed write, and
    /// that every acknowledged key under `prefix` is there on the members
    /// `indices` of `cluster`.
    pub fn assert_nothing_lost(&self, cluster: &ServiceCluster, indices: &[usize], prefix: &str) {
        eprintln!(
            "writer: {} acknowledged, {} failed, {} needed the retry",
            self.acked.len(),
            self.failed.len(),
            self.retried
        );
        assert!(self.acked.len() > 10, "the writer barely wrote: {self:?}");
        assert!(self.failed.is_empty(), "failed writes: {:?}", self.failed);
        let keys: std::collections::BTreeSet<String> = cluster
            .keys_at(&cluster.endpoints(indices), prefix)
            .into_iter()
            .collect();
        let missing: Vec<&String> = self.acked.iter().filter(|k| !keys.contains(*k)).collect();
        assert!(missing.is_empty(), "acknowledged keys lost: {missing:?}");
    }
}

/// A thread writing `<prefix><n>` keys one after another with `etcdctl put`,
/// each to the next endpoint in turn and, like etcd's clients, retried once
/// on the following endpoint. Only acknowledged keys count.
#[derive(Debug)]
pub struct Writer {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<WriterReport>>,
}

impl Writer {
    /// Starts writing through `endpoints`.
    pub fn start(etcdctl: &Etcdctl, endpoints: Vec<String>, prefix: &str) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let etcdctl = etcdctl.clone();
        let prefix = prefix.to_string();
        let handle = std::thread::spawn(move || {
            let mut report = WriterReport::default();
            let mut n = 0usize;
            while !flag.load(Ordering::SeqCst) {
                let key = format!("{prefix}{n:08}");
                let mut ok = false;
                for attempt in 0..2 {
                    let ep = endpoints[(n + attempt) % endpoints.len()].clone();
                    let out = etcdctl.run(&[ep], &["put", "--", &key, "v"], None);
                    if out.status.success() {
                        ok = true;
                        report.retried += attempt;
                        break;
                    }
                }
                if ok {
                    report.acked.push(key);
                } else {
                    report.failed.push(key);
                }
                n += 1;
            }
            report
        });
        Writer {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops the thread and returns what it saw.
    pub fn finish(mut self) -> WriterReport {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .expect("writer thread")
            .join()
            .expect("writer thread panicked")
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
