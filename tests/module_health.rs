//! etcd_health against real etcd clusters (the version under test). Every claim of the module is
//! checked against what etcdctl and etcd's /version endpoint see.

use harness::{run_module, Cluster};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

fn health(cluster: &Cluster, extra: Value) -> Value {
    let mut args = json!({ "endpoints": cluster.endpoints_csv() });
    args.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    run_module("etcd_health", &args).checked()
}

fn member<'a>(result: &'a Value, name: &str) -> &'a Value {
    result["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("member {name} not in {result}"))
}

/// What member `client_url`'s `/version` endpoint says (`etcdserver`,
/// `etcdcluster` and, from etcd 3.6 on, `storage`), read with curl.
fn version_endpoint(client_url: &str) -> Option<Value> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", &format!("{client_url}/version")])
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

/// Waits until every member's /version shows a decided cluster version and,
/// where there is one, a storage version of the server's own series (etcd
/// 3.6 starts at storage 3.5.0 and moves it up a few seconds later); returns
/// each member's /version by client URL.
fn settled_versions(cluster: &Cluster) -> BTreeMap<String, Value> {
    let (major, minor) = harness::etcd_under_test().minor;
    let own = format!("{major}.{minor}.0");
    harness::poll_until(harness::DEFAULT_TIMEOUT, || {
        let mut seen = BTreeMap::new();
        for url in cluster.endpoints() {
            let v = version_endpoint(&url)?;
            let decided = v["etcdcluster"] == own.as_str();
            let storage_ok = v.get("storage").is_none_or(|s| s == own.as_str());
            if !(decided && storage_ok) {
                return None;
            }
            seen.insert(url, v);
        }
        Some(seen)
    })
    .unwrap_or_else(|| {
        let now: Vec<Option<Value>> = cluster
            .endpoints()
            .iter()
            .map(|u| version_endpoint(u))
            .collect();
        panic!("cluster and storage versions never settled at {own}: {now:?}")
    })
}

#[test]
fn healthy_cluster_reports_every_member_and_the_leader() {
    let cluster = Cluster::start3();
    let settled = settled_versions(&cluster);
    let result = health(&cluster, json!({}));
    assert_eq!(result["healthy"], true, "{result}");
    assert_eq!(result["failed"], false);
    assert_eq!(result["changed"], false);

    let listed = cluster.member_list();
    let members = result["members"].as_array().unwrap();
    assert_eq!(members.len(), listed.len());
    for info in &listed {
        let m = member(&result, &info.name);
        assert_eq!(m["id"], info.id_hex.as_str(), "ids as etcdctl prints them");
        assert_eq!(m["healthy"], true);
        // The server's own version (`etcd --version` of the binary under
        // test), and the storage version as the member's /version says
        // (etcd 3.6 and later; absent before).
        let under_test = harness::etcd_under_test();
        assert_eq!(m["version"], under_test.version.as_str(), "{m}");
        let seen = &settled[&info.client_urls[0]];
        assert_eq!(
            m["storage_version"], seen["storage"],
            "{m} vs /version {seen}"
        );
        if harness::etcd_at_least(3, 6) {
            let (major, minor) = under_test.minor;
            assert_eq!(m["storage_version"], format!("{major}.{minor}.0"), "{m}");
        } else {
            assert_eq!(m["storage_version"], Value::Null, "{m}");
        }
        assert!(m["db_size"].as_i64().unwrap() > 0);
        assert!(m["raft_index"].as_u64().unwrap() > 0);
        assert_eq!(m["is_learner"], false);
    }
    // The cluster version the members report on /version.
    for seen in settled.values() {
        assert_eq!(result["cluster_version"], seen["etcdcluster"], "{result}");
    }
    let (major, minor) = harness::etcd_under_test().minor;
    assert_eq!(
        result["cluster_version"],
        format!("{major}.{minor}.0"),
        "{result}"
    );
    let leader = cluster
        .member(cluster.wait_leader(Duration::from_secs(60)))
        .name
        .clone();
    assert_eq!(result["leader"]["name"], leader.as_str());
    let leaders: Vec<&Value> = members.iter().filter(|m| m["is_leader"] == true).collect();
    assert_eq!(leaders.len(), 1);
    assert_eq!(leaders[0]["name"], leader.as_str());

    let msg = result["msg"].as_str().unwrap();
    for info in &listed {
        let url = &info.client_urls[0];
        let line = format!(
            "member {} is healthy: got healthy result from {url}",
            info.id_hex
        );
        assert!(msg.contains(&line), "missing {line:?} in {msg}");
    }
    assert!(msg.ends_with("cluster is healthy"), "{msg}");
}

#[test]
fn a_killed_member_makes_the_cluster_unhealthy_and_is_named() {
    let mut cluster = Cluster::start3();
    let dead = cluster.member(2).name.clone();
    let dead_url = cluster.member(2).client_url();
    cluster.kill(2);
    // if it led, the survivors need a new leader before they answer as healthy
    cluster.wait_healthy(Duration::from_secs(60));

    let result = health(&cluster, json!({}));
    assert_eq!(result["healthy"], false, "{result}");
    assert_eq!(result["failed"], true);
    let m = member(&result, &dead);
    assert_eq!(m["healthy"], false);
    // Usually "connection refused"; on a loaded machine the dial may time out first.
    let error = m["error"].as_str().unwrap();
    assert!(
        error.contains("onnection refused")
            || error.contains("timed out")
            || error.contains("Timeout"),
        "{m}"
    );
    for i in 0..2 {
        assert_eq!(member(&result, &cluster.member(i).name)["healthy"], true);
    }
    let msg = result["msg"].as_str().unwrap();
    assert!(
        msg.contains(&format!("is unreachable: [{dead_url}]")),
        "{msg}"
    );
    assert!(msg.ends_with("cluster is unhealthy"), "{msg}");

    // Reported, not failed, when the caller only wants the facts.
    let result = health(&cluster, json!({"fail_on_unhealthy": "no"}));
    assert_eq!(result["failed"], false);
    assert_eq!(result["healthy"], false);
}

#[test]
fn a_frozen_member_does_not_hang_the_module() {
    let cluster = Cluster::start3();
    let frozen = cluster.member(1).name.clone();
    cluster.freeze(1);
    let started = Instant::now();
    let result = health(
        &cluster,
        json!({"dial_timeout": 1, "command_timeout": "2s"}),
    );
    let took = started.elapsed();
    cluster.thaw(1);
    // Bounded by dial + command timeout per member check, all in parallel;
    // the margin is for a loaded machine, not a performance target.
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert_eq!(result["healthy"], false);
    assert_eq!(member(&result, &frozen)["healthy"], false);
    assert!(
        member(&result, &frozen)["error"]
            .as_str()
            .unwrap()
            .contains("timed out")
            || member(&result, &frozen)["error"]
                .as_str()
                .unwrap()
                .contains("Timeout")
    );
}

#[test]
fn wait_timeout_waits_for_a_restarted_member() {
    let mut cluster = Cluster::start3();
    cluster.kill(0);
    let endpoints = cluster.endpoints_csv();
    let waiting = std::thread::spawn(move || {
        run_module(
            "etcd_health",
            &json!({"endpoints": endpoints, "wait_timeout": 120}),
        )
    });
    cluster.start_member(0);
    let run = waiting.join().unwrap();
    assert_eq!(run.result["healthy"], true, "{}", run.result);
    assert_eq!(run.result["failed"], false);
    assert!(run.result["attempts"].as_u64().unwrap() >= 1);
    cluster.wait_healthy(Duration::from_secs(60));
}

#[test]
fn check_mode_runs_the_same_read_only_checks() {
    let cluster = Cluster::start3();
    let result = health(&cluster, json!({"_ansible_check_mode": true}));
    assert_eq!(result["healthy"], true);
    assert_eq!(result["changed"], false);
}

#[test]
fn unreachable_endpoints_give_a_clear_error() {
    // Nothing listens on this slot-0 port: the test never starts a server there.
    let run = run_module(
        "etcd_health",
        &json!({"endpoints": ["http://127.0.0.1:1"], "dial_timeout": 1}),
    );
    assert_eq!(run.result["failed"], true);
    let msg = run.result["msg"].as_str().unwrap();
    assert!(
        msg.contains("no etcd endpoint answered (http://127.0.0.1:1)"),
        "{msg}"
    );
    assert!(!run.status.success());
}

#[test]
fn tls_cluster_with_client_certificates() {
    let cluster = Cluster::start_tls3();
    let tls = cluster.tls().unwrap();
    let result = health(
        &cluster,
        json!({
            "ca_cert": tls.ca_cert,
            "client_cert": tls.client_cert,
            "client_key": tls.client_key,
        }),
    );
    assert_eq!(result["healthy"], true, "{result}");
    assert!(result["members"][0]["client_url"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    // the cluster version is read from /version over the same TLS files
    let (major, minor) = harness::etcd_under_test().minor;
    assert_eq!(
        result["cluster_version"],
        format!("{major}.{minor}.0"),
        "{result}"
    );

    // The endpoints given without scheme become https when TLS is set.
    let bare: Vec<String> = cluster
        .endpoints()
        .iter()
        .map(|e| e.trim_start_matches("https://").to_string())
        .collect();
    let result = health(
        &cluster,
        json!({
            "endpoints": bare,
            "ca_cert": tls.ca_cert,
            "client_cert": tls.client_cert,
            "client_key": tls.client_key,
        }),
    );
    assert_eq!(result["healthy"], true, "{result}");

    // A CA that did not sign the servers' certificates: a clear refusal.
    let result = health(
        &cluster,
        json!({
            "ca_cert": tls.client_cert,
            "client_cert": tls.client_cert,
            "client_key": tls.client_key,
        }),
    );
    assert_eq!(result["failed"], true);
    let msg = result["msg"].as_str().unwrap();
    assert!(msg.contains("certificate"), "{msg}");

    // A key file that is not PEM: named before any connection is tried.
    let result = health(
        &cluster,
        json!({"ca_cert": "/etc/hostname", "client_cert": tls.client_cert, "client_key": tls.client_key}),
    );
    assert_eq!(result["msg"], "ca_cert: /etc/hostname is not a PEM file");
}

#[test]
fn auth_permission_denied_still_counts_as_healthy_and_the_password_is_masked() {
    let cluster = Cluster::start3();
    for args in [
        &["user", "add", "root", "--new-user-password", "rootpw"][..],
        &["user", "grant-role", "root", "root"],
        &[
            "user",
            "add",
            "reader",
            "--new-user-password",
            "s3cr3t-reader",
        ],
        &["auth", "enable"],
    ] {
        cluster.etcdctl_ok(args);
    }
    let result = health(
        &cluster,
        json!({"user": "reader", "password": "s3cr3t-reader"}),
    );
    assert_eq!(result["healthy"], true, "{result}");
    assert!(!result.to_string().contains("s3cr3t-reader"));
    assert_eq!(
        result["invocation"]["module_args"]["password"],
        "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    );

    let result = health(&cluster, json!({"user": "reader", "password": "wrong"}));
    assert_eq!(result["failed"], true);
    let msg = result["msg"].as_str().unwrap();
    assert!(msg.contains("authentication failed"), "{msg}");
}

#[test]
fn tls_file_problems_are_named_before_dialing() {
    // Each problem used to reach rustls and come back as "transport error:
    // transport error". Now the files are checked before any dial and the
    // message names the file and the problem.
    let cluster = Cluster::start_tls3();
    let tls = cluster.tls().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let garbage_cert = dir.path().join("garbage-cert.pem");
    std::fs::write(
        &garbage_cert,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let bad_base64 = dir.path().join("bad-base64.pem");
    std::fs::write(
        &bad_base64,
        "-----BEGIN CERTIFICATE-----\n%%%% not base64 %%%%\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let other_key = &tls.members[0].1;
    let p = |p: &std::path::Path| p.display().to_string();
    let cases = [
        (
            json!({"ca_cert": missing, "client_cert": tls.client_cert, "client_key": tls.client_key}),
            format!(
                "ca_cert: cannot read {}: No such file or directory (os error 2)",
                p(&missing)
            ),
        ),
        (
            json!({"ca_cert": tls.ca_key, "client_cert": tls.client_cert, "client_key": tls.client_key}),
            format!(
                "ca_cert: {} holds no certificate (it holds a private key)",
                p(&tls.ca_key)
            ),
        ),
        (
            json!({"ca_cert": garbage_cert, "client_cert": tls.client_cert, "client_key": tls.client_key}),
            format!("ca_cert: certificate 1 in {} cannot be used as a CA", p(&garbage_cert)),
        ),
        (
            json!({"ca_cert": bad_base64, "client_cert": tls.client_cert, "client_key": tls.client_key}),
            format!("ca_cert: {} is not a valid PEM file", p(&bad_base64)),
        ),
        (
            json!({"ca_cert": tls.ca_cert, "client_cert": tls.client_key, "client_key": tls.client_cert}),
            format!(
                "client_cert and client_key are swapped: client_cert {} holds a private key and client_key {} holds a certificate",
                p(&tls.client_key),
                p(&tls.client_cert)
            ),
        ),
        (
            json!({"ca_cert": tls.ca_cert, "client_cert": tls.client_cert, "client_key": other_key}),
            format!(
                "client_key: {} does not match the certificate in client_cert {}",
                p(other_key),
                p(&tls.client_cert)
            ),
        ),
        (
            json!({"ca_cert": tls.ca_cert, "client_cert": tls.client_key, "client_key": tls.client_key}),
            format!(
                "client_cert: {} holds no certificate (it holds a private key)",
                p(&tls.client_key)
            ),
        ),
        (
            json!({"ca_cert": tls.ca_cert, "client_cert": tls.client_cert, "client_key": tls.client_cert}),
            format!(
                "client_key: {} holds no private key (it holds a certificate)",
                p(&tls.client_cert)
            ),
        ),
        (
            json!({"ca_cert": tls.ca_cert, "client_cert": tls.client_cert, "client_key": missing}),
            format!(
                "client_key: cannot read {}: No such file or directory (os error 2)",
                p(&missing)
            ),
        ),
    ];
    for (args, want) in cases {
        let result = health(&cluster, args.clone());
        assert_eq!(result["failed"], true, "{args}: {result}");
        let msg = result["msg"].as_str().unwrap();
        assert!(msg.starts_with(&want), "{args}:\n got: {msg}\nwant: {want}");
        assert!(!msg.contains("transport error"), "{msg}");
    }

    // The right files still work against the same cluster, so the checks
    // refuse only what is wrong.
    let result = health(
        &cluster,
        json!({"ca_cert": tls.ca_cert, "client_cert": tls.client_cert, "client_key": tls.client_key}),
    );
    assert_eq!(result["healthy"], true, "{result}");
}

#[test]
fn secrets_in_connection_options_never_reach_either_engines_output() {
    // The issue: `password: 12345678` (a number) came back as "argument
    // 'password' is invalid: invalid type: integer 12345678", printed by
    // ansible-playbook and etcd-agent alike; `user: "root:pass"` showed the
    // password in invocation.module_args.user. Nothing listens on port 1.
    let sshd = harness::Sshd::start();
    let ansible = harness::Ansible::new();
    let hosts = ansible.write_file(
        "hosts.ini",
        &format!("target {}\n", sshd.inventory_host_vars()),
    );
    let playbook = ansible.write_file(
        "secrets.yml",
        r#"
- hosts: target
  gather_facts: false
  tasks:
    - name: numeric password
      etcd_health:
        endpoints: "127.0.0.1:1"
        dial_timeout: 0.5
        user: reader
        password: 12345678
      ignore_errors: true
    # ansible-playbook shows the two lines above a failed task's name:
    # these comments keep the secrets of the playbook source out of that.
    #
    - name: user with password
      etcd_health:
        endpoints: "127.0.0.1:1"
        dial_timeout: 0.5
        user: "root:Pw-in-user-77"
      ignore_errors: true
    #
    #
    - name: password of the wrong type
      etcd_health:
        endpoints: "127.0.0.1:1"
        password: ["Pw-in-list-88"]
      ignore_errors: true
"#,
    );
    for engine in [
        harness::Engine::AnsiblePlaybook,
        harness::Engine::agent_required(),
    ] {
        let out = engine.playbook(&ansible, &hosts, &playbook, &["-v"]);
        let everything = format!("{}\n{}\n{:?}", out.stdout, out.stderr, out.json);
        for secret in ["12345678", "Pw-in-user-77", "Pw-in-list-88"] {
            assert!(
                !everything.contains(secret),
                "{}: {secret} shown:\n{}",
                engine.name(),
                out.describe()
            );
        }
        let numeric = out.result("numeric password", "target").unwrap();
        let msg = numeric["msg"].as_str().unwrap();
        assert!(
            msg.starts_with("no etcd endpoint answered"),
            "{}: the number is accepted as Ansible's str type does: {msg}",
            engine.name()
        );
        assert_eq!(
            numeric["invocation"]["module_args"]["password"],
            "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
        );
        let split = out.result("user with password", "target").unwrap();
        assert_eq!(split["invocation"]["module_args"]["user"], "root");
        assert_eq!(
            split["invocation"]["module_args"]["password"],
            "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
        );
        let wrong = out.result("password of the wrong type", "target").unwrap();
        assert!(
            wrong["msg"]
                .as_str()
                .unwrap()
                .starts_with("argument 'password' is of type list"),
            "{}: {wrong}",
            engine.name()
        );
    }
}
