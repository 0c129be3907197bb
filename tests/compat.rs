//! The compatibility corpus (`tests/compat/NN_*.yml`): every playbook runs under
//! `ansible-playbook` and under `etcd-agent playbook --json` against the same 3-host inventory
//! over the real test sshd; per play, task and host the outcome (ok/changed/failed/skipped/
//! unreachable/ignored) and every result field Ansible reports (volatile ones removed) must
//! match, and so must the recap counters and the exit code.
//!
//! `COMPAT_ONLY=01_serial,16_loop` runs a subset; `COMPAT_JOBS` sets the parallelism (default 2);
//! `COMPAT_KEEP=DIR` keeps both engines' JSON and output per playbook; `COMPAT_VERBOSE=1` prints
//! both outputs of failing playbooks.
//! A summary (`name PASS|FAIL`) is printed and written to `target/compat-report.txt`; the README
//! table check (`readme_table_names_passing_playbooks`) reads the corpus headers.

use harness::{repo_root, Agent, Ansible, Sshd};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// One corpus playbook.
#[derive(Debug, Clone)]
struct Case {
    name: String,
    path: PathBuf,
    args: Vec<String>,
    feature: String,
}

fn corpus() -> Vec<Case> {
    let mut out = all_cases();
    if let Ok(only) = std::env::var("COMPAT_ONLY") {
        let wanted: Vec<&str> = only.split(',').map(str::trim).collect();
        out.retain(|c| wanted.iter().any(|w| c.name.starts_with(w)));
    }
    out
}

fn all_cases() -> Vec<Case> {
    let dir = repo_root().join("tests/compat");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("read tests/compat") {
        let path = entry.expect("dir entry").path();
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        // `NN_name.yml`: two or more digits, then `_`
        let digits = file.bytes().take_while(u8::is_ascii_digit).count();
        let numbered = digits >= 2 && file.as_bytes().get(digits) == Some(&b'_');
        if !numbered || !file.ends_with(".yml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read corpus playbook");
        let header = |key: &str| {
            text.lines()
                .take_while(|l| l.starts_with('#'))
                .find_map(|l| l.strip_prefix(&format!("# {key}:")).map(str::trim))
                .map(str::to_string)
        };
        out.push(Case {
            name: file.trim_end_matches(".yml").to_string(),
            // `{corpus}` in args is the corpus directory (runs start in a scratch dir)
            args: header("args")
                .map(|a| {
                    a.split_whitespace()
                        .map(|w| w.replace("{corpus}", &dir.display().to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            feature: header("feature").unwrap_or_default(),
            path,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// What one engine did with one playbook.
struct Run {
    code: Option<i32>,
    json: Option<Value>,
    output: String,
}

fn run_ansible(ansible: &Ansible, inv: &Path, case: &Case, scratch: &Path) -> Run {
    let mut args: Vec<String> = case.args.clone();
    args.push("-e".into());
    args.push(format!("scratch={}", scratch.display()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ansible.playbook(inv, &case.path, &refs);
    Run {
        code: out.status.code(),
        output: out.describe(),
        json: out.json,
    }
}

fn run_agent(ansible: &Ansible, inv: &Path, case: &Case, scratch: &Path) -> Run {
    // `poll: 0` jobs keep their files in the sandbox, as ansible-playbook's do
    let async_dir = ansible.dir().join("agent-async");
    let out = Agent::in_sandbox(ansible)
        .env("ANSIBLE_ASYNC_DIR", &async_dir)
        .args(["playbook", "--json", "-i"])
        .arg(inv)
        .arg(&case.path)
        .args(&case.args)
        .arg("-e")
        .arg(format!("scratch={}", scratch.display()))
        .run();
    Run {
        code: out.code(),
        json: serde_json::from_str(&out.stdout).ok(),
        output: out.describe(),
    }
}

/// Keys whose values change from run to run or engine to engine by design.
const VOLATILE: &[&str] = &[
    "start",
    "end",
    "delta",
    // async: a job id and its status file, the killed process's pid
    "ansible_job_id",
    "results_file",
    "erased",
    "child_pid",
    "invocation",
    "action",
    "warnings",
    "deprecations",
    // added by the harness recorder, not by Ansible's result
    "exception",
    "ignore_errors",
    "_ansible_no_log",
    "_ansible_verbose_always",
    "_ansible_delegated_vars",
    "_ansible_item_label",
    "_ansible_ignore_errors",
    "_ansible_item_result",
    "_ansible_parsed",
    "ansible_loop_var_",
    // copy/template report the uploaded temp file as `src`, a backup's name has a pid and time
    "src",
    "backup_file",
    "atime",
    "mtime",
    "ctime",
    "inode",
    "dev",
    "nlink",
    "blocks",
    "block_size",
    "device_type",
    "version",
    "attributes",
    "attr_flags",
    "charset",
    "mimetype",
    "generation",
];

/// Removes volatile fields and puts the engine's scratch dir as `<scratch>`.
fn normalise(v: &Value, scratch: &str) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                if VOLATILE.contains(&k.as_str()) {
                    continue;
                }
                // Ansible leaves an empty `diff` in loop item results of some modules: no diff
                let no_diff = matches!(x, Value::Array(d) if d.is_empty())
                    || matches!(x, Value::Object(d) if d.is_empty());
                if k == "diff" && no_diff {
                    continue;
                }
                out.insert(k.clone(), normalise(x, scratch));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| normalise(x, scratch)).collect()),
        Value::String(s) if !scratch.is_empty() => Value::String(s.replace(scratch, "<scratch>")),
        other => other.clone(),
    }
}

/// `ok`/`changed`/`failed`/`ignored`/`skipped`/`unreachable`.
fn outcome(r: &Value) -> &'static str {
    let t = |k: &str| r.get(k).and_then(Value::as_bool).unwrap_or(false);
    if t("unreachable") {
        "unreachable"
    } else if t("failed") && t("ignore_errors") {
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

/// (play index, task name, occurrence) -> host -> result.
type Tasks = Vec<((usize, String, usize), Map<String, Value>)>;

fn tasks_of(doc: &Value) -> Tasks {
    let mut out: Tasks = Vec::new();
    for (pi, play) in doc["plays"].as_array().into_iter().flatten().enumerate() {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut last_id = String::new();
        for task in play["tasks"].as_array().into_iter().flatten() {
            let name = task["task"]["name"].as_str().unwrap_or("").to_string();
            // the recorder starts a `meta` task once per host: fold repeats of one task id
            let id = task["task"]["id"].as_str().unwrap_or("").to_string();
            if !id.is_empty() && id == last_id {
                if let (Some((_, hosts)), Some(more)) = (out.last_mut(), task["hosts"].as_object())
                {
                    hosts.extend(more.clone());
                }
                continue;
            }
            last_id = id;
            let n = seen.entry(name.clone()).or_default();
            *n += 1;
            let hosts = task["hosts"].as_object().cloned().unwrap_or_default();
            out.push(((pi, name, *n), hosts));
        }
    }
    out
}

/// Field-by-field differences of two values, as `path: ansible=.. agent=..` lines. Fields only
/// the agent reports are not differences (Ansible's fields are the contract).
fn diff_values(path: &str, theirs: &Value, mine: &Value, out: &mut Vec<String>) {
    match (theirs, mine) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    Some(vb) => diff_values(&p, va, vb, out),
                    None => out.push(format!("{p}: ansible={va} agent=<missing>")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                diff_values(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        _ if theirs != mine => out.push(format!("{path}: ansible={theirs} agent={mine}")),
        _ => {}
    }
}

/// Fact gathering: the agent gathers a documented subset of Ansible's facts. Each fact it
/// reports must be one Ansible reports, with the same value (`ansible_env`: the variables it
/// reports); the ones it leaves out are not differences. `ansible_interfaces` is compared
/// sorted. `ansible_date_time` moves between
/// the two runs: 53_facts checks it.
fn restrict_facts(theirs: &mut Value, mine: &mut Value, out: &mut Vec<String>) {
    let (Some(Value::Object(tf)), Some(Value::Object(mf))) = (
        theirs.get_mut("ansible_facts"),
        mine.get_mut("ansible_facts"),
    ) else {
        return;
    };
    tf.remove("ansible_date_time");
    mf.remove("ansible_date_time");
    for k in mf.keys() {
        if !tf.contains_key(k) {
            out.push(format!(
                ".ansible_facts.{k}: a fact ansible-playbook does not report"
            ));
        }
    }
    tf.retain(|k, _| mf.contains_key(k));
    // Ansible lists interfaces in no fixed order (it changes from run to run)
    for facts in [&mut *tf, &mut *mf] {
        if let Some(Value::Array(names)) = facts.get_mut("ansible_interfaces") {
            names.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        }
    }
    if let (Some(Value::Object(te)), Some(Value::Object(me))) =
        (tf.get_mut("ansible_env"), mf.get("ansible_env"))
    {
        te.retain(|k, _| me.contains_key(k));
    }
}

fn compare(case: &Case, theirs: &Run, mine: &Run, scratch_a: &str, scratch_m: &str) -> Vec<String> {
    let mut diffs = Vec::new();
    if theirs.code != mine.code {
        diffs.push(format!(
            "exit code: ansible={:?} agent={:?}",
            theirs.code, mine.code
        ));
    }
    let Some(tj) = &theirs.json else {
        diffs.push("ansible-playbook wrote no JSON".into());
        return diffs;
    };
    let Some(mj) = &mine.json else {
        let first_err = mine
            .output
            .lines()
            .find(|l| l.contains("ERROR"))
            .unwrap_or("no JSON on stdout");
        diffs.push(format!("agent wrote no JSON: {first_err}"));
        return diffs;
    };
    let (tt, mt) = (tasks_of(tj), tasks_of(mj));
    let names =
        |t: &Tasks| -> Vec<String> { t.iter().map(|((p, n, _), _)| format!("{p}:{n}")).collect() };
    if names(&tt) != names(&mt) {
        diffs.push(format!(
            "task list: ansible={:?} agent={:?}",
            names(&tt),
            names(&mt)
        ));
    }
    for (key, th) in &tt {
        let Some((_, mh)) = mt.iter().find(|(k, _)| k == key) else {
            continue;
        };
        let task = format!("play {} task {:?}", key.0, key.1);
        for (host, tr) in th {
            let Some(mr) = mh.get(host) else {
                diffs.push(format!("{task} host {host}: no agent result"));
                continue;
            };
            let (so, mo) = (outcome(tr), outcome(mr));
            if so != mo {
                // why the agent's outcome differs (its message), for a failure seen once
                let why = mr
                    .get("msg")
                    .map(|m| format!(" (agent msg: {m})"))
                    .unwrap_or_default();
                diffs.push(format!(
                    "{task} host {host}: status ansible={so} agent={mo}{why}"
                ));
            }
            let mut fields = Vec::new();
            let (mut na, mut nm) = (normalise(tr, scratch_a), normalise(mr, scratch_m));
            // the recorder adds `failed: false` to every result; the status covers it
            for n in [&mut na, &mut nm] {
                if let Some(m) = n.as_object_mut() {
                    if m.get("failed") == Some(&Value::Bool(false)) {
                        m.remove("failed");
                    }
                }
            }
            restrict_facts(&mut na, &mut nm, &mut fields);
            diff_values("", &na, &nm, &mut fields);
            for f in fields {
                diffs.push(format!("{task} host {host}: field {f}"));
            }
        }
        for host in mh.keys() {
            if !th.contains_key(host) {
                diffs.push(format!("{task} host {host}: only the agent has a result"));
            }
        }
    }
    let empty = Map::new();
    let ts = tj["stats"].as_object().unwrap_or(&empty);
    let ms = mj["stats"].as_object().unwrap_or(&empty);
    for (host, s) in ts {
        if ms.get(host) != Some(s) {
            diffs.push(format!(
                "recap {host}: ansible={s} agent={}",
                ms.get(host).cloned().unwrap_or(Value::Null)
            ));
        }
    }
    for host in ms.keys() {
        if !ts.contains_key(host) {
            diffs.push(format!("recap {host}: only in the agent's recap"));
        }
    }
    let _ = case;
    diffs
}

fn inventory(ansible: &Ansible, sshd: &Sshd) -> PathBuf {
    let v = sshd.inventory_host_vars();
    ansible.write_file(
        "compat-hosts.ini",
        &format!("[nodes]\nn1 {v}\nn2 {v}\nn3 {v}\n\n[web]\nn1\nn2\n\n[db]\nn3\n"),
    )
}

/// Result of one corpus playbook.
struct Verdict {
    name: String,
    diffs: Vec<String>,
    secs: f64,
    context: String,
}

#[test]
fn corpus_matches_ansible_playbook() {
    let started = Instant::now();
    let cases = corpus();
    assert!(!cases.is_empty(), "no corpus playbook selected");
    // build the agent once, before the worker threads start it
    let _ = harness::agent_binary();
    let sshd = Sshd::start();
    let jobs: usize = std::env::var("COMPAT_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or(2)
        .max(1);
    let next = AtomicUsize::new(0);
    let verdicts: Mutex<Vec<Verdict>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            // One Ansible sandbox per worker: concurrent runs must not share ssh control sockets.
            let ansible = Ansible::new();
            let inv = inventory(&ansible, &sshd);
            let (next, verdicts, cases) = (&next, &verdicts, &cases);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(case) = cases.get(i) else { break };
                let t0 = Instant::now();
                let base = ansible.dir().join("scratch").join(&case.name);
                let (sa, sm) = (base.join("ansible"), base.join("agent"));
                for d in [&sa, &sm] {
                    std::fs::create_dir_all(d).expect("create scratch dir");
                }
                let theirs = run_ansible(&ansible, &inv, case, &sa);
                let mine = run_agent(&ansible, &inv, case, &sm);
                let diffs = compare(
                    case,
                    &theirs,
                    &mine,
                    &sa.display().to_string(),
                    &sm.display().to_string(),
                );
                if let Some(keep) = std::env::var_os("COMPAT_KEEP") {
                    let keep = PathBuf::from(keep);
                    let _ = std::fs::create_dir_all(&keep);
                    for (run, who) in [(&theirs, "ansible"), (&mine, "agent")] {
                        let text = run
                            .json
                            .as_ref()
                            .map(|j| serde_json::to_string_pretty(j).unwrap_or_default())
                            .unwrap_or_default();
                        let _ =
                            std::fs::write(keep.join(format!("{}.{who}.json", case.name)), text);
                        let _ = std::fs::write(
                            keep.join(format!("{}.{who}.out", case.name)),
                            &run.output,
                        );
                    }
                }
                let context = format!(
                    "--- ansible-playbook:\n{}\n--- etcd-agent:\n{}",
                    theirs.output, mine.output
                );
                verdicts.lock().unwrap().push(Verdict {
                    name: case.name.clone(),
                    diffs,
                    secs: t0.elapsed().as_secs_f64(),
                    context,
                });
            });
        }
    });
    let mut verdicts = verdicts.into_inner().unwrap();
    verdicts.sort_by(|a, b| a.name.cmp(&b.name));
    let mut summary = String::new();
    let mut details = String::new();
    for v in &verdicts {
        let ok = v.diffs.is_empty();
        let feature = cases
            .iter()
            .find(|c| c.name == v.name)
            .map(|c| c.feature.as_str())
            .unwrap_or("");
        summary.push_str(&format!(
            "{:<28} {} {:>5.1}s  {}\n",
            v.name,
            if ok { "PASS" } else { "FAIL" },
            v.secs,
            feature
        ));
        if !ok {
            details.push_str(&format!("\n=== {} differs:\n", v.name));
            for d in &v.diffs {
                details.push_str(&format!("  {}: {d}\n", v.name));
            }
            if std::env::var_os("COMPAT_VERBOSE").is_some() {
                details.push_str(&v.context);
                details.push('\n');
            }
        }
    }
    let failed: Vec<&str> = verdicts
        .iter()
        .filter(|v| !v.diffs.is_empty())
        .map(|v| v.name.as_str())
        .collect();
    // a README row that does not say "differs" claims support: its playbooks must pass
    let mut wrong_claims = Vec::new();
    for (line, names) in readme_rows() {
        if line.contains("differs") {
            continue;
        }
        for n in names.iter().filter(|n| failed.contains(&n.as_str())) {
            wrong_claims.push(format!(
                "README claims support but {n} differs from ansible-playbook: {line}"
            ));
        }
    }
    summary.push_str(&format!(
        "{} of {} playbooks match ansible-playbook ({:.0}s)\n",
        verdicts.len() - failed.len(),
        verdicts.len(),
        started.elapsed().as_secs_f64()
    ));
    if std::env::var_os("COMPAT_ONLY").is_none() {
        let _ = std::fs::write(repo_root().join("target/compat-report.txt"), &summary);
    }
    for w in &wrong_claims {
        details.push_str(&format!("{w}\n"));
    }
    println!("{summary}{details}");
    // a difference fails the test, even when the README lists it as a known gap
    assert!(
        failed.is_empty() && wrong_claims.is_empty(),
        "corpus playbooks that differ from ansible-playbook: {failed:?}\n{summary}{details}"
    );
}

/// `(row, corpus playbooks it names)` for every table row of the README's
/// "Ansible compatibility" section (agent/README.md).
fn readme_rows() -> Vec<(String, Vec<String>)> {
    let readme = std::fs::read_to_string(repo_root().join("agent/README.md")).expect("read README");
    let Some(start) = readme.find("## Ansible compatibility") else {
        panic!("agent/README.md has no 'Ansible compatibility' section");
    };
    let section = &readme[start..];
    let section = match section[3..].find("\n## ") {
        Some(end) => &section[..end + 3],
        None => section,
    };
    let mut rows = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("| ")) {
        let names: Vec<String> = line
            .split(['`', ' ', ','])
            .map(str::trim)
            .filter(|w| {
                let digits = w.bytes().take_while(u8::is_ascii_digit).count();
                w.len() > digits + 1 && digits >= 2 && w.as_bytes()[digits] == b'_'
            })
            .map(String::from)
            .collect();
        if !names.is_empty() {
            rows.push((line.to_string(), names));
        }
    }
    rows
}

/// Every playbook the README's compatibility table names exists in the corpus, and every corpus
/// playbook is in the table (the corpus test checks that the rows claiming support pass).
#[test]
fn readme_table_names_corpus_playbooks() {
    let names: Vec<String> = all_cases().into_iter().map(|c| c.name).collect();
    let mut named = std::collections::BTreeSet::new();
    for (line, row_names) in readme_rows() {
        for w in row_names {
            assert!(
                names.contains(&w),
                "README row names {w}, which is not a corpus playbook: {line}"
            );
            named.insert(w);
        }
    }
    let missing: Vec<&String> = names.iter().filter(|n| !named.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "corpus playbooks missing from the README table: {missing:?}"
    );
    assert!(
        named.len() >= 25,
        "README table names only {} playbooks",
        named.len()
    );
}

/// Outside the supported subset, `--syntax-check` fails (exit 4) naming the file and line and
/// saying it is unsupported: never silently ignored.
#[test]
fn unsupported_features_fail_at_syntax_check() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases: &[(&str, &str)] = &[
        (
            "    - name: t\n      debug: msg=x\n      with_inventory_hostnames: [all]\n",
            "'with_inventory_hostnames' is not supported",
        ),
        (
            "    - name: t\n      file: {path: /tmp/x, state: touch}\n      async: 10\n      poll: 0\n",
            "poll: 0 (an action left running in the background) is supported by etcd-agent for command and shell only",
        ),
        (
            "    - meta: clear_facts\n",
            "meta: clear_facts is not supported",
        ),
        (
            "    - meta: reset_play\n",
            "meta: reset_play is not supported",
        ),
        (
            "    - include_tasks: {file: x.yml, apply: {bogus: 1}}\n",
            "keyword 'bogus' in include_tasks apply is not supported",
        ),
        (
            "    - name: t\n      debug: msg=x\n      diff: yes.\n",
            "Error processing keyword 'diff': The value 'yes.' could not be converted to 'bool'.",
        ),
        (
            "    - name: t\n      debug: {msg: x, _ansible_foo: 1}\n",
            "The prefix '_ansible_' is reserved for internal use only.",
        ),
        (
            "    - name: t\n      debug: msg=x\n      loop_control: {bogus: 1}\n      loop: [1]\n",
            "loop_control 'bogus' is not supported",
        ),
        (
            "    - name: t\n      command: id\n      become: true\n      become_method: doas\n",
            "become_method \"doas\" is not supported",
        ),
    ];
    // a role that is nowhere is ansible-core's AnsibleError: exit 1, not a parser error's 4
    let pb = dir.path().join("missing_role.yml");
    std::fs::write(
        &pb,
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - import_role: {name: no_such_role}\n",
    )
    .expect("write playbook");
    let out = Agent::in_dir(dir.path())
        .args(["playbook", "--syntax-check"])
        .arg(&pb)
        .run();
    out.expect_exit(1);
    assert!(
        out.stderr.contains("the role 'no_such_role' was not found")
            && out.stderr.contains("Origin: ")
            && out.stderr.contains("missing_role.yml:4:7"),
        "{}",
        out.stderr
    );
    for (i, (task, want)) in cases.iter().enumerate() {
        let pb = dir.path().join(format!("u{i}.yml"));
        std::fs::write(
            &pb,
            format!("- hosts: localhost\n  gather_facts: false\n  tasks:\n{task}"),
        )
        .expect("write playbook");
        let out = Agent::in_dir(dir.path())
            .args(["playbook", "--syntax-check"])
            .arg(&pb)
            .run();
        out.expect_exit(4);
        let stderr = &out.stderr;
        assert!(
            stderr.contains(want) && stderr.contains(&format!("u{i}.yml:")),
            "{task}: expected {want:?} with file:line, got {stderr}"
        );
    }
}
