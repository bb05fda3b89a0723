//! The item operations: lookup, storage commands, delete, incr/decr. Each takes one request
//! struct (`request.rs`) and locks exactly one shard.

use super::hits::Hit;
use super::item;
use super::shard::{Dead, Found, Look, Part, Shard};
use super::value;
use super::view::Facts;
use super::{
    ArithOutcome, ArithRequest, DeleteOutcome, DeleteRequest, GetRequest, ItemView, Lookup,
    SetMode, SetRequest, Store, StoreOutcome,
};
use crate::clock::RelTime;

impl Store {
    /// Looks `req.key` up and, on a hit, sets its exptime when `req.touch` says so (memcached's
    /// exptime rules) and runs `f` on the item. The meta options (`no_bump`, `win_tokens`,
    /// `vivify`, `recache`) are described on [`GetRequest`]; what the view reports (`h`, `l`,
    /// `t`, `X`, `Z`, `W`) is the item as found, before this request's own bump.
    pub fn get<R>(&self, req: &GetRequest<'_>, f: impl FnOnce(&ItemView<'_>) -> R) -> Lookup<R> {
        let key = req.key;
        let sh = &self.shared;
        let hash = sh.hash(key);
        let now = self.clock.now();
        let mut s = self.shard(hash).lock();
        s.sync_flush(sh, now);
        let (mut found, created) = match s.lookup(sh, key, hash, now) {
            Look::Live(found) => (found, false),
            miss => {
                let Some(ttl) = req.vivify else {
                    return match miss {
                        Look::Dead(Dead::Expired) => Lookup::Expired,
                        Look::Dead(Dead::Flushed) => Lookup::Flushed,
                        _ => Lookup::Miss,
                    };
                };
                match self.vivify(&mut s, key, hash, ttl, now) {
                    Some(found) => (found, true),
                    None => return Lookup::OutOfMemory,
                }
            }
        };
        let before = found.header;
        let cls = sh.class_of(found.handle);
        if let Some(e) = req.touch {
            if !(created && req.vivify_last) {
                let e = self.clock.realtime(e);
                // Out of memory while giving a never-expiring item an exptime field: keep the
                // item as it is (memcached's touch cannot fail that way).
                if let Some(f2) = s.set_exptime(sh, key, hash, found, e, now) {
                    found = f2;
                }
            }
            if !self.hits.bump(cls, Hit::Touch) {
                s.classes[cls].stats.touch_hits += 1;
            }
        } else if !self.hits.bump(cls, Hit::Get) {
            s.classes[cls].stats.get_hits += 1;
        }
        let mut facts = Facts {
            ttl: ttl_left(found.header.exptime, now),
            ttl_before: ttl_left(before.exptime, now),
            age: before.age(now),
            fetched: before.fetched(),
            stale: before.stale(),
            key_binary: before.key_binary(),
            created,
            ..Facts::default()
        };
        if req.win_tokens {
            // memcached's mg: N (created) wins; R wins when the TTL left is below it and no
            // token is out; a stale item wins when no token is out. One bit under the shard
            // lock decides, so exactly one racing client gets the win.
            let token = found.header.token_sent();
            let exptime = if req.recache_after_touch {
                found.header.exptime
            } else {
                before.exptime
            };
            let recache = req.recache.is_some_and(|r| {
                !token && !created && exptime != 0 && exptime < self.clock.realtime(r)
            });
            facts.token_sent = token;
            facts.won = created || recache || (facts.stale && !token);
        }
        let (won, bump) = (facts.won, !req.no_bump);
        let id = s.id;
        // The bump, then the reads of the view, in one chunk look-up; from here on the shard
        // is only read, and the view borrows it until `f` returns.
        let (chunk, owner) = s.chunk_update(sh, found.handle, |c| {
            if won {
                item::set_facts(c, item::TOKEN_SENT, 0);
            }
            if bump {
                item::mark_read(c, now);
            }
        });
        let h = &found.header;
        let voff = h.key_off + h.key_len;
        let first = if h.chained {
            &chunk[voff..voff + (chunk.len() - voff).min(h.value_len)]
        } else {
            &chunk[voff..voff + h.value_len]
        };
        let view = ItemView {
            key: &chunk[h.key_off..voff],
            flags: h.flags,
            cas: sh.cas_of(h.seq, id),
            value_len: h.value_len,
            first,
            next: h.next,
            shared: sh,
            owner,
            facts,
        };
        let r = f(&view);
        drop(s);
        Lookup::Hit(r)
    }

    /// Creates the empty item of a meta get's `N<ttl>` on a miss. It counts as a hit, not a
    /// store (memcached links it without `cmd_set`).
    fn vivify(
        &self,
        s: &mut Shard,
        key: &[u8],
        hash: u64,
        ttl: i64,
        now: RelTime,
    ) -> Option<Found> {
        let sh = &self.shared;
        if key.is_empty() || key.len() > self.config.key_max_length {
            return None;
        }
        let exptime = self.clock.realtime(ttl);
        let seq = s.next_seq();
        let head = s.write_new(sh, key, hash, 0, exptime, seq, 0, &[], None, now)?;
        s.classes[sh.class_of(head)].stats.cmd_set -= 1;
        let header = item::parse(s.chunk(sh, head));
        Some(Found {
            pos: s.pos_of(sh, head),
            handle: head,
            header,
        })
    }

    /// Runs a storage command and returns, with the outcome, the stored item's new CAS unique
    /// (0 unless [`StoreOutcome::Stored`]): binary replies carry it.
    ///
    /// As memcached's `do_store_item` does for every mode, a non-zero `cas` is compared by
    /// append and prepend too (binary APPEND/PREPEND): a live item with another CAS answers
    /// [`StoreOutcome::Exists`].
    pub fn set(&self, req: &SetRequest<'_>) -> (StoreOutcome, u64) {
        let SetRequest {
            mode,
            key,
            flags,
            exptime,
            value,
            cas,
            invalidate,
            key_binary,
        } = *req;
        let sh = &self.shared;
        if key.is_empty() || key.len() > self.config.key_max_length {
            return (StoreOutcome::NotStored, 0);
        }
        // A store makes a new item: fetched, stale and token-sent start clear.
        let mut facts = if key_binary { item::KEY_BINARY } else { 0 };
        let exptime = self.clock.realtime(exptime);
        if item::header_len(flags, exptime, false) + key.len() + value.len()
            > self.config.item_size_max
        {
            return (StoreOutcome::TooLarge, 0);
        }
        let hash = sh.hash(key);
        let now = self.clock.now();
        let mut s = self.shard(hash).lock();
        s.sync_flush(sh, now);
        let look = s.lookup(sh, key, hash, now);
        // The key's expired or flushed item was just freed for this store to reuse:
        // memcached's `reclaimed` ("stored using memory from an expired entry").
        let over_dead = matches!(look, Look::Dead(_));
        let old = match look {
            Look::Live(f) => Some(f),
            _ => None,
        };
        let seq_flags_exp = match (mode, old) {
            (SetMode::Add, Some(_)) => return (StoreOutcome::NotStored, 0),
            (SetMode::Replace | SetMode::Append | SetMode::Prepend, None) => {
                return (StoreOutcome::NotStored, 0)
            }
            (SetMode::Cas, None) => return (StoreOutcome::NotFound, 0),
            (SetMode::Cas, Some(f)) => {
                let cls = sh.class_of(f.handle);
                let item_cas = sh.cas_of(f.header.seq, s.id);
                // With -C memcached answers EXISTS to every cas (observed on 1.6.18).
                if sh.cas_enabled && invalidate && cas < item_cas {
                    // memcached's CAS_STALE: store, but keep the exptime, mark the new item
                    // stale and keep a token that is out.
                    s.classes[cls].stats.cas_hits += 1;
                    facts |= item::STALE | (f.header.meta & item::TOKEN_SENT);
                    (flags, f.header.exptime)
                } else if !sh.cas_enabled || item_cas != cas {
                    s.classes[cls].stats.cas_badval += 1;
                    return (StoreOutcome::Exists, 0);
                } else {
                    s.classes[cls].stats.cas_hits += 1;
                    (flags, exptime)
                }
            }
            (SetMode::Append | SetMode::Prepend, Some(f)) => {
                if cas != 0 && (!sh.cas_enabled || sh.cas_of(f.header.seq, s.id) != cas) {
                    return (StoreOutcome::Exists, 0);
                }
                (f.header.flags, f.header.exptime)
            }
            _ => (flags, exptime),
        };
        let (flags, exptime) = seq_flags_exp;
        let seq = s.next_seq();
        let stored = match (mode, old) {
            (SetMode::Append | SetMode::Prepend, Some(f)) => {
                let total = f.header.value_len + value.len();
                if item::header_len(flags, exptime, false) + key.len() + total
                    > self.config.item_size_max
                {
                    return (StoreOutcome::TooLarge, 0);
                }
                // The old value is copied chunk to chunk (it stays pinned while the new
                // item's chunks are allocated).
                let parts = if mode == SetMode::Prepend {
                    [Part::Bytes(value), Part::Value(f)]
                } else {
                    [Part::Value(f), Part::Bytes(value)]
                };
                s.write_new(sh, key, hash, flags, exptime, seq, facts, &parts, old, now)
            }
            _ => s.write_new(
                sh,
                key,
                hash,
                flags,
                exptime,
                seq,
                facts,
                &[Part::Bytes(value)],
                old,
                now,
            ),
        };
        if let Some(head) = stored {
            if over_dead {
                let cls = sh.class_of(head);
                s.classes[cls].stats.reclaimed += 1;
            }
            return (StoreOutcome::Stored, sh.cas_of(seq, s.id));
        }
        // memcached drops the old value when a set fails for memory, so no stale data stays.
        if let (SetMode::Set, Some(f)) = (mode, old) {
            s.unlink(sh, f.pos, f.handle, &f.header);
        }
        (StoreOutcome::OutOfMemory, 0)
    }

    /// Removes `req.key` if `req.cas` is 0 or equals the item's CAS unique (binary DELETE,
    /// meta `C`). Counts a hit in `stats items`; a mismatch counts nothing, as in memcached.
    /// With `req.invalidate` (meta `md … I`) the item stays, marked stale with a new CAS and
    /// no token out, and `req.stale_exptime` (meta `T`) as its exptime if given.
    pub fn delete(&self, req: &DeleteRequest<'_>) -> DeleteOutcome {
        let DeleteRequest {
            key,
            cas,
            invalidate,
            stale_exptime,
        } = *req;
        let sh = &self.shared;
        let hash = sh.hash(key);
        let now = self.clock.now();
        let mut s = self.shard(hash).lock();
        s.sync_flush(sh, now);
        let Look::Live(mut f) = s.lookup(sh, key, hash, now) else {
            return DeleteOutcome::NotFound;
        };
        if cas.is_some_and(|cas| sh.cas_of(f.header.seq, s.id) != cas) {
            return DeleteOutcome::Exists;
        }
        if invalidate {
            if let Some(e) = stale_exptime {
                let e = self.clock.realtime(e);
                if let Some(f2) = s.set_exptime(sh, key, hash, f, e, now) {
                    f = f2;
                }
            }
            let seq = s.next_seq();
            let chunk = s.chunk_mut(sh, f.handle);
            item::set_facts(chunk, item::STALE, item::TOKEN_SENT);
            // A new CAS; the access time stays (memcached's md does not bump).
            item::set_seq(chunk, seq, f.header.atime);
            return DeleteOutcome::Deleted;
        }
        let cls = sh.class_of(f.handle);
        s.classes[cls].stats.delete_hits += 1;
        s.unlink(sh, f.pos, f.handle, &f.header);
        DeleteOutcome::Deleted
    }

    /// incr (`req.incr`) or decr by `req.delta`; `req.initial` creates a missing item
    /// (binary). When `req.cas` is non-zero a live item changes only if its CAS unique still
    /// equals it ([`ArithOutcome::Exists`] otherwise), as binary INCREMENT/DECREMENT do. As in
    /// memcached's `do_add_delta`, an empty or chained value is non-numeric before the CAS is
    /// compared.
    pub fn arith(&self, req: &ArithRequest<'_>) -> ArithOutcome {
        let ArithRequest {
            key,
            incr,
            delta,
            initial,
            cas,
            touch,
        } = *req;
        let sh = &self.shared;
        let hash = sh.hash(key);
        let now = self.clock.now();
        let mut s = self.shard(hash).lock();
        s.sync_flush(sh, now);
        let mut buf = itoa::Buffer::new();
        match s.lookup(sh, key, hash, now) {
            Look::Live(f) => {
                let h = f.header;
                if h.chained || h.value_len == 0 {
                    return ArithOutcome::NonNumeric;
                }
                if cas != 0 && sh.cas_of(h.seq, s.id) != cas {
                    return ArithOutcome::Exists;
                }
                let voff = h.key_off + h.key_len;
                let old = value::parse_u64(&s.chunk(sh, f.handle)[voff..voff + h.value_len]);
                let Some(old) = old else {
                    return ArithOutcome::NonNumeric;
                };
                let value = value::apply_delta(old, incr, delta);
                let digits = buf.format(value).as_bytes();
                let cls = sh.class_of(f.handle);
                if incr {
                    s.classes[cls].stats.incr_hits += 1;
                } else {
                    s.classes[cls].stats.decr_hits += 1;
                }
                let seq = s.next_seq();
                let mut f = if digits.len() <= h.value_len {
                    // In place, padded with spaces like memcached ("10" decr 1 -> "9 ").
                    let chunk = s.chunk_mut(sh, f.handle);
                    let v = &mut chunk[voff..voff + h.value_len];
                    v[..digits.len()].copy_from_slice(digits);
                    v[digits.len()..].fill(b' ');
                    item::set_seq(chunk, seq, now);
                    let mut f = f;
                    f.header.seq = seq;
                    f.header.atime = now & item::ATIME_MASK;
                    f
                } else {
                    // A longer value is a new item, as in memcached: its facts (fetched, stale,
                    // token sent, base64 key) start clear. A key that cannot be printed bare
                    // is still echoed base64 (`put_key`).
                    let facts = 0;
                    let parts = [Part::Bytes(digits)];
                    let Some(head) = s.write_new(
                        sh,
                        key,
                        hash,
                        h.flags,
                        h.exptime,
                        seq,
                        facts,
                        &parts,
                        Some(f),
                        now,
                    ) else {
                        return ArithOutcome::OutOfMemory;
                    };
                    let header = item::parse(s.chunk(sh, head));
                    Found {
                        pos: f.pos,
                        handle: head,
                        header,
                    }
                };
                let ttl_before = ttl_left(f.header.exptime, now);
                if let Some(e) = touch {
                    let e = self.clock.realtime(e);
                    if let Some(f2) = s.set_exptime(sh, key, hash, f, e, now) {
                        f = f2;
                    }
                }
                ArithOutcome::Updated {
                    value,
                    cas: sh.cas_of(seq, s.id),
                    ttl: ttl_left(f.header.exptime, now),
                    ttl_before,
                }
            }
            _ => match initial {
                None => ArithOutcome::NotFound,
                Some((value, exptime)) => {
                    let exptime = self.clock.realtime(exptime);
                    let seq = s.next_seq();
                    let digits = buf.format(value).as_bytes();
                    let parts = [Part::Bytes(digits)];
                    match s.write_new(sh, key, hash, 0, exptime, seq, 0, &parts, None, now) {
                        Some(_) => ArithOutcome::Created {
                            value,
                            cas: sh.cas_of(seq, s.id),
                            ttl: ttl_left(exptime, now),
                        },
                        None => ArithOutcome::OutOfMemory,
                    }
                }
            },
        }
    }
}

/// Seconds of life left for a relative exptime, -1 for none (meta `t`).
fn ttl_left(exptime: RelTime, now: RelTime) -> i64 {
    if exptime == 0 {
        -1
    } else {
        i64::from(exptime) - i64::from(now)
    }
}
