//! `etcd_member`: the runbooks' `etcdctl member add/remove/update/promote`
//! and `move-leader`, as one idempotent module.
//!
//! Every run observes the cluster (member list and leader), plans at most
//! one change, and carries it out. When etcd refuses a reconfiguration for
//! a moment (etcd 3.4 does for about 5 s after a member starts or leaves),
//! it observes and plans again until `wait_timeout`, so a retry never
//! repeats a change that already happened.

use etcd_client::{MemberAddOptions, StatusResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

use crate::connection::{member_id_hex, ClusterView, Connection};
use crate::protocol::lenient::{Bool, List, Seconds};
use crate::protocol::{ArgType, Context, Failure, Module, OptionDoc, Outcome, ReturnDoc};

/// How long to wait for a reconfiguration etcd refuses for now.
const DEFAULT_WAIT: Duration = Duration::from_secs(60);
/// Pause between two attempts; etcd's own health window is 5 s.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// What the member should be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// A member with `name` and `peer_urls` (added or updated).
    #[default]
    Present,
    /// Not a member (removed).
    Absent,
    /// A voting member (a learner is promoted).
    Promoted,
    /// The raft leader (leadership is moved to it).
    Leader,
}

/// Arguments of `etcd_member` (plus the shared connection options).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberArgs {
    /// Desired state.
    #[serde(default)]
    pub state: Option<State>,
    /// Member name (etcd's `--name`).
    #[serde(default)]
    pub name: Option<String>,
    /// Member id in hex, as etcdctl prints it.
    #[serde(default)]
    pub id: Option<String>,
    /// Peer URLs of the member.
    #[serde(default)]
    pub peer_urls: Option<List>,
    /// Add the member as a non-voting learner.
    #[serde(default)]
    pub learner: Option<Bool>,
    /// Remove even when the cluster would lose quorum.
    #[serde(default)]
    pub force: Option<Bool>,
    /// How long to keep retrying what etcd refuses for now.
    #[serde(default)]
    pub wait_timeout: Option<Seconds>,
}

/// The `etcd_member` module.
pub struct EtcdMember;

impl Module for EtcdMember {
    const NAME: &'static str = "etcd_member";
    const SHORT_DESCRIPTION: &'static str =
        "Add, update, remove and promote etcd members, and move leadership";
    const DESCRIPTION: &'static [&'static str] = &[
        "Membership changes of an etcd cluster, like C(etcdctl member add/update/remove/promote) and C(etcdctl move-leader), made idempotent.",
        "C(state=present) adds the member when no member has its peer URLs (as a learner with C(learner=true)), or updates the peer URLs of the member with that name. A member added earlier but not started yet counts as present. The result holds what the new node needs to join, as C(etcdctl member add) prints it.",
        "C(state=absent) removes the member chosen by name, id or peer URLs. It refuses when the remaining healthy voting members would not be a majority of the remaining voting members, unless C(force=true). A leader is removed only after leadership has moved to a healthy voting member.",
        "C(state=promoted) promotes a learner once it has caught up with the leader; C(state=leader) moves leadership to the member (for rolling restarts).",
        "When etcd refuses a reconfiguration for a moment (after a member started or left), the module retries until C(wait_timeout).",
        "Always returns the member list and the leader as they are after the change. Check mode reports what would change and changes nothing.",
    ];
    const USES_CONNECTION: bool = true;
    const OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::new("state", ArgType::Str, "What the member should be.")
            .default("\"present\"")
            .choices(&["present", "absent", "promoted", "leader"]),
        OptionDoc::new(
            "name",
            ArgType::Str,
            "Member name (etcd's --name). Required with state=present; with the other states one of name, id or peer_urls selects the member.",
        ),
        OptionDoc::new(
            "id",
            ArgType::Str,
            "Member id in hex, as etcdctl member list prints it. Selects the member with state=absent, promoted or leader.",
        ),
        OptionDoc::new(
            "peer_urls",
            ArgType::List,
            "Peer URLs of the member (list or comma-separated string). Required with state=present; selects the member with the other states.",
        ),
        OptionDoc::new(
            "learner",
            ArgType::Bool,
            "With state=present, add the member as a non-voting learner (promote it later with state=promoted).",
        )
        .default("false"),
        OptionDoc::new(
            "force",
            ArgType::Bool,
            "With state=absent, remove the member even when the cluster would be left without quorum.",
        )
        .default("false"),
        OptionDoc::new(
            "wait_timeout",
            ArgType::Float,
            "Seconds to keep retrying while etcd refuses a change for now (unhealthy cluster just after a start or removal, learner not caught up yet, leader election).",
        )
        .default("60"),
    ];
    const EXAMPLES: &'static str = r#"
- name: Add the new node as a learner
  etcd_member:
    endpoints: "https://{{ hostvars[groups['etcd'][0]].ip }}:2379"
    name: "{{ inventory_hostname }}"
    peer_urls: "https://{{ ip }}:2380"
    learner: true
  register: joined

- name: Configure the new node to join the existing cluster
  template:
    src: etcd.env.j2   # uses joined.join_env.ETCD_INITIAL_CLUSTER
    dest: /etc/etcd/etcd.env

- name: Promote it once it has caught up
  etcd_member:
    endpoints: "https://{{ hostvars[groups['etcd'][0]].ip }}:2379"
    name: "{{ inventory_hostname }}"
    state: promoted
    wait_timeout: 300

- name: Move leadership away before restarting the leader
  etcd_member:
    name: "{{ groups['etcd'][1] }}"
    state: leader

- name: Remove a dead member by id
  etcd_member:
    id: 8e9e05c52164694d
    state: absent
"#;
    const RETURNS: &'static [ReturnDoc] = &[
        ReturnDoc {
            name: "members",
            description: "Every member after the change: id (hex), name (empty until started), peer_urls, client_urls, is_learner, started.",
            returned: "always, when the cluster answered",
            ty: "list",
        },
        ReturnDoc {
            name: "leader",
            description: "The leader after the change (id, name), or null when there is none.",
            returned: "always, when the cluster answered",
            ty: "dict",
        },
        ReturnDoc {
            name: "member",
            description: "The member the task is about, after the change (null once removed or in check mode before it is added).",
            returned: "success",
            ty: "dict",
        },
        ReturnDoc {
            name: "id",
            description: "The id (hex) of the member the task is about (null when it is not a member and was not added).",
            returned: "success",
            ty: "str",
        },
        ReturnDoc {
            name: "join_env",
            description: "With state=present: what the node needs to join, as etcdctl member add prints it: ETCD_NAME, ETCD_INITIAL_CLUSTER, ETCD_INITIAL_ADVERTISE_PEER_URLS, ETCD_INITIAL_CLUSTER_STATE (existing). The same keys are also returned at the top level.",
            returned: "state=present, success",
            ty: "dict",
        },
        ReturnDoc {
            name: "action",
            description: "What was done or, in check mode, would be done: added, updated, removed, promoted, leader_moved, or none.",
            returned: "success",
            ty: "str",
        },
        ReturnDoc {
            name: "attempts",
            description: "How many times the change was tried (more than 1 when etcd refused it for a while).",
            returned: "success",
            ty: "int",
        },
    ];
    type Args = MemberArgs;

    async fn run(args: MemberArgs, ctx: &Context) -> Result<Outcome, Failure> {
        let request = Request::from_args(args)?;
        let connection = ctx.connection.connect_settings()?;
        let deadline = Instant::now() + request.wait_timeout;

        let initial = observe(&connection, deadline).await?;
        let mut view = initial.clone();
        let mut attempts = 0u64;
        let mut maybe_applied = false;
        let mut done: Option<Done> = None;
        let mut target;
        let mut warnings;
        loop {
            let plan = match plan(&request, &connection, &view).await {
                Ok(plan) => plan,
                // A member that just started publishes its name a moment
                // later: wait for it rather than fail.
                Err(_) if may_be_starting(&request, &view) && Instant::now() < deadline => {
                    tokio::time::sleep(RETRY_PAUSE).await;
                    view = observe(&connection, deadline).await?;
                    continue;
                }
                Err(f) => return Err(with_cluster(f, &view)),
            };
            target = plan.target;
            warnings = plan.warnings;
            let Some(action) = plan.action else { break };
            if ctx.check_mode {
                return Ok(check_mode_outcome(
                    &request, &view, target, &action, warnings,
                ));
            }
            attempts += 1;
            match execute(&connection, &request, &view, &action, attempts, deadline).await {
                Ok(finished) => {
                    if let Some(id) = finished.added {
                        target = Some(id);
                    }
                    done = Some(finished);
                    break;
                }
                Err(e) => {
                    let retry = retryable(&e.msg);
                    if retry == Retry::No || Instant::now() >= deadline {
                        let mut failure = e;
                        if retry != Retry::No {
                            failure.msg = format!(
                                "{} (still refused after {attempts} attempts in {:.0}s)",
                                failure.msg,
                                request.wait_timeout.as_secs_f64()
                            );
                        }
                        if let Some(hint) = promote_hint(&request, &view, target, &failure.msg) {
                            failure.msg.push_str(&hint);
                        }
                        let failure = failure.with("attempts", attempts);
                        return Err(with_cluster(failure, &view));
                    }
                    maybe_applied |= retry == Retry::Ambiguous;
                    tokio::time::sleep(RETRY_PAUSE).await;
                    view = observe(&connection, deadline).await?;
                }
            }
        }

        // Read the result from the member that made the change: it has applied it.
        let after = match &done {
            Some(d) => settle(&connection, d, deadline).await,
            None if attempts > 0 => view.clone(),
            None => initial.clone(),
        };
        let changed = done.is_some() || maybe_applied;
        let action_name = done.as_ref().map_or("none", |d| d.action);
        let msg = match &done {
            Some(d) => d.msg.clone(),
            None if changed => {
                "the change was applied during an earlier attempt that timed out".to_string()
            }
            None => unchanged_msg(&request, &after, target),
        };
        let mut outcome = Outcome::new(changed, msg);
        fill_result(
            &mut outcome,
            &request,
            &after,
            target,
            action_name,
            attempts,
        );
        if !warnings.is_empty() {
            outcome = outcome.with("warnings", warnings);
        }
        outcome.diff = Some(json!({
            "before": summary(&initial, &request, target),
            "after": summary(&after, &request, target),
        }));
        Ok(outcome)
    }
}

/// The validated request.
#[derive(Debug)]
struct Request {
    state: State,
    name: Option<String>,
    id: Option<u64>,
    peer_urls: Vec<String>,
    learner: bool,
    force: bool,
    wait_timeout: Duration,
}

impl Request {
    fn from_args(args: MemberArgs) -> Result<Request, Failure> {
        let state = args.state.unwrap_or_default();
        let state_name = match state {
            State::Present => "present",
            State::Absent => "absent",
            State::Promoted => "promoted",
            State::Leader => "leader",
        };
        let name = args.name.map(|n| n.trim().to_string());
        if name.as_deref() == Some("") {
            return Err(Failure::new("argument 'name' is invalid: it is empty"));
        }
        let id = match args.id.as_deref().map(str::trim) {
            None => None,
            Some(hex) => Some(
                u64::from_str_radix(hex.trim_start_matches("0x"), 16)
                    .ok()
                    .filter(|id| *id != 0)
                    .ok_or_else(|| {
                        Failure::new(format!(
                            "argument 'id' is invalid: {hex:?} is not a member id in hex (as etcdctl member list prints it)"
                        ))
                    })?,
            ),
        };
        let peer_urls = match args.peer_urls {
            None => Vec::new(),
            Some(List(urls)) => {
                if urls.is_empty() {
                    return Err(Failure::new("argument 'peer_urls' is invalid: it is empty"));
                }
                urls.iter()
                    .map(|u| {
                        let u = normalize_url(u);
                        if u.starts_with("http://") || u.starts_with("https://") {
                            Ok(u)
                        } else {
                            Err(Failure::new(format!(
                                "argument 'peer_urls' is invalid: {u:?} is not an http:// or https:// URL"
                            )))
                        }
                    })
                    .collect::<Result<_, _>>()?
            }
        };
        let learner = args.learner.is_some_and(|b| b.0);
        let force = args.force.is_some_and(|b| b.0);

        match state {
            State::Present => {
                let missing: Vec<&str> = [
                    ("name", name.is_none()),
                    ("peer_urls", peer_urls.is_empty()),
                ]
                .into_iter()
                .filter_map(|(n, m)| m.then_some(n))
                .collect();
                if !missing.is_empty() {
                    return Err(Failure::new(format!(
                        "state is present but all of the following are missing: {}",
                        missing.join(", ")
                    )));
                }
                if id.is_some() {
                    return Err(Failure::new(
                        "id cannot be used with state=present: etcd assigns the id when it adds the member",
                    ));
                }
            }
            _ => {
                if name.is_none() && id.is_none() && peer_urls.is_empty() {
                    return Err(Failure::new(format!(
                        "state is {state_name} but any of the following are missing: name, id, peer_urls"
                    )));
                }
            }
        }
        if learner && state != State::Present {
            return Err(Failure::new(format!(
                "learner is only used with state=present, not state={state_name}"
            )));
        }
        if force && state != State::Absent {
            return Err(Failure::new(format!(
                "force is only used with state=absent, not state={state_name}"
            )));
        }
        Ok(Request {
            state,
            name,
            id,
            peer_urls,
            learner,
            force,
            wait_timeout: args.wait_timeout.map_or(DEFAULT_WAIT, |s| s.0),
        })
    }

    /// How the request names the member, for messages.
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(name) = &self.name {
            parts.push(format!("name {name}"));
        }
        if let Some(id) = self.id {
            parts.push(format!("id {}", member_id_hex(id)));
        }
        if !self.peer_urls.is_empty() {
            parts.push(format!("peer URLs {}", self.peer_urls.join(",")));
        }
        parts.join(", ")
    }
}

/// URLs compare without a trailing slash, as etcd compares them.
fn normalize_url(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

fn url_set(urls: &[String]) -> BTreeSet<String> {
    urls.iter().map(|u| normalize_url(u)).collect()
}

/// One change to make.
#[derive(Debug, Clone)]
enum Action {
    Add,
    Update { id: u64 },
    Remove { id: u64, transfer_to: Option<u64> },
    Promote { id: u64 },
    MoveLeader { id: u64 },
}

impl Action {
    fn name(&self) -> &'static str {
        match self {
            Action::Add => "added",
            Action::Update { .. } => "updated",
            Action::Remove { .. } => "removed",
            Action::Promote { .. } => "promoted",
            Action::MoveLeader { .. } => "leader_moved",
        }
    }
}

struct Plan {
    /// The member the request is about, if it is one.
    target: Option<u64>,
    action: Option<Action>,
    warnings: Vec<String>,
}

/// Finds the member the request designates (by every criterion given) and
/// decides what to do.
async fn plan(request: &Request, conn: &Connection, view: &ClusterView) -> Result<Plan, Failure> {
    let wanted_urls = url_set(&request.peer_urls);
    let by_urls: Vec<&etcd_client::Member> = if wanted_urls.is_empty() {
        Vec::new()
    } else {
        view.members
            .iter()
            .filter(|m| !url_set(m.peer_urls()).is_disjoint(&wanted_urls))
            .collect()
    };
    if by_urls.len() > 1 {
        return Err(Failure::new(format!(
            "peer URLs {} belong to several members: {}",
            request.peer_urls.join(","),
            by_urls
                .iter()
                .map(|m| label(m))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let by_urls = by_urls.first().copied();
    let by_name = request
        .name
        .as_ref()
        .and_then(|n| view.members.iter().find(|m| m.name() == n));
    let by_id = request.id.and_then(|id| view.member(id));
    let mut warnings = Vec::new();

    if request.state == State::Present {
        let name = request.name.as_deref().unwrap_or_default();
        return Ok(match (by_urls, by_name) {
            (Some(m), Some(n)) if m.id() != n.id() => {
                return Err(Failure::new(format!(
                    "peer URLs {} belong to member {}, not to the member named {name} ({})",
                    request.peer_urls.join(","),
                    label(m),
                    member_id_hex(n.id())
                )))
            }
            (Some(m), _) if !m.name().is_empty() && m.name() != name => {
                return Err(Failure::new(format!(
                    "peer URLs {} already belong to member {}",
                    request.peer_urls.join(","),
                    label(m)
                )))
            }
            (Some(m), _) | (None, Some(m)) => {
                if request.learner && !m.is_learner() {
                    warnings.push(format!(
                        "member {name} is already a voting member; learner=true has no effect"
                    ));
                }
                let action = (url_set(m.peer_urls()) != wanted_urls)
                    .then_some(Action::Update { id: m.id() });
                Plan {
                    target: Some(m.id()),
                    action,
                    warnings,
                }
            }
            (None, None) => Plan {
                target: None,
                action: Some(Action::Add),
                warnings,
            },
        });
    }

    // The other states select one member by every criterion given. A member
    // added but not started has no name yet: id or peer URLs may still
    // designate it together with the name it will have.
    let found_other = by_id.or(by_urls);
    let mut found: Vec<u64> = Vec::new();
    if request.name.is_some() {
        match by_name {
            Some(m) => found.push(m.id()),
            None if found_other.is_some_and(|m| m.name().is_empty()) => {}
            None => found.push(0),
        }
    }
    if request.id.is_some() {
        found.push(by_id.map_or(0, |m| m.id()));
    }
    if !wanted_urls.is_empty() {
        found.push(by_urls.map_or(0, |m| m.id()));
    }
    found.sort_unstable();
    found.dedup();
    let target = match found.as_slice() {
        [id] if *id != 0 => Some(*id),
        [0] => None,
        _ => {
            return Err(Failure::new(format!(
                "{} designate different members",
                request.describe()
            )))
        }
    };
    let Some(id) = target else {
        return match request.state {
            State::Absent => Ok(Plan {
                target: None,
                action: None,
                warnings,
            }),
            _ => Err(Failure::new(format!(
                "no member with {}; members: {}",
                request.describe(),
                view.members
                    .iter()
                    .map(label)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        };
    };
    let member = view.member(id).expect("target comes from the member list");
    let action = match request.state {
        State::Present => unreachable!("handled above"),
        State::Absent => {
            let probes = probe_voters(conn, view).await;
            let transfer_to = check_quorum(request, view, member, &probes)?;
            Some(Action::Remove { id, transfer_to })
        }
        State::Promoted => member.is_learner().then_some(Action::Promote { id }),
        State::Leader => {
            if member.is_learner() {
                return Err(Failure::new(format!(
                    "member {} is a learner and cannot lead: promote it first (state=promoted)",
                    label(member)
                )));
            }
            if member.client_urls().is_empty() {
                return Err(Failure::new(format!(
                    "member {} has not started yet and cannot lead",
                    label(member)
                )));
            }
            (view.leader != Some(id)).then_some(Action::MoveLeader { id })
        }
    };
    Ok(Plan {
        target: Some(id),
        action,
        warnings,
    })
}

/// Whether a promoted/leader request names a member that may simply not
/// have published its name yet (some member has none).
fn may_be_starting(request: &Request, view: &ClusterView) -> bool {
    matches!(request.state, State::Promoted | State::Leader)
        && request
            .name
            .as_ref()
            .is_some_and(|n| view.members.iter().all(|m| m.name() != n))
        && view.members.iter().any(|m| m.name().is_empty())
}

/// What a voting member's status call said.
struct Probe {
    id: u64,
    healthy: bool,
    why: String,
}

/// Asks every voting member for its status concurrently. A voter counts as
/// healthy when it answers and follows a leader; a voter that never
/// started counts against quorum as etcd counts it.
async fn probe_voters(conn: &Connection, view: &ClusterView) -> Vec<Probe> {
    let mut tasks = JoinSet::new();
    for m in view.members.iter().filter(|m| !m.is_learner()) {
        let (id, url, conn) = (m.id(), m.client_urls().first().cloned(), conn.clone());
        tasks.spawn(async move {
            let Some(url) = url else {
                return Probe {
                    id,
                    healthy: false,
                    why: "not started".into(),
                };
            };
            match status_at(&conn, &url).await {
                Ok(s) if s.leader() != 0 => Probe {
                    id,
                    healthy: true,
                    why: String::new(),
                },
                Ok(_) => Probe {
                    id,
                    healthy: false,
                    why: "no leader".into(),
                },
                Err(e) => Probe {
                    id,
                    healthy: false,
                    why: e.msg,
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

async fn status_at(conn: &Connection, url: &str) -> Result<StatusResponse, Failure> {
    let mut client = conn.client_for(url).await?;
    conn.bounded(&format!("status of {url}"), client.status())
        .await
}

/// Refuses a removal that would leave fewer healthy voters than a majority
/// of the remaining voters (unless forced). Returns the healthy voter that
/// takes over when the member to remove leads.
fn check_quorum(
    request: &Request,
    view: &ClusterView,
    member: &etcd_client::Member,
    probes: &[Probe],
) -> Result<Option<u64>, Failure> {
    let remaining: Vec<&Probe> = probes.iter().filter(|p| p.id != member.id()).collect();
    let healthy: Vec<&Probe> = remaining.iter().copied().filter(|p| p.healthy).collect();
    let name_of = |id: u64| {
        view.member(id)
            .map(label)
            .unwrap_or_else(|| member_id_hex(id))
    };
    if !request.force && 2 * healthy.len() <= remaining.len() {
        let majority = remaining.len() / 2 + 1;
        let sick: Vec<String> = remaining
            .iter()
            .filter(|p| !p.healthy)
            .map(|p| format!("{} ({})", name_of(p.id), p.why))
            .collect();
        return Err(Failure::new(format!(
            "refusing to remove member {}: the cluster would be left without quorum. After the removal {} of {} voting members would be healthy, and quorum needs {majority}{}. Bring the unhealthy members back first, or set force=true to remove it anyway.",
            label(member),
            healthy.len(),
            remaining.len(),
            if sick.is_empty() {
                String::new()
            } else {
                format!("; unhealthy: {}", sick.join(", "))
            }
        ))
        .with("healthy_voters", healthy.iter().map(|p| name_of(p.id)).collect::<Vec<_>>()));
    }
    if view.leader != Some(member.id()) {
        return Ok(None);
    }
    // Prefer a voter that is both healthy and started (it has a client URL).
    Ok(healthy.first().map(|p| p.id))
}

/// What an executed action did.
struct Done {
    action: &'static str,
    msg: String,
    /// The endpoint that made the change, to read the result from.
    endpoint: String,
    /// The new member's id after an add.
    added: Option<u64>,
    /// The leader to wait for after a move.
    new_leader: Option<u64>,
}

/// Client URLs of started voting members, the leader first, without `except`.
fn voter_urls(view: &ClusterView, except: Option<u64>) -> Vec<String> {
    let mut voters: Vec<&etcd_client::Member> = view
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
async fn execute(
    conn: &Connection,
    request: &Request,
    view: &ClusterView,
    action: &Action,
    attempt: u64,
    deadline: Instant,
) -> Result<Done, Failure> {
    let pick = |urls: Vec<String>| urls[(attempt as usize - 1) % urls.len()].clone();
    let cluster = member_id_hex(view.cluster_id);
    match action {
        Action::Add => {
            let endpoint = pick(voter_urls(view, None));
            let mut client = conn.client_for(&endpoint).await?;
            let options = request
                .learner
                .then(|| MemberAddOptions::new().with_is_learner());
            let response = conn
                .bounded(
                    &format!("adding member via {endpoint}"),
                    client.member_add(request.peer_urls.clone(), options),
                )
                .await?;
            let id = response
                .member()
                .map(|m| m.id())
                .ok_or_else(|| Failure::new("etcd answered member add without the new member"))?;
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
            let mut client = conn.client_for(&endpoint).await?;
            conn.bounded(
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
                    Failure::new("etcdserver: no leader (leader has no client URL)")
                })?;
                conn.move_leader(leader_url, *to).await?;
                let to_url = view
                    .member(*to)
                    .and_then(|m| m.client_urls().first().cloned())
                    .unwrap_or_else(|| endpoint.clone());
                wait_for_leader(conn, &to_url, *to, deadline).await?;
                prefix = format!(
                    "Leadership moved from {} to {}. ",
                    label_id(view, *id),
                    label_id(view, *to)
                );
                endpoint = to_url;
            }
            let mut client = conn.client_for(&endpoint).await?;
            conn.bounded(
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
            let mut client = conn.client_for(&endpoint).await?;
            conn.bounded(
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
                .ok_or_else(|| Failure::new("etcdserver: no leader"))?
                .to_string();
            conn.move_leader(&leader_url, *id).await?;
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
async fn settle(conn: &Connection, done: &Done, deadline: Instant) -> ClusterView {
    let mut last = None;
    loop {
        let view = match conn.cluster_view_at(&done.endpoint).await {
            Ok(v) => Some(v),
            Err(_) => conn.cluster_view().await.ok(),
        };
        if let Some(v) = view {
            if done.new_leader.is_none_or(|l| v.leader == Some(l)) || Instant::now() >= deadline {
                return v;
            }
            last = Some(v);
        } else if Instant::now() >= deadline {
            // Nothing answers any more: report what was seen last rather
            // than fail a change that was made.
            return last.unwrap_or_else(|| ClusterView {
                endpoint: done.endpoint.clone(),
                members: Vec::new(),
                leader: None,
                member_id: 0,
                cluster_id: 0,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Observes the cluster, retrying while no endpoint answers (a leader
/// election, a member restarting) until the deadline.
async fn observe(conn: &Connection, deadline: Instant) -> Result<ClusterView, Failure> {
    loop {
        match conn.cluster_view().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(RETRY_PAUSE).await,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Retry {
    /// A definite answer: do not retry.
    No,
    /// etcd refused for now and changed nothing.
    Refused,
    /// No answer: the change may or may not have been applied.
    Ambiguous,
}

/// Classifies an error: etcd 3.4 refuses reconfiguration for 5 s after a
/// member starts or leaves, refuses promotion until the learner caught up,
/// and answers nothing during an election.
fn retryable(msg: &str) -> Retry {
    let msg = msg.to_ascii_lowercase();
    const REFUSED: &[&str] = &[
        "unhealthy cluster",
        "not healthy for reconfigure",
        "not enough started members",
        "in sync with leader",
        "no leader",
        "not leader",
        "leader changed",
        "too many requests",
        "leadership transfer",
        "connection refused",
        // Someone else changed the membership meanwhile: observe and plan again.
        "member not found",
        "peer urls already exists",
        "id removed",
    ];
    const AMBIGUOUS: &[&str] = &[
        "timed out",
        "timeout",
        "unavailable",
        "deadline",
        "transport error",
        "broken pipe",
        "connection reset",
    ];
    if REFUSED.iter().any(|s| msg.contains(s)) {
        Retry::Refused
    } else if AMBIGUOUS.iter().any(|s| msg.contains(s)) {
        Retry::Ambiguous
    } else {
        Retry::No
    }
}

fn promote_hint(
    request: &Request,
    view: &ClusterView,
    target: Option<u64>,
    msg: &str,
) -> Option<String> {
    if request.state != State::Promoted || !msg.contains("in sync with leader") {
        return None;
    }
    let member = target.and_then(|id| view.member(id))?;
    Some(if member.name().is_empty() {
        format!(
            "; member {} has not started: start etcd on it with --initial-cluster-state=existing first",
            label(member)
        )
    } else {
        format!(
            "; learner {} has not caught up with the leader yet",
            label(member)
        )
    })
}

fn check_mode_outcome(
    request: &Request,
    view: &ClusterView,
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
fn expected_after(request: &Request, view: &ClusterView, action: &Action) -> Value {
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
fn summary(view: &ClusterView, request: &Request, target: Option<u64>) -> Value {
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

fn member_key(m: &etcd_client::Member, request: &Request, target: Option<u64>) -> String {
    if !m.name().is_empty() {
        m.name().to_string()
    } else if target == Some(m.id()) && request.name.is_some() {
        request.name.clone().unwrap_or_default()
    } else {
        format!("(unstarted {})", m.peer_urls().join(","))
    }
}

/// `name (id)`, or `id` for a member that has not started.
fn label(m: &etcd_client::Member) -> String {
    if m.name().is_empty() {
        format!("{} (unstarted)", member_id_hex(m.id()))
    } else {
        format!("{} ({})", m.name(), member_id_hex(m.id()))
    }
}

fn label_id(view: &ClusterView, id: u64) -> String {
    view.member(id)
        .map(label)
        .unwrap_or_else(|| member_id_hex(id))
}

fn unchanged_msg(request: &Request, view: &ClusterView, target: Option<u64>) -> String {
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
fn members_json(view: &ClusterView) -> Value {
    Value::Array(view.members.iter().map(member_json).collect())
}

fn member_json(m: &etcd_client::Member) -> Value {
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
fn join_env(view: &ClusterView, request: &Request, target: Option<u64>) -> Map<String, Value> {
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

fn leader_json(view: &ClusterView) -> Value {
    match view.leader {
        Some(id) => json!({
            "id": member_id_hex(id),
            "name": view.member(id).map(|m| m.name().to_string()),
        }),
        None => Value::Null,
    }
}

fn fill_result(
    outcome: &mut Outcome,
    request: &Request,
    view: &ClusterView,
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
fn with_cluster(failure: Failure, view: &ClusterView) -> Failure {
    failure
        .with("members", members_json(view))
        .with("leader", leader_json(view))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(args: Value) -> Result<Request, String> {
        let args: MemberArgs = serde_json::from_value(args).map_err(|e| e.to_string())?;
        Request::from_args(args).map_err(|f| f.msg)
    }

    #[test]
    fn arguments_are_checked_per_state() {
        let r = request(json!({"name": "m3", "peer_urls": "http://10.0.0.4:2380/"})).unwrap();
        assert_eq!(r.state, State::Present);
        assert_eq!(r.peer_urls, vec!["http://10.0.0.4:2380"]);
        assert_eq!(r.wait_timeout, DEFAULT_WAIT);
        let r = request(json!({"state": "absent", "id": "8e9e05c52164694d"})).unwrap();
        assert_eq!(r.id, Some(0x8e9e05c52164694d));
        assert!(
            request(json!({"state": "present", "peer_urls": ["http://a:1"]}))
                .unwrap_err()
                .contains("missing: name")
        );
        assert!(request(json!({"state": "promoted"}))
            .unwrap_err()
            .contains("any of the following are missing: name, id, peer_urls"));
        assert!(
            request(json!({"name": "m", "peer_urls": "http://a:1", "id": "1"}))
                .unwrap_err()
                .contains("id cannot be used with state=present")
        );
        assert!(
            request(json!({"state": "absent", "name": "m", "learner": true}))
                .unwrap_err()
                .contains("learner is only used with state=present")
        );
        assert!(request(json!({"state": "absent", "id": "xyz"}))
            .unwrap_err()
            .contains("not a member id in hex"));
    }

    #[test]
    fn etcd_refusals_are_retried_and_timeouts_are_ambiguous() {
        for msg in [
            "adding member via http://x: etcdserver: unhealthy cluster",
            "etcdserver: re-configuration failed due to not enough started members",
            "etcdserver: can only promote a learner member which is in sync with leader",
            "moving leadership: etcdserver: not leader",
        ] {
            assert_eq!(retryable(msg), Retry::Refused, "{msg}");
        }
        assert_eq!(
            retryable("removing member 1 via http://x: timed out after 7.0s"),
            Retry::Ambiguous
        );
        assert_eq!(
            retryable("etcdserver: can only promote a learner member"),
            Retry::No
        );
    }
}
