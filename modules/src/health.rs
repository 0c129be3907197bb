//! `etcd_health`: the runbooks' `etcd-health.sh`, as a module.
//!
//! Discovers every member from the given endpoints, then checks each
//! member's own client URL concurrently the way `etcdctl endpoint health`
//! does: a linearizable read, which needs a raft leader ("permission
//! denied" still proves the member answers). Never changes anything.

use etcd_client::{Client, GetOptions, Member};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

use crate::connection::{is_permission_denied, member_id_hex, Connection, ConnectionArgs};
use crate::protocol::lenient::{Bool, Seconds};
use crate::protocol::{ArgType, Context, Failure, Module, OptionDoc, Outcome, ReturnDoc};

/// Arguments of `etcd_health` (plus the shared connection options).
/// Defaults are filled in by the protocol from [`Health::OPTIONS`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthArgs {
    /// Fail the task when the cluster is unhealthy.
    pub fail_on_unhealthy: Bool,
    /// Poll until healthy for up to this long before reporting.
    pub wait_timeout: Seconds,
}

/// The `etcd_health` module.
pub struct Health;

impl Module for Health {
    const NAME: &'static str = "etcd_health";
    const SHORT_DESCRIPTION: &'static str = "Check the health of every member of an etcd cluster";
    const DESCRIPTION: &'static [&'static str] = &[
        "Discovers the members of the cluster from the given endpoints and checks each member's client URL concurrently, like C(etcdctl endpoint health --cluster).",
        "Reports per member its id, name, health, latency, server version, storage version (etcd 3.6 and later), database size, raft term and index, and whether it is the leader or a learner; plus the leader, the cluster version the members allow, and active alarms (NOSPACE, CORRUPT).",
        "Never changes anything; check mode runs the same checks.",
    ];
    const OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::new(
            "fail_on_unhealthy",
            ArgType::Bool,
            "Fail the task when any member is unhealthy or an alarm is active.",
        )
        .default("true"),
        OptionDoc::new(
            "wait_timeout",
            ArgType::Float,
            "Seconds to keep polling until the cluster is healthy before reporting (0: check once). Replaces until/retries loops after a restart.",
        )
        .default("0"),
    ];
    const EXAMPLES: &'static str = r#"
- name: Check the cluster is healthy
  etcd_health:
    endpoints: "https://{{ ip }}:2379"
    ca_cert: /etc/ssl/etcd/ssl/ca.pem
    client_cert: "/etc/ssl/etcd/ssl/member-{{ inventory_hostname }}.pem"
    client_key: "/etc/ssl/etcd/ssl/member-{{ inventory_hostname }}-key.pem"
  register: etcd

- name: Wait up to two minutes for a restarted member to rejoin
  etcd_health:
    endpoints: http://127.0.0.1:2379
    wait_timeout: 120
"#;
    const RETURNS: &'static [ReturnDoc] = &[
        ReturnDoc {
            name: "healthy",
            description: "Whether every member is healthy and no alarm is active.",
            returned: "success",
            ty: "bool",
        },
        ReturnDoc {
            name: "members",
            description: "One entry per member: id, name, client_url, peer_urls, healthy, error, took_ms, version (the server's), storage_version (etcd 3.6 and later; null before), db_size, db_size_in_use, raft_term, raft_index, is_leader, is_learner.",
            returned: "success",
            ty: "list",
        },
        ReturnDoc {
            name: "cluster_version",
            description: "The cluster version etcd reports (C(etcdcluster) at the first answering member's C(/version), as C(X.Y.0); C(not_decided) while a new cluster has not settled it); null if no member answered. During a downgrade it is the older minor version while members still run the newer one.",
            returned: "success",
            ty: "str",
        },
        ReturnDoc {
            name: "downgrade",
            description: "etcd 3.6 and later: the downgrade in progress, as enabled (bool) and target_version (null when none); null for servers that have no downgrade state.",
            returned: "success",
            ty: "dict",
        },
        ReturnDoc {
            name: "leader",
            description: "The leader's id and name, or null when there is none.",
            returned: "success",
            ty: "dict",
        },
        ReturnDoc {
            name: "alarms",
            description: "Active alarms, each with member_id and alarm (NOSPACE, CORRUPT).",
            returned: "success",
            ty: "list",
        },
        ReturnDoc {
            name: "cluster_id",
            description: "The cluster id (hex).",
            returned: "success",
            ty: "str",
        },
        ReturnDoc {
            name: "attempts",
            description: "How many times the cluster was checked (more than 1 with wait_timeout).",
            returned: "success",
            ty: "int",
        },
        ReturnDoc {
            name: "report",
            description: "The msg lines as a list, in the shape of etcd-health.sh.",
            returned: "success",
            ty: "list",
        },
    ];
    type Args = HealthArgs;
    type Shared = ConnectionArgs;

    async fn run(args: HealthArgs, ctx: &Context<ConnectionArgs>) -> Result<Outcome, Failure> {
        let connection = ctx.shared.connect_settings()?;
        let fail_on_unhealthy = args.fail_on_unhealthy.0;
        let deadline = Instant::now() + args.wait_timeout.0;

        let mut attempts = 0u64;
        let report = loop {
            attempts += 1;
            let report = check_cluster(&connection).await;
            let done = matches!(&report, Ok(r) if r.healthy);
            if done || Instant::now() >= deadline {
                break report;
            }
            let pause = Duration::from_millis(500).min(deadline - Instant::now());
            tokio::time::sleep(pause).await;
        };
        let report = report.map_err(|e| e.with("attempts", attempts))?;

        let lines = report.lines();
        let mut outcome = Outcome::new(false, lines.join("\n"))
            .with("healthy", report.healthy)
            .with("members", report.members_json())
            .with("cluster_version", report.cluster_version.clone())
            .with("downgrade", report.downgrade_json())
            .with("leader", report.leader_json())
            .with("alarms", Value::Array(report.alarms.clone()))
            .with("cluster_id", report.cluster_id.clone())
            .with("endpoint", report.answered_by.clone())
            .with("attempts", attempts)
            .with("report", lines);
        outcome.failed = fail_on_unhealthy && !report.healthy;
        Ok(outcome)
    }
}

/// What one member's check found.
struct MemberHealth {
    id: u64,
    name: String,
    client_url: Option<String>,
    peer_urls: Vec<String>,
    is_learner: bool,
    healthy: bool,
    /// Set when the member could not even report its status.
    unreachable: bool,
    error: Option<String>,
    took_ms: Option<u64>,
    status: Option<etcd_client::StatusResponse>,
}

/// One pass over the whole cluster.
struct ClusterReport {
    members: Vec<MemberHealth>,
    leader: Option<u64>,
    alarms: Vec<Value>,
    cluster_id: String,
    answered_by: String,
    healthy: bool,
    /// What the first member that answers `/version` says.
    cluster_version: Option<String>,
}

async fn check_cluster(connection: &Connection) -> Result<ClusterReport, Failure> {
    let (answered_by, (members, cluster_id)) = connection
        .first_success(|conn, endpoint| async move {
            let mut client = conn.client_for(&endpoint).await?;
            let list = conn
                .bounded(
                    &format!("listing members via {endpoint}"),
                    client.member_list(),
                )
                .await?;
            let cluster_id = list.header().map_or(0, |h| h.cluster_id());
            Ok((list.members().to_vec(), cluster_id))
        })
        .await?;

    let mut checks = JoinSet::new();
    for (index, member) in members.into_iter().enumerate() {
        let conn = connection.clone();
        checks.spawn(async move { (index, check_member(&conn, member).await) });
    }
    let mut results = Vec::new();
    while let Some(joined) = checks.join_next().await {
        results.push(joined.map_err(|e| Failure::new(format!("internal error: {e}")))?);
    }
    results.sort_by_key(|(index, _)| *index);
    let members: Vec<MemberHealth> = results.into_iter().map(|(_, m)| m).collect();

    // The leader as the healthy members see it (they agree when healthy).
    let leader = members
        .iter()
        .filter(|m| m.healthy)
        .filter_map(|m| m.status.as_ref().map(|s| s.leader()))
        .find(|id| *id != 0);

    let alarms = match members.iter().find(|m| m.healthy) {
        Some(member) => list_alarms(connection, member).await,
        None => Vec::new(),
    };
    let healthy = !members.is_empty() && members.iter().all(|m| m.healthy) && alarms.is_empty();
    let mut cluster_version = None;
    for url in members
        .iter()
        .filter(|m| !m.unreachable)
        .filter_map(|m| m.client_url.as_deref())
    {
        if let Ok(versions) = crate::version_endpoint::read(connection, url).await {
            cluster_version = Some(versions.cluster);
            break;
        }
    }
    Ok(ClusterReport {
        cluster_version,
        members,
        leader,
        alarms,
        cluster_id: member_id_hex(cluster_id),
        answered_by,
        healthy,
    })
}

async fn check_member(conn: &Connection, member: Member) -> MemberHealth {
    let mut health = MemberHealth {
        id: member.id(),
        name: member.name().to_string(),
        client_url: member.client_urls().first().cloned(),
        peer_urls: member.peer_urls().to_vec(),
        is_learner: member.is_learner(),
        healthy: false,
        unreachable: true,
        error: None,
        took_ms: None,
        status: None,
    };
    let Some(url) = health.client_url.clone() else {
        health.error = Some("member has not started (no published client URLs)".into());
        return health;
    };
    let client = match conn.client_for(&url).await {
        Ok(client) => client,
        Err(e) => {
            health.error = Some(e.msg);
            return health;
        }
    };
    let started = Instant::now();
    let (read, status) = tokio::join!(
        linearizable_read(conn, client.clone(), &url, health.is_learner),
        async {
            let mut client = client.clone();
            conn.bounded(&format!("status of {url}"), client.status())
                .await
        }
    );
    health.took_ms = Some(started.elapsed().as_millis() as u64);
    match status {
        Ok(status) => {
            health.unreachable = false;
            health.status = Some(status);
        }
        Err(e) => health.error = Some(e.msg),
    }
    match read {
        Ok(()) => health.healthy = true,
        Err(e) if is_permission_denied(&e) => health.healthy = true,
        Err(e) => {
            health.healthy = false;
            health.error = Some(e.msg);
        }
    }
    health
}

/// The read `etcdctl endpoint health` does. Learners serve no linearizable
/// reads, so a learner counts as healthy when it reports a leader.
async fn linearizable_read(
    conn: &Connection,
    mut client: Client,
    url: &str,
    is_learner: bool,
) -> Result<(), Failure> {
    if is_learner {
        let status = conn
            .bounded(&format!("status of learner {url}"), client.status())
            .await?;
        return match status.leader() {
            0 => Err(Failure::new(format!("learner {url} sees no leader"))),
            _ => Ok(()),
        };
    }
    conn.bounded(
        &format!("health read from {url}"),
        client.get("health", Some(GetOptions::new().with_keys_only())),
    )
    .await
    .map(|_| ())
}

async fn list_alarms(conn: &Connection, member: &MemberHealth) -> Vec<Value> {
    let Some(url) = &member.client_url else {
        return Vec::new();
    };
    let Ok(mut client) = conn.client_for(url).await else {
        return Vec::new();
    };
    let alarms = conn.alarms(&mut client).await.unwrap_or_default();
    alarms
        .iter()
        .map(|(id, alarm)| {
            json!({
                "member_id": member_id_hex(*id),
                "alarm": alarm.as_str_name(),
            })
        })
        .collect()
}

impl ClusterReport {
    /// The msg lines, shaped like the runbooks' etcd-health.sh output.
    fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .members
            .iter()
            .map(|m| {
                let id = member_id_hex(m.id);
                let url = m.client_url.as_deref().unwrap_or("");
                match (&m.client_url, m.healthy, m.unreachable) {
                    (None, _, _) => {
                        format!("member {id} is unreachable: no available published client urls")
                    }
                    (Some(_), true, _) => {
                        format!("member {id} is healthy: got healthy result from {url}")
                    }
                    (Some(_), false, true) => format!(
                        "member {id} is unreachable: [{url}] are all unreachable: {}",
                        m.error.as_deref().unwrap_or("no answer")
                    ),
                    (Some(_), false, false) => format!(
                        "member {id} is unhealthy: got unhealthy result from {url}: {}",
                        m.error.as_deref().unwrap_or("unknown error")
                    ),
                }
            })
            .collect();
        for alarm in &self.alarms {
            lines.push(format!(
                "member {} has active alarm {}",
                alarm["member_id"].as_str().unwrap_or("?"),
                alarm["alarm"].as_str().unwrap_or("?")
            ));
        }
        lines.push(if self.healthy {
            "cluster is healthy".into()
        } else {
            "cluster is unhealthy".into()
        });
        lines
    }

    /// The downgrade in progress, as the members report it (etcd 3.6 and later): the first
    /// answer that names one, else `enabled: false` when a member reported the field, else
    /// null (older servers have no downgrade state).
    fn downgrade_json(&self) -> Value {
        let infos: Vec<_> = self
            .members
            .iter()
            .filter_map(|m| m.status.as_ref()?.downgrade_info())
            .collect();
        match infos.iter().find(|i| i.enabled()).or(infos.first()) {
            Some(info) => json!({
                "enabled": info.enabled(),
                "target_version": Some(info.target_version()).filter(|v| !v.is_empty()),
            }),
            None => Value::Null,
        }
    }

    fn members_json(&self) -> Value {
        Value::Array(
            self.members
                .iter()
                .map(|m| {
                    let status = m.status.as_ref();
                    json!({
                        "id": member_id_hex(m.id),
                        "name": m.name,
                        "client_url": m.client_url,
                        "peer_urls": m.peer_urls,
                        "healthy": m.healthy,
                        "error": m.error,
                        "took_ms": m.took_ms,
                        "version": status.map(|s| s.version().to_string()),
                        "storage_version": status
                            .map(|s| s.storage_version())
                            .filter(|v| !v.is_empty()),
                        "db_size": status.map(|s| s.db_size()),
                        "db_size_in_use": status.map(|s| s.raft_used_db_size()),
                        "raft_term": status.map(|s| s.raft_term()),
                        "raft_index": status.map(|s| s.raft_index()),
                        "is_leader": self.leader == Some(m.id),
                        "is_learner": m.is_learner,
                    })
                })
                .collect(),
        )
    }

    fn leader_json(&self) -> Value {
        match self.leader {
            Some(id) => json!({
                "id": member_id_hex(id),
                "name": self.members.iter().find(|m| m.id == id).map(|m| m.name.clone()),
            }),
            None => Value::Null,
        }
    }
}
