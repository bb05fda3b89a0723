//! Executes parsed requests against the store, composing text-protocol replies.
//!
//! One function per command family; each appends its reply to the connection's output buffer
//! and bumps the worker's counters. Store closures copy item bytes into the output buffer, so
//! nothing here holds a store lock once the function returns.

use tern_protocol::text;
use tern_protocol::{
    ArithRequest, ErrorReply, GetRequest, Request, Response, StatsGroup, StoreMode, StoreRequest,
};

use super::stats::ThreadStats;
use super::Shared;
use crate::store::{ArithOutcome, Lookup, SetMode, StoreOutcome};

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

/// Executes one text request.
pub fn execute(request: Request<'_>, cx: &mut Ctx<'_>) -> After {
    match request {
        Request::Get(get) => retrieve(get, cx),
        Request::Store(store) => store_item(&store, cx),
        Request::TooLarge {
            mode,
            key,
            swallow,
            noreply,
        } => {
            cx.stats.store_too_large.incr();
            // memcached unlinks the old item on a refused `set` so no stale value survives.
            if mode == StoreMode::Set {
                cx.shared.store.delete(key);
            }
            cx.reply(Response::Error(ErrorReply::TooLarge), noreply);
            return After::Swallow(swallow);
        }
        Request::Delete { key, noreply } => {
            let response = if cx.shared.store.delete(key).is_hit() {
                cx.stats.delete_hits.incr();
                Response::Deleted
            } else {
                cx.stats.delete_misses.incr();
                Response::NotFound
            };
            cx.reply(response, noreply);
        }
        Request::Arith(arith) => arithmetic(&arith, cx),
        Request::Touch {
            key,
            exptime,
            noreply,
        } => {
            cx.stats.cmd_touch.incr();
            let response = if cx.shared.store.touch(key, exptime).is_hit() {
                cx.stats.touch_hits.incr();
                Response::Touched
            } else {
                cx.stats.touch_misses.incr();
                Response::NotFound
            };
            cx.reply(response, noreply);
        }
        Request::FlushAll { delay, noreply } => {
            if !cx.shared.settings.flush_enabled {
                // -F: memcached refuses every flush_all.
                cx.reply(
                    Response::Error(ErrorReply::Other(text::FLUSH_ALL_NOT_ALLOWED)),
                    noreply,
                );
                return After::Continue;
            }
            cx.stats.cmd_flush.incr();
            cx.shared.store.flush_all(delay);
            cx.reply(Response::Ok, noreply);
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
    let store = &cx.shared.store;
    // A key over the limit fails the whole command; drop the VALUEs already composed for it.
    let mark = cx.out.len();
    for key in get.keys {
        if key.len() > tern_protocol::KEY_MAX_LENGTH {
            cx.out.truncate(mark);
            text::compose(&Response::Error(ErrorReply::BadCommandLine), cx.out);
            return;
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
        let copy = |item: &crate::store::ItemView<'_>| {
            let cas = with_cas.then(|| item.cas());
            text::compose_value_header(key, item.flags(), item.value_len(), cas, out);
            for chunk in item.value_chunks() {
                out.extend_from_slice(chunk);
            }
            out.extend_from_slice(b"\r\n");
        };
        let found = match get.touch {
            Some(exptime) => store.get_and_touch(key, exptime, copy),
            None => store.get(key, copy),
        };
        match (get.touch.is_some(), found) {
            (true, Lookup::Hit(())) => {
                cx.stats.cmd_touch.incr();
                cx.stats.touch_hits.incr();
            }
            (true, _) => {
                cx.stats.cmd_touch.incr();
                cx.stats.touch_misses.incr();
            }
            (false, lookup) => {
                cx.stats.cmd_get.incr();
                match lookup {
                    Lookup::Hit(()) => cx.stats.get_hits.incr(),
                    Lookup::Miss => cx.stats.get_misses.incr(),
                    Lookup::Expired => {
                        cx.stats.get_misses.incr();
                        cx.stats.get_expired.incr();
                    }
                    Lookup::Flushed => {
                        cx.stats.get_misses.incr();
                        cx.stats.get_flushed.incr();
                    }
                }
            }
        }
    }
    text::compose(&Response::End, cx.out);
}

fn store_item(req: &StoreRequest<'_>, cx: &mut Ctx<'_>) {
    cx.stats.cmd_set.incr();
    let outcome = cx.shared.store.store(
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
    cx.reply(response, req.noreply);
}

fn arithmetic(req: &ArithRequest<'_>, cx: &mut Ctx<'_>) {
    let outcome = cx
        .shared
        .store
        .arith(req.key, req.incr, req.delta, req.initial);
    let (hits, misses) = if req.incr {
        (&cx.stats.incr_hits, &cx.stats.incr_misses)
    } else {
        (&cx.stats.decr_hits, &cx.stats.decr_misses)
    };
    let response = match outcome {
        ArithOutcome::Updated { value, cas } | ArithOutcome::Created { value, cas } => {
            hits.incr();
            Response::Number { value, cas }
        }
        ArithOutcome::NotFound => {
            misses.incr();
            Response::NotFound
        }
        ArithOutcome::NonNumeric => Response::Error(ErrorReply::Other(text::NON_NUMERIC_VALUE)),
        ArithOutcome::OutOfMemory => {
            cx.stats.store_no_memory.incr();
            Response::OutOfMemory
        }
    };
    cx.reply(response, req.noreply);
}

fn stats(group: StatsGroup<'_>, cx: &mut Ctx<'_>) {
    let lines: Vec<(String, String)> = match group {
        StatsGroup::General => cx.shared.general_stats(),
        StatsGroup::Settings => cx.shared.settings_stats(),
        StatsGroup::Items => cx.shared.store.stats_items(),
        StatsGroup::Slabs => cx.shared.store.stats_slabs(),
        StatsGroup::Sizes => cx.shared.store.stats_sizes(),
        StatsGroup::Conns => cx.shared.conns_stats(),
        StatsGroup::Reset => {
            cx.shared.reset_stats();
            text::compose(&Response::Reset, cx.out);
            return;
        }
        StatsGroup::Other(args) => {
            let reply = if args.starts_with(b"detail") {
                ErrorReply::Other("CLIENT_ERROR usage: stats detail on|off|dump")
            } else {
                ErrorReply::UnknownCommand
            };
            text::compose(&Response::Error(reply), cx.out);
            return;
        }
    };
    for (name, value) in &lines {
        text::compose(&Response::Stat { name, value }, cx.out);
    }
    text::compose(&Response::End, cx.out);
}
