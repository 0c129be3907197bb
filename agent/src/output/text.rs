//! Ansible's default text output: banners, per-host status lines, errors with origin, recap.

use super::{HostResult, HostStats, Progress, Reporter, Status, TaskInfo};
use crate::jinja::value::{python_compact, python_indented};
use crate::yaml::TaskOrigin;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::Write;

mod items;

/// Writes Ansible's default stdout callback format.
pub struct TextReporter {
    verbosity: u8,
    progress: Option<Progress>,
    out: Box<dyn Write + Send>,
    errors_shown: std::collections::HashSet<String>,
    pending_include: Vec<items::PendingInclude>,
    /// Warnings and deprecations already shown: each is shown once a run, as Ansible's display
    /// does.
    warned: std::collections::HashSet<String>,
    /// `deprecation_warnings`: modules' deprecations are shown.
    deprecation_warnings: bool,
}

impl TextReporter {
    /// A reporter on stdout; progress bars when stderr is a terminal.
    pub fn stdout(verbosity: u8) -> Self {
        TextReporter {
            verbosity,
            progress: Progress::if_terminal(),
            out: Box::new(std::io::stdout()),
            errors_shown: Default::default(),
            pending_include: Vec::new(),
            warned: Default::default(),
            deprecation_warnings: true,
        }
    }

    /// The same reporter, showing modules' deprecations or not (`deprecation_warnings`).
    pub fn with_deprecation_warnings(mut self, show: bool) -> Self {
        self.deprecation_warnings = show;
        self
    }

    /// Shows `text` once a run (Ansible deduplicates warnings and deprecations at display).
    fn line_once(&mut self, text: String) {
        if self.warned.insert(text.clone()) {
            self.line(&text);
        }
    }

    /// A result's `warnings` and `deprecations`, as the default callback shows them.
    fn result_warnings(&mut self, r: &HostResult) {
        if let Some(Value::Array(warnings)) = r.result.get("warnings") {
            for w in warnings {
                self.line_once(format!(
                    "[WARNING]: {}",
                    crate::jinja::value::scalar_string(w)
                ));
            }
        }
        if !self.deprecation_warnings {
            return;
        }
        if let Some(Value::Array(list)) = r.result.get("deprecations") {
            for d in list {
                self.line_once(
                    "[WARNING]: Deprecation warnings can be disabled by setting `deprecation_warnings=False` in ansible.cfg.".into(),
                );
                self.line_once(format!(
                    "[DEPRECATION WARNING]: {}",
                    super::deprecation_message(d)
                ));
            }
        }
    }

    fn line(&mut self, text: &str) {
        let out = &mut self.out;
        let mut write = || {
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        };
        match &self.progress {
            Some(p) => p.suspend(write),
            None => write(),
        }
    }

    fn banner(&mut self, msg: &str) {
        let stars = 79usize.saturating_sub(msg.chars().count()).max(3);
        self.line(&format!("\n{msg} {}", "*".repeat(stars)));
    }

    /// Cleans a result for display as the default callback does.
    fn display_result(&self, r: &HostResult) -> Value {
        let mut m: Map<String, Value> = r
            .result
            .iter()
            .filter(|(k, _)| !k.starts_with("_ansible"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // a loop's item results too (ansible-core's strip_internal_keys goes all the way down)
        if let Some(Value::Array(items)) = m.get_mut("results") {
            for item in items {
                if let Value::Object(im) = item {
                    im.retain(|k, _| !k.starts_with("_ansible"));
                }
            }
        }
        m.remove("failed");
        m.remove("exception");
        m.remove("warnings");
        m.remove("deprecations");
        if self.verbosity < 3 {
            m.remove("invocation");
            m.remove("diff");
        }
        if r.action == "debug" {
            if m.contains_key("msg") {
                m.retain(|k, _| k == "msg");
            } else {
                for k in ["changed", "failed", "skipped", "invocation", "skip_reason"] {
                    m.remove(k);
                }
            }
        }
        Value::Object(m)
    }

    fn dump(&self, r: &HostResult) -> String {
        let v = self.display_result(r);
        let always = r
            .result
            .get("_ansible_verbose_always")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if always || self.verbosity > 2 {
            python_indented(&v)
        } else {
            python_compact(&v)
        }
    }

    fn verbose(&self, r: &HostResult) -> bool {
        self.verbosity > 0
            || r.result
                .get("_ansible_verbose_always")
                .and_then(Value::as_bool)
                .unwrap_or(false)
    }

    /// Prints an `[ERROR]` block once per distinct text, as Ansible's display does.
    fn error_origin(&mut self, msg: &str, origin: &Option<TaskOrigin>) {
        let mut block = format!("[ERROR]: {msg}");
        if let Some(o) = origin {
            block.push_str(&format!("\nOrigin: {o}\n"));
            if let Some(snippet) = snippet(o) {
                block.push_str(&format!("\n{snippet}\n"));
            }
        }
        if self.errors_shown.insert(block.clone()) {
            self.line(&block);
        }
    }
}

/// The three source lines ending at the origin, with a caret under the column.
pub(crate) fn snippet(o: &TaskOrigin) -> Option<String> {
    let text = std::fs::read_to_string(&*o.file).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    if o.line == 0 || o.line > lines.len() {
        return None;
    }
    let first = o.line.saturating_sub(2).max(1);
    let width = o.line.to_string().len();
    let mut out = Vec::new();
    for n in first..=o.line {
        out.push(format!("{n:>width$} {}", lines[n - 1]));
    }
    out.push(format!("{}^ column {}", " ".repeat(width + o.col), o.col));
    Some(out.join("\n"))
}

impl Reporter for TextReporter {
    fn verbose_line(&mut self, level: u8, msg: &str) {
        if self.verbosity >= level {
            self.flush_include();
            self.line(msg);
        }
    }

    fn playbook_start(&mut self, path: &str, plays: usize) {
        // ansible-playbook's -vv header
        if self.verbosity >= 2 {
            self.banner(&format!(
                "PLAYBOOK: {}",
                path.rsplit('/').next().unwrap_or(path)
            ));
            self.line(&format!("{plays} plays in {path}"));
        }
    }

    fn step_prompt(&mut self, prompt: &str) {
        self.flush_include();
        let out = &mut self.out;
        let mut write = || {
            let _ = write!(out, "{prompt}");
            let _ = out.flush();
        };
        match &self.progress {
            Some(p) => p.suspend(write),
            None => write(),
        }
    }

    fn step_answered(&mut self, prompt: &str) {
        self.banner(prompt.trim());
    }

    fn play_start(&mut self, name: &str, _origin: &TaskOrigin) {
        self.flush_include();
        self.banner(&format!("PLAY [{name}]"));
    }

    fn no_hosts(&mut self) {
        self.line("skipping: no hosts matched");
    }

    fn task_start(&mut self, task: &TaskInfo, hosts: usize) {
        self.flush_include();
        let kind = if task.handler {
            "RUNNING HANDLER"
        } else {
            "TASK"
        };
        self.banner(&format!("{kind} [{}]", task.name));
        // ansible-playbook -vv says where the task is written
        if self.verbosity >= 2 {
            if let Some(o) = &task.origin {
                self.line(&format!("task path: {}:{}", o.file.display(), o.line));
            }
        }
        if let Some(p) = &mut self.progress {
            p.start_task(&task.name, hosts);
        }
    }

    fn host_result(&mut self, task: &TaskInfo, r: &HostResult) {
        if let Some(p) = &self.progress {
            p.host_done();
        }
        self.result_warnings(r);
        let host = match &r.delegated_to {
            Some(d) if d != &r.host => format!("[{} -> {d}]", r.host),
            _ => format!("[{}]", r.host),
        };
        if self.include_result(task, r) || self.loop_result(task, r, &host) {
            return;
        }
        self.flush_include();
        if r.status == Status::Changed {
            if let Some(d) = r.result.get("diff") {
                let text = super::diff::render(d);
                if !text.is_empty() {
                    // Ansible leaves a blank line after each diff
                    self.line(&text);
                }
            }
        }
        match r.status {
            Status::Ok | Status::Changed => {
                let label = if r.status == Status::Ok {
                    "ok"
                } else {
                    "changed"
                };
                let mut msg = format!("{label}: {host}");
                if self.verbose(r) {
                    msg.push_str(&format!(" => {}", self.dump(r)));
                }
                self.line(&msg);
            }
            Status::Skipped => {
                let mut msg = format!("skipping: {host}");
                if self.verbosity > 0 {
                    let mut shown = r.clone();
                    shown.result.remove("skipped");
                    // a meta action's skip is shown as ansible-core's strategy made it
                    if r.action == "meta" {
                        shown.result.remove("changed");
                    }
                    msg.push_str(&format!(" => {}", self.dump(&shown)));
                }
                self.line(&msg);
            }
            // an include whose file or role could not be loaded: ansible-core's strategy
            // shows the reason as it is, without the task's origin
            Status::Failed
                if matches!(r.action.as_str(), "include_tasks" | "include_role")
                    && r.result.get("msg").is_none()
                    && r.result.get("reason").is_some() =>
            {
                let reason = r
                    .result
                    .get("reason")
                    .map(crate::jinja::value::scalar_string)
                    .unwrap_or_default();
                self.error_origin(&reason, &None);
                self.line(&format!("fatal: {host}: FAILED! => {}", self.dump(r)));
                if r.ignored {
                    self.line("...ignoring");
                }
            }
            Status::Failed => {
                let what = match r.result.get("msg").map(crate::jinja::value::scalar_string) {
                    Some(m) if m.starts_with("Task failed") => m,
                    Some(m) if m.is_empty() => "Task failed: Action failed.".to_string(),
                    Some(m) if crate::builtins::is_controller_only(&r.action) => {
                        format!("Task failed: Action failed: {m}")
                    }
                    Some(m) => format!("Task failed: Module failed: {m}"),
                    None => "Task failed: Action failed.".to_string(),
                };
                self.error_origin(&what, &task.origin);
                self.line(&format!("fatal: {host}: FAILED! => {}", self.dump(r)));
                if r.ignored {
                    self.line("...ignoring");
                }
            }
            Status::Unreachable => {
                let msg = r
                    .result
                    .get("msg")
                    .map(crate::jinja::value::scalar_string)
                    .unwrap_or_default();
                // a loop's items showed their own errors
                if !r.result.contains_key("results") {
                    self.error_origin(&msg, &task.origin);
                }
                self.line(&format!(
                    "fatal: {host}: UNREACHABLE! => {}",
                    python_compact(&self.display_result(r))
                ));
                if r.ignored {
                    self.line("...ignoring");
                }
            }
        }
    }

    fn retry(
        &mut self,
        task: &TaskInfo,
        host: &str,
        retries_left: u32,
        result: &Map<String, Value>,
    ) {
        let mut msg = format!(
            "FAILED - RETRYING: [{host}]: {} ({retries_left} retries left).",
            task.name
        );
        if self.verbosity > 0 {
            let r = HostResult {
                host: host.into(),
                delegated_to: None,
                status: Status::Failed,
                ignored: false,
                result: result.clone(),
                action: String::new(),
            };
            msg.push_str(&format!("Result was: {}", self.dump(&r)));
        }
        self.line(&msg);
    }

    fn no_more_hosts(&mut self) {}

    fn recap(&mut self, stats: &BTreeMap<String, HostStats>) {
        self.flush_include();
        if let Some(p) = self.progress.take() {
            p.finish();
        }
        self.banner("PLAY RECAP");
        for (host, s) in stats {
            self.line(&format!(
                "{host:<26} : ok={:<4} changed={:<4} unreachable={:<4} failed={:<4} skipped={:<4} rescued={:<4} ignored={:<4}",
                s.ok, s.changed, s.unreachable, s.failed, s.skipped, s.rescued, s.ignored
            ));
        }
        self.line("");
    }

    fn warning(&mut self, msg: &str) {
        let text = format!("[WARNING]: {msg}");
        if self.warned.insert(text.clone()) {
            eprintln!("{text}");
        }
    }
}
