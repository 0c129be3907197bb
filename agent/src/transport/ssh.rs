//! The SSH transport: one `openssh` master connection per target, commands multiplexed over it.

use super::{relay, ExecOutput, TransportError};
use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Idle seconds after which a master that the run does not keep exits by itself (the run
/// stops it at its end; this covers an agent killed with SIGKILL).
const NON_PERSISTENT_IDLE_SECS: usize = 60;

/// Everything needed to open an SSH connection.
///
/// Inventory hosts with equal specs (aliases of one destination) share one connection, as
/// they share one master under ansible-playbook, whose default `ControlPath` is a hash of
/// host, port and user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SshSpec {
    /// Address (`ansible_host`, else the inventory name).
    pub host: String,
    /// Port (`ansible_port`).
    pub port: Option<u16>,
    /// Remote user.
    pub user: Option<String>,
    /// Private key file.
    pub key: Option<PathBuf>,
    /// `ansible_ssh_common_args` + `ansible_ssh_extra_args`, split into words.
    pub extra_args: Vec<String>,
    /// Check host keys (Ansible's `host_key_checking`).
    pub host_key_checking: bool,
    /// Connect timeout in seconds.
    pub timeout: u64,
}

impl SshSpec {
    /// A stable short name for this target and its options, naming its persistent control
    /// socket directory.
    ///
    /// `Control*` options are left out: they say how long a master lives, not what it is.
    pub fn socket_key(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut spec = self.clone();
        let mut words = Vec::new();
        let mut it = self.extra_args.iter();
        while let Some(w) = it.next() {
            let option = match w.as_str() {
                "-o" => it.next().cloned().unwrap_or_default(),
                _ => w.strip_prefix("-o").unwrap_or_default().to_string(),
            };
            if !option.to_ascii_lowercase().starts_with("control") {
                words.push(w.clone());
                if w == "-o" {
                    words.push(option);
                }
            }
        }
        spec.extra_args = words;
        let digest = Sha256::digest(format!("{spec:?}").as_bytes());
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// `user@host:port` for messages.
    pub fn label(&self) -> String {
        let user = self
            .user
            .as_ref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        format!("{user}{}{port}", self.host)
    }
}

/// Options taken from `-o K=V`, `-i`, `-p`, `-l` words of the common/extra args.
#[derive(Default)]
struct ParsedArgs {
    options: Vec<(String, String)>,
    key: Option<PathBuf>,
    port: Option<u16>,
    user: Option<String>,
    /// `ControlPersist` if given (the first value wins, as in ssh): `Some(None)` is "no".
    persist: Option<Option<ControlPersist>>,
}

/// Parses an ssh `ControlPersist` value: `yes`, `no`, or a time (`60`, `60s`, `10m`, `1h`).
fn parse_control_persist(v: &str) -> Result<Option<ControlPersist>, TransportError> {
    let v = v.trim().to_ascii_lowercase();
    match v.as_str() {
        "yes" | "true" => return Ok(Some(ControlPersist::Forever)),
        "no" | "false" | "0" => return Ok(None),
        _ => {}
    }
    let (digits, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let scale = match unit {
        "" | "s" => Some(1),
        "m" => Some(60),
        "h" => Some(3600),
        "d" => Some(86400),
        "w" => Some(604800),
        _ => None,
    };
    match (digits.parse::<usize>(), scale) {
        (Ok(n), Some(scale)) => {
            Ok(std::num::NonZeroUsize::new(n.saturating_mul(scale)).map(ControlPersist::IdleFor))
        }
        _ => Err(TransportError::Failed(format!(
            "unsupported ControlPersist value {v:?} in ssh arguments (yes, no, or a time like 60s)"
        ))),
    }
}

fn parse_args(words: &[String]) -> Result<ParsedArgs, TransportError> {
    let mut out = ParsedArgs::default();
    let mut it = words.iter();
    while let Some(w) = it.next() {
        let (flag, inline) = match (w.get(..2), w.get(2..)) {
            (Some(f), Some(rest)) if !rest.is_empty() && f.starts_with('-') && f != "--" => {
                (f, Some(rest.to_string()))
            }
            _ => (w.as_str(), None),
        };
        let mut value = || inline.clone().or_else(|| it.next().cloned());
        match flag {
            "-o" => {
                let v = value().unwrap_or_default();
                let (k, val) = v
                    .split_once('=')
                    .or_else(|| v.split_once(' '))
                    .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
                    .unwrap_or((v.clone(), String::new()));
                match k.to_ascii_lowercase().as_str() {
                    // the agent owns its control sockets
                    "controlmaster" | "controlpath" => {}
                    "controlpersist" => {
                        let value = parse_control_persist(&val)?;
                        out.persist.get_or_insert(value);
                    }
                    _ => out.options.push((k, val)),
                }
            }
            "-i" => out.key = value().map(PathBuf::from),
            "-p" => out.port = value().and_then(|p| p.parse().ok()),
            "-l" => out.user = value(),
            "-q" | "-C" | "-4" | "-6" | "-T" | "-tt" | "-t" => {}
            other => {
                return Err(TransportError::Failed(format!(
                    "unsupported ssh argument {other:?} in ansible_ssh_common_args/extra_args (use -o Key=Value)"
                )))
            }
        }
    }
    Ok(out)
}

/// The ssh config file for a master, if it needs one: the user's `-o` options first, then the
/// config files ssh reads when given none (a config file of our own replaces them), then the
/// relay, so that a proxy of the user's wins (ssh keeps the first value it reads).
fn config_text(options: &[String], relay_line: Option<String>) -> Option<String> {
    if options.is_empty() && relay_line.is_none() {
        return None;
    }
    let mut text: String = options.iter().map(|l| format!("{l}\n")).collect();
    if let Ok(home) = std::env::var("HOME") {
        let user_cfg = Path::new(&home).join(".ssh/config");
        if user_cfg.is_file() {
            text.push_str(&format!("Include {}\n", user_cfg.display()));
        }
    }
    text.push_str("Include /etc/ssh/ssh_config\n");
    if let Some(line) = relay_line {
        // an included file may end inside a `Host` block: apply to every host again
        text.push_str(&format!("Match all\n{line}\n"));
    }
    Some(text)
}

/// OpenSSH's own check of a destination host name: no leading `-`, no shell metacharacters,
/// spaces or control characters.
fn valid_hostname(host: &str) -> bool {
    !host.is_empty()
        && !host.starts_with('-')
        && !host
            .chars()
            .any(|c| "'`\"$\\;&<>|(){}".contains(c) || c.is_whitespace() || c.is_control())
}

/// An open master connection.
pub struct Opened {
    /// The multiplexed session.
    pub session: Session,
    /// A kept master's own directory under `control_path_dir` (its socket, and what runs
    /// over it remember about the host: see `transport/cache.rs`); `Some` when the master
    /// outlives the run (`ControlPersist`): leave it running at the end.
    pub kept_dir: Option<std::path::PathBuf>,
}

/// Opens the master connection, or with `ControlPersist` reuses a live one that an earlier
/// run left under `persist_dir`; failures are [`TransportError::Unreachable`].
pub async fn connect(
    spec: &SshSpec,
    control_dir: &Path,
    persist_dir: &Path,
) -> Result<Opened, TransportError> {
    if !valid_hostname(&spec.host) {
        // ssh would refuse it before writing the log the openssh crate reads its error from
        return Err(TransportError::Unreachable(
            "Failed to connect to the host via ssh: hostname contains invalid characters".into(),
        ));
    }
    let parsed = parse_args(&spec.extra_args)?;
    let mut b = SessionBuilder::default();
    b.control_directory(control_dir);
    b.connect_timeout(Duration::from_secs(spec.timeout.max(1)));
    b.server_alive_interval(Duration::from_secs(15));
    let mut check = if spec.host_key_checking {
        KnownHosts::Strict
    } else {
        KnownHosts::Accept
    };
    if !spec.host_key_checking {
        b.user_known_hosts_file("/dev/null");
    }
    if let Some(p) = parsed.port.or(spec.port) {
        b.port(p);
    }
    if let Some(u) = spec.user.clone().or(parsed.user.clone()) {
        b.user(u);
    }
    if let Some(k) = spec.key.clone().or(parsed.key.clone()) {
        b.keyfile(k);
    }
    let mut config_lines = Vec::new();
    for (k, v) in &parsed.options {
        match k.to_ascii_lowercase().as_str() {
            "stricthostkeychecking" => {
                check = match v.to_ascii_lowercase().as_str() {
                    "no" | "off" => KnownHosts::Accept,
                    "accept-new" => KnownHosts::Add,
                    _ => KnownHosts::Strict,
                }
            }
            "userknownhostsfile" => {
                b.user_known_hosts_file(v);
            }
            _ => config_lines.push(format!("{k} {v}")),
        }
    }
    b.known_hosts_check(check);
    let connect_timeout = parsed
        .options
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("connecttimeout"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(spec.timeout.max(1));
    let config_file = tempfile::Builder::new()
        .prefix("ssh-config")
        .tempfile_in(control_dir)
        .map_err(|e| TransportError::Failed(format!("cannot write ssh config: {e}")))?;
    let relay_error = config_file.path().with_extension("relay-error");
    if let Some(text) = config_text(
        &config_lines,
        relay::config_line(connect_timeout, &relay_error),
    ) {
        std::fs::write(config_file.path(), text)
            .map_err(|e| TransportError::Failed(format!("cannot write ssh config: {e}")))?;
        b.config_file(config_file.path());
    }
    // the relay's own words for a failed connect beat ssh's "Connection closed" that follows
    let unreachable = |e: openssh::Error| {
        TransportError::Unreachable(match relay::take_error(&relay_error) {
            Some(said) => format!("Failed to connect to the host via ssh: {said}"),
            None => describe(&e),
        })
    };
    // a master that is not kept still expires by itself when idle (Ansible's 60 s), should
    // the agent die without stopping it (kill -9)
    b.control_persist(ControlPersist::IdleFor(
        std::num::NonZeroUsize::new(NON_PERSISTENT_IDLE_SECS).expect("non-zero"),
    ));
    let dir = persist_dir.join(format!("ea-{}", spec.socket_key()));
    let persist = match parsed.persist {
        Some(Some(persist)) if socket_path_fits(&dir) => Some(persist),
        Some(Some(_)) => {
            tracing::warn!(target: "etcd_agent::transport", target_host = %spec.label(), dir = %dir.display(), "control_path_dir is too long for a control socket: this master ends with the run");
            None
        }
        _ => None,
    };
    let Some(persist) = persist else {
        let _timed = crate::timing::span(crate::timing::Phase::Handshake);
        #[cfg(feature = "native-mux")]
        let session = b.connect_mux(&spec.host).await;
        #[cfg(not(feature = "native-mux"))]
        let session = b.connect(&spec.host).await;
        return session
            .map(|session| Opened {
                session,
                kept_dir: None,
            })
            .map_err(unreachable);
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| {
            TransportError::Failed(format!(
                "cannot create control path dir {}: {e}",
                dir.display()
            ))
        })?;
    let reusing = std::time::Instant::now();
    if let Some(session) = resume_live_master(&dir).await {
        crate::timing::record(crate::timing::Phase::Reuse, reusing);
        tracing::debug!(target: "etcd_agent::transport", target_host = %spec.label(), "reusing persistent ssh connection");
        return Ok(Opened {
            session,
            kept_dir: Some(dir),
        });
    }
    b.control_directory(&dir);
    b.control_persist(persist);
    let _timed = crate::timing::span(crate::timing::Phase::Handshake);
    let master = b.launch_master(&spec.host).await.map_err(unreachable)?;
    let master = master.keep();
    Ok(Opened {
        session: resume(&master),
        kept_dir: Some(dir),
    })
}

/// Longest control socket path ssh accepts: `sun_path` holds 108 bytes with the final NUL,
/// and ssh first binds a temp name 17 bytes longer than `master`.
const SOCKET_PATH_MAX: usize = 107;

/// Whether the sockets of a master kept in `dir` (`<dir>/.ssh-connectionXXXXXX/master`, bound
/// first as `master.XXXXXXXXXXXXXXXX`) fit in a Unix socket address.
fn socket_path_fits(dir: &Path) -> bool {
    dir.as_os_str().len() + "/.ssh-connectionXXXXXX/master.XXXXXXXXXXXXXXXX".len()
        <= SOCKET_PATH_MAX
}

/// A session over the master whose control socket is `<dir>/master` (it is not stopped when
/// the session is dropped).
fn resume(dir: &Path) -> Session {
    let (ctl, log) = (dir.join("master").into(), Some(dir.join("log").into()));
    #[cfg(feature = "native-mux")]
    return Session::resume_mux(ctl, log);
    #[cfg(not(feature = "native-mux"))]
    return Session::resume(ctl, log);
}

/// Finds a master left by an earlier run in `dir` that still answers; clears out the
/// remains of masters that are gone.
async fn resume_live_master(dir: &Path) -> Option<Session> {
    let entries = std::fs::read_dir(dir).ok()?;
    for entry in entries.flatten() {
        let path = entry.path();
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with(".ssh-connection")
        {
            continue;
        }
        if path.join("master").exists() {
            let session = resume(&path);
            if session.check().await.is_ok() {
                return Some(session);
            }
        } else {
            // a master that exited, or one another run is still starting: only old ones go
            let age = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok());
            if age.is_none_or(|a| a < Duration::from_secs(600)) {
                continue;
            }
        }
        let _ = std::fs::remove_dir_all(&path);
    }
    None
}

/// Ansible's wording: `Failed to connect to the host via ssh: <what ssh said>`.
fn describe(e: &openssh::Error) -> String {
    let mut last = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        last = inner.to_string();
        src = inner.source();
    }
    let last = last.trim();
    let said =
        if last.starts_with("connect to host") || last.starts_with("Could not resolve hostname") {
            format!("ssh: {last}")
        } else {
            last.to_string()
        };
    format!("Failed to connect to the host via ssh: {said}")
}

/// Runs `cmd` through the remote login shell over the multiplexed session.
pub async fn exec(
    session: &Session,
    cmd: &str,
    stdin: Option<&[u8]>,
) -> Result<ExecOutput, TransportError> {
    let line = match stdin {
        Some(_) => format!("/bin/sh -c {}", super::quote(cmd)),
        None => format!(
            "/bin/sh -c {} etcd-agent {}",
            super::quote(super::watch::WATCHED),
            super::quote(cmd)
        ),
    };
    let mut command = session.raw_command(line);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .await
        .map_err(|e| TransportError::Unreachable(describe(&e)))?;
    // without input, stdin stays open until the command exits: the watcher's signal
    let mut held = None;
    match (stdin, child.stdin().take()) {
        (Some(data), Some(mut pipe)) => match pipe.write_all(data).await {
            // the command exited without reading all of its input: its exit status tells
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => {
                return Err(TransportError::Unreachable(format!(
                    "writing to remote command: {e}"
                )))
            }
            Ok(()) => {
                let _ = pipe.shutdown().await;
            }
        },
        (None, pipe) => held = pipe,
        (Some(_), None) => {}
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| TransportError::Unreachable(describe(&e)))?;
    drop(held);
    Ok(ExecOutput {
        rc: super::watch::exit_code(&out.status),
        stdout: out.stdout,
        stderr: out.stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::{
        config_text, parse_args, parse_control_persist, socket_path_fits, valid_hostname, SshSpec,
    };
    use openssh::ControlPersist;

    #[test]
    fn control_persist_values() {
        let secs = |v: &str| match parse_control_persist(v).unwrap() {
            Some(ControlPersist::IdleFor(n)) => Some(n.get()),
            Some(ControlPersist::Forever) => Some(usize::MAX),
            _ => None,
        };
        assert_eq!(secs("60s"), Some(60));
        assert_eq!(secs("60"), Some(60));
        assert_eq!(secs("10m"), Some(600));
        assert_eq!(secs("1h"), Some(3600));
        assert_eq!(secs("yes"), Some(usize::MAX));
        assert_eq!(secs("no"), None);
        assert_eq!(secs("0"), None);
        assert!(parse_control_persist("soon").is_err());
        assert!(parse_control_persist("5x").is_err());
        // the first value wins, as in ssh, and "no" counts as a value
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let first_no = parse_args(&words(&["-o", "ControlPersist=no", "-oControlPersist=60"]));
        assert!(matches!(first_no.unwrap().persist, Some(None)));
        let parsed = parse_args(&words(&[
            "-o",
            "ControlMaster=auto",
            "-o",
            "ControlPath=/x",
        ]));
        assert!(
            parsed.unwrap().options.is_empty(),
            "the agent owns its control sockets"
        );
    }

    #[test]
    fn socket_key_ignores_control_options_only() {
        let spec = |args: &[&str]| SshSpec {
            host: "127.0.0.1".into(),
            port: Some(22),
            user: None,
            key: None,
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            host_key_checking: true,
            timeout: 10,
        };
        let base = spec(&["-o", "ServerAliveInterval=5"]).socket_key();
        assert_eq!(
            spec(&[
                "-o",
                "ControlPersist=60s",
                "-o",
                "ServerAliveInterval=5",
                "-oControlMaster=auto"
            ])
            .socket_key(),
            base
        );
        assert_ne!(spec(&["-o", "ServerAliveInterval=6"]).socket_key(), base);
    }

    #[test]
    fn long_control_path_dirs_do_not_fit() {
        assert!(socket_path_fits(std::path::Path::new(
            "/root/.ansible/cp/ea-0123456789abcdef"
        )));
        let long = format!("/tmp/{}/cp/ea-0123456789abcdef", "x".repeat(40));
        assert!(!socket_path_fits(std::path::Path::new(&long)));
    }

    #[test]
    fn ssh_args_forms() {
        let words: Vec<String> = [
            "-o",
            "StrictHostKeyChecking=no",
            "-oUserKnownHostsFile=/x",
            "-i",
            "k",
            "-p2222",
            "-o",
            "ConnectTimeout 5",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let p = parse_args(&words).unwrap();
        assert_eq!(p.options[0], ("StrictHostKeyChecking".into(), "no".into()));
        assert_eq!(p.options[1], ("UserKnownHostsFile".into(), "/x".into()));
        assert_eq!(p.options[2], ("ConnectTimeout".into(), "5".into()));
        assert_eq!(p.key.unwrap().to_str(), Some("k"));
        assert_eq!(p.port, Some(2222));
        assert!(parse_args(&["-Ë".to_string()]).is_err());
        assert!(parse_args(&["--weird".to_string()]).is_err());
    }

    #[test]
    fn config_puts_the_relay_after_everything_of_the_users() {
        assert_eq!(
            config_text(&[], None),
            None,
            "nothing to say: ssh's defaults"
        );
        let text = config_text(
            &["ProxyJump bastion".to_string()],
            Some("ProxyCommand relay %h %p".to_string()),
        )
        .unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ProxyJump bastion");
        assert!(lines.contains(&"Include /etc/ssh/ssh_config"));
        assert_eq!(
            lines[lines.len() - 2..],
            ["Match all", "ProxyCommand relay %h %p"]
        );
    }

    #[test]
    fn host_names_ssh_refuses() {
        for ok in ["db1.example.com", "127.0.0.1", "::1", "host_x"] {
            assert!(valid_hostname(ok), "{ok}");
        }
        for bad in ["a b", "{{ x }}", "-oProxyCommand=x", "a;b", "a$b", ""] {
            assert!(!valid_hostname(bad), "{bad}");
        }
    }
}
