//! What the doctor reads from etcd itself: the member list, each member's
//! status and health as its own client URL answers, the alarms, and the
//! HashKV of every member at one revision when all of them answer.

use etcd_client::{GetOptions, Member};
use tokio::task::JoinSet;

use crate::connection::{is_permission_denied, member_id_hex, Connection};
use crate::protocol::Failure;

/// One member as the cluster lists it and as it answers.
#[derive(Debug, Clone, Default)]
pub struct MemberState {
    /// Member id.
    pub id: u64,
    /// Name; empty for a member added but never started.
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// First client URL; `None` for a member that never started.
    pub client_url: Option<String>,
    /// A non-voting learner.
    pub is_learner: bool,
    /// Its status was read.
    pub reachable: bool,
    /// It served a linearizable read (or a learner that sees a leader).
    pub healthy: bool,
    /// Why it is unreachable or unhealthy.
    pub error: Option<String>,
    /// Status figures, when reachable.
    pub status: Option<Status>,
    /// HashKV at the common revision: (hash, compact revision) or the error.
    pub hash: Option<Result<(u32, i64), String>>,
}

/// The figures of `etcdctl endpoint status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// The leader this member follows (0: none).
    pub leader: u64,
    /// Raft term.
    pub raft_term: u64,
    /// Raft index.
    pub raft_index: u64,
    /// MVCC revision.
    pub revision: i64,
    /// Database file size.
    pub db_size: i64,
    /// Bytes of the database in use.
    pub db_size_in_use: i64,
    /// etcd version.
    pub version: String,
    /// Errors the member reports about itself.
    pub errors: Vec<String>,
}

/// An active alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarm {
    /// The member that raised it.
    pub member_id: u64,
    /// `NOSPACE` or `CORRUPT`.
    pub alarm: String,
}

/// The cluster as the doctor saw it.
#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    /// Why no endpoint listed the members (every member down, TLS refused...).
    pub list_error: Option<String>,
    /// Cluster id (hex).
    pub cluster_id: Option<String>,
    /// Every listed member.
    pub members: Vec<MemberState>,
    /// Active alarms.
    pub alarms: Vec<Alarm>,
    /// The revision the hashes were taken at, when they were.
    pub hash_revision: Option<i64>,
}

impl ClusterState {
    /// The leader as the healthy members see it.
    pub fn leader(&self) -> Option<u64> {
        self.members
            .iter()
            .filter(|m| m.healthy)
            .filter_map(|m| m.status.as_ref().map(|s| s.leader))
            .find(|id| *id != 0)
    }

    /// The member with this id.
    pub fn member(&self, id: u64) -> Option<&MemberState> {
        self.members.iter().find(|m| m.id == id)
    }
}

/// Reads everything, never failing: what could not be read is recorded.
pub async fn gather(conn: &Connection) -> ClusterState {
    let listed = conn
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
        .await;
    let (members, cluster_id) = match listed {
        Ok((_, listed)) => listed,
        Err(e) => {
            return ClusterState {
                list_error: Some(e.msg),
                ..ClusterState::default()
            }
        }
    };

    let mut checks = JoinSet::new();
    for (index, member) in members.into_iter().enumerate() {
        let conn = conn.clone();
        checks.spawn(async move { (index, check_member(&conn, member).await) });
    }
    let mut results = Vec::new();
    while let Some(joined) = checks.join_next().await {
        if let Ok(result) = joined {
            results.push(result);
        }
    }
    results.sort_by_key(|(index, _)| *index);
    let mut state = ClusterState {
        cluster_id: Some(member_id_hex(cluster_id)),
        members: results.into_iter().map(|(_, m)| m).collect(),
        ..ClusterState::default()
    };
    if let Some(url) = state
        .members
        .iter()
        .find(|m| m.healthy && !m.is_learner)
        .and_then(|m| m.client_url.clone())
    {
        state.alarms = alarms(conn, &url).await;
    }
    let all_up = !state.members.is_empty()
        && state
            .members
            .iter()
            .all(|m| m.healthy && m.status.is_some());
    if all_up {
        hash_all(conn, &mut state).await;
    }
    state
}

async fn check_member(conn: &Connection, member: Member) -> MemberState {
    let mut state = MemberState {
        id: member.id(),
        name: member.name().to_string(),
        peer_urls: member.peer_urls().to_vec(),
        client_url: member.client_urls().first().cloned(),
        is_learner: member.is_learner(),
        ..MemberState::default()
    };
    let Some(url) = state.client_url.clone() else {
        state.error = Some("added but never started (no client URLs published)".into());
        return state;
    };
    let client = match conn.client_for(&url).await {
        Ok(client) => client,
        Err(e) => {
            state.error = Some(e.msg);
            return state;
        }
    };
    let (status, read) = tokio::join!(
        async {
            let mut client = client.clone();
            conn.bounded(&format!("status of {url}"), client.status())
                .await
        },
        async {
            let mut client = client.clone();
            conn.bounded(
                &format!("health read from {url}"),
                client.get("health", Some(GetOptions::new().with_keys_only())),
            )
            .await
            .map(|_| ())
        }
    );
    match status {
        Ok(s) => {
            state.reachable = true;
            state.status = Some(Status {
                leader: s.leader(),
                raft_term: s.raft_term(),
                raft_index: s.raft_index(),
                revision: s.header().map_or(0, |h| h.revision()),
                db_size: s.db_size(),
                db_size_in_use: s.raft_used_db_size(),
                version: s.version().to_string(),
                errors: s.errors().to_vec(),
            });
        }
        Err(e) => state.error = Some(e.msg),
    }
    let leader_known = state.status.as_ref().is_some_and(|s| s.leader != 0);
    match read {
        Ok(()) => state.healthy = true,
        Err(e) if is_permission_denied(&e) => state.healthy = true,
        // Learners serve no linearizable reads: healthy when they see a leader.
        Err(_) if state.is_learner && leader_known => state.healthy = true,
        Err(e) => {
            state.error.get_or_insert(e.msg);
        }
    }
    state
}

async fn alarms(conn: &Connection, url: &str) -> Vec<Alarm> {
    let Ok(mut client) = conn.client_for(url).await else {
        return Vec::new();
    };
    let alarms = conn.alarms(&mut client).await.unwrap_or_default();
    alarms
        .into_iter()
        .map(|(member_id, alarm)| Alarm {
            member_id,
            alarm: alarm.as_str_name().to_string(),
        })
        .collect()
}

/// HashKV of every member at the lowest revision any of them reported, so
/// that each has applied it.
async fn hash_all(conn: &Connection, state: &mut ClusterState) {
    let Some(revision) = state
        .members
        .iter()
        .filter_map(|m| m.status.as_ref().map(|s| s.revision))
        .min()
    else {
        return;
    };
    state.hash_revision = Some(revision);
    let mut tasks = JoinSet::new();
    for (index, member) in state.members.iter().enumerate() {
        let Some(url) = member.client_url.clone() else {
            continue;
        };
        let conn = conn.clone();
        tasks.spawn(async move {
            let hashed: Result<(u32, i64), Failure> = async {
                let mut client = conn.client_for(&url).await?;
                let r = conn
                    .bounded(&format!("HashKV of {url}"), client.hash_kv(revision))
                    .await?;
                Ok((r.hash(), r.compact_version()))
            }
            .await;
            (index, hashed.map_err(|e| e.msg))
        });
    }
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, hashed)) = joined {
            state.members[index].hash = Some(hashed);
        }
    }
}
