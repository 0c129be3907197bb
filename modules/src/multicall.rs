//! The multi-call binary's dispatch: one executable holds every module and
//! runs the one named by the file it was invoked as.
//!
//! `scripts/build-modules` installs the `etcd_modules` binary under each
//! module's name (`playbooks/library/etcd_health`, ...). Identical bytes
//! hash alike, so etcd-agent uploads the file once per host and reuses it
//! for every module; the uploaded copy is then named after whichever module
//! came first (`etcd_health-<hash>`), so when the file name is not exactly a
//! module's name the `_ansible_module_name` that Ansible and etcd-agent put in
//! every args file decides.
//!
//! Another CPU's build is installed as `<module>_<arch>` (`etcd_health_aarch64`,
//! see `scripts/build-modules`), and ansible-playbook's action plugins run it
//! under that name (file name and `_ansible_module_name` alike), so a trailing
//! `_<arch>` from [`ARCH_SUFFIXES`] is dropped before the name is looked up.

use crate::protocol::{self, Module};
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

/// The modules this binary holds, by the name Ansible calls them.
pub const MODULES: &[&str] = &[
    crate::health::Health::NAME,
    crate::snapshot::Snapshot::NAME,
    crate::restore::Restore::NAME,
    crate::member::EtcdMember::NAME,
    crate::maintenance::Maintenance::NAME,
    crate::doctor::Doctor::NAME,
];

/// `uname -m` names a per-CPU build may carry as a `_<arch>` suffix (the list
/// etcd-agent's `module_arch` and the action plugins look for).
pub const ARCH_SUFFIXES: &[&str] = &[
    "x86_64", "aarch64", "riscv64", "ppc64le", "s390x", "armv7l", "i686",
];

/// Why no module could be chosen: the failure message for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownModule {
    /// The file name the binary was invoked as.
    pub invoked_as: String,
    /// `_ansible_module_name` from the args file, if there was one.
    pub from_args: Option<String>,
}

impl std::fmt::Display for UnknownModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "etcd_modules: invoked as {:?}, which is not a module name",
            self.invoked_as
        )?;
        match &self.from_args {
            Some(name) => write!(f, ", and _ansible_module_name {name:?} is not one either")?,
            None => write!(
                f,
                ", and the args file names no module (_ansible_module_name)"
            )?,
        }
        write!(
            f,
            "; install this binary under one of: {}",
            MODULES.join(", ")
        )
    }
}

impl std::error::Error for UnknownModule {}

/// The module to run: the invoked file name when it is a module's name
/// (optionally with a `_<arch>` suffix), else the last dotted part of the args
/// file's `_ansible_module_name` (`etcd_agent.etcd.etcd_health` →
/// `etcd_health`, `etcd_health_aarch64` → `etcd_health`) when that is one.
pub fn choose(argv0: &str, args_json: Option<&str>) -> Result<&'static str, UnknownModule> {
    let invoked_as = Path::new(argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(name) = known(&invoked_as) {
        return Ok(name);
    }
    let from_args = args_json
        .and_then(|raw| serde_json::from_str::<Value>(raw).ok())
        .and_then(|v| v.get("_ansible_module_name")?.as_str().map(str::to_string));
    let short = from_args
        .as_deref()
        .map(|n| n.rsplit('.').next().unwrap_or(n));
    match short.and_then(known) {
        Some(name) => Ok(name),
        None => Err(UnknownModule {
            invoked_as,
            from_args,
        }),
    }
}

/// The module `name` stands for: a module's name, or one followed by `_<arch>`.
fn known(name: &str) -> Option<&'static str> {
    let bare = ARCH_SUFFIXES
        .iter()
        .find_map(|arch| name.strip_suffix(arch)?.strip_suffix('_'))
        .unwrap_or(name);
    MODULES.iter().copied().find(|m| *m == bare)
}

/// The entry point of the multi-call binary: with [`crate::remote_shell::FLAG`] first, runs
/// etcd-agent's remote shell loop; otherwise picks the module from argv and
/// runs it as its own binary would; prints a failed JSON result and exits 1
/// when no module fits.
pub fn main() -> ! {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == crate::remote_shell::FLAG) {
        crate::remote_shell::main(&args[2..])
    }
    let argv: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let argv0 = argv.first().map(String::as_str).unwrap_or_default();
    // `--doc`, `-h` and no argument name no args file: only the file name counts then.
    let args_json = argv
        .get(1)
        .filter(|a| !a.starts_with('-'))
        .and_then(|path| std::fs::read_to_string(path).ok());
    match choose(argv0, args_json.as_deref()) {
        Ok(name) => run(name),
        Err(unknown) => {
            let result = json!({ "failed": true, "changed": false, "msg": unknown.to_string() });
            let mut out = std::io::stdout().lock();
            // If stdout is gone there is nobody left to tell.
            let _ = writeln!(out, "{result}");
            let _ = out.flush();
            std::process::exit(1)
        }
    }
}

/// Runs module `name` (one of [`MODULES`]).
fn run(name: &str) -> ! {
    use crate::{doctor, health, maintenance, member, restore, snapshot};
    match name {
        n if n == health::Health::NAME => protocol::run_module::<health::Health>(),
        n if n == snapshot::Snapshot::NAME => protocol::run_module::<snapshot::Snapshot>(),
        n if n == restore::Restore::NAME => protocol::run_module::<restore::Restore>(),
        n if n == member::EtcdMember::NAME => protocol::run_module::<member::EtcdMember>(),
        n if n == maintenance::Maintenance::NAME => {
            protocol::run_module::<maintenance::Maintenance>()
        }
        n if n == doctor::Doctor::NAME => protocol::run_module::<doctor::Doctor>(),
        other => unreachable!("{other} is not in MODULES"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_name_picks_the_module() {
        for m in MODULES {
            assert_eq!(choose(&format!("/tmp/x/{m}"), None), Ok(*m));
            assert_eq!(choose(m, Some("not json")), Ok(*m));
        }
    }

    #[test]
    fn an_exact_file_name_wins_over_the_args() {
        let args = r#"{"_ansible_module_name": "etcd_member"}"#;
        assert_eq!(choose("/r/etcd_health", Some(args)), Ok("etcd_health"));
    }

    #[test]
    fn an_uploaded_copy_goes_by_the_args_module_name() {
        // etcd-agent's upload of the shared file, named after the first module that used it
        let argv0 = "/home/u/.ansible/tmp/x/etcd_health-0123456789abcdef";
        let args = r#"{"port": 1, "_ansible_module_name": "etcd_member"}"#;
        assert_eq!(choose(argv0, Some(args)), Ok("etcd_member"));
        let fqcn = r#"{"_ansible_module_name": "etcd_agent.etcd.etcd_snapshot"}"#;
        assert_eq!(choose(argv0, Some(fqcn)), Ok("etcd_snapshot"));
    }

    #[test]
    fn a_per_cpu_build_goes_by_the_module_name_before_its_arch() {
        // as ansible-playbook's action plugin runs the aarch64 build
        let args = r#"{"_ansible_module_name": "etcd_member_aarch64"}"#;
        assert_eq!(
            choose("/r/etcd_member_aarch64", Some(args)),
            Ok("etcd_member")
        );
        // as etcd-agent uploads it: <file>-<hash>, with the plain module name in the args
        let argv0 = "/t/etcd_health_aarch64-0123456789abcdef";
        let args = r#"{"_ansible_module_name": "etcd_doctor"}"#;
        assert_eq!(choose(argv0, Some(args)), Ok("etcd_doctor"));
        assert_eq!(choose("etcd_health_x86_64", None), Ok("etcd_health"));
        // only a known arch after a module's name counts
        assert!(choose("etcd_health_sparc", None).is_err());
        assert!(choose("etcd_healthaarch64", None).is_err());
        assert!(choose("aarch64", None).is_err());
    }

    #[test]
    fn no_module_is_a_clear_error() {
        let err = choose("/usr/bin/etcd_modules", None).unwrap_err();
        assert_eq!(err.invoked_as, "etcd_modules");
        let msg = err.to_string();
        assert!(msg.contains("\"etcd_modules\""), "{msg}");
        assert!(msg.contains("etcd_health, etcd_snapshot"), "{msg}");
        let err = choose("x", Some(r#"{"_ansible_module_name": "ping"}"#)).unwrap_err();
        assert_eq!(err.from_args.as_deref(), Some("ping"));
        assert!(err.to_string().contains("\"ping\""), "{err}");
        assert!(choose("", Some("[1]")).is_err());
    }

    #[test]
    fn every_module_is_listed_once() {
        let mut names = MODULES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 6);
        assert!(names.iter().all(|n| n.starts_with("etcd_")));
    }
}
