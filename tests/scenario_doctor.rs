//! The doctor (etcd_doctor.yml) on a 3-member cluster whose members run under
//! etcd-svc, under both engines. Each fault is made for real; the doctor's
//! JSON report (the file it writes on the controller) must name it, on the
//! right member, with the right fix, and the cluster's real state (etcdctl,
//! etcd-svc) must agree. Where the fix is cheap it is run, and the doctor
//! must come back clean.
//!
//! Order: healthy (no findings); inventory drift both ways (the printed
//! `member remove` and etcd_add_member.yml are run, each inventory comes
//! back clean, the cluster is put back to three); a member stopped
//! (its start command fixes it); quorum lost (starting the stopped members
//! fixes it); a member restored from an old copy that panics with
//! `tocommit(N) is out of range` (etcd_replace_member.yml fixes it); a
//! regression against the state file (the silent form, made by raising the
//! recorded figures); an added member never started.
//!
//! On a second cluster (`doctor_more_*`, its configuration is changed):
//! NOSPACE under a small quota (etcd_nospace_recovery.yml fixes it: no
//! alarm, writes succeed); a data dir put back from an older copy that
//! catches up without a panic because the leader changed, named from its
//! WAL and snapshot files recorded by an earlier run (etcd_replace_member.yml
//! fixes it); a learner never promoted (the etcd_member command fixes it).
//!
//! On a TLS cluster with client-certificate auth (`doctor_tls_*`): a member
//! restarted with a certificate from another CA, named from its log line
//! (etcd_reissue_cert.yml fixes it).
//!
//! Quorum lost for good (`doctor_quorum_lost_for_good_*`): two members'
//! databases corrupted (zeroed meta pages), so they cannot start: the doctor
//! names both from their logs and prints the backup-and-restore fix, which is
//! run exactly as printed; every key written before comes back.

use std::path::{Path, PathBuf};

use harness::{
    repo_root, wait_until, Ansible, Engine, ServiceCluster, Sshd, TlsFiles, DEFAULT_TIMEOUT,
};
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
/// etcd-svc; the inventory's own path for the fix commands; on a TLS
/// cluster, the CA's key on the controller (for etcd_reissue_cert.yml).
fn doctor_vars(cluster: &ServiceCluster, ansible: &Ansible, file: &str) -> Vec<String> {
    let svc = cluster.svc_dir();
    let ca_key = cluster
        .tls()
        .map(|tls| format!("etcd_ca_key={}", tls.ca_key.display()));
    let vars = vec![
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
    ];
    vars.into_iter().chain(ca_key).collect()
}

impl Fixture {
    fn new(engine: Engine) -> Fixture {
        Fixture::on(engine, ServiceCluster::start3())
    }

    /// The fixture on a given cluster (a TLS one).
    fn on(engine: Engine, cluster: ServiceCluster) -> Fixture {
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
    ///
    /// etcd's strict reconfiguration check answers `unhealthy cluster` to a
    /// membership change (and changes nothing) until the voters have been
    /// connected for five seconds; an operator runs the fix again, and so
    /// does this, until a generous deadline. Any other failure fails at once.
    fn run_fix(&self, fix: &str) {
        wait_until("etcd to accept the fix", DEFAULT_TIMEOUT, || {
            let out = self
                .ansible
                .command("/bin/sh")
                .arg("-c")
                .arg(fix)
                .output()
                .expect("run the fix");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let refused = stderr.contains("etcdserver: unhealthy cluster");
            assert!(
                out.status.success() || refused,
                "fix {fix:?} failed:\n{stdout}{stderr}"
            );
            out.status.success().then_some(())
        });
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
    // The named fix: m2 leaves the cluster; the two-host inventory is clean.
    f.run_fix(&fix);
    let listed = f.cluster.member_list();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|m| m.name != "m2"), "{listed:?}");
    f.cluster.wait_healthy(&[0, 1], DEFAULT_TIMEOUT);
    let report = f.doctor_on(&two, &[]);
    assert!(report.findings().is_empty(), "{}", report.json);
    // Back to three for what follows: m2 added again (a new member).
    f.engine
        .playbook(
            &f.ansible,
            &f.hosts,
            &playbook("etcd_add_member.yml"),
            &["-e", "etcd_add_hosts=m2"],
        )
        .assert_success();
    assert_ne!(f.cluster.member_info(2).map(|m| m.id_hex), Some(id));
    f.clean();
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
    // The named fix, under the engine of this test: m3 joins.
    f.engine
        .playbook(
            &f.ansible,
            &four,
            &playbook("etcd_add_member.yml"),
            &["-e", "etcd_add_hosts=m3"],
        )
        .assert_success();
    assert_eq!(f.cluster.member_list().len(), 4);
    f.cluster.wait_healthy(&[0, 1, 2, 3], DEFAULT_TIMEOUT);
    let report = f.doctor_on(&four, &[]);
    assert!(report.findings().is_empty(), "{}", report.json);
    // Back to three for what follows.
    f.engine
        .playbook(
            &f.ansible,
            &four,
            &playbook("etcd_remove_member.yml"),
            &["-e", "etcd_remove_hosts=m3"],
        )
        .assert_success();
    assert_eq!(f.cluster.member_list().len(), 3);
    f.clean();
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

/// Restarts every member, one at a time, with a backend quota added to its
/// configuration file.
fn restart_with_quota(c: &ServiceCluster, quota: u64) {
    for i in ALL {
        c.stop_member(i);
        let env = &c.member(i).env_file;
        let text = std::fs::read_to_string(env).unwrap();
        std::fs::write(env, format!("{text}ETCD_QUOTA_BACKEND_BYTES={quota}\n")).unwrap();
        c.start_member(i);
        c.wait_healthy(&ALL, DEFAULT_TIMEOUT);
    }
}

fn alarm_list(c: &ServiceCluster) -> String {
    c.etcdctl()
        .retry(&c.endpoints(&ALL), &["alarm", "list"], None)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn nospace(f: &Fixture) {
    let c = &f.cluster;
    restart_with_quota(c, 2 * 1024 * 1024);
    // 100 kB values over the same few keys: the history fills the quota.
    let value = "x".repeat(100_000);
    let refused = (0..400).find_map(|n| {
        let key = format!("/fill/{}", n % 5);
        let out = c
            .etcdctl()
            .run(&c.endpoints(&ALL), &["put", &key], Some(&value));
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        (!out.status.success()).then_some(stderr)
    });
    let refused = refused.expect("the quota was never reached");
    assert!(refused.contains("database space exceeded"), "{refused}");
    wait_until("NOSPACE in etcdctl alarm list", DEFAULT_TIMEOUT, || {
        alarm_list(c).contains("NOSPACE").then_some(())
    });
    let report = f.doctor();
    assert_eq!(
        report.codes(),
        pairs(&[("nospace", "cluster")]),
        "{}",
        report.json
    );
    let finding = report.finding("nospace", "cluster");
    assert_eq!(finding["severity"], "critical");
    assert!(
        finding["evidence"].as_str().unwrap().contains("NOSPACE"),
        "{finding}"
    );
    let fix = finding["fix"].as_str().unwrap();
    assert!(
        fix.starts_with(&format!("ansible-playbook -i {}", f.hosts.display()))
            && fix.ends_with("/etcd_nospace_recovery.yml"),
        "{fix}"
    );
    assert!(alarm_list(c).contains("NOSPACE"), "the doctor disarmed");
    // The named fix, under the engine of this test.
    f.engine
        .playbook(
            &f.ansible,
            &f.hosts,
            &playbook("etcd_nospace_recovery.yml"),
            &[],
        )
        .assert_success();
    assert_eq!(alarm_list(c).trim(), "", "alarms left");
    let write = c
        .etcdctl()
        .run(&c.endpoints(&ALL), &["put", "/after-nospace", "v"], None);
    assert!(
        write.status.success(),
        "{}",
        String::from_utf8_lossy(&write.stderr)
    );
    f.clean();
}

fn learner_not_promoted(f: &Fixture) {
    let c = &f.cluster;
    let peer = format!("--peer-urls={}", c.member(3).peer_url());
    wait_until("etcd to accept the learner add", DEFAULT_TIMEOUT, || {
        let out = c.etcdctl().run(
            &c.endpoints(&ALL),
            &["member", "add", "m3", "--learner", &peer],
            None,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || stderr.contains("unhealthy cluster"),
            "{stderr}"
        );
        out.status.success().then_some(())
    });
    c.write_env(3, &c.initial_cluster_for(&[0, 1, 2, 3]), "existing");
    c.start_member(3);
    c.wait_healthy(&ALL, DEFAULT_TIMEOUT);
    wait_until("the learner to publish its name", DEFAULT_TIMEOUT, || {
        c.member_info(3)
            .filter(|m| m.is_learner && !m.client_urls.is_empty())
            .map(|_| ())
    });
    let four = f.inventory("four.ini", &[0, 1, 2, 3]);
    let report = wait_until("the learner to catch up", DEFAULT_TIMEOUT, || {
        let r = f.doctor_on(&four, &[]);
        (r.codes() == pairs(&[("learner_not_promoted", "m3")])).then_some(r)
    });
    let finding = report.finding("learner_not_promoted", "m3");
    assert_eq!(finding["severity"], "warning");
    let fix = finding["fix"].as_str().unwrap();
    assert!(
        fix.starts_with(&format!("ansible -i {} m3 -m etcd_member", four.display()))
            && fix.contains("state=promoted name=m3"),
        "{fix}"
    );
    assert!(c.member_info(3).unwrap().is_learner, "the doctor promoted");
    f.run_fix(fix);
    let listed = c.member_list();
    assert_eq!(listed.len(), 4);
    assert!(listed.iter().all(|m| !m.is_learner), "{listed:?}");
    c.wait_healthy(&[0, 1, 2, 3], DEFAULT_TIMEOUT);
    let report = f.doctor_on(&four, &[]);
    assert!(report.findings().is_empty(), "{}", report.json);
}

/// `n` puts, one raft entry each, through etcd's JSON gateway (one etcdctl
/// process per put would be slow).
fn put_entries(endpoint: &str, prefix: &str, n: usize) {
    use base64::Engine as _;
    use std::io::{Read, Write};
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let host = endpoint.trim_start_matches("http://");
    for k in 0..n {
        let body =
            serde_json::json!({"key": b64(&format!("{prefix}{k}")), "value": b64("v")}).to_string();
        wait_until("the JSON gateway to take a put", DEFAULT_TIMEOUT, || {
            let mut s = std::net::TcpStream::connect(host).ok()?;
            write!(
                s,
                "POST /v3/kv/put HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .ok()?;
            let mut response = String::new();
            s.read_to_string(&mut response).ok()?;
            response.lines().next()?.contains(" 200").then_some(())
        });
    }
}

/// Every member restarted with a small snapshot count, so that snapshot
/// files come every few hundred entries, as they do on a busy cluster.
fn restart_with_snapshot_count(c: &ServiceCluster, count: u64) {
    for i in ALL {
        c.stop_member(i);
        let env = &c.member(i).env_file;
        let text = std::fs::read_to_string(env).unwrap();
        std::fs::write(env, format!("{text}ETCD_SNAPSHOT_COUNT={count}\n")).unwrap();
        c.start_member(i);
        c.wait_healthy(&ALL, DEFAULT_TIMEOUT);
    }
}

fn snap_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("member/snap"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.ends_with(".snap"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn silent_time_travel(f: &Fixture) {
    let c = &f.cluster;
    restart_with_snapshot_count(c, 100);
    let leader = c.wait_leader();
    let t = (0..3).find(|&i| i != leader).unwrap();
    let m = c.member(t).clone();
    let old_id = c.member_info(t).expect("listed").id;
    // The copy, taken early.
    c.stop_member(t);
    let copy = m.data_dir.with_extension("old-copy");
    copy_dir(&m.data_dir, &copy);
    c.start_member(t);
    c.wait_healthy(&ALL, DEFAULT_TIMEOUT);
    let endpoint = c.member(leader).client_url();
    put_entries(&endpoint, "/tt/a/", 600);
    c.wait_agree(&ALL, "");
    // A doctor run records the data dir as it is now.
    f.clean();
    let recorded: Value =
        serde_json::from_str(&std::fs::read_to_string(&f.state).unwrap()).unwrap();
    let recorded_snap = recorded["members"][&m.name]["files"]["snap"]
        .as_str()
        .unwrap_or_else(|| panic!("no snapshot recorded for {}: {recorded}", m.name))
        .to_string();
    assert!(!snap_files(&copy).contains(&recorded_snap));
    put_entries(&endpoint, "/tt/b/", 50);
    c.wait_agree(&ALL, "");
    // The member's data dir put back from the copy, the current one moved aside.
    c.stop_member(t);
    std::fs::rename(&m.data_dir, m.data_dir.with_extension("newer")).unwrap();
    std::fs::rename(&copy, &m.data_dir).unwrap();
    // A new leader that never saw the member's match index.
    let other = (0..3).find(|&i| i != leader && i != t).unwrap();
    let to = c.member_info(other).expect("listed").id_hex;
    let moved = c
        .etcdctl()
        .run(&c.endpoints(&[leader]), &["move-leader", &to], None);
    assert!(
        moved.status.success(),
        "{}",
        String::from_utf8_lossy(&moved.stderr)
    );
    wait_until("the leader to move", DEFAULT_TIMEOUT, || {
        (c.leader() == Some(other)).then_some(())
    });
    c.start_member(t);
    c.wait_healthy(&ALL, DEFAULT_TIMEOUT);
    c.wait_agree(&ALL, "");
    assert_eq!(c.local_key_count(t, "/tt/"), 650, "caught up");
    let log = std::fs::read_to_string(&m.log).unwrap_or_default();
    assert!(!log.contains("is out of range [lastIndex("), "it panicked");
    assert!(c.pid(t).is_some());
    assert_eq!(c.member_info(t).map(|i| i.id), Some(old_id));
    eprintln!(
        "recorded {recorded_snap}; {} now has {:?}",
        m.name,
        snap_files(&m.data_dir)
    );
    let report = f.doctor();
    assert_eq!(
        report.codes(),
        pairs(&[("went_back_in_time", &m.name)]),
        "{}",
        report.json
    );
    let finding = report.finding("went_back_in_time", &m.name);
    assert!(
        finding["evidence"]
            .as_str()
            .unwrap()
            .contains(&recorded_snap),
        "{finding}"
    );
    let fix = finding["fix"].as_str().unwrap();
    assert!(
        fix.contains(&format!(
            "etcd_replace_member.yml -e etcd_replace_host={} -e etcd_replace_force=true",
            m.name
        )),
        "{fix}"
    );
    f.engine
        .playbook(
            &f.ansible,
            &f.hosts,
            &playbook("etcd_replace_member.yml"),
            &[
                "-e",
                &format!("etcd_replace_host={}", m.name),
                "-e",
                "etcd_replace_force=true",
            ],
        )
        .assert_success();
    assert_ne!(c.member_info(t).map(|i| i.id), Some(old_id));
    f.clean();
}

/// A member restarted with a certificate (and key) from another CA, with
/// the right address: the others refuse it, it cannot serve. The doctor
/// names it from its log line; etcd_reissue_cert.yml (check mode first,
/// which changes nothing) re-issues the certificate from the cluster's CA,
/// the foreign one is copied aside, and the doctor comes back clean.
fn certificate_from_another_ca(f: &Fixture) {
    let c = &f.cluster;
    let tls = c.tls().expect("a TLS cluster").clone();
    f.clean();
    let t = 2;
    let m = c.member(t).clone();
    let ips: Vec<std::net::Ipv4Addr> = (0..3).map(|i| c.member(i).ip).collect();
    let other = TlsFiles::generate(&f.ansible.dir().join("other-ca"), &ips);
    c.stop_member(t);
    let from = std::fs::read_to_string(&m.log).unwrap_or_default().len();
    std::fs::copy(other.member_cert(t), tls.member_cert(t)).unwrap();
    std::fs::copy(other.member_key(t), tls.member_key(t)).unwrap();
    let foreign = std::fs::read(tls.member_cert(t)).unwrap();
    c.start_member(t);
    let new_lines = || {
        let log = std::fs::read_to_string(&m.log).unwrap_or_default();
        log.get(from..).unwrap_or_default().to_string()
    };
    wait_until("a TLS error in m2's log", DEFAULT_TIMEOUT, || {
        let log = new_lines().to_ascii_lowercase();
        (log.contains("x509:") || log.contains("remote error: tls")).then_some(())
    });
    assert!(c.pid(t).is_some(), "it runs");
    assert!(!c.healthy(&[t]), "etcdctl with the cluster's CA refuses it");
    let report = f.doctor();
    assert_eq!(
        report.codes(),
        pairs(&[("tls_failure", "m2")]),
        "{}",
        report.json
    );
    let finding = report.finding("tls_failure", "m2");
    assert_eq!(finding["severity"], "critical");
    let evidence = finding["evidence"].as_str().unwrap();
    let log = new_lines();
    assert!(
        log.lines().any(|l| l.trim() == evidence),
        "evidence {evidence:?} is not a line of m2's log:\n{log}"
    );
    let fix = finding["fix"].as_str().unwrap();
    assert_eq!(
        fix,
        format!(
            "ansible-playbook -i {} {}/etcd_reissue_cert.yml -e etcd_cert_host=m2",
            f.hosts.display(),
            repo_root().join("playbooks/db-operations").display()
        )
    );
    let reissue = |extra: &[&str]| {
        let mut args = vec!["-e", "etcd_cert_host=m2"];
        args.extend_from_slice(extra);
        f.engine
            .playbook(
                &f.ansible,
                &f.hosts,
                &playbook("etcd_reissue_cert.yml"),
                &args,
            )
            .assert_success();
    };
    let pid = c.pid(t);
    reissue(&["--check"]);
    assert_eq!(std::fs::read(tls.member_cert(t)).unwrap(), foreign);
    assert_eq!(c.pid(t), pid, "check mode restarted nothing");
    // The named fix, under the engine of this test.
    reissue(&[]);
    let verify = std::process::Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&tls.ca_cert)
        .args(["-verify_ip", &m.ip.to_string()])
        .arg(tls.member_cert(t))
        .output()
        .expect("run openssl");
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let pki = tls.ca_cert.parent().unwrap();
    let aside: Vec<PathBuf> = std::fs::read_dir(pki)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("member2.pem.before-"))
        })
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(&aside[0]).unwrap(), foreign, "copied aside");
    assert_ne!(c.pid(t), pid, "restarted");
    f.clean();
    // Run again, it verifies and does nothing.
    let pid = c.pid(t);
    reissue(&[]);
    assert_eq!(c.pid(t), pid);
}

#[test]
fn doctor_tls_ansible_playbook() {
    certificate_from_another_ca(&Fixture::on(
        Engine::AnsiblePlaybook,
        ServiceCluster::start_tls3(),
    ));
}

#[test]
fn doctor_tls_etcd_agent() {
    certificate_from_another_ca(&Fixture::on(
        Engine::agent_required(),
        ServiceCluster::start_tls3(),
    ));
}

/// Zeroes the first two pages of a bbolt file (both meta pages): etcd 3.4 to
/// 3.6 refuse it with `cannot open database ... (invalid database)` /
/// `failed to open database`, every time (a flipped WAL byte may instead be
/// taken for a torn write and repaired).
fn corrupt_db(data_dir: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    let db = data_dir.join("member/snap/db");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap_or_else(|e| panic!("open {}: {e}", db.display()));
    file.seek(SeekFrom::Start(0)).unwrap();
    file.write_all(&[0u8; 8192]).unwrap();
    file.sync_all().unwrap();
}

fn quorum_lost_for_good(f: &Fixture) {
    let c = &f.cluster;
    c.put_many("/kept/", 500);
    c.wait_agree(&ALL, "");
    let leader = c.wait_leader();
    let broken: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    for &i in &broken {
        c.stop_member(i);
        corrupt_db(&c.member(i).data_dir);
        c.start_member(i);
    }
    for &i in &broken {
        let m = c.member(i);
        wait_until(
            "the member with the corrupt database to exit",
            DEFAULT_TIMEOUT,
            || {
                let log = std::fs::read_to_string(&m.log).unwrap_or_default();
                (log.contains("open database") && c.pid(i).is_none()).then_some(())
            },
        );
    }
    assert!(!c.healthy(&[leader]), "one member of three has no quorum");
    let report = f.doctor();
    let names: Vec<&str> = broken.iter().map(|&i| c.member(i).name.as_str()).collect();
    assert_eq!(
        report.codes(),
        pairs(&[
            ("data_dir_corrupt", names[0]),
            ("data_dir_corrupt", names[1]),
            ("quorum_lost", "cluster"),
        ]),
        "{}",
        report.json
    );
    for name in &names {
        let finding = report.finding("data_dir_corrupt", name);
        assert!(
            finding["evidence"]
                .as_str()
                .unwrap()
                .contains("open database"),
            "{finding}"
        );
    }
    let fix = report.finding("quorum_lost", "cluster")["fix"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        fix.contains("etcd_backup.yml") && fix.contains("etcd_restore.yml"),
        "{fix}"
    );
    assert!(!fix.contains(" start "), "nothing to start: {fix}");
    // The printed fix as it is: a snapshot of the member that still
    // answers, then every member restored from it.
    f.run_fix(&fix);
    c.wait_healthy(&ALL, DEFAULT_TIMEOUT);
    assert_eq!(
        c.key_count("/kept/"),
        500,
        "every key written before is back"
    );
    for &i in &broken {
        assert!(
            !c.moved_aside(i).is_empty(),
            "the corrupt data dir of {} is moved aside, not deleted",
            c.member(i).name
        );
    }
    f.clean();
}

#[test]
fn doctor_quorum_lost_for_good_ansible_playbook() {
    quorum_lost_for_good(&Fixture::new(Engine::AnsiblePlaybook));
}

#[test]
fn doctor_quorum_lost_for_good_etcd_agent() {
    quorum_lost_for_good(&Fixture::new(Engine::agent_required()));
}

/// Faults proven on a cluster of their own (they change its configuration).
fn doctor_more_faults(engine: Engine) {
    let f = Fixture::new(engine);
    nospace(&f);
    silent_time_travel(&f);
    learner_not_promoted(&f);
}

#[test]
fn doctor_more_ansible_playbook() {
    doctor_more_faults(Engine::AnsiblePlaybook);
}

#[test]
fn doctor_more_etcd_agent() {
    doctor_more_faults(Engine::agent_required());
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
