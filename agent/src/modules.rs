//! Module lookup: a fully qualified name in an installed collection (`ns.coll.etcd_health`); a
//! short name in the collections the `collections:` keyword lists, then a builtin, then an
//! executable in `library/` beside the playbook, `--module-path`, `ANSIBLE_LIBRARY` or
//! ansible.cfg `library`; then, where ansible-core is installed on the controller, any module
//! ansible-core finds, run through its own packaging ([`crate::ansible_modules`]). A role's
//! `library/` is searched once the role is loaded, after the playbook's (as ansible-playbook adds
//! it). Python modules in a `library/` run through ansible-core's packaging too (as
//! `ansible.legacy.<name>`); without ansible-core they are refused with a clear message. A
//! module's builds for other CPUs
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

/// Roles' module directories.
#[derive(Debug, Default)]
struct RoleDirs {
    /// The roles whose directory was looked at.
    seen: Vec<PathBuf>,
    /// Their `library/` directories, in the order the roles loaded.
    dirs: Vec<PathBuf>,
}

/// A module name with the `collections` search list it was resolved under.
type CacheKey = (String, Vec<String>);

/// Finds and caches modules.
#[derive(Debug, Default)]
pub struct ModuleFinder {
    dirs: Vec<PathBuf>,
    /// Loaded roles' `library/` directories, searched after the first of `dirs` (the
    /// playbook's `library/`), and the roles already looked at.
    role_dirs: Mutex<RoleDirs>,
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
            role_dirs: Mutex::new(RoleDirs::default()),
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

    /// Adds the `library/` of a playbook's directory `dir` (if it has one) to the search, as
    /// ansible-core does for each playbook it loads.
    pub fn add_plugin_dir(&self, dir: &Path) {
        self.add_role(dir)
    }

    /// Adds the `library/` of the role in `role_path` (if it has one) to the search, as
    /// ansible-playbook does when it loads a role; names not found before are looked up again.
    pub fn add_role(&self, role_path: &Path) {
        let mut roles = self.role_dirs.lock().unwrap_or_else(|e| e.into_inner());
        if roles.seen.iter().any(|r| r == role_path) {
            return;
        }
        roles.seen.push(role_path.to_path_buf());
        let dir = role_path.join("library");
        if !dir.is_dir() || roles.dirs.contains(&dir) {
            return;
        }
        roles.dirs.push(dir);
        drop(roles);
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|_, found| found.is_ok());
        }
    }

    /// The directories searched, in order.
    fn search_order(&self) -> Vec<PathBuf> {
        let roles = self
            .role_dirs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .dirs
            .clone();
        let split = self.dirs.len().min(1);
        let mut all = self.dirs[..split].to_vec();
        all.extend(roles);
        all.extend_from_slice(&self.dirs[split..]);
        all
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
        // a collection's Python module needs the collection's module_utils, which the
        // helper is not given: refused as before
        self.find_in_dir(&dir, name, &format!("{coll}.{name}"), false)
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
        for dir in &self.search_order() {
            if let Some(found) = self.find_in_dir(dir, name, action, true) {
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

impl ModuleFinder {
    /// Module `name` in directory `dir`: the executable itself, or a `.sh` script; a Python
    /// module through ansible-core when `python` (a `library/`), else refused; a PowerShell
    /// module is refused (`action` names it in the message). `None` when absent.
    fn find_in_dir(
        &self,
        dir: &Path,
        name: &str,
        action: &str,
        python: bool,
    ) -> Option<Result<Action, String>> {
        let python_module = |path: &Path| {
            if python {
                self.python_module(name, action, path)
            } else {
                Err(unsupported(action, path))
            }
        };
        let exact = dir.join(name);
        if exact.is_file() {
            return Some(match load(name, &exact) {
                Ok(Loaded::Binary(m)) => {
                    ArchModule::collect(name, &exact, m).map(|m| Action::Binary(Arc::new(m)))
                }
                Ok(Loaded::Python) => python_module(&exact),
                Err(e) => Err(e),
            });
        }
        for ext in ["py", "ps1", "sh"] {
            let p = dir.join(format!("{name}.{ext}"));
            if p.is_file() {
                return Some(match ext {
                    "sh" => match load(name, &p) {
                        Ok(Loaded::Binary(m)) => {
                            ArchModule::collect(name, &p, m).map(|m| Action::Binary(Arc::new(m)))
                        }
                        Ok(Loaded::Python) => python_module(&p),
                        Err(e) => Err(e),
                    },
                    "py" => python_module(&p),
                    _ => Err(unsupported(action, &p)),
                });
            }
        }
        None
    }

    /// A Python module file, packaged by ansible-core as ansible-playbook would.
    fn python_module(&self, name: &str, action: &str, path: &Path) -> Result<Action, String> {
        match self.ansible.resolve_file(name, path) {
            Ok(m) => Ok(Action::Ansible(Arc::new(m))),
            Err(Missing::Refused(msg)) => Err(msg),
            Err(Missing::NotFound) => Err(unsupported(action, path)),
            Err(Missing::NoAnsibleCore(why)) => Err(format!(
                "{} (etcd-agent runs Python modules through ansible-core, which is not available: {why})",
                unsupported(action, path)
            )),
        }
    }
}

/// ansible-playbook's words for a module it cannot find.
fn not_found(action: &str) -> String {
    format!(
        "couldn't resolve module/action '{action}'. This often indicates a misspelling, missing collection, or incorrect module path."
    )
}

fn unsupported(action: &str, path: &Path) -> String {
    format!(
        "module '{action}' ({}) is a Python/PowerShell module: etcd-agent runs binary modules itself and Python modules only through ansible-core (not supported)",
        path.display()
    )
}

/// A module file as read.
enum Loaded {
    /// An executable (binary or script) the agent runs itself.
    Binary(ModuleFile),
    /// A Python module (shebang or `AnsibleModule`), for ansible-core to package.
    Python,
}

fn load(name: &str, path: &Path) -> Result<Loaded, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read module {}: {e}", path.display()))?;
    if !bytes.starts_with(b"\x7fELF") {
        let first_line = bytes.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let shebang_python =
            first_line.starts_with(b"#!") && String::from_utf8_lossy(first_line).contains("python");
        // a scan of the whole file: only for scripts, not for megabytes of binary module
        let ansible_module = bytes.windows(13).any(|w| w == b"AnsibleModule");
        if shebang_python || ansible_module {
            return Ok(Loaded::Python);
        }
    }
    Ok(Loaded::Binary(ModuleFile::new(name, bytes)))
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
