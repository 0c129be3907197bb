//! Module lookup: builtins by short name or FQCN, else executables in `library/` beside the
//! playbook, `--module-path`, `ANSIBLE_LIBRARY` or ansible.cfg `library`. Python modules are
//! refused with a clear message.

use crate::builtins::BUILTINS;
use crate::playbook::task::short_name;
use crate::transport::ModuleFile;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What runs a task.
#[derive(Debug, Clone)]
pub enum Action {
    /// A builtin, by short name.
    Builtin(String),
    /// An executable module file.
    Binary(Arc<ModuleFile>),
}

/// Finds and caches modules.
#[derive(Debug, Default)]
pub struct ModuleFinder {
    dirs: Vec<PathBuf>,
    cache: Mutex<HashMap<String, Result<Action, String>>>,
}

impl ModuleFinder {
    /// A finder searching `dirs` in order.
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        ModuleFinder {
            dirs,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Resolves a task's module name.
    pub fn resolve(&self, action: &str) -> Result<Action, String> {
        if let Ok(cache) = self.cache.lock() {
            if let Some(hit) = cache.get(action) {
                return hit.clone();
            }
        }
        let result = self.lookup(action);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(action.to_string(), result.clone());
        }
        result
    }

    fn lookup(&self, action: &str) -> Result<Action, String> {
        let short = short_name(action);
        let is_builtin_ns = short != action || !action.contains('.');
        if is_builtin_ns && BUILTINS.contains(&short) {
            return Ok(Action::Builtin(short.to_string()));
        }
        // library modules are found by their last name segment
        let name = action.rsplit('.').next().unwrap_or(action);
        for dir in &self.dirs {
            let exact = dir.join(name);
            if exact.is_file() {
                return load(name, &exact).map(|m| Action::Binary(Arc::new(m)));
            }
            for ext in ["py", "ps1", "sh"] {
                let p = dir.join(format!("{name}.{ext}"));
                if p.is_file() {
                    if ext == "sh" {
                        return load(name, &p).map(|m| Action::Binary(Arc::new(m)));
                    }
                    return Err(unsupported(action, &p));
                }
            }
        }
        if matches!(
            short,
            "include_tasks"
                | "import_tasks"
                | "include_role"
                | "import_role"
                | "meta"
                | "include_vars"
                | "block"
        ) {
            return Err(format!("'{action}' is not supported by etcd-agent yet"));
        }
        Err(format!(
            "couldn't resolve module/action '{action}'. This often indicates a misspelling, missing collection, or incorrect module path."
        ))
    }
}

fn unsupported(action: &str, path: &Path) -> String {
    format!(
        "module '{action}' ({}) is a Python/PowerShell module: etcd-agent runs binary modules only (not supported)",
        path.display()
    )
}

fn load(name: &str, path: &Path) -> Result<ModuleFile, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read module {}: {e}", path.display()))?;
    if !bytes.starts_with(b"\x7fELF") {
        let first_line = bytes.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let shebang_python =
            first_line.starts_with(b"#!") && String::from_utf8_lossy(first_line).contains("python");
        // a scan of the whole file: only for scripts, not for megabytes of binary module
        let ansible_module = bytes.windows(13).any(|w| w == b"AnsibleModule");
        if shebang_python || ansible_module {
            return Err(unsupported(name, path));
        }
    }
    Ok(ModuleFile::new(name, bytes))
}

/// Module directories for a playbook: `library/` beside it, `--module-path`, then config.
pub fn search_dirs(
    playbook_dir: Option<&Path>,
    cli: &[String],
    cfg: &crate::config::Config,
) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = playbook_dir {
        dirs.push(d.join("library"));
    }
    for entry in cli {
        for p in entry.split(':').filter(|s| !s.is_empty()) {
            dirs.push(PathBuf::from(p));
        }
    }
    dirs.extend(cfg.library.iter().cloned());
    dirs
}
