//! Ansible Vault: the secrets of a run (`--vault-id`, `--vault-password-file`,
//! `--ask-vault-pass`, `vault_password_file` / `vault_identity_list` in ansible.cfg and their
//! `ANSIBLE_*` variables) and decryption of vault format 1.1/1.2 (`AES256`) as ansible-core's
//! `VaultLib` does it: PBKDF2-HMAC-SHA256 (10000 rounds) gives the AES-256 key, the HMAC key
//! and the CTR counter; the HMAC-SHA256 of the ciphertext is checked (in constant time)
//! before AES-256-CTR decrypts it; PKCS#7 padding is removed.
//!
//! Whole encrypted files (vars files, group_vars/host_vars, `-e @file`, playbooks) are
//! decrypted when read ([`decrypt_file_text`]); an inline `!vault` value is decrypted when the
//! YAML is read and, if no secret can decrypt it, fails only the task that uses it, with
//! Ansible's words ([`inline_value`]). No message here ever holds a password or plaintext.

use crate::error::Fatal;
use aes::cipher::{KeyIvInit, StreamCipher};
use anyhow::Result;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::Path;
use std::sync::RwLock;

/// The first bytes of any vault text.
pub const HEADER: &str = "$ANSIBLE_VAULT";

/// Ansible's words when no secret was given.
pub const NO_SECRETS: &str = "Attempting to decrypt but no vault secrets found.";

/// Ansible's words when no given secret decrypts the text.
pub const NO_MATCH: &str = "Decryption failed (no vault secrets were found that could decrypt).";

/// One vault secret: its vault id (label) and the password bytes.
#[derive(Clone)]
pub struct Secret {
    /// The vault id (`default` unless `label@source` named one).
    pub id: String,
    password: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({:?}, <redacted>)", self.id)
    }
}

impl Secret {
    /// A secret from a password.
    pub fn new(id: impl Into<String>, password: impl Into<Vec<u8>>) -> Secret {
        Secret {
            id: id.into(),
            password: password.into(),
        }
    }
}

static SECRETS: RwLock<Vec<Secret>> = RwLock::new(Vec::new());

/// Makes `secrets` the run's vault secrets (tried in this order).
pub fn set_secrets(secrets: Vec<Secret>) {
    *SECRETS.write().unwrap_or_else(|e| e.into_inner()) = secrets;
}

fn secrets() -> Vec<Secret> {
    SECRETS.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Where the run's secrets come from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `--vault-id [label@]source` (source: a file, a script or `prompt`).
    pub vault_ids: Vec<String>,
    /// `--vault-password-file FILE`.
    pub password_files: Vec<String>,
    /// `--ask-vault-pass`.
    pub ask: bool,
    /// `vault_identity_list` of the config in effect.
    pub configured_ids: Vec<String>,
    /// `vault_password_file` of the config in effect.
    pub configured_password_file: Option<std::path::PathBuf>,
}

/// Loads the secrets as `ansible-playbook` does (`CLI.setup_vault_secrets`): the configured
/// identity list and `--vault-id`s first, then `--vault-password-file`s and the configured
/// `vault_password_file`, then the `--ask-vault-pass` prompt. A source that fails is warned
/// about and passed over; if none gave a secret, the last failure is the error (exit 1).
pub fn load_secrets(src: &Sources) -> Result<Vec<Secret>> {
    let mut slugs: Vec<String> = src.configured_ids.clone();
    slugs.extend(src.vault_ids.iter().cloned());
    let mut files = src.password_files.clone();
    if let Some(f) = &src.configured_password_file {
        files.push(f.display().to_string());
    }
    for f in files {
        slugs.push(format!("default@{f}"));
    }
    if src.ask {
        slugs.push("default@prompt_ask_vault_pass".into());
    }
    let mut out = Vec::new();
    let mut last_error = None;
    for slug in slugs {
        let (label, source) = match slug.split_once('@') {
            Some((l, s)) => (Some(l.to_string()), s.to_string()),
            None => (None, slug.clone()),
        };
        let id = label.clone().unwrap_or_else(|| "default".into());
        if source == "prompt" || source == "prompt_ask_vault_pass" {
            let text = if source == "prompt" {
                format!("Vault password ({id}): ")
            } else {
                "Vault password: ".to_string()
            };
            let pw = prompt(&text)?;
            if pw.is_empty() {
                return Err(
                    Fatal::Other("Invalid vault password was provided from prompt".into()).into(),
                );
            }
            out.push(Secret::new(id, pw));
            set_secrets(out.clone());
            continue;
        }
        match password_from_file(&source, label.as_deref()) {
            Ok(pw) => {
                out.push(Secret::new(id, pw));
                set_secrets(out.clone());
            }
            Err(e) => {
                eprintln!("[WARNING]: Error getting vault password file ({id}): {e}");
                last_error = Some(e);
            }
        }
    }
    if out.is_empty() {
        if let Some(e) = last_error {
            return Err(Fatal::Other(e).into());
        }
    }
    Ok(out)
}

/// A password file's password: an executable file is run (a `*-client` script gets
/// `--vault-id LABEL`) and its stdout is the password; another file's text is.
fn password_from_file(name: &str, label: Option<&str>) -> Result<Vec<u8>, String> {
    let path = std::path::absolute(Path::new(name)).unwrap_or_else(|_| name.into());
    let shown = path.display();
    let meta = std::fs::metadata(&path)
        .map_err(|_| format!("The vault password file {shown} was not found"))?;
    if meta.is_dir() {
        return Err(format!(
            "The vault password file provided '{shown}' can not be a directory"
        ));
    }
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o111 != 0 {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let client = Path::new(name)
            .with_extension("")
            .to_string_lossy()
            .ends_with("-client")
            || stem.ends_with("-client");
        let mut cmd = std::process::Command::new(&path);
        if client {
            cmd.arg("--vault-id").arg(label.unwrap_or("default"));
        }
        // stderr is the user's: scripts may prompt there
        let out = cmd
            .stdin(std::process::Stdio::inherit())
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| {
                format!("Problem running vault password script {shown} ({e}). If this is not a script, remove the executable bit from the file.")
            })?;
        if !out.status.success() {
            return Err(format!(
                "Vault password script {shown} returned non-zero ({})",
                out.status.code().unwrap_or(-1)
            ));
        }
        let pw = trim_newlines(&out.stdout).to_vec();
        if pw.is_empty() {
            return Err(format!(
                "Invalid vault password was provided from script ({shown})"
            ));
        }
        return Ok(pw);
    }
    let bytes = std::fs::read(&path)
        .map_err(|_| format!("Could not read vault password file '{shown}'."))?;
    let pw = trim_newlines(bytes.trim_ascii()).to_vec();
    if pw.is_empty() {
        return Err(format!(
            "Invalid vault password was provided from file ({shown})"
        ));
    }
    Ok(pw)
}

fn trim_newlines(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !matches!(c, b'\r' | b'\n'));
    let end = b.iter().rposition(|c| !matches!(c, b'\r' | b'\n'));
    match (start, end) {
        (Some(s), Some(e)) => &b[s..=e],
        _ => &[],
    }
}

/// Asks for a password on the terminal with echo off (stdin when there is no terminal).
fn prompt(text: &str) -> Result<Vec<u8>> {
    use std::io::{BufRead, Write};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty");
    let stty = |arg: &str| {
        std::fs::File::open("/dev/tty").ok().map(|f| {
            std::process::Command::new("stty")
                .arg(arg)
                .stdin(f)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
        })
    };
    let mut line = String::new();
    match tty {
        Ok(mut t) => {
            let _ = t.write_all(text.as_bytes());
            let _ = t.flush();
            stty("-echo");
            let read = std::io::BufReader::new(&t).read_line(&mut line);
            stty("echo");
            let _ = t.write_all(b"\n");
            read.map_err(|e| Fatal::Other(format!("cannot read the vault password: {e}")))?;
        }
        Err(_) => {
            eprint!("{text}");
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| Fatal::Other(format!("cannot read the vault password: {e}")))?;
        }
    }
    Ok(trim_newlines(line.as_bytes()).to_vec())
}

/// True when `text` is vault-encrypted.
pub fn is_encrypted(text: &str) -> bool {
    text.trim_start().starts_with(HEADER)
}

/// Decrypts the vault text `text` with the run's secrets; the error is Ansible's words.
pub fn decrypt(text: &str) -> Result<Vec<u8>, String> {
    decrypt_with(text, &secrets())
}

/// Decrypts the vault text `text`, trying the secret of its vault id first, then the others.
pub fn decrypt_with(text: &str, secrets: &[Secret]) -> Result<Vec<u8>, String> {
    let text = text.trim();
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let fields: Vec<&str> = header.trim().split(';').collect();
    if fields.first() != Some(&HEADER) || fields.len() < 3 {
        return Err("Input is not vault encrypted data.".into());
    }
    let (version, cipher) = (fields[1].trim(), fields[2].trim());
    let label = match (version, fields.get(3)) {
        ("1.1", _) => None,
        ("1.2", Some(l)) => Some(l.trim()),
        ("1.2", None) => return Err("Vault format 1.2 requires a vault id.".into()),
        (v, _) => return Err(format!("Vault format {v:?} is not supported.")),
    };
    if cipher != "AES256" {
        return Err(format!("Cipher {cipher:?} could not be found."));
    }
    if secrets.is_empty() {
        return Err(NO_SECRETS.into());
    }
    let body: String = lines.map(str::trim).collect();
    let inner = unhex(body.as_bytes()).ok_or(NO_MATCH)?;
    let parts: Vec<&[u8]> = inner.split(|b| *b == b'\n').collect();
    let [salt, mac, data] = parts[..] else {
        return Err(NO_MATCH.into());
    };
    let (salt, mac, data) = match (unhex(salt), unhex(mac), unhex(data)) {
        (Some(s), Some(m), Some(d)) => (s, m, d),
        _ => return Err(NO_MATCH.into()),
    };
    let ordered = secrets
        .iter()
        .filter(|s| Some(s.id.as_str()) == label)
        .chain(secrets.iter().filter(|s| Some(s.id.as_str()) != label));
    for secret in ordered {
        if let Some(plain) = decrypt_aes256(&secret.password, &salt, &mac, &data) {
            return Ok(plain);
        }
    }
    Err(NO_MATCH.into())
}

fn decrypt_aes256(password: &[u8], salt: &[u8], mac: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    let mut keys = [0u8; 80];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, 10_000, &mut keys);
    let (key1, rest) = keys.split_at(32);
    let (key2, iv) = rest.split_at(32);
    let mut check = <Hmac<Sha256> as Mac>::new_from_slice(key2).ok()?;
    check.update(data);
    // constant-time comparison
    check.verify_slice(mac).ok()?;
    let mut plain = data.to_vec();
    let mut cipher = ctr::Ctr128BE::<aes::Aes256>::new_from_slices(key1, iv).ok()?;
    cipher.apply_keystream(&mut plain);
    // PKCS#7 with 16-byte blocks
    let pad = *plain.last()? as usize;
    if pad == 0
        || pad > 16
        || pad > plain.len()
        || plain[plain.len() - pad..]
            .iter()
            .any(|b| *b as usize != pad)
    {
        return None;
    }
    plain.truncate(plain.len() - pad);
    Some(plain)
}

fn unhex(text: &[u8]) -> Option<Vec<u8>> {
    let text = text.trim_ascii();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    text.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// A vault file that could not be decrypted: exit 1 (vars files, `-e @file`), unless the
/// reader makes it a parser error with [`parser_error`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct VaultError(String);

/// group_vars/host_vars files that cannot be decrypted end ansible-playbook with exit 4:
/// turns a [`VaultError`] into a syntax error, leaves other errors alone.
pub fn parser_error(e: anyhow::Error) -> anyhow::Error {
    match e.downcast_ref::<VaultError>() {
        Some(v) => crate::error::syntax(v.0.clone()),
        None => e,
    }
}

/// The text of a file that may be vault-encrypted: decrypted when it is (an error names the
/// file), else as is.
pub fn decrypt_file_text(text: String, path: &Path) -> Result<String> {
    if !is_encrypted(&text) {
        return Ok(text);
    }
    let plain =
        decrypt(&text).map_err(|e| VaultError(format!("{e} Origin: {}", path.display())))?;
    String::from_utf8(plain).map_err(|_| {
        VaultError(format!(
            "the decrypted text of {} is not UTF-8",
            path.display()
        ))
        .into()
    })
}

/// Name of the template function that fails a task using an undecryptable `!vault` value.
pub const FAIL_FUNCTION: &str = "__etcd_agent_vault_undecryptable";

/// The value of an inline `!vault` scalar: its plaintext, or, when no secret decrypts it,
/// a template that fails whatever task uses the value with Ansible's words (ansible-core
/// decrypts inline values lazily: an unused one is no error).
pub fn inline_value(ciphertext: &str) -> String {
    match decrypt(ciphertext) {
        Ok(plain) => String::from_utf8_lossy(&plain).into_owned(),
        Err(e) => format!(
            "{{{{ {FAIL_FUNCTION}({:?}) }}}}",
            format!("Attempt to use undecryptable variable: {e}")
        ),
    }
}

/// Registers [`FAIL_FUNCTION`] in the template environment.
pub fn register(env: &mut minijinja::Environment<'static>) {
    env.add_function(
        FAIL_FUNCTION,
        |msg: String| -> Result<minijinja::Value, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                msg,
            ))
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    // `printf 'inline-value' | ansible-vault encrypt_string --vault-password-file pw` with
    // `s3cret-pass` in pw (ansible-core 2.19)
    const INLINE: &str = "$ANSIBLE_VAULT;1.1;AES256
34636230653664616434373736666466343038306361653965323734653139326662313937643234
6133303565373262623131356164316135393435373137390a356436323137323136366139366637
62313234303333376234616533343738623538353931323433363165633636373930303762643462
3834316335356436610a653432313731663866366439363364666463383031316663336564326364
3337";

    #[test]
    fn decrypts_ansible_vault_text() {
        let good = Secret::new("default", "s3cret-pass");
        let bad = Secret::new("default", "wrong");
        assert_eq!(
            decrypt_with(INLINE, &[bad.clone(), good.clone()]).unwrap(),
            b"inline-value"
        );
        assert_eq!(decrypt_with(INLINE, &[bad]).unwrap_err(), NO_MATCH);
        assert_eq!(decrypt_with(INLINE, &[]).unwrap_err(), NO_SECRETS);
        // a flipped ciphertext byte fails the HMAC
        let tampered = format!("{}3338", &INLINE[..INLINE.len() - 4]);
        assert_eq!(decrypt_with(&tampered, &[good]).unwrap_err(), NO_MATCH);
        assert!(format!("{:?}", Secret::new("x", "pw")).contains("redacted"));
    }
}
