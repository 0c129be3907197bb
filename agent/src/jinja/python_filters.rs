//! Filter and test plugins written in Python (`filter_plugins/` and `test_plugins/` beside the
//! playbook or in a role, and the configured plugin paths), run by ansible-core on the
//! controller.
//!
//! Jinja needs a filter's name before a template runs, so the run asks a helper
//! (`python_filter.py`, shipped inside the agent) once which names the plugin files declare and
//! registers each. A call hands the value and arguments to the helper, which finds the plugin
//! with ansible-core's own loader (so a plugin that fails to load fails as in ansible-core) and
//! answers with its result: data, never trusted as a template. Without ansible-core on the
//! controller nothing is registered and such a filter stays unknown.

use super::errors::plugin_message;
use super::python_lookups::ask;
use minijinja::value::Rest;
use minijinja::{Environment, Error, ErrorKind, Value as JValue};
use serde_json::{Map, Value};
use std::path::PathBuf;

const HELPER: &str = include_str!("python_filter.py");

/// Where filter and test plugin files are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PluginDirs {
    /// `filter_plugins/` directories, first wins.
    pub filters: Vec<PathBuf>,
    /// `test_plugins/` directories, first wins.
    pub tests: Vec<PathBuf>,
}

impl PluginDirs {
    /// Adds `dir`'s `filter_plugins/` and `test_plugins/` where they exist.
    pub fn add_beside(&mut self, dir: &std::path::Path) {
        for (sub, list) in [
            ("filter_plugins", &mut self.filters),
            ("test_plugins", &mut self.tests),
        ] {
            let d = dir.join(sub);
            if d.is_dir() && !list.contains(&d) {
                list.push(d);
            }
        }
    }

    /// Whether there is no directory at all.
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty() && self.tests.is_empty()
    }
}

/// Registers in `env` every filter and test the plugin files in `dirs` declare that `env` does
/// not have yet. The names registered, or why none could be read (no ansible-core, a broken
/// helper).
pub fn register(
    env: &mut Environment<'static>,
    dirs: &PluginDirs,
) -> Result<(Vec<String>, Vec<String>), String> {
    if dirs.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    // the names are read from the files' text; only files whose text does not show them are
    // asked of Python (importing them costs a quarter of a second per run)
    let (mut filters, filter_rest) = read_names(&dirs.filters, "filters");
    let (mut tests, test_rest) = read_names(&dirs.tests, "tests");
    if !(filter_rest.is_empty() && test_rest.is_empty()) {
        let request = serde_json::json!({
            "op": "list",
            "filter_dirs": filter_rest,
            "test_dirs": test_rest,
        });
        let answer = ask(HELPER, &request)?;
        let names = |key: &str| -> Vec<String> {
            answer
                .get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|n| n.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        filters.extend(names("filters"));
        tests.extend(names("tests"));
    }
    // a name the agent implements stays native: the run knows plugins of roles it may never
    // load, which must not replace a builtin filter for every play
    filters.sort();
    filters.dedup();
    tests.sort();
    tests.dedup();
    filters.retain(|n| unknown(env, "filter", n));
    tests.retain(|n| unknown(env, "test", n));
    for name in &filters {
        let (name, dirs) = (name.clone(), dirs.filters.clone());
        env.add_filter(name.clone(), move |value: JValue, args: Rest<JValue>| {
            call("filter", &name, &dirs, &value, &args)
        });
    }
    for name in &tests {
        let (name, dirs) = (name.clone(), dirs.tests.clone());
        env.add_test(name.clone(), move |value: JValue, args: Rest<JValue>| {
            call("test", &name, &dirs, &value, &args).map(|v| v.is_true())
        });
    }
    Ok((filters, tests))
}

/// The names the plugin files (`*.py`, not `_*`) in `dirs` declare in their `method`
/// (`filters` or `tests`), read from their text; the directories holding a file whose text
/// does not show them (for Python to answer).
fn read_names(dirs: &[PathBuf], method: &str) -> (Vec<String>, Vec<PathBuf>) {
    let mut names = Vec::new();
    let mut rest = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if !file.ends_with(".py") || file.starts_with('_') {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            match declared_names(&text, method) {
                Some(found) => names.extend(found),
                None if !rest.contains(dir) => rest.push(dir.clone()),
                None => {}
            }
        }
    }
    (names, rest)
}

/// The names a plugin file's `def <method>(self)` returns, read from its text: the string keys
/// of the dict it builds (`{'name': f}`, `dict(name=f)`), or of the module-level dict it
/// returns by name. `Some(empty)` for a file without that method or one that raises there
/// (ansible-core loads no names from it); `None` when the text does not show the names.
fn declared_names(text: &str, method: &str) -> Option<Vec<String>> {
    let Some(at) = text.find(&format!("def {method}(")) else {
        return Some(Vec::new());
    };
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let indent = at - line_start;
    let body_start = at + text[at..].find('\n')? + 1;
    let body: Vec<&str> = text[body_start..]
        .lines()
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
        .collect();
    let body = body.join("\n");
    let mut names = dict_keys(&body);
    if names.is_empty() {
        if body.contains("raise ") {
            return Some(Vec::new());
        }
        // `return NAME`: a dict written at the top of the module
        let returned = body.trim().strip_prefix("return ")?.trim();
        if !returned
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return None;
        }
        let def = text
            .lines()
            .position(|l| l.starts_with(&format!("{returned} =")))?;
        let top: Vec<&str> = text
            .lines()
            .skip(def)
            .take_while(|l| !l.starts_with("def ") && !l.starts_with("class "))
            .collect();
        names = dict_keys(&top.join("\n"));
    }
    (!names.is_empty()).then_some(names)
}

/// The keys of dict literals in `code`: quoted names followed by `:`, and `name=` inside
/// `dict(...)`.
fn dict_keys(code: &str) -> Vec<String> {
    let is_name = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let q = bytes[i];
        if q == b'\'' || q == b'"' {
            let Some(len) = code[i + 1..].find(q as char) else {
                break;
            };
            let key = &code[i + 1..i + 1 + len];
            let after = code[i + 2 + len..].trim_start();
            if after.starts_with(':') && is_name(key) && !out.iter().any(|k| k == key) {
                out.push(key.to_string());
            }
            i += len + 2;
            continue;
        }
        i += 1;
    }
    if let Some(start) = code.find("dict(") {
        let inner = &code[start + 5..];
        let end = inner.find(')').unwrap_or(inner.len());
        for part in inner[..end].split(',') {
            if let Some((key, _)) = part.split_once('=') {
                let key = key.trim();
                if is_name(key) && !out.iter().any(|k| k == key) {
                    out.push(key.to_string());
                }
            }
        }
    }
    out
}

/// Whether `env` has no filter (or test, `kind`) named `name` (a name that is not an
/// identifier counts as known: it cannot be written in a template).
fn unknown(env: &Environment<'static>, kind: &str, name: &str) -> bool {
    let ident = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ident {
        return false;
    }
    let probe = if kind == "filter" {
        format!("none | {name}")
    } else {
        format!("none is {name}")
    };
    let want = if kind == "filter" {
        ErrorKind::UnknownFilter
    } else {
        ErrorKind::UnknownTest
    };
    match env.compile_expression(&probe) {
        Ok(expr) => expr.eval(()).is_err_and(|e| e.kind() == want),
        Err(e) => e.kind() == want,
    }
}

/// One call of filter or test (`kind`) `name` through the helper.
fn call(
    kind: &str,
    name: &str,
    dirs: &[PathBuf],
    value: &JValue,
    args: &[JValue],
) -> Result<JValue, Error> {
    let failed = |msg: String| Error::new(ErrorKind::InvalidOperation, msg);
    if value.is_undefined() {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    let data = |v: &JValue| super::filters::to_data(v);
    let mut positional = Vec::new();
    let mut kwargs = Map::new();
    for a in args {
        match data(a)? {
            Value::Object(m) if a.is_kwargs() => kwargs.extend(m),
            v => positional.push(v),
        }
    }
    let request = serde_json::json!({
        "op": "call",
        "kind": kind,
        "name": name,
        "dirs": dirs,
        "value": data(value)?,
        "args": positional,
        "kwargs": kwargs,
    });
    let answer = ask(HELPER, &request).map_err(|why| {
        failed(format!(
            "{kind} plugin {name:?} needs ansible-core on the controller: {why}"
        ))
    })?;
    let text = |k: &str| answer.get(k).and_then(Value::as_str).map(str::to_string);
    if answer.get("not_found") == Some(&Value::Bool(true)) {
        let kind = if kind == "filter" {
            ErrorKind::UnknownFilter
        } else {
            ErrorKind::UnknownTest
        };
        return Err(Error::new(kind, format!("no {name} plugin found")));
    }
    if let Some(e) = text("load_error") {
        return Err(plugin_message(e));
    }
    if let Some(e) = text("error") {
        return Err(plugin_message(format!(
            "The {kind} plugin '{name}' failed: {e}"
        )));
    }
    Ok(JValue::from_serialize(
        answer.get("result").cloned().unwrap_or(Value::Null),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_existing_directories_are_added() {
        let tmp = tempfile::Builder::new()
            .prefix("etcd-agent-pf-")
            .tempdir()
            .unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::create_dir_all(dir.join("filter_plugins")).unwrap();
        let mut dirs = PluginDirs::default();
        dirs.add_beside(&dir);
        dirs.add_beside(&dir);
        assert_eq!(dirs.filters, vec![dir.join("filter_plugins")]);
        assert!(dirs.tests.is_empty());
        let mut env = Environment::new();
        assert_eq!(
            register(&mut env, &PluginDirs::default()).unwrap(),
            (vec![], vec![])
        );
    }

    #[test]
    fn names_are_read_from_the_plugin_text() {
        let read = |t: &str| declared_names(t, "filters");
        assert_eq!(
            read("class FilterModule:\n    def filters(self):\n        return {\n            'a': f,\n            \"b_2\": lambda x: '%s: y' % x,\n        }\n\n    def other(self):\n        return {'no': 1}\n"),
            Some(vec!["a".to_string(), "b_2".to_string()])
        );
        assert_eq!(
            read("class FilterModule:\n    def filters(self) -> dict:\n        return dict(\n            from_toml=from_toml,\n        )\n"),
            Some(vec!["from_toml".to_string()])
        );
        assert_eq!(
            read("F = {\n    'x': f,\n}\n\nclass FilterModule:\n    def filters(self):\n        return F\n"),
            Some(vec!["x".to_string()])
        );
        assert_eq!(
            read("class FilterModule:\n    def filters(self):\n        raise TypeError('bad')\n"),
            Some(vec![])
        );
        assert_eq!(read("x = 1\n"), Some(vec![]));
        assert_eq!(
            read("class FilterModule:\n    def filters(self):\n        return {k: v for k, v in ITEMS}\n"),
            None
        );
    }

    #[test]
    fn native_names_are_known() {
        let mut env = Environment::new();
        env.add_filter("mine", |v: JValue| v);
        assert!(!unknown(&env, "filter", "mine"));
        assert!(!unknown(&env, "filter", "upper"));
        assert!(unknown(&env, "filter", "parse_ip"));
        assert!(!unknown(&env, "test", "defined"));
        assert!(unknown(&env, "test", "quorate"));
        assert!(!unknown(&env, "filter", "a.b"));
    }
}
