//! The store's side of the meta protocol (memcached 1.6.18): hit-before, last access, TTL left,
//! stale items, win tokens (stale / vivify / recache), `ms … I`, `md … I`, `ma` with
//! autovivify and touch, `u`, and the win race between threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use tern::clock::Clock;
use tern::store::{
    ArithOutcome, ArithRequest, DeleteOutcome, DeleteRequest, GetRequest, Lookup, SetMode,
    SetRequest, Store, StoreConfig, StoreOutcome,
};

fn store() -> (Store, Arc<Clock>) {
    let clock = Arc::new(Clock::manual(1_700_000_000));
    let s = Store::new(StoreConfig::default(), clock.clone()).unwrap();
    (s, clock)
}

fn set(s: &Store, key: &[u8], value: &[u8], exptime: i64) -> u64 {
    let (o, cas) = s.set(&SetRequest {
        key,
        value,
        exptime,
        ..Default::default()
    });
    assert_eq!(o, StoreOutcome::Stored);
    cas
}

/// What a meta get reports: (value, cas, ttl, ttl_before, last_access, fetched, stale,
/// token_already_sent, won, created, key_binary).
#[derive(Debug, PartialEq, Clone)]
struct Seen {
    value: Vec<u8>,
    cas: u64,
    ttl: i64,
    ttl_before: i64,
    la: u32,
    hit_before: bool,
    stale: bool,
    z: bool,
    won: bool,
    created: bool,
    key_binary: bool,
}

fn mg(s: &Store, req: &GetRequest<'_>) -> Lookup<Seen> {
    s.get(req, |v| Seen {
        value: v.value_chunks().flatten().copied().collect(),
        cas: v.cas(),
        ttl: v.ttl(),
        ttl_before: v.ttl_before_touch(),
        la: v.last_access(),
        hit_before: v.fetched(),
        stale: v.stale(),
        z: v.token_already_sent(),
        won: v.won(),
        created: v.created(),
        key_binary: v.key_binary(),
    })
}

fn mg_plain(s: &Store, key: &[u8]) -> Seen {
    match mg(
        s,
        &GetRequest {
            key,
            win_tokens: true,
            ..Default::default()
        },
    ) {
        Lookup::Hit(seen) => seen,
        other => panic!("expected a hit, got {other:?}"),
    }
}

#[test]
fn hit_before_and_last_access_are_the_state_before_this_get() {
    let (s, clock) = store();
    set(&s, b"foo", b"bar", 0);
    clock.advance(3);
    let a = mg_plain(&s, b"foo");
    assert!(!a.hit_before);
    assert_eq!(a.la, 3, "seconds since the store");
    assert_eq!(a.ttl, -1);
    clock.advance(5);
    let b = mg_plain(&s, b"foo");
    assert!(b.hit_before);
    assert_eq!(b.la, 5, "seconds since the previous get");
    // A new store clears fetched and restarts the access time.
    set(&s, b"foo", b"baz", 0);
    clock.advance(2);
    let c = mg_plain(&s, b"foo");
    assert!(!c.hit_before);
    assert_eq!(c.la, 2);
}

#[test]
fn no_bump_leaves_fetched_and_access_time_alone() {
    let (s, clock) = store();
    set(&s, b"k", b"v", 0);
    clock.advance(4);
    let req = GetRequest {
        key: b"k",
        no_bump: true,
        ..Default::default()
    };
    for _ in 0..3 {
        let seen = mg(&s, &req);
        assert!(matches!(
            seen,
            Lookup::Hit(Seen {
                hit_before: false,
                la: 4,
                ..
            })
        ));
    }
    let seen = mg_plain(&s, b"k");
    assert!(!seen.hit_before);
    assert_eq!(seen.la, 4);
}

#[test]
fn touch_reports_ttl_before_and_after() {
    let (s, _clock) = store();
    set(&s, b"r2", b"x", 0);
    let seen = mg(
        &s,
        &GetRequest {
            key: b"r2",
            touch: Some(20),
            ..Default::default()
        },
    );
    let Lookup::Hit(seen) = seen else { panic!() };
    assert_eq!((seen.ttl_before, seen.ttl), (-1, 20));
    assert_eq!(mg_plain(&s, b"r2").ttl, 20);
}

#[test]
fn invalidated_item_hands_out_one_win_until_a_store_lands() {
    let (s, clock) = store();
    let cas0 = set(&s, b"s1", b"abc", 100);
    let r = s.delete(&DeleteRequest {
        key: b"s1",
        invalidate: true,
        stale_exptime: Some(30),
        ..Default::default()
    });
    assert_eq!(r, DeleteOutcome::Deleted);
    clock.advance(2);
    let first = mg_plain(&s, b"s1");
    assert!(first.stale && first.won && !first.z);
    assert_eq!(first.value, b"abc");
    assert_eq!(first.ttl, 28);
    assert_ne!(first.cas, cas0, "md I gives a new CAS");
    let second = mg_plain(&s, b"s1");
    assert!(second.stale && !second.won && second.z);
    // ms with I and an older CAS: stored, still stale, token kept, exptime kept.
    let (o, cas1) = s.set(&SetRequest {
        mode: SetMode::Cas,
        key: b"s1",
        value: b"new",
        cas: 1,
        invalidate: true,
        ..Default::default()
    });
    assert_eq!(o, StoreOutcome::Stored);
    let third = mg_plain(&s, b"s1");
    assert_eq!(third.value, b"new");
    assert_eq!(third.cas, cas1);
    assert!(third.stale && third.z && !third.won);
    assert_eq!(third.ttl, 28);
    // A higher CAS than the item's is still EXISTS with I.
    let r = s.set(&SetRequest {
        mode: SetMode::Cas,
        key: b"s1",
        value: b"no",
        cas: cas1 + 1000,
        invalidate: true,
        ..Default::default()
    });
    assert_eq!(r.0, StoreOutcome::Exists);
    // A plain set clears stale and the token.
    set(&s, b"s1", b"fin", 100);
    let fourth = mg_plain(&s, b"s1");
    assert!(!fourth.stale && !fourth.z && !fourth.won);
    // md I clears the token: a new win.
    s.delete(&DeleteRequest {
        key: b"s1",
        invalidate: true,
        ..Default::default()
    });
    assert!(mg_plain(&s, b"s1").won);
    s.delete(&DeleteRequest {
        key: b"s1",
        invalidate: true,
        ..Default::default()
    });
    assert!(mg_plain(&s, b"s1").won);
}

#[test]
fn classic_get_ignores_stale_marks_and_takes_no_token() {
    let (s, _clock) = store();
    set(&s, b"k", b"v", 0);
    s.delete(&DeleteRequest {
        key: b"k",
        invalidate: true,
        ..Default::default()
    });
    let Lookup::Hit(seen) = mg(
        &s,
        &GetRequest {
            key: b"k",
            ..Default::default()
        },
    ) else {
        panic!()
    };
    assert!(seen.stale && !seen.won && !seen.z);
    assert!(
        mg_plain(&s, b"k").won,
        "the classic get did not take the win"
    );
}

#[test]
fn invalidate_without_cas_mode_and_with_equal_cas_is_a_plain_store() {
    let (s, _clock) = store();
    let cas = set(&s, b"k", b"v", 0);
    let (o, _) = s.set(&SetRequest {
        mode: SetMode::Cas,
        key: b"k",
        value: b"w",
        cas,
        invalidate: true,
        ..Default::default()
    });
    assert_eq!(o, StoreOutcome::Stored);
    assert!(!mg_plain(&s, b"k").stale);
}

#[test]
fn vivify_creates_an_empty_item_and_one_win() {
    let (s, clock) = store();
    let req = GetRequest {
        key: b"nov",
        win_tokens: true,
        vivify: Some(30),
        ..Default::default()
    };
    let Lookup::Hit(a) = mg(&s, &req) else {
        panic!()
    };
    assert!(a.created && a.won && !a.z);
    assert_eq!((a.value.as_slice(), a.ttl), (&b""[..], 30));
    clock.advance(1);
    let Lookup::Hit(b) = mg(&s, &req) else {
        panic!()
    };
    assert!(!b.created && !b.won && b.z);
    assert_eq!((b.ttl, b.cas), (29, a.cas));
    set(&s, b"nov", b"ok", 0);
    let c = mg_plain(&s, b"nov");
    assert_eq!(c.value, b"ok");
    assert!(!c.z && !c.won);
    assert_eq!(s.stats().total_items, 2);
}

#[test]
fn recache_wins_once_when_ttl_left_is_below_r() {
    let (s, clock) = store();
    set(&s, b"r1", b"x", 100);
    clock.advance(1);
    let r = |ttl| GetRequest {
        key: b"r1",
        win_tokens: true,
        recache: Some(ttl),
        ..Default::default()
    };
    let Lookup::Hit(a) = mg(&s, &r(30)) else {
        panic!()
    };
    assert!(!a.won && a.ttl == 99);
    let Lookup::Hit(b) = mg(&s, &r(200)) else {
        panic!()
    };
    assert!(b.won && !b.z);
    let Lookup::Hit(c) = mg(&s, &r(200)) else {
        panic!()
    };
    assert!(!c.won && c.z);
    // No exptime: never a recache win.
    set(&s, b"r2", b"x", 0);
    let Lookup::Hit(d) = mg(
        &s,
        &GetRequest {
            key: b"r2",
            win_tokens: true,
            recache: Some(200),
            ..Default::default()
        },
    ) else {
        panic!()
    };
    assert!(!d.won);
}

#[test]
fn key_binary_is_remembered_until_a_plain_store() {
    let (s, _clock) = store();
    s.set(&SetRequest {
        key: b"foo",
        value: b"baz",
        key_binary: true,
        ..Default::default()
    });
    assert!(mg_plain(&s, b"foo").key_binary);
    set(&s, b"foo", b"x", 0);
    assert!(!mg_plain(&s, b"foo").key_binary);
}

#[test]
fn delete_with_cas_and_invalidate() {
    let (s, _clock) = store();
    let cas = set(&s, b"k", b"v", 0);
    let wrong = DeleteRequest {
        key: b"k",
        cas: Some(cas + 1),
        invalidate: true,
        ..Default::default()
    };
    assert_eq!(s.delete(&wrong), DeleteOutcome::Exists);
    assert!(!mg_plain(&s, b"k").stale);
    let right = DeleteRequest {
        key: b"k",
        cas: Some(cas),
        ..Default::default()
    };
    assert_eq!(s.delete(&right), DeleteOutcome::Deleted);
    assert_eq!(s.delete(&right), DeleteOutcome::NotFound);
}

#[test]
fn arith_autovivifies_touches_and_reports_ttl() {
    let (s, clock) = store();
    let r = s.arith(&ArithRequest {
        key: b"n",
        incr: true,
        delta: 1,
        initial: Some((13, 0)),
        ..Default::default()
    });
    assert!(matches!(
        r,
        ArithOutcome::Created {
            value: 13,
            ttl: -1,
            ..
        }
    ));
    clock.advance(1);
    let r = s.arith(&ArithRequest {
        key: b"n",
        incr: false,
        delta: 100,
        touch: Some(50),
        ..Default::default()
    });
    let ArithOutcome::Updated {
        value,
        cas,
        ttl,
        ttl_before,
    } = r
    else {
        panic!("{r:?}")
    };
    assert_eq!((value, ttl, ttl_before), (0, 50, -1));
    assert_eq!(mg_plain(&s, b"n").cas, cas);
    let r = s.arith(&ArithRequest {
        key: b"n",
        incr: true,
        delta: 1,
        cas: cas + 1,
        ..Default::default()
    });
    assert_eq!(r, ArithOutcome::Exists);
}

#[test]
fn stats_items_age_and_evicted_time_are_real() {
    let clock = Arc::new(Clock::manual(1_700_000_000));
    let s = Store::new(
        StoreConfig {
            memory_limit: 4 * 1024 * 1024,
            ..StoreConfig::default()
        },
        clock.clone(),
    )
    .unwrap();
    let value = [b'x'; 100];
    for i in 0..1000u32 {
        set(&s, format!("key:{i}").as_bytes(), &value, 0);
    }
    clock.advance(7);
    let field = |name: &str| -> u64 {
        s.stats_items()
            .iter()
            .find(|(k, _)| k.ends_with(&format!(":{name}")))
            .map(|(_, v)| v.parse().unwrap())
            .unwrap()
    };
    assert_eq!(field("age"), 7);
    let mut i = 1000u32;
    while s.stats().evictions == 0 {
        set(&s, format!("key:{i}").as_bytes(), &value, 0);
        i += 1;
    }
    assert_eq!(field("evicted_time"), 7);
}

/// Many threads race meta gets on a stale item, a vivified miss and a recache-due item; in
/// every round exactly one wins, the rest see the token out, until the winner's store lands.
#[test]
fn exactly_one_thread_wins_each_round() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 50;
    let (s, _clock) = store();
    let s = Arc::new(s);
    for kind in 0..3 {
        for round in 0..ROUNDS {
            let key = format!("race:{kind}:{round}");
            match kind {
                0 => {
                    set(&s, key.as_bytes(), b"v", 0);
                    s.delete(&DeleteRequest {
                        key: key.as_bytes(),
                        invalidate: true,
                        ..Default::default()
                    });
                }
                1 => {}
                _ => {
                    set(&s, key.as_bytes(), b"v", 10);
                }
            }
            let wins = Arc::new(AtomicUsize::new(0));
            let barrier = Arc::new(Barrier::new(THREADS));
            let handles: Vec<_> = (0..THREADS)
                .map(|_| {
                    let (s, wins, barrier, key) =
                        (s.clone(), wins.clone(), barrier.clone(), key.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        for _ in 0..20 {
                            let req = GetRequest {
                                key: key.as_bytes(),
                                win_tokens: true,
                                vivify: (kind == 1).then_some(30),
                                recache: (kind == 2).then_some(60),
                                ..Default::default()
                            };
                            if let Lookup::Hit(seen) = mg(&s, &req) {
                                if seen.won {
                                    assert!(!seen.z);
                                    wins.fetch_add(1, Ordering::SeqCst);
                                } else {
                                    assert!(seen.z, "{seen:?}");
                                }
                            } else {
                                panic!("miss");
                            }
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            assert_eq!(wins.load(Ordering::SeqCst), 1, "kind {kind} round {round}");
            // The winner's store lands: no token, nothing stale, so no more wins (for a
            // recache item, a fresh TTL above R).
            set(&s, key.as_bytes(), b"fresh", 100);
            let seen = mg_plain(&s, key.as_bytes());
            assert!(!seen.z && !seen.won && !seen.stale);
        }
    }
}
