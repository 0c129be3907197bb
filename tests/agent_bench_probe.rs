//! Manual timing probe (ignored by default): agent vs ansible-playbook on 3 hosts over SSH.
//! Run with `cargo test --test agent_bench_probe -- --ignored --nocapture`.

use harness::{Ansible, Sshd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn agent_bin() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "-q", "--release", "-p", "etcd-agent"])
        .current_dir(root)
        .status()
        .unwrap();
    assert!(st.success());
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("release/etcd-agent")
}

#[test]
#[ignore = "timing probe, not a test"]
fn timing_probe() {
    let bin = agent_bin();
    let sshd = Sshd::start();
    let ansible = Ansible::new();
    let vars = sshd.inventory_host_vars();
    for n in [3usize, 30] {
        let hosts: String = (1..=n).map(|i| format!("h{i} {vars}\n")).collect();
        let inv = ansible.write_file(&format!("hosts{n}.ini"), &format!("[nodes]\n{hosts}"));
        let pb = ansible.write_file(
            "pb.yml",
            "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - command: echo one\n    - command: echo two\n    - shell: echo three\n",
        );
        for _ in 0..2 {
            let t = Instant::now();
            let out = Command::new(&bin)
                .env(
                    "RUST_LOG",
                    std::env::var("AGENT_PROBE_LOG").unwrap_or_default(),
                )
                .args(["playbook", "-f", "10", "-i"])
                .arg(&inv)
                .arg(&pb)
                .current_dir(ansible.dir())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            );
            println!("agent {n} hosts: {:?}", t.elapsed());
            if std::env::var_os("AGENT_PROBE_LOG").is_some() {
                println!("{}", String::from_utf8_lossy(&out.stderr));
            }
        }
        if std::env::var_os("AGENT_PROBE_LOG").is_some() {
            return;
        }
        let t = Instant::now();
        let out = ansible.playbook(&inv, &pb, &["-f", "10"]);
        out.assert_success();
        println!("ansible-playbook {n} hosts: {:?}", t.elapsed());
    }
}

#[test]
#[ignore = "timing probe, not a test"]
fn ssh_mux_probe() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let ctl = dir.path().join("ctl");
    let mut base = vec![
        "-p".to_string(),
        sshd.port().to_string(),
        "-i".into(),
        sshd.client_key().display().to_string(),
    ];
    base.extend(sshd.ssh_common_args().split(' ').map(str::to_string));
    let t = Instant::now();
    let st = Command::new("ssh")
        .args(&base)
        .args(["-M", "-f", "-N", "-o", "ControlPersist=yes", "-S"])
        .arg(&ctl)
        .arg(format!("{}@127.0.0.1", sshd.user()))
        .status()
        .unwrap();
    assert!(st.success());
    println!("master: {:?}", t.elapsed());
    for cmd in ["true", "/bin/sh -c true", "echo hi"] {
        let t = Instant::now();
        for _ in 0..5 {
            let out = Command::new("ssh")
                .args(["-S"])
                .arg(&ctl)
                .args(["-o", "BatchMode=yes", "-T", "x", cmd])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        println!("mux exec {cmd:?}: {:?} each", t.elapsed() / 5);
    }
    let t = Instant::now();
    let out = Command::new("ssh")
        .args(&base)
        .arg(format!("{}@127.0.0.1", sshd.user()))
        .arg("true")
        .output()
        .unwrap();
    assert!(out.status.success());
    println!("fresh ssh: {:?}", t.elapsed());
    let _ = Command::new("ssh")
        .arg("-S")
        .arg(&ctl)
        .args(["-O", "exit", "x"])
        .output();
}

#[test]
#[ignore = "timing probe, not a test"]
fn health_probe() {
    use harness::{repo_root, Cluster};
    let bin = agent_bin();
    let cluster = Cluster::start3();
    let sshd = Sshd::start();
    let ansible = Ansible::new();
    let playbook = repo_root().join("playbooks/db-operations/etcd_healthy.yml");
    for copies in [1usize, 10] {
        let mut ini = String::from("[etcd]\n");
        for c in 0..copies {
            for m in cluster.members() {
                ini.push_str(&format!(
                    "{}-{c} ip={} {}\n",
                    m.name,
                    m.ip,
                    sshd.inventory_host_vars()
                ));
            }
        }
        ini.push_str("\n[etcd:vars]\netcd_client_scheme=http\n");
        let hosts = ansible.write_file(&format!("hosts{copies}.ini"), &ini);
        for native in [false] {
            let _ = native;
            for _ in 0..2 {
                let t = Instant::now();
                let out = Command::new(&bin)
                    .args(["playbook", "-i"])
                    .arg(&hosts)
                    .arg(&playbook)
                    .envs(ansible.env())
                    .env(
                        "RUST_LOG",
                        std::env::var("AGENT_PROBE_LOG").unwrap_or_default(),
                    )
                    .current_dir(ansible.dir())
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stdout)
                );
                println!("agent health {} hosts: {:?}", 3 * copies, t.elapsed());
                if std::env::var_os("AGENT_PROBE_LOG").is_some() {
                    println!("{}", String::from_utf8_lossy(&out.stderr));
                    return;
                }
            }
        }
        let t = Instant::now();
        ansible.playbook(&hosts, &playbook, &[]).assert_success();
        println!(
            "ansible-playbook health {} hosts: {:?}",
            3 * copies,
            t.elapsed()
        );
    }
}
