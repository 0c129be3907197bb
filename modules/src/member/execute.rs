//! Carrying out one planned change of `etcd_member` (each attempt through
//! another endpoint), and reading the cluster back once it is applied.

use etcd_client::MemberAddOptions;
use std::time::{Duration, Instant};

use super::attempt::{classify, CallError, Kind};
use super::plan::Action;
use super::probe::status_at;
use super::request::Request;
use super::view::{label_id, Member, View};
use crate::connection::{describe, is_permission_denied, member_id_hex, Connection};
use crate::protocol::{Failure, FailureKind};

/// What an executed action did.
pub(super) struct Done {
    /// The `action` result value.
    pub action: &'static str,
    /// The result message.
    pub msg: String,
    /// The endpoint that made the change, to read the result from.
    pub endpoint: String,
    /// The new member's id after an add.
    pub added: Option<u64>,
    /// The leader to wait for after a move.
    pub new_leader: Option<u64>,
}

/// Client URLs of started voting members, the leader first, without `except`.
fn voter_urls(view: &View, except: Option<u64>) -> Vec<String> {
    let mut voters: Vec<&Member> = view
        .members
        .iter()
        .filter(|m| !m.is_learner() && Some(m.id()) != except && !m.client_urls().is_empty())
        .collect();
    voters.sort_by_key(|m| Some(m.id()) != view.leader);
    let mut urls: Vec<String> = voters.iter().map(|m| m.client_urls()[0].clone()).collect();
    if urls.is_empty() {
        urls.push(view.endpoint.clone());
    }
    urls
}

/// Carries out `action`. Each attempt uses another endpoint, so a member
/// that stopped answering is not asked again and again.
pub(super) async fn execute(
    conn: &Connection,
    request: &Request,
    view: &View,
    action: &Action,
    attempt: u64,
    deadline: Instant,
) -> Result<Done, CallError> {
    let pick = |urls: Vec<String>| urls[(attempt as usize - 1) % urls.len()].clone();
    let cluster = member_id_hex(view.cluster_id);
    match action {
        Action::Add => {
            let endpoint = pick(voter_urls(view, None));
            let mut client = connect(conn, &endpoint).await?;
            let options = request
                .learner
                .then(|| MemberAddOptions::new().with_is_learner());
            let response = call(
                conn,
                &format!("adding member via {endpoint}"),
                client.member_add(request.peer_urls.clone(), options),
            )
            .await?;
            let id = response.member().map(|m| m.id()).ok_or_else(|| {
                CallError::new(
                    Kind::NoAnswer,
                    "etcd answered member add without the new member",
                )
            })?;
            Ok(Done {
                action: action.name(),
                msg: format!(
                    "Member {} added to cluster {cluster}{}",
                    member_id_hex(id),
                    if request.learner { " as a learner" } else { "" }
                ),
                endpoint,
                added: Some(id),
                new_leader: None,
            })
        }
        Action::Update { id } => {
            let endpoint = pick(voter_urls(view, None));
            let urls = request.peer_urls.clone();
            let mut client = connect(conn, &endpoint).await?;
            call(
                conn,
                &format!("updating member {} via {endpoint}", member_id_hex(*id)),
                client.member_update(*id, urls.clone()),
            )
            .await?;
            Ok(Done {
                action: action.name(),
                msg: format!(
                    "Member {} updated in cluster {cluster}: peer URLs {}",
                    member_id_hex(*id),
                    urls.join(",")
                ),
                endpoint,
                added: None,
                new_leader: None,
            })
        }
        Action::Remove { id, transfer_to } => {
            let mut prefix = String::new();
            let mut endpoint = pick(voter_urls(view, Some(*id)));
            if let Some(to) = transfer_to {
                // The runbook: never remove the leader. Hand over first, then
                // remove through the new leader.
                let leader_url = view.leader_url().ok_or_else(|| {
                    CallError::new(
                        Kind::Refused,
                        "no leader with a client URL to hand over from",
                    )
                })?;
                move_leader(conn, leader_url, *to).await?;
                let to_url = view
                    .member(*to)
                    .and_then(|m| m.client_urls().first().cloned())
                    .unwrap_or_else(|| endpoint.clone());
                wait_for_leader(conn, &to_url, *to, deadline)
                    .await
                    .map_err(|f| CallError {
                        kind: Kind::NoAnswer,
                        failure: f,
                    })?;
                prefix = format!(
                    "Leadership moved from {} to {}. ",
                    label_id(view, *id),
                    label_id(view, *to)
                );
                endpoint = to_url;
            }
            let mut client = connect(conn, &endpoint).await?;
            call(
                conn,
                &format!("removing member {} via {endpoint}", member_id_hex(*id)),
                client.member_remove(*id),
            )
            .await?;
            Ok(Done {
                action: action.name(),
                msg: format!(
                    "{prefix}Member {} removed from cluster {cluster}",
                    label_id(view, *id)
                ),
                endpoint,
                added: None,
                new_leader: None,
            })
        }
        Action::Promote { id } => {
            let endpoint = pick(voter_urls(view, None));
            let mut client = connect(conn, &endpoint).await?;
            call(
                conn,
                &format!("promoting member {} via {endpoint}", member_id_hex(*id)),
                client.member_promote(*id),
            )
            .await?;
            Ok(Done {
                action: action.name(),
                msg: format!(
                    "Member {} promoted in cluster {cluster}",
                    label_id(view, *id)
                ),
                endpoint,
                added: None,
                new_leader: None,
            })
        }
        Action::MoveLeader { id } => {
            let leader_url = view
                .leader_url()
                .ok_or_else(|| CallError::new(Kind::Refused, "no leader to move leadership from"))?
                .to_string();
            move_leader(conn, &leader_url, *id).await?;
            let endpoint = view
                .member(*id)
                .and_then(|m| m.client_urls().first().cloned())
                .unwrap_or(leader_url);
            Ok(Done {
                action: action.name(),
                msg: format!(
                    "Leadership moved from {} to {}",
                    view.leader.map_or("none".into(), |l| label_id(view, l)),
                    label_id(view, *id)
                ),
                endpoint,
                added: None,
                new_leader: Some(*id),
            })
        }
    }
}

/// Polls `url` until it follows `leader`.
async fn wait_for_leader(
    conn: &Connection,
    url: &str,
    leader: u64,
    deadline: Instant,
) -> Result<(), Failure> {
    loop {
        let seen = status_at(conn, url).await.map(|s| s.leader());
        if seen.as_ref().ok() == Some(&leader) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Failure::new(format!(
                "leadership did not move to {} in time: {}",
                member_id_hex(leader),
                match seen {
                    Ok(l) => format!("{url} follows {}", member_id_hex(l)),
                    Err(e) => e.msg,
                }
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The cluster as the member that made the change sees it (it has applied
/// the change), once it follows the new leader after a move.
pub(super) async fn settle(conn: &Connection, done: &Done, deadline: Instant) -> View {
    let mut last = None;
    loop {
        let view = match conn.cluster_view_at(&done.endpoint).await {
            Ok(v) => Some(View::from(v)),
            Err(_) => conn.cluster_view().await.ok().map(View::from),
        };
        if let Some(v) = view {
            if done.new_leader.is_none_or(|l| v.leader == Some(l)) || Instant::now() >= deadline {
                return v;
            }
            last = Some(v);
        } else if Instant::now() >= deadline {
            // Nothing answers any more: report what was seen last rather
            // than fail a change that was made.
            return last.unwrap_or_else(|| View {
                endpoint: done.endpoint.clone(),
                ..View::default()
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A client for `endpoint`. Nothing was sent when this fails, so it is a
/// refusal to retry, unless the credentials were refused.
async fn connect(conn: &Connection, endpoint: &str) -> Result<etcd_client::Client, CallError> {
    conn.client_for(endpoint).await.map_err(|f| CallError {
        kind: if is_permission_denied(&f) {
            Kind::Permanent
        } else {
            Kind::Refused
        },
        failure: f,
    })
}

/// Awaits an etcd call bounded like `Connection::bounded`, keeping the
/// kind of error for the retry decision.
async fn call<T>(
    conn: &Connection,
    what: &str,
    request: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, CallError> {
    let limit = conn.dial_timeout + conn.command_timeout;
    match tokio::time::timeout(limit, request).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => {
            let failure =
                Failure::new(format!("{what}: {}", describe(&e))).of_kind(FailureKind::of_etcd(&e));
            Err(CallError {
                kind: classify(&failure.kind),
                failure,
            })
        }
        Err(_) => Err(CallError::new(
            Kind::NoAnswer,
            format!("{what}: no answer within {:.1}s", limit.as_secs_f64()),
        )),
    }
}

/// Moves leadership (etcd only accepts it on the leader).
async fn move_leader(conn: &Connection, leader_url: &str, to: u64) -> Result<(), CallError> {
    let mut client = connect(conn, leader_url).await?;
    call(
        conn,
        &format!(
            "moving leadership to {} via {leader_url}",
            member_id_hex(to)
        ),
        client.move_leader(to),
    )
    .await
    .map(|_| ())
}
