//! The result of `etcd_member`: the member list, leader and join settings
//! as the module returns them, check-mode previews and diffs.

use serde_json::{json, Map, Value};

use super::args::State;
use super::plan::Action;
use super::request::Request;
use super::view::{label_id, Member, View};
use crate::connection::member_id_hex;
use crate::protocol::{Failure, Outcome};

pub(super) fn check_mode_outcome(
    request: &Request,
    view: &View,
    target: Option<u64>,
    action: &Action,
    warnings: Vec<String>,
) -> Outcome {
    let what = match action {
        Action::Add => format!(
            "would add member {} with peer URLs {}{}",
            request.name.as_deref().unwrap_or_default(),
            request.peer_urls.join(","),
            if request.learner { " as a learner" } else { "" }
        ),
        Action::Update { id } => format!(
            "would update the peer URLs of member {} to {}",
            label_id(view, *id),
            request.peer_urls.join(",")
        ),
        Action::Remove { id, transfer_to } => match transfer_to {
            Some(to) => format!(
                "would move leadership from {} to {}, then remove it",
                label_id(view, *id),
                label_id(view, *to)
            ),
            None => format!("would remove member {}", label_id(view, *id)),
        },
        Action::Promote { id } => format!("would promote learner {}", label_id(view, *id)),
        Action::MoveLeader { id } => format!(
            "would move leadership from {} to {}",
            view.leader.map_or("none".into(), |l| label_id(view, l)),
            label_id(view, *id)
        ),
    };
    let expected = expected_after(request, view, action);
    let mut outcome = Outcome::new(true, what);
    fill_result(&mut outcome, request, view, target, action.name(), 0);
    if !warnings.is_empty() {
        outcome = outcome.with("warnings", warnings);
    }
    outcome.diff = Some(json!({
        "before": summary(view, request, target),
        "after": expected,
    }));
    outcome
}

/// The summary the cluster would have after `action`, for check-mode diffs.
fn expected_after(request: &Request, view: &View, action: &Action) -> Value {
    let mut after = summary(view, request, None);
    let members = after["members"]
        .as_object_mut()
        .expect("summary has members");
    let name = request.name.clone().unwrap_or_default();
    match action {
        Action::Add => {
            members.insert(
                name,
                json!({"peer_urls": request.peer_urls, "is_learner": request.learner, "started": false}),
            );
        }
        Action::Update { id } => {
            let key = member_key(
                view.member(*id).expect("planned on this view"),
                request,
                Some(*id),
            );
            if let Some(m) = members.get_mut(&key) {
                m["peer_urls"] = json!(request.peer_urls);
            }
        }
        Action::Remove { id, transfer_to } => {
            let key = member_key(
                view.member(*id).expect("planned on this view"),
                request,
                Some(*id),
            );
            members.remove(&key);
            if let Some(to) = transfer_to {
                after["leader"] = json!(label_id(view, *to));
            } else if view.leader == Some(*id) {
                after["leader"] = Value::Null;
            }
        }
        Action::Promote { id } => {
            let key = member_key(
                view.member(*id).expect("planned on this view"),
                request,
                Some(*id),
            );
            if let Some(m) = members.get_mut(&key) {
                m["is_learner"] = json!(false);
            }
        }
        Action::MoveLeader { id } => after["leader"] = json!(label_id(view, *id)),
    }
    after
}

/// The member list for diffs: keyed by name (the requested name for the
/// target while it has none), so `before` and `after` line up.
pub(super) fn summary(view: &View, request: &Request, target: Option<u64>) -> Value {
    let members: Map<String, Value> = view
        .members
        .iter()
        .map(|m| {
            (
                member_key(m, request, target),
                json!({
                    "id": member_id_hex(m.id()),
                    "peer_urls": m.peer_urls(),
                    "is_learner": m.is_learner(),
                    "started": !m.name().is_empty(),
                }),
            )
        })
        .collect();
    json!({
        "members": members,
        "leader": view.leader.map(|l| label_id(view, l)),
    })
}

fn member_key(m: &Member, request: &Request, target: Option<u64>) -> String {
    if !m.name().is_empty() {
        m.name().to_string()
    } else if target == Some(m.id()) && request.name.is_some() {
        request.name.clone().unwrap_or_default()
    } else {
        format!("(unstarted {})", m.peer_urls().join(","))
    }
}

pub(super) fn unchanged_msg(request: &Request, view: &View, target: Option<u64>) -> String {
    let who = target.map_or_else(|| request.describe(), |id| label_id(view, id));
    match request.state {
        State::Present => format!(
            "member {who} is present with peer URLs {}",
            request.peer_urls.join(",")
        ),
        State::Absent => format!("no member with {}: nothing to remove", request.describe()),
        State::Promoted => format!("member {who} is already a voting member"),
        State::Leader => format!("member {who} is already the leader"),
    }
}

/// Members as the result reports them.
fn members_json(view: &View) -> Value {
    Value::Array(view.members.iter().map(member_json).collect())
}

fn member_json(m: &Member) -> Value {
    json!({
        "id": member_id_hex(m.id()),
        "name": m.name(),
        "peer_urls": m.peer_urls(),
        "client_urls": m.client_urls(),
        "is_learner": m.is_learner(),
        // etcdctl calls a member without a name "unstarted".
        "started": !m.name().is_empty(),
    })
}

/// The four lines `etcdctl member add` prints for the new node. A member
/// that has not started has no name yet: the requested name stands in.
fn join_env(view: &View, request: &Request, target: Option<u64>) -> Map<String, Value> {
    let name = request.name.clone().unwrap_or_default();
    let mut cluster = Vec::new();
    let mut listed_target = false;
    for m in &view.members {
        let is_target = Some(m.id()) == target;
        listed_target |= is_target;
        let n = if is_target { name.as_str() } else { m.name() };
        for u in m.peer_urls() {
            cluster.push(format!("{n}={u}"));
        }
    }
    if !listed_target {
        // Check mode before an add: the member the add would create.
        for u in &request.peer_urls {
            cluster.push(format!("{name}={u}"));
        }
    }
    let mut env = Map::new();
    env.insert("ETCD_NAME".into(), json!(name));
    env.insert("ETCD_INITIAL_CLUSTER".into(), json!(cluster.join(",")));
    env.insert(
        "ETCD_INITIAL_ADVERTISE_PEER_URLS".into(),
        json!(request.peer_urls.join(",")),
    );
    env.insert("ETCD_INITIAL_CLUSTER_STATE".into(), json!("existing"));
    env
}

fn leader_json(view: &View) -> Value {
    match view.leader {
        Some(id) => json!({
            "id": member_id_hex(id),
            "name": view.member(id).map(|m| m.name().to_string()),
        }),
        None => Value::Null,
    }
}

pub(super) fn fill_result(
    outcome: &mut Outcome,
    request: &Request,
    view: &View,
    target: Option<u64>,
    action: &str,
    attempts: u64,
) {
    let member = target.and_then(|id| view.member(id));
    let data = &mut outcome.data;
    data.insert("action".into(), json!(action));
    data.insert("attempts".into(), json!(attempts));
    data.insert("members".into(), members_json(view));
    data.insert("leader".into(), leader_json(view));
    data.insert("member".into(), member.map_or(Value::Null, member_json));
    data.insert(
        "id".into(),
        member.map_or(Value::Null, |m| json!(member_id_hex(m.id()))),
    );
    data.insert("cluster_id".into(), json!(member_id_hex(view.cluster_id)));
    if request.state == State::Present {
        let env = join_env(view, request, target);
        for (k, v) in &env {
            data.insert(k.clone(), v.clone());
        }
        data.insert("join_env".into(), Value::Object(env));
    }
}

/// Adds the cluster as it is to a failure, so the operator sees it.
pub(super) fn with_cluster(failure: Failure, view: &View) -> Failure {
    failure
        .with("members", members_json(view))
        .with("leader", leader_json(view))
}
