//! Planning for `etcd_member`: from the request and what was observed
//! (member list, leader, voters' health), the member the request is about
//! and the one change to make, or a refusal. Pure: no I/O, so every state
//! and refusal is tested here without a cluster.

use serde_json::json;

use super::args::State;
use super::request::{url_set, Request};
use super::view::{label, label_id, Member, Observed, View, VoterProbe};
use crate::connection::member_id_hex;
use crate::protocol::Failure;

/// One change to make.
#[derive(Debug, Clone)]
pub(super) enum Action {
    /// Add a member with the requested name and peer URLs.
    Add,
    /// Set the peer URLs of member `id`.
    Update {
        /// The member.
        id: u64,
    },
    /// Remove member `id`, first moving leadership to `transfer_to`.
    Remove {
        /// The member.
        id: u64,
        /// The member that takes over leadership from it.
        transfer_to: Option<u64>,
    },
    /// Promote learner `id`.
    Promote {
        /// The member.
        id: u64,
    },
    /// Move leadership to member `id`.
    MoveLeader {
        /// The member.
        id: u64,
    },
}

impl Action {
    /// The `action` result value.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Add => "added",
            Action::Update { .. } => "updated",
            Action::Remove { .. } => "removed",
            Action::Promote { .. } => "promoted",
            Action::MoveLeader { .. } => "leader_moved",
        }
    }
}

/// What to do for a request.
#[derive(Debug)]
pub(super) struct Plan {
    /// The member the request is about, if it is one.
    pub target: Option<u64>,
    /// The change to make; `None` when the state is reached.
    pub action: Option<Action>,
    /// Things the operator should know.
    pub warnings: Vec<String>,
}

/// Finds the member the request designates (by every criterion given) and
/// decides what to do, from what was observed alone (no I/O).
pub(super) fn plan(request: &Request, observed: &Observed) -> Result<Plan, Failure> {
    let view = &observed.view;
    let wanted_urls = url_set(&request.peer_urls);
    let found = find(request, view)?;
    let mut warnings = Vec::new();

    if request.state == State::Present {
        let name = request.name.as_deref().unwrap_or_default();
        return Ok(match (found.by_urls, found.by_name) {
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

    let target = select(request, view, &found)?;
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
            let transfer_to = check_quorum(request, view, member, &observed.voters)?;
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

/// The member the request is about, if it is one: what decides whether
/// the planner needs the voters probed.
pub(super) fn target(request: &Request, view: &View) -> Result<Option<u64>, Failure> {
    let found = find(request, view)?;
    if request.state == State::Present {
        return Ok(found.by_urls.or(found.by_name).map(Member::id));
    }
    select(request, view, &found)
}

/// The members the request's name, id and peer URLs point at.
#[derive(Clone, Copy)]
struct Found<'a> {
    by_urls: Option<&'a Member>,
    by_name: Option<&'a Member>,
    by_id: Option<&'a Member>,
}

/// Looks up the members each criterion designates; refuses peer URLs shared
/// by several members and a decimal id that was meant as hex.
fn find<'a>(request: &Request, view: &'a View) -> Result<Found<'a>, Failure> {
    let wanted_urls = url_set(&request.peer_urls);
    let by_urls: Vec<&Member> = if wanted_urls.is_empty() {
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
    Ok(Found {
        by_urls,
        by_name,
        by_id,
    })
}

/// With a state other than present: the one member every criterion given
/// designates, `None` when there is none; refuses criteria that designate
/// different members, and a name alone while unstarted members exist and
/// the member is to be removed.
fn select(request: &Request, view: &View, found: &Found) -> Result<Option<u64>, Failure> {
    // The other states select one member by every criterion given. A member
    // added but not started has no name yet: id or peer URLs may still
    // designate it together with the name it will have.
    let Found {
        by_urls,
        by_name,
        by_id,
    } = *found;
    let wanted_urls = url_set(&request.peer_urls);
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
    let unstarted: Vec<&Member> = view
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
    Ok(target)
}

/// Whether a promoted/leader request names a member that may simply not
/// have published its name yet (some member has none).
pub(super) fn may_be_starting(request: &Request, view: &View) -> bool {
    matches!(request.state, State::Promoted | State::Leader)
        && request
            .name
            .as_ref()
            .is_some_and(|n| view.members.iter().all(|m| m.name() != n))
        && view.members.iter().any(|m| m.name().is_empty())
}

/// Refuses a removal that would leave fewer healthy voters than a majority
/// of the remaining voters (unless forced). Returns the healthy voter that
/// takes over when the member to remove leads.
fn check_quorum(
    request: &Request,
    view: &View,
    member: &Member,
    probes: &[VoterProbe],
) -> Result<Option<u64>, Failure> {
    let remaining: Vec<&VoterProbe> = probes.iter().filter(|p| p.id != member.id()).collect();
    let healthy: Vec<&VoterProbe> = remaining.iter().copied().filter(|p| p.healthy).collect();
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
fn is_avoided(avoid: &[String], m: &Member) -> bool {
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
    view: &View,
    member: &Member,
    probes: &[VoterProbe],
) -> Result<u64, Failure> {
    let mut candidates: Vec<&VoterProbe> = probes
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn request(args: Value) -> Request {
        crate::member::request::parsed(&args).unwrap()
    }

    fn member(id: u64, name: &str, learner: bool) -> Member {
        Member {
            id,
            name: name.to_string(),
            peer_urls: vec![format!("http://10.0.0.{id}:2380")],
            client_urls: if name.is_empty() {
                Vec::new()
            } else {
                vec![format!("http://10.0.0.{id}:2379")]
            },
            is_learner: learner,
        }
    }

    /// Three started voters m1..m3 (m1 leads), plus `extra`.
    fn observed(extra: Vec<Member>) -> Observed {
        let mut members = vec![
            member(1, "m1", false),
            member(2, "m2", false),
            member(3, "m3", false),
        ];
        members.extend(extra);
        Observed {
            view: View {
                endpoint: "http://10.0.0.1:2379".into(),
                members,
                leader: Some(1),
                cluster_id: 7,
            },
            voters: Vec::new(),
        }
    }

    fn healthy(id: u64, progress: u64) -> VoterProbe {
        VoterProbe {
            id,
            healthy: true,
            why: String::new(),
            progress: (progress, progress),
        }
    }

    fn sick(id: u64) -> VoterProbe {
        VoterProbe {
            id,
            healthy: false,
            why: "connection refused".into(),
            progress: (0, 0),
        }
    }

    fn refusal(args: Value, seen: &Observed) -> String {
        plan(&request(args), seen).unwrap_err().msg
    }

    #[test]
    fn present_adds_updates_or_leaves_alone() {
        let seen = observed(vec![]);
        let p = plan(
            &request(json!({"name": "m4", "peer_urls": "http://10.0.0.4:2380"})),
            &seen,
        )
        .unwrap();
        assert!(matches!(p.action, Some(Action::Add)));
        assert_eq!(p.target, None);
        let p = plan(
            &request(json!({"name": "m2", "peer_urls": "http://10.0.0.2:2380/"})),
            &seen,
        )
        .unwrap();
        assert!(p.action.is_none());
        assert_eq!(p.target, Some(2));
        let p = plan(
            &request(json!({"name": "m2", "peer_urls": "http://10.0.0.9:2380"})),
            &seen,
        )
        .unwrap();
        assert!(matches!(p.action, Some(Action::Update { id: 2 })));
        // Added earlier, not started: present, found by its peer URLs.
        let seen = observed(vec![member(4, "", true)]);
        let p = plan(
            &request(json!({"name": "m4", "peer_urls": "http://10.0.0.4:2380", "learner": true})),
            &seen,
        )
        .unwrap();
        assert!(p.action.is_none() && p.warnings.is_empty());
        assert_eq!(p.target, Some(4));
        let p = plan(
            &request(json!({"name": "m2", "peer_urls": "http://10.0.0.2:2380", "learner": true})),
            &seen,
        )
        .unwrap();
        assert!(p.warnings[0].contains("already a voting member"), "{p:?}");
    }

    #[test]
    fn present_refuses_peer_urls_of_another_member() {
        let seen = observed(vec![]);
        let e = refusal(
            json!({"name": "m4", "peer_urls": "http://10.0.0.2:2380"}),
            &seen,
        );
        assert!(e.contains("already belong to member m2 (2)"), "{e}");
        let e = refusal(
            json!({"name": "m3", "peer_urls": "http://10.0.0.2:2380"}),
            &seen,
        );
        assert!(e.contains("not to the member named m3 (3)"), "{e}");
        let e = refusal(
            json!({"name": "m9", "peer_urls": ["http://10.0.0.2:2380", "http://10.0.0.3:2380"]}),
            &seen,
        );
        assert!(e.contains("belong to several members"), "{e}");
    }

    #[test]
    fn absent_removes_with_quorum_and_hands_over_leadership() {
        let mut seen = observed(vec![]);
        // Nothing to remove: no probes needed, no action.
        let r = request(json!({"state": "absent", "name": "m9"}));
        assert_eq!(target(&r, &seen.view).unwrap(), None);
        let p = plan(&r, &seen).unwrap();
        assert!(p.action.is_none() && p.target.is_none());

        seen.voters = vec![healthy(1, 10), healthy(2, 9), healthy(3, 9)];
        let r = request(json!({"state": "absent", "name": "m3"}));
        assert_eq!(target(&r, &seen.view).unwrap(), Some(3));
        let p = plan(&r, &seen).unwrap();
        assert!(matches!(
            p.action,
            Some(Action::Remove {
                id: 3,
                transfer_to: None
            })
        ));
        // The leader: handed to the most up-to-date voter, ties by id...
        seen.voters = vec![healthy(1, 10), healthy(3, 9), healthy(2, 9)];
        let p = plan(&request(json!({"state": "absent", "name": "m1"})), &seen).unwrap();
        assert!(matches!(
            p.action,
            Some(Action::Remove {
                id: 1,
                transfer_to: Some(2)
            })
        ));
        seen.voters = vec![healthy(1, 10), healthy(2, 8), healthy(3, 9)];
        let p = plan(&request(json!({"state": "absent", "name": "m1"})), &seen).unwrap();
        assert!(matches!(
            p.action,
            Some(Action::Remove {
                transfer_to: Some(3),
                ..
            })
        ));
        // ...never to a member listed in avoid.
        let p = plan(
            &request(json!({"state": "absent", "name": "m1", "avoid": ["m3"]})),
            &seen,
        )
        .unwrap();
        assert!(matches!(
            p.action,
            Some(Action::Remove {
                transfer_to: Some(2),
                ..
            })
        ));
        let e = refusal(
            json!({"state": "absent", "name": "m1", "avoid": ["m2", "http://10.0.0.3:2380"]}),
            &seen,
        );
        assert!(e.contains("no healthy voting member outside avoid"), "{e}");
    }

    #[test]
    fn absent_refuses_to_lose_quorum_unless_forced() {
        let mut seen = observed(vec![]);
        seen.voters = vec![healthy(1, 5), sick(2), healthy(3, 5)];
        let e = refusal(json!({"state": "absent", "name": "m3"}), &seen);
        assert!(e.contains("would be left without quorum"), "{e}");
        assert!(e.contains("1 of 2 voting members would be healthy"), "{e}");
        assert!(e.contains("m2 (2) (connection refused)"), "{e}");
        let p = plan(
            &request(json!({"state": "absent", "name": "m3", "force": true})),
            &seen,
        )
        .unwrap();
        assert!(matches!(p.action, Some(Action::Remove { id: 3, .. })));
        // Removing the sick one leaves 2 of 2 healthy.
        let p = plan(&request(json!({"state": "absent", "name": "m2"})), &seen).unwrap();
        assert!(matches!(p.action, Some(Action::Remove { id: 2, .. })));
    }

    #[test]
    fn absent_refuses_ambiguous_designations() {
        let seen = observed(vec![member(4, "", false)]);
        let e = refusal(json!({"state": "absent", "name": "m4"}), &seen);
        assert!(e.contains("added and not started yet"), "{e}");
        assert!(
            e.contains("id 4 with peer_urls http://10.0.0.4:2380"),
            "{e}"
        );
        let f = plan(&request(json!({"state": "absent", "name": "m4"})), &seen).unwrap_err();
        assert_eq!(f.data["unstarted"][0]["id"], json!("4"));
        // The name it will have, with its peer URLs, designates it.
        let r =
            request(json!({"state": "absent", "name": "m4", "peer_urls": "http://10.0.0.4:2380"}));
        assert_eq!(target(&r, &seen.view).unwrap(), Some(4));
        let e = refusal(json!({"state": "absent", "name": "m2", "id": "3"}), &seen);
        assert!(e.contains("designate different members"), "{e}");
        // A hex id that YAML read as a decimal integer.
        let seen = observed(vec![member(0x10, "m16", false)]);
        let e = refusal(json!({"state": "absent", "id": 10}), &seen);
        assert!(e.contains("quote the id in YAML"), "{e}");
    }

    #[test]
    fn promoted_promotes_learners_only() {
        let seen = observed(vec![member(4, "m4", true)]);
        let p = plan(&request(json!({"state": "promoted", "name": "m4"})), &seen).unwrap();
        assert!(matches!(p.action, Some(Action::Promote { id: 4 })));
        let p = plan(&request(json!({"state": "promoted", "id": "2"})), &seen).unwrap();
        assert!(p.action.is_none());
        assert_eq!(p.target, Some(2));
        let e = refusal(json!({"state": "promoted", "name": "m9"}), &seen);
        assert!(e.contains("no member with name m9; members: m1 (1)"), "{e}");
        // A member that may not have published its name yet.
        let seen = observed(vec![member(5, "", true)]);
        assert!(may_be_starting(
            &request(json!({"state": "promoted", "name": "m5"})),
            &seen.view
        ));
        assert!(!may_be_starting(
            &request(json!({"state": "promoted", "name": "m1"})),
            &seen.view
        ));
    }

    #[test]
    fn leader_moves_leadership_to_started_voters() {
        let seen = observed(vec![member(4, "m4", true), member(5, "", false)]);
        let p = plan(&request(json!({"state": "leader", "name": "m2"})), &seen).unwrap();
        assert!(matches!(p.action, Some(Action::MoveLeader { id: 2 })));
        let p = plan(&request(json!({"state": "leader", "name": "m1"})), &seen).unwrap();
        assert!(p.action.is_none());
        let e = refusal(json!({"state": "leader", "name": "m4"}), &seen);
        assert!(e.contains("is a learner and cannot lead"), "{e}");
        let e = refusal(json!({"state": "leader", "id": "5"}), &seen);
        assert!(e.contains("has not started yet and cannot lead"), "{e}");
    }
}
