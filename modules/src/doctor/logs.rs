//! Known fatal log signatures of etcd: which line of a member's log tail
//! names the fault, and what kind of fault it is.

/// A kind of fault that etcd names in its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFault {
    /// `tocommit(N) is out of range [lastIndex(M)]`: the data dir went back
    /// in time (a VM snapshot or an old copy was restored).
    TimeTravel,
    /// `member ... has already been bootstrapped`: started with
    /// `--initial-cluster-state new` on a data dir of an existing cluster.
    AlreadyBootstrapped,
    /// `cluster ID mismatch` / `request cluster ID mismatch`: the member's
    /// data belongs to another cluster.
    ClusterIdMismatch,
    /// `database space exceeded`: the backend reached its quota (NOSPACE).
    SpaceExceeded,
    /// x509 or TLS handshake failures: certificates do not match.
    Tls,
    /// `--initial-cluster has X but missing from --initial-cluster`: the
    /// configuration does not list this member as the cluster knows it.
    InitialClusterMismatch,
    /// Permission denied on the data dir.
    DataDirPermission,
    /// The WAL or the backend database cannot be read (`walpb: crc
    /// mismatch`, a WAL record that does not decode, `failed to open
    /// database ... invalid database`): a disk or copy corrupted the data
    /// dir, and the member cannot start on it.
    DataDirCorrupt,
}

impl LogFault {
    /// Short stable code, used in findings (`log_time_travel`, ...).
    pub fn code(self) -> &'static str {
        match self {
            LogFault::TimeTravel => "time_travel",
            LogFault::AlreadyBootstrapped => "already_bootstrapped",
            LogFault::ClusterIdMismatch => "cluster_id_mismatch",
            LogFault::SpaceExceeded => "database_space_exceeded",
            LogFault::Tls => "tls_failure",
            LogFault::InitialClusterMismatch => "initial_cluster_mismatch",
            LogFault::DataDirPermission => "data_dir_permission",
            LogFault::DataDirCorrupt => "data_dir_corrupt",
        }
    }

    /// One sentence for the findings table.
    pub fn describe(self) -> &'static str {
        match self {
            LogFault::TimeTravel => "data dir went back in time (restored from an old copy or VM snapshot): raft panics with tocommit out of range",
            LogFault::AlreadyBootstrapped => "started as a new cluster on a data dir that was already bootstrapped",
            LogFault::ClusterIdMismatch => "its data belongs to another cluster (cluster ID mismatch)",
            LogFault::SpaceExceeded => "database space exceeded (backend quota reached)",
            LogFault::Tls => "TLS failure: certificates do not match (x509 / handshake errors)",
            LogFault::InitialClusterMismatch => "its configured initial cluster does not match the cluster's members",
            LogFault::DataDirPermission => "permission denied on its data dir",
            LogFault::DataDirCorrupt => "its data dir is corrupt (the WAL or the database cannot be read): it cannot start on it",
        }
    }
}

/// A signature found in a log tail: the fault and the exact line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogMatch {
    /// What the line means.
    pub fault: LogFault,
    /// The log line, trimmed (at most [`MAX_EVIDENCE`] characters).
    pub line: String,
}

/// Longest evidence line kept from a log.
pub const MAX_EVIDENCE: usize = 400;

/// Whether `line` carries the signature of `fault`.
fn line_matches(fault: LogFault, line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    match fault {
        LogFault::TimeTravel => {
            lower.contains("tocommit(") && lower.contains("is out of range [lastindex(")
        }
        LogFault::AlreadyBootstrapped => lower.contains("has already been bootstrapped"),
        LogFault::ClusterIdMismatch => lower.contains("cluster id mismatch"),
        LogFault::SpaceExceeded => lower.contains("database space exceeded"),
        LogFault::Tls => {
            lower.contains("x509:")
                || lower.contains("tls: bad certificate")
                || lower.contains("tls: failed to verify")
                || lower.contains("remote error: tls")
                || lower.contains("tls handshake error")
        }
        LogFault::InitialClusterMismatch => lower.contains("but missing from --initial-cluster"),
        LogFault::DataDirPermission => {
            lower.contains("permission denied")
                && (lower.contains("data-dir")
                    || lower.contains("data dir")
                    || lower.contains("data_dir")
                    || lower.contains("/member")
                    || lower.contains(".etcd"))
        }
        LogFault::DataDirCorrupt => {
            lower.contains("crc mismatch")
                || lower.contains("cannot open database")
                || lower.contains("failed to open database")
                || lower.contains("invalid database")
                || (lower.contains("proto: ")
                    && (lower.contains("wiretype") || lower.contains("illegal tag")))
        }
    }
}

/// Faults in the order they are checked: the most specific first (a member
/// that panicked on time travel may also log TLS noise from its peers).
const ORDER: [LogFault; 8] = [
    LogFault::TimeTravel,
    LogFault::DataDirCorrupt,
    LogFault::ClusterIdMismatch,
    LogFault::AlreadyBootstrapped,
    LogFault::InitialClusterMismatch,
    LogFault::DataDirPermission,
    LogFault::SpaceExceeded,
    LogFault::Tls,
];

/// Every distinct fault named in `log`, each with its last matching line,
/// most specific fault first.
pub fn scan(log: &str) -> Vec<LogMatch> {
    let mut found = Vec::new();
    for fault in ORDER {
        if let Some(line) = log.lines().rev().find(|l| line_matches(fault, l)) {
            found.push(LogMatch {
                fault,
                line: evidence(line),
            });
        }
    }
    found
}

/// A log line trimmed for a report.
fn evidence(line: &str) -> String {
    let line = line.trim();
    if line.chars().count() <= MAX_EVIDENCE {
        return line.to_string();
    }
    let cut: String = line.chars().take(MAX_EVIDENCE).collect();
    format!("{cut}...")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(log: &str) -> Vec<LogFault> {
        scan(log).into_iter().map(|m| m.fault).collect()
    }

    #[test]
    fn time_travel_panic_of_etcd_3_4() {
        let log = r#"{"level":"info","msg":"starting"}
{"level":"panic","ts":"2026","logger":"raft","caller":"raft/log.go:203","msg":"tocommit(3823) is out of range [lastIndex(512)]. Was the raft log corrupted, truncated, or lost?"}
panic: tocommit(3823) is out of range [lastIndex(512)]. Was the raft log corrupted, truncated, or lost?"#;
        let found = scan(log);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].fault, LogFault::TimeTravel);
        assert!(
            found[0].line.starts_with("panic: tocommit(3823)"),
            "the last line is the evidence"
        );
    }

    #[test]
    fn each_signature_is_recognised() {
        let cases = [
            (
                r#"{"msg":"member 8e9e05c52164694d has already been bootstrapped"}"#,
                LogFault::AlreadyBootstrapped,
            ),
            (
                r#"{"msg":"request cluster ID mismatch","local-member-cluster-id":"a","local-member-server-cluster-id":"b"}"#,
                LogFault::ClusterIdMismatch,
            ),
            (
                "etcdserver: mvcc: database space exceeded",
                LogFault::SpaceExceeded,
            ),
            (
                r#"{"msg":"rejected connection","error":"remote error: tls: bad certificate"}"#,
                LogFault::Tls,
            ),
            (
                r#"{"msg":"failed to dial","error":"x509: certificate signed by unknown authority"}"#,
                LogFault::Tls,
            ),
            (
                r#"{"error":"--initial-cluster has m1=http://127.0.0.1:2380 but missing from --initial-cluster=m0=http://127.0.0.2:2380"}"#,
                LogFault::InitialClusterMismatch,
            ),
            (
                r#"{"msg":"cannot access data directory","path":"/var/lib/etcd","error":"open /var/lib/etcd/.touch: permission denied"}"#,
                LogFault::DataDirPermission,
            ),
            // etcd 3.4, 3.5 and 3.6 on a WAL with a flipped byte, and on a
            // zeroed database file (lines as they logged them here)
            (
                "2026-12-04 15:24:03.262336 C | etcdmain: walpb: crc mismatch",
                LogFault::DataDirCorrupt,
            ),
            (
                r#"{"level":"fatal","caller":"etcdmain/etcd.go:183","msg":"discovery failed","error":"walpb: crc mismatch: expected: 7e74ccc8 computed: 9144a7d1: in file '0000000000000000-0000000000000000.wal' at position: 1456"}"#,
                LogFault::DataDirCorrupt,
            ),
            (
                r#"{"level":"fatal","msg":"discovery failed","error":"proto: wrong wireType = 3 for field Data"}"#,
                LogFault::DataDirCorrupt,
            ),
            (
                "2026-12-04 15:23:37.335053 C | mvcc/backend: cannot open database at d/member/snap/db (invalid database)",
                LogFault::DataDirCorrupt,
            ),
            (
                r#"{"level":"panic","caller":"backend/backend.go:205","msg":"failed to open database","path":"d/member/snap/db","error":"invalid database"}"#,
                LogFault::DataDirCorrupt,
            ),
        ];
        for (line, fault) in cases {
            assert_eq!(faults(line), vec![fault], "{line}");
        }
    }

    #[test]
    fn ordinary_lines_match_nothing() {
        let log = r#"{"level":"info","msg":"ready to serve client requests"}
{"level":"warn","msg":"lost TCP streaming connection with remote peer","error":"EOF"}
{"level":"info","msg":"raft.node: 8e9e05c52164694d elected leader"}
permission denied for user root on key /foo"#;
        assert!(scan(log).is_empty(), "{:?}", scan(log));
        assert!(scan("").is_empty());
    }

    #[test]
    fn the_most_specific_fault_comes_first_and_long_lines_are_cut() {
        let long = format!("x509: certificate has expired {}", "y".repeat(1000));
        let log = format!("{long}\npanic: tocommit(10) is out of range [lastIndex(5)]");
        let found = scan(&log);
        assert_eq!(
            found.iter().map(|m| m.fault).collect::<Vec<_>>(),
            vec![LogFault::TimeTravel, LogFault::Tls]
        );
        assert!(found[1].line.chars().count() <= MAX_EVIDENCE + 3);
    }
}
