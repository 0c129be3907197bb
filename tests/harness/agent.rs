//! The `etcd-agent` binary for end-to-end tests: built once per test
//! process, run with a clean environment ([`agent_command`]), and [`Agent`],
//! one run set up and run to the end.
//!
//! The agent keeps its SSH masters for 60 s after a run by default (Ansible's
//! `ControlPersist=60s`). An [`Agent`] run therefore goes through the subreaper
//! wrapper, which kills and reaps whatever the run leaves behind when it ends, and
//! keeps the control sockets in the run's own scratch dir unless the test sets
//! `ANSIBLE_SSH_CONTROL_PATH_DIR` or `control_path_dir` itself: nothing outlives the
//! run and nothing lands in `~/.ansible`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::ansible::Ansible;
use crate::clean_env::remove_ansible_env;
use crate::paths::repo_root;
use crate::process::guarded_command;
use crate::reaper::reaped_command;
use crate::run::{run_with_stdin, RunOutput};
use crate::scratch::scratch_dir;

/// Name of the `ansible.cfg` that [`Agent::in_dir`] points at and that no test writes:
/// the run has no configuration file.
pub const NO_CONFIG: &str = "no-such-ansible.cfg";

/// Builds `etcd-agent` (debug) once per test process and returns its path.
/// `scripts/test` builds the workspace first, so this is normally a no-op.
pub fn agent_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = repo_root();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args(["build", "-q", "-p", "etcd-agent"])
            .current_dir(&root)
            .output()
            .expect("run cargo build -p etcd-agent");
        assert!(
            out.status.success(),
            "cargo build -p etcd-agent failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"))
            .join("debug")
            .join("etcd-agent")
    })
}

/// A command running the agent in `dir` with `ANSIBLE_CONFIG` set to
/// `ansible_config` (a missing file means none), no inherited `ANSIBLE_*`
/// or `RUST_LOG` settings, and no stdin. The agent is killed if the
/// spawning thread (the test) dies first.
pub fn agent_command(dir: &Path, ansible_config: &Path) -> Command {
    let mut cmd = guarded_command(agent_binary());
    remove_ansible_env(&mut cmd);
    cmd.current_dir(dir)
        .env("ANSIBLE_CONFIG", ansible_config)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

/// One `etcd-agent` run being set up (working directory, `ANSIBLE_CONFIG`,
/// arguments, environment); [`Agent::run`] runs it to the end.
#[derive(Debug)]
pub struct Agent {
    cmd: Command,
    /// The run's `ANSIBLE_CONFIG`.
    config: PathBuf,
    /// Holds the subreaper script and the default control path dir; removed after the run.
    _scratch: tempfile::TempDir,
}

impl Agent {
    /// The agent in `dir` under the subreaper wrapper, like [`agent_command`], with its
    /// control sockets in a scratch dir of its own.
    fn reaped(dir: &Path, ansible_config: &Path) -> Agent {
        // a short name: control socket paths are limited to 107 bytes
        let scratch = scratch_dir("a");
        let mut cmd = reaped_command(scratch.path(), agent_binary());
        remove_ansible_env(&mut cmd);
        cmd.current_dir(dir)
            .env("ANSIBLE_CONFIG", ansible_config)
            .env("ANSIBLE_SSH_CONTROL_PATH_DIR", scratch.path().join("cp"))
            // the hosts' module cache is this machine's /tmp, shared by every test running
            // at once: tests count and break uploads, so it is on only where a test asks
            .env("ETCD_AGENT_MODULE_CACHE", "0")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        Agent {
            cmd,
            config: ansible_config.to_path_buf(),
            _scratch: scratch,
        }
    }

    /// In `dir`, with no `ansible.cfg` (`ANSIBLE_CONFIG` is `dir/`[`NO_CONFIG`]).
    pub fn in_dir(dir: &Path) -> Agent {
        Agent::reaped(dir, &dir.join(NO_CONFIG))
    }

    /// In `dir`, with `dir/ansible.cfg` as `ANSIBLE_CONFIG` (whether or not it exists).
    pub fn with_config(dir: &Path) -> Agent {
        Agent::reaped(dir, &dir.join("ansible.cfg"))
    }

    /// In the sandbox of `ansible` (its directory and its `ansible.cfg`), without the rest of
    /// its environment (see [`Agent::sandbox_env`]).
    pub fn in_sandbox(ansible: &Ansible) -> Agent {
        Agent::with_config(ansible.dir())
    }

    /// Adds the whole environment the sandbox gives `ansible-playbook` ([`Ansible::env`]:
    /// `ANSIBLE_LIBRARY`, temp dirs...).
    pub fn sandbox_env(mut self, ansible: &Ansible) -> Agent {
        self.cmd.envs(ansible.env());
        self
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Agent {
        self.cmd.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Agent
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Adds `playbook -i inventory playbook` (further options may follow).
    pub fn playbook(self, inventory: &Path, playbook: &Path) -> Agent {
        self.arg("playbook").arg("-i").arg(inventory).arg(playbook)
    }

    /// Sets one environment variable.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Agent {
        self.cmd.env(key, value);
        self
    }

    /// Sets `RUST_LOG` (the agent logs to stderr), e.g. `etcd_agent::transport=info`.
    pub fn log(self, filter: &str) -> Agent {
        self.env("RUST_LOG", filter)
    }

    /// Runs the agent to the end with no stdin.
    pub fn run(self) -> RunOutput {
        self.run_with_stdin(None)
    }

    /// Runs the agent to the end, feeding it `stdin` (none if `None`).
    pub fn run_with_stdin(mut self, stdin: Option<&str>) -> RunOutput {
        let default_cp = self._scratch.path().join("cp");
        let ours = self
            .cmd
            .get_envs()
            .any(|(k, v)| k == "ANSIBLE_SSH_CONTROL_PATH_DIR" && v == Some(default_cp.as_os_str()));
        let configured = std::fs::read_to_string(&self.config)
            .is_ok_and(|text| text.contains("control_path_dir"));
        if ours && configured {
            // the test's own `control_path_dir` wins
            self.cmd.env_remove("ANSIBLE_SSH_CONTROL_PATH_DIR");
        }
        run_with_stdin(&mut self.cmd, stdin)
    }
}
