//! The SSH transport: one `openssh` master connection per target, commands multiplexed over it.

use super::{ExecOutput, TransportError};
use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Everything needed to open an SSH connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SshSpec {
    /// The inventory host this connection serves: each inventory host gets its own
    /// connection even when several share one address.
    pub inventory_host: String,
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
                out.options.push((k, val));
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

/// Opens the master connection; failures are [`TransportError::Unreachable`].
pub async fn connect(
    spec: &SshSpec,
    control_dir: &std::path::Path,
) -> Result<Session, TransportError> {
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
    let _config_file;
    if !config_lines.is_empty() {
        let mut text = config_lines.join("\n");
        text.push('\n');
        if let Ok(home) = std::env::var("HOME") {
            let user_cfg = std::path::Path::new(&home).join(".ssh/config");
            if user_cfg.is_file() {
                text.push_str(&format!("Include {}\n", user_cfg.display()));
            }
        }
        let f = tempfile::Builder::new()
            .prefix("ssh-config")
            .tempfile_in(control_dir)
            .map_err(|e| TransportError::Failed(format!("cannot write ssh config: {e}")))?;
        std::fs::write(f.path(), text)
            .map_err(|e| TransportError::Failed(format!("cannot write ssh config: {e}")))?;
        b.config_file(f.path());
        _config_file = Some(f);
    }
    #[cfg(feature = "native-mux")]
    let session = b.connect_mux(&spec.host).await;
    #[cfg(not(feature = "native-mux"))]
    let session = b.connect(&spec.host).await;
    session.map_err(|e| TransportError::Unreachable(describe(&e)))
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
    let mut command = session.raw_command(format!("/bin/sh -c {}", super::quote(cmd)));
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .await
        .map_err(|e| TransportError::Unreachable(describe(&e)))?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin().take()) {
        pipe.write_all(data)
            .await
            .map_err(|e| TransportError::Unreachable(format!("writing to remote command: {e}")))?;
        let _ = pipe.shutdown().await;
        drop(pipe);
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| TransportError::Unreachable(describe(&e)))?;
    Ok(ExecOutput {
        rc: super::local::exit_code(&out.status),
        stdout: out.stdout,
        stderr: out.stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_args;

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
}
