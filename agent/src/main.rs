//! `etcd-agent`: an Ansible-compatible playbook runner (work in progress).
use clap::Parser;

/// Runs Ansible playbooks over multiplexed OpenSSH.
#[derive(Parser)]
#[command(name = "etcd-agent", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
