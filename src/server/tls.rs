//! TLS in transit (`-Z`), with rustls.
//!
//! - [`TlsContext`]: the server's TLS configuration (certificate chain, key, client CAs,
//!   versions, suites, session cache), shared by every worker. `refresh_certs` and SIGHUP build
//!   a new one from the same files and swap it in; connections already open keep the one they
//!   started with, and a failed reload keeps the old one (memcached 1.6.18 is left with a
//!   half-loaded context instead).
//! - [`TlsConn`]: one connection's TLS session, driven from the worker's readiness events like
//!   a plaintext socket. rustls is sans-IO: ciphertext is read with `read_tls` and written with
//!   `write_tls` on the non-blocking socket, so a handshake never blocks the worker.
//!   [`TlsStream`] presents the session to [`Conn`] as a byte stream, so the request loop is the
//!   one plaintext connections use.
//!
//! Plaintext connections pay nothing: a worker's client holds an `Option<Box<TlsConn>>` (one
//! word, `None`), tested once per readiness event.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::server::{NoServerSessionStorage, ServerSessionMemoryCache, StoresServerSessions};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConnection, SupportedCipherSuite};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tern_protocol::ReplyMode;

use super::buffers::BufferPool;
use super::conn::{Conn, Next};
use super::socket::Socket;
use super::stats::ThreadStats;
use super::Shared;
use crate::config::tls::{TlsSettings, TlsVersion};

/// Seconds a client has to complete its handshake once connected. A client on a slow network
/// needs a few round trips; one that sends nothing (or half a ClientHello) for this long is
/// holding a connection slot for nothing and is closed (counted in `ssl_handshake_timeouts`
/// and `ssl_handshake_errors`).
pub const HANDSHAKE_TIMEOUT_SECS: u32 = 5;

/// Sessions the cache keeps with `ssl_session_cache`: OpenSSL's default server cache size
/// (`SSL_SESSION_CACHE_MAX_SIZE_DEFAULT`), which memcached uses.
const SESSION_CACHE_SIZE: usize = 20 * 1024;

/// The reply to `refresh_certs` on a server without `-Z`, as memcached words it.
const TLS_NOT_ENABLED: &str = "Error TLS not enabled";

/// The server's TLS state, shared by every thread.
pub struct TlsContext {
    settings: TlsSettings,
    /// The configuration new connections start with; replaced by a successful refresh.
    config: RwLock<Arc<ServerConfig>>,
    /// Kept across refreshes, so sessions survive a certificate reload.
    sessions: Option<Arc<CountingSessions>>,
    /// Handshakes that failed or timed out (`ssl_handshake_errors`).
    handshake_errors: AtomicU64,
    /// Handshakes closed for taking over [`HANDSHAKE_TIMEOUT_SECS`] (tern's own stat).
    handshake_timeouts: AtomicU64,
    /// Clock second of the last successful load; memcached starts it at 0, before its clock
    /// runs, so `time_since_server_cert_refresh` reads the same as memcached's at start.
    last_refresh: AtomicU32,
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsContext")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The session cache, counting new sessions (`ssl_new_sessions`) as memcached's new-session
/// callback does.
#[derive(Debug)]
struct CountingSessions {
    cache: Arc<ServerSessionMemoryCache>,
    new_sessions: AtomicU64,
}

impl StoresServerSessions for CountingSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.new_sessions.fetch_add(1, Ordering::Relaxed);
        self.cache.put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache.get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache.take(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

impl TlsContext {
    /// Loads the files `settings` names and builds the configuration, or returns memcached's
    /// one-line reason (`Error loading the certificate chain: <file> : <why>`, ...).
    pub fn load(settings: &TlsSettings) -> Result<TlsContext, String> {
        let sessions = settings.session_cache.then(|| {
            Arc::new(CountingSessions {
                cache: ServerSessionMemoryCache::new(SESSION_CACHE_SIZE),
                new_sessions: AtomicU64::new(0),
            })
        });
        let config = build_config(settings, sessions.clone())?;
        Ok(TlsContext {
            settings: settings.clone(),
            config: RwLock::new(Arc::new(config)),
            sessions,
            handshake_errors: AtomicU64::new(0),
            handshake_timeouts: AtomicU64::new(0),
            last_refresh: AtomicU32::new(0),
        })
    }

    /// `refresh_certs`: reloads the certificate chain, key and CA files. On failure the
    /// configuration in use stays, and the reason comes back.
    pub fn refresh(&self, now: u32) -> Result<(), String> {
        let config = build_config(&self.settings, self.sessions.clone())?;
        *self.config.write() = Arc::new(config);
        self.last_refresh.store(now, Ordering::Relaxed);
        Ok(())
    }

    /// A session for a new connection, with the current configuration.
    pub fn accept(&self) -> io::Result<TlsConn> {
        let config = self.config.read().clone();
        let mut session = ServerConnection::new(config).map_err(io::Error::other)?;
        // ssl_wbuf_size: the encrypted output a connection keeps while the socket is full.
        session.set_buffer_limit(Some(self.settings.wbuf_size.max(1024) as usize));
        Ok(TlsConn {
            session,
            started: 0,
            closing: false,
        })
    }

    /// Counts a failed handshake.
    pub fn handshake_failed(&self) {
        self.handshake_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a handshake closed for taking too long (also a failed handshake).
    pub fn handshake_timed_out(&self) {
        self.handshake_timeouts.fetch_add(1, Ordering::Relaxed);
        self.handshake_failed();
    }

    /// memcached's `stats` lines for TLS, in its order, then tern's own.
    pub fn stats_lines(&self, now: u32) -> Vec<(&'static str, String)> {
        let mut v = Vec::with_capacity(4);
        if let Some(sessions) = &self.sessions {
            v.push((
                "ssl_new_sessions",
                sessions.new_sessions.load(Ordering::Relaxed).to_string(),
            ));
        }
        v.push((
            "ssl_handshake_errors",
            self.handshake_errors.load(Ordering::Relaxed).to_string(),
        ));
        v.push((
            "time_since_server_cert_refresh",
            now.wrapping_sub(self.last_refresh.load(Ordering::Relaxed))
                .to_string(),
        ));
        v.push((
            "ssl_handshake_timeouts",
            self.handshake_timeouts.load(Ordering::Relaxed).to_string(),
        ));
        v
    }
}

/// `refresh_certs`: `OK` (hidden by `noreply`) or memcached's error line (never hidden, as in
/// memcached, which writes it past its noreply check).
pub fn refresh_certs(shared: &Shared, mode: ReplyMode, out: &mut Vec<u8>) {
    let outcome = match &shared.tls {
        Some(tls) => tls.refresh(shared.clock.now()),
        None => Err(TLS_NOT_ENABLED.to_string()),
    };
    match outcome {
        Ok(()) => {
            log::info!("refresh_certs: certificates reloaded");
            if mode != ReplyMode::Noreply {
                out.extend_from_slice(b"OK\r\n");
            }
        }
        Err(line) => {
            log::warn!("refresh_certs: {line}");
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// The reason text for a file that could not be read or parsed.
fn pem_reason(e: &rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(io) => io_reason(io),
        rustls_pki_types::pem::Error::NoItemsFound => "no PEM item of that kind found".into(),
        other => format!("bad PEM: {other}"),
    }
}

/// An I/O error without Rust's "(os error N)" suffix, as strerror words it.
fn io_reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn shown(path: Option<&Path>) -> String {
    path.map_or_else(|| "(null)".to_string(), |p| p.display().to_string())
}

fn read_chain(path: Option<&Path>) -> Result<Vec<CertificateDer<'static>>, String> {
    let fail = |why: String| {
        format!(
            "Error loading the certificate chain: {} : {why}",
            shown(path)
        )
    };
    let path = path.ok_or_else(|| fail("no file given (-o ssl_chain_cert)".into()))?;
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(pem_reason(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(pem_reason(&e)))?;
    if chain.is_empty() {
        return Err(fail("no certificate found (PEM)".into()));
    }
    Ok(chain)
}

fn read_key(
    path: Option<&Path>,
    chain: &[CertificateDer<'static>],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, String> {
    let fail = |why: String| format!("Error loading the key: {} : {why}", shown(path));
    let path = path.ok_or_else(|| fail("no file given (-o ssl_key)".into()))?;
    let der = PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => fail("no private key found (PEM)".into()),
        e => fail(pem_reason(&e)),
    })?;
    let key = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| fail(format!("unusable key: {e}")))?;
    let certified = CertifiedKey::new(chain.to_vec(), key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(_)) => Err(fail(
            "key values mismatch (the key does not belong to the certificate)".into(),
        )),
        Err(e) => Err(format!(
            "Error validating the certificate: {}",
            e.to_string().replace('\n', " ")
        )),
    }
}

fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let fail = |why: String| {
        format!(
            "Error loading the CA certificate: {} : {why}",
            path.display()
        )
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| fail(pem_reason(&e)))? {
        let cert = cert.map_err(|e| fail(pem_reason(&e)))?;
        roots
            .add(cert)
            .map_err(|e| fail(format!("unusable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(fail("no certificate found (PEM)".into()));
    }
    Ok(roots)
}

/// OpenSSL's names of the suites rustls offers, next to the IANA names rustls uses.
const OPENSSL_NAMES: &[(&str, &str)] = &[
    ("TLS_AES_128_GCM_SHA256", "TLS13_AES_128_GCM_SHA256"),
    ("TLS_AES_256_GCM_SHA384", "TLS13_AES_256_GCM_SHA384"),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS13_CHACHA20_POLY1305_SHA256",
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
];

/// The suites an `ssl_ciphers` list allows. As OpenSSL's cipher list (what memcached sets)
/// governs TLS 1.2 and below only, TLS 1.3 suites stay all enabled unless the list names some.
fn select_suites(
    list: &str,
    all: &[SupportedCipherSuite],
) -> Result<Vec<SupportedCipherSuite>, String> {
    let fail = |why: String| format!("Error setting the provided cipher(s): {list} : {why}");
    let mut chosen: Vec<SupportedCipherSuite> = Vec::new();
    for name in list.split([':', ',', ' ']).filter(|n| !n.is_empty()) {
        let iana = OPENSSL_NAMES
            .iter()
            .find(|(openssl, _)| *openssl == name)
            .map_or(name, |(_, iana)| *iana);
        let suite = all
            .iter()
            .find(|s| format!("{:?}", s.suite()) == iana)
            .ok_or_else(|| {
                fail(format!(
                    "'{name}' is not a suite tern can offer (rustls offers: {})",
                    OPENSSL_NAMES
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(":")
                ))
            })?;
        if !chosen.contains(suite) {
            chosen.push(*suite);
        }
    }
    if chosen.is_empty() {
        return Err(fail("no suite named".into()));
    }
    let is13 = |s: &SupportedCipherSuite| matches!(s, SupportedCipherSuite::Tls13(_));
    if !chosen.iter().any(is13) {
        chosen.extend(all.iter().filter(|s| is13(s)).copied());
    }
    Ok(chosen)
}

/// Builds a server configuration from the files and options.
fn build_config(
    settings: &TlsSettings,
    sessions: Option<Arc<CountingSessions>>,
) -> Result<ServerConfig, String> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(list) = &settings.ciphers {
        provider.cipher_suites = select_suites(list, &provider.cipher_suites)?;
    }
    let provider = Arc::new(provider);
    let chain = read_chain(settings.chain_cert.as_deref())?;
    // memcached reads the key from ssl_key; without it, tern looks in the chain file.
    let key_path = settings.key.as_deref().or(settings.chain_cert.as_deref());
    let certified = read_key(key_path, &chain, &provider)?;
    let roots = match &settings.ca_cert {
        Some(path) => Some(Arc::new(read_roots(path)?)),
        None => None,
    };
    let versions: &[&'static rustls::SupportedProtocolVersion] = match settings.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| {
            format!(
                "Error setting the provided cipher(s): {} : {e}",
                settings.ciphers.as_deref().unwrap_or("NULL")
            )
        })?;
    let verify = settings.verify_mode;
    let builder = match (roots, verify.requires_cert()) {
        (Some(roots), require) if verify != crate::config::tls::VerifyMode::None => {
            let b = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let b = if require {
                b
            } else {
                b.allow_unauthenticated()
            };
            let verifier = b.build().map_err(|e| {
                format!(
                    "Error loading the CA certificate: {} : {e}",
                    shown(settings.ca_cert.as_deref())
                )
            })?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config =
        builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    match sessions {
        Some(store) => {
            config.session_storage = store;
            // One ticket per handshake (each backed by the cache: stateful resumption).
            config.send_tls13_tickets = 1;
        }
        None => {
            config.session_storage = Arc::new(NoServerSessionStorage {});
            config.send_tls13_tickets = 0;
        }
    }
    Ok(config)
}

/// One connection's TLS session.
pub struct TlsConn {
    session: ServerConnection,
    /// Clock second the connection arrived, for the handshake deadline.
    started: u32,
    /// The request loop is done: send what the session holds (close_notify last), then close.
    closing: bool,
}

/// Why a handshake step failed.
enum HandshakeError {
    /// The client closed or the socket failed: nothing to count.
    Gone,
    /// TLS refused the client (bad records, no common version or suite, bad certificate).
    Refused,
}

impl TlsConn {
    /// Notes when the connection arrived (clock seconds).
    pub fn set_started(&mut self, now: u32) {
        self.started = now;
    }

    /// Whether the handshake is still under way.
    pub fn is_handshaking(&self) -> bool {
        self.session.is_handshaking()
    }

    /// Whether the handshake has taken longer than [`HANDSHAKE_TIMEOUT_SECS`] at `now`.
    pub fn handshake_overdue(&self, now: u32) -> bool {
        self.is_handshaking() && now.saturating_sub(self.started) > HANDSHAKE_TIMEOUT_SECS
    }

    /// Whether encrypted bytes wait for the socket to become writable.
    pub fn wants_write(&self) -> bool {
        self.session.wants_write()
    }

    /// Drives the connection: the handshake first, then the request loop over the session.
    pub fn drive(
        &mut self,
        sock: &mut Socket,
        conn: &mut Conn,
        shared: &Shared,
        stats: &ThreadStats,
        pool: &mut BufferPool,
        trust_short_read: bool,
    ) -> Next {
        if self.closing {
            return match self.send_pending(sock) {
                Ok(()) if self.session.wants_write() => Next::Wait,
                _ => Next::Close,
            };
        }
        if self.session.is_handshaking() {
            match self.handshake(sock) {
                Ok(true) => {}
                Ok(false) => return Next::Wait,
                Err(HandshakeError::Gone) => return Next::Close,
                Err(HandshakeError::Refused) => {
                    if let Some(tls) = &shared.tls {
                        tls.handshake_failed();
                    }
                    return Next::Close;
                }
            }
        }
        let mut stream = TlsStream {
            session: &mut self.session,
            sock,
            drained: false,
            trust_short_read,
        };
        let next = conn.drive(&mut stream, shared, stats, pool, trust_short_read);
        if next == Next::Close {
            self.session.send_close_notify();
            self.closing = true;
        }
        match self.send_pending(sock) {
            Ok(()) if self.closing && self.session.wants_write() => Next::Wait,
            Ok(()) => next,
            Err(_) => Next::Close,
        }
    }

    /// Reads and answers handshake records until the socket would block or the handshake is
    /// done: `Ok(true)` once done.
    fn handshake(&mut self, sock: &mut Socket) -> Result<bool, HandshakeError> {
        while self.session.is_handshaking() {
            match self.session.read_tls(sock) {
                Ok(0) => return Err(HandshakeError::Gone),
                Ok(_) => {
                    if let Err(e) = self.session.process_new_packets() {
                        log::debug!("TLS handshake refused: {e}");
                        // A TLS client is told why (the alert rustls queued). A client that
                        // does not speak TLS at all (bytes that are no TLS record) gets
                        // nothing, as from memcached.
                        if !matches!(e, rustls::Error::InvalidMessage(_)) {
                            let _ = self.send_pending(sock);
                        }
                        return Err(HandshakeError::Refused);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(HandshakeError::Gone),
            }
        }
        self.send_pending(sock).map_err(|_| HandshakeError::Gone)?;
        Ok(!self.session.is_handshaking())
    }

    /// Writes the session's encrypted output until it is all sent or the socket would block.
    fn send_pending(&mut self, sock: &mut Socket) -> io::Result<()> {
        send_tls(&mut self.session, sock)
    }
}

fn send_tls(session: &mut ServerConnection, sock: &mut Socket) -> io::Result<()> {
    while session.wants_write() {
        match session.write_tls(sock) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A TLS session and its socket as one plaintext byte stream, for [`Conn::drive`].
///
/// Reads return decrypted bytes. A read shorter than asked for happens only once the session
/// holds no more plaintext *and* the socket is known to be empty: it said `WouldBlock`, closed,
/// or (when the event allows trusting short reads, as for plaintext) gave fewer bytes than
/// rustls asked for. So `Conn`'s short-read shortcut never leaves decrypted bytes stranded
/// inside the session, where no readiness event would announce them.
pub struct TlsStream<'a> {
    session: &'a mut ServerConnection,
    sock: &'a mut Socket,
    /// The socket is empty for this drive: read no further until the next event.
    drained: bool,
    /// A short socket read proves it empty (a plain readability event; see `Conn::drive`).
    trust_short_read: bool,
}

/// The socket as `read_tls` sees it, noting whether the last read filled what was offered.
/// A request-response client sends one small record at a time: without this, every request
/// would cost a second `recvfrom` that only says `EAGAIN`.
struct ShortReadProbe<'a> {
    sock: &'a mut Socket,
    short: bool,
}

impl Read for ShortReadProbe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.sock.read(buf)?;
        self.short = n < buf.len();
        Ok(n)
    }
}

impl Read for TlsStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        loop {
            match self.session.reader().read(&mut buf[n..]) {
                // close_notify: the end of the stream (after what was already read).
                Ok(0) => return Ok(n),
                Ok(k) => {
                    n += k;
                    if n == buf.len() {
                        return Ok(n);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed the socket without close_notify: an end of stream all the
                // same (memcached clients rarely send one).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(n),
                Err(e) => return Err(e),
            }
            // No plaintext left in the session: fetch more records.
            if self.drained {
                return if n > 0 {
                    Ok(n)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            }
            let mut probe = ShortReadProbe {
                sock: self.sock,
                short: false,
            };
            let got = self.session.read_tls(&mut probe);
            let short = probe.short;
            match got {
                // End of the TCP stream: the reader reports it on the next turn.
                Ok(0) => {}
                Ok(_) => {
                    self.drained = self.trust_short_read && short;
                    if let Err(e) = self.session.process_new_packets() {
                        log::debug!("TLS error: {e}");
                        let _ = send_tls(self.session, self.sock);
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.drained = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for TlsStream<'_> {
    /// Encrypts as much of `buf` as the session's output limit (`ssl_wbuf_size`) takes and
    /// sends what the socket takes. `WouldBlock` when the session is full and the socket too:
    /// the rest stays in the connection's output buffer, and backpressure works as for
    /// plaintext.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send_tls(self.session, self.sock)?;
        let n = self.session.writer().write(buf)?;
        send_tls(self.session, self.sock)?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        send_tls(self.session, self.sock)
    }
}
