//! YAML loading with line numbers and YAML 1.1 scalar rules (as PyYAML, hence Ansible, reads them).
//!
//! Documents are parsed into [`Node`] trees that remember where each node starts, so that
//! playbook errors can name `file:line`. [`Node::to_json`] turns a tree into plain data.

use anyhow::{anyhow, Result};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;
use std::path::Path;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A YAML node with its 1-based line and column.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// 1-based line where the node starts.
    pub line: usize,
    /// 1-based column where the node starts.
    pub col: usize,
    /// The node's content.
    pub kind: NodeKind,
}

/// Where a task (or play) was written: the file and the position of its YAML node.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskOrigin {
    /// The file.
    pub file: std::sync::Arc<std::path::PathBuf>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl std::fmt::Display for TaskOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// The content of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A resolved scalar (null, bool, number or string).
    Scalar(Value),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order; keys are rendered to strings.
    Map(Vec<(String, Node)>),
}

impl Node {
    /// Converts the tree to plain JSON-like data.
    pub fn to_json(&self) -> Value {
        match &self.kind {
            NodeKind::Scalar(v) => v.clone(),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => {
                let mut map = Map::new();
                for (k, v) in entries {
                    map.insert(k.clone(), v.to_json());
                }
                Value::Object(map)
            }
        }
    }

    /// The mapping entries, if this node is a mapping.
    pub fn as_map(&self) -> Option<&[(String, Node)]> {
        match &self.kind {
            NodeKind::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The sequence items, if this node is a sequence.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// True for a null scalar.
    pub fn is_null(&self) -> bool {
        matches!(self.kind, NodeKind::Scalar(Value::Null))
    }
}

/// Parses every document of a YAML text the playbook's author wrote (its strings are trusted,
/// see `jinja::trust`); `origin` names the source in errors.
pub fn parse_str(text: &str, origin: &str) -> Result<Vec<Node>> {
    parse(text, origin, false)
}

/// Parses every document of a YAML text that is data (`from_yaml`): nothing in it is trusted.
pub fn parse_data_str(text: &str, origin: &str) -> Result<Vec<Node>> {
    parse(text, origin, true)
}

fn parse(text: &str, origin: &str, data: bool) -> Result<Vec<Node>> {
    let mut builder = Builder {
        data,
        ..Builder::default()
    };
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, true).map_err(|e| {
        let m = e.marker();
        crate::error::syntax(format!(
            "YAML syntax error in {}:{}:{}: {}",
            origin,
            m.line(),
            m.col() + 1,
            e.info()
        ))
    })?;
    if let Some(err) = builder.error {
        return Err(crate::error::syntax(format!(
            "YAML error in {origin}: {err}"
        )));
    }
    Ok(builder.docs)
}

/// Reads and parses a YAML file; errors name the file and line.
pub fn load_file(path: &Path) -> Result<Vec<Node>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    // a vault-encrypted file (vars files, group_vars/host_vars, `-e @file`, playbooks)
    let text = crate::vault::decrypt_file_text(text, path)?;
    parse_str(&text, &path.display().to_string())
}

/// Reads a YAML file holding one document and returns it as data (`Null` when empty).
pub fn load_value(path: &Path) -> Result<Value> {
    Ok(load_file(path)?
        .into_iter()
        .next()
        .map(|n| n.to_json())
        .unwrap_or(Value::Null))
}

/// Resolves a plain scalar the YAML 1.1 way: null, booleans (yes/no/on/off), ints, floats.
pub fn resolve_plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "y" | "Y" => {
            // PyYAML does not treat y/Y as booleans.
            if s == "y" || s == "Y" {
                return Value::String(s.to_string());
            }
            return Value::Bool(true);
        }
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => {
            return Value::Bool(false)
        }
        _ => {}
    }
    if let Some(v) = parse_int(s) {
        return Value::Number(v.into());
    }
    if let Some(f) = parse_float(s) {
        if let Some(n) = Number::from_f64(f) {
            return Value::Number(n);
        }
    }
    Value::String(s.to_string())
}

fn parse_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if body.is_empty() {
        return None;
    }
    let body = body.replace('_', "");
    let v = if let Some(hex) = body.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(bin) = body.strip_prefix("0b") {
        i64::from_str_radix(bin, 2).ok()?
    } else if body.len() > 1 && body.starts_with('0') {
        i64::from_str_radix(&body[1..], 8).ok()?
    } else if body.bytes().all(|b| b.is_ascii_digit()) {
        body.parse().ok()?
    } else {
        return None;
    };
    Some(if neg { -v } else { v })
}

fn parse_float(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    match lower.as_str() {
        ".inf" | "+.inf" | "-.inf" | ".nan" => return None,
        _ => {}
    }
    let looks_numeric = s
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+' | b'_'))
        && s.bytes().any(|b| b.is_ascii_digit())
        && s.contains('.');
    if !looks_numeric {
        return None;
    }
    s.replace('_', "").parse().ok()
}

enum Frame {
    Seq(Node, usize),
    Map(Node, Option<String>, usize),
}

#[derive(Default)]
struct Builder {
    /// Data, not the author's text (`from_yaml`): its strings are not remembered as trusted.
    data: bool,
    docs: Vec<Node>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    error: Option<String>,
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq(seq, _)) => {
                if let NodeKind::Seq(items) = &mut seq.kind {
                    items.push(node);
                }
            }
            Some(Frame::Map(map, key, _)) => match key.take() {
                None => {
                    // a mapping "starts" at its first key, as Ansible reports positions
                    if let NodeKind::Map(entries) = &map.kind {
                        if entries.is_empty() {
                            map.line = node.line;
                            map.col = node.col;
                        }
                    }
                    let k = match &node.kind {
                        NodeKind::Scalar(Value::String(s)) => s.clone(),
                        NodeKind::Scalar(Value::Null) => String::new(),
                        NodeKind::Scalar(v) => v.to_string(),
                        _ => {
                            self.error = Some(format!(
                                "line {}: complex mapping keys are not supported",
                                node.line
                            ));
                            String::new()
                        }
                    };
                    *key = Some(k);
                }
                Some(k) => {
                    if let NodeKind::Map(entries) = &mut map.kind {
                        if k == "<<" {
                            merge_into(entries, &node);
                        } else if let Some(slot) = entries.iter_mut().find(|(ek, _)| *ek == k) {
                            slot.1 = node;
                        } else {
                            entries.push((k, node));
                        }
                    }
                }
            },
        }
    }
}

/// Applies a YAML merge key (`<<: *anchor` or a list of anchors): existing keys win.
fn merge_into(entries: &mut Vec<(String, Node)>, node: &Node) {
    let sources: Vec<&Node> = match &node.kind {
        NodeKind::Seq(items) => items.iter().collect(),
        _ => vec![node],
    };
    for src in sources {
        if let NodeKind::Map(m) = &src.kind {
            for (k, v) in m {
                if !entries.iter().any(|(ek, _)| ek == k) {
                    entries.push((k.clone(), v.clone()));
                }
            }
        }
    }
}

fn scalar_value(text: String, style: TScalarStyle, tag: &Option<Tag>) -> Value {
    if let Some(tag) = tag {
        match tag.suffix.as_str() {
            "str" => return Value::String(text),
            "int" | "float" | "bool" | "null" => return resolve_plain(&text),
            // an inline vault value: its plaintext (or a value that fails the task using it)
            "vault" => return Value::String(crate::vault::inline_value(&text)),
            // Ansible's !unsafe: the text as is, never templated, never a trusted expression
            "unsafe" => return Value::String(crate::jinja::value::unsafe_value(&text)),
            _ => return Value::String(text),
        }
    }
    match style {
        TScalarStyle::Plain => resolve_plain(&text),
        _ => Value::String(text),
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let (line, col) = (mark.line(), mark.col() + 1);
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let v = scalar_value(text, style, &tag);
                // the author's text is trusted (see `jinja::trust`); `!unsafe` and vaulted
                // values never are
                let plain = tag
                    .as_ref()
                    .is_none_or(|t| !matches!(t.suffix.as_str(), "unsafe" | "vault"));
                if let (false, true, Value::String(s)) = (self.data, plain, &v) {
                    crate::jinja::trust::remember(s);
                }
                self.push_value(
                    Node {
                        line,
                        col,
                        kind: NodeKind::Scalar(v),
                    },
                    anchor,
                );
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq(
                Node {
                    line,
                    col,
                    kind: NodeKind::Seq(Vec::new()),
                },
                anchor,
            )),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map(
                Node {
                    line,
                    col,
                    kind: NodeKind::Map(Vec::new()),
                },
                None,
                anchor,
            )),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(frame) = self.stack.pop() {
                    let (node, anchor) = match frame {
                        Frame::Seq(n, a) => (n, a),
                        Frame::Map(n, _, a) => (n, a),
                    };
                    self.push_value(node, anchor);
                }
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().unwrap_or(Node {
                    line,
                    col,
                    kind: NodeKind::Scalar(Value::Null),
                });
                self.push_value(node, 0);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml11_scalars() {
        let docs = parse_str(
            "a: yes\nb: 'yes'\nc: 010\nd: 1.5\ne: ~\nf: 0x1f\ng: '3'\nh: On\n",
            "t",
        )
        .unwrap();
        assert_eq!(
            docs[0].to_json(),
            json!({"a": true, "b": "yes", "c": 8, "d": 1.5, "e": null, "f": 31, "g": "3", "h": true})
        );
    }

    #[test]
    fn unsafe_values_render_as_their_text_only() {
        let docs = parse_str("a: !unsafe '{{ x }} {% raw %}'\nb: !unsafe 1 == 0\n", "t").unwrap();
        let v = docs[0].to_json();
        let a = v["a"].as_str().unwrap();
        assert_eq!(
            crate::jinja::value::unsafe_text(a).as_deref(),
            Some("{{ x }} {% raw %}")
        );
        let t = crate::jinja::Templar::new();
        let ctx = minijinja::Value::from_serialize(json!({"x": "never"}));
        assert_eq!(t.render_str(a, &ctx).unwrap(), "{{ x }} {% raw %}");
        // never a trusted expression
        let err = t.condition(&v["b"], &ctx).unwrap_err();
        assert!(err.is::<crate::jinja::Untrusted>(), "{err}");
        assert_eq!(crate::jinja::value::unsafe_text("{{ x }}"), None);
    }

    #[test]
    fn lines_and_anchors() {
        let docs = parse_str("- x: &a {k: 1}\n  y: *a\n- z:\n    <<: *a\n    m: 2\n", "t").unwrap();
        let seq = docs[0].as_seq().unwrap();
        assert_eq!(seq[1].line, 3);
        assert_eq!(
            docs[0].to_json(),
            json!([{"x": {"k": 1}, "y": {"k": 1}}, {"z": {"k": 1, "m": 2}}])
        );
    }

    #[test]
    fn syntax_error_has_line() {
        let err = parse_str("a: 1\n b: [\n", "f.yml").unwrap_err().to_string();
        assert!(err.contains("f.yml:2"), "{err}");
    }
}
