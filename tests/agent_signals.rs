//! `etcd-agent` stops cleanly (issue 12), judged on the real sshd of the harness (local, so
//! its processes and temp dirs are visible here): Ctrl-C during a long remote command, a
//! second Ctrl-C, `kill -9` of the agent (its masters expire by themselves, the next run
//! removes what a crashed run left, never the dir of a live run), and reuse of a kept master.
//!
//! ansible-playbook 2.19, interrupted the same way on the same sshd, exits with 99 after
//! `[ERROR]: User interrupted execution` within about 0.2 s, and its remote command is gone:
//! the agent's target is 2 s; the tests allow 10 s against a loaded machine. On SIGTERM
//! ansible-playbook exits with 143 and says nothing.

use harness::process::send_signal;
use harness::{agent_command, poll_until, Sshd};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Bound for everything that should happen at once (stopping, killing, removing).
const QUICK: Duration = Duration::from_secs(10);
/// Bound for slower things (a run to reach its remote command, a master to expire).
const SLOW: Duration = Duration::from_secs(90);

/// A running agent with its output in files; killed and reaped on drop.
struct Run {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Run {
    fn start(dir: &Path, name: &str, args: &[&str]) -> Run {
        Run::start_env(dir, name, args, &[])
    }

    fn start_env(dir: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
        let stdout = dir.join(format!("{name}.stdout"));
        let stderr = dir.join(format!("{name}.stderr"));
        let mut cmd = agent_command(dir, &dir.join("ansible.cfg"));
        cmd.args(args)
            .env("RUST_LOG", "etcd_agent::transport=debug")
            .envs(env.iter().copied())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap());
        // agent_command: the agent dies with the test
        Run {
            child: cmd.spawn().expect("spawn etcd-agent"),
            stdout,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    fn describe(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout(), self.stderr())
    }

    /// The remote temp dir of the run's persistent shell, once it is ready.
    fn remote_dir(&self) -> PathBuf {
        let found = poll_until(SLOW, || {
            self.stderr()
                .lines()
                .find(|l| l.contains("persistent shell ready"))
                .and_then(|l| l.split("dir=").nth(1))
                .map(|d| PathBuf::from(d.split_whitespace().next().unwrap_or_default()))
        });
        found.unwrap_or_else(|| panic!("no persistent shell reported\n{}", self.describe()))
    }

    /// The run's local control dir (`/tmp/etcd-agent-ssh*`), from its log.
    fn control_dir(&self) -> PathBuf {
        let found = poll_until(SLOW, || {
            self.stderr()
                .lines()
                .find(|l| l.contains("connection pool"))
                .and_then(|l| l.split("control_dir=").nth(1))
                .map(|d| PathBuf::from(d.split_whitespace().next().unwrap_or_default()))
        });
        found.unwrap_or_else(|| panic!("no control dir reported\n{}", self.describe()))
    }

    fn wait(&mut self, within: Duration) -> ExitStatus {
        match poll_until(within, || self.child.try_wait().ok().flatten()) {
            Some(st) => st,
            None => panic!(
                "etcd-agent still running after {within:?}\n{}",
                self.describe()
            ),
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Command lines (NULs as spaces) of the live, non-zombie processes on this machine.
fn processes() -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if !harness::pid_alive(pid) {
            continue;
        }
        if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
            let line = String::from_utf8_lossy(&raw).replace('\0', " ");
            out.push((pid, line.trim_end().to_string()));
        }
    }
    out
}

/// Live processes whose command line contains `needle` (this test process excluded).
fn matching(needle: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    processes()
        .into_iter()
        .filter(|(pid, line)| *pid != me && line.contains(needle))
        .collect()
}

/// The agent's local helpers for this sshd: ssh masters and session clients talking to its
/// port, and relays connecting to it.
fn local_ssh_for(sshd: &Sshd) -> Vec<(u32, String)> {
    let port = sshd.port().to_string();
    processes()
        .into_iter()
        .filter(|(_, line)| {
            let words: Vec<&str> = line.split(' ').collect();
            let relay =
                words.iter().any(|w| w.ends_with("__ssh-relay")) && words.contains(&port.as_str());
            let ssh = words.first().is_some_and(|w| w.ends_with("ssh"))
                && words.windows(2).any(|w| w == ["-p", port.as_str()]);
            relay || ssh
        })
        .collect()
}

/// The local control dirs (`/tmp/etcd-agent-ssh*`) of the masters for this sshd.
fn control_dirs_for(sshd: &Sshd) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = local_ssh_for(sshd)
        .iter()
        .filter_map(|(_, line)| {
            let words: Vec<&str> = line.split(' ').collect();
            let i = words.iter().position(|w| *w == "-S")?;
            let socket = Path::new(words.get(i + 1)?);
            Some(socket.parent()?.parent()?.to_path_buf())
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

fn wait_gone(what: &str, within: Duration, mut left: impl FnMut() -> Vec<(u32, String)>) {
    if poll_until(within, || left().is_empty().then_some(())).is_none() {
        panic!("{what} still there after {within:?}: {:?}", left());
    }
}

fn wait_dir_gone(dir: &Path, within: Duration) {
    if poll_until(within, || (!dir.exists()).then_some(())).is_none() {
        panic!("remote temp dir {} left behind", dir.display());
    }
}

/// A unique `sleep` duration, so that this test's remote command is told from any other.
fn unique_sleep() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}.{:09}", 300 + std::process::id() % 97, nanos)
}

/// An inventory of one host on `sshd`, a playbook sleeping `sleep` seconds on it, a quick
/// playbook, and `ansible.cfg` with `ssh_args` (and a private `control_path_dir`).
fn setup(dir: &Path, sshd: &Sshd, sleep: &str, ssh_args: &str) {
    std::fs::write(
        dir.join("hosts.ini"),
        format!("[nodes]\nn1 {}\n", sshd.inventory_host_vars()),
    )
    .unwrap();
    std::fs::write(
        dir.join("sleep.yml"),
        format!(
            "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - name: long\n      command: sleep {sleep}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("quick.yml"),
        "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - name: quick\n      command: echo hi\n",
    )
    .unwrap();
    let cp = dir.join("cp");
    std::fs::write(
        dir.join("ansible.cfg"),
        format!(
            "[ssh_connection]\nssh_args = {ssh_args}\ncontrol_path_dir = {}\n",
            cp.display()
        ),
    )
    .unwrap();
}

/// Starts the sleep playbook and waits until its remote sleep runs; returns the run and
/// its remote temp dir.
fn start_sleeping(dir: &Path, name: &str, sleep: &str) -> (Run, PathBuf) {
    let run = Run::start(dir, name, &["playbook", "-i", "hosts.ini", "sleep.yml"]);
    let needle = format!("sleep {sleep}");
    if poll_until(SLOW, || (!matching(&needle).is_empty()).then_some(())).is_none() {
        panic!("remote sleep never started\n{}", run.describe());
    }
    let remote = run.remote_dir();
    assert!(remote.is_dir(), "remote temp dir {}", remote.display());
    (run, remote)
}

/// After an interrupt: the remote sleep, the temp dir and every local ssh helper are gone.
fn assert_cleaned_up(sshd: &Sshd, sleep: &str, remote: &Path) {
    wait_gone("remote command", QUICK, || {
        matching(&format!("sleep {sleep}"))
    });
    wait_dir_gone(remote, QUICK);
    wait_gone("local ssh master/relay", QUICK, || local_ssh_for(sshd));
}

fn quick_run(dir: &Path, name: &str) -> Run {
    let mut run = Run::start(dir, name, &["playbook", "-i", "hosts.ini", "quick.yml"]);
    let st = run.wait(SLOW);
    assert!(st.success(), "{name} failed: {st}\n{}", run.describe());
    run
}

#[test]
fn sigint_stops_the_run_kills_the_remote_command_and_removes_its_temp_dir() {
    let sshd = Sshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sleep = unique_sleep();
    setup(dir, &sshd, &sleep, "");
    let (mut run, remote) = start_sleeping(dir, "int", &sleep);
    // a master the run does not keep still expires by itself when idle (should the agent be
    // killed before it stops it), after Ansible's 60 s; it used to be ControlPersist=yes
    let masters: Vec<String> = local_ssh_for(&sshd)
        .into_iter()
        .map(|(_, line)| line)
        .filter(|l| l.contains(" -M "))
        .collect();
    assert_eq!(masters.len(), 1, "{masters:?}");
    assert!(masters[0].contains("ControlPersist=60s"), "{}", masters[0]);
    let t = Instant::now();
    send_signal(run.child.id(), libc::SIGINT);
    let st = run.wait(QUICK);
    let took = t.elapsed();
    assert_eq!(st.code(), Some(99), "Ansible's code\n{}", run.describe());
    assert!(
        run.stderr().contains("[ERROR]: User interrupted execution"),
        "{}",
        run.describe()
    );
    eprintln!("etcd-agent stopped {took:?} after SIGINT (target 2 s)");
    assert_cleaned_up(&sshd, &sleep, &remote);
}

#[test]
fn sigterm_cleans_up_as_sigint_does() {
    let sshd = Sshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sleep = unique_sleep();
    setup(dir, &sshd, &sleep, "");
    let (mut run, remote) = start_sleeping(dir, "term", &sleep);
    send_signal(run.child.id(), libc::SIGTERM);
    // the shell's code for a death by SIGTERM
    assert_eq!(run.wait(QUICK).code(), Some(143), "{}", run.describe());
    // as ansible-playbook (checked on the same sshd): no message
    assert!(!run.stderr().contains("interrupted"), "{}", run.describe());
    assert_cleaned_up(&sshd, &sleep, &remote);
}

#[test]
fn a_second_sigint_stops_at_once_and_the_remote_command_still_dies() {
    let sshd = Sshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sleep = unique_sleep();
    setup(dir, &sshd, &sleep, "");
    let (mut run, remote) = start_sleeping(dir, "int2", &sleep);
    let t = Instant::now();
    send_signal(run.child.id(), libc::SIGINT);
    poll_until(QUICK, || {
        run.stderr().contains("User interrupted").then_some(())
    });
    send_signal(run.child.id(), libc::SIGINT);
    let st = run.wait(QUICK);
    assert_eq!(st.code(), Some(99), "{}", run.describe());
    eprintln!("etcd-agent stopped {:?} after two SIGINTs", t.elapsed());
    assert_cleaned_up(&sshd, &sleep, &remote);
}

#[test]
fn after_kill_9_the_remote_command_dies_and_the_kept_master_expires_by_itself() {
    let sshd = Sshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sleep = unique_sleep();
    setup(
        dir,
        &sshd,
        &sleep,
        "-o ControlMaster=auto -o ControlPersist=3s",
    );
    let (mut run, remote) = start_sleeping(dir, "kill9", &sleep);
    assert!(
        !local_ssh_for(&sshd).is_empty(),
        "the master runs while the agent does"
    );
    send_signal(run.child.id(), libc::SIGKILL);
    run.wait(QUICK);
    // the master drops the agent's channels: the remote shell's watcher kills the command
    assert_cleaned_up(&sshd, &sleep, &remote);
    // and the master and its relay end 3 s after their last session
    wait_gone("kept ssh master", SLOW, || local_ssh_for(&sshd));
    // the next run removes the killed run's local control dir
    let control = run.control_dir();
    let _next = quick_run(dir, "after-kill9");
    assert!(!control.exists(), "{} left behind", control.display());
}

/// With etcd-agent's own module in the host's cache, the remote shell is that binary's
/// compiled loop: SIGINT and kill -9 of the agent stop the remote command and remove the
/// temp dir there too.
#[test]
fn the_compiled_remote_shell_cleans_up_on_sigint_and_on_kill_9() {
    let sshd = Sshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sleep = unique_sleep();
    // kept masters keep modules in the host's cache
    setup(
        dir,
        &sshd,
        &sleep,
        "-o ControlMaster=auto -o ControlPersist=3s",
    );
    std::fs::create_dir_all(dir.join("library")).unwrap();
    std::fs::copy(
        harness::module_binary("etcd_health"),
        dir.join("library/etcd_health"),
    )
    .unwrap();
    // the module first (its run caches it on the host), then the sleep
    let health = "    - etcd_health:\n        endpoints: http://127.0.0.1:9\n        wait_timeout: 0\n      ignore_errors: true\n";
    std::fs::write(
        dir.join("sleep.yml"),
        format!("- hosts: nodes\n  gather_facts: false\n  tasks:\n{health}    - command: sleep {sleep}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("cache.yml"),
        format!("- hosts: nodes\n  gather_facts: false\n  tasks:\n{health}"),
    )
    .unwrap();
    let mut first = Run::start(dir, "cache", &["playbook", "-i", "hosts.ini", "cache.yml"]);
    assert!(first.wait(SLOW).success(), "{}", first.describe());
    // the loop's own command line (the /bin/sh loop's text names the flag too)
    let needle = "--etcd-agent-shell-v2 etcd-agent-run-";
    for (name, signal) in [
        ("native-int", libc::SIGINT),
        ("native-kill9", libc::SIGKILL),
    ] {
        let (mut run, remote) = start_sleeping(dir, name, &sleep);
        assert!(
            !matching(needle).is_empty(),
            "the compiled loop runs\n{}",
            run.describe()
        );
        send_signal(run.child.id(), signal);
        run.wait(QUICK);
        assert_cleaned_up(&sshd, &sleep, &remote);
    }
    wait_gone("compiled loops", QUICK, || matching(needle));
}

#[test]
fn the_next_run_removes_a_crashed_runs_temp_dir_but_not_a_live_runs() {
    let sshd = Sshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sleep = unique_sleep();
    setup(dir, &sshd, &sleep, "");
    // a run that crashes with its host: its remote shell dies without its exit trap
    let (mut crashed, stale) = start_sleeping(dir, "crashed", &sleep);
    let crashed_control = control_dirs_for(&sshd);
    assert_eq!(crashed_control.len(), 1, "{crashed_control:?}");
    let marker = std::fs::read_to_string(stale.join(".owner")).expect("owner marker");
    // the run's marker and its loop's pid
    let marker = marker.split_whitespace().next().unwrap_or_default();
    assert!(marker.starts_with("etcd-agent-run-"), "{marker:?}");
    for (pid, _) in matching(marker)
        .into_iter()
        .chain(matching(&format!("sleep {sleep}")))
    {
        send_signal(pid, libc::SIGKILL);
    }
    send_signal(crashed.child.id(), libc::SIGKILL);
    crashed.wait(QUICK);
    wait_gone("crashed run's remote shell", QUICK, || matching(marker));
    // (the crash leaves `stale` behind; a run of a test beside this one may remove it first)
    // a live run (another agent) on the same host
    let live_sleep = unique_sleep();
    std::fs::write(
        dir.join("sleep.yml"),
        format!(
            "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - command: sleep {live_sleep}\n"
        ),
    )
    .unwrap();
    let (mut live, live_dir) = start_sleeping(dir, "live", &live_sleep);
    let live_control: Vec<PathBuf> = control_dirs_for(&sshd)
        .into_iter()
        .filter(|d| *d != crashed_control[0])
        .collect();
    assert_eq!(live_control.len(), 1, "{live_control:?}");
    let _next = quick_run(dir, "next");
    wait_dir_gone(&stale, QUICK);
    // locally too: the crashed run's control dir goes, the live run's stays
    assert!(
        !crashed_control[0].exists(),
        "{} left behind",
        crashed_control[0].display()
    );
    assert!(
        live_control[0].is_dir(),
        "the live run's control dir was removed"
    );
    assert!(
        live_dir.is_dir(),
        "the live run's dir {} was removed",
        live_dir.display()
    );
    send_signal(live.child.id(), libc::SIGINT);
    assert_eq!(live.wait(QUICK).code(), Some(99));
    // (the crashed run's master lives on until its idle timeout: not checked here)
    wait_gone("remote command", QUICK, || {
        matching(&format!("sleep {live_sleep}"))
    });
    wait_dir_gone(&live_dir, QUICK);
}

#[test]
fn a_second_run_within_the_idle_time_reuses_the_kept_master() {
    let sshd = Sshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(
        dir,
        &sshd,
        "1",
        "-o ControlMaster=auto -o ControlPersist=60s",
    );
    let logins = || {
        std::fs::read_to_string(sshd.log_path())
            .unwrap_or_default()
            .matches("Accepted publickey")
            .count()
    };
    let before = logins();
    let first = quick_run(dir, "first");
    let after_first = logins();
    assert_eq!(after_first, before + 1, "one login\n{}", first.describe());
    let second = quick_run(dir, "second");
    assert_eq!(
        logins(),
        after_first,
        "the second run logs in again\n{}",
        second.describe()
    );
    assert!(second
        .stderr()
        .contains("reusing persistent ssh connection"));
}

#[test]
fn a_command_in_a_session_of_its_own_dies_on_sigint_and_on_kill_9() {
    // without the persistent shell (as when it is busy): one session per command
    let sshd = Sshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // a kept master: after kill -9 it stays up, so only the dropped channel tells the target
    setup(dir, &sshd, "1", "-o ControlPersist=60s");
    for (name, signal) in [("oneoff-int", libc::SIGINT), ("oneoff-kill", libc::SIGKILL)] {
        let sleep = unique_sleep();
        std::fs::write(
            dir.join("sleep.yml"),
            format!(
                "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - command: sleep {sleep}\n"
            ),
        )
        .unwrap();
        let mut run = Run::start_env(
            dir,
            name,
            &["playbook", "-i", "hosts.ini", "sleep.yml"],
            &[("ETCD_AGENT_NO_SHELL", "1")],
        );
        let needle = format!("sleep {sleep}");
        if poll_until(SLOW, || (!matching(&needle).is_empty()).then_some(())).is_none() {
            panic!("remote sleep never started\n{}", run.describe());
        }
        send_signal(run.child.id(), signal);
        let st = run.wait(QUICK);
        if signal == libc::SIGINT {
            assert_eq!(st.code(), Some(99), "{}", run.describe());
        }
        wait_gone("remote command", QUICK, || matching(&needle));
        if signal == libc::SIGKILL {
            let control = run.control_dir();
            let _next = quick_run(dir, "after-oneoff-kill");
            assert!(!control.exists(), "{} left behind", control.display());
        }
    }
}

#[test]
fn remote_commands_keep_the_default_sigint_and_sigquit() {
    // commands run beside a watcher, as background jobs, which sh starts with SIGINT and
    // SIGQUIT ignored: the agent restores them, as they are under ansible-playbook
    let sshd = Sshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir, &sshd, "1", "");
    for (name, env) in [
        ("shell", vec![]),
        ("sessions", vec![("ETCD_AGENT_NO_SHELL", "1")]),
    ] {
        let file = dir.join(format!("{name}.status"));
        std::fs::write(
            dir.join("status.yml"),
            format!(
                "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - shell: grep SigIgn /proc/self/status > {}\n",
                file.display()
            ),
        )
        .unwrap();
        let mut run = Run::start_env(
            dir,
            name,
            &["playbook", "-i", "hosts.ini", "status.yml"],
            &env,
        );
        assert!(run.wait(SLOW).success(), "{}", run.describe());
        let text = std::fs::read_to_string(&file).unwrap();
        let mask = u64::from_str_radix(text.split_whitespace().nth(1).unwrap(), 16).unwrap();
        let int_quit = (1 << (libc::SIGINT - 1)) | (1 << (libc::SIGQUIT - 1));
        assert_eq!(mask & int_quit, 0, "{name}: ignored signals {text}");
    }
}

#[test]
fn a_local_command_and_what_it_started_die_on_sigint_and_on_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sleep = unique_sleep();
    std::fs::write(dir.join("ansible.cfg"), "").unwrap();
    std::fs::write(
        dir.join("hosts.ini"),
        "[me]\nlocalhost ansible_connection=local\n",
    )
    .unwrap();
    // `; true`: the shell waits for sleep as a child of its own instead of becoming it
    std::fs::write(
        dir.join("local.yml"),
        format!("- hosts: me\n  gather_facts: false\n  tasks:\n    - shell: sleep {sleep}; true\n"),
    )
    .unwrap();
    for (name, signal) in [("local-int", libc::SIGINT), ("local-kill", libc::SIGKILL)] {
        let mut run = Run::start(dir, name, &["playbook", "-i", "hosts.ini", "local.yml"]);
        let needle = format!("sleep {sleep}");
        if poll_until(SLOW, || (!matching(&needle).is_empty()).then_some(())).is_none() {
            panic!("local sleep never started\n{}", run.describe());
        }
        send_signal(run.child.id(), signal);
        let st = run.wait(QUICK);
        if signal == libc::SIGINT {
            assert_eq!(st.code(), Some(99), "{}", run.describe());
        }
        wait_gone("local command", QUICK, || matching(&needle));
    }
}
