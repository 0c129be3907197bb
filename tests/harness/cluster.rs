//! A real multi-member etcd cluster on loopback addresses of one slot.

use std::fs::OpenOptions;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tempfile::TempDir;

use crate::member::{Member, MemberStart};
use crate::paths::etcd_bin;
use crate::poll::{poll_until, DEFAULT_TIMEOUT};
use crate::process::{guarded_command, kill_and_reap, send_signal, terminate_and_reap};
use crate::scratch::scratch_dir;
use crate::slots::{Slot, MAX_MEMBERS};
use crate::tls::TlsFiles;

/// Lines of member log shown in panic messages.
pub const LOG_TAIL_LINES: usize = 40;

/// How a [`Cluster`] is built.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Number of members started initially (1..=5, default 3).
    pub members: usize,
    /// Client-certificate TLS on client and peer URLs (default false).
    pub tls: bool,
    /// Member names are `<name_prefix><index>` (default `"m"`).
    pub name_prefix: String,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            members: 3,
            tls: false,
            name_prefix: "m".into(),
        }
    }
}

/// A running etcd cluster owned by a test. Dropping it kills (after thawing)
/// and reaps every member, prints member log tails if the test is
/// panicking, removes the temp dir and releases the slot.
#[derive(Debug)]
pub struct Cluster {
    pub(crate) members: Vec<Member>,
    pub(crate) tls: Option<TlsFiles>,
    initial: usize,
    token: String,
    prefix: String,
    dir: TempDir,
    slot: Slot,
}

static CLUSTER_COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Cluster {
    /// Starts `opts.members` members with `--initial-cluster-state new` and
    /// waits (up to [`DEFAULT_TIMEOUT`]) until all are healthy.
    pub fn start(opts: ClusterOptions) -> Cluster {
        assert!(
            (1..=MAX_MEMBERS).contains(&opts.members),
            "ClusterOptions.members must be 1..={MAX_MEMBERS}, got {}",
            opts.members
        );
        let slot = Slot::acquire();
        let dir = scratch_dir(&format!("cluster-s{}", slot.number()));
        let tls = opts.tls.then(|| {
            let ips: Vec<_> = (0..MAX_MEMBERS).map(|i| slot.member_ip(i)).collect();
            TlsFiles::generate(&dir.path().join("pki"), &ips)
        });
        let token = format!(
            "etcd-agent-test-s{}-p{}-c{}",
            slot.number(),
            std::process::id(),
            CLUSTER_COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut cluster = Cluster {
            members: Vec::new(),
            tls,
            initial: opts.members,
            token,
            prefix: opts.name_prefix,
            dir,
            slot,
        };
        for _ in 0..opts.members {
            cluster.add_member_slot();
        }
        for i in 0..opts.members {
            cluster.start_member(i);
        }
        cluster.wait_healthy(DEFAULT_TIMEOUT);
        cluster
    }

    /// 3 members, plain http.
    pub fn start3() -> Cluster {
        Cluster::start(ClusterOptions::default())
    }

    /// 3 members with TLS and client-certificate auth on client and peer URLs.
    pub fn start_tls3() -> Cluster {
        Cluster::start(ClusterOptions {
            tls: true,
            ..ClusterOptions::default()
        })
    }

    /// Number of member indices (initial members plus [`Cluster::add_member_slot`]s).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always false: a cluster has at least one member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The slot number (1..=4) this cluster's addresses live in.
    pub fn slot(&self) -> u8 {
        self.slot.number()
    }

    /// The cluster's scratch directory (data dirs, logs, PKI).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Member `i`; panics if out of range.
    pub fn member(&self, i: usize) -> &Member {
        self.members.get(i).unwrap_or_else(|| {
            panic!(
                "no member {i}: cluster has {} member slots",
                self.members.len()
            )
        })
    }

    /// All member slots.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Client URLs of all member indices (running or not).
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// [`Cluster::endpoints`] joined with commas.
    pub fn endpoints_csv(&self) -> String {
        self.endpoints().join(",")
    }

    /// Client URLs of members that are running and not frozen.
    pub fn live_endpoints(&self) -> Vec<String> {
        self.live_members().map(Member::client_url).collect()
    }

    /// Indices of members that are running and not frozen.
    pub fn live_indices(&self) -> Vec<usize> {
        self.live_members().map(|m| m.index).collect()
    }

    fn live_members(&self) -> impl Iterator<Item = &Member> {
        self.members
            .iter()
            .filter(|m| m.is_running() && !m.is_frozen())
    }

    /// `--initial-cluster` of the initially started members:
    /// `"m0=http://127.0.s.11:2380,m1=..."`.
    pub fn initial_cluster(&self) -> String {
        self.initial_cluster_for(&(0..self.initial).collect::<Vec<_>>())
    }

    /// `--initial-cluster` value listing the given member indices.
    pub fn initial_cluster_for(&self, indices: &[usize]) -> String {
        indices
            .iter()
            .map(|&i| format!("{}={}", self.member(i).name, self.member(i).peer_url()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `--initial-cluster-token` used by this cluster.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// PEM file paths if this is a TLS cluster.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// Reserves the next member index (address `127.0.s.(11+i)`) without
    /// starting it, e.g. to `member add` it and then start it with
    /// `start_member_with(i, MemberStart::existing(..))`. Returns the index.
    pub fn add_member_slot(&mut self) -> usize {
        let index = self.members.len();
        assert!(
            index < MAX_MEMBERS,
            "cluster already has {MAX_MEMBERS} member slots"
        );
        let name = format!("{}{index}", self.prefix);
        let member = Member {
            index,
            ip: self.slot.member_ip(index),
            data_dir: self.dir.path().join(format!("{name}.etcd")),
            log_path: self.dir.path().join(format!("{name}.log")),
            name,
            scheme: if self.tls.is_some() { "https" } else { "http" },
            child: Mutex::new(None),
            frozen: Default::default(),
            last_start: None,
        };
        self.members.push(member);
        index
    }

    /// The exact etcd argv (program first) that [`Cluster::start_member`]
    /// would run for member `i` with default [`MemberStart`] options.
    pub fn member_command_line(&self, i: usize) -> Vec<String> {
        self.member_command_line_with(i, &MemberStart::default())
    }

    /// The exact etcd argv (program first) for member `i` started with `how`.
    pub fn member_command_line_with(&self, i: usize, how: &MemberStart) -> Vec<String> {
        let m = self.member(i);
        let data_dir = how.data_dir.clone().unwrap_or_else(|| m.data_dir.clone());
        let initial_cluster = how
            .initial_cluster
            .clone()
            .unwrap_or_else(|| self.initial_cluster());
        let mut argv: Vec<String> = vec![
            etcd_bin().into(),
            format!("--name={}", m.name),
            format!("--data-dir={}", data_dir.display()),
            format!("--listen-client-urls={}", m.client_url()),
            format!("--advertise-client-urls={}", m.client_url()),
            format!("--listen-peer-urls={}", m.peer_url()),
            format!("--initial-advertise-peer-urls={}", m.peer_url()),
            format!("--initial-cluster={initial_cluster}"),
            format!("--initial-cluster-state={}", how.initial_cluster_state),
            format!("--initial-cluster-token={}", self.token),
            "--logger=zap".into(),
            "--log-outputs=stderr".into(),
        ];
        if let Some(tls) = &self.tls {
            let (cert, key) = (tls.member_cert(i).display(), tls.member_key(i).display());
            let ca = tls.ca_cert.display();
            argv.extend([
                "--client-cert-auth".into(),
                format!("--trusted-ca-file={ca}"),
                format!("--cert-file={cert}"),
                format!("--key-file={key}"),
                "--peer-client-cert-auth".into(),
                format!("--peer-trusted-ca-file={ca}"),
                format!("--peer-cert-file={cert}"),
                format!("--peer-key-file={key}"),
            ]);
        }
        argv.extend(how.extra_args.iter().cloned());
        argv
    }

    /// (Re)starts member `i` with the options of its previous start (default
    /// [`MemberStart`] if it never ran). Does not wait for health. Panics if
    /// it is already running.
    pub fn start_member(&mut self, i: usize) {
        let how = self.member(i).last_start.clone().unwrap_or_default();
        self.start_member_with(i, how);
    }

    /// Starts member `i` with explicit options; `how.data_dir`, if set,
    /// becomes the member's data dir. Does not wait for health.
    pub fn start_member_with(&mut self, i: usize, how: MemberStart) {
        if let Some(pid) = self.member(i).pid() {
            panic!(
                "start_member({i}): member {} already running as pid {pid}",
                self.member(i).name
            );
        }
        let argv = self.member_command_line_with(i, &how);
        let m = &mut self.members[i];
        if let Some(dir) = &how.data_dir {
            m.data_dir = dir.clone();
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log_path)
            .unwrap_or_else(|e| panic!("open {}: {e}", m.log_path.display()));
        use std::io::Write;
        let _ = writeln!(&log, "=== harness: starting {}", argv.join(" "));
        let child = guarded_command(&argv[0])
            // etcd reads every ETCD_* variable as a flag: ETCD_VERSION=3.4
            // (the harness's selector) is `--version=3.4` to etcd 3.4.
            .env_remove("ETCD_VERSION")
            .env_remove("ETCD_BIN_DIR")
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log fd"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} for member {}: {e}", argv[0], m.name));
        *m.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        m.frozen.store(false, Ordering::SeqCst);
        m.last_start = Some(how);
    }

    fn take_child(&self, i: usize) -> Option<Child> {
        let m = self.member(i);
        m.frozen.store(false, Ordering::SeqCst);
        m.child.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// SIGKILL member `i` and reap it. No-op if it is not running.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.take_child(i) {
            kill_and_reap(&mut child);
        }
    }

    /// Graceful stop of member `i`: SIGCONT + SIGTERM, wait (up to
    /// [`DEFAULT_TIMEOUT`], then SIGKILL), reap. No-op if not running.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.take_child(i) {
            let (_, killed) = terminate_and_reap(&mut child, DEFAULT_TIMEOUT);
            if killed {
                eprintln!("harness: member {i} ignored SIGTERM for {DEFAULT_TIMEOUT:?}, killed it");
            }
        }
    }

    /// SIGSTOP member `i` (it keeps its sockets but stops answering).
    pub fn freeze(&self, i: usize) {
        let m = self.member(i);
        let pid = m
            .pid()
            .unwrap_or_else(|| panic!("freeze({i}): member {} is not running", m.name));
        send_signal(pid, libc::SIGSTOP);
        m.frozen.store(true, Ordering::SeqCst);
    }

    /// SIGCONT member `i` after [`Cluster::freeze`].
    pub fn thaw(&self, i: usize) {
        let m = self.member(i);
        if let Some(pid) = m.pid() {
            send_signal(pid, libc::SIGCONT);
        }
        m.frozen.store(false, Ordering::SeqCst);
    }

    /// Waits until every running, non-frozen member answers `endpoint health`
    /// (which needs a leader and quorum). Panics with the etcdctl output and
    /// member log tails on timeout, or at once if a started member died.
    pub fn wait_healthy(&self, timeout: Duration) {
        let indices = self.live_indices();
        assert!(!indices.is_empty(), "wait_healthy: no member is running");
        self.wait_indices_healthy(&indices, timeout);
    }

    /// Waits until member `i` answers `endpoint health`; see [`Cluster::wait_healthy`].
    pub fn wait_member_healthy(&self, i: usize, timeout: Duration) {
        self.wait_indices_healthy(&[i], timeout);
    }

    fn wait_indices_healthy(&self, indices: &[usize], timeout: Duration) {
        let endpoints: Vec<String> = indices
            .iter()
            .map(|&i| self.member(i).client_url())
            .collect();
        let mut last = String::new();
        let ok = poll_until(timeout, || {
            for &i in indices {
                let m = self.member(i);
                if let Some(status) = m.exit_status() {
                    panic!(
                        "member {} exited ({status}) while waiting for health; log tail:\n{}",
                        m.name,
                        m.log_tail(LOG_TAIL_LINES)
                    );
                }
            }
            let out = self.etcdctl_at(&endpoints, &["endpoint", "health"], None);
            if out.status.success() {
                Some(())
            } else {
                last = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                None
            }
        });
        if ok.is_none() {
            panic!(
                "members {indices:?} not healthy after {timeout:?}; last etcdctl output:\n{last}\n{}",
                self.log_tails(indices)
            );
        }
    }

    /// Log tails of the given members, formatted for panic messages.
    pub fn log_tails(&self, indices: &[usize]) -> String {
        indices
            .iter()
            .map(|&i| {
                let m = self.member(i);
                format!(
                    "--- log tail of {} ({}):\n{}",
                    m.name,
                    m.log_path.display(),
                    m.log_tail(LOG_TAIL_LINES)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        for i in 0..self.members.len() {
            if let Some(mut child) = self.take_child(i) {
                kill_and_reap(&mut child);
            }
        }
        if panicking {
            let all: Vec<usize> = (0..self.members.len()).collect();
            eprintln!(
                "harness: cluster in slot {} dropped during a panic; dir {}\n{}",
                self.slot.number(),
                self.dir.path().display(),
                self.log_tails(&all)
            );
        }
    }
}
