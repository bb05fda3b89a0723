//! The meta protocol's executor (`mg`, `ms`, `md`, `ma`, `mn`, `me`): runs parsed meta requests
//! on the operations of [`super::ops`] and is the only place that turns their outcomes into meta
//! replies. Meta lines arrive on text connections, so the text executor hands every
//! [`Request::Meta`](tern_protocol::Request::Meta) here, whatever the transport (TCP, Unix
//! socket, UDP).
//!
//! memcached 1.6.18 decides every detail (the reply composers in `tern_protocol::meta` hold
//! the byte layout):
//! - quiet mode (`q`) hides the nominal reply, which one per command: `EN` for `mg`, `HD` for
//!   `ms` and `md`, the `HD`/`VA` of an incr/decr for `ma` (not of an autovivified item);
//!   errors are never hidden, and `mn` answers `MN` so a client knows the pipeline is done;
//! - a too-long opaque of `mg`/`ma` is noticed while writing the reply, after the lookup or the
//!   arithmetic happened, and then replaces it;
//! - base64 keys are decoded into a [`KeyBuf`] on the stack: no request allocates.

use tern_protocol::meta::{
    compose_arith, compose_debug, compose_get_hit, compose_noop, compose_set, compose_status,
    ArithFacts, DebugFacts, HitFacts, KeyBuf, MetaError, MetaFlags, MetaKey, MetaRequest, Status,
    DECODED_KEY_MAX,
};
use tern_protocol::{text, ErrorReply, ReplyMode, Response, StoreMode, ITEM_HEADER_SIZE};

use super::ops::{
    meta_arith_op, meta_debug_op, meta_delete_op, meta_get_op, set_mode, set_op, too_large_op,
    After, Ctx, DeleteOutcome, StoreOutcome,
};
use crate::clock::Clock;
use crate::store::{self, ItemView, Lookup};

/// Executes one meta request, appending its reply (if any) to `cx.out`.
pub fn execute(request: MetaRequest<'_>, cx: &mut Ctx<'_>) -> After {
    // A base64 key is decoded onto the stack; a plain one is used in place (the buffer is
    // then never written, not even zeroed).
    let mut buf: KeyBuf;
    let raw = request.key();
    let k: &[u8] = match &raw {
        Some(key) if key.is_binary() => {
            buf = [0; DECODED_KEY_MAX];
            key.bytes(&mut buf)
        }
        Some(key) => key.raw(),
        None => b"",
    };
    // `q`: the command's nominal reply is uninteresting and hidden; errors always show.
    let reply = request.reply_mode();
    match request {
        MetaRequest::Get { key, flags } => get(&key, k, &flags, reply, cx),
        MetaRequest::Set {
            key,
            flags,
            value,
            mode,
        } => set(&key, k, &flags, value, mode, reply, cx),
        MetaRequest::SetTooLarge { swallow, .. } => {
            // memcached unlinks the key's item whatever the mode, so no stale value survives.
            too_large_op(StoreMode::Set, k, true, cx);
            error(ErrorReply::TooLarge, cx.out);
            return After::Swallow(swallow);
        }
        MetaRequest::Delete { key, flags } => delete(&key, k, &flags, reply, cx),
        MetaRequest::Arith { key, flags, incr } => arith(&key, k, &flags, incr, reply, cx),
        MetaRequest::Noop => compose_noop(cx.out),
        MetaRequest::Debug { .. } => debug(k, cx),
    }
    After::Continue
}

/// Executes an `mg` whose key is plain (not base64), as [`execute`] would: the quick path of
/// a run of `mg` lines, which the connection reads with `tern_protocol::meta::quick_get`.
pub fn execute_plain_get(key: &MetaKey<'_>, flags: &MetaFlags<'_>, cx: &mut Ctx<'_>) {
    debug_assert!(!key.is_binary());
    get(
        key,
        key.raw(),
        flags,
        ReplyMode::from_quiet(flags.quiet),
        cx,
    );
}

fn error(reply: ErrorReply, out: &mut Vec<u8>) {
    text::compose(&Response::Error(reply), out);
}

fn meta_error(e: MetaError, out: &mut Vec<u8>) {
    error(ErrorReply::Meta(e), out);
}

/// The TTL left (composers' form) of an exptime set now, as the client sent it: a created
/// item's `N` or `T`, for the `t` that follows it.
fn ttl_set_now(clock: &Clock, exptime: Option<i32>) -> Option<u32> {
    match exptime {
        None | Some(0) => None,
        Some(e) => Some(clock.realtime(i64::from(e)).wrapping_sub(clock.now())),
    }
}

/// A TTL left as the store reports it (-1: none) in the composers' form: memcached prints
/// `exptime - now` as an unsigned 32-bit number.
fn ttl32(ttl: i64) -> Option<u32> {
    (ttl != -1).then_some(ttl as u32)
}

/// `mg`: a lookup taking part in stale-while-revalidate (win tokens), vivifying on a miss with
/// `N`, touching with `T`; the reply is written inside the store closure, straight from the item.
fn get(key: &MetaKey<'_>, k: &[u8], flags: &MetaFlags<'_>, mode: ReplyMode, cx: &mut Ctx<'_>) {
    let req = store::GetRequest {
        key: k,
        touch: flags.ttl.map(i64::from),
        no_bump: flags.no_bump,
        win_tokens: true,
        vivify: flags.vivify.map(i64::from),
        vivify_last: flags.comes_after(b'N', b'T'),
        recache: flags.recache.map(i64::from),
        recache_after_touch: flags.comes_after(b'R', b'T'),
    };
    let mark = cx.out.len();
    let out = &mut *cx.out;
    let clock = &cx.shared.clock;
    let write_hit = |item: &ItemView<'_>| {
        let created = item.created();
        let facts = HitFacts {
            key: item.key(),
            key_binary: item.key_binary(),
            value_len: item.value_len(),
            cas: item.cas(),
            client_flags: item.flags(),
            // memcached creates the item without an exptime and applies `N` and `T` when the
            // reply reaches their tokens; the store applied them already, and `T` not at all
            // to an item it created when `N` comes after it.
            ttl: if created {
                None
            } else {
                ttl32(item.ttl_before_touch())
            },
            touch_ttl: if created && req.vivify_last {
                ttl_set_now(clock, flags.ttl)
            } else {
                ttl32(item.ttl())
            },
            created,
            vivify_ttl: if created {
                ttl32(item.ttl_before_touch())
            } else {
                None
            },
            last_access: item.last_access(),
            fetched: item.fetched(),
            token_sent: item.token_already_sent(),
            stale: item.stale(),
            won: item.won(),
        };
        compose_get_hit(flags, &facts, out)?;
        if flags.return_value {
            for chunk in item.value_chunks() {
                out.extend_from_slice(chunk);
            }
            out.extend_from_slice(b"\r\n");
        }
        Ok(())
    };
    match meta_get_op(cx.shared, cx.stats, &req, write_hit) {
        Lookup::Hit(Ok(_)) => {}
        Lookup::Hit(Err(e)) => meta_error(e, cx.out),
        // A miss, or a vivify that found no memory (memcached then answers the miss).
        _ => match compose_status(Status::En, key, flags, cx.out) {
            Ok(()) if !mode.shows(true) => cx.out.truncate(mark),
            Ok(()) => {}
            Err(e) => meta_error(e, cx.out),
        },
    }
}

/// `ms`: a storage command; `q` hides `HD` only.
fn set(
    key: &MetaKey<'_>,
    k: &[u8],
    flags: &MetaFlags<'_>,
    value: &[u8],
    mode: StoreMode,
    reply: ReplyMode,
    cx: &mut Ctx<'_>,
) {
    // `C` turned set/replace into cas (the parser did that); append and prepend compare it
    // too, add ignores it (memcached's `do_store_item`).
    let cas = match mode {
        StoreMode::Cas | StoreMode::Append | StoreMode::Prepend => flags.compare_cas.unwrap_or(0),
        _ => 0,
    };
    let req = store::SetRequest {
        mode: set_mode(mode),
        key: k,
        flags: flags.client_flags.unwrap_or(0),
        exptime: flags.ttl.map_or(0, i64::from),
        value,
        cas,
        invalidate: flags.invalidate,
        key_binary: key.is_binary(),
    };
    let (status, cas) = match set_op(&req, cx) {
        StoreOutcome::Stored { .. } if !reply.shows(true) => return,
        StoreOutcome::Stored { cas } => (Status::Hd, cas),
        StoreOutcome::NotStored => (Status::Ns, 0),
        StoreOutcome::Exists => (Status::Ex, 0),
        StoreOutcome::NotFound => (Status::Nf, 0),
        StoreOutcome::TooLarge => return error(ErrorReply::TooLarge, cx.out),
        StoreOutcome::OutOfMemory => return text::compose(&Response::OutOfMemory, cx.out),
    };
    compose_set(status, key, flags, cas, cx.out);
}

/// `md`: delete, or with `I` mark stale; `q` hides `HD` only.
fn delete(key: &MetaKey<'_>, k: &[u8], flags: &MetaFlags<'_>, mode: ReplyMode, cx: &mut Ctx<'_>) {
    let req = store::DeleteRequest {
        key: k,
        cas: flags.compare_cas,
        invalidate: flags.invalidate,
        stale_exptime: flags.ttl.map(i64::from).filter(|_| flags.invalidate),
    };
    let status = match meta_delete_op(&req, cx) {
        DeleteOutcome::Deleted if !mode.shows(true) => return,
        DeleteOutcome::Deleted => Status::Hd,
        DeleteOutcome::NotFound => Status::Nf,
        DeleteOutcome::Exists => Status::Ex,
    };
    if let Err(e) = compose_status(status, key, flags, cx.out) {
        meta_error(e, cx.out);
    }
}

/// `ma`: incr/decr, autovivifying with `N`; `q` hides the reply of an incr/decr of an existing
/// item, not that of one it created.
fn arith(
    key: &MetaKey<'_>,
    k: &[u8],
    flags: &MetaFlags<'_>,
    incr: bool,
    mode: ReplyMode,
    cx: &mut Ctx<'_>,
) {
    let req = store::ArithRequest {
        key: k,
        incr,
        delta: flags.delta.unwrap_or(1),
        initial: flags.vivify.map(|_| {
            let exptime = flags.final_exptime(true).map_or(0, i64::from);
            (flags.initial.unwrap_or(0), exptime)
        }),
        cas: flags.compare_cas.unwrap_or(0),
        touch: flags.ttl.map(i64::from),
    };
    let clock = &cx.shared.clock;
    let ttl_of = |exptime: Option<i32>| ttl_set_now(clock, exptime);
    let (facts, created) = match meta_arith_op(&req, cx) {
        store::ArithOutcome::Updated {
            value,
            cas,
            ttl,
            ttl_before,
        } => (
            ArithFacts {
                value,
                cas,
                ttl: ttl32(ttl_before),
                touch_ttl: ttl32(ttl),
                created: false,
                vivify_ttl: None,
            },
            false,
        ),
        store::ArithOutcome::Created { value, cas, .. } => (
            ArithFacts {
                value,
                cas,
                ttl: None,
                touch_ttl: ttl_of(flags.ttl),
                created: true,
                vivify_ttl: ttl_of(flags.vivify),
            },
            true,
        ),
        store::ArithOutcome::NotFound => return arith_status(Status::Nf, key, flags, cx.out),
        store::ArithOutcome::Exists => return arith_status(Status::Ex, key, flags, cx.out),
        store::ArithOutcome::NonNumeric => return error(ErrorReply::NonNumeric, cx.out),
        store::ArithOutcome::OutOfMemory => {
            let e = if flags.vivify.is_some() {
                MetaError::VivifyOutOfMemory
            } else {
                MetaError::ArithOutOfMemory
            };
            return meta_error(e, cx.out);
        }
    };
    let mark = cx.out.len();
    match compose_arith(key, flags, &facts, cx.out) {
        Ok(()) if !mode.shows(!created) => cx.out.truncate(mark),
        Ok(()) => {}
        Err(e) => meta_error(e, cx.out),
    }
}

fn arith_status(status: Status, key: &MetaKey<'_>, flags: &MetaFlags<'_>, out: &mut Vec<u8>) {
    if let Err(e) = compose_status(status, key, flags, out) {
        meta_error(e, out);
    }
}

/// `me`: memcached's debug line, or `EN`.
fn debug(k: &[u8], cx: &mut Ctx<'_>) {
    let config = cx.shared.store.config();
    // memcached's table from its own defaults (`-n 48`, `-f 1.25`) unless given.
    let chunk_min = config.chunk_size_min.unwrap_or(MEMCACHED_CHUNK_SIZE);
    let factor = config.growth_factor.unwrap_or(MEMCACHED_FACTOR);
    let item_size_max = config.item_size_max;
    let cas_len = if cx.shared.limits.cas_enabled { 8 } else { 0 };
    let out = &mut *cx.out;
    let found = meta_debug_op(cx.shared, cx.stats, k, |item| {
        let flags_len = if item.flags() == 0 { 0 } else { 4 };
        let size = ITEM_HEADER_SIZE + item.key().len() + 1 + flags_len + item.value_len() + 2;
        let size = size + cas_len;
        let facts = DebugFacts {
            key: item.key(),
            key_binary: item.key_binary(),
            ttl: ttl32(item.ttl()),
            last_access: item.last_access(),
            cas: item.cas(),
            fetched: item.fetched(),
            class: match &config.slab_sizes {
                Some(sizes) => memcached_listed_class(size, sizes),
                None => memcached_class(size, chunk_min, factor, item_size_max),
            },
            size: size as u64,
        };
        compose_debug(&facts, out);
    });
    if !found.is_hit() {
        cx.out.extend_from_slice(b"EN\r\n");
    }
}

/// memcached's default `-n`: the smallest item's space after its header.
const MEMCACHED_CHUNK_SIZE: usize = 48;
/// memcached's default `-f`: the growth factor between slab classes.
const MEMCACHED_FACTOR: f64 = 1.25;

/// The slab class memcached 1.6.18 would put an item of `total` bytes in (its `slabs_clsid`
/// over the table `slabs_init` builds from `-n`, `-f` and the item size limit): `me` prints
/// memcached's class, not tern's page-snapped one, so clients see the same line.
fn memcached_class(total: usize, chunk_min: usize, factor: f64, item_size_max: usize) -> u32 {
    const ALIGN: usize = 8;
    const MAX_CLASSES: u32 = 64;
    // memcached's slab pages are 1 MiB; its largest chunk is half a page (or half the item
    // limit when that is smaller).
    let chunk_max = (item_size_max.min(1024 * 1024)) / 2;
    let mut size = (ITEM_HEADER_SIZE + chunk_min) as u32;
    let mut class = 1;
    while class < MAX_CLASSES - 1 {
        if f64::from(size) >= chunk_max as f64 / factor {
            break;
        }
        if size as usize % ALIGN != 0 {
            size += (ALIGN - size as usize % ALIGN) as u32;
        }
        if total <= size as usize {
            return class;
        }
        size = (f64::from(size) * factor) as u32;
        class += 1;
    }
    // The largest class (chunk_max; bigger items are chunked into it).
    class
}

/// [`memcached_class`] when the classes are listed by hand (`-o slab_sizes`): memcached makes
/// one class per listed size, aligned up to 8 bytes, then its largest class.
fn memcached_listed_class(total: usize, sizes: &[usize]) -> u32 {
    let fits = sizes.iter().position(|&s| total <= s.next_multiple_of(8));
    fits.unwrap_or(sizes.len()) as u32 + 1
}
