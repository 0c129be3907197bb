//! Network facts, found as Ansible's Linux collector finds them: `ansible_interfaces`, one
//! `ansible_<interface>` per interface (`:` in a name becomes `_`), `ansible_default_ipv4`,
//! `ansible_default_ipv6`, `ansible_all_ipv4_addresses`, `ansible_all_ipv6_addresses` and
//! `ansible_locally_reachable_ips`.
//!
//! The default interfaces come from the kernel's route to a public address (`ip route get`,
//! which sends nothing); interfaces from `/sys/class/net` in directory order, with the
//! sysfs attributes Ansible reads; addresses from one `ip addr show`, each interface's primary
//! addresses before its secondary ones (Ansible runs `ip addr show primary|secondary dev X`
//! for each interface: same result, two processes an interface fewer). `ethtool` features
//! and timestamping are added where `ethtool` is installed, as Ansible does.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// The shell part that prints what [`facts`] reads. sysfs files are read with the `read`
/// builtin: no process per file.
pub(super) const SCRIPT: &str = r#"if command -v ip >/dev/null 2>&1; then
  echo "route4=$(ip -4 route get 8.8.8.8 2>/dev/null | head -n 1)"
  echo "route6=$(ip -6 route get 2404:6800:400a:800::1012 2>/dev/null | head -n 1)"
  et=
  for p in $(echo "$PATH:/sbin:/usr/sbin:/usr/local/sbin" | tr ':' ' '); do
    [ -x "$p/ethtool" ] && { et=$p/ethtool; break; }
  done
  for n in $(ls -U /sys/class/net 2>/dev/null || ls /sys/class/net 2>/dev/null); do
    d=/sys/class/net/$n
    [ -d "$d" ] || continue
    echo "dev=$n"
    for f in address mtu operstate type speed flags bridge/bridge_id bridge/stp_state \
      bonding/slaves bonding/mode bonding/miimon bonding/lacp_rate bonding/primary \
      bonding/all_slaves_active bonding_slave/perm_hwaddr; do
      if [ -e "$d/$f" ]; then v=; read -r v 2>/dev/null < "$d/$f"; echo "sys_$f=$v"; fi
    done
    [ -e "$d/bridge" ] && echo "sys_bridge=$(ls "$d/brif" 2>/dev/null | tr '\n' ' ')"
    [ -e "$d/bonding" ] && echo "sys_bonding=1"
    [ -e "$d/device" ] && l=$(readlink "$d/device") && echo "sys_pciid=${l##*/}"
    [ -e "$d/device/driver/module" ] && l=$(readlink -f "$d/device/driver/module") && echo "sys_module=${l##*/}"
    if [ -n "$et" ]; then
      o=$("$et" -k "$n" 2>/dev/null) && { echo "ethtool_k=1"; printf '%s\n' "$o" | sed 's/^/ethtool_k=/'; }
      o=$("$et" -T "$n" 2>/dev/null) && { echo "ethtool_t=1"; printf '%s\n' "$o" | sed 's/^/ethtool_t=/'; }
    fi
  done
  ip addr show 2>/dev/null | sed -n 's/^\([0-9]\)/ip=\1/p; s/^ *\(inet\)/ip=\1/p'
  ip -4 route show table local 2>/dev/null | sed 's/^/local=/'
  ip -6 route show table local 2>/dev/null | sed 's/^/local=/'
fi
"#;

/// One interface's sysfs attributes, as the script printed them (`None`: the file is absent).
#[derive(Default)]
struct Sysfs {
    name: String,
    attrs: Vec<(String, String)>,
    ethtool_k: Option<Vec<String>>,
    ethtool_t: Option<Vec<String>>,
}

impl Sysfs {
    fn get(&self, attr: &str) -> Option<&str> {
        super::first_value(&self.attrs, attr).map(str::trim)
    }

    /// The value the way Ansible's `get_file_content` gives it: absent and empty alike.
    fn content(&self, attr: &str) -> Option<&str> {
        self.get(attr).filter(|v| !v.is_empty())
    }
}

/// Which addresses `ip addr show` lists for an interface, primary before secondary.
#[derive(Default)]
struct Addresses {
    primary: Vec<String>,
    secondary: Vec<String>,
}

/// The network facts (without the `ansible_` prefix) from the script's `key=value` lines.
pub(super) fn facts(lines: &[(String, String)]) -> Vec<(String, Value)> {
    let mut route4 = "";
    let mut route6 = "";
    let mut devices: Vec<Sysfs> = Vec::new();
    let mut addresses: BTreeMap<String, Addresses> = BTreeMap::new();
    let mut ip_device = String::new();
    let mut local: Vec<&str> = Vec::new();
    for (k, v) in lines {
        match k.as_str() {
            "route4" => route4 = v,
            "route6" => route6 = v,
            "dev" => devices.push(Sysfs {
                name: v.clone(),
                ..Sysfs::default()
            }),
            "ethtool_k" | "ethtool_t" => {
                let Some(dev) = devices.last_mut() else {
                    continue;
                };
                let out = if k == "ethtool_k" {
                    &mut dev.ethtool_k
                } else {
                    &mut dev.ethtool_t
                };
                // the first line says the command succeeded; the rest is its output
                match out {
                    None => *out = Some(Vec::new()),
                    Some(o) => o.push(v.clone()),
                }
            }
            "ip" => {
                let line = v.trim_start();
                if line.starts_with(|c: char| c.is_ascii_digit()) {
                    // `2: eth0@if5: <BROADCAST,...> mtu ...`
                    let name = line.split(": ").nth(1).unwrap_or_default();
                    ip_device = name.split('@').next().unwrap_or(name).to_string();
                } else {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    // `primary`/`secondary` filter on one flag, which IPv6 prints as `temporary`
                    let secondary = words.iter().any(|w| *w == "secondary" || *w == "temporary");
                    let entry = addresses.entry(ip_device.clone()).or_default();
                    let list = if secondary {
                        &mut entry.secondary
                    } else {
                        &mut entry.primary
                    };
                    list.push(line.to_string());
                }
            }
            "local" => local.push(v),
            _ => {
                if let (Some(attr), Some(dev)) = (k.strip_prefix("sys_"), devices.last_mut()) {
                    dev.attrs.push((attr.to_string(), v.clone()));
                }
            }
        }
    }

    let mut default_ipv4 = default_interface(route4, "8.8.8.8");
    let mut default_ipv6 = default_interface(route6, "2404:6800:400a:800::1012");
    let mut collector = Collector {
        interfaces: BTreeMap::new(),
        all_ipv4: Vec::new(),
        all_ipv6: Vec::new(),
    };
    for dev in &devices {
        collector
            .interfaces
            .insert(dev.name.clone(), sysfs_facts(dev));
        let ip = addresses.remove(&dev.name).unwrap_or_default();
        for (lines, secondary) in [(&ip.primary, false), (&ip.secondary, true)] {
            for line in lines {
                collector.address(dev, line, secondary, &mut default_ipv4, &mut default_ipv6);
            }
        }
        if let Some(iface) = collector.interfaces.get_mut(&dev.name) {
            ethtool_facts(dev, iface);
        }
    }

    let mut facts = Vec::new();
    let interfaces: BTreeMap<String, Map<String, Value>> = collector
        .interfaces
        .into_iter()
        .map(|(name, iface)| (name.replace(':', "_"), iface))
        .collect();
    facts.push((
        "interfaces".to_string(),
        interfaces.keys().cloned().collect::<Vec<_>>().into(),
    ));
    for (name, iface) in interfaces {
        facts.push((name, sorted(iface)));
    }
    facts.push(("default_ipv4".into(), sorted(default_ipv4)));
    facts.push(("default_ipv6".into(), sorted(default_ipv6)));
    facts.push(("all_ipv4_addresses".into(), collector.all_ipv4.into()));
    facts.push(("all_ipv6_addresses".into(), collector.all_ipv6.into()));
    facts.push(("locally_reachable_ips".into(), locally_reachable(&local)));
    facts
}

/// `interface`, `address` and `gateway` from the first line of `ip route get <target>`.
fn default_interface(route: &str, target: &str) -> Map<String, Value> {
    let words: Vec<&str> = route.split_whitespace().collect();
    let mut found = Map::new();
    if words.first() != Some(&target) {
        return found;
    }
    for pair in words.windows(2) {
        match pair[0] {
            "dev" => found.insert("interface".into(), pair[1].into()),
            "src" => found.insert("address".into(), pair[1].into()),
            "via" if pair[1] != target => found.insert("gateway".into(), pair[1].into()),
            _ => None,
        };
    }
    found
}

/// The facts read from sysfs alone.
fn sysfs_facts(dev: &Sysfs) -> Map<String, Value> {
    let mut iface = Map::new();
    iface.insert("device".into(), dev.name.as_str().into());
    if let Some(mac) = dev.content("address").filter(|m| *m != "00:00:00:00:00:00") {
        iface.insert("macaddress".into(), mac.into());
    }
    if let Some(mtu) = dev.content("mtu").and_then(|m| m.parse::<i64>().ok()) {
        iface.insert("mtu".into(), mtu.into());
    }
    if dev.get("operstate").is_some() {
        iface.insert(
            "active".into(),
            (dev.content("operstate") != Some("down")).into(),
        );
    }
    if let Some(module) = dev.get("module") {
        iface.insert("module".into(), module.into());
    }
    if dev.get("type").is_some() {
        // /sys/class/net/*/type holds the ARPHRD number
        let kind = match dev.content("type") {
            Some("1") => "ether",
            Some("32") => "infiniband",
            Some("512") => "ppp",
            Some("772") => "loopback",
            Some("65534") => "tunnel",
            _ => "unknown",
        };
        iface.insert("type".into(), kind.into());
    }
    if let Some(members) = dev.get("bridge") {
        iface.insert("type".into(), "bridge".into());
        let members: Vec<&str> = members.split_whitespace().collect();
        iface.insert("interfaces".into(), members.into());
        if dev.get("bridge/bridge_id").is_some() {
            let id = dev.content("bridge/bridge_id").unwrap_or_default();
            iface.insert("id".into(), id.into());
        }
        if dev.get("bridge/stp_state").is_some() {
            let stp = dev.content("bridge/stp_state") == Some("1");
            iface.insert("stp".into(), stp.into());
        }
    }
    if dev.get("bonding").is_some() {
        iface.insert("type".into(), "bonding".into());
        let words = |attr: &str| -> Vec<&str> {
            dev.content(attr)
                .unwrap_or_default()
                .split_whitespace()
                .collect()
        };
        iface.insert("slaves".into(), words("bonding/slaves").into());
        for key in ["mode", "miimon", "lacp_rate"] {
            let first = words(&format!("bonding/{key}")).first().copied();
            iface.insert(key.into(), first.unwrap_or_default().into());
        }
        if let Some(primary) = dev.content("bonding/primary") {
            iface.insert("primary".into(), primary.into());
            if dev.get("bonding/all_slaves_active").is_some() {
                let all = dev.content("bonding/all_slaves_active") == Some("1");
                iface.insert("all_slaves_active".into(), all.into());
            }
        }
    }
    if dev.get("bonding_slave/perm_hwaddr").is_some() {
        let perm = dev.content("bonding_slave/perm_hwaddr").unwrap_or_default();
        iface.insert("perm_macaddress".into(), perm.into());
    }
    if let Some(pciid) = dev.get("pciid") {
        iface.insert("pciid".into(), pciid.into());
    }
    // reading `speed` fails on an interface that is down: no fact then
    if let Some(speed) = dev.content("speed").and_then(|s| s.parse::<i64>().ok()) {
        iface.insert("speed".into(), speed.into());
    }
    if let Some(flags) = dev.content("flags") {
        let flags = i64::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap_or_default();
        iface.insert("promisc".into(), (flags & 0x100 != 0).into());
    }
    iface
}

/// Interfaces and address lists as they are built up, address line by address line.
struct Collector {
    interfaces: BTreeMap<String, Map<String, Value>>,
    all_ipv4: Vec<String>,
    all_ipv6: Vec<String>,
}

impl Collector {
    /// One `inet`/`inet6` line of `ip addr show` for `dev`, with Ansible's rules: an IPv4
    /// address goes to its label's interface (an alias such as `eth0:1` becomes an interface
    /// of its own), the first primary one as `ipv4`, the rest in `ipv4_secondaries`.
    fn address(
        &mut self,
        dev: &Sysfs,
        line: &str,
        secondary: bool,
        default_ipv4: &mut Map<String, Value>,
        default_ipv6: &mut Map<String, Value>,
    ) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let device = dev.name.as_str();
        let mtu = || {
            self.interfaces
                .get(device)
                .and_then(|i| i.get("mtu"))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let kind = || {
            self.interfaces
                .get(device)
                .and_then(|i| i.get("type"))
                .cloned()
                .unwrap_or_else(|| "unknown".into())
        };
        let macaddress = dev.content("address").unwrap_or_default();
        match words.first() {
            Some(&"inet") => {
                let Some(v4) = Ipv4Line::parse(&words) else {
                    return;
                };
                let (mtu, kind) = (mtu(), kind());
                let label = words.last().copied().unwrap_or(device);
                if label != device {
                    self.interfaces.insert(label.to_string(), Map::new());
                }
                let iface = self.interfaces.entry(label.to_string()).or_default();
                if !secondary && !iface.contains_key("ipv4") {
                    iface.insert("ipv4".into(), v4.to_json());
                } else {
                    push(iface, "ipv4_secondaries", v4.to_json());
                }
                if secondary {
                    let main = self.interfaces.entry(device.to_string()).or_default();
                    if !main.contains_key("ipv4_secondaries") {
                        main.insert("ipv4_secondaries".into(), json!([]));
                    }
                    if label != device {
                        push(main, "ipv4_secondaries", v4.to_json());
                    }
                }
                if default_ipv4.get("address").and_then(Value::as_str) == Some(v4.address) {
                    let Value::Object(fields) = v4.to_json() else {
                        return;
                    };
                    for (k, v) in fields {
                        if k != "address" {
                            default_ipv4.insert(k, v);
                        }
                    }
                    default_ipv4.insert("macaddress".into(), macaddress.into());
                    default_ipv4.insert("mtu".into(), mtu);
                    default_ipv4.insert("type".into(), kind);
                    default_ipv4.insert("alias".into(), label.into());
                }
                if !v4.address.starts_with("127.") {
                    self.all_ipv4.push(v4.address.to_string());
                }
            }
            Some(&"inet6") => {
                // `inet6 <addr>/<prefix> scope <scope>` or `inet6 <addr> peer <peer>/<prefix> scope <scope>`
                let (address, prefix, scope) = if words.get(2) == Some(&"peer") {
                    let prefix = words.get(3).and_then(|p| p.split_once('/')).map(|p| p.1);
                    (words.get(1).copied(), prefix, words.get(5))
                } else {
                    let cidr = words.get(1).and_then(|c| c.split_once('/'));
                    (cidr.map(|c| c.0), cidr.map(|c| c.1), words.get(3))
                };
                let (Some(address), Some(prefix), Some(scope)) = (address, prefix, scope) else {
                    return;
                };
                let (mtu, kind) = (mtu(), kind());
                let iface = self.interfaces.entry(device.to_string()).or_default();
                push(
                    iface,
                    "ipv6",
                    json!({"address": address, "prefix": prefix, "scope": scope}),
                );
                if default_ipv6.get("address").and_then(Value::as_str) == Some(address) {
                    default_ipv6.insert("prefix".into(), prefix.into());
                    default_ipv6.insert("scope".into(), (*scope).into());
                    default_ipv6.insert("macaddress".into(), macaddress.into());
                    default_ipv6.insert("mtu".into(), mtu);
                    default_ipv6.insert("type".into(), kind);
                }
                if address != "::1" {
                    self.all_ipv6.push(address.to_string());
                }
            }
            _ => {}
        }
    }
}

/// An IPv4 address line: `inet <addr>/<prefix> [brd <broadcast>] ...`, or a point-to-point
/// one, `inet <addr> peer <peer>/<prefix> ...`, which Ansible counts as a /32.
struct Ipv4Line<'a> {
    address: &'a str,
    broadcast: &'a str,
    prefix: u32,
    addr: Ipv4Addr,
}

impl<'a> Ipv4Line<'a> {
    fn parse(words: &[&'a str]) -> Option<Self> {
        let first = *words.get(1)?;
        let (address, prefix, broadcast) = match first.split_once('/') {
            Some((address, prefix)) => {
                let brd = match (words.get(2), words.get(3)) {
                    (Some(&"brd"), Some(b)) => *b,
                    _ => "",
                };
                (address, prefix.parse().ok()?, brd)
            }
            None => (first, 32, ""),
        };
        if prefix > 32 {
            return None;
        }
        Some(Ipv4Line {
            address,
            broadcast,
            prefix,
            addr: address.parse().ok()?,
        })
    }

    fn to_json(&self) -> Value {
        let mask = u32::MAX.checked_shl(32 - self.prefix).unwrap_or(0);
        json!({
            "address": self.address,
            "broadcast": self.broadcast,
            "netmask": Ipv4Addr::from(mask).to_string(),
            "network": Ipv4Addr::from(u32::from(self.addr) & mask).to_string(),
            "prefix": self.prefix.to_string(),
        })
    }
}

fn push(iface: &mut Map<String, Value>, key: &str, item: Value) {
    match iface.entry(key).or_insert_with(|| json!([])) {
        Value::Array(items) => items.push(item),
        other => *other = json!([item]),
    }
}

/// `features` (from `ethtool -k`), `timestamping`, `hw_timestamp_filters` and `phc_index`
/// (from `ethtool -T`), where ethtool ran.
fn ethtool_facts(dev: &Sysfs, iface: &mut Map<String, Value>) {
    if let Some(lines) = &dev.ethtool_k {
        let mut features = Map::new();
        for line in lines.iter().map(|l| l.trim()) {
            if line.is_empty() || line.ends_with(':') {
                continue;
            }
            let Some((key, value)) = line.split_once(": ") else {
                continue;
            };
            if !value.is_empty() {
                features.insert(key.trim().replace('-', "_"), value.trim().into());
            }
        }
        iface.insert("features".into(), Value::Object(features));
    }
    if let Some(lines) = &dev.ethtool_t {
        let mut timestamping = Vec::new();
        let mut filters = Vec::new();
        let mut phc_index = None;
        for line in lines {
            for word in line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if let Some(name) = word.strip_prefix("SOF_TIMESTAMPING_") {
                    timestamping.push(name.to_lowercase());
                } else if let Some(name) = word.strip_prefix("HWTSTAMP_FILTER_") {
                    filters.push(name.to_lowercase());
                }
            }
            if let Some(rest) = line.split("PTP Hardware Clock: ").nth(1) {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if phc_index.is_none() {
                    phc_index = digits.parse::<i64>().ok();
                }
            }
        }
        iface.insert("timestamping".into(), timestamping.into());
        iface.insert("hw_timestamp_filters".into(), filters.into());
        if let Some(index) = phc_index {
            iface.insert("phc_index".into(), index.into());
        }
    }
}

/// The `local` routes of both families: what this host answers for, whatever its addresses.
fn locally_reachable(lines: &[&str]) -> Value {
    let (mut v4, mut v6): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (Some(&"local"), Some(address)) = (words.first(), words.get(1)) else {
            continue;
        };
        let list = if address.contains(':') {
            &mut v6
        } else {
            &mut v4
        };
        if !list.iter().any(|a| a == address) {
            list.push(address.to_string());
        }
    }
    json!({"ipv4": v4, "ipv6": v6})
}

fn sorted(map: Map<String, Value>) -> Value {
    let sorted: BTreeMap<String, Value> = map.into_iter().collect();
    Value::Object(sorted.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::facts;
    use serde_json::{json, Value};

    fn run(out: &str) -> serde_json::Map<String, Value> {
        let lines: Vec<(String, String)> = out
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        facts(&lines).into_iter().collect()
    }

    /// This machine's interfaces as the script prints them, and the facts Ansible 2.19
    /// gathered on it.
    #[test]
    fn facts_of_a_vm_with_a_default_route_and_down_interfaces() {
        let out = "route4=8.8.8.8 via 192.0.2.1 dev eth0 src 192.0.2.2 uid 0 \n\
route6=2404:6800:400a:800::1012 from :: via fd00::1 dev eth0 src fd00::2 metric 1024 pref medium\n\
dev=eth0\nsys_address=02:fc:00:00:00:01\nsys_mtu=1400\nsys_operstate=up\nsys_type=1\nsys_speed=-1\n\
sys_flags=0x1003\nsys_pciid=virtio2\n\
dev=lo\nsys_address=00:00:00:00:00:00\nsys_mtu=65536\nsys_operstate=unknown\nsys_type=772\n\
sys_speed=\nsys_flags=0x9\n\
dev=ifb0\nsys_address=72:79:e1:1a:fe:60\nsys_mtu=1500\nsys_operstate=down\nsys_type=1\n\
sys_speed=\nsys_flags=0x82\n\
ip=1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000\n\
ip=inet 127.0.0.1/8 scope host lo\n\
ip=inet6 ::1/128 scope host \n\
ip=4: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1400 qdisc mq state UP group default qlen 1000\n\
ip=inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\n\
ip=inet6 fd00::2/64 scope global nodad \n\
ip=inet6 fe80::fc:ff:fe00:1/64 scope link \n\
ip=5: ifb0: <BROADCAST,NOARP> mtu 1500 qdisc noop state DOWN group default qlen 32\n\
local=local 127.0.0.0/8 dev lo proto kernel scope host src 127.0.0.1 \n\
local=local 127.0.0.1 dev lo proto kernel scope host src 127.0.0.1 \n\
local=local 192.0.2.2 dev eth0 proto kernel scope host src 192.0.2.2 \n\
local=local ::1 dev lo proto kernel metric 0 pref medium\n\
local=local fd00::2 dev eth0 proto kernel metric 0 pref medium\n\
local=local fe80::fc:ff:fe00:1 dev eth0 proto kernel metric 0 pref medium\n";
        let f = run(out);
        assert_eq!(f["interfaces"], json!(["eth0", "ifb0", "lo"]));
        assert_eq!(
            f["eth0"],
            json!({"active": true, "device": "eth0",
                "ipv4": {"address": "192.0.2.2", "broadcast": "192.0.2.255",
                    "netmask": "255.255.255.0", "network": "192.0.2.0", "prefix": "24"},
                "ipv6": [{"address": "fd00::2", "prefix": "64", "scope": "global"},
                    {"address": "fe80::fc:ff:fe00:1", "prefix": "64", "scope": "link"}],
                "macaddress": "02:fc:00:00:00:01", "mtu": 1400, "pciid": "virtio2",
                "promisc": false, "speed": -1, "type": "ether"})
        );
        assert_eq!(
            f["lo"],
            json!({"active": true, "device": "lo",
                "ipv4": {"address": "127.0.0.1", "broadcast": "", "netmask": "255.0.0.0",
                    "network": "127.0.0.0", "prefix": "8"},
                "ipv6": [{"address": "::1", "prefix": "128", "scope": "host"}],
                "mtu": 65536, "promisc": false, "type": "loopback"})
        );
        assert_eq!(
            f["ifb0"],
            json!({"active": false, "device": "ifb0", "macaddress": "72:79:e1:1a:fe:60",
                "mtu": 1500, "promisc": false, "type": "ether"})
        );
        assert_eq!(
            f["default_ipv4"],
            json!({"address": "192.0.2.2", "alias": "eth0", "broadcast": "192.0.2.255",
                "gateway": "192.0.2.1", "interface": "eth0", "macaddress": "02:fc:00:00:00:01",
                "mtu": 1400, "netmask": "255.255.255.0", "network": "192.0.2.0",
                "prefix": "24", "type": "ether"})
        );
        assert_eq!(
            f["default_ipv6"],
            json!({"address": "fd00::2", "gateway": "fd00::1", "interface": "eth0",
                "macaddress": "02:fc:00:00:00:01", "mtu": 1400, "prefix": "64",
                "scope": "global", "type": "ether"})
        );
        assert_eq!(f["all_ipv4_addresses"], json!(["192.0.2.2"]));
        assert_eq!(
            f["all_ipv6_addresses"],
            json!(["fd00::2", "fe80::fc:ff:fe00:1"])
        );
        assert_eq!(
            f["locally_reachable_ips"],
            json!({"ipv4": ["127.0.0.0/8", "127.0.0.1", "192.0.2.2"],
                "ipv6": ["::1", "fd00::2", "fe80::fc:ff:fe00:1"]})
        );
    }

    #[test]
    fn aliases_secondaries_point_to_point_bridges_bonds_and_ethtool() {
        let out = "route4=8.8.8.8 dev tun0 src 10.8.0.1 uid 0\nroute6=\n\
dev=br0\nsys_address=aa:bb:cc:dd:ee:ff\nsys_mtu=1500\nsys_operstate=up\nsys_type=1\n\
sys_flags=0x1103\nsys_bridge/bridge_id=8000.aabbccddeeff\nsys_bridge/stp_state=0\n\
sys_bridge=eth1 eth2 \n\
dev=bond0\nsys_mtu=9000\nsys_type=1\nsys_bonding/slaves=eth3 eth4\n\
sys_bonding/mode=802.3ad 4\nsys_bonding/miimon=100\nsys_bonding/lacp_rate=slow 0\n\
sys_bonding/primary=\nsys_bonding=1\n\
dev=eth3\nsys_bonding_slave/perm_hwaddr=52:54:00:00:00:03\nsys_module=e1000e\n\
ethtool_k=1\nethtool_k=Features for eth3:\nethtool_k=rx-checksumming: on\n\
ethtool_k=tx-checksumming: off [fixed]\nethtool_k=tx-checksum-ipv4: \n\
ethtool_t=1\nethtool_t=Time stamping parameters for eth3:\nethtool_t=Capabilities:\n\
ethtool_t=\tsoftware-receive     (SOF_TIMESTAMPING_RX_SOFTWARE)\n\
ethtool_t=\tsoftware-system-clock (SOF_TIMESTAMPING_SOFTWARE)\n\
ethtool_t=PTP Hardware Clock: 0\nethtool_t=Hardware Receive Filter Modes:\n\
ethtool_t=\tnone                  (HWTSTAMP_FILTER_NONE)\n\
dev=tun0\nsys_mtu=1500\nsys_type=65534\n\
ip=6: br0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500\n\
ip=inet 10.0.0.1/24 brd 10.0.0.255 scope global br0\n\
ip=inet 10.0.0.2/24 brd 10.0.0.255 scope global secondary br0\n\
ip=inet 10.0.1.1/24 scope global br0:vip\n\
ip=inet6 2001:db8::5/64 scope global temporary dynamic \n\
ip=9: tun0@NONE: <POINTOPOINT,UP> mtu 1500\n\
ip=inet 10.8.0.1 peer 10.8.0.2/32 scope global tun0\n\
ip=inet 10.9.9.9/33 scope global tun0\n";
        let f = run(out);
        assert_eq!(
            f["interfaces"],
            json!(["bond0", "br0", "br0_vip", "eth3", "tun0"])
        );
        let br0 = &f["br0"];
        assert_eq!(br0["type"], "bridge");
        assert_eq!(br0["interfaces"], json!(["eth1", "eth2"]));
        assert_eq!(br0["id"], "8000.aabbccddeeff");
        assert_eq!(br0["stp"], false);
        assert_eq!(br0["promisc"], true);
        assert_eq!(br0["ipv4"]["address"], "10.0.0.1");
        assert_eq!(br0["ipv4_secondaries"][0]["address"], "10.0.0.2");
        assert_eq!(br0["ipv6"][0]["address"], "2001:db8::5");
        assert_eq!(
            f["br0_vip"],
            json!({"ipv4": {"address": "10.0.1.1", "broadcast": "", "netmask": "255.255.255.0",
                "network": "10.0.1.0", "prefix": "24"}})
        );
        let bond0 = &f["bond0"];
        assert_eq!(bond0["type"], "bonding");
        assert_eq!(bond0["slaves"], json!(["eth3", "eth4"]));
        assert_eq!(bond0["mode"], "802.3ad");
        assert_eq!(bond0["lacp_rate"], "slow");
        assert_eq!(bond0.get("primary"), None);
        let eth3 = &f["eth3"];
        assert_eq!(eth3["perm_macaddress"], "52:54:00:00:00:03");
        assert_eq!(eth3["module"], "e1000e");
        assert_eq!(
            eth3["features"],
            json!({"rx_checksumming": "on", "tx_checksumming": "off [fixed]"})
        );
        assert_eq!(eth3["timestamping"], json!(["rx_software", "software"]));
        assert_eq!(eth3["hw_timestamp_filters"], json!(["none"]));
        assert_eq!(eth3["phc_index"], 0);
        assert_eq!(f["tun0"]["type"], "tunnel");
        assert_eq!(f["tun0"]["ipv4"]["prefix"], "32");
        assert_eq!(
            f["default_ipv4"],
            json!({"address": "10.8.0.1", "alias": "tun0", "broadcast": "",
                "interface": "tun0", "macaddress": "", "mtu": 1500,
                "netmask": "255.255.255.255", "network": "10.8.0.1", "prefix": "32",
                "type": "tunnel"})
        );
        assert_eq!(f["default_ipv6"], json!({}));
        assert_eq!(
            f["all_ipv4_addresses"],
            json!(["10.0.0.1", "10.0.1.1", "10.0.0.2", "10.8.0.1"])
        );
        assert_eq!(f["all_ipv6_addresses"], json!(["2001:db8::5"]));
    }

    #[test]
    fn a_host_without_ip_has_empty_network_facts() {
        let f = run("");
        assert_eq!(f["interfaces"], json!([]));
        assert_eq!(f["default_ipv4"], json!({}));
        assert_eq!(f["all_ipv4_addresses"], json!([]));
        assert_eq!(f["locally_reachable_ips"], json!({"ipv4": [], "ipv6": []}));
    }
}
