//! Protocol tests with small test-only modules; no etcd needed.

use super::*;
use serde::Deserialize;
use std::io::Write as _;

crate::choices! {
    /// A test choice.
    enum Color {
        /// The default.
        Red = "red",
        /// Needs a token.
        Green = "green",
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EchoArgs {
    name: String,
    count: lenient::Int,
    color: Color,
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
    const OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::new("name", ArgType::Str, "a name").required(),
        OptionDoc::new("count", ArgType::Int, "a count").default("1"),
        OptionDoc::new("color", ArgType::Str, "a choice")
            .default("\"red\"")
            .choices(Color::NAMES),
        OptionDoc::new("enabled", ArgType::Bool, "a flag"),
        OptionDoc::new("token", ArgType::Str, "a secret").no_log(),
        OptionDoc::new("panic", ArgType::Bool, "panic when true"),
        OptionDoc::new("path", ArgType::Path, "a path"),
        OptionDoc::new("items", ArgType::List, "a list"),
        OptionDoc::new("anything", ArgType::Raw, "any value"),
    ];
    const RULES: &'static [Rule] = &[
        Rule::mutually_exclusive(&["path", "items"]),
        Rule::required_if("color", "green", &["token"]),
    ];
    const EXAMPLES: &'static str = "- echo:\n    name: x\n";
    const RETURNS: &'static [ReturnDoc] = &[];
    type Args = EchoArgs;
    type Shared = super::NoSharedOptions;

    async fn run(args: EchoArgs, ctx: &Context) -> Result<Outcome, Failure> {
        if args.panic.is_some_and(|p| p.0) {
            panic!("boom");
        }
        let changed = !ctx.check_mode;
        let mut outcome = Outcome::new(changed, format!("hello {}", args.name))
            .with("count", args.count.0)
            .with("color", args.color.to_string())
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
        "Unsupported parameters for (echo) module: alpha, zeta. Supported parameters include: anything, color, count, enabled, items, name, panic, path, token."
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
    let mut fields = fields::struct_fields::<EchoArgs>().to_vec();
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

#[test]
fn declared_defaults_are_filled_before_the_args_are_typed() {
    let (result, code) = run_with(r#"{"name":"x","count":null}"#);
    assert_eq!(code, 0, "{result}");
    assert_eq!(result["count"], 1);
    assert_eq!(result["color"], "red");
    assert_eq!(result["invocation"]["module_args"]["color"], "red");
    assert_eq!(result["invocation"]["module_args"]["count"], 1);
    let (result, _) = run_with(r#"{"name":"x","count":"4","color":"green","token":"t0k"}"#);
    assert_eq!(
        (result["count"].clone(), result["color"].clone()),
        (4.into(), "green".into())
    );
}

#[test]
fn choices_are_checked_in_ansibles_words() {
    let (result, code) = run_with(r#"{"name":"x","color":"blue"}"#);
    assert_eq!(code, 1);
    assert_eq!(
        result["msg"],
        "value of color must be one of: red, green, got: blue"
    );
    assert!(result.get("invocation").is_none(), "refused before the run");
    // A number is converted to text first, as for any str option.
    let (result, code) = run_with(r#"{"name":"x","color":5}"#);
    assert_eq!(code, 1);
    assert_eq!(
        result["msg"],
        "value of color must be one of: red, green, got: 5"
    );
    // Choices are exact, as in Ansible.
    let (result, code) = run_with(r#"{"name":"x","color":"Red"}"#);
    assert_eq!(code, 1, "{result}");
}

#[test]
fn declared_rules_are_enforced_in_ansibles_words() {
    let (result, code) = run_with(r#"{"name":"x","path":"/a","items":"b"}"#);
    assert_eq!(code, 1);
    assert_eq!(
        result["msg"],
        "parameters are mutually exclusive: path|items"
    );
    let (result, code) = run_with(r#"{"name":"x","path":"/a","items":null}"#);
    assert_eq!(code, 0, "a null is not given: {result}");
    let (result, code) = run_with(r#"{"name":"x","color":"green"}"#);
    assert_eq!(code, 1);
    assert_eq!(
        result["msg"],
        "color is green but all of the following are missing: token"
    );
}

#[test]
fn the_docs_render_defaults_choices_and_rules_from_the_declaration() {
    assert_eq!(doc_drift::<Echo>(), Vec::<String>::new());
    let yaml = sidecar_yaml::<Echo>();
    assert!(
        yaml.contains("    color:\n      description: \"a choice\"\n      type: str\n      required: false\n      default: \"red\"\n      choices: [\"red\", \"green\"]\n"),
        "{yaml}"
    );
    assert!(
        yaml.contains("  notes:\n    - \"At most one of path, items may be given.\"\n    - \"With color=green, all of token are required.\"\n"),
        "{yaml}"
    );
    let help = doc::usage::<Echo>();
    assert!(help.contains("default \"red\", one of red|green"), "{help}");
    assert!(
        help.contains("Rules:\n  At most one of path, items may be given."),
        "{help}"
    );
}

/// A module whose declaration disagrees with its struct in every way drift
/// detection knows.
struct Drifty;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DriftyArgs {
    /// Declared with choices, but any string deserializes.
    state: String,
    /// Declared optional without default, but not an `Option`.
    #[allow(dead_code)]
    level: lenient::Int,
    /// Undocumented.
    #[allow(dead_code)]
    extra: Option<String>,
}

impl Module for Drifty {
    const NAME: &'static str = "drifty";
    const SHORT_DESCRIPTION: &'static str = "test module";
    const DESCRIPTION: &'static [&'static str] = &["Drifts."];
    const OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::new("state", ArgType::Str, "a state")
            .default("\"gone\"")
            .choices(&["on", "off"]),
        OptionDoc::new("level", ArgType::Int, "a level"),
        OptionDoc::new("ghost", ArgType::Str, "not a field"),
    ];
    const RULES: &'static [Rule] = &[Rule::required_by("state", &["nothing"])];
    const EXAMPLES: &'static str = "";
    const RETURNS: &'static [ReturnDoc] = &[];
    type Args = DriftyArgs;
    type Shared = super::NoSharedOptions;

    async fn run(args: DriftyArgs, _: &Context) -> Result<Outcome, Failure> {
        Ok(Outcome::new(false, args.state))
    }
}

#[test]
fn drift_in_names_defaults_choices_and_rules_is_reported() {
    let drift = doc_drift::<Drifty>();
    let has = |part: &str| drift.iter().any(|p| p.contains(part));
    assert!(has("field `extra` is not documented"), "{drift:#?}");
    assert!(
        has("documented option `ghost` is not a field"),
        "{drift:#?}"
    );
    assert!(
        has("do not deserialize: missing field `level`"),
        "{drift:#?}"
    );
    assert!(
        has("rule `state requires nothing.` names `nothing`"),
        "{drift:#?}"
    );

    // With the struct fixed up to `level`, the choice checks run.
    #[derive(Debug, Deserialize)]
    struct Fixed {
        #[allow(dead_code)]
        state: String,
    }
    let mut problems = Vec::new();
    drift::values::<Fixed>("fixed", &Drifty::OPTIONS[..1], &mut problems);
    assert_eq!(
        problems,
        [
            "fixed: `state` accepts a value that is not one of its choices",
            "fixed: the default \"gone\" of `state` is not one of its choices",
        ]
    );
}
