//! The protocol-neutral operations every executor runs.
//!
//! Each operation calls the store (or the cluster config, or the server's shared state), bumps
//! the worker's counters exactly as memcached counts them, and returns a typed outcome of its
//! own ([`StoreOutcome`], [`DeleteOutcome`], [`ArithOutcome`], [`TouchOutcome`], [`StatsReply`],
//! [`ConfigOutcome`], or a typed [`ErrorReply`] refusal), carrying the item's new CAS where a
//! protocol reports it. It writes no reply bytes: `super::text` and `super::binary` `super::meta`
//! are each the only place that turns these outcomes into their protocol's replies. Store
//! closures copy item bytes into the output buffer, so nothing here holds a store lock once a
//! function returns.

use std::sync::Arc;

use tern_protocol::{
    ArithRequest, ConfigRequest, ErrorReply, Response, StatsGroup, StoreMode, StoreRequest,
    WatchEvents,
};

use super::detail::DetailEvent;
use super::logger;
use super::stats::ThreadStats;
use super::Shared;
use crate::cluster::{Cluster, Published, SetError, CONFIG_KEY};
use crate::store::{self, ItemView, Lookup, SetMode};

/// What the connection does after a request has been executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Go on with the next request.
    Continue,
    /// Discard this many bytes of input, then go on.
    Swallow(usize),
    /// Send what is buffered, then close (`quit`).
    Close,
    /// Send what is buffered, then hand the connection to the logger as a `watch` stream.
    Watch(WatchEvents),
}

/// What a request needs from its connection and worker.
pub struct Ctx<'a> {
    /// State shared by every thread.
    pub shared: &'a Shared,
    /// This worker's counters.
    pub stats: &'a ThreadStats,
    /// The connection's output buffer.
    pub out: &'a mut Vec<u8>,
    /// The connection's socket descriptor, as `stats conns` and `watch` lines (`cfd=`) name it
    /// (-1 where there is none: UDP).
    pub fd: i32,
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

/// What a storage command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Stored; the item's new CAS unique.
    Stored {
        /// The new item's CAS unique.
        cas: u64,
    },
    /// Not stored: `add` of an existing key, `replace`/`append`/`prepend` of a missing one.
    NotStored,
    /// `cas` with a CAS unique other than the item's.
    Exists,
    /// `cas` of a missing key.
    NotFound,
    /// The item cannot fit under the item size limit.
    TooLarge,
    /// No memory for the item (`-M`, nothing may be evicted).
    OutOfMemory,
}

/// What a delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The item was removed.
    Deleted,
    /// No such item.
    NotFound,
    /// A CAS unique was given and the item's differs (binary only).
    Exists,
}

/// What an incr/decr did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOutcome {
    /// The item now holds `value` (updated, or created from the binary initial value).
    Value {
        /// The new value.
        value: u64,
        /// The item's CAS unique after the update.
        cas: u64,
    },
    /// No such item (and no initial value to create it from).
    NotFound,
    /// A CAS unique was given and the item's differs (binary only).
    Exists,
    /// The item's value is not a decimal number.
    NonNumeric,
    /// No memory for the new value.
    OutOfMemory,
}

/// The classic reply of a delete, which the text and binary codecs each compose.
impl From<DeleteOutcome> for Response<'static> {
    fn from(outcome: DeleteOutcome) -> Self {
        match outcome {
            DeleteOutcome::Deleted => Response::Deleted,
            DeleteOutcome::NotFound => Response::NotFound,
            DeleteOutcome::Exists => Response::Exists,
        }
    }
}

/// The classic reply of incr/decr, which the text and binary codecs each compose.
impl From<ArithOutcome> for Response<'static> {
    fn from(outcome: ArithOutcome) -> Self {
        match outcome {
            ArithOutcome::Value { value, cas } => Response::Number { value, cas },
            ArithOutcome::NotFound => Response::NotFound,
            ArithOutcome::Exists => Response::Exists,
            ArithOutcome::NonNumeric => Response::Error(ErrorReply::NonNumeric),
            ArithOutcome::OutOfMemory => Response::OutOfMemory,
        }
    }
}

/// What a touch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TouchOutcome {
    /// The item's expiry time was updated.
    Touched,
    /// No such item.
    NotFound,
}

/// A storage command: what was done, with the item's new CAS unique when stored.
pub fn store_op(req: &StoreRequest<'_>, cx: &Ctx<'_>) -> StoreOutcome {
    cx.shared.detail.record(req.key, DetailEvent::Set);
    if cx.shared.logger.watching(WatchEvents::FETCHERS) {
        // memcached's store looks the key up first, and that lookup is a logged fetch.
        let peek = store::GetRequest {
            key: req.key,
            no_bump: true,
            ..Default::default()
        };
        let found = cx.shared.store.get(&peek, item_shape);
        log_get(cx, req.key, &found);
    }
    let outcome = set_op(
        &store::SetRequest {
            mode: set_mode(req.mode),
            key: req.key,
            flags: req.flags,
            exptime: req.exptime,
            value: req.value,
            cas: req.cas,
            ..Default::default()
        },
        cx,
    );
    if cx.shared.logger.watching(WatchEvents::MUTATIONS) {
        log_store(cx, req, outcome);
    }
    outcome
}

/// The shape of an item that `watch` lines report: flags, whether it has an expiry time, and
/// its value's length (enough to name its slab class).
pub fn item_shape(item: &ItemView<'_>) -> (u32, bool, usize) {
    (item.flags(), item.ttl() >= 0, item.value_len())
}

/// Logs a fetch (`watch fetchers`): `type=item_get key=<k> status=<found|not_found|flushed|
/// expired> clsid=<n> cfd=<fd> size=<value length>`.
#[cold]
pub fn log_get(cx: &Ctx<'_>, key: &[u8], found: &Lookup<(u32, bool, usize)>) {
    let (status, shape) = match *found {
        Lookup::Hit(shape) => ("found", Some(shape)),
        Lookup::Miss | Lookup::OutOfMemory => ("not_found", None),
        Lookup::Flushed => ("flushed", None),
        Lookup::Expired => ("expired", None),
    };
    let (clsid, size) = shape.map_or((0, 0), |(flags, exp, len)| {
        (cx.shared.store.class_id(key.len(), flags, exp, len), len)
    });
    cx.shared.log_event(|out| {
        out.extend_from_slice(b"type=item_get key=");
        logger::put_uri_key(out, key);
        out.extend_from_slice(b" status=");
        out.extend_from_slice(status.as_bytes());
        logger::put_field(out, "clsid", clsid);
        logger::put_field(out, "cfd", cx.fd);
        logger::put_field(out, "size", size);
    });
}

/// Logs a store (`watch mutations`), as memcached's `type=item_store` line.
#[cold]
fn log_store(cx: &Ctx<'_>, req: &StoreRequest<'_>, outcome: StoreOutcome) {
    let status = match outcome {
        StoreOutcome::Stored { .. } => "stored",
        StoreOutcome::NotStored => "not_stored",
        StoreOutcome::Exists => "exists",
        StoreOutcome::NotFound => "not_found",
        StoreOutcome::TooLarge => "too_large",
        StoreOutcome::OutOfMemory => "no_memory",
    };
    let cmd = match req.mode {
        StoreMode::Set => "set",
        StoreMode::Add => "add",
        StoreMode::Replace => "replace",
        StoreMode::Append => "append",
        StoreMode::Prepend => "prepend",
        StoreMode::Cas => "cas",
    };
    // Seconds left, as memcached prints it (absolute times over 30 days made relative).
    let ttl = if req.exptime > 60 * 60 * 24 * 30 {
        (req.exptime - cx.shared.clock.unix_now()).max(0)
    } else {
        req.exptime.max(0)
    };
    let clsid = cx
        .shared
        .store
        .class_id(req.key.len(), req.flags, ttl > 0, req.value.len());
    cx.shared.log_event(|out| {
        out.extend_from_slice(b"type=item_store key=");
        logger::put_uri_key(out, req.key);
        out.extend_from_slice(b" status=");
        out.extend_from_slice(status.as_bytes());
        out.extend_from_slice(b" cmd=");
        out.extend_from_slice(cmd.as_bytes());
        logger::put_field(out, "ttl", ttl);
        logger::put_field(out, "clsid", clsid);
        logger::put_field(out, "cfd", cx.fd);
        logger::put_field(out, "size", req.value.len());
    });
}

/// A storage command as the store takes it (meta `ms` adds `I` and `b`), counted as memcached
/// counts every storage command: `cmd_set`, and in cas mode `cas_hits`/`cas_badval`/`cas_misses`.
pub fn set_op(req: &store::SetRequest<'_>, cx: &Ctx<'_>) -> StoreOutcome {
    cx.stats.cmd_set.incr();
    let (outcome, cas) = cx.shared.store.set(req);
    if req.mode == SetMode::Cas {
        match outcome {
            store::StoreOutcome::Stored => cx.stats.cas_hits.incr(),
            store::StoreOutcome::Exists => cx.stats.cas_badval.incr(),
            store::StoreOutcome::NotFound => cx.stats.cas_misses.incr(),
            _ => {}
        }
    }
    match outcome {
        store::StoreOutcome::Stored => StoreOutcome::Stored { cas },
        store::StoreOutcome::NotStored => StoreOutcome::NotStored,
        store::StoreOutcome::Exists => StoreOutcome::Exists,
        store::StoreOutcome::NotFound => StoreOutcome::NotFound,
        store::StoreOutcome::TooLarge => {
            cx.stats.store_too_large.incr();
            StoreOutcome::TooLarge
        }
        store::StoreOutcome::OutOfMemory => {
            cx.stats.store_no_memory.incr();
            StoreOutcome::OutOfMemory
        }
    }
}

/// A storage command whose item cannot fit: for `set` the old item is unlinked so no stale
/// value survives (memcached does this in both protocols). `count` bumps `store_too_large`
/// (the text protocol counts it; 1.6.18's binary protocol does not). Always
/// [`StoreOutcome::TooLarge`].
pub fn too_large_op(mode: StoreMode, key: &[u8], count: bool, cx: &Ctx<'_>) -> StoreOutcome {
    if count {
        cx.stats.store_too_large.incr();
    }
    if mode == StoreMode::Set {
        cx.shared.store.delete(&store::DeleteRequest {
            key,
            ..Default::default()
        });
    }
    StoreOutcome::TooLarge
}

/// Deletes `key` (only if its CAS is `cas`, when `cas` is non-zero).
pub fn delete_op(key: &[u8], cas: u64, cx: &Ctx<'_>) -> DeleteOutcome {
    // memcached counts the delete whether or not the key is found.
    cx.shared.detail.record(key, DetailEvent::Delete);
    match cx.shared.store.delete(&store::DeleteRequest {
        key,
        cas: (cas != 0).then_some(cas),
        ..Default::default()
    }) {
        store::DeleteOutcome::Deleted => {
            cx.stats.delete_hits.incr();
            DeleteOutcome::Deleted
        }
        store::DeleteOutcome::NotFound => {
            cx.stats.delete_misses.incr();
            DeleteOutcome::NotFound
        }
        store::DeleteOutcome::Exists => DeleteOutcome::Exists,
    }
}

/// incr/decr (only if the item's CAS is `cas`, when non-zero). An item created from the binary
/// initial value counts neither a hit nor a miss, as in memcached.
pub fn arith_op(req: &ArithRequest<'_>, cas: u64, cx: &Ctx<'_>) -> ArithOutcome {
    let outcome = cx.shared.store.arith(&store::ArithRequest {
        key: req.key,
        incr: req.incr,
        delta: req.delta,
        initial: req.initial,
        cas,
        ..Default::default()
    });
    let (hits, misses) = if req.incr {
        (&cx.stats.incr_hits, &cx.stats.incr_misses)
    } else {
        (&cx.stats.decr_hits, &cx.stats.decr_misses)
    };
    match outcome {
        store::ArithOutcome::Updated { value, cas, .. } => {
            hits.incr();
            ArithOutcome::Value { value, cas }
        }
        store::ArithOutcome::Created { value, cas, .. } => ArithOutcome::Value { value, cas },
        store::ArithOutcome::NotFound => {
            misses.incr();
            ArithOutcome::NotFound
        }
        store::ArithOutcome::Exists => ArithOutcome::Exists,
        store::ArithOutcome::NonNumeric => ArithOutcome::NonNumeric,
        store::ArithOutcome::OutOfMemory => {
            cx.stats.store_no_memory.incr();
            ArithOutcome::OutOfMemory
        }
    }
}

/// Looks one key up (and touches it when `req.touch` is given), running `f` on a hit, and
/// counts it as memcached does: `cmd_get`/`get_*` for a plain lookup, `cmd_touch`/`touch_*` for a
/// touch or get-and-touch.
pub fn lookup_op<R>(
    shared: &Shared,
    stats: &ThreadStats,
    req: &store::GetRequest<'_>,
    f: impl FnOnce(&ItemView<'_>) -> R,
) -> Lookup<R> {
    let found = shared.store.get(req, f);
    if req.touch.is_some() {
        stats.cmd_touch.incr();
        if found.is_hit() {
            stats.touch_hits.incr();
        } else {
            stats.touch_misses.incr();
        }
        return found;
    }
    stats.cmd_get.incr();
    shared.detail.record(
        req.key,
        DetailEvent::Get {
            hit: found.is_hit(),
        },
    );
    // `get_expired` / `get_flushed` are the store's: memcached counts them in every lookup.
    if found.is_hit() {
        stats.get_hits.incr();
    } else {
        stats.get_misses.incr();
    }
    found
}

/// A meta get (`mg`), counted as memcached 1.6.18 counts it: a hit is `cmd_get`/`get_hits`, or
/// `cmd_touch`/`touch_hits` when `req.touch` is given (an item created by `vivify` is a hit
/// too); a miss is always `cmd_get`/`get_misses`, `T` or not (the store counts `get_expired`
/// and `get_flushed`), and so is a vivify that found no memory. `f` writes the reply: when it
/// fails (memcached notices a too-long opaque only while writing a hit) the hit is not counted.
pub fn meta_get_op<R, E>(
    shared: &Shared,
    stats: &ThreadStats,
    req: &store::GetRequest<'_>,
    f: impl FnOnce(&ItemView<'_>) -> Result<R, E>,
) -> Lookup<Result<R, E>> {
    let found = shared.store.get(req, f);
    match &found {
        Lookup::Hit(Err(_)) => {}
        Lookup::Hit(Ok(_)) if req.touch.is_some() => {
            stats.cmd_touch.incr();
            stats.touch_hits.incr();
        }
        Lookup::Hit(Ok(_)) => {
            stats.cmd_get.incr();
            stats.get_hits.incr();
        }
        Lookup::Miss | Lookup::OutOfMemory | Lookup::Expired | Lookup::Flushed => {
            stats.cmd_get.incr();
            stats.get_misses.incr();
        }
    }
    found
}

/// A meta delete (`md`): `delete_hits` when removed; `md … I` (marked stale) counts nothing;
/// a miss or a CAS mismatch counts `delete_misses`, as memcached 1.6.18 does.
pub fn meta_delete_op(req: &store::DeleteRequest<'_>, cx: &Ctx<'_>) -> DeleteOutcome {
    match cx.shared.store.delete(req) {
        store::DeleteOutcome::Deleted => {
            if !req.invalidate {
                cx.stats.delete_hits.incr();
            }
            DeleteOutcome::Deleted
        }
        store::DeleteOutcome::NotFound => {
            cx.stats.delete_misses.incr();
            DeleteOutcome::NotFound
        }
        store::DeleteOutcome::Exists => {
            cx.stats.delete_misses.incr();
            DeleteOutcome::Exists
        }
    }
}

/// A meta incr/decr (`ma`), with the store's full outcome (the TTLs `t` prints): hits and misses
/// as incr/decr count them; an autovivified item or a CAS mismatch counts nothing.
pub fn meta_arith_op(req: &store::ArithRequest<'_>, cx: &Ctx<'_>) -> store::ArithOutcome {
    let outcome = cx.shared.store.arith(req);
    let (hits, misses) = if req.incr {
        (&cx.stats.incr_hits, &cx.stats.incr_misses)
    } else {
        (&cx.stats.decr_hits, &cx.stats.decr_misses)
    };
    match outcome {
        store::ArithOutcome::Updated { .. } => hits.incr(),
        store::ArithOutcome::NotFound => misses.incr(),
        store::ArithOutcome::OutOfMemory => cx.stats.store_no_memory.incr(),
        _ => {}
    }
    outcome
}

/// A meta debug (`me`): a lookup that neither bumps nor counts as a get; counts `cmd_meta`
/// (the only meta command 1.6.18 counts there).
pub fn meta_debug_op<R>(
    shared: &Shared,
    stats: &ThreadStats,
    key: &[u8],
    f: impl FnOnce(&ItemView<'_>) -> R,
) -> Lookup<R> {
    stats.cmd_meta.incr();
    let req = store::GetRequest {
        key,
        no_bump: true,
        ..Default::default()
    };
    shared.store.get(&req, f)
}

/// `flush_all` / FLUSH: done, or refused with [`ErrorReply::FlushDisabled`] (and nothing done)
/// when `-F` forbids it.
pub fn flush_op(delay: i64, cx: &Ctx<'_>) -> Result<(), ErrorReply> {
    if !cx.shared.settings.flush_enabled {
        return Err(ErrorReply::FlushDisabled);
    }
    cx.stats.cmd_flush.incr();
    cx.shared.store.flush_all(delay);
    Ok(())
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
        // memcached's `item_stats_sizes_enable` / `_disable` lines (memcached then sends no
        // END or terminator, a bug that leaves clients waiting: tern ends the reply).
        StatsGroup::SizesEnable if cx.shared.store.enable_size_tracking() => {
            vec![("sizes_status".into(), "enabled".into())]
        }
        StatsGroup::SizesEnable => vec![
            ("sizes_status".into(), "error".into()),
            ("sizes_error".into(), "cas_support_disabled".into()),
        ],
        StatsGroup::SizesDisable => {
            cx.shared.store.disable_size_tracking();
            vec![("sizes_status".into(), "disabled".into())]
        }
        StatsGroup::Reset => {
            cx.shared.reset_stats();
            return StatsReply::Reset;
        }
        StatsGroup::Other(args) => return StatsReply::Unknown(args),
    })
}

/// `shutdown [graceful]`: refused with [`ErrorReply::ShutdownDisabled`] unless `-A` allows it;
/// otherwise every thread is asked to stop.
pub fn shutdown_op(cx: &Ctx<'_>) -> Result<(), ErrorReply> {
    if !cx.shared.settings.allow_shutdown {
        return Err(ErrorReply::ShutdownDisabled);
    }
    cx.shared.request_shutdown();
    Ok(())
}

/// The error a refused request's parser reported, as the server answers it: memcached refuses
/// every `shutdown` form with "shutdown not enabled" when `-A` is off, whatever the mode.
pub fn refusal(reply: ErrorReply, cx: &Ctx<'_>) -> ErrorReply {
    match reply {
        ErrorReply::InvalidShutdownMode if !cx.shared.settings.allow_shutdown => {
            ErrorReply::ShutdownDisabled
        }
        other => other,
    }
}

/// memcached's cap on a `stats cachedump` reply.
const CACHEDUMP_MAX_BYTES: usize = 2 * 1024 * 1024;

/// `stats cachedump <class> <limit>`: refused under `-X` ([`ErrorReply::CachedumpDisabled`])
/// before the arguments are looked at, as memcached does; otherwise the class's live items.
pub fn cachedump_op(
    args: Result<(u32, u32), ErrorReply>,
    cx: &Ctx<'_>,
) -> Result<Vec<store::DumpedItem>, ErrorReply> {
    if !cx.shared.settings.dump_enabled {
        return Err(ErrorReply::CachedumpDisabled);
    }
    let (class, limit) = args?;
    Ok(cx.shared.store.cachedump(class, limit, CACHEDUMP_MAX_BYTES))
}

/// `watch`: refused under `-W` ([`ErrorReply::WatchDisabled`]), after other requests of the
/// same read whose replies are still buffered ([`ErrorReply::WatchPipelined`]), or for an
/// unknown event class (`ERROR`), in memcached's order. Otherwise the events to stream.
pub fn watch_op(events: Option<WatchEvents>, cx: &Ctx<'_>) -> Result<WatchEvents, ErrorReply> {
    if !cx.shared.settings.watch_enabled {
        return Err(ErrorReply::WatchDisabled);
    }
    if !cx.out.is_empty() {
        return Err(ErrorReply::WatchPipelined);
    }
    events.ok_or(ErrorReply::UnknownCommand)
}

/// `verbosity <level>`.
pub fn verbosity_op(level: u32, cx: &Ctx<'_>) {
    cx.shared.set_verbosity(level);
}

/// `touch <key> <exptime>`, counted as a touch.
pub fn touch_op(key: &[u8], exptime: i64, cx: &Ctx<'_>) -> TouchOutcome {
    let req = store::GetRequest {
        key,
        touch: Some(exptime),
        ..Default::default()
    };
    if lookup_op(cx.shared, cx.stats, &req, |_| ()).is_hit() {
        TouchOutcome::Touched
    } else {
        TouchOutcome::NotFound
    }
}

/// What a cluster `config` command did, for each protocol to compose.
#[derive(Debug)]
pub enum ConfigOutcome {
    /// `config get cluster` with a config published.
    Found(Arc<Published>),
    /// `config get` of another key, or no config published.
    Missing,
    /// `config set` published the new config.
    Stored,
    /// `config set` refused (bad key or data, or a version not above the highest served).
    Refused(SetError),
    /// `config delete` removed the config.
    Deleted,
    /// `config delete` found no config.
    NotFound,
}

/// The ElastiCache auto-discovery `config get|set|delete` (text) and CONFIG_GET/SET/DELETE
/// (binary), on the cluster state shared by every thread.
pub fn config_op(request: ConfigRequest<'_>, cluster: &Cluster) -> ConfigOutcome {
    match request {
        ConfigRequest::Get { key } => match cluster.current() {
            Some(p) if key == CONFIG_KEY => ConfigOutcome::Found(p),
            _ => ConfigOutcome::Missing,
        },
        ConfigRequest::Set { key, data, .. } => match cluster.set_data(key, data) {
            Ok(()) => ConfigOutcome::Stored,
            Err(e) => ConfigOutcome::Refused(e),
        },
        ConfigRequest::Delete { key, .. } => {
            if cluster.delete(key) {
                ConfigOutcome::Deleted
            } else {
                ConfigOutcome::NotFound
            }
        }
    }
}
