//! How an attempt at a change failed, for the retry decision: refused for
//! now (retry), unanswered (may have been applied), or for good; and the
//! messages that say so.

use std::time::Duration;

use super::args::State;
use super::request::Request;
use super::view::{label, View};
use crate::protocol::Failure;

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

/// The kind of an etcd client error: by gRPC status (etcd's error
/// descriptions are its wire contract, matched whole), by the I/O error
/// kind under a transport error, by variant otherwise.
pub(super) fn classify(e: &etcd_client::Error) -> Kind {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
