//! `-e` values: `k=v ...`, inline JSON/YAML mappings, or `@file`.

use crate::error::usage;
use crate::inventory::Vars;
use anyhow::Result;
use serde_json::Value;

/// Parses one `-e` argument.
pub fn parse(arg: &str) -> Result<Vars> {
    let arg = arg.trim();
    if let Some(path) = arg.strip_prefix('@') {
        let p = std::path::Path::new(path);
        if !p.is_file() {
            return Err(usage(format!(
                "extra vars file {path} not found (from -e @{path})"
            )));
        }
        return match crate::yaml::load_value(p)? {
            Value::Object(m) => Ok(m),
            Value::Null => Ok(Vars::new()),
            _ => Err(usage(format!("extra vars file {path} must hold a mapping"))),
        };
    }
    if arg.is_empty() {
        return Ok(Vars::new());
    }
    if arg.starts_with('{') || arg.starts_with("---") {
        let docs = crate::yaml::parse_str(arg, "-e")
            .map_err(|e| usage(format!("invalid -e value {arg:?}: {e:#}")))?;
        return match docs.first().map(|d| d.to_json()) {
            Some(Value::Object(m)) => Ok(m),
            _ => Err(usage(format!(
                "invalid -e value {arg:?}: expected a mapping"
            ))),
        };
    }
    let kv = crate::playbook::kv::parse_kv(arg, false);
    if let Some(raw) = kv.get("_raw_params") {
        return Err(usage(format!(
            "invalid -e value {:?}: expected key=value, a JSON/YAML mapping, or @file",
            crate::playbook::scalar_string(raw)
        )));
    }
    Ok(kv)
}

#[cfg(test)]
mod tests {
    use super::parse;
    use serde_json::json;

    #[test]
    fn forms() {
        assert_eq!(
            Value::Object(parse("a=1 b='x y'").unwrap()),
            json!({"a": "1", "b": "x y"})
        );
        assert_eq!(Value::Object(parse("{\"n\": 2}").unwrap()), json!({"n": 2}));
        assert!(parse("bad").is_err());
        assert!(parse("@/nonexistent/file.yml").is_err());
    }
    use serde_json::Value;
}
