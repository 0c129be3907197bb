//! etcd-agent's remote shell loop, compiled: what the agent's `/bin/sh` loop
//! (`agent/src/transport/shell.rs`) does, without a helper program per step.
//!
//! etcd-agent keeps one shell per SSH connection and sends it framed requests. Its `/bin/sh`
//! loop runs `mktemp`, `env`, `uname`, `id` and `head` to start, and `setsid`, `env`, `head`,
//! `wc`, `cat` and `rm` for every command: on a fleet of small hosts those programs cost
//! more CPU than the modules. When this binary is already in the host's module cache, the
//! agent's start line runs it as `<binary> --etcd-agent-shell-v2 MARKER CLEAN ENTRY...`
//! instead (see [`FLAG`]); it speaks the same protocol:
//!
//! - at start: a private temp dir (`${TMPDIR:-/tmp}/etcd-agent.XXXXXXXX`, mode 0700) with
//!   `.owner` (`MARKER PID`); with `CLEAN` = `clean`, dirs of etcd-agent shells whose pid is
//!   gone are removed in the background; a line `ETCD_AGENT_CACHED <path>` for each `ENTRY`
//!   (a `<name>-<sha256>`) the host's module cache holds; then
//!   `ETCD_AGENT_SHELL_READY native <uname -m> <dir>`;
//! - `<cmd_len> <stdin_len>\n<cmd><stdin>`: runs `/bin/sh <private file holding cmd>` (not
//!   `-c`: a command's text stays out of the process list) in a session of its own, with
//!   the login umask, SIGINT and SIGQUIT at their defaults, stdin from an in-memory file (or `/dev/null`) and stdout/stderr into in-memory files
//!   (a background process that keeps them open never holds up the answer); answers
//!   `<rc> <out_len> <err_len>\n<out><err>` (`rc` 128 + signal for a killed command);
//! - `mod <args_len> <check> <args_name> <module_path>\n<args>`: runs a binary module as the
//!   `/bin/sh` command `umask 077 && cat > <dir>/<args_name> && { "$f" <that file>; rc=$?;
//!   rm -f <that file>; exit $rc; }` would, without the shell and its programs; with
//!   `check` = `1` the module must first pass the host cache's checks (a file of ours, not a
//!   symlink, executable, in a directory of ours), and is touched, else the answer is
//!   `ETCD_AGENT_MODULE_NOT_CACHED` with rc 97 and nothing runs (as etcd-agent's
//!   `run_recorded_command`);
//! - `put <len> <name>\n` then pieces `<n>\n<n bytes>`, each acknowledged with `+\n`:
//!   writes `<dir>/<name>` (mode 0700) and answers as a command does;
//! - end of stdin: the dir is removed and the loop exits 0. When stdin ends while a command
//!   runs (the agent was stopped), the command's process group gets SIGTERM, and SIGKILL 2 s
//!   later if anything of it is left; the dir is removed and the loop exits 143. SIGHUP,
//!   SIGTERM or SIGINT to the loop do the same at once.
//!
//! The loop never exits 126 or 127: the start line takes those as "could not run this
//! binary" (a `noexec` temp dir, another CPU's build) and falls back to `/bin/sh`.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The first argument that runs the loop instead of a module.
pub const FLAG: &str = "--etcd-agent-shell-v2";

/// Bytes etcd-agent looks for in a module file to know that the file runs the loop: a binary
/// without them is never started with [`FLAG`].
#[used]
pub static PROTOCOL_MARKER: [u8; 34] = *b"ETCD_AGENT_NATIVE_SHELL_PROTOCOL=2";

/// The loop's temp dir, for the signal thread's cleanup.
static DIR: OnceLock<PathBuf> = OnceLock::new();

/// The process group of the command under way (0: none), for the signal thread.
static RUNNING: AtomicI32 = AtomicI32::new(0);

/// What the main thread waits for.
enum Event {
    /// Bytes read from stdin.
    Input(Vec<u8>),
    /// Stdin ended (or failed).
    Eof,
    /// The command under way ended, with its `/bin/sh`-style exit code.
    Exited(i32),
}

/// Runs the loop with the arguments after [`FLAG`]; never returns.
pub fn main(args: &[OsString]) -> ! {
    let code = match run(args) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("etcd-agent shell: {msg}");
            1
        }
    };
    exit(code)
}

/// Removes the temp dir and exits with `code`.
fn exit(code: i32) -> ! {
    if let Some(dir) = DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
    std::process::exit(code)
}

fn run(args: &[OsString]) -> Result<i32, String> {
    let marker = args.first().ok_or("no run marker")?.clone();
    let clean = args.get(1).is_some_and(|a| a == "clean");
    let entries: Vec<&OsString> = args.iter().skip(2).collect();

    // Signals go to one thread, which cleans up; commands get them back (see `spawn`).
    block_exit_signals();
    let login_umask = unsafe { libc::umask(0o077) };
    let tmp = temp_root();
    let dir = make_temp_dir(&tmp)?;
    let _ = DIR.set(dir.clone());
    std::thread::spawn(wait_for_exit_signals);
    let pid = std::process::id();
    let mut owner = marker.clone().into_vec();
    owner.extend_from_slice(format!(" {pid}\n").as_bytes());
    std::fs::write(dir.join(".owner"), owner).map_err(|e| format!("writing .owner: {e}"))?;
    if clean {
        std::thread::spawn(move || remove_dead_dirs(&tmp));
    }

    let mut out = std::io::BufWriter::new(raw_stdout()?);
    let cache = cache_dir();
    for entry in entries {
        let name = entry.to_string_lossy();
        // `+<entry>` names this binary as a shell candidate; only plain entries are lookups
        if name.starts_with('+') || name.contains('/') {
            continue;
        }
        if let Some(path) = cache.as_ref().map(|c| c.join(entry)) {
            if is_ours(&path, false) && is_executable(&path) {
                line(&mut out, format!("ETCD_AGENT_CACHED {}", path.display()))?;
            }
        }
    }
    line(
        &mut out,
        format!("ETCD_AGENT_SHELL_READY native {} {}", arch(), dir.display()),
    )?;
    flush(&mut out)?;

    let (tx, rx) = channel();
    let reader_tx = tx.clone();
    std::thread::spawn(move || read_stdin(reader_tx));
    let mut input = Input {
        rx,
        buf: Vec::new(),
        pos: 0,
    };
    let mut n: u64 = 0;
    loop {
        let Some(header) = input.line()? else {
            return Ok(0);
        };
        n += 1;
        let words: Vec<&str> = header.split(' ').collect();
        match words[..] {
            ["put", len, name] => {
                let len = number(len)?;
                let reply = put(&mut input, &mut out, &dir, name, len)?;
                write_reply(&mut out, &reply)?;
            }
            [cmd_len, stdin_len] => {
                let cmd = input.exact(number(cmd_len)?)?;
                let data = input.exact(number(stdin_len)?)?;
                let run = Run::Script { n, cmd: &cmd };
                let reply = command(&mut input, &tx, &dir, run, &data, login_umask)?;
                write_reply(&mut out, &reply)?;
            }
            ["mod", args_len, check, args_name, ..] => {
                // the module's path is the rest of the line (it may hold spaces)
                let path = header.splitn(5, ' ').nth(4).unwrap_or_default().to_string();
                let args = input.exact(number(args_len)?)?;
                let reply = module(
                    &mut input,
                    &tx,
                    &dir,
                    Path::new(&path),
                    check == "1",
                    args_name,
                    &args,
                    login_umask,
                )?;
                write_reply(&mut out, &reply)?;
            }
            _ => return Err(format!("bad request header {header:?}")),
        }
    }
}

/// A request's answer: exit code, stdout, stderr.
struct Reply {
    rc: i32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn write_reply(out: &mut impl Write, reply: &Reply) -> Result<(), String> {
    let mut bytes = format!(
        "{} {} {}\n",
        reply.rc,
        reply.stdout.len(),
        reply.stderr.len()
    )
    .into_bytes();
    bytes.extend_from_slice(&reply.stdout);
    bytes.extend_from_slice(&reply.stderr);
    out.write_all(&bytes).map_err(|e| format!("stdout: {e}"))?;
    flush(out)
}

fn line(out: &mut impl Write, text: String) -> Result<(), String> {
    writeln!(out, "{text}").map_err(|e| format!("stdout: {e}"))
}

fn flush(out: &mut impl Write) -> Result<(), String> {
    out.flush().map_err(|e| format!("stdout: {e}"))
}

fn number(word: &str) -> Result<usize, String> {
    word.parse::<usize>()
        .map_err(|_| format!("bad length {word:?}"))
}

/// Stdin as the reader thread delivers it, cut into lines and exact lengths.
struct Input {
    rx: Receiver<Event>,
    buf: Vec<u8>,
    pos: usize,
}

impl Input {
    /// Waits for more input; `false` at its end.
    fn more(&mut self) -> bool {
        loop {
            match self.rx.recv() {
                Ok(Event::Input(bytes)) => {
                    self.buf.drain(..self.pos);
                    self.pos = 0;
                    self.buf.extend_from_slice(&bytes);
                    return true;
                }
                Ok(Event::Eof) | Err(_) => return false,
                // a command's end only comes while `command` waits for it
                Ok(Event::Exited(_)) => continue,
            }
        }
    }

    /// The next line without its newline; `None` at the end of input (a last line without
    /// a newline is dropped, as `read` does).
    fn line(&mut self) -> Result<Option<String>, String> {
        loop {
            if let Some(i) = self.buf[self.pos..].iter().position(|&b| b == b'\n') {
                let text = String::from_utf8_lossy(&self.buf[self.pos..self.pos + i]).into_owned();
                self.pos += i + 1;
                return Ok(Some(text));
            }
            if !self.more() {
                return Ok(None);
            }
        }
    }

    /// Exactly `len` bytes; an error when input ends first.
    fn exact(&mut self, len: usize) -> Result<Vec<u8>, String> {
        while self.buf.len() - self.pos < len {
            if !self.more() {
                return Err("input ended inside a request".into());
            }
        }
        let bytes = self.buf[self.pos..self.pos + len].to_vec();
        self.pos += len;
        Ok(bytes)
    }
}

/// The reader thread: forwards stdin in chunks, then its end.
fn read_stdin(tx: Sender<Event>) {
    let mut stdin =
        std::mem::ManuallyDrop::new(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(0) });
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match stdin.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                if tx.send(Event::Input(chunk[..n].to_vec())).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    let _ = tx.send(Event::Eof);
}

/// Stdout unbuffered (std's is line-buffered): a copy of fd 1.
fn raw_stdout() -> Result<File, String> {
    let fd1 =
        std::mem::ManuallyDrop::new(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(1) });
    fd1.try_clone().map_err(|e| format!("stdout: {e}"))
}

/// `put`: writes the pieces that follow into `dir/name` (mode 0700), acknowledging each.
fn put(
    input: &mut Input,
    out: &mut impl Write,
    dir: &Path,
    name: &str,
    len: usize,
) -> Result<Reply, String> {
    let mut errors = Vec::new();
    let valid = !name.is_empty() && !name.starts_with('.') && !name.contains('/');
    let path = dir.join(name);
    let mut file = if valid {
        File::create(&path)
            .map_err(|e| writeln!(errors, "{}: {e}", path.display()))
            .ok()
    } else {
        let _ = writeln!(errors, "unsafe file name {name:?}");
        None
    };
    let mut left = len;
    while left > 0 {
        let Some(size) = input.line()? else {
            return Err("input ended inside a put".into());
        };
        let size = number(&size)?;
        let piece = input.exact(size)?;
        if let Some(f) = file.as_mut() {
            if let Err(e) = f.write_all(&piece) {
                let _ = writeln!(errors, "{}: {e}", path.display());
                file = None;
            }
        }
        left = left.saturating_sub(size.max(1));
        line(out, "+".into())?;
        flush(out)?;
    }
    let mut ok = file.is_some();
    if ok {
        if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)) {
            let _ = writeln!(errors, "{}: {e}", path.display());
            ok = false;
        }
    }
    Ok(Reply {
        rc: if ok { 0 } else { 1 },
        stdout: Vec::new(),
        stderr: errors,
    })
}

/// What a request runs.
enum Run<'a> {
    /// A `/bin/sh` command line (`n` numbers the request, for a file of a long one).
    Script { n: u64, cmd: &'a [u8] },
    /// A binary module with its args file.
    Module { path: &'a Path, args: &'a Path },
}

/// Runs one request and collects its output; stops everything when stdin ends meanwhile.
fn command(
    input: &mut Input,
    tx: &Sender<Event>,
    dir: &Path,
    run: Run<'_>,
    data: &[u8],
    login_umask: libc::mode_t,
) -> Result<Reply, String> {
    let mut files = Vec::new();
    let spawned = (|| -> std::io::Result<(std::process::Child, File, File)> {
        let mut cmd = match run {
            // from a private file, as the `/bin/sh` loop runs it: the text of a command
            // (its environment values...) stays out of the host's process list
            Run::Script { n, cmd } => {
                let script = dir.join(format!(".c{n}"));
                std::fs::write(&script, cmd)?;
                files.push(script.clone());
                let mut c = std::process::Command::new("/bin/sh");
                c.arg(script);
                c
            }
            Run::Module { path, args } => {
                let mut c = std::process::Command::new(path);
                c.arg(args);
                c
            }
        };
        let stdin = if data.is_empty() {
            File::open("/dev/null")?
        } else {
            let mut f = memfd("stdin")?;
            f.write_all(data)?;
            f.seek(std::io::SeekFrom::Start(0))?;
            f
        };
        let stdout = memfd("stdout")?;
        let stderr = memfd("stderr")?;
        cmd.stdin(stdin)
            .stdout(stdout.try_clone()?)
            .stderr(stderr.try_clone()?);
        Ok((spawn(cmd, login_umask)?, stdout, stderr))
    })();
    let (child, mut stdout, mut stderr) = match spawned {
        Ok(s) => s,
        Err(e) => {
            remove(&files);
            return Ok(Reply {
                rc: 127,
                stdout: Vec::new(),
                stderr: format!("etcd-agent shell: running the command: {e}\n").into_bytes(),
            });
        }
    };
    let pid = child.id() as i32;
    RUNNING.store(pid, Ordering::SeqCst);
    let waiter_tx = tx.clone();
    std::thread::spawn(move || {
        let mut child = child;
        let rc = match child.wait() {
            Ok(status) => status
                .code()
                .or_else(|| status.signal().map(|s| 128 + s))
                .unwrap_or(1),
            Err(_) => 1,
        };
        let _ = waiter_tx.send(Event::Exited(rc));
    });
    let rc = loop {
        match input.rx.recv() {
            Ok(Event::Exited(rc)) => break rc,
            Ok(Event::Input(bytes)) => {
                // nothing is sent while a command runs; keep it for the next request
                input.buf.extend_from_slice(&bytes);
            }
            Ok(Event::Eof) | Err(_) => {
                stop_group(pid, &input.rx);
                exit(143)
            }
        }
    };
    RUNNING.store(0, Ordering::SeqCst);
    remove(&files);
    Ok(Reply {
        rc,
        stdout: read_from_start(&mut stdout),
        stderr: read_from_start(&mut stderr),
    })
}

/// `mod`: the checks, the args file, the module, the args file removed.
#[allow(clippy::too_many_arguments)]
fn module(
    input: &mut Input,
    tx: &Sender<Event>,
    dir: &Path,
    path: &Path,
    check: bool,
    args_name: &str,
    args: &[u8],
    login_umask: libc::mode_t,
) -> Result<Reply, String> {
    if check && !(cached_module_is_ours(path) && touch(path)) {
        return Ok(Reply {
            rc: NOT_CACHED_RC,
            stdout: format!("{NOT_CACHED}\n").into_bytes(),
            stderr: Vec::new(),
        });
    }
    if args_name.is_empty() || args_name.starts_with('.') || args_name.contains('/') {
        return Ok(Reply {
            rc: 1,
            stdout: Vec::new(),
            stderr: format!("etcd-agent shell: unsafe args file name {args_name:?}\n").into_bytes(),
        });
    }
    let args_path = dir.join(args_name);
    // written with the loop's umask 077, as `umask 077 && cat > args` writes it
    if let Err(e) = std::fs::write(&args_path, args) {
        let _ = std::fs::remove_file(&args_path);
        return Ok(Reply {
            rc: 1,
            stdout: Vec::new(),
            stderr: format!("{}: {e}\n", args_path.display()).into_bytes(),
        });
    }
    let run = Run::Module {
        path,
        args: &args_path,
    };
    let reply = command(input, tx, dir, run, &[], login_umask);
    let _ = std::fs::remove_file(&args_path);
    reply
}

/// What etcd-agent's `run_recorded_command` answers for a module gone from the cache.
const NOT_CACHED: &str = "ETCD_AGENT_MODULE_NOT_CACHED";
const NOT_CACHED_RC: i32 = 97;

/// The cache's checks: `path` an executable file of ours, not a symlink, in a directory of
/// ours that is not one either.
fn cached_module_is_ours(path: &Path) -> bool {
    path.is_absolute()
        && path.parent().is_some_and(|d| is_ours(d, true))
        && is_ours(path, false)
        && is_executable(path)
}

/// `touch -c`: the file's times set to now.
fn touch(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), std::ptr::null(), 0) == 0 }
}

/// An in-memory file (`memfd_create`).
fn memfd(name: &str) -> std::io::Result<File> {
    let name = CString::new(name).unwrap_or_default();
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

fn read_from_start(file: &mut File) -> Vec<u8> {
    let mut bytes = Vec::new();
    if file.seek(std::io::SeekFrom::Start(0)).is_ok() {
        let _ = file.read_to_end(&mut bytes);
    }
    bytes
}

fn remove(files: &[PathBuf]) {
    for f in files {
        let _ = std::fs::remove_file(f);
    }
}

/// Starts `cmd` in a session of its own, with the login umask and the signal dispositions
/// and mask a foreground command has.
fn spawn(
    mut cmd: std::process::Command,
    login_umask: libc::mode_t,
) -> std::io::Result<std::process::Child> {
    unsafe {
        cmd.pre_exec(move || {
            // only async-signal-safe calls here
            libc::setsid();
            libc::umask(login_umask);
            for sig in [
                libc::SIGINT,
                libc::SIGQUIT,
                libc::SIGPIPE,
                libc::SIGHUP,
                libc::SIGTERM,
            ] {
                libc::signal(sig, libc::SIG_DFL);
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            Ok(())
        });
    }
    cmd.spawn()
}

/// After stdin ended during a command: SIGTERM to its process group, SIGKILL 2 s later to
/// whatever of the group is left.
fn stop_group(pid: i32, rx: &Receiver<Event>) {
    unsafe {
        libc::kill(-pid, libc::SIGTERM);
        libc::kill(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        // the command's own end, or the poll interval
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(Duration::from_millis(50)),
        }
        if unsafe { libc::kill(-pid, 0) } != 0 {
            return;
        }
    }
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
        libc::kill(pid, libc::SIGKILL);
    }
}

fn exit_signals() -> libc::sigset_t {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGHUP, libc::SIGTERM, libc::SIGINT] {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Blocks SIGHUP, SIGTERM and SIGINT in this thread and in every thread it starts.
fn block_exit_signals() {
    let set = exit_signals();
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// The signal thread: on SIGHUP, SIGTERM or SIGINT, stops the command under way, removes
/// the dir and exits 143 (as the `/bin/sh` loop's trap does).
fn wait_for_exit_signals() {
    let set = exit_signals();
    let mut sig = 0;
    loop {
        if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
            break;
        }
    }
    let pid = RUNNING.load(Ordering::SeqCst);
    if pid > 0 {
        unsafe {
            libc::kill(-pid, libc::SIGTERM);
            libc::kill(pid, libc::SIGTERM);
        }
    }
    exit(143)
}

/// `mktemp -d <tmp>/etcd-agent.XXXXXXXX`.
fn make_temp_dir(tmp: &Path) -> Result<PathBuf, String> {
    let template = tmp.join("etcd-agent.XXXXXXXX");
    let mut bytes = template.clone().into_os_string().into_vec();
    bytes.push(0);
    let made = unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) };
    if made.is_null() {
        return Err(format!(
            "creating a temp dir like {}: {}",
            template.display(),
            std::io::Error::last_os_error()
        ));
    }
    bytes.pop();
    Ok(PathBuf::from(OsString::from_vec(bytes)))
}

/// What `uname -m` prints.
fn arch() -> String {
    let mut name: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut name) } != 0 {
        return "unknown".into();
    }
    let machine: Vec<u8> = name
        .machine
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    match String::from_utf8(machine) {
        Ok(m) if !m.is_empty() && !m.contains(' ') => m,
        _ => "unknown".into(),
    }
}

/// `${TMPDIR:-/tmp}`.
fn temp_root() -> PathBuf {
    std::env::var_os("TMPDIR")
        .filter(|t| !t.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
}

fn euid() -> u32 {
    unsafe { libc::geteuid() }
}

/// The host's module cache (`${TMPDIR:-/tmp}/etcd-agent-modules-<uid>`) when it is a real
/// directory of ours.
fn cache_dir() -> Option<PathBuf> {
    let dir = temp_root().join(format!("etcd-agent-modules-{}", euid()));
    is_ours(&dir, true).then_some(dir)
}

/// Whether `path` is a file (or with `dir`, a directory) of ours and not a symlink.
fn is_ours(path: &Path, dir: bool) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| {
        let kind = if dir { m.is_dir() } else { m.is_file() };
        kind && m.uid() == euid()
    })
}

fn is_executable(path: &Path) -> bool {
    CString::new(path.as_os_str().as_encoded_bytes())
        .is_ok_and(|c| unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0)
}

/// Removes the dirs of etcd-agent shells that are gone: `<tmp>/etcd-agent.*` with an
/// `.owner` of ours naming a run marker and a pid that no longer lives. A dir without one,
/// of another user, or with an `.owner` without a pid (agents before 2026-12-05: the
/// `/bin/sh` loop judges those) is left alone.
fn remove_dead_dirs(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry
            .file_name()
            .as_encoded_bytes()
            .starts_with(b"etcd-agent.")
        {
            continue;
        }
        let dir = entry.path();
        let owner = dir.join(".owner");
        if !is_ours(&dir, true) || !is_ours(&owner, false) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&owner) else {
            continue;
        };
        if owner_is_gone(&text) {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// Whether an `.owner` text (`<marker> <pid>`) names a shell whose pid is gone.
fn owner_is_gone(text: &str) -> bool {
    let mut words = text.split_whitespace();
    let (Some(marker), Some(pid), None) = (words.next(), words.next(), words.next()) else {
        return false;
    };
    let valid_marker = marker
        .strip_prefix("etcd-agent-run-")
        .is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    let Ok(pid) = pid.parse::<i32>() else {
        return false;
    };
    if !valid_marker || pid <= 0 {
        return false;
    }
    // ESRCH only: a pid of another user (EPERM) lives
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    !alive && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::owner_is_gone;

    #[test]
    fn only_a_valid_owner_with_a_dead_pid_is_gone() {
        let me = std::process::id();
        assert!(!owner_is_gone(&format!("etcd-agent-run-00ff {me}\n")));
        // pid_max is at most 2^22 on Linux
        assert!(owner_is_gone("etcd-agent-run-00ff 2147483000\n"));
        for kept in [
            "",
            "etcd-agent-run-00ff",
            "etcd-agent-run-00ff 12x",
            "etcd-agent-run-zz 2147483000",
            "etcd-agent-run- 2147483000",
            "someone-else 2147483000",
            "etcd-agent-run-00ff 0",
            "etcd-agent-run-00ff 2147483000 extra",
        ] {
            assert!(!owner_is_gone(kept), "{kept:?}");
        }
    }
}
