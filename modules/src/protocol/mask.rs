//! `no_log` masking: secret values never leave the module in its result.

use serde_json::{Map, Value};

/// What Ansible shows in `invocation.module_args` for a `no_log` option.
pub const NO_LOG_PLACEHOLDER: &str = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER";

/// Replaces every occurrence of a secret value anywhere in the result
/// (keys and strings, as Ansible's `remove_values` does) with `********`.
pub fn remove_values(value: Value, secrets: &[String]) -> Value {
    if secrets.is_empty() {
        return value;
    }
    match value {
        Value::String(s) => Value::String(mask_str(s, secrets)),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| remove_values(v, secrets))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (mask_str(k, secrets), remove_values(v, secrets)))
                .collect::<Map<_, _>>(),
        ),
        other => other,
    }
}

fn mask_str(mut s: String, secrets: &[String]) -> String {
    for secret in secrets {
        if s.contains(secret.as_str()) {
            s = s.replace(secret.as_str(), "********");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_removed_from_nested_strings_and_keys() {
        let result = json!({"msg": "auth failed for s3cret", "list": ["x s3cret"], "s3cret": 1});
        let masked = remove_values(result, &["s3cret".into()]);
        assert_eq!(
            masked,
            json!({"msg": "auth failed for ********", "list": ["x ********"], "********": 1})
        );
    }
}
