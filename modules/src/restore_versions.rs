//! Which etcd versions a restore involves, and whether they fit together:
//! the server that will run on the restored data dir (`etcd --version`) and
//! the restore tool (`etcdutl version` / `etcdctl version`).
//!
//! Two rules, both checked before anything is changed:
//! - etcd 3.6 removed `etcdctl snapshot restore`, and a data dir written by
//!   etcd 3.4's etcdctl does not start under 3.6: a 3.6 server needs
//!   etcdutl.
//! - A server refuses data written by a newer version (the storage version
//!   recorded in the database): the tool must not be newer (major.minor)
//!   than the server.

use crate::etcd_version::EtcdVersion;

/// Why a restore tool does not fit the server, if it does not.
/// `tool_is_etcdutl` tells which tool it is; `tool` may be unknown (a tool
/// that printed no version is not refused for it).
pub fn refusal(
    server: &EtcdVersion,
    tool_is_etcdutl: bool,
    tool: Option<&EtcdVersion>,
) -> Option<String> {
    let tool_name = if tool_is_etcdutl {
        "etcdutl"
    } else {
        "etcdctl"
    };
    if server.needs_etcdutl() && !tool_is_etcdutl {
        return Some(format!(
            "the server is etcd {server}, which needs etcdutl for the restore: etcd 3.6 removed `etcdctl snapshot restore`, and a data dir restored by etcdctl does not start under it; install etcdutl or set etcdutl_path"
        ));
    }
    match tool {
        Some(tool) if tool.series() > server.series() => Some(format!(
            "{tool_name} {tool} is newer than the server etcd {server}: etcd refuses to start on data written by a newer version; restore with the {tool_name} of etcd {}.{} (or older)",
            server.major, server.minor
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> EtcdVersion {
        EtcdVersion::parse(text).unwrap()
    }

    #[test]
    fn a_36_server_needs_etcdutl_and_no_tool_may_be_newer() {
        // 3.4 and 3.5 servers: etcdctl of the same series is fine.
        assert_eq!(refusal(&v("3.4.23"), false, Some(&v("3.4.23"))), None);
        assert_eq!(refusal(&v("3.5.30"), false, Some(&v("3.5.30"))), None);
        // An older etcdutl for a newer server: fine (3.5.30's restores start on 3.6).
        assert_eq!(refusal(&v("3.6.15"), true, Some(&v("3.5.30"))), None);
        assert_eq!(refusal(&v("3.6.15"), true, None), None);
        // etcdctl for 3.6: refused, whatever its version.
        let why = refusal(&v("3.6.15"), false, Some(&v("3.4.23"))).unwrap();
        assert!(why.contains("needs etcdutl"), "{why}");
        // A newer tool than the server: refused with both versions named.
        let why = refusal(&v("3.5.30"), true, Some(&v("3.6.15"))).unwrap();
        assert!(
            why.contains("etcdutl 3.6.15 is newer than the server etcd 3.5.30"),
            "{why}"
        );
        let why = refusal(&v("3.4.23"), false, Some(&v("3.5.30"))).unwrap();
        assert!(why.contains("etcdctl 3.5.30 is newer"), "{why}");
        // Patch releases of one series do not matter.
        assert_eq!(refusal(&v("3.5.25"), true, Some(&v("3.5.30"))), None);
    }
}
