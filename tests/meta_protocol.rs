//! The meta protocol (`mg`, `ms`, `md`, `ma`, `mn`, `me`) over real TCP, byte for byte.
//!
//! Every scenario below was checked against Debian's memcached 1.6.18. Run
//! `TERN_DIFF_MEMCACHED=1 cargo test --test meta_protocol` to replay them against a real
//! memcached as well (the differential run; it needs `memcached` on PATH, or set the variable to
//! the binary's path), as `tests/text_protocol.rs` and `tests/binary_protocol.rs` do for theirs.

mod common;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{differential, stat_value, Client, Memcached, Tern};

/// One step: bytes to send, then the pattern of the bytes expected back.
///
/// Two correct servers number CAS uniques differently and their clocks differ, so a pattern
/// may hold placeholders: `{cas}` captures a number (which must differ from the last one
/// captured), `{same}` must equal the last one captured, `{cas}` in a request sends the last one
/// captured, and `{~N}` is a number of seconds within 2 of `N` (a TTL left, an age: tern's
/// test clock stands still, memcached's ticks).
type Step = (&'static [u8], &'static [u8]);

/// A named conversation on one fresh connection to a fresh server.
struct Scenario {
    name: &'static str,
    steps: &'static [Step],
}

const fn sc(name: &'static str, steps: &'static [Step]) -> Scenario {
    Scenario { name, steps }
}

const SCENARIOS: &[Scenario] = &[
    sc(
        // memcached acts on mg's T, N and R in the order sent: an N after a T leaves the item
        // it created with N's TTL (a T-1 before it must not expire it), a t between them shows
        // T's, and an R compares against the exptime as of its place on the line.
        "mg_t_n_r_act_in_token_order",
        &[
            (b"mg a T-1 N1000 t\r\n", b"HD t{~1000} W\r\n"),
            (b"mg a t v\r\n", b"VA 0 t{~1000} Z\r\n\r\n"),
            (b"mg b T100 t N1000\r\n", b"HD t{~100} W\r\n"),
            (b"mg b t\r\n", b"HD t{~1000} Z\r\n"),
            (b"mg c N1000 T100 t\r\n", b"HD t{~100} W\r\n"),
            (b"mg c t\r\n", b"HD t{~100} Z\r\n"),
            (b"ms d 1\r\nx\r\n", b"HD\r\n"),
            // No exptime when R is read: no win; then T gives one.
            (b"mg d R30 T10\r\n", b"HD\r\n"),
            // T before R: the new exptime (10 s) is under 30 s: a win.
            (b"mg d T10 R30\r\n", b"HD W\r\n"),
        ],
    ),
    sc(
        // A retrieval stops at a key over 250 bytes: the keys before it were looked up (gat
        // touched them) and their replies are dropped for the error.
        "gat_touches_the_keys_before_a_long_key",
        &[
            (b"set a 0 0 1\r\n1\r\n", b"STORED\r\n"),
            (
                b"gat 100 a LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL b\r\n",
                b"CLIENT_ERROR bad command line format\r\n",
            ),
            (b"mg a t v\r\n", b"VA 1 t{~100}\r\n1\r\n"),
            (
                b"get a LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL\r\n",
                b"CLIENT_ERROR bad command line format\r\n",
            ),
        ],
    ),
    sc(
        // md compares any C it is given, C0 too (no item has CAS 0); ma and append treat C0
        // as no CAS at all; ms's C0 makes a cas that no item matches.
        "md_compares_c0",
        &[
            (b"set k 0 0 1\r\n5\r\n", b"STORED\r\n"),
            (b"md k C0\r\n", b"EX\r\n"),
            (b"md k C0 q\r\nmn\r\n", b"EX\r\nMN\r\n"),
            (b"ma k C0 v\r\n", b"VA 1\r\n6\r\n"),
            (b"ms k 1 C0\r\n7\r\n", b"EX\r\n"),
            (b"ms k 1 C0 MA\r\n7\r\n", b"HD\r\n"),
            (b"mg k v\r\n", b"VA 2\r\n67\r\n"),
            (b"md k\r\n", b"HD\r\n"),
            (b"md k C0\r\n", b"NF\r\n"),
        ],
    ),
    sc(
        "mg_return_flags_in_request_order",
        &[
            (b"ms foo 3 T0 F5 c k O123\r\nbar\r\n", b"HD c{cas} kfoo O123\r\n"),
            (
                b"mg foo s v f t c k O9 h l\r\n",
                b"VA 3 s3 f5 t-1 c{same} kfoo O9 h0 l{~0}\r\nbar\r\n",
            ),
            (b"mg foo h l t\r\n", b"HD h1 l{~0} t-1\r\n"),
            (b"mg foo k O1 v s\r\n", b"VA 3 kfoo O1 s3\r\nbar\r\n"),
            (b"mg foo\r\n", b"HD\r\n"),
            (b"mg foo Mx u\r\n", b"HD\r\n"),
            (b"mg miss\r\n", b"EN\r\n"),
            (b"mg miss k O1 v s c\r\n", b"EN kmiss O1\r\n"),
            (
                b"mg foo s v f t c k h l u O1 P L Mx R1 T0\r\n",
                b"VA 3 s3 f5 t-1 c{same} kfoo h1 l{~0} O1\r\nbar\r\n",
            ),
        ],
    ),
    sc(
        "mg_quiet_pipeline_ends_in_mn",
        &[
            (b"ms foo 3\r\nbar\r\n", b"HD\r\n"),
            (b"mg foo q\r\nmn\r\n", b"HD\r\nMN\r\n"),
            (b"mg nope q\r\nmn\r\n", b"MN\r\n"),
            (
                b"mg foo v q\r\nmg nope v q\r\nmg foo q k v\r\nmg nope2 q v\r\nmn\r\n",
                b"VA 3\r\nbar\r\nVA 3 kfoo\r\nbar\r\nMN\r\n",
            ),
            (
                b"mg nope q O12345678901234567890123456789012\r\nmn\r\n",
                b"CLIENT_ERROR opaque token too long\r\nMN\r\n",
            ),
            (b"mn\r\n", b"MN\r\n"),
        ],
    ),
    sc(
        "mg_errors",
        &[
            (b"mg\r\n", b"ERROR\r\n"),
            (b"mg foo v v\r\n", b"CLIENT_ERROR duplicate flag\r\n"),
            (b"mg foo Tx\r\n", b"CLIENT_ERROR bad token in command line format\r\n"),
            (b"mg foo M\r\n", b"CLIENT_ERROR incorrect length for M token\r\n"),
            (b"mg foo Fx\r\n", b"CLIENT_ERROR bad command line format\r\n"),
            (b"mg foo Tx Fx\r\n", b"CLIENT_ERROR bad token in command line format\r\n"),
            (b"mg foo E5\r\n", b"CLIENT_ERROR invalid flag\r\n"),
            (
                b"mg foo a b c d e f g h i j k l m n o p q r s\r\n",
                b"CLIENT_ERROR options flags are too long\r\n",
            ),
            (
                b"mg foo O12345678901234567890123456789012\r\n",
                b"CLIENT_ERROR opaque token too long\r\n",
            ),
            (b"ms foo 1\r\nx\r\n", b"HD\r\n"),
            (
                b"mg foo v O12345678901234567890123456789012\r\n",
                b"CLIENT_ERROR opaque token too long\r\n",
            ),
            (
                b"mg aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa v\r\n",
                b"CLIENT_ERROR bad command line format\r\n",
            ),
            (b"mg foo v\r\n", b"VA 1\r\nx\r\n"),
        ],
    ),
    sc(
        "ms_modes",
        &[
            (b"ms k 3 ME\r\nabc\r\n", b"HD\r\n"),
            (b"ms k 3 ME c\r\nxyz\r\n", b"NS c0\r\n"),
            (b"ms k 1 MA\r\n!\r\n", b"HD\r\n"),
            (b"ms k 1 MP\r\n<\r\n", b"HD\r\n"),
            (b"mg k v\r\n", b"VA 5\r\n<abc!\r\n"),
            (b"ms nope 3 MR\r\nbar\r\n", b"NS\r\n"),
            (b"ms nope 3 MA\r\nbar\r\n", b"NS\r\n"),
            (b"ms nope 3 MA N0\r\nbar\r\n", b"NS\r\n"),
            (b"ms nope 3 MP k\r\nbar\r\n", b"NS knope\r\n"),
            (b"ms k 2 MR F7 T0\r\nhi\r\n", b"HD\r\n"),
            (b"mg k v f\r\n", b"VA 2 f7\r\nhi\r\n"),
            (b"ms k 3 MS\r\nset\r\n", b"HD\r\n"),
            (b"ms k 3 Ms\r\nlow\r\n", b"CLIENT_ERROR invalid mode for ms M token\r\n"),
            (b"mg k v f t\r\n", b"VA 3 f0 t-1\r\nset\r\n"),
            (b"ms k 0\r\n\r\n", b"HD\r\n"),
            (b"mg k v s\r\n", b"VA 0 s0\r\n\r\n"),
            (b"ms t 1 T100\r\nx\r\n", b"HD\r\n"),
            (b"mg t t\r\n", b"HD t{~100}\r\n"),
        ],
    ),
    sc(
        "ms_errors_swallow_the_data",
        &[
            (
                b"ms k 3 MX\r\nbar\r\nmn\r\n",
                b"CLIENT_ERROR invalid mode for ms M token\r\nMN\r\n",
            ),
            (
                b"ms k 3 MX Tx\r\nbar\r\nmn\r\n",
                b"CLIENT_ERROR bad token in command line format\r\nMN\r\n",
            ),
            (b"ms k 3 T0 Zx\r\nbar\r\nmn\r\n", b"CLIENT_ERROR invalid flag\r\nMN\r\n"),
            (b"ms k 3 Fx F1\r\nbar\r\nmn\r\n", b"CLIENT_ERROR duplicate flag\r\nMN\r\n"),
            (
                b"ms k 3 O12345678901234567890123456789012\r\nbar\r\nmn\r\n",
                b"CLIENT_ERROR opaque token too long\r\nMN\r\n",
            ),
            (b"ms k 3 E5\r\nbar\r\nmn\r\n", b"CLIENT_ERROR invalid flag\r\nMN\r\n"),
            (b"ms big -1\r\n", b"CLIENT_ERROR bad command line format\r\n"),
            (b"ms k\r\n", b"CLIENT_ERROR bad command line format\r\n"),
            (b"ms\r\n", b"ERROR\r\n"),
            (b"ms n 2\r\n10x\r\n", b"CLIENT_ERROR bad data chunk\r\nERROR\r\n"),
            (b"mg k\r\nmg n\r\n", b"EN\r\nEN\r\n"),
        ],
    ),
    sc(
        "ms_cas",
        &[
            (b"ms k 1 c\r\na\r\n", b"HD c{cas}\r\n"),
            (b"ms k 1 C{cas} c\r\nb\r\n", b"HD c{cas}\r\n"),
            (b"ms k 1 C999999 c k O1\r\nx\r\n", b"EX c0 kk O1\r\n"),
            (b"ms nope 1 C5\r\nx\r\n", b"NF\r\n"),
            (b"ms k 1 C999999 MA\r\nx\r\n", b"EX\r\n"),
            (b"ms k 1 C999999 MP\r\nx\r\n", b"EX\r\n"),
            (b"ms k 1 C999999 ME\r\nx\r\n", b"NS\r\n"),
            (b"ms k 1 C999999 MR\r\nx\r\n", b"EX\r\n"),
            (b"ms k 2 C999999 q\r\n10\r\nmn\r\n", b"EX\r\nMN\r\n"),
            (b"mg k v c\r\n", b"VA 1 c{same}\r\nb\r\n"),
            (b"ms k 1 C{cas} MA c\r\n!\r\n", b"HD c{cas}\r\n"),
            (b"mg k v\r\n", b"VA 2\r\nb!\r\n"),
        ],
    ),
    sc(
        "ms_quiet_pipeline",
        &[(
            b"ms a 1 q\r\n1\r\nms b 1 q\r\n2\r\nms c 1 ME q\r\n3\r\nms a 1 ME q\r\nx\r\nmg a v q\r\nmg zz v q\r\nmg b v q k\r\nmn\r\n",
            b"NS\r\nVA 1\r\n1\r\nVA 1 kb\r\n2\r\nMN\r\n",
        )],
    ),
    sc(
        "md_delete",
        &[
            (b"ms k 1\r\nx\r\n", b"HD\r\n"),
            (b"md k\r\n", b"HD\r\n"),
            (b"md k\r\n", b"NF\r\n"),
            (b"md k q\r\nmn\r\n", b"NF\r\nMN\r\n"),
            (b"md k k O7\r\n", b"NF kk O7\r\n"),
            (b"ms k 1 c\r\nx\r\n", b"HD c{cas}\r\n"),
            (b"md k C999999 k O7\r\n", b"EX kk O7\r\n"),
            (b"md k C{cas} q\r\nmn\r\n", b"MN\r\n"),
            (b"mg k\r\n", b"EN\r\n"),
            (b"md k x\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n"),
            (b"md k E5\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n"),
            (b"md k Tx\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n"),
            (b"md k q q\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n"),
            (
                b"md k O12345678901234567890123456789012\r\n",
                b"CLIENT_ERROR opaque token too long\r\n",
            ),
            (b"md\r\n", b"ERROR\r\n"),
        ],
    ),
    sc(
        "stale_while_revalidate",
        &[
            (b"ms s1 3 T100\r\nabc\r\n", b"HD\r\n"),
            (b"md s1 I T30 q\r\nmn\r\n", b"MN\r\n"),
            (b"mg s1 v c t\r\n", b"VA 3 c{cas} t{~30} X W\r\nabc\r\n"),
            (b"mg s1 v c t\r\n", b"VA 3 c{same} t{~30} Z X\r\nabc\r\n"),
            (b"mg s1 s\r\n", b"HD s3 Z X\r\n"),
            (b"ms s1 3 C1 I\r\nnew\r\n", b"HD\r\n"),
            (b"mg s1 v c t\r\n", b"VA 3 c{cas} t{~30} Z X\r\nnew\r\n"),
            (b"ms s1 3 C999999 I\r\nzzz\r\n", b"EX\r\n"),
            (b"ms s1 3 T100\r\nfin\r\n", b"HD\r\n"),
            (b"mg s1 v c\r\n", b"VA 3 c{cas}\r\nfin\r\n"),
            (b"ms n 2\r\n10\r\n", b"HD\r\n"),
            (b"md n I\r\n", b"HD\r\n"),
            (b"mg n\r\n", b"HD X W\r\n"),
            (b"mg n\r\n", b"HD Z X\r\n"),
            (b"md n I\r\n", b"HD\r\n"),
            (b"mg n v\r\n", b"VA 2 X W\r\n10\r\n"),
            (b"get n\r\n", b"VALUE n 0 2\r\n10\r\nEND\r\n"),
        ],
    ),
    sc(
        "vivify_and_recache",
        &[
            (b"mg nov N30 v c t s f\r\n", b"VA 0 c{cas} t{~30} s0 f0 W\r\n\r\n"),
            (b"mg nov N30 v c t\r\n", b"VA 0 c{same} t{~30} Z\r\n\r\n"),
            (b"ms nov 2\r\nok\r\n", b"HD\r\n"),
            (b"mg nov v\r\n", b"VA 2\r\nok\r\n"),
            (b"mg viv t N30\r\n", b"HD t-1 W\r\n"),
            (b"mg viv2 N30 q\r\nmn\r\n", b"HD W\r\nMN\r\n"),
            (b"ms r1 1 T100\r\nx\r\n", b"HD\r\n"),
            (b"mg r1 R30 v t\r\n", b"VA 1 t{~100}\r\nx\r\n"),
            (b"mg r1 R200 v t\r\n", b"VA 1 t{~100} W\r\nx\r\n"),
            (b"mg r1 R200 v t\r\n", b"VA 1 t{~100} Z\r\nx\r\n"),
            (b"ms r2 1 T0\r\nx\r\n", b"HD\r\n"),
            (b"mg r2 R200 v t\r\n", b"VA 1 t-1\r\nx\r\n"),
            (b"mg r2 T20 t\r\n", b"HD t{~20}\r\n"),
            (b"mg r2 t T40\r\n", b"HD t{~20}\r\n"),
            (b"mg r2 t\r\n", b"HD t{~40}\r\n"),
            (b"mg zz T20\r\n", b"EN\r\n"),
        ],
    ),
    sc(
        "ma_arith",
        &[
            (b"ms n 1\r\n5\r\n", b"HD\r\n"),
            (b"ma n\r\n", b"HD\r\n"),
            (b"ma n v\r\n", b"VA 1\r\n7\r\n"),
            (b"ma n MD D100 v t c k O5\r\n", b"VA 1 t-1 c{cas} kn O5\r\n0\r\n"),
            (b"ma n M+ D7 v\r\n", b"VA 1\r\n7\r\n"),
            (b"ma n M- D1 v\r\n", b"VA 1\r\n6\r\n"),
            (b"ma n MI v\r\n", b"VA 1\r\n7\r\n"),
            (b"ma n v q\r\nmn\r\n", b"MN\r\n"),
            (b"mg n v\r\n", b"VA 1\r\n8\r\n"),
            (b"ma zz\r\n", b"NF\r\n"),
            (b"ma zz MD q k\r\nmn\r\n", b"NF kzz\r\nMN\r\n"),
            (b"ma nx N0 J13 v q\r\nmn\r\n", b"VA 2\r\n13\r\nMN\r\n"),
            (b"ma ny N0 J13 q\r\nmn\r\n", b"HD\r\nMN\r\n"),
            (b"ma ny v\r\n", b"VA 2\r\n14\r\n"),
            (b"ma n C999999 q\r\nmn\r\n", b"EX\r\nMN\r\n"),
            (b"ma n C999999 v\r\n", b"EX\r\n"),
            (b"ma n M\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n"),
            (b"ma n Mx\r\n", b"CLIENT_ERROR invalid mode for ma M token\r\n"),
            (b"ma n Dx\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n"),
            (b"ma n Jx\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n"),
            (b"ma\r\n", b"ERROR\r\n"),
            (
                b"ma n O12345678901234567890123456789012\r\n",
                b"CLIENT_ERROR opaque token too long\r\n",
            ),
            (b"mg n v\r\n", b"VA 1\r\n9\r\n"),
            (b"ms s 3\r\nabc\r\n", b"HD\r\n"),
            (
                b"ma s\r\n",
                b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
            ),
            // (memcached drops a `T` whose incr lengthens the value: it touches the replaced
            // item. tern keeps it; these steps keep the length.)
            // (A fresh item: memcached 1.6.18 keeps a reference to `n` after the opaque error
            // above, and then replaces the item on every change, losing `T`.)
            (b"ms tt 1\r\n9\r\n", b"HD\r\n"),
            (b"ma tt MD T100 t\r\n", b"HD t{~100}\r\n"),
            (b"ma tt MD t T50\r\n", b"HD t{~100}\r\n"),
            (b"mg tt t v\r\n", b"VA 1 t{~50}\r\n7\r\n"),
            (b"ma nz N100 J5 t v\r\n", b"VA 1 t{~100}\r\n5\r\n"),
            (b"ms w 20\r\n18446744073709551615\r\n", b"HD\r\n"),
            (b"ma w v\r\n", b"VA 1\r\n0\r\n"),
        ],
    ),
    sc(
        "mn_and_me",
        &[
            (b"mn\r\n", b"MN\r\n"),
            (b"me\r\n", b"CLIENT_ERROR bad command line format\r\n"),
            (b"me nope\r\n", b"EN\r\n"),
            (b"ms foo 3 T0\r\nbar\r\n", b"HD\r\n"),
            (
                b"me foo\r\n",
                b"ME foo exp=-1 la={~0} cas={cas} fetch=no cls=1 size=65\r\n",
            ),
            (b"mg foo\r\n", b"HD\r\n"),
            (
                b"me foo x b\r\n",
                b"ME foo exp=-1 la={~0} cas={same} fetch=yes cls=1 size=65\r\n",
            ),
            (b"me foo b\r\n", b"CLIENT_ERROR bad command line format\r\n"),
            (b"ms r2 1 T100 F3\r\nx\r\n", b"HD\r\n"),
            (
                b"me r2\r\n",
                b"ME r2 exp=-{~100} la={~0} cas={cas} fetch=no cls=1 size=66\r\n",
            ),
            (
                b"ms big 60\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n",
                b"HD\r\n",
            ),
            (
                b"me big\r\n",
                b"ME big exp=-1 la={~0} cas={cas} fetch=no cls=3 size=122\r\n",
            ),
        ],
    ),
    sc(
        "base64_keys",
        &[
            (b"ms Zm9v 3 b k c\r\nbaz\r\n", b"HD kZm9v b c{cas}\r\n"),
            (b"mg foo v k\r\n", b"VA 3 kZm9v b\r\nbaz\r\n"),
            (b"mg Zm9v b v k c\r\n", b"VA 3 kZm9v b c{same}\r\nbaz\r\n"),
            (b"mg Zm-9v b k\r\n", b"HD kZm9v b\r\n"),
            (b"mg Zm=9v b k\r\n", b"CLIENT_ERROR error decoding key\r\n"),
            (b"mg Zg==Zm9v b k\r\n", b"EN kZg== b\r\n"),
            (b"mg Z=== b k\r\n", b"CLIENT_ERROR error decoding key\r\n"),
            (b"mg bm9uZQ== b k O1 v\r\n", b"EN kbm9uZQ== b O1\r\n"),
            (b"get foo\r\n", b"VALUE foo 0 3\r\nbaz\r\nEND\r\n"),
            (
                b"me Zm9v b\r\n",
                b"ME Zm9v exp=-1 la={~0} cas={same} fetch=yes cls=1 size=65\r\n",
            ),
            (b"ma Zm9v b\r\n", b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"),
            (b"md Zm9v b k q\r\nmd Zm9v b k q\r\nmn\r\n", b"NF kZm9v b\r\nMN\r\n"),
            (b"me Zm9v b\r\n", b"EN\r\n"),
            (b"ms AAEC 2 b\r\nhi\r\n", b"HD\r\n"),
            (b"mg AAEC b v k s\r\n", b"VA 2 kAAEC b s2\r\nhi\r\n"),
            (b"ma bnVt b N0 J4 v k\r\n", b"VA 1 kbnVt b\r\n4\r\n"),
            (b"mg num v\r\n", b"VA 1\r\n4\r\n"),
        ],
    ),
    sc(
        "meta_and_classic_share_items",
        &[
            (b"set a 5 0 3\r\nabc\r\n", b"STORED\r\n"),
            (b"gets a\r\n", b"VALUE a 5 3 {cas}\r\nabc\r\nEND\r\n"),
            (b"mg a v c f\r\n", b"VA 3 c{same} f5\r\nabc\r\n"),
            (b"ms a 3 F9 c\r\nxyz\r\n", b"HD c{cas}\r\n"),
            (b"gets a\r\n", b"VALUE a 9 3 {same}\r\nxyz\r\nEND\r\n"),
            (b"cas a 1 0 1 {cas}\r\nq\r\n", b"STORED\r\n"),
            (b"mg a v f c\r\n", b"VA 1 f1 c{cas}\r\nq\r\n"),
            (b"ms a 1 C{cas} c\r\nr\r\n", b"HD c{cas}\r\n"),
            (b"gets a\r\n", b"VALUE a 0 1 {same}\r\nr\r\nEND\r\n"),
            (b"set n 0 0 1\r\n5\r\n", b"STORED\r\n"),
            (b"ma n v\r\n", b"VA 1\r\n6\r\n"),
            (b"incr n 1\r\n", b"7\r\n"),
            (b"mg n v\r\n", b"VA 1\r\n7\r\n"),
            (b"delete n\r\n", b"DELETED\r\n"),
            (b"md n\r\n", b"NF\r\n"),
            (b"touch a 100\r\n", b"TOUCHED\r\n"),
            (b"mg a t\r\n", b"HD t{~100}\r\n"),
            (b"ms a 1 T0\r\nz\r\n", b"HD\r\n"),
            (b"gat 50 a\r\n", b"VALUE a 0 1\r\nz\r\nEND\r\n"),
            (b"mg a t\r\n", b"HD t{~50}\r\n"),
            (b"md a I\r\n", b"HD\r\n"),
            (b"get a\r\n", b"VALUE a 0 1\r\nz\r\nEND\r\n"),
            (b"set a 0 0 1\r\ny\r\n", b"STORED\r\n"),
            (b"mg a v\r\n", b"VA 1\r\ny\r\n"),
        ],
    ),
];

/// Matches `reply` against `pattern`, handling the placeholders; returns the new CAS capture.
fn matches(pattern: &str, reply: &str, last: Option<u64>) -> Result<Option<u64>, String> {
    let mut captured = last;
    let (mut p, mut r) = (pattern, reply);
    let fail = || format!("expected {pattern:?}, got {reply:?}");
    loop {
        let Some(at) = p.find('{') else {
            return if p == r { Ok(captured) } else { Err(fail()) };
        };
        if !r.starts_with(&p[..at]) {
            return Err(fail());
        }
        r = &r[at..];
        let close = at + p[at..].find('}').expect("unclosed placeholder");
        let placeholder = &p[at + 1..close];
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        let value: u64 = r[..digits].parse().map_err(|_| fail())?;
        if let Some(n) = placeholder.strip_prefix('~') {
            let n: u64 = n.parse().unwrap();
            if value + 2 < n || value > n + 2 {
                return Err(format!("{value} is not about {n}: {}", fail()));
            }
        } else if placeholder == "same" {
            if Some(value) != captured {
                return Err(format!("CAS {value}, was {captured:?}: {}", fail()));
            }
        } else {
            if Some(value) == captured {
                return Err(format!("CAS {value} did not change: {}", fail()));
            }
            captured = Some(value);
        }
        p = &p[close + 1..];
        r = &r[digits..];
    }
}

/// Reads until the bytes read match `pattern` (every pattern ends in `\r\n`, so a partial
/// reply never matches), then checks nothing more follows.
fn read_matching(
    client: &mut Client,
    pattern: &str,
    cas: Option<u64>,
) -> Result<Option<u64>, String> {
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = std::time::Instant::now() + common::REPLY_TIMEOUT;
    client
        .stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    loop {
        let text = String::from_utf8_lossy(&got);
        if let Ok(c) = matches(pattern, &text, cas) {
            return Ok(c);
        }
        if std::time::Instant::now() > deadline {
            return matches(pattern, &text, cas);
        }
        match client.stream.read(&mut buf) {
            Ok(0) => return matches(pattern, &String::from_utf8_lossy(&got), cas),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
}

fn run(scenario: &Scenario, mut client: Client) {
    eprintln!("scenario {}", scenario.name);
    let mut cas: Option<u64> = None;
    for (send, expect) in scenario.steps {
        let send = String::from_utf8_lossy(send)
            .replace("{cas}", &cas.unwrap_or(0).to_string())
            .into_bytes();
        let pattern = std::str::from_utf8(expect).unwrap();
        client.send(&send);
        match read_matching(&mut client, pattern, cas) {
            Ok(c) => cas = c,
            Err(e) => panic!(
                "{}: {:?}: {e}",
                scenario.name,
                String::from_utf8_lossy(&send)
            ),
        }
    }
    let extra = client.read_available();
    assert!(extra.is_empty(), "{}: extra bytes {extra:?}", scenario.name);
}

#[test]
fn scenarios_match_memcached_bytes() {
    for scenario in SCENARIOS {
        let tern = Tern::start();
        run(scenario, tern.connect());
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
        run(scenario, Client::connect(mc.addr));
    }
}

/// Every scenario's bytes, split in two at every byte boundary, get the same replies: the
/// server must never depend on where reads happen to end. (Scenarios whose requests carry a
/// captured CAS are covered whole above.)
#[test]
fn every_scenario_split_at_every_byte_boundary() {
    let mut splits = 0;
    for scenario in SCENARIOS {
        if scenario.steps.iter().any(|(s, _)| s.contains(&b'{')) {
            continue;
        }
        let send: Vec<u8> = scenario
            .steps
            .iter()
            .flat_map(|(s, _)| s.to_vec())
            .collect();
        let expect: String = scenario
            .steps
            .iter()
            .map(|(_, e)| std::str::from_utf8(e).unwrap())
            .collect();
        let tern = Tern::start_with(|s| s.threads = 1);
        let mut control = tern.connect();
        for at in 1..send.len() {
            // A clean slate for each run: flush_all drops what the previous run stored.
            control.send(b"flush_all\r\n");
            assert_eq!(control.read_exact_n(4), b"OK\r\n");
            let mut c = tern.connect();
            c.send(&send[..at]);
            std::thread::sleep(Duration::from_micros(300));
            c.send(&send[at..]);
            // One CAS capture spans the whole concatenation, so `{same}` after a `{cas}` of
            // another step still refers to the right one.
            if let Err(e) = read_matching(&mut c, &expect, None) {
                panic!("{} split at {at}: {e}", scenario.name);
            }
            splits += 1;
        }
    }
    assert!(splits > 2000, "only {splits} splits ran");
}

/// Both servers when the differential run is asked for, else tern alone.
fn servers() -> Vec<(
    &'static str,
    Option<Tern>,
    std::net::SocketAddr,
    Option<Memcached>,
)> {
    let tern = Tern::start();
    let addr = tern.addr();
    let mut all = vec![("tern", Some(tern), addr, None)];
    if differential() {
        let mc = Memcached::start(&[]);
        let addr = mc.addr;
        all.push(("memcached", None, addr, Some(mc)));
    }
    all
}

/// `ma` with `T` on an incr that lengthens the value (`99` -> `100`): memcached 1.6.18 links a
/// new item for the longer value and applies `T` to the old one it has just unlinked, so its
/// reply shows the TTL and the stored item has none (the same happens, now and then, when one
/// of its background threads holds the item). tern stores the TTL it reports
/// (docs/protocol.md, deliberate differences), so this runs against tern only.
#[test]
fn ma_ttl_sticks_when_the_value_grows() {
    let tern = Tern::start();
    let mut c = tern.connect();
    c.roundtrip(b"set k 0 0 2\r\n99\r\n", b"STORED\r\n");
    c.send(b"ma k T1000 t v\r\n");
    read_matching(&mut c, "VA 3 t{~1000}\r\n100\r\n", None).unwrap();
    c.send(b"mg k t v\r\n");
    read_matching(&mut c, "VA 3 t{~1000}\r\n100\r\n", None).unwrap();
}

/// An incr that lengthens the value links a new item (memcached's `do_add_delta`): it starts
/// unfetched, not stale, with no win token out and without the base64-key mark, so `mg` by the
/// bare key echoes it bare. One that fits rewrites in place and keeps them.
#[test]
fn ma_growing_the_value_makes_a_new_item() {
    for (name, _tern, addr, _mc) in servers() {
        let mut c = Client::connect(addr);
        c.roundtrip(b"ms Z3I= 1 b\r\n7\r\n", b"HD\r\n");
        c.roundtrip(b"mg gr h v\r\n", b"VA 1 h0\r\n7\r\n");
        c.roundtrip(b"md gr I\r\n", b"HD\r\n");
        c.send(b"mg gr k c\r\n");
        let line = c.read_available();
        assert!(
            line.starts_with(b"HD kZ3I= b c") && line.ends_with(b" X W\r\n"),
            "{name}"
        );
        c.roundtrip(b"ma gr D3\r\n", b"HD\r\n");
        c.roundtrip(b"mg Z3I= b h k v\r\n", b"VA 2 h0 kgr\r\n10\r\n");
        c.roundtrip(b"mg gr h v\r\n", b"VA 2 h1\r\n10\r\n");
    }
    // In place (`10` -> `13`): still fetched. Against tern only: memcached rewrites in place
    // only while no background thread of its holds the item.
    let tern = Tern::start();
    let mut c = tern.connect();
    c.roundtrip(b"set ip 0 0 2\r\n10\r\n", b"STORED\r\n");
    c.roundtrip(b"mg ip v\r\n", b"VA 2\r\n10\r\n");
    c.roundtrip(b"ma ip D3\r\n", b"HD\r\n");
    c.roundtrip(b"mg ip h v\r\n", b"VA 2 h1\r\n13\r\n");
}

/// A key that holds a space or a newline is echoed base64 with `b` even when it lost the
/// base64 mark (grown by `ma`): memcached prints it bare, which breaks its reply's framing.
#[test]
fn a_key_that_cannot_be_printed_bare_is_echoed_base64() {
    let tern = Tern::start();
    let mut c = tern.connect();
    // " a\n" in base64.
    c.roundtrip(b"ms IGEK 1 b\r\n7\r\n", b"HD\r\n");
    c.roundtrip(b"ma IGEK b D3\r\n", b"HD\r\n");
    c.roundtrip(b"mg IGEK b k v\r\n", b"VA 2 kIGEK b\r\n10\r\n");
    c.send(b"me IGEK b\r\n");
    assert!(c.read_available().starts_with(b"ME IGEK exp=-1 "));
}

/// An `ms` over the item size limit: `SERVER_ERROR object too large for cache`, its data is
/// swallowed, the key's old value is gone (memcached unlinks it), `store_too_large` counts it
/// and `cmd_set` does not; the connection goes on.
#[test]
fn ms_too_large_swallows_data_and_unlinks_the_old_item() {
    for (name, _tern, addr, _mc) in servers() {
        let mut c = Client::connect(addr);
        c.roundtrip(b"ms big 3\r\nbar\r\n", b"HD\r\n");
        let before = c.stats("");
        let mut req = b"ms big 2000000 T0 k O5\r\n".to_vec();
        req.extend(std::iter::repeat_n(b'x', 2_000_000));
        req.extend_from_slice(b"\r\nmn\r\nmg big v\r\n");
        c.send(&req);
        c.expect(b"SERVER_ERROR object too large for cache\r\nMN\r\nEN\r\n");
        let after = c.stats("");
        let delta = |k: &str| {
            let v = |s: &[(String, String)]| stat_value(s, k).unwrap().parse::<u64>().unwrap();
            v(&after) - v(&before)
        };
        assert_eq!(delta("store_too_large"), 1, "{name}");
        assert_eq!(delta("cmd_set"), 0, "{name}");
        // A base64 key and the add mode unlink too.
        c.roundtrip(b"ms Zm9v 3 b\r\nbar\r\n", b"HD\r\n");
        let mut req = b"ms Zm9v 2000000 b ME\r\n".to_vec();
        req.extend(std::iter::repeat_n(b'x', 2_000_000));
        req.extend_from_slice(b"\r\nmg foo v\r\n");
        c.send(&req);
        c.expect(b"SERVER_ERROR object too large for cache\r\nEN\r\n");
    }
}

/// The counters each meta command bumps, as memcached 1.6.18 bumps them (checked against it
/// in the differential run).
#[test]
fn stats_count_meta_commands_as_memcached() {
    const COUNTERS: &[&str] = &[
        "cmd_get",
        "cmd_set",
        "cmd_touch",
        "cmd_meta",
        "get_hits",
        "get_misses",
        "touch_hits",
        "touch_misses",
        "delete_hits",
        "delete_misses",
        "incr_hits",
        "incr_misses",
        "decr_hits",
        "decr_misses",
        "cas_hits",
        "cas_misses",
        "cas_badval",
        "store_too_large",
        "total_items",
    ];
    // Each step, with the counters it must change (by one), all others unchanged.
    let steps: &[(&[u8], &[u8], &[&str])] = &[
        (
            b"ms s1 3 T100\r\nabc\r\n",
            b"HD\r\n",
            &["cmd_set", "total_items"],
        ),
        (b"md s1 I T30 q\r\nmn\r\n", b"MN\r\n", &[]),
        (b"mg s1 s\r\n", b"HD s3 X W\r\n", &["cmd_get", "get_hits"]),
        (b"mg s1 s q\r\n", b"HD s3 Z X\r\n", &["cmd_get", "get_hits"]),
        (
            b"mg s1 T20\r\n",
            b"HD Z X\r\n",
            &["cmd_touch", "touch_hits"],
        ),
        (b"mg zz T20\r\n", b"EN\r\n", &["cmd_get", "get_misses"]),
        (b"mg zz q\r\nmn\r\n", b"MN\r\n", &["cmd_get", "get_misses"]),
        (
            b"mg nov N30\r\n",
            b"HD W\r\n",
            &["cmd_get", "get_hits", "total_items"],
        ),
        (
            b"ms s1 3 C1 I\r\nnew\r\n",
            b"HD\r\n",
            &["cmd_set", "cas_hits", "total_items"],
        ),
        (
            b"ms s1 3 C999999\r\nnew\r\n",
            b"EX\r\n",
            &["cmd_set", "cas_badval"],
        ),
        (
            b"ms s9 3 C5\r\nnew\r\n",
            b"NF\r\n",
            &["cmd_set", "cas_misses"],
        ),
        (b"ms s1 3 ME\r\nnew\r\n", b"NS\r\n", &["cmd_set"]),
        (
            b"ms n 2\r\n10x\r\n",
            b"CLIENT_ERROR bad data chunk\r\nERROR\r\n",
            &["cmd_set"],
        ),
        (b"ms n 2\r\n10\r\n", b"HD\r\n", &["cmd_set", "total_items"]),
        (b"ma n\r\n", b"HD\r\n", &["incr_hits"]),
        (b"ma n MD\r\n", b"HD\r\n", &["decr_hits"]),
        (b"ma zz\r\n", b"NF\r\n", &["incr_misses"]),
        (b"ma zz MD\r\n", b"NF\r\n", &["decr_misses"]),
        (b"ma n C1\r\n", b"EX\r\n", &[]),
        (b"ma nn N0\r\n", b"HD\r\n", &["total_items"]),
        (b"md n C1\r\n", b"EX\r\n", &["delete_misses"]),
        (b"md n\r\n", b"HD\r\n", &["delete_hits"]),
        (b"md n q\r\nmn\r\n", b"NF\r\nMN\r\n", &["delete_misses"]),
        (b"md nn I\r\n", b"HD\r\n", &[]),
        (b"me s1\r\n", b"", &["cmd_meta"]),
        (b"me zz\r\n", b"EN\r\n", &["cmd_meta"]),
        (b"mn\r\n", b"MN\r\n", &[]),
    ];
    for (name, _tern, addr, _mc) in servers() {
        let mut c = Client::connect(addr);
        for (send, expect, bumped) in steps {
            let before = c.stats("");
            c.send(send);
            if expect.is_empty() {
                let got = c.read_available();
                assert!(got.starts_with(b"ME s1 "), "{name}: {got:?}");
            } else {
                c.expect(expect);
            }
            let after = c.stats("");
            for counter in COUNTERS {
                let v = |s: &[(String, String)]| {
                    stat_value(s, counter).unwrap().parse::<u64>().unwrap()
                };
                let want = u64::from(bumped.contains(counter));
                assert_eq!(
                    v(&after) - v(&before),
                    want,
                    "{name}: {counter} after {:?}",
                    String::from_utf8_lossy(send)
                );
            }
        }
    }
}

/// Races `clients` connections, each sending `request` once at the same moment, and returns
/// their replies.
fn race(addr: std::net::SocketAddr, clients: usize, request: &'static [u8]) -> Vec<String> {
    let barrier = Arc::new(Barrier::new(clients));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                barrier.wait();
                c.send(request);
                let mut reply = Vec::new();
                while !reply.ends_with(b"\r\n") {
                    reply.extend(c.read_exact_n(1));
                }
                String::from_utf8(reply).unwrap()
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// Stale-while-revalidate over TCP with many connections: per round exactly one client wins
/// (`W`), every other sees `Z` until the winner's `ms` lands; the same for `N` (vivify on a
/// miss) and `R` (recache before expiry).
#[test]
fn win_token_race_has_exactly_one_winner() {
    const CLIENTS: usize = 16;
    let tern = Tern::start_with(|s| s.threads = 4);
    let mut c = tern.connect();
    for round in 0..20 {
        // Invalidation: stale, one winner.
        c.roundtrip(b"ms k 1 T100\r\nx\r\n", b"HD\r\n");
        c.roundtrip(b"md k I\r\n", b"HD\r\n");
        let replies = race(tern.addr(), CLIENTS, b"mg k c\r\n");
        let winners = replies.iter().filter(|r| r.ends_with(" X W\r\n")).count();
        let waiting = replies.iter().filter(|r| r.ends_with(" Z X\r\n")).count();
        assert_eq!(
            (winners, waiting),
            (1, CLIENTS - 1),
            "round {round}: {replies:?}"
        );
        // Still no second win until the winner stores.
        c.roundtrip(b"mg k\r\n", b"HD Z X\r\n");
        c.roundtrip(b"ms k 1\r\ny\r\n", b"HD\r\n");
        c.roundtrip(b"mg k v\r\n", b"VA 1\r\ny\r\n");

        // Vivify on a miss: one creator wins, the others see the empty item with Z.
        c.roundtrip(b"md v\r\n", b"NF\r\n");
        let replies = race(tern.addr(), CLIENTS, b"mg v N30 s\r\n");
        let winners = replies.iter().filter(|r| *r == "HD s0 W\r\n").count();
        let waiting = replies.iter().filter(|r| *r == "HD s0 Z\r\n").count();
        assert_eq!(
            (winners, waiting),
            (1, CLIENTS - 1),
            "round {round}: {replies:?}"
        );
        c.roundtrip(b"ms v 2\r\nok\r\n", b"HD\r\n");
        c.roundtrip(b"mg v N30 v\r\n", b"VA 2\r\nok\r\n");
        c.roundtrip(b"md v q\r\n", b"");

        // Recache: the TTL left (100) is below R, one winner.
        c.roundtrip(b"ms r 1 T100\r\nx\r\n", b"HD\r\n");
        let replies = race(tern.addr(), CLIENTS, b"mg r R200\r\n");
        let winners = replies.iter().filter(|r| *r == "HD W\r\n").count();
        let waiting = replies.iter().filter(|r| *r == "HD Z\r\n").count();
        assert_eq!(
            (winners, waiting),
            (1, CLIENTS - 1),
            "round {round}: {replies:?}"
        );
        c.roundtrip(b"ms r 1 T100\r\nz\r\n", b"HD\r\n");
        c.roundtrip(b"mg r R50\r\n", b"HD\r\n");
    }
}

/// `-o slab_sizes` lists the slab classes by hand. `me` shows the class memcached makes from
/// the list (each size aligned up to 8 bytes, then its largest class), on both servers; tern's
/// own classes are the listed sizes (already whole-page sizes here) and its largest class.
#[test]
fn listed_slab_sizes_make_the_classes() {
    let tern = Tern::start_with(|s| s.store.slab_sizes = Some(vec![100, 200, 300]));
    let mc = differential().then(|| Memcached::start(&["-o", "slab_sizes=100-200-300"]));
    let addrs = std::iter::once(tern.addr()).chain(mc.as_ref().map(|m| m.addr));
    for addr in addrs {
        let mut c = Client::connect(addr);
        // memcached's sizes: 48 + key + 1 + value + 2 + 8 = 72, 163, 263, 463 bytes.
        for (len, cls) in [(10, 1), (100, 2), (200, 3), (400, 4)] {
            let value = "v".repeat(len);
            c.roundtrip(
                format!("ms k{len} {len}\r\n{value}\r\n").as_bytes(),
                b"HD\r\n",
            );
            c.send(format!("me k{len}\r\n").as_bytes());
            let line = String::from_utf8(c.read_available()).unwrap();
            assert!(line.contains(&format!(" cls={cls} ")), "{addr}: {line}");
        }
    }
    let mut c = tern.connect();
    let chunks: Vec<String> = c
        .stats("slabs")
        .into_iter()
        .filter(|(k, _)| k.ends_with(":chunk_size"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert_eq!(
        chunks,
        [
            "1:chunk_size=100",
            "2:chunk_size=200",
            "3:chunk_size=300",
            "4:chunk_size=4096"
        ]
    );
}
