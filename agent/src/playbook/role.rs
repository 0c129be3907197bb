//! A role on disk: found as Ansible finds it (a fully qualified `ns.coll.role`, or a short name
//! in the collections the `collections` keyword lists, in `roles/` of an installed collection;
//! else `roles/<name>` beside the playbook, then `roles_path` (`ANSIBLE_ROLES_PATH`,
//! `ansible.cfg`), then `<name>` beside the playbook, or a path) and loaded:
//! `defaults/main.yml`, `vars/main.yml`, `meta/main.yml` (`dependencies`, `collections`),
//! and where its `tasks/` and `handlers/main.yml` files are. `files/` and `templates/` are
//! searched first by `copy`/`template` of the role's tasks.
//!
//! A leaf of the playbook parser: tasks name their role with this type; expanding a role into
//! tasks is the block parser's ([`super::blocks::roles`]).

use crate::collections;
use crate::error::syntax;
use anyhow::Result;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A loaded role.
#[derive(Debug, Clone)]
pub struct Role {
    /// The name as written (`role_name`).
    pub name: String,
    /// Its directory (`role_path`).
    pub path: PathBuf,
    /// `defaults/main.yml`: below every other variable.
    pub defaults: Map<String, Value>,
    /// `vars/main.yml`: above play vars, below block and task vars.
    pub vars: Map<String, Value>,
    /// `meta/main.yml` `dependencies`, as written.
    pub dependencies: Vec<Value>,
    /// The collection the role was found in (`roles/` of an installed collection).
    pub collection: Option<String>,
    /// `meta/main.yml` `allow_duplicates`: the role runs again when listed again with the same
    /// parameters.
    pub allow_duplicates: bool,
    /// `meta/main.yml` `collections`.
    pub meta_collections: Vec<String>,
}

impl Role {
    /// Finds and loads the role `name` for a playbook in `playbook_dir`; `search` is the
    /// `collections` list in effect, `at` locates the reference for errors.
    pub fn load(name: &str, playbook_dir: &Path, search: &[String], at: &str) -> Result<Arc<Role>> {
        let roots = collections::roots(Some(playbook_dir), &crate::config::collections_path());
        if let Some((path, coll)) = collections::find_role(&roots, name, search) {
            return Role::load_dir(name, path, Some(coll));
        }
        if collections::split_fqcn(name).is_some() {
            return Err(not_found(format!(
                "{at}: the role '{name}' was not found: no installed collection has it (searched {})",
                roots
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            )));
        }
        let path = find(name, playbook_dir).ok_or_else(|| {
            not_found(format!(
                "{at}: the role '{name}' was not found in {}",
                search_path(name, playbook_dir)
                    .iter()
                    .filter_map(|p| p.parent())
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            ))
        })?;
        Role::load_dir(name, path, None)
    }

    /// Loads the role in directory `path`, found in `collection` if any.
    fn load_dir(name: &str, path: PathBuf, collection: Option<String>) -> Result<Arc<Role>> {
        let defaults = vars_file(&path, "defaults")?;
        let vars = vars_file(&path, "vars")?;
        let mut dependencies = Vec::new();
        let mut meta_collections = Vec::new();
        let mut allow_duplicates = false;
        if let Some(meta) = main_file(&path, "meta") {
            if let Value::Object(m) = crate::yaml::load_value(&meta)? {
                dependencies = match m.get("dependencies") {
                    Some(Value::Array(deps)) => deps.clone(),
                    Some(Value::Null) | None => Vec::new(),
                    Some(_) => {
                        return Err(syntax(format!(
                            "{}: dependencies must be a list",
                            meta.display()
                        )))
                    }
                };
                allow_duplicates = m
                    .get("allow_duplicates")
                    .is_some_and(crate::jinja::value::ansible_boolean);
                if let Some(v) = m.get("collections") {
                    meta_collections = crate::collections::keyword_list(v)
                        .map_err(|e| syntax(format!("{}: {e}", meta.display())))?;
                }
            }
        }
        Ok(Arc::new(Role {
            name: name.to_string(),
            path,
            defaults,
            vars,
            dependencies,
            allow_duplicates,
            collection,
            meta_collections,
        }))
    }

    /// The `collections` search list of the role's tasks, as Ansible builds it: the role's own
    /// collection (or, for a role outside collections, the playbook's), then `meta/main.yml`
    /// `collections`; with any of those, Ansible's own content last.
    pub fn search_list(&self, default_collection: Option<&str>) -> Vec<String> {
        let mut list: Vec<String> = self
            .collection
            .as_deref()
            .or(default_collection)
            .map(str::to_string)
            .into_iter()
            .collect();
        for c in &self.meta_collections {
            if !list.contains(c) {
                list.push(c.clone());
            }
        }
        let builtin = ["ansible.builtin", "ansible.legacy"];
        if !list.is_empty() && !list.iter().any(|c| builtin.contains(&c.as_str())) {
            let last = if self.collection.is_some() {
                "ansible.builtin"
            } else {
                "ansible.legacy"
            };
            list.push(last.to_string());
        }
        list
    }

    /// The role's `tasks/<file>` (`main` unless `tasks_from` says otherwise).
    pub fn tasks_file(&self, from: Option<&str>) -> Option<PathBuf> {
        file_in(&self.path.join("tasks"), from.unwrap_or("main"))
    }

    /// Why `tasks_from` may not be used: it names a file outside the role's `tasks/` (an
    /// absolute path, or `..` leading out), which ansible-core refuses in its words.
    pub fn outside_tasks(&self, from: &str) -> Option<String> {
        let tasks = self.path.join("tasks");
        let wanted = lexical_normal(&tasks.join(from));
        (!wanted.starts_with(lexical_normal(&tasks))).then(|| {
            format!(
                "Failed loading '{}' for role ({}) as it is not inside the expected role path: '{}'",
                wanted.display(),
                self.name,
                tasks.display()
            )
        })
    }

    /// The prefixes a notification may put before a handler name or `listen` topic of this
    /// role: `name : ` with the role's short name and with its collection-qualified name.
    pub fn notify_prefixes(&self) -> Vec<String> {
        let short = self.name.rsplit('.').next().unwrap_or(&self.name);
        let mut out = vec![format!("{short} : ")];
        let full = match &self.collection {
            Some(c) => format!("{c}.{short} : "),
            None => format!("{} : ", self.name),
        };
        if !out.contains(&full) {
            out.push(full);
        }
        out
    }

    /// The role's `handlers/main.yml` (or `handlers/<from>.yml` with `handlers_from`), if it
    /// has one.
    pub fn handlers_file(&self, from: Option<&str>) -> Option<PathBuf> {
        file_in(&self.path.join("handlers"), from.unwrap_or("main"))
    }

    /// The same role with its `vars` and `defaults` read from `vars/<vars_from>` and
    /// `defaults/<defaults_from>` where given (`include_role`/`import_role`'s `vars_from`,
    /// `defaults_from`); a file that is not there is ansible-core's error.
    pub fn with_files(&self, vars_from: Option<&str>, defaults_from: Option<&str>) -> Result<Role> {
        let mut role = self.clone();
        for (sub, from, into) in [
            ("vars", vars_from, &mut role.vars),
            ("defaults", defaults_from, &mut role.defaults),
        ] {
            if let Some(from) = from {
                *into = vars_file_named(&self.path, sub, from)?.ok_or_else(|| {
                    syntax(format!(
                        "Could not find specified file in role: {sub}/{from}"
                    ))
                })?;
            }
        }
        Ok(role)
    }
}

/// A role reference's name: a string, or a mapping's `role` (or `name`).
pub fn reference_name(entry: &Value) -> Option<String> {
    match entry {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => m
            .get("role")
            .or_else(|| m.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
}

fn search_path(name: &str, playbook_dir: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![playbook_dir.join("roles")];
    dirs.extend(crate::config::roles_path());
    dirs.push(playbook_dir.to_path_buf());
    dirs.into_iter().map(|d| d.join(name)).collect()
}

/// A role that is nowhere: ansible-core's AnsibleError, exit 1 (not a parser error's 4).
fn not_found(msg: String) -> anyhow::Error {
    crate::error::Fatal::Other(msg).into()
}

fn find(name: &str, playbook_dir: &Path) -> Option<PathBuf> {
    // any directory of that name is the role, as in ansible-core's `_load_role_path` (a role
    // may hold only `vars/` or `defaults/`); a name with `/` is a path under each search
    // directory, and last the path itself (from the working directory)
    search_path(name, playbook_dir)
        .into_iter()
        .chain(name.contains('/').then(|| PathBuf::from(name)))
        .find(|p| p.is_dir())
}

/// `path` with `.` and `..` resolved without the file system (Python's `os.path.normpath`).
fn lexical_normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `<dir>/<name>.yml`, `.yaml` or `<name>` itself.
fn file_in(dir: &Path, name: &str) -> Option<PathBuf> {
    [
        format!("{name}.yml"),
        format!("{name}.yaml"),
        name.to_string(),
    ]
    .into_iter()
    .map(|f| dir.join(f))
    .find(|p| p.is_file())
}

fn main_file(role: &Path, sub: &str) -> Option<PathBuf> {
    file_in(&role.join(sub), "main")
}

/// A role's `defaults` or `vars`: the first of `main.yml`, `main.yaml`, `main.json` and
/// `main`; when that is a directory, every file in it (sorted, recursively; hidden files,
/// `~` backups and other extensions left out), merged in that order, as ansible-core's
/// `_load_role_yaml` with `allow_dir` does.
fn vars_file(role: &Path, sub: &str) -> Result<Map<String, Value>> {
    Ok(vars_file_named(role, sub, "main")?.unwrap_or_default())
}

/// A role's `sub/<name>` variables file (or directory) as [`vars_file`] reads `main`; `None`
/// when there is none.
fn vars_file_named(role: &Path, sub: &str, name: &str) -> Result<Option<Map<String, Value>>> {
    let dir = role.join(sub);
    let Some(found) = [
        format!("{name}.yml"),
        format!("{name}.yaml"),
        format!("{name}.json"),
        name.to_string(),
    ]
    .iter()
    .map(|f| dir.join(f))
    .find(|p| p.exists()) else {
        return Ok(None);
    };
    let files = if found.is_dir() {
        dir_vars_files(&found)
    } else {
        vec![found]
    };
    let mut merged = Map::new();
    for path in files {
        match crate::yaml::load_value(&path)? {
            Value::Object(m) => merged.extend(m),
            Value::Null => {}
            _ => return Err(syntax(format!("{}: must be a mapping", path.display()))),
        }
    }
    Ok(Some(merged))
}

/// The variable files of a `main/` directory, as ansible-core's `_get_dir_vars_files` lists
/// them.
fn dir_vars_files(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    let mut found = Vec::new();
    for path in names {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        let ext = path.extension().map(|e| e.to_string_lossy().into_owned());
        if path.is_dir() && ext.is_none() {
            found.extend(dir_vars_files(&path));
        } else if path.is_file()
            && ext
                .as_deref()
                .is_none_or(|e| ["yml", "yaml", "json"].contains(&e))
        {
            found.push(path);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_role_names_where_it_was_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        let err = Role::load("nope", dir.path(), &[], "site.yml:4:7")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("site.yml:4:7: the role 'nope' was not found in "),
            "{err}"
        );
        assert!(
            err.contains(&format!("{}/roles:", dir.path().display())),
            "{err}"
        );
    }

    #[test]
    fn a_role_without_tasks_still_loads_its_variables() {
        let dir = tempfile::tempdir().unwrap();
        let role = dir.path().join("roles/r");
        std::fs::create_dir_all(role.join("defaults")).unwrap();
        std::fs::create_dir_all(role.join("meta")).unwrap();
        std::fs::write(role.join("defaults/main.yml"), "port: 2379\n").unwrap();
        std::fs::create_dir_all(role.join("vars/main/more")).unwrap();
        std::fs::write(role.join("vars/main/00.yml"), "a: 1\nb: 1\n").unwrap();
        std::fs::write(role.join("vars/main/01.yml"), "").unwrap();
        std::fs::write(role.join("vars/main/more/02.yml"), "b: 2\n").unwrap();
        std::fs::write(role.join("vars/main/03.txt"), "c: 3\n").unwrap();
        std::fs::write(role.join("vars/main/.04.yml"), "c: 4\n").unwrap();
        std::fs::write(role.join("meta/main.yml"), "dependencies: [other]\n").unwrap();
        let loaded = Role::load("r", dir.path(), &[], "x").unwrap();
        assert_eq!(loaded.defaults["port"], 2379);
        // vars/main/ is a directory: its files merged in order, others left out
        assert_eq!(
            Value::Object(loaded.vars.clone()),
            serde_json::json!({"a": 1, "b": 2})
        );
        assert_eq!(loaded.dependencies, vec![Value::from("other")]);
        assert!(loaded.tasks_file(None).is_none());
        assert!(loaded.outside_tasks("sub/../x.yml").is_none());
        let why = loaded.outside_tasks("sub/../../../x.yml").unwrap();
        assert!(
            why.contains("as it is not inside the expected role path"),
            "{why}"
        );
        assert!(loaded.outside_tasks("/etc/passwd").is_some());
        std::fs::write(role.join("meta/main.yml"), "dependencies: other\n").unwrap();
        assert!(Role::load("r", dir.path(), &[], "x").is_err());
    }
}
