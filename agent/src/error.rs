//! Errors that end a run before (or instead of) executing hosts, with Ansible's exit codes.

use thiserror::Error;

/// A fatal error reported to the user as one line, with the exit code `ansible-playbook` uses.
#[derive(Debug, Error)]
pub enum Fatal {
    /// Bad YAML/INI, unknown module or keyword: `ansible-playbook` exits 4 (parser error).
    #[error("{0}")]
    Syntax(String),
    /// Bad command-line options or `-e` values: exit 5, as Ansible's option errors.
    #[error("{0}")]
    Usage(String),
    /// Missing files and other generic errors: exit 1.
    #[error("{0}")]
    Other(String),
}

impl Fatal {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Fatal::Syntax(_) => 4,
            Fatal::Usage(_) => 5,
            Fatal::Other(_) => 1,
        }
    }
}

/// True when `err` is a parser error ([`Fatal::Syntax`]). Loading what a dynamic include
/// names, ansible-core ends the run on a parser error and fails the include on the hosts
/// that reached it on any other error (a file or role that is not there).
pub fn is_parser_error(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|e| matches!(e.downcast_ref::<Fatal>(), Some(Fatal::Syntax(_))))
}

/// Exit code for an `anyhow` error: a [`Fatal`] anywhere in the chain decides, else 1.
pub fn exit_code_of(err: &anyhow::Error) -> i32 {
    err.chain()
        .find_map(|e| e.downcast_ref::<Fatal>())
        .map(Fatal::exit_code)
        .unwrap_or(1)
}

/// Shorthand for a syntax error (exit 4).
pub fn syntax(msg: impl Into<String>) -> anyhow::Error {
    Fatal::Syntax(msg.into()).into()
}

/// Shorthand for a usage error (exit 5).
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    Fatal::Usage(msg.into()).into()
}
