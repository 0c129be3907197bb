//! Property test of the module protocol through the real module binaries
//! (`playbooks/library/`, run as Ansible runs them: args file in argv[1]).
//!
//! Every module gets every option with wrong types, huge, empty and odd
//! values, with `password` (or `user: name:password`) set to a recognisable
//! secret, and etcd endpoints on a closed loopback port. Whatever the input:
//! exit 0 or 1 matching `failed`, exactly one JSON object on stdout, nothing
//! on stderr, no panic, no credential the case gives (see `secrets_in`)
//! anywhere in stdout or stderr, and the
//! sandbox (cwd and HOME of the module) keeps its files byte for byte and
//! gains no file.

use harness::{module_binary, poll_until};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const SECRET: &str = "Fuzz-S3cret-7d1e";
/// A secret given as a number (Ansible converts it to a string).
const NUMBER_SECRET: u64 = 987_654_321_987;
/// A closed loopback port: nothing listens on port 1.
const CLOSED: &str = "127.0.0.1:1";
const CASES_PER_MODULE: u32 = 80;

/// The options of each module (the connection options are added for the
/// modules that talk to etcd).
const CONNECTION: &[&str] = &[
    "endpoints",
    "ca_cert",
    "client_cert",
    "client_key",
    "user",
    "password",
    "dial_timeout",
    "command_timeout",
];
const MODULES: &[(&str, &[&str], bool)] = &[
    ("etcd_health", &["fail_on_unhealthy", "wait_timeout"], true),
    (
        "etcd_member",
        &[
            "state",
            "name",
            "id",
            "peer_urls",
            "learner",
            "force",
            "wait_timeout",
        ],
        true,
    ),
    (
        "etcd_snapshot",
        &[
            "state", "path", "dir", "keep", "max_age", "mode", "owner", "group",
        ],
        true,
    ),
    (
        "etcd_restore",
        &[
            "snapshot",
            "data_dir",
            "name",
            "initial_cluster",
            "initial_cluster_token",
            "initial_advertise_peer_urls",
            "skip_hash_check",
            "owner",
            "group",
            "etcdctl_path",
            "etcdutl_path",
        ],
        false,
    ),
];

/// Values of any type that no option should choke on.
fn nasty() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!(true)),
        Just(json!(false)),
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(1.5)),
        Just(json!(1e300)),
        Just(json!(-1e300)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!("")),
        Just(json!(" ")),
        Just(json!(",")),
        Just(json!(",,, ,")),
        Just(json!("~")),
        Just(json!("$HOME/fz")),
        Just(json!("x".repeat(100_000))),
        Just(json!("\u{0}nul\u{7f}")),
        Just(json!("ünïcødé ✓ \u{202e}")),
        Just(json!("%s%n{}{{}}")),
        Just(json!("yes")),
        Just(json!("1.0")),
        Just(json!("10")),
        Just(json!([])),
        Just(json!([[]])),
        Just(json!([null, 1, true, "a"])),
        Just(json!({})),
        Just(json!({"a": {"b": [1, null]}})),
        Just(json!(["not-a-secret"])),
        Just(json!({ "k": "not-a-secret" })),
        Just(json!({ "not-a-secret": 1 })),
        Just(json!(vec!["a"; 5000])),
        "[a-z0-9 ,:=/.~$%{}_-]{0,24}".prop_map(|s| json!(format!("fz-{s}"))),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        any::<bool>().prop_map(Value::from),
    ]
    .boxed()
}

/// Durations: only values that are refused or short, so no run waits long
/// on the closed port.
fn duration() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(json!(0)),
        Just(json!(0.2)),
        Just(json!("0.3s")),
        Just(json!("200ms")),
        Just(json!(-1)),
        Just(json!(1e300)),
        Just(json!(1e12)),
        Just(json!("1e12")),
        Just(json!("soon")),
        Just(json!("")),
        Just(json!("5x")),
        Just(json!(true)),
        Just(json!([1])),
        Just(json!({ "s": 1 })),
        Just(json!("x".repeat(100_000))),
        Just(json!(SECRET)),
    ]
    .boxed()
}

/// Endpoints: malformed ones and the closed port, never a name that needs DNS.
fn endpoints() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(json!(CLOSED)),
        Just(json!(format!("http://{CLOSED}"))),
        Just(json!([CLOSED, "127.0.0.1:2"])),
        Just(json!("http://")),
        Just(json!("https://")),
        Just(json!("http://127.0.0.1:99999")),
        Just(json!("127.0.0.1:abc")),
        Just(json!("127.0.0.1:")),
        Just(json!("unix:///tmp/fz.sock")),
        Just(json!(format!("http://{SECRET}@{CLOSED}"))),
        Just(json!("")),
        Just(json!([])),
        Just(json!([""])),
        Just(json!([1, 2])),
        Just(json!(2379)),
        Just(json!(true)),
        Just(json!({ "a": CLOSED })),
        Just(json!("x".repeat(100_000))),
    ]
    .boxed()
}

/// The secret in the places a user could put it.
fn password() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(json!(SECRET)),
        Just(json!(NUMBER_SECRET)),
        Just(json!([SECRET])),
        Just(json!({ "k": SECRET })),
        Just(json!([[SECRET], { "x": SECRET }])),
        Just(json!(format!("{SECRET}\u{0}"))),
        Just(json!(SECRET.repeat(5000))),
    ]
    .boxed()
}

fn value_for(option: &str) -> BoxedStrategy<Value> {
    match option {
        "wait_timeout" | "dial_timeout" | "command_timeout" | "max_age" => duration(),
        "endpoints" => endpoints(),
        "password" => password(),
        "user" => prop_oneof![
            nasty(),
            Just(json!(format!("root:{SECRET}"))),
            Just(json!(format!(":{SECRET}"))),
        ]
        .boxed(),
        _ => nasty(),
    }
}

/// One case: base arguments with 1 to 4 options replaced by fuzzed values
/// (sometimes an unknown option too).
fn case(module: usize) -> BoxedStrategy<Map<String, Value>> {
    let (_, own, connection) = MODULES[module];
    let mut options: Vec<&'static str> = own.to_vec();
    if connection {
        options.extend(CONNECTION);
    }
    options.push("fz_unknown_option");
    let picks = proptest::collection::vec(
        proptest::sample::select(options).prop_flat_map(|o| (Just(o), value_for(o))),
        1..=4,
    );
    picks
        .prop_map(move |picks| {
            let mut args = Map::new();
            for (o, v) in picks {
                args.insert(o.to_string(), v);
            }
            args
        })
        .boxed()
}

fn base_args(module: &str, sandbox: &Path) -> Map<String, Value> {
    let s = |p: &str| sandbox.join(p).display().to_string();
    let mut base = match module {
        "etcd_restore" => json!({
            "snapshot": s("no-such-snapshot.db"),
            "data_dir": s("data"),
            "name": "fz",
            "initial_cluster": "fz=http://127.0.0.1:2",
        }),
        // A short wait_timeout: etcd_member retries within it (60 s by default).
        "etcd_member" => {
            json!({"name": "fz", "peer_urls": "http://127.0.0.1:2", "wait_timeout": 0.5})
        }
        "etcd_snapshot" => json!({"path": s("snap.db")}),
        _ => json!({}),
    };
    if module != "etcd_restore" {
        let b = base.as_object_mut().unwrap();
        b.insert("endpoints".into(), json!(CLOSED));
        b.insert("dial_timeout".into(), json!(0.5));
        b.insert("command_timeout".into(), json!(0.5));
        b.insert("user".into(), json!("fz"));
        b.insert("password".into(), json!(SECRET));
    }
    base.as_object().unwrap().clone()
}

/// Every file under `dir` with its content (directories are not compared:
/// a module may create an empty destination directory before it fails).
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else {
                let content = std::fs::read(&path).unwrap_or_default();
                out.insert(path.display().to_string(), content);
            }
        }
    }
    out
}

/// The credentials a case gives, as text that must never be printed: every
/// value inside `password` (as given, trimmed of blanks and control
/// characters, and escaped as JSON writes it), the password of a
/// `user: name:password`, and the user information (`user:password@`) of an
/// endpoint URL. A secret-looking string elsewhere (a `max_age` of `SECRET`
/// beside another password) is not a credential and may be echoed, as
/// Ansible echoes it.
fn secrets_in(args: &Map<String, Value>) -> Vec<String> {
    fn leaves(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Number(n) => out.push(n.to_string()),
            Value::Bool(b) => out.push(b.to_string()),
            Value::Array(items) => items.iter().for_each(|i| leaves(i, out)),
            Value::Object(m) => m.values().for_each(|i| leaves(i, out)),
            Value::Null => {}
        }
    }
    let mut given = Vec::new();
    if let Some(password) = args.get("password") {
        leaves(password, &mut given);
    }
    if let Some((_, password)) = args
        .get("user")
        .and_then(Value::as_str)
        .and_then(|u| u.split_once(':'))
    {
        given.push(password.to_string());
    }
    let mut endpoints = Vec::new();
    if let Some(e) = args.get("endpoints") {
        leaves(e, &mut endpoints);
    }
    for endpoint in endpoints {
        let rest = endpoint
            .split_once("://")
            .map_or(endpoint.as_str(), |(_, r)| r);
        if let Some((userinfo, _)) = rest.rsplit_once('@') {
            given.push(userinfo.to_string());
        }
    }
    let mut out = Vec::new();
    for secret in given {
        let trimmed = secret.trim_matches(|c: char| c.is_whitespace() || c.is_control());
        let escaped = serde_json::to_string(&secret).unwrap();
        let escaped = escaped.trim_matches('"');
        for form in [secret.as_str(), trimmed, escaped] {
            if form.len() >= 6 && !out.iter().any(|o| o == form) {
                out.push(form.to_string());
            }
        }
    }
    out
}

fn run_case(module: &str, args: &Map<String, Value>) -> Result<(), TestCaseError> {
    let sandbox = tempfile::tempdir().unwrap();
    let home = sandbox.path().join("home");
    let work = sandbox.path().join("work");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    // Files a careless module could delete or rewrite.
    std::fs::write(home.join("keep-me.txt"), "precious").unwrap();
    std::fs::write(
        work.join("etcd-snapshot-20000101T000000Z.db"),
        "an old snapshot",
    )
    .unwrap();

    let mut full = base_args(module, &work);
    full.extend(args.clone());
    full.insert("_ansible_check_mode".into(), json!(false));
    full.insert("_ansible_no_log".into(), json!(false));
    full.insert("_ansible_module_name".into(), json!(module));
    let args_dir = tempfile::tempdir().unwrap();
    let args_path = args_dir.path().join("args");
    std::fs::write(
        &args_path,
        serde_json::to_vec(&Value::Object(full.clone())).unwrap(),
    )
    .unwrap();

    let secrets = secrets_in(&full);
    let before = files(sandbox.path());
    let mut child = Command::new(module_binary(module))
        .arg(&args_path)
        .current_dir(&work)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Output is read after exit; results are small except for echoed huge
    // values, so read in threads to never block the child on a full pipe.
    let mut stdout_pipe = child.stdout.take().unwrap();
    let mut stderr_pipe = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stdout_pipe, &mut buf).ok();
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stderr_pipe, &mut buf).ok();
        buf
    });
    let status = poll_until(Duration::from_secs(60), || child.try_wait().unwrap());
    let Some(status) = status else {
        child.kill().ok();
        child.wait().ok();
        return Err(TestCaseError::fail(format!(
            "{module} did not exit within 60 s for {}",
            Value::Object(full)
        )));
    };
    let stdout = String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned();
    let after = files(sandbox.path());

    let shown = {
        let mut s = Value::Object(args.clone()).to_string();
        s.truncate(600);
        s
    };
    let ctx = format!("{module} with {shown}\nstdout: {stdout:.2000}\nstderr: {stderr:.2000}");
    prop_assert!(stderr.is_empty(), "stderr not empty: {ctx}");
    let mut stream = serde_json::Deserializer::from_str(stdout.trim()).into_iter::<Value>();
    let result = match stream.next() {
        Some(Ok(v @ Value::Object(_))) => v,
        _ => return Err(TestCaseError::fail(format!("not a JSON object: {ctx}"))),
    };
    prop_assert!(stream.next().is_none(), "more than one JSON value: {ctx}");
    let code = status.code();
    prop_assert!(matches!(code, Some(0) | Some(1)), "exit {status}: {ctx}");
    prop_assert_eq!(
        code == Some(1),
        result["failed"] == true,
        "exit code must follow failed: {}",
        ctx
    );
    prop_assert!(result["msg"].is_string(), "no msg: {ctx}");
    for text in [&stdout, &stderr] {
        prop_assert!(!text.contains("panicked"), "panic text: {ctx}");
        prop_assert!(!text.contains("internal error in module"), "panic: {ctx}");
        prop_assert!(!text.contains("RUST_BACKTRACE"), "panic: {ctx}");
        for secret in &secrets {
            prop_assert!(!text.contains(secret.as_str()), "secret leaked: {ctx}");
        }
    }
    prop_assert!(
        before == after,
        "files changed: before {:?} after {:?}: {ctx}",
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    Ok(())
}

fn fuzz(module_index: usize) {
    let (module, _, _) = MODULES[module_index];
    let mut runner = TestRunner::new(Config {
        cases: CASES_PER_MODULE,
        // No regression files written into the source tree.
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..Config::default()
    });
    let result = runner.run(&case(module_index), |args| run_case(module, &args));
    if let Err(e) = result {
        panic!("{module}: {e}");
    }
}

#[test]
fn etcd_health_survives_any_arguments() {
    fuzz(0);
}

#[test]
fn etcd_member_survives_any_arguments() {
    fuzz(1);
}

#[test]
fn etcd_snapshot_survives_any_arguments() {
    fuzz(2);
}

#[test]
fn etcd_restore_survives_any_arguments() {
    fuzz(3);
}
