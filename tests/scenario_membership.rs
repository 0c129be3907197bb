//! Scenario 5: grow 3 members to 5 with etcd_add_member.yml (member slots 3
//! and 4), shrink back to 3 with etcd_remove_member.yml; health checked with
//! etcdctl and with etcd_healthy.yml after each step.

use harness::{repo_root, wait_until, Ansible, Engine, ServiceCluster, Sshd, DEFAULT_TIMEOUT};

fn db_ops(name: &str) -> std::path::PathBuf {
    repo_root().join("playbooks/db-operations").join(name)
}

fn grow_to_five_and_shrink_back(engine: Engine) {
    let cluster = ServiceCluster::start3();
    let sshd = Sshd::start();
    let ansible = Ansible::new();
    let five = cluster.write_inventory(&ansible, &sshd, "five.ini", &[0, 1, 2, 3, 4], &[]);
    let three = cluster.write_inventory(&ansible, &sshd, "three.ini", &[0, 1, 2], &[]);
    cluster.put_many("/grow/", 300);

    let add = ["-e", "etcd_add_hosts=m3,m4"];
    let mut check = add.to_vec();
    check.push("--check");
    engine
        .playbook(&ansible, &five, &db_ops("etcd_add_member.yml"), &check)
        .assert_success();
    assert_eq!(cluster.member_list().len(), 3, "check mode added a member");
    assert!(!cluster.member(3).env_file.exists());

    let out = engine.playbook(&ansible, &five, &db_ops("etcd_add_member.yml"), &add);
    out.assert_success();
    for host in ["m3", "m4"] {
        let r = out.result_ok("Add the member to the cluster", host);
        assert_eq!(r["changed"], true, "{r}");
        eprintln!("member add of {host}: {} attempt(s)", r["attempts"]);
    }
    let all5 = [0, 1, 2, 3, 4];
    cluster.wait_healthy(&all5, DEFAULT_TIMEOUT);
    let members = cluster.member_list();
    assert_eq!(members.len(), 5, "{members:?}");
    assert!(
        members.iter().all(|m| !m.is_learner && !m.name.is_empty()),
        "{members:?}"
    );
    for i in [3, 4] {
        assert!(cluster.pid(i).is_some(), "m{i} not running");
        assert_eq!(
            cluster.local_key_count(i, "/grow/"),
            300,
            "m{i} did not catch up"
        );
    }
    engine
        .playbook(&ansible, &five, &db_ops("etcd_healthy.yml"), &[])
        .assert_success();

    // Again: nothing to add, nothing restarted.
    let pids = cluster.pids(5);
    engine
        .playbook(&ansible, &five, &db_ops("etcd_add_member.yml"), &add)
        .assert_success();
    assert_eq!(cluster.pids(5), pids);

    let remove = ["-e", "etcd_remove_hosts=m3,m4"];
    let mut check = remove.to_vec();
    check.push("--check");
    engine
        .playbook(&ansible, &five, &db_ops("etcd_remove_member.yml"), &check)
        .assert_success();
    assert_eq!(
        cluster.member_list().len(),
        5,
        "check mode removed a member"
    );
    assert_eq!(cluster.pids(5), pids);

    // The leader is among the members removed, first in the list: it must
    // hand over to a member that stays, never to m4, removed next.
    let m3_id = cluster.member_info(3).expect("m3 is a member").id_hex;
    let all5_endpoints = cluster.endpoints(&all5);
    wait_until("m3 leads", DEFAULT_TIMEOUT, || {
        if cluster.leader() == Some(3) {
            return Some(());
        }
        cluster
            .etcdctl()
            .run(&all5_endpoints, &["move-leader", &m3_id], None);
        None
    });
    let m4_led = || {
        std::fs::read_to_string(&cluster.member(4).log)
            .unwrap_or_default()
            .matches("became leader at term")
            .count()
    };
    let m4_led_before = m4_led();

    let out = engine.playbook(&ansible, &five, &db_ops("etcd_remove_member.yml"), &remove);
    out.assert_success();
    assert_eq!(
        m4_led(),
        m4_led_before,
        "leadership moved to m4, which the same run removes: {}",
        cluster.member(4).log_tail(20)
    );
    let leader = cluster.wait_leader();
    assert!([0, 1, 2].contains(&leader), "leader m{leader}");
    // The playbook told the module which members leave.
    let r = out.result_ok("Remove the member from the cluster", "m3");
    let avoid = r["invocation"]["module_args"]["avoid"].to_string();
    for i in [3, 4] {
        assert!(avoid.contains(&cluster.member(i).peer_url()), "{r}");
    }
    let all3 = [0, 1, 2];
    cluster.wait_healthy(&all3, DEFAULT_TIMEOUT);
    let members = cluster.member_list();
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names.len(), 3, "{members:?}");
    for n in ["m0", "m1", "m2"] {
        assert!(names.contains(&n), "{names:?}");
    }
    for i in [3, 4] {
        assert_eq!(cluster.pid(i), None, "m{i} still running");
        assert_eq!(
            cluster.moved_aside(i).len(),
            1,
            "m{i}'s data dir not moved aside"
        );
    }
    engine
        .playbook(&ansible, &three, &db_ops("etcd_healthy.yml"), &[])
        .assert_success();
    cluster.put("/grow/done", "1");
    assert_eq!(cluster.wait_agree(&all3, "/grow/").1, 301);
}

#[test]
fn grow_to_five_and_shrink_back_ansible_playbook() {
    grow_to_five_and_shrink_back(Engine::AnsiblePlaybook);
}

#[test]
fn grow_to_five_and_shrink_back_etcd_agent() {
    grow_to_five_and_shrink_back(Engine::agent_required());
}
