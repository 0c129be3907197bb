//! `etcd_doctor`: one run that names what is wrong with an etcd cluster
//! and the playbook that fixes it.
//!
//! Runs once per cluster. The playbook gathers on every inventory host the
//! service state and the log tail and passes them in `hosts`; the module
//! reads the cluster itself ([`gather`]), matches the logs against known
//! fatal signatures ([`logs`]), compares raft term, index and revision with
//! the previous run's state ([`history`]) and turns all of it into findings
//! ([`diagnose`], [`findings`]). It never changes the cluster.

pub mod datadir;
pub mod diagnose;
pub mod findings;
pub mod gather;
pub mod history;
pub mod host;
pub mod logs;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::connection::{member_id_hex, ConnectionArgs};
use crate::protocol::lenient::List;
use crate::protocol::{ArgType, Context, Failure, Module, OptionDoc, Outcome, ReturnDoc};
use findings::{FixContext, Severity};
use history::{MemberRecord, Observation, State};
use host::HostFacts;

/// Arguments of `etcd_doctor` (plus the shared connection options).
/// Defaults are filled in by the protocol from [`Doctor::OPTIONS`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoctorArgs {
    /// What the playbook gathered per inventory host.
    pub hosts: Value,
    /// Inventory hosts that could not be reached.
    #[serde(default)]
    pub unreachable_hosts: Option<List>,
    /// The previous run's `state` (empty on the first run).
    #[serde(default)]
    pub previous_state: Option<Value>,
    /// The inventory path written into the fix commands.
    pub fix_inventory: String,
    /// The playbook directory written into the fix commands.
    pub fix_playbook_dir: String,
    /// Where etcd_backup.yml keeps snapshots (for the restore fix).
    pub backup_dir: String,
}

/// The `etcd_doctor` module.
pub struct Doctor;

impl Module for Doctor {
    const NAME: &'static str = "etcd_doctor";
    const SHORT_DESCRIPTION: &'static str =
        "Diagnose an etcd cluster: what is wrong, the evidence, and the playbook that fixes it";
    const DESCRIPTION: &'static [&'static str] = &[
        "Runs once per cluster (run_once). Reads the member list, each member's status and health from its own client URL, the alarms, and HashKV of every member at one revision when all answer.",
        "Compares the members with the inventory hosts given in C(hosts) (drift both ways, members added but never started, learners not promoted), matches each host's log tail against known fatal signatures (time travel, cluster ID mismatch, already bootstrapped, initial cluster mismatch, database space exceeded, TLS failures, data dir permissions), and compares raft term, index and revision, and the newest WAL and snapshot file names of each data dir, with C(previous_state) (a member whose figures went backwards, or whose recorded newest WAL or snapshot file is gone while older ones remain, was restored from an old copy, even after it caught up).",
        "Returns the findings (severity, member, finding, evidence, fix command), a table of them, and the C(state) to keep for the next run. Never changes anything; check mode runs the same checks.",
    ];
    const OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::new(
            "hosts",
            ArgType::Raw,
            "One dict per inventory host that was reached: host, name (etcd member name), peer_url, service_rc and service_output (of the status command), log (the log tail), start_command, data_dir, server_cert, ca_cert, data_files and data_files_rc (the listing of the data dir's member/wal and member/snap, one path a line, and its exit code).",
        )
        .required(),
        OptionDoc::new(
            "unreachable_hosts",
            ArgType::List,
            "Inventory hosts whose state and log could not be read.",
        ),
        OptionDoc::new(
            "previous_state",
            ArgType::Dict,
            "The state returned by the previous run (empty or absent on the first run).",
        ),
        OptionDoc::new(
            "fix_inventory",
            ArgType::Str,
            "Inventory path written into the fix commands.",
        )
        .default("\"INVENTORY\""),
        OptionDoc::new(
            "fix_playbook_dir",
            ArgType::Str,
            "Directory of the db-operations playbooks written into the fix commands.",
        )
        .default("\"playbooks/db-operations\""),
        OptionDoc::new(
            "backup_dir",
            ArgType::Str,
            "Directory on the controller where etcd_backup.yml keeps snapshots, for the restore fix.",
        )
        .default("\"backups/etcd\""),
    ];
    const EXAMPLES: &'static str = r#"
- name: Diagnose the cluster
  etcd_doctor:
    endpoints: "http://10.0.0.1:2379,http://10.0.0.2:2379,http://10.0.0.3:2379"
    hosts:
      - host: etcd1
        name: etcd1
        peer_url: http://10.0.0.1:2380
        service_rc: 0
        log: "{{ etcd_log.stdout }}"
    previous_state: "{{ previous | default({}) }}"
    fix_inventory: "{{ inventory_file }}"
  register: etcd_doctor
  run_once: true
"#;
    const RETURNS: &'static [ReturnDoc] = &[
        ReturnDoc {
            name: "findings",
            description: "One entry per finding: severity (critical, warning), code, member, host, finding, evidence, fix (a command line) and fix_playbooks.",
            returned: "success",
            ty: "list",
        },
        ReturnDoc {
            name: "critical",
            description: "How many findings are critical.",
            returned: "success",
            ty: "int",
        },
        ReturnDoc {
            name: "healthy",
            description: "Whether there is no finding at all.",
            returned: "success",
            ty: "bool",
        },
        ReturnDoc {
            name: "table",
            description: "The findings as table lines.",
            returned: "success",
            ty: "list",
        },
        ReturnDoc {
            name: "members",
            description: "Per member: id, name, peer_urls, client_url, is_learner, healthy, error, raft_term, raft_index, revision, db_size, db_size_in_use, hash.",
            returned: "success",
            ty: "list",
        },
        ReturnDoc {
            name: "state",
            description: "What to keep for the next run (previous_state): per member id, raft term, raft index, revision and the newest WAL and snapshot file names.",
            returned: "success",
            ty: "dict",
        },
        ReturnDoc {
            name: "cluster_id",
            description: "The cluster id (hex), or null when no member answered.",
            returned: "success",
            ty: "str",
        },
        ReturnDoc {
            name: "leader",
            description: "The leader's name, or null.",
            returned: "success",
            ty: "str",
        },
    ];
    type Args = DoctorArgs;
    type Shared = ConnectionArgs;

    async fn run(args: DoctorArgs, ctx: &Context<ConnectionArgs>) -> Result<Outcome, Failure> {
        let hosts: Vec<HostFacts> = serde_json::from_value(args.hosts.clone()).map_err(|e| {
            Failure::new(format!(
                "argument 'hosts' is invalid: a list of dicts with host and peer_url expected: {e}"
            ))
        })?;
        let previous = State::from_value(args.previous_state.as_ref().unwrap_or(&Value::Null))
            .map_err(|e| Failure::new(format!("argument 'previous_state' is invalid: {e}")))?;
        let connection = ctx.shared.connect_settings()?;
        let unreachable = args.unreachable_hosts.map(|l| l.0).unwrap_or_default();
        let fix_ctx = FixContext {
            inventory: args.fix_inventory,
            playbook_dir: args.fix_playbook_dir,
        };
        let backup_dir = args.backup_dir;

        let cluster = gather::gather(&connection).await;
        let observed: Vec<Observation> = cluster
            .members
            .iter()
            .filter(|m| !m.name.is_empty())
            .filter_map(|m| {
                let s = m.status.as_ref()?;
                Some(Observation {
                    name: m.name.clone(),
                    record: MemberRecord {
                        id: member_id_hex(m.id),
                        raft_term: s.raft_term,
                        raft_index: s.raft_index,
                        revision: s.revision,
                        files: Default::default(),
                    },
                    dir: hosts
                        .iter()
                        .find(|h| h.member_name() == m.name)
                        .and_then(HostFacts::dir_files),
                })
            })
            .collect();
        let (regressions, state) =
            history::compare(&previous, cluster.cluster_id.as_deref(), &observed);
        let tls_flags = diagnose::tls_flags(
            ctx.shared.ca_cert.as_deref(),
            ctx.shared.client_cert.as_deref(),
            ctx.shared.client_key.as_deref(),
        );
        let found = diagnose::diagnose(&diagnose::Evidence {
            cluster: &cluster,
            hosts: &hosts,
            unreachable: &unreachable,
            regressions: &regressions,
            endpoints: &connection.endpoints,
            backup_dir: &backup_dir,
            tls_flags: &tls_flags,
        });

        let critical = found
            .iter()
            .filter(|f| f.severity == Severity::Critical)
            .count();
        let table = findings::table(&found, &fix_ctx);
        let msg = match (found.len(), critical) {
            (0, _) => "no findings".to_string(),
            (n, c) => format!("{n} finding(s), {c} critical"),
        };
        let leader = cluster
            .leader()
            .and_then(|id| cluster.member(id))
            .map(|m| m.name.clone());
        Ok(Outcome::new(false, msg)
            .with(
                "findings",
                found
                    .iter()
                    .map(|f| f.to_json(&fix_ctx))
                    .collect::<Vec<_>>(),
            )
            .with("critical", critical)
            .with("healthy", found.is_empty())
            .with("table", table)
            .with("members", members_json(&cluster))
            .with("state", serde_json::to_value(&state).unwrap_or(Value::Null))
            .with("cluster_id", cluster.cluster_id.clone())
            .with("leader", leader)
            .with("hash_revision", cluster.hash_revision))
    }
}

fn members_json(cluster: &gather::ClusterState) -> Value {
    Value::Array(
        cluster
            .members
            .iter()
            .map(|m| {
                let s = m.status.as_ref();
                let mut v = Map::new();
                v.insert("id".into(), member_id_hex(m.id).into());
                v.insert("name".into(), m.name.clone().into());
                v.insert("peer_urls".into(), m.peer_urls.clone().into());
                v.insert("client_url".into(), json!(m.client_url));
                v.insert("is_learner".into(), m.is_learner.into());
                v.insert("healthy".into(), m.healthy.into());
                v.insert("error".into(), json!(m.error));
                v.insert("raft_term".into(), json!(s.map(|s| s.raft_term)));
                v.insert("raft_index".into(), json!(s.map(|s| s.raft_index)));
                v.insert("revision".into(), json!(s.map(|s| s.revision)));
                v.insert("db_size".into(), json!(s.map(|s| s.db_size)));
                v.insert("db_size_in_use".into(), json!(s.map(|s| s.db_size_in_use)));
                v.insert(
                    "hash".into(),
                    match &m.hash {
                        Some(Ok((h, _))) => json!(format!("{h:x}")),
                        _ => Value::Null,
                    },
                );
                Value::Object(v)
            })
            .collect(),
    )
}
