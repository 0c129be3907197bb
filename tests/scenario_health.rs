//! The health playbook (etcd_healthy.yml) on a cluster whose members run
//! under etcd-svc, under both engines: healthy, then with a member killed
//! (fails, naming that member). Scenario 8 for this playbook: the per-host,
//! per-task outcome and the exit code are the same under `ansible-playbook`
//! and `etcd-agent`.

use harness::{repo_root, Ansible, AnsibleOutput, Engine, ServiceCluster, Sshd};
use serde_json::Value;

fn healthy_playbook() -> std::path::PathBuf {
    repo_root().join("playbooks/db-operations/etcd_healthy.yml")
}

/// (task, host, outcome) of every task result of a run, outcome being
/// `failed`, `skipped`, `changed` or `ok`.
fn outcomes(out: &AnsibleOutput) -> Vec<(String, String, &'static str)> {
    let mut v = Vec::new();
    for t in out.tasks() {
        let name = t
            .pointer("/task/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        for (host, r) in t
            .get("hosts")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let flag = |k: &str| r.get(k).and_then(Value::as_bool).unwrap_or(false);
            let outcome = if flag("failed") {
                "failed"
            } else if flag("skipped") {
                "skipped"
            } else if flag("changed") {
                "changed"
            } else {
                "ok"
            };
            v.push((name.clone(), host.clone(), outcome));
        }
    }
    v.sort();
    v
}

/// Runs the health playbook healthy, then with member 2 killed; returns both runs.
fn healthy_then_dead_member(
    engine: &Engine,
    cluster: &ServiceCluster,
    ansible: &Ansible,
    hosts: &std::path::Path,
) -> (AnsibleOutput, AnsibleOutput) {
    let ok = engine.playbook(ansible, hosts, &healthy_playbook(), &[]);
    ok.assert_success();
    for m in &cluster.members()[..3] {
        let r = ok.result_ok("Check etcd cluster health", &m.name);
        assert_eq!(r["healthy"], true, "{r}");
    }
    let dead = cluster.member_info(2).expect("m2 listed").id_hex;
    cluster.kill9(2);
    let bad = engine.playbook(ansible, hosts, &healthy_playbook(), &[]);
    cluster.start_member(2);
    cluster.wait_healthy(&[0, 1, 2], harness::DEFAULT_TIMEOUT);
    bad.assert_failure();
    bad.expect_exit(2);
    let line = format!("member {dead} is unreachable");
    for m in &cluster.members()[..2] {
        let r = bad.result_ok("Check etcd cluster health", &m.name);
        assert_eq!(r["failed"], true, "{r}");
        assert!(
            r.to_string().contains(&line),
            "{line:?} not in the result of {}: {r}",
            m.name
        );
    }
    (ok, bad)
}

fn setup() -> (ServiceCluster, Sshd, Ansible, std::path::PathBuf) {
    let cluster = ServiceCluster::start3();
    let sshd = Sshd::start();
    let ansible = Ansible::new();
    let hosts = cluster.write_inventory(
        &ansible,
        &sshd,
        "hosts.ini",
        &[0, 1, 2],
        &["etcd_health_wait_timeout=0"],
    );
    (cluster, sshd, ansible, hosts)
}

#[test]
fn healthy_playbook_ansible_playbook() {
    let (cluster, _sshd, ansible, hosts) = setup();
    let (ok, _) = healthy_then_dead_member(&Engine::AnsiblePlaybook, &cluster, &ansible, &hosts);
    assert!(
        ok.stdout.contains("cluster is healthy"),
        "{}",
        ok.describe()
    );
}

#[test]
fn healthy_playbook_etcd_agent() {
    let (cluster, _sshd, ansible, hosts) = setup();
    healthy_then_dead_member(&Engine::agent_required(), &cluster, &ansible, &hosts);
}

#[test]
fn healthy_playbook_same_outcome_under_both_engines() {
    let (cluster, _sshd, ansible, hosts) = setup();
    let (a_ok, a_bad) =
        healthy_then_dead_member(&Engine::AnsiblePlaybook, &cluster, &ansible, &hosts);
    let (g_ok, g_bad) =
        healthy_then_dead_member(&Engine::agent_required(), &cluster, &ansible, &hosts);
    assert_eq!(outcomes(&a_ok), outcomes(&g_ok), "healthy run differs");
    assert_eq!(
        outcomes(&a_bad),
        outcomes(&g_bad),
        "run with a dead member differs"
    );
    assert_eq!(a_bad.status.code(), g_bad.status.code());
    for m in &cluster.members()[..3] {
        assert_eq!(
            a_ok.stats(&m.name),
            g_ok.stats(&m.name),
            "recap of {}",
            m.name
        );
        assert_eq!(
            a_bad.stats(&m.name),
            g_bad.stats(&m.name),
            "recap of {}",
            m.name
        );
    }
}
