//! `etcd_doctor`: one run that names what is wrong with an etcd cluster
//! and the playbook that fixes it.
//!
//! Three steps, one module (`step`), so that a doctor run is three module
//! runs: `step: host` on every inventory host reads the service state, the
//! log tail and the data dir's WAL and snapshot files ([`local`]); `step:
//! diagnose` (the default), once per cluster, takes them in `hosts`, reads
//! the cluster itself ([`gather`]), matches the logs against known fatal
//! signatures ([`logs`]), compares raft term, index and revision with the
//! previous run's state ([`history`]) and turns all of it into findings
//! ([`diagnose`], [`findings`]); `step: save`, on the controller, keeps the
//! state and the report ([`save`]) and fails on a critical finding. None of
//! them changes the cluster.

pub mod datadir;
pub mod diagnose;
pub mod findings;
pub mod gather;
pub mod history;
pub mod host;
pub mod local;
pub mod logs;
pub mod save;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::connection::{member_id_hex, ConnectionArgs};
use crate::protocol::lenient::List;
use crate::protocol::{
    ArgType, Choice, Context, Failure, Module, OptionDoc, Outcome, ReturnDoc, Rule,
};
use findings::{FixContext, Severity};
use history::{MemberRecord, Observation, State};
use host::HostFacts;

crate::choices! {
    /// Which part of a doctor run `etcd_doctor` does.
    pub enum Step {
        /// On each inventory host: read what the host says about its member.
        Host = "host",
        /// Once per cluster: read the cluster and name what is wrong.
        Diagnose = "diagnose",
        /// On the controller: keep the state and the report.
        Save = "save",
    }
}

/// Arguments of `etcd_doctor` (plus the shared connection options).
/// Defaults are filled in by the protocol from [`Doctor::OPTIONS`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoctorArgs {
    /// Which step to run.
    pub step: Step,
    /// `host`: the inventory host name.
    #[serde(default)]
    pub host: Option<String>,
    /// `host`: the member's etcd name.
    #[serde(default)]
    pub member_name: Option<String>,
    /// `host`: the member's peer URL.
    #[serde(default)]
    pub peer_url: Option<String>,
    /// `host`: the command that starts etcd there.
    #[serde(default)]
    pub start_command: Option<String>,
    /// `host`: the member's data dir.
    pub data_dir: String,
    /// `host`: says whether etcd runs.
    pub status_command: String,
    /// `host`: prints the member's log tail.
    pub log_command: String,
    /// `save`: where the state is kept.
    #[serde(default)]
    pub state_file: Option<String>,
    /// `save`: where the report is written.
    #[serde(default)]
    pub report_file: Option<String>,
    /// `save`: the diagnosis (the registered result of `step: diagnose`).
    #[serde(default)]
    pub report: Option<Value>,
    /// `save`: fail when a finding is critical.
    pub fail_on_critical: bool,
    /// What the playbook gathered per inventory host (`step: host` results).
    #[serde(default)]
    pub hosts: Option<Value>,
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
        "A doctor run is three steps of this module (O(step)): V(host) on every inventory host, V(diagnose) once per cluster, V(save) on the controller; playbooks/db-operations/etcd_doctor.yml runs them.",
        "O(step=host) runs O(status_command) and O(log_command) with /bin/sh (each killed after 120 s) and lists the regular files of the data dir's member/wal and member/snap; it returns them as C(host_facts), one entry of O(hosts). The commands must only read: they run in check mode too.",
        "O(step=diagnose) runs once per cluster (run_once). Reads the member list, each member's status and health from its own client URL, the alarms, and HashKV of every member at one revision when all answer.",
        "Compares the members with the inventory hosts given in C(hosts) (drift both ways, members added but never started, learners not promoted), matches each host's log tail against known fatal signatures (time travel, cluster ID mismatch, already bootstrapped, initial cluster mismatch, database space exceeded, TLS failures, data dir permissions), and compares raft term, index and revision, and the newest WAL and snapshot file names of each data dir, with C(previous_state) (a member whose figures went backwards, or whose recorded newest WAL or snapshot file is gone while older ones remain, was restored from an old copy, even after it caught up).",
        "Returns the findings (severity, member, finding, evidence, fix command), a table of them, and the C(state) to keep for the next run. Never changes anything; check mode runs the same checks.",
        "O(step=save) writes O(report)'s C(state) to O(state_file) and O(report) itself to O(report_file) as JSON (each through a temp file, fsynced and renamed, mode 0600, a missing directory created 0700; changed when a file's content changed), in check mode too: these are the doctor's own files, not the cluster's. Then it fails when O(fail_on_critical) and a finding is critical.",
    ];
    const OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::new("step", ArgType::Str, "Which step to run (see the description).")
            .default("\"diagnose\"")
            .choices(Step::NAMES),
        OptionDoc::new("host", ArgType::Str, "O(step=host): the inventory host name."),
        OptionDoc::new(
            "member_name",
            ArgType::Str,
            "O(step=host): the member's etcd name (default: O(host)).",
        ),
        OptionDoc::new(
            "peer_url",
            ArgType::Str,
            "O(step=host): the member's peer URL as the inventory configures it.",
        ),
        OptionDoc::new(
            "start_command",
            ArgType::Str,
            "O(step=host): the command that starts etcd on the host, for the fix commands.",
        ),
        OptionDoc::new("data_dir", ArgType::Path, "O(step=host): the member's data dir.")
            .default("\"/var/lib/etcd\""),
        OptionDoc::new(
            "status_command",
            ArgType::Str,
            "O(step=host): a read-only shell command whose exit code says whether etcd runs (0: it does).",
        )
        .default("\"systemctl is-active etcd\""),
        OptionDoc::new(
            "log_command",
            ArgType::Str,
            "O(step=host): a read-only shell command that prints the last lines of the member's log.",
        )
        .default("\"journalctl -u etcd -n 200 --no-pager\""),
        OptionDoc::new(
            "state_file",
            ArgType::Path,
            "O(step=save): where the state for the next run is kept.",
        ),
        OptionDoc::new(
            "report_file",
            ArgType::Path,
            "O(step=save): where the report is written as JSON.",
        ),
        OptionDoc::new(
            "report",
            ArgType::Dict,
            "O(step=save): the result of O(step=diagnose), as registered.",
        ),
        OptionDoc::new(
            "fail_on_critical",
            ArgType::Bool,
            "O(step=save): fail, after writing, when a finding is critical.",
        )
        .default("true"),
        OptionDoc::new(
            "hosts",
            ArgType::Raw,
            "O(step=diagnose): the C(host_facts) of O(step=host) of every inventory host that was reached. One dict per inventory host that was reached: host, name (etcd member name), peer_url, service_rc and service_output (of the status command), log (the log tail), start_command, data_dir, data_files and data_files_rc (the listing of the data dir's member/wal and member/snap, one path a line, and its exit code).",
        ),
        OptionDoc::new(
            "unreachable_hosts",
            ArgType::List,
            "O(step=diagnose): inventory hosts whose state and log could not be read.",
        ),
        OptionDoc::new(
            "previous_state",
            ArgType::Dict,
            "O(step=diagnose): the state returned by the previous run (empty or absent on the first run).",
        ),
        OptionDoc::new(
            "fix_inventory",
            ArgType::Str,
            "O(step=diagnose): inventory path written into the fix commands.",
        )
        .default("\"INVENTORY\""),
        OptionDoc::new(
            "fix_playbook_dir",
            ArgType::Str,
            "O(step=diagnose): directory of the db-operations playbooks written into the fix commands.",
        )
        .default("\"playbooks/db-operations\""),
        OptionDoc::new(
            "backup_dir",
            ArgType::Str,
            "O(step=diagnose): directory on the controller where etcd_backup.yml keeps snapshots, for the restore fix.",
        )
        .default("\"backups/etcd\""),
    ];
    const RULES: &'static [Rule] = &[
        Rule::required_if("step", "host", &["host", "peer_url"]),
        Rule::only_if(
            "step",
            &["host"],
            &[
                "host",
                "member_name",
                "peer_url",
                "start_command",
                "data_dir",
                "status_command",
                "log_command",
            ],
        ),
        Rule::required_if("step", "diagnose", &["hosts"]),
        Rule::only_if(
            "step",
            &["diagnose"],
            &[
                "hosts",
                "unreachable_hosts",
                "previous_state",
                "fix_inventory",
                "fix_playbook_dir",
                "backup_dir",
            ],
        ),
        Rule::required_if("step", "save", &["state_file", "report_file", "report"]),
        Rule::only_if(
            "step",
            &["save"],
            &["state_file", "report_file", "report", "fail_on_critical"],
        ),
    ];
    const EXAMPLES: &'static str = r#"
- name: Read what each host says about its member
  etcd_doctor:
    step: host
    host: "{{ inventory_hostname }}"
    peer_url: "https://{{ ip }}:2380"
    data_dir: /var/lib/etcd
  register: etcd_doctor_host
  check_mode: false

- name: Diagnose the cluster
  etcd_doctor:
    endpoints: "https://10.0.0.1:2379,https://10.0.0.2:2379,https://10.0.0.3:2379"
    hosts: "{{ ansible_play_hosts | map('extract', hostvars, 'etcd_doctor_host') | map(attribute='host_facts') | list }}"
    previous_state: "{{ previous | default({}) }}"
    fix_inventory: "{{ inventory_file }}"
  register: etcd_doctor
  run_once: true

- name: Keep the state and the report; fail on a critical finding
  etcd_doctor:
    step: save
    report: "{{ etcd_doctor }}"
    state_file: .etcd-doctor/etcd-doctor-state.json
    report_file: .etcd-doctor/etcd-doctor-report.json
  delegate_to: localhost
  run_once: true
  check_mode: false
"#;
    const RETURNS: &'static [ReturnDoc] = &[
        ReturnDoc {
            name: "host_facts",
            description: "What the host says about its member, one entry of O(hosts): host, name, peer_url, service_rc, service_output, log, start_command, data_dir, data_files, data_files_rc.",
            returned: "step=host",
            ty: "dict",
        },
        ReturnDoc {
            name: "state_file",
            description: "Where the state was kept.",
            returned: "step=save",
            ty: "str",
        },
        ReturnDoc {
            name: "report_file",
            description: "Where the report was written.",
            returned: "step=save",
            ty: "str",
        },
        ReturnDoc {
            name: "findings",
            description: "One entry per finding: severity (critical, warning), code, member, host, finding, evidence, fix (a command line) and fix_playbooks.",
            returned: "step=diagnose",
            ty: "list",
        },
        ReturnDoc {
            name: "critical",
            description: "How many findings are critical.",
            returned: "step=diagnose",
            ty: "int",
        },
        ReturnDoc {
            name: "healthy",
            description: "Whether there is no finding at all.",
            returned: "step=diagnose",
            ty: "bool",
        },
        ReturnDoc {
            name: "table",
            description: "The findings as table lines.",
            returned: "step=diagnose",
            ty: "list",
        },
        ReturnDoc {
            name: "members",
            description: "Per member: id, name, peer_urls, client_url, is_learner, healthy, error, raft_term, raft_index, revision, db_size, db_size_in_use, hash.",
            returned: "step=diagnose",
            ty: "list",
        },
        ReturnDoc {
            name: "state",
            description: "What to keep for the next run (previous_state): per member id, raft term, raft index, revision and the newest WAL and snapshot file names.",
            returned: "step=diagnose",
            ty: "dict",
        },
        ReturnDoc {
            name: "cluster_id",
            description: "The cluster id (hex), or null when no member answered.",
            returned: "step=diagnose",
            ty: "str",
        },
        ReturnDoc {
            name: "leader",
            description: "The leader's name, or null.",
            returned: "step=diagnose",
            ty: "str",
        },
    ];
    type Args = DoctorArgs;
    type Shared = ConnectionArgs;

    async fn run(args: DoctorArgs, ctx: &Context<ConnectionArgs>) -> Result<Outcome, Failure> {
        match args.step {
            Step::Host => host_step(args).await,
            Step::Save => save_step(args),
            Step::Diagnose => diagnose_step(args, ctx).await,
        }
    }
}

/// `step: host`: reads this host's service state, log tail and data dir.
async fn host_step(args: DoctorArgs) -> Result<Outcome, Failure> {
    let input = local::HostInput {
        host: args.host.unwrap_or_default(),
        member_name: args.member_name.filter(|n| !n.is_empty()),
        peer_url: args.peer_url.unwrap_or_default(),
        start_command: args.start_command,
        data_dir: args.data_dir,
        status_command: args.status_command,
        log_command: args.log_command,
    };
    let facts = local::read_host(&input).await;
    let msg = format!(
        "service {}; {} log line(s); data dir {}",
        match facts.service_active() {
            Some(true) => "active",
            Some(false) => "not active",
            None => "state unknown",
        },
        facts
            .log_text()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count(),
        if facts.dir_files().is_some() {
            "listed"
        } else {
            "not readable"
        }
    );
    let value = serde_json::to_value(&facts)
        .map_err(|e| Failure::new(format!("cannot encode the host facts: {e}")))?;
    Ok(Outcome::new(false, msg).with("host_facts", value))
}

/// `step: save`: keeps the state and the report, then fails on a critical finding.
fn save_step(args: DoctorArgs) -> Result<Outcome, Failure> {
    let report = args.report.unwrap_or(Value::Null);
    if !report.is_object() || report.get("state").is_none() {
        return Err(Failure::new(
            "argument 'report' is not a diagnosis: the registered result of etcd_doctor step=diagnose (with its state) expected",
        ));
    }
    let state_file = args.state_file.unwrap_or_default();
    let report_file = args.report_file.unwrap_or_default();
    let mut changed = save::write_file(
        std::path::Path::new(&state_file),
        &save::json_text(&report["state"]),
    )
    .map_err(Failure::new)?;
    changed |= save::write_file(
        std::path::Path::new(&report_file),
        &save::json_text(&report),
    )
    .map_err(Failure::new)?;
    let (critical, codes) = save::critical(&report);
    if args.fail_on_critical && critical > 0 {
        return Err(Failure::new(format!(
            "{critical} critical finding(s): {} (see the findings table and {report_file})",
            codes.join(", ")
        ))
        .with("changed", changed)
        .with("critical", critical)
        .with("state_file", state_file)
        .with("report_file", report_file));
    }
    Ok(Outcome::new(
        changed,
        format!("state kept in {state_file}, report written to {report_file}"),
    )
    .with("critical", critical)
    .with("state_file", state_file)
    .with("report_file", report_file))
}

/// `step: diagnose`: reads the cluster and names what is wrong.
async fn diagnose_step(
    args: DoctorArgs,
    ctx: &Context<ConnectionArgs>,
) -> Result<Outcome, Failure> {
    {
        let hosts: Vec<HostFacts> =
            serde_json::from_value(args.hosts.clone().unwrap_or(Value::Null)).map_err(|e| {
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
