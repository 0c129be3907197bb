//! Modules run natively by the agent (`command`, `shell`, `debug`, ...) and the action context
//! they receive.

mod assert;
mod async_job;
mod binary;
mod command;
mod command_result;
mod debug;
mod digest;
mod facts;
mod file;
mod files;
mod include_vars;
mod lineinfile;
mod params;
mod pause;
mod raw;
mod script;
mod simple;
pub mod spec;
mod systemd;
mod table;
mod wait_for;

pub use binary::{args_file, become_files, module_result, run_binary, ANSIBLE_VERSION};
pub use params::Params;
pub use table::{
    is_builtin, is_controller_only, lookup, names, run_builtin, takes_raw_params, untemplated_args,
    uses_target, Builtin, Runs,
};

use crate::jinja::Templar;
use crate::transport::{
    ConnSpec, Connection, ConnectionPool, Escalation, ExecOutput, TransportError,
};
use minijinja::Value as JValue;
use serde_json::{Map, Value};
use std::sync::Arc;

/// A module result dict.
pub type ResultMap = Map<String, Value>;

/// Everything an action needs to run on one host.
pub struct ActionCtx<'a> {
    /// Module short name.
    pub module: String,
    /// Templated arguments.
    pub args: Map<String, Value>,
    /// Arguments as written (for `assert: that`, `debug: var`).
    pub raw_args: Map<String, Value>,
    /// Task variables for templating.
    pub vars: &'a JValue,
    /// The template engine.
    pub templar: &'a Templar,
    /// Check mode.
    pub check: bool,
    /// Diff mode.
    pub diff: bool,
    /// `no_log` for this task.
    pub no_log: bool,
    /// `-v` count.
    pub verbosity: u8,
    /// How commands become another user, when `become` is on.
    pub escalation: Option<Escalation>,
    /// `environment` for commands.
    pub env: Vec<(String, String)>,
    /// How to reach the target.
    pub conn_spec: ConnSpec,
    /// `async`: seconds after which remote commands are killed.
    pub kill_after: Option<u64>,
    /// `async` with `poll: 0`: the command is started in the background and the task goes
    /// on (see `async_job.rs`).
    pub background: bool,
    /// Where background jobs keep their files on the target (`ansible_async_dir`, else
    /// `async_dir`, else `~/.ansible_async`).
    pub async_dir: String,
    /// The run's connection pool.
    pub pool: &'a ConnectionPool,
}

impl<'a> ActionCtx<'a> {
    /// The same context with other arguments (the validated ones).
    pub fn with_args(&self, args: Map<String, Value>) -> ActionCtx<'a> {
        ActionCtx {
            module: self.module.clone(),
            args,
            raw_args: self.raw_args.clone(),
            vars: self.vars,
            templar: self.templar,
            check: self.check,
            diff: self.diff,
            no_log: self.no_log,
            verbosity: self.verbosity,
            escalation: self.escalation.clone(),
            env: self.env.clone(),
            conn_spec: self.conn_spec.clone(),
            kill_after: self.kill_after,
            background: self.background,
            async_dir: self.async_dir.clone(),
            pool: self.pool,
        }
    }

    /// The connection to the target (opened on first use).
    pub async fn connection(&self) -> Result<Arc<Connection>, TransportError> {
        self.pool.get(&self.conn_spec).await
    }

    /// The user commands become, when `become` is on.
    pub fn become_user(&self) -> Option<&str> {
        self.escalation.as_ref().map(|e| e.user.as_str())
    }

    /// Runs `cmd` on `conn` with the environment, `async` and become ([`ActionCtx::wrap`]),
    /// feeding `stdin` (after the escalation password, when there is one). A failed
    /// escalation (wrong or missing password) is an error in Ansible's words.
    pub async fn exec(
        &self,
        conn: &Connection,
        cmd: &str,
        stdin: Option<&[u8]>,
    ) -> Result<ExecOutput, TransportError> {
        self.exec_then(conn, cmd, None, stdin, None).await
    }

    /// As [`ActionCtx::exec`], then `after` (a command line run as the login user whatever
    /// `cmd` did; the exit code stays `cmd`'s), within `timeout` if given.
    pub async fn exec_then(
        &self,
        conn: &Connection,
        cmd: &str,
        after: Option<&str>,
        stdin: Option<&[u8]>,
        timeout: Option<std::time::Duration>,
    ) -> Result<ExecOutput, TransportError> {
        let wrapped = self.wrap(cmd);
        let full = match after {
            // the wrapped command runs in a subshell of its own: a wrapper's `exit` ends that
            Some(after) => format!(
                "( {wrapped}
); rc=$?; {after}; exit $rc"
            ),
            None => wrapped,
        };
        let stdin = match &self.escalation {
            Some(e) => e.stdin(stdin),
            None => stdin.map(std::borrow::Cow::Borrowed),
        };
        let out = conn.exec(&full, stdin.as_deref(), timeout).await?;
        match self.escalation.as_ref().and_then(|e| e.failure(&out)) {
            Some(msg) => Err(TransportError::Failed(msg)),
            None => Ok(out),
        }
    }

    /// Wraps a command with the environment and become (see [`ActionCtx::exec`], which also
    /// sends the escalation password).
    fn wrap(&self, cmd: &str) -> String {
        let mut full = String::new();
        for (k, v) in &self.env {
            full.push_str(&format!("{}={} ", k, crate::transport::quote(v)));
        }
        if !self.env.is_empty() {
            full = format!("export {full}; ");
        }
        full.push_str(cmd);
        if let Some(secs) = self.kill_after {
            // `async`: the command and its children are killed when the time is up
            full = format!(
                "timeout -s KILL {secs} /bin/sh -c {}",
                crate::transport::quote(&full)
            );
        }
        match &self.escalation {
            Some(e) => e.wrap(&full),
            None => full,
        }
    }
}

/// The result of an `include_tasks` on a host (the included tasks follow it).
fn include_result(_ctx: &ActionCtx<'_>, p: &Params) -> ResultMap {
    let mut m = Map::new();
    // an include_tasks whose file could not be loaded fails where it runs, as in Ansible
    if let Some(Value::String(why)) = p.raw("_load_error") {
        m.insert("failed".into(), Value::Bool(true));
        m.insert("reason".into(), Value::String(why.clone()));
        return m;
    }
    m.insert("changed".into(), Value::Bool(false));
    m.insert(
        "include".into(),
        Value::String(p.str("_raw_params").unwrap_or_default()),
    );
    // include_role's arguments as written; include_tasks has none
    let args = match p.raw("_include_args") {
        Some(Value::Object(a)) => a.clone(),
        _ => Map::new(),
    };
    m.insert("include_args".into(), Value::Object(args));
    m
}

/// How ansible-core's ssh connection runs `raw` and `script` (commands that may escalate and
/// take no input): with a terminal (`ssh -tt`), so the target writes stderr into stdout and
/// ends lines with CRLF, and the ssh client says "Shared connection to HOST closed." on
/// stderr. The agent runs them without one and gives the same result: over ssh, `cmd` with
/// stderr joined to stdout ([`terminal_output`] makes the result); a local connection has no
/// terminal in either engine.
pub(crate) fn terminal_command(ctx: &ActionCtx<'_>, cmd: &str) -> String {
    match &ctx.conn_spec {
        ConnSpec::Ssh(_) => format!("exec 2>&1; {cmd}"),
        ConnSpec::Local | ConnSpec::Plugin(_) => cmd.to_string(),
    }
}

/// `(stdout, stderr)` of a command run by [`terminal_command`], as ansible-core reports it.
pub(crate) fn terminal_output(
    ctx: &ActionCtx<'_>,
    stdout: String,
    stderr: String,
) -> (String, String) {
    match &ctx.conn_spec {
        ConnSpec::Ssh(spec) => {
            let mut crlf = String::with_capacity(stdout.len() + stderr.len());
            let mut prev = '\0';
            for c in stdout.chars().chain(stderr.chars()) {
                if c == '\n' && prev != '\r' {
                    crlf.push('\r');
                }
                crlf.push(c);
                prev = c;
            }
            (
                crlf,
                format!("Shared connection to {} closed.\r\n", spec.host),
            )
        }
        ConnSpec::Local | ConnSpec::Plugin(_) => (stdout, stderr),
    }
}

/// The result of a command `raw` or `script` ran (see [`terminal_command`]): its rc, output
/// and lines, always `changed`, failed with "non-zero return code".
pub(crate) fn terminal_result(ctx: &ActionCtx<'_>, out: &ExecOutput) -> ResultMap {
    let (stdout, stderr) = terminal_output(ctx, out.stdout_text(), out.stderr_text());
    let mut m = Map::new();
    m.insert("rc".into(), out.rc.into());
    m.insert("stdout".into(), stdout.clone().into());
    m.insert("stdout_lines".into(), lines(&stdout));
    m.insert("stderr".into(), stderr.clone().into());
    m.insert("stderr_lines".into(), lines(&stderr));
    m.insert("changed".into(), Value::Bool(true));
    if out.rc != 0 {
        m.insert("failed".into(), Value::Bool(true));
        m.insert("msg".into(), "non-zero return code".into());
    }
    m
}

/// A failed result with a message.
pub fn failed(msg: impl Into<String>) -> ResultMap {
    let mut m = Map::new();
    m.insert("failed".into(), Value::Bool(true));
    m.insert("msg".into(), Value::String(msg.into()));
    m
}

/// Splits text into lines as Python's `splitlines()` does.
pub fn lines(s: &str) -> Value {
    Value::Array(s.lines().map(|l| Value::String(l.to_string())).collect())
}

/// Actions Ansible runs once per task whatever the hosts (`BYPASS_HOST_LOOP`), as if
/// `run_once` were set: `pause` and `add_host`.
pub fn bypasses_host_loop(module: &str) -> bool {
    matches!(module, "pause" | "add_host")
}
