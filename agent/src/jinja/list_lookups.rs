//! Ansible's lookups that only reshape their terms, for `query()`/`lookup()` and the
//! `with_<lookup>` loops: `list`, `items`, `dict`, `indexed_items`, `together`, `nested`,
//! `subelements`. Each takes the templated terms as Ansible passes them (`with_X: terms` is
//! `query('X', *terms)` when the terms are a list, `query('X', terms)` otherwise).

use serde_json::{json, Map, Value};

/// The names handled here.
pub const NAMES: &[&str] = &[
    "list",
    "items",
    "dict",
    "indexed_items",
    "together",
    "nested",
    "subelements",
];

/// Whether `name` (maybe `ansible.builtin.`-qualified) is one of [`NAMES`]; its short name.
pub fn short(name: &str) -> Option<&str> {
    let short = name.strip_prefix("ansible.builtin.").unwrap_or(name);
    NAMES.contains(&short).then_some(short)
}

/// One level of lists flattened (the `items` lookup).
fn flatten_once(terms: &[Value]) -> Vec<Value> {
    terms
        .iter()
        .flat_map(|t| match t {
            Value::Array(inner) => inner.clone(),
            other => vec![other.clone()],
        })
        .collect()
}

fn lists(name: &str, terms: &[Value]) -> Result<Vec<Vec<Value>>, String> {
    terms
        .iter()
        .map(|t| match t {
            Value::Array(a) => Ok(a.clone()),
            other => Ok(vec![other.clone()]),
        })
        .collect::<Result<Vec<_>, String>>()
        .and_then(|l| {
            if l.is_empty() {
                Err(format!(
                    "with_{name} requires at least one element in each list"
                ))
            } else {
                Ok(l)
            }
        })
}

/// Runs lookup `name` (a short name from [`NAMES`]) over `terms`, with `options` (keyword
/// arguments, `subelements`' `skip_missing`).
pub fn run(
    name: &str,
    terms: &[Value],
    options: &Map<String, Value>,
) -> Result<Vec<Value>, String> {
    match name {
        "list" => Ok(terms.to_vec()),
        "items" => Ok(flatten_once(terms)),
        "dict" => {
            let mut out = Vec::new();
            for t in terms {
                let Value::Object(m) = t else {
                    let kind = match t {
                        Value::Array(_) => "list",
                        Value::String(_) => "str",
                        Value::Bool(_) => "bool",
                        Value::Null => "NoneType",
                        Value::Number(n) if n.is_f64() => "float",
                        _ => "int",
                    };
                    let shown = match t {
                        Value::String(s) => s.clone(),
                        other => crate::jinja::value::python_repr(other),
                    };
                    return Err(format!(
                        "the 'dict' lookup plugin expects a dictionary, got '{shown}' of type <class '{kind}'>)"
                    ));
                };
                out.extend(m.iter().map(|(k, v)| json!({"key": k, "value": v})));
            }
            Ok(out)
        }
        "indexed_items" => Ok(flatten_once(terms)
            .into_iter()
            .enumerate()
            .map(|(i, v)| json!([i, v]))
            .collect()),
        "together" => {
            let l = lists(name, terms)?;
            let longest = l.iter().map(Vec::len).max().unwrap_or(0);
            Ok((0..longest)
                .map(|i| {
                    Value::Array(
                        l.iter()
                            .map(|x| x.get(i).cloned().unwrap_or(Value::Null))
                            .collect(),
                    )
                })
                .collect())
        }
        "nested" => {
            let l = lists(name, terms)?;
            let mut out: Vec<Vec<Value>> = vec![Vec::new()];
            for list in &l {
                out = out
                    .iter()
                    .flat_map(|prefix| {
                        list.iter().map(move |v| {
                            let mut p = prefix.clone();
                            p.push(v.clone());
                            p
                        })
                    })
                    .collect();
            }
            Ok(out.into_iter().map(Value::Array).collect())
        }
        "subelements" => subelements(terms, options),
        other => Err(format!("lookup plugin '{other}' is not a list lookup")),
    }
}

/// `subelements`: for each dict of the first term (a list, or a dict's values), each item of
/// its key named by the second term (a dotted path), as `[dict, item]`; a missing key is an
/// error unless `skip_missing` (third term or keyword).
fn subelements(terms: &[Value], options: &Map<String, Value>) -> Result<Vec<Value>, String> {
    let usage = "subelements lookup expects a list of two or three items, the first a list of dicts or a dict, the second a string pointing to the subkey";
    let (Some(first), Some(Value::String(path))) = (terms.first(), terms.get(1)) else {
        return Err(usage.into());
    };
    let skip_missing = match (terms.get(2), options.get("skip_missing")) {
        (Some(Value::Object(m)), _) => m
            .get("skip_missing")
            .is_some_and(crate::jinja::value::python_truth),
        (_, Some(v)) => crate::jinja::value::python_truth(v),
        _ => false,
    };
    let records: Vec<Value> = match first {
        Value::Array(a) => a.clone(),
        Value::Object(m) => m.values().cloned().collect(),
        _ => return Err(usage.into()),
    };
    let mut out = Vec::new();
    for record in records {
        let Value::Object(_) = &record else {
            return Err(usage.into());
        };
        if record
            .get("skipped")
            .is_some_and(crate::jinja::value::python_truth)
        {
            continue;
        }
        let mut cur = Some(&record);
        for part in path.split('.') {
            cur = cur.and_then(|c| c.get(part));
        }
        match cur {
            Some(Value::Array(items)) => {
                for item in items {
                    out.push(json!([record.clone(), item]));
                }
            }
            Some(_) => {
                return Err(format!(
                    "the key {path} should point to a list, got {}",
                    crate::jinja::value::python_repr(cur.unwrap_or(&Value::Null))
                ))
            }
            None if skip_missing => {}
            None => {
                return Err(format!(
                    "could not find '{path}' key in iterated item {}",
                    crate::jinja::value::python_repr(&record)
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(name: &str, terms: Value) -> Value {
        let Value::Array(t) = terms else { panic!() };
        Value::Array(run(name, &t, &Map::new()).unwrap())
    }

    #[test]
    fn reshapes_as_ansible() {
        assert_eq!(go("items", json!([[1, 2], 3])), json!([1, 2, 3]));
        assert_eq!(go("list", json!([[1, 2], 3])), json!([[1, 2], 3]));
        assert_eq!(
            go("indexed_items", json!(["a", "b"])),
            json!([[0, "a"], [1, "b"]])
        );
        assert_eq!(
            go("together", json!([[1, 2], ["a"]])),
            json!([[1, "a"], [2, null]])
        );
        assert_eq!(
            go("nested", json!([[1, 2], ["a", "b"]])),
            json!([[1, "a"], [1, "b"], [2, "a"], [2, "b"]])
        );
        assert_eq!(
            go("subelements", json!([[{"n": 1, "k": ["x", "y"]}], "k"])),
            json!([[{"n": 1, "k": ["x", "y"]}, "x"], [{"n": 1, "k": ["x", "y"]}, "y"]])
        );
        assert_eq!(
            go("dict", json!([{"a": 1}])),
            json!([{"key": "a", "value": 1}])
        );
        let missing = run("subelements", &[json!([{"n": 1}]), json!("k")], &Map::new());
        assert!(missing.unwrap_err().contains("could not find 'k'"));
        let skip = run(
            "subelements",
            &[json!([{"n": 1}]), json!("k"), json!({"skip_missing": true})],
            &Map::new(),
        );
        assert_eq!(skip.unwrap(), Vec::<Value>::new());
    }
}
