//! The environment of the Ansible-like programs the tests run: no `ANSIBLE_*` setting of
//! the developer's shell leaks into a run.

use std::process::Command;

/// Removes every inherited `ANSIBLE_*` variable from `cmd`'s environment.
pub fn remove_ansible_env(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ANSIBLE_") {
            cmd.env_remove(key);
        }
    }
    cmd
}
