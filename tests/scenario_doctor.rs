//! The doctor (etcd_doctor.yml) on a 3-member cluster whose members run under
//! etcd-svc, under both engines. Each fault is made for real; the doctor's
//! JSON report (the file it writes on the controller) must name it, on the
//! right member, with the right fix, and the cluster's real state (etcdctl,
//! etcd-svc) must agree. Where the fix is cheap it is run, and the doctor
//! must come back clean.
//!
//! Order: healthy (no findings); inventory drift both ways; a member stopped
//! (its start command fixes it); quorum lost (starting the stopped members
//! fixes it); a member restored from an old copy that panics with
//! `tocommit(N) is out of range` (etcd_replace_member.yml fixes it); a
//! regression against the state file (the silent form, made by raising the
//! recorded figures); an added member never started.

use std::path::{Path, PathBuf};

use harness::{repo_root, wait_until, Ansible, Engine, ServiceCluster, Sshd, DEFAULT_TIMEOUT};
use serde_json::Value;

const ALL: [usize; 3] = [0, 1, 2];

fn playbook(name: &str) -> PathBuf {
    repo_root().join("playbooks/db-operations").join(name)
}

/// One fixture: the cluster, the sshd, the sandbox and the doctor's files.
struct Fixture {
    engine: Engine,
    cluster: ServiceCluster,
    _sshd: Sshd,
    ansible: Ansible,
    hosts: PathBuf,
    report: PathBuf,
    state: PathBuf,
}

/// The doctor's inventory variables: service state and log through
/// etcd-svc; the inventory's own path for the fix commands.
fn doctor_vars(cluster: &ServiceCluster, ansible: &Ansible, file: &str) -> Vec<String> {
    let svc = cluster.svc_dir();
    vec![
        format!(
            "etcd_doctor_inventory={}",
            ansible.dir().join(file).display()
        ),
        "etcd_status_command=\"{{ etcd_svc }} status {{ etcd_member_name }}\"".into(),
        format!(
            "etcd_log_command=\"tail -n 200 {}/{{{{ etcd_member_name }}}}.log\"",
            svc.display()
        ),
        format!(
            "etcd_doctor_state_dir={}",
            ansible.dir().join("doctor").display()
        ),
        format!(
            "etcd_doctor_report={}",
            ansible.dir().join("reports/doctor.json").display()
        ),
    ]
}

impl Fixture {
    fn new(engine: Engine) -> Fixture {
        let cluster = ServiceCluster::start3();
        let sshd = Sshd::start();
        let ansible = Ansible::new();
        let vars = doctor_vars(&cluster, &ansible, "hosts.ini");
        let vars: Vec<&str> = vars.iter().map(String::as_str).collect();
        let hosts = cluster.write_inventory(&ansible, &sshd, "hosts.ini", &ALL, &vars);
        let report = ansible.dir().join("reports/doctor.json");
        let state = ansible.dir().join("doctor/etcd-doctor-state.json");
        Fixture {
            engine,
            cluster,
            _sshd: sshd,
            ansible,
            hosts,
            report,
            state,
        }
    }

    /// An inventory of other member indices, with the doctor's variables.
    fn inventory(&self, file: &str, indices: &[usize]) -> PathBuf {
        let vars = doctor_vars(&self.cluster, &self.ansible, file);
        let vars: Vec<&str> = vars.iter().map(String::as_str).collect();
        self.cluster
            .write_inventory(&self.ansible, &self._sshd, file, indices, &vars)
    }

    /// Runs the doctor on `hosts`; returns the report it wrote, after
    /// checking the exit status agrees with its critical count.
    fn doctor_on(&self, hosts: &Path, extra: &[&str]) -> Report {
        let _ = std::fs::remove_file(&self.report);
        let out = self
            .engine
            .playbook(&self.ansible, hosts, &playbook("etcd_doctor.yml"), extra);
        let text = std::fs::read_to_string(&self.report).unwrap_or_else(|e| {
            panic!(
                "no report at {}: {e}\n{}",
                self.report.display(),
                out.describe()
            )
        });
        let json: Value = serde_json::from_str(&text).expect("the report is JSON");
        let report = Report { json };
        let critical = report.json["critical"].as_u64().expect("critical count");
        if critical > 0 {
            out.assert_failure();
            assert_eq!(out.status.code(), Some(2), "{}", out.describe());
        } else {
            out.assert_success();
        }
        report
    }

    fn doctor(&self) -> Report {
        self.doctor_on(&self.hosts, &[])
    }

    /// Runs a fix command line from a report (an `ansible` ad-hoc command
    /// or `ansible-playbook`), in the test's Ansible sandbox.
    fn run_fix(&self, fix: &str) {
        let out = self
            .ansible
            .command("/bin/sh")
            .arg("-c")
            .arg(fix)
            .output()
            .expect("run the fix");
        assert!(
            out.status.success(),
            "fix {fix:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn clean(&self) {
        self.cluster.wait_healthy(&ALL, DEFAULT_TIMEOUT);
        let report = self.doctor();
        assert!(report.findings().is_empty(), "{}", report.json);
        assert_eq!(report.json["healthy"], true);
    }
}

/// The report the doctor wrote.
struct Report {
    json: Value,
}

impl Report {
    fn findings(&self) -> Vec<&Value> {
        self.json["findings"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    }

    /// (code, member) of every finding, sorted.
    fn codes(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .findings()
            .iter()
            .map(|f| {
                (
                    f["code"].as_str().unwrap_or("").to_string(),
                    f["member"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        v.sort();
        v
    }

    fn finding(&self, code: &str, member: &str) -> &Value {
        self.findings()
            .into_iter()
            .find(|f| f["code"] == code && f["member"] == member)
            .unwrap_or_else(|| panic!("no finding {code} on {member}: {}", self.json))
    }
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = v
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    v.sort();
    v
}

fn healthy_has_no_findings(f: &Fixture) {
    let report = f.doctor();
    assert!(report.findings().is_empty(), "{}", report.json);
    let members = report.json["members"].as_array().expect("members");
    assert_eq!(members.len(), 3);
    assert!(members.iter().all(|m| m["healthy"] == true));
    assert!(
        members.iter().all(|m| m["hash"].is_string()),
        "HashKV of every member"
    );
    let hashes: Vec<&Value> = members.iter().map(|m| &m["hash"]).collect();
    assert!(hashes.windows(2).all(|w| w[0] == w[1]));
    assert!(f.state.is_file(), "the state is kept for the next run");
    // Check mode: the same diagnosis, nothing changed on the members.
    let pids = f.cluster.pids(3);
    let report = f.doctor_on(&f.hosts, &["--check"]);
    assert!(report.findings().is_empty(), "{}", report.json);
    assert_eq!(f.cluster.pids(3), pids);
}

fn inventory_drift(f: &Fixture) {
    // The cluster has m2, the inventory does not.
    let two = f.inventory("two.ini", &[0, 1]);
    let report = f.doctor_on(&two, &[]);
    assert_eq!(
        report.codes(),
        pairs(&[("not_in_inventory", "m2")]),
        "{}",
        report.json
    );
    let id = f.cluster.member_info(2).expect("m2 listed").id_hex;
    let fix = report.finding("not_in_inventory", "m2")["fix"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(fix.contains(&format!("member remove {id}")), "{fix}");
    // The inventory has m3, the cluster does not.
    let four = f.inventory("four.ini", &[0, 1, 2, 3]);
    std::fs::write(&f.cluster.member(3).log, "").unwrap();
    let report = f.doctor_on(&four, &[]);
    assert_eq!(
        report.codes(),
        pairs(&[("no_member", "m3")]),
        "{}",
        report.json
    );
    let fix = report.finding("no_member", "m3")["fix"].as_str().unwrap();
    assert!(
        fix.contains("etcd_add_member.yml -e etcd_add_hosts=m3"),
        "{fix}"
    );
    assert_eq!(
        f.cluster.member_list().len(),
        3,
        "the doctor changed nothing"
    );
}

fn member_stopped(f: &Fixture) {
    f.cluster.stop_member(2);
    let report = f.doctor();
    assert_eq!(
        report.codes(),
        pairs(&[("member_down", "m2")]),
        "{}",
        report.json
    );
    let finding = report.finding("member_down", "m2");
    assert_eq!(finding["severity"], "critical");
    assert!(f.cluster.pid(2).is_none(), "the doctor started nothing");
    let fix = finding["fix"].as_str().unwrap();
    assert!(fix.contains(" m2 ") && fix.contains("start m2"), "{fix}");
    f.run_fix(fix);
    f.clean();
}

fn quorum_lost(f: &Fixture) {
    f.cluster.stop_member(1);
    f.cluster.stop_member(2);
    let report = f.doctor();
    assert_eq!(
        report.codes(),
        pairs(&[
            ("member_down", "m1"),
            ("member_down", "m2"),
            ("quorum_lost", "cluster")
        ]),
        "{}",
        report.json
    );
    assert!(!f.cluster.healthy(&[0]), "m0 alone has no quorum");
    let fix = report.finding("quorum_lost", "cluster")["fix"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        fix.contains("start m1") && fix.contains("start m2"),
        "{fix}"
    );
    f.run_fix(&fix);
    f.clean();
}

fn copy_dir(from: &Path, to: &Path) {
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .expect("run cp");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn time_travel_panic(f: &Fixture) {
    let c = &f.cluster;
    let leader = c.wait_leader();
    let t = (0..3).find(|&i| i != leader).unwrap();
    let m = c.member(t).clone();
    let old_id = c.member_info(t).expect("listed").id;
    c.stop_member(t);
    let copy = m.data_dir.with_extension("old-copy");
    copy_dir(&m.data_dir, &copy);
    c.start_member(t);
    c.wait_healthy(&ALL, DEFAULT_TIMEOUT);
    c.put_many("/after/", 3000);
    c.wait_agree(&ALL, "");
    c.stop_member(t);
    std::fs::rename(&m.data_dir, m.data_dir.with_extension("newer")).unwrap();
    std::fs::rename(&copy, &m.data_dir).unwrap();
    c.start_member(t);
    wait_until(
        "the restored member to panic and exit",
        DEFAULT_TIMEOUT,
        || {
            let log = std::fs::read_to_string(&m.log).unwrap_or_default();
            (log.contains("is out of range [lastIndex(") && c.pid(t).is_none()).then_some(())
        },
    );
    let report = f.doctor();
    assert_eq!(
        report.codes(),
        pairs(&[("time_travel", &m.name)]),
        "{}",
        report.json
    );
    let finding = report.finding("time_travel", &m.name);
    assert!(
        finding["evidence"]
            .as_str()
            .unwrap()
            .contains("is out of range [lastIndex("),
        "{finding}"
    );
    let fix = finding["fix"].as_str().unwrap();
    assert!(
        fix.contains(&format!(
            "etcd_replace_member.yml -e etcd_replace_host={}",
            m.name
        )),
        "{fix}"
    );
    // The named fix, under the engine of this test.
    f.engine
        .playbook(
            &f.ansible,
            &f.hosts,
            &playbook("etcd_replace_member.yml"),
            &["-e", &format!("etcd_replace_host={}", m.name)],
        )
        .assert_success();
    assert_ne!(c.member_info(t).map(|i| i.id), Some(old_id));
    f.clean();
}

fn silent_regression(f: &Fixture) {
    // The state file remembers m1 further along than it is now: what a
    // member restored from an old copy shows to the next run.
    let mut state: Value =
        serde_json::from_str(&std::fs::read_to_string(&f.state).unwrap()).unwrap();
    let index = state["members"]["m1"]["raft_index"]
        .as_u64()
        .expect("m1 recorded");
    state["members"]["m1"]["raft_index"] = (index + 1_000_000).into();
    std::fs::write(&f.state, state.to_string()).unwrap();
    let report = f.doctor();
    assert_eq!(
        report.codes(),
        pairs(&[("went_back_in_time", "m1")]),
        "{}",
        report.json
    );
    let finding = report.finding("went_back_in_time", "m1");
    assert!(
        finding["evidence"]
            .as_str()
            .unwrap()
            .contains(&format!("raft index {}", index + 1_000_000)),
        "{finding}"
    );
    let fix = finding["fix"].as_str().unwrap();
    assert!(
        fix.contains("etcd_replace_member.yml -e etcd_replace_host=m1 -e etcd_replace_force=true"),
        "{fix}"
    );
    // It is remembered until the member is replaced.
    let again = f.doctor();
    assert_eq!(again.codes(), report.codes());
    f.engine
        .playbook(
            &f.ansible,
            &f.hosts,
            &playbook("etcd_replace_member.yml"),
            &[
                "-e",
                "etcd_replace_host=m1",
                "-e",
                "etcd_replace_force=true",
            ],
        )
        .assert_success();
    f.clean();
}

fn added_never_started(f: &Fixture) {
    let c = &f.cluster;
    let peer = format!("--peer-urls={}", c.member(3).peer_url());
    // etcd 3.4 refuses a member add for a few seconds after a member started.
    wait_until("etcd to accept the member add", DEFAULT_TIMEOUT, || {
        let out = c
            .etcdctl()
            .run(&c.endpoints(&ALL), &["member", "add", "m3", &peer], None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || stderr.contains("unhealthy cluster"),
            "{stderr}"
        );
        out.status.success().then_some(())
    });
    let listed = c.member_list();
    assert_eq!(listed.len(), 4);
    let report = f.doctor();
    let codes = report.codes();
    assert_eq!(codes.len(), 1, "{}", report.json);
    assert_eq!(codes[0].0, "never_started", "{}", report.json);
    let fix = report.findings()[0]["fix"].as_str().unwrap().to_string();
    assert!(fix.contains("member remove"), "{fix}");
    f.run_fix(&fix);
    assert_eq!(c.member_list().len(), 3);
    f.clean();
}

fn doctor_scenario(engine: Engine) {
    let f = Fixture::new(engine);
    healthy_has_no_findings(&f);
    inventory_drift(&f);
    member_stopped(&f);
    quorum_lost(&f);
    time_travel_panic(&f);
    silent_regression(&f);
    added_never_started(&f);
}

#[test]
fn doctor_ansible_playbook() {
    doctor_scenario(Engine::AnsiblePlaybook);
}

#[test]
fn doctor_etcd_agent() {
    doctor_scenario(Engine::agent_required());
}
