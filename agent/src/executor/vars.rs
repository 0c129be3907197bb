//! Variables for one host and task, by Ansible's precedence, plus magic variables.

use crate::inventory::Vars;
use crate::template::{is_template, Templar};
use minijinja::Value as JValue;
use serde_json::Value;
use std::collections::BTreeMap;

/// The placeholder behind `omit`: arguments equal to it are dropped.
pub const OMIT: &str = "__omit_place_holder__etcd_agent__";

/// Template context for one host: variables by name (cheap to clone and extend).
#[derive(Clone, Default)]
pub struct Context {
    map: BTreeMap<String, JValue>,
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
}

fn has_template(v: &Value) -> bool {
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
    /// Inventory variables for the host.
    pub inventory: &'a Vars,
    /// Play `vars`.
    pub play: &'a Vars,
    /// Task `vars`.
    pub task: &'a Vars,
    /// Facts and registered results for the host.
    pub facts: &'a Vars,
    /// `-e` extra vars.
    pub extra: &'a Vars,
}

/// Builds the merged variables (templated where they hold templates) and the context.
pub fn build(layers: &Layers<'_>, magic: &[(&str, JValue)], templar: &Templar) -> (Vars, Context) {
    let mut merged = Vars::new();
    let mut templated_keys = Vec::new();
    for (layer, trusted) in [
        (layers.inventory, true),
        (layers.play, true),
        (layers.task, true),
        (layers.facts, false),
        (layers.extra, true),
    ] {
        for (k, v) in layer {
            merged.insert(k.clone(), v.clone());
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
    // Ansible templates variables lazily; two passes resolve chains of references.
    for _ in 0..2 {
        if templated_keys.is_empty() {
            break;
        }
        let jv = ctx.value();
        for k in &templated_keys {
            if let Some(v) = merged.get(k) {
                if let Ok(rendered) = templar.render_value(v, &jv) {
                    ctx.set(k, &rendered);
                    merged.insert(k.clone(), rendered);
                }
            }
        }
        templated_keys.retain(|k| merged.get(k).is_some_and(has_template));
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
