//! Agent vs ansible-playbook vs the SSH floor: wall time of the shipped health playbook over
//! real sshds on 3, 30 and 100 inventory hosts, each host on a loopback address of its own
//! (as in a fleet: each host needs a connection and an SSH handshake of its own under both
//! engines). An sshd listens on at most 16 addresses, so 100 hosts take 7 sshds.
//!
//! Two settings, both engines with their defaults, measured in the same run:
//! - cold: every run opens fresh SSH connections (leftover masters are killed after each
//!   run), what a run after more than a minute's pause sees. Beside it the SSH floor: fresh
//!   `ssh host true` logins to the same hosts with the same options, [`FLOOR_PARALLEL`] at
//!   a time (the agent's own bound on handshakes in flight at the default 5 forks);
//! - warm: runs back to back, reusing the masters of the run before (`ControlPersist=60s`,
//!   the default of both engines).
//!
//! Run with `bench/agent.sh` (it builds what this needs). Prints a table, then the agent's
//! per-phase timing (`ETCD_AGENT_TIMING=1`) of one more cold and one more warm run. `BENCH_HOSTS=3,30`
//! picks the host counts; `BENCH_SSH_ARGS` adds ssh options to every host, for both engines
//! and the floor (e.g. `-o KexAlgorithms=curve25519-sha256`).
//! `BENCH_HOLD=1` sets up the first host count and waits instead, for profiling by hand.

use harness::{repo_root, Ansible, Cluster, Sshd};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Fresh SSH logins in flight at once for the floor: the agent's bound (twice `forks`).
const FLOOR_PARALLEL: usize = 10;

/// The address of inventory host `h`.
fn own_address(h: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 2, h as u8 + 1)
}

/// An sshd listens on at most 16 addresses (its `MAX_LISTEN_SOCKS`): 127.0.0.1 and 15 more.
const ADDRESSES_PER_SSHD: usize = 15;

/// The sshds for `hosts` hosts with addresses of their own.
fn start_sshds(hosts: usize) -> Vec<Sshd> {
    (0..hosts)
        .step_by(ADDRESSES_PER_SSHD)
        .map(|first| {
            Sshd::start_on(
                &(first..(first + ADDRESSES_PER_SSHD).min(hosts))
                    .map(own_address)
                    .collect::<Vec<_>>(),
            )
        })
        .collect()
}

/// `BENCH_SSH_ARGS`, split into words (none if unset).
fn bench_ssh_args() -> String {
    std::env::var("BENCH_SSH_ARGS").unwrap_or_default()
}

fn inventory(ansible: &Ansible, cluster: &Cluster, sshds: &[Sshd], hosts: usize) -> PathBuf {
    let mut ini = String::from("[etcd]\n");
    for h in 0..hosts {
        let member = cluster.member(h % cluster.len());
        let vars = sshds[h / ADDRESSES_PER_SSHD].inventory_host_vars_at(own_address(h));
        let extra = bench_ssh_args();
        let vars = if extra.is_empty() {
            vars
        } else {
            vars.replacen(
                "ansible_ssh_common_args='",
                &format!("ansible_ssh_common_args='{extra} "),
                1,
            )
        };
        ini.push_str(&format!(
            "host{h:03} etcd_member_name={} ip={} {vars}\n",
            member.name, member.ip,
        ));
    }
    ini.push_str("\n[etcd:vars]\netcd_client_scheme=http\n");
    ansible.write_file(&format!("hosts-{hosts}.ini"), &ini)
}

/// A shell script of one fresh `ssh <host> true` login per host with the inventory's
/// options (no multiplexing), [`FLOOR_PARALLEL`] at a time.
fn floor_script(ansible: &Ansible, sshds: &[Sshd], hosts: usize) -> PathBuf {
    let mut lines = String::new();
    for h in 0..hosts {
        let sshd = &sshds[h / ADDRESSES_PER_SSHD];
        lines.push_str(&format!(
            "ssh -o ControlMaster=no -o ControlPath=none {} {} -i {} -p {} -l {} {} true\n",
            sshd.ssh_common_args(),
            bench_ssh_args(),
            sshd.client_key().display(),
            sshd.port(),
            sshd.user(),
            own_address(h),
        ));
    }
    let list = ansible.write_file(&format!("floor-{hosts}.txt"), &lines);
    ansible.write_file(
        &format!("floor-{hosts}.sh"),
        &format!(
            "xargs -P {FLOOR_PARALLEL} -I CMD sh -c 'CMD || exit 255' < {}\n",
            list.display()
        ),
    )
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Median wall time in seconds of `runs` cold runs of `command`: each run goes through the
/// subreaper wrapper, which kills any SSH master the run leaves behind, and starts with no
/// control sockets.
fn cold(ansible: &Ansible, runs: usize, mut command: impl FnMut() -> Command) -> f64 {
    let cp = ansible.dir().join("cp");
    median(
        (0..runs)
            .map(|_| {
                let _ = std::fs::remove_dir_all(&cp);
                std::fs::create_dir_all(&cp).expect("create control path dir");
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
/// With `trace`, one more warm run follows with `ETCD_AGENT_TIMING=1`, its stderr (the
/// agent's per-phase table) written to `trace`.
fn warm(ansible: &Ansible, runs: usize, argv: &[String], trace: Option<&Path>) -> f64 {
    let script = r#"n=$1; trace=$2; shift 2
for i in $(seq 0 "$n"); do
  s=$(date +%s%N)
  "$@" > /dev/null || exit 1
  e=$(date +%s%N)
  [ "$i" -gt 0 ] && echo $(( (e - s) / 1000 ))
done
if [ -n "$trace" ]; then ETCD_AGENT_TIMING=1 "$@" > /dev/null 2> "$trace" || exit 1; fi"#;
    let trace = trace.map(|t| t.display().to_string()).unwrap_or_default();
    let out = ansible
        .command("/bin/sh")
        .args(["-c", script, "warm", &runs.to_string(), &trace])
        .args(argv)
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

/// `BENCH_HOLD=1`: instead of measuring, writes `agent.sh` and `ansible.sh` (each runs its
/// engine on the first host count's inventory, in the bench's environment) and waits until
/// the file `hold` in the same directory is removed, for profiling by hand.
fn hold(ansible: &Ansible, agent_argv: &[String], ansible_argv: &[String]) {
    let quote = |argv: &[String]| {
        argv.iter()
            .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let env: String = ansible
        .env()
        .iter()
        .map(|(k, v)| format!("export {k}='{v}'\n"))
        .collect();
    for (name, argv) in [("agent.sh", agent_argv), ("ansible.sh", ansible_argv)] {
        ansible.write_file(
            name,
            &format!(
                "cd '{}'\n{env}exec {} \"$@\"\n",
                ansible.dir().display(),
                quote(argv)
            ),
        );
    }
    let flag = ansible.write_file("hold", "");
    println!(
        "holding: sh {0}/agent.sh, sh {0}/ansible.sh; rm {1} to stop",
        ansible.dir().display(),
        flag.display()
    );
    while flag.exists() {
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

fn main() {
    let root = repo_root();
    let agent = root.join("target/release/etcd-agent");
    assert!(
        agent.exists(),
        "{} is missing: run bench/agent.sh",
        agent.display()
    );
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let host_counts: Vec<usize> = std::env::var("BENCH_HOSTS")
        .unwrap_or_else(|_| "3,30,100".into())
        .split(',')
        .filter_map(|h| h.trim().parse().ok())
        .collect();
    let cluster = Cluster::start3();
    let sshds = start_sshds(host_counts.iter().copied().max().unwrap_or(3));
    let ansible = Ansible::new();
    let playbook = root.join("playbooks/db-operations/etcd_healthy.yml");

    println!(
        "| hosts | connections | SSH floor (s) | ansible-playbook (s) | etcd-agent (s) | agent vs ansible-playbook | agent vs SSH floor |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut traces = Vec::new();
    for &hosts in &host_counts {
        let inv = inventory(&ansible, &cluster, &sshds, hosts);
        let floor = floor_script(&ansible, &sshds, hosts);
        let ansible_argv = vec![
            "ansible-playbook".to_string(),
            "-i".into(),
            inv.display().to_string(),
            playbook.display().to_string(),
        ];
        let agent_argv = agent_argv(&agent, &inv, &playbook);
        if std::env::var_os("BENCH_HOLD").is_some() {
            hold(&ansible, &agent_argv, &ansible_argv);
            return;
        }
        let argv_command = |argv: &[String]| {
            let mut cmd = ansible.command(&argv[0]);
            cmd.args(&argv[1..]);
            cmd
        };
        let floor_secs = cold(&ansible, runs, || {
            let mut cmd = ansible.command("/bin/sh");
            cmd.arg(&floor);
            cmd
        });
        let theirs = cold(&ansible, runs, || argv_command(&ansible_argv));
        let mine = cold(&ansible, runs, || argv_command(&agent_argv));
        println!(
            "| {hosts} | cold | {floor_secs:.2} | {theirs:.2} | {mine:.2} | {:.1}x | {:.2}x |",
            theirs / mine,
            mine / floor_secs
        );
        // one more cold run of the agent with its per-phase timing
        let cold_trace = ansible.dir().join(format!("trace-cold-{hosts}.txt"));
        cold(&ansible, 1, || {
            let mut cmd = argv_command(&agent_argv);
            cmd.env("ETCD_AGENT_TIMING", "1")
                .stderr(std::fs::File::create(&cold_trace).expect("trace file"));
            cmd
        });
        traces.push((format!("{hosts} hosts, cold"), cold_trace));
        let theirs = warm(&ansible, runs, &ansible_argv, None);
        let warm_trace = ansible.dir().join(format!("trace-warm-{hosts}.txt"));
        let mine = warm(&ansible, runs, &agent_argv, Some(&warm_trace));
        traces.push((format!("{hosts} hosts, warm"), warm_trace));
        println!(
            "| {hosts} | warm | — | {theirs:.2} | {mine:.2} | {:.1}x | — |",
            theirs / mine
        );
    }
    for (what, trace) in traces {
        println!(
            "\netcd-agent phases, {what} (ETCD_AGENT_TIMING=1, one more run):\n{}",
            std::fs::read_to_string(&trace).unwrap_or_default()
        );
    }
}
