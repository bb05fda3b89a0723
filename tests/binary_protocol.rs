//! The binary protocol over real TCP, byte for byte: every opcode, the quiet forms, the error
//! paths and closes, pipelines, split packets, `-B`, SASL (`-S`) and ASCII auth (`-Y`).
//!
//! The scenarios in [`SCENARIOS`] were checked against Debian's memcached 1.6.18; run
//! `TERN_DIFF_MEMCACHED=1 cargo test --test binary_protocol` to replay them against a real
//! memcached too. CAS uniques are numbered differently by two correct servers, so replies are
//! compared with the header's CAS zeroed, and a step that must send the item's CAS takes the
//! last non-zero CAS the server reported.

mod common;

use common::{differential, Client, Memcached, Tern};

const GET: u8 = 0x00;
const SET: u8 = 0x01;
const ADD: u8 = 0x02;
const REPLACE: u8 = 0x03;
const DELETE: u8 = 0x04;
const INCR: u8 = 0x05;
const DECR: u8 = 0x06;
const QUIT: u8 = 0x07;
const FLUSH: u8 = 0x08;
const GETQ: u8 = 0x09;
const NOOP: u8 = 0x0a;
const VERSION: u8 = 0x0b;
const GETK: u8 = 0x0c;
const GETKQ: u8 = 0x0d;
const APPEND: u8 = 0x0e;
const PREPEND: u8 = 0x0f;
const STAT: u8 = 0x10;
const SETQ: u8 = 0x11;
const ADDQ: u8 = 0x12;
const REPLACEQ: u8 = 0x13;
const DELETEQ: u8 = 0x14;
const INCRQ: u8 = 0x15;
const DECRQ: u8 = 0x16;
const QUITQ: u8 = 0x17;
const FLUSHQ: u8 = 0x18;
const APPENDQ: u8 = 0x19;
const PREPENDQ: u8 = 0x1a;
const VERBOSITY: u8 = 0x1b;
const TOUCH: u8 = 0x1c;
const GAT: u8 = 0x1d;
const GATQ: u8 = 0x1e;
const SASL_LIST: u8 = 0x20;
const SASL_AUTH: u8 = 0x21;
const SASL_STEP: u8 = 0x22;
const GATK: u8 = 0x23;
const GATKQ: u8 = 0x24;

const NOT_FOUND: u16 = 0x01;
const EXISTS: u16 = 0x02;
const TOO_LARGE: u16 = 0x03;
const EINVAL: u16 = 0x04;
const NOT_STORED: u16 = 0x05;
const NON_NUMERIC: u16 = 0x06;
const AUTH_ERROR: u16 = 0x20;
const AUTH_CONTINUE: u16 = 0x21;
const UNKNOWN: u16 = 0x81;

/// The opaque of the NOOP appended after each step to prove nothing else was sent.
const SENTINEL: u32 = 0x5e47_1e1a;

#[allow(clippy::too_many_arguments)] // one argument per header field
fn packet(
    magic: u8,
    op: u8,
    status: u16,
    key: &[u8],
    extras: &[u8],
    value: &[u8],
    opaque: u32,
    cas: u64,
) -> Vec<u8> {
    let mut v = vec![magic, op];
    v.extend_from_slice(&(key.len() as u16).to_be_bytes());
    v.push(extras.len() as u8);
    v.push(0);
    v.extend_from_slice(&status.to_be_bytes());
    v.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
    v.extend_from_slice(&opaque.to_be_bytes());
    v.extend_from_slice(&cas.to_be_bytes());
    v.extend_from_slice(extras);
    v.extend_from_slice(key);
    v.extend_from_slice(value);
    v
}

/// A request packet.
fn rq(op: u8, key: &[u8], extras: &[u8], value: &[u8]) -> Vec<u8> {
    packet(0x80, op, 0, key, extras, value, 0, 0)
}

/// A request packet with opaque and CAS.
fn rq_oc(op: u8, key: &[u8], extras: &[u8], value: &[u8], opaque: u32, cas: u64) -> Vec<u8> {
    packet(0x80, op, 0, key, extras, value, opaque, cas)
}

/// A response packet (CAS zero: compared masked).
fn rs(op: u8, status: u16, key: &[u8], extras: &[u8], value: &[u8]) -> Vec<u8> {
    packet(0x81, op, status, key, extras, value, 0, 0)
}

/// A response with opaque.
fn rs_o(op: u8, status: u16, key: &[u8], extras: &[u8], value: &[u8], opaque: u32) -> Vec<u8> {
    packet(0x81, op, status, key, extras, value, opaque, 0)
}

/// memcached's error reply: status and its text, no extras, no key.
fn er(op: u8, status: u16) -> Vec<u8> {
    let body: &[u8] = match status {
        NOT_FOUND => b"Not found",
        EXISTS => b"Data exists for key.",
        TOO_LARGE => b"Too large.",
        EINVAL => b"Invalid arguments",
        NOT_STORED => b"Not stored.",
        NON_NUMERIC => b"Non-numeric server-side value for incr or decr",
        AUTH_ERROR => b"Auth failure.",
        UNKNOWN => b"Unknown command",
        _ => b"",
    };
    rs(op, status, b"", b"", body)
}

/// An empty success.
fn ok(op: u8) -> Vec<u8> {
    rs(op, 0, b"", b"", b"")
}

fn set_extras(flags: u32, exptime: u32) -> Vec<u8> {
    let mut v = flags.to_be_bytes().to_vec();
    v.extend_from_slice(&exptime.to_be_bytes());
    v
}

fn arith_extras(delta: u64, initial: u64, expiration: u32) -> Vec<u8> {
    let mut v = delta.to_be_bytes().to_vec();
    v.extend_from_slice(&initial.to_be_bytes());
    v.extend_from_slice(&expiration.to_be_bytes());
    v
}

fn set(key: &[u8], flags: u32, value: &[u8]) -> Vec<u8> {
    rq(SET, key, &set_extras(flags, 0), value)
}

/// A GET hit reply (flags as extras).
fn hit(op: u8, key: &[u8], flags: u32, value: &[u8]) -> Vec<u8> {
    rs(op, 0, key, &flags.to_be_bytes(), value)
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Zeroes the CAS of every whole response packet in `bytes`; returns the last non-zero CAS.
fn mask_cas(bytes: &mut [u8]) -> u64 {
    let mut last = 0;
    let mut off = 0;
    while off + 24 <= bytes.len() {
        let body = u32::from_be_bytes(bytes[off + 8..off + 12].try_into().unwrap()) as usize;
        let cas = u64::from_be_bytes(bytes[off + 16..off + 24].try_into().unwrap());
        if cas != 0 {
            last = cas;
        }
        bytes[off + 16..off + 24].fill(0);
        off += 24 + body;
    }
    last
}

/// A binary conversation with one server.
struct Bin {
    c: Client,
    is_tern: bool,
    /// The last non-zero CAS the server reported.
    cas: u64,
    /// The opcode of the request sent after each step to prove nothing else came: NOOP, or
    /// VERSION where NOOP would be refused (SASL before authentication).
    sentinel: u8,
}

impl Bin {
    fn new(c: Client, is_tern: bool) -> Bin {
        Bin {
            c,
            is_tern,
            cas: 0,
            sentinel: NOOP,
        }
    }

    /// Ends each step with VERSION instead of NOOP (allowed before SASL authentication).
    fn version_sentinel(mut self) -> Bin {
        self.sentinel = VERSION;
        self
    }

    /// Sends `req`, then a NOOP; expects exactly `expect` then the NOOP's reply.
    fn rt(&mut self, req: &[u8], expect: &[u8]) {
        let noop = rq_oc(self.sentinel, b"", b"", b"", SENTINEL, 0);
        self.c.send(&cat(&[req, &noop]));
        let body: &[u8] = if self.sentinel == VERSION {
            self.version().as_bytes()
        } else {
            b""
        };
        let want = cat(&[expect, &rs_o(self.sentinel, 0, b"", b"", body, SENTINEL)]);
        let mut got = self.c.read_exact_n(want.len());
        let cas = mask_cas(&mut got);
        if cas != 0 {
            self.cas = cas;
        }
        let mut want_masked = want.clone();
        mask_cas(&mut want_masked);
        assert_eq!(hex(&got), hex(&want_masked), "request {}", hex(req));
    }

    /// Sends `req`; expects exactly `expect` and then the connection to close.
    fn closes(&mut self, req: &[u8], expect: &[u8]) {
        self.c.send(req);
        let mut got = self.c.read_exact_n(expect.len());
        mask_cas(&mut got);
        let mut want = expect.to_vec();
        mask_cas(&mut want);
        assert_eq!(hex(&got), hex(&want), "request {}", hex(req));
        assert!(
            self.c.is_closed(),
            "connection stayed open after {}",
            hex(req)
        );
    }

    fn version(&self) -> &'static str {
        if self.is_tern {
            tern::server::VERSION
        } else {
            "1.6.18"
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.chunks(24)
        .map(|c| c.iter().map(|x| format!("{x:02x}")).collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

type Scenario = (&'static str, fn(&mut Bin));

const SCENARIOS: &[Scenario] = &[
    ("get_family_hits_and_misses", get_family),
    ("store_modes_and_statuses", store_modes),
    ("cas_on_set_add_replace", cas_stores),
    ("append_prepend_and_their_cas", append_prepend),
    ("delete_and_deleteq", delete),
    ("incr_decr_initial_nocreate_nonnumeric_cas", arith),
    ("touch_and_gat_family", touch_gat),
    ("flush_and_flushq_with_expiration", flush),
    ("noop_version_verbosity", noop_version_verbosity),
    ("stat_groups_reset_unknown", stat_groups),
    ("quiet_pipeline_ended_by_noop", quiet_pipeline),
    ("unknown_opcode_swallows_body_len", unknown_opcode),
    ("set_too_large_answers_and_unlinks_old", too_large),
    ("quit_answers_then_closes", quit),
    ("quitq_closes_silently", quitq),
    ("bad_magic_closes_without_reply", bad_magic),
    (
        "inconsistent_lengths_unknown_then_close",
        inconsistent_lengths,
    ),
    ("key_over_250_invalid_then_close", long_key),
    ("wrong_extras_invalid_then_close", wrong_extras),
    ("sasl_opcodes_unknown_without_sasl", sasl_without_s),
];

fn get_family(b: &mut Bin) {
    b.rt(&rq(GET, b"k", b"", b""), &er(GET, NOT_FOUND));
    b.rt(&rq(GETQ, b"k", b"", b""), b"");
    b.rt(
        &rq(GETK, b"k", b"", b""),
        &rs(GETK, NOT_FOUND, b"k", b"", b""),
    );
    b.rt(&rq(GETKQ, b"k", b"", b""), b"");
    b.rt(&set(b"k", 0xdeadbeef, b"value"), &ok(SET));
    b.rt(
        &rq(GET, b"k", b"", b""),
        &hit(GET, b"", 0xdeadbeef, b"value"),
    );
    b.rt(
        &rq(GETQ, b"k", b"", b""),
        &hit(GETQ, b"", 0xdeadbeef, b"value"),
    );
    b.rt(
        &rq(GETK, b"k", b"", b""),
        &hit(GETK, b"k", 0xdeadbeef, b"value"),
    );
    b.rt(
        &rq(GETKQ, b"k", b"", b""),
        &hit(GETKQ, b"k", 0xdeadbeef, b"value"),
    );
    // Opaque is echoed; a key may hold a space in the binary protocol.
    b.rt(&set(b"a b", 0, b""), &ok(SET));
    b.rt(
        &rq_oc(GETK, b"a b", b"", b"", 0x01020304, 0),
        &rs_o(GETK, 0, b"a b", &[0; 4], b"", 0x01020304),
    );
}

fn store_modes(b: &mut Bin) {
    b.rt(&rq(ADD, b"k", &set_extras(1, 0), b"a"), &ok(ADD));
    b.rt(&rq(ADD, b"k", &set_extras(1, 0), b"b"), &er(ADD, EXISTS));
    b.rt(&rq(ADDQ, b"k", &set_extras(1, 0), b"b"), &er(ADDQ, EXISTS));
    b.rt(&rq(ADDQ, b"k2", &set_extras(1, 0), b"b"), b"");
    b.rt(
        &rq(REPLACE, b"nope", &set_extras(0, 0), b"x"),
        &er(REPLACE, NOT_FOUND),
    );
    b.rt(
        &rq(REPLACEQ, b"nope", &set_extras(0, 0), b"x"),
        &er(REPLACEQ, NOT_FOUND),
    );
    b.rt(&rq(REPLACE, b"k", &set_extras(2, 0), b"c"), &ok(REPLACE));
    b.rt(&rq(REPLACEQ, b"k", &set_extras(3, 0), b"d"), b"");
    b.rt(&rq(SETQ, b"k3", &set_extras(0, 0), b"e"), b"");
    b.rt(&rq(GET, b"k", b"", b""), &hit(GET, b"", 3, b"d"));
    b.rt(&rq(GET, b"k3", b"", b""), &hit(GET, b"", 0, b"e"));
}

fn cas_stores(b: &mut Bin) {
    b.rt(&set(b"k", 0, b"one"), &ok(SET));
    let cas = b.cas;
    assert_ne!(cas, 0, "SET must report the new CAS");
    b.rt(&rq(GET, b"k", b"", b""), &hit(GET, b"", 0, b"one"));
    assert_eq!(b.cas, cas, "GET reports the CAS SET reported");
    b.rt(
        &rq_oc(SET, b"k", &set_extras(0, 0), b"two", 0, cas.wrapping_add(1)),
        &er(SET, EXISTS),
    );
    b.rt(
        &rq_oc(SET, b"nope", &set_extras(0, 0), b"two", 0, cas),
        &er(SET, NOT_FOUND),
    );
    b.rt(
        &rq_oc(ADD, b"k", &set_extras(0, 0), b"two", 0, cas.wrapping_add(1)),
        &er(ADD, EXISTS),
    );
    b.rt(&rq_oc(SETQ, b"k", &set_extras(0, 0), b"two", 0, cas), b"");
    b.rt(&rq(GET, b"k", b"", b""), &hit(GET, b"", 0, b"two"));
    assert_ne!(b.cas, cas, "a CAS store changes the CAS");
    let cas = b.cas;
    b.rt(
        &rq_oc(REPLACE, b"k", &set_extras(0, 0), b"three", 0, cas),
        &ok(REPLACE),
    );
}

fn append_prepend(b: &mut Bin) {
    b.rt(&rq(APPEND, b"k", b"", b"x"), &er(APPEND, NOT_STORED));
    b.rt(&rq(PREPENDQ, b"k", b"", b"x"), &er(PREPENDQ, NOT_STORED));
    b.rt(&set(b"k", 7, b"mid"), &ok(SET));
    let cas = b.cas;
    b.rt(&rq(APPEND, b"k", b"", b"_end"), &ok(APPEND));
    b.rt(&rq(PREPEND, b"k", b"", b"start_"), &ok(PREPEND));
    b.rt(&rq(APPENDQ, b"k", b"", b"!"), b"");
    b.rt(&rq(PREPENDQ, b"k", b"", b"^"), b"");
    b.rt(
        &rq(GET, b"k", b"", b""),
        &hit(GET, b"", 7, b"^start_mid_end!"),
    );
    // A stale CAS is refused; the current one is accepted.
    b.rt(&rq_oc(APPEND, b"k", b"", b"?", 0, cas), &er(APPEND, EXISTS));
    let now = b.cas;
    b.rt(&rq_oc(PREPEND, b"k", b"", b"<", 0, now), &ok(PREPEND));
}

fn delete(b: &mut Bin) {
    b.rt(&rq(DELETE, b"k", b"", b""), &er(DELETE, NOT_FOUND));
    b.rt(&rq(DELETEQ, b"k", b"", b""), &er(DELETEQ, NOT_FOUND));
    b.rt(&set(b"k", 0, b"v"), &ok(SET));
    let cas = b.cas;
    b.rt(
        &rq_oc(DELETE, b"k", b"", b"", 0, cas.wrapping_add(1)),
        &er(DELETE, EXISTS),
    );
    b.rt(&rq_oc(DELETE, b"k", b"", b"", 0, cas), &ok(DELETE));
    b.rt(&set(b"k", 0, b"v"), &ok(SET));
    b.rt(&rq(DELETEQ, b"k", b"", b""), b"");
    b.rt(&rq(GET, b"k", b"", b""), &er(GET, NOT_FOUND));
}

fn arith(b: &mut Bin) {
    let num = |v: u64| v.to_be_bytes();
    b.rt(
        &rq(INCR, b"n", &arith_extras(1, 0, 0xffff_ffff), b""),
        &er(INCR, NOT_FOUND),
    );
    b.rt(
        &rq(INCRQ, b"n", &arith_extras(1, 0, 0xffff_ffff), b""),
        &er(INCRQ, NOT_FOUND),
    );
    b.rt(
        &rq(INCR, b"n", &arith_extras(1, 10, 0), b""),
        &rs(INCR, 0, b"", b"", &num(10)),
    );
    b.rt(
        &rq(INCR, b"n", &arith_extras(5, 10, 0), b""),
        &rs(INCR, 0, b"", b"", &num(15)),
    );
    b.rt(
        &rq(DECR, b"n", &arith_extras(20, 10, 0), b""),
        &rs(DECR, 0, b"", b"", &num(0)),
    );
    b.rt(&rq(INCRQ, b"n", &arith_extras(7, 0, 0), b""), b"");
    b.rt(&rq(DECRQ, b"n", &arith_extras(2, 0, 0), b""), b"");
    // "15" decremented to 0 is rewritten in place, padded: "0 ", then "7 ", then "5 ".
    b.rt(&rq(GET, b"n", b"", b""), &hit(GET, b"", 0, b"5 "));
    b.rt(
        &rq(INCR, b"n", &arith_extras(u64::MAX, 0, 0), b""),
        &rs(INCR, 0, b"", b"", &num(4)),
    );
    let cas = b.cas;
    b.rt(
        &rq_oc(
            INCR,
            b"n",
            &arith_extras(1, 0, 0),
            b"",
            0,
            cas.wrapping_add(1),
        ),
        &er(INCR, EXISTS),
    );
    b.rt(
        &rq_oc(INCR, b"n", &arith_extras(1, 0, 0), b"", 0, cas),
        &rs(INCR, 0, b"", b"", &num(5)),
    );
    b.rt(&set(b"s", 0, b"abc"), &ok(SET));
    b.rt(
        &rq(INCR, b"s", &arith_extras(1, 0, 0), b""),
        &er(INCR, NON_NUMERIC),
    );
    b.rt(
        &rq(DECRQ, b"s", &arith_extras(1, 0, 0), b""),
        &er(DECRQ, NON_NUMERIC),
    );
}

fn touch_gat(b: &mut Bin) {
    let exp = 1000u32.to_be_bytes();
    b.rt(&rq(TOUCH, b"k", &exp, b""), &er(TOUCH, NOT_FOUND));
    b.rt(&rq(GAT, b"k", &exp, b""), &er(GAT, NOT_FOUND));
    b.rt(&rq(GATQ, b"k", &exp, b""), b"");
    b.rt(
        &rq(GATK, b"k", &exp, b""),
        &rs(GATK, NOT_FOUND, b"k", b"", b""),
    );
    b.rt(&rq(GATKQ, b"k", &exp, b""), b"");
    b.rt(&set(b"k", 9, b"val"), &ok(SET));
    b.rt(
        &rq(TOUCH, b"k", &exp, b""),
        &rs(TOUCH, 0, b"", &9u32.to_be_bytes(), b""),
    );
    b.rt(&rq(GAT, b"k", &exp, b""), &hit(GAT, b"", 9, b"val"));
    b.rt(&rq(GATQ, b"k", &exp, b""), &hit(GATQ, b"", 9, b"val"));
    b.rt(&rq(GATK, b"k", &exp, b""), &hit(GATK, b"k", 9, b"val"));
    b.rt(&rq(GATKQ, b"k", &exp, b""), &hit(GATKQ, b"k", 9, b"val"));
}

fn flush(b: &mut Bin) {
    b.rt(&set(b"k", 0, b"v"), &ok(SET));
    b.rt(&rq(FLUSH, b"", b"", b""), &ok(FLUSH));
    b.rt(&rq(GET, b"k", b"", b""), &er(GET, NOT_FOUND));
    b.rt(&set(b"k", 0, b"v"), &ok(SET));
    b.rt(&rq(FLUSHQ, b"", b"", b""), b"");
    b.rt(&rq(GET, b"k", b"", b""), &er(GET, NOT_FOUND));
    // A delayed flush leaves the item alive for now.
    b.rt(&set(b"k", 0, b"v"), &ok(SET));
    b.rt(&rq(FLUSH, b"", &100u32.to_be_bytes(), b""), &ok(FLUSH));
    b.rt(&rq(GET, b"k", b"", b""), &hit(GET, b"", 0, b"v"));
}

fn noop_version_verbosity(b: &mut Bin) {
    b.rt(&rq(NOOP, b"", b"", b""), &ok(NOOP));
    let v = b.version().as_bytes();
    b.rt(&rq(VERSION, b"", b"", b""), &rs(VERSION, 0, b"", b"", v));
    // 1.6.18 has no binary VERBOSITY: unknown, and it swallows body_len more bytes.
    b.rt(
        &cat(&[&rq(VERBOSITY, b"", &1u32.to_be_bytes(), b""), b"1234"]),
        &er(VERBOSITY, UNKNOWN),
    );
}

fn stat_groups(b: &mut Bin) {
    b.rt(&rq(STAT, b"reset", b"", b""), &ok(STAT));
    b.rt(&rq(STAT, b"detail on", b"", b""), &ok(STAT));
    b.rt(&rq(STAT, b"bogus", b"", b""), &er(STAT, NOT_FOUND));
    // `detail dump` is one packet keyed `detailed` holding the text dump, then the terminator.
    b.rt(&set(b"binstat:k", 0, b"v"), &ok(SET));
    b.rt(&rq(GET, b"binstat:k", b"", b""), &hit(GET, b"", 0, b"v"));
    b.rt(
        &rq(STAT, b"detail dump", b"", b""),
        &cat(&[
            &rs(
                STAT,
                0,
                b"detailed",
                b"",
                b"PREFIX binstat get 1 hit 1 set 1 del 0\r\nEND\r\n",
            ),
            &ok(STAT),
        ]),
    );
    b.rt(&rq(STAT, b"detail off", b"", b""), &ok(STAT));
    b.rt(&rq(STAT, b"detail", b"", b""), &er(STAT, NOT_FOUND));
    b.rt(&rq(STAT, b"detailx", b"", b""), &er(STAT, NOT_FOUND));
    // Over binary, memcached knows no `conns` group (text only).
    b.rt(&rq(STAT, b"conns", b"", b""), &er(STAT, NOT_FOUND));
}

fn quiet_pipeline(b: &mut Bin) {
    let req = cat(&[
        &rq(SETQ, b"a", &set_extras(0, 0), b"1"),
        &rq(ADDQ, b"a", &set_extras(0, 0), b"2"),
        &rq(GETQ, b"a", b"", b""),
        &rq(GETQ, b"missing", b"", b""),
        &rq(GETKQ, b"a", b"", b""),
        &rq(INCRQ, b"a", &arith_extras(1, 0, 0), b""),
        &rq(DELETEQ, b"missing", b"", b""),
        &rq(APPENDQ, b"a", b"", b"0"),
        &rq(GETKQ, b"a", b"", b""),
        &rq(DELETEQ, b"a", b"", b""),
        &rq(GETQ, b"a", b"", b""),
        &rq(NOOP, b"", b"", b""),
    ]);
    let expect = cat(&[
        &er(ADDQ, EXISTS),
        &hit(GETQ, b"", 0, b"1"),
        &hit(GETKQ, b"a", 0, b"1"),
        &er(DELETEQ, NOT_FOUND),
        &hit(GETKQ, b"a", 0, b"20"),
        &ok(NOOP),
    ]);
    b.rt(&req, &expect);
}

fn unknown_opcode(b: &mut Bin) {
    // memcached consumes the header, extras and key of an unknown opcode, then swallows
    // body_len more bytes: here the 3 bytes "xyz" after the key "abc". The GET is answered.
    let req = cat(&[
        &rq(0x30, b"abc", b"", b""),
        b"xyz",
        &rq(GET, b"k", b"", b""),
    ]);
    b.rt(&req, &cat(&[&er(0x30, UNKNOWN), &er(GET, NOT_FOUND)]));
}

fn too_large(b: &mut Bin) {
    b.rt(&set(b"k", 0, b"old"), &ok(SET));
    let big = vec![b'x'; 1024 * 1024];
    b.rt(&set(b"k", 0, &big), &er(SET, TOO_LARGE));
    b.rt(&rq(GET, b"k", b"", b""), &er(GET, NOT_FOUND));
    b.rt(&set(b"k", 0, b"old"), &ok(SET));
    b.rt(
        &rq(ADDQ, b"k", &set_extras(0, 0), &big),
        &er(ADDQ, TOO_LARGE),
    );
    b.rt(&rq(GET, b"k", b"", b""), &hit(GET, b"", 0, b"old"));
}

fn quit(b: &mut Bin) {
    b.closes(
        &cat(&[&rq(QUIT, b"", b"", b""), &rq(NOOP, b"", b"", b"")]),
        &ok(QUIT),
    );
}

fn quitq(b: &mut Bin) {
    b.closes(
        &cat(&[&rq(QUITQ, b"", b"", b""), &rq(NOOP, b"", b"", b"")]),
        b"",
    );
}

fn bad_magic(b: &mut Bin) {
    b.rt(&rq(NOOP, b"", b"", b""), &ok(NOOP));
    b.closes(&packet(0x81, NOOP, 0, b"", b"", b"", 0, 0), b"");
}

fn inconsistent_lengths(b: &mut Bin) {
    let mut p = rq(GET, b"key", b"", b"");
    p[11] = 2; // body_len 2 < key_len 3
    b.closes(&p, &er(GET, UNKNOWN));
}

fn long_key(b: &mut Bin) {
    b.closes(&rq(GET, &[b'k'; 251], b"", b""), &er(GET, EINVAL));
}

fn wrong_extras(b: &mut Bin) {
    b.closes(&rq(GET, b"k", &[0; 4], b""), &er(GET, EINVAL));
}

fn sasl_without_s(b: &mut Bin) {
    b.rt(&rq(SASL_LIST, b"", b"", b""), &er(SASL_LIST, UNKNOWN));
    b.rt(
        &rq(SASL_AUTH, b"PLAIN", b"", b"\0u\0p"),
        &er(SASL_AUTH, UNKNOWN),
    );
}

#[test]
fn scenarios_match_memcached_bytes() {
    for (name, scenario) in SCENARIOS {
        eprintln!("scenario {name}");
        let tern = Tern::start();
        scenario(&mut Bin::new(tern.connect(), true));
    }
}

#[test]
fn scenarios_differential_against_real_memcached() {
    if !differential() {
        eprintln!("skipped: set TERN_DIFF_MEMCACHED=1 to replay against a real memcached");
        return;
    }
    for (name, scenario) in SCENARIOS {
        eprintln!("scenario {name}");
        let mc = Memcached::start(&[]);
        scenario(&mut Bin::new(Client::connect(mc.addr), false));
    }
}

/// Reads one binary STAT reply (packets until the empty one) into (name, value) pairs.
fn binary_stats(c: &mut Client, group: &[u8]) -> Vec<(String, String)> {
    c.send(&rq(STAT, group, b"", b""));
    let mut out = Vec::new();
    loop {
        let head = c.read_exact_n(24);
        assert_eq!(head.len(), 24, "closed during STAT");
        assert_eq!(&head[..2], &[0x81, STAT]);
        let key_len = u16::from_be_bytes([head[2], head[3]]) as usize;
        let body = u32::from_be_bytes(head[8..12].try_into().unwrap()) as usize;
        if body == 0 {
            return out;
        }
        let b = c.read_exact_n(body);
        out.push((
            String::from_utf8_lossy(&b[..key_len]).into_owned(),
            String::from_utf8_lossy(&b[key_len..]).into_owned(),
        ));
    }
}

fn stat_of(stats: &[(String, String)], name: &str) -> String {
    stats
        .iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no stat {name}"))
        .1
        .clone()
}

/// A fresh file for one test. Each call gets its own path: tests run in parallel and each removes
/// its file when done, so a shared path let one test delete another's password file mid-run.
fn temp_file(name: &str, contents: &[u8]) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("tern-binwire-{}-{n}-{name}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn every_request_split_at_every_byte_boundary() {
    let tern = Tern::start();
    let exp = 1000u32.to_be_bytes();
    let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (set(b"key", 5, b"some value"), ok(SET)),
        (rq(GET, b"key", b"", b""), hit(GET, b"", 5, b"some value")),
        (
            rq(GETK, b"key", b"", b""),
            hit(GETK, b"key", 5, b"some value"),
        ),
        (rq(GETQ, b"nope", b"", b""), Vec::new()),
        (
            rq(TOUCH, b"key", &exp, b""),
            rs(TOUCH, 0, b"", &5u32.to_be_bytes(), b""),
        ),
        (
            rq(GATK, b"key", &exp, b""),
            hit(GATK, b"key", 5, b"some value"),
        ),
        (rq(APPEND, b"nope", b"", b"x"), er(APPEND, NOT_STORED)),
        (rq(DELETE, b"nope", b"", b""), er(DELETE, NOT_FOUND)),
        (
            rq(INCR, b"nope", &arith_extras(1, 0, 0xffff_ffff), b""),
            er(INCR, NOT_FOUND),
        ),
        (rq(STAT, b"reset", b"", b""), ok(STAT)),
        (
            rq(VERSION, b"", b"", b""),
            rs(VERSION, 0, b"", b"", tern::server::VERSION.as_bytes()),
        ),
        (rq(NOOP, b"", b"", b""), ok(NOOP)),
        (
            cat(&[&rq(0x30, b"abc", b"", b""), b"xyz"]),
            er(0x30, UNKNOWN),
        ),
        (rq(FLUSHQ, b"", &exp, b""), Vec::new()),
    ];
    for (req, expect) in &cases {
        let mut b = Bin::new(tern.connect(), true);
        for split in 1..req.len() {
            b.c.send(&req[..split]);
            std::thread::sleep(std::time::Duration::from_millis(1));
            b.rt(&req[split..], expect);
        }
    }
}

#[test]
fn protocol_binary_only_closes_text_clients() {
    let tern = Tern::start_with(|s| s.protocol = tern::config::BindingProtocol::Binary);
    let mut c = tern.connect();
    c.send(b"version\r\nversion\r\nversion\r\n");
    assert!(c.read_available().is_empty());
    assert!(c.is_closed());
    let mut b = Bin::new(tern.connect(), true);
    b.rt(&rq(NOOP, b"", b"", b""), &ok(NOOP));
}

#[test]
fn protocol_ascii_only_reads_binary_as_text() {
    let tern = Tern::start_with(|s| s.protocol = tern::config::BindingProtocol::Ascii);
    let mut c = tern.connect();
    // memcached 1.6.18 -B ascii answers this NOOP packet (whose opcode byte is '\n') ERROR.
    let mut req = rq(NOOP, b"", b"", b"");
    req.truncate(2);
    c.roundtrip(&req, b"ERROR\r\n");
}

#[test]
fn auto_negotiation_is_per_connection() {
    let tern = Tern::start();
    let mut text = tern.connect();
    let mut b = Bin::new(tern.connect(), true);
    b.rt(&set(b"k", 0, b"v"), &ok(SET));
    text.roundtrip(b"get k\r\n", b"VALUE k 0 1\r\nv\r\nEND\r\n");
    b.rt(&rq(GET, b"k", b"", b""), &hit(GET, b"", 0, b"v"));
}

#[test]
fn flush_refused_with_auth_error_under_disable_flush() {
    let tern = Tern::start_with(|s| s.flush_enabled = false);
    let mut b = Bin::new(tern.connect(), true);
    b.rt(&rq(FLUSH, b"", b"", b""), &er(FLUSH, AUTH_ERROR));
    b.rt(&rq(FLUSHQ, b"", b"", b""), &er(FLUSHQ, AUTH_ERROR));
}

#[test]
fn binary_commands_move_memcached_counters() {
    let tern = Tern::start();
    let mut b = Bin::new(tern.connect(), true);
    b.rt(&set(b"k", 0, b"1"), &ok(SET));
    b.rt(&rq(GET, b"k", b"", b""), &hit(GET, b"", 0, b"1"));
    b.rt(&rq(GETQ, b"x", b"", b""), b"");
    b.rt(&rq(TOUCH, b"x", &[0; 4], b""), &er(TOUCH, NOT_FOUND));
    b.rt(
        &rq(INCR, b"x", &arith_extras(1, 0, 0xffff_ffff), b""),
        &er(INCR, NOT_FOUND),
    );
    b.rt(
        &rq(INCR, b"k", &arith_extras(1, 0, 0), b""),
        &rs(INCR, 0, b"", b"", &2u64.to_be_bytes()),
    );
    b.rt(
        &rq_oc(SET, b"k", &set_extras(0, 0), b"", 0, 1),
        &er(SET, EXISTS),
    );
    b.rt(&rq(DELETE, b"k", b"", b""), &ok(DELETE));
    b.rt(&rq(DELETE, b"k", b"", b""), &er(DELETE, NOT_FOUND));
    let stats = binary_stats(&mut b.c, b"");
    for (name, want) in [
        ("cmd_get", "2"),
        ("get_hits", "1"),
        ("get_misses", "1"),
        ("cmd_set", "2"),
        ("cas_badval", "1"),
        ("cmd_touch", "1"),
        ("touch_misses", "1"),
        ("incr_misses", "1"),
        ("incr_hits", "1"),
        ("delete_hits", "1"),
        ("delete_misses", "1"),
    ] {
        assert_eq!(stat_of(&stats, name), want, "{name}");
    }
    assert_eq!(stat_of(&stats, "version"), tern::server::VERSION);
    let settings = binary_stats(&mut b.c, b"settings");
    assert_eq!(stat_of(&settings, "auth_enabled_sasl"), "no");
}

fn sasl_server() -> (Tern, std::path::PathBuf) {
    let pwdb = temp_file("pwdb", b"alice:wonderland\nbob:builder\n");
    let path = pwdb.clone();
    let tern = Tern::start_with(move |s| {
        s.sasl = true;
        s.protocol = tern::config::BindingProtocol::Binary;
        s.sasl_pwdb = Some(path);
    });
    (tern, pwdb)
}

#[test]
fn sasl_refuses_commands_before_auth_and_closes() {
    let (tern, pwdb) = sasl_server();
    let mut b = Bin::new(tern.connect(), true).version_sentinel();
    // VERSION and the SASL opcodes pass before authentication.
    b.rt(
        &rq(VERSION, b"", b"", b""),
        &rs(VERSION, 0, b"", b"", tern::server::VERSION.as_bytes()),
    );
    b.rt(
        &rq(SASL_LIST, b"", b"", b""),
        &rs(SASL_LIST, 0, b"", b"", b"PLAIN"),
    );
    b.closes(&rq(GET, b"k", b"", b""), &er(GET, AUTH_ERROR));
    // NOOP and unknown opcodes are refused too; the length check comes first.
    let mut b = Bin::new(tern.connect(), true);
    b.c.send(&rq(NOOP, b"", b"", b""));
    b.closes(b"", &er(NOOP, AUTH_ERROR));
    let mut b = Bin::new(tern.connect(), true);
    let mut p = rq(GET, b"key", b"", b"");
    p[11] = 1;
    b.closes(&p, &er(GET, UNKNOWN));
    // Text is not served: the first byte is read as a bad magic.
    let mut c = tern.connect();
    c.send(b"get k\r\nget k\r\nget k\r\nget k\r\n");
    assert!(c.is_closed());
    let _ = std::fs::remove_file(pwdb);
}

#[test]
fn sasl_wrong_password_refused_counted_then_right_one_accepted() {
    let (tern, pwdb) = sasl_server();
    let mut b = Bin::new(tern.connect(), true).version_sentinel();
    b.rt(
        &rq(SASL_AUTH, b"PLAIN", b"", b"\0alice\0wrong"),
        &er(SASL_AUTH, AUTH_ERROR),
    );
    b.rt(
        &rq(SASL_AUTH, b"CRAM-MD5", b"", b"\0alice\0wonderland"),
        &er(SASL_AUTH, AUTH_ERROR),
    );
    b.rt(
        &rq(SASL_AUTH, b"PLAIN", b"", b"\0alice\0wonderland"),
        &rs(SASL_AUTH, 0, b"", b"", b"Authenticated"),
    );
    b.rt(&set(b"k", 0, b"v"), &ok(SET));
    b.rt(&rq(GET, b"k", b"", b""), &hit(GET, b"", 0, b"v"));
    // PLAIN without data asks for a step; the step carries the credentials.
    let mut b2 = Bin::new(tern.connect(), true).version_sentinel();
    b2.rt(
        &rq(SASL_AUTH, b"PLAIN", b"", b""),
        &rs(SASL_AUTH, AUTH_CONTINUE, b"", b"", b""),
    );
    b2.rt(
        &rq(SASL_STEP, b"PLAIN", b"", b"\0bob\0builder"),
        &rs(SASL_STEP, 0, b"", b"", b"Authenticated"),
    );
    b2.rt(&rq(GET, b"k", b"", b""), &hit(GET, b"", 0, b"v"));
    let stats = binary_stats(&mut b.c, b"");
    assert_eq!(stat_of(&stats, "auth_cmds"), "4");
    assert_eq!(stat_of(&stats, "auth_errors"), "2");
    let settings = binary_stats(&mut b.c, b"settings");
    assert_eq!(stat_of(&settings, "auth_enabled_sasl"), "yes");
    assert_eq!(stat_of(&settings, "binding_protocol"), "binary");
    let _ = std::fs::remove_file(pwdb);
}

#[test]
fn ascii_auth_file_requires_login_before_text_commands() {
    let file = temp_file("authfile", b"alice:wonderland\n");
    let path = file.clone();
    let tern = Tern::start_with(move |s| {
        s.auth_file = Some(path);
        s.protocol = tern::config::BindingProtocol::Ascii;
    });
    let mut c = tern.connect();
    c.roundtrip(b"get k\r\n", b"CLIENT_ERROR unauthenticated\r\n");
    c.roundtrip(b"version\r\n", b"CLIENT_ERROR unauthenticated\r\n");
    c.roundtrip(
        b"set auth 0 0 11\r\nalice wrong\r\n",
        b"CLIENT_ERROR authentication failure\r\n",
    );
    c.roundtrip(b"set auth 0 0 16\r\nalice wonderland\r\n", b"STORED\r\n");
    c.roundtrip(b"set k 0 0 1\r\nv\r\n", b"STORED\r\n");
    c.roundtrip(b"get k\r\n", b"VALUE k 0 1\r\nv\r\nEND\r\n");
    assert_eq!(c.stat("auth_cmds"), "2");
    assert_eq!(c.stat("auth_errors"), "1");
    let settings = c.stats("settings");
    let shown = settings
        .iter()
        .find(|(k, _)| k == "auth_enabled_ascii")
        .unwrap();
    assert_eq!(shown.1, file.display().to_string());
    // Another connection starts unauthenticated.
    let mut d = tern.connect();
    d.roundtrip(b"get k\r\n", b"CLIENT_ERROR unauthenticated\r\n");
    let _ = std::fs::remove_file(file);
}
