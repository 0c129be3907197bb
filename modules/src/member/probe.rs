//! The network probes that gather what `etcd_member` plans from: the
//! member list and leader, and before a removal the voters' health.

use etcd_client::StatusResponse;
use std::time::Instant;
use tokio::task::JoinSet;

use super::args::State;
use super::plan;
use super::request::Request;
use super::view::{Observed, View, VoterProbe};
use super::RETRY_PAUSE;
use crate::connection::{is_permission_denied, ClusterView, Connection};
use crate::protocol::Failure;

/// Observes what the plan for `request` needs: the member list and leader,
/// and the voters' health when a member is to be removed.
pub(super) async fn observe(
    conn: &Connection,
    request: &Request,
    deadline: Instant,
) -> Result<Observed, Failure> {
    let view = View::from(cluster_view(conn, deadline).await?);
    let removes =
        request.state == State::Absent && matches!(plan::target(request, &view), Ok(Some(_)));
    let voters = if removes {
        probe_voters(conn, &view).await
    } else {
        Vec::new()
    };
    Ok(Observed { view, voters })
}

/// Observes the cluster, retrying while no endpoint answers (a leader
/// election, a member restarting) until the deadline. A refusal that
/// retrying cannot cure (permission denied) fails at once.
async fn cluster_view(conn: &Connection, deadline: Instant) -> Result<ClusterView, Failure> {
    loop {
        match conn.cluster_view().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline || is_permission_denied(&e) => return Err(e),
            Err(_) => tokio::time::sleep(RETRY_PAUSE).await,
        }
    }
}

/// Asks every voting member for its status concurrently. A voter counts as
/// healthy when it answers and follows a leader; a voter that never
/// started counts against quorum as etcd counts it.
async fn probe_voters(conn: &Connection, view: &View) -> Vec<VoterProbe> {
    let mut tasks = JoinSet::new();
    for m in view.members.iter().filter(|m| !m.is_learner()) {
        let (id, url, conn) = (m.id(), m.client_urls().first().cloned(), conn.clone());
        tasks.spawn(async move {
            let Some(url) = url else {
                return VoterProbe {
                    id,
                    healthy: false,
                    why: "not started".into(),
                    progress: (0, 0),
                };
            };
            match status_at(&conn, &url).await {
                Ok(s) if s.leader() != 0 => VoterProbe {
                    id,
                    healthy: true,
                    why: String::new(),
                    progress: (s.raft_index(), s.raft_applied_index()),
                },
                Ok(s) => VoterProbe {
                    id,
                    healthy: false,
                    why: "no leader".into(),
                    progress: (s.raft_index(), s.raft_applied_index()),
                },
                Err(e) => VoterProbe {
                    id,
                    healthy: false,
                    why: e.msg,
                    progress: (0, 0),
                },
            }
        });
    }
    let mut probes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok(p) = joined {
            probes.push(p);
        }
    }
    probes
}

/// The status of the member at `url`.
pub(super) async fn status_at(conn: &Connection, url: &str) -> Result<StatusResponse, Failure> {
    let mut client = conn.client_for(url).await?;
    conn.bounded(&format!("status of {url}"), client.status())
        .await
}
