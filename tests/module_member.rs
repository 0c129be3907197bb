//! etcd_member against real etcd 3.4 clusters. Every change the module
//! reports is checked with etcdctl, independently of the module's answer.

use harness::{
    poll_until, run_module, wait_until, Ansible, Cluster, ClusterOptions, MemberInfo, MemberStart,
    Sshd,
};
use serde_json::{json, Value};
use std::time::Duration;

/// Generous deadline for anything a loaded 2-core machine should do soon.
const SOON: Duration = Duration::from_secs(90);

/// Runs etcd_member against all of the cluster's endpoints with `args`;
/// checks the exit code follows `failed` and stderr stays empty.
fn member(cluster: &Cluster, args: Value) -> Value {
    let mut full = json!({ "endpoints": cluster.endpoints_csv() });
    if let Some(tls) = cluster.tls() {
        full["ca_cert"] = json!(tls.ca_cert);
        full["client_cert"] = json!(tls.client_cert);
        full["client_key"] = json!(tls.client_key);
    }
    full.as_object_mut()
        .unwrap()
        .extend(args.as_object().unwrap().clone());
    run_module("etcd_member", &full).checked()
}

/// Asserts a successful run and returns its result.
fn member_ok(cluster: &Cluster, args: Value) -> Value {
    let result = member(cluster, args.clone());
    assert_eq!(
        result["failed"], false,
        "etcd_member {args} failed: {result}"
    );
    result
}

/// `etcdctl member list` through the given members only. The harness's
/// `member_list` asks every live member, and a member that was just removed
/// keeps answering with its stale list until it shuts itself down.
fn members_via(cluster: &Cluster, indices: &[usize]) -> Vec<MemberInfo> {
    let endpoints: Vec<String> = indices
        .iter()
        .map(|&i| cluster.member(i).client_url())
        .collect();
    let mut last = String::new();
    let text = poll_until(SOON, || {
        let out = cluster.etcdctl_at(&endpoints, &["member", "list", "-w", "json"], None);
        if out.status.success() {
            Some(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            None
        }
    })
    .unwrap_or_else(|| panic!("etcdctl member list via {endpoints:?} kept failing: {last}"));
    let v: Value = serde_json::from_str(&text).unwrap();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    v["members"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let id = m["ID"].as_u64().unwrap();
            MemberInfo {
                id,
                id_hex: format!("{id:x}"),
                name: m["name"].as_str().unwrap_or("").into(),
                peer_urls: strings(&m["peerURLs"]),
                client_urls: strings(&m["clientURLs"]),
                is_learner: m["isLearner"].as_bool().unwrap_or(false),
            }
        })
        .collect()
}

/// The member with peer URL `peer`, as etcdctl lists it.
fn by_peer(list: &[MemberInfo], peer: &str) -> Option<MemberInfo> {
    list.iter()
        .find(|m| m.peer_urls.iter().any(|u| u == peer))
        .cloned()
}

/// The leader as the given members' `endpoint status` reports it (member id).
fn leader_id_via(cluster: &Cluster, indices: &[usize]) -> Option<u64> {
    let endpoints: Vec<String> = indices
        .iter()
        .map(|&i| cluster.member(i).client_url())
        .collect();
    let out = cluster.etcdctl_at(&endpoints, &["endpoint", "status", "-w", "json"], None);
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    let leaders: Vec<u64> = v
        .as_array()?
        .iter()
        .filter_map(|s| s.pointer("/Status/leader").and_then(Value::as_u64))
        .collect();
    // Only an answer every member agrees on.
    (leaders.len() == indices.len() && leaders.iter().all(|l| *l == leaders[0] && *l != 0))
        .then(|| leaders[0])
}

/// `endpoint health` of the given members succeeds (polls).
fn wait_healthy_via(cluster: &Cluster, indices: &[usize]) {
    let endpoints: Vec<String> = indices
        .iter()
        .map(|&i| cluster.member(i).client_url())
        .collect();
    wait_until(&format!("members {indices:?} healthy"), SOON, || {
        cluster
            .etcdctl_at(&endpoints, &["endpoint", "health"], None)
            .status
            .success()
            .then_some(())
    });
}

#[test]
fn learner_is_added_then_started_promoted_and_removed() {
    let mut cluster = Cluster::start3();
    let new = cluster.add_member_slot();
    let name = cluster.member(new).name.clone();
    let peer = cluster.member(new).peer_url();
    let old = [0, 1, 2];
    let before = members_via(&cluster, &old);
    let add = json!({"name": name, "peer_urls": [peer], "learner": true});

    // Check mode with diff: says what it would do, changes nothing.
    let mut check = add.clone();
    check["_ansible_check_mode"] = json!(true);
    check["_ansible_diff"] = json!(true);
    let result = member_ok(&cluster, check);
    assert_eq!(result["changed"], true, "{result}");
    assert_eq!(result["action"], "added");
    assert!(result["diff"]["before"]["members"].get(&name).is_none());
    assert_eq!(
        result["diff"]["after"]["members"][&name]["is_learner"], true,
        "{result}"
    );
    assert_eq!(result["members"].as_array().unwrap().len(), 3);
    assert_eq!(members_via(&cluster, &old), before, "check mode changed");

    // The add itself.
    let result = member_ok(&cluster, add.clone());
    assert_eq!(result["changed"], true, "{result}");
    let listed = by_peer(&members_via(&cluster, &old), &peer).expect("member added");
    assert!(listed.is_learner);
    assert_eq!(listed.name, "", "not started yet");
    assert_eq!(result["id"], listed.id_hex.as_str());
    assert_eq!(
        result["msg"],
        format!(
            "Member {} added to cluster {} as a learner",
            listed.id_hex,
            result["cluster_id"].as_str().unwrap()
        )
    );
    let reported = result["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == listed.id_hex.as_str())
        .unwrap_or_else(|| panic!("new member not in {result}"));
    assert_eq!(reported["started"], false);
    assert_eq!(reported["is_learner"], true);

    // What `etcdctl member add` prints: every member in member-list order,
    // the requested name for the new one.
    let expected_cluster: Vec<String> = members_via(&cluster, &old)
        .iter()
        .map(|m| {
            let n = if m.id == listed.id { &name } else { &m.name };
            format!("{n}={}", m.peer_urls[0])
        })
        .collect();
    let env = &result["join_env"];
    assert_eq!(env["ETCD_NAME"], name.as_str());
    assert_eq!(env["ETCD_INITIAL_CLUSTER"], expected_cluster.join(","));
    assert_eq!(env["ETCD_INITIAL_CLUSTER_STATE"], "existing");
    assert_eq!(env["ETCD_INITIAL_ADVERTISE_PEER_URLS"], peer.as_str());
    assert_eq!(result["ETCD_INITIAL_CLUSTER"], env["ETCD_INITIAL_CLUSTER"]);

    // Again: the unstarted member counts as present, same answer.
    let again = member_ok(&cluster, add.clone());
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(again["id"], listed.id_hex.as_str());
    assert_eq!(again["join_env"], result["join_env"]);
    assert_eq!(members_via(&cluster, &old).len(), 4);

    // Promotion cannot succeed before the learner runs: a clear failure.
    let early = member(
        &cluster,
        json!({"name": name, "peer_urls": [peer], "state": "promoted", "wait_timeout": 2}),
    );
    assert_eq!(early["failed"], true, "{early}");
    let msg = early["msg"].as_str().unwrap();
    assert!(msg.contains("in sync with leader"), "{msg}");
    assert!(msg.contains("has not started"), "{msg}");
    assert!(
        by_peer(&members_via(&cluster, &old), &peer)
            .unwrap()
            .is_learner
    );

    // Start it as the result says, then promote (retried until caught up).
    let initial_cluster = env["ETCD_INITIAL_CLUSTER"].as_str().unwrap().to_string();
    cluster.start_member_with(new, MemberStart::existing(initial_cluster));
    let result = member_ok(
        &cluster,
        json!({"name": name, "state": "promoted", "wait_timeout": 120}),
    );
    assert_eq!(result["changed"], true, "{result}");
    assert_eq!(result["action"], "promoted");
    let listed = by_peer(&members_via(&cluster, &old), &peer).unwrap();
    assert!(!listed.is_learner, "etcdctl still lists a learner");
    assert_eq!(listed.name, name);
    let again = member_ok(&cluster, json!({"name": name, "state": "promoted"}));
    assert_eq!(again["changed"], false, "{again}");
    wait_healthy_via(&cluster, &[0, 1, 2, new]);

    // Remove by id, as etcdctl prints it; check mode first.
    let remove = json!({"id": listed.id_hex, "state": "absent"});
    let mut check = remove.clone();
    check["_ansible_check_mode"] = json!(true);
    let result = member_ok(&cluster, check);
    assert_eq!(result["changed"], true, "{result}");
    assert_eq!(result["action"], "removed");
    assert!(
        by_peer(&members_via(&cluster, &old), &peer).is_some(),
        "check mode removed it"
    );
    let result = member_ok(&cluster, remove.clone());
    assert_eq!(result["changed"], true, "{result}");
    assert_eq!(result["member"], Value::Null);
    assert!(result["members"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["id"] != listed.id_hex.as_str()));
    let after = members_via(&cluster, &old);
    assert!(by_peer(&after, &peer).is_none(), "still listed: {after:?}");
    assert_eq!(after.len(), 3);
    let again = member_ok(&cluster, remove);
    assert_eq!(again["changed"], false, "{again}");
    wait_healthy_via(&cluster, &old);
}

#[test]
fn voter_is_added_updated_made_leader_and_removed_while_leading() {
    let mut cluster = Cluster::start3();
    let new = cluster.add_member_slot();
    let name = cluster.member(new).name.clone();
    let peer = cluster.member(new).peer_url();
    let old = [0, 1, 2];

    let result = member_ok(&cluster, json!({"name": name, "peer_urls": peer}));
    assert_eq!(result["changed"], true, "{result}");
    let listed = by_peer(&members_via(&cluster, &old), &peer).expect("added");
    assert!(!listed.is_learner);
    let initial_cluster = result["ETCD_INITIAL_CLUSTER"].as_str().unwrap().to_string();
    cluster.start_member_with(new, MemberStart::existing(initial_cluster));
    wait_healthy_via(&cluster, &[0, 1, 2, new]);
    wait_until("the new member to publish its name", SOON, || {
        (by_peer(&members_via(&cluster, &old), &peer)?.name == name).then_some(())
    });

    // Update the peer URLs of the named member: add a second URL (nobody
    // listens there; peers still reach it on the first), then go back.
    let extra = format!("http://{}:2390", cluster.member(new).ip);
    let two = json!({"name": name, "peer_urls": [peer, extra], "_ansible_diff": true});
    let result = member_ok(&cluster, two.clone());
    assert_eq!(result["changed"], true, "{result}");
    assert_eq!(result["action"], "updated");
    assert_eq!(
        result["diff"]["before"]["members"][&name]["peer_urls"],
        json!([peer])
    );
    let mut urls = by_peer(&members_via(&cluster, &old), &peer)
        .unwrap()
        .peer_urls;
    urls.sort();
    let mut want = vec![peer.clone(), extra.clone()];
    want.sort();
    assert_eq!(urls, want, "etcdctl sees the update");
    assert_eq!(member_ok(&cluster, two)["changed"], false);
    let one = json!({"name": name, "peer_urls": [peer]});
    assert_eq!(member_ok(&cluster, one.clone())["changed"], true);
    assert_eq!(
        by_peer(&members_via(&cluster, &old), &peer)
            .unwrap()
            .peer_urls,
        vec![peer.clone()]
    );
    assert_eq!(member_ok(&cluster, one)["changed"], false);

    // Leadership to the new member, as before restarting the old leader.
    let all = [0, 1, 2, new];
    let lead = json!({"name": name, "state": "leader"});
    let mut leader_before = wait_until("one leader", SOON, || leader_id_via(&cluster, &all));
    if leader_before == listed.id {
        // An election on a loaded machine made it leader already: hand
        // leadership to m0 so there is something to move.
        let m0 = cluster.member(0).name.clone();
        member_ok(&cluster, json!({"name": m0, "state": "leader"}));
        leader_before = wait_until("m0 to lead", SOON, || {
            leader_id_via(&cluster, &all).filter(|l| *l != listed.id)
        });
    }
    let mut check = lead.clone();
    check["_ansible_check_mode"] = json!(true);
    check["_ansible_diff"] = json!(true);
    let result = member_ok(&cluster, check);
    assert_eq!(result["changed"], true, "{result}");
    assert_eq!(
        result["diff"]["after"]["leader"],
        format!("{name} ({})", listed.id_hex)
    );
    assert_eq!(
        leader_id_via(&cluster, &all),
        Some(leader_before),
        "check mode moved it"
    );
    let result = member_ok(&cluster, lead.clone());
    assert_eq!(result["changed"], true, "{result}");
    assert_eq!(result["leader"]["name"], name.as_str(), "{result}");
    wait_until("etcdctl to see the new leader", SOON, || {
        (leader_id_via(&cluster, &all)? == listed.id).then_some(())
    });
    let again = member_ok(&cluster, lead);
    assert_eq!(again["changed"], false, "{again}");

    // Removing the leader: leadership moves to a healthy voter first.
    let remove = json!({"name": name, "state": "absent"});
    let result = member_ok(&cluster, remove.clone());
    assert_eq!(result["changed"], true, "{result}");
    let msg = result["msg"].as_str().unwrap();
    assert!(msg.starts_with("Leadership moved from"), "{msg}");
    assert_ne!(result["leader"]["name"], name.as_str(), "{result}");
    assert!(by_peer(&members_via(&cluster, &old), &peer).is_none());
    wait_healthy_via(&cluster, &old);
    let leader = wait_until("a leader among the remaining members", SOON, || {
        leader_id_via(&cluster, &old)
    });
    assert_ne!(leader, listed.id);
    assert!(members_via(&cluster, &old).iter().any(|m| m.id == leader));
    assert_eq!(member_ok(&cluster, remove)["changed"], false);
    let put = cluster.etcdctl_at(&[cluster.member(0).client_url()], &["put", "k", "v"], None);
    assert!(
        put.status.success(),
        "the cluster still takes writes: {put:?}"
    );
}

/// The member list member `i` holds locally, from its peer endpoint
/// `/members` (read with curl and the cluster's client certificate).
/// Unlike `etcdctl member list` it needs no quorum: etcd 3.5 and later
/// serve `member list` linearizably, so it fails on a member alone.
fn local_members(cluster: &Cluster, i: usize) -> Vec<Value> {
    let url = format!("{}/members", cluster.member(i).peer_url());
    let mut cmd = std::process::Command::new("curl");
    // HTTP/1.1: the peer listener serves /members over it (curl would
    // otherwise negotiate HTTP/2 over TLS).
    cmd.args(["-sS", "--http1.1", "--max-time", "10"]);
    if let Some(tls) = cluster.tls() {
        cmd.arg("--cacert").arg(&tls.ca_cert);
        cmd.arg("--cert").arg(&tls.client_cert);
        cmd.arg("--key").arg(&tls.client_key);
    }
    let out = cmd.arg(&url).output().expect("run curl");
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_else(|| {
            panic!(
                "{url}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

#[test]
fn removal_that_would_lose_quorum_is_refused_but_a_dead_member_can_go() {
    // TLS with client certificates, as in production.
    let mut cluster = Cluster::start_tls3();
    let names: Vec<String> = (0..3).map(|i| cluster.member(i).name.clone()).collect();
    cluster.kill(1);
    cluster.kill(2);

    for check_mode in [true, false] {
        let result = member(
            &cluster,
            json!({"name": names[1], "state": "absent", "_ansible_check_mode": check_mode}),
        );
        assert_eq!(result["failed"], true, "{result}");
        assert_eq!(result["changed"], false);
        let msg = result["msg"].as_str().unwrap();
        assert!(msg.contains("without quorum"), "{msg}");
        // m0 alone may or may not still follow a leader: 0 or 1 healthy.
        assert!(
            msg.contains("of 2 voting members would be healthy"),
            "{msg}"
        );
        assert!(msg.contains(&format!("unhealthy: {}", names[2])), "{msg}");
        assert!(msg.contains("force=true"), "{msg}");
    }
    assert_eq!(local_members(&cluster, 0).len(), 3, "nothing removed");

    // Forced, without quorum: m0 alone cannot commit the removal. The
    // failure says truthfully what happened to the attempts (a timeout is
    // not "refused"), and nothing is removed.
    let result = member(
        &cluster,
        json!({"name": names[2], "state": "absent", "force": true, "wait_timeout": 15}),
    );
    eprintln!("forced removal without quorum: {result}");
    assert_eq!(result["failed"], true, "{result}");
    let msg = result["msg"].as_str().unwrap();
    // The last attempt's own error first, then the account of all of them.
    let timed_out = ["no answer within", "Timeout expired", "timed out after"]
        .iter()
        .any(|t| msg.contains(t));
    if timed_out {
        assert!(!msg.contains("still refused"), "{msg}");
        assert!(
            msg.contains("without an answer in time") || msg.contains("got an answer in time"),
            "{msg}"
        );
    }
    assert!(result["attempts"].as_u64().unwrap() >= 1, "{result}");
    assert_eq!(local_members(&cluster, 0).len(), 3, "nothing removed");

    // With m1 back, the dead m2 may go: 2 of 2 remaining voters are healthy.
    // The forced attempt's proposal may still sit in m0's log: once quorum
    // is back etcd commits it (that is why the module said the change was
    // not confirmed), and then m2 is already gone and there is nothing to do.
    cluster.start_member(1);
    wait_healthy_via(&cluster, &[0, 1]);
    let result = member_ok(
        &cluster,
        json!({"name": names[2], "state": "absent", "wait_timeout": 120}),
    );
    let already_gone = result["changed"] == false
        && result["msg"]
            .as_str()
            .is_some_and(|m| m.contains("nothing to remove"));
    assert!(result["changed"] == true || already_gone, "{result}");
    let after = members_via(&cluster, &[0, 1]);
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(after.iter().all(|m| m.name != names[2]));
    wait_healthy_via(&cluster, &[0, 1]);
}

#[test]
fn bad_arguments_fail_clearly_before_contacting_etcd() {
    // Nothing listens on this slot-0 port; a run that got that far would
    // say "no etcd endpoint answered" instead.
    let cases = [
        (
            json!({"name": "x"}),
            "state is present but all of the following are missing: peer_urls",
        ),
        (
            json!({"state": "gone", "name": "x"}),
            "value of state must be one of: present, absent, promoted, leader, got: gone",
        ),
        (
            json!({"state": "absent"}),
            "state is absent but any of the following are missing: name, id, peer_urls",
        ),
        (
            json!({"state": "absent", "id": "zz"}),
            "argument 'id' is invalid",
        ),
        (
            json!({"name": "x", "peer_urls": "127.0.0.1:2380"}),
            "is not an http:// or https:// URL",
        ),
        (
            json!({"name": "x", "state": "leader", "force": true}),
            "force is only used with state=absent",
        ),
        (
            json!({"name": "x", "peer_urls": "http://127.0.0.1:2380", "id": "1"}),
            "id cannot be used with state=present",
        ),
        (
            json!({"nmae": "x"}),
            "Unsupported parameters for (etcd_member) module: nmae",
        ),
    ];
    for (mut args, expected) in cases {
        args["endpoints"] = json!("http://127.0.0.1:1");
        let run = run_module("etcd_member", &args);
        assert_eq!(run.result["failed"], true, "{args}: {}", run.result);
        assert_eq!(run.result["changed"], false);
        assert!(!run.status.success());
        let msg = run.result["msg"].as_str().unwrap();
        assert!(msg.contains(expected), "{args}: {msg:?} lacks {expected:?}");
    }
}

#[test]
fn under_ansible_playbook_over_ssh() {
    let mut cluster = Cluster::start3();
    let new = cluster.add_member_slot();
    let peer = cluster.member(new).peer_url();
    let sshd = Sshd::start();
    let ansible = Ansible::new();
    let m0 = cluster.member(0);
    let hosts = ansible.write_file(
        "hosts.ini",
        &format!(
            "[etcd]\n{} ip={} {}\n",
            m0.name,
            m0.ip,
            sshd.inventory_host_vars()
        ),
    );
    let playbook = ansible.write_file(
        "member.yml",
        &format!(
            r#"
- hosts: etcd
  gather_facts: false
  vars:
    new_peer: "{peer}"
  tasks:
    - name: would add
      etcd_member:
        endpoints: "http://{{{{ ip }}}}:2379"
        name: newbie
        peer_urls: "{{{{ new_peer }}}}"
        learner: true
      check_mode: true
      register: would
    - name: add
      etcd_member:
        endpoints: "http://{{{{ ip }}}}:2379"
        name: newbie
        peer_urls: "{{{{ new_peer }}}}"
        learner: true
      register: added
    - name: add again
      etcd_member:
        endpoints: "http://{{{{ ip }}}}:2379"
        name: newbie
        peer_urls: "{{{{ new_peer }}}}"
        learner: true
      register: again
    - name: assert
      assert:
        that:
          - would is changed
          - would.members | length == 3
          - added is changed
          - added.members | length == 4
          - added.join_env.ETCD_INITIAL_CLUSTER_STATE == 'existing'
          - ('newbie=' ~ new_peer) in added.join_env.ETCD_INITIAL_CLUSTER
          - again is not changed
          - again.id == added.id
    - name: remove
      etcd_member:
        endpoints: "http://{{{{ ip }}}}:2379"
        peer_urls: "{{{{ new_peer }}}}"
        state: absent
      register: removed
    - name: assert removed
      assert:
        that:
          - removed is changed
          - removed.members | length == 3
"#
        ),
    );
    let out = ansible.playbook(&hosts, &playbook, &["--diff"]);
    out.assert_success();
    let added = out.result_ok("add", &m0.name);
    assert_eq!(added["changed"], true);
    let stats = out.stats(&m0.name).unwrap();
    assert_eq!(stats["failures"], 0);
    assert_eq!(stats["changed"], 3, "would add, add and remove: {stats}");
    let after = members_via(&cluster, &[0, 1, 2]);
    assert_eq!(after.len(), 3);
    assert!(by_peer(&after, &peer).is_none());
}

/// Moves leadership to member `i` with etcdctl (independently of the
/// module) and waits until every given member follows it.
fn make_leader(cluster: &Cluster, i: usize, indices: &[usize]) -> u64 {
    let endpoints: Vec<String> = indices
        .iter()
        .map(|&j| cluster.member(j).client_url())
        .collect();
    let list = members_via(cluster, indices);
    let id = by_peer(&list, &cluster.member(i).peer_url()).unwrap().id;
    wait_until(&format!("m{i} leads"), SOON, || {
        if leader_id_via(cluster, indices) == Some(id) {
            return Some(());
        }
        cluster.etcdctl_at(&endpoints, &["move-leader", &format!("{id:x}")], None);
        None
    });
    id
}

#[test]
fn removed_leader_hands_over_to_a_member_that_stays_never_to_one_leaving() {
    let cluster = Cluster::start(ClusterOptions {
        members: 5,
        ..Default::default()
    });
    let all = [0, 1, 2, 3, 4];
    wait_healthy_via(&cluster, &all);
    let list = members_via(&cluster, &all);
    let id = |i: usize| by_peer(&list, &cluster.member(i).peer_url()).unwrap().id;
    let staying = [id(0), id(1), id(2)];
    let m3 = cluster.member(3).name.clone();
    let m4_peer = cluster.member(4).peer_url();
    // Shrinking 5 -> 3 removes m3 then m4; m3 leads. Every healthy member
    // answers its probe; only `avoid` keeps leadership off m4.
    let m3_id = make_leader(&cluster, 3, &all);

    // Nobody outside avoid to take over: refused, nothing changed.
    let everyone: Vec<String> = (0..5).map(|i| cluster.member(i).name.clone()).collect();
    let result = member(
        &cluster,
        json!({"state": "absent", "name": m3, "avoid": everyone}),
    );
    assert_eq!(result["failed"], true, "{result}");
    assert_eq!(result["changed"], false, "{result}");
    assert!(
        result["msg"]
            .as_str()
            .unwrap()
            .contains("can take over leadership"),
        "{result}"
    );
    assert_eq!(members_via(&cluster, &all).len(), 5);
    assert_eq!(leader_id_via(&cluster, &all), Some(m3_id));

    // Check mode names a member that stays and changes nothing.
    let result = member_ok(
        &cluster,
        json!({"state": "absent", "name": m3, "avoid": [m3, m4_peer], "_ansible_check_mode": true}),
    );
    assert_eq!(result["changed"], true, "{result}");
    let msg = result["msg"].as_str().unwrap();
    assert!(msg.contains("would move leadership from m3"), "{msg}");
    assert!(
        !msg.contains(&format!("to {}", cluster.member(4).name)),
        "{msg}"
    );
    assert_eq!(members_via(&cluster, &all).len(), 5);
    assert_eq!(leader_id_via(&cluster, &all), Some(m3_id));

    let result = member_ok(
        &cluster,
        json!({"state": "absent", "name": m3, "avoid": [m3, m4_peer], "wait_timeout": 120}),
    );
    assert_eq!(result["changed"], true, "{result}");
    let rest = [0, 1, 2, 4];
    let after = members_via(&cluster, &rest);
    assert_eq!(after.len(), 4, "{after:?}");
    assert!(after.iter().all(|m| m.name != m3), "{after:?}");
    let leader = poll_until(SOON, || leader_id_via(&cluster, &rest)).expect("no leader");
    assert!(
        staying.contains(&leader),
        "leadership went to {leader:x}, not to a member that stays {staying:x?}"
    );

    // Then m4, leading too, named by the decimal integer id etcdctl's JSON
    // output prints, through the members that stay.
    make_leader(&cluster, 4, &rest);
    let endpoints: Vec<String> = [0, 1, 2]
        .iter()
        .map(|&i| cluster.member(i).client_url())
        .collect();
    let result = member_ok(
        &cluster,
        json!({"endpoints": endpoints, "state": "absent", "id": id(4), "avoid": [m4_peer], "wait_timeout": 120}),
    );
    assert_eq!(result["changed"], true, "{result}");
    let after = members_via(&cluster, &[0, 1, 2]);
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(after.iter().all(|m| m.id != id(4)), "{after:?}");
    let leader = poll_until(SOON, || leader_id_via(&cluster, &[0, 1, 2])).expect("no leader");
    assert!(staying.contains(&leader), "{leader:x}");
    wait_healthy_via(&cluster, &[0, 1, 2]);
}

#[test]
fn endpoints_that_can_never_answer_fail_at_once() {
    for (endpoints, expected) in [
        ("http://nosuchhost.invalid:2379", "does not resolve"),
        ("http://127.0.0.1:99999", "invalid port"),
        ("http://a b:2379", "invalid"),
        ("http://[::1:2379", "invalid"),
    ] {
        let args =
            json!({"endpoints": endpoints, "state": "absent", "name": "m1", "wait_timeout": 60});
        let started = std::time::Instant::now();
        let run = run_module("etcd_member", &args);
        let took = started.elapsed();
        assert_eq!(run.result["failed"], true, "{args}: {}", run.result);
        assert_eq!(run.result["changed"], false);
        let msg = run.result["msg"].as_str().unwrap();
        assert!(
            msg.contains(expected),
            "{endpoints}: {msg:?} lacks {expected:?}"
        );
        assert!(msg.contains(endpoints), "{msg}");
        // Well under wait_timeout (60 s): not retried.
        assert!(took < Duration::from_secs(20), "{endpoints}: took {took:?}");
    }
}

#[test]
fn unstarted_member_is_never_silently_kept_when_named_by_name() {
    let mut cluster = Cluster::start3();
    let new = cluster.add_member_slot();
    let name = cluster.member(new).name.clone();
    let peer = cluster.member(new).peer_url();
    let added = member_ok(&cluster, json!({"name": name, "peer_urls": peer}));
    assert_eq!(added["changed"], true, "{added}");
    let list = members_via(&cluster, &[0, 1, 2]);
    assert_eq!(list.len(), 4, "{list:?}");
    let unstarted = by_peer(&list, &peer).expect("added");
    assert_eq!(unstarted.name, "", "{unstarted:?}");

    // By name alone: etcd has no name for it yet. A clear failure naming
    // it by peer URL and id, nothing removed.
    for check_mode in [true, false] {
        let result = member(
            &cluster,
            json!({"state": "absent", "name": name, "_ansible_check_mode": check_mode}),
        );
        assert_eq!(result["failed"], true, "{result}");
        assert_eq!(result["changed"], false, "{result}");
        let msg = result["msg"].as_str().unwrap();
        assert!(msg.contains("peer_urls"), "{msg}");
        assert!(msg.contains(&peer), "{msg}");
        assert!(msg.contains(&unstarted.id_hex), "{msg}");
    }
    assert_eq!(members_via(&cluster, &[0, 1, 2]).len(), 4);

    // By name and peer URLs it goes. One endpoint does not resolve: skipped
    // with a warning, the others do the work.
    let endpoints = format!("http://nosuchhost.invalid:2379,{}", cluster.endpoints_csv());
    let result = member_ok(
        &cluster,
        json!({"endpoints": endpoints, "state": "absent", "name": name, "peer_urls": [peer]}),
    );
    assert_eq!(result["changed"], true, "{result}");
    assert!(
        result["warnings"]
            .to_string()
            .contains("nosuchhost.invalid"),
        "{result}"
    );
    let list = members_via(&cluster, &[0, 1, 2]);
    assert_eq!(list.len(), 3, "{list:?}");
    assert!(by_peer(&list, &peer).is_none(), "{list:?}");

    // Again: now there is nothing to remove, and nothing unstarted.
    let result = member_ok(&cluster, json!({"state": "absent", "name": name}));
    assert_eq!(result["changed"], false, "{result}");
}
