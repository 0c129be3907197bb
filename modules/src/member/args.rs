//! The arguments of `etcd_member` as Ansible passes them, and their
//! documentation (description, options, examples, return values).

use serde::Deserialize;

use crate::protocol::lenient::{Bool, List, Seconds};
use crate::protocol::{ArgType, Choice, OptionDoc, ReturnDoc, Rule};

crate::choices! {
    /// What the member should be.
    pub enum State {
        /// A member with `name` and `peer_urls` (added or updated).
        Present = "present",
        /// Not a member (removed).
        Absent = "absent",
        /// A voting member (a learner is promoted).
        Promoted = "promoted",
        /// The raft leader (leadership is moved to it).
        Leader = "leader",
    }
}

/// Arguments of `etcd_member` (plus the shared connection options).
/// Defaults are filled in by the protocol from [`OPTIONS`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberArgs {
    /// Desired state.
    pub state: State,
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
    pub learner: Bool,
    /// Remove even when the cluster would lose quorum.
    pub force: Bool,
    /// How long to keep retrying what etcd refuses for now.
    pub wait_timeout: Seconds,
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

/// One line for `ansible-doc -l`.
pub(super) const SHORT_DESCRIPTION: &str =
    "Add, update, remove and promote etcd members, and move leadership";
/// Paragraphs for `ansible-doc etcd_member`.
pub(super) const DESCRIPTION: &[&str] = &[
    "Membership changes of an etcd cluster, like C(etcdctl member add/update/remove/promote) and C(etcdctl move-leader), made idempotent.",
    "C(state=present) adds the member when no member has its peer URLs (as a learner with C(learner=true)), or updates the peer URLs of the member with that name. A member added earlier but not started yet counts as present. The result holds what the new node needs to join, as C(etcdctl member add) prints it.",
    "C(state=absent) removes the member chosen by name, id or peer URLs. It refuses when the remaining healthy voting members would not be a majority of the remaining voting members, unless C(force=true). A leader is removed only after leadership has moved to the most up-to-date healthy voting member not listed in C(avoid). A member added but not started has no name yet: name it by C(peer_urls) or C(id); by C(name) alone the task fails while such members exist, listing them.",
    "Endpoints that can never answer (malformed, or a host name that does not resolve) fail the task at once; with several endpoints, the unresolvable ones are skipped with a warning.",
    "C(state=promoted) promotes a learner once it has caught up with the leader; C(state=leader) moves leadership to the member (for rolling restarts).",
    "When etcd refuses a reconfiguration for a moment (after a member started or left), the module retries until C(wait_timeout).",
    "Always returns the member list and the leader as they are after the change. Check mode reports what would change and changes nothing.",
];
/// Documentation of every field of [`MemberArgs`].
pub(super) const OPTIONS: &[OptionDoc] = &[
    OptionDoc::new("state", ArgType::Str, "What the member should be.")
        .default("\"present\"")
        .choices(State::NAMES),
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
/// The rules across options of `etcd_member`, checked before it runs;
/// the value checks (empty name, id, URL schemes) and the options ignored
/// when false (`learner`, `force`, an empty `avoid`) stay in the request.
pub(super) const RULES: &[Rule] = &[
    Rule::required_if("state", "present", &["name", "peer_urls"]),
    Rule::required_if_any("state", "absent", &["name", "id", "peer_urls"]),
    Rule::required_if_any("state", "promoted", &["name", "id", "peer_urls"]),
    Rule::required_if_any("state", "leader", &["name", "id", "peer_urls"]),
    // etcd assigns the id when it adds the member.
    Rule::only_if("state", &["absent", "promoted", "leader"], &["id"]),
];
/// YAML examples.
pub(super) const EXAMPLES: &str = r#"
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
/// Documentation of the result keys.
pub(super) const RETURNS: &[ReturnDoc] = &[
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
