//! `etcd-agent`: an Ansible-compatible playbook runner over multiplexed OpenSSH.
//!
//! Data flows one way: inventory + playbook -> executor -> (template each task) -> transport ->
//! module/builtin -> result -> output. The executor owns run state; output only observes.

#![warn(missing_docs)]

pub mod ansible_modules;
pub mod builtins;

pub mod cli;
pub mod collections;
pub mod config;
pub mod error;
pub mod executor;
pub mod inventory;
pub mod jinja;
pub mod listing;
pub mod module_arch;
pub mod modules;
pub mod output;
pub mod playbook;
pub mod secret;
pub mod signals;
pub mod terminal;
pub mod timing;
pub mod transport;
pub mod vault;
pub mod yaml;

mod commands;
pub mod extra_vars;

use cli::{Cli, Command};

/// Runs the command line and returns the process exit code; errors print one line to stderr.
pub fn run(cli: Cli) -> i32 {
    let started = std::time::Instant::now();
    let verbose = match &cli.command {
        Command::Playbook(a) => a.run.verbose,
        Command::Adhoc(a) => a.run.verbose,
        Command::Inventory(_) => 0,
    };
    init_tracing(verbose);
    std::panic::set_hook(Box::new(|info| {
        eprintln!("[ERROR]: internal error: {info}");
    }));
    let outcome = std::panic::catch_unwind(|| match cli.command {
        Command::Inventory(args) => commands::inventory(args),
        Command::Playbook(args) => commands::playbook(args),
        Command::Adhoc(args) => commands::adhoc(args),
    });
    if let Some(table) = timing::summary(started.elapsed()) {
        eprint!("{table}");
    }
    match outcome {
        Ok(Ok(code)) => code,
        Ok(Err(err)) => {
            eprintln!("{}", output::fatal::render(&err));
            error::exit_code_of(&err)
        }
        // Ansible's code for an unexpected error.
        Err(_) => 250,
    }
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::new(v),
        _ if verbose >= 3 => EnvFilter::new("etcd_agent=debug"),
        _ => EnvFilter::new("off"),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
