//! `hostvars` as a lazy template object, as Ansible's is: `hostvars[h].x` is templated when it
//! is read, in `h`'s own context (its variables, `inventory_hostname`, `group_names`, and the
//! run's `groups`, `playbook_dir`, `omit`...), so a group_vars value such as
//! `"{{ ansible_host }}"` reads as the address, not as its text. As in Ansible 2.19, that
//! context has no `hostvars` of its own. Facts and registered results are data: a `{{` in a
//! command's output is text, never a template (it came from the host).

use super::vars::has_template;
use crate::inventory::Vars;
use crate::jinja::Templar;
use minijinja::value::{Enumerator, Object};
use minijinja::Value as JValue;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

/// Every host's variables, by inventory name.
#[derive(Debug)]
pub struct HostVars {
    hosts: BTreeMap<String, Arc<HostView>>,
}

/// One host's variables; templated values are rendered on first read and kept.
struct HostView {
    /// What `hostvars[h]` lists: the host's variables and its own magic ones.
    vars: Vars,
    /// Names in `vars` that hold data (facts, registered results): read as they are.
    data: HashSet<String>,
    /// Readable but not listed: names every host shares (`groups`, `playbook_dir`...).
    shared: Arc<BTreeMap<String, JValue>>,
    templar: Templar,
    rendered: Mutex<HashMap<String, JValue>>,
    /// Names being rendered now, by the thread rendering them: a reference cycle reads as
    /// undefined instead of looping. Per thread, because hosts run their tasks in parallel and
    /// one host reading a name another is rendering is no cycle.
    rendering: Mutex<HashSet<(ThreadId, String)>>,
}

impl std::fmt::Debug for HostView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostView")
            .field("vars", &self.vars)
            .finish()
    }
}

impl HostVars {
    /// The template value of `hostvars` for each host's variables (listed as they are) and
    /// the names among them that are data, never templated (facts, registered results);
    /// `shared` holds the names every host's templates may use besides its own variables.
    pub fn value(
        hosts: impl IntoIterator<Item = (String, Vars, HashSet<String>)>,
        shared: BTreeMap<String, JValue>,
        templar: &Templar,
    ) -> JValue {
        let shared = Arc::new(shared);
        let all = HostVars {
            hosts: hosts
                .into_iter()
                .map(|(name, vars, data)| {
                    let view = HostView {
                        vars,
                        data,
                        shared: shared.clone(),
                        templar: templar.clone(),
                        rendered: Mutex::default(),
                        rendering: Mutex::default(),
                    };
                    (name, Arc::new(view))
                })
                .collect(),
        };
        JValue::from_object(all)
    }
}

impl Object for HostVars {
    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        let name = key.as_str()?;
        let Some(host) = self.hosts.get(name) else {
            // why the lookup is undefined, for the error that uses it (Ansible's words)
            crate::jinja::undefined::note_lazy_failure(format!("hostvars['{name}']"));
            return None;
        };
        Some(JValue::from_dyn_object(host.clone()))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(
            self.hosts
                .keys()
                .map(|k| JValue::from(k.as_str()))
                .collect(),
        )
    }
}

impl HostView {
    fn render(self: &Arc<Self>, name: &str, raw: &Value) -> Option<JValue> {
        if let Some(done) = self.rendered.lock().ok()?.get(name) {
            return Some(done.clone());
        }
        let key = (std::thread::current().id(), name.to_string());
        if !self.rendering.lock().ok()?.insert(key.clone()) {
            return None;
        }
        let context = JValue::from_dyn_object(self.clone());
        let result = self.templar.render_value(raw, &context);
        self.rendering.lock().ok()?.remove(&key);
        // a value that fails to render is undefined, as an unresolvable lazy one is
        let value = match result {
            Ok(v) => JValue::from_serialize(v),
            Err(e) => {
                crate::jinja::undefined::note_lazy_failure(format!("{e:#}"));
                return None;
            }
        };
        self.rendered
            .lock()
            .ok()?
            .insert(name.to_string(), value.clone());
        Some(value)
    }
}

impl Object for HostView {
    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        let name = key.as_str()?;
        match self.vars.get(name) {
            Some(raw) if has_template(raw) && !self.data.contains(name) => self.render(name, raw),
            Some(raw) => Some(JValue::from_serialize(raw)),
            None => {
                let found = self.shared.get(name).cloned();
                if found.is_none() {
                    crate::jinja::undefined::note_lazy_failure(format!(
                        "object of type 'HostVarsVars' has no attribute '{name}'"
                    ));
                }
                found
            }
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.vars.keys().map(|k| JValue::from(k.as_str())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::HostVars;
    use crate::jinja::Templar;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn vars(v: serde_json::Value) -> crate::inventory::Vars {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn values_are_templated_in_their_own_hosts_context() {
        let templar = Templar::new();
        let mut shared = BTreeMap::new();
        shared.insert(
            "groups".to_string(),
            minijinja::Value::from_serialize(json!({"all": ["a", "b"]})),
        );
        let hv = HostVars::value(
            [
                (
                    "a".to_string(),
                    vars(
                        json!({"inventory_hostname": "a", "ip": "10.0.0.1", "url": "http://{{ ip }}:{{ port }}", "port": "{{ 2000 + 379 }}", "out": {"stdout": "{{ lookup('file', '/etc/passwd') }}"}}),
                    ),
                    ["out".to_string()].into(),
                ),
                (
                    "b".to_string(),
                    vars(
                        json!({"inventory_hostname": "b", "me": "{{ inventory_hostname }} of {{ groups['all'] | length }}", "loop": "{{ loop2 }}", "loop2": "{{ loop }}", "other": "{{ hostvars['a'].url }}"}),
                    ),
                    Default::default(),
                ),
            ],
            shared,
            &templar,
        );
        let context = minijinja::Value::from_iter([("hostvars", hv)]);
        let r = |t: &str| {
            templar
                .render_str(t, &context)
                .map(|v| v.to_string())
                .unwrap_or_else(|e| format!("error: {e}"))
        };
        assert_eq!(r("{{ hostvars['a'].url }}"), "\"http://10.0.0.1:2379\"");
        assert_eq!(r("{{ hostvars['b'].me }}"), "\"b of 2\"");
        assert_eq!(
            r("{{ hostvars['b'].loop | default('cycle') }}"),
            "\"cycle\""
        );
        // no `hostvars` inside, as in Ansible 2.19: `other` cannot be templated
        assert_eq!(
            r("{{ hostvars['b'].other | default('undefined') }}"),
            "\"undefined\""
        );
        assert_eq!(r("{{ hostvars | list }}"), "[\"a\",\"b\"]");
        // a registered result is data: its `{{` is text, not run
        assert_eq!(
            r("{{ hostvars['a'].out.stdout }}"),
            "\"{{ lookup('file', '/etc/passwd') }}\""
        );
    }

    /// Hosts read each other's variables from parallel threads; one thread reading a value
    /// another is rendering must get the value (or its failure), not a "cycle".
    #[test]
    fn parallel_readers_of_one_value_each_get_its_own_failure() {
        let templar = Templar::new();
        let hv = HostVars::value(
            [(
                "b".to_string(),
                vars(json!({"broken": "{{ no_such_variable }}"})),
                Default::default(),
            )],
            BTreeMap::new(),
            &templar,
        );
        let context = minijinja::Value::from_iter([("hostvars", hv)]);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..200 {
                        let err = templar
                            .render_str("{{ hostvars['b'].broken }}", &context)
                            .unwrap_err();
                        assert!(
                            format!("{err:#}").contains("'no_such_variable' is undefined"),
                            "{err:#}"
                        );
                    }
                });
            }
        });
    }
}
