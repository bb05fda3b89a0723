//! Executes parsed requests against the store.
//!
//! The operations (`*_op`) are protocol-neutral: each calls the store, bumps the worker's
//! counters as memcached counts them, and returns the shared [`Response`] (with the item's new
//! CAS where the binary protocol reports it). [`execute`] composes them into text replies;
//! `super::binary` composes the same operations into binary packets. Store closures copy item
//! bytes into the output buffer, so nothing here holds a store lock once a function returns.

use tern_protocol::text;
use tern_protocol::{
    ArithRequest, ErrorReply, GetRequest, Request, Response, StatsGroup, StoreMode, StoreRequest,
};

use super::stats::ThreadStats;
use super::Shared;
use crate::store::{ArithOutcome, DeleteOutcome, ItemView, Lookup, SetMode, StoreOutcome};

/// What the connection does after a request has been executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Go on with the next request.
    Continue,
    /// Discard this many bytes of input, then go on.
    Swallow(usize),
    /// Send what is buffered, then close (`quit`).
    Close,
}

/// What a request needs from its connection and worker.
pub struct Ctx<'a> {
    /// State shared by every thread.
    pub shared: &'a Shared,
    /// This worker's counters.
    pub stats: &'a ThreadStats,
    /// The connection's output buffer.
    pub out: &'a mut Vec<u8>,
}

impl Ctx<'_> {
    /// Writes `response` unless the request asked for no reply.
    fn reply(&mut self, response: Response<'_>, noreply: bool) {
        if !noreply {
            text::compose(&response, self.out);
        }
    }
}

/// Maps the protocol's storage mode to the store's.
pub fn set_mode(mode: StoreMode) -> SetMode {
    match mode {
        StoreMode::Set => SetMode::Set,
        StoreMode::Add => SetMode::Add,
        StoreMode::Replace => SetMode::Replace,
        StoreMode::Append => SetMode::Append,
        StoreMode::Prepend => SetMode::Prepend,
        StoreMode::Cas => SetMode::Cas,
    }
}

/// A storage command: the reply and, when stored, the item's new CAS unique.
pub fn store_op(req: &StoreRequest<'_>, cx: &Ctx<'_>) -> (Response<'static>, u64) {
    cx.stats.cmd_set.incr();
    let (outcome, cas) = cx.shared.store.store_with_cas(
        set_mode(req.mode),
        req.key,
        req.flags,
        req.exptime,
        req.value,
        req.cas,
    );
    if req.mode == StoreMode::Cas {
        match outcome {
            StoreOutcome::Stored => cx.stats.cas_hits.incr(),
            StoreOutcome::Exists => cx.stats.cas_badval.incr(),
            StoreOutcome::NotFound => cx.stats.cas_misses.incr(),
            _ => {}
        }
    }
    let response = match outcome {
        StoreOutcome::Stored => Response::Stored,
        StoreOutcome::NotStored => Response::NotStored,
        StoreOutcome::Exists => Response::Exists,
        StoreOutcome::NotFound => Response::NotFound,
        StoreOutcome::TooLarge => {
            cx.stats.store_too_large.incr();
            Response::Error(ErrorReply::TooLarge)
        }
        StoreOutcome::OutOfMemory => {
            cx.stats.store_no_memory.incr();
            Response::OutOfMemory
        }
    };
    (response, cas)
}

/// A storage command whose item cannot fit: for `set` the old item is unlinked so no stale
/// value survives (memcached does this in both protocols). `count` bumps `store_too_large`
/// (the text protocol counts it; 1.6.18's binary protocol does not).
pub fn too_large_op(mode: StoreMode, key: &[u8], count: bool, cx: &Ctx<'_>) -> Response<'static> {
    if count {
        cx.stats.store_too_large.incr();
    }
    if mode == StoreMode::Set {
        cx.shared.store.delete(key);
    }
    Response::Error(ErrorReply::TooLarge)
}

/// Deletes `key` (only if its CAS is `cas`, when `cas` is non-zero): `Deleted`, `NotFound` or
/// `Exists`.
pub fn delete_op(key: &[u8], cas: u64, cx: &Ctx<'_>) -> Response<'static> {
    match cx.shared.store.delete_cas(key, cas) {
        DeleteOutcome::Deleted => {
            cx.stats.delete_hits.incr();
            Response::Deleted
        }
        DeleteOutcome::NotFound => {
            cx.stats.delete_misses.incr();
            Response::NotFound
        }
        DeleteOutcome::Exists => Response::Exists,
    }
}

/// incr/decr (only if the item's CAS is `cas`, when non-zero). A non-numeric value answers
/// [`NON_NUMERIC`]; an item created from the binary initial value counts neither a hit nor a
/// miss, as in memcached.
pub fn arith_op(req: &ArithRequest<'_>, cas: u64, cx: &Ctx<'_>) -> Response<'static> {
    let outcome = cx
        .shared
        .store
        .arith_cas(req.key, req.incr, req.delta, req.initial, cas);
    let (hits, misses) = if req.incr {
        (&cx.stats.incr_hits, &cx.stats.incr_misses)
    } else {
        (&cx.stats.decr_hits, &cx.stats.decr_misses)
    };
    match outcome {
        ArithOutcome::Updated { value, cas } => {
            hits.incr();
            Response::Number { value, cas }
        }
        ArithOutcome::Created { value, cas } => Response::Number { value, cas },
        ArithOutcome::NotFound => {
            misses.incr();
            Response::NotFound
        }
        ArithOutcome::Exists => Response::Exists,
        ArithOutcome::NonNumeric => NON_NUMERIC,
        ArithOutcome::OutOfMemory => {
            cx.stats.store_no_memory.incr();
            Response::OutOfMemory
        }
    }
}

/// The reply [`arith_op`] gives for a value that is not a number (text: the `CLIENT_ERROR`
/// line; binary: status 0x06).
pub const NON_NUMERIC: Response<'static> =
    Response::Error(ErrorReply::Other(text::NON_NUMERIC_VALUE));

/// Looks one key up (and touches it when `touch` is given), running `f` on a hit, and counts
/// it as memcached does: `cmd_get`/`get_*` for a plain lookup, `cmd_touch`/`touch_*` for a
/// touch or get-and-touch.
pub fn lookup_op<R>(
    shared: &Shared,
    stats: &ThreadStats,
    key: &[u8],
    touch: Option<i64>,
    f: impl FnOnce(&ItemView<'_>) -> R,
) -> Lookup<R> {
    let store = &shared.store;
    let found = match touch {
        Some(exptime) => store.get_and_touch(key, exptime, f),
        None => store.get(key, f),
    };
    if touch.is_some() {
        stats.cmd_touch.incr();
        if found.is_hit() {
            stats.touch_hits.incr();
        } else {
            stats.touch_misses.incr();
        }
        return found;
    }
    stats.cmd_get.incr();
    match found {
        Lookup::Hit(_) => stats.get_hits.incr(),
        Lookup::Miss => stats.get_misses.incr(),
        Lookup::Expired => {
            stats.get_misses.incr();
            stats.get_expired.incr();
        }
        Lookup::Flushed => {
            stats.get_misses.incr();
            stats.get_flushed.incr();
        }
    }
    found
}

/// `flush_all` / FLUSH: `false` (and nothing done) when `-F` forbids it.
pub fn flush_op(delay: i64, cx: &Ctx<'_>) -> bool {
    if !cx.shared.settings.flush_enabled {
        return false;
    }
    cx.stats.cmd_flush.incr();
    cx.shared.store.flush_all(delay);
    true
}

/// What a stats request yields, for each protocol to compose.
pub enum StatsReply<'a> {
    /// The group's lines, in order.
    Lines(Vec<(String, String)>),
    /// `stats reset` was done.
    Reset,
    /// A group tern does not know (text answers an error, binary `Not found`).
    Unknown(&'a [u8]),
}

/// Collects the lines of a stats group (or resets the counters).
pub fn stats_op<'a>(group: StatsGroup<'a>, cx: &Ctx<'_>) -> StatsReply<'a> {
    StatsReply::Lines(match group {
        StatsGroup::General => cx.shared.general_stats(),
        StatsGroup::Settings => cx.shared.settings_stats(),
        StatsGroup::Items => cx.shared.store.stats_items(),
        StatsGroup::Slabs => cx.shared.store.stats_slabs(),
        StatsGroup::Sizes => cx.shared.store.stats_sizes(),
        StatsGroup::Conns => cx.shared.conns_stats(),
        StatsGroup::Reset => {
            cx.shared.reset_stats();
            return StatsReply::Reset;
        }
        StatsGroup::Other(args) => return StatsReply::Unknown(args),
    })
}

/// Executes one text request.
pub fn execute(request: Request<'_>, cx: &mut Ctx<'_>) -> After {
    match request {
        Request::Get(get) => retrieve(get, cx),
        Request::Store(store) => {
            let (response, _) = store_op(&store, cx);
            cx.reply(response, store.noreply);
        }
        Request::TooLarge {
            mode,
            key,
            swallow,
            noreply,
        } => {
            let response = too_large_op(mode, key, true, cx);
            cx.reply(response, noreply);
            return After::Swallow(swallow);
        }
        Request::Delete { key, noreply } => {
            let response = delete_op(key, 0, cx);
            cx.reply(response, noreply);
        }
        Request::Arith(arith) => {
            let response = arith_op(&arith, 0, cx);
            cx.reply(response, arith.noreply);
        }
        Request::Touch {
            key,
            exptime,
            noreply,
        } => {
            let found = lookup_op(cx.shared, cx.stats, key, Some(exptime), |_| ());
            let response = if found.is_hit() {
                Response::Touched
            } else {
                Response::NotFound
            };
            cx.reply(response, noreply);
        }
        Request::FlushAll { delay, noreply } => {
            let response = if flush_op(delay, cx) {
                Response::Ok
            } else {
                // -F: memcached refuses every flush_all.
                Response::Error(ErrorReply::Other(text::FLUSH_ALL_NOT_ALLOWED))
            };
            cx.reply(response, noreply);
        }
        Request::Version => cx.reply(Response::Version(super::VERSION), false),
        Request::Verbosity { level, noreply } => {
            cx.shared.set_verbosity(level);
            cx.reply(Response::Ok, noreply);
        }
        Request::Quit => return After::Close,
        Request::Shutdown { graceful: _ } => {
            if !cx.shared.settings.allow_shutdown {
                cx.reply(
                    Response::Error(ErrorReply::Other(text::SHUTDOWN_NOT_ENABLED)),
                    false,
                );
            } else {
                cx.shared.request_shutdown();
                return After::Close;
            }
        }
        Request::Stats(group) => stats(group, cx),
        Request::Config(config) => cx.shared.cluster.execute_text(config, cx.out),
        Request::Noop | Request::SaslListMechs | Request::SaslAuth { .. } => {
            cx.reply(Response::Error(ErrorReply::UnknownCommand), false);
        }
    }
    After::Continue
}

fn retrieve(get: GetRequest<'_>, cx: &mut Ctx<'_>) {
    retrieve_from(get, cx, 0, usize::MAX);
}

/// Answers a text retrieval's keys from the `answered`-th on, stopping once this call has
/// written `room` bytes or more (after at least one key, so every call makes progress).
/// Returns `None` when the reply is complete (`END` written), or `Some(keys answered so far)`:
/// call again with that count once the output has drained. A `get` of thousands of 1 MB values
/// is so answered in parts instead of being composed whole into memory.
pub fn retrieve_from(
    get: GetRequest<'_>,
    cx: &mut Ctx<'_>,
    answered: usize,
    room: usize,
) -> Option<usize> {
    let start = cx.out.len();
    // No key here is over 250 bytes: the parser refuses such a line whole, before any lookup.
    for (i, key) in get.keys.enumerate().skip(answered) {
        if i > answered && cx.out.len() - start >= room {
            return Some(i);
        }
        if key == crate::cluster::LEGACY_KEY && get.touch.is_none() {
            // Auto-discovery for engines before 1.4.14; ElastiCache kept it as an item, so a
            // multi-key get answers it in its place among the others.
            cx.stats.cmd_get.incr();
            if cx.shared.cluster.compose_legacy(get.with_cas, cx.out) {
                cx.stats.get_hits.incr();
            } else {
                cx.stats.get_misses.incr();
            }
            continue;
        }
        let out = &mut *cx.out;
        let with_cas = get.with_cas;
        let copy = |item: &ItemView<'_>| {
            let cas = with_cas.then(|| item.cas());
            text::compose_value_header(key, item.flags(), item.value_len(), cas, out);
            for chunk in item.value_chunks() {
                out.extend_from_slice(chunk);
            }
            out.extend_from_slice(b"\r\n");
        };
        lookup_op(cx.shared, cx.stats, key, get.touch, copy);
    }
    text::compose(&Response::End, cx.out);
    None
}

fn stats(group: StatsGroup<'_>, cx: &mut Ctx<'_>) {
    match stats_op(group, cx) {
        StatsReply::Lines(lines) => {
            for (name, value) in &lines {
                text::compose(&Response::Stat { name, value }, cx.out);
            }
            text::compose(&Response::End, cx.out);
        }
        StatsReply::Reset => text::compose(&Response::Reset, cx.out),
        StatsReply::Unknown(args) => {
            let reply = if args.starts_with(b"detail") {
                ErrorReply::Other("CLIENT_ERROR usage: stats detail on|off|dump")
            } else {
                ErrorReply::UnknownCommand
            };
            text::compose(&Response::Error(reply), cx.out);
        }
    }
}
