//! The TCP relay that SSH masters use as their `ProxyCommand`.
//!
//! OpenSSH leaves Nagle's algorithm on for sessions without a terminal, and the peers delay
//! their ACKs: during the key exchange, the login and the first sessions, a small packet
//! often waits 40 ms for the ACK of the one before (Linux's shortest delayed ACK), several
//! times per connection on any network. `ssh` has no option for it, but it can talk through
//! a `ProxyCommand`: this relay connects with `TCP_NODELAY`, and re-arms `TCP_QUICKACK`
//! after every read so the server's own small packets are acknowledged at once. It copies
//! bytes both ways and exits when the server closes the connection.
//!
//! A `ProxyCommand` or `ProxyJump` of the user's (ssh arguments or ssh config files) still
//! wins: see [`config_line`].

use socket2::SockRef;
use std::io::{Read, Write};
use std::mem::ManuallyDrop;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::fd::FromRawFd;
use std::time::Duration;

/// The hidden subcommand that runs the relay:
/// `etcd-agent __ssh-relay HOST PORT TIMEOUT_SECS ERROR_FILE`.
pub const SUBCOMMAND: &str = "__ssh-relay";

/// Environment variable that turns the relay off (`0`): masters then connect by themselves.
pub const DISABLE_ENV: &str = "ETCD_AGENT_SSH_RELAY";

/// The `ProxyCommand` line for an ssh config file, or `None` when the relay is off or this
/// executable's path cannot be had. It must come after the user's own options and config
/// files: ssh takes the first value it reads, and a `ProxyJump` read before it wins too.
/// A connect error goes to `error_file` (see [`take_error`]): ssh keeps a proxy's stderr
/// out of its log.
pub fn config_line(connect_timeout: u64, error_file: &std::path::Path) -> Option<String> {
    if std::env::var(DISABLE_ENV).is_ok_and(|v| v == "0") {
        return None;
    }
    let exe = std::env::current_exe().ok()?;
    let exe = exe.to_str()?;
    let error_file = error_file.to_str()?;
    // ssh runs it with `$SHELL -c "exec ..."`; `%h`/`%p` are the resolved host and port
    Some(format!(
        "ProxyCommand {} {SUBCOMMAND} %h %p {connect_timeout} {}",
        super::quote(exe),
        super::quote(error_file).replace('%', "%%")
    ))
}

/// The connect error the relay left in `error_file`, if any (the file is removed).
pub fn take_error(error_file: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(error_file).ok()?;
    let _ = std::fs::remove_file(error_file);
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

/// Runs the relay between stdin/stdout and `host:port`; returns the exit code. A connect
/// error is worded as ssh words its own and written to `error_file` and stderr.
pub fn run(host: &str, port: &str, timeout_secs: &str, error_file: &str) -> i32 {
    let timeout = Duration::from_secs(timeout_secs.parse::<u64>().unwrap_or(10).max(1));
    let stream = match connect(host, port, timeout) {
        Ok(s) => s,
        Err(msg) => {
            let msg = format!("ssh: {msg}");
            let _ = std::fs::write(error_file, &msg);
            eprintln!("{msg}");
            return 255;
        }
    };
    let _ = stream.set_nodelay(true);
    // ssh's own TCPKeepAlive (on by default) would have set it on the socket it now lacks
    let _ = SockRef::from(&stream).set_keepalive(true);
    let Ok(upstream) = stream.try_clone() else {
        return 255;
    };
    // stdin/stdout unbuffered: std's stdout is line-buffered, and this is binary
    let mut stdin = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(0) });
    let mut stdout = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(1) });
    std::thread::spawn(move || {
        let mut upstream = upstream;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if upstream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = upstream.shutdown(Shutdown::Write);
    });
    let mut downstream = stream;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match downstream.read(&mut buf) {
            Ok(0) | Err(_) => return 0,
            Ok(n) => {
                // quick ACKs are not sticky: the kernel falls back to delayed ones
                let _ = SockRef::from(&downstream).set_tcp_quickack(true);
                if stdout.write_all(&buf[..n]).is_err() {
                    return 0;
                }
            }
        }
    }
}

/// Connects to the first address of `host` that answers, as ssh does; the error reads as
/// ssh's (`connect to host H port P: Connection refused`).
fn connect(host: &str, port: &str, timeout: Duration) -> Result<TcpStream, String> {
    let port_number: u16 = port.parse().map_err(|_| format!("Bad port '{port}'"))?;
    let addrs = (host, port_number).to_socket_addrs().map_err(|e| {
        let text = e.to_string();
        let reason = text
            .strip_prefix("failed to lookup address information: ")
            .unwrap_or(&text)
            .to_string();
        format!("Could not resolve hostname {host}: {reason}")
    })?;
    let mut last = String::from("No address associated with hostname");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = os_message(&e),
        }
    }
    Err(format!("connect to host {host} port {port}: {last}"))
}

/// The C library's wording of an I/O error, without Rust's ` (os error N)` suffix.
fn os_message(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::TimedOut {
        return "Connection timed out".into();
    }
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::{connect, os_message};
    use std::time::Duration;

    #[test]
    fn refused_reads_as_ssh_says_it() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // the listener is gone: nothing listens on `port` now
        let err = connect("127.0.0.1", &port.to_string(), Duration::from_secs(5)).unwrap_err();
        assert_eq!(
            err,
            format!("connect to host 127.0.0.1 port {port}: Connection refused")
        );
    }

    #[test]
    fn os_error_suffix_is_dropped() {
        let e = std::io::Error::from_raw_os_error(113);
        assert_eq!(os_message(&e), "No route to host");
    }
}
