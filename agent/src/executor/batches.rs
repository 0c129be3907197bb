//! `serial`: splitting a play's hosts into the batches that run the play one after another,
//! and opening the next batch's connections while the current batch runs.

use super::shared::Shared;
use crate::playbook::{Play, Serial};
use crate::transport::ConnSpec;
use std::sync::Arc;

/// Splits hosts into `serial` batches.
pub fn batches(hosts: &[String], serial: &[Serial]) -> Vec<Vec<String>> {
    if serial.is_empty() {
        return vec![hosts.to_vec()];
    }
    let total = hosts.len();
    let mut out = Vec::new();
    let mut i = 0;
    let mut idx = 0;
    while i < total {
        let spec = &serial[idx.min(serial.len() - 1)];
        let size = match spec {
            Serial::Count(0) => total,
            Serial::Count(n) => *n,
            Serial::Percent(p) => ((total as f64) * p / 100.0).floor().max(1.0) as usize,
        };
        let end = (i + size).min(total);
        out.push(hosts[i..end].to_vec());
        i = end;
        idx += 1;
    }
    out
}

/// The SSH connections of `next` (the batch after `current`), as far as inventory and extra
/// variables tell them: the play's own `vars` and the `connection` keyword may change them,
/// so a play with either gets none (its connections open when its tasks need them).
fn next_batch_specs(shared: &Shared, play: &Play, next: &[String]) -> Vec<ConnSpec> {
    let play_sets_connection =
        play.connection.is_some() || play.vars.keys().any(|k| k.starts_with("ansible_"));
    if play_sets_connection {
        return Vec::new();
    }
    next.iter()
        .filter_map(|host| {
            let vars = shared.delegate_vars(host);
            // a templated connection variable is rendered per task: leave it to the task
            let templated = vars.iter().any(|(k, v)| {
                k.starts_with("ansible_") && v.as_str().is_some_and(|s| s.contains("{{"))
            });
            match super::conn::spec_for(host, &vars, play.remote_user.as_deref(), &shared.opts) {
                Ok(spec @ ConnSpec::Ssh(_)) if !templated => Some(spec),
                _ => None,
            }
        })
        .collect()
}

/// Opens the connections of the batch after `current` in the background, once `current`'s
/// own are open (its tasks open them; this waits on the same connections, so the next
/// batch's handshakes never get ahead of the current batch's). A failure is remembered by
/// the pool and reported when the host's task runs, as without this. The returned task must
/// be awaited before the pool closes.
pub fn open_next_batch(
    shared: &Arc<Shared>,
    play: &Play,
    current: &[String],
    next: &[String],
) -> Option<tokio::task::JoinHandle<()>> {
    let upcoming = next_batch_specs(shared, play, next);
    if upcoming.is_empty() {
        return None;
    }
    let now = next_batch_specs(shared, play, current);
    let shared = shared.clone();
    Some(tokio::spawn(async move {
        for spec in &now {
            let _ = shared.pool.get(spec).await;
        }
        let mut opening = tokio::task::JoinSet::new();
        for spec in upcoming {
            let shared = shared.clone();
            opening.spawn(async move {
                let _ = shared.pool.get(&spec).await;
            });
        }
        while opening.join_next().await.is_some() {}
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_batches() {
        let hosts: Vec<String> = (1..=5).map(|i| format!("h{i}")).collect();
        assert_eq!(batches(&hosts, &[]).len(), 1);
        let b = batches(&hosts, &[Serial::Count(2)]);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        let b = batches(&hosts, &[Serial::Count(1), Serial::Percent(50.0)]);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), [1, 2, 2]);
    }
}
