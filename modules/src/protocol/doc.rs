//! Module documentation, declared beside each argument struct and rendered
//! as `--help` text and as the ansible-doc sidecar file (`etcd_health.yml`):
//! types, required, defaults and choices per option, and the module's
//! rules across options (as `notes`).

use serde_json::Value;
use std::fmt::Write;

use super::rules::Rule;
use super::{Module, SharedOptions};

/// Ansible's option types, as ansible-doc names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgType {
    /// `type: str`
    Str,
    /// `type: bool`
    Bool,
    /// `type: int`
    Int,
    /// `type: float` (durations in seconds)
    Float,
    /// `type: path`
    Path,
    /// `type: list` of strings
    List,
    /// `type: dict`
    Dict,
    /// `type: raw` (more than one shape accepted)
    Raw,
}

impl ArgType {
    fn name(self) -> &'static str {
        match self {
            ArgType::Str => "str",
            ArgType::Bool => "bool",
            ArgType::Int => "int",
            ArgType::Float => "float",
            ArgType::Path => "path",
            ArgType::List => "list",
            ArgType::Dict => "dict",
            ArgType::Raw => "raw",
        }
    }
}

/// Documentation of one module option (one field of the argument struct).
#[derive(Debug, Clone, Copy)]
pub struct OptionDoc {
    /// The parameter name, equal to the struct field name.
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
    /// Its type.
    pub ty: ArgType,
    /// Whether it must be given.
    pub required: bool,
    /// The default, as a JSON literal (`"true"`, `"5"`, `"\"present\""`).
    pub default: Option<&'static str>,
    /// Allowed values, if restricted.
    pub choices: &'static [&'static str],
    /// Secret: masked in results and logs.
    pub no_log: bool,
}

impl OptionDoc {
    /// A non-required option without default, choices or secrecy.
    pub const fn new(name: &'static str, ty: ArgType, description: &'static str) -> Self {
        OptionDoc {
            name,
            description,
            ty,
            required: false,
            default: None,
            choices: &[],
            no_log: false,
        }
    }

    /// Marks the option required.
    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Sets the default (a JSON literal).
    pub const fn default(mut self, json_literal: &'static str) -> Self {
        self.default = Some(json_literal);
        self
    }

    /// Restricts the values.
    pub const fn choices(mut self, choices: &'static [&'static str]) -> Self {
        self.choices = choices;
        self
    }

    /// Marks the option secret.
    pub const fn no_log(mut self) -> Self {
        self.no_log = true;
        self
    }

    /// The default as a JSON value (`null` when there is none).
    pub fn default_value(&self) -> Value {
        self.default
            .map(|d| serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.into())))
            .unwrap_or(Value::Null)
    }
}

/// Documentation of one result key.
#[derive(Debug, Clone, Copy)]
pub struct ReturnDoc {
    /// The key.
    pub name: &'static str,
    /// What it holds.
    pub description: &'static str,
    /// When it is present (`always`, `success`, ...).
    pub returned: &'static str,
    /// Its type (`str`, `bool`, `list`, `dict`, `int`).
    pub ty: &'static str,
}

/// All rules of module `M`, those of the shared options it takes included.
pub fn all_rules<M: Module>() -> Vec<Rule> {
    M::RULES.iter().chain(M::Shared::RULES).copied().collect()
}

/// All options of module `M`, the shared options it takes included.
pub fn all_options<M: Module>() -> Vec<OptionDoc> {
    let mut options = M::OPTIONS.to_vec();
    options.extend_from_slice(M::Shared::OPTIONS);
    options.sort_by_key(|o| o.name);
    options
}

/// The `--help` text.
pub fn usage<M: Module>() -> String {
    let mut out = format!(
        "{name} - {short}\n\nAn Ansible binary module. Usage: {name} ARGS_FILE\n\
         ARGS_FILE holds a JSON object of the options below; the result is one JSON\n\
         object on stdout. `{name} --doc` prints the ansible-doc sidecar YAML.\n\nOptions:\n",
        name = M::NAME,
        short = M::SHORT_DESCRIPTION
    );
    for o in all_options::<M>() {
        let mut flags = vec![o.ty.name().to_string()];
        if o.required {
            flags.push("required".into());
        }
        if let Some(d) = o.default {
            flags.push(format!("default {d}"));
        }
        if !o.choices.is_empty() {
            flags.push(format!("one of {}", o.choices.join("|")));
        }
        let _ = writeln!(
            out,
            "  {:<22} ({}) {}",
            o.name,
            flags.join(", "),
            o.description
        );
    }
    let rules = all_rules::<M>();
    if !rules.is_empty() {
        out.push_str("\nRules:\n");
        for rule in rules {
            let _ = writeln!(out, "  {}", rule.describe());
        }
    }
    out
}

/// Renders the ansible-doc sidecar YAML (DOCUMENTATION, EXAMPLES, RETURN)
/// from the module's declarations. Scalars are written as JSON strings,
/// which YAML reads as double-quoted scalars.
pub fn sidecar_yaml<M: Module>() -> String {
    let q = |s: &str| Value::String(s.to_string()).to_string();
    let mut y = String::new();
    let _ = writeln!(y, "# Generated by `{} --doc`; do not edit.", M::NAME);
    let _ = writeln!(y, "DOCUMENTATION:");
    let _ = writeln!(y, "  module: {}", M::NAME);
    let _ = writeln!(y, "  short_description: {}", q(M::SHORT_DESCRIPTION));
    let _ = writeln!(y, "  version_added: \"0.1.0\"");
    let _ = writeln!(y, "  description:");
    for d in M::DESCRIPTION {
        let _ = writeln!(y, "    - {}", q(d));
    }
    let _ = writeln!(y, "  options:");
    for o in all_options::<M>() {
        let _ = writeln!(y, "    {}:", o.name);
        let _ = writeln!(y, "      description: {}", q(o.description));
        let _ = writeln!(y, "      type: {}", o.ty.name());
        if o.ty == ArgType::List {
            let _ = writeln!(y, "      elements: str");
        }
        let _ = writeln!(y, "      required: {}", o.required);
        if o.default.is_some() {
            let _ = writeln!(y, "      default: {}", o.default_value());
        }
        if !o.choices.is_empty() {
            let choices: Vec<String> = o.choices.iter().map(|c| q(c)).collect();
            let _ = writeln!(y, "      choices: [{}]", choices.join(", "));
        }
        if o.no_log {
            let _ = writeln!(y, "      no_log: true");
        }
    }
    let rules = all_rules::<M>();
    if !rules.is_empty() {
        let _ = writeln!(y, "  notes:");
        for rule in rules {
            let _ = writeln!(y, "    - {}", q(&rule.describe()));
        }
    }
    let _ = writeln!(y, "  attributes:");
    let _ = writeln!(y, "    check_mode:\n      support: full");
    let _ = writeln!(y, "    diff_mode:\n      support: full");
    let _ = writeln!(y, "  author:\n    - \"etcd-agent developers\"");
    let _ = writeln!(y, "EXAMPLES: |");
    for line in M::EXAMPLES.trim_matches('\n').lines() {
        // a blank line stays blank in the literal block (no trailing spaces)
        let line = line.trim_end();
        let _ = if line.is_empty() {
            writeln!(y)
        } else {
            writeln!(y, "  {line}")
        };
    }
    let _ = writeln!(y, "RETURN:");
    for r in M::RETURNS {
        let _ = writeln!(y, "  {}:", r.name);
        let _ = writeln!(y, "    description: {}", q(r.description));
        let _ = writeln!(y, "    returned: {}", q(r.returned));
        let _ = writeln!(y, "    type: {}", r.ty);
    }
    y
}
