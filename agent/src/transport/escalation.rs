//! `become`: the command line that runs a command as another user on the target (`sudo` or
//! `su`), and how the escalation password reaches `sudo`/`su`: on the command's stdin, in front
//! of the command's own input, never in an argument, an environment variable or a log line.
//!
//! `sudo` without a password runs as before, `sudo -H -S -n`. With a password, a small
//! `/bin/sh` wrapper reads the first line of its stdin (the password) into a shell variable
//! and asks sudo whether the policy wants a password (`sudo -k -n ... :`). If not, the
//! command runs with `sudo -n` and the password is never used. If so, it checks the password
//! once (`printf | sudo -k -S ... :`, `printf` being a shell builtin, no process sees it), and
//! only a password that passed goes in front of the rest of stdin to `sudo -k -S`, which reads
//! exactly that line: a wrong password never makes sudo read the command's own input as more
//! attempts. A failed check is Ansible's "Incorrect sudo password".
//!
//! `su` always reads its password from its own stdin (empty, or the password piped by the
//! wrapper), while the command's stdin, stdout and stderr reach it through descriptors su
//! leaves open, so su's prompt and messages never mix with the command's output. The command
//! announces that it started on a descriptor of its own; without that announcement the
//! escalation failed ("Incorrect su password" when the password was refused).

use super::{quote, ExecOutput};
use crate::secret::Secret;
use std::borrow::Cow;

/// Printed (with su's own words after it) on stderr when escalation failed before the
/// command ran.
const FAILED: &str = "ETCD_AGENT_BECOME_FAILED";

/// Printed by the command run through `su` as it starts.
const STARTED: &str = "ETCD_AGENT_BECOME_STARTED";

/// A privilege escalation method the agent implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BecomeMethod {
    /// `sudo` (Ansible's default).
    #[default]
    Sudo,
    /// `su`.
    Su,
}

/// A `become_method` the agent does not implement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("become_method {0:?} is not supported by etcd-agent (sudo, su)")]
pub struct UnknownMethod(pub String);

impl BecomeMethod {
    /// The method named `name` (short name or `ansible.builtin.` FQCN).
    pub fn parse(name: &str) -> Result<Self, UnknownMethod> {
        match name
            .trim()
            .strip_prefix("ansible.builtin.")
            .unwrap_or(name.trim())
        {
            "sudo" => Ok(BecomeMethod::Sudo),
            "su" => Ok(BecomeMethod::Su),
            _ => Err(UnknownMethod(name.to_string())),
        }
    }

    /// The method's name, as Ansible's messages give it.
    pub fn name(self) -> &'static str {
        match self {
            BecomeMethod::Sudo => "sudo",
            BecomeMethod::Su => "su",
        }
    }
}

/// How one command becomes another user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    /// The user to become.
    pub user: String,
    /// `sudo` or `su`.
    pub method: BecomeMethod,
    /// The escalation password, if one was given.
    pub password: Option<Secret>,
}

impl Escalation {
    /// The command line that runs `cmd` (a `/bin/sh` command line) as [`Escalation::user`].
    pub fn wrap(&self, cmd: &str) -> String {
        let user = quote(&self.user);
        match (self.method, &self.password) {
            (BecomeMethod::Sudo, None) => {
                format!("sudo -H -S -n -u {user} /bin/sh -c {}", quote(cmd))
            }
            (BecomeMethod::Sudo, Some(_)) => format!(
                "IFS= read -r ea_p || ea_p=\n\
                 if sudo -k -n -u {user} /bin/sh -c : 2>/dev/null; then\n\
                 unset ea_p; exec sudo -H -S -n -u {user} /bin/sh -c {c}\n\
                 fi\n\
                 if printf '%s\\n' \"$ea_p\" | sudo -k -S -p '' -u {user} /bin/sh -c : >/dev/null 2>&1; then\n\
                 {{ printf '%s\\n' \"$ea_p\"; unset ea_p; exec cat; }} | sudo -k -H -S -p '' -u {user} /bin/sh -c {c}\n\
                 exit $?\n\
                 fi\n\
                 echo {FAILED} >&2\n\
                 exit 1\n",
                c = quote(cmd),
            ),
            (BecomeMethod::Su, password) => {
                let inner = format!(
                    "printf %s {STARTED} >&5; exec /bin/sh -c {} <&3 >&6 2>&7 3<&- 5>&- 6>&- 7>&-",
                    quote(cmd)
                );
                let su = format!("su {user} -c {}", quote(&inner));
                let (read, feed) = match password {
                    Some(_) => (
                        "IFS= read -r ea_p || ea_p=\n",
                        format!("printf '%s\\n' \"$ea_p\" | {su}"),
                    ),
                    None => ("", format!("{su} </dev/null")),
                };
                format!(
                    "exec 6>&1 7>&2\n\
                     {read}\
                     ea_r=$( {{ {feed} 2>&1; printf ' %s' \"$?\"; }} 3<&0 5>&1 )\n\
                     unset ea_p\n\
                     case $ea_r in *{STARTED}*) exit \"${{ea_r##* }}\";; esac\n\
                     printf '%s %s\\n' {FAILED} \"${{ea_r% *}}\" >&2\n\
                     exit 1\n"
                )
            }
        }
    }

    /// The stdin to send with a wrapped command: the password line in front of `stdin` when
    /// the wrapper reads one.
    pub fn stdin<'a>(&self, stdin: Option<&'a [u8]>) -> Option<Cow<'a, [u8]>> {
        match &self.password {
            None => stdin.map(Cow::Borrowed),
            Some(pw) => {
                let rest = stdin.unwrap_or_default();
                let mut data = Vec::with_capacity(pw.expose().len() + 1 + rest.len());
                data.extend_from_slice(pw.expose().as_bytes());
                data.push(b'\n');
                data.extend_from_slice(rest);
                Some(Cow::Owned(data))
            }
        }
    }

    /// Why the escalation itself failed (the command never ran), in Ansible's words, from the
    /// output of a wrapped command; `None` when the command ran (whatever its result).
    pub fn failure(&self, out: &ExecOutput) -> Option<String> {
        let stderr = out.stderr_text();
        let method = self.method.name();
        if let Some(line) = stderr.lines().find(|l| l.starts_with(FAILED)) {
            let words = line[FAILED.len()..].trim();
            return Some(match (&self.password, self.method) {
                (Some(_), BecomeMethod::Sudo) => format!("Incorrect {method} password"),
                (Some(_), BecomeMethod::Su) if words.contains("Authentication failure") => {
                    format!("Incorrect {method} password")
                }
                (None, BecomeMethod::Su) if words.contains("Authentication failure") => {
                    format!("Missing {method} password")
                }
                _ => format!(
                    "{method} failed: {}",
                    words.trim_start_matches("Password:").trim()
                ),
            });
        }
        if self.method == BecomeMethod::Sudo
            && self.password.is_none()
            && out.rc != 0
            && out.stdout.is_empty()
            && stderr.trim() == "sudo: a password is required"
        {
            return Some(format!("Missing {method} password"));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn escalation(method: BecomeMethod, password: Option<&str>) -> Escalation {
        Escalation {
            user: "root".into(),
            method,
            password: password.map(|p| Secret::new(p.into())),
        }
    }

    /// Runs `wrapped` with `sh -c` and `stdin` (a pipe, or a file as the persistent remote
    /// shell gives it), with `dir` (holding fakes) first in PATH.
    fn run_with(dir: &std::path::Path, wrapped: &str, stdin: &[u8], file: bool) -> ExecOutput {
        use std::io::Write;
        let path = format!(
            "{}:{}",
            dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let input = dir.join("stdin");
        std::fs::write(&input, stdin).unwrap();
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(wrapped)
            .env("PATH", path)
            .stdin(if file {
                Stdio::from(std::fs::File::open(&input).unwrap())
            } else {
                Stdio::piped()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(mut pipe) = child.stdin.take() {
            pipe.write_all(stdin).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        ExecOutput {
            rc: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: out.stderr,
        }
    }

    fn run(dir: &std::path::Path, wrapped: &str, stdin: &[u8]) -> ExecOutput {
        run_with(dir, wrapped, stdin, false)
    }

    /// A `sudo` and an `su` that want the password `pw` (unless `$NOPASS` exists), read it
    /// from stdin as the real ones do, and run the command.
    fn fakes(dir: &std::path::Path) {
        use std::os::unix::fs::PermissionsExt;
        let sudo = r#"#!/bin/sh
n=; S=
while [ $# -gt 0 ]; do case $1 in -n) n=1; shift;; -S|-H|-k) shift;; -p|-u) shift 2;; *) break;; esac; done
if [ ! -e "$(dirname "$0")/NOPASS" ]; then
  [ -n "$n" ] && { echo "sudo: a password is required" >&2; exit 1; }
  IFS= read -r got || got=
  [ "$got" = pw ] || { echo "Sorry, try again." >&2; exit 1; }
fi
exec "$@"
"#;
        let su = r#"#!/bin/sh
user=$1; shift; [ "$1" = -c ] || exit 2
printf 'Password: ' >&2
IFS= read -r got || got=
[ "$got" = pw ] || { echo "su: Authentication failure" >&2; exit 1; }
exec /bin/sh -c "$2"
"#;
        for (name, text) in [("sudo", sudo), ("su", su)] {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    #[test]
    fn methods_by_name() {
        assert_eq!(BecomeMethod::parse("su"), Ok(BecomeMethod::Su));
        assert_eq!(
            BecomeMethod::parse("ansible.builtin.sudo"),
            Ok(BecomeMethod::Sudo)
        );
        assert!(BecomeMethod::parse("doas").is_err());
    }

    #[test]
    fn the_password_goes_on_stdin_and_the_command_keeps_its_own_input() {
        let dir = tempfile::tempdir().unwrap();
        fakes(dir.path());
        // stdin as a pipe (local commands) and as a file (the persistent remote shell's)
        for (method, file) in [
            (BecomeMethod::Sudo, false),
            (BecomeMethod::Su, false),
            (BecomeMethod::Sudo, true),
            (BecomeMethod::Su, true),
        ] {
            let e = escalation(method, Some("pw"));
            let wrapped = e.wrap("cat; echo err >&2; exit 3");
            assert!(
                !wrapped.contains("pw\n") && !wrapped.contains("'pw'"),
                "{wrapped}"
            );
            let stdin = e.stdin(Some(b"line1\nline2\n")).unwrap();
            let out = run_with(dir.path(), &wrapped, &stdin, file);
            assert_eq!(out.stdout_text(), "line1\nline2\n", "{method:?} {out:?}");
            assert_eq!(out.stderr_text(), "err\n", "{method:?}");
            assert_eq!(out.rc, 3, "{method:?}");
            assert_eq!(e.failure(&out), None);
        }
    }

    #[test]
    fn a_wrong_password_never_reaches_the_command_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        fakes(dir.path());
        for (method, words) in [
            (BecomeMethod::Sudo, "Incorrect sudo password"),
            (BecomeMethod::Su, "Incorrect su password"),
        ] {
            let e = escalation(method, Some("wrong"));
            let stdin = e.stdin(Some(b"pw\n")).unwrap();
            let out = run(dir.path(), &e.wrap("echo ran"), &stdin);
            assert_eq!(out.stdout_text(), "", "{method:?}");
            assert_eq!(e.failure(&out).as_deref(), Some(words), "{out:?}");
            assert!(!out.stderr_text().contains("wrong"), "{out:?}");
        }
    }

    #[test]
    fn sudo_without_a_password_policy_ignores_the_password_line() {
        let dir = tempfile::tempdir().unwrap();
        fakes(dir.path());
        std::fs::write(dir.path().join("NOPASS"), "").unwrap();
        let e = escalation(BecomeMethod::Sudo, Some("pw"));
        let stdin = e.stdin(Some(b"data\n")).unwrap();
        let out = run(dir.path(), &e.wrap("cat"), &stdin);
        assert_eq!(out.stdout_text(), "data\n");
        let none = escalation(BecomeMethod::Sudo, None);
        let out = run(dir.path(), &none.wrap("cat"), b"more\n");
        assert_eq!(out.stdout_text(), "more\n");
    }
}
