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
}

impl ConnectionPool {
    /// A pool whose SSH control sockets live in a fresh private directory under /tmp
    /// (short, because socket paths are limited to about 100 bytes).
    /// At most `max_opening` SSH handshakes run at once.
    pub fn new(persist_dir: std::path::PathBuf, max_opening: usize) -> std::io::Result<Self> {
        let control_dir = tempfile::Builder::new()
            .prefix("etcd-agent-ssh")
            .tempdir_in("/tmp")?;
        Ok(ConnectionPool {
            slots: Mutex::new(HashMap::new()),
            control_dir,
            persist_dir,
            opening: tokio::sync::Semaphore::new(max_opening.max(1)),
            marker: super::shell::run_marker().into(),
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
                ConnSpec::Local => Ok(Arc::new(Connection::new("local".into(), Link::Local, false, self.marker.clone()))),
                ConnSpec::Ssh(s) => {
                    let _opening = self.opening.acquire().await;
                    tracing::debug!(target: "etcd_agent::transport", target_host = %s.label(), "opening ssh connection");
                    let opened = ssh::connect(s, self.control_dir.path(), &self.persist_dir).await?;
                    Ok(Arc::new(Connection::new(
                        s.label(),
                        Link::Ssh(Arc::new(opened.session)),
                        opened.persistent,
                        self.marker.clone(),
                    )))
                }
            }
        })
        .await
        .clone()
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
