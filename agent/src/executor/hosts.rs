//! The hosts a play runs on: its pattern intersected with `--limit`, and the terms of a
//! pattern that match no host (which Ansible warns about).

use crate::inventory::{pattern, Inventory};

/// Resolves a play's hosts: pattern ∩ limit (empty pattern result is not an error here).
pub fn play_hosts(
    inv: &Inventory,
    hosts: &str,
    limit: Option<&str>,
) -> anyhow::Result<Vec<String>> {
    let mut matched = pattern::resolve(inv, hosts)?;
    if matched.is_empty() && matches!(hosts.trim(), "localhost" | "127.0.0.1") {
        matched = vec!["localhost".to_string()];
    }
    if let Some(limit) = limit {
        let allowed = pattern::resolve(inv, limit)?;
        let allowed_local = allowed.is_empty() && matches!(limit.trim(), "localhost");
        matched.retain(|h| allowed.contains(h) || (allowed_local && h == "localhost"));
    }
    Ok(matched)
}

/// The terms of host pattern `hosts` that match no host (without their `&`/`!` prefix),
/// in pattern order; `localhost` always matches (it is implicit).
pub fn unmatched_terms(inv: &Inventory, hosts: &str) -> Vec<String> {
    pattern::split(hosts)
        .into_iter()
        .map(|term| term.trim_start_matches(['&', '!']).to_string())
        .filter(|bare| {
            pattern::resolve(inv, bare)
                .map(|h| h.is_empty())
                .unwrap_or(true)
                && bare != "localhost"
        })
        .collect()
}
