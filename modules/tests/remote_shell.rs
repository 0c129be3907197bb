//! The compiled remote shell loop (`etcd_modules --etcd-agent-shell-v2`), driven as
//! etcd-agent drives it: greeting, commands, uploads, and what is left when it ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

struct Loop {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    greeting: Vec<String>,
    dir: PathBuf,
}

fn start(tmp: &Path, args: &[&str]) -> Loop {
    let mut child = Command::new(env!("CARGO_BIN_EXE_etcd_modules"))
        .arg("--etcd-agent-shell-v2")
        .args(args)
        .env("TMPDIR", tmp)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the loop");
    let stdin = child.stdin.take();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut greeting = Vec::new();
    loop {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let line = line.trim_end().to_string();
        let ready = line.starts_with("ETCD_AGENT_SHELL_READY ");
        greeting.push(line);
        if ready {
            break;
        }
        assert!(greeting.len() < 10, "{greeting:?}");
    }
    let last: Vec<&str> = greeting.last().unwrap().splitn(4, ' ').collect();
    assert_eq!(last[1], "native", "{greeting:?}");
    assert_eq!(last[2], std::env::consts::ARCH, "{greeting:?}");
    let dir = PathBuf::from(last[3]);
    Loop {
        child,
        stdin,
        stdout,
        greeting,
        dir,
    }
}

impl Loop {
    fn send(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    fn reply(&mut self) -> (i32, String, String) {
        let mut header = String::new();
        self.stdout.read_line(&mut header).unwrap();
        let nums: Vec<usize> = header
            .split_whitespace()
            .map(|w| w.parse().unwrap())
            .collect();
        let mut out = vec![0; nums[1]];
        self.stdout.read_exact(&mut out).unwrap();
        let mut err = vec![0; nums[2]];
        self.stdout.read_exact(&mut err).unwrap();
        (
            nums[0] as i32,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    fn exec(&mut self, cmd: &str, stdin: &str) -> (i32, String, String) {
        self.send(&request(cmd, stdin));
        self.reply()
    }

    /// Closes stdin and waits; the exit code.
    fn close(mut self) -> i32 {
        drop(self.stdin.take());
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

/// A command request as etcd-agent frames it.
fn request(cmd: &str, stdin: &str) -> Vec<u8> {
    let mut req = format!("{} {}\n", cmd.len(), stdin.len()).into_bytes();
    req.extend_from_slice(cmd.as_bytes());
    req.extend_from_slice(stdin.as_bytes());
    req
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn alive(pid: i32) -> bool {
    // a zombie (nobody reaps here) counts as gone
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[test]
fn commands_run_with_their_stdin_exit_codes_and_output() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sh = start(tmp.path(), &["etcd-agent-run-00aa", "-"]);
    assert_eq!(sh.greeting.len(), 1);
    assert!(sh.dir.starts_with(tmp.path()));
    let owner = std::fs::read_to_string(sh.dir.join(".owner")).unwrap();
    assert_eq!(owner, format!("etcd-agent-run-00aa {}\n", sh.child.id()));

    assert_eq!(
        sh.exec("echo out; echo err >&2; exit 3", ""),
        (3, "out\n".into(), "err\n".into())
    );
    // stdin, with bytes after it in the same write: the framing holds
    let mut req = request("cat", "hello");
    req.extend_from_slice(&request("echo $((6*7))", ""));
    sh.send(&req);
    assert_eq!(sh.reply(), (0, "hello".into(), String::new()));
    assert_eq!(sh.reply(), (0, "42\n".into(), String::new()));
    // a command killed by a signal answers 128 + its number, as /bin/sh's wait does
    assert_eq!(sh.exec("kill -s KILL $$", "").0, 137);
    // its own session, the login umask, INT at its default
    let (rc, out, _) = sh.exec(
        "ps -o sid= -p $$; echo $$; umask; grep SigIgn /proc/$$/status",
        "",
    );
    assert_eq!(rc, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].trim(), lines[1].trim(), "{out}");
    let mine = unsafe { libc::umask(0o022) };
    unsafe { libc::umask(mine) };
    assert_eq!(lines[2], format!("{mine:04o}"));
    let ignored = u64::from_str_radix(lines[3].split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(ignored & (1 << (libc::SIGINT - 1)), 0, "{out}");
    // the loop's own files are gone after each command
    let names: Vec<String> = std::fs::read_dir(&sh.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [".owner"]);

    let dir = sh.dir.clone();
    assert_eq!(sh.close(), 0);
    assert!(!dir.exists());
}

#[test]
fn puts_write_private_executables_piece_by_piece() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sh = start(tmp.path(), &["etcd-agent-run-00aa", "-"]);
    sh.send(b"put 12 tool\n7\n#!/bin/");
    let mut ack = String::new();
    sh.stdout.read_line(&mut ack).unwrap();
    assert_eq!(ack, "+\n");
    sh.send(b"5\nsh\n:\n");
    ack.clear();
    sh.stdout.read_line(&mut ack).unwrap();
    assert_eq!(ack, "+\n");
    assert_eq!(sh.reply(), (0, String::new(), String::new()));
    let path = sh.dir.join("tool");
    assert_eq!(std::fs::read(&path).unwrap(), b"#!/bin/sh\n:\n");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o700
    );
    // an empty file takes the header alone; an unsafe name is refused, its bytes read
    sh.send(b"put 0 empty\n");
    assert_eq!(sh.reply().0, 0);
    assert_eq!(std::fs::read(sh.dir.join("empty")).unwrap(), b"");
    sh.send(b"put 2 ../x\n2\nab");
    let mut ack = String::new();
    sh.stdout.read_line(&mut ack).unwrap();
    let (rc, _, err) = sh.reply();
    assert_eq!(rc, 1);
    assert!(err.contains("unsafe file name"), "{err}");
    assert!(!tmp.path().join("x").exists());
    assert_eq!(sh.exec("echo still here", "").1, "still here\n");
    sh.close();
}

#[test]
fn the_greeting_names_cached_modules_and_dead_runs_are_cleaned() {
    let tmp = tempfile::tempdir().unwrap();
    let uid = unsafe { libc::geteuid() };
    let cache = tmp.path().join(format!("etcd-agent-modules-{uid}"));
    std::fs::create_dir(&cache).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let module = cache.join("etcd_health-abc");
    std::fs::write(&module, "x").unwrap();
    std::fs::set_permissions(&module, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(cache.join("not_executable-abc"), "x").unwrap();
    std::os::unix::fs::symlink(&module, cache.join("linked-abc")).unwrap();

    // a dir of a run that is gone, one that lives (this test), an old one without a pid
    let dead = tmp.path().join("etcd-agent.dead0000");
    let live = tmp.path().join("etcd-agent.live0000");
    let old = tmp.path().join("etcd-agent.old00000");
    for (dir, owner) in [
        (&dead, "etcd-agent-run-00ff 2147483000\n".to_string()),
        (
            &live,
            format!("etcd-agent-run-00ff {}\n", std::process::id()),
        ),
        (&old, "etcd-agent-run-00ff\n".to_string()),
    ] {
        std::fs::create_dir(dir).unwrap();
        std::fs::write(dir.join(".owner"), owner).unwrap();
    }
    let sh = start(
        tmp.path(),
        &[
            "etcd-agent-run-00aa",
            "clean",
            "etcd_health-abc",
            "+etcd_health-abc",
            "not_executable-abc",
            "linked-abc",
            "missing-abc",
        ],
    );
    assert_eq!(
        sh.greeting[..sh.greeting.len() - 1],
        [format!("ETCD_AGENT_CACHED {}", module.display())]
    );
    wait_until("the dead run's dir to go", || !dead.exists());
    assert!(live.exists() && old.exists());
    let own = sh.dir.clone();
    assert!(own.exists());
    sh.close();
}

#[test]
fn stdin_ending_during_a_command_stops_its_process_group() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sh = start(tmp.path(), &["etcd-agent-run-00aa", "-"]);
    let pids = tmp.path().join("pids");
    let cmd = format!(
        "sleep 600 & echo $! > {0}.tmp; echo $$ >> {0}.tmp; mv {0}.tmp {0}; wait",
        pids.display()
    );
    sh.send(&request(&cmd, ""));
    wait_until("the command to start", || pids.exists());
    let pids: Vec<i32> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let dir = sh.dir.clone();
    assert_eq!(sh.close(), 143);
    assert!(!dir.exists());
    for pid in pids {
        wait_until("the command's processes to end", || !alive(pid));
    }
}

#[test]
fn sigterm_removes_the_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sh = start(tmp.path(), &["etcd-agent-run-00aa", "-"]);
    assert_eq!(sh.exec("true", "").0, 0);
    let dir = sh.dir.clone();
    unsafe { libc::kill(sh.child.id() as i32, libc::SIGTERM) };
    let status = sh.child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    assert!(!dir.exists());
}

#[test]
fn long_commands_and_background_processes_holding_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sh = start(tmp.path(), &["etcd-agent-run-00aa", "-"]);
    // longer than an argv string may be; and a command's text is not in its argv
    let long = format!(
        "# {}\necho long; cat /proc/$$/cmdline",
        "x".repeat(200 * 1024)
    );
    let (rc, out, _) = sh.exec(&long, "");
    assert_eq!(rc, 0);
    assert!(out.starts_with("long\n"), "{out}");
    assert!(!out.contains("xxxx"), "{out}");
    // a background process that keeps stdout and stderr open does not hold up the answer
    let pidfile = tmp.path().join("bg.pid");
    let (rc, out, _) = sh.exec(
        &format!("sleep 600 & echo $! > {}; echo started", pidfile.display()),
        "",
    );
    assert_eq!((rc, out.as_str()), (0, "started\n"));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let names: Vec<String> = std::fs::read_dir(&sh.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [".owner"]);
    sh.close();
}

/// A `mod` request as etcd-agent frames it.
fn module_request(args: &str, check: bool, args_name: &str, path: &Path) -> Vec<u8> {
    let mut req = format!(
        "mod {} {} {args_name} {}\n",
        args.len(),
        if check { 1 } else { 0 },
        path.display()
    )
    .into_bytes();
    req.extend_from_slice(args.as_bytes());
    req
}

#[test]
fn modules_run_on_their_args_file_and_cached_ones_are_checked_first() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let uid = unsafe { libc::geteuid() };
    let cache = tmp.path().join(format!("etcd-agent-modules-{uid}"));
    std::fs::create_dir(&cache).unwrap();
    // prints its args file's name, content and mode, and what is beside it
    let module = cache.join("probe-abc");
    std::fs::write(
        &module,
        "#!/bin/sh\necho \"$1\"; cat \"$1\"; echo; stat -c %a \"$1\"; echo err >&2; exit 4\n",
    )
    .unwrap();
    std::fs::set_permissions(&module, std::fs::Permissions::from_mode(0o700)).unwrap();
    let old = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    std::fs::File::options()
        .write(true)
        .open(&module)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let mut sh = start(tmp.path(), &["etcd-agent-run-00aa", "-"]);
    sh.send(&module_request("{\"a\": 1}", true, "args-1", &module));
    let (rc, out, err) = sh.reply();
    let args_path = sh.dir.join("args-1");
    assert_eq!(
        (rc, out, err),
        (
            4,
            format!("{}\n{{\"a\": 1}}\n600\n", args_path.display()),
            "err\n".into()
        )
    );
    assert!(!args_path.exists(), "the args file is removed");
    let touched = std::fs::metadata(&module).unwrap().modified().unwrap();
    assert!(touched > old, "a cached module is touched when used");
    // gone from the cache: the answer of etcd-agent's recorded command, nothing run
    let missing = cache.join("gone-abc");
    sh.send(&module_request("{}", true, "args-2", &missing));
    assert_eq!(
        sh.reply(),
        (97, "ETCD_AGENT_MODULE_NOT_CACHED\n".into(), String::new())
    );
    // not ours to trust as a cache entry (a symlink), but runnable when not checked
    let link = cache.join("link-abc");
    std::os::unix::fs::symlink(&module, &link).unwrap();
    sh.send(&module_request("{}", true, "args-3", &link));
    assert_eq!(sh.reply().0, 97);
    sh.send(&module_request("{}", false, "args-4", &link));
    assert_eq!(sh.reply().0, 4);
    // an args file name that is not a plain one is refused
    sh.send(&module_request("{}", false, "../x", &module));
    let (rc, _, err) = sh.reply();
    assert_eq!(rc, 1);
    assert!(err.contains("unsafe args file name"), "{err}");
    assert_eq!(sh.exec("echo ok", "").1, "ok\n");
    sh.close();
}
