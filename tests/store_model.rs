//! The store against a simple model (a HashMap with TTL and CAS rules), and under a tiny memory
//! limit where it must stay within budget and never return wrong data.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;
use tern::clock::Clock;
use tern::store::{
    ArithOutcome, ArithRequest, DeleteOutcome, DeleteRequest, GetRequest, Lookup, SetMode,
    SetRequest, Store, StoreConfig, StoreOutcome,
};

#[derive(Debug, Clone)]
enum Op {
    Store(SetMode, u8, u32, i64, Vec<u8>, bool),
    Get(u8),
    Delete(u8),
    Arith(u8, bool, u64),
    Touch(u8, i64),
    Flush,
    FlushIn(u32),
    Advance(u32),
}

/// The CAS a text command sends: only `cas` carries one (append and prepend send none, which
/// this model relies on).
fn text_cas(mode: SetMode, cas: u64) -> u64 {
    match mode {
        SetMode::Append | SetMode::Prepend => 0,
        _ => cas,
    }
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string().into_bytes()),
        (0u64..20).prop_map(|n| n.to_string().into_bytes()),
        proptest::collection::vec(b'a'..=b'z', 0..40),
    ]
}

fn mode() -> impl Strategy<Value = SetMode> {
    prop_oneof![
        Just(SetMode::Set),
        Just(SetMode::Add),
        Just(SetMode::Replace),
        Just(SetMode::Append),
        Just(SetMode::Prepend),
        Just(SetMode::Cas),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (mode(), 0u8..6, 0u32..3, prop_oneof![Just(0i64), 1i64..5, Just(-1i64)], value(), any::<bool>())
            .prop_map(|(m, k, f, e, v, good)| Op::Store(m, k, f, e, v, good)),
        4 => (0u8..6).prop_map(Op::Get),
        1 => (0u8..6).prop_map(Op::Delete),
        2 => (0u8..6, any::<bool>(), prop_oneof![0u64..3, any::<u64>()]).prop_map(|(k, i, d)| Op::Arith(k, i, d)),
        1 => (0u8..6, prop_oneof![Just(0i64), 1i64..5]).prop_map(|(k, e)| Op::Touch(k, e)),
        1 => Just(Op::Flush),
        1 => (1u32..6).prop_map(Op::FlushIn),
        1 => (1u32..4).prop_map(Op::Advance),
    ]
}

#[derive(Debug, Clone)]
struct Entry {
    value: Vec<u8>,
    flags: u32,
    /// Absolute expiry (model seconds), 0 = never.
    expires: u64,
    cas: u64,
}

fn key(k: u8) -> Vec<u8> {
    format!("key:{k}").into_bytes()
}

/// The model's reading of a number: digits up to the first space (like strtoull, which stops
/// there; the generated values have no signs or leading spaces).
fn numeric(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?.split(' ').next()?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn read(s: &Store, k: &[u8]) -> Option<(Vec<u8>, u32, u64)> {
    match s.get(
        &GetRequest {
            key: k,
            touch: None,
            ..Default::default()
        },
        |v| {
            (
                v.value_chunks().flatten().copied().collect(),
                v.flags(),
                v.cas(),
            )
        },
    ) {
        Lookup::Hit(x) => Some(x),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn store_agrees_with_a_model(ops in proptest::collection::vec(op(), 1..120)) {
        let clock = Arc::new(Clock::manual(1_700_000_000));
        let s = Store::new(StoreConfig::default(), clock.clone()).unwrap();
        let mut model: HashMap<u8, Entry> = HashMap::new();
        let mut now: u64 = 100;
        // A delayed flush_all's moment: from the first operation at or after it, everything
        // stored before is gone.
        let mut pending_flush: Option<u64> = None;
        for op in ops {
            if pending_flush.is_some_and(|t| now >= t) {
                model.clear();
                pending_flush = None;
            }
            model.retain(|_, e| e.expires == 0 || e.expires > now);
            match op {
                Op::Store(mode, k, flags, exptime, value, good_cas) => {
                    let live = model.get(&k).cloned();
                    let cas = match (&live, good_cas) {
                        (Some(e), true) => e.cas,
                        (Some(e), false) => e.cas + 1,
                        (None, _) => 12345,
                    };
                    let got = s.set(&SetRequest { mode, key: &key(k), flags, exptime, value: &value, cas: text_cas(mode, cas), ..Default::default() }).0;
                    let expires = if exptime == 0 { 0 } else if exptime < 0 { now } else { now + exptime as u64 };
                    let want = match (mode, &live) {
                        (SetMode::Add, Some(_)) => StoreOutcome::NotStored,
                        (SetMode::Replace | SetMode::Append | SetMode::Prepend, None) => StoreOutcome::NotStored,
                        (SetMode::Cas, None) => StoreOutcome::NotFound,
                        (SetMode::Cas, Some(_)) if !good_cas => StoreOutcome::Exists,
                        _ => StoreOutcome::Stored,
                    };
                    prop_assert_eq!(got, want, "{:?} {}", mode, k);
                    if got == StoreOutcome::Stored {
                        let entry = match (mode, live) {
                            (SetMode::Append, Some(e)) => Entry { value: [e.value, value].concat(), ..e },
                            (SetMode::Prepend, Some(e)) => Entry { value: [value, e.value].concat(), ..e },
                            _ => Entry { value, flags, expires, cas: 0 },
                        };
                        let (_, _, new_cas) = if entry.expires == 0 || entry.expires > now {
                            read(&s, &key(k)).expect("just stored")
                        } else {
                            (Vec::new(), 0, 0)
                        };
                        if let Some(old) = model.get(&k) {
                            prop_assert_ne!(old.cas, new_cas);
                        }
                        model.insert(k, Entry { cas: new_cas, ..entry });
                    }
                }
                Op::Get(k) => {
                    let got = read(&s, &key(k));
                    let want = model.get(&k).map(|e| (e.value.clone(), e.flags, e.cas));
                    prop_assert_eq!(got, want);
                }
                Op::Delete(k) => {
                    let got = s.delete(&DeleteRequest { key: &key(k), cas: None, ..Default::default() });
                    prop_assert_eq!(got == DeleteOutcome::Deleted, model.remove(&k).is_some());
                }
                Op::Arith(k, incr, delta) => {
                    let got = s.arith(&ArithRequest { key: &key(k), incr, delta, initial: None, cas: 0, ..Default::default() });
                    match model.get_mut(&k) {
                        None => prop_assert_eq!(got, ArithOutcome::NotFound),
                        Some(e) => match numeric(&e.value) {
                            None => prop_assert_eq!(got, ArithOutcome::NonNumeric),
                            Some(old) => {
                                let v = if incr { old.wrapping_add(delta) } else { old.saturating_sub(delta) };
                                let ArithOutcome::Updated { value, cas, .. } = got else {
                                    return Err(TestCaseError::fail(format!("{got:?}")));
                                };
                                prop_assert_eq!(value, v);
                                prop_assert_ne!(cas, e.cas);
                                let mut text = v.to_string().into_bytes();
                                if text.len() < e.value.len() {
                                    text.resize(e.value.len(), b' ');
                                }
                                e.value = text;
                                e.cas = cas;
                            }
                        },
                    }
                }
                Op::Touch(k, exptime) => {
                    let got = s.get(&GetRequest { key: &key(k), touch: Some(exptime), ..Default::default() }, |_| ());
                    match model.get_mut(&k) {
                        None => prop_assert!(!got.is_hit()),
                        Some(e) => {
                            prop_assert!(got.is_hit());
                            e.expires = if exptime == 0 { 0 } else { now + exptime as u64 };
                        }
                    }
                }
                Op::Flush => {
                    s.flush_all(0);
                    model.clear();
                    pending_flush = None;
                }
                // A later flush_all replaces a pending one (its moment not reached yet). With
                // CAS on, memcached's moment is a second before the one named: `flush_all 1`
                // flushes at once.
                Op::FlushIn(d) => {
                    s.flush_all(i64::from(d));
                    if d == 1 {
                        model.clear();
                        pending_flush = None;
                    } else {
                        pending_flush = Some(now + u64::from(d) - 1);
                    }
                }
                Op::Advance(secs) => {
                    clock.advance(secs);
                    now += u64::from(secs);
                    if secs == 3 {
                        s.maintain();
                    }
                }
            }
        }
        if pending_flush.is_some_and(|t| now >= t) {
            model.clear();
        }
        model.retain(|_, e| e.expires == 0 || e.expires > now);
        s.maintain();
        s.maintain();
        prop_assert_eq!(s.stats().curr_items, model.len() as u64);
    }

    #[test]
    fn tiny_store_stays_in_budget_and_never_returns_wrong_data(
        ops in proptest::collection::vec((0u16..400, 0usize..40_000, any::<bool>()), 1..300)
    ) {
        let config = StoreConfig { memory_limit: 1 << 20, item_size_max: 512 * 1024, ..StoreConfig::default() };
        let s = Store::new(config, Arc::new(Clock::manual(1_700_000_000))).unwrap();
        let mut last: HashMap<u16, Vec<u8>> = HashMap::new();
        for (i, (k, len, is_get)) in ops.into_iter().enumerate() {
            let kb = format!("k{k}").into_bytes();
            if is_get {
                if let Some((v, _, _)) = read(&s, &kb) {
                    prop_assert_eq!(Some(&v), last.get(&k), "key {}", k);
                }
            } else {
                // Mostly small values, some large enough to be chained.
                let len = if len % 8 == 0 { len } else { len % 600 };
                let v: Vec<u8> = (0..len).map(|j| (j as u8) ^ (i as u8)).collect();
                match s.set(&SetRequest { mode: SetMode::Set, key: &kb, flags: 0, exptime: 0, value: &v, cas: 0, ..Default::default() }).0 {
                    StoreOutcome::Stored => { last.insert(k, v); }
                    StoreOutcome::OutOfMemory => { last.remove(&k); }
                    other => return Err(TestCaseError::fail(format!("{other:?}"))),
                }
            }
            let st = s.stats();
            prop_assert!(st.total_malloced <= 1 << 20);
            prop_assert!(st.bytes <= 1 << 20);
        }
    }
}
