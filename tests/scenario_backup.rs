//! Backup under quorum loss: a 3-member cluster loses one member (the
//! backup comes from the first healthy one, without warning), then a
//! second; no
//! member is healthy any more, but the survivor still answers, and
//! etcd_backup.yml takes its snapshot from it (saying the snapshot may lag
//! the last committed writes), under both engines. The fetched snapshot is
//! checked with etcdctl (status) and by restoring it into a fresh member
//! that must serve every key written before the loss. On the controller,
//! retention (`etcd_backup_keep=1`) never removes the snapshot just fetched
//! and leaves alone a file stamped in the future and one that does not
//! verify (they would otherwise outrank or replace the good copy).

use harness::{
    poll_until, repo_root, wait_until, Ansible, Cluster, ClusterOptions, Engine, MemberStart,
    ServiceCluster, Sshd, DEFAULT_TIMEOUT,
};
use std::process::Command;

const KEYS: usize = 500;

fn backup_without_quorum(engine: Engine) {
    let cluster = ServiceCluster::start3();
    let sshd = Sshd::start();
    let ansible = Ansible::new();
    let hosts = cluster.write_inventory(&ansible, &sshd, "hosts.ini", &[0, 1, 2], &[]);
    cluster.put_many("/before/", KEYS);
    cluster.put("/before/last", "written before the loss");

    let backup = repo_root().join("playbooks/db-operations/etcd_backup.yml");
    // Files that retention must neither count nor remove.
    std::fs::create_dir_all(cluster.backup_dir()).unwrap();
    let future = cluster
        .backup_dir()
        .join("etcd-snapshot-20301231T000000Z.db");
    std::fs::write(&future, vec![7u8; 1000]).unwrap();
    let corrupt = cluster
        .backup_dir()
        .join("etcd-snapshot-20000101T000000Z.db");
    std::fs::write(&corrupt, vec![0u8; 4096]).unwrap();
    let keep1: &[&str] = &["-e", "etcd_backup_keep=1"];
    let good_backups = || -> Vec<std::path::PathBuf> {
        cluster
            .backups()
            .into_iter()
            .filter(|p| p != &future && p != &corrupt)
            .collect()
    };
    let m1 = cluster.member(1).name.clone();
    let m2 = cluster.member(2).name.clone();

    // One member down, quorum kept: the first healthy member is the
    // source, and no warning.
    cluster.stop_member(0);
    let out = engine.playbook(&ansible, &hosts, &backup, keep1);
    out.assert_success();
    let snap = out.result_ok("Take a snapshot", &m1);
    assert_eq!(snap["failed"], false, "{snap}");
    assert!(
        out.result("Take a snapshot", &m2).is_none(),
        "one source only"
    );
    let warning = out.result_ok(
        "Warn that the snapshot may lag the last committed writes",
        &m1,
    );
    assert_eq!(warning["skipped"], true, "{warning}");
    let first = good_backups();
    assert_eq!(first.len(), 1, "{:?}", cluster.backups());
    assert!(
        future.exists() && corrupt.exists(),
        "retention removed a file it must leave alone"
    );

    // Quorum lost: a second member stops.
    cluster.stop_member(1);
    wait_until("m2 to lose quorum", DEFAULT_TIMEOUT, || {
        (!cluster.healthy(&[2])).then_some(())
    });
    let survivor = cluster.endpoints(&[2])[0].clone();
    assert!(
        poll_until(DEFAULT_TIMEOUT, || cluster.etcdctl().status_of(&survivor)).is_some(),
        "the survivor must still answer its status"
    );

    let out = engine.playbook(&ansible, &hosts, &backup, keep1);
    out.assert_success();
    let warning = out.result_ok(
        "Warn that the snapshot may lag the last committed writes",
        &m2,
    );
    assert!(
        warning["msg"]
            .as_str()
            .is_some_and(|m| m.contains("may lack the last writes")),
        "{warning}"
    );

    // keep=1: the new snapshot replaced the first; the planted files stay.
    let backups = good_backups();
    assert_eq!(backups.len(), 1, "{:?}", cluster.backups());
    assert_ne!(backups, first, "the newest snapshot is the one kept");
    assert!(
        future.exists() && corrupt.exists(),
        "retention removed a file it must leave alone"
    );
    let newest = backups.last().unwrap();
    let status = cluster.etcdctl().snapshot_status(newest);
    assert!(
        status["totalKey"].as_u64().unwrap() > KEYS as u64,
        "{status}"
    );

    // The snapshot holds the keys: restore it (plain etcdctl) into a fresh
    // one-member cluster and read them back.
    let keep = tempfile::tempdir().unwrap();
    let snapshot = keep.path().join("backup.db");
    std::fs::copy(newest, &snapshot).unwrap();
    drop(cluster);
    let mut reader = Cluster::start(ClusterOptions {
        members: 1,
        ..ClusterOptions::default()
    });
    reader.stop(0);
    let restored = reader.dir().join("from-backup");
    let m0 = reader.member(0);
    // The etcd under test's restore tool: etcdutl from 3.5 on, etcdctl on 3.4.
    let out = Command::new(harness::etcdutl_bin().unwrap_or(harness::etcdctl_bin()))
        .env("ETCDCTL_API", "3")
        .args([
            "snapshot",
            "restore",
            snapshot.to_str().unwrap(),
            "--name",
            &m0.name,
            "--data-dir",
            restored.to_str().unwrap(),
            "--initial-cluster",
            &format!("{}={}", m0.name, m0.peer_url()),
            "--initial-cluster-token",
            "from-backup",
            "--initial-advertise-peer-urls",
            &m0.peer_url(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let initial = reader.initial_cluster_for(&[0]);
    reader.start_member_with(
        0,
        MemberStart {
            data_dir: Some(restored),
            initial_cluster: Some(initial),
            ..MemberStart::default()
        },
    );
    reader.wait_member_healthy(0, DEFAULT_TIMEOUT);
    assert_eq!(reader.key_count("/before/"), KEYS as u64 + 1);
    assert_eq!(
        reader.get("/before/last").as_deref(),
        Some("written before the loss")
    );
}

#[test]
fn backup_without_quorum_ansible_playbook() {
    backup_without_quorum(Engine::AnsiblePlaybook);
}

#[test]
fn backup_without_quorum_etcd_agent() {
    backup_without_quorum(Engine::agent_required());
}
