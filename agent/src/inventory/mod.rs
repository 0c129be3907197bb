//! The inventory: hosts, groups and their variables, read from INI or YAML sources as Ansible does.

mod dump;
mod export;
mod ini;
pub mod pattern;
mod range;
mod vars_dirs;
mod yaml_inv;

pub use dump::host_json;
pub use export::{graph, host_yaml, list_document, list_yaml};

use anyhow::{anyhow, Context, Result};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Variables as a JSON object.
pub type Vars = Map<String, Value>;

/// One inventory host.
#[derive(Debug, Clone, Default)]
pub struct Host {
    /// The inventory name (`inventory_hostname`).
    pub name: String,
    /// Variables set on the host in inventory sources (inline or `hosts:` mapping).
    pub vars: Vars,
    /// Direct groups, in the order the host was added to them.
    pub groups: Vec<String>,
    /// True for the implicit `localhost`, which is in no group and not in `all`.
    pub implicit: bool,
    /// The inventory source that first defined the host (see [`Inventory::source_vars`]).
    pub source: Option<Source>,
}

/// Where a host was defined: Ansible's `inventory_file` and `inventory_dir`.
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// The file's absolute path, or a host list source as given (`h1,h2,`).
    pub file: String,
    /// The file's directory; none for a host list.
    pub dir: Option<String>,
}

/// One inventory group.
#[derive(Debug, Clone, Default)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Hosts directly in the group, in order.
    pub hosts: Vec<String>,
    /// Child groups, in order.
    pub children: Vec<String>,
    /// Parent groups.
    pub parents: Vec<String>,
    /// Variables from inventory sources (`[g:vars]`, `vars:`).
    pub vars: Vars,
}

/// Variables found in `group_vars/` and `host_vars/` directories of one base directory.
#[derive(Debug, Clone, Default)]
pub struct VarsDir {
    /// Group name -> variables.
    pub groups: HashMap<String, Vars>,
    /// Host name -> variables.
    pub hosts: HashMap<String, Vars>,
}

/// A parsed inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    hosts: Vec<Host>,
    host_index: HashMap<String, usize>,
    groups: Vec<Group>,
    group_index: HashMap<String, usize>,
    /// `group_vars`/`host_vars` beside the inventory sources.
    inventory_dirs: Vec<VarsDir>,
    /// `group_vars`/`host_vars` beside the playbook (higher precedence).
    playbook_dirs: Vec<VarsDir>,
    /// The source being loaded: hosts it creates remember it.
    current_source: Option<Source>,
}

impl Default for Inventory {
    fn default() -> Self {
        Self::new()
    }
}

impl Inventory {
    /// An empty inventory holding the `all` and `ungrouped` groups.
    pub fn new() -> Self {
        let mut inv = Inventory {
            hosts: Vec::new(),
            host_index: HashMap::new(),
            groups: Vec::new(),
            group_index: HashMap::new(),
            inventory_dirs: Vec::new(),
            playbook_dirs: Vec::new(),
            current_source: None,
        };
        inv.add_group("all");
        inv.add_group("ungrouped");
        let _ = inv.add_child("all", "ungrouped");
        inv
    }

    /// Loads the given sources (files, directories, or `h1,h2,` lists) in order.
    pub fn load(sources: &[String]) -> Result<Self> {
        let mut inv = Inventory::new();
        for src in sources {
            inv.load_source(src)?;
        }
        inv.current_source = None;
        inv.reconcile();
        Ok(inv)
    }

    fn load_source(&mut self, src: &str) -> Result<()> {
        let path = Path::new(src);
        if !path.exists() {
            if src.contains(',') {
                self.current_source = Some(Source {
                    file: src.to_string(),
                    dir: None,
                });
                for name in src.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    self.add_host(name);
                }
                return Ok(());
            }
            return Err(crate::error::Fatal::Other(format!(
                "inventory source {src} does not exist"
            ))
            .into());
        }
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot read inventory directory {src}"))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && !ignored_inventory_file(p))
                .collect();
            entries.sort();
            for entry in entries {
                self.load_file(&entry)?;
            }
            self.inventory_dirs.push(vars_dirs::load(path)?);
        } else {
            self.load_file(path)?;
            let dir = path.parent().unwrap_or(Path::new("."));
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            self.inventory_dirs.push(vars_dirs::load(dir)?);
        }
        Ok(())
    }

    fn load_file(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow!("cannot read inventory {}: {e}", path.display()))?;
        // a vault-encrypted inventory file, as Ansible's ini and yaml plugins read them
        let text = crate::vault::decrypt_file_text(text, path)?;
        // absolute with symlinks resolved, as Ansible's paths are
        let file = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.current_source = Some(Source {
            file: file.display().to_string(),
            dir: file.parent().map(|d| d.display().to_string()),
        });
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let looks_yaml = matches!(ext, "yml" | "yaml" | "json")
            || (!ext.eq_ignore_ascii_case("ini") && yaml_inv::looks_like_yaml(&text));
        if looks_yaml {
            yaml_inv::parse(self, &text, path)
        } else {
            ini::parse(self, &text, path)
        }
    }

    /// Adds `group_vars/` and `host_vars/` from the playbook's directory.
    pub fn add_playbook_dir(&mut self, dir: &Path) -> Result<()> {
        let loaded = vars_dirs::load(dir)?;
        self.playbook_dirs.push(loaded);
        Ok(())
    }

    /// Returns the group, creating it if needed.
    pub fn add_group(&mut self, name: &str) -> &mut Group {
        let idx = match self.group_index.get(name) {
            Some(&i) => i,
            None => {
                self.groups.push(Group {
                    name: name.to_string(),
                    ..Default::default()
                });
                self.group_index
                    .insert(name.to_string(), self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        &mut self.groups[idx]
    }

    /// Returns the host, creating it if needed.
    pub fn add_host(&mut self, name: &str) -> &mut Host {
        let idx = match self.host_index.get(name) {
            Some(&i) => i,
            None => {
                self.hosts.push(Host {
                    name: name.to_string(),
                    source: self.current_source.clone(),
                    ..Default::default()
                });
                self.host_index
                    .insert(name.to_string(), self.hosts.len() - 1);
                self.hosts.len() - 1
            }
        };
        &mut self.hosts[idx]
    }

    /// Puts `host` (created if needed) into `group` (created if needed).
    pub fn add_host_to_group(&mut self, host: &str, group: &str) {
        self.add_host(host);
        let g = self.add_group(group);
        if !g.hosts.iter().any(|h| h == host) {
            g.hosts.push(host.to_string());
        }
        let h = self.add_host(host);
        if !h.groups.iter().any(|x| x == group) {
            h.groups.push(group.to_string());
        }
    }

    /// Makes `child` a child group of `parent` (both created if needed).
    pub fn add_child(&mut self, parent: &str, child: &str) -> Result<()> {
        if parent == child {
            return Err(anyhow!("group {parent} cannot be its own child"));
        }
        self.add_group(child);
        let p = self.add_group(parent);
        if !p.children.iter().any(|c| c == child) {
            p.children.push(child.to_string());
        }
        let c = self.add_group(child);
        if !c.parents.iter().any(|x| x == parent) {
            c.parents.push(parent.to_string());
        }
        Ok(())
    }

    /// Adds `host` to `group` (created if missing) under `parents` (created if missing), as
    /// `group_by` does at run time; the host keeps inventory order within the group. Returns
    /// the groups it created (for Ansible's invalid-character warning) and whether anything
    /// changed (a parent created or linked, the host added), which Ansible reports as `changed`.
    pub fn add_dynamic_group(
        &mut self,
        host: &str,
        group: &str,
        parents: &[String],
    ) -> Result<(Vec<String>, bool)> {
        let mut created = Vec::new();
        let mut changed = false;
        if self.group(group).is_none() {
            created.push(group.to_string());
        }
        self.add_group(group);
        for p in parents {
            if self.group(p).is_none() {
                created.push(p.clone());
                self.add_group(p);
                changed = true;
            }
        }
        for p in parents {
            if !self
                .group(p)
                .is_some_and(|g| g.children.iter().any(|c| c == group))
            {
                changed = true;
            }
            self.add_child(p, group)?;
        }
        for p in parents {
            if p != "all" && self.group(p).is_some_and(|g| g.parents.is_empty()) {
                self.add_child("all", p)?;
            }
        }
        if self.host(host).is_some()
            && !self
                .group(group)
                .is_some_and(|g| g.hosts.iter().any(|h| h == host))
        {
            let pos = |inv: &Self, h: &str| inv.host_index.get(h).copied().unwrap_or(usize::MAX);
            let me = pos(self, host);
            let at = self
                .group(group)
                .map(|g| g.hosts.iter().take_while(|h| pos(self, h) < me).count())
                .unwrap_or(0);
            let g = self.add_group(group);
            g.hosts.insert(at, host.to_string());
            changed = true;
            let h = self.add_host(host);
            if !h.groups.iter().any(|x| x == group) {
                h.groups.push(group.to_string());
            }
        }
        self.reconcile();
        Ok((created, changed))
    }

    /// `add_host` during a run: `name` (created if new) joins `groups` (created if new, under
    /// `all`) and gets `vars` over its own; true when the inventory changed, as Ansible's
    /// strategy reports it.
    pub fn add_dynamic_host(&mut self, name: &str, groups: &[String], vars: &Vars) -> bool {
        let mut changed = self.host(name).is_none_or(|h| h.implicit);
        self.add_host(name).implicit = false;
        for g in groups {
            if !self
                .group(g)
                .is_some_and(|group| group.hosts.iter().any(|h| h == name))
            {
                changed = true;
            }
            self.add_host_to_group(name, g);
        }
        let h = self.add_host(name);
        for (k, v) in vars {
            if h.vars.get(k) != Some(v) {
                h.vars.insert(k.clone(), v.clone());
                changed = true;
            }
        }
        self.reconcile();
        changed
    }

    /// Applies Ansible's rules after loading: parentless groups go under `all`, hosts with no
    /// group go to `ungrouped` (and leave it when they have another group).
    fn reconcile(&mut self) {
        let names: Vec<String> = self.groups.iter().map(|g| g.name.clone()).collect();
        for name in &names {
            if name != "all" && self.group(name).is_some_and(|g| g.parents.is_empty()) {
                let _ = self.add_child("all", name);
            }
        }
        let host_names: Vec<String> = self
            .hosts
            .iter()
            .filter(|h| !h.implicit)
            .map(|h| h.name.clone())
            .collect();
        for name in host_names {
            let groups = self.hosts[self.host_index[&name]].groups.clone();
            let others = groups
                .iter()
                .filter(|g| *g != "all" && *g != "ungrouped")
                .count();
            if groups.iter().any(|g| g == "ungrouped") && others > 0 {
                let ug = self.add_group("ungrouped");
                ug.hosts.retain(|h| *h != name);
                let h = self.add_host(&name);
                h.groups.retain(|g| g != "ungrouped");
            } else if others == 0 && !groups.iter().any(|g| g == "ungrouped") {
                self.add_host_to_group(&name, "ungrouped");
            }
        }
    }

    /// Looks up a group by name.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.group_index.get(name).map(|&i| &self.groups[i])
    }

    /// Looks up a host by name.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.host_index.get(name).map(|&i| &self.hosts[i])
    }

    /// All groups in creation order.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// All hosts in inventory order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Hosts of a group and its descendants, in Ansible's order (own hosts, then children
    /// breadth first), without duplicates.
    pub fn group_hosts(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for g in self.descendants(name, true) {
            if let Some(group) = self.group(&g) {
                for h in &group.hosts {
                    if seen.insert(h.clone()) {
                        out.push(h.clone());
                    }
                }
            }
        }
        out
    }

    /// Descendant groups breadth first (optionally including the group itself).
    pub fn descendants(&self, name: &str, include_self: bool) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        if include_self {
            out.push(name.to_string());
        }
        seen.insert(name.to_string());
        let mut frontier = vec![name.to_string()];
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for g in &frontier {
                if let Some(group) = self.group(g) {
                    for c in &group.children {
                        if seen.insert(c.clone()) {
                            out.push(c.clone());
                            next.push(c.clone());
                        }
                    }
                }
            }
            frontier = next;
        }
        out
    }

    /// All ancestor groups of a group (not including itself).
    pub fn ancestors(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![name.to_string()];
        while let Some(g) = stack.pop() {
            if let Some(group) = self.group(&g) {
                for p in &group.parents {
                    if !out.contains(p) {
                        out.push(p.clone());
                        stack.push(p.clone());
                    }
                }
            }
        }
        out
    }

    /// Every group a host belongs to, directly or through ancestors, including `all`.
    pub fn host_all_groups(&self, host: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(h) = self.host(host) {
            if h.implicit {
                return out;
            }
            for g in &h.groups {
                if !out.contains(g) {
                    out.push(g.clone());
                }
                for a in self.ancestors(g) {
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
            }
        }
        if !out.iter().any(|g| g == "all") {
            out.push("all".to_string());
        }
        out
    }

    /// `group_names` for a host: its groups except `all`, sorted.
    pub fn group_names(&self, host: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .host_all_groups(host)
            .into_iter()
            .filter(|g| g != "all")
            .collect();
        names.sort();
        names
    }

    /// Depth of a group below `all` (longest path), used to order variable precedence.
    fn depth(&self, name: &str) -> usize {
        let group = match self.group(name) {
            Some(g) => g,
            None => return 0,
        };
        group
            .parents
            .iter()
            .map(|p| self.depth(p) + 1)
            .max()
            .unwrap_or(0)
    }

    /// The host's variables from inventory and vars directories, by Ansible's precedence:
    /// inventory group vars (by depth, then name), `group_vars/all` (inventory then playbook
    /// dir), other `group_vars/*` (per vars directory, in source order, its groups by depth
    /// then name), host inventory vars, `host_vars/*`.
    pub fn host_vars(&self, host: &str) -> Vars {
        let mut groups = self.host_all_groups(host);
        groups.sort_by(|a, b| (self.depth(a), a).cmp(&(self.depth(b), b)));
        let mut out = Vars::new();
        let h = self.host(host);
        let implicit = h.is_some_and(|h| h.implicit);
        if implicit {
            // the implicit localhost only sees `all` vars
            groups = vec!["all".to_string()];
        }
        for g in &groups {
            if let Some(group) = self.group(g) {
                merge(&mut out, &group.vars);
            }
        }
        for dirs in [&self.inventory_dirs, &self.playbook_dirs] {
            for d in dirs.iter() {
                if let Some(v) = d.groups.get("all") {
                    merge(&mut out, v);
                }
            }
        }
        // source by source, each with all its groups: a later source's parent group beats an
        // earlier source's child group, as in Ansible's vars plugins
        for dirs in [&self.inventory_dirs, &self.playbook_dirs] {
            for d in dirs.iter() {
                for g in groups.iter().filter(|g| *g != "all") {
                    if let Some(v) = d.groups.get(g) {
                        merge(&mut out, v);
                    }
                }
            }
        }
        if let Some(h) = h {
            merge(&mut out, &h.vars);
        }
        for dirs in [&self.inventory_dirs, &self.playbook_dirs] {
            for d in dirs.iter() {
                if let Some(v) = d.hosts.get(host) {
                    merge(&mut out, v);
                }
            }
        }
        out
    }

    /// `inventory_file` and `inventory_dir` of a host from an inventory source (`inventory_dir`
    /// is null for a host list), as Ansible sets them; the lowest-precedence host variables.
    /// `ansible-inventory` leaves them out of its output, so [`Inventory::host_vars`] does too.
    pub fn source_vars(&self, host: &str) -> Vars {
        let mut out = Vars::new();
        if let Some(src) = self.host(host).and_then(|h| h.source.as_ref()) {
            out.insert("inventory_file".into(), Value::String(src.file.clone()));
            out.insert(
                "inventory_dir".into(),
                src.dir.clone().map(Value::String).unwrap_or(Value::Null),
            );
        }
        out
    }

    /// What tasks see of the host's inventory: [`Inventory::source_vars`] under
    /// [`Inventory::host_vars`].
    pub fn host_vars_for_tasks(&self, host: &str) -> Vars {
        let mut out = self.source_vars(host);
        merge(&mut out, &self.host_vars(host));
        out
    }

    /// Ensures `localhost` exists, adding Ansible's implicit one (local connection) if absent.
    pub fn ensure_implicit_localhost(&mut self) {
        self.ensure_implicit_localhost_with(None);
    }

    /// [`Inventory::ensure_implicit_localhost`]; an implicit `localhost` runs Python modules
    /// with `python` (ansible-core gives it the controller's own interpreter rather than
    /// discovering one).
    pub fn ensure_implicit_localhost_with(&mut self, python: Option<&Path>) {
        if self.host("localhost").is_some() {
            return;
        }
        let h = self.add_host("localhost");
        h.implicit = true;
        h.vars
            .insert("ansible_connection".into(), Value::String("local".into()));
        if let Some(python) = python {
            h.vars.insert(
                "ansible_python_interpreter".into(),
                Value::String(python.display().to_string()),
            );
        }
    }
}

/// Shallow merge (Ansible's default `hash_behaviour = replace`).
pub fn merge(into: &mut Vars, from: &Vars) {
    for (k, v) in from {
        into.insert(k.clone(), v.clone());
    }
}

fn ignored_inventory_file(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.starts_with('.')
        || name.ends_with('~')
        || [".orig", ".bak", ".cfg", ".retry", ".pyc", ".pyo", ".md"]
            .iter()
            .any(|s| name.ends_with(s))
}
