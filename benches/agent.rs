//! Agent vs ansible-playbook: wall time of the shipped health playbook over
//! a real sshd on 3 and on 30 inventory hosts (the hosts share the one test
//! sshd), and the agent's default build (openssh's native mux) vs its process-mux build.
//!
//! Two inventory layouts:
//! - one address: every host is `127.0.0.1` (aliases of one destination). Both engines
//!   share one SSH connection among them (ansible-playbook through its default
//!   `ControlPath`, a hash of host, port and user), so this measures the engines;
//! - own addresses: each host has a loopback address of its own, as in a fleet, so each
//!   needs a connection (and an SSH handshake) of its own under both engines.
//!
//! Two settings, each engine against ansible-playbook in the same one:
//! - cold: every run opens fresh SSH connections (leftover masters are
//!   killed after each run), what a run after more than a minute's pause sees;
//! - warm: runs back to back with `ControlPersist=60s`, reusing the masters
//!   of the run before. That is ansible-playbook's default; the agent does it
//!   when `ssh_args` (here `ANSIBLE_SSH_ARGS`) asks for `ControlPersist`.
//!
//! Run with `bench/agent.sh` (it builds what this needs). Prints a table.
//! `BENCH_HOSTS=3` runs only the 3-host rows; `BENCH_SSH_ARGS` adds ssh options to every
//! host, for both engines (e.g. `-o KexAlgorithms=curve25519-sha256`).

use harness::{repo_root, Ansible, Cluster, Sshd};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const PERSIST_ARGS: &str = "-C -o ControlMaster=auto -o ControlPersist=60s";

/// Where the inventory hosts point.
#[derive(Clone, Copy)]
enum Layout {
    OneAddress,
    OwnAddresses,
}

impl Layout {
    fn label(self) -> &'static str {
        match self {
            Layout::OneAddress => "one address",
            Layout::OwnAddresses => "own addresses",
        }
    }
}

/// The address of inventory host `h` in the own-addresses layout.
fn own_address(h: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 2, h as u8 + 1)
}

/// An sshd listens on at most 16 addresses (its `MAX_LISTEN_SOCKS`): 127.0.0.1 and 15 more.
const ADDRESSES_PER_SSHD: usize = 15;

/// The sshds for 30 hosts with addresses of their own; the first also serves the
/// one-address layout.
fn start_sshds() -> Vec<Sshd> {
    (0..30)
        .step_by(ADDRESSES_PER_SSHD)
        .map(|first| {
            Sshd::start_on(
                &(first..first + ADDRESSES_PER_SSHD)
                    .map(own_address)
                    .collect::<Vec<_>>(),
            )
        })
        .collect()
}

fn inventory(
    ansible: &Ansible,
    cluster: &Cluster,
    sshds: &[Sshd],
    hosts: usize,
    layout: Layout,
) -> PathBuf {
    let mut ini = String::from("[etcd]\n");
    for h in 0..hosts {
        let member = cluster.member(h % cluster.len());
        let vars = match layout {
            Layout::OneAddress => sshds[0].inventory_host_vars(),
            Layout::OwnAddresses => {
                sshds[h / ADDRESSES_PER_SSHD].inventory_host_vars_at(own_address(h))
            }
        };
        let vars = match std::env::var("BENCH_SSH_ARGS") {
            Ok(extra) if !extra.is_empty() => vars.replacen(
                "ansible_ssh_common_args='",
                &format!("ansible_ssh_common_args='{extra} "),
                1,
            ),
            _ => vars,
        };
        ini.push_str(&format!(
            "host{h:02} etcd_member_name={} ip={} {vars}\n",
            member.name, member.ip,
        ));
    }
    ini.push_str("\n[etcd:vars]\netcd_client_scheme=http\n");
    let name = match layout {
        Layout::OneAddress => format!("hosts-{hosts}.ini"),
        Layout::OwnAddresses => format!("hosts-{hosts}-own.ini"),
    };
    ansible.write_file(&name, &ini)
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Median wall time in seconds of `runs` cold runs of `command`: each run goes through the
/// subreaper wrapper, which kills any SSH master the run leaves behind.
fn cold(runs: usize, mut command: impl FnMut() -> Command) -> f64 {
    median(
        (0..runs)
            .map(|_| {
                let mut cmd = command();
                let start = Instant::now();
                let status = cmd
                    .stdout(std::process::Stdio::null())
                    .status()
                    .expect("run benchmarked command");
                let secs = start.elapsed().as_secs_f64();
                assert!(status.success(), "benchmarked run failed: {cmd:?}");
                secs
            })
            .collect(),
    )
}

/// Median wall time of `runs` warm runs: one extra run opens the masters, then the timed
/// runs follow back to back inside one subreaper wrapper (which kills the masters at the end).
fn warm(ansible: &Ansible, runs: usize, argv: &[String], env: &[(&str, &str)]) -> f64 {
    let script = r#"n=$1; shift
for i in $(seq 0 "$n"); do
  s=$(date +%s%N)
  "$@" > /dev/null || exit 1
  e=$(date +%s%N)
  [ "$i" -gt 0 ] && echo $(( (e - s) / 1000 ))
done"#;
    let out = ansible
        .command("/bin/sh")
        .args(["-c", script, "warm", &runs.to_string()])
        .args(argv)
        .envs(env.iter().copied())
        .output()
        .expect("run warm series");
    assert!(
        out.status.success(),
        "warm series failed: {argv:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    median(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().parse::<f64>().expect("microseconds") / 1e6)
            .collect(),
    )
}

fn agent_argv(agent: &Path, inventory: &Path, playbook: &Path) -> Vec<String> {
    vec![
        agent.display().to_string(),
        "playbook".into(),
        "-i".into(),
        inventory.display().to_string(),
        playbook.display().to_string(),
        "-M".into(),
        repo_root().join("playbooks/library").display().to_string(),
    ]
}

fn main() {
    let root = repo_root();
    // the default build uses openssh's native mux; the other one its process mux
    let agent_native = root.join("target/release/etcd-agent");
    let agent = root.join("target/process-mux/release/etcd-agent");
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
    let sshds = start_sshds();
    let ansible = Ansible::new();
    let playbook = root.join("playbooks/db-operations/etcd_healthy.yml");

    println!(
        "| hosts | addresses | connections | engine | median wall time (s), {runs} runs | speed-up vs ansible-playbook defaults |"
    );
    println!("|---|---|---|---|---|---|");
    let only_hosts: Option<usize> = std::env::var("BENCH_HOSTS")
        .ok()
        .and_then(|h| h.parse().ok());
    for (hosts, layout) in [
        (3usize, Layout::OneAddress),
        (3, Layout::OwnAddresses),
        (30, Layout::OneAddress),
        (30, Layout::OwnAddresses),
    ] {
        if only_hosts.is_some_and(|only| only != hosts) {
            continue;
        }
        let inv = inventory(&ansible, &cluster, &sshds, hosts, layout);
        let at = layout.label();
        let ansible_argv = vec![
            "ansible-playbook".to_string(),
            "-i".into(),
            inv.display().to_string(),
            playbook.display().to_string(),
        ];
        let pipelining: &[(&str, &str)] = &[("ANSIBLE_PIPELINING", "true")];
        let persist: &[(&str, &str)] = &[("ANSIBLE_SSH_ARGS", PERSIST_ARGS)];
        let argv_command = |argv: &[String], env: &[(&str, &str)]| {
            let mut cmd = ansible.command(&argv[0]);
            cmd.args(&argv[1..]).envs(env.iter().copied());
            cmd
        };
        let cold_rows = [
            ("ansible-playbook (defaults)", ansible_argv.clone(), &[][..]),
            (
                "ansible-playbook (pipelining)",
                ansible_argv.clone(),
                pipelining,
            ),
            (
                "etcd-agent (openssh process mux)",
                agent_argv(&agent, &inv, &playbook),
                &[][..],
            ),
            (
                "etcd-agent (openssh native-mux)",
                agent_argv(&agent_native, &inv, &playbook),
                &[][..],
            ),
        ];
        let mut baseline = None;
        for (engine, argv, env) in &cold_rows {
            let secs = cold(runs, || argv_command(argv, env));
            let base = *baseline.get_or_insert(secs);
            println!(
                "| {hosts} | {at} | cold | {engine} | {secs:.2} | {:.1}x |",
                base / secs
            );
        }
        let warm_rows = [
            ("ansible-playbook (defaults)", ansible_argv.clone(), &[][..]),
            (
                "ansible-playbook (pipelining)",
                ansible_argv.clone(),
                pipelining,
            ),
            (
                "etcd-agent (process mux, ControlPersist=60s)",
                agent_argv(&agent, &inv, &playbook),
                persist,
            ),
            (
                "etcd-agent (native-mux, ControlPersist=60s)",
                agent_argv(&agent_native, &inv, &playbook),
                persist,
            ),
        ];
        let mut baseline = None;
        for (engine, argv, env) in &warm_rows {
            let secs = warm(&ansible, runs, argv, env);
            let base = *baseline.get_or_insert(secs);
            println!(
                "| {hosts} | {at} | warm | {engine} | {secs:.2} | {:.1}x |",
                base / secs
            );
        }
    }
}
