//! Ansible's filters, tests and Python string methods for the minijinja environment,
//! plus Ansible's way of printing values inside text templates (`True`, `['a', 1]`, `None` as
//! empty text).
//!
//! Registered last by [`super::Templar::new`], so these win over minijinja's builtins
//! of the same name where Ansible differs.

use super::value::{python_repr, python_type, JsonDumps};
use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Output, State, Value as JValue};
use serde_json::{Map, Value};

fn op_err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// Data from a template value. An undefined value anywhere inside is an error, as Ansible
/// fails to use one (serde would turn it into `null`).
pub fn to_data(v: &JValue) -> Result<Value, Error> {
    match v.kind() {
        ValueKind::Undefined => Err(Error::new(ErrorKind::UndefinedError, "undefined value")),
        ValueKind::Seq | ValueKind::Iterable => v
            .try_iter()?
            .map(|item| to_data(&item))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        ValueKind::Map => {
            let mut map = Map::new();
            for key in v.try_iter()? {
                let item = to_data(&v.get_item(&key)?)?;
                map.insert(
                    key.as_str().map_or_else(|| key.to_string(), str::to_string),
                    item,
                );
            }
            Ok(Value::Object(map))
        }
        ValueKind::Number if !finite(v) => Err(op_err(NON_FINITE)),
        _ => serde_json::to_value(v).map_err(|e| op_err(e.to_string())),
    }
}

/// Why a template that made an infinite or NaN number fails. Python's division by zero
/// raises where minijinja's gives `inf`; such a number is refused wherever it reaches a result
/// (a value or text), never shown as `null` or `inf`. (One only compared inside an expression
/// is not seen.)
const NON_FINITE: &str = "division by zero (the result is not a finite number)";

/// False for an infinite or NaN float.
fn finite(v: &JValue) -> bool {
    f64::try_from(v.clone()).map_or(true, f64::is_finite)
}

/// Registers everything into `env`.
pub fn register(env: &mut Environment<'static>) {
    env.set_formatter(ansible_formatter);
    env.set_unknown_method_callback(python_method);
    env.add_filter("split", split);
    env.add_filter("unique", unique);
    env.add_filter("union", union);
    env.add_filter("difference", difference);
    env.add_filter("intersect", intersect);
    env.add_filter("symmetric_difference", symmetric_difference);
    env.add_filter("dict2items", dict2items);
    env.add_filter("items2dict", items2dict);
    env.add_filter("combine", combine);
    env.add_filter("to_json", to_json);
    env.add_filter("to_yaml", to_yaml);
    env.add_filter("to_nice_yaml", to_nice_yaml);
    env.add_filter("from_yaml", from_yaml);
    env.add_filter("b64encode", b64encode);
    env.add_filter("b64decode", b64decode);
    env.add_filter("quote", quote);
    env.add_filter("flatten", flatten);
    env.add_filter("extract", extract);
    env.add_filter("map", map);
    env.add_filter("join", join);
    env.add_filter("type_debug", type_debug);
    env.add_test("in", |v: JValue, seq: JValue| contains(&seq, &v));
    env.add_test("contains", |seq: JValue, v: JValue| contains(&seq, &v));
}

/// Python's `x in seq` (substring for strings, key for dicts, item for lists).
fn contains(seq: &JValue, v: &JValue) -> bool {
    if let (Some(hay), Some(needle)) = (seq.as_str(), v.as_str()) {
        return hay.contains(needle);
    }
    if seq.kind() == ValueKind::Map {
        return seq.get_item(v).is_ok_and(|x| !x.is_undefined());
    }
    seq.try_iter().is_ok_and(|mut it| it.any(|x| &x == v))
}

fn ansible_formatter(out: &mut Output, state: &State, value: &JValue) -> Result<(), Error> {
    match value.kind() {
        ValueKind::None => Ok(()),
        ValueKind::Bool => {
            let text = if value.is_true() { "True" } else { "False" };
            out.write_str(text).map_err(Error::from)
        }
        ValueKind::Seq | ValueKind::Map => {
            let data = to_data(value)?;
            out.write_str(&python_repr(&data)).map_err(Error::from)
        }
        ValueKind::Number if !finite(value) => Err(op_err(NON_FINITE)),
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// `'a,b'.split(',')`, `.strip()`, `.lower()`... on strings, `.index()`/`.count()` on lists,
/// `.items()`/`.keys()`/`.values()`/`.get()` on dicts, as Python objects offer them to
/// Ansible templates.
fn python_method(
    _state: &State,
    value: &JValue,
    method: &str,
    args: &[JValue],
) -> Result<JValue, Error> {
    let arg_str = |i: usize| args.get(i).and_then(|a| a.as_str()).map(str::to_string);
    if let Some(s) = value.as_str() {
        let out = match method {
            "split" => return Ok(split_text(s, arg_str(0).as_deref(), args.get(1))),
            "strip" => JValue::from(trim_with(s, arg_str(0), true, true)),
            "lstrip" => JValue::from(trim_with(s, arg_str(0), true, false)),
            "rstrip" => JValue::from(trim_with(s, arg_str(0), false, true)),
            "lower" => JValue::from(s.to_lowercase()),
            "upper" => JValue::from(s.to_uppercase()),
            "startswith" => JValue::from(s.starts_with(arg_str(0).unwrap_or_default().as_str())),
            "endswith" => JValue::from(s.ends_with(arg_str(0).unwrap_or_default().as_str())),
            "replace" => JValue::from(s.replace(
                arg_str(0).unwrap_or_default().as_str(),
                arg_str(1).unwrap_or_default().as_str(),
            )),
            "splitlines" => JValue::from(s.lines().map(JValue::from).collect::<Vec<_>>()),
            "join" => {
                let items = args
                    .first()
                    .map(|a| a.try_iter().map(|it| it.map(|x| x.to_string()).collect()))
                    .transpose()?
                    .unwrap_or_else(Vec::<String>::new);
                JValue::from(items.join(s))
            }
            _ => return Err(Error::from(ErrorKind::UnknownMethod)),
        };
        return Ok(out);
    }
    if value.kind() == ValueKind::Seq {
        // `list.index(x)` and `list.count(x)`, as Python lists offer them
        let items: Vec<JValue> = value.try_iter()?.collect();
        let wanted = args.first().cloned().unwrap_or(JValue::UNDEFINED);
        return match method {
            "index" => items
                .iter()
                .position(|x| *x == wanted)
                .map(JValue::from)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        format!("{wanted} is not in list"),
                    )
                }),
            "count" => Ok(JValue::from(items.iter().filter(|x| **x == wanted).count())),
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        };
    }
    if value.kind() == ValueKind::Map {
        let data = to_data(value)?;
        let Value::Object(m) = data else {
            return Err(Error::from(ErrorKind::UnknownMethod));
        };
        let out = match method {
            "items" => JValue::from_serialize(
                m.iter()
                    .map(|(k, v)| Value::Array(vec![Value::String(k.clone()), v.clone()]))
                    .collect::<Vec<_>>(),
            ),
            "keys" => JValue::from_serialize(m.keys().collect::<Vec<_>>()),
            "values" => JValue::from_serialize(m.values().collect::<Vec<_>>()),
            "get" => {
                let key = arg_str(0).unwrap_or_default();
                match m.get(&key) {
                    Some(v) => JValue::from_serialize(v),
                    None => args.get(1).cloned().unwrap_or(JValue::from(())),
                }
            }
            _ => return Err(Error::from(ErrorKind::UnknownMethod)),
        };
        return Ok(out);
    }
    Err(Error::from(ErrorKind::UnknownMethod))
}

fn trim_with(s: &str, chars: Option<String>, left: bool, right: bool) -> String {
    let set: Option<Vec<char>> = chars.map(|c| c.chars().collect());
    let pred = |c: char| match &set {
        Some(set) => set.contains(&c),
        None => c.is_whitespace(),
    };
    let mut t = s;
    if left {
        t = t.trim_start_matches(pred);
    }
    if right {
        t = t.trim_end_matches(pred);
    }
    t.to_string()
}

/// Python's `str.split(sep=None, maxsplit=-1)`.
fn split_text(s: &str, sep: Option<&str>, maxsplit: Option<&JValue>) -> JValue {
    let max = maxsplit
        .and_then(|m| i64::try_from(m.clone()).ok())
        .filter(|m| *m >= 0)
        .map(|m| m as usize);
    let parts: Vec<String> = match sep {
        Some(sep) if !sep.is_empty() => match max {
            Some(n) => s.splitn(n + 1, sep).map(String::from).collect(),
            None => s.split(sep).map(String::from).collect(),
        },
        _ => {
            let mut out: Vec<String> = Vec::new();
            let mut rest = s.trim_start();
            while !rest.is_empty() {
                if max.is_some_and(|n| out.len() == n) {
                    out.push(rest.trim_end().to_string());
                    break;
                }
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                out.push(rest[..end].to_string());
                rest = rest[end..].trim_start();
            }
            out
        }
    };
    JValue::from(parts.into_iter().map(JValue::from).collect::<Vec<_>>())
}

fn split(s: String, sep: Option<String>, maxsplit: Option<JValue>) -> JValue {
    split_text(&s, sep.as_deref(), maxsplit.as_ref())
}

fn items(v: &JValue) -> Result<Vec<Value>, Error> {
    match to_data(v)? {
        Value::Array(a) => Ok(a),
        Value::Object(m) => Ok(m.keys().map(|k| Value::String(k.clone())).collect()),
        Value::String(s) => Ok(s.chars().map(|c| Value::String(c.to_string())).collect()),
        Value::Null => Ok(Vec::new()),
        other => Err(op_err(format!("{other} is not a list"))),
    }
}

fn dedup(list: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for v in list {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Ansible's set filters go through a Python `set` when items are hashable: small non-negative
/// integers then come out sorted (their hash is their value); other orders are not stable in
/// Python either, so first-seen order is kept.
fn set_order(mut list: Vec<Value>) -> Vec<Value> {
    if list.iter().all(|v| v.as_u64().is_some_and(|n| n < 1 << 16)) {
        list.sort_by_key(|v| v.as_u64());
    }
    list
}

fn unique(v: JValue) -> Result<JValue, Error> {
    Ok(JValue::from_serialize(dedup(items(&v)?)))
}

fn union(a: JValue, b: JValue) -> Result<JValue, Error> {
    let mut all = items(&a)?;
    all.extend(items(&b)?);
    Ok(JValue::from_serialize(set_order(dedup(all))))
}

fn difference(a: JValue, b: JValue) -> Result<JValue, Error> {
    let other = items(&b)?;
    let out: Vec<Value> = dedup(items(&a)?)
        .into_iter()
        .filter(|x| !other.contains(x))
        .collect();
    Ok(JValue::from_serialize(set_order(out)))
}

fn intersect(a: JValue, b: JValue) -> Result<JValue, Error> {
    let other = items(&b)?;
    let out: Vec<Value> = dedup(items(&a)?)
        .into_iter()
        .filter(|x| other.contains(x))
        .collect();
    Ok(JValue::from_serialize(set_order(out)))
}

fn symmetric_difference(a: JValue, b: JValue) -> Result<JValue, Error> {
    let (la, lb) = (items(&a)?, items(&b)?);
    let mut out: Vec<Value> = la.iter().filter(|x| !lb.contains(x)).cloned().collect();
    out.extend(lb.iter().filter(|x| !la.contains(x)).cloned());
    Ok(JValue::from_serialize(set_order(dedup(out))))
}

/// The `key_name`/`value_name` keyword arguments of `dict2items`/`items2dict` (the only ones).
fn key_value_names(kw: &Kwargs) -> Result<(String, String), Error> {
    let key_name = kw
        .get::<Option<String>>("key_name")?
        .unwrap_or("key".into());
    let value_name = kw
        .get::<Option<String>>("value_name")?
        .unwrap_or("value".into());
    kw.assert_all_used()?;
    Ok((key_name, value_name))
}

fn dict2items(v: JValue, kw: Kwargs) -> Result<JValue, Error> {
    let (key_name, value_name) = key_value_names(&kw)?;
    let Value::Object(m) = to_data(&v)? else {
        return Err(op_err("dict2items requires a dictionary"));
    };
    let out: Vec<Value> = m
        .into_iter()
        .map(|(k, v)| {
            let mut e = Map::new();
            e.insert(key_name.clone(), Value::String(k));
            e.insert(value_name.clone(), v);
            Value::Object(e)
        })
        .collect();
    Ok(JValue::from_serialize(out))
}

fn items2dict(v: JValue, kw: Kwargs) -> Result<JValue, Error> {
    let (key_name, value_name) = key_value_names(&kw)?;
    let mut out = Map::new();
    for item in items(&v)? {
        let k = item
            .get(&key_name)
            .ok_or_else(|| op_err(format!("items2dict: an item has no '{key_name}'")))?;
        let val = item
            .get(&value_name)
            .ok_or_else(|| op_err(format!("items2dict: an item has no '{value_name}'")))?;
        out.insert(super::value::scalar_string(k), val.clone());
    }
    Ok(JValue::from_serialize(out))
}

fn merge(into: &mut Value, from: Value, recursive: bool) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(existing) if recursive && existing.is_object() && v.is_object() => {
                        merge(existing, v, true)
                    }
                    _ => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, other) => *slot = other,
    }
}

fn combine(base: JValue, others: Rest<JValue>, kw: Kwargs) -> Result<JValue, Error> {
    let recursive = kw.get::<Option<bool>>("recursive")?.unwrap_or(false);
    let _ = kw.get::<Option<String>>("list_merge")?;
    kw.assert_all_used()?;
    let mut out = to_data(&base)?;
    let mut rest: Vec<Value> = Vec::new();
    for o in others.iter() {
        match to_data(o)? {
            Value::Array(list) => rest.extend(list),
            other => rest.push(other),
        }
    }
    for o in rest {
        if !o.is_object() {
            return Err(op_err("combine: every argument must be a dictionary"));
        }
        merge(&mut out, o, recursive);
    }
    Ok(JValue::from_serialize(&out))
}

fn to_json(v: JValue, kw: Kwargs) -> Result<String, Error> {
    json_filter(v, &kw, JsonDumps::default())
}

/// `to_nice_json`: `to_json` with `indent=4, sort_keys=True` unless given.
pub fn to_nice_json(v: JValue, kw: Kwargs) -> Result<String, Error> {
    let nice = JsonDumps {
        indent: Some("    ".into()),
        sort_keys: true,
        keep_unicode: false,
    };
    json_filter(v, &kw, nice)
}

/// `json.dumps` of `v` with the filter's keyword arguments (`indent`, `sort_keys`,
/// `ensure_ascii`) over `opts`; any other keyword is refused, never ignored.
fn json_filter(v: JValue, kw: &Kwargs, mut opts: JsonDumps) -> Result<String, Error> {
    if let Some(indent) = kw.get::<Option<JValue>>("indent")? {
        opts.indent = if indent.is_none() {
            None
        } else if let Some(text) = indent.as_str() {
            Some(text.to_string())
        } else {
            let n = i64::try_from(indent.clone()).map_err(|_| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    format!("indent must be an integer or a string, not {indent}"),
                )
            })?;
            Some(" ".repeat(n.max(0) as usize))
        };
    }
    if let Some(sort) = kw.get::<Option<bool>>("sort_keys")? {
        opts.sort_keys = sort;
    }
    if let Some(ascii) = kw.get::<Option<bool>>("ensure_ascii")? {
        opts.keep_unicode = !ascii;
    }
    kw.assert_all_used()?;
    Ok(opts.dumps(&to_data(&v)?))
}

/// A scalar as PyYAML writes it in a document (`null`, `true`, numbers, strings plain when
/// that reads back as the same string, else quoted); empty text for a list or dict.
pub fn yaml_scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => if *b { "true" } else { "false" }.into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => yaml_str(s),
        _ => String::new(),
    }
}

/// A string as PyYAML writes it: plain when that reads back as the same string, else quoted.
fn yaml_str(s: &str) -> String {
    let plain_ok = !s.is_empty()
        && !s.starts_with(|c: char| {
            c.is_whitespace() || "-?:,[]{}#&*!|>'\"%@`".contains(c) || c.is_ascii_digit()
        })
        && !s.ends_with(char::is_whitespace)
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.contains('\n')
        && !s.ends_with(':')
        && crate::yaml::resolve_plain(s) == Value::String(s.to_string());
    if plain_ok {
        s.to_string()
    } else if s.contains('\n') || s.chars().any(|c| c.is_control()) {
        serde_json::to_string(s).unwrap_or_default()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

fn is_flat(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.iter().all(|x| !x.is_array() && !x.is_object()),
        Value::Object(m) => m.values().all(|x| !x.is_array() && !x.is_object()),
        _ => true,
    }
}

fn flow(v: &Value) -> String {
    match v {
        Value::Array(a) => format!("[{}]", a.iter().map(flow).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", yaml_str(k), flow(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => yaml_scalar(other),
    }
}

/// PyYAML `dump(default_flow_style=None)` (to_yaml) or block style (to_nice_yaml).
fn yaml_block(v: &Value, indent: usize, nice: bool, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, val) in m {
                let key = yaml_str(k);
                match val {
                    Value::Object(c) if !c.is_empty() && (nice || !is_flat(val)) => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        yaml_block(val, indent + if nice { 4 } else { 2 }, nice, out);
                    }
                    Value::Array(c) if !c.is_empty() && (nice || !is_flat(val)) => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        // PyYAML does not indent a sequence under its key
                        yaml_block(val, indent, nice, out);
                    }
                    _ => out.push_str(&format!("{pad}{key}: {}\n", flow(val))),
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            // `- ` (to_yaml) or `-   ` (to_nice_yaml, indent 4) before block items
            let step = if nice { 4 } else { 2 };
            let dash = format!("-{}", " ".repeat(step - 1));
            for item in a {
                let block = match item {
                    Value::Object(c) => !c.is_empty() && (nice || !is_flat(item)),
                    Value::Array(c) => !c.is_empty() && (nice || !is_flat(item)),
                    _ => false,
                };
                if block {
                    let mut inner = String::new();
                    yaml_block(item, indent + step, nice, &mut inner);
                    let trimmed = inner.trim_start_matches(' ');
                    out.push_str(&format!("{pad}{dash}{trimmed}"));
                } else {
                    out.push_str(&format!("{pad}- {}\n", flow(item)));
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", flow(other))),
    }
}

/// YAML text of data as Ansible's `to_yaml` (or `to_nice_yaml`) writes it.
pub fn dump_yaml(v: &Value, nice: bool) -> String {
    let mut out = String::new();
    if !nice && is_flat(v) && (v.is_array() || v.is_object()) {
        out = format!("{}\n", flow(v));
        if v.is_object() && !v.as_object().is_some_and(|m| m.is_empty()) {
            out.clear();
            yaml_block(v, 0, nice, &mut out);
        }
        return out;
    }
    match v {
        Value::Array(_) | Value::Object(_) => yaml_block(v, 0, nice, &mut out),
        other => {
            // PyYAML ends a plain (unquoted) scalar document with `...`
            let text = yaml_scalar(other);
            out = if text.starts_with(['\'', '"']) {
                format!("{text}\n")
            } else {
                format!("{text}\n...\n")
            };
        }
    }
    out
}

// PyYAML sorts keys by default
fn to_yaml(v: JValue, _kw: Kwargs) -> Result<String, Error> {
    Ok(dump_yaml(&super::value::sorted_keys(&to_data(&v)?), false))
}

fn to_nice_yaml(v: JValue, _kw: Kwargs) -> Result<String, Error> {
    Ok(dump_yaml(&super::value::sorted_keys(&to_data(&v)?), true))
}

fn from_yaml(s: String) -> Result<JValue, Error> {
    let docs =
        crate::yaml::parse_data_str(&s, "<from_yaml>").map_err(|e| op_err(format!("{e:#}")))?;
    Ok(docs
        .first()
        .map(|d| JValue::from_serialize(d.to_json()))
        .unwrap_or(JValue::from(())))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional, whitespace ignored).
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        if c == b'=' || c.is_ascii_whitespace() {
            continue;
        }
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Ansible's `type_debug`: the native Python type name of the value (2.19 names tagged and
/// lazy types by their native base: `str`, `dict`, `list`).
fn type_debug(v: JValue) -> Result<String, Error> {
    if v.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            "type_debug of an undefined value",
        ));
    }
    Ok(python_type(&v).to_string())
}

fn b64encode(s: String) -> String {
    base64_encode(s.as_bytes())
}

fn b64decode(s: String) -> Result<String, Error> {
    let bytes = base64_decode(&s).ok_or_else(|| op_err("b64decode: invalid base64"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Python's `shlex.quote`.
pub fn quote(s: String) -> String {
    if s.is_empty() {
        return "''".into();
    }
    let safe = s
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || "@%+=:,./-".contains(c));
    if safe {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\"'\"'"))
    }
}

fn flatten(v: JValue, levels: Option<usize>) -> Result<JValue, Error> {
    fn go(list: Vec<Value>, levels: Option<usize>, out: &mut Vec<Value>) {
        for item in list {
            match item {
                Value::Array(inner) if levels != Some(0) => go(inner, levels.map(|l| l - 1), out),
                other => out.push(other),
            }
        }
    }
    let mut out = Vec::new();
    go(items(&v)?, levels, &mut out);
    Ok(JValue::from_serialize(out))
}

/// Jinja's `map`, minijinja's, noting why an item has no value for `attribute=` (without a
/// `default`), so that the error that uses it says `object of type 'dict' has no attribute
/// 'name'` as Ansible does, not "undefined value".
fn map(state: &State, value: JValue, args: Rest<JValue>) -> Result<Vec<JValue>, Error> {
    let attribute = args.iter().find(|a| a.is_kwargs()).and_then(|kw| {
        let attr = kw
            .get_attr("attribute")
            .ok()
            .filter(|a| !a.is_undefined())?;
        let has_default = kw.get_attr("default").is_ok_and(|d| !d.is_undefined());
        (!has_default).then_some(attr)
    });
    if let Some(attr) = attribute {
        if let Ok(items) = value.try_iter() {
            for item in items {
                let found = match attr.as_str() {
                    Some(path) => path.split('.').try_fold(item.clone(), |v, part| {
                        match part.parse::<i64>() {
                            Ok(i) => v.get_item(&JValue::from(i)),
                            Err(_) => v.get_attr(part),
                        }
                    }),
                    None => item.get_item(&attr),
                };
                if found.is_ok_and(|v| v.is_undefined()) {
                    note_missing(&item, &attr);
                    break;
                }
            }
        }
    }
    minijinja::filters::map(state, value, args)
}

/// Notes why `container[key]` is undefined, in Ansible's words: the undefined value cannot
/// carry why, so the error that uses it reports this.
fn note_missing(container: &JValue, key: &JValue) {
    let key = key
        .as_str()
        .map_or_else(|| key.to_string(), |k| format!("'{k}'"));
    super::undefined::note_lazy_failure(format!(
        "object of type '{}' has no attribute {key}",
        python_type(container)
    ));
}

/// Ansible's `extract`: `container[item]`, then each of `morekeys` (one key or a list) in
/// turn; a missing key gives an undefined value. Mostly `map('extract', hostvars, 'x')`.
fn extract(item: JValue, container: JValue, morekeys: Option<JValue>) -> Result<JValue, Error> {
    let mut keys = vec![item];
    match morekeys {
        Some(more) if more.kind() == ValueKind::Seq => keys.extend(more.try_iter()?),
        Some(key) => keys.push(key),
        None => {}
    }
    let mut value = container;
    for key in keys {
        if value.is_undefined() {
            break;
        }
        let found = value.get_item(&key)?;
        if found.is_undefined() {
            note_missing(&value, &key);
        }
        value = found;
    }
    Ok(value)
}

/// Jinja's `join`: items as Python's `str()` gives them; an undefined item fails, as in
/// Ansible (minijinja's `join` prints it as nothing).
fn join(state: &State, v: JValue, joiner: Option<String>) -> Result<String, Error> {
    let items: Vec<JValue> = match v.as_str() {
        Some(text) => text.chars().map(JValue::from).collect(),
        None => v.try_iter()?.collect(),
    };
    let mut out = String::new();
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push_str(joiner.as_deref().unwrap_or_default());
        }
        match item.kind() {
            ValueKind::Undefined => {
                return Err(Error::new(ErrorKind::UndefinedError, "undefined value"))
            }
            ValueKind::None => out.push_str("None"),
            ValueKind::String => out.push_str(item.as_str().unwrap_or_default()),
            _ => out.push_str(&state.format(item)?),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::jinja::Templar;
    use minijinja::Value as JValue;
    use serde_json::json;

    fn render(expr: &str) -> serde_json::Value {
        let vars = JValue::from_serialize(json!({
            "nums": [3, 1, 2, 3],
            "users": [{"name": "a", "on": true}, {"name": "b", "on": false}],
            "d": {"a": 1, "b": {"x": 1}},
        }));
        Templar::new()
            .render_str(expr, &vars)
            .unwrap_or_else(|e| panic!("{expr}: {e:#}"))
    }

    #[test]
    fn list_filters() {
        assert_eq!(render("{{ nums | unique }}"), json!([3, 1, 2]));
        assert_eq!(render("{{ nums | union([4, 1]) }}"), json!([1, 2, 3, 4]));
        assert_eq!(render("{{ nums | difference([3]) }}"), json!([1, 2]));
        assert_eq!(render("{{ nums | intersect([2, 9]) }}"), json!([2]));
        assert_eq!(render("{{ 'a,b' | split(',') }}"), json!(["a", "b"]));
        assert_eq!(render("{{ ' a  b ' .split() }}"), json!(["a", "b"]));
        assert_eq!(render("{{ 'a,b,c'.split(',', 1) }}"), json!(["a", "b,c"]));
        assert_eq!(render("{{ [[1, [2]], 3] | flatten }}"), json!([1, 2, 3]));
        assert_eq!(
            render("{{ users | selectattr('on') | map(attribute='name') | list }}"),
            json!(["a"])
        );
    }

    #[test]
    fn dict_filters() {
        assert_eq!(
            render("{{ d | combine({'b': {'y': 2} }, recursive=true) }}"),
            json!({"a": 1, "b": {"x": 1, "y": 2}})
        );
        assert_eq!(
            render("{{ d | combine({'b': {'y': 2} }) }}"),
            json!({"a": 1, "b": {"y": 2}})
        );
        assert_eq!(
            render("{{ {'k': 1} | dict2items }}"),
            json!([{"key": "k", "value": 1}])
        );
        assert_eq!(
            render("{{ [{'key': 'k', 'value': 1}] | items2dict }}"),
            json!({"k": 1})
        );
        assert_eq!(render("{{ d.get('a') }}"), json!(1));
        assert_eq!(render("{{ d.get('z', 5) }}"), json!(5));
    }

    #[test]
    fn text_filters_and_printing() {
        assert_eq!(render("{{ 'hello' | b64encode }}"), json!("aGVsbG8="));
        assert_eq!(render("{{ 'aGVsbG8=' | b64decode }}"), json!("hello"));
        assert_eq!(render("{{ \"it's\" | quote }}"), json!("'it'\"'\"'s'"));
        assert_eq!(render("{{ 'plain' | quote }}"), json!("plain"));
        assert_eq!(render("{{ {'b': 1} | to_json }}"), json!("{\"b\": 1}"));
        assert_eq!(
            render("{{ {'z': 'é\\n', 'a': [1]} | to_json }}"),
            json!("{\"z\": \"\\u00e9\\n\", \"a\": [1]}")
        );
        assert_eq!(
            render("{{ {'name': 'x', 'list': [1, 2]} | to_yaml }}"),
            json!("list: [1, 2]\nname: x\n")
        );
        assert_eq!(render("{{ ('a: [x]' | from_yaml).a }}"), json!(["x"]));
        assert_eq!(
            render("x {{ ['a', 1, true, none] }} {{ none }}"),
            json!("x ['a', 1, True, None] ")
        );
        assert_eq!(render("{{ 2 is in([1, 2]) }}"), json!(true));
    }

    #[test]
    fn base64_round_trip() {
        for s in ["", "a", "ab", "abc", "abcd", "\u{0}\u{ff}"] {
            let enc = super::base64_encode(s.as_bytes());
            assert_eq!(super::base64_decode(&enc).unwrap(), s.as_bytes(), "{s:?}");
        }
    }
}

#[cfg(test)]
mod edge_tests {
    use crate::jinja::Templar;
    use minijinja::Value as JValue;
    use serde_json::json;

    fn render(expr: &str) -> serde_json::Value {
        let vars = JValue::from_serialize(json!({"empty": "", "zero": 0, "s": "x y"}));
        Templar::new()
            .render_str(expr, &vars)
            .unwrap_or_else(|e| panic!("{expr}: {e:#}"))
    }

    #[test]
    fn defaults_and_conversions() {
        assert_eq!(render("{{ empty | default('e') }}"), json!(""));
        assert_eq!(render("{{ empty | default('e', true) }}"), json!("e"));
        assert_eq!(render("{{ 'x' | int }}"), json!(0));
        assert_eq!(render("{{ '3.7' | int }}"), json!(3));
        assert_eq!(render("{{ 'On' | bool }}"), json!(true));
        assert_eq!(render("{{ 'off' | bool }}"), json!(false));
        assert_eq!(render("{{ none | ternary('a', 'b', 'n') }}"), json!("n"));
    }

    #[test]
    fn none_prints_empty_and_no_match_is_none() {
        assert_eq!(render("[{{ 'abc' | regex_search('z') }}]"), json!("[]"));
        assert_eq!(render("{{ 'abc' | regex_search('z') }}"), json!(null));
        assert_eq!(render("{{ true }} {{ false }}"), json!("True False"));
        assert_eq!(render("x{{ [\"it's\"] }}"), json!("x[\"it's\"]"));
        assert_eq!(render("{{ {'a': none} }}"), json!({"a": null}));
        assert_eq!(render("x{{ {'a': none} }}"), json!("x{'a': None}"));
    }

    #[test]
    fn python_methods() {
        assert_eq!(render("{{ s.split() }}"), json!(["x", "y"]));
        assert_eq!(render("{{ ' a '.strip() }}"), json!("a"));
        assert_eq!(render("{{ 'a-b'.replace('-', '_') }}"), json!("a_b"));
        assert_eq!(render("{{ 'abc'.startswith('ab') }}"), json!(true));
        assert_eq!(render("{{ ','.join(['a', 'b']) }}"), json!("a,b"));
        assert_eq!(render("{{ {'k': 1}.items() | list }}"), json!([["k", 1]]));
        assert_eq!(render("{{ 'ab' is in('xaby') }}"), json!(true));
        assert_eq!(render("{{ 'k' is in({'k': 1}) }}"), json!(true));
    }

    #[test]
    fn yaml_dump_shapes() {
        let v = json!({"b": [{"x": 1}], "a": "multi word", "c": {}});
        assert_eq!(
            super::dump_yaml(&crate::jinja::value::sorted_keys(&v), false),
            "a: multi word\nb:\n- {x: 1}\nc: {}\n"
        );
        assert_eq!(super::dump_yaml(&json!("yes"), false), "'yes'\n");
        assert_eq!(super::dump_yaml(&json!("abc"), false), "abc\n...\n");
        let v =
            json!({"d": {"k": {"z": 1}}, "ld": [{"a": 1, "b": 2}], "list": [1, 2], "name": "x"});
        assert_eq!(
            super::dump_yaml(&v, true),
            "d:\n    k:\n        z: 1\nld:\n-   a: 1\n    b: 2\nlist:\n- 1\n- 2\nname: x\n"
        );
        assert_eq!(
            super::dump_yaml(&json!({"a": {"b": {"c": 1}}, "l": [[1, 2], [3]]}), false),
            "a:\n  b: {c: 1}\nl:\n- [1, 2]\n- [3]\n"
        );
        assert_eq!(super::dump_yaml(&json!([1, "a"]), false), "[1, a]\n");
    }
}
