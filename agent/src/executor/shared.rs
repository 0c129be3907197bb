//! The state every host job shares: run options, the template engine, connections, module
//! lookup and each host's inventory variables (with the variables of a `delegate_to` target).

use super::options::RunOptions;
use super::vars;
use crate::inventory::Vars;
use crate::jinja::Templar;
use crate::modules::ModuleFinder;
use crate::transport::ConnectionPool;
use minijinja::Value as JValue;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// State shared with host jobs.
pub struct Shared {
    /// Run options.
    pub opts: RunOptions,
    /// Template engine.
    pub templar: Templar,
    /// Connections.
    pub pool: ConnectionPool,
    /// Module lookup.
    pub modules: ModuleFinder,
    /// Bounds the hosts that get their module ready (remote shell, cache check or upload)
    /// ahead of their fork slot, as the pool bounds the handshakes in flight.
    pub staging: tokio::sync::Semaphore,
    /// Inventory variables per host (recomputed for the hosts of a group that `group_by`
    /// changes, so the group's `group_vars` apply from the next task on).
    pub(super) inv_vars: std::sync::RwLock<HashMap<String, Vars>>,
}

impl Shared {
    /// Connection variables for a delegation target.
    /// The variables that say how to reach a `delegate_to` host: its own inventory variables,
    /// templated in its own context (with `-e` on top), as Ansible takes them.
    pub(super) fn delegate_vars(&self, host: &str) -> Map<String, Value> {
        let raw = {
            let inv_vars = self.inv_vars.read().unwrap_or_else(|e| e.into_inner());
            match inv_vars.get(host) {
                Some(v) => v.clone(),
                None if matches!(host, "localhost" | "127.0.0.1" | "::1") => {
                    let mut m = Map::new();
                    m.insert("ansible_connection".into(), "local".into());
                    m
                }
                None => Map::new(),
            }
        };
        let empty = Vars::new();
        let layers = vars::Layers {
            role_defaults: &[],
            inventory: &raw,
            play: &empty,
            role_vars: &[],
            task: &empty,
            included: &empty,
            cached_facts: &empty,
            facts: &empty,
            params: &empty,
            extra: &self.opts.extra_vars,
        };
        let magic = [
            ("inventory_hostname", JValue::from(host)),
            (
                "playbook_dir",
                JValue::from(self.opts.playbook_dir.display().to_string()),
            ),
        ];
        vars::build(&layers, &magic, &self.templar).0
    }
}
