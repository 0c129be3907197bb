//! `setup` (Gathering Facts): a documented fact set collected with one shell command, with the
//! values Ansible's `setup` gives on the same host.
//!
//! Facts: `ansible_hostname`, `ansible_nodename`, `ansible_fqdn`, `ansible_domain`,
//! `ansible_system`, `ansible_kernel`, `ansible_architecture`, `ansible_machine`,
//! `ansible_distribution`, `ansible_distribution_version`,
//! `ansible_distribution_major_version`, `ansible_distribution_release`, `ansible_os_family`,
//! `ansible_pkg_mgr`, `ansible_processor_vcpus`, `ansible_memtotal_mb`, `ansible_date_time`,
//! `ansible_user_id`, `ansible_user_dir`, `ansible_env` (`HOME`, `PATH`, `USER`, `SHELL`),
//! `ansible_python` and `ansible_python_version` (the target's `python3`, when it has one), and
//! the network facts of [`network`]: `ansible_interfaces`, `ansible_<interface>`,
//! `ansible_default_ipv4`/`_ipv6`, `ansible_all_ipv4_addresses`/`_ipv6_addresses`,
//! `ansible_locally_reachable_ips`.
//!
//! Where they are found differently from Ansible: `ansible_processor_vcpus` counts
//! `/proc/cpuinfo`'s processors.

use super::spec::{Arg, Check, Default, Kind};
use super::Params;
use super::{ActionCtx, ResultMap};
use crate::transport::TransportError;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

/// `setup`'s argument spec: facts are gathered as listed in the README, all at once.
pub const ARGS: Check = Check::Spec {
    name: None,
    args: &[
        Arg::path("fact_path")
            .default_str("/etc/ansible/facts.d")
            .unimplemented(),
        Arg::new("filter", Kind::List)
            .default(Default::List(&[]))
            .unimplemented(),
        Arg::new("gather_subset", Kind::List)
            .default(Default::List(&["all"]))
            .unimplemented(),
        Arg::int("gather_timeout").default_int(10).unimplemented(),
    ],
    common: &[],
    exclusive: &[],
};

mod network;

/// Prints `key=value` lines, in the C locale (as Ansible's module runs). One `date` call gives
/// every local time field, so they agree.
const SCRIPT: &str = r#"LC_ALL=C; export LC_ALL
echo "hostname=$(hostname -s 2>/dev/null || hostname)"
echo "nodename=$(uname -n)"
h=$(hostname)
ip=$(getent hosts "$h" 2>/dev/null | awk '{print $1; exit}')
echo "reverse_names=$( [ -n "$ip" ] && getent hosts "$ip" 2>/dev/null | awk '{$1=""; print; exit}')"
echo "system=$(uname -s)"
echo "kernel=$(uname -r)"
echo "machine=$(uname -m)"
echo "user_id=$(id -un)"
echo "user_dir=$HOME"
echo "env_HOME=$HOME"
echo "env_PATH=$PATH"
echo "env_USER=${USER:-$(id -un)}"
echo "env_SHELL=$SHELL"
if [ -r /etc/os-release ]; then . /etc/os-release; echo "distribution=$NAME"; echo "distribution_version=$VERSION_ID"; echo "os_id=$ID"; echo "os_like=$ID_LIKE"; echo "codename=${VERSION_CODENAME:-$UBUNTU_CODENAME}"; fi
[ -r /etc/debian_version ] && echo "debian_version=$(head -n 1 /etc/debian_version)"
for p in /usr/bin/apt-get:apt /usr/bin/dnf:dnf /usr/bin/yum:yum /usr/bin/zypper:zypper /sbin/apk:apk /usr/bin/pacman:pacman; do
  if [ -x "${p%%:*}" ]; then echo "pkg_mgr=${p#*:}"; break; fi
done
echo "vcpus=$(grep -c '^processor' /proc/cpuinfo 2>/dev/null)"
echo "memtotal_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null)"
echo "date=$(date '+%s|%N|%Y|%m|%d|%H|%M|%S|%z|%A|%w|%W|%Z')"
echo "tz_jan=$(date -d "$(date +%Y)-01-01 12:00" '+%z %Z' 2>/dev/null)"
echo "tz_jul=$(date -d "$(date +%Y)-07-01 12:00" '+%z %Z' 2>/dev/null)"
for py in python3 /usr/bin/python3 python; do
  if command -v "$py" >/dev/null 2>&1; then
    echo "python=$("$py" -c 'import sys, json; v = sys.version_info; print(json.dumps({"executable": sys.executable, "type": sys.implementation.name, "version": {"major": v[0], "minor": v[1], "micro": v[2], "releaselevel": v[3], "serial": v[4]}, "version_info": list(v), "has_sslcontext": True}))' 2>/dev/null)"
    break
  fi
done
"#;

/// Runs `setup`.
pub async fn run(ctx: &ActionCtx<'_>, _p: &Params) -> Result<ResultMap, TransportError> {
    let conn = ctx.connection().await?;
    let script = [SCRIPT, network::SCRIPT].concat();
    let out = conn.exec(&script, None, None).await?;
    if out.rc != 0 {
        return Ok(super::failed(format!(
            "fact gathering failed: {}",
            out.stderr_text().trim()
        )));
    }
    let facts = parse(&out.stdout_text());
    let prefixed: Map<String, Value> = facts
        .into_iter()
        .map(|(k, v)| (format!("ansible_{k}"), v))
        .collect();
    let mut m = Map::new();
    m.insert("ansible_facts".into(), Value::Object(prefixed));
    m.insert("changed".into(), Value::Bool(false));
    Ok(m)
}

/// The script's lines, as they are printed.
struct Raw {
    lines: Vec<(String, String)>,
}

impl Raw {
    fn get(&self, key: &str) -> Option<&str> {
        first_value(&self.lines, key).filter(|v| !v.is_empty())
    }
}

/// The value of the first `key=value` pair named `key`.
fn first_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Facts (without the `ansible_` prefix) from the script's output.
fn parse(stdout: &str) -> Map<String, Value> {
    let raw = Raw {
        lines: stdout
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let mut facts = Map::new();
    let mut env = Map::new();
    for (k, v) in &raw.lines {
        if let Some(name) = k.strip_prefix("env_") {
            env.insert(name.to_string(), v.as_str().into());
        }
    }
    for key in [
        "hostname", "nodename", "system", "kernel", "machine", "user_id", "user_dir",
    ] {
        facts.insert(key.into(), raw.get(key).unwrap_or_default().into());
    }
    if let Some(m) = raw.get("machine") {
        facts.insert("architecture".into(), m.into());
    }
    // Python's socket.getfqdn(): the first name of the host's address that has a dot in it,
    // else that address's first name
    let hostname = raw.get("hostname").unwrap_or_default();
    let names: Vec<&str> = raw
        .get("reverse_names")
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let fqdn = names
        .iter()
        .find(|n| n.contains('.'))
        .or(names.first())
        .copied()
        .unwrap_or(hostname);
    facts.insert("fqdn".into(), fqdn.into());
    facts.insert(
        "domain".into(),
        fqdn.split_once('.').map_or("", |(_, d)| d).into(),
    );
    distribution(&raw, &mut facts);
    facts.insert(
        "pkg_mgr".into(),
        raw.get("pkg_mgr").unwrap_or("unknown").into(),
    );
    if let Some(n) = raw.get("vcpus").and_then(|v| v.parse::<u64>().ok()) {
        facts.insert("processor_vcpus".into(), n.into());
    }
    if let Some(kb) = raw.get("memtotal_kb").and_then(|v| v.parse::<u64>().ok()) {
        facts.insert("memtotal_mb".into(), (kb / 1024).into());
    }
    if let Some(dt) = raw.get("date").and_then(|d| date_time(d, &raw)) {
        facts.insert("date_time".into(), dt);
    }
    facts.insert("env".into(), Value::Object(env));
    // the target's Python, as the setup module reports the interpreter it ran under
    if let Some(Ok(Value::Object(py))) = raw.get("python").map(serde_json::from_str::<Value>) {
        if py.contains_key("executable") {
            facts.insert("python_version".into(), python_version(&py).into());
            facts.insert("python".into(), Value::Object(py));
        }
    }
    // an interface named like another fact does not replace it
    for (k, v) in network::facts(&raw.lines) {
        facts.entry(k).or_insert(v);
    }
    facts
}

/// `ansible_python_version`: `major.minor.micro`.
fn python_version(py: &Map<String, Value>) -> String {
    let part = |k: &str| {
        py.get("version")
            .and_then(|v| v.get(k))
            .map(crate::jinja::value::scalar_string)
            .unwrap_or_default()
    };
    format!("{}.{}.{}", part("major"), part("minor"), part("micro"))
}

fn distribution(raw: &Raw, facts: &mut Map<String, Value>) {
    let os_id = raw.get("os_id").unwrap_or_default();
    let os_like = raw.get("os_like").unwrap_or_default();
    if let Some(name) = raw.get("distribution") {
        let short = name.split_whitespace().next().unwrap_or(name);
        facts.insert("distribution".into(), short.into());
    }
    // Debian's os-release has the major version only; Ansible reads the point release
    let version = match raw.get("debian_version") {
        Some(v) if os_id == "debian" && v.starts_with(|c: char| c.is_ascii_digit()) => Some(v),
        _ => raw.get("distribution_version"),
    };
    if let Some(v) = version {
        facts.insert("distribution_version".into(), v.into());
        let major = v.split('.').next().unwrap_or(v);
        facts.insert("distribution_major_version".into(), major.into());
    }
    if let Some(codename) = raw.get("codename") {
        facts.insert("distribution_release".into(), codename.into());
    }
    let family = match (os_id, os_like) {
        ("debian" | "ubuntu", _) => "Debian",
        (_, l) if l.contains("debian") => "Debian",
        ("rhel" | "centos" | "fedora" | "rocky" | "almalinux", _) => "RedHat",
        (_, l) if l.contains("rhel") || l.contains("fedora") => "RedHat",
        ("alpine", _) => "Alpine",
        ("arch", _) => "Archlinux",
        _ => "",
    };
    if !family.is_empty() {
        facts.insert("os_family".into(), family.into());
    }
}

/// `ansible_date_time` from `date '+%s|%N|%Y|%m|%d|%H|%M|%S|%z|%A|%w|%W|%Z'`: local fields as
/// the host's `date` gives them, the `iso8601*` UTC ones from the same instant.
fn date_time(line: &str, raw: &Raw) -> Option<Value> {
    let f: Vec<&str> = line.splitn(13, '|').collect();
    let [epoch, nanos, year, month, day, hour, minute, second, offset, weekday, wday, week, tz] =
        f[..]
    else {
        return None;
    };
    let epoch_secs: i64 = epoch.parse().ok()?;
    // `%N` is GNU's; other dates print it as is
    let micros: u32 = nanos
        .get(..6)
        .and_then(|n| n.parse().ok())
        .unwrap_or_default();
    let utc: DateTime<Utc> = DateTime::from_timestamp(epoch_secs, micros * 1000)?;
    // Python's time.tzname[1]: the zone's daylight-saving name, its standard one if it has none
    let tz_dst = [raw.get("tz_jan"), raw.get("tz_jul")]
        .into_iter()
        .flatten()
        .filter_map(|s| s.split_once(' '))
        .max_by_key(|(off, _)| off.parse::<i32>().unwrap_or(i32::MIN))
        .map_or(tz, |(_, name)| name);
    Some(json!({
        "date": format!("{year}-{month}-{day}"),
        "day": day,
        "epoch": epoch,
        "epoch_int": epoch,
        "hour": hour,
        "iso8601": utc.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "iso8601_basic": format!("{year}{month}{day}T{hour}{minute}{second}{micros:06}"),
        "iso8601_basic_short": format!("{year}{month}{day}T{hour}{minute}{second}"),
        "iso8601_micro": utc.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        "minute": minute,
        "month": month,
        "second": second,
        "time": format!("{hour}:{minute}:{second}"),
        "tz": tz,
        "tz_dst": tz_dst,
        "tz_offset": offset,
        "weekday": weekday,
        "weekday_number": wday,
        "weeknumber": week,
        "year": year,
    }))
}

#[cfg(test)]
mod tests {
    use super::parse;
    use serde_json::json;

    #[test]
    fn facts_from_a_debian_host() {
        let out = "hostname=vm\nnodename=vm\nreverse_names= localhost\nsystem=Linux\n\
kernel=6.1\nmachine=x86_64\nuser_id=root\nuser_dir=/root\nenv_HOME=/root\n\
distribution=Debian GNU/Linux\ndistribution_version=12\nos_id=debian\nos_like=\n\
codename=bookworm\ndebian_version=12.11\npkg_mgr=apt\nvcpus=2\nmemtotal_kb=24683460\n\
date=1796134210|306228123|2026|12|01|15|10|10|+0100|Tuesday|2|48|CET\n\
tz_jan=+0100 CET\ntz_jul=+0200 CEST\n\
route4=8.8.8.8 via 192.0.2.1 dev eth0 src 192.0.2.2 uid 0\n\
dev=eth0\nsys_address=02:fc:00:00:00:01\nsys_mtu=1400\nsys_type=1\n\
ip=2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1400\n\
ip=inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\n";
        let f = parse(out);
        assert_eq!(f["fqdn"], "localhost");
        assert_eq!(f["domain"], "");
        assert_eq!(f["distribution"], "Debian");
        assert_eq!(f["distribution_version"], "12.11");
        assert_eq!(f["distribution_major_version"], "12");
        assert_eq!(f["distribution_release"], "bookworm");
        assert_eq!(f["os_family"], "Debian");
        assert_eq!(f["pkg_mgr"], "apt");
        assert_eq!(f["processor_vcpus"], 2);
        assert_eq!(f["memtotal_mb"], 24104);
        let dt = &f["date_time"];
        assert_eq!(dt["date"], "2026-12-01");
        assert_eq!(dt["time"], "15:10:10");
        assert_eq!(dt["iso8601"], "2026-12-01T14:10:10Z");
        assert_eq!(dt["iso8601_micro"], "2026-12-01T14:10:10.306228Z");
        assert_eq!(dt["iso8601_basic"], "20261201T151010306228");
        assert_eq!(dt["tz"], "CET");
        assert_eq!(dt["tz_dst"], "CEST");
        // network facts in detail: network.rs's tests
        assert_eq!(f["default_ipv4"]["address"], "192.0.2.2");
        assert_eq!(f["all_ipv4_addresses"], json!(["192.0.2.2"]));
        assert_eq!(f["eth0"]["ipv4"]["address"], "192.0.2.2");
    }

    #[test]
    fn a_host_without_ip_or_gnu_date_gets_what_can_be_had() {
        let out = "hostname=box\nreverse_names=\ndate=1796134210|N|2026|12|01|14|10|10|+0000|Tuesday|2|48|UTC\ntz_jan=\ntz_jul=\n";
        let f = parse(out);
        assert_eq!(f["fqdn"], "box");
        assert_eq!(f["pkg_mgr"], "unknown");
        assert_eq!(f["default_ipv4"], json!({}));
        assert_eq!(f["all_ipv4_addresses"], json!([]));
        assert_eq!(
            f["date_time"]["iso8601_micro"],
            "2026-12-01T14:10:10.000000Z"
        );
        assert_eq!(f["date_time"]["tz_dst"], "UTC");
    }
}
