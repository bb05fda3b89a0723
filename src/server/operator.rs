//! The store operator commands of the text protocol (`lru_crawler`, `slabs`, `lru`,
//! `cache_memlimit`): each runs here on the store and the server's live settings and answers
//! with memcached 1.6.18's status line. `lru_crawler metadump`, whose reply may be as large as
//! the store, is composed in parts ([`metadump_from`]) as a large `get` is.
//!
//! The settings these commands change live in [`LiveSettings`]; `stats settings` reports them.

use parking_lot::Mutex;
use tern_protocol::operator::{
    ClassSpec, LruCrawlerRequest, LruRequest, OperatorReply, OperatorRequest, SlabsRequest,
};
use tern_protocol::ErrorReply;

use super::ops::Ctx;
use crate::config::tuning::Tuning;
use crate::config::Settings;
use crate::store::{Classes, CrawlRefusal, DumpCursor, DumpItem, ReassignOutcome};

/// The settings the operator commands change while the server runs (memcached changes its
/// global `settings`; tern keeps the started-with [`Settings`] untouched and this copy beside
/// it). The crawler switch, the automove mode and the memory limit live in the store, which
/// acts on them.
#[derive(Debug)]
pub struct LiveSettings {
    tuning: Mutex<Tuning>,
}

impl LiveSettings {
    /// The live copy of `settings`' tuning.
    pub fn new(settings: &Settings) -> LiveSettings {
        LiveSettings {
            tuning: Mutex::new(settings.tuning.clone()),
        }
    }

    /// The tuning as it is now.
    pub fn tuning(&self) -> Tuning {
        self.tuning.lock().clone()
    }
}

/// Executes an operator command other than `metadump`: `Ok` is `OK`.
pub fn operator_op(op: OperatorRequest<'_>, cx: &Ctx<'_>) -> Result<(), ErrorReply> {
    let refuse = |r| Err(ErrorReply::Operator(r));
    let store = &cx.shared.store;
    let live = &cx.shared.live;
    match op {
        OperatorRequest::LruCrawler(crawler) => match crawler {
            LruCrawlerRequest::Crawl(spec) => {
                if !store.crawler_enabled() {
                    return refuse(OperatorReply::CrawlerDisabled);
                }
                let classes = classes(spec, store.class_count())?;
                match store.request_crawl(&classes) {
                    Ok(()) => Ok(()),
                    Err(CrawlRefusal::Disabled) => refuse(OperatorReply::CrawlerDisabled),
                    Err(CrawlRefusal::Busy) => refuse(OperatorReply::CrawlerBusy),
                    Err(CrawlRefusal::NothingToCrawl) => refuse(OperatorReply::NotStarted),
                }
            }
            // Composed in parts by the connection; a stray one answers as memcached would
            // if the client had pipelined it.
            LruCrawlerRequest::Metadump(_) => refuse(OperatorReply::CannotPipelineMetadump),
            LruCrawlerRequest::Tocrawl(n) => {
                live.tuning.lock().lru_crawler_tocrawl = n;
                Ok(())
            }
            LruCrawlerRequest::Sleep(us) => {
                live.tuning.lock().lru_crawler_sleep = us;
                Ok(())
            }
            LruCrawlerRequest::Enable => {
                if store.set_crawler(true) {
                    Ok(())
                } else {
                    refuse(OperatorReply::CrawlerStartFailed)
                }
            }
            LruCrawlerRequest::Disable => {
                store.set_crawler(false);
                Ok(())
            }
        },
        OperatorRequest::Slabs(SlabsRequest::Reassign(classes)) => {
            if !cx.shared.settings.slab_reassign {
                return refuse(OperatorReply::ReassignDisabled);
            }
            let Some((src, dst)) = classes else {
                return Err(ErrorReply::BadCommandLine);
            };
            match store.reassign(src, dst) {
                ReassignOutcome::Moved => Ok(()),
                ReassignOutcome::Same => refuse(OperatorReply::SameClass),
                ReassignOutcome::BadClass => refuse(OperatorReply::ReassignBadClass),
                ReassignOutcome::NoSpare => refuse(OperatorReply::NoSpare),
            }
        }
        OperatorRequest::Slabs(SlabsRequest::Automove { level, .. }) => {
            // memcached records the mode even with slab reassignment off (its mover then
            // stays idle); tern's mover runs only when both allow it.
            live.tuning.lock().slab_automove_mode = level as u8;
            let on = cx.shared.settings.slab_reassign && level != 0;
            store.set_automove(if on { level as u8 } else { 0 });
            Ok(())
        }
        OperatorRequest::Slabs(SlabsRequest::AutomoveRatio { ratio_bits, .. }) => {
            live.tuning.lock().slab_automove_ratio = f64::from_bits(ratio_bits);
            Ok(())
        }
        OperatorRequest::Lru(lru, _) => {
            let mut t = live.tuning.lock();
            match lru {
                LruRequest::Tune {
                    hot_pct,
                    warm_pct,
                    hot_max_factor_bits,
                    warm_max_factor_bits,
                } => {
                    t.hot_lru_pct = hot_pct;
                    t.warm_lru_pct = warm_pct;
                    t.hot_max_factor = f64::from_bits(hot_max_factor_bits);
                    t.warm_max_factor = f64::from_bits(warm_max_factor_bits);
                }
                // `mode` and `temp_ttl` need memcached's LRU maintainer.
                LruRequest::Mode { .. } | LruRequest::TempTtl(_) | LruRequest::BadMode
                    if !t.lru_maintainer =>
                {
                    return Err(ErrorReply::UnknownCommand)
                }
                LruRequest::BadMode => return Err(ErrorReply::UnknownCommand),
                LruRequest::Mode { segmented } => t.lru_segmented = segmented,
                LruRequest::TempTtl(ttl) if ttl < 0 => t.temp_lru = false,
                LruRequest::TempTtl(ttl) => {
                    t.temp_lru = true;
                    t.temporary_ttl = ttl as u32;
                }
            }
            Ok(())
        }
        OperatorRequest::CacheMemlimit { megabytes, .. } => {
            if store.set_memory_limit(megabytes as usize * 1024 * 1024) {
                Ok(())
            } else {
                refuse(OperatorReply::MemlimitAdjustFailed)
            }
        }
    }
}

/// The classes a `crawl`/`metadump` names, checked against the store's class count
/// (`BADCLASS` for an id outside 1..=count).
fn classes(spec: ClassSpec<'_>, count: usize) -> Result<Classes, ErrorReply> {
    match spec {
        ClassSpec::All | ClassSpec::Hash => Ok(Classes::All),
        ClassSpec::List(_) => spec
            .ids()
            .map(|id| match id {
                Some(id) if id >= 1 && id as usize <= count => Ok(id as usize - 1),
                _ => Err(ErrorReply::Operator(OperatorReply::BadClass)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Classes::Some),
    }
}

/// Checks a `metadump` before its first part: the crawler is on, dumping is allowed (`-X`),
/// no replies of earlier pipelined commands are waiting (`pending_output`), the classes exist.
pub fn metadump_start(
    spec: ClassSpec<'_>,
    pending_output: bool,
    cx: &Ctx<'_>,
) -> Result<Classes, ErrorReply> {
    let refuse = |r| Err(ErrorReply::Operator(r));
    if !cx.shared.store.crawler_enabled() {
        return refuse(OperatorReply::CrawlerDisabled);
    }
    if !cx.shared.settings.dump_enabled {
        return refuse(OperatorReply::MetadumpNotAllowed);
    }
    if pending_output {
        return refuse(OperatorReply::CannotPipelineMetadump);
    }
    classes(spec, cx.shared.store.class_count())
}

/// Continues a metadump from `cursor`, writing lines until this call has written `room` bytes
/// or more, then `END\r\n` once every item has been listed. Returns whether it is complete.
pub fn metadump_from(
    classes: &Classes,
    cursor: &mut DumpCursor,
    cx: &mut Ctx<'_>,
    room: usize,
) -> bool {
    let start = cx.out.len();
    let started = cx.shared.clock.process_started();
    let unix_now = cx.shared.clock.unix_now();
    loop {
        let out = &mut *cx.out;
        let done = cx.shared.store.metadump(classes, cursor, &mut |item| {
            dump_line(item, started, unix_now, out)
        });
        if done {
            cx.out.extend_from_slice(b"END\r\n");
            return true;
        }
        if cx.out.len() - start >= room {
            return false;
        }
    }
}

/// memcached's metadump line: `key=<uri-encoded> exp=<unix|-1> la=<unix> cas=<n>
/// fetch=<yes|no> cls=<id> size=<bytes>\n` (a bare `\n`, as memcached writes it).
fn dump_line(item: &DumpItem<'_>, started: i64, unix_now: i64, out: &mut Vec<u8>) {
    use std::io::Write;
    out.extend_from_slice(b"key=");
    for &b in item.key {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    let exp = if item.exptime == 0 {
        -1
    } else {
        started + i64::from(item.exptime)
    };
    // `Vec`'s `Write` cannot fail.
    let _ = writeln!(
        out,
        " exp={exp} la={} cas={} fetch={} cls={} size={}",
        unix_now - i64::from(item.age),
        item.cas,
        if item.fetched { "yes" } else { "no" },
        item.class + 1,
        item.size
    );
}
