//! Scenario: the rolling upgrade playbook (`etcd_upgrade.yml`) takes a
//! 3-member cluster whose members run under etcd-svc from etcd 3.4.23 through
//! 3.5.25 and 3.5.30 to 3.6.15 under a continuous writer, once per engine.
//!
//! Each member runs `<dir>/etcd-bin/<name>/etcd` (the env file's `ETCD_BIN`),
//! a symlink the playbook switches to the `etcd-<version>` it installs beside
//! the old binaries. Judged by etcd itself: after each step every member
//! reports the new server version (`endpoint status`), the cluster version
//! (`/version`) is the new minor version, the raft term grew by exactly one
//! (the single leadership transfer) and every member has a new pid. Then back
//! down with `etcd_upgrade_allow_downgrade`: 3.6.15 to 3.5.30 through etcd's
//! downgrade API (the cluster version drops to 3.5 and every member's storage
//! version is 3.5.0 before the first restart) and 3.5.30 to 3.5.25 (a patch
//! downgrade), judged the same way. Refused with nothing changed (same pids,
//! same links, nothing installed): 3.4 to 3.6 (skipped minor version), 3.5.25
//! to 3.6 (below 3.5.26), 3.6 back to 3.5 without
//! `etcd_upgrade_allow_downgrade`, and 3.5 back to 3.4 with it (etcd cannot).
//! Check mode changes nothing (nor enables a downgrade); a second run to the
//! version already running restarts nothing. At the end every acknowledged
//! key of the writer is there.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::{
    repo_root, Ansible, AnsibleOutput, Engine, ServiceCluster, Sshd, Writer, DEFAULT_TIMEOUT,
};
use serde_json::Value;

const MEMBERS: [usize; 3] = [0, 1, 2];
/// The version of the system etcd (`/usr/bin/etcd`) the cluster starts on.
const START_VERSION: &str = "3.4.23";

fn upgrade_playbook() -> PathBuf {
    repo_root().join("playbooks/db-operations/etcd_upgrade.yml")
}

/// The pinned server binary of `version` (installed by `scripts/install-etcd-versions`;
/// the first version is the system's).
fn etcd_binary(version: &str) -> PathBuf {
    if version == START_VERSION {
        return PathBuf::from("/usr/bin/etcd");
    }
    let path = repo_root().join(format!(".deps/etcd/{version}/bin/etcd"));
    assert!(
        path.is_file(),
        "{} missing: run scripts/install-etcd-versions",
        path.display()
    );
    path
}

/// Member `i`'s binary directory: `etcd` (what etcd-svc runs) and `etcd-<version>`.
fn bin_dir(cluster: &ServiceCluster, i: usize) -> PathBuf {
    cluster.dir().join("etcd-bin").join(&cluster.member(i).name)
}

/// Points every member's service at `<bin dir>/etcd` -> `etcd-3.4.23` ->
/// /usr/bin/etcd: the binary it already runs, so a restart keeps it.
fn use_binary_links(cluster: &ServiceCluster) {
    for i in MEMBERS {
        let dir = bin_dir(cluster, i);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink("/usr/bin/etcd", dir.join(format!("etcd-{START_VERSION}")))
            .unwrap();
        std::os::unix::fs::symlink(dir.join(format!("etcd-{START_VERSION}")), dir.join("etcd"))
            .unwrap();
        let env = &cluster.member(i).env_file;
        let text = std::fs::read_to_string(env).unwrap();
        std::fs::write(
            env,
            format!("{text}ETCD_BIN={}\n", dir.join("etcd").display()),
        )
        .unwrap();
    }
}

/// Where member `i`'s `etcd` symlink points.
fn link_target(cluster: &ServiceCluster, i: usize) -> PathBuf {
    std::fs::read_link(bin_dir(cluster, i).join("etcd")).unwrap()
}

/// The server version member `i` reports (`endpoint status`).
fn server_version(cluster: &ServiceCluster, i: usize) -> String {
    let status = harness::poll_until(DEFAULT_TIMEOUT, || cluster.status(i))
        .unwrap_or_else(|| panic!("m{i} answers no endpoint status"));
    status
        .pointer("/Status/version")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no version in {status}"))
        .to_string()
}

/// The cluster version member `i` reports at `/version` (plain http).
fn cluster_version(cluster: &ServiceCluster, i: usize) -> String {
    let m = cluster.member(i);
    let mut stream = TcpStream::connect((m.ip, harness::CLIENT_PORT)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET /version HTTP/1.0\r\nHost: {}\r\n\r\n", m.ip).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let body = reply.split("\r\n\r\n").nth(1).unwrap_or("");
    let doc: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("bad /version ({e}): {reply}"));
    doc["etcdcluster"].as_str().unwrap_or("").to_string()
}

/// Waits until every member reports cluster version `minor`.0.
fn wait_cluster_version(cluster: &ServiceCluster, minor: &str) {
    let want = format!("{minor}.0");
    let mut last = Vec::new();
    let ok = harness::poll_until(DEFAULT_TIMEOUT, || {
        last = MEMBERS
            .iter()
            .map(|&i| cluster_version(cluster, i))
            .collect();
        last.iter().all(|v| *v == want).then_some(())
    });
    assert!(ok.is_some(), "cluster version {last:?}, expected {want}");
}

fn pids(cluster: &ServiceCluster) -> Vec<Option<u32>> {
    cluster.pids(3)
}

fn links(cluster: &ServiceCluster) -> Vec<PathBuf> {
    MEMBERS.iter().map(|&i| link_target(cluster, i)).collect()
}

struct Run<'a> {
    engine: &'a Engine,
    ansible: &'a Ansible,
    hosts: &'a Path,
}

impl Run<'_> {
    fn upgrade(&self, version: &str, extra: &[&str]) -> AnsibleOutput {
        let binary = etcd_binary(version);
        let mut args = vec![
            "-e".to_string(),
            format!("etcd_upgrade_version={version}"),
            "-e".to_string(),
            format!("etcd_upgrade_binary={}", binary.display()),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.engine
            .playbook(self.ansible, self.hosts, &upgrade_playbook(), &args)
    }
}

/// A refused run: it fails at `task` on some member, and nothing changed.
fn assert_refused(cluster: &ServiceCluster, run: &Run, version: &str, extra: &[&str], task: &str) {
    let before_pids = pids(cluster);
    let before_links = links(cluster);
    let installed_before: Vec<bool> = MEMBERS
        .iter()
        .map(|&i| bin_dir(cluster, i).join(format!("etcd-{version}")).exists())
        .collect();
    let out = run.upgrade(version, extra);
    out.assert_failure();
    let refused = MEMBERS.iter().any(|&i| {
        out.result(task, &cluster.member(i).name)
            .is_some_and(|r| r["failed"] == true)
    });
    assert!(refused, "{task:?} did not refuse:\n{}", out.describe());
    assert_eq!(pids(cluster), before_pids, "a member was restarted");
    assert_eq!(links(cluster), before_links, "a service link was switched");
    for i in MEMBERS {
        let installed = bin_dir(cluster, i).join(format!("etcd-{version}"));
        assert_eq!(
            installed.exists(),
            installed_before[i],
            "{} was installed",
            installed.display()
        );
    }
}

/// One upgrade step under the running writer: success, every member
/// restarted on `version`, one leader change, the cluster version at `minor`.
fn assert_step(cluster: &ServiceCluster, run: &Run, version: &str, minor: &str, extra: &[&str]) {
    let before = pids(cluster);
    let leader = cluster.wait_leader();
    let term = cluster.raft_term(&MEMBERS);
    let out = run.upgrade(version, extra);
    out.assert_success();
    cluster.wait_healthy(&MEMBERS, DEFAULT_TIMEOUT);
    for i in MEMBERS {
        assert_ne!(pids(cluster)[i], before[i], "m{i} was not restarted");
        assert_eq!(server_version(cluster, i), version, "m{i}");
        let dir = bin_dir(cluster, i);
        assert_eq!(link_target(cluster, i), dir.join(format!("etcd-{version}")));
        assert!(
            dir.join(format!("etcd-{START_VERSION}")).exists(),
            "the first binary of m{i} is gone"
        );
    }
    let term_after = cluster.raft_term(&MEMBERS);
    assert_eq!(
        term_after,
        term + 1,
        "upgrade to {version}: raft term {term} -> {term_after}, expected one leader change"
    );
    assert_ne!(cluster.wait_leader(), leader, "leadership did not move");
    wait_cluster_version(cluster, minor);
}

fn upgrade_3_4_to_3_6(engine: Engine) {
    let cluster = ServiceCluster::start3();
    use_binary_links(&cluster);
    let sshd = Sshd::start();
    let ansible = Ansible::new();
    let d = cluster.dir().display().to_string();
    let etcdutl = repo_root().join(".deps/etcd/client-3.5.30/bin/etcdutl");
    let vars = [
        format!("etcd_bin_dir=\"{d}/etcd-bin/{{{{ etcd_member_name }}}}\""),
        format!("etcdutl_path={}", etcdutl.display()),
        "etcd_curl_path=/usr/bin/curl".to_string(),
    ];
    let vars: Vec<&str> = vars.iter().map(String::as_str).collect();
    let hosts = cluster.write_inventory(&ansible, &sshd, "hosts.ini", &MEMBERS, &vars);
    let run = Run {
        engine: &engine,
        ansible: &ansible,
        hosts: &hosts,
    };
    for i in MEMBERS {
        assert_eq!(server_version(&cluster, i), START_VERSION);
    }
    wait_cluster_version(&cluster, "3.4");

    // Refused before anything changes: a skipped minor version.
    assert_refused(
        &cluster,
        &run,
        "3.6.15",
        &[],
        "Refuse a skipped minor version",
    );

    // Check mode: nothing installed, nothing restarted.
    let before = pids(&cluster);
    let out = run.upgrade("3.5.25", &["--check"]);
    out.assert_success();
    assert_eq!(pids(&cluster), before, "check mode restarted a member");
    assert!(!bin_dir(&cluster, 0).join("etcd-3.5.25").exists());

    let writer = Writer::start(cluster.etcdctl(), cluster.endpoints(&MEMBERS), "/writer/");
    assert_step(&cluster, &run, "3.5.25", "3.5", &[]);
    assert_refused(
        &cluster,
        &run,
        "3.6.15",
        &[],
        "Refuse 3.5 below 3.5.26 to 3.6",
    );
    assert_step(&cluster, &run, "3.5.30", "3.5", &[]);
    assert_step(&cluster, &run, "3.6.15", "3.6", &[]);

    // Again to the version running: nothing restarted.
    let before = pids(&cluster);
    run.upgrade("3.6.15", &[]).assert_success();
    assert_eq!(pids(&cluster), before, "a second run restarted a member");

    // Back to 3.5: refused without etcd_upgrade_allow_downgrade; with it, etcd's
    // downgrade (check mode first: nothing restarted, no downgrade enabled).
    assert_refused(
        &cluster,
        &run,
        "3.5.30",
        &[],
        "Refuse a downgrade unless it is allowed",
    );
    let allow = ["-e", "etcd_upgrade_allow_downgrade=true"];
    let before = pids(&cluster);
    run.upgrade("3.5.30", &[&allow[..], &["--check"]].concat())
        .assert_success();
    assert_eq!(pids(&cluster), before, "check mode restarted a member");
    for i in MEMBERS {
        assert_eq!(
            cluster_version(&cluster, i),
            "3.6.0",
            "check mode downgraded m{i}"
        );
    }
    assert_step(&cluster, &run, "3.5.30", "3.5", &allow);
    // a patch downgrade within 3.5
    assert_step(&cluster, &run, "3.5.25", "3.5", &allow);
    // 3.5 cannot go back to 3.4
    assert_refused(
        &cluster,
        &run,
        START_VERSION,
        &allow,
        "Refuse a downgrade etcd does not support",
    );
    for i in MEMBERS {
        assert_eq!(server_version(&cluster, i), "3.5.25", "m{i}");
    }

    let report = writer.finish();
    report.assert_nothing_lost(&cluster, &MEMBERS, "/writer/");
}

/// v2 store content: keys written through the v2 API (enabled on every
/// member) stop the upgrade to 3.6 before anything changes.
fn v2_content_refuses_3_6(engine: Engine) {
    let cluster = ServiceCluster::start3();
    use_binary_links(&cluster);
    for i in MEMBERS {
        let env = &cluster.member(i).env_file;
        let text = std::fs::read_to_string(env).unwrap();
        std::fs::write(env, format!("{text}ETCD_ENABLE_V2=true\n")).unwrap();
    }
    let sshd = Sshd::start();
    let ansible = Ansible::new();
    let d = cluster.dir().display().to_string();
    let vars = [
        format!("etcd_bin_dir=\"{d}/etcd-bin/{{{{ etcd_member_name }}}}\""),
        "etcd_curl_path=/usr/bin/curl".to_string(),
    ];
    let vars: Vec<&str> = vars.iter().map(String::as_str).collect();
    let hosts = cluster.write_inventory(&ansible, &sshd, "hosts.ini", &MEMBERS, &vars);
    let run = Run {
        engine: &engine,
        ansible: &ansible,
        hosts: &hosts,
    };
    // The upgrade restarts every member, now with the v2 API enabled.
    run.upgrade("3.5.30", &[]).assert_success();
    let m = cluster.member(0);
    let mut stream = TcpStream::connect((m.ip, harness::CLIENT_PORT)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = "value=v2-data";
    write!(
        stream,
        "PUT /v2/keys/legacy HTTP/1.0\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        m.ip,
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.contains("v2-data"), "v2 write failed: {reply}");
    assert_refused(
        &cluster,
        &run,
        "3.6.15",
        &[],
        "Refuse 3.6 while the v2 store holds data",
    );
    for i in MEMBERS {
        assert_eq!(server_version(&cluster, i), "3.5.30", "m{i}");
    }
}

#[test]
fn v2_content_refuses_3_6_ansible_playbook() {
    v2_content_refuses_3_6(Engine::AnsiblePlaybook);
}

#[test]
fn v2_content_refuses_3_6_etcd_agent() {
    v2_content_refuses_3_6(Engine::agent_required());
}

#[test]
fn upgrade_3_4_to_3_6_ansible_playbook() {
    upgrade_3_4_to_3_6(Engine::AnsiblePlaybook);
}

#[test]
fn upgrade_3_4_to_3_6_etcd_agent() {
    upgrade_3_4_to_3_6(Engine::agent_required());
}
