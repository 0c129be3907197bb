//! Throw-away PKI for TLS clusters: one CA, one certificate per member
//! (server and peer, both `serverAuth` and `clientAuth`), one client
//! certificate for etcdctl / modules. All files are PEM, in the cluster's
//! temp dir.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Paths of the PEM files of a TLS cluster.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// CA certificate: trusted by servers (clients, peers) and clients.
    pub ca_cert: PathBuf,
    /// CA private key (lets a test sign more certificates with another tool).
    pub ca_key: PathBuf,
    /// Client certificate (CN `etcd-agent-test-client`) for etcdctl/modules.
    pub client_cert: PathBuf,
    /// Private key of [`TlsFiles::client_cert`].
    pub client_key: PathBuf,
    /// Per member index: (certificate, key), used for both the client
    /// listener and peer traffic. SANs: the member's IP, 127.0.0.1, localhost.
    pub members: Vec<(PathBuf, PathBuf)>,
}

impl TlsFiles {
    /// Generates a CA, a client certificate and one server/peer certificate
    /// per address in `member_ips` (index = member index) into `dir`.
    pub fn generate(dir: &Path, member_ips: &[Ipv4Addr]) -> TlsFiles {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let write = |name: &str, pem: String| -> PathBuf {
            let p = dir.join(name);
            std::fs::write(&p, pem).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
            p
        };

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "etcd-agent test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().expect("generate CA key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign CA");
        let ca_cert_path = write("ca.pem", ca_cert.pem());
        let ca_key_path = write("ca-key.pem", ca_key.serialize_pem());
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf = |cn: &str, sans: Vec<String>, server: bool| -> (String, String) {
            let mut p = CertificateParams::new(sans).expect("leaf params");
            p.distinguished_name.push(DnType::CommonName, cn);
            p.use_authority_key_identifier_extension = true;
            p.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            if server {
                p.extended_key_usages
                    .push(ExtendedKeyUsagePurpose::ServerAuth);
            }
            let key = KeyPair::generate().expect("generate leaf key");
            let cert = p.signed_by(&key, &issuer).expect("sign leaf");
            (cert.pem(), key.serialize_pem())
        };

        let (cc, ck) = leaf("etcd-agent-test-client", vec![], false);
        let client_cert = write("client.pem", cc);
        let client_key = write("client-key.pem", ck);

        let members = member_ips
            .iter()
            .enumerate()
            .map(|(i, ip)| {
                let sans = vec![ip.to_string(), "127.0.0.1".into(), "localhost".into()];
                let (c, k) = leaf(&format!("member-{i}"), sans, true);
                (
                    write(&format!("member{i}.pem"), c),
                    write(&format!("member{i}-key.pem"), k),
                )
            })
            .collect();

        TlsFiles {
            ca_cert: ca_cert_path,
            ca_key: ca_key_path,
            client_cert,
            client_key,
            members,
        }
    }

    /// Certificate of member `i` (server and peer).
    pub fn member_cert(&self, i: usize) -> &Path {
        &self.members[i].0
    }

    /// Private key of member `i`.
    pub fn member_key(&self, i: usize) -> &Path {
        &self.members[i].1
    }

    /// etcdctl flags for client-certificate authentication:
    /// `--cacert=.. --cert=.. --key=..`.
    pub fn etcdctl_args(&self) -> Vec<String> {
        vec![
            format!("--cacert={}", self.ca_cert.display()),
            format!("--cert={}", self.client_cert.display()),
            format!("--key={}", self.client_key.display()),
        ]
    }
}
