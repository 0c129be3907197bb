//! Modules run natively by the agent (`command`, `shell`, `debug`, ...) and the action context
//! they receive.

mod assert;
mod binary;
mod command;
mod debug;
mod digest;
mod facts;
mod file;
mod files;
mod lineinfile;
mod pause;
mod simple;
mod systemd;
mod wait_for;

pub use binary::{run_binary, ANSIBLE_VERSION};

use crate::jinja::Templar;
use crate::transport::{ConnSpec, Connection, ConnectionPool, TransportError};
use minijinja::Value as JValue;
use serde_json::{Map, Value};
use std::sync::Arc;

/// A module result dict.
pub type ResultMap = Map<String, Value>;

/// Names of the builtins (short names).
pub const BUILTINS: &[&str] = &[
    "command",
    "shell",
    "debug",
    "assert",
    "fail",
    "set_fact",
    "pause",
    "wait_for",
    "systemd",
    "systemd_service",
    "service",
    "setup",
    "ping",
    "meta",
    "include_tasks",
    "include_role",
    "copy",
    "template",
    "fetch",
    "file",
    "stat",
    "lineinfile",
    "group_by",
];

/// Builtins that change nothing on the target (and so need no connection).
pub const CONTROLLER_ONLY: &[&str] = &["debug", "assert", "fail", "set_fact", "pause", "group_by"];

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
    /// Become user when `become` is on.
    pub become_user: Option<String>,
    /// `environment` for commands.
    pub env: Vec<(String, String)>,
    /// How to reach the target.
    pub conn_spec: ConnSpec,
    /// `async`: seconds after which remote commands are killed.
    pub kill_after: Option<u64>,
    /// The run's connection pool.
    pub pool: &'a ConnectionPool,
}

impl ActionCtx<'_> {
    /// The connection to the target (opened on first use).
    pub async fn connection(&self) -> Result<Arc<Connection>, TransportError> {
        self.pool.get(&self.conn_spec).await
    }

    /// Wraps a command with the environment and become.
    pub fn wrap(&self, cmd: &str) -> String {
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
        match &self.become_user {
            Some(u) => crate::transport::become_wrap(&full, u),
            None => full,
        }
    }

    /// An argument as text.
    pub fn arg_str(&self, key: &str) -> Option<String> {
        match self.args.get(key)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// An argument as a boolean (Ansible spelling).
    pub fn arg_bool(&self, key: &str) -> Option<bool> {
        self.args.get(key).map(crate::jinja::value::ansible_boolean)
    }

    /// An argument as a number.
    pub fn arg_f64(&self, key: &str) -> Option<f64> {
        match self.args.get(key)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

/// Whether builtin `name` runs on the target, and so needs its connection (the executor opens
/// it before the task takes a fork slot).
pub fn uses_target(name: &str) -> bool {
    matches!(
        name,
        "command"
            | "shell"
            | "ping"
            | "wait_for"
            | "systemd"
            | "systemd_service"
            | "service"
            | "setup"
            | "copy"
            | "template"
            | "fetch"
            | "file"
            | "stat"
            | "lineinfile"
    )
}

/// Runs a builtin; `Err` only for unreachable targets.
pub async fn run_builtin(ctx: &ActionCtx<'_>) -> Result<ResultMap, TransportError> {
    match ctx.module.as_str() {
        "command" | "shell" => command::run(ctx).await,
        "debug" => Ok(debug::run(ctx)),
        "assert" => Ok(assert::run(ctx)),
        "fail" => Ok(simple::fail(ctx)),
        "set_fact" => Ok(simple::set_fact(ctx)),
        "group_by" => Ok(simple::group_by(ctx)),
        "ping" => simple::ping(ctx).await,
        "pause" => Ok(pause::run(ctx).await),
        "wait_for" => wait_for::run(ctx).await,
        "systemd" | "systemd_service" | "service" => systemd::run(ctx).await,
        "setup" => facts::run(ctx).await,
        "include_tasks" | "include_role" => Ok(include_result(ctx)),
        "copy" => files::copy(ctx).await,
        "template" => files::template(ctx).await,
        "fetch" => files::fetch(ctx).await,
        "file" => file::run(ctx).await,
        "stat" => files::stat(ctx).await,
        "lineinfile" => lineinfile::run(ctx).await,
        "meta" => Ok(failed("meta actions are run by the executor")),
        other => Ok(failed(format!("unknown builtin {other}"))),
    }
}

/// The result of an `include_tasks` on a host (the included tasks follow it).
fn include_result(ctx: &ActionCtx<'_>) -> ResultMap {
    let mut m = Map::new();
    m.insert("changed".into(), Value::Bool(false));
    m.insert(
        "include".into(),
        Value::String(ctx.arg_str("_raw_params").unwrap_or_default()),
    );
    // include_role's arguments as written; include_tasks has none
    let args = match ctx.args.get("_include_args") {
        Some(Value::Object(a)) => a.clone(),
        _ => Map::new(),
    };
    m.insert("include_args".into(), Value::Object(args));
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

/// Arguments of builtin `name` that are not templated before it runs (`debug: var`, `assert: that`).
pub fn untemplated_args(name: &str) -> &'static [&'static str] {
    match name {
        "debug" => &["var"],
        "assert" => &["that"],
        _ => &[],
    }
}
