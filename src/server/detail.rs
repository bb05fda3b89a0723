//! `stats detail on|off|dump`: per-prefix counts of gets, hits, sets and deletes, as memcached
//! 1.6.18 keeps them (`stats_prefix.c`). A key's prefix is what comes before its first `:`
//! (`-D` names another delimiter, and switches counting on from the start); keys without one
//! are not counted.
//!
//! Off (the default) costs each request one relaxed load. On, each counted request takes one
//! short lock (memcached takes its `stats_lock` the same way) and allocates only for a prefix
//! seen for the first time; at most [`MAX_PREFIXES`] prefixes are kept, so a client sending
//! random prefixes cannot grow the table without bound.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

/// How many distinct prefixes are counted. memcached keeps every prefix it sees; tern stops
/// adding new ones here (already counted prefixes go on counting), so the table stays small.
pub const MAX_PREFIXES: usize = 4096;

/// What is counted for one prefix.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    gets: u64,
    hits: u64,
    sets: u64,
    deletes: u64,
}

/// Which counter a request bumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetailEvent {
    /// A retrieval of one key, hit or miss.
    Get {
        /// Whether the key was found.
        hit: bool,
    },
    /// A storage command.
    Set,
    /// A delete (found or not, as memcached counts it).
    Delete,
}

/// The per-prefix table and its switch.
#[derive(Debug)]
pub struct PrefixStats {
    enabled: AtomicBool,
    /// The byte ending a prefix (`-D`).
    delimiter: u8,
    table: Mutex<BTreeMap<Box<[u8]>, Counts>>,
}

impl PrefixStats {
    /// Prefixes end at `delimiter`; counting starts `enabled` or not (`-D` switches it on).
    pub fn new(delimiter: u8, enabled: bool) -> PrefixStats {
        PrefixStats {
            enabled: AtomicBool::new(enabled),
            delimiter,
            table: Mutex::default(),
        }
    }

    /// Whether counting is on (`stats settings` `detail_enabled`).
    #[inline]
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// `stats detail on|off`.
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    /// Counts `event` for `key`'s prefix when counting is on.
    #[inline]
    pub fn record(&self, key: &[u8], event: DetailEvent) {
        if self.enabled() {
            self.record_slow(key, event);
        }
    }

    #[cold]
    fn record_slow(&self, key: &[u8], event: DetailEvent) {
        let Some(end) = key.iter().position(|&b| b == self.delimiter) else {
            return;
        };
        let prefix = &key[..end];
        let mut table = self.table.lock();
        if !table.contains_key(prefix) {
            if table.len() >= MAX_PREFIXES {
                return;
            }
            table.insert(prefix.into(), Counts::default());
        }
        let Some(counts) = table.get_mut(prefix) else {
            return;
        };
        match event {
            DetailEvent::Get { hit } => {
                counts.gets += 1;
                counts.hits += u64::from(hit);
            }
            DetailEvent::Set => counts.sets += 1,
            DetailEvent::Delete => counts.deletes += 1,
        }
    }

    /// `stats reset`: forgets every prefix.
    pub fn clear(&self) {
        self.table.lock().clear();
    }

    /// `stats detail dump`: `PREFIX <p> get <n> hit <n> set <n> del <n>\r\n` per prefix, then
    /// `END\r\n` (what is kept is dumped whether counting is on or off, as in memcached).
    pub fn dump(&self, out: &mut Vec<u8>) {
        let mut num = itoa::Buffer::new();
        for (prefix, c) in self.table.lock().iter() {
            out.extend_from_slice(b"PREFIX ");
            out.extend_from_slice(prefix);
            for (name, n) in [
                (&b" get "[..], c.gets),
                (b" hit ", c.hits),
                (b" set ", c.sets),
                (b" del ", c.deletes),
            ] {
                out.extend_from_slice(name);
                out.extend_from_slice(num.format(n).as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"END\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(p: &PrefixStats) -> String {
        let mut out = Vec::new();
        p.dump(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn counts_only_while_enabled_and_only_prefixed_keys() {
        let p = PrefixStats::new(b':', false);
        p.record(b"foo:1", DetailEvent::Set);
        assert_eq!(dump(&p), "END\r\n");
        p.set_enabled(true);
        p.record(b"foo:1", DetailEvent::Set);
        p.record(b"foo:1", DetailEvent::Get { hit: true });
        p.record(b"foo:2", DetailEvent::Get { hit: false });
        p.record(b"foo:3", DetailEvent::Delete);
        p.record(b"plain", DetailEvent::Set);
        p.record(b"bar:x:y", DetailEvent::Set);
        assert_eq!(
            dump(&p),
            "PREFIX bar get 0 hit 0 set 1 del 0\r\nPREFIX foo get 2 hit 1 set 1 del 1\r\nEND\r\n"
        );
        p.set_enabled(false);
        p.record(b"foo:1", DetailEvent::Set);
        assert!(dump(&p).contains("PREFIX foo get 2 hit 1 set 1 del 1\r\n"));
        p.clear();
        assert_eq!(dump(&p), "END\r\n");
    }

    #[test]
    fn the_prefix_table_is_bounded() {
        let p = PrefixStats::new(b':', false);
        p.set_enabled(true);
        for i in 0..MAX_PREFIXES + 10 {
            p.record(format!("p{i}:k").as_bytes(), DetailEvent::Set);
        }
        assert_eq!(p.table.lock().len(), MAX_PREFIXES);
        // A known prefix still counts once the table is full.
        p.record(b"p0:k", DetailEvent::Set);
        assert!(dump(&p).contains("PREFIX p0 get 0 hit 0 set 2 del 0\r\n"));
    }
}
