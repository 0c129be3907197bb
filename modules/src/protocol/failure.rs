//! A module failure and its kind. The kind is set once, where an error is
//! converted into a [`Failure`] (an etcd-client error, an I/O error), so
//! decisions match on it instead of searching the message text; etcd's
//! error descriptions are read into an [`EtcdError`] in [`EtcdError::parse`]
//! and nowhere else.

use serde_json::{Map, Value};
use std::any::Any;
use std::io;

/// A module failure: a clear message plus whatever data helps the operator.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong, in one or a few lines.
    pub msg: String,
    /// Extra result keys.
    pub data: Map<String, Value>,
    /// What kind of error caused it, for decisions (never shown).
    pub kind: FailureKind,
}

impl Failure {
    /// A failure with only a message (kind [`FailureKind::Other`]).
    pub fn new(msg: impl Into<String>) -> Self {
        Failure {
            msg: msg.into(),
            data: Map::new(),
            kind: FailureKind::Other,
        }
    }

    /// Adds a result key.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.data.insert(key.to_string(), value.into());
        self
    }

    /// Sets the kind of error that caused the failure.
    pub fn of_kind(mut self, kind: FailureKind) -> Self {
        self.kind = kind;
        self
    }

    /// etcd's own answer, when it gave one.
    pub fn etcd(&self) -> Option<EtcdError> {
        match self.kind {
            FailureKind::Grpc { etcd, .. } => etcd,
            _ => None,
        }
    }
}

/// Any error converts with its text as the message; an etcd-client error or
/// an I/O error also gives the failure its kind.
impl<E: std::fmt::Display + 'static> From<E> for Failure {
    fn from(e: E) -> Self {
        let any: &dyn Any = &e;
        let kind = if let Some(etcd) = any.downcast_ref::<etcd_client::Error>() {
            FailureKind::of_etcd(etcd)
        } else if let Some(io) = any.downcast_ref::<io::Error>() {
            FailureKind::Io(io.kind())
        } else {
            FailureKind::Other
        };
        Failure::new(e.to_string()).of_kind(kind)
    }
}

/// What kind of error a failure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureKind {
    /// A gRPC status: etcd's answer (or the gRPC layer's, for a transport
    /// failure, with the I/O error under it).
    Grpc {
        /// The gRPC status code (google.rpc.Code).
        code: i32,
        /// etcd's error, when the status message is one of etcd's.
        etcd: Option<EtcdError>,
        /// The kind of the first I/O error among the status' causes.
        io: Option<io::ErrorKind>,
    },
    /// The connection failed below gRPC; the I/O error under it, if any.
    Transport(Option<io::ErrorKind>),
    /// An I/O error.
    Io(io::ErrorKind),
    /// No answer within the time allowed.
    Timeout,
    /// Anything else: bad input, a check that failed, an unexpected answer.
    #[default]
    Other,
}

impl FailureKind {
    /// The kind of an etcd-client error: by gRPC status (etcd's error
    /// description read into [`EtcdError`]), by the I/O error under a
    /// transport error, by variant otherwise.
    pub fn of_etcd(e: &etcd_client::Error) -> Self {
        use etcd_client::Error as E;
        match e {
            E::GRpcStatus(status) => FailureKind::Grpc {
                code: i32::from(status.code()),
                etcd: EtcdError::parse(status.message()),
                io: io_cause(status),
            },
            E::TransportError(t) => FailureKind::Transport(io_cause(t)),
            E::IoError(io) => FailureKind::Io(io.kind()),
            _ => FailureKind::Other,
        }
    }

    /// The kind of several failures reported as one (one per endpoint):
    /// etcd's answer if one of them has it (an endpoint that answered says
    /// more than one that did not), else their common kind, else `Other`.
    pub fn combined<'a>(kinds: impl IntoIterator<Item = &'a FailureKind>) -> FailureKind {
        let kinds: Vec<FailureKind> = kinds.into_iter().copied().collect();
        if let Some(answer) = kinds
            .iter()
            .find(|k| matches!(k, FailureKind::Grpc { etcd: Some(_), .. }))
        {
            return *answer;
        }
        match kinds.split_first() {
            Some((first, rest)) if rest.iter().all(|k| k == first) => *first,
            _ => FailureKind::Other,
        }
    }
}

/// The kind of the first I/O error among `e`'s causes (`e` included).
fn io_cause(e: &(dyn std::error::Error + 'static)) -> Option<io::ErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        source = cause.source();
    }
    None
}

/// The etcd server errors the modules decide on (etcd 3.4's rpctypes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtcdError {
    /// "permission denied": auth is on and the user lacks the right.
    PermissionDenied,
    /// "mvcc: required revision has been compacted".
    Compacted,
    /// "mvcc: required revision is a future revision".
    FutureRevision,
    /// "unhealthy cluster": a reconfiguration refused for now.
    UnhealthyCluster,
    /// "re-configuration failed due to not enough started members".
    NotEnoughStartedMembers,
    /// "can only promote a learner member which is in sync with leader".
    LearnerNotInSync,
    /// "can only promote a learner member": the member is a voter.
    NotLearner,
    /// "no leader".
    NoLeader,
    /// "not leader": the request went to a follower.
    NotLeader,
    /// "leader changed".
    LeaderChanged,
    /// "too many requests".
    TooManyRequests,
    /// "member not found".
    MemberNotFound,
    /// "Peer URLs already exists".
    PeerUrlsExist,
    /// "ID removed".
    MemberRemoved,
    /// "request timed out" (with any explanation after it): proposed,
    /// fate unknown.
    RequestTimedOut,
}

impl EtcdError {
    /// etcd's error descriptions are its wire contract: matched whole,
    /// after the `etcdserver: ` prefix (and the `mvcc: ` one where etcd
    /// puts it), except "request timed out", which etcd extends.
    pub fn parse(message: &str) -> Option<EtcdError> {
        let text = message.trim();
        let text = text.strip_prefix("etcdserver: ").unwrap_or(text);
        Some(match text {
            "permission denied" => EtcdError::PermissionDenied,
            "mvcc: required revision has been compacted" => EtcdError::Compacted,
            "mvcc: required revision is a future revision" => EtcdError::FutureRevision,
            "unhealthy cluster" => EtcdError::UnhealthyCluster,
            "re-configuration failed due to not enough started members" => {
                EtcdError::NotEnoughStartedMembers
            }
            "can only promote a learner member which is in sync with leader" => {
                EtcdError::LearnerNotInSync
            }
            "can only promote a learner member" => EtcdError::NotLearner,
            "no leader" => EtcdError::NoLeader,
            "not leader" => EtcdError::NotLeader,
            "leader changed" => EtcdError::LeaderChanged,
            "too many requests" => EtcdError::TooManyRequests,
            "member not found" => EtcdError::MemberNotFound,
            "Peer URLs already exists" => EtcdError::PeerUrlsExist,
            "ID removed" => EtcdError::MemberRemoved,
            t if t.starts_with("request timed out") => EtcdError::RequestTimedOut,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_errors_are_read_whole() {
        for (text, expected) in [
            ("etcdserver: permission denied", EtcdError::PermissionDenied),
            (
                "etcdserver: mvcc: required revision has been compacted",
                EtcdError::Compacted,
            ),
            (
                "etcdserver: mvcc: required revision is a future revision",
                EtcdError::FutureRevision,
            ),
            (
                "etcdserver: can only promote a learner member which is in sync with leader",
                EtcdError::LearnerNotInSync,
            ),
            (
                "etcdserver: can only promote a learner member",
                EtcdError::NotLearner,
            ),
            (
                "etcdserver: request timed out, possibly due to previous leader failure",
                EtcdError::RequestTimedOut,
            ),
            (
                "mvcc: required revision has been compacted",
                EtcdError::Compacted,
            ),
        ] {
            assert_eq!(EtcdError::parse(text), Some(expected), "{text}");
        }
        for other in [
            "etcdserver: permission denied for key /x",
            "Permission denied (os error 13)",
            "tcp connect error: Connection refused",
            "",
        ] {
            assert_eq!(EtcdError::parse(other), None, "{other}");
        }
    }

    #[test]
    fn conversions_set_the_kind_once() {
        let io = io::Error::new(io::ErrorKind::ConnectionRefused, "refused");
        let f = Failure::from(io);
        assert_eq!(f.kind, FailureKind::Io(io::ErrorKind::ConnectionRefused));
        assert_eq!(f.msg, "refused");
        let e = etcd_client::Error::IoError(io::Error::from(io::ErrorKind::TimedOut));
        let f = Failure::from(e);
        assert_eq!(f.kind, FailureKind::Io(io::ErrorKind::TimedOut));
        assert!(f.msg.starts_with("io error: "), "{}", f.msg);
        let f = Failure::from(etcd_client::Error::InvalidArgs("x".into()));
        assert_eq!(f.kind, FailureKind::Other);
        assert_eq!(Failure::from("text").kind, FailureKind::Other);
        assert_eq!(Failure::new("text").etcd(), None);
        let f = Failure::new("denied").of_kind(denied());
        assert_eq!(f.etcd(), Some(EtcdError::PermissionDenied));
    }

    fn denied() -> FailureKind {
        FailureKind::Grpc {
            code: 7,
            etcd: EtcdError::parse("etcdserver: permission denied"),
            io: None,
        }
    }

    #[test]
    fn several_failures_keep_what_etcd_said() {
        let refused = FailureKind::Transport(Some(io::ErrorKind::ConnectionRefused));
        assert_eq!(FailureKind::combined(&[refused, denied()]), denied());
        assert_eq!(FailureKind::combined(&[refused, refused]), refused);
        assert_eq!(
            FailureKind::combined(&[refused, FailureKind::Timeout]),
            FailureKind::Other
        );
        assert_eq!(FailureKind::combined(&[]), FailureKind::Other);
    }
}
