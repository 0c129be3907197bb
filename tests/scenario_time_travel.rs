//! Scenario 4: a member that travelled back in time (its data dir replaced by
//! an older copy, as after restoring a VM snapshot) panics with
//! `tocommit(N) is out of range [lastIndex(M)]`; etcd_replace_member.yml
//! gives three healthy members again, the replaced one with a new member id,
//! all agreeing on revision and key count.

use harness::{repo_root, Ansible, Engine, ServiceCluster, Sshd, DEFAULT_TIMEOUT};

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .expect("run cp");
    assert!(
        out.status.success(),
        "cp -a failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn time_travel_then_replace(engine: Engine) {
    let cluster = ServiceCluster::start3();
    let sshd = Sshd::start();
    let ansible = Ansible::new();
    let hosts = cluster.write_inventory(&ansible, &sshd, "hosts.ini", &[0, 1, 2], &[]);
    let all = [0, 1, 2];
    cluster.put_many("/before/", 500);

    let leader = cluster.wait_leader();
    let f = (0..3).find(|&i| i != leader).unwrap();
    let m = cluster.member(f).clone();
    let old_id = cluster.member_info(f).expect("member").id;

    // A healthy member is not replaced (unless forced): nothing changes.
    let replace = repo_root().join("playbooks/db-operations/etcd_replace_member.yml");
    let target = format!("etcd_replace_host={}", m.name);
    let pid = cluster.pid(f);
    let out = engine.playbook(&ansible, &hosts, &replace, &["-e", &target]);
    out.assert_failure();
    assert!(
        out.stdout.contains("is a healthy member"),
        "{}",
        out.describe()
    );
    assert_eq!(cluster.pid(f), pid);
    assert_eq!(cluster.member_info(f).map(|i| i.id), Some(old_id));

    // The "VM snapshot": a copy of the data dir taken while the member is stopped.
    cluster.stop_member(f);
    let copy = m.data_dir.with_extension("vm-snapshot");
    copy_dir(&m.data_dir, &copy);
    cluster.start_member(f);
    cluster.wait_healthy(&all, DEFAULT_TIMEOUT);

    // The cluster moves on: a few thousand puts (and the member sees them).
    cluster.put_many("/after/", 3000);
    for i in 0..200 {
        cluster.put(&format!("/single/{i:04}"), "x");
    }
    cluster.wait_agree(&all, "");

    // Back in time: the old copy, started while the leader is unchanged.
    cluster.stop_member(f);
    std::fs::rename(&m.data_dir, m.data_dir.with_extension("newer")).unwrap();
    std::fs::rename(&copy, &m.data_dir).unwrap();
    assert_eq!(cluster.leader(), Some(leader), "the leader changed");
    let started = std::time::Instant::now();
    cluster.start_member(f);
    let panicked = harness::poll_until(DEFAULT_TIMEOUT, || {
        let log = std::fs::read_to_string(&m.log).unwrap_or_default();
        (log.contains("tocommit(") && log.contains("is out of range [lastIndex(")).then_some(())
    });
    assert!(
        panicked.is_some(),
        "m{f} did not panic with tocommit(N) is out of range:\n{}",
        m.log_tail(40)
    );
    eprintln!(
        "m{f} panicked with tocommit out of range {:.2} s after its start",
        started.elapsed().as_secs_f64()
    );
    harness::wait_until("the panicked member to exit", DEFAULT_TIMEOUT, || {
        cluster.pid(f).is_none().then_some(())
    });
    assert_eq!(cluster.leader(), Some(leader));

    // Check mode: the member stays as it is (same id, still down, env untouched).
    let env_before = std::fs::read_to_string(&m.env_file).unwrap();
    engine
        .playbook(&ansible, &hosts, &replace, &["-e", &target, "--check"])
        .assert_success();
    assert_eq!(cluster.member_info(f).map(|i| i.id), Some(old_id));
    assert_eq!(cluster.pid(f), None);
    assert_eq!(std::fs::read_to_string(&m.env_file).unwrap(), env_before);

    let out = engine.playbook(&ansible, &hosts, &replace, &["-e", &target]);
    out.assert_success();
    cluster.wait_healthy(&all, DEFAULT_TIMEOUT);
    let members = cluster.member_list();
    assert_eq!(members.len(), 3, "{members:?}");
    let new = cluster.member_info(f).expect("replaced member listed");
    assert_ne!(new.id, old_id, "the replaced member must have a new id");
    assert_eq!(new.name, m.name);
    assert!(cluster.pid(f).is_some());
    assert_eq!(cluster.moved_aside(f).len(), 1, "old data dir moved aside");
    let env = std::fs::read_to_string(&m.env_file).unwrap();
    assert!(env.contains("ETCD_INITIAL_CLUSTER_STATE=existing"), "{env}");

    // Everyone agrees on revision and key count, served locally.
    cluster.put("/after/replace", "1");
    let (rev, count) = cluster.wait_agree(&all, "");
    assert_eq!(count, 500 + 3000 + 200 + 1, "revision {rev}");
    assert_eq!(cluster.local_key_count(f, "/after/"), 3001);
}

#[test]
fn time_travel_then_replace_ansible_playbook() {
    time_travel_then_replace(Engine::AnsiblePlaybook);
}

#[test]
fn time_travel_then_replace_etcd_agent() {
    time_travel_then_replace(Engine::agent_required());
}
