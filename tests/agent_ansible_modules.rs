//! Modules etcd-agent does not implement run through ansible-core's own packaging (#14): the
//! same playbook under `ansible-playbook` and `etcd-agent` over the harness sshd, each in its
//! own directory, judged by what is on disk and in the user database afterwards, and by the
//! same per-task outcomes and result fields under both engines. Without ansible-core the agent
//! refuses the module by name. `raw` is native (no Python on the target), checked the same way.

use harness::process::guarded_command;
use harness::{Agent, Ansible, Sshd};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

/// (task name, host, outcome) of every result, hosts sorted per task.
fn outcomes(doc: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for play in doc["plays"].as_array().into_iter().flatten() {
        for task in play["tasks"].as_array().into_iter().flatten() {
            let name = task["task"]["name"].as_str().unwrap_or("").to_string();
            let mut hosts: Vec<_> = task["hosts"].as_object().into_iter().flatten().collect();
            hosts.sort_by(|a, b| a.0.cmp(b.0));
            for (h, r) in hosts {
                let t = |k: &str| r.get(k).and_then(Value::as_bool).unwrap_or(false);
                let o = if t("failed") {
                    "failed"
                } else if t("skipped") {
                    "skipped"
                } else if t("changed") {
                    "changed"
                } else {
                    "ok"
                };
                out.push((name.clone(), h.clone(), o.to_string()));
            }
        }
    }
    out
}

/// The result of task `name` on `host`.
fn result<'a>(doc: &'a Value, name: &str, host: &str) -> &'a Value {
    doc["plays"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["tasks"].as_array().into_iter().flatten())
        .find(|t| t["task"]["name"] == name)
        .and_then(|t| t["hosts"].get(host))
        .unwrap_or_else(|| panic!("no result of {name:?} on {host}"))
}

/// A `python3 -m http.server` on 127.0.0.1 serving `dir`; killed and waited for on drop.
struct HttpServer {
    child: Child,
    port: u16,
}

impl HttpServer {
    fn start(dir: &Path) -> HttpServer {
        let mut child = guarded_command("/usr/bin/python3")
            .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start http.server");
        // "Serving HTTP on 127.0.0.1 port 43567 (http://127.0.0.1:43567/) ..."
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("http.server banner");
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no port in {line:?}")
            });
        HttpServer { child, port }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Throwaway users the playbook creates; removed again on drop whatever happened.
struct Users(Vec<String>);

impl Drop for Users {
    fn drop(&mut self) {
        for u in &self.0 {
            if user_exists(u) {
                let _ = std::process::Command::new("userdel")
                    .arg("-r")
                    .arg(u)
                    .status();
            }
        }
    }
}

fn user_exists(name: &str) -> bool {
    std::process::Command::new("getent")
        .args(["passwd", name])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

const PLAYBOOK: &str = r#"- hosts: nodes
  gather_facts: false
  vars:
    dir: "{{ base }}/{{ inventory_hostname }}"
  tasks:
    - name: workdir
      file: {path: "{{ dir }}/tree/sub", state: directory}
    - name: seed
      copy:
        dest: "{{ dir }}/conf"
        content: "port=1\nhost={{ inventory_hostname }}\n"
    - name: getent
      getent: {database: passwd, key: root}
    - name: getent missing
      getent: {database: passwd, key: no-such-user-etcd-agent}
      ignore_errors: true
    - name: slurp
      slurp: {src: "{{ dir }}/conf"}
      register: slurped
    - name: replace
      replace: {path: "{{ dir }}/conf", regexp: '^port=1$', replace: 'port=2'}
    - name: replace again
      replace: {path: "{{ dir }}/conf", regexp: '^port=1$', replace: 'port=2'}
    - name: replace check mode
      replace: {path: "{{ dir }}/conf", regexp: '^host=', replace: 'name='}
      check_mode: true
    - name: blockinfile
      blockinfile: {path: "{{ dir }}/conf", block: "extra=yes"}
    - name: tempfile
      tempfile: {state: file, path: "{{ dir }}", suffix: .tmp}
      register: tmp
    - name: archive source
      shell: echo payload > {{ dir }}/tree/sub/a.txt && tar -C {{ dir }}/tree -czf {{ dir }}/t.tgz sub
    - name: unarchive
      unarchive: {src: "{{ dir }}/t.tgz", dest: "{{ dir }}/tree", remote_src: true, list_files: true}
      register: unpacked
    - name: find
      find: {paths: "{{ dir }}", patterns: "*.tmp,conf", recurse: true}
      register: found
    - name: find missing
      find: {paths: /no-such-dir-etcd-agent-test}
    - name: uri
      uri: {url: "http://127.0.0.1:{{ http_port }}/served.txt", return_content: true}
      register: fetched
    - name: get_url
      get_url: {url: "http://127.0.0.1:{{ http_port }}/served.txt", dest: "{{ dir }}/got.txt"}
    - name: raw
      raw: echo raw-{{ inventory_hostname }} > {{ dir }}/raw.txt
    - name: raw fails
      raw: exit 3
      ignore_errors: true
    - name: raw check mode
      raw: echo never > {{ dir }}/raw.txt
      check_mode: true
    - name: user
      user: {name: "{{ user_prefix }}{{ inventory_hostname }}", create_home: false, shell: /bin/sh}
      throttle: 1
    - name: user exists
      command: id -u {{ user_prefix }}{{ inventory_hostname }}
      changed_when: false
    - name: user removed
      user: {name: "{{ user_prefix }}{{ inventory_hostname }}", state: absent}
      throttle: 1
"#;

fn inventory(ansible: &Ansible, sshd: &Sshd) -> PathBuf {
    let vars = sshd.inventory_host_vars();
    ansible.write_file(
        "hosts.ini",
        &format!("[nodes]\nn1 {vars}\nn2 {vars}\nn3 {vars}\n"),
    )
}

/// What the run left on disk under `base` for `host`.
fn check_disk(base: &Path, host: &str, engine: &str) {
    let dir = base.join(host);
    let conf = std::fs::read_to_string(dir.join("conf")).unwrap();
    assert_eq!(
        conf,
        format!("port=2\nhost={host}\n# BEGIN ANSIBLE MANAGED BLOCK\nextra=yes\n# END ANSIBLE MANAGED BLOCK\n"),
        "{engine}: conf of {host}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("got.txt")).unwrap(),
        "served\n",
        "{engine}: get_url of {host}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("tree/sub/a.txt")).unwrap(),
        "payload\n",
        "{engine}: unarchived file of {host}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("raw.txt")).unwrap(),
        format!("raw-{host}\n"),
        "{engine}: raw of {host}"
    );
    let tmps = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .count();
    assert_eq!(tmps, 1, "{engine}: tempfile of {host}");
}

#[test]
fn fallback_modules_match_ansible_playbook() {
    let sshd = Sshd::start();
    let ansible = Ansible::new();
    let inv = inventory(&ansible, &sshd);
    let pb = ansible.write_file("fallback.yml", PLAYBOOK);
    let www = ansible.dir().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("served.txt"), "served\n").unwrap();
    let http = HttpServer::start(&www);
    let hosts = ["n1", "n2", "n3"];
    let pid = std::process::id();
    let mut users = Users(Vec::new());
    let mut docs = Vec::new();
    for engine in ["ansible", "agent"] {
        let base = ansible.dir().join(engine);
        std::fs::create_dir_all(&base).unwrap();
        let prefix = format!("eat{}{pid}", &engine[..2]);
        users.0.extend(hosts.iter().map(|h| format!("{prefix}{h}")));
        let extra = format!(
            "base={} http_port={} user_prefix={prefix}",
            base.display(),
            http.port
        );
        let doc: Value = if engine == "ansible" {
            let out = ansible.playbook(&inv, &pb, &["-e", &extra]);
            assert_eq!(out.status.code(), Some(0), "{}", out.describe());
            out.json.clone().expect("ansible json")
        } else {
            let out = Agent::in_sandbox(&ansible)
                .playbook(&inv, &pb)
                .args(["--json", "-e", &extra])
                .run();
            assert_eq!(out.code(), Some(0), "{}", out.describe());
            serde_json::from_str(&out.stdout).expect("agent json")
        };
        for h in hosts {
            check_disk(&base, h, engine);
            assert!(!user_exists(&format!("{prefix}{h}")), "{engine}: user left");
        }
        docs.push(doc);
    }
    let (theirs, mine) = (&docs[0], &docs[1]);
    assert_eq!(outcomes(mine), outcomes(theirs), "per-task outcomes");
    for h in hosts {
        for (task, field) in [
            ("getent", "/ansible_facts/getent_passwd"),
            ("getent missing", "/msg"),
            ("slurp", "/content"),
            ("replace", "/msg"),
            ("replace check mode", "/msg"),
            ("blockinfile", "/msg"),
            ("unarchive", "/files"),
            ("find", "/matched"),
            ("find missing", "/warnings"),
            ("uri", "/content"),
            ("uri", "/status"),
            ("get_url", "/status_code"),
            ("raw fails", "/rc"),
            ("raw fails", "/msg"),
            ("user", "/shell"),
            ("user removed", "/state"),
        ] {
            let a = result(theirs, task, h).pointer(field);
            assert!(a.is_some(), "ansible's {task} on {h} has no {field}");
            assert_eq!(
                result(mine, task, h).pointer(field),
                a,
                "{task} {field} on {h}"
            );
        }
    }
}

#[test]
fn without_ansible_core_the_module_is_refused_by_name() {
    let ansible = Ansible::new();
    let inv = ansible.write_file(
        "hosts.ini",
        "[nodes]\nn1 ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n",
    );
    let pb = ansible.write_file(
        "pb.yml",
        "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - getent: {database: passwd, key: root}\n",
    );
    // a Python without ansible-core
    let out = Agent::in_sandbox(&ansible)
        .playbook(&inv, &pb)
        .env("ETCD_AGENT_ANSIBLE_PYTHON", "/usr/bin/python3")
        .run();
    assert_eq!(out.code(), Some(4), "{}", out.describe());
    assert!(
        out.stderr
            .contains("couldn't resolve module/action 'getent'")
            && out.stderr.contains("ansible-core"),
        "{}",
        out.describe()
    );
    // with it, the same playbook runs
    let out = Agent::in_sandbox(&ansible).playbook(&inv, &pb).run();
    assert_eq!(out.code(), Some(0), "{}", out.describe());
}

#[test]
fn include_vars_matches_ansible_playbook() {
    let ansible = Ansible::new();
    let inv = ansible.write_file(
        "hosts.ini",
        "[nodes]\nn1 ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n",
    );
    ansible.write_file("vars/common.yml", "port: 2379\nnames: [a, b]\n");
    ansible.write_file("other.json", "{\"deep\": {\"x\": 1}}\n");
    ansible.write_file("list.yml", "- not\n- a mapping\n");
    let pb = ansible.write_file(
        "pb.yml",
        r#"- hosts: nodes
  gather_facts: false
  tasks:
    - name: free-form from vars/
      include_vars: common.yml
    - name: file under a name
      include_vars: {file: other.json, name: nested}
    - name: missing
      include_vars: nope.yml
      ignore_errors: true
    - name: not a mapping
      include_vars: list.yml
      ignore_errors: true
    - name: show
      debug:
        msg: "{{ port + 1 }} {{ names | join(',') }} {{ nested.deep.x }}"
"#,
    );
    let theirs = ansible.playbook(&inv, &pb, &[]);
    let theirs = theirs.json.clone().expect("ansible json");
    let out = Agent::in_sandbox(&ansible)
        .playbook(&inv, &pb)
        .arg("--json")
        .run();
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let mine: Value = serde_json::from_str(&out.stdout).expect("agent json");
    assert_eq!(outcomes(&mine), outcomes(&theirs));
    assert_eq!(result(&mine, "show", "n1")["msg"], "2380 a,b 1");
    assert_eq!(
        result(&mine, "show", "n1")["msg"],
        result(&theirs, "show", "n1")["msg"]
    );
    for task in ["free-form from vars/", "file under a name"] {
        assert_eq!(
            result(&mine, task, "n1")["ansible_facts"],
            result(&theirs, task, "n1")["ansible_facts"],
            "{task}"
        );
    }
}
