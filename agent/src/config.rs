//! `ansible.cfg` lookup and its common `[defaults]` keys, with `ANSIBLE_*` environment overrides.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Settings taken from `ansible.cfg` and the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
    /// `inventory`: default inventory sources.
    pub inventory: Vec<String>,
    /// `library`: module search paths.
    pub library: Vec<PathBuf>,
    /// `remote_user`.
    pub remote_user: Option<String>,
    /// `private_key_file`.
    pub private_key_file: Option<PathBuf>,
    /// `forks` (default 5).
    pub forks: usize,
    /// `host_key_checking` (default true).
    pub host_key_checking: bool,
    /// `timeout`: SSH connect timeout in seconds (default 10).
    pub timeout: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            file: None,
            inventory: Vec::new(),
            library: Vec::new(),
            remote_user: None,
            private_key_file: None,
            forks: 5,
            host_key_checking: true,
            timeout: 10,
        }
    }
}

/// Finds the config file as Ansible does: `ANSIBLE_CONFIG`, `./ansible.cfg`, `~/.ansible.cfg`,
/// `/etc/ansible/ansible.cfg`.
pub fn find() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("ANSIBLE_CONFIG") {
        let p = PathBuf::from(p);
        let p = if p.is_dir() { p.join("ansible.cfg") } else { p };
        if p.is_file() {
            return Some(p);
        }
    }
    let cwd = PathBuf::from("ansible.cfg");
    if cwd.is_file() {
        return std::env::current_dir().ok().map(|d| d.join("ansible.cfg"));
    }
    if let Ok(home) = std::env::var("HOME") {
        let p = Path::new(&home).join(".ansible.cfg");
        if p.is_file() {
            return Some(p);
        }
    }
    let etc = PathBuf::from("/etc/ansible/ansible.cfg");
    etc.is_file().then_some(etc)
}

/// Loads the config file (if found) and applies environment overrides.
pub fn load() -> Result<Config> {
    let mut cfg = Config::default();
    if let Some(path) = find() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut in_defaults = false;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if line.starts_with('[') {
                in_defaults = line == "[defaults]";
                continue;
            }
            if !in_defaults {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            apply(&mut cfg, k.trim(), v.trim(), &base);
        }
        cfg.file = Some(path);
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    for (env, key) in [
        ("ANSIBLE_INVENTORY", "inventory"),
        ("ANSIBLE_LIBRARY", "library"),
        ("ANSIBLE_REMOTE_USER", "remote_user"),
        ("ANSIBLE_PRIVATE_KEY_FILE", "private_key_file"),
        ("ANSIBLE_FORKS", "forks"),
        ("ANSIBLE_HOST_KEY_CHECKING", "host_key_checking"),
        ("ANSIBLE_TIMEOUT", "timeout"),
    ] {
        if let Ok(v) = std::env::var(env) {
            apply(&mut cfg, key, &v, &cwd);
        }
    }
    Ok(cfg)
}

fn expand_path(v: &str, base: &Path) -> PathBuf {
    let v = v.trim();
    let p = if let Some(rest) = v.strip_prefix("~/") {
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(rest)
    } else {
        PathBuf::from(v)
    };
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

fn apply(cfg: &mut Config, key: &str, v: &str, base: &Path) {
    let v = v.split(" #").next().unwrap_or(v).trim();
    match key {
        "inventory" => {
            cfg.inventory = v
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| expand_path(s, base).display().to_string())
                .collect()
        }
        "library" => {
            cfg.library = v
                .split(':')
                .filter(|s| !s.trim().is_empty())
                .map(|s| expand_path(s, base))
                .collect()
        }
        "remote_user" => cfg.remote_user = Some(v.to_string()),
        "private_key_file" => cfg.private_key_file = Some(expand_path(v, base)),
        "forks" => {
            if let Ok(n) = v.parse() {
                cfg.forks = n
            }
        }
        "host_key_checking" => cfg.host_key_checking = parse_bool(v),
        "timeout" => {
            if let Ok(n) = v.parse() {
                cfg.timeout = n
            }
        }
        _ => {}
    }
}

/// Ansible's boolean spelling for config values.
pub fn parse_bool(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on" | "y" | "t"
    )
}
