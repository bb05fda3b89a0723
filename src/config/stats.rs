//! `stats settings`: every setting under memcached 1.6.18's name, in its order and format
//! (`process_stat_settings()` in `memcached.c`), so tools written for memcached (prometheus'
//! memcached_exporter reads `maxconns`, `lru_crawler` and the LRU lines) read tern unchanged.
//!
//! The list is what 1.6.18 prints when built as Debian builds it, less the `ext_*` (extstore)
//! lines: a memcached built without extstore omits them too, and tern has none. Settings tern has no knob for are reported at memcached's default, which is
//! what tern does or the closest description of it.

use super::{BindingProtocol, Settings, DEFAULT_CHUNK_SIZE, DEFAULT_GROWTH_FACTOR};

/// Settings that change while the server runs, which `stats settings` reports live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuntimeSettings {
    /// `oldest`: memcached's `settings.oldest_live`, the relative time before which items
    /// are dead since the last `flush_all` (0 when there was none).
    pub oldest: u64,
    /// `verbosity`: as last set by the `verbosity` command.
    pub verbosity: u8,
    /// `detail_enabled`: whether `stats detail on` is in force.
    pub detail_enabled: bool,
}

fn yes_no(on: bool) -> String {
    if on { "yes" } else { "no" }.to_string()
}

/// memcached's `prot_text()`.
fn protocol_text(p: BindingProtocol) -> &'static str {
    match p {
        BindingProtocol::Auto => "auto-negotiate",
        BindingProtocol::Ascii => "ascii",
        BindingProtocol::Binary => "binary",
    }
}

impl Settings {
    /// `stats settings` at start-up (`oldest` 0, the configured verbosity): name and value
    /// pairs, in order; the server writes each as `STAT name value\r\n`, then `END\r\n`.
    pub fn stats_settings(&self) -> Vec<(&'static str, String)> {
        self.stats_settings_with(RuntimeSettings {
            oldest: 0,
            verbosity: self.verbosity,
            detail_enabled: false,
        })
    }

    /// `stats settings` with the live values the server keeps.
    pub fn stats_settings_with(&self, rt: RuntimeSettings) -> Vec<(&'static str, String)> {
        let store = &self.store;
        let t = &self.tuning;
        let mut lines = vec![
            ("maxbytes", store.memory_limit.to_string()),
            ("maxconns", self.max_connections.to_string()),
            ("tcpport", self.port.as_memcached().to_string()),
            ("udpport", self.udp_port.as_memcached().to_string()),
            // memcached prints the -l string or NULL (every interface); tern's default is
            // loopback, so it always has a list to print.
            (
                "inter",
                if self.listen.is_empty() {
                    "NULL".to_string()
                } else {
                    self.listen.join(",")
                },
            ),
            ("verbosity", rt.verbosity.to_string()),
            ("oldest", rt.oldest.to_string()),
            (
                "evictions",
                if store.evict { "on" } else { "off" }.to_string(),
            ),
            (
                "domain_socket",
                self.unix_socket
                    .as_ref()
                    .map_or_else(|| "NULL".to_string(), |p| p.display().to_string()),
            ),
            ("umask", format!("{:o}", self.unix_mask)),
            ("shutdown_command", yes_no(self.allow_shutdown)),
            (
                "growth_factor",
                format!(
                    "{:.2}",
                    store.growth_factor.unwrap_or(DEFAULT_GROWTH_FACTOR)
                ),
            ),
            (
                "chunk_size",
                store
                    .chunk_size_min
                    .unwrap_or(DEFAULT_CHUNK_SIZE)
                    .to_string(),
            ),
            ("num_threads", self.threads.to_string()),
            ("num_threads_per_udp", self.num_threads_per_udp.to_string()),
            (
                "stat_key_prefix",
                char::from(self.prefix_delimiter).to_string(),
            ),
            ("detail_enabled", yes_no(rt.detail_enabled)),
            ("reqs_per_event", self.reqs_per_event.to_string()),
            ("cas_enabled", yes_no(store.cas_enabled)),
            ("tcp_backlog", self.backlog.to_string()),
            ("binding_protocol", protocol_text(self.protocol).to_string()),
            ("auth_enabled_sasl", yes_no(self.sasl)),
            // memcached prints the -Y file name here when set.
            (
                "auth_enabled_ascii",
                self.auth_file
                    .as_ref()
                    .map_or_else(|| "no".to_string(), |f| f.display().to_string()),
            ),
            ("item_size_max", store.item_size_max.to_string()),
            ("maxconns_fast", yes_no(t.maxconns_fast)),
            (
                "hashpower_init",
                store.hashpower_init.unwrap_or(0).to_string(),
            ),
            ("slab_reassign", yes_no(self.slab_reassign)),
            // memcached prints the mode as set: no_slab_reassign stops the mover but leaves it.
            ("slab_automove", t.slab_automove_mode.to_string()),
            (
                "slab_automove_ratio",
                format!("{:.2}", t.slab_automove_ratio),
            ),
            ("slab_automove_window", t.slab_automove_window.to_string()),
            ("slab_chunk_max", t.slab_chunk_max.to_string()),
            ("lru_crawler", yes_no(store.lru_crawler)),
            ("lru_crawler_sleep", t.lru_crawler_sleep.to_string()),
            ("lru_crawler_tocrawl", t.lru_crawler_tocrawl.to_string()),
            ("tail_repair_time", t.tail_repair_time.to_string()),
            ("flush_enabled", yes_no(self.flush_enabled)),
            ("dump_enabled", yes_no(self.dump_enabled)),
            ("hash_algorithm", t.hash_algorithm.name().to_string()),
            ("lru_maintainer_thread", yes_no(t.lru_maintainer)),
            ("lru_segmented", yes_no(t.lru_segmented)),
            ("hot_lru_pct", t.hot_lru_pct.to_string()),
            ("warm_lru_pct", t.warm_lru_pct.to_string()),
            ("hot_max_factor", format!("{:.2}", t.hot_max_factor)),
            ("warm_max_factor", format!("{:.2}", t.warm_max_factor)),
            ("temp_lru", yes_no(t.temp_lru)),
            ("temporary_ttl", t.temporary_ttl.to_string()),
            ("idle_timeout", self.idle_timeout.to_string()),
            ("watcher_logbuf_size", t.watcher_logbuf_size.to_string()),
            ("worker_logbuf_size", t.worker_logbuf_size.to_string()),
            ("read_buf_mem_limit", "0".to_string()),
            ("track_sizes", yes_no(store.track_sizes)),
            ("inline_ascii_response", yes_no(false)),
        ];
        // memcached built with TLS (as Debian builds it) prints these with or without -Z.
        lines.extend(self.tls.stats_lines());
        lines.extend([
            // memcached 1.6.18 prints these two with "%s" from an int 0 and a NULL pointer,
            // which glibc renders as "(null)"; byte-compatible output keeps that.
            ("num_napi_ids", "(null)".to_string()),
            ("memory_file", "(null)".to_string()),
        ]);
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn settings(line: &str) -> Settings {
        let args = std::iter::once("tern")
            .chain(line.split_whitespace())
            .map(OsString::from);
        Settings::from_args_env(args, std::iter::empty()).unwrap()
    }

    fn render(stats: &[(&'static str, String)]) -> String {
        stats
            .iter()
            .map(|(k, v)| format!("STAT {k} {v}\r\n"))
            .collect()
    }

    /// Real memcached 1.6.18 (Debian) for
    /// `memcached -p 22301 -l 127.0.0.1 -U 0 -u nobody`, less its ext_* lines.
    const MEMCACHED_DEFAULTS: &str = "STAT maxbytes 67108864\r\nSTAT maxconns 1024\r\n\
STAT tcpport 22301\r\nSTAT udpport 0\r\nSTAT inter 127.0.0.1\r\nSTAT verbosity 0\r\n\
STAT oldest 0\r\nSTAT evictions on\r\nSTAT domain_socket NULL\r\nSTAT umask 700\r\n\
STAT shutdown_command no\r\nSTAT growth_factor 1.25\r\nSTAT chunk_size 48\r\n\
STAT num_threads 4\r\nSTAT num_threads_per_udp 4\r\nSTAT stat_key_prefix :\r\n\
STAT detail_enabled no\r\nSTAT reqs_per_event 20\r\nSTAT cas_enabled yes\r\n\
STAT tcp_backlog 1024\r\nSTAT binding_protocol auto-negotiate\r\n\
STAT auth_enabled_sasl no\r\nSTAT auth_enabled_ascii no\r\nSTAT item_size_max 1048576\r\n\
STAT maxconns_fast yes\r\nSTAT hashpower_init 0\r\nSTAT slab_reassign yes\r\n\
STAT slab_automove 1\r\nSTAT slab_automove_ratio 0.80\r\nSTAT slab_automove_window 30\r\n\
STAT slab_chunk_max 524288\r\nSTAT lru_crawler yes\r\nSTAT lru_crawler_sleep 100\r\n\
STAT lru_crawler_tocrawl 0\r\nSTAT tail_repair_time 0\r\nSTAT flush_enabled yes\r\n\
STAT dump_enabled yes\r\nSTAT hash_algorithm murmur3\r\nSTAT lru_maintainer_thread yes\r\n\
STAT lru_segmented yes\r\nSTAT hot_lru_pct 20\r\nSTAT warm_lru_pct 40\r\n\
STAT hot_max_factor 0.20\r\nSTAT warm_max_factor 2.00\r\nSTAT temp_lru no\r\n\
STAT temporary_ttl 61\r\nSTAT idle_timeout 0\r\nSTAT watcher_logbuf_size 262144\r\n\
STAT worker_logbuf_size 65536\r\nSTAT read_buf_mem_limit 0\r\nSTAT track_sizes no\r\n\
STAT inline_ascii_response no\r\nSTAT ssl_enabled no\r\nSTAT ssl_chain_cert (null)\r\n\
STAT ssl_key (null)\r\nSTAT ssl_verify_mode 0\r\nSTAT ssl_keyformat 1\r\n\
STAT ssl_ciphers NULL\r\nSTAT ssl_ca_cert NULL\r\nSTAT ssl_wbuf_size 16384\r\n\
STAT ssl_session_cache no\r\nSTAT ssl_kernel_tls no\r\nSTAT ssl_min_version tlsv1.2\r\n\
STAT num_napi_ids (null)\r\nSTAT memory_file (null)\r\n";

    #[test]
    fn defaults_match_memcached_line_for_line() {
        let s = settings("-p 22301 -l 127.0.0.1 -U 0 -u nobody -t 4");
        assert_eq!(render(&s.stats_settings()), MEMCACHED_DEFAULTS);
    }

    /// Real memcached 1.6.18 for
    /// `-p 22303 -l 127.0.0.1,[::1] -U 0 -c 500 -t 2 -f 1.5 -n 64 -C -B ascii -A -F -X
    ///  -o idle_timeout=30,hashpower=20,no_lru_crawler,slab_automove=0 -a 755 -R 10 -b 50 -M
    ///  -I 2m -m 100`: the lines that differ from the defaults.
    #[test]
    fn configured_values_match_memcached_formats() {
        let s = settings(
            "-p 22303 -l 127.0.0.1,[::1] -U 0 -c 500 -t 2 -f 1.5 -n 64 -C -B ascii -A -F -X \
             -o idle_timeout=30,hashpower=20,no_lru_crawler,slab_automove=0 -a 755 -R 10 -b 50 \
             -M -I 2m -m 100",
        );
        let stats = s.stats_settings();
        let get = |k: &str| stats.iter().find(|(n, _)| *n == k).unwrap().1.clone();
        for (k, v) in [
            ("maxbytes", "104857600"),
            ("maxconns", "500"),
            ("tcpport", "22303"),
            ("inter", "127.0.0.1,[::1]"),
            ("evictions", "off"),
            ("umask", "755"),
            ("shutdown_command", "yes"),
            ("growth_factor", "1.50"),
            ("chunk_size", "64"),
            ("num_threads", "2"),
            ("num_threads_per_udp", "1"),
            ("reqs_per_event", "10"),
            ("cas_enabled", "no"),
            ("tcp_backlog", "50"),
            ("binding_protocol", "ascii"),
            ("item_size_max", "2097152"),
            ("hashpower_init", "20"),
            ("slab_automove", "0"),
            ("lru_crawler", "no"),
            ("flush_enabled", "no"),
            ("dump_enabled", "no"),
            ("idle_timeout", "30"),
        ] {
            assert_eq!(get(k), v, "{k}");
        }
    }

    /// The `stats settings` lines from `maxconns_fast` to `worker_logbuf_size`.
    fn knob_lines(s: &Settings) -> String {
        let stats = s.stats_settings();
        let from = stats
            .iter()
            .position(|(n, _)| *n == "maxconns_fast")
            .unwrap();
        let to = stats
            .iter()
            .position(|(n, _)| *n == "worker_logbuf_size")
            .unwrap();
        stats[from..=to]
            .iter()
            .filter(|(n, _)| *n != "hashpower_init" && !n.ends_with("_enabled"))
            .map(|(k, v)| format!("STAT {k} {v}\r\n"))
            .collect()
    }

    /// Real memcached 1.6.18 for `-o no_modern` (its slab_automove_freeratio, an extstore
    /// line, left out).
    #[test]
    fn no_modern_reads_as_memcached() {
        let s = settings("-u nobody -o no_modern");
        assert_eq!(
            knob_lines(&s),
            "STAT maxconns_fast no\r\nSTAT slab_reassign no\r\nSTAT slab_automove 0\r\n\
             STAT slab_automove_ratio 0.80\r\nSTAT slab_automove_window 30\r\n\
             STAT slab_chunk_max 1048576\r\nSTAT lru_crawler no\r\n\
             STAT lru_crawler_sleep 100\r\nSTAT lru_crawler_tocrawl 0\r\n\
             STAT tail_repair_time 0\r\nSTAT hash_algorithm jenkins\r\n\
             STAT lru_maintainer_thread no\r\nSTAT lru_segmented no\r\nSTAT hot_lru_pct 20\r\n\
             STAT warm_lru_pct 40\r\nSTAT hot_max_factor 0.20\r\nSTAT warm_max_factor 2.00\r\n\
             STAT temp_lru no\r\nSTAT temporary_ttl 61\r\nSTAT idle_timeout 0\r\n\
             STAT watcher_logbuf_size 262144\r\nSTAT worker_logbuf_size 65536\r\n"
        );
        // What tern honours of it: no page moves, no crawler.
        assert!(!s.slab_reassign);
        assert!(!s.store.slab_automove);
        assert!(!s.store.lru_crawler);
    }

    /// Real memcached 1.6.18: an explicit slab_chunk_max survives a later no_modern, and
    /// `slab_reassign,maxconns_fast` after it turn those back on.
    #[test]
    fn no_modern_keeps_a_given_chunk_max_and_can_be_undone() {
        let s =
            settings("-u nobody -o slab_chunk_max=16384,no_modern -o slab_reassign,maxconns_fast");
        let lines = knob_lines(&s);
        assert!(lines.starts_with(
            "STAT maxconns_fast yes\r\nSTAT slab_reassign yes\r\nSTAT slab_automove 0\r\n"
        ));
        assert!(lines.contains("STAT slab_chunk_max 16384\r\n"));
        assert!(lines.contains("STAT hash_algorithm jenkins\r\n"));
        assert!(s.slab_reassign);
    }

    /// Real memcached 1.6.18 for `-o slab_chunk_max=16384,temporary_ttl=30,hot_lru_pct=25,
    /// warm_lru_pct=30,hot_max_factor=0.5,warm_max_factor=1.5,slab_automove=2,
    /// slab_automove_ratio=0.5,slab_automove_window=10,lru_crawler_sleep=50,
    /// lru_crawler_tocrawl=7,tail_repair_time=20,hash_algorithm=xxh3,watcher_logbuf_size=128,
    /// no_hashexpand`.
    #[test]
    fn every_knob_is_reported_as_memcached_reports_it() {
        let s = settings(
            "-u nobody -o slab_chunk_max=16384,temporary_ttl=30,hot_lru_pct=25,warm_lru_pct=30,\
             hot_max_factor=0.5,warm_max_factor=1.5,slab_automove=2,slab_automove_ratio=0.5,\
             slab_automove_window=10,lru_crawler_sleep=50,lru_crawler_tocrawl=7,\
             tail_repair_time=20,hash_algorithm=xxh3,watcher_logbuf_size=128,no_hashexpand",
        );
        assert_eq!(
            knob_lines(&s),
            "STAT maxconns_fast yes\r\nSTAT slab_reassign yes\r\nSTAT slab_automove 2\r\n\
             STAT slab_automove_ratio 0.50\r\nSTAT slab_automove_window 10\r\n\
             STAT slab_chunk_max 16384\r\nSTAT lru_crawler yes\r\n\
             STAT lru_crawler_sleep 50\r\nSTAT lru_crawler_tocrawl 7\r\n\
             STAT tail_repair_time 20\r\nSTAT hash_algorithm xxh3\r\n\
             STAT lru_maintainer_thread yes\r\nSTAT lru_segmented yes\r\nSTAT hot_lru_pct 25\r\n\
             STAT warm_lru_pct 30\r\nSTAT hot_max_factor 0.50\r\nSTAT warm_max_factor 1.50\r\n\
             STAT temp_lru yes\r\nSTAT temporary_ttl 30\r\nSTAT idle_timeout 0\r\n\
             STAT watcher_logbuf_size 131072\r\nSTAT worker_logbuf_size 65536\r\n"
        );
        // Accepted, shown, and each one tern does not act on yet is named at start-up.
        for name in [
            "temporary_ttl",
            "hot_lru_pct",
            "slab_chunk_max",
            "hash_algorithm",
        ] {
            assert!(
                s.notices.iter().any(|n| n.contains(name)),
                "{name}: {:?}",
                s.notices
            );
        }
    }

    #[test]
    fn runtime_values_are_reported() {
        let s = settings("-u nobody");
        let stats = s.stats_settings_with(RuntimeSettings {
            oldest: 1234,
            verbosity: 3,
            detail_enabled: true,
        });
        assert!(stats.contains(&("oldest", "1234".to_string())));
        assert!(stats.contains(&("detail_enabled", "yes".to_string())));
        assert!(stats.contains(&("verbosity", "3".to_string())));
    }

    #[test]
    fn unix_socket_and_udp_are_reported() {
        let s = settings("-s /tmp/tern.sock -a 770 -U 22330 -p 22331");
        let stats = s.stats_settings();
        assert!(stats.contains(&("domain_socket", "/tmp/tern.sock".to_string())));
        assert!(stats.contains(&("umask", "770".to_string())));
        assert!(stats.contains(&("udpport", "22330".to_string())));
    }

    #[test]
    fn exporter_fields_parse_as_numbers() {
        // memcached_exporter parses these as floats when lru_crawler is "yes".
        let s = settings("");
        let stats = s.stats_settings();
        for k in [
            "maxconns",
            "lru_crawler_sleep",
            "lru_crawler_tocrawl",
            "hot_lru_pct",
            "warm_lru_pct",
            "hot_max_factor",
            "warm_max_factor",
        ] {
            let v = &stats.iter().find(|(n, _)| *n == k).unwrap().1;
            assert!(v.parse::<f64>().is_ok(), "{k}={v}");
        }
        let names: Vec<_> = stats.iter().map(|(n, _)| *n).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "no duplicate names");
    }
}
