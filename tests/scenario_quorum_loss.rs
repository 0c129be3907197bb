//! Scenario 3: quorum loss. 10,000 keys, a backup with etcd_backup.yml; two
//! members killed and their data dirs moved away; etcd_restore.yml brings
//! back three healthy members (a new cluster) with all 10,000 keys.

use harness::{repo_root, Ansible, Engine, ServiceCluster, Sshd, DEFAULT_TIMEOUT};
use serde_json::Value;

const KEYS: usize = 10_000;

fn db_ops(name: &str) -> std::path::PathBuf {
    repo_root().join("playbooks/db-operations").join(name)
}

/// `backup_engine` runs etcd_backup.yml, `engine` etcd_restore.yml.
fn quorum_loss_backup_and_restore(backup_engine: Engine, engine: Engine) {
    let cluster = ServiceCluster::start3();
    let sshd = Sshd::start();
    let ansible = Ansible::new();
    let hosts = cluster.write_inventory(&ansible, &sshd, "hosts.ini", &[0, 1, 2], &[]);
    let all = [0, 1, 2];
    cluster.put_many("/data/", KEYS);

    // Backup: check mode writes nothing, then a real one.
    backup_engine
        .playbook(&ansible, &hosts, &db_ops("etcd_backup.yml"), &["--check"])
        .assert_success();
    assert!(
        cluster.backups().is_empty(),
        "check mode wrote {:?}",
        cluster.backups()
    );
    let out = backup_engine.playbook(&ansible, &hosts, &db_ops("etcd_backup.yml"), &[]);
    out.assert_success();
    let backups = cluster.backups();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let status = cluster.etcdctl().snapshot_status(&backups[0]);
    assert!(
        status["totalKey"].as_u64().unwrap() >= KEYS as u64,
        "{status}"
    );
    let old_cluster_id = cluster.status(0).unwrap()["Status"]["header"]["cluster_id"].clone();

    // Disaster, step 1: one member gone with its data; a backup still works
    // (from a member that answers), and retention keeps only the newest.
    let wipe = |i: usize| {
        cluster.kill9(i);
        let data = &cluster.member(i).data_dir;
        std::fs::rename(data, data.with_extension("lost")).unwrap();
    };
    wipe(2);
    cluster.put("/data-late/key", "written with one member down");
    let out = backup_engine.playbook(
        &ansible,
        &hosts,
        &db_ops("etcd_backup.yml"),
        &["-e", "etcd_backup_keep=1"],
    );
    out.assert_success();
    let newer = cluster.backups();
    assert_eq!(
        newer.len(),
        1,
        "retention 1 must leave one snapshot: {newer:?}"
    );
    assert_ne!(newer[0], backups[0], "the newest snapshot must be kept");
    let backups = newer;

    // Step 2: a second member gone: quorum lost.
    wipe(1);
    assert!(
        !cluster.healthy(&[0]),
        "one member of three cannot be healthy"
    );
    let survivor = cluster.pid(0);

    let snapshot = format!("etcd_restore_snapshot={}", backups[0].display());
    let expect = format!("etcd_restore_expected_keys={KEYS}");
    let args = [
        "-e",
        snapshot.as_str(),
        "-e",
        expect.as_str(),
        "-e",
        "etcd_restore_key_prefix=/data/",
    ];

    // Check mode: nothing stopped, nothing restored.
    let mut check = args.to_vec();
    check.push("--check");
    engine
        .playbook(&ansible, &hosts, &db_ops("etcd_restore.yml"), &check)
        .assert_success();
    assert_eq!(cluster.pid(0), survivor, "check mode stopped the survivor");
    for i in all {
        assert!(
            cluster.moved_aside(i).is_empty(),
            "check mode moved m{i}'s data dir"
        );
    }
    assert!(!cluster.member(1).data_dir.exists());

    let out = engine.playbook(&ansible, &hosts, &db_ops("etcd_restore.yml"), &args);
    out.assert_success();
    cluster.wait_healthy(&all, DEFAULT_TIMEOUT);
    let members = cluster.member_list();
    assert_eq!(members.len(), 3, "{members:?}");
    for i in all {
        assert!(cluster.pid(i).is_some(), "m{i} not running");
    }
    // A new cluster identity, every key on every member.
    let new_cluster_id = cluster.status(0).unwrap()["Status"]["header"]["cluster_id"].clone();
    assert_ne!(new_cluster_id, Value::Null);
    assert_ne!(
        new_cluster_id, old_cluster_id,
        "restore must create a new cluster"
    );
    assert_eq!(cluster.key_count("/data/"), KEYS as u64);
    assert_eq!(
        cluster
            .get_at(&cluster.endpoints(&[1]), "/data-late/key")
            .as_deref(),
        Some("written with one member down")
    );
    for i in all {
        assert_eq!(cluster.local_key_count(i, "/data/"), KEYS as u64, "m{i}");
    }
    let last = format!("/data/{:08}", KEYS - 1);
    assert_eq!(
        cluster.get_at(&cluster.endpoints(&[2]), &last).as_deref(),
        Some(format!("value-{}", KEYS - 1).as_str())
    );
    // The survivor's old data dir was moved aside, not deleted.
    assert_eq!(
        cluster.moved_aside(0).len(),
        1,
        "{:?}",
        cluster.moved_aside(0)
    );
    // The directory the playbook made for each member's snapshot copy
    // (etcd_restore_remote_dir) is private: the copy holds every key. The
    // copy itself is removed.
    for i in all {
        let copy_dir = cluster.dir().join("restore").join(&cluster.member(i).name);
        let mode = std::fs::metadata(&copy_dir)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777);
        assert_eq!(mode.ok(), Some(0o700), "mode of {}", copy_dir.display());
        let left: Vec<_> = std::fs::read_dir(&copy_dir).unwrap().flatten().collect();
        assert!(left.is_empty(), "snapshot copy left behind: {left:?}");
    }
    // Writes work on the restored cluster.
    cluster.put("/after/restore", "yes");
}

#[test]
fn quorum_loss_backup_and_restore_ansible_playbook() {
    quorum_loss_backup_and_restore(Engine::AnsiblePlaybook, Engine::AnsiblePlaybook);
}

/// The restore under etcd-agent after a backup taken with ansible-playbook.
#[test]
fn quorum_loss_restore_etcd_agent_after_ansible_backup() {
    quorum_loss_backup_and_restore(Engine::AnsiblePlaybook, Engine::agent_required());
}

/// Backup and restore both under etcd-agent.
#[test]
fn quorum_loss_backup_and_restore_etcd_agent() {
    quorum_loss_backup_and_restore(Engine::agent_required(), Engine::agent_required());
}
