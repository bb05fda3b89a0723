//! Shared by the TLS test files (included with `#[path]`): a throw-away PKI made with rcgen
//! (no key is committed), tern started with `-Z` on it, and rustls clients.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;

use super::common::{Tern, REPLY_TIMEOUT};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A CA and what it signed, written as PEM files into a fresh directory.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: rcgen::Certificate,
    pub ca_key: KeyPair,
}

/// A certificate and key, in memory and on disk.
pub struct Leaf {
    pub cert: CertificateDer<'static>,
    pub key_pem: String,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

pub fn fresh_dir(tag: &str) -> PathBuf {
    // No commas or spaces: memcached's -o splits at commas.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("tern-tls-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Pki {
    pub fn new(tag: &str) -> Pki {
        let dir = fresh_dir(tag);
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("tern test CA {tag}"));
        let ca = params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Pki { dir, ca, ca_key }
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A leaf for `localhost` and 127.0.0.1, written as `<name>.pem` and `<name>.key`.
    pub fn leaf(&self, name: &str) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let cert_path = self.dir.join(format!("{name}.pem"));
        let key_path = self.dir.join(format!("{name}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        Leaf {
            cert: cert.der().clone(),
            key_pem: key.serialize_pem(),
            cert_path,
            key_path,
        }
    }

    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        roots
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts tern with `-Z` on `server`'s files, adjusted by `tweak`.
pub fn start_tls(server: &Leaf, tweak: impl FnOnce(&mut tern::config::Settings)) -> Tern {
    Tern::start_with(|s| {
        s.tls.enabled = true;
        s.tls.chain_cert = Some(server.cert_path.clone());
        s.tls.key = Some(server.key_path.clone());
        tweak(s);
    })
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration trusting `roots`, for one protocol version, with an optional client
/// certificate.
pub fn client_config(
    roots: RootCertStore,
    version: &'static rustls::SupportedProtocolVersion,
    client_cert: Option<&Leaf>,
) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots);
    let config = match client_cert {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![leaf.cert.clone()],
                PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

pub type Tls = StreamOwned<ClientConnection, TcpStream>;

/// Connects and completes the handshake (or returns its error).
pub fn try_connect(addr: SocketAddr, config: Arc<ClientConfig>) -> std::io::Result<Tls> {
    let sock = TcpStream::connect(addr)?;
    sock.set_read_timeout(Some(REPLY_TIMEOUT))?;
    sock.set_nodelay(true)?;
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut tls = StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    // TLS 1.3 reports a refused client certificate only after the client's Finished: one
    // round trip shows whether the server kept the connection.
    tls.write_all(b"version\r\n")?;
    expect_reply(&mut tls, b"VERSION 1.6.18\r\n")?;
    Ok(tls)
}

pub fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> Tls {
    try_connect(addr, config).expect("TLS connection")
}

pub fn expect_reply(tls: &mut Tls, expected: &[u8]) -> std::io::Result<()> {
    let mut got = vec![0; expected.len()];
    tls.read_exact(&mut got)?;
    if got != expected {
        return Err(std::io::Error::other(format!(
            "expected {:?}, got {:?}",
            String::from_utf8_lossy(expected),
            String::from_utf8_lossy(&got)
        )));
    }
    Ok(())
}

pub fn roundtrip(tls: &mut Tls, request: &[u8], expected: &[u8]) {
    tls.write_all(request).unwrap();
    expect_reply(tls, expected).unwrap();
}

/// Reads one reply ending in `end`.
pub fn read_until(tls: &mut Tls, end: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut byte = [0u8; 4096];
    while !got.ends_with(end) {
        let n = tls.read(&mut byte).unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&byte[..n]);
    }
    got
}

pub fn stat(tls: &mut Tls, name: &str) -> Option<String> {
    tls.write_all(b"stats\r\n").unwrap();
    let text = String::from_utf8(read_until(tls, b"END\r\n")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("STAT {name} ")).map(str::to_string))
}
