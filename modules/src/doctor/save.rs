//! `step: save`: keeps a diagnosis on the controller: its `state` in the
//! state file (the next run's `previous_state`) and the whole result as the
//! JSON report, each written to a temp file beside it, fsynced and renamed
//! (mode 0600; a missing directory is created 0700). A file whose content is
//! already the same is left alone.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use serde_json::Value;

use crate::fsutil::sync_dir;

/// The text written for `value`: pretty JSON and a newline.
pub fn json_text(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
    text.push('\n');
    text
}

/// Writes `text` to `path` atomically; `Ok(false)` when it already held it.
pub fn write_file(path: &Path, text: &str) -> Result<bool, String> {
    if fs::read(path).is_ok_and(|old| old == text.as_bytes()) {
        return Ok(false);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
    }
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(format!("cannot write {}: {e}", tmp.display()));
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(format!(
            "cannot rename {} to {}: {e}",
            tmp.display(),
            path.display()
        ));
    }
    sync_dir(dir)?;
    Ok(true)
}

/// How many of the report's findings are critical, and their codes.
pub fn critical(report: &Value) -> (u64, Vec<String>) {
    let codes: Vec<String> = report["findings"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|f| f["severity"] == "critical")
                .filter_map(|f| f["code"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let count = report["critical"].as_u64().unwrap_or(codes.len() as u64);
    (count, codes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_file_is_written_private_in_a_new_private_dir_and_kept_when_equal() {
        let base = std::env::temp_dir().join(format!("doctor-save-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let path = base.join("state/etcd-doctor-state.json");
        assert_eq!(write_file(&path, "{}\n"), Ok(true));
        assert_eq!(fs::read_to_string(&path).unwrap(), "{}\n");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&base.join("state")), 0o700);
        assert_eq!(write_file(&path, "{}\n"), Ok(false));
        assert_eq!(write_file(&path, "[]\n"), Ok(true));
        assert_eq!(fs::read_to_string(&path).unwrap(), "[]\n");
        let left: Vec<_> = fs::read_dir(base.join("state")).unwrap().collect();
        assert_eq!(left.len(), 1, "no temp file is left");
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn critical_findings_are_counted_with_their_codes() {
        let report = json!({"critical": 1, "findings": [
            {"severity": "critical", "code": "quorum_lost"},
            {"severity": "warning", "code": "fragmented"}]});
        assert_eq!(critical(&report), (1, vec!["quorum_lost".to_string()]));
        assert_eq!(critical(&json!({})), (0, vec![]));
    }
}
