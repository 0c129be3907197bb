//! Ansible's lookups for templates: `lookup()`, `query()`/`q()` with the `env`, `file`,
//! `first_found`, `sequence`, `config`, the list plugins ([`super::list_lookups`]) and `pipe`,
//! `lines` and `fileglob` ([`super::controller_lookups`]). (`with_sequence`'s own parser is [`super::sequence`].)

use super::errors::plugin_message;
use minijinja::value::Rest;
use minijinja::{Environment, Error, ErrorKind, State, Value as JValue};
use serde_json::Value;

fn op_err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

fn plugin_err(plugin: &str, msg: String) -> Error {
    plugin_message(format!("The lookup plugin '{plugin}' failed: {msg}"))
}

/// Registers `lookup`, `query` and `q` into `env`, and Ansible's `now()`.
pub fn register(env: &mut Environment<'static>) {
    env.add_function("lookup", lookup);
    env.add_function("query", query);
    env.add_function("q", query);
    env.add_function("now", now);
}

/// Ansible's `now(utc=False, fmt=None)`: the controller's time, local or UTC, as Python's
/// `str(datetime)` or `strftime(fmt)` (`%f` is microseconds, as in Python).
fn now(kwargs: minijinja::value::Kwargs) -> Result<JValue, Error> {
    let utc: Option<bool> = kwargs.get("utc")?;
    let fmt: Option<String> = kwargs.get("fmt")?;
    kwargs.assert_all_used()?;
    let local = chrono::Local::now();
    let (naive, micros) = if utc.unwrap_or(false) {
        let t = local.naive_utc();
        (t, t.and_utc().timestamp_subsec_micros())
    } else {
        let t = local.naive_local();
        (t, local.timestamp_subsec_micros())
    };
    Ok(JValue::from(match fmt {
        Some(fmt) => {
            let fmt = fmt.replace("%f", &format!("{micros:06}"));
            // %s is the epoch seconds of the real instant, whatever the zone shown
            let fmt = fmt.replace("%s", &local.timestamp().to_string());
            naive.format(&fmt).to_string()
        }
        None => naive.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
    }))
}

/// The lookup plugins implemented (besides the list plugins of [`super::list_lookups`]).
pub const SUPPORTED: &[&str] = &[
    "config",
    "env",
    "file",
    "fileglob",
    "first_found",
    "lines",
    "pipe",
    "sequence",
    "template",
];

/// The playbook's directory (`playbook_dir`), where `pipe` and `lines` run their command.
fn playbook_dir(state: &State) -> std::path::PathBuf {
    var(state, "playbook_dir")
        .map(|v| super::value::scalar_string(&v).into())
        .unwrap_or_else(|| ".".into())
}

/// The values of lookup `kind` (`args[0]`), by the agent's own plugins, else through
/// ansible-core (`None`: see [`values`]).
fn lookup_values(state: &State, kind: &str, args: &[JValue]) -> Result<Option<Vec<Value>>, Error> {
    if matches!(kind, "first_found" | "ansible.builtin.first_found") {
        return first_found(state, &args[1..]).map(Some);
    }
    if matches!(kind, "sequence" | "ansible.builtin.sequence") {
        return sequence(&args[1..]).map(Some);
    }
    if matches!(kind, "config" | "ansible.builtin.config") {
        return config(state, &args[1..]).map(Some);
    }
    if matches!(kind, "template" | "ansible.builtin.template") {
        return template(state, &args[1..]).map(Some);
    }
    if let Some(short) = super::list_lookups::short(kind) {
        let mut terms = Vec::new();
        let mut options = serde_json::Map::new();
        for a in &args[1..] {
            match serde_json::to_value(a).map_err(|e| op_err(e.to_string()))? {
                Value::Object(m) if a.is_kwargs() => options.extend(m),
                v => terms.push(v),
            }
        }
        return super::list_lookups::run(short, &terms, &options)
            .map(Some)
            .map_err(op_err);
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
            // `lstrip`/`rstrip` (default: only trailing whitespace goes)
            let option = |name: &str, default: bool| {
                args.iter()
                    .filter(|a| a.is_kwargs())
                    .find_map(|a| a.get_attr(name).ok().filter(|v| !v.is_undefined()))
                    .map_or(default, |v| v.is_true())
            };
            let (lstrip, rstrip) = (option("lstrip", false), option("rstrip", true));
            for t in terms {
                // the task's search path: its role's files/, the role, the task file's
                // directory, then the playbook's files/ and directory
                let candidates = search_candidates(state, "files", &t);
                let found = candidates.iter().find(|c| c.is_file()).ok_or_else(|| {
                    op_err(format!(
                        "The 'file' lookup had an issue accessing the file '{t}'"
                    ))
                })?;
                let text = std::fs::read_to_string(found)
                    .map_err(|e| op_err(format!("lookup('file', '{t}'): {e}")))?;
                let text = if rstrip { text.trim_end() } else { &text };
                let text = if lstrip { text.trim_start() } else { text };
                out.push(Value::String(text.to_string()));
            }
        }
        "pipe" | "ansible.builtin.pipe" => {
            out = super::controller_lookups::pipe(&terms, &playbook_dir(state))
                .map_err(|e| plugin_err("pipe", e))?
        }
        "lines" | "ansible.builtin.lines" => {
            out = super::controller_lookups::lines(&terms, &playbook_dir(state))
                .map_err(|e| plugin_err("lines", e))?
        }
        "fileglob" | "ansible.builtin.fileglob" => {
            let paths: Vec<std::path::PathBuf> = match var(state, "ansible_search_path") {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|p| super::value::scalar_string(p).into())
                    .collect(),
                _ => vec![playbook_dir(state)],
            };
            out = super::controller_lookups::fileglob(
                &terms,
                |d| search_candidates(state, "files", d),
                &paths,
            );
        }
        other => return python_lookup(state, other, &args[1..]),
    }
    Ok(Some(out))
}

/// Whether the agent implements lookup plugin `kind` itself.
fn is_native(kind: &str) -> bool {
    let short = kind.strip_prefix("ansible.builtin.").unwrap_or(kind);
    SUPPORTED.contains(&short) || super::list_lookups::short(kind).is_some()
}

/// The lookup's values; `None` when its value is undefined: an argument is undefined and
/// the plugin does not take undefined arguments (ansible-core then gives that undefined
/// value back, and using it fails naming the variable).
fn values(state: &State, args: &[JValue]) -> Result<Option<Vec<Value>>, Error> {
    let Some(kind) = args.first().and_then(|a| a.as_str()) else {
        return Err(op_err("lookup needs a plugin name"));
    };
    let undefined = |a: &JValue| {
        a.is_undefined()
            || (a.is_kwargs()
                && a.try_iter()
                    .into_iter()
                    .flatten()
                    .any(|k| a.get_item(&k).is_ok_and(|v| v.is_undefined())))
    };
    // the agent's own plugins take no undefined argument; ansible-core's decide for
    // themselves (`accept_args_markers`)
    if is_native(kind) && args[1..].iter().any(undefined) {
        return Ok(None);
    }
    lookup_values(state, kind, args)
}

/// A lookup plugin the agent does not implement, run by ansible-core (see
/// [`super::python_lookups`]).
fn python_lookup(state: &State, kind: &str, args: &[JValue]) -> Result<Option<Vec<Value>>, Error> {
    use super::python_lookups::{Call, Failure, Outcome};
    let mut call = Call {
        name: kind.to_string(),
        terms: Vec::new(),
        undefined: Vec::new(),
        kwargs: serde_json::Map::new(),
        variables: serde_json::Map::new(),
        dirs: Vec::new(),
        basedir: playbook_dir(state),
    };
    for a in args {
        if a.is_kwargs() {
            for k in a.try_iter()? {
                let v = a.get_item(&k)?;
                if k.as_str() != Some("wantlist") {
                    call.kwargs.insert(
                        k.to_string(),
                        serde_json::to_value(&v).unwrap_or(Value::Null),
                    );
                }
            }
        } else if a.is_undefined() {
            call.undefined.push(call.terms.len());
            call.terms.push(Value::Null);
        } else {
            call.terms
                .push(serde_json::to_value(a).map_err(|e| op_err(e.to_string()))?);
        }
    }
    // the variables the template sees, as data (each one that serializes)
    if let Some(all) = state.lookup("vars") {
        for k in all.try_iter().into_iter().flatten() {
            let name = k.to_string();
            if name.starts_with("__etcd_agent") || matches!(name.as_str(), "vars" | "hostvars") {
                continue;
            }
            if let Ok(v) = all
                .get_item(&k)
                .and_then(|v| serde_json::to_value(&v).map_err(|e| op_err(e.to_string())))
            {
                call.variables.insert(name, v);
            }
        }
    }
    for dir in ["role_path", "playbook_dir"] {
        if let Some(d) = var(state, dir) {
            call.dirs.push(
                std::path::PathBuf::from(super::value::scalar_string(&d)).join("lookup_plugins"),
            );
        }
    }
    match super::python_lookups::run(&call) {
        Ok(Outcome::Values(v)) => Ok(Some(v)),
        Ok(Outcome::Undefined) => Ok(None),
        Err(Failure::NotFound) => Err(plugin_message(format!(
            "The lookup plugin '{kind}' was not found."
        ))),
        Err(Failure::Load(e)) => Err(plugin_message(format!(
            "The lookup plugin '{kind}' failed to load: {e}"
        ))),
        Err(Failure::Run(e)) => Err(plugin_err(kind, e)),
        Err(Failure::NoAnsibleCore(why)) => Err(op_err(format!(
            "lookup plugin '{kind}' is not supported by etcd-agent ({}), and ansible-core is not \
             available on the controller to run it ({why})",
            SUPPORTED.join(", ")
        ))),
    }
}

fn lookup(state: &State, args: Rest<JValue>) -> Result<JValue, Error> {
    // `wantlist=True`: the list, as `query()` gives it
    let wantlist = args
        .iter()
        .filter(|a| a.is_kwargs())
        .any(|a| a.get_attr("wantlist").is_ok_and(|w| w.is_true()));
    let Some(values) = values(state, &args)? else {
        return Ok(JValue::UNDEFINED);
    };
    if wantlist {
        return Ok(JValue::from_serialize(values));
    }
    // ansible-core: one value is itself; several are joined with commas when all are text
    // (the list as it is otherwise); none is the empty list
    Ok(match values.len() {
        1 => JValue::from_serialize(&values[0]),
        _ if values.iter().all(Value::is_string) && !values.is_empty() => JValue::from(
            values
                .iter()
                .map(super::value::scalar_string)
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => JValue::from_serialize(&values),
    })
}

fn query(state: &State, args: Rest<JValue>) -> Result<JValue, Error> {
    Ok(match values(state, &args)? {
        Some(v) => JValue::from_serialize(v),
        None => JValue::UNDEFINED,
    })
}

/// A variable of the template's context as JSON, if it is defined.
fn var(state: &State, name: &str) -> Option<Value> {
    let v = state.lookup(name)?;
    if v.is_undefined() || v.is_none() {
        return None;
    }
    serde_json::to_value(&v).ok()
}

/// Ansible's `template` lookup: each term a Jinja file found where the task's `templates`
/// are (its role's `templates/`, the task file's directory, the playbook's `templates/`),
/// rendered with the variables the calling template sees, and `template_vars` above them,
/// as the `template` action renders (`trim_blocks`; the file's final newline kept). Options
/// that change the Jinja syntax are refused.
fn template(state: &State, args: &[JValue]) -> Result<Vec<Value>, Error> {
    let mut overrides = super::file_template::Overrides::default();
    let mut extra: std::collections::BTreeMap<String, JValue> = std::collections::BTreeMap::new();
    let mut terms = Vec::new();
    for a in args {
        if a.is_kwargs() {
            for key in a.try_iter()? {
                let name = key.as_str().unwrap_or_default().to_string();
                let value = a.get_item(&key)?;
                match name.as_str() {
                    "template_vars" => {
                        for k in value.try_iter()? {
                            extra.insert(k.to_string(), value.get_item(&k)?);
                        }
                    }
                    // accepted as ansible-core has them by default
                    "convert_data" | "jinja2_native" if !value.is_true() => {}
                    "variable_start_string"
                    | "variable_end_string"
                    | "comment_start_string"
                    | "comment_end_string"
                    | "trim_blocks" => {
                        let v = serde_json::to_value(&value).map_err(|e| op_err(e.to_string()))?;
                        overrides
                            .set(&name, &v)
                            .map_err(|e| plugin_err("template", format!("{e:#}")))?;
                    }
                    other => {
                        return Err(op_err(format!(
                            "lookup('template') option '{other}' is not supported by etcd-agent (template_vars)"
                        )))
                    }
                }
            }
        } else if let Some(t) = a.as_str() {
            terms.push(t.to_string());
        }
    }
    // the calling template's variables (the environment's globals are there anyway)
    let mut context: std::collections::BTreeMap<String, JValue> = std::collections::BTreeMap::new();
    for name in state.known_variables() {
        if state.env().globals().any(|(g, _)| g == name.as_ref()) {
            continue;
        }
        if let Some(v) = state.lookup(&name) {
            context.insert(name.to_string(), v);
        }
    }
    let mut out = Vec::new();
    for t in terms {
        let found = search_candidates(state, "templates", &t)
            .into_iter()
            .find(|c| c.is_file())
            .ok_or_else(|| {
                plugin_err(
                    "template",
                    format!("the template file {t} could not be found for the lookup"),
                )
            })?;
        let text = std::fs::read_to_string(&found)
            .map_err(|e| plugin_err("template", format!("{}: {e}", found.display())))?;
        let mut vars = context.clone();
        vars.insert(
            "template_path".to_string(),
            JValue::from(found.display().to_string()),
        );
        for (k, v) in &extra {
            vars.insert(k.clone(), v.clone());
        }
        // includes: the template's directory, then the task's search path (each as its
        // `templates/` subdirectory, then itself), as ansible-core's lookup searches
        let mut dirs: Vec<std::path::PathBuf> =
            found.parent().map(Into::into).into_iter().collect();
        if let Some(Value::Array(paths)) = var(state, "ansible_search_path") {
            let paths: Vec<std::path::PathBuf> = paths
                .iter()
                .map(|p| super::value::scalar_string(p).into())
                .collect();
            dirs.extend(super::file_template::include_path(&paths));
        }
        let rendered = super::file_template::render_in(
            state.env(),
            &text,
            &JValue::from(vars),
            &overrides,
            dirs,
        )
        .map_err(|e| plugin_err("template", format!("{}: {e:#}", found.display())))?;
        out.push(rendered);
    }
    Ok(out)
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

/// Ansible's `sequence` lookup: each term (`start=1 end=3`, or `1-3/1:%d`) with the keyword
/// arguments as its defaults; keyword arguments alone make one sequence.
fn sequence(args: &[JValue]) -> Result<Vec<Value>, Error> {
    let mut terms = Vec::new();
    let mut options = Vec::new();
    for arg in args {
        match serde_json::to_value(arg).map_err(|e| op_err(e.to_string()))? {
            Value::Object(m) => {
                for (k, v) in m {
                    options.push(format!("{k}={}", super::value::scalar_string(&v)));
                }
            }
            Value::Array(list) => terms.extend(list.iter().map(super::value::scalar_string)),
            Value::Null => {}
            other => terms.push(super::value::scalar_string(&other)),
        }
    }
    if terms.is_empty() {
        if options.is_empty() {
            return Ok(Vec::new());
        }
        terms.push(String::new());
    }
    let defaults = options.join(" ");
    let mut out = Vec::new();
    for term in terms {
        // the keyword arguments first: a term's own options override them
        let full = if defaults.is_empty() || super::sequence::is_shortcut(&term) {
            term
        } else {
            format!("{defaults} {term}")
        };
        let numbers = super::sequence::items(&full)
            .map_err(|e| op_err(format!("The lookup plugin 'sequence' failed: {e}")))?;
        out.extend(numbers.into_iter().map(Value::String));
    }
    Ok(out)
}

/// Global of the template environment holding the settings `lookup('config', ...)` reads.
pub const SETTINGS_GLOBAL: &str = "__etcd_agent_settings";

/// `lookup('config', NAME, ..., on_missing=error|warn|skip)`: Ansible settings by their
/// configuration names (`ALLOW_BROKEN_CONDITIONALS`, `DEFAULT_FORKS`, ...) as this run has
/// them. A setting the agent does not know fails (or is skipped as `on_missing` says);
/// `plugin_type`/`plugin_name` settings are refused.
fn config(state: &State, args: &[JValue]) -> Result<Vec<Value>, Error> {
    let settings = state.lookup(SETTINGS_GLOBAL).unwrap_or_default();
    let mut on_missing = "error".to_string();
    let mut terms = Vec::new();
    for a in args {
        if a.is_kwargs() {
            for key in a.try_iter()? {
                let name = key.as_str().unwrap_or_default().to_string();
                let v = a.get_item(&key)?;
                match name.as_str() {
                    "on_missing" => on_missing = v.to_string(),
                    "show_origin" if !v.is_true() => {}
                    other => {
                        return Err(op_err(format!(
                            "lookup('config') option '{other}' is not supported by etcd-agent (on_missing)"
                        )))
                    }
                }
            }
        } else {
            match a.as_str() {
                Some(t) => terms.push(t.to_string()),
                None => {
                    return Err(op_err(format!(
                        "Invalid setting identifier, {a} is not a string"
                    )))
                }
            }
        }
    }
    let mut out = Vec::new();
    for t in terms {
        match settings.get_attr(&t).ok().filter(|v| !v.is_undefined()) {
            Some(v) => out.push(serde_json::to_value(&v).map_err(|e| op_err(e.to_string()))?),
            None => match on_missing.as_str() {
                "skip" | "warn" => {}
                "error" => {
                    return Err(op_err(format!(
                        "Setting {t:?} is not known to etcd-agent (or does not exist)."
                    )))
                }
                other => {
                    return Err(op_err(format!(
                        "Invalid option for error handling, missing must be error, warn or skip, got: {other}."
                    )))
                }
            },
        }
    }
    Ok(out)
}
