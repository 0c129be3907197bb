//! Side-by-side checks: the same playbook and inventory under `etcd-agent` and the real
//! `ansible-playbook` (over the harness sshd) give the same exit code, the same recap counters
//! and the same per-task, per-host outcome.

use harness::{Agent, Ansible, Sshd};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// `ok`/`changed`/`failed`/`ignored`/`skipped`/`unreachable` of one host result.
fn outcome(r: &Value) -> &'static str {
    let t = |k: &str| r.get(k).and_then(Value::as_bool).unwrap_or(false);
    if t("unreachable") {
        "unreachable"
    } else if t("failed") && (t("ignore_errors") || r.get("ignore_errors").is_some()) {
        "ignored"
    } else if t("failed") {
        "failed"
    } else if t("skipped") {
        "skipped"
    } else if t("changed") {
        "changed"
    } else {
        "ok"
    }
}

/// (task name, host, outcome) for every recorded result, in order.
fn outcomes(doc: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for play in doc["plays"].as_array().into_iter().flatten() {
        for task in play["tasks"].as_array().into_iter().flatten() {
            let name = task["task"]["name"].as_str().unwrap_or("").to_string();
            if let Some(hosts) = task["hosts"].as_object() {
                // Hosts finish in any order; compare them sorted.
                let mut hosts: Vec<_> = hosts.iter().collect();
                hosts.sort_by(|a, b| a.0.cmp(b.0));
                for (h, r) in hosts {
                    let mut o = outcome(r).to_string();
                    if o == "ignored" {
                        o = "failed".into();
                    }
                    if let Some(msg) = r.get("msg").filter(|_| name.starts_with("show")) {
                        o = format!("{o} {msg}");
                    }
                    out.push((name.clone(), h.clone(), o));
                }
            }
        }
    }
    out
}

fn compare(ansible: &Ansible, inventory: &Path, playbook: &Path, extra: &[&str], hosts: &[&str]) {
    let theirs = ansible.playbook(inventory, playbook, extra);
    let theirs_json = theirs
        .json
        .clone()
        .unwrap_or_else(|| panic!("no json:\n{}", theirs.describe()));
    let mine = Agent::in_sandbox(ansible)
        .playbook(inventory, playbook)
        .arg("--json")
        .args(extra)
        .run();
    let mine_json: Value = serde_json::from_str(&mine.stdout)
        .unwrap_or_else(|e| panic!("agent json: {e}\n{}", mine.describe()));
    let ctx = format!(
        "{}\n--- ansible:\n{}\n--- agent:\n{}",
        playbook.display(),
        theirs.describe(),
        serde_json::to_string_pretty(&mine_json).unwrap()
    );
    assert_eq!(mine.code(), theirs.status.code(), "exit code\n{ctx}");
    assert!(!outcomes(&mine_json).is_empty(), "no results\n{ctx}");
    for h in hosts {
        assert!(theirs.stats(h).is_some(), "no ansible stats for {h}\n{ctx}");
        assert_eq!(
            mine_json["stats"].get(*h),
            theirs.stats(h),
            "recap of {h}\n{ctx}"
        );
    }
    assert_eq!(
        outcomes(&mine_json),
        outcomes(&theirs_json),
        "per task outcomes\n{ctx}"
    );
}

fn inventory(ansible: &Ansible, sshd: &Sshd) -> PathBuf {
    let vars = sshd.inventory_host_vars();
    let gone = format!(
        "gone ansible_host=127.0.0.1 ansible_port=1 ansible_user={} ansible_ssh_private_key_file={} ansible_ssh_common_args='{}' ansible_python_interpreter=/usr/bin/python3",
        sshd.user(),
        sshd.client_key().display(),
        sshd.ssh_common_args()
    );
    ansible.write_file(
        "hosts.ini",
        &format!("[nodes]\nn1 {vars}\nn2 {vars}\nn3 {vars}\n[down]\n{gone}\n"),
    )
}

#[test]
fn same_outcomes_as_ansible_playbook() {
    let sshd = Sshd::start();
    let ansible = Ansible::new();
    let inv = inventory(&ansible, &sshd);
    let nodes = ["n1", "n2", "n3"];
    let basics = ansible.write_file(
        "basics.yml",
        r#"- hosts: nodes
  gather_facts: false
  vars:
    who: "{{ inventory_hostname }}"
  tasks:
    - name: echo
      command: echo {{ who }}
      register: r
    - name: when
      shell: echo picked
      when: r.stdout == 'n2'
    - name: fact
      set_fact:
        doubled: "{{ r.stdout }}{{ r.stdout }}"
    - name: assert
      assert:
        that: [doubled == who + who]
    - name: changed_when false
      command: "true"
      changed_when: false
    - name: failed_when
      shell: echo boom
      register: b
      failed_when: "'boom' in b.stdout and inventory_hostname == 'n3'"
      ignore_errors: true
    - name: n1 fails
      command: /bin/false
      when: inventory_hostname == 'n1'
    - name: after
      debug:
        msg: "{{ inventory_hostname }}"
"#,
    );
    compare(&ansible, &inv, &basics, &["-l", "nodes"], &nodes);

    let rolling = ansible.write_file(
        "rolling.yml",
        r#"- hosts: nodes
  gather_facts: false
  serial: [1, 2]
  tasks:
    - name: once
      command: echo {{ inventory_hostname }}
      run_once: true
      register: once
    - name: local
      command: echo {{ once.stdout }}
      delegate_to: localhost
    - name: until
      shell: echo 1
      register: u
      until: u.stdout == '1'
      retries: 2
      delay: 0
"#,
    );
    compare(&ansible, &inv, &rolling, &["-l", "nodes"], &nodes);

    let unreachable = ansible.write_file(
        "unreachable.yml",
        r#"- hosts: all
  gather_facts: false
  tasks:
    - name: first
      command: echo hi
    - name: n2 fails
      command: /bin/false
      when: inventory_hostname == 'n2'
    - name: last
      command: echo last
"#,
    );
    compare(
        &ansible,
        &inv,
        &unreachable,
        &[],
        &["n1", "n2", "n3", "gone"],
    );

    let fatal = ansible.write_file(
        "fatal.yml",
        r#"- hosts: nodes
  gather_facts: false
  any_errors_fatal: true
  tasks:
    - name: n3 fails
      command: /bin/false
      when: inventory_hostname == 'n3'
    - name: never
      command: echo never
- hosts: nodes
  gather_facts: false
  tasks:
    - name: next play
      command: echo next
"#,
    );
    compare(&ansible, &inv, &fatal, &[], &nodes);

    let maxfail = ansible.write_file(
        "maxfail.yml",
        r#"- hosts: nodes
  gather_facts: false
  serial: "67%"
  max_fail_percentage: 30
  tasks:
    - name: n2 fails
      command: /bin/false
      when: inventory_hostname == 'n2'
    - name: after
      command: echo after
- hosts: nodes
  gather_facts: false
  tasks:
    - name: next play
      command: echo next
"#,
    );
    compare(&ansible, &inv, &maxfail, &[], &["n1", "n2"]);

    let check = ansible.write_file(
        "check.yml",
        r#"- hosts: nodes
  gather_facts: false
  tasks:
    - name: command
      command: touch /nonexistent/x
      register: c
    - name: shell
      shell: echo hi
    - name: shows check
      assert:
        that: [c is skipped, ansible_check_mode]
"#,
    );
    compare(&ansible, &inv, &check, &["-C"], &nodes);
}

#[test]
fn same_variable_precedence_as_ansible_playbook() {
    let sshd = Sshd::start();
    let ansible = Ansible::new();
    let vars = sshd.inventory_host_vars();
    let inv = ansible.write_file(
        "inv/hosts.ini",
        &format!(
            "[g]\nn1 {vars} p0=host_inline\nn2 {vars}\n[g:vars]\np0=inv_group\np1=inv_group\n[parent:children]\ng\n[parent:vars]\np1=parent\n"
        ),
    );
    ansible.write_file(
        "inv/group_vars/all.yml",
        "p1: inv_gv_all\np2: inv_gv_all\np4: all\np5: all\np6: all\n",
    );
    ansible.write_file("inv/group_vars/g.yml", "p2: inv_gv_g\np3: inv_gv_g\n");
    ansible.write_file("pb/group_vars/g.yml", "p3: pb_gv_g\np4: pb_gv_g\n");
    ansible.write_file("inv/host_vars/n1.yml", "p4: inv_hv\np5: inv_hv\n");
    ansible.write_file("pb/host_vars/n1.yml", "p5: pb_hv\np6: pb_hv\n");
    let pb = ansible.write_file(
        "pb/site.yml",
        r#"- hosts: g
  gather_facts: false
  vars:
    p6: play
    p7: play
    chained: "{{ p7 }}-{{ inventory_hostname }}"
  tasks:
    - name: show precedence
      debug:
        msg: "{{ [p0, p1, p2, p3, p4, p5, p6, p7] | join(',') }}"
    - name: show magic
      debug:
        msg: "{{ chained }} {{ hostvars['n2']['p3'] }} {{ groups['g'] | join(',') }} {{ group_names | join(',') }} {{ play_hosts | length }}"
    - name: fact wins over play vars
      set_fact:
        p6: fact
    - name: show fact
      debug:
        msg: "{{ p6 }} {{ p7 }}"
"#,
    );
    compare(&ansible, &inv, &pb, &["-e", "p7=extra"], &["n1", "n2"]);
}
