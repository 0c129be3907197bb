//! The remote module cache of kept masters: with `ControlPersist` (the default), a module
//! uploaded by one run stays on the host for the next runs, as the master does, so a warm
//! run sends no module bytes at all.
//!
//! The cache is `${TMPDIR:-/tmp}/etcd-agent-modules-<uid>` on the host: a directory of the
//! login user's own (mode 0700, not a symlink, checked at every use), holding each module
//! as `<name>-<full sha256>`. A file gets there only by a rename inside the directory of a
//! complete copy of the run's verified upload, so a name always holds exactly its content.
//! A run that finds its module there uses it (and touches it); a run that uploads removes the
//! entries nobody used for [`IDLE_MINUTES`]. `ETCD_AGENT_MODULE_CACHE=0` turns it off:
//! uploads then live in the connection's temp dir and go with it, as without kept masters.
//!
//! Each kept master's directory holds a record of what its host's cache held
//! ([`RECORD_FILE`]: `<sha256> <path>` lines, written when a run found or put a module
//! there). A later run over that master takes a recorded module as there without asking
//! (no round trip of its own): the command that runs it checks it as the lookup would and,
//! when it is gone, answers [`NOT_CACHED`] without running anything; the run then looks it
//! up or uploads it as usual and runs it again.

use super::{quote, Connection, ModuleFile, TransportError};

/// Entries unused for this long are removed by the next upload to the host.
pub const IDLE_MINUTES: u32 = 60;

/// The cache dir, as a `/bin/sh` assignment to `c`, and the checks that it is the login
/// user's own real directory.
const CACHE_DIR: &str = r#"c="${TMPDIR:-/tmp}/etcd-agent-modules-$(id -u)""#;
const CACHE_IS_OURS: &str = r#"[ -d "$c" ] && [ ! -h "$c" ] && [ -O "$c" ]"#;

/// The record of a kept master's host cache, in the master's directory.
const RECORD_FILE: &str = "cached-modules";

/// A record larger than this is started anew (it only grows by new module versions).
const RECORD_MAX: u64 = 64 * 1024;

/// What the command of [`run_recorded_command`] prints when the module is not in the cache.
pub const NOT_CACHED: &str = "ETCD_AGENT_MODULE_NOT_CACHED";

/// Exit code that goes with [`NOT_CACHED`].
pub const NOT_CACHED_RC: i32 = 97;

/// The command that runs `run` (a command line that runs the module as `"$f"`) with `$f` the
/// cached module at `path` (recorded, not checked this run), after the checks of
/// [`lookup_command`]; [`NOT_CACHED`] when they fail, and nothing else ran (`run` ends the
/// command, however it ends).
pub fn run_recorded_command(path: &str, run: &str) -> String {
    format!(
        r#"f={f}; c="${{f%/*}}"; if {CACHE_IS_OURS} && [ -f "$f" ] && [ ! -h "$f" ] && [ -O "$f" ] && [ -x "$f" ] && touch -c "$f"; then {run}
exit $?
fi; echo {NOT_CACHED}; exit {NOT_CACHED_RC}"#,
        f = quote(path),
    )
}

/// Whether `out` is the answer of [`run_recorded_command`] for a module not in the cache.
pub fn not_cached(out: &super::ExecOutput) -> bool {
    out.rc == NOT_CACHED_RC && out.stdout_text().trim_end() == NOT_CACHED
}

/// The path of `module` in the text of a record, its last line naming it.
fn recorded_path(record: &str, module: &ModuleFile) -> Option<String> {
    let suffix = format!("/{}", entry_name(module));
    record.lines().rev().find_map(|line| {
        let (hash, path) = line.split_once(' ')?;
        (hash == module.hash && path.starts_with('/') && path.ends_with(&suffix))
            .then(|| path.to_string())
    })
}

/// Whether the cache is on (`ETCD_AGENT_MODULE_CACHE` unset or not `0`).
pub fn enabled() -> bool {
    std::env::var_os("ETCD_AGENT_MODULE_CACHE").is_none_or(|v| v != "0")
}

/// The cache's file name of `module`.
fn entry_name(module: &ModuleFile) -> String {
    format!("{}-{}", module.name, module.hash)
}

/// The command that prints the cached path of `module` when the cache has it.
fn lookup_command(module: &ModuleFile) -> String {
    let n = quote(&entry_name(module));
    format!(
        r#"{CACHE_DIR}; f="$c"/{n}; {CACHE_IS_OURS} && [ -f "$f" ] && [ ! -h "$f" ] && [ -O "$f" ] && [ -x "$f" ] && touch -c "$f" && printf '%s' "$f""#
    )
}

/// The command that copies the uploaded file `uploaded` into the cache (creating it), prints
/// the cached path, and removes entries unused for [`IDLE_MINUTES`].
fn store_command(module: &ModuleFile, uploaded: &str) -> String {
    let n = quote(&entry_name(module));
    let tmp = quote(&format!(".{}.tmp", entry_name(module)));
    format!(
        r#"{CACHE_DIR}; umask 077; [ -e "$c" ] || mkdir -m 700 "$c" 2>/dev/null; {CACHE_IS_OURS} && chmod 700 "$c" && cp {u} "$c"/{tmp}.$$ && chmod 700 "$c"/{tmp}.$$ && mv -f "$c"/{tmp}.$$ "$c"/{n} && printf '%s' "$c"/{n}; rc=$?; {CACHE_IS_OURS} && find "$c" -maxdepth 1 -type f -mmin +{IDLE_MINUTES} -exec rm -f {{}} + 2>/dev/null; exit $rc"#,
        u = quote(uploaded),
    )
}

/// A printed path, when the command succeeded and printed an absolute one.
fn printed_path(out: &super::ExecOutput) -> Option<String> {
    let path = out.stdout_text();
    (out.rc == 0 && path.starts_with('/') && !path.contains('\n')).then_some(path)
}

impl Connection {
    /// The cached path of `module` on this connection's host, if a run before left it there.
    pub(super) async fn cached_module(
        &self,
        module: &ModuleFile,
    ) -> Result<Option<String>, TransportError> {
        let _timed = crate::timing::span(crate::timing::Phase::CacheCheck);
        let out = self.exec(&lookup_command(module), None, None).await?;
        let found = printed_path(&out);
        if let Some(path) = &found {
            self.record(module, path);
        }
        Ok(found)
    }

    /// The cached path of `module` as a run over this kept master recorded it, if one did
    /// (not checked: run it with [`run_recorded_command`]); `None` without a kept master, with
    /// the cache off, or once this run has the module.
    pub async fn recorded_module(&self, module: &ModuleFile) -> Option<String> {
        if !enabled() || self.uploads.lock().await.contains_key(&module.hash) {
            return None;
        }
        let record = self.kept_dir.as_ref()?.join(RECORD_FILE);
        recorded_path(&std::fs::read_to_string(record).ok()?, module)
    }

    /// After [`run_recorded_command`] ran `module` from `path`: the module is there for the
    /// rest of the run. After [`NOT_CACHED`], `found` is false: the record forgets it.
    pub async fn recorded_module_was(&self, module: &ModuleFile, path: &str, found: bool) {
        if found {
            self.uploads
                .lock()
                .await
                .insert(module.hash.clone(), path.to_string());
            return;
        }
        let Some(record) = self.kept_dir.as_ref().map(|d| d.join(RECORD_FILE)) else {
            return;
        };
        let Ok(text) = std::fs::read_to_string(&record) else {
            return;
        };
        let kept: String = text
            .lines()
            .filter(|l| l.split_once(' ').is_none_or(|(h, _)| h != module.hash))
            .map(|l| format!("{l}\n"))
            .collect();
        let tmp = record.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, kept).is_err() || std::fs::rename(&tmp, &record).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    /// Before the connection's persistent shell starts: it is to look for `modules` in the
    /// host's cache, and what it finds is recorded as a lookup would (so a run whose master
    /// is new needs no lookup of its own for them): only with a kept master and the cache
    /// on. With the cache on, those of `modules` that run the remote shell loop themselves
    /// ([`ModuleFile::native_shell`]) are tried as the loop by every shell started later.
    pub fn look_for_in_cache<'m>(&self, modules: impl IntoIterator<Item = &'m ModuleFile>) {
        if !enabled() {
            return;
        }
        let modules: Vec<&ModuleFile> = modules.into_iter().collect();
        if let Ok(mut native) = self.native_shell.lock() {
            for module in modules.iter().filter(|m| m.native_shell) {
                let entry = entry_name(module);
                if !native.contains(&entry) {
                    native.push(entry);
                }
            }
        }
        let Some(kept_dir) = self.kept_dir.as_ref() else {
            return;
        };
        // what the record already names needs no looking for (a warm run asks nothing)
        let record = std::fs::read_to_string(kept_dir.join(RECORD_FILE)).unwrap_or_default();
        if let Ok(mut look_for) = self.look_for.lock() {
            for module in modules {
                if recorded_path(&record, module).is_some() {
                    continue;
                }
                let entry = entry_name(module);
                if !look_for.contains(&entry) {
                    look_for.push(entry);
                }
            }
        }
    }

    /// Records a path the persistent shell found in the cache (`<dir>/<name>-<sha256>`).
    pub(super) fn record_found(&self, path: &str) {
        let Some((_, hash)) = path.rsplit_once('-') else {
            return;
        };
        if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            self.record_hash(hash, path);
        }
    }

    /// Adds `module` at `path` to the record of a kept master's host cache (best effort: a
    /// record that cannot be written only costs the next run a lookup).
    fn record(&self, module: &ModuleFile, path: &str) {
        self.record_hash(&module.hash, path);
    }

    fn record_hash(&self, hash: &str, path: &str) {
        use std::io::Write;
        let Some(record) = self.kept_dir.as_ref().map(|d| d.join(RECORD_FILE)) else {
            return;
        };
        let too_big = std::fs::metadata(&record).is_ok_and(|m| m.len() > RECORD_MAX);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(!too_big)
            .write(true)
            .truncate(too_big)
            .open(&record);
        if let Ok(mut file) = file {
            // one write of one line: appends of runs beside this one do not interleave
            let _ = file.write_all(format!("{hash} {path}\n").as_bytes());
        }
    }

    /// Keeps the uploaded copy of `module` at `uploaded` in the cache; the cached path, or
    /// `None` when the host's cache cannot be used (the upload is used as it is).
    pub(super) async fn keep_in_cache(
        &self,
        module: &ModuleFile,
        uploaded: &str,
    ) -> Result<Option<String>, TransportError> {
        let out = self
            .exec(&store_command(module, uploaded), None, None)
            .await?;
        let kept = printed_path(&out);
        if let Some(path) = &kept {
            self.record(module, path);
        }
        if kept.is_none() {
            tracing::debug!(target: "etcd_agent::transport", conn = %self.label, rc = out.rc, stderr = %out.stderr_text().trim(), "module cache unusable on this host");
        }
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(script: &str, tmpdir: &std::path::Path) -> (i32, String) {
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", script])
            .env("TMPDIR", tmpdir)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    #[test]
    fn store_then_lookup_in_a_private_dir_and_stale_entries_go() {
        let tmp = tempfile::tempdir().unwrap();
        let module = ModuleFile::new("etcd_health", b"#!/bin/sh\necho hi\n".to_vec());
        let (rc, missing) = run(&lookup_command(&module), tmp.path());
        assert!(rc != 0 && missing.is_empty(), "empty cache: a miss");
        let uploaded = tmp.path().join("upload");
        std::fs::write(&uploaded, &*module.bytes).unwrap();
        let (rc, kept) = run(
            &store_command(&module, uploaded.to_str().unwrap()),
            tmp.path(),
        );
        assert_eq!(rc, 0);
        assert!(kept.ends_with(&entry_name(&module)), "{kept}");
        assert_eq!(std::fs::read(&kept).unwrap(), *module.bytes);
        use std::os::unix::fs::PermissionsExt;
        let dir = std::path::Path::new(&kept).parent().unwrap();
        assert_eq!(
            std::fs::metadata(dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert!(uploaded.exists(), "the upload itself stays");
        let (rc, found) = run(&lookup_command(&module), tmp.path());
        assert_eq!((rc, found.as_str()), (0, kept.as_str()));
        // an entry unused for longer than IDLE_MINUTES goes with the next store
        let stale = dir.join("etcd_member-old");
        std::fs::write(&stale, b"x").unwrap();
        let old = std::process::Command::new("touch")
            .args(["-d", "2 hours ago"])
            .arg(&stale)
            .status()
            .unwrap();
        assert!(old.success());
        let (rc, _) = run(
            &store_command(&module, uploaded.to_str().unwrap()),
            tmp.path(),
        );
        assert_eq!(rc, 0);
        assert!(!stale.exists() && std::path::Path::new(&kept).exists());
    }

    #[test]
    fn a_record_names_a_module_by_hash_and_entry_name_its_last_line_winning() {
        let module = ModuleFile::new("m", b"x".to_vec());
        let h = &module.hash;
        let record =
            format!("{h} /c/other-{h}\n{h} relative/m-{h}\n{h} /old/m-{h}\n{h} /new/m-{h}\n");
        assert_eq!(recorded_path(&record, &module), Some(format!("/new/m-{h}")));
        let other = ModuleFile::new("m", b"y".to_vec());
        assert_eq!(recorded_path(&record, &other), None);
        // a path that is not the module's entry is never taken
        assert_eq!(recorded_path(&format!("{h} /c/other-{h}\n"), &module), None);
    }

    #[test]
    fn run_recorded_runs_a_cached_module_or_says_it_is_not_cached() {
        let tmp = tempfile::tempdir().unwrap();
        let uid = unsafe { libc::getuid() };
        let dir = tmp.path().join(format!("etcd-agent-modules-{uid}"));
        std::fs::create_dir(&dir).unwrap();
        let f = dir.join("m-abc");
        std::fs::write(&f, "#!/bin/sh\necho ran \"$1\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o700)).unwrap();
        let cmd = run_recorded_command(f.to_str().unwrap(), r#""$f" args"#);
        assert_eq!(run(&cmd, tmp.path()), (0, "ran args\n".to_string()));
        // a run that fails before the module ends there: never taken for a miss
        let fails_first = run_recorded_command(f.to_str().unwrap(), r#"false && "$f" args"#);
        assert_eq!(run(&fails_first, tmp.path()), (1, String::new()));
        std::fs::remove_file(&f).unwrap();
        let (rc, out) = run(&cmd, tmp.path());
        let out = crate::transport::ExecOutput {
            rc,
            stdout: out.into_bytes(),
            stderr: Vec::new(),
        };
        assert!(not_cached(&out), "{out:?}");
    }

    #[test]
    fn a_cache_dir_that_is_a_symlink_is_not_used() {
        let tmp = tempfile::tempdir().unwrap();
        let module = ModuleFile::new("m", b"x".to_vec());
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let uid = unsafe { libc::getuid() };
        std::os::unix::fs::symlink(
            &elsewhere,
            tmp.path().join(format!("etcd-agent-modules-{uid}")),
        )
        .unwrap();
        let uploaded = tmp.path().join("upload");
        std::fs::write(&uploaded, b"x").unwrap();
        let (rc, kept) = run(
            &store_command(&module, uploaded.to_str().unwrap()),
            tmp.path(),
        );
        assert!(rc != 0 && kept.is_empty());
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        assert!(run(&lookup_command(&module), tmp.path()).1.is_empty());
    }
}
