//! etcd's `/version` HTTP endpoint on a member's client URL: the server version and the
//! cluster version as etcd itself reports them. The gRPC API has no call that returns the
//! cluster version (it moves when the leader decides, and back during a downgrade), so
//! this plain HTTP request, over the same TLS files as the gRPC clients, is how the modules
//! read it, as `curl https://member:2379/version` does.

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::connection::Connection;
use crate::protocol::Failure;

/// The versions one member reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    /// `etcdserver`: the member's binary.
    pub server: String,
    /// `etcdcluster`: the version the cluster runs at (`X.Y.0`).
    pub cluster: String,
}

/// Most bytes read from the endpoint (its answer is a few dozen).
const MAX_REPLY: u64 = 64 * 1024;

/// Reads `/version` from the member at client URL `url`, bounded by the connection's
/// dial and command timeouts.
pub async fn read(conn: &Connection, url: &str) -> Result<Versions, Failure> {
    let limit = conn.dial_timeout + conn.command_timeout;
    match tokio::time::timeout(limit, read_unbounded(conn, url)).await {
        Ok(result) => result.map_err(|e| Failure::new(format!("reading {url}/version: {e}"))),
        Err(_) => Err(Failure::new(format!(
            "reading {url}/version: timed out after {:.1}s",
            limit.as_secs_f64()
        ))),
    }
}

async fn read_unbounded(conn: &Connection, url: &str) -> Result<Versions, String> {
    let (https, authority) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        _ => return Err("not an http(s) URL".into()),
    };
    let authority = authority.split('/').next().unwrap_or(authority);
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let stream = TcpStream::connect(authority)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let reply = if https {
        let config = conn
            .tls_config
            .clone()
            .ok_or("an https endpoint needs ca_cert (and the client certificate, if the server asks for one)")?;
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| format!("bad host name {host}: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        exchange(tls, authority).await?
    } else {
        exchange(stream, authority).await?
    };
    parse_reply(&reply)
}

/// Sends the request and reads the whole answer (the server closes the connection).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    authority: &str,
) -> Result<Vec<u8>, String> {
    let request = format!("GET /version HTTP/1.0\r\nHost: {authority}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    stream
        .flush()
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut reply = Vec::new();
    match (&mut stream).take(MAX_REPLY).read_to_end(&mut reply).await {
        Ok(_) => Ok(reply),
        // a TLS peer that closes without close_notify: what arrived is the answer
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !reply.is_empty() => Ok(reply),
        Err(e) => Err(format!("reading the answer: {e}")),
    }
}

/// The versions in an HTTP answer to `GET /version`.
fn parse_reply(reply: &[u8]) -> Result<Versions, String> {
    let text = String::from_utf8_lossy(reply);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("no HTTP answer (the connection closed early)")?;
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("the server answered {status:?}"));
    }
    let doc: Value =
        serde_json::from_str(body.trim()).map_err(|e| format!("not JSON ({e}): {body:.200}"))?;
    let field = |name: &str| {
        doc[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no {name} in {doc}"))
    };
    Ok(Versions {
        server: field("etcdserver")?,
        cluster: field("etcdcluster")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_answer_is_parsed() {
        let reply = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nDate: x\r\nContent-Length: 44\r\n\r\n{\"etcdserver\":\"3.6.15\",\"etcdcluster\":\"3.5.0\"}";
        assert_eq!(
            parse_reply(reply),
            Ok(Versions {
                server: "3.6.15".into(),
                cluster: "3.5.0".into()
            })
        );
    }

    #[test]
    fn errors_say_what_came_back() {
        let err = parse_reply(b"HTTP/1.0 404 Not Found\r\n\r\n404 page not found").unwrap_err();
        assert!(err.contains("404"), "{err}");
        let err = parse_reply(b"HTTP/1.0 200 OK\r\n\r\n{\"etcdserver\":\"3.4.23\"}").unwrap_err();
        assert!(err.contains("etcdcluster"), "{err}");
        assert!(parse_reply(b"").is_err());
    }
}
