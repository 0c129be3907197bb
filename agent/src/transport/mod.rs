//! Transports: one multiplexed OpenSSH connection per host per run, or local processes.
//! Inventory hosts that are aliases of one destination share its connection.
//!
//! Everything runs as a `/bin/sh` command line, optionally with stdin. Each connection owns a
//! private remote temp dir (created on first need, removed at the end) where binary modules are
//! uploaded once per run, named by content hash. A connection also learns its host's CPU
//! (`uname -m`) once, to pick the module build that runs there.

mod cache;
pub mod escalation;
mod local;
mod plugin;
mod pool;
pub mod relay;
mod shell;
mod ssh;
mod upload;
mod watch;

pub use cache::{not_cached as module_not_cached, run_recorded_command as run_recorded_module};
pub use escalation::{BecomeMethod, Escalation};
pub use plugin::PluginSpec;
pub use pool::{ConnSpec, ConnectionPool};
pub use ssh::SshSpec;
pub use upload::ModuleFile;

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, OnceCell};

/// Output of one command.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    /// Exit code (negative signal number when killed by a signal).
    pub rc: i32,
    /// Raw standard output.
    pub stdout: Vec<u8>,
    /// Raw standard error.
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// Standard output as text (lossy UTF-8).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text (lossy UTF-8).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Why a command could not be run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The host cannot be reached (connection refused, auth failure, host key mismatch...).
    #[error("{0}")]
    Unreachable(String),
    /// Anything else (local spawn failure, I/O error).
    #[error("{0}")]
    Failed(String),
}

/// How commands reach the host.
pub(crate) enum Link {
    Local,
    Ssh(Arc<openssh::Session>),
    /// An ansible-core connection plugin (see [`plugin`]).
    Plugin(Box<plugin::Bridge>),
}

/// An open connection to one host.
pub struct Connection {
    /// Display name of the target (user@host:port or `local`).
    pub label: String,
    link: Link,
    tmpdir: OnceCell<RemoteTmp>,
    /// The host's `uname -m`, learned once (see [`Connection::arch`]).
    arch: OnceCell<String>,
    uploads: Mutex<std::collections::HashMap<String, String>>,
    upload_count: std::sync::atomic::AtomicUsize,
    shell: Mutex<ShellState>,
    /// Idle extra shells, for when inventory hosts sharing this connection run at once.
    spare_shells: std::sync::Mutex<Vec<shell::Shell>>,
    /// Extra shells alive (idle or busy), at most [`MAX_SPARE_SHELLS`].
    spare_count: std::sync::atomic::AtomicUsize,
    /// Bounds the one-off sessions open at once (see [`MAX_ONE_OFF_SESSIONS`]).
    one_off_sessions: tokio::sync::Semaphore,
    /// The kept master's directory (`Some` when the SSH master outlives the run under
    /// `ControlPersist`), where runs over it record the modules its host's cache holds (see
    /// [`cache`]).
    kept_dir: Option<std::path::PathBuf>,
    /// Cache entries the persistent shell looks for when it starts (see
    /// [`Connection::look_for_in_cache`]).
    look_for: std::sync::Mutex<Vec<String>>,
    /// Cache entries of the run's modules that can run the remote shell loop themselves
    /// (see [`shell`]): every shell the connection starts tries them first.
    native_shell: std::sync::Mutex<Vec<String>>,
    /// The run's marker for its remote shells (see [`shell::run_marker`]).
    marker: Arc<str>,
}

/// Extra shells a connection may start beside its own, when several inventory hosts share it.
const MAX_SPARE_SHELLS: usize = 3;

/// One-off sessions (one per command) open at once on a connection. With the shells, this
/// stays within sshd's default `MaxSessions` of 10 sessions per connection.
const MAX_ONE_OFF_SESSIONS: usize = 10 - 1 - MAX_SPARE_SHELLS;

/// The connection's remote temp dir and who removes it.
struct RemoteTmp {
    path: String,
    /// The persistent shell's own dir: its exit trap removes it.
    owned_by_shell: bool,
}

/// The persistent remote shell of an SSH connection.
enum ShellState {
    NotStarted,
    Running(shell::Shell),
    /// It failed or could not start; a shell that failed midway is kept (not closed) until
    /// the connection closes, because closing it would remove the temp dir with the uploads.
    Unusable(Option<shell::Shell>),
}

impl ShellState {
    /// Stops using a running shell after a protocol error, keeping it open (see
    /// [`ShellState::Unusable`]).
    fn give_up(&mut self) {
        if let ShellState::Running(sh) = std::mem::replace(self, ShellState::Unusable(None)) {
            *self = ShellState::Unusable(Some(sh));
        }
    }
}

fn shell_disabled() -> bool {
    std::env::var_os("ETCD_AGENT_NO_SHELL").is_some()
}

impl Connection {
    fn new(
        label: String,
        link: Link,
        kept_dir: Option<std::path::PathBuf>,
        marker: Arc<str>,
    ) -> Self {
        Connection {
            marker,
            kept_dir,
            look_for: Default::default(),
            native_shell: Default::default(),
            label,
            link,
            tmpdir: OnceCell::new(),
            arch: OnceCell::new(),
            uploads: Mutex::new(Default::default()),
            upload_count: Default::default(),
            shell: Mutex::new(ShellState::NotStarted),
            spare_shells: Default::default(),
            spare_count: Default::default(),
            one_off_sessions: tokio::sync::Semaphore::new(MAX_ONE_OFF_SESSIONS),
        }
    }

    /// Runs a `/bin/sh` command line, feeding `stdin` if given; `timeout` bounds the run.
    pub async fn exec(
        &self,
        cmd: &str,
        stdin: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Result<ExecOutput, TransportError> {
        tracing::debug!(target: "etcd_agent::transport", conn = %self.label, cmd, "exec");
        let fut = async {
            match &self.link {
                Link::Local => local::exec(cmd, stdin).await,
                Link::Plugin(bridge) => bridge.exec(cmd, stdin).await,
                // a timeout may abandon a request midway: keep those off the shared shell
                Link::Ssh(s) if timeout.is_some() => self.one_off_exec(s, cmd, stdin).await,
                Link::Ssh(s) => self.ssh_exec(s, cmd, stdin).await,
            }
        };
        let started = std::time::Instant::now();
        let out = match timeout {
            Some(t) => tokio::time::timeout(t, fut).await.map_err(|_| {
                TransportError::Failed(format!("command timed out after {}s", t.as_secs()))
            })?,
            None => fut.await,
        };
        tracing::trace!(
            target: "etcd_agent::transport",
            conn = %self.label,
            rc = out.as_ref().map(|o| o.rc).ok(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "exec done"
        );
        out
    }

    /// Starts the persistent shell if it has not been tried yet; `Err` only when the host is
    /// unreachable.
    async fn start_shell(
        &self,
        state: &mut ShellState,
        session: &Arc<openssh::Session>,
    ) -> Result<(), TransportError> {
        if matches!(state, ShellState::NotStarted) {
            let look_for =
                std::mem::take(&mut *self.look_for.lock().unwrap_or_else(|e| e.into_inner()));
            let native = self.native_shell_candidates();
            *state = match shell::Shell::start(
                session.clone(),
                &self.marker,
                true,
                &look_for,
                &native,
            )
            .await
            {
                Ok(sh) => {
                    for path in &sh.cached {
                        self.record_found(path);
                    }
                    tracing::debug!(target: "etcd_agent::transport", conn = %self.label, exact_head = sh.exact_head(), native = sh.native, dir = %sh.dir, "persistent shell ready");
                    ShellState::Running(sh)
                }
                Err(e @ TransportError::Unreachable(_)) => return Err(e),
                Err(e) => {
                    tracing::debug!(target: "etcd_agent::transport", conn = %self.label, "no persistent shell: {e}");
                    ShellState::Unusable(None)
                }
            };
        }
        Ok(())
    }

    /// Runs over the persistent shell when it is free, else in a session of its own.
    async fn ssh_exec(
        &self,
        session: &Arc<openssh::Session>,
        cmd: &str,
        stdin: Option<&[u8]>,
    ) -> Result<ExecOutput, TransportError> {
        let data = stdin.unwrap_or(&[]);
        if !shell_disabled() {
            if let Ok(mut state) = self.shell.try_lock() {
                self.start_shell(&mut state, session).await?;
                let ran = match &mut *state {
                    ShellState::Running(sh) if data.len() <= sh.max_stdin => {
                        Some(sh.exec(cmd, data).await)
                    }
                    _ => None,
                };
                match ran {
                    Some(Ok(out)) => return Ok(out),
                    Some(Err(e)) => {
                        tracing::debug!(target: "etcd_agent::transport", conn = %self.label, "persistent shell failed, falling back: {e}");
                        state.give_up();
                    }
                    None => {}
                }
            } else if let Some(out) = self.spare_shell_exec(session, cmd, data).await? {
                return Ok(out);
            }
        }
        self.one_off_exec(session, cmd, stdin).await
    }

    /// Runs in an idle spare shell, or in a new one while there are fewer than
    /// [`MAX_SPARE_SHELLS`]; `None` when there is none to use.
    async fn spare_shell_exec(
        &self,
        session: &Arc<openssh::Session>,
        cmd: &str,
        data: &[u8],
    ) -> Result<Option<ExecOutput>, TransportError> {
        use std::sync::atomic::Ordering;
        let idle = self.spare_shells.lock().ok().and_then(|mut v| v.pop());
        let mut sh = match idle {
            Some(sh) => sh,
            None => {
                let started = self.spare_count.fetch_add(1, Ordering::Relaxed);
                if started >= MAX_SPARE_SHELLS {
                    self.spare_count.fetch_sub(1, Ordering::Relaxed);
                    return Ok(None);
                }
                match self.start_spare_shell(session).await {
                    Ok(sh) => sh,
                    Err(e) => {
                        self.spare_count.fetch_sub(1, Ordering::Relaxed);
                        return match e {
                            TransportError::Unreachable(_) => Err(e),
                            TransportError::Failed(_) => Ok(None),
                        };
                    }
                }
            }
        };
        if data.len() > sh.max_stdin {
            self.return_spare(sh);
            return Ok(None);
        }
        match sh.exec(cmd, data).await {
            Ok(out) => {
                self.return_spare(sh);
                Ok(Some(out))
            }
            Err(e) => {
                // a spare's temp dir holds no uploads: it may go with the shell
                tracing::debug!(target: "etcd_agent::transport", conn = %self.label, "spare shell failed: {e}");
                self.spare_count.fetch_sub(1, Ordering::Relaxed);
                sh.close().await;
                Ok(None)
            }
        }
    }

    /// Runs a binary module through the persistent shell's own module request (see
    /// [`shell::Shell::run_module`]) when that shell is the compiled loop, free, and its dir
    /// is `args_dir`; `None` otherwise (the caller then sends the `/bin/sh` command).
    pub async fn exec_module_natively(
        &self,
        path: &str,
        check: bool,
        args_dir: &str,
        args_name: &str,
        args: &[u8],
    ) -> Option<Result<ExecOutput, TransportError>> {
        if !matches!(self.link, Link::Ssh(_)) || shell_disabled() {
            return None;
        }
        let mut state = self.shell.try_lock().ok()?;
        let ShellState::Running(sh) = &mut *state else {
            return None;
        };
        if !sh.native || sh.dir != args_dir {
            return None;
        }
        tracing::debug!(target: "etcd_agent::transport", conn = %self.label, path, check, "module request");
        match sh.run_module(path, check, args_name, args).await {
            Ok(out) => Some(Ok(out)),
            Err(e) => {
                // the framing may be lost: as a failed command, the shell is given up
                tracing::debug!(target: "etcd_agent::transport", conn = %self.label, "persistent shell failed on a module request: {e}");
                state.give_up();
                None
            }
        }
    }

    /// Starts a spare shell ahead of need, while there are fewer than [`MAX_SPARE_SHELLS`].
    async fn prewarm_spare_shell(&self) {
        use std::sync::atomic::Ordering;
        let Link::Ssh(session) = &self.link else {
            return;
        };
        if shell_disabled() {
            return;
        }
        if self.spare_count.fetch_add(1, Ordering::Relaxed) >= MAX_SPARE_SHELLS {
            self.spare_count.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        match self.start_spare_shell(session).await {
            Ok(sh) => self.return_spare(sh),
            Err(e) => {
                tracing::debug!(target: "etcd_agent::transport", conn = %self.label, "no spare shell: {e}");
                self.spare_count.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// A spare shell: no cleaning of dead runs' dirs, no cache lookups (the persistent
    /// shell made them).
    async fn start_spare_shell(
        &self,
        session: &Arc<openssh::Session>,
    ) -> Result<shell::Shell, TransportError> {
        let native = self.native_shell_candidates();
        shell::Shell::start(session.clone(), &self.marker, false, &[], &native).await
    }

    /// See [`Connection::native_shell`].
    fn native_shell_candidates(&self) -> Vec<String> {
        self.native_shell
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    fn return_spare(&self, sh: shell::Shell) {
        if let Ok(mut idle) = self.spare_shells.lock() {
            idle.push(sh);
        }
    }

    /// Runs in a session of its own, waiting while [`MAX_ONE_OFF_SESSIONS`] are open.
    async fn one_off_exec(
        &self,
        session: &openssh::Session,
        cmd: &str,
        stdin: Option<&[u8]>,
    ) -> Result<ExecOutput, TransportError> {
        let _slot = self.one_off_sessions.acquire().await;
        ssh::exec(session, cmd, stdin).await
    }

    /// The private temp dir on the target, created on first use (mode 0700): the persistent
    /// shell's own dir when there is one, else a `mktemp -d` of its own.
    pub async fn tmpdir(&self) -> Result<String, TransportError> {
        self.tmpdir
            .get_or_try_init(|| async {
                if let (Link::Ssh(session), false) = (&self.link, shell_disabled()) {
                    let mut state = self.shell.lock().await;
                    self.start_shell(&mut state, session).await?;
                    if let ShellState::Running(sh) = &*state {
                        return Ok(RemoteTmp {
                            path: sh.dir.clone(),
                            owned_by_shell: true,
                        });
                    }
                }
                let out = self
                    .exec(
                        "(umask 077 && mktemp -d \"${TMPDIR:-/tmp}/etcd-agent.XXXXXXXX\")",
                        None,
                        None,
                    )
                    .await?;
                let dir = out.stdout_text().trim().to_string();
                if out.rc != 0 || dir.is_empty() {
                    return Err(TransportError::Failed(format!(
                        "cannot create remote temp dir: {}",
                        out.stderr_text().trim()
                    )));
                }
                Ok(RemoteTmp {
                    path: dir,
                    owned_by_shell: false,
                })
            })
            .await
            .map(|t| t.path.clone())
    }

    /// The host's CPU as its `uname -m` prints it, learned once per connection: from the
    /// persistent shell's greeting when there is one (no round trip of its own), else by
    /// running `uname -m`.
    pub async fn arch(&self) -> Result<String, TransportError> {
        self.arch
            .get_or_try_init(|| async {
                if let (Link::Ssh(session), false) = (&self.link, shell_disabled()) {
                    let mut state = self.shell.lock().await;
                    self.start_shell(&mut state, session).await?;
                    if let ShellState::Running(sh) = &*state {
                        if sh.arch != "unknown" {
                            return Ok(sh.arch.clone());
                        }
                    }
                }
                let out = self.exec("uname -m", None, None).await?;
                let arch = out.stdout_text().trim().to_string();
                if out.rc != 0 || arch.is_empty() || arch.contains(char::is_whitespace) {
                    return Err(TransportError::Failed(format!(
                        "cannot learn the host's architecture with uname -m (rc {}): {}",
                        out.rc,
                        out.stderr_text().trim()
                    )));
                }
                Ok(arch)
            })
            .await
            .cloned()
    }

    /// How many module files were uploaded on this connection.
    pub fn upload_count(&self) -> usize {
        self.upload_count.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Removes the temp dir and closes the connection.
    pub async fn close(self: Arc<Self>) {
        if let Some(tmp) = self.tmpdir.get().filter(|t| !t.owned_by_shell) {
            let _ = self
                .exec(&format!("rm -rf {}", quote(&tmp.path)), None, None)
                .await;
        }
        if let Link::Plugin(bridge) = &self.link {
            bridge.close().await;
            return;
        }
        let state = std::mem::replace(&mut *self.shell.lock().await, ShellState::NotStarted);
        let mut shells =
            std::mem::take(&mut *self.spare_shells.lock().unwrap_or_else(|p| p.into_inner()));
        if let ShellState::Running(sh) | ShellState::Unusable(Some(sh)) = state {
            shells.push(sh);
        }
        // each close waits for its loop's exit trap: one round trip, all at once
        let mut closing = tokio::task::JoinSet::new();
        for sh in shells {
            closing.spawn(sh.close());
        }
        while closing.join_next().await.is_some() {}
        if self.kept_dir.is_some() {
            // the master stays for the next run and exits by itself once idle
            return;
        }
        // tasks of an interrupted run may still hold the connection for a moment while
        // they are dropped
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while Arc::strong_count(&self) > 1 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if let Ok(conn) = Arc::try_unwrap(self) {
            if let Link::Ssh(session) = conn.link {
                if let Ok(session) = Arc::try_unwrap(session) {
                    if let Err(e) = session.close().await {
                        tracing::debug!(target: "etcd_agent::transport", "closing ssh session: {e}");
                    }
                }
            }
        }
    }
}

/// Quotes one word for `/bin/sh`.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}
