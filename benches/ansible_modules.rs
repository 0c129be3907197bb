//! Modules run through ansible-core's packaging (#14): wall time of a playbook of 10 tasks of
//! modules etcd-agent does not implement natively (`getent`, `slurp`, `find`, `replace`,
//! `blockinfile`, `tempfile`, `stat`-free `unarchive`, `get_url`, `uri`) on 3 inventory hosts
//! over a real sshd, etcd-agent against ansible-playbook (defaults and pipelining), cold runs
//! alternating in one process so load affects them alike. Run with `bench/ansible-modules.sh`;
//! `RUNS=N` sets the repetitions (default 5). Prints a table; the ratio column is
//! ansible-playbook (defaults) time over the row's time.

use harness::{Ansible, Sshd};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

const PLAYBOOK: &str = r#"- hosts: nodes
  gather_facts: false
  vars:
    dir: "{{ base }}/{{ inventory_hostname }}"
  tasks:
    - getent: {database: passwd, key: root}
    - slurp: {src: "{{ dir }}/conf"}
    - find: {paths: "{{ dir }}", patterns: "conf"}
    - replace: {path: "{{ dir }}/conf", regexp: '^port=1$', replace: 'port=2'}
    - blockinfile: {path: "{{ dir }}/conf", block: "extra=yes"}
    - tempfile: {state: file, path: "{{ dir }}"}
    - unarchive: {src: "{{ dir }}/t.tgz", dest: "{{ dir }}/out", remote_src: true}
    - get_url: {url: "http://127.0.0.1:{{ http_port }}/served.txt", dest: "{{ dir }}/got.txt"}
    - uri: {url: "http://127.0.0.1:{{ http_port }}/served.txt", return_content: true}
    - getent: {database: group, key: root}
"#;

/// A benchmarked command: its name, argv and extra environment.
type Row = (
    &'static str,
    Vec<String>,
    &'static [(&'static str, &'static str)],
);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Fresh per-host files for one run under `base`.
fn prepare(base: &std::path::Path) {
    let _ = std::fs::remove_dir_all(base);
    for h in ["n1", "n2", "n3"] {
        let d = base.join(h);
        std::fs::create_dir_all(d.join("out")).unwrap();
        std::fs::write(d.join("conf"), "port=1\n").unwrap();
        let ok = Command::new("tar")
            .arg("-C")
            .arg(&d)
            .arg("-czf")
            .arg(d.join("t.tgz"))
            .arg("conf")
            .status()
            .unwrap()
            .success();
        assert!(ok, "tar");
    }
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let sshd = Sshd::start();
    let ansible = Ansible::new();
    let vars = sshd.inventory_host_vars();
    let inv = ansible.write_file(
        "hosts.ini",
        &format!("[nodes]\nn1 {vars}\nn2 {vars}\nn3 {vars}\n"),
    );
    let pb = ansible.write_file("fallback.yml", PLAYBOOK);
    let www = ansible.dir().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("served.txt"), "served\n").unwrap();
    let mut http = harness::process::guarded_command("/usr/bin/python3")
        .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0"])
        .current_dir(&www)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("http.server");
    let mut banner = String::new();
    BufReader::new(http.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    let port: u16 = banner
        .split_whitespace()
        .skip_while(|w| *w != "port")
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("http.server port");
    let agent = harness::repo_root().join("target/release/etcd-agent");
    let base = ansible.dir().join("work");
    let extra = format!("base={} http_port={port}", base.display());
    let rows: [Row; 3] = [
        (
            "ansible-playbook (defaults)",
            vec!["ansible-playbook".into()],
            &[],
        ),
        (
            "ansible-playbook (pipelining)",
            vec!["ansible-playbook".into()],
            &[("ANSIBLE_PIPELINING", "true")],
        ),
        (
            "etcd-agent",
            vec![agent.display().to_string(), "playbook".into()],
            &[],
        ),
    ];
    let mut times = vec![Vec::new(); rows.len()];
    for _ in 0..runs {
        for (i, (name, argv, env)) in rows.iter().enumerate() {
            prepare(&base);
            let mut cmd = ansible.command(&argv[0]);
            cmd.args(&argv[1..])
                .arg("-i")
                .arg(&inv)
                .arg(&pb)
                .args(["-e", &extra])
                .envs(env.iter().copied())
                .stdout(Stdio::null());
            let start = Instant::now();
            let status = cmd.status().expect("run");
            // a failed run is shown again with its output
            if !status.success() {
                let mut again = ansible.command(&argv[0]);
                again
                    .args(&argv[1..])
                    .arg("-i")
                    .arg(&inv)
                    .arg(&pb)
                    .args(["-e", &extra]);
                let out = again.envs(env.iter().copied()).output().expect("rerun");
                eprintln!("{}", String::from_utf8_lossy(&out.stdout));
            }
            times[i].push(start.elapsed().as_secs_f64());
            assert!(status.success(), "{name} failed");
        }
    }
    let _ = http.kill();
    let _ = http.wait();
    println!("| engine | median wall time (s), {runs} runs | ansible-playbook (defaults) / row |");
    println!("|---|---|---|");
    let medians: Vec<f64> = times.into_iter().map(median).collect();
    for ((name, _, _), m) in rows.iter().zip(&medians) {
        println!("| {name} | {m:.2} | {:.1}x |", medians[0] / m);
    }
}
