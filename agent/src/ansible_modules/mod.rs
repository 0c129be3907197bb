//! Modules the agent does not implement, run through ansible-core's own packaging when
//! ansible-core is installed on the controller.
//!
//! A helper (`build_payload.py`, shipped inside the agent) runs once per run with the Python that
//! can import `ansible` and answers, per module name, what ansible-playbook's module loader
//! resolves it to and the AnsiballZ payload `modify_module` builds for it. The payload reads its
//! arguments from stdin instead of carrying them inline, so it is built once per module, uploaded
//! once per host (content-hashed like every module) and run with the host's Python
//! ([`run`]). Without ansible-core the lookup fails as before, naming the module.

mod run;

pub use run::run;

use crate::transport::ModuleFile;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};

/// The helper's source, run with `python -c`.
const HELPER: &str = include_str!("build_payload.py");

/// Environment variable naming the controller Python that imports `ansible` (empty or `none`:
/// run without ansible-core).
pub const PYTHON_ENV: &str = "ETCD_AGENT_ANSIBLE_PYTHON";

/// A module packaged by ansible-core.
#[derive(Debug)]
pub struct AnsibleModule {
    /// The name it resolved to (`ansible.builtin.getent`).
    pub fqcn: String,
    /// The AnsiballZ payload.
    pub file: Arc<ModuleFile>,
    /// The version of the ansible-core that built it (`_ansible_version`).
    pub version: String,
}

impl AnsibleModule {
    /// The module's short name (`getent`).
    pub fn short_name(&self) -> &str {
        self.fqcn.rsplit('.').next().unwrap_or(&self.fqcn)
    }
}

/// Why ansible-core could not give a module.
#[derive(Debug, Clone, PartialEq)]
pub enum Missing {
    /// No controller Python imports `ansible` (the reason, for the message).
    NoAnsibleCore(String),
    /// ansible-core has no module by that name.
    NotFound,
    /// ansible-core has it, but the agent cannot run it (the reason).
    Refused(String),
}

/// Modules whose action plugin does controller-side work the agent does not; the fallback
/// runs them only where that plugin would just run the module (checked per task by [`run`]).
const ACTION_PLUGIN_OK: &[&str] = &["ansible.builtin.unarchive", "ansible.builtin.uri"];

/// The helper process and what it answered.
#[derive(Debug, Default)]
pub struct AnsibleCore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
enum State {
    #[default]
    NotStarted,
    Running(Box<Helper>),
    Unavailable(String),
}

#[derive(Debug)]
struct Helper {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// ansible-core's local temp dir for this run (`ANSIBLE_LOCAL_TEMP`), removed on drop.
    _tmp: tempfile::TempDir,
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl AnsibleCore {
    /// Resolves `name` (with the task's `collections` list) through ansible-core.
    pub fn resolve(&self, name: &str, collections: &[String]) -> Result<AnsibleModule, Missing> {
        self.resolve_at(name, collections, None)
    }

    /// Packages the module in file `path` (a Python module in a `library/` directory) as
    /// ansible-playbook does, as `ansible.legacy.<name>`.
    pub fn resolve_file(&self, name: &str, path: &Path) -> Result<AnsibleModule, Missing> {
        self.resolve_at(name, &[], Some(path))
    }

    fn resolve_at(
        &self,
        name: &str,
        collections: &[String],
        path: Option<&Path>,
    ) -> Result<AnsibleModule, Missing> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*state, State::NotStarted) {
            *state = match Helper::start() {
                Ok(h) => State::Running(Box::new(h)),
                Err(why) => State::Unavailable(why),
            };
        }
        let helper = match &mut *state {
            State::Running(h) => h,
            State::Unavailable(why) => return Err(Missing::NoAnsibleCore(why.clone())),
            State::NotStarted => unreachable!("started above"),
        };
        let answer = match helper.ask(name, collections, path) {
            Ok(a) => a,
            Err(why) => {
                *state = State::Unavailable(why.clone());
                return Err(Missing::NoAnsibleCore(why));
            }
        };
        answer_to_module(name, &answer)
    }
}

fn answer_to_module(name: &str, answer: &Value) -> Result<AnsibleModule, Missing> {
    if let Some(e) = answer.get("error").and_then(Value::as_str) {
        return Err(Missing::Refused(format!(
            "ansible-core could not package module '{name}': {e}"
        )));
    }
    if answer.get("found") != Some(&Value::Bool(true)) {
        return Err(Missing::NotFound);
    }
    let text = |k: &str| answer.get(k).and_then(Value::as_str).unwrap_or_default();
    let fqcn = text("fqcn").to_string();
    // an action plugin first: doc-only stubs (add_host, script) are old-style files
    let action_plugin = answer.get("action_plugin") == Some(&Value::Bool(true));
    if action_plugin && !ACTION_PLUGIN_OK.contains(&fqcn.as_str()) {
        return Err(Missing::Refused(format!(
            "module '{name}' ({fqcn}) has an action plugin doing controller-side work that etcd-agent does not implement (not supported)"
        )));
    }
    if text("style") != "new" {
        return Err(Missing::Refused(format!(
            "module '{name}' ({}) is an {}-style module: etcd-agent runs ansible-core's new-style Python modules only",
            text("path"),
            text("style")
        )));
    }
    let short = fqcn.rsplit('.').next().unwrap_or(&fqcn).to_string();
    let payload = text("payload").as_bytes().to_vec();
    Ok(AnsibleModule {
        version: text("version").to_string(),
        file: Arc::new(ModuleFile::new(&format!("ansiballz-{short}"), payload)),
        fqcn,
    })
}

impl Helper {
    fn start() -> Result<Helper, String> {
        let python = controller_python()?;
        let tmp = tempfile::Builder::new()
            .prefix("etcd-agent-ansible-")
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir for ansible-core: {e}"))?;
        let mut child = Command::new(&python)
            .arg("-c")
            .arg(HELPER)
            .arg("--serve")
            .env("ANSIBLE_LOCAL_TEMP", tmp.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("no pipes to the ansible-core helper".into());
        };
        let mut helper = Helper {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            _tmp: tmp,
        };
        let ready = helper.read_answer().map_err(|_| {
            format!(
                "{} cannot import ansible (ansible-core is not installed there)",
                python.display()
            )
        })?;
        if ready.get("ready") != Some(&Value::Bool(true)) {
            return Err("the ansible-core helper did not start".into());
        }
        Ok(helper)
    }

    fn ask(
        &mut self,
        name: &str,
        collections: &[String],
        path: Option<&Path>,
    ) -> Result<Value, String> {
        let mut req = serde_json::json!({"name": name, "collections": collections});
        if let Some(p) = path {
            req["path"] = p.to_string_lossy().into_owned().into();
        }
        writeln!(self.stdin, "{req}")
            .and_then(|_| self.stdin.flush())
            .map_err(|e| format!("the ansible-core helper stopped: {e}"))?;
        self.read_answer()
    }

    fn read_answer(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) | Err(_) => Err("the ansible-core helper stopped".into()),
            Ok(_) => serde_json::from_str(&line)
                .map_err(|e| format!("the ansible-core helper answered badly: {e}")),
        }
    }
}

/// The controller Python that has `ansible`: `ETCD_AGENT_ANSIBLE_PYTHON` if set; else the
/// interpreter of `ansible-playbook` on `PATH` when its shebang names a Python; else `python3`
/// on `PATH` (a wrapper script such as a pyenv shim runs that one).
pub(crate) fn controller_python() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var(PYTHON_ENV) {
        if p.is_empty() || p == "none" {
            return Err(format!("{PYTHON_ENV} is {p:?}"));
        }
        return Ok(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = |name: &str| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    };
    if let Some(python) = on_path("ansible-playbook").and_then(|p| shebang_python(&p)) {
        return Ok(python);
    }
    on_path("python3").ok_or_else(|| "no ansible-playbook or python3 on PATH".to_string())
}

/// The Python a script's `#!` line runs (`#!/usr/bin/python3`, `#!/usr/bin/env python3`).
fn shebang_python(script: &Path) -> Option<PathBuf> {
    let mut first = String::new();
    BufReader::new(std::fs::File::open(script).ok()?)
        .read_line(&mut first)
        .ok()?;
    let words: Vec<&str> = first.strip_prefix("#!")?.split_whitespace().collect();
    let prog = match words.as_slice() {
        [env, p, ..] if env.ends_with("/env") => *p,
        [p, ..] => *p,
        [] => return None,
    };
    let base = prog.rsplit('/').next().unwrap_or(prog);
    base.starts_with("python").then(|| PathBuf::from(prog))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebangs() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        for (line, want) in [
            ("#!/usr/bin/python3.11\n", Some("/usr/bin/python3.11")),
            ("#!/usr/bin/env python3\n", Some("python3")),
            ("#!/usr/bin/env bash\n", None),
        ] {
            std::fs::write(&f, line).unwrap();
            assert_eq!(shebang_python(&f), want.map(PathBuf::from), "{line}");
        }
    }

    #[test]
    fn answers() {
        let refused = |v: Value| match answer_to_module("m", &v) {
            Err(Missing::Refused(msg)) => msg,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            answer_to_module("m", &serde_json::json!({"found": false})).unwrap_err(),
            Missing::NotFound
        );
        assert!(
            refused(serde_json::json!({"found": true, "fqcn": "a.b.m", "style": "old"}))
                .contains("old-style")
        );
        assert!(refused(serde_json::json!({"found": true, "fqcn": "ansible.builtin.reboot", "style": "new", "action_plugin": true}))
            .contains("action plugin"));
        let m = answer_to_module(
            "getent",
            &serde_json::json!({"found": true, "fqcn": "ansible.builtin.getent", "style": "new", "action_plugin": false, "payload": "x"}),
        )
        .unwrap();
        assert_eq!(m.short_name(), "getent");
    }
}
