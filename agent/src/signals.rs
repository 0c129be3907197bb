//! Ctrl-C (SIGINT) and SIGTERM during a run, as ansible-playbook takes them.
//!
//! The first signal stops the run: the executor's work is dropped (its host tasks are
//! aborted), `[ERROR]: User interrupted execution` is printed and every connection is closed
//! within [`CLEANUP_BOUND`]: closing a remote shell makes its watcher kill the command under
//! way and the shell's exit trap remove its temp dir (see `transport/shell.rs`), and masters
//! that do not persist are stopped. A second signal exits at once; the remote commands still
//! die, since their channels close with this process. ansible-playbook 2.19 exits with 99 on
//! SIGINT and dies of SIGTERM (143, no message), within a fraction of a second (checked
//! against the test sshd).

use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// How long the first signal's clean-up may take before the agent exits anyway.
pub const CLEANUP_BOUND: Duration = Duration::from_millis(1500);

/// Ansible's exit code for a run the user interrupted.
pub const INTERRUPTED: i32 = 99;

/// The signals that stop a run; listening starts at [`Stops::listen`].
pub struct Stops {
    int: Signal,
    term: Signal,
}

impl Stops {
    /// Starts listening for SIGINT and SIGTERM (their default action, dying on the spot,
    /// no longer applies from here on).
    pub fn listen() -> std::io::Result<Stops> {
        Ok(Stops {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for the first stop signal; returns the exit code for it (99 for SIGINT, as
    /// ansible-playbook; 143 for SIGTERM).
    pub async fn first(&mut self) -> i32 {
        tokio::select! {
            _ = self.int.recv() => INTERRUPTED,
            _ = self.term.recv() => 128 + libc::SIGTERM,
        }
    }

    /// From now on, the next stop signal runs `last` and ends the process at once with
    /// `code`.
    pub fn exit_on_next(mut self, code: i32, last: impl FnOnce() + Send + 'static) {
        tokio::spawn(async move {
            let _ = self.first().await;
            last();
            std::process::exit(code);
        });
    }
}

/// Runs `work`; on the first stop signal drops it, says so in Ansible's words, closes every
/// connection of `pool` within [`CLEANUP_BOUND`] and returns the signal's exit code. A second
/// signal runs `stop_now` (stop local helpers at once) and exits.
pub async fn interruptible(
    work: impl std::future::Future<Output = i32>,
    pool: &crate::transport::ConnectionPool,
    stop_now: impl FnOnce() + Send + 'static,
) -> i32 {
    let mut stops = match Stops::listen() {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!("cannot listen for signals: {e}");
            return work.await;
        }
    };
    let code = tokio::select! {
        code = work => return code,
        code = stops.first() => code,
    };
    if code == INTERRUPTED {
        // ansible-playbook says nothing on SIGTERM (it dies of it: status 143 to a shell)
        eprintln!("[ERROR]: User interrupted execution");
    }
    stops.exit_on_next(code, stop_now);
    if tokio::time::timeout(CLEANUP_BOUND, pool.close_all())
        .await
        .is_err()
    {
        tracing::debug!("clean-up after the interrupt took too long; exiting anyway");
    }
    code
}
