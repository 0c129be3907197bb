//! The INI inventory format: `[group]`, `[group:vars]`, `[group:children]`, inline host vars.

use super::{range, Inventory};
use crate::error::syntax;
use anyhow::Result;
use serde_json::{Number, Value};
use std::path::Path;

enum Section {
    Hosts(String),
    Vars(String),
    Children(String),
}

/// Parses INI inventory text into `inv`; errors name `path:line`.
pub fn parse(inv: &mut Inventory, text: &str, path: &Path) -> Result<()> {
    let mut section = Section::Hosts("ungrouped".to_string());
    let origin = path.display();
    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let err = |msg: String| syntax(format!("{origin}:{lineno}: {msg}"));
        if line.starts_with('[') {
            let Some(inner) = line.strip_prefix('[').and_then(|l| {
                let end = l.find(']')?;
                Some(&l[..end])
            }) else {
                return Err(err(format!("invalid section header {line:?}")));
            };
            let (name, kind) = match inner.rsplit_once(':') {
                Some((n, k)) => (n.to_string(), Some(k)),
                None => (inner.to_string(), None),
            };
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(err(format!("invalid group name {name:?}")));
            }
            section = match kind {
                None => Section::Hosts(name),
                Some("vars") => Section::Vars(name),
                Some("children") => Section::Children(name),
                Some(other) => {
                    return Err(err(format!(
                        "section suffix :{other} not understood (expected :vars or :children)"
                    )))
                }
            };
            let (Section::Hosts(g) | Section::Vars(g) | Section::Children(g)) = &section;
            {
                inv.add_group(g);
            }
            continue;
        }
        match &section {
            Section::Hosts(group) => {
                let tokens = shlex::split(strip_comment(line))
                    .ok_or_else(|| err(format!("unbalanced quotes in {line:?}")))?;
                let Some((first, rest)) = tokens.split_first() else {
                    continue;
                };
                let (name, port) = split_port(first);
                let mut vars = super::Vars::new();
                if let Some(p) = port {
                    vars.insert("ansible_port".into(), Value::Number(p.into()));
                }
                for tok in rest {
                    let Some((k, v)) = tok.split_once('=') else {
                        return Err(err(format!(
                            "expected key=value host variable, got {tok:?}"
                        )));
                    };
                    vars.insert(k.to_string(), parse_value(v));
                }
                let names = range::expand(&name).map_err(|e| err(e.to_string()))?;
                for n in names {
                    inv.add_host_to_group(&n, group);
                    let h = inv.add_host(&n);
                    super::merge(&mut h.vars, &vars);
                }
            }
            Section::Vars(group) => {
                let Some((k, v)) = line.split_once('=') else {
                    return Err(err(format!(
                        "expected key=value in [{group}:vars], got {line:?}"
                    )));
                };
                let g = inv.add_group(group);
                g.vars.insert(k.trim().to_string(), parse_value(v.trim()));
            }
            Section::Children(group) => {
                let child = strip_comment(line).trim();
                inv.add_child(group, child)
                    .map_err(|e| err(e.to_string()))?;
            }
        }
    }
    Ok(())
}

fn strip_comment(line: &str) -> &str {
    // a `#` starting a word begins a comment
    let bytes = line.as_bytes();
    let mut quote: Option<u8> = None;
    for (i, &b) in bytes.iter().enumerate() {
        match (quote, b) {
            (Some(q), c) if c == q => quote = None,
            (None, b'\'' | b'"') => quote = Some(b),
            (None, b'#') if i == 0 || bytes[i - 1].is_ascii_whitespace() => return &line[..i],
            _ => {}
        }
    }
    line
}

fn split_port(token: &str) -> (String, Option<u16>) {
    // `host:port`, but not IPv6 addresses or range syntax with colons inside brackets
    if token.matches(':').count() == 1 && !token.contains('[') {
        if let Some((h, p)) = token.rsplit_once(':') {
            if let Ok(port) = p.parse() {
                return (h.to_string(), Some(port));
            }
        }
    }
    if let Some((h, p)) = token.rsplit_once("]:") {
        if let Ok(port) = p.parse() {
            return (format!("{h}]"), Some(port));
        }
    }
    (token.to_string(), None)
}

/// Interprets an INI value as Python's `ast.literal_eval` would, falling back to the string.
pub fn parse_value(v: &str) -> Value {
    let value = parse_value_untagged(v);
    // the inventory is the author's text (see `jinja::trust`)
    crate::jinja::trust::remember_value(&value);
    value
}

fn parse_value_untagged(v: &str) -> Value {
    let v = v.trim();
    match v {
        "True" => return Value::Bool(true),
        "False" => return Value::Bool(false),
        "None" => return Value::Null,
        _ => {}
    }
    if let Some(inner) = quoted(v) {
        return Value::String(inner);
    }
    let digits = v.replace('_', "");
    if !v.starts_with('_') && !v.ends_with('_') {
        if let Ok(i) = digits.parse::<i64>() {
            if !(digits.len() > 1 && digits.trim_start_matches(['-', '+']).starts_with('0')) {
                return Value::Number(i.into());
            }
        }
        if digits.contains('.') || digits.contains('e') {
            if let Ok(f) = digits.parse::<f64>() {
                if let Some(n) = Number::from_f64(f) {
                    if f.is_finite() {
                        return Value::Number(n);
                    }
                }
            }
        }
    }
    if (v.starts_with('[') && v.ends_with(']')) || (v.starts_with('{') && v.ends_with('}')) {
        let json_like = v
            .replace('\'', "\"")
            .replace("True", "true")
            .replace("False", "false")
            .replace("None", "null");
        if let Ok(parsed) = serde_json::from_str::<Value>(&json_like) {
            return parsed;
        }
    }
    Value::String(v.to_string())
}

fn quoted(v: &str) -> Option<String> {
    let b = v.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        let inner = &v[1..v.len() - 1];
        if !inner.contains(b[0] as char) {
            return Some(inner.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::parse_value;
    use serde_json::json;

    #[test]
    fn literal_eval_like() {
        assert_eq!(parse_value("5"), json!(5));
        assert_eq!(parse_value("yes"), json!("yes"));
        assert_eq!(parse_value("True"), json!(true));
        assert_eq!(parse_value("'a b'"), json!("a b"));
        assert_eq!(parse_value("1.5"), json!(1.5));
        assert_eq!(parse_value("[1, 'x']"), json!([1, "x"]));
        assert_eq!(parse_value("010"), json!("010"));
        assert_eq!(parse_value("127.0.0.1"), json!("127.0.0.1"));
    }
}
