//! A private OpenSSH server on `127.0.0.1:<free port>` for Ansible tests.
//!
//! Own host key, own client key, `AuthorizedKeysFile`, config, log and
//! `known_hosts`, all in a temp dir; nothing in `~/.ssh` or `/etc` is read
//! for authentication or written. It runs under the subreaper wrapper
//! ([`crate::reaper`]) so processes started in the background over ssh are
//! killed and reaped with it.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::paths::{log_tail, SSHD_BIN, SSH_BIN, SSH_KEYGEN_BIN};
use crate::poll::{poll_until, DEFAULT_TIMEOUT};
use crate::process::{child_pids, guarded_command, terminate_and_reap};
use crate::reaper::reaped_command;
use crate::scratch::scratch_dir;

/// Host names the generated `known_hosts` vouches for (with the port).
pub const KNOWN_HOST_NAMES: &[&str] = &["127.0.0.1", "localhost"];

/// A running sshd; killed (with all its sessions) and reaped on drop.
#[derive(Debug)]
pub struct Sshd {
    dir: TempDir,
    port: u16,
    addresses: Vec<Ipv4Addr>,
    user: String,
    client_key: PathBuf,
    known_hosts: PathBuf,
    log: PathBuf,
    config: PathBuf,
    wrapper: Option<Child>,
}

fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn keygen(path: &Path) {
    run_ok(
        guarded_command(SSH_KEYGEN_BIN)
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "etcd-agent-test",
                "-f",
            ])
            .arg(path),
        "ssh-keygen",
    );
}

fn current_user() -> String {
    let out = run_ok(guarded_command("id").arg("-un"), "id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    l.local_addr().expect("local_addr").port()
}

impl Sshd {
    /// Starts sshd and waits until a real `ssh ... true` login succeeds.
    /// Retries with another port if the chosen one was taken meanwhile.
    pub fn start() -> Sshd {
        Sshd::start_on(&[])
    }

    /// Like [`Sshd::start`], but also listening (same port) on the extra
    /// loopback addresses `extra` (e.g. the cluster members' IPs, so each
    /// inventory host can have its member's address as `ansible_host`).
    /// `known_hosts` vouches for every address. All must be in 127.0.0.0/8.
    pub fn start_on(extra: &[Ipv4Addr]) -> Sshd {
        Sshd::start_with(extra, "")
    }

    /// Like [`Sshd::start_on`], with `extra_config` appended to the generated `sshd_config`
    /// (after every global option, so it may hold `Match` blocks).
    pub fn start_with(extra: &[Ipv4Addr], extra_config: &str) -> Sshd {
        for ip in extra {
            assert!(
                ip.is_loopback(),
                "Sshd::start_on: {ip} is not a loopback address"
            );
        }
        // Privilege-separation dir, as the Debian service creates it.
        let run = Path::new("/run/sshd");
        if !run.exists() {
            std::fs::create_dir_all(run).expect("create /run/sshd");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(run, std::fs::Permissions::from_mode(0o755))
                .expect("chmod /run/sshd");
        }
        let dir = scratch_dir("sshd");
        let d = dir.path();
        let host_key = d.join("ssh_host_ed25519_key");
        let client_key = d.join("id_ed25519");
        keygen(&host_key);
        keygen(&client_key);
        let authorized = d.join("authorized_keys");
        std::fs::copy(d.join("id_ed25519.pub"), &authorized).expect("write authorized_keys");
        let host_pub =
            std::fs::read_to_string(d.join("ssh_host_ed25519_key.pub")).expect("read host pub key");
        let host_pub = host_pub
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let user = current_user();

        let mut sshd = Sshd {
            known_hosts: d.join("known_hosts"),
            log: d.join("sshd.log"),
            config: d.join("sshd_config"),
            dir,
            port: 0,
            addresses: std::iter::once(Ipv4Addr::LOCALHOST)
                .chain(extra.iter().copied())
                .collect(),
            user,
            client_key,
            wrapper: None,
        };
        let mut last_err = String::new();
        for _attempt in 0..5 {
            sshd.port = free_port();
            let port = sshd.port;
            let config =
                Self::config(sshd.dir.path(), port, &host_key, &authorized, extra) + extra_config;
            std::fs::write(&sshd.config, config).expect("write sshd_config");
            let names: Vec<String> = KNOWN_HOST_NAMES
                .iter()
                .map(|h| h.to_string())
                .chain(extra.iter().map(Ipv4Addr::to_string))
                .map(|h| format!("[{h}]:{port}"))
                .collect();
            std::fs::write(
                &sshd.known_hosts,
                format!("{} {host_pub}\n", names.join(",")),
            )
            .expect("write known_hosts");
            let wrapper = reaped_command(sshd.dir.path(), SSHD_BIN)
                .args(["-D", "-e", "-f"])
                .arg(&sshd.config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&sshd.log).expect("create sshd.log"))
                .spawn()
                .unwrap_or_else(|e| panic!("spawn sshd: {e}"));
            sshd.wrapper = Some(wrapper);
            let up = poll_until(DEFAULT_TIMEOUT, || {
                if let Some(Ok(Some(_))) = sshd.wrapper.as_mut().map(Child::try_wait) {
                    return Some(false);
                }
                sshd.ssh("true").status.success().then_some(true)
            });
            match up {
                Some(true) => return sshd,
                Some(false) => {
                    sshd.stop_wrapper();
                    last_err = log_tail(&sshd.log, 20);
                    // Port taken by someone else meanwhile: retry with another one.
                    if last_err.contains("Address already in use") {
                        continue;
                    }
                    panic!("sshd exited at start; log tail:\n{last_err}");
                }
                None => panic!(
                    "sshd on port {port} did not accept `ssh true` within {DEFAULT_TIMEOUT:?}; last ssh stderr: {}\nsshd log tail:\n{}",
                    String::from_utf8_lossy(&sshd.ssh("true").stderr),
                    log_tail(&sshd.log, 20)
                ),
            }
        }
        panic!("sshd could not bind a free port in 5 attempts; last log:\n{last_err}");
    }

    fn stop_wrapper(&mut self) {
        if let Some(mut w) = self.wrapper.take() {
            // The wrapper forwards SIGTERM to sshd, then kills all sessions.
            let (_, killed) = terminate_and_reap(&mut w, Duration::from_secs(30));
            if killed {
                eprintln!("harness: sshd wrapper did not exit on SIGTERM; killed it");
            }
        }
    }

    fn config(
        d: &Path,
        port: u16,
        host_key: &Path,
        authorized: &Path,
        extra: &[Ipv4Addr],
    ) -> String {
        let extra_listen: String = extra
            .iter()
            .map(|ip| format!("ListenAddress {ip}:{port}\n"))
            .collect();
        // `SetEnv SHLVL=1`: bash skips ~/.bashrc for ssh commands when SHLVL is already set.
        // This machine's root ~/.bashrc runs `pyenv init`, whose rehash takes a machine-wide
        // lock: every ssh command would pay ~0.1 s and all of them would queue behind each
        // other, which no real etcd host does and which would swamp what tests and benches
        // measure. Both engines see the same sshd.
        // `TMPDIR`: a module killed mid-run (a task `timeout`) leaves its AnsiballZ payload
        // directory behind; it lands in this sshd's scratch dir, removed with it, not in /tmp.
        let tmp = d.join("tmp");
        std::fs::create_dir_all(&tmp).expect("create the sessions' TMPDIR");
        format!(
            "ListenAddress 127.0.0.1:{port}\n\
             {extra_listen}\
             HostKey {}\n\
             AuthorizedKeysFile {}\n\
             PidFile none\n\
             StrictModes no\n\
             UsePAM no\n\
             PermitRootLogin prohibit-password\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UseDNS no\n\
             PrintMotd no\n\
             PrintLastLog no\n\
             X11Forwarding no\n\
             MaxStartups 100\n\
             MaxSessions 100\n\
             LogLevel INFO\n\
             Subsystem sftp internal-sftp\n\
             SetEnv SHLVL=1 TMPDIR={}\n\
             # scratch dir: {}\n",
            host_key.display(),
            authorized.display(),
            tmp.display(),
            d.display()
        )
    }

    /// TCP port sshd listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The login user: the user running the tests.
    pub fn user(&self) -> String {
        self.user.clone()
    }

    /// Private key accepted by this sshd.
    pub fn client_key(&self) -> &Path {
        &self.client_key
    }

    /// `known_hosts` with this sshd's host key for `[127.0.0.1]:port` and
    /// `[localhost]:port`.
    pub fn known_hosts(&self) -> &Path {
        &self.known_hosts
    }

    /// sshd's log file (`-e`: everything sshd logs goes there).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The sshd scratch directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `TMPDIR` of this sshd's sessions (`SetEnv`), inside its scratch directory.
    pub fn session_tmpdir(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    /// Pid of the listening sshd process (child of the reaper wrapper).
    pub fn pid(&self) -> Option<u32> {
        child_pids(self.wrapper_pid()?).into_iter().next()
    }

    /// Pid of the reaper wrapper that owns sshd and all its sessions.
    pub fn wrapper_pid(&self) -> Option<u32> {
        self.wrapper.as_ref().map(Child::id)
    }

    /// The generated `sshd_config`.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// ssh options for this server (strict host key checking ON, own
    /// known_hosts, only our key, no agent, no multiplexing, batch mode), as
    /// one string for `ansible_ssh_common_args`.
    pub fn ssh_common_args(&self) -> String {
        self.ssh_option_list().join(" ")
    }

    fn ssh_option_list(&self) -> Vec<String> {
        [
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "GlobalKnownHostsFile=/dev/null".into(),
            "StrictHostKeyChecking=yes".into(),
            "UpdateHostKeys=no".into(),
            "IdentitiesOnly=yes".into(),
            "IdentityAgent=none".into(),
            "BatchMode=yes".into(),
            "PasswordAuthentication=no".into(),
            "ConnectTimeout=30".into(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect()
    }

    /// INI inline host vars to reach this sshd from an Ansible inventory:
    /// `ansible_host=127.0.0.1 ansible_port=.. ansible_user=..
    /// ansible_ssh_private_key_file=.. ansible_ssh_common_args='..'
    /// ansible_python_interpreter=/usr/bin/python3`.
    pub fn inventory_host_vars(&self) -> String {
        format!(
            "ansible_host=127.0.0.1 ansible_port={} ansible_user={} ansible_ssh_private_key_file={} ansible_ssh_common_args='{}' ansible_python_interpreter=/usr/bin/python3",
            self.port,
            self.user,
            self.client_key.display(),
            self.ssh_common_args()
        )
    }

    /// Addresses sshd listens on: 127.0.0.1 first, then the `start_on` extras.
    pub fn addresses(&self) -> &[Ipv4Addr] {
        &self.addresses
    }

    /// [`Sshd::inventory_host_vars`] with `ansible_host={ip}`; `ip` must be
    /// one of [`Sshd::addresses`].
    pub fn inventory_host_vars_at(&self, ip: Ipv4Addr) -> String {
        assert!(
            self.addresses.contains(&ip),
            "sshd does not listen on {ip}; use Sshd::start_on(&[{ip}, ..])"
        );
        self.inventory_host_vars().replacen(
            "ansible_host=127.0.0.1",
            &format!("ansible_host={ip}"),
            1,
        )
    }

    /// Runs `cmd` (a shell command line) on this server over real ssh.
    pub fn ssh(&self, cmd: &str) -> Output {
        guarded_command(SSH_BIN)
            .args(self.ssh_option_list())
            .arg("-i")
            .arg(&self.client_key)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-l")
            .arg(&self.user)
            .arg("127.0.0.1")
            .arg("--")
            .arg(cmd)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {SSH_BIN}: {e}"))
    }

    /// Like [`Sshd::ssh`] but panics on failure; returns stdout.
    pub fn ssh_ok(&self, cmd: &str) -> String {
        let out = self.ssh(cmd);
        assert!(
            out.status.success(),
            "ssh {cmd:?} failed ({}): stdout: {} stderr: {}\nsshd log tail:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            log_tail(&self.log, 20)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop_wrapper();
        if std::thread::panicking() {
            eprintln!(
                "harness: sshd log tail ({}):\n{}",
                self.log.display(),
                log_tail(&self.log, 30)
            );
        }
    }
}
