//! Ansible's lookups for templates: `lookup()`, `query()`/`q()` with the `env` and `file`
//! plugins. (`with_sequence`'s own parser is [`super::sequence`].)

use minijinja::value::Rest;
use minijinja::{Environment, Error, ErrorKind, State, Value as JValue};
use serde_json::Value;

fn op_err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// Registers `lookup`, `query` and `q` into `env`.
pub fn register(env: &mut Environment<'static>) {
    env.add_function("lookup", lookup);
    env.add_function("query", query);
    env.add_function("q", query);
}

fn lookup_values(state: &State, args: &[JValue]) -> Result<Vec<Value>, Error> {
    let Some(kind) = args.first().and_then(|a| a.as_str()) else {
        return Err(op_err("lookup needs a plugin name"));
    };
    let terms: Vec<String> = args[1..]
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    let mut out = Vec::new();
    match kind {
        "env" | "ansible.builtin.env" => {
            for t in terms {
                out.push(Value::String(std::env::var(&t).unwrap_or_default()));
            }
        }
        "file" | "ansible.builtin.file" => {
            let base = state
                .lookup("playbook_dir")
                .and_then(|v| v.as_str().map(std::path::PathBuf::from))
                .unwrap_or_else(|| std::path::PathBuf::from("."));
            for t in terms {
                let p = std::path::Path::new(&t);
                let candidates = if p.is_absolute() {
                    vec![p.to_path_buf()]
                } else {
                    vec![base.join("files").join(p), base.join(p)]
                };
                let found = candidates.iter().find(|c| c.is_file()).ok_or_else(|| {
                    op_err(format!(
                        "The 'file' lookup had an issue accessing the file '{t}'"
                    ))
                })?;
                let text = std::fs::read_to_string(found)
                    .map_err(|e| op_err(format!("lookup('file', '{t}'): {e}")))?;
                out.push(Value::String(text.trim_end().to_string()));
            }
        }
        other => {
            return Err(op_err(format!(
                "lookup plugin '{other}' is not supported by etcd-agent (env, file)"
            )))
        }
    }
    Ok(out)
}

fn lookup(state: &State, args: Rest<JValue>) -> Result<JValue, Error> {
    let values = lookup_values(state, &args)?;
    Ok(match values.len() {
        1 => JValue::from_serialize(&values[0]),
        _ => JValue::from(
            values
                .iter()
                .map(super::value::scalar_string)
                .collect::<Vec<_>>()
                .join(","),
        ),
    })
}

fn query(state: &State, args: Rest<JValue>) -> Result<JValue, Error> {
    Ok(JValue::from_serialize(lookup_values(state, &args)?))
}
