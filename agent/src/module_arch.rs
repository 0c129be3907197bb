//! Per-architecture builds of one binary module and the rule that picks one for a host.
//!
//! A module `NAME` found in a directory may have builds for other CPUs beside it, named
//! `NAME_<arch>` with `<arch>` as `uname -m` prints it (`etcd_health_aarch64`). Every ELF
//! file says which CPU it is for (its `e_machine`), so the rule does not trust names: a
//! host gets the build whose ELF machine matches its `uname -m`, whichever file that is;
//! a script (not ELF) runs anywhere. A host with no matching build gets a clear error
//! naming the builds there are, before anything is uploaded. ansible-playbook applies the
//! same rule through the action plugins in `playbooks/action_plugins/`.

use crate::transport::ModuleFile;
use std::path::{Path, PathBuf};

/// Suffixes looked for beside a module (`NAME_<suffix>`): `uname -m` names of Linux CPUs.
pub const ARCH_SUFFIXES: &[&str] = &[
    "x86_64", "aarch64", "riscv64", "ppc64le", "s390x", "armv7l", "i686",
];

/// One file of a module.
#[derive(Debug, Clone)]
pub struct Build {
    /// The CPU it runs on (canonical name, see [`canonical_arch`]); `None` for a script,
    /// which runs on any.
    pub arch: Option<String>,
    /// Where it was found.
    pub path: PathBuf,
    /// Its bytes and hash.
    pub file: ModuleFile,
}

/// A module with every build of it that was found.
#[derive(Debug, Clone)]
pub struct ArchModule {
    /// The module's name (as in the task).
    pub name: String,
    /// The file `NAME` first, then the `NAME_<arch>` files in [`ARCH_SUFFIXES`] order.
    pub builds: Vec<Build>,
}

/// Why no build fits a host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("module {module}: the host reports architecture '{host_arch}' (uname -m) and no build of this module runs there; builds found: {found}. Nothing was uploaded. Build the module for {host_arch} (scripts/build-modules, MODULE_ARCHES) or leave the host out")]
pub struct NoBuildForArch {
    /// The module's name.
    pub module: String,
    /// What the host's `uname -m` said.
    pub host_arch: String,
    /// The builds there are, as `arch (path)` items.
    pub found: String,
}

impl ArchModule {
    /// Collects module `name` from `main` (the file `dir/name`, already read) and the
    /// `name_<arch>` files beside it. A `name_<arch>` file that is not an ELF binary for
    /// `<arch>` is an error, so a mislabelled build is never sent anywhere.
    pub fn collect(name: &str, main_path: &Path, main: ModuleFile) -> Result<Self, String> {
        let mut builds = vec![Build {
            arch: elf_arch(&main.bytes),
            path: main_path.to_path_buf(),
            file: main,
        }];
        let dir = main_path.parent().unwrap_or(Path::new("."));
        let base = main_path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.to_string());
        for suffix in ARCH_SUFFIXES {
            let path = dir.join(format!("{base}_{suffix}"));
            if !path.is_file() {
                continue;
            }
            let bytes = std::fs::read(&path)
                .map_err(|e| format!("cannot read module {}: {e}", path.display()))?;
            let arch = elf_arch(&bytes);
            let wanted = canonical_arch(suffix);
            if arch.as_deref() != Some(wanted.as_str()) {
                return Err(format!(
                    "module {name}: {} is named for {suffix} but is {}; refusing to use it",
                    path.display(),
                    arch.map_or_else(
                        || "not an ELF binary".to_string(),
                        |a| format!("an ELF binary for {a}")
                    ),
                ));
            }
            builds.push(Build {
                arch,
                path,
                file: ModuleFile::new(&format!("{base}_{suffix}"), bytes),
            });
        }
        Ok(ArchModule {
            name: name.to_string(),
            builds,
        })
    }

    /// The build for a host whose `uname -m` printed `host_arch`.
    pub fn pick(&self, host_arch: &str) -> Result<&ModuleFile, NoBuildForArch> {
        let want = canonical_arch(host_arch);
        self.builds
            .iter()
            .find(|b| b.arch.as_deref().is_none_or(|a| a == want))
            .map(|b| &b.file)
            .ok_or_else(|| NoBuildForArch {
                module: self.name.clone(),
                host_arch: host_arch.to_string(),
                found: self
                    .builds
                    .iter()
                    .map(|b| {
                        format!(
                            "{} ({})",
                            b.arch.as_deref().unwrap_or("any"),
                            b.path.display()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// The canonical name of a `uname -m` value: the BSD/Debian spellings `amd64` and `arm64`
/// are `x86_64` and `aarch64`, any `armv*` is `arm`, any `i?86` is `i386`.
pub fn canonical_arch(uname: &str) -> String {
    let u = uname.trim();
    match u {
        "amd64" => "x86_64".into(),
        "arm64" => "aarch64".into(),
        _ if u.starts_with("armv") => "arm".into(),
        _ if u.len() == 4 && u.starts_with('i') && u.ends_with("86") => "i386".into(),
        _ => u.to_string(),
    }
}

/// The canonical CPU name of an ELF file's `e_machine`; `None` when `bytes` is not ELF. An
/// unknown machine gets a name no host reports (`elf-machine-<n>`).
pub fn elf_arch(bytes: &[u8]) -> Option<String> {
    if bytes.len() < 20 || !bytes.starts_with(b"\x7fELF") {
        return None;
    }
    let little = bytes[5] == 1;
    let raw = [bytes[18], bytes[19]];
    let machine = if little {
        u16::from_le_bytes(raw)
    } else {
        u16::from_be_bytes(raw)
    };
    let name = match (machine, little) {
        (62, _) => "x86_64",
        (183, _) => "aarch64",
        (243, _) => "riscv64",
        (21, true) => "ppc64le",
        (21, false) => "ppc64",
        (22, _) => "s390x",
        (40, _) => "arm",
        (3, _) => "i386",
        (n, _) => return Some(format!("elf-machine-{n}")),
    };
    Some(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(machine: u16) -> Vec<u8> {
        let mut b = b"\x7fELF\x02\x01\x01".to_vec();
        b.resize(18, 0);
        b.extend_from_slice(&machine.to_le_bytes());
        b.resize(64, 0);
        b
    }

    #[test]
    fn elf_machines_are_named_as_uname_names_them() {
        assert_eq!(elf_arch(&elf(62)).as_deref(), Some("x86_64"));
        assert_eq!(elf_arch(&elf(183)).as_deref(), Some("aarch64"));
        assert_eq!(elf_arch(&elf(9999)).as_deref(), Some("elf-machine-9999"));
        assert_eq!(elf_arch(b"#!/bin/sh\necho {}\n"), None);
        assert_eq!(elf_arch(b"\x7fELF"), None, "too short to say");
        assert_eq!(canonical_arch("arm64"), "aarch64");
        assert_eq!(canonical_arch("amd64\n"), "x86_64");
        assert_eq!(canonical_arch("armv7l"), "arm");
        assert_eq!(canonical_arch("i686"), "i386");
    }

    fn module(dir: &Path, files: &[(&str, Vec<u8>)]) -> Result<ArchModule, String> {
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        let main = dir.join("m");
        ArchModule::collect(
            "m",
            &main,
            ModuleFile::new("m", std::fs::read(&main).unwrap()),
        )
    }

    #[test]
    fn each_host_gets_the_build_for_its_cpu_and_others_a_clear_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let m = module(dir.path(), &[("m", elf(62)), ("m_aarch64", elf(183))]).unwrap();
        assert_eq!(m.pick("x86_64").unwrap().bytes[18], 62);
        assert_eq!(m.pick("aarch64").unwrap().bytes[18], 183);
        assert_eq!(m.pick("arm64").unwrap().bytes[18], 183);
        let err = m.pick("riscv64").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("'riscv64'"), "{text}");
        assert!(
            text.contains("x86_64 (") && text.contains("aarch64 ("),
            "{text}"
        );
        assert!(text.contains("Nothing was uploaded"), "{text}");
    }

    #[test]
    fn the_plain_name_may_hold_any_cpu_and_a_script_runs_anywhere() {
        let dir = tempfile::tempdir().unwrap();
        let m = module(dir.path(), &[("m", elf(183))]).unwrap();
        assert!(
            m.pick("x86_64").is_err(),
            "an aarch64 file is never sent to x86_64"
        );
        let dir = tempfile::tempdir().unwrap();
        let m = module(dir.path(), &[("m", b"#!/bin/sh\necho '{}'\n".to_vec())]).unwrap();
        assert!(m.pick("riscv64").is_ok());
    }

    #[test]
    fn a_mislabelled_build_is_refused_when_found() {
        let dir = tempfile::tempdir().unwrap();
        let err = module(dir.path(), &[("m", elf(62)), ("m_aarch64", elf(62))]).unwrap_err();
        assert!(
            err.contains("named for aarch64 but is an ELF binary for x86_64"),
            "{err}"
        );
    }
}
