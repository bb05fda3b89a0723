//! The classic text protocol over real TCP, byte for byte.
//!
//! Every scenario below was checked against Debian's memcached 1.6.18. Run
//! `TERN_DIFF_MEMCACHED=1 cargo test --test text_protocol` to replay them against a real
//! memcached as well (the differential run; it needs `memcached` on PATH, or set the variable to
//! the binary's path).

mod common;

use common::{differential, Client, Memcached, Tern};

/// One step: bytes to send, then the exact bytes expected back.
///
/// CAS uniques are the one thing two correct servers may number differently, so they are
/// matched, not spelled: `{cas}` in an expected reply captures a new CAS (which must differ
/// from the last one captured), `{same}` must equal the last one captured, and `{cas}` in a
/// request sends the last one captured.
type Step = (&'static [u8], &'static [u8]);

/// A named conversation on one fresh connection to a fresh server.
struct Scenario {
    name: &'static str,
    steps: &'static [Step],
    /// Whether the server must close the connection after the last step.
    closes: bool,
}

const fn sc(name: &'static str, steps: &'static [Step]) -> Scenario {
    Scenario {
        name,
        steps,
        closes: false,
    }
}

const SCENARIOS: &[Scenario] = &[
    sc(
        "set_then_get",
        &[
            (b"set a 5 0 3\r\nabc\r\n", b"STORED\r\n"),
            (b"get a\r\n", b"VALUE a 5 3\r\nabc\r\nEND\r\n"),
        ],
    ),
    sc(
        "get_many_keys_with_misses",
        &[
            (
                b"set a 0 0 1\r\n1\r\nset c 0 0 1\r\n3\r\n",
                b"STORED\r\nSTORED\r\n",
            ),
            (
                b"get a b c d\r\n",
                b"VALUE a 0 1\r\n1\r\nVALUE c 0 1\r\n3\r\nEND\r\n",
            ),
            (
                b"get   a    c  \r\n",
                b"VALUE a 0 1\r\n1\r\nVALUE c 0 1\r\n3\r\nEND\r\n",
            ),
        ],
    ),
    sc(
        "gets_shows_cas",
        &[
            (b"set a 0 0 1\r\nx\r\n", b"STORED\r\n"),
            (b"gets a\r\n", b"VALUE a 0 1 {cas}\r\nx\r\nEND\r\n"),
            (b"cas a 0 0 1 987654321\r\ny\r\n", b"EXISTS\r\n"),
            (b"cas a 0 0 1 {cas}\r\ny\r\n", b"STORED\r\n"),
            (b"cas a 0 0 1 {cas}\r\nz\r\n", b"EXISTS\r\n"),
            (b"cas zz 0 0 1 1\r\ny\r\n", b"NOT_FOUND\r\n"),
            (b"gets a\r\n", b"VALUE a 0 1 {cas}\r\ny\r\nEND\r\n"),
            (
                b"touch a 10\r\ngets a\r\n",
                b"TOUCHED\r\nVALUE a 0 1 {same}\r\ny\r\nEND\r\n",
            ),
            (
                b"append a 0 0 1\r\n!\r\ngets a\r\n",
                b"STORED\r\nVALUE a 0 2 {cas}\r\ny!\r\nEND\r\n",
            ),
        ],
    ),
    sc(
        "add_replace_append_prepend",
        &[
            (b"add a 1 0 1\r\nx\r\n", b"STORED\r\n"),
            (b"add a 1 0 1\r\ny\r\n", b"NOT_STORED\r\n"),
            (b"replace b 1 0 1\r\ny\r\n", b"NOT_STORED\r\n"),
            (b"replace a 2 0 1\r\nz\r\n", b"STORED\r\n"),
            (b"append a 9 0 2\r\n12\r\n", b"STORED\r\n"),
            (b"prepend a 9 0 2\r\n00\r\n", b"STORED\r\n"),
            (b"append nope 0 0 1\r\nx\r\n", b"NOT_STORED\r\n"),
            (b"prepend nope 0 0 1\r\nx\r\n", b"NOT_STORED\r\n"),
            (b"get a\r\n", b"VALUE a 2 5\r\n00z12\r\nEND\r\n"),
        ],
    ),
    sc(
        "delete_forms",
        &[
            (b"set a 0 0 1\r\nx\r\n", b"STORED\r\n"),
            (b"delete a 0\r\n", b"DELETED\r\n"),
            (b"delete a\r\n", b"NOT_FOUND\r\n"),
            (
                b"delete a 1\r\n",
                b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n",
            ),
            (
                b"set a 0 0 1\r\nx\r\ndelete a noreply\r\nget a\r\n",
                b"STORED\r\nEND\r\n",
            ),
        ],
    ),
    sc(
        "incr_decr",
        &[
            (b"set n 0 0 2\r\n10\r\n", b"STORED\r\n"),
            (b"incr n 5\r\n", b"15\r\n"),
            (b"decr n 100\r\n", b"0\r\n"),
            (b"set n 0 0 2\r\n10\r\n", b"STORED\r\n"),
            (b"decr n 1\r\n", b"9\r\n"),
            (b"get n\r\n", b"VALUE n 0 2\r\n9 \r\nEND\r\n"),
            (b"incr n 18446744073709551615\r\n", b"8\r\n"),
            (b"set big 0 0 20\r\n18446744073709551615\r\n", b"STORED\r\n"),
            (b"incr big 1\r\n", b"0\r\n"),
            (b"incr nope 1\r\n", b"NOT_FOUND\r\n"),
            (
                b"incr n x\r\n",
                b"CLIENT_ERROR invalid numeric delta argument\r\n",
            ),
            (
                b"incr n -1\r\n",
                b"CLIENT_ERROR invalid numeric delta argument\r\n",
            ),
            (b"set s 0 0 3\r\nabc\r\n", b"STORED\r\n"),
            (
                b"incr s 1\r\n",
                b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
            ),
        ],
    ),
    sc(
        "incr_grows_value",
        &[
            (b"set n 0 0 1\r\n9\r\n", b"STORED\r\n"),
            (b"incr n 1\r\n", b"10\r\n"),
            (b"get n\r\n", b"VALUE n 0 2\r\n10\r\nEND\r\n"),
        ],
    ),
    sc(
        "touch_and_gat",
        &[
            (b"set a 3 0 1\r\nx\r\n", b"STORED\r\n"),
            (b"touch a 100\r\n", b"TOUCHED\r\n"),
            (b"touch b 100\r\n", b"NOT_FOUND\r\n"),
            (
                b"touch a x\r\n",
                b"CLIENT_ERROR invalid exptime argument\r\n",
            ),
            (b"gat 100 a b\r\n", b"VALUE a 3 1\r\nx\r\nEND\r\n"),
            (b"gats 100 a\r\n", b"VALUE a 3 1 {cas}\r\nx\r\nEND\r\n"),
            (b"gat x a\r\n", b"CLIENT_ERROR invalid exptime argument\r\n"),
        ],
    ),
    sc(
        "unknown_and_malformed",
        &[
            (b"bogus\r\n", b"ERROR\r\n"),
            (b"\r\n", b"ERROR\r\n"),
            (b"set a 0 0\r\n", b"ERROR\r\n"),
            (
                b"set a x 0 1\r\n",
                b"CLIENT_ERROR bad command line format\r\n",
            ),
            (
                b"set a 0 0 -1\r\n",
                b"CLIENT_ERROR bad command line format\r\n",
            ),
            (b"get\r\n", b"ERROR\r\n"),
            (b"version\r\n", b"VERSION 1.6.18\r\n"),
        ],
    ),
    sc(
        "bare_newline_ends_a_line",
        &[(
            b"set a 0 0 1\nx\r\nget a\n",
            b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
        )],
    ),
    sc(
        "bad_data_chunk",
        &[
            (
                b"set a 0 0 1\r\nxyz\r\n",
                b"CLIENT_ERROR bad data chunk\r\nERROR\r\n",
            ),
            (b"get a\r\n", b"END\r\n"),
        ],
    ),
    sc(
        "noreply_everywhere",
        &[
            (b"set a 0 0 1 noreply\r\nx\r\n", b""),
            (b"add a 0 0 1 noreply\r\nx\r\n", b""),
            (b"replace a 0 0 1 noreply\r\ny\r\n", b""),
            (b"append a 0 0 1 noreply\r\nz\r\n", b""),
            (b"prepend a 0 0 1 noreply\r\nw\r\n", b""),
            (b"cas a 0 0 1 999 noreply\r\nq\r\n", b""),
            (b"set n 0 0 1 noreply\r\n5\r\n", b""),
            (b"incr n 1 noreply\r\n", b""),
            (b"decr n 1 noreply\r\n", b""),
            (b"touch a 0 noreply\r\n", b""),
            (b"delete zz noreply\r\n", b""),
            (b"flush_all 0 noreply\r\n", b""),
            (b"verbosity 1 noreply\r\n", b""),
            (b"incr a 1 noreply\r\n", b""),
            (b"get a n\r\n", b"END\r\n"),
        ],
    ),
    sc(
        "flush_all_forms",
        &[
            (b"set a 0 0 1\r\nx\r\n", b"STORED\r\n"),
            (b"flush_all\r\n", b"OK\r\n"),
            (b"get a\r\n", b"END\r\n"),
            (b"flush_all 0\r\n", b"OK\r\n"),
            (b"flush_all noreply\r\n", b""),
            (b"version\r\n", b"VERSION 1.6.18\r\n"),
        ],
    ),
    // memcached 1.6.18 with CAS on flushes at `realtime(delay) - 1`: `flush_all 1` is immediate.
    sc(
        "flush_all_1_is_immediate",
        &[
            (b"set a 0 0 1\r\nx\r\n", b"STORED\r\n"),
            (b"flush_all 1\r\n", b"OK\r\n"),
            (b"get a\r\n", b"END\r\n"),
        ],
    ),
    sc(
        "shutdown_refused_without_dash_a",
        &[(b"shutdown\r\n", b"ERROR: shutdown not enabled\r\n")],
    ),
    sc(
        "stats_errors",
        &[
            (b"stats foo\r\n", b"ERROR\r\n"),
            (
                b"stats detail\r\n",
                b"CLIENT_ERROR usage: stats detail on|off|dump\r\n",
            ),
            (b"stats reset\r\n", b"RESET\r\n"),
            // No external storage: memcached without `-o ext_path` lists nothing.
            (b"stats extstore\r\n", b"END\r\n"),
            (b"stats extstore 1\r\n", b"END\r\n"),
            (b"stats extstorex\r\n", b"ERROR\r\n"),
            (b"verbosity 1\r\n", b"OK\r\n"),
        ],
    ),
    sc(
        "zero_length_value",
        &[
            (b"set a 0 0 0\r\n\r\n", b"STORED\r\n"),
            (b"get a\r\n", b"VALUE a 0 0\r\n\r\nEND\r\n"),
        ],
    ),
    sc(
        "negative_exptime_expires_at_once",
        &[
            (b"set a 0 -1 1\r\nx\r\n", b"STORED\r\n"),
            (b"get a\r\n", b"END\r\n"),
        ],
    ),
    sc(
        "flags_full_32_bits",
        &[
            (b"set a 4294967295 0 1\r\nx\r\n", b"STORED\r\n"),
            (b"get a\r\n", b"VALUE a 4294967295 1\r\nx\r\nEND\r\n"),
        ],
    ),
    Scenario {
        name: "quit_closes",
        steps: &[(b"set a 0 0 1\r\nx\r\nquit\r\nget a\r\n", b"STORED\r\n")],
        closes: true,
    },
];

/// tern answers `version` with its own version; memcached with 1.6.18. Everything else must match.
fn for_server(expected: &[u8], is_tern: bool) -> Vec<u8> {
    if is_tern {
        let ours = format!("VERSION {}\r\n", tern::server::VERSION);
        String::from_utf8_lossy(expected)
            .replace("VERSION 1.6.18\r\n", &ours)
            .into_bytes()
    } else {
        expected.to_vec()
    }
}

/// Matches `reply` against `pattern`, handling the CAS placeholders; returns the new capture.
fn matches(pattern: &str, reply: &str, last: Option<u64>) -> Result<Option<u64>, String> {
    let mut captured = last;
    let (mut p, mut r) = (pattern, reply);
    loop {
        let next = [p.find("{cas}"), p.find("{same}")]
            .into_iter()
            .flatten()
            .min();
        let Some(at) = next else {
            return if p == r {
                Ok(captured)
            } else {
                Err(format!("expected {pattern:?}, got {reply:?}"))
            };
        };
        if !r.starts_with(&p[..at]) {
            return Err(format!("expected {pattern:?}, got {reply:?}"));
        }
        r = &r[at..];
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        let value: u64 = r[..digits]
            .parse()
            .map_err(|_| format!("no CAS where {pattern:?} wants one, got {reply:?}"))?;
        if p[at..].starts_with("{same}") {
            if Some(value) != captured {
                return Err(format!(
                    "CAS changed to {value}, was {captured:?}: {reply:?}"
                ));
            }
            p = &p[at + "{same}".len()..];
        } else {
            if Some(value) == captured {
                return Err(format!("CAS {value} did not change: {reply:?}"));
            }
            captured = Some(value);
            p = &p[at + "{cas}".len()..];
        }
        r = &r[digits..];
    }
}

fn run(scenario: &Scenario, mut client: Client, is_tern: bool) {
    eprintln!("scenario {}", scenario.name);
    let mut cas: Option<u64> = None;
    for (send, expect) in scenario.steps {
        let expect = for_server(expect, is_tern);
        let send = String::from_utf8_lossy(send)
            .replace("{cas}", &cas.unwrap_or(0).to_string())
            .into_bytes();
        let pattern = String::from_utf8(expect).unwrap();
        if !pattern.contains('{') {
            client.roundtrip(&send, pattern.as_bytes());
            continue;
        }
        client.send(&send);
        let reply = String::from_utf8_lossy(&client.read_available()).into_owned();
        match matches(&pattern, &reply, cas) {
            Ok(c) => cas = c,
            Err(e) => panic!("{}: {e}", scenario.name),
        }
    }
    if scenario.closes {
        assert!(
            client.is_closed(),
            "{}: connection stayed open",
            scenario.name
        );
    }
}

#[test]
fn scenarios_match_memcached_bytes() {
    for scenario in SCENARIOS {
        let tern = Tern::start();
        run(scenario, tern.connect(), true);
    }
}

#[test]
fn scenarios_differential_against_real_memcached() {
    if !differential() {
        eprintln!("skipped: set TERN_DIFF_MEMCACHED=1 to replay against a real memcached");
        return;
    }
    for scenario in SCENARIOS {
        let mc = Memcached::start(&[]);
        run(scenario, Client::connect(mc.addr), false);
    }
}

/// Every scenario's bytes, split in two at every byte boundary, get the same replies: the
/// server must never depend on where reads happen to end. (Scenarios that capture CAS values or
/// close the connection are covered whole above.)
#[test]
fn every_scenario_split_at_every_byte_boundary() {
    let mut splits = 0;
    for scenario in SCENARIOS {
        if scenario.closes || scenario.steps.iter().any(|(_, e)| e.contains(&b'{')) {
            continue;
        }
        let send: Vec<u8> = scenario
            .steps
            .iter()
            .flat_map(|(s, _)| s.to_vec())
            .collect();
        let expect: Vec<u8> = scenario
            .steps
            .iter()
            .flat_map(|(_, e)| for_server(e, true))
            .collect();
        let tern = Tern::start_with(|s| s.threads = 1);
        let mut control = tern.connect();
        for at in 1..send.len() {
            // A clean slate for each run: flush_all drops what the previous run stored.
            control.send(b"flush_all\r\n");
            assert_eq!(control.read_exact_n(4), b"OK\r\n");
            let mut c = tern.connect();
            c.send(&send[..at]);
            std::thread::sleep(std::time::Duration::from_micros(300));
            c.send(&send[at..]);
            let got = c.read_exact_n(expect.len());
            assert!(
                got == expect,
                "{} split at {at}: got {:?}",
                scenario.name,
                String::from_utf8_lossy(&got)
            );
            splits += 1;
        }
    }
    assert!(splits > 1000, "only {splits} splits ran");
}

/// A key over 250 bytes: `get` refuses the whole line (no VALUE for the keys beside it), and a
/// storage command is refused without swallowing its data, whose line memcached then reads as
/// a command of its own (`ERROR`). Checked against memcached 1.6.18 in the differential run.
#[test]
fn key_over_250_bytes_is_a_bad_command_line() {
    let long = "k".repeat(251);
    let ok = "k".repeat(250);
    let steps: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"set a 0 0 1\r\nx\r\n".to_vec(), b"STORED\r\n".to_vec()),
        (
            format!("get a {long} a\r\n").into_bytes(),
            b"CLIENT_ERROR bad command line format\r\n".to_vec(),
        ),
        (
            format!("set {long} 0 0 1\r\nx\r\n").into_bytes(),
            b"CLIENT_ERROR bad command line format\r\nERROR\r\n".to_vec(),
        ),
        (
            format!("set {ok} 0 0 1\r\ny\r\nget {ok}\r\n").into_bytes(),
            format!("STORED\r\nVALUE {ok} 0 1\r\ny\r\nEND\r\n").into_bytes(),
        ),
    ];
    let run_on = |mut c: Client| {
        for (send, expect) in &steps {
            c.roundtrip(send, expect);
        }
    };
    let tern = Tern::start();
    run_on(tern.connect());
    if differential() {
        let mc = Memcached::start(&[]);
        run_on(Client::connect(mc.addr));
    }
}
