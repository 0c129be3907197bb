//! Test fixture files: playbooks, inventories and stand-in programs written into a test's
//! directory.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Writes `contents` to `dir/rel` (creating parent dirs); returns the path.
pub fn write_file(dir: &Path, rel: &str, contents: &str) -> PathBuf {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
    }
    std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// Writes an executable (mode 755) `dir/rel`, e.g. a shell-script module or a stand-in
/// command; returns the path.
pub fn write_executable(dir: &Path, rel: &str, contents: &str) -> PathBuf {
    let path = write_file(dir, rel, contents);
    make_executable(&path);
    path
}

/// Sets mode 755 on `path`.
pub fn make_executable(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod 755 {}: {e}", path.display()));
}
