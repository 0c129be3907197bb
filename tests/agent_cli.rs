//! End-to-end tests of the `etcd-agent` binary without SSH: inventory output against the real
//! `ansible-inventory`, local-connection playbooks, output shape, exit codes and bad input.
//!
//! The binary is built once per test process with `cargo build -p etcd-agent`.

use harness::clean_env::remove_ansible_env;
use harness::{run, run_with_stdin, write_executable, write_file, Agent, RunOutput, NO_CONFIG};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `etcd-agent playbook -i inventory playbook --json` in `dir`.
fn agent_json(dir: &Path, inventory: &Path, playbook: &Path) -> RunOutput {
    Agent::in_dir(dir)
        .playbook(inventory, playbook)
        .arg("--json")
        .run()
}

/// Runs the real `ansible-inventory` sandboxed in `dir`.
fn ansible_inventory(dir: &Path, args: &[&str]) -> RunOutput {
    let mut cmd = Command::new("ansible-inventory");
    remove_ansible_env(&mut cmd);
    let home = dir.join(".ansible-home");
    run(cmd
        .args(args)
        .current_dir(dir)
        .env("ANSIBLE_CONFIG", dir.join(NO_CONFIG))
        .env("ANSIBLE_HOME", &home)
        .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
        .env("ANSIBLE_REMOTE_TEMP", home.join("rtmp"))
        .env("ANSIBLE_NOCOLOR", "1"))
}

/// An inventory tree with both formats, group_vars/host_vars (files and dirs), ranges.
fn inventory_fixture(dir: &Path) {
    write_file(
        dir,
        "inv/hosts.ini",
        "loose1 ansible_host=127.0.0.1\n\
         [etcd]\n\
         etcd[01:03] ansible_port=2222 x=5 flag=yes s=\"a b\"\n\
         [web]\n\
         web[a:b] ansible_connection=local\n\
         etcd01\n\
         [prod:children]\n\
         etcd\n\
         web\n\
         [etcd:vars]\n\
         cluster=prod\n\
         n=3\n\
         [all:vars]\n\
         top=1\n",
    );
    write_file(
        dir,
        "inv/group_vars/etcd.yml",
        "gv: 1\ncluster: from_file\nlayered: inv-etcd\n",
    );
    write_file(dir, "inv/group_vars/all/a.yml", "all_a: [1, 2]\ntop: 2\n");
    write_file(
        dir,
        "inv/host_vars/etcd02.yml",
        "hv: two\nnested: {k: v, l: [1, yes, 'no']}\n",
    );
    write_file(
        dir,
        "yinv/hosts.yml",
        "all:\n  vars:\n    top: 1\n  hosts:\n    solo:\n      ansible_host: 127.0.0.2\n  children:\n    etcd:\n      hosts:\n        etcd[1:3]:\n          ansible_port: 2222\n      vars:\n        cluster: prod\n        flag: yes\n    web:\n      hosts:\n        web1:\n        etcd1:\n          extra: [a, b]\n      children:\n        edge:\n          hosts:\n            edge1:\n    sites:\n      hosts:\n        etcd01:\n",
    );
    write_file(dir, "yinv/group_vars/web.yml", "w: 1\n");
    // a later source's shallower group beats an earlier source's deeper one for etcd01
    write_file(dir, "yinv/group_vars/sites.yml", "layered: yinv-sites\n");
    write_file(dir, "yinv/host_vars/etcd1", "hv: 9\ncluster: override\n");
    write_file(dir, "yinv/host_vars/web1.json", "{\"j\": 1}\n");
}

fn assert_same(dir: &Path, args: &[&str]) {
    let theirs = ansible_inventory(dir, args);
    theirs.expect_exit(0);
    let mine = Agent::in_dir(dir).arg("inventory").args(args).run();
    mine.expect_exit(0);
    if args.contains(&"--graph") {
        assert_eq!(mine.stdout, theirs.stdout, "--graph {args:?}");
    } else {
        let a: Value = serde_json::from_str(&theirs.stdout).unwrap();
        let b: Value = serde_json::from_str(&mine.stdout).unwrap();
        assert_eq!(b, a, "inventory {args:?}");
        assert_eq!(mine.stdout, theirs.stdout, "byte-identical {args:?}");
    }
}

#[test]
fn inventory_matches_ansible_inventory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    inventory_fixture(dir);
    for inv in ["inv/hosts.ini", "yinv/hosts.yml", "yinv"] {
        assert_same(dir, &["-i", inv, "--list"]);
        assert_same(dir, &["-i", inv, "--graph"]);
    }
    assert_same(dir, &["-i", "inv/hosts.ini", "--host", "etcd02"]);
    assert_same(dir, &["-i", "inv/hosts.ini", "--graph", "web"]);
    assert_same(dir, &["-i", "yinv/hosts.yml", "--host", "etcd1"]);
    assert_same(
        dir,
        &["-i", "inv/hosts.ini", "-i", "yinv/hosts.yml", "--list"],
    );
    assert_same(
        dir,
        &[
            "-i",
            "inv/hosts.ini",
            "-i",
            "yinv/hosts.yml",
            "--host",
            "etcd01",
        ],
    );
}

fn local_inventory(dir: &Path) -> PathBuf {
    write_file(
        dir,
        "hosts.ini",
        "[g]\nh1 ansible_connection=local\nh2 ansible_connection=local\n[g:vars]\ngreeting=hello\n",
    )
}

/// Replaces the values of the volatile `delta`/`end`/`start` keys with `X`.
fn normalize(s: &str) -> String {
    let mut out = s.to_string();
    for key in ["delta", "end", "start"] {
        let pat = format!("\"{key}\": \"");
        let mut from = 0;
        while let Some(pos) = out[from..].find(&pat) {
            let vstart = from + pos + pat.len();
            let Some(len) = out[vstart..].find('"') else {
                break;
            };
            out.replace_range(vstart..vstart + len, "X");
            from = vstart + 1;
        }
    }
    out
}

#[test]
fn local_playbook_output_recap_and_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let inv = local_inventory(dir);
    let pb = write_file(
        dir,
        "play.yml",
        r#"- name: First play
  hosts: g
  gather_facts: false
  tasks:
    - name: echo
      command: echo {{ greeting }}
      register: r
    - debug: var=r.stdout
    - name: skip one
      shell: "exit 1"
      when: inventory_hostname == 'h2'
      ignore_errors: true
    - name: fail h1
      command: /bin/false
      when: inventory_hostname == 'h1'
    - name: after
      debug: msg="{{ inventory_hostname }} {{ r.rc }} {{ group_names | join(',') }}"
"#,
    );
    let out = Agent::in_dir(dir).playbook(&inv, &pb).run();
    out.expect_exit(2);
    let stdout = normalize(&out.stdout);
    assert!(stdout.starts_with("\nPLAY [First play] *****"), "{stdout}");
    for needle in [
        "TASK [echo] ********************************************************************\nchanged: [h1]\nchanged: [h2]\n",
        "ok: [h1] => {\n    \"r.stdout\": \"hello\"\n}",
        "TASK [skip one] ****************************************************************\nskipping: [h1]\n[ERROR]: Task failed: Module failed: non-zero return code\n",
        &format!("Origin: {}:9:7\n", pb.display()),
        "fatal: [h2]: FAILED! => {\"changed\": true, \"cmd\": \"exit 1\", \"delta\": \"X\", \"end\": \"X\", \"msg\": \"non-zero return code\", \"rc\": 1, \"start\": \"X\", \"stderr\": \"\", \"stderr_lines\": [], \"stdout\": \"\", \"stdout_lines\": []}\n...ignoring\n",
        "fatal: [h1]: FAILED! => {\"changed\": true, \"cmd\": [\"/bin/false\"]",
        "TASK [after] *******************************************************************\nok: [h2] => {\n    \"msg\": \"h2 0 g\"\n}\n",
        "PLAY RECAP *********************************************************************\n\
h1                         : ok=2    changed=1    unreachable=0    failed=1    skipped=1    rescued=0    ignored=0   \n\
h2                         : ok=4    changed=2    unreachable=0    failed=0    skipped=1    rescued=0    ignored=1   \n",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
}

#[test]
fn json_output_has_ansible_posix_json_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let inv = local_inventory(dir);
    let pb = write_file(
        dir,
        "play.yml",
        "- hosts: g\n  gather_facts: false\n  tasks:\n    - name: one\n      command: echo {{ inventory_hostname }}\n    - name: two\n      set_fact: {x: 1}\n",
    );
    let out = agent_json(dir, &inv, &pb);
    out.expect_exit(0);
    let doc: Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    let play = &doc["plays"][0];
    assert_eq!(play["play"]["name"], "g");
    assert!(play["play"]["duration"]["start"].is_string());
    let t = &play["tasks"][0];
    assert_eq!(t["task"]["name"], "one");
    assert_eq!(t["hosts"]["h2"]["stdout"], "h2");
    assert_eq!(t["hosts"]["h2"]["action"], "command");
    assert_eq!(play["tasks"][1]["hosts"]["h1"]["ansible_facts"]["x"], 1);
    assert_eq!(doc["stats"]["h1"]["ok"], 2);
    assert_eq!(doc["stats"]["h1"]["changed"], 1);
    assert_eq!(doc["stats"]["h1"]["failures"], 0);
}

#[test]
fn engine_keywords_over_local_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let inv = write_file(dir, "hosts.ini", "[g]\nh[1:4] ansible_connection=local\n");
    let counter = dir.join("counter");
    let pb = write_file(
        dir,
        "play.yml",
        &format!(
            r#"- hosts: g
  gather_facts: false
  serial: 2
  vars:
    base: "{{{{ inventory_hostname }}}}-base"
  tasks:
    - name: until
      shell: "n=$(cat {c}-{{{{ inventory_hostname }}}} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}-{{{{ inventory_hostname }}}}; echo $n"
      register: cnt
      until: cnt.stdout | int >= 3
      retries: 5
      delay: 0
    - name: once
      command: echo {{{{ inventory_hostname }}}}
      run_once: true
      register: once
    - name: fact
      set_fact:
        mine: "{{{{ base }}}}"
    - name: check
      assert:
        that:
          - cnt.attempts == 3
          - once.stdout in ansible_play_batch
          - once.stdout == ansible_play_batch[0]
          - mine == inventory_hostname + '-base'
          - ansible_play_batch | length == 2
          - groups['g'] | length == 4
          - hostvars[inventory_hostname]['mine'] == mine
    - name: changed_when and failed_when
      command: echo hi
      register: x
      changed_when: false
      failed_when: x.stdout != 'hi'
    - name: no_log
      debug: msg=secret
      no_log: true
"#,
            c = counter.display()
        ),
    );
    let out = Agent::in_dir(dir).playbook(&inv, &pb).run();
    out.expect_exit(0);
    let stdout = &out.stdout;
    assert_eq!(
        stdout.matches("FAILED - RETRYING: [h1]: until").count(),
        2,
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("TASK [once]").count(),
        2,
        "one per serial batch:\n{stdout}"
    );
    assert!(
        stdout.contains("\"censored\": \"the output has been hidden"),
        "{stdout}"
    );
    assert!(!stdout.contains("secret"), "{stdout}");
    assert!(
        stdout.contains("h1                         : ok=6    changed=2 "),
        "{stdout}"
    );
    assert!(
        stdout.contains("h2                         : ok=5    changed=1 "),
        "{stdout}"
    );
}

#[test]
fn check_mode_skips_commands_and_any_errors_fatal_stops_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let inv = local_inventory(dir);
    let marker = dir.join("marker");
    let pb = write_file(
        dir,
        "check.yml",
        &format!(
            "- hosts: g\n  gather_facts: false\n  tasks:\n    - command: touch {m}\n      register: t\n    - assert:\n        that: [t is skipped, \"t.msg == 'Command would have run if not in check mode'\"]\n",
            m = marker.display()
        ),
    );
    let out = Agent::in_dir(dir).playbook(&inv, &pb).arg("-C").run();
    out.expect_exit(0);
    assert!(!marker.exists());
    assert!(out.stdout.contains("skipping: [h1]"));

    let pb = write_file(
        dir,
        "fatal.yml",
        "- hosts: g\n  gather_facts: false\n  any_errors_fatal: true\n  tasks:\n    - command: /bin/false\n      when: inventory_hostname == 'h1'\n    - debug: msg=never\n- hosts: g\n  gather_facts: false\n  tasks:\n    - debug: msg=never-either\n",
    );
    let out = Agent::in_dir(dir).playbook(&inv, &pb).run();
    out.expect_exit(2);
    let stdout = &out.stdout;
    assert!(!stdout.contains("never"), "{stdout}");
}

#[test]
fn bad_input_gives_one_line_and_ansible_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let inv = local_inventory(dir);
    let inv = inv.to_str().unwrap();
    let cases: &[(&str, &str, i32, &str)] = &[
        (
            "syntax.yml",
            "- hosts: g\n  tasks:\n    - debug: msg=x\n   bad: [\n",
            4,
            "syntax.yml:4",
        ),
        (
            "unknown_module.yml",
            "- hosts: g\n  tasks:\n    - name: t\n      nosuchmod: a=1\n",
            4,
            "couldn't resolve module/action 'nosuchmod'",
        ),
        (
            "unknown_kw.yml",
            "- hosts: g\n  tasks:\n    - name: t\n      debug: msg=1\n      bogus_kw: 1\n",
            4,
            "conflicting action statements: debug, bogus_kw",
        ),
        (
            "unsupported.yml",
            "- hosts: g\n  tasks:\n    - name: t\n      debug: msg=1\n      module_defaults: {}\n",
            4,
            "keyword 'module_defaults' in task \"t\" is not supported",
        ),
        (
            "badplay.yml",
            "- hosts: g\n  taks: []\n",
            4,
            "'taks' is not a valid attribute for a Play",
        ),
        (
            "register_bool.yml",
            "- hosts: g\n  tasks:\n    - debug: msg=1\n      register: off\n",
            4,
            "register_bool.yml:3:7: Invalid 'register' specified: Invalid variable name 'False' of type 'bool'.",
        ),
        (
            "register_name.yml",
            "- hosts: g\n  tasks:\n    - debug: msg=1\n      register: \"two words\"\n",
            4,
            "Invalid 'register' specified: Invalid variable name 'two words'.",
        ),
    ];
    for (file, body, code, needle) in cases {
        let pb = write_file(dir, file, body);
        let out = Agent::in_dir(dir)
            .args(["playbook", "-i", inv, pb.to_str().unwrap()])
            .run();
        out.expect_exit(*code);
        let err = &out.stderr;
        assert!(err.contains(needle), "{file}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{file}: one line: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let ok = write_file(
        dir,
        "ok.yml",
        "- hosts: g\n  gather_facts: false\n  tasks:\n    - debug: msg=1\n",
    );
    let ok = ok.to_str().unwrap();
    for (args, code, needle) in [
        (
            vec!["playbook", "-i", inv, "missing.yml"],
            1,
            "could not be found",
        ),
        (
            vec!["playbook", "-i", "missing.ini", ok],
            1,
            "missing.ini does not exist",
        ),
        (
            vec!["playbook", "-i", inv, ok, "-e", "[1]"],
            5,
            "could not be made into a dictionary",
        ),
        (
            vec!["playbook", "-i", inv, ok, "-e", "@nofile.yml"],
            1,
            "Could not find or access 'nofile.yml'",
        ),
        (
            vec!["playbook", "-i", inv, ok, "-l", "nomatch"],
            1,
            "no hosts",
        ),
        (vec!["inventory", "-i", inv, "--host", "nope"], 1, "nope"),
    ] {
        let out = Agent::in_dir(dir).args(&args).run();
        out.expect_exit(code);
        let err = &out.stderr;
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    // an undefined variable fails the task and names the variable
    let und = write_file(
        dir,
        "und.yml",
        "- hosts: g\n  gather_facts: false\n  tasks:\n    - debug: msg=\"{{ nope }}\"\n",
    );
    let out = Agent::in_dir(dir)
        .args(["playbook", "-i", inv, und.to_str().unwrap()])
        .run();
    out.expect_exit(2);
    assert!(out.stdout.contains("'nope' is undefined"), "{}", out.stdout);
}

/// Runs both engines on the same command line in the harness's sandbox; returns
/// (ansible-playbook's run, the agent's run).
fn both_engines(a: &harness::Ansible, args: &[&str]) -> (RunOutput, RunOutput) {
    let theirs = run(a.command("ansible-playbook").args(args));
    let mine = Agent::in_sandbox(a).arg("playbook").args(args).run();
    (theirs, mine)
}

#[test]
fn empty_playbooks_and_bad_extra_vars_exit_as_ansible_playbook_does() {
    let a = harness::Ansible::new();
    let inv = a.write_file("hosts.ini", "[g]\nh1 ansible_connection=local\n");
    let inv = inv.to_str().unwrap();
    let ok = a.write_file(
        "ok.yml",
        "- hosts: g\n  gather_facts: false\n  tasks:\n    - debug: msg=1\n",
    );
    let ok = ok.to_str().unwrap();
    a.write_file("empty_vars.yml", "");
    a.write_file("list_vars.yml", "[1, 2]\n");
    a.write_file("bad_vars.yml", "a: [\n");
    // (playbook body or None for ok.yml, -e value or None, ansible-playbook's exit code, words)
    let cases: &[(Option<&str>, Option<&str>, i32, &str)] = &[
        (Some("---\n"), None, 4, "Empty playbook, nothing to do"),
        (Some(""), None, 4, "Empty playbook, nothing to do"),
        (
            Some("# only a comment\n"),
            None,
            4,
            "Empty playbook, nothing to do",
        ),
        (
            Some("[]\n"),
            None,
            4,
            "A playbook must contain at least one play",
        ),
        (None, Some("{bad"), 4, "<CLI option '-e'>"),
        (
            None,
            Some("@nofile.yml"),
            1,
            "Could not find or access 'nofile.yml'",
        ),
        (None, Some("@bad_vars.yml"), 4, "bad_vars.yml"),
        (
            None,
            Some("@empty_vars.yml"),
            5,
            "could not be made into a dictionary",
        ),
        (
            None,
            Some("@list_vars.yml"),
            5,
            "could not be made into a dictionary",
        ),
        (
            None,
            Some("[1]"),
            5,
            "'[1]' could not be made into a dictionary",
        ),
        (
            None,
            Some("./x.yml"),
            5,
            "Please prepend extra_vars filename './x.yml' with '@'",
        ),
        (None, Some("{\"a\": 1}"), 0, ""),
        (None, Some("a=1 word"), 0, ""),
    ];
    for (i, (body, extra, code, words)) in cases.iter().enumerate() {
        let pb = match body {
            Some(b) => a.write_file(&format!("case{i}.yml"), b),
            None => PathBuf::from(ok),
        };
        let mut args = vec!["-i", inv, pb.to_str().unwrap()];
        if let Some(e) = extra {
            args.extend(["-e", e]);
        }
        let (theirs, mine) = both_engines(&a, &args);
        theirs.expect_exit(*code);
        mine.expect_exit(*code);
        let my_err = &mine.stderr;
        assert!(my_err.contains(words), "etcd-agent {args:?}: {my_err}");
        assert!(!my_err.contains("panicked"), "{my_err}");
        if *code != 0 {
            assert_eq!(my_err.trim().lines().count(), 1, "one line: {my_err}");
        }
    }
}

#[test]
fn list_hosts_tasks_and_syntax_check() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let inv = local_inventory(dir);
    let pb = write_file(
        dir,
        "p.yml",
        "- hosts: g\n  tasks:\n    - name: t\n      command: echo\n    - shell: echo 2\n",
    );
    let out = Agent::in_dir(dir)
        .playbook(&inv, &pb)
        .args(["--list-hosts", "--list-tasks", "-l", "h2"])
        .run();
    out.expect_exit(0);
    let stdout = &out.stdout;
    assert!(stdout.contains("    hosts (1):\n      h2\n"), "{stdout}");
    assert!(
        stdout.contains("      t\tTAGS: []\n      shell\tTAGS: []"),
        "{stdout}"
    );
    Agent::in_dir(dir)
        .playbook(&inv, &pb)
        .arg("--syntax-check")
        .run()
        .expect_exit(0);
}

#[test]
fn python_modules_are_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let inv = local_inventory(dir);
    write_file(
        dir,
        "library/pymod.py",
        "#!/usr/bin/python\nfrom ansible.module_utils.basic import AnsibleModule\n",
    );
    write_file(
        dir,
        "library/pymod2",
        "#!/usr/bin/env python3\nprint('{}')\n",
    );
    for m in ["pymod", "pymod2"] {
        let pb = write_file(
            dir,
            "p.yml",
            &format!("- hosts: g\n  tasks:\n    - {m}: {{}}\n"),
        );
        let out = Agent::in_dir(dir).playbook(&inv, &pb).run();
        out.expect_exit(4);
        let err = &out.stderr;
        assert!(err.contains("not supported"), "{err}");
    }
}

#[test]
fn wait_for_pause_facts_and_ansible_cfg() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_file(dir, "inv/hosts.ini", "[g]\nh1 ansible_connection=local\n");
    write_executable(
        dir,
        "mods/echo_mod",
        "#!/bin/sh\nprintf '{\"changed\": true, \"got\": %s}' \"$(cat \"$1\")\"\n",
    );
    // ansible.cfg in the working directory supplies inventory and library
    write_file(
        dir,
        "ansible.cfg",
        "[defaults]\ninventory = inv/hosts.ini\nlibrary = mods\nforks = 3\n",
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let file = dir.join("appears");
    let pb = write_file(
        dir,
        "p.yml",
        &format!(
            r#"- hosts: all
  tasks:
    - name: facts were gathered
      assert:
        that: [ansible_system == 'Linux', "ansible_facts['system'] == 'Linux'"]
    - name: port open
      wait_for: {{port: {port}, timeout: 10}}
    - name: make file soon
      shell: (sleep 1; echo ready > {f}) &
    - name: file appears with content
      wait_for: {{path: {f}, search_regex: ready, timeout: 10}}
    - name: closed port times out
      wait_for: {{port: 1, timeout: 1}}
      register: w
      ignore_errors: true
    - pause: {{seconds: 1}}
    - echo_mod: {{a: 1}}
      register: m
    - assert:
        that:
          - w is failed
          - "w.msg == 'Timeout when waiting for 127.0.0.1:1'"
          - m.got.a == 1
          - m.got._ansible_module_name == 'echo_mod'
"#,
            f = file.display()
        ),
    );
    let out = Agent::with_config(dir)
        .args(["playbook", pb.to_str().unwrap()])
        .run();
    drop(listener);
    out.expect_exit(0);
    let stdout = &out.stdout;
    assert!(stdout.contains("TASK [Gathering Facts]"), "{stdout}");
    assert!(stdout.contains("h1                         : ok=9    changed=2    unreachable=0    failed=0    skipped=0    rescued=0    ignored=1"), "{stdout}");
}

#[test]
fn default_output_is_identical_to_ansible_playbook_for_binary_modules_and_diffs() {
    let ansible = harness::Ansible::new();
    let module = ansible.write_file(
        "library/dmod",
        "#!/bin/sh\ncat <<'J'\n{\"changed\": true, \"diff\": {\"before\": \"a\\nb\\nc\\nd\\ne\\nf\\ng\\nh\\n\", \"after\": \"a\\nB\\nc\\nd\\ne\\nf\\ng\\nH\\n\"}, \"value\": 1}\nJ\n",
    );
    harness::make_executable(&module);
    let inv = ansible.write_file(
        "hosts.ini",
        "[g]\nh1 ansible_connection=local\nh2 ansible_connection=local\n",
    );
    let pb = ansible.write_file(
        "p.yml",
        "- name: diffs\n  hosts: g\n  gather_facts: false\n  tasks:\n    - name: module with a diff\n      dmod: {}\n      register: d\n    - name: show\n      debug:\n        var: d.value\n    - name: skipped\n      dmod: {}\n      when: false\n",
    );
    // -f 1: ansible-playbook prints hosts in completion order
    for extra in [
        vec!["-f", "1"],
        vec!["-f", "1", "-D"],
        vec!["-f", "1", "-v", "-D"],
    ] {
        let theirs = ansible.playbook(&inv, &pb, &extra);
        let mine = Agent::in_sandbox(&ansible)
            .playbook(&inv, &pb)
            .args(&extra)
            .sandbox_env(&ansible)
            .run();
        let theirs_out: String = theirs
            .stdout
            .lines()
            .filter(|l| !l.starts_with("Using ") && !l.starts_with("No config file"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(mine.stdout, theirs_out, "{extra:?}\n{}", theirs.describe());
    }
}

/// A stand-in `systemctl` (there is no systemd on the test machines) that keeps each unit's
/// active/enabled state in files and logs every call, so the `systemd`/`service` builtins are
/// checked against what they asked for and what state they left.
const FAKE_SYSTEMCTL: &str = r#"#!/bin/sh
echo "$*" >> "$STATE/calls"
verb=$1; unit=$2
case "$verb" in
  is-active) test -e "$STATE/$unit.active" ;;
  is-enabled) test -e "$STATE/$unit.enabled" ;;
  start|restart|reload) [ "$unit" = broken ] && { echo "Job for broken.service failed." >&2; exit 1; }
    touch "$STATE/$unit.active" ;;
  stop) rm -f "$STATE/$unit.active" ;;
  enable) touch "$STATE/$unit.enabled" ;;
  disable) rm -f "$STATE/$unit.enabled" ;;
  daemon-reload) ;;
  *) echo "unknown verb $verb" >&2; exit 2 ;;
esac
"#;

#[test]
fn systemd_and_service_builtins_drive_systemctl_idempotently() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let bin = write_executable(dir, "bin/systemctl", FAKE_SYSTEMCTL);
    let inv = write_file(dir, "hosts.ini", "h1 ansible_connection=local\n");
    let pb = write_file(
        dir,
        "play.yml",
        &format!(
            r#"- hosts: h1
  gather_facts: false
  environment:
    PATH: "{bin}:/usr/bin:/bin"
    STATE: "{state}"
  tasks:
    - name: start
      systemd: {{name: etcd, state: started, daemon_reload: true}}
    - name: start again
      systemd: {{name: etcd, state: started}}
    - name: restart
      ansible.builtin.systemd_service: {{name: etcd, state: restarted}}
    - name: stop in check mode
      systemd: {{name: etcd, state: stopped}}
      check_mode: true
    - name: stop
      service: {{name: etcd, state: stopped}}
    - name: enable
      systemd: {{name: etcd, enabled: true}}
    - name: enable again
      systemd: {{name: etcd, enabled: true}}
    - name: reload a stopped unit starts it
      service: {{name: etcd, state: reloaded}}
    - name: a unit that fails to start
      systemd: {{name: broken, state: started}}
      ignore_errors: true
    - name: a bad state
      systemd: {{name: etcd, state: paused}}
      ignore_errors: true
"#,
            bin = bin.parent().unwrap().display(),
            state = state.display()
        ),
    );
    let out = agent_json(dir, &inv, &pb);
    out.expect_exit(0);
    let doc: Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    let outcome = |i: usize| {
        let r = &doc["plays"][0]["tasks"][i]["hosts"]["h1"];
        match (r["failed"].as_bool(), r["changed"].as_bool()) {
            (Some(true), _) => "failed",
            (_, Some(true)) => "changed",
            _ => "ok",
        }
    };
    let outcomes: Vec<&str> = (0..10).map(outcome).collect();
    assert_eq!(
        outcomes,
        [
            "changed", "ok", "changed", "changed", "changed", "changed", "ok", "changed", "failed",
            "failed"
        ]
    );
    let failed_msg = |i: usize| {
        doc["plays"][0]["tasks"][i]["hosts"]["h1"]["msg"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        failed_msg(8).contains("Unable to start service broken: Job for broken.service failed.")
    );
    assert!(
        failed_msg(9).contains("value of state must be one of"),
        "{}",
        failed_msg(9)
    );
    let calls = std::fs::read_to_string(state.join("calls")).unwrap();
    assert_eq!(
        calls.lines().collect::<Vec<_>>(),
        [
            "daemon-reload",
            "is-active etcd",
            "start etcd",
            "is-active etcd",
            "is-active etcd",
            "restart etcd",
            "is-active etcd",
            "is-active etcd",
            "stop etcd",
            "is-enabled etcd",
            "enable etcd",
            "is-enabled etcd",
            "is-active etcd",
            "start etcd",
            "is-active broken",
            "start broken",
            // the bad state is refused by the argument spec before systemctl runs, as Ansible does
        ],
        "check mode ran only the query; a bad state runs nothing"
    );
    assert!(state.join("etcd.active").exists() && state.join("etcd.enabled").exists());
}

/// Runs the real `ansible-vault` in the sandbox; returns its stdout.
fn ansible_vault(a: &harness::Ansible, args: &[&str]) -> String {
    let out = run(a.command("ansible-vault").args(args));
    out.expect_exit(0);
    out.stdout
}

/// One run of each engine with extra environment and stdin; (exit code, stdout + stderr).
fn both_engines_env(
    a: &harness::Ansible,
    args: &[&str],
    env: &[(&str, &Path)],
    stdin: Option<&str>,
) -> ((Option<i32>, String), (Option<i32>, String)) {
    let run = |cmd: &mut Command| {
        let out = run_with_stdin(cmd.envs(env.iter().copied()), stdin);
        (out.code(), out.combined())
    };
    // setsid: no controlling terminal, so a password prompt reads stdin under both engines
    let mut theirs = a.command("setsid");
    theirs.arg("ansible-playbook").args(args);
    let mut mine = Command::new("setsid");
    mine.arg(harness::agent_binary())
        .arg("playbook")
        .args(args)
        .current_dir(a.dir())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("ANSIBLE_CONFIG", a.dir().join("ansible.cfg"));
    (run(&mut theirs), run(&mut mine))
}

#[test]
fn vault_encrypted_files_and_inline_values_decrypt_as_under_ansible_playbook() {
    let a = harness::Ansible::new();
    let dir = a.dir().to_path_buf();
    const PASSWORD: &str = "s3cret-pass";
    const PROD_PASSWORD: &str = "pr0d-pass";
    a.write_file("pw", &format!("{PASSWORD}\n"));
    a.write_file("prodpw", &format!("{PROD_PASSWORD}\n"));
    a.write_file("badpw", "wrong\n");
    let script = a.write_file("pw-script.sh", &format!("#!/bin/sh\necho '{PASSWORD}'\n"));
    harness::make_executable(&script);
    // encrypted with the real ansible-vault: a vars file and an -e file (1.1, default id), a
    // group_vars file (1.2, vault id prod) and an inline value
    a.write_file("vf.yml", "vf_secret: from-vars-file\n");
    a.write_file("ev.yml", "ev_secret: from-extra-file\n");
    a.write_file("group_vars/g.yml", "gv_secret: from-group-vars\n");
    ansible_vault(
        &a,
        &["encrypt", "--vault-password-file", "pw", "vf.yml", "ev.yml"],
    );
    ansible_vault(
        &a,
        &["encrypt", "--vault-id", "prod@prodpw", "group_vars/g.yml"],
    );
    let inline = ansible_vault(
        &a,
        &[
            "encrypt_string",
            "--vault-password-file",
            "pw",
            "inline-value",
            "--name",
            "inl",
        ],
    );
    for f in ["vf.yml", "ev.yml"] {
        let t = std::fs::read_to_string(dir.join(f)).unwrap();
        assert!(t.starts_with("$ANSIBLE_VAULT;1.1;AES256\n"), "{t}");
    }
    let t = std::fs::read_to_string(dir.join("group_vars/g.yml")).unwrap();
    assert!(t.starts_with("$ANSIBLE_VAULT;1.2;AES256;prod\n"), "{t}");
    let inline_vars: String = inline.lines().map(|l| format!("    {l}\n")).collect();
    a.write_file(
        "hosts.ini",
        "[g]\nh1 ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n",
    );
    // the values reach a file on disk through copy (whose result does not show content)
    let pb = a.write_file(
        "vault.yml",
        &format!(
            "- hosts: g\n  gather_facts: false\n  vars_files: [vf.yml]\n  vars:\n{inline_vars}  tasks:\n    - copy:\n        dest: \"{{{{ out }}}}\"\n        content: \"{{{{ vf_secret }}}} {{{{ inl }}}} {{{{ gv_secret }}}} {{{{ ev_secret }}}}\"\n"
        ),
    );
    let pb = pb.to_str().unwrap();
    let expected = "from-vars-file inline-value from-group-vars from-extra-file";
    let plain = [
        "from-vars-file",
        "inline-value",
        "from-group-vars",
        "from-extra-file",
    ];
    let cfg = a.write_file(
        "vault.cfg",
        "[defaults]\nretry_files_enabled = False\nvault_password_file = pw\nvault_identity_list = prod@prodpw\n",
    );
    // an encrypted inventory (same directory, so the same group_vars)
    a.write_file(
        "hosts-vault.ini",
        "[g]\nh1 ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n",
    );
    ansible_vault(
        &a,
        &["encrypt", "--vault-password-file", "pw", "hosts-vault.ini"],
    );
    let pw = dir.join("pw");
    let script_client = dir.join("pw-script.sh");
    // (name, extra args, env, stdin, ansible-playbook's exit code, words in the agent's output)
    type Case<'c> = (
        &'c str,
        Vec<&'c str>,
        Vec<(&'c str, &'c Path)>,
        Option<&'c str>,
        i32,
        &'c str,
    );
    let cases: Vec<Case> = vec![
        (
            "password file + vault id",
            vec!["--vault-password-file", "pw", "--vault-id", "prod@prodpw"],
            vec![],
            None,
            0,
            "",
        ),
        (
            "script + vault id",
            vec!["--vault-id", "pw-script.sh", "--vault-id", "prod@prodpw"],
            vec![],
            None,
            0,
            "",
        ),
        (
            "env password file",
            vec!["--vault-id", "prod@prodpw"],
            vec![("ANSIBLE_VAULT_PASSWORD_FILE", pw.as_path())],
            None,
            0,
            "",
        ),
        (
            "ansible.cfg password file and identity list",
            vec![],
            vec![("ANSIBLE_CONFIG", cfg.as_path())],
            None,
            0,
            "",
        ),
        (
            "encrypted inventory",
            vec![
                "-i",
                "hosts-vault.ini",
                "--vault-password-file",
                "pw",
                "--vault-id",
                "prod@prodpw",
            ],
            vec![],
            None,
            0,
            "",
        ),
        (
            "labelled prompt",
            vec!["--vault-id", "prod@prompt", "--vault-password-file", "pw"],
            vec![],
            Some("pr0d-pass\n"),
            0,
            "",
        ),
        (
            "script from env",
            vec!["--vault-id", "prod@prodpw"],
            vec![("ANSIBLE_VAULT_PASSWORD_FILE", script_client.as_path())],
            None,
            0,
            "",
        ),
        (
            "prompt",
            vec!["--ask-vault-pass", "--vault-id", "prod@prodpw"],
            vec![],
            Some("s3cret-pass\n"),
            0,
            "",
        ),
        (
            "no secret",
            vec![],
            vec![],
            None,
            1,
            "Attempting to decrypt but no vault secrets found",
        ),
        (
            "wrong password",
            vec!["--vault-password-file", "badpw"],
            vec![],
            None,
            1,
            "Decryption failed (no vault secrets were found that could decrypt)",
        ),
        (
            "prod only",
            vec!["--vault-id", "prod@prodpw"],
            vec![],
            None,
            1,
            "Decryption failed (no vault secrets were found that could decrypt)",
        ),
        (
            "missing password file",
            vec!["--vault-password-file", "nope"],
            vec![],
            None,
            1,
            "The vault password file",
        ),
    ];
    for (i, (name, extra, env, stdin, code, words)) in cases.iter().enumerate() {
        let outs: Vec<PathBuf> = (0..2)
            .map(|e| dir.join(format!("out-{i}-{e}.txt")))
            .collect();
        let mut results = Vec::new();
        for out in &outs {
            let e_out = format!("out={}", out.display());
            let inv = if extra.first() == Some(&"-i") {
                extra[1]
            } else {
                "hosts.ini"
            };
            let extra = if extra.first() == Some(&"-i") {
                &extra[2..]
            } else {
                &extra[..]
            };
            let mut args = vec!["-i", inv, pb, "-e", &e_out, "-e", "@ev.yml"];
            args.extend(extra.iter().copied());
            let r = both_engines_env(&a, &args, env, *stdin);
            results.push(r);
        }
        // the first run's ansible-playbook result and the second run's agent result
        let (theirs, _) = &results[0];
        let (_, mine) = &results[1];
        assert_eq!(
            theirs.0,
            Some(*code),
            "{name}: ansible-playbook: {}",
            theirs.1
        );
        assert_eq!(mine.0, theirs.0, "{name}: etcd-agent: {}", mine.1);
        assert!(mine.1.contains(words), "{name}: etcd-agent: {}", mine.1);
        for (engine, out) in ["ansible-playbook", "etcd-agent"].iter().zip(&outs) {
            let written = std::fs::read_to_string(out).ok();
            if *code == 0 {
                assert_eq!(written.as_deref(), Some(expected), "{name}: {engine}");
            } else {
                assert_eq!(written, None, "{name}: {engine} wrote {}", out.display());
            }
        }
        for secret in plain.iter().chain([&PASSWORD, &PROD_PASSWORD]) {
            assert!(
                !mine.1.contains(secret),
                "{name}: etcd-agent printed a secret: {}",
                mine.1
            );
        }
    }
    // group_vars that cannot be decrypted end the run with exit 4 (before any task)
    let gv = a.write_file(
        "gv.yml",
        "- hosts: g\n  gather_facts: false\n  tasks:\n    - debug: msg=hi\n",
    );
    for extra in [vec![], vec!["--vault-password-file", "badpw"]] {
        let mut args = vec!["-i", "hosts.ini", gv.to_str().unwrap()];
        args.extend(extra.iter().copied());
        let (theirs, mine) = both_engines_env(&a, &args, &[], None);
        assert_eq!(theirs.0, Some(4), "ansible-playbook: {}", theirs.1);
        assert_eq!(mine.0, theirs.0, "etcd-agent: {}", mine.1);
        assert!(!mine.1.contains("from-group-vars"), "{}", mine.1);
    }
    // an inline value no secret decrypts fails only the task that uses it (a directory
    // without the encrypted group_vars)
    a.write_file(
        "lazy/hosts.ini",
        "[g]\nh1 ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n",
    );
    let lazy = a.write_file(
        "lazy/lazy.yml",
        &format!(
            "- hosts: g\n  gather_facts: false\n  vars:\n{inline_vars}  tasks:\n    - debug: msg=unused\n    - debug: msg=\"{{{{ inl }}}}\"\n    - debug: msg=never\n"
        ),
    );
    let lazy = lazy.to_str().unwrap();
    for (extra, words) in [
        (vec![], "Attempt to use undecryptable variable: Attempting to decrypt but no vault secrets found."),
        (vec!["--vault-password-file", "badpw"], "Attempt to use undecryptable variable: Decryption failed (no vault secrets were found that could decrypt)."),
    ] {
        let mut args = vec!["-i", "lazy/hosts.ini", lazy];
        args.extend(extra.iter().copied());
        let (theirs, mine) = both_engines_env(&a, &args, &[], None);
        assert_eq!(theirs.0, Some(2), "ansible-playbook: {}", theirs.1);
        assert_eq!(mine.0, Some(2), "etcd-agent: {}", mine.1);
        assert!(theirs.1.contains(words), "ansible-playbook: {}", theirs.1);
        assert!(mine.1.contains(words), "etcd-agent: {}", mine.1);
        assert!(mine.1.contains("ok=1 ") && mine.1.contains("failed=1 "), "{}", mine.1);
        assert!(!mine.1.contains("inline-value"), "{}", mine.1);
    }
}
