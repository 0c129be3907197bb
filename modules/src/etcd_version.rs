//! etcd versions: parsing what `etcd --version`, `etcdutl version` and
//! `etcdctl version` print, and asking a binary for its version.

use std::fmt;
use std::path::Path;
use std::process::Command;

/// A `major.minor.patch` etcd version; compared by (major, minor) for
/// compatibility, shown in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdVersion {
    /// Major version (3).
    pub major: u32,
    /// Minor version (4, 5, 6...).
    pub minor: u32,
    /// The full text as the binary printed it, e.g. `3.6.15`.
    pub full: String,
}

impl EtcdVersion {
    /// Parses `3.6.15` (or `3.6`, or `3.6.0-rc.1`): the first two numbers.
    pub fn parse(text: &str) -> Option<EtcdVersion> {
        let full = text.trim().trim_start_matches('v').to_string();
        let mut parts = full.split(['.', '-']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(EtcdVersion { major, minor, full })
    }

    /// `(major, minor)`, the part that decides compatibility.
    pub fn series(&self) -> (u32, u32) {
        (self.major, self.minor)
    }

    /// True from etcd 3.6 on: no `etcdctl snapshot restore`, etcdutl needed.
    pub fn needs_etcdutl(&self) -> bool {
        self.series() >= (3, 6)
    }
}

impl fmt::Display for EtcdVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

/// The version in the output of `etcd --version` (`etcd Version: 3.6.15`),
/// `etcdutl version` (`etcdutl version: 3.5.30`) or `etcdctl version`
/// (`etcdctl version: 3.4.23`): the first line `<label> version: X.Y.Z`,
/// case-insensitive, whose label is `program`.
pub fn parse_version_output(program: &str, output: &str) -> Option<EtcdVersion> {
    let prefix = format!("{} version:", program.to_ascii_lowercase());
    output.lines().find_map(|line| {
        let lower = line.trim().to_ascii_lowercase();
        lower.strip_prefix(&prefix).and_then(EtcdVersion::parse)
    })
}

/// Runs `program args` and returns the version it prints for `label`
/// (stdout, then stderr). Errors say what ran and what it printed.
pub fn query_version(program: &Path, args: &[&str], label: &str) -> Result<EtcdVersion, String> {
    let output = Command::new(program)
        .args(args)
        .env("ETCDCTL_API", "3")
        .output()
        .map_err(|e| format!("cannot run {} {}: {e}", program.display(), args.join(" ")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    parse_version_output(label, &stdout)
        .or_else(|| parse_version_output(label, &stderr))
        .ok_or_else(|| {
            let shown: String = format!("{stdout}{stderr}")
                .trim()
                .chars()
                .take(200)
                .collect();
            format!(
                "{} {} printed no \"{label} version:\" line ({}): {shown:?}",
                program.display(),
                args.join(" "),
                output.status
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> EtcdVersion {
        EtcdVersion::parse(text).unwrap()
    }

    #[test]
    fn versions_parse_from_each_tools_output() {
        let etcd = "etcd Version: 3.6.15\nGit SHA: a334642\nGo Version: go1.26.8\n";
        assert_eq!(parse_version_output("etcd", etcd), Some(v("3.6.15")));
        let etcdutl = "etcdutl version: 3.5.30\nAPI version: 3.5\n";
        assert_eq!(parse_version_output("etcdutl", etcdutl), Some(v("3.5.30")));
        let etcdctl = "etcdctl version: 3.4.23\nAPI version: 3.4\n";
        assert_eq!(parse_version_output("etcdctl", etcdctl), Some(v("3.4.23")));
        // The API line is not the tool's version; another tool's line neither.
        assert_eq!(parse_version_output("etcdutl", etcdctl), None);
        assert_eq!(parse_version_output("etcd", "API version: 3.5"), None);
        assert_eq!(v("3.6.0-rc.1").series(), (3, 6));
        assert!(EtcdVersion::parse("three").is_none());
        assert!(EtcdVersion::parse("3").is_none());
    }
}
