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
            );
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
        "Unsupported parameters for (echo) module: alpha, zeta. Supported parameters include: count, enabled, name, panic, token."
    );
}

#[test]
fn wrong_type_names_the_argument() {
    let (result, code) = run_with(r#"{"name":"x","enabled":"maybe"}"#);
    assert_eq!(code, 1);
    let msg = result["msg"].as_str().unwrap();
    assert!(msg.starts_with("argument 'enabled' is invalid"), "{msg}");
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
