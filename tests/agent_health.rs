//! The shipped `etcd_healthy.yml` under `etcd-agent` over a real sshd against a real etcd
//! cluster, side by side with `ansible-playbook`: same exit codes and messages, the module
//! uploaded once per host.

use harness::{module_binary, repo_root, Agent, Ansible, Cluster, RunOutput, Sshd};
use std::path::{Path, PathBuf};

/// Runs `playbook` under the agent with the same environment the harness gives
/// ansible-playbook (ANSIBLE_LIBRARY = playbooks/library, sandboxed config), module uploads
/// logged on stderr.
fn agent(ansible: &Ansible, hosts: &Path, playbook: &Path) -> RunOutput {
    Agent::in_sandbox(ansible)
        .playbook(hosts, playbook)
        .sandbox_env(ansible)
        .log("etcd_agent::transport=info")
        .run()
}

fn inventory(ansible: &Ansible, cluster: &Cluster, sshd: &Sshd) -> PathBuf {
    let mut ini = String::from("[etcd]\n");
    for m in cluster.members() {
        ini.push_str(&format!(
            "{} ip={} {}\n",
            m.name,
            m.ip,
            sshd.inventory_host_vars_at(m.ip)
        ));
    }
    ini.push_str("\n[etcd:vars]\netcd_client_scheme=http\n");
    ansible.write_file("hosts.ini", &ini)
}

#[test]
fn shipped_healthy_playbook_under_the_agent_matches_ansible() {
    module_binary("etcd_health");
    let mut cluster = Cluster::start3();
    // each host on its member's address, so each has a connection of its own
    let ips: Vec<_> = cluster.members().iter().map(|m| m.ip).collect();
    let sshd = Sshd::start_on(&ips);
    let ansible = Ansible::new();
    let hosts = inventory(&ansible, &cluster, &sshd);
    let playbook = repo_root().join("playbooks/db-operations/etcd_healthy.yml");

    let theirs = ansible.playbook(&hosts, &playbook, &[]);
    theirs.assert_success();
    let mine = agent(&ansible, &hosts, &playbook);
    mine.expect_exit(0);
    let (stdout, stderr) = (&mine.stdout, &mine.stderr);
    assert!(stdout.contains("cluster is healthy"), "{stdout}");
    let uploads = stderr
        .lines()
        .filter(|l| l.contains("uploading module"))
        .count();
    assert_eq!(uploads, 3, "once per host:\n{stderr}");
    for m in cluster.members() {
        assert!(
            stdout.contains(&format!("{:<26} : ok=", m.name)),
            "{stdout}"
        );
    }

    let dead_id = cluster
        .member_list()
        .into_iter()
        .find(|m| m.name == cluster.member(2).name)
        .unwrap()
        .id_hex;
    cluster.kill(2);
    let theirs = ansible.playbook(&hosts, &playbook, &[]);
    let mine = agent(&ansible, &hosts, &playbook);
    let stdout = &mine.stdout;
    theirs.expect_exit(2);
    mine.expect_exit(2);
    let line = format!("member {dead_id} is unreachable");
    assert!(stdout.contains(&line), "{line:?} not in:\n{stdout}");
    assert!(stdout.contains("cluster is unhealthy"), "{stdout}");
    // same per-host recap as ansible-playbook
    for m in cluster.members() {
        let s = theirs.stats(&m.name).expect("ansible stats");
        let n = |k: &str| s[k].as_i64().unwrap_or(-1);
        let expected = format!(
            "{:<26} : ok={:<4} changed={:<4} unreachable={:<4} failed={:<4} skipped={:<4}",
            m.name,
            n("ok"),
            n("changed"),
            n("unreachable"),
            n("failures"),
            n("skipped")
        );
        assert!(
            stdout.contains(&expected),
            "{expected:?} not in:\n{stdout}\n{}",
            theirs.describe()
        );
    }
}
