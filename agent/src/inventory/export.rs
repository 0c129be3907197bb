//! `etcd-agent inventory` output beyond plain JSON, as `ansible-inventory` prints it:
//! `--export` (each group's own variables in the group, each host's own variables only),
//! `--yaml` (the YAML inventory layout, `yaml.dump(default_flow_style=False)`), and
//! `--graph --vars` (`{name = value}` lines under hosts and groups).
//!
//! YAML anchors: Ansible hands every host of a group the same list or dict object for a group
//! variable, and PyYAML writes an object met twice once with `&idNNN` and then as `*idNNN`.
//! The agent knows where each host variable came from (a group's inventory variables, a
//! `group_vars` file, or the host itself), which is that identity: values from the same group
//! source are written as PyYAML writes one shared object.

use super::{pattern, Inventory, Vars};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// A value to write, and the source it is shared from (`None`: the host's own).
#[derive(Debug, Clone)]
enum Node {
    Scalar(Value),
    Seq(Vec<Node>, Option<String>),
    Map(Vec<(String, Node)>, Option<String>),
}

impl Node {
    /// `v` as a node; `shared` names the source of a list or dict shared between hosts.
    fn of(v: &Value, shared: Option<String>) -> Node {
        match v {
            Value::Array(a) => Node::Seq(a.iter().map(|x| Node::of(x, None)).collect(), shared),
            Value::Object(m) => {
                let mut entries: Vec<(String, Node)> = m
                    .iter()
                    .map(|(k, x)| (k.clone(), Node::of(x, None)))
                    .collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Node::Map(entries, shared)
            }
            other => Node::Scalar(other.clone()),
        }
    }

    fn map(entries: Vec<(String, Node)>) -> Node {
        Node::Map(entries, None)
    }

    fn identity(&self) -> Option<&str> {
        match self {
            Node::Seq(_, id) | Node::Map(_, id) => id.as_deref(),
            Node::Scalar(_) => None,
        }
    }
}

/// PyYAML's serializer: anchors for shared nodes met twice, numbered in the order of their
/// second meeting, written in block style with two spaces of indent and sequences not
/// indented under their key.
struct Emitter {
    anchors: HashMap<String, Option<String>>,
    written: HashSet<String>,
    count: usize,
    out: String,
}

impl Emitter {
    fn dump(doc: &Node) -> String {
        let mut e = Emitter {
            anchors: HashMap::new(),
            written: HashSet::new(),
            count: 0,
            out: String::new(),
        };
        e.anchor(doc);
        match doc {
            Node::Map(entries, _) if !entries.is_empty() => e.mapping(entries, 0),
            Node::Seq(items, _) if !items.is_empty() => e.sequence(items, 0),
            other => {
                let text = e.inline(other);
                e.out.push_str(&format!("{text}\n"));
            }
        }
        e.out
    }

    fn anchor(&mut self, node: &Node) {
        if let Some(id) = node.identity() {
            match self.anchors.get(id) {
                Some(None) => {
                    self.count += 1;
                    self.anchors
                        .insert(id.to_string(), Some(format!("id{:03}", self.count)));
                    return;
                }
                Some(Some(_)) => return,
                None => {
                    self.anchors.insert(id.to_string(), None);
                }
            }
        }
        match node {
            Node::Seq(items, _) => items.iter().for_each(|i| self.anchor(i)),
            Node::Map(entries, _) => entries.iter().for_each(|(_, v)| self.anchor(v)),
            Node::Scalar(_) => {}
        }
    }

    /// `&idNNN` before a node's first writing, `*idNNN` for later ones (`Err`).
    fn tag(&mut self, node: &Node) -> Result<Option<String>, String> {
        let Some(id) = node.identity() else {
            return Ok(None);
        };
        let Some(Some(name)) = self.anchors.get(id) else {
            return Ok(None);
        };
        if self.written.insert(id.to_string()) {
            Ok(Some(format!("&{name}")))
        } else {
            Err(format!("*{name}"))
        }
    }

    /// A node written on its key's or dash's line: scalars, empty collections.
    fn inline(&self, node: &Node) -> String {
        match node {
            Node::Scalar(v) => scalar(v),
            Node::Seq(..) => "[]".into(),
            Node::Map(..) => "{}".into(),
        }
    }

    fn is_block(node: &Node) -> bool {
        match node {
            Node::Seq(items, _) => !items.is_empty(),
            Node::Map(entries, _) => !entries.is_empty(),
            Node::Scalar(_) => false,
        }
    }

    fn mapping(&mut self, entries: &[(String, Node)], indent: usize) {
        let pad = " ".repeat(indent);
        for (k, v) in entries {
            let key = scalar(&Value::String(k.clone()));
            let tag = match self.tag(v) {
                Ok(t) => t,
                Err(alias) => {
                    self.out.push_str(&format!("{pad}{key}: {alias}\n"));
                    continue;
                }
            };
            let tag_text = tag.map(|t| format!(" {t}")).unwrap_or_default();
            match v {
                Node::Map(inner, _) if Self::is_block(v) => {
                    self.out.push_str(&format!("{pad}{key}:{tag_text}\n"));
                    self.mapping(inner, indent + 2);
                }
                Node::Seq(items, _) if Self::is_block(v) => {
                    self.out.push_str(&format!("{pad}{key}:{tag_text}\n"));
                    self.sequence(items, indent);
                }
                _ => {
                    let text = self.inline(v);
                    self.out
                        .push_str(&format!("{pad}{key}:{tag_text} {text}\n"));
                }
            }
        }
    }

    fn sequence(&mut self, items: &[Node], indent: usize) {
        let pad = " ".repeat(indent);
        for item in items {
            let tag = match self.tag(item) {
                Ok(t) => t,
                Err(alias) => {
                    self.out.push_str(&format!("{pad}- {alias}\n"));
                    continue;
                }
            };
            let tag_text = tag.map(|t| format!("{t} ")).unwrap_or_default();
            match item {
                Node::Map(inner, _) if Self::is_block(item) => {
                    // the mapping's first key goes on the dash's line
                    let outer = std::mem::take(&mut self.out);
                    self.mapping(inner, indent + 2);
                    let body = std::mem::replace(&mut self.out, outer);
                    let first = body.trim_start_matches(' ');
                    self.out.push_str(&format!("{pad}- {tag_text}{first}"));
                }
                Node::Seq(inner, _) if Self::is_block(item) => {
                    self.out.push_str(&format!("{pad}- {tag_text}\n"));
                    self.sequence(inner, indent + 2);
                }
                _ => {
                    let text = self.inline(item);
                    self.out.push_str(&format!("{pad}- {tag_text}{text}\n"));
                }
            }
        }
    }
}

/// A scalar as PyYAML writes it. Text starting with a digit is plain unless PyYAML would read
/// it back as something else (a number, a time `1:30`, a date), so addresses stay unquoted.
fn scalar(v: &Value) -> String {
    if let Value::String(s) = v {
        let date = s.len() >= 8
            && s.as_bytes()[..4].iter().all(u8::is_ascii_digit)
            && s.as_bytes()[4] == b'-';
        if s.starts_with(|c: char| c.is_ascii_digit())
            && !s.contains(':')
            && !date
            && crate::yaml::resolve_plain(s) == *v
        {
            // the other rules for plain text, without the leading digit
            let probe = format!("x{s}");
            if crate::jinja::filters::yaml_scalar(&Value::String(probe.clone())) == probe {
                return s.clone();
            }
        }
    }
    crate::jinja::filters::yaml_scalar(v)
}

/// Hosts `--list` shows: every host of `all`, less those outside `--limit`.
fn available(inv: &Inventory, limit: Option<&str>) -> anyhow::Result<Vec<String>> {
    let mut hosts = inv.group_hosts("all");
    if let Some(limit) = limit {
        let allowed = pattern::resolve(inv, limit)?;
        hosts.retain(|h| allowed.contains(h));
    }
    Ok(hosts)
}

impl Inventory {
    /// A group's own variables as `ansible-inventory --export` shows them: the inventory's
    /// (`[g:vars]`, `vars:`), then `group_vars/` beside each inventory source.
    pub fn group_own_vars(&self, name: &str) -> Vars {
        let mut out = self.group(name).map(|g| g.vars.clone()).unwrap_or_default();
        for d in &self.inventory_dirs {
            if let Some(v) = d.groups.get(name) {
                super::merge(&mut out, v);
            }
        }
        out
    }

    /// A host's own variables as `--export` shows them: the inventory's, then `host_vars/`
    /// beside each inventory source.
    pub fn host_own_vars(&self, name: &str) -> Vars {
        let mut out = self.host(name).map(|h| h.vars.clone()).unwrap_or_default();
        for d in &self.inventory_dirs {
            if let Some(v) = d.hosts.get(name) {
                super::merge(&mut out, v);
            }
        }
        out
    }

    /// Where each of [`Inventory::host_vars`]' values comes from, for the group sources
    /// whose lists and dicts every host of the group shares (the host's own are absent).
    fn shared_sources(&self, host: &str) -> HashMap<String, String> {
        let mut out = HashMap::new();
        let mut put = |vars: &Vars, source: String| {
            for k in vars.keys() {
                out.insert(k.clone(), format!("{source}\u{0}{k}"));
            }
        };
        let mut groups = self.host_all_groups(host);
        groups.sort_by(|a, b| (self.depth(a), a).cmp(&(self.depth(b), b)));
        if self.host(host).is_some_and(|h| h.implicit) {
            groups = vec!["all".to_string()];
        }
        for g in &groups {
            if let Some(group) = self.group(g) {
                put(&group.vars, format!("group {g}"));
            }
        }
        let dirs = [("inv", &self.inventory_dirs), ("pb", &self.playbook_dirs)];
        for (kind, list) in dirs {
            for (i, d) in list.iter().enumerate() {
                if let Some(v) = d.groups.get("all") {
                    put(v, format!("{kind}{i} all"));
                }
            }
        }
        for (kind, list) in dirs {
            for (i, d) in list.iter().enumerate() {
                for g in groups.iter().filter(|g| *g != "all") {
                    if let Some(v) = d.groups.get(g) {
                        put(v, format!("{kind}{i} {g}"));
                    }
                }
            }
        }
        // the host's own values win over the groups' and are its alone
        let own = self.host(host).map(|h| &h.vars);
        let dirs_own = [&self.inventory_dirs, &self.playbook_dirs]
            .into_iter()
            .flatten()
            .filter_map(|d| d.hosts.get(host));
        for vars in own.into_iter().chain(dirs_own) {
            for k in vars.keys() {
                out.remove(k);
            }
        }
        out
    }
}

/// The `--list` document: with `export`, each group's own `vars` and each host's own
/// variables; otherwise every host's variables as tasks see them.
pub fn list_document(inv: &Inventory, limit: Option<&str>, export: bool) -> anyhow::Result<Value> {
    let hosts = available(inv, limit)?;
    let set: HashSet<&str> = hosts.iter().map(String::as_str).collect();
    let mut results = Map::new();
    let mut seen = HashSet::new();
    json_group(inv, "all", &set, export, &mut seen, &mut results);
    let mut hostvars = Map::new();
    for h in &hosts {
        let vars = if export {
            inv.host_own_vars(h)
        } else {
            inv.host_vars(h)
        };
        if !vars.is_empty() {
            hostvars.insert(h.clone(), Value::Object(vars));
        }
    }
    results.insert(
        "_meta".into(),
        serde_json::json!({"hostvars": hostvars, "profile": "inventory_legacy"}),
    );
    Ok(Value::Object(results))
}

fn json_group(
    inv: &Inventory,
    name: &str,
    available: &HashSet<&str>,
    export: bool,
    seen: &mut HashSet<String>,
    results: &mut Map<String, Value>,
) {
    let Some(group) = inv.group(name) else { return };
    let mut entry = Map::new();
    if name != "all" {
        let hosts: Vec<Value> = group
            .hosts
            .iter()
            .filter(|h| available.contains(h.as_str()))
            .map(|h| Value::String(h.clone()))
            .collect();
        if !hosts.is_empty() {
            entry.insert("hosts".into(), Value::Array(hosts));
        }
    }
    let mut children = Vec::new();
    for c in &group.children {
        children.push(Value::String(c.clone()));
        if seen.insert(c.clone()) {
            json_group(inv, c, available, export, seen, results);
        }
    }
    if !children.is_empty() {
        entry.insert("children".into(), Value::Array(children));
    }
    if export {
        let vars = inv.group_own_vars(name);
        if !vars.is_empty() {
            entry.insert("vars".into(), Value::Object(vars));
        }
    }
    if !entry.is_empty() {
        results.insert(name.to_string(), Value::Object(entry));
    }
}

/// The `--list --yaml` document (`yaml_inventory`): groups nested under `children`, each
/// host's variables under the first group that lists it (`{}` under later ones).
pub fn list_yaml(inv: &Inventory, limit: Option<&str>, export: bool) -> anyhow::Result<String> {
    let hosts = available(inv, limit)?;
    let set: HashSet<&str> = hosts.iter().map(String::as_str).collect();
    let mut seen_hosts = HashSet::new();
    let mut seen_groups = HashSet::new();
    let doc = match yaml_group(inv, "all", &set, export, &mut seen_hosts, &mut seen_groups) {
        Some(node) => Node::map(vec![("all".into(), node)]),
        None => Node::map(Vec::new()),
    };
    Ok(Emitter::dump(&doc))
}

fn yaml_group(
    inv: &Inventory,
    name: &str,
    available: &HashSet<&str>,
    export: bool,
    seen_hosts: &mut HashSet<String>,
    seen_groups: &mut HashSet<String>,
) -> Option<Node> {
    let group = inv.group(name)?;
    let mut entries: Vec<(String, Node)> = Vec::new();
    let mut children = Vec::new();
    for c in &group.children {
        if c == "all" {
            continue;
        }
        if seen_groups.contains(c) {
            children.push((c.clone(), Node::map(Vec::new())));
        } else {
            if let Some(node) = yaml_group(inv, c, available, export, seen_hosts, seen_groups) {
                children.push((c.clone(), node));
            }
            seen_groups.insert(c.clone());
        }
    }
    children.sort_by(|a, b| a.0.cmp(&b.0));
    if !children.is_empty() {
        entries.push(("children".into(), Node::map(children)));
    }
    let mut hosts = Vec::new();
    if name != "all" {
        for h in group
            .hosts
            .iter()
            .filter(|h| available.contains(h.as_str()))
        {
            let node = if seen_hosts.insert(h.clone()) {
                host_node(inv, h, export)
            } else {
                Node::map(Vec::new())
            };
            hosts.push((h.clone(), node));
        }
    }
    hosts.sort_by(|a, b| a.0.cmp(&b.0));
    if !hosts.is_empty() {
        entries.push(("hosts".into(), Node::map(hosts)));
    }
    if export {
        let vars = inv.group_own_vars(name);
        if !vars.is_empty() {
            entries.push(("vars".into(), Node::of(&plain(Value::Object(vars)), None)));
        }
    }
    (!entries.is_empty()).then(|| Node::map(entries))
}

/// A host's variables as a node; flattened ones keep the identity of the group source they
/// come from.
fn host_node(inv: &Inventory, host: &str, export: bool) -> Node {
    if export {
        return Node::of(&plain(Value::Object(inv.host_own_vars(host))), None);
    }
    let vars = inv.host_vars(host);
    let sources = inv.shared_sources(host);
    let mut entries: Vec<(String, Node)> = vars
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                Node::of(&plain(v.clone()), sources.get(k).cloned()),
            )
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Node::map(entries)
}

/// A value with its `!unsafe` texts as text (YAML and graph output).
fn plain(v: Value) -> Value {
    crate::jinja::value::shown_unsafe(&v, false)
}

/// One host's variables (`--host NAME --yaml`).
pub fn host_yaml(vars: &Value) -> String {
    Emitter::dump(&Node::of(vars, None))
}

/// `--graph [GROUP]`: the group tree starting at `group`; with `vars` (`--vars`), with
/// `{name = value}` lines, each host's variables under it and each group's own after its
/// members. `None` for an unknown group.
pub fn graph(inv: &Inventory, group: &str, vars: bool) -> Option<String> {
    inv.group(group)?;
    let mut lines = Vec::new();
    graph_group(inv, group, 0, vars, &mut lines);
    Some(lines.join("\n"))
}

fn graph_name(name: &str, depth: usize) -> String {
    if depth == 0 {
        name.to_string()
    } else {
        format!("{}--{}", "  |".repeat(depth), name)
    }
}

/// Python's `str()` of a value, as `'{%s = %s}' % (name, val)` writes it.
fn python_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => crate::jinja::value::python_repr(other),
    }
}

fn show_vars(vars: &Vars, depth: usize, out: &mut Vec<String>) {
    let mut keys: Vec<&String> = vars.keys().collect();
    keys.sort();
    for k in keys {
        out.push(graph_name(
            &format!("{{{k} = {}}}", python_str(&plain(vars[k].clone()))),
            depth,
        ));
    }
}

fn graph_group(inv: &Inventory, name: &str, depth: usize, vars: bool, out: &mut Vec<String>) {
    let Some(group) = inv.group(name) else { return };
    out.push(graph_name(&format!("@{name}:"), depth));
    for c in &group.children {
        graph_group(inv, c, depth + 1, vars, out);
    }
    if name != "all" {
        for h in &group.hosts {
            out.push(graph_name(h, depth + 1));
            if vars {
                show_vars(&inv.host_vars(h), depth + 2, out);
            }
        }
    }
    if vars {
        show_vars(&inv.group_own_vars(name), depth + 1, out);
    }
}
