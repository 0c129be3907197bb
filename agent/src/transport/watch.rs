//! Commands that die with the agent, remote or local: the watcher wrapper they run in, and
//! how their exit status reads.

/// The wrapper of a command without stdin in a session of its own (`$1`; also used for
/// local commands): the command runs
/// in a session of its own (`setsid`, when there is one) while a watcher reads the session's
/// stdin, which the agent holds open until the command exits; if it ends first (Ctrl-C, or
/// the agent died and its master dropped the channel), the watcher kills the command's
/// process group, as the persistent shell's does (`transport/shell.rs`).
pub const WATCHED: &str = r#"exec 3<&0
ss=
command -v setsid >/dev/null 2>&1 && ss=setsid
env --default-signal=INT,QUIT true 2>/dev/null && ss="$ss env --default-signal=INT,QUIT"
(exec $ss /bin/sh -c "$1" 3<&-) </dev/null &
p=$!
(read -r _ <&3 || { kill -s TERM -- "-$p" "$p"; sleep 2; kill -s KILL -- "-$p" "$p"; }) </dev/null >/dev/null 2>&1 &
w=$!
wait "$p"
r=$?
kill -s KILL "$w" 2>/dev/null
exit "$r"
"#;

/// Exit code, or minus the signal number.
pub fn exit_code(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| -status.signal().unwrap_or(1))
}
