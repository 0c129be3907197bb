//! etcd's downgrade API (etcd 3.6 and later), behind `etcd_maintenance`'s
//! `state: downgrade_enabled` and `state: downgrade_cancelled`.
//!
//! Going back one minor version (3.6 to 3.5) is etcd's procedure, not a binary swap: the
//! cluster is first told the target (`etcdctl downgrade validate 3.5`, then `enable`), which
//! lowers the cluster version at once and has every member write its data in the older
//! format (its storage version); only then may members be restarted on the older binary,
//! one at a time. Once every member runs it, the leader ends the downgrade by itself.
//! Enabling is idempotent (a downgrade already enabled to the same target changes
//! nothing); a downgrade to another target is refused until it is cancelled.

use serde_json::{json, Value};

use crate::connection::{member_id_hex, Connection};
use crate::etcd_version::EtcdVersion;
use crate::protocol::{Failure, Outcome};

/// A downgrade target: `major.minor` (etcd downgrades whole minor versions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Major version.
    pub major: u64,
    /// Minor version.
    pub minor: u64,
}

impl Target {
    /// `X.Y` or `X.Y.Z` (the patch is ignored: the cluster version has none).
    pub fn parse(text: &str) -> Result<Target, Failure> {
        let parts: Vec<&str> = text.trim().split('.').collect();
        let number = |s: &str| s.parse::<u64>().ok();
        match parts.as_slice() {
            [major, minor] | [major, minor, _] => match (number(major), number(minor)) {
                (Some(major), Some(minor))
                    if parts.len() == 2 || parts.get(2).and_then(|p| number(p)).is_some() =>
                {
                    Ok(Target { major, minor })
                }
                _ => Err(bad_version(text)),
            },
            _ => Err(bad_version(text)),
        }
    }

    /// As etcd's downgrade API takes it.
    fn api(self) -> String {
        format!("{}.{}", self.major, self.minor)
    }

    /// As etcd reports a downgrade's target (`X.Y.0`).
    fn reported(self) -> String {
        format!("{}.{}.0", self.major, self.minor)
    }
}

fn bad_version(text: &str) -> Failure {
    Failure::new(format!(
        "argument 'downgrade_version' is invalid: {text:?} is not a version like 3.5 or 3.5.30"
    ))
}

/// One member's versions and the downgrade it reports.
struct MemberState {
    name: String,
    id: u64,
    version: Option<String>,
    storage_version: Option<String>,
    /// `Some((enabled, target))` where the member reports downgrade state (3.6+).
    downgrade: Option<(bool, String)>,
    error: Option<String>,
}

impl MemberState {
    fn json(&self) -> Value {
        json!({
            "id": member_id_hex(self.id),
            "name": self.name,
            "version": self.version,
            "storage_version": self.storage_version,
            "error": self.error,
        })
    }
}

/// Every member's state, and the endpoint of one that answered.
async fn members(conn: &Connection) -> Result<Vec<MemberState>, Failure> {
    let view = conn.cluster_view().await?;
    let mut states = Vec::new();
    for member in &view.members {
        let mut state = MemberState {
            name: member.name().to_string(),
            id: member.id(),
            version: None,
            storage_version: None,
            downgrade: None,
            error: None,
        };
        match member.client_urls().first() {
            None => state.error = Some("has not started".into()),
            Some(url) => {
                let status = async {
                    let mut client = conn.client_for(url).await?;
                    conn.bounded(&format!("status of {url}"), client.status())
                        .await
                };
                match status.await {
                    Ok(status) => {
                        state.version = Some(status.version().to_string());
                        state.storage_version =
                            Some(status.storage_version().to_string()).filter(|v| !v.is_empty());
                        state.downgrade = status
                            .downgrade_info()
                            .map(|d| (d.enabled(), d.target_version().to_string()));
                    }
                    Err(e) => state.error = Some(e.msg),
                }
            }
        }
        states.push(state);
    }
    Ok(states)
}

/// A client to the first endpoint that connects (any member takes downgrade requests).
async fn any_client(conn: &Connection) -> Result<etcd_client::Client, Failure> {
    let (_, client) = conn
        .first_success(|conn, endpoint| async move { conn.client_for(&endpoint).await })
        .await?;
    Ok(client)
}

/// The downgrade the members report: the target of the first one that has one enabled.
fn enabled_target(states: &[MemberState]) -> Option<String> {
    states
        .iter()
        .filter_map(|s| s.downgrade.as_ref())
        .find(|(enabled, _)| *enabled)
        .map(|(_, target)| target.clone())
}

fn downgrade_json(target: Option<&str>) -> Value {
    json!({"enabled": target.is_some(), "target_version": target})
}

fn outcome(changed: bool, msg: String, states: &[MemberState], before: Option<&str>) -> Outcome {
    Outcome::new(changed, msg)
        .with(
            "members",
            Value::Array(states.iter().map(MemberState::json).collect()),
        )
        .with("downgrade_before", downgrade_json(before))
}

/// `state: downgrade_enabled`: validates, then (not in check mode) enables the downgrade of
/// the cluster to `target`.
pub async fn enable(conn: &Connection, target: Target, check: bool) -> Result<Outcome, Failure> {
    let states = members(conn).await?;
    if let Some(down) = states.iter().find(|s| s.error.is_some()) {
        return Err(Failure::new(format!(
            "member {} did not answer ({}): a downgrade needs every member; nothing was changed",
            down.name,
            down.error.as_deref().unwrap_or("")
        )));
    }
    let before = enabled_target(&states);
    match before.as_deref() {
        Some(t) if t == target.reported() => {
            return Ok(outcome(
                false,
                format!("the downgrade to {} is already enabled", target.api()),
                &states,
                before.as_deref(),
            )
            .with("downgrade", downgrade_json(before.as_deref())));
        }
        Some(t) => {
            return Err(Failure::new(format!(
                "a downgrade to {t} is in progress; cancel it first (state=downgrade_cancelled). Nothing was changed"
            )))
        }
        None => {}
    }
    if let Some(old) = states.iter().find(|s| {
        s.version
            .as_deref()
            .and_then(EtcdVersion::parse)
            .is_some_and(|v| v.series() < (3, 6))
    }) {
        return Err(Failure::new(format!(
            "member {} runs etcd {}: etcd's downgrade API needs every member on 3.6 or later (3.5 cannot be downgraded to 3.4). Nothing was changed",
            old.name,
            old.version.as_deref().unwrap_or("?")
        )));
    }
    let client = any_client(conn).await?;
    let validated = conn
        .bounded(
            &format!("validating the downgrade to {}", target.api()),
            client
                .maintenance_client()
                .downgrade(etcd_client::DowngradeOptions::Validate(target.api())),
        )
        .await
        .map_err(|e| Failure::new(format!("{}. Nothing was changed", e.msg)))?;
    // etcd answers `X.Y`; /version (and the docs) say `X.Y.0`
    let cluster_version = match validated.version() {
        v if v.matches('.').count() == 1 => format!("{v}.0"),
        v => v.to_string(),
    };
    if check {
        return Ok(outcome(
            true,
            format!(
                "the downgrade from cluster version {cluster_version} to {} is valid and would be enabled",
                target.api()
            ),
            &states,
            None,
        )
        .with("cluster_version", cluster_version)
        .with("downgrade", downgrade_json(None)));
    }
    conn.bounded(
        &format!("enabling the downgrade to {}", target.api()),
        client
            .maintenance_client()
            .downgrade(etcd_client::DowngradeOptions::Enable(target.api())),
    )
    .await?;
    let reported = target.reported();
    Ok(outcome(
        true,
        format!(
            "enabled the downgrade from cluster version {cluster_version} to {}: wait until every member's storage_version is {reported}, then restart the members one at a time on {} binaries",
            target.api(),
            target.api()
        ),
        &states,
        None,
    )
    .with("cluster_version", reported.clone())
    .with("downgrade", downgrade_json(Some(&reported))))
}

/// `state: downgrade_cancelled`: cancels the downgrade in progress, if any.
pub async fn cancel(conn: &Connection, check: bool) -> Result<Outcome, Failure> {
    let states = members(conn).await?;
    let before = enabled_target(&states);
    let Some(target) = before.as_deref() else {
        return Ok(
            outcome(false, "no downgrade is in progress".into(), &states, None)
                .with("downgrade", downgrade_json(None)),
        );
    };
    if !check {
        let client = any_client(conn).await?;
        conn.bounded(
            "cancelling the downgrade",
            client
                .maintenance_client()
                .downgrade(etcd_client::DowngradeOptions::Cancel),
        )
        .await?;
    }
    let verb = if check { "would cancel" } else { "cancelled" };
    Ok(outcome(
        true,
        format!("{verb} the downgrade to {target}"),
        &states,
        before.as_deref(),
    )
    .with(
        "downgrade",
        downgrade_json(if check { Some(target) } else { None }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_minor_versions() {
        assert_eq!(Target::parse("3.5").unwrap(), Target { major: 3, minor: 5 });
        assert_eq!(
            Target::parse(" 3.5.30 ").unwrap(),
            Target { major: 3, minor: 5 }
        );
        assert_eq!(Target::parse("3.5").unwrap().api(), "3.5");
        assert_eq!(Target::parse("3.5.30").unwrap().reported(), "3.5.0");
        for bad in ["", "3", "3.x", "3.5.x", "3.5.30.1", "v3.5"] {
            let e = Target::parse(bad).unwrap_err();
            assert!(e.msg.contains("downgrade_version"), "{bad}: {}", e.msg);
        }
    }
}
