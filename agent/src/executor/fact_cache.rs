//! The fact cache: facts that modules returned (gathered facts, `set_fact` with
//! `cacheable: true`), per host, as ansible-core's `FactCache` keeps them.
//!
//! Their precedence is low: above inventory variables, below play variables (ansible-core's
//! "host facts / cached set_facts"); plain `set_fact` and registered results are another,
//! high layer (the engine's `facts`). With the `jsonfile` plugin they outlive the run: one
//! JSON file per host, read when the run starts unless older than the timeout, written on
//! every change (through a temp file, renamed), removed by `--flush-cache` for the
//! inventory's hosts. The files are ansible-core 2.19's, so that both engines share a cache:
//! named `<connection>/<prefix>s1_<host>` (its schema 1), holding `{"__payload__": "<JSON>"}`;
//! the values it wrote carry their data tags (`{"__ansible_type": "_AnsibleTaggedStr",
//! "value": ..., "tags": [...]}`), which are read as their values. Cached facts are data
//! here, never templates, whatever tag they had.

use crate::config::{CachePlugin, FactCaching};
use crate::inventory::Vars;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Cached facts per host, with the variables they make (see [`FactCache::layer`]).
#[derive(Clone)]
pub struct FactCache {
    store: Option<JsonFiles>,
    inject: bool,
    hosts: HashMap<String, Entry>,
}

/// One host's cached facts and the variable layer made from them.
#[derive(Clone, PartialEq)]
struct Entry {
    facts: Map<String, Value>,
    layer: Vars,
}

/// The `jsonfile` plugin's files.
#[derive(Clone)]
struct JsonFiles {
    dir: PathBuf,
    prefix: String,
    timeout: u64,
}

impl FactCache {
    /// A cache as configured; `inject`: facts are variables too (`inject_facts_as_vars`),
    /// not only under `ansible_facts`. The `jsonfile` directory is created if missing.
    pub fn new(cfg: &FactCaching, inject: bool) -> anyhow::Result<Self> {
        let store = match cfg.plugin {
            CachePlugin::Memory => None,
            CachePlugin::JsonFile => {
                let Some(dir) = cfg.connection.clone() else {
                    anyhow::bail!(
                        "error, 'jsonfile' cache plugin requires the 'fact_caching_connection' config option to be set (to a writeable directory path)"
                    );
                };
                std::fs::create_dir_all(&dir).map_err(|e| {
                    anyhow::anyhow!(
                        "error in 'jsonfile' cache, configured path ({}) does not have necessary permissions (rwx), disabling plugin: {e}",
                        dir.display()
                    )
                })?;
                Some(JsonFiles {
                    dir,
                    prefix: cfg.prefix.clone(),
                    timeout: cfg.timeout,
                })
            }
        };
        Ok(FactCache {
            store,
            inject,
            hosts: HashMap::new(),
        })
    }

    /// Reads `host`'s cached facts from the plugin's file, if it has one that has not
    /// expired; a file that cannot be read or parsed is reported and skipped.
    pub fn load(&mut self, host: &str) -> Option<String> {
        let store = self.store.as_ref()?;
        let path = store.path(host);
        let meta = std::fs::metadata(&path).ok()?;
        if store.timeout > 0 {
            let age = meta.modified().ok()?.elapsed().unwrap_or_default();
            if age.as_secs() > store.timeout {
                return None;
            }
        }
        let parsed = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| decode_file(&b));
        match parsed {
            Ok(facts) => {
                self.put(host, facts);
                None
            }
            Err(e) => Some(format!(
                "error in 'jsonfile' cache plugin while trying to read {}: {e}",
                path.display()
            )),
        }
    }

    /// Forgets `host`'s facts and removes its file (`--flush-cache`).
    pub fn flush(&mut self, host: &str) -> Option<String> {
        self.hosts.remove(host);
        let path = self.store.as_ref()?.path(host);
        match std::fs::remove_file(&path) {
            Ok(()) => None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(format!(
                "error in 'jsonfile' cache plugin while trying to remove {}: {e}",
                path.display()
            )),
        }
    }

    /// Adds `new` to `host`'s facts (each top-level key replaced, as ansible-core's
    /// `first_order_merge`) and writes the host's file; a write error is returned as a
    /// warning (the facts stay for this run).
    pub fn merge(&mut self, host: &str, new: &Map<String, Value>) -> Option<String> {
        let mut facts = self.hosts.remove(host).map(|e| e.facts).unwrap_or_default();
        facts.extend(new.iter().map(|(k, v)| (k.clone(), v.clone())));
        let warning = self
            .store
            .as_ref()
            .and_then(|s| s.write(host, &facts).err());
        self.put(host, facts);
        warning
    }

    /// The variables `host`'s facts make: every fact under `ansible_facts` without its
    /// `ansible_` prefix, and (with `inject_facts_as_vars`) each as a variable of its own;
    /// without it only `ansible_local` is a variable too. None before any fact.
    pub fn layer(&self, host: &str) -> Option<&Vars> {
        self.hosts.get(host).map(|e| &e.layer)
    }

    /// Takes `host`'s facts from `other` (a lane's copy that may have changed them) when
    /// they differ from these; the file was written when they changed.
    pub fn adopt(&mut self, other: &FactCache, host: &str) {
        match other.hosts.get(host) {
            Some(e) if self.hosts.get(host) != Some(e) => {
                self.hosts.insert(host.to_string(), e.clone());
            }
            Some(_) => {}
            None => {
                self.hosts.remove(host);
            }
        }
    }

    /// The hosts with cached facts.
    pub fn hosts(&self) -> impl Iterator<Item = &String> {
        self.hosts.keys()
    }

    fn put(&mut self, host: &str, facts: Map<String, Value>) {
        let mut layer = Vars::new();
        let namespaced: Map<String, Value> = facts
            .iter()
            .map(|(k, v)| {
                (
                    k.strip_prefix("ansible_").unwrap_or(k).to_string(),
                    v.clone(),
                )
            })
            .collect();
        if self.inject {
            layer.extend(facts.iter().map(|(k, v)| (k.clone(), v.clone())));
        } else if let Some(local) = facts.get("ansible_local") {
            layer.insert("ansible_local".into(), local.clone());
        }
        layer.insert("ansible_facts".into(), Value::Object(namespaced));
        self.hosts.insert(host.to_string(), Entry { facts, layer });
    }
}

impl JsonFiles {
    fn path(&self, host: &str) -> PathBuf {
        self.dir
            .join(format!("{}{SCHEMA_PREFIX}{host}", self.prefix))
    }

    /// Writes the facts in ansible-core's wrapper, through a temp file in the same
    /// directory (synced, renamed over the old one). Mode 0600, not ansible-core's 0644:
    /// facts may hold secrets (a `set_fact` of a vaulted value is plaintext in the file, in
    /// ansible-core's too).
    fn write(&self, host: &str, facts: &Map<String, Value>) -> Result<(), String> {
        let path = self.path(host);
        let fail = |e: &dyn std::fmt::Display| {
            format!(
                "error in 'jsonfile' cache plugin while trying to write to '{}' : {e}",
                path.display()
            )
        };
        let payload = serde_json::to_string(facts).map_err(|e| fail(&e))?;
        let text = serde_json::to_vec(&serde_json::json!({ PAYLOAD_KEY: payload }))
            .map_err(|e| fail(&e))?;
        let tmp = temp_beside(&path);
        let written = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
        }
        .and_then(|mut f| f.write_all(&text).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(fail(&e));
        }
        Ok(())
    }
}

/// ansible-core's schema qualifier of persisted cache keys (`s<schema_id>_`).
const SCHEMA_PREFIX: &str = "s1_";

/// The key of ansible-core's wrapper around a persisted value.
const PAYLOAD_KEY: &str = "__payload__";

/// The facts of a cache file: the wrapper's payload, its tagged values read as values.
fn decode_file(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    let outer: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let Some(Value::String(payload)) = outer.get(PAYLOAD_KEY) else {
        return Err(format!("no {PAYLOAD_KEY:?} string in it"));
    };
    let inner: Value = serde_json::from_str(payload).map_err(|e| e.to_string())?;
    match untag(inner) {
        Value::Object(m) => Ok(m),
        _ => Err("its payload is not a JSON object".into()),
    }
}

/// A value without ansible-core's data tags: `{"__ansible_type": "_AnsibleTagged...",
/// "value": v, "tags": [...]}` is `v`, at any depth.
fn untag(v: Value) -> Value {
    match v {
        Value::Object(mut m) => {
            let tagged = m
                .get("__ansible_type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.starts_with("_AnsibleTagged"));
            if tagged {
                return untag(m.remove("value").unwrap_or(Value::Null));
            }
            Value::Object(m.into_iter().map(|(k, v)| (k, untag(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(untag).collect()),
        other => other,
    }
}

/// A temp file name beside `path`, unique to this process.
fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(dir: &Path, timeout: u64) -> FactCaching {
        FactCaching {
            plugin: CachePlugin::JsonFile,
            connection: Some(dir.to_path_buf()),
            prefix: "prefix_".into(),
            timeout,
        }
    }

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn facts_are_namespaced_and_injected() {
        let mut c = FactCache::new(&FactCaching::default(), true).unwrap();
        assert!(c.layer("h").is_none());
        c.merge("h", &map(json!({"ansible_os_family": "Debian", "x": 1})));
        c.merge("h", &map(json!({"x": 2})));
        let l = c.layer("h").unwrap();
        assert_eq!(l["ansible_os_family"], "Debian");
        assert_eq!(l["x"], 2);
        assert_eq!(l["ansible_facts"], json!({"os_family": "Debian", "x": 2}));
        let mut c = FactCache::new(&FactCaching::default(), false).unwrap();
        c.merge(
            "h",
            &map(json!({"ansible_os_family": "Debian", "ansible_local": {}})),
        );
        let l = c.layer("h").unwrap();
        assert!(!l.contains_key("ansible_os_family"));
        assert!(l.contains_key("ansible_local"));
        assert_eq!(l["ansible_facts"]["os_family"], "Debian");
    }

    #[test]
    fn jsonfile_outlives_the_run_until_flushed() {
        let dir = std::env::temp_dir().join(format!("fact-cache-test-{}", std::process::id()));
        let sub = dir.join("made");
        let mut c = FactCache::new(&settings(&sub, 0), true).unwrap();
        assert!(c
            .merge("web1", &map(json!({"ansible_foo": "bar"})))
            .is_none());
        let file = sub.join("prefix_s1_web1");
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text, r#"{"__payload__":"{\"ansible_foo\":\"bar\"}"}"#);
        let names: Vec<_> = std::fs::read_dir(&sub).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "no temp file left");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "facts may hold secrets");
        let mut next = FactCache::new(&settings(&sub, 0), true).unwrap();
        assert!(next.load("web1").is_none());
        assert!(next.load("web2").is_none());
        assert_eq!(next.layer("web1").unwrap()["ansible_foo"], "bar");
        assert!(next.layer("web2").is_none());
        assert!(next.flush("web1").is_none());
        assert!(!file.exists());
        assert!(next.layer("web1").is_none());
        std::fs::write(&file, "not json").unwrap();
        let warning = next.load("web1").unwrap();
        assert!(warning.contains("prefix_s1_web1"), "{warning}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn files_ansible_core_wrote_are_read_without_their_tags() {
        // written by ansible-playbook 2.19.14 (set_fact with cacheable: true)
        let file = r#"{"__payload__": "{\"cached_one\": {\"value\": \"one\", \"tags\": [{\"path\": \"/tmp/fc/p.yml\", \"line_num\": 5, \"col_num\": 21, \"__ansible_type\": \"Origin\"}, {\"__ansible_type\": \"TrustedAsTemplate\"}], \"__ansible_type\": \"_AnsibleTaggedStr\"}, \"lst\": {\"value\": [{\"value\": 1, \"tags\": [], \"__ansible_type\": \"_AnsibleTaggedInt\"}, {\"value\": {\"b\": null}, \"tags\": [], \"__ansible_type\": \"_AnsibleTaggedDict\"}], \"tags\": [], \"__ansible_type\": \"_AnsibleTaggedList\"}, \"plain\": 2}"}"#;
        let facts = decode_file(file.as_bytes()).unwrap();
        assert_eq!(
            Value::Object(facts),
            json!({"cached_one": "one", "lst": [1, {"b": null}], "plain": 2})
        );
        assert!(decode_file(b"{}").is_err());
        assert!(decode_file(br#"{"__payload__": "[1]"}"#).is_err());
    }

    #[test]
    fn jsonfile_needs_a_directory() {
        let cfg = FactCaching {
            plugin: CachePlugin::JsonFile,
            ..FactCaching::default()
        };
        let err = FactCache::new(&cfg, true).err().unwrap().to_string();
        assert!(err.contains("fact_caching_connection"), "{err}");
    }
}
