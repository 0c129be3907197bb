//! The subcommands: glue between the command line and the engine.

use crate::cli::{AdhocArgs, InventoryArgs, PlaybookArgs};
use crate::error::{usage, Fatal};
use crate::inventory::{self, pattern, Inventory};
use anyhow::Result;

/// Inventory sources from `-i`, else ansible.cfg / `ANSIBLE_INVENTORY`.
fn inventory_sources(cli: &[String], cfg: &crate::config::Config) -> Vec<String> {
    if !cli.is_empty() {
        cli.to_vec()
    } else {
        cfg.inventory.clone()
    }
}

/// `etcd-agent inventory`.
pub fn inventory(args: InventoryArgs) -> Result<i32> {
    let cfg = crate::config::load()?;
    let sources = inventory_sources(&args.inventory, &cfg);
    if sources.is_empty() {
        return Err(usage("no inventory given: use -i INVENTORY"));
    }
    let mut inv = Inventory::load(&sources)?;
    // like ansible-inventory, the current directory is the "playbook dir" for group_vars/host_vars
    inv.add_playbook_dir(std::path::Path::new("."))?;
    if let Some(limit) = &args.limit {
        if pattern::resolve(&inv, limit)?.is_empty() {
            return Err(Fatal::Other(format!("limit {limit:?} matches no host")).into());
        }
    }
    if args.list {
        println!("{}", inventory::to_python_json(&inventory::list_json(&inv)));
    } else if let Some(group) = &args.graph {
        let text = inventory::graph(&inv, group).ok_or_else(|| {
            usage(format!("pattern must be a valid group name when using --graph: {group}"))
        })?;
        println!("{text}");
    } else if let Some(host) = &args.host {
        let v = inventory::host_json(&inv, host)
            .ok_or_else(|| Fatal::Other(format!("could not match supplied host pattern: {host}")))?;
        println!("{}", inventory::to_python_json(&v));
    } else {
        return Err(usage("one of --list, --graph or --host is required"));
    }
    Ok(0)
}

/// `etcd-agent playbook`.
pub fn playbook(_args: PlaybookArgs) -> Result<i32> {
    Err(usage("not yet implemented"))
}

/// `etcd-agent adhoc`.
pub fn adhoc(_args: AdhocArgs) -> Result<i32> {
    Err(usage("not yet implemented"))
}
