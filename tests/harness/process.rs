//! Child process plumbing: death signal, signals, bounded waits.
//!
//! Every process the harness starts goes through [`guarded_command`], so it
//! gets `SIGKILL` when the thread that spawned it dies (`PR_SET_PDEATHSIG`).
//! Note the kernel ties the death signal to the spawning *thread*: create
//! clusters and sshd on the thread that will drop them (the test thread).

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use crate::poll::poll_until;

/// A [`Command`] for `program` whose child is killed with `SIGKILL` if the
/// spawning thread (the test) dies before it.
pub fn guarded_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    // SAFETY: getpid is async-signal-safe, called before fork.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure only calls async-signal-safe syscalls.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() != parent {
                return Err(std::io::Error::other("parent died before exec"));
            }
            Ok(())
        });
    }
    cmd
}

/// Sends `sig` to `pid`; errors (e.g. already gone) are ignored.
pub fn send_signal(pid: u32, sig: libc::c_int) {
    // SAFETY: plain kill(2) on a pid we started and have not reaped yet.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Waits for `child` to exit for at most `timeout`; `None` if still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    poll_until(timeout, || child.try_wait().ok().flatten())
}

/// Kills `child` (SIGCONT first, in case it is stopped, then SIGKILL) and
/// reaps it. Safe to call on an already exited child.
pub fn kill_and_reap(child: &mut Child) -> Option<ExitStatus> {
    if let Ok(Some(st)) = child.try_wait() {
        return Some(st);
    }
    send_signal(child.id(), libc::SIGCONT);
    let _ = child.kill();
    child.wait().ok()
}

/// Asks `child` to stop with `SIGTERM` (after `SIGCONT`), waits up to
/// `grace`, then falls back to `SIGKILL`. Always reaps. Returns the status and
/// whether the fallback kill was needed.
pub fn terminate_and_reap(child: &mut Child, grace: Duration) -> (Option<ExitStatus>, bool) {
    if let Ok(Some(st)) = child.try_wait() {
        return (Some(st), false);
    }
    send_signal(child.id(), libc::SIGCONT);
    send_signal(child.id(), libc::SIGTERM);
    if let Some(st) = wait_timeout(child, grace) {
        return (Some(st), false);
    }
    (kill_and_reap(child), true)
}

/// True if a process with this pid exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Format: "pid (comm) state ...": comm may contain spaces/parens.
        Ok(stat) => match stat.rfind(')') {
            Some(idx) => !matches!(
                stat[idx + 1..].trim_start().chars().next(),
                Some('Z') | Some('X')
            ),
            None => false,
        },
        Err(_) => false,
    }
}

/// Pids of the direct children of `pid` (from `/proc/<pid>/task/*/children`).
pub fn child_pids(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}
