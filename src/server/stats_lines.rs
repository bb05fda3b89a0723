//! The lines of `stats`, `stats settings` and `stats conns`, read from the shared state, and
//! `stats reset`. Each worker's counters are summed only here, when someone asks.

use std::sync::atomic::Ordering;

use super::shared::Shared;
use super::stats;
use super::{TERN_VERSION, VERSION};

impl Shared {
    fn summed(&self) -> stats::StatsSnapshot {
        stats::sum(self.threads.iter().map(|t| &**t))
    }

    /// `stats reset`: zeroes the resettable counters.
    pub fn reset_stats(&self) {
        for t in &self.threads {
            t.reset();
        }
        self.detail.clear();
        self.logger.reset();
        self.total_connections.store(0, Ordering::Relaxed);
        self.rejected_connections.store(0, Ordering::Relaxed);
        self.listen_disabled_num.store(0, Ordering::Relaxed);
        self.time_in_listen_disabled_us.store(0, Ordering::Relaxed);
    }

    /// The lines of plain `stats`, in memcached's order.
    pub fn general_stats(&self) -> Vec<(String, String)> {
        let s = self.summed();
        let store = self.store.stats();
        let (user, system) = rusage();
        let now = self.clock.unix_now();
        let mut v: Vec<(String, String)> = Vec::with_capacity(64);
        let mut put = |name: &str, value: String| v.push((name.to_string(), value));
        put("pid", std::process::id().to_string());
        put(
            "uptime",
            (now - self.clock.process_started() - 62).max(0).to_string(),
        );
        put("time", now.to_string());
        put("version", VERSION.to_string());
        put("tern_version", TERN_VERSION.to_string());
        put("pointer_size", (usize::BITS).to_string());
        put("rusage_user", user);
        put("rusage_system", system);
        put("max_connections", self.settings.max_connections.to_string());
        put(
            "curr_connections",
            self.curr_connections.load(Ordering::Relaxed).to_string(),
        );
        put(
            "total_connections",
            self.total_connections.load(Ordering::Relaxed).to_string(),
        );
        // memcached counts refusals only in maxconns_fast mode, and shows the line only then.
        if self.settings.tuning.maxconns_fast {
            put(
                "rejected_connections",
                self.rejected_connections
                    .load(Ordering::Relaxed)
                    .to_string(),
            );
        }
        put(
            "connection_structures",
            self.curr_connections.load(Ordering::Relaxed).to_string(),
        );
        // memcached's response objects and read buffers: tern composes replies straight into
        // pooled output buffers and has no per-response objects nor a global read-buffer cache
        // with an out-of-memory path, so these are memcached's idle values.
        for name in [
            "response_obj_oom",
            "response_obj_count",
            "response_obj_bytes",
        ] {
            put(name, "0".to_string());
        }
        for name in [
            "read_buf_count",
            "read_buf_bytes",
            "read_buf_bytes_free",
            "read_buf_oom",
        ] {
            put(name, "0".to_string());
        }
        // File descriptors memcached keeps aside for itself (listeners, pipes, logs); tern
        // reserves none, as it never refuses at a descriptor count below -c.
        put("reserved_fds", "0".to_string());
        put("cmd_get", s.cmd_get.to_string());
        put("cmd_set", s.cmd_set.to_string());
        put("cmd_flush", s.cmd_flush.to_string());
        put("cmd_touch", s.cmd_touch.to_string());
        put("cmd_meta", s.cmd_meta.to_string());
        put("get_hits", s.get_hits.to_string());
        put("get_misses", s.get_misses.to_string());
        put("get_expired", store.get_expired.to_string());
        put("get_flushed", store.get_flushed.to_string());
        put("delete_misses", s.delete_misses.to_string());
        put("delete_hits", s.delete_hits.to_string());
        put("incr_misses", s.incr_misses.to_string());
        put("incr_hits", s.incr_hits.to_string());
        put("decr_misses", s.decr_misses.to_string());
        put("decr_hits", s.decr_hits.to_string());
        put("cas_misses", s.cas_misses.to_string());
        put("cas_hits", s.cas_hits.to_string());
        put("cas_badval", s.cas_badval.to_string());
        put("touch_hits", s.touch_hits.to_string());
        put("touch_misses", s.touch_misses.to_string());
        put("store_too_large", s.store_too_large.to_string());
        put("store_no_memory", s.store_no_memory.to_string());
        put("auth_cmds", s.auth_cmds.to_string());
        put("auth_errors", s.auth_errors.to_string());
        if self.settings.idle_timeout > 0 {
            put("idle_kicks", s.idle_kicks.to_string());
        }
        put("bytes_read", s.bytes_read.to_string());
        put("bytes_written", s.bytes_written.to_string());
        put("limit_maxbytes", self.store.memory_limit().to_string());
        let accepting = self.accepting.load(Ordering::Relaxed);
        put("accepting_conns", u8::from(accepting).to_string());
        put(
            "listen_disabled_num",
            self.listen_disabled_num.load(Ordering::Relaxed).to_string(),
        );
        put(
            "time_in_listen_disabled_us",
            self.time_in_listen_disabled_us
                .load(Ordering::Relaxed)
                .to_string(),
        );
        put("threads", self.settings.threads.to_string());
        put("conn_yields", s.conn_yields.to_string());
        put("hash_power_level", store.hash_power_level.to_string());
        put("hash_bytes", store.hash_bytes.to_string());
        put(
            "hash_is_expanding",
            u8::from(store.hash_is_expanding).to_string(),
        );
        if self.settings.slab_reassign {
            // tern's page mover copies the live items a moved page holds into free chunks of
            // their class: one-chunk items and chains' heads (`slab_reassign_rescues`), other
            // chunks of chains (`slab_reassign_chunk_rescues`); it evicts the items it has no
            // room for (`slab_reassign_evictions_nomem`). It works under the shard's lock and
            // never waits on a busy item, so the other counters stay 0.
            for (name, value) in [
                ("slab_reassign_rescues", store.reassign_rescues),
                ("slab_reassign_chunk_rescues", store.reassign_chunk_rescues),
                ("slab_reassign_evictions_nomem", store.reassign_evictions),
                ("slab_reassign_inline_reclaim", 0),
                ("slab_reassign_busy_items", 0),
                ("slab_reassign_busy_deletes", 0),
                ("slab_reassign_running", 0),
            ] {
                put(name, value.to_string());
            }
            put("slabs_moved", store.slabs_moved.to_string());
        }
        // As memcached: shown while the crawler is enabled, which `lru_crawler enable|disable`
        // changes live (lru-crawler.t waits on this line after enabling it).
        if self.store.crawler_enabled() {
            put(
                "lru_crawler_running",
                u8::from(self.store.crawl_running()).to_string(),
            );
            put("lru_crawler_starts", "0".to_string());
        }
        if self.settings.tuning.lru_maintainer {
            put("lru_maintainer_juggles", "0".to_string());
        }
        // tern allocates item memory up front in pages; an allocation that fails aborts.
        put("malloc_fails", "0".to_string());
        let log = self.logger.stats();
        put("log_worker_dropped", log.worker_dropped.to_string());
        put("log_worker_written", log.worker_written.to_string());
        put("log_watcher_skipped", log.watcher_skipped.to_string());
        put("log_watcher_sent", log.watcher_sent.to_string());
        put("log_watchers", log.watchers.to_string());
        // NAPI ids (SO_INCOMING_NAPI_ID thread steering) are not used by tern.
        put("unexpected_napi_ids", "0".to_string());
        put("round_robin_fallback", "0".to_string());
        put("bytes", store.bytes.to_string());
        put("curr_items", store.curr_items.to_string());
        put("total_items", store.total_items.to_string());
        // Pages not yet given to any slab class (memcached's global page pool).
        put("slab_global_page_pool", "0".to_string());
        put("expired_unfetched", store.expired_unfetched.to_string());
        put("evicted_unfetched", store.evicted_unfetched.to_string());
        let segmented = self.settings.tuning.lru_maintainer;
        if segmented {
            put("evicted_active", "0".to_string());
        }
        put("evictions", store.evictions.to_string());
        put("reclaimed", store.reclaimed.to_string());
        put("crawler_reclaimed", store.crawler_reclaimed.to_string());
        put("crawler_items_checked", "0".to_string());
        // tern's items have no reference counts to find locked at the LRU tail.
        put("lrutail_reflocked", "0".to_string());
        if segmented {
            // One CLOCK queue per class: nothing moves between hot, warm and cold.
            put("moves_to_cold", "0".to_string());
            put("moves_to_warm", "0".to_string());
            put("moves_within_lru", "0".to_string());
            put(
                "direct_reclaims",
                (store.evictions + store.reclaimed).to_string(),
            );
            put("lru_bumps_dropped", "0".to_string());
        }
        if let Some(tls) = &self.tls {
            for (name, value) in tls.stats_lines(self.clock.now()) {
                put(name, value);
            }
        }
        // tern's own: the auto-discovery config version served (0 after `config delete`).
        put("cluster_config_version", self.cluster.version().to_string());
        v
    }

    /// The lines of `stats settings`, with memcached's names, order and formats.
    pub fn settings_stats(&self) -> Vec<(String, String)> {
        // What the operator commands changed: the tuning, the crawler, the memory limit.
        let mut settings = self.settings.clone();
        settings.tuning = self.live.tuning();
        settings.store.lru_crawler = self.store.crawler_enabled();
        settings.store.memory_limit = self.store.memory_limit();
        settings.store.track_sizes = self.store.size_tracking();
        settings
            .stats_settings_with(crate::config::stats::RuntimeSettings {
                oldest: 0,
                verbosity: self.verbosity.load(Ordering::Relaxed).min(255) as u8,
                detail_enabled: self.detail.enabled(),
            })
            .into_iter()
            .map(|(name, value)| (name.to_string(), value))
            .collect()
    }

    /// The lines of `stats conns`: every listener and client connection.
    pub fn conns_stats(&self) -> Vec<(String, String)> {
        self.registry.lines(self.clock.now())
    }
}

/// User and system CPU time in memcached's `sec.usec` format.
fn rusage() -> (String, String) {
    use nix::sys::resource::{getrusage, UsageWho};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(usage) => {
            let fmt = |tv: nix::sys::time::TimeVal| format!("{}.{:06}", tv.tv_sec(), tv.tv_usec());
            (fmt(usage.user_time()), fmt(usage.system_time()))
        }
        Err(_) => ("0.000000".to_string(), "0.000000".to_string()),
    }
}
