//! How an attempt at a change failed, for the retry decision: refused for
//! now (retry), unanswered (may have been applied), or for good; and the
//! messages that say so.

use std::time::Duration;

use super::args::State;
use super::request::Request;
use super::view::{label, View};
use crate::protocol::{EtcdError, Failure, FailureKind};

/// How an attempt at a change failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
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
pub(super) struct CallError {
    /// What kind of failure.
    pub kind: Kind,
    /// The failure as the user sees it.
    pub failure: Failure,
}

impl CallError {
    /// A failed attempt with a message.
    pub fn new(kind: Kind, msg: impl Into<String>) -> CallError {
        CallError {
            kind,
            failure: Failure::new(msg),
        }
    }
}

/// The kind of a failed call, from the kind of error under it: etcd's
/// answer, the gRPC status code, the I/O error under a transport failure.
pub(super) fn classify(kind: &FailureKind) -> Kind {
    match *kind {
        FailureKind::Grpc { code, etcd, io } => classify_status(code, etcd)
            .or_else(|| io.map(classify_io))
            .unwrap_or(Kind::NoAnswer),
        FailureKind::Transport(io) => io.map_or(Kind::NoAnswer, classify_io),
        FailureKind::Io(io) => classify_io(io),
        FailureKind::Timeout => Kind::NoAnswer,
        FailureKind::Other => Kind::Permanent,
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

/// The kind of a gRPC status, or `None` to look at its transport cause.
fn classify_status(code: i32, etcd: Option<EtcdError>) -> Option<Kind> {
    use EtcdError as E;
    match etcd {
        // etcd 3.4's answers that mean "not now": nothing changed.
        Some(
            E::UnhealthyCluster
            | E::NotEnoughStartedMembers
            | E::LearnerNotInSync
            | E::NoLeader
            | E::NotLeader
            | E::LeaderChanged
            | E::TooManyRequests
            // Someone else changed the membership meanwhile: observe and
            // plan again.
            | E::MemberNotFound
            | E::PeerUrlsExist
            | E::MemberRemoved,
        ) => return Some(Kind::Refused),
        // "request timed out", "...possibly due to previous leader
        // failure", "...leader transfer took too long": proposed, fate
        // unknown.
        Some(E::RequestTimedOut) => return Some(Kind::NoAnswer),
        _ => {}
    }
    match code {
        // Transport failures come as Unavailable/Unknown with a cause.
        code::UNAVAILABLE | code::UNKNOWN | code::CANCELLED => None,
        code::DEADLINE_EXCEEDED | code::ABORTED => Some(Kind::NoAnswer),
        code::RESOURCE_EXHAUSTED => Some(Kind::Refused),
        _ => Some(Kind::Permanent),
    }
}

/// The kind of an I/O failure: refused when nothing reached etcd.
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
pub(super) fn gave_up(attempts: u64, refused: u64, unanswered: u64, took: Duration) -> String {
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

/// What to add to a failed promotion's message: why the learner is not
/// ready yet.
pub(super) fn promote_hint(
    request: &Request,
    view: &View,
    target: Option<u64>,
    failure: &Failure,
) -> Option<String> {
    if request.state != State::Promoted || failure.etcd() != Some(EtcdError::LearnerNotInSync) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A gRPC status as etcd sends it, classified.
    fn status(code: i32, message: &str) -> Option<Kind> {
        classify_status(code, EtcdError::parse(message))
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
            assert_eq!(status(code, msg), Some(Kind::Refused), "{msg}");
        }
        assert_eq!(
            status(14, "etcdserver: request timed out"),
            Some(Kind::NoAnswer)
        );
        assert_eq!(status(4, "deadline"), Some(Kind::NoAnswer));
        // A transport failure: decided by the I/O error under it.
        assert_eq!(status(14, "tcp connect error"), None);
        assert_eq!(
            status(9, "etcdserver: can only promote a learner member"),
            Some(Kind::Permanent)
        );
        assert_eq!(
            status(7, "etcdserver: permission denied"),
            Some(Kind::Permanent)
        );
        assert_eq!(
            classify_io(std::io::ErrorKind::ConnectionRefused),
            Kind::Refused
        );
        // The whole decision, from the kind of the failure.
        let grpc = |code, io| FailureKind::Grpc {
            code,
            etcd: None,
            io,
        };
        let refused = Some(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(classify(&grpc(14, refused)), Kind::Refused);
        assert_eq!(classify(&grpc(14, None)), Kind::NoAnswer);
        assert_eq!(classify(&grpc(7, refused)), Kind::Permanent);
        assert_eq!(classify(&FailureKind::Transport(refused)), Kind::Refused);
        assert_eq!(classify(&FailureKind::Transport(None)), Kind::NoAnswer);
        assert_eq!(classify(&FailureKind::Timeout), Kind::NoAnswer);
        assert_eq!(classify(&FailureKind::Other), Kind::Permanent);
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
    fn promotion_hints_follow_etcds_answer_not_the_text() {
        use crate::member::view::Member;
        let args = serde_json::json!({"state": "promoted", "name": "m4"});
        let request = crate::member::request::parsed(&args).unwrap();
        let learner = |name: &str| View {
            members: vec![Member {
                id: 4,
                name: name.into(),
                is_learner: true,
                ..Member::default()
            }],
            ..View::default()
        };
        let not_in_sync = Failure::new("promoting member 4: not yet").of_kind(FailureKind::Grpc {
            code: 9,
            etcd: EtcdError::parse(
                "etcdserver: can only promote a learner member which is in sync with leader",
            ),
            io: None,
        });
        let hint = promote_hint(&request, &learner("m4"), Some(4), &not_in_sync).unwrap();
        assert!(hint.contains("learner m4 (4) has not caught up"), "{hint}");
        let hint = promote_hint(&request, &learner(""), Some(4), &not_in_sync).unwrap();
        assert!(hint.contains("has not started"), "{hint}");
        // The same words from something else than etcd decide nothing.
        let text_only = Failure::new("in sync with leader");
        assert_eq!(
            promote_hint(&request, &learner("m4"), Some(4), &text_only),
            None
        );
    }
}
