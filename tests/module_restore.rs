//! etcd_restore (with etcd_snapshot) against real etcd 3.4: snapshots are
//! restored into data dirs that real etcd members then start on, and the
//! data is read back with etcdctl. Refusals are checked by comparing a full
//! listing + contents hash of the target before and after.

use harness::{
    expect_not_failed as ok, run_module, Ansible, Cluster, ClusterOptions, MemberStart, Sshd,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const KEYS: usize = 10_000;

fn module(name: &str, args: Value) -> Value {
    run_module(name, &args).checked()
}

/// Runs the etcd under test's local restore tool (no cluster: `snapshot
/// restore`): etcdutl from 3.5 on, etcdctl on 3.4; it must succeed.
fn etcdctl(args: &[&str]) {
    let tool = harness::etcdutl_bin().unwrap_or(harness::etcdctl_bin());
    harness::run(Command::new(tool).env("ETCDCTL_API", "3").args(args)).expect_exit(0);
}

/// `etcdctl snapshot status FILE -w json`.
fn status(file: &Path) -> Value {
    harness::Etcdctl::default().snapshot_status(file)
}

/// Every file under `dir` (relative path -> size and sha256, or "dir"/"link"),
/// to prove a refused restore changed nothing.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let rel = path.strip_prefix(base).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                out.insert(rel, "dir".into());
                walk(base, &path, out);
            } else if meta.is_file() {
                let sha = Command::new("sha256sum").arg(&path).output().unwrap();
                let sha = String::from_utf8_lossy(&sha.stdout);
                out.insert(
                    rel,
                    format!("{} {}", meta.len(), sha.split_whitespace().next().unwrap()),
                );
            } else {
                out.insert(rel, "other".into());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Sorted entry names of `dir`.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// All `k/` keys of the cluster with their values, read with etcdctl.
fn all_values(cluster: &Cluster) -> BTreeMap<String, String> {
    use base64::Engine;
    let text = cluster.etcdctl_retry(&["get", "--prefix", "k/", "-w", "json"]);
    let v: Value = serde_json::from_str(&text).unwrap();
    let decode = |s: &Value| {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s.as_str().unwrap_or(""))
            .unwrap();
        String::from_utf8(bytes).unwrap()
    };
    v["kvs"]
        .as_array()
        .map(|kvs| {
            kvs.iter()
                .map(|kv| (decode(&kv["key"]), decode(&kv["value"])))
                .collect()
        })
        .unwrap_or_default()
}

fn assert_all_keys(cluster: &Cluster, n: usize) {
    let values = all_values(cluster);
    assert_eq!(values.len(), n, "number of restored keys");
    for i in 0..n {
        let key = format!("k/{i:08}");
        assert_eq!(
            values.get(&key).map(String::as_str),
            Some(format!("value-{i}").as_str()),
            "{key}"
        );
    }
}

/// The marker beside a restored data dir.
fn marker_of(data_dir: &Path) -> PathBuf {
    let mut name = data_dir.as_os_str().to_os_string();
    name.push(".etcd-restore.json");
    PathBuf::from(name)
}

fn restore_args(snapshot: &Path, data_dir: &Path, cluster: &Cluster, i: usize) -> Value {
    json!({
        "snapshot": snapshot,
        "data_dir": data_dir,
        "name": cluster.member(i).name,
        "initial_cluster": cluster.initial_cluster(),
        "initial_cluster_token": cluster.token(),
    })
}

/// Stops every member, then starts `indices` on `dirs` as a new cluster
/// listing exactly those members, and waits for health.
fn start_on(cluster: &mut Cluster, indices: &[usize], dirs: &[PathBuf]) {
    for i in 0..cluster.len() {
        cluster.stop(i);
    }
    let initial = cluster.initial_cluster_for(indices);
    for (&i, dir) in indices.iter().zip(dirs) {
        cluster.start_member_with(
            i,
            MemberStart {
                data_dir: Some(dir.clone()),
                initial_cluster: Some(initial.clone()),
                ..MemberStart::default()
            },
        );
    }
    cluster.wait_healthy(harness::DEFAULT_TIMEOUT);
}

#[test]
fn ten_thousand_keys_survive_snapshot_and_restore_into_a_new_cluster() {
    let mut cluster = Cluster::start3();
    cluster.put_many("k/", KEYS);
    let work = cluster.dir().join("restore-test");
    std::fs::create_dir_all(&work).unwrap();

    // etcd_snapshot agrees with etcdctl snapshot status.
    let ours = work.join("ours.db");
    let snap = ok(module(
        "etcd_snapshot",
        json!({ "endpoints": cluster.endpoints_csv(), "path": ours }),
    ));
    let st = status(&ours);
    assert_eq!(snap["revision"], st["revision"], "{snap}\n{st}");
    assert_eq!(snap["key_count"], st["totalKey"], "{snap}\n{st}");
    assert!(st["totalKey"].as_u64().unwrap() >= KEYS as u64);
    let theirs = work.join("theirs.db");
    // etcdctl refuses `snapshot save` with more than one endpoint.
    let out = cluster.etcdctl_at(
        &cluster.endpoints()[..1],
        &["snapshot", "save", theirs.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{out:?}");

    // Three members restored by etcd_restore from etcd_snapshot's file.
    let dirs: Vec<PathBuf> = (0..3).map(|i| work.join(format!("m{i}/data"))).collect();
    for (i, dir) in dirs.iter().enumerate() {
        let r = ok(module(
            "etcd_restore",
            restore_args(&ours, dir, &cluster, i),
        ));
        assert_eq!(r["changed"], true);
        assert_eq!(r["backup_dir"], Value::Null);
        assert_eq!(r["revision"], st["revision"]);
        assert!(dir.join("member/snap/db").is_file());
        assert!(marker_of(dir).is_file());
        assert!(!dir.join(".etcd-restore.json").exists(), "no marker inside");
        assert_eq!(
            listing(dir.parent().unwrap()),
            vec!["data".to_string(), "data.etcd-restore.json".to_string()],
            "no temp dir left"
        );
    }
    start_on(&mut cluster, &[0, 1, 2], &dirs);
    assert_all_keys(&cluster, KEYS);
    assert_eq!(cluster.member_list().len(), 3);
    // The restored cluster takes writes (a real cluster, not a read-only copy).
    cluster.put("k/zz-after-restore", "yes");
    assert_eq!(cluster.get("k/zz-after-restore").as_deref(), Some("yes"));

    // etcdctl's snapshot through etcd_restore (single member).
    let from_etcdctl = work.join("from-etcdctl/data");
    let mut args = restore_args(&theirs, &from_etcdctl, &cluster, 0);
    args["initial_cluster"] =
        json!({ cluster.member(0).name.clone(): cluster.member(0).peer_url() });
    ok(module("etcd_restore", args));
    start_on(&mut cluster, &[0], std::slice::from_ref(&from_etcdctl));
    assert_all_keys(&cluster, KEYS);

    // etcd_snapshot's file through plain `etcdctl snapshot restore`.
    let by_etcdctl = work.join("by-etcdctl");
    let m0 = cluster.member(0);
    etcdctl(&[
        "snapshot",
        "restore",
        ours.to_str().unwrap(),
        "--name",
        &m0.name,
        "--data-dir",
        by_etcdctl.to_str().unwrap(),
        "--initial-cluster",
        &format!("{}={}", m0.name, m0.peer_url()),
        "--initial-cluster-token",
        "by-etcdctl",
        "--initial-advertise-peer-urls",
        &m0.peer_url(),
    ]);
    start_on(&mut cluster, &[0], std::slice::from_ref(&by_etcdctl));
    assert_all_keys(&cluster, KEYS);
}

/// A one-member cluster's snapshot (etcdctl's) in `dir`, and the cluster stopped.
fn small_snapshot(dir: &Path) -> (PathBuf, Cluster) {
    let mut cluster = Cluster::start(ClusterOptions {
        members: 1,
        ..ClusterOptions::default()
    });
    cluster.put_many("k/", 300);
    let file = dir.join("small.db");
    cluster.etcdctl_ok(&["snapshot", "save", file.to_str().unwrap()]);
    cluster.stop(0);
    (file, cluster)
}

#[test]
fn corrupt_and_truncated_snapshots_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (good, cluster) = small_snapshot(tmp.path());
    let data_dir = tmp.path().join("etcd/data");
    ok(module(
        "etcd_restore",
        restore_args(&good, &data_dir, &cluster, 0),
    ));
    let parent = data_dir.parent().unwrap();
    let before = tree(parent);

    let bytes = std::fs::read(&good).unwrap();
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 3] ^= 0x20;
    let cases: [(&str, &[u8], &str); 3] = [
        ("flipped.db", &flipped, "does not match"),
        (
            "truncated.db",
            &bytes[..bytes.len() - 4096 - 7],
            "truncated",
        ),
        (
            "no-trailer.db",
            &bytes[..bytes.len() - 32],
            "no sha256 trailer",
        ),
    ];
    for (name, content, why) in cases {
        let file = tmp.path().join(name);
        std::fs::write(&file, content).unwrap();
        let mut args = restore_args(&file, &data_dir, &cluster, 0);
        args["initial_cluster_token"] = json!("another-token"); // would otherwise restore
        let r = module("etcd_restore", args);
        assert_eq!(r["failed"], true, "{name}: {r}");
        assert_eq!(r["changed"], false);
        let msg = r["msg"].as_str().unwrap();
        assert!(
            msg.contains(why) && msg.contains("nothing was changed"),
            "{name}: {msg}"
        );
        assert_eq!(
            tree(parent),
            before,
            "{name}: the data dir and its parent must be untouched"
        );
    }

    // A bare database (no trailer) is accepted with skip_hash_check, like etcdctl's flag.
    let bare = tmp.path().join("no-trailer.db");
    let other_dir = tmp.path().join("bare/data");
    let mut args = restore_args(&bare, &other_dir, &cluster, 0);
    args["skip_hash_check"] = json!(true);
    // Owner and group apply to the whole restored tree (tests run as root).
    args["owner"] = json!("nobody");
    args["group"] = json!(65534);
    let r = ok(module("etcd_restore", args));
    assert_eq!(r["changed"], true);
    assert!(other_dir.join("member/snap/db").is_file());
    use std::os::unix::fs::MetadataExt;
    let mut owners: Vec<(u32, u32)> = tree(&other_dir)
        .keys()
        .map(|rel| {
            let meta = std::fs::symlink_metadata(other_dir.join(rel)).unwrap();
            (meta.uid(), meta.gid())
        })
        .collect();
    let top = std::fs::metadata(&other_dir).unwrap();
    owners.push((top.uid(), top.gid()));
    owners.dedup();
    assert_eq!(owners, vec![(65534, 65534)]);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(top.permissions().mode() & 0o777, 0o700);
}

#[test]
fn restore_is_idempotent_moves_old_data_aside_and_supports_check_and_diff() {
    let tmp = tempfile::tempdir().unwrap();
    let (snapshot, mut cluster) = small_snapshot(tmp.path());
    let data_dir = tmp.path().join("etcd/data");
    let parent = data_dir.parent().unwrap().to_path_buf();
    let name = cluster.member(0).name.clone();
    let peer = cluster.member(0).peer_url();
    let as_string = json!({
        "snapshot": snapshot, "data_dir": data_dir, "name": name,
        "initial_cluster": format!("{name}={peer}"), "initial_cluster_token": "t1",
    });

    // Check mode on a missing dir: would restore, creates nothing.
    let mut check = as_string.clone();
    check["_ansible_check_mode"] = json!(true);
    check["_ansible_diff"] = json!(true);
    let r = ok(module("etcd_restore", check.clone()));
    assert_eq!(r["changed"], true);
    assert!(!parent.exists(), "check mode created {}", parent.display());
    assert_eq!(r["diff"]["before"], json!({}));
    assert_eq!(r["diff"]["after"]["initial_cluster_token"], "t1");

    let first = ok(module("etcd_restore", as_string.clone()));
    assert_eq!(first["changed"], true);
    let marker: Value =
        serde_json::from_slice(&std::fs::read(marker_of(&data_dir)).unwrap()).unwrap();
    assert_eq!(marker["snapshot_sha256"], first["snapshot_sha256"]);
    assert_eq!(
        first["marker_file"],
        marker_of(&data_dir).display().to_string()
    );
    assert_eq!(marker["initial_cluster_token"], "t1");

    // Same inputs (the mapping form is the same cluster): unchanged, even
    // after etcd ran on the directory.
    let mut as_mapping = as_string.clone();
    as_mapping["initial_cluster"] = json!({ name.clone(): peer.clone() });
    as_mapping["initial_advertise_peer_urls"] = json!([peer.clone()]);
    cluster.start_member_with(
        0,
        MemberStart {
            data_dir: Some(data_dir.clone()),
            ..MemberStart::default()
        },
    );
    cluster.wait_member_healthy(0, harness::DEFAULT_TIMEOUT);
    assert_eq!(cluster.key_count("k/"), 300);
    let log = std::fs::read_to_string(cluster.member(0).log()).unwrap();
    assert!(
        !log.contains("invalid file/dir") && !log.contains(".etcd-restore.json"),
        "etcd found something of ours in the restored data dir:\n{log}"
    );
    assert_eq!(listing(&data_dir), vec!["member".to_string()]);
    cluster.put("k/written-after-restore", "1");
    let again = ok(module("etcd_restore", as_mapping.clone()));
    assert_eq!(again["changed"], false, "{again}");

    // A different token while etcd runs there: refused, nothing touched.
    // (etcd writes its WAL meanwhile, so compare the listing and the marker.)
    let mut t2 = as_string.clone();
    t2["initial_cluster_token"] = json!("t2");
    let marker_before = std::fs::read(marker_of(&data_dir)).unwrap();
    let (parent_before, data_before) = (listing(&parent), listing(&data_dir));
    let r = module("etcd_restore", t2.clone());
    assert_eq!(r["failed"], true);
    assert!(
        r["msg"]
            .as_str()
            .unwrap()
            .contains("etcd process is running"),
        "{r}"
    );
    cluster.stop(0);
    assert_eq!(listing(&parent), parent_before);
    assert_eq!(listing(&data_dir), data_before);
    assert_eq!(std::fs::read(marker_of(&data_dir)).unwrap(), marker_before);

    // Check mode with diff: before/after markers, nothing moved.
    let before = tree(&parent);
    let mut t2_check = t2.clone();
    t2_check["_ansible_check_mode"] = json!(true);
    t2_check["_ansible_diff"] = json!(true);
    let r = ok(module("etcd_restore", t2_check));
    assert_eq!(r["changed"], true);
    assert_eq!(r["diff"]["before"]["initial_cluster_token"], "t1");
    assert_eq!(r["diff"]["after"]["initial_cluster_token"], "t2");
    assert!(r["backup_dir"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}.bak-", data_dir.display())));
    assert_eq!(tree(&parent), before);

    // The real run moves the old data dir aside (intact), never deletes it.
    let r = ok(module("etcd_restore", t2));
    assert_eq!(r["changed"], true);
    let backup = PathBuf::from(r["backup_dir"].as_str().unwrap());
    let old_tree: BTreeMap<String, String> = before
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("data/")
                .map(|rest| (rest.to_string(), v.clone()))
                .or_else(|| (k == "data").then(|| (String::new(), v.clone())))
        })
        .filter(|(k, _)| !k.is_empty())
        .collect();
    assert_eq!(
        tree(&backup),
        old_tree,
        "backup holds the previous data dir"
    );
    let marker: Value =
        serde_json::from_slice(&std::fs::read(marker_of(&data_dir)).unwrap()).unwrap();
    assert_eq!(marker["initial_cluster_token"], "t2");
    let mut names = listing(&parent);
    names.sort();
    assert_eq!(
        names.len(),
        3,
        "data + its marker + one backup, no temp dirs: {names:?}"
    );

    // The restored dir starts and has the snapshot's data (not the later write).
    cluster.start_member_with(
        0,
        MemberStart {
            data_dir: Some(data_dir.clone()),
            ..MemberStart::default()
        },
    );
    cluster.wait_member_healthy(0, harness::DEFAULT_TIMEOUT);
    assert_eq!(cluster.key_count("k/"), 300);
    assert_eq!(cluster.get("k/written-after-restore"), None);

    // Inconsistent peer URLs are refused before anything happens.
    let mut bad = as_string.clone();
    bad["initial_advertise_peer_urls"] = json!("http://127.0.0.1:1");
    let r = module("etcd_restore", bad);
    assert_eq!(r["failed"], true);
    assert!(r["msg"].as_str().unwrap().contains("differ"), "{r}");
}

#[test]
fn snapshot_and_restore_under_ansible_playbook_over_ssh() {
    let mut cluster = Cluster::start(ClusterOptions {
        members: 1,
        ..ClusterOptions::default()
    });
    cluster.put_many("k/", 100);
    let sshd = Sshd::start();
    let ansible = Ansible::new();
    let work = cluster.dir().join("ansible-work");
    std::fs::create_dir_all(&work).unwrap();
    let m0 = cluster.member(0);
    let hosts = ansible.write_file(
        "hosts.ini",
        &format!(
            "[etcd]\n{} ip={} peer_url={} work={} {} {}\n",
            m0.name,
            m0.ip,
            m0.peer_url(),
            work.display(),
            harness::etcd_inventory_vars().join(" "),
            sshd.inventory_host_vars()
        ),
    );
    let playbook = ansible.write_file(
        "snapshot-restore.yml",
        &r#"
- hosts: etcd
  gather_facts: false
  tasks:
    - name: snapshot
      etcd_snapshot:
        endpoints: "http://{{ ip }}:2379"
        dir: "{{ work }}/backups"
        keep: 3
      register: snap
    - name: restore
      etcd_restore:
        snapshot: "{{ snap.path }}"
        data_dir: "{{ work }}/data"
        name: "{{ inventory_hostname }}"
        initial_cluster:
          MEMBER_NAME: "{{ peer_url }}"
        initial_cluster_token: restored
        etcd_path: "{{ etcd_path }}"
        etcdutl_path: "{{ etcdutl_path | default(omit) }}"
      register: restored
    - name: restore again
      etcd_restore:
        snapshot: "{{ snap.path }}"
        data_dir: "{{ work }}/data"
        name: "{{ inventory_hostname }}"
        initial_cluster: "{{ inventory_hostname }}={{ peer_url }}"
        initial_cluster_token: restored
        etcd_path: "{{ etcd_path }}"
        etcdutl_path: "{{ etcdutl_path | default(omit) }}"
      register: again
    - name: assert
      assert:
        that:
          - snap.changed
          - snap.revision == restored.revision
          - snap.sha256 == restored.snapshot_sha256
          - restored.changed
          - not again.changed
"#
        .replace("MEMBER_NAME", &m0.name),
    );
    let out = ansible.playbook(&hosts, &playbook, &[]);
    out.assert_success();
    let snap = out.result_ok("snapshot", &m0.name).clone();
    let path = PathBuf::from(snap["path"].as_str().unwrap());
    assert_eq!(status(&path)["revision"], snap["revision"]);
    assert_eq!(out.result_ok("restore", &m0.name)["changed"], true);
    assert_eq!(out.stats(&m0.name).unwrap()["failures"], 0);

    // The restored data dir is a working member.
    let data_dir = work.join("data");
    cluster.stop(0);
    cluster.start_member_with(
        0,
        MemberStart {
            data_dir: Some(data_dir),
            ..MemberStart::default()
        },
    );
    cluster.wait_member_healthy(0, Duration::from_secs(90));
    assert_eq!(cluster.key_count("k/"), 100);
}

#[test]
fn etcdutl_is_used_when_given() {
    let tmp = tempfile::tempdir().unwrap();
    let (snapshot, cluster) = small_snapshot(tmp.path());
    // A stand-in etcdutl (none is installed with etcd 3.4): records its
    // arguments, then restores with the etcd under test's real tool
    // (etcdctl on 3.4, whose flags etcdutl shares).
    let recorded = tmp.path().join("etcdutl.args");
    let fake = tmp.path().join("etcdutl");
    let real = harness::etcdutl_bin().unwrap_or(harness::etcdctl_bin());
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$@\" > {}\nETCDCTL_API=3 exec {real} \"$@\"\n",
            recorded.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let data_dir = tmp.path().join("d/data");
    // Leftovers of a killed run (our lock file inside) are cleaned up;
    // a look-alike directory without the lock file is not ours: kept.
    let stale = tmp.path().join("d/data.restore-tmp-dead01");
    std::fs::create_dir_all(stale.join("data/member")).unwrap();
    std::fs::write(stale.join(".etcd-restore.lock"), "").unwrap();
    let foreign = tmp.path().join("d/data.restore-tmp-mine");
    std::fs::create_dir_all(&foreign).unwrap();
    let mut args = restore_args(&snapshot, &data_dir, &cluster, 0);
    args["etcdutl_path"] = json!(fake);
    args["etcdctl_path"] = json!("/nonexistent/etcdctl");
    let r = ok(module("etcd_restore", args));
    assert_eq!(r["tool"][0], fake.display().to_string());
    let line = std::fs::read_to_string(&recorded).unwrap();
    assert!(line.starts_with("snapshot restore "), "{line}");
    assert!(!line.contains("--skip-hash-check"));
    assert!(data_dir.join("member/snap/db").is_file());
    assert_eq!(r["removed_temp_dirs"], json!([stale.display().to_string()]));
    assert_eq!(
        listing(&tmp.path().join("d")),
        vec![
            "data".to_string(),
            "data.etcd-restore.json".to_string(),
            "data.restore-tmp-mine".to_string()
        ]
    );
}

/// Check mode runs the real run's validation: whatever the real run
/// refuses, check mode refuses with the same message, and neither touches
/// anything.
#[test]
fn check_mode_refuses_what_the_real_run_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let (snapshot, cluster) = small_snapshot(tmp.path());
    // A directory that is not an etcd data dir (a home directory, say).
    let foreign = tmp.path().join("home");
    std::fs::create_dir_all(foreign.join("docs")).unwrap();
    std::fs::write(foreign.join("notes.txt"), "keep me").unwrap();
    let a_file = tmp.path().join("a-file");
    std::fs::write(&a_file, "not a directory").unwrap();
    let fresh = tmp.path().join("fresh/data");
    let with = |data_dir: &Path, extra: Value| {
        let mut args = restore_args(&snapshot, data_dir, &cluster, 0);
        for (k, v) in extra.as_object().unwrap() {
            args[k] = v.clone();
        }
        args
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "the root directory",
            with(Path::new("/"), json!({})),
            "root directory",
        ),
        (
            "a path ending in ..",
            with(&tmp.path().join("fresh/.."), json!({})),
            "must end in a directory name",
        ),
        (
            "a directory that is not etcd's",
            with(&foreign, json!({})),
            "not an etcd data directory",
        ),
        (
            "a file in place of the data dir",
            with(&a_file, json!({})),
            "is not a directory",
        ),
        (
            "a file in place of the parent",
            with(&a_file.join("data"), json!({})),
            "is not a directory",
        ),
        (
            "a restore tool that does not exist",
            with(&fresh, json!({ "etcdutl_path": "/nonexistent/etcdutl" })),
            "not an executable file",
        ),
        (
            "an etcdctl that does not exist, for etcd 3.4",
            with(
                &fresh,
                json!({ "etcdctl_path": "/nonexistent/etcdctl", "etcd_path": "/usr/bin/etcd" }),
            ),
            "not an executable file",
        ),
        (
            "a server that does not exist",
            with(&fresh, json!({ "etcd_path": "/nonexistent/etcd" })),
            "etcd_path /nonexistent/etcd is not an executable file",
        ),
    ];
    let before = tree(tmp.path());
    for (what, args, why) in cases {
        let mut messages = Vec::new();
        for check in [true, false] {
            let mut args = args.clone();
            args["_ansible_check_mode"] = json!(check);
            let r = module("etcd_restore", args);
            assert_eq!(r["failed"], true, "{what}, check mode {check}: {r}");
            assert_eq!(r["changed"], false, "{what}: {r}");
            let msg = r["msg"].as_str().unwrap().to_string();
            assert!(
                msg.contains(why) && msg.contains("nothing was changed"),
                "{what}, check mode {check}: {msg}"
            );
            messages.push(msg);
        }
        assert_eq!(
            messages[0], messages[1],
            "{what}: same refusal in both modes"
        );
        assert_eq!(tree(tmp.path()), before, "{what}: nothing may change");
    }
    assert_eq!(
        std::fs::read_to_string(foreign.join("notes.txt")).unwrap(),
        "keep me"
    );
}

/// Children of `pid` (all its threads).
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// Makes this test process a child subreaper while alive, so that a
/// process orphaned by a killed module is re-parented here (PID 1 on the
/// test machines never reaps) and can be waited for; the process it
/// tracks is killed and reaped on drop if still there.
struct Adopter {
    orphan: Option<i32>,
}

impl Adopter {
    fn new() -> Adopter {
        // SAFETY: prctl with integer arguments.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        assert_eq!(rc, 0, "PR_SET_CHILD_SUBREAPER");
        Adopter { orphan: None }
    }

    /// Waits up to `timeout` for the adopted `pid` to end; its wait status.
    fn wait_gone(&mut self, pid: i32, timeout: Duration) -> Option<i32> {
        self.orphan = Some(pid);
        let status = harness::poll_until(timeout, || {
            let mut status = 0;
            // SAFETY: waitpid on a pid re-parented to this process.
            let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            (rc == pid).then_some(status)
        });
        if status.is_some() {
            self.orphan = None;
        }
        status
    }
}

impl Drop for Adopter {
    fn drop(&mut self) {
        if let Some(pid) = self.orphan.take() {
            // SAFETY: kill + blocking waitpid of the process we adopted.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                let mut status = 0;
                libc::waitpid(pid, &mut status, 0);
            }
        }
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) };
    }
}

/// A module killed (SIGKILL, as by an async timeout or an operator) in the
/// middle of restoring a large snapshot takes its etcdctl with it: no tool
/// goes on writing into the temporary directory; the next run cleans the
/// leftovers up and restores.
#[test]
fn a_killed_restore_takes_its_restore_tool_with_it() {
    let mut cluster = Cluster::start(ClusterOptions {
        members: 1,
        ..ClusterOptions::default()
    });
    let value = "v".repeat(1 << 20);
    for i in 0..32 {
        let out = cluster.etcdctl_at(
            &cluster.endpoints(),
            &["put", &format!("big/{i:03}")],
            Some(&value),
        );
        assert!(out.status.success(), "{out:?}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let snapshot = tmp.path().join("big.db");
    cluster.etcdctl_ok(&["snapshot", "save", snapshot.to_str().unwrap()]);
    assert!(std::fs::metadata(&snapshot).unwrap().len() > 32 << 20);
    cluster.stop(0);
    let data_dir = tmp.path().join("etcd/data");
    let args = restore_args(&snapshot, &data_dir, &cluster, 0);
    let mut full = args.clone();
    full["_ansible_check_mode"] = json!(false);
    full["_ansible_module_name"] = json!("etcd_restore");
    let args_file = tmp.path().join("args.json");
    std::fs::write(&args_file, serde_json::to_vec(&full).unwrap()).unwrap();

    let mut adopter = Adopter::new();
    let mut module_process =
        harness::process::guarded_command(harness::module_binary("etcd_restore"))
            .arg(&args_file)
            // The etcd under test's tools, as run_module gives them.
            .env("PATH", harness::etcd_tools_path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
    let module_pid = module_process.id();
    let tool = harness::poll_until(Duration::from_secs(120), || {
        children_of(module_pid).into_iter().find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("restore"))
        })
    });
    let Some(tool) = tool else {
        harness::process::kill_and_reap(&mut module_process);
        panic!("the module never started its restore tool");
    };
    let tool = tool as i32;
    // Hold the tool mid-restore (a stopped process still dies of SIGKILL),
    // so the kill lands while it works, however fast the machine.
    // SAFETY: signals to the module's own child, not yet reaped.
    unsafe { libc::kill(tool, libc::SIGSTOP) };
    adopter.orphan = Some(tool);
    harness::process::send_signal(module_pid, libc::SIGKILL);
    module_process.wait().unwrap();

    let status = adopter.wait_gone(tool, Duration::from_secs(30));
    let status = status.expect("the restore tool outlived the killed module");
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL,
        "the tool ended with wait status {status}, not by SIGKILL"
    );
    drop(adopter);
    assert!(
        !data_dir.exists(),
        "a killed restore must not create the data dir"
    );

    // The next run removes the dead run's temp dir and restores.
    let r = ok(module("etcd_restore", args));
    assert_eq!(r["changed"], true);
    assert_eq!(
        r["removed_temp_dirs"].as_array().map(Vec::len),
        Some(1),
        "{r}"
    );
    assert_eq!(
        listing(data_dir.parent().unwrap()),
        vec!["data".to_string(), "data.etcd-restore.json".to_string()]
    );
}

/// A restore tool that fails shows its meaningful lines: the fatal/panic
/// line first, not the stack trace after it.
#[test]
fn a_failing_restore_tool_shows_its_error_line_not_its_stack() {
    let tmp = tempfile::tempdir().unwrap();
    let (good, cluster) = small_snapshot(tmp.path());
    // A bare database (no trailer) with one undecodable value: the
    // module's own checks pass (they read the tree, not the values);
    // etcdctl's restore fails while decoding it.
    let bytes = std::fs::read(&good).unwrap();
    let mut bare = bytes[..bytes.len() - 32].to_vec();
    let needle = b"\x0a\x0ak/00000150";
    let at = bare
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the key's record in the database");
    bare[at] = 0x0f; // field 1 with wire type 7: not protobuf
    let corrupt = tmp.path().join("corrupt.db");
    std::fs::write(&corrupt, &bare).unwrap();
    let data_dir = tmp.path().join("etcd/data");
    let mut args = restore_args(&corrupt, &data_dir, &cluster, 0);
    args["skip_hash_check"] = json!(true);
    // etcd 3.4's etcdctl decodes every value while restoring (etcdutl
    // 3.5 copies the database and does not): this test is about that
    // tool's output, so it names it, and its server, whatever the etcd
    // under test.
    args["etcdctl_path"] = json!("/usr/bin/etcdctl");
    args["etcd_path"] = json!("/usr/bin/etcd");
    let before = tree(tmp.path());
    let r = module("etcd_restore", args);
    assert_eq!(r["failed"], true, "{r}");
    let msg = r["msg"].as_str().unwrap();
    assert!(msg.contains("nothing was changed"), "{msg}");
    let detail = msg.split_once("nothing was changed: ").map(|(_, d)| d);
    let first = detail.and_then(|d| d.lines().next()).unwrap_or("");
    assert!(
        first.contains("fatal") && first.contains("failed to unmarshal"),
        "the tool's fatal line must come first: {msg}"
    );
    assert!(
        !msg.contains("goroutine") && !msg.contains("kvstore.go") && !msg.contains("stacktrace"),
        "no stack trace in the message: {msg}"
    );
    assert_eq!(r["stderr_lines"][0].as_str(), Some(first), "{r}");
    assert_eq!(tree(tmp.path()), before, "nothing may change");
}

/// A data dir restored by an earlier version (marker inside it, where etcd
/// complains about it) is still recognised as restored, and its marker is
/// moved out; check mode says so and moves nothing.
#[test]
fn an_old_marker_inside_the_data_dir_is_recognised_and_moved_out() {
    let tmp = tempfile::tempdir().unwrap();
    let (snapshot, cluster) = small_snapshot(tmp.path());
    let data_dir = tmp.path().join("etcd/data");
    let args = restore_args(&snapshot, &data_dir, &cluster, 0);
    ok(module("etcd_restore", args.clone()));
    // What an earlier version left: the marker inside, none beside.
    let mut old: Value =
        serde_json::from_slice(&std::fs::read(marker_of(&data_dir)).unwrap()).unwrap();
    old.as_object_mut().unwrap().remove("data_dir_id");
    std::fs::remove_file(marker_of(&data_dir)).unwrap();
    let inside = data_dir.join(".etcd-restore.json");
    std::fs::write(&inside, serde_json::to_vec_pretty(&old).unwrap()).unwrap();

    let before = tree(tmp.path());
    let mut check = args.clone();
    check["_ansible_check_mode"] = json!(true);
    let r = ok(module("etcd_restore", check));
    assert_eq!(r["changed"], false, "{r}");
    assert_eq!(r["marker_migrated"], true, "{r}");
    assert_eq!(tree(tmp.path()), before, "check mode moves nothing");

    let r = ok(module("etcd_restore", args.clone()));
    assert_eq!(r["changed"], false, "already restored: {r}");
    assert_eq!(r["marker_migrated"], true, "{r}");
    assert!(!inside.exists(), "the old marker left the data dir");
    let beside: Value =
        serde_json::from_slice(&std::fs::read(marker_of(&data_dir)).unwrap()).unwrap();
    assert_eq!(beside["snapshot_sha256"], old["snapshot_sha256"]);
    assert_eq!(listing(&data_dir), vec!["member".to_string()]);

    let r = ok(module("etcd_restore", args.clone()));
    assert_eq!(r["changed"], false);
    assert_eq!(r["marker_migrated"], false);

    // A marker beside a directory it does not describe (the data dir was
    // replaced by hand) does not make a restore look done.
    let by_hand = tmp.path().join("etcd/data.by-hand");
    std::fs::rename(&data_dir, &by_hand).unwrap();
    std::fs::create_dir_all(data_dir.join("member")).unwrap();
    let r = ok(module("etcd_restore", args));
    assert_eq!(r["changed"], true, "{r}");
    assert!(data_dir.join("member/snap/db").is_file());
}

/// A stand-in program in `dir` that prints `output` whatever it is asked
/// (e.g. `etcd Version: 3.6.15` for `etcd --version`).
fn version_stub(dir: &Path, name: &str, output: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\necho '{output}'\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Version awareness, in check mode as in a real run and before anything
/// changes: a 3.6 server without etcdutl is refused with the reason; a tool
/// newer than the server is refused; etcdutl 3.5 for a 3.6 server restores
/// a data dir that etcd 3.6 starts on (the pinned 3.6.15 server, whatever
/// the etcd under test), and both versions are returned.
#[test]
fn restore_tools_must_fit_the_server_version() {
    let tmp = tempfile::tempdir().unwrap();
    let (snapshot, cluster) = small_snapshot(tmp.path());
    let stubs = tmp.path().join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    // `etcd` on PATH in case 1.
    version_stub(&stubs, "etcd", "etcd Version: 3.6.15");
    let etcd35 = version_stub(&stubs, "etcd-3.5", "etcd Version: 3.5.30");
    let etcdutl36 = version_stub(&stubs, "etcdutl-3.6", "etcdutl version: 3.6.15");
    let data_dir = tmp.path().join("restored/data");
    let before = tree(tmp.path());

    // 1. etcd 3.6 on PATH, no etcdutl anywhere on PATH, etcdctl given.
    let mut args = restore_args(&snapshot, &data_dir, &cluster, 0);
    args["etcdctl_path"] = json!("/usr/bin/etcdctl");
    let path = format!("{}:/usr/bin:/bin", stubs.display());
    for check in [true, false] {
        args["_ansible_check_mode"] = json!(check);
        let r = harness::run_module_with_path("etcd_restore", &args, &path).checked();
        assert_eq!(r["failed"], true, "{r}");
        let msg = r["msg"].as_str().unwrap();
        assert!(
            msg.contains("etcdutl is required")
                && msg.contains("etcd 3.6.15")
                && msg.contains("no etcdutl was found on PATH")
                && msg.contains("nothing was changed"),
            "{msg}"
        );
        assert_eq!(r["server_version"], "3.6.15", "{r}");
    }
    assert_eq!(
        tree(tmp.path()),
        before,
        "a refused restore changed something"
    );

    // 2. A tool newer than the server: etcdutl 3.6 for etcd 3.5.
    let mut args = restore_args(&snapshot, &data_dir, &cluster, 0);
    args["etcd_path"] = json!(etcd35);
    args["etcdutl_path"] = json!(etcdutl36);
    for check in [true, false] {
        args["_ansible_check_mode"] = json!(check);
        let r = module("etcd_restore", args.clone());
        assert_eq!(r["failed"], true, "{r}");
        let msg = r["msg"].as_str().unwrap();
        assert!(
            msg.contains("etcdutl 3.6.15 is newer than the server etcd 3.5.30")
                && msg.contains("refuses to start on data written by a newer version")
                && msg.contains("nothing was changed"),
            "{msg}"
        );
        assert_eq!(
            (r["server_version"].as_str(), r["tool_version"].as_str()),
            (Some("3.5.30"), Some("3.6.15")),
            "{r}"
        );
    }
    assert_eq!(
        tree(tmp.path()),
        before,
        "a refused restore changed something"
    );

    // 3. etcd 3.6.15 named by etcd_path, etcdutl 3.5.30 found on PATH: the
    //    restore runs, and the real etcd 3.6.15 starts on the result.
    let real36 = harness::repo_root().join(".deps/etcd/3.6.15/bin");
    let etcdutl35 = harness::repo_root().join(".deps/etcd/3.5.30/bin");
    if !real36.join("etcd").is_file() || !etcdutl35.join("etcdutl").is_file() {
        panic!("etcd 3.6.15 / etcdutl 3.5.30 not installed: run scripts/install-etcd-versions");
    }
    let mut args = restore_args(&snapshot, &data_dir, &cluster, 0);
    args["etcd_path"] = json!(real36.join("etcd"));
    let path = format!("{}:/usr/bin:/bin", etcdutl35.display());
    let r = harness::run_module_with_path("etcd_restore", &args, &path).checked();
    let r = ok(r);
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(
        r["tool"][0],
        etcdutl35.join("etcdutl").display().to_string()
    );
    assert_eq!(
        (r["server_version"].as_str(), r["tool_version"].as_str()),
        (Some("3.6.15"), Some("3.5.30")),
        "{r}"
    );
    // The restored dir is a working member of etcd 3.6.15, with every key:
    // the member's own command line, run by that binary.
    let mut argv = cluster.member_command_line_with(
        0,
        &MemberStart {
            data_dir: Some(data_dir.clone()),
            ..MemberStart::default()
        },
    );
    argv[0] = real36.join("etcd").display().to_string();
    let log = std::fs::File::create(tmp.path().join("etcd36.log")).unwrap();
    let mut etcd = harness::process::guarded_command(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let endpoints = vec![cluster.member(0).client_url()];
    let count = harness::poll_until(harness::DEFAULT_TIMEOUT, || {
        let out = cluster.etcdctl_at(
            &endpoints,
            &[
                "get",
                "k/",
                "--prefix",
                "--keys-only",
                "--limit=1",
                "-w",
                "json",
            ],
            None,
        );
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        v["count"].as_u64()
    });
    harness::process::kill_and_reap(&mut etcd);
    assert_eq!(
        count,
        Some(300),
        "etcd 3.6.15 on the restored dir: {}",
        harness::log_tail(&tmp.path().join("etcd36.log"), 20)
    );
}
