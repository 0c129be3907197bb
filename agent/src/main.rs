//! `etcd-agent`: a thin command line over the [`etcd_agent`] library.
use clap::Parser;

fn main() {
    let cli = etcd_agent::cli::Cli::parse();
    std::process::exit(etcd_agent::run(cli));
}
