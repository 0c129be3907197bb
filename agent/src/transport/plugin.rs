//! Connections through an ansible-core connection plugin the agent does not implement
//! (`ansible_connection: <name>` other than `ssh`/`local`, found where ansible-playbook finds
//! it: `connection_plugins/` beside the playbook or in the role, the configured connection
//! plugin path such as `ANSIBLE_CONNECTION_PLUGINS`, collections, `ansible.builtin`).
//!
//! A helper (`python_connection.py`, shipped inside the agent) runs once per connection with
//! the controller's Python that has ansible-core, loads the plugin with the host's variables
//! as its options, and serves the connection's commands (`exec_command`) and uploads
//! (`put_file`) one JSON line each. The plugin's `AnsibleConnectionFailure` makes the host
//! unreachable, as in ansible-core.

use super::{ExecOutput, TransportError};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

const HELPER: &str = include_str!("python_connection.py");

/// A host reached through a connection plugin.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PluginSpec {
    /// The plugin's name (`ansible_connection`).
    pub plugin: String,
    /// The inventory host.
    pub host: String,
    /// The host's connection variables, as JSON text (the plugin's options).
    pub vars: String,
    /// The controller Python that has ansible-core.
    pub python: PathBuf,
    /// `connection_plugins/` directories searched first (beside the playbook, in the role).
    pub dirs: Vec<PathBuf>,
}

/// Without the variables: they may hold passwords (`ansible_password`).
impl std::fmt::Debug for PluginSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginSpec")
            .field("plugin", &self.plugin)
            .field("host", &self.host)
            .field("python", &self.python)
            .field("dirs", &self.dirs)
            .finish_non_exhaustive()
    }
}

/// The helper process serving one connection.
pub(crate) struct Bridge {
    proc: tokio::sync::Mutex<Proc>,
}

struct Proc {
    /// Requests whose reply was not read: a command abandoned midway (its `timeout`); their
    /// replies are read and dropped before the next request, so replies stay in step.
    unanswered: usize,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// ansible-core's local temp dir for the helper, removed on drop.
    _tmp: tempfile::TempDir,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(v: Option<&Value>) -> Vec<u8> {
    let s = v.and_then(Value::as_str).unwrap_or_default();
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

impl Bridge {
    /// Starts the helper and loads the plugin; a plugin that cannot be loaded fails the host.
    pub async fn open(spec: &PluginSpec) -> Result<Bridge, TransportError> {
        let tmp = tempfile::Builder::new()
            .prefix("etcd-agent-connection-")
            .tempdir()
            .map_err(|e| TransportError::Failed(format!("cannot create a temp dir: {e}")))?;
        let mut child = tokio::process::Command::new(&spec.python)
            .arg("-c")
            .arg(HELPER)
            .env("ANSIBLE_LOCAL_TEMP", tmp.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                TransportError::Failed(format!(
                    "connection plugin '{}': cannot run {}: {e}",
                    spec.plugin,
                    spec.python.display()
                ))
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(TransportError::Failed(
                "no pipes to the connection helper".into(),
            ));
        };
        let mut proc = Proc {
            unanswered: 0,
            child,
            stdin,
            stdout: BufReader::new(stdout),
            _tmp: tmp,
        };
        let vars: Value = serde_json::from_str(&spec.vars).unwrap_or(Value::Null);
        let first =
            json!({"plugin": spec.plugin, "host": spec.host, "vars": vars, "dirs": spec.dirs});
        let refused = match proc.ask(&first).await {
            Err(_) => Some(format!(
                "connection type '{}' is not supported by etcd-agent (ssh, local), and {} cannot \
                 load it through ansible-core",
                spec.plugin,
                spec.python.display()
            )),
            Ok(answer) => answer
                .get("error")
                .and_then(Value::as_str)
                .map(|e| format!("connection plugin '{}': {e}", spec.plugin)),
        };
        if let Some(why) = refused {
            // stopped and waited for, never left behind
            proc.stop().await;
            return Err(TransportError::Failed(why));
        }
        Ok(Bridge {
            proc: tokio::sync::Mutex::new(proc),
        })
    }

    /// Runs a `/bin/sh` command line through the plugin's `exec_command`.
    pub async fn exec(
        &self,
        cmd: &str,
        stdin: Option<&[u8]>,
    ) -> Result<ExecOutput, TransportError> {
        let req = json!({"op": "exec", "cmd": cmd, "stdin": stdin.map(hex)});
        let answer = self.call(&req).await?;
        Ok(ExecOutput {
            rc: answer.get("rc").and_then(Value::as_i64).unwrap_or(-1) as i32,
            stdout: unhex(answer.get("stdout")),
            stderr: unhex(answer.get("stderr")),
        })
    }

    /// Writes `bytes` to `path` on the host through the plugin's `put_file`.
    pub async fn put(&self, path: &str, bytes: &[u8]) -> Result<(), TransportError> {
        self.call(&json!({"op": "put", "path": path, "data": hex(bytes)}))
            .await
            .map(|_| ())
    }

    /// Closes the plugin's connection and stops the helper.
    pub async fn close(&self) {
        let mut proc = self.proc.lock().await;
        let _ = proc.ask(&json!({"op": "close"})).await;
        proc.stop().await;
    }

    async fn call(&self, req: &Value) -> Result<Value, TransportError> {
        let mut proc = self.proc.lock().await;
        let answer = proc
            .ask(req)
            .await
            .map_err(|e| TransportError::Unreachable(format!("connection plugin helper: {e}")))?;
        if let Some(msg) = answer.get("unreachable").and_then(Value::as_str) {
            return Err(TransportError::Unreachable(msg.to_string()));
        }
        if let Some(msg) = answer.get("failed").and_then(Value::as_str) {
            return Err(TransportError::Failed(msg.to_string()));
        }
        Ok(answer)
    }
}

impl Proc {
    /// Ends the helper (killed if it has not exited) and waits for it.
    async fn stop(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    async fn ask(&mut self, req: &Value) -> std::io::Result<Value> {
        while self.unanswered > 0 {
            self.read_reply().await?;
            self.unanswered -= 1;
        }
        let mut line = req.to_string();
        line.push('\n');
        self.unanswered += 1;
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await?;
        let answer = self.read_reply().await?;
        self.unanswered -= 1;
        serde_json::from_str(&answer).map_err(std::io::Error::other)
    }

    async fn read_reply(&mut self) -> std::io::Result<String> {
        let mut answer = String::new();
        if self.stdout.read_line(&mut answer).await? == 0 {
            return Err(std::io::Error::other("the helper stopped"));
        }
        Ok(answer)
    }
}
