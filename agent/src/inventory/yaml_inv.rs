//! The YAML inventory format: `all: {hosts, vars, children}` nested groups.

use super::{range, Inventory, Vars};
use crate::error::syntax;
use crate::yaml::Node;
use anyhow::Result;
use serde_json::Value;
use std::path::Path;

/// True when the text looks like a YAML inventory rather than INI.
pub fn looks_like_yaml(text: &str) -> bool {
    let first = text
        .lines()
        .map(str::trim_end)
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    match first {
        Some(l) => l == "---" || (l.ends_with(':') && !l.starts_with('[')) || l.contains(": "),
        None => false,
    }
}

/// Parses YAML inventory text into `inv`.
pub fn parse(inv: &mut Inventory, text: &str, path: &Path) -> Result<()> {
    let origin = path.display().to_string();
    let docs = crate::yaml::parse_str(text, &origin)?;
    let Some(doc) = docs.first() else {
        return Ok(());
    };
    if doc.is_null() {
        return Ok(());
    }
    let Some(top) = doc.as_map() else {
        return Err(syntax(format!(
            "{origin}:{}: YAML inventory must be a mapping of groups",
            doc.line
        )));
    };
    for (name, body) in top {
        parse_group(inv, name, body, &origin)?;
    }
    Ok(())
}

fn parse_group(inv: &mut Inventory, name: &str, body: &Node, origin: &str) -> Result<()> {
    inv.add_group(name);
    if body.is_null() {
        return Ok(());
    }
    let at = |line: usize, msg: String| syntax(format!("{origin}:{line}: {msg}"));
    let Some(entries) = body.as_map() else {
        return Err(at(
            body.line,
            format!("group {name:?} must be a mapping with hosts/vars/children"),
        ));
    };
    for (key, value) in entries {
        match key.as_str() {
            "vars" => match value.to_json() {
                Value::Object(v) => super::merge(&mut inv.add_group(name).vars, &v),
                Value::Null => {}
                _ => {
                    return Err(at(
                        value.line,
                        format!("vars of group {name:?} must be a mapping"),
                    ))
                }
            },
            "hosts" => {
                if value.is_null() {
                    continue;
                }
                let Some(hosts) = value.as_map() else {
                    return Err(at(
                        value.line,
                        format!("hosts of group {name:?} must be a mapping"),
                    ));
                };
                for (pattern, hv) in hosts {
                    let vars: Vars = match hv.to_json() {
                        Value::Object(m) => m,
                        Value::Null => Vars::new(),
                        _ => {
                            return Err(at(
                                hv.line,
                                format!("host {pattern:?} must map to variables"),
                            ))
                        }
                    };
                    let names = range::expand(pattern).map_err(|e| at(hv.line, e.to_string()))?;
                    for host in names {
                        inv.add_host_to_group(&host, name);
                        super::merge(&mut inv.add_host(&host).vars, &vars);
                    }
                }
            }
            "children" => {
                if value.is_null() {
                    continue;
                }
                let Some(children) = value.as_map() else {
                    return Err(at(
                        value.line,
                        format!("children of group {name:?} must be a mapping"),
                    ));
                };
                for (child, cbody) in children {
                    inv.add_child(name, child)
                        .map_err(|e| at(cbody.line, e.to_string()))?;
                    parse_group(inv, child, cbody, origin)?;
                }
            }
            other => {
                return Err(at(
                    value.line,
                    format!(
                        "group {name:?} has unknown key {other:?} (expected hosts, vars, children)"
                    ),
                ))
            }
        }
    }
    Ok(())
}
