//! The doctor's rules: from what was gathered (the cluster, the inventory
//! hosts, the regressions since the last run) to findings with their fix.

use std::collections::BTreeMap;

use super::findings::{Finding, Fix, Severity, VarValue};
use super::gather::{ClusterState, MemberState};
use super::history::Regression;
use super::host::{same_url, HostFacts};
use super::logs::{scan, LogFault};
use crate::connection::member_id_hex;

/// A healthy member this many raft entries behind the leader is lagging.
pub const LAG_ENTRIES: u64 = 5000;
/// Free pages above this many bytes, and above half the file, call for a defrag.
pub const FRAGMENTED_BYTES: i64 = 64 * 1024 * 1024;

/// Everything the rules look at.
pub struct Evidence<'a> {
    /// The cluster as etcd answered.
    pub cluster: &'a ClusterState,
    /// The inventory hosts that answered over ssh.
    pub hosts: &'a [HostFacts],
    /// Inventory hosts that could not be reached over ssh.
    pub unreachable: &'a [String],
    /// Figures that went backwards since the last run.
    pub regressions: &'a [Regression],
    /// Client URLs the module was given (for etcdctl fixes).
    pub endpoints: &'a [String],
    /// Where `etcd_backup.yml` puts snapshots (for the restore fix).
    pub backup_dir: &'a str,
    /// etcdctl's TLS flags for the fixes (`--cacert`, `--cert`, `--key` from the module's
    /// connection options), empty on a plain cluster.
    pub tls_flags: &'a str,
}

/// All findings, critical first, then by member.
pub fn diagnose(ev: &Evidence) -> Vec<Finding> {
    let mut out = Vec::new();
    let quorum = quorum_state(ev);
    let quorum_lost = quorum.lost;
    for host in ev.unreachable {
        out.push(Finding {
            severity: Severity::Critical,
            code: "host_unreachable",
            member: host.clone(),
            host: Some(host.clone()),
            finding: "the host could not be reached to read its service state and log".into(),
            evidence: "the status and log tasks did not run there (unreachable)".into(),
            fix: None,
        });
    }
    let mut matched: Vec<u64> = Vec::new();
    for host in ev.hosts {
        let member = find_member(ev.cluster, host);
        if let Some(m) = member {
            matched.push(m.id);
        }
        out.extend(host_findings(ev, host, member, quorum_lost));
    }
    for m in &ev.cluster.members {
        if !matched.contains(&m.id) {
            out.push(stray_member(ev, m));
        }
    }
    if quorum_lost {
        out.push(quorum_finding(ev, &quorum));
    }
    out.extend(alarm_findings(ev));
    out.extend(consistency_findings(ev));
    out.extend(figure_findings(ev));
    for r in ev.regressions {
        out.push(Finding {
            severity: Severity::Critical,
            code: "went_back_in_time",
            member: r.name.clone(),
            host: host_of(ev, &r.name),
            finding: "its data dir went back in time since the last doctor run (raft figures or WAL/snapshot files): restored from an old copy (silent time travel); it may have lost acknowledged entries and voted twice".into(),
            evidence: r.evidence.clone(),
            fix: Some(replace(ev, &r.name, true)),
        });
    }
    out.sort_by(|a, b| (a.severity, &a.member).cmp(&(b.severity, &b.member)));
    out
}

/// Whether the voting members still have a leader and a majority.
struct Quorum {
    lost: bool,
    voting: usize,
    healthy: usize,
}

fn quorum_state(ev: &Evidence) -> Quorum {
    let voting: Vec<&MemberState> = ev
        .cluster
        .members
        .iter()
        .filter(|m| !m.is_learner)
        .collect();
    let healthy = voting.iter().filter(|m| m.healthy).count();
    let lost = ev.cluster.list_error.is_some()
        || voting.is_empty()
        || healthy < voting.len() / 2 + 1
        || ev.cluster.leader().is_none();
    Quorum {
        lost,
        voting: voting.len(),
        healthy,
    }
}

fn find_member<'a>(cluster: &'a ClusterState, host: &HostFacts) -> Option<&'a MemberState> {
    cluster
        .members
        .iter()
        .find(|m| m.peer_urls.iter().any(|u| same_url(u, &host.peer_url)))
        .or_else(|| {
            cluster
                .members
                .iter()
                .find(|m| !m.name.is_empty() && m.name == host.member_name())
        })
}

fn host_of(ev: &Evidence, member_name: &str) -> Option<String> {
    ev.hosts
        .iter()
        .find(|h| h.member_name() == member_name)
        .map(|h| h.host.clone())
}

fn replace(ev: &Evidence, member_name: &str, force: bool) -> Fix {
    let host = host_of(ev, member_name).unwrap_or_else(|| member_name.to_string());
    let mut vars = vec![("etcd_replace_host", VarValue::from(host))];
    if force {
        vars.push(("etcd_replace_force", "true".into()));
    }
    Fix::Playbook {
        file: "etcd_replace_member.yml",
        vars,
    }
}

fn restore(ev: &Evidence) -> Fix {
    Fix::Sequence(vec![
        Fix::Playbook {
            file: "etcd_backup.yml",
            vars: Vec::new(),
        },
        Fix::Playbook {
            file: "etcd_restore.yml",
            vars: vec![(
                "etcd_restore_snapshot",
                VarValue::NewestFile {
                    dir: ev.backup_dir.to_string(),
                    pattern: "etcd-snapshot-*.db",
                },
            )],
        },
    ])
}

fn start(host: &HostFacts) -> Fix {
    Fix::OnHost {
        host: host.host.clone(),
        module: "ansible.builtin.command",
        args: host
            .start_command
            .clone()
            .unwrap_or_else(|| "systemctl start etcd".into()),
    }
}

fn service_evidence(host: &HostFacts) -> String {
    let output = host.service_output.as_deref().unwrap_or("").trim();
    let rc = host.service_rc.as_ref().map_or_else(
        || "?".to_string(),
        |v| v.to_string().trim_matches('"').to_string(),
    );
    format!(
        "status command: rc {rc}{}",
        if output.is_empty() {
            String::new()
        } else {
            format!(", {output}")
        }
    )
}

fn etcdctl_remove(ev: &Evidence, id: u64) -> Fix {
    Fix::Shell(format!(
        "etcdctl --endpoints={}{} member remove {}",
        ev.endpoints.join(","),
        ev.tls_flags,
        member_id_hex(id)
    ))
}

/// etcdctl's TLS flags for the files given (each only when set), with a leading space.
pub fn tls_flags(
    ca_cert: Option<&std::path::Path>,
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
) -> String {
    let mut out = String::new();
    for (flag, path) in [("--cacert", ca_cert), ("--cert", cert), ("--key", key)] {
        if let Some(p) = path {
            out.push_str(&format!(" {flag}={}", p.display()));
        }
    }
    out
}

fn host_findings(
    ev: &Evidence,
    host: &HostFacts,
    member: Option<&MemberState>,
    quorum_lost: bool,
) -> Vec<Finding> {
    let name = host.member_name().to_string();
    let finding = |severity, code, finding: String, evidence: String, fix| Finding {
        severity,
        code,
        member: name.clone(),
        host: Some(host.host.clone()),
        finding,
        evidence,
        fix,
    };
    let listed = ev.cluster.list_error.is_none();
    let faults = scan(host.log_text());
    match member {
        None if listed => {
            let evidence = match faults.first() {
                Some(f) => f.line.clone(),
                None => format!("no member has peer URL {} or name {name}", host.peer_url),
            };
            vec![finding(
                Severity::Warning,
                "no_member",
                "inventory host with no member in the cluster (inventory drift)".into(),
                evidence,
                Some(Fix::Playbook {
                    file: "etcd_add_member.yml",
                    vars: vec![("etcd_add_hosts", host.host.clone().into())],
                }),
            )]
        }
        Some(m) if m.client_url.is_none() => vec![finding(
            Severity::Critical,
            "never_started",
            "member added but never started: it counts toward quorum and never votes".into(),
            format!(
                "member {} with peer URLs {} has no name and no client URLs; {}",
                member_id_hex(m.id),
                m.peer_urls.join(","),
                service_evidence(host)
            ),
            Some(Fix::Sequence(vec![
                Fix::Playbook {
                    file: "etcd_remove_member.yml",
                    vars: vec![("etcd_remove_hosts", host.host.clone().into())],
                },
                Fix::Playbook {
                    file: "etcd_add_member.yml",
                    vars: vec![("etcd_add_hosts", host.host.clone().into())],
                },
            ])),
        )],
        Some(m) if m.healthy => {
            if m.is_learner {
                vec![finding(
                    Severity::Warning,
                    "learner_not_promoted",
                    "learner never promoted to a voting member".into(),
                    format!("member {} is a learner", member_id_hex(m.id)),
                    Some(Fix::OnHost {
                        host: host.host.clone(),
                        module: "etcd_member",
                        args: format!(
                            "state=promoted name={name} endpoints={}",
                            ev.endpoints.join(",")
                        ),
                    }),
                )]
            } else {
                Vec::new()
            }
        }
        // Not healthy, or not known because no endpoint answered.
        _ => {
            let error = member.and_then(|m| m.error.clone()).unwrap_or_default();
            if let Some(fault) = faults.first() {
                let fix = match fault.fault {
                    LogFault::SpaceExceeded => Some(Fix::Playbook {
                        file: "etcd_nospace_recovery.yml",
                        vars: Vec::new(),
                    }),
                    LogFault::Tls => tls_fix(host),
                    LogFault::DataDirPermission => host.data_dir.as_ref().map(|dir| Fix::OnHost {
                        host: host.host.clone(),
                        module: "ansible.builtin.command",
                        args: format!("chown -R etcd:etcd {dir}"),
                    }),
                    _ if quorum_lost => Some(restore(ev)),
                    _ => Some(replace(ev, &name, false)),
                };
                return vec![finding(
                    Severity::Critical,
                    fault.fault.code(),
                    fault.fault.describe().into(),
                    fault.line.clone(),
                    fix,
                )];
            }
            if is_tls_error(&error) {
                return vec![finding(
                    Severity::Critical,
                    LogFault::Tls.code(),
                    LogFault::Tls.describe().into(),
                    error,
                    tls_fix(host),
                )];
            }
            if host.service_active() == Some(false) {
                let evidence = if error.is_empty() {
                    service_evidence(host)
                } else {
                    format!("{}; {error}", service_evidence(host))
                };
                return vec![finding(
                    Severity::Critical,
                    "member_down",
                    "etcd is not running".into(),
                    evidence,
                    Some(start(host)),
                )];
            }
            if quorum_lost && member.is_some_and(|m| m.reachable) {
                // It runs and answers; the cluster-wide finding says why it cannot serve.
                return Vec::new();
            }
            vec![finding(
                Severity::Critical,
                "member_unhealthy",
                "etcd runs but the member does not answer".into(),
                format!(
                    "{}; {}",
                    service_evidence(host),
                    if error.is_empty() {
                        "no answer"
                    } else {
                        &error
                    }
                ),
                Some(if quorum_lost {
                    restore(ev)
                } else {
                    replace(ev, &name, false)
                }),
            )]
        }
    }
}

fn is_tls_error(error: &str) -> bool {
    let e = error.to_ascii_lowercase();
    e.contains("x509") || e.contains("certificate") || e.contains("tls handshake")
}

/// A certificate the others do not trust is re-issued from the cluster's CA
/// (the playbook first verifies it, and does nothing when it verifies).
fn tls_fix(host: &HostFacts) -> Option<Fix> {
    Some(Fix::Playbook {
        file: "etcd_reissue_cert.yml",
        vars: vec![("etcd_cert_host", host.host.clone().into())],
    })
}

fn stray_member(ev: &Evidence, m: &MemberState) -> Finding {
    let never_started = m.client_url.is_none();
    let label = if m.name.is_empty() {
        member_id_hex(m.id)
    } else {
        m.name.clone()
    };
    Finding {
        severity: if never_started {
            Severity::Critical
        } else {
            Severity::Warning
        },
        code: if never_started {
            "never_started"
        } else {
            "not_in_inventory"
        },
        member: label,
        host: None,
        finding: if never_started {
            "member added but never started, and no inventory host has it: it counts toward quorum and never votes".into()
        } else {
            "cluster member that no inventory host has (inventory drift)".into()
        },
        evidence: format!(
            "member {} peer URLs {}",
            member_id_hex(m.id),
            m.peer_urls.join(",")
        ),
        fix: Some(etcdctl_remove(ev, m.id)),
    }
}

fn quorum_finding(ev: &Evidence, q: &Quorum) -> Finding {
    let evidence = match &ev.cluster.list_error {
        Some(e) => e.clone(),
        None => format!(
            "{} of {} voting members healthy (quorum {}); leader: {}",
            q.healthy,
            q.voting,
            q.voting / 2 + 1,
            ev.cluster
                .leader()
                .map_or("none".to_string(), member_id_hex)
        ),
    };
    // Members that are only stopped come back with a start; anything else
    // (a crash signature, a lost data dir) needs the restore.
    let down: Vec<&HostFacts> = ev
        .hosts
        .iter()
        .filter(|h| {
            find_member(ev.cluster, h).is_none_or(|m| !m.healthy)
                && h.service_active() == Some(false)
        })
        .collect();
    let startable = !down.is_empty()
        && down.iter().all(|h| scan(h.log_text()).is_empty())
        && ev.unreachable.is_empty();
    let fix = if startable {
        Fix::Sequence(down.iter().map(|h| start(h)).collect())
    } else {
        restore(ev)
    };
    Finding {
        severity: Severity::Critical,
        code: "quorum_lost",
        member: "cluster".into(),
        host: None,
        finding: if startable {
            "quorum lost: too few members run; start the stopped members (if they cannot start, restore from a snapshot)".into()
        } else {
            "quorum lost: the cluster cannot serve reads or writes; restore every member from one snapshot".into()
        },
        evidence,
        fix: Some(fix),
    }
}

fn alarm_findings(ev: &Evidence) -> Vec<Finding> {
    let mut by_kind: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for a in &ev.cluster.alarms {
        let who = ev
            .cluster
            .member(a.member_id)
            .map_or_else(|| member_id_hex(a.member_id), |m| m.name.clone());
        by_kind.entry(a.alarm.as_str()).or_default().push(who);
    }
    let mut out = Vec::new();
    for (kind, members) in by_kind {
        match kind {
            "NOSPACE" => out.push(Finding {
                severity: Severity::Critical,
                code: "nospace",
                member: "cluster".into(),
                host: None,
                finding: "NOSPACE alarm: the backend reached its quota, every write fails with database space exceeded".into(),
                evidence: format!("alarm NOSPACE raised by {}", members.join(", ")),
                fix: Some(Fix::Playbook {
                    file: "etcd_nospace_recovery.yml",
                    vars: Vec::new(),
                }),
            }),
            other => {
                for name in members {
                    out.push(Finding {
                        severity: Severity::Critical,
                        code: "corrupt",
                        member: name.clone(),
                        host: host_of(ev, &name),
                        finding: format!("{other} alarm: the member's data differs from the others'"),
                        evidence: format!("alarm {other} raised by {name}"),
                        fix: Some(replace(ev, &name, true)),
                    });
                }
            }
        }
    }
    out
}

fn consistency_findings(ev: &Evidence) -> Vec<Finding> {
    let Some(revision) = ev.cluster.hash_revision else {
        return Vec::new();
    };
    let hashes: Vec<(&MemberState, (u32, i64))> = ev
        .cluster
        .members
        .iter()
        .filter_map(|m| match &m.hash {
            Some(Ok(h)) => Some((m, *h)),
            _ => None,
        })
        .collect();
    let mut counts: BTreeMap<(u32, i64), usize> = BTreeMap::new();
    for (_, h) in &hashes {
        *counts.entry(*h).or_default() += 1;
    }
    if counts.len() < 2 {
        return Vec::new();
    }
    let majority = counts
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(h, _)| *h)
        .unwrap_or_default();
    hashes
        .iter()
        .filter(|(_, h)| *h != majority)
        .map(|(m, h)| Finding {
            severity: Severity::Critical,
            code: "inconsistent",
            member: m.name.clone(),
            host: host_of(ev, &m.name),
            finding: "its keys differ from the majority's (HashKV mismatch)".into(),
            evidence: format!(
                "HashKV at revision {revision}: {:x} (compact {}) vs majority {:x} (compact {})",
                h.0, h.1, majority.0, majority.1
            ),
            fix: Some(replace(ev, &m.name, true)),
        })
        .collect()
}

/// Lag behind the leader and fragmentation, from the status figures.
fn figure_findings(ev: &Evidence) -> Vec<Finding> {
    let mut out = Vec::new();
    let leader_index = ev
        .cluster
        .leader()
        .and_then(|id| ev.cluster.member(id))
        .and_then(|m| m.status.as_ref())
        .map(|s| s.raft_index);
    for m in ev.cluster.members.iter().filter(|m| m.healthy) {
        let Some(s) = &m.status else { continue };
        if let Some(li) = leader_index {
            if s.raft_index + LAG_ENTRIES < li {
                out.push(Finding {
                    severity: Severity::Warning,
                    code: "lagging",
                    member: m.name.clone(),
                    host: host_of(ev, &m.name),
                    finding: "far behind the leader".into(),
                    evidence: format!("raft index {} vs leader {li}", s.raft_index),
                    fix: None,
                });
            }
        }
        let free = s.db_size - s.db_size_in_use;
        if free > FRAGMENTED_BYTES && free * 2 > s.db_size {
            out.push(Finding {
                severity: Severity::Warning,
                code: "fragmented",
                member: m.name.clone(),
                host: host_of(ev, &m.name),
                finding: "database file mostly free pages".into(),
                evidence: format!("db size {} bytes, in use {}", s.db_size, s.db_size_in_use),
                fix: Some(Fix::Playbook {
                    file: "etcd_defrag.yml",
                    vars: Vec::new(),
                }),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::gather::Status;

    fn member(id: u64, healthy: bool) -> MemberState {
        MemberState {
            id,
            name: format!("m{id}"),
            peer_urls: vec![format!("http://10.0.0.{id}:2380")],
            client_url: Some(format!("http://10.0.0.{id}:2379")),
            reachable: healthy,
            healthy,
            status: healthy.then(|| Status {
                leader: 1,
                raft_term: 2,
                raft_index: 100,
                revision: 50,
                ..Status::default()
            }),
            error: (!healthy).then(|| "connection refused".to_string()),
            ..MemberState::default()
        }
    }

    fn host(id: u64, rc: i64, log: &str) -> HostFacts {
        HostFacts {
            host: format!("m{id}"),
            peer_url: format!("http://10.0.0.{id}:2380/"),
            service_rc: Some(rc.into()),
            log: Some(log.into()),
            start_command: Some(format!("svc start m{id}")),
            ..HostFacts::default()
        }
    }

    fn codes(cluster: &ClusterState, hosts: &[HostFacts]) -> Vec<(String, &'static str)> {
        let ev = Evidence {
            cluster,
            hosts,
            unreachable: &[],
            regressions: &[],
            endpoints: &[],
            backup_dir: "/b",
            tls_flags: "",
        };
        diagnose(&ev)
            .into_iter()
            .map(|f| (f.member, f.code))
            .collect()
    }

    #[test]
    fn a_healthy_cluster_has_no_findings() {
        let cluster = ClusterState {
            members: vec![member(1, true), member(2, true), member(3, true)],
            ..ClusterState::default()
        };
        let hosts = [host(1, 0, ""), host(2, 0, ""), host(3, 0, "")];
        assert!(codes(&cluster, &hosts).is_empty());
    }

    #[test]
    fn a_stopped_member_and_a_panicked_one_get_different_fixes() {
        let cluster = ClusterState {
            members: vec![member(1, true), member(2, true), member(3, false)],
            ..ClusterState::default()
        };
        let stopped = [host(1, 0, ""), host(2, 0, ""), host(3, 3, "stopping")];
        assert_eq!(
            codes(&cluster, &stopped),
            vec![("m3".into(), "member_down")]
        );
        let panicked = [
            host(1, 0, ""),
            host(2, 0, ""),
            host(3, 3, "panic: tocommit(9) is out of range [lastIndex(3)]"),
        ];
        assert_eq!(
            codes(&cluster, &panicked),
            vec![("m3".into(), "time_travel")]
        );
        // A healthy member's old panic line is history, not a finding.
        let healed = [
            host(1, 0, ""),
            host(2, 0, "panic: tocommit(9) is out of range [lastIndex(3)]"),
            host(3, 3, ""),
        ];
        assert_eq!(codes(&cluster, &healed), vec![("m3".into(), "member_down")]);
    }

    #[test]
    fn two_of_three_down_is_quorum_lost() {
        let mut alone = member(1, false);
        alone.reachable = true;
        alone.status = Some(Status::default());
        let cluster = ClusterState {
            members: vec![alone, member(2, false), member(3, false)],
            ..ClusterState::default()
        };
        let hosts = [host(1, 0, ""), host(2, 3, ""), host(3, 3, "")];
        let found = codes(&cluster, &hosts);
        assert_eq!(
            found,
            vec![
                ("cluster".into(), "quorum_lost"),
                ("m2".into(), "member_down"),
                ("m3".into(), "member_down")
            ]
        );
    }

    #[test]
    fn drift_both_ways_and_a_member_never_started() {
        let mut unstarted = member(4, false);
        unstarted.name.clear();
        unstarted.client_url = None;
        let cluster = ClusterState {
            members: vec![member(1, true), member(2, true), member(3, true), unstarted],
            ..ClusterState::default()
        };
        let hosts = [host(1, 0, ""), host(2, 0, ""), host(5, 3, "")];
        let found = codes(&cluster, &hosts);
        assert_eq!(
            found,
            vec![
                ("4".into(), "never_started"),
                ("m3".into(), "not_in_inventory"),
                ("m5".into(), "no_member"),
            ]
        );
    }

    #[test]
    fn a_certificate_from_another_ca_is_reissued_from_the_log_line_or_the_client_error() {
        let mut refused = member(3, false);
        refused.reachable = true;
        refused.error = Some("x509: certificate signed by unknown authority".into());
        let cluster = ClusterState {
            members: vec![member(1, true), member(2, true), refused],
            ..ClusterState::default()
        };
        let line = r#"{"level":"warn","msg":"rejected connection","error":"remote error: tls: bad certificate"}"#;
        for log in [line, ""] {
            let hosts = [host(1, 0, ""), host(2, 0, ""), host(3, 0, log)];
            let ev = Evidence {
                cluster: &cluster,
                hosts: &hosts,
                unreachable: &[],
                regressions: &[],
                endpoints: &[],
                backup_dir: "/b",
                tls_flags: "",
            };
            let found = diagnose(&ev);
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!(
                (found[0].member.as_str(), found[0].code),
                ("m3", "tls_failure")
            );
            let evidence = if log.is_empty() {
                "x509: certificate signed by unknown authority"
            } else {
                line
            };
            assert_eq!(found[0].evidence, evidence);
            assert_eq!(
                found[0].fix,
                Some(Fix::Playbook {
                    file: "etcd_reissue_cert.yml",
                    vars: vec![("etcd_cert_host", "m3".into())],
                })
            );
        }
    }

    #[test]
    fn tls_flags_name_the_files_given() {
        use std::path::Path;
        assert_eq!(tls_flags(None, None, None), "");
        assert_eq!(
            tls_flags(
                Some(Path::new("/ca.pem")),
                Some(Path::new("/c.pem")),
                Some(Path::new("/k.pem"))
            ),
            " --cacert=/ca.pem --cert=/c.pem --key=/k.pem"
        );
        assert_eq!(
            tls_flags(Some(Path::new("/ca.pem")), None, None),
            " --cacert=/ca.pem"
        );
    }
}
