//! `etcd-agent`: a thin command line over the [`etcd_agent`] library.
use clap::Parser;

fn main() {
    // the SSH masters' ProxyCommand: kept off the parser, it starts once per connection
    let args: Vec<String> = std::env::args().collect();
    if let [_, sub, host, port, timeout, error_file] = &args[..] {
        if sub == etcd_agent::transport::relay::SUBCOMMAND {
            std::process::exit(etcd_agent::transport::relay::run(
                host, port, timeout, error_file,
            ));
        }
    }
    let cli = etcd_agent::cli::Cli::parse();
    std::process::exit(etcd_agent::run(cli));
}
