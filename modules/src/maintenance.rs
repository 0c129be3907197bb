//! `etcd_maintenance`: the runbooks' compaction, defragmentation, alarm and
//! consistency steps, as one state-based module.
//!
//! - `state: status` reports every member's database size and fragmentation,
//!   the revision, the compaction revision and active alarms (changes nothing);
//! - `state: compacted` compacts the key-value history to the current revision,
//!   a given revision, or keeping the last N revisions (no change when the
//!   history is already compacted there);
//! - `state: defragmented` defragments the members at `endpoints` (or every
//!   member, followers first and the leader last, with `cluster`), one at a
//!   time, each only when its free space reaches the thresholds;
//! - `state: disarmed` disarms NOSPACE alarms (CORRUPT only with `force`, and
//!   only after every member's HashKV agrees);
//! - `state: consistent` compares HashKV of every member at one revision and
//!   fails naming the member(s) that differ;
//! - `state: downgrade_enabled` / `downgrade_cancelled` drive etcd 3.6's
//!   downgrade API ([`crate::downgrade`]).

use etcd_client::{
    AlarmAction, AlarmOptions, AlarmType, Client, CompactionOptions, GetOptions, Member,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::connection::{member_id_hex, ClusterView, Connection, ConnectionArgs};
use crate::protocol::lenient::{Bool, Int};
use crate::protocol::EtcdError;
use crate::protocol::{
    ArgType, Choice, Context, Failure, Module, OptionDoc, Outcome, ReturnDoc, Rule,
};

crate::choices! {
    /// What `etcd_maintenance` does.
    pub enum State {
        /// Report sizes, revisions and alarms; change nothing.
        Status = "status",
        /// Compact the key-value history.
        Compacted = "compacted",
        /// Defragment members above the thresholds.
        Defragmented = "defragmented",
        /// Disarm alarms.
        Disarmed = "disarmed",
        /// Compare HashKV of every member.
        Consistent = "consistent",
        /// Enable the downgrade of the cluster version (etcd 3.6+).
        DowngradeEnabled = "downgrade_enabled",
        /// Cancel the downgrade in progress.
        DowngradeCancelled = "downgrade_cancelled",
    }
}

crate::choices! {
    /// Which alarms `state: disarmed` disarms.
    pub enum AlarmChoice {
        /// NOSPACE only.
        Nospace = "NOSPACE",
        /// CORRUPT only (needs `force`).
        Corrupt = "CORRUPT",
        /// Both.
        All = "all",
    }
}

/// Arguments of `etcd_maintenance` (plus the shared connection options).
/// Defaults are filled in by the protocol from [`Maintenance::OPTIONS`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceArgs {
    /// What to do.
    pub state: State,
    /// Compact to this revision.
    #[serde(default)]
    pub revision: Option<Int>,
    /// Compact keeping this many revisions.
    #[serde(default)]
    pub keep_revisions: Option<Int>,
    /// Wait for the physical compaction.
    pub physical: Bool,
    /// Defragment only when (db_size - db_size_in_use) / db_size reaches
    /// this (a number, or a string holding one).
    pub min_free_ratio: Value,
    /// Defragment only when db_size - db_size_in_use reaches this many bytes.
    pub min_free_bytes: Int,
    /// Act on every member of the cluster, not only the members at `endpoints`.
    pub cluster: Bool,
    /// Which alarm `state: disarmed` disarms.
    pub alarm: AlarmChoice,
    /// Allow disarming CORRUPT (after a passing hash check).
    pub force: Bool,
    /// The minor version `state: downgrade_enabled` downgrades the cluster to.
    #[serde(default)]
    pub downgrade_version: Option<String>,
}

/// The `etcd_maintenance` module.
pub struct Maintenance;

/// How long `consistent` waits for a lagging member to reach the revision.
const CATCH_UP: Duration = Duration::from_secs(10);

impl Module for Maintenance {
    const NAME: &'static str = "etcd_maintenance";
    const SHORT_DESCRIPTION: &'static str =
        "Compact, defragment, disarm alarms and check the consistency of an etcd cluster";
    const DESCRIPTION: &'static [&'static str] = &[
        "O(state=status) reports, for every member, the database size, the size in use and the free (fragmented) space, plus the current revision, the compaction revision and the active alarms. It never changes anything.",
        "O(state=compacted) compacts the key-value history to the current revision (default), to O(revision), or keeping the last O(keep_revisions) revisions, like C(etcdctl compact). It reports changed=false when the history is already compacted at or past that revision. O(physical) waits until the compaction is applied to the backend.",
        "O(state=defragmented) defragments the members whose client URLs are in O(endpoints) (with O(cluster), every member: followers first, the leader last), one at a time, each only when its free space (C(db_size - db_size_in_use)) reaches both O(min_free_ratio) and O(min_free_bytes). It reports the sizes before and after and the time each took. Defragmentation blocks the member while it runs: use the C(etcd_defrag.yml) playbook to move leadership away from the leader first.",
        "O(state=disarmed) disarms the active O(alarm) alarms on every member, like C(etcdctl alarm disarm). CORRUPT is never disarmed without O(force), and even then only when every member's HashKV agrees. Disarming NOSPACE does not free space: compact and defragment first.",
        "O(state=consistent) reads HashKV of every member at one revision and fails, naming the member(s) whose hash differs from the others', when they do not all agree.",
        "O(state=downgrade_enabled) is the first step of going back one minor version (etcd 3.6 to 3.5), like C(etcdctl downgrade validate) then C(etcdctl downgrade enable): the cluster version drops to O(downgrade_version) at once and every member rewrites its data in that version's format (its storage version, which M(etcd_health) reports). Only then may the members be restarted, one at a time, on the older binaries (the C(etcd_upgrade.yml) playbook does all of it); once every member runs them, etcd ends the downgrade by itself. Every member must answer and run etcd 3.6 or later. It reports changed=false when the same downgrade is already enabled, and fails when one to another version is (cancel it first). In check mode it only validates.",
        "O(state=downgrade_cancelled) cancels the downgrade in progress (C(etcdctl downgrade cancel)), changed=false when there is none. Members already on the older binary must be upgraded back before the cluster version can rise again.",
        "Check mode reports what would be done and does nothing; diff mode returns the state before and after.",
    ];
    const OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::new("state", ArgType::Str, "What to do (see the description).")
            .default("\"status\"")
            .choices(State::NAMES),
        OptionDoc::new(
            "revision",
            ArgType::Int,
            "O(state=compacted): compact to this revision (must not be in the future).",
        ),
        OptionDoc::new(
            "keep_revisions",
            ArgType::Int,
            "O(state=compacted): compact to the current revision minus this many revisions.",
        ),
        OptionDoc::new(
            "physical",
            ArgType::Bool,
            "O(state=compacted): wait until the compaction is physically applied to the backend database.",
        )
        .default("false"),
        OptionDoc::new(
            "min_free_ratio",
            ArgType::Float,
            "O(state=defragmented): defragment a member only when (db_size - db_size_in_use) / db_size is at least this (0 to 1). etcd updates db_size_in_use when it commits writes, so right after a compaction on an idle (or NOSPACE) cluster it may not show the space freed yet: with O(min_free_ratio=0) and O(min_free_bytes=0) every target member is defragmented.",
        )
        .default("0.1"),
        OptionDoc::new(
            "min_free_bytes",
            ArgType::Int,
            "O(state=defragmented): defragment a member only when db_size - db_size_in_use is at least this many bytes.",
        )
        .default("0"),
        OptionDoc::new(
            "cluster",
            ArgType::Bool,
            "O(state=defragmented): defragment every member of the cluster (discovered from O(endpoints)), followers first and the leader last, instead of only the members at O(endpoints).",
        )
        .default("false"),
        OptionDoc::new(
            "alarm",
            ArgType::Str,
            "O(state=disarmed): which alarms to disarm.",
        )
        .default("\"NOSPACE\"")
        .choices(AlarmChoice::NAMES),
        OptionDoc::new(
            "force",
            ArgType::Bool,
            "O(state=disarmed): allow disarming CORRUPT, which is done only after every member's HashKV agrees.",
        )
        .default("false"),
        OptionDoc::new(
            "downgrade_version",
            ArgType::Str,
            "O(state=downgrade_enabled): the minor version to go back to, like V(3.5) (a patch, as in V(3.5.30), is ignored: the cluster version has none).",
        ),
    ];
    const RULES: &'static [Rule] = &[
        Rule::mutually_exclusive(&["revision", "keep_revisions"]),
        Rule::only_if(
            "state",
            &["compacted"],
            &["revision", "keep_revisions", "physical"],
        ),
        Rule::only_if(
            "state",
            &["defragmented"],
            &["min_free_ratio", "min_free_bytes", "cluster"],
        ),
        Rule::only_if("state", &["disarmed"], &["alarm", "force"]),
        Rule::required_if("state", "downgrade_enabled", &["downgrade_version"]),
        Rule::only_if("state", &["downgrade_enabled"], &["downgrade_version"]),
    ];
    const EXAMPLES: &'static str = r#"
- name: Compact to the current revision, then defragment this member if a fifth of it is free
  block:
    - etcd_maintenance:
        endpoints: "https://{{ ip }}:2379"
        state: compacted
        physical: true
    - etcd_maintenance:
        endpoints: "https://{{ ip }}:2379"
        state: defragmented
        min_free_ratio: 0.2
      register: defrag

- name: Keep the last 10000 revisions
  etcd_maintenance:
    state: compacted
    keep_revisions: 10000

- name: After freeing space, disarm NOSPACE
  etcd_maintenance:
    state: disarmed
    alarm: NOSPACE

- name: Fail naming any member whose data differs
  etcd_maintenance:
    state: consistent

- name: Go back from etcd 3.6 to 3.5, step one (then restart members on 3.5 binaries)
  etcd_maintenance:
    state: downgrade_enabled
    downgrade_version: "3.5"
"#;
    const RETURNS: &'static [ReturnDoc] = &[
        ReturnDoc {
            name: "members",
            description: "Per member (every member for status, the targets for defragmented): id, name, endpoint, db_size, db_size_in_use, free_bytes, free_ratio, is_leader. For the downgrade states: id, name, version, storage_version, error, before the run.",
            returned: "state=status, defragmented, downgrade_enabled or downgrade_cancelled",
            ty: "list",
        },
        ReturnDoc {
            name: "downgrade",
            description: "The downgrade after the run (in check mode: as it would be): enabled and target_version (C(X.Y.0), null when none).",
            returned: "state=downgrade_enabled or downgrade_cancelled",
            ty: "dict",
        },
        ReturnDoc {
            name: "downgrade_before",
            description: "The downgrade before the run, as O(downgrade).",
            returned: "state=downgrade_enabled or downgrade_cancelled",
            ty: "dict",
        },
        ReturnDoc {
            name: "cluster_version",
            description: "The cluster version: the one etcd validated the downgrade from (check mode), or the target once enabled.",
            returned: "state=downgrade_enabled, when it validated or enabled",
            ty: "str",
        },
        ReturnDoc {
            name: "defragmented",
            description: "Members defragmented (would be, in check mode): id, name, endpoint, db_size_before, db_size_in_use_before, db_size_after, db_size_in_use_after, took_ms.",
            returned: "state=defragmented",
            ty: "list",
        },
        ReturnDoc {
            name: "skipped",
            description: "Members not defragmented, each with the reason (free space below the thresholds).",
            returned: "state=defragmented",
            ty: "list",
        },
        ReturnDoc {
            name: "revision",
            description: "The current revision of the key-value store.",
            returned: "state=status, compacted or consistent",
            ty: "int",
        },
        ReturnDoc {
            name: "compact_revision",
            description: "The compaction revision after the run (before it, in check mode): the oldest revision still readable; 0 or 1 when never compacted.",
            returned: "state=status or compacted",
            ty: "int",
        },
        ReturnDoc {
            name: "compact_revision_before",
            description: "The compaction revision before the run.",
            returned: "state=compacted",
            ty: "int",
        },
        ReturnDoc {
            name: "alarms",
            description: "Alarms active before the run, each with member_id and alarm (NOSPACE, CORRUPT).",
            returned: "state=status or disarmed",
            ty: "list",
        },
        ReturnDoc {
            name: "disarmed",
            description: "Alarms disarmed (would be, in check mode).",
            returned: "state=disarmed",
            ty: "list",
        },
        ReturnDoc {
            name: "hashes",
            description: "Per member: id, name, endpoint, hash, compact_revision, error.",
            returned: "state=consistent, or disarmed with CORRUPT and force",
            ty: "list",
        },
        ReturnDoc {
            name: "mismatched",
            description: "Names of the members whose hash differs from the majority's (or that could not be hashed).",
            returned: "state=consistent, or disarmed with CORRUPT and force",
            ty: "list",
        },
        ReturnDoc {
            name: "hash_revision",
            description: "The revision the hashes were computed at.",
            returned: "state=consistent, or disarmed with CORRUPT and force",
            ty: "int",
        },
    ];
    type Args = MaintenanceArgs;
    type Shared = ConnectionArgs;

    async fn run(args: MaintenanceArgs, ctx: &Context<ConnectionArgs>) -> Result<Outcome, Failure> {
        let plan = Plan::from_args(&args)?;
        let connection = ctx.shared.connect_settings()?;
        match plan {
            Plan::Status => status(&connection).await,
            Plan::Compact { target, physical } => compact(&connection, target, physical, ctx).await,
            Plan::Defrag {
                min_free_ratio,
                min_free_bytes,
                cluster,
            } => defrag(&connection, min_free_ratio, min_free_bytes, cluster, ctx).await,
            Plan::Disarm { alarm, force } => disarm(&connection, alarm, force, ctx).await,
            Plan::DowngradeEnable(target) => {
                crate::downgrade::enable(&connection, target, ctx.check_mode).await
            }
            Plan::DowngradeCancel => crate::downgrade::cancel(&connection, ctx.check_mode).await,
            Plan::Consistent => {
                let check = consistency(&connection).await?;
                let mut outcome = check.outcome();
                outcome.failed = !check.mismatched.is_empty();
                Ok(outcome)
            }
        }
    }
}

/// Where compaction should go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactTarget {
    /// The current revision.
    Current,
    /// An absolute revision.
    Revision(i64),
    /// The current revision minus this many.
    Keep(i64),
}

/// The validated arguments: what the run will do. Every refusal of bad
/// input happens here, before etcd is contacted.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Report only.
    Status,
    /// Compact the history.
    Compact {
        /// To where.
        target: CompactTarget,
        /// Wait for the physical compaction.
        physical: bool,
    },
    /// Defragment members.
    Defrag {
        /// Free-space ratio threshold.
        min_free_ratio: f64,
        /// Free-space bytes threshold.
        min_free_bytes: i64,
        /// Every member instead of the members at endpoints.
        cluster: bool,
    },
    /// Disarm alarms.
    Disarm {
        /// NOSPACE, CORRUPT, or both (None).
        alarm: Option<AlarmType>,
        /// CORRUPT allowed.
        force: bool,
    },
    /// Compare HashKV.
    Consistent,
    /// Enable the downgrade to this minor version.
    DowngradeEnable(crate::downgrade::Target),
    /// Cancel the downgrade.
    DowngradeCancel,
}

impl Plan {
    /// Checks what the protocol's declared rules cannot (revision and byte
    /// counts in range, the ratio between 0 and 1) and builds the plan.
    pub fn from_args(args: &MaintenanceArgs) -> Result<Plan, Failure> {
        let positive = |name: &str, v: u64| -> Result<i64, Failure> {
            i64::try_from(v).map_err(|_| Failure::new(format!("{name} {v} is too large")))
        };
        Ok(match args.state {
            State::Status => Plan::Status,
            State::Compacted => {
                let target = match (args.revision, args.keep_revisions) {
                    (Some(Int(0)), _) => return Err(Failure::new("revision must be at least 1")),
                    (Some(Int(r)), _) => CompactTarget::Revision(positive("revision", r)?),
                    (None, Some(Int(k))) => CompactTarget::Keep(positive("keep_revisions", k)?),
                    (None, None) => CompactTarget::Current,
                };
                Plan::Compact {
                    target,
                    physical: args.physical.0,
                }
            }
            State::Defragmented => Plan::Defrag {
                min_free_ratio: parse_ratio(&args.min_free_ratio)?,
                min_free_bytes: positive("min_free_bytes", args.min_free_bytes.0)?,
                cluster: args.cluster.0,
            },
            State::Disarmed => Plan::Disarm {
                alarm: match args.alarm {
                    AlarmChoice::Nospace => Some(AlarmType::Nospace),
                    AlarmChoice::Corrupt => Some(AlarmType::Corrupt),
                    AlarmChoice::All => None,
                },
                force: args.force.0,
            },
            State::Consistent => Plan::Consistent,
            State::DowngradeEnabled => Plan::DowngradeEnable(crate::downgrade::Target::parse(
                args.downgrade_version.as_deref().unwrap_or_default(),
            )?),
            State::DowngradeCancelled => Plan::DowngradeCancel,
        })
    }
}

fn parse_ratio(v: &Value) -> Result<f64, Failure> {
    let parsed = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match parsed {
        Some(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(Failure::new(format!(
            "argument 'min_free_ratio' is invalid: {v} is not a number between 0 and 1"
        ))),
    }
}

/// One member's sizes, from its Status.
#[derive(Debug, Clone)]
struct Sizes {
    db_size: i64,
    in_use: i64,
    leader: u64,
}

impl Sizes {
    fn free(&self) -> i64 {
        (self.db_size - self.in_use).max(0)
    }

    fn ratio(&self) -> f64 {
        if self.db_size <= 0 {
            0.0
        } else {
            self.free() as f64 / self.db_size as f64
        }
    }
}

fn member_url(member: &Member) -> Option<String> {
    member.client_urls().first().cloned()
}

async fn sizes_of(conn: &Connection, url: &str) -> Result<Sizes, Failure> {
    let mut client = conn.client_for(url).await?;
    let status = conn
        .bounded(&format!("status of {url}"), client.status())
        .await?;
    Ok(Sizes {
        db_size: status.db_size(),
        in_use: status.raft_used_db_size(),
        leader: status.leader(),
    })
}

fn member_json(member: &Member, url: &str, sizes: &Sizes, leader: Option<u64>) -> Value {
    json!({
        "id": member_id_hex(member.id()),
        "name": member.name(),
        "endpoint": url,
        "db_size": sizes.db_size,
        "db_size_in_use": sizes.in_use,
        "free_bytes": sizes.free(),
        "free_ratio": (sizes.ratio() * 10000.0).round() / 10000.0,
        "is_leader": leader == Some(member.id()),
    })
}

/// A client to any member that answers, with the endpoint.
async fn any_client(conn: &Connection) -> Result<(String, Client), Failure> {
    conn.first_success(|conn, endpoint| async move {
        let mut client = conn.client_for(&endpoint).await?;
        // A linearizable read proves the member has a leader and current data.
        conn.bounded(
            &format!("reading from {endpoint}"),
            client.get("\0", Some(GetOptions::new().with_count_only())),
        )
        .await?;
        Ok(client)
    })
    .await
}

async fn current_revision(conn: &Connection, client: &mut Client) -> Result<i64, Failure> {
    let response = conn
        .bounded(
            "reading the current revision",
            client.get("\0", Some(GetOptions::new().with_count_only())),
        )
        .await?;
    Ok(response.header().map_or(0, |h| h.revision()))
}

fn is_compacted(e: &Failure) -> bool {
    e.etcd() == Some(EtcdError::Compacted)
}

/// Whether revision `r` can still be read (not compacted away).
async fn readable(conn: &Connection, client: &mut Client, r: i64) -> Result<bool, Failure> {
    let read = conn
        .bounded(
            &format!("reading at revision {r}"),
            client.get(
                "\0",
                Some(GetOptions::new().with_revision(r).with_count_only()),
            ),
        )
        .await;
    match read {
        Ok(_) => Ok(true),
        Err(e) if is_compacted(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The compaction revision: the oldest readable revision, found by bisection
/// (etcd 3.4 reports it nowhere cheaper). 1 when never compacted.
async fn compact_revision(
    conn: &Connection,
    client: &mut Client,
    current: i64,
) -> Result<i64, Failure> {
    if current <= 1 || readable(conn, client, 1).await? {
        return Ok(1);
    }
    // readable(current) always holds; readable(1) does not.
    let (mut low, mut high) = (1i64, current);
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if readable(conn, client, mid).await? {
            high = mid;
        } else {
            low = mid;
        }
    }
    Ok(high)
}

async fn active_alarms(
    conn: &Connection,
    client: &mut Client,
) -> Result<Vec<(u64, AlarmType)>, Failure> {
    conn.alarms(client).await
}

fn alarms_json(alarms: &[(u64, AlarmType)], view: Option<&ClusterView>) -> Value {
    Value::Array(
        alarms
            .iter()
            .map(|(id, alarm)| {
                json!({
                    "member_id": member_id_hex(*id),
                    "member": view.and_then(|v| v.member(*id)).map(|m| m.name().to_string()),
                    "alarm": alarm.as_str_name(),
                })
            })
            .collect(),
    )
}

async fn status(conn: &Connection) -> Result<Outcome, Failure> {
    let view = conn.cluster_view().await?;
    let mut members = Vec::new();
    let mut lines = Vec::new();
    for member in &view.members {
        let Some(url) = member_url(member) else {
            lines.push(format!("member {} has not started", member.name()));
            continue;
        };
        match sizes_of(conn, &url).await {
            Ok(sizes) => {
                lines.push(format!(
                    "member {} ({url}): db {} bytes, {} in use, {} free ({:.1}%)",
                    member.name(),
                    sizes.db_size,
                    sizes.in_use,
                    sizes.free(),
                    sizes.ratio() * 100.0
                ));
                members.push(member_json(member, &url, &sizes, view.leader));
            }
            Err(e) => {
                lines.push(format!(
                    "member {} ({url}) did not answer: {}",
                    member.name(),
                    e.msg
                ));
                members.push(json!({
                    "id": member_id_hex(member.id()),
                    "name": member.name(),
                    "endpoint": url,
                    "error": e.msg,
                }));
            }
        }
    }
    let (_, mut client) = any_client(conn).await?;
    let revision = current_revision(conn, &mut client).await?;
    let compacted = compact_revision(conn, &mut client, revision).await?;
    let alarms = active_alarms(conn, &mut client).await?;
    for (id, alarm) in &alarms {
        lines.push(format!(
            "member {} has active alarm {}",
            member_id_hex(*id),
            alarm.as_str_name()
        ));
    }
    lines.push(format!("revision {revision}, compacted at {compacted}"));
    Ok(Outcome::new(false, lines.join("\n"))
        .with("members", members)
        .with("revision", revision)
        .with("compact_revision", compacted)
        .with("alarms", alarms_json(&alarms, Some(&view))))
}

async fn compact(
    conn: &Connection,
    target: CompactTarget,
    physical: bool,
    ctx: &Context<ConnectionArgs>,
) -> Result<Outcome, Failure> {
    let (endpoint, mut client) = any_client(conn).await?;
    let revision = current_revision(conn, &mut client).await?;
    let wanted = match target {
        CompactTarget::Current => revision,
        CompactTarget::Keep(k) => revision - k,
        CompactTarget::Revision(r) if r > revision => {
            return Err(Failure::new(format!(
                "revision {r} is in the future: the current revision is {revision}; nothing was compacted"
            ))
            .with("revision", revision))
        }
        CompactTarget::Revision(r) => r,
    };
    let before = compact_revision(conn, &mut client, revision).await?;
    let diff = |after: i64| json!({ "before": { "compact_revision": before }, "after": { "compact_revision": after } });
    if wanted <= before {
        let mut outcome = Outcome::new(
            false,
            format!("history already compacted at revision {before} (asked for {wanted}; current revision {revision})"),
        )
        .with("revision", revision)
        .with("compact_revision", before)
        .with("compact_revision_before", before)
        .with("endpoint", endpoint);
        outcome.diff = Some(diff(before));
        return Ok(outcome);
    }
    if !ctx.check_mode {
        let options = physical.then(|| CompactionOptions::new().with_physical());
        let done = conn
            .bounded(
                &format!("compacting to revision {wanted}"),
                client.compact(wanted, options),
            )
            .await;
        match done {
            Ok(_) => {}
            // Someone else compacted past it meanwhile: the state is reached.
            Err(e) if is_compacted(&e) => {}
            Err(e) => return Err(e),
        }
    }
    let verb = if ctx.check_mode {
        "would compact"
    } else {
        "compacted"
    };
    let mut outcome = Outcome::new(
        true,
        format!("{verb} history to revision {wanted} (was compacted at {before}; current revision {revision})"),
    )
    .with("revision", revision)
    .with("compact_revision", if ctx.check_mode { before } else { wanted })
    .with("compact_revision_before", before)
    .with("endpoint", endpoint);
    outcome.diff = Some(diff(wanted));
    Ok(outcome)
}

/// The members to defragment, in order: those at `endpoints`, or with
/// `cluster` every member, followers first and the leader last.
fn defrag_targets(
    view: &ClusterView,
    endpoints: &[String],
    cluster: bool,
) -> Result<Vec<(Member, String)>, Failure> {
    let normalize = |u: &str| u.trim().trim_end_matches('/').to_string();
    let mut targets = Vec::new();
    if cluster {
        let mut members: Vec<&Member> = view.members.iter().collect();
        members.sort_by_key(|m| view.leader == Some(m.id()));
        for m in members {
            match member_url(m) {
                Some(url) => targets.push((m.clone(), url)),
                None => {
                    return Err(Failure::new(format!(
                        "member {} has not started (no client URL); nothing was defragmented",
                        m.name()
                    )))
                }
            }
        }
    } else {
        for endpoint in endpoints {
            let found = view.members.iter().find(|m| {
                m.client_urls()
                    .iter()
                    .any(|u| normalize(u) == normalize(endpoint))
            });
            match found {
                Some(m) => targets.push((m.clone(), endpoint.clone())),
                None => {
                    return Err(Failure::new(format!(
                        "endpoint {endpoint} is not the client URL of any member ({}); nothing was defragmented",
                        view.members
                            .iter()
                            .filter_map(member_url)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                }
            }
        }
    }
    Ok(targets)
}

async fn defrag(
    conn: &Connection,
    min_free_ratio: f64,
    min_free_bytes: i64,
    cluster: bool,
    ctx: &Context<ConnectionArgs>,
) -> Result<Outcome, Failure> {
    let view = conn.cluster_view().await?;
    let targets = defrag_targets(&view, &conn.endpoints, cluster)?;
    let mut members = Vec::new();
    let mut done = Vec::new();
    let mut skipped = Vec::new();
    let mut lines = Vec::new();
    let mut before_diff = Map::new();
    let mut after_diff = Map::new();
    for (member, url) in targets {
        let name = member.name().to_string();
        let before = sizes_of(conn, &url).await.map_err(|e| {
            Failure::new(format!("{}; defragmented so far: {}", e.msg, names(&done)))
                .with("defragmented", done.clone())
        })?;
        members.push(member_json(
            &member,
            &url,
            &before,
            Some(before.leader).filter(|l| *l != 0),
        ));
        before_diff.insert(
            name.clone(),
            json!({ "db_size": before.db_size, "db_size_in_use": before.in_use }),
        );
        // Both thresholds 0: always (etcd updates db_size_in_use only when it
        // commits writes, so on an idle cluster it may still count what a
        // compaction just freed).
        let always = min_free_ratio == 0.0 && min_free_bytes == 0;
        let worth = always
            || (before.free() >= min_free_bytes
                && before.ratio() >= min_free_ratio
                && before.free() > 0);
        if !worth {
            lines.push(format!(
                "member {name}: skipped, {} of {} bytes free ({:.1}%), below min_free_ratio {min_free_ratio} / min_free_bytes {min_free_bytes}",
                before.free(),
                before.db_size,
                before.ratio() * 100.0
            ));
            skipped.push(json!({
                "id": member_id_hex(member.id()),
                "name": name,
                "endpoint": url,
                "free_bytes": before.free(),
                "free_ratio": (before.ratio() * 10000.0).round() / 10000.0,
                "reason": "free space below min_free_ratio/min_free_bytes",
            }));
            after_diff.insert(name, before_diff[&member.name().to_string()].clone());
            continue;
        }
        if ctx.check_mode {
            lines.push(format!(
                "member {name}: would defragment, {} of {} bytes free ({:.1}%)",
                before.free(),
                before.db_size,
                before.ratio() * 100.0
            ));
            done.push(json!({
                "id": member_id_hex(member.id()),
                "name": name,
                "endpoint": url,
                "db_size_before": before.db_size,
                "db_size_in_use_before": before.in_use,
            }));
            after_diff.insert(
                name,
                json!({ "db_size": before.in_use, "db_size_in_use": before.in_use }),
            );
            continue;
        }
        let started = Instant::now();
        let mut client = conn.client_for(&url).await?;
        // Defragmenting rewrites the whole file: give it far more than a request.
        let limit = Duration::from_secs(600).max(conn.command_timeout * 20);
        let result = tokio::time::timeout(limit, client.defragment()).await;
        let took_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(Failure::new(format!(
                    "defragmenting member {name} ({url}) failed after {took_ms} ms: {}; defragmented before it: {}",
                    crate::connection::describe(&e),
                    names(&done)
                ))
                .with("defragmented", done))
            }
            Err(_) => {
                return Err(Failure::new(format!(
                    "defragmenting member {name} ({url}) did not finish within {}s; defragmented before it: {}",
                    limit.as_secs(),
                    names(&done)
                ))
                .with("defragmented", done))
            }
        }
        let after = sizes_of(conn, &url).await?;
        lines.push(format!(
            "member {name}: defragmented in {took_ms} ms, {} -> {} bytes",
            before.db_size, after.db_size
        ));
        after_diff.insert(
            name.clone(),
            json!({ "db_size": after.db_size, "db_size_in_use": after.in_use }),
        );
        done.push(json!({
            "id": member_id_hex(member.id()),
            "name": name,
            "endpoint": url,
            "db_size_before": before.db_size,
            "db_size_in_use_before": before.in_use,
            "db_size_after": after.db_size,
            "db_size_in_use_after": after.in_use,
            "took_ms": took_ms,
        }));
    }
    let changed = !done.is_empty();
    let mut outcome = Outcome::new(changed, lines.join("\n"))
        .with("members", members)
        .with("defragmented", done)
        .with("skipped", skipped);
    outcome.diff = Some(json!({ "before": before_diff, "after": after_diff }));
    Ok(outcome)
}

fn names(list: &[Value]) -> String {
    if list.is_empty() {
        return "none".into();
    }
    list.iter()
        .filter_map(|v| v["name"].as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn disarm(
    conn: &Connection,
    which: Option<AlarmType>,
    force: bool,
    ctx: &Context<ConnectionArgs>,
) -> Result<Outcome, Failure> {
    let view = conn.cluster_view().await?;
    // A client to a member that answers (connecting alone proves nothing).
    let (_, mut client) = any_client(conn).await?;
    let alarms = active_alarms(conn, &mut client).await?;
    let chosen: Vec<(u64, AlarmType)> = alarms
        .iter()
        .copied()
        .filter(|(_, a)| which.is_none_or(|w| w == *a))
        .collect();
    let mut outcome_extra = None;
    if chosen.iter().any(|(_, a)| *a == AlarmType::Corrupt) {
        let corrupt: Vec<String> = chosen
            .iter()
            .filter(|(_, a)| *a == AlarmType::Corrupt)
            .map(|(id, _)| {
                view.member(*id)
                    .map_or_else(|| member_id_hex(*id), |m| m.name().to_string())
            })
            .collect();
        if !force {
            return Err(Failure::new(format!(
                "CORRUPT alarm active on {}: it is never disarmed without force=true (which first checks that every member's HashKV agrees); nothing was disarmed",
                corrupt.join(", ")
            ))
            .with("alarms", alarms_json(&alarms, Some(&view))));
        }
        let check = consistency(conn).await?;
        if !check.mismatched.is_empty() {
            let mut failure = Failure::new(format!(
                "CORRUPT alarm not disarmed: the hash check fails: {}",
                check.summary()
            ))
            .with("alarms", alarms_json(&alarms, Some(&view)));
            for (k, v) in check.outcome().data {
                failure = failure.with(&k, v);
            }
            return Err(failure);
        }
        outcome_extra = Some(check);
    }
    if !ctx.check_mode {
        for (id, alarm) in &chosen {
            let mut options = AlarmOptions::new();
            options.with_member(*id);
            conn.bounded(
                &format!(
                    "disarming {} on member {}",
                    alarm.as_str_name(),
                    member_id_hex(*id)
                ),
                client.alarm(AlarmAction::Deactivate, *alarm, Some(options)),
            )
            .await?;
        }
    }
    let remaining: Vec<(u64, AlarmType)> = alarms
        .iter()
        .copied()
        .filter(|a| !chosen.contains(a))
        .collect();
    let msg = if chosen.is_empty() {
        "no matching alarm is active".to_string()
    } else {
        format!(
            "{} {}",
            if ctx.check_mode {
                "would disarm"
            } else {
                "disarmed"
            },
            chosen
                .iter()
                .map(|(id, a)| format!(
                    "{} on {}",
                    a.as_str_name(),
                    view.member(*id)
                        .map_or_else(|| member_id_hex(*id), |m| m.name().to_string())
                ))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let mut outcome = Outcome::new(!chosen.is_empty(), msg)
        .with("alarms", alarms_json(&alarms, Some(&view)))
        .with("disarmed", alarms_json(&chosen, Some(&view)));
    if let Some(check) = outcome_extra {
        outcome.data.extend(check.outcome().data);
    }
    outcome.diff = Some(json!({
        "before": { "alarms": alarms_json(&alarms, Some(&view)) },
        "after": { "alarms": alarms_json(&remaining, Some(&view)) },
    }));
    Ok(outcome)
}

/// Every member's HashKV at one revision.
struct Consistency {
    revision: i64,
    hashes: Vec<Value>,
    mismatched: Vec<String>,
    /// A member's hash revision was compacted away while hashing.
    moved: bool,
}

impl Consistency {
    fn summary(&self) -> String {
        if self.mismatched.is_empty() {
            format!(
                "all {} members have the same HashKV at revision {}",
                self.hashes.len(),
                self.revision
            )
        } else {
            let detail: Vec<String> = self
                .hashes
                .iter()
                .map(|h| match h["error"].as_str() {
                    Some(e) => format!("{}: {e}", h["name"].as_str().unwrap_or("?")),
                    None => format!(
                        "{}: {}",
                        h["name"].as_str().unwrap_or("?"),
                        h["hash"].as_u64().unwrap_or(0)
                    ),
                })
                .collect();
            format!(
                "HashKV at revision {} differs on member(s) {} ({})",
                self.revision,
                self.mismatched.join(", "),
                detail.join("; ")
            )
        }
    }

    fn outcome(&self) -> Outcome {
        Outcome::new(false, self.summary())
            .with("hashes", self.hashes.clone())
            .with("mismatched", self.mismatched.clone())
            .with("hash_revision", self.revision)
            .with("revision", self.revision)
    }
}

async fn hash_member(conn: &Connection, url: &str, revision: i64) -> Result<(u32, i64), Failure> {
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let attempt = async {
            let mut client = conn.client_for(url).await?;
            conn.bounded(&format!("HashKV of {url}"), client.hash_kv(revision))
                .await
        }
        .await;
        match attempt {
            Ok(r) => return Ok((r.hash(), r.compact_version())),
            // A follower that has not applied the revision yet.
            Err(e) if e.etcd() == Some(EtcdError::FutureRevision) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            // etcd 3.4 refuses HashKV at the compaction revision itself (the
            // state right after compacting to the current revision): hash at
            // the member's current revision, valid only if it is `revision`.
            Err(e) if is_compacted(&e) => {
                let mut client = conn.client_for(url).await?;
                let r = conn
                    .bounded(&format!("HashKV of {url}"), client.hash_kv(0))
                    .await?;
                let at = r.header().map_or(0, |h| h.revision());
                if at != revision {
                    // Keeps etcd's "compacted" kind: the check is redone.
                    return Err(Failure::new(format!(
                        "{REVISION_MOVED}: {url} is at revision {at}, not {revision}"
                    ))
                    .of_kind(e.kind));
                }
                return Ok((r.hash(), r.compact_version()));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Marks a hash taken while writes moved the revision: the check is redone.
const REVISION_MOVED: &str = "the revision moved while hashing";
/// Whole consistency checks tried while writes keep moving the revision.
const HASH_ATTEMPTS: usize = 5;

async fn consistency(conn: &Connection) -> Result<Consistency, Failure> {
    let mut attempt = 1;
    loop {
        let check = consistency_once(conn).await?;
        if !check.moved || attempt >= HASH_ATTEMPTS {
            return Ok(check);
        }
        attempt += 1;
    }
}

async fn consistency_once(conn: &Connection) -> Result<Consistency, Failure> {
    let view = conn.cluster_view().await?;
    let (_, mut client) = any_client(conn).await?;
    let revision = current_revision(conn, &mut client).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for (index, member) in view.members.iter().enumerate() {
        let conn = conn.clone();
        let member = member.clone();
        tasks.spawn(async move {
            let result = match member_url(&member) {
                Some(url) => hash_member(&conn, &url, revision).await.map(|h| (url, h)),
                None => Err(Failure::new("member has not started (no client URL)")),
            };
            (index, member, result)
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        results.push(joined.map_err(|e| Failure::new(format!("internal error: {e}")))?);
    }
    results.sort_by_key(|(i, _, _)| *i);
    // The hash most members agree on (ties: the smaller, deterministic).
    let mut votes: BTreeMap<(u32, i64), usize> = BTreeMap::new();
    for (_, _, r) in &results {
        if let Ok((_, h)) = r {
            *votes.entry(*h).or_default() += 1;
        }
    }
    let majority = votes
        .iter()
        .max_by_key(|(k, n)| (**n, std::cmp::Reverse(**k)))
        .map(|(k, n)| (*k, *n));
    let unanimous_split = majority.is_some_and(|(_, n)| n * 2 <= results.len() && votes.len() > 1);
    let mut hashes = Vec::new();
    let mut mismatched = Vec::new();
    for (_, member, r) in &results {
        match r {
            Ok((url, (hash, compact))) => {
                hashes.push(json!({
                    "id": member_id_hex(member.id()),
                    "name": member.name(),
                    "endpoint": url,
                    "hash": hash,
                    "compact_revision": compact,
                    "error": null,
                }));
                if unanimous_split || majority.is_some_and(|(k, _)| k != (*hash, *compact)) {
                    mismatched.push(member.name().to_string());
                }
            }
            Err(e) => {
                hashes.push(json!({
                    "id": member_id_hex(member.id()),
                    "name": member.name(),
                    "endpoint": member_url(member),
                    "hash": null,
                    "compact_revision": null,
                    "error": e.msg,
                }));
                mismatched.push(member.name().to_string());
            }
        }
    }
    let moved = results
        .iter()
        .any(|(_, _, r)| r.as_ref().is_err_and(is_compacted));
    Ok(Consistency {
        revision,
        hashes,
        mismatched,
        moved,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan for these arguments, parsed as the protocol parses them
    /// (conversions, declared defaults, choices and rules).
    fn plan(v: Value) -> Result<Plan, String> {
        let parsed = crate::protocol::parse_args::<Maintenance>(&v.to_string())
            .map_err(|e| e.to_string())?;
        Plan::from_args(&parsed.module_args).map_err(|e| e.msg)
    }

    #[test]
    fn plans_refuse_bad_input_before_contacting_etcd() {
        assert_eq!(plan(json!({})).unwrap(), Plan::Status);
        assert_eq!(
            plan(json!({"state": "compacted", "keep_revisions": "100"})).unwrap(),
            Plan::Compact {
                target: CompactTarget::Keep(100),
                physical: false
            }
        );
        assert_eq!(
            plan(json!({"state": "defragmented"})).unwrap(),
            Plan::Defrag {
                min_free_ratio: 0.1,
                min_free_bytes: 0,
                cluster: false
            },
            "the declared defaults"
        );
        assert_eq!(
            plan(json!({"state": "disarmed", "alarm": "all", "force": "yes"})).unwrap(),
            Plan::Disarm {
                alarm: None,
                force: true
            }
        );
        let e =
            plan(json!({"state": "compacted", "revision": 5, "keep_revisions": 1})).unwrap_err();
        assert_eq!(
            e,
            "parameters are mutually exclusive: revision|keep_revisions"
        );
        let e = plan(json!({"state": "compacted", "revision": 0})).unwrap_err();
        assert_eq!(e, "revision must be at least 1");
        let e = plan(json!({"state": "defragmented", "min_free_ratio": 1.5})).unwrap_err();
        assert!(e.contains("min_free_ratio"), "{e}");
        let e = plan(json!({"state": "status", "force": true})).unwrap_err();
        assert_eq!(e, "force cannot be used with state=status");
        let e = plan(json!({"force": false, "cluster": true, "physical": null})).unwrap_err();
        assert_eq!(e, "cluster, force cannot be used with state=status");
        let e = plan(json!({"state": "disarmed", "alarm": "BOGUS"})).unwrap_err();
        assert_eq!(
            e,
            "value of alarm must be one of: NOSPACE, CORRUPT, all, got: BOGUS"
        );
        let e = plan(json!({"state": "gone"})).unwrap_err();
        assert_eq!(
            e,
            "value of state must be one of: status, compacted, defragmented, disarmed, consistent, downgrade_enabled, downgrade_cancelled, got: gone"
        );
        assert_eq!(
            plan(json!({"state": "downgrade_enabled", "downgrade_version": "3.5.30"})).unwrap(),
            Plan::DowngradeEnable(crate::downgrade::Target { major: 3, minor: 5 })
        );
        let e = plan(json!({"state": "downgrade_enabled"})).unwrap_err();
        assert_eq!(
            e,
            "state is downgrade_enabled but all of the following are missing: downgrade_version"
        );
        let e = plan(json!({"state": "downgrade_enabled", "downgrade_version": "3"})).unwrap_err();
        assert!(e.contains("downgrade_version"), "{e}");
        let e =
            plan(json!({"state": "downgrade_cancelled", "downgrade_version": "3.5"})).unwrap_err();
        assert_eq!(
            e,
            "downgrade_version cannot be used with state=downgrade_cancelled"
        );
        assert_eq!(
            plan(json!({"state": "downgrade_cancelled"})).unwrap(),
            Plan::DowngradeCancel
        );
    }
}
