//! One task: its module (the one key that is not a keyword), arguments and keywords.

use super::kv;
use crate::error::syntax;
use crate::jinja::value::{ansible_boolean, scalar_string};
use crate::yaml::{Node, TaskOrigin};
use anyhow::Result;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::Arc;

/// A task.
#[derive(Debug, Clone)]
pub struct Task {
    /// `name`, if given.
    pub name: Option<String>,
    /// The module as written (`command`, `ansible.builtin.command`, `my_module`).
    pub action: String,
    /// Module arguments (free-form text lands in `_raw_params`).
    pub args: Map<String, Value>,
    /// `register`.
    pub register: Option<String>,
    /// `when` conditions (ANDed): raw Jinja expressions or booleans.
    pub when: Vec<Value>,
    /// `until` conditions (ANDed).
    pub until: Vec<Value>,
    /// `retries` (default 3 when `until` is set).
    pub retries: Option<Value>,
    /// `delay` in seconds (default 5).
    pub delay: Option<Value>,
    /// `changed_when` conditions (ORed as Ansible does for lists? no: ANDed).
    pub changed_when: Option<Vec<Value>>,
    /// `failed_when` conditions (ANDed).
    pub failed_when: Option<Vec<Value>>,
    /// `ignore_errors` (bool or template).
    pub ignore_errors: Value,
    /// `ignore_unreachable` (bool or template).
    pub ignore_unreachable: Value,
    /// `no_log`.
    pub no_log: bool,
    /// `run_once`.
    pub run_once: bool,
    /// `delegate_to` (templated).
    pub delegate_to: Option<String>,
    /// Task `vars`.
    pub vars: Map<String, Value>,
    /// Role parameters (`- role: x` with `param: v`) of the task's role and of the roles it
    /// is a dependency of: above facts in precedence, as ansible-core's "role params".
    pub params: Map<String, Value>,
    /// `environment` for the module or command.
    pub environment: Option<Value>,
    /// `become`.
    pub r#become: Option<bool>,
    /// `become_user`.
    pub become_user: Option<String>,
    /// `become_method` (`sudo`, `su`; templated when used).
    pub become_method: Option<String>,
    /// `check_mode` override.
    pub check_mode: Option<bool>,
    /// `diff` override.
    pub diff: Option<bool>,
    /// `connection` (`ssh`, `local`): replaces the play's, below an `ansible_connection`
    /// variable.
    pub connection: Option<String>,
    /// `timeout`: seconds an attempt of the action may take (templated; 0 or none: no limit).
    pub timeout: Option<Value>,
    /// `any_errors_fatal` set on the task or an enclosing block (else the play's applies).
    pub any_errors_fatal: Option<bool>,
    /// `delegate_facts`: facts the action returns go to the delegated host.
    pub delegate_facts: bool,
    /// `async`: seconds the action may run (with `poll` above 0: the task waits for it).
    pub async_secs: Option<Value>,
    /// `poll`: 0 would leave the action running in the background, which is not supported.
    pub poll: Option<Value>,
    /// `collections`: the collections a short module name is looked up in first (the
    /// task's own list, else its block's, role's or play's).
    pub collections: Vec<String>,
    /// The role the task belongs to.
    pub role: Option<Arc<super::role::Role>>,
    /// The role reference (role and parameters, in a `roles:` list or as a dependency) the
    /// task came from, when that role runs once per host: a host that completed the same
    /// reference earlier in the play skips it ([`Task::is_role_complete`] marks completion).
    pub role_instance: Option<usize>,
    /// This run of the task's role (each `roles:` entry, import, include or dependency
    /// expanded is one): `meta: end_role` ends it for a host.
    pub role_run: Option<usize>,
    /// The roles whose tasks included or imported the task's role, the nearest first
    /// (`ansible_parent_role_names`).
    pub parent_roles: Vec<Arc<super::role::Role>>,
    /// For `include_role` with `public: true`: the role whose defaults and vars become the
    /// host's once the include ran.
    pub exposes: Option<Arc<super::role::Role>>,
    /// Where the task was written.
    pub origin: TaskOrigin,
}

/// Ansible task keywords that are recognised but not supported yet: an error, never ignored.
pub const UNSUPPORTED_KEYWORDS: &[&str] = &[
    "loop",
    "loop_control",
    "notify",
    "block",
    "rescue",
    "always",
    "throttle",
    "module_defaults",
    "debugger",
    "listen",
    "port",
    "become_flags",
    "become_exe",
];

/// Modules whose free-form text is a command line (`k=v` only for a few keys).
const RAW_MODULES: &[&str] = &["command", "shell", "raw", "script"];

/// The short name of a module (`ansible.builtin.command` -> `command`).
pub fn short_name(action: &str) -> &str {
    for prefix in ["ansible.builtin.", "ansible.legacy.", "ansible.posix."] {
        if let Some(rest) = action.strip_prefix(prefix) {
            return rest;
        }
    }
    action
}

impl Task {
    /// Whether a `notify` of `n` names this handler: its name, or its name prefixed with its
    /// role's (`role : name`, the role's short or collection-qualified name), as ansible-core's
    /// `get_name()` variants.
    /// `name` is the handler's name as rendered.
    pub fn answers_to_name(&self, name: &str, n: &str) -> bool {
        name == n
            || self.role.as_ref().is_some_and(|r| {
                r.notify_prefixes()
                    .iter()
                    .any(|p| n.strip_prefix(p.as_str()) == Some(name))
            })
    }

    /// Whether this is the implicit end of a role reference (`meta: role_complete`, added
    /// by the parser after a role's tasks, as ansible-core does): it marks the reference
    /// completed for the hosts it runs for, and is never shown or listed.
    pub fn is_role_complete(&self) -> bool {
        self.role_instance.is_some()
            && self.module() == "meta"
            && self
                .args
                .get("_raw_params")
                .is_some_and(|v| v.as_str().map(str::trim) == Some("role_complete"))
    }

    /// A task made by the engine (e.g. `Gathering Facts` running `setup`).
    pub fn synthetic(action: &str, name: &str, origin: TaskOrigin) -> Task {
        Task {
            name: Some(name.to_string()),
            action: action.to_string(),
            ..Task::empty(origin)
        }
    }

    /// A task with no name, no action and every keyword at its default.
    fn empty(origin: TaskOrigin) -> Task {
        Task {
            name: None,
            action: String::new(),
            args: Map::new(),
            register: None,
            when: Vec::new(),
            until: Vec::new(),
            retries: None,
            delay: None,
            changed_when: None,
            failed_when: None,
            ignore_errors: Value::Bool(false),
            ignore_unreachable: Value::Bool(false),
            no_log: false,
            run_once: false,
            delegate_to: None,
            vars: Map::new(),
            params: Map::new(),
            environment: None,
            r#become: None,
            become_user: None,
            become_method: None,
            check_mode: None,
            diff: None,
            collections: Vec::new(),
            connection: None,
            timeout: None,
            any_errors_fatal: None,
            delegate_facts: false,
            async_secs: None,
            poll: None,
            role: None,
            role_instance: None,
            role_run: None,
            parent_roles: Vec::new(),
            exposes: None,
            origin,
        }
    }

    /// The name shown in `TASK [...]`: `name`, else the module as written.
    pub fn display_name(&self) -> String {
        let name = self.name.clone().unwrap_or_else(|| self.action.clone());
        match &self.role {
            Some(role) => format!("{} : {name}", role.name),
            None => name,
        }
    }

    /// The module short name.
    pub fn module(&self) -> &str {
        short_name(&self.action)
    }
}

fn conditions(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

fn args_from(module: &str, v: Value) -> std::result::Result<Map<String, Value>, String> {
    match v {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        Value::String(s) => Ok(kv::parse_kv(&s, RAW_MODULES.contains(&short_name(module)))),
        other => Ok(kv::parse_kv(
            &scalar_string(&other),
            RAW_MODULES.contains(&short_name(module)),
        )),
    }
}

/// A `connection` keyword's value: `ssh` or `local`, the connections etcd-agent has.
pub fn connection_keyword(v: &Value) -> std::result::Result<String, String> {
    match scalar_string(v).as_str() {
        c @ ("ssh" | "local") => Ok(c.to_string()),
        c => Err(format!("connection {c:?} is not supported (ssh, local)")),
    }
}

/// A `become_method` keyword's value: `sudo` or `su` (the methods etcd-agent has), or a
/// template, checked when it is used.
pub fn check_become_method(m: &str) -> std::result::Result<(), String> {
    if crate::jinja::value::is_template(m) {
        return Ok(());
    }
    crate::transport::BecomeMethod::parse(m)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Parses one task mapping.
pub fn parse(node: &Node, file: &Arc<PathBuf>) -> Result<Task> {
    let origin = TaskOrigin {
        file: file.clone(),
        line: node.line,
        col: node.col,
    };
    let err = |msg: String| syntax(format!("{origin}: {msg}"));
    let Some(entries) = node.as_map() else {
        return Err(err("a task must be a mapping".into()));
    };
    let mut task = Task::empty(origin.clone());
    let mut actions: Vec<String> = Vec::new();
    let mut extra_args = Map::new();
    for (key, value) in entries {
        let v = value.to_json();
        let key = key.as_str();
        if UNSUPPORTED_KEYWORDS.contains(&key) || key.starts_with("with_") {
            let what = entries
                .iter()
                .find(|(k, _)| k == "name")
                .map(|(_, n)| format!(" in task {:?}", scalar_string(&n.to_json())))
                .unwrap_or_default();
            return Err(syntax(format!(
                "{}:{}: keyword '{key}'{what} is not supported by etcd-agent yet",
                file.display(),
                value.line
            )));
        }
        match key {
            "name" => task.name = Some(scalar_string(&v)),
            "collections" => {
                task.collections = crate::collections::keyword_list(&v).map_err(err)?
            }
            "args" => {
                match v {
                    Value::Object(m) => extra_args = m,
                    Value::Null => {}
                    // one template that gives the mapping at run time (ansible-core 2.19)
                    Value::String(s) if s.trim().starts_with("{{") && s.trim().ends_with("}}") => {
                        extra_args.insert("_variable_params".into(), Value::String(s));
                    }
                    _ => return Err(err(
                        "The value of the task `args` keyword is invalid: a mapping or a template \
                         which resolves to a mapping is required"
                            .into(),
                    )),
                }
            }
            "action" | "local_action" => {
                let (module, args) = match v {
                    Value::String(s) => {
                        let s = s.trim();
                        let (m, rest) = s.split_once(char::is_whitespace).unwrap_or((s, ""));
                        (m.to_string(), args_from(m, Value::String(rest.to_string())))
                    }
                    // `{module: "copy src=a", args: {...}, dest: b}`: the module string may
                    // carry arguments, and `args` (a mapping or key=value text) merges in, as
                    // ansible-core's ModuleArgsParser does
                    Value::Object(mut m) => {
                        let written = m
                            .remove("module")
                            .map(|x| scalar_string(&x))
                            .unwrap_or_default();
                        let written = written.trim();
                        // a templated name (`"{{ m }}"`) is the name as a whole
                        let (module, inline) = if crate::jinja::value::is_template(written) {
                            (written, "")
                        } else {
                            written
                                .split_once(char::is_whitespace)
                                .unwrap_or((written, ""))
                        };
                        let mut args = m;
                        if !inline.trim().is_empty() {
                            if let Ok(extra) = args_from(module, Value::String(inline.to_string()))
                            {
                                args.extend(extra);
                            }
                        }
                        let nested = args.remove("args");
                        let args = match nested {
                            None => Ok(args),
                            Some(nested) => args_from(module, nested).map(|extra| {
                                args.extend(extra);
                                args
                            }),
                        };
                        (module.to_string(), args)
                    }
                    _ => return Err(err(format!("'{key}' must be a string or mapping"))),
                };
                task.args = args.map_err(err)?;
                actions.push(module.clone());
                task.action = module;
                if key == "local_action" {
                    task.delegate_to = Some("localhost".into());
                }
            }
            "register" => task.register = Some(register_name(&v).map_err(err)?),
            "when" => task.when = conditions(&v),
            "until" => task.until = conditions(&v),
            "retries" => task.retries = Some(v),
            "delay" => task.delay = Some(v),
            "changed_when" => task.changed_when = Some(conditions(&v)),
            "failed_when" => task.failed_when = Some(conditions(&v)),
            "ignore_errors" => task.ignore_errors = v,
            "ignore_unreachable" => task.ignore_unreachable = v,
            "no_log" => task.no_log = ansible_boolean(&v),
            "run_once" => task.run_once = ansible_boolean(&v),
            "delegate_to" => task.delegate_to = Some(scalar_string(&v)),
            "connection" => task.connection = Some(connection_keyword(&v).map_err(err)?),
            "timeout" => task.timeout = Some(v),
            "any_errors_fatal" => task.any_errors_fatal = Some(ansible_boolean(&v)),
            "delegate_facts" => task.delegate_facts = ansible_boolean(&v),
            "async" => task.async_secs = Some(v),
            "poll" => task.poll = Some(v),
            "vars" => match v {
                Value::Object(m) => task.vars = m,
                Value::Null => {}
                _ => return Err(err("task vars must be a mapping".into())),
            },
            "environment" => task.environment = Some(v),
            "become" => task.r#become = Some(ansible_boolean(&v)),
            "become_user" => task.become_user = Some(scalar_string(&v)),
            "become_method" => {
                let m = scalar_string(&v);
                check_become_method(&m).map_err(err)?;
                task.become_method = Some(m);
            }
            "check_mode" => task.check_mode = Some(ansible_boolean(&v)),
            "diff" => {
                task.diff = Some(strict_boolean(&v).ok_or_else(|| {
                    err(format!(
                        "Error processing keyword 'diff': The value '{}' could not be \
                         converted to 'bool'.",
                        scalar_string(&v)
                    ))
                })?)
            }
            "tags" | "remote_user" => {
                if key == "remote_user" {
                    task.vars.insert("ansible_user".into(), v);
                }
            }
            module => {
                actions.push(module.to_string());
                task.action = module.to_string();
                task.args = args_from(module, v).map_err(err)?;
            }
        }
    }
    match actions.len() {
        0 => {
            return Err(err(format!(
                "no module/action detected in task{}",
                task.name
                    .as_ref()
                    .map(|n| format!(" {n:?}"))
                    .unwrap_or_default()
            )))
        }
        1 => {}
        _ => {
            return Err(err(format!(
                "conflicting action statements: {}{}",
                actions.join(", "),
                task.name
                    .as_ref()
                    .map(|n| format!(" (task {n:?}; unknown keyword or second module?)"))
                    .unwrap_or_default()
            )))
        }
    }
    for (k, v) in extra_args {
        task.args.insert(k, v);
    }
    // `poll: 0` leaves the action running in the background: the agent does it for the
    // command modules (`async_status` reads their results)
    let background = task.poll.as_ref().and_then(Value::as_i64) == Some(0);
    if background && task.async_secs.is_some() && !matches!(task.module(), "command" | "shell") {
        return Err(err(format!(
            "poll: 0 (an action left running in the background) is supported by etcd-agent for command and shell only, not {}; use poll above 0",
            task.action
        )));
    }
    if let Some(k) = task.args.keys().find(|k| k.starts_with("_ansible_")) {
        return Err(err(format!(
            "Invalid parameter specified beginning with keyword '_ansible_' for action '{}': \
             '{k}'. The prefix '_ansible_' is reserved for internal use only.",
            task.action
        )));
    }
    Ok(task)
}

/// Ansible's strict `boolean()` for a keyword: its true and false spellings (any case), 0, 1
/// and booleans; anything else (`yes.`, `maybe`, a template) is `None`.
fn strict_boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => {
            let f = n.as_f64()?;
            (f == 1.0 || f == 0.0).then_some(f == 1.0)
        }
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" | "on" | "1" | "true" | "t" => Some(true),
            "n" | "no" | "off" | "0" | "false" | "f" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A `register` name: a Python identifier that is not a keyword, as Ansible requires (so
/// `register: off`, a YAML boolean, is an error, not a variable named "false").
fn register_name(v: &Value) -> Result<String, String> {
    const KEYWORDS: &[&str] = &[
        "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class",
        "continue", "def", "del", "elif", "else", "except", "finally", "for", "from", "global",
        "if", "import", "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return",
        "try", "while", "with", "yield",
    ];
    let identifier = |s: &str| {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !KEYWORDS.contains(&s)
    };
    match v {
        Value::String(s) if identifier(s) => Ok(s.clone()),
        Value::String(s) => Err(format!(
            "Invalid 'register' specified: Invalid variable name '{s}'."
        )),
        Value::Bool(b) => Err(format!(
            "Invalid 'register' specified: Invalid variable name '{}' of type 'bool'.",
            if *b { "True" } else { "False" }
        )),
        other => Err(format!(
            "Invalid 'register' specified: Invalid variable name '{}'.",
            scalar_string(other)
        )),
    }
}
