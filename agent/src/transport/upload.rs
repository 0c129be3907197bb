//! Binary module upload: once per connection per run, named by content hash.

use super::{quote, Connection, TransportError};
use sha2::{Digest, Sha256};

/// A module file read into memory with its content hash.
#[derive(Debug, Clone)]
pub struct ModuleFile {
    /// Module name (for the remote file name and logs).
    pub name: String,
    /// The executable's bytes.
    pub bytes: std::sync::Arc<Vec<u8>>,
    /// Hex SHA-256 of the bytes.
    pub hash: String,
}

impl ModuleFile {
    /// Wraps module bytes, computing the hash.
    pub fn new(name: &str, bytes: Vec<u8>) -> Self {
        let hash = hex(&Sha256::digest(&bytes));
        ModuleFile {
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
        let mut uploads = self.uploads.lock().await;
        if let Some(path) = uploads.get(&module.hash) {
            return Ok(path.clone());
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
        let out = self
            .exec(
                &format!("umask 077 && cat > {p} && chmod 700 {p}", p = quote(&path)),
                Some(&module.bytes),
                None,
            )
            .await?;
        if out.rc != 0 {
            return Err(TransportError::Failed(format!(
                "uploading module {} failed: {}",
                module.name,
                out.stderr_text().trim()
            )));
        }
        self.upload_count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        uploads.insert(module.hash.clone(), path.clone());
        Ok(path)
    }

    /// Writes a small file (an args file) into the temp dir and returns its path.
    pub async fn put_temp_file(&self, name: &str, data: &[u8]) -> Result<String, TransportError> {
        let dir = self.tmpdir().await?;
        let path = format!("{dir}/{name}");
        let out = self
            .exec(
                &format!("(umask 077 && cat > {})", quote(&path)),
                Some(data),
                None,
            )
            .await?;
        if out.rc != 0 {
            return Err(TransportError::Failed(format!(
                "writing {path} failed: {}",
                out.stderr_text().trim()
            )));
        }
        Ok(path)
    }
}
