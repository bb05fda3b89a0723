//! TLS (`-Z`) over real sockets: handshakes with rustls clients (TLS 1.2 and 1.3), the text
//! protocol byte-exact through TLS, large values, pipelines and split records, plaintext
//! clients on a TLS port, `notls` listeners, mutual TLS, `ssl_min_version`, `refresh_certs`,
//! stalled handshakes and abrupt disconnects. Certificates are generated here with rcgen; no
//! key is committed. With `TERN_DIFF_MEMCACHED` set, Debian's `memcached -Z` is compared on the
//! same certificates.

mod common;
#[path = "common/tls.rs"]
mod tls_common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::REPLY_TIMEOUT;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use tern::config::tls::{TlsVersion, VerifyMode};
use tls_common::*;

#[test]
fn tls12_and_tls13_serve_the_text_protocol_byte_exact() {
    let pki = Pki::new("proto");
    let server = pki.leaf("server");
    let tern = start_tls(&server, |_| {});
    for (i, version) in [&rustls::version::TLS12, &rustls::version::TLS13]
        .into_iter()
        .enumerate()
    {
        let mut tls = connect(tern.addr(), client_config(pki.roots(), version, None));
        assert_eq!(
            tls.conn.protocol_version(),
            Some(version.version),
            "negotiated the asked-for version"
        );
        let k = format!("k{i}");
        roundtrip(
            &mut tls,
            format!("set {k} 7 0 5\r\nhello\r\n").as_bytes(),
            b"STORED\r\n",
        );
        roundtrip(
            &mut tls,
            format!("get {k}\r\n").as_bytes(),
            format!("VALUE {k} 7 5\r\nhello\r\nEND\r\n").as_bytes(),
        );
        tls.write_all(format!("gets {k}\r\n").as_bytes()).unwrap();
        let gets = String::from_utf8(read_until(&mut tls, b"END\r\n")).unwrap();
        let cas: u64 = gets
            .lines()
            .next()
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        roundtrip(
            &mut tls,
            format!("cas {k} 0 0 2 {}\r\nhi\r\n", cas + 1).as_bytes(),
            b"EXISTS\r\n",
        );
        roundtrip(
            &mut tls,
            format!("cas {k} 0 0 2 {cas}\r\nhi\r\n").as_bytes(),
            b"STORED\r\n",
        );
        roundtrip(
            &mut tls,
            format!("set n{i} 0 0 2\r\n10\r\nincr n{i} 5\r\n").as_bytes(),
            b"STORED\r\n15\r\n",
        );
        roundtrip(
            &mut tls,
            format!("delete {k}\r\nget {k}\r\n").as_bytes(),
            b"DELETED\r\nEND\r\n",
        );
    }
}

#[test]
fn large_values_pipelines_and_split_records() {
    let pki = Pki::new("bulk");
    let server = pki.leaf("server");
    let tern = start_tls(&server, |_| {});
    let config = client_config(pki.roots(), &rustls::version::TLS13, None);
    let mut tls = connect(tern.addr(), config.clone());

    // A 1 MB value: many records each way.
    let value: Vec<u8> = (0..1_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut req = format!("set big 0 0 {}\r\n", value.len()).into_bytes();
    req.extend_from_slice(&value);
    req.extend_from_slice(b"\r\n");
    roundtrip(&mut tls, &req, b"STORED\r\n");
    tls.write_all(b"get big\r\n").unwrap();
    let mut expected = format!("VALUE big 0 {}\r\n", value.len()).into_bytes();
    expected.extend_from_slice(&value);
    expected.extend_from_slice(b"\r\nEND\r\n");
    let mut got = vec![0; expected.len()];
    tls.read_exact(&mut got).unwrap();
    assert!(got == expected, "the 1 MB value comes back byte-exact");

    // 100 commands in one write: every reply, in order.
    let mut pipeline = Vec::new();
    let mut replies = Vec::new();
    for i in 0..50 {
        pipeline.extend_from_slice(format!("set p{i} 0 0 3\r\nv{i:02}\r\nget p{i}\r\n").as_bytes());
        replies.extend_from_slice(
            format!("STORED\r\nVALUE p{i} 0 3\r\nv{i:02}\r\nEND\r\n").as_bytes(),
        );
    }
    roundtrip(&mut tls, &pipeline, &replies);

    // One byte per TLS record: the request arrives split over 25 records.
    let request = b"set split 0 0 5\r\nhello\r\n";
    for byte in request {
        tls.write_all(std::slice::from_ref(byte)).unwrap();
        tls.flush().unwrap();
    }
    expect_reply(&mut tls, b"STORED\r\n").unwrap();
    roundtrip(
        &mut tls,
        b"get split\r\n",
        b"VALUE split 0 5\r\nhello\r\nEND\r\n",
    );
}

#[test]
fn plaintext_client_on_a_tls_port_gets_nothing_and_notls_serves_plaintext() {
    let pki = Pki::new("plain");
    let server = pki.leaf("server");
    let notls = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let notls_addr = notls.local_addr().unwrap();
    let mut settings = tern::config::Settings {
        port: tern::config::ListenPort::Ephemeral,
        threads: 2,
        ..Default::default()
    };
    settings.tls.enabled = true;
    settings.tls.chain_cert = Some(server.cert_path.clone());
    settings.tls.key = Some(server.key_path.clone());
    let listeners = tern::server::Listeners {
        tcp: vec![std::net::TcpListener::bind("127.0.0.1:0").unwrap()],
        notls: vec![notls],
        ..Default::default()
    };
    let handle = tern::server::start_on(
        settings,
        listeners,
        Arc::new(tern::clock::Clock::manual(1_700_000_000)),
    )
    .unwrap();
    let tls_addr = handle.local_addrs()[0];

    let mut plain = TcpStream::connect(tls_addr).unwrap();
    plain.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    plain.write_all(b"version\r\n").unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(plain.read(&mut buf).unwrap(), 0, "no bytes, then the close");

    let mut tls = connect(
        tls_addr,
        client_config(pki.roots(), &rustls::version::TLS13, None),
    );
    roundtrip(&mut tls, b"set shared 0 0 1\r\nx\r\n", b"STORED\r\n");
    assert_eq!(stat(&mut tls, "ssl_handshake_errors").as_deref(), Some("1"));

    // The notls listener serves the same cache in plaintext.
    let mut c = common::Client::connect(notls_addr);
    c.roundtrip(b"get shared\r\n", b"VALUE shared 0 1\r\nx\r\nEND\r\n");
    // A TLS client there is not a TLS server's peer: its handshake fails.
    assert!(try_connect(
        notls_addr,
        client_config(pki.roots(), &rustls::version::TLS13, None)
    )
    .is_err());
    // What it gets is memcached's usual text: one `ERROR` per line of its ClientHello.
    let hello = client_hello(&pki);
    let mut probe = common::Client::connect(notls_addr);
    probe.send(&hello);
    probe.send(b"\r\nversion\r\n");
    probe.expect(&notls_reply(&hello));
}

/// A rustls client's first flight (its ClientHello record), as it would send it.
fn client_hello(pki: &Pki) -> Vec<u8> {
    let mut conn = ClientConnection::new(
        client_config(pki.roots(), &rustls::version::TLS13, None),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).unwrap();
    }
    hello
}

/// What memcached answers a plaintext port that gets `hello`, `\r\n` and `version\r\n`: the
/// hello's random bytes hold a few newlines, and each line ending in one is an unknown command.
fn notls_reply(hello: &[u8]) -> Vec<u8> {
    let lines = hello.iter().filter(|&&b| b == b'\n').count() + 1;
    let mut reply = b"ERROR\r\n".repeat(lines);
    reply.extend_from_slice(format!("VERSION {}\r\n", tern::server::VERSION).as_bytes());
    reply
}

#[test]
fn mutual_tls_accepts_the_ca_s_clients_and_refuses_the_others() {
    let pki = Pki::new("mtls");
    let server = pki.leaf("server");
    let client = pki.leaf("client");
    let other = Pki::new("other");
    let stranger = other.leaf("stranger");
    for mode in [VerifyMode::Require, VerifyMode::Once] {
        let tern = start_tls(&server, |s| {
            s.tls.verify_mode = mode;
            s.tls.ca_cert = Some(pki.ca_path());
        });
        for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
            let mut ok = connect(
                tern.addr(),
                client_config(pki.roots(), version, Some(&client)),
            );
            roundtrip(&mut ok, b"get x\r\n", b"END\r\n");
            assert!(
                try_connect(tern.addr(), client_config(pki.roots(), version, None)).is_err(),
                "{mode:?} {version:?}: no client certificate"
            );
            assert!(
                try_connect(
                    tern.addr(),
                    client_config(pki.roots(), version, Some(&stranger))
                )
                .is_err(),
                "{mode:?} {version:?}: a certificate from another CA"
            );
        }
    }
    // Mode 1 asks for a certificate but serves clients without one.
    let tern = start_tls(&server, |s| {
        s.tls.verify_mode = VerifyMode::Request;
        s.tls.ca_cert = Some(pki.ca_path());
    });
    let anon = client_config(pki.roots(), &rustls::version::TLS13, None);
    connect(tern.addr(), anon);
    assert!(try_connect(
        tern.addr(),
        client_config(pki.roots(), &rustls::version::TLS13, Some(&stranger))
    )
    .is_err());
}

#[test]
fn min_version_3_refuses_tls12() {
    let pki = Pki::new("minver");
    let server = pki.leaf("server");
    let tern = start_tls(&server, |s| s.tls.min_version = TlsVersion::Tls13);
    assert!(try_connect(
        tern.addr(),
        client_config(pki.roots(), &rustls::version::TLS12, None)
    )
    .is_err());
    let mut tls = connect(
        tern.addr(),
        client_config(pki.roots(), &rustls::version::TLS13, None),
    );
    assert_eq!(stat(&mut tls, "ssl_handshake_errors").as_deref(), Some("1"));
}

#[test]
fn refresh_certs_swaps_for_new_connections_and_keeps_the_old_on_failure() {
    let pki = Pki::new("refresh");
    let first = pki.leaf("server");
    let live = Leaf {
        cert: first.cert.clone(),
        key_pem: first.key_pem.clone(),
        cert_path: pki.dir.join("live.pem"),
        key_path: pki.dir.join("live.key"),
    };
    std::fs::copy(&first.cert_path, &live.cert_path).unwrap();
    std::fs::copy(&first.key_path, &live.key_path).unwrap();
    let tern = start_tls(&live, |_| {});
    let config = client_config(pki.roots(), &rustls::version::TLS13, None);
    let peer = |tls: &Tls| tls.conn.peer_certificates().unwrap()[0].clone();

    let mut old = connect(tern.addr(), config.clone());
    assert_eq!(peer(&old), first.cert);

    let second = pki.leaf("second");
    std::fs::copy(&second.cert_path, &live.cert_path).unwrap();
    std::fs::copy(&second.key_path, &live.key_path).unwrap();
    roundtrip(&mut old, b"refresh_certs\r\n", b"OK\r\n");
    roundtrip(&mut old, b"refresh_certs noreply\r\nget x\r\n", b"END\r\n");
    let mut new = connect(tern.addr(), config.clone());
    assert_eq!(peer(&new), second.cert, "new connections get the new cert");
    roundtrip(&mut old, b"get x\r\n", b"END\r\n");

    // A broken chain: memcached's error line (even with noreply); the second cert stays.
    std::fs::write(&live.cert_path, "garbage\n").unwrap();
    let expected = format!(
        "Error loading the certificate chain: {} : ",
        live.cert_path.display()
    );
    new.write_all(b"refresh_certs noreply\r\n").unwrap();
    let line = String::from_utf8(read_until(&mut new, b"\r\n")).unwrap();
    assert!(line.starts_with(&expected), "{line:?}");
    // A key that is not the certificate's.
    std::fs::copy(&first.cert_path, &live.cert_path).unwrap();
    new.write_all(b"refresh_certs\r\n").unwrap();
    let line = String::from_utf8(read_until(&mut new, b"\r\n")).unwrap();
    assert!(
        line.starts_with(&format!(
            "Error loading the key: {} : key values mismatch",
            live.key_path.display()
        )),
        "{line:?}"
    );
    let after = connect(tern.addr(), config);
    assert_eq!(
        peer(&after),
        second.cert,
        "a failed refresh keeps the old certs"
    );
}

#[test]
fn stalled_handshakes_do_not_block_others_and_are_killed() {
    let pki = Pki::new("stall");
    let server = pki.leaf("server");
    let tern = start_tls(&server, |s| s.threads = 1);
    // Half a ClientHello record header, then silence.
    let mut stalled = TcpStream::connect(tern.addr()).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01, 0x02]).unwrap();
    let mut silent = TcpStream::connect(tern.addr()).unwrap();
    let config = client_config(pki.roots(), &rustls::version::TLS13, None);
    let started = Instant::now();
    let mut tls = connect(tern.addr(), config.clone());
    roundtrip(&mut tls, b"get x\r\n", b"END\r\n");
    assert!(started.elapsed() < Duration::from_secs(2), "served at once");

    // Past the deadline (the server's clock is the test's), both are closed and counted.
    tern.clock
        .advance(tern::server::tls::HANDSHAKE_TIMEOUT_SECS + 2);
    for sock in [&mut stalled, &mut silent] {
        sock.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(sock.read(&mut buf).unwrap(), 0, "closed");
    }
    assert_eq!(
        stat(&mut tls, "ssl_handshake_timeouts").as_deref(),
        Some("2")
    );
    assert_eq!(stat(&mut tls, "ssl_handshake_errors").as_deref(), Some("2"));
}

#[test]
fn abrupt_disconnect_mid_record_leaves_the_server_serving() {
    let pki = Pki::new("abrupt");
    let server = pki.leaf("server");
    let tern = start_tls(&server, |s| s.threads = 1);
    let config = client_config(pki.roots(), &rustls::version::TLS13, None);
    let mut tls = connect(tern.addr(), config.clone());
    // Encrypt a request, send half of its record, and vanish.
    tls.conn
        .writer()
        .write_all(b"set torn 0 0 5\r\nhello\r\n")
        .unwrap();
    let mut record = Vec::new();
    while tls.conn.wants_write() {
        tls.conn.write_tls(&mut record).unwrap();
    }
    tls.sock.write_all(&record[..record.len() / 2]).unwrap();
    drop(tls);

    let mut other = connect(tern.addr(), config);
    roundtrip(&mut other, b"get torn\r\n", b"END\r\n");
    let deadline = Instant::now() + REPLY_TIMEOUT;
    while stat(&mut other, "curr_connections").as_deref() != Some("1") {
        assert!(
            Instant::now() < deadline,
            "the torn connection was not closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn auto_discovery_and_ascii_auth_work_over_tls() {
    let pki = Pki::new("extras");
    let server = pki.leaf("server");
    let auth = pki.dir.join("auth");
    std::fs::write(&auth, "user:secret\n").unwrap();
    let tern = start_tls(&server, |s| {
        s.auth_file = Some(auth.clone());
    });
    let mut tls = connect_unauthenticated(tern.addr(), &pki);
    roundtrip(&mut tls, b"get x\r\n", b"CLIENT_ERROR unauthenticated\r\n");
    roundtrip(&mut tls, b"set a 0 0 11\r\nuser secret\r\n", b"STORED\r\n");
    tls.write_all(b"config get cluster\r\n").unwrap();
    let reply = String::from_utf8(read_until(&mut tls, b"END\r\n")).unwrap();
    assert!(reply.starts_with("CONFIG cluster 0 "), "{reply:?}");
    assert!(
        reply.contains(&format!("|{}\n", tern.addr().port())),
        "the node describes its TLS address: {reply:?}"
    );
}

/// A TLS connection that has not logged in (`-Y`): `version` is refused there, so no probe.
fn connect_unauthenticated(addr: SocketAddr, pki: &Pki) -> Tls {
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let conn = ClientConnection::new(
        client_config(pki.roots(), &rustls::version::TLS13, None),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut tls = StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls
}

/// `memcached -Z` on the same files: the `stats settings` ssl lines, `refresh_certs` replies
/// and what a plaintext client sees.
#[test]
fn differential_against_memcached_z() {
    if !common::differential() {
        return;
    }
    let pki = Pki::new("diff");
    let server = pki.leaf("server");
    let opts = format!(
        "ssl_chain_cert={},ssl_key={},ssl_ca_cert={},ssl_verify_mode=1,ssl_session_cache",
        server.cert_path.display(),
        server.key_path.display(),
        pki.ca_path().display()
    );
    let mc = common::Memcached::start(&["-Z", "-o", &opts]);
    let tern = start_tls(&server, |s| {
        s.tls.ca_cert = Some(pki.ca_path());
        s.tls.verify_mode = VerifyMode::Request;
        s.tls.session_cache = true;
    });
    let config = client_config(pki.roots(), &rustls::version::TLS13, None);
    let ssl_lines = |addr: SocketAddr| {
        let mut tls = connect(addr, config.clone());
        tls.write_all(b"stats settings\r\n").unwrap();
        let text = String::from_utf8(read_until(&mut tls, b"END\r\n")).unwrap();
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("STAT ssl_"))
            .map(str::to_string)
            .collect();
        let mut refresh = Vec::new();
        for cmd in [
            &b"refresh_certs\r\n"[..],
            b"refresh_certs noreply\r\nversion\r\n",
        ] {
            tls.write_all(cmd).unwrap();
            refresh.push(read_until(&mut tls, b"\r\n"));
        }
        (lines, refresh)
    };
    let (mc_lines, mc_refresh) = ssl_lines(mc.addr);
    let (tern_lines, tern_refresh) = ssl_lines(tern.addr());
    assert_eq!(tern_lines, mc_lines);
    assert_eq!(tern_refresh, mc_refresh);
    for addr in [mc.addr, tern.addr()] {
        let mut plain = TcpStream::connect(addr).unwrap();
        plain.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        plain.write_all(b"version\r\n").unwrap();
        let mut got = Vec::new();
        let _ = plain.read_to_end(&mut got);
        assert!(got.is_empty(), "{addr}: a plaintext client sees {got:?}");
    }
    // A TLS client on a plaintext memcached port: the same lines tern's notls port answers.
    let plain = common::Memcached::start(&[]);
    let hello = client_hello(&pki);
    let mut probe = common::Client::connect(plain.addr);
    probe.send(&hello);
    probe.send(b"\r\nversion\r\n");
    probe.expect(&notls_reply(&hello));
}
