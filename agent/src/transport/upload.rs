//! Binary module upload: once per connection per run, named by content hash (or once per
//! host while its master is kept, see [`super::cache`]).

use super::{quote, Connection, ExecOutput, Link, ShellState, TransportError};
use sha2::{Digest, Sha256};

/// Bytes per chunk of an upload through the persistent shell (see
/// [`super::shell::Shell::put`]). Measured on loopback with a 2.5 MB module: 256 KiB chunks
/// took 41 ms, 512-640 KiB 34 ms, 1 MiB 43 ms, one piece 22-126 ms (median 110).
const UPLOAD_CHUNK: usize = 512 * 1024;

/// A module file read into memory with its content hash.
#[derive(Debug, Clone)]
pub struct ModuleFile {
    /// Module name (for the remote file name and logs).
    pub name: String,
    /// The executable's bytes.
    pub bytes: std::sync::Arc<Vec<u8>>,
    /// Hex SHA-256 of the bytes.
    pub hash: String,
    /// The file runs etcd-agent's remote shell loop itself (etcd-agent's own modules: see
    /// [`super::shell::NATIVE_PROTOCOL_MARKER`]); from the host's cache it stands in for
    /// the `/bin/sh` loop.
    pub native_shell: bool,
}

impl ModuleFile {
    /// Wraps module bytes, computing the hash.
    pub fn new(name: &str, bytes: Vec<u8>) -> Self {
        let hash = hex(&Sha256::digest(&bytes));
        let native_shell =
            memchr::memmem::find(&bytes, super::shell::NATIVE_PROTOCOL_MARKER).is_some();
        ModuleFile {
            native_shell,
            name: name.to_string(),
            bytes: std::sync::Arc::new(bytes),
            hash,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Connection {
    /// Returns the remote path of `module`, uploading it first if this connection has not yet.
    pub async fn ensure_module(&self, module: &ModuleFile) -> Result<String, TransportError> {
        let mut uploads = match self.uploads.try_lock() {
            Ok(uploads) => uploads,
            // another inventory host on this connection is uploading: the two will run at
            // once next, so start a spare shell for this one meanwhile
            Err(_) => tokio::join!(self.uploads.lock(), self.prewarm_spare_shell()).0,
        };
        if let Some(path) = uploads.get(&module.hash) {
            return Ok(path.clone());
        }
        let cached = self.kept_dir.is_some() && super::cache::enabled();
        if cached {
            if let Some(path) = self.cached_module(module).await? {
                uploads.insert(module.hash.clone(), path.clone());
                return Ok(path);
            }
        }
        let dir = self.tmpdir().await?;
        let path = format!("{dir}/{}-{}", module.name, &module.hash[..16]);
        tracing::info!(
            target: "etcd_agent::transport",
            conn = %self.label,
            module = %module.name,
            path = %path,
            "uploading module"
        );
        let name = format!("{}-{}", module.name, &module.hash[..16]);
        let uploading = crate::timing::span(crate::timing::Phase::Upload);
        let out = self.write_executable(&dir, &name, &module.bytes).await?;
        drop(uploading);
        if out.rc != 0 {
            return Err(TransportError::Failed(format!(
                "uploading module {} failed: {}",
                module.name,
                out.stderr_text().trim()
            )));
        }
        self.upload_count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = match cached {
            true => self.keep_in_cache(module, &path).await?.unwrap_or(path),
            false => path,
        };
        uploads.insert(module.hash.clone(), path.clone());
        Ok(path)
    }

    /// Writes `bytes` to `dir/name` (mode 0700): through the persistent shell's `put` when
    /// `dir` is its temp dir (see [`super::shell::Shell::put`]), else with `cat` in one command.
    async fn write_executable(
        &self,
        dir: &str,
        name: &str,
        bytes: &[u8],
    ) -> Result<ExecOutput, TransportError> {
        let p = quote(&format!("{dir}/{name}"));
        let with_cat = format!("umask 077 && cat > {p} && chmod 700 {p}");
        if let Link::Plugin(bridge) = &self.link {
            // a connection plugin uploads with its own `put_file`
            bridge.put(&format!("{dir}/{name}"), bytes).await?;
            return self.exec(&format!("chmod 700 {p}"), None, None).await;
        }
        let Link::Ssh(session) = &self.link else {
            return self.exec(&with_cat, Some(bytes), None).await;
        };
        if super::shell_disabled() {
            return self.exec(&with_cat, Some(bytes), None).await;
        }
        let mut state = self.shell.lock().await;
        self.start_shell(&mut state, session).await?;
        let ShellState::Running(sh) = &mut *state else {
            drop(state);
            return self.exec(&with_cat, Some(bytes), None).await;
        };
        if sh.dir != dir || sh.max_stdin < bytes.len() || !super::shell::putable_name(name) {
            drop(state);
            return self.exec(&with_cat, Some(bytes), None).await;
        }
        match sh.put(name, bytes, UPLOAD_CHUNK).await {
            Ok(out) => Ok(out),
            Err(e) => {
                // the framing is lost midway: a session of its own writes the file
                tracing::debug!(target: "etcd_agent::transport", conn = %self.label, "persistent shell failed during upload, falling back: {e}");
                state.give_up();
                drop(state);
                self.exec(&with_cat, Some(bytes), None).await
            }
        }
    }
}
