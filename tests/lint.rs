//! `ansible-lint` with the production profile finds nothing in the playbooks,
//! task files, role and inventories (configuration: `.ansible-lint` at the
//! repository root; the binary modules are mocked there).
//!
//! Skipped, saying so, when `ansible-lint` is not installed, except under CI
//! (`CI` set), where `scripts/install-deps` installs it and a missing linter
//! is a failure.

use std::process::Stdio;
use std::time::Duration;

use harness::process::{kill_and_reap, wait_timeout};
use harness::reaper::reaped_command;
use harness::repo_root;
use harness::scratch::scratch_dir;

/// ansible-lint takes about 30 s here; the machine is shared and slow.
const LINT_DEADLINE: Duration = Duration::from_secs(600);

fn ansible_lint_installed() -> bool {
    // even `--version` loads Ansible's config, which creates `~/.ansible/tmp`: a scratch home
    let scratch = scratch_dir("lint-probe");
    std::process::Command::new("ansible-lint")
        .arg("--version")
        .env("ANSIBLE_HOME", scratch.path().join("ansible-home"))
        .env("ANSIBLE_LOCAL_TEMP", scratch.path().join("ansible-tmp"))
        .env("XDG_CACHE_HOME", scratch.path().join("cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn ansible_lint_production_profile_finds_nothing() {
    if !ansible_lint_installed() {
        assert!(
            std::env::var_os("CI").is_none(),
            "ansible-lint is not installed, and CI must run it (scripts/install-deps installs it)"
        );
        eprintln!("SKIPPED: ansible-lint is not installed (scripts/install-deps installs it)");
        return;
    }
    let scratch = scratch_dir("lint");
    let out_path = scratch.path().join("ansible-lint.out");
    let out = std::fs::File::create(&out_path).expect("create the output file");
    let err = out.try_clone().expect("clone the output file");
    // Everything ansible-lint and the ansible-playbook it runs write for
    // themselves (mocked modules, temp files) stays in the scratch dir.
    let mut child = reaped_command(scratch.path(), "ansible-lint")
        .args([
            "--profile",
            "production",
            "--strict",
            "--offline",
            "--nocolor",
            "-f",
            "pep8",
        ])
        .current_dir(repo_root())
        .env("ANSIBLE_HOME", scratch.path().join("ansible-home"))
        .env("ANSIBLE_LOCAL_TEMP", scratch.path().join("ansible-tmp"))
        .env("XDG_CACHE_HOME", scratch.path().join("cache"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start ansible-lint");
    let status = match wait_timeout(&mut child, LINT_DEADLINE) {
        Some(status) => status,
        None => {
            kill_and_reap(&mut child);
            panic!("ansible-lint did not finish within {LINT_DEADLINE:?}");
        }
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    assert!(
        status.success(),
        "ansible-lint (production profile) has findings ({status}):\n{output}"
    );
    assert!(
        output.contains("0 failure(s), 0 warning(s)")
            && output.contains("Profile 'production' was required, and it passed"),
        "ansible-lint exited 0 but did not report a clean production run:\n{output}"
    );
}
