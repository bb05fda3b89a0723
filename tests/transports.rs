//! Transports and connection housekeeping: UDP with memcached's frame header, Unix-domain
//! sockets, and the idle timeout.

mod common;

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::Duration;

use common::Tern;
use tern::clock::Clock;
use tern::config::Settings;
use tern::server::{self, Listeners};

fn frame(request_id: u16, payload: &[u8]) -> Vec<u8> {
    let mut d = request_id.to_be_bytes().to_vec();
    d.extend_from_slice(&[0, 0, 0, 1, 0, 0]);
    d.extend_from_slice(payload);
    d
}

/// Sends one framed request and gathers the reply datagrams: (seq, total, data) each.
fn udp_call(sock: &UdpSocket, request_id: u16, payload: &[u8]) -> Vec<(u16, u16, Vec<u8>)> {
    sock.send(&frame(request_id, payload)).unwrap();
    let mut replies = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        let n = sock.recv(&mut buf).expect("udp reply");
        assert!((8..=1400).contains(&n), "datagram of {n} bytes");
        assert_eq!(u16::from_be_bytes([buf[0], buf[1]]), request_id);
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let total = u16::from_be_bytes([buf[4], buf[5]]);
        assert_eq!(&buf[6..8], &[0, 0]);
        replies.push((seq, total, buf[8..n].to_vec()));
        if replies.len() == usize::from(total) {
            return replies;
        }
    }
}

fn start_udp() -> (server::ServerHandle, UdpSocket) {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let settings = Settings {
        threads: 1,
        ..Settings::default()
    };
    let listeners = Listeners {
        tcp: vec![std::net::TcpListener::bind("127.0.0.1:0").unwrap()],
        udp: vec![udp],
        ..Listeners::default()
    };
    let handle = server::start_on(settings, listeners, Arc::new(Clock::manual(1_700_000_000)))
        .expect("start");
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.connect(handle.udp_addrs()[0]).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    (handle, client)
}

#[test]
fn udp_set_and_get_with_frame_header() {
    let (_server, c) = start_udp();
    let r = udp_call(&c, 7, b"set a 3 0 2\r\nhi\r\n");
    assert_eq!(r, vec![(0, 1, b"STORED\r\n".to_vec())]);
    let r = udp_call(&c, 8, b"get a\r\n");
    assert_eq!(r, vec![(0, 1, b"VALUE a 3 2\r\nhi\r\nEND\r\n".to_vec())]);
}

#[test]
fn udp_large_get_spans_numbered_datagrams() {
    let (server, c) = start_udp();
    // Store the value over TCP, then read it over UDP.
    let mut tcp = common::Client::connect(server.local_addr());
    let value = vec![b'q'; 5000];
    let mut set = b"set big 0 0 5000\r\n".to_vec();
    set.extend_from_slice(&value);
    set.extend_from_slice(b"\r\n");
    tcp.roundtrip(&set, b"STORED\r\n");
    let mut r = udp_call(&c, 42, b"get big\r\n");
    let mut expected = b"VALUE big 0 5000\r\n".to_vec();
    expected.extend_from_slice(&value);
    expected.extend_from_slice(b"\r\nEND\r\n");
    let total = expected.len().div_ceil(1392) as u16;
    assert_eq!(r.len(), usize::from(total));
    r.sort_by_key(|d| d.0);
    let mut joined = Vec::new();
    for (i, (seq, t, data)) in r.into_iter().enumerate() {
        assert_eq!((seq, t), (i as u16, total));
        joined.extend(data);
    }
    assert_eq!(joined, expected);
}

#[test]
fn udp_multi_datagram_request_is_dropped() {
    let (_server, c) = start_udp();
    let mut d = frame(1, b"get a\r\n");
    d[4..6].copy_from_slice(&[0, 2]);
    c.send(&d).unwrap();
    // The dropped request gets no reply; the next one is answered normally.
    let r = udp_call(&c, 2, b"version\r\n");
    assert_eq!(r.len(), 1);
    assert!(r[0].2.starts_with(b"VERSION "));
}

#[test]
fn unix_socket_serves_text_protocol_through_nc() {
    let dir = std::env::temp_dir().join(format!("tern-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tern.sock");
    // A stale socket file from an earlier run is replaced, as memcached does.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let settings = Settings {
        unix_socket: Some(path.clone()),
        unix_mask: 0o700,
        threads: 1,
        ..Settings::default()
    };
    let listeners = server::bind(&settings).expect("bind unix socket");
    assert!(listeners.tcp.is_empty(), "-s turns network listening off");
    let _server = server::start_on(settings, listeners, Arc::new(Clock::system())).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let out = std::process::Command::new("nc")
        .args(["-q1", "-U"])
        .arg(&path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"set a 0 0 1\r\nx\r\nget a\r\n")?;
            child.wait_with_output()
        })
        .expect("run nc -U");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn idle_connections_are_kicked_after_idle_timeout() {
    let tern = Tern::start_with(|s| s.idle_timeout = 5);
    let mut idle = tern.connect();
    let mut busy = tern.connect();
    idle.roundtrip(
        b"version\r\n",
        format!("VERSION {}\r\n", tern::server::VERSION).as_bytes(),
    );
    tern.clock.advance(4);
    busy.roundtrip(b"get a\r\n", b"END\r\n");
    tern.clock.advance(3);
    // `idle` has been quiet for 7 s (> 5), `busy` for 3 s.
    assert!(idle.is_closed(), "idle connection was not kicked");
    busy.roundtrip(b"get a\r\n", b"END\r\n");
    assert_eq!(busy.stat("idle_kicks"), "1");
}

#[test]
fn udp_shutdown_without_dash_a_answers_as_tcp_does() {
    // With -A off memcached refuses every shutdown form the same way, whatever the mode; UDP
    // runs the same text executor as TCP, so it must not leak the parser's mode error.
    let (server, c) = start_udp();
    let mut tcp = common::Client::connect(server.local_addr());
    tcp.roundtrip(b"shutdown foo\r\n", b"ERROR: shutdown not enabled\r\n");
    let r = udp_call(&c, 3, b"shutdown foo\r\n");
    assert_eq!(r, vec![(0, 1, b"ERROR: shutdown not enabled\r\n".to_vec())]);
}
