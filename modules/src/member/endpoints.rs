//! The endpoint check `etcd_member` makes before anything is retried:
//! malformed endpoints and host names that never resolve fail at once
//! instead of after `wait_timeout` of retries.

use tokio::task::JoinSet;

use crate::connection::Connection;
use crate::protocol::Failure;

/// Checks the endpoints before anything is retried: a malformed endpoint
/// fails the task at once (bad input); a host name that does not resolve
/// (the resolver says so, not "try again") is dropped with a warning, and
/// fails the task at once when no endpoint is left.
pub(super) async fn usable_endpoints(conn: &mut Connection) -> Result<Vec<String>, Failure> {
    let mut bad = Vec::new();
    for endpoint in &conn.endpoints {
        if let Err(why) = endpoint_host(endpoint) {
            bad.push(format!("{endpoint}: {why}"));
        }
    }
    if !bad.is_empty() {
        return Err(Failure::new(format!(
            "argument 'endpoints' is invalid: {}",
            bad.join("; ")
        )));
    }
    let mut lookups = JoinSet::new();
    for endpoint in &conn.endpoints {
        let host = endpoint_host(endpoint).expect("checked above");
        let endpoint = endpoint.clone();
        if host.parse::<std::net::IpAddr>().is_ok() {
            continue;
        }
        let limit = conn.dial_timeout;
        lookups.spawn(async move {
            let lookup = tokio::task::spawn_blocking(move || resolves_never(&host));
            match tokio::time::timeout(limit, lookup).await {
                // A slow resolver is not a permanent answer.
                Ok(Ok(Some(why))) => Some((endpoint, why)),
                _ => None,
            }
        });
    }
    let mut unresolvable: Vec<(String, String)> = Vec::new();
    while let Some(joined) = lookups.join_next().await {
        if let Ok(Some(found)) = joined {
            unresolvable.push(found);
        }
    }
    if unresolvable.is_empty() {
        return Ok(Vec::new());
    }
    unresolvable.sort();
    let described: Vec<String> = unresolvable
        .iter()
        .map(|(e, why)| format!("{e}: host name does not resolve ({why})"))
        .collect();
    conn.endpoints
        .retain(|e| !unresolvable.iter().any(|(u, _)| u == e));
    if conn.endpoints.is_empty() {
        return Err(Failure::new(format!(
            "no endpoint can be reached: {}",
            described.join("; ")
        )));
    }
    Ok(described
        .into_iter()
        .map(|d| format!("endpoint skipped: {d}"))
        .collect())
}

/// The host of an `http(s)://host[:port][/]` endpoint, or why it is not one.
fn endpoint_host(endpoint: &str) -> Result<String, String> {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .ok_or("invalid URL: not http:// or https://")?;
    let authority = rest.split('/').next().unwrap_or_default();
    if rest.len() > authority.len() + 1 {
        return Err("invalid URL: a client URL has no path".into());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or("invalid URL: '[' without ']' around an IPv6 address")?;
        addr.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("invalid URL: {addr:?} is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or("invalid URL: unexpected text after the IPv6 address")?,
            ),
        };
        (addr.to_string(), port)
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        let host_char = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_';
        if host.is_empty() || !host.chars().all(host_char) {
            return Err(format!(
                "invalid URL: {host:?} is not a host name or address"
            ));
        }
        (host.to_string(), port)
    };
    if let Some(port) = port {
        if !port.parse::<u16>().is_ok_and(|p| p != 0) {
            return Err(format!("invalid port {port:?} (1-65535)"));
        }
    }
    Ok(host)
}

/// `Some(reason)` when the resolver answers that `host` has no address
/// (EAI_NONAME, EAI_FAIL); `None` when it resolves or the failure may pass
/// (EAI_AGAIN, a system error). By the resolver's error code, not its text.
fn resolves_never(host: &str) -> Option<String> {
    let c_host = std::ffi::CString::new(host).ok()?;
    // SAFETY: a zeroed addrinfo is a valid "no hints" value; getaddrinfo
    // gets a NUL-terminated host and a pointer to write its list to, which
    // is freed once when it is set.
    unsafe {
        let mut hints: libc::addrinfo = std::mem::zeroed();
        hints.ai_socktype = libc::SOCK_STREAM;
        let mut list: *mut libc::addrinfo = std::ptr::null_mut();
        let rc = libc::getaddrinfo(c_host.as_ptr(), std::ptr::null(), &hints, &mut list);
        if rc == 0 {
            if !list.is_null() {
                libc::freeaddrinfo(list);
            }
            return None;
        }
        if rc != libc::EAI_NONAME && rc != libc::EAI_FAIL {
            return None;
        }
        let text = std::ffi::CStr::from_ptr(libc::gai_strerror(rc));
        Some(text.to_string_lossy().into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked_before_any_retry() {
        assert_eq!(endpoint_host("http://10.0.0.1:2379").unwrap(), "10.0.0.1");
        assert_eq!(
            endpoint_host("https://etcd-1.example:2379/").unwrap(),
            "etcd-1.example"
        );
        assert_eq!(endpoint_host("http://[::1]:2379").unwrap(), "::1");
        assert_eq!(endpoint_host("http://host").unwrap(), "host");
        for (bad, why) in [
            ("http://127.0.0.1:99999", "invalid port"),
            ("http://127.0.0.1:", "invalid port"),
            ("http://a b:2379", "not a host name"),
            ("http://[::1:2379", "without ']'"),
            ("http://:2379", "not a host name"),
            ("http://h:2379/v3/x", "no path"),
        ] {
            let e = endpoint_host(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(resolves_never("nosuchhost.invalid").is_some());
        assert!(resolves_never("localhost").is_none());
    }
}
