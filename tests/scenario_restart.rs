//! Scenarios 1 and 2: the rolling-restart playbook on a 3-member cluster
//! whose members run under etcd-svc, driven over the test sshd.
//!
//! 1. Under a continuous writer: every member gets a new pid, the leader is
//!    restarted last, the raft term grows by exactly one (the single,
//!    explicit leadership transfer), no write fails, and every acknowledged
//!    key is readable afterwards.
//! 2. A member that never comes back: the run fails and stops there; the
//!    members after it keep their pids.

use harness::{
    process_start_ticks, repo_root, Ansible, Engine, ServiceCluster, Sshd, Writer, DEFAULT_TIMEOUT,
};

fn restart_playbook() -> std::path::PathBuf {
    repo_root().join("playbooks/db-operations/etcd_restart.yml")
}

fn rolling_restart_under_writer(engine: Engine) {
    let cluster = ServiceCluster::start3();
    let sshd = Sshd::start();
    let ansible = Ansible::new();
    let hosts = cluster.write_inventory(&ansible, &sshd, "hosts.ini", &[0, 1, 2], &[]);
    let all = [0, 1, 2];

    let leader = cluster.wait_leader();
    let pids: Vec<u32> = cluster
        .pids(3)
        .into_iter()
        .map(|p| p.expect("running"))
        .collect();
    let term = cluster.raft_term(&all);

    // Check mode: nothing restarted, leadership not moved.
    let out = engine.playbook(&ansible, &hosts, &restart_playbook(), &["--check"]);
    out.assert_success();
    assert_eq!(
        cluster.pids(3),
        pids.iter().map(|&p| Some(p)).collect::<Vec<_>>()
    );
    assert_eq!(cluster.leader(), Some(leader));
    assert_eq!(
        cluster.raft_term(&all),
        term,
        "check mode changed the raft term"
    );

    let writer = Writer::start(cluster.etcdctl(), cluster.endpoints(&all), "/writer/");
    let out = engine.playbook(&ansible, &hosts, &restart_playbook(), &[]);
    let report = writer.finish();
    out.assert_success();
    cluster.wait_healthy(&all, DEFAULT_TIMEOUT);

    // Every member restarted: a new pid, and the old leader's is the newest.
    let new: Vec<u32> = cluster
        .pids(3)
        .into_iter()
        .map(|p| p.expect("member running after the restart"))
        .collect();
    for i in all {
        assert_ne!(new[i], pids[i], "m{i} was not restarted");
    }
    let started: Vec<u64> = new.iter().map(|&p| process_start_ticks(p)).collect();
    let last = (0..3).max_by_key(|&i| started[i]).unwrap();
    assert_eq!(
        last, leader,
        "the leader m{leader} must be restarted last (start ticks {started:?})"
    );

    // Exactly one leader change in the whole run: the explicit transfer.
    let term_after = cluster.raft_term(&all);
    assert_eq!(
        term_after,
        term + 1,
        "raft term went from {term} to {term_after}: expected exactly one leader change"
    );
    assert_ne!(
        cluster.wait_leader(),
        leader,
        "leadership should have moved away from m{leader}"
    );

    // No failed write, and every acknowledged key is there.
    report.assert_nothing_lost(&cluster, &all, "/writer/");
}

fn member_that_never_comes_back(engine: Engine) {
    let cluster = ServiceCluster::start3();
    let sshd = Sshd::start();
    let ansible = Ansible::new();
    let hosts = cluster.write_inventory(&ansible, &sshd, "hosts.ini", &[0, 1, 2], &[]);

    let leader = cluster.wait_leader();
    let pids = cluster.pids(3);
    // Followers are restarted first, in inventory order: break the first one.
    let bad = (0..3).find(|&i| i != leader).unwrap();
    let env = cluster.member(bad).env_file.clone();
    let text = std::fs::read_to_string(&env).unwrap();
    std::fs::write(&env, format!("{text}ETCD_LISTEN_CLIENT_URLS=not-a-url\n")).unwrap();

    let out = engine.playbook(
        &ansible,
        &hosts,
        &restart_playbook(),
        &["-e", "etcd_health_wait_timeout=15"],
    );
    out.assert_failure();
    out.expect_exit(2);
    let name = &cluster.member(bad).name;
    let wait = out.result_ok("Wait for the cluster to be healthy again", name);
    assert_eq!(wait["failed"], true, "{wait}");

    // The broken member is down; the run stopped there: the others untouched.
    assert_eq!(cluster.pid(bad), None, "m{bad} should be down");
    for i in (0..3).filter(|&i| i != bad) {
        assert_eq!(
            cluster.pid(i),
            pids[i],
            "m{i} was touched after the failure"
        );
    }
    assert_eq!(cluster.leader(), Some(leader), "leadership moved");
    for i in (0..3).filter(|&i| i != bad) {
        let name = &cluster.member(i).name;
        assert!(
            out.result("Stop etcd", name).is_none(),
            "Stop etcd ran on {name} after the failure:\n{}",
            out.describe()
        );
    }
}

#[test]
fn rolling_restart_under_writer_ansible_playbook() {
    rolling_restart_under_writer(Engine::AnsiblePlaybook);
}

#[test]
fn member_that_never_comes_back_ansible_playbook() {
    member_that_never_comes_back(Engine::AnsiblePlaybook);
}

#[test]
fn rolling_restart_under_writer_etcd_agent() {
    rolling_restart_under_writer(Engine::agent_required());
}

#[test]
fn member_that_never_comes_back_etcd_agent() {
    member_that_never_comes_back(Engine::agent_required());
}
