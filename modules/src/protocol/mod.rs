//! Ansible's binary-module protocol, shared by every module.
//!
//! A binary module is invoked as `etcd_health /tmp/.../args` with the JSON
//! arguments in that file. It prints exactly one JSON object on stdout and
//! exits 0 on success, 1 with `"failed": true` on failure. [`run_module`]
//! does all of that around a [`Module`]'s `run`: argument validation in
//! Ansible's words, check/diff mode, `no_log` masking, and turning a panic
//! into a failed result.

mod abort_hook;
mod args;
mod choice;
mod convert;
mod doc;
mod drift;
mod failure;
mod fields;
mod mask;
mod rules;
#[cfg(test)]
mod tests;

pub use args::{lenient, parse_args, raw_secret_values, ArgsError, ParsedArgs};
pub use choice::{deserialize_choice, Choice};
pub use doc::{sidecar_yaml, ArgType, OptionDoc, ReturnDoc};
pub use drift::doc_drift;
pub use failure::{EtcdError, Failure, FailureKind};
pub use rules::Rule;
/// serde, for the `Deserialize` impl that [`choices!`](crate::choices) writes.
#[doc(hidden)]
pub use serde as serde_for_choices;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::future::Future;
use std::io::Write;
use std::panic::AssertUnwindSafe;

/// One Ansible module: its argument struct, its documentation, its work.
///
/// Like AnsibleModule's `argument_spec`, [`Module::OPTIONS`] declares each
/// option once: its type (conversions), whether it is required, its default
/// (filled in before `Args` is deserialized, so a field with a default is a
/// plain typed value), its choices (from a [`choices!`](crate::choices) enum),
/// and whether it is secret; [`Module::RULES`] declares the rules across
/// options. The docs are rendered from the same declaration, and
/// [`doc_drift`] checks it against the fields of `Args`.
pub trait Module {
    /// The module name Ansible uses (`etcd_health`).
    const NAME: &'static str;
    /// One line for `ansible-doc -l`.
    const SHORT_DESCRIPTION: &'static str;
    /// Paragraphs for `ansible-doc NAME`.
    const DESCRIPTION: &'static [&'static str];
    /// Documentation of every field of `Args`.
    const OPTIONS: &'static [OptionDoc];
    /// Rules across options (mutually exclusive, required if, ...),
    /// enforced before `run`; none by default.
    const RULES: &'static [Rule] = &[];
    /// YAML examples, as in an Ansible module's EXAMPLES.
    const EXAMPLES: &'static str;
    /// Documentation of the result keys.
    const RETURNS: &'static [ReturnDoc];
    /// The module's own typed arguments (`#[serde(deny_unknown_fields)]`).
    type Args: DeserializeOwned;
    /// The options it shares with other modules ([`NoSharedOptions`] for none).
    type Shared: SharedOptions;

    /// Does the work. Check mode, diff mode and the shared options are in `ctx`.
    fn run(
        args: Self::Args,
        ctx: &Context<Self::Shared>,
    ) -> impl Future<Output = Result<Outcome, Failure>>;
}

/// Options that a family of modules shares, declared once beside the code
/// that uses them (the etcd connection options, say) and taken by a module
/// through [`Module::Shared`]. The protocol treats them like the module's own
/// options: the same unknown-key check, conversions, masking and docs.
pub trait SharedOptions: DeserializeOwned + Clone + std::fmt::Debug {
    /// What documentation-drift reports call this group.
    const GROUP: &'static str;
    /// Documentation of every field, merged into each module's docs.
    const OPTIONS: &'static [OptionDoc];
    /// Rules across these options, enforced like [`Module::RULES`].
    const RULES: &'static [Rule] = &[];

    /// Rewrites the supplied values (already converted by declared type)
    /// before they are typed: e.g. one option that carries two.
    fn prepare(_supplied: &mut Map<String, Value>) -> Result<(), String> {
        Ok(())
    }

    /// Secret values carried inside other options of the raw arguments,
    /// masked in every message even when the arguments are refused.
    fn embedded_secrets(_raw: &Map<String, Value>) -> Vec<String> {
        Vec::new()
    }

    /// Checks across fields once typed, at argument-parsing time.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The shared options of a module that takes none.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoSharedOptions {}

impl SharedOptions for NoSharedOptions {
    const GROUP: &'static str = "shared";
    const OPTIONS: &'static [OptionDoc] = &[];
}

/// What a module run knows besides its own arguments.
#[derive(Debug, Clone, Default)]
pub struct Context<S = NoSharedOptions> {
    /// `_ansible_check_mode`: report what would change, change nothing.
    pub check_mode: bool,
    /// `_ansible_diff`: return a `diff` with `before`/`after`.
    pub diff: bool,
    /// `_ansible_verbosity`.
    pub verbosity: u64,
    /// The options the module shares with others ([`Module::Shared`]).
    pub shared: S,
}

/// A successful (or deliberately failed, e.g. "cluster is unhealthy") result.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Whether the module changed anything (or would have, in check mode).
    pub changed: bool,
    /// Set when the module ran fine but the checked condition does not hold.
    pub failed: bool,
    /// Human summary.
    pub msg: String,
    /// Module-specific result keys.
    pub data: Map<String, Value>,
    /// `before`/`after` for diff mode; only emitted when `Context::diff` is set.
    pub diff: Option<Value>,
}

impl Outcome {
    /// An outcome with a message and no data.
    pub fn new(changed: bool, msg: impl Into<String>) -> Self {
        Outcome {
            changed,
            msg: msg.into(),
            ..Default::default()
        }
    }

    /// Adds a result key.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.data.insert(key.to_string(), value.into());
        self
    }
}

/// The entry point of every module binary: reads argv, runs the module,
/// prints one JSON object, and exits.
pub fn run_module<M: Module>() -> ! {
    // A panic anywhere (also on a runtime thread) is reported in the JSON
    // result, never as text on stderr that could carry a value.
    // Built with `panic = "abort"`, the hook itself reports the failure.
    if cfg!(panic = "abort") {
        abort_hook::install();
    } else {
        std::panic::set_hook(Box::new(|_| {}));
    }
    let argv: Vec<String> = std::env::args().collect();
    let code = match argv.get(1).map(String::as_str) {
        None | Some("-h") | Some("--help") => {
            eprint!("{}", doc::usage::<M>());
            i32::from(argv.len() < 2)
        }
        Some("--doc") => {
            print!("{}", sidecar_yaml::<M>());
            0
        }
        Some(path) => {
            let (result, code) = invoke::<M>(std::path::Path::new(path));
            let mut out = std::io::stdout().lock();
            // If stdout is gone there is nobody left to tell.
            let _ = writeln!(out, "{result}");
            let _ = out.flush();
            code
        }
    };
    std::process::exit(code)
}

/// Runs a module on an args file and returns the result JSON and exit code.
/// Public so tests can drive the protocol in-process.
///
/// Whatever happens (refused arguments, a failure, a panic), every value of
/// a `no_log` option is replaced in every string of the result before it is
/// returned, as Ansible's `remove_values` does.
pub fn invoke<M: Module>(args_path: &std::path::Path) -> (Value, i32) {
    let raw = match std::fs::read_to_string(args_path) {
        Ok(raw) => raw,
        Err(e) => {
            return failed(format!(
                "cannot read module arguments file {}: {e}",
                args_path.display()
            ))
        }
    };
    let mut secrets = raw_secret_values::<M>(&raw);
    abort_hook::remember_secrets(&secrets);
    let mut result = Map::new();
    let mut invocation = None;
    let ran = catch_panics(|| {
        let parsed = parse_args::<M>(&raw).map_err(|e| Failure::new(e.to_string()))?;
        secrets.extend(parsed.secret_values());
        abort_hook::remember_secrets(&secrets);
        invocation = Some(json!({ "module_args": parsed.masked_module_args() }));
        if !parsed.warnings().is_empty() {
            result.insert("warnings".into(), parsed.warnings().to_vec().into());
        }
        let ctx = parsed.context;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::new(format!("cannot start async runtime: {e}")))?;
        let diff = ctx.diff;
        runtime
            .block_on(M::run(parsed.module_args, &ctx))
            .map(|outcome| (outcome, diff))
    });
    let code = match ran {
        Ok((outcome, diff_mode)) => {
            let warnings = result.remove("warnings");
            result.insert("changed".into(), outcome.changed.into());
            result.insert("failed".into(), outcome.failed.into());
            result.insert("msg".into(), outcome.msg.into());
            result.extend(outcome.data);
            merge_warnings(&mut result, warnings);
            if let (true, Some(diff)) = (diff_mode, outcome.diff) {
                result.insert("diff".into(), diff);
            }
            i32::from(result["failed"] == Value::Bool(true))
        }
        Err(failure) => {
            let warnings = result.remove("warnings");
            result.extend(failure.data);
            merge_warnings(&mut result, warnings);
            result.insert("changed".into(), false.into());
            result.insert("failed".into(), true.into());
            result.insert("msg".into(), failure.msg.into());
            1
        }
    };
    if let Some(invocation) = invocation {
        result.insert("invocation".into(), invocation);
    }
    // Longest first, so a secret that contains another is masked whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    (mask::remove_values(Value::Object(result), &secrets), code)
}

/// Puts the protocol's warnings before the module's own in `warnings`.
fn merge_warnings(result: &mut Map<String, Value>, protocol: Option<Value>) {
    let Some(Value::Array(mut list)) = protocol else {
        return;
    };
    match result.remove("warnings") {
        Some(Value::Array(own)) => list.extend(own),
        Some(Value::Null) | None => {}
        Some(other) => list.push(other),
    }
    result.insert("warnings".into(), Value::Array(list));
}

fn failed(msg: String) -> (Value, i32) {
    (json!({ "failed": true, "changed": false, "msg": msg }), 1)
}

/// Runs `f`, turning a panic into a failure whose message says where it came from.
fn catch_panics<T>(f: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    // The default hook would print a backtrace note on stderr; keep stderr quiet
    // and report the panic in the JSON result instead.
    // Under `panic = "abort"` nothing is caught: keep the hook that reports it.
    if cfg!(panic = "abort") {
        return f();
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(previous);
    outcome.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(Failure::new(format!("internal error in module: {what}")))
    })
}
