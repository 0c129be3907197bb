//! Names templated while a play is parsed: an `import_playbook`'s file, an `import_role`'s
//! role and `tasks_from`, an `import_tasks`' file. ansible-core templates them when it loads
//! the play, before any host is known, with the variables it knows then: the play's `vars`
//! and `vars_files`, the `import_playbook`'s `vars`, the `vars` of the enclosing blocks and
//! imports, role parameters, and the extra vars. Host and group variables, facts and
//! registered results are not among them: a name that needs one is undefined, as in
//! ansible-core.

use super::Inherit;
use crate::jinja::value::{is_template, scalar_string};
use anyhow::Result;
use serde_json::{Map, Value};

/// How many times a result that is itself a template is rendered again (a variable whose
/// value names another variable: `role: "{{ r }}"`, `r: "{{ base }}_role"`).
const MAX_DEPTH: usize = 8;

/// Renders `text` with `vars` to a string; a variable whose value is a template is rendered
/// in its turn.
pub fn render(text: &str, vars: &Map<String, Value>) -> Result<String> {
    let templar = crate::jinja::Templar::new();
    let mut resolved = vars.clone();
    // variables whose values are templates, rendered against the others (a few rounds, as
    // chains are short); one that fails stays as written and fails `text` only if used
    for _ in 0..MAX_DEPTH {
        let context = minijinja::Value::from_serialize(&resolved);
        let mut changed = false;
        for (k, v) in vars {
            let Value::String(s) = v else { continue };
            if !is_template(s) {
                continue;
            }
            if let Ok(r) = templar.render_str(s, &context) {
                if resolved.get(k) != Some(&r) {
                    resolved.insert(k.clone(), r);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let context = minijinja::Value::from_serialize(&resolved);
    let rendered = templar.render_str(text, &context)?;
    Ok(scalar_string(&rendered))
}

/// The variables a name templated inside the play sees from where `inherit` is: the play's
/// (with its imports'), the enclosing blocks' and imports' `vars`, role parameters, then the
/// extra vars above all.
pub(super) fn at(inherit: &Inherit) -> Map<String, Value> {
    let (play, extra) = (*inherit.parse_vars).clone();
    // ansible-core's order: role defaults, play vars, role vars, blocks' and imports' vars,
    // role parameters, extra vars
    let mut vars = Map::new();
    if let Some(role) = &inherit.role {
        vars.extend(role.defaults.clone());
    }
    vars.extend(play);
    if let Some(role) = &inherit.role {
        vars.extend(role.vars.clone());
    }
    vars.extend(inherit.vars.clone());
    vars.extend(inherit.params.clone());
    vars.extend(extra);
    vars
}

/// `text` rendered where `inherit` is, when it is a template; `what` and `place` name it in
/// the error (`import_role name`, `file.yml:3:7`).
pub(super) fn resolve(text: &str, inherit: &Inherit, what: &str, place: &str) -> Result<String> {
    if !is_template(text) {
        return Ok(text.to_string());
    }
    render(text, &at(inherit)).map_err(|e| {
        crate::error::syntax(format!(
            "{place}: {what} {text:?} could not be templated when the play was loaded \
             (only play, import and extra vars are known then): {e:#}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chains_of_variables_resolve_and_undefined_names_fail() {
        let vars = json!({"r": "{{ base }}_role", "base": "{{ 'my' }}", "n": 3});
        let vars = vars.as_object().unwrap();
        assert_eq!(render("{{ r }}", vars).unwrap(), "my_role");
        assert_eq!(render("x{{ n + 1 }}", vars).unwrap(), "x4");
        assert!(render("{{ host_only }}", vars).is_err());
    }
}
