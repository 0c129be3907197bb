//! Documentation drift: a module's declared options (names, defaults,
//! choices, rules) checked against the argument structs they describe, so
//! the docs, the protocol's checks and the typed fields cannot disagree.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::doc::{all_options, all_rules, ArgType, OptionDoc};
use super::fields::struct_fields;
use super::{Module, SharedOptions};

/// A value that no declared choice list contains.
const NOT_A_CHOICE: &str = "not-one-of-the-choices";

/// Differences between module `M`'s declaration and its argument structs
/// (empty when they agree):
///
/// - every field is documented and every documented option is a field;
/// - every declared default deserializes into its field (with a sample
///   value for each required option), and a field without a default or
///   `required` may be omitted;
/// - every choice deserializes, a value that is not a choice is refused,
///   and a default with choices is one of them;
/// - every rule names declared options only.
pub fn doc_drift<M: Module>() -> Vec<String> {
    let mut problems = Vec::new();
    names(
        M::NAME,
        struct_fields::<M::Args>(),
        M::OPTIONS,
        &mut problems,
    );
    names(
        M::Shared::GROUP,
        struct_fields::<M::Shared>(),
        M::Shared::OPTIONS,
        &mut problems,
    );
    values::<M::Args>(M::NAME, M::OPTIONS, &mut problems);
    values::<M::Shared>(M::Shared::GROUP, M::Shared::OPTIONS, &mut problems);
    let options = all_options::<M>();
    for rule in all_rules::<M>() {
        for name in rule.names() {
            if !options.iter().any(|o| o.name == name) {
                problems.push(format!(
                    "{}: rule `{}` names `{name}`, which is not an option",
                    M::NAME,
                    rule.describe()
                ));
            }
        }
    }
    problems
}

fn names(what: &str, fields: &[&str], docs: &[OptionDoc], problems: &mut Vec<String>) {
    for f in fields {
        if !docs.iter().any(|o| o.name == *f) {
            problems.push(format!("{what}: field `{f}` is not documented"));
        }
    }
    for o in docs {
        if !fields.contains(&o.name) {
            problems.push(format!(
                "{what}: documented option `{}` is not a field",
                o.name
            ));
        }
    }
}

/// A value of the option's declared type, for a required option while
/// another one is checked.
fn sample(doc: &OptionDoc) -> Value {
    if let Some(first) = doc.choices.first() {
        return Value::String((*first).to_string());
    }
    match doc.ty {
        ArgType::Str | ArgType::Raw => Value::String("x".into()),
        ArgType::Path => Value::String("/x".into()),
        ArgType::Int | ArgType::Float => Value::from(1),
        ArgType::Bool => Value::Bool(true),
        ArgType::List => Value::Array(vec![Value::String("x".into())]),
        ArgType::Dict => Value::Object(Map::new()),
    }
}

fn deserializes<T: DeserializeOwned>(map: &Map<String, Value>) -> Result<(), String> {
    serde_json::from_value::<T>(Value::Object(map.clone()))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Defaults and choices of `docs` against struct `T`, problems into `problems`.
pub(super) fn values<T: DeserializeOwned>(
    what: &str,
    docs: &[OptionDoc],
    problems: &mut Vec<String>,
) {
    // What the protocol hands over when the user gives only the required options.
    let mut base = Map::new();
    for o in docs {
        if o.default.is_some() {
            base.insert(o.name.to_string(), o.default_value());
        } else if o.required {
            base.insert(o.name.to_string(), sample(o));
        }
    }
    if let Err(e) = deserializes::<T>(&base) {
        problems.push(format!(
            "{what}: the declared defaults (and a sample of each required option) do not deserialize: {e}"
        ));
        return;
    }
    for o in docs.iter().filter(|o| !o.choices.is_empty()) {
        for choice in o.choices {
            let mut map = base.clone();
            map.insert(o.name.to_string(), Value::String((*choice).to_string()));
            if let Err(e) = deserializes::<T>(&map) {
                problems.push(format!(
                    "{what}: choice `{choice}` of `{}` does not deserialize: {e}",
                    o.name
                ));
            }
        }
        let mut map = base.clone();
        map.insert(o.name.to_string(), Value::String(NOT_A_CHOICE.into()));
        if deserializes::<T>(&map).is_ok() {
            problems.push(format!(
                "{what}: `{}` accepts a value that is not one of its choices",
                o.name
            ));
        }
        let default = o.default_value();
        if o.default.is_some() && !o.choices.iter().any(|c| default == *c) {
            problems.push(format!(
                "{what}: the default {default} of `{}` is not one of its choices",
                o.name
            ));
        }
    }
}
