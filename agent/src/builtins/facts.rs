//! `setup` (Gathering Facts): a small documented fact set collected with one shell command.
//!
//! Facts: `ansible_hostname`, `ansible_nodename`, `ansible_fqdn`, `ansible_system`,
//! `ansible_kernel`, `ansible_architecture`, `ansible_machine`, `ansible_distribution`,
//! `ansible_distribution_version`, `ansible_os_family`, `ansible_user_id`, `ansible_user_dir`,
//! `ansible_env` (`HOME`, `PATH`, `USER`, `SHELL`).

use super::{ActionCtx, ResultMap};
use crate::transport::TransportError;
use serde_json::{Map, Value};

const SCRIPT: &str = r#"echo "hostname=$(hostname -s 2>/dev/null || hostname)"
echo "nodename=$(uname -n)"
echo "fqdn=$(hostname -f 2>/dev/null || hostname)"
echo "system=$(uname -s)"
echo "kernel=$(uname -r)"
echo "machine=$(uname -m)"
echo "user_id=$(id -un)"
echo "user_dir=$HOME"
echo "env_HOME=$HOME"
echo "env_PATH=$PATH"
echo "env_USER=${USER:-$(id -un)}"
echo "env_SHELL=$SHELL"
if [ -r /etc/os-release ]; then . /etc/os-release; echo "distribution=$NAME"; echo "distribution_version=$VERSION_ID"; echo "os_id=$ID"; echo "os_like=$ID_LIKE"; fi
"#;

/// Runs `setup`.
pub async fn run(ctx: &ActionCtx<'_>) -> Result<ResultMap, TransportError> {
    let conn = ctx.connection().await?;
    let out = conn.exec(SCRIPT, None, None).await?;
    if out.rc != 0 {
        return Ok(super::failed(format!(
            "fact gathering failed: {}",
            out.stderr_text().trim()
        )));
    }
    let mut facts = Map::new();
    let mut env = Map::new();
    let mut os_id = String::new();
    let mut os_like = String::new();
    for line in out.stdout_text().lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if let Some(name) = k.strip_prefix("env_") {
            env.insert(name.to_string(), v.into());
            continue;
        }
        match k {
            "os_id" => os_id = v.to_string(),
            "os_like" => os_like = v.to_string(),
            "distribution" => {
                let short = v.split_whitespace().next().unwrap_or(v);
                facts.insert("distribution".into(), short.into());
            }
            _ => {
                facts.insert(k.to_string(), v.into());
            }
        }
    }
    if let Some(Value::String(m)) = facts.get("machine").cloned() {
        facts.insert("architecture".into(), m.into());
    }
    let family = match (os_id.as_str(), os_like.as_str()) {
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
    facts.insert("env".into(), Value::Object(env));
    let prefixed: Map<String, Value> = facts
        .into_iter()
        .map(|(k, v)| (format!("ansible_{k}"), v))
        .collect();
    let mut m = Map::new();
    m.insert("ansible_facts".into(), Value::Object(prefixed));
    m.insert("changed".into(), Value::Bool(false));
    Ok(m)
}
