//! Running a module binary exactly as Ansible does: the arguments in a JSON
//! file whose path is argv[1], one JSON object expected on stdout; and the
//! protocol check every module test makes on a run ([`ModuleRun::checked`]).

use serde_json::Value;
use std::process::{Command, ExitStatus};

use crate::paths::{etcd_tools_path, module_binary};

/// What one module run printed and how it exited.
#[derive(Debug)]
pub struct ModuleRun {
    /// The parsed JSON result (panics if stdout was not exactly one JSON object).
    pub result: Value,
    /// The exit status.
    pub status: ExitStatus,
    /// Everything on stderr (should be empty).
    pub stderr: String,
}

impl ModuleRun {
    /// Checks the protocol basics (the exit code is 0 exactly when the result is not
    /// `failed`; nothing on stderr) and returns the result.
    pub fn checked(self) -> Value {
        assert_eq!(
            self.status.success(),
            self.result["failed"] != true,
            "exit code must follow `failed`: {}",
            self.result
        );
        assert!(self.stderr.is_empty(), "stderr: {}", self.stderr);
        self.result
    }
}

/// Panics unless `result` says `"failed": false`; returns it.
pub fn expect_not_failed(result: Value) -> Value {
    assert_eq!(result["failed"], false, "{result}");
    result
}

/// Runs `playbooks/library/<name>` with `args` (plus the `_ansible_*` keys
/// Ansible always sends) and parses its result. The etcd under test's
/// binaries come first on the module's PATH.
pub fn run_module(name: &str, args: &Value) -> ModuleRun {
    // The etcd under test's tools come first on PATH, as on a host where
    // that version is installed (modules look etcdutl / etcdctl up there).
    let path = match std::env::var("PATH") {
        Ok(rest) if !rest.is_empty() => format!("{}:{rest}", etcd_tools_path()),
        _ => etcd_tools_path(),
    };
    run_module_with_path(name, args, &path)
}

/// [`run_module`] with an explicit `PATH` for the module (e.g. one without
/// any etcdutl, to see what a module does on a host that lacks it).
pub fn run_module_with_path(name: &str, args: &Value, path: &str) -> ModuleRun {
    let mut full = args.clone();
    let object = full
        .as_object_mut()
        .expect("module args must be a JSON object");
    for (key, default) in [
        ("_ansible_check_mode", Value::Bool(false)),
        ("_ansible_diff", Value::Bool(false)),
        ("_ansible_no_log", Value::Bool(false)),
        ("_ansible_verbosity", Value::from(0)),
        ("_ansible_module_name", Value::from(name)),
        ("_ansible_version", Value::from("2.19.0")),
    ] {
        object.entry(key).or_insert(default);
    }
    let dir = tempfile::tempdir().expect("temp dir for module args");
    let args_path = dir.path().join("args");
    std::fs::write(&args_path, serde_json::to_vec(&full).unwrap()).expect("write module args");
    let output = Command::new(module_binary(name))
        .arg(&args_path)
        .env("PATH", path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run module {name}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let result: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("module {name} printed something other than one JSON object ({e}):\nstdout: {stdout}\nstderr: {stderr}")
    });
    ModuleRun {
        result,
        status: output.status,
        stderr,
    }
}
