//! The cluster as `etcd_member` saw it: the member list and the leader, in
//! plain values the planner can be tested with (etcd-client's `Member`
//! cannot be built outside that crate), and how members are named in
//! messages, and the voters' health the planner needs before a removal.

use crate::connection::{member_id_hex, ClusterView};

/// One member as the member list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Member {
    /// Member id.
    pub id: u64,
    /// Name; empty until the member has started.
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs; empty until the member has started.
    pub client_urls: Vec<String>,
    /// Whether it is a non-voting learner.
    pub is_learner: bool,
}

impl Member {
    /// Member id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Name; empty until the member has started.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Peer URLs.
    pub fn peer_urls(&self) -> &[String] {
        &self.peer_urls
    }

    /// Client URLs; empty until the member has started.
    pub fn client_urls(&self) -> &[String] {
        &self.client_urls
    }

    /// Whether it is a non-voting learner.
    pub fn is_learner(&self) -> bool {
        self.is_learner
    }
}

impl From<&etcd_client::Member> for Member {
    fn from(m: &etcd_client::Member) -> Self {
        Member {
            id: m.id(),
            name: m.name().to_string(),
            peer_urls: m.peer_urls().to_vec(),
            client_urls: m.client_urls().to_vec(),
            is_learner: m.is_learner(),
        }
    }
}

/// The membership as one endpoint saw it.
#[derive(Debug, Clone, Default)]
pub(super) struct View {
    /// The endpoint that answered.
    pub endpoint: String,
    /// The members, in etcd's order (by id).
    pub members: Vec<Member>,
    /// The leader the answering member follows; `None` while it knows none.
    pub leader: Option<u64>,
    /// The cluster id.
    pub cluster_id: u64,
}

impl From<ClusterView> for View {
    fn from(v: ClusterView) -> Self {
        View {
            members: v.members.iter().map(Member::from).collect(),
            endpoint: v.endpoint,
            leader: v.leader,
            cluster_id: v.cluster_id,
        }
    }
}

impl View {
    /// The member with this id, if it is one.
    pub fn member(&self, id: u64) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    /// The leader's first client URL, if there is a leader that has started.
    pub fn leader_url(&self) -> Option<&str> {
        self.leader
            .and_then(|id| self.member(id))
            .and_then(|m| m.client_urls.first())
            .map(String::as_str)
    }
}

/// What a voting member's status call said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct VoterProbe {
    /// The voter.
    pub id: u64,
    /// It answered and follows a leader.
    pub healthy: bool,
    /// Why it is not healthy (empty when it is).
    pub why: String,
    /// How far the member's log is: (committed raft index, applied
    /// index); zeros when it did not answer.
    pub progress: (u64, u64),
}

/// Everything the planner decides from: the membership, and the voters'
/// health when a removal must keep quorum (empty otherwise).
#[derive(Debug, Clone, Default)]
pub(super) struct Observed {
    /// Member list and leader.
    pub view: View,
    /// The voting members' status, for a removal.
    pub voters: Vec<VoterProbe>,
}

/// `name (id)`, or `id (unstarted)` for a member that has not started.
pub(super) fn label(m: &Member) -> String {
    if m.name.is_empty() {
        format!("{} (unstarted)", member_id_hex(m.id))
    } else {
        format!("{} ({})", m.name, member_id_hex(m.id))
    }
}

/// The label of the member with `id`, or its hex id when it is none.
pub(super) fn label_id(view: &View, id: u64) -> String {
    view.member(id)
        .map(label)
        .unwrap_or_else(|| member_id_hex(id))
}
