//! A builtin's arguments validated against its [`Check`]: aliases resolved, values converted,
//! unknown keys and bad values refused in Ansible's words (in Ansible's order: mutually
//! exclusive, required, types, choices, unknown keys), then arguments etcd-agent does not
//! implement refused unless they hold Ansible's default. [`Params`] gives typed access with the
//! declared defaults.

use super::spec::{Arg, Check, Kind, Support};
use crate::jinja::value::python_repr;
use serde_json::{Map, Value};

/// Validated arguments of one task.
#[derive(Debug, Clone)]
pub struct Params {
    /// The arguments given, under their canonical names, converted.
    given: Map<String, Value>,
    /// The declaration (for defaults).
    check: Check,
}

/// Python's type name of a JSON value, as Ansible's messages give it.
fn py_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Python's `str()` of a value.
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => python_repr(other),
    }
}

/// Ansible's strict `boolean()`.
fn to_bool(v: &Value) -> Result<bool, String> {
    let text = match v {
        Value::Bool(b) => return Ok(*b),
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f == 1.0 || f == 0.0 {
                return Ok(f == 1.0);
            }
            n.to_string()
        }
        Value::String(s) => s.trim().to_ascii_lowercase(),
        other => return Err(format!("{} cannot be converted to a bool", class(other))),
    };
    match text.as_str() {
        "y" | "yes" | "on" | "1" | "true" | "t" => Ok(true),
        "n" | "no" | "off" | "0" | "false" | "f" => Ok(false),
        _ => Err(format!(
            "The value '{}' is not a valid boolean. Valid booleans include: 0, 1, 'false', 'no', 'n', 'off', 'f', '0', 'true', 'yes', 'y', 'on', 't', '1'",
            py_str(v)
        )),
    }
}

/// Python's `<class 'list'>`.
fn class(v: &Value) -> String {
    format!("<class '{}'>", py_type(v))
}

/// Ansible's `check_type_int`: integers, floats without a fraction, text of either.
fn to_int(v: &Value) -> Result<i64, String> {
    let bad = || format!("\"{}\" cannot be converted to an int", python_repr(v));
    match v {
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Ok(i),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
            _ => Err(bad()),
        },
        Value::String(s) => {
            let t = s.trim();
            if let Ok(i) = t.parse::<i64>() {
                return Ok(i);
            }
            match t.parse::<f64>() {
                Ok(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
                _ => Err(bad()),
            }
        }
        _ => Err(bad()),
    }
}

/// Ansible's `check_type_float`.
fn to_float(v: &Value) -> Result<f64, String> {
    let f = match v {
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    f.ok_or_else(|| format!("{} cannot be converted to a float", class(v)))
}

/// Converts one value to its declared kind.
fn convert(arg: &Arg, v: &Value) -> Result<Value, String> {
    Ok(match arg.kind {
        Kind::Raw => v.clone(),
        Kind::Str | Kind::Path => Value::String(py_str(v)),
        Kind::StrStrict => match v {
            Value::String(_) => v.clone(),
            other => {
                return Err(format!(
                    "'{}' is not a string and conversion is not allowed",
                    python_repr(other)
                ))
            }
        },
        Kind::Bool => Value::Bool(to_bool(v)?),
        Kind::Int => Value::from(to_int(v)?),
        Kind::Float => serde_json::Number::from_f64(to_float(v)?)
            .map(Value::Number)
            .ok_or_else(|| format!("{} cannot be converted to a float", class(v)))?,
        Kind::List => match v {
            Value::Array(_) => v.clone(),
            Value::String(s) => Value::Array(s.split(',').map(|p| p.into()).collect()),
            Value::Number(n) => Value::Array(vec![n.to_string().into()]),
            other => return Err(format!("{} cannot be converted to a list", class(other))),
        },
        Kind::ListStrict => match v {
            Value::Array(_) => v.clone(),
            other => Value::Array(vec![other.clone()]),
        },
    })
}

/// The Ansible type name of a kind, as conversion errors name it.
fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Str | Kind::StrStrict => "str",
        Kind::Path => "path",
        Kind::Bool => "bool",
        Kind::Int => "int",
        Kind::Float => "float",
        Kind::List | Kind::ListStrict => "list",
        Kind::Raw => "raw",
    }
}

/// `Unsupported parameters` text: the unknown keys, then the declared names and aliases.
fn unsupported<'a>(
    module: &str,
    keys: &[String],
    args: impl Iterator<Item = &'a Arg> + Clone,
) -> String {
    let listed = || args.clone().filter(|a| !a.hidden);
    let mut names: Vec<&str> = listed().map(|a| a.name).collect();
    names.sort_unstable();
    let mut aliases: Vec<&str> = listed().flat_map(|a| a.aliases.iter().copied()).collect();
    aliases.sort_unstable();
    let mut supported = names.join(", ");
    if !aliases.is_empty() {
        supported.push_str(&format!(" ({})", aliases.join(", ")));
    }
    format!(
        "Unsupported parameters for ({module}) module: {}. Supported parameters include: {supported}.",
        keys.join(", ")
    )
}

/// The default as text for a message.
fn default_text(arg: &Arg) -> String {
    match arg.default.value() {
        Some(v) => python_repr(&v),
        None => "None".into(),
    }
}

impl Params {
    /// Validates `raw` (the task's templated arguments) for builtin `module` against `check`;
    /// `Err` is the message the task fails with.
    pub fn validate(
        module: &str,
        check: Check,
        raw: &Map<String, Value>,
    ) -> Result<Params, String> {
        let mut given = Map::new();
        let mut unknown = Vec::new();
        for (key, value) in raw {
            match check.find(key) {
                // as Ansible, a null value is as good as not given, except that it is given
                // for a required argument (its type rule then judges it)
                Some(arg) if value.is_null() && !arg.required => {}
                // an alias given alongside its option wins, as in `_handle_aliases`
                Some(arg) if arg.name == key && given.contains_key(arg.name) => {}
                Some(arg) => {
                    given.insert(arg.name.to_string(), value.clone());
                }
                None => {
                    given.insert(key.clone(), value.clone());
                    unknown.push(key.clone());
                }
            }
        }
        unknown.sort();
        if let Check::ValidArgs(_) = check {
            if !unknown.is_empty() {
                return Err(format!(
                    "Invalid options for {module}: {}",
                    unknown.join(",")
                ));
            }
        }
        if let Check::Spec { exclusive, .. } = check {
            for group in exclusive {
                let set: Vec<&str> = group
                    .iter()
                    .copied()
                    .filter(|k| given.contains_key(*k))
                    .collect();
                if set.len() > 1 {
                    return Err(format!(
                        "parameters are mutually exclusive: {}",
                        group.join("|")
                    ));
                }
            }
        }
        let missing: Vec<&str> = check
            .args()
            .filter(|a| a.required && !given.contains_key(a.name))
            .map(|a| a.name)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "missing required arguments: {}",
                missing.join(", ")
            ));
        }
        for arg in check.args() {
            let Some(v) = given.get(arg.name) else {
                continue;
            };
            match convert(arg, v) {
                Ok(c) => {
                    given.insert(arg.name.to_string(), c);
                }
                Err(e) => {
                    return Err(format!(
                        "argument '{}' is of type {} and we were unable to convert to {}: {e}",
                        arg.name,
                        py_type(v),
                        kind_name(arg.kind)
                    ))
                }
            }
        }
        for arg in check.args().filter(|a| !a.choices.is_empty()) {
            if let Some(v) = given.get(arg.name) {
                let text = py_str(v);
                if !arg.choices.contains(&text.as_str()) {
                    return Err(format!(
                        "value of {} must be one of: {}, got: {text}",
                        arg.name,
                        arg.choices.join(", ")
                    ));
                }
            }
        }
        if let Check::Spec { name, .. } = check {
            if !unknown.is_empty() {
                return Err(unsupported(name.unwrap_or(module), &unknown, check.args()));
            }
        }
        for arg in check.args() {
            let Some(v) = given.get(arg.name) else {
                continue;
            };
            match arg.support {
                Support::Full => {}
                Support::DefaultOnly if arg.default.value().as_ref() == Some(v) => {}
                Support::DefaultOnly => {
                    return Err(format!(
                        "{module}: argument '{}' is not supported by etcd-agent (only its default, {}, is accepted)",
                        arg.name,
                        default_text(arg)
                    ))
                }
                Support::Only(values) => {
                    // a one-element list counts as its element (`gather_subset: [all]`)
                    let text = match v {
                        Value::Array(a) if a.len() == 1 => py_str(&a[0]),
                        other => py_str(other),
                    };
                    if !values.contains(&text.as_str()) {
                        return Err(format!(
                            "{module}: argument '{}' with value {} is not supported by etcd-agent (supported: {})",
                            arg.name,
                            python_repr(v),
                            values.join(", ")
                        ));
                    }
                }
            }
        }
        Ok(Params { given, check })
    }

    /// Arguments accepted as they are (for tests and internal callers).
    pub fn unchecked(given: Map<String, Value>, check: Check) -> Params {
        Params { given, check }
    }

    /// The arguments given, canonical names, converted.
    pub fn given(&self) -> &Map<String, Value> {
        &self.given
    }

    /// Every declared argument with its value (given, else its default, else null), as an
    /// `AnsibleModule` has them once validated: the `module_args` of a result's `invocation`.
    pub fn module_args(&self) -> Map<String, Value> {
        self.check
            .args()
            .map(|a| {
                let v = self
                    .given
                    .get(a.name)
                    .cloned()
                    .or_else(|| a.default.value())
                    .unwrap_or(Value::Null);
                (a.name.to_string(), v)
            })
            .collect()
    }

    /// Whether argument `name` was given.
    pub fn has(&self, name: &str) -> bool {
        self.given.contains_key(name)
    }

    /// The value of `name`: given, else its default.
    pub fn value(&self, name: &str) -> Option<Value> {
        debug_assert!(
            name.starts_with('_') || self.check.find(name).is_some(),
            "argument {name} is not declared"
        );
        match self.given.get(name) {
            Some(v) => Some(v.clone()),
            None => self.check.find(name).and_then(|a| a.default.value()),
        }
    }

    /// A text argument (given or default).
    pub fn str(&self, name: &str) -> Option<String> {
        self.value(name).map(|v| py_str(&v))
    }

    /// A boolean argument (given or default); `None` when neither.
    pub fn opt_bool(&self, name: &str) -> Option<bool> {
        self.value(name).and_then(|v| v.as_bool())
    }

    /// A boolean argument; false when neither given nor defaulted.
    pub fn bool(&self, name: &str) -> bool {
        self.opt_bool(name).unwrap_or(false)
    }

    /// An integer argument (given or default).
    pub fn int(&self, name: &str) -> Option<i64> {
        self.value(name).and_then(|v| v.as_i64())
    }

    /// A number argument (given or default).
    pub fn float(&self, name: &str) -> Option<f64> {
        self.value(name).and_then(|v| v.as_f64())
    }

    /// The raw value of an argument as given (no default).
    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.given.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtins::spec::Default;
    use serde_json::json;

    const ARGS: &[Arg] = &[
        Arg::path("path").aliases(&["dest", "name"]).required(),
        Arg::bool("follow", false).unimplemented(),
        Arg::int("timeout").default_int(300),
        Arg::str("state").choices(&["present", "absent"]),
        Arg::new("that", Kind::ListStrict),
    ];
    const SPEC: Check = Check::Spec {
        name: None,
        args: ARGS,
        common: &[],
        exclusive: &[],
    };

    fn check(args: serde_json::Value, c: Check) -> Result<Params, String> {
        Params::validate("demo", c, args.as_object().expect("object"))
    }

    #[test]
    fn aliases_and_conversions() {
        let p = check(json!({"dest": "/x", "timeout": "10", "follow": "no"}), SPEC).unwrap();
        assert_eq!(p.str("path").as_deref(), Some("/x"));
        assert_eq!(p.int("timeout"), Some(10));
        assert!(!p.bool("follow"));
        let p = check(json!({"name": "/y"}), SPEC).unwrap();
        assert_eq!(p.int("timeout"), Some(300), "default");
        assert_eq!(p.str("state"), None);
        let p = check(json!({"path": "/y", "that": "x"}), SPEC).unwrap();
        assert_eq!(p.value("that"), Some(json!(["x"])));
    }

    #[test]
    fn unknown_keys_in_ansibles_words() {
        let e = check(json!({"path": "/x", "zz": 1, "aa": 2}), SPEC).unwrap_err();
        assert_eq!(
            e,
            "Unsupported parameters for (demo) module: aa, zz. Supported parameters include: follow, path, state, that, timeout (dest, name)."
        );
        let e = check(json!({"path": "/x", "zz": 1}), Check::ValidArgs(ARGS)).unwrap_err();
        assert_eq!(e, "Invalid options for demo: zz");
        assert!(check(json!({"path": "/x", "zz": 1}), Check::Any(ARGS)).is_ok());
    }

    #[test]
    fn bad_values_before_unknown_keys() {
        let e = check(json!({"path": "/x", "timeout": "1.5", "zz": 1}), SPEC).unwrap_err();
        assert_eq!(
            e,
            "argument 'timeout' is of type str and we were unable to convert to int: \"'1.5'\" cannot be converted to an int"
        );
        let e = check(json!({"path": "/x", "state": "gone", "zz": 1}), SPEC).unwrap_err();
        assert_eq!(
            e,
            "value of state must be one of: present, absent, got: gone"
        );
        let e = check(json!({"timeout": 1}), SPEC).unwrap_err();
        assert_eq!(e, "missing required arguments: path");
        let e = check(json!({"path": "/x", "follow": "maybe"}), SPEC).unwrap_err();
        assert!(e.starts_with("argument 'follow' is of type str and we were unable to convert to bool: The value 'maybe' is not a valid boolean."), "{e}");
    }

    #[test]
    fn unimplemented_arguments_only_at_their_default() {
        assert!(check(json!({"path": "/x", "follow": false}), SPEC).is_ok());
        let e = check(json!({"path": "/x", "follow": "yes"}), SPEC).unwrap_err();
        assert_eq!(
            e,
            "demo: argument 'follow' is not supported by etcd-agent (only its default, False, is accepted)"
        );
        assert_eq!(Default::None.value(), None);
    }
}
