//! ElastiCache auto-discovery over real TCP: `config get|set|delete cluster`, the legacy
//! `get AmazonElastiCache:cluster`, versions, the default self-description, the config file and
//! the one-write rule. Every reply is checked byte for byte.

mod common;

use std::io::Read;
use std::time::Duration;

use common::{Client, Tern};

/// The reply to `config get cluster` for `data`.
fn config_reply(data: &str) -> String {
    format!("CONFIG cluster 0 {}\r\n{data}\r\nEND\r\n", data.len())
}

/// What a tern on 127.0.0.1 describes itself as before anything is configured: the listener's
/// address as both host and IP, never the machine's host name (which may resolve elsewhere).
fn self_data(tern: &Tern) -> String {
    format!("1\n127.0.0.1|127.0.0.1|{}\n", tern.addr().port())
}

fn config_set(data: &str) -> Vec<u8> {
    format!("config set cluster 0 {}\r\n{data}\r\n", data.len()).into_bytes()
}

/// Sends `request`, waits until the server has surely answered, then reads once: the whole
/// reply must come in that single `recv`, as it does when the server wrote it in one `write`.
fn single_read(c: &mut Client, request: &[u8]) -> Vec<u8> {
    c.send(request);
    std::thread::sleep(Duration::from_millis(100));
    c.stream
        .set_read_timeout(Some(common::REPLY_TIMEOUT))
        .unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let n = c.stream.read(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn default_config_describes_this_node_at_version_1() {
    let tern = Tern::start();
    let mut c = tern.connect();
    c.roundtrip(
        b"config get cluster\r\n",
        config_reply(&self_data(&tern)).as_bytes(),
    );
}

#[test]
fn default_config_host_part_reaches_the_listener() {
    let tern = Tern::start();
    let mut c = tern.connect();
    c.send(b"config get cluster\r\n");
    let reply = c.read_available();
    let text = String::from_utf8(reply).unwrap();
    let node = text.split("\r\n").nth(1).unwrap().lines().nth(1).unwrap();
    let fields: Vec<&str> = node.split('|').collect();
    // A client that prefers the host part (most do) must land on this listener.
    let addr = format!("{}:{}", fields[0], fields[2]);
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    use std::io::Write;
    s.write_all(b"version\r\n").unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"VERSION "), "{addr}");
}

#[test]
fn default_config_never_has_a_blank_ip_or_host() {
    let tern = Tern::start();
    let data = self_data(&tern);
    let node = data.lines().nth(1).unwrap();
    let fields: Vec<&str> = node.split('|').collect();
    assert_eq!(fields.len(), 3);
    assert!(fields.iter().all(|f| !f.is_empty()), "{node}");
    let mut c = tern.connect();
    c.roundtrip(b"config get cluster\r\n", config_reply(&data).as_bytes());
}

#[test]
fn config_get_tolerates_trailing_space_and_bare_newline() {
    let tern = Tern::start();
    let expected = config_reply(&self_data(&tern));
    let mut c = tern.connect();
    c.roundtrip(b"config get cluster \r\n", expected.as_bytes());
    c.roundtrip(b"config get cluster\n", expected.as_bytes());
    c.roundtrip(b"config get cluster \n", expected.as_bytes());
}

#[test]
fn config_get_reply_leaves_in_one_write() {
    let tern = Tern::start();
    let mut c = tern.connect();
    let nodes: Vec<String> = (0..300)
        .map(|i| format!("node{i}.example|127.0.0.{}|{}", i % 250 + 1, 11211 + i))
        .collect();
    let data = format!("2\n{}\n", nodes.join(" "));
    c.roundtrip(&config_set(&data), b"STORED\r\n");
    let got = single_read(&mut c, b"config get cluster\r\n");
    assert_eq!(String::from_utf8(got).unwrap(), config_reply(&data));
}

#[test]
fn config_set_higher_version_is_stored_and_served() {
    let tern = Tern::start();
    let mut c = tern.connect();
    let data = "2\na|127.0.0.1|11211 b|127.0.0.1|11212 c|127.0.0.1|11213\n";
    c.roundtrip(&config_set(data), b"STORED\r\n");
    c.roundtrip(b"config get cluster\r\n", config_reply(data).as_bytes());
    // Every connection sees it.
    let mut other = tern.connect();
    other.roundtrip(b"config get cluster\r\n", config_reply(data).as_bytes());
}

#[test]
fn config_set_normalises_what_clients_parse_rigidly() {
    let tern = Tern::start();
    let mut c = tern.connect();
    c.roundtrip(
        &config_set("7\r\na|127.0.0.1|1   b|127.0.0.1|2"),
        b"STORED\r\n",
    );
    c.roundtrip(
        b"config get cluster\r\n",
        config_reply("7\na|127.0.0.1|1 b|127.0.0.1|2\n").as_bytes(),
    );
}

#[test]
fn config_set_same_or_older_version_is_refused_and_changes_nothing() {
    let tern = Tern::start();
    let mut c = tern.connect();
    let data = "5\na|127.0.0.1|1\n";
    c.roundtrip(&config_set(data), b"STORED\r\n");
    c.roundtrip(
        &config_set("5\nb|127.0.0.1|2\n"),
        b"CLIENT_ERROR config version 5 is not higher than current version 5\r\n",
    );
    c.roundtrip(
        &config_set("1\nb|127.0.0.1|2\n"),
        b"CLIENT_ERROR config version 1 is not higher than current version 5\r\n",
    );
    c.roundtrip(b"config get cluster\r\n", config_reply(data).as_bytes());
}

#[test]
fn config_set_version_1_over_the_default_is_refused() {
    let tern = Tern::start();
    let mut c = tern.connect();
    c.roundtrip(
        &config_set("1\nb|127.0.0.1|2\n"),
        b"CLIENT_ERROR config version 1 is not higher than current version 1\r\n",
    );
}

#[test]
fn config_set_bad_data_is_refused_and_changes_nothing() {
    let tern = Tern::start();
    let mut c = tern.connect();
    let before = config_reply(&self_data(&tern));
    for (data, reply) in [
        (
            "0\na|127.0.0.1|1\n",
            "CLIENT_ERROR bad config data: config version 0 is not between 1 and 2147483647\r\n",
        ),
        (
            "2147483648\na|127.0.0.1|1\n",
            "CLIENT_ERROR bad config data: config version 2147483648 is not between 1 and \
             2147483647\r\n",
        ),
        (
            "2\na||1\n",
            "CLIENT_ERROR bad config data: node \"a||1\" is not host|ip|port: the IP is blank \
             (clients connect to it)\r\n",
        ),
        (
            "2\n",
            "CLIENT_ERROR bad config data: config data has no node line\r\n",
        ),
        (
            "x\na|127.0.0.1|1\n",
            "CLIENT_ERROR bad config data: config version \"x\" is not a number\r\n",
        ),
    ] {
        c.roundtrip(&config_set(data), reply.as_bytes());
    }
    c.roundtrip(b"config get cluster\r\n", before.as_bytes());
}

#[test]
fn config_set_noreply_is_silent() {
    let tern = Tern::start();
    let mut c = tern.connect();
    let data = "3\na|127.0.0.1|1\n";
    let mut req = format!("config set cluster 0 {} noreply\r\n{data}\r\n", data.len()).into_bytes();
    req.extend_from_slice(b"config get cluster\r\n");
    c.roundtrip(&req, config_reply(data).as_bytes());
}

#[test]
fn config_set_unknown_key_is_a_client_error() {
    let tern = Tern::start();
    let mut c = tern.connect();
    c.roundtrip(
        b"config set other 0 16\r\n2\na|127.0.0.1|1\n\r\n",
        b"CLIENT_ERROR unknown config key\r\n",
    );
}

#[test]
fn config_delete_then_not_found_and_get_is_end() {
    let tern = Tern::start();
    let mut c = tern.connect();
    c.roundtrip(b"config delete cluster\r\n", b"DELETED\r\n");
    c.roundtrip(b"config delete cluster\r\n", b"NOT_FOUND\r\n");
    c.roundtrip(b"config get cluster\r\n", b"END\r\n");
    c.roundtrip(b"get AmazonElastiCache:cluster\r\n", b"END\r\n");
    // Versions still only increase after a delete.
    c.roundtrip(
        &config_set("1\na|127.0.0.1|1\n"),
        b"CLIENT_ERROR config version 1 is not higher than current version 1\r\n",
    );
    c.roundtrip(&config_set("2\na|127.0.0.1|1\n"), b"STORED\r\n");
    c.roundtrip(
        b"config get cluster\r\n",
        config_reply("2\na|127.0.0.1|1\n").as_bytes(),
    );
}

#[test]
fn other_config_forms_get_memcached_style_errors() {
    let tern = Tern::start();
    let mut c = tern.connect();
    c.roundtrip(b"config\r\n", b"ERROR\r\n");
    c.roundtrip(b"config get\r\n", b"ERROR\r\n");
    c.roundtrip(b"config list cluster\r\n", b"ERROR\r\n");
    c.roundtrip(b"config get cluster extra\r\n", b"ERROR\r\n");
    c.roundtrip(
        b"config delete cluster now\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    );
    c.roundtrip(
        b"config set cluster 0 x\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    );
    c.roundtrip(b"config get other\r\n", b"END\r\n");
    c.roundtrip(b"config delete other\r\n", b"NOT_FOUND\r\n");
    // The connection is still usable.
    c.roundtrip(
        b"config get cluster\r\n",
        config_reply(&self_data(&tern)).as_bytes(),
    );
}

#[test]
fn legacy_get_answers_the_same_data() {
    let tern = Tern::start();
    let mut c = tern.connect();
    let data = self_data(&tern);
    c.roundtrip(
        b"get AmazonElastiCache:cluster\r\n",
        format!(
            "VALUE AmazonElastiCache:cluster 0 {}\r\n{data}\r\nEND\r\n",
            data.len()
        )
        .as_bytes(),
    );
}

#[test]
fn legacy_gets_shows_the_config_version_as_cas() {
    let tern = Tern::start();
    let mut c = tern.connect();
    let data = "42\na|127.0.0.1|1\n";
    c.roundtrip(&config_set(data), b"STORED\r\n");
    c.roundtrip(
        b"gets AmazonElastiCache:cluster\r\n",
        format!(
            "VALUE AmazonElastiCache:cluster 0 {} 42\r\n{data}\r\nEND\r\n",
            data.len()
        )
        .as_bytes(),
    );
}

#[test]
fn legacy_key_in_a_multi_get_answers_in_its_place() {
    let tern = Tern::start();
    let mut c = tern.connect();
    let data = "3\na|127.0.0.1|1\n";
    c.roundtrip(&config_set(data), b"STORED\r\n");
    c.roundtrip(b"set foo 5 0 3\r\nbar\r\n", b"STORED\r\n");
    c.roundtrip(
        b"get foo AmazonElastiCache:cluster missing foo\r\n",
        format!(
            "VALUE foo 5 3\r\nbar\r\nVALUE AmazonElastiCache:cluster 0 {}\r\n{data}\r\n\
             VALUE foo 5 3\r\nbar\r\nEND\r\n",
            data.len()
        )
        .as_bytes(),
    );
}

#[test]
fn legacy_reply_leaves_in_one_write() {
    let tern = Tern::start();
    let mut c = tern.connect();
    let data = self_data(&tern);
    let got = single_read(&mut c, b"get AmazonElastiCache:cluster\r\n");
    assert_eq!(
        String::from_utf8(got).unwrap(),
        format!(
            "VALUE AmazonElastiCache:cluster 0 {}\r\n{data}\r\nEND\r\n",
            data.len()
        )
    );
}

#[test]
fn stats_reports_the_config_version() {
    let tern = Tern::start();
    let mut c = tern.connect();
    assert_eq!(c.stat("cluster_config_version"), "1");
    c.roundtrip(&config_set("9\na|127.0.0.1|1\n"), b"STORED\r\n");
    assert_eq!(c.stat("cluster_config_version"), "9");
    c.roundtrip(b"config delete cluster\r\n", b"DELETED\r\n");
    assert_eq!(c.stat("cluster_config_version"), "0");
}

struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str) -> TempFile {
        TempFile(
            std::env::temp_dir().join(format!("tern-cluster-it-{}-{name}", std::process::id())),
        )
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn config_file_is_served_from_start_and_reloaded() {
    let file = TempFile::new("reload");
    std::fs::write(&file.0, "4\nf|127.0.0.1|1\n").unwrap();
    let path = file.0.clone();
    let tern = Tern::start_with(|s| s.cluster_config = Some(path));
    let mut c = tern.connect();
    c.roundtrip(
        b"config get cluster\r\n",
        config_reply("4\nf|127.0.0.1|1\n").as_bytes(),
    );

    // A newer file is taken on reload (what SIGHUP does).
    std::fs::write(&file.0, "5\nf|127.0.0.1|1 g|127.0.0.1|2\n").unwrap();
    tern.handle.shared().cluster.reload().unwrap();
    c.roundtrip(
        b"config get cluster\r\n",
        config_reply("5\nf|127.0.0.1|1 g|127.0.0.1|2\n").as_bytes(),
    );

    // An older or bad file is ignored; the config stays.
    std::fs::write(&file.0, "3\nold|127.0.0.1|1\n").unwrap();
    assert!(tern.handle.shared().cluster.reload().is_err());
    std::fs::write(&file.0, "6\nbad\n").unwrap();
    assert!(tern.handle.shared().cluster.reload().is_err());
    c.roundtrip(
        b"config get cluster\r\n",
        config_reply("5\nf|127.0.0.1|1 g|127.0.0.1|2\n").as_bytes(),
    );
}

#[test]
fn bad_config_file_at_start_falls_back_to_the_self_description() {
    let file = TempFile::new("bad");
    std::fs::write(&file.0, "not a config").unwrap();
    let path = file.0.clone();
    let tern = Tern::start_with(|s| s.cluster_config = Some(path));
    let mut c = tern.connect();
    c.roundtrip(
        b"config get cluster\r\n",
        config_reply(&self_data(&tern)).as_bytes(),
    );
}

/// A binary request packet (magic 0x80) with `extras`, `key` and `value`.
fn binary_request(opcode: u8, opaque: u32, extras: &[u8], key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, opcode];
    p.extend_from_slice(&(key.len() as u16).to_be_bytes());
    p.push(extras.len() as u8);
    p.extend_from_slice(&[0, 0, 0]);
    p.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
    p.extend_from_slice(&opaque.to_be_bytes());
    p.extend_from_slice(&[0; 8]);
    p.extend_from_slice(extras);
    p.extend_from_slice(key);
    p.extend_from_slice(value);
    p
}

/// A binary response header's fields: (opcode, key_len, extras_len, status, body_len, opaque,
/// cas).
type ResponseFields = (u8, u16, u8, u16, u32, u32, u64);

/// Reads one binary response: its header fields and its body.
fn binary_response(c: &mut Client) -> (ResponseFields, Vec<u8>) {
    let h = c.read_exact_n(24);
    assert_eq!(h[0], 0x81, "response magic");
    let body_len = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
    let body = c.read_exact_n(body_len as usize);
    (
        (
            h[1],
            u16::from_be_bytes([h[2], h[3]]),
            h[4],
            u16::from_be_bytes([h[6], h[7]]),
            body_len,
            u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
            u64::from_be_bytes(h[16..24].try_into().unwrap()),
        ),
        body,
    )
}

#[test]
fn binary_config_get_set_delete() {
    let tern = Tern::start();
    let mut c = tern.connect();
    // CONFIG_GET (0x60) of the default: flags as 4 bytes of extras, no key, the data as value.
    c.send(&binary_request(0x60, 7, &[], b"cluster", &[]));
    let ((op, klen, elen, status, _, opaque, cas), body) = binary_response(&mut c);
    assert_eq!((op, klen, elen, status, opaque, cas), (0x60, 0, 4, 0, 7, 1));
    assert_eq!(&body[..4], &[0, 0, 0, 0]);
    assert_eq!(String::from_utf8_lossy(&body[4..]), self_data(&tern));

    // CONFIG_SET (0x64) of version 2, then CONFIG_GET serves it.
    let data = "2\nnode1|127.0.0.1|11211 node2|127.0.0.1|11212\n";
    c.send(&binary_request(
        0x64,
        8,
        &[0, 0, 0, 0],
        b"cluster",
        data.as_bytes(),
    ));
    let ((op, _, _, status, body_len, opaque, _), _) = binary_response(&mut c);
    assert_eq!((op, status, body_len, opaque), (0x64, 0, 0, 8));
    c.send(&binary_request(0x60, 9, &[], b"cluster", &[]));
    let ((_, _, _, status, _, _, cas), body) = binary_response(&mut c);
    assert_eq!((status, cas), (0, 2));
    assert_eq!(&body[4..], data.as_bytes());
    // The text protocol serves the same config (on a connection of its own: the first byte
    // made this one binary).
    let mut text = tern.connect();
    text.roundtrip(b"config get cluster\r\n", config_reply(data).as_bytes());

    // An older version is refused (Not stored, with the reason) and changes nothing.
    let old = "1\nnode9|127.0.0.1|11219\n";
    c.send(&binary_request(
        0x64,
        10,
        &[0, 0, 0, 0],
        b"cluster",
        old.as_bytes(),
    ));
    let ((_, _, _, status, _, _, _), reason) = binary_response(&mut c);
    assert_eq!(status, 0x0005);
    assert!(!reason.is_empty());
    text.roundtrip(b"config get cluster\r\n", config_reply(data).as_bytes());

    // CONFIG_DELETE (0x66), then CONFIG_GET is Not found.
    c.send(&binary_request(0x66, 11, &[], b"cluster", &[]));
    assert_eq!(binary_response(&mut c).0 .3, 0);
    c.send(&binary_request(0x60, 12, &[], b"cluster", &[]));
    let ((_, _, _, status, _, _, _), body) = binary_response(&mut c);
    assert_eq!((status, body.as_slice()), (0x0001, &b"Not found"[..]));
    c.send(&binary_request(0x66, 13, &[], b"cluster", &[]));
    assert_eq!(binary_response(&mut c).0 .3, 0x0001);
}
