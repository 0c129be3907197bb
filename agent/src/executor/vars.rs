//! Variables for one host and task, by Ansible's precedence, plus magic variables.

use crate::inventory::Vars;
use crate::jinja::value::{is_template, unsafe_text};
use crate::jinja::Templar;
use minijinja::Value as JValue;
use serde_json::Value;
use std::collections::BTreeMap;

/// The placeholder behind `omit`: arguments equal to it are dropped.
pub const OMIT: &str = "__omit_place_holder__etcd_agent__";

/// Template context for one host: variables by name (cheap to clone and extend).
#[derive(Clone, Default)]
pub struct Context {
    map: BTreeMap<String, JValue>,
    /// Templated variables that could not be rendered yet (an undefined name in them), as
    /// written: a loop's variables may define what they need (see
    /// [`Context::resolve_deferred`]).
    deferred: std::sync::Arc<Vec<(String, Value)>>,
}

impl Context {
    /// Sets a variable from data.
    pub fn set(&mut self, key: &str, v: &Value) {
        self.map.insert(key.to_string(), JValue::from_serialize(v));
    }

    /// Sets a variable from a template value.
    pub fn set_value(&mut self, key: &str, v: JValue) {
        self.map.insert(key.to_string(), v);
    }

    /// The context as one template value.
    pub fn value(&self) -> JValue {
        JValue::from_iter(self.map.iter().map(|(k, v)| (k.clone(), v.clone())))
    }

    /// Renders the deferred variables again now that more is defined (a loop's item and
    /// index), as Ansible templates variables lazily where a task uses them: each one that
    /// renders is set (chains resolve in any order), the others stay undefined.
    pub fn resolve_deferred(&mut self, templar: &Templar) {
        if self.deferred.is_empty() {
            return;
        }
        let mut left: Vec<(String, Value)> = self.deferred.as_ref().clone();
        loop {
            let jv = self.value();
            let before = left.len();
            left.retain(|(k, original)| match templar.render_value(original, &jv) {
                Ok(rendered) => {
                    self.map
                        .insert(k.clone(), JValue::from_serialize(&rendered));
                    false
                }
                Err(_) => true,
            });
            if left.len() == before || left.is_empty() {
                break;
            }
        }
        if left.len() != self.deferred.len() {
            // the failures the error messages name are those still unresolved
            if let Some(failed) = self.map.get(crate::jinja::FAILED_VARS_KEY).cloned() {
                let still: BTreeMap<String, JValue> = left
                    .iter()
                    .filter_map(|(k, _)| failed.get_attr(k).ok().map(|v| (k.clone(), v)))
                    .filter(|(_, v)| !v.is_undefined())
                    .collect();
                self.map.insert(
                    crate::jinja::FAILED_VARS_KEY.to_string(),
                    JValue::from_serialize(&still),
                );
            }
            self.deferred = std::sync::Arc::new(left);
        }
    }
}

/// True when a value holds Jinja markup anywhere inside.
pub fn has_template(v: &Value) -> bool {
    match v {
        Value::String(s) => is_template(s),
        Value::Array(a) => a.iter().any(has_template),
        Value::Object(o) => o.values().any(has_template),
        _ => false,
    }
}

/// Layers of variables for a host, lowest precedence first; `trusted` layers may hold
/// templates (inventory, play, task, extra vars) and are resolved; facts are taken as data.
pub struct Layers<'a> {
    /// Role `defaults/main.yml`: the play's roles', then the task's own role's.
    pub role_defaults: &'a [&'a Vars],
    /// Inventory variables for the host.
    pub inventory: &'a Vars,
    /// The host's cached facts (gathered, `set_fact` with `cacheable`; see `FactCache`).
    pub cached_facts: &'a Vars,
    /// Play `vars`.
    pub play: &'a Vars,
    /// Role `vars/main.yml`: the play's roles', then the task's own role's.
    pub role_vars: &'a [&'a Vars],
    /// Task `vars`.
    pub task: &'a Vars,
    /// What `include_vars` set for the host (templated where it holds templates: the files
    /// are the controller's).
    pub included: &'a Vars,
    /// `set_fact` results and registered results for the host.
    pub facts: &'a Vars,
    /// Role parameters of the task's role (and the roles it is a dependency of).
    pub params: &'a Vars,
    /// `-e` extra vars.
    pub extra: &'a Vars,
}

/// Builds the merged variables (templated where they hold templates) and the context.
pub fn build(layers: &Layers<'_>, magic: &[(&str, JValue)], templar: &Templar) -> (Vars, Context) {
    let mut merged = Vars::new();
    let mut templated_keys = Vec::new();
    let ordered = layers
        .role_defaults
        .iter()
        .map(|l| (*l, true))
        .chain([
            (layers.inventory, true),
            (layers.cached_facts, false),
            (layers.play, true),
        ])
        .chain(layers.role_vars.iter().map(|l| (*l, true)))
        .chain([
            (layers.task, true),
            (layers.included, true),
            (layers.facts, false),
            (layers.params, true),
            (layers.extra, true),
        ]);
    let mut unsafe_items: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (layer, trusted) in ordered {
        for (k, v) in layer {
            merged.insert(k.clone(), v.clone());
            unsafe_items.remove(k);
            if let (true, Value::Array(items)) = (trusted, v) {
                let at: Vec<usize> = items
                    .iter()
                    .enumerate()
                    .filter(|(_, i)| i.as_str().and_then(unsafe_text).is_some())
                    .map(|(n, _)| n)
                    .collect();
                if !at.is_empty() {
                    unsafe_items.insert(k.clone(), at);
                }
            }
            if trusted && has_template(v) {
                templated_keys.push(k.clone());
            } else {
                templated_keys.retain(|x| x != k);
            }
        }
    }
    // Ansible always defines `ansible_facts` (empty before any facts are known)
    merged
        .entry("ansible_facts")
        .or_insert_with(|| Value::Object(Default::default()));
    let mut ctx = Context::default();
    for (k, v) in &merged {
        ctx.set(k, v);
    }
    for (k, v) in magic {
        ctx.set_value(k, v.clone());
    }
    // Ansible templates variables lazily, when a task uses them. Here each templated
    // variable is rendered from its own text against the others until nothing changes, so
    // chains of references resolve in any order. One that still fails (an undefined name in it)
    // is left undefined, so `default` and `is defined` see it so, and a task that uses it
    // fails with its error (see `template::FAILED_VARS_KEY`), as in Ansible.
    let originals: Vec<(String, Value)> = templated_keys
        .iter()
        .filter_map(|k| merged.get(k).map(|v| (k.clone(), v.clone())))
        .collect();
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    for _ in 0..=originals.len().min(16) {
        let jv = ctx.value();
        let mut changed = false;
        for (k, original) in &originals {
            match templar.render_value(original, &jv) {
                Ok(rendered) => {
                    failed.remove(k);
                    if merged.get(k) != Some(&rendered) || !ctx.map.contains_key(k) {
                        changed = true;
                        ctx.set(k, &rendered);
                        merged.insert(k.clone(), rendered);
                    }
                }
                Err(e) => {
                    failed.insert(k.clone(), e.to_string());
                    // undefined from now on: a variable made from it fails too (never the
                    // text of its template)
                    if ctx.map.remove(k).is_some() {
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    for k in failed.keys() {
        ctx.map.remove(k);
    }
    ctx.deferred = std::sync::Arc::new(
        originals
            .iter()
            .filter(|(k, _)| failed.contains_key(k))
            .cloned()
            .collect(),
    );
    // `vars`: every variable the task sees, by name (ansible-core's deprecated but
    // still working magic variable)
    if !ctx.map.contains_key("vars") {
        let all = ctx.value();
        ctx.set_value("vars", all);
    }
    // the lists written with templates in them, as written (`assert`'s `that: "{{ name }}"`
    // takes their items as conditions, as ansible-core resolves only the container)
    let template_lists: BTreeMap<&String, &Value> = originals
        .iter()
        .filter(|(_, v)| v.is_array())
        .map(|(k, v)| (k, v))
        .collect();
    if !template_lists.is_empty() {
        ctx.set_value(
            crate::jinja::TEMPLATE_LISTS_KEY,
            JValue::from_serialize(&template_lists),
        );
    }
    if !unsafe_items.is_empty() {
        ctx.set_value(
            crate::jinja::UNSAFE_ITEMS_KEY,
            JValue::from_serialize(&unsafe_items),
        );
    }
    if !failed.is_empty() {
        ctx.set_value(
            crate::jinja::FAILED_VARS_KEY,
            JValue::from_serialize(&failed),
        );
    }
    (merged, ctx)
}

/// `ansible_version` as Ansible exposes it.
pub fn ansible_version() -> Value {
    serde_json::json!({
        "full": crate::builtins::ANSIBLE_VERSION,
        "major": 2, "minor": 19, "revision": 0,
        "string": crate::builtins::ANSIBLE_VERSION,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: Value) -> Vars {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn variables_made_from_loop_variables_render_per_item() {
        let templar = Templar::new();
        let play = vars(json!({
            "sub": "{{ test_id }}",
            "full": "base/{{ sub }}",
            "plain": "x",
        }));
        let empty = Vars::new();
        let layers = Layers {
            role_defaults: &[],
            inventory: &empty,
            cached_facts: &empty,
            play: &play,
            role_vars: &[],
            task: &empty,
            included: &empty,
            facts: &empty,
            params: &empty,
            extra: &empty,
        };
        let (_, ctx) = build(&layers, &[], &templar);
        // undefined without the loop variable: never the text of a template
        let jv = ctx.value();
        assert!(jv.get_attr("full").unwrap().is_undefined());
        assert!(jv.get_attr("sub").unwrap().is_undefined());
        assert_eq!(jv.get_attr("plain").unwrap().as_str(), Some("x"));
        for id in [1, 2] {
            let mut item = ctx.clone();
            item.set("test_id", &json!(id));
            item.resolve_deferred(&templar);
            let got = templar.render_str("{{ full }}", &item.value()).unwrap();
            assert_eq!(got, json!(format!("base/{id}")));
        }
        // the first context is unchanged
        assert!(ctx.value().get_attr("full").unwrap().is_undefined());
    }
}
