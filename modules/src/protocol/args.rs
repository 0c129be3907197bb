//! Turning the args file into typed arguments, with Ansible's error messages.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::fmt;

use super::convert;
use super::doc::{all_rules, OptionDoc};
use super::fields::struct_fields;
use super::rules;
use super::{Context, Module, SharedOptions};

/// Why the arguments were refused. The `Display` text is the `msg` of the
/// failed result and follows Ansible's wording.
#[derive(Debug)]
pub struct ArgsError(String);

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgsError {}

/// The arguments of one invocation, validated.
pub struct ParsedArgs<A, S = super::NoSharedOptions> {
    /// The module's own typed arguments.
    pub module_args: A,
    /// Check/diff mode, verbosity and the shared options.
    pub context: Context<S>,
    /// What the user passed (no `_ansible_*` keys), for `invocation`.
    supplied: Map<String, Value>,
    /// Names of parameters whose values must never be echoed.
    secret_names: Vec<&'static str>,
    /// Every documented option with its default, for `invocation`.
    defaults: Vec<(&'static str, Value)>,
    /// Ansible's conversion warnings (a number given for a string option).
    warnings: Vec<String>,
}

impl<A, S> ParsedArgs<A, S> {
    /// The values of secret (`no_log`) parameters the user supplied (as
    /// converted, and every scalar inside a list or dict).
    pub fn secret_values(&self) -> Vec<String> {
        let mut out = Vec::new();
        for name in &self.secret_names {
            if let Some(v) = self.supplied.get(*name) {
                convert::leaves(v, &mut out);
            }
        }
        out.retain(|s| !s.is_empty());
        out
    }

    /// Warnings for the result's `warnings`, as AnsibleModule gives them
    /// (a number or boolean converted for a string option).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// `invocation.module_args` as Ansible reports it: every option, with
    /// secret values replaced by Ansible's placeholder.
    pub fn masked_module_args(&self) -> Value {
        let mut args = Map::new();
        for (name, default) in &self.defaults {
            // A null was treated as omitted: the module got the default.
            let value = self
                .supplied
                .get(*name)
                .filter(|v| !v.is_null())
                .cloned()
                .unwrap_or(default.clone());
            let value = if self.secret_names.contains(name) && !value.is_null() {
                Value::String(super::mask::NO_LOG_PLACEHOLDER.into())
            } else {
                value
            };
            args.insert((*name).to_string(), value);
        }
        Value::Object(args)
    }
}

/// Parses and validates the JSON text of an args file for module `M`.
pub fn parse_args<M: Module>(raw: &str) -> Result<ParsedArgs<M::Args, M::Shared>, ArgsError> {
    let value: Value = serde_json::from_str(raw)
        .map_err(|e| ArgsError(format!("module arguments are not valid JSON: {e}")))?;
    let Value::Object(all) = value else {
        return Err(ArgsError("module arguments must be a JSON object".into()));
    };

    let (mut check_mode, mut diff, mut verbosity) = (false, false, 0);
    let mut supplied = Map::new();
    for (key, value) in all {
        match key.strip_prefix("_ansible_") {
            Some("check_mode") => check_mode = lenient::truthy(&value),
            Some("diff") => diff = lenient::truthy(&value),
            Some("verbosity") => verbosity = value.as_u64().unwrap_or(0),
            // Ansible sends ~17 internal keys; the rest do not concern a module.
            Some(_) => {}
            None => {
                supplied.insert(key, value);
            }
        }
    }

    let module_fields = struct_fields::<M::Args>();
    let shared_fields = struct_fields::<M::Shared>();
    let mut unsupported: Vec<&str> = supplied
        .keys()
        .map(String::as_str)
        .filter(|k| !module_fields.contains(k) && !shared_fields.contains(k))
        .collect();
    if !unsupported.is_empty() {
        unsupported.sort_unstable();
        let mut supported: Vec<&str> = module_fields.iter().chain(shared_fields).copied().collect();
        supported.sort_unstable();
        return Err(ArgsError(format!(
            "Unsupported parameters for ({}) module: {}. Supported parameters include: {}.",
            M::NAME,
            unsupported.join(", "),
            supported.join(", ")
        )));
    }

    // Ansible's type conversions, by the declared type of each option.
    let docs: Vec<&OptionDoc> = all_options::<M>().collect();
    let mut warnings = Vec::new();
    for doc in &docs {
        let Some(value) = supplied.get_mut(doc.name) else {
            continue;
        };
        if value.is_null() {
            continue;
        }
        let raw = std::mem::take(value);
        *value = convert::convert(doc.name, doc.ty, raw, doc.no_log, &mut warnings)
            .map_err(ArgsError)?;
    }
    M::Shared::prepare(&mut supplied).map_err(ArgsError)?;

    // Ansible treats an explicit null like an omitted option.
    let given: Map<String, Value> = supplied
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let rules = all_rules::<M>();
    rules::check_given(&rules, &given).map_err(ArgsError)?;
    check_required(&docs, &given)?;
    check_choices(&docs, &given)?;
    // Each option's declared default, filled in before the structs are typed.
    let mut filled = given.clone();
    for doc in &docs {
        if doc.default.is_some() && !filled.contains_key(doc.name) {
            filled.insert(doc.name.to_string(), doc.default_value());
        }
    }
    rules::check_filled(&rules, &given, &filled).map_err(ArgsError)?;

    let (module_part, shared_part): (Map<String, Value>, Map<String, Value>) = filled
        .into_iter()
        .partition(|(key, _)| module_fields.contains(&key.as_str()));
    let secret_names: Vec<&'static str> =
        docs.iter().filter(|o| o.no_log).map(|o| o.name).collect();
    let module_args = typed::<M::Args>(module_part, &secret_names)?;
    let shared = typed::<M::Shared>(shared_part, &secret_names)?;
    shared.validate().map_err(ArgsError)?;
    let context = Context {
        check_mode,
        diff,
        verbosity,
        shared,
    };

    let defaults = docs.iter().map(|o| (o.name, o.default_value())).collect();
    Ok(ParsedArgs {
        module_args,
        context,
        supplied,
        secret_names,
        defaults,
        warnings,
    })
}

/// The module's options followed by the shared options it takes.
fn all_options<M: Module>() -> impl Iterator<Item = &'static OptionDoc> + Clone {
    M::OPTIONS.iter().chain(M::Shared::OPTIONS)
}

/// AnsibleModule's `check_required_arguments`: every missing one, sorted.
fn check_required(docs: &[&OptionDoc], given: &Map<String, Value>) -> Result<(), ArgsError> {
    let mut missing: Vec<&str> = docs
        .iter()
        .filter(|o| o.required && !given.contains_key(o.name))
        .map(|o| o.name)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    missing.sort_unstable();
    Err(ArgsError(format!(
        "missing required arguments: {}",
        missing.join(", ")
    )))
}

/// AnsibleModule's choice check on the given (converted) values, in its words.
fn check_choices(docs: &[&OptionDoc], given: &Map<String, Value>) -> Result<(), ArgsError> {
    for doc in docs.iter().filter(|o| !o.choices.is_empty()) {
        let Some(value) = given.get(doc.name) else {
            continue;
        };
        let allowed = doc.choices.join(", ");
        let shown = |v: &Value| {
            if doc.no_log {
                "********".to_string()
            } else {
                convert::py_str(v)
            }
        };
        let is_choice = |v: &Value| doc.choices.contains(&convert::py_str(v).as_str());
        match value {
            Value::Array(items) => {
                let wrong: Vec<String> =
                    items.iter().filter(|v| !is_choice(v)).map(shown).collect();
                if !wrong.is_empty() {
                    return Err(ArgsError(format!(
                        "value of {} must be one or more of: {allowed}. Got no match for: {}",
                        doc.name,
                        wrong.join(", ")
                    )));
                }
            }
            other if !is_choice(other) => {
                return Err(ArgsError(format!(
                    "value of {} must be one of: {allowed}, got: {}",
                    doc.name,
                    shown(other)
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Every value of a `no_log` option in the raw args text, whatever its type
/// and even when the arguments are refused: the safety net masks them in any
/// message. Secrets the shared options carry inside other options (the
/// password in `user: "name:password"`) count too.
pub fn raw_secret_values<M: Module>(raw: &str) -> Vec<String> {
    let Ok(Value::Object(all)) = serde_json::from_str::<Value>(raw) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for doc in all_options::<M>().filter(|o| o.no_log) {
        if let Some(v) = all.get(doc.name) {
            convert::leaves(v, &mut out);
        }
    }
    out.extend(M::Shared::embedded_secrets(&all));
    out.retain(|s| !s.is_empty());
    out
}

/// Deserializes one argument struct, naming the argument at fault. serde's
/// text may quote the value, so it is left out for a `no_log` option.
fn typed<T: DeserializeOwned>(map: Map<String, Value>, secret: &[&str]) -> Result<T, ArgsError> {
    serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
        let inner = e.inner().to_string();
        if let Some(rest) = inner.strip_prefix("missing field `") {
            let name = rest.split('`').next().unwrap_or(rest);
            return ArgsError(format!("missing required arguments: {name}"));
        }
        let path = e.path().to_string();
        let top = path.split(['.', '[']).next().unwrap_or(&path);
        if secret.contains(&top) {
            return ArgsError(format!(
                "argument '{path}' is invalid (the value of a no_log option is not shown)"
            ));
        }
        // The message from serde_json ends with " at line 0 column 0" for values; trim it.
        let inner = inner
            .split(" at line ")
            .next()
            .unwrap_or(&inner)
            .to_string();
        ArgsError(format!("argument '{path}' is invalid: {inner}"))
    })
}

/// Argument types that accept what Ansible accepts: templated values often
/// arrive as strings (`"yes"`, `"10"`), so convert them as Ansible does.
pub mod lenient {
    use serde::de::{self, Deserialize, Deserializer};
    use serde_json::Value;
    use std::time::Duration;

    /// Ansible's truthiness for internal flags (`_ansible_check_mode`).
    pub fn truthy(value: &Value) -> bool {
        match value {
            Value::Bool(b) => *b,
            Value::String(s) => parse_bool(s).unwrap_or(false),
            Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
            _ => false,
        }
    }

    use super::convert::{bool_of, parse_bool};

    /// A boolean: `true`, `"yes"`, `"on"`, `1`, ... like Ansible's `type='bool'`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Bool(pub bool);

    impl<'de> Deserialize<'de> for Bool {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let value = Value::deserialize(d)?;
            bool_of(&value).map(Bool).ok_or_else(|| {
                de::Error::custom(format!(
                    "{value} is not a valid boolean; valid booleans include: yes, no, true, false, on, off, 1, 0"
                ))
            })
        }
    }

    /// A whole number, also from a numeric string.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Int(pub u64);

    impl<'de> Deserialize<'de> for Int {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let value = Value::deserialize(d)?;
            let parsed = match &value {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            };
            parsed.map(Int).ok_or_else(|| {
                de::Error::custom(format!("{value} is not a non-negative whole number"))
            })
        }
    }

    /// A duration: seconds as a number (`5`, `0.5`, `"5"`) or with a unit
    /// as etcdctl writes them (`"500ms"`, `"5s"`, `"2m"`, `"1h"`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Seconds(pub Duration);

    impl<'de> Deserialize<'de> for Seconds {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let value = Value::deserialize(d)?;
            let parsed = match &value {
                Value::Number(n) => n.as_f64().and_then(seconds),
                Value::String(s) => parse_duration(s),
                _ => None,
            };
            parsed.map(Seconds).ok_or_else(|| {
                de::Error::custom(format!(
                    "{value} is not a duration (seconds as a number, or a number with ms, s, m or h)"
                ))
            })
        }
    }

    fn seconds(x: f64) -> Option<Duration> {
        (0.0..1e9).contains(&x).then(|| Duration::from_secs_f64(x))
    }

    /// Parses `"5"`, `"1.5"`, `"500ms"`, `"5s"`, `"2m"`, `"1h"`.
    pub fn parse_duration(s: &str) -> Option<Duration> {
        let s = s.trim();
        let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
            (n, 0.001)
        } else if let Some(n) = s.strip_suffix('s') {
            (n, 1.0)
        } else if let Some(n) = s.strip_suffix('m') {
            (n, 60.0)
        } else if let Some(n) = s.strip_suffix('h') {
            (n, 3600.0)
        } else {
            (s, 1.0)
        };
        number
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|x| seconds(x * scale))
    }

    /// A list of strings, given as a YAML list or a comma-separated string.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct List(pub Vec<String>);

    impl<'de> Deserialize<'de> for List {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let value = Value::deserialize(d)?;
            let items = match value {
                Value::String(s) => split_list(&s),
                Value::Array(items) => items
                    .into_iter()
                    .map(|item| match item {
                        Value::String(s) => Ok(s.trim().to_string()),
                        other => Err(de::Error::custom(format!(
                            "list element {other} is not a string"
                        ))),
                    })
                    .collect::<Result<_, _>>()?,
                other => {
                    return Err(de::Error::custom(format!(
                        "{other} is neither a list nor a comma-separated string"
                    )))
                }
            };
            Ok(List(items))
        }
    }

    /// Splits `"a, b,c"` into `["a", "b", "c"]`, dropping empty items.
    pub fn split_list(s: &str) -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }
}
