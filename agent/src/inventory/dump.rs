//! `inventory --list | --graph | --host` output, in the shape `ansible-inventory` prints.

use super::Inventory;
use serde_json::{json, Map, Value};
use std::collections::HashSet;

/// The `--list` document: groups with hosts/children, plus `_meta.hostvars`.
pub fn list_json(inv: &Inventory) -> Value {
    let all_hosts = inv.group_hosts("all");
    let available: HashSet<&str> = all_hosts.iter().map(String::as_str).collect();
    let mut results = Map::new();
    let mut seen = HashSet::new();
    format_group(inv, "all", &available, &mut seen, &mut results);
    let mut hostvars = Map::new();
    for h in &all_hosts {
        let vars = inv.host_vars(h);
        if !vars.is_empty() {
            hostvars.insert(h.clone(), Value::Object(vars));
        }
    }
    results.insert(
        "_meta".into(),
        json!({"hostvars": hostvars, "profile": "inventory_legacy"}),
    );
    Value::Object(results)
}

fn format_group(
    inv: &Inventory,
    name: &str,
    available: &HashSet<&str>,
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
            format_group(inv, c, available, seen, results);
        }
    }
    if !children.is_empty() {
        entry.insert("children".into(), Value::Array(children));
    }
    if !entry.is_empty() {
        results.insert(name.to_string(), Value::Object(entry));
    }
}

/// The `--graph` text, starting at `group` (usually `all`).
pub fn graph(inv: &Inventory, group: &str) -> Option<String> {
    inv.group(group)?;
    let mut lines = Vec::new();
    graph_group(inv, group, 0, &mut lines);
    Some(lines.join("\n"))
}

fn graph_name(name: &str, depth: usize) -> String {
    if depth == 0 {
        name.to_string()
    } else {
        format!("{}--{}", "  |".repeat(depth), name)
    }
}

fn graph_group(inv: &Inventory, name: &str, depth: usize, out: &mut Vec<String>) {
    let Some(group) = inv.group(name) else { return };
    out.push(graph_name(&format!("@{name}:"), depth));
    for c in &group.children {
        graph_group(inv, c, depth + 1, out);
    }
    if name != "all" {
        for h in &group.hosts {
            out.push(graph_name(h, depth + 1));
        }
    }
}

/// The `--host NAME` document: the host's variables, or `None` for an unknown host.
pub fn host_json(inv: &Inventory, host: &str) -> Option<Value> {
    inv.host(host)?;
    Some(Value::Object(inv.host_vars(host)))
}
