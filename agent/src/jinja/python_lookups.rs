//! Lookup plugins the agent does not implement, run by ansible-core on the controller.
//!
//! A lookup that is neither native nor one of the list plugins is handed to a short helper
//! (`python_lookup.py`, shipped inside the agent) run with the controller's Python that has
//! ansible-core: it finds the plugin as ansible-playbook does (the playbook's and the role's
//! `lookup_plugins/`, the configured plugin path, collections, `ansible.builtin`), calls its
//! `run(terms, variables, **kwargs)` and answers with the list it returned. Its result is data
//! (never trusted as a template). Without ansible-core the lookup is refused, naming it.

use serde_json::{Map, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const HELPER: &str = include_str!("python_lookup.py");

/// One call of a lookup plugin.
pub struct Call {
    /// The plugin's name as written (`yield_terms`, `ansible.builtin.url`).
    pub name: String,
    /// Its terms (an undefined one as null, its position in `undefined`).
    pub terms: Vec<Value>,
    /// Positions of the terms that are undefined.
    pub undefined: Vec<usize>,
    /// Its keyword arguments (without `wantlist`).
    pub kwargs: Map<String, Value>,
    /// The variables the calling template sees.
    pub variables: Map<String, Value>,
    /// `lookup_plugins/` directories to search first (the role's, the playbook's).
    pub dirs: Vec<PathBuf>,
    /// Where relative paths are found (the playbook's directory).
    pub basedir: PathBuf,
}

/// What the plugin gave.
pub enum Outcome {
    /// Its list.
    Values(Vec<Value>),
    /// An argument was undefined and the plugin does not take undefined arguments: the
    /// lookup's value is undefined, as in ansible-core.
    Undefined,
}

/// Why a plugin gave nothing.
pub enum Failure {
    /// No ansible-core on the controller (why).
    NoAnsibleCore(String),
    /// No plugin of that name anywhere.
    NotFound,
    /// The plugin's file failed to load (its error).
    Load(String),
    /// The plugin failed (its error).
    Run(String),
}

/// Runs the plugin `call` names through ansible-core.
pub fn run(call: &Call) -> Result<Outcome, Failure> {
    let request = serde_json::json!({
        "name": call.name,
        "terms": call.terms,
        "undefined": call.undefined,
        "kwargs": call.kwargs,
        "variables": call.variables,
        "dirs": call.dirs,
        "basedir": call.basedir,
    });
    let answer = ask(HELPER, &request).map_err(Failure::NoAnsibleCore)?;
    let text = |k: &str| answer.get(k).and_then(Value::as_str).map(str::to_string);
    if answer.get("not_found") == Some(&Value::Bool(true)) {
        return Err(Failure::NotFound);
    }
    if answer.get("undefined") == Some(&Value::Bool(true)) {
        return Ok(Outcome::Undefined);
    }
    if let Some(e) = text("load_error") {
        return Err(Failure::Load(e));
    }
    if let Some(e) = text("error") {
        return Err(Failure::Run(e));
    }
    match answer.get("result") {
        Some(Value::Array(items)) => Ok(Outcome::Values(items.clone())),
        _ => Err(Failure::Run("the plugin answered no list".into())),
    }
}

/// Runs a helper `script` with the controller's Python that has ansible-core, `request` on its
/// stdin, and reads the one JSON object it prints; why there is no answer otherwise (no
/// ansible-core, the helper died).
pub(super) fn ask(script: &str, request: &Value) -> Result<Value, String> {
    let python = crate::ansible_modules::controller_python()?;
    let tmp = tempfile::Builder::new()
        .prefix("etcd-agent-plugin-")
        .tempdir()
        .map_err(|e| format!("cannot create a temp dir: {e}"))?;
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(script)
        .env("ANSIBLE_LOCAL_TEMP", tmp.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // a helper that stopped early says why on stderr
        let _ = stdin.write_all(request.to_string().as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    serde_json::from_slice(&out.stdout).map_err(|_| {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("No module named 'ansible'") {
            format!("{} cannot import ansible", python.display())
        } else {
            stderr.lines().last().unwrap_or("no answer").to_string()
        }
    })
}
