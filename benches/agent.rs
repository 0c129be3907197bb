//! Agent vs ansible-playbook: wall time of the shipped health playbook over
//! a real sshd on 3 and on 30 inventory hosts (the hosts share the one test
//! sshd), and the agent's openssh process mux vs its `native-mux` build.
//!
//! Run with `bench/agent.sh` (it builds what this needs). Prints a table.

use harness::{repo_root, Ansible, Cluster, Sshd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn inventory(ansible: &Ansible, cluster: &Cluster, sshd: &Sshd, hosts: usize) -> PathBuf {
    let mut ini = String::from("[etcd]\n");
    for h in 0..hosts {
        let member = cluster.member(h % cluster.len());
        ini.push_str(&format!(
            "host{h:02} etcd_member_name={} ip={} {}\n",
            member.name,
            member.ip,
            sshd.inventory_host_vars()
        ));
    }
    ini.push_str("\n[etcd:vars]\netcd_client_scheme=http\n");
    ansible.write_file(&format!("hosts-{hosts}.ini"), &ini)
}

/// Median wall time in seconds of `runs` runs of `run`, which must succeed.
fn median(runs: usize, mut run: impl FnMut() -> bool) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            assert!(run(), "benchmarked run failed");
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn agent_run(agent: &Path, ansible: &Ansible, inventory: &Path, playbook: &Path) -> bool {
    let status = Command::new(agent)
        .args(["playbook", "-i"])
        .arg(inventory)
        .arg(playbook)
        .arg("-M")
        .arg(repo_root().join("playbooks/library"))
        .envs(ansible.env())
        .current_dir(ansible.dir())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run etcd-agent");
    status.success()
}

fn main() {
    let root = repo_root();
    let agent = root.join("target/release/etcd-agent");
    let agent_native = root.join("target/native-mux/release/etcd-agent");
    for bin in [&agent, &agent_native] {
        assert!(
            bin.exists(),
            "{} is missing: run bench/agent.sh",
            bin.display()
        );
    }
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let cluster = Cluster::start3();
    let sshd = Sshd::start();
    let ansible = Ansible::new();
    let playbook = root.join("playbooks/db-operations/etcd_healthy.yml");

    println!(
        "| hosts | engine | median wall time (s), {runs} runs | speed-up vs ansible-playbook |"
    );
    println!("|---|---|---|---|");
    for hosts in [3usize, 30] {
        let inv = inventory(&ansible, &cluster, &sshd, hosts);
        let ansible_default = median(runs, || ansible.playbook(&inv, &playbook, &[]).success());
        let pipelining = median(runs, || {
            ansible
                .playbook(&inv, &playbook, &["-e", "ansible_pipelining=true"])
                .success()
        });
        let agent_mux = median(runs, || agent_run(&agent, &ansible, &inv, &playbook));
        let agent_native_mux = median(runs, || agent_run(&agent_native, &ansible, &inv, &playbook));
        for (engine, secs) in [
            ("ansible-playbook (defaults)", ansible_default),
            ("ansible-playbook (pipelining)", pipelining),
            ("etcd-agent (openssh process mux)", agent_mux),
            ("etcd-agent (openssh native-mux)", agent_native_mux),
        ] {
            println!(
                "| {hosts} | {engine} | {secs:.2} | {:.1}x |",
                ansible_default / secs
            );
        }
    }
}
