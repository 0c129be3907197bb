//! Templated `tags:` (`tags: "{{ role_tag }}"`): ansible-core templates tags before matching
//! `--tags`/`--skip-tags`, with the play's `vars` and the extra vars (a task's own `vars` are
//! not defined there). Selection here happens before any host runs.

use crate::jinja::value::{is_template, scalar_string};
use crate::jinja::Templar;
use serde_json::{Map, Value};

/// The tags with every templated one rendered (a list result gives one tag per item, text is
/// split on commas); `layers` are variable maps, lowest precedence first. A tag whose template
/// fails is kept as written (it then matches only itself).
pub fn render(tags: &[String], layers: &[&Map<String, Value>], templar: &Templar) -> Vec<String> {
    if !tags.iter().any(|t| is_template(t)) {
        return tags.to_vec();
    }
    let mut merged = Map::new();
    for layer in layers {
        for (k, v) in *layer {
            merged.insert(k.clone(), v.clone());
        }
    }
    // variables that hold templates themselves, rendered once against the others
    let base = minijinja::Value::from_serialize(&merged);
    let rendered_vars = templar.render_value(&Value::Object(merged.clone()), &base);
    let ctx =
        minijinja::Value::from_serialize(rendered_vars.as_ref().unwrap_or(&Value::Object(merged)));
    let mut out = Vec::new();
    for tag in tags {
        if !is_template(tag) {
            out.push(tag.clone());
            continue;
        }
        match templar.render_str(tag, &ctx) {
            Ok(Value::Array(items)) => out.extend(items.iter().map(scalar_string)),
            Ok(other) => out.extend(
                scalar_string(&other)
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty()),
            ),
            Err(_) => out.push(tag.clone()),
        }
    }
    out
}
