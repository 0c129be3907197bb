//! `wait_for`: waits on the target until a TCP port opens, closes or drains, or a file appears,
//! disappears or holds `search_regex`, as ansible-core's module does. Runs as one polling shell
//! loop on the target; the regex is matched there (`grep -P` over the whole file, as Python's
//! `re.MULTILINE` search over bytes; `grep -E` where `grep -P` is missing) and its groups are
//! read here from the matched text.

use super::spec::{Arg, Check, Default, Kind};
use super::Params;
use super::{ActionCtx, ResultMap};
use crate::transport::{quote, TransportError};
use serde_json::{Map, Value};
use std::net::IpAddr;

/// `wait_for`'s argument spec.
pub const ARGS: Check = Check::Spec {
    name: None,
    args: &[
        Arg::new("active_connection_states", Kind::List).default(Default::List(&[
            "ESTABLISHED",
            "FIN_WAIT1",
            "FIN_WAIT2",
            "SYN_RECV",
            "SYN_SENT",
            "TIME_WAIT",
        ])),
        Arg::int("connect_timeout").default_int(5),
        Arg::int("delay").default_int(0),
        Arg::new("exclude_hosts", Kind::List),
        Arg::str("host").default_str("127.0.0.1"),
        Arg::str("msg"),
        Arg::path("path"),
        Arg::int("port"),
        Arg::str("search_regex"),
        Arg::int("sleep").default_int(1),
        Arg::str("state")
            .default_str("started")
            .choices(&["absent", "drained", "present", "started", "stopped"]),
        Arg::int("timeout").default_int(300),
    ],
    common: &[],
    exclusive: &[],
};

/// The `/proc/net/tcp` state codes of the connection states Ansible knows.
fn state_id(state: &str) -> Option<&'static str> {
    Some(match state {
        "ESTABLISHED" => "01",
        "SYN_SENT" => "02",
        "SYN_RECV" => "03",
        "FIN_WAIT1" => "04",
        "FIN_WAIT2" => "05",
        "TIME_WAIT" => "06",
        _ => return None,
    })
}

/// An address as `/proc/net/tcp*` writes it: each 4-byte word little-endian, in hex. An IPv4
/// address also gives its IPv4-mapped IPv6 form, as the module's `_convert_host_to_ip` does.
fn proc_hex(ip: IpAddr) -> Vec<String> {
    fn words(bytes: &[u8]) -> String {
        bytes
            .chunks(4)
            .map(|w| {
                w.iter()
                    .rev()
                    .map(|b| format!("{b:02X}"))
                    .collect::<String>()
            })
            .collect()
    }
    match ip {
        IpAddr::V4(v4) => vec![words(&v4.octets()), words(&v4.to_ipv6_mapped().octets())],
        IpAddr::V6(v6) => vec![words(&v6.octets())],
    }
}

/// A failed result as the module's early `fail_json` calls give it.
fn fail(msg: impl Into<String>, elapsed: u64) -> ResultMap {
    let mut m = super::failed(msg);
    m.insert("changed".into(), Value::Bool(false));
    m.insert("elapsed".into(), elapsed.into());
    m
}

/// A list argument as text items.
fn strings(p: &Params, name: &str) -> Option<Vec<String>> {
    p.value(name).map(|v| match v {
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| i.to_string())
            })
            .collect(),
        Value::Null => Vec::new(),
        other => vec![other
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| other.to_string())],
    })
}

/// Runs `wait_for`.
pub async fn run(ctx: &ActionCtx<'_>, p: &Params) -> Result<ResultMap, TransportError> {
    let host = p.str("host").unwrap_or_else(|| "127.0.0.1".into());
    let port = p.int("port");
    let path = p.str("path");
    let state = p.str("state").unwrap_or_else(|| "started".into());
    let timeout = p.int("timeout").unwrap_or(300).max(0) as u64;
    let delay = p.int("delay").unwrap_or(0).max(0) as u64;
    let sleep = p.int("sleep").unwrap_or(1).max(0) as u64;
    let connect_timeout = p.int("connect_timeout").unwrap_or(5).max(1) as u64;
    let regex = p.str("search_regex");
    let exclude = p
        .has("exclude_hosts")
        .then(|| strings(p, "exclude_hosts").unwrap_or_default());
    let states = strings(p, "active_connection_states").unwrap_or_default();

    // the module's own checks, in its order
    let compiled = match &regex {
        Some(re) => match regex::bytes::RegexBuilder::new(re)
            .multi_line(true)
            .unicode(false)
            .build()
        {
            Ok(c) => Some(c),
            Err(e) => {
                return Ok(fail(
                    format!(
                        "search_regex {re:?} is not a regular expression etcd-agent can read: {e}"
                    ),
                    0,
                ))
            }
        },
        None => None,
    };
    if port.is_some() && path.is_some() {
        return Ok(fail(
            "port and path parameter can not both be passed to wait_for",
            0,
        ));
    }
    if path.is_some() && state == "stopped" {
        return Ok(fail(
            "state=stopped should only be used for checking a port in the wait_for module",
            0,
        ));
    }
    if path.is_some() && state == "drained" {
        return Ok(fail(
            "state=drained should only be used for checking a port in the wait_for module",
            0,
        ));
    }
    if exclude.is_some() && state != "drained" {
        return Ok(fail("exclude_hosts should only be with state=drained", 0));
    }
    let mut state_ids = Vec::new();
    for s in &states {
        match state_id(s) {
            Some(id) => state_ids.push(id),
            None => {
                return Ok(fail(
                    format!("unknown active_connection_state ({s}) defined"),
                    0,
                ))
            }
        }
    }

    let start = std::time::Instant::now();
    if port.is_none() && path.is_none() && state != "drained" {
        // nothing to watch: the module sleeps the delay, then the timeout
        tokio::time::sleep(std::time::Duration::from_secs(delay + timeout)).await;
        return Ok(success(
            &state,
            port,
            &regex,
            Vec::new(),
            Map::new(),
            &path,
            start.elapsed().as_secs(),
        ));
    }

    let conn = ctx.connection().await?;
    let hq = quote(&host);
    // a TCP connection to host:port within connect_timeout (bash's /dev/tcp, else nc)
    let connect = |port: i64| {
        format!(
            "if command -v bash >/dev/null 2>&1; then timeout {connect_timeout} bash -c 'exec 3<>/dev/tcp/'{hq}'/{port}'; else nc -z -w {connect_timeout} {hq} {port}; fi"
        )
    };
    // Python's regex is nearer PCRE than ERE: `grep -P` where it exists; `(?m)` as re.MULTILINE
    let grep_setup = match &regex {
        Some(re) => format!(
            "if printf x | grep -qzP x 2>/dev/null; then P=1; else P=; fi; pre={}; ere={}; ",
            quote(&format!("(?m){re}")),
            quote(re)
        ),
        None => String::new(),
    };
    let (cond, found, what) = match (&state[..], port, &path) {
        ("drained", Some(port), None) => {
            let mut ips = Vec::new();
            for h in std::iter::once(&host).chain(exclude.iter().flatten()) {
                ips.push(resolve(ctx, &conn, h).await?);
            }
            // the host's addresses first, then the excluded hosts'
            let local: Vec<String> = ips[0].iter().flat_map(|ip| proc_hex(*ip)).collect();
            let excluded: Vec<String> = ips[1..].iter().flatten().flat_map(|ip| proc_hex(*ip)).collect();
            let count = format!(
                "awk -v port={port:04X} -v states=' {states} ' -v ips=' {local} ' -v excl=' {excl} ' 'FNR > 1 {{ split($2, l, \":\"); split($3, r, \":\"); if (l[2] != port || index(states, \" \" $4 \" \") == 0 || index(excl, \" \" r[1] \" \")) next; if (index(ips, \" \" l[1] \" \") || (length(l[1]) == 8 && index(ips, \" 00000000 \")) || (length(l[1]) == 32 && index(ips, \" 00000000000000000000000000000000 \")) || (substr(l[1], 1, 24) == \"0000000000000000FFFF0000\" && index(ips, \" 0000000000000000FFFF000000000000 \"))) n++ }} END {{ exit (n > 0) }}' /proc/net/tcp /proc/net/tcp6 2>/dev/null",
                states = state_ids.join(" "),
                local = local.join(" "),
                excl = excluded.join(" "),
            );
            (count, String::new(), format!("{host}:{port} to drain"))
        }
        ("drained", None, _) => return Ok(fail("state=drained needs port", 0)),
        ("stopped", Some(port), None) => (
            format!("! ( {} ) >/dev/null 2>&1", connect(port)),
            String::new(),
            format!("{host}:{port} to stop."),
        ),
        ("absent", None, Some(path)) => (
            format!("! test -e {}", quote(path)),
            String::new(),
            format!("{path} to be absent."),
        ),
        ("absent", Some(port), None) => (
            format!("! ( {} ) >/dev/null 2>&1", connect(port)),
            String::new(),
            format!("{host}:{port} to stop."),
        ),
        (_, Some(port), None) => match &regex {
            // read what the port sends until the regex matches or the peer closes
            Some(re) => (
                format!(
                    "( if command -v bash >/dev/null 2>&1; then timeout $(( e - $(date +%s) > 0 ? e - $(date +%s) : 1 )) bash -c 'exec 3<>/dev/tcp/'{hq}'/{port} || exit 2; if [ -n \"$1\" ]; then grep -qaP \"$2\" <&3; else grep -qaE \"$3\" <&3; fi' sh \"$P\" \"$pre\" \"$ere\"; else nc -w {connect_timeout} {hq} {port} </dev/null | if [ -n \"$P\" ]; then grep -qaP \"$pre\"; else grep -qaE \"$ere\"; fi; fi ) 2>/dev/null"
                ),
                String::new(),
                format!("search string {re} in {host}:{port}"),
            ),
            None => (
                format!("( {} ) >/dev/null 2>&1", connect(port)),
                String::new(),
                format!("{host}:{port}"),
            ),
        },
        (_, None, Some(path)) => match &regex {
            Some(re) => {
                let pq = quote(path);
                (
                    format!("if [ -n \"$P\" ]; then grep -qazP \"$pre\" {pq}; else grep -qaE \"$ere\" {pq}; fi 2>/dev/null"),
                    // the first match, as hex (it may hold any byte)
                    format!("if [ -n \"$P\" ]; then grep -aozP -m1 \"$pre\" {pq} | head -zn1 | tr -d '\\000'; else grep -aoE -m1 \"$ere\" {pq} | head -n1; fi 2>/dev/null | od -An -v -tx1 | tr -d ' \\n'"),
                    format!("search string {re} in {path}"),
                )
            }
            None => (
                format!("test -e {}", quote(path)),
                String::new(),
                format!("file {path}"),
            ),
        },
        _ => return Ok(fail("wait_for needs exactly one of port or path", 0)),
    };
    let found = if found.is_empty() {
        ":".to_string()
    } else {
        found
    };
    // The deadline is a background `sleep`; `e` (whole seconds) only bounds a socket read.
    let script = format!(
        "{grep_setup}s=$(date +%s%N); sleep {delay}; e=$(( $(date +%s) + {timeout} )); sleep {timeout} & t=$!; el() {{ echo $(( ($(date +%s%N) - s) / 1000000000 )); }}; while :; do if {cond}; then kill $t 2>/dev/null; el; {found}; exit 0; fi; if ! kill -0 $t 2>/dev/null; then el; exit 1; fi; sleep {sleep}; done"
    );
    let out = ctx
        .exec_then(
            &conn,
            &script,
            None,
            None,
            Some(std::time::Duration::from_secs(timeout + delay + 30)),
        )
        .await?;
    let text = out.stdout_text();
    let mut lines = text.lines();
    // the whole seconds the target counted (as the module counts them there), else ours
    let elapsed = lines
        .next()
        .and_then(|l| l.trim().parse::<u64>().ok())
        .unwrap_or_else(|| start.elapsed().as_secs());
    if out.rc != 0 {
        let msg = p
            .str("msg")
            .unwrap_or_else(|| format!("Timeout when waiting for {what}"));
        return Ok(fail(msg, elapsed));
    }
    let (mut groups, mut groupdict) = (Vec::new(), Map::new());
    if let (Some(re), Some(hex)) = (&compiled, lines.next()) {
        let matched = unhex(hex.trim());
        if let Some(caps) = re.captures(&matched) {
            let text = |m: Option<regex::bytes::Match>| match m {
                Some(m) => Value::String(String::from_utf8_lossy(m.as_bytes()).into_owned()),
                None => Value::Null,
            };
            groups = caps.iter().skip(1).map(text).collect();
            for name in re.capture_names().flatten() {
                groupdict.insert(name.to_string(), text(caps.name(name)));
            }
        }
    }
    Ok(success(
        &state, port, &regex, groups, groupdict, &path, elapsed,
    ))
}

/// The module's result on success.
fn success(
    state: &str,
    port: Option<i64>,
    regex: &Option<String>,
    groups: Vec<Value>,
    groupdict: Map<String, Value>,
    path: &Option<String>,
    elapsed: u64,
) -> ResultMap {
    let mut m = Map::new();
    m.insert("changed".into(), Value::Bool(false));
    m.insert("elapsed".into(), elapsed.into());
    m.insert("state".into(), state.into());
    m.insert("port".into(), port.map(Value::from).unwrap_or(Value::Null));
    m.insert(
        "path".into(),
        path.clone().map(Value::from).unwrap_or(Value::Null),
    );
    m.insert(
        "search_regex".into(),
        regex.clone().map(Value::from).unwrap_or(Value::Null),
    );
    m.insert("match_groups".into(), Value::Array(groups));
    m.insert("match_groupdict".into(), Value::Object(groupdict));
    m
}

/// Bytes from the hex `od` wrote.
fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect()
}

/// The addresses of `host` as the target resolves it (`getent ahosts`); an address as itself.
async fn resolve(
    ctx: &ActionCtx<'_>,
    conn: &crate::transport::Connection,
    host: &str,
) -> Result<Vec<IpAddr>, TransportError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let out = ctx
        .exec(conn, &format!("getent ahosts {}", quote(host)), None)
        .await?;
    let mut ips: Vec<IpAddr> = Vec::new();
    for ip in out
        .stdout_text()
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
    {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    if ips.is_empty() {
        return Err(TransportError::Failed(format!(
            "wait_for: cannot resolve {host} on the target"
        )));
    }
    Ok(ips)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_proc_net_tcp_writes_them() {
        assert_eq!(
            proc_hex("127.0.0.1".parse().unwrap()),
            ["0100007F", "0000000000000000FFFF00000100007F"]
        );
        assert_eq!(
            proc_hex("::1".parse().unwrap()),
            ["00000000000000000000000001000000"]
        );
        assert_eq!(unhex("636f6d706c65746564"), b"completed");
    }
}
