//! A persistent remote shell per SSH connection.
//!
//! Opening an SSH session costs a full sshd session setup, and a run of the user's shell rc
//! files, on every command. Instead, each connection starts one long-lived `/bin/sh` loop
//! over its multiplexed session and sends it framed requests: `<cmd_len> <stdin_len>\n`, the
//! command, then stdin. The loop pipes stdin straight into the command (draining whatever the
//! command leaves unread, so the framing survives), captures stdout/stderr in files in its
//! private temp dir and answers `<rc> <out_len> <err_len>\n` followed by the bytes. That temp
//! dir doubles as the connection's remote temp dir: the loop's exit trap removes it however
//! the run ends. Any protocol error poisons the shell; callers then fall back to one session
//! per command.
//!
//! When one of the run's modules is etcd-agent's own multi-call binary and the host's module
//! cache already holds it, the loop is that binary (`--etcd-agent-shell-v2`,
//! `modules/src/remote_shell.rs`): the same protocol without a helper program per step.
//! The start line tries such cache entries (arguments `+<name>-<sha256>`) and falls back to
//! the `/bin/sh` loop when none is there or none can run (exit 126/127: a `noexec` temp
//! dir, another CPU's build).
//!
//! Uploads use a second request form, `put <len> <name>\n`, then pieces of `<n>\n<n bytes>`
//! that the loop appends to `<dir>/<name>` and acknowledges with `+\n` one by one (see
//! [`Shell::put`]); the reply is that of a command.

use super::{ExecOutput, TransportError};
use openssh::{Child, Session, Stdio};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Largest stdin sent through a loop that copies byte by byte (`dd bs=1`); larger payloads
/// use a session of their own. Loops with an exact `head -c` take any size.
const MAX_STDIN_DD: usize = 64 * 1024;

// Commands run with the login umask (as Ansible's do); only the loop's own files are private.
// Every process counts (about 1 ms each on a small VM).
// The loop's files start with a dot so they never meet module or args files in the same dir.
//
// `$0` is the run's marker (`etcd-agent-run-<hex>`), written with the loop's pid to
// `$d/.owner`: a dir of ours whose loop is gone (killed with it, host crash) belongs to a run
// that is gone, and the first shell of each connection (`$1` = `clean`) removes such dirs in
// the background. `kill -0` (a builtin) tells whether the pid lives; a reused pid keeps a
// dir, never the other way round. A dir without `.owner`, or of another user, is never
// touched; an `.owner` without a pid (written by agents before 2026-12-05) is judged by
// `pgrep -f` on its marker, provided `pgrep` finds this loop itself. (A `pgrep` per dir
// scans every process: on a controller that is also 30 loopback hosts it cost more CPU than
// all the modules.)
//
// Arguments after `$1` name modules (`<name>-<sha256>`) to look for in the host's module
// cache (`transport/cache.rs`, same checks as its lookup): each one there is a line
// `ETCD_AGENT_CACHED <path>` before the ready line, so a run whose master is new learns
// what the host has without a command of its own. Arguments `+<name>-<sha256>` name cache
// entries that can be the loop themselves; the lines before `u=$(umask)` try them.
//
// Each command runs in a session of its own (`setsid`, when there is one) with a watcher
// beside it: if the loop's stdin ends while the command runs (the agent closed the shell on
// Ctrl-C, or died and its master dropped the channel), the watcher kills the command's
// process group and the loop, whose exit trap removes its dir. Nothing is sent to the loop
// while a command runs, so the watcher never eats a request; it is stopped with SIGKILL, as
// a TERM that comes before the forked subshell drops the loop's trap is lost. A background
// job starts with SIGINT and SIGQUIT ignored: `env --default-signal` (coreutils 8.31+) gives
// the command the dispositions it would have had in the foreground.
const LOOP: &str = r#"for e in "$@"; do
  case $e in +?*) ;; *) continue;; esac
  for f in "${TMPDIR:-/tmp}"/etcd-agent-modules-[0-9]*/"${e#+}"; do
    c=${f%/*}
    [ -d "$c" ] && [ ! -h "$c" ] && [ -O "$c" ] && [ -f "$f" ] && [ ! -h "$f" ] && [ -O "$f" ] && [ -x "$f" ] || continue
    ("$f" --etcd-agent-shell-v2 "$0" "$@")
    r=$?
    case $r in 126|127) ;; *) exit $r;; esac
  done
done
u=$(umask)
umask 077
d=$(mktemp -d "${TMPDIR:-/tmp}/etcd-agent.XXXXXXXX") || exit 1
trap 'rm -rf "$d"' EXIT
trap 'exit 143' HUP TERM INT
echo "$0 $$" > "$d/.owner"
exec 3<&0
ss=
command -v setsid >/dev/null 2>&1 && ss=setsid
if a=$(env --default-signal=INT,QUIT uname -m 2>/dev/null); then
  ss="$ss env --default-signal=INT,QUIT"
else
  a=$(uname -m 2>/dev/null) || a=unknown
fi
if [ "$1" = clean ]; then
  (pg=
  for o in "${TMPDIR:-/tmp}"/etcd-agent.*/.owner; do
    [ -f "$o" ] && [ -O "$o" ] && read -r m p < "$o" || continue
    case $m in etcd-agent-run-*[!0-9a-f]*) continue;; etcd-agent-run-?*) ;; *) continue;; esac
    case $p in
      *[!0-9]*) continue;;
      ?*) kill -0 "$p" 2>/dev/null && continue;;
      *) [ -n "$pg" ] || { pgrep -f -- "$0" >/dev/null 2>&1 && pg=y || pg=n; }
         [ "$pg" = y ] || continue
         pgrep -f -- "$m" >/dev/null 2>&1 && continue;;
    esac
    rm -rf "${o%/.owner}"
  done) </dev/null >/dev/null 2>&1 &
fi
if [ $# -gt 1 ]; then
  c="${TMPDIR:-/tmp}/etcd-agent-modules-$(id -u)"
  shift
  if [ -d "$c" ] && [ ! -h "$c" ] && [ -O "$c" ]; then
    for e in "$@"; do
      case $e in +*) continue;; esac
      f="$c/$e"
      [ -f "$f" ] && [ ! -h "$f" ] && [ -O "$f" ] && [ -x "$f" ] && echo "ETCD_AGENT_CACHED $f"
    done
  fi
fi
n=0
if [ "$(printf ab | { head -c 1 >/dev/null 2>&1; cat; })" = b ]; then
  take() { head -c "$1"; }; mode=head
else
  take() { dd bs=1 count="$1" 2>/dev/null; }; mode=dd
fi
echo "ETCD_AGENT_SHELL_READY $mode ${a:-unknown} $d"
while read -r cl il f; do
  n=$((n+1))
  if [ "$cl" = put ]; then
    r=0
    true 2> "$d/.e$n" > "$d/$f" || r=1
    left=$il
    while [ "$left" -gt 0 ] && read -r c; do
      if [ "$r" = 0 ]; then
        take "$c" | { cat >> "$d/$f" || { cat > /dev/null; exit 1; }; } 2>> "$d/.e$n" || r=1
      else
        take "$c" > /dev/null
      fi
      left=$((left-c))
      echo +
    done
    [ "$r" = 0 ] && chmod 700 "$d/$f" 2>> "$d/.e$n" || r=1
    printf '%s 0 %s\n' "$r" "$(wc -c < "$d/.e$n")"
    cat "$d/.e$n"
    rm -f "$d/.e$n"
    continue
  fi
  take "$cl" > "$d/.c$n"
  i=/dev/null
  if [ "$il" != 0 ]; then i="$d/.i$n"; take "$il" > "$i"; fi
  (umask "$u"; exec $ss /bin/sh "$d/.c$n" 3<&-) < "$i" > "$d/.o$n" 2> "$d/.e$n" &
  p=$!
  (read -r _ <&3 || { kill -s TERM -- "-$p" "$p"; kill -s TERM $$; sleep 2; kill -s KILL -- "-$p" "$p"; }) </dev/null >/dev/null 2>&1 &
  w=$!
  wait "$p"
  r=$?
  kill -s KILL "$w" 2>/dev/null
  wait "$w" 2>/dev/null
  set -- $(cd "$d" && exec wc -c ".o$n" ".e$n")
  printf '%s %s %s\n' "$r" "$1" "$3"
  cat "$d/.o$n" "$d/.e$n"
  rm -f "$d/.c$n" "$d/.i$n" "$d/.o$n" "$d/.e$n"
done
"#;

/// Bytes in a module file that runs the loop itself (`modules/src/remote_shell.rs` holds
/// them as `PROTOCOL_MARKER`; `agent_ssh` checks that the modules' shells are used).
pub const NATIVE_PROTOCOL_MARKER: &[u8] = b"ETCD_AGENT_NATIVE_SHELL_PROTOCOL=2";

/// A fresh marker for one run's remote shells: `etcd-agent-run-` and 16 hex digits, from
/// the time, the pid and a random hasher seed.
pub fn run_marker() -> String {
    use sha2::{Digest, Sha256};
    use std::hash::{BuildHasher, Hasher};
    let mut seed = std::collections::hash_map::RandomState::new().build_hasher();
    seed.write_u32(std::process::id());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let digest = Sha256::digest(format!(
        "{}:{}:{:?}",
        seed.finish(),
        std::process::id(),
        now
    ));
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("etcd-agent-run-{hex}")
}

/// Whether [`Shell::put`] takes `name`: a plain file name, not starting with a dot (the
/// loop's own files do).
pub fn putable_name(name: &str) -> bool {
    !name.starts_with('.')
        && !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A running remote shell loop.
pub struct Shell {
    /// Largest stdin this loop accepts.
    pub max_stdin: usize,
    /// The loop's private remote temp dir (removed when the loop exits).
    pub dir: String,
    /// What `uname -m` printed on the host when the loop started (`unknown` if it failed).
    pub arch: String,
    /// The paths of the modules asked for at the start that the host's cache holds.
    pub cached: Vec<String>,
    /// The loop is a cached module binary's (see the module docs), not `/bin/sh`'s.
    pub native: bool,
    child: Child<Arc<Session>>,
    stdin: openssh::ChildStdin,
    stdout: BufReader<openssh::ChildStdout>,
    /// A request is under way. Still set when the next one comes, it was abandoned midway
    /// (its caller's future dropped, as a task `timeout` does): the framing is lost.
    busy: bool,
}

fn broken(msg: impl std::fmt::Display) -> TransportError {
    TransportError::Failed(format!("remote shell: {msg}"))
}

impl Shell {
    /// Starts the loop on `session` and waits for its ready line. `marker` names the run
    /// (see [`run_marker`]); with `clean`, the loop removes the dirs of runs that are gone;
    /// `look_for` names cache entries to look for (see [`Shell::cached`]), `native` cache
    /// entries to run as the loop if the host has them (see [`Shell::native`]).
    pub async fn start(
        session: Arc<Session>,
        marker: &str,
        clean: bool,
        look_for: &[String],
        native: &[String],
    ) -> Result<Shell, TransportError> {
        let _timed = crate::timing::span(crate::timing::Phase::ShellStart);
        let mut line = format!(
            "/bin/sh -c {} {} {}",
            super::quote(LOOP),
            super::quote(marker),
            if clean { "clean" } else { "-" }
        );
        let look_for: Vec<&String> = look_for.iter().filter(|e| putable_name(e)).collect();
        for entry in &look_for {
            line.push(' ');
            line.push_str(entry);
        }
        for entry in native.iter().filter(|e| putable_name(e)) {
            line.push_str(" +");
            line.push_str(entry);
        }
        let mut cmd = session.arc_raw_command(line);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .await
            .map_err(|e| TransportError::Unreachable(format!("starting remote shell: {e}")))?;
        let stdin = child.stdin().take().ok_or_else(|| broken("no stdin"))?;
        let stdout = child.stdout().take().ok_or_else(|| broken("no stdout"))?;
        let mut shell = Shell {
            max_stdin: MAX_STDIN_DD,
            dir: String::new(),
            arch: String::new(),
            cached: Vec::new(),
            native: false,
            child,
            stdin,
            stdout: BufReader::new(stdout),
            busy: false,
        };
        let mut line = String::new();
        loop {
            line.clear();
            shell.stdout.read_line(&mut line).await.map_err(broken)?;
            match line.strip_prefix("ETCD_AGENT_CACHED /") {
                Some(rest) if shell.cached.len() < look_for.len() => shell
                    .cached
                    .push(format!("/{}", rest.trim_end_matches('\n'))),
                _ => break,
            }
        }
        let greeting: Vec<&str> = line.trim_end_matches('\n').splitn(4, ' ').collect();
        match greeting[..] {
            ["ETCD_AGENT_SHELL_READY", mode @ ("head" | "dd" | "native"), arch, dir]
                if dir.starts_with('/') =>
            {
                if mode != "dd" {
                    shell.max_stdin = usize::MAX;
                }
                shell.native = mode == "native";
                shell.dir = dir.to_string();
                shell.arch = arch.to_string();
            }
            _ => return Err(broken(format!("unexpected greeting {line:?}"))),
        }
        Ok(shell)
    }

    /// Whether the loop cuts requests with an exact `head -c` (else with `dd bs=1`).
    pub fn exact_head(&self) -> bool {
        self.max_stdin == usize::MAX
    }

    /// Runs one command through the loop.
    pub async fn exec(&mut self, cmd: &str, stdin: &[u8]) -> Result<ExecOutput, TransportError> {
        self.begin()?;
        self.send(cmd, stdin).await?;
        self.finish().await
    }

    fn begin(&mut self) -> Result<(), TransportError> {
        if std::mem::replace(&mut self.busy, true) {
            return Err(broken("an earlier request was abandoned midway"));
        }
        Ok(())
    }

    /// Reads the reply of the request under way.
    async fn finish(&mut self) -> Result<ExecOutput, TransportError> {
        let out = self.receive().await?;
        self.busy = false;
        Ok(out)
    }

    /// Runs the binary module at `path` on an args file `args_name` (in the loop's dir)
    /// holding `args`, removed afterwards; with `check`, only when `path` passes the host
    /// cache's checks (else [`super::module_not_cached`]'s answer). Native loops only (see
    /// [`Shell::native`]): `mod <args_len> <check> <args_name> <path>\n<args>`.
    pub async fn run_module(
        &mut self,
        path: &str,
        check: bool,
        args_name: &str,
        args: &[u8],
    ) -> Result<ExecOutput, TransportError> {
        if !self.native || !putable_name(args_name) || path.contains('\n') {
            return Err(broken("module requests need the compiled loop"));
        }
        self.begin()?;
        let mut req = format!(
            "mod {} {} {args_name} {path}\n",
            args.len(),
            if check { 1 } else { 0 }
        )
        .into_bytes();
        req.extend_from_slice(args);
        self.stdin.write_all(&req).await.map_err(broken)?;
        self.stdin.flush().await.map_err(broken)?;
        self.finish().await
    }

    /// Writes `bytes` to the file `name` (mode 0700) in the loop's temp dir, in pieces of
    /// `chunk` bytes, each sent once the one before is written. sshd holds in memory whatever
    /// the remote side has not read yet, and a buffer that grows to megabytes is copied anew
    /// at every step: sent in one piece, a 2.5 MB module often stalled for 50-100 ms. The
    /// cost is one round trip per piece. `name` must pass [`putable_name`].
    pub async fn put(
        &mut self,
        name: &str,
        bytes: &[u8],
        chunk: usize,
    ) -> Result<ExecOutput, TransportError> {
        if !putable_name(name) {
            return Err(TransportError::Failed(format!(
                "remote shell: unsafe file name {name:?}"
            )));
        }
        self.begin()?;
        let mut framed = format!("put {} {name}\n", bytes.len()).into_bytes();
        for piece in bytes.chunks(chunk.max(1)) {
            framed.extend_from_slice(format!("{}\n", piece.len()).as_bytes());
            framed.extend_from_slice(piece);
            self.stdin.write_all(&framed).await.map_err(broken)?;
            self.stdin.flush().await.map_err(broken)?;
            framed.clear();
            self.read_ack().await?;
        }
        if !framed.is_empty() {
            // nothing to write: the header alone makes an empty file
            self.stdin.write_all(&framed).await.map_err(broken)?;
            self.stdin.flush().await.map_err(broken)?;
        }
        self.finish().await
    }

    async fn read_ack(&mut self) -> Result<(), TransportError> {
        let mut line = String::new();
        self.stdout.read_line(&mut line).await.map_err(broken)?;
        match line.as_str() {
            "+\n" => Ok(()),
            _ => Err(broken(format!(
                "expected a chunk acknowledgement, got {line:?}"
            ))),
        }
    }

    async fn send(&mut self, cmd: &str, stdin: &[u8]) -> Result<(), TransportError> {
        let mut req = format!("{} {}\n", cmd.len(), stdin.len()).into_bytes();
        req.extend_from_slice(cmd.as_bytes());
        req.extend_from_slice(stdin);
        self.stdin.write_all(&req).await.map_err(broken)?;
        self.stdin.flush().await.map_err(broken)
    }

    async fn receive(&mut self) -> Result<ExecOutput, TransportError> {
        let mut header = String::new();
        let n = self.stdout.read_line(&mut header).await.map_err(broken)?;
        if n == 0 {
            return Err(broken("closed"));
        }
        let nums: Vec<i64> = header
            .split_whitespace()
            .map(|w| w.parse::<i64>())
            .collect::<Result<_, _>>()
            .map_err(|_| broken(format!("bad reply header {header:?}")))?;
        let [rc, out_len, err_len] = nums[..] else {
            return Err(broken(format!("bad reply header {header:?}")));
        };
        let mut stdout = vec![0u8; out_len.max(0) as usize];
        self.stdout.read_exact(&mut stdout).await.map_err(broken)?;
        let mut stderr = vec![0u8; err_len.max(0) as usize];
        self.stdout.read_exact(&mut stderr).await.map_err(broken)?;
        Ok(ExecOutput {
            rc: rc as i32,
            stdout,
            stderr,
        })
    }

    /// Ends the loop (its exit trap removes its temp dir) and waits for it.
    pub async fn close(mut self) {
        let _ = self.stdin.shutdown().await;
        drop(self.stdin);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), self.child.wait()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::putable_name;

    #[test]
    fn put_takes_plain_names_only() {
        assert!(putable_name("etcd_health-7896852fa662e587"));
        assert!(putable_name("my.module-1"));
        // anything else goes up with `cat` in a command of its own
        for bad in ["", ".c1", "a/b", "../x", "a b", "modül", "a\nb"] {
            assert!(!putable_name(bad), "{bad:?}");
        }
    }
}
