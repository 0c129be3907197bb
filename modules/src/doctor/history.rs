//! The doctor's memory between runs: per member, the highest raft term,
//! raft index and revision seen, kept by the playbook in a state file on the
//! controller. A member whose figures went backwards since the last run was
//! restored from an old copy, even if it looks healthy now; and the newest
//! WAL and snapshot file names of its data dir, which tell the same even
//! after it caught up ([`super::datadir`]).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::datadir::{went_back, DirFiles, DirMarks};

/// Version of the state file layout.
pub const STATE_VERSION: u64 = 1;

/// What one run remembers of one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// The member id (hex): a replaced member has a new one.
    pub id: String,
    /// Raft term.
    pub raft_term: u64,
    /// Raft index.
    pub raft_index: u64,
    /// MVCC revision.
    pub revision: i64,
    /// The newest WAL and snapshot names of its data dir, when listed.
    #[serde(default, skip_serializing_if = "DirMarks::is_empty")]
    pub files: DirMarks,
}

/// The state file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Layout version ([`STATE_VERSION`]).
    #[serde(default)]
    pub version: u64,
    /// The cluster id (hex) the records belong to.
    #[serde(default)]
    pub cluster_id: Option<String>,
    /// Records by member name.
    #[serde(default)]
    pub members: BTreeMap<String, MemberRecord>,
}

/// One member's figures now, as gathered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Member name.
    pub name: String,
    /// Its record now (`files` is filled from `dir`).
    pub record: MemberRecord,
    /// Its data dir's WAL and snapshot files, when its host listed them.
    pub dir: Option<DirFiles>,
}

/// A figure that went backwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regression {
    /// Member name.
    pub name: String,
    /// What went back, e.g. `raft index 5123 -> 812, revision 4200 -> 300`.
    pub evidence: String,
}

/// Why a previous state could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateError(pub String);

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl State {
    /// Reads a previous state from the module argument (a dict, possibly
    /// empty when there was no state file).
    pub fn from_value(value: &serde_json::Value) -> Result<State, StateError> {
        if value.is_null() || value.as_object().is_some_and(|o| o.is_empty()) {
            return Ok(State::default());
        }
        if !value.is_object() {
            return Err(StateError(
                "the previous state is not a doctor state file: not a dict".into(),
            ));
        }
        let state: State = serde_json::from_value(value.clone()).map_err(|e| {
            StateError(format!(
                "the previous state is not a doctor state file: {e}"
            ))
        })?;
        if state.version > STATE_VERSION {
            return Err(StateError(format!(
                "the previous state has layout version {}, newer than this module's {STATE_VERSION}",
                state.version
            )));
        }
        Ok(state)
    }
}

/// Compares this run's observations with the previous state. Returns the
/// regressions and the state to save: a member's record is kept at its
/// previous (higher) figures while it is regressed, so the next run still
/// names it until it is replaced (a new member id starts a new record); a
/// member not observed now keeps its old record; another cluster id starts
/// over.
pub fn compare(
    previous: &State,
    cluster_id: Option<&str>,
    now: &[Observation],
) -> (Vec<Regression>, State) {
    let same_cluster = match (previous.cluster_id.as_deref(), cluster_id) {
        (Some(a), Some(b)) => a == b,
        (None, _) => true,
        (Some(_), None) => true,
    };
    let mut next = State {
        version: STATE_VERSION,
        cluster_id: cluster_id
            .map(str::to_string)
            .or_else(|| previous.cluster_id.clone()),
        members: if same_cluster {
            previous.members.clone()
        } else {
            BTreeMap::new()
        },
    };
    let mut regressions = Vec::new();
    for obs in now {
        let old = same_cluster
            .then(|| previous.members.get(&obs.name))
            .flatten()
            .filter(|old| old.id == obs.record.id);
        let seen = obs.dir.as_ref().map(DirFiles::marks).unwrap_or_default();
        let Some(old) = old else {
            let record = MemberRecord {
                files: seen,
                ..obs.record.clone()
            };
            next.members.insert(obs.name.clone(), record);
            continue;
        };
        let mut back = Vec::new();
        if obs.record.raft_term < old.raft_term {
            back.push(format!(
                "raft term {} -> {}",
                old.raft_term, obs.record.raft_term
            ));
        }
        if obs.record.raft_index < old.raft_index {
            back.push(format!(
                "raft index {} -> {}",
                old.raft_index, obs.record.raft_index
            ));
        }
        if obs.record.revision < old.revision {
            back.push(format!(
                "revision {} -> {}",
                old.revision, obs.record.revision
            ));
        }
        if let Some(dir) = &obs.dir {
            back.extend(went_back(&old.files, dir));
        }
        if back.is_empty() {
            let record = MemberRecord {
                files: old.files.updated(&seen),
                ..obs.record.clone()
            };
            next.members.insert(obs.name.clone(), record);
        } else {
            regressions.push(Regression {
                name: obs.name.clone(),
                evidence: format!("since the last doctor run: {}", back.join(", ")),
            });
        }
    }
    (regressions, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obs(name: &str, id: &str, term: u64, index: u64, revision: i64) -> Observation {
        Observation {
            name: name.into(),
            record: MemberRecord {
                id: id.into(),
                raft_term: term,
                raft_index: index,
                revision,
                files: DirMarks::default(),
            },
            dir: None,
        }
    }

    fn with_files(mut o: Observation, listing: &str) -> Observation {
        o.dir = Some(DirFiles::from_listing(listing));
        o
    }

    #[test]
    fn a_data_dir_put_back_after_catching_up_is_a_regression_until_replaced() {
        let before =
            "0000000000000000-0000000000000000.wal\n0000000000000002-0000000000000190.snap";
        let (_, first) = compare(
            &State::default(),
            Some("c1"),
            &[with_files(obs("m1", "b", 2, 500, 400), before)],
        );
        assert_eq!(
            first.members["m1"].files.snap.as_deref(),
            Some("0000000000000002-0000000000000190.snap")
        );
        // Caught up (figures higher) but snapshotted at other indexes.
        let after = "0000000000000000-0000000000000000.wal\n0000000000000002-0000000000000100.snap\n0000000000000003-00000000000001a0.snap";
        let (reg, next) = compare(
            &first,
            Some("c1"),
            &[with_files(obs("m1", "b", 3, 900, 700), after)],
        );
        assert_eq!(reg.len(), 1, "{reg:?}");
        assert!(
            reg[0].evidence.contains("snapshot file"),
            "{}",
            reg[0].evidence
        );
        assert_eq!(next.members["m1"], first.members["m1"], "high mark kept");
        // A listing that could not be made changes nothing.
        let (reg, _) = compare(&next, Some("c1"), &[obs("m1", "b", 3, 950, 750)]);
        assert!(reg.is_empty());
        // A healthy dir moving on updates the marks; a replaced member starts over.
        let moved = "0000000000000000-0000000000000000.wal\n0000000000000002-0000000000000190.snap\n0000000000000003-0000000000000300.snap";
        let (reg, next) = compare(
            &first,
            Some("c1"),
            &[with_files(obs("m1", "b", 3, 900, 700), moved)],
        );
        assert!(reg.is_empty(), "{reg:?}");
        assert_eq!(
            next.members["m1"].files.snap.as_deref(),
            Some("0000000000000003-0000000000000300.snap")
        );
        let (reg, _) = compare(
            &first,
            Some("c1"),
            &[with_files(obs("m1", "new", 1, 10, 700), after)],
        );
        assert!(reg.is_empty(), "{reg:?}");
    }

    #[test]
    fn a_first_run_remembers_and_finds_nothing() {
        let (reg, next) = compare(&State::default(), Some("c1"), &[obs("m0", "a", 2, 100, 50)]);
        assert!(reg.is_empty());
        assert_eq!(next.cluster_id.as_deref(), Some("c1"));
        assert_eq!(next.members["m0"].raft_index, 100);
    }

    #[test]
    fn figures_that_went_backwards_are_regressions_and_the_high_mark_is_kept() {
        let (_, first) = compare(
            &State::default(),
            Some("c1"),
            &[obs("m0", "a", 3, 5000, 4000), obs("m1", "b", 3, 5000, 4000)],
        );
        let (reg, next) = compare(
            &first,
            Some("c1"),
            &[obs("m0", "a", 3, 5100, 4050), obs("m1", "b", 3, 800, 300)],
        );
        assert_eq!(reg.len(), 1, "{reg:?}");
        assert_eq!(reg[0].name, "m1");
        assert!(
            reg[0].evidence.contains("raft index 5000 -> 800"),
            "{}",
            reg[0].evidence
        );
        assert!(
            reg[0].evidence.contains("revision 4000 -> 300"),
            "{}",
            reg[0].evidence
        );
        assert!(!reg[0].evidence.contains("term"), "{}", reg[0].evidence);
        assert_eq!(next.members["m0"].raft_index, 5100);
        assert_eq!(next.members["m1"].raft_index, 5000, "high mark kept");
        // Still regressed on the next run, even after it caught up partly.
        let (reg, _) = compare(&next, Some("c1"), &[obs("m1", "b", 4, 4900, 3999)]);
        assert_eq!(reg.len(), 1);
    }

    #[test]
    fn a_replaced_member_or_a_restored_cluster_starts_over() {
        let (_, first) = compare(
            &State::default(),
            Some("c1"),
            &[obs("m1", "b", 3, 5000, 4000)],
        );
        let (reg, next) = compare(&first, Some("c1"), &[obs("m1", "new", 3, 10, 4000)]);
        assert!(reg.is_empty(), "new member id: {reg:?}");
        assert_eq!(next.members["m1"].id, "new");
        let (reg, next) = compare(&first, Some("c2"), &[obs("m1", "b", 1, 10, 5)]);
        assert!(reg.is_empty(), "new cluster: {reg:?}");
        assert_eq!(next.cluster_id.as_deref(), Some("c2"));
    }

    #[test]
    fn a_member_not_seen_keeps_its_record() {
        let (_, first) = compare(
            &State::default(),
            Some("c1"),
            &[obs("m0", "a", 3, 50, 40), obs("m1", "b", 3, 50, 40)],
        );
        let (_, next) = compare(&first, Some("c1"), &[obs("m0", "a", 3, 60, 45)]);
        assert_eq!(next.members["m1"].raft_index, 50);
    }

    #[test]
    fn state_files_are_read_strictly() {
        assert_eq!(State::from_value(&json!({})).unwrap(), State::default());
        assert_eq!(
            State::from_value(&serde_json::Value::Null).unwrap(),
            State::default()
        );
        let ok = json!({"version": 1, "cluster_id": "c1", "members": {"m0": {"id": "a", "raft_term": 1, "raft_index": 2, "revision": 3}}});
        assert_eq!(State::from_value(&ok).unwrap().members["m0"].revision, 3);
        assert!(State::from_value(&json!({"members": {"m0": {"id": 5}}})).is_err());
        assert!(State::from_value(&json!({"version": 99})).is_err());
        assert!(State::from_value(&json!([1])).is_err());
    }
}
