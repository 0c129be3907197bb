//! Protocol tests with small test-only modules; no etcd needed.

use super::*;
use serde::Deserialize;
use std::io::Write as _;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EchoArgs {
    name: String,
    count: Option<lenient::Int>,
    enabled: Option<lenient::Bool>,
    token: Option<String>,
    panic: Option<lenient::Bool>,
    path: Option<std::path::PathBuf>,
    items: Option<lenient::List>,
    anything: Option<Value>,
}

struct Echo;

impl Module for Echo {
    const NAME: &'static str = "echo";
    const SHORT_DESCRIPTION: &'static str = "test module";
    const DESCRIPTION: &'static [&'static str] = &["Echoes its arguments."];
    const USES_CONNECTION: bool = false;
    const OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::new("name", ArgType::Str, "a name").required(),
        OptionDoc::new("count", ArgType::Int, "a count").default("1"),
        OptionDoc::new("enabled", ArgType::Bool, "a flag"),
        OptionDoc::new("token", ArgType::Str, "a secret").no_log(),
        OptionDoc::new("panic", ArgType::Bool, "panic when true"),
        OptionDoc::new("path", ArgType::Path, "a path"),
        OptionDoc::new("items", ArgType::List, "a list"),
        OptionDoc::new("anything", ArgType::Raw, "any value"),
    ];
    const EXAMPLES: &'static str = "- echo:\n    name: x\n";
    const RETURNS: &'static [ReturnDoc] = &[];
    type Args = EchoArgs;

    async fn run(args: EchoArgs, ctx: &Context) -> Result<Outcome, Failure> {
        if args.panic.is_some_and(|p| p.0) {
            panic!("boom");
        }
        let changed = !ctx.check_mode;
        let mut outcome = Outcome::new(changed, format!("hello {}", args.name))
            .with("count", args.count.map_or(1, |c| c.0))
            .with("enabled", args.enabled.is_some_and(|b| b.0))
            .with("check_mode", ctx.check_mode)
            .with(
                "token_echo",
                format!("token was {}", args.token.unwrap_or_default()),
            )
            .with("path", args.path.map(|p| p.display().to_string()))
            .with("items", args.items.map(|l| l.0))
            .with("anything", args.anything);
        outcome.diff = Some(serde_json::json!({"before": "a", "after": "b"}));
        Ok(outcome)
    }
}

fn run_with(json: &str) -> (Value, i32) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(json.as_bytes()).unwrap();
    invoke::<Echo>(file.path())
}

#[test]
fn unknown_parameters_fail_in_ansibles_words() {
    let (result, code) = run_with(r#"{"name":"x","zeta":1,"alpha":2,"_ansible_whatever":3}"#);
    assert_eq!(code, 1);
    assert_eq!(result["failed"], true);
    assert_eq!(
        result["msg"],
        "Unsupported parameters for (echo) module: alpha, zeta. Supported parameters include: anything, count, enabled, items, name, panic, path, token."
    );
}

#[test]
fn wrong_type_names_the_argument() {
    let (result, code) = run_with(r#"{"name":"x","enabled":"maybe"}"#);
    assert_eq!(code, 1);
    let msg = result["msg"].as_str().unwrap();
    assert!(
        msg.starts_with(
            "argument 'enabled' is of type str and we were unable to convert to bool: The value 'maybe' is not a valid boolean."
        ),
        "{msg}"
    );
}

#[test]
fn missing_required_argument_is_named() {
    let (result, _) = run_with(r#"{"count":3}"#);
    assert_eq!(result["msg"], "missing required arguments: name");
}

#[test]
fn missing_args_file_and_invalid_json_fail_cleanly() {
    let (result, code) = invoke::<Echo>(std::path::Path::new("/nonexistent/args"));
    assert_eq!(code, 1);
    assert!(result["msg"]
        .as_str()
        .unwrap()
        .contains("cannot read module arguments file"));
    let (result, code) = run_with("{not json");
    assert_eq!(code, 1);
    assert!(result["msg"].as_str().unwrap().contains("not valid JSON"));
    let (result, _) = run_with("[1,2]");
    assert_eq!(result["msg"], "module arguments must be a JSON object");
}

#[test]
fn strings_convert_like_ansible_and_nulls_mean_omitted() {
    let (result, code) = run_with(r#"{"name":"x","count":"7","enabled":"yes","token":null}"#);
    assert_eq!(code, 0, "{result}");
    assert_eq!(result["count"], 7);
    assert_eq!(result["enabled"], true);
}

#[test]
fn check_mode_and_diff_reach_the_module() {
    let (result, _) = run_with(r#"{"name":"x","_ansible_check_mode":true}"#);
    assert_eq!(result["check_mode"], true);
    assert_eq!(result["changed"], false);
    assert!(result.get("diff").is_none(), "diff only in diff mode");
    let (result, _) = run_with(r#"{"name":"x","_ansible_diff":true}"#);
    assert_eq!(result["diff"]["after"], "b");
}

#[test]
fn no_log_values_never_appear_in_the_result() {
    let (result, _) = run_with(r#"{"name":"x","token":"s3cr3t-value"}"#);
    let text = result.to_string();
    assert!(!text.contains("s3cr3t-value"), "{text}");
    assert_eq!(
        result["invocation"]["module_args"]["token"],
        mask::NO_LOG_PLACEHOLDER
    );
    assert_eq!(result["token_echo"], "token was ********");
    assert_eq!(
        result["invocation"]["module_args"]["count"], 1,
        "defaults are reported"
    );
}

#[test]
fn a_panic_becomes_a_failed_result() {
    let (result, code) = run_with(r#"{"name":"x","panic":true}"#);
    assert_eq!(code, 1);
    assert_eq!(result["failed"], true);
    assert_eq!(result["msg"], "internal error in module: boom");
}

#[test]
fn documented_options_are_exactly_the_struct_fields() {
    let mut fields = args::struct_fields::<EchoArgs>().to_vec();
    fields.sort_unstable();
    let mut documented: Vec<&str> = Echo::OPTIONS.iter().map(|o| o.name).collect();
    documented.sort_unstable();
    assert_eq!(fields, documented);
}

/// Runs `json` and checks that `secret` appears nowhere in the result.
fn run_hiding(json: &str, secret: &str) -> (Value, i32) {
    let (result, code) = run_with(json);
    let text = result.to_string();
    assert!(!text.contains(secret), "{secret} leaked: {text}");
    (result, code)
}

#[test]
fn a_number_for_a_no_log_string_is_converted_and_never_echoed() {
    // The issue: `password: 12345678` gave "invalid type: integer 12345678".
    let (result, code) = run_hiding(r#"{"name":"x","token":12345678}"#, "12345678");
    assert_eq!(code, 0, "{result}");
    assert_eq!(result["token_echo"], "token was ********");
    let warning = result["warnings"][0].as_str().unwrap();
    assert_eq!(
        warning,
        "The value \"token: ********\" (type int) in a string field was converted to \"token: '********'\" (type str). If this does not look like what you expect, quote the entire value to ensure it does not change."
    );
    let (_, code) = run_hiding(r#"{"name":"x","token":1234.5678}"#, "1234.5678");
    assert_eq!(code, 0);
}

#[test]
fn a_wrong_type_for_a_no_log_option_never_echoes_it() {
    for (json, secret) in [
        (
            r#"{"name":"x","token":["s3cr3t-in-a-list"]}"#,
            "s3cr3t-in-a-list",
        ),
        (
            r#"{"name":"x","token":{"k":"s3cr3t-in-a-dict"}}"#,
            "s3cr3t-in-a-dict",
        ),
        (r#"{"name":"x","token":{"s3cr3t-key":1}}"#, "s3cr3t-key"),
    ] {
        let (result, code) = run_hiding(json, secret);
        assert_eq!(code, 1, "{result}");
        let msg = result["msg"].as_str().unwrap();
        assert!(msg.starts_with("argument 'token' is of type "), "{msg}");
    }
}

#[test]
fn every_no_log_value_is_masked_in_every_message() {
    // Whatever option fails, the secret is masked even in another option's message.
    let (result, code) = run_hiding(
        r#"{"name":"x","token":"hunter2","count":"hunter2"}"#,
        "hunter2",
    );
    assert_eq!(code, 1);
    assert!(
        result["msg"].as_str().unwrap().contains("********"),
        "{result}"
    );
    // Also when the arguments are refused as unsupported, or required ones are missing.
    run_hiding(r#"{"token":"hunter2","hunter2":1}"#, "hunter2");
    run_hiding(r#"{"token":"hunter2"}"#, "hunter2");
}

#[test]
fn numbers_for_string_options_convert_with_ansibles_warning() {
    let (result, code) = run_with(r#"{"name":5}"#);
    assert_eq!(code, 0, "{result}");
    assert_eq!(result["msg"], "hello 5");
    assert_eq!(
        result["warnings"],
        serde_json::json!(["The value \"name: 5\" (type int) in a string field was converted to \"name: '5'\" (type str). If this does not look like what you expect, quote the entire value to ensure it does not change."])
    );
    let (result, _) = run_with(r#"{"name":true}"#);
    assert_eq!(result["msg"], "hello True");
    let (result, _) = run_with(r#"{"name":1.0}"#);
    assert_eq!(result["msg"], "hello 1.0");
    assert_eq!(result["invocation"]["module_args"]["name"], "1.0");
}

#[test]
fn lists_and_dicts_for_string_options_are_refused() {
    let (result, code) = run_with(r#"{"name":["root"]}"#);
    assert_eq!(code, 1);
    assert_eq!(
        result["msg"],
        "argument 'name' is of type list and we were unable to convert to str: '[\"root\"]' is not a string and conversion is not allowed"
    );
    let (result, code) = run_with(r#"{"name":{"a":1}}"#);
    assert_eq!(code, 1);
    assert!(result["msg"]
        .as_str()
        .unwrap()
        .starts_with("argument 'name' is of type dict"));
}

#[test]
fn ints_convert_like_ansible() {
    for (given, want) in [
        ("\"10\"", 10),
        ("1.0", 1),
        ("\" 7 \"", 7),
        ("\"1e3\"", 1000),
    ] {
        let (result, code) = run_with(&format!(r#"{{"name":"x","count":{given}}}"#));
        assert_eq!(code, 0, "{given}: {result}");
        assert_eq!(result["count"], want, "{given}");
    }
    for (given, msg) in [
        ("1.5", "argument 'count' is of type float and we were unable to convert to int: \"1.5\" cannot be converted to an int"),
        ("true", "argument 'count' is of type bool and we were unable to convert to int: \"True\" cannot be converted to an int"),
        ("\"abc\"", "argument 'count' is of type str and we were unable to convert to int: \"'abc'\" cannot be converted to an int"),
        ("\"1.5\"", "argument 'count' is of type str and we were unable to convert to int: \"'1.5'\" cannot be converted to an int"),
        ("\"inf\"", "argument 'count' is of type str and we were unable to convert to int: \"'inf'\" cannot be converted to an int"),
        ("[1]", "argument 'count' is of type list and we were unable to convert to int: \"[1]\" cannot be converted to an int"),
    ] {
        let (result, code) = run_with(&format!(r#"{{"name":"x","count":{given}}}"#));
        assert_eq!(code, 1, "{given}: {result}");
        assert_eq!(result["msg"], msg, "{given}");
    }
}

#[test]
fn bools_follow_ansibles_booleans() {
    for (given, want) in [
        ("\"yes\"", true),
        ("\" On \"", true),
        ("\"T\"", true),
        ("1", true),
        ("1.0", true),
        ("\"off\"", false),
        ("0", false),
        ("0.0", false),
        ("\"n\"", false),
    ] {
        let (result, code) = run_with(&format!(r#"{{"name":"x","enabled":{given}}}"#));
        assert_eq!(code, 0, "{given}: {result}");
        assert_eq!(result["enabled"], want, "{given}");
    }
    for given in ["\"1.0\"", "2", "\"maybe\"", "[true]", "{}", "\"\""] {
        let (result, code) = run_with(&format!(r#"{{"name":"x","enabled":{given}}}"#));
        assert_eq!(code, 1, "{given}: {result}");
        assert!(
            result["msg"]
                .as_str()
                .unwrap()
                .starts_with("argument 'enabled' is of type"),
            "{result}"
        );
    }
}

#[test]
fn lists_split_strings_and_wrap_scalars() {
    for (given, want) in [
        ("\"a, b,c\"", serde_json::json!(["a", "b", "c"])),
        ("5", serde_json::json!(["5"])),
        ("[\"a\", 2]", serde_json::json!(["a", "2"])),
    ] {
        let (result, code) = run_with(&format!(r#"{{"name":"x","items":{given}}}"#));
        assert_eq!(code, 0, "{given}: {result}");
        assert_eq!(result["items"], want, "{given}");
    }
    for given in ["true", "{\"a\":1}", "[[1]]"] {
        let (result, code) = run_with(&format!(r#"{{"name":"x","items":{given}}}"#));
        assert_eq!(code, 1, "{given}: {result}");
        assert!(
            result["msg"]
                .as_str()
                .unwrap()
                .starts_with("argument 'items' is of type"),
            "{result}"
        );
    }
}

#[test]
fn paths_expand_home_and_variables_and_raw_takes_anything() {
    let home = std::env::var("HOME").unwrap();
    let (result, code) = run_with(r#"{"name":"x","path":"~/backups","anything":[1,{"a":null}]}"#);
    assert_eq!(code, 0, "{result}");
    assert_eq!(
        result["path"],
        format!("{}/backups", home.trim_end_matches('/'))
    );
    assert_eq!(result["anything"], serde_json::json!([1, {"a": null}]));
    let (result, code) = run_with(r#"{"name":"x","path":"$HOME/b"}"#);
    assert_eq!(code, 0, "{result}");
    assert_eq!(result["path"], format!("{home}/b"));
    let (result, code) = run_with(r#"{"name":"x","path":["/a"]}"#);
    assert_eq!(code, 1);
    assert!(
        result["msg"]
            .as_str()
            .unwrap()
            .starts_with("argument 'path' is of type list and we were unable to convert to path"),
        "{result}"
    );
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

/// A module that takes only the connection options and reports what it got.
struct Conn;

impl Module for Conn {
    const NAME: &'static str = "conn";
    const SHORT_DESCRIPTION: &'static str = "test module";
    const DESCRIPTION: &'static [&'static str] = &["Reports its connection settings."];
    const USES_CONNECTION: bool = true;
    const OPTIONS: &'static [OptionDoc] = &[];
    const EXAMPLES: &'static str = "- conn: {}\n";
    const RETURNS: &'static [ReturnDoc] = &[];
    type Args = NoArgs;

    async fn run(_: NoArgs, ctx: &Context) -> Result<Outcome, Failure> {
        let settings = ctx.connection.connect_settings()?;
        Ok(Outcome::new(false, "ok")
            .with("endpoints", settings.endpoints)
            .with("user", ctx.connection.user.clone())
            .with(
                "password_len",
                ctx.connection.password.as_ref().map(|p| p.len()),
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
        mask::NO_LOG_PLACEHOLDER
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
    let (result, code) = invoke_real::<crate::snapshot::Snapshot>(json!({
        "path": tmp.path().join("s.db"), "owner": ["root"], "endpoints": closed,
    }));
    assert_eq!(code, 1);
    assert_eq!(
        result["msg"],
        "argument 'owner' is of type list and we were unable to convert to str: '[\"root\"]' is not a string and conversion is not allowed"
    );
    // owner: true is Python's str(True), with Ansible's warning, not ignored.
    let (result, code) = invoke_real::<crate::snapshot::Snapshot>(json!({
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
    let (result, code) = invoke_real::<crate::member::EtcdMember>(json!({
        "state": "absent", "id": 123, "endpoints": closed, "dial_timeout": 0.5,
        "wait_timeout": 0.5,
    }));
    assert_eq!(code, 1);
    assert_eq!(result["invocation"]["module_args"]["id"], 123);
    let msg = result["msg"].as_str().unwrap();
    assert!(!msg.starts_with("argument"), "{msg}");
    let (result, code) = invoke_real::<crate::restore::Restore>(json!({
        "snapshot": tmp.path().join("none.db"), "data_dir": tmp.path().join("data"),
        "name": 5, "initial_cluster": "5=http://127.0.0.1:2380",
    }));
    assert_eq!(code, 1);
    assert_eq!(result["invocation"]["module_args"]["name"], "5");
    let msg = result["msg"].as_str().unwrap();
    assert!(!msg.starts_with("argument"), "{msg}");
    assert!(!tmp.path().join("data").exists(), "nothing created");
}
