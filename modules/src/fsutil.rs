//! File-system helpers shared by `etcd_snapshot` and `etcd_restore`: file
//! modes as Ansible writes them, owners and groups by name or id, directory
//! fsync and file locks.

use std::fs::File;
use std::path::Path;

/// A file mode from Ansible's `mode`: an octal string (`"0600"`, `"600"`)
/// or a number (YAML reads an unquoted `0600` as octal, i.e. 384).
pub fn parse_mode(value: &serde_json::Value) -> Result<u32, String> {
    let mode = match value {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        serde_json::Value::String(s) => {
            let s = s.trim();
            let digits = s.strip_prefix("0o").unwrap_or(s);
            u32::from_str_radix(digits, 8).ok()
        }
        _ => None,
    };
    mode.filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("mode {value} is not an octal file mode such as \"0600\""))
}

/// A user or group given by name or number, as a string (YAML may give a number).
pub fn id_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Resolves `owner` to a uid (a number, or a name looked up with getpwnam_r).
pub fn resolve_user(owner: &str) -> Result<u32, String> {
    if let Ok(uid) = owner.parse() {
        return Ok(uid);
    }
    let name = std::ffi::CString::new(owner).map_err(|_| format!("bad user name {owner:?}"))?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: getpwnam_r writes into `pwd` and `buf`, both live and sized as passed.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        );
        if rc == 0 && !found.is_null() {
            return Ok(pwd.pw_uid);
        }
    }
    Err(format!("user {owner:?} does not exist on this host"))
}

/// Resolves `group` to a gid (a number, or a name looked up with getgrnam_r).
pub fn resolve_group(group: &str) -> Result<u32, String> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    let name = std::ffi::CString::new(group).map_err(|_| format!("bad group name {group:?}"))?;
    let mut buf = vec![0 as libc::c_char; 64 * 1024];
    // SAFETY: getgrnam_r writes into `grp` and `buf`, both live and sized as passed.
    unsafe {
        let mut grp: libc::group = std::mem::zeroed();
        let mut found: *mut libc::group = std::ptr::null_mut();
        let rc = libc::getgrnam_r(
            name.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        );
        if rc == 0 && !found.is_null() {
            return Ok(grp.gr_gid);
        }
    }
    Err(format!("group {group:?} does not exist on this host"))
}

/// fsyncs a directory, so a rename inside it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<(), String> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot fsync directory {}: {e}", dir.display()))
}

/// Takes an exclusive `flock` on `file`; with `wait == false` returns
/// `Ok(false)` instead of waiting when someone else holds it.
pub fn lock_file(file: &File, wait: bool) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let op = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_like_ansible() {
        use serde_json::json;
        assert_eq!(parse_mode(&json!("0600")), Ok(0o600));
        assert_eq!(parse_mode(&json!("640")), Ok(0o640));
        assert_eq!(parse_mode(&json!(384)), Ok(0o600));
        assert!(parse_mode(&json!("u+rw")).is_err());
    }
}
