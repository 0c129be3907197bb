//! Self-tests of the end-to-end harness, against real etcd, sshd and Ansible.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use harness::{pid_alive, Ansible, Cluster, MemberStart, Sshd, DEFAULT_TIMEOUT};

/// Pids of every member process currently running.
fn member_pids(c: &Cluster) -> Vec<u32> {
    c.members().iter().filter_map(|m| m.pid()).collect()
}

fn assert_all_dead(pids: &[u32], what: &str) {
    for &pid in pids {
        assert!(!pid_alive(pid), "{what} pid {pid} still alive after drop");
    }
}

/// Pids of live processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) && pid != std::process::id() {
            out.push((pid, cmdline));
        }
    }
    out
}

/// Recursive listing (path -> (len, mtime)) of `dir`, empty if missing.
fn snapshot(dir: &Path) -> BTreeMap<String, (u64, Option<SystemTime>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&d) else {
            continue;
        };
        out.insert(d.display().to_string(), (meta.len(), meta.modified().ok()));
        if meta.is_dir() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                stack.push(e.path());
            }
        }
    }
    out
}

#[test]
fn start3_kill_restart_freeze_grow() {
    let t0 = Instant::now();
    let mut c = Cluster::start3();
    eprintln!("start3 took {:?} (slot {})", t0.elapsed(), c.slot());
    assert_eq!(c.len(), 3);
    let list = c.member_list();
    assert_eq!(list.len(), 3, "{list:?}");
    let mut names: Vec<_> = list.iter().map(|m| m.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["m0", "m1", "m2"]);
    assert!(list
        .iter()
        .all(|m| !m.is_learner && m.id_hex == format!("{:x}", m.id)));
    assert!(c.leader().is_some() || c.wait_leader(DEFAULT_TIMEOUT) < 3);
    assert_eq!(
        c.initial_cluster(),
        format!(
            "m0=http://127.0.{s}.11:2380,m1=http://127.0.{s}.12:2380,m2=http://127.0.{s}.13:2380",
            s = c.slot()
        )
    );
    let argv = c.member_command_line(0);
    assert!(
        argv.contains(&"--initial-cluster-state=new".to_string()),
        "{argv:?}"
    );

    c.put("/selftest/a", "hello world");
    assert_eq!(c.get("/selftest/a").as_deref(), Some("hello world"));
    assert_eq!(c.get("/selftest/missing"), None);
    let t = Instant::now();
    c.put_many("/bulk/", 10_000);
    eprintln!("put_many(10000) took {:?}", t.elapsed());
    assert_eq!(c.key_count("/bulk/"), 10_000);

    // Kill one member, the rest stays healthy, restart it on its data dir.
    let pid1 = c.member(1).pid().expect("m1 running");
    c.kill(1);
    assert!(!pid_alive(pid1) && c.member(1).pid().is_none());
    c.wait_healthy(DEFAULT_TIMEOUT);
    c.put("/selftest/b", "while m1 down");
    c.start_member(1);
    c.wait_member_healthy(1, DEFAULT_TIMEOUT);
    c.wait_healthy(DEFAULT_TIMEOUT);
    assert_eq!(c.get("/selftest/b").as_deref(), Some("while m1 down"));

    // Graceful stop and restart.
    c.stop(2);
    assert!(c.member(2).pid().is_none());
    c.start_member(2);
    c.wait_healthy(DEFAULT_TIMEOUT);

    // Freeze one: the others keep serving; thaw and it catches up.
    c.freeze(0);
    assert!(c.member(0).is_frozen());
    assert_eq!(c.live_indices(), vec![1, 2]);
    c.put("/selftest/c", "while m0 frozen");
    c.thaw(0);
    c.wait_healthy(DEFAULT_TIMEOUT);
    assert_eq!(c.live_indices(), vec![0, 1, 2]);

    // Grow: member add + start with --initial-cluster-state existing.
    let i = c.add_member_slot();
    assert_eq!(i, 3);
    assert!(c.member(3).pid().is_none());
    let peer = c.member(3).peer_url();
    // etcd (strict reconfig check) answers "unhealthy cluster" until every
    // voter has been connected for 5 s, e.g. right after the thaw above.
    let add = ["member", "add", "m3", &format!("--peer-urls={peer}")];
    let mut last = None;
    let added = harness::poll_until(DEFAULT_TIMEOUT, || {
        let out = c.etcdctl(&add);
        let ok = out.status.success();
        last = Some(out);
        ok.then_some(())
    });
    assert!(added.is_some(), "member add failed: {last:?}");
    let ic = c.initial_cluster_for(&[0, 1, 2, 3]);
    c.start_member_with(3, MemberStart::existing(ic));
    c.wait_member_healthy(3, DEFAULT_TIMEOUT);
    c.wait_healthy(DEFAULT_TIMEOUT);
    assert_eq!(c.member_list().len(), 4);
    assert_eq!(c.member_info(3).expect("m3 listed").name, "m3");
    assert_eq!(c.endpoints().len(), 4);

    // Freeze one and drop the cluster while it is frozen.
    c.freeze(3);
    let pids = member_pids(&c);
    assert_eq!(pids.len(), 4);
    drop(c);
    assert_all_dead(&pids, "etcd member");
    eprintln!("start3 test total {:?}", t0.elapsed());
}

#[test]
fn tls_cluster_requires_client_cert() {
    let c = Cluster::start_tls3();
    let tls = c.tls().expect("TLS files");
    assert!(c.endpoints().iter().all(|e| e.starts_with("https://")));
    c.put("/tls/k", "v");
    assert_eq!(c.get("/tls/k").as_deref(), Some("v"));
    assert_eq!(c.member_list().len(), 3);

    // Same endpoint, CA but no client certificate: must be refused.
    let out = Command::new(harness::etcdctl_bin())
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", c.endpoints()[0]))
        .arg(format!("--cacert={}", tls.ca_cert.display()))
        .args(["--dial-timeout=3s", "--command-timeout=5s", "get", "/tls/k"])
        .output()
        .expect("run etcdctl");
    assert!(
        !out.status.success(),
        "etcdctl without client cert succeeded: {out:?}"
    );
    // With the client certificate it works.
    let out = Command::new(harness::etcdctl_bin())
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", c.endpoints()[0]))
        .args(tls.etcdctl_args())
        .args(["get", "/tls/k", "--print-value-only"])
        .output()
        .expect("run etcdctl");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v");
    let pids = member_pids(&c);
    drop(c);
    assert_all_dead(&pids, "etcd member");
}

#[test]
fn two_clusters_get_different_slots() {
    let a = Cluster::start3();
    let b = Cluster::start(harness::ClusterOptions {
        members: 1,
        ..Default::default()
    });
    assert_ne!(a.slot(), b.slot());
    a.put("/which", "a");
    b.put("/which", "b");
    assert_eq!(a.get("/which").as_deref(), Some("a"));
    assert_eq!(b.get("/which").as_deref(), Some("b"));
    let pids: Vec<u32> = member_pids(&a).into_iter().chain(member_pids(&b)).collect();
    drop(a);
    drop(b);
    assert_all_dead(&pids, "etcd member");
}

#[test]
fn sshd_and_ansible_playbook() {
    let home = std::env::var("HOME").expect("HOME");
    let dot_ansible = Path::new(&home).join(".ansible");
    let dot_ssh = Path::new(&home).join(".ssh");
    let before = (snapshot(&dot_ansible), snapshot(&dot_ssh));

    let t0 = Instant::now();
    let sshd = Sshd::start();
    eprintln!("sshd start took {:?} (port {})", t0.elapsed(), sshd.port());
    assert_eq!(sshd.ssh_ok("echo hi").trim(), "hi");
    let sshd_pids = [
        sshd.pid().expect("sshd pid"),
        sshd.wrapper_pid().expect("wrapper pid"),
    ];

    let ansible = Ansible::new();
    let vars = sshd.inventory_host_vars();
    let inventory = ansible.write_file(
        "inventory.ini",
        &format!("[nodes]\nnode1 {vars}\nnode2 {vars}\n"),
    );
    let playbook = ansible.write_file(
        "site.yml",
        "- hosts: nodes\n  gather_facts: false\n  tasks:\n\
         \x20   - name: say hi\n      ansible.builtin.command: echo hi\n      register: hi\n\
         \x20   - name: check\n      ansible.builtin.assert:\n        that: hi.stdout == 'hi'\n",
    );
    let t = Instant::now();
    let out = ansible.playbook(&inventory, &playbook, &[]);
    eprintln!("ansible-playbook took {:?}", t.elapsed());
    out.assert_success();
    for host in ["node1", "node2"] {
        let r = out.result_ok("say hi", host);
        assert_eq!(r["stdout"], "hi", "{r}");
        assert_eq!(r["action"], "ansible.builtin.command");
        assert_eq!(out.stats(host).expect("stats")["failures"], 0);
    }

    // A failing run reports failure and its JSON says why.
    let bad = ansible.write_file(
        "bad.yml",
        "- hosts: node1\n  gather_facts: false\n  tasks:\n    - name: boom\n      ansible.builtin.command: /bin/false\n",
    );
    let bad_run = ansible.playbook(&inventory, &bad, &[]);
    bad_run.assert_failure();
    let boom = bad_run.result_ok("boom", "node1");
    assert_eq!(boom["failed"], true, "{boom}");
    assert_eq!(boom["rc"], 1, "{boom}");
    let json = ansible.playbook_json(&inventory, &bad, &[]);
    assert_eq!(json["stats"]["node1"]["failures"], 1, "{json}");

    // A process left running in the background over ssh dies with sshd.
    let bg = sshd.ssh_ok("nohup sleep 600 >/dev/null 2>&1 & echo $!");
    let bg: u32 = bg.trim().parse().expect("background pid");
    assert!(pid_alive(bg));

    let scratch = [
        sshd.dir().display().to_string(),
        ansible.dir().display().to_string(),
    ];
    drop(ansible);
    drop(sshd);
    assert_all_dead(&sshd_pids, "sshd");
    assert_all_dead(&[bg], "background process started over ssh");
    for needle in &scratch {
        let left = processes_mentioning(needle);
        assert!(left.is_empty(), "processes left behind: {left:?}");
    }
    let after = (snapshot(&dot_ansible), snapshot(&dot_ssh));
    assert_eq!(before.0, after.0, "~/.ansible changed");
    assert_eq!(before.1, after.1, "~/.ssh changed");
}

#[test]
fn sshd_on_member_addresses() {
    let ips = [
        "127.0.4.11".parse().expect("ip"),
        "127.0.4.12".parse().expect("ip"),
    ];
    let sshd = Sshd::start_on(&ips);
    let ansible = Ansible::new();
    let inventory = ansible.write_file(
        "hosts.ini",
        &format!(
            "a {}\nb {}\n",
            sshd.inventory_host_vars_at(ips[0]),
            sshd.inventory_host_vars_at(ips[1])
        ),
    );
    let playbook = ansible.write_file(
        "p.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: where\n      ansible.builtin.command: printenv SSH_CONNECTION\n",
    );
    let out = ansible.playbook(&inventory, &playbook, &[]);
    out.assert_success();
    // SSH_CONNECTION = "client_ip client_port server_ip server_port".
    for (host, ip) in [("a", ips[0]), ("b", ips[1])] {
        let conn = out.result_ok("where", host)["stdout"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert_eq!(
            conn.split_whitespace().nth(2),
            Some(ip.to_string().as_str()),
            "{conn}"
        );
    }
}

#[test]
fn harness_types_are_sync() {
    fn sync<T: Sync + Send>() {}
    sync::<Cluster>();
    sync::<Sshd>();
    sync::<Ansible>();
}

#[test]
fn slots_are_exclusive() {
    // Whatever slot we get, nobody else can take it while we hold it.
    let s = harness::Slot::acquire();
    assert!(harness::Slot::try_take(s.number()).is_none());
    assert!((1..=4).contains(&s.number()));
    let _ = Duration::ZERO;
}

/// `RunOutput::expect_exit` passes on the expected code and fails on any other, showing
/// both streams; stdin reaches the program.
#[test]
fn expect_exit_checks_the_code_and_shows_both_streams() {
    let out = harness::run_with_stdin(
        Command::new("/bin/sh").args(["-c", "read x; echo \"out-$x\"; echo err-line >&2; exit 3"]),
        Some("fed\n"),
    );
    out.expect_exit(3);
    assert_eq!(out.code(), Some(3));
    assert_eq!(out.stdout, "out-fed\n");
    assert_eq!(out.stderr, "err-line\n");
    let failure = std::panic::catch_unwind(|| {
        out.expect_exit(0);
    })
    .expect_err("exit 3 is not exit 0");
    let message = failure
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    for needle in ["expected exit code 0", "out-fed", "err-line", "/bin/sh -c"] {
        assert!(message.contains(needle), "{needle:?} not in {message}");
    }
}
