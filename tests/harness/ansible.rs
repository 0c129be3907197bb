//! Sandboxed `ansible-playbook` runs.
//!
//! Everything Ansible would write under `~/.ansible` (home, local and
//! remote temp, async dir, ssh control sockets) goes to a temp dir; inherited
//! `ANSIBLE_*` variables are dropped; host key checking stays on (use
//! [`crate::Sshd::inventory_host_vars`]).
//!
//! JSON results: ansible-core 2.19 ships no JSON callback (`json` moved to
//! the `ansible.posix` collection, which is not installed), so each run
//! enables the harness's own aggregate callback `harness_json`
//! (`harness_json.py`) next to the normal human-readable stdout. It writes
//! the `ansible.posix.json` layout to a file, read into
//! [`AnsibleOutput::json`].
//!
//! Runs go through the subreaper wrapper ([`crate::reaper`]): ssh
//! `ControlPersist` masters that Ansible leaves behind are killed and
//! reaped when `ansible-playbook` exits.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::clean_env::remove_ansible_env;
use crate::files::write_file;
use crate::paths::module_library_dir;
use crate::poll::poll_until;
use crate::process::kill_and_reap;
use crate::reaper::reaped_command;
use crate::run::{describe_streams, expect_exit_of};
use crate::scratch::scratch_dir;

/// Source of the aggregate JSON callback plugin.
const CALLBACK_PY: &str = include_str!("harness_json.py");

/// Longest a single `ansible-playbook` run may take before it is killed.
pub const PLAYBOOK_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// A scratch Ansible environment (its own `ANSIBLE_HOME`, temp dirs, config).
#[derive(Debug)]
pub struct Ansible {
    dir: TempDir,
    runs: AtomicUsize,
}

/// Result of one `ansible-playbook` run.
#[derive(Debug, Clone)]
pub struct AnsibleOutput {
    /// Exit status of `ansible-playbook`.
    pub status: ExitStatus,
    /// Human-readable stdout (default callback, no colors).
    pub stdout: String,
    /// stderr (warnings, errors).
    pub stderr: String,
    /// The run as JSON in the `ansible.posix.json` layout (see
    /// `harness_json.py`); `None` if Ansible died before writing any.
    pub json: Option<Value>,
}

impl AnsibleOutput {
    /// True if `ansible-playbook` exited 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics with stdout and stderr unless the run exited 0.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.success(),
            "ansible-playbook failed ({}):\n{}",
            self.status,
            self.describe()
        );
        self
    }

    /// Panics with stdout and stderr if the run exited 0.
    pub fn assert_failure(&self) -> &Self {
        assert!(
            !self.success(),
            "ansible-playbook unexpectedly succeeded:\n{}",
            self.describe()
        );
        self
    }

    /// Panics with stdout and stderr unless the run exited with `code`.
    pub fn expect_exit(&self, code: i32) -> &Self {
        expect_exit_of(
            "playbook run",
            self.status,
            code,
            &self.stdout,
            &self.stderr,
        );
        self
    }

    /// stdout and stderr together, for assertion messages.
    pub fn describe(&self) -> String {
        describe_streams(&self.stdout, &self.stderr)
    }

    /// All recorded tasks (every play), each `{"task": {...}, "hosts": {...}}`.
    pub fn tasks(&self) -> Vec<&Value> {
        let Some(json) = &self.json else {
            return Vec::new();
        };
        json.get("plays")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|p| {
                p.get("tasks")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .collect()
    }

    /// Result of the LAST task named `task` on `host`, if recorded.
    pub fn result(&self, task: &str, host: &str) -> Option<&Value> {
        self.tasks()
            .into_iter()
            .rev()
            .filter(|t| t.pointer("/task/name").and_then(Value::as_str) == Some(task))
            .find_map(|t| t.get("hosts").and_then(|h| h.get(host)))
    }

    /// Like [`AnsibleOutput::result`] but panics with the output if missing.
    pub fn result_ok(&self, task: &str, host: &str) -> &Value {
        self.result(task, host).unwrap_or_else(|| {
            panic!(
                "no result of task {task:?} on host {host:?}:\n{}",
                self.describe()
            )
        })
    }

    /// Play recap counters of `host` (`ok`, `changed`, `failures`,
    /// `unreachable`, `skipped`, `rescued`, `ignored`).
    pub fn stats(&self, host: &str) -> Option<&Value> {
        self.json.as_ref()?.get("stats")?.get(host)
    }
}

impl Default for Ansible {
    fn default() -> Self {
        Ansible::new()
    }
}

impl Ansible {
    /// Creates the scratch environment (temp dir, `ansible.cfg`, callback plugin).
    pub fn new() -> Ansible {
        let dir = scratch_dir("ansible");
        let a = Ansible {
            dir,
            runs: AtomicUsize::new(0),
        };
        for sub in ["home", "tmp", "remote-tmp", "async", "cp", "runs"] {
            std::fs::create_dir_all(a.dir.path().join(sub)).expect("create ansible scratch subdir");
        }
        a.write_file("callback_plugins/harness_json.py", CALLBACK_PY);
        a.write_file("ansible.cfg", "[defaults]\nretry_files_enabled = False\n");
        a
    }

    /// The scratch directory (also the working directory of runs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` to `<dir>/<rel>` (creating parent dirs); returns the path.
    pub fn write_file(&self, rel: &str, contents: &str) -> PathBuf {
        write_file(self.dir.path(), rel, contents)
    }

    /// The environment given to every Ansible command (besides the
    /// inherited non-`ANSIBLE_*` variables).
    pub fn env(&self) -> Vec<(String, String)> {
        let d = self.dir.path();
        let p = |s: &str| d.join(s).display().to_string();
        vec![
            ("ANSIBLE_CONFIG".into(), p("ansible.cfg")),
            ("ANSIBLE_HOME".into(), p("home")),
            ("ANSIBLE_LOCAL_TEMP".into(), p("tmp")),
            ("ANSIBLE_REMOTE_TEMP".into(), p("remote-tmp")),
            ("ANSIBLE_ASYNC_DIR".into(), p("async")),
            ("ANSIBLE_SSH_CONTROL_PATH_DIR".into(), p("cp")),
            ("ANSIBLE_HOST_KEY_CHECKING".into(), "True".into()),
            ("ANSIBLE_NOCOLOR".into(), "1".into()),
            ("ANSIBLE_FORCE_COLOR".into(), "0".into()),
            ("ANSIBLE_RETRY_FILES_ENABLED".into(), "0".into()),
            (
                "ANSIBLE_LIBRARY".into(),
                module_library_dir().display().to_string(),
            ),
            ("ANSIBLE_CALLBACK_PLUGINS".into(), p("callback_plugins")),
            ("ANSIBLE_CALLBACKS_ENABLED".into(), "harness_json".into()),
            ("ANSIBLE_PYTHON_INTERPRETER".into(), "auto_silent".into()),
            ("ANSIBLE_TIMEOUT".into(), "60".into()),
            ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
            // Temp files of local runs (a module killed mid-run leaves its AnsiballZ
            // payload dir) go to the scratch dir, removed with it, not to /tmp.
            ("TMPDIR".into(), p("tmp")),
        ]
    }

    /// A [`Command`] for an Ansible program (`ansible-playbook`, `ansible`,
    /// `ansible-inventory`...) with this environment, run under the
    /// subreaper wrapper, in [`Ansible::dir`].
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = reaped_command(self.dir.path(), program);
        remove_ansible_env(&mut cmd);
        cmd.envs(self.env())
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `ansible-playbook -i inventory playbook extra_args...`; waits up
    /// to [`PLAYBOOK_TIMEOUT`]. Never panics on a failed run: check
    /// [`AnsibleOutput::status`].
    pub fn playbook(
        &self,
        inventory: &Path,
        playbook: &Path,
        extra_args: &[&str],
    ) -> AnsibleOutput {
        let n = self.runs.fetch_add(1, Ordering::SeqCst);
        let runs = self.dir.path().join("runs");
        let json_path = runs.join(format!("run-{n}.json"));
        let out_path = runs.join(format!("run-{n}.stdout"));
        let err_path = runs.join(format!("run-{n}.stderr"));
        let create = |p: &Path| {
            std::fs::File::create(p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()))
        };
        let mut child = self
            .command("ansible-playbook")
            .env("HARNESS_JSON_OUT", &json_path)
            .arg("-i")
            .arg(inventory)
            .arg(playbook)
            .args(extra_args)
            .stdout(create(&out_path))
            .stderr(create(&err_path))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn ansible-playbook: {e}"));
        let status = match poll_until(PLAYBOOK_TIMEOUT, || child.try_wait().ok().flatten()) {
            Some(st) => st,
            None => {
                kill_and_reap(&mut child);
                panic!(
                    "ansible-playbook {} did not finish within {PLAYBOOK_TIMEOUT:?}; stdout tail:\n{}",
                    playbook.display(),
                    crate::paths::log_tail(&out_path, 40)
                );
            }
        };
        let read =
            |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
        let json = std::fs::read(&json_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        AnsibleOutput {
            status,
            stdout: read(&out_path),
            stderr: read(&err_path),
            json,
        }
    }

    /// Runs [`Ansible::playbook`] and returns its JSON record (whatever the
    /// exit status); panics with stdout/stderr if no JSON was written.
    pub fn playbook_json(&self, inventory: &Path, playbook: &Path, extra_args: &[&str]) -> Value {
        let out = self.playbook(inventory, playbook, extra_args);
        match out.json {
            Some(v) => v,
            None => panic!(
                "ansible-playbook wrote no JSON ({}):\n{}",
                out.status,
                out.describe()
            ),
        }
    }
}
