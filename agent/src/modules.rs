//! Module lookup: a fully qualified name in an installed collection (`ns.coll.etcd_health`); a
//! short name in the collections the `collections:` keyword lists, then a builtin, then an
//! executable in `library/` beside the playbook, `--module-path`, `ANSIBLE_LIBRARY` or
//! ansible.cfg `library`; then, where ansible-core is installed on the controller, any module
//! ansible-core finds, run through its own packaging ([`crate::ansible_modules`]). Python
//! modules in `library/` are refused with a clear message. A module's builds for other CPUs
//! (`NAME_<arch>` beside it) come along; see [`crate::module_arch`].

use crate::ansible_modules::{AnsibleCore, AnsibleModule, Missing};
use crate::collections::{self, Content, BUILTIN_COLLECTIONS};
use crate::module_arch::ArchModule;
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
    /// An executable module, with its builds for each CPU (see [`crate::module_arch`]).
    Binary(Arc<ArchModule>),
    /// A module packaged by ansible-core (the fallback for modules the agent lacks).
    Ansible(Arc<AnsibleModule>),
}

/// A module name with the `collections` search list it was resolved under.
type CacheKey = (String, Vec<String>);

/// Finds and caches modules.
#[derive(Debug, Default)]
pub struct ModuleFinder {
    dirs: Vec<PathBuf>,
    /// Where collections are installed ([`collections::roots`]).
    collection_roots: Vec<PathBuf>,
    cache: Mutex<HashMap<CacheKey, Result<Action, String>>>,
    /// ansible-core, asked about modules found nowhere else.
    ansible: AnsibleCore,
}

impl ModuleFinder {
    /// A finder searching `dirs` in order, and no collection.
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        ModuleFinder {
            dirs,
            collection_roots: Vec::new(),
            cache: Mutex::new(HashMap::new()),
            ansible: AnsibleCore::default(),
        }
    }

    /// The same finder, also searching the collections installed under `roots`.
    pub fn with_collections(mut self, roots: Vec<PathBuf>) -> Self {
        self.collection_roots = roots;
        self
    }

    /// Resolves a module name outside any `collections:` keyword.
    pub fn resolve(&self, action: &str) -> Result<Action, String> {
        self.resolve_in(action, &[])
    }

    /// Resolves a task's module name; `search` is the task's `collections:` list in effect.
    pub fn resolve_in(&self, action: &str, search: &[String]) -> Result<Action, String> {
        let key = (action.to_string(), search.to_vec());
        if let Ok(cache) = self.cache.lock() {
            if let Some(hit) = cache.get(&key) {
                return hit.clone();
            }
        }
        let result = self.lookup(action, search);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, result.clone());
        }
        result
    }

    /// A module of collection `coll`, if the collection is installed and has it.
    fn in_collection(&self, coll: &str, name: &str) -> Option<Result<Action, String>> {
        let (dir, _) =
            collections::content_dir(&self.collection_roots, coll, Content::Module, name)?;
        find_in_dir(&dir, name, &format!("{coll}.{name}"))
    }

    fn lookup(&self, action: &str, search: &[String]) -> Result<Action, String> {
        if let Some((coll, name)) = collections::split_fqcn(action) {
            // a namespace the agent emulates (ansible.builtin, ansible.legacy, ansible.posix)
            // goes on to the builtins and library below
            if short_name(action) == action {
                return self
                    .in_collection(&coll, name)
                    .unwrap_or_else(|| Err(not_found(action)));
            }
        } else {
            let listed = search
                .iter()
                .filter(|c| !BUILTIN_COLLECTIONS.contains(&c.as_str()));
            for coll in listed {
                if let Some(found) = self.in_collection(coll, action) {
                    return found;
                }
            }
        }
        let short = short_name(action);
        let is_builtin_ns = short != action || !action.contains('.');
        if is_builtin_ns && crate::builtins::is_builtin(short) {
            return Ok(Action::Builtin(short.to_string()));
        }
        // library modules are found by their last name segment
        let name = action.rsplit('.').next().unwrap_or(action);
        for dir in &self.dirs {
            if let Some(found) = find_in_dir(dir, name, action) {
                return found;
            }
        }
        if matches!(
            short,
            "include_tasks" | "import_tasks" | "include_role" | "import_role" | "meta" | "block"
        ) {
            return Err(format!("'{action}' is not supported by etcd-agent yet"));
        }
        match self.ansible.resolve(action, search) {
            Ok(m) => Ok(Action::Ansible(Arc::new(m))),
            Err(Missing::NotFound) => Err(not_found(action)),
            Err(Missing::Refused(msg)) => Err(msg),
            Err(Missing::NoAnsibleCore(why)) => Err(format!(
                "{} (etcd-agent runs modules it does not implement through ansible-core, which is not available: {why})",
                not_found(action)
            )),
        }
    }
}

/// Module `name` in directory `dir`: the executable itself, or a `.sh` script; a Python or
/// PowerShell module is refused (`action` names it in the message). `None` when absent.
fn find_in_dir(dir: &Path, name: &str, action: &str) -> Option<Result<Action, String>> {
    let exact = dir.join(name);
    if exact.is_file() {
        let found = load(name, &exact).and_then(|m| ArchModule::collect(name, &exact, m));
        return Some(found.map(|m| Action::Binary(Arc::new(m))));
    }
    for ext in ["py", "ps1", "sh"] {
        let p = dir.join(format!("{name}.{ext}"));
        if p.is_file() {
            if ext == "sh" {
                let found = load(name, &p).and_then(|m| ArchModule::collect(name, &p, m));
                return Some(found.map(|m| Action::Binary(Arc::new(m))));
            }
            return Some(Err(unsupported(action, &p)));
        }
    }
    None
}

/// ansible-playbook's words for a module it cannot find.
fn not_found(action: &str) -> String {
    format!(
        "couldn't resolve module/action '{action}'. This often indicates a misspelling, missing collection, or incorrect module path."
    )
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
