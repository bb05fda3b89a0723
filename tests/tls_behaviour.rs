//! What the plaintext tests prove, proved again over TLS (`-Z`): the binary protocol (quiet
//! gets and NOOP) and SASL, the meta protocol's quiet pipeline, session resumption,
//! backpressure, `-R` fairness, idle timeouts, the `-c` limit and graceful shutdown. A TLS
//! connection reaches `Conn` through `TlsStream`, whose reads and writes differ from a socket's
//! (decrypted bytes held in the session raise no readiness event; encrypted output is buffered
//! by rustls), so each of these could break over TLS alone.

mod common;
#[path = "common/tls.rs"]
mod tls_common;

use std::io::{ErrorKind, Read, Write};

use common::REPLY_TIMEOUT;
use rustls::HandshakeKind;
use tls_common::*;

const GET: u8 = 0x00;
const SET: u8 = 0x01;
const DELETE: u8 = 0x04;
const INCR: u8 = 0x05;
const GETQ: u8 = 0x09;
const NOOP: u8 = 0x0a;
const GETKQ: u8 = 0x0d;
const SASL_LIST: u8 = 0x20;
const SASL_AUTH: u8 = 0x21;

/// A binary protocol packet (request `0x80` or response `0x81`), opaque and CAS zero.
fn packet(magic: u8, op: u8, status: u16, key: &[u8], extras: &[u8], value: &[u8]) -> Vec<u8> {
    let mut v = vec![magic, op];
    v.extend_from_slice(&(key.len() as u16).to_be_bytes());
    v.push(extras.len() as u8);
    v.push(0);
    v.extend_from_slice(&status.to_be_bytes());
    v.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
    v.extend_from_slice(&[0; 12]);
    v.extend_from_slice(extras);
    v.extend_from_slice(key);
    v.extend_from_slice(value);
    v
}

fn rq(op: u8, key: &[u8], extras: &[u8], value: &[u8]) -> Vec<u8> {
    packet(0x80, op, 0, key, extras, value)
}

fn rs(op: u8, status: u16, key: &[u8], extras: &[u8], value: &[u8]) -> Vec<u8> {
    packet(0x81, op, status, key, extras, value)
}

/// Sends `request` and reads `expected.len()` bytes, comparing them with every response
/// packet's CAS zeroed (the CAS values are the store's to choose).
fn binary_roundtrip(tls: &mut Tls, request: &[u8], expected: &[u8]) {
    tls.write_all(request).unwrap();
    let mut got = vec![0; expected.len()];
    tls.read_exact(&mut got).unwrap();
    let mut off = 0;
    while off + 24 <= got.len() {
        let body = u32::from_be_bytes(got[off + 8..off + 12].try_into().unwrap()) as usize;
        got[off + 16..off + 24].fill(0);
        off += 24 + body;
    }
    assert_eq!(got, expected, "binary replies (CAS masked)");
}

/// Whether the server closed the connection (with or without close_notify) before
/// [`REPLY_TIMEOUT`]; bytes still on the way are read and dropped.
fn closed(tls: &mut Tls) -> bool {
    tls.sock.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::UnexpectedEof
                        | ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionAborted
                ) =>
            {
                return true
            }
            Err(_) => return false,
        }
    }
}

fn tls13(pki: &Pki) -> std::sync::Arc<rustls::ClientConfig> {
    client_config(pki.roots(), &rustls::version::TLS13, None)
}

fn set_cmd(key: &str, value: &[u8]) -> Vec<u8> {
    let mut v = format!("set {key} 0 0 {}\r\n", value.len()).into_bytes();
    v.extend_from_slice(value);
    v.extend_from_slice(b"\r\n");
    v
}

fn value_reply(key: &str, value: &[u8]) -> Vec<u8> {
    let mut v = format!("VALUE {key} 0 {}\r\n", value.len()).into_bytes();
    v.extend_from_slice(value);
    v.extend_from_slice(b"\r\nEND\r\n");
    v
}

#[test]
fn binary_protocol_over_tls_is_byte_exact() {
    let pki = Pki::new("binary");
    let server = pki.leaf("server");
    let tern = start_tls(&server, |_| {});
    // The first bytes choose the protocol: no text probe on this connection.
    let mut tls = handshake_only(tern.addr(), &pki);
    let flags = 0xdead_beef_u32.to_be_bytes();
    let mut set_extras = flags.to_vec();
    set_extras.extend_from_slice(&[0; 4]);
    binary_roundtrip(
        &mut tls,
        &rq(SET, b"k", &set_extras, b"hello"),
        &rs(SET, 0, b"", b"", b""),
    );
    // Quiet gets: a miss says nothing, hits answer, NOOP ends the batch; all in one record.
    let batch = [
        rq(GETQ, b"nope", b"", b""),
        rq(GETKQ, b"k", b"", b""),
        rq(GETQ, b"k", b"", b""),
        rq(GETKQ, b"nope2", b"", b""),
        rq(NOOP, b"", b"", b""),
    ]
    .concat();
    let replies = [
        rs(GETKQ, 0, b"k", &flags, b"hello"),
        rs(GETQ, 0, b"", &flags, b"hello"),
        rs(NOOP, 0, b"", b"", b""),
    ]
    .concat();
    binary_roundtrip(&mut tls, &batch, &replies);
    // INCR with an initial value creates the counter, then adds.
    let mut arith = 5u64.to_be_bytes().to_vec();
    arith.extend_from_slice(&10u64.to_be_bytes());
    arith.extend_from_slice(&0u32.to_be_bytes());
    binary_roundtrip(
        &mut tls,
        &[rq(INCR, b"n", &arith, b""), rq(INCR, b"n", &arith, b"")].concat(),
        &[
            rs(INCR, 0, b"", b"", &10u64.to_be_bytes()),
            rs(INCR, 0, b"", b"", &15u64.to_be_bytes()),
        ]
        .concat(),
    );
    binary_roundtrip(
        &mut tls,
        &[rq(DELETE, b"k", b"", b""), rq(GET, b"k", b"", b"")].concat(),
        &[
            rs(DELETE, 0, b"", b"", b""),
            rs(GET, 0x01, b"", b"", b"Not found"),
        ]
        .concat(),
    );
    // The text protocol still works on the same TLS port (protocol negotiation per connection).
    let mut text = connect(tern.addr(), tls13(&pki));
    roundtrip(&mut text, b"get n\r\n", b"VALUE n 0 2\r\n15\r\nEND\r\n");
}

#[test]
fn sasl_over_tls_refuses_then_authenticates() {
    let pki = Pki::new("sasl");
    let server = pki.leaf("server");
    let pwdb = pki.dir.join("pwdb");
    std::fs::write(&pwdb, "alice:wonderland\n").unwrap();
    let tern = start_tls(&server, |s| {
        s.sasl = true;
        s.protocol = tern::config::BindingProtocol::Binary;
        s.sasl_pwdb = Some(pwdb.clone());
    });
    let mut tls = handshake_only(tern.addr(), &pki);
    binary_roundtrip(
        &mut tls,
        &rq(SASL_LIST, b"", b"", b""),
        &rs(SASL_LIST, 0, b"", b"", b"PLAIN"),
    );
    binary_roundtrip(
        &mut tls,
        &rq(SASL_AUTH, b"PLAIN", b"", b"\0alice\0wrong"),
        &rs(SASL_AUTH, 0x20, b"", b"", b"Auth failure."),
    );
    binary_roundtrip(
        &mut tls,
        &rq(SASL_AUTH, b"PLAIN", b"", b"\0alice\0wonderland"),
        &rs(SASL_AUTH, 0, b"", b"", b"Authenticated"),
    );
    binary_roundtrip(
        &mut tls,
        &rq(SET, b"k", &[0; 8], b"v"),
        &rs(SET, 0, b"", b"", b""),
    );
    binary_roundtrip(
        &mut tls,
        &rq(GET, b"k", b"", b""),
        &rs(GET, 0, b"", &[0; 4], b"v"),
    );
    // Without authenticating: refused, then closed.
    let mut anon = handshake_only(tern.addr(), &pki);
    binary_roundtrip(
        &mut anon,
        &rq(GET, b"k", b"", b""),
        &rs(GET, 0x20, b"", b"", b"Auth failure."),
    );
    assert!(closed(&mut anon), "an unauthenticated GET closes");
}

/// A TLS 1.3 connection with its handshake done and nothing sent yet.
fn handshake_only(addr: std::net::SocketAddr, pki: &Pki) -> Tls {
    let sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let conn = rustls::ClientConnection::new(
        tls13(pki),
        rustls::pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls
}

#[test]
fn meta_quiet_pipeline_over_tls() {
    let pki = Pki::new("meta");
    let server = pki.leaf("server");
    let tern = start_tls(&server, |_| {});
    let mut tls = connect(tern.addr(), tls13(&pki));
    roundtrip(
        &mut tls,
        b"ms foo 3 T0 F5\r\nbar\r\nmg foo v q\r\nmg nope v q\r\nmg foo k v f\r\nmn\r\n",
        b"HD\r\nVA 3\r\nbar\r\nVA 3 kfoo f5\r\nbar\r\nMN\r\n",
    );
    roundtrip(
        &mut tls,
        b"ms a 1 q\r\nx\r\nms b 1 q\r\ny\r\nmg a v q\r\nmg b v q k\r\nmn\r\n",
        b"VA 1\r\nx\r\nVA 1 kb\r\ny\r\nMN\r\n",
    );
}

#[test]
fn session_cache_resumes_the_second_connection() {
    let pki = Pki::new("resume");
    let server = pki.leaf("server");
    let tern = start_tls(&server, |s| s.tls.session_cache = true);
    let mut new_sessions = 0u64;
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        // One client configuration: its session store carries the ticket or session id.
        let config = client_config(pki.roots(), version, None);
        let mut first = connect(tern.addr(), config.clone());
        assert_eq!(first.conn.handshake_kind(), Some(HandshakeKind::Full));
        let mut second = connect(tern.addr(), config.clone());
        assert_eq!(
            second.conn.handshake_kind(),
            Some(HandshakeKind::Resumed),
            "{version:?}: the second connection resumes"
        );
        roundtrip(&mut second, b"set r 0 0 1\r\nx\r\n", b"STORED\r\n");
        let count: u64 = stat(&mut first, "ssl_new_sessions")
            .unwrap()
            .parse()
            .unwrap();
        assert!(count > new_sessions, "{version:?}: ssl_new_sessions grew");
        new_sessions = count;
    }
    // Without ssl_session_cache nothing resumes, and memcached shows no ssl_new_sessions.
    let tern = start_tls(&server, |_| {});
    let config = tls13(&pki);
    connect(tern.addr(), config.clone());
    let mut again = connect(tern.addr(), config);
    assert_eq!(again.conn.handshake_kind(), Some(HandshakeKind::Full));
    assert_eq!(stat(&mut again, "ssl_new_sessions"), None);
}

#[test]
fn client_that_never_reads_is_backpressured_over_tls() {
    let pki = Pki::new("backpressure");
    let server = pki.leaf("server");
    let tern = start_tls(&server, |_| {});
    let mut tls = connect(tern.addr(), tls13(&pki));
    let value = vec![b'v'; 256 * 1024];
    roundtrip(&mut tls, &set_cmd("v", &value), b"STORED\r\n");
    // Encrypt gets of the 256 KiB value and push the records without reading any reply. The
    // server must stop reading once its output is full, so our socket writes start to block.
    tls.sock.set_nonblocking(true).unwrap();
    let batch = b"get v\r\n".repeat(64);
    let mut pending = Vec::new();
    let mut off = 0;
    let mut blocked = false;
    for _ in 0..200_000 {
        if off == pending.len() {
            pending.clear();
            off = 0;
            tls.conn.writer().write_all(&batch).unwrap();
            while tls.conn.wants_write() {
                tls.conn.write_tls(&mut pending).unwrap();
            }
        }
        match tls.sock.write(&pending[off..]) {
            Ok(n) => off += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                blocked = true;
                break;
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    assert!(blocked, "the server kept reading");
    // The replies that come are whole and in order.
    tls.sock.set_nonblocking(false).unwrap();
    let one = value_reply("v", &value);
    let mut buf = vec![0u8; one.len()];
    for i in 0..20 {
        tls.read_exact(&mut buf)
            .unwrap_or_else(|e| panic!("reply {i}: {e}"));
        assert!(buf == one, "reply {i} differs");
    }
    drop(tls);
    let mut other = connect(tern.addr(), tls13(&pki));
    roundtrip(&mut other, b"get nope\r\n", b"END\r\n");
}

#[test]
fn pipeline_in_one_record_yields_after_reqs_per_event_and_finishes() {
    let pki = Pki::new("fairness");
    let server = pki.leaf("server");
    let tern = start_tls(&server, |s| s.reqs_per_event = 5);
    let mut tls = connect(tern.addr(), tls13(&pki));
    // 50 requests decrypted at once: after each yield the rest waits inside the connection,
    // where no readiness event announces it. Every reply must still come.
    roundtrip(
        &mut tls,
        &b"get nope\r\n".repeat(50),
        &b"END\r\n".repeat(50),
    );
    let yields: u64 = stat(&mut tls, "conn_yields").unwrap().parse().unwrap();
    assert!(yields >= 1, "conn_yields = {yields}");
}

#[test]
fn idle_tls_connections_are_kicked_after_idle_timeout() {
    let pki = Pki::new("idle");
    let server = pki.leaf("server");
    let tern = start_tls(&server, |s| s.idle_timeout = 5);
    let mut idle = connect(tern.addr(), tls13(&pki));
    let mut busy = connect(tern.addr(), tls13(&pki));
    tern.clock.advance(4);
    roundtrip(&mut busy, b"get a\r\n", b"END\r\n");
    tern.clock.advance(3);
    // `idle` has been quiet for 7 s (> 5), `busy` for 3 s.
    assert!(closed(&mut idle), "the idle TLS connection was not kicked");
    roundtrip(&mut busy, b"get a\r\n", b"END\r\n");
    assert_eq!(stat(&mut busy, "idle_kicks").as_deref(), Some("1"));
}

#[test]
fn connection_over_the_limit_gets_memcached_s_plaintext_refusal() {
    let pki = Pki::new("maxconns");
    let server = pki.leaf("server");
    let tern = start_tls(&server, |s| s.max_connections = 2);
    let mut a = connect(tern.addr(), tls13(&pki));
    let _b = connect(tern.addr(), tls13(&pki));
    // As memcached -Z: the refusal is written on the raw socket, before any TLS.
    let mut third = std::net::TcpStream::connect(tern.addr()).unwrap();
    third.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let mut reply = Vec::new();
    let _ = third.read_to_end(&mut reply);
    assert_eq!(reply, b"ERROR Too many open connections\r\n");
    roundtrip(&mut a, b"get x\r\n", b"END\r\n");
    assert_eq!(stat(&mut a, "rejected_connections").as_deref(), Some("1"));
}

#[test]
fn graceful_shutdown_sends_every_promised_reply_over_tls() {
    let pki = Pki::new("shutdown");
    let server = pki.leaf("server");
    let tern = start_tls(&server, |_| {});
    let mut tls = connect(tern.addr(), tls13(&pki));
    let value = vec![b'z'; 100 * 1024];
    roundtrip(&mut tls, &set_cmd("big", &value), b"STORED\r\n");
    // 200 pipelined gets: 20 MB of replies, most still to be composed, encrypted or sent when
    // the shutdown begins.
    let n = 200;
    tls.write_all(&b"get big\r\n".repeat(n)).unwrap();
    let one = value_reply("big", &value);
    let mut buf = vec![0u8; one.len()];
    tls.sock
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    tls.read_exact(&mut buf).unwrap();
    assert!(buf == one);
    let stopper = std::thread::spawn(move || tern.handle.shutdown());
    for i in 1..n {
        tls.read_exact(&mut buf)
            .unwrap_or_else(|e| panic!("reply {i} lost: {e}"));
        assert!(buf == one, "reply {i} differs");
    }
    assert!(closed(&mut tls), "closed after the last reply");
    stopper.join().unwrap();
}
