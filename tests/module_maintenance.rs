//! etcd_maintenance against real etcd 3.4 clusters. Every claim of the module
//! is checked independently: etcdctl (get at old revisions, endpoint status,
//! alarm list, put), and the member's data file on disk.
//!
//! Local helper: etcd's JSON gateway, to write large values quickly and to
//! raise a CORRUPT alarm (etcdctl has no command for that).

use harness::{
    expect_not_failed as ok, run_module, wait_until, Cluster, ClusterOptions, MemberStart,
    DEFAULT_TIMEOUT,
};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;

fn maintenance(cluster: &Cluster, extra: Value) -> Value {
    let mut args = json!({ "endpoints": cluster.endpoints_csv(), "command_timeout": 30 });
    args.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    run_module("etcd_maintenance", &args).checked()
}

fn one_member() -> Cluster {
    Cluster::start(ClusterOptions {
        members: 1,
        ..ClusterOptions::default()
    })
}

/// POSTs `body` to etcd's JSON gateway at `endpoint` (plain http); returns
/// the HTTP status line and the body.
fn gateway(endpoint: &str, path: &str, body: &Value) -> (String, String) {
    let host = endpoint.trim_start_matches("http://");
    let body = body.to_string();
    wait_until("the JSON gateway to answer", DEFAULT_TIMEOUT, || {
        let mut s = TcpStream::connect(host).ok()?;
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .ok()?;
        let mut response = String::new();
        s.read_to_string(&mut response).ok()?;
        let (head, rest) = response.split_once("\r\n\r\n")?;
        Some((head.lines().next()?.to_string(), rest.to_string()))
    })
}

fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// One put of a `size`-byte value through the gateway; the error text if etcd refused it.
fn put_big(endpoint: &str, key: &str, size: usize, fill: char) -> Result<(), String> {
    let value: String = std::iter::repeat_n(fill, size).collect();
    let (status, body) = gateway(
        endpoint,
        "/v3/kv/put",
        &json!({"key": b64(key.as_bytes()), "value": b64(value.as_bytes())}),
    );
    if status.contains(" 200") {
        Ok(())
    } else {
        Err(body)
    }
}

/// `etcdctl endpoint status` of member `i`: `Status` (dbSize, dbSizeInUse...).
fn status(cluster: &Cluster, i: usize) -> Value {
    let out = cluster.etcdctl_at(
        &[cluster.member(i).client_url()],
        &["endpoint", "status", "-w", "json"],
        None,
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v.pointer("/0/Status").cloned().unwrap_or(Value::Null)
}

/// dbSize of member `i` according to `etcdctl endpoint status`.
fn db_size(cluster: &Cluster, i: usize) -> i64 {
    let s = status(cluster, i);
    s["dbSize"]
        .as_i64()
        .unwrap_or_else(|| panic!("no dbSize for member {i}: {s}"))
}

/// Whether etcdctl can still read at revision `rev` (not compacted away).
fn readable_at(cluster: &Cluster, rev: i64) -> bool {
    let out = cluster.etcdctl(&["get", "k", &format!("--rev={rev}")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || stderr.contains("compacted"),
        "unexpected etcdctl error: {stderr}"
    );
    out.status.success()
}

fn current_revision(cluster: &Cluster) -> i64 {
    let v: Value =
        serde_json::from_str(&cluster.etcdctl_retry(&["get", "k", "-w", "json"])).unwrap();
    v.pointer("/header/revision")
        .and_then(Value::as_i64)
        .unwrap()
}

fn alarm_list(cluster: &Cluster) -> String {
    cluster.etcdctl_retry(&["alarm", "list"])
}

#[test]
fn compaction_reaches_the_revision_once_and_check_mode_changes_nothing() {
    let cluster = one_member();
    for i in 0..20 {
        cluster.put("k", &format!("v{i}"));
    }
    let rev = current_revision(&cluster);
    assert!(readable_at(&cluster, 2));

    // A revision in the future: refused, nothing compacted.
    let r = maintenance(
        &cluster,
        json!({"state": "compacted", "revision": rev + 100}),
    );
    assert_eq!(r["failed"], true, "{r}");
    assert!(r["msg"].as_str().unwrap().contains("in the future"), "{r}");
    assert!(readable_at(&cluster, 2), "a refused compaction compacted");

    // Check mode: says it would change, changes nothing.
    let r = ok(maintenance(
        &cluster,
        json!({"state": "compacted", "keep_revisions": 5, "_ansible_check_mode": true, "_ansible_diff": true}),
    ));
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["diff"]["after"]["compact_revision"], rev - 5, "{r}");
    assert!(readable_at(&cluster, 2), "check mode compacted");

    // keep_revisions: everything before rev-5 is gone, rev-5 is readable.
    let r = ok(maintenance(
        &cluster,
        json!({"state": "compacted", "keep_revisions": 5}),
    ));
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["compact_revision"], rev - 5, "{r}");
    assert!(!readable_at(&cluster, rev - 6));
    assert!(readable_at(&cluster, rev - 5));

    // Again: already there.
    let r = ok(maintenance(
        &cluster,
        json!({"state": "compacted", "keep_revisions": 5}),
    ));
    assert_eq!(r["changed"], false, "{r}");
    assert_eq!(r["compact_revision_before"], rev - 5, "{r}");

    // An older revision than the compaction: no change.
    let r = ok(maintenance(
        &cluster,
        json!({"state": "compacted", "revision": 3}),
    ));
    assert_eq!(r["changed"], false, "{r}");

    // To the current revision, physically; the status reports it.
    let r = ok(maintenance(
        &cluster,
        json!({"state": "compacted", "physical": true}),
    ));
    assert_eq!(r["changed"], true, "{r}");
    assert!(!readable_at(&cluster, rev - 1));
    assert!(readable_at(&cluster, rev));
    assert_eq!(cluster.get("k").as_deref(), Some("v19"), "data is intact");
    let r = ok(maintenance(&cluster, json!({"state": "compacted"})));
    assert_eq!(r["changed"], false, "{r}");
    let s = ok(maintenance(&cluster, json!({"state": "status"})));
    assert_eq!(s["compact_revision"], rev, "{s}");
    assert_eq!(s["revision"], rev, "{s}");
    // etcd 3.4 refuses HashKV at the compaction revision: the check still works.
    let c = ok(maintenance(&cluster, json!({"state": "consistent"})));
    assert_eq!(c["mismatched"], json!([]), "{c}");
    assert_eq!(c["hash_revision"], rev, "{c}");

    // Options of another state are refused before anything is done.
    let r = maintenance(
        &cluster,
        json!({"state": "compacted", "min_free_ratio": 0.5}),
    );
    assert_eq!(r["failed"], true, "{r}");
    assert!(
        r["msg"]
            .as_str()
            .unwrap()
            .contains("min_free_ratio cannot be used"),
        "{r}"
    );
}

#[test]
fn defragmentation_runs_only_above_the_thresholds_and_shrinks_the_file() {
    let cluster = Cluster::start3();
    let endpoint = cluster.member(1).client_url();
    // ~3 MB of values, overwritten three times, then compacted: mostly free pages.
    for round in 0..3 {
        for k in 0..30 {
            put_big(
                &endpoint,
                &format!("big/{k}"),
                100_000,
                (b'a' + round) as char,
            )
            .unwrap();
        }
    }
    let compacted = ok(maintenance(
        &cluster,
        json!({"state": "compacted", "physical": true}),
    ));
    assert_eq!(compacted["changed"], true);
    // etcd recounts the space in use when it commits writes (twice: freed
    // pages are released one commit later): a live cluster's small writes.
    let mut n = 0;
    wait_until(
        "every member to count the compacted space as free",
        DEFAULT_TIMEOUT,
        || {
            n += 1;
            cluster.put(&format!("tick/{n}"), "x");
            (0..3)
                .all(|i| {
                    let s = status(&cluster, i);
                    s["dbSizeInUse"].as_i64().unwrap_or(i64::MAX)
                        < s["dbSize"].as_i64().unwrap_or(0) / 2
                })
                .then_some(())
        },
    );
    let before = db_size(&cluster, 1);

    let member_args = |extra: Value| {
        let mut a = json!({ "endpoints": endpoint, "state": "defragmented" });
        a.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        a
    };
    let run = |args: Value| {
        let r = run_module("etcd_maintenance", &args);
        assert!(r.stderr.is_empty(), "{}", r.stderr);
        r.result
    };

    // Above the free-space threshold asked: skipped, file untouched.
    let r = ok(run(member_args(json!({"min_free_ratio": 0.99}))));
    assert_eq!(r["changed"], false, "{r}");
    assert_eq!(
        r["skipped"][0]["name"],
        cluster.member(1).name.as_str(),
        "{r}"
    );
    let r = ok(run(member_args(json!({"min_free_bytes": before * 2}))));
    assert_eq!(r["changed"], false, "{r}");
    assert_eq!(db_size(&cluster, 1), before);

    // Check mode: would defragment, does not.
    let r = ok(run(member_args(json!({"_ansible_check_mode": true}))));
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(db_size(&cluster, 1), before, "check mode defragmented");

    // For real: only this member, smaller file, sizes reported as etcdctl sees them.
    let others_before = (db_size(&cluster, 0), db_size(&cluster, 2));
    let r = ok(run(member_args(json!({"min_free_ratio": 0.3}))));
    assert_eq!(r["changed"], true, "{r}");
    let done = &r["defragmented"][0];
    assert_eq!(done["name"], cluster.member(1).name.as_str(), "{r}");
    assert_eq!(done["db_size_before"], before, "{r}");
    let after = db_size(&cluster, 1);
    assert!(after < before / 2, "db {before} -> {after}");
    assert_eq!(done["db_size_after"], after, "{r}");
    assert!(done["took_ms"].as_u64().is_some(), "{r}");
    assert_eq!(
        (db_size(&cluster, 0), db_size(&cluster, 2)),
        others_before,
        "other members were defragmented"
    );
    assert_eq!(cluster.key_count("big/"), 30);

    // Idempotent: nothing left worth defragmenting on that member.
    let r = ok(run(member_args(json!({"min_free_ratio": 0.3}))));
    assert_eq!(r["changed"], false, "{r}");

    // An endpoint that is not a member's client URL: refused, nothing done.
    let r = run(json!({"endpoints": format!("{endpoint}/"), "state": "defragmented"}));
    assert_eq!(r["failed"], false, "a trailing slash is the same URL: {r}");
    let r = run(json!({"endpoints": "http://localhost:1", "state": "defragmented"}));
    assert_eq!(r["failed"], true, "{r}");

    // The whole cluster: the two others, the leader last.
    let leader = cluster.wait_leader(DEFAULT_TIMEOUT);
    let r = ok(maintenance(
        &cluster,
        json!({"state": "defragmented", "cluster": true, "min_free_ratio": 0.3}),
    ));
    let names: Vec<&str> = r["defragmented"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{r}");
    assert!(!names.contains(&cluster.member(1).name.as_str()), "{r}");
    if leader != 1 {
        assert_eq!(
            names[1],
            cluster.member(leader).name.as_str(),
            "leader last: {r}"
        );
    }
    assert!(db_size(&cluster, 0) < others_before.0 / 2);
    assert!(db_size(&cluster, 2) < others_before.1 / 2);
}

/// Restarts every member of `cluster`, one at a time, with a backend quota.
fn restart_with_quota(cluster: &mut Cluster, quota: u64) {
    for i in 0..cluster.len() {
        cluster.stop(i);
        cluster.start_member_with(
            i,
            MemberStart {
                extra_args: vec![format!("--quota-backend-bytes={quota}")],
                ..MemberStart::default()
            },
        );
        cluster.wait_member_healthy(i, DEFAULT_TIMEOUT);
    }
    cluster.wait_healthy(DEFAULT_TIMEOUT);
}

#[test]
fn nospace_is_reported_and_cleared_after_compaction_and_defragmentation() {
    let mut cluster = Cluster::start3();
    restart_with_quota(&mut cluster, 3 * 1024 * 1024);
    cluster.put("keep/a", "1");
    cluster.put("keep/b", "2");
    let endpoint = cluster.member(0).client_url();
    let mut error = None;
    for n in 0..200 {
        if let Err(e) = put_big(&endpoint, &format!("fill/{}", n % 5), 100_000, 'x') {
            error = Some(e);
            break;
        }
    }
    let error = error.expect("the quota was never reached");
    assert!(error.contains("database space exceeded"), "{error}");
    wait_until("NOSPACE in etcdctl alarm list", DEFAULT_TIMEOUT, || {
        alarm_list(&cluster).contains("NOSPACE").then_some(())
    });
    assert!(
        !cluster.etcdctl(&["put", "x", "y"]).status.success(),
        "writes must fail under NOSPACE"
    );

    let s = ok(maintenance(&cluster, json!({"state": "status"})));
    assert!(
        s["alarms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["alarm"] == "NOSPACE"),
        "{s}"
    );

    // Disarm in check mode: nothing disarmed.
    let r = ok(maintenance(
        &cluster,
        json!({"state": "disarmed", "_ansible_check_mode": true}),
    ));
    assert_eq!(r["changed"], true, "{r}");
    assert!(alarm_list(&cluster).contains("NOSPACE"));

    // The runbook: compact, defragment every member, disarm.
    ok(maintenance(
        &cluster,
        json!({"state": "compacted", "physical": true}),
    ));
    // Idle (writes refused): db_size_in_use may not show the freed space yet,
    // so thresholds 0, as the recovery playbook does.
    let d = ok(maintenance(
        &cluster,
        json!({"state": "defragmented", "cluster": true, "min_free_ratio": 0}),
    ));
    assert_eq!(d["defragmented"].as_array().unwrap().len(), 3, "{d}");
    let r = ok(maintenance(&cluster, json!({"state": "disarmed"})));
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(alarm_list(&cluster).trim(), "", "alarms left after disarm");
    cluster.put("after", "ok");
    assert_eq!(cluster.get("after").as_deref(), Some("ok"));
    assert_eq!(cluster.get("keep/a").as_deref(), Some("1"));
    assert_eq!(cluster.key_count("fill/"), 5);
    let r = ok(maintenance(&cluster, json!({"state": "disarmed"})));
    assert_eq!(r["changed"], false, "{r}");
}

#[test]
fn corrupt_is_disarmed_only_with_force_after_a_passing_hash_check() {
    let cluster = Cluster::start3();
    cluster.put("k", "v");
    let member = cluster.member_list()[0].id;
    let endpoint = cluster.member(0).client_url();
    let (status, body) = gateway(
        &endpoint,
        "/v3/maintenance/alarm",
        &json!({"action": "ACTIVATE", "memberID": member.to_string(), "alarm": "CORRUPT"}),
    );
    assert!(status.contains(" 200"), "{status} {body}");
    assert!(alarm_list(&cluster).contains("CORRUPT"));

    let r = maintenance(&cluster, json!({"state": "disarmed", "alarm": "all"}));
    assert_eq!(r["failed"], true, "{r}");
    assert!(r["msg"].as_str().unwrap().contains("force"), "{r}");
    assert!(
        alarm_list(&cluster).contains("CORRUPT"),
        "disarmed without force"
    );

    let r = ok(maintenance(
        &cluster,
        json!({"state": "disarmed", "alarm": "CORRUPT", "force": true}),
    ));
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["mismatched"], json!([]), "{r}");
    assert_eq!(alarm_list(&cluster).trim(), "");
    cluster.put("k2", "v2");
}

/// Replaces every occurrence of `from` by `to` (same length) in `path`.
fn patch_file(path: &std::path::Path, from: &[u8], to: &[u8]) -> usize {
    assert_eq!(from.len(), to.len());
    let mut bytes = std::fs::read(path).unwrap();
    let mut count = 0;
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            count += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    std::fs::write(path, bytes).unwrap();
    count
}

#[test]
fn consistency_check_names_the_member_tampered_with_offline() {
    let mut cluster = Cluster::start3();
    cluster.put_many("data/", 200);
    cluster.put("victim", "original-value-AAAAAAAA");
    let r = ok(maintenance(&cluster, json!({"state": "consistent"})));
    assert_eq!(r["mismatched"], json!([]), "{r}");
    assert_eq!(r["hashes"].as_array().unwrap().len(), 3);

    // Member 2, stopped cleanly, gets one value changed in its bolt file.
    let victim = 2;
    wait_until("member 2 to have the last write", DEFAULT_TIMEOUT, || {
        let out = cluster.etcdctl_at(
            &[cluster.member(victim).client_url()],
            &["get", "victim", "--consistency=s", "--print-value-only"],
            None,
        );
        String::from_utf8_lossy(&out.stdout)
            .contains("original-value-AAAAAAAA")
            .then_some(())
    });
    cluster.stop(victim);
    let db = cluster.member(victim).data_dir.join("member/snap/db");
    let patched = patch_file(&db, b"original-value-AAAAAAAA", b"original-value-BBBBBBBB");
    assert!(patched > 0, "value not found in {}", db.display());
    cluster.start_member(victim);
    cluster.wait_member_healthy(victim, DEFAULT_TIMEOUT);
    let out = cluster.etcdctl_at(
        &[cluster.member(victim).client_url()],
        &["get", "victim", "--consistency=s", "--print-value-only"],
        None,
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("BBBB"),
        "the tampered value is not served by member 2: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    let r = maintenance(&cluster, json!({"state": "consistent"}));
    assert_eq!(r["failed"], true, "{r}");
    assert_eq!(r["mismatched"], json!([cluster.member(victim).name]), "{r}");
    assert!(
        r["msg"]
            .as_str()
            .unwrap()
            .contains(&cluster.member(victim).name),
        "{r}"
    );
}

#[test]
fn every_state_works_over_tls_with_client_certificates() {
    let cluster = Cluster::start_tls3();
    let tls = cluster.tls().unwrap();
    let with_tls = |extra: Value| {
        let mut args = json!({
            "ca_cert": tls.ca_cert,
            "client_cert": tls.client_cert,
            "client_key": tls.client_key,
        });
        args.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        maintenance(&cluster, args)
    };
    for i in 0..10 {
        cluster.put("k", &format!("v{i}"));
    }
    let rev = current_revision(&cluster);
    let s = ok(with_tls(json!({"state": "status"})));
    assert_eq!(s["members"].as_array().unwrap().len(), 3, "{s}");
    assert_eq!(s["revision"], rev, "{s}");
    let r = ok(with_tls(json!({"state": "compacted"})));
    assert_eq!(r["changed"], true, "{r}");
    assert!(!readable_at(&cluster, rev - 1));
    let r = ok(with_tls(
        json!({"state": "defragmented", "cluster": true, "min_free_ratio": 0}),
    ));
    assert_eq!(r["defragmented"].as_array().unwrap().len(), 3, "{r}");
    let r = ok(with_tls(json!({"state": "consistent"})));
    assert_eq!(r["mismatched"], json!([]), "{r}");
    let r = ok(with_tls(json!({"state": "disarmed", "alarm": "all"})));
    assert_eq!(r["changed"], false, "{r}");
}

/// The cluster version member 0 reports at `/version` (etcd's own word, not the module's).
fn cluster_version(cluster: &Cluster) -> String {
    let host = cluster.endpoints_csv();
    let host = host
        .split(',')
        .next()
        .unwrap()
        .trim_start_matches("http://")
        .to_string();
    wait_until("etcd to answer /version", DEFAULT_TIMEOUT, || {
        let mut s = TcpStream::connect(&host).ok()?;
        write!(s, "GET /version HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
        let mut response = String::new();
        s.read_to_string(&mut response).ok()?;
        let (_, body) = response.split_once("\r\n\r\n")?;
        let doc: Value = serde_json::from_str(body).ok()?;
        doc["etcdcluster"].as_str().map(str::to_string)
    })
}

/// Waits until the cluster version is `want`.
fn wait_cluster_version(cluster: &Cluster, want: &str) {
    let mut last = String::new();
    let reached = harness::poll_until(DEFAULT_TIMEOUT, || {
        last = cluster_version(cluster);
        (last == want).then_some(())
    });
    assert!(reached.is_some(), "cluster version {last}, expected {want}");
}

/// etcd 3.6's downgrade API: enabled once (check mode only validates), refused to another
/// target while one is in progress, cancelled once; before 3.6 refused with the reason.
/// Judged by the cluster version etcd serves at `/version`.
#[test]
fn downgrade_is_enabled_and_cancelled_once_and_refused_before_3_6() {
    let cluster = one_member();
    let etcd = harness::etcd_under_test();
    let before = cluster_version(&cluster);
    let enable = json!({"state": "downgrade_enabled", "downgrade_version": "3.5"});
    if etcd.minor < (3, 6) {
        let r = maintenance(&cluster, enable);
        assert_eq!(r["failed"], true, "{r}");
        assert!(r["msg"].as_str().unwrap().contains("3.6 or later"), "{r}");
        assert_eq!(cluster_version(&cluster), before);
        let r = ok(maintenance(
            &cluster,
            json!({"state": "downgrade_cancelled"}),
        ));
        assert_eq!(r["changed"], false, "{r}");
        return;
    }
    assert_eq!(before, "3.6.0");
    let mut check = enable.clone();
    check["_ansible_check_mode"] = json!(true);
    let r = ok(maintenance(&cluster, check));
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["cluster_version"], "3.6.0", "{r}");
    assert_eq!(cluster_version(&cluster), "3.6.0", "check mode downgraded");

    let r = ok(maintenance(&cluster, enable.clone()));
    assert_eq!(r["changed"], true, "{r}");
    wait_cluster_version(&cluster, "3.5.0");
    // the module reads what etcd reports, mid-downgrade
    let health = ok(run_module(
        "etcd_health",
        &json!({"endpoints": cluster.endpoints_csv()}),
    )
    .checked());
    assert_eq!(health["cluster_version"], "3.5.0", "{health}");
    assert_eq!(health["downgrade"]["enabled"], true, "{health}");
    assert_eq!(health["downgrade"]["target_version"], "3.5.0", "{health}");

    let r = ok(maintenance(&cluster, enable));
    assert_eq!(r["changed"], false, "the same downgrade again: {r}");
    let r = maintenance(
        &cluster,
        json!({"state": "downgrade_enabled", "downgrade_version": "3.4"}),
    );
    assert_eq!(r["failed"], true, "{r}");
    assert!(r["msg"].as_str().unwrap().contains("in progress"), "{r}");

    let r = ok(maintenance(
        &cluster,
        json!({"state": "downgrade_cancelled", "_ansible_check_mode": true}),
    ));
    assert_eq!(r["changed"], true, "{r}");
    let r = ok(maintenance(
        &cluster,
        json!({"state": "downgrade_cancelled"}),
    ));
    assert_eq!(r["changed"], true, "{r}");
    // every member runs 3.6: once the downgrade is gone, the leader raises the version again
    wait_cluster_version(&cluster, "3.6.0");
    let r = ok(maintenance(
        &cluster,
        json!({"state": "downgrade_cancelled"}),
    ));
    assert_eq!(r["changed"], false, "{r}");
}
