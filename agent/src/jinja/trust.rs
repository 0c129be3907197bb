//! Which text is trusted as a template or an expression: text the playbook's author wrote.
//!
//! ansible-core 2.19 tags every string it loads from the playbook, roles, inventory, vars files
//! and `-e` as `TrustedAsTemplate`; the tag travels with the string (through registered
//! results, loop items, `set_fact`), and anything made at run time (a template's output, a
//! module's result, a lookup's answer) has none. A condition evaluates text as an expression,
//! and `debug: var` a rendered name, only when it carries the tag.
//!
//! The agent's values are plain JSON, so it judges by content instead of provenance: the
//! loaders remember every string scalar of those sources here (never an `!unsafe` or vaulted
//! one), and text is trusted when it is one of them. A host's output is therefore evaluated
//! only when it is, character for character, text the author wrote; and a template's output
//! is trusted only then (ansible-core: never).
//!
//! A leaf: it imports nothing from the crate.

use std::collections::HashSet;
use std::sync::{LazyLock, RwLock};

static TRUSTED: LazyLock<RwLock<HashSet<String>>> = LazyLock::new(Default::default);

/// Remembers `text` as written by the playbook's author (a string scalar of a playbook, role,
/// inventory, vars file or `-e`).
pub fn remember(text: &str) {
    if text.is_empty() || is_trusted(text) {
        return;
    }
    if let Ok(mut set) = TRUSTED.write() {
        set.insert(text.to_string());
    }
}

/// Remembers every string inside `v` (see [`remember`]).
pub fn remember_value(v: &serde_json::Value) {
    match v {
        serde_json::Value::String(s) => remember(s),
        serde_json::Value::Array(items) => items.iter().for_each(remember_value),
        serde_json::Value::Object(m) => m.values().for_each(remember_value),
        _ => {}
    }
}

/// Whether `text` is trusted: text the playbook's author wrote (see the module docs).
pub fn is_trusted(text: &str) -> bool {
    TRUSTED.read().is_ok_and(|set| set.contains(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_remembered_text_is_trusted() {
        assert!(!is_trusted("trust-test: 7 == 7"));
        remember("trust-test: 7 == 7");
        assert!(is_trusted("trust-test: 7 == 7"));
        assert!(!is_trusted("trust-test: 7 == 7 "));
        remember_value(&serde_json::json!({"a": ["trust-test: nested"]}));
        assert!(is_trusted("trust-test: nested"));
    }
}
