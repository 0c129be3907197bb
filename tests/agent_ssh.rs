//! End-to-end tests of `etcd-agent` over real SSH (the harness's private sshd): several
//! inventory hosts on one sshd (each on an address of its own, as in a fleet, unless a test
//! is about aliases of one address), serial/register/when/until/run_once/delegate_to, a
//! failing host, an unreachable host, any_errors_fatal, check mode, the module upload count,
//! and connections shared by aliases.
//!
//! The binary is built once per test process with `cargo build -p etcd-agent`.

use harness::{run_with_stdin, write_executable, write_file, Agent, Sshd, NO_CONFIG};
use serde_json::Value;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The agent in `dir` (no `ansible.cfg`) with upload logging on (stderr).
fn agent(dir: &Path) -> Agent {
    Agent::in_dir(dir).log(UPLOAD_LOG)
}

/// `RUST_LOG` that logs each module upload.
const UPLOAD_LOG: &str = "etcd_agent::transport=info";
/// `RUST_LOG` that also logs the transport's internals (persistent shell, fallbacks).
const TRANSPORT_DEBUG: &str = "etcd_agent::transport=debug";

/// Writes an executable module into `dir/library/`.
fn write_module(dir: &Path, name: &str, body: &str) -> PathBuf {
    write_executable(dir, &format!("library/{name}"), body)
}

/// A binary-protocol module (a shell script: not Python) echoing its args file as JSON.
///
/// Its args file is echoed with `_ansible_` keys renamed `internal_ansible_`: a registered
/// result loses `_ansible_` keys at every depth, as under ansible-core.
const PROBE: &str = "#!/bin/sh\nargs=$(sed 's/\"_ansible_/\"internal_ansible_/g' \"$1\")\nprintf '{\"changed\": false, \"args\": %s, \"argv1\": \"%s\"}\\n' \"$args\" \"$1\"\n";
/// A module that prints garbage instead of JSON.
const GARBAGE: &str = "#!/bin/sh\necho 'this is not json'\necho oops >&2\nexit 3\n";

/// Addresses of the inventory hosts n1, n2, n3: the sshd listens on each.
const NODE_IPS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(127, 0, 0, 21),
    Ipv4Addr::new(127, 0, 0, 22),
    Ipv4Addr::new(127, 0, 0, 23),
];

/// The sshd for [`setup`]'s hosts.
fn node_sshd() -> Sshd {
    Sshd::start_on(&NODE_IPS)
}

/// The shell-script modules, and an inventory of n1, n2, n3, each on its own address of
/// `sshd` (from [`node_sshd`]), then `extra_hosts`.
fn setup(dir: &Path, sshd: &Sshd, extra_hosts: &str) -> PathBuf {
    let vars: Vec<String> = NODE_IPS
        .iter()
        .map(|ip| sshd.inventory_host_vars_at(*ip))
        .collect();
    write_module(dir, "probe", PROBE);
    write_module(dir, "garbage", GARBAGE);
    write_file(
        dir,
        "hosts.ini",
        &format!(
            "[nodes]\nn1 {}\nn2 {}\nn3 {}\n{extra_hosts}",
            vars[0], vars[1], vars[2]
        ),
    )
}

/// Puts etcd-agent's own module binary into `dir/library/` as `etcd_health`.
fn add_etcd_health(dir: &Path) {
    std::fs::create_dir_all(dir.join("library")).unwrap();
    std::fs::copy(
        harness::module_binary("etcd_health"),
        dir.join("library/etcd_health"),
    )
    .unwrap();
}

/// The private remote temp dirs that the logged uploads went to are gone at the end (the
/// sshd is on this machine).
fn assert_upload_dirs_gone(upload_lines: &[String]) {
    for line in upload_lines {
        let path = line
            .split("path=")
            .nth(1)
            .and_then(|p| p.split_whitespace().next())
            .expect("upload path in log");
        let dir = Path::new(path).parent().unwrap();
        assert!(
            dir.starts_with("/") && !dir.exists(),
            "remote temp dir {} left behind",
            dir.display()
        );
    }
}

fn uploads(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains("uploading module"))
        .map(str::to_string)
        .collect()
}

#[test]
fn ssh_rolling_playbook_with_engine_keywords_and_upload_once() {
    let sshd = node_sshd();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let inv = setup(dir, &sshd, "");
    let counters = dir.join("counters");
    std::fs::create_dir_all(&counters).unwrap();
    let pb = write_file(
        dir,
        "rolling.yml",
        &format!(
            r#"- name: rolling
  hosts: nodes
  gather_facts: false
  serial: 1
  tasks:
    - name: whoami
      command: id -un
      register: who
    - name: only n2
      shell: echo picked
      when: inventory_hostname == 'n2'
      register: picked
    - name: probe
      probe:
        value: "{{{{ inventory_hostname }}}}"
      register: p
    - name: probe again
      probe:
        value: again
    - name: until
      shell: "f={c}/{{{{ inventory_hostname }}}}; n=$(cat $f 2>/dev/null || echo 0); n=$((n+1)); echo $n > $f; echo $n"
      register: cnt
      until: cnt.stdout | int >= 2
      retries: 3
      delay: 0
    - name: once
      command: echo {{{{ inventory_hostname }}}}
      run_once: true
      register: once
    - name: local
      command: echo local-{{{{ inventory_hostname }}}}
      delegate_to: localhost
      register: loc
    - name: check
      assert:
        that:
          - who.stdout == '{user}'
          - (inventory_hostname == 'n2') == (picked is not skipped)
          - p.args.value == inventory_hostname
          - p.args.internal_ansible_check_mode == false
          - p.args.internal_ansible_module_name == 'probe'
          - p.args.internal_ansible_version is defined
          - cnt.attempts == 2
          - once.stdout == inventory_hostname
          - loc.stdout == 'local-' + inventory_hostname
"#,
            c = counters.display(),
            user = sshd.user()
        ),
    );
    let out = agent(dir).playbook(&inv, &pb).run();
    out.expect_exit(0);
    let (stdout, stderr) = (&out.stdout, &out.stderr);
    // like ansible-playbook, one play banner per serial batch
    assert_eq!(stdout.matches("PLAY [rolling]").count(), 3, "{stdout}");
    assert_eq!(
        stdout.matches("TASK [whoami]").count(),
        3,
        "serial: 1 -> 3 batches\n{stdout}"
    );
    assert!(stdout.contains("changed: [n1 -> localhost]"), "{stdout}");
    assert!(stdout.contains("skipping: [n1]"), "{stdout}");
    let ups = uploads(stderr);
    assert_eq!(
        ups.len(),
        3,
        "probe uploaded once per host, not per task:\n{stderr}"
    );
    for (host, ok) in [("n1", 7), ("n2", 8), ("n3", 7)] {
        assert!(
            stdout.contains(&format!("{host:<26} : ok={ok:<4} changed=")),
            "{stdout}"
        );
    }
    assert_upload_dirs_gone(&ups);
}

#[test]
fn ssh_failing_and_unreachable_hosts_exit_codes_and_check_mode() {
    let sshd = node_sshd();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key = sshd.client_key().display().to_string();
    let gone = format!(
        "[down]\ngone ansible_host=127.0.0.1 ansible_port=1 ansible_user={} ansible_ssh_private_key_file={key} ansible_ssh_common_args='{}'\n",
        sshd.user(),
        sshd.ssh_common_args()
    );
    let inv = setup(dir, &sshd, &gone);
    let inv = inv.to_str().unwrap();

    // a failing host leaves the play; an unreachable host is reported; exit 4 wins over 2
    let pb = write_file(
        dir,
        "fail.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: first\n      command: echo hi\n    - name: n1 fails\n      command: /bin/false\n      when: inventory_hostname == 'n1'\n    - name: garbage\n      garbage: {}\n      when: inventory_hostname == 'n2'\n      ignore_errors: true\n      register: g\n    - name: after\n      assert:\n        that:\n          - inventory_hostname != 'n2' or g.module_stdout is search('not json')\n",
    );
    let out = agent(dir)
        .args(["playbook", "-i", inv, pb.to_str().unwrap()])
        .run();
    out.expect_exit(4);
    let stdout = &out.stdout;
    assert!(stdout.contains("fatal: [gone]: UNREACHABLE! => {\"changed\": false, \"msg\": \"Task failed: Failed to connect to the host via ssh"), "{stdout}");
    assert!(stdout.contains("fatal: [n1]: FAILED! =>"), "{stdout}");
    assert!(
        stdout.contains("\"module_stdout\": \"this is not json\\n\""),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "\"msg\": \"Module result deserialization failed: No start of json char found\""
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "gone                       : ok=0    changed=0    unreachable=1    failed=0"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "n1                         : ok=1    changed=1    unreachable=0    failed=1"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("n2                         : ok=3    changed=1    unreachable=0    failed=0    skipped=1    rescued=0    ignored=1"), "{stdout}");
    assert!(
        !stdout.contains("ok: [n1]"),
        "n1 left the play after failing:\n{stdout}"
    );

    // only a failure: exit 2
    let out = agent(dir)
        .args(["playbook", "-i", inv, pb.to_str().unwrap(), "-l", "nodes"])
        .run();
    out.expect_exit(2);

    // any_errors_fatal: nothing runs after the failing task
    let pb = write_file(
        dir,
        "fatal.yml",
        "- hosts: nodes\n  gather_facts: false\n  any_errors_fatal: true\n  tasks:\n    - command: /bin/false\n      when: inventory_hostname == 'n3'\n    - command: echo never\n",
    );
    let out = agent(dir)
        .args(["playbook", "-i", inv, pb.to_str().unwrap()])
        .run();
    out.expect_exit(2);
    let stdout = &out.stdout;
    assert!(!stdout.contains("never"), "{stdout}");

    // check mode: command skipped remotely, binary modules told through _ansible_check_mode
    let marker = dir.join("marker");
    let pb = write_file(
        dir,
        "check.yml",
        &format!(
            "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - command: touch {m}\n    - probe: {{}}\n      register: p\n    - assert:\n        that: [p.args.internal_ansible_check_mode]\n",
            m = marker.display()
        ),
    );
    let out = agent(dir)
        .args(["playbook", "-C", "-i", inv, pb.to_str().unwrap()])
        .run();
    out.expect_exit(0);
    let stdout = &out.stdout;
    assert!(!marker.exists());
    assert_eq!(stdout.matches("skipping: [n").count(), 3, "{stdout}");
}

#[test]
fn ssh_json_output_and_adhoc() {
    let sshd = node_sshd();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let inv = setup(dir, &sshd, "");
    let inv = inv.to_str().unwrap();
    let pb = write_file(
        dir,
        "j.yml",
        "- hosts: nodes\n  tasks:\n    - name: hostname\n      command: uname -n\n",
    );
    let out = agent(dir)
        .args(["playbook", "--json", "-i", inv, pb.to_str().unwrap()])
        .run();
    out.expect_exit(0);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    let tasks = &doc["plays"][0]["tasks"];
    assert_eq!(tasks[0]["task"]["name"], "Gathering Facts");
    assert_eq!(
        tasks[0]["hosts"]["n1"]["ansible_facts"]["ansible_system"],
        "Linux"
    );
    assert_eq!(tasks[1]["hosts"]["n3"]["rc"], 0);
    assert_eq!(doc["stats"]["n2"]["ok"], 2);

    let out = agent(dir)
        .args(["adhoc", "nodes[0]", "-i", inv])
        .args(["-m", "shell", "-a", "echo adhoc-$((1+1))"])
        .run();
    out.expect_exit(0);
    let stdout = &out.stdout;
    assert!(
        stdout.contains("n1 | CHANGED | rc=0 >>\nadhoc-2\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("n2 |"), "{stdout}");
}

#[test]
fn ssh_host_keys_are_checked_by_default() {
    let sshd = Sshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let host = format!(
        "[nodes]\nn1 ansible_host=127.0.0.1 ansible_port={} ansible_user={} ansible_ssh_private_key_file={} ansible_ssh_common_args='-o UserKnownHostsFile=/dev/null -o GlobalKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o IdentityAgent=none'\n",
        sshd.port(),
        sshd.user(),
        sshd.client_key().display()
    );
    let inv = write_file(dir, "hosts.ini", &host);
    let pb = write_file(
        dir,
        "p.yml",
        "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - command: echo hi\n",
    );
    let args = [
        "playbook",
        "-i",
        inv.to_str().unwrap(),
        pb.to_str().unwrap(),
    ];
    let out = agent(dir).args(args).run();
    out.expect_exit(4); // unknown host key
    let stdout = &out.stdout;
    assert!(stdout.contains("fatal: [n1]: UNREACHABLE!"), "{stdout}");

    // ansible.cfg host_key_checking = False accepts the unknown key
    write_file(
        dir,
        "ansible.cfg",
        "[defaults]\nhost_key_checking = False\n",
    );
    Agent::with_config(dir).args(args).run().expect_exit(0);
}

/// Ansible's connection habits: by default (no `ssh_args`) the masters outlive the run for
/// 60 s idle and the next run reuses them: the sshd sees no new login. Another persist time
/// is the same master; `ControlPersist=no` logs in afresh. With a short idle time
/// (`ControlPersist=2s` in `ANSIBLE_SSH_ARGS`) the masters exit by themselves (socket and
/// process gone) and the next run logs in again. A bad value is a clear per-host failure.
/// Judged by the sshd's log of logins, not by timing.
#[test]
fn ssh_masters_persist_by_default_are_reused_and_expire_when_idle() {
    let sshd = node_sshd();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let inv = write_file(
        dir,
        "hosts.ini",
        &format!(
            "[nodes]\nn1 {}\nn2 {}\n",
            sshd.inventory_host_vars_at(NODE_IPS[0]),
            sshd.inventory_host_vars_at(NODE_IPS[1])
        ),
    );
    let pb = write_file(
        dir,
        "pb.yml",
        "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - command: echo hi\n      register: r\n    - assert:\n        that: r.stdout == 'hi'\n",
    );
    // one subreaper wrapper around the whole series: the masters live from run to run (and
    // are reaped by it as they exit); what is left is killed and reaped when the series ends
    let series = r#"set -u
logins() { grep -c '^Accepted publickey' "$SSHD_LOG"; }
run() { "$AGENT" playbook -i "$INV" "$PB" > "$1.out" 2>&1; echo $? > "$1.rc"; logins > "$1.logins"; }
masters() { for s in "$1"/ea-*/.ssh-connection*/master; do [ -S "$s" ] && ssh -S "$s" -O check x 2>&1; done | sed -n 's/.*pid=\([0-9]*\).*/\1/p'; }
logins > start.logins
run default1
ls cp > default1.sockets
masters cp > default1.pids
run default2
# another persist time is the same master
ANSIBLE_SSH_ARGS='-C -o ControlMaster=auto -o ControlPersist=10m' run persist2
ANSIBLE_SSH_ARGS='-o ControlPersist=no' run fresh
# a short idle time, in a control path dir of its own
export ANSIBLE_SSH_CONTROL_PATH_DIR="$PWD/cp2"
ANSIBLE_SSH_ARGS='-o ControlPersist=2s' run short1
masters cp2 > short1.pids
# wait (generously) until the masters have exited and been reaped: sockets and processes gone
i=0
while [ $i -lt 600 ]; do
  left=$(ls cp2/ea-*/.ssh-connection*/master 2>/dev/null; for p in $(cat short1.pids); do [ -d /proc/$p ] && echo $p; done)
  [ -z "$left" ] && break
  sleep 0.1; i=$((i + 1))
done
echo "$left" > short1.left
ANSIBLE_SSH_ARGS='-o ControlPersist=2s' run short2
ANSIBLE_SSH_ARGS='-o ControlPersist=soon' run bad
"#;
    harness::run(
        harness::reaper::reaped_command(dir, "/bin/sh")
            .args(["-c", series])
            .current_dir(dir)
            .env("AGENT", harness::agent_binary())
            .env("INV", &inv)
            .env("PB", &pb)
            .env("SSHD_LOG", sshd.log_path())
            .env("ANSIBLE_CONFIG", dir.join(NO_CONFIG))
            .env("ANSIBLE_SSH_CONTROL_PATH_DIR", dir.join("cp"))
            .env_remove("ANSIBLE_SSH_ARGS"),
    )
    .expect_exit(0);
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let logins = |name: &str| -> usize { read(&format!("{name}.logins")).trim().parse().unwrap() };
    for run in [
        "default1", "default2", "persist2", "fresh", "short1", "short2",
    ] {
        assert_eq!(
            read(&format!("{run}.rc")).trim(),
            "0",
            "{run}:\n{}",
            read(&format!("{run}.out"))
        );
    }
    assert_eq!(
        logins("default1") - logins("start"),
        2,
        "one login per host"
    );
    assert_eq!(
        read("default1.sockets")
            .lines()
            .filter(|l| l.starts_with("ea-"))
            .count(),
        2,
        "a control socket dir per host"
    );
    assert_eq!(
        read("default1.pids").lines().count(),
        2,
        "both masters outlived the first run"
    );
    assert_eq!(
        logins("default2"),
        logins("default1"),
        "the second run reused both masters"
    );
    assert_eq!(
        logins("persist2"),
        logins("default2"),
        "another persist time reused them too"
    );
    assert_eq!(
        logins("fresh") - logins("persist2"),
        2,
        "ControlPersist=no: fresh logins"
    );
    assert_eq!(
        logins("short1") - logins("fresh"),
        2,
        "a new control path dir"
    );
    assert_eq!(
        read("short1.pids").lines().count(),
        2,
        "two short-lived masters"
    );
    assert_eq!(
        read("short1.left").trim(),
        "",
        "the idle masters exited: sockets and processes gone"
    );
    assert_eq!(
        logins("short2") - logins("short1"),
        2,
        "after the masters expired, the next run logs in again"
    );
    assert_eq!(read("bad.rc").trim(), "2", "{}", read("bad.out"));
    assert!(
        read("bad.out").contains("unsupported ControlPersist value \"soon\""),
        "{}",
        read("bad.out")
    );
}

/// With kept masters (the default), a module uploaded by one run stays in the host's module
/// cache (`$TMPDIR/etcd-agent-modules-<uid>`, the sshd being on this machine and its sessions'
/// `TMPDIR` in its scratch dir) as
/// `<name>-<sha256>` with the module's bytes, and the next run runs it from there instead of
/// uploading it: judged by replacing the cached copy, whose output the next run then shows.
/// A new remote shell looks for the run's modules in the host's cache as it starts, and the
/// kept master's directory records what the host's cache holds: either way the module runs
/// from there without a lookup (none in the run's `-vvv` log). Recorded but gone from the
/// host, the run uploads it again. `ETCD_AGENT_MODULE_CACHE=0` uploads again.
#[test]
fn ssh_kept_masters_keep_modules_in_the_hosts_cache() {
    let sshd = node_sshd();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let inv = setup(dir, &sshd, "");
    // content of its own (so a hash of its own) for this test process and time
    let nonce = format!("{:?} {}", std::time::SystemTime::now(), std::process::id());
    let said = |what: &str| {
        format!("#!/bin/sh\n# {nonce}\necho '{{\"changed\": false, \"msg\": \"{what}\"}}'\n")
    };
    let module = write_module(dir, "cachetest", &said("uploaded"));
    let pb = write_file(
        dir,
        "pb.yml",
        "- hosts: n1\n  gather_facts: false\n  tasks:\n    - cachetest:\n      register: r\n    - debug:\n        msg: \"said {{ r.msg }}\"\n",
    );
    // one control_path_dir for all the runs, as a user's: each run's master ends with the
    // run (the subreaper), its directory and what it records stay
    let run = |cache: &str| {
        let out = Agent::in_dir(dir)
            .playbook(&inv, &pb)
            .arg("-vvv")
            .env("ETCD_AGENT_MODULE_CACHE", cache)
            .env("ANSIBLE_SSH_CONTROL_PATH_DIR", dir.join("cp"))
            .run();
        out.expect_exit(0);
        (out.stdout.clone(), out.stderr.clone())
    };
    // the lookup's own words: `printf '%s' "$f"` prints the cached path it found
    let looked_up = |stderr: &str| stderr.contains(r#"printf '%s' \"$f\""#);
    let (first, stderr) = run("1");
    assert!(first.contains("said uploaded"), "{first}");
    assert!(
        looked_up(&stderr),
        "a new master's first run looks in the cache"
    );
    let sum = std::process::Command::new("sha256sum")
        .arg(&module)
        .output()
        .unwrap();
    let sha = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let cached = sshd
        .session_tmpdir()
        .join(format!("etcd-agent-modules-{uid}/cachetest-{sha}"));
    let kept = std::fs::read(&cached);
    assert_eq!(
        kept.as_deref().ok(),
        Some(said("uploaded").as_bytes()),
        "{} holds the module",
        cached.display()
    );
    let record = std::fs::read_dir(dir.join("cp"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path().join("cached-modules")).unwrap_or_default())
        .collect::<String>();
    assert!(
        record.contains(&format!("{sha} {}", cached.display())),
        "the kept master's dir records the host's cache: {record:?}"
    );
    std::fs::write(&cached, said("from the cache")).unwrap();
    // a controller that never ran here (no record): the new remote shell finds the module
    // in the host's cache as it starts
    std::fs::remove_dir_all(dir.join("cp")).unwrap();
    let (second, stderr) = run("1");
    assert!(second.contains("said from the cache"), "{second}");
    assert!(
        !looked_up(&stderr) && uploads(&stderr).is_empty(),
        "found as the shell started: run from the cache without a lookup\n{stderr}"
    );
    // recorded but gone from the host: the run notices, uploads and keeps it again
    std::fs::remove_file(&cached).unwrap();
    let (fourth, stderr) = run("1");
    let kept_again = std::fs::read(&cached);
    assert!(fourth.contains("said uploaded"), "{fourth}");
    assert_eq!(uploads(&stderr).len(), 1, "{stderr}");
    assert_eq!(
        kept_again.ok().as_deref(),
        Some(said("uploaded").as_bytes())
    );
    std::fs::write(&cached, said("from the cache")).unwrap();
    let (third, _) = run("0");
    // this test's module only: its name holds a hash of its own
    let _ = std::fs::remove_file(&cached);
    assert!(
        third.contains("said uploaded"),
        "cache off: uploaded\n{third}"
    );
}

/// etcd-agent's own modules in the host's cache run the remote shell loop themselves
/// (`--etcd-agent-shell-v2`, no helper program per command): judged by the process tree
/// a command sees on the host. A host without them in its cache, or with the cache off,
/// gets the `/bin/sh` loop; either leaves no temp dir behind.
#[test]
fn ssh_cached_etcd_modules_are_the_remote_shell() {
    let sshd = node_sshd();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let inv = setup(dir, &sshd, "");
    add_etcd_health(dir);
    let pb = write_file(
        dir,
        "pb.yml",
        r#"- hosts: n1
  gather_facts: false
  tasks:
    - etcd_health:
        endpoints: "http://127.0.0.1:9"
        wait_timeout: 0
      ignore_errors: true
    - shell: 'p=$$; while [ "$p" -gt 1 ]; do ps -o args= -p "$p"; p=$(ps -o ppid= -p "$p" | tr -d " "); done'
      register: tree
    - debug:
        msg: "TREE {{ tree.stdout_lines | join(' | ') }}"
"#,
    );
    let run = |cache: &str| {
        let out = Agent::in_dir(dir)
            .log(TRANSPORT_DEBUG)
            .playbook(&inv, &pb)
            .env("ETCD_AGENT_MODULE_CACHE", cache)
            .env("ANSIBLE_SSH_CONTROL_PATH_DIR", dir.join("cp"))
            .run();
        out.expect_exit(0);
        // the module ran (and failed as it must, nothing listens there)
        assert!(
            out.stdout.contains("no etcd endpoint answered"),
            "{}",
            out.stdout
        );
        let requests = out.stderr.matches("module request").count();
        let tree = out
            .stdout
            .lines()
            .find_map(|l| l.split_once("TREE ").map(|(_, t)| t.to_string()))
            .unwrap_or_else(|| panic!("no process tree printed\n{}", out.stdout));
        (tree, uploads(&out.stderr), requests)
    };
    // a process `<cache>/etcd_health-<sha256> --etcd-agent-shell-v2 ...` above the command
    let native = |tree: &str| {
        tree.split(" | ").any(|p| {
            let mut words = p.split_whitespace();
            words.next().is_some_and(|w| w.contains("/etcd_health-"))
                && words.next() == Some("--etcd-agent-shell-v2")
        })
    };
    let (tree, up, requests) = run("1");
    assert!(
        !native(&tree),
        "nothing cached yet: the /bin/sh loop\n{tree}"
    );
    assert_eq!((up.len(), requests), (1, 0), "{up:?}");
    // a new master (no record of the host's cache): the cached binary is the loop, and it
    // tells the run that the module is there
    std::fs::remove_dir_all(dir.join("cp")).unwrap();
    let (tree, up, requests) = run("1");
    assert!(native(&tree), "{tree}");
    assert!(
        up.is_empty(),
        "found in the cache as the shell started: {up:?}"
    );
    // and the loop ran the module itself
    assert_eq!(requests, 1);
    // the same master again (its record names the module)
    let (tree, up, requests) = run("1");
    assert!(
        native(&tree) && up.is_empty() && requests == 1,
        "{tree} {up:?}"
    );
    // recorded but gone: the run uploads it again and runs it from its upload
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let cache = sshd
        .session_tmpdir()
        .join(format!("etcd-agent-modules-{uid}"));
    for entry in std::fs::read_dir(&cache).unwrap().flatten() {
        std::fs::remove_file(entry.path()).unwrap();
    }
    let (tree, up, _) = run("1");
    assert!(!native(&tree), "{tree}");
    assert_eq!(up.len(), 1, "{up:?}");
    let (tree, _, _) = run("0");
    assert!(!native(&tree), "cache off: the /bin/sh loop\n{tree}");
    let leftovers = || {
        std::fs::read_dir(sshd.session_tmpdir())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("etcd-agent."))
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !leftovers().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(leftovers(), Vec::<String>::new());
}

/// The compiled remote loop and the `/bin/sh` loop give the same results for what tasks
/// send a shell: stdin, exit codes, the login umask, environment, uploads small and large,
/// async jobs, output on both streams, a command that leaves a process behind.
#[test]
fn ssh_compiled_and_sh_remote_shells_give_the_same_results() {
    let sshd = node_sshd();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let inv = setup(dir, &sshd, "");
    add_etcd_health(dir);
    let big = "0123456789abcdef\n".repeat(20_000);
    write_file(dir, "big.txt", &big);
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let pb = write_file(
        dir,
        "pb.yml",
        &format!(
            r#"- hosts: n1
  gather_facts: false
  vars:
    out: "{out}"
  tasks:
    - etcd_health:
        endpoints: "http://127.0.0.1:9"
        wait_timeout: 0
      ignore_errors: true
    - command: cat
      args:
        stdin: "from stdin"
      register: r_stdin
    - shell: 'echo to-out; echo to-err >&2; exit 3'
      register: r_rc
      failed_when: false
    - shell: umask
      register: r_umask
    - shell: 'echo "$FOO"'
      environment:
        FOO: "a b"
      register: r_env
    - copy:
        src: big.txt
        dest: "{{{{ out }}}}/{{{{ mode }}}}-big.txt"
      register: r_big
    - copy:
        content: "small\n"
        dest: "{{{{ out }}}}/{{{{ mode }}}}-small.txt"
    - shell: 'sleep 2 & echo left-behind'
      register: r_bg
    - command: echo async
      async: 30
      poll: 1
      register: r_async
    - debug:
        msg: "RESULT {{{{ [r_stdin.stdout, r_rc.rc, r_rc.stdout, r_rc.stderr, r_umask.stdout, r_env.stdout, r_big.checksum, r_bg.stdout, r_async.stdout] | to_json }}}}"
"#,
            out = out_dir.display()
        ),
    );
    let run = |cache: &str, mode: &str| {
        let out = Agent::in_dir(dir)
            .log(TRANSPORT_DEBUG)
            .playbook(&inv, &pb)
            .args(["-e", &format!("mode={mode}")])
            .env("ETCD_AGENT_MODULE_CACHE", cache)
            .env("ANSIBLE_SSH_CONTROL_PATH_DIR", dir.join("cp"))
            .run();
        out.expect_exit(0);
        let native = out.stderr.contains("native=true");
        let result = out
            .stdout
            .lines()
            .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r.to_string()))
            .unwrap_or_else(|| panic!("no result printed\n{}", out.stdout));
        (native, result)
    };
    // the first run caches the module; the next one's shell is the compiled loop
    let (native, _) = run("1", "first");
    assert!(!native);
    let (native, compiled) = run("1", "compiled");
    assert!(native, "the compiled loop served the second run");
    let (native, sh) = run("0", "sh");
    assert!(!native);
    assert_eq!(compiled, sh);
    assert!(
        compiled.contains("from stdin") && compiled.contains("to-err"),
        "{compiled}"
    );
    for mode in ["compiled", "sh"] {
        assert_eq!(
            std::fs::read_to_string(out_dir.join(format!("{mode}-big.txt"))).unwrap(),
            big
        );
        assert_eq!(
            std::fs::read_to_string(out_dir.join(format!("{mode}-small.txt"))).unwrap(),
            "small\n"
        );
    }
}

/// Inventory hosts that are aliases of one destination (same address, port, user, key and
/// options) share one connection, as they share one master under ansible-playbook: one
/// login and one upload, while each host still runs its own tasks, all at once.
#[test]
fn ssh_aliases_of_one_destination_share_a_connection() {
    let sshd = node_sshd();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir, &sshd, "");
    let vars = sshd.inventory_host_vars();
    let inv = write_file(
        dir,
        "aliases.ini",
        &format!("[nodes]\na1 {vars}\na2 {vars}\na3 {vars}\na4 {vars}\na5 {vars}\n"),
    );
    let pb = write_file(
        dir,
        "pb.yml",
        r#"- hosts: nodes
  gather_facts: false
  tasks:
    - name: probe
      probe:
        value: "{{ inventory_hostname }}"
      register: p
    - name: own command
      shell: "echo {{ inventory_hostname }}"
      register: r
    - assert:
        that:
          - p.args.value == inventory_hostname
          - r.stdout == inventory_hostname
"#,
    );
    let logins = || {
        std::fs::read_to_string(sshd.log_path())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("Accepted publickey"))
            .count()
    };
    let before = logins();
    let out = agent(dir)
        .args([
            "playbook",
            "-f",
            "5",
            "-i",
            inv.to_str().unwrap(),
            pb.to_str().unwrap(),
        ])
        .run();
    out.expect_exit(0);
    let (stdout, stderr) = (&out.stdout, &out.stderr);
    for host in ["a1", "a2", "a3", "a4", "a5"] {
        assert!(
            stdout.contains(&format!("{host:<26} : ok=3    changed=1 ")),
            "{stdout}"
        );
    }
    assert_eq!(logins() - before, 1, "one login for all aliases");
    let ups = uploads(stderr);
    assert_eq!(ups.len(), 1, "one upload for all aliases:\n{stderr}");
    assert_upload_dirs_gone(&ups);
}

/// The agent's masters connect through its own TCP relay (`ProxyCommand`), unless the user
/// gives a proxy of their own, which wins; `ETCD_AGENT_SSH_RELAY=0` turns the relay off.
#[test]
fn ssh_users_proxy_command_wins_over_the_relay() {
    let sshd = node_sshd();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir, &sshd, "");
    let vars = sshd.inventory_host_vars_at(NODE_IPS[0]);
    // a proxy that never connects: only the user's own could make the host unreachable
    let blocked = vars.replacen(
        "ansible_ssh_common_args='",
        "ansible_ssh_common_args='-o ProxyCommand=/bin/false ",
        1,
    );
    let inv = write_file(
        dir,
        "proxy.ini",
        &format!("[nodes]\nrelayed {vars}\nblocked {blocked}\n"),
    );
    for relay in ["1", "0"] {
        let out = Agent::in_dir(dir)
            .args(["adhoc", "nodes", "-i", inv.to_str().unwrap()])
            .args(["-m", "command", "-a", "echo reached"])
            .env("ETCD_AGENT_SSH_RELAY", relay)
            .run();
        out.expect_exit(4); // relay on and off alike
        let stdout = &out.stdout;
        assert!(
            stdout.contains("relayed | CHANGED | rc=0 >>\nreached"),
            "relay={relay}\n{stdout}"
        );
        assert!(
            stdout.contains("blocked | UNREACHABLE!"),
            "relay={relay}\n{stdout}"
        );
    }
}

/// A `delegate_to` host is reached with its own connection variables, templated in its own
/// context: here its address is `"{{ jump_address }}"`, a group variable.
#[test]
fn ssh_delegate_to_uses_the_delegated_hosts_templated_address() {
    let sshd = node_sshd();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let node = sshd.inventory_host_vars_at(NODE_IPS[0]);
    let jump = sshd.inventory_host_vars_at(NODE_IPS[2]).replacen(
        &format!("ansible_host={}", NODE_IPS[2]),
        "ansible_host=\"{{ jump_address }}\"",
        1,
    );
    let inv = write_file(
        dir,
        "delegate.ini",
        &format!(
            "[nodes]\nn1 {node}\n[jumps]\njump {jump}\n[jumps:vars]\njump_address={}\n",
            NODE_IPS[2]
        ),
    );
    let pb = write_file(
        dir,
        "pb.yml",
        r#"- hosts: nodes
  gather_facts: false
  tasks:
    - shell: echo $SSH_CONNECTION
      register: own
    - shell: echo $SSH_CONNECTION
      delegate_to: jump
      register: delegated
    - debug:
        msg: "{{ own.stdout.split()[2] }} {{ delegated.stdout.split()[2] }}"
"#,
    );
    let out = agent(dir).playbook(&inv, &pb).run();
    out.expect_exit(0);
    let stdout = &out.stdout;
    assert!(
        stdout.contains(&format!("\"msg\": \"{} {}\"", NODE_IPS[0], NODE_IPS[2])),
        "the delegated task ran over a connection to the delegate's address:\n{stdout}"
    );
}

/// Hex SHA-256 of `data`, by `sha256sum`.
fn sha256_hex(data: &str) -> String {
    let out = run_with_stdin(&mut std::process::Command::new("sha256sum"), Some(data));
    out.expect_exit(0);
    out.stdout.split_whitespace().next().unwrap().to_string()
}

/// Writes the module `big`: a 1.3 MB script that reports its own sha256. Returns that of the
/// local file.
fn write_big_module(dir: &Path) -> String {
    // 1.3 MB of lines that differ, after the script's `exit`: a lost, repeated or reordered
    // chunk changes the hash; the odd size leaves a short last chunk
    let mut big = String::from(
        "#!/bin/sh\nprintf '{\"changed\": false, \"sha256\": \"%s\"}\\n' \"$(sha256sum \"$0\" | cut -d' ' -f1)\"\nexit 0\n",
    );
    let mut i = 0u64;
    while big.len() < 1_300_001 {
        big.push_str(&format!(
            "# {i} {}\n",
            i.wrapping_mul(2654435761) % 1_000_003
        ));
        i += 1;
    }
    write_module(dir, "big", &big);
    sha256_hex(&big)
}

/// A module larger than one upload chunk arrives byte for byte (the script reports its own
/// sha256), and an upload that cannot be written fails only that host's task: the same
/// persistent shell then runs the next task (no fallback to one-off sessions is logged).
#[test]
fn ssh_large_module_arrives_intact_and_a_failed_upload_fails_only_its_task() {
    let sshd = node_sshd();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let inv = setup(dir, &sshd, "");
    let sha = write_big_module(dir);
    // the remote name of an upload is `<module>-<first 16 hex digits of its sha256>`, in the
    // connection's temp dir, where the args file of a module run is too: a directory of that
    // name there makes the upload fail
    write_module(
        dir,
        "blocker",
        &format!(
            "#!/bin/sh\nmkdir \"$(dirname \"$1\")/big-{}\" && echo '{{\"changed\": true}}'\n",
            &sha[..16]
        ),
    );
    let pb = write_file(
        dir,
        "pb.yml",
        r#"- hosts: n1,n2
  gather_facts: false
  tasks:
    - name: block the upload on n1
      blocker:
      when: inventory_hostname == 'n1'
    - name: big
      big:
      register: b
      ignore_errors: true
    - name: after
      command: echo still here
      register: after
    - assert:
        that: after.stdout == 'still here'
"#,
    );
    // with the persistent shell (chunked upload), and with a session per command
    for no_shell in [None, Some("1")] {
        let mut agent = Agent::in_dir(dir)
            .playbook(&inv, &pb)
            .arg("-v")
            .log(TRANSPORT_DEBUG);
        if let Some(v) = no_shell {
            agent = agent.env("ETCD_AGENT_NO_SHELL", v);
        }
        let out = agent.run();
        out.expect_exit(0);
        let (stdout, stderr) = (&out.stdout, &out.stderr);
        assert!(
            stdout.contains(&format!("\"sha256\": \"{sha}\"")),
            "n2 ran the module as uploaded:\n{stdout}"
        );
        let fatal = stdout
            .lines()
            .find(|l| l.starts_with("fatal: [n1]"))
            .unwrap_or_else(|| panic!("n1's upload fails:\n{stdout}"));
        assert!(
            fatal.contains("uploading module big failed")
                && fatal.matches("Is a directory").count() == 1,
            "one error, not one per chunk: {fatal}"
        );
        assert!(
            stdout.contains("n1                         : ok=4    changed=2    unreachable=0    failed=0    skipped=0    rescued=0    ignored=1"),
            "{stdout}"
        );
        assert!(
            !stderr.contains("falling back"),
            "the persistent shell kept working:\n{stderr}"
        );
    }
}

/// Where `head -c` reads past its count (BusyBox's does: it reads through stdio buffers), the
/// remote shell loop cuts requests with `dd` instead, and large uploads and stdin go in a
/// session of their own. n3's sessions find such a `head` first in PATH; the same playbook
/// must give the same results on n1 (exact head) and n3, with no fallback.
#[test]
fn ssh_remote_shell_where_head_reads_past_its_count_uses_dd() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let head = write_file(
        dir,
        "overreading-bin/head",
        "#!/bin/sh\ndd bs=65536 count=1 2>/dev/null | /usr/bin/head \"$@\"\n",
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&head, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let bin = head.parent().unwrap();
    // SetEnv in a Match block replaces the global list: keep SHLVL (see Sshd::config)
    let sshd = Sshd::start_with(
        &NODE_IPS,
        &format!(
            "Match LocalAddress {}\n  SetEnv SHLVL=1 PATH={}:/usr/bin:/bin\n",
            NODE_IPS[2],
            bin.display()
        ),
    );
    let inv = setup(dir, &sshd, "");
    let sha = write_big_module(dir);
    // stdin above the dd loop's limit (64 KiB) goes in a session of its own
    let big_stdin: String = (0..20_000).map(|i| format!("{i:05}\n")).collect();
    write_file(dir, "big_stdin.txt", &big_stdin);
    let pb = write_file(
        dir,
        "pb.yml",
        r#"- hosts: n1,n3
  gather_facts: false
  tasks:
    - name: which head
      shell: printf ab | { head -c 1 >/dev/null; cat; }
      register: probe_head
    - name: big
      big:
      register: b
    - name: args file
      probe:
        word: "{{ inventory_hostname }}"
      register: p
    - name: small stdin
      command: cat
      args:
        stdin: "line one\nline two"
      register: small
    - name: large stdin
      shell: sha256sum | cut -d' ' -f1
      args:
        stdin: "{{ lookup('file', 'big_stdin.txt') }}"
      register: large
    - name: after
      command: echo still here
      register: after
    - debug:
        msg: "head={{ probe_head.stdout }} sha={{ b.sha256 }} word={{ p.args.word }} small={{ small.stdout_lines | join('|') }} large={{ large.stdout }} after={{ after.stdout }}"
"#,
    );
    let out = Agent::in_dir(dir)
        .playbook(&inv, &pb)
        .log(TRANSPORT_DEBUG)
        .run();
    out.expect_exit(0);
    let (stdout, stderr) = (&out.stdout, &out.stderr);
    // `lookup('file')` drops the final newline and `stdin_add_newline` puts it back
    let large_sha = sha256_hex(&big_stdin);
    for (host, head) in [("n1", "b"), ("n3", "")] {
        let want = format!(
            "\"msg\": \"head={head} sha={sha} word={host} small=line one|line two large={large_sha} after=still here\""
        );
        let shown = stdout
            .split(&format!("ok: [{host}] => "))
            .nth(1)
            .unwrap_or_default();
        assert!(shown.contains(&want), "{host}: want {want}\n{stdout}");
    }
    for (ip, exact) in [(NODE_IPS[0], true), (NODE_IPS[2], false)] {
        assert!(
            stderr.lines().any(|l| l.contains("persistent shell ready")
                && l.contains(&format!("@{ip}:"))
                && l.contains(&format!("exact_head={exact}"))),
            "{ip}: exact_head={exact}\n{stderr}"
        );
    }
    assert!(
        !stderr.contains("falling back") && !stderr.contains("no persistent shell"),
        "the persistent shells kept working:\n{stderr}"
    );
}

/// `--ssh-common-args` and `--ssh-extra-args` go to every ssh connection whose host does not
/// set `ansible_ssh_common_args`/`ansible_ssh_extra_args` (a host variable replaces the
/// command line's value, as in Ansible), compared with ansible-playbook over the same sshd.
/// The sshd's host key is known only to the known_hosts file the extra args name, and host
/// key checking is strict: a host reached without those args is unreachable.
#[test]
fn ssh_common_and_extra_args_reach_every_host_unless_its_variables_say() {
    let sshd = node_sshd();
    let ansible = harness::Ansible::new();
    let base = |ip: Ipv4Addr| {
        format!(
            "ansible_host={ip} ansible_port={} ansible_user={} ansible_ssh_private_key_file={}",
            sshd.port(),
            sshd.user(),
            sshd.client_key().display()
        )
    };
    let inv = ansible.write_file(
        "hosts.ini",
        &format!(
            "[nodes]\nn1 {}\nn2 {} ansible_ssh_common_args='-o BatchMode=yes'\nn3 {} ansible_ssh_extra_args='-o UserKnownHostsFile=/dev/null'\n",
            base(NODE_IPS[0]),
            base(NODE_IPS[1]),
            base(NODE_IPS[2])
        ),
    );
    let pb = ansible.write_file(
        "p.yml",
        "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - name: reach\n      raw: echo reached\n",
    );
    let common = "-o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes -o PasswordAuthentication=no";
    let extra = format!("-o UserKnownHostsFile={}", sshd.known_hosts().display());
    let args = [
        "-i",
        inv.to_str().unwrap(),
        pb.to_str().unwrap(),
        "-f",
        "1",
        "--ssh-common-args",
        common,
        "--ssh-extra-args",
        &extra,
    ];
    let theirs = ansible.playbook(&inv, &pb, &args[3..]);
    let mine = Agent::in_sandbox(&ansible)
        .sandbox_env(&ansible)
        .arg("playbook")
        .args(args)
        .run();
    let outcome = |stdout: &str| -> Vec<String> {
        stdout
            .lines()
            .filter(|l| {
                l.starts_with("changed: [") || l.starts_with("fatal: [") || l.contains(" : ok=")
            })
            .map(|l| l.split(" => ").next().unwrap_or(l).trim_end().to_string())
            .collect()
    };
    assert_eq!(theirs.status.code(), Some(4), "{}", theirs.describe());
    mine.expect_exit(4);
    assert_eq!(
        outcome(&mine.stdout),
        outcome(&theirs.stdout),
        "{}\n{}",
        theirs.stdout,
        mine.stdout
    );
    let stdout = &mine.stdout;
    assert!(stdout.contains("changed: [n1]"), "{stdout}");
    assert!(stdout.contains("changed: [n2]"), "{stdout}");
    assert!(stdout.contains("fatal: [n3]: UNREACHABLE!"), "{stdout}");
    // without the extra args no host's key is known
    let without = Agent::in_sandbox(&ansible)
        .sandbox_env(&ansible)
        .arg("playbook")
        .args(&args[..7])
        .run();
    without.expect_exit(4);
    assert!(
        without.stdout.contains("fatal: [n1]: UNREACHABLE!"),
        "{}",
        without.stdout
    );
}
