//! A finished run of a program the tests start (`etcd-agent`, `ansible-playbook`,
//! `ansible-inventory`...): its exit status and both output streams as text, and the one
//! exit-code check every test uses ([`RunOutput::expect_exit`]), which shows both streams
//! when the code is not the expected one.

use std::io::Write;
use std::process::{Command, ExitStatus, Output, Stdio};

/// What one run printed and how it exited.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// The command line that ran (shortened), for messages.
    pub command: String,
    /// The exit status.
    pub status: ExitStatus,
    /// Everything on stdout (lossy UTF-8).
    pub stdout: String,
    /// Everything on stderr (lossy UTF-8).
    pub stderr: String,
}

impl RunOutput {
    /// Wraps the [`Output`] of `command`.
    pub fn from_output(command: &str, out: Output) -> RunOutput {
        RunOutput {
            command: command.to_string(),
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The exit code (`None` if a signal ended the program).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// True if the program exited 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// stdout and stderr together, for assertion messages.
    pub fn describe(&self) -> String {
        describe_streams(&self.stdout, &self.stderr)
    }

    /// stdout followed by stderr, as one text (what a terminal would show).
    pub fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Panics, showing both streams, unless the program exited with `code`.
    pub fn expect_exit(&self, code: i32) -> &Self {
        expect_exit_of(&self.command, self.status, code, &self.stdout, &self.stderr);
        self
    }
}

/// stdout and stderr under headings, for assertion messages.
pub fn describe_streams(stdout: &str, stderr: &str) -> String {
    format!("--- stdout:\n{stdout}\n--- stderr:\n{stderr}")
}

/// Panics, showing `stdout` and `stderr`, unless `status` (of `command`) is the exit code
/// `code`.
pub fn expect_exit_of(command: &str, status: ExitStatus, code: i32, stdout: &str, stderr: &str) {
    assert!(
        status.code() == Some(code),
        "{command}: expected exit code {code}, got {status}\n{}",
        describe_streams(stdout, stderr)
    );
}

/// Runs `cmd` to the end with no stdin and captures both streams; panics only if it cannot
/// be started.
pub fn run(cmd: &mut Command) -> RunOutput {
    run_with_stdin(cmd, None)
}

/// Runs `cmd` to the end, feeding it `stdin` (no stdin if `None`), and captures both
/// streams; panics only if it cannot be started.
pub fn run_with_stdin(cmd: &mut Command, stdin: Option<&str>) -> RunOutput {
    let program = command_line(cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    // a program the test has just written can be "busy" for a moment: another test thread
    // forking while the file was open for writing holds a copy of that descriptor until it
    // execs (ETXTBSY); that passes, so it is retried
    let mut attempts = 0;
    let mut child = loop {
        match cmd.spawn() {
            Ok(child) => break child,
            Err(e) if e.raw_os_error() == Some(26) && attempts < 100 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("cannot run {program}: {e}"),
        }
    };
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("write stdin of {program}: {e}"));
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait for {program}: {e}"));
    RunOutput::from_output(&program, out)
}

/// `cmd`'s program and arguments as one line, cut at [`COMMAND_LINE_MAX`] characters.
fn command_line(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    if line.chars().count() > COMMAND_LINE_MAX {
        line = line.chars().take(COMMAND_LINE_MAX).collect::<String>() + "...";
    }
    line
}

/// Longest command line shown in messages.
const COMMAND_LINE_MAX: usize = 300;
