//! Scenario 6: bootstrap a fresh cluster with playbooks/etcd_bootstrap.yml
//! (env files written by the playbook, members started through etcd-svc),
//! then the health and backup playbooks against it.

use harness::{repo_root, Ansible, Engine, ServiceCluster, ServiceOptions, Sshd, DEFAULT_TIMEOUT};

fn bootstrap_then_health_and_backup(engine: Engine, with_backup: bool) {
    bootstrap(engine, false, with_backup);
}

fn bootstrap(engine: Engine, tls: bool, with_backup: bool) {
    let cluster = ServiceCluster::start(ServiceOptions { members: 0, tls });
    let sshd = Sshd::start();
    let ansible = Ansible::new();
    let hosts = cluster.write_inventory(&ansible, &sshd, "hosts.ini", &[0, 1, 2], &[]);
    let bootstrap = repo_root().join("playbooks/etcd_bootstrap.yml");

    // Check mode changes nothing: no env file, no member.
    let out = engine.playbook(&ansible, &hosts, &bootstrap, &["--check"]);
    out.assert_success();
    for i in 0..3 {
        assert!(
            !cluster.member(i).env_file.exists(),
            "check mode wrote {}",
            cluster.member(i).env_file.display()
        );
        assert_eq!(cluster.pid(i), None);
    }

    let out = engine.playbook(&ansible, &hosts, &bootstrap, &[]);
    out.assert_success();
    cluster.wait_healthy(&[0, 1, 2], DEFAULT_TIMEOUT);
    if tls {
        let env = std::fs::read_to_string(&cluster.member(1).env_file).unwrap();
        assert!(env.contains("ETCD_CLIENT_CERT_AUTH=true"), "{env}");
        assert!(env.contains("ETCD_PEER_CLIENT_CERT_AUTH=true"), "{env}");
        assert!(env.contains("ETCD_INITIAL_CLUSTER=m0=https://"), "{env}");
    }
    let members = cluster.member_list();
    assert_eq!(members.len(), 3, "{members:?}");
    for i in 0..3 {
        assert!(cluster.pid(i).is_some(), "m{i} not running under etcd-svc");
        let info = cluster.member_info(i).expect("member in member list");
        assert_eq!(info.name, cluster.member(i).name);
    }
    cluster.put("/bootstrap/hello", "world");
    assert_eq!(
        cluster
            .get_at(&cluster.endpoints(&[2]), "/bootstrap/hello")
            .as_deref(),
        Some("world")
    );

    // Running it again on the running cluster changes nothing.
    let pids = cluster.pids(3);
    let out = engine.playbook(&ansible, &hosts, &bootstrap, &[]);
    out.assert_success();
    assert_eq!(cluster.pids(3), pids);

    let healthy = repo_root().join("playbooks/db-operations/etcd_healthy.yml");
    let out = engine.playbook(&ansible, &hosts, &healthy, &[]);
    out.assert_success();

    if !with_backup {
        return;
    }
    let backup = repo_root().join("playbooks/db-operations/etcd_backup.yml");
    engine
        .playbook(&ansible, &hosts, &backup, &[])
        .assert_success();
    let backups = cluster.backups();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let status = cluster.etcdctl().snapshot_status(&backups[0]);
    assert!(status["revision"].as_i64().unwrap() >= 2, "{status}");
}

#[test]
fn bootstrap_then_health_and_backup_ansible_playbook() {
    bootstrap_then_health_and_backup(Engine::AnsiblePlaybook, true);
}

#[test]
fn bootstrap_then_health_and_backup_etcd_agent() {
    bootstrap_then_health_and_backup(Engine::agent_required(), true);
}

/// Bootstrap with TLS: the playbook writes the members' certificate settings.
#[test]
fn bootstrap_tls_then_health_ansible_playbook() {
    bootstrap(Engine::AnsiblePlaybook, true, false);
}

#[test]
fn bootstrap_tls_then_health_etcd_agent() {
    bootstrap(Engine::agent_required(), true, false);
}
