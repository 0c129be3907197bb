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
            "Invalid 'register' specified: Invalid variable name 'False' of type 'bool'.\nOrigin: ",
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
        // one `[ERROR]` line, then (an error about a place) ansible-core's `Origin:` block:
        // the place and its source lines with a caret
        let mut lines = err.trim().lines();
        let first = lines.next().unwrap_or_default();
        assert!(first.starts_with("[ERROR]: "), "{file}: {err}");
        let rest: Vec<&str> = lines.collect();
        assert!(
            rest.is_empty() || (rest[0].starts_with("Origin: ") && rest.len() <= 6),
            "{file}: one line, or one with its origin: {err}"
        );
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
        (vec!["inventory", "-i", inv, "--host", "nope"], 5, "nope"),
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
    let inv = a.write_file(
        "hosts.ini",
        "[g]\nh1 ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n",
    );
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

/// Python modules in `library/` run through ansible-core (corpus `100_python_library_modules`);
/// without it, or when ansible-core cannot run one (an old-style module), the run is refused
/// before it starts, naming the module.
#[test]
fn python_modules_without_ansible_core_are_refused_clearly() {
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
        let out = Agent::in_dir(dir)
            .playbook(&inv, &pb)
            .env("ETCD_AGENT_ANSIBLE_PYTHON", "none")
            .run();
        out.expect_exit(4);
        let err = &out.stderr;
        assert!(
            err.contains("not supported") && err.contains(m) && err.contains("ansible-core"),
            "{err}"
        );
    }
    // with ansible-core, a module it packages only old-style is still refused by name
    let pb = write_file(dir, "p.yml", "- hosts: g\n  tasks:\n    - pymod2: {}\n");
    let out = Agent::in_dir(dir).playbook(&inv, &pb).run();
    out.expect_exit(4);
    assert!(
        out.stderr.contains("pymod2") && out.stderr.contains("old-style"),
        "{}",
        out.stderr
    );
}

#[test]
fn wait_for_pause_facts_and_ansible_cfg() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_file(dir, "inv/hosts.ini", "[g]\nh1 ansible_connection=local\n");
    write_executable(
        dir,
        "mods/echo_mod",
        // `_ansible_` keys renamed: a registered result loses them at every depth
        "#!/bin/sh\nprintf '{\"changed\": true, \"got\": %s}' \"$(sed 's/\"_ansible_/\"internal_ansible_/g' \"$1\")\"\n",
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
          - m.got.internal_ansible_module_name == 'echo_mod'
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

// ---------------------------------------------------------------------------------------
// Command-line flags of ansible-playbook, ansible and ansible-inventory (issue #14), each
// compared with the real program where it has one.

/// Runs the same command line (`program` is `ansible-playbook` or `ansible`; the agent gets
/// `playbook`/`adhoc` in front) under both engines in `a`'s sandbox, the agent with the
/// sandbox's whole environment, both with `env` and `stdin`; (theirs, mine).
fn both_engines_with(
    a: &harness::Ansible,
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> (RunOutput, RunOutput) {
    let theirs = run_with_stdin(
        a.command(program).args(args).envs(env.iter().copied()),
        stdin,
    );
    let sub = if program == "ansible" {
        "adhoc"
    } else {
        "playbook"
    };
    let mut mine = Agent::in_sandbox(a).sandbox_env(a).arg(sub).args(args);
    for (k, v) in env {
        mine = mine.env(k, v);
    }
    (theirs, mine.run_with_stdin(stdin))
}

/// stdout without the lines only ansible-playbook prints about its config file.
fn without_config_lines(stdout: &str) -> String {
    stdout
        .lines()
        .filter(|l| !l.starts_with("Using ") && !l.starts_with("No config file"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Asserts both runs exited alike and printed the same stdout.
fn assert_same_run(what: &str, theirs: &RunOutput, mine: &RunOutput) {
    assert_eq!(
        mine.code(),
        theirs.code(),
        "{what}: exit codes\n--- ansible:\n{}\n--- etcd-agent:\n{}",
        theirs.describe(),
        mine.describe()
    );
    assert_eq!(
        mine.stdout,
        without_config_lines(&theirs.stdout),
        "{what}: stdout\n--- ansible stderr:\n{}\n--- etcd-agent stderr:\n{}",
        theirs.stderr,
        mine.stderr
    );
    assert!(!mine.stderr.contains("panicked"), "{what}: {}", mine.stderr);
}

#[test]
fn version_prints_a_line_and_unknown_flags_fail_as_clap_does() {
    let tmp = tempfile::tempdir().unwrap();
    for sub in [&[][..], &["playbook"], &["inventory"], &["adhoc"]] {
        let out = Agent::in_dir(tmp.path()).args(sub).arg("--version").run();
        out.expect_exit(0);
        let line = out.stdout.trim_end();
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(
            line.starts_with("etcd-agent") && line.contains(env!("CARGO_PKG_VERSION")),
            "{line}"
        );
    }
    for bad in [
        &["playbook", "--no-such-flag", "p.yml"][..],
        &["adhoc", "all", "--step"],
        &["inventory", "--list", "--start-at-task", "x"],
    ] {
        let out = Agent::in_dir(tmp.path()).args(bad).run();
        out.expect_exit(2);
        assert!(out.stderr.contains("unexpected argument"), "{}", out.stderr);
    }
}

#[test]
fn connection_flag_is_the_default_below_host_variables_and_the_play_keyword() {
    let a = harness::Ansible::new();
    // nothing listens on port 1: a host that goes over ssh is unreachable
    let inv = a.write_file(
        "hosts.ini",
        "[g]\nh1 ansible_port=1\nh2 ansible_connection=ssh ansible_host=127.0.0.1 ansible_port=1\nh3 ansible_host=127.0.0.1 ansible_port=1\n",
    );
    let pb = a.write_file(
        "c.yml",
        "- name: cli connection\n  hosts: h1,h2\n  gather_facts: false\n  tasks:\n    - name: where\n      raw: echo here\n- name: keyword\n  hosts: h3\n  gather_facts: false\n  connection: ssh\n  tasks:\n    - name: where\n      raw: echo there\n",
    );
    let (inv, pb) = (inv.to_str().unwrap(), pb.to_str().unwrap());
    for flag in ["-c", "--connection"] {
        let (theirs, mine) = both_engines_with(
            &a,
            "ansible-playbook",
            &["-i", inv, pb, flag, "local", "-f", "1"],
            &[],
            None,
        );
        theirs.expect_exit(4);
        mine.expect_exit(4);
        let status = |o: &RunOutput| -> Vec<String> {
            o.stdout
                .lines()
                .filter(|l| {
                    l.starts_with("changed: [") || l.starts_with("fatal: [") || l.contains(" : ok=")
                })
                .map(|l| l.split(" => ").next().unwrap_or(l).trim_end().to_string())
                .collect()
        };
        assert_eq!(
            status(&mine),
            status(&theirs),
            "{}\n{}",
            theirs.stdout,
            mine.stdout
        );
        assert!(mine.stdout.contains("changed: [h1]"), "{}", mine.stdout);
        assert!(
            mine.stdout.contains("fatal: [h2]: UNREACHABLE!"),
            "{}",
            mine.stdout
        );
        assert!(
            mine.stdout.contains("fatal: [h3]: UNREACHABLE!"),
            "{}",
            mine.stdout
        );
    }
    // a connection the agent does not have is refused before anything runs
    let out = Agent::in_sandbox(&a)
        .args(["playbook", "-i", inv, pb, "-c", "paramiko"])
        .run();
    out.expect_exit(5);
    assert!(out.stderr.contains("paramiko"), "{}", out.stderr);
}

/// A playbook with blocks, a role, several plays and `serial`, for `--start-at-task`,
/// `--step` and `--list-tags`.
fn flags_playbook(a: &harness::Ansible) -> (PathBuf, PathBuf) {
    a.write_file(
        "roles/r1/tasks/main.yml",
        "- name: r1 first\n  debug: msg=r1a\n  tags: [rt]\n- name: r1 second\n  debug: msg=r1b\n",
    );
    let inv = a.write_file(
        "hosts.ini",
        "[g]\nh1 ansible_connection=local ansible_python_interpreter=/usr/bin/python3\nh2 ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n",
    );
    let pb = a.write_file(
        "p.yml",
        r#"- name: play one
  hosts: g
  gather_facts: false
  tags: [ptag]
  tasks:
    - name: one a
      debug: msg=1a
      tags: [x, y]
    - block:
        - name: in block
          debug: msg=blk
          notify: hh
          changed_when: true
        - name: block second
          debug: msg=b2
      rescue:
        - name: resc
          debug: msg=r
      always:
        - name: alw
          debug: msg=a
      tags: [btag]
  handlers:
    - name: hh
      debug: msg=handler
- name: play two
  hosts: g
  roles:
    - r1
  tasks:
    - name: two a
      debug: msg=2a
      tags: [z]
- name: play three
  hosts: g
  serial: 1
  gather_facts: false
  tasks:
    - name: s1
      debug: msg=s1
    - name: s2
      debug: msg=s2
"#,
    );
    (inv, pb)
}

#[test]
fn start_at_task_starts_where_ansible_playbook_starts() {
    let a = harness::Ansible::new();
    let (inv, pb) = flags_playbook(&a);
    let (inv, pb) = (inv.to_str().unwrap(), pb.to_str().unwrap());
    // inside a block, in a role (with and without its prefix), a glob, a play's first task
    // (facts gathered even without gather_facts), an `always` task, the facts task itself,
    // a task of a serial play (later batches run whole), nothing
    for name in [
        "block second",
        "r1 : r1 second",
        "r1 first",
        "two*",
        "one a",
        "alw",
        "Gathering Facts",
        "s2",
        "no such task",
    ] {
        let (theirs, mine) = both_engines_with(
            &a,
            "ansible-playbook",
            &[
                "-i",
                inv,
                pb,
                "-f",
                "1",
                "--start-at-task",
                name,
                "--flush-cache",
            ],
            &[],
            None,
        );
        assert_same_run(name, &theirs, &mine);
        let error = |o: &RunOutput| {
            o.stderr
                .lines()
                .find(|l| l.contains("No matching task"))
                .map(str::to_string)
        };
        assert_eq!(error(&mine), error(&theirs), "{name}: {}", mine.stderr);
        if name == "no such task" {
            assert!(error(&mine).is_some(), "{}", mine.stderr);
        }
    }
}

#[test]
fn step_asks_before_each_task_and_reads_the_answers_from_stdin() {
    let a = harness::Ansible::new();
    let (inv, pb) = flags_playbook(&a);
    let (inv, pb) = (inv.to_str().unwrap(), pb.to_str().unwrap());
    // no, yes, continue (stops asking in that play; the next play asks again); yes to
    // everything (handlers are asked as HANDLER); no to everything; the answers run out
    // (ansible-playbook stops with 250, and so does the agent)
    for answers in [
        "n\ny\nc\ny\nn\ny\nc\nY\n",
        &"y\n".repeat(20),
        &"n\n".repeat(20),
        "yes\ncontinue\n",
    ] {
        let (theirs, mine) = both_engines_with(
            &a,
            "ansible-playbook",
            &["-i", inv, pb, "-f", "1", "--step"],
            &[],
            Some(answers),
        );
        assert_same_run(&format!("answers {answers:?}"), &theirs, &mine);
        assert!(mine
            .stdout
            .contains("Perform task: TASK: one a (N)o/(y)es/(c)ontinue: "));
    }
}

#[test]
fn list_tags_lists_play_and_task_tags_as_ansible_playbook_does() {
    let a = harness::Ansible::new();
    let (inv, pb) = flags_playbook(&a);
    let (inv, pb) = (inv.to_str().unwrap(), pb.to_str().unwrap());
    for extra in [
        &["--list-tags"][..],
        &["--list-tags", "--list-tasks"],
        &["--list-tags", "--list-tasks", "--list-hosts", "-l", "h2"],
        &["--list-tags", "-t", "x,rt"],
        &["--list-tags", "--skip-tags", "btag"],
        &["--list-tasks"],
    ] {
        let mut args = vec!["-i", inv, pb];
        args.extend(extra);
        let (theirs, mine) = both_engines_with(&a, "ansible-playbook", &args, &[], None);
        assert_same_run(&format!("{extra:?}"), &theirs, &mine);
    }
}

#[test]
fn force_handlers_run_handlers_on_hosts_that_failed_after_the_notification() {
    let a = harness::Ansible::new();
    let inv = a.write_file(
        "hosts.ini",
        "[g]\nh1 ansible_connection=local\nh2 ansible_connection=local\n",
    );
    // a host fails after being notified; all hosts fail in one play (handlers of pre_tasks
    // and tasks still run); the play keyword turns it off again
    let many = a.write_file(
        "many.yml",
        r#"- name: f
  hosts: g
  gather_facts: false
  tasks:
    - name: notify
      debug: msg=n
      changed_when: true
      notify: [h_a, h_b]
    - name: fail h1
      fail: msg=boom
      when: inventory_hostname == 'h1'
    - name: after
      debug: msg=after
  handlers:
    - name: h_a
      debug: msg=ha
    - name: h_b
      fail: msg=hb
      when: inventory_hostname == 'h2'
"#,
    );
    let all_fail = a.write_file(
        "all_fail.yml",
        r#"- name: single host
  hosts: h1
  gather_facts: false
  pre_tasks:
    - name: pre notify
      debug: msg=p
      changed_when: true
      notify: hp
  tasks:
    - name: notify
      debug: msg=n
      changed_when: true
      notify: h_a
    - name: fail
      fail: msg=boom
    - name: never
      debug: msg=never
  post_tasks:
    - name: post
      debug: msg=post
  handlers:
    - name: h_a
      debug: msg=ha
    - name: hp
      debug: msg=hp
"#,
    );
    let keyword = a.write_file(
        "keyword.yml",
        r#"- name: keyword off
  hosts: g
  gather_facts: false
  force_handlers: false
  tasks:
    - name: notify
      debug: msg=n
      changed_when: true
      notify: h_a
    - name: fail h1
      fail: msg=boom
      when: inventory_hostname == 'h1'
  handlers:
    - name: h_a
      debug: msg=ha
"#,
    );
    let inv = inv.to_str().unwrap();
    for pb in [&many, &all_fail, &keyword] {
        let pb = pb.to_str().unwrap();
        for (extra, env) in [
            (&[][..], &[][..]),
            (&["--force-handlers"][..], &[][..]),
            (&[][..], &[("ANSIBLE_FORCE_HANDLERS", "1")][..]),
        ] {
            let mut args = vec!["-i", inv, pb, "-f", "1"];
            args.extend(extra);
            let (theirs, mine) = both_engines_with(&a, "ansible-playbook", &args, env, None);
            assert_same_run(&format!("{pb} {extra:?} {env:?}"), &theirs, &mine);
        }
    }
    let (_, mine) = both_engines_with(
        &a,
        "ansible-playbook",
        &[
            "-i",
            inv,
            many.to_str().unwrap(),
            "-f",
            "1",
            "--force-handlers",
        ],
        &[],
        None,
    );
    // h1 failed after the notification and still ran the handler
    let lines: Vec<&str> = mine.stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("RUNNING HANDLER [h_a]"))
        .expect("handler ran");
    assert!(lines[at + 1].starts_with("ok: [h1]"), "{}", mine.stdout);
}

#[test]
fn adhoc_list_hosts_lists_what_ansible_lists() {
    let a = harness::Ansible::new();
    let inv = a.write_file(
        "hosts.ini",
        "[g]\nh1 ansible_connection=local\nh2 ansible_connection=local\n[k]\nh3\n",
    );
    let inv = inv.to_str().unwrap();
    for args in [
        &["g", "-i", inv, "--list-hosts"][..],
        &["all", "-i", inv, "--list-hosts", "-l", "h2:h3"],
        &["nomatch", "-i", inv, "--list-hosts"],
    ] {
        let (theirs, mine) = both_engines_with(&a, "ansible", args, &[], None);
        assert_same_run(&format!("{args:?}"), &theirs, &mine);
    }
}

/// A stand-in `sudo` first in PATH: it wants the password in `{dir}/expected` (unless
/// `{dir}/nopass` exists), reads it from stdin as `sudo -S` does, prints the `-p` prompt,
/// answers a wrong one as sudo does (asking again, three times at most), then runs the
/// command. Every call logs its arguments (`CALL`), and a `LEAK` line for each process on
/// the machine at that moment (itself included) whose command line or environment holds
/// the password (one `grep -f` over them all: quick, so that the prompt comes well within
/// ansible-playbook's become timeout on a loaded machine, and no leak of its own).
const FAKE_SUDO: &str = r#"#!/bin/sh
dir=@DIR@
{
  echo "CALL sudo $*"
  for f in $(grep -a -l -F -f "$dir/expected" /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null); do
    echo "LEAK $f: $(tr '\0' ' ' < "${f%/*}/cmdline" 2>/dev/null)"
  done
} >> "$dir/log" 2>/dev/null
n=; prompt='Password: '
while [ $# -gt 0 ]; do
  case $1 in
    -n) n=1; shift;;
    -p|-u) [ "$1" = -p ] && prompt=$2; shift 2;;
    -*) shift;;
    *) break;;
  esac
done
if [ ! -e "$dir/nopass" ]; then
  if [ -n "$n" ]; then echo "sudo: a password is required" >&2; exit 1; fi
  tries=0
  while :; do
    printf '%s' "$prompt" >&2
    IFS= read -r got || { echo "sudo: $tries incorrect password attempt(s)" >&2; exit 1; }
    [ "$got" = "$(cat "$dir/expected")" ] && break
    echo "Sorry, try again." >&2
    tries=$((tries+1))
    [ $tries -lt 3 ] || { echo "sudo: 3 incorrect password attempts" >&2; exit 1; }
  done
  echo ok >> "$dir/auth"
fi
exec "$@"
"#;

/// A stand-in `su USER -c CMD` first in PATH, as [`FAKE_SUDO`] for `su`: it always wants the
/// password (prompting `Password: `), reads it from stdin, then runs `CMD` with `/bin/sh`.
const FAKE_SU: &str = r#"#!/bin/sh
dir=@DIR@
{
  echo "CALL su $*"
  for f in $(grep -a -l -F -f "$dir/expected" /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null); do
    echo "LEAK $f: $(tr '\0' ' ' < "${f%/*}/cmdline" 2>/dev/null)"
  done
} >> "$dir/log" 2>/dev/null
while [ $# -gt 0 ] && [ "$1" != -c ]; do shift; done
[ "$1" = -c ] || { echo "su: no command" >&2; exit 2; }
printf 'Password: ' >&2
IFS= read -r got || got=
if [ "$got" != "$(cat "$dir/expected")" ]; then
  echo "su: Authentication failure" >&2
  exit 1
fi
echo ok >> "$dir/auth"
exec /bin/sh -c "$2"
"#;

#[test]
fn become_password_reaches_sudo_and_su_on_stdin_only() {
    let a = harness::Ansible::new();
    let dir = a.dir().to_path_buf();
    let fake = dir.join("fake");
    std::fs::create_dir_all(&fake).unwrap();
    let fake_dir = fake.display().to_string();
    write_executable(&dir, "fakebin/sudo", &FAKE_SUDO.replace("@DIR@", &fake_dir));
    write_executable(&dir, "fakebin/su", &FAKE_SU.replace("@DIR@", &fake_dir));
    // a password that is nowhere else on this machine
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let password = format!("pw-{nanos:x}-{}", std::process::id());
    std::fs::write(fake.join("expected"), format!("{password}\n")).unwrap();
    let pw_file = a.write_file("become-pw", &format!("{password}\n"));
    let bad_file = a.write_file("bad-pw", "not-the-password\n");
    let module = a.write_file(
        "library/whoami_mod",
        "#!/bin/sh\nprintf '{\"changed\": false, \"user\": \"%s\"}\\n' \"$(id -un)\"\n",
    );
    harness::make_executable(&module);
    let inv = a.write_file(
        "hosts.ini",
        "[g]\nh1 ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n",
    );
    // builtins (command with its own stdin, copy, raw), a binary module from library/, and
    // a module run through ansible-core (slurp: its arguments come on stdin after the
    // password); each task's result shows what it saw. The tests run as root, and
    // ansible-playbook does not escalate to the user it already is: the plays become
    // `nobody` (the fakes run everything as root whatever the user).
    let pb = a.write_file(
        "become.yml",
        r#"- hosts: g
  gather_facts: false
  become: true
  become_user: nobody
  tasks:
    - name: user
      command: id -un
    - name: own stdin
      command: cat
      args:
        stdin: "the command's own input"
    - name: copy
      copy:
        content: "copied\n"
        dest: "{{ out }}"
    - name: raw
      raw: echo raw-ran
    - name: library module
      whoami_mod:
    - name: through ansible-core
      slurp:
        src: "{{ out }}"
"#,
    );
    let path = format!(
        "{}:{}",
        dir.join("fakebin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let (inv, pb) = (inv.to_str().unwrap(), pb.to_str().unwrap());
    let (pw, bad) = (pw_file.to_str().unwrap(), bad_file.to_str().unwrap());
    let env = [("PATH", path.as_str())];
    let lines_with = |o: &RunOutput, prefix: &str| -> Vec<String> {
        o.stdout
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_string)
            .collect()
    };
    let agent = |args: &[&str]| {
        Agent::in_sandbox(&a)
            .sandbox_env(&a)
            .env("PATH", &path)
            .arg("playbook")
            .args(args)
            .run()
    };
    for method in ["sudo", "su"] {
        // each run copies to a file of its own
        let out =
            |engine: &str| format!("out={}", dir.join(format!("{method}-{engine}")).display());
        let args = [
            "-i",
            inv,
            pb,
            "--become-method",
            method,
            "--become-password-file",
            pw,
            "-v",
        ];
        let theirs_out = out("theirs");
        let theirs = run(a
            .command("ansible-playbook")
            .args(args)
            .args(["-e", &theirs_out])
            .envs(env));
        for f in ["log", "auth"] {
            let _ = std::fs::remove_file(fake.join(f));
        }
        let mine_out = out("mine");
        let mine = agent(&[&args[..], &["-e", &mine_out]].concat());
        theirs.expect_exit(0);
        mine.expect_exit(0);
        assert_eq!(
            lines_with(&mine, "h1 "),
            lines_with(&theirs, "h1 "),
            "{method}: recap\n{}\n{}",
            theirs.stdout,
            mine.stdout
        );
        for o in [&theirs, &mine] {
            assert!(
                o.stdout.contains(r#""stdout": "the command's own input""#),
                "{method}: {}",
                o.stdout
            );
            assert!(
                o.stdout.contains(r#""stdout": "raw-ran"#),
                "{method}: {}",
                o.stdout
            );
            assert!(
                o.stdout.contains(r#""user": "root""#),
                "{method}: {}",
                o.stdout
            );
            assert!(
                o.stdout.contains(r#""content": "Y29waWVkCg==""#),
                "{method}: {}",
                o.stdout
            );
        }
        // the agent's escalations went through the fake and its password check (each task's
        // command at least once)
        let log = std::fs::read_to_string(fake.join("log")).unwrap_or_default();
        let auths = std::fs::read_to_string(fake.join("auth")).unwrap_or_default();
        assert!(
            auths.lines().count() >= 6,
            "{method}: {} password checks\nfake log:\n{log}\nagent's run:\n{}",
            auths.lines().count(),
            mine.combined()
        );
        assert!(log.contains(&format!("CALL {method} ")), "{method}: {log}");
        // ... and the password was in no process's arguments or environment, nor in the
        // output (also at -vvv, where the agent logs every command it runs)
        assert!(
            !log.contains("LEAK") && !log.contains(&password),
            "{method}: the password is in argv or environ:\n{log}"
        );
        let loud_out = out("loud");
        let loud = agent(&[&args[..], &["-vvv", "-e", &loud_out]].concat());
        loud.expect_exit(0);
        assert!(
            loud.stderr.contains("exec"),
            "-vvv logs commands: {}",
            loud.stderr
        );
        for o in [&mine, &loud] {
            assert!(
                !o.combined().contains(&password),
                "{method}: printed:\n{}",
                o.combined()
            );
        }
        // a wrong password fails the task in Ansible's words, and the command never runs
        let bad_out = out("bad");
        let bad_args = [
            "-i",
            inv,
            pb,
            "--become-method",
            method,
            "--become-password-file",
            bad,
            "-e",
            &bad_out,
        ];
        let (theirs, mine) = both_engines_with(&a, "ansible-playbook", &bad_args, &env, None);
        theirs.expect_exit(2);
        mine.expect_exit(2);
        // both stop at the first task; the agent says it in ansible-core's words over ssh
        // (its local connection says "Duplicate become password prompt" for sudo and
        // "Premature end of stream" for su)
        assert_eq!(
            lines_with(&mine, "h1 "),
            lines_with(&theirs, "h1 "),
            "{}",
            mine.stdout
        );
        assert!(mine.stdout.contains("ok=0 "), "{}", mine.stdout);
        let words = format!("Incorrect {method} password");
        assert!(mine.stdout.contains(&words), "{}", mine.stdout);
        assert!(
            !mine.combined().contains("not-the-password"),
            "{}",
            mine.combined()
        );
    }
    // -K: the password asked for (no terminal here: the prompt goes to stderr and the answer
    // comes from stdin, under both engines)
    for f in ["log", "auth"] {
        let _ = std::fs::remove_file(fake.join(f));
    }
    let ask_out = format!("out={}", dir.join("ask-out").display());
    let ask_args = ["-i", inv, pb, "-K", "-e", &ask_out];
    let answer = format!("{password}\n");
    let theirs = run_with_stdin(
        a.command("setsid")
            .arg("ansible-playbook")
            .args(ask_args)
            .envs(env),
        Some(&answer),
    );
    let mut cmd = Command::new("setsid");
    remove_ansible_env(&mut cmd);
    cmd.arg(harness::agent_binary())
        .arg("playbook")
        .args(ask_args)
        .current_dir(a.dir())
        .envs(a.env())
        .env("PATH", &path);
    let mine = run_with_stdin(&mut cmd, Some(&answer));
    theirs.expect_exit(0);
    mine.expect_exit(0);
    assert!(mine.stderr.contains("BECOME password: "), "{}", mine.stderr);
    assert!(!mine.combined().contains(&password), "{}", mine.combined());
    let auths = std::fs::read_to_string(fake.join("auth")).unwrap_or_default();
    assert!(
        auths.lines().count() >= 12,
        "both runs escalated with it: {auths}"
    );
    // sudo that wants no password: the password line never reaches the command
    std::fs::write(fake.join("nopass"), "").unwrap();
    let nopass_out = format!("out={}", dir.join("nopass-out").display());
    let (theirs, mine) = both_engines_with(
        &a,
        "ansible-playbook",
        &[
            "-i",
            inv,
            pb,
            "--become-password-file",
            pw,
            "-v",
            "-e",
            &nopass_out,
        ],
        &env,
        None,
    );
    theirs.expect_exit(0);
    mine.expect_exit(0);
    assert!(
        mine.stdout
            .contains(r#""stdout": "the command's own input""#),
        "{}",
        mine.stdout
    );
    // sudo that wants a password the run does not have: Ansible's "Missing sudo password"
    // (over ssh; its local connection says "Premature end of stream")
    std::fs::remove_file(fake.join("nopass")).unwrap();
    let (theirs, mine) = both_engines_with(
        &a,
        "ansible-playbook",
        &["-i", inv, pb, "-e", &nopass_out],
        &env,
        None,
    );
    theirs.expect_exit(2);
    mine.expect_exit(2);
    assert_eq!(
        lines_with(&mine, "h1 "),
        lines_with(&theirs, "h1 "),
        "{}",
        mine.stdout
    );
    assert!(
        mine.stdout.contains("Missing sudo password"),
        "{}",
        mine.stdout
    );
    // a missing password file stops the run before anything, as under ansible-playbook
    let (theirs, mine) = both_engines_with(
        &a,
        "ansible-playbook",
        &[
            "-i",
            inv,
            pb,
            "--become-password-file",
            "/no/such/file",
            "-e",
            &nopass_out,
        ],
        &env,
        None,
    );
    theirs.expect_exit(1);
    mine.expect_exit(1);
    assert!(
        mine.stderr
            .contains("The password file /no/such/file was not found"),
        "{}",
        mine.stderr
    );
}

#[test]
fn inventory_yaml_export_vars_and_output_are_byte_identical_to_ansible_inventory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    inventory_fixture(dir);
    // group variables that are lists and dicts: ansible-inventory's YAML writes the object
    // every host of the group shares once, with an anchor
    write_file(
        dir,
        "shared/hosts.ini",
        "[g]\nh[1:2] hl=[1,2]\nh3 addr=10.0.0.3\n[g:vars]\ngl=[3,4]\ngd={\"a\": 1}\n[k]\nh3\n[k:vars]\nkl=[5]\n",
    );
    let sources: [&[&str]; 5] = [
        &["-i", "inv/hosts.ini"],
        &["-i", "yinv/hosts.yml"],
        &["-i", "yinv"],
        &["-i", "inv/hosts.ini", "-i", "yinv/hosts.yml"],
        &["-i", "shared/hosts.ini"],
    ];
    let actions: [&[&str]; 9] = [
        &["--list", "--yaml"],
        &["--list", "-y", "--export"],
        &["--list", "--export"],
        &["--graph", "--vars"],
        &["--graph", "prod", "--vars"],
        &["--host", "etcd02", "--yaml"],
        &["--host", "h1", "--yaml"],
        &["--list", "--yaml", "-l", "etcd0*:h1"],
        &["--list", "-l", "nomatch"],
    ];
    for src in sources {
        for action in actions {
            let args: Vec<&str> = src.iter().chain(action.iter()).copied().collect();
            let theirs = ansible_inventory(dir, &args);
            let mine = Agent::in_dir(dir).arg("inventory").args(&args).run();
            assert_eq!(
                mine.code(),
                theirs.code(),
                "{args:?}\n{}\n{}",
                theirs.describe(),
                mine.describe()
            );
            assert_eq!(mine.stdout, theirs.stdout, "{args:?}");
        }
        // --output: the same bytes in the file (JSON and the graph without a line end)
        for action in [
            &["--list"][..],
            &["--list", "--yaml", "--export"],
            &["--graph", "--vars"],
            &["--host", "etcd02"],
        ] {
            let args: Vec<&str> = src.iter().chain(action.iter()).copied().collect();
            let theirs_file = dir.join("theirs.out");
            let mine_file = dir.join("mine.out");
            let theirs = ansible_inventory(
                dir,
                &[&args[..], &["--output", theirs_file.to_str().unwrap()]].concat(),
            );
            let mine = Agent::in_dir(dir)
                .arg("inventory")
                .args(&args)
                .arg("--output")
                .arg(&mine_file)
                .run();
            assert_eq!(mine.code(), theirs.code(), "{args:?} --output");
            assert_eq!(mine.stdout, theirs.stdout, "{args:?} --output");
            assert_eq!(
                std::fs::read(&mine_file).ok(),
                std::fs::read(&theirs_file).ok(),
                "{args:?} --output"
            );
            let _ = std::fs::remove_file(&mine_file);
            let _ = std::fs::remove_file(&theirs_file);
        }
    }
}

/// As ansible-core's `_low_level_execute_command`: `become` to the user the connection
/// already is (here root, over a local connection, to the default `become_user` root) runs
/// no sudo at all, unless `become_allow_same_user` (ansible.cfg `[privilege_escalation]`,
/// or `ANSIBLE_BECOME_ALLOW_SAME_USER`). Judged by the calls the fake sudo first in PATH
/// logs, under both engines.
#[test]
fn become_to_the_connection_user_is_skipped_unless_allowed() {
    let a = harness::Ansible::new();
    let dir = a.dir().to_path_buf();
    let fake = dir.join("fake");
    std::fs::create_dir_all(&fake).unwrap();
    write_executable(
        &dir,
        "fakebin/sudo",
        &FAKE_SUDO.replace("@DIR@", &fake.display().to_string()),
    );
    std::fs::write(fake.join("expected"), "no-password-asked\n").unwrap();
    std::fs::write(fake.join("nopass"), "").unwrap();
    let inv = a.write_file(
        "hosts.ini",
        "[g]\nh1 ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n",
    );
    let pb = a.write_file(
        "same.yml",
        "- hosts: g\n  gather_facts: false\n  become: true\n  tasks:\n    - command: id -un\n",
    );
    let path = format!(
        "{}:{}",
        dir.join("fakebin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let args = ["-i", inv.to_str().unwrap(), pb.to_str().unwrap()];
    let calls = |allow: Option<&str>| -> [usize; 2] {
        let mut env = vec![("PATH", path.as_str())];
        if let Some(v) = allow {
            env.push(("ANSIBLE_BECOME_ALLOW_SAME_USER", v));
        }
        let mut counts = [0; 2];
        for (i, agent) in [false, true].into_iter().enumerate() {
            let _ = std::fs::remove_file(fake.join("log"));
            let out = if agent {
                let mut cmd = Agent::in_sandbox(&a)
                    .sandbox_env(&a)
                    .arg("playbook")
                    .args(args);
                for (k, v) in &env {
                    cmd = cmd.env(k, v);
                }
                cmd.run()
            } else {
                run(a
                    .command("ansible-playbook")
                    .args(args)
                    .envs(env.iter().copied()))
            };
            out.expect_exit(0);
            let log = std::fs::read_to_string(fake.join("log")).unwrap_or_default();
            counts[i] = log.lines().filter(|l| l.starts_with("CALL sudo")).count();
        }
        counts
    };
    assert_eq!(calls(None), [0, 0], "become to the same user escalated");
    let allowed = calls(Some("true"));
    assert!(
        allowed[0] > 0 && allowed[1] > 0,
        "become_allow_same_user: sudo calls {allowed:?}"
    );
}

/// The names of the files in `dir` (none when it does not exist).
fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn fact_cache_precedence_jsonfile_and_flush_as_ansible_playbook() {
    let a = harness::Ansible::new();
    a.write_file(
        "hosts.ini",
        "localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n",
    );
    // gathered facts sit below play vars; set_fact above them; only cacheable ones are facts
    a.write_file(
        "first.yml",
        r#"- hosts: localhost
  vars:
    ansible_nodename: from_play_vars
  tasks:
    - debug:
        msg: "{{ ansible_nodename }} {{ ansible_facts.nodename != ansible_nodename }}"
    - set_fact:
        cached_one: one
        cacheable: true
    - set_fact:
        plain_one: two
    - debug:
        msg: "{{ ansible_facts.cached_one | default('undef') }} {{ ansible_facts.plain_one | default('undef') }} {{ cached_one }} {{ plain_one }}"
    - set_fact:
        ansible_nodename: from_set_fact
- hosts: localhost
  gather_facts: false
  vars:
    ansible_nodename: from_play2_vars
    cached_one: from_play2_vars
  tasks:
    - debug:
        msg: "{{ ansible_nodename }} {{ cached_one }} {{ hostvars['localhost'].cached_one }}"
"#,
    );
    // the next run reads the cacheable facts (and the gathered ones) from the cache
    a.write_file(
        "second.yml",
        r#"- hosts: localhost
  gather_facts: false
  vars:
    plain_one: from_play_vars
  tasks:
    - debug:
        msg: "{{ cached_one | default('undef') }} {{ ansible_facts.cached_one | default('undef') }} {{ plain_one }} {{ ansible_facts.nodename is defined }}"
"#,
    );
    let cache_a = a.dir().join("cache-ansible");
    let cache_m = a.dir().join("cache-agent");
    // `swap`: each engine reads the other's cache
    let run = |playbook: &str, extra: &[&str], env: &[(&str, &str)], swap: bool| {
        let (mut ca, mut cm) = (cache_a.display().to_string(), cache_m.display().to_string());
        if swap {
            std::mem::swap(&mut ca, &mut cm);
        }
        let mut args = vec!["-i", "hosts.ini", playbook];
        args.extend_from_slice(extra);
        let mut theirs_env: Vec<(&str, &str)> = vec![
            ("ANSIBLE_CACHE_PLUGIN", "jsonfile"),
            ("ANSIBLE_CACHE_PLUGIN_PREFIX", "prefix_"),
        ];
        theirs_env.extend_from_slice(env);
        let mut mine_env = theirs_env.clone();
        theirs_env.push(("ANSIBLE_CACHE_PLUGIN_CONNECTION", &ca));
        mine_env.push(("ANSIBLE_CACHE_PLUGIN_CONNECTION", &cm));
        let theirs = run(a
            .command("ansible-playbook")
            .args(&args)
            .envs(theirs_env.iter().copied()));
        let mut mine = Agent::in_sandbox(&a)
            .sandbox_env(&a)
            .arg("playbook")
            .args(&args);
        for (k, v) in &mine_env {
            mine = mine.env(k, v);
        }
        let mine = mine.run();
        assert_same_run(playbook, &theirs, &mine);
        mine
    };
    let first = run("first.yml", &[], &[], false);
    assert!(
        first.stdout.contains("\"msg\": \"from_play_vars True\""),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("\"msg\": \"one undef one two\""),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("\"msg\": \"from_set_fact one one\""),
        "{}",
        first.stdout
    );
    assert_eq!(file_names(&cache_m), file_names(&cache_a));
    // ansible-core 2.19's file: the schema in the name, the facts as a JSON payload
    assert_eq!(file_names(&cache_m), ["prefix_s1_localhost"]);
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(cache_m.join("prefix_s1_localhost")).unwrap(),
    )
    .unwrap();
    let cached: Value = serde_json::from_str(file["__payload__"].as_str().unwrap()).unwrap();
    assert_eq!(cached["cached_one"], "one");
    assert!(cached.get("plain_one").is_none(), "{cached}");
    for swap in [false, true] {
        let second = run("second.yml", &[], &[], swap);
        assert!(
            second
                .stdout
                .contains("\"msg\": \"one one from_play_vars True\""),
            "{}",
            second.stdout
        );
    }
    // facts only under ansible_facts (ansible_local excepted)
    let uninjected = run(
        "second.yml",
        &[],
        &[("ANSIBLE_INJECT_FACT_VARS", "0")],
        false,
    );
    assert!(
        uninjected
            .stdout
            .contains("\"msg\": \"undef one from_play_vars True\""),
        "{}",
        uninjected.stdout
    );
    let flushed = run("second.yml", &["--flush-cache"], &[], false);
    assert!(
        flushed
            .stdout
            .contains("\"msg\": \"undef undef from_play_vars False\""),
        "{}",
        flushed.stdout
    );
    assert!(
        file_names(&cache_m).is_empty(),
        "{:?}",
        file_names(&cache_m)
    );
    assert_eq!(file_names(&cache_m), file_names(&cache_a));
}

/// The lines of `stdout` that are host results and warnings, sorted (a `free` play's
/// interleaving is the hosts' pace), and the recap.
fn free_lines(stdout: &str) -> (Vec<String>, Vec<String>) {
    let mut results: Vec<String> = stdout
        .lines()
        .filter(|l| {
            l.starts_with("ok: [")
                || l.starts_with("changed: [")
                || l.starts_with("skipping: [")
                || l.starts_with("[WARNING]: Using run_once")
                || l.starts_with("    \"msg\"")
        })
        .map(str::to_string)
        .collect();
    results.sort();
    let recap = stdout
        .lines()
        .skip_while(|l| !l.starts_with("PLAY RECAP"))
        .map(str::to_string)
        .collect();
    (results, recap)
}

#[test]
fn free_strategy_lets_each_host_go_at_its_own_pace_as_ansible_playbook() {
    let a = harness::Ansible::new();
    let scratch = a.dir().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    a.write_file(
        "hosts.ini",
        "[nodes]\nn1\nn2\nn3\n[nodes:vars]\nansible_connection=local\nansible_python_interpreter=/usr/bin/python3\n",
    );
    // n1 waits, in its first task, for a file n2 creates in its second: under `linear` n1's
    // wait would time out (n2 starts its second task only after every host's first)
    a.write_file(
        "free.yml",
        r#"- hosts: nodes
  gather_facts: false
  strategy: free
  tasks:
    - name: n1 waits for what n2 does next
      shell: "for i in $(seq 600); do [ -e {{ scratch }}/n2_went_on ] && exit 0; sleep 0.1; done; exit 1"
      when: inventory_hostname == 'n1'
    - name: n2 goes on
      file: {path: "{{ scratch }}/n2_went_on", state: touch}
      when: inventory_hostname == 'n2'
      register: went
    - name: notify
      debug: {msg: "{{ inventory_hostname }}"}
      changed_when: true
      notify: h
    - name: once per host
      debug: {msg: "once {{ inventory_hostname }}"}
      run_once: true
  handlers:
    - name: h
      debug: {msg: "handler {{ inventory_hostname }}"}
- hosts: nodes
  gather_facts: false
  tasks:
    - name: what the free play registered
      debug: {msg: "{{ inventory_hostname }} {{ went is skipped }}"}
"#,
    );
    let extra = format!("scratch={}", scratch.display());
    let args = ["-i", "hosts.ini", "free.yml", "-e", extra.as_str()];
    let theirs = run(a.command("ansible-playbook").args(args));
    std::fs::remove_file(scratch.join("n2_went_on")).unwrap();
    let mine = Agent::in_sandbox(&a)
        .sandbox_env(&a)
        .arg("playbook")
        .args(args)
        .run();
    assert_eq!(theirs.code(), Some(0), "{}", theirs.describe());
    assert_eq!(mine.code(), Some(0), "{}", mine.describe());
    let (their_results, their_recap) = free_lines(&theirs.stdout);
    let (my_results, my_recap) = free_lines(&mine.stdout);
    assert_eq!(my_results, their_results, "{}", mine.stdout);
    assert_eq!(my_recap, their_recap, "{}", mine.stdout);
    assert!(scratch.join("n2_went_on").exists());
    // and under `linear` the same play cannot finish: the wait times out
    let linear = std::fs::read_to_string(a.dir().join("free.yml"))
        .unwrap()
        .replacen("strategy: free", "strategy: linear", 1)
        .replace("seq 600", "seq 20");
    a.write_file("linear.yml", &linear);
    std::fs::remove_file(scratch.join("n2_went_on")).unwrap();
    let out = Agent::in_sandbox(&a)
        .sandbox_env(&a)
        .arg("playbook")
        .args(["-i", "hosts.ini", "linear.yml", "-e", extra.as_str()])
        .run();
    assert_eq!(out.code(), Some(2), "{}", out.describe());
}
