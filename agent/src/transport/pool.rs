//! The connection pool: each distinct target gets exactly one connection per run.

use super::{ssh, Connection, Link, SshSpec, TransportError};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{Mutex, OnceCell};

/// Which transport a host uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConnSpec {
    /// Run on this machine.
    Local,
    /// Run over SSH.
    Ssh(SshSpec),
    /// Run through an ansible-core connection plugin.
    Plugin(super::PluginSpec),
}

type Slot = Arc<OnceCell<Result<Arc<Connection>, TransportError>>>;

/// Opens connections on first use and keeps them until [`ConnectionPool::close_all`].
pub struct ConnectionPool {
    slots: Mutex<HashMap<ConnSpec, Slot>>,
    control_dir: tempfile::TempDir,
    /// Where masters that persist between runs (`ControlPersist`) keep their sockets.
    persist_dir: std::path::PathBuf,
    /// Bounds the SSH handshakes in flight (each is an `ssh` process and a CPU-heavy key
    /// exchange on both ends).
    opening: tokio::sync::Semaphore,
    /// This run's marker for its remote shells.
    marker: std::sync::Arc<str>,
    /// Control sockets of the masters that end with the run (see [`ConnectionPool::stop_now`]).
    own_masters: std::sync::Mutex<Vec<std::path::PathBuf>>,
    /// Holds `control_dir/.lock` locked while the run lives (see [`remove_stale_control_dirs`]).
    _lock: std::fs::File,
}

/// Prefix of the pools' private control dirs under /tmp.
const CONTROL_DIR_PREFIX: &str = "etcd-agent-ssh";

/// Takes an exclusive `flock` on `dir/.lock` for the life of the returned file. The file is
/// locked under another name first and then renamed, so a `.lock` is never seen unlocked
/// while its run lives.
fn lock_control_dir(dir: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let tmp = dir.join(".lock.new");
    let file = std::fs::File::create(&tmp)?;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    std::fs::rename(&tmp, dir.join(".lock"))?;
    Ok(file)
}

/// Removes the control dirs of runs that are gone (killed with SIGKILL): those whose `.lock`
/// can be locked, since a live run holds its own. Dirs without a `.lock` are left alone (a
/// run just starting, or an older agent). Masters that are still running in a removed dir
/// expire by themselves once idle.
fn remove_stale_control_dirs(parent: &std::path::Path) {
    use std::os::fd::AsRawFd;
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_ours = name.to_string_lossy().starts_with(CONTROL_DIR_PREFIX)
            && entry.file_type().is_ok_and(|t| t.is_dir());
        if !is_ours {
            continue;
        }
        let Ok(file) = std::fs::File::open(entry.path().join(".lock")) else {
            continue;
        };
        // SAFETY: flock on a file descriptor we own; the lock goes with `file`.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            tracing::debug!(target: "etcd_agent::transport", dir = %entry.path().display(), "removing the control dir of a run that is gone");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl ConnectionPool {
    /// A pool whose SSH control sockets live in a fresh private directory under /tmp
    /// (short, because socket paths are limited to about 100 bytes).
    /// At most `max_opening` SSH handshakes run at once.
    pub fn new(persist_dir: std::path::PathBuf, max_opening: usize) -> std::io::Result<Self> {
        remove_stale_control_dirs(std::path::Path::new("/tmp"));
        let control_dir = tempfile::Builder::new()
            .prefix(CONTROL_DIR_PREFIX)
            .tempdir_in("/tmp")?;
        let lock = lock_control_dir(control_dir.path())?;
        tracing::debug!(target: "etcd_agent::transport", control_dir = %control_dir.path().display(), "connection pool");
        Ok(ConnectionPool {
            slots: Mutex::new(HashMap::new()),
            control_dir,
            persist_dir,
            opening: tokio::sync::Semaphore::new(max_opening.max(1)),
            marker: super::shell::run_marker().into(),
            own_masters: Default::default(),
            _lock: lock,
        })
    }

    /// The connection for `spec`, opened once; a failed open is remembered for the run.
    pub async fn get(&self, spec: &ConnSpec) -> Result<Arc<Connection>, TransportError> {
        let slot = {
            let mut slots = self.slots.lock().await;
            slots.entry(spec.clone()).or_default().clone()
        };
        slot.get_or_init(|| async {
            match spec {
                ConnSpec::Local => Ok(Arc::new(Connection::new("local".into(), Link::Local, None, self.marker.clone()))),
                ConnSpec::Plugin(p) => {
                    let bridge = super::plugin::Bridge::open(p).await?;
                    Ok(Arc::new(Connection::new(
                        format!("{}:{}", p.plugin, p.host),
                        Link::Plugin(Box::new(bridge)),
                        None,
                        self.marker.clone(),
                    )))
                }
                ConnSpec::Ssh(s) => {
                    let _opening = self.opening.acquire().await;
                    tracing::debug!(target: "etcd_agent::transport", target_host = %s.label(), "opening ssh connection");
                    let opened = ssh::connect(s, self.control_dir.path(), &self.persist_dir).await?;
                    if opened.kept_dir.is_none() {
                        if let Ok(mut own) = self.own_masters.lock() {
                            own.push(opened.session.control_socket().to_path_buf());
                        }
                    }
                    Ok(Arc::new(Connection::new(
                        s.label(),
                        Link::Ssh(Arc::new(opened.session)),
                        opened.kept_dir,
                        self.marker.clone(),
                    )))
                }
            }
        })
        .await
        .clone()
    }

    /// `meta: reset_connection`: closes the connection for `spec` (its shells and temp dir;
    /// a master kept for later runs stays), so the next task opens a new one.
    pub async fn reset(&self, spec: &ConnSpec) {
        let slot = self.slots.lock().await.remove(spec);
        if let Some(Ok(conn)) = slot.and_then(|s| s.get().cloned()) {
            conn.close().await;
        }
    }

    /// Total module uploads over all connections (for tests and logs).
    pub async fn upload_count(&self) -> usize {
        let slots = self.slots.lock().await;
        slots
            .values()
            .filter_map(|s| {
                s.get()
                    .and_then(|r| r.as_ref().ok())
                    .map(|c| c.upload_count())
            })
            .sum()
    }

    /// For an exit at once (a second Ctrl-C): stops the masters that were to end with the run
    /// (`ssh -O exit`, within half a second in all) and removes the local control dir. Remote
    /// commands and shells end by themselves when their channels close with this process.
    pub fn stop_now(&self) {
        let sockets = self
            .own_masters
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        let mut children: Vec<std::process::Child> = sockets
            .iter()
            .filter_map(|sock| {
                std::process::Command::new("ssh")
                    .arg("-S")
                    .arg(sock)
                    .args(["-O", "exit", "etcd-agent"])
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .ok()
            })
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
        while !children.is_empty() && std::time::Instant::now() < deadline {
            children.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        for mut c in children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(self.control_dir.path());
    }

    /// Removes temp dirs and closes every connection, all at once.
    pub async fn close_all(&self) {
        let slots: Vec<Slot> = self.slots.lock().await.drain().map(|(_, v)| v).collect();
        let mut closing = tokio::task::JoinSet::new();
        for slot in slots {
            if let Some(Ok(conn)) = slot.get().cloned() {
                drop(slot);
                closing.spawn(conn.close());
            }
        }
        while closing.join_next().await.is_some() {}
    }
}
