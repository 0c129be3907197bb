//! Passwords the agent holds for a run (the privilege escalation password): a [`Secret`] never
//! shows its text in `Debug` output or logs, and the two ways to get one that Ansible's
//! command line has: a password file (`--become-password-file`) and a prompt (`-K`).

use std::fmt;
use std::io::{BufRead, Write};
use std::path::Path;

/// A password. Its text is reachable only through [`Secret::expose`]; `Debug` prints
/// `Secret(****)`, and the memory is overwritten when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a password.
    pub fn new(text: String) -> Self {
        Secret(text)
    }

    /// The password itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.fill(0);
        // kept observable, so the overwrite is not optimised away
        std::hint::black_box(&bytes);
    }
}

/// Why no password could be had, in Ansible's words.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file does not exist.
    #[error("The password file {0} was not found")]
    NotFound(String),
    /// The file could not be read.
    #[error("Could not read password file '{0}'.")]
    Unreadable(String),
    /// An executable password file could not be run.
    #[error("Problem occurred when trying to run the password script {0} ({1}). If this is not a script, remove the executable bit from the file.")]
    ScriptFailed(String, String),
    /// An executable password file exited non-zero.
    #[error("The password script {0} returned an error (rc={1}): {2}")]
    ScriptError(String, i32, String),
    /// The password came out empty.
    #[error("Empty password was provided from file ({0})")]
    Empty(String),
    /// The prompt could not be read.
    #[error("cannot read the password: {0}")]
    Prompt(String),
}

/// The password in `path` as Ansible's `get_password_from_file` reads it: `-` is stdin, an
/// executable file is run and its stdout is the password, another file's text is (blanks
/// around it trimmed); a trailing newline is never part of it, and an empty one is refused.
pub fn from_file(path: &Path) -> Result<Secret, SecretError> {
    let shown = path.display().to_string();
    let bytes = if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut buf)
            .map_err(|_| SecretError::Unreadable(shown.clone()))?;
        buf
    } else {
        let meta = std::fs::metadata(path).map_err(|_| SecretError::NotFound(shown.clone()))?;
        use std::os::unix::fs::PermissionsExt;
        if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
            let out = std::process::Command::new(path)
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| SecretError::ScriptFailed(shown.clone(), e.to_string()))?;
            if !out.status.success() {
                return Err(SecretError::ScriptError(
                    shown,
                    out.status.code().unwrap_or(-1),
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                ));
            }
            out.stdout
        } else {
            std::fs::read(path)
                .map_err(|_| SecretError::Unreadable(shown.clone()))?
                .trim_ascii()
                .to_vec()
        }
    };
    let start = bytes.iter().position(|c| !matches!(c, b'\r' | b'\n'));
    let end = bytes.iter().rposition(|c| !matches!(c, b'\r' | b'\n'));
    let text = match (start, end) {
        (Some(s), Some(e)) => String::from_utf8_lossy(&bytes[s..=e]).into_owned(),
        _ => return Err(SecretError::Empty(shown)),
    };
    Ok(Secret::new(text))
}

/// Asks for a password on the terminal with echo off (`text` is the prompt, e.g.
/// `BECOME password: `); without a terminal, the prompt goes to stderr and the line is read
/// from stdin.
pub fn ask(text: &str) -> Result<Secret, SecretError> {
    let stty = |arg: &str| {
        if let Ok(f) = std::fs::File::open("/dev/tty") {
            let _ = std::process::Command::new("stty")
                .arg(arg)
                .stdin(f)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    };
    let mut line = String::new();
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    {
        Ok(mut tty) => {
            let _ = tty.write_all(text.as_bytes());
            let _ = tty.flush();
            stty("-echo");
            let read = std::io::BufReader::new(&tty).read_line(&mut line);
            stty("echo");
            let _ = tty.write_all(b"\n");
            read.map_err(|e| SecretError::Prompt(e.to_string()))?;
        }
        Err(_) => {
            eprint!("{text}");
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| SecretError::Prompt(e.to_string()))?;
        }
    }
    let text = line.trim_end_matches(['\r', '\n']).to_string();
    line.clear();
    Ok(Secret::new(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s:?}"), "Secret(****)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn password_files_as_ansible_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("pw");
        std::fs::write(&plain, "  s3cret \n\n").unwrap();
        assert_eq!(from_file(&plain).unwrap().expose(), "s3cret");
        let script = dir.path().join("pw.sh");
        std::fs::write(&script, "#!/bin/sh\necho ' sp '\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        // a script's output keeps its blanks, only newlines go
        assert_eq!(from_file(&script).unwrap().expose(), " sp ");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        assert!(matches!(from_file(&empty), Err(SecretError::Empty(_))));
        let missing = dir.path().join("missing");
        let e = from_file(&missing).unwrap_err().to_string();
        assert!(e.contains("was not found"), "{e}");
    }
}
