//! Python-like values, as Ansible shows and judges them: text of a scalar, truth, Python's
//! `repr()` and type names, `json.dumps` in its shapes, and whether text is a template.
//!
//! A leaf: it imports nothing from the crate, so the templating engine, the playbook parser,
//! the executor and the output all use it without importing each other.

use minijinja::value::ValueKind;
use minijinja::Value as JValue;
use serde::Serialize;
use serde_json::ser::Formatter;
use serde_json::Value;
use std::io::{self, Write};

/// True when the text contains Jinja markup.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// If the text is exactly one `{{ ... }}` block, returns the inner expression (without the
/// `-`/`+` whitespace control marks). Like Jinja's lexer, a `}}` closes the block only outside
/// string literals and brackets, so `{{ {'a': {'b': 1}} }}` and `{{ {'a': 1}}}` are one block.
pub fn single_expression(s: &str) -> Option<&str> {
    let t = s.trim();
    let rest = t.strip_prefix("{{")?;
    let end = expression_end(rest)?;
    if end + 2 != rest.len() {
        return None;
    }
    let inner = &rest[..end];
    let inner = inner.strip_prefix(['-', '+']).unwrap_or(inner);
    let inner = inner.strip_suffix(['-', '+']).unwrap_or(inner);
    Some(inner.trim())
}

/// Byte offset of the `}}` that closes an expression block whose text starts at `s`.
fn expression_end(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut stack: Vec<u8> = Vec::new();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if let Some(q) = quote {
            if c == b'\\' {
                i += 1;
            } else if c == q {
                quote = None;
            }
        } else {
            match c {
                b'\'' | b'"' => quote = Some(c),
                b'(' | b'[' | b'{' => stack.push(c),
                b'}' if stack.is_empty() => {
                    return (bytes.get(i + 1) == Some(&b'}')).then_some(i);
                }
                b')' | b']' | b'}' => {
                    stack.pop();
                }
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// The function an `!unsafe` value is wrapped in (see [`unsafe_value`]).
pub const UNSAFE_FUNCTION: &str = "__etcd_agent_unsafe";

/// An `!unsafe` YAML value as the agent keeps it: a template whose only output is `text`
/// (hex-encoded inside, so no character of it is ever read as markup). Rendered anywhere, it
/// is that text, never templated; evaluated as a condition it is an expression that is not
/// trusted, as ansible-core refuses it (`Encountered untrusted template or expression.`).
pub fn unsafe_value(text: &str) -> String {
    let hex: String = text.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{{{{ {UNSAFE_FUNCTION}(\"{hex}\") }}}}")
}

/// The text of a value made by [`unsafe_value`]; `None` for anything else.
pub fn unsafe_text(s: &str) -> Option<String> {
    let hex = s
        .strip_prefix("{{ ")?
        .strip_prefix(UNSAFE_FUNCTION)?
        .strip_prefix("(\"")?
        .strip_suffix("\") }}")?;
    unhex(hex)
}

/// A value as ansible-inventory shows it: each `!unsafe` text as the text (`json_form`:
/// as `{"__ansible_unsafe": text}`, the JSON form).
pub fn shown_unsafe(v: &Value, json_form: bool) -> Value {
    match v {
        Value::String(s) => match unsafe_text(s) {
            Some(text) if json_form => serde_json::json!({ "__ansible_unsafe": text }),
            Some(text) => Value::String(text),
            None => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(|i| shown_unsafe(i, json_form)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, i)| (k.clone(), shown_unsafe(i, json_form)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Bytes from hex digits, as text.
pub fn unhex(hex: &str) -> Option<String> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// A scalar rendered as text (strings unquoted).
pub fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Python's `bool(v)`, which Jinja conditions and result flags (`failed`, `skipped`) use:
/// any non-empty string is true, `"no"` and `"false"` included.
pub fn python_truth(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Null => false,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Ansible's `boolean()` for keyword and option values (`no_log: yes`, `become: "true"`):
/// a string is true only when [`boolean_text`] says so; other values as [`python_truth`].
pub fn ansible_boolean(v: &Value) -> bool {
    match v {
        Value::String(s) => boolean_text(s),
        other => python_truth(other),
    }
}

/// Ansible's true spellings of text (`1`, `true`, `yes`, `on`, `y`, `t`; any case, spaces
/// around ignored), as config values, keywords and the `bool` filter read them.
pub fn boolean_text(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on" | "y" | "t"
    )
}

/// The Python type name Ansible's messages give a value (`dict`, `list`, `str`, ...).
pub fn python_type(v: &JValue) -> &'static str {
    match v.kind() {
        ValueKind::None => "NoneType",
        ValueKind::Bool => "bool",
        ValueKind::Number if v.is_integer() => "int",
        ValueKind::Number => "float",
        ValueKind::String => "str",
        ValueKind::Bytes => "bytes",
        ValueKind::Seq | ValueKind::Iterable => "list",
        ValueKind::Map => "dict",
        _ => "object",
    }
}

/// Python's `repr()` of data, as Jinja prints lists and dicts inside text.
pub fn python_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => python_str_repr(s),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(python_repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", python_str_repr(k), python_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn python_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `json.dumps` options the `to_json`/`to_nice_json` filters pass on.
#[derive(Debug, Clone, Default)]
pub struct JsonDumps {
    /// `indent`: each nested item on its own line, indented this much more (`None`: one line).
    pub indent: Option<String>,
    /// `sort_keys`: mappings' keys in sorted order.
    pub sort_keys: bool,
    /// `ensure_ascii=False`: non-ASCII characters as themselves, not `\uXXXX`.
    pub keep_unicode: bool,
}

impl JsonDumps {
    /// `v` as Python's `json.dumps(v, indent=..., sort_keys=..., ensure_ascii=...)` writes it
    /// (separators `", "`/`": "` on one line, `","` at line ends when indented).
    pub fn dumps(&self, v: &Value) -> String {
        let mut out = String::new();
        self.write(v, 0, &mut out);
        out
    }

    fn write(&self, v: &Value, depth: usize, out: &mut String) {
        let (open, close, items): (char, char, Vec<(Option<&String>, &Value)>) = match v {
            Value::Object(m) => {
                let mut items: Vec<_> = m.iter().map(|(k, x)| (Some(k), x)).collect();
                if self.sort_keys {
                    items.sort_by(|a, b| a.0.cmp(&b.0));
                }
                ('{', '}', items)
            }
            Value::Array(a) => ('[', ']', a.iter().map(|x| (None, x)).collect()),
            Value::String(s) => return out.push_str(&json_text(s, !self.keep_unicode)),
            other => return out.push_str(&other.to_string()),
        };
        out.push(open);
        if items.is_empty() {
            out.push(close);
            return;
        }
        let newline = |out: &mut String, depth: usize| {
            if let Some(unit) = &self.indent {
                out.push('\n');
                for _ in 0..depth {
                    out.push_str(unit);
                }
            }
        };
        for (i, (key, x)) in items.into_iter().enumerate() {
            if i > 0 {
                out.push_str(if self.indent.is_some() { "," } else { ", " });
            }
            newline(out, depth + 1);
            if let Some(k) = key {
                out.push_str(&json_text(k, !self.keep_unicode));
                out.push_str(": ");
            }
            self.write(x, depth + 1, out);
        }
        newline(out, depth);
        out.push(close);
    }
}

/// Python's `json.dumps(v)`: keys in dict order, `", "`/`": "` separators, non-ASCII escaped.
pub fn json_dumps(v: &Value) -> String {
    match v {
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, x)| format!("{}: {}", json_str(k), json_dumps(x)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(json_dumps).collect::<Vec<_>>().join(", ")
        ),
        Value::String(s) => json_str(s),
        other => other.to_string(),
    }
}

fn json_str(s: &str) -> String {
    json_text(s, true)
}

/// A JSON string as Python writes it; with `ascii` (`ensure_ascii`) non-ASCII as `\uXXXX`.
fn json_text(s: &str, ascii: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ascii && (c as u32) > 0x7e) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

struct PyCompact;

impl Formatter for PyCompact {
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

/// A copy with every mapping's keys sorted (maps keep insertion order, as Python dicts do;
/// Ansible's callbacks print with `sort_keys=True`).
pub fn sorted_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted_keys(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted_keys).collect()),
        other => other.clone(),
    }
}

/// One line, `", "` and `": "` separators, sorted keys.
pub fn python_compact(v: &Value) -> String {
    let v = &sorted_keys(v);
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, PyCompact);
    if v.serialize(&mut ser).is_err() {
        return v.to_string();
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// Python's `json.dumps(indent=4, sort_keys=True)`, as `ansible-inventory` and the callbacks
/// print.
pub fn python_indented(v: &Value) -> String {
    let v = &sorted_keys(v);
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if v.serialize(&mut ser).is_err() {
        return v.to_string();
    }
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compact_like_python() {
        assert_eq!(
            python_compact(&json!({"b": [1, 2], "a": "x"})),
            r#"{"a": "x", "b": [1, 2]}"#
        );
    }
}
