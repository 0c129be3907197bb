//! The etcd connection options shared by every module, and the one place
//! that turns them into `etcd-client` clients.

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

use crate::protocol::lenient::{split_list, List, Seconds};
use crate::protocol::{ArgType, EtcdError, Failure, FailureKind, OptionDoc, Rule, SharedOptions};

/// etcdctl's default endpoint, when neither `endpoints` nor
/// `ETCDCTL_ENDPOINTS` is set. (The timeouts' defaults, etcdctl's too, are
/// declared in [`ConnectionArgs`]' options and filled in by the protocol.)
const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:2379";

/// Connection options accepted by every module that talks to etcd.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionArgs {
    /// Client URLs; `ETCDCTL_ENDPOINTS` when absent.
    pub endpoints: Option<List>,
    /// CA bundle (PEM) to verify the servers; `ETCDCTL_CACERT` when absent.
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM); `ETCDCTL_CERT` when absent.
    pub client_cert: Option<PathBuf>,
    /// Client key (PEM); `ETCDCTL_KEY` when absent.
    pub client_key: Option<PathBuf>,
    /// User name for etcd's auth.
    pub user: Option<String>,
    /// Password for `user` (secret).
    pub password: Option<String>,
    /// How long to wait for a connection.
    pub dial_timeout: Seconds,
    /// How long one request may take.
    pub command_timeout: Seconds,
}

impl SharedOptions for ConnectionArgs {
    const GROUP: &'static str = "connection";

    /// Documentation of the connection options, merged into every module's docs.
    const OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::new(
            "endpoints",
            ArgType::List,
            "etcd client URLs (scheme://host:port, scheme http or https, port 1-65535), as a list or a comma-separated string. Falls back to ETCDCTL_ENDPOINTS, then http://127.0.0.1:2379. A URL without scheme gets https:// when TLS options are set.",
        ),
        OptionDoc::new(
            "ca_cert",
            ArgType::Path,
            "PEM CA bundle that signed the servers' certificates. Falls back to ETCDCTL_CACERT.",
        ),
        OptionDoc::new(
            "client_cert",
            ArgType::Path,
            "PEM client certificate for client-cert auth. Falls back to ETCDCTL_CERT.",
        ),
        OptionDoc::new(
            "client_key",
            ArgType::Path,
            "PEM private key of client_cert. Falls back to ETCDCTL_KEY.",
        ),
        OptionDoc::new(
            "user",
            ArgType::Str,
            "User name for etcd authentication. etcdctl's name:password form is accepted: the part after the first colon is the password (masked like password); not together with password.",
        ),
        OptionDoc::new("password", ArgType::Str, "Password of user.").no_log(),
        OptionDoc::new(
            "dial_timeout",
            ArgType::Float,
            "Seconds to wait for a connection to an endpoint (or a string such as 500ms, 2s); more than 0.",
        )
        .default("2"),
        OptionDoc::new(
            "command_timeout",
            ArgType::Float,
            "Seconds one request may take (or a string such as 5s); more than 0.",
        )
        .default("5"),
    ];

    const RULES: &'static [Rule] = &[Rule::required_by("password", &["user"])];

    /// Checks what can be checked without the network or files, at
    /// argument-parsing time: endpoint URLs and ports, timeouts above zero.
    fn validate(&self) -> Result<(), String> {
        if let Some(List(list)) = &self.endpoints {
            if list.is_empty() {
                return Err("argument 'endpoints' is invalid: it is empty".into());
            }
            for endpoint in list {
                parse_endpoint(endpoint, None)
                    .map_err(|e| format!("argument 'endpoints' is invalid: {e}"))?;
            }
        }
        for (name, value) in [
            ("dial_timeout", self.dial_timeout),
            ("command_timeout", self.command_timeout),
        ] {
            if value.0.is_zero() {
                return Err(format!(
                    "argument '{name}' is invalid: it must be more than 0 seconds"
                ));
            }
        }
        Ok(())
    }

    /// `user: "name:password"` becomes `user` and `password`.
    fn prepare(supplied: &mut Map<String, Value>) -> Result<(), String> {
        split_user_password(supplied)
    }

    /// The password of `user: "name:password"`.
    fn embedded_secrets(raw: &Map<String, Value>) -> Vec<String> {
        match raw.get("user") {
            Some(Value::String(user)) => user
                .split_once(':')
                .map(|(_, password)| vec![password.to_string()])
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

impl ConnectionArgs {
    /// Resolves the options (environment fallbacks, certificate files) into
    /// a [`Connection`]. Fails with a message naming the bad option.
    pub fn connect_settings(&self) -> Result<Connection, Failure> {
        let env_path = |name: &str| std::env::var_os(name).map(PathBuf::from);
        let ca_cert = self.ca_cert.clone().or_else(|| env_path("ETCDCTL_CACERT"));
        let client_cert = self
            .client_cert
            .clone()
            .or_else(|| env_path("ETCDCTL_CERT"));
        let client_key = self.client_key.clone().or_else(|| env_path("ETCDCTL_KEY"));

        let (tls, tls_config) =
            if ca_cert.is_some() || client_cert.is_some() || client_key.is_some() {
                let (tls, config) = load_tls(
                    ca_cert.as_deref(),
                    client_cert.as_deref(),
                    client_key.as_deref(),
                )?;
                (Some(tls), Some(config))
            } else {
                (None, None)
            };

        let raw_endpoints = match &self.endpoints {
            Some(List(list)) => list.clone(),
            None => match std::env::var("ETCDCTL_ENDPOINTS") {
                Ok(env) => split_list(&env),
                Err(_) => vec![DEFAULT_ENDPOINT.to_string()],
            },
        };
        if raw_endpoints.is_empty() {
            return Err(Failure::new("endpoints is empty"));
        }
        let endpoints = raw_endpoints
            .iter()
            .map(|e| normalize_endpoint(e, tls.is_some()))
            .collect::<Result<Vec<_>, _>>()?;

        let user = match (&self.user, &self.password) {
            (Some(user), Some(password)) => Some((user.clone(), password.clone())),
            (Some(user), None) => Some((user.clone(), String::new())),
            // The declared rule (password requires user) refuses this first.
            (None, Some(_)) => {
                return Err(Failure::new(
                    "missing parameter(s) required by 'password': user",
                ))
            }
            (None, None) => None,
        };

        Ok(Connection {
            endpoints,
            tls,
            tls_config,
            user,
            dial_timeout: self.dial_timeout.0,
            command_timeout: self.command_timeout.0,
        })
    }
}

/// `user: "name:password"` (etcdctl's `--user` syntax) becomes `user: name`
/// and `password: password`, so the password is masked like any `no_log`
/// value. A colon in `user` together with `password` is refused.
fn split_user_password(args: &mut Map<String, Value>) -> Result<(), String> {
    let Some(Value::String(user)) = args.get("user") else {
        return Ok(());
    };
    let Some((name, password)) = user.split_once(':') else {
        return Ok(());
    };
    if args.get("password").is_some_and(|p| !p.is_null()) {
        return Err("argument 'user' is invalid: it holds a password after a colon (user:password) and password is given too; give the password only once".into());
    }
    if name.is_empty() {
        return Err("argument 'user' is invalid: the user name before the colon is empty".into());
    }
    let (name, password) = (name.to_string(), password.to_string());
    args.insert("user".into(), Value::String(name));
    args.insert("password".into(), Value::String(password));
    Ok(())
}

/// One PEM file's sections, read and decoded, or why not.
fn read_pem_sections(option: &str, path: &Path) -> Result<Vec<(SectionKind, Vec<u8>)>, Failure> {
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::new(format!("{option}: cannot read {}: {e}", path.display())))?;
    let sections = <(SectionKind, Vec<u8>)>::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            Failure::new(format!(
                "{option}: {} is not a valid PEM file: {e}",
                path.display()
            ))
        })?;
    if sections.is_empty() {
        return Err(Failure::new(format!(
            "{option}: {} is not a PEM file",
            path.display()
        )));
    }
    Ok(sections)
}

fn is_key(kind: &SectionKind) -> bool {
    matches!(
        kind,
        SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey
    )
}

/// What a PEM file holds, for messages ("a private key", "a certificate").
fn holds(sections: &[(SectionKind, Vec<u8>)]) -> &'static str {
    if sections.iter().any(|(k, _)| is_key(k)) {
        "a private key"
    } else if sections.iter().any(|(k, _)| *k == SectionKind::Certificate) {
        "a certificate"
    } else {
        "neither a certificate nor a private key"
    }
}

fn certificates(sections: &[(SectionKind, Vec<u8>)]) -> Vec<CertificateDer<'static>> {
    sections
        .iter()
        .filter(|(k, _)| *k == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der.clone()))
        .collect()
}

/// Reads and checks the TLS files before any dial, naming the file and the
/// problem: missing or unreadable, not PEM, no certificate in the CA file,
/// an unparsable certificate or key, cert and key swapped, key not matching
/// the certificate. rustls would only say "transport error" at connect time.
fn load_tls(
    ca: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<(TlsOptions, Arc<rustls::ClientConfig>), Failure> {
    let mut tls = TlsOptions::new();
    // the same files as a rustls configuration, for the plain HTTP endpoints (`/version`)
    let mut roots = rustls::RootCertStore::empty();
    let mut identity = None;
    if let Some(ca) = ca {
        let sections = read_pem_sections("ca_cert", ca)?;
        let certs = certificates(&sections);
        if certs.is_empty() {
            return Err(Failure::new(format!(
                "ca_cert: {} holds no certificate (it holds {})",
                ca.display(),
                holds(&sections)
            )));
        }
        for (i, der) in certs.into_iter().enumerate() {
            roots.add(der).map_err(|e| {
                Failure::new(format!(
                    "ca_cert: certificate {} in {} cannot be used as a CA: {e}",
                    i + 1,
                    ca.display()
                ))
            })?;
        }
        let pem = std::fs::read(ca)
            .map_err(|e| Failure::new(format!("ca_cert: cannot read {}: {e}", ca.display())))?;
        tls = tls.ca_certificate(Certificate::from_pem(pem));
    }
    match (cert, key) {
        (Some(cert), Some(key)) => {
            let cert_sections = read_pem_sections("client_cert", cert)?;
            let key_sections = read_pem_sections("client_key", key)?;
            let certs = certificates(&cert_sections);
            let key_der = key_sections.iter().find(|(k, _)| is_key(k));
            if certs.is_empty()
                && key_der.is_none()
                && cert_sections.iter().any(|(k, _)| is_key(k))
                && key_sections
                    .iter()
                    .any(|(k, _)| *k == SectionKind::Certificate)
            {
                return Err(Failure::new(format!(
                    "client_cert and client_key are swapped: client_cert {} holds a private key and client_key {} holds a certificate",
                    cert.display(),
                    key.display()
                )));
            }
            if certs.is_empty() {
                return Err(Failure::new(format!(
                    "client_cert: {} holds no certificate (it holds {})",
                    cert.display(),
                    holds(&cert_sections)
                )));
            }
            let Some((kind, der)) = key_der else {
                return Err(Failure::new(format!(
                    "client_key: {} holds no private key (it holds {})",
                    key.display(),
                    holds(&key_sections)
                )));
            };
            let key_der = match kind {
                SectionKind::RsaPrivateKey => PrivateKeyDer::Pkcs1(der.clone().into()),
                SectionKind::EcPrivateKey => PrivateKeyDer::Sec1(der.clone().into()),
                _ => PrivateKeyDer::Pkcs8(der.clone().into()),
            };
            let signing_key =
                rustls::crypto::ring::sign::any_supported_type(&key_der).map_err(|e| {
                    Failure::new(format!(
                        "client_key: {} is not a usable private key: {e}",
                        key.display()
                    ))
                })?;
            let certified = rustls::sign::CertifiedKey::new(certs.clone(), signing_key);
            match certified.keys_match() {
                Ok(())
                | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
                Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                    return Err(Failure::new(format!(
                        "client_key: {} does not match the certificate in client_cert {}",
                        key.display(),
                        cert.display()
                    )))
                }
                Err(e) => {
                    return Err(Failure::new(format!(
                        "client_cert: the certificate in {} cannot be parsed: {e}",
                        cert.display()
                    )))
                }
            }
            let cert_pem = std::fs::read(cert).map_err(|e| {
                Failure::new(format!("client_cert: cannot read {}: {e}", cert.display()))
            })?;
            let key_pem = std::fs::read(key).map_err(|e| {
                Failure::new(format!("client_key: cannot read {}: {e}", key.display()))
            })?;
            tls = tls.identity(Identity::from_pem(cert_pem, key_pem));
            identity = Some((certs, key_der.clone_key()));
        }
        (None, None) => {}
        _ => {
            return Err(Failure::new(
                "client_cert and client_key must be given together",
            ))
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Failure::new(format!("TLS: {e}")))?
    .with_root_certificates(roots);
    let config = match identity {
        Some((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| Failure::new(format!("client_cert: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    Ok((tls, Arc::new(config)))
}

/// Checks an endpoint URL (`[http[s]://]host[:port][/]`) and returns it with
/// a scheme: the one given, or https when `tls` is `Some(true)`, http
/// otherwise. A malformed URL, a port that is not 1-65535, or a path is
/// refused here rather than reported later as "connection refused".
fn parse_endpoint(endpoint: &str, tls: Option<bool>) -> Result<String, String> {
    let given = endpoint.trim();
    if given.is_empty() {
        return Err("an endpoint is empty".into());
    }
    // Messages name the endpoint as given, less any user information
    // (`user:password@`), which is a credential wherever it appears.
    let endpoint = &hide_userinfo(given);
    let (scheme, rest) = match given.split_once("://") {
        Some((scheme, rest)) => {
            let scheme = scheme.to_ascii_lowercase();
            if scheme != "http" && scheme != "https" {
                return Err(format!(
                    "endpoint {endpoint} has an unsupported scheme (use http:// or https://)"
                ));
            }
            (Some(scheme), rest)
        }
        None => (None, given),
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() {
        return Err(format!("endpoint {endpoint} has no host"));
    }
    if let Some(c) = authority
        .chars()
        .find(|c| matches!(c, '/' | '?' | '#' | '@') || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "endpoint {endpoint} is not a client URL ({c:?} found; use scheme://host:port)"
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err(format!("endpoint {endpoint} has an unclosed [ in its host"));
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("endpoint {endpoint} has an invalid IPv6 address"));
        }
        match after {
            "" => (authority, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (&authority[..authority.len() - after.len()], Some(port)),
                None => {
                    return Err(format!(
                        "endpoint {endpoint} has text after its IPv6 address"
                    ))
                }
            },
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("endpoint {endpoint} has no host"));
    }
    if !host.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(format!(
            "endpoint {endpoint} has an invalid host name {host:?}"
        ));
    }
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.len() <= 5
            && port.chars().all(|c| c.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p));
        if !valid {
            return Err(format!(
                "endpoint {endpoint} has an invalid port {port:?} (a number from 1 to 65535)"
            ));
        }
    }
    match (scheme.as_deref(), tls) {
        (Some("http"), Some(true)) => Err(format!(
            "endpoint {endpoint} is plain http but TLS options are set: use https://{authority}"
        )),
        (Some(scheme), _) => Ok(format!("{scheme}://{authority}")),
        (None, Some(true)) => Ok(format!("https://{authority}")),
        (None, _) => Ok(format!("http://{authority}")),
    }
}

/// The endpoint with everything between its scheme and the last `@` of its
/// authority replaced by `***`: the text an error message may show.
fn hide_userinfo(endpoint: &str) -> String {
    let (prefix, rest) = match endpoint.find("://") {
        Some(i) => endpoint.split_at(i + 3),
        None => ("", endpoint),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    // A user name or password may itself hold '/', '?' or '#': hide up to
    // the last '@' anywhere when the authority has none.
    let at = rest[..authority_end].rfind('@').or_else(|| rest.rfind('@'));
    match at {
        Some(at) => format!("{prefix}***{}", &rest[at..]),
        None => endpoint.to_string(),
    }
}

/// Adds the scheme etcdctl would assume, and rejects a scheme that cannot
/// work with the TLS settings instead of failing later with a vague error.
fn normalize_endpoint(endpoint: &str, tls: bool) -> Result<String, Failure> {
    parse_endpoint(endpoint, Some(tls)).map_err(Failure::new)
}

/// Resolved connection settings: the one way modules get an etcd client.
#[derive(Clone)]
pub struct Connection {
    /// Normalized client URLs.
    pub endpoints: Vec<String>,
    tls: Option<TlsOptions>,
    /// The same TLS files for plain HTTP requests (see [`crate::version_endpoint`]).
    pub(crate) tls_config: Option<Arc<rustls::ClientConfig>>,
    user: Option<(String, String)>,
    /// Connection timeout.
    pub dial_timeout: Duration,
    /// Per-request timeout.
    pub command_timeout: Duration,
}

impl Connection {
    /// A client talking to exactly one endpoint (health checks must not be
    /// balanced away from the member they test).
    pub async fn client_for(&self, endpoint: &str) -> Result<Client, Failure> {
        let endpoint = normalize_endpoint(endpoint, self.tls.is_some())?;
        let mut options = ConnectOptions::new()
            .with_connect_timeout(self.dial_timeout)
            .with_timeout(self.command_timeout);
        if let Some(tls) = &self.tls {
            options = options.with_tls(tls.clone());
        }
        if let Some((user, password)) = &self.user {
            options = options.with_user(user.clone(), password.clone());
        }
        // With auth, connect() authenticates, so bound it like a request.
        let connect = Client::connect([endpoint.as_str()], Some(options));
        self.bounded(&format!("connecting to {endpoint}"), connect)
            .await
    }

    /// Awaits an etcd call, bounded by dial + command timeout (a frozen
    /// member accepts TCP but never answers), with a readable error.
    pub async fn bounded<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, Failure> {
        let limit = self.dial_timeout + self.command_timeout;
        match tokio::time::timeout(limit, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                Err(Failure::new(format!("{what}: {}", describe(&e)))
                    .of_kind(FailureKind::of_etcd(&e)))
            }
            Err(_) => Err(Failure::new(format!(
                "{what}: timed out after {:.1}s",
                limit.as_secs_f64()
            ))
            .of_kind(FailureKind::Timeout)),
        }
    }

    /// Runs `call` against every endpoint at once and returns the first
    /// success with the endpoint that gave it; if all fail, one error
    /// listing each endpoint's reason.
    pub async fn first_success<T, F, Fut>(&self, call: F) -> Result<(String, T), Failure>
    where
        T: Send + 'static,
        F: Fn(Connection, String) -> Fut,
        Fut: Future<Output = Result<T, Failure>> + Send + 'static,
    {
        let mut tasks = JoinSet::new();
        for endpoint in &self.endpoints {
            let attempt = call(self.clone(), endpoint.clone());
            let endpoint = endpoint.clone();
            tasks.spawn(async move { (endpoint, attempt.await) });
        }
        let mut errors = Vec::new();
        let mut kinds = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((endpoint, Ok(value))) => return Ok((endpoint, value)),
                Ok((_, Err(e))) => {
                    kinds.push(e.kind);
                    errors.push(e.msg);
                }
                Err(e) => errors.push(format!("internal error: {e}")),
            }
        }
        Err(Failure::new(format!(
            "no etcd endpoint answered ({}): {}",
            self.endpoints.join(", "),
            errors.join("; ")
        ))
        .of_kind(FailureKind::combined(&kinds)))
    }
}

/// A one-line description of an etcd-client error: gRPC message, or the
/// transport error with its causes (connection refused, certificate errors).
pub fn describe(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(status) => {
            let mut text = status.message().to_string();
            let mut source = std::error::Error::source(status);
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !text.contains(&cause_text) {
                    text.push_str(": ");
                    text.push_str(&cause_text);
                }
                source = cause.source();
            }
            if text.is_empty() {
                format!("{:?}", status.code())
            } else {
                text
            }
        }
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !text.contains(&cause_text) {
                    text.push_str(": ");
                    text.push_str(&cause_text);
                }
                source = cause.source();
            }
            text
        }
    }
}

/// Whether the error is etcd's "permission denied" (auth enabled, user
/// lacks rights): the member answered, so for health it counts as healthy.
pub fn is_permission_denied(e: &Failure) -> bool {
    e.etcd() == Some(EtcdError::PermissionDenied)
}

/// etcd member ids as etcdctl prints them (`%x`).
pub fn member_id_hex(id: u64) -> String {
    format!("{id:x}")
}

/// The cluster's membership as one endpoint sees it.
#[derive(Debug, Clone)]
pub struct ClusterView {
    /// The endpoint that answered.
    pub endpoint: String,
    /// The members, in etcd's order (by id).
    pub members: Vec<etcd_client::Member>,
    /// The leader the answering member follows; `None` while it knows none.
    pub leader: Option<u64>,
    /// The answering member's id.
    pub member_id: u64,
    /// The cluster id.
    pub cluster_id: u64,
}

impl ClusterView {
    /// The member with this id, if it is one.
    pub fn member(&self, id: u64) -> Option<&etcd_client::Member> {
        self.members.iter().find(|m| m.id() == id)
    }

    /// The leader's first client URL, if there is a leader that has started.
    pub fn leader_url(&self) -> Option<&str> {
        self.leader
            .and_then(|id| self.member(id))
            .and_then(|m| m.client_urls().first())
            .map(String::as_str)
    }
}

impl Connection {
    /// The alarms raised in the cluster (`etcdctl alarm list`): member id and alarm type.
    pub async fn alarms(
        &self,
        client: &mut Client,
    ) -> Result<Vec<(u64, etcd_client::AlarmType)>, Failure> {
        use etcd_client::{AlarmAction, AlarmType};
        let response = self
            .bounded(
                "listing alarms",
                client.alarm(AlarmAction::Get, AlarmType::None, None),
            )
            .await?;
        Ok(response
            .alarms()
            .iter()
            .filter(|a| a.alarm() != AlarmType::None)
            .map(|a| (a.member_id(), a.alarm()))
            .collect())
    }

    /// Member list and leader from the first endpoint that answers both.
    pub async fn cluster_view(&self) -> Result<ClusterView, Failure> {
        let (_, view) = self
            .first_success(|conn, endpoint| async move { conn.cluster_view_at(&endpoint).await })
            .await?;
        Ok(view)
    }

    /// Member list and leader as `endpoint` sees them: after a membership
    /// change, ask the member that made it, which has applied it.
    pub async fn cluster_view_at(&self, endpoint: &str) -> Result<ClusterView, Failure> {
        let mut client = self.client_for(endpoint).await?;
        let list = self
            .bounded(
                &format!("listing members via {endpoint}"),
                client.member_list(),
            )
            .await?;
        let status = self
            .bounded(&format!("status of {endpoint}"), client.status())
            .await?;
        let header = list.header();
        Ok(ClusterView {
            endpoint: endpoint.to_string(),
            members: list.members().to_vec(),
            leader: Some(status.leader()).filter(|id| *id != 0),
            member_id: header.map_or(0, |h| h.member_id()),
            cluster_id: header.map_or(0, |h| h.cluster_id()),
        })
    }

    /// Moves raft leadership to member `target`. etcd only accepts
    /// MoveLeader on the current leader ("etcdserver: not leader"
    /// elsewhere), so `leader_url` must be the leader's client URL. etcd
    /// answers once the transfer is done.
    pub async fn move_leader(&self, leader_url: &str, target: u64) -> Result<(), Failure> {
        let mut client = self.client_for(leader_url).await?;
        self.bounded(
            &format!(
                "moving leadership to {} via {leader_url}",
                member_id_hex(target)
            ),
            client.move_leader(target),
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_a_scheme_matching_tls() {
        assert_eq!(
            normalize_endpoint("10.0.0.1:2379", false).unwrap().as_str(),
            "http://10.0.0.1:2379"
        );
        assert_eq!(
            normalize_endpoint("10.0.0.1:2379", true).unwrap().as_str(),
            "https://10.0.0.1:2379"
        );
        assert!(normalize_endpoint("http://10.0.0.1:2379", true).is_err());
        assert!(normalize_endpoint("unix://x", false).is_err());
    }

    #[test]
    fn refused_endpoints_never_show_their_user_information() {
        for (given, shown) in [
            ("http://root:pw@10.0.0.1:2379", "http://***@10.0.0.1:2379"),
            ("ftp://root:pw@h:1", "ftp://***@h:1"),
            ("root:pw@h:1/x", "***@h:1/x"),
            ("https://u:p/w?#@h", "https://***@h"),
        ] {
            let err = normalize_endpoint(given, false).err().unwrap().msg;
            assert!(err.contains(shown), "{err}");
            assert!(!err.contains("pw") && !err.contains("p/w"), "{err}");
        }
    }
}
