//! The multi-call module binary that `scripts/build-modules` installs under
//! every module's name: it runs the module it is named as (or, under another
//! name, the one the args file names), refuses an unknown name with a failed
//! JSON result, and etcd-agent uploads it once per host for all modules.

use harness::{
    module_binary, module_library_dir, Agent, Ansible, Cluster, ClusterOptions, RunOutput, Sshd,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const MODULES: [&str; 6] = [
    "etcd_health",
    "etcd_snapshot",
    "etcd_restore",
    "etcd_member",
    "etcd_maintenance",
    "etcd_doctor",
];

/// A copy of the library's binary named `name` in `dir`.
fn copy_as(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy(module_binary("etcd_health"), &path).expect("copy module binary");
    path
}

/// Runs `binary args_file` and parses the one JSON object it prints.
fn run_json(binary: &Path, args: &Value, dir: &Path) -> (Value, RunOutput) {
    let args_path = dir.join("args");
    std::fs::write(&args_path, args.to_string()).expect("write args");
    let out = harness::run(Command::new(binary).arg(&args_path));
    let result = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}):\n{}", out.describe()));
    (result, out)
}

#[test]
fn the_six_library_modules_are_one_binary() {
    let first = std::fs::read(module_binary(MODULES[0])).expect("read module");
    for m in &MODULES[1..] {
        let bytes = std::fs::read(module_binary(m)).expect("read module");
        assert!(bytes == first, "{m} differs from {}", MODULES[0]);
    }
    assert!(module_library_dir()
        .join(format!("{}.yml", MODULES[0]))
        .is_file());
}

#[test]
fn the_file_name_picks_the_module() {
    let dir = tempfile::tempdir().unwrap();
    for m in MODULES {
        let out = harness::run(Command::new(copy_as(dir.path(), m)).arg("--doc"));
        out.expect_exit(0);
        assert!(
            out.stdout.contains(&format!("module: {m}\n")),
            "{m} --doc:\n{}",
            out.describe()
        );
    }
}

#[test]
fn a_renamed_copy_runs_the_module_the_args_name() {
    // etcd-agent's upload is named after the first module that used it
    let dir = tempfile::tempdir().unwrap();
    let binary = copy_as(dir.path(), "etcd_health-0123456789abcdef");
    let args = serde_json::json!({ "no_such_option": 1, "_ansible_module_name": "etcd_member" });
    let (result, out) = run_json(&binary, &args, dir.path());
    out.expect_exit(1);
    assert_eq!(result["failed"], true, "{result}");
    let msg = result["msg"].as_str().unwrap();
    assert!(
        msg.starts_with("Unsupported parameters for (etcd_member) module: no_such_option."),
        "{msg}"
    );
}

#[test]
fn an_unknown_name_is_a_clear_json_failure() {
    let dir = tempfile::tempdir().unwrap();
    let binary = copy_as(dir.path(), "etcd_bogus");
    for args in [
        serde_json::json!({}),
        serde_json::json!({ "_ansible_module_name": "ping" }),
    ] {
        let (result, out) = run_json(&binary, &args, dir.path());
        out.expect_exit(1);
        assert!(out.stderr.is_empty(), "{}", out.describe());
        assert_eq!(result["failed"], true, "{result}");
        assert_eq!(result["changed"], false, "{result}");
        let msg = result["msg"].as_str().unwrap();
        assert!(msg.contains("invoked as \"etcd_bogus\""), "{msg}");
        assert!(
            msg.contains("etcd_health, etcd_snapshot, etcd_restore"),
            "{msg}"
        );
    }
    // no args file at all: the same failure, not a usage text
    let out = harness::run(&mut Command::new(&binary));
    out.expect_exit(1);
    assert!(out.stdout.contains("\"failed\":true"), "{}", out.describe());
}

#[test]
fn under_the_agent_several_modules_share_one_upload_per_host() {
    module_binary("etcd_member");
    let cluster = Cluster::start(ClusterOptions {
        members: 1,
        ..Default::default()
    });
    let m = cluster.member(0);
    let sshd = Sshd::start_on(&[m.ip]);
    let ansible = Ansible::new();
    let hosts = ansible.write_file(
        "hosts.ini",
        &format!("[etcd]\n{} {}\n", m.name, sshd.inventory_host_vars_at(m.ip)),
    );
    // the member count the modules must report is etcd's own
    let voters = cluster.member_list().len();
    let playbook = ansible.write_file(
        "multi.yml",
        &format!(
            r#"- name: Two modules, one binary
  hosts: etcd
  gather_facts: false
  tasks:
    - name: Health
      etcd_health:
        endpoints: "{endpoints}"
      register: health
    - name: Member, unchanged
      etcd_member:
        state: present
        name: "{name}"
        peer_urls: ["{peer}"]
        endpoints: "{endpoints}"
      check_mode: true
      register: member
    - name: Both ran as themselves against the cluster
      ansible.builtin.assert:
        that:
          - health.msg is search('cluster is healthy')
          - member is not changed
          - member.members | length == {voters}
"#,
            endpoints = cluster.endpoints_csv(),
            name = m.name,
            peer = m.peer_url(),
        ),
    );
    let run = Agent::in_sandbox(&ansible)
        .playbook(&hosts, &playbook)
        .sandbox_env(&ansible)
        .log("etcd_agent::transport=info")
        .run();
    run.expect_exit(0);
    let uploads = run
        .stderr
        .lines()
        .filter(|l| l.contains("uploading module"))
        .count();
    assert_eq!(
        uploads,
        1,
        "one upload for both modules:\n{}",
        run.describe()
    );
    // and ansible-playbook, which sends each module by name, agrees
    ansible.playbook(&hosts, &playbook, &[]).assert_success();
}
