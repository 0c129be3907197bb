//! etcd_health under the real ansible-playbook, over a real sshd: the module
//! is copied from playbooks/library/ to the "remote" host and run there.

use harness::{repo_root, Ansible, Cluster, Sshd};
use std::path::PathBuf;

/// An inventory of the cluster's members, each reached over the test sshd.
fn inventory(ansible: &Ansible, cluster: &Cluster, sshd: &Sshd) -> PathBuf {
    let mut ini = String::from("[etcd]\n");
    for m in cluster.members() {
        ini.push_str(&format!(
            "{} ip={} {}\n",
            m.name,
            m.ip,
            sshd.inventory_host_vars()
        ));
    }
    ini.push_str("\n[etcd:vars]\netcd_client_scheme=http\n");
    ansible.write_file("hosts.ini", &ini)
}

#[test]
fn registered_health_result_can_be_asserted_on() {
    let cluster = Cluster::start3();
    let sshd = Sshd::start();
    let ansible = Ansible::new();
    let hosts = inventory(&ansible, &cluster, &sshd);
    let playbook = ansible.write_file(
        "health.yml",
        r#"
- hosts: etcd
  gather_facts: false
  tasks:
    - name: health
      etcd_health:
        endpoints: "http://{{ ip }}:2379"
      register: h
    - name: assert
      assert:
        that:
          - h.healthy
          - h.members | length == 3
          - h.members | selectattr('is_leader') | list | length == 1
          - h.leader.name in groups['etcd']
          - not h.changed
"#,
    );
    let out = ansible.playbook(&hosts, &playbook, &[]);
    out.assert_success();
    for m in cluster.members() {
        let result = out.result_ok("health", &m.name);
        assert_eq!(result["healthy"], true);
        assert_eq!(out.stats(&m.name).unwrap()["failures"], 0);
    }
}

#[test]
fn shipped_healthy_playbook_names_the_dead_member() {
    let mut cluster = Cluster::start3();
    let sshd = Sshd::start();
    let ansible = Ansible::new();
    let hosts = inventory(&ansible, &cluster, &sshd);
    let playbook = repo_root().join("playbooks/db-operations/etcd_healthy.yml");

    let out = ansible.playbook(&hosts, &playbook, &[]);
    out.assert_success();
    assert!(
        out.stdout.contains("cluster is healthy"),
        "{}",
        out.describe()
    );

    let dead_id = cluster
        .member_list()
        .into_iter()
        .find(|m| m.name == cluster.member(2).name)
        .unwrap()
        .id_hex;
    cluster.kill(2);
    let out = ansible.playbook(&hosts, &playbook, &[]);
    out.assert_failure();
    out.expect_exit(2); // a failed host exits 2
    let line = format!("member {dead_id} is unreachable");
    assert!(
        out.stdout.contains(&line),
        "{line:?} not in:\n{}",
        out.describe()
    );
    assert!(out.stdout.contains("cluster is unhealthy"));
}
