//! Scenario 7: health, backup and rolling restart against a TLS cluster with
//! client-certificate authentication (etcd_ca_cert, etcd_client_cert,
//! etcd_client_key given to the playbooks).

use harness::{repo_root, Ansible, Engine, ServiceCluster, Sshd, DEFAULT_TIMEOUT};

fn db_ops(name: &str) -> std::path::PathBuf {
    repo_root().join("playbooks/db-operations").join(name)
}

fn tls_health_backup_restart(engine: Engine) {
    let cluster = ServiceCluster::start_tls3();
    let sshd = Sshd::start();
    let ansible = Ansible::new();
    let hosts = cluster.write_inventory(&ansible, &sshd, "hosts.ini", &[0, 1, 2], &[]);
    let all = [0, 1, 2];
    assert!(cluster.member(0).client_url().starts_with("https://"));
    cluster.put_many("/tls/", 200);

    let out = engine.playbook(&ansible, &hosts, &db_ops("etcd_healthy.yml"), &[]);
    out.assert_success();
    assert!(
        out.stdout.contains("cluster is healthy"),
        "{}",
        out.describe()
    );

    // The runbook's helper scripts, installed by the etcd_helpers role
    // (check mode first: nothing installed).
    let helpers = repo_root().join("playbooks/etcd_helpers.yml");
    engine
        .playbook(&ansible, &hosts, &helpers, &["--check"])
        .assert_success();
    assert!(!cluster.dir().join("bin/m1/etcd-health.sh").exists());
    engine
        .playbook(
            &ansible,
            &hosts,
            &repo_root().join("playbooks/etcd_helpers.yml"),
            &[],
        )
        .assert_success();
    let health = sshd.ssh_ok(&format!(
        "{}/bin/m1/etcd-health.sh",
        cluster.dir().display()
    ));
    assert_eq!(health.matches(":2379 is healthy").count(), 3, "{health}");
    assert!(
        health.trim_end().ends_with("cluster is healthy"),
        "{health}"
    );
    let list = sshd.ssh_ok(&format!(
        "{}/bin/m2/etcdctl3.sh member list",
        cluster.dir().display()
    ));
    assert_eq!(list.lines().count(), 3, "{list}");

    engine
        .playbook(&ansible, &hosts, &db_ops("etcd_backup.yml"), &[])
        .assert_success();
    let backups = cluster.backups();
    assert_eq!(backups.len(), 1, "{backups:?}");
    cluster.etcdctl().snapshot_status(&backups[0]);

    let leader = cluster.wait_leader();
    let pids = cluster.pids(3);
    let term = cluster.raft_term(&all);
    engine
        .playbook(&ansible, &hosts, &db_ops("etcd_restart.yml"), &[])
        .assert_success();
    cluster.wait_healthy(&all, DEFAULT_TIMEOUT);
    for i in all {
        let pid = cluster.pid(i);
        assert!(pid.is_some() && pid != pids[i], "m{i} not restarted");
    }
    assert_eq!(
        cluster.raft_term(&all),
        term + 1,
        "exactly one leader change"
    );
    assert_ne!(cluster.wait_leader(), leader);
    assert_eq!(cluster.key_count("/tls/"), 200);
}

#[test]
fn tls_health_backup_restart_ansible_playbook() {
    tls_health_backup_restart(Engine::AnsiblePlaybook);
}

#[test]
fn tls_health_backup_restart_etcd_agent() {
    tls_health_backup_restart(Engine::agent_required());
}
