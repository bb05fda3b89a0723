//! memcached's `-o` extended options: a comma-separated `key[=value]` list, read as
//! getsubopt(3) reads it.
//!
//! Each option falls in one of four groups, so none is ever silently ignored:
//! - honoured: it sets a field of [`Extended`];
//! - already tern's behaviour ([`NO_OP_EXTENDED`]): accepted, nothing to change;
//! - deprecated in memcached itself (`resp_obj_mem_limit`): accepted with memcached's warning;
//! - not (yet) possible in tern ([`UNSUPPORTED_EXTENDED`]): refused with the reason.
//!
//! Anything else is memcached's `Illegal suboption "..."`.

use std::path::PathBuf;

use super::error::ConfigError;
use super::tls::TlsSettings;
use super::tuning::{HashAlgorithm, Tuning, SLAB_PAGE_SIZE};

/// `-o` options accepted because they ask for what tern always does, with why.
pub const NO_OP_EXTENDED: &[(&str, &str)] = &[
    ("modern", "memcached 1.6.18 ties nothing to it"),
    (
        "inline_ascii_resp",
        "a dead setting in memcached 1.6.18 itself",
    ),
    (
        "no_inline_ascii_resp",
        "a dead setting in memcached 1.6.18 itself",
    ),
    (
        "no_drop_privileges",
        "the default: tern installs no seccomp sandbox",
    ),
    (
        "relaxed_privileges",
        "memcached-debug's: tern installs no seccomp sandbox to relax",
    ),
];

/// `-o` options memcached 1.6.18 has that tern refuses, with why. Names ending in `*` are
/// prefixes (`ext_*` covers every extstore option).
pub const UNSUPPORTED_EXTENDED: &[(&str, &str)] = &[
    ("drop_privileges", "tern has no seccomp sandbox"),
    (
        "read_buf_mem_limit",
        "a global limit on connection buffer memory is not implemented",
    ),
    ("proxy_config", "memcached's proxy mode is not implemented"),
    ("proxy_uring", "memcached's proxy mode is not implemented"),
    ("ext_*", "external storage (extstore) is not implemented"),
    (
        "slab_automove_freeratio",
        "external storage (extstore) is not implemented",
    ),
];

/// What the honoured `-o` options set. `None` means "not given".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extended {
    /// `hashpower=N`.
    pub hashpower: Option<u8>,
    /// `slab_automove[=0|1]`, `no_slab_automove`.
    pub slab_automove: Option<bool>,
    /// `no_slab_reassign`.
    pub no_slab_reassign: bool,
    /// `lru_crawler`, `no_lru_crawler`.
    pub lru_crawler: Option<bool>,
    /// `track_sizes`: `stats sizes` counts items by size from the start.
    pub track_sizes: bool,
    /// `idle_timeout=S`.
    pub idle_timeout: Option<u32>,
    /// `sock_cookie_id=N`.
    pub sock_cookie_id: Option<u32>,
    /// `cluster_config=FILE` (tern's).
    pub cluster_config: Option<PathBuf>,
    /// `metrics_listen=[ADDR:]PORT` (tern's): where `GET /metrics` is served.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `no_modern`: memcached 1.4's defaults (no reassign, no automove, no crawler, ...).
    pub no_modern: bool,
    /// Whether `slab_chunk_max` was given (then `no_modern` and a large `-I` keep it).
    pub slab_chunk_max_given: bool,
    /// `slab_sizes=A-B-...` as given: checked once every option is read, as memcached does
    /// (its bounds depend on `-n` and `slab_chunk_max`).
    pub slab_sizes: Option<String>,
    /// memcached's other knobs, as the options left them.
    pub tuning: Tuning,
    /// The `ssl_*` options.
    pub tls: TlsSettings,
    /// Warnings to log at start-up (memcached prints them to stderr and carries on).
    pub warnings: Vec<String>,
}

/// Looks `name` up in a table whose entries may end in `*` (a prefix).
pub(crate) fn lookup(table: &'static [(&str, &str)], name: &str) -> Option<&'static str> {
    table.iter().find_map(|&(key, why)| {
        let hit = match key.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == key,
        };
        hit.then_some(why)
    })
}

fn missing(option: &str, message: &str) -> ConfigError {
    ConfigError::invalid(format!("-o {option}"), "", message, 1)
}

/// The value of an option that needs one, or memcached's message for its absence.
fn needed<'a>(key: &str, value: Option<&'a str>, message: &str) -> Result<&'a str, ConfigError> {
    value.ok_or_else(|| missing(key, message))
}

/// memcached's range check: `message` unless `ok`.
fn check(ok: bool, key: &str, value: &str, message: &str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(format!("-o {key}"), value, message, 1))
    }
}

fn whole<T: std::str::FromStr>(
    option: &str,
    value: &str,
    expected: &'static str,
) -> Result<T, ConfigError> {
    value
        .parse()
        .map_err(|_| ConfigError::malformed(format!("-o {option}"), value, expected))
}

/// `metrics_listen`'s value: a bare port means loopback (metrics are not for the world
/// unless an address says so).
fn metrics_addr(v: &str) -> Option<std::net::SocketAddr> {
    use std::net::{Ipv4Addr, SocketAddr};
    if let Ok(port) = v.parse::<u16>() {
        return Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    if let Some(port) = v.strip_prefix("localhost:") {
        return Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port.parse().ok()?)));
    }
    v.parse().ok()
}

impl Extended {
    /// Applies one `-o` argument (`key[=value],...`) on top of what earlier ones set.
    pub fn apply(&mut self, list: &str) -> Result<(), ConfigError> {
        // getsubopt stops at the end of the string; an empty list is no option at all.
        if list.is_empty() {
            return Ok(());
        }
        for item in list.split(',') {
            let (key, value) = match item.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (item, None),
            };
            self.apply_one(item, key, value)?;
        }
        Ok(())
    }

    fn apply_one(&mut self, item: &str, key: &str, value: Option<&str>) -> Result<(), ConfigError> {
        match key {
            "hashpower" => {
                let v =
                    value.ok_or_else(|| missing(key, "Missing numeric argument for hashpower"))?;
                let n: i64 = whole(key, v, "a whole number from 12 to 32")?;
                if n < 12 {
                    return Err(ConfigError::invalid(
                        "-o hashpower",
                        v,
                        format!("Initial hashtable multiplier of {n} is too low"),
                        1,
                    ));
                }
                if n > 32 {
                    return Err(ConfigError::invalid(
                        "-o hashpower",
                        v,
                        format!(
                            "Initial hashtable multiplier of {n} is too high\nChoose a value \
                             based on \"STAT hash_power_level\" from a running instance"
                        ),
                        1,
                    ));
                }
                self.hashpower = Some(n as u8);
            }
            "slab_automove" => match value {
                None => {
                    self.slab_automove = Some(true);
                    self.tuning.slab_automove_mode = 1;
                }
                Some(v) => {
                    let n: i64 = whole(key, v, "0, 1 or 2")?;
                    match n {
                        0..=2 => {
                            self.slab_automove = Some(n != 0);
                            self.tuning.slab_automove_mode = n as u8;
                        }
                        _ => {
                            return Err(ConfigError::invalid(
                                "-o slab_automove",
                                v,
                                "slab_automove must be between 0 and 2",
                                1,
                            ))
                        }
                    }
                }
            },
            "no_slab_automove" => {
                self.slab_automove = Some(false);
                self.tuning.slab_automove_mode = 0;
            }
            "no_slab_reassign" => self.no_slab_reassign = true,
            "lru_crawler" => self.lru_crawler = Some(true),
            "no_lru_crawler" => self.lru_crawler = Some(false),
            "track_sizes" => self.track_sizes = true,
            "idle_timeout" => {
                let v = value
                    .ok_or_else(|| missing(key, "Missing numeric argument for idle_timeout"))?;
                self.idle_timeout = Some(whole(key, v, "a whole number of seconds")?);
            }
            "sock_cookie_id" => {
                let v = needed(key, value, "Missing sock_cookie_id argument")?;
                // memcached ignores a value it cannot read (the mark stays 0); say so.
                self.sock_cookie_id = Some(v.parse().unwrap_or_else(|_| {
                    self.warnings.push(format!(
                        "-o sock_cookie_id={v}: not a number from 0 to 4294967295; no mark is set"
                    ));
                    0
                }));
            }
            "cluster_config" => match value {
                Some(v) if !v.is_empty() => self.cluster_config = Some(PathBuf::from(v)),
                _ => return Err(missing(key, "Missing cluster_config file argument")),
            },
            "metrics_listen" => {
                let v = needed(key, value, "Missing metrics_listen [address:]port argument")?;
                self.metrics_listen = Some(metrics_addr(v).ok_or_else(|| {
                    ConfigError::malformed(
                        format!("-o {key}"),
                        v,
                        "a port, or an address and a port (127.0.0.1:9150, [::1]:9150)",
                    )
                })?);
            }
            "no_modern" => {
                // memcached.c's NO_MODERN case, item by item.
                self.no_modern = true;
                if !self.slab_chunk_max_given {
                    self.tuning.slab_chunk_max = SLAB_PAGE_SIZE;
                }
                self.no_slab_reassign = true;
                self.slab_automove = Some(false);
                self.tuning.slab_automove_mode = 0;
                self.tuning.maxconns_fast = false;
                self.tuning.lru_segmented = false;
                self.tuning.hash_algorithm = HashAlgorithm::Jenkins;
                self.lru_crawler = Some(false);
                self.tuning.lru_maintainer = false;
            }
            "no_hashexpand" => self.tuning.hashexpand = false,
            // Both are defaults, but undo an earlier `no_modern`, as in memcached.
            "maxconns_fast" => self.tuning.maxconns_fast = true,
            "no_maxconns_fast" => self.tuning.maxconns_fast = false,
            "slab_reassign" => self.no_slab_reassign = false,
            "slab_automove_ratio" => {
                let v = needed(key, value, "Missing slab_automove_ratio argument")?;
                let r: f64 = whole(key, v, "a number above 0, at most 1")?;
                check(
                    r > 0.0 && r <= 1.0,
                    key,
                    v,
                    "slab_automove_ratio must be > 0 and < 1",
                )?;
                self.tuning.slab_automove_ratio = r;
            }
            "slab_automove_window" => {
                let v = needed(key, value, "Missing slab_automove_window argument")?;
                let n: u32 = whole(key, v, "a whole number above 2")?;
                check(n >= 3, key, v, "slab_automove_window must be > 2")?;
                self.tuning.slab_automove_window = n;
            }
            "tail_repair_time" => {
                let v = needed(key, value, "Missing numeric argument for tail_repair_time")?;
                let n: u32 = whole(key, v, "a whole number of seconds, at least 10")?;
                check(
                    n >= 10,
                    key,
                    v,
                    "Cannot set tail_repair_time to less than 10 seconds",
                )?;
                self.tuning.tail_repair_time = n;
            }
            "hash_algorithm" => {
                let v = needed(key, value, "Missing hash_algorithm argument")?;
                self.tuning.hash_algorithm = match v {
                    "jenkins" => HashAlgorithm::Jenkins,
                    "murmur3" => HashAlgorithm::Murmur3,
                    "xxh3" => HashAlgorithm::Xxh3,
                    _ => {
                        return Err(ConfigError::invalid(
                            "-o hash_algorithm",
                            v,
                            "Unknown hash_algorithm option (jenkins, murmur3, xxh3)",
                            1,
                        ))
                    }
                };
            }
            "lru_crawler_sleep" => {
                let v = needed(key, value, "Missing lru_crawler_sleep value")?;
                let n: u32 = whole(key, v, "a whole number of microseconds up to 1000000")?;
                check(
                    n <= 1_000_000,
                    key,
                    v,
                    "LRU crawler sleep must be between 0 and 1 second",
                )?;
                self.tuning.lru_crawler_sleep = n;
            }
            "lru_crawler_tocrawl" => {
                let v = needed(key, value, "Missing lru_crawler_tocrawl value")?;
                self.tuning.lru_crawler_tocrawl = v.parse().map_err(|_| {
                    ConfigError::invalid(
                        "-o lru_crawler_tocrawl",
                        v,
                        "lru_crawler_tocrawl takes a numeric 32bit value",
                        1,
                    )
                })?;
            }
            "lru_maintainer" => {
                self.tuning.lru_maintainer = true;
                self.tuning.lru_segmented = true;
            }
            "no_lru_maintainer" => {
                self.tuning.lru_maintainer = false;
                self.tuning.lru_segmented = false;
            }
            "hot_lru_pct" | "warm_lru_pct" => {
                let v = needed(key, value, &format!("Missing {key} argument"))?;
                let n: u32 = whole(key, v, "a whole percentage from 1 to 79")?;
                check(
                    (1..80).contains(&n),
                    key,
                    v,
                    &format!("{key} must be > 1 and < 80"),
                )?;
                if key == "hot_lru_pct" {
                    self.tuning.hot_lru_pct = n;
                } else {
                    self.tuning.warm_lru_pct = n;
                }
            }
            "hot_max_factor" | "warm_max_factor" => {
                let v = needed(key, value, &format!("Missing {key} argument"))?;
                let f: f64 = whole(key, v, "a number above 0")?;
                check(f > 0.0, key, v, &format!("{key} must be > 0"))?;
                if key == "hot_max_factor" {
                    self.tuning.hot_max_factor = f;
                } else {
                    self.tuning.warm_max_factor = f;
                }
            }
            "temporary_ttl" => {
                let v = needed(key, value, "Missing temporary_ttl argument")?;
                self.tuning.temporary_ttl = whole(key, v, "a whole number of seconds")?;
                self.tuning.temp_lru = true;
            }
            "watcher_logbuf_size" | "worker_logbuf_size" => {
                let v = needed(key, value, &format!("Missing {key} argument"))?;
                let kb: u32 = v.parse().map_err(|_| {
                    ConfigError::invalid(
                        format!("-o {key}"),
                        v,
                        format!("could not parse argument to {key}"),
                        1,
                    )
                })?;
                let bytes = kb.checked_mul(1024).ok_or_else(|| {
                    ConfigError::invalid(format!("-o {key}"), v, "too large (kilobytes)", 1)
                })?;
                if key == "watcher_logbuf_size" {
                    self.tuning.watcher_logbuf_size = bytes;
                } else {
                    self.tuning.worker_logbuf_size = bytes;
                }
            }
            "slab_chunk_max" => {
                // memcached 1.6.18 reads it in bytes (later releases in kilobytes).
                let v = needed(key, value, "Missing slab_chunk_max argument")?;
                let n: usize = v.parse().map_err(|_| {
                    ConfigError::invalid(
                        "-o slab_chunk_max",
                        v,
                        "could not parse argument to slab_chunk_max",
                        1,
                    )
                })?;
                check(n > 0, key, v, "could not parse argument to slab_chunk_max")?;
                self.tuning.slab_chunk_max = n;
                self.slab_chunk_max_given = true;
            }
            "slab_sizes" => {
                let v = needed(key, value, "Missing slab_sizes argument")?;
                self.slab_sizes = Some(v.to_string());
            }
            "no_chunked_items" => self.tuning.slab_chunk_max = SLAB_PAGE_SIZE,
            "resp_obj_mem_limit" => self.warnings.push(
                "DEPRECATED: resp_obj_mem_limit no longer used. See read_buf_mem_limit,".into(),
            ),
            _ if key.starts_with("ssl_") && self.tls.apply(key, value)? => {}
            _ if lookup(NO_OP_EXTENDED, key).is_some() => {}
            _ => {
                if let Some(reason) = lookup(UNSUPPORTED_EXTENDED, key) {
                    return Err(ConfigError::Unsupported {
                        option: format!("-o {key}"),
                        reason,
                    });
                }
                return Err(ConfigError::UnknownExtended {
                    option: item.to_string(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(s: &str) -> Result<Extended, ConfigError> {
        let mut e = Extended::default();
        e.apply(s).map(|()| e)
    }

    #[test]
    fn honoured_options_set_fields() {
        let e = ext("hashpower=20,idle_timeout=30,no_lru_crawler,slab_automove=0").unwrap();
        assert_eq!(e.hashpower, Some(20));
        assert_eq!(e.idle_timeout, Some(30));
        assert_eq!(e.lru_crawler, Some(false));
        assert_eq!(e.slab_automove, Some(false));
        assert_eq!(ext("slab_automove").unwrap().slab_automove, Some(true));
        assert_eq!(ext("lru_crawler").unwrap().lru_crawler, Some(true));
        assert!(ext("track_sizes").unwrap().track_sizes);
        assert!(!ext("lru_crawler").unwrap().track_sizes);
        assert!(ext("no_slab_reassign").unwrap().no_slab_reassign);
        assert_eq!(
            ext("cluster_config=/etc/tern/cluster.conf")
                .unwrap()
                .cluster_config,
            Some(PathBuf::from("/etc/tern/cluster.conf"))
        );
    }

    #[test]
    fn later_option_wins() {
        assert_eq!(
            ext("idle_timeout=5,idle_timeout=9").unwrap().idle_timeout,
            Some(9)
        );
    }

    #[test]
    fn no_op_options_are_accepted() {
        assert_eq!(
            ext("modern,maxconns_fast,lru_maintainer,slab_reassign,no_drop_privileges,relaxed_privileges").unwrap(),
            Extended::default()
        );
    }

    #[test]
    fn hashpower_rejections_use_memcached_wording() {
        assert_eq!(
            ext("hashpower=5").unwrap_err().to_string(),
            "invalid value '5' for -o hashpower: Initial hashtable multiplier of 5 is too low"
        );
        assert_eq!(
            ext("hashpower=40").unwrap_err().to_string(),
            "invalid value '40' for -o hashpower: Initial hashtable multiplier of 40 is too \
             high\nChoose a value based on \"STAT hash_power_level\" from a running instance"
        );
        assert_eq!(
            ext("hashpower").unwrap_err().to_string(),
            "invalid value '' for -o hashpower: Missing numeric argument for hashpower"
        );
        assert_eq!(
            ext("hashpower=abc").unwrap_err().to_string(),
            "invalid value 'abc' for -o hashpower: expected a whole number from 12 to 32"
        );
    }

    #[test]
    fn slab_automove_range() {
        assert_eq!(
            ext("slab_automove=3").unwrap_err().to_string(),
            "invalid value '3' for -o slab_automove: slab_automove must be between 0 and 2"
        );
        assert_eq!(ext("slab_automove=2").unwrap().tuning.slab_automove_mode, 2);
    }

    #[test]
    fn idle_timeout_needs_a_number() {
        assert_eq!(
            ext("idle_timeout").unwrap_err().to_string(),
            "invalid value '' for -o idle_timeout: Missing numeric argument for idle_timeout"
        );
        assert!(matches!(
            ext("idle_timeout=abc").unwrap_err(),
            ConfigError::Malformed { .. }
        ));
    }

    #[test]
    fn unknown_option_is_named_like_illegal_suboption() {
        let e = ext("idle_timeout=5,bogus=1").unwrap_err();
        assert_eq!(
            e,
            ConfigError::UnknownExtended {
                option: "bogus=1".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "unknown -o option \"bogus=1\" (Illegal suboption)"
        );
    }

    #[test]
    fn empty_item_is_illegal_like_getsubopt() {
        assert_eq!(
            ext("idle_timeout=5,,hashpower=16").unwrap_err(),
            ConfigError::UnknownExtended { option: "".into() }
        );
        assert_eq!(
            ext("=5").unwrap_err(),
            ConfigError::UnknownExtended {
                option: "=5".into()
            }
        );
    }

    #[test]
    fn unsupported_options_say_why() {
        for name in [
            "ext_path=/tmp/x:1G",
            "read_buf_mem_limit=10",
            "drop_privileges",
        ] {
            match ext(name).unwrap_err() {
                ConfigError::Unsupported { option, reason } => {
                    assert!(option.starts_with("-o "), "{option}");
                    assert!(!reason.is_empty());
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn no_modern_is_memcached_1_4_s_defaults() {
        let e = ext("no_modern").unwrap();
        assert!(e.no_modern && e.no_slab_reassign);
        assert_eq!(e.slab_automove, Some(false));
        assert_eq!(e.lru_crawler, Some(false));
        assert_eq!(e.tuning.slab_chunk_max, SLAB_PAGE_SIZE);
        assert_eq!(e.tuning.hash_algorithm, HashAlgorithm::Jenkins);
        assert!(!e.tuning.maxconns_fast && !e.tuning.lru_segmented && !e.tuning.lru_maintainer);
        // A chunk limit given first survives it.
        let e = ext("slab_chunk_max=16384,no_modern").unwrap();
        assert_eq!(e.tuning.slab_chunk_max, 16384);
        // Later options undo parts of it, as in memcached.
        let e = ext("no_modern,slab_reassign,lru_crawler,maxconns_fast").unwrap();
        assert!(!e.no_slab_reassign && e.tuning.maxconns_fast);
        assert_eq!(e.lru_crawler, Some(true));
    }

    #[test]
    fn knobs_are_read_in_memcached_s_units() {
        let e = ext(
            "slab_chunk_max=16384,temporary_ttl=30,watcher_logbuf_size=128,\
             worker_logbuf_size=32,lru_crawler_tocrawl=7,no_chunked_items",
        )
        .unwrap();
        // no_chunked_items, after it, sets the whole page.
        assert_eq!(e.tuning.slab_chunk_max, SLAB_PAGE_SIZE);
        assert!(e.tuning.temp_lru);
        assert_eq!(e.tuning.temporary_ttl, 30);
        assert_eq!(e.tuning.watcher_logbuf_size, 128 * 1024);
        assert_eq!(e.tuning.worker_logbuf_size, 32 * 1024);
        assert_eq!(e.tuning.lru_crawler_tocrawl, 7);
    }

    #[test]
    fn knob_rejections_use_memcached_wording() {
        for (opt, message) in [
            (
                "slab_automove_ratio=0",
                "slab_automove_ratio must be > 0 and < 1",
            ),
            (
                "slab_automove_ratio",
                "Missing slab_automove_ratio argument",
            ),
            ("slab_automove_window=2", "slab_automove_window must be > 2"),
            (
                "tail_repair_time=5",
                "Cannot set tail_repair_time to less than 10 seconds",
            ),
            (
                "hash_algorithm=md5",
                "Unknown hash_algorithm option (jenkins, murmur3, xxh3)",
            ),
            (
                "lru_crawler_sleep=1000001",
                "LRU crawler sleep must be between 0 and 1 second",
            ),
            (
                "lru_crawler_tocrawl=x",
                "lru_crawler_tocrawl takes a numeric 32bit value",
            ),
            ("hot_lru_pct=80", "hot_lru_pct must be > 1 and < 80"),
            ("warm_lru_pct=0", "warm_lru_pct must be > 1 and < 80"),
            ("hot_max_factor=0", "hot_max_factor must be > 0"),
            ("temporary_ttl", "Missing temporary_ttl argument"),
            (
                "watcher_logbuf_size=x",
                "could not parse argument to watcher_logbuf_size",
            ),
            (
                "slab_chunk_max=x",
                "could not parse argument to slab_chunk_max",
            ),
            ("slab_chunk_max", "Missing slab_chunk_max argument"),
        ] {
            let e = ext(opt).unwrap_err().to_string();
            assert!(e.ends_with(message), "{opt}: {e}");
        }
    }

    #[test]
    fn deprecated_option_warns_like_memcached() {
        let e = ext("resp_obj_mem_limit=5").unwrap();
        assert_eq!(
            e.warnings,
            vec!["DEPRECATED: resp_obj_mem_limit no longer used. See read_buf_mem_limit,"]
        );
    }
}
