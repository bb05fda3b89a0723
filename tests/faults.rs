//! Fault injection: mappings the store cannot get (hash-index growth, fresh item-memory pages)
//! give memcached's out-of-memory replies over TCP, never a panic; what is stored stays
//! intact, and the store recovers once memory comes back. The refusals are planned per store
//! with `Store::refuse_mappings`.

mod common;

use std::io::Read;

use common::{Client, Tern};

const OOM: &[u8] = b"SERVER_ERROR out of memory storing object\r\n";

fn set(c: &mut Client, key: &str, value: &str) -> Vec<u8> {
    c.send(format!("set {key} 0 0 {}\r\n{value}\r\n", value.len()).as_bytes());
    read_line(c)
}

fn read_line(c: &mut Client) -> Vec<u8> {
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        line.extend(c.read_exact_n(1));
    }
    line
}

fn assert_value(c: &mut Client, key: &str, value: &str) {
    assert_values(c, &[(key.to_string(), value.to_string())]);
}

/// Gets every key (pipelined, 200 at a time) and checks each value byte for byte.
fn assert_values(c: &mut Client, items: &[(String, String)]) {
    for batch in items.chunks(200) {
        let (mut req, mut want) = (Vec::new(), Vec::new());
        for (key, value) in batch {
            req.extend(format!("get {key}\r\n").bytes());
            want.extend(format!("VALUE {key} 0 {}\r\n{value}\r\nEND\r\n", value.len()).bytes());
        }
        c.send(&req);
        let got = c.read_exact_n(want.len());
        assert!(got == want, "values differ in a batch from {}", batch[0].0);
    }
}

/// A binary SET of `key` (flags 0, exptime 0); returns the response header's status and body.
fn binary_set(c: &mut Client, key: &[u8], value: &[u8]) -> (u16, Vec<u8>) {
    let extras = [0u8; 8];
    let mut p = vec![0x80, 0x01];
    p.extend_from_slice(&(key.len() as u16).to_be_bytes());
    p.extend_from_slice(&[8, 0, 0, 0]);
    p.extend_from_slice(&((8 + key.len() + value.len()) as u32).to_be_bytes());
    p.extend_from_slice(&[0; 12]);
    p.extend_from_slice(&extras);
    p.extend_from_slice(key);
    p.extend_from_slice(value);
    c.send(&p);
    let head = c.read_exact_n(24);
    assert_eq!(head[0], 0x81);
    let body_len = u32::from_be_bytes(head[8..12].try_into().unwrap()) as usize;
    let body = c.read_exact_n(body_len);
    (u16::from_be_bytes([head[6], head[7]]), body)
}

#[test]
fn refused_index_growth_answers_out_of_memory_and_recovers() {
    // hashpower 8 over 16 shards: 64-slot indexes that must grow after ~51 keys each.
    let tern = Tern::start_with(|s| s.store.hashpower_init = Some(8));
    let store = tern.handle.shared().store.clone();
    let mut c = tern.connect();
    store.refuse_mappings(u32::MAX, 0);
    let mut stored = Vec::new();
    let mut refused = 0;
    for i in 0..3000 {
        let (key, value) = (format!("k{i}"), format!("value-{i}"));
        let reply = set(&mut c, &key, &value);
        if reply == b"STORED\r\n" {
            stored.push((key, value));
        } else {
            assert_eq!(reply, OOM, "key {key}");
            refused += 1;
        }
    }
    // Every index filled to all but one slot, no further: 16 x 63 keys stored.
    assert_eq!(stored.len(), 16 * 63, "refused {refused}");
    // The binary protocol answers its out-of-memory status.
    let (status, body) = binary_set(&mut tern.connect(), b"bin-key-refused", b"v");
    assert_eq!(
        (status, body.as_slice()),
        (0x82, &b"Out of memory allocating item"[..])
    );
    // Replacing a stored key needs no new slot: still served.
    let (k0, _) = stored[0].clone();
    assert_eq!(set(&mut c, &k0, "replaced"), b"STORED\r\n");
    stored[0].1 = "replaced".into();
    assert_values(&mut c, &stored);
    // Memory again: every new key is stored, the old ones stay.
    store.refuse_mappings(0, 0);
    for i in 3000..6000 {
        let (key, value) = (format!("k{i}"), format!("value-{i}"));
        assert_eq!(set(&mut c, &key, &value), b"STORED\r\n", "key {key}");
        stored.push((key, value));
    }
    let (status, _) = binary_set(&mut tern.connect(), b"bin-key-ok", b"v");
    assert_eq!(status, 0);
    assert_values(&mut c, &stored);
    assert_eq!(c.stat("curr_items"), (stored.len() + 1).to_string());
}

#[test]
fn refused_fresh_page_answers_out_of_memory_and_recovers() {
    let tern = Tern::start_with(|s| s.store.evict = false);
    let store = tern.handle.shared().store.clone();
    let mut c = tern.connect();
    let small = "x".repeat(100);
    assert_eq!(set(&mut c, "small", &small), b"STORED\r\n");
    // A 300 KB value needs fresh pages of the largest class; each one is refused in turn.
    let big = "b".repeat(300_000);
    store.refuse_mappings(0, 3);
    for _ in 0..3 {
        assert_eq!(set(&mut c, "big", &big), OOM);
    }
    // The binary protocol says the same.
    store.refuse_mappings(0, 1);
    let (status, body) = binary_set(&mut tern.connect(), b"big", big.as_bytes());
    assert_eq!(
        (status, body.as_slice()),
        (0x82, &b"Out of memory allocating item"[..])
    );
    c.roundtrip(b"get big\r\n", b"END\r\n");
    assert_value(&mut c, "small", &small);
    assert!(c.stat("curr_items") == "1");
    // Memory again: stored whole.
    store.refuse_mappings(0, 0);
    assert_eq!(set(&mut c, "big", &big), b"STORED\r\n");
    assert_value(&mut c, "big", &big);
    assert_value(&mut c, "small", &small);
}

#[test]
fn refused_pages_with_eviction_on_still_never_panic() {
    // An empty store with eviction on has nothing to evict: a refused first page is an
    // out-of-memory reply, and the connection keeps going.
    let tern = Tern::start();
    let store = tern.handle.shared().store.clone();
    let mut c = tern.connect();
    store.refuse_mappings(0, u32::MAX);
    assert_eq!(set(&mut c, "a", "1"), OOM);
    c.roundtrip(b"incr a 1\r\n", b"NOT_FOUND\r\n");
    c.roundtrip(b"get a\r\n", b"END\r\n");
    store.refuse_mappings(0, 0);
    assert_eq!(set(&mut c, "a", "1"), b"STORED\r\n");
    c.roundtrip(b"incr a 41\r\n", b"42\r\n");
    // Nothing else was sent.
    c.stream
        .set_read_timeout(Some(common::QUIET_WAIT))
        .expect("timeout");
    let mut extra = [0u8; 16];
    assert!(c.stream.read(&mut extra).is_err());
}
