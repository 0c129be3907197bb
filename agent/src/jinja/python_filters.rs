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
    let request = serde_json::json!({
        "op": "list",
        "filter_dirs": dirs.filters,
        "test_dirs": dirs.tests,
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
    // a name the agent implements stays native: the run knows plugins of roles it may never
    // load, which must not replace a builtin filter for every play
    let (mut filters, mut tests) = (names("filters"), names("tests"));
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
