//! Rules across options, declared on a module ([`Module::RULES`](super::Module::RULES))
//! like AnsibleModule's `mutually_exclusive`, `required_one_of`,
//! `required_together`, `required_if` and `required_by`, plus `only_if`
//! (options that apply to some values of another option only), and
//! enforced by the protocol with Ansible's messages before the module runs.
//!
//! As in AnsibleModule, mutual exclusion and `only_if` look at what the
//! user gave; the other rules look at the options with their defaults.
//! An explicit `null` counts as not given.

use serde_json::{Map, Value};

/// One rule across a module's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// At most one of these may be given.
    MutuallyExclusive(&'static [&'static str]),
    /// At least one of these must be set.
    RequiredOneOf(&'static [&'static str]),
    /// Either all or none of these are set.
    RequiredTogether(&'static [&'static str]),
    /// When `option` is `value`, `requires` must be set: all of them, or
    /// at least one with `any`.
    RequiredIf {
        /// The option whose value triggers the rule (`state`).
        option: &'static str,
        /// The value that triggers it (`present`).
        value: &'static str,
        /// The options then required.
        requires: &'static [&'static str],
        /// One of `requires` is enough.
        any: bool,
    },
    /// When `option` is set, `requires` must be set too.
    RequiredBy {
        /// The option that needs others.
        option: &'static str,
        /// The options it needs.
        requires: &'static [&'static str],
    },
    /// `options` may be given only while `option` is one of `values`.
    OnlyIf {
        /// The option that decides (`state`).
        option: &'static str,
        /// Its values for which `options` apply.
        values: &'static [&'static str],
        /// The options that apply only then.
        options: &'static [&'static str],
    },
}

impl Rule {
    /// AnsibleModule's `mutually_exclusive` group.
    pub const fn mutually_exclusive(options: &'static [&'static str]) -> Rule {
        Rule::MutuallyExclusive(options)
    }

    /// AnsibleModule's `required_one_of` group.
    pub const fn required_one_of(options: &'static [&'static str]) -> Rule {
        Rule::RequiredOneOf(options)
    }

    /// AnsibleModule's `required_together` group.
    pub const fn required_together(options: &'static [&'static str]) -> Rule {
        Rule::RequiredTogether(options)
    }

    /// AnsibleModule's `required_if` entry requiring all of `requires`.
    pub const fn required_if(
        option: &'static str,
        value: &'static str,
        requires: &'static [&'static str],
    ) -> Rule {
        Rule::RequiredIf {
            option,
            value,
            requires,
            any: false,
        }
    }

    /// AnsibleModule's `required_if` entry with `is_one_of`: any of `requires`.
    pub const fn required_if_any(
        option: &'static str,
        value: &'static str,
        requires: &'static [&'static str],
    ) -> Rule {
        Rule::RequiredIf {
            option,
            value,
            requires,
            any: true,
        }
    }

    /// AnsibleModule's `required_by` entry.
    pub const fn required_by(option: &'static str, requires: &'static [&'static str]) -> Rule {
        Rule::RequiredBy { option, requires }
    }

    /// `options` apply only while `option` is one of `values`.
    pub const fn only_if(
        option: &'static str,
        values: &'static [&'static str],
        options: &'static [&'static str],
    ) -> Rule {
        Rule::OnlyIf {
            option,
            values,
            options,
        }
    }

    /// Every option name the rule mentions.
    pub fn names(&self) -> Vec<&'static str> {
        match *self {
            Rule::MutuallyExclusive(o) | Rule::RequiredOneOf(o) | Rule::RequiredTogether(o) => {
                o.to_vec()
            }
            Rule::RequiredIf {
                option, requires, ..
            }
            | Rule::RequiredBy { option, requires } => std::iter::once(option)
                .chain(requires.iter().copied())
                .collect(),
            Rule::OnlyIf {
                option, options, ..
            } => std::iter::once(option)
                .chain(options.iter().copied())
                .collect(),
        }
    }

    /// The rule as one sentence, for `--help` and the docs' notes.
    pub fn describe(&self) -> String {
        match *self {
            Rule::MutuallyExclusive(o) => {
                format!("At most one of {} may be given.", o.join(", "))
            }
            Rule::RequiredOneOf(o) => format!("One of {} is required.", o.join(", ")),
            Rule::RequiredTogether(o) => {
                format!("{} must be given together.", o.join(", "))
            }
            Rule::RequiredIf {
                option,
                value,
                requires,
                any,
            } => format!(
                "With {option}={value}, {} of {} required.",
                if any { "one" } else { "all" },
                requires.join(", ") + if any { " is" } else { " are" }
            ),
            Rule::RequiredBy { option, requires } => {
                format!("{option} requires {}.", requires.join(", "))
            }
            Rule::OnlyIf {
                option,
                values,
                options,
            } => {
                let when: Vec<String> = values.iter().map(|v| format!("{option}={v}")).collect();
                format!("{} only with {}.", options.join(", "), when.join(" or "))
            }
        }
    }
}

/// Whether `name` is set (present and not null) in `params`.
fn set(params: &Map<String, Value>, name: &str) -> bool {
    params.get(name).is_some_and(|v| !v.is_null())
}

/// A scalar option value as text, for comparing with a rule's value.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Mutual exclusion, on what the user gave (before defaults).
pub fn check_given(rules: &[Rule], given: &Map<String, Value>) -> Result<(), String> {
    let clashes: Vec<String> = rules
        .iter()
        .filter_map(|rule| match rule {
            Rule::MutuallyExclusive(group) => {
                (group.iter().filter(|o| set(given, o)).count() > 1).then(|| group.join("|"))
            }
            _ => None,
        })
        .collect();
    if clashes.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "parameters are mutually exclusive: {}",
            clashes.join(", ")
        ))
    }
}

/// The other rules, in AnsibleModule's order (required_together,
/// required_one_of, required_if, required_by), then `only_if`. `filled`
/// holds the options with their defaults, `given` only what the user gave.
pub fn check_filled(
    rules: &[Rule],
    given: &Map<String, Value>,
    filled: &Map<String, Value>,
) -> Result<(), String> {
    for rule in rules {
        if let Rule::RequiredTogether(group) = rule {
            let count = group.iter().filter(|o| set(filled, o)).count();
            if count > 0 && count < group.len() {
                return Err(format!(
                    "parameters are required together: {}",
                    group.join(", ")
                ));
            }
        }
    }
    for rule in rules {
        if let Rule::RequiredOneOf(group) = rule {
            if !group.iter().any(|o| set(filled, o)) {
                return Err(format!(
                    "one of the following is required: {}",
                    group.join(", ")
                ));
            }
        }
    }
    for rule in rules {
        if let Rule::RequiredIf {
            option,
            value,
            requires,
            any,
        } = *rule
        {
            if filled.get(option).and_then(text).as_deref() != Some(value) {
                continue;
            }
            let missing: Vec<&str> = requires
                .iter()
                .copied()
                .filter(|o| !set(filled, o))
                .collect();
            let fails = if any {
                missing.len() == requires.len()
            } else {
                !missing.is_empty()
            };
            if fails {
                return Err(format!(
                    "{option} is {value} but {} of the following are missing: {}",
                    if any { "any" } else { "all" },
                    missing.join(", ")
                ));
            }
        }
    }
    for rule in rules {
        if let Rule::RequiredBy { option, requires } = *rule {
            if !set(filled, option) {
                continue;
            }
            let missing: Vec<&str> = requires
                .iter()
                .copied()
                .filter(|o| !set(filled, o))
                .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "missing parameter(s) required by '{option}': {}",
                    missing.join(", ")
                ));
            }
        }
    }
    check_only_if(rules, given, filled)
}

/// Options given although the deciding option has another value, gathered
/// per deciding option: `force, cluster cannot be used with state=status`.
fn check_only_if(
    rules: &[Rule],
    given: &Map<String, Value>,
    filled: &Map<String, Value>,
) -> Result<(), String> {
    let mut misplaced: Vec<(&str, String, Vec<&str>)> = Vec::new();
    for rule in rules {
        let Rule::OnlyIf {
            option,
            values,
            options,
        } = *rule
        else {
            continue;
        };
        let current = filled.get(option).and_then(text).unwrap_or_default();
        if values.contains(&current.as_str()) {
            continue;
        }
        let wrong = options.iter().copied().filter(|o| set(given, o));
        match misplaced.iter_mut().find(|(o, _, _)| *o == option) {
            Some((_, _, names)) => names.extend(wrong),
            None => misplaced.push((option, current, wrong.collect())),
        }
    }
    match misplaced
        .into_iter()
        .find(|(_, _, names)| !names.is_empty())
    {
        Some((option, value, names)) => Err(format!(
            "{} cannot be used with {option}={value}",
            names.join(", ")
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test maps are objects"),
        }
    }

    const RULES: &[Rule] = &[
        Rule::mutually_exclusive(&["a", "b"]),
        Rule::required_together(&["c", "d"]),
        Rule::required_one_of(&["a", "b", "e"]),
        Rule::required_if("state", "present", &["name", "url"]),
        Rule::required_if_any("state", "absent", &["name", "id"]),
        Rule::required_by("password", &["user"]),
        Rule::only_if("state", &["present"], &["url"]),
        Rule::only_if("state", &["absent"], &["force"]),
    ];

    fn check(given: Value, defaults: Value) -> Result<(), String> {
        let given = map(given);
        let mut filled = map(defaults);
        filled.extend(given.clone());
        check_given(RULES, &given)?;
        check_filled(RULES, &given, &filled)
    }

    #[test]
    fn each_rule_refuses_in_ansibles_words() {
        let present = json!({"state": "present"});
        for (given, msg) in [
            (
                json!({"a": 1, "b": 2}),
                "parameters are mutually exclusive: a|b",
            ),
            (
                json!({"a": 1, "c": 1}),
                "parameters are required together: c, d",
            ),
            (
                json!({"name": "x", "url": "u"}),
                "one of the following is required: a, b, e",
            ),
            (
                json!({"a": 1, "name": "x"}),
                "state is present but all of the following are missing: url",
            ),
            (
                json!({"a": 1, "state": "absent"}),
                "state is absent but any of the following are missing: name, id",
            ),
            (
                json!({"a": 1, "name": "x", "url": "u", "password": "p"}),
                "missing parameter(s) required by 'password': user",
            ),
            (
                json!({"a": 1, "state": "absent", "id": 1, "url": "u", "force": true}),
                "url cannot be used with state=absent",
            ),
            (
                json!({"a": 1, "state": "other", "url": "u", "force": true}),
                "url, force cannot be used with state=other",
            ),
        ] {
            assert_eq!(
                check(given.clone(), present.clone()),
                Err(msg.to_string()),
                "{given}"
            );
        }
    }

    #[test]
    fn satisfied_rules_and_nulls_pass() {
        let present = json!({"state": "present"});
        for given in [
            json!({"a": 1, "name": "x", "url": "u"}),
            json!({"a": 1, "b": null, "name": "x", "url": "u", "c": 1, "d": 2}),
            json!({"e": 1, "state": "absent", "id": 5, "force": true, "url": null}),
            json!({"e": 1, "state": "absent", "name": "n", "password": "p", "user": "u"}),
        ] {
            assert_eq!(check(given.clone(), present.clone()), Ok(()), "{given}");
        }
    }

    #[test]
    fn rules_describe_themselves_and_name_their_options() {
        assert_eq!(
            RULES[4].describe(),
            "With state=absent, one of name, id is required."
        );
        assert_eq!(RULES[6].describe(), "url only with state=present.");
        assert_eq!(RULES[5].names(), ["password", "user"]);
    }
}
