//! `-e` values: `k=v ...`, inline JSON/YAML mappings, or `@file`, read by Ansible's rule
//! (`ansible.utils.vars.load_extra_vars`): an `@file` that cannot be read exits 1, text that
//! is not YAML exits 4, anything that is not a mapping (an empty file too) exits 5.

use crate::error::{usage, Fatal};
use crate::inventory::Vars;
use anyhow::Result;
use serde_json::Value;

/// Parses one `-e` argument.
pub fn parse(arg: &str) -> Result<Vars> {
    if arg.is_empty() {
        return Ok(Vars::new());
    }
    let not_a_mapping = |shown: &str| {
        usage(format!(
            "Invalid extra vars data supplied. '{shown}' could not be made into a dictionary"
        ))
    };
    if let Some(path) = arg.strip_prefix('@') {
        let p = std::path::Path::new(path);
        let shown = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        if !p.is_file() {
            return Err(Fatal::Other(format!(
                "Unable to retrieve file contents. Could not find or access '{path}' on the Ansible Controller."
            ))
            .into());
        }
        return match crate::yaml::load_value(p)? {
            Value::Object(m) => Ok(m),
            _ => Err(not_a_mapping(&format!("@{}", shown.display()))),
        };
    }
    if arg.starts_with('/') || arg.starts_with('.') {
        return Err(usage(format!(
            "Please prepend extra_vars filename '{arg}' with '@'"
        )));
    }
    if arg.starts_with('{') || arg.starts_with('[') {
        let docs = crate::yaml::parse_str(arg, "<CLI option '-e'>")?;
        return match docs.first().map(|d| d.to_json()) {
            Some(Value::Object(m)) => Ok(m),
            _ => Err(not_a_mapping(arg)),
        };
    }
    // key=value words; words without `=` become `_raw_params`, as Ansible's parse_kv has it
    Ok(crate::playbook::kv::parse_kv(arg, false))
}

#[cfg(test)]
mod tests {
    use super::parse;
    use crate::error::exit_code_of;
    use serde_json::{json, Value};

    #[test]
    fn forms_and_exit_codes() {
        assert_eq!(
            Value::Object(parse("a=1 b='x y'").unwrap()),
            json!({"a": "1", "b": "x y"})
        );
        assert_eq!(Value::Object(parse("{\"n\": 2}").unwrap()), json!({"n": 2}));
        assert_eq!(
            Value::Object(parse("bad").unwrap()),
            json!({"_raw_params": "bad"})
        );
        let code = |a: &str| exit_code_of(&parse(a).unwrap_err());
        assert_eq!(code("@/nonexistent/file.yml"), 1);
        assert_eq!(code("{bad"), 4);
        assert_eq!(code("[1]"), 5);
        assert_eq!(code("./x.yml"), 5);
    }
}
