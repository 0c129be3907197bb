//! The maintenance playbooks on a 3-member cluster whose members run under
//! etcd-svc, driven over the test sshd, under both engines. The cluster is
//! judged with etcdctl, not by the playbooks' word.
//!
//! 1. NOSPACE: members restarted with a small `--quota-backend-bytes` are
//!    filled until writes fail with `database space exceeded`; the recovery
//!    playbook refuses while a member is down, changes nothing in check mode,
//!    then brings writes back: no alarm left, every key there, smaller files.
//! 2. Rolling defragmentation under a continuous writer that fails over
//!    between endpoints: no failed write, exactly one leader change (the
//!    explicit transfer before the leader's turn), every file smaller, the
//!    sizes before and after reported.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;

use harness::{
    repo_root, wait_until, Ansible, Engine, ServiceCluster, Sshd, Writer, DEFAULT_TIMEOUT,
};
use serde_json::{json, Value};

const ALL: [usize; 3] = [0, 1, 2];

fn playbook(name: &str) -> std::path::PathBuf {
    repo_root().join("playbooks/db-operations").join(name)
}

/// One put of a `size`-byte value through etcd's JSON gateway (one process
/// per put with etcdctl would be slow); the response body if etcd refused it.
fn put_big(endpoint: &str, key: &str, size: usize, fill: char) -> Result<(), String> {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let value: String = std::iter::repeat_n(fill, size).collect();
    let body = json!({"key": b64(key.as_bytes()), "value": b64(value.as_bytes())}).to_string();
    let host = endpoint.trim_start_matches("http://");
    let (status, rest) = wait_until("the JSON gateway to answer", DEFAULT_TIMEOUT, || {
        let mut s = TcpStream::connect(host).ok()?;
        write!(
            s,
            "POST /v3/kv/put HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .ok()?;
        let mut response = String::new();
        s.read_to_string(&mut response).ok()?;
        let (head, rest) = response.split_once("\r\n\r\n")?;
        Some((head.lines().next()?.to_string(), rest.to_string()))
    });
    if status.contains(" 200") {
        Ok(())
    } else {
        Err(rest)
    }
}

fn db_sizes(cluster: &ServiceCluster) -> Vec<i64> {
    ALL.iter()
        .map(|&i| {
            cluster
                .etcdctl()
                .status_of(&cluster.member(i).client_url())
                .and_then(|s| s.pointer("/Status/dbSize").and_then(Value::as_i64))
                .unwrap_or_else(|| panic!("no status from m{i}"))
        })
        .collect()
}

fn alarms(cluster: &ServiceCluster) -> String {
    cluster
        .etcdctl()
        .retry(&cluster.endpoints(&ALL), &["alarm", "list"], None)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Restarts every member, one at a time, with `ETCD_QUOTA_BACKEND_BYTES`
/// added to its configuration file.
fn restart_with_quota(cluster: &ServiceCluster, quota: u64) {
    for i in ALL {
        cluster.stop_member(i);
        let env = &cluster.member(i).env_file;
        let text = std::fs::read_to_string(env).unwrap();
        std::fs::write(env, format!("{text}ETCD_QUOTA_BACKEND_BYTES={quota}\n")).unwrap();
        cluster.start_member(i);
        cluster.wait_healthy(&ALL, DEFAULT_TIMEOUT);
    }
}

fn nospace_recovery(engine: Engine) {
    let cluster = ServiceCluster::start3();
    restart_with_quota(&cluster, 3 * 1024 * 1024);
    let sshd = Sshd::start();
    let ansible = Ansible::new();
    let hosts = cluster.write_inventory(&ansible, &sshd, "hosts.ini", &ALL, &[]);

    cluster.put_many("/keep/", 500);
    let endpoint = cluster.member(0).client_url();
    let error = (0..300)
        .find_map(|n| put_big(&endpoint, &format!("/fill/{}", n % 5), 100_000, 'x').err())
        .expect("the quota was never reached");
    assert!(error.contains("database space exceeded"), "{error}");
    wait_until("NOSPACE in etcdctl alarm list", DEFAULT_TIMEOUT, || {
        alarms(&cluster).contains("NOSPACE").then_some(())
    });
    let write = |key: &str| {
        cluster
            .etcdctl()
            .run(&cluster.endpoints(&ALL), &["put", key, "v"], None)
    };
    let refused = write("/before");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("database space exceeded"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let sizes_before = db_sizes(&cluster);
    let keys_before: BTreeSet<String> = cluster
        .keys_at(&cluster.endpoints(&ALL), "/")
        .into_iter()
        .collect();
    assert_eq!(keys_before.len(), 505);

    // A member down: refused, nothing done.
    cluster.stop_member(2);
    let out = engine.playbook(
        &ansible,
        &hosts,
        &playbook("etcd_nospace_recovery.yml"),
        &[],
    );
    out.assert_failure();
    assert!(out.describe().contains("m2"), "{}", out.describe());
    assert!(
        out.result("Compact to the current revision", "m0")
            .is_none(),
        "compacted with a member down:\n{}",
        out.describe()
    );
    cluster.start_member(2);
    cluster.wait_healthy(&[0, 1], DEFAULT_TIMEOUT);
    wait_until("m2 to answer again", DEFAULT_TIMEOUT, || {
        cluster.status(2).map(|_| ())
    });

    // Check mode: still NOSPACE, nothing smaller.
    let out = engine.playbook(
        &ansible,
        &hosts,
        &playbook("etcd_nospace_recovery.yml"),
        &["--check"],
    );
    out.assert_success();
    assert!(alarms(&cluster).contains("NOSPACE"), "check mode disarmed");
    assert!(!write("/before").status.success(), "check mode freed space");

    let out = engine.playbook(
        &ansible,
        &hosts,
        &playbook("etcd_nospace_recovery.yml"),
        &[],
    );
    out.assert_success();
    assert_eq!(alarms(&cluster).trim(), "", "alarms left");
    let ok = write("/after");
    assert!(
        ok.status.success(),
        "write after recovery: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let keys_after: BTreeSet<String> = cluster
        .keys_at(&cluster.endpoints(&ALL), "/")
        .into_iter()
        .collect();
    let missing: Vec<&String> = keys_before.difference(&keys_after).collect();
    assert!(missing.is_empty(), "keys lost: {missing:?}");
    assert!(
        !keys_after
            .iter()
            .any(|k| k.contains("nospace-recovery-probe")),
        "the probe key was left behind"
    );
    let sizes_after = db_sizes(&cluster);
    for i in ALL {
        assert!(
            sizes_after[i] < sizes_before[i] / 2,
            "m{i}: db {} -> {}",
            sizes_before[i],
            sizes_after[i]
        );
    }
    eprintln!("db sizes {sizes_before:?} -> {sizes_after:?}");
}

fn rolling_defrag_under_writer(engine: Engine) {
    let cluster = ServiceCluster::start3();
    let sshd = Sshd::start();
    let ansible = Ansible::new();
    let hosts = cluster.write_inventory(&ansible, &sshd, "hosts.ini", &ALL, &[]);

    // ~3 MB live, written three times: two thirds garbage once compacted.
    let endpoint = cluster.member(0).client_url();
    for round in 0..3u8 {
        for k in 0..30 {
            put_big(
                &endpoint,
                &format!("/big/{k}"),
                100_000,
                (b'a' + round) as char,
            )
            .unwrap();
        }
    }
    cluster.wait_agree(&ALL, "/big/");
    let leader = cluster.wait_leader();
    let term = cluster.raft_term(&ALL);
    let sizes_before = db_sizes(&cluster);

    // Check mode: nothing compacted, defragmented or moved.
    let out = engine.playbook(
        &ansible,
        &hosts,
        &playbook("etcd_defrag.yml"),
        &["--check", "-e", "etcd_defrag_compact=true"],
    );
    out.assert_success();
    assert_eq!(db_sizes(&cluster), sizes_before, "check mode defragmented");
    assert_eq!(cluster.leader(), Some(leader));
    assert_eq!(cluster.raft_term(&ALL), term, "check mode moved leadership");

    let writer = Writer::start(cluster.etcdctl(), cluster.endpoints(&ALL), "/writer/");
    let out = engine.playbook(
        &ansible,
        &hosts,
        &playbook("etcd_defrag.yml"),
        &["-e", "etcd_defrag_compact=true"],
    );
    let report = writer.finish();
    out.assert_success();
    cluster.wait_healthy(&ALL, DEFAULT_TIMEOUT);

    let sizes_after = db_sizes(&cluster);
    for i in ALL {
        assert!(
            sizes_after[i] < sizes_before[i] / 2,
            "m{i}: db {} -> {}",
            sizes_before[i],
            sizes_after[i]
        );
        let name = &cluster.member(i).name;
        let done = out.result_ok("Defragment this member", name);
        let d = &done["defragmented"][0];
        assert!(
            d["db_size_before"].as_i64().unwrap() > d["db_size_after"].as_i64().unwrap(),
            "{done}"
        );
        assert!(d["took_ms"].is_u64(), "{done}");
    }
    assert_eq!(
        cluster.raft_term(&ALL),
        term + 1,
        "expected exactly one leader change"
    );
    assert_ne!(
        cluster.wait_leader(),
        leader,
        "leadership should have moved"
    );

    eprintln!("db sizes {sizes_before:?} -> {sizes_after:?}");
    report.assert_nothing_lost(&cluster, &ALL, "/writer/");
    assert_eq!(cluster.key_count("/big/"), 30);

    // Again: nothing worth defragmenting, no leader change.
    let term = cluster.raft_term(&ALL);
    let out = engine.playbook(&ansible, &hosts, &playbook("etcd_defrag.yml"), &[]);
    out.assert_success();
    for i in ALL {
        let name = &cluster.member(i).name;
        let plan = out.result_ok("Measure the free space of this member", name);
        assert_eq!(plan["changed"], false, "{plan}");
    }
    assert_eq!(
        cluster.raft_term(&ALL),
        term,
        "a second run moved leadership"
    );
}

/// With etcd_nospace_allow_member_down=true and the first host's member
/// stopped (the steps that run once run there): the members that answer are
/// recovered, the alarm is disarmed, writes work.
fn nospace_recovery_with_a_member_down(engine: Engine) {
    let cluster = ServiceCluster::start3();
    restart_with_quota(&cluster, 3 * 1024 * 1024);
    let sshd = Sshd::start();
    let ansible = Ansible::new();
    let hosts = cluster.write_inventory(&ansible, &sshd, "hosts.ini", &ALL, &[]);
    cluster.put_many("/keep/", 100);
    let endpoint = cluster.member(0).client_url();
    (0..300)
        .find_map(|n| put_big(&endpoint, &format!("/fill/{}", n % 5), 100_000, 'x').err())
        .expect("the quota was never reached");
    wait_until("NOSPACE in etcdctl alarm list", DEFAULT_TIMEOUT, || {
        alarms(&cluster).contains("NOSPACE").then_some(())
    });
    let sizes_before = db_sizes(&cluster);
    cluster.stop_member(0);
    let live = cluster.endpoints(&[1, 2]);

    let out = engine.playbook(
        &ansible,
        &hosts,
        &playbook("etcd_nospace_recovery.yml"),
        &["-e", "etcd_nospace_allow_member_down=true"],
    );
    out.assert_success();
    let listed = cluster
        .etcdctl()
        .retry(&live, &["alarm", "list"], None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed.trim(), "", "alarms left");
    let put = cluster.etcdctl().run(&live, &["put", "/after", "v"], None);
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    assert_eq!(cluster.key_count_at(&live, "/keep/"), 100);
    for i in [1, 2] {
        let size = cluster
            .etcdctl()
            .status_of(&cluster.member(i).client_url())
            .and_then(|s| s.pointer("/Status/dbSize").and_then(Value::as_i64))
            .unwrap();
        assert!(
            size < sizes_before[i] / 2,
            "m{i}: {} -> {size}",
            sizes_before[i]
        );
    }
    // The stopped member comes back and catches up.
    cluster.start_member(0);
    cluster.wait_healthy(&ALL, DEFAULT_TIMEOUT);
    cluster.wait_agree(&ALL, "/keep/");
}

#[test]
fn nospace_recovery_with_a_member_down_ansible_playbook() {
    nospace_recovery_with_a_member_down(Engine::AnsiblePlaybook);
}

#[test]
fn nospace_recovery_with_a_member_down_etcd_agent() {
    nospace_recovery_with_a_member_down(Engine::agent_required());
}

#[test]
fn nospace_recovery_ansible_playbook() {
    nospace_recovery(Engine::AnsiblePlaybook);
}

#[test]
fn nospace_recovery_etcd_agent() {
    nospace_recovery(Engine::agent_required());
}

#[test]
fn rolling_defrag_under_writer_ansible_playbook() {
    rolling_defrag_under_writer(Engine::AnsiblePlaybook);
}

#[test]
fn rolling_defrag_under_writer_etcd_agent() {
    rolling_defrag_under_writer(Engine::agent_required());
}
