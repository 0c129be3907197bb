//! Ansible's lookups for templates: `lookup()`, `query()`/`q()` with the `env`, `file` and
//! `first_found` plugins. (`with_sequence`'s own parser is [`super::sequence`].)

use minijinja::value::Rest;
use minijinja::{Environment, Error, ErrorKind, State, Value as JValue};
use serde_json::Value;

fn op_err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// Registers `lookup`, `query` and `q` into `env`.
pub fn register(env: &mut Environment<'static>) {
    env.add_function("lookup", lookup);
    env.add_function("query", query);
    env.add_function("q", query);
}

fn lookup_values(state: &State, args: &[JValue]) -> Result<Vec<Value>, Error> {
    let Some(kind) = args.first().and_then(|a| a.as_str()) else {
        return Err(op_err("lookup needs a plugin name"));
    };
    if matches!(kind, "first_found" | "ansible.builtin.first_found") {
        return first_found(state, &args[1..]);
    }
    let terms: Vec<String> = args[1..]
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    let mut out = Vec::new();
    match kind {
        "env" | "ansible.builtin.env" => {
            for t in terms {
                out.push(Value::String(std::env::var(&t).unwrap_or_default()));
            }
        }
        "file" | "ansible.builtin.file" => {
            let base = state
                .lookup("playbook_dir")
                .and_then(|v| v.as_str().map(std::path::PathBuf::from))
                .unwrap_or_else(|| std::path::PathBuf::from("."));
            for t in terms {
                let p = std::path::Path::new(&t);
                let candidates = if p.is_absolute() {
                    vec![p.to_path_buf()]
                } else {
                    vec![base.join("files").join(p), base.join(p)]
                };
                let found = candidates.iter().find(|c| c.is_file()).ok_or_else(|| {
                    op_err(format!(
                        "The 'file' lookup had an issue accessing the file '{t}'"
                    ))
                })?;
                let text = std::fs::read_to_string(found)
                    .map_err(|e| op_err(format!("lookup('file', '{t}'): {e}")))?;
                out.push(Value::String(text.trim_end().to_string()));
            }
        }
        other => {
            return Err(op_err(format!(
                "lookup plugin '{other}' is not supported by etcd-agent (env, file, first_found)"
            )))
        }
    }
    Ok(out)
}

fn lookup(state: &State, args: Rest<JValue>) -> Result<JValue, Error> {
    let values = lookup_values(state, &args)?;
    Ok(match values.len() {
        1 => JValue::from_serialize(&values[0]),
        _ => JValue::from(
            values
                .iter()
                .map(super::value::scalar_string)
                .collect::<Vec<_>>()
                .join(","),
        ),
    })
}

fn query(state: &State, args: Rest<JValue>) -> Result<JValue, Error> {
    Ok(JValue::from_serialize(lookup_values(state, &args)?))
}

/// A variable of the template's context as JSON, if it is defined.
fn var(state: &State, name: &str) -> Option<Value> {
    let v = state.lookup(name)?;
    if v.is_undefined() || v.is_none() {
        return None;
    }
    serde_json::to_value(&v).ok()
}

/// Ansible's `first_found`: the first of the files (terms, or a mapping's `files` with its
/// `paths`) that exists, searched where the task's `files` lookups search
/// ([`search_candidates`]); with `skip` an empty result instead of an error.
fn first_found(state: &State, args: &[JValue]) -> Result<Vec<Value>, Error> {
    let split = |v: &Value, seps: &[char]| -> Vec<String> {
        let texts: Vec<String> = match v {
            Value::Array(a) => a.iter().map(super::value::scalar_string).collect(),
            Value::Null => Vec::new(),
            other => vec![super::value::scalar_string(other)],
        };
        texts
            .iter()
            .flat_map(|t| t.split(seps).map(str::trim).map(String::from))
            .filter(|t| !t.is_empty())
            .collect()
    };
    let (mut files, mut paths, mut skip) = (Vec::<String>::new(), Vec::<String>::new(), false);
    let mut add_options = |m: &serde_json::Map<String, Value>, files: &mut Vec<String>| {
        if let Some(f) = m.get("files") {
            files.extend(split(f, &[',', ';']));
        }
        if let Some(p) = m.get("paths") {
            paths.extend(split(p, &[',', ';', ':']));
        }
        if let Some(s) = m.get("skip") {
            skip = super::value::python_truth(s);
        }
    };
    for arg in args {
        let v = serde_json::to_value(arg).map_err(|e| op_err(e.to_string()))?;
        match v {
            Value::Object(m) => add_options(&m, &mut files),
            Value::Array(list) => {
                for item in list {
                    match item {
                        Value::Object(m) => add_options(&m, &mut files),
                        Value::Null => {}
                        other => files.push(super::value::scalar_string(&other)),
                    }
                }
            }
            Value::Null => {}
            other => files.push(super::value::scalar_string(&other)),
        }
    }
    let wanted: Vec<String> = if paths.is_empty() {
        files
    } else {
        paths
            .iter()
            .flat_map(|p| {
                files
                    .iter()
                    .map(move |f| format!("{}/{f}", p.trim_end_matches('/')))
            })
            .collect()
    };
    for name in &wanted {
        if let Some(found) = search_candidates(state, "files", name)
            .into_iter()
            .find(|c| c.exists())
        {
            return Ok(vec![Value::String(found.display().to_string())]);
        }
    }
    if skip {
        return Ok(Vec::new());
    }
    Err(op_err(
        "No file was found when using first_found.".to_string(),
    ))
}

/// Where a lookup of `name` looks, in order (Ansible's `path_dwim_relative_stack` over the
/// task's `ansible_search_path`, the playbook's directory last): for each search path its
/// `subdir/name` and `name`, and in a role, beside a `tasks/` directory its role's
/// `subdir/name`.
pub fn search_candidates(state: &State, subdir: &str, name: &str) -> Vec<std::path::PathBuf> {
    use std::path::{Path, PathBuf};
    if name.starts_with('/') {
        return vec![PathBuf::from(name)];
    }
    let base = var(state, "playbook_dir")
        .map(|v| super::value::scalar_string(&v))
        .unwrap_or_else(|| ".".into());
    let paths: Vec<String> = match var(state, "ansible_search_path") {
        Some(Value::Array(a)) => a.iter().map(super::value::scalar_string).collect(),
        _ => vec![base.clone()],
    };
    let in_role = var(state, "role_path").is_some();
    let names_subdir = name.split('/').next() == Some(subdir);
    let mut out = Vec::new();
    for path in &paths {
        let path = Path::new(path);
        if let Some(parent) = path.parent().filter(|p| in_role && p.ends_with("tasks")) {
            if let Some(role) = parent.parent() {
                out.push(role.join(subdir).join(name));
            }
            out.push(parent.join(name));
        }
        if !names_subdir {
            out.push(path.join(subdir).join(name));
        }
        out.push(path.join(name));
    }
    if !names_subdir {
        out.push(Path::new(&base).join(subdir).join(name));
    }
    out.push(Path::new(&base).join(name));
    out
}
