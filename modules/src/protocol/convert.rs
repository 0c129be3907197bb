//! AnsibleModule's type conversions (`ansible.module_utils.common.validation`
//! `check_type_*`), applied to every supplied option by its declared
//! [`ArgType`] before the typed argument structs see it.
//!
//! - `str`: strings as they are; int, float and bool converted to their
//!   Python text (`5` → `"5"`, `true` → `"True"`) with Ansible's warning;
//!   lists and dicts refused.
//! - `path`: like `str`, then `~` and `$VAR` expanded (`os.path.expanduser(os.path.expandvars())`).
//! - `int`: whole numbers; `"10"`, `1.0`, `"1e3"` converted; `1.5`, `"abc"`
//!   and booleans refused.
//! - `float`: numbers; strings left to the duration parser (`"500ms"`);
//!   booleans, lists and dicts refused.
//! - `bool`: Ansible's `BOOLEANS` (`yes`/`no`/`on`/`off`/`true`/`false`/`y`/`n`/`t`/`f`/`1`/`0`,
//!   case-insensitive, and the numbers 1 and 0); anything else refused.
//! - `list`: lists (scalar elements as strings); a string is split on commas
//!   later; a number becomes a one-item list; booleans and dicts refused.
//! - `dict`: dicts, a JSON object string, or `k1=v1, k2=v2`.
//! - `raw`: anything.
//!
//! Booleans are refused for `int`, `float` and `list` although Python would
//! take `True` as `1`: `keep: true` is a mistake, never a count.
//!
//! No message built here contains the value of a `no_log` option.

use serde_json::{Map, Value};

use super::doc::ArgType;

/// What a refused value was; the text after "we were unable to convert to X: ".
pub struct Refusal {
    pub wanted: &'static str,
    pub detail: String,
}

/// Converts `value` (not null) of option `name` to type `ty`. Warnings go to `warnings`.
pub fn convert(
    name: &str,
    ty: ArgType,
    value: Value,
    secret: bool,
    warnings: &mut Vec<String>,
) -> Result<Value, String> {
    let type_name = py_type(&value);
    to_type(name, ty, value, secret, warnings).map_err(|r| {
        format!(
            "argument '{name}' is of type {type_name} and we were unable to convert to {}: {}",
            r.wanted, r.detail
        )
    })
}

fn to_type(
    name: &str,
    ty: ArgType,
    value: Value,
    secret: bool,
    warnings: &mut Vec<String>,
) -> Result<Value, Refusal> {
    let shown = |v: &Value| -> String {
        if secret {
            "********".to_string()
        } else {
            py_repr(v)
        }
    };
    match ty {
        ArgType::Raw => Ok(value),
        ArgType::Str => to_str(name, value, secret, warnings).map(Value::String),
        ArgType::Path => {
            let s = to_str(name, value, secret, warnings).map_err(|mut r| {
                r.wanted = "path";
                r
            })?;
            Ok(Value::String(expand_path(&s)))
        }
        ArgType::Int => {
            let refuse = |v: &Value| Refusal {
                wanted: "int",
                detail: format!("\"{}\" cannot be converted to an int", shown(v)),
            };
            let n = match &value {
                Value::Number(n) if n.is_i64() || n.is_u64() => return Ok(value),
                Value::Number(n) => n.as_f64().and_then(whole),
                Value::String(s) => parse_int(s),
                _ => None,
            };
            n.map(Value::from).ok_or_else(|| refuse(&value))
        }
        ArgType::Float => match value {
            Value::Number(_) | Value::String(_) => Ok(value),
            other => Err(Refusal {
                wanted: "float",
                detail: format!(
                    "<class '{}'> cannot be converted to a float",
                    py_type(&other)
                ),
            }),
        },
        ArgType::Bool => {
            let parsed = match &value {
                Value::Bool(_) | Value::String(_) | Value::Number(_) => bool_of(&value),
                _ => {
                    return Err(Refusal {
                        wanted: "bool",
                        detail: format!(
                            "<class '{}'> cannot be converted to a bool",
                            py_type(&value)
                        ),
                    })
                }
            };
            parsed.map(Value::Bool).ok_or_else(|| Refusal {
                wanted: "bool",
                detail: format!(
                    "The value '{}' is not a valid boolean. Valid booleans include: {VALID_BOOLEANS}",
                    if secret { "********".to_string() } else { py_str(&value) }
                ),
            })
        }
        ArgType::List => match value {
            Value::String(_) => Ok(value),
            Value::Number(_) => Ok(Value::Array(vec![Value::String(py_str(&value))])),
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(_) => Ok(item),
                    Value::Number(_) | Value::Bool(_) => Ok(Value::String(py_str(&item))),
                    other => Err(Refusal {
                        wanted: "list",
                        detail: format!(
                            "element {} is of type {}, not a string",
                            i + 1,
                            py_type(&other)
                        ),
                    }),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            other => Err(Refusal {
                wanted: "list",
                detail: format!(
                    "<class '{}'> cannot be converted to a list",
                    py_type(&other)
                ),
            }),
        },
        ArgType::Dict => match value {
            Value::Object(_) => Ok(value),
            Value::String(s) => parse_dict(&s).map(Value::Object).map_err(|e| Refusal {
                wanted: "dict",
                detail: e.to_string(),
            }),
            other => Err(Refusal {
                wanted: "dict",
                detail: format!(
                    "<class '{}'> cannot be converted to a dict",
                    py_type(&other)
                ),
            }),
        },
    }
}

/// `check_type_str` with conversion allowed, as AnsibleModule did with its
/// `string_conversion_action = warn`, minus lists and dicts.
fn to_str(
    name: &str,
    value: Value,
    secret: bool,
    warnings: &mut Vec<String>,
) -> Result<String, Refusal> {
    match value {
        Value::String(s) => Ok(s),
        Value::Bool(_) | Value::Number(_) => {
            let text = py_str(&value);
            let (from, to) = if secret {
                ("********".to_string(), "'********'".to_string())
            } else {
                (py_repr(&value), py_repr(&Value::String(text.clone())))
            };
            warnings.push(format!(
                "The value \"{name}: {from}\" (type {}) in a string field was converted to \"{name}: {to}\" (type str). If this does not look like what you expect, quote the entire value to ensure it does not change.",
                py_type(&value)
            ));
            Ok(text)
        }
        other => Err(Refusal {
            wanted: "str",
            detail: if secret {
                format!(
                    "a {} is not a string and conversion is not allowed",
                    py_type(&other)
                )
            } else {
                format!("'{other}' is not a string and conversion is not allowed")
            },
        }),
    }
}

/// Ansible's `BOOLEANS`, in a fixed order (Python prints a frozenset in hash order).
const VALID_BOOLEANS: &str =
    "'y', 'yes', 'on', '1', 'true', 't', 1, 1.0, True, 'n', 'no', 'off', '0', 'false', 'f', 0, 0.0, False";

/// A string in Ansible's `BOOLEANS` (lowercased, stripped).
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_lowercase().as_str() {
        "y" | "yes" | "on" | "1" | "true" | "t" => Some(true),
        "n" | "no" | "off" | "0" | "false" | "f" => Some(false),
        _ => None,
    }
}

/// A boolean, string or number read as one of Ansible's `BOOLEANS`.
pub fn bool_of(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => parse_bool(s),
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Some(true),
            Some(0.0) => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// `int(decimal.Decimal(s))` when it has no decimal part.
fn parse_int(s: &str) -> Option<i64> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i64>() {
        return Some(n);
    }
    // Decimal accepts "1.0", "1e3", "+5"; Rust's f64 parser also takes
    // "inf"/"nan", which `whole` refuses.
    if !t
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        return None;
    }
    t.parse::<f64>().ok().and_then(whole)
}

fn whole(x: f64) -> Option<i64> {
    (x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e18).then_some(x as i64)
}

/// `check_type_dict` for strings: a JSON object, or `k1=v1, k2=v2` / `k1=v1 k2=v2`.
fn parse_dict(s: &str) -> Result<Map<String, Value>, &'static str> {
    if s.starts_with('{') {
        return match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err("unable to evaluate string as dictionary"),
        };
    }
    if !s.contains('=') {
        return Err("dictionary requested, could not parse JSON or key=value");
    }
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quote: Option<char> = None;
    let mut escape = false;
    for c in s.trim().chars() {
        if escape {
            field.push(c);
            escape = false;
        } else if c == '\\' {
            escape = true;
        } else if quote.is_none() && (c == '\'' || c == '"') {
            quote = Some(c);
        } else if quote == Some(c) {
            quote = None;
        } else if quote.is_none() && (c == ',' || c == ' ') {
            if !field.is_empty() {
                fields.push(std::mem::take(&mut field));
            }
        } else {
            field.push(c);
        }
    }
    if !field.is_empty() {
        fields.push(field);
    }
    fields
        .into_iter()
        .map(|f| {
            f.split_once('=')
                .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                .ok_or("unable to evaluate string in the \"key=value\" format as dictionary")
        })
        .collect()
}

/// `os.path.expanduser(os.path.expandvars(s))`.
pub fn expand_path(s: &str) -> String {
    let s = expand_vars(s);
    let Some(rest) = s.strip_prefix('~') else {
        return s;
    };
    let (user, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let home = if user.is_empty() {
        std::env::var("HOME").ok().or_else(|| home_of(None))
    } else {
        home_of(Some(user))
    };
    match home {
        Some(home) => {
            let expanded = format!("{}{tail}", home.trim_end_matches('/'));
            if expanded.is_empty() {
                "/".into()
            } else {
                expanded
            }
        }
        None => s,
    }
}

/// The home directory from the password database (the current user's when `None`).
fn home_of(user: Option<&str>) -> Option<String> {
    let name;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 16384];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: buffers are valid for the calls; the result points into `pwd`/`buf`.
    let rc = unsafe {
        match user {
            Some(u) => {
                name = std::ffi::CString::new(u).ok()?;
                libc::getpwnam_r(
                    name.as_ptr(),
                    &mut pwd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    &mut out,
                )
            }
            None => libc::getpwuid_r(
                libc::getuid(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut out,
            ),
        }
    };
    if rc != 0 || out.is_null() || pwd.pw_dir.is_null() {
        return None;
    }
    // SAFETY: pw_dir is a NUL-terminated string inside `buf`.
    let dir = unsafe { std::ffi::CStr::from_ptr(pwd.pw_dir) };
    Some(dir.to_string_lossy().into_owned())
}

/// `os.path.expandvars`: `$NAME` and `${NAME}` replaced when NAME is set.
fn expand_vars(s: &str) -> String {
    if !s.contains('$') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match (name.is_empty(), std::env::var(name)) {
            (false, Ok(v)) => {
                out.push_str(&v);
                rest = &after[consumed..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Python's type name of a JSON value.
pub fn py_type(v: &Value) -> &'static str {
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

/// Python's `str()` of a scalar (`True`, `1.0`, `1e+16`); JSON text otherwise.
pub fn py_str(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => match n.as_f64() {
            Some(x) if n.is_f64() => py_float(x),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Python's `repr()` of a scalar.
fn py_repr(v: &Value) -> String {
    match v {
        Value::String(s) if s.contains('\'') && !s.contains('"') => format!("\"{s}\""),
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        other => py_str(other),
    }
}

fn py_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    let a = x.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        let s = format!("{x:e}");
        if let Some((mantissa, exp)) = s.split_once('e') {
            let exp: i32 = exp.parse().unwrap_or(0);
            let sign = if exp < 0 { '-' } else { '+' };
            return format!("{mantissa}e{sign}{:02}", exp.abs());
        }
        return s;
    }
    let s = format!("{x}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// Every scalar inside `v` as text (JSON and Python forms), for masking. A
/// string with blanks or control characters at its ends counts trimmed too:
/// whatever reads it (an auth header, a file) may have trimmed it.
pub fn leaves(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Null => {}
        Value::String(s) => {
            out.push(s.clone());
            let trimmed = s.trim_matches(|c: char| c.is_whitespace() || c.is_control());
            if trimmed.len() != s.len() && !trimmed.is_empty() {
                out.push(trimmed.to_string());
            }
        }
        Value::Array(items) => items.iter().for_each(|i| leaves(i, out)),
        Value::Object(map) => map.values().for_each(|i| leaves(i, out)),
        scalar => {
            out.push(scalar.to_string());
            out.push(py_str(scalar));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_text_of_numbers() {
        assert_eq!(py_str(&json!(1.0)), "1.0");
        assert_eq!(py_str(&json!(1.5)), "1.5");
        assert_eq!(py_str(&json!(1e16)), "1e+16");
        assert_eq!(py_str(&json!(0.00001)), "1e-05");
        assert_eq!(py_str(&json!(12345678)), "12345678");
        assert_eq!(py_str(&json!(true)), "True");
    }

    #[test]
    fn secret_leaves_count_trimmed_too() {
        let mut out = Vec::new();
        leaves(&json!(["s3cret\u{0}", " pw ", "x", 7]), &mut out);
        assert_eq!(out, ["s3cret\u{0}", "s3cret", " pw ", "pw", "x", "7", "7"]);
    }

    #[test]
    fn dict_strings_parse_like_ansible() {
        let d = parse_dict("a=1, b='x y' c=\"z\"").unwrap();
        assert_eq!(Value::Object(d), json!({"a": "1", "b": "x y", "c": "z"}));
        assert!(parse_dict("a=1, b").is_err());
        assert_eq!(
            Value::Object(parse_dict("{\"a\": 1}").unwrap()),
            json!({"a": 1})
        );
    }

    #[test]
    fn vars_and_home_expand() {
        std::env::set_var("ETCD_AGENT_CONVERT_TEST", "v");
        assert_eq!(
            expand_vars("/a/$ETCD_AGENT_CONVERT_TEST/${ETCD_AGENT_CONVERT_TEST}x"),
            "/a/v/vx"
        );
        assert_eq!(
            expand_vars("/a/$NOT_SET_ETCD_AGENT/$"),
            "/a/$NOT_SET_ETCD_AGENT/$"
        );
        let home = std::env::var("HOME").unwrap();
        assert_eq!(
            expand_path("~/x"),
            format!("{}/x", home.trim_end_matches('/'))
        );
        assert_eq!(expand_path("/x~"), "/x~");
        assert_eq!(expand_path("~no-such-user-here/x"), "~no-such-user-here/x");
    }
}
