//! memcached's tuning knobs that tern accepts (`-o` keys of memcached 1.6.18) and reports in
//! `stats settings`, even where tern's store has nothing to tune with them yet.
//!
//! Each value starts at memcached's default (memcached.c's `settings_init()`), so `stats
//! settings` reads as memcached's when nothing is given. A value set to something tern does
//! not act on produces a start-up notice naming it (see [`Tuning::notices`]): accepted, shown
//! as set, never silently dropped.

/// memcached's `-o hash_algorithm` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// `jenkins` (memcached 1.4's, and `no_modern`'s).
    Jenkins,
    /// `murmur3`, memcached 1.6's default.
    Murmur3,
    /// `xxh3`.
    Xxh3,
}

impl HashAlgorithm {
    /// The name `stats settings` prints.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Jenkins => "jenkins",
            HashAlgorithm::Murmur3 => "murmur3",
            HashAlgorithm::Xxh3 => "xxh3",
        }
    }
}

/// The knobs, at memcached 1.6.18's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuning {
    /// `maxconns_fast`: refuse connections over `-c` at once (memcached's default since 1.5).
    pub maxconns_fast: bool,
    /// `slab_automove`'s mode: 0 off, 1 on, 2 aggressive (tern's mover has one mode).
    pub slab_automove_mode: u8,
    /// `slab_automove_ratio`.
    pub slab_automove_ratio: f64,
    /// `slab_automove_window`.
    pub slab_automove_window: u32,
    /// `slab_chunk_max`, bytes: the largest slab chunk; bigger items are chained.
    pub slab_chunk_max: usize,
    /// `lru_crawler_sleep`, microseconds.
    pub lru_crawler_sleep: u32,
    /// `lru_crawler_tocrawl`: items per class per crawl, 0 for all.
    pub lru_crawler_tocrawl: u32,
    /// `tail_repair_time`, seconds (0: off).
    pub tail_repair_time: u32,
    /// `hash_algorithm`.
    pub hash_algorithm: HashAlgorithm,
    /// The LRU maintainer thread (`lru_maintainer`, `no_lru_maintainer`).
    pub lru_maintainer: bool,
    /// The segmented (hot/warm/cold) LRU, tied to the maintainer.
    pub lru_segmented: bool,
    /// `hot_lru_pct`.
    pub hot_lru_pct: u32,
    /// `warm_lru_pct`.
    pub warm_lru_pct: u32,
    /// `hot_max_factor`.
    pub hot_max_factor: f64,
    /// `warm_max_factor`.
    pub warm_max_factor: f64,
    /// The temporary LRU (on once `temporary_ttl` is given).
    pub temp_lru: bool,
    /// `temporary_ttl`, seconds.
    pub temporary_ttl: u32,
    /// `watcher_logbuf_size`, bytes (given in kilobytes).
    pub watcher_logbuf_size: u32,
    /// `worker_logbuf_size`, bytes (given in kilobytes).
    pub worker_logbuf_size: u32,
    /// `no_hashexpand`: memcached then never grows its hash table.
    pub hashexpand: bool,
}

/// memcached's slab page, which `no_chunked_items` and `no_modern` make the chunk limit.
pub const SLAB_PAGE_SIZE: usize = super::SLAB_PAGE_SIZE;

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            maxconns_fast: true,
            slab_automove_mode: 1,
            slab_automove_ratio: 0.8,
            slab_automove_window: 30,
            slab_chunk_max: super::SLAB_CHUNK_MAX,
            lru_crawler_sleep: 100,
            lru_crawler_tocrawl: 0,
            tail_repair_time: 0,
            hash_algorithm: HashAlgorithm::Murmur3,
            lru_maintainer: true,
            lru_segmented: true,
            hot_lru_pct: 20,
            warm_lru_pct: 40,
            hot_max_factor: 0.2,
            warm_max_factor: 2.0,
            temp_lru: false,
            temporary_ttl: 61,
            watcher_logbuf_size: 256 * 1024,
            worker_logbuf_size: 64 * 1024,
            hashexpand: true,
        }
    }
}

impl Tuning {
    /// One line per knob set away from memcached's default that tern's store or server does
    /// not act on, saying so; logged at start-up.
    pub fn notices(&self) -> Vec<String> {
        let d = Tuning::default();
        let mut out = Vec::new();
        let mut note = |changed: bool, what: &str, why: &str| {
            if changed {
                out.push(format!(
                    "{what}: accepted and shown by stats settings; {why}"
                ));
            }
        };
        note(
            self.slab_automove_mode == 2,
            "-o slab_automove=2",
            "tern's page mover runs its one mode",
        );
        let mover = "tern's page mover has no tunables yet";
        note(
            self.slab_automove_ratio != d.slab_automove_ratio,
            "-o slab_automove_ratio",
            mover,
        );
        note(
            self.slab_automove_window != d.slab_automove_window,
            "-o slab_automove_window",
            mover,
        );
        note(
            self.slab_chunk_max != d.slab_chunk_max,
            "slab_chunk_max (-o slab_chunk_max, no_chunked_items, no_modern)",
            "tern's store keeps its own chunk limit",
        );
        let crawler = "tern's LRU crawler has no tunables yet";
        note(
            self.lru_crawler_sleep != d.lru_crawler_sleep,
            "-o lru_crawler_sleep",
            crawler,
        );
        note(
            self.lru_crawler_tocrawl != d.lru_crawler_tocrawl,
            "-o lru_crawler_tocrawl",
            crawler,
        );
        note(
            self.tail_repair_time != d.tail_repair_time,
            "-o tail_repair_time",
            "tern never force-frees referenced items by age",
        );
        note(
            self.hash_algorithm != d.hash_algorithm,
            "hash_algorithm (-o hash_algorithm, no_modern)",
            "tern's index keeps its own hash function, which clients never see",
        );
        let lru = "tern's LRU layout does not change with it yet";
        note(!self.lru_segmented, "no_lru_maintainer (or no_modern)", lru);
        note(self.hot_lru_pct != d.hot_lru_pct, "-o hot_lru_pct", lru);
        note(self.warm_lru_pct != d.warm_lru_pct, "-o warm_lru_pct", lru);
        note(
            self.hot_max_factor != d.hot_max_factor,
            "-o hot_max_factor",
            lru,
        );
        note(
            self.warm_max_factor != d.warm_max_factor,
            "-o warm_max_factor",
            lru,
        );
        note(
            self.temp_lru,
            "-o temporary_ttl",
            "tern has no separate LRU for short TTLs yet",
        );
        note(
            !self.hashexpand,
            "-o no_hashexpand",
            "tern's index still grows as needed",
        );
        out
    }
}
