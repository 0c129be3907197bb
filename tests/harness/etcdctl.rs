//! Independent checks of a [`Cluster`] through the real `etcdctl` (API v3).

use std::io::Write;
use std::process::{Output, Stdio};

use serde_json::Value;

use crate::cluster::Cluster;
use crate::paths::etcdctl_bin;
use crate::poll::{poll_until, DEFAULT_TIMEOUT};
use crate::process::guarded_command;
use crate::tls::TlsFiles;

/// Keys per `etcdctl txn` in [`Cluster::put_many`] (etcd's default `--max-txn-ops`).
pub const TXN_BATCH: usize = 128;

/// Lower-case fragments of etcdctl errors worth retrying.
pub const TRANSIENT_ERRORS: &[&str] = &[
    "request timed out",
    "leader changed",
    "no leader",
    "unavailable",
    "deadline exceeded",
    "deadlineexceeded",
    "connection refused",
    "too many requests",
    "not capable",
    "raft: stopped",
];

/// Runs the real `etcdctl` (API v3) against explicit endpoints, with TLS
/// client-certificate flags if given. Independent of how members run.
#[derive(Debug, Clone, Default)]
pub struct Etcdctl {
    /// PEM files for `--cacert/--cert/--key`; `None` for plain http.
    pub tls: Option<TlsFiles>,
}

impl Etcdctl {
    /// `etcdctl --endpoints=.. [tls] args...`, feeding `stdin` if given.
    pub fn run(&self, endpoints: &[String], args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = guarded_command(etcdctl_bin());
        for var in [
            "ETCDCTL_ENDPOINTS",
            "ETCDCTL_CACERT",
            "ETCDCTL_CERT",
            "ETCDCTL_KEY",
            "ETCDCTL_USER",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .args(["--dial-timeout=3s", "--command-timeout=15s"]);
        if let Some(tls) = &self.tls {
            cmd.args(tls.etcdctl_args());
        }
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", etcdctl_bin()));
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("etcdctl stdin");
            pipe.write_all(input.as_bytes())
                .expect("write etcdctl stdin");
        }
        child.wait_with_output().expect("wait for etcdctl")
    }
}

/// One entry of `etcdctl member list -w json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// Member id as a number.
    pub id: u64,
    /// Member id in hex as etcdctl's table output prints it (`%x`, no padding).
    pub id_hex: String,
    /// Member name; empty for a member added but not started yet.
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs; empty for a member added but not started yet.
    pub client_urls: Vec<String>,
    /// True for a raft learner (non-voting) member.
    pub is_learner: bool,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn decode_b64(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_else(|e| panic!("etcdctl returned invalid base64 {s:?}: {e}"))
}

impl Cluster {
    /// Runs etcdctl (API v3) against the live members (running, not frozen),
    /// with TLS flags on TLS clusters. Returns the raw output.
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        self.etcdctl_at(&self.live_endpoints(), args, None)
    }

    /// Runs etcdctl against explicit `endpoints`, feeding `stdin` if given.
    pub fn etcdctl_at(&self, endpoints: &[String], args: &[&str], stdin: Option<&str>) -> Output {
        Etcdctl {
            tls: self.tls().cloned(),
        }
        .run(endpoints, args, stdin)
    }

    /// Like [`Cluster::etcdctl`] but panics (with stderr and member log
    /// tails) on a non-zero exit; returns stdout.
    pub fn etcdctl_ok(&self, args: &[&str]) -> String {
        let out = self.etcdctl(args);
        self.check_ok(args, &out)
    }

    /// Like [`Cluster::etcdctl_ok`] but retries (up to [`DEFAULT_TIMEOUT`])
    /// while the failure looks transient (no leader, leader changed, request
    /// timed out, unavailable...). Only for idempotent commands.
    pub fn etcdctl_retry(&self, args: &[&str]) -> String {
        self.etcdctl_retry_stdin(args, None)
    }

    fn etcdctl_retry_stdin(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut last = None;
        let done = poll_until(DEFAULT_TIMEOUT, || {
            let out = self.etcdctl_at(&self.live_endpoints(), args, stdin);
            if out.status.success() {
                return Some(String::from_utf8_lossy(&out.stdout).into_owned());
            }
            let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
            let transient = TRANSIENT_ERRORS.iter().any(|t| stderr.contains(t));
            last = Some(out);
            if transient {
                None
            } else {
                Some(self.check_ok(args, last.as_ref().expect("just set")))
            }
        });
        match done {
            Some(text) => text,
            None => self.check_ok(args, last.as_ref().expect("polled at least once")),
        }
    }

    fn check_ok(&self, args: &[&str], out: &Output) -> String {
        if !out.status.success() {
            let all: Vec<usize> = (0..self.len()).collect();
            panic!(
                "etcdctl {args:?} failed ({}):\nstdout: {}\nstderr: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log_tails(&all)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn etcdctl_json(&self, args: &[&str]) -> Value {
        let mut full = vec!["-w", "json"];
        full.extend_from_slice(args);
        let text = self.etcdctl_retry(&full);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("etcdctl {full:?}: bad JSON ({e}): {text}"))
    }

    /// `etcdctl put key value`, retried while the error is transient; panics on failure.
    pub fn put(&self, key: &str, value: &str) {
        self.etcdctl_retry(&["put", "--", key, value]);
    }

    /// Value of `key` (linearizable read, retried while the error is
    /// transient), `None` if absent.
    pub fn get(&self, key: &str) -> Option<String> {
        let v = self.etcdctl_json(&["get", "--", key]);
        let kv = v.get("kvs")?.as_array()?.first()?.clone();
        let value = kv.get("value").and_then(Value::as_str).unwrap_or("");
        Some(String::from_utf8_lossy(&decode_b64(value)).into_owned())
    }

    /// Number of keys starting with `prefix`.
    pub fn key_count(&self, prefix: &str) -> u64 {
        // etcdctl 3.4 has no --count-only; the response's count ignores --limit.
        let v = self.etcdctl_json(&["get", "--prefix", "--keys-only", "--limit=1", "--", prefix]);
        v.get("count").and_then(Value::as_u64).unwrap_or(0)
    }

    /// Writes `n` keys `<prefix><i:08>` = `value-<i>` with one `etcdctl txn`
    /// per [`TXN_BATCH`] keys. `prefix` must not contain whitespace or quotes.
    pub fn put_many(&self, prefix: &str, n: usize) {
        assert!(
            !prefix
                .chars()
                .any(|c| c.is_whitespace() || c == '"' || c == '\''),
            "put_many: prefix {prefix:?} must not contain whitespace or quotes"
        );
        let mut start = 0;
        while start < n {
            let end = (start + TXN_BATCH).min(n);
            // Non-interactive txn: compares, blank, success ops, blank, failure ops, blank.
            let mut input = String::from("\n");
            for i in start..end {
                input.push_str(&format!("put {prefix}{i:08} value-{i}\n"));
            }
            input.push_str("\n\n");
            let text = self.etcdctl_retry_stdin(&["txn"], Some(&input));
            assert!(
                text.starts_with("SUCCESS"),
                "put_many: txn did not succeed: {text}"
            );
            start = end;
        }
    }

    /// `etcdctl member list`, parsed.
    pub fn member_list(&self) -> Vec<MemberInfo> {
        let v = self.etcdctl_json(&["member", "list"]);
        let members = v
            .get("members")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        members
            .iter()
            .map(|m| {
                let id = m
                    .get("ID")
                    .and_then(Value::as_u64)
                    .unwrap_or_else(|| panic!("member without ID: {m}"));
                MemberInfo {
                    id,
                    id_hex: format!("{id:x}"),
                    name: m.get("name").and_then(Value::as_str).unwrap_or("").into(),
                    peer_urls: strings(m.get("peerURLs").unwrap_or(&Value::Null)),
                    client_urls: strings(m.get("clientURLs").unwrap_or(&Value::Null)),
                    is_learner: m.get("isLearner").and_then(Value::as_bool).unwrap_or(false),
                }
            })
            .collect()
    }

    /// The `member list` entry of member `i` (matched by peer URL, so it
    /// also finds a member added but not started yet).
    pub fn member_info(&self, i: usize) -> Option<MemberInfo> {
        let peer = self.member(i).peer_url();
        self.member_list()
            .into_iter()
            .find(|m| m.peer_urls.contains(&peer))
    }

    /// `etcdctl endpoint status` of each live member, as JSON objects
    /// (`Endpoint`, `Status.header.member_id`, `Status.leader`, `Status.raftIndex`...).
    /// Unreachable members are simply missing.
    pub fn endpoint_status(&self) -> Vec<Value> {
        let out = self.etcdctl(&["endpoint", "status", "-w", "json"]);
        let text = String::from_utf8_lossy(&out.stdout);
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(a)) => a,
            _ => Vec::new(),
        }
    }

    /// Index of the current leader according to the live members' status,
    /// `None` if no live member reports a leader that is a live member.
    pub fn leader(&self) -> Option<usize> {
        let statuses = self.endpoint_status();
        let leader = statuses
            .iter()
            .filter_map(|s| s.pointer("/Status/leader").and_then(Value::as_u64))
            .find(|&l| l != 0)?;
        let s = statuses.iter().find(|s| {
            s.pointer("/Status/header/member_id")
                .and_then(Value::as_u64)
                == Some(leader)
        })?;
        let ep = s.get("Endpoint").and_then(Value::as_str)?;
        self.members.iter().position(|m| m.client_url() == ep)
    }

    /// Waits up to `timeout` for [`Cluster::leader`] to be `Some`; panics
    /// with member log tails otherwise.
    pub fn wait_leader(&self, timeout: std::time::Duration) -> usize {
        crate::poll::poll_until(timeout, || self.leader()).unwrap_or_else(|| {
            let all: Vec<usize> = (0..self.len()).collect();
            panic!(
                "no leader among live members after {timeout:?}\n{}",
                self.log_tails(&all)
            )
        })
    }
}
