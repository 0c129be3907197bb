//! `ansible.cfg` lookup, its common `[defaults]` keys, the `[ssh_connection]` keys
//! `ssh_args` and `control_path_dir` and the `[privilege_escalation]` ones, with `ANSIBLE_*`
//! environment overrides.

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
    /// `roles_path`: where roles are looked for after `roles/` beside the playbook.
    pub roles_path: Vec<PathBuf>,
    /// `collections_path` (`ANSIBLE_COLLECTIONS_PATH`): where installed collections are
    /// looked for after `collections/` beside the playbook.
    pub collections_path: Vec<PathBuf>,
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
    /// `[ssh_connection] ssh_args`, split into words. Ansible's default
    /// ([`DEFAULT_SSH_ARGS`]: masters persist for 60 s idle) unless the file or
    /// `ANSIBLE_SSH_ARGS` sets them; any setting replaces the default, as in Ansible.
    pub ssh_args: Vec<String>,
    /// `[ssh_connection] control_path_dir` (default `~/.ansible/cp`): where persistent
    /// connections keep their control sockets.
    pub control_path_dir: PathBuf,
    /// `vault_password_file` (`ANSIBLE_VAULT_PASSWORD_FILE`).
    pub vault_password_file: Option<PathBuf>,
    /// `vault_identity_list` (`ANSIBLE_VAULT_IDENTITY_LIST`): `label@source`, comma-separated.
    pub vault_identity_list: Vec<String>,
    /// `gathering` (`ANSIBLE_GATHERING`): `implicit` (default, a play gathers facts unless it
    /// says `gather_facts: false`) or `explicit` (only when it says `gather_facts: true`).
    pub gather_by_default: bool,
    /// `force_handlers` (`ANSIBLE_FORCE_HANDLERS`): the default of `--force-handlers`.
    pub force_handlers: bool,
    /// `deprecation_warnings` (`ANSIBLE_DEPRECATION_WARNINGS`, default true): modules'
    /// deprecations are shown.
    pub deprecation_warnings: bool,
    /// `error_on_missing_handler` (`ANSIBLE_ERROR_ON_MISSING_HANDLER`, default true): a
    /// `notify` of a handler that does not exist is an error; else a warning.
    pub error_on_missing_handler: bool,
    /// `debug` (`ANSIBLE_DEBUG`): ansible-core's debug lines; the agent prints those of
    /// implicit `meta` tasks (the flush at the end of a section).
    pub debug: bool,
    /// `ansible_managed` of `[defaults]`: the text of the `ansible_managed` variable the
    /// `template` action gives a template (`{file}`, `{host}`, `{uid}`, strftime codes).
    pub managed_str: Option<String>,
    /// `[privilege_escalation] become` (`ANSIBLE_BECOME`): the default of `--become`.
    pub r#become: bool,
    /// `[privilege_escalation] become_user` (`ANSIBLE_BECOME_USER`).
    pub become_user: Option<String>,
    /// `[privilege_escalation] become_method` (`ANSIBLE_BECOME_METHOD`).
    pub become_method: Option<String>,
    /// `[privilege_escalation] become_allow_same_user` (`ANSIBLE_BECOME_ALLOW_SAME_USER`):
    /// escalate even to the user the connection already is (Ansible skips it by default).
    pub become_allow_same_user: bool,
    /// The `fact_caching*` keys: where facts are kept.
    pub fact_caching: FactCaching,
    /// `inject_facts_as_vars` (`ANSIBLE_INJECT_FACT_VARS`, default true): facts are also
    /// variables of their own, not only under `ansible_facts`.
    pub inject_facts_as_vars: bool,
    /// `allow_broken_conditionals` (`ANSIBLE_ALLOW_BROKEN_CONDITIONALS`, default false): a
    /// condition may give a value that is not a boolean.
    pub allow_broken_conditionals: bool,
    /// `private_role_vars` (`ANSIBLE_PRIVATE_ROLE_VARS`), when set: whether a role's vars
    /// and defaults stay its own (`roles:`, `import_role`; and `include_role` when false).
    pub private_role_vars: Option<bool>,
    /// `async_dir` (`ANSIBLE_ASYNC_DIR`): where `poll: 0` jobs keep their files on targets
    /// (default `~/.ansible_async`; the `ansible_async_dir` variable wins).
    pub async_dir: Option<String>,
}

/// A fact cache plugin the agent has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CachePlugin {
    /// `memory` (the default): facts last for the run.
    #[default]
    Memory,
    /// `jsonfile`: a JSON file per host under `fact_caching_connection`.
    JsonFile,
}

/// The fact cache settings.
#[derive(Debug, Clone)]
pub struct FactCaching {
    /// `fact_caching` (`ANSIBLE_CACHE_PLUGIN`).
    pub plugin: CachePlugin,
    /// `fact_caching_connection` (`ANSIBLE_CACHE_PLUGIN_CONNECTION`): the `jsonfile` directory.
    pub connection: Option<PathBuf>,
    /// `fact_caching_prefix` (`ANSIBLE_CACHE_PLUGIN_PREFIX`): none by default (the `jsonfile`
    /// plugin's own default; ansible-core's `CACHE_PLUGIN_PREFIX` default is not used by it).
    pub prefix: String,
    /// `fact_caching_timeout` (`ANSIBLE_CACHE_PLUGIN_TIMEOUT`, default 86400 s; 0: never
    /// expires).
    pub timeout: u64,
}

impl Default for FactCaching {
    fn default() -> Self {
        FactCaching {
            plugin: CachePlugin::Memory,
            connection: None,
            prefix: String::new(),
            timeout: 86400,
        }
    }
}

/// Ansible's default `ssh_args`: one master per target that outlives the run and exits
/// after 60 s idle, found again by the next run under `control_path_dir`. `-C` is kept for
/// the same words as Ansible; the agent does not compress (see agent/README "Speed").
pub const DEFAULT_SSH_ARGS: [&str; 5] =
    ["-C", "-o", "ControlMaster=auto", "-o", "ControlPersist=60s"];

impl Default for Config {
    fn default() -> Self {
        Config {
            file: None,
            inventory: Vec::new(),
            library: Vec::new(),
            roles_path: [
                "~/.ansible/roles",
                "/usr/share/ansible/roles",
                "/etc/ansible/roles",
            ]
            .iter()
            .map(|p| expand_path(p, Path::new("/")))
            .collect(),
            collections_path: ["~/.ansible/collections", "/usr/share/ansible/collections"]
                .iter()
                .map(|p| expand_path(p, Path::new("/")))
                .collect(),
            remote_user: None,
            private_key_file: None,
            forks: 5,
            host_key_checking: true,
            timeout: 10,
            ssh_args: DEFAULT_SSH_ARGS.iter().map(|w| w.to_string()).collect(),
            control_path_dir: PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".ansible/cp"),
            gather_by_default: true,
            vault_password_file: None,
            vault_identity_list: Vec::new(),
            force_handlers: false,
            deprecation_warnings: true,
            error_on_missing_handler: true,
            debug: false,
            managed_str: None,
            r#become: false,
            become_user: None,
            become_method: None,
            become_allow_same_user: false,
            fact_caching: FactCaching::default(),
            inject_facts_as_vars: true,
            allow_broken_conditionals: false,
            private_role_vars: None,
            async_dir: None,
        }
    }
}

impl Config {
    /// The settings the agent has, by Ansible's configuration names, as
    /// `lookup('config', NAME)` gives them.
    pub fn ansible_settings(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::json;
        let paths =
            |p: &[PathBuf]| -> Vec<String> { p.iter().map(|x| x.display().to_string()).collect() };
        let fc = &self.fact_caching;
        let plugin = match fc.plugin {
            CachePlugin::Memory => "memory",
            CachePlugin::JsonFile => "jsonfile",
        };
        let pairs = [
            (
                "ALLOW_BROKEN_CONDITIONALS",
                json!(self.allow_broken_conditionals),
            ),
            ("CACHE_PLUGIN", json!(plugin)),
            (
                "CACHE_PLUGIN_CONNECTION",
                json!(fc.connection.as_ref().map(|p| p.display().to_string())),
            ),
            ("CACHE_PLUGIN_PREFIX", json!(fc.prefix)),
            ("CACHE_PLUGIN_TIMEOUT", json!(fc.timeout)),
            ("COLLECTIONS_PATHS", json!(paths(&self.collections_path))),
            ("DEFAULT_BECOME", json!(self.r#become)),
            (
                "DEFAULT_BECOME_METHOD",
                json!(self.become_method.as_deref().unwrap_or("sudo")),
            ),
            (
                "DEFAULT_BECOME_USER",
                json!(self.become_user.as_deref().unwrap_or("root")),
            ),
            ("DEFAULT_FORCE_HANDLERS", json!(self.force_handlers)),
            ("DEFAULT_DEBUG", json!(self.debug)),
            ("DEPRECATION_WARNINGS", json!(self.deprecation_warnings)),
            (
                "ERROR_ON_MISSING_HANDLER",
                json!(self.error_on_missing_handler),
            ),
            ("DEFAULT_FORKS", json!(self.forks)),
            (
                "DEFAULT_GATHERING",
                json!(if self.gather_by_default {
                    "implicit"
                } else {
                    "explicit"
                }),
            ),
            ("DEFAULT_HASH_BEHAVIOUR", json!("replace")),
            ("DEFAULT_MODULE_PATH", json!(paths(&self.library))),
            ("DEFAULT_REMOTE_USER", json!(self.remote_user)),
            (
                "DEFAULT_PRIVATE_ROLE_VARS",
                json!(self.private_role_vars.unwrap_or(false)),
            ),
            ("DEFAULT_ROLES_PATH", json!(paths(&self.roles_path))),
            ("DEFAULT_TIMEOUT", json!(self.timeout)),
            ("HOST_KEY_CHECKING", json!(self.host_key_checking)),
            ("INJECT_FACTS_AS_VARS", json!(self.inject_facts_as_vars)),
        ];
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
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
        apply_file(&mut cfg, &text, &path)?;
        cfg.file = Some(path);
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    for (env, key) in [
        ("ANSIBLE_INVENTORY", "inventory"),
        ("ANSIBLE_LIBRARY", "library"),
        ("ANSIBLE_ROLES_PATH", "roles_path"),
        // the older plural name first, so that the current one wins when both are set
        ("ANSIBLE_COLLECTIONS_PATHS", "collections_path"),
        ("ANSIBLE_COLLECTIONS_PATH", "collections_path"),
        ("ANSIBLE_REMOTE_USER", "remote_user"),
        ("ANSIBLE_PRIVATE_KEY_FILE", "private_key_file"),
        ("ANSIBLE_FORKS", "forks"),
        ("ANSIBLE_HOST_KEY_CHECKING", "host_key_checking"),
        ("ANSIBLE_TIMEOUT", "timeout"),
        ("ANSIBLE_SSH_ARGS", "ssh_connection.ssh_args"),
        ("ANSIBLE_VAULT_PASSWORD_FILE", "vault_password_file"),
        ("ANSIBLE_VAULT_IDENTITY_LIST", "vault_identity_list"),
        ("ANSIBLE_HASH_BEHAVIOUR", "hash_behaviour"),
        ("ANSIBLE_GATHERING", "gathering"),
        ("ANSIBLE_FORCE_HANDLERS", "force_handlers"),
        ("ANSIBLE_DEPRECATION_WARNINGS", "deprecation_warnings"),
        (
            "ANSIBLE_ERROR_ON_MISSING_HANDLER",
            "error_on_missing_handler",
        ),
        ("ANSIBLE_DEBUG", "debug"),
        ("ANSIBLE_CACHE_PLUGIN", "fact_caching"),
        ("ANSIBLE_CACHE_PLUGIN_CONNECTION", "fact_caching_connection"),
        ("ANSIBLE_CACHE_PLUGIN_PREFIX", "fact_caching_prefix"),
        ("ANSIBLE_CACHE_PLUGIN_TIMEOUT", "fact_caching_timeout"),
        ("ANSIBLE_INJECT_FACT_VARS", "inject_facts_as_vars"),
        ("ANSIBLE_PRIVATE_ROLE_VARS", "private_role_vars"),
        ("ANSIBLE_ASYNC_DIR", "async_dir"),
        (
            "ANSIBLE_ALLOW_BROKEN_CONDITIONALS",
            "allow_broken_conditionals",
        ),
        ("ANSIBLE_BECOME", "privilege_escalation.become"),
        ("ANSIBLE_BECOME_USER", "privilege_escalation.become_user"),
        (
            "ANSIBLE_BECOME_METHOD",
            "privilege_escalation.become_method",
        ),
        (
            "ANSIBLE_BECOME_ALLOW_SAME_USER",
            "privilege_escalation.become_allow_same_user",
        ),
        (
            "ANSIBLE_SSH_CONTROL_PATH_DIR",
            "ssh_connection.control_path_dir",
        ),
    ] {
        if let Ok(v) = std::env::var(env) {
            apply(&mut cfg, key, &v, &cwd).with_context(|| format!("environment {env}"))?;
        }
    }
    Ok(cfg)
}

/// Applies the keys of the `[defaults]` and `[ssh_connection]` sections of `text`, the
/// contents of the config file `path`.
fn apply_file(cfg: &mut Config, text: &str, path: &Path) -> Result<()> {
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut section = String::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line.to_string();
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let key = match section.as_str() {
            "[defaults]" => k.trim().to_string(),
            "[ssh_connection]" => format!("ssh_connection.{}", k.trim()),
            "[privilege_escalation]" => format!("privilege_escalation.{}", k.trim()),
            _ => continue,
        };
        apply(cfg, &key, v.trim(), &base)
            .with_context(|| format!("{}:{}", path.display(), number + 1))?;
    }
    Ok(())
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

/// A `:`-separated list of paths.
fn path_list(v: &str, base: &Path) -> Vec<PathBuf> {
    v.split(':')
        .filter(|s| !s.trim().is_empty())
        .map(|s| expand_path(s, base))
        .collect()
}

fn apply(cfg: &mut Config, key: &str, v: &str, base: &Path) -> Result<()> {
    let v = v.split(" #").next().unwrap_or(v).trim();
    match key {
        "inventory" => {
            cfg.inventory = v
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| expand_path(s, base).display().to_string())
                .collect()
        }
        "library" => cfg.library = path_list(v, base),
        "roles_path" => cfg.roles_path = path_list(v, base),
        "collections_path" | "collections_paths" => cfg.collections_path = path_list(v, base),
        "remote_user" => cfg.remote_user = Some(v.to_string()),
        "private_key_file" => cfg.private_key_file = Some(expand_path(v, base)),
        "forks" => {
            if let Ok(n) = v.parse() {
                cfg.forks = n
            }
        }
        "host_key_checking" => cfg.host_key_checking = crate::jinja::value::boolean_text(v),
        "timeout" => {
            if let Ok(n) = v.parse() {
                cfg.timeout = n
            }
        }
        "ssh_connection.ssh_args" => {
            cfg.ssh_args =
                shlex::split(v).ok_or_else(|| anyhow::anyhow!("cannot split ssh_args {v:?}"))?
        }
        "ssh_connection.control_path_dir" => cfg.control_path_dir = expand_path(v, base),
        "vault_password_file" if !v.is_empty() => {
            cfg.vault_password_file = Some(expand_path(v, base))
        }
        "vault_identity_list" => {
            cfg.vault_identity_list = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        }
        // settings that change results: refused unless at Ansible's default, never ignored
        "hash_behaviour" if v != "replace" => {
            anyhow::bail!("hash_behaviour = {v} is not supported by etcd-agent (replace only)")
        }
        "gathering" => match v {
            "implicit" => cfg.gather_by_default = true,
            "explicit" => cfg.gather_by_default = false,
            other => anyhow::bail!(
                "gathering = {other} is not supported by etcd-agent (implicit, explicit)"
            ),
        },
        "force_handlers" => cfg.force_handlers = crate::jinja::value::boolean_text(v),
        "deprecation_warnings" => cfg.deprecation_warnings = crate::jinja::value::boolean_text(v),
        "error_on_missing_handler" => {
            cfg.error_on_missing_handler = crate::jinja::value::boolean_text(v)
        }
        "debug" => cfg.debug = crate::jinja::value::boolean_text(v),
        "ansible_managed" => cfg.managed_str = Some(v.to_string()),
        "fact_caching" => {
            cfg.fact_caching.plugin = match v.strip_prefix("ansible.builtin.").unwrap_or(v) {
                "memory" => CachePlugin::Memory,
                "jsonfile" => CachePlugin::JsonFile,
                other => anyhow::bail!(
                    "fact_caching = {other} is not supported by etcd-agent (memory, jsonfile)"
                ),
            }
        }
        "fact_caching_connection" => {
            cfg.fact_caching.connection = (!v.is_empty()).then(|| expand_path(v, base))
        }
        "fact_caching_prefix" => cfg.fact_caching.prefix = v.to_string(),
        "fact_caching_timeout" => {
            cfg.fact_caching.timeout = v
                .parse()
                .map_err(|_| anyhow::anyhow!("fact_caching_timeout = {v} is not a number"))?
        }
        "inject_facts_as_vars" => cfg.inject_facts_as_vars = crate::jinja::value::boolean_text(v),
        "allow_broken_conditionals" => {
            cfg.allow_broken_conditionals = crate::jinja::value::boolean_text(v)
        }
        "async_dir" if !v.is_empty() => cfg.async_dir = Some(v.to_string()),
        "private_role_vars" if !v.is_empty() => {
            cfg.private_role_vars = Some(crate::jinja::value::boolean_text(v))
        }
        "privilege_escalation.become" => cfg.r#become = crate::jinja::value::boolean_text(v),
        "privilege_escalation.become_user" if !v.is_empty() => {
            cfg.become_user = Some(v.to_string())
        }
        "privilege_escalation.become_method" if !v.is_empty() => {
            cfg.become_method = Some(v.to_string())
        }
        "privilege_escalation.become_allow_same_user" => {
            cfg.become_allow_same_user = crate::jinja::value::boolean_text(v)
        }
        _ => {}
    }
    Ok(())
}

/// `collections_path` of the config in effect (its defaults when the config cannot be read).
pub fn collections_path() -> Vec<PathBuf> {
    load().unwrap_or_default().collections_path
}

/// `private_role_vars` of the config in effect, when set (unset when the config cannot be
/// read: a broken config is reported where the run loads it).
pub fn private_role_vars() -> Option<bool> {
    load().ok().and_then(|c| c.private_role_vars)
}

/// The config in effect, read once for the lookups made while a run goes (`None` when it
/// cannot be read: the run reports that where it loads it).
fn in_effect() -> Option<&'static Config> {
    static CONFIG: std::sync::OnceLock<Option<Config>> = std::sync::OnceLock::new();
    CONFIG.get_or_init(|| load().ok()).as_ref()
}

/// `error_on_missing_handler` of the config in effect (true when the config cannot be read).
pub fn error_on_missing_handler() -> bool {
    in_effect().is_none_or(|c| c.error_on_missing_handler)
}

/// `ansible_managed` of the config in effect: ansible-core's default is "Ansible managed".
pub fn managed_str() -> String {
    in_effect()
        .and_then(|c| c.managed_str.clone())
        .unwrap_or_else(|| "Ansible managed".to_string())
}

/// `debug` of the config in effect (false when the config cannot be read).
pub fn debug() -> bool {
    in_effect().is_some_and(|c| c.debug)
}

/// `roles_path` of the config in effect (its defaults when the config cannot be read: a
/// broken config is reported where the run loads it).
pub fn roles_path() -> Vec<PathBuf> {
    load().unwrap_or_default().roles_path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privilege_escalation_section() {
        let mut cfg = Config::default();
        let text = "[privilege_escalation]\nbecome = True\nbecome_user = postgres\nbecome_method = su\nbecome_allow_same_user = yes\n[defaults]\nbecome = False\n";
        apply_file(&mut cfg, text, Path::new("/etc/x/ansible.cfg")).unwrap();
        assert!(cfg.r#become && cfg.become_allow_same_user);
        assert_eq!(cfg.become_user.as_deref(), Some("postgres"));
        assert_eq!(cfg.become_method.as_deref(), Some("su"));
        let d = Config::default();
        assert!(!d.r#become && !d.become_allow_same_user && d.become_user.is_none());
    }

    #[test]
    fn ssh_connection_section() {
        let mut cfg = Config::default();
        let text = "[defaults]\nforks = 7\n[ssh_connection]\nssh_args = -C -o ControlMaster=auto -o 'ControlPersist=60s'\ncontrol_path_dir = cp\npipelining = True\n[other]\nforks = 9\n";
        apply_file(&mut cfg, text, Path::new("/etc/x/ansible.cfg")).unwrap();
        assert_eq!(cfg.forks, 7);
        assert_eq!(
            cfg.ssh_args,
            ["-C", "-o", "ControlMaster=auto", "-o", "ControlPersist=60s"]
        );
        assert_eq!(cfg.control_path_dir, Path::new("/etc/x/cp"));
        assert_eq!(
            Config::default().ssh_args,
            DEFAULT_SSH_ARGS,
            "Ansible's default"
        );
        let mut empty = Config::default();
        apply_file(
            &mut empty,
            "[ssh_connection]\nssh_args =\n",
            Path::new("/a.cfg"),
        )
        .unwrap();
        assert!(empty.ssh_args.is_empty(), "a setting replaces the default");
        let mut v = Config::default();
        apply_file(
            &mut v,
            "[defaults]\nvault_password_file = secrets/pw\nvault_identity_list = a@x, b@prompt\n",
            Path::new("/etc/x/ansible.cfg"),
        )
        .unwrap();
        assert_eq!(
            v.vault_password_file.as_deref(),
            Some(Path::new("/etc/x/secrets/pw"))
        );
        assert_eq!(v.vault_identity_list, ["a@x", "b@prompt"]);
        let err = apply_file(
            &mut cfg,
            "[ssh_connection]\nssh_args = -o 'open\n",
            Path::new("/a.cfg"),
        );
        assert_eq!(
            format!("{:#}", err.unwrap_err()),
            "/a.cfg:2: cannot split ssh_args \"-o 'open\""
        );
    }

    #[test]
    fn fact_caching_keys() {
        let mut cfg = Config::default();
        // ansible-playbook 2.19.14 names the jsonfile cache `s1_<host>` unless a prefix is set
        assert_eq!(cfg.fact_caching.prefix, "");
        assert_eq!(cfg.fact_caching.plugin, CachePlugin::Memory);
        let text = "[defaults]\nfact_caching = ansible.builtin.jsonfile\nfact_caching_connection = cache\nfact_caching_prefix = p_\nfact_caching_timeout = 0\ninject_facts_as_vars = False\n";
        apply_file(&mut cfg, text, Path::new("/etc/x/ansible.cfg")).unwrap();
        let fc = &cfg.fact_caching;
        assert_eq!(fc.plugin, CachePlugin::JsonFile);
        assert_eq!(fc.connection.as_deref(), Some(Path::new("/etc/x/cache")));
        assert_eq!((fc.prefix.as_str(), fc.timeout), ("p_", 0));
        assert!(!cfg.inject_facts_as_vars);
        assert_eq!(cfg.ansible_settings()["CACHE_PLUGIN"], "jsonfile");
        assert_eq!(cfg.private_role_vars, None, "unset unless configured");
        apply_file(
            &mut cfg,
            "[defaults]\nprivate_role_vars = yes\n",
            Path::new("/a.cfg"),
        )
        .unwrap();
        assert_eq!(cfg.private_role_vars, Some(true));
        assert_eq!(cfg.ansible_settings()["DEFAULT_PRIVATE_ROLE_VARS"], true);
    }

    #[test]
    fn settings_that_change_results_are_refused_not_ignored() {
        let base = Path::new("/");
        for (key, bad, good) in [
            ("hash_behaviour", "merge", "replace"),
            ("gathering", "smart", "explicit"),
            ("fact_caching", "redis", "jsonfile"),
        ] {
            let mut cfg = Config::default();
            let err = apply(&mut cfg, key, bad, base).unwrap_err().to_string();
            assert!(err.contains("not supported by etcd-agent"), "{err}");
            apply(&mut cfg, key, good, base).unwrap();
        }
    }
}
