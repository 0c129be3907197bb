//! Roles: a play's `roles:`, `import_role` and `include_role` tasks.
//!
//! A role is a directory with `tasks/main.yml` and, optionally, `handlers/main.yml`,
//! `defaults/main.yml`, `vars/main.yml`, `meta/main.yml` (`dependencies`, run first), `files/`
//! and `templates/` (searched first by `copy`/`template` of the role's tasks). It is found as
//! Ansible finds it: `roles/<name>` beside the playbook, then `roles_path`
//! (`ANSIBLE_ROLES_PATH`, `ansible.cfg`), then `<name>` beside the playbook, or a path.

use super::blocks::{
    at, handler_items, include_item, list_of, parse_items, tag_list, task_nodes, Inherit, Item,
    INHERITED,
};
use crate::error::syntax;
use crate::yaml::Node;
use anyhow::Result;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A loaded role.
#[derive(Debug)]
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
}

impl Role {
    /// Finds and loads the role `name` for a playbook in `playbook_dir`; `at` locates the
    /// reference for errors.
    pub fn load(name: &str, playbook_dir: &Path, at: &str) -> Result<Arc<Role>> {
        let path = find(name, playbook_dir).ok_or_else(|| {
            syntax(format!(
                "{at}: the role '{name}' was not found in {}",
                search_path(name, playbook_dir)
                    .iter()
                    .filter_map(|p| p.parent())
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            ))
        })?;
        let defaults = vars_file(&path, "defaults")?;
        let vars = vars_file(&path, "vars")?;
        let dependencies = match main_file(&path, "meta") {
            Some(meta) => match crate::yaml::load_value(&meta)? {
                Value::Object(m) => match m.get("dependencies") {
                    Some(Value::Array(deps)) => deps.clone(),
                    Some(Value::Null) | None => Vec::new(),
                    Some(_) => {
                        return Err(syntax(format!(
                            "{}: dependencies must be a list",
                            meta.display()
                        )))
                    }
                },
                _ => Vec::new(),
            },
            None => Vec::new(),
        };
        Ok(Arc::new(Role {
            name: name.to_string(),
            path,
            defaults,
            vars,
            dependencies,
        }))
    }

    /// The role's `tasks/<file>` (`main` unless `tasks_from` says otherwise).
    pub fn tasks_file(&self, from: Option<&str>) -> Option<PathBuf> {
        file_in(&self.path.join("tasks"), from.unwrap_or("main"))
    }

    /// The role's `handlers/main.yml`, if it has one.
    pub fn handlers_file(&self) -> Option<PathBuf> {
        main_file(&self.path, "handlers")
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

fn find(name: &str, playbook_dir: &Path) -> Option<PathBuf> {
    if name.contains('/') {
        let p = playbook_dir.join(name);
        return p.is_dir().then_some(p);
    }
    search_path(name, playbook_dir)
        .into_iter()
        .find(|p| p.join("tasks").is_dir() || p.join("meta").is_dir())
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

fn vars_file(role: &Path, sub: &str) -> Result<Map<String, Value>> {
    let Some(path) = main_file(role, sub) else {
        return Ok(Map::new());
    };
    match crate::yaml::load_value(&path)? {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        _ => Err(syntax(format!("{}: must be a mapping", path.display()))),
    }
}

/// The roles of a play as its parse meets them (`roles:`, then `import_role` tasks): their
/// defaults and vars are visible to every task of the play, their handlers are the play's.
#[derive(Debug, Default)]
pub struct PlayRoles {
    /// The play's roles, in the order they were met.
    pub roles: Vec<Arc<Role>>,
    /// Their handlers.
    pub handlers: Vec<Item>,
    /// The play's playbook directory, where roles are looked for.
    pub playbook_dir: PathBuf,
    /// The references run so far: a role runs again only with other keywords or parameters.
    run: Vec<(PathBuf, Value)>,
    /// The roles whose handlers are in [`PlayRoles::handlers`].
    handled: Vec<PathBuf>,
}

impl PlayRoles {
    /// For a play of the playbook in `playbook_dir`.
    pub fn new(playbook_dir: PathBuf) -> Self {
        PlayRoles {
            playbook_dir,
            ..PlayRoles::default()
        }
    }
}

/// Parses a play's `roles:` list into the items to run (each role after its dependencies; a
/// role already run in the play with the same keywords and parameters is not run again).
pub fn play_roles(node: &Node, file: &Arc<PathBuf>, inherit: &Inherit) -> Result<Vec<Item>> {
    if node.is_null() {
        return Ok(Vec::new());
    }
    let Some(entries) = node.as_seq() else {
        return Err(syntax(format!("{}: roles must be a list", at(file, node))));
    };
    let mut items = Vec::new();
    for entry in entries {
        let (entry, at) = (entry.to_json(), at(file, entry));
        items.extend(expand(&entry, &at, inherit, None, true, true)?.0);
    }
    Ok(items)
}

/// An `import_role` task: the role's tasks (`tasks_from`, default `main`), with the task's
/// `when`, `tags`, `vars` and keywords, its defaults and vars the play's. Or, with `include`,
/// an `include_role` task: the include, whose `when` gates the role's tasks and whose `vars`
/// they get; its defaults and vars are the role's own unless `public: true`.
pub fn import_role(
    node: &Node,
    entries: &[(String, Node)],
    file: &Arc<PathBuf>,
    inherit: &Inherit,
    include: bool,
) -> Result<Vec<Item>> {
    let what = if include {
        "include_role"
    } else {
        "import_role"
    };
    let mut reference = Map::new();
    let mut tasks_from = None;
    let mut public = false;
    let mut include_args = Map::new();
    let (mut when, mut vars, mut tags, mut task_name) = (Vec::new(), Map::new(), Vec::new(), None);
    for (k, v) in entries {
        let val = v.to_json();
        match k.as_str() {
            "import_role" | "ansible.builtin.import_role" | "include_role"
            | "ansible.builtin.include_role" => {
                let Value::Object(args) = val else {
                    return Err(syntax(format!(
                        "{}: {what} needs a mapping with `name`",
                        at(file, v)
                    )));
                };
                include_args = args.clone();
                for (arg, value) in args {
                    match arg.as_str() {
                        "name" => {
                            reference.insert("role".into(), value);
                        }
                        "tasks_from" => tasks_from = Some(crate::jinja::value::scalar_string(&value)),
                        "public" if include => public = crate::jinja::value::ansible_boolean(&value),
                        other => {
                            return Err(syntax(format!(
                                "{}: {what} option '{other}' is not supported by etcd-agent (name, tasks_from{})",
                                at(file, v),
                                if include { ", public" } else { "" }
                            )))
                        }
                    }
                }
            }
            "name" => task_name = Some(crate::jinja::value::scalar_string(&val)),
            "when" if include => when = list_of(&val),
            "vars" if include => {
                if let Value::Object(m) = val {
                    vars = m;
                }
            }
            "tags" if include => tags = tag_list(&val),
            other if include => {
                return Err(syntax(format!(
                    "{}: keyword '{other}' on include_role is not supported by etcd-agent (name, when, vars, tags)",
                    at(file, v)
                )))
            }
            other => {
                reference.insert(other.to_string(), val);
            }
        }
    }
    let role_name = reference_name(&Value::Object(reference.clone())).unwrap_or_default();
    let entry = Value::Object(reference);
    if !include {
        return expand(
            &entry,
            &at(file, node),
            inherit,
            tasks_from.as_deref(),
            false,
            true,
        )
        .map(|(items, _)| items);
    }
    let mut inner = inherit.clone();
    inner.vars.extend(vars.clone());
    let (items, role) = expand(
        &entry,
        &at(file, node),
        &inner,
        tasks_from.as_deref(),
        false,
        false,
    )?;
    let name = task_name.unwrap_or_else(|| format!("include_role : {role_name}"));
    let mut item = include_item(
        ("include_role", &name, &role_name),
        (node, file),
        inherit,
        (when, vars, tags),
        items,
    );
    if let Item::Include { step, .. } = &mut item {
        if let Some(task) = Arc::get_mut(&mut step.task) {
            task.exposes = public.then_some(role);
            task.args
                .insert("_include_args".into(), Value::Object(include_args));
        }
    }
    Ok(vec![item])
}

/// One role reference (a name, or a mapping with `role` and keywords or parameters).
/// `once`: not again if already run with the same parameters (`roles:`, dependencies);
/// `expose`: its defaults and vars become the play's.
fn expand(
    entry: &Value,
    at: &str,
    inherit: &Inherit,
    tasks_from: Option<&str>,
    once: bool,
    expose: bool,
) -> Result<(Vec<Item>, Arc<Role>)> {
    let name = reference_name(entry)
        .ok_or_else(|| syntax(format!("{at}: a role needs a name (`role:`)")))?;
    if crate::jinja::value::is_template(&name) {
        return Err(syntax(format!(
            "{at}: templated role names are not supported by etcd-agent"
        )));
    }
    let mut inner = inherit.clone();
    if let Value::Object(m) = entry {
        for (k, v) in m {
            match k.as_str() {
                "role" | "name" => {}
                "when" => inner.when.extend(list_of(v)),
                "tags" => inner.tags.extend(tag_list(v)),
                "vars" => {
                    if let Value::Object(vars) = v {
                        inner.vars.extend(vars.clone());
                    }
                }
                k if INHERITED.contains(&k) => {
                    inner.keywords.retain(|(x, _)| x != k);
                    inner.keywords.push((k.to_string(), v.clone()));
                }
                // anything else is a role parameter: a variable of the role's tasks
                _ => {
                    inner.vars.insert(k.clone(), v.clone());
                }
            }
        }
    }
    let collector = inherit
        .play_roles
        .clone()
        .ok_or_else(|| syntax(format!("{at}: roles are only known inside a play")))?;
    let playbook_dir = lock(&collector).playbook_dir.clone();
    let role = Role::load(&name, &playbook_dir, at)?;
    let mut params = match entry {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    params.remove("role");
    params.remove("name");
    let instance = (role.path.clone(), Value::Object(params));
    let first_time = {
        let mut roles = lock(&collector);
        if once && roles.run.contains(&instance) {
            return Ok((Vec::new(), role));
        }
        roles.run.push(instance);
        if expose && !roles.roles.iter().any(|r| r.path == role.path) {
            roles.roles.push(role.clone());
        }
        let first_time = !roles.handled.contains(&role.path);
        if first_time {
            roles.handled.push(role.path.clone());
        }
        first_time
    };
    let mut items = Vec::new();
    let mut deps = inner.clone();
    deps.role = None;
    for dep in &role.dependencies {
        items.extend(expand(dep, at, &deps, None, true, expose)?.0);
    }
    inner.role = Some(role.clone());
    if first_time {
        // a role's handlers join the play's once, however often the role runs
        if let Some(path) = role.handlers_file() {
            let handlers = handler_items(&task_nodes(&path)?, &Arc::new(path), &inner)?;
            lock(&collector).handlers.extend(handlers);
        }
    }
    match role.tasks_file(tasks_from) {
        Some(path) => {
            let nodes = task_nodes(&path)?;
            items.extend(parse_items(&nodes, &Arc::new(path), &inner, 1)?);
        }
        None if tasks_from.is_some() => {
            return Err(syntax(format!(
                "{at}: the role '{name}' has no tasks file {:?}",
                tasks_from.unwrap_or_default()
            )))
        }
        None => {}
    }
    Ok((items, role))
}

fn lock(collector: &Mutex<PlayRoles>) -> std::sync::MutexGuard<'_, PlayRoles> {
    collector.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_role_names_where_it_was_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        let err = Role::load("nope", dir.path(), "site.yml:4:7")
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
        std::fs::write(role.join("meta/main.yml"), "dependencies: [other]\n").unwrap();
        let loaded = Role::load("r", dir.path(), "x").unwrap();
        assert_eq!(loaded.defaults["port"], 2379);
        assert_eq!(loaded.dependencies, vec![Value::from("other")]);
        assert!(loaded.tasks_file(None).is_none());
        std::fs::write(role.join("meta/main.yml"), "dependencies: other\n").unwrap();
        assert!(Role::load("r", dir.path(), "x").is_err());
    }
}
