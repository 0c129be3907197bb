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

use crate::connection::{
    describe, is_permission_denied, member_id_hex, ClusterView, Connection, ConnectionArgs,
};
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
    /// Member name (etcd's `--name`); numbers are converted as Ansible does.
    #[serde(default)]
    pub name: Option<Text>,
    /// Member id: a hex string as etcdctl's table prints it, or an integer
    /// as `etcdctl -w json member list` prints it.
    #[serde(default)]
    pub id: Option<IdArg>,
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
    /// Members (names, hex ids or peer URLs) that must not receive
    /// leadership when the member to remove leads: those leaving next.
    #[serde(default)]
    pub avoid: Option<List>,
}

/// A string option that also takes a number or boolean, converted to text
/// as Ansible converts them for `type: str` (`5` -> `"5"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Text, E> {
                // Python's str(1.0) is "1.0".
                Ok(Text(
                    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e16 {
                        format!("{v:.1}")
                    } else {
                        v.to_string()
                    },
                ))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Text, E> {
                // Python's str(True).
                Ok(Text(if v { "True" } else { "False" }.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A member id as given: etcdctl's table prints ids in hex (a string), its
/// JSON output as decimal integers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdArg {
    /// A hex string (`8e9e05c52164694d`, optionally `0x`-prefixed).
    Hex(String),
    /// A decimal integer.
    Int(u64),
}

impl<'de> Deserialize<'de> for IdArg {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = IdArg;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member id: a hex string as etcdctl member list prints it, or a positive integer")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IdArg, E> {
                Ok(IdArg::Hex(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<IdArg, E> {
                Ok(IdArg::Int(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<IdArg, E> {
                u64::try_from(v)
                    .map(IdArg::Int)
                    .map_err(|_| E::custom(format!("{v} is not a member id (negative)")))
            }
        }
        d.deserialize_any(V)
    }
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
        "C(state=absent) removes the member chosen by name, id or peer URLs. It refuses when the remaining healthy voting members would not be a majority of the remaining voting members, unless C(force=true). A leader is removed only after leadership has moved to the most up-to-date healthy voting member not listed in C(avoid). A member added but not started has no name yet: name it by C(peer_urls) or C(id); by C(name) alone the task fails while such members exist, listing them.",
        "Endpoints that can never answer (malformed, or a host name that does not resolve) fail the task at once; with several endpoints, the unresolvable ones are skipped with a warning.",
        "C(state=promoted) promotes a learner once it has caught up with the leader; C(state=leader) moves leadership to the member (for rolling restarts).",
        "When etcd refuses a reconfiguration for a moment (after a member started or left), the module retries until C(wait_timeout).",
        "Always returns the member list and the leader as they are after the change. Check mode reports what would change and changes nothing.",
    ];
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
            ArgType::Raw,
            "Member id: a hex string as etcdctl member list prints it (quote it in YAML), or a decimal integer as etcdctl -w json member list prints it. Selects the member with state=absent, promoted or leader.",
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
            "avoid",
            ArgType::List,
            "With state=absent, members that must not receive leadership when the member to remove is the leader (names, hex ids or peer URLs): the members the same run removes next. Leadership goes to the most up-to-date healthy voting member that stays; the task fails, changing nothing, when there is none.",
        ),
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
    type Shared = ConnectionArgs;

    async fn run(args: MemberArgs, ctx: &Context<ConnectionArgs>) -> Result<Outcome, Failure> {
        let request = Request::from_args(args)?;
        let mut connection = ctx.shared.connect_settings()?;
        // Endpoints that can never answer fail the task now, not after
        // wait_timeout of retries.
        let endpoint_warnings = usable_endpoints(&mut connection).await?;
        let deadline = Instant::now() + request.wait_timeout;

        let initial = observe(&connection, deadline).await?;
        let mut view = initial.clone();
        let started = Instant::now();
        let mut attempts = 0u64;
        let (mut refused, mut unanswered) = (0u64, 0u64);
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
                warnings.extend(endpoint_warnings);
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
                    match e.kind {
                        Kind::Refused => refused += 1,
                        Kind::NoAnswer => unanswered += 1,
                        Kind::Permanent => {}
                    }
                    if e.kind == Kind::Permanent || Instant::now() >= deadline {
                        let mut failure = e.failure;
                        if e.kind != Kind::Permanent {
                            failure.msg = format!(
                                "{} ({})",
                                failure.msg,
                                gave_up(attempts, refused, unanswered, started.elapsed())
                            );
                        }
                        if let Some(hint) = promote_hint(&request, &view, target, &failure.msg) {
                            failure.msg.push_str(&hint);
                        }
                        let failure = failure
                            .with("attempts", attempts)
                            .with("attempts_refused", refused)
                            .with("attempts_unanswered", unanswered);
                        return Err(with_cluster(failure, &view));
                    }
                    maybe_applied |= e.kind == Kind::NoAnswer;
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
        warnings.extend(endpoint_warnings);
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
    /// With an integer id: its digits read as hex, to catch an etcdctl hex
    /// id that YAML turned into an integer (`id: 1234567890123456`).
    id_as_hex: Option<u64>,
    peer_urls: Vec<String>,
    learner: bool,
    force: bool,
    wait_timeout: Duration,
    /// Members that must not receive leadership (names, hex ids, peer URLs).
    avoid: Vec<String>,
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
        let name = args.name.map(|n| n.0.trim().to_string());
        if name.as_deref() == Some("") {
            return Err(Failure::new("argument 'name' is invalid: it is empty"));
        }
        let (id, id_as_hex) = match &args.id {
            None => (None, None),
            Some(arg) => {
                let (id, as_hex) = parse_id(arg).ok_or_else(|| {
                    Failure::new(format!(
                        "argument 'id' is invalid: {} is not a member id (a hex string as etcdctl member list prints it, or a positive integer)",
                        match arg {
                            IdArg::Hex(s) => format!("{s:?}"),
                            IdArg::Int(i) => i.to_string(),
                        }
                    ))
                })?;
                (Some(id), as_hex)
            }
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
        let avoid: Vec<String> = args
            .avoid
            .map(|List(v)| {
                v.iter()
                    .map(|a| normalize_url(a))
                    .filter(|a| !a.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if !avoid.is_empty() && state != State::Absent {
            return Err(Failure::new(format!(
                "avoid is only used with state=absent, not state={state_name}"
            )));
        }

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
            id_as_hex,
            peer_urls,
            learner,
            force,
            wait_timeout: args.wait_timeout.map_or(DEFAULT_WAIT, |s| s.0),
            avoid,
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

/// A member id from a hex string or a decimal integer (never 0), and for
/// an integer, its digits read as hex when they can be.
fn parse_id(arg: &IdArg) -> Option<(u64, Option<u64>)> {
    match arg {
        IdArg::Hex(s) => {
            let s = s.trim();
            let hex = s
                .strip_prefix("0x")
                .or_else(|| s.strip_prefix("0X"))
                .unwrap_or(s);
            if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            u64::from_str_radix(hex, 16)
                .ok()
                .filter(|id| *id != 0)
                .map(|id| (id, None))
        }
        IdArg::Int(0) => None,
        IdArg::Int(i) => Some((*i, u64::from_str_radix(&i.to_string(), 16).ok())),
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
    if let (Some(id), None, Some(hex)) = (request.id, by_id, request.id_as_hex) {
        if let Some(m) = view.member(hex) {
            return Err(Failure::new(format!(
                "id {id} (a decimal integer) is no member, but member {} has the id {} in hex, as etcdctl member list prints it: quote the id in YAML (id: \"{}\") to mean that member",
                label(m),
                member_id_hex(hex),
                member_id_hex(hex)
            )));
        }
    }
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
    let unstarted: Vec<&etcd_client::Member> = view
        .members
        .iter()
        .filter(|m| m.name().is_empty())
        .collect();
    if target.is_none()
        && request.state == State::Absent
        && request.name.is_some()
        && request.id.is_none()
        && wanted_urls.is_empty()
        && !unstarted.is_empty()
    {
        // etcd learns a member's name when it starts: an unstarted member
        // may be the one meant. Never answer "nothing to remove" then.
        return Err(Failure::new(format!(
            "no started member is named {}, but {} added and not started yet, and etcd does not know its name: name the member to remove by peer_urls (or id): {}",
            request.name.as_deref().unwrap_or_default(),
            if unstarted.len() == 1 { "one member was" } else { "some members were" },
            unstarted
                .iter()
                .map(|m| format!("id {} with peer_urls {}", member_id_hex(m.id()), m.peer_urls().join(",")))
                .collect::<Vec<_>>()
                .join("; ")
        ))
        .with(
            "unstarted",
            unstarted
                .iter()
                .map(|m| json!({"id": member_id_hex(m.id()), "peer_urls": m.peer_urls()}))
                .collect::<Vec<_>>(),
        ));
    }
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
    /// How far the member's log is: (committed raft index, applied
    /// index); zeros when it did not answer.
    progress: (u64, u64),
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
                    progress: (0, 0),
                };
            };
            match status_at(&conn, &url).await {
                Ok(s) if s.leader() != 0 => Probe {
                    id,
                    healthy: true,
                    why: String::new(),
                    progress: (s.raft_index(), s.raft_applied_index()),
                },
                Ok(s) => Probe {
                    id,
                    healthy: false,
                    why: "no leader".into(),
                    progress: (s.raft_index(), s.raft_applied_index()),
                },
                Err(e) => Probe {
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
    successor(request, view, member, probes).map(Some)
}

/// Whether `m` is one of the members `avoid` lists (by name, hex id or
/// peer URL).
fn is_avoided(avoid: &[String], m: &etcd_client::Member) -> bool {
    let id = member_id_hex(m.id());
    let peers = url_set(m.peer_urls());
    avoid.iter().any(|a| {
        (!m.name().is_empty() && a == m.name())
            || a.trim_start_matches("0x").eq_ignore_ascii_case(&id)
            || peers.contains(a)
    })
}

/// The voter that takes over from the leader `member` before it is
/// removed: healthy, started, not listed in `avoid`, the most up-to-date
/// (highest raft index, then applied index; the lowest id among equals, so the choice
/// does not depend on which probe answered first).
fn successor(
    request: &Request,
    view: &ClusterView,
    member: &etcd_client::Member,
    probes: &[Probe],
) -> Result<u64, Failure> {
    let mut candidates: Vec<&Probe> = probes
        .iter()
        .filter(|p| p.id != member.id() && p.healthy)
        .filter(|p| {
            view.member(p.id).is_some_and(|m| {
                !m.is_learner() && !m.client_urls().is_empty() && !is_avoided(&request.avoid, m)
            })
        })
        .collect();
    candidates.sort_by_key(|p| (std::cmp::Reverse(p.progress), p.id));
    candidates.first().map(|p| p.id).ok_or_else(|| {
        let healthy: Vec<String> = probes
            .iter()
            .filter(|p| p.id != member.id() && p.healthy)
            .map(|p| label_id(view, p.id))
            .collect();
        Failure::new(format!(
            "refusing to remove member {}: it is the leader and no healthy voting member outside avoid ({}) can take over leadership (healthy voting members: {}). Remove the other members first, or bring a member that stays back to health.",
            label(member),
            request.avoid.join(", "),
            if healthy.is_empty() { "none".to_string() } else { healthy.join(", ") }
        ))
    })
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
/// election, a member restarting) until the deadline. A refusal that
/// retrying cannot cure (permission denied) fails at once.
async fn observe(conn: &Connection, deadline: Instant) -> Result<ClusterView, Failure> {
    loop {
        match conn.cluster_view().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline || is_permission_denied(&e) => return Err(e),
            Err(_) => tokio::time::sleep(RETRY_PAUSE).await,
        }
    }
}

/// Checks the endpoints before anything is retried: a malformed endpoint
/// fails the task at once (bad input); a host name that does not resolve
/// (the resolver says so, not "try again") is dropped with a warning, and
/// fails the task at once when no endpoint is left.
async fn usable_endpoints(conn: &mut Connection) -> Result<Vec<String>, Failure> {
    let mut bad = Vec::new();
    for endpoint in &conn.endpoints {
        if let Err(why) = endpoint_host(endpoint) {
            bad.push(format!("{endpoint}: {why}"));
        }
    }
    if !bad.is_empty() {
        return Err(Failure::new(format!(
            "argument 'endpoints' is invalid: {}",
            bad.join("; ")
        )));
    }
    let mut lookups = JoinSet::new();
    for endpoint in &conn.endpoints {
        let host = endpoint_host(endpoint).expect("checked above");
        let endpoint = endpoint.clone();
        if host.parse::<std::net::IpAddr>().is_ok() {
            continue;
        }
        let limit = conn.dial_timeout;
        lookups.spawn(async move {
            let lookup = tokio::task::spawn_blocking(move || resolves_never(&host));
            match tokio::time::timeout(limit, lookup).await {
                // A slow resolver is not a permanent answer.
                Ok(Ok(Some(why))) => Some((endpoint, why)),
                _ => None,
            }
        });
    }
    let mut unresolvable: Vec<(String, String)> = Vec::new();
    while let Some(joined) = lookups.join_next().await {
        if let Ok(Some(found)) = joined {
            unresolvable.push(found);
        }
    }
    if unresolvable.is_empty() {
        return Ok(Vec::new());
    }
    unresolvable.sort();
    let described: Vec<String> = unresolvable
        .iter()
        .map(|(e, why)| format!("{e}: host name does not resolve ({why})"))
        .collect();
    conn.endpoints
        .retain(|e| !unresolvable.iter().any(|(u, _)| u == e));
    if conn.endpoints.is_empty() {
        return Err(Failure::new(format!(
            "no endpoint can be reached: {}",
            described.join("; ")
        )));
    }
    Ok(described
        .into_iter()
        .map(|d| format!("endpoint skipped: {d}"))
        .collect())
}

/// The host of an `http(s)://host[:port][/]` endpoint, or why it is not one.
fn endpoint_host(endpoint: &str) -> Result<String, String> {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .ok_or("invalid URL: not http:// or https://")?;
    let authority = rest.split('/').next().unwrap_or_default();
    if rest.len() > authority.len() + 1 {
        return Err("invalid URL: a client URL has no path".into());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or("invalid URL: '[' without ']' around an IPv6 address")?;
        addr.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("invalid URL: {addr:?} is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or("invalid URL: unexpected text after the IPv6 address")?,
            ),
        };
        (addr.to_string(), port)
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        let host_char = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_';
        if host.is_empty() || !host.chars().all(host_char) {
            return Err(format!(
                "invalid URL: {host:?} is not a host name or address"
            ));
        }
        (host.to_string(), port)
    };
    if let Some(port) = port {
        if !port.parse::<u16>().is_ok_and(|p| p != 0) {
            return Err(format!("invalid port {port:?} (1-65535)"));
        }
    }
    Ok(host)
}

/// `Some(reason)` when the resolver answers that `host` has no address
/// (EAI_NONAME, EAI_FAIL); `None` when it resolves or the failure may pass
/// (EAI_AGAIN, a system error). By the resolver's error code, not its text.
fn resolves_never(host: &str) -> Option<String> {
    let c_host = std::ffi::CString::new(host).ok()?;
    // SAFETY: a zeroed addrinfo is a valid "no hints" value; getaddrinfo
    // gets a NUL-terminated host and a pointer to write its list to, which
    // is freed once when it is set.
    unsafe {
        let mut hints: libc::addrinfo = std::mem::zeroed();
        hints.ai_socktype = libc::SOCK_STREAM;
        let mut list: *mut libc::addrinfo = std::ptr::null_mut();
        let rc = libc::getaddrinfo(c_host.as_ptr(), std::ptr::null(), &hints, &mut list);
        if rc == 0 {
            if !list.is_null() {
                libc::freeaddrinfo(list);
            }
            return None;
        }
        if rc != libc::EAI_NONAME && rc != libc::EAI_FAIL {
            return None;
        }
        let text = std::ffi::CStr::from_ptr(libc::gai_strerror(rc));
        Some(text.to_string_lossy().into_owned())
    }
}

/// How an attempt at a change failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// etcd (or the network, before the request was sent) refused for now:
    /// nothing changed, observe and try again.
    Refused,
    /// No answer in time: the change may or may not have been applied.
    NoAnswer,
    /// A definite answer that retrying cannot change.
    Permanent,
}

/// A failed attempt: what kind of failure, and the message for the user.
#[derive(Debug)]
struct CallError {
    kind: Kind,
    failure: Failure,
}

impl CallError {
    fn new(kind: Kind, msg: impl Into<String>) -> CallError {
        CallError {
            kind,
            failure: Failure::new(msg),
        }
    }
}

/// A client for `endpoint`. Nothing was sent when this fails, so it is a
/// refusal to retry, unless the credentials were refused.
async fn connect(conn: &Connection, endpoint: &str) -> Result<etcd_client::Client, CallError> {
    conn.client_for(endpoint).await.map_err(|f| CallError {
        // connection.rs reports failures as text only; its own test for
        // refused credentials is the one place the text decides.
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
        Ok(Err(e)) => Err(CallError::new(
            classify(&e),
            format!("{what}: {}", describe(&e)),
        )),
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

/// The kind of an etcd client error: by gRPC status (etcd's error
/// descriptions are its wire contract, matched whole), by the I/O error
/// kind under a transport error, by variant otherwise.
fn classify(e: &etcd_client::Error) -> Kind {
    use etcd_client::Error as E;
    match e {
        E::GRpcStatus(status) => {
            match classify_status(i32::from(status.code()), status.message()) {
                Some(kind) => kind,
                None => io_kind(status).unwrap_or(Kind::NoAnswer),
            }
        }
        E::TransportError(t) => io_kind(t).unwrap_or(Kind::NoAnswer),
        E::IoError(io) => classify_io(io.kind()),
        _ => Kind::Permanent,
    }
}

/// gRPC status codes (google.rpc.Code).
mod code {
    pub const CANCELLED: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const ABORTED: i32 = 10;
    pub const UNAVAILABLE: i32 = 14;
}

/// etcd 3.4's answers (rpctypes) that mean "not now": nothing changed.
const ETCD_NOT_NOW: &[&str] = &[
    "etcdserver: unhealthy cluster",
    "etcdserver: re-configuration failed due to not enough started members",
    "etcdserver: can only promote a learner member which is in sync with leader",
    "etcdserver: no leader",
    "etcdserver: not leader",
    "etcdserver: leader changed",
    "etcdserver: too many requests",
    // Someone else changed the membership meanwhile: observe and plan again.
    "etcdserver: member not found",
    "etcdserver: Peer URLs already exists",
    "etcdserver: ID removed",
];

/// The kind of a gRPC status, or `None` to look at its transport cause.
fn classify_status(code: i32, message: &str) -> Option<Kind> {
    if ETCD_NOT_NOW.contains(&message) {
        return Some(Kind::Refused);
    }
    // "request timed out", "...possibly due to previous leader failure",
    // "...leader transfer took too long": proposed, fate unknown.
    if message.starts_with("etcdserver: request timed out") {
        return Some(Kind::NoAnswer);
    }
    match code {
        // Transport failures come as Unavailable/Unknown with a cause.
        code::UNAVAILABLE | code::UNKNOWN | code::CANCELLED => None,
        code::DEADLINE_EXCEEDED | code::ABORTED => Some(Kind::NoAnswer),
        code::RESOURCE_EXHAUSTED => Some(Kind::Refused),
        _ => Some(Kind::Permanent),
    }
}

/// The kind of the first I/O error among `e`'s causes.
fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<Kind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return Some(classify_io(io.kind()));
        }
        source = cause.source();
    }
    None
}

fn classify_io(kind: std::io::ErrorKind) -> Kind {
    use std::io::ErrorKind as K;
    match kind {
        // Nothing reached etcd.
        K::ConnectionRefused | K::NotConnected | K::AddrNotAvailable => Kind::Refused,
        _ => Kind::NoAnswer,
    }
}

/// Why the task stopped retrying, as it was: refusals and timeouts counted
/// apart.
fn gave_up(attempts: u64, refused: u64, unanswered: u64, took: Duration) -> String {
    let secs = took.as_secs_f64().round();
    if unanswered == 0 {
        format!(
            "still refused after {attempts} attempts in {secs:.0}s: etcd said not now, or nothing listened"
        )
    } else if refused == 0 {
        format!(
            "none of {attempts} attempts got an answer in time, over {secs:.0}s; the change was not confirmed and may still be applied if etcd later commits it"
        )
    } else {
        format!(
            "gave up after {attempts} attempts in {secs:.0}s: {refused} refused (etcd said not now, or nothing listened), {unanswered} without an answer in time; the change was not confirmed and may still be applied if etcd later commits it"
        )
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
            .contains("is not a member id"));
    }

    #[test]
    fn etcd_refusals_are_retried_and_timeouts_are_ambiguous() {
        // FailedPrecondition (9) and Unavailable (14), as etcd 3.4 sends them.
        for (code, msg) in [
            (14, "etcdserver: unhealthy cluster"),
            (
                9,
                "etcdserver: re-configuration failed due to not enough started members",
            ),
            (
                9,
                "etcdserver: can only promote a learner member which is in sync with leader",
            ),
            (9, "etcdserver: not leader"),
            (5, "etcdserver: member not found"),
        ] {
            assert_eq!(classify_status(code, msg), Some(Kind::Refused), "{msg}");
        }
        assert_eq!(
            classify_status(14, "etcdserver: request timed out"),
            Some(Kind::NoAnswer)
        );
        assert_eq!(classify_status(4, "deadline"), Some(Kind::NoAnswer));
        // A transport failure: decided by the I/O error under it.
        assert_eq!(classify_status(14, "tcp connect error"), None);
        assert_eq!(
            classify_status(9, "etcdserver: can only promote a learner member"),
            Some(Kind::Permanent)
        );
        assert_eq!(
            classify_status(7, "etcdserver: permission denied"),
            Some(Kind::Permanent)
        );
        assert_eq!(
            classify_io(std::io::ErrorKind::ConnectionRefused),
            Kind::Refused
        );
        assert_eq!(
            classify_io(std::io::ErrorKind::ConnectionReset),
            Kind::NoAnswer
        );
        // Messages say what happened.
        let t = Duration::from_secs(61);
        assert!(gave_up(2, 2, 0, t).contains("still refused after 2 attempts in 61s"));
        let m = gave_up(2, 0, 2, t);
        assert!(m.contains("none of 2 attempts got an answer"), "{m}");
        assert!(!m.contains("refused"), "{m}");
        assert!(gave_up(3, 1, 2, t)
            .contains("1 refused (etcd said not now, or nothing listened), 2 without an answer"));
    }

    #[test]
    fn ids_are_hex_strings_or_integers_and_names_may_be_numbers() {
        let r = request(json!({"state": "absent", "id": "8e9e05c52164694d"})).unwrap();
        assert_eq!(r.id, Some(0x8e9e05c52164694d));
        assert_eq!(r.id_as_hex, None);
        let r = request(json!({"state": "absent", "id": "0x10"})).unwrap();
        assert_eq!(r.id, Some(16));
        // etcdctl -w json prints ids as decimal integers.
        let r = request(json!({"state": "absent", "id": 10276657743932975437u64})).unwrap();
        assert_eq!(r.id, Some(10276657743932975437));
        let r = request(json!({"state": "absent", "id": 123})).unwrap();
        assert_eq!((r.id, r.id_as_hex), (Some(123), Some(0x123)));
        for bad in [
            json!("xyz"),
            json!(""),
            json!("0"),
            json!(0),
            json!(-5),
            json!("12 34"),
        ] {
            let e = request(json!({"state": "absent", "id": bad})).unwrap_err();
            assert!(e.contains("not a member id"), "{bad}: {e}");
        }
        let r = request(json!({"state": "absent", "name": 5})).unwrap();
        assert_eq!(r.name.as_deref(), Some("5"));
        let r = request(json!({"state": "absent", "name": 1.0})).unwrap();
        assert_eq!(r.name.as_deref(), Some("1.0"));
        let r = request(json!({"state": "absent", "name": "m5", "avoid": "m3,http://h:2380/"}))
            .unwrap();
        assert_eq!(r.avoid, vec!["m3", "http://h:2380"]);
        assert!(
            request(json!({"state": "leader", "name": "m5", "avoid": ["m3"]}))
                .unwrap_err()
                .contains("avoid is only used with state=absent")
        );
    }

    #[test]
    fn endpoints_are_checked_before_any_retry() {
        assert_eq!(endpoint_host("http://10.0.0.1:2379").unwrap(), "10.0.0.1");
        assert_eq!(
            endpoint_host("https://etcd-1.example:2379/").unwrap(),
            "etcd-1.example"
        );
        assert_eq!(endpoint_host("http://[::1]:2379").unwrap(), "::1");
        assert_eq!(endpoint_host("http://host").unwrap(), "host");
        for (bad, why) in [
            ("http://127.0.0.1:99999", "invalid port"),
            ("http://127.0.0.1:", "invalid port"),
            ("http://a b:2379", "not a host name"),
            ("http://[::1:2379", "without ']'"),
            ("http://:2379", "not a host name"),
            ("http://h:2379/v3/x", "no path"),
        ] {
            let e = endpoint_host(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(resolves_never("nosuchhost.invalid").is_some());
        assert!(resolves_never("localhost").is_none());
    }
}
