//! Text codec throughput: parsing `get`, `set` and meta `mg`, composing a `VALUE` reply and a
//! meta `VA` header.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use tern_protocol::meta::{compose_get_hit, HitFacts, MetaRequest};
use tern_protocol::text::{compose, parse};
use tern_protocol::{Limits, Request, Response};

fn parse_get(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("text_parse");
    let single = b"get user:1234567890\r\n".as_slice();
    group.throughput(Throughput::Bytes(single.len() as u64));
    group.bench_function("get_1_key", |b| {
        b.iter(|| parse(black_box(single), &limits).map(|(_, n)| n))
    });

    let mut multi = b"get".to_vec();
    for i in 0..100 {
        multi.extend_from_slice(format!(" user:{i:010}").as_bytes());
    }
    multi.extend_from_slice(b"\r\n");
    group.throughput(Throughput::Bytes(multi.len() as u64));
    group.bench_function("get_100_keys", |b| {
        b.iter(|| parse(black_box(&multi), &limits).map(|(_, n)| n))
    });

    for size in [32usize, 4096] {
        let mut set = format!("set user:1234567890 0 3600 {size}\r\n").into_bytes();
        set.extend(std::iter::repeat(b'v').take(size));
        set.extend_from_slice(b"\r\n");
        group.throughput(Throughput::Bytes(set.len() as u64));
        group.bench_function(format!("set_{size}_bytes"), |b| {
            b.iter(|| parse(black_box(&set), &limits).map(|(_, n)| n))
        });
    }
    group.finish();
}

fn meta(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("meta");
    for (name, line) in [
        ("parse_mg_v", &b"mg user:1234567890 v\r\n"[..]),
        (
            "parse_mg_v_c_f_t_q_opaque",
            b"mg user:1234567890 v c f t q O12345\r\n",
        ),
        ("parse_mg_base64", b"mg dXNlcjoxMjM0NTY3ODkw b v\r\n"),
    ] {
        group.throughput(Throughput::Bytes(line.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| parse(black_box(line), &limits).map(|(_, n)| n))
        });
    }
    let line = b"mg user:1234567890 v c f t q O12345\r\n";
    let Ok((Request::Meta(MetaRequest::Get { flags, .. }), _)) = parse(line, &limits) else {
        panic!("mg parses");
    };
    let facts = HitFacts {
        key: b"user:1234567890",
        key_binary: false,
        value_len: 32,
        cas: 123_456_789,
        client_flags: 0,
        ttl: Some(3600),
        touch_ttl: None,
        created: false,
        vivify_ttl: None,
        last_access: 3,
        fetched: true,
        token_sent: false,
        stale: false,
        won: false,
    };
    let mut out = Vec::with_capacity(256);
    group.bench_function("compose_mg_hit_header", |b| {
        b.iter(|| {
            out.clear();
            compose_get_hit(black_box(&flags), black_box(&facts), &mut out).map(|()| out.len())
        })
    });
    group.finish();
}

fn compose_value(c: &mut Criterion) {
    let mut group = c.benchmark_group("text_compose");
    let mut out = Vec::with_capacity(8192);
    for size in [32usize, 4096] {
        let data = vec![b'v'; size];
        let response = Response::Value {
            key: b"user:1234567890",
            flags: 0,
            cas: Some(123_456_789),
            data: &data,
        };
        out.clear();
        compose(&response, &mut out);
        group.throughput(Throughput::Bytes(out.len() as u64));
        group.bench_function(format!("value_{size}_bytes"), |b| {
            b.iter(|| {
                out.clear();
                compose(black_box(&response), &mut out);
                out.len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, parse_get, meta, compose_value);
criterion_main!(benches);
