//! Playbooks: YAML -> typed plays and tasks, each remembering its `file:line`.

pub mod kv;
pub mod task;

pub use task::{Task, TaskOrigin};

use crate::error::syntax;
use crate::yaml::{Node, NodeKind};
use anyhow::Result;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How a play splits its hosts into batches.
#[derive(Debug, Clone, PartialEq)]
pub enum Serial {
    /// A fixed number of hosts.
    Count(usize),
    /// A percentage of the play's hosts (at least one).
    Percent(f64),
}

/// A play.
#[derive(Debug, Clone)]
pub struct Play {
    /// `name`, or the host pattern when absent.
    pub name: String,
    /// True when the play had an explicit name.
    pub named: bool,
    /// The host pattern (lists joined with `,`).
    pub hosts: String,
    /// `gather_facts` (defaults to true; a small fact set is gathered).
    pub gather_facts: bool,
    /// `serial` batch sizes; the last one repeats.
    pub serial: Vec<Serial>,
    /// `any_errors_fatal`.
    pub any_errors_fatal: bool,
    /// `max_fail_percentage`.
    pub max_fail_percentage: Option<f64>,
    /// `forks` is not a play keyword in Ansible, but `throttle`-like limits come from here.
    pub vars: Map<String, Value>,
    /// `become` for all tasks.
    pub r#become: Option<bool>,
    /// `remote_user` for all tasks.
    pub remote_user: Option<String>,
    /// `environment` for all tasks.
    pub environment: Option<Value>,
    /// `pre_tasks`, `tasks`, then `post_tasks`, in run order.
    pub tasks: Vec<Task>,
    /// Where the play starts.
    pub origin: TaskOrigin,
}

/// A parsed playbook file.
#[derive(Debug, Clone)]
pub struct Playbook {
    /// The playbook path as given.
    pub path: PathBuf,
    /// Plays in order.
    pub plays: Vec<Play>,
}

const PLAY_KEYS: &[&str] = &[
    "name",
    "hosts",
    "gather_facts",
    "serial",
    "any_errors_fatal",
    "max_fail_percentage",
    "vars",
    "become",
    "remote_user",
    "environment",
    "pre_tasks",
    "tasks",
    "post_tasks",
    "tags",
    "connection",
];

/// Reads and parses a playbook file.
pub fn load(path: &Path) -> Result<Playbook> {
    if !path.is_file() {
        return Err(crate::error::Fatal::Other(format!(
            "the playbook: {} could not be found",
            path.display()
        ))
        .into());
    }
    let path = &std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let docs = crate::yaml::load_file(path)?;
    let file = Arc::new(path.to_path_buf());
    let mut plays = Vec::new();
    for doc in &docs {
        if doc.is_null() {
            continue;
        }
        let Some(items) = doc.as_seq() else {
            return Err(syntax(format!(
                "{}:{}: a playbook must be a list of plays",
                path.display(),
                doc.line
            )));
        };
        for item in items {
            plays.push(parse_play(item, &file)?);
        }
    }
    Ok(Playbook {
        path: path.to_path_buf(),
        plays,
    })
}

fn parse_play(node: &Node, file: &Arc<PathBuf>) -> Result<Play> {
    let origin = TaskOrigin {
        file: file.clone(),
        line: node.line,
        col: node.col,
    };
    let err = |line: usize, msg: String| syntax(format!("{}:{line}: {msg}", file.display()));
    let Some(entries) = node.as_map() else {
        return Err(err(node.line, "a play must be a mapping".into()));
    };
    let mut play = Play {
        name: String::new(),
        named: false,
        hosts: String::new(),
        gather_facts: true,
        serial: Vec::new(),
        any_errors_fatal: false,
        max_fail_percentage: None,
        vars: Map::new(),
        r#become: None,
        remote_user: None,
        environment: None,
        tasks: Vec::new(),
        origin,
    };
    let mut sections: [Vec<Task>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    let mut has_hosts = false;
    for (key, value) in entries {
        let v = value.to_json();
        match key.as_str() {
            "name" => {
                play.name = scalar_string(&v);
                play.named = true;
            }
            "hosts" => {
                has_hosts = true;
                play.hosts = match &v {
                    Value::Array(items) => items
                        .iter()
                        .map(scalar_string)
                        .collect::<Vec<_>>()
                        .join(","),
                    other => scalar_string(other),
                };
            }
            "gather_facts" => play.gather_facts = truthy(&v),
            "serial" => play.serial = parse_serial(&v).map_err(|m| err(value.line, m))?,
            "any_errors_fatal" => play.any_errors_fatal = truthy(&v),
            "max_fail_percentage" => {
                play.max_fail_percentage = Some(
                    scalar_string(&v)
                        .trim_end_matches('%')
                        .parse()
                        .map_err(|_| {
                            err(value.line, "max_fail_percentage must be a number".into())
                        })?,
                )
            }
            "vars" => match v {
                Value::Object(m) => play.vars = m,
                Value::Null => {}
                _ => return Err(err(value.line, "play vars must be a mapping".into())),
            },
            "become" => play.r#become = Some(truthy(&v)),
            "remote_user" => play.remote_user = Some(scalar_string(&v)),
            "environment" => play.environment = Some(v),
            "tags" => {}
            "connection" => {
                let c = scalar_string(&v);
                if c != "ssh" && c != "local" {
                    return Err(err(
                        value.line,
                        format!("connection {c:?} is not supported (ssh, local)"),
                    ));
                }
                play.vars
                    .insert("ansible_connection".into(), Value::String(c));
            }
            "pre_tasks" | "tasks" | "post_tasks" => {
                let idx = match key.as_str() {
                    "pre_tasks" => 0,
                    "tasks" => 1,
                    _ => 2,
                };
                if value.is_null() {
                    continue;
                }
                let Some(items) = value.as_seq() else {
                    return Err(err(value.line, format!("{key} must be a list of tasks")));
                };
                for t in items {
                    sections[idx].extend(task::parse_all(t, file, 0)?);
                }
            }
            "import_playbook" => {
                return Err(err(
                    node.line,
                    "import_playbook is not supported yet by etcd-agent".into(),
                ))
            }
            other => {
                let hint = if PLAY_KEYS.contains(&other) {
                    ""
                } else {
                    " (unknown or unsupported play keyword)"
                };
                return Err(err(
                    value.line,
                    format!("'{other}' is not a valid attribute for a Play{hint}"),
                ));
            }
        }
    }
    if !has_hosts || play.hosts.is_empty() {
        return Err(err(
            node.line,
            "the field 'hosts' is required but was not set".into(),
        ));
    }
    if !play.named {
        play.name = play.hosts.clone();
    }
    play.tasks = sections.into_iter().flatten().collect();
    Ok(play)
}

fn parse_serial(v: &Value) -> std::result::Result<Vec<Serial>, String> {
    let one = |v: &Value| -> std::result::Result<Serial, String> {
        let s = scalar_string(v);
        if let Some(p) = s.strip_suffix('%') {
            p.trim()
                .parse::<f64>()
                .map(Serial::Percent)
                .map_err(|_| format!("bad serial value {s:?}"))
        } else {
            s.trim()
                .parse::<usize>()
                .map(Serial::Count)
                .map_err(|_| format!("bad serial value {s:?}"))
        }
    };
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

/// A scalar rendered as text (strings unquoted).
pub fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Ansible's truthiness for keyword values (`yes`, `true`, `1`, ...).
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => crate::config::parse_bool(s),
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Returns the text of a scalar node, if it is one.
pub fn node_str(node: &Node) -> Option<String> {
    match &node.kind {
        NodeKind::Scalar(v) => Some(scalar_string(v)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plays_tasks_lines_and_import_tasks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tasks")).unwrap();
        std::fs::write(
            dir.path().join("tasks/inner.yml"),
            "- name: inner\n  command: echo {{ x }}\n  when: b\n",
        )
        .unwrap();
        let pb = dir.path().join("site.yml");
        std::fs::write(
            &pb,
            "- hosts: [a, b]\n  serial: [1, '50%']\n  gather_facts: no\n  tasks:\n    - name: first\n      ansible.builtin.shell: echo hi chdir=/tmp\n    - import_tasks: tasks/inner.yml\n      when: a\n      vars: {x: 1}\n",
        )
        .unwrap();
        let book = load(&pb).unwrap();
        let play = &book.plays[0];
        assert_eq!(play.hosts, "a,b");
        assert_eq!(play.name, "a,b");
        assert!(!play.gather_facts);
        assert_eq!(play.serial, vec![Serial::Count(1), Serial::Percent(50.0)]);
        let t = &play.tasks[0];
        assert_eq!((t.origin.line, t.origin.col), (5, 7));
        assert_eq!(t.module(), "shell");
        assert_eq!(t.args["_raw_params"], "echo hi");
        assert_eq!(t.args["chdir"], "/tmp");
        let inner = &play.tasks[1];
        assert_eq!(inner.display_name(), "inner");
        assert_eq!(inner.when, vec![Value::from("a"), Value::from("b")]);
        assert_eq!(inner.vars["x"], 1);
        assert!(inner.origin.file.ends_with("tasks/inner.yml"));
    }
}
