//! A module's deprecation as ansible-core 2.19 words it for display
//! (`get_deprecation_message_with_plugin_info`): the module's message, then when and from what
//! the feature goes.

use serde_json::Value;

/// The text after `[DEPRECATION WARNING]: ` for one entry of a result's `deprecations`
/// (`msg`, `version` or `date`, `deprecator` `{resolved_name, type}`, `collection_name`).
pub fn deprecation_message(d: &Value) -> String {
    fn text(v: Option<&Value>) -> Option<&str> {
        v.and_then(Value::as_str).filter(|s| !s.is_empty())
    }
    let msg = text(d.get("msg")).unwrap_or_default();
    let version = text(d.get("version"));
    let date = text(d.get("date"));
    let deprecator = d.get("deprecator").filter(|v| v.is_object());
    let resolved = deprecator.and_then(|p| text(p.get("resolved_name")));
    let kind = deprecator.and_then(|p| text(p.get("type")));
    let type_name = |k: &str| {
        if k == "module" {
            k.to_string()
        } else {
            format!("{k} plugin")
        }
    };
    let (collection, mut plugin) = match (resolved, kind) {
        // no plugin type: a collection (or nothing known)
        (r, None) => (
            r.map(str::to_string)
                .or_else(|| text(d.get("collection_name")).map(str::to_string)),
            String::new(),
        ),
        (Some("ansible.builtin"), Some(k)) => (
            Some("ansible.builtin".to_string()),
            format!("the {} API", type_name(k)),
        ),
        (Some(r), Some(k)) => {
            let parts: Vec<&str> = r.split('.').collect();
            let name = parts.last().copied().unwrap_or(r);
            let coll = (parts.len() > 2).then(|| parts[..2].join("."));
            (coll, format!("{} '{name}'", type_name(k)))
        }
        (None, Some(_)) => (None, String::new()),
    };
    if collection.is_some() && !plugin.is_empty() {
        plugin.push_str(" in");
    }
    let collection_fragment = match collection.as_deref() {
        Some("ansible.builtin") => "ansible-core".to_string(),
        Some(c) => format!("collection '{c}'"),
        None => String::new(),
    };
    let when = match (&collection, date, version) {
        (None, _, _) => "in the future".to_string(),
        (Some(_), Some(date), _) => format!("in a release after {date}"),
        (Some(_), None, Some(v)) => format!("version {v}"),
        (Some(_), None, None) => "in a future release".to_string(),
    };
    let from = if !plugin.is_empty() || !collection_fragment.is_empty() {
        "from"
    } else {
        ""
    };
    let removal = [
        "This feature will be removed",
        from,
        &plugin,
        &collection_fragment,
        &when,
    ]
    .iter()
    .filter(|f| !f.is_empty())
    .copied()
    .collect::<Vec<_>>()
    .join(" ")
        + ".";
    join_sentences(msg, &removal)
}

/// Two sentences, each ended with a full stop unless it ends with `.`, `!` or `?`.
fn join_sentences(first: &str, second: &str) -> String {
    let end = |s: &str| {
        let s = s.trim().to_string();
        if !s.is_empty() && !s.ends_with(['.', '!', '?']) {
            s + "."
        } else {
            s
        }
    };
    let (first, second) = (end(first), end(second));
    match (first.is_empty(), second.is_empty()) {
        (false, true) => first,
        (true, false) => second,
        _ => format!("{first} {second}").trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn worded_as_ansible_core() {
        let d = json!({"msg": "This is a deprecation.", "version": "9999.9", "collection_name": "ansible.legacy",
            "deprecator": {"resolved_name": "ansible.legacy.noisy", "type": "module"}});
        assert_eq!(
            deprecation_message(&d),
            "This is a deprecation. This feature will be removed from module 'noisy' in collection 'ansible.legacy' version 9999.9."
        );
        let d = json!({"msg": "Old", "date": "2030-01-01", "deprecator": {"resolved_name": "ns.coll", "type": null}});
        assert_eq!(
            deprecation_message(&d),
            "Old. This feature will be removed from collection 'ns.coll' in a release after 2030-01-01."
        );
        assert_eq!(
            deprecation_message(&json!({"msg": "x"})),
            "x. This feature will be removed in the future."
        );
    }
}
