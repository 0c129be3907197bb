//! The protocol with the etcd connection options as a module's shared
//! options ([`SharedOptions`]), and the real modules' declarations: the
//! `user: name:password` split, endpoint and timeout checks, and Ansible's
//! conversions and refusals by declared type. (Outside the protocol's own
//! unit tests, which know no etcd.)

use std::io::Write as _;

use etcd_modules::connection::ConnectionArgs;
use etcd_modules::protocol::{invoke, Context, Failure, Module, OptionDoc, Outcome, ReturnDoc};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

/// A module that takes only the connection options and reports what it got.
struct Conn;

impl Module for Conn {
    const NAME: &'static str = "conn";
    const SHORT_DESCRIPTION: &'static str = "test module";
    const DESCRIPTION: &'static [&'static str] = &["Reports its connection settings."];
    const OPTIONS: &'static [OptionDoc] = &[];
    const EXAMPLES: &'static str = "- conn: {}\n";
    const RETURNS: &'static [ReturnDoc] = &[];
    type Args = NoArgs;
    type Shared = ConnectionArgs;

    async fn run(_: NoArgs, ctx: &Context<ConnectionArgs>) -> Result<Outcome, Failure> {
        let settings = ctx.shared.connect_settings()?;
        Ok(Outcome::new(false, "ok")
            .with("endpoints", settings.endpoints)
            .with("user", ctx.shared.user.clone())
            .with(
                "password_len",
                ctx.shared.password.as_ref().map(|p| p.len()),
            ))
    }
}

fn conn_with(json: &str) -> (Value, i32) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(json.as_bytes()).unwrap();
    invoke::<Conn>(file.path())
}

#[test]
fn user_with_a_colon_is_split_and_the_password_masked() {
    let (result, code) = conn_with(r#"{"user":"root:pa55-w0rd","endpoints":"127.0.0.1:2379"}"#);
    assert_eq!(code, 0, "{result}");
    assert!(!result.to_string().contains("pa55-w0rd"), "{result}");
    assert_eq!(result["user"], "root");
    assert_eq!(result["password_len"], 9);
    assert_eq!(result["invocation"]["module_args"]["user"], "root");
    assert_eq!(
        result["invocation"]["module_args"]["password"],
        "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    );

    // user:password together with password: refused, neither value shown.
    let (result, code) = conn_with(r#"{"user":"root:pa55-w0rd","password":"other-s3cret"}"#);
    assert_eq!(code, 1);
    let text = result.to_string();
    assert!(
        !text.contains("pa55-w0rd") && !text.contains("other-s3cret"),
        "{text}"
    );
    assert!(
        result["msg"]
            .as_str()
            .unwrap()
            .starts_with("argument 'user' is invalid"),
        "{result}"
    );
    let (result, code) = conn_with(r#"{"user":":pa55-w0rd"}"#);
    assert_eq!(code, 1);
    assert!(!result.to_string().contains("pa55-w0rd"), "{result}");
}

#[test]
fn malformed_endpoints_and_ports_are_refused_at_parse_time() {
    for bad in [
        r#""http://""#,
        r#""https:///""#,
        r#""http://127.0.0.1:99999""#,
        r#""127.0.0.1:abc""#,
        r#""127.0.0.1:""#,
        r#""127.0.0.1:0""#,
        r#""http://127.0.0.1:2379/v3/kv""#,
        r#""ftp://127.0.0.1:2379""#,
        r#""http://user@127.0.0.1:2379""#,
        r#""a b:2379""#,
        r#""::1:2379""#,
        r#""""#,
        r#"" , ""#,
        r#"[]"#,
        r#"["127.0.0.1:2379", "http://"]"#,
    ] {
        let (result, code) = conn_with(&format!(r#"{{"endpoints":{bad}}}"#));
        assert_eq!(code, 1, "{bad}: {result}");
        let msg = result["msg"].as_str().unwrap();
        assert!(
            msg.starts_with("argument 'endpoints' is invalid: "),
            "{bad}: {msg}"
        );
        assert!(
            result.get("invocation").is_none(),
            "refused before the module ran: {result}"
        );
    }
    for (good, want) in [
        ("127.0.0.1:2379", "http://127.0.0.1:2379"),
        ("http://etcd-1.example:2379/", "http://etcd-1.example:2379"),
        ("https://[::1]:2379", "https://[::1]:2379"),
        ("localhost", "http://localhost"),
    ] {
        let (result, code) = conn_with(&format!(r#"{{"endpoints":"{good}"}}"#));
        assert_eq!(code, 0, "{good}: {result}");
        assert_eq!(result["endpoints"], serde_json::json!([want]), "{good}");
    }
}

#[test]
fn zero_timeouts_are_refused() {
    for (name, value) in [
        ("dial_timeout", "0"),
        ("dial_timeout", "\"0s\""),
        ("dial_timeout", "0.0"),
        ("command_timeout", "0"),
        ("command_timeout", "\"0ms\""),
    ] {
        let (result, code) = conn_with(&format!(r#"{{"{name}":{value}}}"#));
        assert_eq!(code, 1, "{name}={value}: {result}");
        assert_eq!(
            result["msg"],
            format!("argument '{name}' is invalid: it must be more than 0 seconds")
        );
    }
    for value in ["-1", "true", "[1]", "\"soon\""] {
        let (result, code) = conn_with(&format!(r#"{{"dial_timeout":{value}}}"#));
        assert_eq!(code, 1, "{value}: {result}");
    }
    let (result, code) = conn_with(r#"{"dial_timeout":"500ms","command_timeout":1}"#);
    assert_eq!(code, 0, "{result}");
}

fn invoke_real<M: Module>(args: Value) -> (Value, i32) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(args.to_string().as_bytes()).unwrap();
    invoke::<M>(file.path())
}

#[test]
fn the_real_modules_convert_and_refuse_like_ansible() {
    use serde_json::json;
    let tmp = tempfile::tempdir().unwrap();
    let closed = "127.0.0.1:1";

    // owner: [root] used to be ignored silently; a list is not a str.
    let (result, code) = invoke_real::<etcd_modules::snapshot::Snapshot>(json!({
        "path": tmp.path().join("s.db"), "owner": ["root"], "endpoints": closed,
    }));
    assert_eq!(code, 1);
    assert_eq!(
        result["msg"],
        "argument 'owner' is of type list and we were unable to convert to str: '[\"root\"]' is not a string and conversion is not allowed"
    );
    // owner: true is Python's str(True), with Ansible's warning, not ignored.
    let (result, code) = invoke_real::<etcd_modules::snapshot::Snapshot>(json!({
        "path": tmp.path().join("s.db"), "owner": true, "endpoints": closed,
        "dial_timeout": 0.5,
    }));
    assert_eq!(code, 1);
    assert!(
        result["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("The value \"owner: True\" (type bool) in a string field was converted to \"owner: 'True'\""),
        "{result}"
    );
    assert_eq!(result["invocation"]["module_args"]["owner"], "True");

    // id: 123 and name: 5 used to be refused. `id` is declared raw (an
    // integer id, as `etcdctl -w json` prints it, or a hex string), so the
    // number reaches the module as a number.
    let (result, code) = invoke_real::<etcd_modules::member::EtcdMember>(json!({
        "state": "absent", "id": 123, "endpoints": closed, "dial_timeout": 0.5,
        "wait_timeout": 0.5,
    }));
    assert_eq!(code, 1);
    assert_eq!(result["invocation"]["module_args"]["id"], 123);
    let msg = result["msg"].as_str().unwrap();
    assert!(!msg.starts_with("argument"), "{msg}");
    let (result, code) = invoke_real::<etcd_modules::restore::Restore>(json!({
        "snapshot": tmp.path().join("none.db"), "data_dir": tmp.path().join("data"),
        "name": 5, "initial_cluster": "5=http://127.0.0.1:2380",
    }));
    assert_eq!(code, 1);
    assert_eq!(result["invocation"]["module_args"]["name"], "5");
    let msg = result["msg"].as_str().unwrap();
    assert!(!msg.starts_with("argument"), "{msg}");
    assert!(!tmp.path().join("data").exists(), "nothing created");
}

#[test]
fn password_without_user_is_refused_by_the_declared_rule() {
    let (result, code) = conn_with(r#"{"password":"Lone-s3cret"}"#);
    assert_eq!(code, 1, "{result}");
    assert_eq!(
        result["msg"],
        "missing parameter(s) required by 'password': user"
    );
    assert!(!result.to_string().contains("Lone-s3cret"), "{result}");
    // The timeouts' declared defaults reach the module and the invocation.
    let (result, code) = conn_with(r#"{"endpoints":"127.0.0.1:2379"}"#);
    assert_eq!(code, 0, "{result}");
    assert_eq!(result["invocation"]["module_args"]["dial_timeout"], 2);
    assert_eq!(result["invocation"]["module_args"]["command_timeout"], 5);
}

#[test]
fn snapshot_rules_and_choices_refuse_before_anything_is_touched() {
    use serde_json::json;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snaps");
    let file = tmp.path().join("s.db");
    let closed = "127.0.0.1:1";
    for (args, msg) in [
        (
            json!({"endpoints": closed}),
            "state is present but any of the following are missing: path, dir".to_string(),
        ),
        (
            json!({"state": "verified"}),
            "state is verified but any of the following are missing: path, dir".into(),
        ),
        (
            json!({"state": "pruned", "dir": dir}),
            "state is pruned but all of the following are missing: keep".into(),
        ),
        (
            json!({"state": "pruned", "dir": dir, "keep": 2, "mode": "0644", "owner": "root"}),
            "mode, owner cannot be used with state=pruned".into(),
        ),
        (
            json!({"path": file, "dir": dir, "endpoints": closed}),
            "parameters are mutually exclusive: path|dir".into(),
        ),
        (
            json!({"state": "taken", "path": file}),
            "value of state must be one of: present, verified, pruned, got: taken".into(),
        ),
        (
            json!({"path": file, "mode": "0999", "endpoints": closed}),
            "argument 'mode' is invalid: mode \"0999\" is not an octal file mode such as \"0600\""
                .into(),
        ),
    ] {
        let (result, code) = invoke_real::<etcd_modules::snapshot::Snapshot>(args.clone());
        assert_eq!(code, 1, "{args}: {result}");
        assert_eq!(result["msg"], msg, "{args}");
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "{args}: nothing created"
        );
    }
}

#[test]
fn maintenance_and_health_take_their_declared_defaults() {
    use serde_json::json;
    let (result, code) = invoke_real::<etcd_modules::maintenance::Maintenance>(json!({
        "endpoints": "127.0.0.1:1", "dial_timeout": 0.2,
    }));
    assert_eq!(code, 1, "{result}");
    let args = &result["invocation"]["module_args"];
    assert_eq!(
        (&args["state"], &args["alarm"], &args["min_free_ratio"]),
        (&json!("status"), &json!("NOSPACE"), &json!(0.1))
    );
    let (result, code) = invoke_real::<etcd_modules::maintenance::Maintenance>(json!({
        "state": "status", "alarm": "all", "keep_revisions": 3,
    }));
    assert_eq!(code, 1);
    assert_eq!(
        result["msg"],
        "keep_revisions, alarm cannot be used with state=status"
    );
    let (result, code) = invoke_real::<etcd_modules::health::Health>(json!({
        "endpoints": "127.0.0.1:1", "dial_timeout": 0.2,
    }));
    assert_eq!(code, 1, "{result}");
    assert_eq!(
        result["invocation"]["module_args"]["fail_on_unhealthy"],
        true
    );
    assert_eq!(result["invocation"]["module_args"]["wait_timeout"], 0);
}
