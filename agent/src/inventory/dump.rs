//! `inventory --host` output, in the shape `ansible-inventory` prints (`--list` and `--graph`
//! are in [`super::export`]).

use super::Inventory;
use serde_json::Value;

/// The `--host NAME` document: the host's variables, or `None` for an unknown host.
pub fn host_json(inv: &Inventory, host: &str) -> Option<Value> {
    inv.host(host)?;
    Some(Value::Object(inv.host_vars(host)))
}
