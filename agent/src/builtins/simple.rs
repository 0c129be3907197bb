//! Small builtins: `fail`, `set_fact`, `group_by`, `add_host`, `ping`.

use super::spec::{Arg, Check, Default};
use super::Params;
use super::{ActionCtx, ResultMap};
use crate::transport::TransportError;
use serde_json::{json, Map, Value};

/// `fail`'s valid arguments (`_VALID_ARGS`).
pub const FAIL_ARGS: Check =
    Check::ValidArgs(&[Arg::raw("msg").default(Default::Str("Failed as requested from task"))]);

/// `set_fact` takes any key; `cacheable` is its one option.
pub const SET_FACT_ARGS: Check = Check::Any(&[Arg::bool("cacheable", false)]);

/// `group_by`'s valid arguments (`_VALID_ARGS`).
pub const GROUP_BY_ARGS: Check = Check::ValidArgs(&[Arg::raw("key"), Arg::raw("parents")]);

/// `add_host` takes any key: besides the name and groups, every argument is a host variable.
pub const ADD_HOST_ARGS: Check = Check::Any(&[]);

/// `ping`'s argument spec.
pub const PING_ARGS: Check = Check::Spec {
    name: None,
    args: &[Arg::str("data").default(Default::Str("pong"))],
    common: &[],
    exclusive: &[],
};

/// `fail`: always fails with `msg`.
pub fn fail(_ctx: &ActionCtx<'_>, p: &Params) -> ResultMap {
    let msg = p
        .value("msg")
        .unwrap_or(Value::String("Failed as requested from task".into()));
    let mut m = Map::new();
    m.insert("changed".into(), Value::Bool(false));
    m.insert("failed".into(), Value::Bool(true));
    m.insert("msg".into(), msg);
    m
}

/// `set_fact`: the templated arguments become host variables (`cacheable`: cached facts too). Keys are
/// templated too (Ansible allows it here, for dynamic names) and must then be valid variable
/// names.
pub fn set_fact(ctx: &ActionCtx<'_>, p: &Params) -> ResultMap {
    let mut facts = Map::new();
    for (k, v) in p.given() {
        if k == "cacheable" {
            continue;
        }
        if k == "_raw_params" {
            continue;
        }
        let name = match ctx.templar.render_str(k, ctx.vars) {
            Ok(Value::String(name)) => name,
            // a key templated to another type is named with its type, as Ansible does
            Ok(other) => {
                let kind = match &other {
                    Value::Bool(_) => "bool",
                    Value::Number(n) if n.is_f64() => "float",
                    Value::Number(_) => "int",
                    Value::Null => "NoneType",
                    Value::Array(_) => "list",
                    Value::Object(_) => "dict",
                    Value::String(_) => "str",
                };
                let shown = match &other {
                    Value::Array(_) | Value::Object(_) => String::new(),
                    v => format!(" '{}'", crate::jinja::value::scalar_string(v)),
                };
                return refused(format!(
                    "Task failed: Invalid variable name{shown} of type '{kind}'."
                ));
            }
            Err(e) => return refused(format!("Task failed: {e:#}")),
        };
        if !is_identifier(&name) {
            return refused(format!("Task failed: Invalid variable name '{name}'."));
        }
        facts.insert(name, v.clone());
    }
    let mut m = Map::new();
    m.insert("ansible_facts".into(), Value::Object(facts));
    // the executor caches the facts too (ansible-core's result key, stripped when shown
    // or registered)
    m.insert(
        "_ansible_facts_cacheable".into(),
        Value::Bool(p.bool("cacheable")),
    );
    m.insert("changed".into(), Value::Bool(false));
    m
}

/// A failed, unchanged result.
fn refused(msg: String) -> ResultMap {
    let mut m = super::failed(msg);
    m.insert("changed".into(), Value::Bool(false));
    m
}

/// Python's `str.isidentifier()` for ASCII names (a letter or `_`, then letters, digits, `_`).
/// ansible-core's `validate_variable_name`: an ASCII identifier that is not one of the names
/// Jinja gives a meaning (`true`, `false`, `none` in either case, `not`).
fn is_identifier(name: &str) -> bool {
    const JINJA_KEYWORDS: &[&str] = &["true", "false", "none", "True", "False", "None", "not"];
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !JINJA_KEYWORDS.contains(&name)
}

/// `group_by`: names the group (`key`) and its parents (`parents`, default `all`) the host
/// joins; the executor changes the inventory from the `add_group` and `parent_groups` keys, as
/// Ansible's strategy does. Spaces become `-` as in Ansible's action.
pub fn group_by(_ctx: &ActionCtx<'_>, p: &Params) -> ResultMap {
    let Some(key) = p.raw("key") else {
        let mut m = super::failed("the 'key' param is required when using group_by");
        m.insert("changed".into(), Value::Bool(false));
        return m;
    };
    let name = |v: &Value| crate::jinja::value::scalar_string(v).replace(' ', "-");
    let parents: Vec<Value> = match p.raw("parents") {
        None => vec![Value::String("all".into())],
        Some(Value::Array(a)) => a.iter().map(|v| Value::String(name(v))).collect(),
        Some(v) => vec![Value::String(name(v))],
    };
    let mut m = Map::new();
    m.insert("changed".into(), Value::Bool(false));
    m.insert("add_group".into(), Value::String(name(key)));
    m.insert("parent_groups".into(), Value::Array(parents));
    m
}

/// `add_host`: names a host (`name`, or `host`/`hostname`; `name:port` sets
/// `ansible_ssh_port`), the groups it joins (`groups`, or `group`/`groupname`: a list or a
/// comma-separated string) and its variables (every other argument); the executor adds it to
/// the run's inventory from the `add_host` key, as Ansible's strategy does. Like Ansible's
/// action (`BYPASS_HOST_LOOP`), it runs once per task, not once per host.
pub fn add_host(_ctx: &ActionCtx<'_>, p: &Params) -> ResultMap {
    let given = p.given();
    let name_keys = ["name", "host", "hostname"];
    let group_keys = ["groups", "group", "groupname"];
    let Some(name) = name_keys
        .iter()
        .find_map(|k| given.get(*k))
        .map(crate::jinja::value::scalar_string)
        .filter(|n| !n.trim().is_empty())
    else {
        let mut m = super::failed("name, host or hostname needs to be provided");
        m.insert("changed".into(), Value::Bool(false));
        return m;
    };
    let mut host_vars = Map::new();
    for (k, v) in given {
        if !name_keys.contains(&k.as_str()) && !group_keys.contains(&k.as_str()) {
            host_vars.insert(k.clone(), v.clone());
        }
    }
    // `host:port` (not an IPv6 address, which has more than one colon)
    let (name, port) = match name.rsplit_once(':') {
        Some((h, port))
            if !h.contains(':') && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (h.to_string(), Some(port.to_string()))
        }
        _ => (name, None),
    };
    if let Some(port) = port {
        let port = port.parse::<u64>().map_or(Value::String(port), Value::from);
        host_vars.insert("ansible_ssh_port".into(), port);
    }
    let groups: Vec<Value> = match group_keys.iter().find_map(|k| given.get(*k)) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|g| Value::String(crate::jinja::value::scalar_string(g).trim().to_string()))
            .collect(),
        Some(v) => crate::jinja::value::scalar_string(v)
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(|g| Value::String(g.to_string()))
            .collect(),
    };
    let mut m = Map::new();
    m.insert("changed".into(), Value::Bool(false));
    m.insert(
        "add_host".into(),
        json!({"host_name": name, "groups": groups, "host_vars": host_vars}),
    );
    m
}

/// `ping`: checks the target answers a trivial command.
pub async fn ping(ctx: &ActionCtx<'_>, p: &Params) -> Result<ResultMap, TransportError> {
    let conn = ctx.connection().await?;
    let out = ctx.exec(&conn, "true", None).await?;
    if out.rc != 0 {
        return Ok(super::failed(format!(
            "ping failed: {}",
            out.stderr_text().trim()
        )));
    }
    let data = p.str("data").unwrap_or_else(|| "pong".into());
    if data == "crash" {
        return Ok(super::failed("boom"));
    }
    Ok(json!({"changed": false, "ping": data})
        .as_object()
        .cloned()
        .unwrap_or_default())
}
