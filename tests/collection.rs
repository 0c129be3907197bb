//! The Ansible collection `etcd_agent.etcd` (galaxy.yml, scripts/build-collection): built from
//! this checkout, installed with the real `ansible-galaxy` into a temp collections path, shown
//! by `ansible-doc`, and used under both engines against a real cluster: modules by FQCN, short
//! names under the `collections:` keyword, the collection's role, and the collection's health
//! and restart playbooks run by FQCN. Without the collection installed, both engines refuse
//! the FQCN with the same exit code.

use harness::{repo_root, Ansible, Engine, ServiceCluster, Sshd};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The tarball, built from `playbooks/library/` (which `scripts/test` builds first) into
/// `<dir>/build/` (each test builds its own, in its own scratch dir: tests of this file may
/// run in processes of their own at the same time, as under nextest).
fn tarball(dir: &Path) -> PathBuf {
    let out = dir.join("build");
    // ansible-galaxy's cache and temp files go to the test's dir, not ~/.ansible
    let run = Command::new(repo_root().join("scripts/build-collection"))
        .env("SKIP_MODULES", "1")
        .env("COLLECTION_OUT", &out)
        .env("ANSIBLE_HOME", dir.join("galaxy-home"))
        .env("ANSIBLE_LOCAL_TEMP", dir.join("galaxy-home/tmp"))
        .output()
        .expect("run scripts/build-collection");
    assert!(
        run.status.success(),
        "build-collection failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    out.join(tarball_name())
}

/// The tarball's file name, as galaxy.yml's version makes it.
fn tarball_name() -> String {
    let version = std::fs::read_to_string(repo_root().join("collection/galaxy.yml"))
        .expect("read collection/galaxy.yml")
        .lines()
        .find_map(|l| l.strip_prefix("version:").map(|v| v.trim().to_string()))
        .expect("galaxy.yml has a version");
    format!("etcd_agent-etcd-{version}.tar.gz")
}

/// An Ansible scratch environment whose ansible.cfg points `collections_path` at
/// `<dir>/collections`, with the collection installed there unless `install` is false.
fn ansible_with_collection(install: bool) -> Ansible {
    let ansible = Ansible::new();
    let path = ansible.dir().join("collections");
    std::fs::create_dir_all(&path).expect("create collections dir");
    ansible.write_file(
        "ansible.cfg",
        &format!(
            "[defaults]\nretry_files_enabled = False\ncollections_path = {}\n",
            path.display()
        ),
    );
    if install {
        let out = ansible
            .command("ansible-galaxy")
            .args(["collection", "install", "--force", "-p"])
            .arg(&path)
            .arg(tarball(ansible.dir()))
            .output()
            .expect("run ansible-galaxy");
        assert!(
            out.status.success(),
            "ansible-galaxy collection install failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    ansible
}

#[test]
fn collection_holds_the_modules_playbooks_and_role_and_ansible_doc_reads_it() {
    let ansible = ansible_with_collection(true);
    let root = ansible
        .dir()
        .join("collections/ansible_collections/etcd_agent/etcd");
    for m in [
        "etcd_health",
        "etcd_member",
        "etcd_snapshot",
        "etcd_restore",
        "etcd_maintenance",
        "etcd_doctor",
    ] {
        let bin = std::fs::read(root.join("plugins/modules").join(m)).expect("module installed");
        assert!(bin.starts_with(b"\x7fELF"), "{m} is not an ELF binary");
        assert!(root.join(format!("plugins/modules/{m}.yml")).is_file());
        let arm = std::fs::read(root.join(format!("plugins/modules/{m}_aarch64")))
            .expect("aarch64 build installed");
        assert!(
            arm.starts_with(b"\x7fELF") && arm.get(18..20) == Some(&[183, 0][..]),
            "{m}_aarch64 is not an aarch64 ELF binary"
        );
        let plugin = root.join(format!("plugins/action/{m}.py"));
        let text = std::fs::read_to_string(&plugin).expect("action plugin installed");
        assert!(text.contains("class ActionModule"), "{}", plugin.display());
    }
    for p in [
        "playbooks/etcd_healthy.yml",
        "playbooks/etcd_restart.yml",
        "playbooks/tasks/etcd_cluster_healthy.yml",
        "roles/etcd_helpers/tasks/main.yml",
        "meta/runtime.yml",
        "MANIFEST.json",
    ] {
        assert!(
            root.join(p).is_file(),
            "{p} missing from the installed collection"
        );
    }
    let size = std::fs::metadata(ansible.dir().join("build").join(tarball_name()))
        .expect("tarball")
        .len();
    assert!(
        size < 20 * 1024 * 1024,
        "{size} bytes: above Galaxy's limit"
    );

    let doc = ansible
        .command("ansible-doc")
        .arg("etcd_agent.etcd.etcd_health")
        .output()
        .expect("run ansible-doc");
    let text = String::from_utf8_lossy(&doc.stdout);
    assert!(
        doc.status.success()
            && text.contains("etcd_agent.etcd.etcd_health")
            && text.contains("endpoints"),
        "ansible-doc:\n{text}\n{}",
        String::from_utf8_lossy(&doc.stderr)
    );
}

/// A playbook using the collection three ways: a module by FQCN, a short name under the play's
/// `collections:` keyword, and the collection's role by FQCN (it installs the helper scripts
/// into the cluster's scratch directory, `etcd_helpers_dir` of the inventory).
const FQCN_PLAYBOOK: &str = r#"
- name: Health by fully qualified name
  hosts: etcd
  gather_facts: false
  tasks:
    - name: Health by FQCN
      etcd_agent.etcd.etcd_health:
        endpoints: "{{ etcd_client_scheme }}://{{ ip }}:2379"
      run_once: true
      register: by_fqcn
- name: Health under the collections keyword
  hosts: etcd
  gather_facts: false
  collections:
    - etcd_agent.etcd
  tasks:
    - name: Health by short name
      etcd_health:
        endpoints: "{{ etcd_client_scheme }}://{{ ip }}:2379"
      run_once: true
- name: The collection's role
  hosts: etcd
  gather_facts: false
  roles:
    - etcd_agent.etcd.etcd_helpers
"#;

fn members_seen(r: &Value) -> usize {
    r.get("members")
        .and_then(Value::as_array)
        .map(Vec::len)
        .unwrap_or(0)
}

fn fqcn_modules_and_role(engine: Engine) {
    let cluster = ServiceCluster::start3();
    let sshd = Sshd::start();
    let ansible = ansible_with_collection(true);
    let hosts = cluster.write_inventory(&ansible, &sshd, "hosts.ini", &[0, 1, 2], &[]);
    let pb = ansible.write_file("fqcn.yml", FQCN_PLAYBOOK);
    let out = engine.playbook(&ansible, &hosts, &pb, &[]);
    out.assert_success();
    let live = cluster
        .etcdctl()
        .json(&cluster.endpoints(&[0]), &["member", "list"]);
    let listed = live["members"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(listed, 3, "{live}");
    let first = &cluster.members()[0].name;
    for task in ["Health by FQCN", "Health by short name"] {
        let r = out.result_ok(task, first);
        assert_eq!(r["healthy"], true, "{task}: {r}");
        assert_eq!(members_seen(r), listed, "{task}: {r}");
    }
    // the collection's role installed the helper scripts on every host
    for m in &cluster.members()[..3] {
        let script = cluster.dir().join("bin").join(&m.name).join("etcdctl3.sh");
        assert!(
            script.is_file(),
            "{} missing:\n{}",
            script.display(),
            out.describe()
        );
    }

    // Without the collection installed, the FQCN is refused before anything runs (ansible-playbook
    // names the module of the first play: a parser error, exit 4; the agent, which reads every
    // play first, the role: a role that is nowhere is ansible-core's AnsibleError, exit 1).
    let bare = ansible_with_collection(false);
    let hosts = cluster.write_inventory(&bare, &sshd, "hosts.ini", &[0, 1, 2], &[]);
    let pb = bare.write_file("fqcn.yml", FQCN_PLAYBOOK);
    let out = engine.playbook(&bare, &hosts, &pb, &[]);
    let refused = match engine {
        Engine::AnsiblePlaybook => 4,
        _ => 1,
    };
    assert_eq!(out.status.code(), Some(refused), "{}", out.describe());
    assert!(out.tasks().is_empty(), "{}", out.describe());
    assert!(
        (out.stdout.clone() + &out.stderr).contains("'etcd_agent.etcd.etcd_"),
        "{}",
        out.describe()
    );
}

#[test]
fn fqcn_modules_and_role_ansible_playbook() {
    fqcn_modules_and_role(Engine::AnsiblePlaybook);
}

#[test]
fn fqcn_modules_and_role_etcd_agent() {
    fqcn_modules_and_role(Engine::agent_required());
}

/// The collection's playbooks by FQCN: health, then a rolling restart that gives every member
/// a new pid and leaves the cluster healthy with one leader.
fn collection_playbooks(engine: Engine) {
    let cluster = ServiceCluster::start3();
    let sshd = Sshd::start();
    let ansible = ansible_with_collection(true);
    let hosts = cluster.write_inventory(&ansible, &sshd, "hosts.ini", &[0, 1, 2], &[]);
    let all = [0, 1, 2];
    let healthy = engine.playbook(
        &ansible,
        &hosts,
        Path::new("etcd_agent.etcd.etcd_healthy"),
        &[],
    );
    healthy.assert_success();
    for m in &cluster.members()[..3] {
        assert_eq!(
            healthy.result_ok("Check etcd cluster health", &m.name)["healthy"],
            true
        );
    }

    let before: Vec<u32> = cluster
        .pids(3)
        .into_iter()
        .map(|p| p.expect("running"))
        .collect();
    let out = engine.playbook(
        &ansible,
        &hosts,
        Path::new("etcd_agent.etcd.etcd_restart"),
        &[],
    );
    out.assert_success();
    cluster.wait_healthy(&all, harness::DEFAULT_TIMEOUT);
    let after: Vec<u32> = cluster
        .pids(3)
        .into_iter()
        .map(|p| p.expect("member running after the restart"))
        .collect();
    for i in all {
        assert_ne!(before[i], after[i], "m{i} was not restarted");
    }
    cluster.wait_leader();
}

#[test]
fn collection_playbooks_by_fqcn_ansible_playbook() {
    collection_playbooks(Engine::AnsiblePlaybook);
}

#[test]
fn collection_playbooks_by_fqcn_etcd_agent() {
    collection_playbooks(Engine::agent_required());
}
