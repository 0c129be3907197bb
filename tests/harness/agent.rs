//! The `etcd-agent` binary for end-to-end tests: built once per test
//! process, run with a clean environment ([`agent_command`]), and [`Agent`],
//! one run set up and run to the end.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::ansible::Ansible;
use crate::clean_env::remove_ansible_env;
use crate::paths::repo_root;
use crate::process::guarded_command;
use crate::run::{run_with_stdin, RunOutput};

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
}

impl Agent {
    /// In `dir`, with no `ansible.cfg` (`ANSIBLE_CONFIG` is `dir/`[`NO_CONFIG`]).
    pub fn in_dir(dir: &Path) -> Agent {
        Agent {
            cmd: agent_command(dir, &dir.join(NO_CONFIG)),
        }
    }

    /// In `dir`, with `dir/ansible.cfg` as `ANSIBLE_CONFIG` (whether or not it exists).
    pub fn with_config(dir: &Path) -> Agent {
        Agent {
            cmd: agent_command(dir, &dir.join("ansible.cfg")),
        }
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
        run_with_stdin(&mut self.cmd, stdin)
    }
}
